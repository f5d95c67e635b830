"""SpeechIO-style text normalisation for scoring, so that CER and WER count recognition errors, not formatting.

Both references and hypotheses go through the same steps:

1. NFKC: full-width letters, digits and punctuation become half-width ("Ｈｅｌｌｏ１" -> "Hello1"),
   half-width katakana become full-width.
2. Lower case.
3. An apostrophe inside a word is dropped ("don't" -> "dont"), so tokenisers that split contractions agree.
4. Every other punctuation character (Unicode category P*: ASCII `,.!?;:"'()-` and CJK `，。！？、；：“”‘’（）《》`)
   becomes a space.
5. Whitespace runs collapse to one space; spaces next to a CJK character (Han, kana) are dropped, because those
   scripts do not separate words with spaces and a hypothesis must not be charged for adding or omitting them.

`normalize_for_wer("今天 Hello，World！")` is `"今天hello world"`: WER tokens are the space-separated pieces, so a CJK
run is one token together with any Latin word glued to it. WER is meant for space-delimited languages
(`is_space_delimited`); mixed Chinese/English is scored with CER. `normalize_for_cer` additionally removes every
space ("今天helloworld"): CER counts edits over characters alone.

Scoring (`error_counts`) then maps traditional Han characters to simplified on both sides (OpenCC `t2s`), as
Chinese ASR leaderboards do: "來" for "来" is the same word written two ways, and a reference's script cannot be heard
(Debian's fortunes-zh mixes both). `to_pinyin` spells Mandarin as pinyin syllables, with or without tone numbers,
for the syllable error rates that tell tone and homophone errors apart from misheard syllables. The
`normalize_for_*` functions leave the script alone, because
`training.corpus` hashes their output to assign held-out splits and corpora already built must keep theirs.
"""

import re
import unicodedata
from functools import cache

import jiwer
import opencc
from pypinyin import Style, lazy_pinyin

# Languages and dialects (DESIGN.md section 5 codes, plus Thai, Lao, Burmese, Khmer) whose script does not put
# spaces between words; WER is undefined for them. Matched on the primary subtag, so "zh-sichuan" is "zh".
NOT_SPACE_DELIMITED = frozenset({"zh", "yue", "nan", "wuu", "ja", "th", "lo", "my", "km"})

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff"
_APOSTROPHE_IN_WORD = re.compile(r"(?<=\w)['\u2019](?=\w)")
_SPACE_NEXT_TO_CJK = re.compile(rf"(?<=[{_CJK}]) | (?=[{_CJK}])")


def _punctuation_to_space(text: str) -> str:
    return "".join(" " if unicodedata.category(char).startswith("P") else char for char in text)


def normalize_for_wer(text: str) -> str:
    """`text` normalised (module docstring, steps 1-5), words separated by single spaces."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _APOSTROPHE_IN_WORD.sub("", text)
    text = " ".join(_punctuation_to_space(text).split())
    return _SPACE_NEXT_TO_CJK.sub("", text)


def normalize_for_cer(text: str) -> str:
    """`text` normalised as for WER, with every space removed: CER is over characters only."""
    return normalize_for_wer(text).replace(" ", "")


def is_space_delimited(language: str) -> bool:
    """Whether `language` ("en", "zh", "zh-sichuan", ...) separates words with spaces, i.e. whether WER applies."""
    return re.split("[-_]", language.lower(), maxsplit=1)[0] not in NOT_SPACE_DELIMITED


@cache
def _traditional_to_simplified() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def to_pinyin(text: str, tones: bool = True) -> str:
    """Mandarin `text`, normalised for CER and mapped to simplified, as space-separated pinyin syllables ("來了！" ->
    "lai2 le5" or "lai le"); pypinyin reads polyphones in context. Non-Han runs stay as one piece each."""
    simplified = _traditional_to_simplified().convert(normalize_for_cer(text))
    style = Style.TONE3 if tones else Style.NORMAL
    return " ".join(lazy_pinyin(simplified, style=style, neutral_tone_with_five=True))


def error_counts(references: list[str], predictions: list[str], unit: str, normalize: bool = True) -> dict:
    """Corpus-level edit counts for CER (`unit="character"`) or WER (`unit="word"`), after the matching
    normalisation and the traditional-to-simplified mapping (module docstring): `rate` = (substitutions + deletions +
    insertions) / reference units, plus the counts."""
    normalizer, process = {
        "character": (normalize_for_cer, jiwer.process_characters),
        "word": (normalize_for_wer, jiwer.process_words),
    }[unit]
    if normalize:
        to_simplified = _traditional_to_simplified().convert
        predictions = [to_simplified(normalizer(text)) for text in predictions]
        references = [to_simplified(normalizer(text)) for text in references]
    counts = process(references, predictions)
    reference_units = counts.hits + counts.substitutions + counts.deletions
    if reference_units == 0:
        raise ValueError(
            f"all {len(references)} references are empty after normalisation; an error rate needs at least one "
            f"reference {unit}"
        )
    return {
        "rate": (counts.substitutions + counts.deletions + counts.insertions) / reference_units,
        "substitutions": counts.substitutions,
        "deletions": counts.deletions,
        "insertions": counts.insertions,
        "hits": counts.hits,
        "reference_units": reference_units,
    }
