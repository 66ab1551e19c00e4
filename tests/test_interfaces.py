"""The derived parts of the core interfaces, on hand-built cases."""

import numpy as np

from robustkit import REJECT, Model


class FixedScores(Model):
    """Scores are the input itself; the reject score is a fixed column."""

    def __init__(self, classes=(0, 1), reject=(-np.inf, -np.inf)):
        self.classes = classes
        self.reject = reject

    def decision_function(self, X):
        self.classes_ = np.asarray(self.classes)
        return np.asarray(X, dtype=float)

    def reject_score(self, X):
        return np.asarray(self.reject, dtype=float)


def test_predict_takes_the_best_class_unless_the_reject_score_beats_it():
    X = np.array([[1.0, 2.0], [3.0, 0.0]])
    assert FixedScores().predict(X).tolist() == [1, 0]
    assert FixedScores(reject=(2.5, 2.5)).predict(X).tolist() == [REJECT, 0]
    assert FixedScores(reject=(2.0, 3.0)).predict(X).tolist() == [1, 0]  # ties keep the class


def test_predict_with_text_labels_and_rejects():
    X = np.array([[1.0, 2.0], [3.0, 0.0]])
    predicted = FixedScores(classes=("cat", "dog"), reject=(5.0, -1.0)).predict(X)
    assert predicted.tolist() == [REJECT, "cat"]
    assert FixedScores(classes=("cat", "dog")).predict(X).tolist() == ["dog", "cat"]


def test_perturb_passes_image_shape_only_to_attacks_that_take_it():
    import numpy as np

    from robustkit import Attack, AttackResult
    from robustkit.testing import LinearModel

    seen = {}

    class ShapeAware(Attack):
        requires = frozenset()

        def _run(self, model, X, y, radii, bounds, rng, *, image_shape=None):
            seen["shape"] = image_shape
            return AttackResult(radii, np.repeat(X[None], len(radii), 0), np.zeros(len(X), bool))

    class Plain(ShapeAware):
        def _run(self, model, X, y, radii, bounds, rng):
            return super()._run(model, X, y, radii, bounds, rng, image_shape="plain")

    X = np.zeros((3, 4), dtype=np.float32)
    y = np.array([0, 1, 0])
    model = LinearModel().fit(X + np.arange(4), np.array([0, 1, 0]))
    ShapeAware().perturb(model, X, y, 0.1, image_shape=(2, 2))
    assert seen["shape"] == (2, 2)
    Plain().perturb(model, X, y, 0.1, image_shape=(2, 2))
    assert seen["shape"] == "plain"
    assert ShapeAware().kind == "gradient" and not ShapeAware().iterative
