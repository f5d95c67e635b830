"""Release the shipped `touchasp-tiny`: score the elastic model and its static twin on each held-out part of the
corpus, check the targets of the training issue, and export the model folder the CLI, pipeline and demo load.

    python -m training.release --elastic runs/touchasp-tiny/final --static runs/touchasp-tiny-static/final \
        --corpus corpora/mixed --out models/touchasp-tiny [-k 1,2,4] [--rows-per-part N] \
        [--elastic-runs RUN [RUN ...] --static-runs RUN [RUN ...]] [--more-corpora CORPUS [CORPUS ...]] \
        [--transcript-decoding ctc [--num-beams 10 --ngram-lm FILE]]

The held-out rows are every row of each test part (synthetic, real, events), or the first `--rows-per-part` of each
for a quicker look. Writes into `--out`: the Hub folder (`touchasp export`: weights, processor, code, card),
`evaluation/` (the elastic model on those rows, the card's scores), `evaluation/PART/results.json` (the same
decoding scored per part), `evaluation/static/` (the twin on the synthetic part, at the same k), `static/` (the
twin's weights, so that a later release can train both further), `targets.json` and `targets.md` (every target with
its measured value and whether it is met), and `training_data.json` (sources, licences, languages and events of the
corpora it trained on: `--corpus` and any `--more-corpora`; the targets; and the training procedure, which the card
lists). Emotion tokens that no row of those corpora taught are suppressed in the folder's generation config before
it is scored.

`--elastic-runs` / `--static-runs` name each model's training runs (`touchasp train` output folders), oldest
first, when it was trained in stages (`model.init_from` of the previous stage's `final/`). Their `recipe.json` and
`examples.jsonl` give the procedure (steps, starting point, peak lr, audio hours, wall hours per stage) and the
loss curves of both twins (`evaluation/training_curves.png` and `.json`). The first of them may be the released
model folder a run started from (`model.init_from=models/touchasp-tiny`): its recorded stages come first, since
its run folders are usually long gone.

`--static` may also be an earlier release's `evaluation/static/results.json`, when the twin's weights were not
kept: its scores are reused (they must be of the same held-out rows), and where the twins' step counts differ
`targets.md` shows the comparison unscored instead of comparing unequal budgets.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from datasets import Audio
from transformers import AutoTokenizer, GenerationConfig

from hub_cards.export import export_model
from modeling_touchasp.configuration_touchasp import TRANSCRIPT_DECODINGS
from modeling_touchasp.ngram_touchasp import NGRAM_LM_FILE
from processing.task_tokens import EMOTIONS, UNKNOWN_EMOTION, emotion_token
from training.evaluation import evaluate_model, load_metrics, parse_ks, plt, read_rows, score_rows
from training.train import RECIPE_FILE

PARTS = ("synthetic", "real", "events")
# How the transcripts were decoded: each part's results.json carries the whole split's, for the card and for reuse.
DECODING_FIELDS = ("transcript_decoding", "num_beams", "ngram_lm")
CER_TARGET, LID_TARGET, GENDER_TARGET, EVENT_F1_TARGET = 0.15, 0.95, 0.95, 0.8
K1_RATIO_TARGET, STATIC_GAP_TARGET = 1.3, 0.10
CURVE_BIN_STEPS = 100  # the loss curves are means over this many steps
RELEASED_CURVES = Path("evaluation") / "training_curves.json"  # a released model folder's training histories


def _at(results: dict[str, Any], k: int) -> dict[str, Any]:
    return next(budget for budget in results["budgets"] if budget["k"] == k)


def _cer(results: dict[str, Any], k: int, language: str = "all") -> float | None:
    cer = _at(results, k)["cer"] or {}
    return cer[language]["cer"] if language in cer else None


def targets(
    parts: dict[str, dict], overall: dict[str, Any], static: dict[str, Any], k_max: int,
    steps: tuple[int, int] | None = None,
) -> list[dict]:  # fmt: skip
    """Every target of the training issue: name, measured value, goal, and whether it is met (None: not a goal or
    no data). `parts` are the results per test part, `overall` on the whole test split, `static` the twin's;
    `steps` (elastic, static), when known and unequal, leaves the twin comparison unscored."""
    synthetic, k_values = parts["synthetic"], [budget["k"] for budget in parts["synthetic"]["budgets"]]

    def row(name: str, value: float | None, goal: str, met: bool | None) -> dict[str, Any]:
        return {"target": name, "value": value, "goal": goal, "met": met if value is not None else None}

    def score(results: dict[str, Any], slot: str, key: str) -> float | None:
        found = _at(results, k_max)[slot]
        return found[key] if found else None

    rows = []
    for language in ("en", "zh"):
        value = _cer(synthetic, k_max, language)
        rows.append(row(f"CER synthetic {language} at k={k_max}", value, f"<= {CER_TARGET}",
                        value is not None and value <= CER_TARGET))  # fmt: skip
    syllables = _at(synthetic, k_max)["mandarin_syllables"] or {}
    for name in ("toneless", "tonal"):
        value = syllables[name]["wer"] if name in syllables else None
        rows.append(row(f"Mandarin {name} pinyin syllable error, synthetic, at k={k_max}", value, "reported", None))
    for language, found in sorted((_at(parts["real"], k_max)["cer"] or {}).items()):
        rows.append(row(f"CER real {language} at k={k_max}", found["cer"], "reported", None))
    for slot, goal in (("language", LID_TARGET), ("gender", GENDER_TARGET)):
        value = score(overall, slot, "accuracy")
        rows.append(row(f"{slot} accuracy (whole test split) at k={k_max}", value, f">= {goal}",
                        value is not None and value >= goal))  # fmt: skip
    for name, results in (("events part", parts["events"]), ("whole test split", overall)):
        value = score(results, "events", "micro_f1")
        rows.append(row(f"event micro-F1 ({name}) at k={k_max}", value, f">= {EVENT_F1_TARGET}",
                        value is not None and value >= EVENT_F1_TARGET))  # fmt: skip
    k1, kmax = _cer(synthetic, min(k_values)), _cer(synthetic, k_max)
    ratio = k1 / kmax if k1 is not None and kmax else None
    rows.append(row(f"CER k={min(k_values)} / CER k={k_max} (synthetic, all languages)", ratio,
                    f"<= {K1_RATIO_TARGET}", ratio is not None and ratio <= K1_RATIO_TARGET))  # fmt: skip
    unequal = steps is not None and steps[0] != steps[1]
    for k in k_values:
        elastic_cer, static_cer = _cer(synthetic, k), _cer(static, k)
        gap = (elastic_cer - static_cer) / static_cer if elastic_cer is not None and static_cer else None
        goal = f"<= {STATIC_GAP_TARGET} relative" if k == k_max else "elastic far better at small k"
        met = gap is not None and gap <= STATIC_GAP_TARGET if k == k_max else gap is not None and gap < 0
        if unequal:
            goal, met = f"not scored: elastic trained {steps[0]} steps, static {steps[1]}", None
        rows.append(row(f"elastic vs static CER at k={k} (elastic {elastic_cer}, static {static_cer})", gap, goal, met))
    return rows


def targets_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| target | value | goal | met |", "|---|---|---|---|"]
    for row in rows:
        value = "-" if row["value"] is None else f"{row['value']:.4f}"
        met = {True: "yes", False: "**no**", None: "-"}[row["met"]]
        lines.append(f"| {row['target']} | {value} | {row['goal']} | {met} |")
    return "\n".join(lines) + "\n"


def training_data(corpora: list[Path]) -> dict[str, Any]:
    """The card's training-data facts from the stats.json of every corpus the model trained on: sources summed
    by name and licence, and every language, event and emotion any of them holds."""
    hours: dict[tuple[str, str], float] = {}
    languages, events, emotions, described = set(), set(), set(), []
    for corpus in corpora:
        stats = json.loads((corpus / "stats.json").read_text(encoding="utf-8"))
        for source in stats["sources"]:
            key = (source["name"], source["license"])
            hours[key] = hours.get(key, 0.0) + source["hours"]
        languages.update(stats["languages"])
        events.update(stats["events"])
        emotions.update(stats["emotions"])
        splits = {split: {"hours": v["hours"], "utterances": v["utterances"]} for split, v in stats["splits"].items()}
        described.append({"name": corpus.name, **stats["arguments"], "splits": splits})
    sources = [{"name": name, "license": license, "hours": round(total, 4)} for (name, license), total in hours.items()]
    return {"sources": sources, "languages": sorted(languages), "events": sorted(events), "emotions": sorted(emotions),
            "license": "apache-2.0", "corpora": described}  # fmt: skip


def check_corpora_listed(histories: dict[str, dict[str, Any]], corpora: list[Path]) -> None:
    """Refuse a release whose card would leave out a corpus some training stage read (its sources and licences)."""
    listed = [corpus.resolve() for corpus in corpora]
    for twin, history in histories.items():
        for stage in history["stages"]:
            for data_dir in stage.get("corpora", []):
                if not any(Path(data_dir).resolve().is_relative_to(corpus) for corpus in listed):
                    raise ValueError(
                        f"{twin} stage {stage['run']!r} trained on {data_dir}, which no --corpus or --more-corpora "
                        "folder holds: the card would not list its sources"
                    )


def training_history(runs: list[Path], twin: str = "elastic") -> dict[str, Any]:
    """One model's training from its run folders (oldest first): per stage the steps, starting point, peak lr,
    audio and wall hours, and the loss curve over all stages (mean per `CURVE_BIN_STEPS` steps). The first entry
    may be a released model folder instead, whose recorded history of `twin` ("elastic" or "static") it holds."""
    stages, curve, offset = [], [], 0
    for index, run in enumerate(runs):
        if (run / RELEASED_CURVES).is_file():
            if index:
                raise ValueError(f"{run} is a released model folder: only the first (oldest) entry may be one")
            released = json.loads((run / RELEASED_CURVES).read_text(encoding="utf-8"))[twin]
            stages, curve, offset = list(released["stages"]), list(released["loss_curve"]), released["steps"]
            continue
        recipe_path, log_path = run / RECIPE_FILE, run / "examples.jsonl"
        if not recipe_path.is_file() or not log_path.is_file():
            raise FileNotFoundError(
                f"{run} is neither a `touchasp train` output folder ({RECIPE_FILE} and examples.jsonl) nor a "
                f"released model folder ({RELEASED_CURVES})"
            )
        recipe = json.loads(recipe_path.read_text(encoding="utf-8"))
        # A resumed run appends to examples.jsonl; the last record of a step is the one that counted.
        lines = log_path.read_text(encoding="utf-8").splitlines()
        records = {record["step"]: record for record in map(json.loads, lines)}
        steps = sorted(records)
        if steps != list(range(1, len(steps) + 1)):
            raise ValueError(f"{log_path} does not hold every step from 1 to {steps[-1] if steps else 0}")
        losses = np.array([records[step]["loss"] for step in steps])
        for start in range(0, len(steps), CURVE_BIN_STEPS):
            window = losses[start : start + CURVE_BIN_STEPS]
            curve.append([offset + start + len(window), round(float(window.mean()), 4)])
        stages.append({
            "run": run.name, "steps": len(steps), "init_from": recipe["model"].get("init_from"),
            "lr": recipe["optimizer"]["lr"], "schedule": recipe["schedule"]["name"],
            "elastic_k_choices": recipe["model"].get("elastic_k_choices"),
            # every corpus the stage read audio from, the noise mixed in included: the card lists their sources
            "corpora": [corpus["data_dir"] for corpus in recipe.get("data", {}).get("corpora", [])]
            + [noise for noise in [recipe.get("augment", {}).get("noise_data_dir")] if noise],
            "audio_hours": round(sum(record["audio_seconds"] for record in records.values()) / 3600, 1),
            "wall_hours": round(sum(record["step_seconds"] for record in records.values()) / 3600, 2),
        })  # fmt: skip
        offset += len(steps)
    return {"steps": offset, "audio_hours": round(sum(stage["audio_hours"] for stage in stages), 1),
            "stages": stages, "loss_curve": curve}  # fmt: skip


def plot_training_curves(histories: dict[str, dict[str, Any]], path: Path) -> None:
    """The training-loss curves of the twins (name -> `training_history`), with the stage boundaries marked."""
    figure, axis = plt.subplots(figsize=(7, 4))
    for name, history in histories.items():
        axis.plot(*zip(*history["loss_curve"]), label=f"{name} ({history['steps']} steps)")
    boundaries = np.cumsum([stage["steps"] for stage in next(iter(histories.values()))["stages"]])[:-1]
    for step in boundaries:
        axis.axvline(step, color="grey", linestyle=":", linewidth=1)
    axis.set(xlabel="optimiser step", ylabel=f"training loss (mean of {CURVE_BIN_STEPS} steps)", yscale="log",
             title="training loss; dotted: a new stage started from the previous weights")  # fmt: skip
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def held_out_subset(corpus: Path, out: Path, rows_per_part: int | None = None) -> dict[str, str]:
    """Each test part, or its first `rows_per_part` rows (the corpus shuffled them), as `out/PART/*.parquet`;
    returns what each part holds, in words, for the results files. A part's every row steadies its small
    languages (Mandarin has 39 synthetic test rows in `mixed-f`, about 10 of the first 300)."""
    held_out = {}
    for part in PARTS:
        files = sorted(str(file) for file in (corpus / "test" / part).glob("*.parquet"))
        table = datasets.load_dataset("parquet", data_files=files, split="train").cast_column("audio", Audio(decode=False))
        (out / part).mkdir(parents=True)
        if rows_per_part is None or rows_per_part >= len(table):
            held_out[part] = f"all {len(table)} rows of {corpus / 'test' / part}"
        else:
            table = table.select(range(rows_per_part))
            held_out[part] = f"the first {rows_per_part} rows of {corpus / 'test' / part}"
        table.to_parquet(str(out / part / "test-00000-of-00001.parquet"))
    return held_out


def score_parts(subset: Path, evaluation: Path, overall: dict[str, Any], held_out: dict[str, str]) -> dict[str, dict]:
    """Each part's scores from the whole-split decoding's hypotheses (no second decoding), as `PART/results.json`,
    naming the rows as `held_out_subset` described them."""
    metrics = load_metrics()
    decoded = {}
    for budget in overall["budgets"]:
        lines = (evaluation / f"hypotheses_k{budget['k']}.jsonl").read_text(encoding="utf-8").splitlines()
        decoded[budget["k"]] = {record["id"]: {"text": record["hypothesis"], "perception": record["perception"]}
                                for record in map(json.loads, lines)}  # fmt: skip
    parts = {}
    for part in PARTS:
        rows = list(read_rows(subset / part))
        budgets = [{"k": k, **score_rows(rows, [by_id[row["id"]] for row in rows], metrics)} for k, by_id in decoded.items()]
        parts[part] = {"data": held_out[part], "rows": len(rows),
                       "budgets": budgets, **{key: overall.get(key) for key in DECODING_FIELDS}}  # fmt: skip
        (evaluation / part).mkdir(parents=True, exist_ok=True)
        (evaluation / part / "results.json").write_text(json.dumps(parts[part], indent=2, ensure_ascii=False) + "\n")
    return parts


def earlier_twin_results(path: Path, synthetic: dict[str, Any]) -> dict[str, Any]:
    """A static twin's `results.json` from an earlier release, checked to score the same held-out rows as the
    elastic model's `synthetic` part (row count, reference characters per language, transcript decoding) at each
    of its k."""
    results = json.loads(path.read_text(encoding="utf-8"))

    def references(budget: dict[str, Any]) -> dict[str, int]:
        return {language: found["reference_characters"] for language, found in (budget["cer"] or {}).items()}

    decodings = results.get("transcript_decoding", "attention"), synthetic.get("transcript_decoding", "attention")
    if decodings[0] != decodings[1]:
        raise ValueError(
            f"--static {path} scored {decodings[0]} transcripts, this release {decodings[1]} ones: release with "
            f"--transcript-decoding {decodings[0]} or pass the twin's weights"
        )
    beams = [(found.get("num_beams") or 1, found.get("ngram_lm") is not None) for found in (results, synthetic)]
    if beams[0] != beams[1]:
        raise ValueError(
            f"--static {path} scored with num_beams {beams[0][0]} and {'an' if beams[0][1] else 'no'} n-gram, this "
            f"release with num_beams {beams[1][0]} and {'an' if beams[1][1] else 'no'} n-gram: pass the twin's weights"
        )
    scored = [budget["k"] for budget in results["budgets"]]
    for budget in synthetic["budgets"]:
        if budget["k"] not in scored:
            raise ValueError(f"--static {path} has no scores at k={budget['k']}; release with -k from {scored}")
        if results["rows"] != synthetic["rows"] or references(_at(results, budget["k"])) != references(budget):
            raise ValueError(
                f"--static {path} scores other held-out rows than this release ({results['rows']} rows vs "
                f"{synthetic['rows']}, or other reference characters per language): rebuild the corpus with the "
                "same arguments and use the same --rows-per-part"
            )
    return results


def suppress_untaught_emotions(model_dir: Path, taught: list[str]) -> None:
    """Add the emotion tokens no training row taught to `generation_config.json`'s `suppress_tokens`: every row
    without an emotion label feeds `<|EMO_UNKNOWN|>`, so the model never learns to write another one, yet writes
    them at random (35 of 60 held-out speech rows for elastic stage 8) where the card says it knows no emotion."""
    untaught = [emotion_token(name) for name in EMOTIONS if name not in taught and emotion_token(name) != UNKNOWN_EMOTION]
    if not untaught:
        return
    generation = GenerationConfig.from_pretrained(model_dir)
    ids = AutoTokenizer.from_pretrained(model_dir).convert_tokens_to_ids(untaught)
    generation.suppress_tokens = sorted({*(generation.suppress_tokens or []), *ids})
    generation.save_pretrained(model_dir)


def release(
    elastic: Path,
    static: Path,
    corpus: Path,
    out: Path,
    ks: list[int],
    rows_per_part: int | None = None,
    batch_size: int = 16,
    elastic_runs: list[Path] = (),
    static_runs: list[Path] = (),
    more_corpora: list[Path] = (),
    transcript_decoding: str | None = None,
    num_beams: int = 1,
    ngram_lm: Path | None = None,
) -> list[dict[str, Any]]:
    """Evaluate, check the targets, export; returns the target rows. Without `elastic_runs` and `static_runs`
    the card has no training procedure. `transcript_decoding` (default: the elastic model's) scores both twins and
    becomes the released config's; `num_beams` and the n-gram file `ngram_lm` (shipped in the folder) score both
    twins' CTC transcripts by beam search and become the folder's default (generation_config.json). `static` is
    the twin's model folder, or an earlier release's `evaluation/static/results.json` whose scores are reused.
    `corpus` holds the held-out rows and, with `more_corpora`, every corpus the model trained on."""
    if bool(elastic_runs) != bool(static_runs):
        raise ValueError("pass the training runs of both twins (--elastic-runs and --static-runs) or of neither")
    histories = None
    if elastic_runs:
        histories = {name: training_history(list(runs), name)
                     for name, runs in (("elastic", elastic_runs), ("static", static_runs))}  # fmt: skip
        check_corpora_listed(histories, [corpus, *more_corpora])
    staging = out.with_name(out.name + ".staging")
    replaced = staging / f"{out.name}.replaced"
    if not out.exists() and replaced.is_dir():  # a release that died between its two renames below
        os.replace(replaced, out)
    shutil.rmtree(staging, ignore_errors=True)
    # The released copy is what gets scored, so that the pipeline decodes as the card was scored.
    facts = training_data([corpus, *more_corpora])
    shutil.copytree(elastic, staging / "model")
    suppress_untaught_emotions(staging / "model", facts["emotions"])
    evaluation = staging / "evaluation"
    reused_static = static.suffix == ".json"
    if reused_static:  # copied now: it may lie in `out`, which the release replaces
        shutil.copytree(static.parent, evaluation / "static")
    subset = staging / "test"
    held_out = held_out_subset(corpus, subset, rows_per_part)
    decoding = dict(num_beams=num_beams, ngram_lm=ngram_lm)
    # The files name the source model and corpus, not the staged copies, which are gone once released.
    scored = "every row of" if rows_per_part is None else f"the first {rows_per_part} rows of each part of"
    overall = evaluate_model(
        staging / "model", subset, ks, evaluation, batch_size, transcript_decoding=transcript_decoding,
        model_name=str(elastic), data_name=f"{scored} {corpus / 'test'}", **decoding,
    )
    parts = score_parts(subset, evaluation, overall, held_out)
    if reused_static:
        static_results = earlier_twin_results(evaluation / "static" / static.name, parts["synthetic"])
    else:
        static_results = evaluate_model(
            static, subset / "synthetic", ks, evaluation / "static", batch_size,
            transcript_decoding=overall["transcript_decoding"], data_name=parts["synthetic"]["data"], **decoding,
        )
    steps = (histories["elastic"]["steps"], histories["static"]["steps"]) if histories else None
    rows = targets(parts, overall, static_results, max(ks), steps)
    card_facts = {**facts, "targets": rows}
    if histories:
        plot_training_curves(histories, evaluation / "training_curves.png")
        (evaluation / "training_curves.json").write_text(json.dumps(histories, indent=2) + "\n")
        card_facts["procedure"] = {name: {key: value for key, value in history.items() if key != "loss_curve"}
                                   for name, history in histories.items()}  # fmt: skip
    if ngram_lm is not None:
        shutil.copy(ngram_lm, staging / "model" / NGRAM_LM_FILE)
    config_path = staging / "model" / "config.json"
    config = json.loads(config_path.read_text())
    config["transcript_decoding"] = overall["transcript_decoding"]
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    generation_path = staging / "model" / "generation_config.json"  # the pipeline decodes as the card was scored
    generation = json.loads(generation_path.read_text())
    generation["num_beams"] = num_beams
    generation_path.write_text(json.dumps(generation, indent=2) + "\n")
    (staging / "model" / "training_data.json").write_text(json.dumps(card_facts, indent=2) + "\n")
    # The whole folder is built beside the old one (whose static/ may be what this release evaluated), which is
    # swapped out only once the new one is complete: a failure before that leaves the old folder as it was.
    release = staging / out.name
    export_model(staging / "model", release, results_json=evaluation / "results.json")
    if ngram_lm is not None:  # byte for byte: safetensors writes the n-gram's two metadata keys in a random order,
        shutil.copy(ngram_lm, release / NGRAM_LM_FILE)  # so a re-saved copy is a new 3 MB blob in git every release
    shutil.copytree(
        evaluation, release / "evaluation", dirs_exist_ok=True, ignore=shutil.ignore_patterns("hypotheses_*")
    )
    if not reused_static:  # weights and processor, not a second copy of the code (the package loads it)
        shutil.copytree(static, release / "static", ignore=shutil.ignore_patterns("*.py", NGRAM_LM_FILE))
    (release / "targets.json").write_text(json.dumps(rows, indent=2) + "\n")
    (release / "targets.md").write_text(targets_markdown(rows))
    if out.exists():
        os.replace(out, replaced)
    os.replace(release, out)
    shutil.rmtree(staging)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--elastic", type=Path, required=True, help="the trained elastic model folder")
    parser.add_argument("--static", type=Path, required=True, help="its static twin (trained with the same budget), or an earlier release's evaluation/static/results.json")
    parser.add_argument("--corpus", type=Path, required=True, help="the corpus folder (test/PART/ and stats.json)")
    parser.add_argument("--out", type=Path, required=True, help="the model folder to write (replaced)")
    parser.add_argument("-k", "--num-experts-per-tok", dest="ks", type=parse_ks, default=[1, 2, 4],
                        help="budgets to score, comma-separated (default 1,2,4)")  # fmt: skip
    parser.add_argument("--rows-per-part", type=int, default=None,
                        help="score only the first N rows of each test part (default: every row)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--elastic-runs", type=Path, nargs="+", default=[],
                        help="the elastic model's `touchasp train` output folders, oldest stage first")  # fmt: skip
    parser.add_argument("--static-runs", type=Path, nargs="+", default=[], help="the same for the static twin")
    parser.add_argument("--more-corpora", type=Path, nargs="+", default=[],
                        help="further corpus folders the training stages read besides --corpus (for the card)")  # fmt: skip
    parser.add_argument("--transcript-decoding", choices=TRANSCRIPT_DECODINGS, default=None,
                        help="head that writes the transcripts scored and shipped (default: the elastic model's)")
    parser.add_argument("--num-beams", type=int, default=1,
                        help="score both twins with CTC prefix beam search of this width, the folder's default "
                             "(default 1: greedy)")
    parser.add_argument("--ngram-lm", type=Path, default=None,
                        help="an ngram_lm.safetensors (`touchasp ngram`) for that beam search, shipped in the folder")
    args = parser.parse_args()
    rows = release(args.elastic, args.static, args.corpus, args.out, args.ks, args.rows_per_part, args.batch_size,
                   args.elastic_runs, args.static_runs, args.more_corpora, args.transcript_decoding,
                   args.num_beams, args.ngram_lm)  # fmt: skip
    print(targets_markdown(rows), end="")


if __name__ == "__main__":
    main()
