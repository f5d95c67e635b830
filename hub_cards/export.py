"""`touchasp export`: a folder that is a complete Hub model repo, with a model card built from the evaluation.

    touchasp export --model PATH --out DIR [-k K] [--prune-experts P] [--results PATH] [--repo-id ID]

The folder is what `save_touchasp` writes (weights, config.json with `auto_map` and the custom pipeline, code,
processor and tokenizer files, generation_config.json) plus `README.md`, rendered from
`model_card_template.md` with `huggingface_hub.ModelCard`. Its `model-index` holds one result per score and k of
the evaluation's `results.json` (`training/evaluation.py`), found in the model folder (`results.json` or
`evaluation/results.json`) or given. The training data section reads an optional `training_data.json` in the
model folder, copied along:

    {"sources": [{"name": "asterisk-core-sounds-en-wav", "license": "CC-BY-SA-3.0", "hours": 0.4}],
     "languages": ["en", "zh"], "events": ["Applause", "Music"], "emotions": [],
     "datasets": ["hub/dataset-id"], "license": "apache-2.0"}

every key optional: `languages` feed the card's `language`, `events` and `emotions` (labels trained on) its
limitations, `datasets` (Hub ids) its `datasets`, `license` the model's licence (default apache-2.0).
`training.release` adds `targets` (rows of {"target", "value", "goal", "met"}: the missed ones head the
limitations) and `procedure` ({"elastic": ..., "static": ...} from `training.release.training_history`: the
training-procedure section).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor, PreTrainedModel

from modeling_touchasp import save_touchasp  # also registers the model and processor with the Auto classes

TEMPLATE = Path(__file__).resolve().with_name("model_card_template.md")
RESULTS_LOCATIONS = ("results.json", "evaluation/results.json")
TRAINING_DATA_FILE = "training_data.json"
# Evaluation outputs worth publishing beside the card; per-clip hypotheses stay behind.
EVALUATION_FILES = ("results.json", "budget_table.md", "*.png")
QUALITY_PLOT = "quality_vs_active_parameters.png"
DEFAULT_LICENSE = "apache-2.0"
ASR_TASK = "automatic-speech-recognition"
CLASSIFICATION_TASK = "audio-classification"
TAGS = ["touchasp", "speech", "audio", "mixture-of-experts", "elastic-moe", "language-identification",
        "audio-classification", "custom_code"]  # fmt: skip
# A Hub `language` entry: an ISO 639-1/3 code. Dialect labels such as zh-sichuan are left out of the metadata.
LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}$")


@dataclass(frozen=True)
class Score:
    """One headline score of a results.json budget: where it is, and how the card names it."""

    column: str
    name: str
    score: str
    keys: tuple[str, ...]
    metric_type: str
    task_type: str

    def value(self, budget: dict[str, Any]) -> float | None:
        value = budget.get(self.score)
        for key in self.keys:
            value = None if value is None else value.get(key)
        return value


SCORES = (
    Score("CER", "CER", "cer", ("all", "cer"), "cer", ASR_TASK),
    Score("WER", "WER", "wer", ("all", "wer"), "wer", ASR_TASK),
    Score("LID acc", "Language ID accuracy", "language", ("accuracy",), "accuracy", CLASSIFICATION_TASK),
    Score("gender acc", "Gender accuracy", "gender", ("accuracy",), "accuracy", CLASSIFICATION_TASK),
    Score("emotion acc", "Emotion accuracy", "emotion", ("accuracy",), "accuracy", CLASSIFICATION_TASK),
    Score("event F1", "Event micro-F1", "events", ("micro_f1",), "f1", CLASSIFICATION_TASK),
    Score("event mAP", "Event mAP", "events", ("map",), "map", CLASSIFICATION_TASK),
)
TASK_NAMES = {ASR_TASK: "Speech recognition", CLASSIFICATION_TASK: "Speech perception"}


def export_model(
    model_path: str | Path,
    out_dir: str | Path,
    num_experts_per_tok: int | None = None,
    prune_experts: int | None = None,
    results_json: str | Path | None = None,
    repo_id: str | None = None,
) -> Path:
    """Write the Hub folder of the model at `model_path` (a folder or a Hub id) to `out_dir` (new or empty).

    `num_experts_per_tok` sets the default k in config.json; `prune_experts` keeps only the first P routed experts
    (the memory-elastic variant, said so in the card). A results.json must score this very model (same parameter
    count): one given as `results_json` that does not is an error, one found in the model folder is left out of
    the card (as after pruning, which changes the model). `repo_id` is the Hub id the card's usage code loads
    (default "USER/<out_dir name>"). Returns `out_dir`.
    """
    out_dir = Path(out_dir)
    source = Path(model_path)
    if source.is_dir() and out_dir.resolve() == source.resolve():
        raise ValueError(f"--out {out_dir} is the model folder itself; export into a new folder")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ValueError(f"--out {out_dir} exists and is not an empty folder; export into a new or empty folder")

    model = AutoModelForSpeechSeq2Seq.from_pretrained(model_path)
    processor = AutoProcessor.from_pretrained(model_path)
    pruned = None
    if prune_experts is not None:
        routed = model.config.n_routed_experts
        if not 1 <= prune_experts <= routed:
            raise ValueError(f"--prune-experts {prune_experts}: {model_path} has {routed} routed experts; use 1..{routed}")
        pruned = {
            "pool": prune_experts,
            "routed_before": routed,
            # The folder's name, not its local path, goes into a card meant for the public.
            "source": source.name if source.is_dir() else str(model_path),
            "parameters_before": _millions(model.num_parameters()),
        }
        model.prune_experts(prune_experts)
    if num_experts_per_tok is not None:
        routed = model.config.n_routed_experts
        if not 1 <= num_experts_per_tok <= routed:
            raise ValueError(f"-k {num_experts_per_tok}: the exported model has {routed} routed experts; use 1..{routed}")
        model.config.num_experts_per_tok = num_experts_per_tok

    results, results_file, evaluation_missing = _find_results(source, results_json, model.num_parameters(), pruned)
    training_data = _read_training_data(source)
    save_touchasp(model, processor, out_dir)
    if training_data:
        shutil.copy(source / TRAINING_DATA_FILE, out_dir / TRAINING_DATA_FILE)
    quality_plot = _copy_evaluation(results_file, out_dir / "evaluation") if results_file else None
    card = build_card(model, results, training_data, out_dir.name, repo_id or f"USER/{out_dir.name}", pruned,
                      quality_plot, evaluation_missing)  # fmt: skip
    card.save(out_dir / "README.md")
    return out_dir


def _find_results(
    source: Path, results_json: str | Path | None, total_parameters: int, pruned: dict | None
) -> tuple[dict | None, Path | None, str]:
    """(results, its file, why the card has no scores) for the exported model."""
    if results_json is not None:
        path = Path(results_json)
        if not path.is_file():
            raise ValueError(f"--results {path} is not a file; give the results.json that `touchasp evaluate` wrote")
        results = _read_results(path)
        if results["total_parameters"] != total_parameters:
            raise ValueError(
                f"--results {path} scores a model of {results['total_parameters']} parameters, but the exported model "
                f"has {total_parameters}; evaluate the exported folder and pass its results.json"
            )
        return results, path, ""
    found = [source / location for location in RESULTS_LOCATIONS if (source / location).is_file()]
    if not found:
        return None, None, (
            "No evaluation was found beside this model (`results.json`); score it with `touchasp evaluate` and export "
            "again with `--results`."
        )
    results = _read_results(found[0])
    if results["total_parameters"] != total_parameters:
        change = "pruned" if pruned else "changed"
        return None, None, (
            f"The evaluation found beside the source model scores it before it was {change} "
            f"({results['total_parameters']} parameters, this folder has {total_parameters}), so its scores are not "
            "shown; evaluate this folder with `touchasp evaluate` and export again with `--results`."
        )
    return results, found[0], ""


def _read_results(path: Path) -> dict[str, Any]:
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"results file {path} is not JSON: {error}") from None
    missing = {"budgets", "total_parameters", "data", "rows"} - set(results)
    if missing:
        raise ValueError(f"results file {path} lacks {sorted(missing)}; expected what `touchasp evaluate` writes")
    return results


def _read_training_data(source: Path) -> dict[str, Any]:
    path = source / TRAINING_DATA_FILE
    if not path.is_file():
        return {}
    try:
        training_data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not JSON: {error}") from None
    if not isinstance(training_data, dict):
        raise ValueError(f"{path} holds a {type(training_data).__name__}; expected an object such as {{\"sources\": [...]}}")
    return training_data


def _copy_evaluation(results_file: Path, destination: Path) -> str | None:
    """Copy the publishable evaluation outputs; the card-relative path of the quality plot, if there is one."""
    destination.mkdir(parents=True, exist_ok=True)
    for pattern in EVALUATION_FILES:
        for path in results_file.parent.glob(pattern):
            shutil.copy(path, destination / path.name)
    return f"{destination.name}/{QUALITY_PLOT}" if (destination / QUALITY_PLOT).is_file() else None


def build_card(
    model: PreTrainedModel,
    results: dict | None,
    training_data: dict[str, Any],
    model_name: str,
    repo_id: str,
    pruned: dict | None = None,
    quality_plot: str | None = None,
    evaluation_missing: str = "",
) -> ModelCard:
    """The model card: metadata with a model-index from `results` (one EvalResult per score and k), and the body
    from `model_card_template.md`."""
    config = model.config
    total = model.num_parameters()
    eval_results = eval_results_from(results) if results else None
    metrics = sorted({result.metric_type for result in eval_results or []}) or ["cer", "wer", "accuracy", "f1"]
    card_data = ModelCardData(
        language=_card_languages(training_data, results),
        license=training_data.get("license", DEFAULT_LICENSE),
        library_name="transformers",
        pipeline_tag=ASR_TASK,
        tags=TAGS + (["pruned"] if pruned else []),
        datasets=training_data.get("datasets") or None,
        metrics=metrics,
        model_name=model_name if eval_results else None,  # the model-index's name; alone it is not card metadata
        eval_results=eval_results,
    )
    budgets = results["budgets"] if results else [{"k": k} for k in config.elastic_k_choices]
    scores = [score for score in SCORES if results and any(score.value(b) is not None for b in budgets)]
    languages = _cer_languages(budgets) if results else []
    return ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE),
        model_name=model_name,
        repo_id=repo_id,
        total_parameters=_millions(total),
        n_routed_experts=config.n_routed_experts,
        n_shared_experts=config.n_shared_experts,
        encoder_layers=config.encoder_layers,
        decoder_layers=config.decoder_layers,
        d_model=config.d_model,
        default_k=config.num_experts_per_tok,
        pruned=pruned,
        score_columns=(["RTF"] if results else []) + [score.column for score in scores],
        budget=[
            {
                "k": budget["k"],
                "default": budget["k"] == config.num_experts_per_tok,
                "active": _millions(model.num_active_parameters(budget["k"])),
                "share": f"{model.num_active_parameters(budget['k']) / total:.0%}",
                "scores": ([f"{budget['rtf']:.3f}"] if results else [])
                + [_percent(score.value(budget)) for score in scores],
            }
            for budget in budgets
        ],
        evaluation={
            "dataset": _dataset_name(results["data"]), "rows": results["rows"],
            "batch_size": results.get("batch_size", "?"), "threads": results.get("torch_threads", "?"),
            "transcript_decoding": results.get("transcript_decoding", "attention"),
            "num_beams": results.get("num_beams") or 1, "ngram_lm": results.get("ngram_lm") is not None,
            "default_beams": model.generation_config.num_beams or 1,
        } if results else None,  # fmt: skip
        language_columns=languages,
        language_rows=[
            {"k": b["k"], "cells": [_percent((b["cer"].get(language) or {}).get("cer")) for language in languages]}
            for b in budgets
        ] if languages else [],  # fmt: skip
        quality_plot=quality_plot,
        evaluation_missing=evaluation_missing,
        training_sources=[
            {"name": s.get("name", "?"), "license": s.get("license", "unknown"), "hours": s.get("hours", "?")}
            for s in training_data.get("sources", [])
        ],
        training_corpora=[
            {"name": corpus.get("name", "?"), "splits": corpus.get("splits", {})}
            for corpus in training_data.get("corpora", [])
        ],
        training_languages=training_data.get("languages", []),
        emotion_trained=bool(training_data.get("emotions")),
        emotions_seen=training_data.get("emotions", []),
        events_seen=training_data.get("events", []),
        procedure=training_data.get("procedure"),
        mandarin=_mandarin_errors(budgets),
        missed_targets=[row["target"] for row in training_data.get("targets", []) if row.get("met") is False],
        scored_targets=sum(row.get("met") is not None for row in training_data.get("targets", [])),
    )


def eval_results_from(results: dict[str, Any]) -> list[EvalResult]:
    """One EvalResult per headline score and k: the value as results.json has it (a fraction, not a percentage),
    `metric_config` "num_experts_per_tok=K" and `metric_args` {"num_experts_per_tok", "active_parameters"}."""
    dataset = _dataset_name(results["data"])
    eval_results = []
    for score in SCORES:
        for budget in results["budgets"]:
            value = score.value(budget)
            if value is None:
                continue
            k = budget["k"]
            eval_results.append(
                EvalResult(
                    task_type=score.task_type,
                    task_name=TASK_NAMES[score.task_type],
                    dataset_type=dataset,
                    dataset_name=dataset,
                    metric_type=score.metric_type,
                    metric_value=value,
                    metric_name=f"{score.name} (k={k})",
                    metric_config=f"num_experts_per_tok={k}",
                    metric_args={"num_experts_per_tok": k, "active_parameters": budget["active_parameters"]},
                )
            )
    return eval_results


def _card_languages(training_data: dict[str, Any], results: dict | None) -> list[str] | None:
    """ISO codes of the training languages, else of the evaluated ones."""
    languages = training_data.get("languages") or (_cer_languages(results["budgets"]) if results else [])
    return [language for language in languages if LANGUAGE_CODE.match(language)] or None


def _cer_languages(budgets: list[dict]) -> list[str]:
    """Languages with their own CER group in results.json ("all" and rows without a language left out)."""
    languages = {language for b in budgets for language in (b.get("cer") or {})}
    return sorted(languages - {"all", "unknown"})


def _mandarin_errors(budgets: list[dict]) -> dict[str, Any] | None:
    """CER and pinyin syllable error rates of the Mandarin rows at the largest k, for the card's limitations; None
    without Mandarin rows or in an evaluation from before the syllable scores."""
    budget = max(budgets, key=lambda b: b["k"])
    syllables = budget.get("mandarin_syllables")
    if not syllables:
        return None
    return {"k": budget["k"], "cer": _percent(budget["cer"]["zh"]["cer"]),
            **{name: _percent(syllables[name]["wer"]) for name in ("toneless", "tonal")}}  # fmt: skip


def _dataset_name(data_spec: str) -> str:
    """The evaluation data's folder or file name (the folder above a glob)."""
    parts = [part for part in Path(data_spec).parts if "*" not in part]
    return Path(*parts).name if parts else str(data_spec)


def _millions(count: int) -> str:
    return f"{count / 1e6:.2f} M"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `touchasp export`."""
    parser.add_argument("--model", required=True, help="model folder (or Hub id) to export")
    parser.add_argument("--out", required=True, type=Path, help="new or empty folder for the Hub repo files")
    parser.add_argument("-k", "--num-experts-per-tok", type=int, default=None, help="default active routed experts")
    parser.add_argument("--prune-experts", type=int, default=None, metavar="P",
                        help="keep only the first P routed experts (memory-elastic variant)")  # fmt: skip
    parser.add_argument("--results", type=Path, default=None,
                        help="results.json of `touchasp evaluate` on this model (default: found in --model)")  # fmt: skip
    parser.add_argument("--repo-id", default=None, help="Hub id the card's usage code names (default USER/<out name>)")


def run(args: argparse.Namespace) -> int:
    """`touchasp export`: write the folder and say where it is."""
    out_dir = export_model(
        args.model, args.out, args.num_experts_per_tok, args.prune_experts, args.results, args.repo_id
    )
    print(f"Hub model folder in {out_dir}; upload it with `touchasp push --folder {out_dir} --repo-id USER/NAME`")
    return 0
