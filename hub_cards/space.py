"""`touchasp export-space`: a Hugging Face Spaces folder that serves the demo (`demo/app.py`) for a Hub model.

    touchasp export-space --model-repo ID --out DIR [--model-path PATH]

The folder holds `app.py`, the TouchASP code the demo imports (copied, so the Space needs no package that is not
on PyPI), `requirements.txt` pinned to the repository's verified versions, `packages.txt` for apt, and a README
whose front matter Spaces reads (`sdk: gradio`, pinned `sdk_version`, `app_file`, `models`).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from huggingface_hub import SpaceCard, SpaceCardData
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

REPOSITORY = Path(__file__).resolve().parents[1]
TEMPLATE = Path(__file__).resolve().with_name("space_readme_template.md")
# What `demo/app.py` imports from this repository, directly or through `modeling_touchasp`.
SPACE_CODE = ("demo", "modeling_touchasp", "processing", "touchasp.py")
# The repository's pins the demo needs at run time (requirements.txt also pins training and test tools).
SPACE_REQUIREMENTS = (
    "torch", "torchcodec", "transformers", "tokenizers", "safetensors", "sentencepiece", "protobuf",
    "huggingface_hub", "soundfile", "soxr", "kaldi-native-fbank", "gradio",
)  # fmt: skip
# FFmpeg decodes uploads that libsndfile cannot (mp3, m4a, ...); espeak-ng and sox speak the example clips.
APT_PACKAGES = ("ffmpeg", "espeak-ng", "sox")
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"

APP = '''"""Hugging Face Space: the TouchASP demo (`demo/app.py`) for the model {model_repo_id}."""

import os

from huggingface_hub import snapshot_download

MODEL_REPO = {model_repo_id!r}
# A local model folder served instead of downloading MODEL_REPO, to try the Space before the model is uploaded.
MODEL_PATH = {model_path!r}

model = MODEL_PATH or snapshot_download(MODEL_REPO)

# Imported after the download: demo.app puts the Hub in offline mode for everything after it.
from demo.app import build_demo, launch  # noqa: E402

# Spaces sets GRADIO_SERVER_NAME / GRADIO_SERVER_PORT; the defaults are what it expects.
launch(
    build_demo(model),
    host=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
    port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
)
'''


def export_space(model_repo_id: str, out_dir: str | Path, model_path: str | Path | None = None) -> Path:
    """Write the Space folder for the Hub model `model_repo_id` to `out_dir` (new or empty); its app serves the
    local folder `model_path` instead when one is given. Returns `out_dir`."""
    try:
        validate_repo_id(model_repo_id)
    except HFValidationError as error:
        raise ValueError(f"--model-repo {model_repo_id!r} is not a Hub repo id such as USER/NAME: {error}") from None
    if model_path is not None and not (Path(model_path) / "config.json").is_file():
        raise ValueError(f"--model-path {model_path} is not a model folder (no config.json)")
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ValueError(f"--out {out_dir} exists and is not an empty folder; export into a new or empty folder")
    pins = requirement_pins()
    out_dir.mkdir(parents=True, exist_ok=True)

    for name in SPACE_CODE:
        source = REPOSITORY / name
        if source.is_dir():
            shutil.copytree(source, out_dir / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif source.is_file():
            shutil.copy(source, out_dir / name)
        else:
            raise FileNotFoundError(f"the Space needs {source}, which is missing from this checkout")
    local = str(Path(model_path).resolve()) if model_path is not None else None
    (out_dir / "app.py").write_text(APP.format(model_repo_id=model_repo_id, model_path=local), encoding="utf-8")
    (out_dir / "requirements.txt").write_text(space_requirements(pins), encoding="utf-8")
    (out_dir / "packages.txt").write_text("\n".join(APT_PACKAGES) + "\n", encoding="utf-8")
    card_data = SpaceCardData(
        title="TouchASP demo",
        sdk="gradio",
        sdk_version=pins["gradio"],
        python_version=f"{sys.version_info.major}.{sys.version_info.minor}",
        app_file="app.py",
        models=[model_repo_id],
        license="apache-2.0",
        tags=["touchasp", "speech", "automatic-speech-recognition", "mixture-of-experts"],
        emoji="🎙️",
        colorFrom="indigo",
        colorTo="green",
        pinned=False,
        short_description="Speech perception with an elastic budget",
    )
    card = SpaceCard.from_template(card_data, template_path=str(TEMPLATE), model_repo_id=model_repo_id)
    card.save(out_dir / "README.md")
    return out_dir


def requirement_pins(requirements: Path = REPOSITORY / "requirements.txt") -> dict[str, str]:
    """{package: version} of the `==` pins in `requirements` that the Space needs; an error names any missing."""
    pins = {}
    for line in requirements.read_text(encoding="utf-8").splitlines():
        name, separator, version = line.split("#")[0].strip().partition("==")
        if separator:
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    wanted = {name: name.lower().replace("_", "-") for name in SPACE_REQUIREMENTS}
    missing = [name for name, key in wanted.items() if key not in pins]
    if missing:
        raise ValueError(f"{requirements} pins no version of {missing}; the Space's requirements must be pinned")
    return {name: pins[key] for name, key in wanted.items()}


def space_requirements(pins: dict[str, str]) -> str:
    """requirements.txt of the Space: the CPU build of torch (not the multi-GB CUDA one), then the pins."""
    lines = [
        "# CPU Space: take torch's CPU wheel (its +cpu version outranks PyPI's CUDA build); on GPU hardware drop this",
        f"--extra-index-url {TORCH_CPU_INDEX}",
    ]
    return "\n".join(lines + [f"{name}=={version}" for name, version in pins.items()]) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `touchasp export-space`."""
    parser.add_argument("--model-repo", required=True, help="Hub id of the model the Space serves")
    parser.add_argument("--out", required=True, type=Path, help="new or empty folder for the Space files")
    parser.add_argument("--model-path", type=Path, default=None,
                        help="local model folder the app serves instead of downloading --model-repo (a try-out)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """`touchasp export-space`: write the folder and say how to try and upload it."""
    out_dir = export_space(args.model_repo, args.out, args.model_path)
    print(
        f"Space folder in {out_dir}; try it with `cd {out_dir} && python app.py`, upload it with "
        f"`touchasp push --folder {out_dir} --repo-id USER/SPACE --repo-type space`"
    )
    return 0
