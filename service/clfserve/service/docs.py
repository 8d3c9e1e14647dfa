"""The API docs page, served whole by the service: it works without reaching any other host.

Swagger UI's files (``swagger-ui-bundle.js``, the standalone preset, the CSS, a favicon) come from
the PyPI package ``flask-swagger-ui``, which ships Swagger UI's ``dist`` folder; only those files
are used (Flask is never imported). They are served under ``/schema/assets/``, and the page at
``/schema`` (also ``/schema/swagger``) points at them instead of a CDN.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.router import Router
from litestar.static_files import create_static_files_router

ASSETS = "/assets"
DIST_PACKAGE = "flask_swagger_ui"
FILES = ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css",
         "favicon-32x32.png")  # fmt: skip


class DocsAssetsMissing(RuntimeError):
    """The package with Swagger UI's files is not installed, or lacks a file."""


@cache
def swagger_ui_dist() -> Path:
    """The folder holding Swagger UI's files, found without importing its package."""
    spec = importlib.util.find_spec(DIST_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DocsAssetsMissing(f"install {DIST_PACKAGE.replace('_', '-')} for the docs page")
    dist = Path(next(iter(spec.submodule_search_locations))) / "dist"
    missing = [name for name in FILES if not (dist / name).is_file()]
    if missing:
        raise DocsAssetsMissing(f"{dist} lacks {', '.join(missing)}")
    return dist


class OfflineSwaggerUI(SwaggerRenderPlugin):
    """Swagger UI at the docs root, its assets from this service (see the module docstring)."""

    def __init__(self, docs_path: str) -> None:
        assets = f"{docs_path.rstrip('/')}{ASSETS}"
        super().__init__(
            path=["/", "/swagger"],
            js_url=f"{assets}/swagger-ui-bundle.js",
            css_url=f"{assets}/swagger-ui.css",
            standalone_preset_js_url=f"{assets}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{assets}/favicon-32x32.png'>",
        )

    def receive_router(self, router: Router) -> None:
        super().receive_router(router)
        router.register(
            create_static_files_router(
                path=ASSETS, directories=[swagger_ui_dist()], include_in_schema=False
            )
        )
