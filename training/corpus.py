"""`touchasp corpus`: multilingual multi-task corpora from espeak-ng and the real audio of Debian packages.

Recipes (DESIGN.md section 6 rows, ../shared/DATA.md sources):
- `synthetic`: espeak-ng speech in 17 languages (Mandarin as `cmn-latn-pinyin` fed pinyin of the Hanzi
  transcript, Cantonese as `yue`), male and female voice variants with pitch tied to gender, random speed;
  sentences from the translated texts of tuxpaint stamps and fillets-ng dialogue.
- `real`: asterisk prompts (en es fr it ru), fillets-ng dialogue (cs nl, gender from the speaker's font),
  tuxpaint spoken descriptions (12 languages), drawn round-robin over (package, language).
- `events`: labelled event and music clips alone (language `nospeech`), and synthetic speech mixed with them
  at chosen SNRs (events `Speech` + the clip's classes).
- `mixed`: the three, weighted by `MIXED_WEIGHTS` of the hours.

Splits are disjoint by sentence text (a hash of the normalised text decides), by voice for espeak (variants in
`TEST_VOICES` speak only test sentences) and by clip for events. The real sources have one or two speakers per
language, so they cannot also be speaker-disjoint without losing the language from a split; stats.json says so.

Output: `OUT/train/*.parquet`, `OUT/test/{synthetic,real,events}/*.parquet` (each loadable with
`load_dataset("parquet", data_dir=..., streaming=True)`; `OUT/test` as a whole too), `OUT/manifest.jsonl` (one line
per row), `OUT/stats.json`, `OUT/event_mapping.json`.
"""

import argparse
import hashlib
import itertools
import json
import multiprocessing
import random
import re
import shutil
import subprocess
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import soxr
from tqdm import tqdm

from processing.audio import TouchASPInputError, load_audio
from processing.text_normalization import normalize_for_cer
from training import sources
from training.data import encode_flac, write_corpus

RECIPES = ("synthetic", "real", "events", "mixed")
MIXED_WEIGHTS = {"synthetic": 0.45, "real": 0.35, "events": 0.2}
SAMPLING_RATE = 16000
# language -> (espeak-ng voice, text locale of the sentence sources)
SYNTHETIC_LANGUAGES = {
    "en": ("en", "en"), "zh": ("cmn-latn-pinyin", "zh_CN"), "yue": ("yue", "zh_TW"), "de": ("de", "de"),
    "fr": ("fr", "fr"), "es": ("es", "es"), "it": ("it", "it"), "ru": ("ru", "ru"), "pt": ("pt", "pt"),
    "pl": ("pl", "pl"), "cs": ("cs", "cs"), "nl": ("nl", "nl"), "sv": ("sv", "sv"), "tr": ("tr", "tr"),
    "fi": ("fi", "fi"), "hu": ("hu", "hu"), "uk": ("uk", "uk"),
}  # fmt: skip
TRAIN_VOICES = {"male": ("m1", "m2", "m3", "m4", "m5", "m6"), "female": ("f1", "f2", "f3", "f4")}
TEST_VOICES = {"male": ("m7",), "female": ("f5",)}
PITCH = {"male": (25, 50), "female": (45, 75)}
SPEED = (130, 200)  # espeak-ng words per minute
SNR_DB = (0, 5, 10, 20)
SYNTHETIC_LICENCE = "GPL-3.0+ (espeak-ng); sentences from tuxpaint-stamps-default and fillets-ng-data (GPL-2+)"
EVENT_CLIP_SECONDS = (1.0, 10.0)
MAX_SENTENCE_CHARACTERS = 150
RENDER_BATCH = 64
# Digits, symbols and Latin letters inside Hanzi are read in ways the transcript does not spell.
_UNSPEAKABLE = re.compile(r"[0-9$%&@#/\\_=+*<>\[\]{}|~^]")
_HANZI_SENTENCE = re.compile(r"^[\u4e00-\u9fff\u3000-\u303f\uff00-\uffef]+$")
_CJK_PUNCTUATION = re.compile(r"[\u3000-\u303f\uff00-\uffef]")


@dataclass(frozen=True)
class Utterance:
    """One row to make: espeak speech (`voice` set), a source clip (`clip` set), or both mixed (`snr_db` set)."""

    row_id: str
    split: str
    recipe: str
    text: str | None = None
    language: str | None = None
    gender: str | None = None
    voice: str | None = None
    speed: int = 0
    pitch: int = 0
    clip: sources.SourceClip | None = None
    snr_db: float | None = None
    seed: int = 0
    licence: str = SYNTHETIC_LICENCE  # of the espeak speech and its sentence sources


def split_of(key: str, test_fraction: float) -> str:
    """'test' for a stable `test_fraction` of keys, else 'train' (same answer on every machine)."""
    digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    return "test" if digest / 2**64 < test_fraction else "train"


def text_split(text: str, test_fraction: float) -> str:
    """The split of a sentence, keyed by its normalised text so that one sentence never lands in both."""
    return split_of("text:" + normalize_for_cer(text), test_fraction)


def speakable(text: str, language: str) -> bool:
    """Whether espeak-ng reads `text` the way it is written (no digits or symbols; Hanzi only for zh/yue)."""
    text = text.strip()
    if not 2 <= len(text) <= MAX_SENTENCE_CHARACTERS or _UNSPEAKABLE.search(text):
        return False
    return bool(_HANZI_SENTENCE.match(text)) if language in ("zh", "yue") else not _HANZI_SENTENCE.search(text)


def synthetic_sentences(cache_dir: Path, fortunes: bool = False) -> dict[str, list[str]]:
    """{language: unique speakable sentences} for every language of SYNTHETIC_LANGUAGES; with `fortunes`, also
    those of Debian's fortune cookies (25,551 English and 13,259 Mandarin in all, against 2,511 and 612)."""
    locale_language = {locale: language for language, (_, locale) in SYNTHETIC_LANGUAGES.items()}
    sentences: dict[str, dict[str, None]] = defaultdict(dict)
    lines = sources.text_lines(cache_dir)
    if fortunes:
        lines = itertools.chain(lines, sources.fortune_lines(cache_dir))
    for locale, text in lines:
        language = locale_language.get(locale)
        if language and speakable(text, language):
            sentences[language][text.strip()] = None
    return {language: sorted(texts) for language, texts in sentences.items()}


def espeak_input(text: str, language: str) -> str:
    """What espeak-ng is fed: Mandarin goes in as numbered pinyin (Debian's `cmn` reads Hanzi as letters)."""
    if language != "zh":
        return text
    from pypinyin import Style, lazy_pinyin

    return " ".join(lazy_pinyin(_CJK_PUNCTUATION.sub(" ", text), style=Style.TONE3, neutral_tone_with_five=True))


def synthesize(utterance: Utterance) -> np.ndarray:
    """espeak-ng speech of `utterance` as 16 kHz mono float32."""
    result = subprocess.run(
        ["espeak-ng", "-v", utterance.voice, "-s", str(utterance.speed), "-p", str(utterance.pitch), "--stdout",
         espeak_input(utterance.text, utterance.language)],
        capture_output=True, check=True,
    )  # fmt: skip
    return soxr.resample(*_streamed_wav(result.stdout), SAMPLING_RATE).astype(np.float32)


def _streamed_wav(data: bytes) -> tuple[np.ndarray, int]:
    """(float32 samples, rate) of espeak-ng's `--stdout` wav, whose header leaves the sizes unset (libsndfile
    refuses some of them); 16-bit mono PCM follows the `data` tag. Empty for text espeak-ng says nothing for."""
    rate = int.from_bytes(data[24:28], "little") if len(data) >= 28 else SAMPLING_RATE
    start = data.find(b"data")
    pcm = data[start + 8 :] if start >= 0 else b""
    return np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float32) / 2**15, rate


def synthetic_plan(
    sentences: dict[str, list[str]], seed: int, test_fraction: float, recipe: str = "synthetic",
    licence: str = SYNTHETIC_LICENCE,
) -> Iterator[Utterance]:
    """An endless, seeded stream of espeak utterances: language uniform, sentence and voice random."""
    rng = random.Random(seed)
    languages = sorted(sentences)
    for index in range(10**9):
        language = rng.choice(languages)
        text = rng.choice(sentences[language])
        split = text_split(text, test_fraction)
        gender = rng.choice(("male", "female"))
        variant = rng.choice((TEST_VOICES if split == "test" else TRAIN_VOICES)[gender])
        yield Utterance(
            f"{recipe}-{index:07d}", split, recipe, text, language, gender,
            f"{SYNTHETIC_LANGUAGES[language][0]}+{variant}", rng.randint(*SPEED), rng.randint(*PITCH[gender]),
            seed=rng.randrange(2**31), licence=licence,
        )  # fmt: skip


def real_clips(cache_dir: Path) -> dict[tuple[str, str], list[sources.SourceClip]]:
    """{(package, language): clips} of every real-speech source."""
    clips = [
        *(clip for language in sources.ASTERISK_LANGUAGES for clip in sources.asterisk_prompts(language, cache_dir)),
        *(clip for language in ("cs", "nl") for clip in sources.fillets_lines(language, cache_dir)),
        *sources.tuxpaint_descriptions(cache_dir),
    ]
    groups: dict[tuple[str, str], list[sources.SourceClip]] = defaultdict(list)
    for clip in clips:
        groups[(clip.package, clip.language)].append(clip)
    return dict(groups)


def real_plan(
    groups: dict[tuple[str, str], list[sources.SourceClip]], seed: int, test_fraction: float
) -> Iterator[Utterance]:
    """Each group shuffled by `seed`, then drawn round-robin so that every package and language gets its share."""
    rng = random.Random(seed)
    queues = [rng.sample(clips, len(clips)) for _, clips in sorted(groups.items())]
    index = 0
    while any(queues):
        for queue in queues:
            if queue:
                clip = queue.pop()
                yield Utterance(
                    f"real-{index:07d}", text_split(clip.text, test_fraction), "real", clip.text, clip.language,
                    clip.gender, clip=clip,
                )  # fmt: skip
                index += 1


def event_splits(clips: list[sources.SourceClip], test_fraction: float) -> dict[str, str]:
    """{clip_id: split}: clips of one label set split by clip, keeping at least one of each set in train
    (a class seen only in test could never be learned)."""
    by_labels: dict[tuple[str, ...], list[sources.SourceClip]] = defaultdict(list)
    for clip in clips:
        by_labels[clip.events].append(clip)
    splits = {}
    for group in by_labels.values():
        assigned = {clip.clip_id: split_of("clip:" + clip.clip_id, test_fraction) for clip in group}
        if all(split == "test" for split in assigned.values()):
            assigned[min(assigned)] = "train"
        splits.update(assigned)
    return splits


def events_plan(
    clips: list[sources.SourceClip], sentences: dict[str, list[str]], seed: int, test_fraction: float,
    licence: str = SYNTHETIC_LICENCE,
) -> Iterator[Utterance]:
    """Alternating event-only clips and synthetic speech mixed with an event clip at an SNR from SNR_DB.
    Label sets are drawn uniformly, then a clip of the set, so the 70 drum samples do not drown the one dog."""
    rng = random.Random(seed)
    splits = event_splits(clips, test_fraction)
    by_split: dict[str, dict[tuple[str, ...], list[sources.SourceClip]]] = defaultdict(lambda: defaultdict(list))
    for clip in clips:
        by_split[splits[clip.clip_id]][clip.events].append(clip)
    speech = synthetic_plan(sentences, seed + 1, test_fraction, recipe="events", licence=licence)
    for index in range(10**9):
        carrier = next(speech)
        groups = by_split[carrier.split] or by_split["train"]
        clip = rng.choice(groups[rng.choice(sorted(groups))])
        if index % 2 == 0:
            yield Utterance(
                f"events-{index:07d}", splits[clip.clip_id], "events", "", "nospeech", clip=clip,
                seed=rng.randrange(2**31),
            )  # fmt: skip
        else:
            yield replace(carrier, row_id=f"events-{index:07d}", clip=clip, snr_db=float(rng.choice(SNR_DB)))


def render(utterance: Utterance) -> dict[str, Any]:
    """The corpus row of `utterance` (audio as 16-bit FLAC bytes), or {"_skipped": why} when its audio is
    unusable (empty, broken, silent, too short)."""
    try:
        waveform = _waveform(utterance, np.random.default_rng(utterance.seed))
    except TouchASPInputError as error:  # Debian ships a few empty or broken files
        return {"_skipped": str(error)}
    if len(waveform) < SAMPLING_RATE // 4 or not np.isfinite(waveform).all() or np.abs(waveform).max() == 0:
        return {"_skipped": f"{utterance.row_id}: shorter than 0.25 s, silent or not finite"}
    clip, synthetic = utterance.clip, utterance.voice is not None
    if synthetic:
        events = ["Speech", *(clip.events if clip else ())]
        source = "espeak-ng" + (f" + {clip.package}" if clip else "")
        licence = utterance.licence + (f"; events: {clip.licence}" if clip else "")
    else:
        events = list(clip.events) if utterance.language == "nospeech" else ["Speech"]
        source, licence = clip.package, clip.licence
    return {
        "audio": encode_flac(waveform, utterance.row_id, SAMPLING_RATE), "text": utterance.text,
        "language": utterance.language, "emotion": None, "gender": utterance.gender, "events": events,
        "id": utterance.row_id, "duration": len(waveform) / SAMPLING_RATE, "source": source,
        "_split": utterance.split, "_licence": licence, "_speaker": utterance.voice or clip.speaker,
        "_recipe": utterance.recipe, "_clip": clip.clip_id if clip else None, "_snr_db": utterance.snr_db,
    }  # fmt: skip


def _waveform(utterance: Utterance, rng: np.random.Generator) -> np.ndarray:
    """16 kHz samples of `utterance`: espeak speech (mixed with its event clip), a whole clip, or an event crop."""
    if utterance.voice is None:
        waveform = load_audio(utterance.clip.path, name=str(utterance.clip.path))
        return crop(waveform, rng) if utterance.language == "nospeech" else waveform
    waveform = synthesize(utterance)
    if utterance.clip is None or len(waveform) == 0:
        return waveform
    return mix(waveform, event_waveform(utterance.clip, len(waveform), rng), utterance.snr_db)


def crop(waveform: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random window of EVENT_CLIP_SECONDS length (the whole clip when shorter)."""
    length = int(rng.uniform(*EVENT_CLIP_SECONDS) * SAMPLING_RATE)
    if len(waveform) <= length:
        return waveform
    start = int(rng.integers(0, len(waveform) - length))
    return waveform[start : start + length]


def event_waveform(clip: sources.SourceClip, length: int, rng: np.random.Generator) -> np.ndarray:
    """`clip` looped or cut to `length` samples from a random offset."""
    waveform = load_audio(clip.path, name=str(clip.path))
    repeated = np.tile(waveform, -(-2 * length // len(waveform)))
    start = int(rng.integers(0, len(repeated) - length + 1))
    return repeated[start : start + length]


def mix(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`speech` plus `noise` scaled to `snr_db` below it (power ratio), peak-normalised when it would clip."""
    speech_power = float(np.mean(speech**2)) + 1e-12
    noise_power = float(np.mean(noise**2)) + 1e-12
    mixed = speech + noise * np.sqrt(speech_power / (noise_power * 10 ** (snr_db / 10)))
    peak = float(np.abs(mixed).max())
    return mixed / peak * 0.95 if peak > 0.99 else mixed


def fortunes_licence(cache_dir: Path) -> str:
    """SYNTHETIC_LICENCE with each fortune package and the licence its own copyright file states."""
    return SYNTHETIC_LICENCE + "".join(
        f", {package} ({licence})" for package, licence in sources.fortune_licences(cache_dir).items()
    )


def plans(
    recipe: str, hours: float, seed: int, test_fraction: float, cache_dir: Path, languages: list[str] | None = None,
    fortunes: bool = False,
) -> list[tuple[Iterator, float]]:
    """(utterance stream, seconds to take from it) for each part of `recipe`; speech only in `languages` when
    given (event-only clips stay: they are `nospeech`); espeak also reads the fortune sentences with `fortunes`."""
    weights = MIXED_WEIGHTS if recipe == "mixed" else {recipe: 1.0}
    needs_sentences = {"synthetic", "events"} & set(weights)
    sentences = _only(synthetic_sentences(cache_dir, fortunes), languages, "espeak sentence") if needs_sentences else {}
    licence = fortunes_licence(cache_dir) if fortunes else SYNTHETIC_LICENCE
    parts = []
    for part, weight in weights.items():
        if part == "synthetic":
            stream = synthetic_plan(sentences, seed, test_fraction, licence=licence)
        elif part == "real":
            groups = real_clips(cache_dir)
            kept = _only({language: None for _, language in groups}, languages, "real speech")
            stream = real_plan({key: clips for key, clips in groups.items() if key[1] in kept}, seed, test_fraction)
        else:
            stream = events_plan(_mapped_event_clips(cache_dir), sentences, seed, test_fraction, licence)
        parts.append((stream, hours * weight * 3600))
    return parts


def _only(by_language: dict[str, Any], languages: list[str] | None, what: str) -> dict[str, Any]:
    """`by_language` restricted to `languages` (all when None); a language the part lacks is an error that names
    those it has."""
    if languages is None:
        return by_language
    missing = sorted(set(languages) - set(by_language))
    if missing:
        raise ValueError(
            f"--languages {','.join(missing)}: no {what} is in them (only in {','.join(sorted(by_language))})"
        )
    return {language: value for language, value in by_language.items() if language in languages}


def _mapped_event_clips(cache_dir: Path) -> list[sources.SourceClip]:
    return [clip for clip in sources.event_clips(cache_dir) if isinstance(clip, sources.SourceClip)]


def build_corpus(
    recipe: str, out_dir: str | Path, hours: float = 1.0, seed: int = 0, test_fraction: float = 0.1,
    num_proc: int = 2, num_shards: int = 4, cache_dir: str | Path = sources.DEFAULT_CACHE, overwrite: bool = False,
    languages: list[str] | None = None, fortunes: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Write the corpus of `recipe` with about `hours` of audio (train + test) to `out_dir`, its speech in
    `languages` only when given (e.g. ["en", "zh"]: every hour goes to them), espeak's sentences also from
    Debian's fortune cookies with `fortunes` (ten times the English and twenty times the Mandarin); return its
    stats."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    if hours <= 0:
        raise ValueError(f"--hours must be positive, got {hours}")
    if shutil.which("espeak-ng") is None and recipe != "real":
        raise RuntimeError(f"recipe {recipe!r} needs espeak-ng (apt-get install espeak-ng)")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out_dir} is not empty; pass --overwrite to replace it")
        shutil.rmtree(out_dir)
    rows, skipped = [], []
    with multiprocessing.get_context("forkserver").Pool(num_proc) as pool:
        for stream, seconds in plans(recipe, hours, seed, test_fraction, Path(cache_dir), languages, fortunes):
            rows += _take_seconds(pool, stream, seconds, skipped)
    random.Random(seed).shuffle(rows)
    arguments = dict(recipe=recipe, hours=hours, seed=seed, test_fraction=test_fraction)
    if languages is not None:
        arguments["languages"] = sorted(languages)
    if fortunes:
        arguments["fortunes"] = True
    return _write(rows, out_dir, num_shards, arguments, skipped)


def _take_seconds(
    pool: Any, stream: Iterator[Utterance], seconds: float, skipped: list[str]
) -> list[dict[str, Any]]:
    """Rendered rows of `stream` until they hold `seconds` of audio; unusable ones go to `skipped`. Batches keep
    the pool busy without queueing the endless stream (Pool.imap would read it all ahead)."""
    rows, total = [], 0.0
    with tqdm(total=round(seconds), unit="audio s", desc="rendering") as progress:
        while total < seconds and (batch := list(itertools.islice(stream, RENDER_BATCH))):
            for row in pool.map(render, batch, chunksize=4):
                if "_skipped" in row:
                    skipped.append(row["_skipped"])
                elif total < seconds:
                    rows.append(row)
                    total += row["duration"]
                    progress.update(round(row["duration"]))
    return rows


def _write(
    rows: list[dict[str, Any]], out_dir: Path, num_shards: int, arguments: dict[str, Any], skipped: list[str]
) -> dict[str, Any]:
    """Shards per split (test in one folder per recipe part, so each part can be scored alone), the manifest, the
    event mapping and stats.json (written last: its presence means done)."""
    public = ("audio", "text", "language", "emotion", "gender", "events", "id", "duration", "source")
    for split in ("train", "test"):
        parts: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            if row["_split"] == split:
                parts["" if split == "train" else row["_recipe"]].append(row)
        for part, part_rows in parts.items():
            columns = {key: [row[key] for row in part_rows] for key in public}
            write_corpus(columns, out_dir / split / part, min(num_shards, len(part_rows)), split=split)
    with open(out_dir / "manifest.jsonl", "w") as manifest:
        for row in rows:
            record = {key: row[key] for key in public if key != "audio"}
            record.update(split=row["_split"], licence=row["_licence"], speaker=row["_speaker"],
                          recipe=row["_recipe"], clip=row["_clip"], snr_db=row["_snr_db"])  # fmt: skip
            manifest.write(json.dumps(record, ensure_ascii=False) + "\n")
    shutil.copy(sources.EVENT_MAPPING, out_dir / "event_mapping.json")
    stats = corpus_stats(rows, arguments)
    stats["skipped"] = skipped
    (out_dir / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n")
    return stats


def corpus_stats(rows: list[dict[str, Any]], arguments: dict[str, Any]) -> dict[str, Any]:
    """Hours and utterance counts per split, language, gender, event and source; `sources`, `languages` and
    `events` in the shape hub_cards reads from a model's training_data.json."""
    stats: dict[str, Any] = {"arguments": arguments, "splits": {}}
    for split in ("train", "test"):
        split_rows = [row for row in rows if row["_split"] == split]
        stats["splits"][split] = {
            "utterances": len(split_rows),
            "hours": round(sum(row["duration"] for row in split_rows) / 3600, 4),
            "language": dict(Counter(row["language"] for row in split_rows).most_common()),
            "gender": dict(Counter(str(row["gender"]) for row in split_rows).most_common()),
            "events": dict(Counter(event for row in split_rows for event in row["events"]).most_common()),
            "recipe": dict(Counter(row["_recipe"] for row in split_rows).most_common()),
        }
    hours: dict[tuple[str, str], float] = defaultdict(float)
    for row in rows:
        hours[(row["source"], row["_licence"])] += row["duration"] / 3600
    stats["sources"] = [
        {"name": name, "license": licence, "hours": round(value, 4)} for (name, licence), value in sorted(hours.items())
    ]
    stats["languages"] = sorted({row["language"] for row in rows} - {"nospeech"})
    stats["events"] = sorted({event for row in rows for event in row["events"]})
    stats["emotions"] = []
    stats["disjoint"] = (
        "train and test share no normalised sentence text, no espeak voice variant and no event clip; "
        "real sources (one or two speakers per language) are text-disjoint only"
    )
    return stats


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", required=True, choices=RECIPES)
    parser.add_argument("--out", required=True, help="output folder (train/, test/, manifest.jsonl, stats.json)")
    parser.add_argument("--hours", type=float, default=1.0, help="audio hours to write, train and test together")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-fraction", type=float, default=0.1, help="share of sentences held out for test")
    parser.add_argument("--num-proc", type=int, default=2, help="processes rendering audio")
    parser.add_argument("--num-shards", type=int, default=4, help="parquet shards per split")
    parser.add_argument("--cache", default=str(sources.DEFAULT_CACHE), help="where Debian packages are unpacked")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    parser.add_argument("--languages", type=lambda value: value.split(","), default=None,
                        help="comma-separated languages the speech is in (default: every language of the recipe)")
    parser.add_argument("--fortunes", action="store_true",
                        help="espeak also reads the sentences of Debian's fortunes (en) and fortunes-zh (zh)")


def run(args: argparse.Namespace) -> int:
    stats = build_corpus(
        args.recipe, args.out, args.hours, args.seed, args.test_fraction, args.num_proc, args.num_shards,
        args.cache, args.overwrite, args.languages, args.fortunes,
    )  # fmt: skip
    for split, numbers in stats["splits"].items():
        print(f"{split}: {numbers['utterances']} utterances, {numbers['hours']:.3f} h, "
              f"{len(numbers['language'])} languages")  # fmt: skip
    print(f"wrote {args.out}")
    return 0
