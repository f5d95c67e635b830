"""The `touchasp` command. `perceive` is the main job: audio files in, text and perception out.

    touchasp perceive clip.wav other.mp3 [--model PATH] [-k K] [--language en] [--chunk-length-s 30] [--no-vad] [--json]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "touchasp-tiny"
RANDOM_MODEL = Path.home() / ".cache" / "touchasp" / "random-tiny"

# Text for the stand-in tokenizer of the random model; a trained model brings its own.
STAND_IN_TEXT = [
    "the quick brown fox jumps over the lazy dog",
    "hello world, this is touch a s p",
    "speech recognition with an elastic mixture of experts",
    "今天天气很好，我们去公园散步吧",
    "le vif renard brun saute par dessus le chien paresseux",
    "el veloz murciélago hindú comía feliz cardillo y kiwi",
]


def build_random_model(out_dir: Path) -> Path:
    """A tiny randomly initialised TouchASP folder, so the main job runs before a trained model exists."""
    import torch

    from modeling_touchasp import TouchASPConfig, TouchASPForConditionalGeneration, save_touchasp
    from processing.feature_extraction_touchasp import TouchASPFeatureExtractor
    from processing.processing_touchasp import TouchASPProcessor
    from processing.tokenization_touchasp import train_tokenizer

    tokenizer = train_tokenizer(STAND_IN_TEXT * 20, out_dir / "tokenizer-training", vocab_size=600)
    processor = TouchASPProcessor(feature_extractor=TouchASPFeatureExtractor(), tokenizer=tokenizer)
    torch.manual_seed(0)
    config = TouchASPConfig(
        vocab_size=len(tokenizer), d_model=128, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, subsampling_channels=32, n_routed_experts=8, moe_intermediate_size=64,
    )
    save_touchasp(TouchASPForConditionalGeneration(config), processor, out_dir)
    return out_dir


def resolve_model(model: str | None) -> str:
    """The given folder, else the shipped model, else (with a warning) the random stand-in."""
    if model:
        return model
    if DEFAULT_MODEL.is_dir():
        return str(DEFAULT_MODEL)
    print(
        f"touchasp: no trained model at {DEFAULT_MODEL}; using a tiny RANDOMLY INITIALISED model "
        f"({RANDOM_MODEL}). Its transcript and labels are noise; pass --model PATH for a trained one.",
        file=sys.stderr,
    )
    if not (RANDOM_MODEL / "config.json").exists():
        build_random_model(RANDOM_MODEL)
    return str(RANDOM_MODEL)


def perceive(args: argparse.Namespace) -> int:
    import modeling_touchasp  # noqa: F401  (registers the model, processor and pipeline)
    from transformers import pipeline

    from processing.audio import TouchASPInputError

    asr = pipeline("automatic-speech-recognition", model=resolve_model(args.model))
    call = {"num_experts_per_tok": args.num_experts_per_tok, "chunk_length_s": args.chunk_length_s, "vad": args.vad}
    if args.language:
        call["language"] = args.language
    if args.num_beams:
        call["generate_kwargs"] = {"num_beams": args.num_beams}
    failed = 0
    for audio in args.audio:
        try:
            result = asr(audio, **call)
        except ValueError as error:  # bad audio names the file; an option this model refuses (-k, ...) does not
            where = "" if isinstance(error, TouchASPInputError) else f"{audio}: "
            print(f"touchasp: {where}{error}", file=sys.stderr)
            failed += 1
            continue
        if args.json:
            print(json.dumps({"audio": audio, **result}, ensure_ascii=False))
        else:
            perception = result.get("perception", {})
            language = perception.get("language", {}).get("label", "?")
            print(f"{audio}\t[{language}]\t{result['text']}")
    return 1 if failed else 0


# Subcommands that live in their packages, imported only when chosen so `perceive` starts fast.
SUBCOMMANDS = {
    "train": ("training.train", "train a model from a YAML recipe (also: accelerate launch -m training.train)"),
    "corpus": ("training.corpus", "build a multilingual multi-task corpus from Debian audio and espeak-ng"),
    "pipeline": ("training.pipeline", "turn long recordings into validated training shards (VAD + two systems)"),
    "ngram": ("training.ngram", "count a token n-gram language model for a model's CTC beam search"),
    "evaluate": ("training.evaluation", "score a model at several numbers of active experts (the budget table)"),
    "export": ("hub_cards.export", "write a complete Hub model folder with its model card"),
    "push": ("hub_cards.push", "upload a model or Space folder to the Hugging Face Hub"),
    "export-space": ("hub_cards.space", "write a Gradio Space folder for a model repo"),
    "demo": ("demo.app", "serve the Gradio demo"),
}


def add_perceive_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("audio", nargs="+", help="audio files (wav, flac, ogg, mp3, ...)")
    parser.add_argument("--model", help=f"model folder (default: {DEFAULT_MODEL})")
    parser.add_argument("-k", "--num-experts-per-tok", type=int, default=None, help="active routed experts (budget)")
    parser.add_argument("--language", help="force the language slot, e.g. en")
    parser.add_argument(
        "--num-beams", type=int, default=None,
        help="beam width (default: the model's, greedy); with CTC transcripts the prefix beam search's, with the "
        "model's n-gram LM when its folder has ngram_lm.safetensors",
    )
    parser.add_argument("--chunk-length-s", type=float, default=30.0, help="split long audio into chunks of this length")
    parser.add_argument(
        "--no-vad", dest="vad", action="store_false",
        help="cut long audio into fixed chunks, not at the speech silero-vad finds (keeps the pauses' text)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per file")
    parser.set_defaults(handler=perceive)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="touchasp", description="Elastic automatic speech perception.")
    commands = parser.add_subparsers(dest="command", required=True)
    add_perceive_arguments(commands.add_parser("perceive", help="transcribe and perceive audio files (the main job)"))
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        subparser = commands.add_parser(name, help=help_text)
        if argv and argv[0] == name:
            module = importlib.import_module(module_name)
            module.add_arguments(subparser)
            subparser.set_defaults(handler=module.run)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
