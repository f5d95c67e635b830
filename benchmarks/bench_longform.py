"""Long-form transcription through `pipeline(...)`: VAD segments against fixed 30 s chunks, on real speech.

The recordings are `bench_pipeline.py`'s: held-out real lines (asterisk English prompts, fillets-ng Czech and Dutch
dialogue), 20 to a recording, joined by 1-3 s gaps of digital silence or a quiet music bed, so each is one to two
minutes long and is cut by the pipeline. For each language and each `vad` setting: CER of the whole transcript
against the lines' text joined in order, clip-level language accuracy, and the real-time factor of the whole call
(decoding, VAD and chunking; batch 1).

    PYTHONPATH=. python benchmarks/bench_longform.py --model models/touchasp-tiny --out /tmp/longform [--max-lines 100]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import soundfile
from transformers import pipeline

import modeling_touchasp  # noqa: F401  (registers the pipeline)
from benchmarks.bench_pipeline import build_recordings, held_out_lines
from processing.text_normalization import error_counts

LANGUAGES = ("en", "cs", "nl")


def run_language(asr, language: str, args: argparse.Namespace) -> list[dict]:
    recordings = args.out / "recordings"
    recordings.mkdir(parents=True, exist_ok=True)
    entries = build_recordings(language, held_out_lines(language, args.max_lines), recordings, args.seed)
    references = [" ".join(line["text"] for line in entry["truth"]) for entry in entries]
    seconds = sum(soundfile.info(recordings / entry["path"]).duration for entry in entries)
    rows = []
    for vad in (True, False):
        start = time.perf_counter()
        outputs = [asr(str(recordings / entry["path"]), vad=vad) for entry in entries]
        elapsed = time.perf_counter() - start
        errors = error_counts(references, [output["text"] for output in outputs], "character")
        rows.append({
            "language": language, "vad": vad, "recordings": len(entries), "audio_s": round(seconds, 1),
            "cer": errors["rate"],
            "language_accuracy": sum(output["perception"]["language"]["label"] == language for output in outputs)
            / len(outputs),
            "rtf": elapsed / seconds,
        })  # fmt: skip
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| language | vad | recordings (audio) | CER | clip language right | RTF |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['language']} | {row['vad']} | {row['recordings']} ({row['audio_s'] / 60:.1f} min) | "
            f"{100 * row['cer']:.1f}% | {100 * row['language_accuracy']:.0f}% | {row['rtf']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="TouchASP model folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-lines", type=int, default=100, help="held-out lines per language")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    asr = pipeline("automatic-speech-recognition", model=args.model)
    rows = [row for language in LANGUAGES for row in run_language(asr, language, args)]
    (args.out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
