"""Property tests (hypothesis): any input gets a value or a field error, never an exception.

Text is drawn from all of Unicode, category by category (format and control
characters, bidi embeddings and isolates, private use, unassigned and
noncharacter code points, lone surrogates, lone combining marks and long runs
of them, variation selectors, ZWJ and tag sequences, line and paragraph
separators, soft hyphens), not only from letters: first straight into the
layout and drawing code with many examples, then into every form field of
every endpoint through the API with a few each.
"""

import json
import re
import unicodedata
import zlib

import bidi
import pytest
from hypothesis import HealthCheck, given, seed
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from rest_framework import serializers

from renders.api import views
from renders.api.fields import TextField, UploadField, parse_time, sanitize_filename
from renders.api.serializers import ConcatenateMultipartSerializer
from renders.api.templates import intro_cards
from renders.media import fonts, text
from renders.media.bidi import levels, open_controls

from ..server import multipart

pytestmark = pytest.mark.django_db
FAST = hsettings(max_examples=300, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])

# ---- all of Unicode, by category ---------------------------------------------------------------

ISOLATES = "\u2066\u2067\u2068\u2069"  # LRI, RLI, FSI, PDI
BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e" + ISOLATES + "\u200e\u200f\u061c"
SEPARATORS = "\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029\t"
INVISIBLE = "\u00ad\u200b\u200c\u200d\u2060\ufeff\u034f\u180e"  # soft hyphen, joiners, word joiner, BOM, CGJ
NONCHARACTERS = [chr(c) for c in range(0xFDD0, 0xFDF0)] + [chr((plane << 16) | low) for plane in range(17)
                                                           for low in (0xFFFE, 0xFFFF)]
SELECTORS = [chr(c) for c in [*range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)]]
TAGS = [chr(c) for c in range(0xE0020, 0xE007F)]
EMOJI = list("😀👍👨👩👧🏳🌈🚀🎉🧑💻❤")
LETTERS = "Aé Жя Ωλ عب שא कष কষ ਕ ક த త ಕ ക กข 张這 あア 한글 ქ ሀ ක ក"  # noqa: RUF001  (every script, on purpose)
MARKS = st.characters(categories=["Mn", "Mc", "Me"])

CHARACTER = st.one_of(
    st.characters(),  # every category but surrogates
    st.characters(categories=["Cc", "Cf"]),
    st.sampled_from(BIDI_CONTROLS), st.sampled_from(SEPARATORS), st.sampled_from(INVISIBLE),
    st.characters(categories=["Co"]), st.characters(categories=["Cn"]), st.sampled_from(NONCHARACTERS),
    MARKS, st.sampled_from(SELECTORS), st.sampled_from(LETTERS), st.sampled_from(EMOJI),
)
PIECE = st.one_of(
    st.text(CHARACTER, max_size=12),
    st.builds(lambda base, mark, count: base + mark * count, st.sampled_from(LETTERS), MARKS, st.integers(1, 300)),
    st.lists(st.sampled_from(EMOJI), min_size=2, max_size=5).map("\u200d".join),  # ZWJ sequences
    st.lists(st.sampled_from(TAGS), max_size=6).map(lambda tags: "\U0001F3F4" + "".join(tags) + "\U000E007F"),
    st.builds(lambda opener, inside, close: opener + inside + close, st.sampled_from(ISOLATES[:3] + "\u202a\u202b"),
              st.text(st.sampled_from(LETTERS + "0123 .,!"), max_size=10), st.sampled_from(["\u2069", "\u202c", ""])),
    st.sampled_from(LETTERS + "".join(EMOJI) + INVISIBLE + BIDI_CONTROLS).map(lambda c: c * 30),
)
UNICODE = st.lists(PIECE, max_size=5).map(lambda pieces: "".join(pieces)[:300])  # no surrogates: not encodable
WITH_SURROGATES = st.one_of(UNICODE, st.builds(lambda a, s, b: a + s + b, UNICODE,
                                               st.characters(categories=["Cs"]), UNICODE))
# what a person may well type (letters with the invisible characters among them, short): mostly accepted
TYPED = st.lists(st.one_of(st.text(st.sampled_from(LETTERS), min_size=1, max_size=8), PIECE.map(lambda s: s[:12])),
                 min_size=1, max_size=5).map(lambda pieces: "".join(pieces)[:70])


# ---- times and file names ---------------------------------------------------------------------

TIME_ERRORS = {"must be seconds (2.5) or a clock time (MM:SS or HH:MM:SS, optional .mmm)",
               "minutes must be below 60 in HH:MM:SS", "seconds must be below 60 in clock form",
               "must be a finite number of seconds"}


@FAST
@given(st.one_of(WITH_SURROGATES, st.floats(allow_nan=True, allow_infinity=True).map(str),
                 st.from_regex(r"\d{1,3}:\d{1,3}(:\d{1,3})?(\.\d{1,4})?", fullmatch=True)))
def test_time_parsing_gives_a_value_or_one_of_its_errors(raw):
    try:
        value = parse_time(raw)
    except ValueError as exc:
        # what the field shows the client, not an exception's own text
        assert str(exc) in TIME_ERRORS  # noqa: PT017  (a property: either outcome is right)
    else:
        assert 0 <= value < float("inf")  # finite, never negative, not NaN


@FAST
@given(st.integers(0, 99), st.integers(0, 59), st.integers(0, 59), st.integers(0, 999), st.integers(60, 99))
def test_clock_times_read_as_the_seconds_they_name(hours, minutes, seconds, millis, over):
    total = hours * 3600 + minutes * 60 + seconds + millis / 1000
    assert parse_time(f"{hours}:{minutes:02d}:{seconds:02d}.{millis:03d}") == pytest.approx(total)
    assert parse_time(f"{minutes}:{seconds:02d}") == minutes * 60 + seconds
    assert parse_time(f" {total:.3f} ") == pytest.approx(total)
    with pytest.raises(ValueError, match="minutes must be below 60"):
        parse_time(f"{hours}:{over}:{seconds:02d}")
    with pytest.raises(ValueError, match="seconds must be below 60"):
        parse_time(f"{minutes}:{over}")


@FAST
@given(st.text(max_size=400), st.sampled_from(["mp4", "jpg"]))
def test_file_names_are_safe_bounded_and_idempotent(raw, extension):
    name = sanitize_filename(raw, extension)
    if not name:
        return
    assert name.endswith("." + extension) and len(name) <= 100
    assert not set(name) & set("/\\\"'`:*?<>|;") and all(ch.isprintable() for ch in name)
    assert name not in (f".{extension}", f"..{extension}")
    assert sanitize_filename(name, extension) == name  # idempotent


# ---- text fields ------------------------------------------------------------------------------


@FAST
@given(WITH_SURROGATES, st.booleans())
def test_text_fields_give_drawable_text_or_a_field_error(raw, multiline):
    field = TextField(max_length=80, multiline=multiline)
    try:
        value = field.run_validation(raw)
    except serializers.ValidationError as exc:
        assert exc.detail and all(str(message) for message in exc.detail)  # noqa: PT017  (a property: either outcome is right)
    else:
        assert 0 < len(value) <= 80 and value == value.strip() and fonts.missing(value) == []
        assert any(fonts.needs_glyph(c) and not c.isspace() for c in value)  # something visible
        allowed = {"\n"} if multiline else set()
        assert all(unicodedata.category(c) not in ("Cc", "Cs") or c in allowed for c in value)
        assert not set(value) & {"\r", "\x85", "\u2028", "\u2029"}


@pytest.mark.parametrize(("raw", "expected"), [
    ("a\u2066b\u2069c", "a\u2066b\u2069c"),  # each isolate control is kept: it is drawn as Unicode says
    ("\u2067\u05e9\u05dc\u05d5\u05dd 42\u2069 team", None), ("\u2068x", None), ("x\u2069", None),
    ("one\u2028two\u2029three\r\nfour\x85five", "one\ntwo\nthree\nfour\nfive"),  # every line break is one
])
def test_text_fields_keep_isolates_and_every_kind_of_line_break(raw, expected):
    assert TextField(max_length=80, multiline=True).run_validation(raw) == (expected or raw)


@pytest.mark.parametrize(("raw", "message"), [
    ("one\u2028two", "line breaks are not allowed here"), ("one\u2029two", "line breaks are not allowed here"),
    ("one\x85two", "line breaks are not allowed here"), ("tab\there", "control characters are not allowed"),
    ("\u2066\u2069", "has nothing to draw"), ("\u200d\u00ad\ufe0f", "has nothing to draw"),
    ("private \ue000", "no installed font can draw U+E000"), ("\ufdd0", "no installed font can draw U+FDD0"),
])
def test_text_fields_refuse_what_cannot_be_drawn_on_one_line(raw, message):
    with pytest.raises(serializers.ValidationError, match=re.escape(message)):
        TextField(max_length=80).run_validation(raw)


# ---- laying text out and drawing it -------------------------------------------------------------

CANVASES = st.sampled_from([(320, 180), (1280, 720), (720, 1280), (720, 720)])


DRAWING = hsettings(max_examples=150, deadline=None, derandomize=True)


@DRAWING
@given(UNICODE, UNICODE, UNICODE, CANVASES, st.sampled_from(["lower-left", "center", "top"]))
def test_any_text_is_laid_out_and_drawn_inside_the_safe_margins(first, second, third, canvas, anchor):
    """Whatever reaches the drawing code (the fields refuse much of this first) is drawn, never an exception."""
    width, height = canvas
    card = text.Card((text.Block(first, text.TITLE), text.Block(second, text.SUBTITLE),
                      text.Block(third, text.BODY)), anchor, 0.5, 2.0)
    placed, _box = text.layout(card, width, height)
    margin = text.safe_margin(width, height)
    for block in placed:
        image = text.render_block(block)
        assert image.size[0] > 0 and image.size[1] > 0
        assert block.x >= margin and block.x + image.width <= width - margin, (block.x, image.width)
        assert block.y >= margin // 2


@DRAWING
@given(UNICODE, st.integers(10, 60), st.integers(60, 400))
def test_wrapping_keeps_every_character(raw, size, width):
    """Lines are the text's own characters, cut at spaces or inside long words; a continuing line only
    repeats the bidi controls still open (zero width)."""
    raw = raw[:120]
    paragraphs = text.LINE_BREAK.split(raw)  # each wrapped on its own: bidi controls end with a paragraph
    assert text.wrap(raw, size, width) == [line for p in paragraphs for line in text.wrap(p, size, width)]
    assert not any(re.search("[\n\r\x1c-\x1e\x85\u2028\u2029]", p) for p in paragraphs)
    for paragraph in paragraphs:
        lines = text.wrap(paragraph, size, width)
        carried, pieces = "", []
        for line in lines:
            assert line.startswith(carried)
            pieces.append(line[len(carried):])
            carried = open_controls(line)
        assert "".join(pieces).replace(" ", "") == paragraph.replace(" ", "")
        for line in lines:
            for run in text.visual_runs(line):
                assert run.text and run.face in fonts.chain()


# text within the field limits, in scripts the fonts cover
DRAWABLE = st.text(alphabet=LETTERS + "".join(EMOJI) + "-'.,", min_size=1, max_size=80).filter(str.strip)


@hsettings(max_examples=40, deadline=None, derandomize=True)
@given(DRAWABLE, DRAWABLE, DRAWABLE, st.sampled_from([(1280, 720), (720, 1280), (720, 720)]))
def test_any_text_within_the_limits_stays_inside_the_safe_margins(name, role, team, canvas):
    width, height = canvas
    card = intro_cards({"full_name": name.strip(), "role": role.strip(), "team": team.strip()}, 0.5, 2.0)[0]
    placed, _box = text.layout(card, width, height)
    margin = text.safe_margin(width, height)
    for block in placed:
        image = text.render_block(block)
        assert block.x >= margin and block.x + image.width <= width - margin, (block.x, image.width)
        assert block.y >= margin // 2 and block.y + image.height <= height - margin // 2


# ---- the bidirectional algorithm, against a complete one ----------------------------------------------

EXPLICIT = set("\u202a\u202b\u202c\u202d\u202e") | set(ISOLATES)
# every Bidi_Class but B (a paragraph break: the service splits text there itself); no paired brackets (rule
# N0 is not in python-bidi's pure-Python algorithm, see renders/media/bidi.py)
BIDI_ALPHABET = ("aZ\u00e9\u200e\u05d0\u05ea\u200f\u0628\u0629\u061c0189\u0661\u0662\u0600+-"
                 "$%#,.:/\u0301\u05b4\u200d\u00ad\t !?&@\"\U0001F600" + "".join(EXPLICIT))


def complete_levels(line: str) -> list[int]:
    """Each character's level from python-bidi's other engine (the Rust unicode-bidi crate, UAX #9 with
    isolates and brackets), read from its debug report, then rule L1 for the line."""
    report = bidi.get_display(line, debug=True)
    per_byte = [int(level) for level in re.findall(r"Level\(\s*(\d+),?\s*\)", report.split("levels: [", 1)[1])]
    levels, offset = [], 0
    for char in line:
        levels.append(per_byte[offset])
        offset += len(char.encode())
    paragraph, reset = bidi.get_base_level(line), True
    for index in range(len(line) - 1, -1, -1):
        kind = unicodedata.bidirectional(line[index])
        if kind == "S" or (reset and (kind in ("WS", "BN") or line[index] in EXPLICIT)):
            levels[index], reset = paragraph, True
        else:
            reset = False
    return levels


@hsettings(max_examples=1500, deadline=None, derandomize=True)
@given(st.text(st.sampled_from(BIDI_ALPHABET), min_size=1, max_size=40))
def test_bidi_levels_are_those_of_a_complete_implementation(line):
    """Embeddings, overrides, isolates (nested, unmatched, unclosed), numbers, marks and neutrals: every
    character gets the level a full UAX #9 implementation gives it (boundary neutrals, which UAX #9 lets
    an implementation place as it likes, aside)."""
    ours = [(char, level) for char, level in levels(line) if unicodedata.bidirectional(char) != "BN"]
    theirs = [(char, level) for char, level in zip(line, complete_levels(line))
              if char not in EXPLICIT and unicodedata.bidirectional(char) != "BN"]
    assert ours == theirs


def test_isolates_are_drawn_in_the_order_unicode_gives_them():
    """The isolates' purpose: a name in another direction (FSI..PDI) does not pull what follows into it."""
    runs = text.visual_runs("\u2068\u05e9\u05dc\u05d5\u05dd\u2069 - 3 reviews")
    assert [(run.text, run.rtl) for run in runs] == [("\u05e9\u05dc\u05d5\u05dd", True), (" - 3 reviews", False)]
    # without the isolate the Hebrew sets the direction of the whole line
    assert [r.text for r in text.visual_runs("\u05e9\u05dc\u05d5\u05dd - 3 reviews")] == [
        "reviews", " ", "3", "\u05e9\u05dc\u05d5\u05dd - "]
    # and RLI..PDI makes Latin text inside it a right-to-left unit: its "!" goes to the left
    assert [(r.text, r.rtl) for r in text.visual_runs("Hello \u2067world!\u2069")] == [
        ("Hello ", False), ("!", True), ("world", False)]


def test_joiner_and_tag_sequences_stay_in_one_run():
    family = "\U0001F468\u200d\U0001F469\u200d\U0001F467"
    flag = "\U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F"  # Scotland
    for sequence in (family, flag):
        runs = text.visual_runs(f"\u05e9\u05dc\u05d5\u05dd {sequence}")
        assert sequence in [run.text for run in runs], runs
        # one glyph: as wide as its first emoji alone, not the sum of its parts
        assert text.measure(sequence, 40) == pytest.approx(text.measure(sequence[0], 40), rel=0.05)


# ---- every form field of every endpoint, through the API ------------------------------------------------

BASE = {  # a valid request per endpoint, minus its uploads (added from the clip)
    "/api/trim": {"start": "0.2"}, "/api/trim/preview": {"start": "0.2", "format": "jpg"},
    "/api/concatenate": {}, "/api/concatenate-multipart": {},
    "/api/intro/render": {"full_name": "Ada", "team": "T", "role": "R", "start": "0"},
    "/api/announcement/render": {"headline": "News", "start": "0"},
    "/api/how-it-works/render": {"steps": ["One", "Two"], "start": "0"},
    "/api/persona/render": {"name": "Ada", "start": "0"}, "/api/demo/render": {"title": "Demo", "start": "0"},
    "/api/closing/render": {"cta": "Go", "start": "0"},
}
MARKER = "\x00FUZZED\x00"


def typed_fields(view):
    """The fields a client types for one endpoint (every field but the uploads)."""
    names = []
    for name, field in view.serializer_class().fields.items():
        child = getattr(field, "child", None)
        if not isinstance(field, UploadField) and not isinstance(child, UploadField):
            names.append(name)
    return names + ["order_0"] * hasattr(view.serializer_class, "dynamic_fields")


def uploads(path, clip):
    if path == "/api/concatenate":
        return {"videos": [clip, clip]}
    if path == "/api/concatenate-multipart":
        return {"segment_0": clip, "segment_1": clip}
    return {"video": clip}


def post_raw(api, path, fields, name, value):
    """POST `fields` with `name` set to `value`'s UTF-8 bytes as they are (lone surrogates too: the bytes a
    broken client sends), or to raw bytes."""
    body, content_type = multipart({**fields, name: MARKER})
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
    response = api.post(path, data=body.replace(MARKER.encode(), raw), content_type=content_type)
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return response, content


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    from .. import media

    return media.lavfi_clip(tmp_path_factory.mktemp("short") / "short.mp4", seconds=0.6, size="64x48", rate=10)


@pytest.mark.parametrize("view", views.RENDER_VIEWS, ids=[v.path for v in views.RENDER_VIEWS])
def test_every_typed_field_answers_200_or_a_400_naming_it(api, short_clip, view):
    """Each field an endpoint takes, a few values from all of Unicode (and raw bytes): the render is made,
    or refused naming that field; never a 500."""
    path = view.path
    fields = {**uploads(path, short_clip), **BASE[path]}
    names = typed_fields(view)
    assert names  # the endpoint's form was read

    @hsettings(max_examples=4, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @seed(zlib.crc32(path.encode()))  # fixed, and not the same values for every endpoint
    @given(st.data())
    def check(data):
        for name in names:
            value = data.draw(st.one_of(TYPED, WITH_SURROGATES, st.binary(max_size=40)), label=name)
            response, content = post_raw(api, path, fields, name, value)
            assert response.status_code in (200, 400), (name, value, response.status_code, content[:300])
            if response.status_code == 400:
                answer = json.loads(content)
                assert answer["code"] == "invalid_input" and name in answer["fields"], (name, value, answer)
            else:
                assert response["Content-Type"] in ("video/mp4", "image/jpeg") and content

    check()


@pytest.mark.parametrize(("path", "field"), [(p, f) for p, values in BASE.items() if "/render" in p
                                          for f in values if f != "start"])
def test_bidi_isolates_in_template_text_are_drawn(api, short_clip, path, field):
    """The 500 this file was extended for: U+2066..U+2069 in template text (python-bidi asserted on them)."""
    fields = {**uploads(path, short_clip), **BASE[path]}
    for value in ("\u2066LRI\u2069 \u2067\u05e9\u05dc\u05d5\u05dd 1\u2069 \u2068FSI\u2069",
                  "x\u2066", "x\u2067", "x\u2068", "x\u2069", "\u2069\u2069x\u2066\u2067\u2068"):
        response, content = post_raw(api, path, fields, field, value)
        assert response.status_code == 200, (field, value, content[:300])
        assert content[4:8] == b"ftyp"  # an MP4


# ---- the multipart segment order ---------------------------------------------------------------

ORDER = st.one_of(st.integers(-10**6, 10**6).map(str), st.text(max_size=8))


@FAST
@given(st.dictionaries(st.from_regex(r"(segment|order)_[0-9a-z]{0,3}", fullmatch=True), ORDER, max_size=12))
def test_multipart_order_parsing_gives_a_field_error_or_an_order(form):
    serializer = ConcatenateMultipartSerializer()
    # probing is not what this test is about: a segment validates to itself
    from renders.api import serializers as module

    class Accept:
        def bind(self, *args):
            pass

        def run_validation(self, value):
            return value

    original = module.VideoField
    module.VideoField = Accept
    try:
        result = serializer.to_internal_value(form)
    except serializers.ValidationError as exc:
        assert isinstance(exc.detail, dict) and exc.detail  # noqa: PT017  (a property: either outcome is right)
    else:
        segments = [k for k in form if k.startswith("segment_")]
        assert 2 <= len(result["inputs"]) <= 20 and len(result["inputs"]) == len(segments)
    finally:
        module.VideoField = original
