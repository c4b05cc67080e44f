"""`server.tls`: the gateway terminating TLS itself (swift-nio-ssl), with ALPN h2 and http/1.1.

A test CA, a server certificate for 127.0.0.1/localhost and client certificates are made at test
time with `cryptography`. Clients are real and independent of the gateway: curl (OpenSSL, nghttp2)
over HTTP/1.1 and HTTP/2, the official MCP Python SDK over httpx2, and Python's ssl module for
handshake-level checks (which certificate a connection got, which TLS versions are refused).
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from conftest import (
    ACCEPT,
    ALLOWED_ORIGIN,
    BACKEND_DIAG,
    GATEWAY,
    LATEST,
    Gateway,
    GatewayPool,
    gateway_env,
    http_client,
    initialize,
    make_config,
    require_binaries,
    run,
    to_yaml,
)

pytestmark = pytest.mark.timeout(90)


# ---------------------------------------------------------------------------
# A test PKI
# ---------------------------------------------------------------------------


@dataclass
class Issued:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def serial(self) -> int:
        return self.cert.serial_number


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, cert)


def issue(ca: Issued, cn: str, *, server: bool) -> Issued:
    """A leaf signed by `ca`: a server certificate for 127.0.0.1 and localhost, or a client one."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return Issued(key, builder.sign(ca.key, hashes.SHA256()))


def cert_pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def replace_file(path: Path, data: bytes) -> None:
    """Write beside the target and rename over it, as cert-manager and certbot deploy hooks do."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@dataclass
class PKI:
    dir: Path
    ca: Issued
    server: Issued
    client: Issued
    stranger: Issued  # a client certificate from a CA the gateway does not trust

    @property
    def ca_file(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def cert_file(self) -> Path:
        return self.dir / "server-chain.pem"

    @property
    def key_file(self) -> Path:
        return self.dir / "server-key.pem"

    def install_server(self, leaf: Issued) -> None:
        replace_file(self.cert_file, cert_pem(leaf.cert, self.ca.cert))
        replace_file(self.key_file, key_pem(leaf.key))

    def client_files(self, who: Issued, name: str) -> tuple[Path, Path]:
        cert, key = self.dir / f"{name}.pem", self.dir / f"{name}-key.pem"
        cert.write_bytes(cert_pem(who.cert))
        key.write_bytes(key_pem(who.key))
        return cert, key

    def tls(self, **extra: Any) -> dict[str, Any]:
        return {"cert": str(self.cert_file), "key": str(self.key_file), **extra}

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


@pytest.fixture
def pki(tmp_path: Path) -> PKI:
    ca = make_ca("mcp-gateway test CA")
    other = make_ca("some other CA")
    d = tmp_path / "pki"
    d.mkdir()
    p = PKI(d, ca, issue(ca, "gateway", server=True), issue(ca, "trusted-client", server=False),
            issue(other, "stranger", server=False))
    p.ca_file.write_bytes(cert_pem(ca.cert))
    p.install_server(p.server)
    return p


def tls_config(pki: PKI, **tls: Any) -> dict[str, Any]:
    return make_config(server={"tls": pki.tls(**tls)}, backends={"diag": dict(BACKEND_DIAG)})


def https_url(gw: Gateway, host: str = "127.0.0.1") -> str:
    return f"https://{host}:{gw.port}/mcp"


# ---------------------------------------------------------------------------
# Clients
# ---------------------------------------------------------------------------


def curl(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=timeout)


def curl_post(pki: PKI, url: str, body: dict[str, Any], *extra: str, session: str | None = None) -> tuple[int, dict[str, str], bytes, str]:
    """POST with curl; returns (status, headers, body, HTTP version curl used)."""
    headers = ["-H", "Content-Type: application/json", "-H", f"Accept: {ACCEPT}", "-H", f"MCP-Protocol-Version: {LATEST}"]
    if session:
        headers += ["-H", f"Mcp-Session-Id: {session}"]
    r = curl("--cacert", str(pki.ca_file), *extra, *headers, "-D", "-", "-o", "/dev/stderr",
             "-w", "\n%{http_version}", "--data-binary", json.dumps(body), url)
    assert r.returncode == 0, f"curl exit {r.returncode}: {r.stderr.decode(errors='replace')}"
    raw, _, version = r.stdout.decode().rpartition("\n")
    lines = [ln for ln in raw.replace("\r", "").split("\n") if ln]
    # With 100-continue or similar, several header blocks: the last status line wins.
    status_lines = [i for i, ln in enumerate(lines) if ln.startswith("HTTP/")]
    status = int(lines[status_lines[-1]].split()[1])
    hdrs = {}
    for ln in lines[status_lines[-1] + 1:]:
        name, _, value = ln.partition(":")
        hdrs[name.strip().lower()] = value.strip()
    return status, hdrs, r.stderr, version.strip()


def json_rpc_body(raw: bytes, content_type: str) -> dict[str, Any]:
    text = raw.decode()
    if content_type.startswith("text/event-stream"):
        data = [ln[len("data: "):] for ln in text.splitlines() if ln.startswith("data: ")]
        return json.loads(data[-1])
    return json.loads(text)


INIT = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": LATEST, "capabilities": {}, "clientInfo": {"name": "tls-tests", "version": "1"}},
}


def curl_session_roundtrip(pki: PKI, url: str, *extra: str) -> str:
    """initialize, notifications/initialized and a tools/call through curl; returns the HTTP version used."""
    status, hdrs, body, version = curl_post(pki, url, INIT, *extra)
    assert status == 200, body
    assert json_rpc_body(body, hdrs.get("content-type", ""))["result"]["protocolVersion"] == LATEST
    sid = hdrs["mcp-session-id"]
    status, _, _, _ = curl_post(pki, url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, *extra, session=sid)
    assert status == 202
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "diag__echo", "arguments": {"text": "over tls"}}}
    status, hdrs, body, _ = curl_post(pki, url, call, *extra, session=sid)
    assert status == 200, body
    reply = json_rpc_body(body, hdrs.get("content-type", ""))
    assert reply["id"] == 2 and reply["result"]["content"][0]["text"] == "over tls", reply
    return version


def handshake(port: int, context: ssl.SSLContext, server_hostname: str = "localhost") -> tuple[int, str]:
    """A bare TLS handshake: the serial of the certificate served, and the negotiated version."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=server_hostname) as tls:
            der = tls.getpeercert(binary_form=True)
            return x509.load_der_x509_certificate(der).serial_number, tls.version() or ""


async def echo_over_https(url: str, pki: PKI, text: str = "still-alive") -> None:
    async with http_client(verify=pki.ssl_context()) as c:
        s = await initialize(c, url)
        rep = await s.call("diag__echo", {"text": text})
        assert rep.status == 200 and rep.text() == text


def served_serial(response: httpx.Response) -> int:
    """The serial of the certificate on the connection that carried `response`."""
    ssl_object = response.extensions["network_stream"].get_extra_info("ssl_object")
    return x509.load_der_x509_certificate(ssl_object.getpeercert(binary_form=True)).serial_number


# ---------------------------------------------------------------------------
# Serving
# ---------------------------------------------------------------------------


def test_curl_over_https_http1_and_http2(gateways: GatewayPool, pki: PKI) -> None:
    gw = gateways.start(tls_config(pki))
    assert gw.find_log(lambda r: r.get("msg") == "listening" and r.get("scheme") == "https")
    assert curl_session_roundtrip(pki, https_url(gw), "--http1.1") == "1.1"
    assert curl_session_roundtrip(pki, https_url(gw), "--http2") == "2"
    # The certificate names localhost too (SAN), and ALPN offers h2 there as well.
    assert curl_session_roundtrip(pki, https_url(gw, "localhost"), "--http2") == "2"


def test_sse_get_stream_over_http2(gateways: GatewayPool, pki: PKI) -> None:
    """The GET event stream (SSE) runs on one HTTP/2 stream: keep-alive comments arrive while it is open."""
    gw = gateways.start(tls_config(pki))
    status, hdrs, _, version = curl_post(pki, https_url(gw), INIT, "--http2")
    assert status == 200 and version == "2"
    sid = hdrs["mcp-session-id"]
    r = curl("--cacert", str(pki.ca_file), "--http2", "-N", "--max-time", "2.8", "-D", "/dev/stderr",
             "-H", "Accept: text/event-stream", "-H", f"Mcp-Session-Id: {sid}", "-H", f"MCP-Protocol-Version: {LATEST}",
             https_url(gw))
    assert r.returncode == 28, f"the stream should still be open when curl gives up: exit {r.returncode} {r.stderr!r}"
    head = r.stderr.decode(errors="replace")
    assert head.startswith("HTTP/2 200"), head
    assert "content-type: text/event-stream" in head.lower()
    keepalives = [ln for ln in r.stdout.decode().splitlines() if ln.startswith(":")]
    assert len(keepalives) >= 2, f"sse_keepalive is 1s; got {r.stdout!r}"


def test_http2_streams_get_cors_headers_and_a_request_timeout(gateways: GatewayPool, pki: PKI) -> None:
    cfg = make_config(server={"tls": pki.tls(), "limits": {"max_body": "64KiB", "request_timeout": "1s"}},
                      backends={"diag": dict(BACKEND_DIAG)})
    gw = gateways.start(cfg)
    status, hdrs, _, version = curl_post(pki, https_url(gw), INIT, "--http2", "-H", f"Origin: {ALLOWED_ORIGIN}")
    assert status == 200 and version == "2"
    assert hdrs.get("access-control-allow-origin") == ALLOWED_ORIGIN, hdrs

    # A request whose body never ends: its stream gets 408 naming the limit; the connection is not the
    # unit on HTTP/2, so a new request on the same gateway is served.
    proc = subprocess.Popen(
        ["curl", "-sS", "--http2", "--cacert", str(pki.ca_file), "-D", "-", "-X", "POST",
         "-H", "Content-Type: application/json", "-H", f"Accept: {ACCEPT}", "-T", "-", https_url(gw)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(b'{"jsonrpc": "2.0",')
    proc.stdin.flush()
    time.sleep(2.5)
    out, err = proc.communicate(timeout=10)  # closes stdin: the body ends, long after the deadline
    assert out.startswith(b"HTTP/2 408"), (out, err)
    assert b"server.limits.request_timeout" in out

    # A header block over the limit is a connection error (RFC 9113 §5.4.1): GOAWAY and close, promptly,
    # not a connection left hanging.
    started = time.monotonic()
    r = curl("--http2", "--cacert", str(pki.ca_file), "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}",
             "-H", "X-Padding: " + "a" * 40000, f"https://127.0.0.1:{gw.port}/healthz")
    assert r.returncode not in (0, 28), (r.returncode, r.stdout, r.stderr)
    assert time.monotonic() - started < 5
    run(echo_over_https(https_url(gw), pki, "after a timed-out stream"))


def test_sdk_client_over_tls(gateways: GatewayPool, pki: PKI) -> None:
    gw = gateways.start(tls_config(pki))

    async def go():
        client = httpx2.AsyncClient(verify=pki.ssl_context(), timeout=httpx2.Timeout(30.0, read=60.0))
        async with client:
            async with streamable_http_client(https_url(gw), http_client=client) as (read, write):
                async with ClientSession(read, write, read_timeout_seconds=30) as session:
                    init = await session.initialize()
                    assert init.protocol_version == LATEST
                    tools = await session.list_tools()
                    assert "diag__echo" in {t.name for t in tools.tools}
                    result = await session.call_tool("diag__echo", {"text": "sdk over tls"})
                    assert not result.is_error
                    assert result.content[0].text == "sdk over tls"

    run(go())


def test_sdk_client_refuses_an_untrusted_gateway(gateways: GatewayPool, pki: PKI) -> None:
    """The client really verifies: without the test CA the handshake fails (no silent fallback)."""
    gw = gateways.start(tls_config(pki))

    async def go():
        async with httpx2.AsyncClient(verify=ssl.create_default_context(), timeout=10) as client:
            with pytest.raises(Exception) as failure:
                await client.post(https_url(gw), json=INIT, headers={"Accept": ACCEPT})
            assert "CERTIFICATE_VERIFY_FAILED" in repr(failure.value) or "certificate verify failed" in str(failure.value).lower()

    run(go())


def test_plain_http_to_the_tls_port_fails_cleanly(gateways: GatewayPool, pki: PKI) -> None:
    gw = gateways.start(tls_config(pki))

    async def go():
        async with http_client() as c:
            r = await c.post(f"http://127.0.0.1:{gw.port}/mcp", json=INIT, headers={"Accept": ACCEPT})
            assert r.status_code == 400
            assert "https://" in r.text and r.headers.get("connection") == "close"
        # Bytes that are neither HTTP nor TLS: the TLS handler refuses them and closes.
        with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
            s.sendall(b"\x00\x01\x02\x03 not a handshake \r\n\r\n")
            s.settimeout(5)
            try:
                leftover = s.recv(4096)
            except ConnectionResetError:
                leftover = b""
            assert not leftover.startswith(b"HTTP/"), leftover
        await echo_over_https(https_url(gw), pki)

    run(go())
    assert gw.proc is not None and gw.proc.poll() is None


def test_a_handshake_that_never_finishes_is_closed_after_request_timeout(gateways: GatewayPool, pki: PKI) -> None:
    cfg = make_config(server={"tls": pki.tls(), "limits": {"max_body": "64KiB", "request_timeout": "1s"}},
                      backends={"diag": dict(BACKEND_DIAG)})
    gw = gateways.start(cfg)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        # The first bytes of a TLS record header announcing a ClientHello, then nothing more.
        s.sendall(b"\x16\x03\x01\x02\x00\x01")
        started = time.monotonic()
        s.settimeout(5)
        try:
            assert s.recv(100) == b""
        except ConnectionResetError:
            pass
        waited = time.monotonic() - started
    assert 0.5 < waited < 4, f"closed after {waited:.1f}s; request_timeout is 1s"
    run(echo_over_https(https_url(gw), pki, "others unaffected"))


def test_min_version_13_refuses_a_tls12_client(gateways: GatewayPool, pki: PKI) -> None:
    gw12 = gateways.start(tls_config(pki), name="floor12")
    gw13 = gateways.start(tls_config(pki, min_version="1.3"), name="floor13")
    url12, url13 = https_url(gw12), https_url(gw13)

    # Default floor 1.2: a client that stops at TLS 1.2 is served.
    status, _, _, _ = curl_post(pki, url12, INIT, "--tls-max", "1.2")
    assert status == 200
    # Floor 1.3: the same client is refused in the handshake (curl 35: SSL connect error).
    r = curl("--cacert", str(pki.ca_file), "--tls-max", "1.2", "-o", "/dev/null", url13)
    assert r.returncode == 35, (r.returncode, r.stderr)
    assert b"version" in r.stderr.lower() or b"alert" in r.stderr.lower(), r.stderr
    # ...and Python's ssl, capped at 1.2, sees the same refusal; uncapped it gets 1.3.
    capped = pki.ssl_context()
    capped.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        handshake(gw13.port, capped)
    assert handshake(gw13.port, pki.ssl_context())[1] == "TLSv1.3"
    assert handshake(gw12.port, capped)[1] == "TLSv1.2"
    # Still serving after the refusals.
    status, _, _, _ = curl_post(pki, url13, INIT, "--tlsv1.3")
    assert status == 200


def test_mutual_tls_requires_a_client_certificate_from_client_ca(gateways: GatewayPool, pki: PKI) -> None:
    gw = gateways.start(tls_config(pki, client_ca=str(pki.ca_file)))
    url = https_url(gw)
    assert gw.find_log(lambda r: r.get("msg") == "tls certificate loaded" and r.get("client_certificates") == "required")

    # No certificate: refused. With TLS 1.3 the client learns it only after its Finished, so curl reports
    # the alert (35), a failed send (55) or a failed receive (56), depending on timing; never a response.
    refused = (35, 55, 56)
    r = curl("--cacert", str(pki.ca_file), "-o", "/dev/null", "-X", "POST", "--data-binary", json.dumps(INIT),
             "-H", "Content-Type: application/json", "-H", f"Accept: {ACCEPT}", url)
    assert r.returncode in refused, (r.returncode, r.stderr)

    # A certificate from another CA: refused.
    stranger_cert, stranger_key = pki.client_files(pki.stranger, "stranger")
    r = curl("--cacert", str(pki.ca_file), "--cert", str(stranger_cert), "--key", str(stranger_key),
             "-o", "/dev/null", "-X", "POST", "--data-binary", json.dumps(INIT),
             "-H", "Content-Type: application/json", "-H", f"Accept: {ACCEPT}", url)
    assert r.returncode in refused, (r.returncode, r.stderr)

    # The trusted client's certificate: a full session over HTTP/1.1 and HTTP/2.
    cert, key = pki.client_files(pki.client, "client")
    assert curl_session_roundtrip(pki, url, "--cert", str(cert), "--key", str(key), "--http1.1") == "1.1"
    assert curl_session_roundtrip(pki, url, "--cert", str(cert), "--key", str(key), "--http2") == "2"

    # Python's ssl: the same split.
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        ctx = pki.ssl_context()
        with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
                assert tls.recv(100) == b"", "served without a client certificate"
    ctx = pki.ssl_context()
    ctx.load_cert_chain(str(cert), str(key))
    assert handshake(gw.port, ctx)[0] == pki.server.serial


# ---------------------------------------------------------------------------
# Reload
# ---------------------------------------------------------------------------


def wait_loaded(gw: Gateway, serial: int, trigger: str, since: int, timeout: float = 8.0) -> dict[str, Any]:
    want = format(serial, "x")
    rec = gw.wait_log(
        lambda r: r.get("msg") == "tls certificate loaded" and r.get("trigger") == trigger
        and r.get("serial", "").lstrip("0") == want.lstrip("0"),
        timeout=timeout, since=since,
    )
    assert rec is not None, f"no reload ({trigger}) to serial {want}; log tail:\n{gw.stderr_tail()}"
    return rec


async def open_event_stream(client: httpx.AsyncClient, url: str) -> tuple[Any, Any, Any]:
    """A session and its open GET event stream: (session, stream context, response)."""
    s = await initialize(client, url)
    h = {"Accept": "text/event-stream", "Mcp-Session-Id": s.id, "MCP-Protocol-Version": s.version}
    ctx = client.stream("GET", url, headers=h)
    resp = await ctx.__aenter__()
    assert resp.status_code == 200
    return s, ctx, resp


async def next_keepalive(lines: Any, timeout: float = 3.0) -> str:
    async def find() -> str:
        while True:
            line = await lines.__anext__()
            if line.startswith(":"):
                return line
    return await asyncio.wait_for(find(), timeout=timeout)


def test_certificate_reload_on_file_change_keeps_live_connections(gateways: GatewayPool, pki: PKI) -> None:
    gw = gateways.start(tls_config(pki))
    url = https_url(gw)
    assert handshake(gw.port, pki.ssl_context())[0] == pki.server.serial

    async def go():
        async with http_client(verify=pki.ssl_context()) as c:
            _, ctx, resp = await open_event_stream(c, url)
            try:
                assert served_serial(resp) == pki.server.serial
                lines = resp.aiter_lines()
                await next_keepalive(lines)

                # A broken file (rotation caught half-way) keeps the old certificate, and says why.
                mark = gw.mark()
                replace_file(pki.cert_file, b"-----BEGIN CERTIFICATE-----\ntruncated")
                failed = gw.wait_log(lambda r: r.get("msg", "").startswith("tls reload failed"), timeout=8, since=mark)
                assert failed is not None and "server.tls.cert" in failed.get("error", ""), gw.stderr_tail()
                assert handshake(gw.port, pki.ssl_context())[0] == pki.server.serial

                # A new certificate (new serial, same names): new connections get it within the poll interval.
                renewed = issue(pki.ca, "gateway", server=True)
                mark = gw.mark()
                pki.install_server(renewed)
                wait_loaded(gw, renewed.serial, "file change", mark)
                assert handshake(gw.port, pki.ssl_context())[0] == renewed.serial
                await echo_over_https(url, pki, "after reload")
                status, _, _, _ = curl_post(pki, url, INIT, "--http2")
                assert status == 200

                # The stream opened before the reload is the same connection, still on the old certificate,
                # and still delivering events.
                assert served_serial(resp) == pki.server.serial
                assert (await next_keepalive(lines)).startswith(":")
                assert (await next_keepalive(lines)).startswith(":")
            finally:
                await ctx.__aexit__(None, None, None)

    run(go())


def test_certificate_reload_on_sighup(gateways: GatewayPool, pki: PKI) -> None:
    gw = gateways.start(tls_config(pki))
    url = https_url(gw)

    # SIGHUP with unchanged files: a reload all the same (the operator asked), and the process lives on.
    mark = gw.mark()
    os.kill(gw.pid, signal.SIGHUP)
    wait_loaded(gw, pki.server.serial, "SIGHUP", mark)
    assert gw.proc is not None and gw.proc.poll() is None

    async def go():
        async with http_client(verify=pki.ssl_context()) as c:
            _, ctx, resp = await open_event_stream(c, url)
            try:
                lines = resp.aiter_lines()
                await next_keepalive(lines)
                renewed = issue(pki.ca, "gateway", server=True)
                mark = gw.mark()
                pki.install_server(renewed)
                os.kill(gw.pid, signal.SIGHUP)
                wait_loaded(gw, renewed.serial, "SIGHUP", mark)
                assert handshake(gw.port, pki.ssl_context())[0] == renewed.serial
                assert served_serial(resp) == pki.server.serial
                assert (await next_keepalive(lines)).startswith(":")
            finally:
                await ctx.__aexit__(None, None, None)
        await echo_over_https(url, pki, "after sighup")

    run(go())
    # SIGHUP is trapped for reloads, SIGTERM still drains and exits 0.
    gw.expect_exit = True
    assert gw.stop() == 0
    assert gw.find_log(lambda r: r.get("msg") == "stopped")


# ---------------------------------------------------------------------------
# Startup errors
# ---------------------------------------------------------------------------


def run_gateway(command: str, workdir: Path, config: dict[str, Any]) -> subprocess.CompletedProcess:
    require_binaries()
    path = workdir / f"{command}.yaml"
    path.write_text(to_yaml(config) + "\n")
    return subprocess.run([str(GATEWAY), command, "--config", str(path)], capture_output=True, timeout=30,
                          cwd=workdir, env=gateway_env(), stdin=subprocess.DEVNULL)


def test_unusable_tls_files_stop_startup_with_exit_2(tmp_path: Path, pki: PKI) -> None:
    missing = dict(pki.tls(), cert=str(pki.dir / "absent.pem"))
    for command in ("check", "serve"):
        r = run_gateway(command, tmp_path, make_config(server={"tls": missing}, backends={"diag": dict(BACKEND_DIAG)}))
        assert r.returncode == 2, (command, r.returncode, r.stderr)
        out = (r.stdout + r.stderr).decode()
        assert "server.tls.cert" in out and "absent.pem" in out and "does not exist" in out, out

    r = run_gateway("check", tmp_path, make_config(server={"tls": pki.tls(min_version="1.1")}, backends={"diag": dict(BACKEND_DIAG)}))
    assert r.returncode == 2 and b"server.tls.min_version" in r.stderr, r.stderr

    # Readable files that do not make a certificate and key: serve parses them before listening.
    garbage = pki.dir / "garbage.pem"
    garbage.write_bytes(b"not a certificate\n")
    r = run_gateway("serve", tmp_path, make_config(server={"tls": dict(pki.tls(), cert=str(garbage))}, backends={"diag": dict(BACKEND_DIAG)}))
    assert r.returncode == 2 and b"server.tls.cert" in r.stderr and b"is not a PEM certificate file" in r.stderr, r.stderr

    other = issue(pki.ca, "other", server=True)
    other_key = pki.dir / "other-key.pem"
    other_key.write_bytes(key_pem(other.key))
    r = run_gateway("serve", tmp_path, make_config(server={"tls": dict(pki.tls(), key=str(other_key))}, backends={"diag": dict(BACKEND_DIAG)}))
    assert r.returncode == 2 and b"server.tls.key" in r.stderr and b"does not match" in r.stderr, r.stderr
    assert b"BEGIN" not in r.stderr, "key material must never be printed"
