"""The metric modules load offline by path and compute hand-checked values."""

import evaluate
import pytest

from training.evaluation import METRICS_DIR


def load(name: str) -> evaluate.Metric:
    return evaluate.load(str(METRICS_DIR / name))


def test_cer_counts_characters_after_normalisation():
    cer = load("touchasp_cer")
    assert cer.compute(predictions=["今天 hello world"], references=["今天，Ｈｅｌｌｏ World！"])["cer"] == 0.0
    # References 今天天气很好 (6 chars) + abc (3): one substitution, one deletion, one insertion -> 3 / 9.
    result = cer.compute(predictions=["今天天汽很", "abcd"], references=["今天天气很好", "ABC."])
    assert (result["substitutions"], result["deletions"], result["insertions"]) == (1, 1, 1)
    assert result["reference_characters"] == 9
    assert result["cer"] == pytest.approx(3 / 9)


def test_cer_without_normalisation_scores_the_raw_strings():
    cer = load("touchasp_cer")
    assert cer.compute(predictions=["abc"], references=["ABC"], normalize=False)["cer"] == 1.0


def test_cer_refuses_references_that_are_all_empty():
    with pytest.raises(ValueError, match="references are empty"):
        load("touchasp_cer").compute(predictions=["x"], references=["，。"])


def test_wer_counts_words_after_normalisation():
    wer = load("touchasp_wer")
    # "hello world again" vs "hello word": one substitution, one deletion over 3 words; the empty reference adds
    # its hypothesis' word as an insertion.
    result = wer.compute(predictions=["hello word", "extra"], references=["Hello, World! Again.", ""])
    assert (result["substitutions"], result["deletions"], result["insertions"]) == (1, 1, 1)
    assert result["wer"] == pytest.approx(3 / 3)


def test_classification_accuracy_macro_f1_and_confusion():
    result = load("touchasp_classification").compute(
        predictions=["en", "zh", "en", "fr"], references=["en", "en", "zh", "zh"]
    )
    assert result["accuracy"] == 0.25
    # en: TP 1, FP 1, FN 1 -> F1 0.5; zh: TP 0 -> 0. "fr" is never a reference, so not averaged.
    assert result["per_class_f1"] == {"en": 0.5, "zh": 0.0}
    assert result["macro_f1"] == 0.25
    assert result["labels"] == ["en", "fr", "zh"]
    assert result["confusion_matrix"] == [[1, 0, 1], [0, 0, 0], [1, 1, 0]]


def test_classification_refuses_labels_missing_from_the_given_order():
    with pytest.raises(ValueError, match="lacks"):
        load("touchasp_classification").compute(predictions=["en"], references=["zh"], labels=["en"])


def test_events_f1_and_map():
    predictions = [
        [{"label": "Speech", "score": 0.9}],
        [{"label": "Music", "score": 0.6}, {"label": "Speech", "score": 0.4}],
        [],
    ]
    references = [["Speech"], ["Music"], ["Speech"]]
    events = load("touchasp_events")
    result = events.compute(predictions=predictions, references=references)
    # Every listed event predicted: TP 2 (Speech, Music), FP 1 (Speech in clip 2), FN 1 (Speech in clip 3).
    assert result["micro_f1"] == pytest.approx(2 / 3)
    # Speech F1 = 2/(2+1+1) = 0.5, Music 1.0. AP Speech: ranks 0.9 (hit), 0.4 (miss), 0 (hit) -> 0.5*1 + 0.5*2/3.
    assert result["macro_f1"] == pytest.approx(0.75)
    assert result["per_class_ap"] == pytest.approx({"Speech": 5 / 6, "Music": 1.0})
    assert result["map"] == pytest.approx((5 / 6 + 1) / 2)
    # At threshold 0.5 the 0.4 Speech is dropped: TP 2, FP 0, FN 1; the ranking (mAP) does not change.
    strict = events.compute(predictions=predictions, references=references, threshold=0.5)
    assert strict["micro_f1"] == pytest.approx(4 / 5)
    assert strict["map"] == result["map"]


def test_events_are_undefined_without_any_reference_or_prediction():
    result = load("touchasp_events").compute(predictions=[[]], references=[[]])
    assert result["micro_f1"] is None and result["map"] is None
