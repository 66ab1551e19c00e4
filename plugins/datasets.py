"""Built-in data sets: scikit-learn's 8×8 digits, Fashion-MNIST and MNIST (raw pixels).

Fashion-MNIST and MNIST read the four canonical IDX ``.gz`` files from ``<root>/<name>/``,
where the root is the ``data_dir`` argument or ``ROBUSTKIT_DATA_DIR``; with neither, they
use ``<cache>/<name>/`` and download missing files there, verified by md5. Every file's
md5 is checked on load (remembered per file, so only the first load pays ~0.1 s);
``verify=false`` or ``ROBUSTKIT_VERIFY_DATA=0`` accepts other copies knowingly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import numpy as np

from robustkit import DataError, Dataset, DataSplit, hookimpl
from robustkit.download import cache_dir, cached_md5, fetch
from robustkit.features import pca_split
from robustkit.idx import read_idx
from robustkit.params import check_int

DATA_DIR_ENV = "ROBUSTKIT_DATA_DIR"
#: Set to 0 to accept IDX files whose md5 is not the canonical one.
VERIFY_ENV = "ROBUSTKIT_VERIFY_DATA"

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
IDX_FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

DIGIT_NAMES = [str(digit) for digit in range(10)]


class Digits(Dataset):
    """scikit-learn's bundled 8×8 handwritten digits (1,797 images), split 75/25 by class."""

    description: ClassVar[str] = (
        "scikit-learn's 8x8 handwritten digits, pixels 0-16, stratified 75/25 split; no download"
    )

    def __init__(self, random_state: int | None = 0, pca: int | None = None) -> None:
        self.random_state = random_state
        self.pca = pca

    def validate(self) -> None:
        """Check pca before anything loads."""
        check_int("pca", self.pca, allow_none=True, error=DataError)

    def load(self, data_dir: Path | None = None) -> DataSplit:
        """The stratified split of raw pixels (float32 in [0, 16]); ``data_dir`` is unused."""
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        check_int("random_state", self.random_state, 0, allow_none=True, error=DataError)
        digits = load_digits()
        X_train, X_test, y_train, y_test = train_test_split(
            digits.data.astype(np.float32),
            digits.target.astype(np.int64),
            test_size=0.25,
            stratify=digits.target,
            random_state=self.random_state,
        )
        split = DataSplit(
            name="digits",
            X_train=X_train,
            y_train=y_train,
            X_test=X_test,
            y_test=y_test,
            bounds=(0.0, 16.0),
            image_shape=(8, 8),
            class_names=list(DIGIT_NAMES),
        )
        return pca_split(split, self.pca) if self.pca is not None else split


class IdxImageDataset(Dataset):
    """A 28×28 grey-scale image set stored as the four canonical MNIST-style IDX files.

    Subclasses set ``name``, ``md5s`` (file → md5), ``mirrors`` (base URLs, tried in
    order) and ``class_names``. ``n_train``/``n_test`` keep only the first rows; ``pca``
    gives the first ``pca`` PCA features instead of pixels (the study's 128-D data).
    """

    name: ClassVar[str]
    md5s: ClassVar[dict[str, str]]
    mirrors: ClassVar[tuple[str, ...]]
    class_names: ClassVar[list[str]]
    image_shape: ClassVar[tuple[int, int]] = (28, 28)

    def __init__(
        self,
        n_train: int | None = None,
        n_test: int | None = None,
        pca: int | None = None,
        verify: bool = True,
    ) -> None:
        self.n_train = n_train
        self.n_test = n_test
        self.pca = pca
        self.verify = verify

    def _checked_sizes(self) -> tuple[int | None, int | None]:
        n_train = check_int("n_train", self.n_train, allow_none=True, error=DataError)
        n_test = check_int("n_test", self.n_test, allow_none=True, error=DataError)
        return n_train, n_test

    def validate(self) -> None:
        """Check n_train, n_test and pca before anything loads."""
        self._checked_sizes()
        check_int("pca", self.pca, allow_none=True, error=DataError)

    def load(self, data_dir: Path | None = None) -> DataSplit:
        """Raw pixels (float32 in [0, 255], flattened to 784) and int64 labels 0-9."""
        n_train, n_test = self._checked_sizes()
        paths = self._locate_files(data_dir)
        if not isinstance(self.verify, bool):
            raise DataError(f"verify must be true or false, got {self.verify!r}")
        if self.verify and os.environ.get(VERIFY_ENV, "") != "0":
            self._verify_checksums(paths)
        X_train, y_train = self._read_part(
            paths[TRAIN_IMAGES], paths[TRAIN_LABELS], "n_train", n_train
        )
        X_test, y_test = self._read_part(paths[TEST_IMAGES], paths[TEST_LABELS], "n_test", n_test)
        split = DataSplit(
            name=self.name,
            X_train=X_train,
            y_train=y_train,
            X_test=X_test,
            y_test=y_test,
            bounds=(0.0, 255.0),
            image_shape=self.image_shape,
            class_names=list(self.class_names),
        )
        return pca_split(split, self.pca) if self.pca is not None else split

    def _locate_files(self, data_dir: Path | None) -> dict[str, Path]:
        """Paths of the four files: from a named root (never downloading), else the cache."""
        if data_dir is not None:
            return self._files_in_root(Path(data_dir), "the data_dir / --data-dir option")
        if os.environ.get(DATA_DIR_ENV):
            return self._files_in_root(Path(os.environ[DATA_DIR_ENV]), DATA_DIR_ENV)
        folder = cache_dir() / self.name
        paths = {}
        for file in IDX_FILES:
            path = folder / file
            if not path.is_file():
                fetch(self._urls(file), path, self.md5s[file], manual_hint=self._manual_hint())
            paths[file] = path
        return paths

    def _verify_checksums(self, paths: dict[str, Path]) -> None:
        """Each file must be the canonical one (the md5 the download checks): a copy of
        another data set's file (MNIST labels in fashion-mnist/) is an error."""
        for file, path in paths.items():
            actual = cached_md5(path)
            if actual == self.md5s[file]:
                continue
            other = next(
                (
                    cls.name
                    for cls in IdxImageDataset.__subclasses__()
                    if cls is not type(self) and cls.md5s.get(file) == actual
                ),
                None,
            )
            looks = f" (it is {other}'s {file})" if other else ""
            raise DataError(
                f"{self.name}: {path} has md5 {actual}, not the canonical {self.md5s[file]}"
                f"{looks}; to use this copy anyway pass {self.name}:verify=false or set "
                f"{VERIFY_ENV}=0"
            )

    def _files_in_root(self, root: Path, origin: str) -> dict[str, Path]:
        """The four files in ``root/<name>/``; a missing one is an error saying how to get it."""
        root = root.expanduser()
        folder = root / self.name
        for file in IDX_FILES:
            if not (folder / file).is_file():
                raise DataError(self._missing_message(root, folder, file, origin))
        return {file: folder / file for file in IDX_FILES}

    def _missing_message(self, root: Path, folder: Path, file: str, origin: str) -> str:
        message = f"{self.name}: {file} is missing from {folder} (data folder from {origin})"
        if (root / file).is_file():
            return (
                f"{message}; {root} holds the files directly, but the data folder must be "
                f"the root that holds a {self.name}/ sub-folder: use {root.parent}"
            )
        return (
            f"{message}; download it from {self._urls(file)[0]} (md5 {self.md5s[file]}) "
            f"into {folder}, or give no data folder to download {self.name} into "
            f"{cache_dir() / self.name}"
        )

    def _manual_hint(self) -> str:
        return (
            f"to supply the files by hand, put {', '.join(IDX_FILES)} (from "
            f"{self.mirrors[0]}) in <root>/{self.name}/ and pass --data-dir <root> "
            f"or set {DATA_DIR_ENV}=<root> (or put them in {cache_dir() / self.name})"
        )

    def _urls(self, file: str) -> list[str]:
        return [mirror + file for mirror in self.mirrors]

    def _read_part(
        self, images_path: Path, labels_path: Path, parameter: str, n: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Read and cross-check one images/labels pair; keep the first ``n`` rows."""
        images = read_idx(images_path)
        labels = read_idx(labels_path)
        if images.ndim != 3 or images.dtype != np.uint8 or images.shape[1:] != self.image_shape:
            raise DataError(
                f"{images_path}: expected uint8 images of shape (n, 28, 28), "
                f"found {images.dtype} data of shape {images.shape}"
            )
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise DataError(
                f"{labels_path}: expected a 1-D array of integer labels, "
                f"found {labels.dtype} data of shape {labels.shape}"
            )
        if len(images) != len(labels):
            raise DataError(
                f"{self.name}: {images_path.name} holds {len(images)} images but "
                f"{labels_path.name} holds {len(labels)} labels in {images_path.parent}"
            )
        if len(labels) == 0:
            raise DataError(f"{labels_path}: holds no samples")
        bad = (labels < 0) | (labels >= len(self.class_names))
        if bad.any():
            raise DataError(
                f"{labels_path}: labels must be 0-{len(self.class_names) - 1}, "
                f"found {labels[bad][0]} at index {int(np.argmax(bad))}"
            )
        if n is not None and n > len(labels):
            raise DataError(
                f"{parameter} must be at most {len(labels)} (the samples in "
                f"{images_path.name}), got {n}"
            )
        images, labels = images[:n], labels[:n]
        return images.reshape(len(images), -1).astype(np.float32), labels.astype(np.int64)


class FashionMNIST(IdxImageDataset):
    """Zalando's Fashion-MNIST: 60,000/10,000 28×28 clothing images in 10 classes."""

    description: ClassVar[str] = (
        "Zalando's Fashion-MNIST, 28x28 clothing images, pixels 0-255, 60,000/10,000 split"
    )
    name: ClassVar[str] = "fashion-mnist"
    md5s: ClassVar[dict[str, str]] = {
        TRAIN_IMAGES: "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        TRAIN_LABELS: "25c81989df183df01b3e8a0aad5dffbe",
        TEST_IMAGES: "bef4ecab320f06d8554ea6380940ec79",
        TEST_LABELS: "bb300cfdad3c16e7a12a480ee83cd310",
    }
    mirrors: ClassVar[tuple[str, ...]] = (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    )
    class_names: ClassVar[list[str]] = [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ]


class MNIST(IdxImageDataset):
    """LeCun, Cortes and Burges's MNIST: 60,000/10,000 28×28 handwritten digits."""

    description: ClassVar[str] = (
        "MNIST handwritten digits, 28x28, pixels 0-255, 60,000/10,000 split"
    )
    name: ClassVar[str] = "mnist"
    md5s: ClassVar[dict[str, str]] = {
        TRAIN_IMAGES: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        TRAIN_LABELS: "d53e105ee54ea40749a09fcbcd1e9432",
        TEST_IMAGES: "9fb629c4189551a2d022fa330f9573f3",
        TEST_LABELS: "ec29112dd5afa0611ce80d1b7f02629c",
    }
    mirrors: ClassVar[tuple[str, ...]] = (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    )
    class_names: ClassVar[list[str]] = DIGIT_NAMES


@hookimpl
def register_datasets(register):
    """Register the built-in data sets: digits, fashion-mnist and mnist."""
    register("digits", Digits)
    register("fashion-mnist", FashionMNIST)
    register("mnist", MNIST)
