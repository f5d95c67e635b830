import re
import tracemalloc

import numpy as np
import pytest
import soundfile
import soxr
import torch
from torchcodec.decoders import AudioDecoder
from torchcodec.encoders import AudioEncoder

from processing.audio import TouchASPInputError, load_audio


def test_wav_path_gives_float32_mono_samples(speech_path, speech):
    waveform = load_audio(speech_path)
    assert waveform.dtype == np.float32 and waveform.ndim == 1
    np.testing.assert_array_equal(waveform, speech)


@pytest.mark.parametrize("extension", ["flac", "ogg", "mp3"])
def test_compressed_formats_decode(tmp_path, speech, extension):
    path = tmp_path / f"speech.{extension}"
    soundfile.write(path, speech, 16000)
    waveform = load_audio(str(path))
    assert abs(len(waveform) - len(speech)) < 2048  # mp3 pads to whole frames
    n = min(len(waveform), len(speech))
    assert np.corrcoef(waveform[:n], speech[:n])[0, 1] > 0.95


def test_format_soundfile_cannot_read_falls_back_to_ffmpeg(tmp_path, speech):
    path = tmp_path / "speech.m4a"
    AudioEncoder(torch.from_numpy(speech)[None], sample_rate=16000).to_file(str(path))
    with pytest.raises(soundfile.SoundFileError):
        soundfile.read(path)
    waveform = load_audio(path)
    n = min(len(waveform), len(speech))
    assert np.corrcoef(waveform[:n], speech[:n])[0, 1] > 0.95


def test_bytes_and_dict_inputs_match_the_path(speech_path, speech):
    encoded = speech_path.read_bytes()
    for source in (
        encoded,
        {"path": str(speech_path), "bytes": None},
        {"path": "speech.wav", "bytes": encoded},
        {"raw": speech, "sampling_rate": 16000},
        {"array": speech, "sampling_rate": 16000, "path": "speech.wav"},
    ):
        np.testing.assert_array_equal(load_audio(source), speech)


def test_torchcodec_decoder_as_datasets_returns_it(speech_path, speech):
    np.testing.assert_array_equal(load_audio(AudioDecoder(str(speech_path))), speech)


def test_torch_tensor_and_list_inputs(speech):
    np.testing.assert_array_equal(load_audio(torch.from_numpy(speech), 16000), speech)
    np.testing.assert_array_equal(load_audio(speech.tolist(), 16000), speech)


@pytest.mark.parametrize("layout", ["samples_by_channels", "channels_by_samples"])
def test_stereo_is_averaged_to_mono(speech, layout):
    stereo = np.stack([speech, np.zeros_like(speech)], axis=1 if layout == "samples_by_channels" else 0)
    np.testing.assert_allclose(load_audio(stereo, 16000), speech / 2)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_any_rate_is_resampled_to_16k(speech, rate):
    resampled = soxr.resample(speech, 16000, rate, quality="HQ")
    waveform = load_audio(resampled, rate)
    assert abs(len(waveform) - len(speech)) <= 1
    n = min(len(waveform), len(speech))
    assert np.corrcoef(waveform[:n], speech[:n])[0, 1] > (0.9 if rate == 8000 else 0.999)


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.float64])
def test_pcm_and_double_inputs_land_in_unit_range(speech, dtype):
    # The fixture's samples are whole multiples of 2**-15, so scaling to integer PCM is exact.
    full_scale = 2 ** (8 * np.dtype(dtype).itemsize - 1) if np.issubdtype(dtype, np.integer) else 1
    samples = (speech.astype(np.float64) * full_scale).astype(dtype)
    waveform = load_audio(samples, 16000)
    assert waveform.dtype == np.float32
    np.testing.assert_allclose(waveform, speech, atol=1e-4)


def test_silence_is_valid():
    np.testing.assert_array_equal(load_audio(np.zeros(16000, dtype=np.float32), 16000), 0.0)


def test_ten_minutes_at_48k_resamples_with_bounded_memory():
    waveform = np.random.default_rng(0).uniform(-0.5, 0.5, 48000 * 600).astype(np.float32)
    tracemalloc.start()
    try:
        resampled = load_audio(waveform, 48000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(resampled) == 16000 * 600
    assert peak < waveform.nbytes  # the 16 kHz output is a third of the input; no full-size temporaries


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (np.zeros(0, dtype=np.float32), "is empty (0 samples)"),
        (np.zeros(1, dtype=np.float32), "too short"),
        (np.zeros(1359, dtype=np.float32), "too short (1359 samples at 16000 Hz = 84.9 ms); need at least 85 ms"),
        (np.full(1600, np.nan, dtype=np.float32), "NaN or infinite"),
        (np.concatenate([np.zeros(1600), [np.inf]]), "NaN or infinite samples (first at sample 1600)"),
        (np.full(1600, 3000.0, dtype=np.float32), "float samples up to 3000; expected [-1, 1]"),
        ([0, 3000, -3000] * 600, "dtype int64"),
        (np.zeros((400, 2, 2), dtype=np.float32), "3 dimensions"),
        (np.zeros(800, dtype=np.complex64), "dtype complex64"),
        (np.zeros(800, dtype=np.uint8), "dtype uint8"),
        (np.zeros(800, dtype=bool), "dtype bool"),
        (np.zeros((800, 20), dtype=np.float32), "at most 8 channels"),
    ],
    ids=[
        "empty", "one_sample", "one_frame_short", "nan", "inf", "unscaled_pcm", "int_list", "3d", "complex", "uint8",
        "bool", "too_many_channels",
    ],
)
def test_bad_arrays_are_refused_by_name(samples, message):
    with pytest.raises(TouchASPInputError, match="array input") as error:
        load_audio(samples, 16000)
    assert message in str(error.value)


@pytest.mark.parametrize("rate", [16, 16.0, 2_000_000])
def test_implausible_sampling_rate_is_refused(speech, rate):
    with pytest.raises(TouchASPInputError, match=r"outside 1000\.\.768000 Hz; the rate is in Hz"):
        load_audio(speech, rate)


def test_array_without_sampling_rate_is_refused(speech):
    with pytest.raises(TouchASPInputError, match="no sampling rate; pass sampling_rate="):
        load_audio(speech)


def test_missing_path_is_named(tmp_path):
    missing = tmp_path / "nowhere.wav"
    with pytest.raises(TouchASPInputError, match=re.escape(f"audio at {missing} not found")):
        load_audio(missing)


def test_text_file_named_wav_is_refused_by_name(tmp_path):
    fake = tmp_path / "notes.wav"
    fake.write_text("this is not audio\n")
    with pytest.raises(TouchASPInputError, match=re.escape(f"audio at {fake} is not a readable audio file")):
        load_audio(fake)


def test_corrupt_bytes_are_refused(speech_path):
    corrupt = b"\x00garbage" + speech_path.read_bytes()[64:]
    with pytest.raises(TouchASPInputError, match=r"audio \(bytes input\) is not a readable audio file"):
        load_audio(corrupt)


def test_name_replaces_the_input_name_in_errors():
    with pytest.raises(TouchASPInputError, match=r"audio \(utterance 7\) is empty"):
        load_audio(np.zeros(0, dtype=np.float32), 16000, name="utterance 7")
