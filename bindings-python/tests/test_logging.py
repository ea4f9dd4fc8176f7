"""Rust log events reach Python `logging`: logger names under `vmrestore`,
levels mapped, the Rust file and line kept, nothing built below the level,
and a logging handler that calls back into vmrestore neither deadlocks nor
loops."""

import logging
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

import vmrestore

SUB = "33333333-3333-3333-3333-333333333333"


class Unauthorized(BaseHTTPRequestHandler):
    def _refuse(self) -> None:
        body = b'{"error": {"code": "InvalidAuthenticationToken", "message": "no"}}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = _refuse

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Unauthorized)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def refused_catalog(server: str) -> None:
    with pytest.raises(vmrestore.CloudError):
        vmrestore.ArmCloud(SUB, token="t", endpoint=server, poll_interval_ms=10).catalog()


def native(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("vmrestore")]


def test_rust_events_reach_logging_with_names_levels_and_places(server, caplog):
    caplog.set_level(logging.DEBUG, logger="vmrestore")
    refused_catalog(server)
    records = native(caplog)
    host = server.split("//")[1]
    assert any(host in r.getMessage() for r in records), [r.getMessage() for r in records]
    for r in records:
        assert r.name == "vmrestore" or r.name.startswith("vmrestore."), r.name
        assert r.levelno in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR)
        assert r.pathname.endswith(".rs") and r.lineno > 0, (r.pathname, r.lineno)
    # hyper's connection events, DEBUG in Rust, under the crate's name.
    connect = [r for r in records if r.getMessage().startswith("connecting to ")]
    assert connect and all(r.levelno == logging.DEBUG for r in connect)
    assert all(r.name.startswith("vmrestore.hyper_util.") for r in connect)


def test_nothing_below_the_level_of_the_vmrestore_logger(server, caplog):
    caplog.set_level(logging.WARNING, logger="vmrestore")
    refused_catalog(server)
    assert [r for r in native(caplog) if r.levelno < logging.WARNING] == []
    caplog.set_level(logging.DEBUG, logger="vmrestore")
    refused_catalog(server)
    assert [r for r in native(caplog) if r.levelno == logging.DEBUG]


def test_a_handler_calling_back_into_vmrestore_neither_deadlocks_nor_loops(server):
    # In a subprocess: a deadlock would hang it (the timeout fails the test).
    script = textwrap.dedent(
        """
        import logging, sys, threading
        import vmrestore

        endpoint = sys.argv[1]
        calls = []

        class CallsBack(logging.Handler):
            def emit(self, record):
                calls.append(record.getMessage())
                if len(calls) < 50:
                    try:
                        vmrestore.ArmCloud("s", token="t", endpoint=endpoint, poll_interval_ms=10).catalog()
                    except vmrestore.CloudError:
                        pass

        log = logging.getLogger("vmrestore")
        log.addHandler(CallsBack())
        log.setLevel(logging.DEBUG)
        # Calls from several threads while records are forwarded.
        def work():
            for _ in range(3):
                try:
                    vmrestore.ArmCloud("s", token="t", endpoint=endpoint, poll_interval_ms=10).catalog()
                except vmrestore.CloudError:
                    pass
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
        assert calls, "no record forwarded"
        print(len(calls))
        """
    )
    r = subprocess.run([sys.executable, "-c", script, server], capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr[-2000:]
    assert int(r.stdout) > 0
