"""Stored uploads (docs/API.md, "Uploads"): a file sent once, used by any number of renders as `upload:<id>`.

`/api/uploads` lists this client's uploads and stores a new one (multipart,
one file in `file`: lifecycle.uploads_store.receive), `/api/uploads/<id>`
reads and deletes one. A client sees only its own (asynchronous.owner_of):
another client's, an expired one and a malformed id are 404 alike.
"""

import uuid

from django.conf import settings
from django.http import Http404
from rest_framework import serializers
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from renders.api.asynchronous import owner_of
from renders.api.pagination import NewestFirst
from renders.api.schema import document_upload, document_upload_list
from renders.api.throttling import RenderRateThrottle
from renders.api.views import AnswerInJSON
from renders.lifecycle import uploads_store
from renders.models import Upload


class UploadSerializer(serializers.ModelSerializer):
    class Meta:
        model = Upload
        fields = ("id", "kind", "bytes", "filename", "media", "created_at", "expires_at")
        read_only_fields = fields


def owned(request, upload_id) -> Upload:
    """The client's live upload `upload_id` (any spelling of its UUID); anything else is 404."""
    try:
        return uploads_store.live(owner_of(request)).get(pk=uuid.UUID(upload_id))
    except (ValueError, Upload.DoesNotExist):
        raise Http404 from None


NO_STORE = {"Cache-Control": "no-store"}


@document_upload_list
class UploadListView(APIView):
    parser_classes = [MultiPartParser]
    content_negotiation_class = AnswerInJSON

    def get_throttles(self):  # storing takes a body as a render does, and shares its budget
        return [RenderRateThrottle()] if self.request.method == "POST" and settings.VIDEOAPI_THROTTLE_RATE else []

    def get(self, request):
        pages = NewestFirst("-created_at")
        page = pages.paginate_queryset(uploads_store.live(owner_of(request)), request, view=self)
        return pages.get_paginated_response(UploadSerializer(page, many=True).data)

    def post(self, request):
        upload = uploads_store.receive(request, owner_of(request))
        return Response(UploadSerializer(upload).data, status=201,
                        headers={"Location": f"/api/uploads/{upload.pk}", **NO_STORE})


@document_upload
class UploadView(APIView):
    content_negotiation_class = AnswerInJSON

    def get(self, request, upload_id):
        return Response(UploadSerializer(owned(request, upload_id)).data, headers=NO_STORE)

    def delete(self, request, upload_id):
        owned(request, upload_id).delete()  # its file goes with it (uploads_store's post_delete receiver)
        return Response(status=204)
