"""The API explorer at /docs (Swagger UI from flask-swagger-ui's bundled files) against a real --secure
server, over plain HTTP and in a real headless Chromium that may reach nothing but the server: the page and
its assets need no key, it lists the routes, and "Try it out" on GET /api/modules answers 401 until the key
is entered once under Authorize, then 200 (also after a reload)."""
from __future__ import annotations

import pytest
import requests

from .server_process import ServerProcess
from .test_webui import browser  # noqa: F401  (the headless Chromium fixture)

KEY = "explorer-test-key-0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("explorer")
    (folder / "key.txt").write_text(KEY)
    (folder / "plugins.toml").write_text("[server]\n")
    proc = ServerProcess(["--config", str(folder / "plugins.toml"), "--secure", "--api-key-file",
                          str(folder / "key.txt"), "--enable-modules=imagefx"])
    yield proc
    proc.stop()


def test_page_and_assets_need_no_key(server):
    page = requests.get(server.url + "/docs", timeout=10)
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
    assert "/api/imagefx/process" in page.text  # the <noscript> list of every endpoint
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        asset = requests.get(f"{server.url}/docs/assets/{name}", timeout=10)
        assert asset.status_code == 200 and len(asset.content) > 10_000, name
    assert requests.get(server.url + "/docs/assets/nothing.js", timeout=10).status_code == 404
    assert requests.get(server.url + "/docs/assets/..%2Fapp.py", timeout=10).status_code in (401, 404)
    assert requests.get(server.url + "/api/modules", timeout=10).status_code == 401
    doc = requests.get(server.url + "/openapi.json", timeout=10).json()
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    assert doc["paths"]["/docs/assets/{name}"]["get"]["security"] == []


def try_modules(page) -> str:
    """Send GET /api/modules from its form in the explorer; the status the explorer shows."""
    block = page.locator("#operations-host-host_modules_get")
    if not block.locator(".opblock-body").is_visible():
        block.locator(".opblock-summary").click()
    if block.locator(".try-out__btn").inner_text().strip() == "Try it out":
        block.locator(".try-out__btn").click()
    clear = block.locator("button.btn-clear")
    if clear.count() and clear.is_visible():  # so that the status read below is this request's, not the last one's
        clear.click()
        block.locator(".live-responses-table").wait_for(state="detached", timeout=15_000)
    block.locator("button.execute").click()
    status = block.locator(".live-responses-table .response .response-col_status")
    status.first.wait_for(timeout=15_000)
    return status.first.inner_text().strip()


def test_explorer_lists_routes_and_sends_the_key_once(server, browser):
    outside: list[str] = []
    context = browser.new_context()
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server.url)
                  else (outside.append(route.request.url), route.abort()))
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url + "/docs")
    page.locator("#operations-host-host_modules_get").wait_for(timeout=30_000)
    summaries = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/api/modules" in summaries and "/api/imagefx/process" in summaries
    assert len(summaries) >= 20

    assert try_modules(page) == "401"
    page.locator("button.authorize").first.click()
    page.locator(".modal-ux input").fill(KEY)
    page.locator(".modal-ux button.authorize").click()
    page.locator(".modal-ux button.btn-done").click()
    assert try_modules(page) == "200"
    body = page.locator("#operations-host-host_modules_get .live-responses-table .microlight").first.inner_text()
    assert '"modules"' in body and "imagefx" in body

    page.reload()  # the key is kept (persistAuthorization): no second Authorize
    page.locator("#operations-host-host_modules_get").wait_for(timeout=30_000)
    assert try_modules(page) == "200"
    page.goto(server.url + "/docs#/imagefx")  # the module list's "endpoints" link opens the module's section
    page.locator(".opblock-tag-section.is-open #operations-tag-imagefx").wait_for(timeout=30_000)
    assert not outside, outside
    assert not errors, errors
    context.close()
