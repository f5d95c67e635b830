"""Constrained decoding of the section-5 target: generation can only write a well-formed task-token prefix.

A small model that is unsure of a slot otherwise puts any token there (`<|pt|><|Speech|><|male|><|Speech|>`,
a word in the language slot), and the transcript that follows is conditioned on that garbage. Whisper forces its
language/task tokens the same way; here every slot is restricted to its own tokens, events to the canonical
order (so none repeats), and the transcript to ordinary tokens and `<|eot|>`.

After `<|nospeech|>` the emotion and gender slots hold only their unknown tokens, as in every no-speech training row
(the labels are missing there, fed as unknown and never taught). Left free, the model wrote `<|male|>` there, a
prefix it only ever saw before speech, and then the `Speech` event at probability 1.0 on a drum or a bell.
"""

import torch
from transformers import LogitsProcessor

# Relative import: this file is copied into saved model folders and loaded there with trust_remote_code.
from .task_tokens import END_EVENTS, EOT, SLOT_TOKENS, TRANSCRIBE, UNKNOWN_EMOTION, UNKNOWN_GENDER, language_token

# The single-label slots in target order; `<|sot|>` is position 0, so the slot at position p is _SLOT_ORDER[p - 1].
_SLOT_ORDER = ("language", "emotion", "gender")


class TaskGrammarLogitsProcessor(LogitsProcessor):
    """Masks every token the section-5 grammar does not allow next, for each row, with tensor ops only.

    The state of a row is read from its ids: after `<|transcribe|>` the transcript (any non-special token or
    `<|eot|>`); after `<|/events|>` only `<|transcribe|>`; otherwise the slot of the next position (language,
    emotion, gender; only the unknown ones after `<|nospeech|>`) and from position 4 an event later in canonical
    order than the last one, or `<|/events|>`.
    Forced prompts (`decoder_input_ids`) are never masked, only the tokens generated after them.
    """

    def __init__(self, tokenizer):
        vocab_size = len(tokenizer)
        ids = {slot: torch.tensor(tokenizer.convert_tokens_to_ids(list(tokens))) for slot, tokens in SLOT_TOKENS.items()}
        self.transcribe_id = tokenizer.convert_tokens_to_ids(TRANSCRIBE)
        self.end_events_id = tokenizer.convert_tokens_to_ids(END_EVENTS)
        self.slot_masks = torch.zeros(len(_SLOT_ORDER), vocab_size, dtype=torch.bool)
        for index, slot in enumerate(_SLOT_ORDER):
            self.slot_masks[index, ids[slot]] = True
        self.no_speech_id = tokenizer.convert_tokens_to_ids(language_token("nospeech"))
        self.no_speech_slot_masks = self.slot_masks.clone()
        self.no_speech_slot_masks[1:] = False
        self.no_speech_slot_masks[1, tokenizer.convert_tokens_to_ids(UNKNOWN_EMOTION)] = True
        self.no_speech_slot_masks[2, tokenizer.convert_tokens_to_ids(UNKNOWN_GENDER)] = True
        # Canonical rank of each event token, -2 elsewhere (below the -1 that marks "no event yet").
        self.event_rank = torch.full((vocab_size,), -2, dtype=torch.long)
        self.event_rank[ids["events"]] = torch.arange(len(ids["events"]))
        self.transcript_mask = torch.ones(vocab_size, dtype=torch.bool)
        self.transcript_mask[tokenizer.convert_tokens_to_ids(tokenizer.all_special_tokens)] = False
        self.transcript_mask[tokenizer.convert_tokens_to_ids(EOT)] = True
        self.transcribe_only = torch.zeros(vocab_size, dtype=torch.bool)
        self.transcribe_only[self.transcribe_id] = True
        self._device_tensors: dict[tuple[torch.device, int], tuple[torch.Tensor, ...]] = {}

    def _tensors(self, device: torch.device, width: int) -> tuple[torch.Tensor, ...]:
        """The masks on `device`, padded to the model's vocabulary `width` (ids the tokenizer lacks stay masked)."""
        key = (device, width)
        if key not in self._device_tensors:
            pad = width - self.event_rank.numel()
            if pad < 0:
                raise ValueError(f"the model scores {width} tokens but the tokenizer has {self.event_rank.numel()}")
            self._device_tensors[key] = (
                torch.nn.functional.pad(self.slot_masks, (0, pad)).to(device),
                torch.nn.functional.pad(self.no_speech_slot_masks, (0, pad)).to(device),
                torch.nn.functional.pad(self.event_rank, (0, pad), value=-2).to(device),
                torch.nn.functional.pad(self.transcript_mask, (0, pad)).to(device),
                torch.nn.functional.pad(self.transcribe_only, (0, pad)).to(device),
            )
        return self._device_tensors[key]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        slot_masks, no_speech_slot_masks, event_rank, transcript_mask, transcribe_only = self._tensors(
            scores.device, scores.shape[-1]
        )
        length = input_ids.shape[1]
        if length <= len(_SLOT_ORDER):
            no_speech = (input_ids[:, min(length, 2) - 1] == self.no_speech_id).unsqueeze(1)  # position 0: sot
            prefix_allowed = torch.where(no_speech, no_speech_slot_masks[length - 1], slot_masks[length - 1])
        else:
            # A non-event last token (the gender slot) has rank -2: every event is then allowed.
            last_rank = event_rank[input_ids[:, -1]].clamp_min(-1)
            prefix_allowed = event_rank.unsqueeze(0) > last_rank.unsqueeze(1)
            prefix_allowed[:, self.end_events_id] = True
        in_transcript = (input_ids == self.transcribe_id).any(-1, keepdim=True)
        after_events = (input_ids == self.end_events_id).any(-1, keepdim=True)
        allowed = torch.where(in_transcript, transcript_mask, torch.where(after_events, transcribe_only, prefix_allowed))
        return scores.masked_fill(~allowed, float("-inf"))
