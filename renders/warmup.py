"""Load what a request needs before the service listens, not on its first request.

Called from gunicorn's `on_starting`, in the master, with the app already
loaded (`preload_app`) and before the port opens; every worker forks from
the warmed master. So a client, even one that connects the moment the port
opens or while a worker is being replaced, never waits for a worker to
import Django, the views or PyAV, or to read the fonts.

What it loads: the URLconf (and through it every view, serializer and the
schema machinery), the font chain and the fonts' shaping (Pillow, raqm),
Pillow's image plugins and PNG encoder, PyAV's codecs, the MIME table, the
auth, session and message backends, the ORM's SQL compiler, and the FFmpeg
binary's path. It opens no database connection. (What it saves: docs/BENCHMARKS.md,
"A fresh worker's first request".)
"""

import logging
import os
import time

logger = logging.getLogger("renders.warmup")


def warm():
    started = time.monotonic()
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018  (reading it imports every view, serializer, template declaration)
    from renders.media import fonts, text
    from renders.media.ffmpeg import ffmpeg_binary

    fonts.chain()
    fonts.registry()
    fonts.coverage()  # the scripts /readyz lists
    for sample in ("Warm up", "张伟", "क्ष", "مرحبا"):
        text.measure(sample, 24)  # loads each face at a size and runs the shaper once
    ffmpeg_binary()
    import av.subtitles.stream  # noqa: F401  (its codec tables, and what opening a container imports)

    _first_use_imports()
    logger.info("event=warmed pid=%d seconds=%.3f", os.getpid(), time.monotonic() - started)


def _first_use_imports():
    """What a first request would otherwise load (found by diffing sys.modules around one)."""
    import io
    import mimetypes
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import get_backends
    from django.utils.module_loading import import_string
    from PIL import Image

    mimetypes.init()  # the download's headers
    Image.init()  # every image plugin: PNG for the text cards, the still-image inputs
    Image.new("RGBA", (2, 2)).save(io.BytesIO(), "PNG")
    get_backends()
    import_module(settings.SESSION_ENGINE)  # the session middleware
    import_string(settings.SESSION_SERIALIZER)
    import_string(settings.MESSAGE_STORAGE)  # the messages middleware
    import_module("django.db.models.sql.compiler")  # the first query
