"""`mcp-gateway stdio`: one local client on stdin/stdout, driven by the official SDK's stdio client.

The same catalog, validation and backends as over HTTP; stdout carries only MCP messages; the client's
EOF shuts the gateway and its backends down.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from conftest import BACKEND_DIAG, BACKEND_EXAMPLE, GATEWAY, gateway_env, make_config, pid_alive, require_binaries, run, to_yaml, wait_pid_gone

pytestmark = pytest.mark.timeout(90)


def write_config(tmp_path: Path) -> Path:
    cfg = make_config(backends={"diag": dict(BACKEND_DIAG), "example": dict(BACKEND_EXAMPLE)})
    f = tmp_path / "stdio.yaml"
    f.write_text(to_yaml(cfg) + "\n")
    return f


def test_sdk_stdio_client_lists_calls_and_validates(tmp_path: Path) -> None:
    require_binaries()
    cfg = write_config(tmp_path)
    params = StdioServerParameters(command=str(GATEWAY), args=["stdio", "--config", str(cfg)], env=gateway_env())

    async def go():
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                assert init.server_info.name == "mcp-gateway"
                names = [t.name for t in (await session.list_tools()).tools]
                assert "diag__echo" in names and "example__add" in names, names
                result = await session.call_tool("diag__echo", {"text": "over stdio"})
                assert result.content[0].text == "over stdio"
                result = await session.call_tool("example__add", {"a": 2, "b": 40})
                assert result.structured_content == {"sum": 42}
                result = await session.call_tool("example__weather", {"citty": "Oslo"})
                assert result.is_error is True and result.structured_content["error"] == "invalid_arguments"
                pid = int((await session.call_tool("example__pid", {})).content[0].text)
                return pid

    pid = run(go())
    assert wait_pid_gone(pid, 10), "the backend is stopped when the client goes away"


def test_stdout_carries_only_mcp_messages(tmp_path: Path) -> None:
    require_binaries()
    cfg = write_config(tmp_path)
    lines = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "example__noise", "arguments": {}}},
        {"jsonrpc": "2.0", "id": 3, "method": "no/such"},
    ]
    stdin = "\n".join(json.dumps(m) for m in lines) + "\n{not json\n"
    p = subprocess.run([str(GATEWAY), "stdio", "--config", str(cfg)], input=stdin, capture_output=True, text=True, timeout=30, env=gateway_env())
    assert p.returncode == 0, p.stderr[-2000:]
    out = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    by_id = {m.get("id"): m for m in out}
    assert by_id[1]["result"]["serverInfo"]["name"] == "mcp-gateway"
    assert by_id[2]["result"]["content"][0]["text"] == "ok", "the backend's non-JSON stdout line never reaches ours"
    assert by_id[3]["error"]["code"] == -32601
    assert any(m.get("error", {}).get("code") == -32700 and m.get("id") is None for m in out)
    assert "this line is not JSON" not in p.stdout
    assert "noise on stderr" in p.stderr, "backend stderr is re-logged on the gateway's stderr"


def test_a_refused_call_is_32005_naming_the_grant_in_stdio_mode(tmp_path: Path) -> None:
    """No HTTP status exists on stdio: a call without the backend's scopes is JSON-RPC -32005 naming them."""
    require_binaries()
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    cfg = make_config(backends={"diag": dict(BACKEND_DIAG), "files": dict(BACKEND_DIAG, access={"scopes": ["files:read"]})})
    cfg["auth"] = {"mode": "oauth", "oauth": {"issuer": "https://auth.example.com", "audience": "https://mcp.example.com/mcp", "jwks_file": str(jwks)}}
    f = tmp_path / "scoped.yaml"
    f.write_text(to_yaml(cfg) + "\n")
    lines = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "files__echo", "arguments": {"text": "x"}}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "diag__echo", "arguments": {"text": "open"}}},
    ]
    stdin = "\n".join(json.dumps(m) for m in lines) + "\n"
    p = subprocess.run([str(GATEWAY), "stdio", "--config", str(f)], input=stdin, capture_output=True, text=True, timeout=30, env=gateway_env())
    assert p.returncode == 0, p.stderr[-2000:]
    by_id = {m.get("id"): m for m in (json.loads(line) for line in p.stdout.splitlines() if line.strip())}
    assert by_id[2]["error"]["code"] == -32005 and "files:read" in by_id[2]["error"]["message"], by_id[2]
    assert by_id[3]["result"]["content"][0]["text"] == "open"
