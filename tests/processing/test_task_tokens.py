"""The task-token vocabulary: what the decoder can say, in which order."""

import pytest

from processing import task_tokens
from processing.task_tokens import (
    ALL_SPECIAL_TOKENS,
    EMOTIONS,
    EVENTS,
    GENDERS,
    LANGUAGES,
    SLOT_TOKENS,
    UNKNOWN_EMOTION,
    UNKNOWN_GENDER,
    UNKNOWN_LANGUAGE,
    emotion_token,
    event_token,
    gender_token,
    label_from_token,
    language_token,
    sort_events,
)


def test_slots_hold_the_labels_of_the_design():
    assert len(EVENTS) >= 70
    assert EMOTIONS == ("HAPPY", "SAD", "ANGRY", "NEUTRAL", "FEARFUL", "DISGUSTED", "SURPRISED", "EMO_UNKNOWN")
    assert GENDERS == ("male", "female", "gender_unknown")
    for code in ("zh", "en", "yue", "zh-sichuan", "nan", "ja", "ko", "de", "fr", "ru", "nospeech", "lang_unknown"):
        assert code in LANGUAGES
    for name in ("Speech", "Music", "Applause", "Laughter", "Cough", "Sneeze", "Crying, sobbing", "Dog", "Siren"):
        assert name in EVENTS
    for labels in (LANGUAGES, EMOTIONS, GENDERS, EVENTS):
        assert len(set(labels)) == len(labels)


def test_ids_start_with_pad_unk_sot_eot_then_every_slot():
    assert ALL_SPECIAL_TOKENS[:6] == ("<pad>", "<unk>", "<|sot|>", "<|eot|>", "<|transcribe|>", "<|/events|>")
    slots_in_target_order = ("language", "emotion", "gender", "events")
    assert ALL_SPECIAL_TOKENS[6:] == sum((SLOT_TOKENS[slot] for slot in slots_in_target_order), ())
    assert len(set(ALL_SPECIAL_TOKENS)) == len(ALL_SPECIAL_TOKENS)


def test_tokens_spell_the_label_verbatim():
    assert language_token("zh-sichuan") == "<|zh-sichuan|>"
    assert emotion_token("HAPPY") == "<|HAPPY|>"
    assert gender_token("female") == "<|female|>"
    assert event_token("Crying, sobbing") == "<|Crying, sobbing|>"
    assert [label_from_token(token) for token in SLOT_TOKENS["events"]] == list(EVENTS)
    assert UNKNOWN_LANGUAGE in SLOT_TOKENS["language"]
    assert UNKNOWN_EMOTION in SLOT_TOKENS["emotion"]
    assert UNKNOWN_GENDER in SLOT_TOKENS["gender"]


def test_missing_label_becomes_the_unknown_token_of_its_slot():
    assert language_token(None) == UNKNOWN_LANGUAGE == "<|lang_unknown|>"
    assert emotion_token(None) == UNKNOWN_EMOTION == "<|EMO_UNKNOWN|>"
    assert gender_token(None) == UNKNOWN_GENDER == "<|gender_unknown|>"


@pytest.mark.parametrize(
    "make_token, label, valid_example",
    [
        (language_token, "klingon", "zh-sichuan"),
        (emotion_token, "happy", "HAPPY"),
        (gender_token, "other", "female"),
        (event_token, "Dog barking", "Roaring cats (lions, tigers)"),
        (event_token, None, "Speech"),
    ],
)
def test_unknown_label_raises_naming_the_valid_values(make_token, label, valid_example):
    with pytest.raises(ValueError, match=repr(label)) as error:
        make_token(label)
    assert valid_example in str(error.value)


def test_sort_events_gives_canonical_order():
    assert sort_events(["Siren", "Music", "Speech", "Laughter", "Music"]) == ["Speech", "Laughter", "Music", "Siren"]
    assert sort_events([]) == []
    with pytest.raises(ValueError, match="'Dog barking'"):
        sort_events(["Speech", "Dog barking"])


def test_label_from_token_rejects_plain_text():
    with pytest.raises(ValueError, match="'Speech'"):
        label_from_token("Speech")


def test_no_label_can_break_the_token_spelling():
    for label in (*LANGUAGES, *EMOTIONS, *GENDERS, *EVENTS):
        assert "|" not in label and label == label.strip() and label
    assert task_tokens.TRANSCRIBE in ALL_SPECIAL_TOKENS and task_tokens.END_EVENTS in ALL_SPECIAL_TOKENS
