"""TaskGrammarLogitsProcessor: generation writes only well-formed section-5 prefixes."""

import pytest
import torch
from transformers import AutoModelForSpeechSeq2Seq, LogitsProcessorList

import modeling_touchasp  # noqa: F401  (registers the model with the Auto classes)
from processing.task_tokens import END_EVENTS, EOT, SLOT_TOKENS, SOT, TRANSCRIBE


@pytest.fixture(scope="module")
def tokenizer(tiny_processor):
    return tiny_processor.tokenizer


@pytest.fixture(scope="module")
def grammar(tiny_processor):
    return tiny_processor.task_grammar()


def ids(tokenizer, *tokens: str) -> list[int]:
    return tokenizer.convert_tokens_to_ids(list(tokens))


def allowed(grammar, tokenizer, rows: list[list[int]], width: int | None = None) -> list[set[int]]:
    """The ids left unmasked for each row (rows of equal length) under uniform scores."""
    scores = torch.zeros(len(rows), width or len(tokenizer))
    masked = grammar(torch.tensor(rows), scores)
    return [set(torch.nonzero(row > float("-inf")).flatten().tolist()) for row in masked]


def test_each_single_label_slot_allows_exactly_its_tokens(grammar, tokenizer):
    sot, en, sad = ids(tokenizer, SOT, "<|en|>", "<|SAD|>")
    assert allowed(grammar, tokenizer, [[sot]]) == [set(ids(tokenizer, *SLOT_TOKENS["language"]))]
    assert allowed(grammar, tokenizer, [[sot, en]]) == [set(ids(tokenizer, *SLOT_TOKENS["emotion"]))]
    assert allowed(grammar, tokenizer, [[sot, en, sad]]) == [set(ids(tokenizer, *SLOT_TOKENS["gender"]))]


def test_no_speech_leaves_emotion_and_gender_unknown_as_its_training_rows_do(grammar, tokenizer):
    sot, en, nospeech, unknown_emotion, sad = ids(tokenizer, SOT, "<|en|>", "<|nospeech|>", "<|EMO_UNKNOWN|>", "<|SAD|>")
    assert allowed(grammar, tokenizer, [[sot, nospeech], [sot, en]]) == [
        {unknown_emotion}, set(ids(tokenizer, *SLOT_TOKENS["emotion"])),
    ]  # fmt: skip
    assert allowed(grammar, tokenizer, [[sot, nospeech, unknown_emotion], [sot, en, sad]]) == [
        set(ids(tokenizer, "<|gender_unknown|>")), set(ids(tokenizer, *SLOT_TOKENS["gender"])),
    ]  # fmt: skip


def test_events_follow_canonical_order_and_the_rest_of_the_prefix_is_fixed(grammar, tokenizer):
    prefix = ids(tokenizer, SOT, "<|en|>", "<|SAD|>", "<|male|>")
    events = ids(tokenizer, *SLOT_TOKENS["events"])
    end_events, transcribe, eot = ids(tokenizer, END_EVENTS, TRANSCRIBE, EOT)
    music = ids(tokenizer, "<|Music|>")[0]
    word = tokenizer.encode("hello", add_special_tokens=False)[0]
    special = set(ids(tokenizer, *tokenizer.all_special_tokens))
    # Rows in different states in one call: the mask is computed per row.
    rows = [
        prefix + [music, events[-1]],  # the last canonical event: only <|/events|> is left
        prefix + [music, end_events],
        prefix + [end_events, transcribe],
        prefix + [transcribe, word],  # a forced early <|transcribe|> still leads to a transcript
    ]
    last_event, after_events, transcript_start, transcript = allowed(grammar, tokenizer, rows)
    assert last_event == {end_events}
    assert after_events == {transcribe}
    assert transcript_start == transcript == (set(range(len(tokenizer))) - special) | {eot}
    after_music = allowed(grammar, tokenizer, [prefix + [music]])[0]
    assert after_music == set(events[events.index(music) + 1 :]) | {end_events}
    assert allowed(grammar, tokenizer, [prefix])[0] == set(events) | {end_events}


def test_a_model_vocabulary_wider_than_the_tokenizer_keeps_the_extra_ids_masked(grammar, tokenizer):
    sot = ids(tokenizer, SOT)[0]
    [row] = allowed(grammar, tokenizer, [[sot]], width=len(tokenizer) + 7)
    assert row == set(ids(tokenizer, *SLOT_TOKENS["language"]))
    with pytest.raises(ValueError, match="tokenizer has"):
        grammar(torch.tensor([[sot]]), torch.zeros(1, len(tokenizer) - 1))


def test_an_untrained_model_generates_well_formed_prefixes_and_keeps_a_forced_language(
    tiny_model_dir, tiny_processor, speech
):
    """A random model puts arbitrary tokens everywhere; constrained, every row parses slot by slot."""
    torch.manual_seed(0)
    model = AutoModelForSpeechSeq2Seq.from_pretrained(tiny_model_dir).eval()
    tokenizer = tiny_processor.tokenizer
    features = tiny_processor(audio=[speech, speech[: len(speech) // 2]], sampling_rate=16000, return_tensors="pt")
    slot_sets = [set(ids(tokenizer, *SLOT_TOKENS[slot])) for slot in ("language", "emotion", "gender")]
    events = ids(tokenizer, *SLOT_TOKENS["events"])
    end_events, transcribe, eot = ids(tokenizer, END_EVENTS, TRANSCRIBE, EOT)
    special = set(ids(tokenizer, *tokenizer.all_special_tokens)) - {eot}
    for prompt in (None, tiny_processor.decoder_prompt("fr")):
        decoder_input_ids = None if prompt is None else torch.tensor([prompt, prompt])
        sequences = model.generate(
            **features, decoder_input_ids=decoder_input_ids, max_new_tokens=20, do_sample=True, top_k=0,
            logits_processor=LogitsProcessorList([tiny_processor.task_grammar()]),
        )  # fmt: skip
        for row in sequences.tolist():
            assert all(row[position] in slot_sets[position - 1] for position in (1, 2, 3) if position < len(row))
            if prompt is not None:
                assert row[1] == ids(tokenizer, "<|fr|>")[0]
            position, ranks = 4, []
            while position < len(row) and row[position] in events:
                ranks.append(events.index(row[position]))
                position += 1
            assert ranks == sorted(set(ranks))
            assert row[position : position + 2] in ([end_events, transcribe], [end_events], [])
            transcript = [token for token in row[position + 2 :] if token != tokenizer.pad_token_id]
            assert not special & set(transcript)
