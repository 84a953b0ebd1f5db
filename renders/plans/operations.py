"""What each kind of plan renders: a plan and a workspace in, a `Result` out.

An operation is a generator. It writes what FFmpeg needs into the workspace
(filter graphs, text images), builds each command with the pure builders and
yields it as a `Run`; whoever drives it (`perform()`, given a runner that
records and checks each run) sends back the run's `FFmpegResult`, and the
operation returns the `Result`. So an operation never starts a process, never
touches the RenderLog and never sees a request: the same plan runs in a
request or, later, in another process.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Generator

from renders.media import builders, loudness
from renders.media.probe import keyframe_at_or_before
from renders.media.text import layout, render_block, safe_margin
from renders.plans import JoinPlan, PreviewPlan, TemplatePlan, TrimPlan


@dataclass(frozen=True)
class Run:
    """One FFmpeg command (run with the workspace as its working directory).

    `measures`: the run only measures (it writes no output), so it says
    nothing about how far the render has got.
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


Steps = Generator[Run, object, Result]


def write_graph(workspace, chains) -> str:
    """Write a filter graph into the workspace (FFmpeg reads it from there); returns its name."""
    path = workspace.new_path("graph", ".txt")
    path.write_text(";\n".join(chains), encoding="utf-8")
    return path.name


# ---- loudness (media/loudness.py) ---------------------------------------------------------


def normalised(workspace, info, inputs: list[str], duration: float, target: float, *, pre: str = "",
               post: str = ""):
    """One input's sound brought to `target`: measure it as the house audio chain makes it (input 0 of
    `inputs`, `duration` of whole frames, the render's own `pre`/`post` audio filters), then return the
    `post` filters to render it with (loudnorm's second pass added) and what the RenderLog records."""
    if not info.has_audio:
        return post, loudness.summary(None, target, duration)
    chain = ",".join(p for p in (post, loudness.measure_filter(target)) if p)
    graph = write_graph(workspace, [builders.house_audio(0, info, duration, pre=pre, post=chain)])
    result = yield Run(builders.measure_args(inputs, graph), measures=True)
    measured = loudness.parse_measurement(result.stderr_tail)
    finish = ",".join(p for p in (post, loudness.apply_filter(measured, target)) if p)
    return finish, loudness.summary(measured, target, duration)


# ---- trim and preview -------------------------------------------------------------------


def trim(plan: TrimPlan, workspace) -> Steps:
    video = plan.video
    output = workspace.new_path("output", ".mp4")
    if plan.mode == "fast":
        keyframe = keyframe_at_or_before(workspace.path / video.name, video.info, plan.start)
        yield Run(builders.trim_fast_args(video.name, video.info, keyframe, plan.end, output.name))
        return Result(output, plan.filename, headers={"X-Trim-Start": builders.seconds(keyframe)},
                      details={"mode": "fast", "real_start": keyframe})
    details, finish = {"mode": "accurate"}, ""
    if plan.spec.loudness is not None:
        target = plan.spec.loudness
        finish, summary = yield from normalised(
            workspace, video.info, builders.input_args(video.name, video.info, start=plan.start, duration=plan.length),
            builders.whole_frames(plan.length, plan.spec.fps), target)
        details["loudness"] = {"target": target, **summary}
    graph = write_graph(workspace, builders.normalize_graph(0, video.info, plan.spec, plan.length, audio_post=finish))
    yield Run(builders.trim_accurate_args(video.name, video.info, plan.spec, plan.start, plan.length, graph,
                                          output.name))
    return Result(output, plan.filename, headers={"X-Trim-Start": builders.seconds(plan.start)}, details=details)


def trim_preview(plan: PreviewPlan, workspace) -> Steps:
    video = plan.video
    if plan.format == "jpg":
        output = workspace.new_path("preview", ".jpg")
        yield Run(builders.preview_jpg_args(video.name, video.info, plan.start, plan.height, output.name))
        return Result(output, plan.filename, content_type="image/jpeg")
    output = workspace.new_path("preview", ".mp4")
    yield Run(builders.preview_mp4_args(video.name, video.info, plan.start, plan.length, plan.height, plan.crf,
                                        output.name))
    return Result(output, plan.filename)


# ---- joins -------------------------------------------------------------------------------


def joins_by_copy(info, spec) -> bool:
    """An input already in the requested house format: H.264 + AAC at the spec's canvas and frame rate."""
    return (info.has_audio and info.video_codec == "h264" and info.audio_codec == "aac" and info.rotation == 0
            and (info.width, info.height) == (spec.width, spec.height) and abs(info.fps - spec.fps) < 0.01
            and not info.colour.hdr)


def join(plan: JoinPlan, workspace) -> Steps:
    """Concatenate the ordered inputs: stream copy when possible, else one re-encode."""
    inputs, spec = plan.inputs, plan.spec
    infos = [item.info for item in inputs]
    output = workspace.new_path("output", ".mp4")
    crossfade = plan.transition == "crossfade"
    copyable = not crossfade and len({info.copy_layout() for info in infos}) == 1 and joins_by_copy(infos[0], spec)
    details = {"inputs": len(inputs), "transition": plan.transition}
    finishes = None  # per input: its loudness filter (every input brought to the target before joining)
    if spec.loudness is not None:
        target, finishes, summaries = spec.loudness, [], []
        for item in inputs:
            finish, summary = yield from normalised(
                workspace, item.info, builders.input_args(item.name, item.info),
                builders.whole_frames(item.info.duration, spec.fps), target)
            finishes.append(finish)
            summaries.append({"field": item.field, **summary})
        details["loudness"] = {"target": target, "inputs": summaries}
    if copyable:
        listing = workspace.new_path("inputs", ".ffconcat")
        listing.write_text(builders.concat_list([item.name for item in inputs]), encoding="utf-8")
        sound = None
        if finishes is not None:  # the picture still copied; the sound of each input normalised, then joined
            args = []
            for item in inputs:
                args += builders.input_args(item.name, item.info)
            sound = (args, write_graph(workspace, builders.concat_audio_graph(infos, spec, finishes, first_index=1)))
        yield Run(builders.concat_copy_args(listing.name, infos[0].demuxer, spec, output.name, infos[0].audio_track,
                                            sound=sound))
        mode = "copy"
    else:
        chains, _length = builders.concat_graph(infos, spec, plan.transition_duration if crossfade else 0.0,
                                                audio_posts=finishes)
        args = []
        for item in inputs:
            args += builders.input_args(item.name, item.info)
        graph = write_graph(workspace, chains)
        yield Run(args + builders.graph_args(graph) + builders.house_output_args(spec, output.name))
        mode = "reencode"
    return Result(output, plan.filename, headers={"X-Concat-Mode": mode}, details={"mode": mode, **details})


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
    for card in plan.cards:
        placed, box = layout(card, spec.width, spec.height, inset=inset, style=spec.style)
        card_box = card_box or box  # the avatar sits beside the first card
        for block in placed:
            image = workspace.new_path("text", ".png")
            render_block(block).save(image, format="PNG")
            stills.append(Still(image.name, "png_pipe", block.start, block.end,
                                min(fade, (block.end - block.start) / 4), block.x, block.y))
    if avatar:
        margin = safe_margin(spec.width, spec.height)
        y = max(margin // 2, card_box.bottom - avatar_size)
        stills.insert(0, Still(avatar.name, avatar.info.demuxer, start, end, fade, margin, y, size=avatar_size))

    video_pre, audio_pre = builders.speed_filters(plan.speed)
    video_end, audio_end = builders.fade_out(length, plan.fade_out, spec.frame)
    dim = builders.dim(start, end) if plan.dim else ""
    details = {"speed": plan.speed, "window": [start, end]}
    audio_post = audio_end
    if spec.loudness is not None:  # measured after the speed change and the fade-out: the output's sound
        target = spec.loudness
        audio_post, summary = yield from normalised(
            workspace, video.info, builders.input_args(video.name, video.info), builders.whole_frames(length, spec.fps),
            target, pre=audio_pre, post=audio_end)
        details["loudness"] = {"target": target, **summary}
    chains = builders.normalize_graph(0, video.info, spec, length, video_pre=video_pre, audio_pre=audio_pre,
                                      video_post=dim, audio_post=audio_post, out_v="base0")
    inputs = builders.input_args(video.name, video.info)
    for number, still in enumerate(stills, start=1):
        inputs += builders.image_input_args(still.name, still.demuxer)
        chains.append(builders.still_chain(number, spec.fps, still.start, still.end, still.fade, f"still{number}",
                                           size=still.size))
        chains.append(builders.overlay(f"base{number - 1}", f"still{number}", still.x, still.y, f"base{number}"))
    chains.append(f"[base{len(stills)}]{video_end or 'null'}[v]")
    output = workspace.new_path("output", ".mp4")
    graph = write_graph(workspace, chains)
    yield Run(inputs + builders.graph_args(graph) + builders.house_output_args(spec, output.name))
    return Result(output, plan.filename, details=details)


# ---- running a plan ---------------------------------------------------------------------------

OPERATIONS = {"trim": trim, "trim-preview": trim_preview, "join": join, "template": template}


def perform(plan, workspace, run: Callable) -> Result:
    """Run the plan's operation, handing each FFmpeg command to `run(args, measures=...)` (which raises on
    failure)."""
    steps = OPERATIONS[plan.kind](plan, workspace)
    answer = None
    while True:
        try:
            step = steps.send(answer)
        except StopIteration as done:
            return done.value
        answer = run(step.args, measures=step.measures)
