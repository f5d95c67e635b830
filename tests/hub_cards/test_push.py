"""`touchasp push` without a reachable Hub fails within seconds, names the cause, and changes nothing."""

import hashlib
import http.server
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import hub_cards
from hub_cards.push import PushError, check_access

REPOSITORY = Path(hub_cards.__file__).resolve().parents[1]
# Everything the push does before writing takes well under this; a network wait would take minutes.
FAST_S = 10


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A small folder with a model card, standing in for an exported model."""
    folder = tmp_path / "touchasp-tiny"
    folder.mkdir()
    (folder / "README.md").write_text("---\nlibrary_name: transformers\n---\n# touchasp-tiny\n", encoding="utf-8")
    (folder / "config.json").write_text("{}\n", encoding="utf-8")
    return folder


def snapshot(folder: Path) -> dict[str, str]:
    return {str(path): hashlib.sha256(path.read_bytes()).hexdigest() for path in folder.rglob("*") if path.is_file()}


def push(folder: Path, tmp_path: Path, **environment: str) -> tuple[subprocess.CompletedProcess, float]:
    """`python -m hub_cards.push` (what `touchasp push` runs) in a clean Hub environment: no stored token,
    no HF_TOKEN, online unless `environment` says otherwise."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HF_")}
    env.update(HF_HOME=str(tmp_path / "hf-home"), **environment)
    began = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "hub_cards.push", "--folder", str(folder), "--repo-id", "me/touchasp-tiny"],
        cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return completed, time.perf_counter() - began


@pytest.mark.parametrize(
    ("environment", "cause"),
    [
        ({"HF_HUB_OFFLINE": "1", "HF_TOKEN": "hf_fake"}, "HF_HUB_OFFLINE is set"),
        # Port 9 (discard) is closed here: the connection is refused at once.
        ({"HF_ENDPOINT": "http://127.0.0.1:9", "HF_TOKEN": "hf_fake"}, r"cannot reach http://127.0.0.1:9 \(connection refused"),
        ({"HF_ENDPOINT": "http://127.0.0.1:9"}, "no Hugging Face token"),
        ({"HF_ENDPOINT": "http://touchasp-no-such-host.invalid", "HF_TOKEN": "hf_fake"}, "no network or DNS"),
    ],
    ids=["offline-mode", "network-refused", "no-token", "dns-failure"],
)  # fmt: skip
def test_push_fails_fast_naming_the_cause_and_changes_nothing(folder: Path, tmp_path: Path, environment, cause):
    before = snapshot(folder)
    completed, seconds = push(folder, tmp_path, **environment)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert completed.stderr.startswith("touchasp push: ") and "Traceback" not in completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1
    assert re.search(cause, completed.stderr), completed.stderr
    assert seconds < FAST_S
    assert snapshot(folder) == before


class _Unauthorized(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_error(401, "Invalid credentials")

    def log_message(self, *args):
        pass


def test_a_rejected_token_is_named():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Unauthorized)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(PushError, match=r"rejected the Hugging Face token \(401\)"):
            check_access(f"http://127.0.0.1:{server.server_port}", "hf_fake")
    finally:
        server.shutdown()


def test_a_silent_network_times_out_instead_of_hanging():
    """A host that accepts the connection and never answers: huggingface_hub's own client would wait forever."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        began = time.perf_counter()
        with pytest.raises(PushError, match=r"no answer within 1 s"):
            check_access(f"http://127.0.0.1:{silent.getsockname()[1]}", "hf_fake", timeout_s=1)
        assert time.perf_counter() - began < 5


def test_folder_and_repo_id_are_checked_before_anything_else(folder: Path, tmp_path: Path):
    completed, _ = push(tmp_path / "missing", tmp_path)
    assert "--folder" in completed.stderr and "holds no README.md" in completed.stderr
    env = {key: value for key, value in os.environ.items() if not key.startswith("HF_")}
    completed = subprocess.run(
        [sys.executable, "-m", "hub_cards.push", "--folder", str(folder), "--repo-id", "me/bad name"],
        cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert completed.returncode == 1 and "--repo-id 'me/bad name' is not a Hub repo id" in completed.stderr


def test_a_reachable_hub_gets_the_repo_created_and_the_folder_uploaded(folder: Path, tmp_path: Path, monkeypatch):
    """The upload itself, with the Hub calls recorded instead of sent; a folder with an `sdk` is a Space."""
    from huggingface_hub import constants

    import hub_cards.push as push_module

    calls = []
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(push_module, "check_access", lambda endpoint, token: calls.append(("check", token)))
    monkeypatch.setattr(push_module, "create_repo", lambda repo_id, **kwargs: calls.append(("create", repo_id, kwargs)))

    class Commit:
        commit_url = "https://huggingface.co/me/touchasp-tiny/commit/0"

    def upload_folder(**kwargs):
        calls.append(("upload", kwargs))
        return Commit()

    monkeypatch.setattr(push_module, "upload_folder", upload_folder)
    assert push_module.push_folder(folder, "me/touchasp-tiny", private=True, token="hf_fake") == Commit.commit_url
    space = tmp_path / "space"
    space.mkdir()
    (space / "README.md").write_text("---\nsdk: gradio\n---\n", encoding="utf-8")
    push_module.push_folder(space, "me/touchasp-demo", token="hf_fake")

    assert calls[0] == ("check", "hf_fake")
    assert calls[1] == ("create", "me/touchasp-tiny", {"token": "hf_fake", "private": True, "repo_type": "model",
                                                         "exist_ok": True})  # fmt: skip
    assert calls[2][1]["folder_path"] == folder and calls[2][1]["repo_type"] == "model"
    assert calls[4][2]["repo_type"] == "space" and calls[5][1]["repo_type"] == "space"
