"""`touchasp push`: upload an exported model folder, or a Space folder, to the Hugging Face Hub.

    touchasp push --folder DIR --repo-id ID [--private] [--repo-type model|space]

Whatever can be checked without writing is checked first, so that a push in offline mode, without a token or
without network fails within seconds and changes nothing: the folder, the repo id, `HF_HUB_OFFLINE`, the token,
and one authenticated request with a timeout (huggingface_hub's own client has none, so a silent network would
hang it). Only then are the repo created and the folder uploaded.
"""

from __future__ import annotations

import argparse
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

from huggingface_hub import RepoCard, constants, create_repo, get_token, upload_folder
from huggingface_hub.errors import HfHubHTTPError, HFValidationError
from huggingface_hub.utils import validate_repo_id

REACH_TIMEOUT_S = 10
# Left behind by running a Space folder's app locally.
IGNORE_PATTERNS = ["*__pycache__*"]


class PushError(RuntimeError):
    """A push that could not start or finish; the message names the cause."""


def push_folder(
    folder: str | Path, repo_id: str, private: bool = False, token: str | None = None, repo_type: str | None = None
) -> str:
    """Create `repo_id` if needed and upload `folder` to it in one commit; returns the commit URL.

    `repo_type` defaults to "space" for a folder whose README front matter names an `sdk` (what `export-space`
    writes), else "model". `token` defaults to the usual places (HF_TOKEN, `hf auth login`). Raises `PushError`.
    """
    folder = Path(folder)
    if not (folder / "README.md").is_file():
        raise PushError(
            f"--folder {folder} holds no README.md; push a folder written by `touchasp export` or `touchasp export-space`"
        )
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise PushError(f"--repo-id {repo_id!r} is not a Hub repo id such as USER/NAME: {error}") from None
    repo_type = repo_type or _repo_type(folder)
    if constants.HF_HUB_OFFLINE:
        raise PushError("HF_HUB_OFFLINE is set, so huggingface_hub is offline; unset it, with network, to push")
    token = token or get_token()
    if not token:
        raise PushError("no Hugging Face token: log in with `hf auth login` or set HF_TOKEN to a write token")
    check_access(constants.ENDPOINT, token)
    try:
        create_repo(repo_id, token=token, private=private, repo_type=repo_type, exist_ok=True)
        commit = upload_folder(
            folder_path=folder, repo_id=repo_id, repo_type=repo_type, token=token, ignore_patterns=IGNORE_PATTERNS,
            commit_message=f"Upload {folder.name} with touchasp push",
        )  # fmt: skip
    except HfHubHTTPError as error:
        raise PushError(f"the Hub refused the upload of {folder} to {repo_type} {repo_id}: {error}") from None
    return commit.commit_url


def _repo_type(folder: Path) -> str:
    return "space" if RepoCard.load(folder / "README.md").data.to_dict().get("sdk") else "model"


def check_access(endpoint: str, token: str, timeout_s: float = REACH_TIMEOUT_S) -> None:
    """Ask `endpoint` who `token` belongs to, within `timeout_s`; `PushError` naming the cause when it cannot."""
    request = urllib.request.Request(f"{endpoint}/api/whoami-v2", headers={"Authorization": f"Bearer {token}"})
    try:
        urllib.request.urlopen(request, timeout=timeout_s).close()
    except urllib.error.HTTPError as error:
        if error.code == 401:
            raise PushError(f"{endpoint} rejected the Hugging Face token (401); log in again with `hf auth login`") from None
        raise PushError(f"{endpoint} answered {error.code} {error.reason} when checking the token") from None
    except (urllib.error.URLError, OSError) as error:
        raise PushError(f"cannot reach {endpoint} ({_network_cause(error, timeout_s)}); check the network") from None


def _network_cause(error: Exception, timeout_s: float) -> str:
    reason = getattr(error, "reason", error)
    if isinstance(reason, socket.gaierror):
        return f"no network or DNS: the host name does not resolve, {reason.strerror}"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout_s:g} s"
    return str(reason)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `touchasp push`."""
    parser.add_argument("--folder", required=True, type=Path, help="folder written by `touchasp export` or `export-space`")
    parser.add_argument("--repo-id", required=True, help="Hub repo id, e.g. USER/touchasp-tiny")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--repo-type", choices=("model", "space"), default=None,
                        help="default: space for a folder whose README names an sdk, else model")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """`touchasp push`: upload, or say in one line why not (exit status 1)."""
    try:
        url = push_folder(args.folder, args.repo_id, args.private, repo_type=args.repo_type)
    except PushError as error:
        print(f"touchasp push: {error}", file=sys.stderr)
        return 1
    print(f"uploaded {args.folder} to {args.repo_id}: {url}")
    return 0


if __name__ == "__main__":  # `python -m hub_cards.push`, the same as `touchasp push`
    parser = argparse.ArgumentParser(prog="touchasp push", description="Upload a model or Space folder to the Hub.")
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
