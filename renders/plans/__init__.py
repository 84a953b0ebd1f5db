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
`JoinPlan`, `TemplatePlan`, `ComposePlan`; `kind` tells them apart in JSON.
A compose plan may be stored before its sources are in the workspace (a job
fetches its URLs in the worker): `ComposePlan.resolved` says whether every
source was probed (lifecycle.sources resolves it).
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


# ---- compose: the client's own edit ------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """A file the edit names: where it comes from (`attach:<field>` or a URL), how it is used, the JSON path
    of its first use (what a refusal names), and once it is in the workspace, its file name and what probing
    found."""

    ref: str
    media: Literal["video", "image", "audio", "captions"]
    path: str
    name: str | None = None
    input: VideoInput | ImageInput | AudioInput | CaptionsInput | None = None


@dataclass(frozen=True)
class TextLook:
    font: str = ""  # fonts.registry() name ("" = the default)
    size: float = 0.06  # text height as a share of the canvas height
    color: str = "#FFFFFF"
    box_color: str | None = None
    align: Literal["left", "center", "right"] = "center"
    max_width: float = 0.8  # share of the canvas width the text wraps at


@dataclass(frozen=True)
class Layer:
    """One clip of the edit, as validated: what it shows or sounds, when, and how it is placed.

    `source` indexes the plan's sources; `length` is None until the source's length is known (a video or audio
    clip that left it out)."""

    kind: Literal["video", "image", "text", "color", "audio", "captions"]
    path: str  # its JSON path, "timeline.tracks[0].clips[1]"
    start: float
    length: float | None
    source: int | None = None
    trim: float = 0.0
    volume: float = 0.0  # dB; -60 is muted
    text: str = ""
    look: TextLook | None = None
    color: str = ""
    fit: Literal["contain", "cover", "blur", "none"] = "contain"
    scale: float = 1.0
    position: str = "center"
    offset_x: float = 0.0
    offset_y: float = 0.0
    opacity: float = 1.0
    transition_in: str | None = None
    transition_out: str | None = None
    transition_duration: float = 0.5
    effect: str | None = None

    @property
    def end(self) -> float:
        return self.start + (self.length or 0.0)

    @property
    def seen(self) -> bool:
        return self.kind not in ("audio", "captions")


@dataclass(frozen=True)
class Soundtrack:
    source: int
    volume: float = -18.0
    ducking: bool = True


@dataclass(frozen=True)
class ComposePlan:
    """A composition: layers in drawing order (the last track first, so the first track ends on top), over a
    background, with an optional soundtrack; `format` mp4/webm/gif, or png/jpg for the one frame at `frame_at`;
    `duration`: the output's length (None until the sources' lengths are known, when not given)."""

    background: str
    layers: tuple[Layer, ...]
    sources: tuple[Source, ...]
    spec: OutputSpec
    format: Literal["mp4", "webm", "gif", "png", "jpg"]
    filename: str
    duration: float | None = None
    frame_at: float = 0.0
    soundtrack: Soundtrack | None = None
    edit: dict | None = None  # the merged edit as the client sent it (what the RenderLog shows)
    kind: Literal["compose"] = "compose"

    @property
    def resolved(self) -> bool:
        return all(source.input is not None for source in self.sources)

    @property
    def uploads(self) -> tuple:
        return tuple(source.input for source in self.sources if source.input is not None)

    @property
    def still(self) -> bool:
        return self.format in ("png", "jpg")

    @property
    def output_length(self) -> float | None:
        return None if self.still else self.duration


# ---- a job's form, before its URL sources are fetched ---------------------------------------------------


@dataclass(frozen=True)
class FormFile:
    """A file field of a form: the file in the workspace (`name`), or the URL it is still to be fetched from."""

    field: str  # the form's key ("video", "videos", "segment_3")
    name: str | None = None
    url: str | None = None
    client_name: str = ""


@dataclass(frozen=True)
class PendingForm:
    """A request taken as a job before its URL sources were fetched: its form as sent (the text fields, each
    file as a workspace name or a URL). The worker fetches the URLs and makes its endpoint's plan from it with
    the endpoint's own form (lifecycle.sources), so every check a synchronous request gets still applies."""

    endpoint: str
    fields: tuple[tuple[str, tuple[str, ...]], ...]
    files: tuple[FormFile, ...]
    kind: Literal["form"] = "form"

    uploads: ClassVar[tuple] = ()
    output_length: ClassVar[None] = None


Plan = Annotated[TrimPlan | PreviewPlan | JoinPlan | TemplatePlan | ComposePlan | PendingForm,
                 Field(discriminator="kind")]
_ADAPTER = TypeAdapter(Plan)


def dump(plan) -> dict:
    """The plan as plain JSON data (what the RenderLog stores in `params`)."""
    return _ADAPTER.dump_python(plan, mode="json")


def load(data: dict):
    """A plan back from `dump()`'s data; a pydantic ValidationError when the data is not a plan."""
    return _ADAPTER.validate_python(data)
