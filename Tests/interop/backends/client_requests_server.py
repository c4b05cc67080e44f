"""A stdio MCP server on the official Python SDK whose tools ask the client things, for
Tests/interop/test_server_requests.py.

Each tool sends one server-to-client request (or log messages) while it serves the call, and reports what
came back in its text result, so the test can see through the gateway that the client's answer reached the
backend, or which error the backend got instead:

- `ask_model {prompt}`: `sampling/createMessage`; returns `sampled: <the model's text>`;
- `ask_user {question}`: `elicitation/create` (form mode) asking for a `name`; returns `elicited: <action> <name>`;
- `client_roots`: `roots/list`; returns `roots: <uri> <uri> ...`;
- `chatty {tag}`: sends one `notifications/message` at each of debug, info and error, then returns `logged`.

- `ask_and_give_up {prompt, seconds}`: sampling, cancelled by the server when unanswered after `seconds`;
- `ask_later {prompt}` / `later_answer {prompt}`: the sampling request is sent 0.3 s after the call has
  ended, with no call in flight; the second tool reports what came of it;
- `log_later {tag, levels}`: logs `<tag> <level>` at each comma-separated level 0.3 s after the call has ended.

`--http-port PORT` serves the same tools over Streamable HTTP (a remote backend) instead of stdio.

A request the client cannot answer makes the tool return `error: <the JSON-RPC error message>`.
"""

from __future__ import annotations

import asyncio
import warnings

from pydantic import BaseModel

from mcp import types
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError

warnings.simplefilter("ignore")  # the deprecation warnings of sampling, roots and logging (2026-07-28)

server = MCPServer("client-requests")


class Person(BaseModel):
    name: str


@server.tool()
async def ask_model(prompt: str, ctx: Context) -> str:
    """Asks the client's model to complete the prompt."""
    try:
        result = await ctx.session.create_message(
            [types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))],
            max_tokens=50,
        )
    except MCPError as error:
        return f"error: {error}"
    return f"sampled: {getattr(result.content, 'text', result.content)}"


@server.tool()
async def ask_user(question: str, ctx: Context) -> str:
    """Asks the client's user for a name."""
    try:
        result = await ctx.elicit(question, Person)
    except MCPError as error:
        return f"error: {error}"
    name = result.data.name if result.action == "accept" else ""
    return f"elicited: {result.action} {name}".strip()


@server.tool()
async def client_roots(ctx: Context) -> str:
    """Lists the client's roots."""
    try:
        result = await ctx.session.list_roots()
    except MCPError as error:
        return f"error: {error}"
    return "roots: " + " ".join(str(root.uri) for root in result.roots)


@server.tool()
async def ask_and_give_up(prompt: str, seconds: float, ctx: Context) -> str:
    """Asks the client's model and cancels the request if no answer comes within `seconds` (the SDK then
    sends `notifications/cancelled` for it)."""
    try:
        await asyncio.wait_for(
            ctx.session.create_message(
                [types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))],
                max_tokens=50,
            ),
            timeout=seconds,
        )
    except asyncio.TimeoutError:
        return "gave up"
    return "answered"


LATER: dict[str, str] = {}
BACKGROUND: set[asyncio.Task] = set()


def in_background(work) -> None:
    task = asyncio.create_task(work)
    BACKGROUND.add(task)
    task.add_done_callback(BACKGROUND.discard)


@server.tool()
async def ask_later(prompt: str, ctx: Context) -> str:
    """Returns at once and asks the client's model after the call has ended (no call in flight)."""
    session = ctx.session

    async def ask() -> None:
        await asyncio.sleep(0.3)
        try:
            result = await session.create_message(
                [types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))],
                max_tokens=50,
            )
            LATER[prompt] = f"sampled: {getattr(result.content, 'text', result.content)}"
        except MCPError as error:
            LATER[prompt] = f"error: {error}"

    in_background(ask())
    return "scheduled"


@server.tool()
async def later_answer(prompt: str) -> str:
    """What `ask_later` got for the prompt so far."""
    return LATER.get(prompt, "pending")


@server.tool()
async def log_later(tag: str, levels: str, ctx: Context) -> str:
    """Returns at once and, after the call has ended, logs `<tag> <level>` at each comma-separated level."""
    session = ctx.session

    async def log() -> None:
        await asyncio.sleep(0.3)
        for level in levels.split(","):
            await session.send_log_message(level=level, data=f"{tag} {level}")

    in_background(log())
    return "scheduled"


@server.tool()
async def chatty(tag: str, ctx: Context) -> str:
    """Logs one message at debug, info and error, each naming the tag."""
    await ctx.debug(f"{tag} debug")
    await ctx.info(f"{tag} info")
    await ctx.error(f"{tag} error")
    return "logged"


if __name__ == "__main__":
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "--http-port":
        # A remote backend instead: the SDK's own Streamable HTTP server at http://127.0.0.1:PORT/mcp.
        import uvicorn

        uvicorn.run(server.streamable_http_app(), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
    else:
        server.run("stdio")
