"""Captions: SRT and WebVTT parsed strictly, and their cues drawn as stills by the templates' text engine.

**Parsing.** A small strict parser, not a library: the libraries at hand
(pysrt, webvtt-py, srt) either accept almost anything or fail without saying
where, and a person fixing a caption file needs the line. Every refusal is a
`CaptionError` naming the line (1-based) and what is wrong there. Accepted:

- UTF-8 only (a byte-order mark is dropped); no NUL or other control
  characters; at most `MAX_CUES` cues, each at most `MAX_CUE_CHARS`
  characters, every character one the installed fonts can draw.
- SRT: blocks of a number, a timing line ``HH:MM:SS,mmm --> HH:MM:SS,mmm``
  (``.`` accepted for ``,``; coordinates after it ignored) and one or more
  lines of text, separated by blank lines.
- WebVTT: the ``WEBVTT`` signature, header lines, then cues (an optional
  identifier, ``[HH:]MM:SS.mmm --> [HH:]MM:SS.mmm`` with optional cue
  settings, which are ignored) and NOTE, STYLE and REGION blocks (skipped).

Markup is never drawn as text: SRT's ``<b>``/``<i>``/``<u>``/``<font>`` and
``{\\an8}``-style overrides, WebVTT's ``<b>``, ``<i>``, ``<u>``, ``<c.x>``,
``<v Name>``, ``<lang>``, ``<ruby>``/``<rt>`` and timestamp tags are removed,
and character references (``&amp;``, ``&lt;``...) are decoded. Styling is
the request's (text_color, box_color, font), not the file's.

Cues must come in order of their start time; a cue that starts before the
previous one ends cuts the previous one short there (one caption at a time).

**Drawing** (`caption_stills`): each cue is one block, laid out by
text.layout (wrapping, every script, bidi, fallback fonts) bottom-centred in
the safe area, drawn by text.render_block, and pasted bottom-centred onto a
transparent still of one common size (the largest cue's box), so that every
cue of a render is a frame of one stream of equal-sized images (see
builders.captions_chain for why).
"""

import html
import re
import unicodedata
from dataclasses import dataclass

from PIL import Image

from renders.media import fonts
from renders.media.spec import Style
from renders.media.text import Block, Card, Role, layout, render_block

MAX_CUES = 2000
MAX_BYTES = 1024 * 1024
MAX_CUE_CHARS = 1000
CAPTION = Role(0.05)  # a caption's size: a fraction of the canvas's short side


class CaptionError(ValueError):
    def __init__(self, line: int, message: str):
        self.line = line
        super().__init__(f"line {line}: {message}" if line else message)


@dataclass(frozen=True)
class Cue:
    start: float  # seconds, output time
    end: float
    text: str  # plain text, lines separated by "\n"


SRT_TIME = r"(\d{1,3}):([0-5]\d):([0-5]\d)[,.](\d{3})"
SRT_TIMING = re.compile(rf"^{SRT_TIME}\s+-->\s+{SRT_TIME}(?:\s+[Xx]1:.*)?$")
VTT_TIME = r"(?:(\d{1,3}):)?([0-5]\d):([0-5]\d)\.(\d{3})"
VTT_TIMING = re.compile(rf"^{VTT_TIME}[ \t]+-->[ \t]+{VTT_TIME}(?:[ \t]+(.*))?$")
VTT_SETTING = re.compile(r"^(vertical|line|position|size|align|region):\S+$")
SRT_TAGS = re.compile(r"</?(?:b|i|u|s|font)(?:\s[^<>]*)?>|\{\\[^{}]*\}", re.I)
VTT_TAGS = re.compile(r"</?(?:b|i|u|c|v|lang|ruby|rt)(?:[.\s][^<>]*)?>|<(?:\d{1,3}:)?\d{2}:\d{2}\.\d{3}>")


def _seconds(hours, minutes, seconds, millis) -> float:
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000


def decode(data: bytes) -> str:
    """UTF-8 text (BOM dropped); CaptionError naming the line of the first byte that is not UTF-8."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CaptionError(line, "not UTF-8 text (captions must be UTF-8)") from None


def parse(data: bytes) -> tuple[str, tuple[Cue, ...]]:
    """("srt" or "vtt", the cues) of a caption file; CaptionError naming the line otherwise."""
    if len(data) > MAX_BYTES:
        raise CaptionError(0, f"at most {MAX_BYTES // (1024 * 1024)} MB")
    text = decode(data)
    lines = re.split(r"\r\n|\r|\n", text)
    for number, line in enumerate(lines, start=1):
        bad = next((c for c in line if unicodedata.category(c) == "Cc" and c != "\t"), None)
        if bad is not None:
            what = "a binary file is not captions" if bad == "\0" else f"control character U+{ord(bad):04X}"
            raise CaptionError(number, what)
    first = lines[0] if lines else ""
    if first == "WEBVTT" or first.startswith(("WEBVTT ", "WEBVTT\t")):
        return "vtt", _checked(_parse_vtt(lines))
    if not text.strip():
        raise CaptionError(1, "the file is empty: expected an SRT or WebVTT file")
    return "srt", _checked(_parse_srt(lines))


def _blocks(lines, start=0):
    """(first line number, [lines]) of each run of non-blank lines."""
    block, first = [], 0
    for index in range(start, len(lines)):
        if lines[index].strip():
            if not block:
                first = index + 1
            block.append(lines[index])
        elif block:
            yield first, block
            block = []
    if block:
        yield first, block


def _parse_srt(lines) -> list[tuple[int, Cue]]:
    cues = []
    for first, block in _blocks(lines):
        if not block[0].strip().isdigit():
            raise CaptionError(first, f"expected a cue number, found {_shown(block[0])}")
        if len(block) < 2:
            raise CaptionError(first + 1, "expected a timing line (00:00:01,000 --> 00:00:02,500) after the number")
        match = SRT_TIMING.match(block[1].strip())
        if not match:
            raise CaptionError(first + 1, f"bad timing line {_shown(block[1])}: expected "
                                          "HH:MM:SS,mmm --> HH:MM:SS,mmm")
        start, end = _seconds(*match.groups()[:4]), _seconds(*match.groups()[4:])
        text = _clean(block[2:], SRT_TAGS, first + 2)
        cues.append((first + 1, Cue(start, end, text)))
    return cues


def _parse_vtt(lines) -> list[tuple[int, Cue]]:
    cues = []
    header = True
    for first, block in _blocks(lines):
        if header:  # the signature and its header lines, up to the first blank line
            header = False
            if "-->" in block[0]:
                raise CaptionError(first, "the WEBVTT line must be followed by a blank line before the first cue")
            continue
        if block[0].startswith(("NOTE", "STYLE", "REGION")) and "-->" not in block[0]:
            continue
        timing = 1 if "-->" not in block[0] and len(block) > 1 else 0
        match = VTT_TIMING.match(block[timing].strip())
        if not match:
            raise CaptionError(first + timing, f"bad timing line {_shown(block[timing])}: expected "
                                               "[HH:]MM:SS.mmm --> [HH:]MM:SS.mmm")
        for setting in (match[9] or "").split():
            if not VTT_SETTING.match(setting):
                raise CaptionError(first + timing, f"unknown cue setting {_shown(setting)}")
        start, end = _seconds(*match.groups()[:4]), _seconds(*match.groups()[4:8])
        text = _clean(block[timing + 1:], VTT_TAGS, first + timing + 1)
        cues.append((first + timing, Cue(start, end, text)))
    return cues


def _shown(text: str) -> str:
    text = text.strip()
    return repr(text[:40] + ("..." if len(text) > 40 else ""))


def _clean(lines, tags, first) -> str:
    """The cue's text: markup removed, character references decoded, each line stripped."""
    if not lines:
        raise CaptionError(first - 1, "the cue has no text")
    cleaned = [html.unescape(tags.sub("", line)).replace("\u00a0", " ").strip() for line in lines]
    text = "\n".join(line for line in cleaned if line)
    if not text:
        raise CaptionError(first, "the cue has no text once its markup is removed")
    if len(text) > MAX_CUE_CHARS:
        raise CaptionError(first, f"the cue is {len(text)} characters long; at most {MAX_CUE_CHARS}")
    undrawable = fonts.missing(text)
    if undrawable:
        shown = ", ".join(fonts.char_name(char) for char in undrawable[:5])
        raise CaptionError(first, f"no installed font can draw {shown}")
    return text


def _checked(numbered) -> tuple[Cue, ...]:
    """Cues in order, each ending after it starts, at most MAX_CUES; overlaps cut the earlier cue short."""
    if not numbered:
        raise CaptionError(0, "the file has no cues")
    if len(numbered) > MAX_CUES:
        raise CaptionError(numbered[MAX_CUES][0], f"more than {MAX_CUES} cues")
    cues = []
    for line, cue in numbered:
        if cue.end <= cue.start:
            raise CaptionError(line, "the cue must end after it starts")
        if cues and cue.start < cues[-1].start:
            raise CaptionError(line, "cues must be in order of their start time")
        if cues and cue.start < cues[-1].end:
            cues[-1] = Cue(cues[-1].start, cue.start, cues[-1].text)
        cues.append(cue)
    return tuple(cue for cue in cues if cue.end > cue.start)


def fit(cues, length: float, fps: int) -> tuple[list[tuple[int, int, str]], int]:
    """([(first frame, end frame, text)], cues dropped) for an output of `length` s at `fps`: cue times on the
    output's frame grid, a cue starting at or past the end dropped, one running past it cut at the end."""
    last = max(1, round(length * fps))
    kept, dropped = [], 0
    for cue in cues:
        first = round(cue.start * fps)
        if first >= last:
            dropped += 1
            continue
        end = min(last, max(first + 1, round(cue.end * fps)))
        if kept and first < kept[-1][1]:  # two cues in one frame: the later one wins
            kept[-1] = (kept[-1][0], first, kept[-1][2])
            if kept[-1][1] <= kept[-1][0]:
                kept.pop()
        kept.append((first, end, cue.text))
    return kept, dropped


def caption_stills(texts, width: int, height: int, style: Style) -> tuple[list[Image.Image], tuple[int, int]]:
    """Each text as an RGBA still of one common size, its box bottom-centred; and that size."""
    boxes = []
    for text in texts:
        card = Card((Block(text, CAPTION),), "bottom", 0.0, 0.0)
        placed, _ = layout(card, width, height, style=style)
        boxes.append(render_block(placed[0]))
    size = (max(b.width for b in boxes), max(b.height for b in boxes)) if boxes else (2, 2)
    stills = []
    for box in boxes:
        still = blank(size)
        still.paste(box, ((size[0] - box.width) // 2, size[1] - box.height))
        stills.append(still)
    return stills, size


def blank(size: tuple[int, int]) -> Image.Image:
    """A transparent still: what shows between cues."""
    return Image.new("RGBA", size, (0, 0, 0, 0))
