"""The Unicode bidirectional algorithm (UAX #9) for one line: each character's level, and the visual order.

python-bidi's pure-Python algorithm predates isolates (Unicode 6.3), so each
isolate is shown to it as one neutral and its content resolved on its own;
explicit embeddings, overrides and numbers are the library's. Paired brackets
(rule N0) are not in it.
"""

import unicodedata

from bidi import algorithm

ISOLATE_INITIATORS = {"\u2066": "LRI", "\u2067": "RLI", "\u2068": "FSI"}
PDI = "\u2069"
MAX_DEPTH = 125  # UAX #9's deepest embedding level


def _bidi_class(char: str) -> str:
    """The character's Bidi_Class; for one this Python's Unicode database has not assigned yet, its default.

    The fonts can be newer than the database (Noto Color Emoji draws emoji from
    later Unicode versions): pictographs are Other Neutral, as every assigned one
    is; elsewhere the defaults of Unicode's DerivedBidiClass.txt apply.
    """
    found = unicodedata.bidirectional(char)
    if found:
        return found
    code = ord(char)
    if (code & 0xFFFE) == 0xFFFE or 0xFDD0 <= code <= 0xFDEF:
        return "BN"  # noncharacters
    if 0x1F000 <= code <= 0x1FAFF:
        return "ON"
    for first, last, default in _UNASSIGNED_DEFAULTS:
        if first <= code <= last:
            return default
    return "L"


_UNASSIGNED_DEFAULTS = (  # (first, last, Bidi_Class) of unassigned code points, from DerivedBidiClass.txt
    (0x0600, 0x07BF, "AL"), (0x0860, 0x08FF, "AL"), (0xFB50, 0xFDCF, "AL"), (0xFDF0, 0xFDFF, "AL"),
    (0xFE70, 0xFEFF, "AL"), (0x10D00, 0x10D3F, "AL"), (0x10EC0, 0x10EFF, "AL"), (0x10F30, 0x10F6F, "AL"),
    (0x1EC70, 0x1ECBF, "AL"), (0x1ED00, 0x1ED4F, "AL"), (0x1EE00, 0x1EEFF, "AL"),
    (0x0590, 0x05FF, "R"), (0x07C0, 0x085F, "R"), (0xFB1D, 0xFB4F, "R"), (0x10800, 0x10FFF, "R"),
    (0x1E800, 0x1EFFF, "R"),
    (0x20A0, 0x20CF, "ET"),
    (0x2060, 0x206F, "BN"), (0xFFF0, 0xFFF8, "BN"), (0xE0000, 0xE0FFF, "BN"),
)
# What the old algorithm is shown for a character of a class it cannot look up itself.
_STAND_IN = {"L": "a", "R": "\u05d0", "AL": "\u0628", "ET": "#", "ON": "!"}


def _split_isolates(line: str, flat: bool = False) -> list:
    """The line's characters, each outermost isolate (initiator to its matching PDI, or to the end) as one
    (initiator, content) pair; a PDI matching nothing is (None, ""): a neutral standing for nothing (UAX #9 BD9).

    `flat`: past the deepest level every isolate control is such a neutral (an overflow isolate, X5a-X6a).
    """
    if flat:
        return [(None, "") if char in ISOLATE_INITIATORS or char == PDI else char for char in line]
    items, depth, start = [], 0, 0
    for index, char in enumerate(line):
        if char in ISOLATE_INITIATORS:
            start = index if depth == 0 else start
            depth += 1
        elif char == PDI and depth:
            depth -= 1
            if depth == 0:
                items.append((line[start], line[start + 1:index]))
        elif char == PDI:
            items.append((None, ""))
        elif depth == 0:
            items.append(char)
    if depth:
        items.append((line[start], line[start + 1:]))
    return items


def _shown(items: list) -> tuple[list, list, str]:
    """(items, [(item index, what the algorithm sees)], the text it sees): an isolate as one Other Neutral, a
    character of a class the algorithm cannot look up as one of that class; boundary neutrals left out (X9)."""
    shown = []
    for number, item in enumerate(items):
        if isinstance(item, tuple):
            shown.append((number, "\ufffc"))
        elif (cls := _bidi_class(item)) != "BN":
            shown.append((number, item if unicodedata.bidirectional(item) else _STAND_IN[cls]))
    return items, shown, "".join(char for _, char in shown)


def _resolve(line: str, enclosing: int | None = None, kind: str = "") -> tuple[list, int]:
    """([(character, level)] in logical order, the text's own level) for a paragraph (`enclosing` None) or an
    isolate's content (`kind` LRI, RLI or FSI, inside an embedding at level `enclosing`).

    An isolate is a neutral character to the text around it and, inside, text resolved on its own at the
    next level in its direction: so each one is shown to python-bidi as one Other Neutral (U+FFFC) and its
    content resolved by a call of its own. Explicit embeddings and overrides are removed
    (X9); boundary neutrals (joiners, soft hyphens, tags) are kept at the level of the character before them
    (UAX #9 section 5.2), so the shaper still sees ZWJ sequences whole.
    """
    items, shown, seen = _shown(_split_isolates(line))
    if enclosing is None:
        level = algorithm.get_base_level(seen)  # P2, P3 (an isolate's content counts as one neutral)
    else:
        rtl = kind == "RLI" or (kind == "FSI" and algorithm.get_base_level(seen) == 1)
        level = (enclosing + 1) | 1 if rtl else (enclosing + 2) & ~1
        if level > MAX_DEPTH:  # an overflow isolate: its content stays at the enclosing level
            level = enclosing
            items, shown, seen = _shown(_split_isolates(line, flat=True))
    base = level % 2
    storage = algorithm.get_empty_storage()
    storage["base_level"], storage["base_dir"] = base, ("L", "R")[base]
    algorithm.get_embedding_levels(seen, storage)
    chars = list(storage["chars"])
    algorithm.explicit_embed_and_overrides(storage)
    explicit = [c["level"] + level - base for c in chars]  # each at its embedding level, before I1, I2
    kept = {id(c) for c in storage["chars"]}
    algorithm.resolve_weak_types(storage)
    algorithm.resolve_neutral_types(storage, False)
    algorithm.resolve_implicit_levels(storage, False)
    resolved = {number: (outer, c["level"] + level - base)
              for (number, _), c, outer in zip(shown, chars, explicit) if id(c) in kept}
    out = []
    for number, item in enumerate(items):
        if isinstance(item, tuple):
            if item[1] and number in resolved:
                out += _resolve(item[1], resolved[number][0], ISOLATE_INITIATORS[item[0]])[0]
        elif number in resolved:
            out.append((item, resolved[number][1]))
        elif _bidi_class(item) == "BN":
            out.append((item, out[-1][1] if out else None))
    following = level  # a leading boundary neutral takes the level of what follows it
    for index in range(len(out) - 1, -1, -1):
        if out[index][1] is None:
            out[index] = (out[index][0], following)
        following = out[index][1]
    return out, level


def levels(line: str) -> list[tuple[str, int]]:
    """(character, resolved level) in logical order: UAX #9 up to L1. Explicit controls (embeddings,
    overrides, isolates and their PDF/PDI) and paragraph separators are left out: they take no glyph and
    have done their work (HarfBuzz's layout through raqm fails on a paragraph separator)."""
    chars, paragraph = _resolve(line)
    reset = True  # L1: separators, and whitespace before one or at the line's end, go to the paragraph level
    for index in range(len(chars) - 1, -1, -1):
        char, _level = chars[index]
        cls = _bidi_class(char)
        if cls in ("S", "B") or (reset and cls in ("WS", "BN")):
            chars[index] = (char, paragraph)
            reset = True
        else:
            reset = False
    return [(char, level) for char, level in chars if _bidi_class(char) != "B"]  # a paragraph end has no glyph


def visual_order(run_levels: list[int]) -> list[int]:
    """Rule L2: the indices of items at these levels (runs of a line, logical order) in visual order."""
    order = list(range(len(run_levels)))
    if not run_levels:
        return order
    highest = max(run_levels)
    lowest_odd = min((level for level in run_levels if level % 2), default=highest + 1)
    for level in range(highest, lowest_odd - 1, -1):  # reverse every sequence at that level or higher
        index = 0
        while index < len(order):
            if run_levels[order[index]] >= level:
                end = index
                while end < len(order) and run_levels[order[end]] >= level:
                    end += 1
                order[index:end] = order[index:end][::-1]
                index = end
            else:
                index += 1
    return order


EMBEDDINGS = set("\u202a\u202b\u202d\u202e")  # LRE, RLE, LRO, RLO (each closed by a PDF, U+202C)


def open_controls(line: str) -> str:
    """The explicit bidi controls still open at the end of `line` (embeddings, overrides, isolates), in order."""
    stack = []
    for char in line:
        if char in EMBEDDINGS or char in ISOLATE_INITIATORS:
            stack.append(char)
        elif char == "\u202c" and stack and stack[-1] in EMBEDDINGS:  # PDF: the last embedding, not past an isolate
            stack.pop()
        elif char == PDI and any(c in ISOLATE_INITIATORS for c in stack):  # the last isolate, and all inside it
            while stack.pop() not in ISOLATE_INITIATORS:
                pass
    return "".join(stack)
