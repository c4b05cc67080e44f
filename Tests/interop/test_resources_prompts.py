"""Resources, prompts, completion and the gateway's own pagination, through the gateway with the official
Python SDK client (issue 4, items 1-3).

The backends are Tests/interop/backends/resources_server.py (the SDK's low-level `Server` over stdio): static
resources listed over several pages of the server's own, a template `test://template/{id}/data`, subscriptions
with `notifications/resources/updated`, prompts with arguments and completion. `tools.page_size: 2` makes every
merged list longer than a page, so the client must follow the gateway's cursors.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import mcp_types as types
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from conftest import (
    BACKEND_DIAG, GATEWAY, PYTHON, GatewayPool, descendants, gateway_env, is_descendant, make_config, run, to_yaml,
    wait_pid_gone,
)

pytestmark = [
    pytest.mark.timeout(120),
    # resources/subscribe and unsubscribe are legacy-era methods, which is the era these tests speak.
    pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed:UserWarning"),
]

SERVER = str(Path(__file__).resolve().parent / "backends" / "resources_server.py")


def resources_backend(tag: str, *extra: str) -> dict[str, Any]:
    return {"type": "stdio", "command": [PYTHON, SERVER, "--tag", tag, *extra], "call_timeout": "20s"}


def config(page_size: int = 2, **backends: dict[str, Any]) -> dict[str, Any]:
    cfg = make_config(backends=backends or {"res": resources_backend("res")})
    cfg["tools"]["page_size"] = page_size
    return cfg


class Notes:
    """Notifications one SDK session received (on its GET stream)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []
        self.changed = asyncio.Event()

    async def __call__(self, message: Any) -> None:
        root = getattr(message, "root", message)
        method = getattr(root, "method", None)
        if method is None:
            return
        params = getattr(root, "params", None)
        dumped = params.model_dump(mode="json", by_alias=True, exclude_none=True) if params is not None else {}
        self.items.append((method, dumped))
        self.changed.set()

    def of(self, method: str) -> list[dict[str, Any]]:
        return [params for m, params in self.items if m == method]

    async def wait_for(self, method: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.of(method):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"no {method} within {timeout}s; got {self.items}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass
        return self.of(method)


@asynccontextmanager
async def sdk_session(url: str, notes: Notes | None = None) -> AsyncIterator[ClientSession]:
    async with streamable_http_client(url) as (read, write):
        async with ClientSession(read, write, read_timeout_seconds=30, message_handler=notes) as session:
            init = await session.initialize()
            assert init.protocol_version == "2025-11-25"
            yield session


async def all_pages(fetch, key: str) -> tuple[list[Any], int]:
    """Every item of a paginated list and the number of pages it took."""
    items: list[Any] = []
    cursor: str | None = None
    pages = 0
    while True:
        result = await fetch(types.PaginatedRequestParams(cursor=cursor) if cursor else None)
        pages += 1
        items += getattr(result, key)
        cursor = result.next_cursor
        if not cursor:
            return items, pages
        assert pages < 50, "the cursor chain does not end"


def text_of(contents: Any) -> str:
    return contents.text


def test_capabilities_declare_resources_prompts_completions(gateways: GatewayPool) -> None:
    gw = gateways.start(config())

    async def go():
        async with streamable_http_client(gw.url) as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=30) as session:
                init = await session.initialize()
                caps = init.capabilities
                assert caps.resources is not None and caps.resources.subscribe and caps.resources.list_changed
                assert caps.prompts is not None and caps.prompts.list_changed
                assert caps.completions is not None
                assert caps.tools is not None

    run(go())


def test_capabilities_absent_without_backends_offering_them(gateways: GatewayPool) -> None:
    """A plugin backend offers tools only: no resources, prompts or completions are declared, and their
    methods are -32601 (MUST item 3)."""
    gw = gateways.start(make_config(backends={"diag": BACKEND_DIAG}))

    async def go():
        async with streamable_http_client(gw.url) as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=30) as session:
                init = await session.initialize()
                assert init.capabilities.resources is None
                assert init.capabilities.prompts is None
                assert init.capabilities.completions is None
                with pytest.raises(MCPError) as exc:
                    await session.list_resources()
                assert exc.value.error.code == -32601

    run(go())


def test_resources_list_follows_backend_cursors_and_pages_with_gateway_cursors(gateways: GatewayPool) -> None:
    gw = gateways.start(config())

    async def go():
        async with sdk_session(gw.url) as s:
            first = await s.list_resources()
            assert len(first.resources) == 2 and first.next_cursor, first
            resources, pages = await all_pages(lambda p: s.list_resources(params=p), "resources")
            uris = [str(r.uri) for r in resources]
            # The backend lists 6 resources over 3 pages of its own; the gateway read them all and pages them by 2.
            assert uris == [f"test://static/{n}" for n in range(1, 6)] + ["test://watched"]
            assert pages == 3
            templates, _ = await all_pages(lambda p: s.list_resource_templates(params=p), "resource_templates")
            assert [t.uri_template for t in templates] == ["test://template/{id}/data"]

    run(go())


def test_tampered_and_foreign_cursors_are_invalid_params(gateways: GatewayPool) -> None:
    gw = gateways.start(config())

    async def go():
        async with sdk_session(gw.url) as s:
            first = await s.list_resources()
            cursor = first.next_cursor
            assert cursor
            payload, _, tag = cursor.partition(".")
            tampered = [
                cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB"),   # the tag changed
                payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + tag,  # the payload changed
                "not-a-cursor",
            ]
            for bad in tampered:
                with pytest.raises(MCPError) as exc:
                    await s.list_resources(params=types.PaginatedRequestParams(cursor=bad))
                assert exc.value.error.code == -32602, (bad, exc.value.error)
            # A resources cursor is not a prompts cursor.
            with pytest.raises(MCPError) as exc:
                await s.list_prompts(params=types.PaginatedRequestParams(cursor=cursor))
            assert exc.value.error.code == -32602
            # tools/list pages too (3 tools, 2 a page) and refuses a tampered cursor.
            tools, pages = await all_pages(lambda p: s.list_tools(params=p), "tools")
            assert sorted(t.name for t in tools) == ["res__add_prompt", "res__add_resource", "res__touch"]
            assert pages == 2
            with pytest.raises(MCPError) as exc:
                await s.list_tools(params=types.PaginatedRequestParams(cursor="x" + cursor))
            assert exc.value.error.code == -32602

    run(go())


def test_stale_cursor_after_the_list_changed_is_invalid_params(gateways: GatewayPool) -> None:
    gw = gateways.start(config())

    async def go():
        notes = Notes()
        async with sdk_session(gw.url, notes) as s:
            first = await s.list_resources()
            assert first.next_cursor
            r = await s.call_tool("res__add_resource", {"name": "late"})
            assert not r.is_error
            await notes.wait_for("notifications/resources/list_changed")
            with pytest.raises(MCPError) as exc:
                await s.list_resources(params=types.PaginatedRequestParams(cursor=first.next_cursor))
            assert exc.value.error.code == -32602
            assert "changed" in exc.value.error.message
            resources, _ = await all_pages(lambda p: s.list_resources(params=p), "resources")
            assert "test://added/late" in [str(r.uri) for r in resources]

    run(go())


def test_read_static_template_and_unknown(gateways: GatewayPool) -> None:
    gw = gateways.start(config())

    async def go():
        async with sdk_session(gw.url) as s:
            r = await s.read_resource("test://static/3")
            assert text_of(r.contents[0]) == "res: contents of test://static/3"
            r = await s.read_resource("test://template/42/data")
            assert text_of(r.contents[0]) == "res: template data for 42"
            with pytest.raises(MCPError) as exc:
                await s.read_resource("test://nowhere/1")
            assert exc.value.error.code == -32002
            assert "test://nowhere/1" in exc.value.error.message
            # A template variable never spans a "/" (RFC 6570 level 1 percent-encodes it).
            with pytest.raises(MCPError) as exc:
                await s.read_resource("test://template/a/b/data")
            assert exc.value.error.code == -32002

    run(go())


def test_updated_reaches_only_the_subscribed_session(gateways: GatewayPool) -> None:
    gw = gateways.start(config())

    async def go():
        subscribed_notes, other_notes = Notes(), Notes()
        async with sdk_session(gw.url, subscribed_notes) as subscriber, sdk_session(gw.url, other_notes) as other:
            await subscriber.subscribe_resource("test://watched")
            # The other session subscribes to something else, so it has a live stream and a subscription.
            await other.subscribe_resource("test://static/1")
            await asyncio.sleep(0.3)  # both GET streams open
            r = await other.call_tool("res__touch", {"uri": "test://watched"})
            assert r.content[0].text == "updated test://watched"
            updates = await subscribed_notes.wait_for("notifications/resources/updated")
            assert updates == [{"uri": "test://watched"}]
            await asyncio.sleep(0.5)
            assert other_notes.of("notifications/resources/updated") == []

            # Unsubscribed: the next update goes nowhere (the backend no longer has a subscriber either).
            await subscriber.unsubscribe_resource("test://watched")
            r = await other.call_tool("res__touch", {"uri": "test://watched"})
            assert r.content[0].text == "test://watched has no subscriber"

            # Two subscribers: one leaving keeps the backend's subscription for the other.
            await subscriber.subscribe_resource("test://static/1")
            await subscriber.unsubscribe_resource("test://static/1")
            r = await subscriber.call_tool("res__touch", {"uri": "test://static/1"})
            assert r.content[0].text == "updated test://static/1"
            await other_notes.wait_for("notifications/resources/updated")
            assert other_notes.of("notifications/resources/updated") == [{"uri": "test://static/1"}]
            await asyncio.sleep(0.3)
            assert subscribed_notes.of("notifications/resources/updated") == [{"uri": "test://watched"}]

    run(go())


def test_prompts_list_get_and_list_changed(gateways: GatewayPool) -> None:
    gw = gateways.start(config())

    async def go():
        notes = Notes()
        async with sdk_session(gw.url, notes) as s:
            prompts, pages = await all_pages(lambda p: s.list_prompts(params=p), "prompts")
            assert [p.name for p in prompts] == ["res__simple", "res__greet"]
            assert pages == 1
            greet = prompts[1]
            assert [(a.name, a.required) for a in greet.arguments] == [("name", True), ("style", False)]
            r = await s.get_prompt("res__greet", {"name": "Ada", "style": "formal"})
            assert r.messages[0].content.text == "res: Hello Ada, in a formal way"
            with pytest.raises(MCPError) as exc:
                await s.get_prompt("res__greeet", {"name": "Ada"})
            assert exc.value.error.code == -32602
            assert "res__greet" in exc.value.error.message
            await s.call_tool("res__add_prompt", {"name": "later"})
            await notes.wait_for("notifications/prompts/list_changed")
            prompts, pages = await all_pages(lambda p: s.list_prompts(params=p), "prompts")
            assert [p.name for p in prompts] == ["res__simple", "res__greet", "res__later"]
            assert pages == 2

    run(go())


def test_completion_routed_by_prompt_and_template(gateways: GatewayPool) -> None:
    gw = gateways.start(config())

    async def go():
        async with sdk_session(gw.url) as s:
            r = await s.complete(types.PromptReference(type="ref/prompt", name="res__greet"), {"name": "style", "value": "f"})
            assert r.completion.values == ["formal", "friendly", "funny"]
            r = await s.complete(
                types.ResourceTemplateReference(type="ref/resource", uri="test://template/{id}/data"), {"name": "id", "value": "b"}
            )
            assert r.completion.values == ["beta"]
            with pytest.raises(MCPError) as exc:
                await s.complete(types.PromptReference(type="ref/prompt", name="greet"), {"name": "style", "value": ""})
            assert exc.value.error.code == -32602

    run(go())


def test_two_backends_namespaced_prompts_and_duplicate_uri_by_backend_order(gateways: GatewayPool) -> None:
    gw = gateways.start(config(page_size=100, first=resources_backend("one"), second=resources_backend("two")))

    async def go():
        async with sdk_session(gw.url) as s:
            prompts = (await s.list_prompts()).prompts
            assert sorted(p.name for p in prompts) == ["first__greet", "first__simple", "second__greet", "second__simple"]
            r = await s.get_prompt("second__simple")
            assert r.messages[0].content.text == "two: the simple prompt"
            # Both list test://static/1: the first backend in order serves it, and it is listed once.
            resources = (await s.list_resources()).resources
            assert [str(r.uri) for r in resources].count("test://static/1") == 1
            r = await s.read_resource("test://static/1")
            assert r.contents[0].text == "one: contents of test://static/1"

    run(go())
    assert gw.wait_log(lambda rec: rec.get("msg") == "catalog problem" and "test://static/1" in rec.get("error", ""), timeout=5), gw.stderr_tail()


def test_check_probe_prints_a_uri_two_backends_serve(tmp_path: Path) -> None:
    cfg = config(page_size=100, first=resources_backend("one"), second=resources_backend("two"))
    path = tmp_path / "gw.yaml"
    path.write_text(to_yaml(cfg) + "\n")
    done = subprocess.run([str(GATEWAY), "check", "--config", str(path), "--probe"], capture_output=True, text=True, env=gateway_env(), timeout=60)
    lines = [line for line in done.stdout.splitlines() if "test://static/1" in line]
    assert lines, done.stdout + done.stderr
    assert "backends.second: error:" in lines[0] and "'first'" in lines[0], lines
    assert done.returncode == 2, done.stdout


def test_remote_http_backend_resources_prompts_and_updates(gateways: GatewayPool, tmp_path: Path) -> None:
    """The same server over Streamable HTTP as a `type: http` backend: its lists are read at the handshake,
    and its `notifications/resources/updated` (sent on its GET stream) reaches the subscribed session only."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = open(tmp_path / "remote.out", "wb")
    server = subprocess.Popen([PYTHON, SERVER, "--tag", "remote", "--http-port", str(port)], stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, (tmp_path / "remote.out").read_text()
                time.sleep(0.05)
        gw = gateways.start(config(remote={"type": "http", "url": f"http://127.0.0.1:{port}/mcp", "call_timeout": "20s"}))

        async def go():
            subscribed_notes, other_notes = Notes(), Notes()
            async with sdk_session(gw.url, subscribed_notes) as s, sdk_session(gw.url, other_notes) as other:
                resources, pages = await all_pages(lambda p: s.list_resources(params=p), "resources")
                assert [str(r.uri) for r in resources] == [f"test://static/{n}" for n in range(1, 6)] + ["test://watched"]
                r = await s.read_resource("test://template/7/data")
                assert r.contents[0].text == "remote: template data for 7"
                r = await s.get_prompt("remote__greet", {"name": "Lin"})
                assert r.messages[0].content.text == "remote: Hello Lin, in a plain way"
                c = await s.complete(types.PromptReference(type="ref/prompt", name="remote__greet"), {"name": "style", "value": "fu"})
                assert c.completion.values == ["funny"]
                await s.subscribe_resource("test://watched")
                await asyncio.sleep(0.3)
                r = await other.call_tool("remote__touch", {"uri": "test://watched"})
                assert r.content[0].text == "updated test://watched"
                assert await subscribed_notes.wait_for("notifications/resources/updated") == [{"uri": "test://watched"}]
                await asyncio.sleep(0.3)
                assert other_notes.of("notifications/resources/updated") == []

        run(go())
    finally:
        server.terminate()
        server.wait(10)
        out.close()


def test_session_isolated_backend_updates_reach_only_their_session(gateways: GatewayPool) -> None:
    """With `isolation: session` each session has its own server process: both sessions subscribe to the same
    URI at their own process, and an update one process sends reaches its session only."""
    gw = gateways.start(config(iso=dict(resources_backend("iso"), isolation="session", max_sessions=4)))

    async def go():
        notes_a, notes_b = Notes(), Notes()
        async with sdk_session(gw.url, notes_a) as a, sdk_session(gw.url, notes_b) as b:
            await a.subscribe_resource("test://watched")
            await b.subscribe_resource("test://watched")
            await asyncio.sleep(0.3)
            r = await a.call_tool("iso__touch", {"uri": "test://watched"})
            assert r.content[0].text == "updated test://watched"
            assert await notes_a.wait_for("notifications/resources/updated") == [{"uri": "test://watched"}]
            await asyncio.sleep(0.5)
            assert notes_b.of("notifications/resources/updated") == []
            r = await b.call_tool("iso__touch", {"uri": "test://watched"})
            assert await notes_b.wait_for("notifications/resources/updated") == [{"uri": "test://watched"}]
            await asyncio.sleep(0.3)
            assert len(notes_a.of("notifications/resources/updated")) == 1

    run(go())


def backend_pids(gw_pid: int) -> list[int]:
    """Live resources_server.py processes the gateway started."""
    found = []
    for pid, _ in descendants(gw_pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"resources_server.py" in f.read():
                    found.append(pid)
        except OSError:
            continue
    return found


def test_subscriptions_are_renewed_after_the_backend_restarts(gateways: GatewayPool) -> None:
    gw = gateways.start(config())

    async def go():
        notes = Notes()
        async with sdk_session(gw.url, notes) as s:
            await s.subscribe_resource("test://watched")
            (old,) = backend_pids(gw.pid)
            assert is_descendant(old, gw.pid)
            os.kill(old, signal.SIGKILL)
            assert await asyncio.to_thread(wait_pid_gone, old, 10.0)
            # The supervisor restarts it; the gateway subscribes again on the session's behalf.
            deadline = asyncio.get_running_loop().time() + 20
            while True:
                try:
                    r = await s.call_tool("res__touch", {"uri": "test://watched"})
                except MCPError:
                    r = None
                if r is not None and not r.is_error and r.content[0].text == "updated test://watched":
                    break
                assert asyncio.get_running_loop().time() < deadline, r
                await asyncio.sleep(0.2)
            assert backend_pids(gw.pid) != [old]
            assert (await notes.wait_for("notifications/resources/updated")) == [{"uri": "test://watched"}]

    run(go())
    assert gw.wait_log(lambda rec: rec.get("msg") == "renewing resource subscriptions at a restarted backend", timeout=5), gw.stderr_tail()


def test_stdio_mode_serves_resources_prompts_and_updates(tmp_path: Path) -> None:
    """`mcp-gateway stdio`: the same routing for a desktop client on stdin/stdout, updates on the pipe."""
    path = tmp_path / "gw.yaml"
    path.write_text(to_yaml(config()) + "\n")
    params = StdioServerParameters(command=str(GATEWAY), args=["stdio", "--config", str(path)], env=gateway_env())

    async def go():
        notes = Notes()
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=30, message_handler=notes) as s:
                init = await s.initialize()
                assert init.capabilities.resources is not None and init.capabilities.resources.subscribe
                resources, pages = await all_pages(lambda p: s.list_resources(params=p), "resources")
                assert len(resources) == 6 and pages == 3
                r = await s.get_prompt("res__greet", {"name": "Kay", "style": "funny"})
                assert r.messages[0].content.text == "res: Hello Kay, in a funny way"
                await s.subscribe_resource("test://static/2")
                r = await s.call_tool("res__touch", {"uri": "test://static/2"})
                assert r.content[0].text == "updated test://static/2"
                assert await notes.wait_for("notifications/resources/updated") == [{"uri": "test://static/2"}]

    run(go())
