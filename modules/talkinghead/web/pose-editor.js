// The pose editor: edit the 45 THA3 morphs of each emotion template with a live preview rendered by the server
// (POST api/talkinghead/pose), then download the set, apply it to a running instance or save it by name.

import {api, url} from "../../js/api.js";
import {download, errorText, h, pickFile, run, toast} from "../../js/dom.js";

const $ = (id) => document.getElementById(id);
const CHANNEL = `editor-${Math.random().toString(36).slice(2, 10)}`;  // this tab's coalescing channel
const PAIR = /^(.*)_(left|right)_index$/;
const SET_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
// THA3's groups: eyebrow morphs feed the eyebrow combiner, eye/iris/mouth the face morpher, rotations and
// breathing the body rotator and editor.
const GROUPS = [
  ["Eyebrows", (m) => m.startsWith("eyebrow_")],
  ["Eyes", (m) => m.startsWith("eye_")],
  ["Iris", (m) => m.startsWith("iris_")],
  ["Mouth", (m) => m.startsWith("mouth_")],
  ["Face and body rotation", (m) => /^(head|neck|body)_/.test(m)],
  ["Breathing", (m) => m.startsWith("breathing")],
];

const state = {
  morphs: [],      // [{name, min, max, group}] in THA3 order
  defaults: {},    // the shipped set {emotion: {morph: value}}
  baseline: {},    // the set as loaded: "current template" for compare and revert
  working: {},     // the set being edited
  emotion: "neutral",
  rows: {},        // morph -> slider row
  links: {},       // pair stem -> {box, left, right}
};

// -- helpers ----------------------------------------------------------------------------------------

const copy = (x) => JSON.parse(JSON.stringify(x));
const round = (v) => Math.round(v * 10000) / 10000;

function pretty(name) {
  return name.replace(/_index$/, "").replace(/_/g, " ");
}

/** A template with zero values dropped and morphs in THA3 order (what the server stores and returns). */
function clean(template) {
  const out = {};
  for (const {name} of state.morphs) {
    const v = Number(template?.[name] || 0);
    if (Math.abs(v) > 1e-6) out[name] = round(v);
  }
  return out;
}

function normalised(set) {
  const out = {};
  for (const emotion of Object.keys(set).sort()) out[emotion] = clean(set[emotion]);
  return out;
}

function sameTemplate(a, b) {
  return JSON.stringify(clean(a)) === JSON.stringify(clean(b));
}

function say(message, kind = "info") {
  const el = $("pe-message");
  el.textContent = message;
  el.className = `pe-message ${kind}`;
}

function characterTarget() {
  const [kind, ...rest] = $("pe-character").value.split(":");
  const id = rest.join(":");
  return kind === "instance" ? {instance_id: id} : {character: id};
}

// -- preview: one request in flight, only the newest slider state waits -------------------------------

class Preview {
  constructor(img, label, channel) {
    this.img = img;
    this.label = label;
    this.channel = channel;
    this.inFlight = false;
    this.pending = null;
    this.wanted = null;
    this.renders = 0;
  }

  /** Ask for this pose; while a render runs, newer requests replace the queued one (never pile up). */
  request(pose) {
    const body = {...characterTarget(), pose: clean(pose)};
    const key = JSON.stringify(body);
    if (key === this.wanted) return;
    this.wanted = key;
    if (this.inFlight) {
      this.pending = body;
      this.label.textContent = "rendering… (newest state queued)";
      return;
    }
    this.send(body, key);
  }

  async send(body, key) {
    this.inFlight = true;
    this.label.textContent = "rendering…";
    this.img.classList.add("stale");
    try {
      const blob = await api("api/talkinghead/pose", {json: {...body, channel: this.channel}});
      if (!this.pending) await this.show(blob, body);
    } catch (err) {
      this.label.textContent = "failed";
      toast(`Preview: ${errorText(err)}`);
      this.wanted = null;
    } finally {
      this.inFlight = false;
      const next = this.pending;
      this.pending = null;
      if (next) this.send(next, JSON.stringify(next));
      else if (this.label.textContent !== "failed") this.label.textContent = "up to date";
    }
  }

  show(blob, body) {
    return new Promise((resolve) => {
      const old = this.img.src;
      this.img.onload = () => {
        if (old.startsWith("blob:")) URL.revokeObjectURL(old);
        this.renders += 1;
        this.img.dataset.pose = JSON.stringify(body.pose);
        this.img.dataset.renders = String(this.renders);
        this.img.classList.remove("stale");
        resolve();
      };
      this.img.onerror = () => resolve();
      this.img.src = URL.createObjectURL(blob);
    });
  }
}

const preview = new Preview($("pe-preview"), $("pe-preview-state"), CHANNEL);
const comparePreview = new Preview($("pe-compare"), $("pe-compare-state"), `${CHANNEL}-compare`);

function refreshPreviews() {
  preview.request(state.working[state.emotion] || {});
  if ($("pe-compare-toggle").checked) comparePreview.request(state.baseline[state.emotion] || {});
}

// -- sliders ----------------------------------------------------------------------------------------

function sliderRow(morph, label) {
  const range = h("input", {type: "range", min: morph.min, max: morph.max, step: 0.01, value: 0,
    name: morph.name, "aria-label": morph.name, dataset: {morph: morph.name}});
  const number = h("input", {type: "number", min: morph.min, max: morph.max, step: 0.01, value: 0, class: "num",
    "aria-label": `${morph.name} value`});
  const row = h("div", {class: "pe-row", title: morph.name, dataset: {morph: morph.name}},
    h("span", {class: "label"}, label), range, number);
  row.range = range;
  row.number = number;
  range.addEventListener("input", () => setMorph(morph.name, Number(range.value), true));
  number.addEventListener("change", () => {
    const v = Math.min(morph.max, Math.max(morph.min, Number(number.value) || 0));
    setMorph(morph.name, v, true);
  });
  range.addEventListener("dblclick", () => setMorph(morph.name, 0, true));
  state.rows[morph.name] = row;
  return row;
}

function buildSliders() {
  const box = $("pe-groups");
  box.replaceChildren();
  const done = new Set();
  for (const [title, test] of GROUPS) {
    const names = state.morphs.filter((m) => test(m.name));
    const body = h("div", {class: "pe-group-body"});
    for (const morph of names) {
      if (done.has(morph.name)) continue;
      const match = PAIR.exec(morph.name);
      if (match) {
        const [, stem] = match;
        const left = state.morphs.find((m) => m.name === `${stem}_left_index`);
        const right = state.morphs.find((m) => m.name === `${stem}_right_index`);
        done.add(left.name).add(right.name);
        const link = h("input", {type: "checkbox", checked: true, dataset: {link: stem},
          title: "Linked: moving one side moves the other"});
        state.links[stem] = {box: link, left: left.name, right: right.name};
        body.append(h("div", {class: "pe-pair"},
          h("div", {class: "pe-pair-head"}, h("span", {}, pretty(stem)),
            h("label", {class: "check small"}, link, "link L/R")),
          sliderRow(left, "left"), sliderRow(right, "right")));
      } else {
        done.add(morph.name);
        body.append(sliderRow(morph, pretty(morph.name)));
      }
    }
    box.append(h("details", {class: "pe-group card", open: true, dataset: {group: title}},
      h("summary", {}, title, h("span", {class: "count"}, ` ${names.length}`)), body));
  }
}

function partnerOf(name) {
  const match = PAIR.exec(name);
  if (!match) return null;
  const link = state.links[match[1]];
  if (!link || !link.box.checked) return null;
  return match[2] === "left" ? link.right : link.left;
}

/** One morph changed (by a slider, a number box or a linked partner). */
function setMorph(name, value, fromUser) {
  const template = state.working[state.emotion] ||= {};
  const names = [name];
  const partner = fromUser ? partnerOf(name) : null;
  if (partner) names.push(partner);
  for (const n of names) {
    if (Math.abs(value) > 1e-6) template[n] = round(value); else delete template[n];
    state.rows[n].range.value = value;
    state.rows[n].number.value = round(value);
  }
  markChanges();
  preview.request(template);
}

/** Put the current emotion's values on the sliders and set the links from their symmetry. */
function showEmotion() {
  const template = state.working[state.emotion] || {};
  for (const {name} of state.morphs) {
    const v = Number(template[name] || 0);
    state.rows[name].range.value = v;
    state.rows[name].number.value = round(v);
  }
  for (const link of Object.values(state.links)) {
    link.box.checked = Number(template[link.left] || 0) === Number(template[link.right] || 0);
  }
  markChanges();
  refreshPreviews();
}

function markChanges() {
  const base = state.baseline[state.emotion] || {};
  const work = state.working[state.emotion] || {};
  let changed = 0;
  for (const {name} of state.morphs) {
    const differs = Math.abs(Number(work[name] || 0) - Number(base[name] || 0)) > 1e-6;
    state.rows[name].classList.toggle("changed", differs);
    changed += differs;
  }
  $("pe-changed").textContent = changed ? `${changed} morph${changed > 1 ? "s" : ""} changed` : "unchanged";
  for (const option of $("pe-emotion").options) {
    const edited = !sameTemplate(state.working[option.value], state.baseline[option.value]);
    option.textContent = edited ? `${option.value} •` : option.value;
  }
}

// -- emotions and sets ------------------------------------------------------------------------------

function emotionNames() {
  return [...new Set([...Object.keys(state.defaults), ...Object.keys(state.working)])].sort();
}

function fillEmotionSelects() {
  const names = emotionNames();
  if (!names.includes(state.emotion)) state.emotion = names.includes("neutral") ? "neutral" : names[0];
  $("pe-emotion").replaceChildren(...names.map((n) => h("option", {value: n, selected: n === state.emotion}, n)));
  $("pe-copy-from").replaceChildren(...names.map((n) => h("option", {value: n}, n)));
}

/** Edit a whole set: emotions it lacks fall back to the shipped ones, as on the server. */
function useSet(set, label) {
  const full = {...copy(state.defaults), ...copy(set)};
  for (const e of Object.keys(full)) full[e] = clean(full[e]?.pose && typeof full[e].pose === "object" ? full[e].pose : full[e]);
  state.baseline = copy(full);
  state.working = full;
  fillEmotionSelects();
  showEmotion();
  say(`Editing ${label} (${Object.keys(full).length} emotions).`);
}

function hasEdits() {
  return emotionNames().some((e) => !sameTemplate(state.working[e], state.baseline[e]));
}

async function loadSource() {
  const value = $("pe-source").value;
  if (hasEdits() && !confirm("Discard the unsaved changes of this set?")) return;
  const [kind, ...rest] = value.split(":");
  const name = rest.join(":");
  if (kind === "instance") {
    const data = await api("api/talkinghead/emotions", {query: {instance_id: name}});
    useSet(data.emotions, `the templates of instance ${name}`);
  } else if (kind === "set") {
    useSet(await api(`api/talkinghead/emotion_sets/${encodeURIComponent(name)}`), `saved set "${name}"`);
    $("pe-set-name").value = name;
  } else {
    useSet(state.defaults, "the shipped templates");
  }
}

function checkMorphs(set) {
  const known = new Set(state.morphs.map((m) => m.name));
  if (!set || typeof set !== "object" || Array.isArray(set)) throw new Error("expected {emotion: {morph: value}}");
  for (const [emotion, entry] of Object.entries(set)) {
    const template = entry && typeof entry.pose === "object" ? entry.pose : entry;
    if (!template || typeof template !== "object") throw new Error(`emotion "${emotion}": expected an object`);
    for (const [morph, v] of Object.entries(template)) {
      if (!known.has(morph)) throw new Error(`emotion "${emotion}": unknown morph "${morph}"`);
      if (typeof v !== "number" || !Number.isFinite(v)) throw new Error(`emotion "${emotion}": ${morph} is not a number`);
    }
  }
  return set;
}

// -- lists from the server --------------------------------------------------------------------------

async function refreshCharacters(select = null) {
  const current = select || $("pe-character").value;
  const [{characters}, {instances}] = await Promise.all([
    api("api/talkinghead/characters"), api("api/talkinghead/instances")]);
  const options = [
    h("optgroup", {label: "Characters"}, characters.map((c) => h("option", {value: `character:${c}`}, c))),
    h("optgroup", {label: "Live instances"}, instances.map((i) =>
      h("option", {value: `instance:${i.instance_id}`}, `${i.instance_id} (${i.character})`))),
  ];
  $("pe-character").replaceChildren(...options);
  if (current && [...$("pe-character").options].some((o) => o.value === current)) $("pe-character").value = current;
  const instanceSelect = $("pe-instance");
  const chosen = instanceSelect.value;
  instanceSelect.replaceChildren(...instances.map((i) =>
    h("option", {value: i.instance_id}, `${i.instance_id} (${i.character})`)));
  if (!instances.length) instanceSelect.append(h("option", {value: ""}, "no live instance"));
  if (instances.some((i) => i.instance_id === chosen)) instanceSelect.value = chosen;
  return instances;
}

async function refreshSources(instances = null) {
  const current = $("pe-source").value;
  const {sets} = await api("api/talkinghead/emotion_sets");
  instances ||= (await api("api/talkinghead/instances")).instances;
  $("pe-source").replaceChildren(
    h("option", {value: "default"}, "shipped templates"),
    h("optgroup", {label: "Saved sets"}, sets.filter((s) => !s.read_only).map((s) =>
      h("option", {value: `set:${s.name}`}, s.name))),
    h("optgroup", {label: "Live instances"}, instances.map((i) =>
      h("option", {value: `instance:${i.instance_id}`}, `instance ${i.instance_id}`))));
  if ([...$("pe-source").options].some((o) => o.value === current)) $("pe-source").value = current;
}

// -- actions ----------------------------------------------------------------------------------------

async function uploadCharacter() {
  const file = await pickFile("image/png,image/webp");
  if (!file) return;
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("new", "true");
  const reply = await api("api/talkinghead/load", {form});
  // The instance only holds the character for previews here: pause its animation (the CPU is the preview's).
  await api("api/talkinghead/stop", {json: {instance_id: reply.instance_id}});
  await refreshCharacters(`instance:${reply.instance_id}`);
  await refreshSources();
  say(`Loaded ${reply.character} as instance ${reply.instance_id} (paused). Apply a set to it to see it animate.`);
  refreshPreviews();
}

async function applyToInstance() {
  const instanceId = $("pe-instance").value;
  if (!instanceId) throw new Error("no live instance: load a character on the main page first");
  await api("api/talkinghead/load_emotion_templates", {json: {...normalised(state.working), instance_id: instanceId}});
  await api("api/talkinghead/start", {json: {instance_id: instanceId}});
  await api("api/talkinghead/set_emotion", {json: {emotion_name: state.emotion, instance_id: instanceId}});
  say(`Applied ${emotionNames().length} emotions to instance ${instanceId}; it now shows "${state.emotion}".`, "ok");
  if ($("pe-live-toggle").checked) showLive(instanceId);
}

function showLive(instanceId) {
  const on = $("pe-live-toggle").checked && instanceId;
  $("pe-live").hidden = !on;
  const feed = $("pe-live-feed");
  const src = on ? url("api/talkinghead/result_feed", {instance_id: instanceId, format: "webp"}) : "";
  if (feed.getAttribute("src") !== src) {
    if (src) feed.src = src; else feed.removeAttribute("src");
  }
}

async function saveSet() {
  const name = $("pe-set-name").value.trim();
  if (!SET_NAME.test(name) || name === "default") {
    throw new Error("set name: 1-64 letters, digits, '_' or '-', starting with a letter or digit (not 'default')");
  }
  const path = `api/talkinghead/emotion_sets/${encodeURIComponent(name)}`;
  const body = normalised(state.working);
  let reply;
  try {
    reply = await api(path, {method: "PUT", json: body, query: {overwrite: "false"}});
  } catch (err) {
    if (err.status !== 409 || !confirm(`A set named "${name}" exists. Replace it?`)) throw err;
    reply = await api(path, {method: "PUT", json: body, query: {overwrite: "true"}});
  }
  state.baseline = copy(state.working);
  markChanges();
  await refreshSources();
  $("pe-source").value = `set:${name}`;
  say(`Saved ${reply.emotions} emotions as "${name}" (assets/emotions/sets/${name}.json). Instances load it with ` +
      `POST /api/talkinghead/load_emotion_set {"name": "${name}"}.`, "ok");
}

async function openJson() {
  const file = await pickFile("application/json,.json");
  if (!file) return;
  const set = checkMorphs(JSON.parse(await file.text()));
  useSet(set, `file ${file.name}`);
  const stem = file.name.replace(/\.json$/i, "");
  if (SET_NAME.test(stem)) $("pe-set-name").value = stem;
}

function downloadJson() {
  const name = $("pe-set-name").value.trim() || "emotions";
  download(`${SET_NAME.test(name) ? name : "emotions"}.json`, `${JSON.stringify(normalised(state.working), null, 1)}\n`);
  say(`Downloaded ${emotionNames().length} emotions (POST it to /api/talkinghead/load_emotion_templates).`, "ok");
}

// -- start ------------------------------------------------------------------------------------------

function wire() {
  $("pe-emotion").addEventListener("change", () => { state.emotion = $("pe-emotion").value; showEmotion(); });
  $("pe-character").addEventListener("change", refreshPreviews);
  $("pe-load-source").addEventListener("click", (e) => run(loadSource, e.currentTarget, "Load"));
  $("pe-upload").addEventListener("click", (e) => run(uploadCharacter, e.currentTarget, "Upload"));
  $("pe-compare-toggle").addEventListener("change", () => {
    $("pe-compare-figure").hidden = !$("pe-compare-toggle").checked;
    refreshPreviews();
  });
  $("pe-revert").addEventListener("click", () => {
    state.working[state.emotion] = copy(state.baseline[state.emotion] || {});
    showEmotion();
  });
  $("pe-reset").addEventListener("click", () => {
    state.working[state.emotion] = copy(state.defaults[state.emotion] || {});
    showEmotion();
  });
  $("pe-copy").addEventListener("click", () => {
    const from = $("pe-copy-from").value;
    state.working[state.emotion] = copy(state.working[from] || {});
    showEmotion();
    say(`Copied "${from}" into "${state.emotion}".`);
  });
  $("pe-download").addEventListener("click", downloadJson);
  $("pe-open").addEventListener("click", (e) => run(openJson, e.currentTarget, "Open"));
  $("pe-apply").addEventListener("click", (e) => run(applyToInstance, e.currentTarget, "Apply"));
  $("pe-save").addEventListener("click", (e) => run(saveSet, e.currentTarget, "Save"));
  $("pe-instance").addEventListener("focus", () => run(refreshCharacters, null, "Instances"));
  $("pe-instance").addEventListener("change", () => showLive($("pe-instance").value));
  $("pe-live-toggle").addEventListener("change", () => showLive($("pe-instance").value));
}

async function start() {
  wire();
  const params = new URLSearchParams(location.hash.slice(1));
  const health = await api("health");
  const th = health.modules?.talkinghead;
  if (th !== "loaded") {
    $("pe-status").textContent = `talkinghead is ${th || "not enabled"}`;
    $("pe-status").className = "health bad";
    throw new Error(`the talkinghead module is ${th || "not enabled"} (start the server with --enable-modules=talkinghead)`);
  }
  const [{morphs}, defaults] = await Promise.all([
    api("api/talkinghead/morphs"), api("api/talkinghead/emotion_sets/default")]);
  state.morphs = morphs;
  state.defaults = defaults;
  state.emotion = params.get("emotion") || "neutral";
  buildSliders();
  const instances = await refreshCharacters();
  await refreshSources(instances);
  if (params.get("character")) $("pe-character").value = params.get("character");
  if (params.get("instance")) $("pe-instance").value = params.get("instance");
  useSet(defaults, "the shipped templates");
  $("pe-status").textContent = "talkinghead ready";
  $("pe-status").className = "health ok";
  document.body.dataset.ready = "true";
}

run(start, null, "Pose editor");
