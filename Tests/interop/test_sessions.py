"""Session lifecycle: cap and eviction, idle expiry, sealed ids shared between replicas."""

from __future__ import annotations

import asyncio
import time

import pytest

from conftest import (
    BACKEND_DIAG,
    BACKEND_EXAMPLE,
    GatewayPool,
    assert_still_serving,
    http_client,
    initialize,
    make_config,
    new_session_key,
    run,
)

pytestmark = pytest.mark.timeout(60)

DIAG_ONLY = {"diag": BACKEND_DIAG}


async def echo_status(session, text: str) -> tuple[int, str | None]:
    """(HTTP status, echoed text or None) of a diag__echo call on `session`."""
    rep = await session.call("diag__echo", {"text": text})
    if rep.status != 200:
        return rep.status, None
    return rep.status, rep.text()


def test_cap_evicts_oldest_idle_session(gateways: GatewayPool) -> None:
    gw = gateways.start(make_config(sessions={"max": 2}, backends=DIAG_ONLY))

    async def go():
        async with http_client() as c:
            s1 = await initialize(c, gw.url)
            assert await echo_status(s1, "one") == (200, "one")
            await asyncio.sleep(0.05)
            s2 = await initialize(c, gw.url)
            assert await echo_status(s2, "two") == (200, "two")
            await asyncio.sleep(0.05)
            s3 = await initialize(c, gw.url)  # asserts 200 + session id
            assert s3.id not in (s1.id, s2.id)
            status, _ = await echo_status(s1, "gone?")
            assert status == 404, "the oldest idle session should have been evicted"
            assert await echo_status(s2, "two again") == (200, "two again")
            assert await echo_status(s3, "three") == (200, "three")

    run(go())


def test_cap_with_busy_sessions_is_503_retry_after(gateways: GatewayPool) -> None:
    gw = gateways.start(make_config(sessions={"max": 2}, backends=DIAG_ONLY))

    async def go():
        async with http_client() as c:
            s1 = await initialize(c, gw.url)
            s2 = await initialize(c, gw.url)
            streams = []
            try:
                for s in (s1, s2):
                    h = {"Accept": "text/event-stream", "Mcp-Session-Id": s.id, "MCP-Protocol-Version": s.version}
                    cm = c.stream("GET", gw.url, headers=h)
                    resp = await cm.__aenter__()
                    streams.append(cm)
                    assert resp.status_code == 200
                await asyncio.sleep(0.2)
                body = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                                   "clientInfo": {"name": "third", "version": "0"}}}
                r = await c.post(gw.url, json=body,
                                 headers={"Content-Type": "application/json",
                                          "Accept": "application/json, text/event-stream"})
                assert r.status_code == 503, f"third initialize with two busy sessions: HTTP {r.status_code}"
                retry_after = r.headers.get("retry-after")
                assert retry_after is not None and retry_after.strip().isdigit(), f"Retry-After: {retry_after!r}"
                # Neither busy session was evicted.
                assert await echo_status(s1, "busy one") == (200, "busy one")
                assert await echo_status(s2, "busy two") == (200, "busy two")
            finally:
                for cm in streams:
                    await cm.__aexit__(None, None, None)

    run(go())


def test_idle_timeout_expires_session(gateways: GatewayPool) -> None:
    gw = gateways.start(make_config(sessions={"idle_timeout": "2s"}, backends=DIAG_ONLY))

    async def go():
        async with http_client() as c:
            s_idle = await initialize(c, gw.url)
            s_busy = await initialize(c, gw.url)
            assert await echo_status(s_idle, "fresh") == (200, "fresh")
            t_end = time.monotonic() + 3.2
            while time.monotonic() < t_end:  # keep s_busy in use meanwhile
                assert (await echo_status(s_busy, "tick"))[0] == 200
                await asyncio.sleep(0.5)
            status, _ = await echo_status(s_idle, "stale")
            assert status == 404, f"session idle for ~3 s with idle_timeout 2s: HTTP {status}"
            assert await echo_status(s_busy, "still here") == (200, "still here")
        await assert_still_serving(gw.url)

    run(go())


def test_replicas_sharing_keys_serve_each_others_sessions(gateways: GatewayPool) -> None:
    key = new_session_key()
    other = new_session_key()
    cfg_shared = make_config(sessions={"keys": [key]}, backends={"diag": BACKEND_DIAG, "example": BACKEND_EXAMPLE})
    cfg_other = make_config(sessions={"keys": [other]}, backends={"diag": BACKEND_DIAG, "example": BACKEND_EXAMPLE})
    a = gateways.start(cfg_shared, name="replica-a")
    b = gateways.start(cfg_shared, name="replica-b")
    c_gw = gateways.start(cfg_other, name="replica-c")

    async def go():
        async with http_client() as c:
            s = await initialize(c, a.url)
            s.url = b.url
            rep = await s.call("diag__echo", {"text": "served by B"})
            assert rep.status == 200, f"replica B with the same key: HTTP {rep.status}"
            assert rep.text() == "served by B"
            rep = await s.call("example__echo", {"text": "stdio on B"})
            assert rep.status == 200 and rep.text() == "stdio on B"
            s.url = c_gw.url
            rep = await s.call("diag__echo", {"text": "foreign"})
            assert rep.status == 404, f"replica C with another key: HTTP {rep.status}"
            s.url = a.url
            rep = await s.call("diag__echo", {"text": "back on A"})
            assert rep.status == 200 and rep.text() == "back on A"

    run(go())


def test_key_rotation_old_key_still_opens(gateways: GatewayPool) -> None:
    old, new = new_session_key(), new_session_key()
    a = gateways.start(make_config(sessions={"keys": [old]}, backends=DIAG_ONLY), name="old-key")
    b = gateways.start(make_config(sessions={"keys": [new, old]}, backends=DIAG_ONLY), name="rotated")

    async def go():
        async with http_client() as c:
            s = await initialize(c, a.url)
            s.url = b.url
            rep = await s.call("diag__echo", {"text": "rotated"})
            assert rep.status == 200, f"a session sealed with the second key: HTTP {rep.status}"
            assert rep.text() == "rotated"

    run(go())
