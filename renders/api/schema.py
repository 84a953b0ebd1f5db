"""OpenAPI description of the render, job and options endpoints (served at /api/schema, shown at /api/).

The forms come from the serializers themselves; this module only adds what
introspection cannot see: the binary responses, the error envelope (its codes
from renders.errors.CODES), the `segment_<i>` / `order_<i>` fields of
concatenate-multipart, the service's contract (auth, errors, headers, jobs,
webhooks, cleanup, limits) as the schema's own description, the required
uploads first in every form, and examples that together make a valid request
for every operation (what Swagger UI's "Try it out" sends untouched). The
schema stands alone: a client of a deployed service has nothing else to read.
"""

import json

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
from renders.api.edit import edit_schema
from renders.api.fields import Published
from renders.api.serializers import JoinSerializer
from renders.errors import CODES
from renders.media.spec import FORMATS, FPS_CHOICES, GIF_DEFAULT_FPS, GIF_MAX_FPS, GIF_MAX_SECONDS
from renders.models import JobStatus
from renders.representation import JobSerializer


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


def error_description(status: int) -> str:
    """What an error answer with this status means: each code it may carry, as renders.errors.CODES says."""
    return "\n\n".join(f"`{code}`: {code_.when}" for code, code_ in CODES.items()
                        if code_.status == status and code_.sent)


ERRORS = {  # every status an error answer can have, described from renders.errors.CODES
    status: OpenApiResponse(ErrorSerializer, description=error_description(status))
    for status in sorted({code.status for code in CODES.values() if code.sent and code.status})
}
RENDER_ERRORS = (400, 401, 413, 415, 422, 429, 500, 503, 504, 507)  # the statuses a render endpoint answers


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
         "SDR BT.709 whatever the source (HDR is tone-mapped). `format=webm`: VP9 + Opus in WebM; `format=gif`: "
         f"an animated GIF without sound, at most {GIF_MAX_FPS} fps (default {GIF_DEFAULT_FPS}) and "
         f"{GIF_MAX_SECONDS:g} s.")
UPLOADS = ("Uploads: MP4/MOV, Matroska/WebM, AVI or MPEG-TS with a decodable video stream, probed before "
           "anything runs (playlists, images and text are refused with 415, damaged files with 422).")
ENDPOINT_TEXTS = {  # endpoint -> (summary, about, example): the docs of each render operation
    "trim": ("Cut a clip out of a video",
             ("`start` is required; give at most one of `end` or `duration` (neither: to the end). "
              "`mode=accurate` (default) re-encodes frame-accurately into the house format; `mode=fast` copies "
              "the streams from the keyframe at or before `start` (the header `X-Trim-Start` gives the real "
              "start; the output fields do not apply)."),
             "-F video=@talk.mp4 -F start=0:05 -F end=0:12 -o clip.mp4"),
    "trim-preview": ("A cheap preview of a trim",
                     ("The same cut as `trim`, as a small fast-encoded MP4 at `height` (144-720, default 360), "
                      "or as the JPEG frame at `start` (`format=jpg`). At most the configured preview length."),
                     "-F video=@talk.mp4 -F start=5 -F duration=3 -F format=mp4 -o preview.mp4"),
    "concatenate": ("Join 2 to 20 videos in the order sent",
                    ("Files in a repeated `videos` field. Inputs may differ in every way; the result is one "
                     "continuous house-format video. When every input already is house format at the requested "
                     "canvas and frame rate (for example outputs of this service) and there is no transition, "
                     "the join is a stream copy; `X-Concat-Mode` says `copy` or `reencode`. `transition=crossfade` "
                     "fades picture and sound across each join."),
                    "-F videos=@intro.mp4 -F videos=@demo.mp4 -F videos=@closing.mp4 -o joined.mp4"),
    "concatenate-multipart": ("Join segment_<i> files ordered by order_<i>",
                              ("Like `concatenate`, with files in `segment_<i>` fields and an optional "
                               "integer `order_<i>` each (default `i`); joined by ascending order."),
                              ("-F segment_0=@intro.mp4 -F order_0=1 -F segment_1=@closing.mp4 -F order_1=2 "
                               "-o joined.mp4")),
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
        summary, about, example = ENDPOINT_TEXTS[view.endpoint]
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
                                        "headers Location, Preference-Applied, X-Render-Id"),
                   **{status: ERRORS[status] for status in RENDER_ERRORS}},
    ))(view)


def page(name: str, results):
    """A list's page as pagination.NewestFirst answers it: the next and previous URLs, and its items."""
    return inline_serializer(name, {"next": serializers.URLField(allow_null=True),
                                    "previous": serializers.URLField(allow_null=True), "results": results})


JOB_REQUEST_HEADERS = [
    OpenApiParameter("Prefer", str, OpenApiParameter.HEADER, required=False,
                     description="`respond-async`: answer 202 with a job at once instead of the file at the end"),
    OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
                     description="with `Prefer: respond-async`, at most 255 characters: the same key again from "
                                 "the same client within 24 hours answers the first job"),
]
NOT_FOUND = ERRORS[404]
JOB_ID = OpenApiParameter("job_id", OpenApiTypes.UUID, OpenApiParameter.PATH,
                          description="the job's id (any spelling of the UUID is taken: upper case, no dashes)")
document_job = extend_schema(
    tags=["jobs"], summary="A job: status, progress, result (GET); cancel it (DELETE)", parameters=[JOB_ID],
    description="`GET` answers the job: its `status` (`queued`, `running`, then `succeeded`, `failed`, "
                "`cancelled` or `expired`), its `progress` (0 to 1, never going back) and `eta_seconds` while it "
                "runs, once succeeded its `result` (the absolute `url` to download, the size, the file name and "
                "`expires_at`), once failed its `error` (the code a synchronous render would have answered, or "
                "`worker_lost`). Poll it until the status is final, or ask for a webhook with `callback_url`.\n\n"
                "`DELETE` cancels it (204): a queued job never runs, a running one's FFmpeg is stopped within a "
                "second, a finished job's unread result is deleted. Cancelling a job that already failed, expired "
                "or was downloaded changes nothing (still 204).\n\n"
                "An unknown id and another client's job are both 404: a client sees only its own jobs.",
    responses={200: JobSerializer, 204: OpenApiResponse(description="cancelled"), 401: ERRORS[401], 404: NOT_FOUND},
)
document_job_list = extend_schema(
    tags=["jobs"], operation_id="jobs_list", summary="This client's jobs, newest first",
    description="A page of this client's jobs, newest first, each as `GET /api/jobs/{job_id}` shows it. "
                "`status` keeps the jobs in that status (an unknown one is 400); `limit` is the page's size. The "
                "next and previous pages are the `next` and `previous` URLs of the answer: follow them as they are "
                "(their `cursor` is opaque; one the service did not make is 400).",
    parameters=[OpenApiParameter("status", str, enum=JobStatus.values),
                OpenApiParameter("limit", {"type": "integer", "minimum": 1, "maximum": 100},
                                 description="jobs per page (1 to 100; 20 when absent)")],
    responses={200: page("JobPage", JobSerializer(many=True)),
               400: ERRORS[400], 401: ERRORS[401]},
)
RESULT_TYPES = tuple(f.content_type for f in FORMATS.values())  # a job's result, by its render's format
document_job_result = extend_schema(
    tags=["jobs"], operation_id="jobs_result", summary="A finished job's file (Range honoured)", parameters=[JOB_ID],
    description="A succeeded job's file, with the headers a synchronous render answers and "
                "`Accept-Ranges: bytes`. One range (`Range: bytes=first-last`, `first-` or `-suffix`) is answered "
                "206 with `Content-Range`, so a cut download resumes where it stopped; a range starting past the "
                "end is 416; several ranges, or an invalid one, get the whole file. `HEAD` answers the headers "
                "alone.\n\n"
                "The file is kept until every byte of it has been delivered, by one download or several, and is "
                "deleted when the last of them ends; a download cut short keeps it for the resume. Not downloaded "
                "by the result's `expires_at`, it is deleted and the job reads `expired`.\n\n"
                "Before the job has finished: 409 `not_ready`, with `Retry-After` from its ETA. Failed: its error, "
                "with the status the synchronous render would have had. Cancelled, expired or already "
                "downloaded: 410 `gone`. Asked directly of a host that does not hold it: 421 `misdirected`, the "
                "holder named in `X-Videoapi-Host`.",
    responses={**{(200, kind): OpenApiResponse(OpenApiTypes.BINARY, description="the file, with the headers of a "
                                               "synchronous render") for kind in RESULT_TYPES},
               **{(206, kind): OpenApiResponse(OpenApiTypes.BINARY, description="the requested range")
                  for kind in RESULT_TYPES},
               401: ERRORS[401], 404: NOT_FOUND,
               **{status: ERRORS[status] for status in (409, 410, 416, 421, 500, 503, 504, 507)}},
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


def uploads_first(form):
    """The uploads a request cannot do without lead its form (Swagger UI shows the fields in this order; the
    shared fields that every form inherits, optional files among them, come before the endpoint's own)."""
    properties = form.get("properties", {})

    def upload(prop):
        return "binary" in (prop.get("format"), prop.get("items", {}).get("format"))

    needed = [name for name in form.get("required", []) if upload(properties[name])]
    form["properties"] = {**{name: properties[name] for name in needed}, **properties}


def contract_and_examples(result, generator, request, public):
    """Make the schema and /api/ stand alone: the service's contract as the description; for every form its
    required uploads first and an example per field that together make a valid request; list fields sent as
    repeated fields."""
    result.setdefault("info", {})["description"] = service_description()
    for operation_id, form, content in operations(result):
        uploads_first(form)
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

def _size(n: int) -> str:
    return f"{n / 1024 ** 2:g} MiB" if n >= 1024 ** 2 else f"{n / 1024:g} KiB"


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _span(seconds: float) -> str:
    """A delay as people say it: 5 s, 5 min, 2 h."""
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return _seconds(seconds)


def error_table() -> str:
    """Every code of renders.errors.CODES with its status, by status; the codes no error answer carries come last."""
    rows = sorted(CODES.items(), key=lambda item: (not item[1].sent, item[1].status is None, item[1].status or 0))
    return "| status | code | when |\n|---|---|---|\n" + "\n".join(
        f"| {code.status or 'other'} | `{name}` | {code.when} |" for name, code in rows)


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
    delays = settings.VIDEOAPI_WEBHOOK_RETRY_DELAYS
    retries = (f"is retried {len(delays)} times, with the same `webhook-id`, after "
               f"{', '.join(_span(delay) for delay in delays)}" if delays else "is not retried")
    hosts = "any host" if settings.VIDEOAPI_WEBHOOK_ALLOW_PRIVATE else "a host with public addresses only"
    return f"""Render short video segments with FFmpeg: six text-over-video templates, a trim and a cheap trim \
preview, and two ways to join 2 to 20 videos. Every render endpoint is a `POST` of `multipart/form-data` (the path \
works with or without a trailing slash) answered with the rendered file itself, or at once with a job to follow \
and download later (`Prefer: respond-async`, or a `callback_url` for a webhook when it ends). `GET /api/options` \
lists the canvas presets, fits, frame rates, qualities, fonts and every endpoint's fields with their limits, \
enough to build forms.

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
| `Content-Type` | by `format`: `video/mp4`, `video/webm` or `image/gif`; `image/jpeg` for a still preview; \
`application/octet-stream` when the request's `Accept` asks for that and not the real type (`Accept` never \
refuses a render: the form's `format` says what is wanted) |
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

## Jobs

Send any render request with the header `Prefer: respond-async` to have it rendered in the background: use it \
for renders that may outlast the connection (proxies often drop one after 60-100 s), or for progress, cancelling \
and downloading later. The request is received, validated and probed exactly as a synchronous one, so every \
refusal comes at once; an accepted one is answered `202` with the job (the `Job` schema) and the headers \
`Location: /api/jobs/<id>`, `Preference-Applied: respond-async` and `X-Render-Id`.

- **Follow** the job at `GET /api/jobs/<id>` (`status`, `progress`, `eta_seconds`) until it has `succeeded`, \
`failed` (its `error` has the code a synchronous render would have answered, or `worker_lost`), been `cancelled` \
(`DELETE /api/jobs/<id>`) or `expired`. `GET /api/jobs` lists this client's jobs; another client's are 404.
- **Download** the file at `GET /api/jobs/<id>/result` (the job's `result.url`), with byte ranges to resume a cut \
download. Before the job has finished it is 409 `not_ready` with `Retry-After`.
- **Kept until downloaded**: the file is kept until every byte of it has been delivered, then deleted; not \
downloaded within {_seconds(settings.VIDEOAPI_JOB_RESULT_TTL)} of the job's end (`result.expires_at`), it is \
deleted and the job reads `expired`. From then on, and once downloaded or cancelled, the result is 410 `gone`.
- **`Idempotency-Key`** (optional header): the same key again from the same client within 24 hours is answered \
the first job, so a submission whose answer was lost can be sent again safely.
- At most {settings.VIDEOAPI_MAX_QUEUED_JOBS} jobs wait on one host; beyond, 503 `busy` with `Retry-After`. A \
job's FFmpeg runs may last {_seconds(settings.VIDEOAPI_JOB_FFMPEG_TIMEOUT)} (a synchronous render's \
{_seconds(settings.VIDEOAPI_FFMPEG_TIMEOUT)}).

## Webhooks

A `callback_url` form field (http or https, {hosts}) makes the request a job, and \
when the job ends the service `POST`s to that URL `{{"type", "timestamp", "data"}}`: `type` is \
`render.succeeded`, `render.failed` or `render.cancelled`, `data` the job as `GET /api/jobs/<id>` shows it. Each \
message is signed as Standard Webhooks says: headers `webhook-id`, `webhook-timestamp` and `webhook-signature` \
(`v1,` and the base64 HMAC-SHA256 of `<webhook-id>.<webhook-timestamp>.<body>`, keyed with the base64-decoded \
part after `whsec_` of the secret the operator gave with the API key). Any 2xx answer ends the delivery, and so \
does 410; anything else (no answer, a redirect, another status) {retries}.

## Cleanup

A synchronous render keeps nothing: it works in a private temporary directory that is deleted the moment the \
download ends, the client disconnects, or the render is refused, fails or times out. Save the body of the `200` \
answer: it streams once and cannot be fetched again. A job keeps only its result, until it is downloaded or \
expires (above). The service keeps a record of each render (under its `X-Render-Id`: parameters, timings, \
outcome, cleanup), never the media.

## Browsers

A front end on another origin may call the API when the operator has allowed its origin (CORS); it may send \
`Authorization`, `Prefer`, `Idempotency-Key` and `Range`, and its scripts can read `X-Render-Id`, \
`Content-Disposition`, `X-Concat-Mode`, `X-Trim-Start`, `Retry-After`, `Server-Timing`, `Location`, \
`Preference-Applied`, `Content-Range` and `Accept-Ranges`.
"""


def paths_without_trailing_slash(result, generator, request, public):
    """The docs name the paths without the slash (both forms are served)."""
    result["paths"] = {path.rstrip("/") or "/": item for path, item in result["paths"].items()}
    return result


# ---- compose and saved templates -------------------------------------------------------------------

EDIT = {"$ref": "#/components/schemas/ComposeEdit"}
EDIT_EXAMPLE = {  # renders without any file: what "Try it out" sends
    "timeline": {"background": "#101820", "tracks": [
        {"clips": [{"asset": {"type": "text", "text": "Hello {{name}}", "style": {"size": 0.08}},
                    "start": 0.5, "length": 2, "position": "bottom", "transition": {"in": "fade", "out": "fade"}}]},
        {"clips": [{"asset": {"type": "color", "color": "#1E88E5"}, "start": 0, "length": 3, "scale": 0.6,
                    "effect": None, "transition": {"in": "slide-left"}}]}]},
    "output": {"format": "mp4", "canvas": "16:9"},
    "merge": {"name": "Ada"},
    "final_filename": "welcome",
}
EDIT_EXAMPLE["timeline"]["tracks"][1]["clips"][0].pop("effect")
RENDERED = OpenApiResponse(OpenApiTypes.BINARY, description="the rendered file (video/mp4, video/webm, image/gif, "
                           "image/png or image/jpeg, by `output.format`); headers X-Render-Id, Content-Disposition, "
                           "Cache-Control: no-store, Server-Timing")
COMPOSE_TEXT = (
    "Renders the client's own edit: clips of video, images, text, colour, sound and captions placed on a "
    "timeline in tracks (the first track on top), over a background, with fits, positions, opacity, transitions "
    "(fade, wipes, slides), Ken Burns effects, a soundtrack with ducking, and the output as mp4, webm, gif, or "
    "one frame as png/jpg at `output.frame_at`.\n\n"
    "The body is the edit as JSON, or `multipart/form-data` with the JSON in `edit` and the files it names as "
    "`attach:<field>`. Sources may also be `https://` URLs, fetched by the service (public addresses only). "
    "`{{name}}` placeholders in string values are replaced from `merge` after parsing. The edit is checked whole "
    "before anything is fetched: a 400 lists every problem under its JSON path "
    "(`timeline.tracks[1].clips[0].start`); an unknown field is a problem. Its JSON Schema is at "
    "`GET /api/compose/schema`.\n\n"
    "With `Prefer: respond-async` (or a `callback_url` in the edit) the answer is a job (202), and URL sources "
    "are fetched by the job.\n\n"
    "```bash\ncurl -X POST $BASE/api/compose -H \"Authorization: Token $TOKEN\" -H 'Content-Type: application/json' "
    "\\\n  -d '{\"timeline\": {\"tracks\": [{\"clips\": [{\"asset\": {\"type\": \"text\", \"text\": \"Hello\"}, "
    "\"start\": 0, \"length\": 2}]}]}}' -o hello.mp4\n```")


def compose_request() -> dict:
    return {"application/json": {"schema": EDIT, "example": EDIT_EXAMPLE},
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["edit"],
                "properties": {"edit": {"type": "string", "description": "the edit's JSON",
                                        "example": json.dumps(EDIT_EXAMPLE)}},
                "additionalProperties": {"type": "string", "format": "binary",
                                         "description": "a file the edit names as attach:<field>"}}}}


def compose_responses() -> dict:
    return {**{(200, kind): RENDERED for kind in (*RESULT_TYPES, "image/png", "image/jpeg")},
            202: OpenApiResponse(JobSerializer, description="with `Prefer: respond-async` or a `callback_url`: the "
                                 "job, queued; headers Location, Preference-Applied, X-Render-Id"),
            **{status: ERRORS[status] for status in RENDER_ERRORS}}


document_compose = extend_schema(
    operation_id="compose", tags=["compose"], summary="Render your own edit (tracks, clips, transitions, text)",
    description=COMPOSE_TEXT, request=None, parameters=JOB_REQUEST_HEADERS, responses=compose_responses())
document_compose_schema = extend_schema(
    operation_id="compose_schema", tags=["compose"], summary="The edit's JSON Schema",
    description="The JSON Schema (draft 2020-12) of a compose edit: what editors and client generators validate "
                "against before sending. Its rules are the ones POST /api/compose applies.",
    responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="a JSON Schema"), 401: ERRORS[401]})
TEMPLATE_ID = OpenApiParameter("template_id", OpenApiTypes.UUID, OpenApiParameter.PATH,
                               description="the template's id")
TEMPLATE_TEXT = ("A saved template is an edit with `{{placeholders}}`, kept for this client (another client's is "
                 "404). It is checked as far as it can be without merge values: problems come under `edit.<path>`.")


def edit_components(result, generator, request, public):
    """The edit's JSON Schema (from its pydantic models) as components, and as the body of POST /api/compose and
    of the saved templates' `edit`."""
    schema = edit_schema()
    definitions = schema.pop("$defs", {})
    schema.pop("$schema", None)

    def retarget(node):
        """JSON Schema 2020-12 as OpenAPI 3.0 says it: refs to components, `nullable` for a null type, `enum`
        for `const`, boolean exclusive bounds."""
        if isinstance(node, list):
            return [retarget(item) for item in node]
        if isinstance(node, str) and node.startswith("#/$defs/"):
            return f"#/components/schemas/ComposeEdit{node.rsplit('/', 1)[1]}"
        if not isinstance(node, dict):
            return node
        node = {key: retarget(value) for key, value in node.items()}
        options = node.get("anyOf")
        if options and {"type": "null"} in options:
            rest = [option for option in options if option != {"type": "null"}]
            node.pop("anyOf")
            if len(rest) == 1:
                node.update(rest[0] if "$ref" not in rest[0] else {"allOf": rest})
            else:
                node["anyOf"] = rest
            node["nullable"] = True
        if "const" in node:
            node["enum"] = [node.pop("const")]
        for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if isinstance(node.get(bound), (int, float)) and not isinstance(node[bound], bool):
                node[plain], node[bound] = node[bound], True
        return node

    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["ComposeEdit"] = retarget(schema)
    for name, definition in definitions.items():
        schemas[f"ComposeEdit{name}"] = retarget(definition)
    compose = result["paths"].get("/api/compose", {}).get("post")
    if compose is not None:
        compose["requestBody"] = {"required": True, "content": compose_request()}
    return result


def template_answer(**kwargs):
    return inline_serializer("ComposeTemplate", {
        "id": serializers.UUIDField(read_only=True), "name": serializers.CharField(max_length=200),
        "description": serializers.CharField(max_length=2000, required=False),
        "edit": serializers.DictField(help_text="a compose edit, {{placeholders}} allowed (ComposeEdit)"),
        "placeholders": serializers.ListField(child=serializers.CharField(), read_only=True),
        "created_at": serializers.DateTimeField(read_only=True),
        "updated_at": serializers.DateTimeField(read_only=True)}, **kwargs)


TEMPLATE = template_answer()
TEMPLATE_BODY = inline_serializer("ComposeTemplateBody", {
    "name": serializers.CharField(max_length=200), "description": serializers.CharField(required=False),
    "edit": serializers.DictField()})
RENDER_BODY = inline_serializer("ComposeTemplateRender", {
    "merge": serializers.DictField(required=False, help_text="a value (text) for each {{placeholder}}"),
    "output": serializers.DictField(required=False, help_text="output keys over the template's own")})
document_template_list = extend_schema_view(
    get=extend_schema(operation_id="templates_list", tags=["compose"], summary="This client's saved templates",
                      description=f"{TEMPLATE_TEXT} Newest first, in pages like the jobs list.",
                      parameters=[OpenApiParameter("limit", {"type": "integer", "minimum": 1, "maximum": 100})],
                      responses={200: page("ComposeTemplatePage", type(TEMPLATE)(many=True)),
                          400: ERRORS[400], 401: ERRORS[401]}),
    post=extend_schema(operation_id="templates_create", tags=["compose"], summary="Save a template",
                       description=TEMPLATE_TEXT, request=TEMPLATE_BODY,
                       responses={201: TEMPLATE, 400: ERRORS[400], 401: ERRORS[401], 413: ERRORS[413],
                                  415: ERRORS[415]}))
document_template = extend_schema_view(
    get=extend_schema(operation_id="templates_read", tags=["compose"], summary="A saved template",
                      parameters=[TEMPLATE_ID], responses={200: TEMPLATE, 401: ERRORS[401], 404: NOT_FOUND}),
    put=extend_schema(operation_id="templates_replace", tags=["compose"], summary="Replace a saved template",
                      description=TEMPLATE_TEXT, parameters=[TEMPLATE_ID], request=TEMPLATE_BODY,
                      responses={200: TEMPLATE, 400: ERRORS[400], 401: ERRORS[401], 404: NOT_FOUND}),
    delete=extend_schema(operation_id="templates_delete", tags=["compose"], summary="Delete a saved template",
                         parameters=[TEMPLATE_ID],
                         responses={204: OpenApiResponse(description="deleted"), 401: ERRORS[401], 404: NOT_FOUND}))
document_template_render = extend_schema(
    operation_id="templates_render", tags=["compose"], summary="Render a saved template with merge values",
    description="The template's edit, its `output` keys overridden one by one by the request's, merged with "
                "`merge`, rendered exactly as POST /api/compose renders an edit (synchronous or as a job). A "
                "placeholder without a value is 400 naming `merge.<name>`.",
    parameters=[TEMPLATE_ID, *JOB_REQUEST_HEADERS], request=RENDER_BODY,
    responses={**compose_responses(), 404: NOT_FOUND})


# ---- stored uploads ----------------------------------------------------------------------------------

UPLOAD_ID = OpenApiParameter("upload_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="the upload's id")
UPLOAD_TEXT = ("A stored upload is a file sent once and kept for this client (another client's is 404) for "
               "`VIDEOAPI_UPLOAD_TTL` seconds, to be used by any number of renders as `upload:<id>`. Its kind "
               "(video, image, audio or captions) is found by probing its content, never from its name.")


class Upload(serializers.Serializer):
    """A stored upload as its client sees it (one class: the list's items and the single answer are one component)."""

    id = serializers.UUIDField(read_only=True)
    kind = serializers.ChoiceField(choices=["video", "image", "audio", "captions"], read_only=True)
    bytes = serializers.IntegerField(read_only=True)
    filename = serializers.CharField(read_only=True, help_text="the file's name as sent, made safe")
    media = serializers.DictField(read_only=True, help_text="what probing found (container, codecs, size, "
                                                            "duration...; for captions format, cues, duration)")
    created_at = serializers.DateTimeField(read_only=True)
    expires_at = serializers.DateTimeField(read_only=True, help_text="deleted after this")


UPLOAD = Upload()
UPLOAD_FORM = inline_serializer("UploadForm", {"file": serializers.FileField(
    help_text="a video (MP4/MOV, Matroska/WebM, AVI, MPEG-TS), an image (PNG, JPEG, WebP), a sound file (MP3, "
              "AAC/M4A, WAV, FLAC, Ogg) or captions (SRT, WebVTT)")})
document_upload_list = extend_schema_view(
    get=extend_schema(operation_id="uploads_list", tags=["uploads"], summary="This client's stored uploads",
                      description=f"{UPLOAD_TEXT} Newest first, in pages like the jobs list.",
                      parameters=[OpenApiParameter("limit", {"type": "integer", "minimum": 1, "maximum": 100})],
                      responses={200: page("UploadPage", Upload(many=True)),
                          400: ERRORS[400], 401: ERRORS[401]}),
    post=extend_schema(operation_id="uploads_create", tags=["uploads"], summary="Store a file for later renders",
                       description=f"{UPLOAD_TEXT} The answer's `Location` is the upload's address. Refused as a "
                                   "render's upload would be: 415 what is none of the kinds, 422 a damaged file, "
                                   "413 over the body limit; 507 past the client's `VIDEOAPI_MAX_UPLOADS_BYTES` of "
                                   "stored uploads (nothing is kept).\n\n"
                                   "```bash\ncurl -X POST $BASE/api/uploads -H \"Authorization: Token $TOKEN\" "
                                   "-F file=@clip.mp4\n```",
                       request={"multipart/form-data": UPLOAD_FORM},
                       responses={201: UPLOAD, **{status: ERRORS[status] for status in
                                                  (400, 401, 413, 415, 422, 429, 503, 507)}}))
document_upload = extend_schema_view(
    get=extend_schema(operation_id="uploads_read", tags=["uploads"], summary="A stored upload",
                      parameters=[UPLOAD_ID], responses={200: UPLOAD, 401: ERRORS[401], 404: NOT_FOUND}),
    delete=extend_schema(operation_id="uploads_delete", tags=["uploads"], summary="Delete a stored upload",
                         description="The file is deleted at once; renders already using it are not affected.",
                         parameters=[UPLOAD_ID],
                         responses={204: OpenApiResponse(description="deleted"), 401: ERRORS[401], 404: NOT_FOUND}))
