import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from . import media


def leftovers():
    root = Path(settings.VIDEOAPI_TEMP_ROOT)
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir() if p.name != ".slots")


@pytest.fixture(autouse=True)
def no_workspace_left_behind():
    """Every test ends with nothing under the temp root: a leak anywhere fails."""
    before = leftovers()
    assert before == [], f"temp root not empty before the test: {before}"
    yield
    after = leftovers()
    if after:
        for name in after:  # keep one leak from failing every later test
            shutil.rmtree(Path(settings.VIDEOAPI_TEMP_ROOT) / name, ignore_errors=True)
    assert after == [], f"workspaces left behind: {after}"


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    """Tiny generated inputs, made once per session."""
    d = tmp_path_factory.mktemp("clips")

    class Clips:
        pass

    c = Clips()
    c.dir = d
    # 2 s, 4:3, 25 fps, H.264 + AAC 44.1 kHz mono, keyframe every second
    c.basic = media.lavfi_clip(d / "basic.mp4")
    c.noaudio = media.lavfi_clip(d / "noaudio.mp4", audio=False)
    c.text = d / "notes.txt"
    c.text.write_text("hello, this is not a video\n" * 20)
    c.playlist = d / "list.m3u8"
    c.playlist.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n")
    c.png = media.make(d / "still.png", "-f", "lavfi", "-i", "color=c=red:s=64x64:d=1", "-frames:v", "1")
    data = c.basic.read_bytes()
    c.truncated = d / "truncated.mp4"
    faststart = media.lavfi_clip(d / "faststart.mp4", extra=["-movflags", "+faststart"])
    c.truncated.write_bytes(faststart.read_bytes()[: len(faststart.read_bytes()) // 2])
    c.truncated_tail = d / "truncated_tail.mp4"  # moov at the end, cut off
    c.truncated_tail.write_bytes(data[: len(data) // 2])
    return c


@pytest.fixture
def token(db):
    from django.contrib.auth.models import User

    user = User.objects.create_user("client", password="x-not-used")
    return Token.objects.create(user=user).key


@pytest.fixture
def api(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def post(client, url, data, **extra):
    """POST multipart and read the whole body (which closes the response)."""
    opened = []
    payload = {}
    for key, value in data.items():
        if isinstance(value, Path):
            handle = open(value, "rb")
            opened.append(handle)
            payload[key] = handle
        elif isinstance(value, list):
            items = []
            for item in value:
                if isinstance(item, Path):
                    handle = open(item, "rb")
                    opened.append(handle)
                    items.append(handle)
                else:
                    items.append(item)
            payload[key] = items
        else:
            payload[key] = value
    try:
        response = client.post(url, payload, format="multipart", **extra)
        if response.streaming:
            response.body = b"".join(response.streaming_content)
        else:
            response.body = response.content
        return response
    finally:
        for handle in opened:
            handle.close()


def save(response, path: Path) -> Path:
    path.write_bytes(response.body)
    return path
