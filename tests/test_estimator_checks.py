"""scikit-learn's estimator checks on both numpy networks (small and fast settings)."""

from robustkit_plugins.hinge import HingeNetwork
from robustkit_plugins.rbf import RBFNetwork
from sklearn.utils.estimator_checks import parametrize_with_checks

#: Checks that cannot pass, with the reason: robustkit's Model contract wins over sklearn's.
BINARY_SCORES = (
    "robustkit's Model contract: decision_function is (n_samples, n_classes) for two "
    "classes too, where scikit-learn expects (n_samples,); training accuracy and text "
    "labels are tested in test_networks.py instead"
)
EXPECTED_FAILED = {
    "check_classifiers_train": BINARY_SCORES,
    "check_classifiers_classes": BINARY_SCORES,
}


def _estimators():
    return [
        HingeNetwork(hidden=16, epochs=20, batch_size=16, random_state=0),
        RBFNetwork(hidden=16, epochs=20, batch_size=16, random_state=0),
    ]


@parametrize_with_checks(_estimators(), expected_failed_checks=lambda est: EXPECTED_FAILED)
def test_sklearn_compatible(estimator, check):
    """Each network passes scikit-learn's estimator checks (except those listed above)."""
    check(estimator)
