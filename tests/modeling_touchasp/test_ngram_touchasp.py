"""The token trigram for CTC beam search: a proper distribution in every context, pruned, saved and reloaded."""

import math

import numpy as np
import pytest
from safetensors.numpy import load_file

from modeling_touchasp.ngram_touchasp import NGRAM_LM_FILE, TokenNgramLM

VOCAB = 6
SENTENCES = [[1, 2, 3], [1, 2, 4], [2, 3], [1, 2, 3]]


def total_probability(lm: TokenNgramLM, context: list[int]) -> float:
    return sum(math.exp(lm.log_prob(context, token)) for token in [*range(VOCAB), lm.end_id])


@pytest.mark.parametrize("context", [[], [1], [1, 2], [5, 5], [2, 3], [4, 4, 1, 2]])
def test_every_context_sums_to_one_over_the_vocabulary_and_the_end(context):
    lm = TokenNgramLM.from_sequences(SENTENCES, VOCAB, min_trigram_count=1)
    assert total_probability(lm, context) == pytest.approx(1.0, abs=1e-12)


def test_seen_continuations_win_and_only_the_last_two_tokens_count():
    lm = TokenNgramLM.from_sequences(SENTENCES, VOCAB, min_trigram_count=1)
    assert lm.log_prob([1, 2], 3) > lm.log_prob([1, 2], 4) > lm.log_prob([1, 2], 5)
    assert lm.log_prob([], 1) > lm.log_prob([], 3)  # sentences start with 1 and 2
    assert lm.log_prob([2, 3], lm.end_id) > lm.log_prob([2, 3], 1)
    assert lm.log_prob([5, 1, 2], 3) == lm.log_prob([4, 1, 2], 3) == lm.log_prob([1, 2], 3)


def test_pruned_trigrams_back_off_to_bigrams():
    full = TokenNgramLM.from_sequences(SENTENCES, VOCAB, min_trigram_count=1)
    pruned = TokenNgramLM.from_sequences(SENTENCES, VOCAB, min_trigram_count=2)
    # Kept: (start, start, 1), (start, 1, 2), (1, 2, 3), (2, 3, end); four more were seen once.
    assert (full.num_trigrams, pruned.num_trigrams) == (8, 4)
    assert pruned.num_bigrams == full.num_bigrams
    assert total_probability(pruned, [2]) == pytest.approx(1.0, abs=1e-12)
    assert pruned.log_prob([2], 3) != full.log_prob([2], 3)  # (start, 2, 3) was pruned: backs off
    assert pruned.log_prob([1, 2], 3) > pruned.log_prob([1, 2], 4)


def test_saved_counts_reload_to_the_same_probabilities(tmp_path):
    lm = TokenNgramLM.from_sequences(SENTENCES, VOCAB, min_trigram_count=1, discount=0.5)
    lm.save_pretrained(tmp_path)
    arrays = load_file(tmp_path / NGRAM_LM_FILE)
    assert arrays["trigram_ids"].dtype == np.uint16 and arrays["trigram_ids"].shape == (8, 3)
    reloaded = TokenNgramLM.from_file(tmp_path / NGRAM_LM_FILE)
    assert (reloaded.vocab_size, reloaded.discount) == (VOCAB, 0.5)
    for context in ([], [1], [1, 2], [2, 3]):
        for token in [*range(VOCAB), lm.end_id]:
            assert reloaded.log_prob(context, token) == lm.log_prob(context, token)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="needs text"):
        TokenNgramLM.from_sequences([], VOCAB)
    with pytest.raises(ValueError, match="token ids must lie in 0..5"):
        TokenNgramLM.from_sequences([[1, 6]], VOCAB)
    with pytest.raises(ValueError, match="discount=1.0"):
        TokenNgramLM.from_sequences(SENTENCES, VOCAB, discount=1.0)
