"""POST /api/compose: the client's own edit rendered, proven from decoded frames and measured sound.

Flat-colour sources make colours exact; every test also checks (autouse
fixture) that no workspace is left behind.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from renders.lifecycle import worker
from renders.models import RenderLog

from .. import media
from ..conftest import post, save
from ..sources import serving

pytestmark = pytest.mark.django_db

FRAME = 1 / 25
W, H = 320, 180


def compose(api, edit, **headers):
    response = api.post("/api/compose", edit, format="json", **headers)
    response.body = b"".join(response.streaming_content) if response.streaming else response.content
    return response


def color_clip(color, start, length, **more):
    return {"asset": {"type": "color", "color": color}, "start": start, "length": length, **more}


def edit_of(*tracks, **more):
    return {"timeline": {"tracks": [{"clips": list(clips)} for clips in tracks], **more.pop("timeline", {})},
            **more}


def rgb(frame, x, y):
    return tuple(int(v) for v in frame[y, x])


def near(colour, expected, tolerance=12):
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected))


def render(api, edit, tmp_path, name="out.mp4", **headers):
    r = compose(api, edit, **headers)
    assert r.status_code == 200, r.body[:800]
    return r, save(r, tmp_path / name)


# ---- what is drawn, where and when ----------------------------------------------------------------


def test_tracks_layer_first_on_top_over_the_background(api, tmp_path):
    edit = edit_of([color_clip("#FF0000", 0, 1, scale=0.5)], [color_clip("#00FF00", 0.5, 1)],
                   timeline={"background": "#0000FF"})
    r, out = render(api, edit, tmp_path)
    assert r["Content-Type"] == "video/mp4" and r["Content-Disposition"] == 'attachment; filename="compose.mp4"'
    info = media.probe(out)
    assert (info["vcodec"], info["width"], info["height"], info["fps"]) == ("h264", W, H, 25)
    assert abs(info["frames"] * FRAME - 1.5) <= FRAME  # until the end of the last clip
    assert info["acodec"] == "aac" and abs(info["a_duration"] - 1.5) <= 2 * FRAME  # silence where nothing sounds
    early, middle, late = (media.frame_at(out, t) for t in (0.2, 0.7, 1.2))
    assert near(rgb(early, W // 2, H // 2), (255, 0, 0)) and near(rgb(early, 5, 5), (0, 0, 255))
    assert near(rgb(middle, W // 2, H // 2), (255, 0, 0)) and near(rgb(middle, 5, 5), (0, 255, 0))
    assert near(rgb(late, W // 2, H // 2), (0, 255, 0))
    # the red box is half the canvas, centred
    row = early[H // 2]
    red = [x for x in range(W) if near(tuple(int(v) for v in row[x]), (255, 0, 0), 40)]
    assert abs(min(red) - W // 4) <= 2 and abs(max(red) - (3 * W // 4 - 1)) <= 2
    log = RenderLog.objects.get(id=r["X-Render-Id"])
    assert log.endpoint == "compose" and log.status == "succeeded" and log.cleanup_status == "deleted"
    assert log.params["kind"] == "compose" and log.params["edit"]["timeline"]["background"] == "#0000FF"


def test_position_offset_and_opacity(api, tmp_path):
    clip = color_clip("#FFFFFF", 0, 1, scale=0.25, position="top-left", offset={"x": 0.1, "y": 0}, opacity=0.5)
    _r, out = render(api, edit_of([clip]), tmp_path)
    frame = media.frame_at(out, 0.5)
    margin = round(0.06 * H)
    x, y = margin + round(0.1 * W), margin
    assert near(rgb(frame, x + 5, y + 5), (128, 128, 128), 10)  # half-transparent white over black
    assert near(rgb(frame, x - 3, y + 5), (0, 0, 0), 10) and near(rgb(frame, x + 5, y - 3), (0, 0, 0), 10)


def test_video_clip_trim_length_and_sound_at_its_time(api, tmp_path, clips):
    tone = media.tone_clip(tmp_path / "tone.mp4", color="red", freq=880, seconds=2)
    edit = edit_of([{"asset": {"type": "video", "src": "attach:talk", "trim": 0.5}, "start": 1}])
    r = post(api, "/api/compose", {"edit": json.dumps(edit), "talk": tone})
    assert r.status_code == 200, r.body[:500]
    out = save(r, tmp_path / "o.mp4")
    info = media.probe(out)
    assert abs(info["frames"] * FRAME - 2.5) <= FRAME  # 1 s of background, then 1.5 s of the trimmed clip
    assert near(rgb(media.frame_at(out, 0.5), 10, 10), (0, 0, 0))
    assert near(rgb(media.frame_at(out, 1.5), W // 2, H // 2), (255, 0, 0), 30)  # contained: 4:3 in 16:9
    assert media.dominant_frequency(out, 1.5, 0.5) == pytest.approx(880, abs=20)
    assert media.r128(out, 0.1, 0.7)["tp"] < -60  # silence before the clip starts
    log = RenderLog.objects.get(id=r["X-Render-Id"])
    assert log.inputs[0]["field"] == "timeline.tracks[0].clips[0].asset.src"


def test_text_is_drawn_literally_inside_its_window(api, tmp_path):
    clip = {"asset": {"type": "text", "text": "Hello {{name}} <b>&amp;",
                      "style": {"color": "#FFFF00", "size": 0.12}}, "start": 0.4, "length": 0.6}
    edit = edit_of([clip], [color_clip("#000000", 0, 1.4)], merge={"name": "\"}, {\"x\": 1"})
    r, out = render(api, edit, tmp_path)
    yellow = [(media.frame_at(out, t)[..., 0] > 200) & (media.frame_at(out, t)[..., 2] < 80) for t in (0.2, 0.7, 1.2)]
    assert yellow[0].sum() == 0 and yellow[2].sum() == 0 and yellow[1].sum() > 100
    assert RenderLog.objects.get(id=r["X-Render-Id"]).params["edit"]["timeline"]["tracks"][0]["clips"][0][
        "asset"]["text"] == "Hello \"}, {\"x\": 1 <b>&amp;"


def test_fade_and_slide_transitions_over_what_lies_beneath(api, tmp_path):
    fade = color_clip("#FF0000", 0, 1, transition={"in": "fade", "duration": 0.4})
    slide = color_clip("#00FF00", 1, 1, transition={"in": "slide-left", "out": "wipe-right", "duration": 0.4})
    _r, out = render(api, edit_of([fade, slide], timeline={"background": "#0000FF"}), tmp_path)
    halfway = media.frame_at(out, 0.2)
    red, _green, blue = rgb(halfway, W // 2, H // 2)
    assert 90 < red < 170 and 90 < blue < 170  # the red fading in over the blue
    assert near(rgb(media.frame_at(out, 0.6), W // 2, H // 2), (255, 0, 0))
    sliding = media.frame_at(out, 1.2)  # half-way into the slide: the green covers the right half only
    assert near(rgb(sliding, W - 10, H // 2), (0, 255, 0), 30) and near(rgb(sliding, 10, H // 2), (0, 0, 255), 30)
    leaving = media.frame_at(out, 1.8)  # half-way out: wiped from one side
    left, right = rgb(leaving, 10, H // 2), rgb(leaving, W - 10, H // 2)
    assert {near(left, (0, 255, 0), 30), near(right, (0, 255, 0), 30)} == {True, False}


def test_ken_burns_zoom_moves_every_frame(api, tmp_path):
    """The classic zoompan trap moves in whole pixels (the picture stands still, then jumps): here the bright
    square's measured size grows every single frame."""
    square = np.zeros((90, 160, 3), np.uint8)
    square[35:55, 70:90] = 255
    Image.fromarray(square).save(tmp_path / "square.png")
    edit = edit_of([{"asset": {"type": "image", "src": "attach:picture"}, "start": 0, "length": 2,
                     "fit": "contain", "effect": "zoom-in"}])
    r = post(api, "/api/compose", {"edit": json.dumps(edit), "picture": tmp_path / "square.png"})
    assert r.status_code == 200, r.body[:500]
    out = save(r, tmp_path / "zoom.mp4")
    import av

    with av.open(str(out)) as container:
        areas = [frame.to_ndarray(format="gray").astype(float).sum() for frame in container.decode(video=0)]
    steps = np.diff(areas)
    assert len(areas) == 50
    assert (steps > 0).all(), steps  # never a frame without movement
    assert areas[-1] / areas[0] == pytest.approx(1.2 ** 2, rel=0.08)  # 1x to 1.2x


# ---- stills --------------------------------------------------------------------------------------


def test_a_png_still_is_the_frame_the_video_shows_then(api, tmp_path):
    edit = edit_of([{"asset": {"type": "text", "text": "Poster"}, "start": 0.5, "length": 1,
                     "transition": {"out": "slide-up"}}],
                   [color_clip("#204080", 0, 2, effect=None, transition={"in": "fade", "duration": 1})])
    _r, video = render(api, edit, tmp_path)
    edit["output"] = {"format": "png", "frame_at": 1.2}
    r, still = render(api, edit, tmp_path, "still.png")
    assert r["Content-Type"] == "image/png" and r["Content-Disposition"] == 'attachment; filename="compose.png"'
    picture = np.asarray(Image.open(still).convert("RGB")).astype(int)
    assert picture.shape == (H, W, 3)
    expected = media.frame_at(video, 1.2).astype(int)
    assert np.abs(picture - expected).mean() < 3
    edit["output"] = {"format": "jpg", "frame_at": 0.5}
    r, still = render(api, edit, tmp_path, "still.jpg")
    assert r["Content-Type"] == "image/jpeg" and Image.open(still).size == (W, H)


# ---- sources -------------------------------------------------------------------------------------


@pytest.fixture
def source_server(tmp_path, settings):
    settings.VIDEOAPI_FETCH_ALLOW_PRIVATE = True
    root = tmp_path / "www"
    root.mkdir()
    with serving(root) as server:
        yield server


def test_a_url_used_twice_is_fetched_once(api, tmp_path, source_server):
    media.tone_clip(source_server.root / "tone.mp4", color="blue", freq=440, seconds=1)
    url = f"{source_server.url}/tone.mp4"
    edit = edit_of([{"asset": {"type": "video", "src": url}, "start": 0, "scale": 0.5}],
                   [{"asset": {"type": "video", "src": url, "volume": -60}, "start": 0}])
    _r, out = render(api, edit, tmp_path)
    assert source_server.hits == ["/tone.mp4"]
    assert abs(media.probe(out)["frames"] * FRAME - 1.0) <= FRAME


def test_a_source_answering_404_is_400_naming_its_path(api, source_server):
    edit = edit_of([color_clip("#FFFFFF", 0, 1)], [{"asset": {"type": "image", "src": f"{source_server.url}/nope.png"},
                                                     "start": 0, "length": 1}])
    r = compose(api, edit)
    assert r.status_code == 400
    body = json.loads(r.body)
    assert list(body["fields"]) == ["timeline.tracks[1].clips[0].asset.src"]
    assert "404" in body["fields"]["timeline.tracks[1].clips[0].asset.src"][0]


def test_loopback_sources_are_refused_unless_allowed(api, settings):
    settings.VIDEOAPI_FETCH_ALLOW_PRIVATE = False
    edit = edit_of([{"asset": {"type": "image", "src": "http://127.0.0.1:9/x.png"}, "start": 0, "length": 1}])
    r = compose(api, edit)
    assert r.status_code == 400
    assert "loopback" in json.loads(r.body)["fields"]["timeline.tracks[0].clips[0].asset.src"][0]


@pytest.mark.django_db(transaction=True)  # the worker closes its connection when the job ends
def test_a_job_fetches_in_the_worker_and_a_failed_fetch_fails_it(api, source_server):
    edit = edit_of([{"asset": {"type": "video", "src": f"{source_server.url}/missing.mp4"}, "start": 0}])
    r = compose(api, edit, HTTP_PREFER="respond-async")
    assert r.status_code == 202
    assert source_server.hits == []  # the 202 comes before any fetch
    job_id = json.loads(r.body)["id"]
    worker.run(job_id)
    log = RenderLog.objects.get(pk=job_id)
    assert source_server.hits == ["/missing.mp4"]
    assert log.status == "rejected" and log.error_code == "invalid_input" and "404" in log.error_message
    assert not Path(log.workspace).exists()
    job = api.get(f"/api/jobs/{job_id}").data
    assert job["status"] == "failed" and job["error"]["code"] == "invalid_input"


@pytest.mark.django_db(transaction=True)
def test_a_job_renders_its_fetched_source(api, source_server, tmp_path):
    media.tone_clip(source_server.root / "red.mp4", color="red", freq=440, seconds=1)
    edit = edit_of([{"asset": {"type": "video", "src": f"{source_server.url}/red.mp4"}, "start": 0}])
    r = compose(api, edit, HTTP_PREFER="respond-async")
    job_id = json.loads(r.body)["id"]
    worker.run(job_id)
    result = api.get(f"/api/jobs/{job_id}/result")
    assert result.status_code == 200
    out = tmp_path / "job.mp4"
    out.write_bytes(b"".join(result.streaming_content))
    assert near(rgb(media.frame_at(out, 0.5), W // 2, H // 2), (255, 0, 0), 30)
    assert RenderLog.objects.get(pk=job_id).inputs[0]["video_codec"] == "h264"


# ---- refusals ------------------------------------------------------------------------------------


def fields_of(response):
    assert response.status_code == 400, response.body[:500]
    body = json.loads(response.body)
    assert body["code"] == "invalid_input"
    return body["fields"]


def test_every_problem_is_listed_under_its_path(api):
    edit = {"timeline": {"background": "red", "tracks": [
        {"clips": [{"asset": {"type": "image", "src": "ftp://example.com/a.png"}, "start": -1, "length": 1}]},
        {"clips": [{"asset": {"type": "text", "text": "hi"}, "start": 0},
                   {"asset": {"type": "spinner"}, "start": 0, "length": 1},
                   {"asset": {"type": "color", "color": "#FFF"}, "start": 0, "length": 1, "opacty": 1}]}]},
        "output": {"format": "avi", "fps": 7}}
    fields = fields_of(compose(api, edit))
    assert fields == {
        "timeline.background": ["must be #RRGGBB"],
        "timeline.tracks[0].clips[0].asset.src": ["must be an https:// or http:// URL, attach:<field> or upload:<id>"],
        "timeline.tracks[0].clips[0].start": ["must be at least 0"],
        "timeline.tracks[1].clips[0].length": ["required for a text clip"],
        "timeline.tracks[1].clips[1].asset": ["type must be one of: video, image, text, color, audio, captions"],
        "timeline.tracks[1].clips[2].asset.color": ["must be #RRGGBB or #RRGGBBAA"],
        "timeline.tracks[1].clips[2].opacty": ["unknown field"],
        "output.format": ["must be one of: mp4, webm, gif, png or jpg"],
        "output.fps": ["must be one of: 24, 25, 30, 50 or 60"],
    }


def test_merge_fields_missing_and_values_that_are_not_text(api):
    edit = edit_of([{"asset": {"type": "text", "text": "Hi {{name}}, {{ team }}"}, "start": 0, "length": 1}],
                   merge={"team": {"nested": True}})
    fields = fields_of(compose(api, edit))
    assert fields == {"merge.team": ["must be text"],
                      "merge.name": ["missing: used by timeline.tracks[0].clips[0].asset.text"]}


def test_a_merge_value_that_looks_like_a_placeholder_is_text(api, tmp_path):
    edit = edit_of([{"asset": {"type": "text", "text": "{{a}}"}, "start": 0, "length": 1}], merge={"a": "{{b}}"})
    r, _out = render(api, edit, tmp_path)
    log = RenderLog.objects.get(id=r["X-Render-Id"])
    assert log.params["layers"][0]["text"] == "{{b}}"  # drawn as it is: never substituted again


def test_a_merge_value_cannot_change_the_structure(api, tmp_path):
    edit = edit_of([color_clip("{{c}}", 0, 1)], merge={"c": "#FF0000\", \"scale\": 0.1"})
    fields = fields_of(compose(api, edit))
    assert fields == {"timeline.tracks[0].clips[0].asset.color": ["must be #RRGGBB or #RRGGBBAA"]}
    edit["merge"]["c"] = "#FF0000"
    _r, out = render(api, edit, tmp_path)
    assert near(rgb(media.frame_at(out, 0.5), 5, 5), (255, 0, 0))


def test_what_an_audio_clip_cannot_have_and_other_cross_field_rules(api, clips):
    edit = edit_of([{"asset": {"type": "audio", "src": "attach:a"}, "start": 0, "opacity": 0.5},
                    {"asset": {"type": "text", "text": "x"}, "start": 0, "length": 1, "effect": "zoom-in"},
                    color_clip("#FFFFFF", 0, 0.5, transition={"in": "fade", "out": "fade", "duration": 0.3})])
    fields = fields_of(compose(api, edit))
    assert fields == {"timeline.tracks[0].clips[0].opacity": ["does not apply (an audio clip is not seen)"],
                      "timeline.tracks[0].clips[1].effect": ["applies to video and image clips"],
                      "timeline.tracks[0].clips[2].transition": [
                          "in and out need at most half the clip's length each"]}


def test_limits_of_the_timeline(api, settings):
    fields = fields_of(compose(api, edit_of(*[[color_clip("#FFFFFF", 0, 1)]] * 11)))
    assert fields == {"timeline.tracks": ["at most 10 items"]}
    fields = fields_of(compose(api, edit_of([color_clip("#FFFFFF", i, 1) for i in range(101)])))
    assert list(fields) == ["timeline.tracks[0].clips"]
    settings.VIDEOAPI_MAX_OUTPUT_SECONDS = 5
    fields = fields_of(compose(api, edit_of([color_clip("#FFFFFF", 4.5, 1)])))
    assert fields == {"timeline": ["the video would be 5.500 s long: at most 5 s (VIDEOAPI_MAX_OUTPUT_SECONDS)"]}
    fields = fields_of(compose(api, edit_of([color_clip("#FFFFFF", 0, 1)], output={"format": "png",
                                                                                    "frame_at": 1})))
    assert fields == {"output.frame_at": ["must be before the end of the video (1.000 s)"]}


def test_files_named_but_not_attached_and_unknown_uploads(api):
    edit = edit_of([{"asset": {"type": "image", "src": "attach:logo"}, "start": 0, "length": 1},
                    {"asset": {"type": "image", "src": "upload:abc"}, "start": 0, "length": 1}])
    fields = fields_of(compose(api, edit))
    assert fields == {"timeline.tracks[0].clips[0].asset.src": ["no file was attached as 'logo'"],
                      "timeline.tracks[0].clips[1].asset.src": ["no such upload"]}


def test_a_trim_past_the_source_is_refused_after_probing(api, clips):
    edit = edit_of([{"asset": {"type": "video", "src": "attach:v", "trim": 5}, "start": 0}])
    r = post(api, "/api/compose", {"edit": json.dumps(edit), "v": clips.basic})
    assert fields_of(r) == {"timeline.tracks[0].clips[0].asset.trim": [
        "must be less than the source's length (2.000 s)"]}


def test_bodies_that_are_not_an_edit(api):
    for body, content_type in ((b"{not json", "application/json"), (b"[1, 2]", "application/json")):
        r = api.post("/api/compose", body, content_type=content_type)
        assert r.status_code == 400 and "edit" in r.json()["fields"]
    r = api.post("/api/compose", b"x" * (1024 * 1024 + 10), content_type="application/json")
    assert r.status_code == 413 and r.json()["fields"] == {"edit": ["at most 1048576 bytes of JSON"]}
    r = api.post("/api/compose", {"other": "x"}, format="multipart")
    assert r.status_code == 400 and list(r.json()["fields"]) == ["edit"]
    r = api.post("/api/compose", b"edit", content_type="text/plain")
    assert r.status_code == 415


def test_the_edit_schema_is_published_and_accepts_a_valid_edit(api):
    import jsonschema

    schema = api.get("/api/compose/schema").json()
    edit = edit_of([color_clip("#FFFFFF", 0, 1, transition={"in": "fade"})],
                   output={"format": "png", "canvas": "9:16"})
    jsonschema.validate(edit, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(edit_of([color_clip("#FFFFFF", 0, 1, spin=True)]), schema)


# ---- sound, formats and the finishing a composition shares -----------------------------------------


def test_audio_clips_and_a_ducked_soundtrack(api, tmp_path):
    voice = media.make(tmp_path / "voice.wav", "-f", "lavfi", "-i", "sine=f=1000:d=1:r=48000")
    music = media.make(tmp_path / "music.wav", "-f", "lavfi", "-i", "sine=f=300:d=3:r=48000")
    edit = edit_of([color_clip("#000000", 0, 3),
                    {"asset": {"type": "audio", "src": "attach:voice", "volume": -3}, "start": 1}],
                   timeline={"soundtrack": {"src": "attach:music", "volume": -12, "ducking": True}})
    r = post(api, "/api/compose", {"edit": json.dumps(edit), "voice": voice, "music": music})
    assert r.status_code == 200, r.body[:500]
    out = save(r, tmp_path / "o.mp4")
    assert media.dominant_frequency(out, 0.3, 0.5) == pytest.approx(300, abs=15)  # the soundtrack alone
    assert media.dominant_frequency(out, 1.3, 0.5) == pytest.approx(1000, abs=15)  # the voice over it, ducked
    alone, under = (band_level(out, start, 300) for start in (0.3, 1.4))
    assert alone - under > 6  # the soundtrack dips under the voice
    assert RenderLog.objects.get(id=r["X-Render-Id"]).details["sounds"] == 1


def band_level(path, start, frequency, length=0.4):
    """dB of `frequency` (+-20 Hz) in the sound from `start`."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        samples = np.concatenate([f.to_ndarray()[0] for f in container.decode(stream)])
    window = samples[int(start * rate):int((start + length) * rate)]
    spectrum = np.abs(np.fft.rfft(window))
    bins = np.fft.rfftfreq(len(window), 1 / rate)
    return 20 * np.log10(spectrum[(bins > frequency - 20) & (bins < frequency + 20)].max() + 1e-12)


def test_loudness_applies_to_the_mix(api, tmp_path):
    tone = media.tone_clip(tmp_path / "tone.mp4", color="gray", freq=440, seconds=2)
    edit = edit_of([{"asset": {"type": "video", "src": "attach:v", "volume": -20}, "start": 0}],
                   output={"loudness": "web"})
    r = post(api, "/api/compose", {"edit": json.dumps(edit), "v": tone})
    assert r.status_code == 200, r.body[:500]
    measured = media.r128(save(r, tmp_path / "o.mp4"))
    media.assert_on_target(measured, -16.0)
    log = RenderLog.objects.get(id=r["X-Render-Id"])
    assert log.details["loudness"]["target"] == -16.0


def test_webm_and_gif_outputs(api, tmp_path):
    edit = edit_of([color_clip("#FF0000", 0, 1, transition={"in": "fade"})], output={"format": "webm"})
    r, out = render(api, edit, tmp_path, "o.webm")
    info = media.probe(out)
    assert r["Content-Type"] == "video/webm" and r["Content-Disposition"] == 'attachment; filename="compose.webm"'
    assert (info["vcodec"], info["acodec"]) == ("vp9", "opus")
    assert abs(info["frames"] * FRAME - 1.0) <= FRAME
    edit["output"] = {"format": "gif", "canvas": "256x144"}
    r, out = render(api, edit, tmp_path, "o.gif")
    info = media.probe(out)
    assert r["Content-Type"] == "image/gif" and info["vcodec"] == "gif" and info.get("acodec") is None
    assert (info["width"], info["height"], info["frames"]) == (256, 144, 15)  # 15 fps by default
    assert near(rgb(media.frame_at(out, 0.9), 128, 72), (255, 0, 0), 20)


def test_gif_limits(api):
    fields = fields_of(compose(api, edit_of([color_clip("#FF0000", 0, 61)], output={"format": "gif"})))
    assert fields == {"output.format": ["a gif is at most 60 s long (this one would be 61.000 s)"]}
    fields = fields_of(compose(api, edit_of([color_clip("#FF0000", 0, 1)], output={"format": "gif", "fps": 60,
                                                                                    "loudness": "web"})))
    assert fields == {"output.fps": ["a gif is at most 30 fps"], "output.loudness": ["a gif has no sound"]}


def test_image_alpha_and_fit_blur(api, tmp_path):
    picture = np.zeros((40, 40, 4), np.uint8)
    picture[:, :20] = (255, 255, 255, 255)  # left half opaque white, right half transparent
    Image.fromarray(picture, "RGBA").save(tmp_path / "half.png")
    tall = media.make(tmp_path / "tall.mp4", "-f", "lavfi", "-i", "color=c=yellow:s=90x160:r=25:d=1",
                      "-c:v", "libx264", "-pix_fmt", "yuv420p")
    edit = edit_of([{"asset": {"type": "image", "src": "attach:half"}, "start": 0, "length": 1, "fit": "none",
                     "scale": 2}],
                   [{"asset": {"type": "video", "src": "attach:tall"}, "start": 0, "fit": "blur"}])
    r = post(api, "/api/compose", {"edit": json.dumps(edit), "half": tmp_path / "half.png", "tall": tall})
    assert r.status_code == 200, r.body[:500]
    frame = media.frame_at(save(r, tmp_path / "o.mp4"), 0.5)
    assert near(rgb(frame, W // 2 - 20, H // 2), (255, 255, 255), 20)  # the opaque half, 80 px wide at scale 2
    assert near(rgb(frame, W // 2 + 20, H // 2), (255, 255, 0), 40)  # the transparent half shows the video
    edge = rgb(frame, 10, H // 2)  # beside the contained video: its blurred, darkened copy, not black
    assert edge[0] > 100 and edge[1] > 100 and edge[2] < 80


def test_a_captions_clip_shows_its_cues_from_its_start(api, tmp_path):
    subtitles = media.srt(tmp_path / "c.srt", (0.0, 0.5, "FIRST LINE"))
    edit = edit_of([{"asset": {"type": "captions", "src": "attach:subs"}, "start": 1, "length": 1}],
                   [color_clip("#000000", 0, 2)])
    r = post(api, "/api/compose", {"edit": json.dumps(edit), "subs": subtitles})
    assert r.status_code == 200, r.body[:500]
    out = save(r, tmp_path / "o.mp4")
    bright = [(media.frame_at(out, t).sum(axis=2) > 600).sum() for t in (0.5, 1.2, 1.8)]
    assert bright[0] == 0 and bright[1] > 50 and bright[2] == 0


def test_an_hdr_source_is_tone_mapped_as_everywhere_else(api, tmp_path):
    hdr = media.pq_patches(tmp_path / "hdr.mp4", [100, 1000], seconds=1)
    edit = edit_of([{"asset": {"type": "video", "src": "attach:v"}, "start": 0}])
    r = post(api, "/api/compose", {"edit": json.dumps(edit), "v": hdr})
    assert r.status_code == 200, r.body[:500]
    composed = media.frame_at(save(r, tmp_path / "c.mp4"), 0.5).astype(int)
    r = post(api, "/api/trim", {"video": hdr, "start": "0"})
    trimmed = media.frame_at(save(r, tmp_path / "t.mp4"), 0.5).astype(int)
    assert np.abs(composed - trimmed).mean() < 4
    assert composed[H // 2, W // 4].mean() + 20 < composed[H // 2, 3 * W // 4].mean()  # 100 nits below 1000


def test_options_and_the_openapi_schema_describe_compose(api):
    options = api.get("/api/options").json()["compose"]
    assert options["transitions"] == ["fade", "wipe-left", "wipe-right", "slide-left", "slide-right", "slide-up",
                                      "slide-down"]
    assert options["effects"] == ["zoom-in", "zoom-out", "pan-left", "pan-right"]
    assert options["formats"] == ["mp4", "webm", "gif", "png", "jpg"] and options["limits"]["clips"] == 100
    doc = api.get("/api/schema", HTTP_ACCEPT="application/json").json()
    body = doc["paths"]["/api/compose"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"] == {"$ref": "#/components/schemas/ComposeEdit"}
    schemas = doc["components"]["schemas"]

    def refs(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    yield value
                else:
                    yield from refs(value)
        elif isinstance(node, list):
            for item in node:
                yield from refs(item)

    missing = {ref for ref in refs(doc) if ref.rsplit("/", 1)[1] not in schemas}
    assert missing == set()
    assert "ComposeEditClip" in schemas and "opacity" in schemas["ComposeEditClip"]["properties"]
    example = body["application/json"]["example"]
    import jsonschema

    jsonschema.validate(example, api.get("/api/compose/schema").json())
    assert compose(api, example).status_code == 200  # what "Try it out" sends untouched renders


def test_the_plan_is_stored_whole_and_loads_back_equal(api, tmp_path, clips):
    """The RenderLog's params are the resolved ComposePlan: loaded back, it is the same value (what a job's
    worker does with the plan stored at its 202)."""
    from renders import plans

    edit = edit_of([{"asset": {"type": "text", "text": "Hi"}, "start": 0, "length": 1},
                    {"asset": {"type": "video", "src": "attach:v", "trim": 0.5}, "start": 0.5,
                     "transition": {"in": "wipe-left", "out": "slide-down", "duration": 0.2}}],
                   timeline={"soundtrack": {"src": "attach:v"}})
    r = post(api, "/api/compose", {"edit": json.dumps(edit), "v": clips.basic})
    assert r.status_code == 200, r.body[:300]
    params = RenderLog.objects.get(id=r["X-Render-Id"]).params
    plan = plans.load(params)
    assert isinstance(plan, plans.ComposePlan) and plan.resolved and plan.duration == 2.0
    assert plans.dump(plan) == params
    assert [source.media for source in plan.sources] == ["video", "audio"]  # one file, used two ways
    assert plan.layers[1].transition_out == "slide-down" and plan.layers[1].length == 1.5


def test_a_callback_url_is_checked_with_the_rest_of_the_edit(api):
    edit = edit_of([color_clip("#FFFFFF", -1, 1)], callback_url="http://127.0.0.1:9/hook")
    fields = fields_of(compose(api, edit, HTTP_PREFER="respond-async"))
    assert set(fields) == {"timeline.tracks[0].clips[0].start", "callback_url"}
    assert "loopback" in fields["callback_url"][0]
    assert not RenderLog.objects.filter(is_job=True).exists()
