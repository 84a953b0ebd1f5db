"""Form fields shared by every endpoint's serializer."""

import json
import math
import re
import unicodedata
from pathlib import Path

from rest_framework import serializers
from rest_framework.fields import empty

from renders.lifecycle.uploads import WorkspaceFile, clean_basename, trim_name
from renders.media import captions, fonts
from renders.media.probe import probe_audio, probe_image, probe_video
from renders.plans import AudioInput, CaptionsInput, ImageInput, VideoInput

CLOCK_RE = re.compile(r"^(?:(?P<h>\d+):)?(?P<m>\d{1,2}):(?P<s>\d{1,2}(?:\.\d{1,6})?)$")
NUMBER_RE = re.compile(r"^\d+(?:\.\d+)?$|^\.\d+$")


def parse_time(raw) -> float:
    """Seconds (``2``, ``2.5``) or clock form (``MM:SS``, ``HH:MM:SS``, ``.mmm``)."""
    text = str(raw).strip()
    if NUMBER_RE.match(text):
        value = float(text)
    else:
        match = CLOCK_RE.match(text)
        if not match:
            raise ValueError("must be seconds (2.5) or a clock time (MM:SS or HH:MM:SS, optional .mmm)")
        minutes, seconds = int(match["m"]), float(match["s"])
        if match["h"] is not None and minutes >= 60:
            raise ValueError("minutes must be below 60 in HH:MM:SS")
        if seconds >= 60:
            raise ValueError("seconds must be below 60 in clock form")
        value = int(match["h"] or 0) * 3600 + minutes * 60 + seconds
    if not math.isfinite(value):
        raise ValueError("must be a finite number of seconds")
    return value


class Published:
    """How one of this service's form fields is published, said once by the field's class.

    `option_type` (and `option_extras()`) is what GET /api/options shows a
    front end; `openapi()` is the field's OpenAPI schema where
    drf-spectacular's own mapping would say too little (None: use it).
    """

    option_type = "text"

    def option_extras(self) -> dict:
        return {}

    def openapi(self) -> dict | None:
        return None


class BlankIsMissing:
    """A form value that is empty or only whitespace counts as not sent."""

    def get_value(self, dictionary):
        value = super().get_value(dictionary)
        if isinstance(value, str) and not value.strip():
            return empty
        return value


class TimeField(Published, BlankIsMissing, serializers.Field):
    option_type = "time"
    default_error_messages = {"invalid": "{message}", "min": "must be at least {min} s",
                              "max": "must be at most {max} s"}

    def __init__(self, *, min_value=0.0, max_value=None, **kwargs):
        self.min_value = min_value
        self.max_value = max_value
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, (list, dict)):
            self.fail("invalid", message="must be a single value")
        try:
            value = parse_time(data)
        except ValueError as exc:
            self.fail("invalid", message=str(exc))
        if value < self.min_value:
            self.fail("min", min=f"{self.min_value:g}")
        if self.max_value is not None and value > self.max_value:
            self.fail("max", max=f"{self.max_value:g}")
        return value

    def to_representation(self, value):
        return value

    def openapi(self):
        # no example here: each time field gets one that fits its operation (schema.EXAMPLES)
        syntax = "seconds (2, 2.5) or clock time (MM:SS or HH:MM:SS, optional .mmm)"
        return {"type": "string", "description": f"{self.help_text}; {syntax}" if self.help_text else syntax}


LINE_BREAKS = ("\r\n", "\r", "\x85", "\u2028", "\u2029")  # each one a line break; "\n" is the one kept


class TextField(Published, BlankIsMissing, serializers.CharField):
    """Stripped UTF-8 text that the fonts can draw; empty counts as missing; no control characters.

    Format characters (joiners, variation selectors, tags, bidi embeddings and
    isolates, soft hyphens) are kept and drawn as Unicode says (text.py); text
    made only of such invisible characters has nothing to draw and is refused.
    In a multiline field every kind of line break (CR, NEL, U+2028, U+2029)
    counts as one; in a single-line field any of them is refused.
    """

    def __init__(self, *, max_length, multiline=False, **kwargs):
        self.multiline = multiline
        kwargs.setdefault("help_text", f"drawn literally, at most {max_length} characters"
                                       + (", line breaks allowed" if multiline else ""))
        super().__init__(max_length=max_length, trim_whitespace=True, allow_blank=False, **kwargs)

    def option_extras(self):
        return {"multiline": self.multiline}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        if self.multiline:
            for line_break in LINE_BREAKS:
                data = data.replace(line_break, "\n")
        value = super().to_internal_value(data)
        for char in value:
            if char == "\n" and self.multiline:
                continue
            if char == "\n" or char in "".join(LINE_BREAKS):
                raise serializers.ValidationError("line breaks are not allowed here")
            if unicodedata.category(char) in ("Cc", "Cs"):
                raise serializers.ValidationError("control characters are not allowed")
        if self.multiline:
            value = "\n".join(line.strip() for line in value.split("\n"))
            value = re.sub(r"\n{3,}", "\n\n", value)
        if not any(fonts.needs_glyph(char) and not char.isspace() for char in value):
            raise serializers.ValidationError("has nothing to draw: only invisible characters")
        undrawable = fonts.missing(value)
        if undrawable:  # it would be drawn as an empty box ("tofu")
            shown = ", ".join(fonts.char_name(char) for char in undrawable[:5])
            raise serializers.ValidationError(f"no installed font can draw {shown}")
        return value


def sanitize_filename(raw: str, extension: str) -> str:
    """A safe basename with the right extension (at most 100 characters)."""
    name = clean_basename(raw)
    stem, dot, ext = name.rpartition(".")
    if dot and ext.lower() in {"mp4", "mov", "m4v", "mkv", "webm", "avi", "ts", "jpg", "jpeg", "png"}:
        name = trim_name(stem)
    name = trim_name(name[: 100 - len(extension) - 1])
    return f"{name}.{extension}" if name else ""


class FilenameField(serializers.CharField):
    """`final_filename`: kept raw here; `download_name()` sanitises it."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", "download name; path, control and quote characters are dropped, at most "
                                       "100 characters kept, the right extension added (default: the endpoint's name)")
        super().__init__(max_length=1000, allow_blank=True, trim_whitespace=True, **kwargs)


class UploadField(Published, serializers.Field):
    """An uploaded file, probed by the subclass's `probe()` (what it accepts is its `about`)."""

    default_error_messages = {"required": "This field is required.", "invalid": "must be an uploaded file"}
    about = "a file"

    def __init__(self, *, max_bytes=None, **kwargs):
        self.max_bytes = max_bytes
        kwargs.setdefault("help_text", self.about)
        super().__init__(**kwargs)

    def option_extras(self):
        return {"max_bytes": self.max_bytes} if self.max_bytes else {}

    def openapi(self):
        return {"type": "string", "format": "binary", "description": self.help_text or "a file"}

    def to_internal_value(self, data):
        if not isinstance(data, WorkspaceFile):
            self.fail("invalid")
        if self.max_bytes is not None and data.size > self.max_bytes:
            raise serializers.ValidationError(f"at most {self.max_bytes // (1024 * 1024)} MB")
        # a ListField's child has no name of its own: report the list's
        name = self.field_name or getattr(self.parent, "field_name", "") or "file"
        probed = self.probe(Path(data.path), name)
        data.probe_summary = probed.summary()  # a request refused later still records what was found
        return probed

    def to_representation(self, value):
        return value.name


class VideoField(UploadField):
    option_type = "video"
    about = "a video file: MP4/MOV, Matroska/WebM, AVI or MPEG-TS"

    def probe(self, path, field) -> VideoInput:
        return VideoInput(field, path.name, probe_video(path, field))


class ImageField(UploadField):
    option_type = "image"
    about = "an image: PNG, JPEG or WebP, at most 4096 px a side"

    def probe(self, path, field) -> ImageInput:
        return ImageInput(field, path.name, probe_image(path, field))


class AudioField(UploadField):
    option_type = "audio"
    about = "a sound file: MP3, AAC/M4A, WAV, FLAC or Ogg (or a video, for its sound)"

    def probe(self, path, field) -> AudioInput:
        return AudioInput(field, path.name, probe_audio(path, field))


class CaptionsField(UploadField):
    """An SRT or WebVTT file, parsed strictly (media/captions.py); a refusal names the line."""

    option_type = "captions"
    about = (f"an SRT or WebVTT file: UTF-8, at most {captions.MAX_CUES} cues and "
             f"{captions.MAX_BYTES // (1024 * 1024)} MB")

    def __init__(self, **kwargs):
        super().__init__(max_bytes=captions.MAX_BYTES, **kwargs)

    def option_extras(self):
        return {**super().option_extras(), "formats": ["srt", "vtt"], "max_cues": captions.MAX_CUES}

    def probe(self, path, field) -> CaptionsInput:
        try:
            kind, cues = captions.parse(path.read_bytes())
        except captions.CaptionError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return CaptionsInput(field, path.name, kind, path.stat().st_size, cues)


class StepsField(serializers.ListField):
    """A repeated form field, or one field holding a JSON array of strings."""

    def __init__(self, **kwargs):
        super().__init__(child=TextField(max_length=100), min_length=1, max_length=8, **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, (list, tuple)) and len(data) == 1 and str(data[0]).lstrip().startswith("["):
            try:
                data = json.loads(data[0])
            except ValueError:
                raise serializers.ValidationError("is not a valid JSON array of strings") from None
            if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
                raise serializers.ValidationError("must be a JSON array of strings")
        data = [item for item in data if isinstance(item, str) and item.strip()]
        if not data:
            self.fail("empty")
        return super().to_internal_value(data)


class BlankByDefault(Published, BlankIsMissing, serializers.CharField):
    """An optional text field whose schema default is empty, so an untouched "Try it out" form sends nothing
    for it (`output_url`, `output_headers`: checked where they are used)."""

    def __init__(self, *, option_type: str, schema_format: str | None = None, **kwargs):
        self.option_type, self.schema_format = option_type, schema_format
        super().__init__(required=False, **kwargs)

    def openapi(self):
        schema = {"type": "string", "maxLength": self.max_length, "default": "", "example": "",
                  "description": self.help_text}
        return {**schema, "format": self.schema_format} if self.schema_format else schema
