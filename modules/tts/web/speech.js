// The tts module's Speech panel: voice, optional second voice with a mix, speed; the audio plays here while
// the avatar lip-syncs (POST /api/talkinghead/speak, then /speak/start when playback really begins).

import {api, url, base64Blob} from "../../js/api.js";
import {h, card, run, toast, slider, errorText, stylesheet} from "../../js/dom.js";
import {state} from "../../js/state.js";
import {microphone} from "./microphone.js";

const SAMPLE = "Hello! I am your new avatar. I can smile, frown, and talk with my lips in time with my voice.";
let current = null;  // {utterance_id, instance_id} of the lip-synced speech playing now

export async function mount(panel) {
  stylesheet(new URL("speech.css", import.meta.url));
  const data = await api("api/tts/voices");
  const names = data.voices.concat(Object.keys(data.aliases || {}));
  const label = (v) => (data.aliases && data.aliases[v] ? `${v} (${data.aliases[v]})` : v);
  const text = h("textarea", {id: "speech-text", rows: 4, maxlength: 20000}, SAMPLE);
  const voice = h("select", {id: "voice"}, names.map((v) => h("option", {value: v, selected: v === data.default}, label(v))));
  const voice2 = h("select", {id: "voice2", title: "Blend a second voice into the first"},
    h("option", {value: ""}, "— none —"), names.map((v) => h("option", {value: v}, label(v))));
  let mix = 0.5, speed = 1.0;
  const mixRow = slider({label: "Mix", min: 0, max: 1, step: 0.05, value: mix, title: "0 = only the first voice, 1 = only the second",
    format: (v) => v.toFixed(2), onInput: (v) => { mix = v; }});
  const setMixEnabled = () => { mixRow.range.disabled = !voice2.value; mixRow.querySelector(".num").disabled = !voice2.value; };
  voice2.addEventListener("change", setMixEnabled);
  setMixEnabled();
  const speedRow = slider({label: "Speed", min: 0.5, max: 2, step: 0.05, value: speed, format: (v) => v.toFixed(2), onInput: (v) => { speed = v; }});
  const sampleAudio = h("audio", {preload: "none"});
  const preview = h("button", {type: "button", class: "ghost", title: "Hear a short sample of this voice", onclick: () => {
    sampleAudio.src = url(`api/tts/sample/${encodeURIComponent(voice.value)}`);
    sampleAudio.play().catch((err) => toast(`Voice sample: ${err.message}`));
  }}, "▶ Sample");
  sampleAudio.addEventListener("error", () => toast(`Voice sample of ${voice.value} failed to load (mixes and aliases have none)`));

  const canSync = state.loaded("talkinghead");
  const lipsync = h("input", {type: "checkbox", id: "lipsync", checked: canSync, disabled: !canSync});
  const audio = h("audio", {id: "speech-audio", controls: true, preload: "auto"});
  const words = h("div", {class: "words", id: "words"});
  const speak = h("button", {type: "button", class: "primary", id: "speak-button", onclick: () => run(async () => {
    const request = {text: text.value, voice: voice.value, speed, format: "wav"};
    if (voice2.value) Object.assign(request, {voice2: voice2.value, mix});
    await say(request, lipsync.checked && state.instanceId, audio, words);
  }, speak, "Speak")}, "Speak");
  const stop = h("button", {type: "button", class: "ghost", id: "stop-speech", onclick: () => { audio.pause(); }}, "Stop");

  wirePlayback(audio, words);
  panel.replaceChildren(card("Speak",
    text,
    h("div", {class: "row"}, h("span", {class: "label"}, "Voice"), voice, preview, sampleAudio),
    h("div", {class: "row"}, h("span", {class: "label"}, "Second voice"), voice2),
    mixRow, speedRow,
    h("label", {class: "check", title: canSync ? "The avatar's mouth follows the audio" : "Needs the talkinghead module"},
      lipsync, "Lip-sync the avatar on stage"),
    h("div", {class: "row"}, speak, stop),
    audio, words,
    microphone({text, speak})));
}

async function say(request, instanceId, audio, words) {
  const previous = current;
  current = null;
  audio.dataset.utterance = "";  // the pause below must not stop anything new
  audio.pause();
  if (previous) stopLipsync(previous);
  const started = performance.now();
  const reply = instanceId
    ? await api("api/talkinghead/speak", {json: {...request, instance_id: instanceId}})
    : await api("api/tts/speak", {json: request});
  current = instanceId ? {utterance_id: reply.utterance_id, instance_id: reply.instance_id} : null;
  if (audio.src.startsWith("blob:")) URL.revokeObjectURL(audio.src);
  audio.src = URL.createObjectURL(base64Blob(reply.audio, reply.media_type));
  audio.dataset.utterance = reply.utterance_id || "";
  showWords(words, reply.words);
  toast(`${reply.duration.toFixed(1)} s of speech by ${reply.voice} in ${((performance.now() - started) / 1000).toFixed(1)} s`, "info");
  try {
    await audio.play();
  } catch (err) {
    toast(`The browser did not start the audio (${err.message}); press play on the player.`);
  }
}

/** Tell the server when the listener really hears the audio, and when it stops. */
function wirePlayback(audio, words) {
  const start = () => {
    const utterance = current;
    if (!utterance || audio.dataset.utterance !== utterance.utterance_id) return;
    api("api/talkinghead/speak/start", {json: {...utterance, offset: audio.currentTime}})
      .then(() => state.emit("speaking", {on: true}))
      .catch((err) => toast(`Lip-sync: ${errorText(err)}`));
  };
  audio.addEventListener("playing", start);
  audio.addEventListener("seeked", () => { if (!audio.paused) start(); });
  audio.addEventListener("pause", () => {
    if (!audio.ended && current && audio.dataset.utterance === current.utterance_id) stopLipsync(current);
  });
  audio.addEventListener("ended", () => state.emit("speaking", {on: false}));
  const tick = () => {
    const t = audio.currentTime;
    for (const span of words.children) {
      span.classList.toggle("now", Number(span.dataset.start) <= t && t < Number(span.dataset.end));
    }
    if (!audio.paused) requestAnimationFrame(tick);
  };
  audio.addEventListener("play", () => requestAnimationFrame(tick));
}

async function stopLipsync(utterance) {
  state.emit("speaking", {on: false});
  try { await api("api/talkinghead/speak/stop", {json: utterance}); } catch (err) { toast(`Lip-sync stop: ${errorText(err)}`); }
}

function showWords(box, list) {
  box.replaceChildren(...list.map((w) => h("span", {class: "word", dataset: {start: w.start, end: w.end},
    title: `${w.phonemes}  ${w.start.toFixed(2)}–${w.end.toFixed(2)} s`}, w.original || w.word)));
}
