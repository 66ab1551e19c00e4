"""Malformed model files: every kind is detected without a crash, reported in one warning
by the cache and retrained, and ``robustkit info`` describes any file in one line."""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import robustkit
from robustkit import Recipe, RobustkitError, load_model, save_model
from robustkit import cache as cache_module
from robustkit.cache import CacheWarning, ModelCache
from robustkit.cli import cli
from robustkit.npz import MAX_BYTES

RECIPE = Recipe("hinge", {"epochs": 1, "hidden": 8, "random_state": 0}, "reject", {"n_noise": 20})
META = "__robustkit__.npy"


@pytest.fixture(scope="module")
def split():
    return robustkit.create("dataset", "digits").load()


@pytest.fixture(scope="module")
def good_bytes(split, tmp_path_factory) -> bytes:
    """A valid cache entry of RECIPE (a defended model: it has a reject_offset too)."""
    folder = tmp_path_factory.mktemp("good")
    model = RECIPE.build().fit(split.X_train, split.y_train)
    ModelCache(folder).store("k", RECIPE, model, {"train_seconds": 1.0})
    return (folder / "k.npz").read_bytes()


def _members(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return dict(npz)


def _npz(arrays: dict[str, np.ndarray], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, value in arrays.items():
            payload = io.BytesIO()
            np.lib.format.write_array(payload, np.asanyarray(value), allow_pickle=False)
            archive.writestr(f"{name}.npy", payload.getvalue())
    return buffer.getvalue()


def _with_meta(data: bytes, edit) -> bytes:
    arrays = _members(data)
    meta = json.loads(str(arrays["__robustkit__"]))
    edited = edit(meta)
    arrays["__robustkit__"] = np.array(edited if isinstance(edited, str) else json.dumps(edited))
    return _npz(arrays)


def _with_state(data: bytes, key: str, transform) -> bytes:
    arrays = _members(data)
    arrays[f"state/{key}"] = transform(arrays[f"state/{key}"])
    return _npz(arrays)


def _patch_central(data: bytes, member: str, offset: int, fmt: str, value: int) -> bytes:
    """Overwrite one field of ``member``'s central-directory record (the zip's own sizes)."""
    data = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        start = archive.start_dir
    position = start
    while data[position : position + 4] == b"PK\x01\x02":
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, position + 28)
        name = bytes(data[position + 46 : position + 46 + name_len]).decode()
        if name == member:
            struct.pack_into(fmt, data, position + offset, value)
        position += 46 + name_len + extra_len + comment_len
    return bytes(data)


def _other_method(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info), compress_type=zipfile.ZIP_BZIP2)
    return out.getvalue()


def _npy_header(shape: tuple[int, ...], dtype=np.uint8) -> bytes:
    header = np.lib.format.header_data_from_array_1_0(np.zeros(0, dtype))
    header["shape"] = shape
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue()


def _deflate_bomb(declared: int) -> bytes:
    """A deflated member that expands to 50 MB of zeros but whose zip entry declares
    ``declared`` bytes, with an .npy header that matches the declared size."""
    header = _npy_header((declared - 128,))
    assert len(header) == 128
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("__robustkit__.npy", _npy_header((), np.dtype("<U2")) + b"\0" * 8)
        archive.writestr("state/x.npy", header + bytes(50 * 2**20))
    return _patch_central(buffer.getvalue(), "state/x.npy", 24, "<I", declared)


def malformed_entries(good: bytes) -> dict[str, bytes]:
    """Every kind of broken cache entry the issue lists, from one good entry."""
    arrays = _members(good)
    weight = "model/W1"
    claims_4_tb = io.BytesIO()  # the weight's .npy header claims 10**12 float32 values
    with zipfile.ZipFile(io.BytesIO(good)) as src, zipfile.ZipFile(claims_4_tb, "w") as dst:
        for name in src.namelist():
            body = src.read(name)
            if name == f"state/{weight}.npy":
                body = _npy_header((10**12,), np.float32) + bytes(16)
            dst.writestr(name, body)
    return {
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "garbage": b"PK\x03\x04" + b"\x17" * 300,
        "central-directory-bit-flip": good[:-30] + bytes([good[-30] ^ 0x10]) + good[-29:],
        "payload-bit-flip": good[:400] + bytes([good[400] ^ 0x01]) + good[401:],
        "encrypted-flag": _patch_central(good, META, 8, "<H", 0x1),
        "wrong-zip-method": _other_method(good),
        "metadata-missing": _npz({k: v for k, v in arrays.items() if k != "__robustkit__"}),
        "metadata-not-json": _with_meta(good, lambda m: "{not json"),
        "metadata-recipe-missing": _with_meta(good, lambda m: {**m, "recipe": None}),
        "metadata-params-wrong-type": _with_meta(
            good, lambda m: {**m, "recipe": {**m["recipe"], "model_params": [1, 2]}}
        ),
        "metadata-extra-wrong-type": _with_meta(good, lambda m: {**m, "extra": 5}),
        "metadata-unknown-plugin": _with_meta(
            good, lambda m: {**m, "recipe": {**m["recipe"], "model": "nope"}}
        ),
        "metadata-key-removed": _with_meta(
            good, lambda m: {k: v for k, v in m.items() if k != "extra"}
        ),
        "wrong-shape": _with_state(good, weight, lambda w: w[:-1]),
        "wrong-dtype": _with_state(good, weight, lambda w: w.astype(str)),
        "nan-weights": _with_state(good, weight, lambda w: np.full_like(w, np.nan)),
        "nan-reject-offset": _with_state(good, "reject_offset", lambda o: np.array(np.nan)),
        "duplicate-classes": _with_state(good, "model/classes", lambda c: np.array([0, 0, *c[2:]])),
        "unsorted-classes": _with_state(good, "model/classes", lambda c: c[::-1].copy()),
        "header-claims-4-TB": claims_4_tb.getvalue(),
        "zip-claims-4-GB": _patch_central(good, f"state/{weight}.npy", 24, "<I", 2**32 - 1),
        "deflate-bomb-declared-small": _deflate_bomb(1000),
        "deflate-bomb-declared-honestly": _deflate_bomb(400 * 2**20),
    }


def test_every_malformed_entry_is_reported_once_and_retrained(tmp_path, good_bytes, split):
    cache = ModelCache(tmp_path)
    for kind, data in malformed_entries(good_bytes).items():
        cache.path("k").write_bytes(data)
        with pytest.warns(CacheWarning) as caught:
            assert cache.load("k", RECIPE) is None, kind
        assert len(caught) == 1, kind
        message = str(caught[0].message)
        assert "retraining" in message and "\n" not in message, (kind, message)


def test_malformed_model_files_are_one_line_errors(tmp_path, good_bytes):
    for kind, data in malformed_entries(good_bytes).items():
        path = tmp_path / f"{kind}.npz"
        path.write_bytes(data)
        with pytest.raises(RobustkitError) as error:
            load_model(path)
        assert "\n" not in str(error.value), kind


def test_reading_never_goes_past_the_declared_size(tmp_path, good_bytes, monkeypatch):
    """The bomb that declares 1000 bytes is stopped after at most 1000 decompressed bytes."""
    read = []
    original_read, original_readinto = zipfile.ZipExtFile.read, zipfile.ZipExtFile.readinto

    def counting_read(self, n=-1):
        data = original_read(self, n)
        read.append(len(data))
        return data

    def counting_readinto(self, buffer):
        got = original_readinto(self, buffer)
        read.append(got)
        return got

    monkeypatch.setattr(zipfile.ZipExtFile, "read", counting_read)
    monkeypatch.setattr(zipfile.ZipExtFile, "readinto", counting_readinto)
    path = tmp_path / "bomb.npz"
    path.write_bytes(_deflate_bomb(1000))
    with pytest.raises(RobustkitError, match="CRC"):
        load_model(path)
    assert 0 < sum(read) <= 1000 + 100  # the bomb's member plus the small metadata member
    path.write_bytes(_deflate_bomb(MAX_BYTES + 1))
    with pytest.raises(RobustkitError, match="more than the"):
        load_model(path)


def test_an_entry_of_another_recipe_copied_under_a_key_is_not_used(tmp_path, good_bytes):
    cache = ModelCache(tmp_path)
    other = Recipe("hinge", {"epochs": 2, "hidden": 8, "random_state": 0}, "reject", {})
    cache.path("other").write_bytes(good_bytes)  # recorded under key "k"
    with pytest.warns(CacheWarning, match="recorded under key 'k'"):
        assert cache.load("other", other) is None
    cache.path("k").write_bytes(good_bytes)
    with pytest.warns(CacheWarning, match="another recipe"):
        assert cache.load("k", other) is None
    _, extra = cache.load("k", RECIPE)
    assert extra["cache_key"] == "k"


def test_harness_retrains_a_corrupt_entry_with_one_warning(tmp_path):
    robustkit.evaluate("hinge:epochs=1", n_samples=5, eps=[0.1], cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.npz")
    path.write_bytes(b"")  # what a crash after an un-synced rename leaves
    with pytest.warns(CacheWarning, match="retraining") as caught:
        result = robustkit.evaluate("hinge:epochs=1", n_samples=5, eps=[0.1], cache_dir=tmp_path)
    assert len(caught) == 1 and not result.rows[0]["cached"]
    again = robustkit.evaluate("hinge:epochs=1", n_samples=5, eps=[0.1], cache_dir=tmp_path)
    assert again.rows[0]["cached"]  # healed: the retrained model replaced the bad entry


def test_unwritable_cache_warns_once_and_the_run_goes_on(tmp_path, monkeypatch):
    def full_disk(*args, **kwargs):
        raise RobustkitError(f"cannot write {tmp_path}/x.npz: No space left on device")

    monkeypatch.setattr(cache_module, "save_model", full_disk)
    with pytest.warns(CacheWarning, match="cannot write the model cache") as caught:
        result = robustkit.evaluate(
            ["hinge:epochs=1", "hinge:epochs=2"], n_samples=5, eps=[0.1], cache_dir=tmp_path
        )
    assert len(caught) == 1 and len(result.rows) == 2


def test_cache_key_sees_plugin_version_and_source(monkeypatch):
    # as for an editable/in-tree install (CI installs from a wheel): its code is hashed
    monkeypatch.setattr(cache_module, "_from_wheel", lambda module, dist: False)
    cache = ModelCache("unused")
    key = cache.key(RECIPE, {"name": "digits"}, "data")
    identity = cache_module.plugin_identity("model", "hinge")
    assert identity["distribution"] == "robustkit"
    assert "source" in identity
    edited = {**identity, "source": "edited"}
    monkeypatch.setattr(
        cache_module, "plugin_identity", lambda kind, name: edited if name == "hinge" else {}
    )
    assert cache.key(RECIPE, {"name": "digits"}, "data") != key
    bumped = {**identity, "version": "9.9"}
    monkeypatch.setattr(cache_module, "plugin_identity", lambda kind, name: bumped)
    assert cache.key(RECIPE, {"name": "digits"}, "data") != key


def test_plugins_installed_from_a_wheel_are_not_hashed(monkeypatch):
    monkeypatch.setattr(cache_module, "_from_wheel", lambda module, dist: True)
    assert "source" not in cache_module.plugin_identity("model", "hinge")


def test_an_editable_install_is_not_a_wheel(monkeypatch):
    monkeypatch.setattr(cache_module, "_installed_roots", lambda: [Path("/")])
    monkeypatch.setattr(cache_module, "_is_editable", lambda dist: True)
    assert not cache_module._from_wheel("robustkit_plugins.hinge", "robustkit")
    monkeypatch.setattr(cache_module, "_is_editable", lambda dist: False)
    assert cache_module._from_wheel("robustkit_plugins.hinge", "robustkit")


def test_source_hash_changes_when_the_code_changes(tmp_path, monkeypatch):
    package = tmp_path / "fakeplugin"
    package.mkdir()
    (package / "__init__.py").write_text("X = 1\n")
    (package / "helper.py").write_text("Y = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import fakeplugin  # noqa: F401

    first = cache_module._source_hash("fakeplugin")
    (package / "helper.py").write_text("Y = 2\n")
    cache_module._source_hash.cache_clear()
    assert cache_module._source_hash("fakeplugin") != first


def test_stale_temporary_files_are_removed_on_start(tmp_path):
    import os
    import time

    stale, fresh = tmp_path / ".abc.npz.x1.tmp", tmp_path / ".abc.npz.x2.tmp"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    ModelCache(tmp_path)
    assert not stale.exists() and fresh.exists()  # a fresh one may belong to a live run


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_info_on_any_file_is_a_description_or_one_line_error(tmp_path, good_bytes):
    good = tmp_path / "good.npz"
    good.write_bytes(good_bytes)
    result = run("info", good)
    assert result.exit_code == 0 and "model:     hinge" in result.output
    files = dict(malformed_entries(good_bytes))
    files["json"] = b'{"a": 1}'
    files["text"] = b"hello\n"
    for kind, data in files.items():
        path = tmp_path / f"{kind}.bin"
        path.write_bytes(data)
        result = run("info", path)
        assert result.exit_code == 2, (kind, result.output)
        lines = [line for line in result.output.splitlines() if line]
        assert len(lines) == 1 and lines[0].startswith("Error:"), (kind, result.output)
        assert "pickle" not in result.output and "Traceback" not in result.output
    result = run("info", tmp_path / "missing.npz")
    assert result.exit_code == 2 and "does not exist" in result.output


def test_cache_list_info_clear(tmp_path, good_bytes):
    (tmp_path / "k.npz").write_bytes(good_bytes)
    (tmp_path / "bad.npz").write_bytes(b"")
    listing = run("cache", "list", "--cache-dir", tmp_path)
    assert listing.exit_code == 0
    assert "hinge" in listing.output and "reject" in listing.output
    assert "bad" in listing.output and "not a robustkit model file" in listing.output
    info = run("cache", "info", "--cache-dir", tmp_path)
    assert "models:    1 (1 unusable)" in info.output
    cleared = run("cache", "clear", "--cache-dir", tmp_path)
    assert cleared.exit_code == 0 and "removed 2 files" in cleared.output
    assert list(tmp_path.glob("*.npz")) == []


def test_a_good_model_file_still_round_trips(tmp_path, split):
    model = RECIPE.build().fit(split.X_train, split.y_train)
    save_model(tmp_path / "m.npz", RECIPE, model)
    _, loaded = load_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.predict(split.X_test), model.predict(split.X_test))


def test_a_cache_folder_that_cannot_be_created_warns_and_the_run_goes_on(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.warns(CacheWarning, match="cannot write the model cache") as caught:
        result = run(
            "eval", "--model", "hinge:epochs=1", "--n-samples", "5", "--cache-dir", blocker / "c"
        )
    assert result.exit_code == 0, result.output
    assert len(caught) == 1
