"""Readers of the Debian packages, on look-alike package trees (`fake_debian_cache`); no network."""

import shutil

import pytest

from processing.task_tokens import EVENTS
from training import sources


def test_every_mapping_rule_names_vocabulary_classes():
    for rule in sources._event_rules():
        assert set(rule["events"]) <= set(EVENTS), rule


def test_event_labels_match_titles_case_insensitively_and_first_rule_wins():
    assert sources.event_labels("openttd-opensfx", "applause") == ("Applause", "Crowd")
    assert sources.event_labels("openttd-opensfx", "Truck/old bus start, pull away") == ("Truck",)
    assert sources.event_labels("openttd-opensfx", "Unused/Nothing") is None


def test_asterisk_prompts_have_transcript_gender_and_licence_and_skip_tones(fake_debian_cache):
    clips = {clip.clip_id: clip for clip in sources.asterisk_prompts("it", fake_debian_cache)}
    assert set(clips) == {"asterisk-it/activated", "asterisk-it/goodbye"}
    clip = clips["asterisk-it/goodbye"]
    assert (clip.text, clip.language, clip.gender, clip.licence) == ("Goodbye.", "it", "male", "CC-BY-SA-3.0")
    assert clip.path.exists()
    assert next(sources.asterisk_prompts("en", fake_debian_cache)).gender == "female"


def test_fillets_lines_take_the_translation_and_the_gender_of_the_speakers_font(fake_debian_cache):
    clips = list(sources.fillets_lines("cs", fake_debian_cache))
    assert [(clip.text, clip.gender) for clip in clips] == [("Ahoj tam.", "female"), ("Jaka lod.", "male")]
    assert [clip.text for clip in sources.fillets_lines("en", fake_debian_cache)] == ["Hello there."]


def test_tuxpaint_descriptions_pair_each_spoken_language_with_its_line(fake_debian_cache):
    clips = {clip.language: clip.text for clip in sources.tuxpaint_descriptions(fake_debian_cache)}
    assert clips == {"en": "A frog.", "fr": "Une grenouille."}


def test_opensfx_catalogue_unpacks_titled_wavs_with_their_own_licence(fake_debian_cache):
    found = list(sources.opensfx_clips(fake_debian_cache))
    clips = [item for item in found if isinstance(item, sources.SourceClip)]
    assert [clip.events for clip in clips] == [("Applause", "Crowd"), ("Sheep",)]
    assert clips[0].licence == "Creative Commons Zero 1.0"
    assert clips[0].path.read_bytes()[:4] == b"RIFF"
    assert ("openttd-opensfx", "Unused/Nothing") in found


def test_event_clips_cover_every_event_package_and_report_unmapped_files(fake_debian_cache):
    found = list(sources.event_clips(fake_debian_cache))
    packages = {item.package for item in found if isinstance(item, sources.SourceClip)}
    assert packages == {"openttd-opensfx", "tuxpaint-stamps-default", "tuxpaint-data", "sonic-pi-samples",
                        "sound-theme-freedesktop", "asterisk-moh-opsound-wav", "fillets-ng-data"}  # fmt: skip
    assert ("tuxpaint-stamps-default", "a_filled") in found


def test_text_lines_read_every_locale_of_stamps_and_dialogue(fake_debian_cache):
    lines = set(sources.text_lines(fake_debian_cache))
    assert {("zh_CN", "青蛙。"), ("de", "Ein Hund."), ("cs", "Ahoj tam."), ("en", "Hello there.")} <= lines


def test_fortune_lines_are_sentences_without_escapes_authors_or_classical_poems(fake_debian_cache):
    assert list(sources.fortune_lines(fake_debian_cache)) == [
        ("en", "A fox ran home."), ("en", "Then it slept!"), ("en", "Be kind to your cat."),
        ("zh_CN", "要有礼貌"), ("zh_CN", "请保持礼貌。"), ("zh_CN", "你好吗？"),
    ]  # fmt: skip


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")
def test_fetching_an_unknown_package_names_it(tmp_path):
    with pytest.raises(sources.SourceUnavailable, match="no-such-touchasp-package"):
        sources.fetch_package("no-such-touchasp-package", tmp_path)
    assert not (tmp_path / "no-such-touchasp-package").exists()
