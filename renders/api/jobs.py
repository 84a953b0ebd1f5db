"""The jobs' HTTP side: status, list, result, cancel (docs/API.md, "Jobs").

A client sees only its own jobs (jobs.client_ref); another client's job is
404, exactly like one that does not exist.
"""

from django.http import Http404
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from renders.api.schema import document_job, document_job_list, document_job_result
from renders.errors import invalid
from renders.lifecycle import jobs


def owned(request, job_id):
    try:
        return jobs.jobs_of(request).get(pk=job_id)
    except jobs.RenderLog.DoesNotExist:
        raise Http404 from None


class JobPages(CursorPagination):
    page_size = 20
    page_size_query_param = "limit"
    max_page_size = 100
    ordering = "-received_at"

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except NotFound:  # DRF's answer to a cursor it did not make; it is a bad parameter, not a missing page
            raise invalid("cursor", "not a cursor this service made: follow `next` or `previous`") from None


class JobView(APIView):
    @document_job
    def get(self, request, job_id):
        # jobs.current() also applies what time decided (a lost worker, an expired result) before answering
        return Response(jobs.job_data(jobs.current(owned(request, job_id)), request),
                        headers={"Cache-Control": "no-store"})

    @document_job
    def delete(self, request, job_id):
        jobs.cancel(owned(request, job_id))
        return Response(status=204)


class JobListView(APIView):
    @document_job_list
    def get(self, request):
        found = jobs.jobs_of(request)
        if "status" in request.query_params:
            found = found.filter(status__in=jobs.status_filter(request.query_params["status"]))
        pages = JobPages()
        page = pages.paginate_queryset(found, request, view=self)
        return pages.get_paginated_response([jobs.job_data(log, request) for log in page])


class JobResultView(APIView):
    @document_job_result
    def get(self, request, job_id):
        return jobs.download(owned(request, job_id), request)
