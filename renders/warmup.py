"""Load what a request needs when a worker boots, not on its first request.

Called from gunicorn's `post_worker_init`: the URLconf (and through it every
view, serializer and the schema machinery), the font chain and the fonts'
shaping (Pillow, raqm), PyAV's codecs, and the FFmpeg binary's path.
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
    import av  # noqa: F401  (its codec tables)

    from django.db import connections

    connections.close_all()  # a worker opens its own connections on demand
    logger.info("event=warmed seconds=%.3f", time.monotonic() - started)
