"""Hot reload on SIGHUP (issue 7, item 6) against the real binary and real child processes.

A valid file: added backends start, removed ones stop, changed ones are replaced blue-green (the new process
answers before the old one drains; a call in flight on the old one completes), unchanged ones keep their
process, and a live session keeps working and receives `notifications/tools/list_changed` on its GET stream.
A replacement that cannot start is abandoned and the old process keeps serving. (An invalid file: see
test_logging.py and test_chaos.py.)
"""
from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

import httpx

from conftest import (
    BACKEND_DIAG,
    BACKEND_EXAMPLE,
    GatewayPool,
    http_client,
    initialize,
    make_config,
    pid_alive,
    run,
    to_yaml,
    wait_pid_gone,
)


def _config(backends: dict[str, Any]) -> dict[str, Any]:
    cfg = make_config(backends=backends)
    cfg["server"]["shutdown_grace"] = "10s"
    return cfg


def _reload(gw, backends: dict[str, Any], expect: str = "configuration reloaded") -> dict[str, Any]:
    mark = gw.mark()
    gw.config_path.write_text(to_yaml(_config(backends)) + "\n")
    gw.proc.send_signal(signal.SIGHUP)
    line = gw.wait_log(lambda r: r.get("msg", "").startswith(expect), timeout=40, since=mark)
    assert line is not None, gw.stderr_tail()
    return line


def _metric(gw, prefix: str) -> float:
    for line in httpx.get(gw.base + "/metrics", timeout=5).text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{prefix} not exported")


async def _tool_names(session) -> set[str]:
    return {t["name"] for t in (await session.request("tools/list")).result["tools"]}


def test_reload_adds_removes_replaces_and_notifies_live_sessions(gateways: GatewayPool) -> None:
    gw = gateways.start(_config({"diag": dict(BACKEND_DIAG), "example": dict(BACKEND_EXAMPLE)}))

    async def go() -> None:
        async with http_client() as client:
            session = await initialize(client, gw.url)
            assert "tools" in session.init.result["capabilities"] and session.init.result["capabilities"]["tools"].get("listChanged") is True
            old_pid = int((await session.call("example__pid")).text())
            assert {"diag__echo", "example__pid"} <= await _tool_names(session)

            headers = {"Accept": "text/event-stream", "Mcp-Session-Id": session.id, "MCP-Protocol-Version": session.version}
            async with client.stream("GET", gw.url, headers=headers) as stream:
                assert stream.status_code == 200
                lines = stream.aiter_lines()
                # A call in flight on the old example process while it is replaced: it must complete.
                in_flight = asyncio.create_task(session.call("example__sleep", {"ms": 1500}))
                await asyncio.sleep(0.3)
                changed_example = dict(BACKEND_EXAMPLE, call_timeout="4s")  # a process-level change: blue-green
                line = await asyncio.to_thread(
                    _reload, gw, {"example": changed_example, "again": dict(BACKEND_EXAMPLE)}
                )
                assert "added again" in line["backends"] and "removed diag" in line["backends"] and "replaced example" in line["backends"]

                async def next_message() -> dict[str, Any]:
                    while True:
                        text = await lines.__anext__()
                        if text.startswith("data: ") and text[6:]:  # not a 2025-11-25 priming event (empty data)
                            return json.loads(text[6:])

                note = await asyncio.wait_for(next_message(), timeout=10)
                assert note == {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}

                reply = await asyncio.wait_for(in_flight, timeout=10)
                assert reply.result.get("isError") is not True, reply.body

            names = await _tool_names(session)
            assert "again__pid" in names and "example__pid" in names
            assert not any(name.startswith("diag__") for name in names)
            new_pid = int((await session.call("example__pid")).text())
            assert new_pid != old_pid
            assert wait_pid_gone(old_pid, timeout=15), "the replaced process was not stopped"
            removed = await session.call("diag__echo", {"text": "x"})
            assert removed.error["code"] == -32602 and "diag__echo" in removed.error["message"]

    run(go())
    assert _metric(gw, 'mcp_config_reloads_total{outcome="ok"}') == 1


def test_unchanged_backends_keep_their_processes(gateways: GatewayPool) -> None:
    gw = gateways.start(_config({"example": dict(BACKEND_EXAMPLE)}))

    async def pid() -> int:
        async with http_client() as client:
            session = await initialize(client, gw.url)
            return int((await session.call("example__pid")).text())

    before = run(pid())
    line = _reload(gw, {"example": dict(BACKEND_EXAMPLE), "diag": dict(BACKEND_DIAG)})
    assert "unchanged example" in line["backends"] and "added diag" in line["backends"]
    assert run(pid()) == before and pid_alive(before)


def test_a_replacement_that_cannot_start_leaves_the_old_backend_serving(gateways: GatewayPool) -> None:
    gw = gateways.start(_config({"example": dict(BACKEND_EXAMPLE)}))

    async def pid() -> int:
        async with http_client() as client:
            session = await initialize(client, gw.url)
            return int((await session.call("example__pid")).text())

    before = run(pid())
    broken = {"type": "stdio", "command": ["sh", "-c", "exit 3"], "call_timeout": "3s"}
    mark = gw.mark()
    gw.config_path.write_text(to_yaml(_config({"example": broken})) + "\n")
    gw.proc.send_signal(signal.SIGHUP)
    line = gw.wait_log(lambda r: r.get("msg", "").startswith("configuration reloaded in part"), timeout=60, since=mark)
    assert line is not None, gw.stderr_tail()
    assert "example failed" in line["backends"]
    assert run(pid()) == before
    assert _metric(gw, 'mcp_config_reloads_total{outcome="failed"}') == 1
    time.sleep(0.1)
