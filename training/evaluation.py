"""The budget table: score one TouchASP model at several numbers of active experts (DESIGN.md section 7).

    touchasp evaluate --model PATH --data SPEC -k 1,2,4 --out DIR [--batch-size N] [--max-rows N]

`--data` is read by `read_rows`, which turns every supported layout into the same row dicts:
`{"id", "audio", "text", "language", "gender", "emotion", "events"}`, labels None where the source has none, and
`audio` anything `processing.audio.load_audio` takes (a path, or a `{"bytes", "path"}` dict from `datasets`).

`evaluate_model` decodes every clip whole with greedy search at each k (a looping transcript is decoded again by
the model's temperature fallback, as in the pipeline), parses the output with
`TouchASPProcessor.decode_perception` (the parser the pipeline uses), and scores it with the `evaluate` metric
modules in `training/metrics/`.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
import evaluate
import matplotlib
import numpy as np
import torch
from tqdm import tqdm
from transformers import LogitsProcessorList

import modeling_touchasp  # noqa: F401  (registers the model and processor with the Auto classes)
from modeling_touchasp.configuration_touchasp import TRANSCRIPT_DECODINGS, check_transcript_decoding
from modeling_touchasp.ngram_touchasp import NGRAM_LM_FILE, TokenNgramLM
from modeling_touchasp.pipeline_touchasp import default_max_new_tokens
from processing.processing_touchasp import DEFAULT_EVENT_THRESHOLD
from processing.text_normalization import is_space_delimited, normalize_for_cer, normalize_for_wer, to_pinyin

matplotlib.use("Agg")  # files only: evaluation runs on headless machines
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

METRICS_DIR = Path(__file__).resolve().parent / "metrics"
ROW_FIELDS = ("id", "audio", "text", "language", "gender", "emotion", "events")
CLASS_SLOTS = ("language", "gender", "emotion")
# Prediction label of a slot that generation never reached (the model ended the sequence before it).
NO_PREDICTION = "(none)"
# Group of rows without a language label in the per-language CER.
UNKNOWN_LANGUAGE = "unknown"
# Kaldi corpora spell gender as in spk2gender.
KALDI_GENDERS = {"m": "male", "f": "female", "male": "male", "female": "female"}


def read_rows(data_spec: str | Path) -> Iterator[dict[str, Any]]:
    """Rows of an evaluation set, whatever its layout:

    - a Kaldi data folder: `wav.scp` and `text`, optionally `utt2lang` and `utt2gender` (`read_kaldi`);
    - a SpeechIO `metadata.tsv`, or a folder holding one (`read_speechio`);
    - a `datasets` folder written by `save_to_disk`, a parquet file, a folder of parquet shards, or a glob of them
      (`read_datasets`).
    """
    path = Path(data_spec)
    if path.is_dir() and (path / "wav.scp").is_file():
        return read_kaldi(path)
    if path.is_dir() and (path / "metadata.tsv").is_file():
        return read_speechio(path / "metadata.tsv")
    if path.is_file() and path.suffix == ".tsv":
        return read_speechio(path)
    if path.is_dir() or path.suffix == ".parquet" or "*" in str(data_spec):
        return read_datasets(data_spec)
    raise ValueError(
        f"evaluation data {str(data_spec)!r} is not a Kaldi folder (wav.scp + text), a SpeechIO metadata.tsv, a "
        "datasets folder, or parquet shards (a file, a folder or a glob)"
    )


def _kaldi_table(path: Path) -> dict[str, str]:
    """A Kaldi `key value...` file as a dict (key and value split at the first run of spaces or tabs); {} when the
    optional file is absent."""
    if not path.is_file():
        return {}
    table = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split(maxsplit=1)
        if fields:
            table[fields[0]] = fields[1].strip() if len(fields) > 1 else ""
    return table


def read_kaldi(folder: Path) -> Iterator[dict[str, Any]]:
    """Rows of a Kaldi data folder, in `wav.scp` order. Relative audio paths are relative to `folder`.

    Piped entries (`sox ... |`) and archive offsets (`file.ark:123`) are refused: write the audio to files first.
    """
    folder = Path(folder)
    texts = _kaldi_table(folder / "text")
    languages = _kaldi_table(folder / "utt2lang")
    genders = _kaldi_table(folder / "utt2gender")
    for utterance, location in _kaldi_table(folder / "wav.scp").items():
        if location.endswith("|") or ".ark:" in location:
            raise ValueError(
                f"{folder / 'wav.scp'}: entry {utterance} is {location!r}, a pipe or archive; evaluation reads audio "
                "files only (extract them, e.g. with `wav-copy`, and list their paths)"
            )
        gender = genders.get(utterance)
        if gender is not None and gender.lower() not in KALDI_GENDERS:
            raise ValueError(
                f"{folder / 'utt2gender'}: {utterance} has gender {gender!r}; expected one of {sorted(KALDI_GENDERS)}"
            )
        yield {
            "id": utterance,
            "audio": str(folder / location),
            "text": texts.get(utterance),
            "language": languages.get(utterance),
            "gender": None if gender is None else KALDI_GENDERS[gender.lower()],
            "emotion": None,
            "events": None,
        }


def read_speechio(metadata: Path) -> Iterator[dict[str, Any]]:
    """Rows of a SpeechIO `metadata.tsv` (columns ID, AUDIO, DURATION, TEXT; an optional LANGUAGE column is
    used). AUDIO paths are relative to the file's folder."""
    metadata = Path(metadata)
    with metadata.open(encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = {"ID", "AUDIO", "TEXT"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{metadata} lacks the column(s) {sorted(missing)}; its header is {reader.fieldnames}")
        for record in reader:
            yield {
                "id": record["ID"],
                "audio": str(metadata.parent / record["AUDIO"]),
                "text": record["TEXT"],
                "language": record.get("LANGUAGE") or None,
                "gender": None,
                "emotion": None,
                "events": None,
            }


def read_datasets(data_spec: str | Path) -> Iterator[dict[str, Any]]:
    """Rows of a `datasets` table with the DESIGN.md section-6 columns (absent columns read as None).

    A `DatasetDict` folder yields its "test" split, or its only split. The audio is left encoded
    (`Audio(decode=False)`) so that it goes through the same decoder as files.
    """
    path = Path(data_spec)
    if path.is_dir() and any((path / name).is_file() for name in ("state.json", "dataset_dict.json")):
        table = datasets.load_from_disk(str(path))
    else:
        files = sorted(str(file) for file in path.glob("**/*.parquet")) if path.is_dir() else str(data_spec)
        if not files:
            raise ValueError(f"evaluation data folder {path} holds no parquet shards and no saved dataset")
        table = datasets.load_dataset("parquet", data_files=files, split="train")
    if isinstance(table, datasets.DatasetDict):
        if "test" not in table and len(table) != 1:
            raise ValueError(f"{path} holds the splits {list(table)}; evaluation needs a 'test' split or a single one")
        table = table["test"] if "test" in table else next(iter(table.values()))
    if "audio" not in table.column_names:
        raise ValueError(f"{data_spec} has no 'audio' column; its columns are {table.column_names}")
    if isinstance(table.features["audio"], datasets.Audio):
        table = table.cast_column("audio", datasets.Audio(decode=False))
    for index, record in enumerate(table):
        row = {field: record.get(field) for field in ROW_FIELDS}
        row["id"] = str(record["id"]) if record.get("id") is not None else str(index)
        yield row


def decode_rows(
    model, processor, rows: list[dict], k: int, batch_size: int, transcript_decoding: str | None = None,
    num_beams: int = 1,
) -> tuple[list[dict], float, float]:
    """Decoding of `rows` at `k` active routed experts, constrained like the pipeline (task grammar), the
    transcript by the head `transcript_decoding` names (None: the model config's), greedy or with `num_beams`
    (for CTC: the prefix beam search's width, with the model's n-gram LM when it has one).

    Returns (one `{"text", "perception"}` per row, decode seconds, audio seconds). Decode time covers feature
    extraction, generation and parsing, not reading the audio files. Events are parsed with threshold 0 so that
    every generated event keeps its score for mAP; `score_rows` applies the processor's threshold for F1.
    """
    rate = processor.feature_extractor.sampling_rate
    max_new_tokens = model.generation_config.max_new_tokens or default_max_new_tokens(model.config)
    grammar = LogitsProcessorList([processor.task_grammar()])
    decoded, decode_seconds, audio_seconds = [], 0.0, 0.0
    with tqdm(total=len(rows), desc=f"k={k}", unit="clip") as progress:
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            waveforms = [processor.load_audio(row["audio"]) for row in batch]
            began = time.perf_counter()
            features = processor.feature_extractor(
                waveforms, sampling_rate=rate, return_tensors="pt", return_attention_mask=True
            )
            with torch.inference_mode():
                output = model.generate(
                    input_features=features["input_features"].to(model.device),
                    attention_mask=features["attention_mask"].to(model.device),
                    num_experts_per_tok=k,
                    num_beams=num_beams,
                    do_sample=False,
                    max_new_tokens=max_new_tokens,
                    logits_processor=grammar,
                    return_dict_in_generate=True,
                    output_scores=True,
                    transcript_decoding=transcript_decoding,
                )
            decoded += processor.decode_perception(output.sequences, output.scores, event_threshold=0.0)
            decode_seconds += time.perf_counter() - began
            audio_seconds += sum(len(waveform) for waveform in waveforms) / rate
            progress.update(len(batch))
    return decoded, decode_seconds, audio_seconds


def load_metrics() -> dict[str, evaluate.Metric]:
    """The repository's metric modules, loaded by path (works offline)."""
    names = ("touchasp_cer", "touchasp_wer", "touchasp_classification", "touchasp_events")
    return {name: evaluate.load(str(METRICS_DIR / name), keep_in_memory=True) for name in names}


def score_rows(rows: list[dict], decoded: list[dict], metrics: dict[str, evaluate.Metric]) -> dict[str, Any]:
    """All quality scores of one k; a score is None when no row carries its reference label.

    - `cer` / `wer`: {"all": ..., language: ...}; CER groups rows by reference language ("unknown" when absent),
      WER covers only rows of space-delimited languages. A group whose references are all empty is left out.
    - `mandarin_syllables`: {"toneless": ..., "tonal": ...} error rates over the pinyin of the `zh` rows
      (`to_pinyin`). Toneless syllables far below CER mean the syllables are heard and the errors are tones or
      homophones (Hanzi that sound alike), which a better acoustic model alone does not fix.
    - `language` / `gender` / `emotion`: accuracy, macro-F1 and confusion matrix over rows with that label.
    - `events`: micro/macro F1 at the processor's event threshold, and mAP, over rows with an events list.
    """
    transcribed = [(row, out) for row, out in zip(rows, decoded) if row["text"] is not None]
    scores: dict[str, Any] = {
        "cer": _error_rates(transcribed, metrics["touchasp_cer"], normalize_for_cer, lambda language: True),
        "wer": _error_rates(
            transcribed, metrics["touchasp_wer"], normalize_for_wer,
            lambda language: language != UNKNOWN_LANGUAGE and is_space_delimited(language),
        ),
    }
    scores["mandarin_syllables"] = _syllable_error_rates(transcribed, metrics["touchasp_wer"])
    for slot in CLASS_SLOTS:
        pairs = [(row[slot], out["perception"][slot]) for row, out in zip(rows, decoded) if row[slot] is not None]
        scores[slot] = metrics["touchasp_classification"].compute(
            references=[reference for reference, _ in pairs],
            predictions=[predicted["label"] if predicted else NO_PREDICTION for _, predicted in pairs],
        ) if pairs else None
    labelled = [
        (row["events"], out["perception"]["events"] or [])
        for row, out in zip(rows, decoded)
        if row["events"] is not None
    ]
    scores["events"] = metrics["touchasp_events"].compute(
        references=[reference for reference, _ in labelled],
        predictions=[predicted for _, predicted in labelled],
        threshold=DEFAULT_EVENT_THRESHOLD,
    ) if labelled else None
    return scores


def _error_rates(pairs: list[tuple[dict, dict]], metric, normalize, included) -> dict[str, dict] | None:
    """{"all": score, language: score} over the rows whose language `included` accepts."""
    groups = defaultdict(list)
    for row, out in pairs:
        language = row["language"] or UNKNOWN_LANGUAGE
        if included(language):
            groups[language].append((row["text"], out["text"]))
            groups["all"].append((row["text"], out["text"]))
    results = {}
    for group, texts in sorted(groups.items(), key=lambda item: item[0] != "all"):
        if any(normalize(reference) for reference, _ in texts):
            references, predictions = zip(*texts)
            results[group] = metric.compute(references=list(references), predictions=list(predictions))
    return results or None


def _syllable_error_rates(pairs: list[tuple[dict, dict]], metric) -> dict[str, dict] | None:
    """Pinyin syllable error rates of the Mandarin rows, without and with tone numbers; None without such rows."""
    texts = [(row["text"], out["text"]) for row, out in pairs if row["language"] == "zh"]
    if not any(normalize_for_cer(reference) for reference, _ in texts):
        return None
    return {
        name: metric.compute(
            references=[to_pinyin(reference, tones) for reference, _ in texts],
            predictions=[to_pinyin(hypothesis, tones) for _, hypothesis in texts],
            normalize=False,
        )
        for name, tones in (("toneless", False), ("tonal", True))
    }


def evaluate_model(
    model_path: str | Path,
    data_spec: str | Path,
    ks: list[int] | None = None,
    out_dir: str | Path = "evaluation",
    batch_size: int = 8,
    max_rows: int | None = None,
    transcript_decoding: str | None = None,
    num_beams: int | None = None,
    ngram_lm: str | Path | None = None,
    model_name: str | None = None,
    data_name: str | None = None,
) -> dict[str, Any]:
    """Score the model at each k in `ks` (default: its `elastic_k_choices`) on the first `max_rows` rows (all when
    None; the corpora shuffle their test rows, so the first ones are a sample), the transcript written by the head
    `transcript_decoding` names (default: the model config's) with `num_beams` (default: the folder's
    generation_config.json, as the pipeline decodes; CTC: with the n-gram file `ngram_lm` in place of the model
    folder's), and write to `out_dir`:
    `results.json` (what this returns), `budget_table.md`, `hypotheses_k{k}.jsonl` (per-row output), and the
    plots `quality_vs_active_parameters.png`, `rtf_vs_k.png`, `lid_confusion_k{k}.png` (when rows carry languages).
    `model_name` and `data_name` say what the files call the model and the data (default: their paths), for a
    caller that scores a temporary copy.
    """
    from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

    model = AutoModelForSpeechSeq2Seq.from_pretrained(model_path).eval()
    processor = AutoProcessor.from_pretrained(model_path)
    if ngram_lm is not None:
        model.ngram_lm = TokenNgramLM.from_file(ngram_lm)
    elif model.ngram_lm is not None:
        ngram_lm = Path(model_path) / NGRAM_LM_FILE
    ks = list(ks or model.config.elastic_k_choices)
    transcript_decoding = check_transcript_decoding(transcript_decoding or model.config.transcript_decoding)
    for k in ks:
        if not 1 <= k <= model.config.n_routed_experts:
            raise ValueError(
                f"k={k} is not a number of active experts of {model_path}; it has 1..{model.config.n_routed_experts}"
            )
    if num_beams is None:
        num_beams = model.generation_config.num_beams or 1
    if num_beams < 1:
        raise ValueError(f"num_beams={num_beams}; expected at least 1")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}; expected at least 1")
    if max_rows is not None and max_rows < 1:
        raise ValueError(f"max_rows={max_rows}; expected at least 1, or None for every row")
    rows = list(itertools.islice(read_rows(data_spec), max_rows))
    if not rows:
        raise ValueError(f"evaluation data {str(data_spec)!r} holds no rows")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = load_metrics()
    budgets = []
    for k in ks:
        decoded, decode_seconds, audio_seconds = decode_rows(
            model, processor, rows, k, batch_size, transcript_decoding, num_beams
        )
        _write_hypotheses(out_dir / f"hypotheses_k{k}.jsonl", rows, decoded)
        budgets.append(
            {
                "k": k,
                "active_parameters": model.num_active_parameters(k),
                "decode_seconds": decode_seconds,
                "audio_seconds": audio_seconds,
                "rtf": decode_seconds / audio_seconds,
                **score_rows(rows, decoded, metrics),
            }
        )
    results = {
        "model": model_name or str(model_path),
        "data": data_name or str(data_spec),
        "rows": len(rows),
        "total_parameters": model.num_parameters(),
        "batch_size": batch_size,
        "transcript_decoding": transcript_decoding,
        "num_beams": num_beams,
        "ngram_lm": str(ngram_lm) if ngram_lm is not None else None,
        "torch_threads": torch.get_num_threads(),
        "budgets": budgets,
    }
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "budget_table.md").write_text(budget_table(results), encoding="utf-8")
    plot_results(results, out_dir)
    return results


def _write_hypotheses(path: Path, rows: list[dict], decoded: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as file:
        for row, out in zip(rows, decoded):
            record = {"id": row["id"], "reference": row["text"]}
            record.update(hypothesis=out["text"], perception=out["perception"])
            file.write(json.dumps(record, ensure_ascii=False) + "\n")


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _headline(budget: dict) -> dict[str, float | None]:
    """The one number per score that the table and the quality plot show."""

    def get(score: str, *keys: str) -> float | None:
        value = budget[score]
        for key in keys:
            value = None if value is None else value.get(key)
        return value

    return {
        "CER": get("cer", "all", "cer"),
        "WER": get("wer", "all", "wer"),
        "LID acc": get("language", "accuracy"),
        "gender acc": get("gender", "accuracy"),
        "emotion acc": get("emotion", "accuracy"),
        "event F1": get("events", "micro_f1"),
    }


def budget_table(results: dict) -> str:
    """Markdown: one row per k with active parameters, RTF and the headline scores ("n/a": no labels for it)."""
    columns = ("CER", "WER", "LID acc", "gender acc", "event F1")
    lines = [
        f"Model `{results['model']}` on `{results['data']}` ({results['rows']} clips, batch {results['batch_size']}, "
        f"{results['torch_threads']} threads); {results['total_parameters'] / 1e6:.2f} M parameters in total.",
        "",
        "| k | active params | RTF | " + " | ".join(columns) + " |",
        "|---" * (3 + len(columns)) + "|",
    ]
    for budget in results["budgets"]:
        headline = _headline(budget)
        cells = [str(budget["k"]), f"{budget['active_parameters'] / 1e6:.2f} M", f"{budget['rtf']:.3f}"]
        lines.append("| " + " | ".join(cells + [_percent(headline[column]) for column in columns]) + " |")
    return "\n".join(lines) + "\n"


def plot_results(results: dict, out_dir: Path) -> None:
    """Quality vs active parameters, RTF vs k, and the LID confusion matrix at each k, as PNG files."""
    budgets = results["budgets"]
    ks = [budget["k"] for budget in budgets]
    active = [budget["active_parameters"] / 1e6 for budget in budgets]
    headlines = [_headline(budget) for budget in budgets]

    figure, (errors, accuracies) = plt.subplots(1, 2, figsize=(11, 4))
    for axis, names, title in (
        (errors, ("CER", "WER"), "error rate (%, lower is better)"),
        (accuracies, ("LID acc", "gender acc", "emotion acc", "event F1"), "accuracy / F1 (%, higher is better)"),
    ):
        for name in names:
            points = [(x, 100 * h[name]) for x, h in zip(active, headlines) if h[name] is not None]
            if points:
                axis.plot(*zip(*points), marker="o", label=name)
        axis.set_xticks(active, [f"{x:.2f}\nk={k}" for k, x in zip(ks, active)])
        axis.set(xlabel="active parameters (M)", title=title)
        axis.grid(alpha=0.3)
        if axis.has_data():
            axis.legend()
    figure.tight_layout()
    figure.savefig(out_dir / "quality_vs_active_parameters.png", dpi=100)
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(5, 4))
    axis.plot(ks, [budget["rtf"] for budget in budgets], marker="o")
    axis.set(xlabel="active routed experts k", ylabel="real-time factor", xticks=ks,
             title=f"RTF, batch {results['batch_size']}, {results['torch_threads']} threads")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(out_dir / "rtf_vs_k.png", dpi=100)
    plt.close(figure)

    for budget in budgets:
        if budget["language"] is not None:
            k = budget["k"]
            _plot_confusion(budget["language"], f"language ID confusion, k={k}", out_dir / f"lid_confusion_k{k}.png")


def _plot_confusion(scores: dict, title: str, path: Path) -> None:
    matrix = np.array(scores["confusion_matrix"])
    labels = scores["labels"]
    size = 2 + 0.5 * len(labels)
    figure, axis = plt.subplots(figsize=(size + 1, size))
    image = axis.imshow(matrix, cmap="Blues")
    axis.set(xticks=range(len(labels)), yticks=range(len(labels)), xlabel="predicted", ylabel="reference", title=title)
    axis.set_xticklabels(labels, rotation=90)
    axis.set_yticklabels(labels)
    for (row, column), count in np.ndenumerate(matrix):
        if count:
            axis.text(column, row, str(count), ha="center", va="center", fontsize=8,
                      color="white" if count > matrix.max() / 2 else "black")
    figure.colorbar(image, ax=axis)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def parse_ks(text: str) -> list[int]:
    """"1,2,4" -> [1, 2, 4], for the command line."""
    try:
        ks = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"-k {text!r} is not a comma-separated list of integers, e.g. 1,2,4") from None
    if not ks:
        raise argparse.ArgumentTypeError(f"-k {text!r} names no k; give e.g. 1,2,4")
    return ks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `touchasp evaluate`."""
    parser.add_argument("--model", required=True, help="model folder")
    parser.add_argument(
        "--data", required=True,
        help="Kaldi folder (wav.scp + text [+ utt2lang, utt2gender]), SpeechIO metadata.tsv, datasets folder, "
        "or parquet shards (file, folder or glob)",
    )
    parser.add_argument(
        "-k", "--num-experts-per-tok", dest="ks", type=parse_ks, default=None,
        help="active routed experts to score, comma-separated (default: the model's elastic_k_choices)",
    )
    parser.add_argument("--out", required=True, type=Path, help="folder for results.json, budget_table.md and plots")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per generate call (default 8)")
    parser.add_argument("--max-rows", type=int, default=None, help="score only the first N rows (default: all)")
    parser.add_argument(
        "--transcript-decoding", choices=TRANSCRIPT_DECODINGS, default=None,
        help="head that writes the transcript: the decoder (attention) or the CTC head (default: the model's)",
    )
    parser.add_argument(
        "--num-beams", type=int, default=None,
        help="beam width (default: the model folder's generation_config.json, as the pipeline; 1 is greedy); with "
        "CTC transcripts the prefix beam search's, with the folder's ngram_lm.safetensors when it has one",
    )
    parser.add_argument(
        "--ngram-lm", type=Path, default=None, help="an ngram_lm.safetensors to use instead of the model folder's"
    )


def run(args: argparse.Namespace) -> int:
    """`touchasp evaluate`: score, write the outputs, print the budget table."""
    results = evaluate_model(
        args.model, args.data, args.ks, args.out, args.batch_size, args.max_rows, args.transcript_decoding,
        args.num_beams, args.ngram_lm,
    )
    print(budget_table(results), end="")
    print(f"results, budget table and plots in {args.out}")
    return 0
