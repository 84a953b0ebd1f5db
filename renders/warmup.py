"""Load what a request needs when a worker boots, not on its first request.

Called from gunicorn's `post_worker_init`: the URLconf (and through it every
view, serializer and the schema machinery), the font chain and the fonts'
shaping (Pillow, raqm), Pillow's image plugins and PNG encoder, PyAV's
codecs, the MIME table, the auth and session backends, and the FFmpeg
binary's path. bench/api.py measures a fresh worker's first request with
and without it.
"""

import logging
import time

logger = logging.getLogger("renders.warmup")


def warm():
    started = time.monotonic()
    from django.urls import get_resolver

    get_resolver().url_patterns  # imports every view, serializer, template declaration
    from . import fonts, text
    from .ffmpeg import ffmpeg_binary

    fonts.chain()
    fonts.registry()
    for sample in ("Warm up", "张伟", "क्ष", "مرحبا"):
        text.measure(sample, 24)  # loads each face at a size and runs the shaper once
    ffmpeg_binary()
    import av.subtitles.stream  # noqa: F401  (its codec tables, and what opening a container imports)

    _first_use_imports()

    from django.db import connections

    connections.close_all()  # a worker opens its own connections on demand
    logger.info("event=warmed seconds=%.3f", time.monotonic() - started)


def _first_use_imports():
    """What a first request would otherwise load (found by diffing sys.modules around one)."""
    import io
    import mimetypes
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import get_backends
    from PIL import Image

    mimetypes.init()  # the download's headers
    Image.init()  # every image plugin: PNG for the text cards, the still-image inputs
    Image.new("RGBA", (2, 2)).save(io.BytesIO(), "PNG")
    get_backends()
    import_module(settings.SESSION_ENGINE)
