"""Model files: our own format only, no pickle, clear errors, atomic writes."""

import json

import numpy as np
import pytest

from robustkit import Recipe, RobustkitError, load_model, save_model
from robustkit.persistence import atomic_write


@pytest.fixture(scope="module")
def trained():
    from robustkit import create

    split = create("dataset", "digits").load()
    recipe = Recipe("hinge", {"epochs": 2, "random_state": 0})
    return recipe, recipe.build().fit(split.X_train, split.y_train), split


def test_round_trip_predicts_the_same(tmp_path, trained):
    recipe, model, split = trained
    save_model(tmp_path / "m.npz", recipe, model)
    loaded_recipe, loaded = load_model(tmp_path / "m.npz")
    assert loaded_recipe == recipe
    np.testing.assert_array_equal(loaded.predict(split.X_test), model.predict(split.X_test))


def test_file_that_is_not_ours(tmp_path):
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(RobustkitError, match="not a robustkit model file"):
        load_model(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_bytes(b"\x00junk")
    with pytest.raises(RobustkitError, match="not a robustkit model file"):
        load_model(tmp_path / "junk.npz")
    with pytest.raises(RobustkitError, match="does not exist"):
        load_model(tmp_path / "missing.npz")


def test_pickled_content_is_never_loaded(tmp_path):
    np.savez(tmp_path / "p.npz", __robustkit__=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(RobustkitError, match="not a robustkit model file"):
        load_model(tmp_path / "p.npz")


def test_other_format_version(tmp_path, trained):
    recipe, model, _ = trained
    save_model(tmp_path / "m.npz", recipe, model)
    with np.load(tmp_path / "m.npz") as data:
        arrays = dict(data)
    meta = json.loads(str(arrays["__robustkit__"]))
    meta["format_version"] = 99
    arrays["__robustkit__"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "m.npz", **arrays)
    with pytest.raises(RobustkitError, match="format version 99"):
        load_model(tmp_path / "m.npz")


def test_state_that_does_not_fit_the_model(tmp_path, trained):
    _, model, _ = trained
    save_model(tmp_path / "m.npz", Recipe("rbf", {"epochs": 1}), model)
    with pytest.raises(RobustkitError, match="does not fit model 'rbf'"):
        load_model(tmp_path / "m.npz")


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError), atomic_write(tmp_path / "out.txt") as handle:
        handle.write("half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with (
        pytest.raises(RobustkitError, match="does not exist"),
        atomic_write(tmp_path / "no" / "out.txt"),
    ):
        pass
