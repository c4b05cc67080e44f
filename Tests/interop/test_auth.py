"""The gateway as an OAuth 2.1 resource server, with a real issuer made at test time.

Keys are generated in the test, the JWKS is served over loopback HTTP by the test, and tokens are signed
with PyJWT: every check of the spec's authorization section (digest §4, MUST items 27-33) against the real
binary, plus API keys, tenant isolation and step-up scopes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import httpx
import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from conftest import (
    ACCEPT,
    BACKEND_DIAG,
    BACKEND_EXAMPLE,
    Gateway,
    GatewayPool,
    make_config,
    run,
)

pytestmark = pytest.mark.timeout(90)

AUDIENCE = "http://127.0.0.1/mcp"
SCOPE = "mcp:tools"
API_KEY = "gw-test-key-7f3a9c1d"


def b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Issuer:
    """An RS256 key set, served as a JWKS over loopback HTTP; `rotate()` adds a key."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.published: list[str] = []
        self.add_key("k1", publish=True)
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = json.dumps(issuer.jwks()).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def add_key(self, kid: str, publish: bool) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if publish:
            self.published.append(kid)

    def publish(self, kid: str) -> None:
        self.published.append(kid)

    def jwks(self) -> dict[str, Any]:
        out = []
        for kid in self.published:
            numbers = self.keys[kid].public_key().public_numbers()
            out.append({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64url_uint(numbers.n), "e": b64url_uint(numbers.e)})
        return {"keys": out}

    def token(self, kid: str = "k1", **overrides: Any) -> str:
        now = int(time.time())
        claims = {"iss": self.url, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300, "scope": SCOPE, "tenant": "acme"}
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, self.keys[kid], algorithm="RS256", headers={"kid": kid})

    def close(self) -> None:
        self.server.shutdown()


def auth_config(issuer: Issuer, mode: str = "oauth_or_api_key") -> dict[str, Any]:
    cfg = make_config(backends={
        "diag": dict(BACKEND_DIAG),
        "example": dict(BACKEND_EXAMPLE, access={"scopes": ["example:use"]}),
        "acme": dict(BACKEND_DIAG, access={"tenants": ["acme"]}),
    })
    cfg["auth"] = {
        "mode": mode,
        "oauth": {
            "issuer": issuer.url,
            "audience": AUDIENCE,
            "jwks_url": issuer.url + "/jwks.json",
            "required_scopes": [SCOPE],
            "tenant_claim": "tenant",
            "leeway": "5s",
        },
        "api_keys": [{"id": "ci-bot", "sha256": hashlib.sha256(API_KEY.encode()).hexdigest(), "scopes": [SCOPE], "tenant": "other"}],
    }
    cfg["observability"] = {"log": {"format": "json", "level": "debug"}, "audit": {"path": "audit.jsonl"}}
    return cfg


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    iss = Issuer()
    yield iss
    iss.close()


@pytest.fixture(scope="module")
def auth_gw(issuer: Issuer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    pool = GatewayPool(tmp_path_factory.mktemp("auth"))
    gw = pool.start(auth_config(issuer), name="auth")
    yield gw
    assert gw.stop() == 0


INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "auth-tests", "version": "1"}}}


def post(gw: Gateway, body: Any, token: str | None = None, session: str | None = None, extra: dict[str, str] | None = None) -> httpx.Response:
    headers = {"content-type": "application/json", "accept": ACCEPT}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    if session:
        headers["mcp-session-id"] = session
        headers["mcp-protocol-version"] = "2025-11-25"
    headers.update(extra or {})
    return httpx.post(gw.url, json=body, headers=headers, timeout=15)


def open_session(gw: Gateway, token: str | None = None, extra: dict[str, str] | None = None) -> str:
    r = post(gw, INIT, token, extra=extra)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.headers["mcp-session-id"]


def call(gw: Gateway, session: str, token: str | None, name: str, arguments: dict[str, Any], extra: dict[str, str] | None = None) -> httpx.Response:
    return post(gw, {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": name, "arguments": arguments}}, token, session, extra)


def challenge(r: httpx.Response) -> str:
    return r.headers.get("www-authenticate", "")


def test_metadata_is_served_at_both_well_known_paths_without_auth(auth_gw: Gateway, issuer: Issuer) -> None:
    for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
        r = httpx.get(auth_gw.base + path, headers={"origin": "https://some-browser-app.example"}, timeout=10)
        assert r.status_code == 200, (path, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/json")
        assert r.headers.get("access-control-allow-origin") == "*"
        doc = r.json()
        assert doc["resource"] == AUDIENCE and doc["authorization_servers"] == [issuer.url], doc


def test_no_token_is_401_with_resource_metadata_and_scope(auth_gw: Gateway) -> None:
    r = post(auth_gw, INIT)
    assert r.status_code == 401, r.text
    www = challenge(r)
    assert www.startswith("Bearer ") and 'resource_metadata="http://127.0.0.1/.well-known/oauth-protected-resource/mcp"' in www, www
    assert f'scope="{SCOPE}"' in www and "error=" not in www, www
    # GET and DELETE need authentication too (MUST item 28).
    assert httpx.get(auth_gw.url, headers={"accept": "text/event-stream"}, timeout=10).status_code == 401
    assert httpx.delete(auth_gw.url, headers={"mcp-session-id": "x"}, timeout=10).status_code == 401


@pytest.mark.parametrize("case", [
    "expired", "not_yet_valid", "wrong_audience", "wrong_issuer", "alg_none", "hs256_with_public_key",
    "bad_signature", "garbage", "no_sub",
])
def test_invalid_tokens_are_401_invalid_token(auth_gw: Gateway, issuer: Issuer, case: str) -> None:
    now = int(time.time())
    if case == "expired":
        token = issuer.token(exp=now - 60, iat=now - 400)
    elif case == "not_yet_valid":
        token = issuer.token(nbf=now + 600)
    elif case == "wrong_audience":
        token = issuer.token(aud="https://other.example/mcp")
    elif case == "wrong_issuer":
        token = issuer.token(iss="https://evil.example")
    elif case == "alg_none":
        token = jwt.encode({"iss": issuer.url, "aud": AUDIENCE, "sub": "alice", "exp": now + 300, "scope": SCOPE}, None, algorithm="none")
    elif case == "hs256_with_public_key":
        pem = issuer.keys["k1"].public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode()).rstrip(b"=")
        payload = base64.urlsafe_b64encode(json.dumps({"iss": issuer.url, "aud": AUDIENCE, "sub": "alice", "exp": now + 300, "scope": SCOPE}).encode()).rstrip(b"=")
        import hmac
        sig = base64.urlsafe_b64encode(hmac.new(pem, header + b"." + payload, hashlib.sha256).digest()).rstrip(b"=")
        token = (header + b"." + payload + b"." + sig).decode()
    elif case == "bad_signature":
        good = issuer.token()
        head, body, sig = good.split(".")
        token = f"{head}.{body}.{sig[:-6]}AAAAAA"
    elif case == "garbage":
        token = "not-a-jwt"
    else:
        token = issuer.token(sub=None)
    since = auth_gw.mark()
    r = post(auth_gw, INIT, token)
    assert r.status_code == 401, (case, r.status_code, r.text)
    www = challenge(r)
    assert 'error="invalid_token"' in www and "resource_metadata=" in www, www
    assert token not in auth_gw.stderr_tail(400), "a token must never be logged"
    assert since <= auth_gw.mark()


def test_valid_token_full_flow(auth_gw: Gateway, issuer: Issuer) -> None:
    token = issuer.token()
    session = open_session(auth_gw, token)
    r = call(auth_gw, session, token, "diag__echo", {"text": "authorised"})
    assert r.status_code == 200 and r.json()["result"]["content"][0]["text"] == "authorised", r.text
    # Sessions are not authentication: the same session without the token is 401.
    assert call(auth_gw, session, None, "diag__echo", {"text": "x"}).status_code == 401


def test_missing_required_scope_is_403_insufficient_scope(auth_gw: Gateway, issuer: Issuer) -> None:
    r = post(auth_gw, INIT, issuer.token(scope="other:scope"))
    assert r.status_code == 403, r.text
    www = challenge(r)
    assert 'error="insufficient_scope"' in www and f'scope="{SCOPE}"' in www and "resource_metadata=" in www, www


def test_step_up_scope_on_a_backend_is_403_naming_it(auth_gw: Gateway, issuer: Issuer) -> None:
    token = issuer.token()
    session = open_session(auth_gw, token)
    r = post(auth_gw, {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, token, session)
    names = [t["name"] for t in r.json()["result"]["tools"]]
    assert "example__echo" in names, "step-up backends are listed to everyone who can see them"
    r = call(auth_gw, session, token, "example__echo", {"text": "x"})
    assert r.status_code == 403, r.text
    assert 'error="insufficient_scope"' in challenge(r) and 'scope="example:use"' in challenge(r), challenge(r)
    assert r.json()["error"]["data"]["scopes"] == ["example:use"]
    stepped_up = issuer.token(scope=f"{SCOPE} example:use")
    session2 = open_session(auth_gw, stepped_up)
    r = call(auth_gw, session2, stepped_up, "example__echo", {"text": "after step-up"})
    assert r.status_code == 200 and r.json()["result"]["content"][0]["text"] == "after step-up", r.text


def test_tenant_isolation_hides_tools_and_answers_as_unknown(auth_gw: Gateway, issuer: Issuer) -> None:
    acme = issuer.token(sub="ann", tenant="acme")
    other = issuer.token(sub="bob", tenant="globex")
    for token, sees in ((acme, True), (other, False)):
        session = open_session(auth_gw, token)
        r = post(auth_gw, {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, token, session)
        names = [t["name"] for t in r.json()["result"]["tools"]]
        assert ("acme__echo" in names) == sees, names
        r = call(auth_gw, session, token, "acme__echo", {"text": "hi"})
        if sees:
            assert r.json()["result"]["content"][0]["text"] == "hi"
        else:
            error = r.json()["error"]
            unknown = call(auth_gw, session, token, "nosuch__echo", {"text": "hi"}).json()["error"]
            assert error["code"] == unknown["code"] == -32602, error
            assert not any(n.startswith("acme__") for n in error["data"]["suggestions"]), "suggestions must not reveal hidden tools"
            assert error["message"] == "Unknown tool 'acme__echo'; call tools/list for the available tools", error


def test_a_session_presented_by_another_principal_is_404(auth_gw: Gateway, issuer: Issuer) -> None:
    alice = issuer.token(sub="alice")
    mallory = issuer.token(sub="mallory")
    session = open_session(auth_gw, alice)
    r = call(auth_gw, session, mallory, "diag__echo", {"text": "steal"})
    assert r.status_code == 404, r.text
    assert call(auth_gw, session, alice, "diag__echo", {"text": "mine"}).status_code == 200


def test_unknown_kid_then_rotation(issuer: Issuer, gateways: GatewayPool) -> None:
    cfg = auth_config(issuer)
    gw = gateways.start(cfg, name="rotation")
    issuer.add_key("k2", publish=False)
    token = issuer.token(kid="k2")
    r = post(gw, INIT, token)
    assert r.status_code == 401 and 'error="invalid_token"' in challenge(r), r.text
    issuer.publish("k2")
    deadline = time.monotonic() + 30
    while True:  # the refresh floor (10 s) bounds how often an unknown kid refetches the JWKS
        r = post(gw, INIT, token)
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert r.status_code == 200, r.text


def test_api_key_in_either_header(auth_gw: Gateway) -> None:
    for extra, token in (({"x-api-key": API_KEY}, None), ({}, API_KEY)):
        session = open_session(auth_gw, token, extra)
        r = call(auth_gw, session, token, "diag__echo", {"text": "key"}, extra)
        assert r.status_code == 200, r.text
    r = post(auth_gw, INIT, extra={"x-api-key": "wrong-key"})
    assert r.status_code == 401
    r = post(auth_gw, INIT, "wrong-key")
    assert r.status_code == 401


def test_token_in_query_string_is_not_accepted(auth_gw: Gateway, issuer: Issuer) -> None:
    token = issuer.token()
    r = httpx.post(auth_gw.url + f"?access_token={token}", json=INIT, headers={"content-type": "application/json"}, timeout=10)
    assert r.status_code == 401


def test_python_sdk_client_with_a_bearer_token(auth_gw: Gateway, issuer: Issuer) -> None:
    token = issuer.token()

    async def go():
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            async with streamable_http_client(auth_gw.url, http_client=client) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    tools = await session.list_tools()
                    assert "diag__echo" in [t.name for t in tools.tools]
                    result = await session.call_tool("diag__echo", {"text": "via sdk"})
                    assert result.content[0].text == "via sdk"

    run(go())


def test_no_token_in_any_log(auth_gw: Gateway, issuer: Issuer) -> None:
    token = issuer.token(sub="logcheck")
    session = open_session(auth_gw, token)
    call(auth_gw, session, token, "diag__echo", {"text": "x"})
    post(auth_gw, INIT, token + "tampered")
    text = "\n".join(auth_gw.raw_log_lines())
    audit = (auth_gw.workdir / "audit.jsonl").read_text()
    assert '"tool":"diag__echo"' in audit.replace(" ", ""), "the audit log was written"
    for secret in (token, token.split(".")[2], API_KEY):
        assert secret not in text and secret not in audit


def test_issuer_down_at_start_refuses_then_recovers(tmp_path: Path, gateways: GatewayPool) -> None:
    iss = Issuer()
    url = iss.url
    iss.close()  # the JWKS endpoint is down when the gateway starts
    cfg = auth_config(iss)
    gw = gateways.start(cfg, name="down")
    r = post(gw, INIT, "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.e30.c2ln")
    assert r.status_code == 503, (r.status_code, r.text)
    assert url in cfg["auth"]["oauth"]["jwks_url"]


def fnv1a64(text: str) -> str:
    h = 0xCBF29CE484222325
    for b in text.encode():
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return format(h, "x")


def test_secrets_reach_children_by_environment_and_appear_nowhere(gateways: GatewayPool, tmp_path: Path) -> None:
    secret = "s3cr3t-backend-credential-9d2f"
    secret_file = tmp_path / "backend-secret"
    secret_file.write_text(secret + "\n")
    example = dict(BACKEND_EXAMPLE, env={"UPSTREAM_TOKEN": f"${{file:{secret_file}}}"})
    gw = gateways.start(make_config(backends={"example": example}), name="secrets")

    async def go():
        from conftest import http_client, initialize
        async with http_client() as c:
            s = await initialize(c, gw.url)
            rep = await s.call("example__env_digest", {"name": "UPSTREAM_TOKEN"})
            assert rep.result["content"][0]["text"] == f"{len(secret)}:{fnv1a64(secret)}", rep.response

    run(go())
    assert secret not in "\n".join(gw.raw_log_lines())
    r = httpx.get(gw.base + "/version", timeout=10)
    assert secret not in r.text


def test_check_never_prints_a_secret(tmp_path: Path) -> None:
    import subprocess
    from conftest import GATEWAY, gateway_env, require_binaries, to_yaml
    require_binaries()
    bad_key = "definitely-not-a-32-byte-key-but-secret"
    key_file = tmp_path / "session-key"
    key_file.write_text(bad_key)
    cfg = make_config(backends={"diag": dict(BACKEND_DIAG)}, sessions={"keys": [f"${{file:{key_file}}}"]})
    cfg["auth"] = {"mode": "oauth", "oauth": {"issuer": "https://auth.example.com", "audience": AUDIENCE, "jwks_url": "https://auth.example.com/jwks",
                   "introspection": {"url": "https://auth.example.com/i", "client_id": "gw", "client_secret": "${INTROSPECT_SECRET}"}}}
    f = tmp_path / "secrets.yaml"
    f.write_text(to_yaml(cfg) + "\n")
    p = subprocess.run([str(GATEWAY), "check", "--config", str(f)], capture_output=True, text=True, timeout=30,
                       env=gateway_env({"INTROSPECT_SECRET": "introspection-secret-value"}))
    out = p.stdout + p.stderr
    assert p.returncode == 2, out
    assert "sessions.keys[0]" in out, out
    assert bad_key not in out and "introspection-secret-value" not in out, out


class Introspection:
    """An RFC 7662 endpoint: Basic client authentication, one known opaque token; counts its calls."""

    def __init__(self, issuer_url: str) -> None:
        self.calls = 0
        self.tokens: dict[str, dict[str, Any]] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                outer.calls += 1
                length = int(self.headers.get("content-length", "0"))
                form = dict(p.split("=", 1) for p in self.rfile.read(length).decode().split("&") if "=" in p)
                expected = "Basic " + base64.b64encode(b"gw:introspection-client-secret").decode()
                if self.headers.get("authorization") != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps(outer.tokens.get(form.get("token", ""), {"active": False})).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/introspect"
        now = int(time.time())
        self.tokens["opaque-valid-token-1234"] = {"active": True, "sub": "olivia", "scope": SCOPE, "exp": now + 300, "aud": AUDIENCE, "iss": issuer_url}
        self.tokens["opaque-other-audience"] = {"active": True, "sub": "olivia", "scope": SCOPE, "exp": now + 300, "aud": "https://elsewhere.example", "iss": issuer_url}


def test_opaque_tokens_through_introspection(issuer: Issuer, gateways: GatewayPool) -> None:
    intro = Introspection(issuer.url)
    cfg = auth_config(issuer)
    cfg["auth"]["oauth"]["introspection"] = {"url": intro.url, "client_id": "gw", "client_secret": "introspection-client-secret"}
    gw = gateways.start(cfg, name="introspection")
    session = open_session(gw, "opaque-valid-token-1234")
    r = call(gw, session, "opaque-valid-token-1234", "diag__echo", {"text": "opaque"})
    assert r.status_code == 200 and r.json()["result"]["content"][0]["text"] == "opaque", r.text
    assert intro.calls == 1, "the answer is cached by the token's hash until it expires"
    for token in ("opaque-unknown", "opaque-other-audience"):
        r = post(gw, INIT, token)
        assert r.status_code == 401 and 'error="invalid_token"' in challenge(r), (token, r.text)
    # JWTs are still verified locally, without introspection.
    calls = intro.calls
    assert post(gw, INIT, issuer.token()).status_code == 200
    assert intro.calls == calls
    logs = "\n".join(gw.raw_log_lines())
    assert "introspection-client-secret" not in logs and "opaque-valid-token-1234" not in logs
    intro.server.shutdown()
