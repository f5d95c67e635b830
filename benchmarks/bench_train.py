"""Training throughput of the tiny recipe on CPU: audio seconds trained per second, and the share of step time
spent waiting for data, with the featurizing done in the main process (0 workers) and in worker processes.

    PYTHONPATH=. python benchmarks/bench_train.py [--steps 40] [--warmup 5] [--threads 2]

The corpus is spoken by espeak-ng (several languages and voices) into a temporary folder; the recipe is
training/configs/tiny.yaml with evaluation and checkpoints off.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import tempfile
from pathlib import Path

import datasets
import soundfile
import torch

from training.data import CORPUS_FEATURES, write_corpus
from training.train import load_config, train

RECIPE = Path(__file__).resolve().parents[1] / "training" / "configs" / "tiny.yaml"
SENTENCES = [
    ("en", "en+m3", "male", "the quick brown fox jumps over the lazy dog near the river bank"),
    ("en", "en+f3", "female", "speech recognition with an elastic mixture of experts runs on any device"),
    ("fr", "fr+f3", "female", "le vif renard brun saute par dessus le chien paresseux"),
    ("de", "de+m3", "male", "guten morgen, wie geht es dir heute an diesem schönen tag"),
    ("es", "es+m2", "male", "el veloz murciélago hindú comía feliz cardillo y kiwi"),
    ("zh", "cmn-latn-pinyin+f2", "female", "jin1 tian1 tian1 qi4 hen3 hao3 wo3 men5 qu4 gong1 yuan2 san4 bu4"),
]


def build_corpus(folder: Path, copies: int) -> Path:
    """`copies` renditions of each sentence at different speeds, as parquet shards."""
    columns = {name: [] for name in CORPUS_FEATURES}
    for index, (language, voice, gender, text) in enumerate(SENTENCES):
        for copy in range(copies):
            wav = folder / f"{index}-{copy}.wav"
            speed = 140 + 15 * copy
            subprocess.run(
                f"espeak-ng -v {voice} -s {speed} --stdout {text!r} | sox -t wav - -r 16000 -c 1 -b 16 {wav}",
                shell=True, check=True,
            )
            row = {"id": wav.stem, "language": language, "gender": gender, "text": text, "events": ["Speech"],
                   "emotion": None, "source": "espeak-ng", "duration": soundfile.info(wav).duration,
                   "audio": {"bytes": wav.read_bytes(), "path": wav.name}}
            for name, value in row.items():
                columns[name].append(value)
    return write_corpus(columns, folder / "corpus", num_shards=2)


def measure(corpus: Path, output_dir: Path, workers: int, steps: int, warmup: int) -> dict[str, float]:
    overrides = [
        f"output_dir={output_dir}", f"data.corpora.0.data_dir={corpus}", f"data.num_workers={workers}",
        f"max_steps={steps}", "checkpoint.interval=0", "eval.data=null", "tokenizer.vocab_size=600",
        "schedule.warmup_steps=5",
    ]
    train(load_config(RECIPE, overrides))
    records = [json.loads(line) for line in (output_dir / "examples.jsonl").read_text().splitlines()][warmup:]
    step_seconds = sum(record["step_seconds"] for record in records)
    return {
        "audio_seconds_per_second": sum(record["audio_seconds"] for record in records) / step_seconds,
        "data_wait_share": sum(record["data_wait_seconds"] for record in records) / step_seconds,
        "median_step_ms": 1000 * statistics.median(record["step_seconds"] for record in records),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5, help="first steps left out of the averages")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--copies", type=int, default=4, help="renditions per sentence in the corpus")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # datasets sleeps 5 s after every pass over parquet shards (a pyarrow workaround). A real corpus makes one pass
    # per epoch; this one makes a pass every couple of steps, so the pause would be most of the measured wait.
    datasets.config.SLEEP_TIME_ON_THREADS_SHUTDOWN = 0
    with tempfile.TemporaryDirectory() as folder:
        corpus = build_corpus(Path(folder), args.copies)
        rows = {workers: measure(corpus, Path(folder) / f"run-{workers}", workers, args.steps, args.warmup)
                for workers in (0, 1)}
    print(f"# {platform.machine()}, torch {torch.__version__}, {args.threads} threads, tiny.yaml, "
          f"{args.steps} steps ({args.warmup} warm-up left out)")
    print("| data workers | audio s / s | data wait share | median step (ms) |")
    print("|---|---|---|---|")
    for workers, row in rows.items():
        print(f"| {workers} | {row['audio_seconds_per_second']:.1f} | {row['data_wait_share']:.1%} | "
              f"{row['median_step_ms']:.0f} |")


if __name__ == "__main__":
    main()
