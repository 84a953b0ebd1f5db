"""The jobs' HTTP side: status, list, result, cancel (docs/API.md, "Jobs").

A client sees only its own jobs (asynchronous.owner_of); another client's job
is 404, exactly like one that does not exist. Past that lookup every answer,
errors included, names the job's render (`render_id`, `X-Render-Id`).
"""

import ipaddress
import uuid

from django.conf import settings
from django.http import Http404, HttpResponse
from rest_framework.response import Response
from rest_framework.views import APIView

from renders.api.asynchronous import owner_of
from renders.api.pagination import NewestFirst
from renders.api.responses import result_response, stored_result_redirect
from renders.api.schema import document_job, document_job_list, document_job_result
from renders.errors import Misdirected, invalid
from renders.lifecycle import downloads, jobs
from renders.lifecycle.clients import is_trusted_proxy
from renders.models import JobStatus, RenderLog, statuses_for
from renders.representation import JobSerializer, job_json


def owned(request, job_id) -> RenderLog:
    """The client's job `job_id`, in any spelling of its UUID (upper case, no dashes, braces, urn:uuid:)."""
    try:
        log = jobs.jobs_of(owner_of(request)).get(pk=uuid.UUID(job_id))
    except (ValueError, RenderLog.DoesNotExist):
        raise Http404 from None
    request.render_id = log.pk  # errors from here on name it
    return log


class JobView(APIView):
    @document_job
    def get(self, request, job_id):
        # settled first: what time decided (a lost worker, an expired result) is what the client sees
        log = jobs.settle(owned(request, job_id))
        return Response(job_json(log, request), headers={"Cache-Control": "no-store", "X-Render-Id": str(log.pk)})

    @document_job
    def delete(self, request, job_id):
        log = jobs.cancel(owned(request, job_id))
        return Response(status=204, headers={"X-Render-Id": str(log.pk)})


class JobListView(APIView):
    @document_job_list
    def get(self, request):
        found = jobs.jobs_of(owner_of(request))
        if "status" in request.query_params:
            wanted = request.query_params["status"]
            if wanted not in JobStatus.values:
                raise invalid("status", f"must be one of {', '.join(JobStatus.values)}")
            found = found.filter(status__in=statuses_for(wanted))
        pages = NewestFirst("-received_at")
        page = pages.paginate_queryset(found, request, view=self)
        return pages.get_paginated_response(JobSerializer(page, many=True, context={"request": request}).data)


class JobResultView(APIView):
    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        if getattr(exc, "told_again", False):  # the job's own failure, logged when it happened: not a new error
            response._has_been_logged = True  # Django's own flag: a response it must not log again
        return response

    @document_job_result
    def get(self, request, job_id):
        """The file (Range honoured), or why not; a result another host holds is routed there."""
        log = jobs.settle(owned(request, job_id))
        downloads.require_result(log)
        if log.result.get("object"):  # in the object store: any host answers it
            if not settings.VIDEOAPI_S3_PROXY:
                return stored_result_redirect(log)
            return result_response(log, request,
                                   on_close=lambda span, whole: downloads.finished_stored(log, span, whole))
        if not jobs.is_local(log):
            return route(log, request)
        workspace = downloads.hold(log)
        try:
            return result_response(log, request, workspace=workspace,
                                   on_close=lambda span, whole: downloads.finished(log, workspace, span, whole))
        except BaseException:
            workspace.release_lock()
            raise


def route(log: RenderLog, request):
    """A result held by another host: behind the shipped nginx, an internal redirect to that host; asked
    directly, 421 naming it (never a 404: the result exists)."""
    if through_our_proxy(request) and not request.META.get("HTTP_X_VIDEOAPI_ROUTED"):
        # nginx keeps this answer's Content-Type (charset included) over the holder's: none of its own
        response = HttpResponse(status=200, content_type="application/octet-stream")
        response["X-Accel-Redirect"] = f"/_videoapi/route/{log.host}/api/jobs/{log.pk}/result"
        response["X-Render-Id"] = str(log.pk)
        return response
    raise Misdirected(f"the result is held by host {log.host}; ask through the service's public address",
                      headers={"X-Videoapi-Host": log.host})


def through_our_proxy(request) -> bool:
    """The shipped nginx site marks what it proxies (`X-Videoapi-Proxy: accel`); believed only from a trusted
    proxy (FORWARDED_ALLOW_IPS), like X-Forwarded-For."""
    peer = request.META.get("REMOTE_ADDR") or ""
    try:
        trusted = is_trusted_proxy(ipaddress.ip_address(peer))
    except ValueError:
        return False
    return trusted and request.META.get("HTTP_X_VIDEOAPI_PROXY") == "accel"
