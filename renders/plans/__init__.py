"""A render as a value: what the request asked for, decided once, typed and storable.

The serializer of each endpoint turns a request into one plan: the validated
fields, what probing learnt about each upload (by its name inside the
workspace), the output spec and every value derived from them (the clip's
end, the text window, the download name...). A plan is frozen, holds no
paths outside the workspace and no live objects, and survives a round trip
through JSON unchanged (`dump()` / `load()`), so the RenderLog stores it as
its parameters and another process can run it later against the same
workspace. The operations (operations.py) take a plan and a workspace and
nothing else.

There is one plan per kind of endpoint: `TrimPlan`, `PreviewPlan`,
`JoinPlan`, `TemplatePlan`; `kind` tells them apart in JSON.
"""

from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pydantic import Field, TypeAdapter

from renders.media.builders import whole_frames
from renders.media.captions import Cue
from renders.media.probe import AudioInfo, ImageInfo, MediaInfo
from renders.media.spec import OutputSpec
from renders.media.text import Card


@dataclass(frozen=True)
class Upload:
    """An uploaded file: the form field it came in, its file name in the workspace, what probing found."""

    media: ClassVar[str] = ""  # "video", "image", "audio" or "captions"
    field: str
    name: str

    def summary(self) -> dict:
        return {"field": self.field, "kind": self.media, **self.info.summary()}


@dataclass(frozen=True)
class VideoInput(Upload):
    media: ClassVar[str] = "video"
    info: MediaInfo


@dataclass(frozen=True)
class ImageInput(Upload):
    """An uploaded image (the persona's avatar)."""

    media: ClassVar[str] = "image"
    info: ImageInfo


@dataclass(frozen=True)
class AudioInput(Upload):
    """An uploaded soundtrack (`music`)."""

    media: ClassVar[str] = "audio"
    info: AudioInfo


@dataclass(frozen=True)
class CaptionsInput(Upload):
    """An uploaded SRT or WebVTT file, parsed: its cues (in output time) are the plan's, not the file's."""

    media: ClassVar[str] = "captions"
    format: Literal["srt", "vtt"]
    size: int
    cues: tuple[Cue, ...]

    def summary(self) -> dict:
        return {"field": self.field, "kind": self.media, "format": self.format, "size": self.size,
                "cues": len(self.cues)}


# ---- finishing: what every house-format output may have drawn over it or mixed under it ----------------


@dataclass(frozen=True)
class Logo:
    image: ImageInput
    position: Literal["top-left", "top-right", "bottom-left", "bottom-right"] = "top-right"
    size: float = 0.12  # width as a share of the canvas width
    opacity: float = 1.0


@dataclass(frozen=True)
class Music:
    audio: AudioInput
    volume: float = -18.0  # dB
    ducking: bool = True


@dataclass(frozen=True)
class Finishing:
    """The output fields beyond the spec (API.md "Finishing"); all None: the render is as without them."""

    logo: Logo | None = None
    captions: CaptionsInput | None = None
    music: Music | None = None

    @property
    def picture(self) -> bool:
        """Something is drawn over the picture (it must be re-encoded)."""
        return self.logo is not None or self.captions is not None

    @property
    def uploads(self) -> tuple:
        return tuple(u for u in (self.logo and self.logo.image, self.captions, self.music and self.music.audio) if u)


NO_FINISHING = Finishing()


class Clip:
    """What the plans of one clip of one video share: [start, end) of `video`."""

    @property
    def length(self) -> float:
        return self.end - self.start

    @property
    def uploads(self) -> tuple:
        return (self.video,)

    @property
    def output_length(self) -> float | None:
        """Seconds of output the render writes (what a job's progress is measured against); None for a still."""
        return None if getattr(self, "format", "mp4") == "jpg" else self.length


@dataclass(frozen=True)
class TrimPlan(Clip):
    """`trim`: [start, end) of one video; `accurate` re-encodes into `spec`, `fast` copies from the keyframe
    at or before start (found by the operation, which reads the file)."""

    video: VideoInput
    start: float
    end: float
    mode: Literal["accurate", "fast"]
    spec: OutputSpec
    filename: str
    finishing: Finishing = NO_FINISHING
    kind: Literal["trim"] = "trim"

    @property
    def uploads(self) -> tuple:
        return (self.video,) + self.finishing.uploads


@dataclass(frozen=True)
class PreviewPlan(Clip):
    """`trim/preview`: a small mp4 of [start, end), or the jpg frame at start, `height` pixels high."""

    video: VideoInput
    start: float
    end: float
    height: int
    format: Literal["mp4", "jpg"]
    crf: int  # the mp4's x264 quality (VIDEOAPI_PREVIEW_CRF when planned)
    filename: str
    kind: Literal["trim-preview"] = "trim-preview"


@dataclass(frozen=True)
class JoinPlan:
    """Both joins: the inputs in their final order, the transition, the output spec."""

    inputs: tuple[VideoInput, ...]
    transition: Literal["none", "crossfade"]
    transition_duration: float
    spec: OutputSpec
    filename: str
    finishing: Finishing = NO_FINISHING
    kind: Literal["join"] = "join"

    @property
    def uploads(self) -> tuple:
        return self.inputs + self.finishing.uploads

    @property
    def output_length(self) -> float:
        crossfade = self.transition_duration if self.transition == "crossfade" else 0.0
        return join_length([item.info for item in self.inputs], self.spec.fps, crossfade)


def join_length(infos, fps: int, crossfade: float = 0.0) -> float:
    """Seconds of a join of inputs probed as `infos`: whole frames each, less each crossfade (0: none)."""
    total = sum(whole_frames(info.duration, fps) for info in infos)
    if crossfade > 0:
        total -= whole_frames(crossfade, fps) * (len(infos) - 1)
    return total


@dataclass(frozen=True)
class TemplatePlan:
    """One of the six templates, resolved: the cards to draw and when, and the shared effects.

    The cards hold the request's text as the template laid it out, so a
    stored plan renders the same whatever the template declarations
    become later.
    """

    template: str  # the template's endpoint name
    video: VideoInput
    cards: tuple[Card, ...]  # text blocks, their roles, anchors and time windows (output time)
    start: float  # the text window, in output time
    end: float
    length: float  # the output's length (the video's, after the speed change)
    spec: OutputSpec
    filename: str
    dim: bool = False  # darken the frame during the window
    speed: float = 1.0
    fade_out: float = 0.0  # seconds of fade to black and silence at the end
    avatar: ImageInput | None = None
    finishing: Finishing = NO_FINISHING
    kind: Literal["template"] = "template"

    @property
    def uploads(self) -> tuple:
        return (self.video,) + ((self.avatar,) if self.avatar else ()) + self.finishing.uploads

    @property
    def output_length(self) -> float:
        return self.length


Plan = Annotated[TrimPlan | PreviewPlan | JoinPlan | TemplatePlan, Field(discriminator="kind")]
_ADAPTER = TypeAdapter(Plan)


def dump(plan) -> dict:
    """The plan as plain JSON data (what the RenderLog stores in `params`)."""
    return _ADAPTER.dump_python(plan, mode="json")


def load(data: dict):
    """A plan back from `dump()`'s data; a pydantic ValidationError when the data is not a plan."""
    return _ADAPTER.validate_python(data)
