"""The font chain: which font draws each character.

The chain is the primary font (the request's `font`, else VIDEOAPI_FONT,
else DejaVu Sans Bold) and
then the installed Noto fonts for the world's common scripts (Debian's
fonts-noto-core, fonts-noto-cjk, fonts-noto-color-emoji). Each character is
drawn with the first font in the chain whose character map has it;
combining marks, joiners and variation selectors stay with the character
they belong to, and a script-neutral character (space, punctuation, digits)
stays in the font already in use when that font has it, so a run is not
broken needlessly. A character no font has is refused (text fields answer
400 naming it), never drawn as an empty box.

Fonts and their character maps are read once per process (fontTools reads
only the `cmap` table), before the service listens (warmup.py; the cost:
docs/BENCHMARKS.md, "The font chain (renders/media/fonts.py)").
"""

import collections
import functools
import logging
import os
import unicodedata
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from fontTools.ttLib import TTCollection, TTFont
from fontTools.unicodedata import Scripts, script_name
from fontTools.unicodedata import script as unicode_script

logger = logging.getLogger("renders.fonts")

PRIMARY_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf",
    "/usr/local/share/fonts/DejaVuSans-Bold.ttf",
)
NOTO_DIRS = ("/usr/share/fonts/truetype/noto", "/usr/share/fonts/opentype/noto")
# Fallbacks in order (file name, face name inside a collection). Bold where the family has one.
FALLBACKS = (
    ("NotoSans-Bold.ttf", None),
    ("NotoSansArabic-Bold.ttf", None),
    ("NotoSansHebrew-Bold.ttf", None),
    ("NotoSansDevanagari-Bold.ttf", None),
    ("NotoSansBengali-Bold.ttf", None),
    ("NotoSansGurmukhi-Bold.ttf", None),
    ("NotoSansGujarati-Bold.ttf", None),
    ("NotoSansOriya-Bold.ttf", None),
    ("NotoSansTamil-Bold.ttf", None),
    ("NotoSansTelugu-Bold.ttf", None),
    ("NotoSansKannada-Bold.ttf", None),
    ("NotoSansMalayalam-Bold.ttf", None),
    ("NotoSansSinhala-Bold.ttf", None),
    ("NotoSansThai-Bold.ttf", None),
    ("NotoSansLao-Bold.ttf", None),
    ("NotoSansKhmer-Bold.ttf", None),
    ("NotoSansMyanmar-Bold.ttf", None),
    ("NotoSansGeorgian-Bold.ttf", None),
    ("NotoSansArmenian-Bold.ttf", None),
    ("NotoSansEthiopic-Bold.ttf", None),
    ("NotoSansCJK-Bold.ttc", "Noto Sans CJK SC Bold"),  # Han, kana, hangul; SC glyph shapes for shared Han
    ("NotoSansSymbols-Bold.ttf", None),
    ("NotoSansSymbols2-Regular.ttf", None),
    ("NotoSansMath-Regular.ttf", None),
    ("NotoColorEmoji.ttf", None),
)

# Characters that take no glyph of their own (joiners, selectors, bidi controls).
IGNORABLE = set(range(0x200B, 0x2010)) | set(range(0x202A, 0x202F)) | set(range(0x2060, 0x2070)) | \
    set(range(0xFE00, 0xFE10)) | {0xFEFF, 0x034F, 0x00AD} | set(range(0xE0100, 0xE01F0)) | set(range(0xE0020, 0xE0080))


@dataclass(eq=False)
class Face:
    path: str
    index: int  # face index inside a collection (0 for a plain font file)
    name: str
    codepoints: frozenset = field(repr=False)
    bitmap_only: bool = False  # a colour bitmap font (CBDT): drawn at its one size and scaled

    def has(self, char: str) -> bool:
        return ord(char) in self.codepoints


def _face_name(font) -> str:
    """A face's name as the file states it: its (typographic) family and style."""
    names = font["name"]
    family = names.getDebugName(16) or names.getDebugName(1) or "Unnamed"
    style = names.getDebugName(17) or names.getDebugName(2) or "Regular"
    return f"{family} {style}"


def _read(path: str, face_name: str | None = None) -> Face | None:
    """The face (of a collection: the one named `face_name`, else the first), or None if unreadable."""
    try:
        if path.lower().endswith((".ttc", ".otc")):
            faces = list(enumerate(TTCollection(path, lazy=True).fonts))
            index, font = next(((i, f) for i, f in faces if _face_name(f) == face_name), faces[0])
        else:
            index, font = 0, TTFont(path, lazy=True)
        codepoints = frozenset(font.getBestCmap() or {})
        if not codepoints:
            raise ValueError("no character map")
        bitmap_only = "CBDT" in font and "glyf" not in font and "CFF " not in font
        return Face(path, index, _face_name(font), codepoints, bitmap_only)
    except Exception as exc:  # noqa: BLE001  (an unreadable or foreign file is skipped, never fatal)
        logger.warning("event=font_skipped path=%s error=%s", path, str(exc)[:200])
        return None


def primary_path() -> str:
    configured = settings.VIDEOAPI_FONT
    for path in (configured,) if configured else PRIMARY_CANDIDATES:
        if os.path.isfile(path):
            return path
    raise ImproperlyConfigured(
        f"font not found: {configured}" if configured else
        "no default font found (install fonts-dejavu-core or set VIDEOAPI_FONT)"
    )


@functools.lru_cache(maxsize=4)
def _chain(primary: str) -> tuple:
    faces = [_read(primary)]
    for filename, face_name in FALLBACKS:
        for directory in NOTO_DIRS:
            path = os.path.join(directory, filename)
            if os.path.isfile(path):
                faces.append(_read(path, face_name))
                break
    faces = tuple(f for f in faces if f is not None)
    if not faces:
        raise ImproperlyConfigured(f"the primary font {primary} cannot be read")
    return faces


def chain(primary: str = "") -> tuple:
    """The fonts in fallback order, `primary` (a font file; default: the configured one) first."""
    return _chain(primary or primary_path())


# ---- the registry of fonts a request may name ------------------------------------------------

FONT_SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")


@functools.lru_cache(maxsize=4)
def _registry(primary: str, directory: str) -> dict:
    default = _read(primary)
    if default is None:
        raise ImproperlyConfigured(f"the default font {primary} cannot be read")
    found = {default.name: primary}
    if directory and os.path.isdir(directory):
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            if not entry.name.lower().endswith(FONT_SUFFIXES) or not entry.is_file():
                continue
            face = _read(entry.path)  # a broken file is skipped with a log line, never a 500
            if face is None:
                continue
            if face.name in found:
                logger.warning("event=font_duplicate name=%r path=%s kept=%s", face.name, entry.path, found[face.name])
                continue
            found[face.name] = entry.path
    return found


def registry() -> dict:
    """Fonts a request may name: {name: path}, the default font first (read once per process)."""
    return _registry(primary_path(), str(settings.VIDEOAPI_FONTS_DIR or ""))


def default_font_name() -> str:
    return next(iter(registry()))


def needs_glyph(char: str) -> bool:
    if ord(char) in IGNORABLE or char in "\n\r\t":
        return False
    return unicodedata.category(char) not in ("Cc", "Cf", "Zl", "Zp")


def missing(text: str, primary: str = "") -> list[str]:
    """Characters of `text` that no font in the chain can draw, in order, once each."""
    faces = chain(primary)
    found = []
    for char in text:
        if needs_glyph(char) and char not in found and not any(face.has(char) for face in faces):
            found.append(char)
    return found


def char_name(char: str) -> str:
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" {name}" if name else "")


def attaches(char: str) -> bool:
    """Belongs to the character before it (marks, joiners, selectors)."""
    return unicodedata.category(char) in ("Mn", "Mc", "Me") or not needs_glyph(char)


def _emoji(char: str) -> bool:
    return 0x1F000 <= ord(char) <= 0x1FAFF


def _neutral(char: str) -> bool:
    """Spaces, punctuation, digits and symbols: they stay in the run they sit in."""
    return unicodedata.category(char)[0] in "ZPNS" and not _emoji(char)


def itemize(text: str, primary: str = "") -> list[tuple[str, Face]]:
    """Split `text` into runs that one font draws: [(text, face)].

    Pictographic emoji go to a colour font first when one is installed.
    """
    faces = chain(primary)
    colour_first = tuple(f for f in faces if f.bitmap_only) + tuple(f for f in faces if not f.bitmap_only)
    runs: list[list] = []
    for char in text:
        current = runs[-1][1] if runs else None
        if current is not None and (attaches(char) or (_neutral(char) and current.has(char))):
            runs[-1][0] += char
            continue
        face = next((f for f in (colour_first if _emoji(char) else faces) if f.has(char)), faces[0])
        if current is face:
            runs[-1][0] += char
        else:
            runs.append([char, face])
    return [(text, face) for text, face in runs]


# ---- which scripts the fonts draw (/readyz) ---------------------------------------------------

COVERED_SHARE = 0.75  # a script is listed when the fonts draw at least this share of its letters and marks
NOT_SCRIPTS = {"Zyyy", "Zinh", "Zzzz"}  # Common, Inherited, Unknown: shared by every script
HAN_SCRIPTS = {"Hani", "Hira", "Kana", "Hang", "Bopo"}  # shared by languages: listed by language instead
# (name, codec, lead bytes, trail bytes): the national character set a font for that language draws
LANGUAGE_SETS = (
    ("Chinese (simplified)", "gb2312", range(0xA1, 0xFF), range(0xA1, 0xFF)),  # GB 2312
    ("Chinese (traditional)", "big5", range(0xA1, 0xFA), [*range(0x40, 0x7F), *range(0xA1, 0xFF)]),  # Big5
    ("Japanese", "euc_jp", range(0xA1, 0xFF), range(0xA1, 0xFF)),  # JIS X 0208
    ("Korean", "euc_kr", range(0xA1, 0xFF), range(0xA1, 0xFF)),  # KS X 1001
)
EMOJI_BLOCKS = ((0x1F300, 0x1F650), (0x1F680, 0x1F700), (0x1F900, 0x1FB00))  # pictographs, emoticons, transport...


def _letter(code: int) -> bool:
    return unicodedata.category(chr(code))[0] in "LM"


@functools.lru_cache(maxsize=1)
def _language_letters() -> tuple:
    """(name, the letters of its national character set), read from Python's codecs."""
    found = []
    for name, codec, leads, trails in LANGUAGE_SETS:
        letters = set()
        for lead in leads:
            for trail in trails:
                try:
                    char = bytes((lead, trail)).decode(codec)
                except UnicodeDecodeError:
                    continue
                if len(char) == 1 and unicodedata.category(char)[0] == "L":
                    letters.add(ord(char))
        found.append((name, frozenset(letters)))
    return tuple(found)


@functools.lru_cache(maxsize=8)
def _coverage(faces: tuple) -> dict:
    drawn = frozenset().union(*(face.codepoints for face in faces))
    total, have = collections.Counter(), collections.Counter()

    def count(first, last, script):
        for code in range(first, last):
            if _letter(code):
                total[script] += 1
                have[script] += code in drawn

    ranges = [(first, last, script) for first, last, script
              in zip(Scripts.RANGES, [*Scripts.RANGES[1:], 0x110000], Scripts.VALUES) if script not in NOT_SCRIPTS]
    for first, last, script in ranges:  # a script's letters in the BMP...
        if first < 0x10000:
            count(first, min(last, 0x10000), script)
    beyond = {unicode_script(chr(code)) for code in drawn if code >= 0x10000} - set(total)
    for first, last, script in ranges:  # ... or, for a script with none there, in every plane
        if script in beyond:
            count(max(first, 0x10000), last, script)
    share = {script: have[script] / total[script] for script in total if have[script]}
    covered = sorted(script_name(script) for script, part in share.items()
                     if part >= COVERED_SHARE and script not in HAN_SCRIPTS)
    covered += [name for name, letters in _language_letters() if letters <= drawn]
    pictographs = [code for first, last in EMOJI_BLOCKS for code in range(first, last)
                   if unicodedata.category(chr(code)) == "So"]
    if sum(code in drawn for code in pictographs) >= COVERED_SHARE * len(pictographs):
        covered.append("Emoji")
    partial = sorted(script_name(script) for script, part in share.items()
                     if part < COVERED_SHARE and script not in HAN_SCRIPTS)
    return {"covered": covered, "partial": partial}


def coverage(faces: tuple | None = None) -> dict:
    """Which scripts the fonts (default: the chain) draw, derived from their character maps.

    "covered": every script of which the fonts draw at least COVERED_SHARE of the letters and marks (in the
    BMP, or in every plane for a script with none there); Chinese, Japanese and Korean, which share Han,
    by language, each when its national character set is drawn whole (GB 2312, Big5, JIS X 0208,
    KS X 1001); and "Emoji" when the pictographs are. "partial": scripts drawn in part only.
    Computed once per set of fonts.
    """
    faces = tuple(faces) if faces is not None else chain()
    return {**_coverage(faces), "fonts": [face.name for face in faces]}
