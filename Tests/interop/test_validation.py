"""Tool arguments validated by the gateway (issue: validation), end to end with the official SDK client.

A call whose arguments break the tool's inputSchema never reaches the backend: the client gets a tool result
with isError true naming every problem with its JSON path, the valid arguments, and the closest name for a
near miss; structuredContent carries the same as data.
"""

from __future__ import annotations

import json
import subprocess
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from conftest import (
    BACKEND_DIAG,
    BACKEND_EXAMPLE,
    GATEWAY,
    Gateway,
    GatewayPool,
    gateway_env,
    http_client,
    initialize,
    make_config,
    require_binaries,
    run,
    to_yaml,
)

pytestmark = pytest.mark.timeout(90)


@asynccontextmanager
async def sdk_session(url: str) -> AsyncIterator[ClientSession]:
    async with streamable_http_client(url) as (read, write):
        async with ClientSession(read, write, read_timeout_seconds=30) as session:
            await session.initialize()
            yield session


def validation_config(mode: str = "strict", **tools: Any) -> dict[str, Any]:
    cfg = make_config(backends={"diag": dict(BACKEND_DIAG), "example": dict(BACKEND_EXAMPLE)})
    cfg["tools"] = {"separator": "__", "validation": mode, **tools}
    return cfg


@pytest.fixture(scope="module")
def strict_gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    pool = GatewayPool(tmp_path_factory.mktemp("validation"))
    gw = pool.start(validation_config("strict"), name="strict")
    yield gw
    assert gw.stop() == 0


def problems_of(result) -> list[dict[str, Any]]:
    assert result.is_error is True, result
    data = result.structured_content
    assert data and data.get("error") == "invalid_arguments", result
    return data["problems"]


def text_of(result) -> str:
    assert result.content and result.content[0].type == "text", result
    return result.content[0].text


def test_unknown_argument_with_near_miss_suggestion(strict_gw: Gateway) -> None:
    async def go():
        async with sdk_session(strict_gw.url) as s:
            result = await s.call_tool("example__weather", {"citty": "Paris"})
            problems = problems_of(result)
            unknown = [p for p in problems if p["path"] == "/citty"]
            assert unknown and unknown[0]["suggestion"] == "city", problems
            assert any(p["path"] == "/city" and "missing" in p["message"] for p in problems), problems
            text = text_of(result)
            assert "/citty" in text and 'did you mean "city"' in text, text
            # The valid arguments, with their types and whether they are required.
            assert "city (string, required)" in text, text
            assert "unit (string, optional)" in text and "days (integer, optional)" in text, text
            args = {a["name"]: a for a in result.structured_content["arguments"]}
            assert args["city"]["required"] is True and args["days"]["type"] == "integer", args

    run(go())


def test_missing_required_argument(strict_gw: Gateway) -> None:
    async def go():
        async with sdk_session(strict_gw.url) as s:
            result = await s.call_tool("example__weather", {"unit": "celsius"})
            problems = problems_of(result)
            assert [p["path"] for p in problems] == ["/city"], problems
            assert problems[0]["keyword"] == "required", problems

    run(go())


def test_wrong_type(strict_gw: Gateway) -> None:
    async def go():
        async with sdk_session(strict_gw.url) as s:
            result = await s.call_tool("example__weather", {"city": "Oslo", "days": "three"})
            problems = problems_of(result)
            assert [(p["path"], p["keyword"]) for p in problems] == [("/days", "type")], problems
            assert "integer" in problems[0]["message"], problems

    run(go())


def test_enum_violation(strict_gw: Gateway) -> None:
    async def go():
        async with sdk_session(strict_gw.url) as s:
            result = await s.call_tool("example__weather", {"city": "Oslo", "unit": "kelvin"})
            problems = problems_of(result)
            assert [(p["path"], p["keyword"]) for p in problems] == [("/unit", "enum")], problems
            assert "celsius" in problems[0]["message"] and "fahrenheit" in problems[0]["message"], problems

    run(go())


def test_nested_path_and_pattern(strict_gw: Gateway) -> None:
    async def go():
        async with sdk_session(strict_gw.url) as s:
            result = await s.call_tool("example__weather", {"city": "Oslo", "address": {"zip": "ABCDE"}})
            problems = problems_of(result)
            assert [(p["path"], p["keyword"]) for p in problems] == [("/address/zip", "pattern")], problems
            result = await s.call_tool("example__weather", {"city": "Oslo", "address": {}})
            problems = problems_of(result)
            assert [p["path"] for p in problems] == ["/address/zip"], problems

    run(go())


def test_every_problem_is_named_at_once(strict_gw: Gateway) -> None:
    async def go():
        async with sdk_session(strict_gw.url) as s:
            result = await s.call_tool("example__weather", {"unit": "kelvin", "days": 0, "extra": True})
            paths = sorted(p["path"] for p in problems_of(result))
            assert paths == ["/city", "/days", "/extra", "/unit"], paths

    run(go())


def test_valid_arguments_reach_the_backend_unchanged(strict_gw: Gateway) -> None:
    arguments = {"city": "Zürich ✓", "unit": "celsius", "days": 7, "address": {"zip": "80331"}}

    async def go():
        async with sdk_session(strict_gw.url) as s:
            result = await s.call_tool("example__weather", arguments)
            assert result.is_error is not True, result
            assert json.loads(text_of(result)) == arguments
            assert result.structured_content == {"arguments": arguments}

    run(go())


def test_a_refused_call_never_reaches_the_backend(strict_gw: Gateway) -> None:
    async def go():
        async with sdk_session(strict_gw.url) as s:
            since = strict_gw.mark()
            result = await s.call_tool("diag__echo", {"txt": "x"})
            assert result.is_error is True
            assert problems_of(result)[0]["suggestion"] == "text"
            rec = strict_gw.wait_log(lambda r: r.get("msg", "").startswith("tool call refused"), since=since)
            assert rec is not None and rec.get("tool") == "diag__echo" and rec.get("outcome") == "rejected", rec
            # The argument's value never appears in the log line.
            assert '"x"' not in json.dumps(rec)

    run(go())


def test_lenient_lets_undeclared_arguments_through(gateways: GatewayPool) -> None:
    gw = gateways.start(validation_config("lenient"), name="lenient")

    async def go():
        async with sdk_session(gw.url) as s:
            result = await s.call_tool("example__weather", {"city": "Oslo", "mood": "sunny"})
            assert result.is_error is not True, result
            assert json.loads(text_of(result)) == {"city": "Oslo", "mood": "sunny"}
            # The schema's own word still holds.
            result = await s.call_tool("example__weather", {"city": "Oslo", "days": 99})
            assert [p["path"] for p in problems_of(result)] == ["/days"]

    run(go())


def test_off_passes_everything_to_the_backend(gateways: GatewayPool) -> None:
    gw = gateways.start(validation_config("off"), name="off")

    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            rep = await s.call("example__weather", {"days": "many"})
            assert rep.result.get("isError") is not True, rep.response
            assert json.loads(rep.result["content"][0]["text"]) == {"days": "many"}

    run(go())


def test_output_schema_mismatch_is_logged_and_passed_unchanged(strict_gw: Gateway) -> None:
    async def go():
        async with http_client() as c:
            s = await initialize(c, strict_gw.url)
            since = strict_gw.mark()
            rep = await s.call("example__bad_output", {})
            assert rep.result["structuredContent"] == {"sum": "not a number"}, rep.response
            rec = strict_gw.wait_log(lambda r: "outputSchema" in r.get("msg", ""), since=since)
            assert rec is not None and rec.get("tool") == "example__bad_output", rec

    run(go())


def test_prefix_conditional_and_long_names(gateways: GatewayPool) -> None:
    long_backend = "b" * 60
    cfg = make_config(backends={
        "diag": dict(BACKEND_DIAG),
        "example": dict(BACKEND_EXAMPLE),
        long_backend: dict(BACKEND_DIAG),
    })
    cfg["tools"] = {"separator": "__", "prefix": "conditional", "validation": "strict"}
    gw = gateways.start(cfg, name="conditional")

    async def go():
        async with sdk_session(gw.url) as s:
            names = [t.name for t in (await s.list_tools()).tools]
            assert all(1 <= len(n) <= 64 for n in names), names
            assert all(set(n) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") for n in names), names
            # Unique to one backend: unprefixed. Listed by several: prefixed (and shortened when too long).
            assert "add" in names and "weather" in names, names
            assert "diag__echo" in names and "example__echo" in names, names
            shortened = [n for n in names if n.startswith("b" * 20)]
            assert len(shortened) == 4 and all(len(n) == 64 for n in shortened), shortened
            result = await s.call_tool("add", {"a": 1, "b": 2})
            assert result.structured_content == {"sum": 3}
            result = await s.call_tool(shortened[0], {"text": "long"} if "echo" in shortened[0] else {})
            assert result is not None

    run(go())
    rec = gw.find_log(lambda r: "shortened" in r.get("msg", ""))
    assert rec is not None and rec.get("original"), "the mapping of a shortened name is logged"


def test_include_and_exclude_globs(gateways: GatewayPool) -> None:
    example = dict(BACKEND_EXAMPLE, tools={"include": ["ec*", "a?d", "weather"], "exclude": ["echo"]})
    gw = gateways.start(make_config(backends={"example": example}), name="globs")

    async def go():
        async with sdk_session(gw.url) as s:
            names = sorted(t.name for t in (await s.list_tools()).tools)
            assert names == ["example__add", "example__weather"], names

    run(go())


def run_check(config: dict[str, Any], tmp_path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    require_binaries()
    f = tmp_path / "probe.yaml"
    f.write_text(to_yaml(config) + "\n")
    return subprocess.run(
        [str(GATEWAY), "check", "--config", str(f), "--probe"], stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=60, env=gateway_env(env),
    )


def test_check_probe_accepts_good_backends(tmp_path: Path) -> None:
    p = run_check(make_config(backends={"diag": dict(BACKEND_DIAG), "example": dict(BACKEND_EXAMPLE)}), tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "backends.example: ok" in p.stdout and "backends.diag: ok" in p.stdout, p.stdout


def test_check_probe_catches_a_broken_schema(tmp_path: Path) -> None:
    p = run_check(make_config(backends={"example": dict(BACKEND_EXAMPLE)}), tmp_path, env={"EXAMPLE_BROKEN_SCHEMA": "1"})
    assert p.returncode == 2, p.stdout + p.stderr
    line = next((ln for ln in p.stdout.splitlines() if "error" in ln and '"broken"' in ln), None)
    assert line is not None, p.stdout
    assert "backends.example" in line and "inputSchema" in line and "/properties/code/pattern" in line, line


def test_check_probe_reports_collisions_and_dead_backends(tmp_path: Path) -> None:
    cfg = make_config(backends={
        "one": dict(BACKEND_DIAG),
        "two": dict(BACKEND_DIAG),
        "ghost": {"type": "stdio", "command": ["/nonexistent/mcp-server"]},
    })
    cfg["tools"] = {"separator": "__", "prefix": "never"}
    p = run_check(cfg, tmp_path)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "collides" in p.stdout, p.stdout
    assert "backends.ghost: error: did not start" in p.stdout, p.stdout
