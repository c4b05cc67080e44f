"""Graceful shutdown on SIGTERM/SIGINT (issue 7 item 5; docs/operations.md, "Drain and restart"), against the
real binary: what the drain refuses and what it lets finish, the SSE `retry:` hint, calls that outlive
`server.shutdown_grace`, the backends stopped in the spec's order, and the second signal.

Covered in test_chaos.py and not repeated here: 20 `diag__sleep` calls of 2 s in flight at SIGTERM all complete
with their results and the process exits 0 within `shutdown_grace`
(test_sigterm_lets_twenty_calls_in_flight_finish). The tests below watch the same drain from the outside:
probes, new sessions, new requests, keep-alive connections, streams and child processes.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import ssl
import subprocess
import time
from typing import Any

import httpx
import pytest
from hpack import Decoder, Encoder
from httpx_sse import EventSource
from hyperframe.frame import DataFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame, SettingsFrame

from conftest import (
    BACKEND_DIAG,
    BACKEND_EXAMPLE,
    Gateway,
    GatewayPool,
    Reply,
    descendants,
    http_client,
    initialize,
    make_config,
    pid_alive,
    post_raw,
    run,
    wait_pid_gone,
)
from test_tls import PKI, https_url, pki, tls_config  # noqa: F401 (pki is a fixture)

pytestmark = pytest.mark.timeout(90)

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "shutdown-tests", "version": "1"}},
}


def example_children(gw: Gateway) -> list[int]:
    """Pids of the gateway's ExampleServer children (the stdio backend `example`)."""
    pids = []
    for pid, _start in descendants(gw.pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"ExampleServer" in f.read():
                    pids.append(pid)
        except FileNotFoundError:
            continue
    return pids


def wait_exit(gw: Gateway, timeout: float) -> tuple[int, float]:
    """The exit code and when it came (monotonic); fails with the log tail if the process is still running."""
    assert gw.proc is not None
    try:
        rc = gw.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"gateway still running {timeout:.0f}s after the signal:\n{gw.stderr_tail()}")
    return rc, time.monotonic()


async def calls_in_flight(client: httpx.AsyncClient, base: str, backend: str = "diag") -> int:
    """`mcp_backend_inflight{backend}` from /metrics: the gateway has these calls, not just the client."""
    r = await client.get(f"{base}/metrics")
    for line in r.text.splitlines():
        if line.startswith("mcp_backend_inflight{") and f'backend="{backend}"' in line:
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


async def wait_in_flight(client: httpx.AsyncClient, gw: Gateway, count: int, timeout: float = 5.0, base: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        seen = await calls_in_flight(client, base or gw.base)
        if seen >= count:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"only {seen} of {count} calls in flight at the gateway after {timeout}s")


def error_of(rep: Reply) -> dict[str, Any] | None:
    if rep.status == 200 and isinstance(rep.response, dict) and isinstance(rep.response.get("error"), dict):
        return rep.response["error"]
    return None


def test_sigterm_drain_refuses_new_work_lets_calls_finish_and_stops_backends(gateways: GatewayPool) -> None:
    """While 4 calls of 3 s drain: /readyz is 503 (and /healthz still 200), a new initialize and a new request of
    an existing session get 503 with Retry-After, a GET stream is refused the same way, and a keep-alive
    connection's next response says `Connection: close`. Then every call completes, the ExampleServer child is
    stopped by the gateway (its "backend process stopped" record comes before the exit) and the exit is 0,
    well within shutdown_grace."""
    gw = gateways.start(make_config(
        backends={"diag": BACKEND_DIAG, "example": BACKEND_EXAMPLE}, server={"shutdown_grace": "10s"},
    ))
    children = example_children(gw)
    assert children, f"no ExampleServer child of the gateway:\n{gw.stderr_tail()}"

    async def go() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with http_client() as calls, http_client() as probe, http_client() as fresh:
            sessions = [await initialize(calls, gw.url) for _ in range(4)]
            spare = await initialize(probe, gw.url)
            ok = await probe.get(f"{gw.base}/healthz")  # a pooled keep-alive connection, open at SIGTERM
            assert ok.status_code == 200 and ok.headers.get("connection", "").lower() != "close"

            async def sleep_call(i: int) -> str:
                rep = await sessions[i].call("diag__sleep", {"ms": 3000}, progress_token=f"p{i}" if i % 2 else None)
                if rep.status == 200 and isinstance(rep.response, dict) and "result" in rep.response:
                    return rep.text()
                return f"HTTP {rep.status}: {rep.response}"

            tasks = [asyncio.create_task(sleep_call(i)) for i in range(4)]
            await wait_in_flight(probe, gw, 4)
            seen["t_term"] = time.monotonic()
            gw.expect_exit = True
            gw.proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)

            keep_alive = await probe.get(f"{gw.base}/healthz")
            seen["healthz"] = (keep_alive.status_code, keep_alive.headers.get("connection"))
            ready = await fresh.get(f"{gw.base}/readyz")
            seen["readyz"] = (ready.status_code, ready.json().get("status"), ready.headers.get("connection"))
            init = await post_raw(fresh, gw.url, INIT, request_id=1)
            seen["initialize"] = (init.status, init.headers.get("retry-after"), init.headers.get("mcp-session-id"), init.response)
            request = await spare.call("diag__echo", {"text": "during the drain"})
            seen["request"] = (request.status, request.headers.get("retry-after"), request.response)
            get_headers = {"Accept": "text/event-stream", "Mcp-Session-Id": spare.id, "MCP-Protocol-Version": spare.version}
            stream = await fresh.get(gw.url, headers=get_headers)
            seen["get"] = (stream.status_code, stream.headers.get("retry-after"))
            seen["results"] = await asyncio.gather(*tasks)
            seen["t_done"] = time.monotonic()
            seen["during_drain"] = gw.proc.poll() is None
        return seen

    seen = run(go())
    rc, t_exit = wait_exit(gw, 15)

    assert seen["during_drain"], "the gateway exited before the calls in flight had their results"
    assert seen["results"] == ["slept 3000ms"] * 4, f"calls in flight at SIGTERM: {seen['results']}\n{gw.stderr_tail(8)}"
    assert seen["healthz"] == (200, "close"), f"keep-alive connection's next response during the drain: {seen['healthz']}"
    assert seen["readyz"] == (503, "draining", "close"), f"/readyz during the drain: {seen['readyz']}"
    status, retry_after, session_id, body = seen["initialize"]
    assert status == 503 and retry_after is not None and int(retry_after) >= 1 and session_id is None, seen["initialize"]
    assert "shutting down" in json.dumps(body), body
    status, retry_after, body = seen["request"]
    assert status == 503 and retry_after is not None and "shutting down" in json.dumps(body), seen["request"]
    assert seen["get"][0] == 503 and seen["get"][1] is not None, f"GET stream during the drain: {seen['get']}"

    assert rc == 0, f"exit code {rc} after SIGTERM:\n{gw.stderr_tail()}"
    # The drain ends when the last call does (about 2.5 s after the signal), not at shutdown_grace (10 s).
    assert t_exit - seen["t_term"] < 6, f"exit {t_exit - seen['t_term']:.1f}s after SIGTERM"
    assert t_exit >= seen["t_done"] - 0.05
    stopped = [r for r in gw.logs() if r.get("msg") == "backend process stopped" and r.get("backend") == "example"]
    assert {int(r["pid"]) for r in stopped} >= set(children), f"ExampleServer children {children} not stopped by the gateway:\n{gw.stderr_tail()}"
    for pid in children:
        assert not pid_alive(pid), f"ExampleServer child {pid} outlived the gateway"
    assert gw.find_log(lambda r: r.get("msg", "").startswith("draining")) is not None


def test_sigint_ends_an_open_get_stream_with_a_retry_hint(gateways: GatewayPool) -> None:
    """SIGINT (as SIGTERM) with a GET event stream open and no call in flight: the stream receives an SSE
    `retry:` field (1000 ms) and then ends cleanly, and the process exits 0 at once."""
    gw = gateways.start(make_config(backends={"diag": BACKEND_DIAG}, server={"shutdown_grace": "10s"}))

    async def go() -> tuple[list[Any], float, float]:
        async with http_client() as c:
            s = await initialize(c, gw.url)
            h = {"Accept": "text/event-stream", "Mcp-Session-Id": s.id, "MCP-Protocol-Version": s.version}
            async with c.stream("GET", gw.url, headers=h) as resp:
                assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
                events: list[Any] = []
                gw.expect_exit = True
                t_signal = time.monotonic()
                gw.proc.send_signal(signal.SIGINT)

                async def read_all() -> None:
                    async for ev in EventSource(resp).aiter_sse():
                        events.append(ev)

                await asyncio.wait_for(read_all(), timeout=5)
                return events, t_signal, time.monotonic()

    events, t_signal, t_end = run(go())
    rc, t_exit = wait_exit(gw, 10)
    hints = [ev.retry for ev in events if ev.retry is not None]
    assert hints == [1000], f"events on the GET stream after SIGINT: {[(e.event, e.data, e.retry) for e in events]}"
    assert t_end - t_signal < 2, f"the stream ended {t_end - t_signal:.1f}s after SIGINT"
    assert rc == 0, f"exit code {rc} after SIGINT:\n{gw.stderr_tail()}"
    assert t_exit - t_signal < 4, f"exit {t_exit - t_signal:.1f}s after SIGINT with nothing in flight"


def test_calls_outliving_shutdown_grace_get_32001_and_the_process_exits(gateways: GatewayPool) -> None:
    """shutdown_grace 2s, calls of 20 s in flight (one answered as JSON, one on an SSE stream with progress):
    at the end of the grace each gets JSON-RPC -32001 saying the gateway is shutting down and naming the
    backend, and the process exits 0 soon after."""
    gw = gateways.start(make_config(
        backends={"diag": BACKEND_DIAG, "example": BACKEND_EXAMPLE}, server={"shutdown_grace": "2s"},
    ))
    children = example_children(gw)

    async def go() -> tuple[list[tuple[Reply, float]], float]:
        async with http_client() as c:
            s = await initialize(c, gw.url)

            async def long_call(progress: bool) -> tuple[Reply, float]:
                rep = await s.call("diag__sleep", {"ms": 20000}, progress_token="slow" if progress else None)
                return rep, time.monotonic()

            tasks = [asyncio.create_task(long_call(False)), asyncio.create_task(long_call(True))]
            await wait_in_flight(c, gw, 2)
            gw.expect_exit = True
            t_term = time.monotonic()
            gw.proc.send_signal(signal.SIGTERM)
            return await asyncio.gather(*tasks), t_term

    replies, t_term = run(go())
    rc, t_exit = wait_exit(gw, 10)
    forms = set()
    for rep, t_answer in replies:
        error = error_of(rep)
        assert error is not None, f"HTTP {rep.status} {rep.content_type}: {rep.response}"
        assert error["code"] == -32001, error
        assert "shutting down" in error["message"] and "'diag'" in error["message"], error["message"]
        assert 1.5 <= t_answer - t_term <= 4.5, f"answered {t_answer - t_term:.1f}s after SIGTERM (shutdown_grace 2s)"
        forms.add(rep.content_type.split(";")[0])
    assert forms == {"application/json", "text/event-stream"}, forms
    assert rc == 0, f"exit code {rc}:\n{gw.stderr_tail()}"
    assert t_exit - t_term <= 2 + 4, f"exit {t_exit - t_term:.1f}s after SIGTERM (shutdown_grace 2s)"
    assert gw.find_log(lambda r: "shutdown_grace elapsed" in r.get("msg", "")) is not None
    for pid in children:
        assert not pid_alive(pid), f"ExampleServer child {pid} outlived the gateway"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_a_second_signal_exits_at_once(gateways: GatewayPool, sig: signal.Signals) -> None:
    """shutdown_grace 30s and calls of 20 s in flight: the first signal starts a drain that would take 20 s; the
    second one ends the process within 2 s, with exit status 128 + the signal's number. The stdio child sees
    its stdin close and exits too."""
    gw = gateways.start(make_config(
        backends={"diag": BACKEND_DIAG, "example": BACKEND_EXAMPLE}, server={"shutdown_grace": "30s"},
    ))
    children = example_children(gw)
    assert children

    async def go() -> tuple[float, int, float]:
        async with http_client() as c:
            s = await initialize(c, gw.url)
            tasks = [asyncio.create_task(s.call("diag__sleep", {"ms": 20000})) for _ in range(3)]
            await wait_in_flight(c, gw, 3)
            gw.expect_exit = True
            gw.proc.send_signal(sig)
            assert await asyncio.to_thread(gw.wait_log, lambda r: r.get("msg", "").startswith("draining"), 5.0), gw.stderr_tail()
            await asyncio.sleep(0.5)
            assert gw.proc.poll() is None, "the first signal alone ended the process with calls in flight"
            t_second = time.monotonic()
            gw.proc.send_signal(sig)
            rc, t_exit = await asyncio.to_thread(wait_exit, gw, 5)
            await asyncio.gather(*tasks, return_exceptions=True)  # the connections died with the process
            return t_second, rc, t_exit

    t_second, rc, t_exit = run(go())
    assert rc == 128 + int(sig), f"exit status {rc} after a second {sig.name}:\n{gw.stderr_tail()}"
    assert t_exit - t_second < 2, f"exit {t_exit - t_second:.1f}s after the second {sig.name}"
    assert gw.find_log(lambda r: "received again" in r.get("msg", "")) is not None, gw.stderr_tail()
    for pid in children:
        assert wait_pid_gone(pid, 5), f"ExampleServer child {pid} still running 5 s after the gateway's forced exit"


class RawHTTP2:
    """One HTTP/2 connection spoken frame by frame (hyperframe + hpack), so the test sees the GOAWAY itself and
    what arrives after it; h2's own state machine treats GOAWAY as the end and would refuse the rest."""

    def __init__(self, port: int, context: ssl.SSLContext):
        context.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock = context.wrap_socket(raw, server_hostname="localhost")
        assert self.sock.selected_alpn_protocol() == "h2"
        self.buffer = b""
        self.encoder, self.decoder = Encoder(), Decoder()
        self.sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + SettingsFrame(0).serialize())

    def post(self, stream_id: int, path: str, headers: dict[str, str], body: bytes) -> None:
        block = self.encoder.encode([(":method", "POST"), (":scheme", "https"), (":authority", "localhost"), (":path", path),
                                     *headers.items(), ("content-length", str(len(body)))])
        self.sock.sendall(HeadersFrame(stream_id, data=block, flags=["END_HEADERS"]).serialize()
                          + DataFrame(stream_id, data=body, flags=["END_STREAM"]).serialize())

    def frames(self, timeout: float) -> list[Frame]:
        """Frames until the server closes the connection (or `timeout`); SETTINGS and PING are acknowledged."""
        out: list[Frame] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while len(self.buffer) >= 9:
                frame, length = Frame.parse_frame_header(memoryview(self.buffer[:9]))
                if len(self.buffer) < 9 + length:
                    break
                frame.parse_body(memoryview(self.buffer[9:9 + length]))
                self.buffer = self.buffer[9 + length:]
                if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
                    self.sock.sendall(SettingsFrame(0, flags=["ACK"]).serialize())
                if isinstance(frame, PingFrame) and "ACK" not in frame.flags:
                    self.sock.sendall(PingFrame(0, opaque_data=frame.opaque_data, flags=["ACK"]).serialize())
                out.append(frame)
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                continue
            except (ConnectionError, ssl.SSLError):
                return out
            if not chunk:
                return out
            self.buffer += chunk
        pytest.fail(f"the HTTP/2 connection was still open {timeout}s later; frames: {[type(f).__name__ for f in out]}")

    def status(self, frame: HeadersFrame) -> str:
        return dict(self.decoder.decode(frame.data)).get(":status", "")


def test_sigterm_sends_goaway_and_lets_the_open_http2_stream_finish(gateways: GatewayPool, pki: PKI) -> None:
    """Over TLS with ALPN h2: SIGTERM with a call in flight on an HTTP/2 stream sends GOAWAY at once (NO_ERROR,
    RFC 9113 §6.8), the stream still gets its 200 and its result, then the connection closes and the process
    exits 0."""
    config = tls_config(pki)
    config["server"]["shutdown_grace"] = "10s"
    gw = gateways.start(config)

    async def open_session() -> tuple[str, str]:
        async with http_client(verify=pki.ssl_context()) as c:
            s = await initialize(c, https_url(gw))
            return s.id, s.version

    session_id, version = run(open_session())
    conn = RawHTTP2(gw.port, pki.ssl_context())
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "diag__sleep", "arguments": {"ms": 2000}}}
    conn.post(1, "/mcp", {"content-type": "application/json", "accept": "application/json, text/event-stream",
                          "mcp-session-id": session_id, "mcp-protocol-version": version}, json.dumps(call).encode())

    async def in_flight() -> None:
        async with http_client(verify=pki.ssl_context()) as c:
            await wait_in_flight(c, gw, 1, base=https_url(gw).removesuffix("/mcp"))

    run(in_flight())
    gw.expect_exit = True
    t_term = time.monotonic()
    gw.proc.send_signal(signal.SIGTERM)
    frames = conn.frames(timeout=10)
    t_closed = time.monotonic()
    rc, _ = wait_exit(gw, 10)

    kinds = [type(f).__name__ for f in frames]
    goaways = [i for i, f in enumerate(frames) if isinstance(f, GoAwayFrame)]
    assert goaways, f"no GOAWAY after SIGTERM; frames: {kinds}"
    assert all(frames[i].error_code == 0 for i in goaways), [frames[i].error_code for i in goaways]
    ends = [i for i, f in enumerate(frames) if f.stream_id == 1 and "END_STREAM" in f.flags]
    assert ends, f"stream 1 never ended; frames: {kinds}"
    assert goaways[0] < ends[0], f"GOAWAY came only after the stream ended (not at the signal): {kinds}"
    assert all(frames[i].last_stream_id >= 1 for i in goaways), "a GOAWAY excluded the stream in flight"
    statuses = [conn.status(f) for f in frames if isinstance(f, HeadersFrame) and f.stream_id == 1]
    body = b"".join(f.data for f in frames if isinstance(f, DataFrame) and f.stream_id == 1)
    assert statuses[:1] == ["200"], statuses
    assert b"slept 2000ms" in body, body[:300]
    assert t_closed - t_term < 5, f"connection closed {t_closed - t_term:.1f}s after SIGTERM"
    assert rc == 0, f"exit code {rc}:\n{gw.stderr_tail()}"
