"""Without the finishing fields a render is exactly what it was before they existed: byte for byte the same
FFmpeg commands and filter graphs.

`unfinished_commands.json` holds the commands that the code before finishing (captions, logo, music) built
for the plans below; the plans are made by hand (no probing, no FFmpeg), so the comparison is exact. To
record it again on purpose: `VIDEOAPI_RECORD_COMMANDS=1 pytest tests/plans/test_unfinished.py`.
"""

import json
import os
from pathlib import Path

from renders import plans
from renders.media.ffmpeg import FFmpegResult
from renders.media.probe import ImageInfo, MediaInfo
from renders.media.spec import Style, house_format
from renders.media.text import ACCENT, SUBTITLE, TITLE, Block, Card
from renders.plans import running

RECORDED = Path(__file__).with_name("unfinished_commands.json")
# what a loudness measure prints, as loudnorm's first pass (before) and as ebur128 (now) print it: a peaky
# sound, which loudnorm's dynamic mode handles (the linear case became a `volume` gain on purpose)
MEASURED = ('{"input_i" : "-27.70", "input_tp" : "-3.80", "input_lra" : "0.00", "input_thresh" : "-37.70", '
            '"output_i" : "-16.05", "normalization_type" : "dynamic", "target_offset" : "0.05"}\n'
            "  Integrated loudness:\n    I:         -27.7 LUFS\n    Threshold: -37.7 LUFS\n\n"
            "  Loudness range:\n    LRA:         0.0 LU\n    Threshold: -47.7 LUFS\n\n"
            "  True peak:\n    Peak:       -3.8 dBFS\n")


def info(**changes) -> MediaInfo:
    described = {"demuxer": "mov", "size": 100_000, "duration": 2.0, "video_codec": "h264", "width": 320, "height": 180,
                 "rotation": 0, "fps": 25.0, "sar": 1.0, "pix_fmt": "yuv420p", "audio_codec": "aac",
                 "sample_rate": 48000, "channels": 2, "channel_layout": "stereo", "video_config": "v",
                 "audio_config": "a"}
    return MediaInfo(**{**described, **changes})


def video(name, **changes):
    return plans.VideoInput("video", name, info(**changes))


def cases() -> dict:
    house, web = house_format(), house_format(loudness=-16.0)
    styled = house_format(canvas=(180, 320), fit="blur", fps=30, quality="high",
                          style=Style(text_color="#00FF00", box_color="#11223344"))
    cards = (Card((Block("Ada Lovelace", TITLE), Block("Engineer", SUBTITLE), Block("Team", ACCENT)),
                  "lower-left", 0.5, 1.5),)
    avatar = plans.ImageInput("avatar", "upload_2.bin", ImageInfo("png_pipe", 500, 64, 64))
    return {
        "trim": plans.TrimPlan(video("upload_1.bin"), 0.2, 1.4, "accurate", house, "trim.mp4"),
        "trim-styled": plans.TrimPlan(video("upload_1.bin", width=320, height=240, fps=30.0, audio_codec=None,
                                            sample_rate=None, channels=None, channel_layout=""),
                                      0.0, 2.0, "accurate", styled, "trim.mp4"),
        "trim-loudness": plans.TrimPlan(video("upload_1.bin"), 0.0, 2.0, "accurate", web, "trim.mp4"),
        "join-copy": plans.JoinPlan((video("upload_1.bin"), video("upload_2.bin")), "none", 0.5, house, "j.mp4"),
        "join-copy-loudness": plans.JoinPlan((video("upload_1.bin"), video("upload_2.bin")), "none", 0.5, web,
                                             "j.mp4"),
        "join-crossfade": plans.JoinPlan((video("upload_1.bin", width=640), video("upload_2.bin")), "crossfade",
                                         0.3, web, "j.mp4"),
        "intro": plans.TemplatePlan("intro", video("upload_1.bin"), cards, 0.5, 1.5, 2.0, house, "i.mp4"),
        "persona-demo-closing": plans.TemplatePlan("persona", video("upload_1.bin"), cards, 0.2, 0.9, 1.0, web,
                                                   "p.mp4", dim=True, speed=2.0, fade_out=0.5, avatar=avatar),
    }


class Numbered:
    """The workspace as an operation sees it: numbered file names (in a temporary directory)."""

    def __init__(self, path):
        self.path, self._counter = path, 0

    def new_path(self, prefix, suffix):
        self._counter += 1
        return self.path / f"{prefix}_{self._counter}{suffix}"


def commands(plan, path: Path) -> list:
    """Every command the plan's operation builds that writes a file, each with the filter graphs it reads.

    The loudness measures (`measures`: into the null muxer, or the limited sound's check encode) are left
    out: they changed on purpose (loudnorm's first pass became ebur128, then the limiter's checks came,
    docs/BENCHMARKS.md); what they measure is fed to the render the same way."""
    ran = []

    def run(args, measures=False):
        if not measures:
            graphs = {arg: (path / arg).read_text() for arg in args if arg.startswith(("graph_", "inputs_"))}
            ran.append({"args": args, "files": graphs})
        return FFmpegResult(args, 0, MEASURED, False, 0.0)

    running.perform(plan, Numbered(path), run)
    return ran


def test_commands_without_finishing_are_unchanged(tmp_path):
    found = {}
    for name, plan in cases().items():
        (tmp_path / name).mkdir()
        found[name] = commands(plan, tmp_path / name)
    if os.environ.get("VIDEOAPI_RECORD_COMMANDS"):
        RECORDED.write_text(json.dumps(found, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    expected = json.loads(RECORDED.read_text(encoding="utf-8"))
    assert set(found) == set(expected)
    for name in expected:
        assert found[name] == expected[name], name
