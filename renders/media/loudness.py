"""Loudness normalisation (EBU R128): the targets, the measuring and limiting filters, the RenderLog's summary.

Per input, every step measured with FFmpeg's meter (`ebur128=peak=true`,
its summary read from stderr at `MEASURE_LOGLEVEL`) on the sound exactly
as the render makes it (speed change, fade-out, soundtrack mix, 48 kHz
stereo), band-limited as the AAC encoder will cut it (`codec_band`: the
encoder drops what lies above its bitrate's cutoff, which on bright sound
is up to 0.5 LU of the loudness):

1. **Measure**; below `FLOOR` (silence) nothing is applied: it stays silent.
2. **Gain**: the one gain that takes it to the target (`volume`), when the
   true peak it leads to stays at most `TRUE_PEAK`: mode `gain`.
3. **Gain + limiter** otherwise: the gain, then a true-peak limiter
   (`alimiter` with lookahead, run at 192 kHz so its sample peak is the
   true peak) holding the peaks at `LIMIT`. The limiter takes loudness off
   with the peaks, so the limited sound is measured (sound only: cheap) and
   the gain before the limiter corrected, at most `MAX_CORRECTIONS` times
   (secant steps on the measured loudness): mode `gain+limiter`.

Why not loudnorm: it keeps one gain only when the peaks allow it; otherwise
its dynamic mode undershoots the target on short or peaky sound, and cannot
run at all on less than 3 s (docs/ARCHITECTURE.md "Finishing", figures in
docs/BENCHMARKS.md). A limiter that touches only the peaks leaves the rest
of the sound as one gain made it.
"""

import math
import re
from dataclasses import asdict, dataclass

from renders.media.spec import AUDIO_RATE

PRESETS = {"web": -16.0, "streaming": -14.0, "broadcast": -23.0}
MIN_TARGET, MAX_TARGET = -31.0, -10.0
CEILING = -1.0  # dBTP, the contract (measured after the AAC encode)
TRUE_PEAK = -1.5  # dBTP: the highest peak one gain may lead to (the encoder adds a little)
LIMIT = -2.5  # dBTP the limiter holds: the encoder's overshoot on limited clicks is up to 0.8 dB
FLOOR = -70.0  # LUFS integrated: quieter inputs get no gain
MEASURE_LOGLEVEL = ["-loglevel", "info"]  # the meter prints its summary at info level
OVERSAMPLE = 192000  # Hz: the limiter's rate, 4x the house rate (the meter's true-peak oversampling)
ATTACK, RELEASE = 1.0, 20.0  # ms: the limiter's lookahead/attack and release (only the peaks move)
MAX_CORRECTIONS = 2  # measures of the limited sound, each correcting the gain before the limiter
CLOSE_ENOUGH = 0.1  # LU: a limited sound this near the target is not corrected further
MAX_EXTRA = 12.0  # dB: corrections add at most this much gain to the first one
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


def codec_cutoff(bitrate: str, channels: int = 2, rate: int = AUDIO_RATE) -> int:
    """The frequency (Hz) above which FFmpeg's AAC encoder drops the sound at `bitrate` ("160k"): its own
    formula (libavcodec/psymodel.h, AAC_CUTOFF_FROM_BITRATE)."""
    text = str(bitrate).strip().lower()
    scale = {"k": 1000, "m": 1000000}.get(text[-1:], 1)
    bits = int(float(text.rstrip("km")) * scale)
    per_channel = bits // channels
    return min(max(per_channel // 5, per_channel * 15 // 32 - 5500), 3000 + per_channel // 4,
               12000 + per_channel // 16, 22000, rate // 2)


def codec_band(cutoff: int) -> str:
    """A brick-wall low-pass at the encoder's cutoff: what is measured is what the encoder keeps."""
    return f"firequalizer=gain='if(lt(f,{cutoff}),0,-100)'"


def measure_filter(cutoff: int) -> str:
    """Measure with the EBU R128 meter (summary only), band-limited as the encoder will cut the sound."""
    return f"{codec_band(cutoff)},ebur128=peak=true:framelog=quiet"


@dataclass(frozen=True)
class Measurement:
    """What the meter found of a sound."""

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


def gain(measured: Measurement, target: float) -> float:
    return target - measured.i


def mode(measured: Measurement | None, target: float) -> str:
    """`none` (no sound), `silent` (below the floor), `gain` (one gain keeps the peaks at most TRUE_PEAK) or
    `gain+limiter`."""
    if measured is None:
        return "none"
    if measured.silent:
        return "silent"
    return "gain" if measured.tp + gain(measured, target) <= TRUE_PEAK else "gain+limiter"


def limited(gain_db: float) -> str:
    """The gain, then the true-peak limiter at LIMIT (at 192 kHz, delay compensated, no auto level)."""
    return (f"volume={_num(gain_db)}dB,aresample={OVERSAMPLE},"
            f"alimiter=limit={10 ** (LIMIT / 20):.5f}:attack={ATTACK:g}:release={RELEASE:g}:level=0:latency=1,"
            f"aresample={AUDIO_RATE}")


def apply_filter(measured: Measurement | None, target: float, gain_db: float | None = None) -> str:
    """The filters that bring the sound to `target` ("" for none or silence); `gain_db` the corrected gain
    before the limiter (by default the measured one)."""
    chosen = mode(measured, target)
    if chosen in ("none", "silent"):
        return ""
    if chosen == "gain":
        return f"volume={_num(gain(measured, target))}dB"
    return limited(gain(measured, target) if gain_db is None else gain_db)


def corrected(measured: Measurement, tries: list[tuple[float, Measurement]], target: float) -> float | None:
    """The next gain before the limiter from `tries` (gain, measure of the limited sound), or None when the
    last try is close enough. One try: add what it missed by; more: the secant through the last two (the
    limiter takes more off the more gain there is)."""
    last_gain, last = tries[-1]
    miss = target - last.i
    if not math.isfinite(miss) or abs(miss) <= CLOSE_ENOUGH:
        return None
    step = miss
    if len(tries) > 1:
        before_gain, before = tries[-2]
        slope = (last.i - before.i) / (last_gain - before_gain) if last_gain != before_gain else 1.0
        step = miss / min(1.0, max(0.25, slope))  # the limiter never adds loudness; nor does it take it all
    first = gain(measured, target)
    return min(first + MAX_EXTRA, max(first - MAX_EXTRA, last_gain + step))


def summary(measured: Measurement | None, target: float, gain_db: float | None = None,
            tries: list[tuple[float, Measurement]] = ()) -> dict:
    """What the RenderLog records of one input: the measure, the mode, the gain applied (before the
    limiter) and each measure of the limited sound that corrected it."""
    chosen = mode(measured, target)
    if chosen == "none":
        return {"measured": None, "gain_db": 0.0, "mode": "none", "reason": "no audio"}
    described = {"measured": _values(measured), "mode": chosen, "gain_db": 0.0}
    if chosen == "silent":
        described["reason"] = f"below the {FLOOR:g} LUFS floor"
        return described
    first = gain(measured, target)
    applied = first if gain_db is None else gain_db
    described["gain_db"] = round(applied, 2)
    if chosen == "gain+limiter":
        described["limiter_dbtp"] = LIMIT
        described["correction_db"] = round(applied - first, 2)
        described["limited"] = [{"gain_db": round(g, 2), **_values(m)} for g, m in tries]
    return described


def _values(measured: Measurement) -> dict:
    return {key: (value if math.isfinite(value) else None) for key, value in asdict(measured).items()}
