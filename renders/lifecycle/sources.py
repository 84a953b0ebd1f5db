"""Sources by reference brought into the workspace: the step between a stored plan and its render.

`resolve()` takes what a job stored at its 202 and returns the plan to run:
- a ComposePlan whose sources may still be URLs: every source fetched into
  the workspace (each distinct URL once, lifecycle.fetch), probed exactly as
  an upload is, and what depends on the sources decided (each video and
  audio clip's length, the output's duration); a refusal names the JSON
  path of the source's first use;
- a PendingForm (any other endpoint whose file fields were URLs): the URLs
  fetched, then the endpoint's own form run on the whole request, as a
  synchronous request runs it (`FORMS`, filled by the API layer: this layer
  knows the forms only by their endpoint's name).
Every other plan passes through unchanged.
"""

from dataclasses import replace

from django.conf import settings

from renders.errors import InvalidInput
from renders.lifecycle import uploads_store
from renders.lifecycle.fetch import Fetcher
from renders.media import captions
from renders.media.probe import probe_audio, probe_image, probe_video
from renders.media.spec import GIF_MAX_SECONDS
from renders.plans import AudioInput, CaptionsInput, ComposePlan, ImageInput, PendingForm, VideoInput

# endpoint -> planner(form: dict of key -> [values], workspace) -> plan; registered by renders.api.views
FORMS = {}


def link_upload(reference: str, owner: str, workspace, field: str):
    """`upload:<id>` of this owner, linked read-only into the workspace under a new name; its path. Another
    client's upload, an unknown or expired one: 400 naming the field."""
    return uploads_store.resolve_upload(reference, owner, workspace.path, field)


def probed(media: str, path, field: str):
    """The source at `path` probed as the form field of its kind would probe an upload."""
    if media == "video":
        return VideoInput(field, path.name, probe_video(path, field))
    if media == "image":
        return ImageInput(field, path.name, probe_image(path, field))
    if media == "audio":
        return AudioInput(field, path.name, probe_audio(path, field))
    size = path.stat().st_size
    if size > captions.MAX_BYTES:
        raise InvalidInput(f"{field}: at most {captions.MAX_BYTES // (1024 * 1024)} MB",
                           fields={field: [f"at most {captions.MAX_BYTES // (1024 * 1024)} MB"]})
    try:
        kind, cues = captions.parse(path.read_bytes())
    except captions.CaptionError as exc:
        raise InvalidInput(f"{field}: {exc}", fields={field: [str(exc)]}) from None
    return CaptionsInput(field, path.name, kind, size, cues)


def resolve(plan, workspace):
    if isinstance(plan, PendingForm):
        return pending_form(plan, workspace)
    if not isinstance(plan, ComposePlan) or (plan.resolved and plan.duration is not None):
        return plan
    fetcher = Fetcher(workspace.path, max_bytes=settings.VIDEOAPI_MAX_UPLOAD_BYTES)
    sources = []
    for source in plan.sources:
        path = workspace.path / source.name if source.name else fetcher.get(source.ref, source.path)
        sources.append(replace(source, name=path.name, input=probed(source.media, path, source.path)))
    errors, layers = {}, []
    for layer in plan.layers:
        if layer.kind in ("video", "audio"):
            length = sources[layer.source].input.info.duration
            if layer.trim >= length - 0.01:
                errors[f"{layer.path}.asset.trim"] = [f"must be less than the source's length ({length:.3f} s)"]
                continue
            if layer.length is None:
                layer = replace(layer, length=round(length - layer.trim, 6))
        layers.append(layer)
    if errors:
        raise InvalidInput(next(f"{path}: {messages[0]}" for path, messages in errors.items()), fields=errors)
    duration = plan.duration or max(layer.end for layer in layers)
    check_duration(plan, duration)
    return replace(plan, sources=tuple(sources), layers=tuple(layers), duration=duration)


def check_duration(plan: ComposePlan, duration: float):
    """The output's length within the limits: the service's, a gif's; a still's moment inside it."""
    field = "output.duration" if plan.duration else "timeline"
    limit = settings.VIDEOAPI_MAX_OUTPUT_SECONDS
    if duration > limit:
        message = f"the video would be {duration:.3f} s long: at most {limit:g} s (VIDEOAPI_MAX_OUTPUT_SECONDS)"
        raise InvalidInput(f"{field}: {message}", fields={field: [message]})
    if plan.format == "gif" and duration > GIF_MAX_SECONDS:
        message = f"a gif is at most {GIF_MAX_SECONDS:g} s long (this one would be {duration:.3f} s)"
        raise InvalidInput(f"output.format: {message}", fields={"output.format": [message]})
    if plan.still and plan.frame_at >= duration:
        message = f"must be before the end of the video ({duration:.3f} s)"
        raise InvalidInput(f"output.frame_at: {message}", fields={"output.frame_at": [message]})


def fetch_files(files, workspace) -> list:
    """Each FormFile with its URL fetched into the workspace (each distinct URL once)."""
    fetcher = Fetcher(workspace.path, max_bytes=settings.VIDEOAPI_MAX_UPLOAD_BYTES)
    return [replace(item, name=fetcher.get(item.url, item.field).name, url=None) if item.url else item
            for item in files]


def pending_form(plan: PendingForm, workspace):
    """The endpoint's plan from a form whose URL files are now fetched: its own form run on the whole request."""
    files = fetch_files(plan.files, workspace)
    form = {key: list(values) for key, values in plan.fields}
    for item in files:
        form.setdefault(item.field, []).append(item)
    return FORMS[plan.endpoint](form, workspace)
