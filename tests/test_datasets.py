"""The built-in data sets, the data-folder rules and the verified download (never online)."""

import gzip
import shutil
import struct
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from robustkit_plugins.datasets import MNIST, Digits, FashionMNIST
from sklearn.base import clone

import robustkit
from robustkit.download import cache_dir, fetch, md5_of
from robustkit.errors import DataError

FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """No data folder or offline flag from the caller's shell; a throw-away cache. The
    small synthetic IDX files here are not the canonical ones, so checksums are off
    (test_data_checksums.py tests them on the real files)."""
    monkeypatch.delenv("ROBUSTKIT_DATA_DIR", raising=False)
    monkeypatch.delenv("ROBUSTKIT_OFFLINE", raising=False)
    monkeypatch.setenv("ROBUSTKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ROBUSTKIT_VERIFY_DATA", "0")


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test if anything tries to download."""

    def urlopen(*args, **kwargs):
        pytest.fail(f"unexpected download attempt: {args}")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)


def idx_bytes(values: np.ndarray, code: int = 0x08) -> bytes:
    """An IDX file: magic 00 00 <code> <ndim>, big-endian uint32 sizes, payload."""
    header = struct.pack(">BBBB", 0, 0, code, values.ndim)
    return header + struct.pack(f">{values.ndim}I", *values.shape) + values.tobytes()


def write_gz(path: Path, data: bytes) -> None:
    path.write_bytes(gzip.compress(data))


def make_root(root: Path, name: str = "mnist", n_train: int = 12, n_test: int = 6) -> Path:
    """A small synthetic data root: <root>/<name>/ with the four canonical IDX .gz files."""
    folder = root / name
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        write_gz(folder / f"{prefix}-images-idx3-ubyte.gz", idx_bytes(images))
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_gz(folder / f"{prefix}-labels-idx1-ubyte.gz", idx_bytes(labels))
    return root


def decoded(path: Path, header_bytes: int) -> np.ndarray:
    """Independent reference decoding of a canonical uint8 IDX .gz file."""
    return np.frombuffer(gzip.decompress(path.read_bytes()), np.uint8, offset=header_bytes)


def error_of(dataset, data_dir=None) -> str:
    with pytest.raises(DataError) as info:
        dataset.load(data_dir)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- digits ---------------------------------------------------------------------------


def test_digits_shapes_bounds_and_raw_pixels():
    from sklearn.datasets import load_digits

    split = Digits().load()
    assert split.name == "digits"
    assert split.X_train.shape == (1347, 64) and split.X_test.shape == (450, 64)  # 25 % rounds up
    assert split.X_train.dtype == np.float32 and split.X_test.dtype == np.float32
    assert split.y_train.dtype.kind == "i"
    assert split.bounds == (0.0, 16.0) and split.image_shape == (8, 8)
    assert len(split.class_names) == 10
    both = np.concatenate([split.X_train, split.X_test])
    assert both.min() == 0 and both.max() == 16  # raw 0-16 pixels, not rescaled
    original = load_digits()
    assert both.sum(dtype=np.float64) == original.data.sum()  # every image kept once
    assert np.bincount(np.concatenate([split.y_train, split.y_test])).tolist() == (
        np.bincount(original.target).tolist()
    )


def test_digits_split_is_stratified():
    split = Digits().load()
    total = np.bincount(np.concatenate([split.y_train, split.y_test]))
    assert np.all(np.abs(np.bincount(split.y_test) - 0.25 * total) <= 1)


def test_digits_is_deterministic_per_seed():
    first, again, other = Digits().load(), Digits().load(), Digits(random_state=1).load()
    np.testing.assert_array_equal(first.X_train, again.X_train)
    np.testing.assert_array_equal(first.y_test, again.y_test)
    assert not np.array_equal(first.y_test, other.y_test)


# --- real Fashion-MNIST and MNIST -----------------------------------------------------


def test_fashion_mnist_loads_from_shared_data(shared_data_dir, no_network):
    split = FashionMNIST().load(shared_data_dir)
    assert split.name == "fashion-mnist"
    assert split.X_train.shape == (60000, 784) and split.X_test.shape == (10000, 784)
    assert split.X_train.dtype == np.float32 and split.y_train.dtype == np.int64
    assert split.X_train.min() == 0 and split.X_train.max() == 255
    assert split.bounds == (0.0, 255.0) and split.image_shape == (28, 28)
    assert np.bincount(split.y_train).tolist() == [6000] * 10
    assert np.bincount(split.y_test).tolist() == [1000] * 10
    assert split.class_names[0] == "T-shirt/top" and split.class_names[9] == "Ankle boot"
    assert len(split.class_names) == 10
    assert split.y_train[:5].tolist() == [9, 0, 0, 3, 0]  # as published by Zalando
    reference = decoded(shared_data_dir / "fashion-mnist" / FILES[2], 16)
    np.testing.assert_array_equal(split.X_test.ravel(), reference)


def test_mnist_loads_from_shared_data(shared_data_dir, no_network):
    split = MNIST().load(shared_data_dir)
    assert split.X_train.shape == (60000, 784) and split.X_test.shape == (10000, 784)
    assert split.X_train.dtype == np.float32 and split.y_test.dtype == np.int64
    assert split.X_test.min() == 0 and split.X_test.max() == 255
    # The published MNIST class counts.
    assert np.bincount(split.y_train).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949
    ]  # fmt: skip
    assert np.bincount(split.y_test).tolist() == [
        980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009
    ]  # fmt: skip
    assert split.y_train[:5].tolist() == [5, 0, 4, 1, 9]
    assert split.class_names == [str(d) for d in range(10)]


def test_first_rows_only(shared_data_dir, no_network):
    split = MNIST(n_train=100, n_test=np.int64(7)).load(shared_data_dir)
    assert split.X_train.shape == (100, 784) and split.X_test.shape == (7, 784)
    folder = shared_data_dir / "mnist"
    np.testing.assert_array_equal(split.X_train.ravel(), decoded(folder / FILES[0], 16)[:78400])
    np.testing.assert_array_equal(split.y_test, decoded(folder / FILES[3], 8)[:7])


@pytest.mark.parametrize("value", [0, -3, 2.5, "10", True])
@pytest.mark.parametrize("parameter", ["n_train", "n_test"])
def test_bad_row_counts(tmp_path, parameter, value):
    root = make_root(tmp_path / "root")
    message = error_of(MNIST(**{parameter: value}), root)
    assert f"{parameter} must be None or an integer >= 1, got {value!r}" in message


def test_row_count_above_available(tmp_path):
    root = make_root(tmp_path / "root", n_train=12, n_test=6)
    assert "n_test must be at most 6" in error_of(MNIST(n_test=7), root)
    assert MNIST(n_train=12, n_test=6).load(root).X_test.shape == (6, 784)


# --- where the data comes from ---------------------------------------------------------


def test_environment_variable_names_the_root(shared_data_dir, monkeypatch, no_network):
    monkeypatch.setenv("ROBUSTKIT_DATA_DIR", str(shared_data_dir))
    monkeypatch.setenv("ROBUSTKIT_OFFLINE", "1")  # the cache must not be involved
    split = MNIST(n_train=3, n_test=3).load()
    assert split.y_test.tolist() == [7, 2, 1]


def test_argument_wins_over_environment(tmp_path, shared_data_dir, monkeypatch, no_network):
    monkeypatch.setenv("ROBUSTKIT_DATA_DIR", str(tmp_path / "empty"))
    assert MNIST(n_train=2, n_test=2).load(shared_data_dir).X_train.shape == (2, 784)
    monkeypatch.setenv("ROBUSTKIT_DATA_DIR", str(shared_data_dir))
    message = error_of(MNIST(), tmp_path / "empty")
    assert "data_dir" in message and "missing" in message


@pytest.mark.parametrize("missing", FILES)
def test_missing_file_in_named_root_says_how_to_get_it(tmp_path, missing, no_network):
    root = make_root(tmp_path / "root", "fashion-mnist")
    (root / "fashion-mnist" / missing).unlink()
    message = error_of(FashionMNIST(), root)
    assert f"{missing} is missing from {root / 'fashion-mnist'}" in message
    assert f"http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/{missing}" in message
    assert FashionMNIST.md5s[missing] in message
    assert not (tmp_path / "cache").exists()


def test_missing_file_via_environment_names_the_variable(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("ROBUSTKIT_DATA_DIR", str(tmp_path / "nowhere"))
    message = error_of(MNIST())
    assert "ROBUSTKIT_DATA_DIR" in message
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz" in message


def test_root_pointing_at_the_data_set_folder_gets_a_hint(tmp_path, no_network):
    folder = make_root(tmp_path / "root") / "mnist"
    message = error_of(MNIST(), folder)
    assert f"use {folder.parent}" in message


def corrupt_wrong_magic(data: bytes) -> bytes:
    return gzip.compress(b"\x01" + gzip.decompress(data)[1:])


def corrupt_truncated(data: bytes) -> bytes:
    return gzip.compress(gzip.decompress(data)[:-1000])


def corrupt_gzip(data: bytes) -> bytes:
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("corrupt", "problem"),
    [
        (corrupt_wrong_magic, "wrong magic number"),
        (corrupt_truncated, "truncated: header says 60000 bytes of data, found 59000"),
        (corrupt_gzip, "not a valid gzip file"),
    ],
)
def test_corrupt_copy_of_real_files(tmp_path, shared_data_dir, corrupt, problem, no_network):
    folder = tmp_path / "root" / "mnist"
    folder.mkdir(parents=True)
    for file in FILES:
        shutil.copy(shared_data_dir / "mnist" / file, folder / file)
    bad = folder / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(corrupt(bad.read_bytes()))
    message = error_of(MNIST(), tmp_path / "root")
    assert str(bad) in message and problem in message


def test_image_and_label_counts_must_agree(tmp_path):
    root = make_root(tmp_path / "root", n_train=12)
    write_gz(root / "mnist" / FILES[1], idx_bytes(np.zeros(11, dtype=np.uint8)))
    message = error_of(MNIST(), root)
    assert "holds 12 images but train-labels-idx1-ubyte.gz holds 11 labels" in message


def test_labels_must_be_digits(tmp_path):
    root = make_root(tmp_path / "root", n_test=6)
    write_gz(root / "mnist" / FILES[3], idx_bytes(np.array([0, 1, 2, 10, 4, 5], np.uint8)))
    assert "labels must be 0-9, found 10 at index 3" in error_of(MNIST(), root)


@pytest.mark.parametrize(
    "images",
    [
        np.zeros((6, 27, 28), np.uint8),  # wrong image size
        np.zeros((6, 784), np.uint8),  # flat
        np.zeros((6, 28, 28), ">i4"),  # not bytes
    ],
)
def test_images_must_be_28_by_28_bytes(tmp_path, images):
    root = make_root(tmp_path / "root", n_test=6)
    code = 0x08 if images.dtype == np.uint8 else 0x0C
    write_gz(root / "mnist" / FILES[2], idx_bytes(images, code))
    assert "expected uint8 images of shape (n, 28, 28)" in error_of(MNIST(), root)


def test_labels_must_be_one_dimensional(tmp_path):
    root = make_root(tmp_path / "root", n_test=6)
    write_gz(root / "mnist" / FILES[3], idx_bytes(np.zeros((6, 1), np.uint8)))
    assert "expected a 1-D array of integer labels" in error_of(MNIST(), root)


def test_no_samples(tmp_path):
    root = make_root(tmp_path / "root", n_test=0)
    assert "holds no samples" in error_of(MNIST(), root)


# --- the cache and downloads -----------------------------------------------------------


def test_cache_downloads_verified_files_then_reuses_them(tmp_path, shared_data_dir, monkeypatch):
    source = (shared_data_dir / "mnist").as_uri() + "/"
    missing = (tmp_path / "no-such-mirror").as_uri() + "/"
    monkeypatch.setattr(MNIST, "mirrors", (missing, source))  # the second mirror works
    split = MNIST(n_train=4, n_test=4).load()
    assert split.y_train.tolist() == [5, 0, 4, 1]
    folder = tmp_path / "cache" / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
    for file in FILES:  # the canonical md5s hold for the shared copies
        assert md5_of(folder / file) == MNIST.md5s[file]

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("downloaded"))
    assert MNIST(n_train=4, n_test=4).load().y_train.tolist() == [5, 0, 4, 1]


def test_failed_download_says_how_to_supply_files(tmp_path, monkeypatch):
    monkeypatch.setattr(MNIST, "mirrors", ((tmp_path / "gone").as_uri() + "/",))
    message = error_of(MNIST())
    assert "download of train-images-idx3-ubyte.gz failed" in message
    assert "<root>/mnist/" in message and "--data-dir" in message
    assert "ROBUSTKIT_DATA_DIR" in message
    assert list((tmp_path / "cache" / "mnist").iterdir()) == []


def test_offline_refuses_to_download(monkeypatch, no_network):
    monkeypatch.setenv("ROBUSTKIT_OFFLINE", "1")
    message = error_of(FashionMNIST())
    assert "ROBUSTKIT_OFFLINE=1" in message and "--data-dir" in message


@pytest.fixture
def payload(tmp_path) -> tuple[str, bytes, str]:
    """A source file's file:// URL, its bytes and their md5."""
    data = b"robustkit test payload\n" * 1000
    source = tmp_path / "source" / "payload.bin"
    source.parent.mkdir()
    source.write_bytes(data)
    return source.as_uri(), data, md5_of(source)


def test_fetch_good_md5(tmp_path, payload):
    url, data, md5 = payload
    dest = tmp_path / "new" / "sub" / "payload.bin"
    assert fetch(url, dest, md5) == dest
    assert dest.read_bytes() == data
    assert list(dest.parent.iterdir()) == [dest]


def test_fetch_bad_md5_leaves_nothing(tmp_path, payload):
    url, _, md5 = payload
    dest = tmp_path / "out" / "payload.bin"
    wrong = "0" * 32
    with pytest.raises(DataError) as info:
        fetch(url, dest, wrong)
    assert f"expected md5 {wrong}, got {md5}" in str(info.value)
    assert list(dest.parent.iterdir()) == []


def test_fetch_tries_mirrors_in_order(tmp_path, payload):
    url, data, md5 = payload
    corrupt = tmp_path / "corrupt.bin"
    corrupt.write_bytes(b"not it")
    dest = tmp_path / "out" / "payload.bin"
    mirrors = [(tmp_path / "absent.bin").as_uri(), corrupt.as_uri(), url]
    fetch(mirrors, dest, md5)
    assert dest.read_bytes() == data
    assert list(dest.parent.iterdir()) == [dest]


def test_fetch_network_failure(tmp_path):
    dest = tmp_path / "out" / "payload.bin"
    with pytest.raises(DataError) as info:
        fetch([(tmp_path / "a").as_uri(), (tmp_path / "b").as_uri()], dest, "0" * 32)
    message = str(info.value)
    assert "download of payload.bin failed" in message and "\n" not in message
    assert (tmp_path / "a").as_uri() in message and (tmp_path / "b").as_uri() in message
    assert f"save it as {dest}" in message
    assert list(dest.parent.iterdir()) == []


def test_fetch_connection_dropped_midway_leaves_nothing(tmp_path, monkeypatch):
    class Dropping:
        """A response that sends one chunk, then loses the connection."""

        def __init__(self):
            self.sent = False

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self, size):
            if self.sent:
                raise ConnectionResetError("connection reset by peer")
            self.sent = True
            return b"partial"

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: Dropping())
    dest = tmp_path / "out" / "payload.bin"
    with pytest.raises(DataError, match="connection reset"):
        fetch("http://example.invalid/payload.bin", dest, "0" * 32)
    assert list(dest.parent.iterdir()) == []


def test_fetch_offline(tmp_path, payload, monkeypatch, no_network):
    monkeypatch.setenv("ROBUSTKIT_OFFLINE", "1")
    url, _, md5 = payload
    with pytest.raises(DataError, match="ROBUSTKIT_OFFLINE=1 forbids downloads"):
        fetch(url, tmp_path / "out" / "payload.bin", md5)
    assert not (tmp_path / "out").exists()


def test_md5_of_rfc1321_vectors(tmp_path):
    empty, abc = tmp_path / "empty", tmp_path / "abc"
    empty.write_bytes(b"")
    abc.write_bytes(b"abc")
    assert md5_of(empty) == "d41d8cd98f00b204e9800998ecf8427e"
    assert md5_of(abc) == "900150983cd24fb0d6963f7d28e17f72"


def test_cache_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "cache"  # ROBUSTKIT_CACHE_DIR (set by isolated_env)
    monkeypatch.delenv("ROBUSTKIT_CACHE_DIR")
    assert cache_dir() == tmp_path / "xdg" / "robustkit"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == tmp_path / "home" / ".cache" / "robustkit"


# --- plugin registration -----------------------------------------------------------------


def test_plugins_are_registered(fresh_plugins):
    registry = robustkit.registry("dataset")
    assert {"digits", "fashion-mnist", "mnist"} <= set(registry.names())
    for name in ("digits", "fashion-mnist", "mnist"):
        description = registry.get(name).cls.description
        assert description and "\n" not in description
    dataset = robustkit.create("dataset", "mnist", n_train=5)
    assert isinstance(dataset, MNIST)
    assert dataset.get_params() == {"n_train": 5, "n_test": None, "pca": None, "verify": True}


def test_datasets_follow_estimator_conventions():
    params = clone(FashionMNIST(n_test=3)).get_params()
    assert params == {"n_train": None, "n_test": 3, "pca": None, "verify": True}
    assert Digits(random_state=4).get_params() == {"random_state": 4, "pca": None}


def test_pca_features_are_the_studys_128_dimensional_data(shared_data_dir):
    split = FashionMNIST(n_train=2000, n_test=500, pca=128).load(shared_data_dir)
    assert split.name == "fashion-mnist-pca128"
    assert split.X_train.shape == (2000, 128) and split.X_test.shape == (500, 128)
    assert split.bounds[0] == split.X_train.min() or split.bounds[0] == split.X_test.min()
    # PCA of centred data: the training features have mean zero and falling variance.
    np.testing.assert_allclose(split.X_train.mean(axis=0), 0, atol=1e-4)
    variances = split.X_train.var(axis=0)
    assert np.all(np.diff(variances) <= 1e-6)


def test_pca_larger_than_the_features_is_an_error():
    with pytest.raises(DataError, match="pca must be a whole number from 1 to 64"):
        Digits(pca=65).load()
