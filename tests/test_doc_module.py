"""The module on docs/writing-a-module.md, built from the page's own code blocks, runs: its route, its error,
its typed service, its settings, and its web panel's files. What a newcomer copies from the page works."""
from __future__ import annotations

import importlib
import re
import sys

import pytest

from greenroom.app import create_app

from .server_process import ROOT

PAGE = ROOT / "docs" / "writing-a-module.md"
FILE_BLOCK = re.compile(r"^```(?:python|js)\n(?:#|//) greenroom_hello/([\w/.]+)[^\n]*\n(.*?)^```", re.S | re.M)


@pytest.fixture
def app(tmp_path, make_config):
    files = FILE_BLOCK.findall(PAGE.read_text(encoding="utf-8"))
    assert {name for name, _ in files} == {"contract.py", "module.py", "routes.py", "__init__.py", "web/hello.js"}
    package = tmp_path / "doc_hello"  # not greenroom_hello, which the example distribution may have installed
    for name, code in files:
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(code, encoding="utf-8")
    sys.path.insert(0, str(tmp_path))
    try:
        plugin = importlib.import_module("doc_hello")
        application = create_app(make_config(enable=["hello"]), plugins=[("doc-hello", plugin)], discover=False)
        yield application
        application.extensions["greenroom"].shutdown()
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == "doc_hello" or n.startswith("doc_hello.")]:
            del sys.modules[name]


def test_the_documented_module_serves_its_route_service_settings_and_panel(app):
    client = app.test_client()
    assert client.post("/api/hello", json={"name": "Ada"}).json == {"text": "Hello, Ada!"}
    empty = client.post("/api/hello", json={"name": " "})
    assert empty.status_code == 400 and empty.json["error"].startswith("name:")
    missing = client.post("/api/hello", json={})
    assert missing.status_code == 400 and "name" in missing.json["error"]

    contract = importlib.import_module("doc_hello.contract")
    greeter = app.extensions["greenroom"].context.service(contract.Greeter)
    assert greeter is not None and greeter.greet("Bo") == contract.Greeting("Hello, Bo!")

    changed = client.patch("/api/modules/hello/settings", json={"greeting": "Hi"})
    assert changed.status_code == 200 and client.post("/api/hello", json={"name": "Ada"}).json["text"] == "Hi, Ada!"

    panels = client.get("/ui/panels.json").json["panels"]
    assert {"module": "hello", "state": "loaded", "id": "hello", "title": "Hello",
            "script": "modules/hello/hello.js"} in panels
    script = client.get("/ui/modules/hello/hello.js")
    assert script.status_code == 200 and b"export function mount(container)" in script.data
