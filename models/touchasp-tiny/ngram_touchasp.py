"""A token trigram language model for CTC prefix beam search (shallow fusion), as WeNet and Transformers'
`Wav2Vec2ProcessorWithLM` decode CTC with an n-gram: text alone tells apart what the audio cannot, such as Mandarin
homophones (想/像) and English spellings. It counts the tokenizer's own ids, so one model covers every language and
needs no word segmentation. Interpolated absolute discounting with Kneser-Ney continuation unigrams; the counts are
kept in `ngram_lm.safetensors` beside the weights (`TouchASPForConditionalGeneration.from_pretrained` loads it)."""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

NGRAM_LM_FILE = "ngram_lm.safetensors"
CACHE_SIZE = 1_000_000  # log-probabilities kept for reuse across beam-search steps (about 150 MB at most)


class TokenNgramLM:
    """P(token | two previous tokens) over ids 0..vocab_size-1 and the sentence end `end_id` (= vocab_size); the
    start of a sentence is the context id `start_id` (= vocab_size + 1).

    `trigrams` {(a, b, c): count} and `bigrams` {(a, b): count}; `discount` is subtracted from every seen count and
    spread over the lower order, so each context's probabilities sum to 1 over the vocabulary and the end."""

    def __init__(
        self, trigrams: dict[tuple[int, int, int], int], bigrams: dict[tuple[int, int], int], vocab_size: int,
        discount: float = 0.75,
    ):
        if not 0.0 < discount < 1.0:
            raise ValueError(f"discount={discount}; expected a number between 0 and 1")
        self.vocab_size, self.discount = vocab_size, discount
        self.end_id, self.start_id = vocab_size, vocab_size + 1
        self._trigram, self._bigram = trigrams, bigrams
        self._context2, self._context1 = _context_totals(self._trigram), _context_totals(self._bigram)
        continuation = Counter(b for _, b in self._bigram)
        # Kneser-Ney unigram: how many distinct tokens precede a token, add-half smoothed over vocabulary + end.
        denominator = len(self._bigram) + 0.5 * (vocab_size + 1)
        self._unigram = {token: (count + 0.5) / denominator for token, count in continuation.items()}
        self._unseen_unigram = 0.5 / denominator
        self._cache: dict[tuple[int, int, int], float] = {}

    @classmethod
    def from_sequences(
        cls, sequences: Iterable[Sequence[int]], vocab_size: int, min_trigram_count: int = 2, discount: float = 0.75
    ) -> TokenNgramLM:
        """Count the token-id `sequences` (one sentence each, no special tokens). Trigrams seen fewer than
        `min_trigram_count` times are pruned (their contexts back off to bigrams), which keeps the file small."""
        trigrams, bigrams = Counter(), Counter()
        end, start = vocab_size, vocab_size + 1
        for sequence in sequences:
            ids = [start, start, *sequence, end]
            if any(not 0 <= token < vocab_size for token in sequence):
                raise ValueError(f"token ids must lie in 0..{vocab_size - 1}; got {list(sequence)}")
            bigrams.update(zip(ids[1:], ids[2:]))
            trigrams.update(zip(ids, ids[1:], ids[2:]))
        if not bigrams:
            raise ValueError("no sentences to count: the language model needs text")
        kept = {key: count for key, count in trigrams.items() if count >= min_trigram_count}
        return cls(kept, dict(bigrams), vocab_size, discount)

    @property
    def num_trigrams(self) -> int:
        return len(self._trigram)

    @property
    def num_bigrams(self) -> int:
        return len(self._bigram)

    def log_prob(self, context: Sequence[int], token: int) -> float:
        """Natural log P(token | the last two ids of `context`, padded with the start id)."""
        a, b = ([self.start_id, self.start_id, *context[-2:]])[-2:]
        key = (a, b, token)
        if key not in self._cache:
            if len(self._cache) >= CACHE_SIZE:  # a long-lived model decodes for hours: keep memory bounded
                self._cache.clear()
            total = self._context2.get((a, b))
            if total is None:
                probability = self._bigram_probability(b, token)
            else:
                count, types = total
                probability = (
                    max(self._trigram.get(key, 0) - self.discount, 0) / count
                    + self.discount * types / count * self._bigram_probability(b, token)
                )
            self._cache[key] = math.log(probability)
        return self._cache[key]

    def _bigram_probability(self, previous: int, token: int) -> float:
        unigram = self._unigram.get(token, self._unseen_unigram)
        total = self._context1.get((previous,))
        if total is None:
            return unigram
        count, types = total
        seen = max(self._bigram.get((previous, token), 0) - self.discount, 0) / count
        return seen + self.discount * types / count * unigram

    def save_pretrained(self, save_directory: str | os.PathLike) -> None:
        """Write `ngram_lm.safetensors`: ids as uint16 when the vocabulary allows (half the size), counts int32."""
        ids_dtype = np.uint16 if self.start_id < 2**16 else np.int32
        arrays = {}
        for name, counts, width in (("trigram", self._trigram, 3), ("bigram", self._bigram, 2)):
            arrays[f"{name}_ids"] = np.asarray(list(counts), dtype=ids_dtype).reshape(-1, width)
            arrays[f"{name}_counts"] = np.asarray(list(counts.values()), dtype=np.int32)
        metadata = {"vocab_size": str(self.vocab_size), "discount": str(self.discount)}
        save_file(arrays, os.path.join(save_directory, NGRAM_LM_FILE), metadata=metadata)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> TokenNgramLM:
        with safe_open(path, framework="np") as file:
            metadata = file.metadata()
        arrays = load_file(path)
        tables = [
            dict(zip(map(tuple, arrays[f"{name}_ids"].astype(np.int64).tolist()), arrays[f"{name}_counts"].tolist()))
            for name in ("trigram", "bigram")
        ]
        return cls(*tables, int(metadata["vocab_size"]), float(metadata["discount"]))


def _context_totals(counts: dict[tuple[int, ...], int]) -> dict[tuple[int, ...], tuple[int, int]]:
    """{context: (sum of counts, number of distinct next tokens)}."""
    totals: dict[tuple[int, ...], list[int]] = {}
    for key, count in counts.items():
        entry = totals.setdefault(key[:-1], [0, 0])
        entry[0] += count
        entry[1] += 1
    return {context: (count, types) for context, (count, types) in totals.items()}
