// Entry point: reads the server's health, asks for the API key if needed, and builds a panel for each
// module that runs (a module that is off gets a short note on how to enable it instead).

import {api, hasKey, askForKey, url} from "./api.js";
import {h, toast, errorText} from "./dom.js";
import {state} from "./state.js";
import {initAvatar} from "./avatar.js";
import {initFilters} from "./filters.js";
import {initSpeech} from "./speech.js";
import {initClassify} from "./classify.js";
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
    h("pre", {}, "python server.py --enable-modules=talkinghead,tts,classify,imagefx")));
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

  buildTabs();
  const panel = (id) => document.getElementById(id);
  const start = [
    ["talkinghead", () => initAvatar(panel("tab-avatar")), "tab-avatar"],
    ["talkinghead", () => initFilters(panel("tab-style")), "tab-style"],
    ["tts", () => initSpeech(panel("tab-speech")), "tab-speech"],
    ["classify", () => initClassify(panel("tab-classify")), "tab-classify"],
  ];
  for (const [name, init, id] of start) {
    if (!state.loaded(name)) { explainMissing(panel(id), name); continue; }
    try { await init(); } catch (err) { toast(`${panel(id).dataset.title}: ${errorText(err)}`); }
  }
  if (!state.loaded("talkinghead")) {
    document.getElementById("stage-message").textContent = "The talkinghead module is not running on this server.";
  }
  await initSettings(panel("tab-settings")).catch((err) => toast(`Settings: ${errorText(err)}`));
  await initModules(panel("tab-modules")).catch((err) => toast(`Modules: ${errorText(err)}`));
  document.body.dataset.ready = "true";

  setInterval(async () => {
    try { showHealth(await readHealth()); } catch { document.getElementById("health").textContent = "server unreachable"; }
  }, 10000);
}

boot();
