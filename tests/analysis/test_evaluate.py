from __future__ import annotations

import numpy as np

from digitlab.analysis.evaluate import confused_pairs, evaluate_predictions, misclassified


def test_confused_pairs_are_the_largest_off_diagonal_cells_by_direction() -> None:
    cm = np.array([[50, 1, 7], [0, 40, 2], [9, 0, 30]])
    pairs = confused_pairs(cm, ["a", "b", "c"], top=3)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [("c", "a", 9), ("a", "c", 7), ("b", "c", 2)]
    assert pairs[0]["share_of_true"] == 9 / 39


def test_confused_pairs_stop_at_zero() -> None:
    assert confused_pairs(np.diag([3, 4]), ["x", "y"]) == []


def test_misclassified_most_confident_first() -> None:
    y_true = np.array([0, 1, 1, 0])
    y_pred = np.array([0, 0, 0, 1])
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.95, 0.05], [0.3, 0.7]])
    assert [m["index"] for m in misclassified(y_true, y_pred, proba)] == [2, 3, 1]


def test_evaluate_predictions_numbers() -> None:
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0])
    result = evaluate_predictions(y_true, y_pred, None, ["0", "1", "2"])
    assert result["accuracy"] == 4 / 6 and result["n_errors"] == 2
    assert result["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert result["report"]["1"]["precision"] == 2 / 3
