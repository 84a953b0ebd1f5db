"""The HTTP layer: parse, call one operation, return its response.

All ten endpoints are `RenderView`s; they differ only in their endpoint
name, serializer and operation.
"""

from functools import partial

from django.conf import settings
from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from . import operations
from .authentication import ClientKeyAuthentication, LegacyTokenAuthentication
from .options import options_document
from .templates import TEMPLATES, render_template, serializer_for
from .lifecycle import Render
from .schema import document, document_options
from .serializers import (
    ConcatenateMultipartSerializer,
    ConcatenateSerializer,
    TrimPreviewSerializer,
    TrimSerializer,
)
from .slots import render_slot
from .throttling import RenderRateThrottle


class AnswerInJSON(BaseContentNegotiation):
    """Errors are JSON whatever the client's Accept says (a download's type is chosen in lifecycle.respond)."""

    def select_parser(self, request, parsers):
        return DefaultContentNegotiation().select_parser(request, parsers)

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class RenderView(APIView):
    parser_classes = [MultiPartParser]
    content_negotiation_class = AnswerInJSON
    endpoint: str = ""
    serializer_class = None
    operation = None  # callable(render, validated_data) -> Output

    # VIDEOAPI_AUTH is read per request (not frozen at import), so one
    # setting switches every endpoint between token auth and open access.
    def get_authenticators(self):
        if settings.VIDEOAPI_AUTH != "token":
            return []
        return [ClientKeyAuthentication(), LegacyTokenAuthentication()]

    def get_permissions(self):
        return [IsAuthenticated()] if settings.VIDEOAPI_AUTH == "token" else [AllowAny()]

    def get_throttles(self):
        return [RenderRateThrottle()] if settings.VIDEOAPI_THROTTLE_RATE else []

    def post(self, request, *args, **kwargs):
        render = Render.begin(request, self.endpoint)
        try:
            render.receive(request)
            serializer = self.serializer_class(data=request.data, context={"render": render})
            serializer.is_valid(raise_exception=True)
            render.accepted(serializer.params(), serializer.inputs())
            with render_slot():
                output = self.operation(render, serializer.validated_data)
            return render.respond(output)
        except BaseException as exc:
            render.abort(exc)
            raise


def render_view(endpoint, serializer_class, operation, path=None):
    """A RenderView for one endpoint: its name, its form, what it renders, its URL path."""
    name = "".join(part.title() for part in endpoint.split("-")) + "View"
    view = type(name, (RenderView,), {
        "endpoint": endpoint,
        "path": path or f"/api/{endpoint}",
        "serializer_class": serializer_class,
        "operation": staticmethod(operation),
    })
    return document(view, serializer_class)


def template_view(template):
    return render_view(template.endpoint, serializer_for(template), partial(render_template, template),
                       f"/api/{template.endpoint}/render")


TrimView = render_view("trim", TrimSerializer, operations.trim)
TrimPreviewView = render_view("trim-preview", TrimPreviewSerializer, operations.trim_preview, "/api/trim/preview")
ConcatenateView = render_view("concatenate", ConcatenateSerializer, operations.join)
ConcatenateMultipartView = render_view("concatenate-multipart", ConcatenateMultipartSerializer, operations.join)
TEMPLATE_VIEWS = [template_view(template) for template in TEMPLATES]
RENDER_VIEWS = [TrimView, TrimPreviewView, ConcatenateView, ConcatenateMultipartView, *TEMPLATE_VIEWS]


class OptionsView(APIView):
    """GET /api/options: what a front end needs to build its forms (same auth as the renders)."""

    get_authenticators = RenderView.get_authenticators
    get_permissions = RenderView.get_permissions

    @document_options
    def get(self, request):
        return Response(options_document(RENDER_VIEWS))
