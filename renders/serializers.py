"""One serializer per endpoint form: all field validation lives here."""

import re

from django.conf import settings
from rest_framework import serializers

from .fields import FilenameField, Probed, TimeField, VideoField
from .options import OutputFields
from .output import OutputSpec

MIN_CLIP = 0.1
EPSILON = 1e-3


class RenderSerializer(serializers.Serializer):
    """Fields every endpoint takes."""

    final_filename = FilenameField()

    def params(self) -> dict:
        """The validated fields as the RenderLog records them."""
        out = {}
        for key, value in self.validated_data.items():
            if isinstance(value, (str, int, float, bool)) or value is None:
                out[key] = value
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                out[key] = value
            elif isinstance(value, OutputSpec):
                out[key] = value.summary()
        return out

    def inputs(self) -> list:
        found = []
        for value in self.validated_data.values():
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, Probed):
                    found.append(item.summary())
        return found


class TrimFields(RenderSerializer):
    video = VideoField()
    start = TimeField()
    end = TimeField(required=False)
    duration = TimeField(required=False)
    mode = serializers.ChoiceField(choices=["accurate", "fast"], default="accurate",
                                   help_text="accurate: frame-accurate, house format; fast: stream copy from the "
                                             "keyframe at or before start (see X-Trim-Start)")

    def validate(self, attrs):
        video = attrs["video"].info
        length = video.duration
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
        attrs["clip_end"] = end
        attrs["clip_length"] = end - start
        return attrs

    def params(self):
        params = super().params()
        params.pop("clip_end", None)
        return params


class TrimSerializer(OutputFields, TrimFields):
    """A trim; in `accurate` mode (house format) the output fields apply."""

    def validate(self, attrs):
        if attrs.get("mode") == "fast":
            given = [name for name in ("canvas", "fit", "fps", "quality") if name in self.initial_data]
            if given:
                raise serializers.ValidationError({given[0]: ["applies to mode=accurate only (fast mode copies "
                                                              "the source's streams as they are)"]})
        return super().validate(attrs)


class TrimPreviewSerializer(TrimFields):
    mode = None
    height = serializers.IntegerField(min_value=144, max_value=720, default=360,
                                      help_text="preview height in pixels (the aspect is kept)")
    format = serializers.ChoiceField(choices=["mp4", "jpg"], default="mp4",
                                     help_text="mp4: a small fast-encoded clip; jpg: the frame at start")

    def validate(self, attrs):
        attrs = super().validate(attrs)
        limit = settings.VIDEOAPI_PREVIEW_MAX_SECONDS
        if attrs["format"] == "mp4" and attrs["clip_length"] > limit + EPSILON:
            raise serializers.ValidationError(
                {"duration" if "duration" in attrs else "end": [f"a preview is at most {limit:g} s long"]}
            )
        return attrs


class JoinSerializer(OutputFields, RenderSerializer):
    """Fields both joins share; subclasses supply the ordered `inputs`."""

    MIN_INPUTS, MAX_INPUTS = 2, 20
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
        return super().validate(attrs)

    def params(self):
        params = super().params()
        params["order"] = [item.field for item in self.validated_data["inputs"]]
        return params


class ConcatenateSerializer(JoinSerializer):
    videos = serializers.ListField(child=VideoField(), min_length=2, max_length=20,
                                   help_text="2 to 20 videos, joined in the order sent (repeat the field)")

    def validate(self, attrs):
        for index, item in enumerate(attrs["videos"]):
            item.field = f"videos[{index}]"
        attrs["inputs"] = attrs.pop("videos")
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

    # the fields a form class cannot declare (published by /api/options)
    dynamic_fields = {
        "segment_<i>": {"type": "video", "required": True,
                        "description": "a video for each non-negative integer i (2 to 20 of them)"},
        "order_<i>": {"type": "integer", "required": False,
                      "description": "the sort key of segment_<i> (default i; negative allowed)"},
    }

    def to_internal_value(self, data):
        errors, segments, orders = {}, {}, {}
        for key in data.keys():
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
        for index, (key, raw) in sorted(orders.items()):
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
