"""Canary backends (issue 7, item 7; the seed's lifecycle chapter on canary deployments), end to end against
the real binary.

A stdio backend lists `versions` with weights: the stable version is the ExampleServer, the canary a new
build played by backends/canary_server.py (healthy, failing with JSON-RPC errors, or slow, as its options
say). The tests prove that calls are split exactly by weight (smooth weighted round-robin), that a canary
whose error ratio exceeds the stable version's by more than `max_error_ratio_increase`, or whose P95 exceeds
`sla_p95`, is rolled back on its own (error-level log line with the numbers, `mcp_canary_rollbacks_total`,
`mcp_canary_weight` 0, its process stopped), and that every call after the rollback is served by the stable
version.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import GATEWAY, Gateway, descendants, gateway_env, http_client, initialize, make_config, run, to_yaml

pytestmark = pytest.mark.timeout(120)

CANARY_SERVER = Path(__file__).resolve().parent / "backends" / "canary_server.py"


def versioned_backend(canary_args: list[str], weights: tuple[int, int], **canary: Any) -> dict[str, Any]:
    """A backend `svc`: the ExampleServer as the stable version, canary_server.py as the canary."""
    backend: dict[str, Any] = {
        "type": "stdio",
        "call_timeout": "5s",
        "versions": [
            {"name": "stable", "command": ["${EXAMPLE_SERVER}"], "weight": weights[0]},
            {"name": "canary", "command": ["${PYTHON}", str(CANARY_SERVER), *canary_args], "weight": weights[1]},
        ],
    }
    if canary:
        backend["canary"] = canary
    return backend


def config_for(backend: dict[str, Any]) -> dict[str, Any]:
    cfg = make_config(backends={"svc": backend})
    cfg["observability"]["metrics"] = {"enabled": True, "path": "/metrics"}
    return cfg


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def canary_processes(gw: Gateway) -> list[int]:
    return [pid for pid, _ in descendants(gw.pid) if "canary_server.py" in cmdline(pid)]


def metric(gw: Gateway, name: str, **labels: str) -> float | None:
    """The value of one sample in GET /metrics, None when absent."""
    wanted = "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
    text = httpx.get(f"{gw.base}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + "{"):
            series, _, value = line.rpartition(" ")
            found = "{" + ",".join(sorted(series[len(name) + 1 : -1].split(","))) + "}"
            if found == wanted:
                return float(value)
    return None


def is_rollback(rec: dict[str, Any]) -> bool:
    return rec.get("backend") == "svc" and str(rec.get("msg", "")).startswith("canary rolled back")


async def call_many(gw: Gateway, tool: str, count: int, arguments: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """`count` sequential calls in one session; each JSON-RPC response object."""
    async with http_client() as client:
        session = await initialize(client, gw.url)
        replies = []
        for index in range(count):
            rep = await session.call(tool, arguments if arguments is not None else {"text": f"call-{index}"})
            assert rep.status == 200, f"call {index}: HTTP {rep.status} {rep.body[:200]!r}"
            replies.append(rep.response)
        return replies


def text_of(response: dict[str, Any]) -> str:
    assert "result" in response, f"expected a result, got {response}"
    return response["result"]["content"][0]["text"]


def test_failing_canary_is_rolled_back_and_stable_serves_every_later_call(gateways):
    gw = gateways.start(config_for(versioned_backend(["--fail"], (50, 50), window="1m", min_calls=10)))
    assert len(canary_processes(gw)) == 1, "the canary version runs next to the stable one"
    assert metric(gw, "mcp_canary_weight", backend="svc", version="canary") == 50
    assert metric(gw, "mcp_canary_rollbacks_total", backend="svc", version="canary") in (None, 0)

    # 50/50 alternates stable, canary, stable, … : the tenth canary call (the 20th call) reaches min_calls.
    first = run(call_many(gw, "svc__echo", 20))
    canary_errors = [r for r in first if "error" in r]
    assert len(canary_errors) == 10, f"half the calls reached the broken canary: {first}"
    assert all(r["error"]["code"] == -32000 and "canary-server" in r["error"]["message"] for r in canary_errors)
    assert [text_of(r) for r in first if "result" in r] == [f"call-{i}" for i in range(0, 20, 2)]

    rec = gw.wait_log(is_rollback, timeout=5)
    assert rec is not None, f"no rollback logged:\n{gw.stderr_tail()}"
    assert rec["level"] == "error"
    assert rec["version"] == "canary" and rec["stable_version"] == "stable"
    assert rec["reason"] == "error_ratio"
    assert rec["canary_calls"] == "10" and rec["canary_errors"] == "10" and float(rec["canary_error_ratio"]) == 1.0
    assert rec["stable_calls"] == "10" and rec["stable_errors"] == "0" and float(rec["stable_error_ratio"]) == 0.0
    assert rec["window"] == "1m" and rec["weights"] == "stable=100,canary=0"
    assert metric(gw, "mcp_canary_rollbacks_total", backend="svc", version="canary") == 1
    assert metric(gw, "mcp_canary_weight", backend="svc", version="canary") == 0
    assert metric(gw, "mcp_canary_weight", backend="svc", version="stable") == 100

    # Every later call succeeds, on the stable version's one process.
    later = run(call_many(gw, "svc__echo", 30))
    assert [text_of(r) for r in later] == [f"call-{i}" for i in range(30)]
    pids = {text_of(r) for r in run(call_many(gw, "svc__pid", 10, {}))}
    assert len(pids) == 1 and "ExampleServer" in cmdline(int(pids.pop()))

    # The canary had no calls in flight, so its process is stopped at once.
    deadline = time.monotonic() + 10
    while canary_processes(gw) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert canary_processes(gw) == [], "the rolled-back canary's process is still running"
    # The line is written once the stop completes, which can trail the process's exit by a moment.
    assert gw.wait_log(lambda r: r.get("msg") == "rolled-back canary version stopped" and r.get("version") == "canary", timeout=10)
    assert len([r for r in gw.logs() if is_rollback(r)]) == 1, "rolled back once"


def test_healthy_versions_split_calls_exactly_by_weight(gateways):
    gw = gateways.start(config_for(versioned_backend([], (80, 20), min_calls=5)))
    replies = run(call_many(gw, "svc__pid", 50, {}))
    by_pid = Counter(text_of(r) for r in replies)
    assert len(by_pid) == 2, f"two versions, two processes: {by_pid}"
    counts = {("canary" if "canary_server.py" in cmdline(int(pid)) else "stable"): n for pid, n in by_pid.items()}
    assert counts == {"stable": 40, "canary": 10}, "smooth weighted round-robin: 80/20 over 50 calls is exactly 40/10"
    assert "ExampleServer" in cmdline(int(next(p for p, n in by_pid.items() if n == 40)))
    # The canary's calls are spread out, not bunched: one in every five.
    sequence = ["c" if "canary_server.py" in cmdline(int(text_of(r))) else "s" for r in replies]
    assert all(sequence[i : i + 5].count("c") == 1 for i in range(0, 50, 5)), "".join(sequence)
    assert gw.find_log(is_rollback) is None, "a healthy canary stays"
    assert metric(gw, "mcp_canary_weight", backend="svc", version="stable") == 80
    assert metric(gw, "mcp_canary_weight", backend="svc", version="canary") == 20
    # The catalog is the stable version's, listed once under the backend's name.
    async def tool_names() -> list[str]:
        async with http_client() as client:
            session = await initialize(client, gw.url)
            return [t["name"] for t in (await session.request("tools/list")).result["tools"]]

    names = run(tool_names())
    assert "svc__add" in names and names.count("svc__pid") == 1, names


def test_split_is_exact_under_concurrent_calls_from_many_sessions(gateways):
    gw = gateways.start(config_for(versioned_backend([], (80, 20))))

    async def burst() -> list[dict[str, Any]]:
        async with http_client() as client:
            sessions = [await initialize(client, gw.url) for _ in range(10)]
            replies = await asyncio.gather(*(sessions[i % 10].call("svc__pid", {}) for i in range(100)))
            return [rep.response for rep in replies]

    by_pid = Counter(text_of(r) for r in run(burst()))
    counts = {("canary" if "canary_server.py" in cmdline(int(pid)) else "stable"): n for pid, n in by_pid.items()}
    assert counts == {"stable": 80, "canary": 20}, "the split is decided under one lock: exact whatever the interleaving"


def test_rollback_lets_the_canarys_calls_in_flight_finish(gateways):
    # The canary answers one call at a time, each 200 ms late and with an error. Eight calls at once: four reach
    # it; its second answer rolls it back while two of its calls are still running. Those two still get the
    # canary's own answer (not a -32001 from a process being stopped), and only then is it stopped.
    gw = gateways.start(config_for(versioned_backend(["--fail", "--delay-ms", "200"], (50, 50), min_calls=2)))

    async def burst() -> list[dict[str, Any]]:
        async with http_client() as client:
            session = await initialize(client, gw.url)
            replies = await asyncio.gather(*(session.call("svc__echo", {"text": f"c{i}"}) for i in range(8)))
            return [rep.response for rep in replies]

    replies = run(burst())
    errors = [r["error"] for r in replies if "error" in r]
    assert len(errors) == 4 and all(e["code"] == -32000 for e in errors), replies
    rec = gw.wait_log(is_rollback, timeout=5)
    assert rec is not None and rec["canary_calls"] == "2", f"rolled back at the second answer:\n{gw.stderr_tail()}"
    stopping = gw.wait_log(lambda r: r.get("msg", "").startswith("stopping the rolled-back canary"), timeout=5)
    assert stopping is not None and stopping["why_now"] == "its calls in flight have ended"
    assert stopping["ts"] >= rec["ts"]
    deadline = time.monotonic() + 10
    while canary_processes(gw) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert canary_processes(gw) == []


def test_slow_canary_is_rolled_back_for_its_p95(gateways):
    gw = gateways.start(config_for(versioned_backend(["--delay-ms", "300"], (50, 50), min_calls=5, sla_p95="100ms")))
    replies = run(call_many(gw, "svc__echo", 10))
    assert [text_of(r) for r in replies] == [f"call-{i}" for i in range(10)], "slow, not failing: every call answers"
    rec = gw.wait_log(is_rollback, timeout=5)
    assert rec is not None, f"no rollback logged:\n{gw.stderr_tail()}"
    assert rec["reason"] == "p95_latency"
    assert rec["canary_calls"] == "5" and rec["canary_errors"] == "0"
    assert float(rec["canary_p95_ms"]) >= 300 and float(rec["sla_p95_ms"]) == 100
    assert float(rec["stable_p95_ms"]) < 100
    assert metric(gw, "mcp_canary_rollbacks_total", backend="svc", version="canary") == 1
    # From now on only the stable version answers, at its own speed.
    started = time.monotonic()
    pids = {text_of(r) for r in run(call_many(gw, "svc__pid", 10, {}))}
    assert len(pids) == 1 and "ExampleServer" in cmdline(int(pids.pop()))
    assert time.monotonic() - started < 2.5, "no call went to the 300 ms canary"


def test_canary_timeouts_count_as_failures(gateways):
    # The canary answers after 1.5 s, past the backend's 1 s call_timeout: the gateway's -32004 ends each of
    # its calls, and those timeouts, not latency (sla_p95 is far off), roll it back.
    backend = versioned_backend(["--delay-ms", "1500"], (50, 50), min_calls=3, sla_p95="1m")
    backend["call_timeout"] = "1s"
    gw = gateways.start(config_for(backend))
    replies = run(call_many(gw, "svc__echo", 6))
    timeouts = [r for r in replies if "error" in r]
    assert len(timeouts) == 3 and all(r["error"]["code"] == -32004 for r in timeouts), replies
    rec = gw.wait_log(is_rollback, timeout=5)
    assert rec is not None, f"no rollback logged:\n{gw.stderr_tail()}"
    assert rec["reason"] == "error_ratio"
    assert rec["canary_calls"] == "3" and rec["canary_errors"] == "3" and rec["stable_errors"] == "0"
    later = run(call_many(gw, "svc__echo", 6))
    assert [text_of(r) for r in later] == [f"call-{i}" for i in range(6)]


def test_invalid_versions_are_refused_with_their_key_paths(tmp_path):
    backend = versioned_backend([], (0, 0), min_calls=0)
    backend["versions"][1]["stable"] = "maybe"
    path = tmp_path / "bad.yaml"
    path.write_text(to_yaml(config_for(backend)) + "\n")
    done = subprocess.run([str(GATEWAY), "check", "--config", str(path)], capture_output=True, text=True, env=gateway_env(), timeout=30)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "backends.svc.versions[1].stable" in output and "not a boolean" in output
    assert "backends.svc.canary.min_calls" in output
