"""TouchASPProcessor: decoder targets with masked missing labels, and generated ids + scores -> perception."""

import pytest
import torch

from processing.processing_touchasp import IGNORE_INDEX, TouchASPProcessor
from processing.task_tokens import SLOT_TOKENS

TEXT = "hello world 今天天气很好"


@pytest.fixture(scope="module")
def processor(tiny_processor) -> TouchASPProcessor:
    return tiny_processor


def ids(processor, *tokens: str) -> list[int]:
    return processor.tokenizer.convert_tokens_to_ids(list(tokens))


def test_full_row_is_laid_out_token_by_token(processor, speech):
    row = processor(
        audio=speech, sampling_rate=16000, text=TEXT, language="zh", emotion="HAPPY", gender="female",
        events=["Laughter", "Speech"],
    )
    transcript = processor.tokenizer.encode(TEXT, add_special_tokens=False)
    expected = ids(processor, "<|zh|>", "<|HAPPY|>", "<|female|>", "<|Speech|>", "<|Laughter|>", "<|/events|>",
                   "<|transcribe|>") + transcript + [processor.tokenizer.eos_token_id]  # fmt: skip
    assert row["labels"].tolist() == [expected]
    assert row["decoder_input_ids"].tolist() == [ids(processor, "<|sot|>") + expected[:-1]]
    assert row["input_features"].shape[0] == row["attention_mask"].shape[0] == 1
    assert row["input_features"].shape[2] == 80


def test_missing_emotion_is_fed_as_unknown_and_masked_exactly_at_its_slot(processor):
    full = processor(text=TEXT, language="en", emotion="SAD", gender="male", events=[])
    missing = processor(text=TEXT, language="en", gender="male", events=[])
    emotion_position = 1  # labels: LANG, EMOTION, GENDER, ...
    labels, full_labels = missing["labels"][0], full["labels"][0]
    assert labels[emotion_position] == IGNORE_INDEX
    assert torch.equal(torch.cat([labels[:1], labels[2:]]), torch.cat([full_labels[:1], full_labels[2:]]))
    assert (labels != IGNORE_INDEX).sum() == len(labels) - 1
    # The decoder reads the emotion slot one step later (after <|sot|>).
    assert missing["decoder_input_ids"][0, emotion_position + 1] == ids(processor, "<|EMO_UNKNOWN|>")[0]


@pytest.mark.parametrize(
    ("field", "position", "unknown"),
    [("language", 0, "<|lang_unknown|>"), ("gender", 2, "<|gender_unknown|>")],
)
def test_missing_language_or_gender_is_fed_as_its_unknown_token(processor, field, position, unknown):
    row = processor(text=TEXT, **{"language": "en", "emotion": "SAD", "gender": "male", field: None})
    assert row["labels"][0, position] == IGNORE_INDEX
    assert row["decoder_input_ids"][0, position + 1] == ids(processor, unknown)[0]


def test_an_explicit_unknown_label_is_masked_like_a_missing_one(processor):
    explicit = processor(text=TEXT, language="lang_unknown", emotion="EMO_UNKNOWN", gender="gender_unknown")
    missing = processor(text=TEXT)
    assert torch.equal(explicit["labels"], missing["labels"])
    assert torch.equal(explicit["decoder_input_ids"], missing["decoder_input_ids"])


def test_missing_events_feed_end_of_events_at_once_with_its_loss_masked(processor):
    missing = processor(text=TEXT, language="en", events=None)
    empty = processor(text=TEXT, language="en", events=[])
    end_events = ids(processor, "<|/events|>")[0]
    assert missing["labels"][0, 3] == IGNORE_INDEX
    assert missing["decoder_input_ids"][0, 4] == end_events
    assert empty["labels"][0, 3] == end_events  # an empty list is a real label: no events
    assert torch.equal(missing["decoder_input_ids"], empty["decoder_input_ids"])


def test_missing_text_ends_the_row_at_transcribe_and_empty_text_is_taught(processor):
    transcribe, eot = ids(processor, "<|transcribe|>", "<|eot|>")
    missing = processor(language="en", events=["Music"], text=None)["labels"][0].tolist()
    empty = processor(language="en", events=["Music"], text="")["labels"][0].tolist()
    assert missing[-1] == transcribe and eot not in missing
    assert empty[-2:] == [transcribe, eot]


def test_batch_rows_equal_single_rows_padded_with_ignore_index_and_pad(processor, speech):
    batch = processor(
        audio=[speech, speech[:8000]], sampling_rate=16000, text=["hello", TEXT], language=["en", None],
        events=[["Speech"], None], gender="female",
    )
    first = processor(text="hello", language="en", events=["Speech"], gender="female")
    second = processor(text=TEXT, events=None, gender="female")
    assert batch["labels"].shape == batch["decoder_input_ids"].shape == (2, second["labels"].shape[1])
    width = first["labels"].shape[1]
    assert torch.equal(batch["labels"][0, :width], first["labels"][0])
    assert torch.equal(batch["decoder_input_ids"][0, :width], first["decoder_input_ids"][0])
    assert (batch["labels"][0, width:] == IGNORE_INDEX).all()
    assert (batch["decoder_input_ids"][0, width:] == processor.tokenizer.pad_token_id).all()
    assert torch.equal(batch["labels"][1], second["labels"][0])
    assert batch["input_features"].shape[0] == 2
    assert batch["attention_mask"][1].sum() < batch["attention_mask"][0].sum()


def test_labels_without_audio_form_a_batch_from_lists(processor):
    batch = processor(text=["hello", "world"], language="en")
    assert batch["labels"].shape[0] == 2 and "input_features" not in batch


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ({"text": ["a", "b"], "language": ["en"]}, "language must hold one entry per row"),
        ({"text": ["a", "b"], "events": ["Speech", "Music"]}, "events of a batch"),
        ({"text": "a", "events": "Speech"}, "events='Speech' is a string"),
        ({"text": "a", "emotion": "JOLLY"}, "unknown emotion label 'JOLLY'"),
        ({"text": "a", "events": ["Birdsong"]}, "unknown event label 'Birdsong'"),
    ],
)
def test_bad_targets_name_the_field(processor, targets, message):
    with pytest.raises(ValueError, match=message):
        processor(**targets)


def test_decoder_prompt_forces_sot_and_language(processor):
    assert processor.decoder_prompt() == ids(processor, "<|sot|>")
    assert processor.decoder_prompt("yue") == ids(processor, "<|sot|>", "<|yue|>")
    with pytest.raises(ValueError, match="unknown language label 'xx'"):
        processor.decoder_prompt("xx")


def test_batch_decode_and_decode_are_the_tokenizer_s(processor):
    row = processor.tokenizer.encode(TEXT, add_special_tokens=False)
    assert processor.decode(row) == processor.tokenizer.decode(row) == TEXT
    assert processor.batch_decode([row, row]) == [TEXT, TEXT]


# --- decode_perception on hand-built generate output -----------------------------------------------------------


def generated(processor, tokens: list[str], text: str = "") -> list[int]:
    """Ids of `<|sot|>` + tokens + the transcript of `text` + `<|eot|>`."""
    transcript = processor.tokenizer.encode(text, add_special_tokens=False) if text else []
    return ids(processor, "<|sot|>", *tokens) + transcript + [processor.tokenizer.eos_token_id]


def step_scores(processor, steps: int, bumps: dict[int, dict[str, float]], rows: int = 1) -> list[torch.Tensor]:
    """`steps` (rows, vocab) score tensors, zero except `bumps[step][token] = value`; a loud non-slot token
    (a transcript piece) at every step checks that slot probabilities ignore tokens outside the slot."""
    loud = processor.tokenizer.encode("hello", add_special_tokens=False)[0]
    scores = []
    for step in range(steps):
        logits = torch.zeros(rows, len(processor.tokenizer))
        logits[:, loud] = 20.0
        for token, value in bumps.get(step, {}).items():
            logits[:, ids(processor, token)[0]] = value
        scores.append(logits)
    return scores


def restricted(scores: torch.Tensor, token_ids: list[int], token_id: int) -> float:
    return torch.softmax(scores[0, token_ids], dim=-1)[token_ids.index(token_id)].item()


def test_perception_takes_slot_restricted_probabilities_at_each_slot_step(processor):
    tokens = ["<|en|>", "<|ANGRY|>", "<|male|>", "<|Speech|>", "<|Music|>", "<|/events|>", "<|transcribe|>"]
    sequence = generated(processor, tokens, "hello world")
    bumps = {
        0: {"<|en|>": 3.0, "<|zh|>": 1.0},
        1: {"<|ANGRY|>": 2.0},
        2: {"<|male|>": 1.0, "<|female|>": 0.5},
        3: {"<|Speech|>": 5.0, "<|/events|>": 1.0},
        4: {"<|Music|>": 2.0, "<|Speech|>": 2.5, "<|/events|>": 1.0},  # Music below 0.5 among events
    }
    scores = step_scores(processor, len(sequence) - 1, bumps)
    [result] = processor.decode_perception(torch.tensor([sequence]), scores)

    assert result["text"] == "hello world"
    perception = result["perception"]
    language_ids = ids(processor, *SLOT_TOKENS["language"])
    assert perception["language"]["label"] == "en"
    assert perception["language"]["score"] == pytest.approx(restricted(scores[0], language_ids, language_ids[1]))
    assert perception["emotion"]["label"] == "ANGRY" and perception["gender"]["label"] == "male"
    for slot in ("language", "emotion", "gender"):
        assert sum(perception[slot]["scores"].values()) == pytest.approx(1.0)
        assert len(perception[slot]["scores"]) == len(SLOT_TOKENS[slot])
    event_ids = ids(processor, *SLOT_TOKENS["events"], "<|/events|>")
    speech_score = restricted(scores[3], event_ids, ids(processor, "<|Speech|>")[0])
    assert perception["events"] == [{"label": "Speech", "score": pytest.approx(speech_score)}]

    [lenient] = processor.decode_perception(torch.tensor([sequence]), scores, event_threshold={"Music": 0.01})
    assert [event["label"] for event in lenient["perception"]["events"]] == ["Speech", "Music"]


def test_a_slot_that_holds_another_token_reports_the_slot_s_best_label(processor):
    sequence = generated(processor, ["<|transcribe|>"], "hello")
    scores = step_scores(processor, len(sequence) - 1, {0: {"<|yue|>": 4.0}})
    [result] = processor.decode_perception(torch.tensor([sequence]), scores)
    assert result["perception"]["language"]["label"] == "yue"


def test_generation_stopped_after_the_language_leaves_the_other_slots_empty(processor):
    lid_only = torch.tensor([ids(processor, "<|sot|>", "<|zh|>")])
    [result] = processor.decode_perception(lid_only, step_scores(processor, 1, {0: {"<|zh|>": 2.0}}))
    assert result["perception"]["language"]["label"] == "zh"
    assert result["perception"]["emotion"] is result["perception"]["gender"] is result["perception"]["events"] is None


def test_rows_of_a_batch_stop_at_their_own_end_of_text(processor):
    long = generated(processor, ["<|en|>", "<|SAD|>", "<|female|>", "<|/events|>", "<|transcribe|>"], "hello world")
    short = ids(processor, "<|sot|>", "<|nospeech|>", "<|eot|>")
    short += [processor.tokenizer.pad_token_id] * (len(long) - len(short))
    results = processor.decode_perception(torch.tensor([long, short]), step_scores(processor, len(long) - 1, {}, 2))
    assert results[0]["perception"]["events"] == []
    assert results[1]["perception"]["language"]["label"] == "nospeech"
    assert results[1]["perception"]["emotion"] is None and results[1]["text"] == ""


def test_a_forced_language_is_reported_with_score_one(processor):
    sequence = generated(processor, ["<|en|>", "<|SAD|>", "<|male|>", "<|/events|>", "<|transcribe|>"])
    scores = step_scores(processor, len(sequence) - 2, {0: {"<|SAD|>": 3.0}})  # no step for <|sot|><|en|>
    [result] = processor.decode_perception(torch.tensor([sequence]), scores)
    assert result["perception"]["language"] == {"label": "en", "score": 1.0, "scores": {"en": 1.0}, "forced": True}
    emotion_ids = ids(processor, *SLOT_TOKENS["emotion"])
    assert result["perception"]["emotion"]["score"] == pytest.approx(
        restricted(scores[0], emotion_ids, ids(processor, "<|SAD|>")[0])
    )


def test_beam_search_scores_are_read_from_the_beam_of_each_token(processor):
    sequence = generated(processor, ["<|fr|>", "<|SAD|>", "<|male|>", "<|/events|>"])
    steps = len(sequence) - 1
    scores = step_scores(processor, steps, {}, rows=2)  # two beams
    scores[0][1, ids(processor, "<|fr|>")[0]] = 6.0  # only beam 1 is sure of French
    beam_indices = torch.tensor([[1] + [0] * (steps - 1)])
    with pytest.raises(ValueError, match="beam_indices"):
        processor.decode_perception(torch.tensor([sequence]), scores)
    [result] = processor.decode_perception(torch.tensor([sequence]), scores, beam_indices=beam_indices)
    assert result["perception"]["language"]["score"] > 0.9
