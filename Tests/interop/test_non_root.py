"""The gateway serves when it runs as an unprivileged user, as in the container image (uid 10001) and under
Kubernetes' runAsNonRoot.

Every other test runs the gateway as root (this machine's CI user), which once hid a listener option that only
root may set: SO_DEBUG was requested where TCP_NODELAY was meant, and as any other user every accepted
connection was closed before it was answered, /healthz included.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from conftest import GATEWAY, gateway_env, http_client, initialize, run, to_yaml

UID = 10001


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_gateway_serves_as_an_unprivileged_user() -> None:
    assert shutil.which("setpriv"), "setpriv (util-linux) is needed to drop privileges"
    assert os.geteuid() == 0, "the suite runs as root here; this test drops to an unprivileged uid"
    port = _free_port()
    workdir = Path(tempfile.mkdtemp(prefix="mcp-nonroot-"))
    os.chmod(workdir, 0o755)
    config = workdir / "gateway.yaml"
    config.write_text(to_yaml({
        "server": {"listen": f"127.0.0.1:{port}"},
        "backends": {"diag": {"type": "plugin", "plugin": "diagnostics"}},
    }) + "\n")
    os.chmod(config, 0o644)
    stderr = open(workdir / "stderr.log", "wb")
    proc = subprocess.Popen(
        ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", str(GATEWAY), "serve", "--config", str(config)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, cwd=workdir, env=gateway_env(),
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (workdir / "stderr.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "no answer from /healthz as uid 10001:\n" + (workdir / "stderr.log").read_text()
            time.sleep(0.1)
        with open(f"/proc/{proc.pid}/status") as status:
            uid_line = next(line for line in status if line.startswith("Uid:"))
        assert uid_line.split()[1] == str(UID)

        async def call() -> str:
            async with http_client() as client:
                session = await initialize(client, f"http://127.0.0.1:{port}/mcp")
                return (await session.call("diag__echo", {"text": "as 10001"})).text()

        assert run(call()) == "as 10001"
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0
        stderr.close()
        shutil.rmtree(workdir, ignore_errors=True)
