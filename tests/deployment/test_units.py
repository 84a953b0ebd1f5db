"""Pure pieces, tested without FFmpeg: builders, parsing, workspace safety."""

import os
from pathlib import Path

import pytest
from django.conf import settings

from renders.api.fields import parse_time, sanitize_filename
from renders.errors import PayloadTooLarge
from renders.lifecycle import locks, workspace
from renders.lifecycle.uploads import WorkspaceUploadHandler
from renders.media import builders
from renders.media.probe import MediaInfo, input_options
from renders.media.spec import OutputSpec, house_format

INFO = MediaInfo(demuxer="mov", size=1, duration=2.0, video_codec="h264", width=320, height=240, rotation=0,
                 fps=25, sar=1.0, pix_fmt="yuv420p", audio_codec="aac", sample_rate=44100, channels=1)
HOUSE = OutputSpec(width=1280, height=720, fps=30)


@pytest.mark.parametrize(("raw", "value"), [("2", 2), ("2.5", 2.5), (".5", 0.5), ("01:02", 62),
                                            ("1:02:03.250", 3723.25), ("00:00.5", 0.5), (" 3 ", 3)])
def test_parse_time(raw, value):
    assert parse_time(raw) == pytest.approx(value)


@pytest.mark.parametrize("raw", ["-1", "nan", "inf", "1e3", "abc", "1:2:3:4", "", "01:60", "1:61:00", "0x10"])
def test_parse_time_rejects(raw):
    with pytest.raises(ValueError):
        parse_time(raw)


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("final", "final.mp4"),
        ("final.mp4", "final.mp4"),
        ("../../etc/passwd", "passwd.mp4"),
        ("C:\\x\\y.mov", "y.mp4"),
        ('a"b\'c\x00d\ne', "a_b_c_d_e.mp4"),
        ("...", ""),
        ("x" * 300, "x" * 96 + ".mp4"),
        ("Résumé vidéo", "Résumé vidéo.mp4"),
    ],
)
def test_sanitize_filename(raw, name):
    assert sanitize_filename(raw, "mp4") == name


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


# ---- workspace ----


@pytest.fixture
def ws():
    space = workspace.Workspace.create("trim", "00000000-0000-4000-8000-000000000001")
    yield space
    space.delete()


def test_workspace_is_private_and_locked(ws):
    assert oct(os.stat(ws.path).st_mode & 0o777) == "0o700"
    assert ws.path.parent == Path(settings.VIDEOAPI_TEMP_ROOT).resolve()
    assert workspace.is_locked(ws.path)
    ws.delete()
    assert not ws.path.exists()
    ws.delete()  # idempotent


def test_try_lock_is_open_then_flock_without_waiting(tmp_path):
    """The one open-and-try-lock of slots, workspaces and the sweep: held, shared, waited for, never via a link."""
    path = tmp_path / "lock"
    with pytest.raises(FileNotFoundError):
        locks.try_lock(path)
    held = locks.try_lock(path, create=True)
    assert held is not None and oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert locks.try_lock(path) is None and locks.try_lock(path, shared=True, wait=0.1) is None
    assert locks.is_held(path)
    os.close(held)  # closing releases it
    assert not locks.is_held(path)
    first, second = locks.try_lock(path, shared=True), locks.try_lock(path, shared=True)
    assert first is not None and second is not None and locks.try_lock(path) is None
    os.close(first), os.close(second)
    os.symlink(path, tmp_path / "link")
    with pytest.raises(OSError):
        locks.try_lock(tmp_path / "link")


def test_workspace_refuses_existing_dir(ws):
    with pytest.raises(FileExistsError):
        workspace.Workspace.create("trim", "00000000-0000-4000-8000-000000000001")


def test_delete_never_follows_symlinks(ws, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("keep")
    os.symlink(precious, ws.path / "link")
    ws.delete()
    assert (precious / "keep.txt").read_text() == "keep"
    assert not ws.path.exists()


def test_remove_tree_refuses_paths_outside_the_root(tmp_path):
    victim = tmp_path / "trim_00000000-0000-4000-8000-000000000002"
    victim.mkdir()
    with pytest.raises(workspace.CleanupError):
        workspace.remove_tree(victim)
    assert victim.exists()
    with pytest.raises(workspace.CleanupError):
        workspace.remove_tree(workspace.temp_root() / "not-a-workspace")
    with pytest.raises(workspace.CleanupError):
        workspace.remove_tree(workspace.temp_root() / ".." / "trim_00000000-0000-4000-8000-000000000002")


def test_workspace_replaced_by_symlink_is_unlinked_not_followed(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "f").write_text("x")
    link = workspace.temp_root() / "trim_00000000-0000-4000-8000-000000000003"
    os.symlink(target, link)
    workspace.remove_tree(link)
    assert not os.path.lexists(link) and (target / "f").exists()


def test_upload_handler_counts_bytes_past_the_limit(ws):
    handler = WorkspaceUploadHandler(ws, max_bytes=1000)
    handler.new_file("video", "../../evil name.mp4", "video/mp4", None)
    handler.receive_data_chunk(b"x" * 600, 0)
    with pytest.raises(PayloadTooLarge):
        handler.receive_data_chunk(b"x" * 600, 600)
    names = [p.name for p in ws.path.iterdir()]
    assert names == [".lock", "upload_1.bin"] or sorted(names) == [".lock", "upload_1.bin"]


def test_upload_handler_names_files_itself(ws):
    handler = WorkspaceUploadHandler(ws, max_bytes=10_000)
    handler.new_file("video", "/etc/passwd", "video/mp4", None)
    handler.receive_data_chunk(b"abc", 0)
    uploaded = handler.file_complete(3)
    assert uploaded.path.parent == ws.path and uploaded.path.name == "upload_1.bin"
    assert uploaded.path.read_bytes() == b"abc" and uploaded.name == "passwd"
    uploaded.close()


@pytest.mark.parametrize("header", [b"Content-Disposition", b"content-disposition", b"CONTENT-DISPOSITION"])
def test_body_stream_names_the_part_being_read(header):
    """The field a 413 names: found however a client spells the header, also across a chunk edge."""
    from io import BytesIO

    from renders.lifecycle.uploads import BodyStream

    # the header straddles the end of the first 64 KiB read
    body = b"\x00" * 65_520 + b"\r\n--b\r\n" + header + b': form-data; name="full_name"\r\n\r\n' + b"x" * 1000
    stream = BodyStream(BytesIO(body), limit=10**6)
    while stream.read(65_536):
        pass
    assert stream.field == "full_name"


def test_every_error_code_is_known_to_the_admin_filter():
    """The admin's error-code filter lists ERROR_CODES without scanning the table: answer_for() never says another."""
    from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
    from django.db import OperationalError
    from django.http import Http404
    from rest_framework import exceptions

    from renders import errors

    def subclasses(cls):
        return [cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))]

    raised = [cls() for cls in subclasses(errors.ServiceError)] + [
        exceptions.ValidationError({"start": ["bad"]}), exceptions.NotAuthenticated(), exceptions.Throttled(3),
        exceptions.UnsupportedMediaType("text/plain"), exceptions.ParseError(), exceptions.MethodNotAllowed("GET"),
        PermissionDenied(), exceptions.NotFound(), Http404(), RequestDataTooBig(), SuspiciousOperation(),
        exceptions.NotAcceptable(), OperationalError("down"), ValueError("a bug"),
    ]
    codes = {errors.answer_for(exc).code for exc in raised}
    assert codes - set(errors.ERROR_CODES) == set()
    assert {"error", "unavailable", "internal_error", "insufficient_storage"} <= codes
