"""Per-request output and style fields, and `GET /api/options`, from one set of declarations.

The serializers mix in `OutputFields` (every endpoint producing house-format
video) and `StyleFields` (the six templates); `options_document()` walks the
same serializer classes and the choices in media/spec.py, so anything added
there shows up in /api/options without extra code.
"""

import re

from django.conf import settings
from rest_framework import serializers

from renders import plans
from renders.api.fields import AudioField, BlankIsMissing, CaptionsField, ImageField, Published
from renders.media import fonts, loudness, spec
from renders.media.spec import (
    CANVAS_MAX_AREA,
    CANVAS_MAX_SIDE,
    CANVAS_MIN_SIDE,
    CANVAS_PRESETS,
    DEFAULT_STYLE,
    FITS,
    FORMATS,
    FPS_CHOICES,
    GIF_MAX_FPS,
    QUALITIES,
    Style,
    house_format,
    parse_color,
    preset_size,
)

SIZE_RE = re.compile(r"^(\d{2,5})x(\d{2,5})$")


class CanvasField(Published, BlankIsMissing, serializers.Field):
    """An aspect preset (`16:9`, `9:16`, `1:1`, `4:5`) or `WxH` -> (width, height)."""

    option_type = "canvas"

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "Output size: an aspect preset (keeps the configured short side) or WxH "
                                       f"(even sides, {CANVAS_MIN_SIDE}-{CANVAS_MAX_SIDE}, area at most 3840x2160).")
        super().__init__(required=False, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError("must be a preset or WxH")
        value = data.strip().lower()
        if value in CANVAS_PRESETS:
            return preset_size(value, min(settings.VIDEOAPI_CANVAS))
        match = SIZE_RE.match(value)
        if not match:
            raise serializers.ValidationError(f"must be one of {', '.join(CANVAS_PRESETS)} or WxH, like 1080x1920")
        width, height = int(match[1]), int(match[2])
        for side in (width, height):
            if not CANVAS_MIN_SIDE <= side <= CANVAS_MAX_SIDE:
                raise serializers.ValidationError(f"each side must be {CANVAS_MIN_SIDE}-{CANVAS_MAX_SIDE} pixels")
            if side % 2:
                raise serializers.ValidationError("sides must be even (H.264 4:2:0)")
        if width * height > CANVAS_MAX_AREA:
            raise serializers.ValidationError("the area must be at most 3840x2160")
        return width, height

    def to_representation(self, value):
        return f"{value[0]}x{value[1]}"

    def option_extras(self):
        return {"choices": list(CANVAS_PRESETS) + ["WxH"]}

    def openapi(self):
        return {"type": "string", "example": "9:16", "pattern": r"^(" + "|".join(CANVAS_PRESETS) + r"|\d+x\d+)$",
                "description": self.help_text}


class ColorField(Published, BlankIsMissing, serializers.CharField):
    option_type = "color"

    def __init__(self, default, **kwargs):
        super().__init__(required=False, default=default, max_length=9, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            parse_color(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value.upper()

    def openapi(self):
        return {"type": "string", "pattern": "^#[0-9A-Fa-f]{6}([0-9A-Fa-f]{2})?$", "example": self.default,
                "default": self.default, "description": self.help_text}


class FontField(Published, BlankIsMissing, serializers.Field):
    """A name from the font registry (read once per process)."""

    option_type = "choice"

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "A font name from GET /api/options (fonts): the default font, or a font "
                                       "the operator placed in VIDEOAPI_FONTS_DIR.")
        super().__init__(required=False, **kwargs)

    def to_internal_value(self, data):
        names = fonts.registry()
        if not isinstance(data, str) or data.strip() not in names:
            raise serializers.ValidationError(f"unknown font; valid names: {', '.join(names)}")
        return data.strip()

    def option_extras(self):
        return {"choices": list(fonts.registry())}

    def openapi(self):
        names = list(fonts.registry())
        return {"type": "string", "enum": names, "example": names[0], "description": self.help_text}


class LoudnessField(Published, BlankIsMissing, serializers.Field):
    """`off`, a preset (`web`, `streaming`, `broadcast`) or a number of LUFS -> the target (None: off)."""

    option_type = "loudness"

    def __init__(self, **kwargs):
        presets = ", ".join(f"{name} ({value:g})" for name, value in loudness.PRESETS.items())
        kwargs.setdefault("help_text", "The output's sound normalised to this integrated loudness (EBU R128, "
                                       f"measured, then applied; true peak at most {loudness.CEILING:g} dBTP): "
                                       f"off (default), {presets}, or a number of LUFS from "
                                       f"{loudness.MIN_TARGET:g} to {loudness.MAX_TARGET:g}. On a join every "
                                       "input is brought to the target before joining.")
        super().__init__(required=False, **kwargs)

    def to_internal_value(self, data):
        try:
            return loudness.parse_target(data)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def to_representation(self, value):
        return "off" if value is None else value

    def option_extras(self):
        return {"default": "off", "choices": ["off", *loudness.PRESETS], "presets": dict(loudness.PRESETS),
                "min_value": loudness.MIN_TARGET, "max_value": loudness.MAX_TARGET, "unit": "LUFS"}

    def openapi(self):
        names = ["off", *loudness.PRESETS]
        return {"oneOf": [{"type": "string", "enum": names},
                          {"type": "number", "minimum": loudness.MIN_TARGET, "maximum": loudness.MAX_TARGET}],
                "default": "off", "example": "web", "description": self.help_text}


def _choice(choices, default, help_text):
    return serializers.ChoiceField(choices=choices, required=False, default=default, help_text=help_text)


LOGO_POSITIONS = ["top-left", "top-right", "bottom-left", "bottom-right"]


class OutputFields(serializers.Serializer):
    """format, canvas, fit, fps, quality and the finishing (loudness, captions, logo, music): every endpoint that
    produces house-format video."""

    media_types = tuple(f.content_type for f in FORMATS.values())  # what a success answers, by `format`
    format = _choice(list(FORMATS), "mp4", "Output format: " +
                     "; ".join(f"{name}: {f.description}" for name, f in FORMATS.items()) + ".")
    canvas = CanvasField()
    fit = _choice(list(FITS), "contain", "How the source fills the canvas: " +
                  "; ".join(f"{name}: {text}" for name, text in FITS.items()) + ".")
    fps = serializers.ChoiceField(choices=list(FPS_CHOICES), required=False,
                                  help_text="Output frame rate (default: the configured VIDEOAPI_FPS).")
    quality = _choice(list(QUALITIES), "standard", "Encoder effort: " +
                      "; ".join(f"{name}: {q['description']}" for name, q in QUALITIES.items()) + ".")
    loudness = LoudnessField()
    captions = CaptionsField(required=False)
    logo = ImageField(required=False, max_bytes=10 * 1024 * 1024,
                      help_text="a logo drawn over the whole output: PNG, JPEG or WebP (alpha kept), at most 10 MB "
                                "and 4096 px a side")
    logo_position = _choice(LOGO_POSITIONS, "top-right", "The logo's corner, inside the safe margin.")
    logo_size = serializers.FloatField(min_value=0.05, max_value=0.5, default=0.12, required=False,
                                       help_text="The logo's width as a share of the canvas width (aspect kept).")
    logo_opacity = serializers.FloatField(min_value=0.0, max_value=1.0, default=1.0, required=False,
                                          help_text="The logo's opacity, 0-1.")
    music = AudioField(required=False, help_text="A soundtrack mixed under the video's sound, looped if shorter, "
                                                 "cut with a 1 s fade-out at the end: MP3, AAC/M4A, WAV, FLAC, Ogg "
                                                 "(or a video's sound).")
    music_volume = serializers.FloatField(min_value=-60.0, max_value=0.0, default=-18.0, required=False,
                                          help_text="The soundtrack's gain in dB (-60 to 0).")
    ducking = serializers.BooleanField(default=True, required=False,
                                       help_text="The soundtrack dips under the video's own sound and comes back "
                                                 "in its pauses.")

    def validate(self, attrs):
        attrs = super().validate(attrs)
        output = attrs.pop("format", "mp4")
        if output == "gif":
            if attrs.get("fps", 0) > GIF_MAX_FPS:
                raise serializers.ValidationError({"fps": [f"a gif is at most {GIF_MAX_FPS} fps"]})
            for name in ("loudness", "music"):
                if attrs.get(name) is not None:
                    raise serializers.ValidationError({name: ["gif has no sound"]})
        attrs["spec"] = house_format(canvas=attrs.pop("canvas", None), fps=attrs.pop("fps", None),
                                       fit=attrs.pop("fit", "contain"), quality=attrs.pop("quality", "standard"),
                                       style=self.style_spec(attrs), loudness=attrs.pop("loudness", None),
                                       format=output)
        attrs["finishing"] = finishing(attrs)
        return attrs

    @staticmethod
    def check_length(attrs, seconds: float, field: str = "format"):
        """A gif is at most spec.GIF_MAX_SECONDS long: an output `seconds` long is refused naming `field` (what
        makes it that long, else `format`)."""
        if attrs["spec"].format == "gif" and seconds > spec.GIF_MAX_SECONDS + 1e-3:
            raise serializers.ValidationError({field: [
                f"a gif is at most {spec.GIF_MAX_SECONDS:g} s long (this output would be {seconds:.3f} s)"]})

    def style_spec(self, attrs) -> Style:
        return DEFAULT_STYLE


def finishing(attrs) -> plans.Finishing:
    """The finishing fields (popped from `attrs`) as the plan's value."""
    logo, music = attrs.pop("logo", None), attrs.pop("music", None)
    logo_look = [attrs.pop(name) for name in ("logo_position", "logo_size", "logo_opacity")]  # their defaults
    music_mix = [attrs.pop(name) for name in ("music_volume", "ducking")]  # filled in by the fields
    return plans.Finishing(logo=plans.Logo(logo, *logo_look) if logo else None,
                           captions=attrs.pop("captions", None),
                           music=plans.Music(music, *music_mix) if music else None)


class StyleFields(OutputFields):
    """text_color, accent_color, box_color, font: the six templates."""

    text_color = ColorField(DEFAULT_STYLE.text_color, help_text="Text colour, #RRGGBB or #RRGGBBAA.")
    accent_color = ColorField(DEFAULT_STYLE.accent_color, help_text="Accent text colour (team, tagline...).")
    box_color = ColorField(DEFAULT_STYLE.box_color, help_text="The box behind the text; its alpha sets the "
                                                              "translucency (#RRGGBBAA).")
    font = FontField()

    def style_spec(self, attrs) -> Style:
        name = attrs.pop("font", None) or fonts.default_font_name()
        return Style(text_color=attrs.pop("text_color"), accent_color=attrs.pop("accent_color"),
                     box_color=attrs.pop("box_color"), font=name)


# ---- GET /api/options -------------------------------------------------------------------------


def field_options(field) -> dict:
    """A form field as a front end needs it: type, required, default, limits, choices."""
    child = getattr(field, "child", None)
    described = {"type": option_type(field), "required": bool(field.required)}
    if field.default is not serializers.empty and not callable(field.default):
        described["default"] = field.default
    for attribute in ("max_length", "min_length", "min_value", "max_value"):
        value = getattr(field, attribute, None)
        if value is not None:
            described[attribute] = value
    if isinstance(field, serializers.ChoiceField):
        described["choices"] = list(field.choices)
    if isinstance(field, Published):
        described.update(field.option_extras())
    if child is not None:
        described["items"] = field_options(child)
    if field.help_text:
        described["description"] = str(field.help_text)
    return described


# DRF's own fields, by the type GET /api/options gives them; this service's fields say theirs (fields.Published)
DRF_OPTION_TYPES = ((serializers.ListField, "list"), (serializers.ChoiceField, "choice"),
                    (serializers.IntegerField, "integer"), (serializers.FloatField, "number"),
                    (serializers.BooleanField, "boolean"))


def option_type(field) -> str:
    if isinstance(field, Published):
        return field.option_type
    return next((name for cls, name in DRF_OPTION_TYPES if isinstance(field, cls)), "text")


def options_document(views) -> dict:
    short = min(settings.VIDEOAPI_CANVAS)
    endpoints = {}
    for view in views:
        fields = view.serializer_class().fields
        endpoints[view.path] = {"endpoint": view.endpoint, "method": "POST",
                                "fields": {name: field_options(f) for name, f in fields.items()}}
        if getattr(view.serializer_class, "dynamic_fields", None):
            endpoints[view.path]["dynamic_fields"] = view.serializer_class.dynamic_fields
    width, height = settings.VIDEOAPI_CANVAS
    return {
        "canvas": {"default": f"{width}x{height}",
                   "presets": {name: "x".join(map(str, preset_size(name, short))) for name in CANVAS_PRESETS},
                   "custom": {"format": "WxH", "min_side": CANVAS_MIN_SIDE, "max_side": CANVAS_MAX_SIDE,
                              "max_area": CANVAS_MAX_AREA, "even_sides": True}},
        "fits": FITS,
        "formats": {name: {"content_type": f.content_type, "extension": f.extension, "description": f.description}
                    for name, f in FORMATS.items()},
        "fps": {"default": settings.VIDEOAPI_FPS, "choices": list(FPS_CHOICES)},
        "qualities": {name: q["description"] for name, q in QUALITIES.items()},
        "fonts": {"default": fonts.default_font_name(), "choices": list(fonts.registry())},
        "colors": {"text_color": DEFAULT_STYLE.text_color, "accent_color": DEFAULT_STYLE.accent_color,
                   "box_color": DEFAULT_STYLE.box_color},
        "limits": {"upload_bytes": settings.VIDEOAPI_MAX_UPLOAD_BYTES,
                   "input_seconds": settings.VIDEOAPI_MAX_INPUT_SECONDS,
                   "preview_seconds": settings.VIDEOAPI_PREVIEW_MAX_SECONDS},
        "endpoints": endpoints,
    }
