"""Saved compose templates (docs/API.md, "Saved templates"): a client's edits kept with their {{placeholders}}.

`/api/templates` lists and saves them, `/api/templates/<id>` reads, replaces
and deletes one, `/api/templates/<id>/render` renders one with merge values
exactly as POST /api/compose renders an edit. A client sees only its own
templates (asynchronous.owner_of): another client's is 404, like a missing one.
"""

import uuid

from django.http import Http404
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from renders.api.asynchronous import owner_of
from renders.api.compose import MAX_EDIT_BYTES, ComposeView, EditParser
from renders.api.edit import parse_edit, placeholders
from renders.api.pagination import NewestFirst
from renders.api.schema import document_template, document_template_list, document_template_render
from renders.api.views import AnswerInJSON
from renders.errors import InvalidInput, UnsupportedMedia, invalid
from renders.models import ComposeTemplate

MAX_BODY_BYTES = MAX_EDIT_BYTES + 16 * 1024  # an edit, its name and description
RENDER_KEYS = ("merge", "output")


class BodyParser(EditParser):
    """The body of a template request: a JSON object of at most MAX_BODY_BYTES."""

    limit = MAX_BODY_BYTES
    field = "body"


def body_of(request) -> dict:
    try:
        return request.data
    except exceptions.UnsupportedMediaType:
        raise UnsupportedMedia("send the body as JSON (Content-Type: application/json)") from None


class TemplateSerializer(serializers.ModelSerializer):
    """A template as saved and shown; its edit is checked as a template (placeholders left in)."""

    name = serializers.CharField(min_length=1, max_length=200)
    description = serializers.CharField(max_length=2000, allow_blank=True, required=False, default="")
    edit = serializers.JSONField()
    placeholders = serializers.SerializerMethodField()

    class Meta:
        model = ComposeTemplate
        fields = ("id", "name", "description", "edit", "placeholders", "created_at", "updated_at")
        read_only_fields = ("id", "created_at", "updated_at")

    def get_placeholders(self, template) -> list[str]:
        return sorted(placeholders(template.edit))

    def validate_edit(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("must be a JSON object")
        return value

    def checked(self) -> dict:
        """The validated fields, or an InvalidInput naming every problem (the edit's under `edit.<path>`)."""
        valid = self.is_valid()
        errors = {key: [str(message) for message in messages] for key, messages in self.errors.items()}
        edit = self.initial_data.get("edit")
        if isinstance(edit, dict):
            try:
                parse_edit(edit, template=True)
            except InvalidInput as exc:
                errors.update({f"edit.{path}" if path != "edit" else path: messages
                               for path, messages in exc.fields.items()})
        if errors or not valid:
            path, messages = next(iter(errors.items()))
            raise InvalidInput(f"{path}: {messages[0]}", fields=errors)
        return self.validated_data


def owned(request, template_id) -> ComposeTemplate:
    """The client's template `template_id` (any spelling of its UUID); anything else is 404."""
    try:
        return ComposeTemplate.objects.get(pk=uuid.UUID(template_id), owner=owner_of(request))
    except (ValueError, ComposeTemplate.DoesNotExist):
        raise Http404 from None


class JSONView(APIView):
    parser_classes = [BodyParser]
    content_negotiation_class = AnswerInJSON


@document_template_list
class TemplateListView(JSONView):
    def get(self, request):
        pages = NewestFirst("-created_at")
        page = pages.paginate_queryset(ComposeTemplate.objects.filter(owner=owner_of(request)), request, view=self)
        return pages.get_paginated_response(TemplateSerializer(page, many=True).data)

    def post(self, request):
        form = TemplateSerializer(data=body_of(request))
        template = ComposeTemplate.objects.create(owner=owner_of(request), **form.checked())
        return Response(TemplateSerializer(template).data, status=201,
                        headers={"Location": f"/api/templates/{template.pk}", "Cache-Control": "no-store"})


@document_template
class TemplateView(JSONView):
    def get(self, request, template_id):
        template = owned(request, template_id)
        return Response(TemplateSerializer(template).data, headers={"Cache-Control": "no-store"})

    def put(self, request, template_id):
        template = owned(request, template_id)
        form = TemplateSerializer(template, data=body_of(request))
        form.checked()
        template = form.save()
        return Response(TemplateSerializer(template).data, headers={"Cache-Control": "no-store"})

    def delete(self, request, template_id):
        owned(request, template_id).delete()
        return Response(status=204)


class TemplateRenderView(ComposeView):
    """Renders a saved template: its edit, `output` keys overriding its own, merged with `merge`."""

    parser_classes = [BodyParser]
    endpoint = "template-render"

    @document_template_render
    def post(self, request, template_id):
        template = owned(request, template_id)
        body = body_of(request)
        unknown = sorted(set(body) - set(RENDER_KEYS))
        if unknown:
            raise InvalidInput(f"{unknown[0]}: unknown field (send merge and output)",
                               fields={key: ["unknown field"] for key in unknown})
        for key in RENDER_KEYS:
            if not isinstance(body.get(key, {}), dict):
                raise invalid(key, "must be an object")
        edit = dict(template.edit)
        if body.get("output"):
            edit["output"] = {**(edit.get("output") or {}), **body["output"]}
        return self.render_edit(request, given=edit, merge=body.get("merge") or {})
