"""Command line (`check`, `version`), clean shutdown on SIGTERM, and the log format."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (
    BACKEND_DIAG,
    BACKEND_EXAMPLE,
    GATEWAY,
    STOP_GRACE,
    GatewayPool,
    gateway_env,
    http_client,
    initialize,
    make_config,
    require_binaries,
    run,
    to_yaml,
    wait_pid_gone,
)

pytestmark = pytest.mark.timeout(60)


def gateway_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    require_binaries()
    return subprocess.run(
        [str(GATEWAY), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=gateway_env(),
    )


def output(p: subprocess.CompletedProcess) -> str:
    return (p.stdout or "") + (p.stderr or "")


def line_of(text: str, needle: str) -> int:
    for i, ln in enumerate(text.splitlines(), 1):
        if needle in ln:
            return i
    raise AssertionError(f"{needle!r} not in config")


def test_check_accepts_good_config(tmp_path: Path) -> None:
    f = tmp_path / "good.yaml"
    f.write_text(to_yaml(make_config()) + "\n")
    p = gateway_cli("check", "--config", str(f))
    assert p.returncode == 0, output(p)


def test_check_unknown_key_names_line_and_suggestion(tmp_path: Path) -> None:
    f = tmp_path / "typo.yaml"
    text = to_yaml(make_config()) + "\nsever:\n  listen: \"127.0.0.1:9\"\n"
    f.write_text(text)
    line = line_of(text, "sever:")
    p = gateway_cli("check", "--config", str(f))
    out = output(p)
    assert p.returncode == 2, out
    pattern = re.escape(f"{f}:{line}: sever: unknown key") + r'.*did you mean "server"\?'
    assert re.search(pattern, out), f"expected {f}:{line}: sever: unknown key ... did you mean \"server\"?, got:\n{out}"


def test_check_bad_duration_names_key_path(tmp_path: Path) -> None:
    f = tmp_path / "duration.yaml"
    cfg = make_config(server={"sse_keepalive": "5 parsecs"})
    text = to_yaml(cfg) + "\n"
    f.write_text(text)
    line = line_of(text, "sse_keepalive:")
    p = gateway_cli("check", "--config", str(f))
    out = output(p)
    assert p.returncode == 2, out
    assert "server.sse_keepalive" in out, out
    assert f"{f}:{line}: server.sse_keepalive:" in out, out


def test_check_reports_every_problem(tmp_path: Path) -> None:
    f = tmp_path / "two.yaml"
    cfg = make_config(server={"sse_keepalive": "5 parsecs"})
    text = to_yaml(cfg) + "\nsever: {}\n"
    f.write_text(text)
    p = gateway_cli("check", "--config", str(f))
    out = output(p)
    assert p.returncode == 2, out
    assert "server.sse_keepalive" in out and "sever" in out, f"both problems should be listed:\n{out}"


def test_serve_with_bad_config_exits_2(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(to_yaml(make_config()) + "\nsever: {}\n")
    p = gateway_cli("serve", "--config", str(f), timeout=15)
    assert p.returncode == 2, output(p)


@pytest.mark.parametrize("args", [("version",), ("--version",)])
def test_version_prints_protocol_versions(args: tuple[str, ...]) -> None:
    p = gateway_cli(*args)
    out = output(p)
    assert p.returncode == 0, out
    for v in ("2025-03-26", "2025-06-18", "2025-11-25"):
        assert v in out, out


def test_sigterm_is_clean_and_stops_backends(gateways: GatewayPool) -> None:
    gw = gateways.start(make_config(backends={"diag": BACKEND_DIAG, "example": BACKEND_EXAMPLE}))

    async def go() -> int:
        async with http_client() as c:
            s = await initialize(c, gw.url)
            rep = await s.call("example__pid", {})
            return int(rep.text())

    child = run(go())
    gw.expect_exit = True
    t0 = time.monotonic()
    gw.proc.send_signal(signal.SIGTERM)
    try:
        rc = gw.proc.wait(STOP_GRACE)
    except subprocess.TimeoutExpired:
        pytest.fail(f"gateway did not exit within {STOP_GRACE}s of SIGTERM:\n{gw.stderr_tail()}")
    assert rc == 0, f"exit code {rc} after SIGTERM (expected 0, clean shutdown):\n{gw.stderr_tail()}"
    assert time.monotonic() - t0 < STOP_GRACE
    assert wait_pid_gone(child, 5.0), f"backend process {child} outlived the gateway"


def test_logs_are_json_lines_with_required_keys(gateways: GatewayPool) -> None:
    gw = gateways.start(make_config(backends={"diag": BACKEND_DIAG, "example": BACKEND_EXAMPLE}))

    async def go():
        async with http_client() as c:
            s = await initialize(c, gw.url)
            await s.call("example__noise", {})
            await s.call("diag__echo", {"text": "x"})
            await s.call("nope__nothing", {})

    run(go())
    time.sleep(0.3)
    lines = gw.raw_log_lines()
    assert lines
    ts_re = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
    for ln in lines:
        rec = json.loads(ln)  # every stderr line is one JSON object
        assert isinstance(rec, dict), ln
        for key in ("ts", "level", "msg", "service"):
            assert key in rec, f"log record without {key!r}: {ln}"
        assert ts_re.match(rec["ts"]), f"ts is not RFC 3339 UTC with ms: {rec['ts']!r}"
    assert any(r.get("backend") == "example" for r in gw.logs()), "no record names backend=example"
