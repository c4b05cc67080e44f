"""A stdio MCP server whose health the test controls, for circuit-breaker tests.

It serves one tool, `work`. Each call reads the file named by the first argument: while it says `fail`, the
call is answered with a JSON-RPC internal error (-32603), the kind of failure a breaker counts (unlike a tool
result with `isError: true`); otherwise with a normal result. Every call is also appended to the file named
by the second argument, so a test can count the calls that reached the backend.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MODE = Path(sys.argv[1])
CALLS = Path(sys.argv[2])

TOOL = {
    "name": "work",
    "description": "Succeeds or fails with a JSON-RPC internal error, as the test's mode file says.",
    "inputSchema": {"type": "object", "properties": {"n": {"type": "integer"}}},
}


def send(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> None:
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        message = json.loads(line)
        if "id" not in message or "method" not in message:
            continue
        rid, method = message["id"], message["method"]
        if method == "initialize":
            version = message.get("params", {}).get("protocolVersion", "2025-11-25")
            send({"jsonrpc": "2.0", "id": rid, "result": {
                "protocolVersion": version,
                "capabilities": {"tools": {"listChanged": False}},
                "serverInfo": {"name": "flaky-backend", "version": "1.0.0"},
            }})
        elif method == "ping":
            send({"jsonrpc": "2.0", "id": rid, "result": {}})
        elif method == "tools/list":
            send({"jsonrpc": "2.0", "id": rid, "result": {"tools": [TOOL]}})
        elif method == "tools/call":
            with CALLS.open("a") as calls:
                calls.write(json.dumps(message.get("params", {}).get("arguments", {})) + "\n")
            mode = MODE.read_text().strip() if MODE.exists() else "ok"
            if mode == "fail":
                send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32603, "message": "flaky backend: internal failure"}})
            else:
                send({"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": "worked"}]}})
        else:
            send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": f"method not found: {method}"}})


if __name__ == "__main__":
    main()
