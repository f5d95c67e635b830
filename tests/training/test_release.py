"""The shipped model's target check and training history, on hand-made evaluation results and run folders."""

import json
import shutil
from pathlib import Path

import datasets
import pytest
from huggingface_hub import ModelCard
from transformers import GenerationConfig, pipeline

import modeling_touchasp  # noqa: F401  (registers the pipeline)

from training.release import (
    check_corpora_listed,
    earlier_twin_results,
    held_out_subset,
    plot_training_curves,
    release,
    suppress_untaught_emotions,
    targets,
    targets_markdown,
    training_data,
    training_history,
)


def _results(
    cers: dict[int, dict[str, float]], lid=(0.97, 100), gender=(0.9, 80), events_f1=0.85, syllables=None,
) -> dict:  # fmt: skip
    """An evaluation results.json with the scores the targets read."""
    return {"budgets": [{
        "k": k, "cer": {language: {"cer": value} for language, value in by_language.items()},
        "mandarin_syllables": syllables and {name: {"wer": value} for name, value in syllables.items()},
        "language": {"accuracy": lid[0], "support": lid[1]}, "gender": {"accuracy": gender[0], "support": gender[1]},
        "events": {"micro_f1": events_f1},
    } for k, by_language in cers.items()]}  # fmt: skip


def test_targets_report_each_goal_with_its_value():
    synthetic = _results({1: {"all": 0.24, "en": 0.12, "zh": 0.30}, 4: {"all": 0.20, "en": 0.10, "zh": 0.25}},
                         syllables={"toneless": 0.05, "tonal": 0.15})
    real = _results({1: {"all": 0.6, "cs": 0.6}, 4: {"all": 0.5, "cs": 0.5}})
    events = _results({1: {}, 4: {}}, events_f1=0.7)
    static = _results({1: {"all": 0.50}, 4: {"all": 0.19}})
    overall = _results({1: {}, 4: {}}, lid=(0.96, 250), gender=(0.92, 100), events_f1=0.9)
    rows = {row["target"].split(" (elastic")[0]: row for row in targets(
        {"synthetic": synthetic, "real": real, "events": events}, overall, static, k_max=4)}  # fmt: skip
    assert rows["CER synthetic en at k=4"]["met"] is True
    assert rows["CER synthetic zh at k=4"]["met"] is False
    assert rows["Mandarin tonal pinyin syllable error, synthetic, at k=4"]["value"] == 0.15
    assert rows["Mandarin toneless pinyin syllable error, synthetic, at k=4"]["met"] is None
    assert rows["CER real cs at k=4"]["value"] == 0.5 and rows["CER real cs at k=4"]["met"] is None
    assert rows["language accuracy (whole test split) at k=4"]["met"] is True
    assert rows["gender accuracy (whole test split) at k=4"]["met"] is False
    assert rows["event micro-F1 (events part) at k=4"]["met"] is False
    assert rows["event micro-F1 (whole test split) at k=4"]["met"] is True
    assert abs(rows["CER k=1 / CER k=4 (synthetic, all languages)"]["value"] - 1.2) < 1e-9
    assert rows["elastic vs static CER at k=4"]["met"] is True  # 0.20 vs 0.19: 5% worse
    assert rows["elastic vs static CER at k=1"]["met"] is True  # 0.24 vs 0.50
    assert "| CER synthetic zh at k=4 | 0.2500 | <= 0.15 | **no** |" in targets_markdown(list(rows.values()))


def test_targets_leave_the_twin_comparison_unscored_at_unequal_budgets():
    synthetic = _results({1: {"all": 0.24, "en": 0.12, "zh": 0.30}, 4: {"all": 0.20, "en": 0.10, "zh": 0.25}})
    parts = {"synthetic": synthetic, "real": _results({1: {}, 4: {}}), "events": _results({1: {}, 4: {}})}
    static = _results({1: {"all": 0.50}, 4: {"all": 0.19}})
    rows = targets(parts, _results({1: {}, 4: {}}), static, k_max=4, steps=(12000, 7000))
    twin = [row for row in rows if row["target"].startswith("elastic vs static")]
    assert len(twin) == 2 and all(row["met"] is None and "12000 steps, static 7000" in row["goal"] for row in twin)
    assert twin[1]["value"] == pytest.approx(0.20 / 0.19 - 1)
    equal = targets(parts, _results({1: {}, 4: {}}), static, k_max=4, steps=(7000, 7000))
    assert [row["met"] for row in equal if row["target"].startswith("elastic vs static")] == [True, True]


def _scored(rows: int, characters: dict[str, int], ks=(1, 4)) -> dict:
    """Results of `rows` rows with these reference characters per language at each k."""
    cer = {language: {"cer": 0.5, "reference_characters": count} for language, count in characters.items()}
    return {"rows": rows, "budgets": [{"k": k, "cer": cer} for k in ks]}


def test_an_earlier_twin_evaluation_is_reused_only_on_the_same_rows(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(_scored(200, {"all": 900, "en": 300})))
    assert earlier_twin_results(path, _scored(200, {"all": 900, "en": 300}))["rows"] == 200
    with pytest.raises(ValueError, match="other held-out rows"):
        earlier_twin_results(path, _scored(200, {"all": 901, "en": 301}))
    with pytest.raises(ValueError, match="other held-out rows"):
        earlier_twin_results(path, _scored(300, {"all": 900, "en": 300}))
    with pytest.raises(ValueError, match="no scores at k=2"):
        earlier_twin_results(path, _scored(200, {"all": 900, "en": 300}, ks=(1, 2)))
    ctc = {**_scored(200, {"all": 900, "en": 300}), "transcript_decoding": "ctc"}
    with pytest.raises(ValueError, match="scored attention transcripts, this release ctc"):
        earlier_twin_results(path, ctc)  # a results.json from before the field scored the decoder's
    path.write_text(json.dumps(ctc))
    assert earlier_twin_results(path, ctc)["transcript_decoding"] == "ctc"
    beam = {**ctc, "num_beams": 10, "ngram_lm": "models/touchasp-tiny/ngram_lm.safetensors"}
    with pytest.raises(ValueError, match="num_beams 1 and no n-gram, this release with num_beams 10 and an n-gram"):
        earlier_twin_results(path, beam)
    path.write_text(json.dumps({**beam, "ngram_lm": "elsewhere/ngram_lm.safetensors"}))
    assert earlier_twin_results(path, beam)["num_beams"] == 10


def _corpus(folder, recipe, sources, languages, events=("Speech",)):
    """A corpus folder with only the stats.json the card reads; `sources`: (name, licence, hours) triples."""
    folder.mkdir()
    stats = {"sources": [{"name": name, "license": license, "hours": hours} for name, license, hours in sources],
             "languages": list(languages), "events": list(events), "emotions": [], "arguments": {"recipe": recipe},
             "splits": {"train": {"hours": 0.9, "utterances": 9}, "test": {"hours": 0.1, "utterances": 1}}}  # fmt: skip
    (folder / "stats.json").write_text(json.dumps(stats))
    return folder


def test_training_data_carries_the_corpus_sources_for_the_card(tmp_path):
    data = training_data([_corpus(tmp_path / "mixed", "mixed", [("espeak-ng", "GPL-3.0+", 1.0)], ["en"])])
    assert data["sources"][0]["license"] == "GPL-3.0+" and data["emotions"] == [] and data["languages"] == ["en"]
    assert data["corpora"] == [{"name": "mixed", "recipe": "mixed", "splits": {
        "train": {"hours": 0.9, "utterances": 9}, "test": {"hours": 0.1, "utterances": 1}}}]  # fmt: skip


def test_training_data_merges_every_training_corpus(tmp_path):
    mixed = _corpus(tmp_path / "mixed", "mixed", [("espeak-ng", "GPL-3.0+", 1.0), ("asterisk", "CC-BY-SA-3.0", 0.5)],
                    ["en", "ru"], events=["Speech", "Dog"])  # fmt: skip
    synthetic = _corpus(tmp_path / "synthetic20", "synthetic", [("espeak-ng", "GPL-3.0+", 2.25)], ["zh", "en"])
    data = training_data([mixed, synthetic])
    assert data["sources"] == [{"name": "espeak-ng", "license": "GPL-3.0+", "hours": 3.25},
                               {"name": "asterisk", "license": "CC-BY-SA-3.0", "hours": 0.5}]  # fmt: skip
    assert data["languages"] == ["en", "ru", "zh"] and data["events"] == ["Dog", "Speech"]
    assert [corpus["name"] for corpus in data["corpora"]] == ["mixed", "synthetic20"]


def test_a_release_refuses_a_stage_whose_corpus_it_does_not_list(tmp_path):
    mixed, synthetic = tmp_path / "mixed", tmp_path / "synthetic20"
    histories = {"elastic": {"stages": [{"run": "stage1", "corpora": [str(mixed / "train")]},
                                        {"run": "stage2", "corpora": [str(mixed / "train"), str(synthetic / "train")]}]},
                 "static": {"stages": [{"run": "static"}]}}  # fmt: skip
    check_corpora_listed(histories, [mixed, synthetic])
    with pytest.raises(ValueError, match="stage2.*synthetic20/train.*--more-corpora"):
        check_corpora_listed(histories, [mixed])


def test_a_stage_that_mixed_in_noise_names_the_noise_corpus(tmp_path):
    run = _run(tmp_path / "noisy", steps=3)
    recipe = json.loads((run / "recipe.json").read_text())
    (run / "recipe.json").write_text(json.dumps({**recipe, "augment": {"noise_data_dir": "corpora/events/train"}}))
    history = training_history([run], "elastic")
    assert history["stages"][0]["corpora"] == ["corpora/mixed/train", "corpora/events/train"]
    with pytest.raises(ValueError, match="corpora/events/train"):
        check_corpora_listed({"elastic": history}, [Path("corpora/mixed")])


def _run(folder, steps, init_from=None, resumed_at=None):
    """A `touchasp train` output folder with `steps` logged steps (loss = 100 / step); `resumed_at` logs the steps
    from there on twice, as a killed and resumed run does."""
    folder.mkdir()
    recipe = {"model": {"init_from": init_from, "elastic_k_choices": [1, 2]}, "optimizer": {"lr": 0.002},
              "schedule": {"name": "cosine"},
              "data": {"corpora": [{"data_dir": "corpora/mixed/train", "weight": 1.0}]}}  # fmt: skip
    (folder / "recipe.json").write_text(json.dumps(recipe))
    logged = list(range(1, steps + 1)) + (list(range(resumed_at, steps + 1)) if resumed_at else [])
    records = [{"step": step, "loss": 100 / step, "audio_seconds": 36.0, "step_seconds": 1.8} for step in logged]
    (folder / "examples.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    return folder


def test_training_history_chains_stages_and_counts_resumed_steps_once(tmp_path):
    first = _run(tmp_path / "first", 150, resumed_at=120)
    second = _run(tmp_path / "second", 100, init_from=str(first / "final"))
    history = training_history([first, second])
    assert history["steps"] == 250 and [stage["steps"] for stage in history["stages"]] == [150, 100]
    assert history["stages"][0]["init_from"] is None and history["stages"][1]["init_from"].endswith("first/final")
    assert history["stages"][0]["audio_hours"] == 1.5 and history["stages"][1]["wall_hours"] == 0.05
    assert history["stages"][1]["corpora"] == ["corpora/mixed/train"]
    assert [step for step, _ in history["loss_curve"]] == [100, 150, 250]
    assert history["loss_curve"][1][1] == pytest.approx(sum(100 / step for step in range(101, 151)) / 50, abs=1e-4)
    plot_training_curves({"elastic": history, "static": history}, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_training_history_continues_a_released_model_history(tmp_path):
    first, second = _run(tmp_path / "first", 150), _run(tmp_path / "second", 100)
    released = tmp_path / "released"
    (released / "evaluation").mkdir(parents=True)
    earlier = {name: training_history([first]) for name in ("elastic", "static")}
    earlier["static"]["steps"] = 999  # which twin's record was read
    (released / "evaluation" / "training_curves.json").write_text(json.dumps(earlier))
    history = training_history([released, second], "elastic")
    assert history["steps"] == 250 and [stage["run"] for stage in history["stages"]] == ["first", "second"]
    assert [step for step, _ in history["loss_curve"]] == [100, 150, 250]
    assert training_history([released], "static")["steps"] == 999
    with pytest.raises(ValueError, match="only the first"):
        training_history([second, released])


def test_training_history_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="recipe.json and examples.jsonl"):
        training_history([tmp_path])
    run = _run(tmp_path / "gap", 10)
    (run / "examples.jsonl").write_text(json.dumps({"step": 2, "loss": 1.0, "audio_seconds": 1, "step_seconds": 1}))
    with pytest.raises(ValueError, match="every step"):
        training_history([run])


def test_emotions_no_row_taught_are_suppressed_so_the_model_reports_unknown(tiny_model_dir, speech, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    asr = pipeline("automatic-speech-recognition", model=str(model_dir), max_new_tokens=4)
    assert asr(speech)["perception"]["emotion"]["label"] != "EMO_UNKNOWN"  # the random model picks any
    suppress_untaught_emotions(model_dir, taught=["HAPPY"])
    suppressed = GenerationConfig.from_pretrained(model_dir).suppress_tokens
    tokenizer = asr.processor.tokenizer
    assert set(tokenizer.convert_ids_to_tokens(suppressed)) == {
        "<|SAD|>", "<|ANGRY|>", "<|NEUTRAL|>", "<|FEARFUL|>", "<|DISGUSTED|>", "<|SURPRISED|>",
    }  # fmt: skip
    asr = pipeline("automatic-speech-recognition", model=str(model_dir), max_new_tokens=4)
    emotion = asr(speech)["perception"]["emotion"]
    assert emotion["label"] in ("HAPPY", "EMO_UNKNOWN") and sum(emotion["scores"].values()) == pytest.approx(1.0)
    assert emotion["scores"]["SAD"] == 0.0


TEST_PARTS = {"synthetic": ("en", "hello world", None), "real": ("en", "hello world", None),
              "events": ("nospeech", "", ["Speech"])}  # fmt: skip


def _corpus_with_test_parts(folder: Path, speech_path: Path) -> Path:
    """A corpus whose three test parts hold three rows of `speech_path` each."""
    corpus = _corpus(folder, "mixed", [("espeak-ng", "GPL-3.0+", 1.0)], ["en"])
    for part, (language, text, events) in TEST_PARTS.items():
        (corpus / "test" / part).mkdir(parents=True)
        table = datasets.Dataset.from_dict({
            "id": [f"{part}-{i}" for i in range(3)], "audio": [str(speech_path)] * 3, "text": [text] * 3,
            "language": [language] * 3, "gender": ["female"] * 3, "events": [events] * 3,
        }).cast_column("audio", datasets.Audio(sampling_rate=16000))  # fmt: skip
        table.to_parquet(str(corpus / "test" / part / "test-00000-of-00001.parquet"))
    return corpus


def test_the_held_out_rows_are_every_test_row_unless_limited(speech_path, tmp_path):
    corpus = _corpus_with_test_parts(tmp_path / "mixed", speech_path)

    every, first = held_out_subset(corpus, tmp_path / "every"), held_out_subset(corpus, tmp_path / "first", 2)

    for part in TEST_PARTS:
        assert every[part] == f"all 3 rows of {corpus / 'test' / part}"
        assert first[part] == f"the first 2 rows of {corpus / 'test' / part}"
        assert len(datasets.load_dataset("parquet", data_dir=str(tmp_path / "every" / part), split="test")) == 3
        assert len(datasets.load_dataset("parquet", data_dir=str(tmp_path / "first" / part), split="test")) == 2


def test_a_release_exports_a_loadable_folder_whose_files_name_their_sources(tiny_model_dir, speech_path, tmp_path):
    """End to end on a tiny model: held-out subset, both twins scored, targets, export, swap of an earlier folder."""
    corpus = _corpus_with_test_parts(tmp_path / "mixed", speech_path)
    model = shutil.copytree(tiny_model_dir, tmp_path / "stage" / "final")
    generation = GenerationConfig.from_pretrained(model)
    generation.max_new_tokens = 12  # an untrained model writes to the limit: keep the test short
    generation.save_pretrained(model)
    out = tmp_path / "models" / "tiny"
    out.mkdir(parents=True)
    (out / "old.txt").write_text("an earlier release")

    found = release(model, model, corpus, out, ks=[1, 2], rows_per_part=2, batch_size=2)

    assert not (out / "old.txt").exists() and not list(out.parent.glob("*.staging"))
    assert json.loads((out / "targets.json").read_text()) == found and (out / "targets.md").is_file()
    results = json.loads((out / "evaluation" / "results.json").read_text())
    assert (results["model"], results["rows"]) == (str(model), 6)
    assert results["data"] == f"the first 2 rows of each part of {corpus / 'test'}"
    assert {result.dataset_name for result in ModelCard.load(out / "README.md").data.eval_results} == {"test"}
    for part in TEST_PARTS:
        assert json.loads((out / "evaluation" / part / "results.json").read_text())["data"] == (
            f"the first 2 rows of {corpus / 'test'}/{part}"
        )
    static = json.loads((out / "evaluation" / "static" / "results.json").read_text())
    assert static["data"] == f"the first 2 rows of {corpus / 'test'}/synthetic"
    written = [path.read_text() for path in (out / "evaluation").rglob("*") if path.suffix in (".json", ".md")]
    assert not any("staging" in text for text in written)  # a path that is gone once released
    result = pipeline("automatic-speech-recognition", model=str(out))(str(speech_path))
    assert set(result["perception"]) == {"language", "emotion", "gender", "events"}
