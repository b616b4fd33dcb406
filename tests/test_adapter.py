"""vae/adapter.py: a user's own PyTorch VAE (a file, its safetensors weights, a dataset) as a Run.

The user models here are tiny plain-PyTorch files written by the test; every number is checked
against a computation done here from the weights file itself (numpy), not through the adapter.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file as load_numpy
from safetensors.torch import save_file, save_model

from vae.adapter import (
    NO_LIKELIHOOD,
    AdapterError,
    DataSpec,
    NoLikelihoodError,
    UserModelSpec,
    UserRun,
    likelihood_missing,
    load_user_model,
    split_model_arg,
)
from vae.checkpoint import CheckpointError, load_run
from vae.distributions import DiagonalGaussian
from vae.latents import run_dataset

TINY = """
import torch
from torch import nn


class Tiny(nn.Module):
    {hooks}

    def __init__(self):
        super().__init__()
        self.enc = nn.Linear(64, 8)
        self.dec = nn.Linear(4, 64)

    def encode(self, x):
        h = self.enc({encode_in})
        return {encode_out}

    def decode(self, z):
        return {decode_out}


def build():
    return Tiny()
"""


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_CACHE_DIR", str(tmp_path / "cache"))


def write_model(
    folder: Path,
    hooks: str = 'likelihood = "bernoulli"',
    encode_out: str = "h[:, :4], h[:, 4:]",
    encode_in: str = "x.flatten(1)",
    decode_out: str = "torch.sigmoid(self.dec(z)).view(-1, 1, 8, 8)",
    name: str = "tiny.py",
    seed: int = 0,
) -> tuple[Path, Path]:
    """(the model file, its weights): Tiny with a seeded initialisation, saved with save_file."""
    src = TINY.format(
        hooks=hooks, encode_in=encode_in, encode_out=encode_out, decode_out=decode_out
    )
    path = folder / name
    path.write_text(textwrap.dedent(src))
    ns: dict = {}
    exec(compile(path.read_text(), str(path), "exec"), ns)  # the test's own copy of the model
    torch.manual_seed(seed)
    weights = folder / (path.stem + ".safetensors")
    save_file(ns["build"]().state_dict(), str(weights))
    return path, weights


def open_model(tmp_path: Path, data: str = "digits", **kw) -> UserRun:
    path, weights = write_model(tmp_path, **kw)
    return load_user_model(UserModelSpec.parse(f"{path}:build", str(weights), data))


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-a))


# --- the command line's texts ---------------------------------------------------------------------
def test_data_spec_names_and_paths(tmp_path):
    assert DataSpec.parse("digits") == DataSpec("digits")
    assert DataSpec.parse("mnist") == DataSpec("mnist")
    assert DataSpec.parse(f"mnist:{tmp_path}") == DataSpec("mnist", tmp_path.resolve())
    assert DataSpec.parse(f"folder:{tmp_path}").path == tmp_path.resolve()
    assert DataSpec.parse("npz:x.npz").path == Path("x.npz").resolve()
    assert str(DataSpec.parse(f"folder:{tmp_path}")) == f"folder:{tmp_path.resolve()}"
    with pytest.raises(AdapterError, match="must be one of"):
        DataSpec.parse("cifar10")
    with pytest.raises(AdapterError, match="takes no path"):
        DataSpec.parse("digits:/tmp")
    with pytest.raises(AdapterError, match="needs an image folder"):
        DataSpec.parse("folder")
    with pytest.raises(AdapterError, match="needs a .npz file"):
        DataSpec.parse("npz")


def test_model_argument_splits_at_the_factory():
    assert split_model_arg("a/my_vae.py:make") == ("a/my_vae.py", "make")
    assert split_model_arg("a/my_vae.py") == ("a/my_vae.py", "build")
    assert split_model_arg(r"C:\models\my_vae.py") == (r"C:\models\my_vae.py", "build")
    assert split_model_arg("my_vae.py:not-a-name") == ("my_vae.py:not-a-name", "build")


def test_spec_refuses_missing_flags_and_files(tmp_path):
    path, weights = write_model(tmp_path)
    with pytest.raises(AdapterError, match="needs --weights"):
        UserModelSpec.parse(str(path), None, "digits")
    with pytest.raises(AdapterError, match="needs --data"):
        UserModelSpec.parse(str(path), str(weights), None)
    with pytest.raises(AdapterError, match="name a Python file"):
        UserModelSpec.parse(str(weights), str(weights), "digits")
    with pytest.raises(AdapterError, match="does not exist"):
        UserModelSpec.parse(str(tmp_path / "nope.py"), str(weights), "digits")
    pickle = tmp_path / "w.pt"
    torch.save({"a": torch.zeros(1)}, pickle)
    with pytest.raises(CheckpointError, match="pickle"):
        UserModelSpec.parse(str(path), str(pickle), "digits")


# --- the wrapped model ---------------------------------------------------------------------------
def test_decode_and_encode_are_the_users_own(tmp_path):
    run = open_model(tmp_path)
    w = load_numpy(str(tmp_path / "tiny.safetensors"))  # the file, read without the adapter
    assert run.config.latent_dim == 4 and run.config.image_shape == (1, 8, 8)  # found by probing
    assert run.config.arch == "yours" and run.config.class_name == "Tiny"
    z = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    want = _sigmoid(z @ w["dec.weight"].T + w["dec.bias"]).reshape(5, 1, 8, 8)
    with torch.no_grad():
        got = run.model.decode(torch.from_numpy(z)).numpy()
        assert np.allclose(got, want, atol=1e-6)
        ds = run_dataset(run, "test")
        q = run.model.encode(ds.x[:3])
    h = ds.x[:3].numpy().reshape(3, 64) @ w["enc.weight"].T + w["enc.bias"]
    assert isinstance(q, DiagonalGaussian)
    assert np.allclose(q.mean.numpy(), h[:, :4], atol=1e-5)
    assert np.allclose(q.logvar.numpy(), h[:, 4:], atol=1e-5)


def test_bernoulli_log_likelihood_is_the_binary_cross_entropy(tmp_path):
    run = open_model(tmp_path)
    rng = np.random.default_rng(1)
    mu = rng.uniform(0.01, 0.99, (3, 1, 8, 8)).astype(np.float32)
    x = rng.uniform(0, 1, (1, 8, 8)).astype(np.float32)
    want = (x * np.log(mu) + (1 - x) * np.log(1 - mu)).reshape(3, -1).sum(1)
    got = run.model.log_likelihood(torch.from_numpy(mu), torch.from_numpy(x)).numpy()
    assert np.allclose(got, want, rtol=1e-5)


def test_gaussian_log_likelihood_uses_the_models_sigma(tmp_path):
    from scipy.stats import norm

    run = open_model(tmp_path, hooks='likelihood = "gaussian"\n    sigma = 0.2')
    rng = np.random.default_rng(2)
    mu = rng.uniform(0, 1, (2, 1, 8, 8)).astype(np.float32)
    x = rng.uniform(0, 1, (2, 1, 8, 8)).astype(np.float32)
    want = norm.logpdf(x, loc=mu, scale=0.2).reshape(2, -1).sum(1)
    got = run.model.log_likelihood(torch.from_numpy(mu), torch.from_numpy(x)).numpy()
    assert np.allclose(got, want, rtol=1e-4)
    with pytest.raises(AdapterError, match="needs sigma"):
        open_model(tmp_path, hooks='likelihood = "gaussian"')


def test_the_elbo_of_the_app_is_the_users_loss(tmp_path):
    """The per-image ELBO (vae.metrics) with one z drawn by the same generator as here."""
    from vae.metrics import per_image_elbo

    run = open_model(tmp_path)
    w = load_numpy(str(tmp_path / "tiny.safetensors"))
    x = run_dataset(run, "test").x[:4]
    got = per_image_elbo(run.model, x, seed=3).numpy()
    h = x.numpy().reshape(4, 64) @ w["enc.weight"].T + w["enc.bias"]
    mean, logvar = h[:, :4], h[:, 4:]
    eps = torch.randn(4, 4, generator=torch.Generator().manual_seed(3)).numpy()
    z = mean + np.exp(0.5 * logvar) * eps
    mu = _sigmoid(z @ w["dec.weight"].T + w["dec.bias"])
    xf = x.numpy().reshape(4, 64)
    ll = (xf * np.log(mu) + (1 - xf) * np.log(1 - mu)).sum(1)
    kl = -0.5 * (1 + logvar - mean**2 - np.exp(logvar)).sum(1)
    assert np.allclose(got, ll - kl, rtol=1e-4)


@pytest.mark.parametrize(
    "encode_out",
    [
        "h[:, :4], h[:, 4:]",
        "[h[:, :4], h[:, 4:]]",
        "DiagonalGaussian(h[:, :4], h[:, 4:])",
        "torch.distributions.Normal(h[:, :4], torch.exp(0.5 * h[:, 4:]))",
    ],
)
def test_encode_may_return_a_pair_a_gaussian_or_a_normal(tmp_path, encode_out):
    path, weights = write_model(tmp_path, encode_out=encode_out)
    path.write_text("from vae.distributions import DiagonalGaussian\n" + path.read_text())
    run = load_user_model(UserModelSpec.parse(str(path), str(weights), "digits"))
    x = run_dataset(run, "test").x[:2]
    with torch.no_grad():
        q = run.model.encode(x)
    w = load_numpy(str(weights))
    h = x.numpy().reshape(2, 64) @ w["enc.weight"].T + w["enc.bias"]
    assert np.allclose(q.mean.numpy(), h[:, :4], atol=1e-5)
    assert np.allclose(q.logvar.numpy(), h[:, 4:], atol=1e-4)


def test_label_names_and_latent_dim_hooks(tmp_path):
    hooks = 'likelihood = "bernoulli"\n    latent_dim = 4\n    label_names = list("abcdefghij")'
    run = open_model(tmp_path, hooks=hooks)
    ds = run_dataset(run, "test")
    assert ds.label_names == list("abcdefghij") == run.dataset["label_names"]


def test_a_model_without_a_likelihood_says_why(tmp_path):
    run = open_model(tmp_path, hooks="pass")
    assert run.config.likelihood is None
    assert likelihood_missing(run) == NO_LIKELIHOOD
    with pytest.raises(NoLikelihoodError, match="declares no likelihood"):
        run.model.log_likelihood(torch.zeros(1, 1, 8, 8), torch.zeros(1, 8, 8))
    other = tmp_path / "other"
    other.mkdir()
    assert likelihood_missing(open_model(other)) is None  # with a likelihood


def test_tied_weights_and_integer_buffers_load(tmp_path):
    """safetensors' save_model keeps one name of tied tensors; BatchNorm counts are int64."""
    src = """
    import torch
    from torch import nn


    class Tied(nn.Module):
        likelihood = "bernoulli"

        def __init__(self):
            super().__init__()
            self.enc = nn.Linear(64, 8)
            self.norm = nn.BatchNorm1d(8)
            self.dec = nn.Linear(4, 64)
            self.dec2 = self.dec  # the same layer under two names

        def encode(self, x):
            h = self.norm(self.enc(x.flatten(1)))
            return h[:, :4], h[:, 4:]

        def decode(self, z):
            return torch.sigmoid(self.dec2(z)).view(-1, 1, 8, 8)


    def build():
        return Tied()
    """
    path = tmp_path / "tied.py"
    path.write_text(textwrap.dedent(src))
    ns: dict = {}
    exec(compile(path.read_text(), str(path), "exec"), ns)
    model = ns["build"]()
    model.norm.num_batches_tracked += 7
    with torch.no_grad():
        model.norm.running_mean.add_(0.5)
    save_model(model, str(tmp_path / "tied.safetensors"))
    run = load_user_model(
        UserModelSpec.parse(str(path), str(tmp_path / "tied.safetensors"), "digits")
    )
    net = run.model.net
    assert int(net.norm.num_batches_tracked) == 7
    assert torch.equal(net.norm.running_mean, model.norm.running_mean)
    assert torch.equal(net.dec2.weight, model.dec.weight) and net.dec is net.dec2


# --- what is refused, and how it is said ---------------------------------------------------------
def test_weights_that_do_not_fit_the_model_are_named(tmp_path):
    path, weights = write_model(tmp_path)
    save_file({"enc.weight": torch.zeros(8, 64), "enc.bias": torch.zeros(8)}, str(weights))
    with pytest.raises(CheckpointError, match=r"state_dict of Tiny: missing \['dec.bias'"):
        load_user_model(UserModelSpec.parse(str(path), str(weights), "digits"))
    state = {"enc.weight": torch.zeros(8, 63), "enc.bias": torch.zeros(8)}
    state |= {"dec.weight": torch.zeros(64, 4), "dec.bias": torch.zeros(64)}
    save_file(state, str(weights))
    with pytest.raises(CheckpointError, match=r"enc.weight has shape \(8, 63\).*needs \(8, 64\)"):
        load_user_model(UserModelSpec.parse(str(path), str(weights), "digits"))
    state["enc.weight"] = torch.full((8, 64), float("nan"))
    save_file(state, str(weights))
    with pytest.raises(CheckpointError, match="NaN"):
        load_user_model(UserModelSpec.parse(str(path), str(weights), "digits"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"decode_out": "self.dec(z).view(-1, 1, 8, 8)"}, r"image means in \[0, 1\]"),
        ({"decode_out": "torch.sigmoid(self.dec(z))"}, r"must return images \(B, C, H, W\)"),
        ({"decode_out": "torch.sigmoid(self.dec(z)).view(-1, 1, 4, 16)"}, "1 or 3 channels"),
        ({"encode_out": "h"}, "encode.x. must return .mean, logvar."),
        ({"encode_out": "h[:, :4], h[:, :3]"}, r"logvar of shape \(2, 3\)"),
        ({"encode_out": "h[:, :1], h[:, 1:2]"}, "latent size must be in 2..128"),
        ({"hooks": 'likelihood = "poisson"'}, "likelihood must be 'bernoulli' or 'gaussian'"),
        ({"encode_out": "undefined_name"}, r"NameError.*\(tiny.py, line 16\)"),
    ],
)
def test_a_model_that_breaks_the_protocol_is_told_how(tmp_path, change, message):
    with pytest.raises(AdapterError, match=message):
        open_model(tmp_path, **change)


def test_a_missing_or_failing_factory_is_told_how(tmp_path):
    path, weights = write_model(tmp_path)
    with pytest.raises(AdapterError, match="has no 'make'.*after a colon"):
        load_user_model(UserModelSpec.parse(f"{path}:make", str(weights), "digits"))
    path.write_text(path.read_text() + "\n\ndef broken():\n    raise RuntimeError('no GPU')\n")
    with pytest.raises(AdapterError, match=r"broken\(\) failed: RuntimeError: no GPU \(tiny.py"):
        load_user_model(UserModelSpec.parse(f"{path}:broken", str(weights), "digits"))
    path.write_text("import torch\nraise SystemExit(3)\n")
    with pytest.raises(AdapterError, match="importing tiny.py failed: SystemExit"):
        load_user_model(UserModelSpec.parse(str(path), str(weights), "digits"))


def test_data_not_on_disk_needs_a_latent_dim(tmp_path):
    root = tmp_path / "no-data"
    root.mkdir()
    with pytest.raises(AdapterError, match="latent_dim attribute"):
        open_model(tmp_path, data=f"mnist:{root}")
    hooks = 'likelihood = "bernoulli"\n    latent_dim = 4'
    run = open_model(tmp_path, hooks=hooks, data=f"mnist:{root}")  # opens; the pages say why
    assert str(root) in run.data_problem  # where the data was looked for
    assert run.dataset["name"] == "mnist" and run.dataset["image_shape"] == [1, 8, 8]


def test_shapes_are_resized_to_what_decode_draws(tmp_path):
    hooks = 'likelihood = "bernoulli"\n    latent_dim = 4'
    decode = "torch.sigmoid(self.dec(z)).view(-1, 1, 8, 8).repeat_interleave(2, 2)"
    decode += ".repeat_interleave(2, 3)"  # (B, 1, 16, 16)
    pooled = "torch.nn.functional.avg_pool2d(x, 2).flatten(1)"
    run = open_model(tmp_path, hooks=hooks, decode_out=decode, encode_in=pooled, data="shapes")
    assert run.config.image_shape == (1, 16, 16) and run.train.image_size == 16
    assert tuple(run_dataset(run, "test").image_shape) == (1, 16, 16)  # 32 by default


# --- its folder ---------------------------------------------------------------------------------
def test_the_models_folder_links_its_weights(tmp_path):
    run = open_model(tmp_path)
    assert run.path.parent == tmp_path / "cache" / "yours"
    assert run.path.name.startswith("tiny-")
    link = run.path / "model.safetensors"
    assert link.resolve() == (tmp_path / "tiny.safetensors").resolve()
    about = json.loads((run.path / "yours.json").read_text())
    assert about["data"] == "digits" and about["model"].endswith("tiny.py:build")
    with pytest.raises(CheckpointError):  # not a run folder: nothing else can load it
        load_run(run.path)
    again = open_model(tmp_path)  # the same file: the same folder
    assert again.path == run.path
    (tmp_path / "tiny.py").write_text((tmp_path / "tiny.py").read_text() + "\n# edited\n")
    edited = load_user_model(
        UserModelSpec.parse(str(tmp_path / "tiny.py"), str(tmp_path / "tiny.safetensors"), "digits")
    )
    assert edited.path != run.path  # an edited model file starts with fresh caches


# --- the CLIs -------------------------------------------------------------------------------------
def test_evaluate_and_encode_take_the_same_flags(tmp_path, capsys):
    from tests.helpers import digit_photo_png
    from vae import encode, evaluate

    path, weights = write_model(tmp_path)
    flags = ["--model", f"{path}:build", "--weights", str(weights), "--data", "digits"]
    assert evaluate.main([*flags, "--iw-samples", "5", "--limit", "20", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 20 and out["latent_dim"] == 4 and "iwae_nll" in out
    assert out["iwae_nll"] <= -out["elbo"] + 1.0  # k = 5 is about as tight as the ELBO
    photo = tmp_path / "seven.png"
    photo.write_bytes(digit_photo_png())
    assert encode.main([*flags, str(photo), "--k", "3", "--json"]) == 0
    enc = json.loads(capsys.readouterr().out)
    assert len(enc["mean"]) == 4 and len(enc["nearest"]) == 3 and enc["elbo"] is not None
    with pytest.raises(SystemExit) as e:
        evaluate.main([str(tmp_path), *flags])
    assert e.value.code == 2
    assert "not both" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate.main(["--weights", str(weights)])
    assert "go with --model" in capsys.readouterr().err
    assert evaluate.main(["--model", str(path), "--data", "digits"]) == 2
    assert "needs --weights" in capsys.readouterr().err


def test_evaluate_without_a_likelihood_reports_what_it_can(tmp_path, capsys):
    from vae import evaluate

    path, weights = write_model(tmp_path, hooks="pass")
    flags = ["--model", str(path), "--weights", str(weights), "--data", "digits", "--limit", "30"]
    assert evaluate.main(flags) == 0
    text = capsys.readouterr().out
    assert "no likelihood" in text and "declares no likelihood" in text
    assert "active units" in text and "IWAE NLL     " not in text
