"""What each endpoint renders: validated data in, an `Output` back.

Each function builds its FFmpeg arguments with the pure builders, runs
them through the render (which records and checks them) and names the
download. Views stay thin; templates live in `templates.py`.
"""

from django.conf import settings

from . import builders
from .errors import invalid
from .lifecycle import Output, Render
from .output import download_name, write_graph
from .probe import keyframe_at_or_before


def trim(render: Render, data: dict) -> Output:
    video = data["video"]
    output = render.workspace.new_path("output", ".mp4")
    headers = {}
    if data["mode"] == "fast":
        if not builders.fast_trim_supported(video.info):
            raise invalid("mode", f"fast mode cannot copy {video.info.video_codec}/{video.info.audio_codec} into MP4; use accurate")
        keyframe = keyframe_at_or_before(video.path, video.info, data["start"])
        render.run_ffmpeg(builders.trim_fast_args(video.name, video.info, keyframe, data["clip_end"], output.name))
        headers["X-Trim-Start"] = builders.seconds(keyframe)
        details = {"mode": "fast", "real_start": keyframe}
    else:
        graph = render.workspace.new_path("graph", ".txt")
        args, text = builders.trim_accurate_args(
            video.name, video.info, data["output"], data["start"], data["clip_length"], graph.name, output.name
        )
        graph.write_text(text, encoding="utf-8")
        render.run_ffmpeg(args)
        headers["X-Trim-Start"] = builders.seconds(data["start"])
        details = {"mode": "accurate"}
    return Output(output, download_name(data, "trim", "mp4"), headers=headers, details=details)


def trim_preview(render: Render, data: dict) -> Output:
    video = data["video"]
    if data["format"] == "jpg":
        output = render.workspace.new_path("preview", ".jpg")
        render.run_ffmpeg(builders.preview_jpg_args(video.name, video.info, data["start"], data["height"], output.name))
        return Output(output, download_name(data, "trim-preview", "jpg"), content_type="image/jpeg")
    output = render.workspace.new_path("preview", ".mp4")
    render.run_ffmpeg(
        builders.preview_mp4_args(
            video.name, video.info, data["start"], data["clip_length"], data["height"],
            settings.VIDEOAPI_PREVIEW_CRF, output.name,
        )
    )  # fmt: skip
    return Output(output, download_name(data, "trim-preview", "mp4"))


def joins_by_copy(info, house) -> bool:
    """An input already in the requested house format: H.264 + AAC at the spec's canvas and frame rate."""
    return (info.has_audio and info.video_codec == "h264" and info.audio_codec == "aac" and info.rotation == 0
            and (info.width, info.height) == (house.width, house.height) and abs(info.fps - house.fps) < 0.01
            and not info.colour.hdr)


def join(render: Render, data: dict) -> Output:
    """Concatenate the ordered inputs: stream copy when possible, else one re-encode."""
    inputs = data["inputs"]
    infos = [item.info for item in inputs]
    output = render.workspace.new_path("output", ".mp4")
    crossfade = data["transition"] == "crossfade"
    house = data["output"]
    copyable = not crossfade and len({info.copy_layout() for info in infos}) == 1 and joins_by_copy(infos[0], house)
    if copyable:
        listing = render.workspace.new_path("inputs", ".ffconcat")
        listing.write_text(builders.concat_list([item.name for item in inputs]), encoding="utf-8")
        render.run_ffmpeg(builders.concat_copy_args(listing.name, infos[0].demuxer, house, output.name,
                                                    infos[0].audio_track))
        mode = "copy"
    else:
        chains, _length = builders.concat_graph(infos, house, data["transition_duration"] if crossfade else 0.0)
        args = []
        for item in inputs:
            args += builders.input_args(item.name, item.info)
        graph = write_graph(render, chains)
        render.run_ffmpeg(args + builders.graph_args(graph) + builders.house_output_args(house, output.name))
        mode = "reencode"
    return Output(
        output,
        download_name(data, render.log.endpoint, "mp4"),
        headers={"X-Concat-Mode": mode},
        details={"mode": mode, "inputs": len(inputs), "transition": data["transition"]},
    )
