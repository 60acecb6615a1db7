"""The web page at ``/ui/``: static files from ``greenroom/ui/`` (plain ES modules, no build step) and the
backdrop pictures in ``assets/backdrops/``. Served without the API key (a browser loads them with plain
``<script>``/``<img>`` requests); the page itself asks for the key and sends it on every API call."""
from __future__ import annotations

from pathlib import Path

from flask import Response, jsonify, redirect, request, send_from_directory
from werkzeug.exceptions import NotFound

from .api import ApiBlueprint
from .paths import assets_dir

UI_DIR = Path(__file__).resolve().parent / "ui"
BACKDROPS = assets_dir() / "backdrops"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
BACKDROP_LIST = "backdrops.json"
HTML = {200: {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}}
FILE = {200: {"description": "A static file"}, 404: "No such file"}


def add_routes(bp: ApiBlueprint) -> None:
    """The page's routes on the host blueprint (so /openapi.json lists them), all exempt from the key."""

    @bp.api("/ui/", summary="The web page: try every module in a browser (static files, no API key)", auth=False,
            responses=HTML)
    def ui_page():
        if not request.path.endswith("/"):  # so that the page's relative URLs resolve
            return redirect("ui/", code=308)
        return send_from_directory(UI_DIR, "index.html", max_age=0)

    @bp.api("/ui/<name>", summary=f"A file of the web page; /ui/{BACKDROP_LIST} lists the backdrop pictures",
            auth=False, responses=FILE)
    def ui_file(name: str):
        if name == BACKDROP_LIST:
            return jsonify({"backdrops": backdrop_names()})
        return send_from_directory(UI_DIR, name, max_age=0)

    @bp.api("/ui/js/<name>", summary="A script of the web page", auth=False, responses=FILE)
    def ui_script(name: str):
        return send_from_directory(UI_DIR / "js", name, max_age=0)

    @bp.api("/ui/backdrops/<name>", summary="A backdrop picture from assets/backdrops/", auth=False, responses=FILE)
    def ui_backdrop(name: str) -> Response:
        if not name.lower().endswith(IMAGE_SUFFIXES):
            raise NotFound()
        return send_from_directory(BACKDROPS, name, max_age=3600)


def backdrop_names() -> list[str]:
    return sorted(p.name for p in BACKDROPS.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
