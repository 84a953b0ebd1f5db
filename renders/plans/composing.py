"""The compose operation: a ComposePlan and a workspace in, one FFmpeg command with one filter graph, a Result out.

The graph starts from the background and lays every seen clip over it in
drawing order (the last track first), each clip its own chain: its source
fitted to its box, its Ken Burns move, its opacity, its transitions (a fade
ramps its alpha; a wipe or a slide is xfade with a transparent picture, so
the clip's alpha carries it over whatever lies beneath), then moved to its
start on the timeline. Images and text are decoded once and repeated in the
graph; a video input starts at its place on the timeline. Sounds are
delayed to their start and added over silence; the soundtrack goes under
them.

A still (`png`/`jpg`) renders the timeline from `frame_at` for one frame:
only the clips showing then are read, each seeked to its own moment (back to
the start of a transition it is in, which needs its first frame).
"""

from dataclasses import dataclass

from renders.media import builders, captions, colour, composition, fonts
from renders.media.builders import seconds
from renders.media.spec import parse_color
from renders.media.text import Placed, render_block, wrap
from renders.plans import ComposePlan, Layer
from renders.plans.operations import FFmpegCommand, Result, Steps, captions_overlay, leveled, write_graph

STILL_TYPES = {"png": "image/png", "jpg": "image/jpeg"}


@dataclass
class Graph:
    """What the command is being built from: its inputs' arguments and its chains."""

    inputs: list
    chains: list

    @property
    def count(self) -> int:
        return sum(1 for arg in self.inputs if arg == "-i")

    def add_input(self, args: list) -> int:
        index = self.count
        self.inputs += args
        return index


def text_image(layer: Layer, canvas: tuple[int, int]):
    """A text clip drawn by the house text engine (every script, shaping, bidi) into an RGBA image."""
    look = layer.look
    width, height = canvas
    size = max(8, round(look.size * height))
    border = max(2, round(size * 0.28))
    font_path = _font(look.font)
    lines = tuple(wrap(layer.text, size, look.max_width * width - 2 * border, font_path))
    box = parse_color(look.box_color) if look.box_color else (0, 0, 0, 0)
    align = {"left": "L", "center": "C", "right": "R"}[look.align]
    placed = Placed(lines, size, parse_color(look.color), 0, 0, align, border, 0.0, 0.0, box, font_path)
    return render_block(placed)


def _font(name: str) -> str:
    return fonts.registry().get(name, "")


def caption_layer(layer: Layer, cues, begin: float, length: float, workspace, spec, graph: Graph, base: str,
                  count: int) -> tuple[str, int]:
    """A captions clip: its cues (timed from the clip's start, cut to its window) drawn as the captions
    finishing field draws them, over [base]; returns the label and count after it."""
    moved = [captions.Cue(max(layer.start, layer.start + cue.start) - begin,
                          min(layer.end, layer.start + cue.end) - begin, cue.text)
             for cue in cues if cue.start < layer.length]
    kept = captions.fit([cue for cue in moved if cue.end > 0 and cue.end > cue.start],
                        length, spec.fps)[0]
    kept = [(max(0, first), end, text) for first, end, text in kept]
    if not kept:
        return base, count
    overlay, _moved = captions_overlay(workspace, kept, spec, length)
    index = graph.add_input(overlay.args)
    graph.chains += overlay.chains(index, base=base, out=f"base{count + 1}")
    return f"base{count + 1}", count + 1


def window(plan: ComposePlan) -> tuple[float, float]:
    """[from, length) of the timeline the command renders: all of it, or one frame for a still."""
    fps = plan.spec.fps
    if plan.still:
        return composition.frame_time(plan.frame_at, fps), 1 / fps
    return 0.0, builders.whole_frames(plan.duration, fps)


def clip_span(layer: Layer, begin: float, length: float) -> tuple[float, float, float] | None:
    """(read from, shown from, until) in the clip's own time for the rendered window; None when it shows none
    of the clip. A still reads from the start of the transition its moment is in (the transition needs it)."""
    shown = max(0.0, begin - layer.start)
    until = min(layer.length, begin + length - layer.start)
    if until <= shown + 1e-9:
        return None
    read = shown
    duration = layer.transition_duration
    if layer.transition_in and shown < duration:
        read = 0.0
    elif layer.transition_out and shown > layer.length - duration:
        read = max(0.0, layer.length - duration)
    return read, shown, until


def compose(plan: ComposePlan, workspace) -> Steps:
    spec = plan.spec
    begin, length = window(plan)
    picture, details = picture_graph(plan, workspace, begin, length)
    if plan.still:
        output = workspace.new_path("still", f".{plan.format}")
        name = write_graph(workspace, picture.chains)
        yield FFmpegCommand(picture.inputs + builders.graph_args(name) + still_output_args(plan.format, output.name))
        return Result(output, plan.filename, content_type=STILL_TYPES[plan.format],
                      details={**details, "frame_at": begin})
    after = ""
    if spec.loudness is not None:  # the mix measured as the output will have it, then levelled
        sound = sound_graph(plan, begin, length, 0, "{filters}")
        after, details["loudness"] = yield from leveled(
            workspace, sound.inputs, lambda filters: write_graph(workspace, [
                chain.replace("{filters}", filters or "anull") for chain in sound.chains]), spec)
        details["loudness"] = {"target": spec.loudness, **details["loudness"]}
    sound = sound_graph(plan, begin, length, picture.count, after)
    details["sounds"] = sound.heard
    ending, video = builders.output_ending(spec)
    output = workspace.new_path("output", f".{spec.output.extension}")
    name = write_graph(workspace, picture.chains + sound.chains + ending)
    yield FFmpegCommand(picture.inputs + sound.inputs + builders.graph_args(name)
                        + builders.house_output_args(spec, output.name, video=video))
    return Result(output, plan.filename, content_type=spec.output.content_type, details=details)


def picture_graph(plan: ComposePlan, workspace, begin: float, length: float) -> tuple[Graph, dict]:
    """The picture of [begin, begin + length) of the timeline as [v]: the background, then every seen clip
    showing in it, in drawing order."""
    spec = plan.spec
    canvas, fps = (spec.width, spec.height), spec.fps
    graph = Graph([], [composition.background(plan.background, canvas, fps, length) + "[base0]"])
    details, base, count = {"layers": 0}, "base0", 0
    for layer in plan.layers:
        span = clip_span(layer, begin, length)
        if span is None or layer.kind == "audio":
            continue
        since, shown, until = span
        source = plan.sources[layer.source] if layer.source is not None else None
        if layer.kind == "captions":
            base, count = caption_layer(layer, source.input.cues, begin, length, workspace, spec, graph, base, count)
            continue
        index = None
        at = layer.start + shown - begin  # where the clip's first shown frame sits on the rendered timeline
        if layer.kind == "video":  # read when the timeline gets there (FFmpeg reads its inputs in time order)
            index = graph.add_input(["-itsoffset", seconds(layer.start + since - begin),
                                     *builders.input_args(source.name, source.input.info, start=layer.trim + since,
                                                          duration=until - since)])
        label = f"c{count + 1}"
        box, chain = clip_picture(layer, source, index, graph, workspace, canvas, fps, since, until, label)
        graph.chains += chain
        look = [composition.effect_filter(layer.effect, layer.length, since, fps) if layer.effect else "",
                "format=yuva420p", composition.opacity_filter(layer.opacity)]
        graph.chains.append(f"[{label}p]{','.join(p for p in look if p)}[{label}l]")
        out_at = layer.length - layer.transition_duration - since
        graph.chains += composition.transition_chains(
            label + "l", box, fps, layer.transition_in if since == 0 else None, layer.transition_out,
            layer.transition_duration, out_at if out_at >= 0 and until - since > out_at else None, f"{label}t")
        skip = f"trim=start={seconds(shown - since)}," if shown > since else ""
        graph.chains.append(f"[{label}t]{skip}{composition.on_timeline(at)}[{label}m]")
        x, y = composition.place(layer.position, (layer.offset_x, layer.offset_y), box, canvas)
        count += 1
        graph.chains.append(composition.layer_overlay(base, f"{label}m", x, y, f"base{count}"))
        base = f"base{count}"
        details["layers"] += 1
    graph.chains.append(f"[{base}]trim=end={seconds(length)},setpts=PTS-STARTPTS,setsar=1,{colour.HOUSE_TAGS}[v]")
    return graph, details


@dataclass
class Sound(Graph):
    heard: int = 0  # the clips heard


def sound_graph(plan: ComposePlan, begin: float, length: float, first_index: int, after: str) -> Sound:
    """The timeline's sound as [a]: every clip's sound delayed to its start and added over silence, the
    soundtrack under it (ducked by it), then the `after` filters (the loudness gain); its inputs numbered from
    `first_index`. A format without sound gets silence (its encoder ends it)."""
    sound, labels = Sound([], []), []
    for layer in plan.layers if plan.spec.has_sound else ():
        span = clip_span(layer, begin, length) if layer.kind in ("video", "audio") else None
        info = plan.sources[layer.source].input.info if span else None
        if span is None or layer.volume <= -60 or (layer.kind == "video" and not info.audio_codec):
            continue
        _since, shown, until = span
        index = first_index + sound.add_input(builders.input_args(plan.sources[layer.source].name, info,
                                                                  start=layer.trim + shown, duration=until - shown))
        labels.append(f"s{len(labels)}")
        sound.chains.append(composition.sound_chain(f"[{index}:a:{info.audio_track}]", info, until - shown,
                                                    layer.volume, layer.start + shown - begin, labels[-1]))
    mixed = "mixed" if plan.soundtrack is not None and plan.spec.has_sound else "timeline"
    sound.chains.append(composition.mix_chain(labels, length, mixed))
    if mixed == "mixed":
        music = plan.sources[plan.soundtrack.source].input
        index = first_index + sound.add_input(builders.music_input_args(music.name, music.info, length))
        sound.chains += builders.music_chains(index, music.info, length, plan.soundtrack.volume,
                                              plan.soundtrack.ducking, "mixed", "timeline")
    sound.chains.append(f"[timeline]{after or 'anull'}[a]")
    sound.heard = len(labels)
    return sound


def clip_picture(layer: Layer, source, index, graph: Graph, workspace, canvas, fps: int, since: float, until: float,
                 label: str) -> tuple[tuple[int, int], list[str]]:
    """A seen clip's picture, exactly its box, from `since` to `until` in its own time, as [<label>p]."""
    duration = until - since
    tail = f"fps={fps},trim=end={seconds(duration)},setpts=PTS-STARTPTS"
    if layer.kind == "color":
        box = composition.box_size(layer.fit if layer.fit != "none" else "cover", layer.scale, canvas, canvas)
        return box, [f"{composition.color_source(layer.color, box, fps, duration)},settb=AVTB[{label}p]"]
    if layer.kind == "text":
        image = text_image(layer, canvas)
        path = workspace.new_path("text", ".png")
        image.save(path, format="PNG", compress_level=1)
        box = composition.box_size("none", layer.scale, image.size, canvas) if layer.fit == "none" else \
            composition.box_size(layer.fit, layer.scale, image.size, canvas)
        stream = graph.add_input(builders.image_input_args(path.name, "png_pipe"))
        return box, [(f"[{stream}:v:0]format=rgba,scale={box[0]}:{box[1]},{composition.TO_HOUSE},format=yuva420p,"
                      f"{held(fps, duration)},settb=AVTB[{label}p]")]
    info = source.input.info
    if layer.kind == "image":
        stream = graph.add_input(builders.image_input_args(source.name, info.demuxer))
        size, src_colour, pre = (info.width, info.height), None, "format=rgba,"  # fit_steps ends it in BT.709
        tail = held(fps, duration)
    else:
        stream = index
        size = (round(info.width * info.sar), info.height)
        src_colour = info.colour
        # the input starts at its place on the timeline (-itsoffset); its own chain counts from 0
        pre = "setpts=PTS-STARTPTS," + ("bwdif=mode=send_frame:deint=interlaced," if info.interlaced else "")
        tail = f"tpad=stop_mode=clone:stop=-1,{tail}"  # a source shorter than its clip holds its last frame
    box = composition.box_size(layer.fit, layer.scale, size, canvas)
    source_label = f"[{stream}:v:0]{pre}"
    if layer.fit == "blur":
        chains = composition.blur_chains(source_label, box, src_colour, f"{label}b", label)
        chains.append(f"[{label}b]{tail},settb=AVTB[{label}p]")
        return box, chains
    steps = composition.fit_steps(layer.fit, box, src_colour)
    return box, [f"{source_label}{','.join(steps)},{tail},settb=AVTB[{label}p]"]


def held(fps: int, duration: float) -> str:
    """A still's one frame (decoded and fitted once) repeated for `duration` s at `fps`, made as it is asked
    for: a hundred image clips hold a hundred frames, not a hundred clips' worth."""
    return f"loop=loop=-1:size=1:start=0,setpts=N/({fps}*TB),trim=end={seconds(duration)},setpts=PTS-STARTPTS"


def still_output_args(format: str, output: str) -> list[str]:
    quality = ["-q:v", "2"] if format == "jpg" else ["-compression_level", "3"]
    pix = "yuvj420p" if format == "jpg" else "rgb24"
    return ["-map", "[v]", "-frames:v", "1", "-pix_fmt", pix, *quality, "-f", "image2", "-update", "1",
            "-y", output]

