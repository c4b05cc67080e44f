"""Remote MCP servers as backends (`type: http`; issue 4, item 11).

The remote server is the official Python SDK's own server (Tests/interop/backends/remote_server.py,
mcp 2.x `MCPServer`) run by uvicorn on a free loopback port; the gateway reaches it with its
Streamable HTTP client, and the test drives the gateway with the SDK's client. The server logs every
HTTP request it receives (method, session, headers of interest) so the tests see exactly what the
gateway sent upstream.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import httpx2
import pytest
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from conftest import PYTHON, GatewayPool, gateway_env, make_config, run, GATEWAY, require_binaries

pytestmark = pytest.mark.timeout(120)

SERVER = Path(__file__).resolve().parent / "backends" / "remote_server.py"
BACKEND_TOKEN = "remote-secret-4f1c9a"
CLIENT_TOKEN = "client-secret-77d2e0"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RemoteServer:
    """remote_server.py as a child process on a fixed loopback port (restartable on the same port)."""

    def __init__(self, workdir: Path, *, transport: str = "streamable-http", json_response: bool = False):
        self.port = free_port()
        self.transport = transport
        self.json_response = json_response
        self.log_path = workdir / f"remote-{self.port}.requests.jsonl"
        self.out_path = workdir / f"remote-{self.port}.out"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/" + ("sse" if self.transport == "sse" else "mcp")

    def start(self) -> "RemoteServer":
        args = [PYTHON, str(SERVER), "--port", str(self.port), "--transport", self.transport, "--log", str(self.log_path)]
        if self.json_response:
            args.append("--json-response")
        out = open(self.out_path, "ab")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
        out.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"remote server exited with {self.proc.returncode}: {self.out_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"remote server not listening on {self.port}: {self.out_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def records(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]

    def requests(self) -> list[dict[str, Any]]:
        """The HTTP requests the server received, in order."""
        return [r for r in self.records() if "method" in r]

    def cancellations(self) -> list[dict[str, Any]]:
        """`slow` calls that were cancelled by a notifications/cancelled."""
        return [r for r in self.records() if r.get("event") == "cancelled"]


@pytest.fixture
def remote(tmp_path: Path):
    servers: list[RemoteServer] = []

    def make(**kw: Any) -> RemoteServer:
        server = RemoteServer(tmp_path, **kw).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def remote_backend(server: RemoteServer, **extra: Any) -> dict[str, Any]:
    backend = {"type": "http", "url": server.url, "headers": {"X-Backend-Token": BACKEND_TOKEN}, "call_timeout": "20s"}
    backend.update(extra)
    return backend


def start_gateway(gateways: GatewayPool, server: RemoteServer, **extra: Any):
    cfg = make_config(backends={"remote": remote_backend(server, **extra), "diag": {"type": "plugin", "plugin": "diagnostics"}})
    return gateways.start(cfg)


@asynccontextmanager
async def client(url: str, headers: dict[str, str] | None = None) -> AsyncIterator[ClientSession]:
    http = httpx2.AsyncClient(headers=headers or {}, timeout=httpx2.Timeout(30, read=60))
    async with http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=60) as session:
                await session.initialize()
                yield session


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


def text_of(result) -> str:
    assert not result.is_error, result
    assert len(result.content) == 1 and result.content[0].type == "text", result
    return result.content[0].text


async def wait_for_remote_tools(url: str, timeout: float = 20) -> set[str]:
    deadline = time.monotonic() + timeout
    names: set[str] = set()
    while time.monotonic() < deadline:
        async with client(url) as s:
            names = {t.name for t in (await s.list_tools()).tools}
        if "remote__echo" in names:
            return names
        await asyncio.sleep(0.2)
    raise AssertionError(f"remote tools never listed: {sorted(names)}")


# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sse", "json"])
def test_remote_tools_listed_and_called(gateways: GatewayPool, remote, mode: str) -> None:
    """tools/list shows the remote tools namespaced; calls work whether the server answers POSTs with an SSE
    stream or with a JSON body."""
    server = remote(json_response=(mode == "json"))
    gw = start_gateway(gateways, server)

    async def go():
        names = await wait_for_remote_tools(gw.url)
        assert {"remote__echo", "remote__add", "remote__slow", "remote__whoami", "diag__echo"} <= names, sorted(names)
        async with client(gw.url) as s:
            tools = {t.name: t for t in (await s.list_tools()).tools}
            assert "text" in tools["remote__echo"].input_schema["properties"]
            assert text_of(await s.call_tool("remote__echo", {"text": f"over {mode}"})) == f"over {mode}"
            assert json.loads(text_of(await s.call_tool("remote__add", {"a": 20, "b": 22}))) == {"sum": 42}
            # Concurrent calls over the one shared upstream session come back to their own callers.
            results = await asyncio.gather(*(s.call_tool("remote__echo", {"text": f"n{i}"}) for i in range(20)))
            assert [text_of(r) for r in results] == [f"n{i}" for i in range(20)]

    run(go())
    posts = [r for r in server.requests() if r["method"] == "POST"]
    assert posts, "the remote server saw no POST"
    first, later = posts[0], posts[1:]
    assert first["session"] is None  # initialize carries no session id ...
    sessions = {r["session"] for r in later}
    assert len(sessions) == 1 and None not in sessions, sessions  # ... everything after, the one it was given
    assert {r["protocol_version"] for r in later} == {"2025-11-25"}


def test_remote_progress_reaches_client(gateways: GatewayPool, remote) -> None:
    """Progress the server reports on its SSE answer reaches the client's progress callback while the call
    is in flight, with the client's own token restored."""
    server = remote()
    gw = start_gateway(gateways, server)

    async def go():
        await wait_for_remote_tools(gw.url)
        seen: list[tuple[float, float | None, str | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, total, message))

        async with client(gw.url) as s:
            r = await s.call_tool("remote__slow", {"steps": 4, "ms": 100}, progress_callback=on_progress)
            assert text_of(r) == "slept 4 steps"
        assert [p for p, _, _ in seen] == [1, 2, 3, 4], seen
        assert all(total == 4 for _, total, _ in seen), seen
        assert seen[0][2] == "step 1 of 4"

    run(go())


def test_remote_configured_header_sent_and_client_authorization_never_forwarded(gateways: GatewayPool, remote) -> None:
    """`headers` from the config reach the server on every request; the client's Authorization never does
    (no token passthrough), and the configured secret appears in no gateway log line."""
    server = remote()
    gw = start_gateway(gateways, server)

    async def go():
        await wait_for_remote_tools(gw.url)
        async with client(gw.url, headers={"Authorization": f"Bearer {CLIENT_TOKEN}"}) as s:
            who = json.loads(text_of(await s.call_tool("remote__whoami", {})))
        assert who["backend_token"] == BACKEND_TOKEN
        assert who["authorization_present"] is False
        assert who["user_agent"].startswith("mcp-gateway/")

    run(go())
    seen = server.requests()
    assert seen and all(r["x_backend_token"] == BACKEND_TOKEN for r in seen), seen
    assert not any(r["authorization"] for r in seen), seen
    log_text = "\n".join(gw.raw_log_lines())
    assert BACKEND_TOKEN not in log_text
    assert CLIENT_TOKEN not in log_text


def test_remote_server_down_gives_32001_then_recovers(gateways: GatewayPool, remote) -> None:
    """A server that goes away: calls fail at once with -32001 naming the backend and the server's host;
    when it comes back (a new process, so a new upstream session) the backend reconnects by itself."""
    server = remote()
    gw = start_gateway(gateways, server)

    async def go():
        await wait_for_remote_tools(gw.url)
        async with client(gw.url) as s:
            assert text_of(await s.call_tool("remote__echo", {"text": "before"})) == "before"
        server.stop()
        async with client(gw.url) as s:
            for _ in range(2):
                started = time.monotonic()
                with pytest.raises(MCPError) as failure:
                    await s.call_tool("remote__echo", {"text": "while down"})
                assert time.monotonic() - started < 3, "a call to a server that is down must fail fast"
                assert failure.value.error.code == -32001, failure.value.error
                assert "remote" in failure.value.error.message
                assert f"127.0.0.1:{server.port}" in failure.value.error.message
        ready = await asyncio.to_thread(lambda: httpx2.get(f"{gw.base}/readyz", timeout=5))
        assert ready.json()["backends"] == {"remote": "restarting", "diag": "ready"}, ready.text
        server.start()
        deadline = time.monotonic() + 30
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                async with client(gw.url) as s:
                    assert text_of(await s.call_tool("remote__echo", {"text": "after"})) == "after"
                    return
            except BaseException as exc:  # raised through the SDK's task groups
                errors = [e for e in leaves(exc) if isinstance(e, MCPError)]
                if not errors:
                    raise
                last = errors[0]
                assert last.error.code == -32001, last
            await asyncio.sleep(0.3)
        raise AssertionError(f"the backend did not recover after the server came back: {last!r}")

    run(go())
    assert gw.wait_log(lambda r: r.get("msg") == "remote backend connection failed; retrying" and r.get("host") == f"127.0.0.1:{server.port}", timeout=5)
    assert gw.wait_log(lambda r: r.get("msg") == "remote backend reconnected" and r.get("backend") == "remote", timeout=5)
    ready = httpx2.get(f"{gw.base}/readyz", timeout=5)
    assert ready.json()["backends"]["remote"] == "ready", ready.text
    metrics = httpx2.get(f"{gw.base}/metrics", timeout=5).text
    restarts = re.findall(r'^mcp_backend_restarts_total\{[^}]*backend="remote"[^}]*\}\s+(\S+)$', metrics, re.M)
    assert restarts and float(restarts[0]) == 1, restarts  # one lost connection, however many retries


def test_remote_session_404_reinitializes_and_retries(gateways: GatewayPool, remote) -> None:
    """A server restarted between two calls no longer knows the gateway's session: its 404 makes the
    gateway re-initialize and retry, and the client sees only a successful call."""
    server = remote()
    gw = start_gateway(gateways, server)

    async def go():
        await wait_for_remote_tools(gw.url)
        async with client(gw.url) as s:
            assert text_of(await s.call_tool("remote__echo", {"text": "one"})) == "one"
            server.stop()
            server.start()
            # Ten calls at once all meet the 404; the session is re-initialized once and every call retried.
            results = await asyncio.gather(*(s.call_tool("remote__echo", {"text": f"two-{i}"}) for i in range(10)))
            assert [text_of(r) for r in results] == [f"two-{i}" for i in range(10)]

    run(go())
    initializes = [r for r in server.requests() if r["method"] == "POST" and r["session"] is None]
    assert len(initializes) == 2, server.requests()  # the first connection, and one re-initialization
    assert gw.wait_log(lambda r: r.get("msg") == "remote session expired (HTTP 404); re-initializing it", timeout=5)


def test_remote_per_client_sessions_end_with_delete(gateways: GatewayPool, remote) -> None:
    """`session: per_client`: each gateway session gets its own upstream session, and when the client ends
    its gateway session the upstream one is ended with DELETE. `shared` (the default) uses one for all."""
    server = remote()
    gw = start_gateway(gateways, server, session="per_client")
    shared_server = remote()
    gw_shared = start_gateway(gateways, shared_server)

    async def upstream_ids(url: str) -> tuple[str, str]:
        await wait_for_remote_tools(url)
        async with client(url) as a, client(url) as b:
            first = text_of(await a.call_tool("remote__session_id", {}))
            second = text_of(await b.call_tool("remote__session_id", {}))
            assert text_of(await a.call_tool("remote__session_id", {})) == first  # stable within a session
        return first, second

    async def go():
        first, second = await upstream_ids(gw.url)
        assert first and second and first != second
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            deleted = {r["session"] for r in server.requests() if r["method"] == "DELETE"}
            if {first, second} <= deleted:
                break
            await asyncio.sleep(0.1)
        assert {first, second} <= deleted, server.requests()

        one, two = await upstream_ids(gw_shared.url)
        assert one == two

    run(go())


def test_remote_cancellation_reaches_server(gateways: GatewayPool, remote) -> None:
    """A call the client abandons is cancelled upstream: the server's tool sees the cancellation (the
    gateway POSTs notifications/cancelled with the upstream request id), and the session goes on."""
    server = remote()
    gw = start_gateway(gateways, server)

    async def go():
        await wait_for_remote_tools(gw.url)
        async with client(gw.url) as s:
            call = asyncio.create_task(s.call_tool("remote__slow", {"steps": 100, "ms": 100}))
            await asyncio.sleep(1.0)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not server.cancellations():
                await asyncio.sleep(0.1)
            assert text_of(await s.call_tool("remote__echo", {"text": "still here"})) == "still here"

    run(go())
    cancelled = server.cancellations()
    assert cancelled and cancelled[0]["tool"] == "slow", server.records()
    assert cancelled[0]["at_step"] < 100


def test_remote_list_changed_on_server_stream_refreshes_catalog(gateways: GatewayPool, remote) -> None:
    """The server adds a tool outside any request and says so on its GET stream: the gateway re-lists the
    remote's tools and the new tool is served."""
    server = remote()
    gw = start_gateway(gateways, server)

    async def go():
        await wait_for_remote_tools(gw.url)
        async with client(gw.url) as s:
            assert text_of(await s.call_tool("remote__add_tool_later", {"name": "late_tool", "delay_ms": 300})) == "late_tool will be added"
            deadline = time.monotonic() + 15
            names: set[str] = set()
            while time.monotonic() < deadline:
                names = {t.name for t in (await s.list_tools()).tools}
                if "remote__late_tool" in names:
                    break
                await asyncio.sleep(0.2)
            assert "remote__late_tool" in names, sorted(names)
            assert text_of(await s.call_tool("remote__late_tool", {})) == "I am late_tool"

    run(go())
    assert any(r["method"] == "GET" and r["session"] for r in server.requests()), server.requests()


def test_remote_call_timeout_cancels_upstream(gateways: GatewayPool, remote) -> None:
    """`call_timeout` holds for remote calls too: the client gets -32004 and the server is told to stop."""
    server = remote()
    gw = start_gateway(gateways, server, call_timeout="1s")

    async def go():
        await wait_for_remote_tools(gw.url)
        async with client(gw.url) as s:
            started = time.monotonic()
            with pytest.raises(MCPError) as failure:
                await s.call_tool("remote__slow", {"steps": 100, "ms": 100})
            assert failure.value.error.code == -32004, failure.value.error
            assert time.monotonic() - started < 5
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not server.cancellations():
                await asyncio.sleep(0.1)

    run(go())
    assert server.cancellations(), server.records()


@pytest.mark.parametrize("path", ["sse", "mcp"])
def test_remote_legacy_sse_server_fallback(gateways: GatewayPool, remote, path: str) -> None:
    """A 2024-11-05 server (the SDK's HTTP+SSE transport) answers the initialize POST with 404/405; the
    gateway falls back to GET the event stream (the URL itself, else `<origin>/sse`), reads the endpoint
    event and POSTs there; tools, calls and progress work the same."""
    server = remote(transport="sse")
    backend_url = f"http://127.0.0.1:{server.port}/{path}"
    cfg = make_config(backends={"remote": {"type": "http", "url": backend_url, "headers": {"X-Backend-Token": BACKEND_TOKEN}}})
    gw = gateways.start(cfg)

    async def go():
        await wait_for_remote_tools(gw.url)
        seen: list[float] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append(progress)

        async with client(gw.url) as s:
            assert text_of(await s.call_tool("remote__echo", {"text": "legacy"})) == "legacy"
            r = await s.call_tool("remote__slow", {"steps": 3, "ms": 50}, progress_callback=on_progress)
            assert text_of(r) == "slept 3 steps"
            who = json.loads(text_of(await s.call_tool("remote__whoami", {})))
            assert who["backend_token"] == BACKEND_TOKEN
        assert seen == [1, 2, 3]

    run(go())
    requests = server.requests()
    assert any(r["method"] == "GET" and r["path"] == "/sse" for r in requests), requests
    assert any(r["method"] == "POST" and r["path"].startswith("/messages") for r in requests), requests
    assert gw.wait_log(lambda r: "HTTP+SSE" in str(r.get("msg", "")), timeout=5)


def test_remote_wrong_path_is_reported_with_both_transports(gateways: GatewayPool, remote) -> None:
    """A URL where neither transport answers (a Streamable HTTP server, the wrong path): the backend stays
    not ready, and the log says what the initialize POST got and that the HTTP+SSE fallback failed too."""
    server = remote()
    cfg = make_config(backends={
        "remote": {"type": "http", "url": f"http://127.0.0.1:{server.port}/nope"},
        "diag": {"type": "plugin", "plugin": "diagnostics"},
    })
    gw = gateways.start(cfg)
    record = gw.wait_log(lambda r: r.get("msg") == "remote backend connection failed; retrying", timeout=15)
    assert "HTTP 404" in record["error"] and "HTTP+SSE fallback failed too" in record["error"], record
    ready = httpx2.get(f"{gw.base}/readyz", timeout=5)
    assert ready.json()["backends"]["remote"] == "restarting", ready.text


# ---------------------------------------------------------------------------
# Configuration


def check(tmp_path: Path, backend: dict[str, Any]) -> tuple[int, str]:
    from conftest import to_yaml

    require_binaries()
    f = tmp_path / "remote.yaml"
    f.write_text(to_yaml(make_config(backends={"remote": backend})) + "\n")
    p = subprocess.run([str(GATEWAY), "check", "--config", str(f)], capture_output=True, text=True, timeout=30, env=gateway_env())
    return p.returncode, p.stdout + p.stderr


def test_remote_check_probe_handshakes_and_names_an_unreachable_host(tmp_path: Path, remote) -> None:
    """`check --probe` connects to a remote backend and lists its tools; one that cannot be reached is an
    error naming its host, and the configured header's value is printed nowhere."""
    from conftest import to_yaml

    require_binaries()
    server = remote()
    dead = free_port()
    f = tmp_path / "probe.yaml"
    f.write_text(to_yaml(make_config(backends={
        "remote": remote_backend(server),
        "gone": {"type": "http", "url": f"http://127.0.0.1:{dead}/mcp", "headers": {"X-Backend-Token": BACKEND_TOKEN}},
    })) + "\n")
    p = subprocess.run([str(GATEWAY), "check", "--probe", "--config", str(f)], capture_output=True, text=True, timeout=60, env=gateway_env())
    out = p.stdout + p.stderr
    assert p.returncode == 2, out
    assert "backends.remote: ok: http, 6 tool(s)" in out, out
    assert f"backends.gone: error: did not start: the server at 127.0.0.1:{dead} is unreachable (connection refused)" in out, out
    assert BACKEND_TOKEN not in out


def test_remote_config_accepts_https_and_loopback_http(tmp_path: Path) -> None:
    rc, out = check(tmp_path, {"type": "http", "url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer abc"}, "session": "per_client"})
    assert rc == 0, out
    assert "abc" not in out
    rc, out = check(tmp_path, {"type": "http", "url": "http://localhost:9/mcp"})
    assert rc == 0, out


@pytest.mark.parametrize(
    "backend, path, words",
    [
        ({"type": "http"}, "backends.remote.url", "required"),
        ({"type": "http", "url": "http://mcp.example.com/mcp"}, "backends.remote.url", "https"),
        ({"type": "http", "url": "ftp://127.0.0.1/mcp"}, "backends.remote.url", "http(s) URL"),
        ({"type": "http", "url": "https://x.example/mcp", "session": "per_user"}, "backends.remote.session", "per_client"),
        ({"type": "http", "url": "https://x.example/mcp", "headers": {"Mcp-Session-Id": "x"}}, "backends.remote.headers.Mcp-Session-Id", "set by the gateway"),
        ({"type": "http", "url": "https://x.example/mcp", "headers": {"Bad Name": "topsecretvalue"}}, "backends.remote.headers.Bad Name", "header name"),
        ({"type": "http", "url": "https://x.example/mcp", "command": ["x"]}, "backends.remote.command", "stdio"),
    ],
)
def test_remote_config_problems_name_key_path(tmp_path: Path, backend: dict[str, Any], path: str, words: str) -> None:
    rc, out = check(tmp_path, backend)
    assert rc == 2, out
    assert path in out and words in out, out
    assert "topsecretvalue" not in out
