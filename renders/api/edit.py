"""The edit of POST /api/compose: its JSON shape, its limits, merge fields, and every problem under its JSON path.

The shape is a set of pydantic models (unknown fields refused everywhere),
so the same declarations validate a request and publish the edit's JSON
Schema (`edit_schema()`: in the OpenAPI document and at /api/compose/schema).
`parse_edit()` does everything that needs no file: merge fields replaced in
string values after parsing (a value never changes the structure), the
shape, the text engine's checks on text, the output options; a 400 lists
every problem at once, each under its path
(`timeline.tracks[1].clips[0].start`).
"""

import re
from typing import Annotated, Any, Literal

from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from rest_framework import serializers

from renders.api.fields import TextField
from renders.api.options import CanvasField, LoudnessField
from renders.errors import InvalidInput
from renders.media import composition, fonts
from renders.media.spec import FITS, FPS_CHOICES, GIF_MAX_FPS, QUALITIES
from renders.webhooks import CallbackRefused, validate_callback_url

MAX_TRACKS, MAX_CLIPS, MAX_TEXT, MAX_MERGE_VALUE = 10, 100, 500, 500
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}\}")
COLOR = r"^#[0-9A-Fa-f]{6}([0-9A-Fa-f]{2})?$"
OPAQUE = r"^#[0-9A-Fa-f]{6}$"
SOURCE = r"^(https?://|attach:|upload:)"

Transition = Literal[tuple(composition.TRANSITIONS)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


Src = Annotated[str, Field(pattern=SOURCE, max_length=2048,
                           description="https://... (fetched), attach:<multipart field> or upload:<id>")]
Color = Annotated[str, Field(pattern=COLOR, description="#RRGGBB or #RRGGBBAA")]
Volume = Annotated[float, Field(ge=-60, le=12, description="dB; -60 is muted")]
Seconds = Annotated[float, Field(ge=0, le=86400)]


class TextStyle(Strict):
    font: str = Field("", description="a font name from GET /api/options (empty: the default)")
    size: float = Field(0.06, ge=0.02, le=0.3, description="text height as a share of the canvas height")
    color: Color = "#FFFFFF"
    box_color: Color | None = Field(None, description="a box behind the text (none by default)")
    align: Literal["left", "center", "right"] = "center"
    max_width: float = Field(0.8, ge=0.1, le=1, description="share of the canvas width the text wraps at")

    @field_validator("font")
    @classmethod
    def known_font(cls, value):
        if value and value not in fonts.registry():
            raise ValueError(f"unknown font; valid names: {', '.join(fonts.registry())}")
        return value


class VideoAsset(Strict):
    type: Literal["video"]
    src: Src
    trim: Seconds = Field(0, description="seconds skipped at the source's start")
    volume: Volume = 0


class ImageAsset(Strict):
    type: Literal["image"]
    src: Src


class TextAsset(Strict):
    type: Literal["text"]
    text: str = Field(max_length=MAX_TEXT, description="drawn literally (every script, shaping, bidi); line "
                                                       "breaks allowed")
    style: TextStyle = TextStyle()

    @field_validator("text")
    @classmethod
    def drawable(cls, value):
        try:
            return TextField(max_length=MAX_TEXT, multiline=True).run_validation(value)
        except serializers.ValidationError as exc:
            raise ValueError(" ".join(str(item) for item in exc.detail)) from None


class ColorAsset(Strict):
    type: Literal["color"]
    color: Color


class AudioAsset(Strict):
    type: Literal["audio"]
    src: Src
    trim: Seconds = 0
    volume: Volume = 0


class CaptionsAsset(Strict):
    type: Literal["captions"]
    src: Src


Asset = Annotated[VideoAsset | ImageAsset | TextAsset | ColorAsset | AudioAsset | CaptionsAsset,
                  Field(discriminator="type")]
ASSET_TYPES = ("video", "image", "text", "color", "audio", "captions")


class Offset(Strict):
    x: float = Field(0, ge=-1, le=1, description="share of the canvas width (positive: right)")
    y: float = Field(0, ge=-1, le=1, description="share of the canvas height (positive: down)")


class TransitionSpec(Strict):
    come_in: Transition | None = Field(None, alias="in")
    go_out: Transition | None = Field(None, alias="out")
    duration: float = Field(0.5, ge=0.1, le=2)


SEEN_FIELDS = ("fit", "scale", "position", "offset", "opacity", "transition", "effect")


class Clip(Strict):
    asset: Asset
    start: Seconds
    length: float | None = Field(None, gt=0, le=86400, description="seconds; for video and audio, default: the "
                                                                    "source's length after trim")
    fit: Literal["contain", "cover", "blur", "none"] | None = None
    scale: float = Field(1, ge=0.01, le=10)
    position: Literal[composition.POSITIONS] = "center"
    offset: Offset = Offset()
    opacity: float = Field(1, ge=0, le=1)
    transition: TransitionSpec | None = None
    effect: Literal[composition.EFFECTS] | None = None

    @model_validator(mode="after")
    def fits_its_asset(self):
        kind = self.asset.type
        if self.length is None and kind not in ("video", "audio"):
            raise ValueError(f"length: required for a {kind} clip")
        if kind in ("audio", "captions"):
            given = [name for name in SEEN_FIELDS if name in self.model_fields_set]
            if given:
                reason = "an audio clip is not seen" if kind == "audio" else \
                    "captions are placed as the captions field places them"
                raise ValueError(f"{given[0]}: does not apply ({reason})")
        if self.effect and kind not in ("video", "image"):
            raise ValueError("effect: applies to video and image clips")
        transition = self.transition
        if (transition and transition.come_in and transition.go_out and self.length is not None
                and 2 * transition.duration > self.length + 1e-9):
            raise ValueError("transition: in and out need at most half the clip's length each")
        return self


class Track(Strict):
    clips: list[Clip] = Field(min_length=1, max_length=MAX_CLIPS)


class Soundtrack(Strict):
    src: Src
    volume: float = Field(-18, ge=-60, le=0)
    ducking: bool = True


class Timeline(Strict):
    background: str = Field("#000000", pattern=OPAQUE)
    tracks: list[Track] = Field(min_length=1, max_length=MAX_TRACKS)
    soundtrack: Soundtrack | None = None

    @model_validator(mode="after")
    def few_enough_clips(self):
        count = sum(len(track.clips) for track in self.tracks)
        if count > MAX_CLIPS:
            raise ValueError(f"tracks: at most {MAX_CLIPS} clips in the whole edit (got {count})")
        return self


class Output(Strict):
    format: Literal["mp4", "webm", "gif", "png", "jpg"] = "mp4"
    canvas: str | None = Field(None, description="an aspect preset (16:9, 9:16, 1:1, 4:5) or WxH")
    fit: Literal[tuple(FITS)] = Field("contain", description="the default fit of video and image clips")
    fps: Literal[FPS_CHOICES] | None = None
    quality: Literal[tuple(QUALITIES)] = "standard"
    loudness: str | float | None = Field(None, description="off, web, streaming, broadcast or LUFS")
    duration: float | None = Field(None, gt=0, description="cut or extend (with the background) to this length")
    frame_at: Seconds = Field(0, description="png/jpg: the moment shown")


class Edit(Strict):
    timeline: Timeline
    output: Output = Output()
    merge: dict[str, Any] = Field(default_factory=dict, description="values of the {{placeholders}}")
    final_filename: str | None = Field(None, max_length=1000)
    callback_url: str | None = Field(None, description="a job's webhook (with Prefer: respond-async)")
    output_url: str | None = Field(None, max_length=2048, description="an http(s) URL presigned for a PUT: the "
                                   "result is uploaded there (the request becomes a job)")
    output_headers: dict[str, str] | None = Field(None, description="with output_url: headers sent with the PUT")


    @field_validator("callback_url")
    @classmethod
    def callable_back(cls, value):
        """The callbacks' own rules (renders.webhooks), checked with the rest of the edit."""
        value = (value or "").strip()
        if not value:
            return None
        try:
            return validate_callback_url(value)
        except CallbackRefused as exc:
            raise ValueError(exc.messages[0]) from None


def edit_schema() -> dict:
    """The edit's JSON Schema (draft 2020-12), what clients and editors validate against."""
    schema = Edit.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Compose edit"
    return schema


# ---- errors under their paths ----------------------------------------------------------------


def json_path(location) -> str:
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


MESSAGES = {
    "greater_than_equal": "must be at least {ge}", "less_than_equal": "must be at most {le}",
    "greater_than": "must be more than {gt}", "less_than": "must be less than {lt}",
    "extra_forbidden": "unknown field", "missing": "This field is required.",
    "string_too_long": "at most {max_length} characters", "too_long": "at most {max_length} items",
    "too_short": "at least {min_length} items", "string_type": "must be text", "float_parsing": "must be a number",
    "float_type": "must be a number", "bool_type": "must be true or false", "bool_parsing": "must be true or false",
    "dict_type": "must be an object", "list_type": "must be a list", "model_type": "must be an object",
    "union_tag_invalid": f"type must be one of: {', '.join(ASSET_TYPES)}",
    "union_tag_not_found": "type: This field is required.",
    "finite_number": "must be a finite number",
}
PATTERNS = {COLOR: "must be #RRGGBB or #RRGGBBAA", OPAQUE: "must be #RRGGBB", SOURCE: (
    "must be an https:// or http:// URL, attach:<field> or upload:<id>")}


def problems(error: ValidationError, prefix: str = "") -> dict[str, list[str]]:
    """pydantic's errors as {JSON path: [messages]}, in this service's words."""
    found = {}
    for item in error.errors(include_url=False):
        location = list(item["loc"])
        # a tagged union puts the tag in the path (asset.text.text): drop it
        location = [part for index, part in enumerate(location)
                    if not (index and location[index - 1] == "asset" and part in ASSET_TYPES)]
        kind, context = item["type"], item.get("ctx") or {}
        if kind == "string_pattern_mismatch":
            message = PATTERNS.get(context.get("pattern"), "is not in the expected form")
        elif kind == "literal_error":
            message = f"must be one of: {context.get('expected', '').replace(chr(39), '')}"
        elif kind == "value_error":
            message = str(context.get("error", item["msg"]))
            named, colon, rest = message.partition(": ")
            if colon and re.fullmatch(r"[a-z_]+", named):  # "length: required ..." names a field of the object
                location, message = [*location, named], rest
        else:
            shown = {key: f"{value:g}" if isinstance(value, float) else value for key, value in context.items()}
            message = MESSAGES.get(kind, item["msg"]).format(**shown)
        path = json_path([*([prefix] if prefix else []), *location])
        found.setdefault(path or "edit", []).append(message)
    return found


# ---- merge fields ---------------------------------------------------------------------------


def placeholders(value, path: str = "", found=None) -> dict[str, list[str]]:
    """{placeholder name: [paths of the strings using it]} in every string value of the edit but `merge`."""
    found = {} if found is None else found
    if isinstance(value, dict):
        for key, item in value.items():
            if not (path == "" and key == "merge"):
                placeholders(item, f"{path}.{key}" if path else str(key), found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            placeholders(item, f"{path}[{index}]", found)
    elif isinstance(value, str):
        for name in PLACEHOLDER.findall(value):
            found.setdefault(name, []).append(path)
    return found


def merge_values(data: dict, extra: dict | None = None) -> dict:
    """`data` with every {{name}} replaced by its merge value (the edit's `merge`, updated by `extra`); a
    missing or non-text value is an InvalidInput naming `merge.<name>`."""
    values = dict(data.get("merge") or {}) if isinstance(data.get("merge"), dict) else {}
    values.update(extra or {})
    errors = {}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            errors[f"merge.{name}"] = ["must be text"]
        elif len(str(value)) > MAX_MERGE_VALUE:
            errors[f"merge.{name}"] = [f"at most {MAX_MERGE_VALUE} characters"]
    for name, paths in placeholders(data).items():
        if name not in values:
            errors[f"merge.{name}"] = [f"missing: used by {', '.join(paths[:5])}"]
    if errors:
        raise InvalidInput("the edit's merge fields are incomplete", fields=errors)

    def replace(value, top=False):
        if isinstance(value, dict):
            return {key: (item if top and key == "merge" else replace(item)) for key, item in value.items()}
        if isinstance(value, list):
            return [replace(item) for item in value]
        if isinstance(value, str):
            return PLACEHOLDER.sub(lambda match: str(values[match[1]]), value)
        return value

    return replace(data, top=True)


# ---- the whole check ------------------------------------------------------------------------


def output_problems(output: Output) -> tuple[dict, dict]:
    """The output options checked as the form fields check them: ({path: [messages]}, values)."""
    errors, values = {}, {}
    for name, field, raw in (("canvas", CanvasField(), output.canvas), ("loudness", LoudnessField(), output.loudness)):
        if raw is None:
            continue
        try:
            values[name] = field.run_validation(raw)
        except serializers.ValidationError as exc:
            errors[f"output.{name}"] = [str(item) for item in exc.detail]
    if output.format == "gif":
        if output.fps and output.fps > GIF_MAX_FPS:
            errors["output.fps"] = [f"a gif is at most {GIF_MAX_FPS} fps"]
        if values.get("loudness") is not None:
            errors["output.loudness"] = ["a gif has no sound"]
    if output.format in ("png", "jpg") and values.get("loudness") is not None:
        errors["output.loudness"] = [f"a {output.format} has no sound"]
    if output.duration is not None and output.duration > settings.VIDEOAPI_MAX_OUTPUT_SECONDS:
        limit = settings.VIDEOAPI_MAX_OUTPUT_SECONDS
        errors["output.duration"] = [f"must be at most {limit:g} s (VIDEOAPI_MAX_OUTPUT_SECONDS)"]
    return errors, values


def parse_edit(data, *, merge: dict | None = None, template: bool = False) -> tuple[Edit, dict, dict]:
    """The edit checked as far as it can be without its files: (Edit, the merged JSON, the output's checked
    values). `template`: an edit saved with its placeholders (no merge values): strings holding a placeholder
    are not judged. Raises InvalidInput listing every problem under its path."""
    if not isinstance(data, dict):
        raise InvalidInput("the edit must be a JSON object", fields={"edit": ["must be a JSON object"]})
    waived = set()
    if template:
        waived = {path for paths in placeholders(data).values() for path in paths}
        merged = data
    else:
        merged = merge_values(data, merge)
    try:
        edit = Edit.model_validate(merged)
    except ValidationError as exc:
        errors = {path: messages for path, messages in problems(exc).items() if path not in waived}
        if errors:
            raise InvalidInput(first_problem(errors), fields=errors) from None
        return None, merged, {}
    errors, values = output_problems(edit.output)
    if errors:
        raise InvalidInput(first_problem(errors), fields=errors)
    return edit, merged, values


def first_problem(errors: dict) -> str:
    path, messages = next(iter(errors.items()))
    more = len(errors) - 1
    return f"{path}: {messages[0]}" + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")


def compose_options() -> dict:
    """What GET /api/options says of compose: the choices an editor offers, and the limits."""
    return {
        "path": "/api/compose", "schema": "/api/compose/schema", "templates": "/api/templates",
        "asset_types": list(ASSET_TYPES), "transitions": list(composition.TRANSITIONS),
        "effects": list(composition.EFFECTS), "positions": list(composition.POSITIONS),
        "fits": ["contain", "cover", "blur", "none"], "formats": ["mp4", "webm", "gif", "png", "jpg"],
        "sources": ["https://...", "attach:<field>"],
        "limits": {"tracks": MAX_TRACKS, "clips": MAX_CLIPS, "text_characters": MAX_TEXT,
                   "merge_value_characters": MAX_MERGE_VALUE, "output_seconds": settings.VIDEOAPI_MAX_OUTPUT_SECONDS,
                   "source_bytes": settings.VIDEOAPI_MAX_UPLOAD_BYTES},
    }
