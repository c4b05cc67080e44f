"""Resumability on Streamable HTTP (issue 4, item 7), against the real binary.

Every SSE event on a session's streams has an id `<stream>-<event>`, unique in the session and naming its
stream; the gateway keeps the last `sessions.replay_buffer` events of each stream, and a GET with
`Last-Event-ID` replays what that stream sent after the id (2025-11-25/basic/transports#resumability-and-
redelivery). The GET stream then goes on live; a POST stream replays up to its response and ends. Sessions of
2025-11-25 get a priming event (an id with empty data) at the start of each stream; older versions do not.

Server notifications come from hot reloads (SIGHUP) that change the tool list, as in test_reload.py: each one
sends `notifications/tools/list_changed` to the session's GET stream.
"""
from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import pytest
from httpx_sse import EventSource

from conftest import BACKEND_DIAG, GatewayPool, http_client, initialize, make_config, run, to_yaml

pytestmark = pytest.mark.timeout(120)

LIST_CHANGED = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}


def _config(replay_buffer: int | None = None, exclude: list[str] | None = None) -> dict[str, Any]:
    diag = dict(BACKEND_DIAG, tools={"include": ["*"], "exclude": exclude or []})
    cfg = make_config(backends={"diag": diag})
    if replay_buffer is not None:
        cfg["sessions"]["replay_buffer"] = replay_buffer
    return cfg


class ToolListChanger:
    """Reloads the gateway with a tool list that differs from the previous one (diag__fail hidden, then shown,
    and so on), and waits until the reload has notified the sessions."""

    def __init__(self, gw, replay_buffer: int | None = None):
        self.gw = gw
        self.replay_buffer = replay_buffer
        self.changes = 0

    def change(self, timeout: float = 30) -> None:
        self.changes += 1
        mark = self.gw.mark()
        exclude = ["fail"] if self.changes % 2 else []
        self.gw.config_path.write_text(to_yaml(_config(self.replay_buffer, exclude)) + "\n")
        self.gw.proc.send_signal(signal.SIGHUP)
        done = self.gw.wait_log(lambda r: r.get("msg") == "tools/list_changed sent", timeout=timeout, since=mark)
        assert done is not None, f"the reload sent no tools/list_changed:\n{self.gw.stderr_tail()}"


def _get_headers(session, last_event_id: str | None = None) -> dict[str, str]:
    headers = {"Accept": "text/event-stream", "Mcp-Session-Id": session.id, "MCP-Protocol-Version": session.version}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    return headers


async def _next(events, timeout: float = 10.0):
    return await asyncio.wait_for(events.__anext__(), timeout)


async def _sse(resp):
    """The stream's events. httpx_sse reports each keep-alive comment block as an event with empty data and the
    last id seen; a priming event also has empty data, but an id of its own."""
    last_id = None
    async for event in EventSource(resp).aiter_sse():
        if not event.data and (not event.id or event.id == last_id):
            continue
        last_id = event.id
        yield event


def _without_keepalives(events: list[Any]) -> list[Any]:
    kept, last_id = [], None
    for event in events:
        if event.data or (event.id and event.id != last_id):
            kept.append(event)
            last_id = event.id
    return kept


async def _all(resp, timeout: float = 15.0) -> list[Any]:
    """Every event of a stream the gateway ends by itself."""

    async def collect() -> list[Any]:
        return [event async for event in _sse(resp)]

    return await asyncio.wait_for(collect(), timeout)


def _stream_of(event_id: str) -> str:
    stream, _, number = event_id.partition("-")
    assert stream.isdigit() and number.isdigit(), f"event id {event_id!r} is not <stream>-<event>"
    return stream


def _sleep_call(rid: int, ms: int, token: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0", "id": rid, "method": "tools/call",
        "params": {"name": "diag__sleep", "arguments": {"ms": ms}, "_meta": {"progressToken": token}},
    }


def test_get_stream_replays_missed_notifications_in_order_then_goes_on(gateways: GatewayPool) -> None:
    gw = gateways.start(_config())
    changer = ToolListChanger(gw)

    async def go() -> None:
        async with http_client() as client:
            session = await initialize(client, gw.url)
            async with client.stream("GET", gw.url, headers=_get_headers(session)) as resp:
                assert resp.status_code == 200
                events = _sse(resp)
                priming = await _next(events)
                assert priming.data == "" and priming.id, f"no priming event first: {priming}"
                stream = _stream_of(priming.id)
                assert priming.id == f"{stream}-1"
                await asyncio.to_thread(changer.change)
                seen = await _next(events)
                assert (seen.id, json.loads(seen.data)) == (f"{stream}-2", LIST_CHANGED)

            # The client lost the stream; two more changes happen while it is away.
            await asyncio.to_thread(changer.change)
            await asyncio.to_thread(changer.change)

            mark = gw.mark()
            async with client.stream("GET", gw.url, headers=_get_headers(session, seen.id)) as resp:
                assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
                events = _sse(resp)
                replayed = [await _next(events), await _next(events)]
                assert [event.id for event in replayed] == [f"{stream}-3", f"{stream}-4"], "exactly the missed events, in order"
                assert all(json.loads(event.data) == LIST_CHANGED for event in replayed)
                # The resumed stream is the session's GET stream again: the next change arrives live on it.
                await asyncio.to_thread(changer.change)
                live = await _next(events)
                assert (live.id, json.loads(live.data)) == (f"{stream}-5", LIST_CHANGED)
            record = gw.wait_log(lambda r: r.get("msg") == "stream resumed", timeout=5, since=mark)
            assert record is not None and str(record.get("replayed")) == "2" and record.get("stream") == "get", record

    run(go())


def test_a_cut_post_stream_is_resumed_with_its_missed_progress_and_response(gateways: GatewayPool) -> None:
    gw = gateways.start(_config())

    async def go() -> None:
        async with http_client() as client:
            session = await initialize(client, gw.url)
            async with client.stream("POST", gw.url, json=_sleep_call(77, 1500, "cut"), headers=session.headers()) as resp:
                assert resp.headers["content-type"].startswith("text/event-stream")
                events = _sse(resp)
                priming = await _next(events)
                assert priming.data == "" and priming.id
                stream = _stream_of(priming.id)
                first = await _next(events)
                assert first.id == f"{stream}-2" and json.loads(first.data)["method"] == "notifications/progress"
                first_progress = json.loads(first.data)["params"]["progress"]
            # The client cut the answer; the call goes on (disconnecting is not cancelling) and finishes.
            await asyncio.sleep(2.0)

            async with client.stream("GET", gw.url, headers=_get_headers(session, first.id)) as resp:
                assert resp.status_code == 200
                rest = await _all(resp)
            ids = [event.id for event in rest]
            assert ids == [f"{stream}-{n}" for n in range(3, 3 + len(rest))], f"not the stream's next events in order: {ids}"
            messages = [json.loads(event.data) for event in rest]
            assert messages[-1]["id"] == 77 and messages[-1]["result"]["content"][0]["text"] == "slept 1500ms"
            progress = [m["params"]["progress"] for m in messages[:-1]]
            assert progress and all(m["method"] == "notifications/progress" for m in messages[:-1]), messages
            assert progress == sorted(progress) and progress[0] > first_progress, progress

            # Everything of that stream has now been delivered: nothing is left to resume.
            again = await client.get(gw.url, headers=_get_headers(session, rest[-1].id))
            assert again.status_code == 409, again.text

    run(go())


def test_a_post_stream_resumed_while_its_call_runs_follows_it_to_the_response(gateways: GatewayPool) -> None:
    gw = gateways.start(_config())

    async def go() -> None:
        async with http_client() as client:
            session = await initialize(client, gw.url)
            async with client.stream("POST", gw.url, json=_sleep_call(78, 2000, "follow"), headers=session.headers()) as resp:
                events = _sse(resp)
                priming = await _next(events)
                stream = _stream_of(priming.id)
                first = await _next(events)
                assert first.id == f"{stream}-2"
            async with client.stream("GET", gw.url, headers=_get_headers(session, first.id)) as resp:
                assert resp.status_code == 200
                rest = await _all(resp)
            ids = [event.id for event in rest]
            assert ids == [f"{stream}-{n}" for n in range(3, 3 + len(rest))], ids
            messages = [json.loads(event.data) for event in rest]
            assert messages[-1]["id"] == 78 and messages[-1]["result"]["content"][0]["text"] == "slept 2000ms"
            assert len(messages) >= 2 and all(m["method"] == "notifications/progress" for m in messages[:-1]), messages

    run(go())


@pytest.mark.parametrize("version, primed", [("2025-11-25", True), ("2025-06-18", False)])
def test_priming_events_only_for_2025_11_25(gateways: GatewayPool, version: str, primed: bool) -> None:
    gw = gateways.start(_config())
    changer = ToolListChanger(gw)

    async def go() -> None:
        async with http_client() as client:
            session = await initialize(client, gw.url, version)
            assert session.version == version
            reply = await session.call("diag__sleep", {"ms": 300}, progress_token="p", rid=9)
            assert reply.content_type.startswith("text/event-stream")
            sent = _without_keepalives(reply.events)
            first = sent[0]
            stream = _stream_of(first.id)
            if primed:
                assert first.data == "" and first.id == f"{stream}-1", first
                assert json.loads(sent[1].data)["method"] == "notifications/progress" and sent[1].id == f"{stream}-2"
            else:
                assert all(event.data for event in sent), "an event with empty data before 2025-11-25"
                assert json.loads(first.data)["method"] == "notifications/progress" and first.id == f"{stream}-1"

            async with client.stream("GET", gw.url, headers=_get_headers(session)) as resp:
                events = _sse(resp)
                if primed:
                    priming = await _next(events)
                    assert priming.data == "" and priming.id.endswith("-1")
                    get_stream = _stream_of(priming.id)
                    assert get_stream != stream, "each stream has its own number"
                await asyncio.to_thread(changer.change)
                note = await _next(events)
                assert json.loads(note.data) == LIST_CHANGED
                get_stream = _stream_of(note.id)
                assert note.id == f"{get_stream}-{2 if primed else 1}"

    run(go())


def test_a_buffer_of_two_keeps_only_the_last_two_events(gateways: GatewayPool) -> None:
    gw = gateways.start(_config(replay_buffer=2))
    changer = ToolListChanger(gw, replay_buffer=2)

    async def go() -> None:
        async with http_client() as client:
            session = await initialize(client, gw.url)
            async with client.stream("GET", gw.url, headers=_get_headers(session)) as resp:
                priming = await _next(_sse(resp))
                stream = _stream_of(priming.id)
            for _ in range(4):
                await asyncio.to_thread(changer.change)
            mark = gw.mark()
            async with client.stream("GET", gw.url, headers=_get_headers(session, priming.id)) as resp:
                assert resp.status_code == 200
                events = _sse(resp)
                replayed = [await _next(events), await _next(events)]
                assert [event.id for event in replayed] == [f"{stream}-4", f"{stream}-5"]
                await asyncio.to_thread(changer.change)
                assert (await _next(events)).id == f"{stream}-6", "nothing else was replayed"
            record = gw.wait_log(lambda r: "already dropped" in r.get("msg", ""), timeout=5, since=mark)
            assert record is not None and str(record.get("replayed")) == "2", gw.stderr_tail()

    run(go())


@pytest.mark.parametrize("last_event_id, log", [
    ("not-an-id", "is not an id this gateway issues"),
    ("999-1", "names no stream this session holds here"),
])
def test_an_id_that_cannot_be_resumed_opens_a_new_get_stream(gateways: GatewayPool, last_event_id: str, log: str) -> None:
    gw = gateways.start(_config())

    async def go() -> None:
        async with http_client() as client:
            session = await initialize(client, gw.url)
            mark = gw.mark()
            async with client.stream("GET", gw.url, headers=_get_headers(session, last_event_id)) as resp:
                assert resp.status_code == 200
                priming = await _next(_sse(resp))
                assert priming.data == "" and priming.id.endswith("-1"), "a new stream, primed"
            assert gw.wait_log(lambda r: log in r.get("msg", ""), timeout=5, since=mark) is not None, gw.stderr_tail()

    run(go())


def test_another_sessions_stream_is_not_replayed(gateways: GatewayPool) -> None:
    gw = gateways.start(_config())

    async def go() -> None:
        async with http_client() as client:
            owner = await initialize(client, gw.url)
            other = await initialize(client, gw.url)
            reply = await owner.call("diag__sleep", {"ms": 300}, progress_token="mine", rid=5)
            owner_ids = [event.id for event in _without_keepalives(reply.events)]
            # The other session names the owner's stream: it has no such stream, so it gets a fresh GET stream.
            async with client.stream("GET", gw.url, headers=_get_headers(other, owner_ids[0])) as resp:
                assert resp.status_code == 200
                first = await _next(_sse(resp))
                assert first.data == "", f"another session's events were replayed: {first}"

    run(go())


def test_replay_buffer_zero_disables_resumption_and_priming(gateways: GatewayPool) -> None:
    gw = gateways.start(_config(replay_buffer=0))
    changer = ToolListChanger(gw, replay_buffer=0)

    async def go() -> None:
        async with http_client() as client:
            session = await initialize(client, gw.url)
            reply = await session.call("diag__sleep", {"ms": 300}, progress_token="p", rid=4)
            assert all(event.data for event in _without_keepalives(reply.events)), "a priming event although nothing can be resumed"
            async with client.stream("GET", gw.url, headers=_get_headers(session, reply.events[0].id)) as resp:
                assert resp.status_code == 200
                events = _sse(resp)
                await asyncio.to_thread(changer.change)
                note = await _next(events)
                assert json.loads(note.data) == LIST_CHANGED and note.id.endswith("-1"), "a new stream, nothing replayed"

    run(go())


def test_a_plain_second_get_is_still_refused(gateways: GatewayPool) -> None:
    gw = gateways.start(_config())

    async def go() -> None:
        async with http_client() as client:
            session = await initialize(client, gw.url)
            async with client.stream("GET", gw.url, headers=_get_headers(session)) as resp:
                assert resp.status_code == 200
                events = _sse(resp)  # kept: a collected generator would close the stream
                await _next(events)
                second = await asyncio.wait_for(client.get(gw.url, headers=_get_headers(session)), 10)
                assert second.status_code == 409

    run(go())



def test_a_drain_ends_a_resumed_post_stream_with_a_retry_hint(gateways: GatewayPool) -> None:
    """The gateway closing a stream itself (SIGINT: drain) sends `retry:` first, on a GET that follows a POST
    stream as on the GET stream (2025-11-25/basic/transports#resumability-and-redelivery)."""
    cfg = _config()
    cfg["server"]["shutdown_grace"] = "10s"
    gw = gateways.start(cfg)

    async def go() -> list[Any]:
        async with http_client() as client:
            session = await initialize(client, gw.url)
            async with client.stream("POST", gw.url, json=_sleep_call(79, 2500, "drain"), headers=session.headers()) as resp:
                events = _sse(resp)
                await _next(events)
                first = await _next(events)
            async with client.stream("GET", gw.url, headers=_get_headers(session, first.id)) as resp:
                assert resp.status_code == 200
                raw = EventSource(resp).aiter_sse()
                seen = [await _next(raw)]
                gw.expect_exit = True
                gw.proc.send_signal(signal.SIGINT)

                async def rest() -> None:
                    async for event in raw:
                        seen.append(event)

                await asyncio.wait_for(rest(), timeout=5)
                return seen

    seen = run(go())
    assert [event.retry for event in seen if event.retry is not None] == [1000], [(e.id, e.data, e.retry) for e in seen]
    assert not any('"id":79' in event.data for event in seen), "the response came after the stream was ended"


class CuttableLink:
    """A loopback TCP relay between a client and the gateway that the test can cut: every connection through it
    is aborted at once, and new ones are held until the link is restored (the client's network going away and
    coming back)."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.connections: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self.up = asyncio.Event()
        self.up.set()

    async def start(self) -> "CuttableLink":
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        await self.up.wait()
        gateway_reader, gateway_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        pair = (client_writer, gateway_writer)
        self.connections.add(pair)

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        await asyncio.gather(pipe(client_reader, gateway_writer), pipe(gateway_reader, client_writer))
        self.connections.discard(pair)

    def cut(self) -> None:
        self.up.clear()
        for client_writer, gateway_writer in list(self.connections):
            client_writer.transport.abort()
            gateway_writer.transport.abort()

    def restore(self) -> None:
        self.up.set()

    async def close(self) -> None:
        self.cut()
        self.server.close()
        await self.server.wait_closed()


def test_the_sdk_client_resumes_its_get_stream_and_gets_the_missed_notifications(gateways: GatewayPool) -> None:
    """The official Python SDK client (mcp 2.x) loses its connections; two tool-list changes happen meanwhile;
    its GET stream reconnects with `Last-Event-ID` and the session's message handler receives both."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    gw = gateways.start(_config())
    changer = ToolListChanger(gw)

    async def go() -> None:
        link = await CuttableLink(gw.port).start()
        notes: list[str] = []
        arrived = asyncio.Event()

        async def on_message(message: Any) -> None:
            root = getattr(message, "root", message)
            if getattr(root, "method", None) == "notifications/tools/list_changed":
                notes.append(root.method)
                arrived.set()

        async def wait_for_notes(count: int, timeout: float) -> None:
            deadline = asyncio.get_running_loop().time() + timeout
            while len(notes) < count:
                remaining = deadline - asyncio.get_running_loop().time()
                assert remaining > 0, f"{len(notes)} of {count} tools/list_changed arrived"
                arrived.clear()
                try:
                    await asyncio.wait_for(arrived.wait(), remaining)
                except asyncio.TimeoutError:
                    pass

        try:
            async with streamable_http_client(f"http://127.0.0.1:{link.port}/mcp") as (read, write):
                async with ClientSession(read, write, read_timeout_seconds=30, message_handler=on_message) as session:
                    assert (await session.initialize()).protocol_version == "2025-11-25"
                    # The SDK opens its GET stream in the background after `initialized`: change the tool list
                    # until a change reaches the session, which shows the stream is open.
                    for _ in range(20):
                        try:
                            await asyncio.to_thread(changer.change, 2)
                            break
                        except AssertionError:
                            await asyncio.sleep(0.2)
                    await wait_for_notes(1, 10)
                    notes.clear()

                    link.cut()
                    await asyncio.to_thread(changer.change)
                    await asyncio.to_thread(changer.change)
                    mark = gw.mark()
                    link.restore()
                    await wait_for_notes(2, 20)
                    await asyncio.sleep(0.5)
                    assert notes == ["notifications/tools/list_changed"] * 2, "exactly the two missed notifications"
                    record = gw.wait_log(lambda r: r.get("msg") == "stream resumed", timeout=5, since=mark)
                    assert record is not None and str(record.get("replayed")) == "2", gw.stderr_tail()

                    result = await session.call_tool("diag__echo", {"text": "still here"})
                    assert result.content[0].text == "still here"
        finally:
            await link.close()

    run(go())
