"""Chaos with real processes: backends that die, stop, crash-loop, hang or write garbage; a principal that
floods; signals to the gateway with work in flight.

Already covered in test_backends.py and not repeated here: a single stdio backend SIGKILLed mid-call
(test_backend_crash_fails_inflight_and_restarts), one non-JSON stdout line (test_noise_is_relogged_and_skipped)
and a call that outlives call_timeout on a backend that honours cancellation
(test_call_timeout_cancels_at_backend). The tests below take each of those further.

The misbehaving backend is Tests/interop/backends/chaos_server.py (standard library only).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import (
    BACKEND_DIAG,
    PYTHON,
    REPO,
    Gateway,
    GatewayPool,
    Reply,
    assert_still_serving,
    default_headers,
    http_client,
    initialize,
    is_descendant,
    make_config,
    pid_alive,
    run,
    to_yaml,
)

pytestmark = pytest.mark.timeout(90)

CHAOS_SERVER = REPO / "Tests" / "interop" / "backends" / "chaos_server.py"


def chaos_backend(*flags: str, call_timeout: str = "2s", breaker: bool = True) -> dict[str, Any]:
    backend = {"type": "stdio", "command": [PYTHON, str(CHAOS_SERVER), *flags], "call_timeout": call_timeout}
    if not breaker:
        # Tests that provoke timeouts on purpose keep the circuit breaker out of the way (it would rightly
        # open on them; the breaker has its own tests): it never sees enough calls to judge.
        backend["circuit_breaker"] = {"failure_ratio": 1.0, "min_calls": 1_000_000, "open_for": "1s"}
    return backend


def succeeded(rep: Reply) -> bool:
    return rep.status == 200 and isinstance(rep.response, dict) and "result" in rep.response


def error_code(rep: Reply) -> int | None:
    if rep.status == 200 and isinstance(rep.response, dict) and isinstance(rep.response.get("error"), dict):
        return rep.response["error"].get("code")
    return None


async def backend_pid(session, tool: str) -> int:
    rep = await session.call(tool, {})
    assert succeeded(rep), f"{tool}: HTTP {rep.status} {rep.response}"
    return int(rep.text())


async def timed(coro) -> tuple[Reply, float, float]:
    """The reply, when it was sent and when it came back (monotonic)."""
    started = time.monotonic()
    rep = await coro
    return rep, started, time.monotonic()


# ---------------------------------------------------------------------------
# Backend processes
# ---------------------------------------------------------------------------


def test_sigkill_one_of_two_instances_fails_only_its_calls(gateways: GatewayPool) -> None:
    """instances: 2. Killing one fails the calls on it at once (-32001); the calls on the other instance
    finish normally, new calls go to the survivor at once, and the dead instance is replaced."""
    example = {"type": "stdio", "command": ["${EXAMPLE_SERVER}"], "instances": 2, "call_timeout": "10s"}
    gw = gateways.start(make_config(backends={"diag": BACKEND_DIAG, "example": example}))

    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            pids = {await backend_pid(s, "example__pid") for _ in range(4)}
            assert len(pids) == 2, f"two instances expected, saw pids {pids}"
            assert all(is_descendant(p, gw.pid) for p in pids)
            victim, survivor = sorted(pids)
            sleeps = [asyncio.create_task(timed(s.call("example__sleep", {"ms": 2500}))) for _ in range(8)]
            await asyncio.sleep(0.7)
            assert not any(t.done() for t in sleeps), "the sleeps ended before the kill"
            t_kill = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            # At once, new calls are answered by the survivor (not queued behind the restart).
            await asyncio.sleep(0.2)
            quick = [await timed(s.call("example__echo", {"text": f"during restart {i}"})) for i in range(6)]
            for i, (rep, started, ended) in enumerate(quick):
                assert succeeded(rep) and rep.text() == f"during restart {i}", rep.response
                assert ended - started < 1.0, f"a call right after the kill took {ended - started:.2f}s"
            results = await asyncio.gather(*sleeps)
            failed = [(rep, ended) for rep, _, ended in results if not succeeded(rep)]
            finished = [rep for rep, _, _ in results if succeeded(rep)]
            assert 1 <= len(failed) <= 7, f"{len(failed)} of 8 calls failed: round robin should put about half on each instance"
            for rep, ended in failed:
                assert error_code(rep) == -32001, rep.response
                assert "example" in rep.response["error"]["message"], rep.response
                assert ended - t_kill < 1.0, f"a call on the killed instance failed {ended - t_kill:.2f}s after the kill"
            assert all(rep.text() == "slept 2500ms" for rep in finished), [r.response for r in finished]
            assert pid_alive(survivor), "the surviving instance must not be touched"
            # The killed instance comes back as a new process.
            deadline = time.monotonic() + 15
            now = set()
            while time.monotonic() < deadline:
                now = {await backend_pid(s, "example__pid") for _ in range(4)}
                if len(now) == 2:
                    break
                await asyncio.sleep(0.3)
            assert len(now) == 2 and survivor in now and victim not in now, f"instances after the restart: {now}"

    run(go())


def test_crash_loop_fails_fast_backs_off_and_recovers(gateways: GatewayPool, tmp_path: Path) -> None:
    """A backend that exits at every start: calls get -32001 at once (never hang), restarts back off
    exponentially instead of spinning, other backends serve on, and it recovers when it can start again."""
    marker = tmp_path / "crash-at-start"
    gw = gateways.start(make_config(backends={"diag": BACKEND_DIAG, "chaos": chaos_backend("--exit-if-exists", str(marker), breaker=False)}))

    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            first = await backend_pid(s, "chaos__pid")
            marker.write_text("1")
            mark = gw.mark()
            os.kill(first, signal.SIGKILL)
            t_kill = time.monotonic()
            # For 3 s: each call is refused at once, naming the backend; the plugin backend is unaffected.
            while time.monotonic() - t_kill < 3.0:
                rep, started, ended = await timed(s.call("chaos__echo", {"text": "x"}))
                assert error_code(rep) == -32001, rep.response
                assert "chaos" in rep.response["error"]["message"], rep.response
                assert ended - started < 0.5, f"a call to a crash-looping backend took {ended - started:.2f}s"
                rep = await s.call("diag__echo", {"text": "unaffected"})
                assert succeeded(rep) and rep.text() == "unaffected"
                await asyncio.sleep(0.1)
            restarts = [r for r in gw.logs()[mark:] if r.get("msg") == "backend instance will be restarted" and r.get("backend") == "chaos"]
            # Backoff 200ms, 400ms, 800ms, 1.6s (±20%): at most 5 restarts in 3 s; without backoff it would be dozens.
            assert 3 <= len(restarts) <= 5, f"{len(restarts)} restarts in 3 s of crash loop:\n{gw.stderr_tail()}"
            failures = [int(r["consecutive_failures"]) for r in restarts]
            delays = [int(r["delay_ms"]) for r in restarts]
            assert failures == list(range(1, len(restarts) + 1)), failures
            assert all(later > earlier * 1.3 for earlier, later in zip(delays, delays[1:])), f"delays do not grow: {delays}"
            marker.unlink()
            # The next attempt (at most 30 s away by the backoff cap; here about 3.2 s) starts cleanly.
            deadline = time.monotonic() + 15
            rep = None
            while time.monotonic() < deadline:
                rep = await s.call("chaos__echo", {"text": "recovered"})
                if succeeded(rep):
                    break
                await asyncio.sleep(0.2)
            assert rep is not None and succeeded(rep) and rep.text() == "recovered", rep and rep.response
            assert await backend_pid(s, "chaos__pid") != first

    run(go())


def test_garbage_on_stdout_never_disturbs_replies(gateways: GatewayPool) -> None:
    """Garbage of every kind on the backend's stdout, both between replies (a chattering thread) and
    right before them: every call gets its own correct answer, forged replies to unknown ids are
    dropped, and the process is never restarted for it."""
    gw = gateways.start(make_config(backends={"diag": BACKEND_DIAG, "chaos": chaos_backend("--chatter", call_timeout="10s")}))

    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            pid = await backend_pid(s, "chaos__pid")
            texts = [f"garbage-{i}" if i % 3 == 0 else f"echo-{i}" for i in range(45)]
            reps = await asyncio.gather(*(
                s.call("chaos__garbage" if t.startswith("garbage") else "chaos__echo", {"text": t}) for t in texts
            ))
            for t, rep in zip(texts, reps):
                assert succeeded(rep), f"{t}: HTTP {rep.status} {rep.response}"
                assert rep.text() == t, f"{t} got {rep.text()!r}: a garbage line was taken for a reply"
            assert await backend_pid(s, "chaos__pid") == pid, "the backend was restarted over garbage"
            skipped = [r for r in gw.logs() if r.get("backend") == "chaos" and "not JSON" in str(r.get("msg", ""))]
            assert skipped, f"no 'not JSON' record for the garbage:\n{gw.stderr_tail()}"
            assert all(len(r["line"]) <= 1024 for r in skipped if isinstance(r.get("line"), str)), "a 256 KiB line was logged whole"
        await assert_still_serving(gw.url)

    run(go())


def test_hung_calls_time_out_while_the_backend_serves_on(gateways: GatewayPool) -> None:
    """A tool that never answers and ignores cancellation: each call gets -32004 at call_timeout, calls
    to other tools of the same process are answered meanwhile and afterwards, and nothing is restarted."""
    gw = gateways.start(make_config(backends={"diag": BACKEND_DIAG, "chaos": chaos_backend(call_timeout="2s", breaker=False)}))

    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            pid = await backend_pid(s, "chaos__pid")
            hangs = [asyncio.create_task(timed(s.call("chaos__hang", {}))) for _ in range(5)]
            await asyncio.sleep(0.3)
            for i in range(5):
                rep, started, ended = await timed(s.call("chaos__echo", {"text": f"while hung {i}"}))
                assert succeeded(rep) and rep.text() == f"while hung {i}", rep.response
                assert ended - started < 1.0
            for rep, started, ended in await asyncio.gather(*hangs):
                assert error_code(rep) == -32004, rep.response
                assert "chaos" in rep.response["error"]["message"], rep.response
                assert 1.8 <= ended - started <= 3.5, f"call_timeout 2s, the error came after {ended - started:.2f}s"
            rep = await s.call("chaos__echo", {"text": "after the hang"})
            assert succeeded(rep) and rep.text() == "after the hang"
            assert await backend_pid(s, "chaos__pid") == pid

    run(go())


def test_sigstopped_backend_times_out_and_serves_after_sigcont(gateways: GatewayPool) -> None:
    """The whole process frozen (SIGSTOP) past call_timeout: the calls get -32004 on time; after SIGCONT
    the frozen process answers them late, and those late replies must be dropped, never handed to
    later calls. (Detecting a frozen child with health pings and replacing it is issue 7 item 4, not
    built yet: today the process is kept, as asserted here.)"""
    gw = gateways.start(make_config(backends={"diag": BACKEND_DIAG, "chaos": chaos_backend(call_timeout="2s", breaker=False)}))

    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            pid = await backend_pid(s, "chaos__pid")
            assert is_descendant(pid, gw.pid)
            os.kill(pid, signal.SIGSTOP)
            try:
                frozen = await asyncio.gather(*(timed(s.call("chaos__echo", {"text": f"frozen {i}"})) for i in range(3)))
                for rep, started, ended in frozen:
                    assert error_code(rep) == -32004, rep.response
                    assert 1.8 <= ended - started <= 3.5, f"the error came after {ended - started:.2f}s"
                rep = await s.call("diag__echo", {"text": "plugin unaffected"})
                assert succeeded(rep) and rep.text() == "plugin unaffected"
            finally:
                os.kill(pid, signal.SIGCONT)
            # The late replies ("frozen i") arrive now; each later call must get its own answer.
            for i in range(10):
                rep = await s.call("chaos__echo", {"text": f"thawed {i}"})
                assert succeeded(rep) and rep.text() == f"thawed {i}", rep.response
            assert await backend_pid(s, "chaos__pid") == pid

    run(go())


# ---------------------------------------------------------------------------
# Rate limits: one principal floods, another is unaffected
# ---------------------------------------------------------------------------

FLOOD_KEY = "flood-key-0123456789abcdef"
CALM_KEY = "calm-key-0123456789abcdef"
RATE, BURST = 5, 5


def api_key(key_id: str, key: str) -> dict[str, Any]:
    return {"id": key_id, "sha256": hashlib.sha256(key.encode()).hexdigest()}


def keyed_headers(key: str, session: str | None = None, version: str | None = None) -> dict[str, str]:
    h = default_headers(session, version)
    h["Authorization"] = f"Bearer {key}"
    return h


def test_flood_at_ten_times_one_principals_limit(gateways: GatewayPool) -> None:
    """limits.per_principal {rate: 5, per: 1s, burst: 5}, API keys as principals. One principal sends
    50 calls/s (10× its rate) for 2 s: most are refused with HTTP 429 and Retry-After, and at most
    burst + rate × time get through. Another principal calling within its own limit at the same time
    gets every call answered. (The 429's headers and body are test_limits.py's subject; this is the
    flood, concurrent, with a bystander.)"""
    cfg = make_config(backends={"diag": BACKEND_DIAG})
    cfg["auth"] = {"mode": "api_key", "api_keys": [api_key("flooder", FLOOD_KEY), api_key("calm", CALM_KEY)]}
    cfg["limits"] = {"per_principal": {"rate": RATE, "per": "1s", "burst": BURST}}
    gw = gateways.start(cfg)

    async def flood(c: httpx.AsyncClient, sid: str, version: str) -> list[httpx.Response]:
        async def one(i: int) -> httpx.Response:
            body = {"jsonrpc": "2.0", "id": 1000 + i, "method": "tools/call", "params": {"name": "diag__echo", "arguments": {"text": f"flood {i}"}}}
            return await c.post(gw.url, json=body, headers=keyed_headers(FLOOD_KEY, sid, version))

        tasks = []
        for i in range(10 * RATE * 2):  # 10× the rate, for 2 s
            tasks.append(asyncio.create_task(one(i)))
            await asyncio.sleep(1 / (10 * RATE))
        return await asyncio.gather(*tasks)

    async def calm(c: httpx.AsyncClient) -> list[tuple[int, Any]]:
        s = await initialize(c, gw.url, headers=keyed_headers(CALM_KEY), initialized=False)
        s.headers = lambda **extra: keyed_headers(CALM_KEY, s.id, s.version)  # type: ignore[method-assign]
        r = await s.notify("notifications/initialized")
        assert r.status_code == 202, f"calm principal: notifications/initialized HTTP {r.status_code}"
        out = []
        for i in range(8):  # 10 requests in about 2.4 s: within burst 5 + 5/s
            rep = await s.call("diag__echo", {"text": f"calm {i}"})
            out.append((rep.status, rep.text() if succeeded(rep) else rep.response))
            await asyncio.sleep(0.3)
        return out

    async def go():
        async with http_client() as c:
            flooder = await initialize(c, gw.url, headers=keyed_headers(FLOOD_KEY), initialized=False)
            t0 = time.monotonic()
            flood_replies, calm_replies = await asyncio.gather(flood(c, flooder.id, flooder.version), calm(c))
            elapsed = time.monotonic() - t0
            assert calm_replies == [(200, f"calm {i}") for i in range(8)], f"the calm principal was limited: {calm_replies}"
            ok = [r for r in flood_replies if r.status_code == 200]
            limited = [r for r in flood_replies if r.status_code == 429]
            others = [r.status_code for r in flood_replies if r.status_code not in (200, 429)]
            assert not others, f"unexpected statuses in the flood: {others}"
            assert limited, f"no 429 among {len(flood_replies)} calls at 10× the limit"
            allowed_max = BURST + RATE * elapsed + 1
            assert len(ok) <= allowed_max, f"{len(ok)} flood calls passed in {elapsed:.1f}s; the limit allows {allowed_max:.0f}"
            assert len(ok) >= RATE, f"only {len(ok)} flood calls passed: the bucket refills at {RATE}/s"
            for r in ok:
                assert r.json()["result"]["content"][0]["text"].startswith("flood "), r.text
            retry_after = [r.headers.get("retry-after") for r in limited]
            assert all(v is not None and re.fullmatch(r"\d+", v) and int(v) >= 1 for v in retry_after), set(retry_after)
            # A limit, not a ban: after waiting as told, the flooder's session works again.
            await asyncio.sleep(max(int(v) for v in retry_after))
            rep = await c.post(gw.url, json={"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "diag__echo", "arguments": {"text": "patient"}}},
                               headers=keyed_headers(FLOOD_KEY, flooder.id, flooder.version))
            assert rep.status_code == 200 and rep.json()["result"]["content"][0]["text"] == "patient", rep.text

    run(go())


# ---------------------------------------------------------------------------
# Signals to the gateway
# ---------------------------------------------------------------------------

SHUTDOWN_GRACE = 10.0


def test_sigterm_lets_twenty_calls_in_flight_finish(gateways: GatewayPool) -> None:
    """SIGTERM with 20 diag__sleep calls of 2 s in flight: every one completes with its result, and the
    process exits 0 within server.shutdown_grace."""
    gw = gateways.start(make_config(backends={"diag": BACKEND_DIAG}, server={"shutdown_grace": "10s"}))

    async def go() -> tuple[list[str], float, float]:
        async with http_client(timeout=httpx.Timeout(20.0, connect=5.0)) as c:
            sessions = [await initialize(c, gw.url) for _ in range(4)]

            async def sleep_call(i: int) -> str:
                """"ok", or what the client got instead."""
                try:
                    rep = await sessions[i % 4].call("diag__sleep", {"ms": 2000}, progress_token=f"p{i}")
                except httpx.HTTPError as error:
                    return f"transport error {type(error).__name__}: {error}"
                if succeeded(rep) and rep.text() == "slept 2000ms":
                    return "ok"
                progress = sum(1 for m in rep.messages if isinstance(m, dict) and m.get("method") == "notifications/progress")
                return f"HTTP {rep.status} {rep.content_type}, {progress} progress, response {rep.response}"

            calls = [asyncio.create_task(sleep_call(i)) for i in range(20)]
            await asyncio.sleep(0.5)  # all 20 started: each is 0.5 s into its 2 s
            assert not any(t.done() for t in calls)
            gw.expect_exit = True
            t_term = time.monotonic()
            gw.proc.send_signal(signal.SIGTERM)
            results = await asyncio.gather(*calls)
            return results, t_term, time.monotonic()

    results, t_term, _ = run(go())
    try:
        rc = gw.proc.wait(SHUTDOWN_GRACE + 5)
    except subprocess.TimeoutExpired:
        pytest.fail(f"gateway still running {SHUTDOWN_GRACE + 5:.0f}s after SIGTERM:\n{gw.stderr_tail()}")
    t_exit = time.monotonic()
    outcomes = Counter(results)
    assert outcomes == Counter({"ok": 20}), (
        f"calls in flight at SIGTERM: {dict(outcomes)}; gateway exit code {rc}, {t_exit - t_term:.2f}s after SIGTERM\n"
        f"{gw.stderr_tail(6)}"
    )
    assert rc == 0, f"exit code {rc} after SIGTERM:\n{gw.stderr_tail()}"
    assert t_exit - t_term <= SHUTDOWN_GRACE, f"exit {t_exit - t_term:.1f}s after SIGTERM (shutdown_grace 10s)"


def wait_reload_outcome(gw: Gateway, since: int, timeout: float = 10.0) -> None:
    """Waits until the gateway logs something about a config reload, or dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gw.proc.poll() is not None:
            return
        if gw.find_log(lambda r: "reload" in str(r.get("msg", "")).lower() and "config" in str(r).lower(), since):
            return
        time.sleep(0.1)


def test_sighup_with_a_good_file_applies_it_live(gateways: GatewayPool) -> None:
    """Issue 7 item 6: SIGHUP re-reads the file; an added backend starts and its tools are served, and a
    live session keeps working and sees them."""
    gw = gateways.start(make_config(backends={"diag": BACKEND_DIAG}))

    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            rep = await s.request("tools/list")
            assert not [t for t in rep.result["tools"] if t["name"].startswith("chaos__")]
            mark = gw.mark()
            gw.config_path.write_text(to_yaml(make_config(backends={"diag": BACKEND_DIAG, "chaos": chaos_backend()})) + "\n")
            os.kill(gw.pid, signal.SIGHUP)
            await asyncio.to_thread(wait_reload_outcome, gw, mark)
            assert gw.proc.poll() is None, f"the gateway died on SIGHUP (exit {gw.proc.returncode}):\n{gw.stderr_tail(10)}"
            gw.expect_exit = False
            deadline = time.monotonic() + 5
            names: list[str] = []
            while time.monotonic() < deadline:
                rep = await s.request("tools/list")
                names = [t["name"] for t in rep.result["tools"]] if succeeded(rep) else []
                if "chaos__echo" in names:
                    break
                await asyncio.sleep(0.2)
            assert "chaos__echo" in names, f"the added backend's tools are not served after SIGHUP: {names}"
            rep = await s.call("chaos__echo", {"text": "added live"})
            assert succeeded(rep) and rep.text() == "added live", rep.response
            rep = await s.call("diag__echo", {"text": "old backend too"})
            assert succeeded(rep) and rep.text() == "old backend too", rep.response

    gw.expect_exit = True  # a death on SIGHUP is reported by the assertion above, not again at teardown
    run(go())


def test_sighup_with_a_bad_file_keeps_the_running_config(gateways: GatewayPool) -> None:
    """Issue 7 item 6: an invalid file on SIGHUP changes nothing; the gateway keeps serving and logs why,
    naming the key."""
    gw = gateways.start(make_config(backends={"diag": BACKEND_DIAG}))

    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            mark = gw.mark()
            good = gw.config_path.read_text()
            gw.config_path.write_text(good.replace("sessions:\n", "sessions:\n  idle_timout: 5m\n", 1))
            os.kill(gw.pid, signal.SIGHUP)
            await asyncio.to_thread(wait_reload_outcome, gw, mark)
            assert gw.proc.poll() is None, f"the gateway died on SIGHUP (exit {gw.proc.returncode}):\n{gw.stderr_tail(10)}"
            gw.expect_exit = False
            rep = await s.call("diag__echo", {"text": "still on the old config"})
            assert succeeded(rep) and rep.text() == "still on the old config", rep.response
            why = gw.find_log(lambda r: "sessions.idle_timout" in str(r), mark)
            assert why is not None, f"no log record naming the bad key sessions.idle_timout:\n{gw.stderr_tail(10)}"
            assert why.get("level") in ("warning", "error"), why
        await assert_still_serving(gw.url)

    gw.expect_exit = True
    run(go())
