"""One serializer per endpoint form: every field's validation, and the plan it makes.

A serializer checks the request (fields, probed uploads, how they fit
together) and `plan()` turns what it validated into the endpoint's plan
(renders.plans): the one value an operation runs.
"""

import re
from dataclasses import replace

from django.conf import settings
from rest_framework import serializers

from renders import plans
from renders.api.callbacks import CallbackUrlField
from renders.api.fields import BlankByDefault, FilenameField, TimeField, VideoField, sanitize_filename
from renders.api.options import OutputFields, StyleFields
from renders.api.templates import Template
from renders.media import builders

MIN_CLIP = 0.1
MIN_WINDOW = 0.2
EPSILON = 1e-3


def download_name(final_filename: str | None, default_stem: str, extension: str) -> str:
    return sanitize_filename(final_filename or "", extension) or f"{default_stem}.{extension}"


class RenderSerializer(serializers.Serializer):
    """Fields every endpoint takes."""

    # each endpoint's form names it, says how its operation is documented, and makes its plan

    endpoint: str = ""
    tag: str = ""  # the group its operation is listed under in the API docs
    media_types = ("video/mp4",)  # what a success answers
    outputs_house_format = True  # its video is in the house format (the output fields apply)
    final_filename = FilenameField()
    callback_url = CallbackUrlField()  # a job's webhook (renders.webhooks); not part of the render's plan
    # where a job delivers its result (checked by lifecycle.delivery.check_destination in the view)
    output_url = BlankByDefault(option_type="url", max_length=2048, schema_format="uri", help_text=(
        "an http(s) URL presigned for a PUT (S3, GCS, Azure): the result is uploaded there and not kept; makes "
        "the request a job"))
    output_headers = BlankByDefault(option_type="json", max_length=16384, help_text=(
        "with output_url: a JSON object of headers to send with the PUT (e.g. x-amz-acl)"))

    def plan(self):
        raise NotImplementedError

    def filename(self, extension: str) -> str:
        return download_name(self.validated_data.get("final_filename"), self.endpoint, extension)


def clip_bounds(attrs) -> tuple[float, float]:
    """[start, end) of a trim from start and end or duration (default: to the end); refusals name the field."""
    length = attrs["video"].info.duration
    start = attrs["start"]
    if "end" in attrs and "duration" in attrs:
        raise serializers.ValidationError({"end": ["give end or duration, not both"]})
    if start >= length - EPSILON:
        raise serializers.ValidationError(
            {"start": [f"must lie inside the video (video is {length:.3f} s long)"]}
        )
    if "end" in attrs:
        end = attrs["end"]
        if end > length + EPSILON:
            raise serializers.ValidationError({"end": [f"is past the end of the video (video is {length:.3f} s long)"]})
        if end <= start:
            raise serializers.ValidationError({"end": ["must be after start"]})
        key = "end"
    elif "duration" in attrs:
        end = start + attrs["duration"]
        if end > length + EPSILON:
            raise serializers.ValidationError(
                {"duration": [f"runs past the end of the video (video is {length:.3f} s long)"]}
            )
        key = "duration"
    else:
        end, key = length, "start"
    end = min(end, length)
    if end - start < MIN_CLIP - EPSILON:
        raise serializers.ValidationError({key: [f"the clip must be at least {MIN_CLIP} s long"]})
    return start, end


class TrimFields(RenderSerializer):
    video = VideoField()
    start = TimeField()
    end = TimeField(required=False)
    duration = TimeField(required=False)
    mode = serializers.ChoiceField(choices=["accurate", "fast"], default="accurate",
                                   help_text="accurate: frame-accurate, house format; fast: stream copy from the "
                                             "keyframe at or before start (see X-Trim-Start)")

    def validate(self, attrs):
        clip_bounds(attrs)
        return attrs


class TrimSerializer(OutputFields, TrimFields):
    """A trim; in `accurate` mode (house format) the output fields apply."""

    endpoint, tag = "trim", "trim"

    def validate(self, attrs):
        if attrs.get("mode") == "fast":
            if attrs.get("format", "mp4") != "mp4":
                raise serializers.ValidationError({"format": [
                    "mode=fast copies the source's streams into MP4; use mode=accurate for another format"]})
            given = [name for name in OutputFields().fields if name in self.initial_data and name != "format"]
            if given:
                raise serializers.ValidationError({given[0]: [("applies to mode=accurate only (fast mode copies "
                                                               "the source's streams as they are)")]})
        attrs = super().validate(attrs)
        info = attrs["video"].info
        if attrs["mode"] == "fast" and not builders.fast_trim_supported(info):
            raise serializers.ValidationError({"mode": [
                f"fast mode cannot copy {info.video_codec}/{info.audio_codec} into MP4; use accurate"]})
        start, end = clip_bounds(attrs)
        self.check_length(attrs, end - start, next((key for key in ("end", "duration") if key in attrs), "format"))
        return attrs

    def plan(self) -> plans.TrimPlan:
        data = self.validated_data
        start, end = clip_bounds(data)
        return plans.TrimPlan(video=data["video"], start=start, end=end, mode=data["mode"], spec=data["spec"],
                              filename=self.filename(data["spec"].output.extension), finishing=data["finishing"])


class TrimPreviewSerializer(TrimFields):
    endpoint, tag = "trim-preview", "trim"
    media_types = ("video/mp4", "image/jpeg")
    outputs_house_format = False
    mode = None
    height = serializers.IntegerField(min_value=144, max_value=720, default=360,
                                      help_text="preview height in pixels (the aspect is kept)")
    format = serializers.ChoiceField(choices=["mp4", "jpg"], default="mp4",
                                     help_text="mp4: a small fast-encoded clip; jpg: the frame at start")

    def validate(self, attrs):
        start, end = clip_bounds(attrs)
        limit = settings.VIDEOAPI_PREVIEW_MAX_SECONDS
        if attrs["format"] == "mp4" and end - start > limit + EPSILON:
            raise serializers.ValidationError(
                {"duration" if "duration" in attrs else "end": [f"a preview is at most {limit:g} s long"]}
            )
        return attrs

    def plan(self) -> plans.PreviewPlan:
        data = self.validated_data
        start, end = clip_bounds(data)
        return plans.PreviewPlan(video=data["video"], start=start, end=end, height=data["height"],
                                 format=data["format"], crf=settings.VIDEOAPI_PREVIEW_CRF,
                                 filename=self.filename(data["format"]))


class JoinSerializer(OutputFields, RenderSerializer):
    """Fields both joins share; subclasses supply the ordered `inputs`."""

    MIN_INPUTS, MAX_INPUTS = 2, 20
    tag = "join"
    transition = serializers.ChoiceField(choices=["none", "crossfade"], default="none",
                                         help_text="crossfade: picture and sound fade across each join")
    transition_duration = TimeField(required=False, default=0.5, min_value=0.1, max_value=2,
                                    help_text="seconds of each crossfade (0.1-2; less than half the shortest input)")

    def validate(self, attrs):
        inputs = attrs["inputs"]
        if attrs["transition"] == "crossfade":
            shortest = min(item.info.duration for item in inputs)
            if attrs["transition_duration"] >= shortest / 2:
                raise serializers.ValidationError({"transition_duration": [
                    f"must be less than half of the shortest input ({shortest:.3f} s long)"]})
        attrs = super().validate(attrs)
        crossfade = attrs["transition_duration"] if attrs["transition"] == "crossfade" else 0.0
        self.check_length(attrs, plans.join_length([item.info for item in inputs], attrs["spec"].fps, crossfade))
        return attrs

    def plan(self) -> plans.JoinPlan:
        data = self.validated_data
        return plans.JoinPlan(inputs=tuple(data["inputs"]), transition=data["transition"],
                              transition_duration=data["transition_duration"], spec=data["spec"],
                              filename=self.filename(data["spec"].output.extension), finishing=data["finishing"])


class ConcatenateSerializer(JoinSerializer):
    endpoint = "concatenate"
    videos = serializers.ListField(child=VideoField(), min_length=2, max_length=20,
                                   help_text="2 to 20 videos, joined in the order sent (repeat the field)")

    def validate(self, attrs):
        attrs["inputs"] = [replace(item, field=f"videos[{index}]") for index, item in enumerate(attrs.pop("videos"))]
        return super().validate(attrs)


SEGMENT_RE = re.compile(r"^segment_(.*)$")
ORDER_RE = re.compile(r"^order_(.*)$")
INDEX_RE = re.compile(r"^\d{1,6}$")
INTEGER_RE = re.compile(r"^[+-]?\d{1,9}$")


class ConcatenateMultipartSerializer(JoinSerializer):
    """`segment_<i>` files ordered by integer `order_<i>` (default: by i).

    Ties between an explicit order and an implied one (`i`) are broken by i;
    two equal explicit orders are an error.
    """

    endpoint = "concatenate-multipart"

    # the fields a form class cannot declare (published by /api/options)
    dynamic_fields = {
        "segment_<i>": {"type": "video", "required": True,
                        "description": "a video for each non-negative integer i (2 to 20 of them)"},
        "order_<i>": {"type": "integer", "required": False,
                      "description": "the sort key of segment_<i> (default i; negative allowed)"},
    }

    def to_internal_value(self, data):
        errors, segments, orders = {}, {}, {}
        for key in data:
            values = data.getlist(key) if hasattr(data, "getlist") else [data[key]]
            for pattern, bucket in ((SEGMENT_RE, segments), (ORDER_RE, orders)):
                match = pattern.match(key)
                if not match:
                    continue
                if not INDEX_RE.match(match[1]):
                    errors[key] = [f"'{match[1]}' is not a non-negative integer index"]
                elif len(values) > 1:
                    errors[key] = ["given more than once"]
                elif int(match[1]) in bucket:
                    errors[key] = [f"index {int(match[1])} is given twice"]
                else:
                    bucket[int(match[1])] = (key, values[0])
        for index, (key, raw) in orders.items():
            if index not in segments:
                errors[key] = [f"there is no segment_{index}"]
            elif not isinstance(raw, str) or not INTEGER_RE.match(raw.strip()):
                errors[key] = ["must be an integer"]
        explicit = {}
        for _index, (key, raw) in sorted(orders.items()):
            if key in errors:
                continue
            value = int(raw.strip())
            if value in explicit:
                errors[key] = [f"order {value} is also given to {explicit[value]}"]
            explicit[value] = key
        count = len(segments)
        if not errors and not (self.MIN_INPUTS <= count <= self.MAX_INPUTS):
            errors["segments"] = [f"give {self.MIN_INPUTS} to {self.MAX_INPUTS} segment_<i> files (got {count})"]
        if errors:
            raise serializers.ValidationError(errors)
        ranked = sorted(segments, key=lambda i: (int(orders[i][1].strip()) if i in orders else i, i))
        inputs = []
        for index in ranked:
            key, upload = segments[index]
            field = VideoField()
            field.bind(key, self)
            try:
                inputs.append(field.run_validation(upload))
            except serializers.ValidationError as exc:
                raise serializers.ValidationError({key: exc.detail}) from None
        # the shared fields (transition, final_filename) validate as usual
        attrs = super().to_internal_value(data)
        attrs["inputs"] = inputs
        return attrs


# ---- the six templates ---------------------------------------------------------------


class TemplateSerializer(StyleFields, RenderSerializer):
    template: Template = None  # set, with the template's fields, by serializer_for()
    tag = "templates"
    start = TimeField(required=False, default=0.5, help_text="when the text appears (output time)")
    duration = TimeField(required=False, default=4.0, min_value=0.1,
                         help_text="how long the text stays (clipped to the end of the video)")

    def speed(self, attrs) -> float:
        return attrs.get(self.template.speed_field, 1.0) if self.template.speed_field else 1.0

    def window(self, attrs) -> tuple[float, float, float]:
        """(start, end, output length): when the text shows, in output time; refusals name the field."""
        template = self.template
        length = attrs["video"].info.duration / self.speed(attrs)
        start = attrs["start"]
        if start > length - MIN_WINDOW:
            raise serializers.ValidationError(
                {"start": [f"must leave at least {MIN_WINDOW} s of video (the output is {length:.3f} s long)"]}
            )
        end = min(start + attrs["duration"], length)
        if template.steps_field and attrs.get("step_duration"):
            needed = start + len(attrs[template.steps_field]) * attrs["step_duration"]
            if needed > length + EPSILON:
                raise serializers.ValidationError(
                    {"step_duration": [(f"the steps need {needed - start:.2f} s after start, "
                                        f"but the output is {length:.3f} s long")]}
                )
            end = needed
        return start, end, length

    def validate(self, attrs):
        _start, _end, length = self.window(attrs)
        attrs = super().validate(attrs)
        self.check_length(attrs, length)
        return attrs

    def plan(self) -> plans.TemplatePlan:
        template, data = self.template, self.validated_data
        start, end, length = self.window(data)
        fade_out = min(data.get(template.fade_out_field) or 0.0, length) if template.fade_out_field else 0.0
        return plans.TemplatePlan(
            template=template.endpoint, video=data["video"], cards=tuple(template.cards(data, start, end)),
            start=start, end=end, length=length, spec=data["spec"],
            filename=self.filename(data["spec"].output.extension), dim=template.dim,
            speed=self.speed(data), fade_out=fade_out,
            avatar=data.get(template.avatar_field) if template.avatar_field else None, finishing=data["finishing"],
        )


def serializer_for(template: Template):
    attrs = {"template": template, "endpoint": template.endpoint, "video": VideoField(), **template.fields}
    name = "".join(part.title() for part in template.endpoint.split("-")) + "Serializer"
    return type(name, (TemplateSerializer,), attrs)
