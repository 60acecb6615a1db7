"""Text front end: cleaning, written words, sentences and normalisation (numbers, currency, abbreviations).

Each written word keeps the text the user typed (``original``) next to the words that are spoken
(``spoken``), so word timestamps can point back at what a front end shows on screen.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from num2words import num2words

MAX_WORD_CHARS = 60
"""Longer 'words' are cut before G2P: nothing real is that long, and espeak is slow on them."""
MAX_UNIT_CHARS = 250
"""Spoken characters in one synthesis unit (about 250 phonemes, half Kokoro's 510-token limit: some 12 s
of speech, as long as a long sentence): a sentence without a break ("$1,234,567.89 " * 1300) becomes
many units, so it never holds the worker, or a cancel, for longer than one such sentence would."""
CUT_PREFERENCE = ("!.?…", ":;", ",—–")
"""Where a long sentence is cut, strongest first; with none of these it is cut between words."""

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]")
_LEADING = "([{\"'«“‘¿¡"
_TRAILING = ")]}\"'»”’.,!?;:…"
_SENTENCE_END = re.compile(r"[.!?…]")
_PAUSES = set(".,!?;:—…\"()“”")
"""Punctuation Kokoro turns into pauses and intonation; other symbols (emoji, ...) are not spoken."""

ABBREVIATIONS = {
    "dr.": "doctor", "mr.": "mister", "mrs.": "missus", "ms.": "miz", "prof.": "professor",
    "jr.": "junior", "sr.": "senior", "st.": "saint", "mt.": "mount", "ft.": "fort", "vs.": "versus",
    "etc.": "et cetera", "e.g.": "for example", "i.e.": "that is", "approx.": "approximately",
    "dept.": "department", "fig.": "figure", "inc.": "incorporated", "ltd.": "limited", "co.": "company",
    "ave.": "avenue", "blvd.": "boulevard", "rd.": "road", "gov.": "governor", "gen.": "general",
    "capt.": "captain", "sgt.": "sergeant", "lt.": "lieutenant", "col.": "colonel", "rev.": "reverend",
    "hon.": "honorable", "no.": "number", "vol.": "volume", "ch.": "chapter", "pp.": "pages", "p.": "page",
    "jan.": "January", "feb.": "February", "mar.": "March", "apr.": "April", "jun.": "June", "jul.": "July",
    "aug.": "August", "sep.": "September", "sept.": "September", "oct.": "October", "nov.": "November",
    "dec.": "December", "mon.": "Monday", "tue.": "Tuesday", "wed.": "Wednesday", "thu.": "Thursday",
    "fri.": "Friday", "sat.": "Saturday", "sun.": "Sunday", "a.m.": "a m", "p.m.": "p m",
}
CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "€": ("euro", "euros", "cent", "cents"),
              "£": ("pound", "pounds", "penny", "pence"), "¥": ("yen", "yen", "sen", "sen"),
              "₹": ("rupee", "rupees", "paisa", "paise")}
SCALES = {"thousand", "million", "billion", "trillion"}
SYMBOLS = {"&": "and", "+": "plus", "=": "equals", "@": "at", "%": "percent", "°": "degrees",
           "°c": "degrees Celsius", "°f": "degrees Fahrenheit", "#": "number"}

_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+"
_CURRENCY = re.compile(rf"([$€£¥₹])({_NUMBER})")
_CURRENCY_AFTER = re.compile(rf"({_NUMBER})([$€£¥₹])")
_PLAIN = re.compile(rf"([-−+]?)({_NUMBER})")
_ORDINAL = re.compile(r"(\d+)(st|nd|rd|th)", re.I)
_PERCENT = re.compile(rf"([-−]?)({_NUMBER})%")
_TIME = re.compile(r"(\d{1,2}):(\d{2})(am|pm|a\.m\.|p\.m\.)?", re.I)
_RANGE = re.compile(rf"({_NUMBER})[-–—]({_NUMBER})(%|°[cCfF]?)?")
_UNIT = re.compile(rf"({_NUMBER})(°[cCfF]?)")
_HASH = re.compile(r"#(\d+)")
_DIGITS = re.compile(r"\d+")


@dataclass
class Item:
    """One written unit: a word (spoken) or punctuation (pauses only), and the space that follows it."""

    original: str
    spoken: str
    is_word: bool
    space: str = ""


def clean(text: str) -> str:
    """Drop control and zero-width characters (never spoken, sometimes fatal to G2P); NFC-normalise."""
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub(" ", text.replace("\t", " "))
    return text.replace("*", "")


def _say_number(raw: str) -> str:
    grouped = "," in raw  # "1,234" is a quantity, never a year
    raw = raw.replace(",", "")
    if "." in raw:
        whole, frac = raw.split(".", 1)
        head = num2words(int(whole)) if whole else "zero"
        return f"{head} point " + " ".join(num2words(int(d)) for d in frac)
    value = int(raw)
    if not grouped and len(raw) == 4 and (1100 <= value <= 1999 or 2010 <= value <= 2099):
        return num2words(value, to="year")
    return num2words(value)


def _tidy(words: str) -> str:
    return re.sub(r"\s+", " ", words.replace(",", "").replace("-", " ")).strip()


def _say_currency(symbol: str, amount: str, scaled: bool) -> str:
    one, many, small_one, small_many = CURRENCIES[symbol]
    amount = amount.replace(",", "")
    whole, _, frac = amount.partition(".")
    whole_n = int(whole) if whole else 0
    if scaled:  # "$3 million" -> "three million dollars": the unit moves after the scale word
        return _say_number(amount)
    if frac and len(frac) <= 2:
        cents = int(frac.ljust(2, "0"))
        head = f"{num2words(whole_n)} {one if whole_n == 1 else many}"
        if cents == 0:
            return head
        tail = f"{num2words(cents)} {small_one if cents == 1 else small_many}"
        return tail if whole_n == 0 else f"{head} and {tail}"
    return f"{_say_number(amount)} {one if amount == '1' else many}"


def _say_time(m: re.Match) -> str:
    hour, minute, suffix = int(m.group(1)), int(m.group(2)), (m.group(3) or "").replace(".", "").lower()
    if hour > 24 or minute > 59:
        return " ".join(num2words(int(d)) for d in (m.group(1), m.group(2)))
    words = num2words(hour)
    if minute == 0:
        words += " o'clock" if not suffix else ""
    elif minute < 10:
        words += f" oh {num2words(minute)}"
    else:
        words += f" {num2words(minute)}"
    return f"{words} {' '.join(suffix)}".strip()


def normalise_word(word: str, next_word: str = "") -> str:
    """The words spoken for one written word; unchanged when nothing needs expanding."""
    low = word.lower()
    if low in ABBREVIATIONS:
        if low == "st." and next_word[:1].islower():
            return "street"
        if low == "no." and not next_word[:1].isdigit():
            return word
        return ABBREVIATIONS[low]
    if low in SYMBOLS:
        return SYMBOLS[low]
    scaled = next_word.lower().rstrip(".,!?;:") in SCALES
    if m := _CURRENCY.fullmatch(word):
        return _tidy(_say_currency(m.group(1), m.group(2), scaled))
    if m := _CURRENCY_AFTER.fullmatch(word):
        return _tidy(_say_currency(m.group(2), m.group(1), scaled))
    if m := _PLAIN.fullmatch(word):
        sign = {"-": "minus ", "−": "minus ", "+": "plus "}.get(m.group(1), "")
        return _tidy(sign + _say_number(m.group(2)))
    if m := _ORDINAL.fullmatch(word):
        return _tidy(num2words(int(m.group(1)), to="ordinal"))
    if m := _PERCENT.fullmatch(word):
        sign = "minus " if m.group(1) else ""
        return _tidy(f"{sign}{_say_number(m.group(2))} percent")
    if m := _TIME.fullmatch(word):
        return _tidy(_say_time(m))
    if m := _RANGE.fullmatch(word):
        unit = SYMBOLS.get((m.group(3) or "").lower(), "")
        return _tidy(f"{_say_number(m.group(1))} to {_say_number(m.group(2))} {unit}")
    if m := _UNIT.fullmatch(word):
        return _tidy(f"{_say_number(m.group(1))} {SYMBOLS[m.group(2).lower()]}")
    if m := _HASH.fullmatch(word):
        return _tidy(f"number {_say_number(m.group(1))}")
    if any(c.isdigit() for c in word):  # "MP3", "COVID-19": spell the digit runs out
        return _tidy(_DIGITS.sub(lambda d: f" {_say_number(d.group())} ", word))
    return word


def _split_chunk(chunk: str) -> list[tuple[str, bool]]:
    """One whitespace-free chunk as (text, is_word) pieces: leading punctuation, the word, trailing punctuation."""
    lead = ""
    while chunk and chunk[0] in _LEADING and not _is_value(chunk):
        lead, chunk = lead + chunk[0], chunk[1:]
    trail = ""
    while chunk and chunk[-1] in _TRAILING and chunk.lower() not in ABBREVIATIONS and not _is_value(chunk):
        trail, chunk = chunk[-1] + trail, chunk[:-1]
    pieces: list[tuple[str, bool]] = []
    if lead:
        pieces.append((lead, False))
    if chunk:
        pieces.append((chunk, any(c.isalnum() for c in chunk) or chunk in SYMBOLS))
    if trail:
        pieces.append((trail, False))
    return pieces


def _is_value(chunk: str) -> bool:
    """Whether punctuation at the edges belongs to the token itself ('a.m.' and '.5' keep their dots)."""
    return bool(_TIME.fullmatch(chunk)) or bool(re.match(r"\.\d", chunk) and _PLAIN.fullmatch(chunk))


def items(text: str) -> list[Item]:
    """Written words and punctuation of ``text``, each with its spoken form."""
    raw: list[Item] = []
    for m in re.finditer(r"(\S+)(\s*)", text):
        pieces = _split_chunk(m.group(1))
        for k, (piece, is_word) in enumerate(pieces):
            space = m.group(2) if k == len(pieces) - 1 else ""
            spoken = piece if is_word else "".join(c for c in piece if c in _PAUSES)
            raw.append(Item(piece, spoken, is_word, space))
    following = ""  # the next written word, found walking backwards (one pass, not one scan per word)
    next_words = []
    for it in reversed(raw):
        next_words.append(following)
        if it.is_word:
            following = it.original
    next_words.reverse()
    for k, it in enumerate(raw):
        if it.is_word:
            it.spoken = normalise_word(it.original[:MAX_WORD_CHARS], next_words[k])
            if k > 0 and raw[k - 1].is_word and raw[k - 1].original[:1] in CURRENCIES \
                    and it.original.lower() in SCALES:
                it.spoken = f"{it.spoken} {CURRENCIES[raw[k - 1].original[0]][1]}"
    return raw


def sentences(text: str) -> list[list[Item]]:
    """``text`` split into sentences at terminal punctuation and line breaks (abbreviations keep their dot)."""
    out: list[list[Item]] = []
    current: list[Item] = []
    for it in items(clean(text)):
        current.append(it)
        ends = (not it.is_word and _SENTENCE_END.search(it.original)) or "\n" in it.space
        if ends and any(i.is_word for i in current):
            out.append(current)
            current = []
    if current:
        if out and not any(i.is_word for i in current):
            out[-1].extend(current)
        else:
            out.append(current)
    return out


def units(text: str) -> list[list[Item]]:
    """``text`` as synthesis units: its sentences, long ones cut into pieces (see :func:`split_long`)."""
    return [piece for sentence in sentences(text) for piece in split_long(sentence)]


def split_long(sentence: list[Item], limit: int = MAX_UNIT_CHARS) -> list[list[Item]]:
    """``sentence`` in pieces of at most ``limit`` spoken characters, each cut after the strongest
    punctuation that fits (CUT_PREFERENCE), else between words. A single word longer than ``limit``
    is a piece of its own (the engine still cuts its tokens to the model's limit)."""
    ends = [0]
    for it in sentence:
        ends.append(ends[-1] + len(it.spoken) + 1)
    pieces: list[list[Item]] = []
    start = 0
    while ends[-1] - ends[start] > limit:
        stop = start + 1
        while stop < len(sentence) and ends[stop + 1] - ends[start] <= limit:
            stop += 1
        cut = _phrase_cut(sentence, start, stop)
        pieces.append(sentence[start:cut])
        start = cut
    if start < len(sentence):
        pieces.append(sentence[start:])
    return pieces


def _phrase_cut(sentence: list[Item], start: int, stop: int) -> int:
    """Where to end the piece that starts at ``start`` and may run up to ``stop`` (exclusive)."""
    for marks in CUT_PREFERENCE:
        for k in range(stop, start + 1, -1):
            it = sentence[k - 1]
            if not it.is_word and any(c in marks for c in it.original):
                return k
    while stop > start + 1 and not sentence[stop].is_word:  # never start the next piece with punctuation
        stop -= 1
    return stop


def sentence_text(sentence: list[Item]) -> str:
    return "".join(i.original + i.space for i in sentence).strip()
