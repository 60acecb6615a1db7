"""The documentation site: `mkdocs build --strict` passes (a broken link or a page left out of the nav fails
it), every module has a page made from its README, and the API reference lists every installed module's
routes from the OpenAPI document generated at build time."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from scripts.docs_hooks import included, rewrite_links

from .server_process import ROOT


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert run.returncode == 0, run.stderr[-4000:]
    assert "WARNING" not in run.stderr, run.stderr[-4000:]
    return out


def test_site_has_a_page_per_module_and_the_moved_sections(site):
    for readme in sorted((ROOT / "modules").glob("*/README.md")):
        page = site / "modules" / readme.parent.name / "index.html"
        assert page.exists(), page
    for name in ("configuration", "webui", "pose-editor", "characters", "writing-a-module", "sillytavern",
                 "deployment", "measurements", "reliability", "licenses", "api"):
        assert (site / name / "index.html").exists(), name
    assert "1,980 generated requests" in (site / "reliability" / "index.html").read_text()
    assert "CC-BY-NC-4.0" in (site / "licenses" / "index.html").read_text()
    # the filter pictures of the postprocessor README, linked from the page and copied into the site
    assert 'src="../../filters/bloom.jpg"' in (site / "modules" / "postprocessor" / "index.html").read_text()
    assert (site / "filters" / "bloom.jpg").exists()


def test_api_reference_lists_every_installed_modules_routes(site):
    doc = json.loads((site / "openapi.json").read_text())
    paths = set(doc["paths"])
    assert {"/api/modules", "/docs", "/api/classify", "/api/talkinghead/load", "/v1/audio/speech",
            "/v1/embeddings", "/api/nlp/analyze", "/api/websearch", "/api/imagefx/process"} <= paths
    page = (site / "api" / "index.html").read_text()
    for path in paths:
        assert f"<code>{path.replace('<', '&lt;').replace('>', '&gt;')}</code>" in page, path
    assert "ClassifyRequest" in page or "text" in page
    assert 'href="../../api/#classify"' in (site / "modules" / "classify" / "index.html").read_text()


def test_links_are_rewritten_for_the_site():
    assert included()["modules/tts/README.md"] == "modules/tts.md"
    text = ("See [filters](../../docs/filters/bloom.jpg), [deploy](../../deploy/README.md#capacity), "
            "[nlp](../nlp/README.md), [`settings.py`](settings.py), [the code](module.py) and [web](https://x.org).\n"
            "```\n[kept](in/code.md)\n```")
    out = rewrite_links(text, "modules/tts/README.md", "modules/tts.md")
    assert "[filters](../filters/bloom.jpg)" in out
    assert "[deploy](../deployment.md#capacity)" in out and "[nlp](nlp.md)" in out
    assert "`settings.py`," in out and "the code (`modules/tts/module.py`)" in out
    assert "[web](https://x.org)" in out and "[kept](in/code.md)" in out


def test_a_broken_link_fails_the_strict_build(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\n[missing](nowhere.md)\n")
    (tmp_path / "mkdocs.yml").write_text("site_name: t\ntheme:\n  name: material\n")
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "nowhere.md" in run.stderr
