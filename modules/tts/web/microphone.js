// The Speech panel's microphone (needs the stt module): record with MediaRecorder, transcribe with
// POST /api/stt/transcribe, show the text with each word's time. "Say it back" sends the text round the voice
// loop: classify it (classify module), show that emotion on the avatar, and speak it with lip-sync through
// the panel's own Speak button.

import {api} from "../../js/api.js";
import {h, run, toast, errorText, stylesheet} from "../../js/dom.js";
import {state} from "../../js/state.js";

/** The microphone row for the Speech panel; `text` is its textarea and `speak` its Speak button. */
export function microphone({text, speak}) {
  if (!state.loaded("stt")) return null;
  stylesheet(new URL("microphone.css", import.meta.url));
  const heard = h("p", {class: "heard", id: "heard-text"});
  const words = h("div", {class: "words", id: "heard-words"});
  const note = h("span", {class: "hint", id: "mic-status"});
  let recorder = null;
  let transcript = "";

  const loop = h("button", {type: "button", id: "loop-button", disabled: true,
    title: "Classify the text, show its emotion on the avatar and say it back with lip-sync",
    onclick: () => run(async () => {
      note.textContent = await sayBack(transcript, text, speak);
    }, loop, "Say it back")}, "Say it back");
  const record = h("button", {type: "button", class: "primary", id: "mic-button",
    title: "Record from the microphone; press again to stop and transcribe",
    onclick: () => (recorder ? recorder.stop() : run(async () => {
      recorder = await startRecording(async (blob, seconds) => {
        recorder = null;
        record.textContent = "● Record";
        record.classList.remove("recording");
        await run(async () => {
          const reply = await transcribe(blob);
          transcript = reply.text;
          heard.textContent = transcript || "(nothing heard)";
          showTimedWords(words, reply.segments);
          loop.disabled = !transcript;
          note.textContent = `${seconds.toFixed(1)} s recorded, ${reply.duration.toFixed(1)} s of audio`;
        }, record, "Transcribe");
      });
      record.textContent = "■ Stop";
      record.classList.add("recording");
      note.textContent = "Listening…";
    }, null, "Microphone"))}, "● Record");

  return h("div", {class: "microphone"},
    h("div", {class: "row"}, h("span", {class: "label"}, "Microphone"), record, loop, note),
    heard, words);
}

/** Start recording; `done(blob, seconds)` runs once the recording stops. Answers the MediaRecorder. */
async function startRecording(done) {
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    throw new Error("this browser gives pages a microphone only over https or on localhost");
  }
  const stream = await navigator.mediaDevices.getUserMedia({audio: true});
  const type = MediaRecorder.isTypeSupported("audio/webm;codecs=opus") ? "audio/webm;codecs=opus" : "";
  const recorder = new MediaRecorder(stream, type ? {mimeType: type} : {});
  const chunks = [];
  const started = performance.now();
  recorder.addEventListener("dataavailable", (e) => { if (e.data.size) chunks.push(e.data); });
  recorder.addEventListener("stop", () => {
    stream.getTracks().forEach((t) => t.stop());
    done(new Blob(chunks, {type: recorder.mimeType || "audio/webm"}), (performance.now() - started) / 1000);
  });
  recorder.start();
  return recorder;
}

async function transcribe(blob) {
  const form = new FormData();
  form.append("file", blob, "microphone.webm");
  form.append("word_timestamps", "true");
  return api("api/stt/transcribe", {form});
}

/** The voice loop: emotion first (so the face is set when the mouth moves), then speech. */
async function sayBack(transcript, text, speak) {
  let emotion = "";
  if (state.loaded("classify")) {
    const {classification} = await api("api/classify", {json: {text: transcript}});
    emotion = classification[0].label;
    if (state.loaded("talkinghead") && state.instanceId) {
      await api("api/talkinghead/set_emotion", {json: {instance_id: state.instanceId, emotion_name: emotion}})
        .then(() => state.emit("emotion", {name: emotion}))
        .catch((err) => toast(`Emotion: ${errorText(err)}`));
    }
  }
  text.value = transcript;
  speak.click();
  return emotion ? `emotion: ${emotion}` : "";
}

function showTimedWords(box, segments) {
  const list = segments.flatMap((s) => s.words || []);
  box.replaceChildren(...list.map((w) => h("span", {class: "word", dataset: {start: w.start, end: w.end},
    title: `${w.start.toFixed(2)}–${w.end.toFixed(2)} s, p ${w.probability.toFixed(2)}`},
    w.word, h("small", {}, ` ${w.start.toFixed(1)}s`))));
}
