"""Unsupervised data creation and validation (DESIGN.md section 1, idea 2): long recordings in, training shards
of the segments two independent recognisers agree on out.

    touchasp pipeline --input DIR|MANIFEST --out DIR --system-a MODEL_DIR --system-b pocketsphinx|MODEL_DIR|MOD:ATTR

Stages, each a named function, run per input file (the unit of work):
1. `decode_stage`: any format (wav, flac, ogg, mp3, opus, m4a) to 16 kHz mono float32 (`processing.audio.load_audio`).
2. `segment_stage`: silero-vad speech regions, gaps shorter than `merge_gap_s` merged, none longer than
   `max_duration_s`.
3. `pseudo_label_stage`: every segment transcribed by system A (a TouchASP model folder, which also gives language,
   gender and events) and system B (`pocketsphinx` for English, or any Transformers ASR model folder).
4. `validate_stage`: a segment is kept when its duration and characters per second are in range, both
   hypotheses are non-empty, system A's language is speech, matches the expected language (if given) and system
   B's (if B reports one), and CER(reference A, hypothesis B) <= `cer_threshold`. Otherwise the first failing
   check is its drop reason (`DROP_REASONS`).
5. `write_stage`: kept segments as one parquet shard per input in the corpus schema (`training.data.
   CORPUS_FEATURES`; text from system A or B, perception slots from A, emotion None), plus every decision.

Output folder:
- `data/<input key>.parquet`: the corpus (`training.data.load_corpus(out / "data")` streams it).
- `work/<input key>.done.json`: each input's summary with its decisions, written after its shard: the done-marker.
- `decisions.jsonl` (one line per segment, kept or dropped, with both hypotheses and the CER, plus one line per
  unreadable input) and `report.json` (hours in / of speech / kept, drops per reason, CER histogram, per-stage
  counts and seconds), both aggregated from the per-input files in sorted input order. With `--num-shards` > 1
  they are named `decisions-00001-of-00004.jsonl` and `report-00001-of-00004.json`.
- `settings.json`: the options that decide the output; a rerun with other options is refused.

Resuming: every file is written to a temporary name and renamed, so a killed run (even SIGKILL) leaves only whole
files. A rerun skips inputs that have a done-marker and redoes the others, whose output names are fixed, so no
input is processed twice or lost and the result equals an uninterrupted run's.

Parallelism: `num_proc` worker processes on one machine (each loads the systems once, one torch thread each), and
`num_shards` / `shard_index` across machines with no coordinator: input i (sorted by name) belongs to shard
i % num_shards. Once every shard is done, a rerun with `--num-shards 1` finds every input done and writes the
overall `report.json` and `decisions.jsonl`.

Systems are objects with `transcribe(segments: list[Segment]) -> list[Hypothesis]`; `load_system` builds them from
a command-line name, and `module:attr` names any Python callable that returns one (tests use this for fakes).
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import hashlib
import importlib
import json
import multiprocessing
import os
import re
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm import tqdm

from processing.audio import TouchASPInputError, load_audio
from processing.text_normalization import error_counts, normalize_for_cer
from training.data import CORPUS_FEATURES, NO_SPEECH, PR_SET_PDEATHSIG, encode_flac

SAMPLING_RATE = 16000
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".m4a")
STAGES = ("decode", "segment", "pseudo_label", "validate", "write")
# In the order `validate_stage` checks them; "unreadable" counts whole inputs that could not be decoded.
DROP_REASONS = ("unreadable", "duration", "empty", "language", "language_disagreement", "cer", "chars_per_second")
# Lower edges of the CER histogram's bins; the last bin is open above.
CER_BIN_EDGES = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
# Slot labels that mean "the model does not know", written as a missing label (None) in the corpus.
UNKNOWN_LABELS = frozenset({"lang_unknown", "gender_unknown", "EMO_UNKNOWN"})
# Config fields that do not change which rows come out, so a rerun may change them.
RUN_ONLY_FIELDS = frozenset({"batch_size", "num_proc", "num_shards", "shard_index"})


class PipelineError(Exception):
    """A bad input spec, system or output folder; the message names it and what would be right."""


class DiskFullError(PipelineError):
    """The disk filled while writing; nothing half-written was left under a name a rerun would trust."""


@dataclass
class PipelineConfig:
    """Options of `run_pipeline`; each is a `touchasp pipeline` flag of the same name (see `add_arguments`)."""

    language: str | None = None
    cer_threshold: float = 0.3
    min_duration_s: float = 1.0
    max_duration_s: float = 30.0
    merge_gap_s: float = 0.5
    vad_threshold: float = 0.5
    speech_pad_s: float = 0.1
    min_chars_per_second: float = 1.0
    max_chars_per_second: float = 25.0
    label_from: str = "a"
    batch_size: int = 8
    num_proc: int = 1
    num_shards: int = 1
    shard_index: int = 0


@dataclass(frozen=True)
class InputFile:
    """One input recording. `name` is unique and stable across runs (the path relative to the input folder, or the
    manifest's `id` / path); `language` is the manifest's expected language, overriding `--language`."""

    name: str
    path: Path
    language: str | None = None

    @property
    def key(self) -> str:
        """A file-name-safe form of `name`, made unique by a hash of it."""
        readable = re.sub(r"[^\w.-]+", "_", self.name).strip("_")[-60:]
        return f"{readable}-{hashlib.sha1(self.name.encode()).hexdigest()[:10]}"


@dataclass
class Segment:
    """Samples [start, end) of an input at 16 kHz, and their audio."""

    input: InputFile
    start: int
    end: int
    audio: np.ndarray

    @property
    def duration(self) -> float:
        return (self.end - self.start) / SAMPLING_RATE

    @property
    def id(self) -> str:
        return f"{self.input.key}-{1000 * self.start // SAMPLING_RATE:09d}-{1000 * self.end // SAMPLING_RATE:09d}"

    @property
    def source(self) -> str:
        """The input file and the segment's time span in seconds: `path@start-end`."""
        return f"{self.input.path}@{self.start / SAMPLING_RATE:.3f}-{self.end / SAMPLING_RATE:.3f}"


@dataclass
class Hypothesis:
    """One system's output for a segment; the perception slots are None where the system has none."""

    text: str
    language: str | None = None
    gender: str | None = None
    events: list[str] | None = None


class System(Protocol):
    """A recogniser: one hypothesis per segment, in order."""

    def transcribe(self, segments: list[Segment]) -> list[Hypothesis]: ...


@dataclass
class Decision:
    """Whether a segment is kept; `reason` is None when kept, else the first failing check (`DROP_REASONS`)."""

    segment: Segment
    hypothesis_a: Hypothesis
    hypothesis_b: Hypothesis
    cer: float | None
    chars_per_second: float
    reason: str | None

    def record(self) -> dict[str, Any]:
        """The line `decisions.jsonl` keeps for this segment."""
        segment = self.segment
        return {
            "id": segment.id, "input": segment.input.name, "start": round(segment.start / SAMPLING_RATE, 3),
            "end": round(segment.end / SAMPLING_RATE, 3), "duration": round(segment.duration, 3),
            "kept": self.reason is None, "reason": self.reason, "text_a": self.hypothesis_a.text,
            "text_b": self.hypothesis_b.text, "cer": self.cer, "language_a": self.hypothesis_a.language,
            "language_b": self.hypothesis_b.language, "chars_per_second": round(self.chars_per_second, 3),
        }


class TransformersSystem:
    """Any Transformers ASR model folder through `pipeline("automatic-speech-recognition")`; a TouchASP folder also
    gives language, gender and events. Loaded on first use, so each worker process loads it once and the parent of
    the workers never does."""

    def __init__(self, path: Path, batch_size: int):
        self.name = str(path)
        self.batch_size = batch_size
        self._asr = None

    def transcribe(self, segments: list[Segment]) -> list[Hypothesis]:
        if not segments:
            return []
        if self._asr is None:
            import modeling_touchasp  # noqa: F401  (registers the TouchASP pipeline for the ASR task)
            from transformers import pipeline

            self._asr = pipeline(
                "automatic-speech-recognition", model=self.name, device=0 if torch.cuda.is_available() else -1
            )
        inputs = [{"raw": segment.audio, "sampling_rate": SAMPLING_RATE} for segment in segments]
        # Segments are at most max_duration_s long: decode each whole (chunk_length_s=0), as the model was trained.
        outputs = self._asr(inputs, batch_size=self.batch_size, chunk_length_s=0)
        return [hypothesis_from_pipeline_output(output) for output in outputs]


def hypothesis_from_pipeline_output(output: dict[str, Any]) -> Hypothesis:
    """A `Hypothesis` from the ASR pipeline's `{"text", "perception"?}`, unknown slot labels as None."""
    perception = output.get("perception") or {}

    def label(slot: str) -> str | None:
        value = perception.get(slot)
        return None if value is None or value["label"] in UNKNOWN_LABELS else value["label"]

    events = perception.get("events")
    return Hypothesis(
        text=output["text"].strip(), language=label("language"), gender=label("gender"),
        events=None if events is None else [event["label"] for event in events],
    )


class PocketSphinxSystem:
    """CMU PocketSphinx with its bundled US English model: an English recogniser independent of ours."""

    name = "pocketsphinx"

    def __init__(self):
        self._decoder = None

    def transcribe(self, segments: list[Segment]) -> list[Hypothesis]:
        if self._decoder is None:
            from pocketsphinx import Decoder

            self._decoder = Decoder(samprate=SAMPLING_RATE, loglevel="FATAL")
        return [Hypothesis(text=self._decode(segment.audio)) for segment in segments]

    def _decode(self, audio: np.ndarray) -> str:
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
        self._decoder.start_utt()
        self._decoder.process_raw(pcm, full_utt=True)
        self._decoder.end_utt()
        hypothesis = self._decoder.hyp()
        return hypothesis.hypstr if hypothesis is not None else ""


def load_system(spec: str, role: str, config: PipelineConfig) -> System:
    """The system `spec` names, for `role` "A" or "B": a model folder (system A must be TouchASP, since it labels
    the perception slots), "pocketsphinx" (B only, English only), or `module:attr`, a callable returning a system."""
    path = Path(spec)
    if path.is_dir():
        return _model_folder_system(path, role, config)
    if spec == "pocketsphinx" and role == "B":
        if config.language not in (None, "en"):
            raise PipelineError(f"system B pocketsphinx recognises English only, but --language is {config.language}")
        return PocketSphinxSystem()
    if ":" in spec and not path.exists():
        return _imported_system(spec, role)
    expected = "a TouchASP model folder" if role == "A" else "'pocketsphinx' or a Transformers ASR model folder"
    raise PipelineError(f"system {role} {spec!r} is not a folder or a known system name; expected {expected}, or "
                        "module:attr naming a Python callable that returns a system")


def _model_folder_system(path: Path, role: str, config: PipelineConfig) -> TransformersSystem:
    config_path = path / "config.json"
    if not config_path.is_file():
        raise PipelineError(f"system {role} folder {path} has no config.json; expected a Transformers model folder")
    model_type = json.loads(config_path.read_text(encoding="utf-8")).get("model_type")
    if role == "A" and model_type != "touchasp":
        raise PipelineError(f"system A {path} is a {model_type!r} model; system A must be a TouchASP model folder, "
                            "because it also labels language, gender and events")
    return TransformersSystem(path, config.batch_size)


def _imported_system(spec: str, role: str) -> System:
    module_name, _, attribute = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise PipelineError(f"system {role} {spec!r} cannot be imported: {error}") from error
    system = factory()
    if not callable(getattr(system, "transcribe", None)):
        raise PipelineError(f"system {role} {spec!r} returned {type(system).__name__}, which has no transcribe()")
    return system


def read_inputs(spec: str | os.PathLike) -> list[InputFile]:
    """The inputs, sorted by name: every audio file (`AUDIO_SUFFIXES`) under a folder, recursively, or the entries
    of a manifest: JSONL lines `{"path", "language"?, "id"?}` or plain lines of paths (blank and # lines skipped).
    Relative manifest paths are relative to the manifest's folder."""
    path = Path(spec)
    if path.is_dir():
        files = (file for file in path.rglob("*") if file.is_file() and file.suffix.lower() in AUDIO_SUFFIXES)
        inputs = [InputFile(file.relative_to(path).as_posix(), file) for file in files]
    elif path.is_file():
        inputs = [_manifest_entry(line, path, number) for number, line in enumerate(_manifest_lines(path), 1)]
    else:
        raise PipelineError(f"input {path} does not exist; pass a folder of audio files or a manifest file")
    if not inputs:
        raise PipelineError(f"input {path} holds no audio files (looked for {', '.join(AUDIO_SUFFIXES)})")
    duplicates = [name for name, count in Counter(item.name for item in inputs).items() if count > 1]
    if duplicates:
        raise PipelineError(f"input {path} names {duplicates[0]!r} more than once; give each entry a unique id")
    return sorted(inputs, key=lambda item: item.name)


def _manifest_lines(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _manifest_entry(line: str, manifest: Path, number: int) -> InputFile:
    if not line.startswith("{"):
        return InputFile(line, manifest.parent / line)
    try:
        entry = json.loads(line)
        return InputFile(str(entry.get("id") or entry["path"]), manifest.parent / entry["path"], entry.get("language"))
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise PipelineError(f"manifest {manifest} line {number} is not a JSON object with a 'path': {line[:80]!r}") \
            from error


def shard_inputs(inputs: Sequence[InputFile], num_shards: int, shard_index: int) -> list[InputFile]:
    """The inputs of one shard: input i belongs to shard i % num_shards, so machines split work uncoordinated."""
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise PipelineError(f"shard index {shard_index} of {num_shards} shards is out of range; need 0 <= index < "
                            "num_shards")
    return list(inputs[shard_index::num_shards])


def decode_stage(item: InputFile) -> np.ndarray:
    """Stage 1: the input as 16 kHz mono float32; raises `TouchASPInputError` naming an unreadable file."""
    return load_audio(item.path, target_rate=SAMPLING_RATE)


def segment_stage(waveform: np.ndarray, vad: torch.nn.Module, config: PipelineConfig) -> list[tuple[int, int]]:
    """Stage 2: (start, end) sample bounds of speech. silero-vad cuts any region longer than `max_duration_s` at
    its longest pause; then pauses shorter than `merge_gap_s` are bridged, so segments are whole phrases.
    Segments shorter than `min_duration_s` are left for `validate_stage` to count as drops."""
    from silero_vad import get_speech_timestamps

    regions = get_speech_timestamps(
        torch.from_numpy(waveform), vad, threshold=config.vad_threshold, sampling_rate=SAMPLING_RATE,
        max_speech_duration_s=config.max_duration_s, speech_pad_ms=int(1000 * config.speech_pad_s),
    )
    spans = [(region["start"], region["end"]) for region in regions]
    return merge_short_gaps(spans, int(config.merge_gap_s * SAMPLING_RATE), int(config.max_duration_s * SAMPLING_RATE))


def merge_short_gaps(spans: list[tuple[int, int]], max_gap: int, max_length: int) -> list[tuple[int, int]]:
    """Join consecutive (start, end) spans separated by at most `max_gap` while the joined span stays within
    `max_length` (all in samples)."""
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start - merged[-1][1] <= max_gap and end - merged[-1][0] <= max_length:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def pseudo_label_stage(
    segments: list[Segment], system_a: System, system_b: System
) -> tuple[list[Hypothesis], list[Hypothesis]]:
    """Stage 3: both systems' hypotheses for every segment (each system batches them as it likes)."""
    hypotheses = system_a.transcribe(segments), system_b.transcribe(segments)
    for role, answer in zip("AB", hypotheses):
        if len(answer) != len(segments):
            raise PipelineError(f"system {role} returned {len(answer)} hypotheses for {len(segments)} segments")
    return hypotheses


def validate_stage(
    segments: list[Segment],
    hypotheses_a: list[Hypothesis],
    hypotheses_b: list[Hypothesis],
    language: str | None,
    config: PipelineConfig,
) -> list[Decision]:
    """Stage 4: keep or drop each segment (module docstring); `language` is the expected language or None."""
    return [_decide(*triple, language, config) for triple in zip(segments, hypotheses_a, hypotheses_b)]


def _decide(segment: Segment, a: Hypothesis, b: Hypothesis, language: str | None, config: PipelineConfig) -> Decision:
    both_spoken = bool(normalize_for_cer(a.text)) and bool(normalize_for_cer(b.text))
    # A is the reference: it is the system whose perception labels the row.
    cer = error_counts([a.text], [b.text], "character")["rate"] if both_spoken else None
    label = a if config.label_from == "a" else b
    decision = Decision(segment, a, b, cer, len(normalize_for_cer(label.text)) / segment.duration, reason=None)
    decision.reason = _drop_reason(decision, language, config)
    return decision


def _drop_reason(decision: Decision, language: str | None, config: PipelineConfig) -> str | None:
    a, b, cer = decision.hypothesis_a, decision.hypothesis_b, decision.cer
    if not config.min_duration_s <= decision.segment.duration <= config.max_duration_s:
        return "duration"
    if cer is None:
        return "empty"
    if a.language == NO_SPEECH or (language is not None and a.language != language):
        return "language"
    if b.language is not None and a.language != b.language:
        return "language_disagreement"
    if cer > config.cer_threshold:
        return "cer"
    if not config.min_chars_per_second <= decision.chars_per_second <= config.max_chars_per_second:
        return "chars_per_second"
    return None


def write_stage(decisions: list[Decision], item: InputFile, layout: OutputLayout, config: PipelineConfig) -> int:
    """Stage 5: the kept segments as this input's parquet shard (no file when nothing is kept), written whole or
    not at all. Returns the number of rows written. The decisions go into the done-marker, written after this."""
    kept = [decision for decision in decisions if decision.reason is None]
    shard = layout.shard(item)
    if kept:
        table = _corpus_table(kept, config)
        atomic_write(shard, lambda temporary: table.to_parquet(str(temporary)))
    else:
        # An earlier attempt of a non-deterministic system may have kept rows; this attempt's answer wins.
        shard.unlink(missing_ok=True)
    return len(kept)


def _corpus_table(kept: list[Decision], config: PipelineConfig):
    """The rows of the kept segments as a `datasets.Dataset` in the corpus schema, audio as FLAC bytes."""
    from datasets import Dataset

    rows = [_corpus_row(decision, config) for decision in kept]
    return Dataset.from_dict({name: [row[name] for row in rows] for name in CORPUS_FEATURES}, features=CORPUS_FEATURES)


def _corpus_row(decision: Decision, config: PipelineConfig) -> dict[str, Any]:
    segment, a = decision.segment, decision.hypothesis_a
    return {
        "audio": encode_flac(segment.audio, segment.id, SAMPLING_RATE),
        "text": (a if config.label_from == "a" else decision.hypothesis_b).text,
        "language": a.language, "emotion": None, "gender": a.gender, "events": a.events,
        "id": segment.id, "duration": segment.duration, "source": segment.source,
    }


def atomic_write(path: Path, write: Callable[[Path], Any], writer: str = "") -> None:
    """`write` a temporary file beside `path`, then rename it to `path`, so readers (and reruns) only ever see
    whole files. A full disk raises `DiskFullError` naming `path`, with the temporary file removed.

    The temporary name is fixed (a rerun reuses it, so a kill leaves no litter) unless `writer` tells apart
    processes that may write the same file at once."""
    temporary = path.with_name(f".{path.name}{writer}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        if error.errno == errno.ENOSPC or "No space left on device" in str(error):
            raise DiskFullError(f"disk full while writing {path}; free space there and run the same command again "
                                "(finished inputs are kept, unfinished ones are redone)") from error
        raise


@dataclass(frozen=True)
class OutputLayout:
    """Where each file of the output folder goes (module docstring)."""

    root: Path

    def shard(self, item: InputFile) -> Path:
        return self.root / "data" / f"{item.key}.parquet"

    def done_marker(self, item: InputFile) -> Path:
        return self.root / "work" / f"{item.key}.done.json"

    def final(self, stem: str, suffix: str, config: PipelineConfig) -> Path:
        """`report.json` / `decisions.jsonl`, or per-shard names when the inputs are split over machines."""
        if config.num_shards == 1:
            return self.root / f"{stem}{suffix}"
        return self.root / f"{stem}-{config.shard_index:05d}-of-{config.num_shards:05d}{suffix}"

    def prepare(self, settings: dict[str, Any]) -> None:
        """Create the folders; record `settings` on the first run and refuse a rerun with other ones."""
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        (self.root / "work").mkdir(exist_ok=True)
        path = self.root / "settings.json"
        if path.exists():
            saved = json.loads(path.read_text(encoding="utf-8"))
            changed = {key: (saved.get(key), value) for key, value in settings.items() if saved.get(key) != value}
            if changed:
                raise PipelineError(f"output folder {self.root} was started with other settings (saved, now: "
                                    f"{changed}); rerun with the same options or choose a new --out")
        else:
            # The machines of a sharded run may all start at once; the last rename wins, with the same content.
            writer = f".{socket.gethostname()}-{os.getpid()}"
            text = json.dumps(settings, indent=2)
            atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"), writer)


class InputProcessor:
    """Runs the five stages on one input and records it as done; holds the systems and the VAD of one process."""

    def __init__(self, system_a: System, system_b: System, config: PipelineConfig, layout: OutputLayout):
        self.system_a, self.system_b, self.config, self.layout = system_a, system_b, config, layout
        self._vad = None

    def __call__(self, item: InputFile) -> dict[str, Any]:
        """The input's summary (the done-marker's content)."""
        if self._vad is None:
            from silero_vad import load_silero_vad

            self._vad = load_silero_vad()
        summary = process_input(item, self.system_a, self.system_b, self._vad, self.config, self.layout)
        atomic_write(self.layout.done_marker(item), lambda temporary: temporary.write_text(json.dumps(summary)))
        return summary


@contextmanager
def _timed(stages: dict[str, dict[str, float]], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    stages[stage]["seconds"] += time.perf_counter() - start


def process_input(
    item: InputFile, system_a: System, system_b: System, vad: torch.nn.Module, config: PipelineConfig,
    layout: OutputLayout,
) -> dict[str, Any]:
    """All five stages for one input, its shard written; returns its summary with its decisions (`build_report`).
    An unreadable input is recorded as one "unreadable" decision and does not stop the run."""
    stages = {stage: {"count": 0, "seconds": 0.0} for stage in STAGES}
    summary = {"input": item.name, "path": str(item.path), "error": None, "stages": stages}
    try:
        with _timed(stages, "decode"):
            waveform = decode_stage(item)
    except TouchASPInputError as error:
        record = {"id": item.key, "input": item.name, "kept": False, "reason": "unreadable", "error": str(error)}
        return {**summary, "error": str(error), "seconds_in": 0.0, "decisions": [record]}
    with _timed(stages, "segment"):
        bounds = segment_stage(waveform, vad, config)
        segments = [Segment(item, start, end, waveform[start:end]) for start, end in bounds]
    with _timed(stages, "pseudo_label"):
        hypotheses_a, hypotheses_b = pseudo_label_stage(segments, system_a, system_b)
    with _timed(stages, "validate"):
        decisions = validate_stage(segments, hypotheses_a, hypotheses_b, item.language or config.language, config)
    with _timed(stages, "write"):
        rows = write_stage(decisions, item, layout, config)
    for stage, count in zip(STAGES, (1, len(segments), len(segments), rows, rows)):
        stages[stage]["count"] = count
    records = [decision.record() for decision in decisions]
    return {**summary, "seconds_in": len(waveform) / SAMPLING_RATE, "decisions": records}


def build_report(summaries: list[dict[str, Any]], config: PipelineConfig) -> dict[str, Any]:
    """`report.json` from the per-input summaries: hours in, of speech (after VAD) and kept; segments; drops per
    reason (unreadable counts inputs, the others segments); the CER histogram of segments with two non-empty
    hypotheses; per-stage counts (inputs decoded, segments found, segments labelled, segments kept, rows
    written) and seconds summed over processes."""
    records = [record for summary in summaries for record in summary["decisions"]]
    segments = [record for record in records if record["reason"] != "unreadable"]
    cers = [record["cer"] for record in segments if record["cer"] is not None]
    bins = np.digitize(cers, CER_BIN_EDGES) - 1
    uppers = [f"{edge:.2f})" for edge in CER_BIN_EDGES[1:]] + ["inf)"]
    stages = {
        stage: {key: sum(summary["stages"][stage][key] for summary in summaries) for key in ("count", "seconds")}
        for stage in STAGES
    }
    return {
        "inputs": {"total": len(summaries), "unreadable": sum(summary["error"] is not None for summary in summaries)},
        "hours": {
            "in": sum(summary["seconds_in"] for summary in summaries) / 3600,
            "speech": sum(record["duration"] for record in segments) / 3600,
            "kept": sum(record["duration"] for record in segments if record["kept"]) / 3600,
        },
        "segments": {"total": len(segments), "kept": sum(record["kept"] for record in segments)},
        "drops": {reason: sum(record["reason"] == reason for record in records) for reason in DROP_REASONS},
        "cer_histogram": {
            f"[{lower:.2f},{upper}": int((bins == index).sum())
            for index, (lower, upper) in enumerate(zip(CER_BIN_EDGES, uppers))
        },
        "stages": stages,
        "config": asdict(config),
    }


_worker_processor: InputProcessor | None = None


def _init_worker(processor: InputProcessor) -> None:
    global _worker_processor
    _worker_processor = processor
    # One thread per worker: num_proc workers share the machine's cores.
    torch.set_num_threads(1)
    if sys.platform == "linux":
        # A forked worker outlives a SIGKILLed parent otherwise, and would finish an input the rerun redoes.
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _process_in_worker(item: InputFile) -> dict[str, Any]:
    return _worker_processor(item)


def _process_inputs(todo: list[InputFile], processor: InputProcessor, num_proc: int) -> Iterator[dict[str, Any]]:
    """Summaries of `todo` as they finish, in `num_proc` forked processes (fork: the systems are inherited, not
    pickled; they load their models lazily, so each worker loads them once)."""
    if num_proc <= 1 or len(todo) <= 1:
        yield from map(processor, todo)
        return
    context = multiprocessing.get_context("fork")
    with context.Pool(min(num_proc, len(todo)), initializer=_init_worker, initargs=(processor,)) as pool:
        yield from pool.imap_unordered(_process_in_worker, todo)


def _settings(system_a: System, system_b: System, config: PipelineConfig) -> dict[str, Any]:
    """What decides the output rows: the two systems and every config field but the run-only ones."""
    describe = [getattr(system, "name", type(system).__qualname__) for system in (system_a, system_b)]
    options = {item.name: getattr(config, item.name) for item in fields(config) if item.name not in RUN_ONLY_FIELDS}
    return {"system_a": describe[0], "system_b": describe[1], **options}


def run_pipeline(
    inputs: str | os.PathLike | Sequence[InputFile],
    out_dir: str | os.PathLike,
    system_a: System,
    system_b: System,
    config: PipelineConfig | None = None,
) -> dict[str, Any]:
    """Run the pipeline over this shard's inputs (a folder, a manifest, or `InputFile`s), resuming any earlier run
    into `out_dir`, then write the shard's `decisions.jsonl` and `report.json`. Returns the report."""
    config = config or PipelineConfig()
    if config.label_from not in ("a", "b"):
        raise PipelineError(f"label_from is {config.label_from!r}; expected 'a' or 'b'")
    items = read_inputs(inputs) if isinstance(inputs, (str, os.PathLike)) else sorted(inputs, key=lambda i: i.name)
    owned = shard_inputs(items, config.num_shards, config.shard_index)
    layout = OutputLayout(Path(out_dir))
    layout.prepare(_settings(system_a, system_b, config))
    todo = [item for item in owned if not layout.done_marker(item).exists()]
    processor = InputProcessor(system_a, system_b, config, layout)
    with tqdm(total=len(owned), initial=len(owned) - len(todo), desc="pipeline", unit="input") as progress:
        for summary in _process_inputs(todo, processor, config.num_proc):
            if summary["error"]:
                progress.write(f"touchasp pipeline: dropped unreadable input: {summary['error']}")
            progress.update()
    return _finish(owned, layout, config)


def _finish(owned: list[InputFile], layout: OutputLayout, config: PipelineConfig) -> dict[str, Any]:
    """Aggregate the done-markers of `owned`, in order, into the shard's decisions file and report."""
    summaries = [json.loads(layout.done_marker(item).read_text()) for item in owned]
    lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for s in summaries for record in s["decisions"])
    atomic_write(layout.final("decisions", ".jsonl", config), lambda path: path.write_text(lines, encoding="utf-8"))
    report = build_report(summaries, config)
    text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    atomic_write(layout.final("report", ".json", config), lambda path: path.write_text(text, encoding="utf-8"))
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `touchasp pipeline`."""
    defaults = PipelineConfig()
    add = parser.add_argument
    add("--input", required=True, help="folder of audio files (searched recursively), or a manifest: JSONL lines "
        '{"path", "language"?, "id"?} or one path per line')
    add("--out", required=True, type=Path, help="output folder (rerun the same command to resume)")
    add("--system-a", required=True, help="TouchASP model folder: transcript, language, gender and events")
    add("--system-b", required=True, help="independent recogniser: pocketsphinx (English), a Transformers ASR "
        "model folder, or module:attr naming a Python callable that returns a system")
    add("--language", default=None, help="expected language of every input (a manifest's 'language' overrides it)")
    add("--label-from", choices=("a", "b"), default=defaults.label_from, help="which system's transcript is the text")
    for name, help_text in (
        ("cer_threshold", "keep a segment when CER(A, B) is at most this"),
        ("min_duration_s", "shortest segment kept, seconds"),
        ("max_duration_s", "longest segment, seconds (the VAD cuts longer speech)"),
        ("merge_gap_s", "pauses shorter than this are bridged into one segment, seconds"),
        ("vad_threshold", "silero-vad speech probability threshold"),
        ("speech_pad_s", "silence kept around each VAD segment, seconds"),
        ("min_chars_per_second", "fewest normalised characters per second kept"),
        ("max_chars_per_second", "most normalised characters per second kept"),
    ):
        add(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name),
            help=f"{help_text} (default {getattr(defaults, name)})")
    add("--batch-size", type=int, default=defaults.batch_size, help="segments per model batch")
    add("--num-proc", type=int, default=defaults.num_proc, help="worker processes on this machine")
    add("--num-shards", type=int, default=int(os.environ.get("WORLD_SIZE", 1)),
        help="machines splitting the inputs (default: $WORLD_SIZE, else 1)")
    add("--shard-index", type=int, default=int(os.environ.get("RANK", 0)),
        help="this machine's shard, input i belongs to shard i %% num-shards (default: $RANK, else 0)")


def run(args: argparse.Namespace) -> int:
    """`touchasp pipeline`: run or resume, print where the output went; a bad option or a full disk exits 1."""
    config = PipelineConfig(**{item.name: getattr(args, item.name) for item in fields(PipelineConfig)})
    try:
        system_a = load_system(args.system_a, "A", config)
        system_b = load_system(args.system_b, "B", config)
        report = run_pipeline(args.input, args.out, system_a, system_b, config)
    except PipelineError as error:
        print(f"touchasp pipeline: {error}", file=sys.stderr)
        return 1
    hours = report["hours"]
    print(f"{hours['kept']:.3f} h kept of {hours['speech']:.3f} h speech in {hours['in']:.3f} h; "
          f"shards in {args.out / 'data'}, report in {OutputLayout(args.out).final('report', '.json', config)}")
    return 0
