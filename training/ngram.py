"""`touchasp ngram`: count a token trigram language model for a model folder's CTC beam search from text alone
(`modeling_touchasp.ngram_touchasp`), leaving out every sentence of the evaluation sets so that scores stay honest.

    touchasp ngram --model models/touchasp-tiny --fortunes --corpus corpora/enzh-f/train \\
        --exclude corpora/mixed-f/test --exclude corpora/enzh-f/test
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow.parquet as pq

from modeling_touchasp.ngram_touchasp import NGRAM_LM_FILE, TokenNgramLM
from processing.text_normalization import normalize_for_cer


def parquet_texts(folder: str | Path) -> Iterator[str]:
    """The non-empty `text` of every row of the parquet shards under `folder` (read without their audio)."""
    files = sorted(Path(folder).rglob("*.parquet"))
    if not files:
        raise ValueError(f"{folder} holds no parquet shards")
    for file in files:
        for text in pq.read_table(file, columns=["text"]).column("text").to_pylist():
            if text:
                yield text


def text_lines(path: str | Path) -> Iterator[str]:
    """One sentence per non-empty line of a UTF-8 text file."""
    with open(path, encoding="utf-8") as file:
        for line in file:
            if line.strip():
                yield line.strip()


def build_ngram(
    tokenizer, vocab_size: int, sentences: Iterable[str], excluded: Iterable[str], min_trigram_count: int = 2
) -> tuple[TokenNgramLM, int, int]:
    """The LM over ids 0..vocab_size-1 of `sentences` tokenized by `tokenizer`, without those whose CER-normalized
    text is among `excluded`'s. Returns (LM, sentences counted, sentences left out)."""
    held_out = {normalize_for_cer(text) for text in excluded}
    kept, dropped = [], 0
    for sentence in sentences:
        if normalize_for_cer(sentence) in held_out:
            dropped += 1
        elif normalize_for_cer(sentence):
            kept.append(tokenizer(sentence, add_special_tokens=False)["input_ids"])
    return TokenNgramLM.from_sequences(kept, vocab_size, min_trigram_count), len(kept), dropped


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `touchasp ngram`."""
    parser.add_argument("--model", required=True, type=Path, help=f"model folder; {NGRAM_LM_FILE} is written there")
    parser.add_argument("--text", action="append", default=[], help="a text file, one sentence per line (repeatable)")
    parser.add_argument("--corpus", action="append", default=[], help="parquet shards' folder whose text to count")
    parser.add_argument("--fortunes", action="store_true", help="count Debian's fortunes and fortunes-zh sentences")
    parser.add_argument(
        "--exclude", action="append", default=[],
        help="parquet shards' folder (an evaluation set) whose sentences must not be counted (repeatable)",
    )
    parser.add_argument("--min-trigram-count", type=int, default=2, help="prune rarer trigrams (default 2)")


def run(args: argparse.Namespace) -> int:
    """`touchasp ngram`: count, save into the model folder, report."""
    from transformers import AutoConfig, AutoTokenizer

    if not (args.text or args.corpus or args.fortunes):
        raise SystemExit("touchasp ngram needs text: give --text FILE, --corpus FOLDER or --fortunes")
    for path in args.text:
        if not Path(path).is_file():
            raise SystemExit(f"touchasp ngram: --text {path} is not a text file")
    for option, folders in (("--corpus", args.corpus), ("--exclude", args.exclude)):
        for folder in folders:
            if not any(Path(folder).rglob("*.parquet")):
                raise SystemExit(f"touchasp ngram: {option} {folder} is not a folder of parquet shards")
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    sentences: list[Iterable[str]] = [text_lines(path) for path in args.text]
    sentences += [parquet_texts(folder) for folder in args.corpus]
    if args.fortunes:
        from training.sources import fortune_lines

        sentences.append(sentence for _, sentence in fortune_lines())
    excluded = [text for folder in args.exclude for text in parquet_texts(folder)]
    vocab_size = AutoConfig.from_pretrained(args.model).vocab_size
    every_sentence = (sentence for source in sentences for sentence in source)
    lm, counted, dropped = build_ngram(tokenizer, vocab_size, every_sentence, excluded, args.min_trigram_count)
    lm.save_pretrained(args.model)
    print(
        f"{args.model / NGRAM_LM_FILE}: {counted} sentences counted, {dropped} left out as evaluation text, "
        f"{lm.num_bigrams} bigrams, {lm.num_trigrams} trigrams"
    )
    return 0
