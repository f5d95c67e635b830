"""Row filtering and noise augmentation of the training stream."""

import numpy as np
import pytest

from training.data import (
    CORPUS_FEATURES,
    NO_SPEECH,
    SILENCE_TARGETS,
    AugmentConfig,
    Featurizer,
    PlannedBatch,
    StreamPosition,
    augment_waveform,
    encode_flac,
    fits_decoder,
    load_corpus,
    load_noise_clips,
    noise_floor,
    write_corpus,
)


def test_rows_whose_target_outgrows_the_decoder_are_left_out(tiny_processor):
    row = {"text": "hello world", "language": "en", "emotion": None, "gender": "female", "events": ["Speech"]}
    labels, _ = tiny_processor.build_target(**row)
    assert fits_decoder(row, tiny_processor, max_target_positions=len(labels))
    assert not fits_decoder(row, tiny_processor, max_target_positions=len(labels) - 1)
    long_row = {**row, "text": "hello world " * 200}
    assert not fits_decoder(long_row, tiny_processor, max_target_positions=256)


def write_events_corpus(out_dir, rows):
    """A one-shard corpus of (id, language, text, events, seed) rows, each one second of seeded noise."""
    columns = {name: [] for name in CORPUS_FEATURES}
    for row_id, language, text, events, seed in rows:
        waveform = np.random.default_rng(seed).normal(0, 0.1, 16000).astype(np.float32)
        values = {
            "audio": encode_flac(waveform, row_id), "text": text, "language": language, "emotion": None,
            "gender": None, "events": events, "id": row_id, "duration": 1.0, "source": "test",
        }
        for name, value in values.items():
            columns[name].append(value)
    return write_corpus(columns, out_dir)


def test_noise_clips_are_the_rows_without_speech(tmp_path):
    corpus = write_events_corpus(tmp_path / "events", [
        ("dog", NO_SPEECH, "", ["Dog"], 1), ("speech-over-bell", "en", "hello", ["Speech", "Bell"], 2),
        ("unlabelled", NO_SPEECH, "", None, 4), ("drum", NO_SPEECH, "", ["Drum"], 3),
    ])  # fmt: skip
    assert [clip["events"] for clip in load_noise_clips(corpus, max_clips=5)] == [["Dog"], ["Drum"]]
    assert [clip["events"] for clip in load_noise_clips(corpus, max_clips=1)] == [["Dog"]]
    speech_only = write_events_corpus(tmp_path / "speech", [("a", "en", "hello", ["Speech"], 4)])
    with pytest.raises(ValueError, match="no rows of language 'nospeech' with events"):
        load_noise_clips(speech_only, max_clips=5)


def test_mixed_in_noise_adds_its_events_to_labelled_rows_only(tiny_processor, tmp_path):
    corpus = write_events_corpus(tmp_path / "events", [("dog", NO_SPEECH, "", ["Dog"], 1)])
    speech = write_events_corpus(tmp_path / "speech", [
        ("labelled", "en", "hello world", ["Speech"], 5), ("unlabelled", "en", "hello", None, 6),
    ])  # fmt: skip
    rows = list(load_corpus(speech))
    batch = PlannedBatch(rows, [0, 1], 0, StreamPosition())
    always = AugmentConfig(noise_prob=1.0, snr_db=[10.0, 10.0])
    noisy = Featurizer(tiny_processor, always, load_noise_clips(corpus, 5), seed=0, rank=0)(batch)
    clean = Featurizer(tiny_processor, AugmentConfig(), [], seed=0, rank=0)(batch)
    expected = tiny_processor(
        text=["hello world", "hello"], language=["en", "en"], emotion=[None, None], gender=[None, None],
        events=[["Speech", "Dog"], None], return_tensors="np",
    )
    np.testing.assert_array_equal(noisy["labels"], expected["labels"])
    assert not np.array_equal(noisy["labels"], clean["labels"])
    assert not np.allclose(noisy["input_features"], clean["input_features"])


def test_silence_pads_both_ends_over_a_noise_floor_or_with_zeros():
    waveform = np.full(16000, 0.5, dtype=np.float32)
    config = AugmentConfig(silence_prob=1.0, silence_max_s=1.0, silence_db=[-60.0, -60.0], silence_zero_prob=0.0)
    padded, events = augment_waveform(waveform, np.random.default_rng(0), config, [], 16000)
    again, _ = augment_waveform(waveform, np.random.default_rng(0), config, [], 16000)
    np.testing.assert_array_equal(padded, again)  # seeded: the same after a resume
    assert events == () and padded.dtype == np.float32 and 16000 < len(padded) <= 48000
    start = int(np.flatnonzero(np.abs(padded - 0.5) < 0.01)[0])
    assert start > 0 and np.std(padded[:start]) == pytest.approx(10 ** (-60 / 20), rel=0.3)
    assert np.std(padded[start : start + 16000]) > 0  # the floor lies under the speech too
    only_zeros = AugmentConfig(silence_prob=1.0, silence_zero_prob=1.0)
    zeros, _ = augment_waveform(waveform, np.random.default_rng(1), only_zeros, [], 16000)
    assert set(np.unique(zeros)) <= {0.0, 0.5} and len(zeros) > 16000
    untouched, _ = augment_waveform(waveform, np.random.default_rng(0), AugmentConfig(), [], 16000)
    np.testing.assert_array_equal(untouched, waveform)


def test_silence_rows_are_a_quiet_floor_labelled_nospeech_and_silence(tiny_processor, tmp_path):
    speech = write_events_corpus(tmp_path / "speech", [
        ("a", "en", "hello world", ["Speech"], 5), ("b", "en", "hello", ["Speech"], 6),
    ])  # fmt: skip
    rows = list(load_corpus(speech))
    batch = PlannedBatch(rows, [0, 1], 0, StreamPosition())
    config = AugmentConfig(silence_row_prob=1.0, silence_db=[-60.0, -60.0], silence_zero_prob=0.0, noise_prob=1.0)
    silent = Featurizer(tiny_processor, config, [], seed=0, rank=0)(batch)
    expected = tiny_processor(**{name: [value] * 2 for name, value in SILENCE_TARGETS.items()}, return_tensors="np")
    np.testing.assert_array_equal(silent["labels"], expected["labels"])
    clean = Featurizer(tiny_processor, AugmentConfig(), [], seed=0, rank=0)(batch)
    assert silent["input_features"].shape == clean["input_features"].shape  # same length as the row
    assert not np.allclose(silent["input_features"], clean["input_features"])
    again = Featurizer(tiny_processor, config, [], seed=0, rank=0)(batch)
    np.testing.assert_array_equal(silent["input_features"], again["input_features"])  # seeded: the same after a resume
    floor = noise_floor(48000, np.random.default_rng(0), config)
    assert floor.dtype == np.float32 and np.std(floor) == pytest.approx(10 ** (-60 / 20), rel=0.05)
    assert not noise_floor(100, np.random.default_rng(0), AugmentConfig(silence_zero_prob=1.0)).any()
