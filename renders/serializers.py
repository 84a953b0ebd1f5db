"""One serializer per endpoint form: all field validation lives here."""

from django.conf import settings
from rest_framework import serializers

from .fields import FilenameField, ImageField, TextField, TimeField, VideoField

MIN_CLIP = 0.1
EPSILON = 1e-3


class RenderSerializer(serializers.Serializer):
    """Fields every endpoint takes; `params()` is what the RenderLog records."""

    final_filename = FilenameField()

    def params(self) -> dict:
        out = {}
        for key, value in self.validated_data.items():
            if isinstance(value, (str, int, float, bool)) or value is None:
                out[key] = value
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                out[key] = value
        return out

    def inputs(self) -> list:
        found = []
        for value in self.validated_data.values():
            for item in value if isinstance(value, list) else [value]:
                if hasattr(item, "summary"):
                    found.append(item.summary())
        return found


class TrimSerializer(RenderSerializer):
    video = VideoField()
    start = TimeField()
    end = TimeField(required=False)
    duration = TimeField(required=False)
    mode = serializers.ChoiceField(choices=["accurate", "fast"], default="accurate")

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


class TrimPreviewSerializer(TrimSerializer):
    mode = None
    height = serializers.IntegerField(min_value=144, max_value=720, default=360)
    format = serializers.ChoiceField(choices=["mp4", "jpg"], default="mp4")

    def validate(self, attrs):
        attrs = super().validate(attrs)
        limit = settings.VIDEOAPI_PREVIEW_MAX_SECONDS
        if attrs["format"] == "mp4" and attrs["clip_length"] > limit + EPSILON:
            raise serializers.ValidationError(
                {"duration" if "duration" in attrs else "end": [f"a preview is at most {limit:g} s long"]}
            )
        return attrs
