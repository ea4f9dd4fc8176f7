"""The secrets sentinel, from Python: an ARM access token, a storage
account key, a SAS and object-store credentials, each a unique sentinel,
are given to every binding entry point that takes a secret, and used
against a server on 127.0.0.1 that refuses them. The server sees them (so
they were really used); no error, repr, plan, report, progress event,
Rust log record (captured at DEBUG, which TRACE maps to) or output of the
process holds any of them."""

import base64
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

import vmrestore

TOKEN = "tok-SENTINEL-py-4f1a"
KEY_RAW = b"key-SENTINEL-py-9c2e-0123456789abcdef"
KEY = base64.b64encode(KEY_RAW).decode()
SAS = "sv=2024-08-04&ss=b&srt=co&sp=rwdlac&se=2030-01-01T00:00:00Z&sig=SAS-SENTINEL-py-77d0"
OPT_KEY = base64.b64encode(b"opt-SENTINEL-py-31b8").decode()
SENTINELS = [TOKEN, KEY, KEY_RAW.decode(), "SAS-SENTINEL-py-77d0", SAS, OPT_KEY, "SENTINEL-py"]
SUB = "22222222-2222-2222-2222-222222222222"


class Refuser(BaseHTTPRequestHandler):
    """Refuses everything as Azure would (401 for ARM, 403 for storage),
    recording what it was sent."""

    seen: list[str] = []

    def _refuse(self) -> None:
        Refuser.seen.append(f"{self.command} {self.path}\n{self.headers}")
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path.startswith("/subscriptions") or self.path.startswith("/providers"):
            body = json.dumps({"error": {"code": "InvalidAuthenticationToken",
                                         "message": "The access token is invalid."}}).encode()
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
        else:
            body = (b'<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code>'
                    b"<Message>Server failed to authenticate the request.</Message></Error>")
            self.send_response(403)
            self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _refuse

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Refuser)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def clean(what: str, text: str) -> None:
    for s in SENTINELS:
        assert s not in text, f"{what} holds a secret: {text[:300]}"


def test_no_secret_reaches_errors_reprs_plans_reports_events_logs_or_output(server, demo, capfd,
                                                                           caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="vmrestore")
    d, restores = demo
    web01 = next(r for r in restores if r["name"] == "web01")
    plan = vmrestore.plan(web01["restore_point"], web01["request"], profiles=["commvault"])
    repo = vmrestore.Repository(d / "repository")
    texts: list[tuple[str, str]] = []

    def error_text(e: BaseException) -> str:
        return f"{e!s} {e!r} {e.args!r} {getattr(e, 'code', '')} {e.__cause__!r} {e.__context__!r}"

    # ARM: a token, refused.
    cloud = vmrestore.ArmCloud(SUB, token=TOKEN, endpoint=server, poll_interval_ms=10)
    texts.append(("ArmCloud repr", repr(cloud)))
    with pytest.raises(vmrestore.CloudError) as e:
        cloud.catalog()
    texts.append(("catalog error", error_text(e.value)))
    events: list[Any] = []
    ex = vmrestore.RestoreExecutor(cloud, repo, max_attempts=2, base_delay_ms=1)
    texts.append(("executor repr", repr(ex)))
    try:
        report = ex.run_sync(plan, progress=events.append)
        assert not report.succeeded
        texts.append(("report", report.to_json() + repr(report) + json.dumps(report.to_dict())))
    except vmrestore.VmrestoreError as err:
        texts.append(("run error", error_text(err)))
    texts.append(("events", repr(events)))
    texts.append(("plan", plan.to_json() + plan.render() + plan.to_mermaid() + repr(plan)))

    # Page blobs: a shared key, then a SAS, refused.
    for kwargs in ({"account": "devstoreaccount1", "key": KEY}, {"sas": SAS}):
        sink = vmrestore.PageBlobSink(f"{server}/devstoreaccount1/restores", **kwargs)
        texts.append(("PageBlobSink repr", repr(sink)))
        ex2 = vmrestore.RestoreExecutor(vmrestore.SimCloud(), repo, blob_sink=sink, max_attempts=2,
                                        base_delay_ms=1)
        try:
            r2 = ex2.run_sync(plan, progress=events.append)
            assert not r2.succeeded
            texts.append(("blob report", r2.to_json() + repr(r2)))
        except vmrestore.VmrestoreError as err:
            texts.append(("blob run error", error_text(err)))
        try:
            sink.read_disk("web01-dr-osdisk")
        except vmrestore.VmrestoreError as err:
            texts.append(("read_disk error", error_text(err)))

    # Object-store repositories: a key, and options with one.
    stores = [
        vmrestore.ObjectStoreRepository(endpoint=f"{server}/devstoreaccount1", account="devstoreaccount1",
                                        key=KEY, container="backups"),
        vmrestore.ObjectStoreRepository(url="az://backups", options={
            "azure_storage_account_name": "devstoreaccount1", "azure_storage_access_key": OPT_KEY,
            "azure_storage_endpoint": f"{server}/devstoreaccount1", "azure_allow_http": "true"}),
    ]
    for obj in stores:
        texts.append(("ObjectStoreRepository repr", repr(obj)))
        with pytest.raises(vmrestore.VmrestoreError) as e3:
            obj.list()
        texts.append(("repository error", error_text(e3.value)))

    # The Rust log, everything the native module logged: it was captured
    # (requests to this server among it) and holds no secret either.
    records = [r for r in caplog.records if r.name.startswith("vmrestore")]
    assert records, "no Rust log record reached Python logging"
    messages = [f"{r.name} {r.levelname} {r.getMessage()}" for r in records]
    host = server.split("//")[1]
    assert any(f"connecting to {host}" in m for m in messages), messages[:20]
    assert {r.levelno for r in records} <= {logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR}
    texts.append(("log records", "\n".join(messages)))
    texts.append(("log text", caplog.text))

    out = capfd.readouterr()
    texts.append(("stdout", out.out))
    texts.append(("stderr", out.err))
    for what, text in texts:
        clean(what, text)
    # The secrets did reach the server, where they belong.
    seen = "\n".join(Refuser.seen)
    assert f"Bearer {TOKEN}" in seen
    assert "SAS-SENTINEL-py-77d0" in seen
    assert "SharedKey devstoreaccount1:" in seen
