"""TouchASP tokenizer: a SentencePiece unigram model over transcripts plus the task tokens, as a fast tokenizer.

The SentencePiece model is trained here and converted to a `tokenizer.json` (no custom code needed to load
it). Ids 0..len(ALL_SPECIAL_TOKENS)-1 are the task tokens in `ALL_SPECIAL_TOKENS` order (pad=0, unk=1,
sot=2, eot=3), then the 256 byte pieces, then the learned pieces.
"""

import io
import os
from collections.abc import Iterable

import sentencepiece
from transformers import PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import SpmConverter, import_protobuf

from .task_tokens import ALL_SPECIAL_TOKENS, END_EVENTS, EOT, PAD, SLOT_TOKENS, SOT, TRANSCRIBE, UNK

# The trained SentencePiece model, kept beside tokenizer.json so the conversion can be checked against it.
# Not "tokenizer.model": Transformers would read that name as a vocabulary file to convert.
SENTENCEPIECE_MODEL_FILE = "sentencepiece.model"

_NUM_BYTE_PIECES = 256


class TouchASPTokenizer(PreTrainedTokenizerFast):
    """Fast tokenizer whose special tokens are the task tokens of `task_tokens.ALL_SPECIAL_TOKENS`.

    Build one with `train_tokenizer`, or from a trained SentencePiece model with `from_sentencepiece`;
    reload a saved one with `TouchASPTokenizer.from_pretrained(dir)` or `AutoTokenizer.from_pretrained(dir)`.
    """

    @classmethod
    def from_sentencepiece(cls, model_proto: bytes) -> "TouchASPTokenizer":
        """Converts a serialized SentencePiece unigram model trained by `train_tokenizer`."""
        proto = import_protobuf().ModelProto()
        proto.ParseFromString(model_proto)
        leading_pieces = tuple(piece.piece for piece in proto.pieces[: len(ALL_SPECIAL_TOKENS)])
        if leading_pieces != ALL_SPECIAL_TOKENS:
            raise ValueError(
                "the SentencePiece model does not start with the TouchASP task tokens in ALL_SPECIAL_TOKENS order; "
                "train it with train_tokenizer"
            )
        # Not `SpmConverter(...).converted()`: that path drops byte fallback, so unseen characters would
        # become <unk>. This builder follows the model's own normalizer spec and keeps byte fallback.
        backend = SpmConverter.build_tokenizer_from_spm_proto(
            proto=proto, vocab=[(piece.piece, piece.score) for piece in proto.pieces]
        )
        return cls(
            tokenizer_object=backend,
            pad_token=PAD,
            unk_token=UNK,
            bos_token=SOT,
            eos_token=EOT,
            extra_special_tokens=list(ALL_SPECIAL_TOKENS[4:]),
        )

    @property
    def sot_token_id(self) -> int:
        return self.convert_tokens_to_ids(SOT)

    @property
    def eot_token_id(self) -> int:
        return self.convert_tokens_to_ids(EOT)

    @property
    def transcribe_token_id(self) -> int:
        return self.convert_tokens_to_ids(TRANSCRIBE)

    @property
    def end_events_token_id(self) -> int:
        return self.convert_tokens_to_ids(END_EVENTS)

    def slot_token_ids(self, slot: str) -> list[int]:
        """Ids of one slot's tokens (`"language"`, `"emotion"`, `"gender"` or `"events"`) in `SLOT_TOKENS` order."""
        if slot not in SLOT_TOKENS:
            raise ValueError(f"unknown slot {slot!r}; slots are: {', '.join(SLOT_TOKENS)}")
        return self.convert_tokens_to_ids(list(SLOT_TOKENS[slot]))

    def encode_transcript(self, text: str) -> list[int]:
        """Ids of a transcript alone, without task tokens, as they follow `<|transcribe|>` in a target."""
        return self.encode(text, add_special_tokens=False)


def train_tokenizer(
    texts: Iterable[str],
    out_dir: str | os.PathLike,
    vocab_size: int = 1000,
    character_coverage: float = 0.9995,
) -> TouchASPTokenizer:
    """Trains a SentencePiece unigram model on transcripts and saves the TouchASP tokenizer to `out_dir`.

    `vocab_size` counts everything: the task tokens, 256 byte pieces and the learned pieces. It is an upper
    bound (SentencePiece's `hard_vocab_limit=False`): a corpus too small for it yields a smaller vocabulary
    instead of an error. Byte fallback means any character, seen in training or not, round-trips.
    Writes `tokenizer.json`, `tokenizer_config.json` and the SentencePiece model `sentencepiece.model`.
    """
    reserved = len(ALL_SPECIAL_TOKENS) + _NUM_BYTE_PIECES
    if vocab_size <= reserved:
        raise ValueError(
            f"vocab_size={vocab_size} leaves no room for learned pieces: {len(ALL_SPECIAL_TOKENS)} task tokens and "
            f"{_NUM_BYTE_PIECES} byte pieces are reserved, so use vocab_size > {reserved}"
        )
    model = io.BytesIO()
    try:
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_writer=model,
            model_type="unigram",
            vocab_size=vocab_size,
            hard_vocab_limit=False,
            character_coverage=character_coverage,
            byte_fallback=True,
            # Lossless: the tokenizer never rewrites a transcript (no NFKC, no whitespace collapsing), so
            # decode(encode(text)) == text. Normalisation for scoring happens elsewhere.
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            pad_id=0,
            unk_id=1,
            bos_id=2,
            eos_id=3,
            pad_piece=PAD,
            unk_piece=UNK,
            bos_piece=SOT,
            eos_piece=EOT,
            # Control symbols take the ids right after the four above, in this order, and never come
            # out of SentencePiece's segmentation of plain text.
            control_symbols=list(ALL_SPECIAL_TOKENS[4:]),
            minloglevel=2,
        )
    except RuntimeError as error:
        raise ValueError(f"SentencePiece could not train a tokenizer with vocab_size={vocab_size}: {error}") from error
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, SENTENCEPIECE_MODEL_FILE), "wb") as file:
        file.write(model.getvalue())
    tokenizer = TouchASPTokenizer.from_sentencepiece(model.getvalue())
    tokenizer.save_pretrained(out_dir)
    return tokenizer
