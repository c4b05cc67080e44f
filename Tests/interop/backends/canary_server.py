"""A stdio MCP server standing in for a new build of the ExampleServer, for Tests/interop/test_canary.py
(standard library only).

It lists the ExampleServer's `echo` and `pid` tools with the same schemas, so it can serve as a canary
version of a backend whose stable version is the ExampleServer. How it answers is set on the command line:

- no option: `echo {text}` returns the text, `pid` returns this process's id (a healthy canary);
- `--fail`: every tools/call is answered with a JSON-RPC error (-32000, a server-defined code: the gateway's
  circuit breaker does not count it, so only the canary judgement reacts);
- `--delay-ms N`: every tools/call is answered N milliseconds late (a slow canary).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

TOOLS = [
    {
        "name": "echo",
        "description": "Returns the given text.",
        "inputSchema": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
            "additionalProperties": False,
        },
    },
    {"name": "pid", "description": "Returns this process's id.", "inputSchema": {"type": "object"}},
]


def send(message: dict) -> None:
    sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def text_result(text: str) -> dict:
    return {"content": [{"type": "text", "text": text}]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fail", action="store_true")
    parser.add_argument("--delay-ms", type=int, default=0)
    options = parser.parse_args()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if not isinstance(message, dict) or "id" not in message or "method" not in message:
            continue  # notifications (initialized, cancelled) and replies need no answer
        rid, method = message["id"], message["method"]
        params = message.get("params") or {}
        if method == "initialize":
            send({"jsonrpc": "2.0", "id": rid, "result": {
                "protocolVersion": params.get("protocolVersion", "2025-11-25"),
                "capabilities": {"tools": {"listChanged": False}},
                "serverInfo": {"name": "canary-server", "version": "2.0.0"},
            }})
        elif method == "ping":
            send({"jsonrpc": "2.0", "id": rid, "result": {}})
        elif method == "tools/list":
            send({"jsonrpc": "2.0", "id": rid, "result": {"tools": TOOLS}})
        elif method == "tools/call":
            if options.delay_ms:
                time.sleep(options.delay_ms / 1000)
            if options.fail:
                send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32000, "message": "canary-server: this build is broken"}})
                continue
            name = params.get("name")
            arguments = params.get("arguments") or {}
            if name == "echo":
                send({"jsonrpc": "2.0", "id": rid, "result": text_result(str(arguments.get("text", "")))})
            elif name == "pid":
                send({"jsonrpc": "2.0", "id": rid, "result": text_result(str(os.getpid()))})
            else:
                send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32602, "message": f"unknown tool {name}"}})
        else:
            send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": f"method not found: {method}"}})


if __name__ == "__main__":
    main()
