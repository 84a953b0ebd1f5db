"""Small generated clips and output probing for the tests (real FFmpeg)."""

import re
import struct
import subprocess
import zlib
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np

from renders.media import ffmpeg


def make(path: Path, *args: str) -> Path:
    """Run FFmpeg (through the project's runner) to make a fixture file."""
    path = Path(path)
    result = ffmpeg.run([*args, path.name], cwd=path.parent, timeout=120)
    assert result.ok, result.stderr_tail
    return path


def lavfi_clip(path, *, seconds=2.0, size="320x240", rate=25, audio=True, sample_rate=44100, channels=1,
               vcodec="libx264", acodec="aac", extra=(), video_src="testsrc2", pix_fmt="yuv420p", fmt=None):
    sep = "" if video_src.endswith(":") else "="
    args = ["-f", "lavfi", "-i", f"{video_src}{sep}s={size}:r={rate}:d={seconds}"]
    if audio:
        layout = "mono" if channels == 1 else "stereo"
        args += ["-f", "lavfi", "-i", f"sine=f=440:r={sample_rate}:d={seconds}", "-ac", str(channels),
                 "-channel_layout", layout]
    args += ["-c:v", vcodec, "-pix_fmt", pix_fmt]
    if vcodec == "libx264":
        args += ["-preset", "ultrafast", "-g", str(rate)]
    if audio:
        args += ["-c:a", acodec]
    args += list(extra)
    if fmt:
        args += ["-f", fmt]
    return make(path, *args)


def mp4_boxes(path: Path):
    """Top-level MP4 box types in file order."""
    boxes = []
    with open(path, "rb") as handle:
        while True:
            header = handle.read(8)
            if len(header) < 8:
                break
            size, kind = struct.unpack(">I4s", header)
            if size == 1:
                size = struct.unpack(">Q", handle.read(8))[0]
                handle.seek(size - 16, 1)
            elif size == 0:
                boxes.append(kind.decode("latin-1"))
                break
            else:
                handle.seek(size - 8, 1)
            boxes.append(kind.decode("latin-1"))
    return boxes


def probe(path: Path) -> dict:
    """What a client would check about an output file."""
    with av.open(str(path)) as container:
        info = {"format": container.format.name, "streams": len(container.streams)}
        if container.streams.video:
            v = container.streams.video[0]
            frames = list(container.decode(v))
            info.update(
                vcodec=v.codec_context.name,
                width=v.codec_context.width,
                height=v.codec_context.height,
                pix_fmt=v.codec_context.pix_fmt,
                profile=v.codec_context.profile,
                fps=float(v.average_rate) if v.average_rate else None,
                frames=len(frames),
                first_video_time=frames[0].time if frames else None,
                v_duration=(float(v.duration * v.time_base) if v.duration else None),
            )
        container.seek(0)
        if container.streams.audio:
            a = container.streams.audio[0]
            samples = 0
            first = None
            for frame in container.decode(a):
                if first is None:
                    first = frame.time
                samples += frame.samples
            info.update(
                acodec=a.codec_context.name,
                sample_rate=a.codec_context.sample_rate,
                channels=a.codec_context.layout.nb_channels,
                a_duration=samples / a.codec_context.sample_rate,
                first_audio_time=first,
                aprofile=a.codec_context.profile,
            )
    if info["format"].startswith("mov"):
        boxes = mp4_boxes(path)
        info["faststart"] = "moov" in boxes and "mdat" in boxes and boxes.index("moov") < boxes.index("mdat")
    return info


def frame_at(path: Path, when: float):
    """The decoded RGB frame shown at time `when` (numpy array HxWx3)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        best = None
        for frame in container.decode(stream):
            if frame.time is not None and frame.time <= when + 1e-6:
                best = frame
            elif best is not None:
                break
        assert best is not None, f"no frame at {when}"
        return best.to_ndarray(format="rgb24")


def tone_clip(path, *, color, freq, seconds=1.0, size="320x240", rate=25, sample_rate=44100):
    """A flat-coloured clip with a pure tone: order and sync can be read back."""
    return make(path, "-f", "lavfi", "-i", f"color=c={color}:s={size}:r={rate}:d={seconds}",
                "-f", "lavfi", "-i", f"sine=f={freq}:r={sample_rate}:d={seconds}",
                "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest")


def house_clip(path, source, info=None):
    """Re-encode `source` exactly as the service's house format does (copy-joinable)."""
    from renders.media import builders
    from renders.media.probe import probe_video
    from renders.media.spec import house_format

    path = Path(path)
    info = info or probe_video(Path(source), "video")
    house = house_format()
    graph = path.with_suffix(".graph")
    graph.write_text(";".join(builders.normalize_graph(0, info, house, info.duration)))
    args = builders.input_args(str(source), info) + builders.graph_args(str(graph)) + \
        builders.house_output_args(house, path.name)
    result = ffmpeg.run(args, cwd=path.parent, timeout=120)
    assert result.ok, result.stderr_tail
    return path


def dominant_frequency(path, start, length=0.25):
    """The loudest frequency in the audio between `start` and `start + length`."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        chunks = [f.to_ndarray()[0] for f in container.decode(stream)]
    import numpy as np

    samples = np.concatenate(chunks)[int(start * rate): int((start + length) * rate)]
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


def pq_nits_to_code(nits: float) -> float:
    """SMPTE ST 2084 (PQ) inverse EOTF: absolute luminance in nits -> signal 0..1."""
    m1, m2 = 2610 / 16384, 2523 / 4096 * 128
    c1, c2, c3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    y = (max(0.0, nits) / 10000) ** m1
    return ((c1 + c2 * y) / (1 + c3 * y)) ** m2


def pq_patches(path, nits, *, size=(320, 180), seconds=1.0, rate=25):
    """An HDR10-style clip (HEVC Main10, BT.2020, PQ, tagged as phones tag it): grey vertical
    stripes at the given absolute luminances, left to right. Written from raw 10-bit samples,
    so each stripe is exactly its PQ code value."""
    import numpy as np

    path = Path(path)
    width, height = size
    luma = np.zeros((height, width), np.uint16)
    for columns, level in zip(np.array_split(np.arange(width), len(nits)), nits):
        luma[:, columns] = round(64 + 876 * pq_nits_to_code(level))  # 10-bit limited range
    chroma = np.full((height // 2, width // 2), 512, np.uint16)  # neutral grey
    raw = path.with_suffix(".yuv")
    raw.write_bytes(luma.tobytes() + chroma.tobytes() * 2)
    try:
        return make(path, "-f", "rawvideo", "-pix_fmt", "yuv420p10le", "-s", f"{width}x{height}", "-r", str(rate),
                    "-stream_loop", "-1", "-i", raw.name, "-t", str(seconds),
                    "-c:v", "libx265", "-pix_fmt", "yuv420p10le",
                    "-x265-params", "log-level=error:colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc",
                    "-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc",
                    "-color_range", "tv", "-tag:v", "hvc1")
    finally:
        raw.unlink(missing_ok=True)


def jpeg_rgb(path):
    """A JPEG decoded as any image viewer decodes it (libjpeg through Pillow: JFIF's full-range BT.601)."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "JPEG"
        return np.asarray(image.convert("RGB"))


def frame_tags(path):
    """(primaries, transfer, matrix, range) of the first decoded video frame, as FFmpeg's enum values."""
    with av.open(str(path)) as container:
        frame = next(container.decode(container.streams.video[0]))
        return int(frame.color_primaries), int(frame.color_trc), int(frame.colorspace), int(frame.color_range)


def srt(path, *cues):
    """An SRT file of (start, end, text) cues (seconds)."""
    def clock(t):
        ms = round(t * 1000)
        return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"
    path = Path(path)
    path.write_text("".join(f"{n}\n{clock(a)} --> {clock(b)}\n{line}\n\n" for n, (a, b, line) in
                            enumerate(cues, start=1)), encoding="utf-8")
    return path


def video_packets(path):
    """The video stream's packets, as bytes: equal lists mean the picture was copied, not re-encoded."""
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]


FRAME = 1 / 25


def assert_house(out, length):
    assert (out["vcodec"], out["pix_fmt"], out["width"], out["height"], out["fps"]) == ("h264", "yuv420p", 320, 180, 25)
    assert (out["acodec"], out["sample_rate"], out["channels"]) == ("aac", 48000, 2)
    assert out["faststart"]
    assert abs(out["frames"] * FRAME - length) <= FRAME + 1e-6, out
    assert abs(out["a_duration"] - out["frames"] * FRAME) <= FRAME + 1e-6, out


def changed(a, b, threshold=30):
    """The fraction of pixels that differ visibly between two frames."""
    return (np.abs(a.astype(int) - b.astype(int)).max(axis=2) > threshold).mean()


def png_bomb(path, side=30000):
    """A PNG that claims side x side pixels in a few hundred KB (1-bit, all zero)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\0" * (1 + side // 8)
    compressor, parts = zlib.compressobj(9), []
    parts.extend(compressor.compress(row) for _ in range(side))
    parts.append(compressor.flush())
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))
    return path


def r128(path, start=None, length=None) -> dict:
    """Integrated loudness (LUFS) and true peak (dBTP) of `path`'s sound, or of [start, start + length)."""
    window = []
    if start is not None:
        window = ["-ss", f"{start}", "-t", f"{length}"]
    done = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostats", "-nostdin", *window,
                           "-i", str(path), "-map", "0:a:0", "-af", "ebur128=peak=true", "-f", "null", "-"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = done.stderr[done.stderr.rindex("Summary:"):]
    integrated = float(re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary)[1])
    peak = re.search(r"True peak:\s+Peak:\s+(-?[\d.]+|-inf) dBFS", summary)[1]
    return {"i": integrated, "tp": float(peak)}


def assert_on_target(measured, target=-16.0, tolerance=1.0):
    assert abs(measured["i"] - target) <= tolerance, measured
    assert measured["tp"] <= -1.0, measured
