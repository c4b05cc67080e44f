"""GET /metrics after a mixed workload, parsed with prometheus_client's exposition parser: every metric of
the interface contract that the workload exercises is there with the contract's labels and the values the
workload implies, the histograms have the documented buckets, and every metric that an alert rule
(deploy/prometheus/alerts.yaml) or a Grafana panel (deploy/grafana/*.json) selects is exported.

One gateway (diagnostics plugin + ExampleServer over stdio, an audit log, a per-tool rate limit) serves the
whole module; the workload runs once and the tests read the same scrape."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import (
    BACKEND_DIAG,
    BACKEND_EXAMPLE,
    LATEST,
    Gateway,
    GatewayPool,
    _stop_and_check,
    default_headers,
    http_client,
    initialize,
    make_config,
    post_raw,
    run,
)
from observability_support import (
    PROMETHEUS_SYNTHETIC,
    alert_rules,
    dashboards,
    loki_targets,
    metric_names_in_label_values,
    metric_names_in_promql,
    prometheus_targets,
    variable_queries,
)

pytestmark = pytest.mark.timeout(90)

# The contract's buckets (seconds), 100 µs to 60 s.
BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 2.5, 5, 10, 30, 60]
ECHO_OK = 3
CALL_TIMEOUT_S = 1


@dataclass
class Sample:
    name: str
    labels: dict[str, str]
    value: float


class Scrape:
    """One parsed /metrics exposition."""

    def __init__(self, text: str):
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = [Sample(s.name, dict(s.labels), s.value) for f in self.families.values() for s in f.samples]
        self.sample_names = {s.name for s in self.samples}

    def family_of(self, sample_name: str) -> Any:
        for fam in self.families.values():
            if any(s.name == sample_name for s in fam.samples):
                return fam
        return None

    def find(self, name: str, **labels: str) -> list[Sample]:
        return [s for s in self.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]

    def value(self, name: str, **labels: str) -> float:
        """The one sample with these labels (among others it may have)."""
        found = self.find(name, **labels)
        assert len(found) == 1, f"expected one {name}{labels}, found {len(found)}: {[s.labels for s in found]}"
        return found[0].value

    def total(self, name: str, **labels: str) -> float:
        return sum(s.value for s in self.find(name, **labels))

    def label_keys(self, name: str) -> set[frozenset[str]]:
        return {frozenset(s.labels) for s in self.find(name)}


@dataclass
class Workload:
    gateway: Gateway
    scrape: Scrape
    content_type: str
    catalog: set[str]
    audit_lines: int
    started: float


def metrics_config() -> dict[str, Any]:
    cfg = make_config(backends={"diag": dict(BACKEND_DIAG), "example": {**BACKEND_EXAMPLE, "call_timeout": f"{CALL_TIMEOUT_S}s"}})
    cfg["limits"] = {"per_tool": [{"tool": "example__pid", "rate": 1, "per": "1m", "burst": 1}]}
    cfg["observability"]["metrics"] = {"enabled": True, "path": "/metrics"}
    cfg["observability"]["audit"] = {"path": "audit.jsonl"}
    return cfg


async def mixed_workload(url: str) -> set[str]:
    """Every kind of traffic the metrics distinguish; returns the exposed tool names from tools/list."""
    async with http_client() as c:
        s = await initialize(c, url)
        listed = await s.request("tools/list", {})
        catalog = {t["name"] for t in listed.result["tools"]}

        # A validation failure, then the corrected call: one self-correction of diag__echo.
        bad = await s.call("diag__echo", {"txt": "hallucinated argument"})
        assert bad.result.get("isError") is True, bad.response
        for i in range(ECHO_OK):
            assert (await s.call("diag__echo", {"text": f"m{i}"})).text() == f"m{i}"

        failed = await s.call("diag__fail", {})
        assert failed.result.get("isError") is True, failed.response
        assert (await s.call("diag__no_such_tool", {})).error["code"] == -32602
        assert (await s.request("no/such_method", {})).error["code"] == -32601

        # A backend timeout, then a success of the same tool: one retry recovery of example__sleep.
        timed_out = await s.call("example__sleep", {"ms": CALL_TIMEOUT_S * 1000 + 700})
        assert timed_out.error["code"] == -32004, timed_out.response
        assert (await s.call("example__sleep", {"ms": 1})).status == 200

        await s.call("example__bad_output", {})
        assert (await s.call("example__pid", {})).status == 200
        limited = await s.call("example__pid", {})
        assert limited.error["code"] == -32003, limited.response

        # Session failures: an unknown id (404) and none at all (400).
        unknown = await c.post(url, json={"jsonrpc": "2.0", "id": 7, "method": "ping"},
                               headers=default_headers("no-such-session", LATEST))
        assert unknown.status_code == 404
        missing = await c.post(url, json={"jsonrpc": "2.0", "id": 8, "method": "tools/list"},
                               headers=default_headers(version=LATEST))
        assert missing.status_code == 400

        # A failed handshake, then a session that is opened and deleted (its duration is observed).
        broken = await post_raw(c, url, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}},
                                request_id=1)
        assert isinstance(broken.response, dict) and "error" in broken.response, broken.body[:300]
        short = await initialize(c, url)
        assert (await short.delete()).status_code in (200, 202, 204)
        return catalog


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workload]:
    workdir = tmp_path_factory.mktemp("metrics")
    pool = GatewayPool(workdir)
    started = time.time()
    gw = pool.start(metrics_config(), name="gw")
    try:
        catalog = run(mixed_workload(gw.url))
        time.sleep(0.3)  # the session's DELETE and the last audit write settle
        with httpx.Client(timeout=10) as c:
            resp = c.get(f"{gw.base}/metrics")
        assert resp.status_code == 200, f"GET /metrics: HTTP {resp.status_code} {resp.text[:300]}"
        audit = gw.workdir / "audit.jsonl"
        lines = len([ln for ln in audit.read_text().splitlines() if ln.strip()]) if audit.exists() else 0
        yield Workload(gw, Scrape(resp.text), resp.headers.get("content-type", ""), catalog, lines, started)
    finally:
        _stop_and_check(pool)


def test_metrics_endpoint_serves_prometheus_text(workload: Workload) -> None:
    assert workload.content_type.startswith("text/plain"), workload.content_type
    assert "version=0.0.4" in workload.content_type, workload.content_type


def test_tool_calls_are_counted_per_backend_tool_and_outcome(workload: Workload) -> None:
    m = workload.scrape
    assert m.label_keys("mcp_tool_calls_total") == {frozenset({"backend", "tool", "outcome"})}
    assert m.value("mcp_tool_calls_total", backend="diag", tool="diag__echo", outcome="ok") == ECHO_OK
    assert m.value("mcp_tool_calls_total", backend="diag", tool="diag__echo", outcome="rejected") == 1
    assert m.value("mcp_tool_calls_total", backend="diag", tool="diag__fail", outcome="tool_error") == 1
    assert m.value("mcp_tool_calls_total", backend="example", tool="example__sleep", outcome="timeout") == 1
    assert m.value("mcp_tool_calls_total", backend="example", tool="example__sleep", outcome="ok") == 1
    assert m.value("mcp_tool_calls_total", backend="example", tool="example__pid", outcome="ok") == 1
    assert m.value("mcp_tool_calls_total", backend="example", tool="example__pid", outcome="rejected") == 1
    # The tool that does not exist is counted under "unknown", never under the name the client made up.
    assert m.total("mcp_tool_calls_total", backend="unknown", tool="unknown") == 1
    outcomes = {s.labels["outcome"] for s in m.find("mcp_tool_calls_total")}
    # The contract's outcomes, and cancelled (the client's notifications/cancelled: no response, neither ok nor an error).
    assert outcomes <= {"ok", "tool_error", "error", "timeout", "rejected", "cancelled"}, outcomes


def test_tool_labels_are_bounded_by_the_catalog(workload: Workload) -> None:
    allowed = workload.catalog | {"unknown"}
    for s in workload.scrape.samples:
        if "tool" in s.labels:
            assert s.labels["tool"] in allowed, f"{s.name} has tool label {s.labels['tool']!r} outside the catalog"
        if "backend" in s.labels:
            assert s.labels["backend"] in {"diag", "example", "unknown"}, f"{s.name} has backend {s.labels['backend']!r}"


def test_agent_layer_counters(workload: Workload) -> None:
    m = workload.scrape
    assert m.value("mcp_tool_param_validation_failures_total", backend="diag", tool="diag__echo") == 1
    assert m.value("mcp_tool_self_corrections_total", backend="diag", tool="diag__echo") == 1
    assert m.value("mcp_tool_retry_recoveries_total", backend="example", tool="example__sleep") == 1
    assert m.value("mcp_tool_output_schema_mismatches_total", backend="example", tool="example__bad_output") == 1
    for name in ("mcp_tool_param_validation_failures_total", "mcp_tool_self_corrections_total",
                 "mcp_tool_retry_recoveries_total", "mcp_tool_output_schema_mismatches_total"):
        assert m.label_keys(name) == {frozenset({"backend", "tool"})}, name


def test_tool_call_duration_histogram(workload: Workload) -> None:
    m = workload.scrape
    fam = m.family_of("mcp_tool_call_duration_seconds_bucket")
    assert fam is not None and fam.type == "histogram"
    buckets = m.find("mcp_tool_call_duration_seconds_bucket", backend="diag", tool="diag__echo")
    bounds = sorted(float(s.labels["le"]) for s in buckets)
    assert bounds[:-1] == BUCKETS and math.isinf(bounds[-1]), bounds
    counts = [s.value for s in sorted(buckets, key=lambda s: float(s.labels["le"]))]
    assert counts == sorted(counts), f"buckets are not cumulative: {counts}"
    count = m.value("mcp_tool_call_duration_seconds_count", backend="diag", tool="diag__echo")
    assert count >= ECHO_OK and counts[-1] == count
    # The timed-out call took at least call_timeout, so it sits above the 1 s bucket.
    sleep_le_1 = m.value("mcp_tool_call_duration_seconds_bucket", backend="example", tool="example__sleep", le=_le(m, 1))
    sleep_count = m.value("mcp_tool_call_duration_seconds_count", backend="example", tool="example__sleep")
    assert sleep_count == 2 and sleep_le_1 == 1, (sleep_le_1, sleep_count)
    assert m.value("mcp_tool_call_duration_seconds_sum", backend="example", tool="example__sleep") >= CALL_TIMEOUT_S


def _le(m: Scrape, bound: float) -> str:
    """The le label as the exposition spells it ("1" or "1.0")."""
    for s in m.find("mcp_tool_call_duration_seconds_bucket"):
        if s.labels["le"] != "+Inf" and float(s.labels["le"]) == bound:
            return s.labels["le"]
    raise AssertionError(f"no bucket le={bound}")


def test_every_histogram_has_the_contract_buckets(workload: Workload) -> None:
    m = workload.scrape
    for base in ("mcp_tool_call_duration_seconds", "mcp_http_request_duration_seconds", "mcp_session_duration_seconds"):
        fam = m.family_of(f"{base}_bucket")
        assert fam is not None and fam.type == "histogram", f"{base} is not exported as a histogram"
        by_series: dict[frozenset, list[float]] = {}
        for s in m.find(f"{base}_bucket"):
            key = frozenset((k, v) for k, v in s.labels.items() if k != "le")
            by_series.setdefault(key, []).append(float(s.labels["le"]))
        assert by_series, f"{base} has no buckets"
        for key, bounds in by_series.items():
            bounds.sort()
            assert bounds[:-1] == BUCKETS and math.isinf(bounds[-1]), f"{base}{dict(key)}: {bounds}"


def test_protocol_layer(workload: Workload) -> None:
    m = workload.scrape
    assert m.value("mcp_handshakes_total", outcome="ok") == 2
    assert m.value("mcp_handshakes_total", outcome="error") == 1
    assert m.value("mcp_sessions_total", transport="streamable_http") == 2
    assert m.value("mcp_sessions_active", transport="streamable_http") == 1
    assert m.value("mcp_session_failures_total", reason="not_found") == 1
    assert m.value("mcp_session_failures_total", reason="missing") == 1
    assert m.value("mcp_session_duration_seconds_count") == 1
    assert m.value("mcp_jsonrpc_errors_total", code="-32601", method="unknown") == 1
    assert m.value("mcp_jsonrpc_errors_total", code="-32004", method="tools/call") == 1
    assert m.value("mcp_jsonrpc_errors_total", code="-32003", method="tools/call") == 1
    assert m.total("mcp_jsonrpc_errors_total", code="-32602", method="tools/call") >= 1
    assert m.value("mcp_jsonrpc_errors_total", code="-32602", method="initialize") == 1
    assert m.label_keys("mcp_jsonrpc_errors_total") == {frozenset({"code", "method"})}
    assert m.value("mcp_http_requests_total", method="POST", status="404") >= 1
    assert m.value("mcp_http_requests_total", method="POST", status="400") >= 1
    # 15 POSTs in the first session (initialize and notifications/initialized included), 2 session failures,
    # the broken initialize, the second session's 2, and its DELETE.
    assert m.total("mcp_http_requests_total", method="POST") >= 20
    assert m.total("mcp_http_requests_total", method="DELETE") >= 1
    assert m.value("mcp_http_request_duration_seconds_count") >= 21


def test_backend_gauges_and_shedding(workload: Workload) -> None:
    m = workload.scrape
    for backend in ("diag", "example"):
        assert m.value("mcp_backend_up", backend=backend) == 1
        assert m.value("mcp_circuit_state", backend=backend) in (0, 1, 2)
        assert m.value("mcp_backend_inflight", backend=backend) == 0
        assert m.value("mcp_backend_queue_depth", backend=backend) == 0
        assert m.value("mcp_backend_restarts_total", backend=backend) == 0
    assert m.value("mcp_circuit_state", backend="diag") == 0
    assert m.value("mcp_requests_shed_total") == 0


def test_per_tool_rate_limit_refusals_are_counted(workload: Workload) -> None:
    """The second example__pid call was refused with -32003 by `limits.per_tool` (burst 1)."""
    m = workload.scrape
    assert m.value("mcp_rate_limited_total", scope="tool") == 1
    assert m.value("mcp_rate_limited_total", scope="principal") == 0


def test_audit_and_build_info(workload: Workload) -> None:
    m = workload.scrape
    assert workload.audit_lines > 0
    assert m.value("mcp_audit_records_total") == workload.audit_lines
    assert m.value("mcp_audit_write_failures_total") == 0
    assert "mcp_config_reloads_total" in m.sample_names
    (info,) = m.find("mcp_gateway_build_info")
    assert info.value == 1 and info.labels.get("version") and "revision" in info.labels, info


def test_process_metrics(workload: Workload) -> None:
    m = workload.scrape
    assert m.value("process_resident_memory_bytes") > 1_000_000
    assert m.value("process_virtual_memory_bytes") >= m.value("process_resident_memory_bytes")
    assert m.value("process_cpu_seconds_total") > 0
    assert 0 < m.value("process_open_fds") <= m.value("process_max_fds")
    assert workload.started - 5 <= m.value("process_start_time_seconds") <= time.time() + 1


def test_every_metric_in_alert_rules_and_dashboards_is_exported(workload: Workload) -> None:
    """Suffixes are checked as sample names: `x_bucket`, `x_count`, `x_sum` are a histogram's, `x_total` a counter's."""
    referenced: dict[str, set[str]] = {}
    for rule in alert_rules():
        for name in metric_names_in_promql(rule["expr"]):
            referenced.setdefault(name, set()).add(f"alert {rule['alert']}")
    for file, dash in dashboards():
        for title, expr in prometheus_targets(dash):
            for name in metric_names_in_promql(expr):
                referenced.setdefault(name, set()).add(f"{file}: {title}")
        for var, query in variable_queries(dash):
            for name in metric_names_in_label_values(query):
                referenced.setdefault(name, set()).add(f"{file}: variable {var}")
    assert len(referenced) > 20, sorted(referenced)
    exported = workload.scrape.sample_names
    missing = {name: sorted(where) for name, where in referenced.items()
               if name not in exported and name not in PROMETHEUS_SYNTHETIC}
    assert not missing, "referenced but not exported:\n" + "\n".join(f"  {n}: {w}" for n, w in sorted(missing.items()))
    for name in referenced:
        for suffix in ("_bucket", "_count", "_sum"):
            if name.endswith(suffix) and name in exported:
                fam = workload.scrape.family_of(name)
                assert fam.type in ("histogram", "summary"), f"{name} is selected as a histogram series but {fam.name} is a {fam.type}"


def test_metrics_reflect_later_traffic(workload: Workload) -> None:
    """The exposition is live: another echo moves the counter by exactly one."""
    async def one_more_echo() -> None:
        async with http_client() as c:
            s = await initialize(c, workload.gateway.url)
            assert (await s.call("diag__echo", {"text": "again"})).text() == "again"
            await s.delete()

    run(one_more_echo())
    with httpx.Client(timeout=10) as c:
        later = Scrape(c.get(f"{workload.gateway.base}/metrics").text)
    assert later.value("mcp_tool_calls_total", backend="diag", tool="diag__echo", outcome="ok") == ECHO_OK + 1


def test_access_lines_carry_what_the_debugging_dashboard_reads(workload: Workload) -> None:
    """The debugging dashboard's Loki panels filter `| json | msg="request" | duration_ms > $slow_ms` and show
    these fields of the gateway's access lines."""
    queries = [expr for _file, dash in dashboards() for _title, expr in loki_targets(dash)]
    assert queries and all('| json | msg="request"' in q for q in queries), queries
    lines = [r for r in workload.gateway.logs() if r.get("msg") == "request"]
    calls = [r for r in lines if r.get("method") == "tools/call"]
    assert len(calls) >= 12, f"{len(calls)} tools/call access lines"
    for rec in calls:
        for key in ("ts", "level", "service", "method", "outcome", "duration_ms", "principal", "session"):
            assert key in rec, f"access line without {key}: {rec}"
        assert isinstance(rec["duration_ms"], (int, float)), rec
    # Every call of a catalog tool names it (the made-up name of an unknown tool is left out).
    assert {r.get("tool") for r in calls} >= {"diag__echo", "diag__fail", "example__sleep", "example__pid"}
    timed_out = [r for r in calls if r.get("tool") == "example__sleep" and r.get("outcome") == "timeout"]
    assert len(timed_out) == 1 and timed_out[0]["duration_ms"] >= CALL_TIMEOUT_S * 1000, timed_out
    assert timed_out[0].get("backend") == "example"
