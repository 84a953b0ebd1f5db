"""The six template renders, each a short declaration.

A `Template` names its endpoint, its extra form fields, and how its text is
laid out over time (`cards`); optional switches turn on the shared effects
(dimmed frame, speed, fade-out, avatar). Everything else (view, workspace,
probing, rendering, logging, cleanup) is shared. To add a template, add one
declaration to `TEMPLATES`.
"""

from collections.abc import Callable
from dataclasses import dataclass

from rest_framework import serializers

from renders.api.fields import ImageField, StepsField, TextField, TimeField
from renders.media.text import ACCENT, BODY, SUBTITLE, TITLE, Block, Card


@dataclass(frozen=True)
class Template:
    endpoint: str
    fields: dict  # name -> serializer field
    cards: Callable  # (validated data, start, end) -> [Card]: the text blocks and when each shows
    dim: bool = False  # darken the frame while the text shows
    speed_field: str | None = None  # a field changing video and audio tempo together
    fade_out_field: str | None = None  # a field giving seconds of fade to black/silence at the end
    avatar_field: str | None = None  # an image field drawn left of the text
    steps_field: str | None = None  # a list field shown one item after another
    about: str = ""  # one line for the API docs


# ---- the six declarations -----------------------------------------------------------


def text(data, name, style):
    return [Block(data[name], style)] if data.get(name) else []


def intro_cards(data, start, end):
    return [Card((Block(data["full_name"], TITLE), Block(data["role"], SUBTITLE), Block(data["team"], ACCENT)),
                 "lower-left", start, end)]


def announcement_cards(data, start, end):
    return [Card((Block(data["headline"], TITLE), *text(data, "subheadline", SUBTITLE)), "center", start, end)]


def how_it_works_cards(data, start, end):
    steps = data["steps"]
    each = data.get("step_duration") or (end - start) / len(steps)
    cards = [Card(tuple(text(data, "title", TITLE)), "top", start, end)] if data.get("title") else []
    for index, step in enumerate(steps):
        step_start = start + index * each
        cards.append(Card((Block(f"{index + 1}. {step}", SUBTITLE),), "center", step_start,
                          min(end, step_start + each)))
    return cards


def persona_cards(data, start, end):
    return [Card((Block(data["name"], TITLE), *text(data, "title", ACCENT), *text(data, "quote", BODY)),
                 "lower-left", start, end)]


def demo_cards(data, start, end):
    return [Card((Block(data["title"], TITLE), *text(data, "caption", BODY)), "lower-left", start, end)]


def closing_cards(data, start, end):
    blocks = (Block(data["cta"], TITLE), *text(data, "tagline", SUBTITLE), *text(data, "url", ACCENT))
    return [Card(blocks, "center", start, end)]


TEMPLATES = [
    Template("intro", {
        "full_name": TextField(max_length=80), "team": TextField(max_length=80), "role": TextField(max_length=80),
    }, intro_cards, about="a lower-third name card: name, role and team over the video"),
    Template("announcement", {
        "headline": TextField(max_length=120), "subheadline": TextField(max_length=200, required=False),
    }, announcement_cards, dim=True, about="a centred headline (and subheadline) over the dimmed video"),
    Template("how-it-works", {
        "steps": StepsField(), "title": TextField(max_length=80, required=False),
        "step_duration": TimeField(required=False, min_value=0.2, max_value=60,
                                   help_text="seconds each step shows (default: the window shared equally)"),
    }, how_it_works_cards, steps_field="steps", about="numbered steps shown one after another, with an optional title"),
    Template("persona", {
        "name": TextField(max_length=80), "title": TextField(max_length=80, required=False),
        "quote": TextField(max_length=240, multiline=True, required=False),
        "avatar": ImageField(required=False, max_bytes=10 * 1024 * 1024),
    }, persona_cards, avatar_field="avatar",
        about="a name card with title, quote and an optional avatar image beside it"),
    Template("demo", {
        "title": TextField(max_length=80), "caption": TextField(max_length=200, required=False),
        "speed": serializers.FloatField(min_value=0.25, max_value=4, default=1.0,
                                        help_text="tempo of picture and sound together (pitch kept)"),
    }, demo_cards, speed_field="speed", about="a title and caption over the video, played faster or slower (speed)"),
    Template("closing", {
        "cta": TextField(max_length=80), "url": TextField(max_length=200, required=False),
        "tagline": TextField(max_length=120, required=False),
        "fade_out": TimeField(required=False, default=1.0, max_value=5,
                              help_text="seconds of fade to black and silence at the end"),
    }, closing_cards, fade_out_field="fade_out",
        about="a call to action, URL and tagline; picture and sound fade to black and silence"),
]  # fmt: skip
