// Module settings: one generic form per running module, built from /api/modules/<name>/schema.
// Third-party modules get their panel from their settings model alone.

import {api} from "./api.js";
import {h, card, toast, errorText} from "./dom.js";
import {state} from "./state.js";
import {schemaForm} from "./schemaform.js";

export async function initSettings(panel) {
  const names = Object.keys(state.modules).filter((n) => state.loaded(n)).sort();
  const list = h("div", {class: "settings-list"});
  panel.replaceChildren(card("Module settings",
    h("p", {class: "hint"}, "Live settings apply at once; those marked “restart” are read from plugins.toml at start. "
      + "A module may have more settings on its own tab."), list));
  if (!names.length) { list.append(h("p", {class: "empty-note"}, "No module is running.")); return; }
  for (const name of names) {
    const details = h("details", {class: "module-settings", dataset: {module: name}},
      h("summary", {}, h("strong", {}, name), h("span", {class: "hint"}, " settings")));
    details.addEventListener("toggle", () => { if (details.open && !details.dataset.built) build(details, name); }, {once: false});
    list.append(details);
  }
}

async function build(details, name) {
  details.dataset.built = "true";
  const body = h("div", {class: "module-body"}, "Loading…");
  details.append(body);
  try {
    const data = await api(`api/modules/${encodeURIComponent(name)}/schema`);
    const schema = data.schema;
    body.replaceChildren(
      schema.description ? h("p", {class: "hint"}, schema.description) : null,
      schemaForm(schema, data.values, {loadTime: data.load_time, onApply: async (changes) => {
        const reply = await api(`api/modules/${encodeURIComponent(name)}/settings`, {json: changes});
        toast(`${name}: settings applied`, "ok");
        return reply.values;
      }}));
  } catch (err) {
    body.replaceChildren(h("p", {class: "error-note"}, `Could not read the settings: ${errorText(err)}`));
    delete details.dataset.built;
  }
}
