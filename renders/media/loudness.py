"""Loudness normalisation (EBU R128): the targets, the measuring and limiting filters, the RenderLog's summary.

Per input, on the sound exactly as the render makes it (speed change,
fade-out, soundtrack mix, 48 kHz stereo), with FFmpeg's meter
`ebur128=peak=true` (its summary read from stderr at `MEASURE_LOGLEVEL`):

1. **Measure**, band-limited as the AAC encoder will cut the sound
   (`codec_band`: on bright sound what lies above the cutoff is up to
   0.5 LU). Below `FLOOR` (silence) nothing is applied: mode `silent`.
2. **Gain**: the one gain to the target (`volume`) when the true peak it
   leads to is at most `TRUE_PEAK`: mode `gain`.
3. **Gain + limiter** otherwise: the gain, then a true-peak limiter
   (`alimiter` with lookahead at 192 kHz, so that its sample peak is the
   true peak) at `LIMIT`. The limiter takes loudness off with the peaks and
   the encoder adds to them, so the limited sound is encoded (AAC, sound
   only) and measured, and the gain (the limit too, if the encoded peak
   passes `PEAK_GOAL`) corrected: at most `MAX_TRIES` tries, the best one
   rendered. Mode `gain+limiter`.

Not loudnorm: past its peak ceiling it falls back to its dynamic mode,
which undershoots on short or peaky sound and cannot run under 3 s
(docs/ARCHITECTURE.md "Finishing"; figures in docs/BENCHMARKS.md).
"""

import math
import re
from dataclasses import asdict, dataclass

from renders.media.spec import AUDIO_RATE

PRESETS = {"web": -16.0, "streaming": -14.0, "broadcast": -23.0}
MIN_TARGET, MAX_TARGET = -31.0, -10.0
CEILING = -1.0  # dBTP, the contract (measured after the AAC encode)
TRUE_PEAK = -2.0  # dBTP: the highest peak one gain may lead to (the encoder adds up to 0.8 dB on noise)
LIMIT = -2.5  # dBTP the limiter holds at first; lowered while the encoded sound's peak passes PEAK_GOAL
PEAK_GOAL = -1.2  # dBTP: the encoded limited sound's highest peak allowed (CEILING less a margin)
LOWEST_LIMIT = -9.0  # dBTP
FLOOR = -70.0  # LUFS integrated: quieter inputs get no gain
MEASURE_LOGLEVEL = ["-loglevel", "info"]  # the meter prints its summary at info level
METER = "ebur128=peak=true:framelog=quiet"  # summary only: no per-frame log
OVERSAMPLE = 192000  # Hz: the limiter's rate, 4x the house rate (the meter's true-peak oversampling)
ATTACK, RELEASE = 1.0, 20.0  # ms: the limiter's lookahead/attack and release (only the peaks move)
MAX_TRIES = 4  # encodes of the limited sound measured, each correcting the gain (and the limit)
CLOSE_ENOUGH = 0.2  # LU: a limited sound this near the target is not corrected further
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


OPUS_CUTOFF = 20000  # Hz: libopus codes fullband (20 kHz) at every bitrate the qualities use (96k and up)


def codec_cutoff(bitrate: str, channels: int = 2, rate: int = AUDIO_RATE, codec: str = "aac") -> int:
    """The frequency (Hz) above which the encoder drops the sound at `bitrate` ("160k"): for AAC, FFmpeg's
    own formula (libavcodec/psymodel.h, AAC_CUTOFF_FROM_BITRATE); for Opus, fullband."""
    if codec == "opus":
        return OPUS_CUTOFF
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
    return f"{codec_band(cutoff)},{METER}"


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


def limited(gain_db: float, limit: float = LIMIT) -> str:
    """The gain, then the true-peak limiter at `limit` dBTP (at 192 kHz, delay compensated, no auto level)."""
    return (f"volume={_num(gain_db)}dB,aresample={OVERSAMPLE},"
            f"alimiter=limit={10 ** (limit / 20):.5f}:attack={ATTACK:g}:release={RELEASE:g}:level=0:latency=1,"
            f"aresample={AUDIO_RATE}")


@dataclass(frozen=True)
class Try:
    """One setting of the limiter's path and what its encoded sound measured."""

    gain_db: float
    limit: float
    measured: Measurement

    def miss(self, target: float) -> float:
        return target - self.measured.i

    def fits(self, target: float) -> bool:
        return abs(self.miss(target)) <= CLOSE_ENOUGH and self.measured.tp <= PEAK_GOAL


def apply_filter(measured: Measurement | None, target: float, chosen: Try | None = None) -> str:
    """The filters that bring the sound to `target` ("" for none or silence); in `gain+limiter` mode those of
    the `chosen` try (by default the first: the measured gain at LIMIT)."""
    kind = mode(measured, target)
    if kind in ("none", "silent"):
        return ""
    if kind == "gain":
        return f"volume={_num(gain(measured, target))}dB"
    return limited(chosen.gain_db, chosen.limit) if chosen else limited(gain(measured, target))


def next_try(measured: Measurement, tries: list[Try], target: float) -> tuple[float, float] | None:
    """The next (gain, limit) from the tries so far, or None when the last one fits. The limit goes down by
    what the encoded peak passed PEAK_GOAL by; the gain up by what the loudness missed by, scaled by how much
    loudness the last gain step bought (the secant: the limiter takes more off the more gain it is given)."""
    last = tries[-1]
    if last.fits(target) or not math.isfinite(last.measured.i):
        return None
    limit = last.limit
    if last.measured.tp > PEAK_GOAL:
        limit = max(LOWEST_LIMIT, limit - (last.measured.tp - PEAK_GOAL) - 0.2)
    slope = 1.0
    if len(tries) > 1 and tries[-2].limit == limit and tries[-2].gain_db != last.gain_db:
        slope = (last.measured.i - tries[-2].measured.i) / (last.gain_db - tries[-2].gain_db)
    step = last.miss(target) / min(1.0, max(0.2, slope)) + (last.limit - limit) / 2
    first = gain(measured, target)
    return min(first + MAX_EXTRA, max(first - MAX_EXTRA, last.gain_db + step)), limit


def best(tries: list[Try], target: float) -> Try:
    """The try to render: the nearest the target among those whose peak is under PEAK_GOAL (else the lowest
    peak)."""
    safe = [t for t in tries if t.measured.tp <= PEAK_GOAL]
    if safe:
        return min(safe, key=lambda t: abs(t.miss(target)))
    return min(tries, key=lambda t: t.measured.tp)


def summary(measured: Measurement | None, target: float, tries: list[Try] = (), chosen: Try | None = None) -> dict:
    """What the RenderLog records of one input: the measure, the mode, the gain applied (before the
    limiter) and each encoded limited sound measured (gain, limit, loudness and peak)."""
    kind = mode(measured, target)
    if kind == "none":
        return {"measured": None, "gain_db": 0.0, "mode": "none", "reason": "no audio"}
    described = {"measured": _values(measured), "mode": kind, "gain_db": 0.0}
    if kind == "silent":
        described["reason"] = f"below the {FLOOR:g} LUFS floor"
        return described
    first = gain(measured, target)
    described["gain_db"] = round(first, 2)
    if kind == "gain+limiter":
        chosen = chosen or Try(first, LIMIT, measured)
        described.update(gain_db=round(chosen.gain_db, 2), correction_db=round(chosen.gain_db - first, 2),
                         limit_dbtp=round(chosen.limit, 2),
                         limited=[{"gain_db": round(t.gain_db, 2), "limit_dbtp": round(t.limit, 2),
                                   **_values(t.measured)} for t in tries])
    return described


def _values(measured: Measurement) -> dict:
    return {key: (value if math.isfinite(value) else None) for key, value in asdict(measured).items()}
