"""MkDocs hooks (``hooks:`` in mkdocs.yml): the site's pages that live elsewhere in the repository, and the
API reference generated from the OpenAPI document.

The READMEs beside the code (the top one, each module's, deploy/, the SillyTavern extension's) are the single
source: they are added to the site as they are at build time, with their relative links rewritten to the
site's pages. A link to a repository file that is not part of the site (source code, examples) becomes its
path in plain text, so ``mkdocs build --strict`` only fails on links that are really broken.
"""
from __future__ import annotations

import json
import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|#|/)")
API_PAGE, API_DOCUMENT = "api.md", "openapi.json"


def included() -> dict[str, str]:
    """Repository path of each included file -> its page in the site."""
    pages = {"README.md": "index.md", "deploy/README.md": "deployment.md",
             "clients/sillytavern/README.md": "sillytavern-extension.md"}
    pages.update({f"modules/{p.parent.name}/README.md": f"modules/{p.parent.name}.md"
                  for p in sorted((ROOT / "modules").glob("*/README.md"))})
    return {repo: site for repo, site in pages.items() if (ROOT / repo).exists()}


def on_config(config: Any) -> Any:
    """Every module with a README gets a page under "Modules" (mkdocs.yml gives the order of those it names);
    an included page whose README is not there is left out of the nav instead of breaking the build."""
    pages = set(included().values()) | {API_PAGE}
    config.nav = prune(config.nav or [], pages, Path(config.docs_dir))
    for section in config.nav:
        if isinstance(section, dict) and isinstance(section.get("Modules"), list):
            named = {next(iter(entry.values())) for entry in section["Modules"]}
            extra = sorted(site for site in pages if site.startswith("modules/") and site not in named)
            section["Modules"] += [{site[len("modules/"):-len(".md")]: site} for site in extra]
    return config


def prune(nav: list[Any], pages: set[str], docs: Path) -> list[Any]:
    """``nav`` without the pages that are neither in docs/ nor generated."""
    kept = []
    for entry in nav:
        title, target = next(iter(entry.items())) if isinstance(entry, dict) else (None, entry)
        if isinstance(target, list):
            kept.append({title: prune(target, pages, docs)})
        elif target in pages or (docs / target).exists():
            kept.append(entry)
    return kept


def on_files(files: Files, config: Any) -> Files:
    for repo_path, site_path in included().items():
        files.append(File.generated(config, site_path, content=(ROOT / repo_path).read_text(encoding="utf-8")))
    document = openapi_document()
    files.append(File.generated(config, API_DOCUMENT, content=json.dumps(document, indent=1)))
    files.append(File.generated(config, API_PAGE, content=api_page(document)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Relative links of the page's source file, rewritten for where the page sits in the site."""
    source = {site: repo for repo, site in included().items()}.get(page.file.src_uri, f"docs/{page.file.src_uri}")
    markdown = rewrite_links(markdown, source, page.file.src_uri)
    api = files.get_file_from_path(API_PAGE)
    name = page.file.src_uri[len("modules/"):-len(".md")] if page.file.src_uri.startswith("modules/") else None
    if name and api is not None and f"\n## {name}\n" in api.content_string:  # a module page: its routes
        title, _, rest = markdown.partition("\n")
        markdown = f"{title}\n\nEvery route of this module, generated from its code: [API reference](../{API_PAGE}#{name}).\n{rest}"
    return markdown


def rewrite_links(markdown: str, source: str, page: str) -> str:
    sites = included()

    def fix(match: re.Match) -> str:
        bang, text, target = match.groups()
        if EXTERNAL.match(target):
            return match.group(0)
        path, hash_, anchor = target.partition("#")
        repo_target = posixpath.normpath(posixpath.join(posixpath.dirname(source), path))
        site = sites.get(repo_target) or (repo_target[len("docs/"):] if repo_target.startswith("docs/") else None)
        if site is None:  # a repository file outside the site: name it instead of linking to it
            return text if repo_target.rstrip("/").split("/")[-1] in text else f"{text} (`{repo_target}`)"
        return f"{bang}[{text}]({posixpath.relpath(site, posixpath.dirname(page) or '.')}{hash_}{anchor})"

    out, fenced = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        out.append(line if fenced else LINK.sub(fix, line))
    return "\n".join(out) + "\n"


def openapi_document() -> dict[str, Any]:
    """The document of a server with every installed module (none enabled: nothing loads, every route lists)."""
    from greenroom.app import create_app
    from greenroom.web.openapi import openapi_document as document
    from greenroom.config import HostConfig
    return document(create_app(HostConfig()), every_module=True)


def api_page(doc: dict[str, Any]) -> str:
    """The API reference in Markdown: one section per module, one heading per operation."""
    by_tag: dict[str, list[str]] = {}
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            by_tag.setdefault(op["tags"][0] if op.get("tags") else "host", []).append(operation(method, path, op, doc))
    lines = ["# API reference", "",
             "Generated when the site is built from the OpenAPI 3.1 document of a server with every installed",
             f"module: [{API_DOCUMENT}]({API_DOCUMENT}). A running server serves its own at `/openapi.json`",
             "(the enabled modules' routes) and lets you try every request at `/docs`. Under `--secure` every",
             "route needs `Authorization: Bearer <key>` except those marked *no API key*; errors are JSON",
             '`{"error": "..."}` naming the field.', ""]
    for tag in sorted(by_tag, key=lambda t: (t != "host", t)):
        lines += [f"## {tag}", "", *by_tag[tag]]
    return "\n".join(lines)


def operation(method: str, path: str, op: dict[str, Any], doc: dict[str, Any]) -> str:
    lines = [f"### {method.upper()} `{path}`", "", op.get("summary", "")]
    if op.get("description"):
        lines += ["", op["description"]]
    params = op.get("parameters", [])
    if params:
        lines += ["", "| parameter | in | type | required | description |", "|---|---|---|---|---|"]
        lines += [f"| `{p['name']}` | {p['in']} | {type_of(p.get('schema', {}))} | {'yes' if p.get('required') else ''} "
                  f"| {cell(p.get('description', ''))} |" for p in params]
    body = op.get("requestBody")
    if body:
        for media, content in body.get("content", {}).items():
            lines += ["", f"Request body: `{media}`{' (required)' if body.get('required') else ''}"]
            lines += fields(content.get("schema", {}), doc)
    lines += ["", "| status | response |", "|---|---|"]
    lines += [f"| {code} | {cell(resp.get('description', ''))}"
              f"{' (' + ', '.join(f'`{m}`' for m in resp['content']) + ')' if resp.get('content') else ''} |"
              for code, resp in op.get("responses", {}).items()]
    success = op.get("responses", {}).get("200", {}).get("content", {}).get("application/json", {}).get("schema")
    if success:
        lines += ["", "Response `200`:", *fields(success, doc)]
    return "\n".join(lines) + "\n"


def fields(schema: dict[str, Any], doc: dict[str, Any]) -> list[str]:
    """A table of an object schema's properties (after one $ref)."""
    schema = resolve(schema, doc)
    props = schema.get("properties")
    if not props:
        return [f"({type_of(schema)})"] if schema else []
    required = set(schema.get("required", []))
    rows = [f"| `{name}` | {type_of(prop)} | {'yes' if name in required else ''} | "
            f"{cell(prop.get('description', resolve(prop, doc).get('description', '')))} |" for name, prop in props.items()]
    return ["", "| field | type | required | description |", "|---|---|---|---|", *rows]


def resolve(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    return doc["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {}) if ref else schema


def type_of(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(type_of(s) for s in schema[key])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {type_of(schema.get('items', {}))}"
    if "enum" in schema:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    return kind if isinstance(kind, str) else " or ".join(kind)


def cell(text: str) -> str:
    """Text that fits in one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")
