"""What each kind of plan renders: a plan and a workspace in, a `Result` out.

An operation is a generator. It writes what FFmpeg needs into the workspace
(filter graphs, text images), builds each command with the pure builders and
yields it as an `FFmpegCommand`; whoever drives it (`perform()`, given a runner that
records and checks each run) sends back the run's `FFmpegResult`, and the
operation returns the `Result`. So an operation never starts a process, never
touches the RenderLog and never sees a request: the same plan runs in a
request or, later, in another process.
"""

import functools
import itertools
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path

from renders.media import builders, captions, loudness
from renders.media.probe import keyframe_at_or_before
from renders.media.text import layout, render_block, safe_margin
from renders.plans import Finishing, JoinPlan, PreviewPlan, TemplatePlan, TrimPlan


@dataclass(frozen=True)
class FFmpegCommand:
    """One FFmpeg command (run with the workspace as its working directory).

    `measures`: the run only measures (it writes no output: at most a
    check file in the workspace), so it says nothing about how far the
    render has got.
    """

    args: list[str]
    measures: bool = False


@dataclass
class Result:
    """The rendered file and how to hand it over."""

    path: Path
    filename: str  # final download name, extension included
    content_type: str = "video/mp4"
    headers: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)  # recorded on the RenderLog


Steps = Generator[FFmpegCommand, object, Result]


def output_file(workspace, spec):
    """The workspace file a render in `spec`'s format writes."""
    return workspace.new_path("output", f".{spec.output.extension}")


def write_graph(workspace, chains) -> str:
    """Write a filter graph into the workspace (FFmpeg reads it from there); returns its name."""
    path = workspace.new_path("graph", ".txt")
    path.write_text(";\n".join(chains), encoding="utf-8")
    return path.name


# ---- loudness (media/loudness.py) ---------------------------------------------------------


def normalised(workspace, info, inputs: list[str], duration: float, spec, *, pre: str = "", post: str = "",
               music=None):
    """One input's sound brought to `spec.loudness`: measure it as the house audio chain makes it (input 0 of
    `inputs`, `duration` of whole frames, the render's own `pre`/`post` audio filters), where one gain would
    push its peaks past the ceiling measure it again through the limiter (correcting the gain before it), then
    return the `post` filters to render it with (the loudness filters added), the filters for after the
    soundtrack's mix, and what the RenderLog records. With `music` (a plans.Music) the output's sound is the
    input's mixed with the soundtrack: that mix is what is measured, and the loudness filters go after it."""
    target = spec.loudness
    if music is None and not info.has_audio:
        return post, "", loudness.summary(None, target)
    if music is not None:
        track = music.audio.info
        inputs = inputs + builders.music_input_args(music.audio.name, track, duration)

    def graph(filters: str) -> str:
        if music is None:
            chains = [builders.house_audio(0, info, duration, pre=pre, post=",".join(p for p in (post, filters) if p))]
        else:
            chains = [builders.house_audio(0, info, duration, pre=pre, post=post, out="pa"),
                      *builders.music_chains(1, track, duration, music.volume, music.ducking, "pa", "mix"),
                      f"[mix]{filters}[a]"]
        return write_graph(workspace, chains)

    filters, summary = yield from leveled(workspace, inputs, graph, spec)
    if music is None:
        return ",".join(p for p in (post, filters) if p), "", summary
    return post, filters, summary


def leveled(workspace, inputs: list[str], graph: Callable, spec):
    """The filters bringing a render's sound to `spec.loudness`, and what the RenderLog records of it.
    `graph(filters)` writes the graph (over `inputs`) whose [a] is the output's sound with `filters` after it.
    The sound is measured; where one gain would push its peaks past the ceiling, it is limited, encoded and
    measured again, correcting the gain before the limiter (media/loudness.py)."""
    target = spec.loudness
    meter = loudness.measure_filter(loudness.codec_cutoff(spec.audio_bitrate, codec=spec.output.audio_codec))
    result = yield FFmpegCommand(builders.measure_args(inputs, graph(meter)), measures=True)
    measured = loudness.parse_measurement(result.stderr_tail)
    tries, chosen = [], None
    if loudness.mode(measured, target) == "gain+limiter":  # the limited sound encoded and measured, corrected
        setting = (loudness.gain(measured, target), loudness.LIMIT)
        encoded = workspace.new_path("limited", ".m4a")  # each try overwrites it (FFmpeg runs with -y)
        while setting is not None and len(tries) < loudness.MAX_TRIES:
            yield FFmpegCommand(builders.sound_args(inputs, graph(loudness.limited(*setting)), spec, encoded.name),
                                measures=True)
            result = yield FFmpegCommand(builders.measure_sound_args(encoded.name), measures=True)
            tries.append(loudness.Try(*setting, loudness.parse_measurement(result.stderr_tail)))
            setting = loudness.next_try(measured, tries, target)
        chosen = loudness.best(tries, target)
    return loudness.apply_filter(measured, target, chosen), loudness.summary(measured, target, tries, chosen)


# ---- finishing: logo, captions, music (API.md "Finishing") ---------------------------------------


@dataclass
class Finish:
    """What the finishing adds to a render's last command: inputs after the render's own, and chains taking
    the render's picture [video] and sound [audio] to [v] and [a]. Without finishing both labels are v and a
    and nothing is added: the command is exactly the one without it."""

    video: str = "v"
    audio: str = "a"
    inputs: list = field(default_factory=list)
    chains: list = field(default_factory=list)
    details: dict = field(default_factory=dict)


def finish_labels(finishing: Finishing) -> tuple[str, str]:
    """The labels a render ends its picture and sound in, for the finishing to take them to [v] and [a]."""
    return "pv" if finishing.picture else "v", "pa" if finishing.music else "a"


@dataclass(frozen=True)
class Drawn:
    """Something the render draws on the picture (a template's text block, its avatar, the logo): its box and
    the time it shows. Captions keep clear of it."""

    x: int
    y: int
    width: int
    height: int
    start: float
    end: float

    def overlaps(self, x: int, y: int, width: int, height: int) -> bool:
        return x < self.x + self.width and self.x < x + width and y < self.y + self.height and self.y < y + height


@dataclass(frozen=True)
class Overlay:
    """A picture laid over the whole output: its input's arguments, and its chains as a function of
    (input index, base=[label under it], out=[label it makes])."""

    args: list
    chains: Callable


def apply_finishing(finishing: Finishing, workspace, spec, length: float, first_index: int,
                    after_mix: str = "", drawn: tuple = ()) -> Finish:
    """The finishing of an output `length` s long (whole frames) whose own inputs number `first_index`;
    `after_mix`: audio filters for the mix of the sound and the soundtrack (the loudness gain); `drawn`: what
    the render itself draws on the picture (Drawn), which captions keep clear of."""
    done = Finish(*finish_labels(finishing))
    overlays = []  # in drawing order: the logo, then the captions over it
    if finishing.logo:
        overlay, done.details["logo"] = logo_overlay(finishing.logo, spec)
        overlays.append(overlay)
        drawn = (*drawn, Drawn(*done.details["logo"]["box"], 0.0, length))
    if finishing.captions:
        cues, dropped = captions.fit(finishing.captions.cues, length, spec.fps)
        done.details["captions"] = {"format": finishing.captions.format, "cues": len(cues), "dropped": dropped}
        if cues:
            overlay, done.details["captions"]["moved"] = captions_overlay(workspace, cues, spec, length, drawn)
            overlays.append(overlay)
    index, base = first_index, done.video
    for number, overlay in enumerate(overlays):
        out = "v" if number == len(overlays) - 1 else f"fv{number}"
        done.inputs += overlay.args
        done.chains += overlay.chains(index, base=base, out=out)
        index, base = index + 1, out
    if finishing.picture and not overlays:
        done.chains.append(f"[{base}]null[v]")  # every cue was past the end: nothing to draw
    if finishing.music:
        music, info = finishing.music, finishing.music.audio.info
        done.inputs += builders.music_input_args(music.audio.name, info, length)
        mixed = "mix" if after_mix else "a"
        done.chains += builders.music_chains(index, info, length, music.volume, music.ducking, done.audio, mixed)
        if after_mix:
            done.chains.append(f"[{mixed}]{after_mix}[a]")
        done.details["music"] = {"volume_db": music.volume, "ducking": music.ducking,
                                 "looped": info.duration < length,
                                 "duration": info.duration, "fade_out": min(builders.MUSIC_FADE, length)}
    return done


def logo_overlay(logo, spec) -> tuple[Overlay, dict]:
    """The logo at its share of the canvas width (aspect kept, at most the safe area's height), in its corner
    inside the safe margin; and what the RenderLog records of it."""
    info, margin = logo.image.info, safe_margin(spec.width, spec.height)
    width = max(2, round(logo.size * spec.width))
    height = max(2, round(width * info.height / info.width))
    if height > spec.height - 2 * margin:  # a tall logo on a wide canvas
        height = spec.height - 2 * margin
        width = max(2, round(height * info.width / info.height))
    x = margin if logo.position.endswith("left") else spec.width - margin - width
    y = margin if logo.position.startswith("top") else spec.height - margin - height
    chains = functools.partial(builders.logo_chains, size=(width, height), x=x, y=y, opacity=logo.opacity)
    described = {"position": logo.position, "size": logo.size, "opacity": logo.opacity, "box": [x, y, width, height]}
    return Overlay(builders.image_input_args(logo.image.name, info.demuxer), chains), described


def captions_overlay(workspace, cues, spec, length: float, drawn=()) -> tuple[Overlay, list]:
    """Each distinct cue text drawn once into a still (media/captions.py), a blank still, and the list that
    shows them in turn (builders.captions_timeline), bottom-centred in the safe area except while that would
    cover something else drawn (caption_places); and the windows in which they were moved."""
    texts = list(dict.fromkeys(text for _first, _end, text in cues))
    stills, size = captions.caption_stills(texts, spec.width, spec.height, spec.style)
    names = {}
    for text, still in zip(texts, stills):
        path = workspace.new_path("caption", ".png")
        still.save(path, format="PNG", compress_level=1)
        names[text] = path.name
    blank = workspace.new_path("caption", ".png")
    captions.blank(size).save(blank, format="PNG", compress_level=1)
    listing = workspace.new_path("captions", ".ffconcat")
    listing.write_text(builders.captions_timeline(cues, [names[text] for _f, _e, text in cues], blank.name),
                       encoding="utf-8")
    x = (spec.width - size[0]) // 2
    bottom, moved = caption_places(spec, size, length, drawn)
    chains = functools.partial(builders.captions_chains, fps=spec.fps, x=x, y=bottom, moved=moved)
    return Overlay(builders.captions_input_args(listing.name), chains), [list(window) for window in moved]


def caption_places(spec, size: tuple[int, int], length: float, drawn) -> tuple[int, tuple]:
    """Where captions of `size` go: bottom-centred in the safe area, as subtitle practice has it, except while
    something else drawn (a template's text, the logo) would be covered there: then just above it if that
    is clear, else at the top of the safe area. The other drawings never move. Returns the bottom place's y
    and the windows ((start, end, y), ...) in which captions sit elsewhere."""
    margin = safe_margin(spec.width, spec.height)
    width, height = size
    x, bottom = (spec.width - width) // 2, spec.height - margin - height
    gap = max(2, round(0.02 * min(spec.width, spec.height)))
    times = sorted({0.0, length, *(t for d in drawn for t in (d.start, d.end) if 0.0 < t < length)})
    moved = []
    for start, end in itertools.pairwise(times):
        showing = [d for d in drawn if d.start < end and d.end > start]
        places = [bottom, *sorted((d.y - gap - height for d in showing), reverse=True), margin]
        y = next((place for place in places if margin <= place <= bottom
                  and not any(d.overlaps(x, place, width, height) for d in showing)), margin)
        if y == bottom:
            continue
        if moved and moved[-1][2] == y and moved[-1][1] == start:
            moved[-1] = (moved[-1][0], end, y)
        else:
            moved.append((start, end, y))
    return bottom, tuple(moved)


# ---- trim and preview -------------------------------------------------------------------


def trim(plan: TrimPlan, workspace) -> Steps:
    video = plan.video
    output = output_file(workspace, plan.spec)  # mp4 in fast mode (a stream copy: the serializer refuses others)
    if plan.mode == "fast":
        keyframe = keyframe_at_or_before(workspace.path / video.name, video.info, plan.start)
        yield FFmpegCommand(builders.trim_fast_args(video.name, video.info, keyframe, plan.end, output.name))
        return Result(output, plan.filename, headers={"X-Trim-Start": builders.seconds(keyframe)},
                      details={"mode": "fast", "real_start": keyframe})
    details, finish, after_mix = {"mode": "accurate"}, "", ""
    length = builders.whole_frames(plan.length, plan.spec.fps)
    if plan.spec.loudness is not None:
        finish, after_mix, summary = yield from normalised(
            workspace, video.info, builders.input_args(video.name, video.info, start=plan.start, duration=plan.length),
            length, plan.spec, music=plan.finishing.music)
        details["loudness"] = {"target": plan.spec.loudness, **summary}
    done = apply_finishing(plan.finishing, workspace, plan.spec, length, 1, after_mix)
    ending, picture = builders.output_ending(plan.spec)
    graph = write_graph(workspace, builders.normalize_graph(0, video.info, plan.spec, plan.length, audio_post=finish,
                                                            out_v=done.video, out_a=done.audio) + done.chains + ending)
    yield FFmpegCommand(builders.trim_accurate_args(video.name, video.info, plan.spec, plan.start, plan.length,
                                                    graph, output.name, more_inputs=done.inputs, video=picture))
    return Result(output, plan.filename, content_type=plan.spec.output.content_type,
                  headers={"X-Trim-Start": builders.seconds(plan.start)}, details={**details, **done.details})


def trim_preview(plan: PreviewPlan, workspace) -> Steps:
    video = plan.video
    if plan.format == "jpg":
        output = workspace.new_path("preview", ".jpg")
        yield FFmpegCommand(builders.preview_jpg_args(video.name, video.info, plan.start, plan.height, output.name))
        return Result(output, plan.filename, content_type="image/jpeg")
    output = workspace.new_path("preview", ".mp4")
    yield FFmpegCommand(builders.preview_mp4_args(video.name, video.info, plan.start, plan.length, plan.height,
                                                  plan.crf, output.name))
    return Result(output, plan.filename)


# ---- joins -------------------------------------------------------------------------------


def joins_by_copy(info, spec) -> bool:
    """An input already in the requested house format: H.264 + AAC at the spec's canvas and frame rate, and an
    mp4 asked for (a webm or a gif is always re-encoded)."""
    return (spec.format == "mp4" and info.has_audio and info.video_codec == "h264" and info.audio_codec == "aac"
            and info.rotation == 0 and (info.width, info.height) == (spec.width, spec.height)
            and abs(info.fps - spec.fps) < 0.01 and not info.colour.hdr)


def join(plan: JoinPlan, workspace) -> Steps:
    """Concatenate the ordered inputs: stream copy when possible, else one re-encode."""
    inputs, spec = plan.inputs, plan.spec
    infos = [item.info for item in inputs]
    output = output_file(workspace, spec)
    crossfade = plan.transition == "crossfade"
    copyable = (not crossfade and len({info.copy_layout() for info in infos}) == 1 and joins_by_copy(infos[0], spec)
                and not plan.finishing.picture)  # a logo or captions: the picture is re-encoded anyway
    details = {"inputs": len(inputs), "transition": plan.transition}
    finishes = None  # per input: its loudness filter (every input brought to the target before joining)
    if spec.loudness is not None:
        finishes, summaries = [], []
        for item in inputs:
            finish, _after_mix, summary = yield from normalised(
                workspace, item.info, builders.input_args(item.name, item.info),
                builders.whole_frames(item.info.duration, spec.fps), spec)
            finishes.append(finish)
            summaries.append({"field": item.field, **summary})
        details["loudness"] = {"target": spec.loudness, "inputs": summaries}
    args = []
    for item in inputs:
        args += builders.input_args(item.name, item.info)
    if copyable:
        listing = workspace.new_path("inputs", ".ffconcat")
        listing.write_text(builders.concat_list([item.name for item in inputs]), encoding="utf-8")
        sound = None
        if finishes is not None or plan.finishing.music:  # the picture still copied; only the sound re-encoded:
            # each input's sound (normalised), joined, the soundtrack mixed under it
            length = sum(builders.whole_frames(info.duration, spec.fps) for info in infos)
            done = apply_finishing(plan.finishing, workspace, spec, length, 1 + len(inputs))
            details.update(done.details)
            chains = builders.concat_audio_graph(infos, spec, finishes or [""] * len(infos), first_index=1,
                                                 out=done.audio) + done.chains
            sound = (args + done.inputs, write_graph(workspace, chains))
        yield FFmpegCommand(builders.concat_copy_args(listing.name, infos[0].demuxer, spec, output.name,
                                                      infos[0].audio_track, sound=sound))
        mode = "copy"
    else:
        video, audio = finish_labels(plan.finishing)
        chains, length = builders.concat_graph(infos, spec, plan.transition_duration if crossfade else 0.0,
                                               audio_posts=finishes, out_v=video, out_a=audio)
        done = apply_finishing(plan.finishing, workspace, spec, length, len(inputs))
        details.update(done.details)
        ending, picture = builders.output_ending(spec)
        graph = write_graph(workspace, chains + done.chains + ending)
        yield FFmpegCommand(args + done.inputs + builders.graph_args(graph)
                            + builders.house_output_args(spec, output.name, video=picture))
        mode = "reencode"
    return Result(output, plan.filename, content_type=spec.output.content_type, headers={"X-Concat-Mode": mode},
                  details={"mode": mode, **details})


# ---- the six templates ---------------------------------------------------------------------


@dataclass(frozen=True)
class Still:
    """An image laid over the video for a time window: a text block or the avatar."""

    name: str  # file name in the workspace
    demuxer: str
    start: float
    end: float
    fade: float
    x: int
    y: int
    size: int | None = None  # scale to fit this many pixels (the avatar)


def template(plan: TemplatePlan, workspace) -> Steps:
    video, spec, avatar = plan.video, plan.spec, plan.avatar
    start, end, length = plan.start, plan.end, plan.length
    fade = min(0.5, (end - start) / 4)
    short = min(spec.width, spec.height)
    avatar_size = round(0.24 * short) if avatar else 0
    inset = avatar_size + round(0.03 * short) if avatar else 0

    stills, card_box = [], None  # the avatar and the text blocks, laid over the video in this order
    drawn = []  # their boxes over their windows: what captions keep clear of
    for card in plan.cards:
        placed, box = layout(card, spec.width, spec.height, inset=inset, style=spec.style)
        card_box = card_box or box  # the avatar sits beside the first card
        for block in placed:
            image = workspace.new_path("text", ".png")
            drawing = render_block(block)
            drawing.save(image, format="PNG")
            stills.append(Still(image.name, "png_pipe", block.start, block.end,
                                min(fade, (block.end - block.start) / 4), block.x, block.y))
            drawn.append(Drawn(block.x, block.y, *drawing.size, block.start, block.end))
    if avatar:
        margin = safe_margin(spec.width, spec.height)
        y = max(margin // 2, card_box.bottom - avatar_size)
        stills.insert(0, Still(avatar.name, avatar.info.demuxer, start, end, fade, margin, y, size=avatar_size))
        drawn.append(Drawn(margin, y, avatar_size, avatar_size, start, end))

    video_pre, audio_pre = builders.speed_filters(plan.speed)
    video_end, audio_end = builders.fade_out(length, plan.fade_out, spec.frame)
    dim = builders.dim(start, end) if plan.dim else ""
    details = {"speed": plan.speed, "window": [start, end]}
    audio_post, after_mix = audio_end, ""
    if spec.loudness is not None:  # measured after the speed change and the fade-out: the output's sound
        audio_post, after_mix, summary = yield from normalised(
            workspace, video.info, builders.input_args(video.name, video.info), builders.whole_frames(length, spec.fps),
            spec, pre=audio_pre, post=audio_end, music=plan.finishing.music)
        details["loudness"] = {"target": spec.loudness, **summary}
    done = apply_finishing(plan.finishing, workspace, spec, builders.whole_frames(length, spec.fps), 1 + len(stills),
                           after_mix, drawn=tuple(drawn))
    details.update(done.details)
    chains = builders.normalize_graph(0, video.info, spec, length, video_pre=video_pre, audio_pre=audio_pre,
                                      video_post=dim, audio_post=audio_post, out_v="base0", out_a=done.audio)
    inputs = builders.input_args(video.name, video.info)
    for number, still in enumerate(stills, start=1):
        inputs += builders.image_input_args(still.name, still.demuxer)
        chains.append(builders.still_chain(number, spec.fps, still.start, still.end, still.fade, f"still{number}",
                                           size=still.size))
        chains.append(builders.overlay(f"base{number - 1}", f"still{number}", still.x, still.y, f"base{number}"))
    chains.append(f"[base{len(stills)}]{video_end or 'null'}[{done.video}]")
    output = output_file(workspace, spec)
    ending, picture = builders.output_ending(spec)
    graph = write_graph(workspace, chains + done.chains + ending)
    yield FFmpegCommand(inputs + done.inputs + builders.graph_args(graph)
                        + builders.house_output_args(spec, output.name, video=picture))
    return Result(output, plan.filename, content_type=spec.output.content_type, details=details)
