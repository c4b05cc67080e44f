"""Interop with the official MCP Python SDK client (mcp 2.x) over Streamable HTTP.

`ClientSession.initialize()` performs the legacy-era handshake (initialize at 2025-11-25,
then notifications/initialized); the transport is `streamable_http_client`.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from typing import AsyncIterator

import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from conftest import Gateway, run

pytestmark = pytest.mark.timeout(90)


@asynccontextmanager
async def sdk_session(url: str) -> AsyncIterator[ClientSession]:
    async with streamable_http_client(url) as (read, write):
        async with ClientSession(read, write, read_timeout_seconds=30) as session:
            init = await session.initialize()
            assert init.protocol_version == "2025-11-25"
            yield session


def describe(exc: BaseException) -> str:
    """An exception with the leaves of any exception groups (the SDK raises through task groups)."""
    if isinstance(exc, BaseExceptionGroup):
        return f"{exc!r} <- " + "; ".join(describe(e) for e in exc.exceptions)
    cause = exc.__cause__ or exc.__context__
    return f"{exc!r}" + (f" <- {cause!r}" if cause is not None else "")


def only_text(result) -> str:
    assert len(result.content) == 1, result
    assert result.content[0].type == "text", result
    return result.content[0].text


def test_sdk_initialize_and_list_tools(gw: Gateway) -> None:
    async def go():
        async with streamable_http_client(gw.url) as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=30) as session:
                init = await session.initialize()
                assert init.protocol_version == "2025-11-25"
                assert init.server_info.name
                assert init.capabilities.tools is not None
                tools = await session.list_tools()
                names = {t.name for t in tools.tools}
                for expected in ("diag__echo", "example__add", "time__get_current_time"):
                    assert expected in names, f"{expected} not in {sorted(names)}"
                await session.send_ping()

    run(go())


def test_sdk_calls_each_backend(gw: Gateway) -> None:
    async def go():
        async with sdk_session(gw.url) as s:
            r = await s.call_tool("diag__echo", {"text": "sdk says hi"})
            assert not r.is_error
            assert only_text(r) == "sdk says hi"

            r = await s.call_tool("example__echo", {"text": "through stdio"})
            assert only_text(r) == "through stdio"

            r = await s.call_tool("example__add", {"a": 20, "b": 22})
            assert not r.is_error
            assert float(only_text(r)) == 42
            assert r.structured_content == {"sum": 42}

            r = await s.call_tool("time__get_current_time", {"timezone": "UTC"})
            assert not r.is_error, r
            data = json.loads(r.content[0].text)
            assert data["timezone"] == "UTC"

            r = await s.call_tool("time__convert_time",
                                  {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"})
            assert not r.is_error, r
            assert "Asia/Tokyo" in r.content[0].text

            r = await s.call_tool("diag__fail", {"message": "expected failure"})
            assert r.is_error

            with pytest.raises(MCPError) as exc:
                await s.call_tool("diag__ecko", {"text": "typo"})
            assert exc.value.error.code == -32602
            assert "diag__echo" in exc.value.error.message

    run(go())


@pytest.mark.parametrize("tool", ["diag__sleep", "example__sleep"])
def test_sdk_progress_callback(gw: Gateway, tool: str) -> None:
    async def go():
        seen: list[tuple[float, float | None, str | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, total, message))

        async with sdk_session(gw.url) as s:
            r = await s.call_tool(tool, {"ms": 600}, progress_callback=on_progress)
            assert only_text(r) == "slept 600ms"
        assert seen, "progress callback never called"
        values = [p for p, _, _ in seen]
        assert values == sorted(values) and len(set(values)) == len(values), values

    run(go())


@pytest.mark.timeout(180)
def test_sdk_50_concurrent_sessions_no_crossed_results(gw: Gateway) -> None:
    sessions, calls = 50, 20

    async def one_session(i: int) -> list[tuple[str, str, str]]:
        mismatches = []
        async with sdk_session(gw.url) as s:
            async def call(tool: str, j: int) -> None:
                text = f"session-{i}-call-{j}-{tool}"
                r = await s.call_tool(tool, {"text": text})
                got = only_text(r)
                if got != text:
                    mismatches.append((tool, text, got))

            await asyncio.gather(*(call(tool, j) for j in range(calls) for tool in ("example__echo", "diag__echo")))
        return mismatches

    async def go():
        results = await asyncio.gather(*(one_session(i) for i in range(sessions)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert not errors, f"{len(errors)} sessions failed, first: {describe(errors[0])}"
        crossed = [m for r in results for m in r]
        assert not crossed, f"{len(crossed)} results crossed sessions, e.g. {crossed[:3]}"

    run(go())
