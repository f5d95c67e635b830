"""`pipeline("automatic-speech-recognition")` for TouchASP: text plus perception (language, emotion, gender, events).

This file is copied flat into saved model folders and named in their config.json `custom_pipelines`, so it imports
nothing from this package: audio decoding, prompts and the perception parser are reached through the loaded
`TouchASPProcessor`.
"""

from typing import Any

import numpy as np
import torch
from transformers import GenerationConfig, LogitsProcessorList
from transformers.pipelines.automatic_speech_recognition import AutomaticSpeechRecognitionPipeline

MODEL_TYPE = "touchasp"
# Long audio is cut into chunks of about this many seconds; the model is trained on VAD segments of this scale.
DEFAULT_CHUNK_LENGTH_S = 30.0
# A final piece shorter than this fraction of a chunk joins the chunk before it instead of being decoded alone.
MIN_TAIL_FRACTION = 0.25
# Cuts move to the quietest 25 ms frame within this many seconds before the nominal boundary, to spare words.
CUT_SEARCH_S = 2.0
_CUT_FRAME_S = 0.025
# With VAD, a pause at least this long between speech regions is decoded apart from them (for its sound events):
# the model, trained on tightly cut clips, loses words after a few seconds of silence or noise.
VAD_MIN_PAUSE_S = 1.0
# Speech regions are widened by this much on each side so that no word edge is cut.
VAD_SPEECH_PAD_S = 0.2
# With VAD, a clip short enough to decode whole is decoded as a pause (no text, language `nospeech`) when
# silero-vad's speech probability stays under this in every 32 ms frame: the model writes words into faint noise.
# Silero's own threshold is 0.5 and misses single short words; on the held-out split every speech row peaks at 0.32
# or more, noise from -80 to -20 dBFS under 0.16 (benchmarks/bench_vad_probe.py).
VAD_NO_SPEECH_PROBABILITY = 0.2
DEFAULT_MAX_NEW_TOKENS = 128


class TouchASPPipeline(AutomaticSpeechRecognitionPipeline):
    """Speech recognition and perception with a TouchASP model; any other model gets the stock ASR pipeline.

    Call with one input or a list (`batch_size=` batches them): a path or `bytes` of an audio file (wav, flac, ogg,
    mp3, or anything FFmpeg reads), a 1-D or multichannel array / tensor at 16 kHz, or a dict `{"raw" | "array":
    ..., "sampling_rate": ...}` at any rate. Call options, besides `generate_kwargs` and generation parameters:

    - `num_experts_per_tok`: active routed experts per MoE layer (the elastic budget), passed to `generate`.
    - `language`: force the language slot (e.g. "en"); it is reported with score 1.0 and `"forced": True`.
    - `chunk_length_s`: clips longer than this are decoded in chunks of at most about this length (default 30 s;
      0 decodes any clip whole); a clip up to a quarter longer is decoded whole.
    - `vad` (default True): silero-vad decides what is speech. A long clip: speech regions, joined across pauses
      shorter than 1 s up to the chunk length, are decoded apart from the longer pauses, which are decoded for
      their sound events only: their text is dropped (as SenseVoice transcribes VAD segments only). A clip decoded
      whole is treated as such a pause when no 32 ms frame reaches speech probability 0.2 (faint noise, a bell).
      Pauses are decoded with the language forced to `nospeech` (reported `"forced": True`; a caller's `language`
      wins), which leaves emotion and gender unknown and the events to the model's no-speech prefix.
      False: fixed chunks, each cut at the quietest frame within 2 s before its nominal end, a short final tail
      joined to the last chunk, every chunk's text kept.
    - `return_perception` (default True) and `event_threshold` (see `TouchASPProcessor.decode_perception`).

    Returns `{"text", "perception", "chunks": [{"text", "timestamp": (start_s, end_s)}]}`, chunks present unless
    `return_timestamps=False` (one spanning the clip when it was not cut); timestamps are per chunk, so
    `return_timestamps="word"` or `"char"` is refused. For chunked audio the perception is aggregated: each slot's
    `scores` are averaged over the speech chunks (all chunks with `vad=False` or where VAD found no speech),
    weighted by chunk duration times the chunk's speech probability (1 - P(`nospeech`)), so that silent stretches
    do not outvote speech; events are the union over all chunks, each with its best score. Decoding is greedy
    with at most 128 new tokens unless the model's generation config or the call says otherwise, constrained to
    a well-formed task-token prefix (`processor.task_grammar()`); a transcript that loops is decoded again by
    sampling (the model's temperature fallback, Whisper's rule; pass `generate_kwargs={"compression_ratio_threshold":
    None}` to turn it off). Bad audio raises `TouchASPInputError` (a `ValueError`) naming the input.
    """

    # Optional rather than required (the stock flags are tokenizer and feature extractor only): a TouchASP model
    # needs just its processor, which holds both, and other ASR models work without a processor.
    _load_processor = None
    _load_tokenizer = None
    _load_feature_extractor = None

    def __init__(self, model, *args, **kwargs):
        self.is_touchasp = model.config.model_type == MODEL_TYPE
        if self.is_touchasp:
            # Replaces the stock defaults (5 beams, 256 tokens) for what the model's generation config leaves unset.
            self._default_generation_config = GenerationConfig(
                num_beams=1, max_new_tokens=default_max_new_tokens(model.config)
            )
        super().__init__(model, *args, **kwargs)
        if self.is_touchasp and self.processor is None:
            raise ValueError(
                "a TouchASP pipeline needs its processor: pass processor=AutoProcessor.from_pretrained(model_path) "
                "(loading it from the model folder failed or the model was given as an object)"
            )
        if self.is_touchasp:
            self.task_grammar = self.processor.task_grammar()
            self.no_speech_prompt = self.processor.decoder_prompt("nospeech")

    def _sanitize_parameters(
        self,
        chunk_length_s: float | None = None,
        return_perception: bool | None = None,
        num_experts_per_tok: int | None = None,
        language: str | None = None,
        event_threshold: float | dict[str, float] | None = None,
        return_timestamps: bool | str | None = None,
        vad: bool | None = None,
        **kwargs: Any,
    ):
        if not self.is_touchasp:
            # Whisper reads `language` from generate; anything TouchASP-only fails there, naming itself.
            named = dict(
                chunk_length_s=chunk_length_s, return_perception=return_perception, language=language,
                num_experts_per_tok=num_experts_per_tok, event_threshold=event_threshold,
                return_timestamps=return_timestamps, vad=vad,
            )
            return super()._sanitize_parameters(**{k: v for k, v in named.items() if v is not None}, **kwargs)
        preprocess_params, forward_params, postprocess_params = {}, {}, {}
        if chunk_length_s is not None:
            if chunk_length_s != 0 and not chunk_length_s >= 1:
                raise ValueError(f"chunk_length_s={chunk_length_s!r}; use 0 (never cut) or at least 1 second")
            preprocess_params["chunk_length_s"] = chunk_length_s
        if vad is not None:
            preprocess_params["vad"] = bool(vad)
        forward_params.update(kwargs.pop("generate_kwargs", {}))
        forward_params.update(kwargs)
        if forward_params.get("num_return_sequences", 1) != 1:
            raise ValueError("the TouchASP pipeline returns one hypothesis per clip; drop num_return_sequences")
        if num_experts_per_tok is not None:
            forward_params["num_experts_per_tok"] = num_experts_per_tok
        if language is not None:
            forward_params["decoder_prompt"] = self.processor.decoder_prompt(language)
        if event_threshold is not None:
            forward_params["event_threshold"] = event_threshold
        if return_perception is not None:
            postprocess_params["return_perception"] = return_perception
        if return_timestamps not in (None, True, False):
            raise ValueError(
                f"return_timestamps={return_timestamps!r}: TouchASP times whole chunks (the output's `chunks`); "
                "pass True, False or leave it out"
            )
        if return_timestamps is not None:
            postprocess_params["return_timestamps"] = return_timestamps
        return preprocess_params, forward_params, postprocess_params

    def preprocess(self, inputs: Any, chunk_length_s: float | None = None, vad: bool = True, **kwargs: Any):
        if not self.is_touchasp:
            yield from super().preprocess(inputs, chunk_length_s=chunk_length_s or 0, **kwargs)
            return
        waveform = self.processor.load_audio(inputs)
        rate = self.processor.feature_extractor.sampling_rate
        chunk_length_s = DEFAULT_CHUNK_LENGTH_S if chunk_length_s is None else chunk_length_s
        if vad and len(waveform) > chunk_length_s * rate * (1 + MIN_TAIL_FRACTION) > 0:
            bounds = vad_bounds(waveform, rate, chunk_length_s, self.speech_regions(waveform, rate, chunk_length_s))
        else:  # one piece when vad is on (the clip is short enough), so the probe runs once
            bounds = [
                (start, end, not vad or self.hears_speech(waveform[start:end], rate))
                for start, end in chunk_bounds(waveform, rate, chunk_length_s)
            ]
        for index, (start, end, is_speech) in enumerate(bounds):
            yield {
                "is_last": index == len(bounds) - 1,
                "timestamp": (round(start / rate, 3), round(end / rate, 3)),
                "is_speech": is_speech,
                **self.processor(audio=waveform[start:end], sampling_rate=rate, return_attention_mask=True).to(
                    dtype=self.dtype
                ),
            }

    def speech_regions(self, waveform: np.ndarray, rate: int, chunk_length_s: float) -> list[tuple[int, int]]:
        """silero-vad's (start, end) sample bounds of speech, each widened by `VAD_SPEECH_PAD_S` and short enough
        to join a chunk with a pause before it."""
        model = self.vad_model()
        from silero_vad import get_speech_timestamps

        regions = get_speech_timestamps(
            torch.from_numpy(waveform), model, sampling_rate=rate,
            max_speech_duration_s=max(chunk_length_s - VAD_MIN_PAUSE_S, chunk_length_s / 2),  # padding included
            speech_pad_ms=int(1000 * VAD_SPEECH_PAD_S),
        )
        return [(region["start"], region["end"]) for region in regions]

    def hears_speech(self, waveform: np.ndarray, rate: int) -> bool:
        """Whether silero-vad's speech probability reaches `VAD_NO_SPEECH_PROBABILITY` in some frame."""
        return peak_speech_probability(self.vad_model(), waveform, rate) >= VAD_NO_SPEECH_PROBABILITY

    def vad_model(self) -> torch.nn.Module:
        """silero-vad's model, loaded on first use."""
        if getattr(self, "_vad_model", None) is None:
            try:
                from silero_vad import load_silero_vad
            except ImportError as error:
                raise ImportError(
                    "vad=True needs silero-vad (pip install silero-vad); or pass vad=False (fixed-length chunks, "
                    "every chunk's text kept)"
                ) from error
            self._vad_model = load_silero_vad()
        return self._vad_model

    def _forward(
        self,
        model_inputs: dict,
        decoder_prompt: list[int] | None = None,
        event_threshold: float | dict[str, float] | None = None,
        **generate_kwargs: Any,
    ) -> dict:
        if not self.is_touchasp:
            return super()._forward(model_inputs, **generate_kwargs)
        features = model_inputs.pop("input_features")
        attention_mask = model_inputs.pop("attention_mask")
        is_last = model_inputs.pop("is_last")
        # Batched inputs (batch_size > 1) arrive collated, `is_last` and `is_speech` lists; the pipeline splits our
        # lists per row.
        heard = model_inputs["is_speech"] if isinstance(is_last, list) else [model_inputs["is_speech"]]
        generate_kwargs["logits_processor"] = LogitsProcessorList(
            [*generate_kwargs.get("logits_processor", []), self.task_grammar]
        )
        generate_kwargs = self._prepare_generate_kwargs(generate_kwargs)
        generate_kwargs.update(return_dict_in_generate=True, output_scores=True)  # the perception needs the scores
        # Where VAD heard no speech the language slot is forced to `nospeech` (a caller's `language` wins), so the
        # other slots and the events follow the model's no-speech prefix; rows with the same prompt share a call.
        if decoder_prompt is not None:
            groups = [(list(range(len(heard))), decoder_prompt)]
        else:
            groups = [([row for row, speech in enumerate(heard) if speech == voiced], prompt)
                      for voiced, prompt in ((True, None), (False, self.no_speech_prompt))]  # fmt: skip
        decoded = [None] * len(heard)
        for rows, prompt in groups:
            if not rows:
                continue
            prompt_kwargs = dict(generate_kwargs)
            if prompt is not None:
                prompt_kwargs["decoder_input_ids"] = torch.tensor([prompt] * len(rows), device=features.device)
            output = self.model.generate(
                input_features=features[rows], attention_mask=attention_mask[rows], **prompt_kwargs
            )
            perceptions = self.processor.decode_perception(
                output.sequences, output.scores, beam_indices=output.get("beam_indices"), event_threshold=event_threshold
            )
            for row, perception in zip(rows, perceptions):
                decoded[row] = perception
        return {"is_last": is_last, "decoded": decoded if isinstance(is_last, list) else decoded[0], **model_inputs}

    def postprocess(
        self, model_outputs: list[dict], return_perception: bool = True, return_timestamps: bool = True, **kwargs: Any
    ) -> dict:
        if not self.is_touchasp:
            return super().postprocess(model_outputs, **kwargs)
        chunks = [
            {"text": output["decoded"]["text"].strip() if output["is_speech"] else "",
             "timestamp": tuple(output["timestamp"])}
            for output in model_outputs
        ]
        result = {"text": join_texts([chunk["text"] for chunk in chunks])}
        if return_perception:
            durations = [end - start for start, end in (chunk["timestamp"] for chunk in chunks)]
            result["perception"] = aggregate_perception(
                [output["decoded"]["perception"] for output in model_outputs], durations,
                [output["is_speech"] for output in model_outputs],
            )
        if return_timestamps:
            result["chunks"] = chunks
        return result


def default_max_new_tokens(config) -> int:
    """`DEFAULT_MAX_NEW_TOKENS`, or fewer where the decoder's learned positions end first (sot + language + tokens)."""
    return min(DEFAULT_MAX_NEW_TOKENS, config.max_target_positions - 2)


def peak_speech_probability(vad_model: torch.nn.Module, waveform: np.ndarray, rate: int) -> float:
    """silero-vad's highest speech probability over the 32 ms frames of `waveform`."""
    return float(vad_model.audio_forward(torch.from_numpy(waveform), rate).max())


def chunk_bounds(waveform: np.ndarray, rate: int, chunk_length_s: float) -> list[tuple[int, int]]:
    """(start, end) sample bounds covering `waveform` in pieces of about `chunk_length_s` (0: one piece).

    Each cut moves back to the quietest frame in the `CUT_SEARCH_S` before its nominal place; a remainder shorter
    than `MIN_TAIL_FRACTION` of a chunk joins the piece before it.
    """
    length = len(waveform)
    chunk = int(chunk_length_s * rate)
    if chunk <= 0 or length <= chunk * (1 + MIN_TAIL_FRACTION):
        return [(0, length)]
    frame = int(_CUT_FRAME_S * rate)
    search = max(min(int(CUT_SEARCH_S * rate), chunk // 4) // frame, 1) * frame
    bounds, start = [], 0
    while length - start > chunk * (1 + MIN_TAIL_FRACTION):
        window = waveform[start + chunk - search : start + chunk].reshape(-1, frame)
        end = start + chunk - search + int(np.argmin(np.square(window).sum(axis=1))) * frame
        bounds.append((start, end))
        start = end
    bounds.append((start, length))
    return bounds


def vad_bounds(
    waveform: np.ndarray, rate: int, chunk_length_s: float, regions: list[tuple[int, int]]
) -> list[tuple[int, int, bool]]:
    """(start, end, is_speech) sample bounds covering `waveform`: speech `regions` (sorted, each shorter than a
    chunk) joined across pauses shorter than `VAD_MIN_PAUSE_S` while within `chunk_length_s`, a short pause staying
    with the speech after it (or before it, at the end); longer pauses on their own, in `chunk_bounds` pieces."""
    min_pause, chunk = int(VAD_MIN_PAUSE_S * rate), int(chunk_length_s * rate)
    bounds: list[list[int]] = []
    speech: list[bool] = []
    cursor = 0
    for start, end in [*regions, (len(waveform), len(waveform))]:
        start = max(start, cursor)
        if start - cursor >= min_pause:
            pieces = chunk_bounds(waveform[cursor:start], rate, chunk_length_s)
            bounds += [[cursor + piece_start, cursor + piece_end] for piece_start, piece_end in pieces]
            speech += [False] * len(pieces)
        elif bounds and start == end:  # the end of the clip after a short pause
            bounds[-1][1] = end
        if start == end:
            break
        if speech and speech[-1] and end - bounds[-1][0] <= chunk:
            bounds[-1][1] = end
        else:
            bounds.append([bounds[-1][1] if bounds else 0, end])
            speech.append(True)
        cursor = end
    return [(start, end, is_speech) for (start, end), is_speech in zip(bounds, speech)]


def join_texts(texts: list[str]) -> str:
    """Join chunk transcripts with a space, except next to Chinese or Japanese characters."""
    joined = ""
    for text in filter(None, texts):
        if joined and not (_is_cjk(joined[-1]) or _is_cjk(text[0])):
            joined += " "
        joined += text
    return joined


def _is_cjk(character: str) -> bool:
    """Chinese and Japanese characters, kana and full-width forms: scripts written without spaces between words."""
    return "\u2e80" <= character <= "\u9fff" or "\uff00" <= character <= "\uffef"


def aggregate_perception(perceptions: list[dict], durations: list[float], is_speech: list[bool] | None = None) -> dict:
    """One perception for a clip decoded in chunks; see `TouchASPPipeline` for the weighting. Language, emotion
    and gender come from the chunks VAD found speech in (`is_speech`), all chunks when it found none; events from
    every chunk."""
    if len(perceptions) == 1:
        return perceptions[0]
    voiced = list(is_speech) if is_speech and any(is_speech) else [True] * len(perceptions)
    weights = [duration * _speech_probability(perception) for duration, perception in zip(durations, perceptions)]
    aggregated = {
        slot: _average_slot([perception[slot] if flag else None for perception, flag in zip(perceptions, voiced)],
                            weights)
        for slot in ("language", "emotion", "gender")
    }
    if all(perception["events"] is None for perception in perceptions):
        aggregated["events"] = None
    else:
        best = {}
        for event in (event for perception in perceptions for event in perception["events"] or []):
            best[event["label"]] = max(event["score"], best.get(event["label"], 0.0))
        aggregated["events"] = [{"label": label, "score": score} for label, score in best.items()]
    return aggregated


def _speech_probability(perception: dict) -> float:
    """1 - P(nospeech) from the chunk's language scores; 1 where the language slot is absent or forced."""
    language = perception["language"]
    return 1.0 - language["scores"].get("nospeech", 0.0) if language else 1.0


def _average_slot(slots: list[dict | None], weights: list[float]) -> dict | None:
    """Weighted mean of the chunks' `scores` (chunks that lack the slot left out), labelled with its argmax."""
    present = [(slot, weight) for slot, weight in zip(slots, weights) if slot is not None]
    if not present:
        return None
    if sum(weight for _, weight in present) <= 0:
        present = [(slot, 1.0) for slot, _ in present]
    total = sum(weight for _, weight in present)
    scores = {}
    for slot, weight in present:
        for label, probability in slot["scores"].items():
            scores[label] = scores.get(label, 0.0) + probability * weight / total
    label = max(scores, key=scores.get)
    result = {"label": label, "score": scores[label], "scores": scores}
    if all(slot.get("forced") for slot, _ in present):
        result["forced"] = True
    return result
