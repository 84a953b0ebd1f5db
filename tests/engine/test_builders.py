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


def test_house_output_args_per_format(settings):
    """mp4's arguments are the house format's, unchanged; webm is VP9 + Opus; a gif maps no sound."""
    settings.VIDEOAPI_FFMPEG_THREADS = 0
    assert builders.house_output_args(HOUSE, "out.mp4") == [
        "-map", "[v]", "-map", "[a]", "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-profile:v", "high",
        "-pix_fmt", "yuv420p", "-r", "30", "-fps_mode", "cfr", "-video_track_timescale", "15360", "-g", "60",
        "-c:a", "aac", "-b:a", "160k", "-ar", "48000", "-ac", "2", "-map_metadata", "-1", "-map_chapters", "-1",
        "-movflags", "+faststart", "-f", "mp4", "out.mp4"]  # fmt: skip
    webm = " ".join(builders.house_output_args(OutputSpec(width=1280, height=720, fps=30, format="webm"), "o.webm"))
    for part in ["-map [v] -map [a]", "-c:v libvpx-vp9 -deadline realtime -cpu-used 8 -row-mt 1 -crf 30 -b:v 0",
                 "-c:a libopus -b:a 160k -ar 48000 -ac 2", "-f webm o.webm"]:
        assert part in webm, part
    gif = builders.house_output_args(OutputSpec(width=1280, height=720, fps=15, format="gif"), "o.gif", video="[g]")
    assert gif[:2] == ["-map", "[g]"] and gif.count("-map") == 1 and "-c:a" not in gif and gif[-3:] == ["-f", "gif",
                                                                                                       "o.gif"]


def test_output_picture_chain_and_ending():
    """mp4 and webm end a graph as it is; a gif's picture goes through its palette and its sound into a sink."""
    gif = OutputSpec(width=320, height=180, fps=15, format="gif")
    assert builders.output_picture_chain(HOUSE, "v", "v") == []
    assert builders.output_picture_chain(HOUSE, "pic", "v") == ["[pic]null[v]"]
    chains = builders.output_picture_chain(gif, "pic", "v")
    assert chains[0].startswith("[pic]split") and "palettegen" in chains[1] and chains[2].endswith("[v]")
    assert "paletteuse" in chains[2]
    assert builders.output_ending(HOUSE) == ([], "[v]")
    assert builders.output_ending(OutputSpec(width=320, height=180, fps=30, format="webm")) == ([], "[v]")
    ending, label = builders.output_ending(gif)
    assert label == "[gif]" and ending == builders.output_picture_chain(gif, "v", "gif") + ["[a]anullsink"]
    assert house_format(format="gif").fps == 15 and house_format(format="gif", fps=24).fps == 24
