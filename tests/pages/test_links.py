"""A shared link whose values cannot be used opens the app anyway, and says which value was
ignored and why; the notice survives Explore's own rerun and goes when the user moves on."""

from __future__ import annotations

import numpy as np
import pytest

from tests import live_app
from tests.helpers import ok
from tests.pages.shared import fresh_app, goto


def _warnings(at) -> list[str]:
    return [w.value for w in at.main.warning]


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"z": "nan,0,0,0"}, "z was ignored: it holds a value that is not a finite number"),
        ({"z": "1e309,0,0,0"}, "not a finite number"),
        ({"z": "one,two,three,four"}, "not a comma-separated list of numbers"),
        ({"z": ",".join(["0"] * 10_000)}, "more than 4,096 values"),
        ({"z": "0.5,0.5"}, "it has 2 values, and this model has 4 latent dimensions"),
        ({"idx": "-3"}, "image number '-3' was ignored"),
        ({"idx": "999999"}, "Image #999999 is not in this dataset (it has 1,797 images)"),
        ({"proj": "lda"}, "projection 'lda' was ignored"),
        ({"model": "asset:../../etc"}, "Model 'asset:../../etc' is not available here"),
        ({"page": "admin"}, "page 'admin' does not exist"),
    ],
)
def test_a_bad_link_value_is_named_and_ignored(model_dirs, monkeypatch, query, words):
    at = fresh_app(model_dirs, monkeypatch, **query)
    at.run()  # Explore reruns itself once (to draw its map): the notice must still be there
    ok(at)
    assert any(words in w for w in _warnings(at)), _warnings(at)
    assert at.title[0].value == "Explore the latent space"
    z = live_app.current_z(at)
    assert z.shape == (4,) and np.isfinite(z).all()
    if "z" in query:
        assert np.all(z == 0.0)  # the default z, not a mangled one
    goto(at, "traverse")
    assert not any(words in w for w in _warnings(at))  # gone once the user moves on


def test_a_good_link_gives_no_notice(model_dirs, monkeypatch):
    at = fresh_app(model_dirs, monkeypatch, z="0.50,-1.00,0.25,0.00", idx="3", proj="pca")
    at.run()
    assert not at.main.warning
    assert np.allclose(live_app.current_z(at), [0.5, -1.0, 0.25, 0.0])
