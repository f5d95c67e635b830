"""`touchasp corpus` on look-alike Debian packages (fast) and on the real ones (slow: it downloads ~450 MB)."""

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from datasets import load_dataset

from processing.text_normalization import normalize_for_cer
from tests.conftest import HAS_ESPEAK
from training import corpus, sources

pytestmark = pytest.mark.skipif(not HAS_ESPEAK, reason="the synthetic and events recipes need espeak-ng")
LABELS = ("text", "language", "emotion", "gender", "events", "id", "duration", "source")


@pytest.fixture(scope="module")
def mixed_dir(fake_debian_cache, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus") / "mixed"
    corpus.build_corpus("mixed", out, hours=0.02, seed=3, test_fraction=0.3, num_proc=1, num_shards=2,
                        cache_dir=fake_debian_cache)  # fmt: skip
    return out


def test_mixed_corpus_streams_decoded_audio_with_every_label(mixed_dir):
    splits = load_dataset("parquet", data_dir=str(mixed_dir), streaming=True)
    assert set(splits) == {"train", "test"}
    rows = list(splits["train"])
    assert len(rows) > 10
    for row in rows:
        samples = row["audio"].get_all_samples()
        assert samples.sample_rate == 16000 and samples.data.shape[0] == 1
        assert abs(samples.data.shape[1] / 16000 - row["duration"]) < 1e-3
        assert set(LABELS) <= set(row)
    recipes = {row["id"].split("-")[0] for row in rows}
    assert recipes == {"synthetic", "real", "events"}
    nospeech = [row for row in rows if row["language"] == "nospeech"]
    assert nospeech and all(row["text"] == "" and "Speech" not in row["events"] for row in nospeech)
    spoken = [row for row in rows if row["language"] != "nospeech"]
    assert all(row["events"][0] == "Speech" and row["text"] for row in spoken)
    assert {row["emotion"] for row in rows} == {None}
    parts = sorted(path.name for path in (mixed_dir / "test").iterdir())
    assert parts == ["events", "real", "synthetic"]
    for part in parts:
        test_rows = load_dataset("parquet", data_dir=str(mixed_dir / "test" / part), split="test", streaming=True)
        assert {row["id"].split("-")[0] for row in test_rows} == {part}


def test_stats_and_manifest_account_for_every_row(mixed_dir):
    stats = json.loads((mixed_dir / "stats.json").read_text())
    manifest = [json.loads(line) for line in (mixed_dir / "manifest.jsonl").read_text().splitlines()]
    for split in ("train", "test"):
        in_split = [record for record in manifest if record["split"] == split]
        assert stats["splits"][split]["utterances"] == len(in_split)
        assert stats["splits"][split]["hours"] == pytest.approx(sum(r["duration"] for r in in_split) / 3600, abs=1e-3)
    assert abs(sum(source["hours"] for source in stats["sources"]) - 0.02) < 0.01
    assert all(record["licence"] for record in manifest)
    assert (mixed_dir / "event_mapping.json").read_text() == sources.EVENT_MAPPING.read_text()


def test_splits_share_no_sentence_no_voice_and_no_event_clip(mixed_dir):
    manifest = [json.loads(line) for line in (mixed_dir / "manifest.jsonl").read_text().splitlines()]
    by_split = {split: [r for r in manifest if r["split"] == split] for split in ("train", "test")}
    assert by_split["test"], "a 30% test fraction left the test split empty"

    def texts(records):
        return {normalize_for_cer(r["text"]) for r in records if r["text"]}

    def voices(records):
        return {r["speaker"] for r in records if r["source"].startswith("espeak-ng")}

    def event_clips(records):
        return {r["clip"] for r in records if r["language"] == "nospeech"}

    for facet in (texts, voices, event_clips):
        assert not facet(by_split["train"]) & facet(by_split["test"]), facet.__name__


def test_long_synthetic_plans_stay_disjoint_and_balanced():
    sentences = {"en": [f"sentence number {word}" for word in "abcdefghijklmnopqrstuvwxyz"], "de": ["Ein Hund."]}
    plan = list(itertools.islice(corpus.synthetic_plan(sentences, seed=0, test_fraction=0.2), 2000))
    for split in ("train", "test"):
        voices = {u.voice.split("+")[1] for u in plan if u.split == split}
        allowed = corpus.TEST_VOICES if split == "test" else corpus.TRAIN_VOICES
        assert voices == {variant for variants in allowed.values() for variant in variants}
    train = {u.text for u in plan if u.split == "train"}
    assert train and not train & {u.text for u in plan if u.split == "test"}
    assert all((u.gender == "male") == ("+m" in u.voice) for u in plan)
    low, high = corpus.PITCH["male"]
    assert all(low <= u.pitch <= high for u in plan if u.gender == "male")


def test_event_splits_keep_every_label_set_in_train():
    clips = [sources.SourceClip(Path(f"{i}.wav"), "p", "l", f"clip-{i}", events=("Dog",) if i < 9 else ("Cat",))
             for i in range(10)]  # fmt: skip
    splits = corpus.event_splits(clips, test_fraction=0.99)
    assert splits["clip-9"] == "train"
    assert sum(split == "train" for split in splits.values()) >= 2


def test_mix_reaches_the_requested_snr():
    rng = np.random.default_rng(0)
    speech, noise = rng.normal(0, 0.1, 16000), rng.normal(0, 0.3, 16000)
    mixed = corpus.mix(speech, noise, snr_db=10)
    added = mixed - speech
    assert 10 * np.log10(np.mean(speech**2) / np.mean(added**2)) == pytest.approx(10, abs=1e-6)


def test_speakable_sentences_and_pinyin_for_mandarin():
    assert corpus.speakable("Ein Hund.", "de") and not corpus.speakable("Ein Hund 2.", "de")
    assert corpus.speakable("白孔雀。", "zh") and not corpus.speakable("白孔雀 A。", "zh")
    assert not corpus.speakable("狗。", "en")
    assert corpus.espeak_input("白孔雀，黑鸟。", "zh").split() == ["bai2", "kong3", "que4", "hei1", "niao3"]
    assert corpus.espeak_input("Ein Hund.", "de") == "Ein Hund."


def test_bad_arguments_are_refused_before_any_work(tmp_path, fake_debian_cache):
    with pytest.raises(ValueError, match="unknown recipe 'speech'"):
        corpus.build_corpus("speech", tmp_path / "out")
    with pytest.raises(ValueError, match="--hours must be positive"):
        corpus.build_corpus("mixed", tmp_path / "out", hours=0)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--overwrite"):
        corpus.build_corpus("synthetic", tmp_path / "full", hours=0.001, cache_dir=fake_debian_cache)
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


@pytest.mark.slow
def test_real_mixed_recipe_on_a_fresh_cache(tmp_path):
    """Acceptance: `touchasp corpus --recipe mixed --hours 0.2` from the Debian archive into an empty cache."""
    out = tmp_path / "mixed"
    subprocess.run([sys.executable, "touchasp.py", "corpus", "--recipe", "mixed", "--hours", "0.2", "--out",
                    str(out), "--cache", str(tmp_path / "cache")], check=True, cwd=Path(__file__).parents[2])  # fmt: skip
    stats = json.loads((out / "stats.json").read_text())
    assert len(stats["languages"]) >= 15 and {"zh", "yue", "en", "cs", "nl"} <= set(stats["languages"])
    rows = load_dataset("parquet", data_dir=str(out / "train"), split="train", streaming=True)
    row = next(iter(rows))
    assert row["audio"].get_all_samples().data.numel() > 0 and set(LABELS) <= set(row)


def test_languages_keep_the_speech_to_those_asked_for(tmp_path, fake_debian_cache):
    stats = corpus.build_corpus("mixed", tmp_path / "en-fr", hours=0.01, seed=1, test_fraction=0.3, num_proc=1,
                                num_shards=1, cache_dir=fake_debian_cache, languages=["en", "fr"])  # fmt: skip
    assert set(stats["languages"]) == {"en", "fr"}
    assert stats["arguments"]["languages"] == ["en", "fr"]
    assert "nospeech" in stats["splits"]["train"]["language"]  # event-only clips are kept
    with pytest.raises(ValueError, match=r"--languages xx: no espeak sentence is in them \(only in .*en"):
        corpus.build_corpus("synthetic", tmp_path / "xx", hours=0.01, cache_dir=fake_debian_cache,
                            languages=["xx"])  # fmt: skip
    with pytest.raises(ValueError, match="--languages de: no real speech is in them"):
        corpus.build_corpus("real", tmp_path / "de", hours=0.01, cache_dir=fake_debian_cache, languages=["de"])


def test_fortunes_add_sentences_and_say_so_in_the_licence(tmp_path, fake_debian_cache):
    plain = corpus.synthetic_sentences(fake_debian_cache)
    more = corpus.synthetic_sentences(fake_debian_cache, fortunes=True)
    assert set(more["en"]) - set(plain["en"]) == {"A fox ran home.", "Then it slept!", "Be kind to your cat."}
    assert set(more["zh"]) - set(plain["zh"]) == {"要有礼貌", "请保持礼貌。", "你好吗？"}
    stats = corpus.build_corpus("synthetic", tmp_path / "out", hours=0.01, seed=0, num_proc=1, num_shards=1,
                                cache_dir=fake_debian_cache, languages=["en", "zh"], fortunes=True)  # fmt: skip
    assert stats["arguments"]["fortunes"] is True
    licence = corpus.fortunes_licence(fake_debian_cache)
    assert [source["license"] for source in stats["sources"]] == [licence]
    assert licence.endswith(", fortunes (BSD), fortunes-zh (GPL-3.0+)")  # read from each package's copyright file
