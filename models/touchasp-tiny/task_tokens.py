"""The task-token vocabulary of TouchASP (DESIGN.md section 5), defined once.

Every task is a token sequence predicted by the decoder, in this fixed order, so that any prefix can be
forced (language ID alone = one token generated after `<|sot|>`):

    <|sot|> <|LANG|> <|EMOTION|> <|GENDER|> <|EVENT|>... <|/events|> <|transcribe|> transcript <|eot|>

Token spelling rule: a label becomes `<|label|>`, the label kept verbatim (AudioSet display names keep
their spaces and commas, e.g. `<|Crying, sobbing|>`), so the parser recovers a label by stripping the
brackets. The tokenizer adds every token here as one special token, so none is ever split.
"""

from collections.abc import Iterable

PAD = "<pad>"
UNK = "<unk>"
SOT = "<|sot|>"
EOT = "<|eot|>"
TRANSCRIBE = "<|transcribe|>"
END_EVENTS = "<|/events|>"

# The paper's Chinese languages and dialects first, then every language our corpora carry.
LANGUAGES: tuple[str, ...] = (
    "zh", "en", "yue", "zh-sichuan", "nan",
    "cs", "nl", "es", "fr", "it", "ru", "ro", "ca", "bg", "be", "el", "da", "lt", "de", "pt", "pl",
    "ja", "ko", "ar", "hi", "tr", "vi", "sv", "fi", "hu", "uk",
    "nospeech", "lang_unknown",
)  # fmt: skip

EMOTIONS: tuple[str, ...] = ("HAPPY", "SAD", "ANGRY", "NEUTRAL", "FEARFUL", "DISGUSTED", "SURPRISED", "EMO_UNKNOWN")

GENDERS: tuple[str, ...] = ("male", "female", "gender_unknown")

# AudioSet ontology display names (class_labels_indices.csv), listed in AudioSet index order: this
# order is the canonical order in which events appear in a decoder target.
EVENTS: tuple[str, ...] = (
    # human sounds
    "Speech", "Child speech, kid speaking", "Conversation", "Shout", "Screaming", "Whispering",
    "Laughter", "Baby laughter", "Giggle", "Crying, sobbing", "Baby cry, infant cry", "Sigh", "Singing",
    "Choir", "Humming", "Groan", "Whistling", "Breathing", "Snoring", "Gasp", "Cough", "Throat clearing",
    "Sneeze", "Sniff", "Walk, footsteps", "Chewing, mastication", "Burping, eructation", "Hiccup",
    "Finger snapping", "Clapping", "Heart sounds, heartbeat", "Cheering", "Applause", "Chatter", "Crowd",
    "Hubbub, speech noise, speech babble", "Children playing",
    # animals
    "Dog", "Bark", "Cat", "Meow", "Horse", "Cattle, bovinae", "Pig", "Sheep", "Chicken, rooster",
    "Roaring cats (lions, tigers)", "Bird", "Insect", "Frog",
    # music
    "Music", "Guitar", "Piano", "Drum", "Bell",
    # nature
    "Wind", "Thunder", "Water", "Rain", "Ocean", "Fire",
    # vehicles
    "Car", "Vehicle horn, car horn, honking", "Truck", "Fire engine, fire truck (siren)", "Motorcycle",
    "Traffic noise, roadway noise", "Train", "Aircraft", "Jet engine", "Helicopter",
    # home, tools, alarms
    "Chainsaw", "Door", "Doorbell", "Knock", "Dishes, pots, and pans", "Microwave oven", "Toilet flush",
    "Vacuum cleaner", "Typing", "Telephone bell ringing", "Alarm clock", "Siren", "Cash register", "Camera",
    "Hammer", "Jackhammer", "Sawing", "Explosion", "Gunshot, gunfire", "Fireworks", "Shatter", "Beep, bleep",
    "Clicking",
    # acoustic scene
    "Silence", "Noise", "White noise", "Television", "Radio",
)  # fmt: skip


def _token(label: str) -> str:
    return f"<|{label}|>"


def label_from_token(token: str) -> str:
    """Inverse of the spelling rule: `"<|Crying, sobbing|>"` -> `"Crying, sobbing"`."""
    if not (token.startswith("<|") and token.endswith("|>")):
        raise ValueError(f"{token!r} is not a task token; task tokens look like '<|label|>'")
    return token[2:-2]


UNKNOWN_LANGUAGE = _token("lang_unknown")
UNKNOWN_EMOTION = _token("EMO_UNKNOWN")
UNKNOWN_GENDER = _token("gender_unknown")

# The classification slots of the decoder target, in target order.
SLOT_TOKENS: dict[str, tuple[str, ...]] = {
    "language": tuple(_token(code) for code in LANGUAGES),
    "emotion": tuple(_token(name) for name in EMOTIONS),
    "gender": tuple(_token(name) for name in GENDERS),
    "events": tuple(_token(name) for name in EVENTS),
}

# Token id i of the tokenizer is ALL_SPECIAL_TOKENS[i]: the model config relies on pad=0 (also the CTC
# blank), unk=1, sot=2 (decoder_start_token_id) and eot=3.
ALL_SPECIAL_TOKENS: tuple[str, ...] = (
    PAD, UNK, SOT, EOT, TRANSCRIBE, END_EVENTS,
    *SLOT_TOKENS["language"], *SLOT_TOKENS["emotion"], *SLOT_TOKENS["gender"], *SLOT_TOKENS["events"],
)  # fmt: skip


def _slot_token(slot: str, labels: tuple[str, ...], label: str | None, unknown: str | None = None) -> str:
    if label is None and unknown is not None:
        return unknown
    if label not in labels:
        raise ValueError(f"unknown {slot} label {label!r}; valid {slot} labels are: {', '.join(labels)}")
    return _token(label)


def language_token(code: str | None) -> str:
    """Token of a language or dialect code (`"en"` -> `"<|en|>"`); `None` (label missing) gives `UNKNOWN_LANGUAGE`."""
    return _slot_token("language", LANGUAGES, code, UNKNOWN_LANGUAGE)


def emotion_token(name: str | None) -> str:
    """Token of an emotion (`"HAPPY"` -> `"<|HAPPY|>"`); `None` (label missing) gives `UNKNOWN_EMOTION`."""
    return _slot_token("emotion", EMOTIONS, name, UNKNOWN_EMOTION)


def gender_token(name: str | None) -> str:
    """Token of a gender (`"female"` -> `"<|female|>"`); `None` (label missing) gives `UNKNOWN_GENDER`."""
    return _slot_token("gender", GENDERS, name, UNKNOWN_GENDER)


def event_token(name: str) -> str:
    """Token of an AudioSet event display name (`"Speech"` -> `"<|Speech|>"`)."""
    return _slot_token("event", EVENTS, name)


def sort_events(labels: Iterable[str]) -> list[str]:
    """Event labels in canonical (`EVENTS`) order, duplicates dropped; unknown labels raise `ValueError`."""
    unique = set(labels)
    for label in unique:
        event_token(label)
    return [label for label in EVENTS if label in unique]
