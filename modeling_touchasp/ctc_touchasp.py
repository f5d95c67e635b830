"""CTC transcripts, as SenseVoice writes them: the decoder generates the task tokens up to `<|transcribe|>`, then the
encoder's CTC head gives the transcript by greedy CTC in one step, with no decoder loop that could repeat itself.
While the small decoder is undertrained this is far more accurate (training/README.md, "CTC transcripts")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from transformers import GenerationConfig, PretrainedConfig
from transformers.generation.utils import GenerateEncoderDecoderOutput

from .generation_touchasp import padded_rows, step_table, transcript_start


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


def check_ctc_generation(generation_config: GenerationConfig) -> None:
    """Greedy CTC gives one transcript per clip; beam search and several returned sequences need the decoder."""
    if (generation_config.num_beams or 1) != 1 or (generation_config.num_return_sequences or 1) != 1:
        raise ValueError(
            "transcript_decoding='ctc' writes one greedy CTC transcript per clip; for num_beams or "
            "num_return_sequences above 1 pass transcript_decoding='attention'"
        )


def generate_ctc_transcript(
    generate: Callable[..., Any],
    encoder: Callable[..., Any],
    ctc_head: torch.nn.Module,
    config: PretrainedConfig,
    input_features: torch.Tensor,
    **kwargs: Any,
) -> torch.Tensor | GenerateEncoderDecoderOutput:
    """`generate` (the stock `GenerationMixin.generate`) stopped at `<|transcribe|>`, each row then continued with
    its greedy CTC transcript and `<|eot|>`; rows that end without `<|transcribe|>` (no speech) stay as they are.

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
    best, frames = ctc_greedy_frames(log_probs, encoder_outputs.attention_mask, config.pad_token_id)
    prompt = kwargs.get("decoder_input_ids")
    prompt_length = prompt.shape[1] if prompt is not None else 1
    rows, cuts = [], []
    for row, ids in enumerate(sequences.tolist()):
        # A prompt may hold `<|transcribe|>` and the transcript's first words: CTC's transcript follows them.
        cut = transcript_start(ids, transcribe, prompt_length) if transcribe in ids else None
        tokens = best[row, frames[row]]
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
