"""The web page at ``/ui/``: the shell from ``greenroom/web/ui/`` (plain ES modules, no build step), the tabs
that modules ship in their own ``web_dir`` (``/ui/modules/<name>/``), and the backdrop pictures in
``assets/backdrops/``. Served without the API key (a browser loads them with plain ``<script>``/``<img>``
requests); the page itself asks for the key and sends it on every API call."""
from __future__ import annotations

from pathlib import Path

from flask import Response, current_app, jsonify, redirect, request, send_from_directory
from pydantic import BaseModel, Field
from werkzeug.exceptions import NotFound

from ..api import ApiBlueprint
from ..paths import assets_dir

UI_DIR = Path(__file__).resolve().parent / "ui"
BACKDROPS = assets_dir() / "backdrops"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
BACKDROP_LIST = "backdrops.json"
HTML = {200: {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}}
FILE = {200: {"description": "A static file"}, 404: "No such file"}


class Panel(BaseModel):
    """A tab that a module adds to the page."""
    module: str
    state: str = Field(description="The module's state: the page mounts the panel only when it is 'loaded'.")
    id: str = Field(description="The tab's name, as in /ui/#<id>.")
    title: str
    script: str = Field(description="The panel's ES module, relative to /ui/: it exports mount(container, context).")


class PanelList(BaseModel):
    """The tabs of every installed module, in page order."""
    panels: list[Panel]


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

    @bp.api("/ui/panels.json", summary="The tabs that installed modules add to the web page", auth=False,
            responses={200: PanelList})
    def ui_panels():
        return jsonify({"panels": panels()})

    @bp.api("/ui/modules/<module>/<path:file>", summary="A static file that a module ships for the web page "
            "(its web_dir)", auth=False, responses=FILE)
    def ui_module_file(module: str, file: str):
        rec = current_app.extensions["greenroom"].records.get(module)  # by the module's own name
        if rec is None or rec.cls.web_dir is None or any(part.startswith(".") for part in file.split("/")):
            raise NotFound()
        return send_from_directory(rec.cls.web_dir, file, max_age=0)  # safe_join: no '..', no absolute path

    @bp.api("/ui/backdrops/<name>", summary="A backdrop picture from assets/backdrops/", auth=False, responses=FILE)
    def ui_backdrop(name: str) -> Response:
        if not name.lower().endswith(IMAGE_SUFFIXES):
            raise NotFound()
        return send_from_directory(BACKDROPS, name, max_age=3600)


def backdrop_names() -> list[str]:
    return sorted(p.name for p in BACKDROPS.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def panels() -> list[dict[str, str]]:
    """Every installed module's panels, sorted by their order and then by module name. Modules that are not
    loaded are listed too, so that the page can say how to enable them."""
    records = current_app.extensions["greenroom"].records
    found = sorted(((panel.order, name, panel) for name, rec in records.items() if rec.cls.web_dir is not None
                    for panel in rec.cls.web_panels), key=lambda item: item[:2])
    return [{"module": name, "state": records[name].state, "id": panel.id, "title": panel.title,
             "script": f"modules/{name}/{panel.script}"} for _, name, panel in found]
