// The classify module's panel: the classifier's full ranking, and a button to show the result on the avatar.

import {api} from "../../js/api.js";
import {h, card, run, stylesheet} from "../../js/dom.js";
import {state} from "../../js/state.js";

export async function mount(panel) {
  stylesheet(new URL("classify.css", import.meta.url));
  const text = h("textarea", {id: "classify-text", rows: 3, maxlength: 20000},
    "I can't believe we finally won the championship, this is the best day of my life!");
  const ranking = h("ol", {class: "ranking", id: "ranking"});
  let top = null;
  const apply = h("button", {type: "button", id: "apply-emotion", disabled: true,
    title: "Show the top emotion on the avatar on stage",
    onclick: () => run(() => applyEmotion(top), apply, "Apply")}, "Apply to avatar");
  const go = h("button", {type: "button", class: "primary", id: "classify-button", onclick: () => run(async () => {
    const {classification} = await api("api/classify", {json: {text: text.value}});
    top = classification[0].label;
    const max = classification[0].score || 1;
    ranking.replaceChildren(...classification.map((c, i) => h("li", {class: i === 0 ? "top" : "", dataset: {label: c.label},
      title: state.loaded("talkinghead") ? "Click to show this emotion on the avatar" : "",
      onclick: () => state.loaded("talkinghead") && run(() => applyEmotion(c.label), null, "Apply")},
    h("span", {class: "name"}, c.label),
    h("span", {class: "bar"}, h("span", {style: {width: `${Math.max(1, (c.score / max) * 100)}%`}})),
    h("span", {class: "score"}, c.score.toFixed(3)))));
    apply.disabled = !state.loaded("talkinghead");
  }, go, "Classify")}, "Classify");
  text.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) go.click(); });
  panel.replaceChildren(card("Emotion from text",
    h("p", {class: "hint"}, "The classifier ranks 28 emotions (GoEmotions). Ctrl+Enter classifies."),
    text, h("div", {class: "row"}, go, apply), ranking));
}

async function applyEmotion(label) {
  if (!label || !state.instanceId) return;
  await api("api/talkinghead/set_emotion", {json: {instance_id: state.instanceId, emotion_name: label}});
  state.emit("emotion", {name: label});
}
