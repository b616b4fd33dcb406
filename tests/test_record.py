"""vae.record: one headline number and one binarize rule, the same on every page and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import tiny_vae
from vae import jobs
from vae.checkpoint import save_model
from vae.data import load_dataset
from vae.metrics import evaluate_elbo
from vae.record import RecordError, RunDir, RunRecord, binarize_rule, headline, read_logs

ROOT = Path(__file__).resolve().parents[1]
MNIST_CONV = ROOT / "assets" / "mnist-conv"


def test_headline_of_the_shipped_mnist_model_agrees_everywhere():
    from vae.ui.models import describe

    saved = json.loads((MNIST_CONV / "metrics.json").read_text())
    nll = saved["evaluation"]["test"]["iwae_nll"]  # as `vae.evaluate --save` wrote it
    head = RunRecord.read(MNIST_CONV).headline()
    assert head.name == "NLL" and head.value == nll and head.lower_is_better
    assert head.short() == f"NLL {nll:.1f}"
    assert "lower is better" in head.long()
    # the sidebar/picker and the Model library's Score column show the same figure
    assert describe(MNIST_CONV, "asset").score == head.nll() == f"NLL {nll:.1f}"
    assert jobs.run_info(MNIST_CONV).score == head.nll()
    assert jobs.run_info(MNIST_CONV).score_value == nll


@pytest.mark.parametrize(
    ("metrics", "want"),
    [
        ({"test_elbo": -94.35, "evaluation": {"test": {"elbo": -94.6}}}, ("ELBO", -94.35)),
        ({"evaluation": {"train": {"iwae_nll": 80.0}, "test": {"iwae_nll": 85.0}}}, ("NLL", 85.0)),
        ({"evaluation": {"nll_split": {"iwae_nll": 90.0}}, "test_elbo": -1.0}, ("NLL", 90.0)),
        ({"evaluation": "broken", "test_elbo": -24.2}, ("ELBO", -24.2)),
        ({"test_elbo": float("nan")}, None),
        ({"test_elbo": True}, None),
        ({}, None),
    ],
)
def test_headline_rules(metrics, want):
    head = headline(metrics)
    assert (head.name, head.value) == want if want else head is None


def test_binarize_rule():
    assert binarize_rule(None, "bernoulli", True) is True  # auto: Bernoulli on binary-like data
    assert binarize_rule(None, "bernoulli", False) is False
    assert binarize_rule(None, "gaussian", True) is False
    assert binarize_rule(False, "bernoulli", True) is False  # --binarize no
    assert binarize_rule(True, "gaussian", False) is True  # --binarize yes


def _run(tmp_path: Path, binarize: bool | None) -> Path:
    model = tiny_vae(2, hidden=(16,))
    train = {"dataset": "digits", "binarize": binarize}
    return save_model(tmp_path / f"run-{binarize}", model, dataset={"name": "digits"}, train=train)


@pytest.mark.parametrize("setting", [None, False, True])
def test_evaluate_follows_the_runs_binarize_setting(tmp_path, setting):
    from vae.checkpoint import load_run
    from vae.evaluate import evaluate_run

    run = load_run(_run(tmp_path, setting))
    ds = load_dataset("digits", "test")
    ds.binary_like = True  # so that "auto" would binarize
    out = evaluate_run(run, ds, iw_samples=0, progress=False)
    assert out["binarized"] is (setting is not False)
    if setting is False:  # evaluated on the grey images themselves, as it was trained
        want = evaluate_elbo(run.model, ds.x, batch_size=100, seed=0)["elbo"]
        assert out["elbo"] == pytest.approx(want)


def test_run_record_reads_partial_sections_and_refuses_broken_ones(tmp_path):
    rd = RunDir(_run(tmp_path, False))
    rec = RunRecord.read(rd.path)
    assert rec.train.binarize is False and rec.train.dataset == "digits"
    assert rec.model.latent_dim == 2 and rec.epochs == 0 and rec.headline() is None
    rd.metrics.write_text(json.dumps({"epochs": 3, "test_elbo": -3.0}))
    rec = RunRecord.read(rd.path)
    assert rec.epochs == 3 and rec.headline().value == -3.0
    rd.metrics.write_text(json.dumps({"epochs": "many", "test_elbo": -3.0}))
    with pytest.raises(RecordError, match="metrics.json: epochs must be a whole number"):
        RunRecord.read(rd.path)  # a field of the wrong kind is refused, by name
    rd.metrics.unlink()
    cfg = json.loads(rd.config.read_text())
    cfg["train"] = {"binarize": True}  # a partial section: defaults for the rest
    rd.config.write_text(json.dumps(cfg))
    assert RunRecord.read(rd.path).train.binarize is True
    cfg["train"] = "not an object"
    rd.config.write_text(json.dumps(cfg))
    with pytest.raises(RecordError, match="config.json: train must be an object"):
        RunRecord.read(rd.path)
    rd.epochs_log.write_text('{"epoch": 1}\n{"epoch": 2}\n{"epoch": "3"}\n{"torn')
    assert read_logs(rd.path) == ([{"epoch": 1}, {"epoch": 2}], [])
