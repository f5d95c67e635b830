"""`touchasp ngram`: an n-gram LM counted from text into a model folder, evaluation sentences left out, then used by
`touchasp perceive --num-beams` on CTC transcripts."""

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modeling_touchasp.ngram_touchasp import NGRAM_LM_FILE, TokenNgramLM
from touchasp import main
from training.ngram import build_ngram

SENTENCES = ["the cat sat on the mat.", "the dog sat on the log.", "a bird sang in the tree."]


def test_evaluation_sentences_are_left_out_by_their_normalized_text(tiny_processor):
    tokenizer = tiny_processor.tokenizer
    lm, counted, dropped = build_ngram(tokenizer, len(tokenizer), SENTENCES + ["", "  "], ["The cat, sat on the MAT"])
    assert (counted, dropped) == (2, 1)
    everything, _, _ = build_ngram(tokenizer, len(tokenizer), SENTENCES, [], min_trigram_count=1)
    cat = tokenizer("the cat sat on the mat.", add_special_tokens=False)["input_ids"]
    def score(model):
        return sum(model.log_prob(cat[:i], token) for i, token in enumerate(cat))
    assert score(everything) > score(lm)


def test_ngram_command_writes_the_folders_lm_and_perceive_decodes_with_it(tiny_model_dir, speech_path, tmp_path,
                                                                           capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "transcript_decoding": "ctc"}))
    text = tmp_path / "text.txt"
    text.write_text("\n".join(SENTENCES) + "\n\n")
    evaluation = tmp_path / "test"
    evaluation.mkdir()
    pq.write_table(pa.table({"text": ["A bird sang in the tree", None]}), evaluation / "test-00000-of-00001.parquet")
    arguments = ["ngram", "--model", str(model), "--text", str(text), "--exclude", str(evaluation)]
    assert main([*arguments, "--min-trigram-count", "1"]) == 0
    assert "2 sentences counted, 1 left out as evaluation text" in capsys.readouterr().out
    lm = TokenNgramLM.from_file(model / NGRAM_LM_FILE)
    assert lm.num_trigrams > 0 and lm.vocab_size == config["vocab_size"]
    assert main(["perceive", str(speech_path), "--model", str(model), "--num-beams", "3", "--json"]) == 0
    assert "text" in json.loads(capsys.readouterr().out)
    with pytest.raises(SystemExit, match="needs text"):
        main(["ngram", "--model", str(model)])
    with pytest.raises(SystemExit, match=f"--text {tmp_path / 'missing.txt'} is not a text file"):
        main(["ngram", "--model", str(model), "--text", str(tmp_path / "missing.txt")])
    with pytest.raises(SystemExit, match=f"--exclude {model} is not a folder of parquet shards"):
        main([*arguments, "--exclude", str(model)])
