"""The six template renders, each a short declaration.

A `Template` names its endpoint, its extra form fields, and how its text is
laid out over time (`cards`); optional switches turn on the shared effects
(dimmed frame, speed, fade-out, avatar). Everything else (view, workspace,
probing, rendering, logging, cleanup) is shared. To add a template, add one
declaration to `TEMPLATES`.
"""

import json
from dataclasses import dataclass
from typing import Callable

from rest_framework import serializers

from . import builders
from .fields import ImageField, TextField, TimeField, VideoField
from .lifecycle import Output, Render
from .output import download_name, write_graph
from .options import StyleFields
from .serializers import EPSILON, RenderSerializer
from .text import ACCENT, BODY, SUBTITLE, TITLE, Block, Card, layout, render_block, safe_margin

MIN_WINDOW = 0.2


@dataclass(frozen=True)
class Template:
    endpoint: str
    fields: dict  # name -> serializer field
    cards: Callable  # (data, start, end) -> [Card]
    dim: bool = False  # darken the frame while the text shows
    speed_field: str | None = None  # a field changing video and audio tempo together
    fade_out_field: str | None = None  # a field giving seconds of fade to black/silence at the end
    avatar_field: str | None = None  # an image field drawn left of the text
    steps_field: str | None = None  # a list field shown one item after another
    about: str = ""  # one line for the API docs


# ---- fields -----------------------------------------------------------------------


class StepsField(serializers.ListField):
    """A repeated form field, or one field holding a JSON array of strings."""

    def __init__(self, **kwargs):
        super().__init__(child=TextField(max_length=100), min_length=1, max_length=8, **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, (list, tuple)) and len(data) == 1 and str(data[0]).lstrip().startswith("["):
            try:
                data = json.loads(data[0])
            except ValueError:
                raise serializers.ValidationError("is not a valid JSON array of strings") from None
            if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
                raise serializers.ValidationError("must be a JSON array of strings")
        data = [item for item in data if isinstance(item, str) and item.strip()]
        if not data:
            self.fail("empty")
        return super().to_internal_value(data)


class TemplateSerializer(StyleFields, RenderSerializer):
    template: Template = None  # set, with the template's fields, by serializer_for()
    start = TimeField(required=False, default=0.5, help_text="when the text appears (output time)")
    duration = TimeField(required=False, default=4.0, min_value=0.1,
                         help_text="how long the text stays (clipped to the end of the video)")

    def validate(self, attrs):
        template = self.template
        info = attrs["video"].info
        speed = attrs.get(template.speed_field, 1.0) if template.speed_field else 1.0
        length = info.duration / speed
        start = attrs["start"]
        if start > length - MIN_WINDOW:
            raise serializers.ValidationError(
                {"start": [f"must leave at least {MIN_WINDOW} s of video (the output is {length:.3f} s long)"]}
            )
        end = min(start + attrs["duration"], length)
        if template.steps_field and attrs.get("step_duration"):
            needed = start + len(attrs[template.steps_field]) * attrs["step_duration"]
            if needed > length + EPSILON:
                raise serializers.ValidationError(
                    {"step_duration": [f"the steps need {needed - start:.2f} s after start, "
                                       f"but the output is {length:.3f} s long"]}
                )
            end = needed
        attrs["window"] = (start, end)
        attrs["output_length"] = length
        return super().validate(attrs)

    def params(self):
        params = super().params()
        params.pop("output_length", None)
        return params


def serializer_for(template: Template):
    attrs = {"template": template, "video": VideoField(), **template.fields}
    name = "".join(part.title() for part in template.endpoint.split("-")) + "Serializer"
    return type(name, (TemplateSerializer,), attrs)


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
        cards.append(Card((Block(f"{index + 1}. {step}", SUBTITLE),), "center", step_start, min(end, step_start + each)))
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
    }, persona_cards, avatar_field="avatar", about="a name card with title, quote and an optional avatar image beside it"),
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
    }, closing_cards, fade_out_field="fade_out", about="a call to action, URL and tagline; picture and sound fade to black and silence"),
]  # fmt: skip


# ---- the one render operation for every template ---------------------------------------


@dataclass(frozen=True)
class Still:
    """An image laid over the video for a time window: a text block or the avatar."""

    name: str  # file name in the workspace
    demuxer: str
    start: float
    end: float
    fade: float
    x: int
    y: int
    size: int | None = None  # scale to fit this many pixels (the avatar)


def render_template(template: Template, render: Render, data: dict) -> Output:
    video = data["video"]
    house = data["output"]
    start, end = data["window"]
    length = data["output_length"]
    fade = min(0.5, (end - start) / 4)
    avatar = data.get(template.avatar_field) if template.avatar_field else None
    short = min(house.width, house.height)
    avatar_size = round(0.24 * short) if avatar else 0
    inset = avatar_size + round(0.03 * short) if avatar else 0

    stills, card_box = [], None  # the avatar and the text blocks, laid over the video in this order
    for card in template.cards(data, start, end):
        placed, box = layout(card, house.width, house.height, inset=inset, style=house.style)
        card_box = card_box or box  # the avatar sits beside the first card
        for block in placed:
            image = render.workspace.new_path("text", ".png")
            render_block(block).save(image, format="PNG")
            stills.append(Still(image.name, "png_pipe", block.start, block.end,
                                min(fade, (block.end - block.start) / 4), block.x, block.y))
    if avatar:
        margin = safe_margin(house.width, house.height)
        y = max(margin // 2, card_box.bottom - avatar_size)
        stills.insert(0, Still(avatar.name, avatar.info.demuxer, start, end, fade, margin, y, size=avatar_size))

    speed = data.get(template.speed_field, 1.0) if template.speed_field else 1.0
    video_pre, audio_pre = builders.speed_filters(speed)
    fade_seconds = min(data.get(template.fade_out_field) or 0.0, length) if template.fade_out_field else 0.0
    video_end, audio_end = builders.fade_out(length, fade_seconds, house.frame)
    dim = builders.dim(start, end) if template.dim else ""
    chains = builders.normalize_graph(0, video.info, house, length, video_pre=video_pre, audio_pre=audio_pre,
                                      video_post=dim, audio_post=audio_end, out_v="base0")
    inputs = builders.input_args(video.name, video.info)
    for number, still in enumerate(stills, start=1):
        inputs += builders.image_input_args(still.name, still.demuxer)
        chains.append(builders.still_chain(number, house.fps, still.start, still.end, still.fade, f"still{number}",
                                           size=still.size))
        chains.append(builders.overlay(f"base{number - 1}", f"still{number}", still.x, still.y, f"base{number}"))
    chains.append(f"[base{len(stills)}]{video_end or 'null'}[v]")
    output = render.workspace.new_path("output", ".mp4")
    graph = write_graph(render, chains)
    render.run_ffmpeg(inputs + builders.graph_args(graph) + builders.house_output_args(house, output.name))
    return Output(output, download_name(data, template.endpoint, "mp4"),
                  details={"speed": speed, "window": [start, end]})
