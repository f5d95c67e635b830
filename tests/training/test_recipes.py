"""training/recipes/touchasp-tiny.sh: the stage chain of the shipped model and its static twin, run against a
stand-in `touchasp` that records each call and writes the stage's final/ (or fails, like a killed run)."""

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
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A checkout holding only the recipe script and the config, and a stand-in `touchasp`."""
    for path in (RECIPE, CONFIG):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / path, tmp_path / path)
    stand_in = tmp_path / "touchasp"
    stand_in.write_text(f"#!{sys.executable}\n{STAND_IN}", encoding="utf-8")
    stand_in.chmod(0o755)
    return tmp_path


def run_recipe(tree: Path, *args: str, fail_at: str = "") -> tuple[int, list[list[str]]]:
    calls = tree / "calls.jsonl"
    calls.unlink(missing_ok=True)
    env = dict(os.environ, TOUCHASP=str(tree / "touchasp"), CALLS=str(calls), FAIL_AT=fail_at)
    done = subprocess.run(["bash", str(tree / RECIPE), *args], env=env, capture_output=True, text=True)
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
