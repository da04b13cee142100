"""The Host allow-list (DNS rebinding), HSTS over TLS, and Swagger UI from the package."""

from __future__ import annotations

import hashlib
import json
import shutil
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest

from tierq.api import ApiServer
from tierq.api.hosts import LOOPBACK_NAMES, allowed_hosts, host_name
from tierq.engine import EmbeddedNats

from .support import api_config

pytestmark = pytest.mark.integration

VENDOR = Path(__file__).resolve().parents[2] / "tierq" / "dashboard" / "static"


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("localhost:8000", "localhost"),
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]:8463", "::1"),
        ("Evil.Example:8463", "evil.example"),
        ("::1", "::1"),
    ],
)
def test_host_names(header: str, name: str) -> None:
    assert host_name(header) == name


def test_which_hosts_are_allowed() -> None:
    assert allowed_hosts((), ["127.0.0.1"]) == LOOPBACK_NAMES
    assert allowed_hosts((), ["127.0.0.2"]) == LOOPBACK_NAMES | {"127.0.0.2"}
    assert allowed_hosts((), ["0.0.0.0"]) is None  # public: its tokens guard it
    assert allowed_hosts(("Tierq.Example:443",), ["0.0.0.0"]) == {"tierq.example"}


async def test_dns_rebinding_is_refused(nats_server: EmbeddedNats) -> None:
    """The open loopback API, reached through a rebound name: Host and Origin both evil."""
    config = api_config(nats_server.url, tokens=False, request_timeout=0.3)
    async with ApiServer(config) as api, httpx.AsyncClient(base_url=api.url) as http:
        evil = {
            "host": f"evil.example:{api.http_port}",
            "origin": f"http://evil.example:{api.http_port}",
        }
        r = await http.put("/v1/settings", json={"aging_rate": 0.5}, headers=evil)
        assert r.status_code == 421, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "misdirected_request"
        assert (await http.get("/v1/stats", headers={"host": "evil.example"})).status_code == 421
        # Its own names still work (no master runs here: 503, not 421).
        for host in (f"127.0.0.1:{api.http_port}", f"localhost:{api.http_port}"):
            r = await http.get("/v1/stats", headers={"host": host})
            assert r.status_code == 503, (host, r.text)
        assert "strict-transport-security" not in r.headers  # plain HTTP


async def test_allowed_hosts_behind_a_proxy(nats_server: EmbeddedNats) -> None:
    config = api_config(nats_server.url, allowed_hosts=("tierq.example",), request_timeout=0.3)
    async with ApiServer(config) as api, httpx.AsyncClient(base_url=api.url) as http:
        assert (await http.get("/healthz", headers={"host": "tierq.example"})).status_code == 200
        assert (await http.get("/healthz", headers={"host": "127.0.0.1"})).status_code == 421


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_hsts_over_tls(nats_server: EmbeddedNats, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    config = api_config(nats_server.url, tls_cert=str(cert), tls_key=str(key), grpc_port=None)
    context = ssl.create_default_context(cafile=str(cert))
    async with (
        ApiServer(config) as api,
        httpx.AsyncClient(base_url=api.url, verify=context) as http,
    ):
        r = await http.get("/healthz")
        assert r.status_code == 200
        assert r.headers["strict-transport-security"] == "max-age=31536000"
        r = await http.get("/v1/stats")  # an error response carries it too
        assert r.status_code == 401 and "strict-transport-security" in r.headers


async def test_swagger_ui_comes_from_the_package(nats_server: EmbeddedNats) -> None:
    async with (
        ApiServer(api_config(nats_server.url, request_timeout=0.3)) as api,
        httpx.AsyncClient(base_url=api.url) as http,
    ):
        page = await http.get("/docs")
        assert page.status_code == 200
        assert "cdn" not in page.text and "https://" not in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "<script>" not in page.text  # no inline script: the policy allows none
        pins = {
            f["to"]: f["sha256"]
            for p in json.loads((VENDOR / "vendor.json").read_text())["packages"]
            if p["name"] == "swagger-ui-dist"
            for f in p["files"]
        }
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
            r = await http.get(f"/docs/{asset}")
            assert r.status_code == 200, asset
            assert hashlib.sha256(r.content).hexdigest() == pins[asset]
        init = await http.get("/docs/init.js")
        assert init.status_code == 200 and "/openapi.json" in init.text
        missing = await http.get("/docs/..%2F..%2Fconfig.py")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
