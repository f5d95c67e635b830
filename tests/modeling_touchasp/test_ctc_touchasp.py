"""CTC transcripts: the decoder's task tokens up to `<|transcribe|>`, then the CTC head's greedy transcript."""

import numpy as np
import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from modeling_touchasp import TouchASPConfig, TouchASPForConditionalGeneration
from modeling_touchasp.ctc_touchasp import ctc_greedy_frames, ctc_prefix_beam_search
from modeling_touchasp.ngram_touchasp import TokenNgramLM
from tests.conftest import tiny_config_kwargs

MAX_NEW_TOKENS = 12


class SteerRows(LogitsProcessor):
    """Row 0 says `<|eot|>` at once (a clip with no transcript); row 1 reaches `<|transcribe|>` after two tokens."""

    def __init__(self, eos_token_id: int, transcribe_token_id: int):
        self.eos, self.transcribe = eos_token_id, transcribe_token_id

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores.clone()
        scores[0, self.eos] += 1000.0
        if input_ids.shape[1] == 3:
            scores[1, self.transcribe] += 1000.0
        return scores


def test_greedy_path_merges_repeats_and_drops_blanks_and_padding():
    path = torch.tensor([[5, 5, 0, 5, 7, 7, 9, 9], [6, 0, 6, 6, 8, 0, 0, 0]])
    log_probs = torch.nn.functional.one_hot(path, 10).float().log()
    mask = torch.tensor([[1] * 6 + [0] * 2, [1] * 8])
    best, frames = ctc_greedy_frames(log_probs, mask, blank_id=0)
    assert torch.equal(best, path)
    assert [f.tolist() for f in frames] == [[0, 3, 4], [0, 2, 4]]


def reference_ctc(model, features, mask, k) -> list[list[int]]:
    """Greedy CTC written out plainly, per frame, to check the vectorised one against."""
    encoded = model.get_encoder()(features, mask, num_experts_per_tok=k)
    best = model.ctc_head(encoded.last_hidden_state).argmax(-1)
    rows = []
    for row, frame_mask in zip(best.tolist(), encoded.attention_mask.tolist()):
        tokens, previous = [], None
        for token, valid in zip(row, frame_mask):
            if valid and token != previous and token != model.config.pad_token_id:
                tokens.append(token)
            previous = token if valid else previous
        rows.append(tokens)
    return rows


@pytest.fixture
def model_and_inputs(tiny_config):
    torch.manual_seed(0)
    model = TouchASPForConditionalGeneration(tiny_config).eval()
    features = torch.randn(2, 120, 80)
    mask = torch.ones(2, 120, dtype=torch.long)
    mask[1, 90:] = 0
    return model, features, mask


def test_ctc_transcript_follows_the_decoders_task_tokens(model_and_inputs):
    model, features, mask = model_and_inputs
    config = model.config
    steer = LogitsProcessorList([SteerRows(config.eos_token_id, config.transcribe_token_id)])
    call = dict(
        attention_mask=mask, num_experts_per_tok=2, max_new_tokens=MAX_NEW_TOKENS, logits_processor=steer,
        return_dict_in_generate=True, output_scores=True,
    )
    with torch.no_grad():
        attention = model.generate(features, transcript_decoding="attention", **call)
        ctc = model.generate(features, transcript_decoding="ctc", **call)
        expected = reference_ctc(model, features, mask, k=2)
    # Row 0 stopped at <|eot|> with no transcript: left as the decoder wrote it.
    assert ctc.sequences[0, :2].tolist() == attention.sequences[0, :2].tolist() == [2, config.eos_token_id]
    assert set(ctc.sequences[0, 2:].tolist()) <= {config.pad_token_id}
    # Row 1: the same task tokens, then the CTC transcript and <|eot|>.
    row = ctc.sequences[1].tolist()
    assert row[:4] == attention.sequences[1, :4].tolist() and row[3] == config.transcribe_token_id
    assert row[4 : 5 + len(expected[1])] == expected[1] + [config.eos_token_id]
    assert len(expected[1]) > 0  # a random head emits tokens on random features
    # One score per generated position; the transcript's are the emitting frames' CTC log-probabilities.
    assert len(ctc.scores) == ctc.sequences.shape[1] - 1
    assert torch.equal(torch.stack(ctc.scores[:3])[:, 1], torch.stack(attention.scores[:3])[:, 1])
    transcript_scores = torch.stack(ctc.scores[3 : 3 + len(expected[1])])[:, 1]
    assert transcript_scores.argmax(-1).tolist() == expected[1]
    assert torch.allclose(transcript_scores.exp().sum(-1), torch.ones(len(expected[1])))
    plain = model.generate(features, transcript_decoding="ctc", **{**call, "return_dict_in_generate": False})
    assert torch.equal(plain, ctc.sequences)


def test_the_configs_choice_is_the_default_and_survives_saving(model_and_inputs, tmp_path):
    model, features, mask = model_and_inputs
    with torch.no_grad():
        explicit = model.generate(features, attention_mask=mask, max_new_tokens=MAX_NEW_TOKENS,
                                  transcript_decoding="ctc")
        model.config.transcript_decoding = "ctc"
        model.save_pretrained(tmp_path)
        reloaded = TouchASPForConditionalGeneration.from_pretrained(tmp_path).eval()
        assert reloaded.config.transcript_decoding == "ctc"
        assert torch.equal(reloaded.generate(features, attention_mask=mask, max_new_tokens=MAX_NEW_TOKENS), explicit)


def test_unknown_decoding_and_beam_search_with_ctc_are_refused(model_and_inputs):
    model, features, mask = model_and_inputs
    with pytest.raises(ValueError, match="transcript_decoding='beam'"):
        TouchASPConfig(**tiny_config_kwargs(transcript_decoding="beam"))
    with pytest.raises(ValueError, match="transcript_decoding='greedy'"):
        model.generate(features, attention_mask=mask, transcript_decoding="greedy")
    with pytest.raises(ValueError, match="num_return_sequences"):
        model.generate(features, attention_mask=mask, num_beams=2, num_return_sequences=2, transcript_decoding="ctc")


def test_prefix_beam_search_adds_up_the_paths_that_greedy_ctc_splits():
    # Two frames of P(blank) 0.6, P(a) 0.4: greedy reads blank, blank (""), but "a" has 0.4*0.4 + 2*0.4*0.6 = 0.64.
    log_probs = np.log(np.array([[0.6, 0.4], [0.6, 0.4]]))
    best, frames = ctc_greedy_frames(torch.from_numpy(log_probs)[None], None, blank_id=0)
    assert frames[0].tolist() == []
    assert ctc_prefix_beam_search(log_probs, blank_id=0, beam_size=4) == ([1], [0])
    # "a a" needs a blank between the two: one frame of a, blank, a.
    spelled = np.log(np.array([[0.05, 0.9, 0.05], [0.9, 0.05, 0.05], [0.05, 0.9, 0.05]]))
    assert ctc_prefix_beam_search(spelled, blank_id=0, beam_size=4) == ([1, 1], [0, 2])


def test_the_language_model_decides_what_the_audio_cannot():
    # Token 3 for sure, then 1 or 2 almost equally (1 a little likelier): the LM has only seen 3 followed by 2.
    probs = np.full((3, 6), 1e-4)
    probs[0, 3], probs[1, 0], probs[2, 1], probs[2, 2] = 1.0, 1.0, 0.5, 0.45
    log_probs = np.log(probs / probs.sum(-1, keepdims=True))
    lm = TokenNgramLM.from_sequences([[3, 2], [3, 2, 5]], vocab_size=6, min_trigram_count=1)
    assert ctc_prefix_beam_search(log_probs, 0, 4)[0] == [3, 1]
    assert ctc_prefix_beam_search(log_probs, 0, 4, lm, lm_weight=0.0)[0] == [3, 1]
    assert ctc_prefix_beam_search(log_probs, 0, 4, lm, lm_weight=0.5)[0] == [3, 2]


def test_num_beams_runs_the_ctc_beam_search_with_the_saved_language_model(model_and_inputs, tmp_path):
    model, features, mask = model_and_inputs
    config = model.config
    steer = LogitsProcessorList([SteerRows(config.eos_token_id, config.transcribe_token_id)])
    call = dict(attention_mask=mask, num_experts_per_tok=2, max_new_tokens=MAX_NEW_TOKENS, logits_processor=steer,
                transcript_decoding="ctc", return_dict_in_generate=True, output_scores=True)
    with torch.no_grad():
        encoded = model.get_encoder()(features, mask, num_experts_per_tok=2)
        log_probs = model.ctc_head(encoded.last_hidden_state).float().log_softmax(-1)
        log_probs = log_probs[1, encoded.attention_mask[1].bool()]
        # The LM has seen only the greedy transcript's tokens in reverse: beam search follows it only with the LM.
        greedy = reference_ctc(model, features, mask, k=2)[1]
        lm = TokenNgramLM.from_sequences([greedy[::-1]] * 3, config.vocab_size, min_trigram_count=1)
        model.ngram_lm = lm
        model.save_pretrained(tmp_path)
        reloaded = TouchASPForConditionalGeneration.from_pretrained(tmp_path).eval()
        searched = reloaded.generate(features, num_beams=4, **call)
        model.ngram_lm = None
        plain = model.generate(features, num_beams=4, **call)
    assert (reloaded.ngram_lm.num_bigrams, reloaded.ngram_lm.num_trigrams) == (lm.num_bigrams, lm.num_trigrams)
    for output, lm in ((searched, reloaded.ngram_lm), (plain, None)):
        tokens, frames = ctc_prefix_beam_search(
            log_probs.numpy(), config.pad_token_id, 4, lm, config.ctc_lm_weight, config.ctc_length_bonus
        )
        row = output.sequences[1].tolist()
        assert row[:4] == [2, *row[1:3], config.transcribe_token_id]
        assert row[4 : 5 + len(tokens)] == tokens + [config.eos_token_id]
        scores = torch.stack(output.scores[3 : 3 + len(tokens)])[:, 1]
        assert torch.allclose(scores, log_probs[frames])
        assert output.sequences[0, :2].tolist() == [2, config.eos_token_id]  # no transcript: no search
    assert searched.sequences[1].tolist() != plain.sequences[1].tolist()


def test_a_prompt_that_holds_transcribe_and_words_keeps_them_before_the_ctc_transcript(model_and_inputs):
    model, features, mask = model_and_inputs
    config = model.config
    prompt = torch.tensor([[config.decoder_start_token_id, 40, config.transcribe_token_id, 77]] * 2)
    with torch.no_grad():
        output = model.generate(features, attention_mask=mask, decoder_input_ids=prompt, transcript_decoding="ctc",
                                max_new_tokens=MAX_NEW_TOKENS, return_dict_in_generate=True, output_scores=True)
        expected = reference_ctc(model, features, mask, k=None)
    for row in range(2):
        ids = output.sequences[row].tolist()
        assert ids[: 5 + len(expected[row])] == prompt[row].tolist() + expected[row] + [config.eos_token_id]
    assert len(output.scores) == output.sequences.shape[1] - prompt.shape[1]


def test_an_unconfident_transcript_of_a_nospeech_clip_is_emptied_and_a_confident_one_kept(model_and_inputs):
    """Whisper's two conditions: the decoder says `<|nospeech|>` AND the transcript's mean log-probability is low."""
    model, features, mask = model_and_inputs
    config = model.config
    start, transcribe = config.decoder_start_token_id, config.transcribe_token_id

    def transcripts(language: int, **call) -> list[list[int]]:
        prompt = torch.tensor([[start, language, transcribe]] * 2)
        with torch.no_grad():
            output = model.generate(features, attention_mask=mask, decoder_input_ids=prompt,
                                    transcript_decoding="ctc", max_new_tokens=MAX_NEW_TOKENS, **call)
        return [row[3 : row.index(config.eos_token_id)] for row in output.tolist()]

    expected = reference_ctc(model, features, mask, k=None)
    assert config.no_speech_logprob_threshold == -1.0  # Whisper's logprob_threshold
    encoded = model.get_encoder()(features, mask)
    log_probs = model.ctc_head(encoded.last_hidden_state).log_softmax(-1)
    best, frames = ctc_greedy_frames(log_probs, encoded.attention_mask, config.pad_token_id)
    for row, emitting in enumerate(frames):  # a random head is unsure of every transcript it writes
        assert 0 < len(emitting) and log_probs[row, emitting, best[row, emitting]].mean() < -1.0
    assert transcripts(config.no_speech_token_id) == [[], []]
    assert transcripts(config.no_speech_token_id, num_beams=3) == [[], []]
    assert transcripts(40) == expected  # another language: the rule does not apply
    config.no_speech_logprob_threshold = -100.0  # the transcript is confident enough: kept
    assert transcripts(config.no_speech_token_id) == expected
    config.no_speech_logprob_threshold = None
    assert transcripts(config.no_speech_token_id) == expected
