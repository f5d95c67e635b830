"""CTC transcripts, as SenseVoice writes them: the decoder generates the task tokens up to `<|transcribe|>`, then the
encoder's CTC head gives the transcript by greedy CTC in one step, with no decoder loop that could repeat itself.
While the small decoder is undertrained this is far more accurate (training/README.md, "CTC transcripts").
With `num_beams` > 1 the transcript comes from CTC prefix beam search instead, fused with the model's token n-gram
language model when it has one (`ngram_touchasp`), as WeNet and `Wav2Vec2ProcessorWithLM` decode."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import GenerationConfig, PretrainedConfig
from transformers.generation.utils import GenerateEncoderDecoderOutput

from .generation_touchasp import padded_rows, step_table, transcript_start
from .ngram_touchasp import TokenNgramLM

# Per frame, tokens less likely than this never extend a prefix (pyctcdecode's `token_min_logp` idea): most frames
# are near-certain blanks, so the search touches a handful of tokens per frame instead of the whole vocabulary.
TOKEN_MIN_LOG_PROB = -10.0


def ctc_greedy_frames(
    log_probs: torch.Tensor, frame_mask: torch.Tensor | None, blank_id: int
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The greedy CTC path of `log_probs` (batch, frames, vocab), i.e. its argmax (batch, frames), and per row the
    frames where that path emits a token: repeats merged, blanks and padded frames dropped."""
    best = log_probs.argmax(-1)
    previous = F.pad(best[:, :-1], (1, 0), value=-1)
    emits = (best != blank_id) & (best != previous)
    if frame_mask is not None:
        emits &= frame_mask.bool()
    return best, [row.nonzero().squeeze(-1) for row in emits]


def ctc_prefix_beam_search(
    log_probs: np.ndarray,
    blank_id: int,
    beam_size: int,
    lm: TokenNgramLM | None = None,
    lm_weight: float = 0.0,
    length_bonus: float = 0.0,
) -> tuple[list[int], list[int]]:
    """The best transcript of one clip's CTC `log_probs` (frames, vocab) by prefix beam search, which adds up the
    paths that spell the same tokens (greedy CTC follows one path). With `lm`, every appended token adds
    `lm_weight` * its n-gram log-probability + `length_bonus`, and the sentence end `lm_weight` * its own.

    Returns (tokens, frame of each token: where the best path to its prefix emitted it)."""
    # prefix -> [log P(prefix, path ends in blank), log P(prefix, path ends in its last token), LM score,
    #            frames of its tokens, the log-probability with which the last token was appended]
    beams: dict[tuple[int, ...], list] = {(): [0.0, -math.inf, 0.0, (), 0.0]}
    for frame, row in enumerate(log_probs):
        candidates = np.flatnonzero(row > TOKEN_MIN_LOG_PROB)
        if len(candidates) > beam_size:
            candidates = candidates[np.argpartition(-row[candidates], beam_size)[:beam_size]]
        extended: dict[tuple[int, ...], list] = {}
        for token in candidates.tolist():
            token_log_prob = float(row[token])
            for prefix, (blank_end, token_end, lm_score, frames, _) in beams.items():
                if token == blank_id:
                    _add(extended, prefix, 0, blank_end + token_log_prob, token_end + token_log_prob, beams[prefix])
                    continue
                if prefix and token == prefix[-1]:  # a repeat without a blank between merges into the prefix
                    _add(extended, prefix, 1, token_end + token_log_prob, -math.inf, beams[prefix])
                    reach = blank_end + token_log_prob
                else:
                    reach = _log_add(blank_end, token_end) + token_log_prob
                longer = prefix + (token,)
                if longer not in extended:
                    bonus = lm_weight * lm.log_prob(prefix, token) + length_bonus if lm is not None else 0.0
                    extended[longer] = [-math.inf, -math.inf, lm_score + bonus, frames + (frame,), reach]
                entry = extended[longer]
                entry[1] = _log_add(entry[1], reach)
                if reach > entry[4]:
                    entry[3], entry[4] = frames + (frame,), reach
        beams = dict(sorted(extended.items(), key=lambda item: -_total(item[1]))[:beam_size]) or beams

    def final(item: tuple[tuple[int, ...], list]) -> float:
        prefix, entry = item
        return _total(entry) + (lm_weight * lm.log_prob(prefix, lm.end_id) if lm is not None else 0.0)

    prefix, entry = max(beams.items(), key=final)
    return list(prefix), list(entry[3])


def _add(beams: dict, prefix: tuple[int, ...], slot: int, first: float, second: float, source: list) -> None:
    """Add the path log-probabilities `first` and `second` into slot `slot` of `prefix` (created from `source`)."""
    entry = beams.setdefault(prefix, [-math.inf, -math.inf, source[2], source[3], source[4]])
    entry[slot] = _log_add(entry[slot], _log_add(first, second))


def _total(entry: list) -> float:
    return _log_add(entry[0], entry[1]) + entry[2]


def _log_add(a: float, b: float) -> float:
    """log(exp(a) + exp(b)) for Python floats, where numpy's per-call overhead would dominate the search."""
    if a < b:
        a, b = b, a
    return a if b == -math.inf else a + math.log1p(math.exp(b - a))


def check_ctc_generation(generation_config: GenerationConfig) -> None:
    """CTC gives one transcript per clip (greedy, or the best of its prefix beam search); several returned
    sequences need the decoder."""
    if (generation_config.num_return_sequences or 1) != 1:
        raise ValueError(
            "transcript_decoding='ctc' writes one CTC transcript per clip; for num_return_sequences above 1 pass "
            "transcript_decoding='attention'"
        )


def generate_ctc_transcript(
    generate: Callable[..., Any],
    encoder: Callable[..., Any],
    ctc_head: torch.nn.Module,
    config: PretrainedConfig,
    input_features: torch.Tensor,
    beam_size: int = 1,
    lm: TokenNgramLM | None = None,
    **kwargs: Any,
) -> torch.Tensor | GenerateEncoderDecoderOutput:
    """`generate` (the stock `GenerationMixin.generate`) stopped at `<|transcribe|>`, each row then continued with
    its CTC transcript and `<|eot|>`; rows that end without `<|transcribe|>` (no speech) stay as they are. The
    transcript is greedy for `beam_size` 1, else `ctc_prefix_beam_search`'s with `lm` weighted by the config's
    `ctc_lm_weight` and `ctc_length_bonus`; it is emptied by the config's no-speech rule (`is_unheard`).

    The encoder runs once for both heads. In a dict output the transcript steps' `scores`/`logits` are the CTC
    log-probabilities of the frame that emitted each token, `<|eot|>` scores 0 for itself and -inf elsewhere, padding
    0; `max_new_tokens` bounds the decoder's task tokens only (a CTC transcript has at most one token per frame).
    """
    encoder_outputs = encoder(
        input_features, kwargs.get("attention_mask"), num_experts_per_tok=kwargs.get("num_experts_per_tok")
    )
    eos, transcribe = config.eos_token_id, config.transcribe_token_id
    output = generate(input_features, encoder_outputs=encoder_outputs, eos_token_id=[eos, transcribe], **kwargs)
    sequences = output if isinstance(output, torch.Tensor) else output.sequences
    log_probs = ctc_head(encoder_outputs.last_hidden_state).float().log_softmax(-1)
    frame_mask = encoder_outputs.attention_mask
    best, frames = ctc_greedy_frames(log_probs, frame_mask, config.pad_token_id)
    prompt = kwargs.get("decoder_input_ids")
    prompt_length = prompt.shape[1] if prompt is not None else 1
    rows, cuts = [], []
    for row, ids in enumerate(sequences.tolist()):
        # A prompt may hold `<|transcribe|>` and the transcript's first words: CTC's transcript follows them.
        cut = transcript_start(ids, transcribe, prompt_length) if transcribe in ids else None
        if cut is not None and beam_size > 1:
            valid = log_probs[row] if frame_mask is None else log_probs[row, frame_mask[row].bool()]
            found, found_frames = ctc_prefix_beam_search(
                valid.cpu().numpy(), config.pad_token_id, beam_size, lm, config.ctc_lm_weight, config.ctc_length_bonus
            )
            frames[row] = torch.tensor(found_frames, dtype=torch.long)
            tokens = sequences.new_tensor(found)
        else:
            tokens = best[row, frames[row]]
        if cut is not None and is_unheard(ids, log_probs[row, frames[row], tokens], config):
            frames[row], tokens = frames[row][:0], tokens[:0]
        rows.append(sequences[row] if cut is None else torch.cat([sequences[row, :cut], tokens, tokens.new([eos])]))
        cuts.append(cut)
    spliced = padded_rows(rows, config.pad_token_id)
    if isinstance(output, torch.Tensor):
        return spliced
    output.sequences = spliced
    for field in ("scores", "logits"):
        steps = getattr(output, field)
        if steps is not None:
            table = step_table(steps, spliced.shape[1] - prompt_length)
            setattr(output, field, _with_ctc_steps(table, log_probs, frames, cuts, prompt_length, eos))
    return output


def is_unheard(ids: list[int], token_log_probs: torch.Tensor, config: PretrainedConfig) -> bool:
    """Whisper's no-speech rule for a row `ids` (`<|sot|>` then its language) whose CTC transcript tokens have
    `token_log_probs`: the language is `config.no_speech_token_id` and the tokens' mean log-probability is below
    `config.no_speech_logprob_threshold`."""
    threshold = config.no_speech_logprob_threshold
    return (
        threshold is not None
        and ids[1:2] == [config.no_speech_token_id]
        and len(token_log_probs) > 0
        and token_log_probs.mean().item() < threshold
    )


def _with_ctc_steps(
    table: torch.Tensor,
    log_probs: torch.Tensor,
    frames: list[torch.Tensor],
    cuts: list[int | None],
    prompt_length: int,
    eos_token_id: int,
) -> tuple[torch.Tensor, ...]:
    """The decoder's step scores `table` with each transcript row's steps replaced by the CTC ones (see
    `generate_ctc_transcript`)."""
    for row, cut in enumerate(cuts):
        if cut is None:
            continue
        start = cut - prompt_length
        count = len(frames[row])
        table[start:, row] = 0.0
        table[start : start + count, row] = log_probs[row, frames[row]].to(table.dtype)
        table[start + count, row] = float("-inf")
        table[start + count, row, eos_token_id] = 0.0
    return tuple(table)
