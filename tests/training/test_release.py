"""The shipped model's target check, on hand-made evaluation results."""

from training.release import targets, targets_markdown, training_data


def _results(cers: dict[int, dict[str, float]], lid=(0.97, 100), gender=(0.9, 80), events_f1=0.85) -> dict:
    """An evaluation results.json with the scores the targets read."""
    return {"budgets": [{
        "k": k, "cer": {language: {"cer": value} for language, value in by_language.items()},
        "language": {"accuracy": lid[0], "support": lid[1]}, "gender": {"accuracy": gender[0], "support": gender[1]},
        "events": {"micro_f1": events_f1},
    } for k, by_language in cers.items()]}  # fmt: skip


def test_targets_report_each_goal_with_its_value():
    synthetic = _results({1: {"all": 0.24, "en": 0.12, "zh": 0.30}, 4: {"all": 0.20, "en": 0.10, "zh": 0.25}})
    real = _results({1: {"all": 0.6, "cs": 0.6}, 4: {"all": 0.5, "cs": 0.5}})
    events = _results({1: {}, 4: {}}, events_f1=0.7)
    static = _results({1: {"all": 0.50}, 4: {"all": 0.19}})
    overall = _results({1: {}, 4: {}}, lid=(0.96, 250), gender=(0.92, 100), events_f1=0.9)
    rows = {row["target"].split(" (elastic")[0]: row for row in targets(
        {"synthetic": synthetic, "real": real, "events": events}, overall, static, k_max=4)}  # fmt: skip
    assert rows["CER synthetic en at k=4"]["met"] is True
    assert rows["CER synthetic zh at k=4"]["met"] is False
    assert rows["CER real cs at k=4"]["value"] == 0.5 and rows["CER real cs at k=4"]["met"] is None
    assert rows["language accuracy (whole test split) at k=4"]["met"] is True
    assert rows["gender accuracy (whole test split) at k=4"]["met"] is False
    assert rows["event micro-F1 (events part) at k=4"]["met"] is False
    assert rows["event micro-F1 (whole test split) at k=4"]["met"] is True
    assert abs(rows["CER k=1 / CER k=4 (synthetic, all languages)"]["value"] - 1.2) < 1e-9
    assert rows["elastic vs static CER at k=4"]["met"] is True  # 0.20 vs 0.19: 5% worse
    assert rows["elastic vs static CER at k=1"]["met"] is True  # 0.24 vs 0.50
    assert "| CER synthetic zh at k=4 | 0.2500 | <= 0.15 | **no** |" in targets_markdown(list(rows.values()))


def test_training_data_carries_the_corpus_sources_for_the_card(tmp_path):
    (tmp_path / "stats.json").write_text(
        '{"sources": [{"name": "espeak-ng", "license": "GPL-3.0+", "hours": 1.0}], "languages": ["en"], '
        '"events": ["Speech"], "emotions": [], "arguments": {"recipe": "mixed"}, '
        '"splits": {"train": {"hours": 0.9, "utterances": 9}, "test": {"hours": 0.1, "utterances": 1}}}'
    )
    data = training_data(tmp_path)
    assert data["sources"][0]["license"] == "GPL-3.0+" and data["emotions"] == [] and data["languages"] == ["en"]
