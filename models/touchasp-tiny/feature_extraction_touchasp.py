"""TouchASP front end: Kaldi-compatible 80-dim log-mel fbank (25 ms window, 10 ms shift) with CMVN."""

from collections.abc import Iterable
from numbers import Number
from typing import Any

import kaldi_native_fbank as knf
import numpy as np
from transformers import BatchFeature, SequenceFeatureExtractor

# Relative import: this file is copied into saved model folders and loaded there with trust_remote_code.
from .audio import ANALYSIS_WINDOW_MS, TouchASPInputError, load_audio

FRAME_SHIFT_MS = 10
CMVN_MODES = ("utterance", "global", None)
# Floor on a feature's standard deviation, so a constant bin (silence, a 1-frame clip) becomes 0 rather than NaN.
CMVN_STD_FLOOR = 1e-5
# kaldi-native-fbank is fed in pieces of this many seconds, so long audio never needs a scaled copy of itself.
_FBANK_CHUNK_S = 30


class TouchASPFeatureExtractor(SequenceFeatureExtractor):
    """Audio in any form `load_audio` accepts -> `input_features` (batch, frames, 80) and `attention_mask`.

    Args:
        feature_size: number of mel bins (80).
        sampling_rate: the rate features are computed at; every input is resampled to it (16000).
        padding_value: value of padded feature frames (0.0, the mean after CMVN).
        cmvn: "utterance" (each clip to zero mean, unit variance per bin), "global" (fixed statistics from
            `cmvn_mean` / `cmvn_std`, see `fit_global_cmvn`) or None (raw log-mel energies).
        cmvn_mean, cmvn_std: per-bin statistics for `cmvn="global"`, saved in preprocessor_config.json.
    """

    model_input_names = ["input_features", "attention_mask"]

    def __init__(
        self,
        feature_size: int = 80,
        sampling_rate: int = 16000,
        padding_value: float = 0.0,
        cmvn: str | None = "utterance",
        cmvn_mean: list[float] | None = None,
        cmvn_std: list[float] | None = None,
        return_attention_mask: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            feature_size=feature_size,
            sampling_rate=sampling_rate,
            padding_value=padding_value,
            return_attention_mask=return_attention_mask,
            **kwargs,
        )
        if cmvn not in CMVN_MODES:
            raise ValueError(f"cmvn={cmvn!r} is not one of {CMVN_MODES}")
        if cmvn == "global":
            for field, stats in (("cmvn_mean", cmvn_mean), ("cmvn_std", cmvn_std)):
                if stats is None or len(stats) != feature_size:
                    raise ValueError(
                        f'cmvn="global" needs {field} with {feature_size} values (one per mel bin), got '
                        f"{None if stats is None else len(stats)}; compute them with fit_global_cmvn(waveforms)"
                    )
        self.cmvn = cmvn
        self.cmvn_mean = cmvn_mean
        self.cmvn_std = cmvn_std

    def __call__(
        self,
        raw_speech: Any,
        sampling_rate: int | None = None,
        return_tensors: str | None = None,
        padding: bool | str = "longest",
        return_attention_mask: bool | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """Featurize one clip or a list of clips, padded to the longest with `padding_value`.

        `raw_speech` is one clip (a path, bytes, a dict, a 1-D array / tensor / list of floats, or a 2-D
        multichannel array) or a list of clips; a 2-D array is one multichannel clip, never a batch.
        `sampling_rate` is the rate of array inputs; files carry their own. Remaining keyword arguments
        (`max_length`, `truncation`, `pad_to_multiple_of`) go to `SequenceFeatureExtractor.pad`.

        Returns `input_features` (batch, frames, feature_size) float32 and `attention_mask` (batch, frames)
        int32 (unless `return_attention_mask`, default the extractor's setting, is False), as numpy arrays or as
        `return_tensors` ("pt", "np").
        """
        is_batch = isinstance(raw_speech, (list, tuple)) and not (raw_speech and isinstance(raw_speech[0], Number))
        if is_batch and not raw_speech:
            raise TouchASPInputError("the batch of audio is empty; pass at least one clip")
        clips = raw_speech if is_batch else [raw_speech]
        features = []
        for index, clip in enumerate(clips):
            try:
                waveform = load_audio(clip, sampling_rate, target_rate=self.sampling_rate)
            except TouchASPInputError as error:
                if not is_batch:
                    raise
                raise TouchASPInputError(f"batch item {index}: {error}") from error
            features.append(self._normalize(self.fbank(waveform)))
        return self.pad(
            BatchFeature({"input_features": features}),
            padding=padding,
            return_attention_mask=return_attention_mask,
            return_tensors=return_tensors,
            **kwargs,
        )

    def fbank(self, waveform: np.ndarray) -> np.ndarray:
        """Raw log-mel fbank (frames, feature_size) of a mono float32 waveform at `sampling_rate`, before CMVN.

        One frame per 10 ms that a whole 25 ms window fits in (Kaldi's snip_edges): 1 + (n - 400) // 160 at 16 kHz.
        """
        options = knf.FbankOptions()
        options.frame_opts.samp_freq = self.sampling_rate
        options.frame_opts.frame_length_ms = ANALYSIS_WINDOW_MS
        options.frame_opts.frame_shift_ms = FRAME_SHIFT_MS
        options.frame_opts.dither = 0.0
        options.mel_opts.num_bins = self.feature_size
        extractor = knf.OnlineFbank(options)
        chunk = _FBANK_CHUNK_S * self.sampling_rate
        for start in range(0, len(waveform), chunk):
            # Kaldi expects 16-bit sample values, not [-1, 1].
            extractor.accept_waveform(self.sampling_rate, waveform[start : start + chunk] * 32768)
        extractor.input_finished()
        # kaldi-native-fbank 1.23 has no batch getter for OnlineFbank; get_frame is the only way out.
        return np.stack([extractor.get_frame(i) for i in range(extractor.num_frames_ready)])

    def fit_global_cmvn(
        self, waveforms: Iterable[Any], sampling_rate: int | None = None
    ) -> "TouchASPFeatureExtractor":
        """Compute per-bin mean and std of the raw fbank over `waveforms`, switch to cmvn="global", return self.

        `waveforms` is any iterable of clips `load_audio` accepts; `sampling_rate` is the rate of array clips.
        Sums are kept in float64 so that hours of audio can stream through without storing features.
        """
        frames = 0
        total = np.zeros(self.feature_size)
        total_squares = np.zeros(self.feature_size)
        for clip in waveforms:
            features = self.fbank(load_audio(clip, sampling_rate, target_rate=self.sampling_rate)).astype(np.float64)
            frames += len(features)
            total += features.sum(axis=0)
            total_squares += np.square(features).sum(axis=0)
        if frames == 0:
            raise TouchASPInputError("fit_global_cmvn got no audio; pass an iterable of at least one clip")
        mean = total / frames
        variance = np.maximum(total_squares / frames - np.square(mean), 0.0)
        self.cmvn = "global"
        self.cmvn_mean = mean.tolist()
        self.cmvn_std = np.maximum(np.sqrt(variance), CMVN_STD_FLOOR).tolist()
        return self

    def _normalize(self, features: np.ndarray) -> np.ndarray:
        if self.cmvn == "utterance":
            # float64 statistics: in float32 a constant bin (silence) gets a rounding-error std of ~1e-6, which
            # division would blow up into noise instead of the zeros the bin deserves.
            mean, std = features.mean(axis=0, dtype=np.float64), features.std(axis=0, dtype=np.float64)
        elif self.cmvn == "global":
            mean, std = np.asarray(self.cmvn_mean), np.asarray(self.cmvn_std)
        else:
            return features
        return ((features - mean) / np.maximum(std, CMVN_STD_FLOOR)).astype(np.float32)


__all__ = ["TouchASPFeatureExtractor"]
