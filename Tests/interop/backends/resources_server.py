"""A stdio MCP server on the official Python SDK's low-level `Server`, for
Tests/interop/test_resources_prompts.py: resources (static ones, listed over several pages of its own,
plus a template), subscriptions with update notifications, prompts with arguments, and completion.

Tools drive what a test needs the server to do on its own initiative:
- `touch {uri}` sends `notifications/resources/updated` for the URI if some client subscribed to it;
- `add_resource {name}` adds `test://added/<name>` and sends `notifications/resources/list_changed`;
- `add_prompt {name}` adds a prompt and sends `notifications/prompts/list_changed`.

`--tag TAG` puts TAG into every text it returns, so a test can tell two instances apart. `--http-port N` serves
the same over Streamable HTTP (uvicorn, loopback) instead of stdio, as a remote (`type: http`) backend.
"""

from __future__ import annotations

import argparse

import anyio
import mcp_types as types
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

parser = argparse.ArgumentParser()
parser.add_argument("--tag", default="res")
parser.add_argument("--static", type=int, default=5, help="number of test://static/N resources")
parser.add_argument("--http-port", type=int, help="serve Streamable HTTP on this loopback port instead of stdio")
OPTIONS = parser.parse_args()

PAGE = 2  # this server's own page size, so the gateway must follow nextCursor
STATIC = [f"test://static/{n}" for n in range(1, OPTIONS.static + 1)] + ["test://watched"]
added: list[str] = []
subscribed: set[str] = set()
extra_prompts: list[str] = []
STYLES = ["formal", "friendly", "funny"]
IDS = ["alpha", "beta", "gamma"]


def resources() -> list[types.Resource]:
    return [types.Resource(uri=uri, name=uri.rsplit("/", 1)[-1], mime_type="text/plain") for uri in STATIC + added]


def page(items: list, cursor: str | None) -> tuple[list, str | None]:
    start = int(cursor) if cursor else 0
    end = start + PAGE
    return items[start:end], (str(end) if end < len(items) else None)


async def list_resources(ctx, params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
    items, next_cursor = page(resources(), params.cursor if params else None)
    return types.ListResourcesResult(resources=items, next_cursor=next_cursor)


async def list_templates(ctx, params) -> types.ListResourceTemplatesResult:
    return types.ListResourceTemplatesResult(resource_templates=[
        types.ResourceTemplate(uri_template="test://template/{id}/data", name="data", mime_type="text/plain"),
    ])


async def read_resource(ctx, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
    uri = str(params.uri)
    if uri.startswith("test://template/") and uri.endswith("/data"):
        ident = uri[len("test://template/"):-len("/data")]
        text = f"{OPTIONS.tag}: template data for {ident}"
    elif uri in STATIC or uri in added:
        text = f"{OPTIONS.tag}: contents of {uri}"
    else:
        raise MCPError(code=-32002, message=f"Resource not found: {uri}")
    return types.ReadResourceResult(contents=[types.TextResourceContents(uri=uri, text=text, mime_type="text/plain")])


async def subscribe(ctx, params: types.SubscribeRequestParams) -> types.EmptyResult:
    subscribed.add(str(params.uri))
    return types.EmptyResult()


async def unsubscribe(ctx, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
    subscribed.discard(str(params.uri))
    return types.EmptyResult()


def prompts() -> list[types.Prompt]:
    return [
        types.Prompt(name="simple", description="A prompt without arguments"),
        types.Prompt(name="greet", description="Greets someone", arguments=[
            types.PromptArgument(name="name", description="who", required=True),
            types.PromptArgument(name="style", description="how", required=False),
        ]),
    ] + [types.Prompt(name=name, description="added later") for name in extra_prompts]


async def list_prompts(ctx, params) -> types.ListPromptsResult:
    return types.ListPromptsResult(prompts=prompts())


async def get_prompt(ctx, params: types.GetPromptRequestParams) -> types.GetPromptResult:
    args = params.arguments or {}
    if params.name == "greet":
        text = f"{OPTIONS.tag}: Hello {args.get('name', '?')}, in a {args.get('style', 'plain')} way"
    elif params.name == "simple" or params.name in extra_prompts:
        text = f"{OPTIONS.tag}: the {params.name} prompt"
    else:
        raise ValueError(f"unknown prompt {params.name}")
    return types.GetPromptResult(description=params.name, messages=[
        types.PromptMessage(role="user", content=types.TextContent(type="text", text=text)),
    ])


async def complete(ctx, params: types.CompleteRequestParams) -> types.CompleteResult:
    ref, argument = params.ref, params.argument
    prefix = argument.value or ""
    if getattr(ref, "type", "") == "ref/prompt" and ref.name == "greet" and argument.name == "style":
        values = [s for s in STYLES if s.startswith(prefix)]
    elif getattr(ref, "type", "") == "ref/resource" and ref.uri == "test://template/{id}/data" and argument.name == "id":
        values = [i for i in IDS if i.startswith(prefix)]
    else:
        values = []
    return types.CompleteResult(completion=types.Completion(values=values, total=len(values), has_more=False))


TOOLS = [
    types.Tool(name="touch", description="Sends resources/updated for a subscribed URI",
               input_schema={"type": "object", "properties": {"uri": {"type": "string"}}, "required": ["uri"]}),
    types.Tool(name="add_resource", description="Adds a resource and announces the change",
               input_schema={"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}),
    types.Tool(name="add_prompt", description="Adds a prompt and announces the change",
               input_schema={"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}),
]


async def list_tools(ctx, params) -> types.ListToolsResult:
    return types.ListToolsResult(tools=TOOLS)


async def call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    args = params.arguments or {}
    if params.name == "touch":
        uri = args["uri"]
        sent = uri in subscribed
        if sent:
            await ctx.session.send_resource_updated(uri)
        text = f"updated {uri}" if sent else f"{uri} has no subscriber"
    elif params.name == "add_resource":
        added.append(f"test://added/{args['name']}")
        await ctx.session.send_resource_list_changed()
        text = "added"
    elif params.name == "add_prompt":
        extra_prompts.append(args["name"])
        await ctx.session.send_prompt_list_changed()
        text = "added"
    else:
        return types.CallToolResult(content=[types.TextContent(type="text", text="unknown tool")], is_error=True)
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


server = Server(
    "resources-server",
    version="1.0.0",
    on_list_resources=list_resources,
    on_list_resource_templates=list_templates,
    on_read_resource=read_resource,
    on_subscribe_resource=subscribe,
    on_unsubscribe_resource=unsubscribe,
    on_list_prompts=list_prompts,
    on_get_prompt=get_prompt,
    on_completion=complete,
    on_list_tools=list_tools,
    on_call_tool=call_tool,
)


async def main() -> None:
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options(
            NotificationOptions(resources_changed=True, prompts_changed=True),
        ))


if __name__ == "__main__":
    if OPTIONS.http_port:
        import uvicorn

        uvicorn.run(server.streamable_http_app(), host="127.0.0.1", port=OPTIONS.http_port, log_level="warning")
    else:
        anyio.run(main)
