"""`touchasp evaluate`: every data layout gives the same rows and the same scores; scoring normalises text."""

import json
import shutil
from pathlib import Path

import datasets
import pytest

from modeling_touchasp.ngram_touchasp import NGRAM_LM_FILE, TokenNgramLM
from tests.conftest import HAS_ESPEAK, synthesize
from training.evaluation import _kaldi_table, add_arguments, evaluate_model, read_rows, run, score_rows

pytestmark = pytest.mark.skipif(not HAS_ESPEAK, reason="needs espeak-ng and sox to speak the test clips")

# (id, text as a corpus writes it, language, gender, espeak voice)
CLIPS = [
    ("utt1", "Hello, World! This is a test.", "en", "female", "en+f3"),
    ("utt2", "The cat sat on the mat.", "en", "male", "en+m3"),
    ("utt3", "今天天气很好，我们去北京。", "zh", "male", "cmn"),
]
KS = [1, 2]


@pytest.fixture(scope="module")
def kaldi_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Kaldi data folder whose wav.scp holds paths relative to the folder, genders spelled m / f."""
    folder = tmp_path_factory.mktemp("kaldi")
    (folder / "wav").mkdir()
    for utterance, text, _, _, voice in CLIPS:
        synthesize(text, folder / "wav" / f"{utterance}.wav", voice=voice)
    tables = {
        "wav.scp": [f"wav/{utterance}.wav" for utterance, *_ in CLIPS],
        "text": [text for _, text, *_ in CLIPS],
        "utt2lang": [language for _, _, language, _, _ in CLIPS],
        "utt2gender": [gender[0] for _, _, _, gender, _ in CLIPS],
    }
    for name, values in tables.items():
        lines = [f"{utterance} {value}\n" for (utterance, *_), value in zip(CLIPS, values)]
        (folder / name).write_text("".join(lines), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def parquet_dir(tmp_path_factory: pytest.TempPathFactory, kaldi_dir: Path) -> Path:
    """The same clips as a folder of parquet shards with the DESIGN.md section-6 columns, plus emotion and events."""
    folder = tmp_path_factory.mktemp("parquet")
    columns = {
        "id": [utterance for utterance, *_ in CLIPS],
        "audio": [str(kaldi_dir / "wav" / f"{utterance}.wav") for utterance, *_ in CLIPS],
        "text": [text for _, text, *_ in CLIPS],
        "language": [language for _, _, language, _, _ in CLIPS],
        "gender": [gender for _, _, _, gender, _ in CLIPS],
        "emotion": ["NEUTRAL", "HAPPY", None],
        "events": [["Speech"], ["Speech", "Music"], None],
    }
    table = datasets.Dataset.from_dict(columns).cast_column("audio", datasets.Audio(sampling_rate=16000))
    table.select([0, 1]).to_parquet(str(folder / "part-00000.parquet"))
    table.select([2]).to_parquet(str(folder / "part-00001.parquet"))
    return folder


def test_kaldi_speechio_and_parquet_give_the_same_rows(kaldi_dir: Path, parquet_dir: Path, tmp_path: Path):
    shutil.copytree(kaldi_dir / "wav", tmp_path / "wav")
    lines = ["ID\tAUDIO\tDURATION\tTEXT"] + [f"{u}\twav/{u}.wav\t2.0\t{text}" for u, text, *_ in CLIPS]
    (tmp_path / "metadata.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    kaldi, parquet, speechio = (list(read_rows(spec)) for spec in (kaldi_dir, parquet_dir, tmp_path / "metadata.tsv"))

    assert [row["id"] for row in kaldi] == [row["id"] for row in parquet] == [row["id"] for row in speechio]
    for field in ("text", "language", "gender"):
        assert [row[field] for row in kaldi] == [row[field] for row in parquet]
    assert [row["text"] for row in speechio] == [row["text"] for row in kaldi]
    assert kaldi[0]["audio"] == str(kaldi_dir / "wav" / "utt1.wav")
    assert parquet[0]["audio"]["path"] == str(kaldi_dir / "wav" / "utt1.wav")
    assert parquet[1]["events"] == ["Speech", "Music"] and kaldi[1]["events"] is None


def test_unknown_data_layout_is_named(tmp_path: Path):
    with pytest.raises(ValueError, match="not a Kaldi folder"):
        read_rows(tmp_path / "clips.txt")


def test_evaluate_on_kaldi_and_on_parquet_gives_the_same_numbers(
    kaldi_dir: Path, parquet_dir: Path, tiny_model_dir: Path, tmp_path: Path
):
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--model", str(tiny_model_dir), "--data", str(kaldi_dir), "-k", "1,2", "--out", str(tmp_path / "kaldi"),
         "--batch-size", "2"]
    )
    assert run(args) == 0
    from_kaldi = json.loads((tmp_path / "kaldi" / "results.json").read_text(encoding="utf-8"))
    from_parquet = evaluate_model(tiny_model_dir, parquet_dir, KS, tmp_path / "parquet", batch_size=2)

    assert [budget["k"] for budget in from_kaldi["budgets"]] == KS
    for kaldi, parquet in zip(from_kaldi["budgets"], from_parquet["budgets"]):
        for score in ("cer", "wer", "language", "gender", "active_parameters", "audio_seconds"):
            assert kaldi[score] == parquet[score], score
        hypotheses = [(tmp_path / run / f"hypotheses_k{kaldi['k']}.jsonl").read_text() for run in ("kaldi", "parquet")]
        assert hypotheses[0] == hypotheses[1]
        # Labels only the parquet rows carry are scored there and absent from the Kaldi run.
        assert kaldi["emotion"] is None and kaldi["events"] is None
        assert parquet["emotion"]["support"] == 2 and parquet["events"]["support"] == 2
        assert kaldi["rtf"] > 0
        assert set(kaldi["cer"]) == {"all", "en", "zh"} and set(kaldi["wer"]) == {"all", "en"}
        assert kaldi["language"]["support"] == 3

    budgets = from_parquet["budgets"]
    assert budgets[0]["active_parameters"] < budgets[1]["active_parameters"] < from_parquet["total_parameters"]
    table = (tmp_path / "kaldi" / "budget_table.md").read_text(encoding="utf-8")
    assert table.count("\n| ") == 1 + len(KS)  # header and one row per k
    for name in ("quality_vs_active_parameters.png", "rtf_vs_k.png", "lid_confusion_k1.png", "lid_confusion_k2.png"):
        assert (tmp_path / "kaldi" / name).read_bytes().startswith(b"\x89PNG"), name


def test_max_rows_scores_the_first_rows_only(parquet_dir: Path, tiny_model_dir: Path, tmp_path: Path):
    results = evaluate_model(tiny_model_dir, parquet_dir, [1], tmp_path, batch_size=2, max_rows=2)

    assert results["rows"] == 2
    lines = (tmp_path / "hypotheses_k1.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == [utterance for utterance, *_ in CLIPS[:2]]
    with pytest.raises(ValueError, match="max_rows=0"):
        evaluate_model(tiny_model_dir, parquet_dir, [1], tmp_path, max_rows=0)


def test_the_files_name_the_model_and_data_a_caller_gives(parquet_dir: Path, tiny_model_dir: Path, tmp_path: Path):
    """A release scores a temporary copy on a temporary subset; its files must name what they came from."""
    results = evaluate_model(tiny_model_dir, parquet_dir, [1], tmp_path, max_rows=1,
                             model_name="stages/stage9/final", data_name="the first row of corpora/mixed/test")

    assert (results["model"], results["data"]) == ("stages/stage9/final", "the first row of corpora/mixed/test")
    written = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert (written["model"], written["data"]) == (results["model"], results["data"])
    assert (tmp_path / "budget_table.md").read_text(encoding="utf-8").startswith(
        "Model `stages/stage9/final` on `the first row of corpora/mixed/test`"
    )


def test_transcript_decoding_is_chosen_per_run_and_recorded(parquet_dir: Path, tiny_model_dir: Path, tmp_path: Path):
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--model", str(tiny_model_dir), "--data", str(parquet_dir), "-k", "1", "--out",
                              str(tmp_path / "ctc"), "--transcript-decoding", "ctc", "--max-rows", "2"])
    assert run(args) == 0
    ctc = json.loads((tmp_path / "ctc" / "results.json").read_text(encoding="utf-8"))
    attention = evaluate_model(tiny_model_dir, parquet_dir, [1], tmp_path / "attention", max_rows=2)
    assert ctc["transcript_decoding"] == "ctc" and attention["transcript_decoding"] == "attention"
    texts = [[json.loads(line)["hypothesis"] for line in (tmp_path / run / "hypotheses_k1.jsonl").open()]
             for run in ("ctc", "attention")]
    assert texts[0] != texts[1]
    assert ctc["budgets"][0]["language"] == attention["budgets"][0]["language"]  # the decoder's task tokens either way
    with pytest.raises(SystemExit):
        parser.parse_args(["--model", "m", "--data", "d", "--out", "o", "--transcript-decoding", "beam"])
    assert (ctc["num_beams"], ctc["ngram_lm"]) == (1, None)
    beams = evaluate_model(tiny_model_dir, parquet_dir, [1], tmp_path / "beams", max_rows=2,
                           transcript_decoding="ctc", num_beams=3)
    assert (beams["num_beams"], beams["ngram_lm"]) == (3, None)
    lm_file = tmp_path / "lm" / NGRAM_LM_FILE
    lm_file.parent.mkdir()
    vocab_size = json.loads((tiny_model_dir / "config.json").read_text())["vocab_size"]
    TokenNgramLM.from_sequences([[7, 8, 9]], vocab_size).save_pretrained(lm_file.parent)
    fused = evaluate_model(tiny_model_dir, parquet_dir, [1], tmp_path / "fused", max_rows=2,
                           transcript_decoding="ctc", num_beams=3, ngram_lm=lm_file)
    assert fused["ngram_lm"] == str(lm_file)
    with pytest.raises(ValueError, match="num_beams=0"):
        evaluate_model(tiny_model_dir, parquet_dir, [1], tmp_path, num_beams=0)
    beam_default = tmp_path / "beam-default"  # a released folder: generation_config.json names its beam width
    shutil.copytree(tiny_model_dir, beam_default)
    generation = json.loads((beam_default / "generation_config.json").read_text())
    (beam_default / "generation_config.json").write_text(json.dumps({**generation, "num_beams": 3}))
    scored = evaluate_model(beam_default, parquet_dir, [1], tmp_path / "scored", max_rows=2, transcript_decoding="ctc")
    assert scored["num_beams"] == 3
    assert [json.loads(line)["hypothesis"] for line in (tmp_path / "scored" / "hypotheses_k1.jsonl").open()] == [
        json.loads(line)["hypothesis"] for line in (tmp_path / "beams" / "hypotheses_k1.jsonl").open()]


def _perception(language: str, events: list[dict] | None = None) -> dict:
    return {"language": {"label": language, "score": 0.9, "scores": {}}, "emotion": None, "gender": None,
            "events": events}


def test_scores_normalise_mixed_chinese_english_and_group_by_language():
    from training.evaluation import load_metrics

    rows = [
        {"id": "a", "text": "今天 Hello，World！", "language": "zh", "gender": None, "emotion": None, "events": None},
        {"id": "b", "text": "Ｇｏｏｄ ｍｏｒｎｉｎｇ, everyone.", "language": "en", "gender": None, "emotion": None,
         "events": ["Speech"]},
        {"id": "c", "text": "no label here", "language": None, "gender": None, "emotion": None, "events": ["Music"]},
    ]
    decoded = [
        {"text": "今天hello world", "perception": _perception("zh")},
        {"text": "good morning every one", "perception": _perception("en", [{"label": "Speech", "score": 0.9}])},
        {"text": "no label here", "perception": _perception("en", [{"label": "Music", "score": 0.4}])},
    ]

    scores = score_rows(rows, decoded, load_metrics())

    assert scores["cer"]["zh"]["cer"] == 0.0
    assert scores["cer"]["en"]["cer"] == 0.0  # "everyone" -> "every one" differs only in a space
    assert scores["cer"]["unknown"]["cer"] == 0.0
    assert scores["cer"]["all"]["reference_characters"] == len("今天helloworld") + len("goodmorningeveryone") + 11
    # WER only for the English row: "everyone" -> "every one" is one substitution and one insertion over 3 words.
    assert set(scores["wer"]) == {"all", "en"}
    assert scores["mandarin_syllables"]["tonal"]["wer"] == 0.0  # "hello world" glued to the Hanzi either way
    assert scores["wer"]["en"]["wer"] == pytest.approx(2 / 3)
    assert scores["language"]["accuracy"] == 1.0 and scores["language"]["support"] == 2
    assert scores["gender"] is None and scores["emotion"] is None
    # The 0.4 Music is below the processor's event threshold: a miss for F1, yet it ranks first for mAP.
    assert scores["events"]["micro_f1"] == pytest.approx(2 / 3)
    assert scores["events"]["map"] == 1.0


def test_mandarin_syllables_tell_tones_and_homophones_from_misheard_syllables():
    from training.evaluation import load_metrics

    rows = [{"id": "a", "text": "寸土不空，粮食满囤。", "language": "zh", "gender": None, "emotion": None, "events": None},
            {"id": "b", "text": "good", "language": "en", "gender": None, "emotion": None, "events": None}]
    # 粮食 liang2 shi2 -> 两事 liang3 shi4: right syllables, wrong tones; 囤 dun4 -> 灯 deng1: a misheard syllable.
    decoded = [{"text": "寸土不空两事满灯", "perception": _perception("zh")},
               {"text": "bad", "perception": _perception("en")}]

    scores = score_rows(rows, decoded, load_metrics())

    assert scores["cer"]["zh"]["cer"] == pytest.approx(3 / 8)
    assert scores["mandarin_syllables"]["toneless"]["wer"] == pytest.approx(1 / 8)
    assert scores["mandarin_syllables"]["tonal"]["wer"] == pytest.approx(3 / 8)
    assert scores["mandarin_syllables"]["tonal"]["reference_words"] == 8
    english_only = score_rows(rows[1:], decoded[1:], load_metrics())
    assert english_only["mandarin_syllables"] is None


def test_kaldi_tables_split_at_spaces_or_tabs(tmp_path: Path):
    text = tmp_path / "text"
    text.write_text("utt1\thello  world\n\nutt2   bonjour\nutt3\n", encoding="utf-8")
    assert _kaldi_table(text) == {"utt1": "hello  world", "utt2": "bonjour", "utt3": ""}
