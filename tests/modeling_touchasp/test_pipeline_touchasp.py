"""`pipeline("automatic-speech-recognition")` on a saved tiny TouchASP folder: in this process (package imported)
and in a fresh one that only has transformers and the folder (trust_remote_code)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import soxr
import torch
from transformers import (
    AutoModelForSpeechSeq2Seq,
    AutoProcessor,
    GenerationConfig,
    LogitsProcessorList,
    MinLengthLogitsProcessor,
    pipeline,
)
from transformers.pipelines.automatic_speech_recognition import AutomaticSpeechRecognitionPipeline

import modeling_touchasp
from modeling_touchasp import save_touchasp
from modeling_touchasp.pipeline_touchasp import (
    TouchASPPipeline,
    aggregate_perception,
    chunk_bounds,
    default_max_new_tokens,
    join_texts,
    vad_bounds,
)
from processing.audio import TouchASPInputError
from processing.task_grammar import TaskGrammarLogitsProcessor
from processing.task_tokens import LANGUAGES

ASR = "automatic-speech-recognition"
# Fast enough for a random model, whose greedy output runs to the limit: ~0.2 s per clip here.
MAX_NEW_TOKENS = 12


@pytest.fixture(scope="module")
def asr(tiny_model_dir) -> TouchASPPipeline:
    """The package's pipeline class, which `import modeling_touchasp` registered for the task, on the folder's
    model and processor loaded with the Auto classes."""
    return pipeline(
        ASR,
        model=AutoModelForSpeechSeq2Seq.from_pretrained(tiny_model_dir),
        processor=AutoProcessor.from_pretrained(tiny_model_dir),
        max_new_tokens=MAX_NEW_TOKENS,
    )


def assert_touchasp_output(output: dict, duration_s: float) -> None:
    assert set(output) == {"text", "perception", "chunks"}
    assert isinstance(output["text"], str)
    language = output["perception"]["language"]
    assert language["label"] in LANGUAGES and set(language["scores"]) == set(LANGUAGES)
    assert sum(language["scores"].values()) == pytest.approx(1.0)
    assert output["chunks"][0]["timestamp"][0] == 0.0
    assert output["chunks"][-1]["timestamp"][1] == pytest.approx(duration_s, abs=1e-3)


def assert_same_output(output: dict, expected: dict) -> None:
    """Equal up to float rounding (batched and single matmuls differ in the last bits)."""
    assert output["text"] == expected["text"] and output["chunks"] == expected["chunks"]
    for slot in ("language", "emotion", "gender"):
        assert output["perception"][slot]["label"] == expected["perception"][slot]["label"]
        assert output["perception"][slot]["scores"] == pytest.approx(expected["perception"][slot]["scores"])
    assert [event["label"] for event in output["perception"]["events"]] == [
        event["label"] for event in expected["perception"]["events"]
    ]


def spy_on_generate(asr: TouchASPPipeline, monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """The keyword arguments of every `model.generate` call the pipeline makes from now on."""
    seen = []
    generate = asr.model.generate
    monkeypatch.setattr(asr.model, "generate", lambda **kwargs: seen.append(kwargs) or generate(**kwargs))
    return seen


def test_the_registered_pipeline_class_serves_touchasp(asr):
    assert type(asr) is TouchASPPipeline and asr.is_touchasp


def test_path_array_and_batch_give_text_perception_and_chunks(asr, speech_path, speech):
    from_path = asr(str(speech_path))
    from_array = asr(speech)
    assert_touchasp_output(from_path, len(speech) / 16000)
    assert from_path == from_array  # the wav holds exactly these samples
    assert from_path["chunks"] == [{"text": from_path["text"], "timestamp": (0.0, round(len(speech) / 16000, 3))}]

    batch = asr([str(speech_path), speech[:12000], {"raw": speech, "sampling_rate": 16000}], batch_size=2)
    assert len(batch) == 3
    assert_same_output(batch[0], from_path)
    assert_same_output(batch[2], from_path)
    assert_touchasp_output(batch[1], 12000 / 16000)
    assert_same_output(batch[1], asr(speech[:12000]))  # padding to the longer clip changes nothing


def test_path_16k_array_and_48k_array_agree_within_resampling_tolerance(asr, speech_path, speech):
    """Path and 16 kHz array are the same samples: identical output. The 48 kHz copy comes back through soxr
    (48k -> 16k), whose anti-aliasing transition band changes the top two of the 80 mel bins (nearest 8 kHz) by up
    to ~0.5 after CMVN; the other 78 stay within 0.01 (measured 0.0035), and the language probabilities within
    1e-3 (measured first-step logit change 7e-4), so the labels agree."""
    at_48k = soxr.resample(speech, 16000, 48000)
    features_16k = asr.processor(audio=speech, sampling_rate=16000)["input_features"]
    features_48k = asr.processor(audio=at_48k, sampling_rate=48000)["input_features"]
    assert features_16k.shape == features_48k.shape
    assert (features_16k - features_48k)[..., :78].abs().max() < 0.01

    from_path, from_16k = asr(str(speech_path)), asr(speech)
    from_48k = asr({"array": at_48k, "sampling_rate": 48000})
    assert from_path == from_16k
    scores_16k = from_16k["perception"]["language"]["scores"]
    scores_48k = from_48k["perception"]["language"]["scores"]
    assert max(abs(scores_16k[label] - scores_48k[label]) for label in LANGUAGES) < 1e-3
    assert from_48k["perception"]["language"]["label"] == from_16k["perception"]["language"]["label"]
    assert from_48k["chunks"][0]["timestamp"] == from_16k["chunks"][0]["timestamp"]


def test_num_experts_per_tok_reaches_generate_and_changes_the_scores(asr, speech, monkeypatch):
    seen = spy_on_generate(asr, monkeypatch)
    one = asr(speech, num_experts_per_tok=1)
    four = asr(speech, num_experts_per_tok=4)
    assert [kwargs["num_experts_per_tok"] for kwargs in seen] == [1, 4]
    assert one["perception"]["language"]["scores"] != four["perception"]["language"]["scores"]


def test_ctc_transcripts_keep_the_decoders_perception(asr, speech):
    attention = asr(speech, language="en")
    ctc = asr(speech, language="en", transcript_decoding="ctc")
    assert set(ctc) == {"text", "perception", "chunks"} and ctc["chunks"][0]["text"] == ctc["text"]
    for slot in ("language", "emotion", "gender"):
        assert ctc["perception"][slot] == attention["perception"][slot]
    features = asr.processor.feature_extractor(speech, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        encoded = asr.model.get_encoder()(features["input_features"])
        path = torch.unique_consecutive(asr.model.ctc_head(encoded.last_hidden_state)[0].argmax(-1)).tolist()
    expected = asr.processor.tokenizer.decode([token for token in path if token != 0], skip_special_tokens=True)
    assert ctc["text"] == expected.strip() and ctc["text"] != attention["text"]


def test_language_forces_the_first_slot(asr, speech, monkeypatch):
    seen = spy_on_generate(asr, monkeypatch)
    output = asr([speech, speech], language="en", batch_size=2)[0]
    assert seen[0]["decoder_input_ids"].tolist() == [asr.processor.decoder_prompt("en")] * 2
    assert output["perception"]["language"] == {"label": "en", "score": 1.0, "scores": {"en": 1.0}, "forced": True}
    assert output["perception"]["emotion"] is not None
    with pytest.raises(ValueError, match="unknown language label 'klingon'"):
        asr(speech, language="klingon")


def test_generation_is_constrained_by_the_task_grammar_alongside_a_callers_processors(asr, speech, monkeypatch):
    seen = spy_on_generate(asr, monkeypatch)
    mine = MinLengthLogitsProcessor(3, eos_token_id=asr.model.config.eos_token_id)
    output = asr(speech, generate_kwargs={"logits_processor": LogitsProcessorList([mine]), "output_scores": True})
    assert list(seen[0]["logits_processor"]) == [mine, asr.task_grammar]
    assert isinstance(asr.task_grammar, TaskGrammarLogitsProcessor)
    assert output["perception"]["language"]["label"] in LANGUAGES


def test_defaults_are_greedy_and_bounded_not_the_stock_five_beams(tiny_model_dir, speech, monkeypatch):
    model = AutoModelForSpeechSeq2Seq.from_pretrained(tiny_model_dir)
    model.generation_config = GenerationConfig.from_model_config(model.config)  # sets neither beams nor length
    asr = pipeline(ASR, model=model, processor=AutoProcessor.from_pretrained(tiny_model_dir))
    seen = spy_on_generate(asr, monkeypatch)
    asr(speech)
    assert seen[0]["num_beams"] == 1
    assert seen[0]["max_new_tokens"] == default_max_new_tokens(model.config) == 126  # 128 positions - prompt


def test_a_saved_folder_keeps_the_models_beam_width_as_the_pipelines_default(
    tiny_model_dir, tiny_processor, speech, tmp_path, monkeypatch
):
    model = AutoModelForSpeechSeq2Seq.from_pretrained(tiny_model_dir)
    model.generation_config.num_beams = 3
    save_touchasp(model, tiny_processor, tmp_path)
    assert json.loads((tmp_path / "generation_config.json").read_text())["num_beams"] == 3
    asr = pipeline(ASR, model=str(tmp_path), trust_remote_code=True)
    seen = spy_on_generate(asr, monkeypatch)
    asr(speech)
    assert asr.model.generation_config.num_beams == 3 and "num_beams" not in seen[0]  # generate falls back to it


def test_perception_can_be_left_out_and_beam_search_works(asr, speech):
    assert set(asr(speech, return_perception=False)) == {"text", "chunks"}
    assert asr(speech, num_beams=2)["perception"]["language"]["label"] in LANGUAGES


def test_return_timestamps_as_whisper_users_pass_it(asr, speech):
    # The stock pipeline's argument must not leak into generate(); the timestamps are the chunks'.
    assert set(asr(speech, return_timestamps=False)) == {"text", "perception"}
    assert asr(speech, return_timestamps=True)["chunks"] == asr(speech)["chunks"]
    with pytest.raises(ValueError, match="times whole chunks"):
        asr(speech, return_timestamps="word")


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_other_sampling_rates_are_resampled(asr, speech, rate):
    output = asr({"raw": soxr.resample(speech, 16000, rate), "sampling_rate": rate})
    assert_touchasp_output(output, len(speech) / 16000)


def test_stereo_is_mixed_down(asr, speech, tmp_path):
    stereo = np.stack([speech, speech], axis=1)
    path = tmp_path / "stereo.flac"
    soundfile.write(path, stereo, 16000)
    assert asr(stereo)["perception"] == asr(speech)["perception"]
    assert_touchasp_output(asr(str(path)), len(speech) / 16000)


def test_silence_returns_without_error(asr):
    assert_touchasp_output(asr(np.zeros(16000, dtype=np.float32), vad=False), 1.0)


@pytest.mark.parametrize("kind", ["zeros", "faint noise"])
def test_a_clip_without_speech_is_decoded_as_no_speech_unless_vad_is_off(asr, speech, kind, monkeypatch):
    """The random model writes text and any language for anything; where VAD hears no speech the language slot
    is forced to `nospeech` (so emotion and gender are unknown, by the task grammar) and no text is kept."""
    audio = np.random.default_rng(0).normal(0, 0.001 if kind == "faint noise" else 0, 3 * 16000).astype(np.float32)
    seen = spy_on_generate(asr, monkeypatch)
    heard = asr(audio)
    assert seen[0]["decoder_input_ids"].tolist() == [asr.processor.decoder_prompt("nospeech")]
    assert heard["text"] == "" and heard["chunks"] == [{"text": "", "timestamp": (0.0, 3.0)}]
    perception = heard["perception"]
    assert perception["language"] == {"label": "nospeech", "score": 1.0, "scores": {"nospeech": 1.0}, "forced": True}
    assert (perception["emotion"]["label"], perception["gender"]["label"]) == ("EMO_UNKNOWN", "gender_unknown")
    assert asr(audio, language="en")["perception"]["language"]["label"] == "en"  # the caller's language wins
    unheard = asr(audio, vad=False)
    assert unheard["text"] and unheard["perception"]["language"]["label"] != "nospeech"
    assert asr(speech)["text"]


@pytest.mark.parametrize("suffix", ["flac", "ogg", "mp3"])
def test_encoded_files_and_their_bytes_are_decoded(asr, speech_path, tmp_path, suffix):
    path = tmp_path / f"speech.{suffix}"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(speech_path), str(path)], check=True)
    output = asr(str(path))
    assert set(output) == {"text", "perception", "chunks"}
    assert output["perception"]["language"]["label"] in LANGUAGES
    assert asr(path.read_bytes()) == output
    if suffix == "flac":  # lossless
        assert output == asr(str(speech_path))


def bad_inputs(tmp_path):
    text_file = tmp_path / "notes.wav"
    text_file.write_text("not audio")
    one_inf = np.zeros(16000, dtype=np.float32)
    one_inf[8000] = np.inf
    return {
        "empty": (np.zeros(0, dtype=np.float32), r"array input\) is empty"),
        "one sample": (np.zeros(1, dtype=np.float32), r"array input\) is too short"),
        "nan": (np.full(16000, np.nan, dtype=np.float32), r"array input\) contains NaN"),
        "inf": (one_inf, r"array input\) contains NaN or infinite samples \(first at sample 8000"),
        "3-D": (np.zeros((2, 2, 16000), dtype=np.float32), r"array input\) has 3 dimensions"),
        "corrupt bytes": (b"RIFF\x00\x00garbage" * 10, r"bytes input\) is not a readable audio file"),
        "text file named .wav": (str(text_file), f"audio at {text_file} is not a readable audio file"),
        "missing path": (str(tmp_path / "missing.wav"), f"audio at {tmp_path / 'missing.wav'} not found"),
    }


@pytest.mark.parametrize(
    "case", ["empty", "one sample", "nan", "inf", "3-D", "corrupt bytes", "text file named .wav", "missing path"]
)
def test_bad_input_raises_an_error_naming_it(asr, tmp_path, case):
    audio, message = bad_inputs(tmp_path)[case]
    with pytest.raises(TouchASPInputError, match=message):
        asr(audio)


def test_chunk_bounds_cut_at_quiet_frames_and_merge_a_short_tail():
    rate = 16000
    waveform = np.ones(65 * rate, dtype=np.float32)
    waveform[int(29.5 * rate) : int(29.5 * rate) + 400] = 0.0  # a quiet 25 ms frame just before 30 s
    assert chunk_bounds(waveform, rate, 30) == [(0, int(29.5 * rate)), (int(29.5 * rate), 65 * rate)]  # 5 s tail
    bounds = chunk_bounds(np.ones(70 * rate, dtype=np.float32), rate, 30)  # loud throughout: cut 2 s early
    assert bounds == [(0, 28 * rate), (28 * rate, 56 * rate), (56 * rate, 70 * rate)]
    assert chunk_bounds(waveform, rate, 0) == [(0, len(waveform))]


def test_join_texts_puts_spaces_between_words_but_not_between_cjk():
    assert join_texts(["hello", "world", "", "今天", "天气", "ok"]) == "hello world今天天气ok"


def test_chunk_perceptions_are_averaged_by_duration_times_speech_probability():
    speech = {
        "language": {"label": "en", "score": 0.9, "scores": {"en": 0.9, "nospeech": 0.1}},
        "emotion": {"label": "SAD", "score": 1.0, "scores": {"SAD": 1.0}},
        "gender": None,
        "events": [{"label": "Speech", "score": 0.7}],
    }
    silence = {
        "language": {"label": "nospeech", "score": 0.95, "scores": {"nospeech": 0.95, "zh": 0.05}},
        "emotion": None,
        "gender": None,
        "events": [{"label": "Speech", "score": 0.9}, {"label": "Silence", "score": 0.8}],
    }
    perception = aggregate_perception([speech, silence], durations=[10.0, 20.0])  # weights 9 and 1
    assert perception["language"]["label"] == "en"
    assert perception["language"]["scores"] == pytest.approx({"en": 0.81, "nospeech": 0.09 + 0.095, "zh": 0.005})
    assert perception["emotion"]["label"] == "SAD" and perception["gender"] is None
    assert perception["events"] == [{"label": "Speech", "score": 0.9}, {"label": "Silence", "score": 0.8}]
    certain_silence = {**silence, "language": {"label": "nospeech", "score": 1.0, "scores": {"nospeech": 1.0}}}
    assert aggregate_perception([certain_silence] * 2, [1.0, 1.0])["language"]["label"] == "nospeech"
    # With VAD's flags only the speech chunk speaks for the slots; events still come from every chunk.
    flagged = aggregate_perception([speech, silence], [10.0, 20.0], [True, False])
    assert flagged["language"]["scores"] == pytest.approx({"en": 0.9, "nospeech": 0.1})
    assert flagged["events"] == perception["events"]
    assert aggregate_perception([speech, silence], [10.0, 20.0], [False, False]) == perception  # VAD found none


def test_vad_bounds_keep_speech_apart_from_long_pauses_and_cover_the_clip():
    rate, second = 16000, 16000
    waveform = np.ones(100 * rate, dtype=np.float32)
    regions = [(int(0.5 * second), 3 * second), (int(3.5 * second), 6 * second),  # a 0.5 s pause: joined
               (50 * second, 55 * second), (int(55.5 * second), 70 * second),  # joined, 20 s < 30 s
               (int(70.5 * second), 90 * second)]  # joining would pass 30 s: apart, with its short pause
    assert vad_bounds(waveform, rate, 30, regions) == [
        (0, 6 * second, True),  # the 0.5 s before the first region stays with it
        (6 * second, 34 * second, False), (34 * second, 50 * second, False),  # 44 s without speech: 2 pieces
        (50 * second, 70 * second, True), (70 * second, 90 * second, True), (90 * second, 100 * second, False),
    ]
    short_tail = vad_bounds(waveform, rate, 30, [(75 * second, int(99.5 * second))])
    assert short_tail == [(0, 28 * second, False), (28 * second, 56 * second, False), (56 * second, 75 * second, False),
                          (75 * second, 100 * second, True)]  # the last 0.5 s stays with the speech before it
    assert vad_bounds(waveform, rate, 30, []) == [(*bound, False) for bound in chunk_bounds(waveform, rate, 30)]


def test_long_audio_is_cut_at_speech_by_vad(asr, speech, monkeypatch):
    """Two utterances 40 s apart over faint noise: each is decoded on its own, not inside a 30 s chunk of noise
    (the trained model loses its words there), and the pauses are decoded too, for their sound events."""
    seen = spy_on_generate(asr, monkeypatch)
    rate = 16000
    audio = np.random.default_rng(0).normal(0, 0.001, 84 * rate).astype(np.float32)
    for start in (40 * rate, 82 * rate):
        audio[start : start + len(speech)] += speech
    output = asr(audio)
    bounds = [chunk["timestamp"] for chunk in output["chunks"]]
    assert bounds[0][0] == 0.0 and bounds[-1][1] == 84.0 and all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    speech_s = len(speech) / rate
    voiced = [(a, b) for a, b in bounds if any(a <= start + speech_s / 2 <= b for start in (40.0, 82.0))]
    assert len(voiced) == 2 and all(b - a < speech_s + 2 * 1.0 for a, b in voiced)  # speech, a pause at most
    # The random model writes text everywhere; only the speech chunks' is kept.
    assert all(bool(chunk["text"]) == (chunk["timestamp"] in voiced) for chunk in output["chunks"])
    assert all(b - a <= 30 for a, b in bounds) and len(seen) == len(bounds)
    # Pauses are decoded as no speech; batched, speech and pause rows go to `generate` apart and come back in order.
    prompts = [kwargs.get("decoder_input_ids") for kwargs in seen]
    assert [prompt is None for prompt in prompts] == [chunk["timestamp"] in voiced for chunk in output["chunks"]]
    assert_same_output(asr(audio, batch_size=8), output)
    assert len(seen) == len(bounds) + 2  # one batch of each kind
    assert len(asr(audio, max_new_tokens=2, vad=False)["chunks"]) == 3  # fixed chunks of 28-30 s


def test_ten_minutes_are_decoded_in_chunks_that_bound_what_the_model_sees(asr, speech, monkeypatch):
    """Speech every 10 s over faint noise, 30 s chunks: the model never gets more than 1.25 chunks of features
    at once, so memory does not grow with the length of the audio (about 3 s on 2 cores)."""
    seen = spy_on_generate(asr, monkeypatch)
    rate, total = 16000, 10 * 60 * 16000
    audio = np.random.default_rng(0).normal(0, 0.001, total).astype(np.float32)
    for start in range(0, total - len(speech), 10 * rate):
        audio[start : start + len(speech)] += speech
    output = asr(audio, chunk_length_s=30, max_new_tokens=2, vad=False)
    starts = [chunk["timestamp"][0] for chunk in output["chunks"]]
    ends = [chunk["timestamp"][1] for chunk in output["chunks"]]
    assert len(output["chunks"]) in (20, 21)  # each cut may move up to 2 s earlier, to a quiet frame
    assert starts[0] == 0.0 and ends[-1] == 600.0 and starts[1:] == ends[:-1]
    assert all(28 <= end - start <= 30 for start, end in zip(starts[:-1], ends[:-1]))
    assert 30 * 0.25 <= ends[-1] - starts[-1] <= 30 * 1.25  # a tail under a quarter chunk joins the last one
    frames = [kwargs["input_features"].shape[1] for kwargs in seen]
    assert len(frames) == len(output["chunks"]) and max(frames) <= 30 * 1.25 * 100  # 100 frames per second
    assert sum(output["perception"]["language"]["scores"].values()) == pytest.approx(1.0)


def test_processor_reloads_with_auto_processor(tiny_model_dir, tiny_processor, speech):
    reloaded = AutoProcessor.from_pretrained(tiny_model_dir)
    assert type(reloaded) is type(tiny_processor)
    assert reloaded.tokenizer.get_vocab() == tiny_processor.tokenizer.get_vocab()
    inputs = dict(audio=speech, sampling_rate=16000, text="hello 世界", language="zh", events=["Speech"])
    for key, value in tiny_processor(**inputs).items():
        assert torch.equal(reloaded(**inputs)[key], value), key


def test_saved_folder_names_every_auto_class_and_the_pipeline(tiny_model_dir):
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert set(config["auto_map"]) == {
        "AutoConfig", "AutoModel", "AutoModelForSpeechSeq2Seq", "AutoProcessor", "AutoFeatureExtractor",
        "AutoTokenizer",
    }  # fmt: skip
    assert config["custom_pipelines"][ASR]["impl"] == "pipeline_touchasp.TouchASPPipeline"
    generation = json.loads((tiny_model_dir / "generation_config.json").read_text())
    assert generation["num_beams"] == 1 and generation["max_new_tokens"] <= 128
    for code in ("modeling_touchasp.py", "pipeline_touchasp.py", "processing_touchasp.py", "audio.py"):
        assert (tiny_model_dir / code).is_file()


def test_folder_path_with_trust_remote_code_matches_the_package_pipeline(asr, tiny_model_dir, speech):
    from_folder = pipeline(ASR, model=str(tiny_model_dir), trust_remote_code=True, max_new_tokens=MAX_NEW_TOKENS)
    assert from_folder(speech) == asr(speech)


def test_folder_path_without_trust_remote_code_uses_the_registered_pipeline(tiny_model_dir):
    assert type(pipeline(ASR, model=str(tiny_model_dir))) is TouchASPPipeline


FRESH_PROCESS = """
import json, sys
import soundfile
from transformers import pipeline

asr = pipeline("automatic-speech-recognition", model=sys.argv[1], trust_remote_code=True, max_new_tokens={tokens})
samples, _ = soundfile.read(sys.argv[2], dtype="float32")
output = {{"from_path": asr(sys.argv[2]), "from_array": asr(samples)}}
packages = [name for name in ("modeling_touchasp", "processing") if name in sys.modules]
print(json.dumps({{"output": output, "class": type(asr).__module__, "packages": packages}}))
"""


def test_a_fresh_process_without_the_package_gives_the_same_output(asr, tiny_model_dir, speech_path, tmp_path):
    repository = os.path.dirname(os.path.dirname(modeling_touchasp.__file__))
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            path for path in os.environ.get("PYTHONPATH", "").split(os.pathsep) if path and path != repository
        ),
        "HF_HUB_OFFLINE": "1",
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
    }
    completed = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS.format(tokens=MAX_NEW_TOKENS), str(tiny_model_dir), str(speech_path)],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["class"].startswith("transformers_modules.") and result["packages"] == []
    expected = json.loads(json.dumps(asr(str(speech_path))))  # tuples -> lists, as JSON carries them
    for output in result["output"].values():
        assert_same_output(output, expected)


def test_other_asr_models_keep_the_stock_behaviour(speech, tmp_path):
    """The registered class hands non-TouchASP models to the stock pipeline (a tiny random wav2vec2 CTC here)."""
    from transformers import Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

    vocabulary = tmp_path / "vocab.json"
    vocabulary.write_text(json.dumps({"<pad>": 0, "<unk>": 1, "|": 2, "a": 3, "b": 4, "c": 5}))
    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(
        Wav2Vec2Config(
            vocab_size=6, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
            conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 8), num_feat_extract_layers=2,
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        )
    ).eval()  # fmt: skip
    parts = dict(tokenizer=Wav2Vec2CTCTokenizer(str(vocabulary)), feature_extractor=Wav2Vec2FeatureExtractor())
    registered = pipeline(ASR, model=model, **parts)
    stock = AutomaticSpeechRecognitionPipeline(model=model, **parts)
    assert type(registered) is TouchASPPipeline and registered.type == stock.type == "ctc"
    assert registered(speech) == stock(speech)
