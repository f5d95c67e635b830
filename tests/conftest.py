"""Shared fixtures: tiny configs and generated audio (spoken "hello world" when espeak-ng and sox exist,
else a chirp). Tests never reach a hub."""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def tiny_config_kwargs(**overrides) -> dict:
    """Arguments of a TouchASPConfig small enough to train in seconds on 2 CPU cores."""
    kwargs = dict(
        vocab_size=512, d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, subsampling_channels=16, conv_kernel_size=7, n_routed_experts=8,
        n_shared_experts=1, moe_intermediate_size=32, elastic_k_choices=[1, 2, 3, 4], dropout=0.0,
        max_target_positions=128,
    )
    kwargs.update(overrides)
    return kwargs


@pytest.fixture
def tiny_config():
    from modeling_touchasp import TouchASPConfig

    return TouchASPConfig(**tiny_config_kwargs())


def synthesize(text: str, path: Path, voice: str = "en+f3") -> Path:
    """espeak-ng speech as a 16 kHz mono 16-bit wav."""
    raw = path.with_name(path.stem + ".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(path)], check=True)
    raw.unlink()
    return path


def _write_chirp(path: Path) -> None:
    """One second sweeping 100 Hz -> 6 kHz over a faint noise floor, so that, as in speech, no mel bin is empty."""
    time = np.arange(16000) / 16000
    phase = 2 * np.pi * (100 * time + (6000 - 100) / 2 * time**2)
    envelope = 0.5 * (1 - np.cos(2 * np.pi * time))
    noise = np.random.default_rng(0).normal(0, 0.003, len(time))
    soundfile.write(path, 0.3 * envelope * np.sin(phase) + noise, 16000, subtype="PCM_16")


HAS_ESPEAK = bool(shutil.which("espeak-ng") and shutil.which("sox"))


@pytest.fixture(scope="session")
def speech_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 16 kHz mono 16-bit wav of about one second."""
    path = tmp_path_factory.mktemp("audio") / "speech.wav"
    if HAS_ESPEAK:
        synthesize("hello world", path)
    else:
        _write_chirp(path)
    return path


@pytest.fixture(scope="session")
def speech(speech_path: Path) -> np.ndarray:
    """The samples of `speech_path` as float32 in [-1, 1], exactly as the wav stores them."""
    samples, _ = soundfile.read(speech_path, dtype="float32")
    return samples


def mixed_corpus(num_lines: int = 300, seed: int = 0) -> list[str]:
    """Generated English/Chinese transcript lines, enough for a tiny SentencePiece model in about a second."""
    rng = np.random.default_rng(seed)
    english = "hello world the cat sat on a mat speech model today weather is nice we go".split()
    chinese = "今天 天气 很好 我们 去 北京 你好 世界 语音 识别 模型 数据".split()
    return [
        " ".join(rng.choice(english, rng.integers(2, 6))) + " " + "".join(rng.choice(chinese, rng.integers(1, 4)))
        for _ in range(num_lines)
    ]


@pytest.fixture(scope="session")
def tiny_processor(tmp_path_factory: pytest.TempPathFactory):
    """A TouchASPProcessor: default feature extractor and a tokenizer trained on `mixed_corpus`."""
    from processing.feature_extraction_touchasp import TouchASPFeatureExtractor
    from processing.processing_touchasp import TouchASPProcessor
    from processing.tokenization_touchasp import train_tokenizer

    tokenizer = train_tokenizer(mixed_corpus(), tmp_path_factory.mktemp("tiny_tokenizer"), vocab_size=600)
    return TouchASPProcessor(TouchASPFeatureExtractor(), tokenizer)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_processor) -> Path:
    """A self-contained folder (weights, processor, code, custom pipeline) of a random tiny model, seed 0."""
    import torch

    from modeling_touchasp import TouchASPConfig, TouchASPForConditionalGeneration, save_touchasp

    torch.manual_seed(0)
    config = TouchASPConfig(**tiny_config_kwargs(vocab_size=len(tiny_processor.tokenizer)))
    path = tmp_path_factory.mktemp("tiny_touchasp")
    save_touchasp(TouchASPForConditionalGeneration(config), tiny_processor, path)
    return path
