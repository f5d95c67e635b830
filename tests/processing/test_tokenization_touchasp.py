"""The TouchASP tokenizer: SentencePiece unigram + task tokens, as a Transformers fast tokenizer."""

import random

import pytest
import sentencepiece
from transformers import AutoTokenizer

from processing.task_tokens import (
    ALL_SPECIAL_TOKENS,
    EVENTS,
    SLOT_TOKENS,
    emotion_token,
    event_token,
    gender_token,
    language_token,
)
from processing.tokenization_touchasp import SENTENCEPIECE_MODEL_FILE, TouchASPTokenizer, train_tokenizer

MIXED_TEXT = "今天天气很好 hello world 123, OK? 我们去 Beijing 吧"
# Characters the tiny training corpus never shows: they must round-trip through byte fallback.
UNSEEN_TEXT = "鳄鱼 𠀋 Ωmega café，「引号」 😀 tab\tnew\nline  two  spaces "

SEGMENTATION_TEXTS = [
    MIXED_TEXT,
    "the weather is nice today",
    "我们明天去上海开会",
    "speech recognition 语音识别 model 模型 2024",
    "привет мир hello",
    "  leading and trailing spaces  ",
]


def make_corpus(num_lines: int = 400, seed: int = 0) -> list[str]:
    """Mixed Chinese/English/Russian lines, a few hundred, so training takes about a second."""
    rng = random.Random(seed)
    english = "the cat sat on mat hello world speech recognition model today weather is nice we go to good".split()
    chinese = "今天 天气 很好 我们 去 北京 吧 你好 世界 语音 识别 模型 训练 数据 明天 开会 上海 谢谢".split()
    russian = "привет мир как дела".split()
    lines = []
    for _ in range(num_lines):
        words = rng.choices(english, k=rng.randint(2, 6)) + rng.choices(chinese, k=rng.randint(1, 5))
        if rng.random() < 0.2:
            words += rng.choices(russian, k=2)
        rng.shuffle(words)
        lines.append(" ".join(words) + rng.choice(["", ".", "?", " 123", ",OK"]))
    return lines


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("touchasp_tokenizer")
    train_tokenizer(make_corpus(), out_dir, vocab_size=600)
    return out_dir


@pytest.fixture(scope="module")
def tokenizer(trained_dir):
    return TouchASPTokenizer.from_pretrained(trained_dir)


@pytest.mark.parametrize("text", [MIXED_TEXT, UNSEEN_TEXT])
def test_decode_of_encode_gives_the_text_back(tokenizer, text):
    ids = tokenizer.encode_transcript(text)
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text


def test_unseen_characters_fall_back_to_bytes(tokenizer):
    assert "<0xF0>" in tokenizer.convert_ids_to_tokens(tokenizer.encode_transcript("😀"))


def test_every_special_token_is_one_id_in_the_documented_order(tokenizer):
    for expected_id, token in enumerate(ALL_SPECIAL_TOKENS):
        assert tokenizer.encode(token, add_special_tokens=False) == [expected_id], token
    assert (tokenizer.pad_token_id, tokenizer.unk_token_id) == (0, 1)
    assert tokenizer.sot_token_id == tokenizer.bos_token_id == 2
    assert tokenizer.eot_token_id == tokenizer.eos_token_id == 3
    assert tokenizer.transcribe_token_id == ALL_SPECIAL_TOKENS.index("<|transcribe|>")
    assert tokenizer.end_events_token_id == ALL_SPECIAL_TOKENS.index("<|/events|>")
    assert sorted(tokenizer.all_special_ids) == list(range(len(ALL_SPECIAL_TOKENS)))


def test_slot_token_ids_follow_slot_order(tokenizer):
    for slot, tokens in SLOT_TOKENS.items():
        assert tokenizer.slot_token_ids(slot) == [ALL_SPECIAL_TOKENS.index(token) for token in tokens]
    assert len(tokenizer.slot_token_ids("events")) == len(EVENTS)
    with pytest.raises(ValueError, match="'speaker'.*language, emotion, gender, events"):
        tokenizer.slot_token_ids("speaker")


def test_a_decoder_target_decodes_to_its_transcript_without_task_tokens(tokenizer):
    prompt = [
        "<|sot|>",
        language_token("zh"),
        emotion_token("HAPPY"),
        gender_token("female"),
        event_token("Speech"),
        event_token("Crying, sobbing"),
        "<|/events|>",
        "<|transcribe|>",
    ]
    ids = tokenizer.convert_tokens_to_ids(prompt) + tokenizer.encode_transcript(MIXED_TEXT) + [tokenizer.eot_token_id]
    assert tokenizer.decode(ids, skip_special_tokens=True) == MIXED_TEXT
    assert tokenizer.encode("".join(prompt) + MIXED_TEXT + "<|eot|>", add_special_tokens=False) == ids
    assert "<|zh|><|HAPPY|><|female|><|Speech|><|Crying, sobbing|>" in tokenizer.decode(ids)


def test_save_and_reload_give_identical_ids(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    own_class = TouchASPTokenizer.from_pretrained(tmp_path)
    auto = AutoTokenizer.from_pretrained(tmp_path)
    assert isinstance(own_class, TouchASPTokenizer)
    text = "".join(ALL_SPECIAL_TOKENS[2:10]) + MIXED_TEXT + UNSEEN_TEXT
    for reloaded in (own_class, auto):
        assert reloaded.encode(text) == tokenizer.encode(text)
        assert reloaded.get_vocab() == tokenizer.get_vocab()
        assert reloaded.all_special_tokens == tokenizer.all_special_tokens
        assert (reloaded.pad_token_id, reloaded.bos_token_id, reloaded.eos_token_id) == (0, 2, 3)


@pytest.mark.parametrize("text", SEGMENTATION_TEXTS + [UNSEEN_TEXT])
def test_fast_segmentation_equals_sentencepiece(tokenizer, trained_dir, text):
    processor = sentencepiece.SentencePieceProcessor(model_file=str(trained_dir / SENTENCEPIECE_MODEL_FILE))
    assert tokenizer.encode_transcript(text) == processor.encode(text)


def test_corpus_learns_multi_character_pieces(tokenizer):
    pieces = tokenizer.convert_ids_to_tokens(tokenizer.encode_transcript("hello world 天气"))
    assert any(len(piece.lstrip("▁")) > 1 for piece in pieces), pieces


def test_vocab_size_is_an_upper_bound_for_tiny_corpora(tmp_path):
    tokenizer = train_tokenizer(["hello world", "你好 世界"] * 5, tmp_path, vocab_size=5000)
    assert len(ALL_SPECIAL_TOKENS) + 256 < len(tokenizer) < 5000
    assert tokenizer.decode(tokenizer.encode_transcript("hello 世界")) == "hello 世界"


def test_vocab_size_too_small_names_the_minimum(tmp_path):
    minimum = len(ALL_SPECIAL_TOKENS) + 256
    with pytest.raises(ValueError, match=f"vocab_size > {minimum}"):
        train_tokenizer(["hello world"], tmp_path, vocab_size=minimum)
