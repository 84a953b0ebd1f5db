"""Laying text out on the canvas: sizes, wrapping, stacking, safe margins.

Sizes are fractions of the canvas's short side, so a card reads the same on
16:9, 9:16 and square canvases. Lines are wrapped with the real font's
metrics (Pillow/FreeType), long words are broken, and a card that would
not fit the frame is shrunk until it does. The result is a list of placed
blocks that `builders.drawtext` turns into filters.
"""

import functools
import os
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from PIL import ImageFont

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf",
    "/usr/local/share/fonts/DejaVuSans-Bold.ttf",
    "/Library/Fonts/Arial Bold.ttf",
)


def font_path() -> str:
    """VIDEOAPI_FONT, or the first DejaVu Sans Bold found on the system."""
    configured = settings.VIDEOAPI_FONT
    candidates = (configured,) if configured else FONT_CANDIDATES
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise ImproperlyConfigured(
        f"font not found: {configured}" if configured else
        "no default font found (install fonts-dejavu-core or set VIDEOAPI_FONT)"
    )


@functools.lru_cache(maxsize=64)
def _font(path: str, size: int):
    return ImageFont.truetype(path, size)


@dataclass(frozen=True)
class Style:
    scale: float  # font size / the canvas's short side
    color: str = "white"


TITLE = Style(0.075)
SUBTITLE = Style(0.05)
BODY = Style(0.042, "0xEDEDED")
ACCENT = Style(0.05, "0xFFD54A")


@dataclass(frozen=True)
class Block:
    text: str
    style: Style


@dataclass(frozen=True)
class Card:
    """Blocks shown together, at one anchor, over one time window."""

    blocks: tuple
    anchor: str  # "lower-left", "center" or "top"
    start: float
    end: float


@dataclass(frozen=True)
class Placed:
    lines: tuple
    size: int
    color: str
    x: str  # a drawtext x expression
    y: int
    align: str
    border: int
    start: float
    end: float


@dataclass(frozen=True)
class CardBox:
    top: int
    bottom: int


def safe_margin(width: int, height: int) -> int:
    """Pixels kept clear at the frame's edges."""
    return round(0.06 * min(width, height))


def wrap(text: str, font, max_width: float) -> list[str]:
    """Greedy word wrap by measured width; words wider than a line are broken."""
    lines = []
    for paragraph in text.split("\n"):
        current = ""
        for word in paragraph.split(" "):
            candidate = f"{current} {word}" if current else word
            if font.getlength(candidate) <= max_width:
                current = candidate
                continue
            if current:
                lines.append(current)
                current = ""
            while font.getlength(word) > max_width and len(word) > 1:
                cut = len(word)
                while cut > 1 and font.getlength(word[:cut]) > max_width:
                    cut -= 1
                lines.append(word[:cut])
                word = word[cut:]
            current = word
        lines.append(current)
    return lines


def layout(card: Card, width: int, height: int, font: str, inset: int = 0) -> tuple[list[Placed], CardBox]:
    """Place a card's blocks on a `width` x `height` canvas.

    `inset` keeps that many pixels free on the left (for an avatar).
    """
    short = min(width, height)
    margin = safe_margin(width, height)
    shrink = 1.0
    for _attempt in range(12):
        blocks = []
        for block in card.blocks:
            size = max(10, round(block.style.scale * short * shrink))
            border = max(2, round(size * 0.28))
            room = width - 2 * margin - 2 * border - inset
            face = _font(font, size)
            lines = wrap(block.text, face, room)
            line_height = face.font.height
            blocks.append((block, size, border, lines, len(lines) * line_height))
        gaps = [b1[2] + b2[2] + round(0.12 * b2[1]) for b1, b2 in zip(blocks, blocks[1:])]
        total = sum(b[4] for b in blocks) + sum(gaps) + blocks[0][2] + blocks[-1][2]
        if total <= height - 2 * margin:
            break
        shrink *= 0.85
    if card.anchor == "lower-left":
        top = height - round(0.09 * height) - total
    elif card.anchor == "top":
        top = margin
    else:
        top = (height - total) // 2
    top = max(margin // 2, top)
    placed = []
    y = top + blocks[0][2]
    for index, (block, size, border, lines, block_height) in enumerate(blocks):
        if card.anchor == "lower-left":
            x, align = str(margin + inset + border), "L"
        else:
            x, align = "(w-text_w)/2", "C"
        placed.append(Placed(tuple(lines), size, block.style.color, x, y, align, border, card.start, card.end))
        if index < len(gaps):
            y += block_height + gaps[index]
    return placed, CardBox(top, top + total)
