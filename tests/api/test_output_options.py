"""Per-request output (canvas, fit, fps, quality), style (colours, fonts), /api/options, docs, CORS."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from renders.media import fonts, text
from renders.media.spec import preset_size
from renders.models import RenderLog

from .. import media
from ..apidoc import url
from ..conftest import post, save
from ..media import changed

pytestmark = pytest.mark.django_db
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
SECOND_FONT = "/usr/share/fonts/truetype/liberation/LiberationSerif-Bold.ttf"
LONGEST = {"full_name": "W" * 80, "team": "M" * 80, "role": "Q" * 80}


@pytest.fixture(scope="module")
def pattern(tmp_path_factory):
    """4:3 with a bright centre square: where the picture and its centre land is easy to see."""
    d = tmp_path_factory.mktemp("pattern")
    return media.make(d / "pattern.mp4", "-f", "lavfi", "-i",
                      "color=c=0x3050C0:s=320x240:r=25:d=1,drawbox=x=140:y=100:w=40:h=40:color=0xF0E020:t=fill,"
                      "drawbox=x=0:y=0:w=20:h=240:color=0x20C040:t=fill",
                      "-f", "lavfi", "-i", "sine=d=1", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
                      "-shortest")


@pytest.mark.parametrize("canvas", ["16:9", "9:16", "1:1", "4:5", "240x136"])
def test_canvas_presets_and_custom_sizes(api, clips, tmp_path, settings, canvas):
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0", "end": "1", "canvas": canvas, "fps": "50",
                                "quality": "draft"})
    assert r.status_code == 200, r.body[:300]
    info = media.probe(save(r, tmp_path / "o.mp4"))
    short = min(settings.VIDEOAPI_CANVAS)
    want = preset_size(canvas, short) if ":" in canvas else (240, 136)
    assert (info["width"], info["height"]) == want and want[0] % 2 == 0 == want[1] % 2
    assert info["fps"] == 50 and info["vcodec"] == "h264" and info["acodec"] == "aac" and info["faststart"]
    spec = RenderLog.objects.get(id=r["X-Render-Id"]).params["spec"]
    assert (spec["width"], spec["height"], spec["fps"], spec["quality"], spec["fit"]) == (*want, 50, "draft", "contain")


def test_preset_sizes_keep_the_configured_short_side():
    assert [preset_size(p, 720) for p in ("16:9", "9:16", "1:1", "4:5")] == [(1280, 720), (720, 1280), (720, 720),
                                                                            (720, 900)]


@pytest.mark.parametrize(("field", "value", "message"), [
    ("canvas", "3:2", "16:9"), ("canvas", "1001x720", "even"), ("canvas", "100x720", "128-3840"),
    ("canvas", "3840x3840", "area"), ("fit", "stretch", "valid choice"), ("fps", "29.97", "valid choice"),
    ("quality", "ultra", "valid choice"), ("canvas", "", None),
])
def test_output_fields_are_validated(api, clips, field, value, message):
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0", field: value, "fit": "bogus"}
             if field != "fit" else {"video": clips.basic, "start": "0", field: value})
    assert r.status_code == 400
    fields = json.loads(r.body)["fields"]
    if message is None:  # blank counts as not sent
        assert field not in fields
    else:
        assert message in fields[field][0]


def test_output_fields_refused_with_fast_trim(api, clips):
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0", "mode": "fast", "canvas": "9:16"})
    assert r.status_code == 400 and "mode=accurate" in json.loads(r.body)["fields"]["canvas"][0]


@pytest.mark.parametrize("canvas", ["16:9", "9:16", "1:1", "4:5"])
def test_longest_text_stays_inside_the_safe_margins(api, grey, tmp_path, settings, canvas):
    # a 360 px short side: at 180 px the three longest texts cannot fit 4:5 at the smallest legible size (10 px)
    settings.VIDEOAPI_CANVAS = (640, 360)
    r = post(api, url("intro"), {"video": grey, **LONGEST, "canvas": canvas, "start": "0.2", "duration": "1.6"})
    assert r.status_code == 200
    out = save(r, tmp_path / "o.mp4")
    during, before = media.frame_at(out, 1.0), media.frame_at(out, 0.1)
    width, height = preset_size(canvas, min(settings.VIDEOAPI_CANVAS))
    assert during.shape[:2] == (height, width)
    assert changed(during, before) > 0.02
    margin = text.safe_margin(width, height)
    for edge in (np.s_[:, :margin], np.s_[:, -margin:], np.s_[:margin // 2, :], np.s_[-(margin // 2):, :]):
        assert changed(during[edge], before[edge]) == 0, canvas


def fit_frames(api, pattern, tmp_path, fit):
    r = post(api, "/api/trim", {"video": pattern, "start": "0", "canvas": "9:16", "fit": fit})
    assert r.status_code == 200
    return media.frame_at(save(r, tmp_path / f"{fit}.mp4"), 0.5).astype(int)


def test_fit_contain_cover_blur(api, pattern, tmp_path):
    contain, cover, blur = (fit_frames(api, pattern, tmp_path, fit) for fit in ("contain", "cover", "blur"))
    height, width = contain.shape[:2]
    top = np.s_[:20, :]
    # contain: black bars above and below the whole picture (the green left stripe is in it)
    assert contain[top].mean() < 20
    middle = contain[height // 2 - 30:height // 2 + 30]
    assert ((middle[..., 1] > 150) & (middle[..., 0] < 100))[:, :10].mean() > 0.5
    # cover: no bars, the centre square in the centre, the left stripe cropped away
    assert cover[top].mean() > 40
    centre = cover[height // 2 - 5:height // 2 + 5, width // 2 - 5:width // 2 + 5]
    assert (centre[..., 0] > 200).all() and (centre[..., 2] < 100).all()
    assert ((cover[..., 1] > 150) & (cover[..., 0] < 100) & (cover[..., 2] < 120)).mean() < 0.01
    # blur: no flat bars (a blurred picture behind), the sharp picture in the middle
    assert blur[top].mean() > 40 and blur[top].std() > 2
    assert np.abs(blur[height // 2 - 30:height // 2 + 30] - middle).mean() < 6


def test_colours_and_box_alpha(api, grey, tmp_path):
    frames = {}
    for name, box in (("opaque", "#00C000FF"), ("faint", "#00C00033")):
        r = post(api, url("intro"), {"video": grey, "full_name": "Ada", "role": "R", "team": "Team Blue",
                                     "text_color": "#FF0000", "accent_color": "#0000FF", "box_color": box,
                                     "start": "0.2", "duration": "1.6"})
        assert r.status_code == 200
        frames[name] = media.frame_at(save(r, tmp_path / f"{name}.mp4"), 1.0).astype(int)
    red = (frames["opaque"][..., 0] > 180) & (frames["opaque"][..., 1] < 90) & (frames["opaque"][..., 2] < 90)
    blue = (frames["opaque"][..., 2] > 180) & (frames["opaque"][..., 0] < 90)
    assert red.sum() > 30 and blue.sum() > 10  # text and accent in the asked colours
    green_opaque = (frames["opaque"][..., 1] > 170) & (frames["opaque"][..., 0] < 60)
    assert green_opaque.sum() > 500
    faint = frames["faint"]
    box_pixels = green_opaque & ~red
    assert np.abs(faint[box_pixels] - 128).mean() < np.abs(frames["opaque"][box_pixels] - 128).mean() / 2
    log = RenderLog.objects.filter(endpoint="intro").order_by("-received_at").first()
    assert log.params["spec"]["style"]["box_color"] == "#00C00033"


@pytest.mark.parametrize(("field", "value"),
                         [("text_color", "red"), ("box_color", "#12345"), ("accent_color", "#GGGGGG")])
def test_bad_colours_are_400(api, clips, field, value):
    r = post(api, url("intro"), {"video": clips.basic, "full_name": "A", "role": "R", "team": "T", field: value})
    assert r.status_code == 400 and "#RRGGBB" in json.loads(r.body)["fields"][field][0]


@pytest.fixture
def brand_fonts(tmp_path, settings):
    if not Path(SECOND_FONT).exists():
        pytest.skip("fonts-liberation is not installed (scripts/test installs it as root)")
    directory = tmp_path / "fonts"
    directory.mkdir()
    shutil.copy(SECOND_FONT, directory / "Brand.ttf")
    (directory / "broken.ttf").write_bytes(b"\x00\x01\x00\x00 not really a font" * 10)
    (directory / "notes.txt").write_text("ignored")
    settings.VIDEOAPI_FONTS_DIR = str(directory)
    return directory


def test_fonts_registry_options_and_rendering(api, grey, tmp_path, brand_fonts, caplog):
    r = api.get("/api/options")
    assert r.status_code == 200
    names = r.json()["fonts"]["choices"]
    assert names == [fonts.default_font_name(), "Liberation Serif Bold"]  # the broken file is skipped
    assert any("font_skipped" in m and "broken.ttf" in m for m in caplog.messages)
    out = {}
    for name in names:
        r = post(api, url("announcement"), {"video": grey, "headline": "Quarterly Results", "font": name,
                                            "start": "0.2", "duration": "1.6"})
        assert r.status_code == 200
        out[name] = media.frame_at(save(r, tmp_path / "o.mp4"), 1.0)
    assert changed(*out.values()) > 0.005  # the brand font draws differently
    r = post(api, url("announcement"), {"video": grey, "headline": "x", "font": "Comic Sans"})
    assert r.status_code == 400
    message = json.loads(r.body)["fields"]["font"][0]
    assert "Liberation Serif Bold" in message and fonts.default_font_name() in message


def test_options_document_matches_what_the_endpoints_enforce(api, clips):
    doc = api.get("/api/options").json()
    assert set(doc["canvas"]["presets"]) == {"16:9", "9:16", "1:1", "4:5"}
    assert set(doc["fits"]) == {"contain", "cover", "blur"} and doc["fps"]["choices"] == [24, 25, 30, 50, 60]
    assert set(doc["qualities"]) == {"draft", "standard", "high"}
    assert set(doc["endpoints"]) == {"/api/trim", "/api/trim/preview", "/api/concatenate",
                                     "/api/concatenate-multipart"} | {f"/api/{n}/render" for n in
                                                                     ("intro", "announcement", "how-it-works",
                                                                      "persona", "demo", "closing")}
    # every text limit it publishes is the one the endpoint enforces: at the limit accepted, one over refused
    for path, endpoint in doc["endpoints"].items():
        if not path.endswith("/render"):
            continue
        for name, field in endpoint["fields"].items():
            if field["type"] != "text" or "max_length" not in field:
                continue
            limit = field["max_length"]
            at, over = (post(api, path, {"video": clips.basic, name: "x" * n, "fit": "bogus"})
                        for n in (limit, limit + 1))
            assert name not in json.loads(at.body)["fields"], (path, name)
            assert name in json.loads(over.body)["fields"], (path, name)
    trim = doc["endpoints"]["/api/trim"]["fields"]
    assert trim["video"]["required"] and trim["start"]["required"] and trim["mode"]["choices"] == ["accurate", "fast"]
    height = doc["endpoints"]["/api/trim/preview"]["fields"]["height"]
    assert (height["min_value"], height["max_value"], height["default"]) == (144, 720, 360)
    assert "canvas" not in doc["endpoints"]["/api/trim/preview"]["fields"]
    assert doc["endpoints"]["/api/intro/render"]["fields"]["font"]["choices"] == list(fonts.registry())


def test_options_publish_the_multipart_segment_fields(api):
    multipart = api.get("/api/options").json()["endpoints"]["/api/concatenate-multipart"]
    assert set(multipart["dynamic_fields"]) == {"segment_<i>", "order_<i>"}
    assert {"transition", "canvas", "fit", "fps", "quality"} <= set(multipart["fields"])


def test_options_needs_the_token(client):
    assert client.get("/api/options").status_code == 401


def test_vertical_outputs_join_by_copy_and_mixed_ones_reencode(api, clips, tmp_path):
    vertical = []
    for index in range(3):
        r = post(api, url("closing"), {"video": clips.basic, "cta": f"Go {index}", "canvas": "9:16"})
        assert r.status_code == 200
        vertical.append(save(r, tmp_path / f"v{index}.mp4"))
    r = post(api, "/api/concatenate", {"videos": vertical, "canvas": "9:16"})
    assert r.status_code == 200 and r["X-Concat-Mode"] == "copy"
    r = post(api, "/api/concatenate", {"videos": vertical})  # asked for the default 16:9: re-encode
    assert r.status_code == 200 and r["X-Concat-Mode"] == "reencode"
    wide = save(post(api, "/api/trim", {"video": clips.basic, "start": "0"}), tmp_path / "wide.mp4")
    r = post(api, "/api/concatenate", {"videos": [wide, vertical[0]], "canvas": "9:16", "fit": "blur"})
    assert r.status_code == 200 and r["X-Concat-Mode"] == "reencode"
    info = media.probe(save(r, tmp_path / "joined.mp4"))
    assert (info["width"], info["height"]) == (180, 320)


def test_docs_page_and_root_redirect(client):
    r = client.get("/")
    assert r.status_code == 302 and r["Location"] == "/api/"
    page = client.get("/api/")
    assert page.status_code == 200 and b"swagger-ui" in page.content
    asset = next(line for line in page.content.decode().split('"') if line.endswith("swagger-ui-bundle.js"))
    assert asset.startswith("/static/") and client.get(asset).status_code == 200  # served here, no CDN


def test_octet_stream_when_asked(api, clips):
    r = post(api, "/api/trim", {"video": clips.basic, "start": "1"}, HTTP_ACCEPT="application/octet-stream")
    assert r.status_code == 200 and r["Content-Type"] == "application/octet-stream"
    r = post(api, "/api/trim", {"video": clips.basic, "start": "1"}, HTTP_ACCEPT="video/mp4, */*")
    assert r["Content-Type"] == "video/mp4"


def test_cors_preflight_and_exposed_headers(client, api, clips, settings):
    settings.CORS_ALLOWED_ORIGINS = ["http://127.0.0.1:5173"]
    preflight = client.options("/api/trim", HTTP_ORIGIN="http://127.0.0.1:5173",
                               HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
                               HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization")
    assert preflight.status_code == 200  # no token needed for a preflight
    assert preflight["Access-Control-Allow-Origin"] == "http://127.0.0.1:5173"
    assert "authorization" in preflight["Access-Control-Allow-Headers"].lower()
    stranger = client.options("/api/trim", HTTP_ORIGIN="http://evil.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert "Access-Control-Allow-Origin" not in stranger
    r = post(api, "/api/trim", {"video": clips.basic, "start": "1"}, HTTP_ORIGIN="http://127.0.0.1:5173")
    exposed = r["Access-Control-Expose-Headers"].lower()
    assert all(h in exposed for h in ("x-render-id", "content-disposition", "x-concat-mode", "x-trim-start"))


BRAND = {"text_color": "#FFF4E0", "accent_color": "#FF6A3D", "box_color": "#1B2A4ACC"}


def near(frame, colour, tolerance):
    """Where `frame` (RGB) is within `tolerance` levels of `colour` (#RRGGBB) in every channel."""
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    return (np.abs(frame.astype(int) - rgb).max(axis=2) <= tolerance)


def test_frames_with_brand_colour_and_font_for_people_to_look_at(api, pattern, tmp_path, brand_fonts, settings):
    """Writes artifacts/output-<canvas>-brand.png for people to judge, and checks what they should see:
    the canvas filled (blur, no bars), the text and accent in the brand colours, on the brand box.
    The source is a still picture, so whatever differs from the frame before the text is the drawing."""
    ARTIFACTS.mkdir(exist_ok=True)
    box = BRAND["box_color"][:7]
    for canvas in ("16:9", "9:16", "1:1"):
        r = post(api, url("intro"), {"video": pattern, "full_name": "Ada Lovelace", "role": "Head of Engineering",
                                     "team": "Analytical Engines", "canvas": canvas, "fit": "blur",
                                     "font": "Liberation Serif Bold", **BRAND, "start": "0.1", "duration": "0.85"})
        assert r.status_code == 200
        out = save(r, tmp_path / "o.mp4")
        info = media.probe(out)
        assert (info["width"], info["height"]) == preset_size(canvas, min(settings.VIDEOAPI_CANVAS))
        frame, before = media.frame_at(out, 0.5), media.frame_at(out, 0.0)
        Image.fromarray(frame).save(ARTIFACTS / f"output-{canvas.replace(':', 'x')}-brand.png")
        for edge in (frame[:8], frame[-8:], frame[:, :8], frame[:, -8:]):
            assert edge.mean() > 15, canvas  # blur: picture to every edge
        drawn = np.abs(frame.astype(int) - before.astype(int)).max(axis=2) > 30
        red, green, blue = (frame[..., i].astype(int) for i in range(3))
        # the accent's hue, not the default yellow's
        orange = drawn & (red > 150) & (red - green > 50) & (red - blue > 80)
        # measured at each canvas: ~160 text pixels (none before), ~130 orange, the box ~80 % of what is drawn
        assert near(frame, BRAND["text_color"], 24).sum() > 80 and not near(before, BRAND["text_color"], 24).any()
        assert orange.sum() > 60, canvas
        assert drawn.sum() > 2000 and (near(frame, box, 40) & drawn).sum() > 0.6 * drawn.sum(), canvas
    style = RenderLog.objects.filter(endpoint="intro").order_by("-received_at").first().params["spec"]["style"]
    assert {key: style[key] for key in BRAND} == BRAND and style["font"] == "Liberation Serif Bold"


@pytest.mark.parametrize("fit", ["cover", "blur"])
@pytest.mark.parametrize("name", ["rotated", "anamorphic", "vertical", "yuv444_25fps"])
def test_fits_on_rotated_anamorphic_and_odd_sources(api, variants, tmp_path, fit, name):
    source, _duration = variants[name]
    r = post(api, "/api/trim", {"video": source, "start": "0", "end": "1", "canvas": "9:16", "fit": fit})
    assert r.status_code == 200, r.body[:300]
    info = media.probe(save(r, tmp_path / "o.mp4"))
    assert (info["width"], info["height"], info["pix_fmt"]) == (180, 320, "yuv420p")
    frame = media.frame_at(tmp_path / "o.mp4", 0.5)
    assert frame[:20].mean() > 15 and frame[-20:].mean() > 15  # no black bars with cover or blur
