"""Pure builders for compositions (POST /api/compose): where a clip sits, how it moves, and the filter chains
that place it on the timeline.

Every function here takes plain numbers and returns FFmpeg filter text; the
operation (plans/composing.py) decides what to draw and in which order.
Times inside a clip's chain are the clip's own ("local": 0 is the clip's
start); a chain ends by moving its frames to their place on the timeline.
"""

import math

from renders.media import colour
from renders.media.builders import blur_background, house_audio_chain, seconds, silence
from renders.media.spec import parse_color
from renders.media.text import safe_margin

# xfade's name for each transition of the edit; `in` reveals the clip over what lies beneath, `out` takes it away
TRANSITIONS = {"fade": "fade", "wipe-left": "wipeleft", "wipe-right": "wiperight", "slide-left": "slideleft",
               "slide-right": "slideright", "slide-up": "slideup", "slide-down": "slidedown"}
EFFECTS = ("zoom-in", "zoom-out", "pan-left", "pan-right")
POSITIONS = ("center", "top", "bottom", "left", "right", "top-left", "top-right", "bottom-left", "bottom-right")
# RGB pictures (colours, images, text) to the house's BT.709 limited-range YUV: said explicitly, since FFmpeg's
# own conversion would use BT.601 and shift every hue once the output is read as BT.709
RGB_TO_HOUSE = ":out_color_matrix=bt709:out_range=tv"
TO_HOUSE = f"scale={RGB_TO_HOUSE[1:]}"
ZOOM = 0.2  # a Ken Burns zoom goes from 1x to 1.2x (or back) over the clip
PAN = 0.2  # a pan travels across a picture enlarged 1.2x, from one edge of it to the other


def even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def box_size(fit: str, scale: float, source: tuple[int, int], canvas: tuple[int, int]) -> tuple[int, int]:
    """The pixel size a seen clip takes on the canvas: its fit (contain: the whole picture inside the canvas;
    cover and blur: the canvas; none: the source's own size), times `scale`; even sides."""
    (sw, sh), (cw, ch) = source, canvas
    if fit == "contain":
        factor = min(cw / sw, ch / sh)
        width, height = sw * factor, sh * factor
    elif fit == "none":
        width, height = sw, sh
    else:
        width, height = cw, ch
    return even(width * scale), even(height * scale)


def place(position: str, offset: tuple[float, float], box: tuple[int, int], canvas: tuple[int, int]) -> tuple[int, int]:
    """The top-left corner of a box at `position` inside the canvas's safe margin (a box wider or taller than the
    safe area is centred on that axis instead), shifted by `offset` (shares of the canvas)."""
    (w, h), (cw, ch) = box, canvas
    margin = safe_margin(cw, ch)
    mx, my = min(margin, (cw - w) / 2), min(margin, (ch - h) / 2)
    x = mx if "left" in position else cw - w - mx if "right" in position else (cw - w) / 2
    y = my if "top" in position else ch - h - my if "bottom" in position else (ch - h) / 2
    return round(x + offset[0] * cw), round(y + offset[1] * ch)


def fit_steps(fit: str, box: tuple[int, int], source_colour=None) -> list[str]:
    """A picture to `box` pixels by its fit (the colour made house-standard after scaling, so HDR's float path
    runs on box-sized frames): contain and none stretch to the box (whose aspect is the source's), cover crops
    what overflows around the centre, blur's foreground fits inside it (blur_chains lays it over its copy)."""
    w, h = box
    options = colour.scale_options(source_colour) if source_colour is not None else RGB_TO_HOUSE
    sdr = colour.to_sdr(source_colour) if source_colour is not None else ["format=yuva420p"]
    if fit == "cover":
        return [f"scale={w}:{h}:force_original_aspect_ratio=increase{options}", f"crop={w}:{h}", *sdr]
    if fit == "blur":
        return [f"scale={w}:{h}:force_original_aspect_ratio=decrease{options}", *sdr]
    return [f"scale={w}:{h}{options}", *sdr]


def blur_chains(source: str, box: tuple[int, int], source_colour, out: str, label: str) -> list[str]:
    """fit=blur: the whole picture (contained) over a blurred, enlarged copy of itself (the templates' own
    blur_background), exactly `box`."""
    fg, raw, bg = f"{label}fg", f"{label}raw", f"{label}bg"
    return [
        f"{source}{','.join(fit_steps('blur', box, source_colour))},split[{fg}][{raw}]",
        f"[{raw}]{blur_background(*box)},format=yuva420p[{bg}]",
        f"[{bg}][{fg}]overlay=(W-w)/2:(H-h)/2:format=auto,format=yuva420p[{out}]",
    ]


def effect_filter(effect: str, length: float, since: float, fps: int) -> str:
    """A Ken Burns move over a clip `length` s long, as a `perspective` filter evaluated every frame.

    The corners of the part shown move on real numbers and are interpolated (cubic), so the picture glides:
    no whole-pixel steps, unlike `zoompan` or a `crop` whose position is rounded. `since`: the clip time of the
    stream's first frame (a still starts mid-clip)."""
    p = f"min(1,max(0,(on/{fps}+{seconds(since)})/{seconds(length)}))"  # `on`: the frame's number
    if effect in ("zoom-in", "zoom-out"):
        # the shown part is 1/z of the picture, centred; z from 1 to 1+ZOOM (zoom-in) or back (zoom-out)
        z = f"(1+{ZOOM}*{p})" if effect == "zoom-in" else f"(1+{ZOOM}*(1-{p}))"
        left, top = f"W*(1-1/{z})/2", f"H*(1-1/{z})/2"
        right, bottom = f"W-{left}", f"H-{top}"
    else:
        # a window 1/(1+PAN) of the picture travels across it; pan-left moves the picture to the left
        share = 1 / (1 + PAN)
        travel = f"{p}" if effect == "pan-left" else f"(1-{p})"
        left = f"W*{1 - share:.6f}*{travel}"
        right = f"{left}+W*{share:.6f}"
        top, bottom = f"H*{(1 - share) / 2:.6f}", f"H*{(1 + share) / 2:.6f}"
    corners = [left, top, right, top, left, bottom, right, bottom]
    return ("perspective=" + ":".join(f"x{i // 2}='{value}'" if i % 2 == 0 else f"y{i // 2}='{value}'"
                                      for i, value in enumerate(corners))
            + ":interpolation=cubic:sense=source:eval=frame")


def opacity_filter(opacity: float) -> str:
    return "" if opacity >= 1 else f"lutyuv=a=val*{opacity:.4f}"


def clear(box: tuple[int, int], fps: int, duration: float) -> str:
    """A transparent picture of `box` size (what a clip comes in from and leaves into)."""
    return f"color=c=black@0:s={box[0]}x{box[1]}:r={fps}:d={seconds(duration)},format=yuva420p,settb=AVTB"


def transition_chains(label: str, box: tuple[int, int], fps: int, come_in: str | None, go_out: str | None,
                      duration: float, out_at: float | None, out: str) -> list[str]:
    """The clip [label] revealed over what lies beneath (`come_in`, from its first frame) and taken away
    (`go_out`, starting `out_at` s after its first frame), each over `duration` s. A fade ramps the clip's
    alpha; a wipe or a slide is xfade between the clip and a transparent picture, so the clip's own alpha
    carries it to the overlay."""
    chains, current, fades = [], label, []
    if come_in == "fade":
        fades.append(f"fade=t=in:st=0:d={seconds(duration)}:alpha=1")
    elif come_in:
        chains += [f"{clear(box, fps, duration)}[{label}z0]",
                   (f"[{label}z0][{current}]xfade=transition={TRANSITIONS[come_in]}"
                    f":duration={seconds(duration)}:offset=0[{label}i]")]
        current = f"{label}i"
    if go_out == "fade" and out_at is not None:
        fades.append(f"fade=t=out:st={seconds(out_at)}:d={seconds(duration)}:alpha=1")
    elif go_out and out_at is not None:
        chains += [f"{clear(box, fps, duration)}[{label}z1]",
                   (f"[{current}][{label}z1]xfade=transition={TRANSITIONS[go_out]}"
                    f":duration={seconds(duration)}:offset={seconds(out_at)}[{label}o]")]
        current = f"{label}o"
    chains.append(f"[{current}]{','.join(fades) or 'null'}[{out}]")
    return chains


def color_source(color: str, box: tuple[int, int], fps: int, duration: float) -> str:
    red, green, blue, alpha = parse_color(color)
    return (f"color=c=0x{red:02X}{green:02X}{blue:02X}@{alpha / 255:.4f}:s={box[0]}x{box[1]}:r={fps}"
            f":d={seconds(duration)},format=rgba,{TO_HOUSE},format=yuva420p")


def background(color: str, canvas: tuple[int, int], fps: int, duration: float) -> str:
    red, green, blue, _alpha = parse_color(color)
    return (f"color=c=0x{red:02X}{green:02X}{blue:02X}:s={canvas[0]}x{canvas[1]}:r={fps}:d={seconds(duration)},"
            f"format=rgb24,{TO_HOUSE},format=yuv420p,settb=AVTB")


def on_timeline(at: float) -> str:
    """Frames of a clip chain moved to start `at` s into the timeline."""
    return f"setpts=PTS-STARTPTS+{seconds(at)}/TB"


def layer_overlay(base: str, top: str, x: int, y: int, out: str) -> str:
    """[top] (on the timeline, alpha kept) over [base]; before its first frame and after its last, [base] shows."""
    return f"[{base}][{top}]overlay=x={x}:y={y}:eof_action=pass:format=auto:repeatlast=0[{out}]"


def sound_chain(stream: str, info, length: float, volume: float, at: float, out: str) -> str:
    """A clip's sound (its stream, already cut to the clip by the input's seek) in the house format, `length` s
    long, at `volume` dB, delayed to `at` s into the timeline."""
    delay = round(at * 1000)
    parts = [house_audio_chain(length, info)]
    if volume:
        parts.append(f"volume={volume:g}dB")
    if delay:
        parts.append(f"adelay={delay}:all=1")
    return f"{stream}{','.join(parts)}[{out}]"


def mix_chain(labels: list[str], duration: float, out: str) -> str:
    """The sounds of the timeline added (not averaged: amix's normalize off) over silence `duration` s long."""
    if not labels:
        return f"{silence(duration)}[{out}]"
    inputs = "".join(f"[{label}]" for label in labels)
    return (f"{silence(duration)}[{out}0];[{out}0]{inputs}amix=inputs={len(labels) + 1}:duration=first"
            f":dropout_transition=0:normalize=0,atrim=end={seconds(duration)},asetpts=PTS-STARTPTS[{out}]")


def frame_time(value: float, fps: int) -> float:
    """`value` moved down onto the frame grid (the frame showing at that moment)."""
    return math.floor(value * fps + 1e-6) / fps
