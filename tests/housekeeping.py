
"""What the housekeeping tests set up and read: a dead worker's leftovers, the sweep, the metrics."""

import os
import time
import uuid
from io import StringIO

from django.core.management import call_command

from renders.lifecycle import workspace
from renders.models import RenderLog


def make_leftover(endpoint="trim", age=3600, status=RenderLog.Status.RENDERING, content=b"x" * 1000):
    """A workspace as a dead worker leaves it: unlocked, files inside, an open RenderLog row."""
    render_id = uuid.uuid4()
    path = workspace.temp_root() / f"{endpoint}_{render_id}"
    path.mkdir(mode=0o700)
    (path / ".lock").touch()
    (path / "upload_1.bin").write_bytes(content)
    old = time.time() - age
    os.utime(path, (old, old))
    RenderLog.objects.create(id=render_id, endpoint=endpoint, status=status, workspace=str(path))
    return render_id, path


def sweep_cmd(*args):
    out = StringIO()
    call_command("sweep_temp", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def metric_value(name, **labels):
    from django.test import Client

    text = Client().get("/metrics").content.decode()
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
