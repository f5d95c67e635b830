"""Micro/macro F1 and mAP for TouchASP's multi-label sound events, scored per clip.

Load offline by path: `evaluate.load("/abs/path/training/metrics/touchasp_events")`.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """Each clip predicts a set of events with scores (as `perception["events"]`) and references a set of
event labels. An event is predicted when it is listed (and, with `threshold`, its score exceeds it); an unlisted
event has score 0. Micro-F1 pools true/false positives and false negatives over all classes; macro-F1 and mAP
average over the classes that occur in the references. Average precision per class is the step-wise area under the
precision-recall curve over the clips ranked by score (ties form one step), as scikit-learn's
`average_precision_score` computes it."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of list of {"label": str, "score": float}): each clip's events.
    references (list of list of str): each clip's reference events (may be empty: no events).
    threshold (float, optional): an event counts as predicted only when its score exceeds this; default: every
        listed event is predicted (the processor has already applied its threshold).
Returns:
    micro_f1, micro_precision, micro_recall, macro_f1, map (float, or None where undefined: no events referenced
    for macro_f1 / map / recall, none predicted for precision), per_class_ap ({label: float}), support (int).
Example:
    >>> metric = evaluate.load("training/metrics/touchasp_events")
    >>> metric.compute(predictions=[[{"label": "Speech", "score": 0.9}]], references=[["Speech"]])["micro_f1"]
    1.0
"""


def average_precision(truth: np.ndarray, scores: np.ndarray) -> float:
    """Sum over distinct score thresholds (high to low) of (recall gain) x precision; `truth` holds a positive."""
    order = np.argsort(-scores, kind="stable")
    truth, scores = truth[order], scores[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    true_positives = np.cumsum(truth)[last_of_tie]
    precision = true_positives / (last_of_tie + 1)
    recall_gain = np.diff(np.r_[0, true_positives]) / truth.sum()
    return float((recall_gain * precision).sum())


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TouchASPEvents(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.List(
                        {"label": datasets.Value("string"), "score": datasets.Value("float64")}
                    ),
                    "references": datasets.List(datasets.Value("string")),
                }
            ),
        )

    def _compute(
        self, predictions: list[list[dict]], references: list[list[str]], threshold: float | None = None
    ) -> dict:
        predicted_labels = {event["label"] for clip in predictions for event in clip}
        labels = sorted(predicted_labels | {label for clip in references for label in clip})
        index = {label: position for position, label in enumerate(labels)}
        truth = np.zeros((len(references), len(labels)), dtype=bool)
        scores = np.zeros(truth.shape)
        predicted = np.zeros(truth.shape, dtype=bool)
        for row, (clip_events, clip_labels) in enumerate(zip(predictions, references)):
            truth[row, [index[label] for label in clip_labels]] = True
            for event in clip_events:
                column = index[event["label"]]
                scores[row, column] = max(scores[row, column], event["score"])
                predicted[row, column] |= threshold is None or event["score"] > threshold
        true_positives = (predicted & truth).sum(axis=0)
        false_positives = (predicted & ~truth).sum(axis=0)
        false_negatives = (~predicted & truth).sum(axis=0)
        in_references = np.flatnonzero(truth.any(axis=0))
        f1 = 2 * true_positives / np.maximum(2 * true_positives + false_positives + false_negatives, 1)
        per_class_ap = {
            labels[column]: average_precision(truth[:, column], scores[:, column]) for column in in_references
        }
        tp, fp, fn = true_positives.sum(), false_positives.sum(), false_negatives.sum()
        return {
            "micro_f1": _ratio(2 * tp, 2 * tp + fp + fn),
            "micro_precision": _ratio(tp, tp + fp),
            "micro_recall": _ratio(tp, tp + fn),
            "macro_f1": float(f1[in_references].mean()) if len(in_references) else None,
            "map": float(np.mean(list(per_class_ap.values()))) if per_class_ap else None,
            "per_class_ap": per_class_ap,
            "support": len(references),
        }


def _ratio(numerator: int, denominator: int) -> float | None:
    """None where the score is undefined (no events referenced or predicted), rather than a made-up 0 or 1."""
    return float(numerator / denominator) if denominator else None
