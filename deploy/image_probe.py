#!/usr/bin/env python3
"""Drives the gateway running in the image under test (deploy/image-test.sh), from the host over loopback.

Waits for /readyz, initializes an MCP session (Streamable HTTP, protocol 2025-11-25), sends
notifications/initialized, calls diag__echo and checks the text comes back unchanged, then checks that the
bundled stdio server's tools are listed and that example__add answers through it: that proves the container
found /usr/local/bin/mcp-example-server through EXAMPLE_SERVER. Standard library only, so it runs before any
venv exists. Exit 0 when every check passed; otherwise 1 with the reason on stderr.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
import urllib.error
import urllib.request

PROTOCOL = "2025-11-25"
ACCEPT = "application/json, text/event-stream"


def fail(message: str) -> None:
    print(f"image probe: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def post(url: str, body: dict, session: str | None = None) -> tuple[int, dict[str, str], str]:
    headers = {"content-type": "application/json", "accept": ACCEPT}
    if session:
        headers["mcp-session-id"] = session
        headers["mcp-protocol-version"] = PROTOCOL
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read().decode(errors="replace")


def json_rpc_result(content_type: str, text: str, request_id: int) -> dict:
    """The response to `request_id`, from a JSON body or from the data lines of an SSE stream."""
    messages = []
    if content_type.startswith("text/event-stream"):
        for line in text.splitlines():
            if line.startswith("data:"):
                messages.append(json.loads(line[5:].strip()))
    else:
        messages.append(json.loads(text))
    for message in messages:
        if isinstance(message, dict) and message.get("id") == request_id:
            return message
    fail(f"no JSON-RPC response with id {request_id} in: {text[:500]}")
    raise AssertionError  # unreachable


def main() -> None:
    if len(sys.argv) != 2:
        fail("usage: image_probe.py BASE_URL (e.g. http://127.0.0.1:18080)")
    base = sys.argv[1].rstrip("/")
    endpoint = f"{base}/mcp"

    deadline = time.monotonic() + 60
    status, last = 0, "no answer"
    while time.monotonic() < deadline:
        try:
            status, body = get(f"{base}/readyz")
            last = f"HTTP {status} {body[:200]}"
            if status == 200:
                break
        except OSError as error:  # refused while starting; reset if the gateway drops connections
            last = f"{type(error).__name__}: {error}"
        time.sleep(0.25)
    if status != 200:
        fail(f"/readyz did not answer 200 within 60 s (last: {last})")
    print(f"image probe: /readyz 200 after {60 - (deadline - time.monotonic()):.1f} s")

    status, headers, text = post(endpoint, {
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "image-test", "version": "1"}},
    })
    if status != 200:
        fail(f"initialize answered HTTP {status}: {text[:300]}")
    session = headers.get("mcp-session-id")
    if not session:
        fail("initialize returned no Mcp-Session-Id header")
    reply = json_rpc_result(headers.get("content-type", ""), text, 1)
    if reply.get("result", {}).get("protocolVersion") != PROTOCOL:
        fail(f"initialize did not negotiate {PROTOCOL}: {reply}")

    status, _, text = post(endpoint, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
    if status != 202:
        fail(f"notifications/initialized answered HTTP {status} (expected 202): {text[:300]}")

    marker = f"hello from the container {secrets.token_hex(4)}"
    status, headers, text = post(endpoint, {
        "jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "diag__echo", "arguments": {"text": marker}},
    }, session)
    if status != 200:
        fail(f"tools/call diag__echo answered HTTP {status}: {text[:300]}")
    result = json_rpc_result(headers.get("content-type", ""), text, 2).get("result") or {}
    texts = [item.get("text") for item in result.get("content", []) if item.get("type") == "text"]
    if result.get("isError") or marker not in texts:
        fail(f"diag__echo did not echo {marker!r}: {result}")
    print(f"image probe: diag__echo returned {marker!r}")

    status, headers, text = post(endpoint, {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, session)
    tools = [tool["name"] for tool in (json_rpc_result(headers.get("content-type", ""), text, 3).get("result") or {}).get("tools", [])]
    if "example__add" not in tools:
        fail(f"the bundled stdio server's tools are missing from tools/list: {tools}")
    print(f"image probe: tools/list has {len(tools)} tools, example__add among them")

    status, headers, text = post(endpoint, {
        "jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "example__add", "arguments": {"a": 2, "b": 3}},
    }, session)
    result = json_rpc_result(headers.get("content-type", ""), text, 4).get("result") or {}
    if status != 200 or result.get("isError") or result.get("structuredContent", {}).get("sum") != 5:
        fail(f"example__add(2, 3) through the stdio backend did not return 5: HTTP {status} {result}")
    print("image probe: example__add(2, 3) = 5 through the stdio backend")


if __name__ == "__main__":
    main()
