"""Fixtures and helpers for the interop suite.

Every test drives the REAL gateway binary (.build/debug/mcp-gateway) over loopback:
a fixture writes a YAML config into a temp dir, starts `mcp-gateway serve --config <tmp>`
with `listen: 127.0.0.1:0`, reads its JSON log lines on stderr until the `listening`
record names the port, yields the running gateway, and on teardown sends SIGTERM
(SIGKILL after 10 s) and asserts the process exited. The gateway's stderr goes to a file
so tests can assert on its log records.

Async code runs with `run(coro)` (asyncio.run) inside plain synchronous tests, so no
pytest async plugin is needed and pytest-timeout's signal method can interrupt it.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest
from httpx_sse import EventSource

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / ".build" / "debug"
# Overridable to test an installed build: MCP_GATEWAY_BIN, MCP_EXAMPLE_SERVER.
GATEWAY = Path(os.environ.get("MCP_GATEWAY_BIN") or BUILD / "mcp-gateway")
EXAMPLE_SERVER = Path(os.environ.get("MCP_EXAMPLE_SERVER") or BUILD / "ExampleServer")
_VENV_PY = REPO / ".venv" / "bin" / "python"
PYTHON = str(_VENV_PY if _VENV_PY.exists() else Path(sys.executable))

ACCEPT = "application/json, text/event-stream"
LATEST = "2025-11-25"
VERSIONS = ("2025-03-26", "2025-06-18", "2025-11-25")
ALLOWED_ORIGIN = "http://localhost:3000"

READY_TIMEOUT = 60.0
STOP_GRACE = 10.0


def run(coro):
    """Run a coroutine to completion from a synchronous test."""
    return asyncio.run(coro)


# ---------------------------------------------------------------------------
# Config generation
# ---------------------------------------------------------------------------


_PLAIN = re.compile(r"[A-Za-z/_][A-Za-z0-9_./-]*|[0-9]+(ms|s|m|h|KiB|MiB|GiB)")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        # Plain scalars where YAML reads them as strings (as a person writes `sse_keepalive: 1s`),
        # otherwise a JSON string, which is a valid double-quoted YAML scalar.
        if _PLAIN.fullmatch(v) and v.lower() not in _YAML_WORDS:
            return v
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_scalar(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k}: {_scalar(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot render {v!r} as YAML")


def to_yaml(obj: dict[str, Any], indent: int = 0) -> str:
    """Block-style YAML for nested dicts; leaves in flow style."""
    pad = "  " * indent
    out = []
    for k, v in obj.items():
        if isinstance(v, dict) and v and indent < 2:
            out.append(f"{pad}{k}:")
            out.append(to_yaml(v, indent + 1))
        else:
            out.append(f"{pad}{k}: {_scalar(v)}")
    return "\n".join(out)


BACKEND_DIAG = {"type": "plugin", "plugin": "diagnostics"}
BACKEND_EXAMPLE = {"type": "stdio", "command": ["${EXAMPLE_SERVER}"], "call_timeout": "3s"}
BACKEND_TIME = {
    "type": "stdio",
    "command": ["${PYTHON}", "-m", "mcp_server_time", "--local-timezone", "UTC"],
}
BACKEND_ISOLATED = {
    "type": "stdio",
    "command": ["${EXAMPLE_SERVER}"],
    "isolation": "session",
    "max_sessions": 3,
}


def base_config() -> dict[str, Any]:
    return {
        "server": {
            "listen": "127.0.0.1:0",
            "endpoint": "/mcp",
            "sse_keepalive": "1s",
            "allowed_origins": [ALLOWED_ORIGIN],
            "limits": {"max_body": "64KiB", "max_json_depth": 64},
        },
        "sessions": {"idle_timeout": "30m", "max": 1000},
        "tools": {"separator": "__"},
        "backends": {
            "diag": dict(BACKEND_DIAG),
            "example": dict(BACKEND_EXAMPLE),
            "time": dict(BACKEND_TIME),
            "isolated": dict(BACKEND_ISOLATED),
        },
        "observability": {"log": {"format": "json", "level": "info"}},
    }


def make_config(
    *,
    sessions: dict[str, Any] | None = None,
    backends: dict[str, Any] | None = None,
    server: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The standard test config with overrides (`backends` replaces the whole map)."""
    cfg = base_config()
    if sessions:
        cfg["sessions"].update(sessions)
    if server:
        cfg["server"].update(server)
    if backends is not None:
        cfg["backends"] = copy.deepcopy(backends)
    return cfg


def new_session_key() -> str:
    return secrets.token_hex(32)


def gateway_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["EXAMPLE_SERVER"] = str(EXAMPLE_SERVER)
    env["PYTHON"] = PYTHON
    env.pop("MCP_GATEWAY_CONFIG", None)
    if extra:
        env.update(extra)
    return env


# ---------------------------------------------------------------------------
# The gateway process
# ---------------------------------------------------------------------------


def require_binaries() -> None:
    if not GATEWAY.exists():
        pytest.fail(f"gateway binary missing: {GATEWAY} (run `swift build` first)")
    if not EXAMPLE_SERVER.exists():
        pytest.fail(f"ExampleServer binary missing: {EXAMPLE_SERVER} (run `swift build` first)")


class Gateway:
    """One `mcp-gateway serve` child process with its stderr captured in a file."""

    def __init__(self, workdir: Path, config: dict[str, Any] | str, name: str = "gw"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.config_path = self.workdir / f"{name}.yaml"
        text = config if isinstance(config, str) else to_yaml(config) + "\n"
        self.config_path.write_text(text)
        self.stderr_path = self.workdir / f"{name}.stderr.log"
        self.stdout_path = self.workdir / f"{name}.stdout.log"
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.killed = False
        self.expect_exit = False  # set by tests that stop the gateway themselves
        self.died: int | None = None  # exit code if it was already gone at teardown

    # -- lifecycle ---------------------------------------------------------
    def start(self, timeout: float = READY_TIMEOUT) -> "Gateway":
        require_binaries()
        self._stderr = open(self.stderr_path, "wb")
        self._stdout = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(
            [str(GATEWAY), "serve", "--config", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=self._stderr,
            cwd=self.workdir,
            env=gateway_env(),
            start_new_session=True,  # own process group: backends can be reaped after a SIGKILL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for rec in self.logs():
                if rec.get("msg") == "listening" and isinstance(rec.get("address"), str):
                    host, _, port = rec["address"].rpartition(":")
                    self.port = int(port)
                    return self
            if self.proc.poll() is not None:
                self.expect_exit = True  # reported here, not again at teardown
                raise AssertionError(
                    f"gateway exited with {self.proc.returncode} before listening; stderr:\n{self.stderr_tail()}"
                )
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"gateway did not log 'listening' within {timeout}s; stderr:\n{self.stderr_tail()}")

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after STOP_GRACE seconds. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None and not self.expect_exit and self.died is None:
            self.died = self.proc.returncode
        children = descendants(self.proc.pid) if self.proc.poll() is None else []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.killed = True
                self.proc.kill()
                self.proc.wait(5)
        # Reap anything the gateway left behind: its process group and its former children.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for pid, start in children:
            if _start_time(pid) == start:  # the same process, not a reused pid
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        for f in (getattr(self, "_stderr", None), getattr(self, "_stdout", None)):
            if f and not f.closed:
                f.close()
        return self.proc.returncode

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    # -- logs --------------------------------------------------------------
    def raw_log_lines(self) -> list[str]:
        try:
            data = self.stderr_path.read_bytes()
        except FileNotFoundError:
            return []
        text = data.decode("utf-8", errors="replace")
        lines = text.split("\n")
        if lines and not text.endswith("\n"):
            lines = lines[:-1]  # a partially written last line
        return [ln for ln in lines if ln.strip()]

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for ln in self.raw_log_lines():
            try:
                rec = json.loads(ln)
            except ValueError:
                rec = {"_raw": ln}
            if not isinstance(rec, dict):
                rec = {"_raw": ln}
            out.append(rec)
        return out

    def mark(self) -> int:
        """Number of log lines so far; pass as `since` to look only at later records."""
        return len(self.raw_log_lines())

    def find_log(self, pred: Callable[[dict[str, Any]], bool], since: int = 0) -> dict[str, Any] | None:
        for rec in self.logs()[since:]:
            try:
                if pred(rec):
                    return rec
            except Exception:
                continue
        return None

    def wait_log(
        self, pred: Callable[[dict[str, Any]], bool], timeout: float = 5.0, since: int = 0
    ) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            rec = self.find_log(pred, since)
            if rec is not None or time.monotonic() >= deadline:
                return rec
            time.sleep(0.05)

    def stderr_tail(self, n: int = 40) -> str:
        return "\n".join(self.raw_log_lines()[-n:])


@dataclass
class GatewayPool:
    workdir: Path
    started: list[Gateway] = field(default_factory=list)

    def start(self, config: dict[str, Any] | str | None = None, name: str | None = None) -> Gateway:
        name = name or f"gw{len(self.started)}"
        gw = Gateway(self.workdir / name, config if config is not None else make_config(), name)
        self.started.append(gw)
        gw.start()
        return gw

    def stop_all(self) -> list[tuple[Gateway, int | None]]:
        return [(gw, gw.stop()) for gw in self.started]


def _stop_and_check(pool: GatewayPool) -> None:
    results = pool.stop_all()
    for gw, _rc in results:
        assert gw.proc is None or gw.proc.poll() is not None, f"gateway {gw.name} did not exit"
    for gw, _rc in results:
        assert gw.died is None, (
            f"gateway {gw.name} died during the test(s) with exit code {gw.died}; stderr tail:\n{gw.stderr_tail()}"
        )


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[GatewayPool]:
    """Start gateways with custom configs inside one test: `gateways.start(cfg)`."""
    pool = GatewayPool(tmp_path)
    yield pool
    _stop_and_check(pool)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One gateway with the standard config, shared by a test module."""
    pool = GatewayPool(tmp_path_factory.mktemp("gw"))
    gateway = pool.start(make_config(), name="module")
    yield gateway
    _stop_and_check(pool)


# ---------------------------------------------------------------------------
# Raw Streamable HTTP client
# ---------------------------------------------------------------------------


def default_headers(session: str | None = None, version: str | None = None) -> dict[str, str]:
    h = {"Content-Type": "application/json", "Accept": ACCEPT}
    if session is not None:
        h["Mcp-Session-Id"] = session
    if version is not None:
        h["MCP-Protocol-Version"] = version
    return h


def http_client(**kw: Any) -> httpx.AsyncClient:
    kw.setdefault("timeout", httpx.Timeout(30.0, connect=5.0))
    kw.setdefault("limits", httpx.Limits(max_connections=300, max_keepalive_connections=100))
    return httpx.AsyncClient(**kw)


@dataclass
class Reply:
    """A POST answer: HTTP status and headers, every JSON-RPC message in it, and the response."""

    status: int
    headers: httpx.Headers
    content_type: str
    body: bytes
    messages: list[Any]
    events: list[Any]  # httpx_sse.ServerSentEvent for SSE answers
    response: Any  # the JSON-RPC response for the request id (or the whole JSON body)

    @property
    def result(self) -> Any:
        assert isinstance(self.response, dict), f"no JSON-RPC response object: {self.body[:300]!r}"
        assert "result" in self.response, f"expected a result, got {self.response}"
        return self.response["result"]

    @property
    def error(self) -> dict[str, Any]:
        assert isinstance(self.response, dict), f"no JSON-RPC response object: {self.body[:300]!r}"
        assert "error" in self.response, f"expected an error, got {self.response}"
        return self.response["error"]

    def text(self) -> str:
        """The text of a tools/call result with exactly one text content."""
        res = self.result
        content = res.get("content")
        assert isinstance(content, list) and len(content) == 1, f"expected one content item: {res}"
        assert content[0].get("type") == "text", f"expected text content: {res}"
        return content[0]["text"]


async def post_raw(
    client: httpx.AsyncClient,
    url: str,
    body: Any = None,
    *,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    request_id: Any = None,
) -> Reply:
    """POST and collect the answer (JSON or SSE). For SSE, read until the response to
    `request_id` arrives (or the stream ends)."""
    if content is None:
        content = json.dumps(body).encode()
    hdrs = headers if headers is not None else default_headers()
    async with client.stream("POST", url, content=content, headers=hdrs) as resp:
        ctype = resp.headers.get("content-type", "")
        messages: list[Any] = []
        events: list[Any] = []
        response: Any = None
        if ctype.startswith("text/event-stream"):
            async for ev in EventSource(resp).aiter_sse():
                events.append(ev)
                if not ev.data:
                    continue  # priming event
                msg = json.loads(ev.data)
                messages.append(msg)
                if isinstance(msg, dict) and "method" not in msg and msg.get("id") == request_id:
                    response = msg
                    break
            raw = b""
        else:
            raw = await resp.aread()
            if raw and ctype.startswith("application/json"):
                response = json.loads(raw)
                messages.append(response)
            elif raw:
                try:
                    response = json.loads(raw)
                    messages.append(response)
                except ValueError:
                    pass
        return Reply(resp.status_code, resp.headers, ctype, raw, messages, events, response)


class Session:
    """A legacy-era session opened with a raw `initialize`."""

    def __init__(self, client: httpx.AsyncClient, url: str, sid: str, version: str, init: Reply):
        self.client = client
        self.url = url
        self.id = sid
        self.version = version
        self.init = init
        self._next = 100

    def headers(self, **extra: str) -> dict[str, str]:
        h = default_headers(self.id, self.version)
        h.update(extra)
        return h

    def next_id(self) -> int:
        self._next += 1
        return self._next

    async def request(
        self, method: str, params: dict[str, Any] | None = None, *, headers: dict[str, str] | None = None, rid: Any = None
    ) -> Reply:
        rid = self.next_id() if rid is None else rid
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        return await post_raw(self.client, self.url, msg, headers=headers or self.headers(), request_id=rid)

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> httpx.Response:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        return await self.client.post(self.url, json=msg, headers=self.headers())

    async def call(
        self, name: str, arguments: dict[str, Any] | None = None, *, progress_token: Any = None, rid: Any = None
    ) -> Reply:
        params: dict[str, Any] = {"name": name, "arguments": arguments or {}}
        if progress_token is not None:
            params["_meta"] = {"progressToken": progress_token}
        return await self.request("tools/call", params, rid=rid)

    async def delete(self) -> httpx.Response:
        return await self.client.delete(self.url, headers=self.headers())


async def initialize(
    client: httpx.AsyncClient,
    url: str,
    version: str = LATEST,
    *,
    headers: dict[str, str] | None = None,
    initialized: bool = True,
) -> Session:
    """POST initialize (+ notifications/initialized) and return the session; asserts success."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": "interop-tests", "version": "1.0"},
        },
    }
    rep = await post_raw(client, url, body, headers=headers or default_headers(), request_id=1)
    assert rep.status == 200, f"initialize: HTTP {rep.status} {rep.body[:300]!r}"
    sid = rep.headers.get("mcp-session-id")
    assert sid, f"initialize: no Mcp-Session-Id header ({dict(rep.headers)})"
    negotiated = rep.result["protocolVersion"]
    s = Session(client, url, sid, negotiated, rep)
    if initialized:
        r = await s.notify("notifications/initialized")
        assert r.status_code == 202, f"notifications/initialized: HTTP {r.status_code}"
    return s


async def assert_still_serving(url: str, text: str = "still-alive") -> None:
    """A fresh session's diag__echo works: the gateway keeps serving after bad input."""
    async with http_client() as c:
        s = await initialize(c, url)
        rep = await s.call("diag__echo", {"text": text})
        assert rep.status == 200, f"follow-up call: HTTP {rep.status}"
        assert rep.text() == text


def _start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (FileNotFoundError, IndexError, ValueError, ProcessLookupError):
        return None


def descendants(root: int) -> list[tuple[int, int | None]]:
    """(pid, start time) of every live descendant of `root`, from /proc."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            pp = parent_pid(int(entry))
            if pp is not None:
                parent[int(entry)] = pp
    out, frontier = [], {root}
    while frontier:
        nxt = {pid for pid, pp in parent.items() if pp in frontier}
        out.extend((pid, _start_time(pid)) for pid in nxt)
        frontier = nxt
    return out


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def parent_pid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def is_descendant(pid: int, ancestor: int) -> bool:
    """Whether `pid` is a (grand)child of `ancestor` (guards every os.kill in the tests)."""
    seen = 0
    while pid and pid > 1 and seen < 64:
        pp = parent_pid(pid)
        if pp == ancestor:
            return True
        if pp is None:
            return False
        pid, seen = pp, seen + 1
    return False


def wait_pid_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    return not pid_alive(pid)
