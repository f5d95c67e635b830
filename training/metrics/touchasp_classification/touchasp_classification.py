"""Accuracy, macro-F1 and confusion matrix for TouchASP's single-label slots (language, gender, emotion).

Load offline by path: `evaluate.load("/abs/path/training/metrics/touchasp_classification")`.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """Accuracy over all rows; macro-F1 averaged over the classes that occur in the references (a class
only ever predicted has no recall to average, and its false positives already cost the true classes their
recall); the confusion matrix with reference classes as rows and predictions as columns."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): predicted labels.
    references (list of str): reference labels.
    labels (list of str, optional): row/column order of the confusion matrix; default: sorted labels seen. Every
        seen label must be in it.
Returns:
    accuracy (float), macro_f1 (float), per_class_f1 ({label: float} for the reference classes),
    labels (list of str), confusion_matrix (list of lists of int, [reference][prediction]), support (int).
Example:
    >>> metric = evaluate.load("training/metrics/touchasp_classification")
    >>> metric.compute(predictions=["en", "zh"], references=["en", "en"])["accuracy"]
    0.5
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TouchASPClassification(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions: list[str], references: list[str], labels: list[str] | None = None) -> dict:
        seen = set(predictions) | set(references)
        labels = list(labels) if labels is not None else sorted(seen)
        if unlisted := seen - set(labels):
            raise ValueError(f"touchasp_classification: labels={labels} lacks {sorted(unlisted)}, which the data holds")
        index = {label: position for position, label in enumerate(labels)}
        confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
        np.add.at(confusion, ([index[label] for label in references], [index[label] for label in predictions]), 1)
        hits = np.diag(confusion)
        # F1 = 2 TP / (2 TP + FP + FN) = 2 TP / (row sum + column sum): no precision/recall division by zero.
        support = confusion.sum(axis=1) + confusion.sum(axis=0)
        f1 = np.divide(2 * hits, support, out=np.zeros(len(labels)), where=support > 0)
        in_references = [index[label] for label in labels if confusion[index[label]].sum() > 0]
        return {
            "accuracy": float(hits.sum() / len(references)),
            "macro_f1": float(f1[in_references].mean()),
            "per_class_f1": {labels[position]: float(f1[position]) for position in in_references},
            "labels": labels,
            "confusion_matrix": confusion.tolist(),
            "support": len(references),
        }
