"""Module-level views (greenroom.views.Routes) and Module's default blueprint(): no module.py imports its routes."""
from __future__ import annotations

import subprocess
import sys
import types

from flask import Flask, jsonify

from greenroom import Module
from greenroom.views import Routes

BUILTINS = ("classify", "embeddings", "imagefx", "nlp", "raven", "stt", "talkinghead", "tts", "websearch")


def counter_routes() -> Routes:
    extra = Routes()

    @extra.api("/api/counter/label", summary="The module's label")
    def label(module):
        return jsonify({"label": module.label})

    routes = Routes(include=(extra,))

    @routes.api("/api/counter/<int:step>", methods=["POST"], summary="Count")
    def count(module, step: int):
        """Adds ``step`` to this module's total."""
        module.total += step
        return jsonify({"total": module.total})

    return routes


def test_each_blueprint_hands_its_views_their_own_module():
    routes = counter_routes()
    modules = [types.SimpleNamespace(name="counter", total=0, label=label) for label in ("a", "b")]
    clients = []
    for module in modules:
        app = Flask(__name__)
        bp = routes.blueprint(module)
        app.register_blueprint(bp)
        clients.append(app.test_client())
    assert clients[0].post("/api/counter/2").json == {"total": 2}
    assert clients[0].post("/api/counter/3").json == {"total": 5}
    assert clients[1].post("/api/counter/7").json == {"total": 7}
    assert [m.total for m in modules] == [5, 7]
    assert clients[1].get("/api/counter/label").json == {"label": "b"}
    # operations as ApiBlueprint records them: own views first, endpoint and description from the function
    assert [(op.rule, op.endpoint, op.description) for op in bp.operations] == [
        ("/api/counter/<int:step>", "counter.count", "Adds ``step`` to this module's total."),
        ("/api/counter/label", "counter.label", "")]


def test_no_builtin_module_imports_its_routes():
    """module.py never imports routes.py: Module.blueprint() finds the routes when the host asks for them."""
    code = ("import importlib, sys\n"
            f"for name in {BUILTINS!r}:\n"
            "    importlib.import_module(f'greenroom_modules.{name}.module')\n"
            "print(sorted(m for m in sys.modules if m.startswith('greenroom_modules') and m.endswith('routes')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip() == "[]"


def test_every_builtin_module_uses_the_default_blueprint():
    from greenroom.app import create_app
    from greenroom.config import HostConfig, ServerSettings

    app = create_app(HostConfig(server=ServerSettings(enable_modules=[], api_key_file="/dev/null/none")))
    host = app.extensions["greenroom"]
    blueprints = app.extensions["greenroom.blueprints"]
    for name in BUILTINS:
        assert host.records[name].state != "failed", host.records[name].error
        assert type(host.records[name].instance).blueprint is Module.blueprint, name
        assert blueprints[name].name == name
        assert blueprints[name].operations, name
    host.shutdown()
