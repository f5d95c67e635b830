import json

import kaldi_native_fbank as knf
import numpy as np
import pytest
import soxr
import torch

from processing.audio import TouchASPInputError
from processing.feature_extraction_touchasp import TouchASPFeatureExtractor


def kaldi_fbank(waveform: np.ndarray) -> np.ndarray:
    """kaldi-native-fbank called directly, as a Kaldi recipe would: the reference the extractor must match."""
    options = knf.FbankOptions()
    options.frame_opts.dither = 0
    options.mel_opts.num_bins = 80
    fbank = knf.OnlineFbank(options)
    fbank.accept_waveform(16000, waveform * 32768)
    fbank.input_finished()
    return np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)])


def frame_count(num_samples: int) -> int:
    return 1 + (num_samples - 400) // 160


def test_raw_features_match_kaldi_native_fbank(speech):
    features = TouchASPFeatureExtractor(cmvn=None)(speech, sampling_rate=16000)["input_features"][0]
    reference = kaldi_fbank(speech)
    assert features.shape == reference.shape == (frame_count(len(speech)), 80)
    assert np.abs(features - reference).max() < 1e-3


def test_utterance_cmvn_gives_zero_mean_unit_variance(speech):
    features = TouchASPFeatureExtractor()(speech, sampling_rate=16000)["input_features"][0]
    np.testing.assert_allclose(features.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(features.std(axis=0), 1.0, atol=1e-3)


def test_same_clip_as_16k_array_wav_path_and_48k_array(speech_path, speech):
    extractor = TouchASPFeatureExtractor()
    from_array = extractor(speech, sampling_rate=16000)["input_features"][0]
    from_path = extractor(str(speech_path))["input_features"][0]
    from_48k = extractor(soxr.resample(speech, 16000, 48000, quality="HQ"), sampling_rate=48000)["input_features"][0]
    # The wav holds exactly the array's samples.
    np.testing.assert_array_equal(from_path, from_array)
    # Going up to 48 kHz and back keeps the band below ~7.5 kHz; soxr's anti-alias filter removes what lies just
    # under 8 kHz, so the top two mel bins (78, 79) are left out: they differ by as much as the content there.
    # Measured on the fixtures (after CMVN): bins 0-77 differ by 1e-5 to 1e-4 on average, at most 0.004 (speech)
    # and 0.016 (chirp over noise).
    assert from_48k.shape == from_array.shape
    difference = np.abs(from_48k[:, :78] - from_array[:, :78])
    assert difference.mean() < 1e-3 and difference.max() < 0.05


def test_batch_is_padded_and_each_item_matches_its_own_features(speech):
    extractor = TouchASPFeatureExtractor()
    short = speech[: len(speech) // 2]
    batch = extractor([speech, short], sampling_rate=16000, return_tensors="pt")
    features, mask = batch["input_features"], batch["attention_mask"]
    assert features.dtype == torch.float32 and features.shape == (2, frame_count(len(speech)), 80)
    assert mask.tolist() == [[1] * frame_count(len(speech)), [1] * frame_count(len(short)) + [0] * (
        frame_count(len(speech)) - frame_count(len(short))
    )]
    for row, clip in enumerate([speech, short]):
        alone = extractor(clip, sampling_rate=16000)["input_features"][0]
        np.testing.assert_allclose(features[row, : len(alone)].numpy(), alone, atol=1e-6)
    assert (features[1, frame_count(len(short)) :] == 0.0).all()


def test_mixed_batch_of_path_int16_and_stereo(speech_path, speech):
    pcm = (speech * 2**15).astype(np.int16)
    stereo = np.stack([speech, speech], axis=1)
    batch = TouchASPFeatureExtractor()([str(speech_path), pcm, stereo], sampling_rate=16000)
    features = batch["input_features"]
    np.testing.assert_allclose(features[1], features[0], atol=1e-5)
    np.testing.assert_allclose(features[2], features[0], atol=1e-5)


def test_ten_minutes_gives_the_expected_frame_count():
    waveform = np.random.default_rng(0).uniform(-0.5, 0.5, 16000 * 600).astype(np.float32)
    batch = TouchASPFeatureExtractor()(waveform, sampling_rate=16000)
    assert batch["input_features"].shape == (1, frame_count(16000 * 600), 80)
    assert batch["attention_mask"].sum() == frame_count(16000 * 600)


@pytest.mark.parametrize("cmvn", ["utterance", "global", None])
@pytest.mark.parametrize("num_samples", [16000, 1360], ids=["one_second", "shortest"])
def test_silence_gives_finite_features(speech, cmvn, num_samples):
    extractor = TouchASPFeatureExtractor().fit_global_cmvn([speech], sampling_rate=16000)
    extractor.cmvn = cmvn
    features = extractor(np.zeros(num_samples, dtype=np.float32), sampling_rate=16000)["input_features"]
    assert features.shape == (1, frame_count(num_samples), 80)
    assert np.isfinite(features).all()
    if cmvn == "utterance":  # constant bins have nothing to normalize: they become 0, not noise blown up
        np.testing.assert_allclose(features, 0.0, atol=1e-2)


def test_attention_mask_follows_the_extractors_setting(speech):
    assert "attention_mask" in TouchASPFeatureExtractor()(speech, sampling_rate=16000)
    plain = TouchASPFeatureExtractor(return_attention_mask=False)
    assert "attention_mask" not in plain(speech, sampling_rate=16000)
    assert "attention_mask" in plain(speech, sampling_rate=16000, return_attention_mask=True)


def test_bad_item_in_a_batch_is_named_by_index(speech):
    with pytest.raises(TouchASPInputError, match=r"batch item 1: audio \(array input\) is empty"):
        TouchASPFeatureExtractor()([speech, np.zeros(0, dtype=np.float32)], sampling_rate=16000)


def test_global_cmvn_fit_on_one_clip_equals_that_clips_utterance_cmvn(speech):
    extractor = TouchASPFeatureExtractor().fit_global_cmvn(iter([speech, speech]), sampling_rate=16000)
    assert extractor.cmvn == "global" and len(extractor.cmvn_mean) == len(extractor.cmvn_std) == 80
    global_features = extractor(speech, sampling_rate=16000)["input_features"]
    utterance_features = TouchASPFeatureExtractor()(speech, sampling_rate=16000)["input_features"]
    np.testing.assert_allclose(global_features, utterance_features, atol=1e-3)


def test_save_and_reload_keeps_fields(tmp_path, speech):
    extractor = TouchASPFeatureExtractor().fit_global_cmvn([speech], sampling_rate=16000)
    extractor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["cmvn"] == "global" and saved["feature_size"] == 80 and saved["sampling_rate"] == 16000
    reloaded = TouchASPFeatureExtractor.from_pretrained(tmp_path)
    assert reloaded.to_dict() == extractor.to_dict()
    np.testing.assert_array_equal(
        reloaded(speech, sampling_rate=16000)["input_features"], extractor(speech, sampling_rate=16000)["input_features"]
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"cmvn": "speaker"}, "is not one of"), ({"cmvn": "global"}, "needs cmvn_mean with 80 values")],
)
def test_invalid_cmvn_config_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TouchASPFeatureExtractor(**kwargs)
