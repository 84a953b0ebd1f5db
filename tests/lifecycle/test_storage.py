"""renders.lifecycle.storage against a real S3 store (SeaweedFS on loopback, tests/objectstore.py), and the
settings that configure it."""

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import tracemalloc
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from django.utils.http import content_disposition_header

from renders.errors import RangeNotSatisfiable, Unavailable, answer_for
from renders.lifecycle import storage

from ..conftest import use_s3

ROOT = Path(__file__).resolve().parents[2]
MB = 1024 * 1024


def write_noise(path: Path, size: int) -> str:
    """`size` pseudo-random bytes written a megabyte at a time; returns their sha256."""
    digest = hashlib.sha256()
    seed = hashlib.sha256(path.name.encode()).digest()
    with open(path, "wb") as out:
        for i in range(0, size, MB):
            block = hashlib.shake_256(seed + i.to_bytes(8, "big")).digest(min(MB, size - i))
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(MB):
            digest.update(block)
    return digest.hexdigest()


def fetch(url):
    assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310  (the test store's http URL)
        return response.read(), response.headers


def refused(url) -> int:
    with pytest.raises(urllib.error.HTTPError) as refusal:
        fetch(url)
    return refusal.value.code


def prefix():
    return f"jobs/{uuid.uuid4()}/"


def test_put_and_get_round_trip_byte_exact_in_bounded_memory(s3_storage, tmp_path):
    size = 64 * MB + 123  # past the 8 MB multipart threshold, in several parts
    source, copy = tmp_path / "source.mp4", tmp_path / "copy.mp4"
    want = write_noise(source, size)
    key = prefix() + "result/out.mp4"
    assert storage.exists(key) is False  # (the client made and botocore's S3 model loaded before measuring)

    tracemalloc.start()
    try:
        assert storage.put_file(key, source) == size
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        assert storage.get_file(key, copy) == size
        _, get_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert sha256_of(copy) == want
    # the store's own view, through a client of the test's: the whole object, uploaded in parts
    head = s3_storage.client().head_object(Bucket=s3_storage.bucket, Key=key)
    assert head["ContentLength"] == size
    assert head["ContentType"] == "video/mp4"
    assert head["ETag"].strip('"').endswith("-9")  # a multipart upload's ETag ends in its part count (8 MB parts)
    # neither direction held the file (a whole read traces 64 MB at once): storage.TRANSFER bounds what is in
    # flight (measured: 6 MB up, 9 MB down, for 20 MB and 64 MB files alike)
    assert put_peak < 24 * MB, put_peak
    assert get_peak < 24 * MB, get_peak


def test_size_exists_delete_and_a_missing_key(s3_storage, tmp_path):
    key = prefix() + "input/clip.mp4"
    source = tmp_path / "clip.mp4"
    write_noise(source, 3 * MB)
    assert storage.exists(key) is False
    with pytest.raises(FileNotFoundError):
        storage.size(key)
    with pytest.raises(FileNotFoundError):
        storage.get_file(key, tmp_path / "nothing")
    with pytest.raises(FileNotFoundError):
        storage.open_range(key, 0, 9)
    assert not (tmp_path / "nothing").exists()

    assert storage.put_file(key, source) == 3 * MB
    assert storage.exists(key) is True
    assert storage.size(key) == 3 * MB
    storage.put_file(key, tmp_path / "clip.mp4")  # same key again: replaced, not renamed
    assert [o["Key"] for o in s3_storage.client().list_objects_v2(
        Bucket=s3_storage.bucket, Prefix=key.rsplit("/", 1)[0])["Contents"]] == [key]

    storage.delete(key)
    assert storage.exists(key) is False
    with pytest.raises(ClientError):
        s3_storage.client().head_object(Bucket=s3_storage.bucket, Key=key)
    storage.delete(key)  # already gone: fine


def test_open_range_reads_only_the_bytes_asked_for(s3_storage, tmp_path):
    source = tmp_path / "r.bin"
    write_noise(source, 2 * MB)
    data = source.read_bytes()
    key = prefix() + "result/r.bin"
    storage.put_file(key, source)

    body = storage.open_range(key, 1000, 1999)
    try:
        assert body.read() == data[1000:2000]
    finally:
        body.close()
    tail = storage.open_range(key, 2 * MB - 10)
    assert b"".join(tail.iter_chunks(4)) == data[-10:]
    tail.close()
    with pytest.raises(RangeNotSatisfiable) as past:
        storage.open_range(key, 3 * MB, 3 * MB + 5)
    assert answer_for(past.value).status == 416


def test_presigned_get_gives_the_bytes_as_an_attachment(s3_storage, tmp_path):
    source = tmp_path / "a.mp4"
    want = write_noise(source, MB + 7)
    key = prefix() + "result/a.mp4"
    storage.put_file(key, source)

    filename = "Résumé final.mp4"
    url = storage.presigned_get(key, filename, "video/mp4")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["300"]  # VIDEOAPI_S3_URL_TTL
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert s3_storage.secret_key not in url

    body, headers = fetch(url)
    assert hashlib.sha256(body).hexdigest() == want
    assert headers["Content-Disposition"] == content_disposition_header(True, filename)
    assert headers["Content-Type"] == "video/mp4"

    # the signature is checked: the same URL for another key, or without its signature, is refused
    assert refused(url.replace("/a.mp4?", "/b.mp4?")) == 403
    assert refused(url.split("?")[0]) == 403


def test_an_expired_presigned_url_is_refused(s3_storage, settings, monkeypatch, tmp_path):
    use_s3(settings, monkeypatch, s3_storage, url_ttl=1)
    source = tmp_path / "e.mp4"
    write_noise(source, 1000)
    key = prefix() + "result/e.mp4"
    storage.put_file(key, source)
    url = storage.presigned_get(key, "e.mp4", "video/mp4")
    assert "X-Amz-Expires=1&" in url
    time.sleep(2.5)
    assert refused(url) == 403


def test_older_than_lists_only_old_keys_under_the_prefix(s3_storage, tmp_path):
    base = prefix()
    source = tmp_path / "o.bin"
    write_noise(source, 100)
    storage.put_file(base + "old-1", source)
    storage.put_file(base + "sub/old-2", source)
    storage.put_file(prefix() + "elsewhere-old", source)
    time.sleep(3)  # the store dates objects to the second: 3 s apart, a 1.5 s threshold splits them surely
    storage.put_file(base + "new", source)

    assert sorted(storage.older_than(base, 1.5)) == [base + "old-1", base + "sub/old-2"]
    assert storage.older_than(base, 60) == []
    assert storage.older_than(base + "sub/", 1.5) == [base + "sub/old-2"]
    assert storage.older_than(prefix(), 0) == []


def test_the_store_checks_credentials(s3_storage, settings, monkeypatch, tmp_path):
    key = prefix() + "input/secret.mp4"
    source = tmp_path / "s.mp4"
    write_noise(source, 1000)
    storage.put_file(key, source)

    # a client with a wrong secret is refused by the store itself
    with pytest.raises(ClientError) as refusal:
        s3_storage.client(secret_key="not-the-secret").get_object(Bucket=s3_storage.bucket, Key=key)
    assert refusal.value.response["Error"]["Code"] in {"SignatureDoesNotMatch", "AccessDenied"}
    # so is an unsigned request
    assert refused(f"{s3_storage.endpoint_url}/{s3_storage.bucket}/{key}") == 403

    # the service with a wrong secret: 503 unavailable naming the store, for every call that reaches it
    use_s3(settings, monkeypatch, s3_storage, secret_key="not-the-secret")
    for call in (lambda: storage.put_file(key, source), lambda: storage.get_file(key, tmp_path / "x"),
                 lambda: storage.size(key), lambda: storage.exists(key), lambda: storage.open_range(key, 0, 1),
                 lambda: storage.older_than("jobs/", 0)):
        with pytest.raises(Unavailable) as unavailable:
            call()
        assert_unavailable(unavailable.value)
    assert not (tmp_path / "x").exists()


def assert_unavailable(exc):
    answer = answer_for(exc)
    assert (answer.status, answer.code) == (503, "unavailable")
    assert answer.detail == "the object store is unavailable; try again shortly"
    assert answer.headers["Retry-After"].isdigit()
    assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)  # no boto3 chained


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when this returns; nothing listens on it


def test_a_store_that_is_down_is_unavailable_not_a_500(s3_storage, settings, monkeypatch, tmp_path, caplog):
    use_s3(settings, monkeypatch, s3_storage, endpoint_url=f"http://127.0.0.1:{closed_port()}")
    source = tmp_path / "d.mp4"
    write_noise(source, 1000)
    key = prefix() + "input/d.mp4"
    started = time.monotonic()
    for call in (lambda: storage.put_file(key, source), lambda: storage.get_file(key, tmp_path / "x"),
                 lambda: storage.size(key), lambda: storage.exists(key), lambda: storage.delete(key),
                 lambda: storage.open_range(key, 0, 1), lambda: storage.older_than("jobs/", 0)):
        with pytest.raises(Unavailable) as unavailable:
            call()
        assert_unavailable(unavailable.value)
    assert time.monotonic() - started < 60  # refused connections fail fast (botocore's few retries)
    assert "event=object_store_unavailable" in caplog.text
    assert s3_storage.secret_key not in caplog.text


def test_a_missing_bucket_is_unavailable_not_a_missing_key(s3_storage, settings, monkeypatch, tmp_path):
    use_s3(settings, monkeypatch, s3_storage, bucket="no-such-bucket")
    source = tmp_path / "b.mp4"
    write_noise(source, 1000)
    key = prefix() + "input/b.mp4"
    for call in (lambda: storage.put_file(key, source), lambda: storage.get_file(key, tmp_path / "x"),
                 lambda: storage.size(key), lambda: storage.exists(key), lambda: storage.open_range(key, 0, 1),
                 lambda: storage.older_than("jobs/", 0)):
        with pytest.raises(Unavailable) as unavailable:
            call()
        assert_unavailable(unavailable.value)


def test_keys_are_checked():
    for bad in ("", "/uploads/x", "uploads/../etc", "uploads//x", "uploads/./x"):
        with pytest.raises(ValueError, match="not an object key"):
            storage.exists(bad)


# -- the settings -------------------------------------------------------------

def settings_in_a_fresh_process(env: dict, tmp_path) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("VIDEOAPI_", "DJANGO_"))}
    code = ("import json, django; django.setup(); from django.conf import settings; "
            "print(json.dumps({'storages': settings.STORAGES, 'storage': settings.VIDEOAPI_STORAGE, "
            "'proxy': settings.VIDEOAPI_S3_PROXY, 'ttl': settings.VIDEOAPI_S3_URL_TTL}))")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**clean, "DJANGO_SETTINGS_MODULE": "videoapi.settings",
                               "VIDEOAPI_STATE_DIR": str(tmp_path), **env})


def test_settings_local_by_default_and_s3_builds_the_media_storage(tmp_path):
    local = settings_in_a_fresh_process({}, tmp_path)
    assert local.returncode == 0, local.stderr
    assert json.loads(local.stdout)["storage"] == "local"
    assert "media" not in json.loads(local.stdout)["storages"]

    seaweed = settings_in_a_fresh_process({"VIDEOAPI_STORAGE": "s3", "VIDEOAPI_S3_BUCKET": "renders",
                                           "VIDEOAPI_S3_ENDPOINT_URL": "http://127.0.0.1:8333",
                                           "VIDEOAPI_S3_REGION": "eu-west-3", "VIDEOAPI_S3_URL_TTL": "60",
                                           "VIDEOAPI_S3_PROXY": "true"}, tmp_path)
    assert seaweed.returncode == 0, seaweed.stderr
    values = json.loads(seaweed.stdout)
    assert (values["storage"], values["proxy"], values["ttl"]) == ("s3", True, 60)
    assert values["storages"]["media"] == {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": "renders", "endpoint_url": "http://127.0.0.1:8333", "region_name": "eu-west-3",
        "signature_version": "s3v4", "addressing_style": "path", "default_acl": None, "querystring_expire": 60,
        "file_overwrite": False}}
    assert set(values["storages"]) == {"default", "staticfiles", "media"}

    aws = settings_in_a_fresh_process({"VIDEOAPI_STORAGE": "s3", "VIDEOAPI_S3_BUCKET": "renders"}, tmp_path)
    assert aws.returncode == 0, aws.stderr
    options = json.loads(aws.stdout)["storages"]["media"]["OPTIONS"]
    assert options["endpoint_url"] is None and "addressing_style" not in options  # AWS: its own addressing
    assert (options["region_name"], options["querystring_expire"]) == ("us-east-1", 300)


@pytest.mark.parametrize(("env", "message"), [
    ({"VIDEOAPI_STORAGE": "s3"}, "VIDEOAPI_STORAGE=s3 needs VIDEOAPI_S3_BUCKET"),
    ({"VIDEOAPI_STORAGE": "gcs"}, "VIDEOAPI_STORAGE must be 'local' or 's3'"),
    ({"VIDEOAPI_S3_URL_TTL": "0"}, "VIDEOAPI_S3_URL_TTL must be at least 1"),
    ({"VIDEOAPI_S3_URL_TTL": "604801"}, "VIDEOAPI_S3_URL_TTL is at most 604800"),
])
def test_settings_refuse_a_wrong_storage_configuration(env, message, tmp_path):
    result = settings_in_a_fresh_process(env, tmp_path)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr
