"""The host's /ui/ routes (in-process): the page and its files without the API key, the backdrop list and
pictures, the panels that modules ship (built-in and third-party), no path traversal, and every route
documented in /openapi.json."""
from __future__ import annotations

from pathlib import Path

import pytest
from flask import jsonify

from greenroom import ApiBlueprint, Module
from greenroom.app import create_app
from greenroom.module import WebPanel

from .plugins_helper import plugin

SECRET = "the content of a file that no URL may reach"
PANEL_JS = 'export function mount(container) { container.textContent = "hello from a plugin"; }\n'


@pytest.fixture
def client(make_config, tmp_path):
    (tmp_path / "key.txt").write_text("k3y\n")
    app = create_app(make_config(secure=True, api_key_file=str(tmp_path / "key.txt")), discover=False)
    return app.test_client()


def test_page_and_files_need_no_key(client):
    page = client.get("/ui/")
    assert page.status_code == 200 and page.mimetype == "text/html" and b'src="js/app.js"' in page.data
    assert client.get("/ui/style.css").mimetype == "text/css"
    script = client.get("/ui/js/app.js")
    assert script.status_code == 200 and "javascript" in script.mimetype
    assert client.get("/api/modules").status_code == 401  # the API itself still wants the key


def test_ui_without_slash_redirects_so_relative_urls_work(client):
    r = client.get("/ui")
    assert r.status_code == 308 and r.headers["Location"].endswith("ui/")


def test_backdrops_are_listed_and_served(client):
    names = client.get("/ui/backdrops.json").json["backdrops"]
    assert "studio.jpg" in names and all(n.endswith((".jpg", ".png", ".webp", ".jpeg")) for n in names)
    r = client.get(f"/ui/backdrops/{names[0]}")
    assert r.status_code == 200 and r.mimetype.startswith("image/")


@pytest.mark.parametrize("path", ["/ui/../app.py", "/ui/js/..%2f..%2fapp.py", "/ui/backdrops/..%2f..%2fsetup.sh",
                                  "/ui/backdrops/README.md", "/ui/nothing.js", "/ui/js/nothing.js"])
def test_nothing_outside_the_page_is_served(client, path):
    r = client.get(path)  # 404, or 401 where the path leaves /ui/ and so is no page file at all
    assert r.status_code in (401, 404) and r.is_json and "error" in r.json


def test_openapi_lists_the_page_routes_as_open(client):
    doc = client.get("/openapi.json").json
    for path in ("/ui/", "/ui/{name}", "/ui/js/{name}", "/ui/backdrops/{name}", "/ui/panels.json",
                 "/ui/modules/{module}/{file}"):
        assert doc["paths"][path]["get"]["security"] == [], path


# -- panels that modules ship ---------------------------------------------------------------------

def panel_module(module_name: str, web: Path) -> type[Module]:
    """A throw-away third-party module with one tab, ``web/panel.js``, and one route, /api/<name>/hello."""

    class PanelModule(Module):
        name = module_name
        description = "Says hello (a test plugin with a web panel)."
        web_dir = web
        web_panels = (WebPanel(module_name, module_name.title(), "panel.js"),)

        def blueprint(self) -> ApiBlueprint:
            bp = ApiBlueprint(module_name, __name__)

            @bp.api(f"/api/{module_name}/hello", summary="A greeting")
            def hello():
                return jsonify({"greeting": f"hello from {module_name}"})

            return bp

    return PanelModule


@pytest.fixture
def greeter(make_config, tmp_path):
    """A --secure app with the greeter plugin, whose web folder holds panel.js, a sub-folder and a dot file;
    secret.txt lies beside the folder, where no URL may reach it."""
    web = tmp_path / "web"
    (web / "img").mkdir(parents=True)
    (web / "panel.js").write_text(PANEL_JS)
    (web / "img" / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (web / ".hidden.js").write_text(SECRET)
    (tmp_path / "secret.txt").write_text(SECRET)
    (tmp_path / "key.txt").write_text("k3y\n")
    config = make_config(enable=["greeter"], secure=True, api_key_file=str(tmp_path / "key.txt"))
    app = create_app(config, plugins=[("greeter-plugin", plugin(panel_module("greeter", web)))], discover=False)
    return app.test_client()


def test_a_third_party_module_adds_a_panel(greeter):
    assert greeter.get("/ui/panels.json").json == {"panels": [
        {"module": "greeter", "state": "loaded", "id": "greeter", "title": "Greeter",
         "script": "modules/greeter/panel.js"}]}
    script = greeter.get("/ui/modules/greeter/panel.js")  # no key: a static file, like the page's own
    assert script.status_code == 200 and "javascript" in script.mimetype and script.text == PANEL_JS
    assert greeter.get("/ui/modules/greeter/img/logo.svg").mimetype == "image/svg+xml"
    assert greeter.get("/api/greeter/hello").status_code == 401  # its API still wants the key


@pytest.mark.parametrize("path", [
    "/ui/modules/greeter/../secret.txt", "/ui/modules/greeter/..%2fsecret.txt", "/ui/modules/greeter/%2e%2e/secret.txt",
    "/ui/modules/greeter/%2e%2e%2fsecret.txt", "/ui/modules/greeter/img/..%2f..%2fsecret.txt",
    "/ui/modules/greeter/..%5csecret.txt", "/ui/modules/greeter/%2Fetc%2Fpasswd", "/ui/modules/greeter//etc/passwd",
    "/ui/modules/greeter/.hidden.js", "/ui/modules/greeter/img", "/ui/modules/greeter/nothing.js",
    "/ui/modules/nobody/panel.js", "/ui/modules/..%2f..%2fgreenroom/app.py", "/ui/modules/greeter/panel.js%00.png"])
def test_no_module_file_outside_its_web_folder(greeter, path):
    r = greeter.get(path)  # 404, or 401 where the path leaves /ui/ and so is no page file at all
    assert r.status_code in (401, 404) and r.is_json and "error" in r.json, (path, r.status_code)
    assert SECRET not in r.text and "root:" not in r.text


def test_built_in_panels_ship_with_their_modules(make_config):
    """Every built-in module is installed (enabled or not): its tabs are listed in page order and served."""
    client = create_app(make_config(), discover=True).test_client()
    panels = client.get("/ui/panels.json").json["panels"]
    assert [(p["module"], p["id"]) for p in panels] == [
        ("talkinghead", "avatar"), ("talkinghead", "style"), ("tts", "speech"), ("classify", "classify")]
    assert {p["state"] for p in panels} == {"disabled"}
    for p in panels:
        script = client.get(f"/ui/{p['script']}")
        assert script.status_code == 200 and "export async function mount" in script.text, p
    for page in ("pose-editor.html", "pose-editor.js", "talkinghead.css"):
        assert client.get(f"/ui/modules/talkinghead/{page}").status_code == 200, page
    for gone in ("/ui/pose-editor.html", "/ui/js/avatar.js", "/ui/js/speech.js"):
        assert client.get(gone).status_code == 404, gone
