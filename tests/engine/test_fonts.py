"""/readyz's list of scripts: derived from the installed fonts' character maps, not written down."""

import pytest

from renders.media import fonts

pytestmark = pytest.mark.django_db
# scripts the Noto fallbacks draw that a fixed list of 19 left out
ONCE_LEFT_OUT = {"Georgian", "Ethiopic", "Sinhala", "Khmer", "Armenian", "Myanmar", "Lao", "Oriya"}


def scripts(client):
    check = client.get("/readyz").json()["checks"]["fonts"]
    assert check["ok"] is True
    return check


def test_readyz_lists_every_script_the_installed_fonts_draw(client):
    check = scripts(client)
    assert set(check["scripts"]) >= ONCE_LEFT_OUT
    assert {"Latin", "Cyrillic", "Greek", "Arabic", "Hebrew", "Devanagari", "Tamil", "Thai", "Chinese (simplified)",
            "Chinese (traditional)", "Japanese", "Korean", "Emoji"} <= set(check["scripts"])
    assert not set(check["scripts"]) & set(check["scripts_partial"])


def test_a_script_whose_font_is_absent_is_not_listed(client, monkeypatch):
    every_face = fonts.chain()
    gone = ("Khmer", "Ethiopic", "CJK", "Emoji")
    fewer = tuple(face for face in every_face if not any(name in face.name for name in gone))
    assert len(fewer) == len(every_face) - len(gone)  # each of them is installed, in a face of its own
    monkeypatch.setattr(fonts, "chain", lambda primary="": fewer)
    check = scripts(client)
    assert not {"Khmer", "Ethiopic", "Chinese (simplified)", "Chinese (traditional)", "Japanese", "Korean",
                "Emoji"} & set(check["scripts"])
    assert ONCE_LEFT_OUT - {"Khmer", "Ethiopic"} <= set(check["scripts"])  # the others still drawn
    assert str(len(fewer)) in check["detail"]


def test_coverage_follows_the_character_maps():
    primary = fonts.chain()[0]  # DejaVu Sans Bold alone: Latin and Greek, some Cyrillic, no Han, Thai or emoji
    alone = fonts.coverage((primary,))
    assert {"Latin", "Greek"} <= set(alone["covered"]) and "Cyrillic" in alone["partial"]
    assert not {"Thai", "Chinese (simplified)", "Japanese", "Emoji"} & set(alone["covered"] + alone["partial"])
    assert "Cyrillic" in fonts.coverage()["covered"]  # with Noto Sans after it
    assert alone["fonts"] == [primary.name]
