"""Temperature fallback: a greedy transcript that loops is decoded again by sampling, the task tokens kept."""

from concurrent.futures import ThreadPoolExecutor

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from modeling_touchasp import TouchASPForConditionalGeneration
from modeling_touchasp.generation_touchasp import (
    COMPRESSION_RATIO_THRESHOLD,
    compression_ratio,
    transcript_ids,
    transcript_start,
)

MAX_NEW_TOKENS = 40


class LoopOnlyFirstRow(LogitsProcessor):
    """Pushes row 0 towards repeating its last token: greedy search then loops on it, while sampling at a high
    temperature still leaves the other tokens a fair chance. Row 1 is steered through distinct tokens (a random
    model would loop there too)."""

    def __init__(self, bias: float):
        self.bias = bias

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores.clone()
        scores[0, input_ids[0, -1]] += self.bias
        if len(scores) > 1:
            scores[1, 10 + 7 * input_ids.shape[1] % 400] += 100.0
        return scores


def test_compression_ratio_separates_loops_from_varied_text():
    assert compression_ratio([7] * 60, vocab_size=2000) > COMPRESSION_RATIO_THRESHOLD
    assert compression_ratio([9, 10, 11] * 20, vocab_size=2000) > COMPRESSION_RATIO_THRESHOLD
    assert compression_ratio(list(range(5, 1805, 30)), vocab_size=2000) < COMPRESSION_RATIO_THRESHOLD
    assert compression_ratio([], vocab_size=2000) == 0.0


def test_transcript_starts_after_transcribe_token_or_prompt():
    assert transcript_start([2, 30, 31, 4, 50, 51, 3], transcribe_token_id=4, prompt_length=1) == 4
    assert transcript_start([2, 50, 51, 3], transcribe_token_id=4, prompt_length=1) == 1
    assert transcript_start([2, 4, 50, 51, 3], transcribe_token_id=4, prompt_length=3) == 3  # text prompt
    assert transcript_ids([2, 4, 50, 0, 51, 3, 52], start=2, eos_token_id=3, pad_token_id=0) == [50, 51]


def transcripts(model, sequences: torch.Tensor, start: int) -> list[float]:
    config = model.config
    return [
        compression_ratio(transcript_ids(row, start, config.eos_token_id, config.pad_token_id), config.vocab_size)
        for row in sequences.tolist()
    ]


def test_greedy_loop_is_redecoded_by_seeded_sampling(tiny_config):
    torch.manual_seed(0)
    model = TouchASPForConditionalGeneration(tiny_config).eval()
    features = torch.randn(2, 90, 80)
    mask = torch.ones(2, 90, dtype=torch.long)
    config = model.config
    prompt = torch.tensor([[config.decoder_start_token_id, 40, config.transcribe_token_id]] * 2)
    call = dict(
        attention_mask=mask, decoder_input_ids=prompt, max_new_tokens=MAX_NEW_TOKENS, num_experts_per_tok=2,
        logits_processor=LogitsProcessorList([LoopOnlyFirstRow(bias=6.0)]), return_dict_in_generate=True,
        output_scores=True,
    )
    with torch.no_grad():
        greedy = model.generate(features, compression_ratio_threshold=None, **call)
        rng_before = torch.get_rng_state()
        fallback = model.generate(features, **call)
        assert torch.equal(torch.get_rng_state(), rng_before)
        again = model.generate(features, **call)
        plain = model.generate(features, **{**call, "return_dict_in_generate": False, "output_scores": False})
        beams = [model.generate(features, num_beams=2, compression_ratio_threshold=threshold, **call).sequences
                 for threshold in (None, COMPRESSION_RATIO_THRESHOLD)]

    start = prompt.shape[1]
    looped, _ = transcripts(model, greedy.sequences, start)
    fixed, untouched = transcripts(model, fallback.sequences, start)
    assert looped > COMPRESSION_RATIO_THRESHOLD >= fixed
    assert torch.equal(fallback.sequences[:, :start], prompt)
    greedy_row = greedy.sequences[1][greedy.sequences[1] != config.pad_token_id]
    assert fallback.sequences[1, : len(greedy_row)].tolist() == greedy_row.tolist()
    assert untouched == transcripts(model, greedy.sequences, start)[1]
    assert torch.equal(again.sequences, fallback.sequences) and torch.equal(plain, fallback.sequences)
    assert len(fallback.scores) == fallback.sequences.shape[1] - start
    greedy_steps, fallback_steps = torch.stack(greedy.scores), torch.stack(fallback.scores)
    assert torch.equal(fallback_steps[: len(greedy_steps), 1], greedy_steps[:, 1])
    assert not torch.equal(fallback_steps[0, 0], greedy_steps[0, 0])  # row 0's scores are the sampled decoding's
    assert torch.equal(beams[0], beams[1])  # beam search is left as it is
    model.generation_config.num_beams = 2  # a passed config's unset fields come from here, for the fallback too
    with torch.no_grad():
        passed = model.generate(features, generation_config=GenerationConfig(), **call)
    assert torch.equal(passed.sequences, beams[0])


def test_concurrent_fallbacks_do_not_share_random_numbers(tiny_config):
    """A served model decodes requests in threads; each re-decoding must sample from its own seed. One intra-op
    thread, so that concurrent kernels compute the same bits as sequential ones."""
    torch.manual_seed(0)
    model = TouchASPForConditionalGeneration(tiny_config).eval()
    features = torch.randn(1, 90, 80)
    config = model.config
    prompt = torch.tensor([[config.decoder_start_token_id, 40, config.transcribe_token_id]])
    call = dict(
        decoder_input_ids=prompt, max_new_tokens=MAX_NEW_TOKENS,
        logits_processor=LogitsProcessorList([LoopOnlyFirstRow(bias=6.0)]),
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            alone = model.generate(features, **call)
            with ThreadPoolExecutor(4) as pool:
                together = list(pool.map(lambda _: model.generate(features, **call), range(8)))
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(sequences, alone) for sequences in together)
