// The talkinghead module's Avatar panel: the live feed over a backdrop on the page's stage, instances,
// characters, emotions, pose hints and morph overrides. Loaded by the page shell from /ui/modules/talkinghead/.

import {api, url} from "../../js/api.js";
import {h, card, run, toast, slider, select, throttle, debounce, pickFile, errorText, stylesheet} from "../../js/dom.js";
import {state} from "../../js/state.js";

// GoEmotions' grouping by sentiment, shown as a coloured dot on each button.
const POSITIVE = ["admiration", "amusement", "approval", "caring", "desire", "excitement", "gratitude", "joy", "love",
  "optimism", "pride", "relief"];
const NEGATIVE = ["anger", "annoyance", "disappointment", "disapproval", "disgust", "embarrassment", "fear", "grief",
  "nervousness", "remorse", "sadness"];
const sentiment = (name) => (POSITIVE.includes(name) ? "positive" : NEGATIVE.includes(name) ? "negative" : name === "neutral" ? "neutral" : "ambiguous");
const HINTS = [["look_at_camera", "Look at camera"], ["look_left", "Look left"], ["look_right", "Look right"],
  ["stand_straight", "Stand straight"], ["new_sway", "New sway"]];
const STORE = "greenroom.backdrop";
// A server that lost the instance on stage (restarted, or a worker behind a load balancer died) answers 404
// naming it; the page then creates it again after these delays. More tries than that within the window: give up.
const RECREATE_DELAYS_MS = [1000, 2000, 4000];
const RECREATE_WINDOW_MS = 60_000;
const WATCH_MS = 5000;  // a feed that ends cleanly fires no event on its <img>: ask the server this often
const FEED_RETRY_MAX_MS = 30_000;
const CHANGES = /^api\/talkinghead\/(load|load_emotion_templates|load_animator_settings|set_emotion|set_overrides|modify_overrides|start|stop)$/;

let characters = [];
let instances = [];

/** POST to a talkinghead route for the instance on stage. */
function onInstance(path, json = {}) {
  return api(`api/talkinghead/${path}`, {json: {...json, instance_id: state.instanceId}});
}

export async function mount(panel, {stage}) {
  stylesheet(new URL("talkinghead.css", import.meta.url));
  characters = (await api("api/talkinghead/characters")).characters;
  buildStage(stage);
  buildToolbar();
  const emotions = h("div", {class: "emotions", id: "emotions"});
  const overrides = h("div", {id: "overrides"});
  const editor = h("a", {href: new URL("pose-editor.html", import.meta.url).href}, "pose editor");
  panel.replaceChildren(
    card("Emotion", h("p", {class: "hint"}, "Click to change the avatar's expression. Edit the emotions themselves in the ",
      editor, "."), emotions),
    card("Pose", hintButtons(), talkingButtons()),
    card("Morph overrides", h("p", {class: "hint"},
      "Drag a slider to hold that morph at a value (eased like emotions); × releases it."), overrides));
  await buildMorphs(overrides);
  state.on("instance", () => { recovery.reset(); refreshInstancePanels(); });
  state.on("emotion", ({name}) => markEmotion(name));
  state.on("speaking", ({on}) => { document.getElementById("speaking-badge").hidden = !on; });
  state.on("instance-reply", onInstanceReply);
  setInterval(watchInstance, WATCH_MS);
  await refreshInstances();
}

/** The feed over its backdrop, with a badge while lip-synced speech plays, and the toolbar below. */
function buildStage(stage) {
  stage.replaceChildren(
    h("div", {class: "stage", id: "stage"},
      h("div", {class: "backdrop", id: "backdrop"}),
      h("img", {id: "feed", alt: "Live avatar", hidden: true}),
      h("div", {class: "stage-message", id: "stage-message"}, "Starting…"),
      h("div", {class: "stage-badges"}, h("span", {id: "speaking-badge", class: "badge speaking", hidden: true}, "speaking"))),
    h("div", {class: "toolbar", id: "stage-toolbar", hidden: true}));
  stage.hidden = false;
}

// -- instances and characters -------------------------------------------------------------------

function buildToolbar() {
  const bar = document.getElementById("stage-toolbar");
  const instanceSelect = h("select", {id: "instance-select", title: "Avatar instance on stage",
    onchange: () => state.setInstance(instanceSelect.value)});
  const characterSelect = select(characters, characters[0], null, {id: "character-select", title: "Example characters in assets/characters/"});
  const newButton = h("button", {type: "button", id: "new-instance", title: "Create another avatar instance with this character",
    onclick: () => run(() => loadCharacter(characterSelect.value, true), newButton, "New instance")}, "+ New");
  const loadButton = h("button", {type: "button", id: "load-character", title: "Show this character in the current instance",
    onclick: () => run(() => loadCharacter(characterSelect.value, false), loadButton, "Load")}, "Load");
  const uploadButton = h("button", {type: "button", id: "upload-character",
    title: "Your own character: a 512x512 PNG with a transparent background",
    onclick: () => run(uploadCharacter, uploadButton, "Upload")}, "Upload…");
  const deleteButton = h("button", {type: "button", class: "ghost", title: "Delete this instance",
    onclick: () => run(deleteInstance, deleteButton, "Delete")}, "Delete");
  const pauseButton = h("button", {type: "button", class: "ghost", id: "pause-button",
    onclick: () => run(async () => {
      const paused = pauseButton.dataset.paused === "true";
      await onInstance(paused ? "start" : "stop");
      setPaused(!paused);
    }, pauseButton, "Pause")}, "Pause");
  bar.replaceChildren(
    h("div", {class: "row"}, h("span", {class: "label"}, "Instance"), instanceSelect, newButton, pauseButton, deleteButton),
    h("div", {class: "row"}, h("span", {class: "label"}, "Character"), characterSelect, loadButton, uploadButton),
    backdropRow());
  bar.hidden = false;
  const feed = document.getElementById("feed");
  feed.addEventListener("load", () => {
    feed.hidden = false;
    document.getElementById("stage-message").hidden = true;
    recovery.feedDelay = 0;
  });
  feed.addEventListener("error", () => { if (feed.getAttribute("src")) feedStopped(); });
}

function setPaused(paused) {
  const b = document.getElementById("pause-button");
  b.dataset.paused = String(paused);
  b.textContent = paused ? "Resume" : "Pause";
}

function showMessage(text) {
  const msg = document.getElementById("stage-message");
  msg.textContent = text;
  msg.hidden = false;
}

async function refreshInstances(select_ = null) {
  instances = (await api("api/talkinghead/instances")).instances;
  if (!instances.length && characters.length) {
    showMessage(`Loading ${characters[0]}…`);
    const loaded = await api("api/talkinghead/load", {form: formOf({character: characters[0]})});
    instances = (await api("api/talkinghead/instances")).instances;
    select_ = loaded.instance_id;
  }
  const ids = instances.map((i) => i.instance_id);
  const sel = document.getElementById("instance-select");
  sel.replaceChildren(...instances.map((i) => h("option", {value: i.instance_id}, `${i.instance_id} · ${i.character}`)));
  const chosen = [select_, state.instanceId, "default", ids[0]].find((id) => id && ids.includes(id)) || null;
  if (!chosen) { showMessage("No avatar yet: pick a character and press Load."); return; }
  sel.value = chosen;
  if (chosen === state.instanceId) refreshInstancePanels(); else state.setInstance(chosen);
}

function formOf(fields) {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) if (v !== null && v !== undefined) form.append(k, v);
  return form;
}

async function loadCharacter(name, asNew) {
  recovery.reset();
  const fields = asNew ? {character: name, new: "true"} : {character: name, instance_id: state.instanceId};
  const reply = await api("api/talkinghead/load", {form: formOf(fields)});
  uploads.delete(reply.instance_id);  // now an example character, re-created by name
  toast(`${reply.character} ${reply.created ? "loaded into new instance" : "loaded into"} ${reply.instance_id}`, "ok");
  await refreshInstances(reply.instance_id);
  if (!asNew) showFeed(reply.instance_id);
}

async function uploadCharacter() {
  const file = await pickFile("image/png,image/webp,image/*");
  if (!file) return;
  const reply = await api("api/talkinghead/load", {form: formOf({file, instance_id: state.instanceId})});
  recovery.reset();
  uploads.set(reply.instance_id, file);
  toast(`Uploaded ${reply.character} (${reply.size.join("×")}) into ${reply.instance_id}`, "ok");
  await refreshInstances(reply.instance_id);
}

async function deleteInstance() {
  const id = state.instanceId;
  if (!id) return;
  recovery.dropped = id;  // a check answering 404 meanwhile must not bring it back
  document.getElementById("feed").removeAttribute("src");
  await api("api/talkinghead/unload", {json: {instance_id: id}});
  state.instanceId = null;
  toast(`Instance ${id} deleted`, "ok");
  await refreshInstances();
}

function showFeed(id) {
  const feed = document.getElementById("feed");
  feed.removeAttribute("src");  // closes the previous stream (it holds a server stream slot)
  // WebP: lossless like PNG, about half its encoding CPU on the server (the default stays PNG for SillyTavern)
  feed.src = url("api/talkinghead/result_feed", {instance_id: id, format: "webp", t: Date.now()});
}

async function refreshInstancePanels() {
  const id = state.instanceId;
  if (!id) return;
  showFeed(id);
  const {emotions, status} = await remember(id);
  buildEmotions(emotions);
  setPaused(Boolean(status.paused));
  syncOverrides(status.overrides || {});
}

// -- an instance the server lost -----------------------------------------------------------------

const uploads = new Map();  // instance id -> the picture uploaded into it (needed to create it again)
let kept = null;            // the instance on stage as last read from the server: what re-creating restores
const recovery = {
  running: false, tries: [], feedDelay: 0,
  dropped: null,  // an instance the page deleted or gave up on: never re-created
  reset() { this.tries = []; this.dropped = null; this.feedDelay = 0; },
};

/** Read what re-creating ``id`` needs: its character, emotion templates, animator settings, emotion, overrides. */
async function remember(id) {
  const started = Date.now();
  const [emotions, status, animator] = await Promise.all([
    api("api/talkinghead/emotions", {query: {instance_id: id}}),
    api("api/talkinghead/status", {query: {instance_id: id}}),
    api("api/talkinghead/animator_settings", {query: {instance_id: id}})]);
  if (id === state.instanceId && !recovery.running) {
    kept = {id, character: status.character, templates: emotions.emotions, emotion: emotions.current,
      animator, overrides: status.overrides || {}, paused: Boolean(status.paused)};
    document.getElementById("stage").dataset.rememberedAt = String(started);  // when the state read here was current
  }
  return {emotions, status};
}

const rememberSoon = debounce(() => {
  if (state.instanceId && !recovery.running) remember(state.instanceId).catch(() => {});
}, 1000);

/** Every API answer naming an instance: a 404 for ours starts its re-creation; a change refreshes ``kept``. */
function onInstanceReply({path, method, status, instanceId}) {
  if (instanceId !== state.instanceId) return;
  if (status === 404) instanceLost(instanceId);
  else if (method === "POST" && status < 300 && CHANGES.test(path)) rememberSoon();
}

function watchInstance() {
  const id = state.instanceId;
  if (!id || document.hidden || recovery.running || recovery.dropped === id) return;
  api("api/talkinghead/status", {query: {instance_id: id}}).catch(() => {});  // a 404 reaches onInstanceReply
}

/** The feed failed: a lost instance is re-created (the status call's 404 does it); otherwise reopen it, backing off. */
async function feedStopped() {
  const id = state.instanceId;
  if (!id || recovery.running) return;
  try {
    await api("api/talkinghead/status", {query: {instance_id: id}});
  } catch (err) {
    if (err.status === 404) return;
  }
  recovery.feedDelay = Math.min(FEED_RETRY_MAX_MS, Math.max(1000, recovery.feedDelay * 2));
  showMessage(`The video feed stopped; reconnecting in ${Math.round(recovery.feedDelay / 1000)} s…`);
  setTimeout(() => { if (state.instanceId === id && !recovery.running) showFeed(id); }, recovery.feedDelay);
}

function instanceLost(id) {
  if (recovery.running || recovery.dropped === id) return;
  recovery.running = true;
  recreate(id).finally(() => { recovery.running = false; });
}

/** Load the lost instance again under its id, as ``kept`` describes it, with back-off; give up after a few tries. */
async function recreate(id) {
  let failure = null;
  for (;;) {
    const now = Date.now();
    recovery.tries = recovery.tries.filter((t) => now - t < RECREATE_WINDOW_MS);
    if (recovery.tries.length >= RECREATE_DELAYS_MS.length) break;
    showMessage(`The server no longer has avatar ${id}; creating it again…`);
    await new Promise((resolve) => setTimeout(resolve, RECREATE_DELAYS_MS[recovery.tries.length]));
    recovery.tries.push(Date.now());
    if (state.instanceId !== id) return;  // the user moved on meanwhile
    try {
      await restore(id, kept && kept.id === id ? kept : {character: characters[0]});
      toast(`The server had lost avatar ${id}; it was created again`, "ok");
      recovery.running = false;
      await refreshInstances(id);  // the instance list, and the panels and feed of ``id``
      return;
    } catch (err) {
      failure = err;
    }
  }
  recovery.dropped = id;
  const message = `Avatar ${id} is gone from the server and could not be created again ` +
    `(${failure ? errorText(failure) : "the server lost it again after each try"}). Pick a character and press Load.`;
  showMessage(message);
  toast(message);
}

async function restore(id, was) {
  const picture = uploads.get(id);
  if (!picture && !characters.includes(was.character)) {
    throw new Error(`its character ${was.character} was uploaded from another page`);
  }
  await api("api/talkinghead/load", {form: formOf(picture ? {file: picture, instance_id: id} : {character: was.character, instance_id: id})});
  const on = (path, json) => api(`api/talkinghead/${path}`, {json: {...json, instance_id: id}});
  if (was.templates) await on("load_emotion_templates", was.templates);
  if (was.animator) await on("load_animator_settings", was.animator);
  if (was.emotion) await on("set_emotion", {emotion_name: was.emotion});
  if (was.overrides && Object.keys(was.overrides).length) await on("set_overrides", {overrides: was.overrides});
  if (was.paused) await on("stop", {});
}

// -- backdrop ------------------------------------------------------------------------------------

function backdropRow() {
  const stage = document.getElementById("backdrop");
  const saved = JSON.parse(localStorage.getItem(STORE) || "{}");
  let names = [];
  let choice = {name: saved.name ?? null, sigma: saved.sigma ?? 0};
  const cache = new Map();
  const picker = h("select", {id: "backdrop-select", title: "Backdrop images from assets/backdrops/"});
  const canBlur = state.loaded("imagefx");
  const blur = slider({label: "Blur", min: 0, max: 24, step: 1, value: choice.sigma,
    title: canBlur ? "Gaussian blur through the imagefx module" : "Enable the imagefx module to blur the backdrop",
    onInput: (v) => { choice.sigma = v; applyLater(); }});
  blur.range.disabled = !canBlur;
  blur.querySelector(".num").disabled = !canBlur;
  blur.id = "backdrop-blur";

  async function apply() {
    localStorage.setItem(STORE, JSON.stringify(choice));
    if (!choice.name) { stage.style.backgroundImage = ""; return; }
    const plain = url(`ui/backdrops/${encodeURIComponent(choice.name)}`);
    if (!choice.sigma || !canBlur) { stage.style.backgroundImage = `url("${plain}")`; return; }
    const key = `${choice.name}:${choice.sigma}`;
    if (!cache.has(key)) {
      const image = await (await fetch(plain)).blob();
      const form = new FormData();
      form.append("file", image, choice.name);
      form.append("json", JSON.stringify({filters: [["blur", {sigma: choice.sigma}]], format: "jpeg"}));
      cache.set(key, URL.createObjectURL(await api("api/imagefx/process", {form})));
    }
    stage.style.backgroundImage = `url("${cache.get(key)}")`;
  }
  const applyLater = debounce(() => run(apply, null, "Backdrop"), 250);
  picker.addEventListener("change", () => { choice.name = picker.value || null; applyLater(); });
  fetch(url("ui/backdrops.json")).then((r) => r.json()).then((data) => {
    names = data.backdrops || [];
    if (choice.name === null && !saved.hasOwnProperty("name")) choice.name = names.includes("studio.jpg") ? "studio.jpg" : names[0] || null;
    picker.replaceChildren(h("option", {value: ""}, "none"), ...names.map((n) => h("option", {value: n}, n.replace(/\.\w+$/, ""))));
    picker.value = choice.name || "";
    applyLater();
  }).catch((err) => toast(`Backdrops: ${errorText(err)}`));
  return h("div", {class: "row"}, h("span", {class: "label"}, "Backdrop"), picker, blur);
}

// -- emotions, hints, talking --------------------------------------------------------------------

function buildEmotions(data) {
  const box = document.getElementById("emotions");
  const names = Object.keys(data.emotions).sort();
  box.replaceChildren(...names.map((name) => {
    const b = h("button", {type: "button", class: "emotion", dataset: {emotion: name}, title: name,
      onclick: () => run(async () => { await onInstance("set_emotion", {emotion_name: name}); state.emit("emotion", {name}); }, b, "Emotion")},
    h("span", {class: `dot ${sentiment(name)}`}), h("span", {}, name));
    return b;
  }));
  markEmotion(data.current);
}

function markEmotion(name) {
  for (const b of document.querySelectorAll("#emotions .emotion")) b.classList.toggle("active", b.dataset.emotion === name);
}

function hintButtons() {
  const duration = slider({label: "Hold (s)", min: 1, max: 30, step: 1, value: 5, onInput: () => {}});
  return h("div", {},
    h("div", {class: "button-row"}, HINTS.map(([hint, text]) => {
      const b = h("button", {type: "button", dataset: {hint}, onclick: () => run(() =>
        onInstance("pose_hint", {hint, duration: Number(duration.range.value)}), b, text)}, text);
      return b;
    })), duration);
}

function talkingButtons() {
  const start = h("button", {type: "button", title: "Mouth animation without audio (for clients that play no sound)",
    onclick: () => run(() => api("api/talkinghead/start_talking", {method: "POST", query: {instance_id: state.instanceId}}), start)}, "Talk (no audio)");
  const stop = h("button", {type: "button", class: "ghost",
    onclick: () => run(() => api("api/talkinghead/stop_talking", {method: "POST", query: {instance_id: state.instanceId}}), stop)}, "Stop talking");
  return h("div", {class: "button-row"}, start, stop);
}

// -- morph overrides -----------------------------------------------------------------------------

const rows = new Map();

async function buildMorphs(box) {
  const {morphs} = await api("api/talkinghead/morphs");
  const groups = {};
  for (const m of morphs) (groups[m.group] ||= []).push(m);
  const send = new Map();
  const clear = h("button", {type: "button", class: "ghost", onclick: () => run(async () => {
    await onInstance("set_overrides", {overrides: {}});
    syncOverrides({});
  }, clear, "Clear overrides")}, "Release all");
  box.replaceChildren(h("div", {class: "button-row"}, clear), ...Object.entries(groups).map(([group, list]) =>
    h("details", {class: "morph-group", open: group === "face"},
      h("summary", {}, `${group} (${list.length})`),
      list.map((m) => {
        if (!send.has(m.name)) send.set(m.name, throttle((v) => run(() => onInstance("modify_overrides",
          {action: "set", overrides: {[m.name]: v}}), null, m.name), 80));
        const row = slider({label: pretty(m.name), min: m.min, max: m.max, step: 0.01, value: 0,
          title: m.name, format: (v) => v.toFixed(2), onInput: (v) => { row.classList.add("set"); send.get(m.name)(v); }});
        row.classList.add("morph");
        row.dataset.morph = m.name;
        row.append(h("button", {type: "button", class: "close", title: "Release this override", onclick: (e) => {
          e.preventDefault();
          run(async () => { await onInstance("modify_overrides", {action: "unset", overrides: {[m.name]: 0}}); row.classList.remove("set"); row.setValue(0); }, null, m.name);
        }}, "×"));
        rows.set(m.name, row);
        return row;
      }))));
}

function syncOverrides(overrides) {
  for (const [name, row] of rows) {
    const set = Object.prototype.hasOwnProperty.call(overrides, name);
    row.classList.toggle("set", set);
    row.setValue(set ? overrides[name] : 0);
  }
}

function pretty(name) {
  return name.replace(/_index$/, "").replace(/_/g, " ");
}
