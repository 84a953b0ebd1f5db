"""Probing uploads: what is this file, really?

The container is recognised from its first bytes (never from the client's
file name or content type), and only then opened with PyAV with that one
demuxer forced, local files only and an allow-list of demuxers, so a
playlist or a file that embeds one can never make FFmpeg open anything
else. The result is structured metadata (`MediaInfo`) that the renders and
the RenderLog use; no regex over FFmpeg's banner.
"""

import hashlib
import logging
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av
from django.conf import settings

from renders.errors import InvalidInput, UndecodableMedia, UnsupportedMedia
from renders.media.colour import Colour, from_frame

logger = logging.getLogger("renders.probe")

# Demuxers an upload may be read with, keyed by what its first bytes say.
VIDEO_DEMUXERS = ("mov", "matroska", "avi", "mpegts")
IMAGE_DEMUXERS = ("png_pipe", "jpeg_pipe", "webp_pipe")
# A soundtrack (`music`): the audio demuxers, and the video containers (their sound is used).
AUDIO_DEMUXERS = ("mp3", "aac", "wav", "flac", "ogg", *VIDEO_DEMUXERS)
MAX_IMAGE_SIDE = 4096


def input_options(demuxer: str) -> list[str]:
    """FFmpeg input options that pin an input to one demuxer and local files."""
    return ["-protocol_whitelist", "file", "-format_whitelist", demuxer, "-f", demuxer]


def _container_options(demuxer: str) -> dict:
    return {"protocol_whitelist": "file", "format_whitelist": demuxer}


def sniff(path: Path) -> str | None:
    """Name the demuxer for a file from its magic bytes, or None."""
    with open(path, "rb") as handle:
        head = handle.read(1024)
    if len(head) >= 12 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"):
        return "mov"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if len(head) >= 377 and head[0] == 0x47 and head[188] == 0x47 and head[376] == 0x47:
        return "mpegts"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png_pipe"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg_pipe"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp_pipe"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:3] == b"ID3":
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:  # ADTS sync word, layer 0
        return "aac"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:  # MPEG audio frame
        return "mp3"
    return None


@dataclass(frozen=True)
class MediaInfo:
    demuxer: str
    size: int
    duration: float
    video_codec: str
    width: int  # as displayed (after rotation)
    height: int
    rotation: int
    fps: float
    sar: float
    pix_fmt: str
    audio_codec: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    video_start: float = 0.0
    video_config: str = ""  # digest of the decoder setup (profile, SPS/PPS...)
    audio_config: str = ""
    channel_layout: str = ""  # FFmpeg's name: "5.1(side)", or "9 channels" when the order is unknown
    interlaced: bool = False
    audio_track: int = 0  # which audio stream (among the audio streams) is used: the default decodable one
    audio_tracks: int = 0
    colour: Colour = Colour()

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None

    def copy_layout(self) -> tuple:
        """What must be equal for two files to be joined by stream copy into MP4."""
        return (self.demuxer, self.video_codec, self.width, self.height, self.rotation, self.fps, self.sar,
                self.pix_fmt, self.video_config, self.audio_codec, self.sample_rate, self.channels,
                self.audio_config, self.audio_track, self.audio_tracks, self.colour)

    def summary(self) -> dict:
        described = asdict(self)
        described["colour"] = self.colour.summary()
        return described


def _describe_head(path: Path, what: str = "a video",
                   known: str = "video container (MP4/MOV, Matroska/WebM, AVI, MPEG-TS)") -> str:
    with open(path, "rb") as handle:
        head = handle.read(512)
    stripped = head.lstrip()
    if stripped.startswith((b"#EXTM3U", b"ffconcat", b"file ")):
        return f"a playlist or concat list is not {what}"
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return f"a text file is not {what}"
    return f"not a recognised {known}"


def _duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def probe_video(path: Path, field: str) -> MediaInfo:
    """Probe an uploaded video or raise the API error that fits."""
    size = path.stat().st_size
    if size == 0:
        raise UnsupportedMedia(f"{field}: the file is empty", fields={field: ["the file is empty"]})
    demuxer = sniff(path)
    if demuxer in IMAGE_DEMUXERS:
        raise UnsupportedMedia(f"{field}: an image is not a video", fields={field: ["an image is not a video"]})
    if demuxer not in VIDEO_DEMUXERS:
        message = _describe_head(path)
        raise UnsupportedMedia(f"{field}: {message}", fields={field: [message]})
    undecodable = UndecodableMedia(
        f"{field}: the video cannot be decoded (damaged or truncated?)",
        fields={field: ["cannot be decoded (damaged or truncated?)"]},
    )
    try:
        with av.open(str(path), format=demuxer, container_options=_container_options(demuxer)) as container:
            if not container.streams.video:
                raise UnsupportedMedia(f"{field}: the file has no video stream", fields={field: ["no video stream"]})
            vstream = container.streams.video[0]
            astream = choose_audio(container.streams.audio)
            duration = _checked_length(field, _duration(container, vstream), "video", undecodable)
            rate = vstream.average_rate or vstream.guessed_rate or vstream.base_rate or Fraction(0)
            check_cost(field, vstream.codec_context.width, vstream.codec_context.height, rate, astream)
            first = _first_frame(container, vstream)
            if first is None:
                raise undecodable
            check_cost(field, first.width, first.height, rate, astream)
            _check_tail(container, vstream, duration, undecodable)
            rotation = int(getattr(first, "rotation", 0) or 0) % 360
            width, height = first.width, first.height
            if rotation in (90, 270):
                width, height = height, width
            sar = vstream.sample_aspect_ratio or Fraction(1)
            start = float(vstream.start_time * vstream.time_base) if vstream.start_time is not None else 0.0
            info = MediaInfo(
                demuxer=demuxer,
                size=size,
                duration=round(duration, 6),
                video_codec=vstream.codec_context.name,
                width=width,
                height=height,
                rotation=rotation,
                fps=round(float(rate), 3),
                sar=round(float(sar), 6) if sar else 1.0,
                pix_fmt=first.format.name,
                audio_codec=astream.codec_context.name if astream else None,
                sample_rate=astream.codec_context.sample_rate if astream else None,
                channels=astream.codec_context.layout.nb_channels if astream else None,
                channel_layout=astream.codec_context.layout.name if astream else "",
                interlaced=bool(getattr(first, "interlaced_frame", False)),
                video_start=start,
                video_config=_config_digest(vstream),
                audio_config=_config_digest(astream) if astream else "",
                audio_track=list(container.streams.audio).index(astream) if astream else 0,
                audio_tracks=len(container.streams.audio),
                colour=from_frame(first),
            )
    except (UnsupportedMedia, UndecodableMedia, InvalidInput):
        raise
    except (av.FFmpegError, ValueError, OverflowError, ZeroDivisionError) as exc:
        logger.info("probe failed field=%s: %s", field, exc)
        raise undecodable from exc
    return info


def _checked_length(field: str, duration: float | None, what: str, undecodable: Exception) -> float:
    """The upload's length, if it has one (else `undecodable`) within VIDEOAPI_MAX_INPUT_SECONDS (else 400)."""
    if duration is None or duration <= 0:
        raise undecodable
    max_seconds = settings.VIDEOAPI_MAX_INPUT_SECONDS
    if duration > max_seconds:
        message = f"the {what} is {duration:.1f} s long; at most {max_seconds:g} s is accepted"
        raise InvalidInput(f"{field}: {message}", fields={field: [message]})
    return duration


def check_cost(field: str, width: int, height: int, rate, astream):
    """Refuse (400, naming the limit) what would cost too much to decode, before FFmpeg ever runs."""
    limits = []
    if width and height and width * height > settings.VIDEOAPI_MAX_INPUT_PIXELS:
        limits.append(f"the frame is {width}x{height} ({width * height} pixels); at most "
                      f"{settings.VIDEOAPI_MAX_INPUT_PIXELS} pixels a frame are accepted (VIDEOAPI_MAX_INPUT_PIXELS)")
    if rate and float(rate) > settings.VIDEOAPI_MAX_INPUT_FPS:
        limits.append(f"the frame rate is {float(rate):g} fps; at most {settings.VIDEOAPI_MAX_INPUT_FPS:g} fps "
                      "is accepted (VIDEOAPI_MAX_INPUT_FPS)")
    channels = astream.codec_context.layout.nb_channels if astream is not None else 0
    if channels > settings.VIDEOAPI_MAX_AUDIO_CHANNELS:
        limits.append(f"the sound has {channels} channels; at most {settings.VIDEOAPI_MAX_AUDIO_CHANNELS} are "
                      "accepted (VIDEOAPI_MAX_AUDIO_CHANNELS)")
    if limits:
        raise InvalidInput(f"{field}: {limits[0]}", fields={field: limits})


def _decodable(stream) -> bool:
    try:
        name = stream.codec_context.name
        av.codec.Codec(name, "r")
    except Exception:  # noqa: BLE001  (no codec context, or no decoder in this FFmpeg)
        return False
    return bool(stream.codec_context.sample_rate) and bool(stream.codec_context.layout.nb_channels)


def choose_audio(streams):
    """The audio stream a render uses: the default-flagged decodable one, else the first decodable, else None.

    Phones and cameras add second tracks (commentary, 5.1 next to stereo)
    and tracks in codecs FFmpeg cannot decode; those never break a render.
    """
    decodable = [s for s in streams if _decodable(s)]
    for stream in decodable:
        if stream.disposition & av.stream.Disposition.default:
            return stream
    return decodable[0] if decodable else None


def _config_digest(stream) -> str:
    context = stream.codec_context
    extradata = context.extradata or b""
    described = f"{context.name}|{context.profile}|{getattr(context, 'level', '')}|".encode()
    return hashlib.sha256(described + extradata).hexdigest()[:16]


def _first_frame(container, vstream):
    """The first picture, decoding as little as possible.

    A decoder holds frames back for reordering (B-frames) and frame
    threading, so asking for the first frame would decode several; instead
    packets go in until a keyframe has, and a flush hands it out at once.
    """
    context = vstream.codec_context
    for packet in container.demux(vstream):
        if not packet.size:
            continue
        frames = context.decode(packet)
        if frames:
            return frames[0]
        if packet.is_keyframe:
            frames = context.decode(None)
            return frames[0] if frames else None
    return None


def _check_tail(container, vstream, duration, error):
    """Read every video packet (no decoding): the last must reach the end.

    A truncated file often opens and starts fine; its packets stop short of
    the duration its header claims. Reading packets costs I/O only.
    """
    container.seek(0)
    last = None
    for packet in container.demux(vstream):
        if packet.pts is not None:
            last = packet.pts if last is None else max(last, packet.pts)
    if last is None:
        raise error
    start = vstream.start_time if vstream.start_time is not None else 0
    reached = float((last - start) * vstream.time_base)
    if reached < duration - max(1.0, 0.1 * duration):
        raise error


@dataclass(frozen=True)
class ImageInfo:
    demuxer: str
    size: int
    width: int
    height: int

    def summary(self) -> dict:
        return asdict(self)


def probe_image(path: Path, field: str) -> ImageInfo:
    size = path.stat().st_size
    demuxer = sniff(path)
    if demuxer not in IMAGE_DEMUXERS:
        raise UnsupportedMedia(f"{field}: must be a PNG, JPEG or WebP image",
                               fields={field: ["must be a PNG, JPEG or WebP image"]})
    _check_image_side(field, *_declared_size(path, field))  # from the header, before a pixel is decoded
    try:
        with av.open(str(path), format=demuxer, container_options=_container_options(demuxer)) as container:
            if not container.streams.video:
                raise UndecodableMedia(f"{field}: the image cannot be decoded", fields={field: ["cannot be decoded"]})
            frame = next(container.decode(video=0), None)
    except av.FFmpegError as exc:
        raise UndecodableMedia(f"{field}: the image cannot be decoded", fields={field: ["cannot be decoded"]}) from exc
    if frame is None:
        raise UndecodableMedia(f"{field}: the image cannot be decoded", fields={field: ["cannot be decoded"]})
    _check_image_side(field, frame.width, frame.height)
    return ImageInfo(demuxer, size, frame.width, frame.height)


def _declared_size(path: Path, field: str) -> tuple[int, int]:
    """The size an image's header declares (Pillow reads the header only), or (0, 0)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except Image.DecompressionBombError:  # Pillow's own guard: far past our limit
        message = f"the image declares over {Image.MAX_IMAGE_PIXELS} pixels; at most {MAX_IMAGE_SIDE} px a side"
        raise InvalidInput(f"{field}: {message}", fields={field: [message]}) from None
    except Exception:  # noqa: BLE001  (unreadable headers are for the decoder to refuse: 422)
        return 0, 0


def _check_image_side(field, width, height):
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE:
        message = f"the image is {width}x{height}; at most {MAX_IMAGE_SIDE} px a side"
        raise InvalidInput(f"{field}: {message}", fields={field: [message]})


@dataclass(frozen=True)
class AudioInfo:
    """A soundtrack: its container, length and the stream a render uses (the fields builders.downmix reads)."""

    demuxer: str
    size: int
    duration: float
    audio_codec: str
    sample_rate: int
    channels: int
    channel_layout: str = ""
    audio_track: int = 0

    def summary(self) -> dict:
        return asdict(self)


def probe_audio(path: Path, field: str) -> AudioInfo:
    """A sound file (or a video's sound), probed as strictly as a video: the container from its first bytes,
    one allowed demuxer, local files only, its length and channels within the limits, a frame decoded."""
    size = path.stat().st_size
    demuxer = sniff(path)
    if demuxer not in AUDIO_DEMUXERS:
        message = _describe_head(path, "a sound file", "sound file (MP3, AAC/M4A, WAV, FLAC, Ogg Vorbis/Opus)")
        raise UnsupportedMedia(f"{field}: {message}", fields={field: [message]})
    undecodable = UndecodableMedia(f"{field}: the sound cannot be decoded (damaged or truncated?)",
                                   fields={field: ["cannot be decoded (damaged or truncated?)"]})
    try:
        with av.open(str(path), format=demuxer, container_options=_container_options(demuxer)) as container:
            astream = choose_audio(container.streams.audio)
            if astream is None:
                raise UnsupportedMedia(f"{field}: the file has no sound", fields={field: ["no sound"]})
            duration = _checked_length(field, _duration(container, astream), "sound", undecodable)
            check_cost(field, 0, 0, None, astream)
            if next(container.decode(astream), None) is None:
                raise undecodable
            context = astream.codec_context
            return AudioInfo(demuxer=demuxer, size=size, duration=round(duration, 6), audio_codec=context.name,
                             sample_rate=context.sample_rate, channels=context.layout.nb_channels,
                             channel_layout=context.layout.name,
                             audio_track=list(container.streams.audio).index(astream))
    except (UnsupportedMedia, UndecodableMedia, InvalidInput):
        raise
    except (av.FFmpegError, ValueError, OverflowError, ZeroDivisionError) as exc:
        logger.info("probe failed field=%s: %s", field, exc)
        raise undecodable from exc


def keyframe_at_or_before(path: Path, info: MediaInfo, target: float) -> float:
    """Time of the last video keyframe at or before `target` (seconds from the start).

    Reads packet headers only (no decoding). Times are relative to the
    video's first timestamp, as FFmpeg's own seeking counts them.
    """
    best = 0.0
    with av.open(str(path), format=info.demuxer, container_options=_container_options(info.demuxer)) as container:
        stream = container.streams.video[0]
        origin = container.start_time / av.time_base if container.start_time is not None else 0.0
        for packet in container.demux(stream):
            if packet.pts is None or not packet.is_keyframe:
                continue
            at = float(packet.pts * stream.time_base) - origin
            if at <= target + 1e-6:
                best = max(best, at)
            elif at > target + 10:
                break
    return max(0.0, round(best, 6))
