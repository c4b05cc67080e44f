"""Rate limits, load shedding, backend concurrency and circuit breakers (issue 7, items 1-3), end to end
against the real binary.

- `limits.per_principal` / `limits.per_tenant`: HTTP 429 with `Retry-After`, `RateLimit-Policy` and
  `RateLimit` (draft-ietf-httpapi-ratelimit-headers-10) and a JSON-RPC -32003 body; buckets are per API-key
  principal, so another principal is unaffected.
- `limits.per_tool`: JSON-RPC -32003 with `data.retry_after_ms` inside the session (HTTP 200), shared by a
  principal's sessions, audited as `rejected`.
- `limits.max_inflight`: 503 with `Retry-After` while `diag__sleep` calls hold every place.
- `backends.<n>.max_concurrency` + `queue`: -32001 "backend saturated" beyond the queue; time spent queued
  counts toward `call_timeout`.
- `backends.<n>.circuit_breaker`: a stdio backend answering JSON-RPC internal errors (backends/flaky_backend.py)
  opens the circuit, calls then fail fast with -32001 without reaching it, and after `open_for` one probe
  re-opens or closes it; tool results with `isError: true` never open it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import (
    BACKEND_DIAG,
    BACKEND_EXAMPLE,
    PYTHON,
    GatewayPool,
    default_headers,
    http_client,
    initialize,
    make_config,
    post_raw,
    run,
    to_yaml,
)

pytestmark = pytest.mark.timeout(90)

FLAKY = Path(__file__).resolve().parent / "backends" / "flaky_backend.py"
ALICE_KEY = "alice-key-0123456789abcdef"
BOB_KEY = "bob-key-0123456789abcdef"
CAROL_KEY = "carol-key-0123456789abcdef"


def api_key_config(limits: dict[str, Any]) -> dict[str, Any]:
    cfg = make_config(backends={"diag": dict(BACKEND_DIAG)})
    cfg["auth"] = {
        "mode": "api_key",
        "api_keys": [
            {"id": "alice", "sha256": hashlib.sha256(ALICE_KEY.encode()).hexdigest(), "tenant": "acme"},
            {"id": "bob", "sha256": hashlib.sha256(BOB_KEY.encode()).hexdigest(), "tenant": "acme"},
            {"id": "carol", "sha256": hashlib.sha256(CAROL_KEY.encode()).hexdigest(), "tenant": "globex"},
        ],
    }
    cfg["limits"] = limits
    return cfg


def keyed(key: str, session=None) -> dict[str, str]:
    headers = session.headers() if session is not None else default_headers()
    headers["X-API-Key"] = key
    return headers


async def open_session(client, url: str, key: str, initialized: bool = True):
    """initialize (and notifications/initialized) with an API key: each is one request against the limits."""
    session = await initialize(client, url, headers=keyed(key), initialized=False)
    if initialized:
        r = await client.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=keyed(key, session))
        assert r.status_code == 202, r.text
    return session


def echo(rid: int, text: str = "hi") -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {"name": "diag__echo", "arguments": {"text": text}}}


def assert_rate_limited_429(reply, policy_name: str, quota: int, window: int) -> None:
    assert reply.status == 429, f"expected 429, got {reply.status}: {reply.body[:300]!r}"
    retry_after = reply.headers.get("retry-after")
    assert retry_after is not None and retry_after.isdigit() and 1 <= int(retry_after) <= window, reply.headers
    # draft-ietf-httpapi-ratelimit-headers-10: a Structured Fields list item, the policy name with parameters.
    assert reply.headers.get("ratelimit-policy") == f'"{policy_name}";q={quota};w={window}', reply.headers
    current = reply.headers.get("ratelimit")
    match = re.fullmatch(rf'"{policy_name}";r=(\d+);t=(\d+)', current or "")
    assert match, f"RateLimit field: {current!r}"
    assert int(match.group(1)) == 0 and 1 <= int(match.group(2)) <= window
    body = json.loads(reply.body)
    assert body["error"]["code"] == -32003, body
    assert body["id"] is None
    retry_ms = body["error"]["data"]["retry_after_ms"]
    assert isinstance(retry_ms, int) and 0 < retry_ms <= window * 1000, body
    assert policy_name in body["error"]["message"], body


def test_per_principal_limit_answers_429_with_ratelimit_headers(gateways: GatewayPool) -> None:
    # 3 requests at once, then one every 10 s: the fourth request in a burst is refused.
    gw = gateways.start(api_key_config({"per_principal": {"rate": 1, "per": "10s", "burst": 3}}))

    async def go() -> None:
        async with http_client() as client:
            alice = await open_session(client, gw.url, ALICE_KEY)  # initialize + initialized: 2
            ok = await post_raw(client, gw.url, echo(2), headers=keyed(ALICE_KEY, alice), request_id=2)
            assert ok.status == 200 and ok.result["content"][0]["text"] == "hi"
            refused = await post_raw(client, gw.url, echo(3), headers=keyed(ALICE_KEY, alice), request_id=3)
            assert_rate_limited_429(refused, "principal", quota=3, window=30)
            # Buckets are per principal: bob's requests are untouched by alice's.
            bob = await open_session(client, gw.url, BOB_KEY)
            ok = await post_raw(client, gw.url, echo(4, "bob"), headers=keyed(BOB_KEY, bob), request_id=4)
            assert ok.status == 200 and ok.result["content"][0]["text"] == "bob"
            # Keyed by principal across sessions: a new session of alice's is refused too.
            again = await post_raw(client, gw.url, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
                headers=keyed(ALICE_KEY), request_id=1)
            assert again.status == 429

    run(go())


def test_per_tenant_limit_is_shared_by_the_tenants_principals(gateways: GatewayPool) -> None:
    gw = gateways.start(api_key_config({"per_tenant": {"rate": 1, "per": "20s", "burst": 3}}))

    async def go() -> None:
        async with http_client() as client:
            await open_session(client, gw.url, ALICE_KEY)  # acme: 2 of 3
            bob = await open_session(client, gw.url, BOB_KEY, initialized=False)  # acme: 3 of 3
            refused = await post_raw(client, gw.url, echo(2), headers=keyed(BOB_KEY, bob), request_id=2)
            assert_rate_limited_429(refused, "tenant", quota=3, window=60)
            # Another tenant has its own bucket.
            carol = await open_session(client, gw.url, CAROL_KEY)
            ok = await post_raw(client, gw.url, echo(3, "carol"), headers=keyed(CAROL_KEY, carol), request_id=3)
            assert ok.status == 200 and ok.result["content"][0]["text"] == "carol"

    run(go())


def test_per_tool_limit_answers_jsonrpc_32003_and_is_audited(gateways: GatewayPool) -> None:
    cfg = make_config(backends={"diag": dict(BACKEND_DIAG)})
    cfg["limits"] = {"per_tool": [{"tool": "diag__ec*", "rate": 1, "per": "10s", "burst": 2}]}
    cfg["observability"]["audit"] = {"path": "audit.jsonl"}
    gw = gateways.start(cfg)

    async def go() -> None:
        async with http_client() as client:
            first = await initialize(client, gw.url)
            for text in ("one", "two"):
                rep = await first.call("diag__echo", {"text": text})
                assert rep.status == 200 and rep.text() == text
            refused = await first.call("diag__echo", {"text": "three"})
            assert refused.status == 200, "a per-tool refusal inside a session is a JSON-RPC error, not an HTTP status"
            error = refused.error
            assert error["code"] == -32003, error
            assert 0 < error["data"]["retry_after_ms"] <= 10_000, error
            assert error["data"]["tool"] == "diag__echo"
            assert "diag__echo" in error["message"] and "limits.per_tool[0]" in error["message"], error
            # Tools the rule does not match are not limited.
            rep = await first.call("diag__sleep", {"ms": 0})
            assert rep.status == 200 and "error" not in rep.response
            # The bucket belongs to the principal, not the session.
            second = await initialize(client, gw.url)
            again = await second.call("diag__echo", {"text": "four"})
            assert again.error["code"] == -32003

    run(go())
    path = gw.workdir / "audit.jsonl"
    deadline = time.monotonic() + 5
    records: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        records = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        if len(records) >= 5:
            break
        time.sleep(0.05)
    outcomes = [(r["tool"], r["outcome"]) for r in records]
    assert outcomes == [
        ("diag__echo", "ok"), ("diag__echo", "ok"), ("diag__echo", "rejected"), ("diag__sleep", "ok"), ("diag__echo", "rejected"),
    ], outcomes


def test_max_inflight_sheds_with_503(gateways: GatewayPool) -> None:
    cfg = make_config(backends={"diag": dict(BACKEND_DIAG)})
    cfg["limits"] = {"max_inflight": 2}
    gw = gateways.start(cfg)

    async def go() -> None:
        async with http_client() as client:
            s = await initialize(client, gw.url)
            holders = [asyncio.create_task(s.call("diag__sleep", {"ms": 2500})) for _ in range(2)]
            await asyncio.sleep(0.8)
            shed = await s.request("ping")
            assert shed.status == 503, f"expected 503 while 2 sleeps hold both places, got {shed.status}"
            assert shed.headers.get("retry-after") == "1"
            body = json.loads(shed.body)
            assert "limits.max_inflight" in body["error"]["message"], body
            for rep in await asyncio.gather(*holders):
                assert rep.status == 200 and "error" not in rep.response, rep.response
            # The places are free again.
            rep = await s.request("ping")
            assert rep.status == 200 and rep.result == {}

    run(go())


def test_backend_saturation_and_queue_time_counts_toward_call_timeout(gateways: GatewayPool) -> None:
    cfg = make_config(backends={
        "diag": dict(BACKEND_DIAG, max_concurrency=1, queue=1),
        "slow": dict(BACKEND_DIAG, max_concurrency=1, queue=4, call_timeout="1s"),
    })
    gw = gateways.start(cfg)

    async def go() -> None:
        async with http_client() as client:
            s = await initialize(client, gw.url)
            running = asyncio.create_task(s.call("diag__sleep", {"ms": 1500}))
            await asyncio.sleep(0.3)
            queued = asyncio.create_task(s.call("diag__sleep", {"ms": 100}))
            await asyncio.sleep(0.3)
            rejected = await s.call("diag__sleep", {"ms": 100})
            assert rejected.status == 200
            error = rejected.error
            assert error["code"] == -32001, error
            assert "saturated" in error["message"] and "diag" in error["message"], error
            for rep in await asyncio.gather(running, queued):
                assert "error" not in rep.response, rep.response

            # 900 ms running, then the queued call starts with 100 ms of its 1 s left: it times out although its
            # own 500 ms would have fitted in a fresh call_timeout.
            first = asyncio.create_task(s.call("slow__sleep", {"ms": 900}))
            await asyncio.sleep(0.05)
            second = await s.call("slow__sleep", {"ms": 500})
            assert second.error["code"] == -32004, second.response
            assert "error" not in (await first).response

    run(go())


def test_queued_calls_are_served_fairly_across_sessions(gateways: GatewayPool) -> None:
    """One session queues five calls behind max_concurrency 1; another session's single call runs next,
    not after all five (round-robin between per-session queues)."""
    gw = gateways.start(make_config(backends={"diag": dict(BACKEND_DIAG, max_concurrency=1, queue=10)}))

    async def go() -> None:
        async with http_client() as client:
            greedy = await initialize(client, gw.url)
            polite = await initialize(client, gw.url)
            loop = asyncio.get_running_loop()
            started = loop.time()
            finished: dict[str, float] = {}

            async def call(session, name: str) -> None:
                rep = await session.call("diag__sleep", {"ms": 400})
                assert "error" not in rep.response, rep.response
                finished[name] = loop.time() - started

            tasks = []
            for index in range(5):
                tasks.append(asyncio.create_task(call(greedy, f"greedy-{index}")))
                await asyncio.sleep(0.03)
            tasks.append(asyncio.create_task(call(polite, "polite")))
            await asyncio.gather(*tasks)
            # Served in the order greedy-0, greedy-1, polite, greedy-2…: polite ends around 1.2 s, the last
            # greedy call around 2.4 s. A single FIFO would finish polite last.
            assert finished["polite"] < finished["greedy-3"] < finished["greedy-4"], finished
            assert finished["polite"] < 1.9, finished

    run(go())


def test_backends_added_by_reload_get_their_concurrency_gate(gateways: GatewayPool) -> None:
    """SIGHUP adds a backend with max_concurrency 1 and no queue: its second concurrent call is refused as
    saturated, so the added backend is behind a gate (and a breaker) like the ones present at start."""
    gw = gateways.start(make_config(backends={"diag": dict(BACKEND_DIAG)}))

    async def go() -> None:
        async with http_client() as client:
            s = await initialize(client, gw.url)
            mark = gw.mark()
            added = make_config(backends={"diag": dict(BACKEND_DIAG), "narrow": dict(BACKEND_DIAG, max_concurrency=1, queue=0)})
            gw.config_path.write_text(to_yaml(added) + "\n")
            os.kill(gw.pid, signal.SIGHUP)
            deadline = time.monotonic() + 10
            names: list[str] = []
            while time.monotonic() < deadline and "narrow__sleep" not in names:
                await asyncio.sleep(0.1)
                names = [t["name"] for t in (await s.request("tools/list")).result["tools"]]
            assert "narrow__sleep" in names, f"the added backend is not served after SIGHUP: {names}\n{gw.stderr_tail(10)}"
            assert gw.find_log(lambda r: "reload" in str(r.get("msg", "")).lower(), mark)
            running = asyncio.create_task(s.call("narrow__sleep", {"ms": 800}))
            await asyncio.sleep(0.3)
            refused = await s.call("narrow__sleep", {"ms": 10})
            assert refused.error["code"] == -32001 and "saturated" in refused.error["message"], refused.response
            assert "error" not in (await running).response

    run(go())


def flaky_config(tmp: Path, open_for: str = "1500ms") -> dict[str, Any]:
    backend = {
        "type": "stdio",
        "command": [PYTHON, str(FLAKY), str(tmp / "mode"), str(tmp / "calls")],
        "call_timeout": "5s",
        "circuit_breaker": {"failure_ratio": 0.5, "min_calls": 4, "open_for": open_for},
    }
    return make_config(backends={"flaky": backend, "example": dict(BACKEND_EXAMPLE, circuit_breaker={"failure_ratio": 0.5, "min_calls": 2})})


def backend_calls(tmp: Path) -> int:
    path = tmp / "calls"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_circuit_opens_fails_fast_and_closes_after_a_probe(gateways: GatewayPool, tmp_path: Path) -> None:
    (tmp_path / "mode").write_text("fail")
    gw = gateways.start(flaky_config(tmp_path))

    async def go() -> None:
        async with http_client() as client:
            s = await initialize(client, gw.url)
            for _ in range(4):
                rep = await s.call("flaky__work", {})
                assert rep.error["code"] == -32603, rep.response
            assert backend_calls(tmp_path) == 4
            # Open: refused at once without reaching the backend, saying when it will retry.
            refused = await s.call("flaky__work", {})
            error = refused.error
            assert error["code"] == -32001, error
            assert re.search(r"circuit open for backend flaky.*retrying in \d+ s", error["message"]), error
            assert error["data"]["circuit"] == "open" and error["data"]["retry_after_ms"] > 0
            assert backend_calls(tmp_path) == 4
            assert gw.wait_log(lambda r: r.get("msg", "").startswith("circuit opened") and r.get("backend") == "flaky", timeout=5)

            # After open_for, one probe reaches the backend; it fails, so the circuit re-opens.
            await asyncio.sleep(1.7)
            probe = await s.call("flaky__work", {})
            assert probe.error["code"] == -32603, probe.response
            assert backend_calls(tmp_path) == 5
            assert (await s.call("flaky__work", {})).error["code"] == -32001
            assert backend_calls(tmp_path) == 5

            # The backend recovers: the next probe succeeds and closes the circuit.
            (tmp_path / "mode").write_text("ok")
            await asyncio.sleep(1.7)
            for _ in range(3):
                rep = await s.call("flaky__work", {})
                assert rep.text() == "worked"
            assert backend_calls(tmp_path) == 8
            assert gw.wait_log(lambda r: r.get("msg", "").startswith("circuit closed") and r.get("backend") == "flaky", timeout=5)

    run(go())


def test_tool_errors_never_open_the_circuit(gateways: GatewayPool, tmp_path: Path) -> None:
    gw = gateways.start(flaky_config(tmp_path))

    async def go() -> None:
        async with http_client() as client:
            s = await initialize(client, gw.url)
            for _ in range(6):
                rep = await s.call("example__fail", {})
                assert rep.result["isError"] is True
            rep = await s.call("example__echo", {"text": "still closed"})
            assert rep.text() == "still closed"

    run(go())
