"""The interactive API documentation at ``/docs``, served entirely from this process.

FastAPI's default ``/docs`` page loads Swagger UI's JavaScript and CSS from a public CDN, so on a
server without internet access (or behind a proxy that blocks it) the page stays blank. Here
the same page (FastAPI's ``get_swagger_ui_html``) points at Swagger UI's files as shipped by the
``fastapi-offline`` package and served under ``/static/docs``: the browser fetches nothing from
outside. ReDoc is not offered: its bundle always loads an image from its vendor's CDN.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
STATIC_URL = "/static/docs"
# swagger-ui-bundle.js (Swagger UI 5, which renders OpenAPI 3.1), swagger-ui.css, favicon.png
ASSETS = files("fastapi_offline") / "static"


def install(app: FastAPI) -> None:
    """Serve ``/docs`` (and Swagger UI's OAuth2 redirect page) from local assets. The app must
    be built with ``docs_url=None, redoc_url=None``; ``/openapi.json`` stays FastAPI's."""
    app.mount(STATIC_URL, StaticFiles(directory=str(ASSETS)), name="docs-static")
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"),
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=root + oauth2_redirect_url if oauth2_redirect_url else None,
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
            init_oauth=app.swagger_ui_init_oauth,
        )

    if oauth2_redirect_url:
        @app.get(oauth2_redirect_url, include_in_schema=False)
        async def swagger_ui_redirect() -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()
