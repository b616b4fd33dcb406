"""Hostile run folders and zips: the one reader (`vae.record`, `vae.checkpoint.load_run`) turns
every one into the project's own error with a clear message, or a usable run; an uploaded or
imported run reads no data outside itself; the sidebar picker and the Model library skip a broken
entry with a warning naming it, and never break."""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import threading
import zipfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from tests.helpers import app_test, ok, tiny_digits_checkpoint, tiny_vae
from vae import archive, jobs
from vae.checkpoint import CheckpointError, load_run, save_model
from vae.config import MAX_LAYERS, MAX_PARAMS, ConfigError, ModelConfig
from vae.errors import ExplorerError
from vae.record import RecordError, RunRecord, check_logs, read_logs

DIGITS = {"name": "digits", "image_shape": [1, 8, 8], "preprocessing": {"ink": "ink-high"}}
FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


# --- builders ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A small valid run folder (untrained 8x8 MLP, latent 2) with metrics and both logs."""
    d = tmp_path_factory.mktemp("base") / "run"
    save_model(d, tiny_vae(2, hidden=(16,)), dataset=DIGITS, train={"dataset": "digits"})
    (d / "metrics.json").write_text(json.dumps({"epochs": 1, "test_elbo": -30.0}))
    (d / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "step": 3, "test_elbo": -30.0}) + "\n")
    steps = [{"step": s, "epoch": 0, "elbo": -40.0, "recon": 35.0, "kl": 5.0} for s in (1, 2, 3)]
    (d / "steps.jsonl").write_text("".join(json.dumps(r) + "\n" for r in steps))
    return d


def _config(base: Path, **changes) -> dict:
    cfg = json.loads((base / "config.json").read_text())
    for path, value in changes.items():  # "train__data_dir" sets cfg["train"]["data_dir"]
        *parents, key = path.split("__")
        node = cfg
        for p in parents:
            node = node[p]
        node[key] = value
    return cfg


def _copy(base: Path, dest: Path, **files) -> Path:
    """A copy of `base` at `dest` with some files replaced (bytes, text, or an object as JSON)."""
    shutil.copytree(base, dest)
    for name, content in files.items():
        path = dest / name.replace("_json", ".json").replace("_safetensors", ".safetensors")
        if isinstance(content, (dict, list)):
            content = json.dumps(content)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return dest


def _zip(files: dict[str, bytes], stored: bool = False) -> bytes:
    buf = io.BytesIO()
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in files.items():
            zf.writestr(f"run/{name}", data)
    return buf.getvalue()


def _members(run: Path, **replace: bytes) -> dict[str, bytes]:
    names = ("config.json", "model.safetensors", "metrics.json", "metrics.jsonl", "steps.jsonl")
    files = {n: (run / n).read_bytes() for n in names}
    return {**files, **replace}


def _no_server_path(msg: str, *roots: Path) -> None:
    for root in roots:
        assert str(root) not in msg, msg


def _in_thread(fn, timeout: float = 20.0):
    """fn() in a thread that must finish within `timeout` s: (result or None, error or None)."""
    out: dict = {}

    def target() -> None:
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            out["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "the reader blocked (a FIFO must never be opened for a blocking read)"
    return out.get("value"), out.get("error")


# --- data outside the upload ---------------------------------------------------------------------
@pytest.fixture
def server_secrets(tmp_path) -> dict[str, Path]:
    """A server folder of images and a server .npz: what a hostile config points at."""
    from PIL import Image

    folder = tmp_path / "server" / "photos"
    folder.mkdir(parents=True)
    for i in range(12):
        Image.new("L", (8, 8), color=i * 20).save(folder / f"{i}.png")
    npz = tmp_path / "server" / "secret.npz"
    import numpy as np

    np.savez(npz, x=np.zeros((20, 8, 8), dtype=np.uint8))
    return {"folder": folder, "npz": npz}


@pytest.mark.parametrize("kind", ["folder", "npz"])
def test_an_upload_whose_data_dir_points_outside_it_is_refused(
    base, tmp_path, server_secrets, kind
):
    cfg = _config(base, dataset__name=kind, train__dataset=kind)
    for data_dir in (str(server_secrets[kind]), f"../../server/{server_secrets[kind].name}"):
        cfg["train"]["data_dir"] = data_dir
        blob = _zip(_members(base, **{"config.json": json.dumps(cfg).encode()}))
        with pytest.raises(CheckpointError, match="train.data_dir must be inside the upload") as e:
            archive.extract_zip(blob, tmp_path / "uploads" / "x", origin="upload")
        _no_server_path(str(e.value), tmp_path)
        assert not (tmp_path / "uploads" / "x").exists()
    # the same run trained here (no origin.json) may read its data where it was trained
    local = _copy(base, tmp_path / "local", config_json=cfg)
    assert load_run(local).data_dir == cfg["train"]["data_dir"]


def test_an_imported_run_is_marked_and_reads_no_data_outside_it(base, tmp_path, server_secrets):
    from vae.latents import run_dataset

    dest = jobs.import_zip(archive.export_zip(base), "imported", tmp_path / "runs")
    assert json.loads((dest / "origin.json").read_text())["origin"] == "import"
    run = load_run(dest)
    assert run.confined and run_dataset(run, "test").name == "digits"  # built-in: still works
    # the config is changed on disk after the import: loading refuses it, ...
    cfg = _config(base, dataset__name="folder", train__dataset="folder")
    cfg["train"]["data_dir"] = str(server_secrets["folder"])
    (dest / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="must be inside the upload"):
        load_run(dest)
    # ... and a Run that was already loaded does not read it either
    run.meta = cfg
    with pytest.raises(ExplorerError, match="must be inside the upload"):
        run_dataset(run, "train")


def test_a_symlink_or_dotdot_inside_an_upload_does_not_escape(base, tmp_path, server_secrets):
    up = _copy(base, tmp_path / "cache" / "uploads" / "0123456789abcdef")
    (up / "data").symlink_to(server_secrets["folder"], target_is_directory=True)
    (up / "own").mkdir()
    for data_dir, inside in [("data", False), ("own/../data", False), ("own/../../x", False),
                             ("own", True), ("own/../own", True)]:  # fmt: skip
        cfg = _config(base, dataset__name="folder", train__dataset="folder")
        cfg["train"]["data_dir"] = data_dir
        (up / "config.json").write_text(json.dumps(cfg))
        if inside:  # data inside the upload itself is allowed
            assert load_run(up, confined=True).data_dir == str((up / "own").resolve())
        else:
            with pytest.raises(CheckpointError, match="must be inside the upload"):
                load_run(up, confined=True)


def test_a_folder_in_the_uploads_folder_is_confined_without_its_marker(tmp_path, monkeypatch):
    from vae.ui import models

    monkeypatch.setenv("VAE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("VAE_PUBLIC", raising=False)
    inside = tmp_path / "cache" / "uploads" / "abc"
    inside.mkdir(parents=True)
    (tmp_path / "cache" / "uploads-not").mkdir()
    (inside / "link").symlink_to(tmp_path / "cache" / "uploads-not")
    assert models.is_upload(inside) and models.is_upload(inside / "x")
    assert not models.is_upload(tmp_path / "cache" / "uploads-not")
    assert not models.is_upload(inside / "link")  # where it really is


def test_a_built_in_dataset_name_does_not_cover_a_data_dir_of_another(
    base, tmp_path, server_secrets
):
    folder = str(server_secrets["folder"])  # dataset.name stays "digits"; the trainer and the
    cfg = _config(base, train__dataset="folder", train__data_dir=folder)  # live view read train
    blob = _zip(_members(base, **{"config.json": json.dumps(cfg).encode()}))
    with pytest.raises(CheckpointError, match="train.data_dir must be inside the upload"):
        archive.extract_zip(blob, tmp_path / "x", origin="upload")
    run = load_run(_copy(base, tmp_path / "local", config_json=cfg))
    run.confined = True  # as an imported run that was changed after it was loaded
    with pytest.raises(RecordError, match="must be inside the upload"):
        _ = run.data_dir


def test_a_built_in_dataset_ignores_an_uploads_recorded_data_dir(base, tmp_path):
    from vae.latents import _dataset_args

    cfg = _config(base, train__data_dir="/etc")
    up = _copy(base, tmp_path / "up", config_json=cfg)
    run = load_run(up, confined=True)
    assert run.data_dir is None and _dataset_args(run, None)[1] is None  # the server's own data
    assert load_run(up).data_dir == "/etc"  # a local run keeps what it was trained with


# --- the wrong kind of value ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "edit,match",
    [
        ({"dataset": "mnist"}, "config.json: dataset must be an object"),
        ({"train": "fast"}, "config.json: train must be an object"),
        ({"model": "big"}, "ModelConfig must be a JSON object"),
        ({"dataset__preprocessing": [1]}, "dataset.preprocessing must be an object"),
        ({"dataset__label_names": "0123"}, "dataset.label_names must be a list"),
        ({"dataset__image_shape": [1, 28, 28]}, "dataset.image_shape must be the model's"),
        ({"command": {"rm": 1}}, "config.json: command must be a text"),
        ({"extra": "x"}, "config.json: extra must be an object"),
        ({"format_version": 0}, "format_version must be 1"),
        ({"format_version": True}, "format_version"),
    ],
)
def test_sections_of_the_wrong_kind_are_refused_at_upload(base, tmp_path, edit, match):
    blob = _zip(_members(base, **{"config.json": json.dumps(_config(base, **edit)).encode()}))
    with pytest.raises(CheckpointError, match=match):
        archive.extract_zip(blob, tmp_path / "x", origin="upload")


@pytest.mark.parametrize(
    "text,match",
    [
        ('"latent_dim": "eight"', "latent_dim must be int"),
        ('"latent_dim": Infinity', "not a number JSON allows"),
        ('"latent_dim": NaN', "not a number JSON allows"),
        ('"latent_dim": 1e309', "out of range"),
        ('"latent_dim": 8.5', "latent_dim must be int"),
        ('"latent_dim": true', "latent_dim must be int"),
        ('"latent_dim": 1' + "0" * 5000, "not valid JSON"),
        ('"sigma": -Infinity', "not a number JSON allows"),
        ('"hidden": "400"', "hidden must be tuple"),
        ('"hidden": [16.5]', "hidden must be tuple"),
        ('"image_shape": [1, 8]', "image_shape must be"),
        ('"arch": ["mlp"]', "arch must be str"),
    ],
)
def test_non_numeric_or_infinite_model_values_get_clear_errors(base, tmp_path, text, match):
    raw = (base / "config.json").read_text()
    key = text.split(":")[0]
    start = raw.index(key)
    end = raw.index("\n", start)
    line = raw[start:end]
    bad = raw.replace(line, text + ("," if line.rstrip().endswith(",") else ""), 1)
    if key == '"hidden"' or key == '"image_shape"':  # a multi-line list: cut to its end
        stop = raw.index("]", start) + 1
        bad = raw[:start] + text + raw[stop:]
    run = _copy(base, tmp_path / "r", config_json=bad)
    with pytest.raises(CheckpointError, match=match) as e:
        load_run(run)
    assert "Traceback" not in str(e.value)
    with pytest.raises(RecordError, match=match):
        RunRecord.read(run)


@pytest.mark.parametrize(
    "train,match",
    [
        ({"lr": "fast"}, "lr must be float"),
        ({"lr": 1e300}, "lr must be in"),
        ({"epochs": -1}, "epochs must be in"),
        ({"epochs": 10**12}, "epochs must be in"),
        ({"seed": 2**70}, "seed must be in"),
        ({"data_dir": 5}, "data_dir must be str"),
        ({"binarize": "no"}, "binarize must be bool"),
        ({"image_size": 4096}, "image_size must be in"),
    ],
)
def test_train_values_of_the_wrong_kind_or_range_are_refused(base, tmp_path, train, match):
    cfg = _config(base)
    cfg["train"].update(train)
    run = _copy(base, tmp_path / "r", config_json=cfg)
    with pytest.raises(CheckpointError, match=match):
        load_run(run)


def test_duplicate_keys_non_utf8_and_lone_surrogates_are_refused(base, tmp_path):
    raw = (base / "config.json").read_text()
    cases = {
        "twice": (raw.replace('"format_version": 1', '"format_version": 1, "format_version": 1'),
                  "appears twice"),
        "bytes": (raw.encode().replace(b'"digits"', b'"dig\xffits"', 1), "not UTF-8"),
        "surrogate": (raw.replace('"digits"', '"\\ud800"', 1), "lone surrogate"),
    }  # fmt: skip
    for name, (content, match) in cases.items():
        run = _copy(base, tmp_path / name, config_json=content)
        with pytest.raises(CheckpointError, match=match):
            load_run(run)
    bom = _copy(base, tmp_path / "bom", config_json=b"\xef\xbb\xbf" + raw.encode())
    assert load_run(bom).config.latent_dim == 2  # a BOM (Windows editors) is fine


def test_metrics_of_the_wrong_kind_are_skipped_by_the_library_with_a_warning(base, tmp_path):
    root = tmp_path / "runs"
    _copy(base, root / "good")
    _copy(base, root / "bad", metrics_json={"epochs": "many", "test_elbo": -3.0})
    _copy(base, root / "worse", metrics_json={"epochs": 2, "wall_time_s": "a day"})
    problems: list[str] = []
    infos = jobs.list_runs(root, problems)
    assert [r.name for r in infos] == ["good"] and infos[0].epochs == 1
    assert sorted(problems) == [
        "bad: metrics.json: epochs must be a whole number >= 0, got 'many'",
        "worse: metrics.json: wall_time_s must be a number >= 0, got 'a day'",
    ]
    _no_server_path(" ".join(problems), tmp_path)
    with pytest.raises(RecordError, match="epochs"):
        jobs.run_info(root / "bad")


# --- size: refused from the config, before anything is allocated --------------------------------
@pytest.fixture
def no_model_built(monkeypatch):
    """Makes building a VAE fail the test: a refusal must come before it."""
    from vae.model import VAE

    def refuse(self, config):
        raise AssertionError("a VAE was built before the config and weights were checked")

    monkeypatch.setattr(VAE, "__init__", refuse)


@pytest.mark.parametrize(
    "hidden,match",
    [
        ([64] * 100_000, f"at most {MAX_LAYERS} hidden layers"),
        ([4096] * MAX_LAYERS, "weights; the limit is"),
    ],
)
def test_a_huge_model_is_refused_from_its_config_before_allocation(
    base, tmp_path, no_model_built, hidden, match
):
    import tracemalloc

    cfg = _config(base, model__hidden=hidden)
    run = _copy(base, tmp_path / "r", config_json=cfg)
    assert (run / "config.json").stat().st_size < 1 << 20  # a small file ...
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=match):
            load_run(run)  # ... that would build a model of gigabytes
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20


def test_the_parameter_bound_counts_what_a_built_model_holds():
    from vae.model import VAE

    for kw in [
        {"arch": "mlp", "hidden": (16, 8), "image_shape": (3, 12, 10)},
        {"arch": "conv", "hidden": (4, 8, 8), "dense": 0, "image_shape": (1, 28, 28)},
        {"arch": "conv", "hidden": (4,), "dense": 32, "likelihood": "gaussian",
         "sigma_mode": "learned", "image_shape": (3, 9, 64)},
    ]:  # fmt: skip
        cfg = ModelConfig(latent_dim=3, **kw)
        built = VAE(cfg)
        assert cfg.param_count() == sum(p.numel() for p in built.parameters())
        assert cfg.state_shapes() == {k: tuple(v.shape) for k, v in built.state_dict().items()}
    with pytest.raises(ConfigError, match="weights; the limit"):
        ModelConfig(image_shape=(3, 64, 64), hidden=(4096,) * 2)  # 12288*4096*2 + ... > 50M
    assert MAX_PARAMS >= 50_000_000 > ModelConfig(image_shape=(3, 64, 64)).param_count()


def test_weights_of_other_shapes_are_refused_from_the_header_before_building(
    base, tmp_path, monkeypatch, no_model_built
):
    import vae.checkpoint as ck

    def no_read(*a, **k):
        raise AssertionError("the tensors were read before the header was checked")

    monkeypatch.setattr(ck, "load", no_read)
    cfg = _config(base, model__latent_dim=3)  # the weights are for latent 2
    run = _copy(base, tmp_path / "r", config_json=cfg)
    with pytest.raises(CheckpointError, match=r"model.safetensors: tensor .* the config needs"):
        load_run(run)
    cfg = _config(base, model__hidden=[16, 16])  # a layer the weights lack
    run = _copy(base, tmp_path / "r2", config_json=cfg)
    with pytest.raises(CheckpointError, match="does not match its config: missing"):
        load_run(run)


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2, torch.int64, torch.bool])
def test_weights_of_an_unsupported_dtype_are_refused(base, tmp_path, dtype):
    run = _copy(base, tmp_path / "r")
    state = load_run(base).model.state_dict()
    save_file({k: v.to(dtype) for k, v in state.items()}, run / "model.safetensors")
    with pytest.raises(CheckpointError, match="dtype .*; weights must be float16"):
        load_run(run)


def test_half_and_double_weights_load(base, tmp_path):
    want = load_run(base).model.state_dict()
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        run = _copy(base, tmp_path / str(dtype))
        save_file({k: v.to(dtype) for k, v in want.items()}, run / "model.safetensors")
        got = load_run(run).model.state_dict()
        assert all(torch.allclose(got[k], want[k].to(dtype).float()) for k in want)


# --- files that are not files --------------------------------------------------------------------
def test_deep_nesting_is_refused(base, tmp_path):
    raw = (base / "config.json").read_text()
    for depth, match in [(100_000, "nested too deeply"), (30, "nested more than 20")]:
        deep = raw.rstrip().rstrip("}") + ', "extra": {"a": ' + "[" * depth + "]" * depth + "}}"
        run = _copy(base, tmp_path / f"d{depth}", config_json=deep)
        with pytest.raises(CheckpointError, match=match):
            load_run(run)
    ok_depth = raw.rstrip().rstrip("}") + ', "extra": {"a": [[[1]]]}}'
    assert load_run(_copy(base, tmp_path / "ok", config_json=ok_depth)).config.latent_dim == 2


def test_a_config_that_is_a_folder_or_a_symlink_loop_is_explained(base, tmp_path, monkeypatch):
    from vae.ui import models

    uploads = tmp_path / "cache" / "uploads"
    folder = _copy(base, uploads / "aaaaaaaaaaaaaaaa")
    (folder / "config.json").unlink()
    (folder / "config.json").mkdir()
    loop = _copy(base, uploads / "bbbbbbbbbbbbbbbb")
    (loop / "config.json").unlink()
    (loop / "config.json").symlink_to(loop / "config.json")
    with pytest.raises(CheckpointError, match="config.json is a folder, not a file"):
        load_run(folder)
    with pytest.raises(CheckpointError, match="config.json cannot be opened: too many levels"):
        load_run(loop)
    for k in ("assets", "runs"):
        monkeypatch.setenv(f"VAE_{k.upper()}_DIR", str(tmp_path / k))
    monkeypatch.setenv("VAE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("VAE_PUBLIC", raising=False)
    entries, problems = models.discover()
    assert entries == [] and sorted(problems) == [
        "uploaded model aaaaaaaa: config.json is a folder, not a file",
        "uploaded model bbbbbbbb: config.json cannot be opened: too many levels of symbolic links",
    ]


@pytest.mark.parametrize("name", ["model.safetensors", "config.json", "metrics.json"])
def test_a_fifo_in_a_run_folder_is_refused_without_blocking(base, tmp_path, name):
    run = _copy(base, tmp_path / "r")
    (run / name).unlink()
    os.mkfifo(run / name)
    _, err = _in_thread(lambda: load_run(run))
    assert isinstance(err, CheckpointError) and "not a regular file" in str(err), err
    _, err = _in_thread(lambda: RunRecord.read(run))
    if name != "model.safetensors":
        assert isinstance(err, RecordError) and "not a regular file" in str(err), err
    (run / "metrics.jsonl").unlink()
    os.mkfifo(run / "metrics.jsonl")
    _, err = _in_thread(lambda: read_logs(run))
    assert isinstance(err, RecordError), err


def test_oversize_json_is_refused_before_it_is_parsed(base, tmp_path, monkeypatch):
    import vae.runjson as rj

    loads = json.loads

    def no_parse(text, **k):
        assert len(text) < 100_000, "an oversize file was parsed"
        return loads(text, **k)

    cfg = _config(base, command="x" * (1 << 20))  # 1 MB of text: over config.json's limit
    big_cfg = _copy(base, tmp_path / "r", config_json=cfg)
    big_metrics = _copy(base, tmp_path / "m", metrics_json={"note": "x" * (5 << 20)})
    log = tmp_path / "big.jsonl"
    log.write_text('{"epoch": 1}\n' * 200)
    monkeypatch.setattr(rj.json, "loads", no_parse)
    with pytest.raises(CheckpointError, match=r"config.json is 1,048,\d{3} bytes, over the limit"):
        load_run(big_cfg)
    with pytest.raises(RecordError, match=r"metrics.json is 5,242,\d{3} bytes, over the limit"):
        RunRecord.read(big_metrics)
    with pytest.raises(RecordError, match="big.jsonl is 2,600 bytes, over the limit of 1,000"):
        rj.read_jsonl(log, limit=1000)


# --- zips ----------------------------------------------------------------------------------------
def test_a_zip_with_a_bad_crc_is_a_clear_error(base, tmp_path):
    good = _zip(_members(base), stored=True)
    at = good.index(b'"latent_dim"') + 2
    bad = good[:at] + bytes([good[at] ^ 0x20]) + good[at + 1 :]  # one letter's case flipped
    with pytest.raises(CheckpointError, match="the zip is damaged: Bad CRC-32"):
        archive.extract_zip(bad, tmp_path / "runs" / "x")
    assert [p.name for p in (tmp_path / "runs").iterdir()] == []
    assert archive.extract_zip(good, tmp_path / "runs" / "y").name == "y"  # the control


def test_encrypted_or_oddly_compressed_members_are_refused(base):
    blob = bytearray(_zip(_members(base), stored=True))
    cd = blob.rindex(b"PK\x01\x02")  # the last central directory entry: set its encrypted bit
    blob[cd + 8] |= 0x1
    with pytest.raises(CheckpointError, match="is encrypted"):
        archive.check_zip(bytes(blob))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_LZMA) as zf:
        for name, data in _members(base).items():
            zf.writestr(f"run/{name}", data)
    with pytest.raises(CheckpointError, match="compression method"):
        archive.check_zip(buf.getvalue())


def test_an_upload_with_a_broken_log_line_is_refused_but_a_torn_last_line_is_not(base, tmp_path):
    steps = (base / "steps.jsonl").read_bytes()
    torn = _zip(_members(base, **{"steps.jsonl": steps + b'{"step": 4, "ep'}))
    assert archive.extract_zip(torn, tmp_path / "a").is_dir()
    for bad, match in [
        (steps.replace(b'"elbo": -40.0', b'"elbo": "low"', 1), "steps.jsonl line 1: elbo"),
        (b"[1, 2]\n" + steps, "steps.jsonl line 1 is an array"),
        (b"{nope\n" + steps, "steps.jsonl line 1 is not valid JSON"),
    ]:
        with pytest.raises(CheckpointError, match=match):
            archive.extract_zip(_zip(_members(base, **{"steps.jsonl": bad})), tmp_path / "b")
    assert not (tmp_path / "b").exists()


# --- property-based: any bytes give a run or the project's own error ------------------------------
def _flips(data: bytes):
    """`data` with a few bytes changed, cut, or garbage: near-valid inputs reach deeper checks."""
    edits = st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), max_size=6)

    def apply(args) -> bytes:
        edits, cut = args
        b = bytearray(data)
        for i, v in edits:
            b[i] = v
        return bytes(b[:cut])

    return st.tuples(edits, st.integers(0, len(data))).map(apply)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory, base) -> Path:
    return _copy(base, tmp_path_factory.mktemp("fuzz") / "run")


def _run_or_own_error(run: Path) -> None:
    try:
        loaded = load_run(run)
    except CheckpointError as e:
        _no_server_path(str(e), run)
        assert str(e)
    else:
        z = torch.zeros(1, loaded.config.latent_dim)
        assert loaded.model.decode(z).shape[1:] == loaded.config.image_shape
    try:
        rec = RunRecord.read(run)
    except RecordError:
        return
    assert isinstance(rec.epochs, int) and rec.model.latent_dim >= 2
    str(rec.dataset.get("name") or "?").encode("utf-8")  # what the picker shows is text


@FUZZ
@given(st.data())
def test_any_bytes_as_config_json(base, fuzz_dir, data):
    good = (base / "config.json").read_bytes()
    blob = data.draw(st.binary(max_size=600) | _flips(good))
    (fuzz_dir / "config.json").write_bytes(blob)
    _run_or_own_error(fuzz_dir)


FIELDS = [
    "model", "model__latent_dim", "model__hidden", "model__image_shape", "model__arch",
    "model__sigma", "dataset", "dataset__name", "dataset__label_names", "dataset__preprocessing",
    "train", "train__data_dir", "train__lr", "train__epochs", "train__binarize", "train__seed",
    "train__image_size", "command", "created", "extra", "format_version",
]  # fmt: skip


@FUZZ
@given(st.sampled_from(FIELDS), JSON)
def test_any_json_value_in_any_config_field(base, fuzz_dir, field, value):
    cfg = _config(base, **{field: value})
    (fuzz_dir / "config.json").write_text(json.dumps(cfg))  # NaN/Infinity written as literals
    _run_or_own_error(fuzz_dir)


METRIC_KEYS = ["epochs", "wall_time_s", "device", "test_elbo", "test_nll", "evaluation",
               "test_kl_per_dim", "state", "step"]  # fmt: skip


@FUZZ
@given(
    st.binary(max_size=300)
    | st.dictionaries(st.sampled_from(METRIC_KEYS) | st.text(max_size=6), JSON, max_size=5).map(
        lambda d: json.dumps(d).encode()
    )
)
def test_any_bytes_as_metrics_json(base, fuzz_dir, blob):
    from vae.ui import training

    shutil.copy(base / "config.json", fuzz_dir / "config.json")
    (fuzz_dir / "metrics.json").write_bytes(blob)
    try:
        info = jobs.run_info(fuzz_dir)
    except RecordError as e:
        _no_server_path(str(e), fuzz_dir)
        return
    assert isinstance(info.epochs, int) and isinstance(info.device, str)
    training.duration(info.wall_time_s)  # what the library's table shows
    if info.score_value is not None:
        assert math.isfinite(info.score_value)


LOG_KEYS = ["epoch", "step", "elbo", "recon", "kl", "test_elbo", "test_kl", "test_kl_per_dim",
            "total_steps", "beta"]  # fmt: skip
LINES = st.lists(
    st.dictionaries(st.sampled_from(LOG_KEYS), JSON | st.integers(0, 50), max_size=8).map(
        json.dumps
    )
    | st.text(max_size=20),
    max_size=6,
).map(lambda lines: "\n".join(lines).encode())


@FUZZ
@given(st.binary(max_size=300) | LINES, st.binary(max_size=300) | LINES)
def test_any_bytes_as_logs_draw_or_are_refused(fuzz_dir, epochs_log, steps_log):
    from vae.ui.training.figures import compare_figure, curves_figure, kl_heatmap

    (fuzz_dir / "metrics.jsonl").write_bytes(epochs_log)
    (fuzz_dir / "steps.jsonl").write_bytes(steps_log)
    epochs, steps = read_logs(fuzz_dir)  # lines are skipped, never an error
    curves_figure(steps, epochs)
    kl_heatmap(epochs)
    compare_figure({"run": (steps, epochs)})
    try:
        check_logs(fuzz_dir)  # an upload's logs: every line usable, or refused
    except RecordError as e:
        assert str(e).startswith(("metrics.jsonl", "steps.jsonl")), e


@FUZZ
@given(st.data())
def test_any_bytes_as_weights(base, fuzz_dir, data):
    for name in ("config.json", "metrics.json"):
        shutil.copy(base / name, fuzz_dir / name)
    good = (base / "model.safetensors").read_bytes()
    head = _flips(good[:400]).map(lambda b: b + good[400:])  # the header, mostly
    (fuzz_dir / "model.safetensors").write_bytes(data.draw(st.binary(max_size=300) | head))
    _run_or_own_error(fuzz_dir)


@FUZZ
@given(st.data())
def test_any_damaged_zip_unpacks_or_is_refused(base, tmp_path_factory, data):
    good = archive.export_zip(base, full=True)
    blob = data.draw(_flips(good))
    dest = tmp_path_factory.mktemp("z") / "run"
    try:
        archive.extract_zip(blob, dest)
    except CheckpointError as e:
        _no_server_path(str(e), dest.parent)
        assert not dest.exists()
    else:
        load_run(dest)


# --- the app: a broken entry is skipped with a warning, for every new visitor -------------------
@pytest.fixture
def app_dirs(tmp_path, base) -> dict[str, Path]:
    tiny_digits_checkpoint(tmp_path / "assets" / "digits-mlp", latent_dim=2, steps=5)
    (tmp_path / "runs").mkdir()
    uploads = tmp_path / "cache" / "uploads"
    _copy(base, uploads / "1111aaaa2222bbbb", config_json=_config(base, dataset="mnist"))
    _copy(base, uploads / "3333cccc4444dddd", metrics_json={"epochs": "many"})
    link = _config(base, dataset__name="[Click here](https://evil.example)")
    _copy(base, uploads / "5555eeee6666ffff", config_json=link)
    _copy(base, tmp_path / "runs" / "bad-train", config_json=_config(base, train="x"))
    _copy(base, tmp_path / "runs" / "good")
    return {"assets": tmp_path / "assets", "runs": tmp_path / "runs", "cache": tmp_path / "cache",
            "root": tmp_path}  # fmt: skip


def test_broken_uploads_do_not_break_the_sidebar_for_a_new_session(app_dirs, monkeypatch):
    monkeypatch.delenv("VAE_PUBLIC", raising=False)
    for _ in range(2):  # every new visitor
        at = app_test(app_dirs, monkeypatch)
        ok(at)
        warnings = [w.value for w in at.sidebar.warning]
        assert any(
            "Skipped a model folder: uploaded model 1111aaaa: config.json: dataset must be an "
            "object, got 'mnist'" in w
            for w in warnings
        ), warnings
        assert any("uploaded model 3333cccc: metrics.json: epochs" in w for w in warnings)
        assert any("run model 'bad-train': config.json: train must be" in w for w in warnings)
        # a hostile value is quoted as written, never rendered as a link
        assert any(r"got '\[Click here\]\(https://evil.example\)'" in w for w in warnings)
        assert not any("[Click here](" in w for w in warnings)
        _no_server_path(" ".join(warnings), app_dirs["root"])
        options = at.sidebar.selectbox(key="model").options
        assert any("digits-mlp" in o for o in options) and any("good" in o for o in options)
        assert not any("1111aaaa" in o or "bad-train" in o for o in options)


def test_the_library_skips_a_broken_run_with_a_warning(app_dirs, monkeypatch):
    monkeypatch.delenv("VAE_PUBLIC", raising=False)
    _copy(app_dirs["runs"] / "good", app_dirs["runs"] / "many", metrics_json={"epochs": "many"})
    at = app_test(app_dirs, monkeypatch)
    at.switch_page("pages/runs.py").run()
    assert not at.exception
    warnings = [w.value for w in at.main.warning]
    assert "Skipped a run folder: many: metrics.json: epochs must be a whole number >= 0, got " \
           "'many'" in warnings, warnings  # fmt: skip
    assert any(w.startswith("Skipped a run folder: bad-train: config.json") for w in warnings)
    (table,) = at.dataframe
    assert sorted(table.value["Name"]) == ["digits-mlp", "good"]
