"""Text in every common script: real glyphs, shaping, bidi, fallback, never a box.

Tofu is caught by drawing two different characters in the same place: two
empty boxes (the font's .notdef glyph) give identical pixels.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from renders.media import fonts, text

from .. import media
from ..apidoc import url
from ..conftest import post, save
from ..media import changed

pytestmark = pytest.mark.django_db
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"

PAIRS = {
    "Latin": ("A", "B"), "Cyrillic": ("Ж", "Я"), "Greek": ("Ω", "Σ"), "Arabic": ("ع", "ب"), "Hebrew": ("ש", "ת"),
    "Devanagari": ("क", "ख"), "Bengali": ("ক", "খ"), "Gurmukhi": ("ਕ", "ਖ"), "Gujarati": ("ક", "ખ"),
    "Tamil": ("த", "க"), "Telugu": ("త", "క"), "Kannada": ("ಕ", "ಖ"), "Malayalam": ("ക", "ഖ"), "Thai": ("ก", "ข"),
    "Chinese (simplified)": ("张", "这"), "Chinese (traditional)": ("張", "這"), "Japanese": ("あ", "ア"),
    "Korean": ("한", "글"), "Emoji": ("😀", "👍"),
}
NAMES = {  # what people type: one frame of each is saved for a human look
    "Chinese": "张伟 Zhang Wei", "Japanese": "山田 花子", "Korean": "김민준", "Hindi": "अनुष्का शर्मा",
    "Bengali": "রবীন্দ্রনাথ ঠাকুর", "Thai": "สมชาย ใจดี", "Arabic": "مدير التسويق, EMEA", "Hebrew": "דוד כהן",
    "Tamil": "கார்த்திக்", "Emoji": "Launch day 🚀🎉",
}


def block(line, size=40):
    placed = text.Placed((line,), size, (255, 255, 255, 255), 0, 0, "L", 8, 0, 1)
    return np.asarray(text.render_block(placed).convert("RGBA")).astype(int)


def differ(a, b):
    """Pixels that differ when two images are laid over each other at their top-left corners."""
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    return (np.abs(a[:h, :w] - b[:h, :w]).max(axis=2) > 40).mean() + (a.shape != b.shape)


@pytest.mark.parametrize("script", PAIRS)
def test_every_script_draws_real_glyphs(script):
    first, second = PAIRS[script]
    assert fonts.missing(first + second) == []
    assert differ(block(first), block(second)) > 0.01, f"{script}: two characters drew the same (tofu)"


def test_tofu_would_be_caught():
    """The check above fails on .notdef boxes: a font without CJK draws both characters identically."""
    face = fonts.chain()[0]  # DejaVu Sans: no Han
    assert not face.has("张") and not face.has("这")
    font = text._pillow_font(face.path, face.index, 40)
    images = []
    for char in ("张", "这"):
        image = Image.new("L", (60, 60))
        from PIL import ImageDraw

        ImageDraw.Draw(image).text((5, 5), char, font=font, fill=255)
        images.append(np.asarray(image).astype(int))
    assert np.array_equal(*images)


def test_shaping_joins_arabic_and_forms_conjuncts():
    # joined: initial + final forms; apart: the isolated letter twice
    joined = block("بب")
    apart = np.concatenate([block("ب")[:, :-8], block("ب")[:, 8:]], axis=1)
    assert differ(joined, apart) > 0.02
    # क्ष is one conjunct glyph, not क + virama + ष side by side
    conjunct = block("क्ष")
    parts = np.concatenate([block("क")[:, :-8], block("्")[:, 8:-8], block("ष")[:, 8:]], axis=1)
    assert differ(conjunct, parts) > 0.02
    assert conjunct.shape[1] < parts.shape[1]


def test_mixed_direction_line_puts_latin_where_a_reader_expects():
    runs = text.visual_runs("مرحبا Hello")
    assert [r.rtl for r in runs] == [False, True] and runs[0].text == "Hello"  # RTL paragraph: Latin on the left
    mixed, latin = block("مرحبا Hello"), block("Hello")
    width = latin.shape[1] - 8  # the box border on the right
    assert differ(mixed[:, :width], latin[:, :width]) < 0.01
    # an LTR paragraph keeps an Arabic word where it was typed
    runs = text.visual_runs("Hello مرحبا world")
    assert [r.text.strip() for r in runs] == ["Hello", "مرحبا", "world"] and runs[1].rtl


def test_fallback_per_character_within_a_line():
    runs = text.visual_runs("张伟 Zhang Wei")
    assert [r.face.name for r in runs] == ["Noto Sans CJK SC Bold", fonts.chain()[0].name]
    assert runs[0].text == "张伟 "  # the space stays with the run it sits in


def test_emoji_are_drawn_in_colour():
    image = block("😀", size=60)
    red, green, blue = image[..., 0], image[..., 1], image[..., 2]
    yellow = (red > 180) & (green > 130) & (blue < 90)
    assert yellow.mean() > 0.05


@pytest.mark.parametrize("value", ["A\ue000B", "\U000F0001", "Name \U0010FFFD"])
def test_character_no_font_has_is_refused(api, clips, value):
    r = post(api, url("intro"), {"video": clips.basic, "full_name": value, "team": "T", "role": "R"})
    assert r.status_code == 400
    body = json.loads(r.body)
    assert body["code"] == "invalid_input" and "full_name" in body["fields"]
    bad = next(c for c in value if fonts.needs_glyph(c) and not any(f.has(c) for f in fonts.chain()))
    assert f"U+{ord(bad):04X}" in body["fields"]["full_name"][0]


def test_undrawable_step_names_its_item(api, clips):
    r = post(api, url("how-it-works"), {"video": clips.basic, "steps": ["Upload", "Pick \ue123"]})
    assert r.status_code == 400
    assert json.loads(r.body)["fields"]["steps"][0].startswith("item 2: no installed font can draw U+E123")


@pytest.mark.parametrize("script", ["Chinese (simplified)", "Devanagari", "Thai", "Korean", "Emoji", "Arabic"])
def test_rendered_frames_show_real_glyphs(api, grey, tmp_path, script):
    frames = []
    for char in PAIRS[script]:
        r = post(api, url("intro"), {"video": grey, "full_name": char * 3, "team": "T", "role": "R",
                                     "start": "0.2", "duration": "1.6"})
        assert r.status_code == 200
        frames.append(media.frame_at(save(r, tmp_path / "o.mp4"), 1.0))
    assert changed(*frames) > 0.002, f"{script}: the same pixels for two different characters"


@pytest.mark.parametrize("canvas", [(320, 180), (180, 320)])
def test_widest_cjk_line_stays_inside_the_safe_margins(api, grey, tmp_path, settings, canvas):
    settings.VIDEOAPI_CANVAS = canvas
    widest = "鑫" * 80  # the field limit, in one of the widest glyphs
    r = post(api, url("intro"), {"video": grey, "full_name": widest, "team": "龘" * 80, "role": "魔" * 80,
                                 "start": "0.2", "duration": "1.6"})
    assert r.status_code == 200
    out = save(r, tmp_path / "o.mp4")
    during, before = media.frame_at(out, 1.0), media.frame_at(out, 0.1)
    assert changed(during, before) > 0.05  # the text is drawn ...
    margin = text.safe_margin(*canvas)
    for edge in (np.s_[:, :margin], np.s_[:, -margin:]):  # ... and keeps off the left and right margins
        assert changed(during[edge], before[edge]) == 0


def test_names_in_every_script_render_as_lower_thirds(api, grey, tmp_path):
    """What people type, in ten scripts: each renders a full intro whose card is drawn in the lower third,
    inside the safe margins, with pixels of its own; one frame of each is saved for a human look."""
    plain = media.frame_at(grey, 1.0)
    height, width = plain.shape[:2]
    margin = text.safe_margin(width, height)
    tiles, cards = [], []
    for script, name in NAMES.items():
        r = post(api, url("intro"), {"video": grey, "full_name": name, "team": "Team", "role": name,
                                     "start": "0.2", "duration": "1.6"})
        assert r.status_code == 200, (script, r.body[:200])
        out = save(r, tmp_path / "o.mp4")
        info = media.probe(out)
        assert (info["width"], info["height"], info["frames"]) == (width, height, 50), script
        assert abs(info["a_duration"] - 2.0) < 0.05, script
        frame = media.frame_at(out, 1.0)
        drawn = np.abs(frame.astype(int) - plain.astype(int)).max(axis=2) > 30
        rows, columns = np.nonzero(drawn)
        assert drawn.mean() > 0.02, f"{script}: (almost) nothing drawn over the plain input"
        assert rows.min() >= height // 2 and rows.max() < height - margin, f"{script}: not a lower third"
        assert columns.min() >= margin and columns.max() < width - margin, f"{script}: outside the margins"
        tiles.append(frame)
        cards.append(frame[height // 2:])
    for i, first in enumerate(cards):  # every name drew its own pixels (no two alike, so none is a box or blank)
        for j in range(i + 1, len(cards)):
            assert changed(first, cards[j]) > 0.01, (list(NAMES)[i], list(NAMES)[j])
    ARTIFACTS.mkdir(exist_ok=True)
    rows = [np.concatenate(tiles[i:i + 2], axis=1) for i in range(0, len(tiles), 2)]
    Image.fromarray(np.concatenate(rows, axis=0)).save(ARTIFACTS / "scripts-intro.png")


def test_readyz_names_the_scripts_the_fonts_cover(client):
    r = client.get("/readyz")
    fonts_check = r.json()["checks"]["fonts"]
    assert fonts_check["ok"] is True
    assert {"Latin", "Arabic", "Devanagari", "Chinese (simplified)", "Japanese", "Korean", "Thai", "Emoji"} <= \
        set(fonts_check["scripts"])


def test_readyz_fails_without_the_primary_font(client, settings):
    settings.VIDEOAPI_FONT = "/nonexistent/font.ttf"
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["fonts"]["ok"] is False
    assert "font not found" in r.json()["checks"]["fonts"]["detail"]
