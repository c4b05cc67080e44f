"""Distributed tracing end to end: a client's W3C `traceparent` (https://www.w3.org/TR/trace-context/) goes
through the gateway's spans, exported over OTLP/HTTP to a real receiver (otlp_receiver.py, decoding with
opentelemetry-proto), and on to the backend in `params._meta.traceparent` (the 2026-07-28 convention).

The ExampleServer's `trace_meta` tool answers with the JSON of the `_meta` object it received, so the test sees
exactly what reached the backend. Expected spans per traced request (GatewayTracing, RequestObservation):
  HTTP exchange   kind SERVER, "POST /mcp", parent: the client's span
  JSON-RPC        "tools/call example__trace_meta", mcp.method.name=tools/call, parent: the HTTP span
  backend call    kind CLIENT, "tools/call example", mcp.backend=example, parent: the JSON-RPC span
and the backend's `_meta.traceparent` names the backend span as its parent."""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any

import pytest

from conftest import BACKEND_EXAMPLE, GatewayPool, Session, default_headers, http_client, initialize, make_config, run
from otlp_receiver import OTLPReceiver, ReceivedSpan

pytestmark = pytest.mark.timeout(90)

SPAN_TIMEOUT = 15.0  # the exporter batches (swift-otel's batch span processor)
QUIET_PERIOD = 6.0  # long enough for a batch to have been sent, had there been spans
TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
SERVICE = "mcp-gateway-test"


def tracing_config(endpoint: str, ratio: float) -> dict[str, Any]:
    cfg = make_config(backends={"example": dict(BACKEND_EXAMPLE)})
    cfg["observability"]["tracing"] = {"otlp_endpoint": endpoint, "sample_ratio": ratio, "service_name": SERVICE}
    return cfg


def new_client_context(sampled: bool = True) -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"


async def call_trace_meta(session: Session, headers: dict[str, str]) -> dict[str, Any]:
    """tools/call example__trace_meta with extra HTTP headers; returns the `_meta` the backend received."""
    rep = await session.request("tools/call", {"name": "example__trace_meta", "arguments": {}}, headers=session.headers(**headers))
    assert rep.status == 200, f"HTTP {rep.status}: {rep.body[:300]!r}"
    meta = json.loads(rep.text())
    assert isinstance(meta, dict), meta
    return meta


def by_id(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    return {s.span_id: s for s in spans}


def describe(spans: list[ReceivedSpan]) -> str:
    return "\n".join(f"  {s.kind} {s.name!r} trace={s.trace_id} span={s.span_id} parent={s.parent_span_id or '-'} {s.attributes}"
                     for s in spans) or "  (none)"


def find_call_spans(spans: list[ReceivedSpan], trace_id: str) -> tuple[ReceivedSpan, ReceivedSpan, ReceivedSpan] | None:
    """(HTTP, JSON-RPC, backend) spans of the trace_meta call in `trace_id`, linked parent to child, or None."""
    in_trace = [s for s in spans if s.trace_id == trace_id]
    ids = by_id(in_trace)
    for backend in in_trace:
        if backend.kind != "SPAN_KIND_CLIENT" or backend.attributes.get("mcp.backend") != "example":
            continue
        rpc = ids.get(backend.parent_span_id)
        if rpc is None or rpc.attributes.get("mcp.method.name") != "tools/call":
            continue
        http = ids.get(rpc.parent_span_id)
        if http is not None:
            return http, rpc, backend
    return None


def test_client_trace_continues_through_gateway_spans_to_the_backend(gateways: GatewayPool) -> None:
    with OTLPReceiver() as receiver:
        gw = gateways.start(tracing_config(receiver.endpoint, 1.0), name="traced")
        trace_id, client_span, traceparent = new_client_context()
        headers = {"traceparent": traceparent, "tracestate": "vendor=opaque-1"}

        async def go() -> dict[str, Any]:
            async with http_client() as c:
                # Every request of the session carries the client's context, so every span is in its trace.
                s = await initialize(c, gw.url, headers={**default_headers(), **headers}, initialized=False)
                r = await c.post(gw.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=s.headers(**headers))
                assert r.status_code == 202
                return await call_trace_meta(s, headers)

        meta = run(go())
        spans = receiver.wait_for(lambda got: find_call_spans(got, trace_id) is not None, SPAN_TIMEOUT)
        found = find_call_spans(spans, trace_id)
        assert found is not None, (
            f"no linked HTTP -> JSON-RPC -> backend spans for trace {trace_id} within {SPAN_TIMEOUT}s "
            f"(receiver errors: {receiver.errors}); spans received:\n{describe(spans)}"
        )
        http, rpc, backend = found

        # Every span the gateway exported belongs to the client's trace (each request carried its traceparent).
        assert {s.trace_id for s in spans} == {trace_id}, describe(spans)
        assert {s.service_name for s in spans} == {SERVICE}, {s.service_name for s in spans}
        assert all(s.content_type in ("application/x-protobuf", "application/json") for s in spans)

        assert http.kind == "SPAN_KIND_SERVER", describe([http])
        assert http.name.startswith("POST"), http.name
        assert http.parent_span_id == client_span, f"HTTP span's parent {http.parent_span_id}, client span {client_span}"
        assert rpc.name == "tools/call example__trace_meta", rpc.name
        assert rpc.attributes.get("mcp.method.name") == "tools/call"
        assert backend.name == "tools/call example", backend.name
        assert backend.kind == "SPAN_KIND_CLIENT"

        # What reached the backend: the client's trace, continued from the backend-call span; tracestate as sent.
        m = TRACEPARENT.fullmatch(str(meta.get("traceparent")))
        assert m, f"backend _meta.traceparent malformed or missing: {meta}"
        assert m.group(1) == trace_id, f"backend got trace {m.group(1)}, client sent {trace_id}"
        assert m.group(2) == backend.span_id, f"backend's parent {m.group(2)} is not the backend span {backend.span_id}"
        assert meta.get("tracestate") == "vendor=opaque-1", meta

        # The access line carries the same trace and the JSON-RPC span.
        line = gw.wait_log(lambda r: r.get("msg") == "request" and r.get("tool") == "example__trace_meta")
        assert line is not None, gw.stderr_tail()
        assert line.get("trace_id") == trace_id, line
        assert line.get("span_id") == rpc.span_id, line


def test_gateway_starts_a_trace_when_the_client_sends_none(gateways: GatewayPool) -> None:
    with OTLPReceiver() as receiver:
        gw = gateways.start(tracing_config(receiver.endpoint, 1.0), name="root")

        async def go() -> dict[str, Any]:
            async with http_client() as c:
                s = await initialize(c, gw.url)
                return await call_trace_meta(s, {})

        meta = run(go())
        m = TRACEPARENT.fullmatch(str(meta.get("traceparent")))
        assert m, f"backend _meta.traceparent malformed or missing: {meta}"
        trace_id = m.group(1)
        spans = receiver.wait_for(lambda got: find_call_spans(got, trace_id) is not None, SPAN_TIMEOUT)
        found = find_call_spans(spans, trace_id)
        assert found is not None, f"no spans for the gateway's own trace {trace_id}:\n{describe(spans)}"
        http, _rpc, backend = found
        assert http.parent_span_id == "", f"the gateway's HTTP span should be the trace's root: {describe([http])}"
        assert m.group(2) == backend.span_id


def test_sample_ratio_zero_exports_nothing_but_still_propagates(gateways: GatewayPool) -> None:
    with OTLPReceiver() as receiver:
        gw = gateways.start(tracing_config(receiver.endpoint, 0.0), name="unsampled")
        trace_id, _client_span, traceparent = new_client_context(sampled=True)

        async def go() -> list[dict[str, Any]]:
            async with http_client() as c:
                s = await initialize(c, gw.url)
                return [await call_trace_meta(s, {"traceparent": traceparent}) for _ in range(3)]

        metas = run(go())
        for meta in metas:
            m = TRACEPARENT.fullmatch(str(meta.get("traceparent")))
            assert m, f"backend _meta.traceparent malformed or missing: {meta}"
            assert m.group(1) == trace_id, f"backend got trace {m.group(1)}, client sent {trace_id}"
            assert m.group(2) != "0" * 16
        time.sleep(QUIET_PERIOD)
        assert receiver.snapshot() == [], f"sample_ratio 0.0 exported spans:\n{describe(receiver.snapshot())}"
        assert receiver.errors == [], receiver.errors
        line = gw.wait_log(lambda r: r.get("msg") == "request" and r.get("tool") == "example__trace_meta")
        assert line is not None and line.get("trace_id") == trace_id, line


def test_otlp_receiver_decodes_protobuf_and_json() -> None:
    """The receiver itself, on both OTLP/HTTP encodings, so an exporter switching to JSON is still understood."""
    import base64

    import httpx
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    attr = resource_spans.resource.attributes.add()
    attr.key, attr.value.string_value = "service.name", SERVICE
    span = resource_spans.scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name, span.kind = bytes.fromhex(trace_id), bytes.fromhex(span_id), "POST /mcp", 2
    as_json = json_format.MessageToDict(request)
    otlp_span = as_json["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    for key in ("traceId", "spanId"):
        otlp_span[key] = base64.b64decode(otlp_span[key]).hex()  # OTLP/JSON ids are hex

    with OTLPReceiver() as receiver:
        url = f"{receiver.endpoint}/v1/traces"
        assert httpx.post(url, content=request.SerializeToString(), headers={"Content-Type": "application/x-protobuf"}).status_code == 200
        assert httpx.post(url, content=json.dumps(as_json), headers={"Content-Type": "application/json"}).status_code == 200
        assert httpx.post(url, content=b"x", headers={"Content-Type": "text/plain"}).status_code == 415
        got = receiver.snapshot()
    assert [(s.trace_id, s.span_id, s.name, s.kind, s.service_name, s.content_type) for s in got] == [
        (trace_id, span_id, "POST /mcp", "SPAN_KIND_SERVER", SERVICE, "application/x-protobuf"),
        (trace_id, span_id, "POST /mcp", "SPAN_KIND_SERVER", SERVICE, "application/json"),
    ]
