"""How good is the data the unsupervised pipeline keeps? Yield and label precision on real dialogue.

"Web-like" long recordings are built from real recorded lines whose true text is known, held out from the
shipped model's training (the corpus's test split by sentence text): asterisk English prompts and fillets-ng
Czech and Dutch dialogue, each level's lines in game order, joined by 1-3 s gaps of silence or a quiet music bed
(asterisk music-on-hold, 20 dB under the speech). `touchasp pipeline` runs on them with real systems:
- English: system A = the TouchASP model, system B = pocketsphinx (independent);
- Czech and Dutch: system A = the TouchASP model, system B = a second TouchASP model (`--system-b-other`, e.g. the
  static twin): trained on the same data, so less independent than pocketsphinx; reported separately.

The pipeline runs once with the CER check open (`--cer-threshold` 1e9), so every segment that passes the other
checks carries its CER(A, B); keeping those with CER <= t is exactly a run at threshold t. For each t:
- yield = hours kept / hours of true speech in the recordings;
- precision = CER of the kept pseudo-labels (system A's text) against the true lines the segment covers
  (a line belongs to the segment holding most of it).

    python benchmarks/bench_pipeline.py --system-a models/touchasp-tiny --system-b-other runs/touchasp-tiny-static/final \
        --out /tmp/pipeline-proof [--max-lines 150]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
import soundfile

from processing.audio import TouchASPInputError, load_audio
from processing.text_normalization import error_counts
from training import pipeline, sources
from training.corpus import text_split

RATE = 16000
THRESHOLDS = (0.1, 0.2, 0.3, 0.5, 1.0, float("inf"))
LINES_PER_RECORDING = 20
MUSIC_GAIN_DB = -20


def held_out_lines(language: str, max_lines: int) -> list[sources.SourceClip]:
    """Real lines of `language` whose sentence is in the corpus's test split, in their source order."""
    clips = sources.asterisk_prompts(language) if language == "en" else sources.fillets_lines(language)
    return [clip for clip in clips if text_split(clip.text, 0.1) == "test"][:max_lines]


def build_recordings(language: str, lines: list[sources.SourceClip], out: Path, seed: int) -> list[dict]:
    """Long wavs of LINES_PER_RECORDING lines each, with the true (start, end, text) of every line; the manifest
    entries (with the language) are returned and written as `out/manifest-LANGUAGE.jsonl`."""
    rng = random.Random(seed)
    music = load_audio(next((sources.fetch_package("asterisk-moh-opsound-wav") / "usr/share/asterisk/moh").glob("*.wav")))
    entries = []
    for number in range(0, len(lines), LINES_PER_RECORDING):
        pieces, truth, cursor = [], [], 0
        for clip in lines[number : number + LINES_PER_RECORDING]:
            try:
                speech = load_audio(clip.path)
            except TouchASPInputError:  # a broken Debian file: left out of the recording and of the truth
                continue
            gap = _gap(rng.uniform(1.0, 3.0), music, speech, rng)
            pieces += [gap, speech]
            truth.append({"start": (cursor + len(gap)) / RATE, "end": (cursor + len(gap) + len(speech)) / RATE,
                          "text": clip.text})  # fmt: skip
            cursor += len(gap) + len(speech)
        path = out / f"{language}-{number // LINES_PER_RECORDING:03d}.wav"
        soundfile.write(path, np.concatenate(pieces + [np.zeros(RATE, np.float32)]), RATE, subtype="PCM_16")
        entries.append({"path": path.name, "id": path.stem, "language": language, "truth": truth})
    manifest = out / f"manifest-{language}.jsonl"
    manifest.write_text("".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in entries))
    return entries


def _gap(seconds: float, music: np.ndarray, speech: np.ndarray, rng: random.Random) -> np.ndarray:
    """Silence, or half the time a stretch of the music bed MUSIC_GAIN_DB under the speech's level."""
    length = int(seconds * RATE)
    if rng.random() < 0.5:
        return np.zeros(length, np.float32)
    start = rng.randrange(0, len(music) - length)
    bed = music[start : start + length]
    gain = np.sqrt(np.mean(speech**2) / (np.mean(bed**2) + 1e-12)) * 10 ** (MUSIC_GAIN_DB / 20)
    return (bed * gain).astype(np.float32)


def score(entries: list[dict], decisions: list[dict]) -> list[dict]:
    """Yield and precision per threshold (module docstring)."""
    truth = {entry["id"]: entry["truth"] for entry in entries}
    speech_hours = sum(line["end"] - line["start"] for lines in truth.values() for line in lines) / 3600
    candidates = [(record, _reference(record, truth[record["input"]])) for record in decisions
                  if record["reason"] is None]  # fmt: skip
    rows = []
    for threshold in THRESHOLDS:
        kept = [(record, reference) for record, reference in candidates if record["cer"] <= threshold]
        errors = error_counts([ref for _, ref in kept], [record["text_a"] for record, _ in kept], "character") \
            if kept else {"rate": None}  # fmt: skip
        rows.append({
            "threshold": threshold, "segments_kept": len(kept),
            "hours_kept": sum(record["duration"] for record, _ in kept) / 3600, "speech_hours": speech_hours,
            "yield": sum(record["duration"] for record, _ in kept) / 3600 / speech_hours,
            "label_cer": errors["rate"],
        })  # fmt: skip
    return rows


def _reference(record: dict, lines: list[dict]) -> str:
    """The true text of the lines whose larger part lies inside the segment, in order."""
    inside = [line["text"] for line in lines
              if min(line["end"], record["end"]) - max(line["start"], record["start"]) > (line["end"] - line["start"]) / 2]  # fmt: skip
    return " ".join(inside)


def run_language(language: str, system_a: str, system_b: str, args: argparse.Namespace) -> list[dict]:
    recordings = args.out / "recordings"
    recordings.mkdir(parents=True, exist_ok=True)
    entries = build_recordings(language, held_out_lines(language, args.max_lines), recordings, args.seed)
    config = pipeline.PipelineConfig(language=language, cer_threshold=1e9, num_proc=args.num_proc)
    report = pipeline.run_pipeline(
        recordings / f"manifest-{language}.jsonl", args.out / f"pipeline-{language}",
        pipeline.load_system(system_a, "A", config), pipeline.load_system(system_b, "B", config), config,
    )  # fmt: skip
    decisions = [json.loads(line) for line in (args.out / f"pipeline-{language}" / "decisions.jsonl").open()]
    rows = score(entries, decisions)
    for row in rows:
        row.update(language=language, system_b=Path(system_b).name, drops=report["drops"])
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| language | system B | CER(A,B) threshold | segments kept | hours kept / speech | yield | CER of kept labels |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in rows:
        cer = "-" if row["label_cer"] is None else f"{100 * row['label_cer']:.1f}%"
        lines.append(f"| {row['language']} | {row['system_b']} | {row['threshold']} | {row['segments_kept']} | "
                     f"{row['hours_kept']:.3f} / {row['speech_hours']:.3f} | {100 * row['yield']:.1f}% | {cer} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system-a", required=True, help="TouchASP model folder")
    parser.add_argument("--system-b-other", required=True, help="second model folder for Czech and Dutch")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-lines", type=int, default=150, help="held-out lines per language")
    parser.add_argument("--num-proc", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = run_language("en", args.system_a, "pocketsphinx", args)
    for language in ("cs", "nl"):
        rows += run_language(language, args.system_a, args.system_b_other, args)
    (args.out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
