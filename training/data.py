"""The training stream: parquet corpora -> weighted mix -> rank shard -> shuffle -> length buckets -> features.

Stages, each a named function:
- `corpus_stream`: every corpus streamed from its parquet shards (audio left encoded, `Audio(decode=False)`),
  mixed by weight with `interleave_datasets`, split per rank with `split_dataset_by_node`, buffer-shuffled.
- `plan_batches`: an endless pass over epochs (`set_epoch` per pass) that sorts pools of rows by duration and
  cuts them into batches of at most `max_batch_seconds` of audio. Every batch carries the `StreamPosition` right
  after it, which a checkpoint stores and which restarts the plan exactly there.
- `featurize_batch`: decode, augment (`augment_waveform`) and build model inputs + targets with the processor.
  `batches` runs it in worker processes, in order, so the main process always knows what was consumed.
"""

from __future__ import annotations

import ctypes
import io
import itertools
import multiprocessing
import signal
import sys
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import soxr
import torch
from datasets import Audio, Dataset, Features, IterableDataset, List, Value, interleave_datasets, load_dataset
from datasets.distributed import split_dataset_by_node

from processing.processing_touchasp import TouchASPProcessor

TARGET_FIELDS = ("text", "language", "emotion", "gender", "events")
# The targets of a silence row (`AugmentConfig.silence_row_prob`): AudioSet's `Silence`, no speech, nothing else known.
SILENCE_TARGETS = {"text": "", "language": "nospeech", "emotion": None, "gender": None, "events": ["Silence"]}
# The language label of rows without speech (event and music clips).
NO_SPEECH = "nospeech"
# The corpus row schema of DESIGN.md section 6.
CORPUS_FEATURES = Features(
    {
        "audio": Audio(), "text": Value("string"), "language": Value("string"), "emotion": Value("string"),
        "gender": Value("string"), "events": List(Value("string")), "id": Value("string"),
        "duration": Value("float32"), "source": Value("string"),
    }
)
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class StreamPosition:
    """Where a rank's stream stands: `consumed` rows of epoch `epoch` went into finished length-sorting pools,
    and `batches_done` batches of the pool starting there were already trained on."""

    epoch: int = 0
    consumed: int = 0
    batches_done: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class AugmentConfig:
    """Waveform augmentation; SpecAugment is the model's (`config.apply_spec_augment`)."""

    speed_factors: list[float] = field(default_factory=lambda: [0.9, 1.0, 1.1])
    speed_prob: float = 0.0
    noise_data_dir: str | None = None
    noise_prob: float = 0.0
    snr_db: list[float] = field(default_factory=lambda: [5.0, 20.0])
    noise_max_clips: int = 256
    # Silence at the clip's ends (NeMo's SilencePerturbation): up to silence_max_s at each end, over a recording's
    # noise floor at silence_db dBFS RMS that also lies under the speech, or exact zeros (silence_zero_prob).
    # Synthetic clips are cut tight; without it a model misreads speech that VAD segments or files pad.
    silence_prob: float = 0.0
    silence_max_s: float = 1.0
    silence_db: list[float] = field(default_factory=lambda: [-80.0, -45.0])
    silence_zero_prob: float = 0.25
    # Rows replaced by that noise floor alone, for the whole clip (silence_row_prob), labelled `SILENCE_TARGETS`: every
    # corpus row holds speech or a sound event, so a model never taught silence hears `Speech` in it.
    silence_row_prob: float = 0.0


@dataclass
class PlannedBatch:
    """Undecoded rows of one batch, their stream indices (augmentation seeds) and the position after them."""

    rows: list[dict[str, Any]]
    indices: list[int]
    epoch: int
    position_after: StreamPosition

    @property
    def seconds(self) -> float:
        return float(sum(row["duration"] for row in self.rows))


def encode_flac(waveform: np.ndarray, row_id: str, sampling_rate: int = 16000) -> dict[str, Any]:
    """A corpus row's `audio` cell: the waveform as 16-bit FLAC bytes (clipped to [-1, 1]), named `ROW_ID.flac`.
    FLAC keeps the shards a third of WAV's size, losslessly at the 16 bits the sources have."""
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(waveform, -1, 1), sampling_rate, format="FLAC", subtype="PCM_16")
    return {"bytes": buffer.getvalue(), "path": f"{row_id}.flac"}


def write_corpus(columns: dict[str, list], out_dir: str | Path, num_shards: int = 1, split: str = "train") -> Path:
    """Write rows in the DESIGN.md section-6 schema (`audio` as {"bytes", "path"}) as parquet shards
    `SPLIT-00000-of-0000N.parquet` that `load_corpus` streams back."""
    table = Dataset.from_dict(columns, features=CORPUS_FEATURES)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for shard in range(num_shards):
        path = out_dir / f"{split}-{shard:05d}-of-{num_shards:05d}.parquet"
        table.shard(num_shards, shard, contiguous=True).to_parquet(str(path))
    return out_dir


def load_corpus(data_dir: str | Path) -> IterableDataset:
    """One corpus of parquet shards (DESIGN.md section 6) as a stream whose audio stays encoded."""
    path = Path(data_dir)
    if not path.is_dir():
        raise FileNotFoundError(
            f"corpus data_dir {str(data_dir)!r} is not a folder; expected a folder of parquet shards"
        )
    files = sorted(str(file) for file in path.glob("**/*.parquet"))
    if not files:
        raise FileNotFoundError(f"corpus data_dir {str(data_dir)!r} holds no *.parquet shards")
    stream = load_dataset("parquet", data_files=files, split="train", streaming=True)
    missing = {"audio", "duration", "id", *TARGET_FIELDS} - set(stream.column_names or ())
    if missing:
        raise ValueError(f"corpus {str(data_dir)!r} lacks the column(s) {sorted(missing)}; see DESIGN.md section 6")
    return stream.cast_column("audio", Audio(decode=False))


def corpus_stream(
    corpora: list[dict[str, Any]],
    seed: int,
    shuffle_buffer: int,
    rank: int = 0,
    world_size: int = 1,
    stopping_strategy: str = "all_exhausted",
) -> IterableDataset:
    """The mixed, rank-sharded, shuffled stream of `corpora` (dicts with `data_dir` and optional `weight`).

    One epoch is one pass of `interleave_datasets` under `stopping_strategy`; `set_epoch` reshuffles it.
    """
    if not corpora:
        raise ValueError("data.corpora is empty; list at least one {data_dir: ..., weight: ...}")
    streams = [load_corpus(corpus["data_dir"]) for corpus in corpora]
    weights = np.array([float(corpus.get("weight", 1.0)) for corpus in corpora])
    if (weights <= 0).any():
        raise ValueError(f"corpus weights must be positive, got {weights.tolist()}")
    if len(streams) == 1:
        mixed = streams[0]
    else:
        mixed = interleave_datasets(
            streams, probabilities=(weights / weights.sum()).tolist(), seed=seed, stopping_strategy=stopping_strategy
        )
    return split_dataset_by_node(mixed, rank=rank, world_size=world_size).shuffle(seed=seed, buffer_size=shuffle_buffer)


def fits_decoder(row: dict[str, Any], processor: TouchASPProcessor, max_target_positions: int) -> bool:
    """Whether the row's decoder target (task tokens + transcript + eot) fits the model; longer rows are left
    out of training, as Whisper's recipes drop transcripts over 448 tokens, instead of crashing the step."""
    labels, _ = processor.build_target(**{name: row[name] for name in TARGET_FIELDS})
    return len(labels) <= max_target_positions


def bucket_by_duration(rows: list[dict[str, Any]], max_batch_seconds: float) -> list[list[int]]:
    """Indices of `rows` sorted by duration and cut into batches whose summed duration <= `max_batch_seconds`
    (a row longer than that is a batch of its own), so that padding is small."""
    order = sorted(range(len(rows)), key=lambda index: rows[index]["duration"])
    batches, current, seconds = [], [], 0.0
    for index in order:
        duration = float(rows[index]["duration"])
        if current and seconds + duration > max_batch_seconds:
            batches.append(current)
            current, seconds = [], 0.0
        current.append(index)
        seconds += duration
    if current:
        batches.append(current)
    return batches


def plan_batches(
    stream: IterableDataset,
    max_batch_seconds: float,
    pool_size: int,
    seed: int,
    start: StreamPosition = StreamPosition(),
) -> Iterator[PlannedBatch]:
    """Endless batches over epochs, starting exactly at `start`.

    Each pool of `pool_size` rows is length-bucketed and its batches are yielded in a seeded random order (so
    lengths vary from step to step). Pools never straddle epochs. Resuming skips `start.consumed` undecoded rows
    of the epoch with `islice`, not `IterableDataset.skip`, which drops the epoch's shuffling (datasets 5.2).
    """
    epoch, consumed, batches_done = start.epoch, start.consumed, start.batches_done
    while True:
        stream.set_epoch(epoch)
        rows_iterator = itertools.islice(iter(stream), consumed, None)
        yielded_any = consumed > 0
        while pool := list(itertools.islice(rows_iterator, pool_size)):
            yielded_any = True
            batches = bucket_by_duration(pool, max_batch_seconds)
            np.random.default_rng([seed, epoch, consumed]).shuffle(batches)
            pool_end = consumed + len(pool)
            for number in range(batches_done, len(batches)):
                last = number == len(batches) - 1
                after = StreamPosition(epoch, pool_end, 0) if last else StreamPosition(epoch, consumed, number + 1)
                chosen = batches[number]
                yield PlannedBatch([pool[i] for i in chosen], [consumed + i for i in chosen], epoch, after)
            consumed, batches_done = pool_end, 0
        if not yielded_any:
            raise ValueError("the training stream of this rank is empty: its corpora shard holds no rows")
        epoch, consumed = epoch + 1, 0


@dataclass(frozen=True)
class NoiseClip:
    """A background clip and the event classes it adds to the row it is mixed into."""

    waveform: np.ndarray
    events: tuple[str, ...]


def load_noise_clips(data_dir: str | Path, max_clips: int) -> list[dict[str, Any]]:
    """Up to `max_clips` rows ({"audio": encoded clip, "events"}) of an events corpus, mixed in as background noise.
    Only labelled rows without speech (language `nospeech`, events known) qualify: a second voice would be speech
    the target never transcribes, and unlabelled noise would leave a row's event labels incomplete."""
    rows = (row for row in load_corpus(data_dir) if row["language"] == NO_SPEECH and row["events"] is not None)
    clips = [{"audio": row["audio"], "events": row["events"]} for row in itertools.islice(rows, max_clips)]
    if not clips:
        raise ValueError(
            f"augment.noise_data_dir {str(data_dir)!r} holds no rows of language {NO_SPEECH!r} with events to mix in"
        )
    return clips


def augment_waveform(
    waveform: np.ndarray,
    rng: np.random.Generator,
    config: AugmentConfig,
    noise: list[NoiseClip],
    sampling_rate: int,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Speed perturbation (resampling: tempo and pitch change together, as in Kaldi's recipe), silence at the ends
    (`pad_with_silence`) and additive noise at an SNR drawn uniformly from `config.snr_db`; returns the waveform
    and the events of the noise mixed in (none when no noise was). Every draw comes from `rng`, so a row seeded by
    its stream position is augmented identically in any worker and after a resume."""
    if config.speed_prob > 0 and rng.random() < config.speed_prob:
        factor = float(rng.choice(config.speed_factors))
        if factor != 1.0:
            waveform = soxr.resample(waveform, sampling_rate * factor, sampling_rate).astype(np.float32)
    if config.silence_prob > 0 and rng.random() < config.silence_prob:
        waveform = pad_with_silence(waveform, rng, config, sampling_rate)
    if noise and config.noise_prob > 0 and rng.random() < config.noise_prob:
        clip = noise[int(rng.integers(len(noise)))]
        repeats = -(-len(waveform) // len(clip.waveform))
        offset = int(rng.integers(len(clip.waveform)))
        background = np.tile(clip.waveform, repeats + 1)[offset : offset + len(waveform)]
        snr = rng.uniform(*config.snr_db)
        signal_power = float(np.mean(waveform**2)) + 1e-10
        noise_power = float(np.mean(background**2)) + 1e-10
        waveform = (waveform + background * np.sqrt(signal_power / (noise_power * 10 ** (snr / 10)))).astype(np.float32)
        return waveform, clip.events
    return waveform, ()


def pad_with_silence(
    waveform: np.ndarray, rng: np.random.Generator, config: AugmentConfig, sampling_rate: int
) -> np.ndarray:
    """`waveform` with 0 to `config.silence_max_s` seconds of silence before and after it (drawn apart), over a
    Gaussian noise floor whose level is drawn from `config.silence_db`, or digital silence."""
    before, after = (rng.uniform(0.0, config.silence_max_s, size=2) * sampling_rate).astype(int)
    padded = np.concatenate([np.zeros(before, np.float32), waveform, np.zeros(after, np.float32)])
    return padded + noise_floor(len(padded), rng, config)


def noise_floor(length: int, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """`length` samples of Gaussian noise at a level drawn from `config.silence_db` dBFS RMS, or zeros
    (`config.silence_zero_prob`)."""
    if rng.random() < config.silence_zero_prob:
        return np.zeros(length, np.float32)
    level = 10 ** (rng.uniform(*config.silence_db) / 20)
    return rng.normal(0.0, level, length).astype(np.float32)


class Featurizer:
    """Turns a `PlannedBatch` into model inputs; one per worker process (holds the processor and noise clips)."""

    def __init__(
        self, processor: TouchASPProcessor, augment: AugmentConfig, noise_sources: list[dict], seed: int, rank: int
    ):
        self.processor = processor
        self.augment = augment
        self.seed = seed
        self.rank = rank
        self.sampling_rate = processor.feature_extractor.sampling_rate
        self.noise = [
            NoiseClip(processor.load_audio(source["audio"]), tuple(source["events"] or ())) for source in noise_sources
        ]

    def __call__(self, batch: PlannedBatch) -> dict[str, np.ndarray]:
        """Inputs (`input_features`, `attention_mask`, `labels`, `decoder_input_ids`) as numpy arrays. Events of
        mixed-in noise join a row's labelled events (unlabelled events stay unlabelled); a silence row (same length)
        takes `SILENCE_TARGETS`."""
        waveforms = []
        targets = {name: [row[name] for row in batch.rows] for name in TARGET_FIELDS}
        for number, (row, index) in enumerate(zip(batch.rows, batch.indices)):
            waveform = self.processor.load_audio(row["audio"])
            rng = np.random.default_rng([self.seed, self.rank, batch.epoch, index])
            if self.augment.silence_row_prob > 0 and rng.random() < self.augment.silence_row_prob:
                waveforms.append(noise_floor(len(waveform), rng, self.augment))
                for name, value in SILENCE_TARGETS.items():
                    targets[name][number] = value
                continue
            waveform, heard = augment_waveform(waveform, rng, self.augment, self.noise, self.sampling_rate)
            waveforms.append(waveform)
            if heard and row["events"] is not None:
                targets["events"][number] = list(dict.fromkeys([*row["events"], *heard]))
        return dict(self.processor(audio=waveforms, sampling_rate=self.sampling_rate, return_tensors="np", **targets))


_worker_featurizer: Featurizer | None = None


def _init_worker(featurizer: Featurizer) -> None:
    global _worker_featurizer
    _worker_featurizer = featurizer
    if sys.platform == "linux":
        # Die with the trainer even when it is SIGKILLed: a forked worker holds its own task queue's write end,
        # so it would otherwise wait on that queue forever.
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _featurize_in_worker(batch: PlannedBatch) -> dict[str, np.ndarray]:
    return _worker_featurizer(batch)


@dataclass
class Batch:
    """One training batch: model inputs as tensors plus what the loop logs and checkpoints."""

    inputs: dict[str, torch.Tensor]
    ids: list[str]
    seconds: float
    position_after: StreamPosition


def batches(plan: Iterator[PlannedBatch], featurizer: Featurizer, num_workers: int, prefetch: int) -> Iterator[Batch]:
    """Featurized batches in plan order. With `num_workers` > 0, worker processes featurize up to `prefetch`
    batches ahead; the bounded queue of futures keeps the order and never reads the endless plan eagerly
    (`Pool.imap` would)."""
    if num_workers == 0:
        for planned in plan:
            yield _to_batch(planned, featurizer(planned))
        return
    # fork: workers inherit the imported modules, as torch DataLoader workers do; the featurizer is sent once.
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(num_workers, mp_context=context, initializer=_init_worker, initargs=(featurizer,)) as pool:
        pending: deque[tuple[PlannedBatch, Future]] = deque()
        for planned in itertools.chain(plan, [None]):
            if planned is not None:
                pending.append((planned, pool.submit(_featurize_in_worker, planned)))
            while pending and (planned is None or len(pending) > max(prefetch, num_workers)):
                done, future = pending.popleft()
                yield _to_batch(done, future.result())


def _to_batch(planned: PlannedBatch, arrays: dict[str, np.ndarray]) -> Batch:
    inputs = {name: torch.from_numpy(np.asarray(array)) for name, array in arrays.items()}
    ids = [str(row["id"]) for row in planned.rows]
    return Batch(inputs, ids, planned.seconds, planned.position_after)
