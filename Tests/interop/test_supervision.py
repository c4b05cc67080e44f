"""Supervision of stdio backends (issue 7, items 4 and 8), against the real binary and real child processes:
health pings that find a frozen child and replace it, the crash-loop breaker, and the readiness quorum.

Related tests elsewhere, not repeated here: a crashed backend failing its calls and restarting
(test_backends.py::test_backend_crash_fails_inflight_and_restarts), restart backoff during a short crash loop
(test_chaos.py::test_crash_loop_fails_fast_backs_off_and_recovers) and a child frozen for less than a health
interval, whose late replies must be dropped (test_chaos.py::test_sigstopped_backend_times_out_and_serves_after_sigcont).

Health settings are short here (pings after 1 s of silence) so each test takes seconds.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import (
    BACKEND_DIAG,
    EXAMPLE_SERVER,
    GatewayPool,
    Reply,
    http_client,
    initialize,
    is_descendant,
    make_config,
    pid_alive,
    run,
    wait_pid_gone,
)

pytestmark = pytest.mark.timeout(60)

FAST_HEALTH = {"interval": "1s", "timeout": "1s"}


def example_backend(**extra: Any) -> dict[str, Any]:
    backend = {"type": "stdio", "command": ["${EXAMPLE_SERVER}"], "call_timeout": "20s"}
    backend.update(extra)
    return backend


def exits_at_start(**health: Any) -> dict[str, Any]:
    """A backend whose process exits with status 3 at every start."""
    return {"type": "stdio", "command": ["sh", "-c", "exit 3"], "health": health}


def example_unless(marker: Path, **health: Any) -> dict[str, Any]:
    """ExampleServer, except that while `marker` exists the process exits with status 3 at start."""
    script = 'if [ -e "$1" ]; then exit 3; fi; exec "$0"'
    return {"type": "stdio", "command": ["sh", "-c", script, str(EXAMPLE_SERVER), str(marker)], "health": health}


def succeeded(rep: Reply) -> bool:
    return rep.status == 200 and isinstance(rep.response, dict) and "result" in rep.response


def restarts_total(base: str, backend: str) -> float:
    """`mcp_backend_restarts_total{backend=...}` from GET /metrics (0 when the series is not there yet)."""
    text = httpx.get(base + "/metrics", timeout=5).text
    pattern = re.compile(r'^mcp_backend_restarts_total\{([^}]*)\}\s+(\S+)$', re.M)
    for labels, value in pattern.findall(text):
        if f'backend="{backend}"' in labels:
            return float(value)
    return 0.0


def readyz(base: str) -> tuple[int, dict[str, Any]]:
    r = httpx.get(base + "/readyz", timeout=5)
    return r.status_code, r.json()


def wait_backend_state(base: str, backend: str, state: str, timeout: float) -> tuple[int, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    status, body = readyz(base)
    while body["backends"].get(backend) != state and time.monotonic() < deadline:
        time.sleep(0.1)
        status, body = readyz(base)
    assert body["backends"].get(backend) == state, f"/readyz never showed {backend}={state} within {timeout}s: {status} {body}"
    return status, body


async def backend_pid(session, tool: str = "example__pid") -> int:
    rep = await session.call(tool, {})
    assert succeeded(rep), f"{tool}: HTTP {rep.status} {rep.response}"
    return int(rep.text())


# ---------------------------------------------------------------------------
# Health pings
# ---------------------------------------------------------------------------


def test_sigstopped_child_is_found_by_a_health_ping_and_replaced(gateways: GatewayPool) -> None:
    """A child frozen with SIGSTOP answers nothing. After `health.interval` of silence it is pinged; the ping
    unanswered after `health.timeout` marks it unhealthy: the call in flight on it fails with -32001 naming the
    backend and the reason, the process is killed, a new one is started, and the restart is counted."""
    gw = gateways.start(make_config(backends={"diag": BACKEND_DIAG, "example": example_backend(health=FAST_HEALTH)}))

    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            frozen = await backend_pid(s)
            assert is_descendant(frozen, gw.pid)
            restarts_before = restarts_total(gw.base, "example")
            mark = gw.mark()
            os.kill(frozen, signal.SIGSTOP)
            try:
                started = time.monotonic()
                rep = await s.call("example__echo", {"text": "into the void"})
                waited = time.monotonic() - started
                # interval (1 s) + timeout (1 s) + slack; far below call_timeout (20 s).
                assert waited < 4.5, f"the frozen child was noticed only after {waited:.1f}s"
                assert rep.status == 200 and rep.error["code"] == -32001, rep.response
                message = rep.error["message"]
                assert "example" in message and "did not answer a health ping within 1s" in message, message
                # Plugins are untouched, and the frozen process goes away (killed, then reaped).
                other = await s.call("diag__echo", {"text": "unaffected"})
                assert succeeded(other) and other.text() == "unaffected"
                assert wait_pid_gone(frozen, timeout=8), "the unresponsive child was not killed"
            finally:
                if pid_alive(frozen) and is_descendant(frozen, gw.pid):
                    os.kill(frozen, signal.SIGKILL)
            # A new process takes over.
            deadline = time.monotonic() + 10
            replacement = None
            while time.monotonic() < deadline:
                rep = await s.call("example__pid", {})
                if succeeded(rep):
                    replacement = int(rep.text())
                    break
                await asyncio.sleep(0.2)
            assert replacement is not None and replacement != frozen, f"no replacement answered: {rep.response}"
            assert is_descendant(replacement, gw.pid)
            rep = await s.call("example__echo", {"text": "after the replacement"})
            assert succeeded(rep) and rep.text() == "after the replacement"
            assert restarts_total(gw.base, "example") >= restarts_before + 1
            record = gw.find_log(lambda r: r.get("msg") == "backend instance unhealthy; killing and replacing it", since=mark)
            assert record is not None, gw.stderr_tail()
            assert record.get("backend") == "example" and int(record["pid"]) == frozen, record
            assert "health ping" in record.get("error", ""), record

    run(go())


def test_an_idle_healthy_child_answers_its_pings_and_is_kept(gateways: GatewayPool) -> None:
    """A ping after every 300 ms of silence, each allowed 1 s: a healthy idle child answers them all and is
    never replaced, however long it idles."""
    health = {"interval": "300ms", "timeout": "1s"}
    config = make_config(backends={"diag": BACKEND_DIAG, "example": example_backend(health=health)})
    config["observability"]["log"]["level"] = "debug"  # each answered ping is a debug record
    gw = gateways.start(config)

    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            pid = await backend_pid(s)
            mark = gw.mark()
            await asyncio.sleep(3.0)  # ten health intervals
            pings = [r for r in gw.logs()[mark:] if r.get("msg") == "health ping answered" and r.get("backend") == "example"]
            assert 4 <= len(pings) <= 12, f"{len(pings)} pings answered in 3 s of silence at a 300 ms interval"
            assert await backend_pid(s) == pid
            assert pid_alive(pid)
            assert gw.find_log(lambda r: r.get("msg") == "backend process unresponsive") is None, gw.stderr_tail()
            assert restarts_total(gw.base, "example") == 0

    run(go())


def test_a_frozen_session_process_is_killed_and_the_next_call_starts_a_new_one(gateways: GatewayPool) -> None:
    """isolation: session. The session's own process frozen with SIGSTOP: its call fails with -32001 giving the
    health-ping reason, the process is killed, and the session's next call is served by a fresh process."""
    isolated = example_backend(isolation="session", max_sessions=3, health=FAST_HEALTH)
    gw = gateways.start(make_config(backends={"diag": BACKEND_DIAG, "isolated": isolated}))

    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            frozen = await backend_pid(s, "isolated__pid")
            assert is_descendant(frozen, gw.pid)
            os.kill(frozen, signal.SIGSTOP)
            try:
                started = time.monotonic()
                rep = await s.call("isolated__echo", {"text": "into the void"})
                assert time.monotonic() - started < 4.5
                assert rep.error["code"] == -32001, rep.response
                assert "isolated" in rep.error["message"] and "did not answer a health ping within 1s" in rep.error["message"], rep.response
                assert wait_pid_gone(frozen, timeout=8), "the unresponsive session process was not killed"
            finally:
                if pid_alive(frozen) and is_descendant(frozen, gw.pid):
                    os.kill(frozen, signal.SIGKILL)
            fresh = await backend_pid(s, "isolated__pid")
            assert fresh != frozen and is_descendant(fresh, gw.pid)
            rep = await s.call("isolated__echo", {"text": "fresh"})
            assert succeeded(rep) and rep.text() == "fresh"

    run(go())


# ---------------------------------------------------------------------------
# Crash-loop breaker and readiness
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quorum", "expected_status"),
    [("any", 200), ("all", 503), (0.5, 200), (0.75, 503)],
)
def test_a_backend_that_exits_at_start_is_a_crash_loop_and_the_quorum_decides_readiness(
    gateways: GatewayPool, quorum: Any, expected_status: int
) -> None:
    """`sh -c "exit 3"`: three exits within the window (max_restarts 2) open the crash-loop breaker. /readyz
    names its state crash_loop and no more restarts happen during the cooldown. With 1 of 2 backends ready,
    quorum any and 0.5 keep the replica ready (200), all and 0.75 do not (503)."""
    config = make_config(
        backends={
            "example": example_backend(),
            "broken": exits_at_start(max_restarts=2, restart_window="30s", crash_loop_cooldown="60s"),
        },
        server={"readiness": {"quorum": quorum}},
    )
    gw = gateways.start(config)
    status, body = wait_backend_state(gw.base, "broken", "crash_loop", timeout=10)
    assert body["backends"]["example"] == "ready", body
    assert status == expected_status, f"quorum {quorum}: /readyz {status} {body}"
    assert body["ready_backends"] == 1 and body["quorum"] == str(quorum), body
    tripped = gw.wait_log(lambda r: r.get("msg") == "backend is in a crash loop; no restarts until its cooldown ends", timeout=2)
    assert tripped is not None and tripped.get("backend") == "broken", gw.stderr_tail()
    restarts = restarts_total(gw.base, "broken")
    assert restarts == 3, f"3 exits expected before the breaker opened, metrics say {restarts}"
    time.sleep(1.5)
    assert restarts_total(gw.base, "broken") == 3, "the backend was restarted during its cooldown"
    assert readyz(gw.base)[1]["backends"]["broken"] == "crash_loop"


def test_crash_loop_fails_calls_fast_and_is_retried_after_the_cooldown(gateways: GatewayPool, tmp_path: Path) -> None:
    """A backend that served, then exits at every start: once the breaker opens, its calls fail at once with
    -32001 saying it is in a crash loop and when it will be retried (data.retry_after_ms), while the other
    backends serve on. After the cooldown one attempt is made: still failing, the breaker reopens at once
    (one restart, not another max_restarts); able to start, the backend is ready and serves again."""
    marker = tmp_path / "exit-at-start"
    health = {"max_restarts": 2, "restart_window": "30s", "crash_loop_cooldown": "3s"}
    gw = gateways.start(make_config(backends={
        "diag": BACKEND_DIAG, "example": example_backend(), "flaky": example_unless(marker, **health),
    }))

    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            first = await backend_pid(s, "flaky__pid")
            marker.write_text("1")
            assert is_descendant(first, gw.pid)
            os.kill(first, signal.SIGKILL)
            wait_backend_state(gw.base, "flaky", "crash_loop", timeout=10)
            t_open = time.monotonic()
            rep = await s.call("flaky__echo", {"text": "x"})
            elapsed = time.monotonic() - t_open
            assert elapsed < 0.5, f"a call to a crash-looping backend took {elapsed:.2f}s"
            assert rep.error["code"] == -32001, rep.response
            message = rep.error["message"]
            assert "flaky" in message and "crash loop" in message and "retried in" in message, message
            assert 0 < rep.error["data"]["retry_after_ms"] <= 3000, rep.error
            for tool in ("example__echo", "diag__echo"):
                other = await s.call(tool, {"text": "unaffected"})
                assert succeeded(other) and other.text() == "unaffected", other.response
            status, body = readyz(gw.base)
            assert status == 200 and body["backends"] == {"diag": "ready", "example": "ready", "flaky": "crash_loop"}, body
            exits_when_opened = restarts_total(gw.base, "flaky")
            assert exits_when_opened == 3

            # The cooldown ends with the marker still there: one attempt, which dies, and the breaker reopens.
            retried = gw.wait_log(lambda r: r.get("msg") == "crash-loop cooldown over; trying the backend again", timeout=6)
            assert retried is not None and retried.get("backend") == "flaky", gw.stderr_tail()
            reopened = gw.wait_log(
                lambda r: r.get("msg") == "backend still crash-looping after its cooldown; no restarts until the next cooldown ends",
                timeout=3,
            )
            assert reopened is not None and reopened.get("backend") == "flaky", gw.stderr_tail()
            assert restarts_total(gw.base, "flaky") == exits_when_opened + 1
            wait_backend_state(gw.base, "flaky", "crash_loop", timeout=2)

            # Fixed: the next attempt, after another cooldown, starts and closes the breaker.
            marker.unlink()
            deadline = time.monotonic() + 8
            rep = None
            while time.monotonic() < deadline:
                rep = await s.call("flaky__echo", {"text": "recovered"})
                if succeeded(rep):
                    break
                await asyncio.sleep(0.2)
            assert rep is not None and succeeded(rep) and rep.text() == "recovered", rep and rep.response
            assert await backend_pid(s, "flaky__pid") != first
            status, body = readyz(gw.base)
            assert status == 200 and body["backends"]["flaky"] == "ready", body
            assert gw.wait_log(lambda r: r.get("msg") == "backend recovered from its crash loop; normal supervision resumes", timeout=5) is not None

    run(go())
