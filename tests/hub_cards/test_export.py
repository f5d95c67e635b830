"""`touchasp export`: the folder is a complete Hub repo that loads without the package, and its card carries the
evaluation's numbers."""

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
from huggingface_hub import ModelCard
from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor, pipeline

import modeling_touchasp
from hub_cards.export import SCORES, add_arguments, build_card, export_model, run
from training.evaluation import evaluate_model

ASR = "automatic-speech-recognition"
# A random model generates to the limit; a few tokens keep each call at a fraction of a second.
MAX_NEW_TOKENS = 12
KS = [1, 2]
TRAINING_DATA = {
    "sources": [{"name": "asterisk-core-sounds-en-wav", "license": "CC-BY-SA-3.0", "hours": 0.4}],
    "languages": ["en", "zh-sichuan"],
    "events": ["Speech", "Music"],
    "corpora": [{"name": "mixed", "splits": {"train": {"hours": 8.9752}, "test": {"hours": 1.0256}}}],
    "targets": [
        {"target": "CER synthetic en at k=4", "value": 0.4, "goal": "<= 0.15", "met": False},
        {"target": "gender accuracy (whole test split) at k=4", "value": 0.97, "goal": ">= 0.95", "met": True},
        {"target": "CER real cs at k=4", "value": 0.6, "goal": "reported", "met": None},
    ],
    "procedure": {
        name: {"steps": 300, "audio_hours": 2.5, "stages": [
            {"run": "stage-1", "steps": 100, "init_from": None, "lr": 0.002, "schedule": "cosine",
             "elastic_k_choices": k_choices, "audio_hours": 0.8, "wall_hours": 0.1},
            {"run": "stage-2", "steps": 200, "init_from": "runs/stage-1/final", "lr": 0.001, "schedule": "cosine",
             "elastic_k_choices": k_choices, "audio_hours": 1.7, "wall_hours": 0.2},
        ]}
        for name, k_choices in (("elastic", [1, 2, 3, 4]), ("static", [4]))
    },
}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, speech_path: Path) -> Path:
    """The tiny model folder with what a trained one carries: `evaluation/` from `evaluate_model` on a parquet set
    (every score labelled) and `training_data.json`."""
    folder = tmp_path_factory.mktemp("source") / "touchasp-tiny"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "training_data.json").write_text(json.dumps(TRAINING_DATA), encoding="utf-8")
    data = tmp_path_factory.mktemp("data") / "eval-set"
    data.mkdir()
    columns = {
        "id": ["a", "b"], "audio": [str(speech_path)] * 2, "text": ["hello world", "hello there"],
        "language": ["en", "zh"], "gender": ["female", "male"], "emotion": ["NEUTRAL", "HAPPY"],
        "events": [["Speech"], ["Speech", "Music"]],
    }  # fmt: skip
    table = datasets.Dataset.from_dict(columns).cast_column("audio", datasets.Audio(sampling_rate=16000))
    table.to_parquet(str(data / "test.parquet"))
    evaluate_model(folder, data, KS, folder / "evaluation", batch_size=2)
    return folder


def export_with_cli(*argv: str) -> Path:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(argv)
    assert run(args) == 0
    return args.out


@pytest.fixture(scope="module")
def exported(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`touchasp export --model SOURCE --out DIR -k 2 --repo-id me/touchasp-tiny`."""
    out = tmp_path_factory.mktemp("exported") / "touchasp-tiny-k2"
    return export_with_cli("--model", str(source), "--out", str(out), "-k", "2", "--repo-id", "me/touchasp-tiny")


@pytest.fixture(scope="module")
def pruned(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`touchasp export --model SOURCE --out DIR --prune-experts 4`: 4 of the 8 routed experts."""
    out = tmp_path_factory.mktemp("pruned") / "touchasp-tiny-pool4"
    return export_with_cli("--model", str(source), "--out", str(out), "--prune-experts", "4")


FRESH_PROCESS = """
import json, sys
import soundfile
from transformers import AutoModelForSpeechSeq2Seq, pipeline

samples, _ = soundfile.read(sys.argv[1], dtype="float32")
results = {}
for folder in sys.argv[2:]:
    asr = pipeline("automatic-speech-recognition", model=folder, trust_remote_code=True, max_new_tokens=%d)
    model = AutoModelForSpeechSeq2Seq.from_pretrained(folder, trust_remote_code=True)
    results[folder] = {
        "output": asr(samples), "pipeline": type(asr).__module__, "model": type(model).__module__,
        "parameters": model.num_parameters(), "k": model.config.num_experts_per_tok,
    }
packages = [name for name in ("modeling_touchasp", "processing", "hub_cards") if name in sys.modules]
print(json.dumps({"results": results, "packages": packages}))
""" % MAX_NEW_TOKENS


@pytest.fixture(scope="module")
def fresh(exported: Path, pruned: Path, speech_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Both exported folders loaded in one fresh process that has transformers but not this package: cwd outside the
    repository, the repository off PYTHONPATH (the editable install maps the package only when it is imported, which
    the script checks it never is)."""
    work = tmp_path_factory.mktemp("fresh")
    repository = os.path.dirname(os.path.dirname(modeling_touchasp.__file__))
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            path for path in os.environ.get("PYTHONPATH", "").split(os.pathsep) if path and path != repository
        ),
        "HF_HUB_OFFLINE": "1",
        "HF_MODULES_CACHE": str(work / "modules"),
    }
    completed = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(speech_path), str(exported), str(pruned)],
        cwd=work, env=environment, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def in_process(model_dir: Path, speech_path: Path, **overrides) -> dict:
    """The package's pipeline on the model at `model_dir` (config `overrides` applied), as JSON carries it."""
    model = AutoModelForSpeechSeq2Seq.from_pretrained(model_dir, **overrides)
    asr = pipeline(ASR, model=model, processor=AutoProcessor.from_pretrained(model_dir), max_new_tokens=MAX_NEW_TOKENS)
    return json.loads(json.dumps(asr(str(speech_path))))


def assert_same_output(output: dict, expected: dict) -> None:
    """Equal up to float rounding in the last bits."""
    assert output["text"] == expected["text"] and output["chunks"] == expected["chunks"]
    for slot in ("language", "emotion", "gender"):
        assert output["perception"][slot]["label"] == expected["perception"][slot]["label"]
        assert output["perception"][slot]["scores"] == pytest.approx(expected["perception"][slot]["scores"], abs=1e-5)
    assert [e["label"] for e in output["perception"]["events"] or []] == [
        e["label"] for e in expected["perception"]["events"] or []
    ]


def test_exported_folder_is_a_complete_hub_repo(exported: Path):
    config = json.loads((exported / "config.json").read_text())
    for auto_class in ("AutoConfig", "AutoModel", "AutoModelForSpeechSeq2Seq", "AutoProcessor", "AutoTokenizer"):
        assert auto_class in config["auto_map"], auto_class
    assert config["custom_pipelines"][ASR]["impl"] == "pipeline_touchasp.TouchASPPipeline"
    assert config["num_experts_per_tok"] == 2
    for name in ("model.safetensors", "generation_config.json", "tokenizer.json", "processor_config.json",
                 "modeling_touchasp.py", "pipeline_touchasp.py", "README.md", "training_data.json",
                 "evaluation/results.json", "evaluation/quality_vs_active_parameters.png"):  # fmt: skip
        assert (exported / name).is_file(), name
    assert not list(exported.glob("evaluation/hypotheses_*")), "per-clip hypotheses are not published"
    # The export loaded the source under HF_HUB_OFFLINE=1 (the test run's setting); that must not ship.
    assert "local_files_only" not in json.loads((exported / "tokenizer_config.json").read_text())


def test_exported_folder_loads_without_the_package_and_matches_the_source(
    fresh: dict, exported: Path, tiny_model_dir: Path, speech_path: Path
):
    assert fresh["packages"] == []
    result = fresh["results"][str(exported)]
    assert result["pipeline"].startswith("transformers_modules.") and result["model"].startswith("transformers_modules.")
    assert result["k"] == 2
    assert_same_output(result["output"], in_process(tiny_model_dir, speech_path, num_experts_per_tok=2))


def test_pruned_export_is_smaller_and_matches_the_source_restricted_to_the_pool(
    fresh: dict, exported: Path, pruned: Path, tiny_model_dir: Path, speech_path: Path
):
    result, full = fresh["results"][str(pruned)], fresh["results"][str(exported)]
    assert result["model"].startswith("transformers_modules.")
    assert result["parameters"] < full["parameters"]
    assert json.loads((pruned / "config.json").read_text())["n_routed_experts"] == 4
    assert_same_output(result["output"], in_process(tiny_model_dir, speech_path, expert_pool_size=4))


def test_card_metadata_and_model_index_carry_results_json(exported: Path, source: Path):
    card = ModelCard.load(exported / "README.md")
    results = json.loads((source / "evaluation" / "results.json").read_text())

    assert card.data.pipeline_tag == ASR and card.data.library_name == "transformers"
    assert "custom_code" in card.data.tags and card.data.license == "apache-2.0"
    assert card.data.language == ["en"]  # from training_data.json; the dialect label is no ISO code
    reported = {(r.metric_name, r.metric_config): r for r in card.data.eval_results}
    expected = [(score, budget) for score in SCORES for budget in results["budgets"] if score.value(budget) is not None]
    assert len(expected) >= 6 * len(KS)  # CER, WER, LID, gender, emotion, events: every slot is labelled
    assert len(reported) == len(card.data.eval_results) == len(expected)
    for score, budget in expected:
        result = reported[(f"{score.name} (k={budget['k']})", f"num_experts_per_tok={budget['k']}")]
        assert result.metric_value == score.value(budget)
        assert result.metric_type == score.metric_type and result.task_type == score.task_type
        assert result.metric_args["active_parameters"] == budget["active_parameters"]
        assert result.dataset_name == "eval-set"


def test_card_body_has_budget_usage_training_data_and_limitations(exported: Path, source: Path):
    text = (exported / "README.md").read_text(encoding="utf-8")
    results = json.loads((source / "evaluation" / "results.json").read_text())
    for budget in results["budgets"]:
        assert f"| {100 * budget['cer']['all']['cer']:.2f}% |" in text
    assert "| 2 (default) |" in text
    assert 'pipeline("automatic-speech-recognition", model="me/touchasp-tiny", trust_remote_code=True)' in text
    assert "num_experts_per_tok=1" in text and "chunk_length_s" in text and "touchasp train" in text
    assert "| asterisk-core-sounds-en-wav | CC-BY-SA-3.0 | 0.4 |" in text
    assert "its held-out test split included" in text and "`mixed` train 8.98 h, test 1.03 h." in text
    assert "Emotion has no training data" in text and "Sound events seen in training: Speech; Music" in text
    assert "Memory-elastic variant" not in text
    mandarin = max(results["budgets"], key=lambda b: b["k"])["mandarin_syllables"]
    assert f"pinyin syllable error\n  {100 * mandarin['toneless']['wer']:.2f}% without tones" in text
    assert "misses 1 of the 2 held-out targets" in text and "CER synthetic en at k=4." in text
    assert "Trained for 300 optimiser steps over 2.5 hours of audio" in text
    assert "| 1 | 100 | random initialisation | 0.002 | cosine | 0.8 | 0.1 |" in text
    assert "| 2 | 200 | stage 1 | 0.001 | cosine | 1.7 | 0.2 |" in text
    assert "k fixed at 4) was trained\nwith the same budget, 300 steps" in text


def test_card_does_not_call_a_shorter_static_twin_the_same_budget(exported: Path):
    model = AutoModelForSpeechSeq2Seq.from_pretrained(exported)
    procedure = {**TRAINING_DATA["procedure"], "static": {**TRAINING_DATA["procedure"]["static"], "steps": 100}}
    text = build_card(model, None, {**TRAINING_DATA, "procedure": procedure}, "touchasp-tiny", "me/touchasp-tiny").text
    assert "same budget" not in text and "for 100 steps, fewer than this model's" in text


def test_card_names_the_head_that_wrote_the_scored_transcripts(exported: Path, source: Path):
    model = AutoModelForSpeechSeq2Seq.from_pretrained(exported)
    results = json.loads((source / "evaluation" / "results.json").read_text())
    texts = [build_card(model, {**results, **extra}, TRAINING_DATA, "touchasp-tiny", "me/touchasp-tiny").text
             for extra in ({}, {"transcript_decoding": "ctc"},
                           {"transcript_decoding": "ctc", "num_beams": 10, "ngram_lm": "m/ngram_lm.safetensors"})]
    assert "Whisper's temperature fallback" in texts[0] and "CTC head" not in texts[0]
    assert "transcript by greedy CTC from the encoder's CTC head" in texts[1] and "fallback" not in texts[1]
    assert "beam search" not in texts[1]
    assert "transcript by CTC prefix beam search of width 10 over the encoder's CTC head,\nfused with this folder's " \
           "token n-gram" in texts[2]
    assert '(`generate_kwargs={"num_beams": 10}`)' in texts[2]
    assert "This folder decodes with `num_beams=1` by default\n(generation_config.json)." in texts[2]
    assert "(generation_config.json), as scored." in texts[1]
    model.generation_config.num_beams = 10  # what a release scored with beam search ships
    beam_default = build_card(model, {**results, "transcript_decoding": "ctc", "num_beams": 10}, TRAINING_DATA,
                              "touchasp-tiny", "me/touchasp-tiny").text  # fmt: skip
    assert "This folder decodes with `num_beams=10` by default\n(generation_config.json), as scored." in beam_default


def test_pruned_card_says_so_and_leaves_out_the_unpruned_scores(pruned: Path):
    card = ModelCard.load(pruned / "README.md")
    assert "pruned" in card.data.tags and card.data.eval_results is None
    assert "keeps only the first 4 of the 8" in card.text and "touchasp-tiny" in card.text
    assert "scores it before it was pruned" in card.text
    assert not (pruned / "evaluation").exists()


def test_card_without_evaluation_or_training_data_says_unknown(tiny_model_dir: Path, tmp_path: Path):
    card = ModelCard.load(export_model(tiny_model_dir, tmp_path / "plain") / "README.md")
    assert card.data.eval_results is None and card.data.pipeline_tag == ASR
    assert "sources and their\nlicences are unknown" in card.text
    assert "No evaluation was found" in card.text
    assert "| 4 (default) | " in card.text  # the budget table still lists every trained k


def test_bad_inputs_are_named(source: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="not an empty folder"):
        export_model(source, source.parent)
    with pytest.raises(ValueError, match="-k 9: the exported model has 8 routed experts"):
        export_model(source, tmp_path / "k9", num_experts_per_tok=9)
    with pytest.raises(ValueError, match="-k 5: the exported model has 4 routed experts"):
        export_model(source, tmp_path / "k5", num_experts_per_tok=5, prune_experts=4)
    with pytest.raises(ValueError, match=r"--results .* scores a model of \d+ parameters"):
        export_model(source, tmp_path / "mismatch", prune_experts=4, results_json=source / "evaluation/results.json")
