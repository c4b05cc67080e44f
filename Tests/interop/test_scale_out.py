"""Scale-out, proven with real processes: three replicas sharing `sessions.keys` behind Debian's nginx,
configured from the examples in deploy/nginx/ (rendered with this test's ports).

- round robin, no stickiness: every request of every session may land on any replica, and does;
- one replica SIGKILLed mid-run: calls in flight on it may fail, every call started after a short grace
  succeeds through the other two;
- sticky by `hash $http_mcp_session_id consistent` for `isolation: session` backends: each session keeps
  its one backend process.

nginx runs in the foreground (`daemon off`) with its own prefix, pid, logs and temp paths in the test's
temp dir, listening on loopback only, and is always stopped.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from conftest import (
    BACKEND_DIAG,
    BACKEND_EXAMPLE,
    REPO,
    Gateway,
    GatewayPool,
    Reply,
    Session,
    default_headers,
    http_client,
    initialize,
    is_descendant,
    make_config,
    new_session_key,
    run,
)

pytestmark = pytest.mark.timeout(180)

NGINX_EXAMPLES = REPO / "deploy" / "nginx"
REPLICAS = 3
# The session's tag in nginx's access log (the session id itself is a credential and is never logged).
TAG_HEADER = "X-Test-Session"


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if not found:
        pytest.fail("nginx not found: `make test` installs Debian's nginx (make test-deps)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------
# Rendering the deploy/nginx examples
# ---------------------------------------------------------------------------

_UPSTREAM_SERVER = re.compile(r"^(\s*server\s+)\d+\.\d+\.\d+\.\d+:\d+", re.M)
_LISTEN = re.compile(r"^(\s*listen\s+)80;", re.M)
_ACCESS_LOG = re.compile(r"^(\s*access_log\s+)\S+\s+mcp_upstream;", re.M)


def render_example(name: str, upstream_ports: list[int], listen_port: int, access_log: Path) -> str:
    """The example with this test's replicas, loopback port and access log (in a format the test parses);
    everything else exactly as shipped."""
    text = (NGINX_EXAMPLES / name).read_text()
    servers = _UPSTREAM_SERVER.findall(text)
    assert len(servers) == len(upstream_ports), f"{name}: {len(servers)} upstream servers, expected {len(upstream_ports)}"
    ports = iter(upstream_ports)
    text = _UPSTREAM_SERVER.sub(lambda m: f"{m.group(1)}127.0.0.1:{next(ports)}", text)
    text, listens = _LISTEN.subn(rf"\g<1>127.0.0.1:{listen_port};", text)
    assert listens == 1, f"{name}: expected one `listen 80;`"
    text, logs = _ACCESS_LOG.subn(rf"\g<1>{access_log} mcp_test;", text)
    assert logs == 1, f"{name}: expected one `access_log … mcp_upstream;`"
    return text


# The wrapper around a conf.d-style example: what /etc/nginx/nginx.conf provides, in a temp prefix.
# `mcp_test` logs the upstream(s) tried, the status, the method, the test's session tag and whether the
# request carried a session id.
MAIN_CONF = """daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    map $http_mcp_session_id $mcp_has_session {{
        "" no;
        default yes;
    }}
    log_format mcp_test '$msec|$request_method|$status|$upstream_addr|$upstream_status|$http_x_test_session|$mcp_has_session';
    include {prefix}/site.conf;
}}
"""


@dataclass
class AccessRecord:
    ended: float  # wall-clock time the request ended (nginx's $msec)
    method: str
    status: int
    upstreams: list[str]  # every replica tried, in order ("127.0.0.1:PORT")
    upstream_statuses: list[str]
    tag: str
    has_session: bool

    @property
    def served_by(self) -> str:
        return self.upstreams[-1] if self.upstreams else ""


class Nginx:
    def __init__(self, workdir: Path, port: int, site_conf: str):
        self.prefix = Path(workdir)
        self.port = port
        self.access_log = self.prefix / "access.log"
        (self.prefix / "site.conf").write_text(site_conf)
        (self.prefix / "nginx.conf").write_text(MAIN_CONF.format(prefix=self.prefix))
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 15.0) -> "Nginx":
        self._stderr = open(self.prefix / "stderr.log", "wb")
        self.proc = subprocess.Popen(
            [nginx_binary(), "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf"), "-e", str(self.prefix / "error.log")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            cwd=self.prefix,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited with {self.proc.returncode}:\n{self.error_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"nginx did not listen on {self.port} within {timeout}s:\n{self.error_tail()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # fast shutdown
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its workers, in its own process group
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait(5)
        self._stderr.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def error_tail(self, n: int = 30) -> str:
        try:
            return "\n".join((self.prefix / "error.log").read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return "(no error.log)"

    def records(self) -> list[AccessRecord]:
        out = []
        for line in self.access_log.read_text().splitlines():
            msec, method, status, upstreams, upstream_statuses, tag, has_session = line.split("|")
            out.append(AccessRecord(
                ended=float(msec),
                method=method,
                status=int(status),
                upstreams=[u for u in re.split(r",\s*|\s:\s", upstreams) if u and u != "-"],
                upstream_statuses=[s.strip() for s in upstream_statuses.split(",")],
                tag=tag,
                has_session=has_session == "yes",
            ))
        return out


@pytest.fixture
def nginx_runner(tmp_path: Path) -> Iterator[Any]:
    """Start nginx with a rendered example: `nginx_runner(example_name, replicas)`; always stopped."""
    started: list[Nginx] = []

    def start(example: str, replicas: list[Gateway]) -> Nginx:
        workdir = tmp_path / f"nginx{len(started)}"
        workdir.mkdir()
        port = free_port()
        site = render_example(example, [gw.port for gw in replicas], port, workdir / "access.log")
        ng = Nginx(workdir, port, site)
        started.append(ng)
        return ng.start()

    yield start
    for ng in started:
        ng.stop()


def start_replicas(gateways: GatewayPool, backends: dict[str, Any]) -> list[Gateway]:
    key = new_session_key()
    cfg = make_config(sessions={"keys": [key]}, backends=backends)
    return [gateways.start(cfg, name=f"replica{i}") for i in range(REPLICAS)]


def replica_addresses(replicas: list[Gateway]) -> dict[str, Gateway]:
    return {f"127.0.0.1:{gw.port}": gw for gw in replicas}


# ---------------------------------------------------------------------------
# Sessions through the proxy, each request tagged for the access log
# ---------------------------------------------------------------------------


class TaggedSession(Session):
    def __init__(self, base: Session, tag: str):
        super().__init__(base.client, base.url, base.id, base.version, base.init)
        self.tag = tag

    def headers(self, **extra: str) -> dict[str, str]:
        h = super().headers(**extra)
        h[TAG_HEADER] = self.tag
        return h


async def open_session(client: httpx.AsyncClient, url: str, tag: str) -> TaggedSession:
    headers = default_headers()
    headers[TAG_HEADER] = tag
    s = TaggedSession(await initialize(client, url, headers=headers, initialized=False), tag)
    r = await s.notify("notifications/initialized")
    assert r.status_code == 202, f"notifications/initialized through nginx: HTTP {r.status_code}"
    return s


@dataclass
class CallRecord:
    session: int
    index: int
    started: float
    ended: float
    ok: bool
    detail: str


async def checked_call(s: TaggedSession, session: int, index: int) -> CallRecord:
    """One call with a result only this session and index produce: even indexes on the in-process plugin,
    odd ones on the stdio backend (multiplexed by every replica)."""
    started = time.monotonic()
    try:
        if index % 2 == 0:
            text = f"session {session} call {index}"
            rep: Reply = await s.call("diag__echo", {"text": text})
            ok = rep.status == 200 and isinstance(rep.response, dict) and "result" in rep.response and rep.text() == text
        else:
            rep = await s.call("example__add", {"a": session, "b": index})
            ok = (
                rep.status == 200
                and isinstance(rep.response, dict)
                and rep.response.get("result", {}).get("structuredContent") == {"sum": session + index}
            )
        detail = f"HTTP {rep.status} {rep.body[:200]!r} {rep.response!r:.200}"
    except (httpx.HTTPError, ValueError, AssertionError) as error:
        ok, detail = False, f"{type(error).__name__}: {error}"
    return CallRecord(session, index, started, time.monotonic(), ok, detail)


# ---------------------------------------------------------------------------
# Round robin
# ---------------------------------------------------------------------------

SESSIONS = 50
CALLS = 20


def test_round_robin_spreads_every_session_over_all_replicas(gateways: GatewayPool, nginx_runner) -> None:
    replicas = start_replicas(gateways, {"diag": BACKEND_DIAG, "example": BACKEND_EXAMPLE})
    ng = nginx_runner("round-robin.conf", replicas)

    async def one_session(c: httpx.AsyncClient, i: int) -> list[CallRecord]:
        s = await open_session(c, ng.url, str(i))
        return [await checked_call(s, i, j) for j in range(CALLS)]

    async def go() -> list[CallRecord]:
        async with http_client() as c:
            per_session = await asyncio.gather(*(one_session(c, i) for i in range(SESSIONS)))
        return [r for rs in per_session for r in rs]

    t0 = time.monotonic()
    calls = run(go())
    elapsed = time.monotonic() - t0
    failed = [r for r in calls if not r.ok]
    assert len(calls) == SESSIONS * CALLS
    assert not failed, f"{len(failed)} of {len(calls)} calls failed through round robin, e.g. {failed[:3]}"

    # Round robin really spread the load: nginx's own record of which replica served each request.
    records = [r for r in ng.records() if r.tag.isdigit()]
    addresses = replica_addresses(replicas)
    assert len(records) == SESSIONS * (CALLS + 2), f"{len(records)} access-log records for {SESSIONS * (CALLS + 2)} requests"
    assert all(r.status in (200, 202) and len(r.upstreams) == 1 for r in records), [r for r in records if r.status not in (200, 202)][:5]
    per_replica = Counter(r.served_by for r in records)
    assert set(per_replica) == set(addresses), f"served by {dict(per_replica)}, replicas {list(addresses)}"
    assert min(per_replica.values()) >= 0.25 * len(records), f"round robin is uneven: {dict(per_replica)}"
    # No stickiness: each session's requests were served by several replicas, which opened its sealed id.
    by_session: dict[str, set[str]] = defaultdict(set)
    for r in records:
        by_session[r.tag].add(r.served_by)
    single = [tag for tag, ups in by_session.items() if len(ups) < 2]
    assert not single, f"sessions served by one replica only: {single}"
    assert sum(len(ups) == REPLICAS for ups in by_session.values()) >= SESSIONS * 0.9, {k: len(v) for k, v in by_session.items()}
    # No replica died under the load.
    for gw in replicas:
        assert gw.proc is not None and gw.proc.poll() is None, f"{gw.name} died:\n{gw.stderr_tail()}"
    assert elapsed < 60, f"{SESSIONS}×{CALLS} calls took {elapsed:.1f}s"


def test_replica_sigkilled_mid_run_sessions_carry_on(gateways: GatewayPool, nginx_runner) -> None:
    replicas = start_replicas(gateways, {"diag": BACKEND_DIAG, "example": BACKEND_EXAMPLE})
    ng = nginx_runner("round-robin.conf", replicas)
    victim = replicas[1]
    kill_after = SESSIONS * CALLS // 5  # calls completed before the kill
    grace = 1.0  # calls started later than this after the kill must all succeed
    pace = 0.1  # between one session's calls, so the run outlasts the kill by seconds
    state: dict[str, Any] = {"done": 0, "killed_at": None}

    def maybe_kill() -> None:
        state["done"] += 1
        if state["killed_at"] is None and state["done"] >= kill_after:
            victim.expect_exit = True
            os.kill(victim.pid, signal.SIGKILL)
            state["killed_at"] = time.monotonic()
            state["killed_wall"] = time.time()

    async def one_session(c: httpx.AsyncClient, i: int) -> list[CallRecord]:
        s = await open_session(c, ng.url, str(i))
        out = []
        for j in range(CALLS):
            out.append(await checked_call(s, i, j))
            maybe_kill()
            await asyncio.sleep(pace)
        return out

    async def go() -> list[CallRecord]:
        async with http_client(timeout=httpx.Timeout(15.0, connect=5.0)) as c:
            per_session = await asyncio.gather(*(one_session(c, i) for i in range(SESSIONS)))
        return [r for rs in per_session for r in rs]

    calls = run(go())
    killed_at = state["killed_at"]
    assert killed_at is not None, "the replica was never killed"
    assert victim.proc is not None and victim.proc.wait(5) == -signal.SIGKILL

    before = [r for r in calls if r.started < killed_at]
    window = [r for r in calls if killed_at <= r.started < killed_at + grace]
    after = [r for r in calls if r.started >= killed_at + grace]
    # Before the kill all three replicas answered.
    assert all(r.ok for r in before if r.ended < killed_at), [r for r in before if not r.ok and r.ended < killed_at][:3]
    # Only calls that were in flight (at most one per session) or sent in the grace window may fail.
    in_flight_failures = [r for r in before if not r.ok]
    assert len(in_flight_failures) <= SESSIONS, f"{len(in_flight_failures)} failures among calls in flight at the kill"
    # The proof: after the grace, every call of every session succeeds through the two survivors.
    failed_after = [r for r in after if not r.ok]
    assert not failed_after, (
        f"{len(failed_after)} of {len(after)} calls started ≥{grace}s after the kill failed, e.g. {failed_after[:3]}\n"
        f"nginx error.log:\n{ng.error_tail()}"
    )
    sessions_after = {r.session for r in after}
    assert len(sessions_after) == SESSIONS, f"only {len(sessions_after)} sessions made calls after the grace"
    assert len(after) >= SESSIONS * 3, f"only {len(after)} calls after the grace: the run ended too soon to prove much"

    # nginx saw the death (a refused connect or a reset) and kept sending to the survivors.
    dead = f"127.0.0.1:{victim.port}"
    records = [r for r in ng.records() if r.tag.isdigit()]
    assert any(r.served_by == dead and r.status == 200 for r in records), "the victim served nothing before its death"
    survivors = {f"127.0.0.1:{gw.port}" for gw in replicas if gw is not victim}
    late = [r for r in records if r.ended >= state["killed_wall"] + grace + 1.0]  # sent well after the kill
    assert len(late) >= SESSIONS, f"only {len(late)} requests ended more than {grace + 1.0}s after the kill"
    assert all(r.served_by in survivors and r.status == 200 for r in late), [r for r in late if r.served_by not in survivors][:5]
    assert {r.served_by for r in late} == survivors, "round robin did not go on over both survivors"
    summary = f"{len(before)} before, {len(window)} in the grace window ({sum(not r.ok for r in window)} failed), {len(after)} after"
    print(f"replica kill: {summary}; {len(in_flight_failures)} in-flight failures")


# ---------------------------------------------------------------------------
# Sticky, for isolation: session
# ---------------------------------------------------------------------------

STICKY_SESSIONS = 20
STICKY_CALLS = 10
BACKEND_PER_SESSION = {
    "type": "stdio",
    "command": ["${EXAMPLE_SERVER}"],
    "isolation": "session",
    "max_sessions": STICKY_SESSIONS * 2,
    "call_timeout": "10s",
}


def test_sticky_hash_keeps_each_session_on_its_process(gateways: GatewayPool, nginx_runner) -> None:
    replicas = start_replicas(gateways, {"diag": BACKEND_DIAG, "isolated": BACKEND_PER_SESSION})
    ng = nginx_runner("sticky.conf", replicas)

    async def one_session(c: httpx.AsyncClient, i: int) -> list[tuple[int, str]]:
        s = await open_session(c, ng.url, str(i))
        out = []
        for _ in range(STICKY_CALLS):
            rep = await s.call("isolated__pid", {})
            ok = rep.status == 200 and isinstance(rep.response, dict) and "result" in rep.response
            out.append((int(rep.text()) if ok else -1, f"HTTP {rep.status} {rep.body[:200]!r}"))
        return out

    async def go():
        async with http_client() as c:
            return await asyncio.gather(*(one_session(c, i) for i in range(STICKY_SESSIONS)))

    per_session = run(go())
    failures = [(i, d) for i, calls in enumerate(per_session) for pid, d in calls if pid < 0]
    assert not failures, f"{len(failures)} calls failed behind the sticky config, e.g. {failures[:3]}"
    pids = []
    for i, calls in enumerate(per_session):
        seen = {pid for pid, _ in calls}
        assert len(seen) == 1, f"session {i} was served by several backend processes {seen}: not sticky"
        pids.append(seen.pop())
    assert len(set(pids)) == STICKY_SESSIONS, "each session must have its own process"
    owners = []
    for pid in pids:
        mine = [gw for gw in replicas if is_descendant(pid, gw.pid)]
        assert len(mine) == 1, f"backend process {pid} belongs to {[g.name for g in mine]}"
        owners.append(mine[0].name)
    assert len(set(owners)) >= 2, f"every session hashed to one replica: {Counter(owners)}"

    # nginx's view: every request carrying a session id went to one replica per session, and that
    # replica is the one whose child answered; initialize (no id yet) fell back to round robin.
    addresses = replica_addresses(replicas)
    records = [r for r in ng.records() if r.tag.isdigit()]
    by_session: dict[int, set[str]] = defaultdict(set)
    for r in records:
        assert r.status in (200, 202), r
        if r.has_session:
            by_session[int(r.tag)].add(r.served_by)
    for i in range(STICKY_SESSIONS):
        assert len(by_session[i]) == 1, f"session {i}'s requests went to {by_session[i]}"
        assert addresses[next(iter(by_session[i]))].name == owners[i]
    initializes = Counter(r.served_by for r in records if not r.has_session and r.method == "POST")
    assert sum(initializes.values()) == STICKY_SESSIONS
    assert len(initializes) == REPLICAS, f"initialize requests (no session id) were not spread: {dict(initializes)}"


def test_sticky_replica_death_moves_only_its_sessions(gateways: GatewayPool, nginx_runner) -> None:
    """Consistent hashing: when a replica dies, only its sessions move (to a survivor, where their
    per-session process starts afresh); every other session keeps its replica and its process."""
    replicas = start_replicas(gateways, {"diag": BACKEND_DIAG, "isolated": BACKEND_PER_SESSION})
    ng = nginx_runner("sticky.conf", replicas)
    grace = 1.0

    async def pids(s: TaggedSession, n: int) -> list[int]:
        out = []
        for _ in range(n):
            rep = await s.call("isolated__pid", {})
            ok = rep.status == 200 and isinstance(rep.response, dict) and "result" in rep.response
            out.append(int(rep.text()) if ok else -1)
        return out

    def owner(pid: int) -> Gateway:
        mine = [gw for gw in replicas if is_descendant(pid, gw.pid)]
        assert len(mine) == 1, f"backend process {pid} belongs to {[g.name for g in mine]}"
        return mine[0]

    async def go():
        async with http_client() as c:
            sessions = [await open_session(c, ng.url, str(i)) for i in range(STICKY_SESSIONS)]
            before = await asyncio.gather(*(pids(s, 3) for s in sessions))
            assert all(len(set(p)) == 1 and p[0] > 0 for p in before), f"not sticky before the kill: {before}"
            first = [p[0] for p in before]
            owners = [owner(p) for p in first]
            victim = Counter(owners).most_common(1)[0][0]
            victim.expect_exit = True
            os.kill(victim.pid, signal.SIGKILL)
            assert victim.proc is not None and victim.proc.wait(5) == -signal.SIGKILL
            await asyncio.sleep(grace)
            after = await asyncio.gather(*(pids(s, 5) for s in sessions))
            survivors = [gw for gw in replicas if gw is not victim]
            new_owners = [owner(p[0]) if p[0] > 0 else None for p in after]
            return first, owners, victim, survivors, after, new_owners

    first, owners, victim, survivors, after, new_owners = run(go())
    failed = [(i, p) for i, p in enumerate(after) if -1 in p]
    assert not failed, f"calls failed {grace}s after the kill: {failed}\nnginx error.log:\n{ng.error_tail()}"
    moved = [i for i, o in enumerate(owners) if o is victim]
    assert moved, "the victim owned no session"
    for i, p in enumerate(after):
        assert len(set(p)) == 1, f"session {i} is not sticky after the kill: {p}"
        if i in moved:
            assert p[0] != first[i] and new_owners[i] in survivors, f"session {i} of the dead replica: {first[i]} -> {p}"
        else:
            assert p[0] == first[i], f"session {i} on a surviving replica lost its process: {first[i]} -> {p[0]}"
