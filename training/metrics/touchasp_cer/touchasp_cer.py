"""Character error rate after TouchASP's SpeechIO-style normalisation (`processing.text_normalization`).

Load offline by path: `evaluate.load("/abs/path/training/metrics/touchasp_cer")`. evaluate copies this script out of
the repository before importing it, so the normaliser is imported absolutely: the touchasp package must be
installed (`pip install -e .`) or the repository root be on `sys.path`.
"""

import datasets
import evaluate

from processing.text_normalization import error_counts

_DESCRIPTION = """Corpus-level CER: (substitutions + deletions + insertions) / reference characters, summed over all
pairs, after lower-casing, full-to-half-width folding, punctuation removal, removal of all spaces and mapping of
traditional Han characters to simplified."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): hypotheses.
    references (list of str): reference transcripts; an empty one counts only the hypothesis' insertions.
    normalize (bool, default True): apply `normalize_for_cer` and the traditional-to-simplified mapping to
        both sides; False scores the strings as given.
Returns:
    cer (float), substitutions, deletions, insertions, hits, reference_characters (int).
Example:
    >>> cer = evaluate.load("training/metrics/touchasp_cer")
    >>> cer.compute(predictions=["今天 hello world"], references=["今天，Hello World！"])["cer"]
    0.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TouchASPCER(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions: list[str], references: list[str], normalize: bool = True) -> dict:
        counts = error_counts(references, predictions, "character", normalize)
        rate, reference_units = counts.pop("rate"), counts.pop("reference_units")
        return {"cer": rate, **counts, "reference_characters": reference_units}
