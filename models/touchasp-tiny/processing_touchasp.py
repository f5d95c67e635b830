"""TouchASP processor: audio -> features, labelled rows -> decoder targets, generated ids -> text + perception.

The one place that knows how a row becomes the DESIGN.md section-5 target and how generated task tokens become a
perception dict; training, the pipeline, the CLI and the demo all go through it.
"""

from collections.abc import Sequence
from numbers import Number
from typing import Any

import numpy as np
import torch
from transformers import BatchFeature, ProcessorMixin

# Relative imports: this file is copied into saved model folders and loaded there with trust_remote_code.
from .audio import load_audio
from .task_grammar import TaskGrammarLogitsProcessor
from .task_tokens import (
    END_EVENTS,
    SLOT_TOKENS,
    SOT,
    TRANSCRIBE,
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

IGNORE_INDEX = -100
# An event is reported when its probability, among the event tokens and `<|/events|>`, exceeds this.
DEFAULT_EVENT_THRESHOLD = 0.5
# The single-label slots in target order: (slot, token of a label, token fed when the label is missing).
_CLASS_SLOTS = (
    ("language", language_token, UNKNOWN_LANGUAGE),
    ("emotion", emotion_token, UNKNOWN_EMOTION),
    ("gender", gender_token, UNKNOWN_GENDER),
)
_FIRST_EVENT_POSITION = 1 + len(_CLASS_SLOTS)  # after <|sot|> and the single-label slots


class TouchASPProcessor(ProcessorMixin):
    """A `TouchASPFeatureExtractor` and a `TouchASPTokenizer` (any tokenizer holding the task tokens works).

    - `processor(audio=..., text=..., language=..., emotion=..., gender=..., events=...)`: model inputs and, for
      training, `labels` / `decoder_input_ids` in the section-5 layout with missing labels masked.
    - `processor.decode_perception(sequences, scores)`: `generate(..., return_dict_in_generate=True,
      output_scores=True)` output -> `{"text", "perception"}` dicts.
    - `processor.decoder_prompt(language="en")`: ids that force the language when passed to `generate` as
      `decoder_input_ids`.
    - `processor.task_grammar()`: a logits processor for `generate(..., logits_processor=[...])` that keeps the
      task-token prefix well formed (the pipeline and the evaluation use it).
    - `batch_decode` / `decode`: the tokenizer's.
    """

    def __init__(self, feature_extractor, tokenizer):
        super().__init__(feature_extractor, tokenizer)

    def __call__(
        self,
        audio: Any = None,
        sampling_rate: int | None = None,
        text: str | Sequence[str | None] | None = None,
        language: str | Sequence[str | None] | None = None,
        emotion: str | Sequence[str | None] | None = None,
        gender: str | Sequence[str | None] | None = None,
        events: Sequence[str] | Sequence[Sequence[str] | None] | None = None,
        return_tensors: str | None = "pt",
        **kwargs: Any,
    ) -> BatchFeature:
        """Featurize audio and build decoder targets, for one row or a batch.

        One row: `audio` is one clip (anything `load_audio` takes); `text`, `language`, `emotion`, `gender` are a
        string or None; `events` is a list of AudioSet labels or None. A batch: `audio` is a list of clips (without
        audio: `text`, `language`, `emotion` or `gender` is a list), and every target is a list with one entry per
        row, except that one string for `text` / `language` / `emotion` / `gender` applies to every row.

        Target layout (labels exclude `<|sot|>`; `decoder_input_ids = [<|sot|>] + labels[:-1]`):
        `LANG EMOTION GENDER EVENT... <|/events|> <|transcribe|> transcript... <|eot|>`, events in canonical order.
        A missing label is fed to the decoder but never taught (label -100), so the model does not learn to answer
        "unknown" for lack of labels:
        - language / emotion / gender None (or their own unknown label): fed as `<|lang_unknown|>`,
          `<|EMO_UNKNOWN|>`, `<|gender_unknown|>`.
        - events None: `<|/events|>` is fed right away, its label masked. An empty list means "no events": taught.
        - text None: the row ends at `<|transcribe|>`, with no transcript and no `<|eot|>`, so nothing about the
          words is taught. `text=""` is a real empty transcript (a clip with events but no speech):
          `<|transcribe|> <|eot|>` is taught.

        Returns `input_features` (batch, frames, mel) and `attention_mask` (batch, frames) when audio is given, and
        `labels` / `decoder_input_ids` (batch, tokens), padded with -100 / the pad id, when any target is given.
        """
        targets = {"text": text, "language": language, "emotion": emotion, "gender": gender, "events": events}
        if audio is None and all(value is None for value in targets.values()):
            raise ValueError(
                "TouchASPProcessor needs audio=..., a target (text, language, emotion, gender, events), or both"
            )
        outputs = {}
        if audio is not None:
            outputs.update(self.feature_extractor(audio, sampling_rate=sampling_rate, **kwargs))
        if any(value is not None for value in targets.values()):
            rows = _rows(targets, _batch_size(audio, targets))
            labels, decoder_input_ids = zip(*(self.build_target(**row) for row in rows))
            outputs["labels"] = _pad(labels, IGNORE_INDEX)
            outputs["decoder_input_ids"] = _pad(decoder_input_ids, self.tokenizer.pad_token_id)
        return BatchFeature(outputs, tensor_type=return_tensors)

    def build_target(
        self,
        text: str | None = None,
        language: str | None = None,
        emotion: str | None = None,
        gender: str | None = None,
        events: Sequence[str] | None = None,
    ) -> tuple[list[int], list[int]]:
        """(labels, decoder_input_ids) of one row as lists of ids; see `__call__` for the layout and the masking."""
        if isinstance(events, str):
            raise ValueError(f"events={events!r} is a string; pass a list of AudioSet labels, e.g. ['Speech']")
        tokens, taught = [], []
        for (_, token_of, unknown), label in zip(_CLASS_SLOTS, (language, emotion, gender)):
            tokens.append(token_of(label))
            taught.append(tokens[-1] != unknown)
        for label in sort_events(events or []):
            tokens.append(event_token(label))
            taught.append(True)
        tokens += [END_EVENTS, TRANSCRIBE]
        taught += [events is not None, True]
        ids = self.tokenizer.convert_tokens_to_ids(tokens)
        if text is not None:
            transcript = self.tokenizer.encode(text, add_special_tokens=False) + [self.tokenizer.eos_token_id]
            ids += transcript
            taught += [True] * len(transcript)
        labels = [token_id if keep else IGNORE_INDEX for token_id, keep in zip(ids, taught)]
        return labels, [self.tokenizer.convert_tokens_to_ids(SOT)] + ids[:-1]

    def decoder_prompt(self, language: str | None = None) -> list[int]:
        """Ids to force at the start of decoding: `<|sot|>`, then `<|language|>` when a language is given ("en")."""
        tokens = [SOT] if language is None else [SOT, language_token(language)]
        return self.tokenizer.convert_tokens_to_ids(tokens)

    def task_grammar(self) -> TaskGrammarLogitsProcessor:
        """Constrained decoding of the section-5 layout: each slot only its own tokens, events in canonical order,
        the transcript no task tokens. Pass it to `generate` as `logits_processor=LogitsProcessorList([...])`."""
        return TaskGrammarLogitsProcessor(self.tokenizer)

    def load_audio(self, source: Any, sampling_rate: int | None = None) -> np.ndarray:
        """`load_audio` at the feature extractor's rate: a 1-D float32 waveform, or `TouchASPInputError`.

        On the processor so that code holding only a loaded processor (the pipeline, in a model folder) reaches the
        package's one audio decoder. Arrays without `sampling_rate` are taken to be at the feature extractor's rate.
        """
        target_rate = self.feature_extractor.sampling_rate
        return load_audio(source, sampling_rate or target_rate, target_rate=target_rate)

    def decode_perception(
        self,
        sequences: torch.Tensor,
        scores: Sequence[torch.Tensor],
        beam_indices: torch.Tensor | None = None,
        event_threshold: float | dict[str, float] | None = None,
    ) -> list[dict[str, Any]]:
        """One `{"text", "perception"}` dict per row of `sequences`; always a list, also for one row.

        Args:
            sequences: (rows, length) ids from `generate(..., return_dict_in_generate=True, output_scores=True)`,
                starting with `<|sot|>` and any forced prompt.
            scores: one (rows or beams, vocab) tensor per generated step: `output.scores` (or `output.logits`).
            beam_indices: `output.beam_indices` of beam search, whose `scores` rows are beams: each row's step
                scores are then read from the beam that produced its token. Required when scores rows != rows.
            event_threshold: an event is kept when its probability exceeds this: a float, or a dict of per-label
                thresholds; None and labels a dict leaves out use `DEFAULT_EVENT_THRESHOLD` (0.5).

        `perception` is `{"language", "emotion", "gender": {"label", "score", "scores": {label: probability}},
        "events": [{"label", "score"}]}`. Each slot's probabilities are the softmax over that slot's tokens only,
        at the step where the slot was generated (softmax is shift-invariant, so beam scores, which are
        log-probabilities plus the beam's running score, give the same numbers). `label` is the generated token,
        or the slot's most probable label where the model put another token in that place. A forced slot (e.g.
        the language of `decoder_prompt("en")`) has score 1.0 and `"forced": True`. A slot that generation never
        reached (stopped early, as for language ID alone) is None. Events are scored against the event tokens and
        `<|/events|>`; duplicates are reported once with their best score; forced events are always kept.
        """
        if beam_indices is None and scores and scores[0].shape[0] != sequences.shape[0]:
            raise ValueError(
                f"scores have {scores[0].shape[0]} rows but sequences have {sequences.shape[0]}; for beam search "
                "pass beam_indices=output.beam_indices"
            )
        # Forced tokens have no step: generate returns one score per generated token (beam search: per step of
        # the longest returned beam, which beam_indices spans).
        prompt_length = sequences.shape[1] - (len(scores) if beam_indices is None else beam_indices.shape[1])
        texts = self.tokenizer.batch_decode(sequences, skip_special_tokens=True)
        parser = _PerceptionParser(self.tokenizer, event_threshold)
        results = []
        for row, text in enumerate(texts):
            beams = [row] * len(scores) if beam_indices is None else beam_indices[row].tolist()
            row_scores = [step_scores[beam] for step_scores, beam in zip(scores, beams)]
            perception = parser.parse(sequences[row].tolist(), row_scores, prompt_length)
            results.append({"text": text, "perception": perception})
        return results


class _PerceptionParser:
    """Reads one generated row in the fixed slot order LANG, EMOTION, GENDER, EVENT..., `<|/events|>`."""

    def __init__(self, tokenizer, event_threshold: float | dict[str, float] | None):
        self.slot_ids = {slot: tokenizer.convert_tokens_to_ids(list(tokens)) for slot, tokens in SLOT_TOKENS.items()}
        self.labels = {
            slot: dict(zip(self.slot_ids[slot], map(label_from_token, tokens))) for slot, tokens in SLOT_TOKENS.items()
        }
        self.event_scoring_ids = self.slot_ids["events"] + [tokenizer.convert_tokens_to_ids(END_EVENTS)]
        self.stop_ids = {tokenizer.eos_token_id, tokenizer.pad_token_id}
        self.event_threshold = event_threshold

    def parse(self, ids: list[int], row_scores: list[torch.Tensor], prompt_length: int) -> dict[str, Any]:
        """`ids`: the row with its prompt; `row_scores[step]`: (vocab,) scores of generated token `step`."""

        def reached(position: int) -> bool:
            return position < len(ids) and ids[position] not in self.stop_ids

        def probabilities(position: int, token_ids: list[int]) -> list[float]:
            """Softmax over `token_ids` only, at the step that generated `position`."""
            return torch.softmax(row_scores[position - prompt_length][token_ids].float(), dim=-1).tolist()

        perception = {"language": None, "emotion": None, "gender": None, "events": None}
        for position, (slot, _, _) in enumerate(_CLASS_SLOTS, start=1):
            if not reached(position):
                return perception
            if position < prompt_length:
                perception[slot] = self._forced(slot, ids[position])
            else:
                perception[slot] = self._classify(slot, ids[position], probabilities(position, self.slot_ids[slot]))
        position = _FIRST_EVENT_POSITION
        if not reached(position):
            return perception
        events = {}
        while reached(position) and ids[position] in self.labels["events"]:
            label = self.labels["events"][ids[position]]
            if position < prompt_length:
                events[label] = 1.0
            else:
                score = probabilities(position, self.event_scoring_ids)[self.event_scoring_ids.index(ids[position])]
                if score > self._threshold(label):
                    events[label] = max(score, events.get(label, 0.0))
            position += 1
        perception["events"] = [{"label": label, "score": score} for label, score in events.items()]
        return perception

    def _classify(self, slot: str, token_id: int, probabilities: list[float]) -> dict[str, Any]:
        scores = dict(zip(self.labels[slot].values(), probabilities))
        label = self.labels[slot].get(token_id) or max(scores, key=scores.get)
        return {"label": label, "score": scores[label], "scores": scores}

    def _forced(self, slot: str, token_id: int) -> dict[str, Any] | None:
        label = self.labels[slot].get(token_id)
        return None if label is None else {"label": label, "score": 1.0, "scores": {label: 1.0}, "forced": True}

    def _threshold(self, label: str) -> float:
        if isinstance(self.event_threshold, dict):
            return self.event_threshold.get(label, DEFAULT_EVENT_THRESHOLD)
        return DEFAULT_EVENT_THRESHOLD if self.event_threshold is None else self.event_threshold


def _is_audio_batch(audio: Any) -> bool:
    """The feature extractor's rule: a list of clips is a batch, a list of numbers is one clip."""
    return isinstance(audio, (list, tuple)) and not (audio and isinstance(audio[0], Number))


def _batch_size(audio: Any, targets: dict[str, Any]) -> int | None:
    """Rows in a batch, or None for a single row."""
    if audio is not None:
        return len(audio) if _is_audio_batch(audio) else None
    for name in ("text", "language", "emotion", "gender"):
        if isinstance(targets[name], (list, tuple)):
            return len(targets[name])
    events = targets["events"]
    if events and (events[0] is None or isinstance(events[0], (list, tuple))):
        return len(events)
    return None


def _rows(targets: dict[str, Any], batch_size: int | None) -> list[dict[str, Any]]:
    """Split batched targets into one keyword dict per row, checking each list has one entry per row."""
    if batch_size is None:
        return [targets]
    columns = {}
    for name, value in targets.items():
        if value is None or (isinstance(value, str) and name != "events"):
            columns[name] = [value] * batch_size
        elif not isinstance(value, (list, tuple)) or len(value) != batch_size:
            raise ValueError(f"{name} must hold one entry per row of the batch ({batch_size} rows), got {value!r}")
        elif name == "events" and not all(row is None or isinstance(row, (list, tuple)) for row in value):
            raise ValueError(f"events of a batch must be a list of label lists (or None), one per row; got {value!r}")
        else:
            columns[name] = list(value)
    return [{name: column[row] for name, column in columns.items()} for row in range(batch_size)]


def _pad(rows: Sequence[list[int]], value: int) -> np.ndarray:
    """Right-pad id lists into a (rows, longest) int64 array."""
    padded = np.full((len(rows), max(map(len, rows))), value, dtype=np.int64)
    for index, row in enumerate(rows):
        padded[index, : len(row)] = row
    return padded


__all__ = ["TouchASPProcessor"]
