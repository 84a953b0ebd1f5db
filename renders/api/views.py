"""The HTTP layer: parse, call one operation, return its response.

All ten endpoints are `RenderView`s; they differ only in their serializer
(which names the endpoint and makes its plan) and their URL path.
"""

import json

from django.conf import settings
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from renders.api.asynchronous import JobRequest, accepted
from renders.api.edit import compose_options
from renders.api.options import options_document
from renders.api.references import bring, pending_form, register
from renders.api.responses import file_response
from renders.api.schema import document, document_options
from renders.api.serializers import (
    ConcatenateMultipartSerializer,
    ConcatenateSerializer,
    TrimPreviewSerializer,
    TrimSerializer,
    serializer_for,
)
from renders.api.templates import TEMPLATES
from renders.api.throttling import RenderRateThrottle
from renders.errors import answer_for, invalid
from renders.lifecycle.delivery import check_destination
from renders.lifecycle.render import Render
from renders.lifecycle.slots import render_slot
from renders.lifecycle.sources import resolve
from renders.lifecycle.submission import submit
from renders.plans.running import perform


class AnswerInJSON(BaseContentNegotiation):
    """Errors are JSON whatever the client's Accept says (a download's type is chosen in
    api.responses.negotiated_type)."""

    def select_parser(self, request, parsers):
        return DefaultContentNegotiation().select_parser(request, parsers)

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class RenderView(APIView):
    parser_classes = [MultiPartParser]
    content_negotiation_class = AnswerInJSON
    endpoint: str = ""
    serializer_class = None

    def get_throttles(self):
        return [RenderRateThrottle()] if settings.VIDEOAPI_THROTTLE_RATE else []

    def post(self, request, *args, **kwargs):
        asked = JobRequest(request)  # Prefer: respond-async, Idempotency-Key, the owner
        earlier = asked.earlier_job()  # the same Idempotency-Key again: the first request's job
        if earlier:
            return accepted(earlier, request)
        render = Render.begin(request, self.endpoint, form=self.serializer_class, client_ref=asked.owner)
        try:
            sent = render.receive(request)
            callback_url = str(sent.get("callback_url") or "").strip() or None
            delivery = destination(sent.get("output_url"), sent.get("output_headers"), render)
            data, waiting = bring(self.serializer_class, sent, render.workspace, asked.owner,  # a job's URLs are
                                  defer_urls=asked.wanted(callback_url) or delivery is not None)  # its worker's
            if waiting:  # its fields checked as far as they can be without those files (the URL's too)
                plan = pending_form(self.serializer_class, data, waiting)
            else:
                serializer = self.serializer_class(data=data)
                serializer.is_valid(raise_exception=True)
                plan, callback_url = serializer.plan(), serializer.validated_data.get("callback_url")
            return render_or_queue(request, render, asked, plan, callback_url, delivery)
        except BaseException as exc:
            render.abort(exc)
            raise


def destination(output_url, output_headers, render: Render) -> tuple[str, dict] | None:
    """Where a job delivers its result (`output_url`, with `output_headers`), checked for form; None without
    one. The headers may hold credentials: a refused request's RenderLog never records them."""
    if output_headers:
        render.keep_secret(output_headers if isinstance(output_headers, str) else json.dumps(output_headers))
    url = str(output_url or "").strip()
    if not url:
        if output_headers:
            raise invalid("output_headers", "only with output_url")
        return None
    return check_destination(url, output_headers)


def render_or_queue(request, render: Render, asked: JobRequest, plan, callback_url: str | None,
                    delivery: tuple[str, dict] | None = None):
    """The accepted request's answer: queued as a job (202: asked for, or to deliver to `delivery`), or rendered
    now and streamed (its sources brought in first: lifecycle.sources), the workspace deleted when the
    download closes."""
    if asked.wanted(callback_url) or delivery is not None:
        render.accepted(plan)
        job = submit(render, owner=asked.owner, idempotency_key=asked.idempotency_key, callback_url=callback_url,
                     base_url=request.build_absolute_uri("/"), delivery=delivery)
        return accepted(job, request)
    plan = resolve(plan, render.workspace)
    render.accepted(plan)
    with render_slot():
        result = perform(plan, render.workspace, render.run_ffmpeg)
    render.succeed(result)
    return file_response(result, render_id=render.id, accept=render.accept, server_timing=render.server_timing(),
                         on_close=lambda: render.cleanup(response_closed=True))


def render_view(serializer_class, path=None):
    """A RenderView for one endpoint: its form (which names the endpoint) and its URL path."""
    endpoint = serializer_class.endpoint
    name = "".join(part.title() for part in endpoint.split("-")) + "View"
    view = type(name, (RenderView,), {
        "endpoint": endpoint,
        "path": path or f"/api/{endpoint}",
        "serializer_class": serializer_class,
    })
    return document(view)


TrimView = render_view(TrimSerializer)
TrimPreviewView = render_view(TrimPreviewSerializer, "/api/trim/preview")
ConcatenateView = render_view(ConcatenateSerializer)
ConcatenateMultipartView = render_view(ConcatenateMultipartSerializer)
TEMPLATE_VIEWS = [render_view(serializer_for(template), f"/api/{template.endpoint}/render") for template in TEMPLATES]
RENDER_VIEWS = [TrimView, TrimPreviewView, ConcatenateView, ConcatenateMultipartView, *TEMPLATE_VIEWS]
register(RENDER_VIEWS)  # the forms a worker plans a job with once its URL sources are fetched


class OptionsView(APIView):
    """GET /api/options: what a front end needs to build its forms (same auth as the renders)."""

    @document_options
    def get(self, request):
        return Response({**options_document(RENDER_VIEWS), "compose": compose_options()})


def not_found(request, exception=None):
    """Django's 404 for a path no view takes: the JSON error envelope (the admin keeps its own page)."""
    if request.path.startswith("/admin/"):
        return defaults.page_not_found(request, exception)
    answer = answer_for(Http404())
    return JsonResponse({"code": answer.code, "detail": answer.detail, "fields": answer.fields}, status=404,
                        headers={"Cache-Control": "no-store"})
