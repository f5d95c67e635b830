"""Temperature fallback, Whisper's remedy for repetition loops: a greedy transcript whose token ids compress better
than `compression_ratio_threshold` ("är är är är ...", "warrrrrr...") is decoded again by sampling at rising
temperatures, from the same task-token prefix, so that language, gender, emotion and events keep their greedy
tokens and scores and only the transcript changes."""

from __future__ import annotations

import copy
import math
import threading
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import GenerationConfig, PretrainedConfig
from transformers.generation.utils import GenerateEncoderDecoderOutput

# openai-whisper's `transcribe()` defaults.
COMPRESSION_RATIO_THRESHOLD = 2.4
FALLBACK_TEMPERATURES = (0.2, 0.4, 0.6, 0.8, 1.0)
# The sampling RNG is reseeded for every row (and restored afterwards), so the same audio gives the same text.
FALLBACK_SEED = 0
# That RNG is torch's global one: re-decodings in concurrent threads (a served demo) take turns, or each would
# sample from the others' draws.
_SAMPLING_LOCK = threading.Lock()


def compression_ratio(token_ids: Sequence[int], vocab_size: int) -> float:
    """Size of the ids as fixed-width bytes over their zlib-compressed size (Whisper's ratio on tokens); 0.0 for
    no ids. Ordinary speech stays below 2.4, a transcript that repeats itself goes above it."""
    width = int(math.log2(vocab_size) / 8) + 1
    data = b"".join(int(token).to_bytes(width, "little") for token in token_ids)
    return len(data) / len(zlib.compress(data)) if data else 0.0


def transcript_start(ids: Sequence[int], transcribe_token_id: int | None, prompt_length: int) -> int:
    """Position of a row's first generated transcript token: after `<|transcribe|>` (which a prompt may hold),
    else after the prompt."""
    ids = list(ids)
    if transcribe_token_id in ids:
        return max(ids.index(transcribe_token_id) + 1, prompt_length)
    return prompt_length


def transcript_ids(ids: Sequence[int], start: int, eos_token_id: int, pad_token_id: int) -> list[int]:
    """The transcript tokens from `start` up to end-of-text, padding left out."""
    tokens = []
    for token in ids[start:]:
        if token == eos_token_id:
            break
        if token != pad_token_id:
            tokens.append(token)
    return tokens


def uses_fallback(generation_config: GenerationConfig, threshold: float | None, model_kwargs: dict) -> bool:
    """Only plain greedy search is re-decoded: sampling and beam search choose differently by design, and
    attentions or hidden states of a mixed output would describe two different decodings."""
    return (
        threshold is not None
        and not generation_config.do_sample
        and (generation_config.num_beams or 1) == 1
        and (generation_config.num_return_sequences or 1) == 1
        and not generation_config.output_attentions
        and not generation_config.output_hidden_states
        and model_kwargs.get("input_features") is not None
    )


def apply_temperature_fallback(
    generate: Callable[..., Any],
    output: torch.Tensor | GenerateEncoderDecoderOutput,
    generation_config: GenerationConfig,
    model_kwargs: dict[str, Any],
    config: PretrainedConfig,
    threshold: float,
    temperatures: Sequence[float],
) -> torch.Tensor | GenerateEncoderDecoderOutput:
    """Re-decode every row of greedy `output` whose transcript's `compression_ratio` exceeds `threshold`.

    `generate` is the stock `GenerationMixin.generate` of the model; `generation_config` and `model_kwargs` are
    what the greedy call used (`GenerationConfig.update` splits a call's keyword arguments into the two); `config`
    the model's (vocabulary size, `<|transcribe|>`, end-of-text and padding ids). Each
    flagged row is decoded alone at each temperature in turn, keeping its tokens up to `<|transcribe|>`; the first
    transcript under the threshold is kept, or the least compressible one when none gets under it. Rows are
    looped over, tokens are not: a loop is rare, and each re-decoding is one batched `generate` call.
    """
    sequences = _sequences(output)
    prompt = model_kwargs.get("decoder_input_ids")
    prompt_length = prompt.shape[1] if prompt is not None else 1
    if generation_config.max_new_tokens is not None:
        length_limit = prompt_length + generation_config.max_new_tokens
    else:
        length_limit = generation_config.max_length or sequences.shape[1]
    eos, pad, vocab_size = config.eos_token_id, config.pad_token_id, config.vocab_size
    replacements = {}
    for row, ids in enumerate(sequences.tolist()):
        start = transcript_start(ids, config.transcribe_token_id, prompt_length)
        best_ratio = compression_ratio(transcript_ids(ids, start, eos, pad), vocab_size)
        if best_ratio <= threshold or start >= length_limit:
            continue
        for temperature in temperatures:
            candidate = _sample_row(
                generate, sequences[row : row + 1, :start], row, generation_config, model_kwargs, temperature,
                length_limit - start,
            )
            ratio = compression_ratio(transcript_ids(_sequences(candidate)[0].tolist(), start, eos, pad), vocab_size)
            if ratio < best_ratio:
                best_ratio, replacements[row] = ratio, (start, candidate)
            if ratio <= threshold:
                break
    return _splice(output, replacements, prompt_length, pad) if replacements else output


def _sequences(output: torch.Tensor | GenerateEncoderDecoderOutput) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output.sequences


def _sample_row(
    generate: Callable[..., Any],
    prefix: torch.Tensor,
    row: int,
    generation_config: GenerationConfig,
    model_kwargs: dict[str, Any],
    temperature: float,
    max_new_tokens: int,
) -> torch.Tensor | GenerateEncoderDecoderOutput:
    """One row decoded by sampling at `temperature` (no top-k cut, as Whisper), continuing from `prefix`."""
    config = copy.deepcopy(generation_config)
    # max_length unset: the resolved config carries one (20 by default), which max_new_tokens replaces anyway.
    config.update(
        do_sample=True, temperature=temperature, top_k=0, top_p=1.0, max_new_tokens=max_new_tokens, max_length=None
    )
    row_kwargs = {
        key: value[row : row + 1] if key in ("input_features", "attention_mask") and value is not None else value
        for key, value in model_kwargs.items()
    }
    row_kwargs["decoder_input_ids"] = prefix
    device = prefix.device
    with _SAMPLING_LOCK, torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(FALLBACK_SEED)
        return generate(generation_config=config, **row_kwargs)


def _splice(
    output: torch.Tensor | GenerateEncoderDecoderOutput,
    replacements: dict[int, tuple[int, torch.Tensor | GenerateEncoderDecoderOutput]],
    prompt_length: int,
    pad_token_id: int,
) -> torch.Tensor | GenerateEncoderDecoderOutput:
    """`output` with the replaced rows' sequences, and their `scores`/`logits` from the transcript on."""
    sequences = _sequences(output)
    rows = [
        _sequences(replacements[row][1])[0] if row in replacements else sequences[row]
        for row in range(sequences.shape[0])
    ]
    spliced = padded_rows(rows, pad_token_id)
    if isinstance(output, torch.Tensor):
        return spliced
    output.sequences = spliced
    for field in ("scores", "logits"):
        steps = getattr(output, field)
        if steps is None:
            continue
        table = step_table(steps, spliced.shape[1] - prompt_length)  # a re-decoded row may have been the longest
        for row, (start, candidate) in replacements.items():
            row_steps = getattr(candidate, field)
            table[start - prompt_length :, row] = 0.0
            table[start - prompt_length : start - prompt_length + len(row_steps), row] = torch.cat(row_steps)
        setattr(output, field, tuple(table))
    return output


def padded_rows(rows: Sequence[torch.Tensor], pad_token_id: int) -> torch.Tensor:
    """Rows of ids of different lengths as one (rows, longest) tensor, padded on the right."""
    padded = rows[0].new_full((len(rows), max(len(row) for row in rows)), pad_token_id)
    for index, row in enumerate(rows):
        padded[index, : len(row)] = row
    return padded


def step_table(steps: Sequence[torch.Tensor], length: int) -> torch.Tensor:
    """Generate's per-step (rows, vocab) scores as one (length, rows, vocab) table: cut to `length` steps, or
    zero-filled up to it, for a caller to overwrite the rows it changed."""
    table = torch.zeros(length, *steps[0].shape, dtype=steps[0].dtype, device=steps[0].device)
    kept = min(len(steps), length)
    table[:kept] = torch.stack(steps[:kept])
    return table
