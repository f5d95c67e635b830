"""CPU real-time factor of TouchASP at every k against a Whisper of the same total parameter count.

Both models are randomly initialised here (no hub): a mid-size TouchASP (d_model 256, 6 encoder / 3 decoder layers,
8 routed experts of width 256, 1 shared, k = 1..4) and a `WhisperForConditionalGeneration` with the same d_model,
layers, heads and vocabulary whose dense FFN width is solved so that the total parameters match. Both decode the
same 10 s espeak-ng clips greedily and are forced to exactly `--new-tokens` output tokens (min = max new tokens,
which also suppresses end-of-text), at batch 1 (each clip alone) and batch 8. Whisper runs twice: on a 10 s input
window (`max_source_positions` 500, the same audio as TouchASP) and on the stock 30 s window that real Whisper pads
every clip to. Timed: `generate` on precomputed features (best of `--repeats` after one warm-up);
RTF = seconds / audio seconds.

    python benchmarks/bench_rtf.py [--threads 2] [--new-tokens 48] [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch
import transformers
from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

from modeling_touchasp import TouchASPConfig, TouchASPForConditionalGeneration
from processing.feature_extraction_touchasp import TouchASPFeatureExtractor

RATE = 16000
CLIP_S = 10
BATCH_SIZES = (1, 8)
SHAPE = dict(vocab_size=1024, d_model=256, encoder_layers=6, decoder_layers=3, heads=4)
SENTENCES = [
    "The quick brown fox jumps over the lazy dog while the farmer watches from the old wooden gate near the barn.",
    "Speech recognition with an elastic mixture of experts lets one trained model run on phones and on servers alike.",
    "Yesterday we walked along the river to the market and bought apples, bread, cheese and a bunch of fresh flowers.",
    "Please remember to turn off the lights and lock the front door before you leave the office this evening, thanks.",
    "The weather forecast says it will rain in the morning, clear up around noon, and turn cold again after sunset.",
    "Our team measured the real time factor of each model on the same audio clips with the same number of tokens.",
    "She opened the window, listened to the birds in the garden, and wrote a long letter to her friend in the city.",
    "Trains to the airport leave every fifteen minutes from platform four; tickets are sold at the machines upstairs.",
]


def spoken_clips(folder: Path) -> list[np.ndarray]:
    """Eight 10 s clips of espeak-ng speech at 16 kHz, cut or padded with silence to exactly 10 s."""
    if not (shutil.which("espeak-ng") and shutil.which("sox")):
        raise SystemExit("bench_rtf needs espeak-ng and sox to speak its clips (apt-get install espeak-ng sox)")
    clips = []
    for index, sentence in enumerate(SENTENCES):
        raw, wav = folder / f"{index}.raw.wav", folder / f"{index}.wav"
        subprocess.run(["espeak-ng", "-s", "140", "-w", str(raw), sentence], check=True)
        subprocess.run(["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(wav)], check=True)
        samples, _ = soundfile.read(wav, dtype="float32")
        clips.append(np.pad(samples, (0, max(0, CLIP_S * RATE - len(samples))))[: CLIP_S * RATE])
    return clips


def touchasp_model() -> TouchASPForConditionalGeneration:
    config = TouchASPConfig(
        vocab_size=SHAPE["vocab_size"], d_model=SHAPE["d_model"], encoder_layers=SHAPE["encoder_layers"],
        decoder_layers=SHAPE["decoder_layers"], encoder_attention_heads=SHAPE["heads"],
        decoder_attention_heads=SHAPE["heads"], n_routed_experts=8, n_shared_experts=1, moe_intermediate_size=256,
        elastic_k_choices=[1, 2, 3, 4], dropout=0.0,
    )
    return TouchASPForConditionalGeneration(config).eval()


def whisper_config(ffn_dim: int, window_s: int) -> WhisperConfig:
    return WhisperConfig(
        vocab_size=SHAPE["vocab_size"], d_model=SHAPE["d_model"], encoder_layers=SHAPE["encoder_layers"],
        decoder_layers=SHAPE["decoder_layers"], encoder_attention_heads=SHAPE["heads"],
        decoder_attention_heads=SHAPE["heads"], encoder_ffn_dim=ffn_dim, decoder_ffn_dim=ffn_dim,
        max_source_positions=window_s * 50, num_mel_bins=80, pad_token_id=0, bos_token_id=1,
        decoder_start_token_id=1, eos_token_id=2,
    )


def whisper_ffn_dim(target_parameters: int) -> int:
    """The dense FFN width (a multiple of 64) whose 10 s-window Whisper has closest to `target_parameters`."""

    def count(ffn_dim: int) -> int:
        with torch.device("meta"):
            return WhisperForConditionalGeneration(whisper_config(ffn_dim, CLIP_S)).num_parameters()

    base, per_unit = count(64), (count(1088) - count(64)) / 1024
    return max(64, 64 + round((target_parameters - base) / per_unit / 64) * 64)


@dataclass
class Contender:
    """One model setting in the table: how it featurizes a list of clips and decodes one featurized batch."""

    name: str
    total_parameters: int
    active_parameters: int
    featurize: Callable[[list[np.ndarray]], Any]
    decode: Callable[[Any], None]


def best_rtfs(contenders: list[Contender], clips: list[np.ndarray], repeats: int) -> dict[str, dict[int, float]]:
    """{name: {batch size: RTF}}, each the best of `repeats` passes over all clips after a warm-up. Passes are
    interleaved across contenders, so that a burst of load on a shared machine slows every model alike."""
    rtfs = {contender.name: {} for contender in contenders}
    for batch_size in BATCH_SIZES:
        batches = {
            contender.name: [contender.featurize(clips[i : i + batch_size]) for i in range(0, len(clips), batch_size)]
            for contender in contenders
        }
        best = dict.fromkeys(batches, float("inf"))
        for repeat in range(repeats + 1):
            for contender in contenders:
                start = time.perf_counter()
                for batch in batches[contender.name]:
                    contender.decode(batch)
                if repeat:  # pass 0 is the warm-up
                    best[contender.name] = min(best[contender.name], time.perf_counter() - start)
            print(f"batch {batch_size}: pass {repeat} of {repeats} done", file=sys.stderr)
        for name, seconds in best.items():
            rtfs[name][batch_size] = seconds / (len(clips) * CLIP_S)
    return rtfs


def contenders(new_tokens: int) -> list[Contender]:
    """TouchASP at every k, then Whisper with the same total parameters on a 10 s and on the stock 30 s window."""
    forced = dict(min_new_tokens=new_tokens, max_new_tokens=new_tokens, num_beams=1, do_sample=False)
    # A random-init decoder repeats itself, which would time TouchASP's temperature fallback on top of every row;
    # Whisper's short-form generate has none, so both time one greedy pass.
    touchasp_forced = dict(forced, compression_ratio_threshold=None)
    touchasp = touchasp_model()
    fbank = TouchASPFeatureExtractor()

    def touchasp_features(batch: list[np.ndarray]) -> dict[str, torch.Tensor]:
        return dict(fbank(batch, sampling_rate=RATE, return_tensors="pt"))

    def touchasp_decoder(k: int) -> Callable[[dict], None]:
        def decode(features: dict) -> None:
            output = touchasp.generate(**features, num_experts_per_tok=k, **touchasp_forced)
            assert output.shape[1] == 1 + new_tokens, output.shape  # <|sot|> + the forced tokens

        return decode

    result = [
        Contender(f"TouchASP k={k}", touchasp.num_parameters(), touchasp.num_active_parameters(k),
                  touchasp_features, touchasp_decoder(k))
        for k in touchasp.config.elastic_k_choices
    ]
    ffn_dim = whisper_ffn_dim(touchasp.num_parameters())
    for window_s in (CLIP_S, 30):
        whisper = WhisperForConditionalGeneration(whisper_config(ffn_dim, window_s)).eval()
        mel = WhisperFeatureExtractor(feature_size=80, chunk_length=window_s)

        def whisper_features(batch: list[np.ndarray], mel=mel) -> torch.Tensor:
            return mel(batch, sampling_rate=RATE, return_tensors="pt").input_features

        def decode_whisper(features: torch.Tensor, whisper=whisper) -> None:
            output = whisper.generate(features, **forced)
            assert output.shape[1] == new_tokens, output.shape  # Whisper strips its start token

        name = f"Whisper FFN {ffn_dim}, {window_s} s window" + (" (stock)" if window_s == 30 else "")
        parameters = whisper.num_parameters()
        result.append(Contender(name, parameters, parameters, whisper_features, decode_whisper))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=48, help="output tokens every model is forced to produce")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    transformers.logging.set_verbosity_error()  # Whisper's generate warns about its own defaults on every call
    with tempfile.TemporaryDirectory() as folder:
        clips = spoken_clips(Path(folder))
    models = contenders(args.new_tokens)
    with torch.inference_mode():
        rtfs = best_rtfs(models, clips, args.repeats)

    print(f"# {platform.machine()}, {platform.processor() or 'cpu'}, torch {torch.__version__}, transformers "
          f"{transformers.__version__}, {args.threads} threads, {len(clips)} clips of {CLIP_S} s, "
          f"{args.new_tokens} forced new tokens, best of {args.repeats}")
    print("| model | total params | active params | " + " | ".join(f"RTF batch {b}" for b in BATCH_SIZES) + " |")
    print("|---|---|---|" + "---|" * len(BATCH_SIZES))
    for model in models:
        cells = [model.name, f"{model.total_parameters / 1e6:.1f} M", f"{model.active_parameters / 1e6:.1f} M"]
        print("| " + " | ".join(cells + [f"{rtfs[model.name][b]:.4f}" for b in BATCH_SIZES]) + " |")
    touchasp_names = [model.name for model in models if model.name.startswith("TouchASP")]
    whisper_10s, whisper_30s = (model.name for model in models if model.name.startswith("Whisper"))
    k_min, k_max = touchasp_names[0], touchasp_names[-1]
    print()
    for b in BATCH_SIZES:
        ratios = {
            f"{k_max} / Whisper 10 s": rtfs[k_max][b] / rtfs[whisper_10s][b],
            f"{k_max} / Whisper 30 s": rtfs[k_max][b] / rtfs[whisper_30s][b],
            f"{k_min} / {k_max}": rtfs[k_min][b] / rtfs[k_max][b],
        }
        print(f"batch {b}: " + "; ".join(f"{name} = {ratio:.2f}" for name, ratio in ratios.items()))


if __name__ == "__main__":
    main()
