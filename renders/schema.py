"""OpenAPI description of the ten endpoints (served at /api/schema).

The forms come from the serializers themselves; this module only adds what
introspection cannot see: the binary responses, the error envelope, and the
`segment_<i>` / `order_<i>` fields of concatenate-multipart.
"""

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers

from .serializers import JoinSerializer


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="invalid_input, not_authenticated, payload_too_large, ...")
    detail = serializers.CharField(help_text="for people; never server paths or FFmpeg output")
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))
    render_id = serializers.UUIDField(required=False, help_text="present when a RenderLog row exists")


class TimeFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "renders.fields.TimeField"

    def map_serializer_field(self, auto_schema, direction):
        return {"type": "string", "example": "2.5",
                "description": "seconds (2, 2.5) or clock time (MM:SS or HH:MM:SS, optional .mmm)"}


class UploadFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "renders.fields.UploadField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        return {"type": "string", "format": "binary"}


ERRORS = {
    status: OpenApiResponse(ErrorSerializer, description=text)
    for status, text in {
        400: "invalid_input", 401: "not_authenticated", 413: "payload_too_large", 415: "unsupported_media",
        422: "undecodable_media", 429: "throttled", 500: "render_failed", 503: "busy", 504: "render_timeout",
    }.items()
}


def multipart_segments_schema():
    """concatenate-multipart's form: segment_<i> files, integer order_<i>, the shared join fields."""
    properties = {}
    for index in range(JoinSerializer.MAX_INPUTS):
        properties[f"segment_{index}"] = {"type": "string", "format": "binary"}
        properties[f"order_{index}"] = {"type": "integer", "description": f"sort key of segment_{index} (default {index})"}
    properties.update({
        "transition": {"type": "string", "enum": ["none", "crossfade"], "default": "none"},
        "transition_duration": {"type": "string", "example": "0.5"},
        "final_filename": {"type": "string"},
    })
    return {"type": "object", "properties": properties, "additionalProperties": True,
            "description": "segment_<i> for any non-negative integer i (2 to 20 of them); order_<i> optional"}


def document(view, serializer_class, content_type="video/mp4"):
    request = multipart_segments_schema() if view.endpoint == "concatenate-multipart" else serializer_class
    binary = OpenApiResponse(OpenApiTypes.BINARY, description=f"the rendered file ({content_type}); "
                             "headers X-Render-Id, Content-Disposition, Cache-Control: no-store")
    return extend_schema_view(post=extend_schema(
        operation_id=view.endpoint.replace("-", "_"),
        request={"multipart/form-data": request},
        responses={(200, content_type): binary, **({(200, "image/jpeg"): binary} if view.endpoint == "trim-preview" else {}),
                   **ERRORS},
    ))(view)


def paths_without_trailing_slash(result, generator, request, public):
    """API.md names the paths without the slash (both forms are served)."""
    result["paths"] = {path.rstrip("/") or "/": item for path, item in result["paths"].items()}
    return result
