"""The shipped `models/touchasp-tiny`: it loads with `pipeline(...)`, the CLI uses it by default, it fits the
size budget, and its evaluation reports every target of the training issue."""

import json
from pathlib import Path

import modeling_touchasp  # noqa: F401  (registers the pipeline)
import numpy as np
import pytest
from transformers import pipeline

from touchasp import DEFAULT_MODEL, main, resolve_model

MAX_BYTES = 40 * 2**20


def test_shipped_model_loads_with_pipeline_and_perceives(speech_path):
    asr = pipeline("automatic-speech-recognition", model=str(DEFAULT_MODEL))
    out = asr(str(speech_path), num_experts_per_tok=1)
    assert isinstance(out["text"], str)
    assert out["perception"]["language"]["label"] and out["perception"]["gender"]["label"]
    # Its n-gram loads with it; beam search + n-gram keeps the decoder's task tokens and writes its own transcript.
    assert asr.model.ngram_lm is not None and asr.model.ngram_lm.vocab_size == asr.model.config.vocab_size
    beam = asr(str(speech_path), num_experts_per_tok=1, generate_kwargs={"num_beams": 10})
    assert isinstance(beam["text"], str) and beam["perception"]["language"] == out["perception"]["language"]


@pytest.mark.parametrize("vad", [True, False])
def test_digital_silence_reads_as_no_speech_with_an_empty_transcript(vad):
    """Zeros are no speech both to the pipeline's VAD probe and to the model alone: stage 9 alone called them
    Mandarin "..." with `Speech`, and stage 10 trained on silence-only rows to mend it (training/README.md)."""
    asr = pipeline("automatic-speech-recognition", model=str(DEFAULT_MODEL))
    out = asr({"raw": np.zeros(32000, dtype=np.float32), "sampling_rate": 16000}, vad=vad)
    assert out["text"] == "" and out["perception"]["language"]["label"] == "nospeech"


def test_faint_noise_gets_no_transcript():
    """Without VAD the stage 7 model wrote "Τ" into 3 s of -60 dBFS noise; VAD hears no speech there."""
    asr = pipeline("automatic-speech-recognition", model=str(DEFAULT_MODEL))
    noise = np.random.default_rng(0).normal(0, 0.001, 3 * 16000).astype(np.float32)
    assert asr(noise)["text"] == ""


def test_long_audio_with_long_pauses_keeps_its_words_and_language(speech):
    """Speech at 40 s and 82 s of 84 s of faint noise: VAD cuts it out of the noise, so both are heard as English
    (in fixed 30 s chunks the noise outweighs it)."""
    asr = pipeline("automatic-speech-recognition", model=str(DEFAULT_MODEL))
    audio = np.random.default_rng(0).normal(0, 0.001, 84 * 16000).astype(np.float32)
    for start in (40 * 16000, 82 * 16000):
        audio[start : start + len(speech)] += speech
    out = asr(audio)
    assert out["perception"]["language"]["label"] == "en"
    assert len([chunk for chunk in out["chunks"] if chunk["text"]]) == 2


def test_cli_uses_the_shipped_model_by_default(speech_path, capsys):
    assert resolve_model(None) == str(DEFAULT_MODEL)
    assert main(["perceive", str(speech_path), "--json"]) == 0
    assert "RANDOMLY INITIALISED" not in capsys.readouterr().err


def test_folder_fits_the_budget_and_reports_its_targets():
    size = sum(path.stat().st_size for path in Path(DEFAULT_MODEL).rglob("*") if path.is_file())
    assert size <= MAX_BYTES
    targets = {row["target"] for row in json.loads((DEFAULT_MODEL / "targets.json").read_text())}
    for prefix in ("CER synthetic en", "CER synthetic zh", "CER real", "language accuracy", "gender accuracy",
                   "event micro-F1", "CER k=1 / CER k=4", "elastic vs static CER at k=1", "elastic vs static CER at k=4"):
        assert any(target.startswith(prefix) for target in targets), prefix
    training_data = json.loads((DEFAULT_MODEL / "training_data.json").read_text())
    assert training_data["emotions"] == [] and "zh" in training_data["languages"]
    assert "emotion" in (DEFAULT_MODEL / "README.md").read_text().lower()


def test_folder_code_is_the_packages():
    """`trust_remote_code` loads the folder's copies: after a fix to the package, the folder must be released again
    (`training.release`), or users of the copies keep the old code."""
    repository = Path(__file__).resolve().parents[1]
    for copy in sorted(Path(DEFAULT_MODEL).glob("*.py")):
        sources = [repository / package / copy.name for package in ("modeling_touchasp", "processing")]
        source = next(path for path in sources if path.is_file())
        assert copy.read_bytes() == source.read_bytes(), f"{copy.name} differs from {source}"
