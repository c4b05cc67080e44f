"""The HTTP+SSE transport of protocol 2024-11-05 (`server.legacy_sse: true`) against the real binary.

`GET /sse` opens an event stream whose first event is `endpoint`, naming the POST URI
`/messages?sessionId=<id>`; each POST there answers 202 and its JSON-RPC response arrives on the stream as
`event: message` (2024-11-05/basic/transports#http-with-sse). The official Python SDK's `sse_client` drives it
end to end; raw HTTP checks the status codes, the binding of the stream to its principal, the middleware chain
(Origin, auth) and the session metrics.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import subprocess
from typing import Any

import httpx
import pytest
from httpx_sse import EventSource
from mcp import ClientSession
from mcp.client.sse import sse_client

from conftest import (
    BACKEND_DIAG,
    BACKEND_EXAMPLE,
    GATEWAY,
    Gateway,
    GatewayPool,
    gateway_env,
    http_client,
    make_config,
    run,
    to_yaml,
)

pytestmark = pytest.mark.timeout(90)

ALICE_KEY = "alice-key-legacy-sse-0123456789"
BOB_KEY = "bob-key-legacy-sse-0123456789"


def sse_config(**server: Any) -> dict[str, Any]:
    cfg = make_config(
        backends={"diag": dict(BACKEND_DIAG), "example": dict(BACKEND_EXAMPLE)},
        server={"legacy_sse": True, **server},
    )
    return cfg


def keyed_config() -> dict[str, Any]:
    cfg = sse_config()
    cfg["auth"] = {
        "mode": "api_key",
        "api_keys": [
            {"id": "alice", "sha256": hashlib.sha256(ALICE_KEY.encode()).hexdigest()},
            {"id": "bob", "sha256": hashlib.sha256(BOB_KEY.encode()).hexdigest()},
        ],
    }
    return cfg


@pytest.fixture(scope="module")
def sse_gw(tmp_path_factory: pytest.TempPathFactory):
    pool = GatewayPool(tmp_path_factory.mktemp("sse"))
    gateway = pool.start(sse_config(), name="sse")
    yield gateway
    for gw, _ in pool.stop_all():
        assert gw.died is None, f"gateway died during the tests; stderr:\n{gw.stderr_tail()}"


def initialize_message(rid: Any = 1, version: str = "2024-11-05") -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": rid,
        "method": "initialize",
        "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "legacy-sse-tests", "version": "1"}},
    }


def metric(gw: Gateway, prefix: str) -> float:
    for line in httpx.get(gw.base + "/metrics", timeout=5).text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


class LegacyStream:
    """A raw `GET /sse` stream: every SSE event in order (comments are skipped by the parser), plus POSTs to
    the URI its endpoint event named."""

    def __init__(self, client: httpx.AsyncClient, base: str, headers: dict[str, str] | None = None):
        self.client = client
        self.base = base
        self.headers = dict(headers or {})
        self.events: asyncio.Queue = asyncio.Queue()
        self.endpoint: str | None = None
        self.response: httpx.Response | None = None
        self._context = None
        self._reader: asyncio.Task | None = None

    async def __aenter__(self) -> "LegacyStream":
        headers = {"Accept": "text/event-stream", **self.headers}
        self._context = self.client.stream("GET", self.base + "/sse", headers=headers)
        self.response = await self._context.__aenter__()
        if self.response.status_code == 200:
            self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):
                pass
        await self._context.__aexit__(*exc)

    async def _read(self) -> None:
        try:
            async for event in EventSource(self.response).aiter_sse():
                await self.events.put(event)
        finally:
            await self.events.put(None)  # the stream ended

    async def next_event(self, timeout: float = 10.0):
        return await asyncio.wait_for(self.events.get(), timeout)

    async def read_endpoint(self) -> str:
        first = await self.next_event()
        assert first is not None and first.event == "endpoint", f"the first event must be endpoint, got {first!r}"
        self.endpoint = first.data
        return first.data

    @property
    def session_id(self) -> str:
        assert self.endpoint is not None
        return self.endpoint.split("sessionId=", 1)[1]

    async def post(self, message: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        assert self.endpoint is not None, "read the endpoint event first"
        hdrs = {"Content-Type": "application/json", **self.headers, **(headers or {})}
        return await self.client.post(self.base + self.endpoint, content=json.dumps(message).encode(), headers=hdrs)

    async def messages_until_response(self, rid: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Every `message` event up to and including the response to `rid`."""
        seen: list[dict[str, Any]] = []
        while True:
            event = await self.next_event(timeout)
            assert event is not None, f"the stream ended before the response to {rid}; saw {seen}"
            assert event.event == "message", f"unexpected event {event.event!r}: {event.data!r}"
            message = json.loads(event.data)
            seen.append(message)
            if "method" not in message and message.get("id") == rid:
                return seen

    async def request(self, rid: Any, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            body["params"] = params
        reply = await self.post(body)
        assert reply.status_code == 202, f"{method}: HTTP {reply.status_code} {reply.text}"
        assert reply.content == b"", "the POST carries no body: the response travels on the stream"
        return (await self.messages_until_response(rid))[-1]

    async def initialize(self, version: str = "2024-11-05") -> dict[str, Any]:
        await self.read_endpoint()
        response = await self.request(1, "initialize", initialize_message(1, version)["params"])
        reply = await self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert reply.status_code == 202
        return response


# ---------------------------------------------------------------------------
# The official Python SDK client
# ---------------------------------------------------------------------------


def test_sdk_sse_client_initializes_lists_and_calls_tools(sse_gw: Gateway) -> None:
    async def go() -> None:
        async with sse_client(sse_gw.base + "/sse") as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=30) as session:
                init = await session.initialize()
                # The lifecycle's negotiation is the same on every transport: the client's version echoed.
                assert init.protocol_version == "2025-11-25"
                assert init.capabilities.tools is not None
                names = {tool.name for tool in (await session.list_tools()).tools}
                assert {"diag__echo", "example__add"} <= names, sorted(names)

                echoed = await session.call_tool("diag__echo", {"text": "over the legacy transport"})
                assert not echoed.is_error
                assert echoed.content[0].text == "over the legacy transport"

                added = await session.call_tool("example__add", {"a": 20, "b": 22})
                assert not added.is_error, added
                assert float(added.content[0].text) == 42
                assert added.structured_content == {"sum": 42}

                await session.send_ping()

    run(go())


def test_sdk_sse_client_progress_callback(sse_gw: Gateway) -> None:
    async def go() -> list[float]:
        seen: list[float] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append(progress)

        async with sse_client(sse_gw.base + "/sse") as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=30) as session:
                await session.initialize()
                result = await session.call_tool("diag__sleep", {"ms": 500}, progress_callback=on_progress)
                assert result.content[0].text == "slept 500ms"
        return seen

    seen = run(go())
    assert len(seen) >= 2, f"progress notifications did not reach the callback: {seen}"
    assert seen == sorted(seen) and len(set(seen)) == len(seen), seen


# ---------------------------------------------------------------------------
# Raw HTTP
# ---------------------------------------------------------------------------


def test_endpoint_event_first_then_202_and_the_response_on_the_stream(sse_gw: Gateway) -> None:
    async def go() -> None:
        async with http_client() as client, LegacyStream(client, sse_gw.base) as stream:
            assert stream.response.status_code == 200
            assert stream.response.headers["content-type"].startswith("text/event-stream")
            endpoint = await stream.read_endpoint()
            assert endpoint.startswith("/messages?sessionId="), endpoint
            assert len(stream.session_id) == 32 and int(stream.session_id, 16) >= 0

            reply = await stream.post(initialize_message(7))
            assert reply.status_code == 202 and reply.content == b""
            [response] = await stream.messages_until_response(7)
            assert response["result"]["protocolVersion"] == "2024-11-05"
            assert response["result"]["serverInfo"]["name"]
            assert (await stream.post({"jsonrpc": "2.0", "method": "notifications/initialized"})).status_code == 202

            echoed = await stream.request("e1", "tools/call", {"name": "diag__echo", "arguments": {"text": "raw"}})
            assert echoed["result"]["content"] == [{"type": "text", "text": "raw"}]

            # Progress precedes the response on the same stream.
            accepted = await stream.post({
                "jsonrpc": "2.0", "id": 9, "method": "tools/call",
                "params": {"name": "diag__sleep", "arguments": {"ms": 300}, "_meta": {"progressToken": "tok"}},
            })
            assert accepted.status_code == 202
            messages = await stream.messages_until_response(9)
            progress = [m for m in messages if m.get("method") == "notifications/progress"]
            assert progress and all(m["params"]["progressToken"] == "tok" for m in progress)
            assert messages[-1]["result"]["content"][0]["text"] == "slept 300ms"

            # The session is a gateway session: a second initialize on it is refused, on the stream.
            again = await stream.request(10, "initialize", initialize_message(10)["params"])
            assert again["error"]["code"] == -32600 and "already initialized" in again["error"]["message"]

    run(go())


def test_requests_before_initialize_get_errors_but_ping_is_answered(sse_gw: Gateway) -> None:
    async def go() -> None:
        async with http_client() as client, LegacyStream(client, sse_gw.base) as stream:
            await stream.read_endpoint()
            pong = await stream.request(1, "ping")
            assert pong == {"jsonrpc": "2.0", "id": 1, "result": {}}
            early = await stream.request(2, "tools/list")
            assert early["error"]["code"] == -32600 and "initialize" in early["error"]["message"]
            ready = await stream.request(3, "initialize", initialize_message(3)["params"])
            assert ready["result"]["protocolVersion"] == "2024-11-05"

    run(go())


def test_session_id_missing_unknown_and_malformed_bodies(sse_gw: Gateway) -> None:
    async def go() -> None:
        async with http_client() as client:
            missing = await client.post(sse_gw.base + "/messages", json=initialize_message())
            assert missing.status_code == 400, missing.text
            assert missing.json()["error"]["code"] == -32600 and "sessionId" in missing.json()["error"]["message"]

            unknown = await client.post(sse_gw.base + "/messages?sessionId=0123456789abcdef0123456789abcdef", json=initialize_message())
            assert unknown.status_code == 404, unknown.text
            assert "GET /sse" in unknown.json()["error"]["message"]

            async with LegacyStream(client, sse_gw.base) as stream:
                await stream.initialize()
                batch = await stream.post([{"jsonrpc": "2.0", "id": 5, "method": "tools/list"}])
                assert batch.status_code == 400 and batch.json()["error"]["code"] == -32600
                assert "batches" in batch.json()["error"]["message"]
                garbage = await client.post(sse_gw.base + stream.endpoint, content=b"{not json", headers={"Content-Type": "application/json"})
                assert garbage.status_code == 400 and garbage.json()["error"]["code"] == -32700
                wrong_type = await client.post(sse_gw.base + stream.endpoint, content=b"{}", headers={"Content-Type": "text/plain"})
                assert wrong_type.status_code == 415
                wrong_method = await client.get(sse_gw.base + stream.endpoint)
                assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
                ended_id = stream.endpoint
            # The stream closed, so the session ended: the transport has no DELETE.
            await asyncio.sleep(0.3)
            after = await client.post(sse_gw.base + ended_id, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
            assert after.status_code == 404, after.text

    run(go())


def test_sessions_active_metric_counts_sse_sessions_while_connected(sse_gw: Gateway) -> None:
    label = 'mcp_sessions_active{transport="sse"}'
    before = metric(sse_gw, label)
    total_before = metric(sse_gw, 'mcp_sessions_total{transport="sse"}')

    async def go() -> None:
        async with http_client() as client, LegacyStream(client, sse_gw.base) as stream:
            await stream.initialize()
            assert await asyncio.to_thread(metric, sse_gw, label) == before + 1
            assert await asyncio.to_thread(metric, sse_gw, 'mcp_sessions_total{transport="sse"}') == total_before + 1

    run(go())
    for _ in range(50):
        if metric(sse_gw, label) == before:
            break
        asyncio.run(asyncio.sleep(0.1))
    assert metric(sse_gw, label) == before, "closing the stream must end the session"


def test_origin_check_applies_to_the_legacy_endpoints(sse_gw: Gateway) -> None:
    evil = {"Origin": "http://evil.example"}
    assert httpx.get(sse_gw.base + "/sse", headers=evil, timeout=5).status_code == 403
    assert httpx.post(sse_gw.base + "/messages?sessionId=x", headers=evil, json={}, timeout=5).status_code == 403


def test_disabled_by_default(gateways: GatewayPool) -> None:
    gw = gateways.start(make_config(backends={"diag": dict(BACKEND_DIAG)}))
    assert httpx.get(gw.base + "/sse", headers={"Accept": "text/event-stream"}, timeout=5).status_code == 404
    assert httpx.post(gw.base + "/messages?sessionId=abc", json=initialize_message(), timeout=5).status_code == 404


def test_auth_applies_and_a_stream_is_bound_to_its_principal(gateways: GatewayPool) -> None:
    gw = gateways.start(keyed_config())

    async def go() -> None:
        async with http_client() as client:
            anonymous = await client.get(gw.base + "/sse", headers={"Accept": "text/event-stream"})
            assert anonymous.status_code == 401
            assert anonymous.headers["www-authenticate"].lower().startswith("bearer")

            async with LegacyStream(client, gw.base, headers={"Authorization": f"Bearer {ALICE_KEY}"}) as alice:
                await alice.initialize()
                no_key = await client.post(gw.base + alice.endpoint, json={"jsonrpc": "2.0", "id": 2, "method": "ping"})
                assert no_key.status_code == 401
                # Bob's valid key does not open Alice's session: as if it did not exist.
                as_bob = await client.post(
                    gw.base + alice.endpoint, json={"jsonrpc": "2.0", "id": 3, "method": "tools/list"},
                    headers={"Authorization": f"Bearer {BOB_KEY}"},
                )
                assert as_bob.status_code == 404, as_bob.text
                # Alice's own request still works, and nothing Bob sent reached her stream.
                listed = await alice.request(4, "tools/list")
                assert "diag__echo" in {tool["name"] for tool in listed["result"]["tools"]}

    run(go())
    record = gw.find_log(lambda r: r.get("msg") == "session created" and r.get("principal") == "api-key:alice")
    assert record is not None and record["protocol_version"] == "2024-11-05"


def test_sdk_sse_client_with_an_api_key(gateways: GatewayPool) -> None:
    gw = gateways.start(keyed_config())

    async def go() -> str:
        async with sse_client(gw.base + "/sse", headers={"X-API-Key": BOB_KEY}) as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=30) as session:
                await session.initialize()
                result = await session.call_tool("diag__echo", {"text": "bob via sse"})
                return result.content[0].text

    assert run(go()) == "bob via sse"


def test_public_url_makes_the_endpoint_absolute(gateways: GatewayPool) -> None:
    gw = gateways.start(sse_config(public_url="https://mcp.example.com/"))

    async def go() -> str:
        async with http_client() as client, LegacyStream(client, gw.base) as stream:
            return await stream.read_endpoint()

    endpoint = run(go())
    assert endpoint.startswith("https://mcp.example.com/messages?sessionId="), endpoint


def test_tools_list_changed_arrives_on_the_stream(gateways: GatewayPool) -> None:
    gw = gateways.start(sse_config())

    async def go() -> None:
        async with http_client() as client, LegacyStream(client, gw.base) as stream:
            await stream.initialize()
            # A reload that adds a backend changes the catalog: the session hears of it on its stream.
            cfg = sse_config()
            cfg["backends"]["again"] = dict(BACKEND_DIAG)
            gw.config_path.write_text(to_yaml(cfg) + "\n")
            gw.proc.send_signal(signal.SIGHUP)
            while True:
                event = await stream.next_event(timeout=30)
                assert event is not None, "the stream ended before list_changed"
                if event.event == "message" and json.loads(event.data).get("method") == "notifications/tools/list_changed":
                    break
            listed = await stream.request(20, "tools/list")
            assert "again__echo" in {tool["name"] for tool in listed["result"]["tools"]}

    run(go())


def test_check_refuses_an_endpoint_that_collides_with_the_legacy_paths(tmp_path) -> None:
    cfg = sse_config(endpoint="/sse")
    path = tmp_path / "collide.yaml"
    path.write_text(to_yaml(cfg) + "\n")
    result = subprocess.run([str(GATEWAY), "check", "--config", str(path)], capture_output=True, text=True, env=gateway_env(), timeout=30)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "server.legacy_sse" in result.stdout + result.stderr


def test_drain_answers_calls_in_flight_on_the_stream_then_ends_it(gateways: GatewayPool) -> None:
    """On this transport the stream carries the responses, so a draining gateway keeps it open until the
    session's calls in flight have answered, then ends it with an SSE `retry:` hint; new streams and
    requests meanwhile get 503 with Retry-After."""
    gw = gateways.start(sse_config(shutdown_grace="10s"))

    async def go() -> None:
        async with http_client() as client, LegacyStream(client, gw.base) as stream:
            await stream.initialize()
            accepted = await stream.post({
                "jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "diag__sleep", "arguments": {"ms": 1500}},
            })
            assert accepted.status_code == 202
            await asyncio.sleep(0.3)
            gw.expect_exit = True
            gw.proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            refused = await stream.post({"jsonrpc": "2.0", "id": 3, "method": "tools/list"})
            assert refused.status_code == 503 and "retry-after" in refused.headers
            async with http_client() as other:
                fresh = await other.get(gw.base + "/sse", headers={"Accept": "text/event-stream"})
                assert fresh.status_code == 503
            [response] = await stream.messages_until_response(2)
            assert response["result"]["content"][0]["text"] == "slept 1500ms"
            hint = await stream.next_event()
            assert hint is not None and hint.retry == 1000 and hint.data == "", f"expected a retry: hint, got {hint!r}"
            assert await stream.next_event() is None, "the stream should end once nothing is in flight"

    run(go())
    assert gw.proc.wait(15) == 0


def test_a_stream_never_initialized_is_closed_after_the_idle_timeout(gateways: GatewayPool) -> None:
    cfg = sse_config()
    cfg["sessions"]["idle_timeout"] = "1s"
    gw = gateways.start(cfg)

    async def go() -> None:
        async with http_client() as client, LegacyStream(client, gw.base) as stream:
            await stream.read_endpoint()
            assert await stream.next_event(timeout=5) is None, "a stream with no initialize must not stay open"
            late = await client.post(gw.base + stream.endpoint, json=initialize_message())
            assert late.status_code == 404

    run(go())
