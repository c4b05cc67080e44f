"""`mcp-gateway healthcheck`: the container image's HEALTHCHECK probe (the image has no curl).

It sends one HTTP/1.0 GET and exits 0 only on a 200; anything else (another status, a refused or silent
connection, a response that is not HTTP) is exit 1 within the timeout. A bad --url or --timeout is a
usage error.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time

import pytest

from conftest import GATEWAY, Gateway, gateway_env, require_binaries

pytestmark = pytest.mark.timeout(60)


def healthcheck(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    require_binaries()
    return subprocess.run(
        [str(GATEWAY), "healthcheck", *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, env=gateway_env(),
    )


def output(p: subprocess.CompletedProcess) -> str:
    return (p.stdout or "") + (p.stderr or "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_healthy_gateway_exits_0(gw: Gateway) -> None:
    p = healthcheck("--url", f"{gw.base}/healthz")
    assert p.returncode == 0, output(p)
    assert "200" in p.stdout


def test_readyz_of_a_serving_gateway_exits_0(gw: Gateway) -> None:
    p = healthcheck("--url", f"{gw.base}/readyz", "--timeout", "2s")
    assert p.returncode == 0, output(p)


def test_a_status_other_than_200_exits_1_naming_it(gw: Gateway) -> None:
    p = healthcheck("--url", f"{gw.base}/no-such-path")
    assert p.returncode == 1, output(p)
    assert "answered 404" in p.stdout, output(p)


def test_refused_connection_exits_1() -> None:
    port = free_port()  # closed again: nothing listens there
    p = healthcheck("--url", f"http://127.0.0.1:{port}/healthz", "--timeout", "2s")
    assert p.returncode == 1, output(p)
    assert "refused" in p.stdout.lower(), output(p)


def test_silent_server_times_out_and_exits_1() -> None:
    """A listener that accepts and never answers (a hung process) must not hang the probe."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                accepted.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        p = healthcheck("--url", f"http://127.0.0.1:{server.getsockname()[1]}/healthz", "--timeout", "700ms")
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        server.close()
    assert p.returncode == 1, output(p)
    assert "timed out" in p.stdout, output(p)
    assert elapsed < 5, f"the probe took {elapsed:.1f}s with --timeout 700ms"
    assert accepted, "the probe never connected"


def test_a_response_that_is_not_http_exits_1() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def answer_garbage() -> None:
        conn, _ = server.accept()
        conn.recv(4096)
        conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
        conn.close()

    thread = threading.Thread(target=answer_garbage, daemon=True)
    thread.start()
    try:
        p = healthcheck("--url", f"http://127.0.0.1:{server.getsockname()[1]}/healthz", "--timeout", "3s")
    finally:
        thread.join(5)
        server.close()
    assert p.returncode == 1, output(p)
    assert "not an HTTP response" in p.stdout, output(p)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--url", "https://127.0.0.1:8443/healthz"), "is not an http://"),
        (("--url", "http://127.0.0.1:notaport/healthz"), "is not an http://"),
        (("--timeout", "soon"), "is not a positive duration"),
        (("--timeout", "0s"), "is not a positive duration"),
    ],
)
def test_bad_arguments_are_usage_errors(args: tuple[str, ...], needle: str) -> None:
    p = healthcheck(*args)
    assert p.returncode == 64, output(p)  # ArgumentParser's EX_USAGE, as for every subcommand
    assert needle in output(p), output(p)
