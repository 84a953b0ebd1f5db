"""A render's workspace and upload handling on their own: private, locked, never followed through a symlink
or outside the temp root; uploads counted and named by the service; the part being read named in an error."""

import os
from pathlib import Path

import pytest
from django.conf import settings

from renders.errors import PayloadTooLarge
from renders.lifecycle import locks, workspace
from renders.lifecycle.uploads import WorkspaceUploadHandler


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
    assert sorted(names) == [".lock", "upload_1.bin"]


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
