"""Training end to end on a tiny espeak-ng corpus: overfitting, exact resume after SIGKILL, atomic checkpoints, and
two-process DDP drawing the same k per layer on both ranks."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
import soundfile
import yaml
from safetensors.numpy import load_file

from tests.conftest import HAS_ESPEAK, synthesize, tiny_config_kwargs
from training.data import CORPUS_FEATURES, write_corpus
from processing.feature_extraction_touchasp import TouchASPFeatureExtractor
from processing.processing_touchasp import TouchASPProcessor
from modeling_touchasp import TouchASPConfig, TouchASPForConditionalGeneration
from training.train import KRecorder, complete_checkpoints, corpus_audio, load_config, rows_in_order, train

REPOSITORY = Path(__file__).resolve().parents[2]
# (id, language, espeak voice, gender, text, events): 3 languages, both genders, some labels missing.
UTTERANCES = [
    ("en-0", "en", "en+f3", "female", "hello world", ["Speech"]),
    ("en-1", "en", "en+m3", "male", "the cat sat on a mat", ["Speech"]),
    ("en-2", "en", "en+f2", "female", "speech model today", None),
    ("en-3", "en", "en+m1", None, "the weather is nice", ["Speech"]),
    ("zh-0", "zh", "cmn+f3", "female", "你好 世界", ["Speech"]),
    ("zh-1", "zh", "cmn+m3", "male", "今天 天气 很好", None),
    ("de-0", "de", "de+m3", "male", "guten morgen", ["Speech"]),
    ("de-1", None, "de+f3", "female", "danke schön", None),
]
pytestmark = pytest.mark.skipif(not HAS_ESPEAK, reason="the training corpus is spoken by espeak-ng (and sox)")


@pytest.fixture(autouse=True)
def no_pause_between_passes(monkeypatch):
    """datasets sleeps 5 s after every pass over parquet shards (a pyarrow thread-shutdown workaround); a pass of
    this corpus is one step, so in-process runs skip the pause. Subprocess runs keep it."""
    monkeypatch.setattr(datasets.config, "SLEEP_TIME_ON_THREADS_SHUTDOWN", 0)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two parquet shards in the DESIGN.md section-6 layout, 8 utterances of about one to two seconds."""
    wav_dir = tmp_path_factory.mktemp("corpus_wavs")
    columns = {name: [] for name in CORPUS_FEATURES}
    for utterance, language, voice, gender, text, events in UTTERANCES:
        path = synthesize(text, wav_dir / f"{utterance}.wav", voice)
        columns["audio"].append({"bytes": path.read_bytes(), "path": path.name})
        columns["duration"].append(soundfile.info(path).duration)
        columns["emotion"].append(None)
        columns["source"].append("espeak-ng")
        labels = {"id": utterance, "language": language, "gender": gender, "text": text, "events": events}
        for name, value in labels.items():
            columns[name].append(value)
    return write_corpus(columns, tmp_path_factory.mktemp("corpus"), num_shards=2)


def write_recipe(path: Path, corpus: Path, output_dir: Path, **overrides) -> Path:
    """A recipe for a tiny model on `corpus`; `overrides` replace whole top-level sections or values."""
    recipe = {
        "seed": 0,
        "output_dir": str(output_dir),
        "model": tiny_config_kwargs(label_smoothing=0.0, dropout=0.0, vocab_size=None),
        "tokenizer": {"vocab_size": 500},
        "data": {
            "corpora": [{"data_dir": str(corpus), "weight": 1.0}], "max_batch_seconds": 5.0,
            "bucket_pool_size": 4, "shuffle_buffer": 4, "num_workers": 1, "prefetch": 2,
        },
        "optimizer": {"lr": 3e-3, "betas": [0.9, 0.98], "weight_decay": 0.0},
        "schedule": {"name": "constant", "warmup_steps": 0},
        "max_steps": 6,
        "grad_clip": 5.0,
        "checkpoint": {"interval": 2, "keep_last": 2},
        "log": {"interval": 1},
    }
    del recipe["model"]["vocab_size"]  # sized to the trained tokenizer
    recipe.update(overrides)
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    return path


def steps_of(output_dir: Path) -> dict[int, dict]:
    """examples.jsonl as {step: record}; a step written twice (before a kill and after the resume) keeps the last."""
    lines = (output_dir / "examples.jsonl").read_text(encoding="utf-8").splitlines()
    return {record["step"]: record for record in map(json.loads, lines)}


def final_weights(output_dir: Path) -> dict[str, np.ndarray]:
    return load_file(str(output_dir / "final" / "model.safetensors"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_training(*args: str) -> subprocess.Popen:
    """`python -m training.train ...` in its own process group, which its data workers join. One intra-op
    thread: with two, CPU kernels already differ by ~1e-5 between two identical runs in one process (measured),
    which would hide what this file tests, the resume logic."""
    return subprocess.Popen(
        [sys.executable, "-m", "training.train", *args], cwd=REPOSITORY, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


@pytest.fixture
def single_thread():
    """The in-process twin of run_training's OMP_NUM_THREADS=1, for tests that compare weights to 1e-6."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def workers_exit(group: int, timeout: float = 30.0) -> bool:
    """Whether every process of the group is gone within `timeout`; survivors are then killed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    os.killpg(group, signal.SIGKILL)
    return False


def test_overfits_eight_utterances(corpus, tmp_path):
    recipe = write_recipe(
        tmp_path / "overfit.yaml", corpus, tmp_path / "run", max_steps=150,
        data={"corpora": [{"data_dir": str(corpus)}], "max_batch_seconds": 100.0, "bucket_pool_size": 8,
              "shuffle_buffer": 8, "num_workers": 0},
        checkpoint={"interval": 0}, optimizer={"lr": 5e-3, "betas": [0.9, 0.98], "weight_decay": 0.0},
        eval={"data": str(corpus), "ks": [1, 4], "interval": 150, "batch_size": 8},
    )
    final = train(load_config(recipe))
    steps = steps_of(tmp_path / "run")
    assert sorted(steps) == list(range(1, 151))
    assert all(len(record["ids"]) == len(UTTERANCES) for record in steps.values())
    assert all(record["audio_seconds"] > 0 for record in steps.values())
    assert all(0 <= record["data_wait_seconds"] <= record["step_seconds"] for record in steps.values())
    assert steps[150]["loss"] < 0.1 * steps[1]["loss"], (steps[1]["loss"], steps[150]["loss"])
    assert (final / "model.safetensors").is_file() and (final / "tokenizer.json").is_file()
    recipe_used = json.loads((tmp_path / "run" / "recipe.json").read_text(encoding="utf-8"))
    assert recipe_used["max_steps"] == 150 and recipe_used["optimizer"]["lr"] == 5e-3
    scores = json.loads((tmp_path / "run" / "eval_results.jsonl").read_text(encoding="utf-8"))
    assert scores["step"] == 150
    for k in (1, 4):
        for name in ("cer", "lid_accuracy", "gender_accuracy", "event_micro_f1"):
            assert f"eval/k{k}/{name}" in scores


def test_global_cmvn_is_fitted_on_every_shard_and_shipped(corpus, tmp_path):
    clips = list(corpus_audio([{"data_dir": str(corpus)}], max_seconds=2.0))
    assert 2 <= len(clips) < len(UTTERANCES)  # about one second from each of the two shards
    recipe = write_recipe(
        tmp_path / "cmvn.yaml", corpus, tmp_path / "run", max_steps=2, checkpoint={"interval": 0},
        features={"cmvn": "global", "cmvn_seconds": 2.0},
    )
    final = train(load_config(recipe))
    fitted = json.loads((tmp_path / "run" / "feature_extractor" / "preprocessor_config.json").read_text())
    shipped = TouchASPProcessor.from_pretrained(str(final)).feature_extractor
    expected = TouchASPFeatureExtractor().fit_global_cmvn(clips)
    assert fitted["cmvn"] == shipped.cmvn == "global"
    np.testing.assert_allclose(shipped.cmvn_mean, expected.cmvn_mean, rtol=1e-6)
    np.testing.assert_allclose(shipped.cmvn_std, expected.cmvn_std, rtol=1e-6)


def test_resume_after_sigkill_continues_exactly(corpus, tmp_path, single_thread):
    max_steps = 10
    straight = tmp_path / "straight"
    train(load_config(write_recipe(tmp_path / "straight.yaml", corpus, straight, max_steps=max_steps)))

    interrupted = tmp_path / "interrupted"
    recipe = write_recipe(tmp_path / "interrupted.yaml", corpus, interrupted, max_steps=max_steps)
    first = run_training("--config", str(recipe))
    deadline = time.monotonic() + 300
    while not complete_checkpoints(interrupted) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)
    output = first.communicate()[0]
    assert workers_exit(first.pid), "a data worker outlived its killed trainer"
    assert complete_checkpoints(interrupted), output
    assert not (interrupted / "final").exists(), "the run finished before the kill; nothing was resumed"

    second = run_training("--config", str(recipe), "--resume")
    output = second.communicate(timeout=600)[0]
    assert second.returncode == 0, output
    assert "resumed from" in output

    expected, resumed = steps_of(straight), steps_of(interrupted)
    assert sorted(resumed) == list(range(1, max_steps + 1))
    assert [resumed[step]["ids"] for step in resumed] == [expected[step]["ids"] for step in resumed]
    reference, weights = final_weights(straight), final_weights(interrupted)
    assert reference.keys() == weights.keys()
    assert max(float(np.abs(reference[name] - weights[name]).max()) for name in reference) <= 1e-6


def test_resume_ignores_temporary_and_incomplete_checkpoints(corpus, tmp_path, single_thread):
    output_dir = tmp_path / "run"
    recipe = write_recipe(
        tmp_path / "recipe.yaml", corpus, output_dir, max_steps=3, checkpoint={"interval": 1, "keep_last": 5}
    )
    train(load_config(recipe))
    straight = final_weights(output_dir)
    shutil.rmtree(output_dir / "checkpoint-3")
    # Saves killed before their rename, and a folder whose trainer_state.json never landed.
    shutil.copytree(output_dir / "checkpoint-2", output_dir / ".tmp-checkpoint-7")
    shutil.copytree(output_dir / "final", output_dir / ".tmp-final")
    shutil.copytree(output_dir / "checkpoint-2", output_dir / "checkpoint-9")
    (output_dir / "checkpoint-9" / "trainer_state.json").unlink()
    assert [step for step, _ in complete_checkpoints(output_dir)] == [1, 2]

    with pytest.raises(FileExistsError, match="--resume"):
        train(load_config(recipe))
    with pytest.raises(ValueError, match="another recipe"):
        train(load_config(recipe, ["max_steps=4"]), resume=True)
    recorded = json.loads((output_dir / "recipe.json").read_text(encoding="utf-8"))
    assert recorded["max_steps"] == 3, "a refused resume left the trained recipe in place"
    train(load_config(recipe, ["checkpoint.interval=5"]), resume=True)
    lines = (output_dir / "examples.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 3], "resumed after step 2, not 9 or 7"
    resumed = final_weights(output_dir)
    assert max(float(np.abs(straight[name] - resumed[name]).max()) for name in straight) <= 1e-6
    assert not list(output_dir.glob(".tmp-*")), "temp folders of interrupted saves are removed"


def test_final_model_can_be_the_mean_of_the_last_checkpoints(corpus, tmp_path, single_thread):
    output_dir = tmp_path / "run"
    recipe = write_recipe(
        tmp_path / "recipe.yaml", corpus, output_dir, max_steps=4,
        checkpoint={"interval": 1, "keep_last": 3, "average_last": 3},
    )  # fmt: skip
    train(load_config(recipe))
    kept = [load_file(str(folder / "model.safetensors")) for _, folder in complete_checkpoints(output_dir)]
    assert [step for step, _ in complete_checkpoints(output_dir)] == [2, 3, 4]
    averaged = final_weights(output_dir)
    assert averaged.keys() == kept[-1].keys()
    moved = [name for name in averaged if not np.allclose(kept[0][name], kept[-1][name])]
    assert moved, "training changed the weights between the checkpoints"
    for name in averaged:
        expected = (kept[0][name] + kept[1][name] + kept[2][name]) / 3
        assert np.allclose(averaged[name], expected, atol=1e-6), name
    reloaded = TouchASPForConditionalGeneration.from_pretrained(output_dir / "final")
    assert np.allclose(reloaded.state_dict()[moved[0]].numpy(), averaged[moved[0]], atol=1e-6)


def test_averaging_more_checkpoints_than_are_kept_is_refused(corpus, tmp_path):
    recipe = write_recipe(tmp_path / "recipe.yaml", corpus, tmp_path / "run",
                          checkpoint={"interval": 2, "keep_last": 2, "average_last": 3})
    with pytest.raises(ValueError, match="average_last=3 needs checkpoints"):
        load_config(recipe)
    recipe = write_recipe(tmp_path / "recipe.yaml", corpus, tmp_path / "run",
                          checkpoint={"interval": 0, "average_last": 2})
    with pytest.raises(ValueError, match="interval > 0"):
        load_config(recipe)


def test_unknown_recipe_key_is_named(corpus, tmp_path):
    recipe = write_recipe(tmp_path / "bad.yaml", corpus, tmp_path / "run", optimiser={"lr": 1.0})
    with pytest.raises(ValueError, match="unknown key 'optimiser'"):
        load_config(recipe)
    missing_corpus = {"corpora": [{"data_dir": str(tmp_path / "nope")}]}
    recipe = write_recipe(tmp_path / "missing.yaml", corpus, tmp_path / "run", data=missing_corpus)
    with pytest.raises(FileNotFoundError, match="nope"):
        train(load_config(recipe))


def test_leftovers_of_a_run_without_checkpoints_are_made_again(corpus, tmp_path):
    """A run killed while training its tokenizer or fitting CMVN, or before its first checkpoint, leaves them
    behind; with no checkpoint to vouch for the recipe, the next start makes them again."""
    output_dir = tmp_path / "run"
    recipe = write_recipe(
        tmp_path / "recipe.yaml", corpus, output_dir, max_steps=1, checkpoint={"interval": 0},
        features={"cmvn": "global", "cmvn_seconds": 2.0},
    )
    train(load_config(recipe))
    made = {name: (output_dir / name).read_bytes() for name in ("tokenizer/tokenizer.json",
                                                                "feature_extractor/preprocessor_config.json")}
    for name in made:
        (output_dir / name).write_text('{"truncated', encoding="utf-8")
    shutil.copytree(output_dir / "tokenizer", output_dir / ".tmp-tokenizer")
    train(load_config(recipe), resume=True)
    assert {name: (output_dir / name).read_bytes() for name in made} == made
    assert not list(output_dir.glob(".tmp-*"))
    # a tokenizer the recipe names (tokenizer.path) is the user's, never dropped, even inside output_dir
    train(load_config(recipe, [f"tokenizer.path={output_dir / 'tokenizer'}"]))
    assert (output_dir / "tokenizer/tokenizer.json").read_bytes() == made["tokenizer/tokenizer.json"]


def test_set_adds_list_items_and_checks_eval_ks(corpus, tmp_path):
    bare = tmp_path / "bare.yaml"
    bare.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "run")}), encoding="utf-8")
    config = load_config(bare, [f"data.corpora.0.data_dir={corpus}"])  # what --data-dir sets
    assert config["data"]["corpora"] == [{"data_dir": str(corpus)}]
    with pytest.raises(ValueError, match="not an index of a list of 0"):
        load_config(bare, ["data.corpora.1.data_dir=x"])
    with pytest.raises(ValueError, match="must be a list"):
        load_config(bare, ["data.corpora=x"])
    # a list the recipe leaves out starts as the default's
    assert load_config(bare, ["augment.speed_factors.0=0.8"])["augment"]["speed_factors"] == [0.8, 1.0, 1.1]
    recipe = write_recipe(
        tmp_path / "ks.yaml", corpus, tmp_path / "run", eval={"data": str(corpus), "ks": [4, 9], "interval": 1}
    )
    with pytest.raises(ValueError, match=r"eval.ks \[9\] outside 1..8"):
        train(load_config(recipe))


def test_gathered_eval_outputs_return_to_row_order():
    rows = list(range(7))
    assert rows_in_order([rows[rank::3] for rank in range(3)], len(rows)) == rows
    assert rows_in_order([rows], len(rows)) == rows


def test_k_recorder_leaves_out_evaluation_passes(tiny_processor):
    torch.manual_seed(0)
    config = TouchASPConfig(**tiny_config_kwargs(vocab_size=len(tiny_processor.tokenizer)))
    model = TouchASPForConditionalGeneration(config)
    recorder = KRecorder(model)
    inputs = tiny_processor(
        audio=[np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)], sampling_rate=16000,
        text=["hello"], return_tensors="pt",
    )
    model.train()
    model(**inputs, elastic_step=0)
    assert recorder.pop(), "a training forward records its routers' k"
    model.eval()
    with torch.no_grad():
        model(**inputs, elastic_step=0)
    assert recorder.pop() == []


@pytest.mark.slow
def test_two_cpu_processes_draw_the_same_k(corpus, tmp_path):
    output_dir = tmp_path / "ddp"
    recipe = write_recipe(
        tmp_path / "ddp.yaml", corpus, output_dir, max_steps=4, log={"interval": 1, "record_k": True},
        eval={"data": str(corpus), "ks": [1, 4], "interval": 2, "batch_size": 2},
    )
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()),
        "-m", "training.train", "--config", str(recipe),
    ]
    result = subprocess.run(
        command, cwd=REPOSITORY, env={**os.environ, "ACCELERATE_USE_CPU": "1"}, capture_output=True, text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    ranks = [
        [json.loads(line) for line in (output_dir / f"drawn_k_rank{rank}.jsonl").read_text().splitlines()]
        for rank in range(2)
    ]
    assert [record["step"] for record in ranks[0]] == [1, 2, 3, 4]
    assert ranks[0] == ranks[1]
    assert len({tuple(record["k"]) for record in ranks[0]}) > 1, "k should vary between steps"
    steps = steps_of(output_dir)
    assert sorted(steps) == [1, 2, 3, 4] and complete_checkpoints(output_dir)
    # Each rank reads its own shard (English rows vs Mandarin and German rows) and rank 0 logs both.
    for record in steps.values():
        assert {identifier.startswith("en-") for identifier in record["ids"]} == {True, False}, record
    assert (output_dir / "final" / "model.safetensors").is_file()
    # Both ranks decoded half of the 8 rows; rank 0 scored all of them, after steps 2 and 4.
    evaluations = [json.loads(line) for line in (output_dir / "eval_results.jsonl").read_text().splitlines()]
    assert [record["step"] for record in evaluations] == [2, 4]
    assert all(f"eval/k{k}/gender_accuracy" in record for record in evaluations for k in (1, 4))
