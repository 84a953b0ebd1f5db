"""Loudness normalisation (EBU R128): the targets, the measuring and loudnorm filters, the meter's summary.

Measure, then apply, per input:

1. **Measure**: the input's sound, exactly as the house audio chain of the
   render makes it (speed change, fade-out, downmix, 48 kHz stereo), into
   FFmpeg's EBU R128 meter `ebur128=peak=true` and the null muxer. The meter
   prints its summary (integrated loudness and its gating threshold, loudness
   range, true peak) at info level when the stream ends, so the measuring
   command raises the run's log level for itself (`MEASURE_LOGLEVEL`: FFmpeg
   takes the last `-loglevel` given) and `parse_measurement()` reads it from
   stderr. It used to be loudnorm's own first pass (`print_format=json`):
   the meter gives the same values to its 0.1 dB print precision and is
   about four times faster, because loudnorm resamples to 192 kHz and runs
   its limiter even when it only measures (docs/BENCHMARKS.md).
2. **Apply**: the same chain with `loudnorm=...:measured_*=...:linear=true`,
   then `aresample=48000` (loudnorm's output is 192 kHz whenever it works
   in dynamic mode; the house rate is forced again right after it).

loudnorm's traps, and what is done about them:

- It applies one linear gain (the sound untouched otherwise) only if the
  measured loudness range is at most the target LRA *and* the measured
  true peak plus that gain stays under the target true peak; otherwise it
  silently falls back to its dynamic mode (a compressor/limiter with 3 s
  lookahead, 192 kHz). The target LRA is set to the measured LRA (at least
  7, at most loudnorm's 50), so a wide range never forces dynamic mode:
  only a true peak that the gain would push past the ceiling does, and then
  dynamic mode is what keeps the peak under it. `expected_mode()` says
  which mode loudnorm will pick (the RenderLog records it).
- Dynamic mode needs 3 s of sound (its window). On a shorter input it
  cannot run and applies one linear gain instead, capped so the (sample)
  peak stays under the target true peak: such an input comes out at the
  ceiling's level, quieter than the target (`capped` in the RenderLog).
  Measured with FFmpeg 9.0: a 2 s -30 dBFS sine with a full-scale click
  ends at -31.4 LUFS; the same at 4 s, in dynamic mode, at -16.5 LUFS.
- It also refuses linear mode when the measured gating threshold is -70
  (silence) and would then pump noise up in dynamic mode: see the floor.

**The floor**: an input whose integrated loudness is below -70 LUFS (EBU
R128's absolute gate: silence or near-silence; FFmpeg reports -inf), or
that has no sound, gets no loudnorm at all: a silent clip stays silent.

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
    mode applies, as `volume` (loudnorm's linear mode multiplies every sample by that gain, but still runs an
    R128 meter with true peak over its output: about 0.04 s per 10 s of stereo; docs/BENCHMARKS.md); else
    loudnorm with the measured values, then the house rate again."""
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
