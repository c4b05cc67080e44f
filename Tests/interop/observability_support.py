"""Shared by the observability tests: the deploy/ artefacts (alert rules, Grafana dashboards), the
metric names their PromQL expressions reference, and the Debian `prometheus` package's binaries
(installed by `make test-deps`)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import urllib.parse
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yaml"
ALERTS_TEST = REPO / "deploy" / "prometheus" / "alerts_test.yaml"
PROMETHEUS_EXAMPLE_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARDS = sorted((REPO / "deploy" / "grafana").glob("*.json"))
OPERATIONS_DOC = REPO / "docs" / "operations.md"

# Series Prometheus makes itself rather than scraping them from the gateway.
PROMETHEUS_SYNTHETIC = {"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds", "scrape_samples_scraped"}

_PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
    "quantile", "limitk", "limit_ratio", "inf", "nan", "atan2", "start", "end",
}


def debian_binary(name: str) -> str:
    """Path of a binary from Debian's `prometheus` package; fails with the command that installs it."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        pytest.fail(f"{name} not installed: run `make test-deps` (installs Debian's prometheus package)")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------
# Alert rules and dashboards
# ---------------------------------------------------------------------------


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def dashboards() -> list[tuple[str, dict[str, Any]]]:
    return [(path.name, json.loads(path.read_text())) for path in DASHBOARDS]


def _all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _all_panels(panel.get("panels", []))  # panels inside collapsed rows


def _datasource_type(ds: Any, variables: dict[str, str]) -> str | None:
    """The plugin type of a panel or target datasource: `{"type": ...}`, or a `${VAR}` naming a datasource variable."""
    if isinstance(ds, dict):
        if ds.get("type"):
            return ds["type"]
        ds = ds.get("uid")
    if isinstance(ds, str):
        name = ds.strip("${}")
        return variables.get(name)
    return None


def prometheus_targets(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every Prometheus target in the dashboard; Loki and other datasources are left out."""
    ds_variables = {
        v["name"]: v["query"] for v in dashboard.get("templating", {}).get("list", []) if v.get("type") == "datasource"
    }
    out = []
    for panel in _all_panels(dashboard.get("panels", [])):
        panel_type = _datasource_type(panel.get("datasource"), ds_variables)
        for target in panel.get("targets", []):
            kind = _datasource_type(target.get("datasource"), ds_variables) or panel_type
            if kind == "prometheus" and target.get("expr"):
                out.append((panel.get("title", "?"), target["expr"]))
    return out


def variable_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(variable name, query) of every Prometheus query variable."""
    out = []
    for v in dashboard.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v.get("query")
            out.append((v["name"], q.get("query") if isinstance(q, dict) else q))
    return out


def loki_targets(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    ds_variables = {
        v["name"]: v["query"] for v in dashboard.get("templating", {}).get("list", []) if v.get("type") == "datasource"
    }
    out = []
    for panel in _all_panels(dashboard.get("panels", [])):
        panel_type = _datasource_type(panel.get("datasource"), ds_variables)
        for target in panel.get("targets", []):
            if (_datasource_type(target.get("datasource"), ds_variables) or panel_type) == "loki":
                out.append((panel.get("title", "?"), target.get("expr", "")))
    return out


# ---------------------------------------------------------------------------
# PromQL
# ---------------------------------------------------------------------------


def metric_names_in_promql(expr: str) -> set[str]:
    """The metric names an expression selects. Strings, label matchers `{...}`, ranges `[...]`, grouping
    lists (`by (...)`, `on (...)`, ...), function names (an identifier before `(`), keywords and numbers are
    not metric names; what is left is. Grafana's `$var` and `${var}` sit inside matchers or ranges here."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^{}]*\}", " ", text)
    text = re.sub(r"\[[^\[\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", text)
    names = set()
    for m in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", text):
        name = m.group(0)
        rest = text[m.end():].lstrip()
        if rest.startswith("(") or name.lower() in _PROMQL_KEYWORDS:
            continue
        names.add(name)
    return names


def metric_names_in_label_values(query: str) -> set[str]:
    """`label_values(<selector>, <label>)` selects the metric in its selector; `label_values(<label>)` none."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*", query)
    if m:
        return metric_names_in_promql(m.group(1))
    if re.fullmatch(r"\s*label_values\(\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*", query):
        return set()
    return metric_names_in_promql(query)


def grafana_to_promql(expr: str) -> str:
    """A dashboard expression with Grafana's variables replaced, so Prometheus itself can run it."""
    replacements = {
        "$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m",
        "$job": ".*", "$instance": ".*", "$backend": ".*", "$tool": ".*",
    }
    for var, value in replacements.items():
        expr = expr.replace(var, value)
    assert "$" not in expr, f"unreplaced Grafana variable in {expr}"
    return expr


# ---------------------------------------------------------------------------
# Runbook anchors
# ---------------------------------------------------------------------------


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading: lower case, punctuation other than `-` and `_`
    dropped, spaces turned into `-`."""
    slug = heading.strip().lower()
    slug = re.sub(r"[^\w\- ]", "", slug)
    return slug.replace(" ", "-")


def runbook_anchors() -> dict[str, str]:
    """anchor -> heading for every `### ` heading under `## Alert runbook` in docs/operations.md."""
    anchors: dict[str, str] = {}
    in_runbook = False
    for line in OPERATIONS_DOC.read_text().splitlines():
        if line.startswith("## "):
            in_runbook = line[3:].strip() == "Alert runbook"
        elif in_runbook and line.startswith("### "):
            heading = line[4:].strip()
            anchors[github_anchor(heading)] = heading
    return anchors


def runbook_fragment(url: str) -> tuple[str, str]:
    """(document path, fragment) of a runbook_url."""
    parsed = urllib.parse.urlsplit(url)
    return parsed.path, parsed.fragment
