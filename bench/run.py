#!/usr/bin/env python3
"""mcp-gateway benchmark (`make bench`).

Uses the release binaries that `make bench` builds (.build/release/mcp-gateway and
.build/release/ExampleServer), Debian's wrk as the load generator and Debian's nginx as this
machine's HTTP ceiling. Everything runs on loopback, bounded in time, and every process it
starts is stopped by it.

Measures:
  * tools/call throughput (req/s) and p50/p99 latency for diag__echo (in-process plugin) and
    example__echo (stdio backend), and wrk against nginx serving a static JSON-RPC reply,
    at 1, 16 and 64 connections;
  * new-session cost: initialize + notifications/initialized pairs per second (c=16) and the
    mean pair latency (c=1);
  * idle-session memory: gateway RSS before and after 2000 idle sessions.

Every gateway reply is cross-checked (id and text derived from the id); any mismatch, non-200
or socket error makes the run fail (exit 1). Targets are printed next to the numbers; missing
one is reported, and fails the run only with --strict.

Standard library only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
RESULTS = BENCH / "results"
VERSION = "2025-11-25"
ACCEPT = "application/json, text/event-stream"

TARGET_INPROC_VS_NGINX = 0.50  # in-process echo rps at c=64 >= 50% of nginx
TARGET_STDIO_P50_EXTRA_US = 100  # stdio p50 <= in-process p50 + 100 µs
TARGET_STDIO_VS_INPROC = 0.70  # stdio rps >= 70% of in-process rps
TARGET_IDLE_SESSION_BYTES = 10 * 1024  # idle session <= 10 KiB
TARGET_SOAK_RSS_GROWTH = 8 * 2**20  # RSS growth over the soak (after warm-up)
TARGET_OBSERVABILITY_KEPT = 0.90  # throughput with metrics + tracing at sampling 0 >= 90% of both off


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port: int, path: str, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before serving")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            status = conn.getresponse().status
            conn.close()
            if status < 500:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"127.0.0.1:{port}{path} not serving after {timeout}s")


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 10.0) -> int | None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def child_pids(pid: int) -> list[int]:
    """Direct children of `pid` (the gateway's backend processes), from /proc."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            children.append(int(entry))
    return children


def resources(pid: int) -> dict:
    return {"rss": rss_bytes(pid), "fds": open_fds(pid), "children": len(child_pids(pid)), "t": time.monotonic()}


# ---------------------------------------------------------------------------
# A tiny MCP client on http.client (keep-alive, one connection)
# ---------------------------------------------------------------------------


class McpConn:
    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, body: dict, session: str | None = None) -> tuple[int, dict[str, str], bytes]:
        headers = {"Content-Type": "application/json", "Accept": ACCEPT}
        if session:
            headers["Mcp-Session-Id"] = session
            headers["MCP-Protocol-Version"] = VERSION
        self.conn.request("POST", "/mcp", body=json.dumps(body), headers=headers)
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data

    def new_session(self) -> str:
        status, headers, data = self.post(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}},
            }
        )
        if status != 200 or "mcp-session-id" not in headers:
            raise RuntimeError(f"initialize failed: HTTP {status} {data[:200]!r}")
        sid = headers["mcp-session-id"]
        status, _, data = self.post({"jsonrpc": "2.0", "method": "notifications/initialized"}, sid)
        if status != 202:
            raise RuntimeError(f"notifications/initialized: HTTP {status} {data[:200]!r}")
        return sid

    def echo(self, session: str, tool: str, text: str) -> None:
        status, _, data = self.post(
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": tool, "arguments": {"text": text}}},
            session,
        )
        if status != 200 or text.encode() not in data:
            raise RuntimeError(f"{tool} warm-up failed: HTTP {status} {data[:300]!r}")

    def close(self) -> None:
        self.conn.close()


# ---------------------------------------------------------------------------
# Processes under test
# ---------------------------------------------------------------------------


# The other nine fields of the diagnostics `form` tool's ten-property schema (text is the tenth).
FORM_FIELDS = ('"count":7,"ratio":0.5,"flag":true,"mode":"balanced","tags":["a","b","c"],'
               '"when":"2026-11-29T07:00:00Z","id":"abc-1234","note":"a short note",'
               '"owner":{"name":"ada","email":"ada@example.com"}')
TARGET_VALIDATION_US = 10.0  # argument validation per call, ten-property schema


def gateway_config(example: Path, validation: str = "strict", observability: str = "log: { format: json, level: warning }",
                   extra: str = "") -> str:
    return f"""server:
  listen: "127.0.0.1:0"
  endpoint: /mcp
  sse_keepalive: 15s
  limits: {{ max_body: 4MiB, max_json_depth: 64 }}
sessions:
  idle_timeout: 30m
  max: 1000000
tools:
  separator: "__"
  validation: {validation}
backends:
  diag: {{ type: plugin, plugin: diagnostics }}
  example: {{ type: stdio, command: [{json.dumps(str(example))}] }}
observability:
  {observability}
{extra}"""


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    port: int
    workdir: Path
    logs: list = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"


def listening_ports(pid: int) -> list[int]:
    """Loopback TCP ports a process listens on, from /proc (works at any log level)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except FileNotFoundError:
        return []
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "0A" and parts[9] in inodes:  # LISTEN
                        ports.append(int(parts[1].rsplit(":", 1)[1], 16))
        except FileNotFoundError:
            pass
    return ports


def logged_port(stderr_path: Path) -> int | None:
    """The port from the gateway's `listening` record, if it logged one (level info or lower)."""
    try:
        for line in stderr_path.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and rec.get("msg") == "listening" and isinstance(rec.get("address"), str):
                return int(rec["address"].rsplit(":", 1)[1])
    except FileNotFoundError:
        pass
    return None


def start_gateway(binary: Path, example: Path, workdir: Path, validation: str = "strict",
                  observability: str | None = None, name: str | None = None, extra: str = "") -> Server:
    workdir = workdir / f"gateway-{name or validation}"
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "gateway.yaml"
    cfg.write_text(gateway_config(example, validation, observability, extra) if observability else gateway_config(example, validation, extra=extra))
    err = open(workdir / "gateway.stderr.log", "wb")
    proc = subprocess.Popen(
        [str(binary), "serve", "--config", str(cfg)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=err,
        cwd=workdir,
        start_new_session=True,
    )
    srv = Server("gateway", proc, 0, workdir, [err])
    try:
        # listen is 127.0.0.1:0; at log level warning there may be no `listening` record,
        # so the bound port is also read from /proc.
        deadline = time.monotonic() + 30
        while not srv.port:
            if proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("gateway bound no port within 30 s")
            ports = listening_ports(proc.pid)
            srv.port = logged_port(workdir / "gateway.stderr.log") or (ports[0] if len(ports) == 1 else 0)
            for p in ports if not srv.port and len(ports) > 1 else []:
                try:
                    wait_http(p, "/healthz", 0.5, proc)
                    srv.port = p
                    break
                except RuntimeError:
                    pass
            if not srv.port:
                time.sleep(0.05)
        wait_http(srv.port, "/healthz", 30, proc)
    except Exception:
        stop_server(srv)
        tail = (workdir / "gateway.stderr.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"gateway did not start:\n{tail}")
    return srv


class OTLPSink:
    """A loopback OTLP/HTTP collector stand-in that accepts and discards span batches (counted), so the
    benchmark pays for span export without an outside service."""

    def __init__(self) -> None:
        import http.server
        import threading

        sink = self
        self.batches = 0
        self.bytes = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("content-length", 0))
                self.rfile.read(length)
                sink.batches += 1
                sink.bytes += length
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# Observability variants for the cost measurement (issue 6, item 8): the same gateway with everything off,
# metrics only, metrics + tracing at sampling 0 and 1, and the JSON access log on top of metrics.
def observability_variants(otlp_port: int) -> list[tuple[str, str]]:
    quiet = "log: { format: json, level: warning, access: false }"
    tracing = f'otlp_endpoint: "http://127.0.0.1:{otlp_port}"'
    return [
        ("off", f"{quiet}\n  metrics: {{ enabled: false }}"),
        ("metrics", f"{quiet}\n  metrics: {{ enabled: true }}"),
        ("metrics+tracing@0", f"{quiet}\n  metrics: {{ enabled: true }}\n  tracing: {{ {tracing}, sample_ratio: 0.0 }}"),
        ("metrics+tracing@1", f"{quiet}\n  metrics: {{ enabled: true }}\n  tracing: {{ {tracing}, sample_ratio: 1.0 }}"),
        ("metrics+access log", "log: { format: json, level: info, access: true }\n  metrics: { enabled: true }"),
    ]


# Limits on (a per-principal bucket and a per-tool rule, both far above the offered load, so every call is
# checked and none refused) against none; circuit breakers are always on and counted in both.
LIMITS_ON = """limits:
  per_principal: { rate: 1000000, per: 1s, burst: 1000000 }
  per_tool: [ { tool: "*__echo", rate: 1000000, per: 1s, burst: 1000000 } ]
  max_inflight: 4096
"""


def start_nginx(nginx: str, workdir: Path, workers: str) -> Server:
    port = free_port()
    prefix = workdir / "nginx"
    prefix.mkdir()
    conf = (BENCH / "nginx.conf.tmpl").read_text()
    conf = conf.replace("@PREFIX@", str(prefix)).replace("@PORT@", str(port)).replace("@WORKERS@", workers)
    (prefix / "nginx.conf").write_text(conf)
    err = open(prefix / "stderr.log", "wb")
    proc = subprocess.Popen(
        [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=err,
        cwd=prefix,
        start_new_session=True,
    )
    srv = Server("nginx", proc, port, prefix, [err])
    try:
        wait_http(port, "/mcp", 15, proc)
    except Exception:
        stop_server(srv, signal.SIGQUIT)
        raise RuntimeError("nginx did not start:\n" + (prefix / "error.log").read_text(errors="replace")[-2000:])
    return srv


def stop_server(srv: Server, sig: int = signal.SIGTERM) -> int | None:
    rc = stop_process(srv.proc, sig)
    try:  # children it left in its own process group (backends, nginx workers)
        os.killpg(srv.proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for f in srv.logs:
        f.close()
    return rc


# ---------------------------------------------------------------------------
# wrk
# ---------------------------------------------------------------------------


def run_wrk(wrk: str, script: Path, url: str, conns: int, duration: float, args: list[str]) -> dict:
    threads = 1 if conns < 2 else 2
    cmd = [wrk, f"-t{threads}", f"-c{conns}", f"-d{max(1, round(duration))}s", "--latency", "--timeout", "5s",
           "-s", str(script), url, "--", *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    for line in p.stdout.splitlines():
        if line.startswith("MCPBENCH "):
            res = json.loads(line[len("MCPBENCH "):])
            res["threads"] = threads
            res["connections"] = conns
            res["rps"] = res["requests"] / (res["duration_us"] / 1e6) if res["duration_us"] else 0.0
            return res
    raise RuntimeError(f"wrk produced no result (exit {p.returncode}):\n{p.stdout}\n{p.stderr}")


def socket_errors(r: dict) -> int:
    return sum(r.get(k, 0) for k in ("err_connect", "err_read", "err_write", "err_timeout"))


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def fmt_us(v: float) -> str:
    return f"{v:.0f} µs" if v < 10_000 else f"{v / 1000:.1f} ms"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=float(os.environ.get("BENCH_DURATION", 10)),
                    help="seconds per wrk run (default 10, env BENCH_DURATION)")
    ap.add_argument("--session-duration", type=float, default=5, help="seconds per new-session run (default 5)")
    ap.add_argument("--connections", default="1,16,64", help="comma-separated connection counts")
    ap.add_argument("--idle-sessions", type=int, default=2000)
    ap.add_argument("--warmup", type=float, default=2, help="seconds of wrk warm-up per target (0 = none)")
    ap.add_argument("--nginx-workers", default="1", help="nginx worker_processes (default 1; 'auto' for all cores)")
    ap.add_argument("--gateway", type=Path, default=REPO / ".build/release/mcp-gateway")
    ap.add_argument("--example", type=Path, default=REPO / ".build/release/ExampleServer")
    ap.add_argument("--micro", type=Path, default=REPO / ".build/release/gateway-bench",
                    help="the core micro-benchmark binary (argument validation cost)")
    ap.add_argument("--no-nginx", action="store_true", help="skip the nginx ceiling")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--soak", type=float, default=float(os.environ.get("BENCH_SOAK", 600)),
                    help="seconds of the soak run at moderate load (default 600; 0 = skip)")
    ap.add_argument("--soak-connections", type=int, default=4, help="connections during the soak (moderate load)")
    ap.add_argument("--cost-rounds", type=int, default=2, help="interleaved rounds of the observability-cost variants")
    ap.add_argument("--cost-connections", type=int, default=16, help="connections for the observability-cost runs")
    a = ap.parse_args()

    conns = [int(x) for x in a.connections.split(",") if x.strip()]
    a.gateway, a.example = a.gateway.resolve(), a.example.resolve()
    wrk = shutil.which("wrk")
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    for what, path in (("gateway", a.gateway), ("ExampleServer", a.example)):
        if not path.exists():
            log(f"{what} binary missing: {path} (run `swift build -c release`)")
            return 2
    if not wrk:
        log("wrk not found (make bench installs Debian's wrk)")
        return 2
    if not nginx and not a.no_nginx:
        log("nginx not found (make bench installs Debian's nginx); use --no-nginx to skip")
        return 2

    started = dt.datetime.now(dt.timezone.utc)
    work = Path(tempfile.mkdtemp(prefix="mcp-bench-"))
    call_script = BENCH / "mcp_call.lua"
    session_script = BENCH / "mcp_session.lua"
    rows: list[dict] = []
    failures: list[str] = []
    mem: dict = {}
    sess: dict = {}
    validation: dict = {}
    gw = None
    ng = None
    try:
        # ---- gateway: idle-session memory first, on a fresh process ----
        gw = start_gateway(a.gateway, a.example, work)
        log(f"gateway pid {gw.proc.pid} on :{gw.port}")
        c = McpConn(gw.port)
        bench_sid = c.new_session()
        for tool in ("diag__echo", "example__echo"):
            for i in range(50):
                c.echo(bench_sid, tool, f"warm{i}")
        time.sleep(0.5)
        rss0 = rss_bytes(gw.proc.pid)
        t0 = time.perf_counter()
        for _ in range(a.idle_sessions):
            c.new_session()
        t_create = time.perf_counter() - t0
        time.sleep(1.0)
        rss1 = rss_bytes(gw.proc.pid)
        c.close()
        mem = {
            "sessions": a.idle_sessions,
            "rss_before": rss0,
            "rss_after": rss1,
            "per_session": (rss1 - rss0) / a.idle_sessions,
            "python_pairs_per_s": a.idle_sessions / t_create,
            "python_pair_mean_us": t_create / a.idle_sessions * 1e6,
        }
        log(f"idle sessions: {mem['per_session']:.0f} B/session ({rss0 >> 20} -> {rss1 >> 20} MiB)")

        # ---- tools/call throughput ----
        targets = [("diag__echo", "in-process plugin"), ("example__echo", "stdio backend")]
        for tool, label in targets:
            if a.warmup > 0:
                run_wrk(wrk, call_script, gw.url, 16, a.warmup, ["verify", tool, bench_sid, VERSION])
            for n in conns:
                r = run_wrk(wrk, call_script, gw.url, n, a.duration, ["verify", tool, bench_sid, VERSION])
                r.update(target=tool, label=label)
                rows.append(r)
                log(f"{tool} c={n}: {r['rps']:.0f} req/s p50 {r['p50_us']} µs p99 {r['p99_us']} µs "
                    f"mismatches {r['mismatches']} non200 {r['non200']} socket errors {socket_errors(r)}")
                if r["mismatches"] or r["non200"] or socket_errors(r) or r["verified"] == 0:
                    failures.append(f"{tool} c={n}: {r['mismatches']} mismatches, {r['non200']} non-200, "
                                    f"{socket_errors(r)} socket errors, {r['verified']} verified replies")

        # ---- argument validation: a validated ten-field call, here (strict) and below with validation off ----
        form_args = ["verify", "diag__form", bench_sid, VERSION, FORM_FIELDS]
        validated = {}
        for n in [x for x in conns if x > 1] or conns:
            r = run_wrk(wrk, call_script, gw.url, n, a.duration, form_args)
            validated[n] = r
            log(f"diag__form strict c={n}: {r['rps']:.0f} req/s p50 {r['p50_us']} µs")
            if r["mismatches"] or r["non200"] or socket_errors(r) or r["verified"] == 0:
                failures.append(f"diag__form strict c={n}: {r['mismatches']} mismatches, {r['non200']} non-200")

        # ---- new-session cost (last: it leaves many sessions behind) ----
        lat = run_wrk(wrk, session_script, gw.url, 1, a.session_duration, [VERSION])
        thr = run_wrk(wrk, session_script, gw.url, 16, a.session_duration, [VERSION])
        sess = {
            "pairs_per_s": thr["pairs"] / (thr["duration_us"] / 1e6) if thr["duration_us"] else 0.0,
            "pair_mean_us": 2 * lat["mean_us"],
            "c1_pairs_per_s": lat["pairs"] / (lat["duration_us"] / 1e6) if lat["duration_us"] else 0.0,
            "failures": lat["failures"] + thr["failures"] + socket_errors(lat) + socket_errors(thr),
        }
        log(f"new sessions: {sess['pairs_per_s']:.0f} pairs/s at c=16, mean pair latency {sess['pair_mean_us']:.0f} µs")
        if sess["failures"] or thr["pairs"] == 0:
            failures.append(f"new-session runs: {sess['failures']} failures, {thr['pairs']} pairs")

        rc = stop_server(gw)
        gw = None
        if rc not in (0, None):
            failures.append(f"gateway exited with {rc} on SIGTERM")

        # ---- the same ten-field call with validation off, and the validator's own cost per call ----
        gw = start_gateway(a.gateway, a.example, work, validation="off")
        c = McpConn(gw.port)
        off_sid = c.new_session()
        c.close()
        unvalidated = {}
        for n in validated:
            r = run_wrk(wrk, call_script, gw.url, n, a.duration, ["verify", "diag__form", off_sid, VERSION, FORM_FIELDS])
            unvalidated[n] = r
            log(f"diag__form off c={n}: {r['rps']:.0f} req/s p50 {r['p50_us']} µs")
        stop_server(gw)
        gw = None
        micro = {}
        if a.micro.exists():
            m = subprocess.run([str(a.micro)], capture_output=True, text=True, timeout=300)
            if m.returncode == 0:
                micro = json.loads(m.stdout.strip().splitlines()[-1])
                log(f"validation per call: strict valid {micro['strict_valid_us']:.2f} µs, invalid {micro['strict_invalid_us']:.2f} µs")
            else:
                failures.append(f"gateway-bench failed: {m.stderr[-500:]}")
        validation = {"validated": validated, "off": unvalidated, "micro": micro}

        # ---- observability cost: interleaved rounds of each variant, same tool and connection count ----
        sink = OTLPSink()
        cost: dict = {"rounds": [], "spans_batches": 0}
        try:
            variants = observability_variants(sink.port)
            for round_index in range(a.cost_rounds):
                for name, obs in variants + [("metrics+limits", "log: { format: json, level: warning, access: false }\n  metrics: { enabled: true }")]:
                    gw = start_gateway(a.gateway, a.example, work, observability=obs, name=f"obs-{round_index}-{len(cost['rounds'])}",
                                       extra=LIMITS_ON if name == "metrics+limits" else "")
                    c = McpConn(gw.port)
                    sid = c.new_session()
                    c.close()
                    for tool in ("diag__echo", "example__echo"):
                        r = run_wrk(wrk, call_script, gw.url, a.cost_connections, a.duration, ["verify", tool, sid, VERSION])
                        cost["rounds"].append({"variant": name, "tool": tool, "round": round_index, "rps": r["rps"], "p50_us": r["p50_us"]})
                        log(f"observability {name} {tool} c={a.cost_connections}: {r['rps']:.0f} req/s p50 {r['p50_us']} µs")
                        if r["mismatches"] or r["non200"] or socket_errors(r) or r["verified"] == 0:
                            failures.append(f"observability {name} {tool}: {r['mismatches']} mismatches, {r['non200']} non-200")
                    stop_server(gw)
                    gw = None
        finally:
            cost["spans_batches"] = sink.batches
            cost["spans_bytes"] = sink.bytes
            sink.close()
        validation["observability"] = cost

        # ---- soak: moderate load for a while; RSS, fds and child processes must stay flat ----
        if a.soak > 0:
            gw = start_gateway(a.gateway, a.example, work, name="soak")
            c = McpConn(gw.port)
            sid = c.new_session()
            c.close()
            # Warm up first, so the start sample sees allocator pools and caches already grown.
            run_wrk(wrk, call_script, gw.url, a.soak_connections, min(10.0, a.soak / 10), ["verify", "example__echo", sid, VERSION])
            samples = [resources(gw.proc.pid)]
            calls = 0
            sessions_made = 0
            slice_seconds = min(60.0, a.soak)
            deadline = time.monotonic() + a.soak
            while time.monotonic() < deadline:
                length = max(1.0, min(slice_seconds, deadline - time.monotonic()))
                for tool in ("example__echo", "diag__echo"):
                    r = run_wrk(wrk, call_script, gw.url, a.soak_connections, length / 2, ["verify", tool, sid, VERSION])
                    calls += r["verified"]
                    if r["mismatches"] or r["non200"] or socket_errors(r):
                        failures.append(f"soak {tool}: {r['mismatches']} mismatches, {r['non200']} non-200, {socket_errors(r)} socket errors")
                # Session churn: new sessions that are deleted, so the table must not grow.
                c = McpConn(gw.port)
                for _ in range(50):
                    s_id = c.new_session()
                    c.conn.request("DELETE", "/mcp", headers={"Mcp-Session-Id": s_id, "MCP-Protocol-Version": VERSION})
                    c.conn.getresponse().read()
                    sessions_made += 1
                c.close()
                samples.append(resources(gw.proc.pid))
                log(f"soak: {samples[-1]['t'] - samples[0]['t']:.0f} s, RSS {samples[-1]['rss'] >> 20} MiB, "
                    f"fds {samples[-1]['fds']}, children {samples[-1]['children']}, {calls} calls")
            stop_server(gw)
            gw = None
            validation["soak"] = {"samples": samples, "calls": calls, "sessions": sessions_made, "connections": a.soak_connections}

        # ---- nginx ceiling ----
        if not a.no_nginx:
            ng = start_nginx(nginx, work, a.nginx_workers)
            log(f"nginx pid {ng.proc.pid} on :{ng.port}")
            if a.warmup > 0:
                run_wrk(wrk, call_script, ng.url, 16, a.warmup, ["static", "nginx", "-", VERSION])
            for n in conns:
                r = run_wrk(wrk, call_script, ng.url, n, a.duration, ["static", "nginx", "-", VERSION])
                r.update(target="nginx", label="static reply (ceiling)")
                rows.append(r)
                log(f"nginx c={n}: {r['rps']:.0f} req/s p50 {r['p50_us']} µs p99 {r['p99_us']} µs")
                if r["non200"] or r["mismatches"] or socket_errors(r):
                    failures.append(f"nginx c={n}: {r['non200']} non-200, {socket_errors(r)} socket errors")
            stop_server(ng, signal.SIGQUIT)
            ng = None
    except Exception as e:  # report what we have, then fail
        failures.append(f"benchmark aborted: {e}")
        log(f"error: {e}")
    finally:
        if gw is not None:
            stop_server(gw)
        if ng is not None:
            stop_server(ng, signal.SIGQUIT)

    report, missed = render(rows, mem, sess, failures, started, a, validation)
    print(report)
    a.results.mkdir(parents=True, exist_ok=True)
    out = a.results / (started.strftime("%Y%m%dT%H%M%SZ") + ".md")
    out.write_text(report + "\n")
    log(f"written {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    shutil.rmtree(work, ignore_errors=True)
    if failures:
        return 1
    if missed and a.strict:
        return 1
    return 0


def tool_version(cmd: list[str]) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return ((p.stdout or "") + (p.stderr or "")).strip().splitlines()[0]
    except Exception:
        return "?"


def render(rows, mem, sess, failures, started, a, validation=None) -> tuple[str, list[str]]:
    def row(target: str, n: int):
        return next((r for r in rows if r["target"] == target and r["connections"] == n), None)

    try:
        g = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        rev = g.stdout.strip() if g.returncode == 0 else "no commit"
        if g.returncode == 0 and subprocess.run(["git", "-C", str(REPO), "diff", "--quiet", "HEAD"]).returncode != 0:
            rev += " (with uncommitted changes)"
    except Exception:
        rev = "?"
    lines = [
        f"# mcp-gateway benchmark {started.strftime('%Y-%m-%d %H:%M:%SZ')}",
        "",
        f"- host: {platform.node()}, {os.cpu_count()} cores, {platform.platform()}",
        f"- git: {rev}; wrk: {tool_version(['wrk', '-v'])}; nginx: {tool_version(['nginx', '-v'])}",
        f"- {a.duration:g} s per run, threads 1 (c=1) or 2, tools/call with MCP-Protocol-Version {VERSION}, "
        f"every reply cross-checked (id and text)",
        "",
        "## tools/call",
        "",
        "| target | conns | req/s | p50 | p99 | mismatches | non-200 | socket errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['target']} ({r['label']}) | {r['connections']} | {r['rps']:.0f} | {fmt_us(r['p50_us'])} | "
            f"{fmt_us(r['p99_us'])} | {r['mismatches']} | {r['non200']} | {socket_errors(r)} |"
        )
    lines += ["", "## sessions", ""]
    if sess:
        lines.append(f"- new sessions (initialize + notifications/initialized): {sess['pairs_per_s']:.0f} pairs/s at c=16; "
                     f"mean pair latency {fmt_us(sess['pair_mean_us'])} at c=1 ({sess['c1_pairs_per_s']:.0f} pairs/s)")
    if mem:
        lines.append(f"- idle sessions: RSS {mem['rss_before'] / 2**20:.1f} MiB -> {mem['rss_after'] / 2**20:.1f} MiB "
                     f"for {mem['sessions']} sessions = {mem['per_session']:.0f} B/session "
                     f"(created at {mem['python_pairs_per_s']:.0f} pairs/s by one sequential Python client)")

    if validation:
        lines += ["", "## argument validation (diag__form, ten-property schema)", ""]
        micro = validation.get("micro") or {}
        if micro:
            lines.append(f"- validator per call (gateway-bench, {micro['iterations']} iterations): strict, valid arguments "
                         f"{micro['strict_valid_us']:.2f} µs; lenient, valid {micro['lenient_valid_us']:.2f} µs; "
                         f"strict, invalid (full error result built) {micro['strict_invalid_us']:.2f} µs")
        for n, r in sorted(validation.get("validated", {}).items()):
            off = validation.get("off", {}).get(n)
            if off:
                lines.append(f"- c={n}: validated {r['rps']:.0f} req/s (p50 {fmt_us(r['p50_us'])}) vs validation off "
                             f"{off['rps']:.0f} req/s (p50 {fmt_us(off['p50_us'])}): {r['rps'] / off['rps']:.0%}")

    cost = (validation or {}).get("observability") or {}
    cost_ratios: dict[str, float] = {}
    if cost.get("rounds"):
        lines += ["", f"## observability cost (c={a.cost_connections}, best of {a.cost_rounds} interleaved rounds)", "",
                  "| variant | diag__echo req/s | example__echo req/s | vs off (diag / example) |", "|---|---:|---:|---:|"]
        best: dict[tuple[str, str], float] = {}
        for r in cost["rounds"]:
            key = (r["variant"], r["tool"])
            best[key] = max(best.get(key, 0.0), r["rps"])
        variants = list(dict.fromkeys(r["variant"] for r in cost["rounds"]))
        for v in variants:
            d, e = best.get((v, "diag__echo"), 0.0), best.get((v, "example__echo"), 0.0)
            d0, e0 = best.get(("off", "diag__echo"), 0.0), best.get(("off", "example__echo"), 0.0)
            rd, re_ = (d / d0 if d0 else 0.0), (e / e0 if e0 else 0.0)
            cost_ratios[v] = min(rd, re_)
            lines.append(f"| {v} | {d:.0f} | {e:.0f} | {rd:.0%} / {re_:.0%} |")
        lines.append(f"- span batches received by the loopback OTLP sink: {cost.get('spans_batches', 0)} "
                     f"({cost.get('spans_bytes', 0) / 2**20:.1f} MiB)")

    soak = (validation or {}).get("soak") or {}
    if soak.get("samples"):
        first, last = soak["samples"][0], soak["samples"][-1]
        peak = max(x["rss"] for x in soak["samples"])
        lines += ["", f"## soak ({last['t'] - first['t']:.0f} s at c={soak['connections']}, {soak['calls']} calls, "
                      f"{soak['sessions']} sessions created and deleted)", "",
                  "| | start | end | peak |", "|---|---:|---:|---:|",
                  f"| RSS | {first['rss'] / 2**20:.1f} MiB | {last['rss'] / 2**20:.1f} MiB | {peak / 2**20:.1f} MiB |",
                  f"| open fds | {first['fds']} | {last['fds']} | {max(x['fds'] for x in soak['samples'])} |",
                  f"| child processes | {first['children']} | {last['children']} | {max(x['children'] for x in soak['samples'])} |"]

    lines += ["", "## targets", "", "| target | measured | goal | verdict |", "|---|---|---|---|"]
    missed: list[str] = []

    def target(name: str, measured: str, goal: str, ok: bool | None) -> None:
        v = "n/a" if ok is None else verdict(ok)
        if ok is False:
            missed.append(name)
        lines.append(f"| {name} | {measured} | {goal} | {v} |")

    ip64, ng64 = row("diag__echo", 64), row("nginx", 64)
    if ip64 and ng64 and ng64["rps"]:
        ratio = ip64["rps"] / ng64["rps"]
        target("in-process echo c=64 vs nginx", f"{ratio:.0%} ({ip64['rps']:.0f} / {ng64['rps']:.0f} req/s)",
               f">= {TARGET_INPROC_VS_NGINX:.0%}", ratio >= TARGET_INPROC_VS_NGINX)
    else:
        target("in-process echo c=64 vs nginx", "not measured", f">= {TARGET_INPROC_VS_NGINX:.0%}", None)
    for n in sorted({r["connections"] for r in rows}):
        ip, st = row("diag__echo", n), row("example__echo", n)
        if not (ip and st):
            continue
        extra = st["p50_us"] - ip["p50_us"]
        target(f"stdio p50 c={n}", f"{extra:+d} µs ({st['p50_us']} vs {ip['p50_us']} µs)",
               f"<= +{TARGET_STDIO_P50_EXTRA_US} µs", extra <= TARGET_STDIO_P50_EXTRA_US)
        ratio = st["rps"] / ip["rps"] if ip["rps"] else 0.0
        target(f"stdio throughput c={n}", f"{ratio:.0%} of in-process", f">= {TARGET_STDIO_VS_INPROC:.0%}",
               ratio >= TARGET_STDIO_VS_INPROC)
    micro = (validation or {}).get("micro") or {}
    if micro:
        target("argument validation per call (10 properties)", f"{micro['strict_valid_us']:.2f} µs",
               f"<= {TARGET_VALIDATION_US:g} µs", micro["strict_valid_us"] <= TARGET_VALIDATION_US)
    if "metrics+limits" in cost_ratios and "metrics" in cost_ratios and cost_ratios["metrics"]:
        kept = cost_ratios["metrics+limits"] / cost_ratios["metrics"]
        target("limits on vs off (breakers on in both)", f"{kept:.0%} of the throughput kept", ">= 90%", kept >= 0.90)
    if "metrics+tracing@0" in cost_ratios:
        kept = cost_ratios["metrics+tracing@0"]
        target("metrics + tracing at sampling 0 vs both off", f"{kept:.0%} of the throughput kept (worse of the two tools)",
               f">= {TARGET_OBSERVABILITY_KEPT:.0%}", kept >= TARGET_OBSERVABILITY_KEPT)
    if soak.get("samples"):
        first, last = soak["samples"][0], soak["samples"][-1]
        growth = last["rss"] - first["rss"]
        target("soak: RSS flat", f"{growth / 2**20:+.1f} MiB", f"<= +{TARGET_SOAK_RSS_GROWTH >> 20} MiB",
               growth <= TARGET_SOAK_RSS_GROWTH)
        target("soak: fds and child processes flat", f"fds {first['fds']} -> {last['fds']}, children {first['children']} -> {last['children']}",
               "unchanged", last["fds"] <= first["fds"] and last["children"] == first["children"])
    if mem:
        target("idle session memory", f"{mem['per_session']:.0f} B", f"<= {TARGET_IDLE_SESSION_BYTES} B",
               mem["per_session"] <= TARGET_IDLE_SESSION_BYTES)
    lines += ["", "## correctness", ""]
    if failures:
        lines += [f"- FAILED: {f}" for f in failures]
    else:
        lines.append("- every reply matched its request; no non-200 responses or socket errors")
    if missed:
        lines.append(f"- targets missed: {', '.join(missed)}")
    return "\n".join(lines), missed


if __name__ == "__main__":
    sys.exit(main())
