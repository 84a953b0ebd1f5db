"""Loudness normalisation (EBU R128): the targets, the measuring and loudnorm filters, the meter's summary.

Measure, then apply, per input, each on the input's sound exactly as the
render's house audio chain makes it:

1. **Measure** with FFmpeg's meter `ebur128=peak=true` (the null muxer; it
   prints its summary at info level, so the command raises the log level for
   itself, `MEASURE_LOGLEVEL`); `parse_measurement()` reads it from stderr.
   It gives loudnorm's four values and is cheaper than loudnorm's own first
   pass (docs/BENCHMARKS.md, "Loudness (renders/media/loudness.py)").
2. **Apply** `loudnorm=...:measured_*=...:linear=true`, then the house rate
   again (loudnorm's dynamic mode outputs 192 kHz); or, where its linear mode
   applies, that one gain as `volume` (`apply_filter`).

loudnorm picks its mode itself: linear (one gain) only if the measured
loudness range fits the target LRA and the gained true peak stays under the
target, else dynamic (a limiter with a 3 s window). The target LRA is the
measured one (within loudnorm's 7 to 50), so only the true peak can force
dynamic mode, and then the limiter is what keeps the peak under the ceiling.
On less than 3 s of sound dynamic mode cannot run: loudnorm applies a gain
capped by the peak instead, and the input comes out quieter than the target
(`capped`). `expected_mode()` says which (the RenderLog records it).

**The floor**: an input below -70 LUFS integrated (R128's absolute gate:
silence; FFmpeg says -inf), or without sound, gets no loudnorm at all, which
would otherwise pump its noise up: a silent clip stays silent.

**The ceiling**: the filter's true-peak target is -1.5 dBTP, so that the
AAC encoder's overshoot still leaves the output at most -1 dBTP.
"""

import math
import re
from dataclasses import asdict, dataclass

from renders.media.spec import AUDIO_RATE

PRESETS = {"web": -16.0, "streaming": -14.0, "broadcast": -23.0}
MIN_TARGET, MAX_TARGET = -31.0, -10.0
CEILING = -1.0  # dBTP, the contract
TRUE_PEAK = -1.5  # dBTP, the filter's target: CEILING less headroom for the AAC encoder
FLOOR = -70.0  # LUFS integrated: quieter inputs get no gain
MIN_LRA, MAX_LRA = 7.0, 50.0  # loudnorm's default target LRA, and its largest
MEASURE_LOGLEVEL = ["-loglevel", "info"]  # loudnorm prints its JSON at info level
DYNAMIC_WINDOW = 3.0  # seconds: loudnorm's dynamic mode needs this much sound


def parse_target(value) -> float | None:
    """`off` -> None; a preset name or a number from -31 to -10 -> LUFS. ValueError otherwise."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "off":
            return None
        if text in PRESETS:
            return PRESETS[text]
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"must be off, {', '.join(PRESETS)} or a number from {MIN_TARGET:g} to {MAX_TARGET:g} "
                         "(LUFS)") from None
    if not math.isfinite(number) or not MIN_TARGET <= number <= MAX_TARGET:
        raise ValueError(f"must be from {MIN_TARGET:g} to {MAX_TARGET:g} LUFS (or off, {', '.join(PRESETS)})")
    return number


def _num(value: float) -> str:
    return f"{value:.2f}"


def measure_filter() -> str:
    """The first pass: measure with the EBU R128 meter (summary only: no per-frame log)."""
    return "ebur128=peak=true:framelog=quiet"


@dataclass(frozen=True)
class Measurement:
    """What the measure found of an input's sound (the values loudnorm's second pass is given)."""

    i: float  # integrated loudness, LUFS (-inf for silence)
    tp: float  # true peak, dBTP
    lra: float  # loudness range, LU
    thresh: float  # gating threshold, LUFS

    @property
    def silent(self) -> bool:
        return not self.i > FLOOR  # -inf and NaN too


NUMBER = r"(-?(?:\d+(?:\.\d+)?|inf))"
SUMMARY_RE = re.compile(rf"Integrated loudness:\s+I:\s+{NUMBER} LUFS\s+Threshold:\s+{NUMBER} LUFS\s+"
                        rf"Loudness range:\s+LRA:\s+{NUMBER} LU\s+.*?True peak:\s+Peak:\s+{NUMBER} dBFS", re.S)


def parse_measurement(stderr: str) -> Measurement:
    """The ebur128 summary (the last one in `stderr`) -> Measurement; ValueError if there is none."""
    found = SUMMARY_RE.findall(stderr or "")
    if not found:
        raise ValueError("no EBU R128 measurement in FFmpeg's output")
    i, thresh, lra, tp = (float(value) for value in found[-1])  # "-inf" parses
    if i <= FLOOR:  # the meter prints its floor, -70.0, when nothing passes the absolute gate: silence
        i = -math.inf
    return Measurement(i=i, tp=tp, lra=lra, thresh=thresh)


def target_lra(measured: Measurement) -> float:
    return min(MAX_LRA, max(MIN_LRA, math.ceil(measured.lra * 10) / 10 + 0.1))


def gain(measured: Measurement, target: float) -> float:
    return target - measured.i


def expected_mode(measured: Measurement, target: float, duration: float) -> str:
    """What loudnorm's second pass does to `duration` seconds of sound: `none` (below the floor), `linear`,
    `dynamic` or, when dynamic mode has less than its 3 s window, `capped` (linear, peak-limited gain)."""
    if measured.silent:
        return "none"
    if linear(measured, target):
        return "linear"
    return "dynamic" if duration >= DYNAMIC_WINDOW else "capped"


def linear(measured: Measurement, target: float) -> bool:
    """loudnorm's own test for its linear mode: one gain takes the sound to the target under the ceiling."""
    return (measured.thresh > -70 and measured.tp + gain(measured, target) <= TRUE_PEAK
            and measured.lra <= target_lra(measured))


def applied_gain(measured: Measurement, target: float, duration: float) -> float:
    """The gain loudnorm applies, in dB (for `dynamic` the overall one it aims at; its gain varies)."""
    mode = expected_mode(measured, target, duration)
    if mode == "none":
        return 0.0
    if mode == "capped":  # loudnorm caps by the sample peak, which is at most the true peak
        return min(gain(measured, target), TRUE_PEAK - measured.tp)
    return gain(measured, target)


def apply_filter(measured: Measurement | None, target: float) -> str:
    """The second pass ("" below the floor): where loudnorm would work in its linear mode, the one gain that
    mode applies, as `volume` (the same sound without loudnorm's meter over the output); else loudnorm with
    the measured values, then the house rate again."""
    if measured is None or measured.silent:
        return ""
    if linear(measured, target):
        return f"volume={_num(gain(measured, target))}dB"
    return (f"loudnorm=I={_num(target)}:TP={_num(TRUE_PEAK)}:LRA={_num(target_lra(measured))}"
            f":measured_I={_num(measured.i)}:measured_TP={_num(measured.tp)}:measured_LRA={_num(measured.lra)}"
            f":measured_thresh={_num(measured.thresh)}:linear=true:print_format=none,"
            f"aresample={AUDIO_RATE}")


def summary(measured: Measurement | None, target: float, duration: float) -> dict:
    """What the RenderLog records of one input: measured loudness, the gain applied and loudnorm's mode."""
    if measured is None:
        return {"measured": None, "gain_db": 0.0, "mode": "none", "reason": "no audio"}
    values = {key: (value if math.isfinite(value) else None) for key, value in asdict(measured).items()}
    mode = expected_mode(measured, target, duration)
    described = {"measured": values, "mode": mode, "gain_db": round(applied_gain(measured, target, duration), 2)}
    if mode == "none":
        described["reason"] = f"below the {FLOOR:g} LUFS floor"
    return described
