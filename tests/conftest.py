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


def _write_audio(kind: str, text: str, path: Path) -> None:
    """espeak-ng speech of `text` ("speech"; a chirp without espeak-ng) or a chirp ("chirp") in `path`'s format."""
    wav = path.with_name(path.stem + ".tmp.wav")
    if kind == "speech" and HAS_ESPEAK:
        synthesize(text, wav)
    else:
        _write_chirp(wav)
    samples, rate = soundfile.read(wav)
    wav.unlink()
    formats = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".oga": "OGG"}
    soundfile.write(path, samples, rate, format=formats[path.suffix])


def _fake_package(cache: Path, package: str, files: dict[str, str | bytes | tuple[str, str]]) -> Path:
    """A package tree as training.sources.fetch_package leaves it: text, bytes, or ("speech", text) audio."""
    root = cache / package
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, tuple):
            _write_audio(*content, path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    (root / ".complete").write_text("fake\n")
    return root


def _opensfx_catalogue(entries: list[tuple[str, bytes]]) -> bytes:
    """An opensfx.cat: (offset | 0x80000000, size) uint32 pairs, then length-prefixed titles and RIFF wavs."""
    import struct

    table_size = 8 * len(entries)
    table, body = b"", b""
    for title, wav in entries:
        entry = bytes([len(title) + 1]) + title.encode("latin-1") + b"\0" + wav
        table += struct.pack("<II", (table_size + len(body)) | 0x80000000, len(entry))
        body += entry
    return table + body


@pytest.fixture(scope="session")
def fake_debian_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `training.sources` cache holding small look-alikes of every Debian package DATA.md names, so corpus
    and source tests run offline. Speech is espeak-ng (a chirp without it); events are chirps."""
    import gzip

    cache = tmp_path_factory.mktemp("debian")
    copyright_file = "Format: x\n\nFiles: *\nCopyright: someone\nLicense: CC-BY-SA-3.0\n"
    voices = {"en": "en_US_f_Allison", "es": "es_MX_f_Allison", "fr": "fr_CA_f_June", "it": "it_IT_m_Carlo",
              "ru": "ru_RU_f_IvrvoiceRU"}  # fmt: skip
    prompts = {"activated": "Activated.", "goodbye": "Goodbye.", "beep": "[a beep tone]"}
    for language, speaker in voices.items():
        _fake_package(cache, f"asterisk-core-sounds-{language}-wav", {
            **{f"usr/share/asterisk/sounds/{speaker}/{name}.wav": ("speech", text) for name, text in prompts.items()},
            f"usr/share/doc/asterisk-core-sounds-{language}-wav/copyright": copyright_file,
        })  # fmt: skip
        transcript = "; header\n\n" + "".join(f"{name}: {text}\n" for name, text in prompts.items())
        _fake_package(cache, f"asterisk-core-sounds-{language}", {
            f"usr/share/doc/asterisk-core-sounds-{language}/core-sounds-{language}.txt.gz":
                gzip.compress(transcript.encode()),
        })  # fmt: skip
    game = "usr/share/games/fillets-ng"
    dialogs = {
        "cs": 'dialogId("l-1", "font_small", "Hello there.")\ndialogStr("Ahoj tam.")\n\n'
              'dialogId("l-2", "font_big", "What a ship.")\ndialogStr("Jaka lod.")\n',
        "nl": 'dialogId("l-1", "font_small", "Hello there.")\ndialogStr("Hallo daar.")\n',
        "en": 'dialogId("l-1", "font_small", "Hello there.")\n',
    }  # fmt: skip
    _fake_package(cache, "fillets-ng-data", {
        **{f"{game}/script/city/dialogs_{language}.lua": text for language, text in dialogs.items()},
        f"{game}/sound/city/en/l-1.ogg": ("speech", "Hello there."), f"{game}/music/theme.ogg": ("chirp", ""),
    })  # fmt: skip
    for language, lines in (("cs", {"l-1": "Ahoj tam.", "l-2": "Jaka lod."}), ("nl", {"l-1": "Hallo daar."})):
        _fake_package(cache, f"fillets-ng-data-{language}", {
            f"{game}/sound/city/{language}/{line}.ogg": ("speech", text) for line, text in lines.items()
        })  # fmt: skip
    stamps = "usr/share/tuxpaint/stamps/animals"
    _fake_package(cache, "tuxpaint-stamps-default", {
        f"{stamps}/frog.txt": "A frog.\nfr.utf8=Une grenouille.\nde.utf8=Ein Frosch.\nzh_CN.utf8=青蛙。\n"
                              "zh_TW.utf8=青蛙。\nes.utf8=Una rana 2.\n",
        f"{stamps}/dog.txt": "A dog.\nfr.utf8=Un chien.\nde.utf8=Ein Hund.\nzh_CN.utf8=狗。\nzh_TW.utf8=狗。\n",
        f"{stamps}/frog_desc.ogg": ("speech", "A frog."), f"{stamps}/frog_desc_fr.ogg": ("speech", "Une grenouille."),
        f"{stamps}/frog.ogg": ("chirp", ""), f"{stamps}/dog.ogg": ("chirp", ""), f"{stamps}/a_filled.ogg": ("chirp", ""),
        "usr/share/doc/tuxpaint-stamps-default/copyright": "Files: *\nLicense: GPL-2\n",
    })  # fmt: skip
    _write_chirp(cache / "chirp.wav")
    wav = (cache / "chirp.wav").read_bytes()
    _fake_package(cache, "openttd-opensfx", {
        "usr/share/games/openttd/baseset/opensfx/opensfx.cat": _opensfx_catalogue([
            ('"Applause". By someone. License: Creative Commons Zero 1.0.', wav),
            ('"Unused/Nothing". Trivial empty sound file. License: Creative Commons Zero 1.0.', wav[:44]),
            ('"Sheep". By someone. License: Creative Commons Attribution 3.0 Unported.', wav),
        ]),
    })  # fmt: skip
    _fake_package(cache, "tuxpaint-data", {"usr/share/tuxpaint/sounds/giggle.wav": ("chirp", "")})
    _fake_package(cache, "sonic-pi-samples", {
        "usr/share/sonic-pi/samples/drum_snare_hard.flac": ("chirp", ""),
        "usr/share/sonic-pi/samples/bd_boom.flac": ("chirp", ""),
    })  # fmt: skip
    _fake_package(cache, "sound-theme-freedesktop", {"usr/share/sounds/freedesktop/stereo/bell.oga": ("chirp", "")})
    _fake_package(cache, "asterisk-moh-opsound-wav", {"usr/share/asterisk/moh/song.wav": ("chirp", "")})
    fortunes = "usr/share/games/fortunes"
    _fake_package(cache, "fortunes", {
        f"{fortunes}/kids": "A fox ran\nhome. Then it slept!\n%\nBe kind to\nyour cat.\n\t\t-- Someone\n%\n",
        f"{fortunes}/kids.dat": b"\0\0\0\2", f"{fortunes}/kids.u8": "A fox ran home.\n",
        "usr/share/doc/fortunes/copyright": "Legal information\n\nThis program falls under the BSD copyright:\n",
    })  # fmt: skip
    _fake_package(cache, "fortunes-zh", {
        f"{fortunes}/chinese": "\x1b[32m要有礼貌\x1b[m\n\n请保持\n礼貌。你好吗？\n%\n",
        f"{fortunes}/tang300": "床前明月光。\n%\n",
        "usr/share/doc/fortunes-zh/copyright": "Format: x\n\nFiles:     *\nCopyright: someone\nLicense: GPL-3.0+\n",
    })  # fmt: skip
    return cache
