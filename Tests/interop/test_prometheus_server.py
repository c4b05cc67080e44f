"""A real Prometheus server (Debian's package, installed by `make test-deps`) scrapes a live gateway every
second on loopback with alerts.yaml loaded; the test reads a counter back through Prometheus's HTTP API,
checks the alert groups loaded and evaluate cleanly, and runs every Grafana panel expression against the
scraped data so that none has a PromQL error."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import yaml

from conftest import BACKEND_DIAG, BACKEND_EXAMPLE, Gateway, GatewayPool, http_client, initialize, make_config, run
from observability_support import (
    ALERTS,
    dashboards,
    debian_binary,
    free_port,
    grafana_to_promql,
    prometheus_targets,
)

pytestmark = pytest.mark.timeout(120)

ECHO_CALLS = 7
READY_TIMEOUT = 30.0
QUERY_TIMEOUT = 30.0


class PrometheusServer:
    """`prometheus` on a free loopback port with its TSDB in a temp dir; always stopped by `stop()`."""

    def __init__(self, workdir: Path, scrape_target: str):
        self.workdir = workdir
        self.port = free_port()
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{
                "job_name": "mcp-gateway",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [scrape_target]}],
            }],
        }))
        self.log_path = workdir / "prometheus.log"
        self.proc: subprocess.Popen | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "PrometheusServer":
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [
                debian_binary("prometheus"),
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.workdir,
        )
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.api}/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus not ready within {READY_TIMEOUT}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""

    def query(self, expr: str) -> dict[str, Any]:
        resp = httpx.get(f"{self.api}/api/v1/query", params={"query": expr}, timeout=10)
        body = resp.json()
        assert resp.status_code == 200 and body.get("status") == "success", f"query {expr!r}: HTTP {resp.status_code} {body}"
        return body["data"]

    def wait_for_value(self, expr: str, expected: float, timeout: float = QUERY_TIMEOUT) -> float | None:
        """Polls an instant query until its single sample equals `expected`; returns the last value seen."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            result = self.query(expr)["result"]
            if len(result) == 1:
                last = float(result[0]["value"][1])
                if last == expected:
                    return last
            time.sleep(0.5)
        return last


@pytest.fixture
def scraped(gateways: GatewayPool, tmp_path: Path) -> Iterator[tuple[Gateway, PrometheusServer]]:
    cfg = make_config(backends={"diag": dict(BACKEND_DIAG), "example": dict(BACKEND_EXAMPLE)})
    cfg["observability"]["metrics"] = {"enabled": True, "path": "/metrics"}
    gw = gateways.start(cfg, name="scraped")
    prom_dir = tmp_path / "prometheus"
    prom_dir.mkdir()
    prom = PrometheusServer(prom_dir, f"127.0.0.1:{gw.port}")
    try:
        prom.start()
        yield gw, prom
    finally:
        prom.stop()
        assert prom.proc is None or prom.proc.poll() is not None, "prometheus did not exit"


async def echo_calls(url: str, n: int) -> None:
    async with http_client() as c:
        s = await initialize(c, url)
        for i in range(n):
            assert (await s.call("diag__echo", {"text": f"scrape-{i}"})).text() == f"scrape-{i}"
        await s.call("diag__fail", {})


def test_prometheus_scrapes_the_gateway_and_reads_the_counter_back(scraped: tuple[Gateway, PrometheusServer]) -> None:
    gw, prom = scraped
    run(echo_calls(gw.url, ECHO_CALLS))
    value = prom.wait_for_value('mcp_tool_calls_total{tool="diag__echo",outcome="ok"}', ECHO_CALLS)
    assert value == ECHO_CALLS, f"Prometheus read {value}, expected {ECHO_CALLS}; its log:\n{prom.log_tail()}"
    series = prom.query('mcp_tool_calls_total{tool="diag__echo",outcome="ok"}')["result"]
    assert series[0]["metric"]["job"] == "mcp-gateway"
    assert series[0]["metric"]["backend"] == "diag"
    assert prom.wait_for_value('up{job="mcp-gateway"}', 1) == 1
    assert prom.wait_for_value('sum(mcp_tool_calls_total{tool="diag__fail",outcome="tool_error"})', 1) == 1


def test_prometheus_loads_and_evaluates_the_alert_rules(scraped: tuple[Gateway, PrometheusServer]) -> None:
    gw, prom = scraped
    run(echo_calls(gw.url, 2))
    expected_groups = {g["name"]: {r["alert"] for r in g["rules"]} for g in yaml.safe_load(ALERTS.read_text())["groups"]}
    deadline = time.monotonic() + QUERY_TIMEOUT
    while True:
        body = httpx.get(f"{prom.api}/api/v1/rules", params={"type": "alert"}, timeout=10).json()
        assert body["status"] == "success", body
        groups = {g["name"]: g for g in body["data"]["groups"]}
        evaluated = all(r.get("health") == "ok" for g in groups.values() for r in g["rules"])
        if evaluated or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    assert set(groups) == set(expected_groups), f"loaded groups {sorted(groups)}"
    for name, alerts in expected_groups.items():
        loaded = {r["name"]: r for r in groups[name]["rules"]}
        assert set(loaded) == alerts, f"group {name}: {sorted(loaded)}"
        for rule in loaded.values():
            assert rule["health"] == "ok", f"{rule['name']}: health {rule['health']} {rule.get('lastError')}"
    # A healthy gateway under light load fires none of them.
    firing = [a for g in groups.values() for r in g["rules"] for a in r.get("alerts", []) if a.get("state") == "firing"]
    assert firing == [], json.dumps(firing, indent=1)


def test_every_dashboard_expression_runs_in_prometheus(scraped: tuple[Gateway, PrometheusServer]) -> None:
    gw, prom = scraped
    run(echo_calls(gw.url, 3))
    assert prom.wait_for_value('sum(mcp_tool_calls_total{tool="diag__echo",outcome="ok"})', 3) == 3
    time.sleep(2)  # a few more scrapes, so rates over 1m have two samples
    ran = 0
    for file, dash in dashboards():
        for title, expr in prometheus_targets(dash):
            data = prom.query(grafana_to_promql(expr))  # asserts status success: PromQL parses and evaluates
            assert data["resultType"] in ("vector", "scalar", "matrix"), (file, title)
            ran += 1
    assert ran > 40
    # And they see the data: the per-tool traffic panel has a series for diag__echo.
    rate = prom.query(grafana_to_promql(
        'sum by (tool) (rate(mcp_tool_calls_total{job=~"$job",instance=~"$instance",backend=~"$backend",tool=~"$tool"}[$__rate_interval]))'
    ))["result"]
    assert any(r["metric"].get("tool") == "diag__echo" for r in rate), rate
