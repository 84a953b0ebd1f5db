"""Cursor pages of the API's lists (jobs, saved templates): `limit` and `cursor`, each checked (a 400 names it)."""

from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination

from renders.errors import invalid


class NewestFirst(CursorPagination):
    """Pages of a client's rows, newest first by a time field (`ordering`, e.g. "-received_at")."""

    page_size = 20
    page_size_query_param = "limit"
    max_page_size = 100

    def __init__(self, ordering: str):
        self.ordering = ordering

    def get_page_size(self, request):
        """`limit`: 1 to 100, or absent (20); anything else is a 400 naming it (DRF would ignore it silently)."""
        value = request.query_params.get(self.page_size_query_param)
        if value is None:
            return self.page_size
        if not (value.isascii() and value.isdigit() and 1 <= int(value) <= self.max_page_size):
            raise invalid("limit", f"must be an integer from 1 to {self.max_page_size}")
        return int(value)

    def decode_cursor(self, request):
        """Only a cursor this service made: one that decodes to anything else (a position that is no time, a
        garbled offset) is a 400 naming `cursor`, never a page of something else or a 500."""
        refused = invalid("cursor", "not a cursor this service made: follow `next` or `previous`")
        try:
            cursor = super().decode_cursor(request)
        except NotFound:  # DRF's answer to a cursor it cannot decode: a bad parameter, not a missing page
            raise refused from None
        if cursor is not None and cursor.position is not None:
            try:
                moment = parse_datetime(cursor.position)
            except ValueError:
                moment = None
            if moment is None:
                raise refused
        return cursor
