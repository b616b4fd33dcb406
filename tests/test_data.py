"""Dataset loaders: digits, shapes, folder, npz, MNIST (IDX) and dataset status. Tiny data only."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, features

from vae.data import INK_HIGH, INK_LOW, DatasetError, load_dataset
from vae.data.folder import load_folder
from vae.data.mnist import ALL_FILES, IMAGE_MAGIC, LABEL_MAGIC, load_idx_dataset
from vae.data.npz import load_npz
from vae.data.shapes import FACTOR_NAMES, FACTOR_SIZES, load_shapes, render
from vae.data.status import dataset_status, download


# --- digits --------------------------------------------------------------------------------------
def test_digits_shapes_range_and_split():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert train.x.shape[1:] == (1, 8, 8) and test.x.shape[1:] == (1, 8, 8)
    assert len(train) + len(test) == 1797 and len(test) == round(1797 * 0.15)
    assert 0.0 <= float(train.x.min()) and float(train.x.max()) <= 1.0
    assert set(train.y.tolist()) == set(range(10))


def test_digits_match_scikit_learns_loader():
    from sklearn.datasets import load_digits as sk_load

    ref = sk_load()
    ours = load_dataset("digits", "all")
    assert torch.equal(ours.x[:, 0] * 16, torch.from_numpy(ref.images).float())
    assert torch.equal(ours.y, torch.from_numpy(ref.target).long())


# --- shapes --------------------------------------------------------------------------------------
def test_shapes_deterministic_by_seed_and_split():
    a = load_shapes("all", image_size=16, seed=3, n=300)
    b = load_shapes("all", image_size=16, seed=3, n=300)
    c = load_shapes("all", image_size=16, seed=4, n=300)
    assert torch.equal(a.x, b.x) and torch.equal(a.factors, b.factors)
    assert not torch.equal(a.factors, c.factors)
    train, test = load_shapes("train", 16, 3, 300), load_shapes("test", 16, 3, 300)
    assert len(train) + len(test) == 300 and len(test) == 45
    rows = {tuple(r) for r in torch.cat([train.factors, test.factors]).tolist()}
    assert rows == {tuple(r) for r in a.factors.tolist()}  # a partition of the same images


def test_shapes_factors_labels_and_range():
    ds = load_shapes("all", image_size=32, seed=0, n=500)
    assert ds.x.shape == (500, 1, 32, 32) and ds.x.dtype == torch.float32
    assert ds.factors.shape == (500, 5) and ds.factors.dtype == torch.int64
    assert ds.factor_names == FACTOR_NAMES and ds.factor_sizes == FACTOR_SIZES
    assert (ds.factors >= 0).all() and (ds.factors < torch.tensor(FACTOR_SIZES)).all()
    assert len({tuple(r) for r in ds.factors.tolist()}) == 500  # distinct combinations
    assert torch.equal(ds.y, ds.factors[:, 0])
    assert ds.label_names == ["square", "ellipse", "heart"]
    assert ds.ink == INK_HIGH and ds.binary_like
    assert float(ds.x.min()) == 0.0 and float(ds.x.max()) == 1.0
    assert (ds.x.sum(dim=(1, 2, 3)) > 3).all()  # every image shows a shape
    assert ((ds.x > 0.05) & (ds.x < 0.95)).any()  # anti-aliased edges


@pytest.mark.parametrize("size", [16, 64])
def test_shapes_sizes_accepted(size):
    ds = load_shapes("all", image_size=size, n=20)
    assert ds.x.shape == (20, 1, size, size)
    edge = torch.cat([ds.x[..., 0, :], ds.x[..., -1, :], ds.x[..., :, 0], ds.x[..., :, -1]], -1)
    assert float(edge.max()) < 0.5  # shapes stay inside the frame


@pytest.mark.parametrize("size", [15, 65, 0, 32.0])
def test_shapes_bad_size_refused(size):
    with pytest.raises(DatasetError, match="16 to 64"):
        load_shapes("train", image_size=size, n=20)


def test_shapes_bad_n_refused():
    with pytest.raises(DatasetError, match="distinct"):
        load_shapes("train", n=10**6)


def test_shapes_each_factor_changes_the_image():
    base = np.array([2, 5, 0, 4, 4])  # a large heart in the middle
    for f, size in enumerate(FACTOR_SIZES):
        variants = np.repeat(base[None], size, axis=0)
        variants[:, f] = np.arange(size)
        images = render(variants, 32).reshape(size, -1)
        for i in range(size):
            for j in range(i + 1, size):
                assert np.abs(images[i] - images[j]).sum() > 1.0, (FACTOR_NAMES[f], i, j)


# --- folder --------------------------------------------------------------------------------------
def save(path: Path, im: Image.Image, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, **kw)
    return path


def dark_on_light(size=(20, 12)) -> Image.Image:
    im = Image.new("L", size, 255)
    im.paste(0, (4, 3, 10, 9))
    return im


def test_folder_class_subdirs(tmp_path):
    for i in range(3):
        save(tmp_path / "b_cats" / f"{i}.png", dark_on_light())
    for i in range(2):
        save(tmp_path / "a_dogs" / "nested" / f"{i}.png", dark_on_light())
    (tmp_path / "notes.txt").write_text("not an image")
    ds = load_folder(tmp_path, "all", image_size=16)
    assert ds.label_names == ["a_dogs", "b_cats"]
    assert sorted(ds.y.tolist()) == [0, 0, 1, 1, 1]
    assert ds.x.shape == (5, 1, 16, 16) and ds.ink == INK_LOW
    train, test = load_folder(tmp_path, "train", 16), load_folder(tmp_path, "test", 16)
    assert len(train) + len(test) == 5


def test_folder_flat_is_unlabelled_and_ink_high(tmp_path):
    for i in range(4):
        save(tmp_path / f"{i}.png", Image.new("L", (10, 10), 0))
    ds = load_dataset("folder", "all", tmp_path, image_size=8)
    assert ds.y is None and ds.label_names is None
    assert ds.x.shape == (4, 1, 8, 8) and ds.ink == INK_HIGH


def test_folder_all_formats_animated_gif_and_alpha(tmp_path):
    formats = [("a.png", {}), ("b.jpg", {"quality": 95}), ("c.bmp", {})]
    if features.check("webp"):
        formats.append(("d.webp", {"lossless": True}))
    for name, kw in formats:
        save(tmp_path / name, dark_on_light().convert("RGB"), **kw)
    frames = [Image.new("L", (12, 12), 255), Image.new("L", (12, 12), 0)]
    save(tmp_path / "e.gif", frames[0], save_all=True, append_images=frames[1:], duration=50)
    save(tmp_path / "f.png", Image.new("RGBA", (12, 12), (0, 0, 0, 0)))  # fully transparent
    ds = load_folder(tmp_path, "all", image_size=12)
    assert len(ds) == len(formats) + 2
    assert ds.x.shape[1] == 1  # all gray (RGB files with equal channels count as gray)
    order = sorted(p.name for p in tmp_path.iterdir())
    gif, alpha = ds.x[order.index("e.gif")], ds.x[order.index("f.png")]
    assert float(gif.min()) == 1.0  # first frame (white), not the black second frame
    assert float(alpha.min()) == 1.0  # transparency flattened onto white
    assert ds.extra["skipped_files"] == 0


def test_folder_colour_and_forced_channels(tmp_path):
    save(tmp_path / "gray.png", dark_on_light())
    save(tmp_path / "red.png", Image.new("RGB", (9, 9), (255, 0, 0)))
    ds = load_folder(tmp_path, "all", image_size=8)
    assert ds.x.shape == (2, 3, 8, 8)
    red = ds.x[1]
    assert float(red[0].min()) == 1.0 and float(red[1].max()) == 0.0
    assert load_folder(tmp_path, "all", 8, channels=1).x.shape == (2, 1, 8, 8)
    with pytest.raises(DatasetError, match="channels"):
        load_folder(tmp_path, "all", 8, channels=2)


def test_folder_skips_corrupt_file(tmp_path):
    save(tmp_path / "good1.png", dark_on_light())
    save(tmp_path / "good2.png", dark_on_light())
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.warns(UserWarning, match="skipped 1"):
        ds = load_folder(tmp_path, "all", image_size=8)
    assert len(ds) == 2 and ds.extra["skipped_files"] == 1


def test_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="no images found"):
        load_folder(tmp_path, "train")
    with pytest.raises(DatasetError, match="does not exist"):
        load_folder(tmp_path / "nope", "train")
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="none of the 1 image files"):
        load_folder(tmp_path, "train")
    with pytest.raises(DatasetError, match="needs --data-dir"):
        load_dataset("folder", "train")


# --- npz -----------------------------------------------------------------------------------------
def test_npz_uint8_gray(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (10, 12, 14), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x)
    ds = load_npz(tmp_path / "d.npz", "all")
    assert ds.x.shape == (10, 1, 12, 14) and ds.y is None
    assert torch.allclose(ds.x[:, 0], torch.from_numpy(x).float() / 255)


def test_npz_float_rgb_with_labels(tmp_path):
    x = np.random.default_rng(0).random((20, 8, 8, 3)).astype(np.float32)
    y = np.arange(20) % 4
    names = np.array(["w", "x", "y", "z"])
    np.savez_compressed(tmp_path / "d.npz", x=x, y=y, label_names=names)
    ds = load_dataset("npz", "all", tmp_path / "d.npz")
    assert ds.x.shape == (20, 3, 8, 8)
    assert torch.allclose(ds.x.permute(0, 2, 3, 1), torch.from_numpy(x))
    assert ds.y.tolist() == y.tolist() and ds.label_names == ["w", "x", "y", "z"]
    train, test = load_npz(tmp_path / "d.npz", "train"), load_npz(tmp_path / "d.npz", "test")
    assert len(train) == 17 and len(test) == 3


def test_npz_labels_without_names(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 8, 8), np.uint8), y=np.array([0, 2, 1, 2]))
    assert load_npz(tmp_path / "d.npz", "all").label_names == ["0", "1", "2"]


def test_npz_object_array_refused(tmp_path):
    x = np.empty(3, dtype=object)
    x[:] = [np.zeros((8, 8)), "a", None]
    np.savez(tmp_path / "d.npz", x=x)
    with pytest.raises(DatasetError, match="pickle"):
        load_npz(tmp_path / "d.npz", "train")


@pytest.mark.parametrize(
    "x, match",
    [
        (np.zeros((4, 8), np.uint8), "expected"),
        (np.zeros((4, 3, 8, 8), np.uint8), "channels-first"),
        (np.zeros((4, 8, 8, 2), np.uint8), "expected"),
        (np.zeros((4, 7, 8), np.uint8), "8..64"),
        (np.zeros((4, 65, 8), np.uint8), "8..64"),
        (np.full((4, 8, 8), 2.0), r"\[0, 1\]"),
        (np.full((4, 8, 8), np.nan), "NaN"),
        (np.zeros((4, 8, 8), np.int32), "dtype int32"),
    ],
)
def test_npz_bad_x_refused(tmp_path, x, match):
    np.savez(tmp_path / "d.npz", x=x)
    with pytest.raises(DatasetError, match=match):
        load_npz(tmp_path / "d.npz", "train")


def test_npz_bad_file_and_labels_refused(tmp_path):
    np.savez(tmp_path / "nox.npz", images=np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(DatasetError, match="no array named 'x'.*images"):
        load_npz(tmp_path / "nox.npz", "train")
    np.savez(tmp_path / "y.npz", x=np.zeros((4, 8, 8), np.uint8), y=np.zeros(3, np.int64))
    with pytest.raises(DatasetError, match="y must be 4 integer labels"):
        load_npz(tmp_path / "y.npz", "train")
    np.save(tmp_path / "single.npy", np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(DatasetError, match="single array"):
        load_npz(tmp_path / "single.npy", "train")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 broken zip")
    with pytest.raises(DatasetError, match="not a readable"):
        load_npz(tmp_path / "junk.npz", "train")
    with pytest.raises(DatasetError, match="does not exist"):
        load_npz(tmp_path / "missing.npz", "train")


# --- MNIST (IDX) ---------------------------------------------------------------------------------
def shared_mnist() -> Path:
    root = os.environ.get("VAE_DATA_DIR")
    if not root:
        pytest.skip("VAE_DATA_DIR is not set; real MNIST is needed for this test")
    if any(not (Path(root) / "mnist" / f).is_file() for f in ALL_FILES):
        pytest.skip(f"MNIST IDX files are not in {root}/mnist")
    return Path(root)


def test_mnist_from_vae_data_dir():
    shared_mnist()
    train = load_dataset("mnist", "train", download=False)  # found through $VAE_DATA_DIR
    test = load_idx_dataset("mnist", "test", download=False)
    assert train.x.shape == (60000, 1, 28, 28) and test.x.shape == (10000, 1, 28, 28)
    assert train.y.shape == (60000,) and train.y.dtype == torch.int64
    assert set(train.y.unique().tolist()) == set(range(10)) == set(test.y.unique().tolist())
    assert train.y[:5].tolist() == [5, 0, 4, 1, 9]  # the canonical first training labels
    assert float(train.x.min()) == 0.0 and float(train.x.max()) == 1.0
    assert train.ink == INK_HIGH and train.binary_like and train.label_names[3] == "3"


def idx_bytes(magic: int, array: np.ndarray) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fake_mnist(root: Path, n: int = 3, image_magic: int = IMAGE_MAGIC, **over) -> Path:
    folder = root / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    images = (np.arange(n * 28 * 28).reshape(n, 28, 28) % 256).astype(np.uint8)
    labels = np.arange(n) % 10
    for split in ("train", "t10k"):
        data = {
            f"{split}-images-idx3-ubyte.gz": idx_bytes(image_magic, images),
            f"{split}-labels-idx1-ubyte.gz": idx_bytes(LABEL_MAGIC, labels),
        }
        for name, raw in data.items():
            (folder / name).write_bytes(gzip.compress(over.get(name, raw)))
    return folder


def test_fake_idx_loads(tmp_path):
    write_fake_mnist(tmp_path, n=3)
    ds = load_idx_dataset("mnist", "all", tmp_path, download=False)
    assert ds.x.shape == (6, 1, 28, 28) and ds.y.tolist() == [0, 1, 2, 0, 1, 2]
    assert float(ds.x[0, 0, 0, 1]) == pytest.approx(1 / 255)


def test_bad_magic_number(tmp_path):
    write_fake_mnist(tmp_path, image_magic=2049)
    with pytest.raises(DatasetError, match="magic number 2049, expected 2051"):
        load_idx_dataset("mnist", "train", tmp_path, download=False)


def test_bad_idx_files(tmp_path):
    short = idx_bytes(IMAGE_MAGIC, np.zeros((3, 28, 28)))[:-10]
    write_fake_mnist(tmp_path, **{"train-images-idx3-ubyte.gz": short})
    with pytest.raises(DatasetError, match="truncated"):
        load_idx_dataset("mnist", "train", tmp_path, download=False)
    write_fake_mnist(tmp_path, **{"t10k-labels-idx1-ubyte.gz": idx_bytes(LABEL_MAGIC, np.ones(5))})
    with pytest.raises(DatasetError, match="3 images but .* 5 labels"):
        load_idx_dataset("mnist", "test", tmp_path, download=False)
    write_fake_mnist(
        tmp_path, **{"t10k-images-idx3-ubyte.gz": idx_bytes(IMAGE_MAGIC, np.ones((3, 8, 8)))}
    )
    with pytest.raises(DatasetError, match="8x8 images"):
        load_idx_dataset("mnist", "test", tmp_path, download=False)
    (tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b broken")
    with pytest.raises(DatasetError, match="not a readable gzip"):
        load_idx_dataset("mnist", "test", tmp_path, download=False)


def test_missing_idx_without_download(tmp_path):
    with pytest.raises(DatasetError, match="not installed.*put them in"):
        load_idx_dataset("fashion-mnist", "train", tmp_path, download=False)


# --- status --------------------------------------------------------------------------------------
def test_dataset_status(tmp_path):
    st = dataset_status("mnist", tmp_path)
    assert st["available"] is False and st["downloadable"] is True
    assert st["where"] == str((tmp_path / "mnist").resolve()) and "not installed" in st["message"]
    write_fake_mnist(tmp_path)
    assert dataset_status("mnist", tmp_path)["available"] is True
    assert download("mnist", tmp_path) == tmp_path / "mnist"  # nothing missing: no network
    assert dataset_status("shapes")["available"] and not dataset_status("digits")["downloadable"]
    assert dataset_status("folder", tmp_path)["available"] is False  # no images there
    assert dataset_status("npz", tmp_path / "x.npz")["available"] is False
    with pytest.raises(DatasetError, match="nothing to download"):
        download("shapes")
    with pytest.raises(DatasetError, match="unknown dataset"):
        dataset_status("cifar")
