"""FFmpeg's arguments and filter graphs built from plain values, without running FFmpeg: inputs locked to one
demuxer and local files, the thread budget, the house format's output, the fast trim."""

from renders.media import builders
from renders.media.probe import MediaInfo, input_options
from renders.media.spec import OutputSpec, house_format

INFO = MediaInfo(demuxer="mov", size=1, duration=2.0, video_codec="h264", width=320, height=240, rotation=0,
                 fps=25, sar=1.0, pix_fmt="yuv420p", audio_codec="aac", sample_rate=44100, channels=1)
HOUSE = OutputSpec(width=1280, height=720, fps=30)


def test_inputs_are_locked_to_one_demuxer_and_local_files(settings):
    settings.VIDEOAPI_FFMPEG_THREADS = 0
    args = builders.input_args("upload_1.bin", INFO, start=1.5, duration=2)
    assert args == ["-ss", "1.5", "-t", "2", "-protocol_whitelist", "file", "-format_whitelist", "mov",
                    "-f", "mov", "-i", "upload_1.bin"]
    assert input_options("matroska")[-1] == "matroska"


def test_every_run_gets_the_thread_budget(settings):
    """Decoder, filter graph and x264 each get VIDEOAPI_FFMPEG_THREADS; 0 leaves FFmpeg's own choice."""
    spec = house_format()
    settings.VIDEOAPI_FFMPEG_THREADS = 3
    args = builders.trim_accurate_args("in.mp4", INFO, spec, 0, 1, "g.txt", "out.mp4")
    assert args.index("-threads") < args.index("-i")  # the decoder's
    assert args[args.index("-filter_complex_threads") + 1] == "3"
    last = len(args) - 1 - args[::-1].index("-threads")
    assert last > args.index("-i") and args[last + 1] == "3"  # x264's, an output option
    assert args.count("-threads") == 2
    preview = builders.preview_mp4_args("in.mp4", INFO, 0, 1, 144, 30, "p.mp4")
    assert preview.count("-threads") == 2 and preview[preview.index("-filter_threads") + 1] == "3"
    # the preview decodes without deblocking (before its input); a house-format trim never does
    assert preview.index("-skip_loop_filter:v") < preview.index("-i") and "-skip_loop_filter:v" not in args
    settings.VIDEOAPI_FFMPEG_THREADS = 0
    args = builders.trim_accurate_args("in.mp4", INFO, spec, 0, 1, "g.txt", "out.mp4")
    assert "-threads" not in args and "-filter_complex_threads" not in args


def test_seconds_formatting():
    assert builders.seconds(1.0) == "1"
    assert builders.seconds(0.1 + 0.2) == "0.3"
    assert builders.seconds(1e-9) == "0"
    assert builders.seconds(-4) == "0"


def test_normalize_graph_with_and_without_audio():
    chains = builders.normalize_graph(0, INFO, HOUSE, 2.0)
    assert chains[0].startswith("[0:v:0]scale=1280:720:force_original_aspect_ratio=decrease")
    assert "pad=1280:720:(ow-iw)/2:(oh-ih)/2" in chains[0] and "fps=30:start_time=0" in chains[0]
    assert chains[0].endswith("[v]") and "trim=end=2" in chains[0]
    assert chains[1].startswith("[0:a:0]aresample=48000") and "atrim=end=2" in chains[1]
    silent = builders.normalize_graph(1, MediaInfo(**{**INFO.__dict__, "audio_codec": None}), HOUSE, 1.5)
    assert silent[1].startswith("anullsrc=channel_layout=stereo:sample_rate=48000:duration=1.5")
    anamorphic = builders.normalize_graph(0, MediaInfo(**{**INFO.__dict__, "sar": 1.333}), HOUSE, 1)
    assert "scale=trunc(iw*sar/2)*2:ih,setsar=1" in anamorphic[0]


def test_house_output_args():
    args = builders.house_output_args(HOUSE, "out.mp4")
    joined = " ".join(args)
    for part in ["-c:v libx264", "-pix_fmt yuv420p", "-r 30", "-c:a aac", "-ar 48000", "-ac 2",
                 "-movflags +faststart", "-f mp4 out.mp4"]:
        assert part in joined


def test_fast_trim_args_and_support():
    args = builders.trim_fast_args("in.bin", INFO, 1.0, 1.9, "out.mp4")
    assert args[:2] == ["-ss", "1"] and "-c" in args and args[args.index("-c") + 1] == "copy"
    assert args[args.index("-t", 3) + 1] == "0.9"
    assert builders.fast_trim_supported(INFO)
    assert not builders.fast_trim_supported(MediaInfo(**{**INFO.__dict__, "audio_codec": "pcm_s16le"}))
