"""`touchasp export-space`: a Spaces folder whose README Spaces can read and whose app.py serves the demo."""

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from huggingface_hub import SpaceCard

import modeling_touchasp
from hub_cards.export import export_model
from hub_cards.space import add_arguments, export_space, run

MODEL_REPO = "me/touchasp-tiny"
# Start-up imports gradio, transformers and torch and loads the model: ~20 s on a busy 2-core machine.
START_TIMEOUT_S = 120
# Runs app.py as Spaces does (`python app.py` in the folder), minus the editable install's import hook, so that
# every TouchASP module must come from the Space folder's own copy.
RUN_APP = """
import runpy, sys
sys.meta_path = [finder for finder in sys.meta_path if not getattr(finder, "__module__", "").startswith("__editable__")]
runpy.run_path("app.py", run_name="__main__")
"""


@pytest.fixture(scope="module")
def model_folder(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_model(tiny_model_dir, tmp_path_factory.mktemp("model") / "touchasp-tiny")


@pytest.fixture(scope="module")
def space(model_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`touchasp export-space --model-repo me/touchasp-tiny --out DIR --model-path MODEL`."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out = tmp_path_factory.mktemp("space") / "touchasp-demo"
    assert run(parser.parse_args(["--model-repo", MODEL_REPO, "--out", str(out), "--model-path", str(model_folder)])) == 0
    return out


def test_space_readme_front_matter_and_pinned_requirements(space: Path):
    card = SpaceCard.load(space / "README.md")
    requirements = (space / "requirements.txt").read_text().splitlines()
    pins = dict(line.split("==") for line in requirements if line and not line.startswith(("#", "-")))

    assert card.data.sdk == "gradio" and card.data.app_file == "app.py" and card.data.models == [MODEL_REPO]
    assert card.data.sdk_version == pins["gradio"] == "6.31.0"
    for package in ("torch", "transformers", "gradio", "huggingface_hub", "sentencepiece", "kaldi-native-fbank"):
        assert package in pins, package
    assert pins["torch"] == "2.13.0" and pins["transformers"] == "5.24.0"
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in requirements
    assert "ffmpeg" in (space / "packages.txt").read_text().split()
    assert f"MODEL_REPO = {MODEL_REPO!r}" in (space / "app.py").read_text()
    for code in ("demo/app.py", "modeling_touchasp/emoe.py", "processing/audio.py", "touchasp.py"):
        assert (space / code).is_file(), code


def test_space_app_without_a_local_model_downloads_the_repo(tmp_path: Path):
    app = (export_space(MODEL_REPO, tmp_path / "space") / "app.py").read_text()
    assert "MODEL_PATH = None" in app and "snapshot_download(MODEL_REPO)" in app


def test_bad_inputs_are_named(space: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="--model-repo 'not a repo' is not a Hub repo id"):
        export_space("not a repo", tmp_path / "a")
    with pytest.raises(ValueError, match="is not a model folder"):
        export_space(MODEL_REPO, tmp_path / "b", model_path=tmp_path)
    with pytest.raises(ValueError, match="not an empty folder"):
        export_space(MODEL_REPO, space)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_space_app_starts_with_the_exported_model(space: Path, model_folder: Path, tmp_path: Path):
    pytest.importorskip("gradio")
    port = _free_port()
    repository = os.path.dirname(os.path.dirname(modeling_touchasp.__file__))
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            path for path in os.environ.get("PYTHONPATH", "").split(os.pathsep) if path and path != repository
        ),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
    }
    log = tmp_path / "app.log"
    with log.open("w") as output:
        app = subprocess.Popen([sys.executable, "-c", RUN_APP], cwd=space, env=environment, stdout=output, stderr=output)
    try:
        config = None
        deadline = time.monotonic() + START_TIMEOUT_S
        while config is None and app.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2) as response:
                    config = json.load(response)
            except OSError:
                time.sleep(0.5)
    finally:
        app.terminate()
        app.wait(timeout=30)
    assert config is not None, f"app.py did not serve within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}"
    # The page's header names the model folder it loaded.
    assert str(model_folder) in json.dumps(config)
