"""The study's published tables, as data: Fadaeinedjad, "Deep Learning with Applications, HW 1".

Numbers exactly as printed in the seed text (``deep-learning-hw1.txt``): accuracies and
attack rates in percent, durations in seconds, rejections as counts out of 100 attacked
samples. Each table's ``columns`` follow the seed's column order (the test compares
every cell with the seed text).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Columns of the training tables (questions 1-5).
TRAINING = ("model", "epochs", "batch_size", "lr", "train_accuracy", "test_accuracy", "seconds")
#: Question 6: FGSM on three networks.
FGSM = ("model", "model_accuracy", "eps", "attack_success")
#: Question 7: the noise-class rejection defense.
REJECT = ("model", "model_accuracy", "eps", "attack_success", "correct_rejects")
#: Question 8: the λ sweep of the rejection defense.
LAMBDA = (
    "model",
    "lam",
    "eps",
    "model_accuracy",
    "attack_success",
    "correct_rejects",
    "percent_rejected",
)


@dataclass(frozen=True)
class StudyTable:
    """One published table: its question, what it measures, column keys and rows."""

    question: int
    title: str
    columns: tuple[str, ...]
    rows: tuple[dict[str, float | int | str], ...]


def _table(question: int, title: str, columns: tuple[str, ...], *rows: tuple) -> StudyTable:
    return StudyTable(
        question, title, columns, tuple(dict(zip(columns, row, strict=True)) for row in rows)
    )


TABLES: dict[int, StudyTable] = {
    table.question: table
    for table in (
        _table(
            1,
            "Hinge network (128 PCA inputs, 150 ReLU hidden units, 10 scores)",
            TRAINING,
            ("Hinge loss", 10, 128, 0.05, 87.5, 85.9, 114.2),
            ("Hinge loss", 20, 128, 0.005, 84.9, 83.2, 229.8),
            ("Hinge loss", 5, 128, 0.2, 79.4, 77.3, 57.62),
            ("Hinge loss", 5, 128, 0.1, 87.45, 85.7, 57.12),
            ("Hinge loss", 15, 128, 0.1, 90.5, 87.54, 182.4),
        ),
        _table(
            2,
            "RBF network (128 PCA inputs, 150 GELU hidden units, 10 distances)",
            TRAINING,
            ("RBF loss", 10, 128, 0.05, 85.3, 84.06, 382.4),
            ("RBF loss", 10, 128, 0.1, 87.2, 85.75, 385.96),
            ("RBF loss", 10, 128, 0.01, 76.26, 76.19, 367.12),
        ),
        _table(
            3,
            "Batch size 1 (stochastic gradient descent)",
            TRAINING,
            ("Hinge loss", 5, 1, 0.01, 87.3, 85.81, 990.44),
            ("Hinge loss", 5, 1, 0.005, 91.4, 87.93, 1021.1),
            ("RBF loss", 10, 1, 0.1, 69.39, 68.71, 2870),
        ),
        _table(
            4,
            "Raw 784 pixels instead of 128 PCA features",
            TRAINING,
            ("Hinge loss", 3, 1, 0.001, 87.3, 85.81, 1365),
            ("Hinge loss", 20, 128, 0.05, 87.91, 86.01, 989),
        ),
        _table(
            5,
            "Gaussian noise in the training data",
            TRAINING,
            ("RBF loss noise data", 20, 128, 0.05, 87.27, 85.96, 433.77),
        ),
        _table(
            6,
            "FGSM on the hinge, RBF and 784-pixel hinge networks (10 attacked samples)",
            FGSM,
            ("Hinge loss", 83.96, 0.1, 40),
            ("Hinge loss", 83.96, 0.01, 0),
            ("RBF loss", 79.22, 0.1, 30),
            ("RBF loss", 79.22, 1, 90),
            ("Hinge loss 784 dim", 83.21, 0.1, 10),
            ("Hinge loss 784 dim", 83.21, 1, 100),
        ),
        _table(
            7,
            "Noise-class rejection defense, 200 noise samples (100 attacked samples)",
            REJECT,
            ("RBF loss", 79.78, 1, 94, 42),
            ("RBF loss", 79.78, 0.3, 83, 37),
            ("RBF loss", 79.78, 0.1, 16, 1),
        ),
        _table(
            8,
            "The rejection threshold λ (100 attacked samples)",
            LAMBDA,
            ("RBF loss", 400, 1, 80.1, 93, 46, 49.46),
            ("RBF loss", 400, 0.1, 80.1, 26, 8, 30.76),
            ("RBF loss", 550, 0.1, 79.61, 16, 0, 0),
            ("RBF loss", 550, 1, 79.61, 96, 50, 52),
            ("RBF loss", 550, 0.5, 79.61, 88, 52, 59),
            ("RBF loss", 200, 0.5, 79.69, 88, 52, 59),
            ("RBF loss", 100, 0.5, 80.86, 96, 56, 58.33),
            ("RBF loss", 50, 0.5, 81.58, 94, 55, 58.5),
        ),
    )
}

#: Attacked samples per question in the study (robustkit attacks 100 everywhere).
STUDY_SAMPLES = {6: 10, 7: 100, 8: 100}
