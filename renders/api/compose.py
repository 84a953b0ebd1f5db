"""POST /api/compose (a video from the client's own edit) and GET /api/compose/schema (the edit's JSON Schema).

The edit comes as a JSON body, or as the multipart field `edit` beside the
files it names as `attach:<field>`. It is checked whole (api.edit) before
anything is fetched; the plan then names each distinct source once. A
synchronous render fetches and probes its URL sources before rendering
(lifecycle.sources); a job does that in the worker, after its 202.
"""

import json

from django.conf import settings
from rest_framework.parsers import BaseParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from renders import plans
from renders.api.asynchronous import JobRequest, accepted
from renders.api.edit import Edit, edit_schema, parse_edit
from renders.api.schema import document_compose, document_compose_schema
from renders.api.serializers import download_name
from renders.api.throttling import RenderRateThrottle
from renders.api.views import AnswerInJSON, destination, render_or_queue
from renders.errors import InvalidInput, PayloadTooLarge, invalid
from renders.lifecycle.fetch import check_url
from renders.lifecycle.render import Render
from renders.lifecycle.sources import link_upload
from renders.media.spec import FORMATS, house_format

MAX_EDIT_BYTES = 1024 * 1024  # a JSON edit (100 clips of 500 characters of text fit many times over)


class EditParser(BaseParser):
    """A JSON object of at most `limit` bytes (413 past it, without reading further), refusals naming `field`.
    (Not DRF's JSONParser, which DRF hands the whole body read into memory, before any limit of ours.)"""

    media_type = "application/json"
    limit = MAX_EDIT_BYTES
    field = "edit"

    def parse(self, stream, media_type=None, parser_context=None):
        body = stream.read(self.limit + 1) if stream is not None else b""
        if len(body) > self.limit:
            message = f"at most {self.limit} bytes of JSON"
            raise PayloadTooLarge(f"{self.field}: {message}", fields={self.field: [message]})
        return decode_edit(body, self.field)


def decode_edit(body, field: str = "edit") -> dict:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{field}: is not valid JSON ({exc})", fields={field: [f"is not valid JSON ({exc})"]}) \
            from None
    if not isinstance(data, dict):
        raise invalid(field, "must be a JSON object")
    return data


def edit_and_files(data) -> tuple[dict, dict]:
    """(the edit's JSON, the attached files by field name) from a parsed body."""
    if isinstance(data, dict) and not hasattr(data, "getlist"):
        return data, {}
    raw = data.get("edit")
    if raw is None:
        raise invalid("edit", "This field is required (the edit's JSON, beside the files it attaches).")
    if not isinstance(raw, str):
        raise invalid("edit", "must be the edit's JSON as a text field")
    files = {key: value for key, value in data.items() if hasattr(value, "path")}
    return decode_edit(raw), files


class Sources:
    """The distinct sources of an edit, numbered in order of first use (a URL used twice is fetched once); an
    upload linked into the workspace at once (so deleting it later breaks nothing)."""

    def __init__(self, files: dict, workspace=None, owner: str = ""):
        self.files, self.workspace, self.owner = files, workspace, owner
        self.found, self.errors, self.linked = {}, {}, {}

    def add(self, ref: str, media: str, path: str) -> int | None:
        key = (ref, media)
        if key in self.found:
            return self.found[key][0]
        name = None
        if ref.startswith("attach:"):
            field = ref[len("attach:"):]
            if field not in self.files:
                self.errors[path] = [f"no file was attached as '{field}'"]
                return None
            name = self.files[field].path.name
        elif ref.startswith("upload:"):
            try:
                if ref not in self.linked:
                    self.linked[ref] = link_upload(ref, self.owner, self.workspace, path).name
            except InvalidInput as exc:
                self.errors.update(exc.fields)
                return None
            name = self.linked[ref]
        else:
            try:
                check_url(ref, field=path)
            except InvalidInput as exc:
                self.errors.update(exc.fields)
                return None
        self.found[key] = (len(self.found), plans.Source(ref, media, path, name))
        return self.found[key][0]

    def all(self) -> tuple:
        return tuple(source for _number, source in self.found.values())


def compose_plan(edit: Edit, merged: dict, values: dict, files: dict, workspace=None,
                 owner: str = "") -> plans.ComposePlan:
    """The plan of a checked edit: its layers in drawing order (the last track first), its sources numbered."""
    output, timeline = edit.output, edit.timeline
    sources, layers = Sources(files, workspace, owner), []
    for track_number in reversed(range(len(timeline.tracks))):
        for clip_number, clip in enumerate(timeline.tracks[track_number].clips):
            path = f"timeline.tracks[{track_number}].clips[{clip_number}]"
            layers.append(layer_of(clip, path, output.fit, sources))
    soundtrack = None
    if timeline.soundtrack is not None:
        number = sources.add(timeline.soundtrack.src, "audio", "timeline.soundtrack.src")
        soundtrack = plans.Soundtrack(number, timeline.soundtrack.volume, timeline.soundtrack.ducking)
    if sources.errors:
        path, messages = next(iter(sources.errors.items()))
        raise InvalidInput(f"{path}: {messages[0]}", fields=sources.errors)
    spec = house_format(canvas=values.get("canvas"), fps=output.fps, fit=output.fit, quality=output.quality,
                        loudness=values.get("loudness"), format=output.format if output.format in FORMATS else "mp4")
    return plans.ComposePlan(
        background=timeline.background.upper(), layers=tuple(layers), sources=sources.all(), spec=spec,
        format=output.format, filename=download_name(edit.final_filename, "compose", output.format),
        duration=output.duration, frame_at=output.frame_at, soundtrack=soundtrack, edit=merged)


def layer_of(clip, path: str, default_fit: str, sources: Sources) -> plans.Layer:
    asset, kind = clip.asset, clip.asset.type
    fields = {"kind": kind, "path": path, "start": clip.start, "length": clip.length}
    if kind in ("video", "image", "audio", "captions"):
        fields["source"] = sources.add(asset.src, kind, f"{path}.asset.src")
    if kind in ("video", "audio"):
        fields.update(trim=asset.trim, volume=asset.volume)
    if kind == "text":
        style = asset.style
        fields.update(text=asset.text, look=plans.TextLook(style.font, style.size, style.color.upper(),
                                                           style.box_color.upper() if style.box_color else None,
                                                           style.align, style.max_width))
    if kind == "color":
        fields["color"] = asset.color.upper()
    if kind not in ("audio", "captions"):
        transition = clip.transition
        fields.update(
            fit=clip.fit or ("none" if kind == "text" else "cover" if kind == "color" else default_fit),
            scale=clip.scale, position=clip.position, offset_x=clip.offset.x, offset_y=clip.offset.y,
            opacity=clip.opacity, effect=clip.effect,
            transition_in=transition.come_in if transition else None,
            transition_out=transition.go_out if transition else None,
            transition_duration=transition.duration if transition else 0.5)
    return plans.Layer(**fields)


class ComposeView(APIView):
    parser_classes = [EditParser, MultiPartParser]
    content_negotiation_class = AnswerInJSON
    endpoint = "compose"

    def get_throttles(self):
        return [RenderRateThrottle()] if settings.VIDEOAPI_THROTTLE_RATE else []

    @document_compose
    def post(self, request, *args, **kwargs):
        return self.render_edit(request)

    def render_edit(self, request, given: dict | None = None, merge: dict | None = None):
        """Render an edit: the request's own, or `given` (a saved template's) with `merge` values."""
        asked = JobRequest(request)
        earlier = asked.earlier_job()
        if earlier:
            return accepted(earlier, request)
        render = Render.begin(request, self.endpoint, client_ref=asked.owner)
        try:
            if given is None:
                data, files = edit_and_files(render.receive(request))
            else:
                data, files = given, {}
            edit, merged, values = parse_edit(data, merge=merge)
            delivery = destination(edit.output_url, edit.output_headers, render)
            if edit.output_headers:  # credentials, maybe: the RenderLog keeps their names only
                merged = {**merged, "output_headers": dict.fromkeys(edit.output_headers, "[not recorded]")}
            plan = compose_plan(edit, merged, values, files, render.workspace, asked.owner)
            return render_or_queue(request, render, asked, plan, edit.callback_url, delivery)
        except BaseException as exc:
            render.abort(exc)
            raise


class ComposeSchemaView(APIView):
    """GET /api/compose/schema: the edit's JSON Schema."""

    @document_compose_schema
    def get(self, request):
        return Response(edit_schema(), headers={"Cache-Control": "public, max-age=300"})

