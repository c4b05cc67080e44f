"""A small OTLP/HTTP trace receiver for the tracing tests (OpenTelemetry Protocol spec, "OTLP/HTTP").

Accepts `POST /v1/traces` with an `ExportTraceServiceRequest` as binary protobuf
(`application/x-protobuf`) or as OTLP/JSON (`application/json`, whose trace and span ids are hex strings,
not base64: spec "JSON Protobuf Encoding"), optionally gzip-compressed, decodes it with the generated
classes of `opentelemetry-proto`, and keeps every span. It answers as a collector does: 200 with an
`ExportTraceServiceResponse` in the request's encoding, 415 for another content type, 404 for another path,
400 for a body that does not decode (each refusal is recorded in `errors`, so a test can say why nothing
arrived)."""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto
from opentelemetry.proto.trace.v1.trace_pb2 import Status as StatusProto

TRACES_PATH = "/v1/traces"


@dataclass
class ReceivedSpan:
    trace_id: str  # 32 lowercase hex digits
    span_id: str  # 16 lowercase hex digits
    parent_span_id: str  # "" for a root span
    name: str
    kind: str  # SPAN_KIND_SERVER, SPAN_KIND_CLIENT, ...
    attributes: dict[str, Any]
    resource: dict[str, Any]
    status_code: str
    content_type: str = ""

    @property
    def service_name(self) -> Any:
        return self.resource.get("service.name")


def _any_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def _attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: _any_value(kv.value) for kv in kvs}


def _hex_ids_to_base64(obj: Any) -> Any:
    """OTLP/JSON carries traceId/spanId/parentSpanId as hex; protobuf's JSON mapping expects base64 for bytes."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if key in ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id") and isinstance(value, str):
                out[key] = base64.b64encode(bytes.fromhex(value)).decode() if value else ""
            else:
                out[key] = _hex_ids_to_base64(value)
        return out
    if isinstance(obj, list):
        return [_hex_ids_to_base64(v) for v in obj]
    return obj


@dataclass
class OTLPReceiver:
    host: str = "127.0.0.1"
    spans: list[ReceivedSpan] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> "OTLPReceiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep pytest's output clean
                pass

            def do_POST(self) -> None:
                receiver._handle(self)

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> "OTLPReceiver":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        """The base URL to configure as `otlp_endpoint` (the exporter appends /v1/traces)."""
        return f"http://{self.host}:{self.port}"

    # -- queries -----------------------------------------------------------
    def snapshot(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)

    def wait_for(self, predicate: Callable[[list[ReceivedSpan]], bool], timeout: float) -> list[ReceivedSpan]:
        """Polls until `predicate(spans)` holds or `timeout` passes; returns the spans seen either way."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.snapshot()
            if predicate(spans) or time.monotonic() >= deadline:
                return spans
            time.sleep(0.1)

    # -- the exchange ------------------------------------------------------
    def _handle(self, http: BaseHTTPRequestHandler) -> None:
        length = int(http.headers.get("Content-Length") or 0)
        body = http.rfile.read(length) if length else b""
        ctype = (http.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        path = http.path.split("?")[0]
        with self._lock:
            self.requests += 1
        if path != TRACES_PATH:
            return self._refuse(http, 404, f"POST to {path}, not {TRACES_PATH}")
        if ctype not in ("application/x-protobuf", "application/json"):
            return self._refuse(http, 415, f"unsupported Content-Type {ctype!r}")
        try:
            if (http.headers.get("Content-Encoding") or "").lower() == "gzip":
                body = gzip.decompress(body)
            request = ExportTraceServiceRequest()
            if ctype == "application/x-protobuf":
                request.ParseFromString(body)
            else:
                json_format.ParseDict(_hex_ids_to_base64(json.loads(body)), request)
        except Exception as exc:  # a body that does not decode is the exporter's bug: say what it was
            return self._refuse(http, 400, f"undecodable {ctype} body ({len(body)} bytes): {exc}")
        received = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(ReceivedSpan(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=SpanProto.SpanKind.Name(span.kind),
                        attributes=_attributes(span.attributes),
                        resource=resource,
                        status_code=StatusProto.StatusCode.Name(span.status.code),
                        content_type=ctype,
                    ))
        with self._lock:
            self.spans.extend(received)
        response = ExportTraceServiceResponse()
        if ctype == "application/x-protobuf":
            payload = response.SerializeToString()
        else:
            payload = json_format.MessageToJson(response).encode()
        http.send_response(200)
        http.send_header("Content-Type", ctype)
        http.send_header("Content-Length", str(len(payload)))
        http.end_headers()
        http.wfile.write(payload)

    def _refuse(self, http: BaseHTTPRequestHandler, status: int, why: str) -> None:
        with self._lock:
            self.errors.append(why)
        payload = why.encode()
        http.send_response(status)
        http.send_header("Content-Type", "text/plain")
        http.send_header("Content-Length", str(len(payload)))
        http.end_headers()
        http.wfile.write(payload)
