"""The `callback_url` form field: where a job's webhook goes (renders.webhooks)."""

from rest_framework import serializers

from renders.api.fields import BlankIsMissing, Published
from renders.webhooks import MAX_URL_LENGTH, CallbackRefused, validate_callback_url


class CallbackUrlField(Published, BlankIsMissing, serializers.CharField):
    """An http(s) URL without credentials whose host resolves only to public addresses (checked now, and again
    at every delivery); private ones too when the operator sets VIDEOAPI_WEBHOOK_ALLOW_PRIVATE."""

    option_type = "url"

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", "POSTed a signed webhook (Standard Webhooks) when the job ends; implies a job")
        super().__init__(max_length=MAX_URL_LENGTH, trim_whitespace=True, allow_blank=False, **kwargs)

    def to_internal_value(self, data):
        url = super().to_internal_value(data)
        try:
            return validate_callback_url(url)
        except CallbackRefused as exc:
            raise serializers.ValidationError(exc.messages) from None

    def openapi(self):
        # empty by default: an untouched "Try it out" form renders in the request, as without the field
        return {"type": "string", "format": "uri", "maxLength": MAX_URL_LENGTH, "default": "",
                "description": self.help_text}
