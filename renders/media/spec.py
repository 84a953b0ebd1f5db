"""The output spec: what a render produces (format, canvas, fit, frame rate, quality, style, loudness).

One `OutputSpec` value is part of every house-format plan (renders.plans): the
serializer makes it, the operation and the builders read it. The choices
offered here (canvas presets, fits, frame rates, qualities, colour defaults)
are the single source that the serializers validate against and that
`GET /api/options` publishes.
"""

import re
from dataclasses import dataclass, field
from typing import Literal

from django.conf import settings

AUDIO_RATE = 48000  # Hz: the house format's sound (stereo AAC)
CANVAS_PRESETS = {"16:9": (16, 9), "9:16": (9, 16), "1:1": (1, 1), "4:5": (4, 5)}
CANVAS_MIN_SIDE, CANVAS_MAX_SIDE, CANVAS_MAX_AREA = 128, 3840, 3840 * 2160
FITS = {
    "contain": "the whole picture, padded with black bars",
    "cover": "fills the canvas; what overflows is cropped around the centre",
    "blur": "the whole picture over a blurred, enlarged copy of itself instead of bars",
}
FPS_CHOICES = (24, 25, 30, 50, 60)
# x264 settings per quality; "standard" is the configured house setting.
QUALITIES = {
    "draft": {"preset": "superfast", "crf": 28, "audio_bitrate": "96k",
              "description": "fastest encode, for previews while editing"},
    "standard": {"description": "the configured house encode (VIDEOAPI_X264_PRESET / VIDEOAPI_X264_CRF)"},
    "high": {"preset": "medium", "crf": 17, "audio_bitrate": "192k",
             "description": "slower encode, visibly cleaner on real footage, larger files"},
}


@dataclass(frozen=True)
class Format:
    """An output format: its file, its codecs, whether it carries sound."""

    extension: str
    content_type: str
    video_codec: str  # what a probe of the output reads
    audio_codec: str | None  # None: no sound
    description: str


GIF_DEFAULT_FPS, GIF_MAX_FPS, GIF_MAX_SECONDS = 15, 30, 60.0
FORMATS = {
    "mp4": Format("mp4", "video/mp4", "h264", "aac", "H.264 + AAC in MP4 (the house format)"),
    "webm": Format("webm", "video/webm", "vp9", "opus", "VP9 + Opus in WebM"),
    "gif": Format("gif", "image/gif", "gif", None, f"animated GIF: no sound, a palette per frame, at most "
                                                   f"{GIF_MAX_FPS} fps (default {GIF_DEFAULT_FPS}) and "
                                                   f"{GIF_MAX_SECONDS:g} s"),
}
VP9_CRF_OFFSET = 10  # VP9's CRF (0-63) for a quality: the x264 CRF plus this (x264 20 -> VP9 30)
COLOR_RE = re.compile(r"^#([0-9A-Fa-f]{6})([0-9A-Fa-f]{2})?$")


def parse_color(value: str) -> tuple[int, int, int, int]:
    """'#RRGGBB' or '#RRGGBBAA' -> (r, g, b, a)."""
    match = COLOR_RE.match(value)
    if not match:
        raise ValueError("must be #RRGGBB or #RRGGBBAA")
    rgb, alpha = match[1], match[2] or "FF"
    return (int(rgb[0:2], 16), int(rgb[2:4], 16), int(rgb[4:6], 16), int(alpha, 16))


@dataclass(frozen=True)
class Style:
    """The look of the templates' text: colours and the primary font (a registry name; "" = the default)."""

    text_color: str = "#FFFFFF"
    accent_color: str = "#FFD54A"
    box_color: str = "#0000008C"  # black at 55 %
    font: str = ""  # fonts.registry() name

    def color(self, role: str) -> tuple:
        return parse_color(self.accent_color if role == "accent" else self.text_color)

    @property
    def box(self) -> tuple:
        return parse_color(self.box_color)


DEFAULT_STYLE = Style()


@dataclass(frozen=True)
class OutputSpec:
    width: int
    height: int
    fps: int
    fit: str = "contain"
    quality: str = "standard"
    preset: str = "veryfast"
    crf: int = 20
    audio_bitrate: str = "160k"
    style: Style = field(default_factory=Style)
    loudness: float | None = None  # target integrated loudness, LUFS (media/loudness.py); None: as it comes
    format: Literal["mp4", "webm", "gif"] = "mp4"  # a FORMATS name (plans stored before it read as mp4)

    @property
    def frame(self) -> float:
        return 1.0 / self.fps

    @property
    def output(self) -> Format:
        return FORMATS[self.format]

    @property
    def has_sound(self) -> bool:
        return self.output.audio_codec is not None


def preset_size(preset: str, short_side: int) -> tuple[int, int]:
    """An aspect preset at the configured canvas's short side (even sides)."""
    a, b = CANVAS_PRESETS[preset]
    if a >= b:
        height = short_side
        width = round(short_side * a / b / 2) * 2
    else:
        width = short_side
        height = round(short_side * b / a / 2) * 2
    return width, height


def house_format(canvas: tuple[int, int] | None = None, fps: int | None = None, fit: str = "contain",
                 quality: str = "standard", style: Style = DEFAULT_STYLE, loudness: float | None = None,
                 format: str = "mp4") -> OutputSpec:
    """The output spec: the configured house format, with any per-request choices applied (a gif's frame rate
    defaults to GIF_DEFAULT_FPS)."""
    width, height = canvas or settings.VIDEOAPI_CANVAS
    encode = {"preset": settings.VIDEOAPI_X264_PRESET, "crf": settings.VIDEOAPI_X264_CRF,
              "audio_bitrate": settings.VIDEOAPI_AUDIO_BITRATE}
    encode.update({k: v for k, v in QUALITIES[quality].items() if k != "description"})
    default_fps = GIF_DEFAULT_FPS if format == "gif" else settings.VIDEOAPI_FPS
    return OutputSpec(width=width, height=height, fps=fps or default_fps, fit=fit, quality=quality,
                      style=style, loudness=loudness, format=format, **encode)
