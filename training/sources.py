"""Real audio from Debian packages (../shared/DATA.md), fetched at run time into a cache and never committed.

Each reader yields `SourceClip`s: a file (or a slice of one) with whatever labels the package knows, plus the
package name and licence, so every corpus row can say where it came from."""

import fnmatch
import gzip
import json
import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

DEFAULT_CACHE = Path.home() / ".cache" / "touchasp" / "debian"
EVENT_MAPPING = Path(__file__).with_name("event_mapping.json")
ASTERISK_LANGUAGES = ("en", "es", "fr", "it", "ru")
FILLETS_LANGUAGES = ("cs", "nl", "en")
TUXPAINT_LANGUAGES = ("fr", "ru", "ro", "ca", "bg", "es", "be", "el", "da", "lt", "nl", "en")
# Fillets-ng draws each speaker's subtitles in a font: the small fish is female, the big fish male.
FILLETS_FONT_GENDER = {"font_small": "female", "font_big": "male"}
AUDIO_SUFFIXES = {".wav", ".ogg", ".oga", ".flac"}


@dataclass(frozen=True)
class SourceClip:
    """One recording: `path` (whole file) with its known labels; None where the package does not say."""

    path: Path
    package: str
    licence: str
    clip_id: str
    text: str | None = None
    language: str | None = None
    gender: str | None = None
    speaker: str | None = None
    events: tuple[str, ...] = field(default_factory=tuple)


class SourceUnavailable(RuntimeError):
    """A Debian package could not be fetched (no apt-get, no network to the archive, unknown package)."""


def fetch_package(package: str, cache_dir: Path = DEFAULT_CACHE) -> Path:
    """Extract `package` (apt-get download + dpkg-deb -x, no root, no install) into `cache_dir/package` once;
    return that folder. A `.complete` marker makes an interrupted fetch start over instead of half-reading."""
    root = Path(cache_dir) / package
    if (root / ".complete").exists():
        return root
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise SourceUnavailable(f"fetching Debian package {package!r} needs {tool!r}, which is not installed")
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as work:
        download = subprocess.run(["apt-get", "download", package], cwd=work, capture_output=True, text=True)
        debs = list(Path(work).glob("*.deb"))
        if download.returncode != 0 or not debs:
            raise SourceUnavailable(
                f"apt-get download {package} failed (exit {download.returncode}): {download.stderr.strip()[-400:]}"
            )
        extracted = Path(work) / "tree"
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(extracted)], check=True)
        (extracted / ".complete").write_text(debs[0].name + "\n")
        shutil.rmtree(root, ignore_errors=True)
        extracted.rename(root)
    return root


@cache
def package_licence(root: Path, package: str) -> str:
    """The licence of the package's main files (`Files: *` stanza of its DEP-5 copyright file)."""
    copyright_file = root / "usr/share/doc" / package / "copyright"
    if not copyright_file.exists():
        return "unknown (no copyright file)"
    stanzas = copyright_file.read_text(errors="replace").split("\n\n")
    for stanza in stanzas:
        if re.search(r"^Files:\s*\*\s*$", stanza, re.MULTILINE):
            match = re.search(r"^License:\s*(.+)$", stanza, re.MULTILINE)
            if match:
                return match.group(1).strip()
    text = copyright_file.read_text(errors="replace")
    match = (
        re.search(r"^License:\s*(.+)$", text, re.MULTILINE)
        or re.search(r"common-licenses/([\w.+-]+?)'?\.?\s", text)
        or re.search(r"falls under the (\w+) copyright", text)  # pre-DEP-5 prose, e.g. fortunes: "the BSD copyright"
    )
    return match.group(1).strip() if match else "unknown"


def asterisk_prompts(language: str, cache_dir: Path = DEFAULT_CACHE) -> Iterator[SourceClip]:
    """Telephone prompts (one speaker per language; the speaker folder name says the gender, e.g. en_US_f_Allison)
    with their transcripts from `core-sounds-LANG.txt.gz` (`name: text`). Descriptions of tones are skipped."""
    audio_package, text_package = f"asterisk-core-sounds-{language}-wav", f"asterisk-core-sounds-{language}"
    audio_root, text_root = fetch_package(audio_package, cache_dir), fetch_package(text_package, cache_dir)
    transcripts = next((text_root / "usr/share/doc" / text_package).glob("core-sounds-*.txt.gz"))
    speaker_dir = next(path for path in (audio_root / "usr/share/asterisk/sounds").iterdir() if path.is_dir())
    gender = {"f": "female", "m": "male"}.get(speaker_dir.name.split("_")[2])
    licence = package_licence(audio_root, audio_package)
    for line in gzip.open(transcripts, "rt", errors="replace"):
        name, separator, text = line.partition(":")
        text = text.strip()
        if not separator or line.startswith(";") or not text or re.search(r"[\[\]()<>]|beep|tone", name + text):
            continue
        path = speaker_dir / f"{name.strip()}.wav"
        if path.exists():
            yield SourceClip(
                path, audio_package, licence, f"asterisk-{language}/{name.strip()}", text, language, gender,
                f"asterisk-{speaker_dir.name}",
            )


FILLETS_LINE = re.compile(r'dialogId\("([^"]+)",\s*"([^"]+)",\s*"((?:[^"\\]|\\.)*)"\)\s*(?:dialogStr\("((?:[^"\\]|\\.)*)"\))?')


def fillets_lines(language: str, cache_dir: Path = DEFAULT_CACHE) -> Iterator[SourceClip]:
    """Acted game dialogue: `script/LEVEL/dialogs_LANG.lua` holds (id, font, English, translation); the audio is
    `sound/LEVEL/LANG/ID.ogg`. English audio ships in fillets-ng-data itself."""
    script_root = fetch_package("fillets-ng-data", cache_dir)
    audio_package = "fillets-ng-data" if language == "en" else f"fillets-ng-data-{language}"
    audio_root = fetch_package(audio_package, cache_dir)
    licence = package_licence(audio_root, audio_package)
    game = "usr/share/games/fillets-ng"
    for script in sorted((script_root / game / "script").glob(f"*/dialogs_{language}.lua")):
        level = script.parent.name
        for line_id, font, english, translation in FILLETS_LINE.findall(script.read_text(errors="replace")):
            path = audio_root / game / "sound" / level / language / f"{line_id}.ogg"
            text = (english if language == "en" else translation).replace('\\"', '"').strip()
            if text and path.exists():
                yield SourceClip(
                    path, audio_package, licence, f"fillets-{language}/{level}/{line_id}", text, language,
                    FILLETS_FONT_GENDER.get(font), f"fillets-{language}-{font}",
                )


def tuxpaint_descriptions(cache_dir: Path = DEFAULT_CACHE) -> Iterator[SourceClip]:
    """Spoken stamp descriptions `STAMP_desc_LANG.ogg` (`STAMP_desc.ogg` is English) with the text of that
    language's line in `STAMP.txt` (`LANG.utf8=...`; the first, unprefixed line is English)."""
    package = "tuxpaint-stamps-default"
    root = fetch_package(package, cache_dir)
    licence = package_licence(root, package)
    for path in sorted((root / "usr/share/tuxpaint/stamps").glob("**/*_desc*.ogg")):
        stamp, _, language = path.stem.partition("_desc")
        language = language.lstrip("_") or "en"
        texts = _tuxpaint_texts(path.with_name(stamp + ".txt"))
        if language in TUXPAINT_LANGUAGES and texts.get(language):
            yield SourceClip(
                path, package, licence, f"tuxpaint/{path.relative_to(root).with_suffix('')}", texts[language],
                language, None, f"tuxpaint-{language}",
            )


def _tuxpaint_texts(path: Path) -> dict[str, str]:
    """{language: text} of a stamp description file; `en` from its first line."""
    if not path.exists():
        return {}
    lines = path.read_text(errors="replace").splitlines()
    texts = {"en": lines[0].strip()} if lines and "=" not in lines[0].split(" ")[0] else {}
    for line in lines[1:]:
        key, separator, text = line.partition("=")
        if separator and key.endswith(".utf8"):
            texts[key.removesuffix(".utf8")] = text.strip()
    return texts


def text_lines(cache_dir: Path = DEFAULT_CACHE) -> Iterator[tuple[str, str]]:
    """(locale, sentence) pairs from the translated stamp descriptions and game dialogue: the sentence source of
    the synthetic recipe (locales as the packages spell them: `zh_CN`, `pt_BR`, `de`, ...)."""
    root = fetch_package("tuxpaint-stamps-default", cache_dir)
    for path in sorted((root / "usr/share/tuxpaint/stamps").glob("**/*.txt")):
        yield from _tuxpaint_texts(path).items()
    script_root = fetch_package("fillets-ng-data", cache_dir) / "usr/share/games/fillets-ng/script"
    for script in sorted(script_root.glob("*/dialogs_*.lua")):
        locale = script.stem.removeprefix("dialogs_")
        for _, _, english, translation in FILLETS_LINE.findall(script.read_text(errors="replace")):
            yield ("en", english) if locale == "en" else (locale, translation)


# Debian's fortune cookies: thousands of everyday sentences where the stamps and dialogue give a few hundred per
# language. fortunes-zh's `tang300` and `song100` are classical poems; its modern Mandarin is `chinese`.
FORTUNE_FILES = {"fortunes": ("en", None), "fortunes-zh": ("zh_CN", ("chinese",))}
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
_SENTENCE_END = {"en": re.compile(r"(?<=[.!?])\s+"), "zh_CN": re.compile(r"(?<=[。！？])")}


def fortune_licences(cache_dir: Path = DEFAULT_CACHE) -> dict[str, str]:
    """Each package of FORTUNE_FILES with the licence its copyright file gives, for the corpus card."""
    return {package: package_licence(fetch_package(package, cache_dir), package) for package in FORTUNE_FILES}


def fortune_lines(cache_dir: Path = DEFAULT_CACHE) -> Iterator[tuple[str, str]]:
    """(locale, sentence) pairs from the fortune files of FORTUNE_FILES: each fortune (blocks between `%` lines)
    without colour escapes and `-- author` lines, the wrapped lines of each paragraph joined, cut at sentence ends
    (a title or a verse without a full stop is a paragraph of its own)."""
    for package, (locale, names) in FORTUNE_FILES.items():
        folder = fetch_package(package, cache_dir) / "usr/share/games/fortunes"
        paths = [folder / name for name in names] if names else sorted(
            path for path in folder.iterdir() if path.is_file() and not path.suffix
        )  # fmt: skip
        joiner = " " if locale == "en" else ""
        for path in paths:
            for paragraph in re.split(r"\n\s*\n|\n%\n", _ANSI_ESCAPE.sub("", path.read_text(errors="replace"))):
                lines = [line.strip() for line in paragraph.splitlines()]
                text = joiner.join(line for line in lines if line and line != "%" and not line.startswith("--"))
                for sentence in _SENTENCE_END[locale].split(text):
                    if sentence.strip():
                        yield locale, sentence.strip()


@cache
def _event_rules() -> tuple[dict, ...]:
    return tuple(json.loads(EVENT_MAPPING.read_text())["rules"])


def event_labels(package: str, title: str) -> tuple[str, ...] | None:
    """The AudioSet classes `event_mapping.json` gives a clip of `package` titled `title`; None when unmapped."""
    for rule in _event_rules():
        if rule["package"] == package and fnmatch.fnmatch(title.lower(), rule["match"].lower()):
            return tuple(rule["events"])
    return None


def opensfx_clips(cache_dir: Path = DEFAULT_CACHE) -> Iterator[SourceClip | tuple[str, str]]:
    """OpenTTD's sound effects, unpacked once from `opensfx.cat` into wav files beside it. The catalogue is a
    table of (offset, size) little-endian uint32 pairs (high bit of the offset is a flag); each entry is a
    length-prefixed title (which also names the clip's own licence) followed by a RIFF wav.
    Yields clips, and (package, title) for clips no mapping rule covers."""
    package = "openttd-opensfx"
    folder = fetch_package(package, cache_dir) / "usr/share/games/openttd/baseset/opensfx"
    catalogue = (folder / "opensfx.cat").read_bytes()
    count = (struct.unpack_from("<I", catalogue, 0)[0] & 0x7FFFFFFF) // 8
    for index in range(count):
        offset, size = struct.unpack_from("<II", catalogue, 8 * index)
        offset &= 0x7FFFFFFF
        title_length = catalogue[offset]
        description = catalogue[offset + 1 : offset + 1 + title_length].rstrip(b"\0").decode("latin-1")
        wav = catalogue[offset + 1 + title_length : offset + size]
        title = description.split('"')[1] if description.count('"') >= 2 else description
        licence = description.rpartition("License:")[2].strip().rstrip(".") or "unknown"
        events = event_labels(package, title)
        if events is None or len(wav) <= 44:
            yield package, title
            continue
        path = folder / "unpacked" / f"{index:03d}.wav"
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            temporary = path.with_suffix(".partial")
            temporary.write_bytes(wav)
            temporary.rename(path)
        yield SourceClip(path, package, licence, f"opensfx/{index:03d}", events=events, speaker=title)


EVENT_FOLDERS = {
    "tuxpaint-stamps-default": "usr/share/tuxpaint/stamps",
    "tuxpaint-data": "usr/share/tuxpaint/sounds",
    "sonic-pi-samples": "usr/share/sonic-pi/samples",
    "sound-theme-freedesktop": "usr/share/sounds/freedesktop/stereo",
    "asterisk-moh-opsound-wav": "usr/share/asterisk/moh",
    "fillets-ng-data": "usr/share/games/fillets-ng/music",
}


def event_clips(cache_dir: Path = DEFAULT_CACHE) -> Iterator[SourceClip | tuple[str, str]]:
    """Every labelled sound-event and music clip of DATA.md's packages; (package, title) for unmapped ones."""
    yield from opensfx_clips(cache_dir)
    for package, folder in EVENT_FOLDERS.items():
        root = fetch_package(package, cache_dir)
        licence = package_licence(root, package)
        for path in sorted((root / folder).glob("**/*")):
            if path.suffix not in AUDIO_SUFFIXES or "_desc" in path.stem or "/math/" in str(path):
                continue
            events = event_labels(package, path.stem)
            if events is None:
                yield package, path.stem
            else:
                clip_id = f"{package}/{path.relative_to(root / folder).with_suffix('')}"
                yield SourceClip(path, package, licence, clip_id, events=events, speaker=path.stem)
