"""The pipeline's VAD probe for clips decoded whole: silero-vad's highest frame speech probability per held-out row.

A clip whose peak stays under `VAD_NO_SPEECH_PROBABILITY` keeps no text (its events are still decoded). This counts,
at that threshold and its neighbours, the held-out speech rows that would lose their text and the rows without
speech (sound events alone) and Gaussian noise clips (3 s, -80 to -20 dBFS) that would keep it.

    PYTHONPATH=. python benchmarks/bench_vad_probe.py corpora/mixed-f/test corpora/events-f/test [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from modeling_touchasp.pipeline_touchasp import VAD_NO_SPEECH_PROBABILITY, peak_speech_probability
from processing.audio import load_audio
from training.evaluation import read_rows

RATE = 16000
NOISE_DBFS = (-80, -70, -60, -50, -40, -30, -20)
THRESHOLDS = (0.1, 0.15, VAD_NO_SPEECH_PROBABILITY, 0.3, 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="+", help="evaluation sets (anything `touchasp evaluate --data` reads)")
    parser.add_argument("--out", type=Path, help="also write the peaks and counts here as JSON")
    args = parser.parse_args()
    from silero_vad import load_silero_vad

    torch.set_num_threads(1)
    model = load_silero_vad()
    peaks: dict[str, list[float]] = {"speech": [], "no speech": [], "noise": []}
    for data in args.data:
        for row in read_rows(data):
            kind = "no speech" if row["language"] == "nospeech" else "speech"
            peaks[kind].append(peak_speech_probability(model, load_audio(row["audio"]), RATE))
    rng = np.random.default_rng(0)
    for dbfs in NOISE_DBFS:
        for _ in range(3):
            noise = rng.normal(0, 10 ** (dbfs / 20), 3 * RATE).astype(np.float32)
            peaks["noise"].append(peak_speech_probability(model, noise, RATE))
    counts = [
        {
            "threshold": threshold,
            "speech rows losing text": int(sum(peak < threshold for peak in peaks["speech"])),
            "no-speech rows keeping text": int(sum(peak >= threshold for peak in peaks["no speech"])),
            "noise clips keeping text": int(sum(peak >= threshold for peak in peaks["noise"])),
        }
        for threshold in THRESHOLDS
    ]
    print(f"rows: {len(peaks['speech'])} speech, {len(peaks['no speech'])} without speech, {len(peaks['noise'])} noise")
    print("lowest speech peaks:", [round(peak, 3) for peak in sorted(peaks["speech"])[:5]])
    print("highest noise peak:", round(max(peaks["noise"]), 3))
    print("| threshold | speech rows losing text | no-speech rows keeping text | noise clips keeping text |")
    print("|---|---|---|---|")
    for count in counts:
        print("| " + " | ".join(str(value) for value in count.values()) + " |")
    if args.out:
        args.out.write_text(json.dumps({"peaks": peaks, "counts": counts}, indent=1))


if __name__ == "__main__":
    main()
