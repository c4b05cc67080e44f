"""A remote MCP server for the gateway's `type: http` backend tests: the official Python SDK's own
server (mcp 2.x `MCPServer`, formerly FastMCP) over Streamable HTTP, or over the legacy HTTP+SSE
transport (2024-11-05), served by uvicorn on a loopback port.

    python remote_server.py --port N [--json-response] [--transport streamable-http|sse] [--log FILE]

Tools: echo, add, slow (reports progress), whoami (what the request's headers say), session_id,
add_tool_later (adds a tool and sends notifications/tools/list_changed outside any request).
With --log, every HTTP request (and every cancelled `slow` call) is appended to FILE as one JSON line (method, path, whether an
Authorization header came, the X-Backend-Token header, Mcp-Session-Id, MCP-Protocol-Version),
so a test can see exactly what the gateway sent upstream.
"""

from __future__ import annotations

import argparse
import asyncio
import json

import uvicorn
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("remote-test-server")
LOG_PATH: str | None = None


def record(entry: dict) -> None:
    if LOG_PATH:
        with open(LOG_PATH, "a") as f:
            f.write(json.dumps(entry) + "\n")


@server.tool()
def echo(text: str) -> str:
    """Returns its text."""
    return text


@server.tool()
def add(a: float, b: float) -> dict:
    """Adds two numbers."""
    total = a + b
    return {"sum": int(total) if total == int(total) else total}


@server.tool()
async def slow(steps: int, ctx: Context, ms: int = 100) -> str:
    """Sleeps `steps` times `ms` milliseconds, reporting progress after each step."""
    step = 0
    try:
        for step in range(1, steps + 1):
            await asyncio.sleep(ms / 1000)
            await ctx.report_progress(step, steps, f"step {step} of {steps}")
    except asyncio.CancelledError:
        # Cancelled by the client's notifications/cancelled: recorded so a test can see it arrived.
        record({"event": "cancelled", "tool": "slow", "at_step": step})
        raise
    return f"slept {steps} steps"


@server.tool()
def whoami(ctx: Context) -> dict:
    """What the HTTP request carrying this call said about its sender."""
    headers = {k.lower(): v for k, v in (ctx.headers or {}).items()}
    return {
        "backend_token": headers.get("x-backend-token"),
        "authorization_present": "authorization" in headers,
        "user_agent": headers.get("user-agent"),
    }


@server.tool()
async def add_tool_later(name: str, ctx: Context, delay_ms: int = 300) -> str:
    """After `delay_ms`, outside any request, adds a tool called `name` and tells the client its tool
    list changed (a message the server can only send on its GET stream)."""
    session = ctx.session

    async def later() -> None:
        await asyncio.sleep(delay_ms / 1000)
        server.add_tool(lambda: f"I am {name}", name=name, description=f"added at run time: {name}")
        await session.send_tool_list_changed()

    asyncio.get_running_loop().create_task(later())
    return f"{name} will be added"


@server.tool()
def session_id(ctx: Context) -> str:
    """The upstream Mcp-Session-Id this call arrived on."""
    headers = {k.lower(): v for k, v in (ctx.headers or {}).items()}
    return headers.get("mcp-session-id", "")


class RequestLog:
    """ASGI middleware: one JSON line per HTTP request, written before the app answers."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            entry = {
                "method": scope["method"],
                "path": scope["path"],
                "authorization": "authorization" in headers,
                "x_backend_token": headers.get("x-backend-token"),
                "session": headers.get("mcp-session-id"),
                "protocol_version": headers.get("mcp-protocol-version"),
            }
            record(entry)
        await self.app(scope, receive, send)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--transport", choices=["streamable-http", "sse"], default="streamable-http")
    parser.add_argument("--json-response", action="store_true")
    parser.add_argument("--log")
    args = parser.parse_args()
    if args.transport == "sse":
        app = server.sse_app()
    else:
        app = server.streamable_http_app(json_response=args.json_response)
    if args.log:
        global LOG_PATH
        LOG_PATH = args.log
        app = RequestLog(app)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
