"""The host's /ui/ routes (in-process): the page and its files without the API key, the backdrop list and
pictures, no path traversal, and every route documented in /openapi.json."""
from __future__ import annotations

import pytest

from greenroom.app import create_app


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
    for path in ("/ui/", "/ui/{name}", "/ui/js/{name}", "/ui/backdrops/{name}"):
        assert doc["paths"][path]["get"]["security"] == [], path
