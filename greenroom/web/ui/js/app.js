// Entry point: reads the server's health, asks for the API key if needed, and builds one tab per panel that
// the installed modules ship (/ui/panels.json). A panel is an ES module in its module's web folder exporting
// mount(container, context); a module that is off gets a short note on how to enable it instead.

import {api, hasKey, askForKey, url} from "./api.js";
import {h, toast, errorText} from "./dom.js";
import {state} from "./state.js";
import {initSettings} from "./settings.js";
import {initModules} from "./modules.js";

async function readHealth() {
  const res = await fetch(url("health"));
  if (!res.ok) throw new Error(`/health answered ${res.status}`);
  return res.json();
}

function showHealth(health) {
  const box = document.getElementById("health");
  box.replaceChildren(
    h("span", {class: `pill ${health.status === "ok" ? "ok" : "warn"}`, title: "Server health"}, health.status),
    ...Object.entries(health.modules).map(([name, st]) =>
      h("span", {class: `pill ${st === "loaded" ? "ok" : st === "failed" ? "bad" : "warn"}`, title: `${name}: ${st}`}, name)));
}

function buildTabs() {
  const nav = document.getElementById("tabs");
  const panels = [...document.querySelectorAll(".tab-panel")];
  const show = (id) => {
    for (const p of panels) p.hidden = p.id !== id;
    for (const b of nav.children) b.setAttribute("aria-selected", String(b.dataset.target === id));
    history.replaceState(null, "", `#${id.slice(4)}`);
  };
  nav.replaceChildren(...panels.map((p) => {
    const needs = p.dataset.needs;
    const off = needs && !state.loaded(needs);
    return h("button", {role: "tab", type: "button", class: off ? "off" : "", dataset: {target: p.id},
      title: off ? `The ${needs} module is not running` : "", onclick: () => show(p.id)}, p.dataset.title);
  }));
  const fromHash = () => panels.find((p) => p.id === `tab-${location.hash.slice(1)}`);
  show((fromHash() || panels.find((p) => !p.dataset.needs || state.loaded(p.dataset.needs))).id);
  window.addEventListener("hashchange", () => { const p = fromHash(); if (p) show(p.id); });
}

/** A panel whose module is off explains how to turn it on. */
function explainMissing(panel, name) {
  const st = state.modules[name];
  panel.replaceChildren(h("div", {class: "card empty"},
    h("h3", {}, `${panel.dataset.title} needs the ${name} module`),
    st ? h("p", {}, `It is ${st} on this server; see the Modules tab for the reason.`)
       : h("p", {}, "Start the server with it enabled, for example:"),
    h("pre", {}, `python server.py --enable-modules=${name}`)));
}

/** A tab for each module panel, before the Settings tab; answers [section, panel] pairs. */
async function addPanelTabs() {
  const {panels} = await (await fetch(url("ui/panels.json"))).json();
  const settings = document.getElementById("tab-settings");
  return panels.map((p) => {
    const id = document.getElementById(`tab-${p.id}`) ? `tab-${p.module}-${p.id}` : `tab-${p.id}`;  // ids stay unique
    const section = h("section", {class: "tab-panel", id, role: "tabpanel",
      dataset: {title: p.title, needs: p.module}});
    settings.before(section);
    return [section, p];
  });
}

/** Import a panel's script and let it fill its tab; a broken panel shows its error and spoils nothing else. */
async function mount(section, panel) {
  if (!state.loaded(panel.module)) { explainMissing(section, panel.module); return; }
  try {
    const script = await import(url(`ui/${panel.script}`));
    await script.mount(section, {module: panel.module, stage: document.getElementById("stage-col")});
  } catch (err) {
    section.replaceChildren(h("p", {class: "error-note"}, `${panel.title}: ${errorText(err)}`));
    toast(`${panel.title}: ${errorText(err)}`);
  }
}

async function boot() {
  let health;
  try {
    health = await readHealth();
  } catch (err) {
    document.getElementById("health").textContent = "server unreachable";
    toast(`Cannot reach the server: ${errorText(err)}`);
    return;
  }
  state.modules = health.modules;
  showHealth(health);
  try {
    await api("api/modules");  // answers 401 under --secure: the key dialog appears once
  } catch (err) {
    toast(`The API refused the page: ${errorText(err)}. Reload to enter the key again.`);
  }
  const keyButton = document.getElementById("key-button");
  keyButton.hidden = !hasKey();
  keyButton.addEventListener("click", () => askForKey());

  const panels = await addPanelTabs().catch((err) => { toast(`Panels: ${errorText(err)}`); return []; });
  buildTabs();
  for (const [section, panel] of panels) await mount(section, panel);
  await initSettings(document.getElementById("tab-settings")).catch((err) => toast(`Settings: ${errorText(err)}`));
  await initModules(document.getElementById("tab-modules")).catch((err) => toast(`Modules: ${errorText(err)}`));
  document.body.dataset.ready = "true";

  setInterval(async () => {
    try { showHealth(await readHealth()); } catch { document.getElementById("health").textContent = "server unreachable"; }
  }, 10000);
}

boot();
