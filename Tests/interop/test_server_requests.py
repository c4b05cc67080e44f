"""Server-to-client requests and logging through the gateway (issue 4, items 5 and 2), with the official
Python SDK on both sides: the client is `streamable_http_client` + `ClientSession` with sampling,
elicitation, roots and logging callbacks; the backend is backends/client_requests_server.py, a stdio
server on the SDK's `MCPServer` whose tools ask the client and report what came back.

A backend's `sampling/createMessage`, `elicitation/create` and `roots/list` reach the client of the call that
caused them, under a gateway id; the client's answer goes back to the backend under the backend's id; a
client that did not declare a capability is never asked, and the backend gets an error instead.
`logging/setLevel` is kept per session and filters the backend's `notifications/message`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import pytest
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from httpx_sse import EventSource

from conftest import (
    GATEWAY,
    LATEST,
    Gateway,
    GatewayPool,
    default_headers,
    gateway_env,
    http_client,
    initialize,
    make_config,
    post_raw,
    run,
    to_yaml,
)

pytestmark = [pytest.mark.timeout(120), pytest.mark.filterwarnings("ignore:The logging capability is deprecated")]

BACKEND = Path(__file__).parent / "backends" / "client_requests_server.py"


def config(isolation: str = "shared") -> dict[str, Any]:
    backend = {"type": "stdio", "command": [sys.executable, str(BACKEND)], "isolation": isolation}
    if isolation == "session":
        backend["max_sessions"] = 4
    return make_config(backends={"asker": backend})


@pytest.fixture(scope="module")
def shared_gw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    pool = GatewayPool(tmp_path_factory.mktemp("server-requests"))
    gateway = pool.start(config(), name="shared")
    yield gateway
    pool.stop_all()
    assert gateway.died is None, gateway.stderr_tail()


@asynccontextmanager
async def client(url: str, **callbacks: Any) -> AsyncIterator[ClientSession]:
    async with streamable_http_client(url) as (read, write):
        async with ClientSession(read, write, read_timeout_seconds=30, **callbacks) as session:
            await session.initialize()
            yield session


def only_text(result: types.CallToolResult) -> str:
    assert not result.is_error, result
    assert len(result.content) == 1 and result.content[0].type == "text", result
    return result.content[0].text


async def answer_with_model(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    prompt = params.messages[0].content
    assert isinstance(prompt, types.TextContent)
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text=f"model says {prompt.text.upper()}"), model="test-model"
    )


def test_sampling_answered_by_the_clients_callback(shared_gw: Gateway) -> None:
    asked: list[str] = []

    async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        asked.append(params.messages[0].content.text)
        return await answer_with_model(context, params)

    async def go() -> None:
        async with client(shared_gw.url, sampling_callback=sampling) as session:
            result = await session.call_tool("asker__ask_model", {"prompt": "hello"})
            assert only_text(result) == "sampled: model says HELLO"
            # A second request in the same session gets a fresh gateway id and is routed just as well.
            result = await session.call_tool("asker__ask_model", {"prompt": "again"})
            assert only_text(result) == "sampled: model says AGAIN"

    run(go())
    assert asked == ["hello", "again"]


def test_elicitation_answered_by_the_clients_callback(shared_gw: Gateway) -> None:
    questions: list[str] = []

    async def elicitation(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        questions.append(params.message)
        return types.ElicitResult(action="accept", content={"name": "Ada"})

    async def go() -> None:
        async with client(shared_gw.url, elicitation_callback=elicitation) as session:
            result = await session.call_tool("asker__ask_user", {"question": "Who are you?"})
            assert only_text(result) == "elicited: accept Ada"

    run(go())
    assert questions == ["Who are you?"]


def test_roots_listed_by_the_clients_callback(shared_gw: Gateway) -> None:
    async def roots(context: Any) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri="file:///srv/project", name="project")])

    async def go() -> None:
        async with client(shared_gw.url, list_roots_callback=roots) as session:
            result = await session.call_tool("asker__client_roots", {})
            assert only_text(result) == "roots: file:///srv/project"

    run(go())


def test_client_without_sampling_capability_is_never_asked(shared_gw: Gateway) -> None:
    """No sampling callback: the SDK client declares no `sampling` capability, so the gateway answers the
    backend's request with an error itself and the client sees no request at all."""

    async def go() -> None:
        async with client(shared_gw.url, elicitation_callback=None) as session:
            text = only_text(await session.call_tool("asker__ask_model", {"prompt": "hello"}))
            assert text.startswith("error: "), text
            assert "did not declare the 'sampling' capability" in text, text
            # Roots likewise, and the session still serves calls afterwards.
            text = only_text(await session.call_tool("asker__client_roots", {}))
            assert "did not declare the 'roots' capability" in text, text

    run(go())


def test_each_session_gets_its_own_answer_from_a_per_session_backend(gateways: GatewayPool) -> None:
    """`isolation: session`: two clients with different models, concurrently; each backend process asks its
    own session's client."""
    gateway = gateways.start(config("session"))

    def model(name: str):
        async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
            await asyncio.sleep(0.2)  # both calls are in flight at once
            return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text=name), model=name)

        return sampling

    async def one(name: str) -> str:
        async with client(gateway.url, sampling_callback=model(name)) as session:
            return only_text(await session.call_tool("asker__ask_model", {"prompt": "who?"}))

    async def go() -> None:
        first, second = await asyncio.gather(one("model-a"), one("model-b"))
        assert first == "sampled: model-a"
        assert second == "sampled: model-b"

    run(go())


async def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting for log messages"
        await asyncio.sleep(0.05)


def test_logging_level_filters_backend_messages(shared_gw: Gateway) -> None:
    received: list[tuple[str, str]] = []

    async def logged(params: types.LoggingMessageNotificationParams) -> None:
        received.append((params.level, str(params.data)))

    async def go() -> None:
        async with client(shared_gw.url, logging_callback=logged) as session:
            assert session.initialize_result.capabilities.logging is not None
            await session.set_logging_level("error")
            assert only_text(await session.call_tool("asker__chatty", {"tag": "first"})) == "logged"
            await wait_for(lambda: ("error", "first error") in received)

            await session.set_logging_level("debug")
            assert only_text(await session.call_tool("asker__chatty", {"tag": "second"})) == "logged"
            await wait_for(lambda: ("error", "second error") in received)

    run(go())
    first = [entry for entry in received if entry[1].startswith("first")]
    second = [entry for entry in received if entry[1].startswith("second")]
    # Messages of one call arrive in order on its stream, so the second call's error came after every
    # message of the first call that was delivered: at level error, info and debug were not.
    assert first == [("error", "first error")], received
    assert second == [("debug", "second debug"), ("info", "second info"), ("error", "second error")], received


def test_set_level_rejects_an_unknown_level(shared_gw: Gateway) -> None:
    """A level that is not one of RFC 5424's eight is -32602 (server/utilities/logging#error-handling)."""

    async def go() -> None:
        async with http_client() as http:
            session = await initialize(http, shared_gw.url)
            reply = await session.request("logging/setLevel", {"level": "verbose"})
            assert reply.error["code"] == -32602, reply.response
            assert "debug, info, notice, warning, error, critical, alert, emergency" in reply.error["message"]
            assert (await session.request("logging/setLevel", {"level": "warning"})).result == {}

    run(go())


async def raw_session_with_sampling(http: Any, url: str) -> dict[str, str]:
    """A session opened by a raw `initialize` that declares `sampling`; returns its request headers."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": LATEST, "capabilities": {"sampling": {}}, "clientInfo": {"name": "raw", "version": "1"}},
    }
    reply = await post_raw(http, url, body, request_id=1)
    assert reply.status == 200, reply.body
    headers = default_headers(reply.headers["mcp-session-id"], LATEST)
    assert (await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)).status_code == 202
    return headers


async def call_answering_sampling(http: Any, url: str, headers: dict[str, str], answer: str) -> tuple[Any, str]:
    """Calls `ask_model` and answers the sampling request that arrives on the call's own event stream;
    returns the id the request carried and the tool's text."""
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "asker__ask_model", "arguments": {"prompt": "x"}}}
    request_id = None
    async with http.stream("POST", url, json=call, headers=headers) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        async for event in EventSource(response).aiter_sse():
            if not event.data:
                continue
            message = json.loads(event.data)
            if message.get("method") == "sampling/createMessage":
                request_id = message["id"]
                result = {"role": "assistant", "content": {"type": "text", "text": answer}, "model": "raw"}
                posted = await http.post(url, json={"jsonrpc": "2.0", "id": request_id, "result": result}, headers=headers)
                assert posted.status_code == 202
            elif message.get("id") == 7:
                return request_id, message["result"]["content"][0]["text"]
    raise AssertionError("the call's stream ended without its response")


def test_request_travels_on_the_calls_stream_under_a_gateway_id(shared_gw: Gateway) -> None:
    """The sampling request arrives on the POST's own SSE stream (transports#sending-messages-to-the-server),
    under an id the gateway chose per session: two sessions both see id 1, though the one shared backend
    process necessarily used two different ids of its own."""

    async def go() -> None:
        async with http_client() as http:
            first = await raw_session_with_sampling(http, shared_gw.url)
            second = await raw_session_with_sampling(http, shared_gw.url)
            assert await call_answering_sampling(http, shared_gw.url, first, "one") == (1, "sampled: one")
            assert await call_answering_sampling(http, shared_gw.url, second, "two") == (1, "sampled: two")

    run(go())


def test_an_unknown_response_id_is_accepted_and_dropped(shared_gw: Gateway) -> None:
    """A response naming no outstanding request (answered already, or never sent) is acknowledged and does not
    disturb the session."""

    async def go() -> None:
        async with http_client() as http:
            headers = await raw_session_with_sampling(http, shared_gw.url)
            posted = await http.post(shared_gw.url, json={"jsonrpc": "2.0", "id": 999, "result": {}}, headers=headers)
            assert posted.status_code == 202
            assert await call_answering_sampling(http, shared_gw.url, headers, "still") == (1, "sampled: still")

    run(go())


@pytest.fixture
def remote_asker(tmp_path: Path) -> Iterator[str]:
    """backends/client_requests_server.py as a remote Streamable HTTP server; yields its URL."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = open(tmp_path / "remote-asker.out", "wb")
    proc = subprocess.Popen(
        [sys.executable, str(BACKEND), "--http-port", str(port)], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, (tmp_path / "remote-asker.out").read_text()[-2000:]
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert time.monotonic() < deadline, "remote backend not listening"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        out.close()


def test_remote_backend_sampling_and_elicitation_reach_the_client(gateways: GatewayPool, remote_asker: str) -> None:
    """A remote backend (the SDK's own Streamable HTTP server) asks on its POST's event stream; the gateway
    relays to the calling session and POSTs the client's answer back under the server's id."""
    gateway = gateways.start(make_config(backends={"asker": {"type": "http", "url": remote_asker, "call_timeout": "20s"}}))

    async def elicitation(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"name": "Grace"})

    received: list[tuple[str, str]] = []

    async def logged(params: types.LoggingMessageNotificationParams) -> None:
        received.append((params.level, str(params.data)))

    async def go() -> None:
        deadline = time.monotonic() + 20
        async with client(
            gateway.url, sampling_callback=answer_with_model, elicitation_callback=elicitation, logging_callback=logged
        ) as session:
            while "asker__ask_model" not in {tool.name for tool in (await session.list_tools()).tools}:
                assert time.monotonic() < deadline, "the remote backend's tools were never listed"
                await asyncio.sleep(0.2)
            assert only_text(await session.call_tool("asker__ask_model", {"prompt": "remote"})) == "sampled: model says REMOTE"
            assert only_text(await session.call_tool("asker__ask_user", {"question": "Name?"})) == "elicited: accept Grace"
            await session.set_logging_level("info")
            assert only_text(await session.call_tool("asker__chatty", {"tag": "remote"})) == "logged"
            await wait_for(lambda: ("error", "remote error") in received)

    run(go())
    assert received == [("info", "remote info"), ("error", "remote error")]


def test_legacy_sse_transport_relays_sampling(gateways: GatewayPool) -> None:
    """The 2024-11-05 HTTP+SSE transport (`server.legacy_sse`): the request travels on the session's one
    stream and the client's answer arrives as a POST to the messages endpoint."""
    cfg = config()
    cfg["server"]["legacy_sse"] = True
    gateway = gateways.start(cfg)

    async def go() -> None:
        async with sse_client(gateway.base + "/sse") as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=30, sampling_callback=answer_with_model) as session:
                await session.initialize()
                result = await session.call_tool("asker__ask_model", {"prompt": "legacy"})
                assert only_text(result) == "sampled: model says LEGACY"

    run(go())


async def poll_tool(session: ClientSession, name: str, arguments: dict[str, Any], timeout: float = 10.0) -> str:
    """Calls a tool until its text is no longer `pending`; the first call only after the backend's delayed
    request has gone out (0.3 s), so no call of ours is in flight when it does."""
    await asyncio.sleep(1.0)
    deadline = time.monotonic() + timeout
    while True:
        text = only_text(await session.call_tool(name, arguments))
        if text != "pending" or time.monotonic() > deadline:
            return text
        await asyncio.sleep(0.1)


def test_a_request_after_the_call_goes_on_the_get_stream_for_a_per_session_backend(gateways: GatewayPool) -> None:
    """`isolation: session`: a request the backend sends when no call is in flight still belongs to the one
    session its process serves, and travels on that session's GET stream (transports#listening-for-messages-
    from-the-server), which the SDK client keeps open."""
    gateway = gateways.start(config("session"))

    async def go() -> None:
        async with client(gateway.url, sampling_callback=answer_with_model) as session:
            assert only_text(await session.call_tool("asker__ask_later", {"prompt": "later"})) == "scheduled"
            assert await poll_tool(session, "asker__later_answer", {"prompt": "later"}) == "sampled: model says LATER"

    run(go())


def test_a_request_no_call_explains_is_refused_by_a_shared_backend(shared_gw: Gateway) -> None:
    """A shared process serves many sessions and MCP requests from a server name none: with no call in flight
    the gateway cannot know whose client to ask, so the backend gets an error and no client is asked."""
    asked: list[str] = []

    async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        asked.append("asked")
        return await answer_with_model(context, params)

    async def go() -> None:
        async with client(shared_gw.url, sampling_callback=sampling) as session:
            assert only_text(await session.call_tool("asker__ask_later", {"prompt": "orphan"})) == "scheduled"
            text = await poll_tool(session, "asker__later_answer", {"prompt": "orphan"})
            assert text.startswith("error: The gateway cannot tell which client sampling/createMessage is for"), text

    run(go())
    assert asked == []


def test_a_log_no_call_explains_reaches_the_sessions_whose_level_admits_it(shared_gw: Gateway) -> None:
    """Shared backend, no call in flight: the message goes to every session that set a level admitting it,
    on its GET stream; a session with a higher level, or none set, does not get it."""
    received: dict[str, list[str]] = {"info": [], "error": [], "unset": []}

    def collector(name: str):
        async def logged(params: types.LoggingMessageNotificationParams) -> None:
            received[name].append(str(params.data))

        return logged

    async def go() -> None:
        async with (
            client(shared_gw.url, logging_callback=collector("info")) as at_info,
            client(shared_gw.url, logging_callback=collector("error")) as at_error,
            client(shared_gw.url, logging_callback=collector("unset")) as unset,
        ):
            await at_info.set_logging_level("info")
            await at_error.set_logging_level("error")
            # One call, and none in flight when the messages come: no call explains them.
            scheduled = await unset.call_tool("asker__log_later", {"tag": "broadcast", "levels": "warning,critical"})
            assert only_text(scheduled) == "scheduled"
            await wait_for(lambda: len(received["info"]) == 2 and len(received["error"]) == 1)
            await asyncio.sleep(0.3)

    run(go())
    assert sorted(received["info"]) == ["broadcast critical", "broadcast warning"]
    assert received["error"] == ["broadcast critical"]
    assert received["unset"] == []


def test_stdio_mode_relays_sampling_and_logging(tmp_path: Path) -> None:
    """`mcp-gateway stdio`: the same relay over the gateway's own stdin/stdout, driven by the SDK's stdio
    client; the request and the log message travel on the pipe, the client's answer comes back on it."""
    config_path = tmp_path / "stdio.yaml"
    config_path.write_text(to_yaml(config()) + "\n")
    params = StdioServerParameters(command=str(GATEWAY), args=["stdio", "--config", str(config_path)], env=gateway_env())
    received: list[tuple[str, str]] = []

    async def logged(params: types.LoggingMessageNotificationParams) -> None:
        received.append((params.level, str(params.data)))

    async def go() -> None:
        async with stdio_client(params) as (read, write):
            async with ClientSession(
                read, write, read_timeout_seconds=30, sampling_callback=answer_with_model, logging_callback=logged
            ) as session:
                await session.initialize()
                result = await session.call_tool("asker__ask_model", {"prompt": "piped"})
                assert only_text(result) == "sampled: model says PIPED"
                await session.set_logging_level("warning")
                assert only_text(await session.call_tool("asker__chatty", {"tag": "piped"})) == "logged"
                await wait_for(lambda: ("error", "piped error") in received)

    run(go())
    assert received == [("error", "piped error")]


def test_a_request_the_backend_cancels_is_cancelled_at_the_client(shared_gw: Gateway) -> None:
    """The backend gives up on its sampling request (`notifications/cancelled` with its own id): the client is
    told on the same stream under the gateway's id (basic/utilities/cancellation), and an answer sent after
    that is dropped without disturbing the session."""

    async def go() -> None:
        async with http_client() as http:
            headers = await raw_session_with_sampling(http, shared_gw.url)
            call = {
                "jsonrpc": "2.0", "id": 9, "method": "tools/call",
                "params": {"name": "asker__ask_and_give_up", "arguments": {"prompt": "slow", "seconds": 0.5}},
            }
            seen: list[dict[str, Any]] = []
            async with http.stream("POST", shared_gw.url, json=call, headers=headers) as response:
                async for event in EventSource(response).aiter_sse():
                    if event.data:
                        seen.append(json.loads(event.data))
                        if seen[-1].get("id") == 9 and "method" not in seen[-1]:
                            break
            request, cancelled, result = seen
            assert request["method"] == "sampling/createMessage"
            assert cancelled["method"] == "notifications/cancelled"
            assert cancelled["params"]["requestId"] == request["id"]
            assert result["result"]["content"][0]["text"] == "gave up"
            late = {"role": "assistant", "content": {"type": "text", "text": "late"}, "model": "raw"}
            posted = await http.post(shared_gw.url, json={"jsonrpc": "2.0", "id": request["id"], "result": late}, headers=headers)
            assert posted.status_code == 202
            assert await call_answering_sampling(http, shared_gw.url, headers, "after") == (2, "sampled: after")

    run(go())


def test_a_request_with_no_stream_to_carry_it_fails_at_once(gateways: GatewayPool) -> None:
    """`isolation: session`, the call already answered and no GET stream open: the request has nowhere to go,
    and the backend is told so at once (-32001) rather than waiting for a timeout."""
    gateway = gateways.start(config("session"))

    async def go() -> None:
        async with http_client() as http:
            headers = await raw_session_with_sampling(http, gateway.url)

            async def call(name: str) -> str:
                body = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": name, "arguments": {"prompt": "nowhere"}}}
                return (await post_raw(http, gateway.url, body, headers=headers, request_id=5)).text()

            assert await call("asker__ask_later") == "scheduled"
            await asyncio.sleep(1.0)
            deadline = time.monotonic() + 10
            while (text := await call("asker__later_answer")) == "pending":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            assert text.startswith("error: The client cannot be reached: the call that caused sampling/createMessage has already been answered"), text

    run(go())
