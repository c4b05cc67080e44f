"""A misbehaving stdio MCP server for Tests/interop/test_chaos.py (standard library only).

It speaks enough MCP for the gateway (initialize, tools/list, tools/call, ping) and answers each call on
its own thread, so one call can hang while others are answered. Its tools:

- `echo {text}`: returns the text.
- `pid`: returns this process's id.
- `garbage {text}`: writes lines that are not MCP messages to stdout (plain text, truncated JSON, bare JSON
  values, invalid UTF-8, a 256 KiB line, replies to ids the gateway never sent, unknown notifications),
  then returns the text.
- `hang`: never answers, and ignores `notifications/cancelled`.

With `--chatter`, a background thread also writes a garbage line every 20 ms, between real replies.
With `--exit-if-exists PATH`, it exits with status 3 at start while PATH exists (a crash loop on demand).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

OUT = sys.stdout.buffer
LOCK = threading.Lock()


def write_line(data: bytes) -> None:
    with LOCK:
        OUT.write(data + b"\n")
        OUT.flush()


def send(message: dict) -> None:
    write_line(json.dumps(message, separators=(",", ":")).encode())


GARBAGE: list[bytes] = [
    b"plain text on stdout, as a careless server logs",
    b'{"jsonrpc":"2.0","id":',  # truncated JSON
    b"[1, 2, 3]",
    b'"a bare string"',
    b"42",
    b"null",
    b"\xff\xfe\xfa not UTF-8 \xc3\x28",
    b"x" * (256 * 1024),
    b'{"jsonrpc":"2.0","id":987654321,"result":{"content":[{"type":"text","text":"forged"}]}}',
    b'{"jsonrpc":"2.0","id":"no-such-request","error":{"code":-32603,"message":"forged"}}',
    b'{"jsonrpc":"2.0","method":"notifications/made_up","params":{"x":1}}',
    b'{"jsonrpc":"2.0"}',
    b"   ",
    b"\x00\x01\x02",
]

TOOLS = [
    {"name": "echo", "description": "Returns the text.", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}},
    {"name": "pid", "description": "Returns this process's id.", "inputSchema": {"type": "object"}},
    {"name": "garbage", "description": "Writes non-MCP lines to stdout, then returns the text.", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}},
    {"name": "hang", "description": "Never answers.", "inputSchema": {"type": "object"}},
]


def text_result(request_id, text: str) -> dict:
    return {"jsonrpc": "2.0", "id": request_id, "result": {"content": [{"type": "text", "text": text}], "isError": False}}


def call(request_id, params: dict) -> None:
    name = params.get("name")
    arguments = params.get("arguments") or {}
    if name == "echo":
        send(text_result(request_id, str(arguments.get("text", ""))))
    elif name == "pid":
        send(text_result(request_id, str(os.getpid())))
    elif name == "garbage":
        for line in GARBAGE:
            write_line(line)
        send(text_result(request_id, str(arguments.get("text", ""))))
    elif name == "hang":
        return
    else:
        send({"jsonrpc": "2.0", "id": request_id, "error": {"code": -32602, "message": f"unknown tool {name}"}})


def chatter() -> None:
    i = 0
    while True:
        write_line(GARBAGE[i % len(GARBAGE)])
        i += 1
        time.sleep(0.02)


def main() -> None:
    if "--exit-if-exists" in sys.argv:
        marker = sys.argv[sys.argv.index("--exit-if-exists") + 1]
        if os.path.exists(marker):
            sys.stderr.write("chaos-server: exiting at start, as asked\n")
            sys.exit(3)
    if "--chatter" in sys.argv:
        threading.Thread(target=chatter, daemon=True).start()
    for raw in sys.stdin.buffer:
        try:
            message = json.loads(raw)
        except ValueError:
            continue
        method, request_id = message.get("method"), message.get("id")
        if method == "initialize":
            send({"jsonrpc": "2.0", "id": request_id, "result": {
                "protocolVersion": message["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "chaos-server", "version": "1.0.0"},
            }})
        elif method == "tools/list":
            send({"jsonrpc": "2.0", "id": request_id, "result": {"tools": TOOLS}})
        elif method == "tools/call":
            threading.Thread(target=call, args=(request_id, message.get("params") or {}), daemon=True).start()
        elif method == "ping":
            send({"jsonrpc": "2.0", "id": request_id, "result": {}})
        elif request_id is not None and method is not None:
            send({"jsonrpc": "2.0", "id": request_id, "error": {"code": -32601, "message": f"no method {method}"}})
        # notifications (initialized, cancelled) are ignored: `hang` stays hung.


if __name__ == "__main__":
    main()
