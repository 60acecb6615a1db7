// The talkinghead module's Filters panel: the postprocessor chain editor, built only from the filter
// introspection data (/api/talkinghead/filters): add, remove, reorder and tweak filters and see the feed change;
// save and load the animator settings as JSON.

import {api} from "../../js/api.js";
import {h, card, run, toast, slider, debounce, download, pickFile, errorText, stylesheet} from "../../js/dom.js";
import {state} from "../../js/state.js";
import {schemaForm} from "../../js/schemaform.js";

let catalogue = {};      // filter name -> {name, description, dynamic, params: [...]}
let settings = null;     // the instance's animator settings (what load_animator_settings takes)
let chain = [];          // [[name, {params}], ...] with every parameter filled in
let animatorSchema = null;
let listBox, formBox, pushLater;

export async function mount(panel) {
  stylesheet(new URL("talkinghead.css", import.meta.url));
  const [{filters}, moduleSchema] = await Promise.all([api("api/talkinghead/filters"), api("api/modules/talkinghead/schema")]);
  catalogue = Object.fromEntries(filters.map((f) => [f.name, f]));
  const defs = moduleSchema.schema.$defs || {};
  animatorSchema = defs.AnimatorSettings ? {...defs.AnimatorSettings, $defs: defs} : null;

  const picker = h("select", {id: "filter-picker", title: "Filters, in their suggested order"},
    filters.map((f) => h("option", {value: f.name, title: f.description}, f.name)));
  const add = h("button", {type: "button", class: "primary", id: "add-filter",
    onclick: () => { chain.push([picker.value, defaults(picker.value)]); renderChain(); push(); }}, "Add filter");
  listBox = h("div", {class: "chain", id: "chain"});
  const save = h("button", {type: "button", onclick: () => download(`greenroom-${state.instanceId}-settings.json`,
    JSON.stringify(settings, null, 2))}, "Save settings…");
  const load = h("button", {type: "button", onclick: () => run(loadFile, load, "Load settings")}, "Load settings…");
  const reset = h("button", {type: "button", class: "ghost", onclick: () => run(async () => {
    await api("api/talkinghead/load_animator_settings", {json: {instance_id: state.instanceId}});
    await reload();
    toast("Animator settings reset to the server's defaults", "ok");
  }, reset, "Reset")}, "Reset to defaults");
  const clear = h("button", {type: "button", class: "ghost", id: "clear-filters",
    onclick: () => { chain = []; renderChain(); push(); }}, "Remove all");
  formBox = h("div", {id: "animator-form"});
  panel.replaceChildren(
    card("Filter chain",
      h("p", {class: "hint"}, "Every frame runs through these filters, top to bottom, in linear light. Changes show in the feed at once."),
      h("div", {class: "row"}, picker, add, clear),
      listBox,
      h("div", {class: "row"}, save, load, reset)),
    card("Animator settings", h("details", {class: "nested-card"},
      h("summary", {}, "How this instance moves, talks and is encoded (the filter chain above is part of these settings)"),
      formBox)));
  pushLater = debounce(() => push(), 150);
  state.on("instance", () => run(reload, null, "Filters"));
  if (state.instanceId) await reload();
}

function defaults(name) {
  return Object.fromEntries((catalogue[name]?.params || []).map((p) => [p.name, p.default]));
}

function normalise(raw) {
  return (raw || []).map((entry) => {
    const [name, params] = typeof entry === "string" ? [entry, {}] : [entry[0], entry[1] || {}];
    return [name, {...defaults(name), ...params}];
  });
}

async function reload() {
  if (!state.instanceId) return;
  settings = await api("api/talkinghead/animator_settings", {query: {instance_id: state.instanceId}});
  chain = normalise(settings.postprocessor_chain);
  renderChain();
  renderForm();
}

/** Send the whole settings object: load_animator_settings merges over the defaults, not over the current values. */
async function push() {
  if (!settings) return;
  settings = {...settings, postprocessor_chain: chain};
  try {
    await api("api/talkinghead/load_animator_settings", {json: {...settings, instance_id: state.instanceId}});
    listBox.classList.remove("invalid");
  } catch (err) {
    listBox.classList.add("invalid");
    toast(`Filter chain: ${errorText(err)}`);
  }
}

async function loadFile() {
  const file = await pickFile("application/json,.json");
  if (!file) return;
  let data;
  try { data = JSON.parse(await file.text()); } catch (err) { throw new Error(`${file.name} is not JSON (${err.message})`); }
  if (!data || typeof data !== "object" || Array.isArray(data)) throw new Error(`${file.name}: expected a JSON object of settings`);
  delete data.instance_id;
  const reply = await api("api/talkinghead/load_animator_settings", {json: {...data, instance_id: state.instanceId}});
  await reload();
  toast(`Loaded ${file.name}${typeof reply === "string" && reply !== "OK" ? ` (${reply})` : ""}`, "ok");
}

// -- the list ------------------------------------------------------------------------------------

function renderChain() {
  if (!chain.length) {
    listBox.replaceChildren(h("p", {class: "empty-note"}, "No filters: the feed shows the raw render. Add one above."));
    return;
  }
  listBox.replaceChildren(...chain.map((step, i) => stepCard(step, i)));
}

function move(i, delta) {
  const j = i + delta;
  if (j < 0 || j >= chain.length) return;
  [chain[i], chain[j]] = [chain[j], chain[i]];
  renderChain();
  push();
}

function stepCard([name, params], i) {
  const info = catalogue[name] || {name, description: "(unknown filter)", params: []};
  const summary = (info.description || "").split("\n")[0];
  return h("div", {class: "step", dataset: {filter: name, index: i}},
    h("div", {class: "step-head"},
      h("span", {class: "step-index"}, String(i + 1)),
      h("strong", {title: info.description}, name),
      info.dynamic ? h("span", {class: "badge", title: "Changes over time"}, "animated") : null,
      h("span", {class: "spacer"}),
      h("button", {type: "button", class: "icon", title: "Move up", disabled: i === 0, onclick: () => move(i, -1)}, "↑"),
      h("button", {type: "button", class: "icon", title: "Move down", disabled: i === chain.length - 1, onclick: () => move(i, 1)}, "↓"),
      h("button", {type: "button", class: "icon remove", title: "Remove", onclick: () => { chain.splice(i, 1); renderChain(); push(); }}, "✕")),
    summary ? h("p", {class: "help"}, summary) : null,
    h("div", {class: "params"}, info.params.map((p) => paramControl(p, params))));
}

function paramControl(p, params) {
  const set = (v) => { params[p.name] = v; pushLater(); };
  const label = p.name.replace(/_/g, " ");
  if (p.type === "float" || p.type === "int") {
    const integer = p.type === "int";
    const step = integer ? 1 : Math.max((p.max - p.min) / 200, 0.001);
    return slider({label, min: p.min, max: p.max, step, value: params[p.name], title: p.description,
      format: (v) => (integer ? String(Math.round(v)) : String(Math.round(v * 1000) / 1000)), onInput: set});
  }
  if (p.type === "bool") {
    const box = h("input", {type: "checkbox", checked: Boolean(params[p.name]), onchange: () => set(box.checked)});
    return h("label", {class: "check", title: p.description}, box, label);
  }
  if (p.type === "choice") {
    const sel = h("select", {onchange: () => set(sel.value)}, p.choices.map((c) => h("option", {value: c, selected: c === params[p.name]}, String(c))));
    return h("label", {class: "slider", title: p.description}, h("span", {class: "label"}, label), sel);
  }
  if (p.type === "color") {
    const input = h("input", {type: "color", value: toHex(params[p.name]), oninput: () => set(fromHex(input.value))});
    return h("label", {class: "slider", title: p.description}, h("span", {class: "label"}, label), input);
  }
  const text = h("input", {type: "text", value: JSON.stringify(params[p.name]), onchange: () => {
    try { set(JSON.parse(text.value)); } catch (err) { toast(`${p.name}: ${err.message}`); }
  }});
  return h("label", {class: "slider", title: p.description}, h("span", {class: "label"}, label), text);
}

function toHex(rgb) {
  return "#" + (rgb || [0, 0, 0]).map((c) => Math.round(Math.min(1, Math.max(0, c)) * 255).toString(16).padStart(2, "0")).join("");
}

function fromHex(hex) {
  return [1, 3, 5].map((i) => Math.round(parseInt(hex.slice(i, i + 2), 16) / 255 * 1000) / 1000);
}

// -- the other animator settings (from the JSON Schema) ------------------------------------------

function renderForm() {
  if (!animatorSchema) { formBox.replaceChildren(h("p", {class: "hint"}, "The server sent no schema for these settings.")); return; }
  formBox.replaceChildren(schemaForm(animatorSchema, settings, {exclude: ["postprocessor_chain"], onApply: async (changes) => {
    const next = {...settings, ...changes};
    await api("api/talkinghead/load_animator_settings", {json: {...next, instance_id: state.instanceId}});
    settings = next;
  }}));
}
