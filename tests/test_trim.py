import json

import pytest

from renders.models import RenderLog

from . import media
from .conftest import post, save

pytestmark = pytest.mark.django_db

FRAME = 1 / 25


def error(response):
    body = json.loads(response.body)
    assert set(body) >= {"code", "detail", "fields"}
    return body


def test_accurate_trim_house_format(api, clips, tmp_path):
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0.5", "end": "1.5"})
    assert r.status_code == 200, r.body[:500]
    assert r["Content-Type"] == "video/mp4"
    assert r["Content-Disposition"] == 'attachment; filename="trim.mp4"'
    assert r["Cache-Control"] == "no-store"
    assert int(r["Content-Length"]) == len(r.body)
    out = media.probe(save(r, tmp_path / "o.mp4"))
    assert out["vcodec"] == "h264" and out["pix_fmt"] == "yuv420p"
    assert (out["width"], out["height"]) == (320, 180)
    assert out["fps"] == 25
    assert out["acodec"] == "aac" and out["sample_rate"] == 48000 and out["channels"] == 2
    assert out["faststart"]
    assert abs(out["frames"] * FRAME - 1.0) <= FRAME
    assert abs(out["a_duration"] - 1.0) <= FRAME
    log = RenderLog.objects.get(id=r["X-Render-Id"])
    assert log.status == "succeeded" and log.cleanup_status == "deleted" and log.http_status == 200
    assert log.params["mode"] == "accurate" and log.params["start"] == 0.5
    assert log.inputs[0]["video_codec"] == "h264"
    assert log.ffmpeg_exit_code == 0 and log.response_closed_at is not None
