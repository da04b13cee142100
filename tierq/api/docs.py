"""``/docs``: Swagger UI from the package, never from a CDN.

FastAPI's own page loads Swagger UI's script from a CDN without integrity hashes, on the
origin that holds the dashboard's session cookie: whoever controls that CDN (or the path to
it) runs script as the logged-in user. Here the script and style are the ones the dashboard
vendors (``tierq/dashboard/static/vendor.json`` pins ``swagger-ui-dist`` with its registry
integrity and file hashes), served from this server, and the page runs no inline script, so
it carries a Content-Security-Policy that allows only this origin.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response

from ..errors import NotFoundError

__all__ = ["DOCS_CSP", "install_docs"]

#: Where the vendored Swagger UI files live (the dashboard's vendor directory).
SWAGGER_DIR = (
    Path(__file__).resolve().parent.parent / "dashboard" / "static" / "vendor" / "swagger-ui"
)

#: Swagger UI sets inline styles and shows images from data: URLs; nothing else leaves 'self'.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>tierq API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"""

_INIT = b"""window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
"""

_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
}


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and its assets (create the app with ``docs_url=None``)."""

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return HTMLResponse(_PAGE, headers={"content-security-policy": DOCS_CSP})

    @app.get("/docs/init.js", include_in_schema=False)
    async def init() -> Response:
        return Response(_INIT, media_type="text/javascript; charset=utf-8")

    @app.get("/docs/{asset}", include_in_schema=False)
    async def asset(asset: str) -> Response:
        media = _ASSETS.get(asset)
        path = SWAGGER_DIR / asset
        if media is None or not path.is_file():
            raise NotFoundError(f"no such documentation file {asset[:100]!r}")
        return FileResponse(path, media_type=media, headers={"cache-control": "no-cache"})
