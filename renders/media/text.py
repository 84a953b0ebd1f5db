"""Laying text out and drawing it: sizes, wrapping, stacking, scripts, safe margins.

Sizes are fractions of the canvas's short side, so a card reads the same on
16:9, 9:16 and square canvases. Every line is split into runs that one font
draws (fonts.py: the first font in the chain that has each character) and
ordered by the Unicode bidirectional algorithm (bidi.py), so a line
mixing Arabic and Latin reads as a reader expects. Each run is shaped by
HarfBuzz through Pillow's raqm layout (Arabic joining, Indic conjuncts).
Lines are wrapped with those same measurements (long words are broken) and
a card that would not fit the frame is shrunk until it does.

Each placed block is drawn by Pillow into a PNG in the render's workspace
(text on its translucent box) and laid over the video by FFmpeg, which
fades it in and out. The text itself never reaches FFmpeg: nothing a user
types can be read as a filter option or an expansion.
"""

import functools
import itertools
import re
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from renders.media import bidi, fonts
from renders.media.spec import DEFAULT_STYLE, Style

BITMAP_SIZE = 109  # the one size of Noto Color Emoji's bitmaps


@dataclass(frozen=True)
class Role:
    """How a block of a card is set: its size (a fraction of the canvas's short side) and colour role."""

    scale: float
    color: str = "text"  # "text" or "accent": the request's text_color / accent_color


TITLE = Role(0.075)
SUBTITLE = Role(0.05)
BODY = Role(0.042)
ACCENT = Role(0.05, "accent")


@dataclass(frozen=True)
class Block:
    text: str
    role: Role


@dataclass(frozen=True)
class Card:
    """Blocks shown together, at one anchor, over one time window."""

    blocks: tuple[Block, ...]
    anchor: str  # "lower-left", "center", "top" or "bottom"
    start: float
    end: float


@dataclass(frozen=True)
class Placed:
    """A block on the canvas: its box's top-left corner, and what to draw in it."""

    lines: tuple
    size: int
    color: tuple  # RGBA
    x: int
    y: int
    align: str  # "L", "C" or "R"
    border: int
    start: float
    end: float
    box: tuple = (0, 0, 0, 140)  # RGBA of the translucent box
    font: str = ""  # the primary font's file ("" = the configured default)


@dataclass(frozen=True)
class CardBox:
    top: int
    bottom: int


def safe_margin(width: int, height: int) -> int:
    """Pixels kept clear at the frame's edges."""
    return round(0.06 * min(width, height))


# ---- fonts at a size ----------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _pillow_font(path: str, index: int, size: int):
    return ImageFont.truetype(path, size, index=index, layout_engine=ImageFont.Layout.RAQM)


@dataclass(frozen=True)
class Sized:
    """A face at a pixel size (bitmap faces are drawn at their size and scaled by `factor`)."""

    face: fonts.Face
    font: object
    factor: float

    @property
    def ascent(self):
        return round(self.font.getmetrics()[0] * self.factor)

    @property
    def descent(self):
        return round(self.font.getmetrics()[1] * self.factor)


def sized(face: fonts.Face, size: int) -> Sized:
    if face.bitmap_only:
        return Sized(face, _pillow_font(face.path, face.index, BITMAP_SIZE), size / BITMAP_SIZE)
    return Sized(face, _pillow_font(face.path, face.index, size), 1.0)


# ---- lines: runs in visual order ---------------------------------------------------------


@dataclass(frozen=True)
class Run:
    text: str
    face: fonts.Face
    rtl: bool


@functools.lru_cache(maxsize=4096)
def visual_runs(line: str, font: str = "") -> tuple:
    """The line as runs of one font and one direction, left to right as shown."""
    if not line:
        return ()
    chars = bidi.levels(line)
    if not chars:  # only explicit controls: nothing to draw
        return ()
    logical = "".join(ch for ch, _ in chars)
    runs, position = [], 0  # (text, face, level) in logical order
    for text, face in fonts.itemize(logical, font):
        for ch in text:
            level = chars[position][1]
            if runs and runs[-1][1] is face and runs[-1][2] == level:
                runs[-1][0] += ch
            else:
                runs.append([ch, face, level])
            position += 1
    runs = [runs[index] for index in bidi.visual_order([level for _text, _face, level in runs])]  # UAX #9 L2
    return tuple(Run(text, face, level % 2 == 1) for text, face, level in runs)


def _advance(run: Run, size: int) -> float:
    s = sized(run.face, size)
    return s.font.getlength(run.text, direction="rtl" if run.rtl else "ltr") * s.factor


def measure(line: str, size: int, font: str = "") -> float:
    """The line's width in pixels at `size`, with the fonts and shaping that draw it."""
    return sum(_advance(run, size) for run in visual_runs(line, font))


def line_metrics(line: str, size: int, font: str = "") -> tuple[int, int]:
    """(ascent, descent) of a line: the tallest of the fonts it uses, at least the primary font's."""
    primary = sized(fonts.chain(font)[0], size)
    faces = [sized(run.face, size) for run in visual_runs(line, font)] + [primary]
    return max(f.ascent for f in faces), max(f.descent for f in faces)


LINE_BREAK = re.compile("\r\n|[\n\r\x1c-\x1e\x85\u2028\u2029]")  # paragraph separators (Bidi_Class B), U+2028
def wrap(text: str, size: int, max_width: float, font: str = "") -> list[str]:
    """Greedy word wrap by measured width; words wider than a line are broken (never before a mark or joiner).

    Every line or paragraph separator starts a new line (the fields let only "\n" through, in multiline ones).

    A line continuing a paragraph starts with the bidi controls still open where the last one ended, so
    an embedding or isolate keeps its direction across the break.
    """
    lines = []
    for paragraph in LINE_BREAK.split(text):
        current, broken = "", []
        for word in paragraph.split(" "):
            candidate = f"{current} {word}" if current else word
            if measure(candidate, size, font) <= max_width:
                current = candidate
                continue
            if current:
                broken.append(current)
                current = ""
            while measure(word, size, font) > max_width and len(word) > 1:
                low, high = 1, len(word) - 1  # the longest start of the word that fits (at least one character)
                while low < high:
                    middle = (low + high + 1) // 2
                    low, high = (middle, high) if measure(word[:middle], size, font) <= max_width else (low, middle - 1)
                cut = low
                while cut > 1 and (fonts.attaches(word[cut]) or word[cut - 1] == "\u200d"):  # marks, joiners stay
                    cut -= 1
                cut = cut if cut > 1 else low  # unless the character and its marks alone are wider than a line
                broken.append(word[:cut])
                word = word[cut:]
            current = word
        broken.append(current)
        carried = ""
        for line in broken:
            lines.append(carried + line)
            carried = bidi.open_controls(lines[-1])
    return lines


def block_height(lines, size: int, font: str = "") -> int:
    return sum(sum(line_metrics(line, size, font)) for line in lines)


# ---- placing cards -------------------------------------------------------------------


def layout(card: Card, width: int, height: int, inset: int = 0,
           style: Style = DEFAULT_STYLE) -> tuple[list[Placed], CardBox]:
    """Place a card's blocks on a `width` x `height` canvas, in the request's colours and font.

    `inset` keeps that many pixels free on the left (for an avatar).
    """
    font = fonts.registry().get(style.font, "")  # "" = the configured default
    short = min(width, height)
    margin = safe_margin(width, height)
    shrink = 1.0
    for _attempt in range(12):
        blocks = []
        for block in card.blocks:
            size = max(10, round(block.role.scale * short * shrink))
            border = max(2, round(size * 0.28))
            room = width - 2 * margin - 2 * border - inset
            lines = wrap(block.text, size, room, font)
            blocks.append((block, size, border, lines, block_height(lines, size, font)))
        gaps = [b1[2] + b2[2] + round(0.12 * b2[1]) for b1, b2 in itertools.pairwise(blocks)]
        total = sum(b[4] for b in blocks) + sum(gaps) + blocks[0][2] + blocks[-1][2]
        if total <= height - 2 * margin:
            break
        shrink *= 0.85
    if card.anchor == "lower-left":
        top = height - round(0.09 * height) - total
    elif card.anchor == "top":
        top = margin
    elif card.anchor == "bottom":  # captions: bottom-centred in the safe area
        top = height - margin - total
    else:
        top = (height - total) // 2
    top = max(margin // 2, top)
    placed = []
    y = top + blocks[0][2]
    for index, (block, size, border, lines, text_height) in enumerate(blocks):
        box_width = round(max(measure(line, size, font) for line in lines)) + 2 * border
        if card.anchor == "lower-left":
            x, align = margin + inset, "L"
        else:
            x, align = (width - box_width) // 2, "C"
        placed.append(Placed(tuple(lines), size, style.color(block.role.color), x, y - border, align, border,
                             card.start, card.end, style.box, font))
        if index < len(gaps):
            y += text_height + gaps[index]
    return placed, CardBox(top, top + total)


# ---- drawing a block ------------------------------------------------------------------


def _draw_run(layer: Image.Image, run: Run, size: int, x: float, baseline: int, ink: tuple):
    s = sized(run.face, size)
    direction = "rtl" if run.rtl else "ltr"
    if s.factor == 1.0:
        ImageDraw.Draw(layer).text((x, baseline), run.text, font=s.font, fill=ink, anchor="ls",
                                   direction=direction, embedded_color=True)
        return
    # a colour bitmap font: draw at its own size, scale, and lay it over the text layer
    ascent, descent = s.font.getmetrics()
    width = max(1, round(s.font.getlength(run.text, direction=direction)))
    bitmap = Image.new("RGBA", (width, ascent + descent), (0, 0, 0, 0))
    ImageDraw.Draw(bitmap).text((0, ascent), run.text, font=s.font, anchor="ls", direction=direction,
                                embedded_color=True)
    scaled = bitmap.resize((max(1, round(width * s.factor)), max(1, round((ascent + descent) * s.factor))),
                           Image.Resampling.LANCZOS)
    layer.alpha_composite(scaled, (round(x), baseline - round(ascent * s.factor)))


def render_block(placed: Placed) -> Image.Image:
    """The block as an RGBA image: its lines on a translucent box, `border` pixels of box around them."""
    size, border, font = placed.size, placed.border, placed.font
    widths = [measure(line, size, font) for line in placed.lines]
    text_width = round(max(widths))
    metrics = [line_metrics(line, size, font) for line in placed.lines]
    box = (text_width + 2 * border, sum(a + d for a, d in metrics) + 2 * border)
    red, green, blue, alpha = placed.color
    # the text on a layer of its own colour at zero opacity, so antialiased edges keep their colour
    layer = Image.new("RGBA", box, (red, green, blue, 0))
    y = border
    for line, width, (ascent, descent) in zip(placed.lines, widths, metrics):
        x = border + {"C": (text_width - width) / 2, "R": text_width - width}.get(placed.align, 0)
        for run in visual_runs(line, font):
            _draw_run(layer, run, size, x, y + ascent, (red, green, blue, alpha))
            x += _advance(run, size)
        y += ascent + descent
    image = Image.new("RGBA", box, placed.box)
    image.alpha_composite(layer)
    return image
