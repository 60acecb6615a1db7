"""The documentation's examples run: the README's quick-start blocks (marked ``<!-- example ... -->``) and
each module README's first shell example that calls the server, against one real server with those modules
(websearch pointed at the local fake engines). curl runs with --fail-with-body, so an HTTP error fails the
example; the examples run in a scratch folder holding the files they name."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from .server_process import ROOT, ServerProcess
from .test_websearch_fakes import FakeEngines

FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.S | re.M)
MARKED = re.compile(r"^<!-- example\b[^>]*-->\n```(\w+)[^\n]*\n(.*?)^```", re.S | re.M)
LIBRARIES = {"postprocessor"}  # documented modules that are libraries, not served modules
DOCUMENTED_URL = re.compile(r"http://(?:127\.0\.0\.1|localhost):5100")
CURL = 'curl() { command curl --silent --show-error --fail-with-body "$@"; }\n'


def readme_examples() -> list[tuple[str, str, str]]:
    """(where, language, code) of the top README's marked blocks."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [(f"README.md #{i + 1}", lang, code) for i, (lang, code) in enumerate(MARKED.findall(text))]


def module_examples() -> list[tuple[str, str, str]]:
    """(module, language, code) of each module README's first shell block that calls the server."""
    found = []
    for readme in sorted((ROOT / "modules").glob("*/README.md")):
        for lang, code in FENCE.findall(readme.read_text(encoding="utf-8")):
            if lang in ("sh", "bash") and DOCUMENTED_URL.search(code):
                found.append((readme.parent.name, lang, code))
                break
    return found


EXAMPLES = readme_examples() + module_examples()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("doc-examples")
    fakes = FakeEngines()
    settings = "\n".join(f"{key} = {json.dumps(value)}" for key, value in fakes.settings().items())
    config = folder / "plugins.toml"
    config.write_text(f'[server]\napi_key_file = "{folder / "key.txt"}"\n\n'
                      f'[modules.talkinghead]\ncache_dir = "{folder / "cache"}"\nmode = "low_compute"\n'
                      f'precompute_emotions = false\n\n[modules.websearch]\n{settings}\n')
    modules = sorted({name for name, _, _ in module_examples()} - LIBRARIES | {"classify", "tts", "embeddings"})
    proc = ServerProcess(["--config", str(config), f"--enable-modules={','.join(modules)}"],
                         log_path=folder / "server.log")
    yield proc
    proc.stop()
    fakes.close()


@pytest.fixture(scope="module")
def scratch(server, tmp_path_factory) -> Path:
    """A folder with the files the examples name: the repository's assets, a character, a recording."""
    folder = tmp_path_factory.mktemp("scratch")
    (folder / "assets").symlink_to(ROOT / "assets")
    shutil.copy(ROOT / "assets" / "characters" / "lambda_00.png", folder / "talkinghead.png")
    speech = requests.post(server.url + "/v1/audio/speech", json={"input": "Hello there, how are you today?",
                                                                   "voice": "alloy", "response_format": "wav"},
                           timeout=120)
    assert speech.status_code == 200, speech.text
    (folder / "recording.webm").write_bytes(speech.content)  # decoded by content, not by name
    return folder


def test_the_readme_and_every_module_readme_have_an_example():
    assert len(readme_examples()) >= 2
    documented = {name for name, _, _ in module_examples()}
    modules = {p.parent.name for p in (ROOT / "modules").glob("*/README.md")}
    assert documented == modules, modules - documented


@pytest.mark.parametrize("where, lang, code", EXAMPLES, ids=[where for where, _, _ in EXAMPLES])
def test_example_runs(server, scratch, where, lang, code):
    code = DOCUMENTED_URL.sub(server.url, code)
    if lang == "python":
        command = [sys.executable, "-c", code]
    else:
        command = ["bash", "-c", "set -euo pipefail\n" + CURL + code]
    run = subprocess.run(command, cwd=scratch, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"{where}:\n{code}\nstdout: {run.stdout[-2000:]}\nstderr: {run.stderr[-2000:]}"
    produced = run.stdout.strip() or any(scratch.glob("*-blurred.*")) or any(scratch.glob("*.mp3"))
    assert produced, f"{where} printed nothing and wrote nothing"
