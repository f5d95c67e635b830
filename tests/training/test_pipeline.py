"""`touchasp pipeline`: VAD segmentation, two-system validation, resumable output, sharding and clear failures.

Most tests use `ScriptedSystem`, a fake recogniser that says "speech" once per second of audio; the command line
reaches it as `--system-a tests.training.test_pipeline:ScriptedSystem` (any `module:attr` returning a system works).
"""

import argparse
import errno
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet
import pytest
import soundfile

import touchasp
from tests.conftest import HAS_ESPEAK, synthesize
from training.data import load_corpus
from training.pipeline import (
    Hypothesis,
    InputFile,
    PipelineConfig,
    PipelineError,
    PocketSphinxSystem,
    Segment,
    add_arguments,
    load_system,
    merge_short_gaps,
    read_inputs,
    run_pipeline,
    segment_stage,
    shard_inputs,
    validate_stage,
)

REPO = Path(__file__).resolve().parents[2]
RATE = 16000
SENTENCES = ["this is the first sentence of the test", "here comes a second one", "and finally the third sentence"]
needs_espeak = pytest.mark.skipif(not HAS_ESPEAK, reason="needs espeak-ng and sox to speak the test recordings")


class ScriptedSystem:
    """A fake recogniser: "speech" once per second of audio, English, female, a Speech event. On inputs whose name
    contains `disagree_on` it says other words, so that two such systems disagree there."""

    def __init__(self, disagree_on: str | None = None, delay_s: float = 0.0):
        self.disagree_on = disagree_on
        self.delay_s = delay_s

    def transcribe(self, segments: list[Segment]) -> list[Hypothesis]:
        time.sleep(self.delay_s)
        return [self._hypothesis(segment) for segment in segments]

    def _hypothesis(self, segment: Segment) -> Hypothesis:
        if self.disagree_on and self.disagree_on in segment.input.name:
            text = "completely different words"
        else:
            text = " ".join(["speech"] * max(1, round(segment.duration)))
        return Hypothesis(text, language="en", gender="female", events=["Speech"])


def slow_system() -> ScriptedSystem:
    """Slow enough (0.3 s per call) that the SIGKILL test catches the run between its first and last input."""
    return ScriptedSystem(delay_s=0.3)


@pytest.fixture(scope="module")
def utterances(tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    """`SENTENCES` spoken by espeak-ng, 16 kHz float32."""
    if not HAS_ESPEAK:
        pytest.skip("needs espeak-ng and sox to speak the test recordings")
    folder = tmp_path_factory.mktemp("utterances")
    paths = [synthesize(text, folder / f"{index}.wav") for index, text in enumerate(SENTENCES)]
    return [soundfile.read(path, dtype="float32")[0] for path in paths]


def recording(utterances: list[np.ndarray], gap_s: float) -> np.ndarray:
    """The utterances joined by `gap_s` of silence, with that silence before and after too: a "web" recording."""
    silence = np.zeros(int(gap_s * RATE), dtype=np.float32)
    return np.concatenate([silence] + [part for utterance in utterances for part in (utterance, silence)])


def write_inputs(folder: Path, names: list[str], audio: np.ndarray) -> Path:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(folder / name, audio, RATE, subtype="PCM_16")
    return folder


def corpus_rows(out: Path) -> list[dict]:
    """Every row of the output shards, in file order."""
    shards = sorted((out / "data").glob("*.parquet"))
    return [row for path in shards for row in pyarrow.parquet.read_table(path).to_pylist()]


def decisions(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "decisions.jsonl").read_text().splitlines()]


def without_timings(report: dict) -> dict:
    """The report's counts: stage seconds differ from run to run, and the config records num_proc."""
    stages = {stage: values["count"] for stage, values in report["stages"].items()}
    return {**{key: value for key, value in report.items() if key not in ("stages", "config")}, "stages": stages}


def segment(duration_s: float, name: str = "clip.wav") -> Segment:
    samples = int(duration_s * RATE)
    return Segment(InputFile(name, Path(name)), 0, samples, np.zeros(samples, dtype=np.float32))


def test_merge_short_gaps_joins_pauses_up_to_the_length_limit():
    spans = [(0, 100), (130, 200), (260, 300), (1000, 1100)]
    assert merge_short_gaps(spans, max_gap=50, max_length=1000) == [(0, 200), (260, 300), (1000, 1100)]
    assert merge_short_gaps(spans, max_gap=100, max_length=1000) == [(0, 300), (1000, 1100)]
    assert merge_short_gaps(spans, max_gap=100, max_length=250) == [(0, 200), (260, 300), (1000, 1100)]


@needs_espeak
def test_vad_finds_each_utterance_of_a_long_recording(utterances):
    from silero_vad import load_silero_vad

    bounds = segment_stage(recording(utterances, gap_s=2.0), load_silero_vad(), PipelineConfig())
    assert len(bounds) == len(SENTENCES)
    offset = 2.0
    for (start, end), utterance in zip(bounds, utterances):
        # espeak pads each utterance with a little silence; the VAD adds speech_pad_s around speech.
        assert offset - 0.2 <= start / RATE <= offset + 0.5
        assert offset + len(utterance) / RATE - 0.6 <= end / RATE <= offset + len(utterance) / RATE + 0.2
        offset += len(utterance) / RATE + 2.0


@needs_espeak
def test_vad_merges_short_pauses_and_keeps_segments_within_the_length_limit(utterances):
    from silero_vad import load_silero_vad

    audio = recording(utterances, gap_s=0.3)
    vad = load_silero_vad()
    assert len(segment_stage(audio, vad, PipelineConfig(merge_gap_s=0.6))) == 1
    bounds = segment_stage(audio, vad, PipelineConfig(merge_gap_s=0.6, max_duration_s=3.0))
    assert len(bounds) >= 2
    assert all(end - start <= 3.0 * RATE for start, end in bounds)


@pytest.mark.parametrize(
    ("duration_s", "text_a", "text_b", "language_a", "language_b", "reason"),
    [
        (2.0, "speech speech", "speech speech", "en", None, None),
        (0.5, "speech", "speech", "en", None, "duration"),
        (31.0, "speech " * 31, "speech " * 31, "en", None, "duration"),
        (2.0, "speech speech", "", "en", None, "empty"),
        (2.0, "speech speech", "speech speech", "fr", None, "language"),
        (2.0, "speech speech", "speech speech", "nospeech", None, "language"),
        (2.0, "speech speech", "speech speech", "en", "fr", "language_disagreement"),
        (2.0, "speech speech", "speech", "en", None, "cer"),
        (2.0, "speech " * 10, "speech " * 10, "en", None, "chars_per_second"),
    ],
)
def test_validation_keeps_agreeing_plausible_segments_and_names_the_first_failed_check(
    duration_s, text_a, text_b, language_a, language_b, reason
):
    a, b = Hypothesis(text_a, language=language_a), Hypothesis(text_b, language=language_b)
    (decision,) = validate_stage([segment(duration_s)], [a], [b], "en", PipelineConfig())
    assert decision.reason == reason


@needs_espeak
def test_pipeline_keeps_segments_the_systems_agree_on_and_drops_the_others(utterances, tmp_path):
    audio = recording(utterances[:2], gap_s=2.0)
    inputs = write_inputs(tmp_path / "in", ["agree.wav", "sub/disagree.flac"], audio)
    out = tmp_path / "out"

    report = run_pipeline(inputs, out, ScriptedSystem(), ScriptedSystem(disagree_on="disagree"), PipelineConfig())

    by_input = {name: [d for d in decisions(out) if d["input"] == name] for name in ("agree.wav", "sub/disagree.flac")}
    assert [d["kept"] for d in by_input["agree.wav"]] == [True, True]
    assert [d["reason"] for d in by_input["sub/disagree.flac"]] == ["cer", "cer"]
    assert by_input["sub/disagree.flac"][0]["text_b"] == "completely different words"
    assert report["segments"] == {"total": 4, "kept": 2}
    assert report["drops"]["cer"] == 2
    assert report["stages"]["pseudo_label"]["count"] == 4
    assert report["hours"]["in"] == pytest.approx(2 * len(audio) / RATE / 3600)

    rows = list(load_corpus(out / "data"))
    assert [row["id"] for row in rows] == [d["id"] for d in by_input["agree.wav"]]
    row = rows[0]
    assert (row["language"], row["gender"], row["events"], row["emotion"]) == ("en", "female", ["Speech"], None)
    assert row["text"] == by_input["agree.wav"][0]["text_a"]
    assert row["source"].startswith(f"{inputs / 'agree.wav'}@")
    samples, rate = soundfile.read(io.BytesIO(row["audio"]["bytes"]))
    assert rate == RATE and len(samples) / RATE == pytest.approx(row["duration"], abs=1e-3)


@needs_espeak
def test_unreadable_inputs_are_counted_and_the_rest_still_processed(utterances, tmp_path):
    inputs = write_inputs(tmp_path / "in", ["good.wav"], recording(utterances[:1], gap_s=1.0))
    (inputs / "broken.wav").write_bytes(b"this is not audio at all")
    manifest = tmp_path / "manifest.jsonl"
    lines = [{"path": "in/good.wav", "language": "en"}, {"path": "in/broken.wav", "id": "broken"}, {"path": "gone.mp3"}]
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))

    report = run_pipeline(manifest, tmp_path / "out", ScriptedSystem(), ScriptedSystem(), PipelineConfig())

    assert report["inputs"] == {"total": 3, "unreadable": 2}
    assert report["drops"]["unreadable"] == 2
    assert report["segments"]["kept"] == 1 and len(corpus_rows(tmp_path / "out")) == 1
    errors = {d["input"]: d["error"] for d in decisions(tmp_path / "out") if d["reason"] == "unreadable"}
    assert "broken.wav" in errors["broken"] and "gone.mp3" in errors["gone.mp3"]


def test_missing_or_wrong_systems_are_named_in_the_error(tmp_path, capsys):
    config = PipelineConfig()
    with pytest.raises(PipelineError, match="system A '/no/such/model'"):
        load_system("/no/such/model", "A", config)
    with pytest.raises(PipelineError, match="system B 'kaldi'"):
        load_system("kaldi", "B", config)
    with pytest.raises(PipelineError, match="system B 'no_such_module:System' cannot be imported"):
        load_system("no_such_module:System", "B", config)
    whisper = tmp_path / "whisper"
    whisper.mkdir()
    (whisper / "config.json").write_text('{"model_type": "whisper"}')
    with pytest.raises(PipelineError, match="system A .*whisper.* must be a TouchASP model folder"):
        load_system(str(whisper), "A", config)
    with pytest.raises(PipelineError, match="pocketsphinx recognises English only"):
        load_system("pocketsphinx", "B", PipelineConfig(language="zh"))

    argv = ["pipeline", "--input", str(tmp_path), "--out", str(tmp_path / "out"), "--system-a", str(whisper),
            "--system-b", "pocketsphinx"]
    assert touchasp.main(argv) == 1
    assert "must be a TouchASP model folder" in capsys.readouterr().err


def test_shards_split_the_inputs_disjointly_and_cover_them_all(tmp_path, monkeypatch):
    for index in range(11):
        (tmp_path / f"clip{index:02d}.{('wav', 'ogg', 'MP3', 'opus')[index % 4]}").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not audio")
    inputs = read_inputs(tmp_path)
    assert len(inputs) == 11

    shards = [shard_inputs(inputs, 3, index) for index in range(3)]

    names = [item.name for shard in shards for item in shard]
    assert sorted(names) == [item.name for item in inputs] and len(set(names)) == 11
    assert all(inputs.index(item) % 3 == index for index, shard in enumerate(shards) for item in shard)
    with pytest.raises(PipelineError, match="shard index 3 of 3"):
        shard_inputs(inputs, 3, 3)

    # Under `accelerate launch` (or torchrun) each process takes its shard from the environment.
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "2")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--input", "in", "--out", "out", "--system-a", "a", "--system-b", "b"])
    assert (args.num_shards, args.shard_index) == (3, 2)


@needs_espeak
def test_shards_run_apart_then_one_unsharded_rerun_reports_them_all(utterances, tmp_path):
    inputs = write_inputs(tmp_path / "in", ["a.wav", "b.wav", "c.wav"], recording(utterances[:1], gap_s=1.0))
    out = tmp_path / "out"
    for index in range(2):
        run_pipeline(inputs, out, ScriptedSystem(), ScriptedSystem(), PipelineConfig(num_shards=2, shard_index=index))
    assert json.loads((out / "report-00001-of-00002.json").read_text())["inputs"]["total"] == 1
    markers = {path: path.stat().st_mtime_ns for path in out.glob("work/*.done.json")}

    report = run_pipeline(inputs, out, ScriptedSystem(), ScriptedSystem(), PipelineConfig())

    assert report["inputs"]["total"] == 3 and report["segments"]["kept"] == 3
    assert {path: path.stat().st_mtime_ns for path in markers} == markers
    with pytest.raises(PipelineError, match="other settings .*cer_threshold"):
        run_pipeline(inputs, out, ScriptedSystem(), ScriptedSystem(), PipelineConfig(cer_threshold=0.1))


@needs_espeak
def test_full_disk_exits_nonzero_and_leaves_nothing_half_written(utterances, tmp_path, monkeypatch, capsys):
    inputs = write_inputs(tmp_path / "in", ["a.wav"], recording(utterances[:1], gap_s=1.0))
    out = tmp_path / "out"

    def fill_the_disk(self, path, *args, **kwargs):
        Path(path).write_bytes(b"PAR1 and then nothing")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(datasets.Dataset, "to_parquet", fill_the_disk)
    fake = "tests.training.test_pipeline:ScriptedSystem"
    argv = ["pipeline", "--input", str(inputs), "--out", str(out), "--system-a", fake, "--system-b", fake]
    assert touchasp.main(argv) == 1
    error = capsys.readouterr().err
    assert "disk full while writing" in error and str(out / "data") in error
    assert list((out / "data").iterdir()) == [] and not list((out / "work").glob("*.done.json"))

    monkeypatch.undo()
    assert touchasp.main(argv) == 0
    assert len(corpus_rows(out)) == 1


@needs_espeak
def test_two_touchasp_models_label_every_segment(utterances, tmp_path, tiny_model_dir):
    inputs = write_inputs(tmp_path / "in", ["a.wav"], recording(utterances[:2], gap_s=2.0))
    config = PipelineConfig(batch_size=2)
    system = load_system(str(tiny_model_dir), "A", config)

    report = run_pipeline(inputs, tmp_path / "out", system, load_system(str(tiny_model_dir), "B", config), config)

    assert report["stages"]["pseudo_label"]["count"] == 2
    for decision in decisions(tmp_path / "out"):
        # The same random model twice: identical hypotheses, each with the language its perception gave.
        assert decision["text_a"] == decision["text_b"]
        assert decision["language_a"] == decision["language_b"] and decision["language_a"] is not None


@needs_espeak
def test_pocketsphinx_transcribes_english_speech(tmp_path):
    path = synthesize("the quick brown fox jumps over the lazy dog", tmp_path / "fox.wav")
    audio = soundfile.read(path, dtype="float32")[0]
    (hypothesis,) = PocketSphinxSystem().transcribe([Segment(InputFile("fox", path), 0, len(audio), audio)])
    assert hypothesis.text.strip() and hypothesis.language is None


def pipeline_command(inputs: Path, out: Path) -> list[str]:
    fake = "tests.training.test_pipeline:slow_system"
    return [sys.executable, "-m", "touchasp", "pipeline", "--input", str(inputs), "--out", str(out),
            "--system-a", fake, "--system-b", fake, "--num-proc", "2"]


@needs_espeak
def test_a_run_killed_midway_and_rerun_equals_an_uninterrupted_run(utterances, tmp_path):
    names = [f"talk{index}.wav" for index in range(5)]
    inputs = write_inputs(tmp_path / "in", names, recording(utterances[:2], gap_s=2.0))
    expected = run_pipeline(inputs, tmp_path / "whole", ScriptedSystem(), ScriptedSystem(), PipelineConfig())
    out = tmp_path / "resumed"
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}

    process = subprocess.Popen(pipeline_command(inputs, out), cwd=REPO, env=environment, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(out.glob("work/*.done.json")):
        assert process.poll() is None and time.monotonic() < deadline, "the pipeline ended before any input was done"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = {path: path.stat().st_mtime_ns for path in out.glob("work/*.done.json")}
    assert 1 <= len(done_before) < len(names)

    subprocess.run(pipeline_command(inputs, out), cwd=REPO, env=environment, check=True, stderr=subprocess.DEVNULL)

    # Finished inputs were not redone, and the result is an uninterrupted run's, row for row.
    assert {path: path.stat().st_mtime_ns for path in done_before} == done_before
    assert corpus_rows(out) == corpus_rows(tmp_path / "whole") and len(corpus_rows(out)) == 2 * len(names)
    assert decisions(out) == decisions(tmp_path / "whole")
    assert without_timings(json.loads((out / "report.json").read_text())) == without_timings(expected)
    assert not list(out.rglob(".*.tmp"))
