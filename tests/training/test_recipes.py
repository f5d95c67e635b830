"""training/recipes/: the stage chains of the shipped model (touchasp-tiny.sh) and of its successor, whose stages
are kept in training/stages (touchasp-tiny-fortunes.sh), each with its static twin, run against a stand-in
`touchasp` that records each call and writes the stage's outputs (or fails, like a killed run)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from training.train import load_config

REPO = Path(__file__).resolve().parents[2]
RECIPE = Path("training/recipes/touchasp-tiny.sh")
FORTUNES = Path("training/recipes/touchasp-tiny-fortunes.sh")
CONFIG = Path("training/configs/tiny.yaml")
STAND_IN = """\
import json, os, sys
from pathlib import Path
args = sys.argv[1:]
sets = [args[i + 1] for i, arg in enumerate(args) if arg == "--set"]
out = Path(dict(item.split("=", 1) for item in sets)["output_dir"])
with open(os.environ["CALLS"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if out.name == os.environ.get("FAIL_AT"):
    sys.exit(1)
(out / "final").mkdir(parents=True)
for name in ("final/model.safetensors", "final/modeling_touchasp.py", "recipe.json", "examples.jsonl",
             "eval_results.jsonl"):
    (out / name).write_text(name)
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A checkout holding only the recipe scripts and the config, and a stand-in `touchasp`."""
    for path in (RECIPE, FORTUNES, CONFIG):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / path, tmp_path / path)
    stand_in = tmp_path / "touchasp"
    stand_in.write_text(f"#!{sys.executable}\n{STAND_IN}", encoding="utf-8")
    stand_in.chmod(0o755)
    return tmp_path


def run_recipe(tree: Path, *args: str, fail_at: str = "", recipe: Path = RECIPE) -> tuple[int, list[list[str]]]:
    calls = tree / "calls.jsonl"
    calls.unlink(missing_ok=True)
    env = dict(os.environ, TOUCHASP=str(tree / "touchasp"), CALLS=str(calls), FAIL_AT=fail_at)
    done = subprocess.run(["bash", str(tree / recipe), *args], env=env, capture_output=True, text=True)
    lines = calls.read_text(encoding="utf-8").splitlines() if calls.exists() else []
    return done.returncode, [json.loads(line) for line in lines]


def sets_of(call: list[str]) -> dict[str, str]:
    return dict(call[i + 1].split("=", 1) for i, arg in enumerate(call) if arg == "--set")


@pytest.mark.parametrize("twin, runs", [("elastic", "runs/touchasp-tiny"), ("static", "runs/touchasp-tiny-static")])
def test_eleven_stages_chain_and_load_as_recipes(tree, twin, runs):
    returncode, calls = run_recipe(tree, twin)
    assert returncode == 0
    outputs = [sets_of(call)["output_dir"] for call in calls]
    assert outputs == [runs] + [f"{runs}-stage{n}" for n in range(2, 12)]
    for call, previous in zip(calls[1:], outputs):
        assert sets_of(call)["model.init_from"] == f"{previous}/final", "each stage starts from the one before"
    steps = 0
    for call in calls:
        assert call[:3] == ["train", "--config", str(CONFIG)] and call[-1] == "--resume"
        config = load_config(REPO / CONFIG, [f"{key}={value}" for key, value in sets_of(call).items()])
        assert config["model"]["elastic_k_choices"] == ([4] if twin == "static" else [1, 2, 3, 4])
        steps += config["max_steps"]
    assert steps == 58_000, "the budget the shipped model's card states"


def test_a_rerun_continues_the_unfinished_stage_and_skips_finished_ones(tree):
    returncode, calls = run_recipe(tree, "static", fail_at="touchasp-tiny-static-stage5")
    assert returncode != 0, "a failed stage stops the chain"
    assert sets_of(calls[-1])["output_dir"] == "runs/touchasp-tiny-static-stage5"
    assert not (tree / "runs/touchasp-tiny-static-stage6").exists()

    returncode, calls = run_recipe(tree, "static")
    assert returncode == 0
    assert [sets_of(call)["output_dir"] for call in calls] == [
        f"runs/touchasp-tiny-static-stage{n}" for n in range(5, 12)
    ]
    assert run_recipe(tree, "static") == (0, []), "all stages done: nothing runs"


def test_unknown_twin_is_a_usage_error(tree):
    returncode, calls = run_recipe(tree, "dense")
    assert returncode == 2 and calls == []


@pytest.mark.parametrize("twin, name", [("elastic", "tiny-f"), ("static", "tiny-f-static")])
def test_fortunes_stages_are_kept_and_each_continues_the_last_kept(tree, twin, name):
    returncode, calls = run_recipe(tree, twin, "2", recipe=FORTUNES)
    assert returncode == 0
    assert [sets_of(call)["output_dir"] for call in calls] == [f"runs/{name}-stage1", f"runs/{name}-stage2"]
    first, second = (sets_of(call) for call in calls)
    assert first["tokenizer.vocab_size"] == "4000" and "model.init_from" not in first
    assert second["model.init_from"] == f"training/stages/{name}-stage1/final"
    for call in calls:
        config = load_config(REPO / CONFIG, [f"{key}={value}" for key, value in sets_of(call).items()])
        assert config["model"]["elastic_k_choices"] == ([4] if twin == "static" else [1, 2, 3, 4])
        assert config["max_steps"] == 7000 and len(config["data"]["corpora"]) == 2
    for stage in (1, 2):
        kept = tree / f"training/stages/{name}-stage{stage}"
        assert sorted(path.name for path in kept.iterdir()) == [
            "eval_results.jsonl", "examples.jsonl", "final", "recipe.json"]
        assert [path.name for path in (kept / "final").iterdir()] == ["model.safetensors"], "code copies dropped"

    shutil.rmtree(tree / "runs")  # the next session's fresh checkout: only the kept stages are left
    returncode, calls = run_recipe(tree, twin, "3", recipe=FORTUNES)
    assert returncode == 0 and len(calls) == 1
    assert sets_of(calls[0])["model.init_from"] == f"training/stages/{name}-stage2/final"


def test_a_failed_fortunes_stage_is_not_kept(tree):
    returncode, calls = run_recipe(tree, "elastic", "2", fail_at="tiny-f-stage2", recipe=FORTUNES)
    assert returncode != 0 and len(calls) == 2
    assert (tree / "training/stages/tiny-f-stage1/final").is_dir()
    assert not list((tree / "training/stages").glob("tiny-f-stage2*"))


def test_the_fortunes_dry_run_prints_every_stage_and_keeps_nothing(tree):
    done = subprocess.run(["bash", str(tree / FORTUNES), "static", "2"], env=dict(os.environ, TOUCHASP="echo"),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    printed = done.stdout.splitlines()
    assert [line.split("output_dir=")[1].split()[0] for line in printed] == [
        "runs/tiny-f-static-stage1", "runs/tiny-f-static-stage2"]
    assert "model.init_from=training/stages/tiny-f-static-stage1/final" in printed[1]
    assert not (tree / "training/stages").exists() and not (tree / "runs").exists()


@pytest.mark.parametrize("twin", ["elastic", "static"])
def test_fortunes_stages_from_six_on_draw_more_of_the_mixed_corpus_and_from_eight_on_average_with_events(tree, twin):
    returncode, calls = run_recipe(tree, twin, "8", recipe=FORTUNES)
    assert returncode == 0 and len(calls) == 8
    configs = [load_config(REPO / CONFIG, [f"{key}={value}" for key, value in sets_of(call).items()]) for call in calls]
    weights = [{Path(corpus["data_dir"]).parent.name: corpus["weight"] for corpus in config["data"]["corpora"]}
               for config in configs]
    assert weights == [{"mixed-f": 1.0, "enzh-f": 1.0}] * 5 + [{"mixed-f": 1.5, "enzh-f": 1.0}] * 2 + [
        {"mixed-f": 1.5, "enzh-f": 1.0, "events-f": 0.5}]
    assert [config["checkpoint"]["average_last"] for config in configs] == [1] * 7 + [3]


def test_fortunes_stages_pad_clips_with_silence_from_nine_on_and_add_silence_rows_from_ten_on(tree):
    returncode, calls = run_recipe(tree, "elastic", "10", recipe=FORTUNES)
    assert returncode == 0 and len(calls) == 10
    configs = [load_config(REPO / CONFIG, [f"{key}={value}" for key, value in sets_of(call).items()]) for call in calls]
    assert [config["augment"]["silence_prob"] for config in configs] == [0.0] * 8 + [0.5] * 2
    assert [config["augment"]["silence_row_prob"] for config in configs] == [0.0] * 9 + [0.05]
