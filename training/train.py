"""Train TouchASP with Accelerate on `datasets` streams (one code path for one process and for DDP).

    touchasp train --config training/configs/tiny.yaml [--resume] [--set data.max_batch_seconds=30 ...]
    accelerate launch -m training.train --config training/configs/tiny.yaml [--resume]

Two CPU processes (STACK.md 2f): `ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2
--num_machines 1 --mixed_precision no --dynamo_backend no --main_process_port 29514 -m training.train --config ...`

The recipe is a YAML file whose sections are `DEFAULTS` below. Every rank reads its own shard of the stream
and runs exactly `max_steps` optimizer steps (endless per-rank iterators: uneven shards cannot hang DDP), with
`elastic_step=global_step` so every rank draws the same k per eMoE layer. Output folder:
`tokenizer/` and `feature_extractor/` (when trained or fitted by the recipe), `checkpoint-STEP/` (last `keep_last`), `logs/` (TensorBoard),
`examples.jsonl` (ids, loss, audio seconds, step and data-wait seconds per step), `eval_results.jsonl`, `final/` (a `save_touchasp` model folder;
with `checkpoint.average_last` N > 1, of the mean weights of the last N checkpoints),
`recipe.json` (the resolved recipe, with every `--set` applied: what the run trained; `training.release` reads it).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import json
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import (
    DistributedDataParallelKwargs,
    InitProcessGroupKwargs,
    ProjectConfiguration,
    gather_object,
    set_seed,
)
from safetensors.torch import load_file
from tqdm import tqdm

from modeling_touchasp import TouchASPConfig, TouchASPForConditionalGeneration, save_touchasp
from modeling_touchasp.emoe import TouchASPRouter
from processing.feature_extraction_touchasp import TouchASPFeatureExtractor
from processing.processing_touchasp import TouchASPProcessor
from processing.tokenization_touchasp import TouchASPTokenizer, train_tokenizer
from training.data import (
    AugmentConfig,
    Batch,
    Featurizer,
    StreamPosition,
    batches,
    corpus_stream,
    fits_decoder,
    load_noise_clips,
    plan_batches,
)

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "output_dir": None,
    # TouchASPConfig keyword arguments, or `init_from: PATH` of a saved model folder (then its processor is used).
    "model": {},
    # `path` of a saved tokenizer, or train one from the training text with `vocab_size`.
    "tokenizer": {"path": None, "vocab_size": 1000},
    # cmvn "utterance", or "global": per-bin statistics of up to `cmvn_seconds` of training audio (an equal share
    # from every shard), fitted by rank 0 as the recipe's second step and kept in output_dir/feature_extractor.
    "features": {"cmvn": "utterance", "cmvn_seconds": 1800.0},
    "data": {
        "corpora": [],  # [{data_dir: PATH, weight: 1.0}, ...]
        "stopping_strategy": "all_exhausted",
        "max_batch_seconds": 60.0,
        "bucket_pool_size": 64,  # rows sorted by duration together before cutting batches
        "shuffle_buffer": 256,
        "num_workers": 1,
        "prefetch": 4,
    },
    "augment": {
        "speed_factors": [0.9, 1.0, 1.1],
        "speed_prob": 0.0,
        "noise_data_dir": None,
        "noise_prob": 0.0,
        "snr_db": [5.0, 20.0],
        "noise_max_clips": 256,
        "silence_prob": 0.0,
        "silence_max_s": 1.0,
        "silence_db": [-80.0, -45.0],
        "silence_zero_prob": 0.25,
        "silence_row_prob": 0.0,
    },
    "optimizer": {"lr": 1e-3, "betas": [0.9, 0.98], "weight_decay": 0.01, "eps": 1e-8},
    "schedule": {"name": "cosine", "warmup_steps": 100, "min_lr_ratio": 0.0},  # name: cosine | noam | constant
    "max_steps": 1000,
    "grad_accumulation": 1,
    "grad_clip": 1.0,
    "mixed_precision": "no",  # no | bf16 | auto (bf16 where the device supports it)
    "eval": {"data": None, "ks": None, "interval": 0, "batch_size": 8, "max_rows": None},
    # average_last: `final/` holds the mean weights of the last N checkpoints (WeNet's model averaging); 1 is off
    "checkpoint": {"interval": 500, "keep_last": 3, "average_last": 1},
    "log": {"interval": 10, "record_k": False},  # record_k: write the k every eMoE layer used, per rank and step
}
# Sections that may change between a run and its resume without changing what is trained.
RESUMABLE_SECTIONS = ("output_dir", "eval", "checkpoint", "log")
# Collectives wait for the slowest rank, and an evaluation of a whole test set at several k can outlast the default
# (10 min NCCL, 30 min gloo). The price: a rank that dies is noticed by the others only this late.
BARRIER_TIMEOUT = timedelta(hours=3)
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE = "trainer_state.json"
TEMP_PREFIX = ".tmp-"  # a checkpoint, `final/`, tokenizer or CMVN being written; renamed into place when complete
# What the recipe trains or fits before step 1; kept for a resume, rebuilt when no checkpoint vouches for them.
TOKENIZER_DIR, FEATURE_EXTRACTOR_DIR = "tokenizer", "feature_extractor"
RECIPE_FILE = "recipe.json"


def load_config(path: str | Path, overrides: list[str] = ()) -> dict[str, Any]:
    """The recipe at `path` over `DEFAULTS`, then `--set section.key=value` overrides (values parsed as YAML;
    list items by index: `data.corpora.0.data_dir=...`; a list the recipe leaves out starts as the default's, and
    index len(list) adds an item). Unknown keys are errors that name the key."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training config {str(path)!r} does not exist")
    recipe = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(recipe, dict):
        raise ValueError(f"training config {path} must be a YAML mapping of sections, got {type(recipe).__name__}")
    for override in overrides:
        key, equals, value = override.partition("=")
        if not equals:
            raise ValueError(f"--set {override!r} must look like section.key=value")
        _set_path(recipe, key.split("."), yaml.safe_load(value), override)
    config = _merge(copy.deepcopy(DEFAULTS), recipe, str(path))
    if not config["output_dir"]:
        raise ValueError(f"{path}: output_dir is required")
    if config["mixed_precision"] not in ("no", "bf16", "auto"):
        raise ValueError(f"{path}: mixed_precision={config['mixed_precision']!r}; expected no, bf16 or auto")
    if config["schedule"]["name"] not in ("cosine", "noam", "constant"):
        raise ValueError(f"{path}: schedule.name={config['schedule']['name']!r}; expected cosine, noam or constant")
    if not isinstance(config["data"]["corpora"], list):
        raise ValueError(f"{path}: data.corpora must be a list of {{data_dir, weight}} mappings")
    average_last, keep_last = config["checkpoint"]["average_last"], config["checkpoint"]["keep_last"]
    if average_last > 1 and (config["checkpoint"]["interval"] <= 0 or 0 < keep_last < average_last):
        raise ValueError(
            f"{path}: checkpoint.average_last={average_last} needs checkpoints (interval > 0) and keep_last >= it "
            f"(or 0: keep all), got interval={config['checkpoint']['interval']}, keep_last={keep_last}"
        )
    for corpus in config["data"]["corpora"]:
        if not isinstance(corpus, dict):
            raise ValueError(f"{path}: data.corpora entry {corpus!r} must be a mapping with data_dir and weight")
        unknown = set(corpus) - {"data_dir", "weight"}
        if unknown or "data_dir" not in corpus:
            raise ValueError(f"{path}: data.corpora entry {corpus} must have data_dir and optional weight only")
    return config


def _set_path(tree: Any, keys: list[str], value: Any, override: str) -> None:
    default = DEFAULTS  # the same place in DEFAULTS, while there is one
    for position, key in enumerate(keys):
        last = position == len(keys) - 1
        if isinstance(tree, list):
            if not key.isdigit() or int(key) > len(tree):
                raise ValueError(f"--set {override!r}: {key!r} is not an index of a list of {len(tree)}")
            key = int(key)
            if key == len(tree):
                tree.append({})
            default = None
        elif not last:
            default = default.get(key) if isinstance(default, dict) else None
            tree = tree.setdefault(key, copy.deepcopy(default) if isinstance(default, list) else {})
            continue
        if last:
            tree[key] = value
        else:
            tree = tree[key]


def _merge(defaults: dict, recipe: dict, where: str) -> dict:
    """`recipe` over `defaults`; every key must exist in `defaults` except inside `model` (TouchASPConfig's)."""
    for key, value in recipe.items():
        if key not in defaults:
            raise ValueError(f"{where}: unknown key {key!r}; expected one of {sorted(defaults)}")
        if key == "model":
            defaults[key] = dict(value or {})
        elif isinstance(defaults[key], dict) and defaults[key]:
            if not isinstance(value, dict):
                raise ValueError(f"{where}: {key} must be a mapping, got {value!r}")
            defaults[key] = _merge(defaults[key], value, f"{where}: {key}")
        else:
            defaults[key] = value
    return defaults


def config_hash(config: dict[str, Any]) -> str:
    """Hash of everything that shapes the trajectory, so a resume refuses a changed recipe."""
    trained = {key: value for key, value in config.items() if key not in RESUMABLE_SECTIONS}
    trained["data"] = {k: v for k, v in trained["data"].items() if k not in ("num_workers", "prefetch")}
    return hashlib.sha256(json.dumps(trained, sort_keys=True).encode()).hexdigest()[:16]


def corpus_texts(corpora: list[dict[str, Any]]) -> Iterator[str]:
    """Transcripts of the training corpora, read from the parquet `text` column alone (no audio)."""
    for corpus in corpora:
        for shard in sorted(Path(corpus["data_dir"]).glob("**/*.parquet")):
            for text in pq.read_table(shard, columns=["text"]).column("text").to_pylist():
                if text:
                    yield text


def corpus_audio(corpora: list[dict[str, Any]], max_seconds: float) -> Iterator[dict[str, Any]]:
    """Audio cells of the training corpora, an equal share of `max_seconds` from every shard, so that every corpus
    of the recipe is represented (the first shards alone would hold only the first corpus)."""
    shards = [shard for corpus in corpora for shard in sorted(Path(corpus["data_dir"]).glob("**/*.parquet"))]
    share = max_seconds / max(len(shards), 1)
    for shard in shards:
        taken = 0.0
        for batch in pq.ParquetFile(shard).iter_batches(batch_size=64, columns=["audio", "duration"]):
            for audio, duration in zip(batch.column("audio").to_pylist(), batch.column("duration").to_pylist()):
                if taken >= share:
                    break
                taken += duration
                yield audio
            if taken >= share:
                break


def build_feature_extractor(
    config: dict[str, Any], output_dir: Path, accelerator: Accelerator
) -> TouchASPFeatureExtractor:
    """The recipe's second step: utterance CMVN, or global CMVN fitted on the training audio (by rank 0, into
    output_dir/feature_extractor, reused on resume). Global statistics keep what utterance CMVN erases, each
    clip's average spectrum: the voice (gender) and stationary sounds (events)."""
    features = config["features"]
    if features["cmvn"] != "global":
        return TouchASPFeatureExtractor(cmvn=features["cmvn"])
    path = output_dir / FEATURE_EXTRACTOR_DIR
    if accelerator.is_main_process and not path.is_dir():
        extractor = TouchASPFeatureExtractor().fit_global_cmvn(
            corpus_audio(config["data"]["corpora"], features["cmvn_seconds"])
        )
        _write_atomically(path, lambda temp: extractor.save_pretrained(str(temp)))
    accelerator.wait_for_everyone()
    return TouchASPFeatureExtractor.from_pretrained(str(path))


def build_processor(config: dict[str, Any], output_dir: Path, accelerator: Accelerator) -> TouchASPProcessor:
    """The recipe's first steps: the init model's processor, or a saved tokenizer or one trained on the corpus
    text (by rank 0, into output_dir/tokenizer, reused on resume) with `build_feature_extractor`'s features."""
    if config["model"].get("init_from"):
        return TouchASPProcessor.from_pretrained(config["model"]["init_from"])
    path = config["tokenizer"]["path"]
    if path is None:
        path = output_dir / TOKENIZER_DIR
        if accelerator.is_main_process and not path.is_dir():
            texts = corpus_texts(config["data"]["corpora"])
            _write_atomically(path, lambda temp: train_tokenizer(texts, temp, config["tokenizer"]["vocab_size"]))
        accelerator.wait_for_everyone()
    elif not Path(path, "tokenizer.json").is_file():
        raise FileNotFoundError(f"tokenizer.path {str(path)!r} holds no tokenizer.json")
    tokenizer = TouchASPTokenizer.from_pretrained(str(path))
    return TouchASPProcessor(build_feature_extractor(config, output_dir, accelerator), tokenizer)


def _write_atomically(path: Path, write) -> None:
    """`write(temp)` into a temp folder beside `path`, then a rename over any older `path`: a folder at `path` is
    always complete."""
    temp = path.with_name(f"{TEMP_PREFIX}{path.name}")
    if temp.exists():
        shutil.rmtree(temp)
    write(temp)
    if path.exists():
        shutil.rmtree(path)
    os.replace(temp, path)


def build_model(config: dict[str, Any], processor: TouchASPProcessor) -> TouchASPForConditionalGeneration:
    """A fresh model sized to the tokenizer (special ids from it), or the `init_from` folder's weights."""
    kwargs = dict(config["model"])
    init_from = kwargs.pop("init_from", None)
    if init_from:
        return TouchASPForConditionalGeneration.from_pretrained(init_from, **kwargs)
    tokenizer = processor.tokenizer
    ids = dict(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.sot_token_id,
        decoder_start_token_id=tokenizer.sot_token_id, eos_token_id=tokenizer.eot_token_id,
        transcribe_token_id=tokenizer.transcribe_token_id,
    )
    return TouchASPForConditionalGeneration(TouchASPConfig(**{**ids, **kwargs}))


def learning_rate_lambda(schedule: dict[str, Any], max_steps: int):
    """Multiplier of the base lr at a step: linear warmup, then cosine to `min_lr_ratio`, Noam's inverse square
    root (normalised to 1 at the end of warmup), or constant."""
    warmup = max(int(schedule["warmup_steps"]), 0)
    minimum = float(schedule["min_lr_ratio"])

    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule["name"] == "noam":
            return math.sqrt(max(warmup, 1) / (step + 1))
        if schedule["name"] == "cosine":
            progress = min((step - warmup) / max(max_steps - warmup, 1), 1.0)
            return minimum + (1 - minimum) * 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0

    return multiplier


def complete_checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every finished checkpoint, oldest first. Temp folders are never listed, and a folder
    without `trainer_state.json` (written last, before the atomic rename) is not complete."""
    found = []
    for folder in output_dir.glob("checkpoint-*") if output_dir.is_dir() else ():
        match = CHECKPOINT_PATTERN.match(folder.name)
        if match and (folder / TRAINER_STATE).is_file():
            found.append((int(match.group(1)), folder))
    return sorted(found)


def save_checkpoint(
    accelerator: Accelerator, output_dir: Path, step: int, position: StreamPosition, hash_: str, keep_last: int
) -> None:
    """`save_state` (model, optimizer, scheduler, RNG of every rank) into a temp folder, then `trainer_state.json`
    (step, every rank's stream position, config hash), then one `os.replace` to `checkpoint-STEP`."""
    positions = gather_object([position.to_dict()])
    temp = output_dir / f"{TEMP_PREFIX}checkpoint-{step}"
    if accelerator.is_main_process and temp.exists():
        shutil.rmtree(temp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(temp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        state = {"global_step": step, "stream_positions": positions, "config_hash": hash_}
        (temp / TRAINER_STATE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        final = output_dir / f"checkpoint-{step}"
        if final.exists():
            shutil.rmtree(final)
        os.replace(temp, final)
        for _, old in complete_checkpoints(output_dir)[:-keep_last] if keep_last > 0 else ():
            shutil.rmtree(old)
    accelerator.wait_for_everyone()


def average_checkpoints(model: torch.nn.Module, output_dir: Path, count: int) -> list[int]:
    """Set `model`'s weights to the element-wise mean of the last `count` complete checkpoints' (integer tensors:
    the newest one's); returns their steps. Tied weights are stored once and share storage, so copying in place
    updates every name of a tensor."""
    chosen = complete_checkpoints(output_dir)[-count:]
    states = [load_file(str(folder / "model.safetensors")) for _, folder in chosen]
    current = model.state_dict()
    with torch.no_grad():
        for name, newest in states[-1].items():
            if newest.is_floating_point():
                newest = torch.stack([state[name].float() for state in states]).mean(0)
            current[name].copy_(newest)
    return [step for step, _ in chosen]


def restore_checkpoint(accelerator: Accelerator, output_dir: Path, hash_: str) -> tuple[int, StreamPosition]:
    """Load the newest complete checkpoint; (global step, this rank's stream position). (0, start) when none."""
    checkpoints = complete_checkpoints(output_dir)
    if not checkpoints:
        accelerator.print(f"--resume: no complete checkpoint in {output_dir}; starting from step 0")
        return 0, StreamPosition()
    step, folder = checkpoints[-1]
    state = json.loads((folder / TRAINER_STATE).read_text(encoding="utf-8"))
    if state["config_hash"] != hash_:
        raise ValueError(
            f"{folder} was trained with another recipe (config hash {state['config_hash']}, now {hash_}); only the "
            f"sections {', '.join(RESUMABLE_SECTIONS)} may change on --resume"
        )
    if len(state["stream_positions"]) != accelerator.num_processes:
        raise ValueError(
            f"{folder} holds {len(state['stream_positions'])} ranks' stream positions; resume it with as many "
            f"processes, not {accelerator.num_processes}"
        )
    accelerator.load_state(str(folder))
    accelerator.print(f"resumed from {folder} at step {step}")
    return step, StreamPosition(**state["stream_positions"][accelerator.process_index])


class KRecorder:
    """Records the k each eMoE router actually used (its top-k width) in training forwards, to check that ranks
    agree; evaluation passes are left out."""

    def __init__(self, model: torch.nn.Module):
        self.ks: list[int] = []
        for module in model.modules():
            if isinstance(module, TouchASPRouter):
                module.register_forward_hook(self._record)

    def _record(self, module: torch.nn.Module, _inputs: Any, output: tuple) -> None:
        if module.training:
            self.ks.append(output[2].shape[-1])

    def pop(self) -> list[int]:
        ks, self.ks = self.ks, []
        return ks


class Evaluator:
    """Scores the model on `eval.data` at each k with `training.evaluation`. Every rank decodes every
    `world_size`-th row; rank 0 gathers the outputs and scores them."""

    def __init__(self, eval_config: dict[str, Any], ks: list[int], rank: int, world_size: int):
        from training.evaluation import load_metrics, read_rows

        rows = list(read_rows(eval_config["data"]))
        self.rows = rows[: eval_config["max_rows"]] if eval_config["max_rows"] else rows
        self.share = self.rows[rank::world_size]
        self.ks = ks
        self.batch_size = eval_config["batch_size"]
        self.metrics = load_metrics() if rank == 0 else None

    def __call__(
        self, model: TouchASPForConditionalGeneration, processor: TouchASPProcessor
    ) -> dict[str, float] | None:
        """Flat scores on rank 0 (None elsewhere): `eval/k{k}/cer`, `lid_accuracy`, `gender_accuracy`,
        `event_micro_f1` (where labelled). Every rank must call it: the outputs are gathered."""
        from training.evaluation import decode_rows, score_rows

        model.eval()
        scores = {}
        try:
            for k in self.ks:
                mine, _, _ = decode_rows(model, processor, self.share, k, self.batch_size)
                shares = gather_object([mine])  # one list per rank
                if self.metrics is None:
                    continue
                result = score_rows(self.rows, rows_in_order(shares, len(self.rows)), self.metrics)
                headline = {
                    "cer": (result["cer"] or {}).get("all", {}).get("cer"),
                    "lid_accuracy": (result["language"] or {}).get("accuracy"),
                    "gender_accuracy": (result["gender"] or {}).get("accuracy"),
                    "event_micro_f1": (result["events"] or {}).get("micro_f1"),
                }
                scores.update({f"eval/k{k}/{name}": value for name, value in headline.items() if value is not None})
        finally:
            model.train()
        return scores if self.metrics is not None else None


def rows_in_order(shares: list[list], count: int) -> list:
    """Undo `rows[rank::world_size]`: `shares[rank]` holds rows rank, rank + world_size, ... of `count` rows."""
    return [shares[row % len(shares)][row // len(shares)] for row in range(count)]


def _flat_hparams(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """TensorBoard hparams take scalars only: nested keys joined by '.', lists and None as strings."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flat_hparams(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat


def _mixed_precision(setting: str) -> str:
    if setting != "auto":
        return setting
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def prepare_output_dir(accelerator: Accelerator, output_dir: Path, resume: bool, made_here: list[str]) -> None:
    """Create `output_dir`, drop temp folders of interrupted saves, and start a fresh run's per-step logs empty
    (a resume appends to them: the last record of a step wins). A fresh run refuses a folder with checkpoints.
    Without a checkpoint (whose config hash proves the recipe unchanged) the run starts at step 0, so what the
    recipe makes before step 1 (`made_here`: tokenizer, CMVN), if an earlier attempt, perhaps of another recipe,
    left it, is dropped and made again."""
    checkpoints = complete_checkpoints(output_dir)
    if not resume and checkpoints:
        raise FileExistsError(
            f"output_dir {output_dir} already holds checkpoints; pass --resume to continue them, or choose another"
        )
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        stale = list(output_dir.glob(f"{TEMP_PREFIX}*"))
        if not checkpoints:
            stale += [output_dir / name for name in made_here]
        for leftover in stale:
            if leftover.is_dir():
                shutil.rmtree(leftover)
            elif leftover.exists():
                leftover.unlink()
        for log in () if resume else ("examples.jsonl", "eval_results.jsonl", "drawn_k_rank*.jsonl"):
            for path in output_dir.glob(log):
                path.unlink()
    accelerator.wait_for_everyone()


def build_optimizer(
    model: torch.nn.Module, config: dict[str, Any]
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW and its warmup + decay schedule, both from the recipe."""
    settings = config["optimizer"]
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings["lr"], betas=tuple(settings["betas"]),
        weight_decay=settings["weight_decay"], eps=settings["eps"],
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, learning_rate_lambda(config["schedule"], config["max_steps"])
    )
    return optimizer, scheduler


def train(config: dict[str, Any], resume: bool = False) -> Path:
    """Run the recipe `config` (see `load_config`); returns the folder of the final model."""
    output_dir = Path(config["output_dir"])
    accelerator = Accelerator(
        mixed_precision=_mixed_precision(config["mixed_precision"]),
        log_with="tensorboard",
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
        kwargs_handlers=[
            DistributedDataParallelKwargs(find_unused_parameters=True),
            InitProcessGroupKwargs(timeout=BARRIER_TIMEOUT),
        ],
    )
    rank, world_size = accelerator.process_index, accelerator.num_processes
    made_here = [FEATURE_EXTRACTOR_DIR] + ([TOKENIZER_DIR] if config["tokenizer"]["path"] is None else [])
    prepare_output_dir(accelerator, output_dir, resume, made_here)
    set_seed(config["seed"])
    hash_ = config_hash(config)

    # The stream first: a wrong corpus path fails before the tokenizer is trained on it.
    data = config["data"]
    stream = corpus_stream(
        data["corpora"], config["seed"], data["shuffle_buffer"], rank, world_size, data["stopping_strategy"]
    )
    augment = AugmentConfig(**config["augment"])
    noise = load_noise_clips(augment.noise_data_dir, augment.noise_max_clips) if augment.noise_data_dir else []
    processor = build_processor(config, output_dir, accelerator)
    model = build_model(config, processor)
    model.train()
    eval_config = config["eval"]
    eval_ks = eval_config["ks"] or model.config.elastic_k_choices
    if eval_config["data"] and eval_config["interval"] > 0:
        pool = model.config.expert_pool_size or model.config.n_routed_experts
        wrong = [k for k in eval_ks if not 1 <= k <= pool]
        if wrong:
            raise ValueError(f"eval.ks {wrong} outside 1..{pool} (the routed experts)")
    stream = stream.filter(fits_decoder, fn_kwargs=dict(processor=processor,
                                                        max_target_positions=model.config.max_target_positions))
    optimizer, scheduler = build_optimizer(model, config)
    # The scheduler is not passed to prepare(): Accelerate's wrapper steps it once per process, which would make
    # the schedule depend on the world size. It is still saved with the state.
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    recorder = KRecorder(model) if config["log"]["record_k"] else None

    step, position = restore_checkpoint(accelerator, output_dir, hash_) if resume else (0, StreamPosition())
    if accelerator.is_main_process:  # after the resume check: a refused recipe never replaces the one trained
        temp = output_dir / f"{TEMP_PREFIX}{RECIPE_FILE}"
        temp.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        os.replace(temp, output_dir / RECIPE_FILE)

    plan = plan_batches(stream, data["max_batch_seconds"], data["bucket_pool_size"], config["seed"], position)
    featurizer = Featurizer(processor, augment, noise, config["seed"], rank)
    stream_batches = batches(plan, featurizer, data["num_workers"], data["prefetch"])

    evaluator = None
    if eval_config["data"] and eval_config["interval"] > 0:
        evaluator = Evaluator(eval_config, eval_ks, rank, world_size)
    if accelerator.is_main_process:
        accelerator.init_trackers("touchasp", config=_flat_hparams(config))

    progress = tqdm(
        total=config["max_steps"], initial=step, desc="train", disable=not accelerator.is_local_main_process
    )
    window_started, window_seconds = time.perf_counter(), 0.0
    while step < config["max_steps"]:
        step_started = time.perf_counter()
        loss, lr, seconds, data_wait, ids, position = _train_step(
            accelerator, model, optimizer, scheduler, stream_batches, step, config
        )
        step_seconds = time.perf_counter() - step_started
        step += 1
        window_seconds += seconds
        all_ids = gather_object([ids])
        if accelerator.is_main_process:
            step_ids = [identifier for rank_ids in all_ids for identifier in rank_ids]
            _append_jsonl(
                output_dir / "examples.jsonl",
                {"step": step, "loss": loss, "ids": step_ids, "audio_seconds": seconds,
                 "step_seconds": step_seconds, "data_wait_seconds": data_wait},
            )
        if recorder is not None:
            _append_jsonl(output_dir / f"drawn_k_rank{rank}.jsonl", {"step": step, "k": recorder.pop()})
        speed = window_seconds / (time.perf_counter() - window_started)
        progress.set_postfix(loss=f"{loss:.4f}", audio_s_per_s=f"{speed:.1f}")
        progress.update(1)
        if _due(step, config["log"]["interval"], config["max_steps"]):
            accelerator.log(
                {"train/loss": loss, "train/lr": lr, "train/audio_seconds_per_second": speed,
                 "train/data_wait_share": data_wait / step_seconds},
                step=step,
            )
            window_started, window_seconds = time.perf_counter(), 0.0
        if evaluator is not None and _due(step, eval_config["interval"], config["max_steps"]):
            scores = evaluator(accelerator.unwrap_model(model), processor)
            if scores is not None:
                accelerator.log(scores, step=step)
                _append_jsonl(output_dir / "eval_results.jsonl", {"step": step, **scores})
        if _due(step, config["checkpoint"]["interval"], config["max_steps"]):
            save_checkpoint(accelerator, output_dir, step, position, hash_, config["checkpoint"]["keep_last"])
    progress.close()

    final = output_dir / "final"
    if accelerator.is_main_process:  # a `final/` that exists is complete
        trained = accelerator.unwrap_model(model)
        if config["checkpoint"]["average_last"] > 1:
            steps = average_checkpoints(trained, output_dir, config["checkpoint"]["average_last"])
            print(f"final model: the mean of checkpoints {steps}")
        _write_atomically(final, lambda temp: save_touchasp(trained, processor, temp))
    accelerator.end_training()
    stream_batches.close()
    return final


def _train_step(
    accelerator: Accelerator,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    stream_batches: Iterator[Batch],
    step: int,
    config: dict[str, Any],
) -> tuple[float, float, float, float, list[str], StreamPosition]:
    """One optimizer step over `grad_accumulation` batches, all at `elastic_step=step` (one k draw per step).

    Returns (mean loss over ranks and batches, the learning rate of this step, audio seconds of all ranks,
    seconds this rank waited for data, this rank's example ids, the stream position after the last batch)."""
    accumulation = config["grad_accumulation"]
    totals = torch.zeros(2)
    ids: list[str] = []
    data_wait = 0.0
    for micro in range(accumulation):
        waiting_since = time.perf_counter()
        batch = next(stream_batches)
        data_wait += time.perf_counter() - waiting_since
        # Gradients are all-reduced once, on the last micro-batch.
        sync = contextlib.nullcontext() if micro == accumulation - 1 else accelerator.no_sync(model)
        with sync, accelerator.autocast():
            inputs = {name: tensor.to(accelerator.device) for name, tensor in batch.inputs.items()}
            loss = model(**inputs, elastic_step=step).loss
            accelerator.backward(loss / accumulation)
        totals += torch.tensor([loss.item() / accumulation, batch.seconds])
        ids += batch.ids
    if config["grad_clip"]:
        accelerator.clip_grad_norm_(model.parameters(), config["grad_clip"])
    lr = scheduler.get_last_lr()[0]
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    loss_sum, seconds = accelerator.reduce(totals.to(accelerator.device), reduction="sum").tolist()
    return loss_sum / accelerator.num_processes, lr, seconds, data_wait, ids, batch.position_after


def _due(step: int, interval: int, max_steps: int) -> bool:
    """Whether a periodic action (interval <= 0: never) runs after `step`; every one also runs after the last."""
    return interval > 0 and (step % interval == 0 or step == max_steps)


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(json.dumps(record, ensure_ascii=False) + "\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `touchasp train`."""
    parser.add_argument("--config", required=True, help="training recipe (YAML), e.g. training/configs/tiny.yaml")
    parser.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a recipe value, e.g. --set data.corpora.0.data_dir=corpora/mixed/train --set max_steps=50",
    )
    parser.add_argument(
        "--data-dir", help="shorthand for --set data.corpora.0.data_dir=DATA_DIR (the only corpus of a recipe without)"
    )


def run(args: argparse.Namespace) -> int:
    """`touchasp train`: load the recipe with its overrides and train."""
    overrides = list(args.overrides)
    if args.data_dir:
        overrides.append(f"data.corpora.0.data_dir={args.data_dir}")
    final = train(load_config(args.config, overrides), resume=args.resume)
    print(f"final model in {final}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="touchasp train", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
