"""Logs (issue 6, item 4): the access line per JSON-RPC request, text format, and the level re-read on SIGHUP.

The JSON access line's fields and trace ids are also checked by test_metrics_export.py and test_tracing.py;
here: what the configuration changes at run time, against the real binary.
"""
from __future__ import annotations

import signal
import socket
import subprocess
import time
from typing import Any

import httpx

from conftest import GATEWAY, GatewayPool, gateway_env, http_client, initialize, make_config, run, to_yaml

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _config(level: str, *, fmt: str = "json", access: bool = True) -> dict[str, Any]:
    cfg = make_config(backends={"diag": {"type": "plugin", "plugin": "diagnostics"}})
    cfg["observability"] = {"log": {"format": fmt, "level": level, "access": access}}
    return cfg


async def _echo_calls(url: str, n: int, *, traceparent: str | None = None) -> None:
    async with http_client() as client:
        session = await initialize(client, url)
        for i in range(n):
            headers = session.headers(**({"traceparent": traceparent} if traceparent else {}))
            reply = await session.request("tools/call", {"name": "diag__echo", "arguments": {"text": f"t{i}"}}, headers=headers)
            assert reply.result["content"][0]["text"] == f"t{i}"


def _request_lines(gw, since: int, expected: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The access lines for tools/call since `since`, once `expected` arrived (a line is written just after its
    response is handed to the connection, so it can trail the client's read by a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [r for r in gw.logs()[since:] if r.get("msg") == "request" and r.get("method") == "tools/call"]
        if len(lines) >= expected or time.monotonic() >= deadline:
            return lines
        time.sleep(0.05)


def _metric(url: str, line_prefix: str) -> float:
    text = httpx.get(url.replace("/mcp", "/metrics"), timeout=5).text
    for line in text.splitlines():
        if line.startswith(line_prefix):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_prefix} not exported")


def test_access_line_per_request_with_outcome_duration_and_client_trace_id(gateways: GatewayPool) -> None:
    gw = gateways.start(_config("info"))
    mark = gw.mark()
    run(_echo_calls(gw.url, 3, traceparent=TRACEPARENT))
    lines = _request_lines(gw, mark, 3)
    assert len(lines) == 3, gw.stderr_tail()
    for line in lines:
        assert line["tool"] == "diag__echo" and line["backend"] == "diag"
        assert line["outcome"] == "ok"
        assert isinstance(line["duration_ms"], (int, float)) and line["duration_ms"] >= 0
        assert line["trace_id"] == TRACE_ID
        assert line["principal"] == "anonymous" and len(line["session"]) == 16
        assert line["level"] == "info" and line["service"] == "mcp-gateway"


def test_access_lines_can_be_turned_off(gateways: GatewayPool) -> None:
    gw = gateways.start(_config("info", access=False))
    mark = gw.mark()
    run(_echo_calls(gw.url, 2))
    time.sleep(0.3)
    assert gw.find_log(lambda r: r.get("msg") == "request", since=mark) is None
    assert gw.find_log(lambda r: r.get("msg") == "session created", since=mark) is not None


def test_text_format_writes_readable_lines(tmp_path) -> None:
    port = free_port()
    cfg = _config("info", fmt="text")
    cfg["server"]["listen"] = f"127.0.0.1:{port}"
    config_path = tmp_path / "text.yaml"
    config_path.write_text(to_yaml(cfg) + "\n")
    stderr_path = tmp_path / "text.stderr.log"
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen([str(GATEWAY), "serve", "--config", str(config_path)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=stderr, env=gateway_env())
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, stderr_path.read_text()
                time.sleep(0.1)
            run(_echo_calls(f"http://127.0.0.1:{port}/mcp", 1))
            time.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
    lines = stderr_path.read_text().splitlines()
    assert all(not line.lstrip().startswith("{") for line in lines), lines[:3]
    request = [line for line in lines if " INFO request " in line]
    assert request, "\n".join(lines)
    assert "method=tools/call" in request[0] and "outcome=ok" in request[0] and "tool=diag__echo" in request[0]


def test_sighup_applies_a_new_level_and_keeps_the_running_one_for_an_invalid_file(gateways: GatewayPool) -> None:
    gw = gateways.start(_config("warning"))
    run(_echo_calls(gw.url, 1))
    time.sleep(0.3)
    assert gw.find_log(lambda r: r.get("msg") == "request") is None, "info lines at level warning"

    # A valid file: the new level applies without a restart.
    gw.config_path.write_text(to_yaml(_config("info")) + "\n")
    gw.proc.send_signal(signal.SIGHUP)
    assert gw.wait_log(lambda r: r.get("msg") == "configuration reloaded", timeout=10), gw.stderr_tail()
    mark = gw.mark()
    run(_echo_calls(gw.url, 2))
    assert len(_request_lines(gw, mark, 2)) == 2
    assert _metric(gw.url, 'mcp_config_reloads_total{outcome="ok"}') == 1

    # An invalid file: refused with its problem named, the running level stays, the gateway serves on.
    gw.config_path.write_text(to_yaml(_config("info")).replace("level: info", "level: loud") + "\n")
    mark = gw.mark()
    gw.proc.send_signal(signal.SIGHUP)
    refused = gw.wait_log(lambda r: r.get("msg", "").startswith("configuration reload refused"), timeout=10, since=mark)
    assert refused is not None, gw.stderr_tail()
    assert "observability.log.level" in refused["error"]
    mark = gw.mark()
    run(_echo_calls(gw.url, 1))
    assert len(_request_lines(gw, mark, 1)) == 1
    assert _metric(gw.url, 'mcp_config_reloads_total{outcome="invalid"}') == 1
    assert gw.proc.poll() is None
    time.sleep(0.1)
