"""Network hardening (issue 5 item 7): Origin checks on every endpoint, CORS, the client IP allowlist with
trusted proxies, and the connection-level limits (header size, request time, idle time, connection count),
including a slow-loris client that must not delay anyone else.

Raw sockets are used where an HTTP client library would hide what is being tested (a trickled request, a
64 KiB header, a connection the server closes)."""

from __future__ import annotations

import asyncio
import select
import socket
import time

import httpx

from conftest import (
    ALLOWED_ORIGIN,
    Gateway,
    GatewayPool,
    default_headers,
    http_client,
    initialize,
    make_config,
    run,
)

EVIL_ORIGIN = "http://evil.example"


# ---------------------------------------------------------------------------
# Raw HTTP/1.1 over a socket
# ---------------------------------------------------------------------------


def connect(gw: Gateway, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response with a Content-Length body: status, lower-cased headers, body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a complete response head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the response body"
        rest += chunk
    return status, headers, rest[:length]


def read_head(sock: socket.socket) -> tuple[int, bytes]:
    """The status of a streamed response, and whatever followed its head."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a complete response head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), rest


def is_closed_by_server(sock: socket.socket, within: float) -> bool:
    """True when the server closes (EOF or reset) within `within` seconds; data read meanwhile is discarded."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            if sock.recv(65536) == b"":
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
    return False


def healthz_request(extra: str = "") -> bytes:
    return f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode()


def assert_healthz_ok(sock: socket.socket) -> None:
    sock.sendall(healthz_request())
    status, _, body = read_response(sock)
    assert status == 200 and b'"ok"' in body, (status, body)


# ---------------------------------------------------------------------------
# Origin and CORS
# ---------------------------------------------------------------------------


def test_origin_is_checked_on_every_endpoint(gw: Gateway) -> None:
    async def go() -> None:
        async with http_client() as c:
            for path in ("/healthz", "/readyz", "/version"):
                r = await c.get(gw.base + path, headers={"Origin": EVIL_ORIGIN})
                assert r.status_code == 403, f"{path} from a foreign origin: HTTP {r.status_code}"
                assert "Origin" in r.json()["error"]["message"]
                ok = await c.get(gw.base + path, headers={"Origin": ALLOWED_ORIGIN})
                assert ok.status_code in (200, 503), f"{path} from the allowed origin: HTTP {ok.status_code}"
                assert ok.headers.get("access-control-allow-origin") == ALLOWED_ORIGIN
            body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
            r = await c.post(gw.url, json=body, headers={**default_headers(), "Origin": EVIL_ORIGIN})
            assert r.status_code == 403, f"MCP endpoint from a foreign origin: HTTP {r.status_code}"
            r = await c.get(gw.url, headers={"Accept": "text/event-stream", "Origin": EVIL_ORIGIN})
            assert r.status_code == 403
            r = await c.delete(gw.url, headers={"Origin": EVIL_ORIGIN})
            assert r.status_code == 403

    run(go())


def test_cors_preflight_from_allowed_origin(gw: Gateway) -> None:
    async def go() -> None:
        async with http_client() as c:
            r = await c.request("OPTIONS", gw.url, headers={
                "Origin": ALLOWED_ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, mcp-session-id, mcp-protocol-version, authorization",
            })
            assert r.status_code == 204, f"preflight: HTTP {r.status_code} {r.text}"
            assert r.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
            assert "origin" in r.headers["vary"].lower()
            methods = {m.strip() for m in r.headers["access-control-allow-methods"].split(",")}
            assert {"GET", "POST", "DELETE"} <= methods
            allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
            assert {"content-type", "accept", "authorization", "mcp-session-id", "mcp-protocol-version", "last-event-id"} <= allowed
            assert int(r.headers["access-control-max-age"]) > 0

    run(go())


def test_cors_preflight_from_disallowed_origin_is_403(gw: Gateway) -> None:
    async def go() -> None:
        async with http_client() as c:
            r = await c.request("OPTIONS", gw.url, headers={"Origin": EVIL_ORIGIN, "Access-Control-Request-Method": "POST"})
            assert r.status_code == 403
            assert "access-control-allow-origin" not in r.headers

    run(go())


def test_initialize_from_allowed_origin_exposes_session_header(gw: Gateway) -> None:
    async def go() -> None:
        async with http_client() as c:
            s = await initialize(c, gw.url, headers={**default_headers(), "Origin": ALLOWED_ORIGIN})
            h = s.init.headers
            assert h["access-control-allow-origin"] == ALLOWED_ORIGIN
            assert "origin" in h["vary"].lower()
            exposed = {x.strip().lower() for x in h["access-control-expose-headers"].split(",")}
            assert {"mcp-session-id", "mcp-protocol-version", "www-authenticate"} <= exposed
            # No Origin (a non-browser client): no CORS headers at all.
            plain = await initialize(c, gw.url)
            assert "access-control-allow-origin" not in plain.init.headers

    run(go())


# ---------------------------------------------------------------------------
# Client IP allowlist and trusted proxies
# ---------------------------------------------------------------------------


def test_ip_allowlist_refuses_and_admits(gateways: GatewayPool) -> None:
    only_ten = gateways.start(make_config(server={"allowed_ips": ["10.0.0.0/8"]}), name="ten")
    loopback = gateways.start(make_config(server={"allowed_ips": ["127.0.0.0/8", "::1/128"]}), name="loopback")

    async def go() -> None:
        async with http_client() as c:
            r = await c.get(only_ten.base + "/healthz")
            assert r.status_code == 403
            message = r.json()["error"]["message"]
            assert "127.0.0.1" in message and "server.allowed_ips" in message
            assert "10.0.0.0" not in message, "the refusal must not reveal the allowlist"
            r = await c.post(only_ten.url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers=default_headers())
            assert r.status_code == 403
            assert (await c.get(loopback.base + "/healthz")).status_code == 200
            await initialize(c, loopback.url)

    run(go())


def test_forwarded_for_counts_only_from_trusted_proxies(gateways: GatewayPool) -> None:
    untrusted = gateways.start(make_config(server={"allowed_ips": ["203.0.113.0/24"]}), name="untrusted")
    trusted = gateways.start(
        make_config(server={"allowed_ips": ["203.0.113.0/24"], "trusted_proxies": ["127.0.0.1/32"]}), name="trusted"
    )

    async def go() -> None:
        async with http_client() as c:
            # From an untrusted peer the header is ignored: the peer (127.0.0.1) is the client.
            r = await c.get(untrusted.base + "/healthz", headers={"X-Forwarded-For": "203.0.113.7"})
            assert r.status_code == 403
            assert "127.0.0.1" in r.json()["error"]["message"]
            # Behind a trusted proxy the right-most untrusted entry is the client.
            r = await c.get(trusted.base + "/healthz", headers={"X-Forwarded-For": "203.0.113.7"})
            assert r.status_code == 200, r.text
            forwarded = {"X-Forwarded-For": "203.0.113.7"}
            s = await initialize(c, trusted.url, headers={**default_headers(), **forwarded}, initialized=False)
            r = await c.post(trusted.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=s.headers(**forwarded))
            assert r.status_code == 202
            rep = await s.request("ping", headers=s.headers(**forwarded))
            assert rep.status == 200 and rep.result == {}
            r = await c.post(trusted.url, json={"jsonrpc": "2.0", "id": 9, "method": "ping"}, headers=s.headers())
            assert r.status_code == 403, "the same session from the proxy without a forwarded client is refused"
            r = await c.get(trusted.base + "/healthz", headers={"X-Forwarded-For": "198.51.100.1"})
            assert r.status_code == 403
            assert "198.51.100.1" in r.json()["error"]["message"]
            # A client cannot smuggle an allowed address in front of its own.
            r = await c.get(trusted.base + "/healthz", headers={"X-Forwarded-For": "203.0.113.7, 198.51.100.1"})
            assert r.status_code == 403
            r = await c.get(trusted.base + "/healthz")
            assert r.status_code == 403, "without the header the trusted proxy itself is the client"

    run(go())


# ---------------------------------------------------------------------------
# Header size, request time, slow loris
# ---------------------------------------------------------------------------


def test_oversized_headers_get_431(gw: Gateway) -> None:
    with connect(gw) as sock:
        sock.sendall(healthz_request(f"X-Padding: {'a' * 64 * 1024}\r\n"))
        status, headers, body = read_response(sock)
        assert status == 431, (status, body[:200])
        assert "max_header_bytes" in body.decode()
        assert headers.get("connection") == "close"
        assert is_closed_by_server(sock, within=5)
    with connect(gw) as sock:
        assert_healthz_ok(sock)


def test_trickled_request_gets_408_and_close(gateways: GatewayPool) -> None:
    gw = gateways.start(make_config(server={"limits": {"max_body": "64KiB", "request_timeout": "2s"}}))
    with connect(gw) as sock:
        started = time.monotonic()
        request = healthz_request("X-Slow: " + "x" * 40 + "\r\n")
        for byte in request[:-1]:  # never complete the head
            sock.sendall(bytes([byte]))
            # Stop trickling as soon as the server answers, so no byte meets a closed socket.
            readable, _, _ = select.select([sock], [], [], 0.25)
            if readable or time.monotonic() - started > 8:
                break
        status, headers, body = read_response(sock)
        assert status == 408, (status, body)
        assert "request_timeout" in body.decode()
        assert headers.get("connection") == "close"
        assert 1.5 < time.monotonic() - started < 8
        assert is_closed_by_server(sock, within=5)


def test_slow_loris_delays_no_one(gateways: GatewayPool) -> None:
    # One event-loop thread: if a trickling connection held it, nothing else could be served at all.
    gw = gateways.start(make_config(server={"threads": 1, "limits": {"max_body": "64KiB", "request_timeout": "60s"}}))

    async def trickle(stop: asyncio.Event, sent: list[int], in_body: bool) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        try:
            if in_body:
                # The head arrives whole; the body never finishes.
                writer.write(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                             b"Accept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n")
                payload = b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "padding": "' + b"z" * 900
            else:
                payload = healthz_request("X-Slow: " + "z" * 200 + "\r\n")[:-1]
            for byte in payload:
                if stop.is_set():
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                sent[0] += 1
                await asyncio.sleep(1.0)
        finally:
            writer.close()

    async def go() -> None:
        stop = asyncio.Event()
        sent = [0]
        lorises = [asyncio.create_task(trickle(stop, sent, in_body=index % 2 == 1)) for index in range(20)]
        await asyncio.sleep(2.0)  # every slow connection has started its request
        async with http_client(limits=httpx.Limits(max_connections=1)) as c:
            for index in range(5):
                t0 = time.monotonic()
                s = await asyncio.wait_for(initialize(c, gw.url), timeout=5)
                rep = await asyncio.wait_for(s.call("diag__echo", {"text": f"prompt-{index}"}), timeout=5)
                assert rep.status == 200 and "prompt-" in rep.text()
                r = await asyncio.wait_for(c.get(gw.base + "/healthz"), timeout=5)
                assert r.status_code == 200
                assert time.monotonic() - t0 < 5
        assert all(not task.done() for task in lorises), "the slow connections must still be trickling"
        assert sent[0] >= 40
        stop.set()
        await asyncio.gather(*lorises, return_exceptions=True)

    run(go())


# ---------------------------------------------------------------------------
# Idle connections and the connection cap
# ---------------------------------------------------------------------------


def test_idle_keepalive_closed_but_open_stream_kept(gateways: GatewayPool) -> None:
    gw = gateways.start(make_config(server={"limits": {"max_body": "64KiB", "idle_timeout": "2s"}}))

    async def open_session() -> tuple[str, str]:
        async with http_client() as c:
            s = await initialize(c, gw.url)
            return s.id, s.version

    sid, version = run(open_session())
    with connect(gw) as idle, connect(gw) as stream:
        assert_healthz_ok(idle)
        stream.sendall(
            (
                f"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                f"Mcp-Session-Id: {sid}\r\nMCP-Protocol-Version: {version}\r\n\r\n"
            ).encode()
        )
        status, _ = read_head(stream)
        assert status == 200
        assert is_closed_by_server(idle, within=6), "an idle keep-alive connection outlived idle_timeout"
        # The stream has outlived idle_timeout and still delivers (its keep-alive comments, every second).
        stream.settimeout(5)
        assert stream.recv(65536) != b"", "the open SSE stream was closed as idle"
        time.sleep(1.0)
        assert stream.recv(65536) != b""


def test_max_connections(gateways: GatewayPool) -> None:
    gw = gateways.start(make_config(server={"limits": {"max_body": "64KiB", "max_connections": 5}}))
    held = [connect(gw) for _ in range(5)]
    try:
        for sock in held:
            assert_healthz_ok(sock)
        extra = connect(gw)
        try:
            try:
                extra.sendall(healthz_request())
            except (BrokenPipeError, ConnectionResetError):
                pass
            assert is_closed_by_server(extra, within=5), "the 6th connection was served"
        finally:
            extra.close()
        held.pop().close()
        deadline = time.monotonic() + 5
        while True:
            with connect(gw) as sock:
                try:
                    assert_healthz_ok(sock)
                    break
                except (AssertionError, ConnectionResetError, BrokenPipeError):
                    # The server may not have seen the close yet.
                    assert time.monotonic() < deadline, "no room for a new connection after closing one"
                    time.sleep(0.1)
        for sock in held:
            assert_healthz_ok(sock)
    finally:
        for sock in held:
            sock.close()
