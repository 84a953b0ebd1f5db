"""The API's field parsers on their own: times (seconds or clock form) and download names (reduced to a safe
basename)."""

import pytest

from renders.api.fields import parse_time, sanitize_filename


@pytest.mark.parametrize(("raw", "value"), [("2", 2), ("2.5", 2.5), (".5", 0.5), ("01:02", 62),
                                            ("1:02:03.250", 3723.25), ("00:00.5", 0.5), (" 3 ", 3)])
def test_parse_time(raw, value):
    assert parse_time(raw) == pytest.approx(value)


@pytest.mark.parametrize("raw", ["-1", "nan", "inf", "1e3", "abc", "1:2:3:4", "", "01:60", "1:61:00", "0x10"])
def test_parse_time_rejects(raw):
    with pytest.raises(ValueError):
        parse_time(raw)


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("final", "final.mp4"),
        ("final.mp4", "final.mp4"),
        ("../../etc/passwd", "passwd.mp4"),
        ("C:\\x\\y.mov", "y.mp4"),
        ('a"b\'c\x00d\ne', "a_b_c_d_e.mp4"),
        ("...", ""),
        ("x" * 300, "x" * 96 + ".mp4"),
        ("Résumé vidéo", "Résumé vidéo.mp4"),
    ],
)
def test_sanitize_filename(raw, name):
    assert sanitize_filename(raw, "mp4") == name
