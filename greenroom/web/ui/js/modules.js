// Every installed module: state, version, device, load time and memory, with the reason a module failed.

import {api, url} from "./api.js";
import {h, card, run} from "./dom.js";
import {state} from "./state.js";

export async function initModules(panel) {
  const table = h("tbody", {});
  const refresh = h("button", {type: "button", class: "ghost", onclick: () => run(() => fill(table), refresh, "Modules")}, "Refresh");
  panel.replaceChildren(card("Modules",
    h("p", {class: "hint"}, "Installed modules and their state. ",
      h("a", {href: url("docs"), target: "_blank", rel: "noopener"}, "API reference"), " · ",
      h("a", {href: url("openapi.json"), target: "_blank", rel: "noopener"}, "openapi.json")),
    h("table", {class: "modules"}, h("thead", {}, h("tr", {}, ["Module", "State", "Version", "Runs on", "Load", "Memory", "Description"].map((t) => h("th", {}, t)))), table),
    h("div", {class: "row end"}, refresh)));
  await fill(table);
}

async function fill(table) {
  const {plugins} = await api("api/plugins");
  const names = [...new Set(plugins.flatMap((p) => p.modules || []))].sort();
  const infos = await Promise.all(names.map((n) => api(`api/modules/${encodeURIComponent(n)}`).catch((err) => ({name: n, state: "unknown", error: err.message}))));
  table.replaceChildren(...infos.map((m) => {
    const mem = m.memory && Object.entries(m.memory).map(([k, v]) => `${k} ${v}`).join(", ");
    const status = m.status && Object.keys(m.status).length
      ? h("details", {}, h("summary", {}, "status"), h("pre", {}, JSON.stringify(m.status, null, 1))) : null;
    return h("tr", {dataset: {module: m.name}},
      h("td", {}, h("strong", {}, m.name), (m.aliases || []).length ? h("div", {class: "hint"}, m.aliases.join(", ")) : null),
      h("td", {}, h("span", {class: `pill ${m.state === "loaded" ? "ok" : m.state === "failed" ? "bad" : "warn"}`}, m.state),
        m.error ? h("div", {class: "error-note"}, m.error) : null),
      h("td", {}, m.version || ""),
      h("td", {}, m.device ? `${m.device}${m.dtype ? ` · ${m.dtype}` : ""}` : "—"),
      h("td", {}, m.load_seconds != null ? `${m.load_seconds.toFixed(1)} s` : "—"),
      h("td", {class: "hint"}, mem || "—"),
      h("td", {}, m.description || "", status));
  }));
  state.emit("modules", {infos});
}
