import json

import av
import pytest

from renders.models import RenderLog

from .. import media
from ..conftest import post, save

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


def test_trailing_slash_and_final_filename(api, clips):
    r = post(api, "/api/trim/", {"video": clips.basic, "start": "00:00.5", "duration": "0.5",
                                 "final_filename": '../../etc/my "clip":1.mov'})
    assert r.status_code == 200
    assert r["Content-Disposition"] == 'attachment; filename="my _clip_1.mp4"'
    assert RenderLog.objects.get(id=r["X-Render-Id"]).params["start"] == 0.5


def test_trim_to_end_when_no_end_given(api, clips, tmp_path):
    r = post(api, "/api/trim", {"video": clips.noaudio, "start": "1"})
    assert r.status_code == 200
    out = media.probe(save(r, tmp_path / "o.mp4"))
    assert abs(out["frames"] * FRAME - 1.0) <= FRAME
    # a source without audio gets a silent stereo track of the same length
    assert out["acodec"] == "aac" and out["channels"] == 2
    assert abs(out["a_duration"] - out["frames"] * FRAME) <= FRAME


def test_fast_trim_copies_from_keyframe(api, clips, tmp_path):
    r = post(api, "/api/trim", {"video": clips.basic, "start": "1.3", "end": "1.9", "mode": "fast"})
    assert r.status_code == 200
    assert r["X-Trim-Start"] == "1"  # keyframes every second in the fixture
    out = media.probe(save(r, tmp_path / "o.mp4"))
    assert (out["width"], out["height"]) == (320, 240)  # copied, not re-encoded
    assert out["sample_rate"] == 44100 and out["channels"] == 1
    assert abs(out["frames"] * FRAME - 0.9) <= FRAME
    assert out["faststart"]
    assert RenderLog.objects.get(id=r["X-Render-Id"]).details == {"mode": "fast", "real_start": 1.0}


def test_preview_mp4_is_small_and_at_height(api, clips, tmp_path):
    r = post(api, "/api/trim/preview", {"video": clips.basic, "start": "0.2", "duration": "1", "height": "144"})
    assert r.status_code == 200
    assert r["Content-Disposition"] == 'attachment; filename="trim-preview.mp4"'
    out = media.probe(save(r, tmp_path / "p.mp4"))
    assert (out["width"], out["height"]) == (192, 144)
    assert abs(out["frames"] * FRAME - 1.0) <= FRAME
    assert out["acodec"] == "aac" and out["faststart"]


def test_preview_jpg_is_the_frame_at_start(api, clips, tmp_path):
    r = post(api, "/api/trim/preview", {"video": clips.basic, "start": "1", "format": "jpg",
                                        "final_filename": "thumb"})
    assert r.status_code == 200
    assert r["Content-Type"] == "image/jpeg"
    assert r["Content-Disposition"] == 'attachment; filename="thumb.jpg"'
    path = save(r, tmp_path / "p.jpg")
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
    assert (frame.width, frame.height) == (480, 360)  # height 360 default, 4:3 kept
    got = frame.to_ndarray(format="rgb24")[::3, ::3].astype(int)  # 160x120
    at_start = media.frame_at(clips.basic, 1.0)[::2, ::2].astype(int)  # 160x120
    elsewhere = media.frame_at(clips.basic, 0.0)[::2, ::2].astype(int)
    assert abs(got - at_start).mean() < 20
    assert abs(got - at_start).mean() < abs(got - elsewhere).mean() / 2


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({}, "start", "required"),
        ({"start": "abc"}, "start", "seconds"),
        ({"start": "-1"}, "start", ""),
        ({"start": "nan"}, "start", ""),
        ({"start": "inf"}, "start", ""),
        ({"start": "1e3"}, "start", ""),
        ({"start": "00:61"}, "start", "below 60"),
        ({"start": "0.5", "end": "1", "duration": "0.2"}, "end", "not both"),
        ({"start": "0.5", "end": "5"}, "end", "2.000 s long"),
        ({"start": "0.5", "duration": "9"}, "duration", "2.000 s long"),
        ({"start": "1.5", "end": "1.0"}, "end", "after start"),
        ({"start": "1.0", "end": "1.05"}, "end", "at least 0.1 s"),
        ({"start": "3"}, "start", "inside the video"),
        ({"start": "0", "mode": "quick"}, "mode", ""),
    ],
)
def test_trim_invalid_input(api, clips, fields, field, fragment):
    r = post(api, "/api/trim", {"video": clips.basic, **fields})
    assert r.status_code == 400, r.body
    body = error(r)
    assert body["code"] == "invalid_input"
    assert field in body["fields"], body
    assert fragment in " ".join(body["fields"][field])
    assert body["render_id"] == r["X-Render-Id"]
    log = RenderLog.objects.get(id=body["render_id"])
    assert log.status == "rejected" and log.http_status == 400 and log.cleanup_status == "deleted"
    assert "/" not in body["detail"]  # no server paths


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"start": "0", "height": "100"}, "height"),
        ({"start": "0", "height": "721"}, "height"),
        ({"start": "0", "format": "gif"}, "format"),
    ],
)
def test_preview_invalid_input(api, clips, fields, field):
    r = post(api, "/api/trim/preview", {"video": clips.basic, **fields})
    assert r.status_code == 400
    assert field in error(r)["fields"]


def test_preview_longer_than_limit(api, clips, settings):
    settings.VIDEOAPI_PREVIEW_MAX_SECONDS = 1
    r = post(api, "/api/trim/preview", {"video": clips.basic, "start": "0", "end": "1.5"})
    assert r.status_code == 400
    assert "at most 1 s" in error(r)["fields"]["end"][0]
    assert post(api, "/api/trim/preview", {"video": clips.basic, "start": "0", "end": "1"}).status_code == 200


def test_missing_video(api):
    r = post(api, "/api/trim", {"start": "0"})
    assert r.status_code == 400
    assert error(r)["fields"]["video"] == ["This field is required."]


@pytest.mark.parametrize("url", ["/api/trim", "/api/trim/preview"])
@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("text", 415, "unsupported_media"),
        ("playlist", 415, "unsupported_media"),
        ("png", 415, "unsupported_media"),
        ("truncated", 422, "undecodable_media"),
        ("truncated_tail", 422, "undecodable_media"),
    ],
)
def test_refused_uploads(api, clips, url, name, status, code):
    r = post(api, url, {"video": getattr(clips, name), "start": "0"})
    assert r.status_code == status, r.body
    body = error(r)
    assert body["code"] == code and "video" in body["fields"]
    log = RenderLog.objects.get(id=body["render_id"])
    assert log.status == "rejected" and log.error_code == code and log.ffmpeg_argv == []


def test_video_too_long(api, clips, settings):
    settings.VIDEOAPI_MAX_INPUT_SECONDS = 1.5
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0"})
    assert r.status_code == 400
    assert "at most 1.5 s" in error(r)["fields"]["video"][0]


def test_body_over_limit_refused_from_content_length(api, clips, settings):
    settings.VIDEOAPI_MAX_UPLOAD_BYTES = 10_000
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0"})
    assert r.status_code == 413
    body = error(r)
    assert body["code"] == "payload_too_large"
    log = RenderLog.objects.get(id=body["render_id"])
    assert log.status == "rejected" and log.inputs == []


@pytest.mark.parametrize("url", ["/api/trim", "/api/trim/preview"])
@pytest.mark.parametrize("header", [None, "Token wrong", "Bearer abc"])
def test_auth_required(client, clips, url, header, db):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    r = post(client, url, {"video": clips.basic, "start": "0"}, **extra)
    assert r.status_code == 401
    body = error(r)
    assert body["code"] == "not_authenticated" and "render_id" not in body
    assert RenderLog.objects.count() == 0


def test_auth_none_opens_the_api(client, clips, settings, db):
    settings.VIDEOAPI_AUTH = "none"
    r = post(client, "/api/trim", {"video": clips.basic, "start": "1"})
    assert r.status_code == 200
    assert RenderLog.objects.get(id=r["X-Render-Id"]).user is None


def test_get_is_not_allowed(api):
    r = api.get("/api/trim")
    assert r.status_code == 405
    assert r.json()["code"] == "method_not_allowed"
