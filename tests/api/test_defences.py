"""Each defence proven on its own, not only through the layer in front of it.

The sniffing layer refuses playlists by their first bytes, so the demuxer
and protocol allow-lists behind it are never reached by the usual tests.
Here the sniffing is told to let a playlist through (as a bug in it might)
and nothing may be fetched; each allow-list is shown to stop its attack on
its own (one FFmpeg run with it, one without), and both are shown to be on
every probe and every FFmpeg input.
The early Content-Length check is proven by a client that sends only
headers.
"""


import pytest

from renders.errors import UndecodableMedia, UnsupportedMedia
from renders.media import ffmpeg, probe

from .. import media
from ..server import canary, gunicorn, read_head

pytestmark = pytest.mark.django_db


def playlist(path, segment):
    path.write_text(f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{segment}\n#EXT-X-ENDLIST\n")
    return path


@pytest.fixture
def sniffing_fooled(monkeypatch):
    """The first layer broken on purpose: playlists pass as an accepted demuxer."""
    monkeypatch.setattr(probe, "sniff", lambda path: "hls")
    monkeypatch.setattr(probe, "VIDEO_DEMUXERS", (*probe.VIDEO_DEMUXERS, "hls"))


def test_probe_behind_fooled_sniffing_fetches_nothing(sniffing_fooled, tmp_path):
    with canary() as (url, hits):
        path = playlist(tmp_path / "list.m3u8", f"{url}/segment.ts")
        with pytest.raises((UndecodableMedia, UnsupportedMedia)):
            probe.probe_video(path, "video")
    assert hits == []  # FFmpeg never asked


def test_probe_and_ffmpeg_carry_both_allow_lists():
    for demuxer in probe.VIDEO_DEMUXERS:
        assert probe._container_options(demuxer) == {"protocol_whitelist": "file", "format_whitelist": demuxer}
        options = probe.input_options(demuxer)
        assert options[options.index("-protocol_whitelist") + 1] == "file"
        assert options[options.index("-format_whitelist") + 1] == demuxer


def run(tmp_path, *args):
    return ffmpeg.run([*args, "-f", "null", "-"], cwd=tmp_path, timeout=30)


def test_protocol_allow_list_alone_stops_a_network_fetch(tmp_path):
    """Only -protocol_whitelist differs between the two runs: it alone keeps FFmpeg off the network."""
    with canary() as (url, hits):
        path = playlist(tmp_path / "list.m3u8", f"{url}/segment.ts")
        guarded = run(tmp_path, "-protocol_whitelist", "file", "-f", "hls", "-i", path.name)
        assert not guarded.ok and hits == []
        run(tmp_path, "-protocol_whitelist", "file,http,tcp", "-f", "hls", "-i", path.name)
        assert hits  # without it, FFmpeg does fetch


def test_format_allow_list_alone_stops_a_nested_demuxer(tmp_path, clips):
    """Only -format_whitelist differs: it alone keeps a playlist from opening its segments as another format."""
    segment = media.make(tmp_path / "segment.ts", "-i", str(clips.basic), "-c", "copy", "-f", "mpegts")
    path = playlist(tmp_path / "list.m3u8", segment.name)
    guarded = run(tmp_path, "-protocol_whitelist", "file", "-format_whitelist", "hls", "-f", "hls", "-i", path.name)
    assert not guarded.ok
    opened = run(tmp_path, "-protocol_whitelist", "file", "-format_whitelist", "hls,mpegts", "-f", "hls",
                 "-i", path.name)
    assert opened.ok, opened.stderr_tail


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_413_arrives_while_the_client_has_sent_only_headers(token, settings):
    with gunicorn() as (address, _proc):
        host, port = address.split(":")
        import socket

        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall((f"POST /api/trim HTTP/1.1\r\nHost: {address}\r\nAuthorization: Token {token}\r\n"
                          "Content-Type: multipart/form-data; boundary=x\r\n"
                          f"Content-Length: {settings.VIDEOAPI_MAX_UPLOAD_BYTES + 1}\r\n\r\n").encode())
            status, _headers, _body = read_head(sock)  # times out (5 s) if the server waits for the body
        assert status == 413
