"""Media by reference in a render's form: a file field sent as text, `upload:<id>` or an http(s) URL.

`bring()` turns each such value into a file in the render's workspace
before the form is checked, so the form sees a file exactly as if it had
been uploaded: an upload is linked (read-only, its own link: deleting the
upload mid-render breaks nothing), a URL is fetched (lifecycle.fetch), or,
for a job, only checked for form and left for the worker (the 202 comes
before any fetch). A job with URLs left is stored as a PendingForm: its
text fields checked now, the whole form again by the worker once the files
are there (`plan_from_form`, registered in lifecycle.sources.FORMS).
"""

import functools
import re
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.http import QueryDict
from rest_framework import serializers

from renders import plans
from renders.api.fields import UploadField
from renders.api.serializers import SEGMENT_RE
from renders.lifecycle.fetch import Fetcher, check_url
from renders.lifecycle.sources import FORMS, link_upload
from renders.lifecycle.uploads import WorkspaceFile

REFERENCE = re.compile(r"^(upload:|https?://)", re.IGNORECASE)
NOT_STORED = ("output_url", "output_headers")  # the job keeps them apart (its delivery), never in its parameters


class BroughtFile(WorkspaceFile):
    """A file brought into the workspace by reference (a linked upload, a fetched URL); never opened here (the
    fields read its path)."""

    def __init__(self, path, field_name, client_name):
        UploadedFile.__init__(self, None, client_name, "application/octet-stream", path.stat().st_size)
        self.path = path
        self.field_name = field_name

    def close(self):
        pass


def takes_files(form_class, key: str) -> bool:
    """Whether `key` is a file field of the form (a list of files included; concatenate-multipart's segments)."""
    field = form_class._declared_fields.get(key)
    if isinstance(field, serializers.ListField):
        field = field.child
    if isinstance(field, UploadField):
        return True
    return bool(getattr(form_class, "dynamic_fields", None)) and bool(SEGMENT_RE.match(key))


def shown_name(url: str) -> str:
    return PurePosixPath(urlsplit(url).path).name[:100]


def lists(data):
    """(key, [values]) of a parsed body: a QueryDict's lists, or a plain dict's items (a body with no form)."""
    return data.lists() if hasattr(data, "lists") else ((key, [value]) for key, value in data.items())


def bring(form_class, data, workspace, owner: str, *, defer_urls: bool) -> tuple[QueryDict, list]:
    """The form's data with every file given by reference brought into the workspace; and, with `defer_urls`
    (a job), the URLs left for the worker as FormFiles. Refusals name the field."""
    form, deferred, fetcher = QueryDict(mutable=True), [], None
    for key, values in lists(data):
        kept = []
        for value in values:
            reference = value.strip() if isinstance(value, str) else ""
            if not (reference and REFERENCE.match(reference) and takes_files(form_class, key)):
                kept.append(value)
            elif reference.lower().startswith("upload:"):
                kept.append(BroughtFile(link_upload(reference, owner, workspace, key), key, reference))
            else:
                check_url(reference, field=key)
                if defer_urls:
                    deferred.append(plans.FormFile(key, url=reference, client_name=shown_name(reference)))
                    continue
                fetcher = fetcher or Fetcher(workspace.path, max_bytes=settings.VIDEOAPI_MAX_UPLOAD_BYTES)
                kept.append(BroughtFile(fetcher.get(reference, key), key, shown_name(reference)))
        if kept:
            form.setlist(key, kept)
    return form, deferred


def pending_form(form_class, data, deferred) -> plans.PendingForm:
    """A job's form before its URLs are fetched: every field that does not wait for a URL checked now (each on
    its own: what compares fields with the files is checked by the worker), the form stored as sent."""
    waiting = {item.field for item in deferred}
    errors = {}
    for name, field in form_class().fields.items():
        if name in waiting:
            continue
        try:
            field.run_validation(field.get_value(data))
        except serializers.SkipField:  # optional, not sent
            pass
        except serializers.ValidationError as exc:
            errors[name] = exc.detail
    if errors:
        raise serializers.ValidationError(errors)
    fields, files = [], list(deferred)
    for key, values in lists(data):
        if key in NOT_STORED:
            continue
        if all(isinstance(value, str) for value in values):
            fields.append((key, tuple(values)))
        else:
            files += [plans.FormFile(key, name=value.path.name, client_name=value.name or "") for value in values]
    return plans.PendingForm(form_class.endpoint, tuple(fields), tuple(files))


def plan_from_form(form_class, form: dict, workspace):
    """The endpoint's plan from a stored form whose files are all in the workspace: the form run whole."""
    data = QueryDict(mutable=True)
    for key, values in form.items():
        data.setlist(key, [BroughtFile(workspace.path / value.name, key, value.client_name)
                           if isinstance(value, plans.FormFile) else value for value in values])
    serializer = form_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.plan()


def register(views):
    """Each render endpoint's form, for the worker to plan a PendingForm with."""
    for view in views:
        FORMS[view.endpoint] = functools.partial(plan_from_form, view.serializer_class)
