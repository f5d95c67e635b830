"""Turn any audio a user hands us into a float32 mono waveform at the model's rate, or say clearly why not."""

import io
import numbers
import os
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import soxr
import torch

# The feature extractor's analysis window; audio shorter than this yields no feature frame at all.
ANALYSIS_WINDOW_MS = 25
# Seven such windows 10 ms apart: the fewest feature frames that the encoder's x4 convolutional subsampling turns
# into one frame; a shorter clip has nothing the model can look at.
MIN_DURATION_MS = 85
# Float samples are in [-1, 1]; a peak above this is integer PCM cast to float without scaling (30 dB too loud).
MAX_FLOAT_PEAK = 32.0
# Sampling rates that real audio has (telephone 8 kHz is near the bottom, studio 384 kHz near the top); a value
# outside is a unit mix-up such as 16 for 16 kHz, which resampling would blow up a thousandfold.
RATE_RANGE_HZ = (1000, 768000)
# A 2-D array's channel axis is its short one; more channels than this means the layout is not audio we know.
MAX_CHANNELS = 8
# Full-scale values of integer PCM, so that int16 and int32 samples land in [-1, 1].
_PCM_FULL_SCALE = {np.dtype(np.int16): 2.0**15, np.dtype(np.int32): 2.0**31}


class TouchASPInputError(ValueError):
    """Audio input that cannot be used; the message names the input, what is wrong and what would be right."""


def load_audio(
    source: Any,
    sampling_rate: int | None = None,
    *,
    target_rate: int = 16000,
    name: str | None = None,
) -> np.ndarray:
    """Decode, downmix and resample `source` to a 1-D float32 waveform at `target_rate` Hz.

    `source` may be:
    - a path (str or `os.PathLike`) or the `bytes` of an encoded file: wav, flac, ogg and mp3 are read with
      soundfile, anything else FFmpeg decodes through torchcodec. The file's own rate is used; `sampling_rate`
      is ignored.
    - a numpy array or torch tensor, or a list of float samples, recorded at `sampling_rate` Hz (required).
      Shapes: (samples,), (samples, channels) or (channels, samples); the channel axis is the short one and
      must have at most 8 channels. Dtypes: any float (samples in [-1, 1]), int16 or int32 PCM (scaled to
      [-1, 1]). uint8 is refused: it is more often an encoded file's bytes than 8-bit PCM.
    - a dict, as Transformers pipelines and `datasets.Audio` give it: `{"raw" | "array": ..., "sampling_rate":
      ...}`, `{"bytes": ..., "path": ...}` or `{"path": ...}`.
    - a decoder with `get_all_samples()`, such as the torchcodec `AudioDecoder` that `datasets` 5 returns.

    Channels are averaged to mono. `name` replaces the input's name in error messages. The result may share
    memory with an input that is already a float32 1-D array at `target_rate`.

    Raises `TouchASPInputError` for a missing or undecodable file, a wrong dtype or shape, an implausible sampling
    rate, less than 85 ms of audio (`MIN_DURATION_MS`), NaN / infinite samples, or float samples far outside
    [-1, 1] (integer PCM cast to float). All-zero silence is valid.
    """
    waveform, rate, label = _read(source, sampling_rate, name)
    _check_waveform(waveform, rate, label)
    if rate != target_rate:
        waveform = soxr.resample(np.ascontiguousarray(waveform), rate, target_rate, quality="HQ")
    return waveform


def _read(source: Any, sampling_rate: int | None, name: str | None) -> tuple[np.ndarray, float, str]:
    """Return (mono float32 waveform, its rate, the label error messages use for this input)."""
    if isinstance(source, dict):
        return _read_dict(source, sampling_rate, name)
    if isinstance(source, (str, os.PathLike)):
        label = f"audio at {name or os.fspath(source)}"
        return (*_decode_file(Path(source), label), label)
    if isinstance(source, (bytes, bytearray, memoryview)):
        label = f"audio ({name or 'bytes input'})"
        return (*_decode(bytes(source), label), label)
    if isinstance(source, (np.ndarray, torch.Tensor, list, tuple)):
        label = f"audio ({name or 'array input'})"
        return _array_to_mono(source, label), _check_rate(sampling_rate, label), label
    if hasattr(source, "get_all_samples"):
        label = f"audio ({name or 'decoder input'})"
        samples = source.get_all_samples()
        return _downmix(_as_float32(samples.data, label), channel_axis=0), samples.sample_rate, label
    raise TouchASPInputError(
        f"audio ({name or 'input'}) has unsupported type {type(source).__name__}; pass a file path, the bytes of an "
        "encoded file, an array or tensor with sampling_rate, or a dict {'array': ..., 'sampling_rate': ...}"
    )


def _read_dict(source: dict, sampling_rate: int | None, name: str | None) -> tuple[np.ndarray, float, str]:
    """Unpack the pipeline's {"raw", "sampling_rate"} and datasets' {"array"|"bytes"|"path", ...} conventions."""
    name = name or source.get("path")
    for key in ("raw", "array"):
        if source.get(key) is not None:
            return _read(source[key], source.get("sampling_rate", sampling_rate), name)
    if source.get("bytes") is not None:
        label = f"audio at {name}" if name else "audio (bytes input)"
        return (*_decode(bytes(source["bytes"]), label), label)
    if source.get("path") is not None:
        return _read(source["path"], None, name)
    raise TouchASPInputError(
        f"audio dict with keys {sorted(source)} holds no audio; expected 'raw' or 'array' (with 'sampling_rate'), "
        "'bytes' or 'path'"
    )


def _decode_file(path: Path, label: str) -> tuple[np.ndarray, float]:
    if not path.exists():
        raise TouchASPInputError(f"{label} not found: no such file")
    if not path.is_file():
        raise TouchASPInputError(f"{label} is not a file; pass the path of an audio file")
    return _decode(path, label)


def _decode(data: Path | bytes, label: str) -> tuple[np.ndarray, float]:
    """Decode an encoded file with soundfile, or with FFmpeg (torchcodec) for formats libsndfile lacks."""
    try:
        file = io.BytesIO(data) if isinstance(data, bytes) else data
        samples, rate = soundfile.read(file, dtype="float32", always_2d=True)
        return _downmix(samples, channel_axis=1), rate
    except soundfile.SoundFileError as error:
        # error_string is libsndfile's own reason, without soundfile's repr of the file object.
        soundfile_reason = getattr(error, "error_string", str(error))
    try:
        # Imported here because it loads the FFmpeg libraries, which most inputs (wav, flac, arrays) never need.
        from torchcodec.decoders import AudioDecoder

        decoded = AudioDecoder(os.fspath(data) if isinstance(data, Path) else data).get_all_samples()
    except (ImportError, OSError, RuntimeError, ValueError) as error:
        raise TouchASPInputError(
            f"{label} is not a readable audio file ({soundfile_reason}; FFmpeg could not decode it either); "
            "expected an encoded audio file such as wav, flac, ogg or mp3"
        ) from error
    return _downmix(decoded.data.numpy(), channel_axis=0), decoded.sample_rate


def _array_to_mono(array: np.ndarray | torch.Tensor | list | tuple, label: str) -> np.ndarray:
    samples = _as_float32(array, label)
    if samples.ndim == 1:
        return samples
    if samples.ndim != 2:
        raise TouchASPInputError(
            f"{label} has {samples.ndim} dimensions (shape {samples.shape}); expected (samples,), "
            "(samples, channels) or (channels, samples). Pass a batch as a list of clips"
        )
    return _downmix(samples, channel_axis=_channel_axis(samples.shape, label))


def _as_float32(array: np.ndarray | torch.Tensor | list | tuple, label: str) -> np.ndarray:
    """Convert to float32 numpy samples in [-1, 1] (for PCM input), refusing dtypes that are not audio."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu()
        # numpy has no bfloat16, and half precision gains nothing here.
        array = (array.float() if array.is_floating_point() else array).numpy()
    elif isinstance(array, (list, tuple)):
        try:  # the list's own dtype: integers are refused below like an int64 array, not taken as floats
            array = np.asarray(array)
        except (TypeError, ValueError) as error:
            raise TouchASPInputError(f"{label} is a list that is not float samples: {error}") from error
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float32, copy=False)
    if array.dtype in _PCM_FULL_SCALE:
        samples = array.astype(np.float32)
        samples *= 1.0 / _PCM_FULL_SCALE[array.dtype]
        return samples
    raise TouchASPInputError(
        f"{label} has dtype {array.dtype}; expected float samples in [-1, 1] or int16 / int32 PCM "
        "(an encoded file goes in as bytes or a path)"
    )


def _channel_axis(shape: tuple[int, int], label: str) -> int:
    """The short axis is the channels: (samples, channels) as soundfile gives, or (channels, samples) as torch."""
    rows, columns = shape
    if columns <= MAX_CHANNELS and columns <= rows:
        return 1
    if rows <= MAX_CHANNELS:
        return 0
    raise TouchASPInputError(
        f"{label} has shape {shape}, which is not one clip: a 2-D array must be (samples, channels) or "
        f"(channels, samples) with at most {MAX_CHANNELS} channels. Pass a batch as a list of clips"
    )


def _downmix(samples: np.ndarray, channel_axis: int) -> np.ndarray:
    if samples.shape[channel_axis] == 1 or samples.size == 0:
        return samples.reshape(-1)
    return samples.mean(axis=channel_axis, dtype=np.float32)


def _check_rate(sampling_rate: Any, label: str) -> float:
    if sampling_rate is None:
        raise TouchASPInputError(
            f"{label} has no sampling rate; pass sampling_rate= the rate it was recorded at (e.g. 16000)"
        )
    if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, numbers.Real) or not sampling_rate > 0:
        raise TouchASPInputError(f"{label} has sampling_rate={sampling_rate!r}; expected a positive number of Hz")
    low, high = RATE_RANGE_HZ
    if not low <= sampling_rate <= high:
        raise TouchASPInputError(
            f"{label} has sampling_rate={sampling_rate!r}, outside {low}..{high} Hz; the rate is in Hz (16 kHz is "
            "16000)"
        )
    return sampling_rate


def _check_waveform(waveform: np.ndarray, rate: float, label: str) -> None:
    if waveform.size == 0:
        raise TouchASPInputError(f"{label} is empty (0 samples)")
    if waveform.size * 1000 < rate * MIN_DURATION_MS:
        raise TouchASPInputError(
            f"{label} is too short ({waveform.size} samples at {rate:g} Hz = {1000 * waveform.size / rate:.1f} ms); "
            f"need at least {MIN_DURATION_MS} ms, the seven 25 ms feature frames the encoder's subsampling needs"
        )
    if not np.isfinite(waveform).all():
        first = int(np.flatnonzero(~np.isfinite(waveform))[0])
        raise TouchASPInputError(
            f"{label} contains NaN or infinite samples (first at sample {first}); expected finite values in [-1, 1]"
        )
    peak = max(float(waveform.max()), -float(waveform.min()))  # no full-size temporary for hours of audio
    if peak > MAX_FLOAT_PEAK:
        raise TouchASPInputError(
            f"{label} has float samples up to {peak:g}; expected [-1, 1]. Integer PCM cast to float must be scaled "
            "(divide 16-bit samples by 32768), or passed with its int16 / int32 dtype"
        )
