"""OpenAPI description of the ten endpoints (served at /api/schema).

The forms come from the serializers themselves; this module only adds what
introspection cannot see: the binary responses, the error envelope, and the
`segment_<i>` / `order_<i>` fields of concatenate-multipart.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerFieldExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers

from .serializers import JoinSerializer


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="invalid_input, not_authenticated, payload_too_large, ...")
    detail = serializers.CharField(help_text="for people; never server paths or FFmpeg output")
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))
    render_id = serializers.UUIDField(required=False, help_text="present when a RenderLog row exists")


class ClientKeyScheme(OpenApiAuthenticationExtension):
    target_class = "renders.authentication.ClientKeyAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "An API key with the prefix \"Token\": `Token <key>`"}


class TimeFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "renders.fields.TimeField"

    def map_serializer_field(self, auto_schema, direction):
        described = {"type": "string", "example": "2.5",
                     "description": "seconds (2, 2.5) or clock time (MM:SS or HH:MM:SS, optional .mmm)"}
        if self.target.help_text:
            described["description"] = f"{self.target.help_text}; {described['description']}"
        return described


class CanvasFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "renders.options.CanvasField"

    def map_serializer_field(self, auto_schema, direction):
        from .output import CANVAS_PRESETS

        return {"type": "string", "example": "9:16", "pattern": r"^(" + "|".join(CANVAS_PRESETS) + r"|\d+x\d+)$",
                "description": self.target.help_text}


class ColorFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "renders.options.ColorField"

    def map_serializer_field(self, auto_schema, direction):
        return {"type": "string", "pattern": "^#[0-9A-Fa-f]{6}([0-9A-Fa-f]{2})?$", "example": self.target.default,
                "default": self.target.default, "description": self.target.help_text}


class FontFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "renders.options.FontField"

    def map_serializer_field(self, auto_schema, direction):
        from . import fonts

        names = list(fonts.registry())
        return {"type": "string", "enum": names, "example": names[0], "description": self.target.help_text}


class UploadFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "renders.fields.UploadField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        return {"type": "string", "format": "binary", "description": self.target.help_text or "a file"}


ERRORS = {
    status: OpenApiResponse(ErrorSerializer, description=text)
    for status, text in {
        400: "invalid_input", 401: "not_authenticated", 413: "payload_too_large", 415: "unsupported_media",
        422: "undecodable_media", 429: "throttled", 500: "render_failed",
        503: "busy (every render slot taken) or unavailable (the database is down); see Retry-After",
        504: "render_timeout", 507: "insufficient_storage (the temp disk is full; see Retry-After)",
    }.items()
}


def form_property(field) -> dict:
    """A declared form field as a schema property (for the one form drf-spectacular cannot introspect)."""
    if isinstance(field, serializers.ChoiceField):
        choices = list(field.choices)
        prop = {"type": "integer" if all(isinstance(c, int) for c in choices) else "string", "enum": choices}
    else:
        prop = {"type": "string"}
    if field.default is not serializers.empty:
        prop["default"] = field.default
    if field.help_text:
        prop["description"] = str(field.help_text)
    return prop


def multipart_segments_schema():
    """concatenate-multipart's form: segment_<i> files, integer order_<i>, the shared join fields."""
    properties = {}
    for index in range(JoinSerializer.MAX_INPUTS):
        properties[f"segment_{index}"] = {"type": "string", "format": "binary"}
        properties[f"order_{index}"] = {"type": "integer", "description": f"sort key of segment_{index} (default {index})"}
    properties.update({name: form_property(field) for name, field in JoinSerializer().fields.items()})
    return {"type": "object", "properties": properties, "additionalProperties": True,
            "description": "segment_<i> for any non-negative integer i (2 to 20 of them); order_<i> optional"}


HOUSE = ("Output: MP4 (H.264 + AAC stereo 48 kHz, +faststart) in the house format at the requested `canvas`, "
         "`fit`, `fps` and `quality` (defaults: the configured canvas and frame rate, `contain`, `standard`); "
         "SDR BT.709 whatever the source (HDR is tone-mapped).")
UPLOADS = ("Uploads: MP4/MOV, Matroska/WebM, AVI or MPEG-TS with a decodable video stream, probed before "
           "anything runs (playlists, images and text are refused with 415, damaged files with 422).")
OPERATIONS = {
    "trim": ("Cut a clip out of a video",
             "`start` is required; give at most one of `end` or `duration` (neither: to the end). "
             "`mode=accurate` (default) re-encodes frame-accurately into the house format; `mode=fast` copies "
             "the streams from the keyframe at or before `start` (the header `X-Trim-Start` gives the real "
             "start; the output fields do not apply).",
             "-F video=@talk.mp4 -F start=0:05 -F end=0:12 -o clip.mp4"),
    "trim-preview": ("A cheap preview of a trim",
                     "The same cut as `trim`, as a small fast-encoded MP4 at `height` (144-720, default 360), "
                     "or as the JPEG frame at `start` (`format=jpg`). At most the configured preview length.",
                     "-F video=@talk.mp4 -F start=5 -F duration=3 -F format=mp4 -o preview.mp4"),
    "concatenate": ("Join 2 to 20 videos in the order sent",
                    "Files in a repeated `videos` field. Inputs may differ in every way; the result is one "
                    "continuous house-format video. When every input already is house format at the requested "
                    "canvas and frame rate (for example outputs of this service) and there is no transition, "
                    "the join is a stream copy; `X-Concat-Mode` says `copy` or `reencode`. `transition=crossfade` "
                    "fades picture and sound across each join.",
                    "-F videos=@intro.mp4 -F videos=@demo.mp4 -F videos=@closing.mp4 -o joined.mp4"),
    "concatenate-multipart": ("Join segment_<i> files ordered by order_<i>",
                              "Like `concatenate`, with files in `segment_<i>` fields and an optional integer "
                              "`order_<i>` each (default `i`); joined by ascending order.",
                              "-F segment_0=@intro.mp4 -F order_0=1 -F segment_1=@closing.mp4 -F order_1=2 "
                              "-o joined.mp4"),
}


def describe_operation(view):
    from .templates import TEMPLATES

    template = next((t for t in TEMPLATES if t.endpoint == view.endpoint), None)
    if template:
        summary = f"Render the {template.endpoint} template"
        about = (f"Draws {template.about}. Text is drawn literally in any script (a character no installed "
                 "font has is 400), wraps and shrinks to stay inside the frame, and fades in at `start` and out "
                 "after `duration`. Style: `text_color`, `accent_color`, `box_color`, `font`.")
        required = [name for name, f in template.fields.items() if f.required]
        example = " ".join(f"-F {name}=Example" for name in required if name != "steps") or "-F steps=Upload"
        example = f"-F video=@clip.mp4 {example} -F canvas=9:16 -o {template.endpoint}.mp4"
    else:
        summary, about, example = OPERATIONS[view.endpoint]
    house = "" if view.endpoint == "trim-preview" else " " + HOUSE
    return summary, (f"{about}{house} {UPLOADS}\n\nExample:\n\n    curl -X POST https://HOST{view.path} "
                     f"-H 'Authorization: Token $TOKEN' {example}")


def document(view, serializer_class, content_type="video/mp4"):
    request = multipart_segments_schema() if view.endpoint == "concatenate-multipart" else serializer_class
    binary = OpenApiResponse(OpenApiTypes.BINARY, description=f"the rendered file ({content_type}, or "
                             "application/octet-stream when the request's Accept asks for it); headers "
                             "X-Render-Id, Content-Disposition, Cache-Control: no-store, "
                             "Server-Timing (ffmpeg and total, in ms)")
    summary, description = describe_operation(view)
    alternatives = {(200, "image/jpeg"): binary} if view.endpoint == "trim-preview" else {}
    tag = "templates" if view.path.endswith("/render") else ("trim" if "trim" in view.endpoint else "join")
    return extend_schema_view(post=extend_schema(
        operation_id=view.endpoint.replace("-", "_"),
        tags=[tag],
        summary=summary,
        description=description,
        request={"multipart/form-data": request},
        responses={(200, content_type): binary, **alternatives, (200, "application/octet-stream"): binary,
                   **ERRORS},
    ))(view)


document_options = extend_schema(
    operation_id="options",
    tags=["options"],
    summary="What the render endpoints accept",
    description=("Canvas presets with their sizes, fits, frame rates, qualities, fonts, colour defaults, limits "
                 "(upload bytes, input seconds, preview seconds), and for each endpoint its fields with type, "
                 "required flag, limits, choices and default: enough for a front end to build its forms. "
                 "Generated from the same declarations the endpoints validate with."),
    responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="the options document"), 401: ERRORS[401]},
)


EXAMPLES = {
    "full_name": "Ada Lovelace", "team": "Analytical Engines", "role": "Head of Engineering",
    "headline": "We are live in 12 countries", "subheadline": "Thanks to everyone who helped",
    "steps": ["Upload a clip", "Pick a template", "Download the video"], "title": "How it works",
    "name": "Grace Hopper", "quote": "The most dangerous phrase is: we've always done it this way.",
    "caption": "Real time, on a phone", "cta": "Start your free trial", "url": "example.com/start",
    "tagline": "Made for teams", "start": "0.5", "end": "5", "duration": "4", "final_filename": "launch-video",
    "speed": 1.5, "fade_out": "1", "step_duration": "1.5", "height": 360, "transition_duration": "0.5",
}


def add_examples(result, generator, request, public):
    """An example for every form field that has none (what Swagger UI pre-fills)."""
    for component in result.get("components", {}).get("schemas", {}).values():
        for name, prop in component.get("properties", {}).items():
            if "example" not in prop and name in EXAMPLES:
                prop["example"] = EXAMPLES[name]
    return result


def paths_without_trailing_slash(result, generator, request, public):
    """The docs name the paths without the slash (both forms are served)."""
    result["paths"] = {path.rstrip("/") or "/": item for path, item in result["paths"].items()}
    return result
