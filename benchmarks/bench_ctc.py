"""CPU real-time factor of the shipped model's CTC transcripts: greedy, prefix beam search, and beam search fused
with the folder's token n-gram (`ngram_lm.safetensors`), at k=1 and k=4.

The same eight 10 s espeak-ng clips as `bench_rtf.py`, each clip alone (batch 1, as a device would decode).
Timed: `generate` on precomputed features, task tokens included (best of `--repeats` after one warm-up);
RTF = seconds / audio seconds. The beam search is a Python loop over frames, so it is the setting to watch.

    python benchmarks/bench_ctc.py [--model models/touchasp-tiny] [--threads 2] [--beams 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch
import transformers
from bench_rtf import CLIP_S, RATE, spoken_clips
from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor, LogitsProcessorList

import modeling_touchasp  # noqa: F401  (registers the model and processor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/touchasp-tiny")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--beams", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = AutoModelForSpeechSeq2Seq.from_pretrained(args.model).eval()
    processor = AutoProcessor.from_pretrained(args.model)
    if model.ngram_lm is None:
        raise SystemExit(f"{args.model} has no ngram_lm.safetensors: count one with `touchasp ngram` first")
    with tempfile.TemporaryDirectory() as folder:
        clips = spoken_clips(Path(folder))
    features = [processor.feature_extractor([clip], sampling_rate=RATE, return_tensors="pt") for clip in clips]
    grammar = LogitsProcessorList([processor.task_grammar()])
    lm = model.ngram_lm
    settings = [
        ("greedy CTC", 1, None),
        (f"beam {args.beams}", args.beams, None),
        (f"beam {args.beams} + n-gram", args.beams, lm),
    ]
    print(f"# {platform.machine()}, torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{args.threads} threads, {len(clips)} clips of {CLIP_S} s, batch 1, best of {args.repeats}, {args.model}")
    print("| transcript | " + " | ".join(f"RTF k={k}" for k in (1, 4)) + " |")
    print("|---|---|---|")
    for name, beams, setting_lm in settings:
        model.ngram_lm = setting_lm
        cells = []
        for k in (1, 4):
            best = float("inf")
            for repeat in range(args.repeats + 1):
                start = time.perf_counter()
                with torch.inference_mode():
                    for batch in features:
                        model.generate(**batch, num_experts_per_tok=k, transcript_decoding="ctc", num_beams=beams,
                                       logits_processor=grammar)
                if repeat:  # pass 0 is the warm-up
                    best = min(best, time.perf_counter() - start)
            cells.append(f"{best / (len(clips) * CLIP_S):.4f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
