"""OpenAPI description of the ten endpoints (served at /api/schema, shown at /api/).

The forms come from the serializers themselves; this module only adds what
introspection cannot see: the binary responses, the error envelope, the
`segment_<i>` / `order_<i>` fields of concatenate-multipart, the service's
contract (auth, errors, headers, cleanup, limits) as the schema's own
description, and examples that together make a valid request for every
operation (what Swagger UI's "Try it out" sends untouched). The schema stands
alone: a client of a deployed service has nothing else to read.
"""

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers

from renders.api.authentication import keys_required
from renders.api.fields import Published
from renders.api.serializers import JoinSerializer
from renders.errors import ERROR_CODES
from renders.models import JobStatus
from renders.representation import JobSerializer
from renders.media.spec import FPS_CHOICES


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="what went wrong, for programs: one of the codes in the table of the "
                                           "API's description (invalid_input, not_authenticated, ...)")
    detail = serializers.CharField(help_text="for people; never server paths or FFmpeg output")
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))
    render_id = serializers.UUIDField(required=False, help_text="present when a RenderLog row exists")


class ServiceSchema(AutoSchema):
    """drf-spectacular's introspection, with the security the auth setting gives (open when VIDEOAPI_AUTH=none)."""

    def get_auth(self):
        return super().get_auth() if keys_required() else [{}]


class ClientKeyScheme(OpenApiAuthenticationExtension):
    target_class = "renders.api.authentication.ClientKeyAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "An API key with the prefix \"Token\": `Token <key>`"}


class PublishedFieldExtension(OpenApiSerializerFieldExtension):
    """This service's form fields describe their own schema (fields.Published.openapi)."""

    target_class = "renders.api.fields.Published"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        schema = self.target.openapi()
        if schema is None:
            return auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        return schema


ERRORS = {
    status: OpenApiResponse(ErrorSerializer, description=text)
    for status, text in {
        400: "invalid_input", 401: "not_authenticated", 413: "payload_too_large", 415: "unsupported_media",
        422: "undecodable_media", 429: "throttled", 500: "render_failed (FFmpeg failed) or internal_error",
        503: "busy (every render slot taken) or unavailable (the database is down); see Retry-After",
        504: "render_timeout", 507: "insufficient_storage (the temp disk is full; see Retry-After)",
    }.items()
}


def form_property(field) -> dict:
    """A declared form field as a schema property (for the one form drf-spectacular cannot introspect).

    Fields that describe their own schema (canvas, times, colours, fonts) are described by it, exactly as on
    the forms drf-spectacular introspects."""
    own = field.openapi() if isinstance(field, Published) else None
    if own is not None:
        return own
    if isinstance(field, serializers.ChoiceField):
        choices = list(field.choices)
        prop = {"type": "integer" if all(isinstance(c, int) for c in choices) else "string", "enum": choices}
    elif isinstance(field, serializers.BooleanField):
        prop = {"type": "boolean"}
    elif isinstance(field, serializers.FloatField):
        prop = {"type": "number", **{key: value for key, value in (("minimum", field.min_value),
                                                                    ("maximum", field.max_value)) if value is not None}}
    else:
        prop = {"type": "string"}
    if field.default is not serializers.empty:
        prop["default"] = field.default
    if field.help_text:
        prop["description"] = str(field.help_text)
    return prop


SHOWN_SEGMENTS = 2  # the form lists the fewest segments a join needs; more go in further segment_<i> fields


def multipart_segments_schema():
    """concatenate-multipart's form: segment_<i> files, integer order_<i>, the shared join fields.

    Only segment_0 and segment_1 (and their orders) are listed: a form field that is listed is filled and
    sent by Swagger UI, and an order_<i> without its segment_<i> is 400, so listing all 20 would make the
    interactive form invalid unless every one of them got a file. The rest are additional properties.
    """
    properties = {}
    for index in range(SHOWN_SEGMENTS):
        properties[f"segment_{index}"] = {"type": "string", "format": "binary",
                                          "description": "a video (segment_<i>: any non-negative integer i)"}
        properties[f"order_{index}"] = {"type": "integer", "description": f"sort key of segment_{index} "
                                        f"(default {index}; any integer, negative allowed)"}
    properties.update({name: form_property(field) for name, field in JoinSerializer().fields.items()})
    return {"type": "object", "properties": properties, "additionalProperties": True,
            "description": f"2 to {JoinSerializer.MAX_INPUTS} videos in segment_<i> fields, i any non-negative "
                           "integer (segment_0 and segment_1 are listed; add segment_2, segment_3, ... the same "
                           "way), each with an optional integer order_<i>; joined by ascending order"}


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


def operation_text(view) -> tuple[str, str]:
    """(summary, description) of one endpoint's operation."""
    form = view.serializer_class
    template = getattr(form, "template", None)
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
    house = " " + HOUSE if form.outputs_house_format else ""
    return summary, (f"{about}{house} {UPLOADS}\n\nExample:\n\n    curl -X POST https://HOST{view.path} "
                     f"-H 'Authorization: Token $TOKEN' {example}")


def document(view):
    """The view, documented from its form: the fields, the operation's text, what it answers."""
    form = view.serializer_class
    request = multipart_segments_schema() if getattr(form, "dynamic_fields", None) else form
    binary = OpenApiResponse(OpenApiTypes.BINARY, description=f"the rendered file ({', '.join(form.media_types)}, "
                             "or application/octet-stream when the request's Accept asks for it); headers "
                             "X-Render-Id, Content-Disposition, Cache-Control: no-store, "
                             "Server-Timing (ffmpeg and total, in ms)")
    summary, description = operation_text(view)
    return extend_schema_view(post=extend_schema(
        operation_id=view.endpoint.replace("-", "_"),
        tags=[form.tag],
        summary=summary,
        description=description,
        request={"multipart/form-data": request},
        parameters=JOB_REQUEST_HEADERS,
        responses={**{(200, media_type): binary for media_type in form.media_types},
                   (200, "application/octet-stream"): binary,
                   202: OpenApiResponse(JobSerializer, description="with `Prefer: respond-async`: the job, queued; "
                                        "headers Location, Preference-Applied, X-Render-Id"), **ERRORS},
    ))(view)


JOB_REQUEST_HEADERS = [
    OpenApiParameter("Prefer", str, OpenApiParameter.HEADER, required=False,
                     description="`respond-async`: answer 202 with a job at once instead of the file at the end"),
    OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
                     description="with `Prefer: respond-async`, at most 255 characters: the same key again from "
                                 "the same client within 24 hours answers the first job"),
]
NOT_FOUND = OpenApiResponse(ErrorSerializer, description="not_found (no such job, or another client's)")
JOB_ID = OpenApiParameter("job_id", OpenApiTypes.UUID, OpenApiParameter.PATH,
                          description="the job's id (any spelling of the UUID is taken: upper case, no dashes)")
document_job = extend_schema(
    tags=["jobs"], summary="A job: status, progress, result (GET); cancel it (DELETE)", parameters=[JOB_ID],
    responses={200: JobSerializer, 204: OpenApiResponse(description="cancelled"), 401: ERRORS[401], 404: NOT_FOUND},
)
document_job_list = extend_schema(
    tags=["jobs"], operation_id="jobs_list", summary="This client's jobs, newest first",
    description="A page of this client's jobs, newest first. The next and previous pages are the `next` and "
                "`previous` URLs of the answer: follow them as they are (their `cursor` is opaque; one the service "
                "did not make is 400).",
    parameters=[OpenApiParameter("status", str, enum=JobStatus.values),
                OpenApiParameter("limit", {"type": "integer", "minimum": 1, "maximum": 100},
                                 description="jobs per page (1 to 100; 20 when absent)")],
    responses={200: inline_serializer("JobPage", {"next": serializers.URLField(allow_null=True),
                                                  "previous": serializers.URLField(allow_null=True),
                                                  "results": JobSerializer(many=True)}),
               400: ERRORS[400], 401: ERRORS[401]},
)
document_job_result = extend_schema(
    tags=["jobs"], operation_id="jobs_result", summary="A finished job's file (Range honoured)", parameters=[JOB_ID],
    responses={(200, "video/mp4"): OpenApiResponse(OpenApiTypes.BINARY, description="the file, with the headers "
                                                   "of a synchronous render"),
               (206, "video/mp4"): OpenApiResponse(OpenApiTypes.BINARY, description="the requested range"),
               401: ERRORS[401], 404: NOT_FOUND,
               409: OpenApiResponse(ErrorSerializer, description="not_ready; see Retry-After"),
               410: OpenApiResponse(ErrorSerializer, description="gone (downloaded, cancelled or expired)"),
               416: OpenApiResponse(ErrorSerializer, description="range_not_satisfiable (the range starts past the "
                                    "end; Content-Range: bytes */<size>)"),
               421: OpenApiResponse(ErrorSerializer, description="misdirected (another host holds it)"),
               500: ERRORS[500], 504: ERRORS[504], 507: ERRORS[507]},
)


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


# ---- examples: what "Try it out" sends untouched -------------------------------------------------------
#
# Swagger UI fills every listed form field with its example (else its default, else the first of its enum,
# else a placeholder such as "string") and sends them all, so the examples of one operation must together
# be a valid request for any short clip (two seconds or more). An empty example leaves a field blank, which
# the service reads as not sent.

EXAMPLES = {
    "full_name": "Ada Lovelace", "team": "Analytical Engines", "role": "Head of Engineering",
    "headline": "We are live in 12 countries", "subheadline": "Thanks to everyone who helped",
    "steps": ["Upload a clip", "Pick a template", "Download the video"], "title": "Product tour",
    "name": "Grace Hopper", "quote": "The most dangerous phrase is: we've always done it this way.",
    "caption": "Real time, on a phone", "cta": "Start your free trial", "url": "example.com/start",
    "tagline": "Made for teams", "final_filename": "launch-video", "speed": 1.5, "fade_out": "1",
    "height": 360, "transition_duration": "0.5", "start": "0.5", "duration": "3",
    "step_duration": "",  # blank: the steps share the text's window, whatever the clip's length
    "order_0": 1, "order_1": 2,
}
OPERATION_EXAMPLES = {  # by operationId, over EXAMPLES
    "trim": {"start": "0.5", "end": "1.5", "duration": ""},  # end or duration, not both
    "trim_preview": {"start": "0.5", "end": "", "duration": "1"},
    "how_it_works": {"title": "How it works"},
    "persona": {"title": "Rear Admiral"},
}


def operations(result):
    """(operationId, form schema, request content) of every operation that takes a form."""
    schemas = result.get("components", {}).get("schemas", {})
    for item in result["paths"].values():
        for operation in item.values():
            content = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data")
            if content is None:
                continue
            form = content["schema"]
            if "$ref" in form:
                form = schemas[form["$ref"].rsplit("/", 1)[1]]
            yield operation["operationId"], form, content


def contract_and_examples(result, generator, request, public):
    """Make the schema and /api/ stand alone: the service's contract as the description; for every form an
    example per field that together make a valid request; list fields sent as repeated fields."""
    result.setdefault("info", {})["description"] = service_description()
    for operation_id, form, content in operations(result):
        examples = {**EXAMPLES, **OPERATION_EXAMPLES.get(operation_id, {})}
        for name, prop in form.get("properties", {}).items():
            if name in examples:
                prop["example"] = examples[name]
            elif name == "fps" and settings.VIDEOAPI_FPS in FPS_CHOICES:
                prop["example"] = settings.VIDEOAPI_FPS  # not the first choice (24): this service's default
        arrays = [name for name, prop in form.get("properties", {}).items() if prop.get("type") == "array"]
        if arrays:  # `steps=a&steps=b`, which the service reads as a list (not Swagger UI's `steps=a,b`)
            content["encoding"] = {name: {"style": "form", "explode": True} for name in arrays}
    return result


# ---- the service's contract, as the schema's description ---------------------------------------------

ERROR_MEANINGS = {  # code -> (status, when); every code of renders.errors.ERROR_CODES
    "invalid_input": ("400", "a field is missing, malformed, out of range or inconsistent with another "
                             "(`fields` names each), or the body is not a readable form"),
    "not_authenticated": ("401", "no key, or a wrong, revoked or expired one"),
    "permission_denied": ("403", "the key may not do this"),
    "not_found": ("404", "no such path"),
    "method_not_allowed": ("405", "anything but `POST` on a render endpoint (`GET` on `/api/options`)"),
    "payload_too_large": ("413", "the body is over the upload limit, or one text field is over the 2.5 MB "
                                 "in-memory field limit (named in `fields`)"),
    "unsupported_media": ("415", "an upload is not an accepted video (or image, for an avatar), or the body "
                                 "is not `multipart/form-data`"),
    "undecodable_media": ("422", "it looks like a video but cannot be decoded (damaged or truncated)"),
    "throttled": ("429", "over this client's request rate; see `Retry-After`"),
    "render_failed": ("500", "FFmpeg failed on this input"),
    "internal_error": ("500", "a defect of the service"),
    "busy": ("503", "every render slot stayed taken while the request waited; see `Retry-After`"),
    "unavailable": ("503", "the service's database is unreachable; nothing was read; see `Retry-After`"),
    "render_timeout": ("504", "the render ran past the time limit and was stopped"),
    "insufficient_storage": ("507", "the temporary disk cannot hold the upload or the render; nothing was kept; "
                                    "see `Retry-After`"),
    "error": ("other", "any other refusal by the HTTP layer, with its own status"),
    "worker_lost": ("500", "a job's worker died while it ran, or no worker took it in time (a job's `error` and "
                           "its result's answer; for a synchronous render only in the log: its client saw the "
                           "connection drop)"),
    "not_ready": ("409", "a job's result was asked for before the job finished; see `Retry-After`"),
    "duplicate": (None, "a job submission whose Idempotency-Key another submission took first (it was "
                        "answered that job)"),
    "gone": ("410", "a job's result was already downloaded, cancelled or expired"),
    "misdirected": ("421", "a host was asked directly for a job result another host holds (named in "
                           "`X-Videoapi-Host`)"),
    "client_disconnected": (None, "the client went away before the request was read or answered"),
    "range_not_satisfiable": ("416", "a job result's `Range` starts past its end (`Content-Range: bytes */<size>`)"),
}


def _size(n: int) -> str:
    return f"{n / 1024 ** 2:g} MiB" if n >= 1024 ** 2 else f"{n / 1024:g} KiB"


def _seconds(value: float) -> str:
    return f"{value:g} s"


def error_table() -> str:
    answered, recorded = [], []
    for code in ERROR_CODES:
        status, when = ERROR_MEANINGS.get(code, ("", ""))
        if status is None:
            recorded.append(f"`{code}` ({when})")
        else:
            answered.append((status, f"| {status} | `{code}` | {when} |"))
    answered.sort(key=lambda row: (not row[0].isdigit(), row[0]))  # by status, stable; "other" last
    table = "| status | code | when |\n|---|---|---|\n" + "\n".join(row for _, row in answered)
    if recorded:
        table += "\n\nOnly in the service's log, never in an answer: " + "; ".join(recorded) + "."
    return table


def service_description() -> str:
    """What a client of a deployed service must know, built from this service's own settings."""
    if keys_required():
        auth = ("Send `Authorization: Token <key>` with every request (on this page: **Authorize**, then "
                "`Token <key>`). Keys are issued by the service's operator, one per client, and may be revoked "
                "or expire. Without a valid key the answer is 401 `not_authenticated`, given before any of the "
                "upload is stored.")
    else:
        auth = "This service runs without authentication (for a trusted network): no key is needed."
    pixels = settings.VIDEOAPI_MAX_INPUT_PIXELS
    return f"""Render short video segments with FFmpeg: six text-over-video templates, a trim and a cheap trim \
preview, and two ways to join 2 to 20 videos. Every render endpoint is a `POST` of `multipart/form-data` (the path \
works with or without a trailing slash) answered with the rendered file itself. `GET /api/options` lists the \
canvas presets, fits, frame rates, qualities, fonts and every endpoint's fields with their limits, enough to build \
forms.

## Authentication

{auth}

## Requests

- **Times** (`start`, `end`, `duration`, ...): seconds (`2`, `2.5`) or clock time (`MM:SS` or `HH:MM:SS`, \
optional `.mmm`). Negative, infinite or malformed times are 400.
- **Text**: UTF-8, surrounding whitespace stripped; an empty field counts as not sent; control characters are \
refused (line breaks only where a field allows them); each field has a maximum length. Text is drawn exactly as \
typed, in any script; a character no installed font can draw is 400 naming the field and the code point.
- **Uploads** are recognised by their content, not their name: MP4/MOV, Matroska/WebM, AVI or MPEG-TS with a \
decodable video stream. Playlists, images where a video is expected and text are 415; damaged or truncated files \
422.
- **Limits of this service**: the whole body at most {_size(settings.VIDEOAPI_MAX_UPLOAD_BYTES)} (413; a \
declared `Content-Length` over it is refused before the body is read); each input video at most \
{_seconds(settings.VIDEOAPI_MAX_INPUT_SECONDS)} long, {pixels:,} pixels a frame, \
{settings.VIDEOAPI_MAX_INPUT_FPS:g} frames a second and {settings.VIDEOAPI_MAX_AUDIO_CHANNELS} audio channels \
(400, before any rendering); `trim/preview` clips at most {_seconds(settings.VIDEOAPI_PREVIEW_MAX_SECONDS)}.

## Success

`200`, the file as the body, with these headers:

| header | value |
|---|---|
| `Content-Type` | `video/mp4`, or `image/jpeg` for a still preview; `application/octet-stream` when the \
request's `Accept` asks for that and not the real type |
| `Content-Length` | the file's size |
| `Content-Disposition` | `attachment; filename="..."`: `final_filename` made safe, or the endpoint's name |
| `Cache-Control` | `no-store` |
| `X-Render-Id` | the render's id; quote it to the operator about a render |
| `X-Trim-Start` | trims: the start really used (`mode=fast` starts at a keyframe) |
| `X-Concat-Mode` | joins: `copy` (stream copy) or `reencode` |
| `Server-Timing` | `ffmpeg;dur=<ms>` (FFmpeg's runs) and `total;dur=<ms>` (the render before its first byte) |

## Errors

Every error, whatever the request's `Accept`, is JSON of one shape (the `Error` schema):

    {{"code": "invalid_input", "detail": "end: must be after start",
     "fields": {{"end": ["must be after start"]}}, "render_id": "6f1c2b0e-..."}}

`code` is for programs (below); `detail` is for people and never holds a server path or FFmpeg's output; \
`fields` maps each offending form field to its messages (items of a list as `item 2: ...`) and is empty when no \
field is to blame; `render_id` (and the `X-Render-Id` header) is there whenever the request got past \
authentication and the rate limit (a render record exists). Answers worth retrying later carry `Retry-After` \
(seconds).

{error_table()}

## Cleanup

Nothing is kept. Each render works in a private temporary directory that is deleted the moment the download \
ends, the client disconnects, or the render is refused, fails or times out. Save the body of the `200` answer: \
the file cannot be fetched again. The service keeps a record of each render (under its `X-Render-Id`: \
parameters, timings, outcome, cleanup), never the media.

## Browsers

A front end on another origin may call the API when the operator has allowed its origin (CORS); its scripts can \
then read `X-Render-Id`, `Content-Disposition`, `X-Concat-Mode`, `X-Trim-Start`, `Retry-After` and \
`Server-Timing`.
"""


def paths_without_trailing_slash(result, generator, request, public):
    """The docs name the paths without the slash (both forms are served)."""
    result["paths"] = {path.rstrip("/") or "/": item for path, item in result["paths"].items()}
    return result
