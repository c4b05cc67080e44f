"""stdio backend supervision: crash and restart, call timeout, cancellation, stderr
re-logging, non-JSON stdout, progress forwarding, per-session isolation."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time

import pytest

from conftest import (
    BACKEND_DIAG,
    BACKEND_EXAMPLE,
    BACKEND_ISOLATED,
    Gateway,
    GatewayPool,
    assert_still_serving,
    http_client,
    initialize,
    is_descendant,
    make_config,
    pid_alive,
    run,
    wait_pid_gone,
)

pytestmark = pytest.mark.timeout(60)


def is_backend_record(rec: dict, backend: str, text: str) -> bool:
    return rec.get("backend") == backend and text in str(rec.get("msg", ""))


async def example_pid(session, tool: str = "example__pid") -> int:
    rep = await session.call(tool, {})
    assert rep.status == 200
    return int(rep.text())


# ---------------------------------------------------------------------------
# on the module's shared gateway
# ---------------------------------------------------------------------------


def test_noise_is_relogged_and_skipped(gw: Gateway) -> None:
    async def go():
        mark = gw.mark()
        async with http_client() as c:
            s = await initialize(c, gw.url)
            rep = await s.call("example__noise", {})
            assert rep.status == 200
            assert rep.text() == "ok"
            rec = gw.wait_log(lambda r: is_backend_record(r, "example", "noise on stderr"), timeout=5, since=mark)
            assert rec is not None, f"no log record with backend=example and 'noise on stderr':\n{gw.stderr_tail()}"
            assert rec["msg"].strip() == "noise on stderr"
            # The non-JSON stdout line was skipped: the backend keeps working.
            for i in range(3):
                rep = await s.call("example__echo", {"text": f"after noise {i}"})
                assert rep.text() == f"after noise {i}"

    run(go())


def test_call_timeout_cancels_at_backend(gw: Gateway) -> None:
    async def go():
        mark = gw.mark()
        async with http_client() as c:
            s = await initialize(c, gw.url)
            t0 = time.monotonic()
            rep = await s.call("example__sleep", {"ms": 10000})
            elapsed = time.monotonic() - t0
            assert rep.status == 200
            err = rep.error
            assert err["code"] == -32004, err
            assert "example" in err["message"], err
            assert 2.5 <= elapsed <= 5.0, f"call_timeout 3s but the error came after {elapsed:.2f}s"
            rec = gw.wait_log(lambda r: is_backend_record(r, "example", "cancelled request"), timeout=5, since=mark)
            assert rec is not None, f"backend was not sent notifications/cancelled:\n{gw.stderr_tail()}"
            rep = await s.call("example__echo", {"text": "after timeout"})
            assert rep.text() == "after timeout"

    run(go())


def test_client_cancellation_is_forwarded(gw: Gateway) -> None:
    async def go():
        mark = gw.mark()
        async with http_client() as c:
            s = await initialize(c, gw.url)
            task = asyncio.create_task(s.call("example__sleep", {"ms": 10000}, rid="to-cancel"))
            await asyncio.sleep(0.7)
            r = await s.notify("notifications/cancelled", {"requestId": "to-cancel", "reason": "test"})
            assert r.status_code == 202
            rec = await asyncio.to_thread(
                gw.wait_log, lambda r: is_backend_record(r, "example", "cancelled request"), 5, mark
            )
            assert rec is not None, f"cancellation was not forwarded to the backend:\n{gw.stderr_tail()}"
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
            rep = await s.call("example__echo", {"text": "after cancel"})
            assert rep.text() == "after cancel"

    run(go())


def test_stdio_progress_is_forwarded_with_client_token(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            s1 = await initialize(c, gw.url)
            s2 = await initialize(c, gw.url)
            # Same token in two sessions at once: the gateway must keep them apart.
            r1, r2 = await asyncio.gather(
                s1.call("example__sleep", {"ms": 500}, progress_token=1, rid=11),
                s2.call("example__sleep", {"ms": 300}, progress_token=1, rid=11),
            )
            for rep, ms in ((r1, 500), (r2, 300)):
                assert rep.status == 200
                assert rep.content_type.startswith("text/event-stream"), rep.content_type
                progress = [m for m in rep.messages if m.get("method") == "notifications/progress"]
                assert progress, f"no progress forwarded: {rep.messages}"
                assert all(p["params"]["progressToken"] == 1 for p in progress), progress
                values = [p["params"]["progress"] for p in progress]
                assert values == sorted(values) and len(set(values)) == len(values), values
                assert rep.response["id"] == 11
                assert rep.text() == f"slept {ms}ms"

    run(go())


def test_structured_content_passes_through(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            rep = await s.call("example__add", {"a": 1.5, "b": 2.25})
            assert rep.result["structuredContent"] == {"sum": 3.75}
            assert float(rep.text()) == 3.75

    run(go())


def test_concurrent_calls_on_one_stdio_backend(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            texts = [f"multiplexed-{i}" for i in range(40)]
            reps = await asyncio.gather(*(s.call("example__echo", {"text": t}) for t in texts))
            assert [r.text() for r in reps] == texts

    run(go())


# ---------------------------------------------------------------------------
# with their own gateways
# ---------------------------------------------------------------------------


def test_backend_crash_fails_inflight_and_restarts(gateways: GatewayPool) -> None:
    gw = gateways.start(make_config(backends={"diag": BACKEND_DIAG, "example": BACKEND_EXAMPLE}))

    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            pid1 = await example_pid(s)
            task = asyncio.create_task(s.call("example__sleep", {"ms": 5000}))
            await asyncio.sleep(0.7)
            assert not task.done()
            assert pid1 != gw.pid and is_descendant(pid1, gw.pid), f"pid {pid1} is not a backend of the gateway"
            t_kill = time.monotonic()
            os.kill(pid1, signal.SIGKILL)
            rep = await asyncio.wait_for(task, timeout=5)
            elapsed = time.monotonic() - t_kill
            err = rep.error
            assert err["code"] == -32001, err
            assert "example" in err["message"], err
            assert elapsed <= 1.0, f"in-flight call failed {elapsed:.2f}s after the kill (limit 1 s)"
            # Automatic restart: a later call succeeds within 15 s, from a new process.
            deadline = time.monotonic() + 15
            last = None
            while time.monotonic() < deadline:
                last = await s.call("example__echo", {"text": "revived"})
                if last.status == 200 and isinstance(last.response, dict) and "result" in last.response:
                    break
                await asyncio.sleep(0.25)
            assert last is not None and "result" in last.response, f"no restart within 15 s: {last.response}"
            assert last.text() == "revived"
            pid2 = await example_pid(s)
            assert pid2 != pid1
        await assert_still_serving(gw.url)

    run(go())


def isolated_gateway(gateways: GatewayPool):
    return gateways.start(make_config(backends={"diag": BACKEND_DIAG, "isolated": BACKEND_ISOLATED}))


def test_isolated_backend_one_process_per_session(gateways: GatewayPool) -> None:
    gw = isolated_gateway(gateways)

    async def go():
        async with http_client() as c:
            s1 = await initialize(c, gw.url)
            s2 = await initialize(c, gw.url)
            p1 = await example_pid(s1, "isolated__pid")
            p1_again = await example_pid(s1, "isolated__pid")
            p2 = await example_pid(s2, "isolated__pid")
            assert p1 == p1_again, "one session must keep its own process"
            assert p1 != p2, "two sessions must get two processes"
            assert is_descendant(p1, gw.pid) and is_descendant(p2, gw.pid), "pids must be the gateway's children"
            assert pid_alive(p1) and pid_alive(p2)
            r = await s1.delete()
            assert r.status_code == 200
            gone = await asyncio.to_thread(wait_pid_gone, p1, 10.0)
            assert gone, f"process {p1} of the deleted session still runs after 10 s"
            assert pid_alive(p2), "the other session's process must survive"
            assert await example_pid(s2, "isolated__pid") == p2

    run(go())


def test_isolated_backend_max_sessions_cap(gateways: GatewayPool) -> None:
    gw = isolated_gateway(gateways)

    async def go():
        async with http_client() as c:
            sessions = [await initialize(c, gw.url) for _ in range(4)]
            pids = [await example_pid(s, "isolated__pid") for s in sessions[:3]]
            assert len(set(pids)) == 3
            rep = await sessions[3].call("isolated__pid", {})
            assert rep.status == 200
            err = rep.error
            assert err["code"] == -32001, err
            msg = err["message"]
            assert "isolated" in msg, msg
            assert "max_sessions" in msg or re.search(r"\b3\b", msg), f"the error does not name the cap: {msg}"
            # The capped session is otherwise fine.
            rep = await sessions[3].call("diag__echo", {"text": "capped but alive"})
            assert rep.text() == "capped but alive"
            # The three that have processes still use them.
            for s, p in zip(sessions[:3], pids):
                assert await example_pid(s, "isolated__pid") == p

    run(go())
