"""A hostile corpus: every file refused with its documented status or rendered correctly.

Never a 500, nothing fetched (a loopback canary sees no request), nothing
left on disk (the autouse fixture), and the service healthy afterwards.
"""

import json
import struct

import pytest

from renders.models import RenderLog

from .. import media
from ..conftest import post, save
from ..media import png_bomb
from ..server import canary

pytestmark = pytest.mark.django_db


def claims_hours(source, path):
    """An MP4 whose movie and media headers claim ten hours (the samples last two seconds)."""
    data = bytearray(source.read_bytes())
    for box in (b"mvhd", b"mdhd"):
        at = data.find(box)
        while at != -1:
            version = data[at + 4]
            timescale_at = at + 4 + 4 + (16 if version == 1 else 8)
            timescale = struct.unpack(">I", data[timescale_at:timescale_at + 4])[0]
            if version == 1:
                data[timescale_at + 4:timescale_at + 12] = struct.pack(">Q", timescale * 36000)
            else:
                data[timescale_at + 4:timescale_at + 8] = struct.pack(">I", min(2**32 - 1, timescale * 36000))
            at = data.find(box, at + 4)
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, clips):
    d = tmp_path_factory.mktemp("hostile")
    items = {}
    with canary() as (url, hits):
        items["hls_file"] = d / "a.m3u8"
        items["hls_file"].write_text("#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n")
        items["hls_http"] = d / "b.m3u8"
        items["hls_http"].write_text(f"#EXTM3U\n#EXTINF:1,\n{url}/x.ts\n#EXT-X-ENDLIST\n")
        items["hls_bom"] = d / "c.m3u8"
        items["hls_bom"].write_bytes(b"\xef\xbb\xbf" + f"#EXTM3U\n#EXTINF:1,\n{url}/y.ts\n".encode())
        items["ffconcat"] = d / "d.txt"
        items["ffconcat"].write_text(f"ffconcat version 1.0\nfile '{url}/z.mp4'\nfile '/etc/passwd'\n")
        items["sdp"] = d / "e.sdp"
        items["sdp"].write_text("v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\n"
                                "m=video 5004 RTP/AVP 96\na=rtpmap:96 H264/90000\n")
        items["hours"] = claims_hours(clips.basic, d / "hours.mp4")
        items["8k"] = media.make(d / "8k.mkv", "-f", "lavfi", "-i", "color=c=gray:s=7680x4320:r=25:d=0.2",
                                 "-c:v", "ffv1")
        items["1000fps"] = media.make(d / "fast.mkv", "-f", "lavfi", "-i", "testsrc2=s=64x64:r=1000:d=0.1",
                                      "-c:v", "ffv1")
        items["bomb"] = png_bomb(d / "bomb.png")
        yield items, hits


REFUSED = {  # item -> (status, error code, words the answer must hold), as docs/API.md promises
    "hls_file": (415, "unsupported_media", None), "hls_http": (415, "unsupported_media", None),
    "hls_bom": (415, "unsupported_media", None), "ffconcat": (415, "unsupported_media", None),
    "sdp": (415, "unsupported_media", None),
    # past VIDEOAPI_MAX_INPUT_FPS (240): refused from the stream headers, naming the limit
    "1000fps": (400, "invalid_input",
                "the frame rate is 1000 fps; at most 240 fps is accepted (VIDEOAPI_MAX_INPUT_FPS)"),
}
RENDERED = {  # item -> the seconds its output lasts
    "hours": 2.0,  # headers claiming ten hours: the sample tables rule, rendered as the two seconds it really is
    "8k": 0.2,  # 7680x4320, what 8K phones record: inside the default frame-area limit (8K DCI)
}


@pytest.mark.parametrize("name", REFUSED)
def test_hostile_uploads_are_refused_before_ffmpeg(api, corpus, name):
    items, hits = corpus
    status, code, words = REFUSED[name]
    r = post(api, "/api/trim", {"video": items[name], "start": "0"})
    assert r.status_code == status, (name, r.status_code, r.body[:300])
    body = json.loads(r.body)
    assert body["code"] == code, body
    if words:
        assert body["fields"]["video"] == [words], body
    assert RenderLog.objects.get(id=r["X-Render-Id"]).ffmpeg_argv == []  # refused before FFmpeg
    assert hits == []


@pytest.mark.parametrize("name", RENDERED)
def test_hostile_uploads_render_as_what_they_really_are(api, corpus, tmp_path, name):
    items, hits = corpus
    r = post(api, "/api/trim", {"video": items[name], "start": "0"})
    assert r.status_code == 200, (name, r.status_code, r.body[:300])
    info = media.probe(save(r, tmp_path / "o.mp4"))
    assert (info["width"], info["height"]) == (320, 180)
    assert abs(info["frames"] * media.FRAME - RENDERED[name]) <= media.FRAME + 1e-6, info
    assert hits == []


def test_decompression_bomb_avatar(api, corpus, clips, tmp_path):
    items, _hits = corpus
    # a smaller bomb under Pillow's own guard is refused by ours, from its header
    r = post(api, "/api/persona/render",
             {"video": clips.basic, "name": "A", "avatar": png_bomb(tmp_path / "b.png", 9000)})
    assert r.status_code == 400 and "9000x9000" in json.loads(r.body)["fields"]["avatar"][0]
    assert items["bomb"].stat().st_size < 2_000_000
    r = post(api, "/api/persona/render", {"video": clips.basic, "name": "A", "avatar": items["bomb"]})
    assert r.status_code == 400 and "4096 px a side" in json.loads(r.body)["fields"]["avatar"][0]


@pytest.mark.parametrize(("value", "status"), [
    ("nul\x00inside", 400),
    ("\u202eevil.exe\u202c name", 200),  # bidi controls: drawn as the algorithm orders them
    ("a" + "\u0301" * 79, 200),  # a stack of combining marks within the length limit
    ("a" + "\u0301" * 500, 400),  # past it
    ("%{pts} %{localtime} %{eif:t:d} {x} [y] ; = $HOME", 200),
])
def test_hostile_text(api, clips, tmp_path, value, status):
    r = post(api, "/api/intro/render", {"video": clips.basic, "full_name": value, "team": "T", "role": "R",
                                        "start": "0.2", "duration": "1.5"})
    assert r.status_code == status, r.body[:300]
    if status == 200:
        assert media.probe(save(r, tmp_path / "o.mp4"))["vcodec"] == "h264"
    else:
        assert "full_name" in json.loads(r.body)["fields"]


def test_service_is_healthy_after_the_corpus(api, client, clips, corpus):
    assert client.get("/readyz").status_code == 200
    r = post(api, "/api/trim", {"video": clips.basic, "start": "1"})
    assert r.status_code == 200
