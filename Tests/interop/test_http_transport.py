"""Streamable HTTP transport rules on /mcp, driven with raw httpx against one gateway.

Every bad-input test ends with `assert_still_serving`: a fresh session's call succeeds.
"""

from __future__ import annotations

import asyncio
import json
import re
import time

import httpx
import pytest

from conftest import (
    ACCEPT,
    ALLOWED_ORIGIN,
    LATEST,
    VERSIONS,
    Gateway,
    assert_still_serving,
    default_headers,
    http_client,
    initialize,
    post_raw,
    run,
)

pytestmark = pytest.mark.timeout(60)

PING = {"jsonrpc": "2.0", "id": 7, "method": "ping"}


def init_body(version: str = LATEST, rid: int = 1) -> dict:
    return {
        "jsonrpc": "2.0",
        "id": rid,
        "method": "initialize",
        "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
    }


def tamper(sid: str) -> str:
    i = len(sid) // 2
    c = sid[i]
    repl = "A" if c != "A" else "B"
    return sid[:i] + repl + sid[i + 1 :]


# ---------------------------------------------------------------------------
# initialize and basic messages
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_initialize_echoes_supported_version(gw: Gateway, version: str) -> None:
    async def go():
        async with http_client() as c:
            rep = await post_raw(c, gw.url, init_body(version), request_id=1)
            assert rep.status == 200
            assert rep.content_type.startswith("application/json"), rep.content_type
            sid = rep.headers.get("mcp-session-id")
            assert sid, "no Mcp-Session-Id on the initialize response"
            assert all(0x21 <= ord(ch) <= 0x7E for ch in sid), f"session id has invalid characters: {sid!r}"
            assert rep.response["id"] == 1
            res = rep.result
            assert res["protocolVersion"] == version
            assert isinstance(res["serverInfo"]["name"], str) and res["serverInfo"]["name"]
            assert isinstance(res["serverInfo"]["version"], str)
            assert "tools" in res["capabilities"]

    run(go())


@pytest.mark.parametrize("requested", ["2099-01-01", "1999-12-31"])
def test_initialize_unknown_version_gets_latest(gw: Gateway, requested: str) -> None:
    async def go():
        async with http_client() as c:
            rep = await post_raw(c, gw.url, init_body(requested), request_id=1)
            assert rep.status == 200
            assert rep.result["protocolVersion"] == "2025-11-25"
            assert rep.headers.get("mcp-session-id")

    run(go())


def test_session_ids_are_unique(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            ids = {(await initialize(c, gw.url)).id for _ in range(5)}
            assert len(ids) == 5

    run(go())


def test_notification_and_response_posts_get_202_empty(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url, initialized=False)
            r = await s.notify("notifications/initialized")
            assert r.status_code == 202
            assert r.content == b""
            # A JSON-RPC response (to a server->client request) is also just accepted.
            r = await c.post(gw.url, json={"jsonrpc": "2.0", "id": "srv-1", "result": {}}, headers=s.headers())
            assert r.status_code == 202
            assert r.content == b""
            r = await s.notify("notifications/roots/list_changed")
            assert r.status_code == 202
            assert r.content == b""

    run(go())


def test_ping_returns_empty_result(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            rep = await s.request("ping", rid="ping-1")
            assert rep.status == 200
            assert rep.response["id"] == "ping-1"
            assert rep.result == {}

    run(go())


def test_unknown_method_is_32601_with_http_200(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            rep = await s.request("bogus/method", {}, rid=42)
            assert rep.status == 200
            assert rep.response["id"] == 42
            assert rep.error["code"] == -32601
        await assert_still_serving(gw.url)

    run(go())


def test_unknown_tool_suggests_closest_names(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            rep = await s.call("diag__ecko", {"text": "x"})
            assert rep.status == 200
            err = rep.error
            assert err["code"] == -32602
            assert "diag__echo" in err["message"], err
        await assert_still_serving(gw.url)

    run(go())


def test_tools_list_has_prefixed_names(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            rep = await s.request("tools/list", {})
            assert rep.status == 200
            tools = rep.result["tools"]
            names = {t["name"] for t in tools}
            expected = {
                "diag__echo", "diag__sleep", "diag__fail",
                "example__echo", "example__add", "example__sleep", "example__pid", "example__noise", "example__fail",
                "time__get_current_time", "time__convert_time",
            }
            assert expected <= names, f"missing: {sorted(expected - names)}"
            for t in tools:
                assert re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", t["name"]), t["name"]
                assert t["inputSchema"]["type"] == "object", t

    run(go())


# ---------------------------------------------------------------------------
# tools: diag plugin, example stdio, time
# ---------------------------------------------------------------------------


def test_diag_tools(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            rep = await s.call("diag__echo", {"text": "héllo \"quoted\" \n line"})
            assert rep.status == 200
            assert rep.content_type.startswith("application/json")
            assert rep.text() == "héllo \"quoted\" \n line"
            assert rep.result.get("isError") in (None, False)

            rep = await s.call("diag__sleep", {"ms": 50})
            assert rep.text() == "slept 50ms"

            rep = await s.call("diag__fail", {"message": "boom"})
            assert rep.status == 200
            assert rep.result["isError"] is True

    run(go())


def test_example_stdio_tools(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            rep = await s.call("example__echo", {"text": "from stdio"})
            assert rep.text() == "from stdio"
            rep = await s.call("example__add", {"a": 2, "b": 3})
            assert float(rep.text()) == 5
            assert rep.result["structuredContent"] == {"sum": 5}
            rep = await s.call("example__fail", {})
            assert rep.result["isError"] is True
            rep = await s.call("example__pid", {})
            assert int(rep.text()) > 1

    run(go())


def test_time_backend(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            rep = await s.call("time__get_current_time", {"timezone": "UTC"})
            assert rep.status == 200
            res = rep.result
            assert res.get("isError") in (None, False), res
            data = json.loads(res["content"][0]["text"])
            assert data["timezone"] == "UTC"
            assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", data["datetime"])

    run(go())


def test_progress_request_answers_with_sse(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            rep = await s.call("diag__sleep", {"ms": 400}, progress_token="tok-1", rid=555)
            assert rep.status == 200
            assert rep.content_type.startswith("text/event-stream"), rep.content_type
            data_events = [e for e in rep.events if e.data]
            assert data_events, "no SSE events"
            for e in data_events:
                assert e.event == "message", e
                assert e.id, f"SSE event without id: {e}"
            progress = [m for m in rep.messages if m.get("method") == "notifications/progress"]
            assert progress, f"no progress notifications before the response: {rep.messages}"
            values = [p["params"]["progress"] for p in progress]
            assert all(p["params"]["progressToken"] == "tok-1" for p in progress)
            assert values == sorted(values) and len(set(values)) == len(values), values
            assert rep.response["id"] == 555
            assert rep.text() == "slept 400ms"

    run(go())


def test_call_without_progress_token_is_json(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            rep = await s.call("diag__sleep", {"ms": 30})
            assert rep.content_type.startswith("application/json")
            assert rep.text() == "slept 30ms"

    run(go())


# ---------------------------------------------------------------------------
# session header rules
# ---------------------------------------------------------------------------


def test_missing_session_id_is_400(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            r = await c.post(gw.url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                             headers=default_headers(version=LATEST))
            assert r.status_code == 400
        await assert_still_serving(gw.url)

    run(go())


def test_unknown_and_tampered_session_ids_are_404(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            for sid in ("no-such-session", "0" * 64, tamper(s.id), s.id + "x", s.id[:-1]):
                r = await c.post(gw.url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                 headers=default_headers(sid, LATEST))
                assert r.status_code == 404, f"session id {sid!r}: HTTP {r.status_code}"
            # The genuine id still works.
            rep = await s.call("diag__echo", {"text": "genuine"})
            assert rep.text() == "genuine"
        await assert_still_serving(gw.url)

    run(go())


def test_session_header_name_is_case_insensitive(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            for name in ("MCP-Session-Id", "mcp-session-id"):
                h = {"Content-Type": "application/json", "Accept": ACCEPT, name: s.id, "MCP-Protocol-Version": s.version}
                rep = await post_raw(c, gw.url, PING, headers=h, request_id=7)
                assert rep.status == 200 and rep.result == {}

    run(go())


def test_delete_ends_session(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            r = await s.delete()
            assert r.status_code == 200
            r = await c.post(gw.url, json=PING, headers=s.headers())
            assert r.status_code == 404
            r = await s.delete()
            assert r.status_code == 404
        await assert_still_serving(gw.url)

    run(go())


# ---------------------------------------------------------------------------
# Origin, Accept, Content-Type, methods, size
# ---------------------------------------------------------------------------


def test_bad_origin_is_403(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            h = default_headers()
            h["Origin"] = "http://evil.example"
            r = await c.post(gw.url, json=init_body(), headers=h)
            assert r.status_code == 403
            s = await initialize(c, gw.url)
            r = await c.post(gw.url, json=PING, headers=s.headers(Origin="http://evil.example"))
            assert r.status_code == 403
            # The allow-listed origin is served.
            h = default_headers()
            h["Origin"] = ALLOWED_ORIGIN
            rep = await post_raw(c, gw.url, init_body(), headers=h, request_id=1)
            assert rep.status == 200
        await assert_still_serving(gw.url)

    run(go())


def test_absent_accept_is_fine(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            h = {"Content-Type": "application/json"}
            rep = await post_raw(c, gw.url, init_body(), headers=h, request_id=1)
            assert rep.status == 200
            sid = rep.headers["mcp-session-id"]
            h2 = {"Content-Type": "application/json", "Mcp-Session-Id": sid, "MCP-Protocol-Version": LATEST}
            body = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                    "params": {"name": "diag__echo", "arguments": {"text": "no accept"}}}
            rep = await post_raw(c, gw.url, body, headers=h2, request_id=2)
            assert rep.status == 200
            assert rep.text() == "no accept"

    run(go())


@pytest.mark.parametrize("accept", ["application/json", "text/event-stream", "text/html", "application/xml, text/plain"])
def test_accept_not_covering_both_is_406(gw: Gateway, accept: str) -> None:
    async def go():
        async with http_client() as c:
            h = {"Content-Type": "application/json", "Accept": accept}
            r = await c.post(gw.url, json=init_body(), headers=h)
            assert r.status_code == 406, f"Accept {accept!r}: HTTP {r.status_code}"
            s = await initialize(c, gw.url)
            r = await c.post(gw.url, json=PING, headers=s.headers(Accept=accept))
            assert r.status_code == 406
        await assert_still_serving(gw.url)

    run(go())


@pytest.mark.parametrize("accept", ["*/*", "application/*, text/*", "text/event-stream, application/json;q=0.9"])
def test_accept_wildcards_cover_both(gw: Gateway, accept: str) -> None:
    async def go():
        async with http_client() as c:
            h = {"Content-Type": "application/json", "Accept": accept}
            rep = await post_raw(c, gw.url, init_body(), headers=h, request_id=1)
            assert rep.status == 200, f"Accept {accept!r}: HTTP {rep.status}"

    run(go())


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "application/jsonx"])
def test_wrong_content_type_is_415(gw: Gateway, ctype: str) -> None:
    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            r = await c.post(gw.url, content=json.dumps(PING).encode(), headers=s.headers(**{"Content-Type": ctype}))
            assert r.status_code == 415, f"Content-Type {ctype!r}: HTTP {r.status_code}"
            # Missing Content-Type altogether.
            h = s.headers()
            del h["Content-Type"]
            r = await c.post(gw.url, content=json.dumps(PING).encode(), headers=h)
            assert r.status_code == 415
        await assert_still_serving(gw.url)

    run(go())


def test_content_type_with_charset_is_accepted(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            rep = await post_raw(c, gw.url, PING, headers=s.headers(**{"Content-Type": "application/json; charset=utf-8"}),
                                 request_id=7)
            assert rep.status == 200 and rep.result == {}

    run(go())


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_unsupported_methods_are_405_with_allow(gw: Gateway, method: str) -> None:
    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            r = await c.request(method, gw.url, content=json.dumps(PING).encode(), headers=s.headers())
            assert r.status_code == 405
            allow = {m.strip().upper() for m in r.headers.get("allow", "").split(",") if m.strip()}
            assert {"GET", "POST", "DELETE"} <= allow, f"Allow: {r.headers.get('allow')!r}"
        await assert_still_serving(gw.url)

    run(go())


def test_body_over_max_body_is_413(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            big = {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                   "params": {"name": "diag__echo", "arguments": {"text": "x" * (70 * 1024)}}}
            r = await c.post(gw.url, json=big, headers=s.headers())
            assert r.status_code == 413
            # Just under the limit is served.
            ok_text = "y" * (60 * 1024)
            rep = await s.call("diag__echo", {"text": ok_text})
            assert rep.status == 200 and rep.text() == ok_text
        await assert_still_serving(gw.url)

    run(go())


def test_body_over_max_body_chunked_is_413(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)

            async def chunks():
                yield b'{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"diag__echo","arguments":{"text":"'
                for _ in range(20):
                    yield b"z" * 8192
                yield b'"}}}'

            r = await c.post(gw.url, content=chunks(), headers=s.headers())
            assert r.status_code == 413
        await assert_still_serving(gw.url)

    run(go())


# ---------------------------------------------------------------------------
# MCP-Protocol-Version header
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["banana", "2025-13-45", "2024-01-01", "2099-01-01"])
def test_invalid_or_unsupported_protocol_version_header_is_400(gw: Gateway, value: str) -> None:
    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            r = await c.post(gw.url, json=PING, headers=s.headers(**{"MCP-Protocol-Version": value}))
            assert r.status_code == 400, f"MCP-Protocol-Version {value!r}: HTTP {r.status_code}"
        await assert_still_serving(gw.url)

    run(go())


def test_protocol_version_header_must_match_session(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url, "2025-11-25")
            r = await c.post(gw.url, json=PING, headers=s.headers(**{"MCP-Protocol-Version": "2025-06-18"}))
            assert r.status_code == 400
            s2 = await initialize(c, gw.url, "2025-06-18")
            r = await c.post(gw.url, json=PING, headers=s2.headers(**{"MCP-Protocol-Version": "2025-11-25"}))
            assert r.status_code == 400
            rep = await s2.request("ping", rid=3)
            assert rep.status == 200 and rep.result == {}
        await assert_still_serving(gw.url)

    run(go())


# ---------------------------------------------------------------------------
# JSON and JSON-RPC validity
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b'{"jsonrpc":', b"{not json}", b'{"jsonrpc":"2.0","id":1,"method":"ping"', b"\xff\xfe"])
def test_malformed_json_is_400_parse_error(gw: Gateway, raw: bytes) -> None:
    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            r = await c.post(gw.url, content=raw, headers=s.headers())
            assert r.status_code == 400
            body = r.json()
            assert body["jsonrpc"] == "2.0"
            assert body["error"]["code"] == -32700
            assert "id" in body and body["id"] is None
        await assert_still_serving(gw.url)

    run(go())


@pytest.mark.parametrize("raw", [b'{"foo":1}', b"[]", b"42", b'"str"', b"null",
                                 b'{"jsonrpc":"1.0","id":1,"method":"ping"}', b'{"jsonrpc":"2.0","id":1,"method":5}'])
def test_not_jsonrpc_is_400_invalid_request(gw: Gateway, raw: bytes) -> None:
    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            r = await c.post(gw.url, content=raw, headers=s.headers())
            assert r.status_code == 400, f"{raw!r}: HTTP {r.status_code}"
            body = r.json()
            assert body["error"]["code"] == -32600, body
        await assert_still_serving(gw.url)

    run(go())


def test_json_nesting_over_limit_is_400_naming_limit(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            deep = "[" * 100 + "]" * 100
            raw = ('{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"diag__echo",'
                   '"arguments":{"text":"d","extra":' + deep + "}}}").encode()
            r = await c.post(gw.url, content=raw, headers=s.headers())
            assert r.status_code == 400
            body = r.json()
            assert body["error"]["code"] == -32700
            assert "64" in body["error"]["message"], body
            # Moderate nesting inside the limit is fine (ping ignores params it does not know).
            ok = ('{"jsonrpc":"2.0","id":4,"method":"ping","params":{"_meta":{"x":' + "[" * 20 + "]" * 20 + "}}}").encode()
            rep = await post_raw(c, gw.url, content=ok, headers=s.headers(), request_id=4)
            assert rep.status == 200 and rep.result == {}
        await assert_still_serving(gw.url)

    run(go())


def test_batch_on_2025_03_26_session(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url, "2025-03-26")
            assert s.version == "2025-03-26"
            batch = [
                {"jsonrpc": "2.0", "id": "a", "method": "ping"},
                {"jsonrpc": "2.0", "id": "b", "method": "tools/call",
                 "params": {"name": "diag__echo", "arguments": {"text": "in a batch"}}},
                {"jsonrpc": "2.0", "method": "notifications/cancelled",
                 "params": {"requestId": "no-such-request", "reason": "test"}},
            ]
            r = await c.post(gw.url, json=batch, headers=s.headers())
            assert r.status_code == 200
            if r.headers.get("content-type", "").startswith("text/event-stream"):
                msgs = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:") and line[5:].strip()]
                flat = []
                for m in msgs:
                    flat.extend(m if isinstance(m, list) else [m])
                pytest.fail(f"expected a JSON array body, got SSE: {flat}")
            body = r.json()
            assert isinstance(body, list), body
            by_id = {m["id"]: m for m in body}
            assert set(by_id) == {"a", "b"}, body
            assert by_id["a"]["result"] == {}
            assert by_id["b"]["result"]["content"][0]["text"] == "in a batch"
        await assert_still_serving(gw.url)

    run(go())


@pytest.mark.parametrize("version", ["2025-06-18", "2025-11-25"])
def test_batch_rejected_after_2025_03_26(gw: Gateway, version: str) -> None:
    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url, version)
            batch = [{"jsonrpc": "2.0", "id": "a", "method": "ping"}, {"jsonrpc": "2.0", "id": "b", "method": "ping"}]
            r = await c.post(gw.url, json=batch, headers=s.headers())
            assert r.status_code == 400
            assert r.json()["error"]["code"] == -32600
        await assert_still_serving(gw.url)

    run(go())


# ---------------------------------------------------------------------------
# GET stream, ops endpoints
# ---------------------------------------------------------------------------


def test_get_stream_sends_keepalive_comments(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            h = {"Accept": "text/event-stream", "Mcp-Session-Id": s.id, "MCP-Protocol-Version": s.version}
            t0 = time.monotonic()
            async with c.stream("GET", gw.url, headers=h) as resp:
                assert resp.status_code == 200
                assert resp.headers["content-type"].startswith("text/event-stream")

                lines = resp.aiter_lines()

                async def comments(n: int) -> list[tuple[float, str]]:
                    got = []
                    while len(got) < n:
                        line = await lines.__anext__()
                        if line.startswith(":"):
                            got.append((time.monotonic() - t0, line))
                    return got

                # sse_keepalive is 1s: the first comment within 1.5 s (scheduling slack), the next
                # about 1 s later: they repeat while the stream is idle.
                first = await asyncio.wait_for(comments(1), timeout=1.5)
                assert first and first[0][0] < 1.5, first
                second = await asyncio.wait_for(comments(1), timeout=1.5)
                assert second, "keep-alive comments do not repeat"
            # The session is still usable while/after the stream.
            rep = await s.call("diag__echo", {"text": "after get"})
            assert rep.text() == "after get"

    run(go())


def test_get_without_session_is_400(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            r = await c.get(gw.url, headers={"Accept": "text/event-stream"})
            assert r.status_code == 400
            r = await c.get(gw.url, headers={"Accept": "text/event-stream", "Mcp-Session-Id": "nope",
                                             "MCP-Protocol-Version": LATEST})
            assert r.status_code == 404
        await assert_still_serving(gw.url)

    run(go())


def test_health_ready_version(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            r = await c.get(gw.base + "/healthz")
            assert r.status_code == 200
            r = await c.get(gw.base + "/readyz")
            assert r.status_code == 200
            r = await c.get(gw.base + "/version")
            assert r.status_code == 200
            v = r.json()
            assert isinstance(v["version"], str) and v["version"]
            assert {"2025-03-26", "2025-06-18", "2025-11-25"} <= set(v["protocol_versions"])

    run(go())


def test_unknown_path_is_404(gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            r = await c.post(gw.base + "/not-mcp", json=PING, headers=default_headers())
            assert r.status_code == 404
        await assert_still_serving(gw.url)

    run(go())


def test_garbage_http_does_not_break_server(gw: Gateway) -> None:
    async def go():
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(b"\x16\x03\x01\x02\x00garbage that is not HTTP\r\n\r\n")
        await writer.drain()
        try:
            await asyncio.wait_for(reader.read(1024), timeout=5)
        except (ConnectionError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()
        await assert_still_serving(gw.url)

    run(go())
