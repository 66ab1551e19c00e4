"""The scikit-learn model plugins and ``robustkit.wrap``: exact scores and gradients."""

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, PolynomialFeatures, StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

import robustkit
from robustkit import RobustkitError
from robustkit.persistence import Recipe, load_model, save_model
from robustkit.testing import check_attack, check_defense, check_model, toy_data

FAST = {
    "sk-logreg": {},
    "sk-linear-svc": {},
    "sk-mlp": {"hidden": (6,), "epochs": 60},
}
CONFIGS = [
    ("sk-logreg", {}),
    ("sk-logreg", {"scaler": "minmax", "pca": 3}),
    ("sk-linear-svc", {"loss": "hinge", "scaler": "none"}),
    ("sk-linear-svc", {"pca": 2}),
    *[
        ("sk-mlp", {"activation": a, "hidden": (6, 4), "epochs": 60})
        for a in ("identity", "logistic", "tanh", "relu")
    ],
]


def model(name, **params):
    return robustkit.create("model", name, random_state=0, **{**FAST[name], **params})


@pytest.mark.parametrize(("name", "params"), CONFIGS)
def test_sklearn_models_meet_the_model_contract(name, params):
    # includes finite-difference checks of both gradients, with and without a noise class
    check_model(model(name, **params))


@pytest.mark.parametrize("name", sorted(FAST))
def test_binary_problems_have_two_score_columns(name):
    X, y, _ = toy_data(n_classes=2)
    check_model(model(name), X, y)
    fitted = model(name).fit(X, y)
    assert fitted.decision_function(X).shape == (len(X), 2)


@pytest.mark.parametrize("name", sorted(FAST))
@pytest.mark.parametrize("attack", robustkit.registry("attack").names())  # every installed one
def test_every_attack_runs_on_sklearn_models(name, attack):
    check_attack(robustkit.create("attack", attack), model=model(name), image_shape=(2, 2))


@pytest.mark.parametrize("name", sorted(FAST))
@pytest.mark.parametrize("defense", ["none", "reject", "gaussian-augment"])
def test_builtin_defenses_run_on_sklearn_models(name, defense):
    params = {} if defense == "none" else {"random_state": 0}
    built = robustkit.create("defense", defense, **params)
    check_defense(built, model=model(name))
    check_model(built.apply(model(name)))


@pytest.mark.parametrize("name", sorted(FAST))
def test_save_and_load_round_trip(name, tmp_path):
    X, y, _ = toy_data()
    recipe = Recipe(name, {**FAST[name], "random_state": 0, "pca": 3})
    fitted = recipe.build().fit(X, y)
    save_model(tmp_path / "m.npz", recipe, fitted)
    _, loaded = load_model(tmp_path / "m.npz")
    assert np.array_equal(loaded.decision_function(X), fitted.decision_function(X))
    assert np.array_equal(loaded.predict(X), fitted.predict(X))


def test_typed_parameters_from_a_spec():
    spec = robustkit.PluginSpec.coerce("sk-mlp:hidden=7x5,activation=tanh,scaler=none", "model")
    assert spec.params == {"hidden": (7, 5), "activation": "tanh", "scaler": "none"}
    with pytest.raises(RobustkitError, match="scaler must be one of standard, minmax, none"):
        robustkit.create("model", "sk-logreg", scaler="robust").validate()


PIPELINES = [
    make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
    make_pipeline(MinMaxScaler(), PCA(3, whiten=True), LinearSVC()),
    make_pipeline(MaxAbsScaler(), StandardScaler(with_mean=False), LogisticRegression()),
    make_pipeline(PCA(3), MLPClassifier((5,), activation="tanh", max_iter=300, random_state=0)),
    LinearSVC(loss="hinge", max_iter=5000),
]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    "estimator", PIPELINES, ids=lambda e: type(e[-1] if hasattr(e, "steps") else e).__name__
)
def test_wrap_computes_what_the_fitted_estimator_computes(estimator):
    X, y, _ = toy_data()
    estimator.fit(X, y)
    wrapped = robustkit.wrap(estimator)
    assert np.array_equal(wrapped.predict(X), estimator.predict(X))
    if hasattr(estimator, "decision_function"):  # float32 input: sklearn rounds to float32
        assert np.allclose(wrapped.decision_function(X), estimator.decision_function(X), atol=1e-5)
    if hasattr(estimator, "predict_proba"):
        from scipy.special import softmax

        assert np.allclose(
            softmax(wrapped.decision_function(X), axis=1), estimator.predict_proba(X), atol=1e-5
        )
    check_attack(robustkit.create("attack", "pgd"), model=wrapped, X=X, y=y)
    from robustkit.testing import _check_input_gradients

    _check_input_gradients(wrapped, X, y, "wrapped")


def test_wrap_refuses_what_it_cannot_differentiate():
    X, y, _ = toy_data()
    with pytest.raises(RobustkitError, match="cannot differentiate through a PolynomialFeatures"):
        robustkit.wrap(make_pipeline(PolynomialFeatures(), LogisticRegression()).fit(X, y))
    with pytest.raises(
        RobustkitError, match="no installed plugin can wrap a DecisionTreeClassifier"
    ):
        robustkit.wrap(DecisionTreeClassifier().fit(X, y))
    with pytest.raises(RobustkitError, match="cannot use a DecisionTreeClassifier"):
        robustkit.wrap(make_pipeline(StandardScaler(), DecisionTreeClassifier()).fit(X, y))
    with pytest.raises(RobustkitError, match="needs a fitted estimator"):
        robustkit.wrap(LogisticRegression())
