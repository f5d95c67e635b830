"""The TouchASP demo: upload or record a clip, pick a budget (`num_experts_per_tok`), and see what was said, in which
language, by whom, what else was heard, and what each budget costs.

    touchasp demo [--model PATH] [--host 127.0.0.1] [--port 7860] [--share]
    python -m demo.app [same options]

Inference is `pipeline("automatic-speech-recognition")` called as `touchasp perceive` calls it; the page adds
timing and nothing else.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# The demo runs without network: no Hub lookups and no Gradio analytics or version check. Set before gradio and
# huggingface_hub are imported, since they read these at import; a caller's own setting wins.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import soundfile  # noqa: E402
from transformers import pipeline  # noqa: E402

import modeling_touchasp  # noqa: E402,F401  (registers the model, processor and pipeline)
from processing.audio import TouchASPInputError, load_audio  # noqa: E402
from touchasp import RANDOM_MODEL, resolve_model  # noqa: E402

EXAMPLES_DIR = Path.home() / ".cache" / "touchasp" / "demo-examples"
# The server refuses larger uploads before they reach the model (10 min of 44.1 kHz stereo wav is 106 MB).
MAX_FILE_SIZE_MB = 120
# Longer clips would hold a queue slot for minutes; they belong to `touchasp perceive`.
MAX_DURATION_S = 600.0
# Requests decoded at once, shared by both buttons; on a small CPU box more only slows each one down.
CONCURRENCY_LIMIT = 2
# Requests waiting beyond that; further ones are told the queue is full instead of waiting for minutes.
QUEUE_SIZE = 64
# Table cells show this many characters; the API and the raw output keep the whole transcript.
TABLE_MAX_CHARS = 120
_SOX_PCM16K = ("-r", "16000", "-c", "1", "-b", "16")


@dataclass(frozen=True)
class ExampleClip:
    """A generated example: espeak-ng speech, optionally with a sound event from sox's `synth` before or under it."""

    name: str
    label: str
    voice: str
    text: str
    # `synth` arguments; "{seconds}" becomes the speech's duration, so that a background lasts as long as the speech.
    event: tuple[str, ...] = ()
    event_under_speech: bool = False


EXAMPLE_CLIPS = (
    ExampleClip("en-fox", "English", "en-us", "The quick brown fox jumps over the lazy dog."),
    ExampleClip("fr-bonjour", "French", "fr-fr", "Bonjour, comment allez-vous aujourd'hui ?"),
    ExampleClip("de-wetter", "German", "de", "Guten Morgen, das Wetter ist heute schön."),
    ExampleClip("zh-park", "Mandarin", "cmn", "今天天气很好，我们去公园散步吧。"),
    ExampleClip(
        "en-doorbell", "English after a doorbell", "en-gb", "Someone is at the door.",
        event=("synth", "1.2", "pluck", "E5", "fade", "0", "1.2", "0.9"),
    ),
    ExampleClip(
        "es-rain", "Spanish in the rain", "es", "Hoy llueve mucho en la ciudad.",
        event=("synth", "{seconds}", "pinknoise", "vol", "0.3"), event_under_speech=True,
    ),
)


def example_clips(folder: Path = EXAMPLES_DIR) -> list[tuple[Path, str]]:
    """(wav path, label) of the example clips, generated into `folder` on first use; [] without espeak-ng and sox."""
    if not (shutil.which("espeak-ng") and shutil.which("sox")):
        return []
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for clip in EXAMPLE_CLIPS:
        path = folder / f"{clip.name}.wav"
        if not path.exists():
            try:
                _synthesize(clip, path)
            except subprocess.CalledProcessError as error:
                # A missing espeak-ng voice costs one example, not the demo.
                print(f"touchasp demo: skipping example {clip.name}: {error.stderr.decode().strip()}", file=sys.stderr)
                continue
        clips.append((path, clip.label))
    return clips


def _synthesize(clip: ExampleClip, path: Path) -> None:
    """Write `clip` to `path` as 16 kHz mono 16-bit wav, renamed into place whole so a concurrent start never reads
    half a file."""
    with tempfile.TemporaryDirectory(dir=path.parent) as work:
        raw, speech, event, mixed = (Path(work) / name for name in ("raw.wav", "speech.wav", "event.wav", "mix.wav"))
        _run("espeak-ng", "-v", clip.voice, "-w", raw, clip.text)
        _run("sox", raw, *_SOX_PCM16K, speech)
        if clip.event:
            seconds = f"{soundfile.info(speech).duration:.3f}"
            _run("sox", "-n", *_SOX_PCM16K, event, *(argument.format(seconds=seconds) for argument in clip.event))
            _run("sox", *(("-m", speech, event) if clip.event_under_speech else (event, speech)), mixed)
            speech = mixed
        os.replace(speech, path)


def _run(*command: str | Path) -> None:
    subprocess.run([str(part) for part in command], check=True, capture_output=True)


def build_demo(
    model_path: str | None = None,
    examples_dir: Path = EXAMPLES_DIR,
    max_duration_s: float = MAX_DURATION_S,
) -> gr.Blocks:
    """The demo page for the model at `model_path` (default: `touchasp.resolve_model(None)`), queued.

    Endpoints: `/perceive` (audio file, num_experts_per_tok) -> transcript, language, gender, emotion, events,
    chunks, raw pipeline output, cost line; `/compare` (audio file) -> one table row per budget k = 1..k_max.
    Unusable audio (unreadable, empty, longer than `max_duration_s`) raises `gr.Error` naming the file.
    """
    path = resolve_model(model_path)
    asr = pipeline("automatic-speech-recognition", model=path)
    model, config = asr.model, asr.model.config
    rate = asr.processor.feature_extractor.sampling_rate

    def decode(audio: str | None) -> tuple[np.ndarray, float]:
        """The clip at the model's rate and its duration in seconds."""
        if not audio:
            raise gr.Error("No audio: upload a file, record one or pick an example.", print_exception=False)
        name = Path(audio).name
        try:
            _check_duration(_header_duration_s(audio), name, max_duration_s)
            waveform = load_audio(audio, target_rate=rate, name=name)
            duration = len(waveform) / rate
            _check_duration(duration, name, max_duration_s)
        except TouchASPInputError as error:
            raise gr.Error(str(error), print_exception=False) from error
        return waveform, duration

    def timed(waveform: np.ndarray, num_experts_per_tok: int) -> tuple[dict, float]:
        """The pipeline's result and its wall time in seconds."""
        start = time.perf_counter()
        result = asr({"raw": waveform, "sampling_rate": rate}, num_experts_per_tok=num_experts_per_tok)
        return result, time.perf_counter() - start

    def perceive(audio: str | None, num_experts_per_tok: float) -> tuple:
        """Transcript and perception of one clip at one budget, with what the run cost."""
        k = int(num_experts_per_tok)
        waveform, duration = decode(audio)
        result, seconds = timed(waveform, k)
        perception = result.get("perception") or {}
        events = {event["label"]: event["score"] for event in perception.get("events") or []}
        cost = (
            f"**{1000 * seconds:.0f} ms** for {duration:.2f} s of audio · "
            f"real-time factor **{seconds / duration:.3f}** · **{_millions(model.num_active_parameters(k))}** "
            f"of {_millions(model.num_parameters())} parameters active (num_experts_per_tok = {k})"
        )
        return (
            result["text"],
            _scores(perception.get("language")),
            _scores(perception.get("gender")),
            _scores(perception.get("emotion")),
            events or None,
            [[*chunk["timestamp"], chunk["text"]] for chunk in result["chunks"]],
            result,
            cost,
        )

    def compare(audio: str | None) -> list[list]:
        """One clip at every budget: k, active parameters, latency, real-time factor, language, transcript."""
        waveform, duration = decode(audio)
        rows = []
        for k in range(1, config.k_max + 1):
            result, seconds = timed(waveform, k)
            language = (result.get("perception") or {}).get("language")
            rows.append([
                k, _millions(model.num_active_parameters(k)), round(1000 * seconds), round(seconds / duration, 3),
                f"{language['label']} ({language['score']:.2f})" if language else "", result["text"],
            ])
        return rows

    examples = example_clips(examples_dir)
    # No delete_cache: Gradio's cache is content-addressed and shared by every server on the machine, and a server
    # with delete_cache removes its files on shutdown, including the example clips other running demos still serve.
    with gr.Blocks(title="TouchASP demo", analytics_enabled=False) as demo:
        gr.Markdown(_header(path, model, max_duration_s))
        with gr.Row():
            with gr.Column():
                audio = gr.Audio(
                    sources=["upload", "microphone"], type="filepath", label="Audio: upload or record", elem_id="audio"
                )
                budget = gr.Slider(
                    1, config.k_max, value=config.num_experts_per_tok, step=1, elem_id="budget",
                    label="num_experts_per_tok: active routed experts per MoE layer (the budget)",
                )
                with gr.Row():
                    perceive_button = gr.Button("Perceive", variant="primary", elem_id="perceive")
                    compare_button = gr.Button("Compare budgets", elem_id="compare")
                if examples:
                    gr.Examples(
                        [[str(clip)] for clip, _ in examples], inputs=audio, label="Example clips (espeak-ng speech)",
                        example_labels=[label for _, label in examples],
                    )
                else:
                    gr.Markdown("Example clips need espeak-ng and sox (`apt-get install espeak-ng sox`).")
            with gr.Column():
                transcript = gr.Textbox(label="Transcript", lines=3, interactive=False, elem_id="transcript")
                cost = gr.Markdown(label="Cost", elem_id="cost")
                # No big heading in these narrow panels: it cut "EMO_UNKNOWN" and "gender_unknown" short, and the
                # top bar names the same label.
                with gr.Row():
                    language = gr.Label(label="Language", num_top_classes=5, show_heading=False, elem_id="language")
                    gender = gr.Label(label="Gender", num_top_classes=3, show_heading=False, elem_id="gender")
                    emotion = gr.Label(label="Emotion", num_top_classes=3, show_heading=False, elem_id="emotion")
                events = gr.Label(label="Sound events", elem_id="events")
        chunks = gr.Dataframe(
            headers=["start (s)", "end (s)", "text"], label="Timestamped chunks", interactive=False, wrap=True,
            column_widths=["10%", "10%", "80%"], elem_id="chunks",
        )
        table = gr.Dataframe(
            headers=["k", "active params", "latency (ms)", "real-time factor", "language", "transcript"],
            label="Budgets compared", interactive=False, wrap=True, max_chars=TABLE_MAX_CHARS, elem_id="budgets",
        )
        with gr.Accordion("Raw pipeline output", open=False):
            raw = gr.JSON(label="Raw pipeline output", show_label=False, elem_id="raw")
        outputs = [transcript, language, gender, emotion, events, chunks, raw, cost]
        shared_limit = {"concurrency_limit": CONCURRENCY_LIMIT, "concurrency_id": "model"}
        perceive_button.click(perceive, [audio, budget], outputs, api_name="perceive", **shared_limit)
        compare_button.click(compare, [audio], [table], api_name="compare", **shared_limit)
    return demo.queue(max_size=QUEUE_SIZE)


def _header(path: str, model, max_duration_s: float) -> str:
    config = model.config
    lines = [
        "# TouchASP: elastic automatic speech perception",
        "One encoder-decoder transcribes and tells language, emotion, gender and sound events. Its feed-forward "
        "blocks are elastic mixtures of experts: choose how many routed experts each token uses "
        "(`num_experts_per_tok`), and compare what each budget costs and gives.",
        f"Model `{path}`: k = 1..{config.k_max}, {_millions(model.num_parameters())} parameters. "
        f"Clips up to {_seconds_text(max_duration_s)}.",
    ]
    if Path(path) == RANDOM_MODEL:
        lines.append(
            "**This is a randomly initialised stand-in** (no trained model was found): its transcripts and labels "
            "are noise. Start the demo with `--model PATH` for a trained model."
        )
    return "\n\n".join(lines)


def _header_duration_s(audio: str) -> float | None:
    """The duration in the file's header, so an hour-long upload is refused before it is decoded; None where
    libsndfile cannot read the format (load_audio then decodes it with FFmpeg, or says why not)."""
    try:
        return soundfile.info(audio).duration
    except soundfile.SoundFileError:
        return None


def _check_duration(duration: float | None, name: str, max_duration_s: float) -> None:
    if duration is not None and duration > max_duration_s:
        raise TouchASPInputError(
            f"audio at {name} is {duration:.0f} s long; the demo takes clips up to {max_duration_s:g} s. Trim it, or "
            f"run `touchasp perceive {name}`, which cuts long audio into chunks"
        )


def _seconds_text(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def _scores(slot: dict | None) -> dict[str, float] | None:
    """A perception slot as gr.Label's {label: probability}."""
    return dict(slot["scores"]) if slot else None


def _millions(count: int) -> str:
    return f"{count / 1e6:.2f} M"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's options, for `touchasp demo` and `python -m demo.app`."""
    parser.add_argument("--model", help="model folder (default: the shipped model, else a random stand-in)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=7860, help="port to serve on")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link (needs network)")


def launch(
    demo: gr.Blocks,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    block: bool = True,
    max_file_size_mb: float = MAX_FILE_SIZE_MB,
) -> str:
    """Serve `demo` with an upload limit and without server-side rendering (which needs Node); returns the local
    URL, at once when `block` is False."""
    _, url, _ = demo.launch(
        server_name=host, server_port=port, share=share, ssr_mode=False, max_file_size=int(max_file_size_mb * 2**20),
        prevent_thread_lock=not block,
    )
    return url


def run(args: argparse.Namespace) -> int:
    """Build and serve the demo until interrupted."""
    launch(build_demo(args.model), host=args.host, port=args.port, share=args.share)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="touchasp demo", description="The TouchASP Gradio demo.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
