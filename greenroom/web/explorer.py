"""The interactive API explorer at ``/docs``: Swagger UI over ``/openapi.json``, from the assets that the
``flask-swagger-ui`` package bundles (so it works offline). The page and its assets are exempt from the key,
like the web page; under ``--secure`` the document declares the bearer scheme, so the explorer's
*Authorize* button takes the key once and sends it with every request (and keeps it across reloads)."""
from __future__ import annotations

from pathlib import Path

import flask_swagger_ui
from flask import current_app, render_template, send_from_directory

from ..api import ApiBlueprint
from .openapi import openapi_document

ASSETS = Path(flask_swagger_ui.__file__).resolve().parent / "dist"
HTML = {200: {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}}


def add_routes(bp: ApiBlueprint) -> None:
    """``/docs`` and ``/docs/assets/<file>`` on the host blueprint, both without the API key."""
    @bp.api("/docs", summary="The interactive API explorer (Swagger UI; try any request from the browser)",
            auth=False, responses=HTML)
    def docs():
        return render_template("explorer.html", doc=openapi_document(current_app))

    @bp.api("/docs/assets/<name>", summary="A file of the API explorer (Swagger UI's bundled assets)", auth=False,
            responses={200: {"description": "A static file"}, 404: "No such file"})
    def docs_asset(name: str):
        return send_from_directory(ASSETS, name, max_age=3600)
