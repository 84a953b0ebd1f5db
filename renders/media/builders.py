"""Builders of FFmpeg argument lists and filter graphs.

Nothing here runs a process or touches the disk: every function takes plain
values (probe results, plan values, the output spec) and returns strings or
lists, so it is unit-tested without FFmpeg. File names are the relative
names the service chose inside the workspace. The one thing read from
outside the arguments is the host's per-run thread budget
(VIDEOAPI_FFMPEG_THREADS, `threads()`): a property of the machine that runs
the command, not of the render, so it is not part of a plan.
"""

import re
from collections.abc import Sequence

from django.conf import settings

from renders.media import colour, loudness
from renders.media.probe import MediaInfo, input_options
from renders.media.spec import AUDIO_RATE, VP9_CRF_OFFSET, OutputSpec


def seconds(value: float) -> str:
    """A time for FFmpeg: fixed point, no exponent, trailing zeros dropped."""
    text = f"{max(0.0, value):.6f}".rstrip("0").rstrip(".")
    return text or "0"


def input_args(name: str, info: MediaInfo, *, start: float | None = None, duration: float | None = None,
               draft: bool = False) -> list[str]:
    """One locked-down input: forced demuxer, local files only, optional seek.

    `draft` decodes the video without its in-loop deblocking filter: faster on H.264/HEVC, invisible once
    scaled down to a preview (docs/BENCHMARKS.md, "The preview: why not 0.30"), never used for a house-format
    output.
    """
    args = []
    if start:
        args += ["-ss", seconds(start)]
    if duration is not None:
        args += ["-t", seconds(duration)]
    if draft:
        args += ["-skip_loop_filter:v", "all"]
    return args + threads() + input_options(info.demuxer) + ["-i", name]


def threads(option: str = "-threads") -> list[str]:
    """`option N` with the configured per-run thread budget (VIDEOAPI_FFMPEG_THREADS); nothing when 0 (FFmpeg's own)."""
    count = settings.VIDEOAPI_FFMPEG_THREADS
    return [option, str(count)] if count else []


def whole_frames(duration: float, fps: int) -> float:
    """`duration` rounded to a whole number of frames (at least one).

    Video and audio are both cut to this length, so every segment's picture
    and sound end together exactly and joins never accumulate drift.
    """
    return max(1, round(duration * fps)) / fps


def fit_steps(info: MediaInfo, spec: OutputSpec) -> list[str]:
    """Source to canvas size in SDR BT.709 by the spec's fit (contain, cover; blur's foreground).

    Colour conversion (colour.py) follows the scaling (and cropping), so
    HDR's linear-light float path runs on canvas-sized frames.
    """
    steps = ["bwdif=mode=send_frame:deint=interlaced"] if info.interlaced else []
    if abs(info.sar - 1.0) > 0.01:
        steps.append("scale=trunc(iw*sar/2)*2:ih,setsar=1")
    w, h = spec.width, spec.height
    options = colour.scale_options(info.colour)
    if spec.fit == "cover":
        steps += [f"scale={w}:{h}:force_original_aspect_ratio=increase:force_divisible_by=2{options}",
                  f"crop={w}:{h}", *colour.to_sdr(info.colour)]
    else:
        steps += [f"scale={w}:{h}:force_original_aspect_ratio=decrease:force_divisible_by=2{options}",
                  *colour.to_sdr(info.colour)]
        if spec.fit == "contain":
            steps.append(f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:color=black")
    return steps


def blur_background(w: int, h: int) -> str:
    """The picture enlarged to cover `w` x `h` and blurred (at a quarter size: cheap), for fit=blur."""
    qw, qh = max(2, w // 8 * 2), max(2, h // 8 * 2)
    return (f"scale={qw}:{qh}:force_original_aspect_ratio=increase,crop={qw}:{qh},"
            f"gblur=sigma={max(2, min(qw, qh) // 12)},scale={w}:{h},eq=brightness=-0.06")


def house_video_tail(spec: OutputSpec, duration: float) -> str:
    """Square pixels, constant frame rate, exactly `duration`, house colour tags.

    A couple of cloned frames at the end make sure a source a hair shorter
    than `duration` still fills it; `trim` then cuts to exactly `duration`.
    """
    return ",".join([
        "setsar=1",
        f"fps={spec.fps}:start_time=0",
        "tpad=stop_mode=clone:stop=2",
        f"trim=end={seconds(duration)}",
        "setpts=PTS-STARTPTS",
        colour.HOUSE_TAGS,
    ])


def house_video_chains(index: int, info: MediaInfo, spec: OutputSpec, duration: float, *, pre: str = "",
                       post: str = "", out: str = "v") -> list[str]:
    """Input `index`'s picture in the house format at the spec's canvas, fit and frame rate, as [out]."""
    source = f"[{index}:v:0]" + (f"{pre}," if pre else "")
    tail = ",".join(p for p in (house_video_tail(spec, duration), post) if p)
    if spec.fit != "blur":
        return [f"{source}{','.join(fit_steps(info, spec))},{tail}[{out}]"]
    fg, raw, bg = f"fg{index}_{out}", f"bgsrc{index}_{out}", f"bg{index}_{out}"
    return [
        f"{source}{','.join(fit_steps(info, spec))},split[{fg}][{raw}]",
        f"[{raw}]{blur_background(spec.width, spec.height)}[{bg}]",
        f"[{bg}][{fg}]overlay=(W-w)/2:(H-h)/2,{tail}[{out}]",
    ]


def downmix(info: MediaInfo) -> list[str]:
    """Channels in an order FFmpeg does not know ("9 channels") cannot be rematrixed to stereo:
    fold them with `pan`, odd channels left and even ones right, each side normalised."""
    channels = info.channels or 0
    if channels <= 2 or not info.channel_layout.endswith("channels"):
        return []
    left = "+".join(f"c{i}" for i in range(0, channels, 2))
    right = "+".join(f"c{i}" for i in range(1, channels, 2))
    return [f"pan=stereo|FL<{left}|FR<{right}"]


def house_audio_chain(duration: float, info: MediaInfo) -> str:
    """Downmix if need be, resample to 48 kHz stereo, fill gaps, pad or cut to exactly `duration`."""
    return ",".join(
        [
            *downmix(info),
            f"aresample={AUDIO_RATE}:async=1:first_pts=0",
            f"aformat=sample_fmts=fltp:sample_rates={AUDIO_RATE}:channel_layouts=stereo",
            "apad",
            f"atrim=end={seconds(duration)}",
            "asetpts=PTS-STARTPTS",
        ]
    )


def silence(duration: float) -> str:
    return (f"anullsrc=channel_layout=stereo:sample_rate={AUDIO_RATE}:duration={seconds(duration)},"
            "aformat=sample_fmts=fltp")


def normalize_graph(
    index: int,
    info: MediaInfo,
    spec: OutputSpec,
    duration: float,
    *,
    video_pre: str = "",
    video_post: str = "",
    audio_pre: str = "",
    audio_post: str = "",
    out_v: str = "v",
    out_a: str = "a",
) -> list[str]:
    """Filter chains taking input `index` to house format, labelled [out_v]/[out_a].

    `*_pre` filters run on the source (before scaling: e.g. speed changes),
    `*_post` on the canvas (after scaling: e.g. text, fades).
    """
    duration = whole_frames(duration, spec.fps)
    chains = house_video_chains(index, info, spec, duration, pre=video_pre, post=video_post, out=out_v)
    chains.append(house_audio(index, info, duration, pre=audio_pre, post=audio_post, out=out_a))
    return chains


def house_audio(index: int, info: MediaInfo, duration: float, *, pre: str = "", post: str = "", out: str = "a") -> str:
    """Input `index`'s sound in the house format, exactly `duration` long (silence if it has none), as [out].

    `duration` is already whole frames (normalize_graph's). The loudness
    measure runs this same chain (with its `post` ending in the measuring
    filter), so it measures the sound the output will have.
    """
    if info.has_audio:
        aparts = [p for p in (pre, house_audio_chain(duration, info), post) if p]
        return f"[{index}:a:{info.audio_track}]{','.join(aparts)}[{out}]"
    aparts = [p for p in (silence(duration), post) if p]
    return f"{','.join(aparts)}[{out}]"


def measure_args(inputs: list[str], graph: str) -> list[str]:
    """The loudness measure: `graph`'s [a] (ending in loudness.measure_filter) into the null muxer, at the
    log level at which the meter prints its summary."""
    return [*loudness.MEASURE_LOGLEVEL, *inputs, *graph_args(graph), "-map", "[a]", "-f", "null", "-"]


def sound_args(inputs: list[str], graph: str, spec: OutputSpec, output: str) -> list[str]:
    """The limited sound checked: `graph`'s [a] encoded as the output encodes it (AAC or Opus), sound only,
    in MP4 (which holds either)."""
    return [*inputs, *graph_args(graph), "-map", "[a]", *audio_encoder_args(spec), *threads(), "-f", "mp4", output]


def measure_sound_args(name: str) -> list[str]:
    """The loudness measure of a sound_args output in the workspace (the meter alone: it is encoded already)."""
    return [*loudness.MEASURE_LOGLEVEL, *threads(), *input_options("mov"), "-i", name, "-map", "0:a:0",
            "-af", loudness.METER, "-f", "null", "-"]


def audio_encoder_args(spec: OutputSpec) -> list[str]:
    """The output's sound encoder: AAC (mp4) or Opus (webm) at the spec's bitrate, 48 kHz stereo."""
    codec = {"aac": "aac", "opus": "libopus"}[spec.output.audio_codec]
    return ["-c:a", codec, "-b:a", spec.audio_bitrate, "-ar", str(AUDIO_RATE), "-ac", "2"]


def house_output_args(spec: OutputSpec, output: str, *, video: str = "[v]", audio: str = "[a]") -> list[str]:
    """Encoder settings of the spec's format; mp4's are the same everywhere, so outputs join by copy.

    No colour options: the graph's last filter (colour.HOUSE_TAGS) tags the
    frames and x264 writes what the frames carry. With this FFmpeg,
    -color_primaries/-color_trc are ignored, and -colorspace/-color_range
    only ask the graph to convert into BT.709 limited, which it already is.
    A gif maps no sound: its graph ends [audio] in output_sound_chain's sink.
    """
    if spec.format == "webm":
        return [
            "-map", video, "-map", audio,
            "-c:v", "libvpx-vp9", *VP9_SPEED, "-crf", str(vp9_crf(spec)), "-b:v", "0",
            "-pix_fmt", "yuv420p", "-r", str(spec.fps), "-fps_mode", "cfr", "-g", str(spec.fps * 2),
            *audio_encoder_args(spec),
            "-map_metadata", "-1", "-map_chapters", "-1", "-cues_to_front", "1", *threads(),
            "-f", "webm", output,
        ]  # fmt: skip
    if spec.format == "gif":
        return ["-map", video, "-c:v", "gif", "-r", str(spec.fps), "-fps_mode", "cfr", "-loop", "0",
                "-map_metadata", "-1", "-map_chapters", "-1", *threads(), "-f", "gif", output]
    return [
        "-map", video, "-map", audio,
        "-c:v", "libx264", "-preset", spec.preset, "-crf", str(spec.crf),
        "-profile:v", "high", "-pix_fmt", "yuv420p",
        "-r", str(spec.fps), "-fps_mode", "cfr", "-video_track_timescale", str(spec.fps * 512),
        "-g", str(spec.fps * 2),
        *audio_encoder_args(spec),
        "-map_metadata", "-1", "-map_chapters", "-1",
        "-movflags", "+faststart", *threads(),
        "-f", "mp4", output,
    ]  # fmt: skip


# libvpx-vp9 for short renders: realtime at speed 8, rows in parallel (docs/BENCHMARKS.md, "Output formats")
VP9_SPEED = ["-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1"]


def vp9_crf(spec: OutputSpec) -> int:
    """VP9's CRF for the spec's quality: its x264 CRF shifted onto VP9's scale (0-63)."""
    return max(0, min(63, spec.crf + VP9_CRF_OFFSET))


# A gif's palette: one per frame, made from that frame (stats_mode=single, paletteuse new=1). One palette for
# the whole output would hold every frame in memory until the last is seen (docs/BENCHMARKS.md, "Output formats").
GIF_PALETTE = "palettegen=stats_mode=single"
GIF_DITHER = "paletteuse=new=1:dither=sierra2_4a"


def output_picture_chain(spec: OutputSpec, in_label: str, out_label: str) -> list[str]:
    """Chains taking a graph's finished picture [in_label] to what the format's encoder takes, [out_label]:
    nothing for mp4 and webm (a `null` when the labels differ), the palette chains for gif."""
    if spec.format != "gif":
        return [] if in_label == out_label else [f"[{in_label}]null[{out_label}]"]
    if in_label == out_label:
        raise ValueError("a gif's palette chains need an out_label other than their in_label")
    shown, sampled, palette = (f"{out_label}_{part}" for part in ("shown", "sampled", "palette"))
    return [f"[{in_label}]split[{shown}][{sampled}]",
            f"[{sampled}]{GIF_PALETTE}[{palette}]",
            f"[{shown}][{palette}]{GIF_DITHER}[{out_label}]"]


def output_sound_chain(spec: OutputSpec, label: str = "a") -> list[str]:
    """What ends a graph's finished sound [label] for a format without sound (gif): a sink; else nothing."""
    return [] if spec.has_sound else [f"[{label}]anullsink"]


def output_ending(spec: OutputSpec, video: str = "v", audio: str = "a") -> tuple[list[str], str]:
    """The chains ending a graph whose finished picture is [video] and sound [audio] in the spec's format, and
    the picture label house_output_args maps: ([], "[video]") for mp4 and webm."""
    if spec.format != "gif":
        return [], f"[{video}]"
    return output_picture_chain(spec, video, "gif") + output_sound_chain(spec, audio), "[gif]"


def graph_args(script_name: str) -> list[str]:
    """Read the filter graph from a file in the workspace (no quoting on the command line)."""
    return [*threads("-filter_complex_threads"), "-/filter_complex", script_name]


# ---- trim ---------------------------------------------------------------------


def trim_accurate_args(src: str, info: MediaInfo, spec: OutputSpec, start: float, length: float, graph: str,
                       output: str, more_inputs: Sequence[str] = (), video: str = "[v]") -> list[str]:
    """Frame-accurate trim into the spec's format, reading `graph` (normalize_graph's chains for `length`, its
    picture in `video`); `more_inputs` (the finishing's) follow the source."""
    return (input_args(src, info, start=start, duration=length) + list(more_inputs) + graph_args(graph)
            + house_output_args(spec, output, video=video))


FAST_VIDEO_CODECS = {"h264", "hevc", "mpeg4", "vp9", "av1"}
FAST_AUDIO_CODECS = {"aac", "mp3", "opus", "ac3", "eac3", "alac", "flac"}


def fast_trim_supported(info: MediaInfo) -> bool:
    return info.video_codec in FAST_VIDEO_CODECS and (not info.has_audio or info.audio_codec in FAST_AUDIO_CODECS)


def trim_fast_args(src: str, info: MediaInfo, keyframe: float, end: float, output: str) -> list[str]:
    """Stream copy from the keyframe at `keyframe` (at or before the asked start) to `end`."""
    maps = ["-map", "0:v:0"] + (["-map", f"0:a:{info.audio_track}"] if info.has_audio else [])
    return (
        input_args(src, info, start=keyframe if keyframe > 0 else None)
        + ["-t", seconds(end - keyframe)]
        + maps
        + ["-c", "copy", "-avoid_negative_ts", "make_zero", "-map_metadata", "-1",
           "-movflags", "+faststart", "-f", "mp4", output]
    )  # fmt: skip


def preview_mp4_args(src: str, info: MediaInfo, start: float, length: float, height: int, crf: int,
                     output: str) -> list[str]:
    """A small, fast-encoded clip at `height` (aspect kept)."""
    vf = ",".join([f"scale=-2:{height}{colour.scale_options(info.colour)}", *colour.to_sdr(info.colour),
                   colour.HOUSE_TAGS])
    fold = downmix(info)
    audio = (
        ["-map", f"0:a:{info.audio_track}", *(["-af", ",".join(fold)] if fold else []),
         "-c:a", "aac", "-b:a", "64k", "-ac", "2", "-ar", str(AUDIO_RATE)] if info.has_audio else []
    )
    return (
        input_args(src, info, start=start, duration=length, draft=True)
        + ["-map", "0:v:0", "-vf", vf, "-c:v", "libx264", "-preset", "ultrafast", "-tune", "fastdecode",
           "-crf", str(crf)]
        + audio
        + [*threads("-filter_threads"), *threads(),
           "-map_metadata", "-1", "-movflags", "+faststart", "-f", "mp4", output]
    )  # fmt: skip


def preview_jpg_args(src: str, info: MediaInfo, start: float, height: int, output: str) -> list[str]:
    """The frame at `start`, scaled to `height`, as a JFIF still: BT.601 full-range YCbCr (colour.STILL)."""
    return input_args(src, info, start=start) + [
        "-map", "0:v:0", "-frames:v", "1",
        "-vf", ",".join([f"scale=-2:{height}:flags=bicubic{colour.scale_options(info.colour, colour.STILL)}",
                         *colour.to_sdr(info.colour, colour.STILL)]),
        "-q:v", "3", "-update", "1", "-f", "image2", "-c:v", "mjpeg", output,
    ]  # fmt: skip


# ---- text and effects for the templates -------------------------------------------


def dim(start: float, end: float, opacity: float = 0.5) -> str:
    return f"drawbox=x=0:y=0:w=iw:h=ih:color=black@{opacity}:t=fill:enable='between(t,{seconds(start)},{seconds(end)})'"


def speed_filters(speed: float) -> tuple[str, str]:
    """(video, audio) filters changing tempo by `speed`, audio pitch kept."""
    if abs(speed - 1.0) < 1e-9:
        return "", ""
    factors = []
    remaining = speed
    while remaining < 0.5:  # atempo takes 0.5..100 per instance
        factors.append(0.5)
        remaining /= 0.5
    factors.append(remaining)
    audio = ",".join(f"atempo={factor:.6g}" for factor in factors)
    return f"setpts=PTS/{speed:.6g}", audio


def fade_out(duration: float, length: float, frame: float) -> tuple[str, str]:
    """(video, audio) filters fading to black and silence over the last `length` s.

    The picture fade ends on the last frame, so the video closes on black.
    """
    if length <= 0:
        return "", ""
    video_start = seconds(max(0.0, duration - 1.5 * frame - length))
    audio_start = seconds(max(0.0, duration - length))
    return (f"fade=t=out:st={video_start}:d={seconds(length)}",
            f"afade=t=out:st={audio_start}:d={seconds(length)}")


def still_chain(index: int, fps: int, start: float, end: float, fade: float, out: str, size: int | None = None) -> str:
    """A still image (avatar, text block) as a looping RGBA stream that fades in and out over its window.

    `size` scales it to fit that many pixels (avatars); text blocks are drawn at their size.
    """
    scale = f"scale={size}:{size}:force_original_aspect_ratio=decrease," if size else ""
    return (
        f"[{index}:v:0]{scale}format=rgba,"
        f"loop=loop=-1:size=1:start=0,setpts=N/({fps}*TB),"
        f"fade=t=in:st={seconds(start)}:d={seconds(fade)}:alpha=1,"
        f"fade=t=out:st={seconds(end - fade)}:d={seconds(fade)}:alpha=1,"
        f"trim=end={seconds(end)}[{out}]"
    )


def overlay(base: str, top: str, x: int, y: int, out: str) -> str:
    return f"[{base}][{top}]overlay=x={x}:y={y}:eof_action=pass:format=auto[{out}]"


def image_input_args(name: str, demuxer: str) -> list[str]:
    return input_options(demuxer) + ["-i", name]


# ---- concatenation ----------------------------------------------------------------


def concat_list(names: list[str]) -> str:
    """An ffconcat list of workspace files (service-chosen names, no quoting issues)."""
    for name in names:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"unsafe name in concat list: {name!r}")
    return "ffconcat version 1.0\n" + "".join(f"file {name}\n" for name in names)


def concat_copy_args(list_name: str, demuxer: str, spec: OutputSpec, output: str, audio_track: int = 0, *,
                     sound: tuple[list[str], str] | None = None) -> list[str]:
    """Join same-layout files: video by stream copy, audio decoded and re-encoded.

    Copying AAC too would keep every segment's encoder priming (1024
    samples) and end padding, so sound would drift ~21 ms behind picture at
    each join; decoding drops them, and re-encoding sound costs little next
    to the video it does not touch. `sound` = (input args, graph): the sound
    comes from that graph's [a] instead (concat_audio_graph over inputs 1..n,
    each finished on its own, e.g. for loudness); the picture is still copied.
    """
    if sound is None:
        more_inputs, maps = [], ["-map", "0:v:0", "-map", f"0:a:{audio_track}", "-c:v", "copy",
                                 "-af", "aresample=async=1:first_pts=0"]  # a short segment's gap stays a gap
    else:
        inputs, graph = sound
        more_inputs, maps = [*inputs, *graph_args(graph)], ["-map", "0:v:0", "-map", "[a]", "-c:v", "copy"]
    return [
        "-protocol_whitelist", "file", "-format_whitelist", f"concat,{demuxer}", "-f", "concat", "-safe", "1",
        "-i", list_name, *more_inputs, *maps,
        "-c:a", "aac", "-b:a", spec.audio_bitrate, "-ar", str(AUDIO_RATE), "-ac", "2",
        "-map_metadata", "-1", "-movflags", "+faststart", "-f", "mp4", output,
    ]  # fmt: skip


def concat_audio_graph(infos: list[MediaInfo], spec: OutputSpec, posts: list[str], first_index: int = 0,
                       out: str = "a") -> list[str]:
    """Each input's sound in the house format for its whole-frame length, `posts[k]` after it, joined as [out]."""
    chains = [house_audio(first_index + k, info, whole_frames(info.duration, spec.fps), post=posts[k], out=f"a{k}")
              for k, info in enumerate(infos)]
    chains.append("".join(f"[a{k}]" for k in range(len(infos))) + f"concat=n={len(infos)}:v=0:a=1[{out}]")
    return chains


def concat_graph(infos: list[MediaInfo], spec: OutputSpec, transition: float = 0.0,
                 audio_posts: list[str] | None = None, out_v: str = "v", out_a: str = "a") -> tuple[list[str], float]:
    """One filter graph normalising every input and joining them.

    With `transition` > 0 each join is a crossfade of picture (xfade) and
    sound (acrossfade) of that length. `audio_posts` (one per input) finish
    each input's sound before the join (loudness). The result is [out_v] and
    [out_a]. Returns (chains, output duration).
    """
    chains, lengths = [], []
    for index, info in enumerate(infos):
        length = whole_frames(info.duration, spec.fps)
        lengths.append(length)
        chains += normalize_graph(index, info, spec, length, out_v=f"v{index}", out_a=f"a{index}",
                                  audio_post=audio_posts[index] if audio_posts else "")
    count = len(infos)
    if transition <= 0:
        pairs = "".join(f"[v{i}][a{i}]" for i in range(count))
        chains.append(f"{pairs}concat=n={count}:v=1:a=1[{out_v}][{out_a}]")
        return chains, sum(lengths)
    fade = whole_frames(transition, spec.fps)
    video, audio, offset = "v0", "a0", 0.0
    for index in range(1, count):
        offset += lengths[index - 1] - fade
        last = index == count - 1
        vout, aout = (out_v, out_a) if last else (f"xv{index}", f"xa{index}")
        chains.append(f"[{video}][v{index}]xfade=transition=fade:duration={seconds(fade)}:offset={seconds(offset)}[{vout}]")
        chains.append(f"[{audio}][a{index}]acrossfade=d={seconds(fade)}:c1=tri:c2=tri[{aout}]")
        video, audio = vout, aout
    return chains, sum(lengths) - fade * (count - 1)


# ---- finishing: logo, captions, music ---------------------------------------------------


def logo_chains(index: int, size: tuple[int, int], x: int, y: int, opacity: float, base: str, out: str) -> list[str]:
    """The logo (input `index`, one still) scaled to `size`, at `opacity`, over [base] for the whole output."""
    fade = f",colorchannelmixer=aa={opacity:.4g}" if opacity < 1 else ""
    return [f"[{index}:v:0]format=rgba,scale={size[0]}:{size[1]}:flags=lanczos{fade}[logo]",
            f"[{base}][logo]overlay=x={x}:y={y}:format=auto[{out}]"]


CAPTION_TICK = 25  # the caption list's time unit, 1/25 s: every still image demuxer's time base divides it


def captions_timeline(cues: list[tuple[int, int, str]], names: list[str], blank: str) -> str:
    """An ffconcat list showing `names[k]` from frame cues[k][0] to cues[k][1] and `blank` between cues.

    Each entry's duration is its number of output frames in ticks of 1/CAPTION_TICK s: exact in any still
    demuxer's time base, so no cue drifts (captions_chains scales ticks back to frames)."""
    entries, at = [], 0
    for (first, end, _text), name in zip(cues, names):
        if first > at:
            entries.append((blank, first - at))
        entries.append((name, end - first))
        at = end
    entries.append((blank, None))  # the last cue ends: nothing after it
    text = "ffconcat version 1.0\n"
    for name, frames in entries:
        text += f"file {name}\n" + (f"duration {seconds(frames / CAPTION_TICK)}\n" if frames else "")
    return text


def captions_input_args(list_name: str) -> list[str]:
    return ["-protocol_whitelist", "file", "-format_whitelist", "concat,png_pipe", "-f", "concat", "-safe", "1",
            "-i", list_name]


def captions_chains(index: int, fps: int, x: int, y: int, base: str, out: str, moved=()) -> list[str]:
    """The caption stills (input `index`, captions_timeline's list) over [base]: one still per cue, each held
    by overlay until the next one arrives (a blank between cues), so 2,000 cues are one input, not 2,000.
    At `y`, except within the windows `moved` ((start, end, y), ...): there at theirs (evaluated per frame)."""
    place = str(y)
    for start, end, other in reversed(moved):
        place = f"if(between(t,{seconds(start)},{seconds(end)}),{other},{place})"
    if moved:
        place = f"'{place}'"  # quoted: its commas are the expression's, not the graph's
    per_frame = ":eval=frame" if moved else ""
    return [f"[{index}:v:0]settb=1/{CAPTION_TICK * fps},setpts=PTS*{CAPTION_TICK}/{fps},format=rgba[captions]",
            f"[{base}][captions]overlay=x={x}:y={place}{per_frame}:eof_action=pass:format=auto[{out}]"]


MUSIC_FADE = 1.0  # seconds of fade-out at the end
# Ducking: the soundtrack compressed by the video's own sound (RMS), from 40 dB below full scale, hard
# (ratio 20): speech at -20 dBFS takes the soundtrack down about 15 dB; it comes back within 0.3 s of a pause.
DUCKING = "sidechaincompress=threshold=0.01:ratio=20:attack=5:release=300"


def music_input_args(name: str, info, duration: float) -> list[str]:
    """The soundtrack, read in a loop (`-stream_loop -1`) when it is shorter than the output's `duration`."""
    return (["-stream_loop", "-1"] if info.duration < duration else []) + input_args(name, info)


def music_chains(index: int, info, duration: float, volume: float, ducking: bool, sound: str, out: str) -> list[str]:
    """The soundtrack (input `index`) cut to `duration` with a fade-out, at `volume` dB, mixed under [sound]
    (without lowering it: amix's normalize off), ducked by [sound] when `ducking`."""
    fade = min(MUSIC_FADE, duration)
    chains = [f"[{index}:a:{info.audio_track}]"
              + ",".join([*downmix(info), f"aresample={AUDIO_RATE}:async=1:first_pts=0",
                          f"aformat=sample_fmts=fltp:sample_rates={AUDIO_RATE}:channel_layouts=stereo", "apad",
                          f"atrim=end={seconds(duration)}", "asetpts=PTS-STARTPTS", f"volume={volume:g}dB",
                          f"afade=t=out:st={seconds(duration - fade)}:d={seconds(fade)}"]) + "[music]"]
    mix = "amix=inputs=2:duration=first:dropout_transition=0:normalize=0"
    if ducking:
        chains += [f"[{sound}]asplit=2[speech][key]", f"[music][key]{DUCKING}[ducked]",
                   f"[speech][ducked]{mix}[{out}]"]
    else:
        chains.append(f"[{sound}][music]{mix}[{out}]")
    return chains
