"""The audit log (CONTRACT.md, "Audit log"), end to end against the real binary.

One JSON Lines record per tools/call, refused calls included; redacted keys never reach the file; a SHA-256
hash chain that `mcp-gateway audit verify` checks (and that this file recomputes independently); rotation by
size that keeps every record and continues the chain; and `on_failure: refuse | allow` when the file cannot
be written.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import BACKEND_DIAG, BACKEND_EXAMPLE, GATEWAY, GatewayPool, gateway_env, http_client, initialize, make_config, run

pytestmark = pytest.mark.timeout(120)

GENESIS = "0" * 64


def audit_config(**audit: Any) -> dict[str, Any]:
    cfg = make_config(backends={"diag": dict(BACKEND_DIAG), "example": dict(BACKEND_EXAMPLE)})
    cfg["tools"]["validation"] = "lenient"
    cfg["observability"]["audit"] = audit
    return cfg


def read_records(path: Path, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Waits until `path` holds `count` records (each is written as its call ends, without a shutdown)."""
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            break
        time.sleep(0.05)
    assert len(lines) == count, f"expected {count} audit records in {path}, found {len(lines)}: {lines}"
    return [json.loads(line) for line in lines]


def canonical_hash(record: dict[str, Any]) -> str:
    """The contract's hash, computed without the gateway's code: sorted keys, no whitespace, raw UTF-8."""
    body = {k: v for k, v in record.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((record["prev"] + "\n" + canonical).encode()).hexdigest()


def session_log_id(session_id: str) -> str:
    """SessionLogID.short: FNV-1a 64 of the id, lowercase hex without leading zeros."""
    h = 0xCBF29CE484222325
    for byte in session_id.encode():
        h ^= byte
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return format(h, "x")


def verify(*files: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GATEWAY), "audit", "verify", *map(str, files)], cwd=cwd, env=gateway_env(), capture_output=True, text=True, timeout=30
    )


def test_one_record_per_call_with_outcomes_redaction_and_chain(gateways: GatewayPool) -> None:
    gw = gateways.start(audit_config(path="audit.jsonl", redact=["password", "token"]))
    path = gw.workdir / "audit.jsonl"  # relative to the gateway's working directory

    async def go() -> str:
        async with http_client() as client:
            s = await initialize(client, gw.url)
            assert (await s.call("diag__echo", {"text": "hello"})).text() == "hello"
            assert (await s.call("diag__fail", {})).result["isError"] is True
            assert (await s.call("diag__echo", {"txt": 1})).result["isError"] is True
            assert (await s.call("nosuch__tool", {"a": 1})).error["code"] == -32602
            timed_out = await s.call("example__sleep", {"ms": 10000})
            assert timed_out.error["code"] == -32004
            secret_call = await s.call(
                "example__weather", {"city": "Oslo", "password": "hunter2", "address": {"zip": "12345", "Token": "tok-secret-9"}}
            )
            assert "hunter2" in json.dumps(secret_call.result), "the backend does get the real arguments"
            withdrawn = asyncio.create_task(s.call("diag__sleep", {"ms": 10000}, rid=777))
            await asyncio.sleep(0.5)
            await s.notify("notifications/cancelled", {"requestId": 777, "reason": "changed my mind"})
            assert (await asyncio.wait_for(withdrawn, 10)).response is None, "a cancelled request gets no response"
            return s.id

    sid = run(go())
    records = read_records(path, 7)
    expected = [
        ("diag__echo", "diag", "ok"),
        ("diag__fail", "diag", "tool_error"),
        ("diag__echo", "diag", "rejected"),
        ("nosuch__tool", None, "rejected"),
        ("example__sleep", "example", "timeout"),
        ("example__weather", "example", "ok"),
        ("diag__sleep", "diag", "cancelled"),
    ]
    assert [(r["tool"], r["backend"], r["outcome"]) for r in records] == expected
    for index, record in enumerate(records, start=1):
        assert set(record) == {
            "ts", "seq", "principal", "tenant", "session", "tool", "backend", "arguments", "outcome", "duration_ms", "trace_id", "prev", "hash",
        }
        assert record["seq"] == index
        assert record["principal"] == "anonymous"
        assert record["session"] == session_log_id(sid) and sid not in path.read_text()
        assert record["trace_id"] is None
        assert record["hash"] == canonical_hash(record), f"record {index}: hash does not match an independent computation"
        assert record["prev"] == (GENESIS if index == 1 else records[index - 2]["hash"])
    assert records[2]["arguments"] == {"txt": 1}
    assert records[3]["arguments"] == {"a": 1}
    assert records[4]["duration_ms"] >= 3000
    assert records[5]["arguments"] == {"city": "Oslo", "password": "[REDACTED]", "address": {"zip": "12345", "Token": "[REDACTED]"}}
    text = path.read_text()
    assert "hunter2" not in text and "tok-secret-9" not in text

    ok = verify(path, cwd=gw.workdir)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "7 record(s)" in ok.stdout

    lines = text.splitlines()
    altered = json.loads(lines[2])
    altered["outcome"] = "ok"
    lines[2] = json.dumps(altered, separators=(",", ":"))
    tampered = gw.workdir / "tampered.jsonl"
    tampered.write_text("\n".join(lines) + "\n")
    broken = verify(tampered, cwd=gw.workdir)
    assert broken.returncode == 1, broken.stdout
    assert f"{tampered}:3: seq 3: hash mismatch" in broken.stdout

    deleted = gw.workdir / "deleted.jsonl"
    deleted.write_text("\n".join(text.splitlines()[:1] + text.splitlines()[2:]) + "\n")
    gap = verify(deleted, cwd=gw.workdir)
    assert gap.returncode == 1 and f"{deleted}:2: seq 3:" in gap.stdout, gap.stdout


def test_rotation_keeps_every_record_and_the_chain(gateways: GatewayPool) -> None:
    gw = gateways.start(audit_config(path="audit.jsonl", max_bytes="1KiB", keep=50))
    calls = 15

    async def go() -> None:
        async with http_client() as client:
            s = await initialize(client, gw.url)
            for i in range(calls):
                assert (await s.call("diag__echo", {"text": f"call {i} " + "x" * 100})).text().startswith(f"call {i}")

    run(go())
    gw.expect_exit = True
    assert gw.stop() == 0
    current = gw.workdir / "audit.jsonl"
    rotated = sorted(current.parent.glob("audit.jsonl.*"), key=lambda p: int(p.suffix[1:]), reverse=True)
    assert len(rotated) >= 3, f"expected several rotations with max_bytes 1KiB, found {rotated}"
    files = [*rotated, current]
    records = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    for f in files:
        assert f.stat().st_size <= 1024
    assert [r["seq"] for r in records] == list(range(1, calls + 1))
    for previous, record in zip(records, records[1:]):
        assert record["prev"] == previous["hash"] and record["hash"] == canonical_hash(record)
    result = verify(*files, cwd=gw.workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    missing_middle = verify(files[0], *files[2:], cwd=gw.workdir)
    assert missing_middle.returncode == 1 and f"{files[2]}:1:" in missing_middle.stdout, missing_middle.stdout


@pytest.mark.parametrize("policy", ["refuse", "allow"])
def test_unwritable_audit_log(gateways: GatewayPool, policy: str) -> None:
    # Under /proc nothing can be created, not even by root.
    gw = gateways.start(audit_config(path="/proc/mcp-gateway-audit-test/audit.jsonl", on_failure=policy))

    async def go() -> None:
        async with http_client() as client:
            s = await initialize(client, gw.url)
            for _ in range(2):
                reply = await s.call("diag__echo", {"text": "hi"})
                if policy == "refuse":
                    assert reply.error["code"] == -32603
                    assert "audit log" in reply.error["message"]
                else:
                    assert reply.text() == "hi"
            assert (await s.request("tools/list")).result["tools"], "other methods are served either way"

    run(go())
    unhealthy = gw.wait_log(lambda r: r.get("msg", "").startswith("audit log unhealthy"))
    assert "/proc/mcp-gateway-audit-test/audit.jsonl" in unhealthy.get("path", "")
    assert unhealthy.get("error")
    logged = [r for r in gw.logs() if r.get("msg", "").startswith("audit log unhealthy")]
    assert len(logged) == 1, "logged once per transition, not per record"
