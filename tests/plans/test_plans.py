"""A render is a value: every endpoint's plan survives JSON unchanged and runs the same from it.

Each request below goes through the real view. A spy around `perform`
takes the plan the serializer made, sends it through JSON and back, checks
it is equal, runs the operation of the reloaded plan with a recording
runner, then lets the real render run: the commands must be the same (up
to the workspace's numbered file names), and the RenderLog's parameters
must be exactly the dumped plan.
"""

import json
import re

import pytest
from pydantic import ValidationError

from renders import plans
from renders.api import views
from renders.media import fonts
from renders.models import RenderLog
from renders.plans import running

from ..conftest import post

NUMBERED = re.compile(r"\b(?!upload_)(\w+?)_\d+(\.\w+)\b")  # what the operation writes; uploads keep their names

REQUESTS = [
    ("/api/trim", {"start": "0.2", "end": "1.4", "canvas": "9:16", "fit": "blur", "fps": "50", "quality": "draft",
                   "final_filename": "my cut.mov"}),
    ("/api/trim", {"start": "00:00.5", "duration": "1", "mode": "fast"}),
    ("/api/trim", {"start": "0", "canvas": "240x136", "fit": "cover", "quality": "high", "fps": "24"}),
    ("/api/trim/preview", {"start": "0.5", "format": "jpg", "height": "144"}),
    ("/api/trim/preview", {"start": "0.2", "end": "1.2", "height": "160"}),
    ("/api/concatenate", {"videos": 2, "transition": "crossfade", "transition_duration": "0.3", "canvas": "1:1"}),
    ("/api/concatenate-multipart", {"segment_3": "video", "segment_10": "video", "order_10": "-1"}),
    ("/api/intro/render", {"full_name": "Ada Lovelace", "role": "Engineer", "team": "Analytical", "start": "0.2",
                           "duration": "1", "text_color": "#00FF00", "box_color": "#11223344", "canvas": "4:5"}),
    ("/api/announcement/render", {"headline": "שלום عالم", "subheadline": "second line", "font": "default",
                                  "accent_color": "#123456", "fit": "contain", "quality": "high"}),
    ("/api/how-it-works/render", {"steps": '["One", "Two", "Three"]', "title": "How", "step_duration": "0.4",
                                  "start": "0.1"}),
    ("/api/persona/render", {"name": "Grace", "title": "Admiral", "quote": "Line one\n\nline two",
                             "avatar": "image"}),
    ("/api/demo/render", {"title": "Fast", "caption": "twice the speed", "speed": "2"}),
    ("/api/closing/render", {"cta": "Sign up", "url": "example.org", "tagline": "today", "fade_out": "0.5"}),
    ("/api/trim", {"start": "0.2", "captions": "captions", "logo": "image", "logo_position": "bottom-left",
                   "logo_size": "0.2", "logo_opacity": "0.5", "music": "video", "music_volume": "-6",
                   "ducking": "false"}),
    ("/api/concatenate", {"videos": 2, "music": "video", "captions": "captions", "transition": "crossfade"}),
    ("/api/demo/render", {"title": "Fast", "speed": "2", "logo": "image", "captions": "captions"}),
]


def described(result):
    return (NUMBERED.sub(r"\1_N\2", result.path.name), result.filename, result.content_type, result.headers,
            result.details)


def unnumbered(commands):
    return [[NUMBERED.sub(r"\1_N\2", arg) for arg in args] for args in commands]


@pytest.fixture
def spy(monkeypatch):
    seen = []
    real = views.perform

    def spying(plan, workspace, run):
        stored = json.loads(json.dumps(plans.dump(plan)))
        again = plans.load(stored)
        replayed = []
        replayed_result = running.perform(again, workspace, lambda args, measures=False: replayed.append(args))
        ran = []

        def recording(args, measures=False):
            ran.append(args)
            return run(args, measures=measures)

        result = real(plan, workspace, recording)
        seen.append({"plan": plan, "again": again, "stored": stored, "replayed": replayed, "ran": ran,
                     "results": [described(replayed_result), described(result)]})
        return result

    monkeypatch.setattr(views, "perform", spying)
    return seen


@pytest.mark.parametrize(("path", "fields"), REQUESTS, ids=[f"{p}-{i}" for i, (p, _f) in enumerate(REQUESTS)])
def test_every_plan_round_trips_and_runs_the_same(api, clips, spy, path, fields):
    data = {"video": clips.basic}
    for key, value in fields.items():
        if value == "video":
            data[key] = clips.basic
        elif value == "image":
            data[key] = clips.png
        elif value == "captions":
            data[key] = clips.captions
        elif key == "videos":
            data = {**{k: v for k, v in data.items() if k != "video"}, key: [clips.basic] * value}
        elif value == "default":
            data[key] = fonts.default_font_name()
        else:
            data[key] = value
    if path == "/api/concatenate-multipart":
        data.pop("video")
    r = post(api, path, data)
    assert r.status_code == 200, r.body[:300]
    [seen] = spy
    assert seen["again"] == seen["plan"] and type(seen["again"]) is type(seen["plan"])
    assert seen["ran"] and unnumbered(seen["replayed"]) == unnumbered(seen["ran"])
    assert seen["results"][0] == seen["results"][1]
    log = RenderLog.objects.get(id=r["X-Render-Id"])
    assert log.params == seen["stored"] and log.params["kind"] == seen["plan"].kind
    assert [item["field"] for item in log.inputs] == [upload.field for upload in seen["plan"].uploads]


def test_plans_hold_the_derived_values(api, clips, spy):
    post(api, "/api/demo/render", {"video": clips.basic, "title": "T", "speed": "2", "start": "0.1",
                                   "duration": "5"})
    post(api, "/api/concatenate-multipart", {"segment_3": clips.basic, "segment_10": clips.basic, "order_10": "-1",
                                             "final_filename": "../../etc/passwd"})
    post(api, "/api/trim/preview", {"video": clips.basic, "start": "0.5", "format": "jpg"})
    demo, join, preview = (entry["plan"] for entry in spy)
    assert demo.length == pytest.approx(clips_duration(demo) / 2) and demo.end == pytest.approx(demo.length)
    assert demo.speed == 2.0 and demo.spec.style.font and not demo.dim
    assert [(block.text, card.start, card.end) for card in demo.cards for block in card.blocks] == [
        ("T", 0.1, pytest.approx(demo.length))]
    assert [item.field for item in join.inputs] == ["segment_10", "segment_3"] and join.filename == "passwd.mp4"
    assert all(item.name.startswith("upload_") for item in join.inputs)
    assert (preview.format, preview.filename, preview.end) == ("jpg", "trim-preview.jpg", pytest.approx(2.0, abs=0.05))


def clips_duration(plan):
    return plan.video.info.duration


@pytest.mark.parametrize("broken", [
    {},
    {"kind": "trim"},
    {"kind": "nonsense", "video": {}},
])
def test_a_stored_value_that_is_not_a_plan_is_refused(broken):
    with pytest.raises(ValidationError):
        plans.load(broken)


def test_a_plan_names_only_files_inside_its_workspace(api, clips, spy):
    post(api, "/api/persona/render", {"video": clips.basic, "name": "N", "avatar": clips.png})
    stored = spy[0]["stored"]
    text = json.dumps(stored)
    assert "/" not in stored["video"]["name"] and "/" not in stored["avatar"]["name"]
    assert str(clips.basic) not in text and str(clips.png) not in text
