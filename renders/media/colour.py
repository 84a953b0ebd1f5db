"""Colour: what an input's pixels mean, and the filters that make them house SDR.

The house format is SDR BT.709, limited range, 8-bit 4:2:0, and tagged so
(primaries, transfer and matrix all BT.709). Inputs are read by their tags;
an untagged matrix follows the usual rule (BT.601 below HD, BT.709 from HD
up) and an untagged range is limited unless the pixel format is a JPEG one.

HDR inputs (PQ/HDR10 and HLG; a Dolby Vision profile 8 file is read as its
HLG- or PQ-compatible base layer) and wide-gamut BT.2020 SDR are converted
by zscale in linear light: to BT.709 primaries, tone-mapped with `mobius`
(HDR only), back to the BT.709 transfer, and dithered down to 8 bits.
Other 10-bit and 4:2:2/4:4:4 inputs go through swscale, which dithers when
it drops bits; full-range inputs are mapped to limited range.
`mobius` keeps the SDR picture's colour and brightness best of zscale's
tone mappers and rolls highlights off above SDR white (up to HDR_PEAK)
instead of clipping them (the comparison: docs/DECISIONS.md, HDR). The float path runs after scaling down to the
canvas, so its cost follows the output size.

JPEG stills are the one exception to the house format: JFIF defines its
YCbCr as BT.601 full range, and every decoder reads a JPEG that way, so the
still is converted to that (`STILL`) from the same SDR picture the video
gets; its RGB is the video's (BT.709 primaries, which sRGB shares).
"""

from dataclasses import dataclass

# FFmpeg's enum values (libavutil/pixfmt.h) -> the names its filters take.
PRIMARIES = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film", 9: "bt2020",
             10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213"}
TRANSFERS = {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear", 13: "iec61966-2-1",
             14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 18: "arib-std-b67"}
MATRICES = {0: "gbr", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020nc",
            10: "bt2020c"}
RANGES = {1: "tv", 2: "pc"}

HDR_TRANSFERS = {"smpte2084": "pq", "arib-std-b67": "hlg"}
TONEMAP = "mobius"
HDR_NOMINAL_PEAK = 100  # nits of SDR white, zscale's npl: HDR reference white lands on SDR white
# The brightest light the tone map keeps apart (mapped to SDR white), in nits. PQ can
# carry up to 10 000 nits, so nothing a PQ file holds is clipped; HLG is defined for a
# 1000-nit display. (Left unset, `tonemap` takes 1000 nits for both, because the frames
# it gets are linear: a PQ highlight over 1000 nits would clip to white.)
HDR_PEAK = {"pq": 10000, "hlg": 1000}

# swscale's names for input matrices (scale=in_color_matrix=...)
_SWS_MATRIX = {"bt709": "bt709", "bt470bg": "bt601", "smpte170m": "bt601", "fcc": "fcc", "smpte240m": "smpte240m",
               "bt2020nc": "bt2020", "bt2020c": "bt2020"}
# zscale's names where they differ from FFmpeg's
_Z_TRANSFER = {"bt709": "709", "smpte170m": "601", "bt470bg": "601", "gamma22": "bt709", "gamma28": "bt709",
               "bt2020-10": "2020_10", "bt2020-12": "2020_12", "iec61966-2-1": "iec61966-2-1"}
_Z_MATRIX = {"bt709": "709", "smpte170m": "470bg", "bt470bg": "470bg", "bt2020nc": "2020_ncl", "bt2020c": "2020_cl"}
_Z_PRIMARIES = {"bt709": "709", "smpte170m": "170m", "bt470bg": "bt470bg", "bt2020": "2020", "smpte240m": "240m",
                "smpte432": "smpte432", "smpte431": "smpte431", "film": "film", "bt470m": "bt470m"}

# (matrix, range) of the YCbCr a picture is written in: the house video, a JFIF still
HOUSE = ("bt709", "tv")
STILL = ("bt601", "pc")

HOUSE_TAGS = "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv"


@dataclass(frozen=True)
class Colour:
    """An input's colour, as tagged ("" = untagged) and as it will be read."""

    primaries: str = ""
    transfer: str = ""
    matrix: str = ""
    range: str = ""
    bit_depth: int = 8
    chroma: str = "4:2:0"
    width: int = 0
    height: int = 0
    pix_fmt: str = ""

    @property
    def hdr(self) -> str:
        """"pq", "hlg" or "" (SDR)."""
        return HDR_TRANSFERS.get(self.transfer, "")

    @property
    def wide_gamut(self) -> bool:
        return self.primaries == "bt2020"

    @property
    def effective_matrix(self) -> str:
        if self.matrix and self.matrix not in ("gbr",):
            return self.matrix
        return "bt709" if self.height >= 720 or self.width >= 1280 else "smpte170m"

    @property
    def effective_range(self) -> str:
        if self.range:
            return self.range
        return "pc" if self.pix_fmt.startswith("yuvj") else "tv"

    def summary(self) -> dict:
        return {"color_primaries": self.primaries or "unknown", "color_transfer": self.transfer or "unknown",
                "color_matrix": self.matrix or "unknown", "color_range": self.range or "unknown",
                "read_as": f"{self.effective_matrix}/{self.effective_range}", "bit_depth": self.bit_depth,
                "chroma": self.chroma, "hdr": self.hdr or "sdr"}


def from_frame(frame) -> Colour:
    """The colour description of a decoded PyAV frame."""
    fmt = frame.format
    depth = max((c.bits for c in fmt.components), default=8)
    chroma = "4:4:4" if fmt.is_rgb else _chroma(fmt.name)
    return Colour(
        primaries=PRIMARIES.get(int(getattr(frame, "color_primaries", 2) or 2), ""),
        transfer=TRANSFERS.get(int(getattr(frame, "color_trc", 2) or 2), ""),
        matrix=MATRICES.get(int(frame.colorspace or 2), "") if not fmt.is_rgb else "gbr",
        range=RANGES.get(int(frame.color_range or 0), ""),
        bit_depth=depth, chroma=chroma, width=frame.width, height=frame.height, pix_fmt=fmt.name,
    )


def _chroma(pix_fmt: str) -> str:
    for marker, name in (("420", "4:2:0"), ("422", "4:2:2"), ("444", "4:4:4"), ("411", "4:1:1"), ("440", "4:4:0")):
        if marker in pix_fmt:
            return name
    return "4:2:0"


def scale_options(colour: Colour, target: tuple[str, str] = HOUSE) -> str:
    """Options for the `scale` that takes an SDR BT.709-family input to `target` (HOUSE or STILL)."""
    if colour.hdr or colour.wide_gamut:
        return ""  # keep the source's pixels: zscale converts after scaling
    matrix = _SWS_MATRIX.get(colour.effective_matrix, "bt709")
    out_matrix, out_range = target
    return (f":in_color_matrix={matrix}:in_range={colour.effective_range}"
            f":out_color_matrix={out_matrix}:out_range={out_range}")


def to_sdr(colour: Colour, target: tuple[str, str] = HOUSE) -> list[str]:
    """Filters after scaling: linear-light conversion for HDR and BT.2020, then 8-bit 4:2:0 in `target`."""
    if not (colour.hdr or colour.wide_gamut):
        return ["format=yuv420p"]
    tin = _Z_TRANSFER.get(colour.transfer, colour.transfer) if colour.transfer else "709"
    pin = _Z_PRIMARIES.get(colour.primaries, colour.primaries) or "2020"
    min_ = _Z_MATRIX.get(colour.effective_matrix, colour.effective_matrix)
    rin = "full" if colour.effective_range == "pc" else "limited"
    # one zscale to linear light with BT.709 primaries, the tone map in float,
    # one zscale back to the BT.709 transfer in 8 bits with an ordered dither
    # (no banding; error diffusion looked the same and cost 14 % more)
    steps = [f"zscale=tin={tin}:pin={pin}:min={min_}:rin={rin}:t=linear:p=709:npl={HDR_NOMINAL_PEAK}",
             "format=gbrpf32le"]
    if colour.hdr:
        steps.append(f"tonemap=tonemap={TONEMAP}:desat=0:peak={HDR_PEAK[colour.hdr] / HDR_NOMINAL_PEAK:g}")
    out_matrix, out_range = target
    z_matrix = "470bg" if out_matrix == "bt601" else "709"
    z_range = "full" if out_range == "pc" else "limited"
    steps += [f"zscale=t=709:m={z_matrix}:r={z_range}:dither=ordered", "format=yuv420p"]
    return steps
