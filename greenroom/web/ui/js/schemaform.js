// A settings form built from a JSON Schema (what /api/modules/<name>/schema answers), so any module,
// third-party ones included, gets a panel without page code of its own.

import {h, slider} from "./dom.js";

/** Follow "$ref": "#/$defs/X" and unwrap Optional (anyOf [X, null]); returns [schema, nullable]. */
export function resolve(prop, root) {
  let p = prop || {};
  let nullable = false;
  for (let i = 0; i < 8; i++) {
    if (p.$ref && p.$ref.startsWith("#/")) {
      const target = p.$ref.slice(2).split("/").reduce((o, k) => (o ? o[k] : undefined), root) || {};
      const {$ref, ...rest} = p;
      p = {...target, ...rest};
    } else if (Array.isArray(p.anyOf) || Array.isArray(p.oneOf)) {
      const options = p.anyOf || p.oneOf;
      const real = options.filter((o) => o.type !== "null");
      nullable ||= real.length < options.length;
      if (real.length !== 1) break;
      const {anyOf, oneOf, ...rest} = p;
      p = {...real[0], ...rest};
    } else break;
  }
  return [p, nullable];
}

function niceStep(min, max, integer) {
  if (integer) return 1;
  const raw = (max - min) / 200;
  const pow = 10 ** Math.floor(Math.log10(raw || 0.01));
  return [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw) || raw;
}

/** One control for one property: {element, get(), set(v)}. */
function control(name, prop, value, root, disabled) {
  const [p, nullable] = resolve(prop, root);
  const type = Array.isArray(p.type) ? p.type.find((t) => t !== "null") : p.type;
  if (p.enum) {
    const sel = h("select", {disabled}, (nullable ? [null] : []).concat(p.enum).map((v) =>
      h("option", {value: JSON.stringify(v), selected: JSON.stringify(v) === JSON.stringify(value)}, v === null ? "—" : String(v))));
    return {element: sel, get: () => JSON.parse(sel.value), set: (v) => { sel.value = JSON.stringify(v); }};
  }
  if (type === "boolean") {
    const box = h("input", {type: "checkbox", checked: Boolean(value), disabled});
    return {element: h("label", {class: "switch"}, box, h("span", {})), get: () => box.checked, set: (v) => { box.checked = Boolean(v); }};
  }
  if (type === "integer" || type === "number") {
    const min = p.minimum ?? p.exclusiveMinimum, max = p.maximum ?? p.exclusiveMaximum;
    const integer = type === "integer";
    if (Number.isFinite(min) && Number.isFinite(max) && max - min <= 100000) {
      let current = value;
      const row = slider({label: "", min, max, step: niceStep(min, max, integer), value: value ?? min,
        onInput: (v) => { current = v; }});
      row.range.disabled = disabled;
      row.querySelector(".num").disabled = disabled;
      return {element: row, get: () => current, set: (v) => { current = v; row.setValue(v); }};
    }
    const input = h("input", {type: "number", value: value ?? "", step: integer ? 1 : "any", min, max, disabled});
    return {element: input, get: () => (input.value === "" && nullable ? null : Number(input.value)), set: (v) => { input.value = v ?? ""; }};
  }
  if (type === "string") {
    const long = (p.maxLength || 0) > 400 || String(value || "").length > 60;
    const input = long ? h("textarea", {rows: 2, disabled}, value ?? "") : h("input", {type: "text", value: value ?? "", maxlength: p.maxLength, disabled});
    return {element: input, get: () => (input.value === "" && nullable ? null : input.value), set: (v) => { input.value = v ?? ""; }};
  }
  if (type === "array" && p.items) {
    const [items] = resolve(p.items, root);
    if (items.enum) {
      const boxes = items.enum.map((v) => h("input", {type: "checkbox", value: v, checked: (value || []).includes(v), disabled}));
      const el = h("div", {class: "checks"}, boxes.map((b) => h("label", {class: "check"}, b, b.value)));
      return {element: el, get: () => boxes.filter((b) => b.checked).map((b) => b.value),
        set: (v) => boxes.forEach((b) => { b.checked = (v || []).includes(b.value); })};
    }
    if (items.type === "string") {
      const area = h("textarea", {rows: Math.min(8, Math.max(2, (value || []).length)), disabled, title: "One per line"}, (value || []).join("\n"));
      return {element: area, get: () => area.value.split("\n").map((s) => s.trim()).filter(Boolean), set: (v) => { area.value = (v || []).join("\n"); }};
    }
  }
  if (type === "object" && p.properties) {
    const nested = buildFields(p, value || {}, root, {disabled});
    const box = h("details", {class: "nested"}, h("summary", {}, `${Object.keys(p.properties).length} settings`), nested.element);
    return {element: box, get: nested.get, set: nested.set, nested};
  }
  // Anything else (free-form lists, maps): JSON text, checked when read.
  const area = h("textarea", {rows: 3, class: "json", disabled}, JSON.stringify(value, null, 1));
  return {element: area, get: () => JSON.parse(area.value), set: (v) => { area.value = JSON.stringify(v, null, 1); }};
}

function buildFields(schema, values, root, {loadTime = [], exclude = [], disabled = false} = {}) {
  const controls = {};
  const element = h("div", {class: "fields"});
  for (const [name, prop] of Object.entries(schema.properties || {})) {
    if (exclude.includes(name)) continue;
    const frozen = disabled || loadTime.includes(name);
    const c = control(name, prop, values[name], root, frozen);
    const [p] = resolve(prop, root);
    controls[name] = c;
    element.append(h("div", {class: "field", dataset: {field: name}},
      h("div", {class: "field-head"}, h("span", {class: "field-name"}, p.title && p.title !== titleCase(name) ? p.title : name),
        loadTime.includes(name) ? h("span", {class: "badge", title: "Set in plugins.toml; applies after a restart"}, "restart") : null),
      c.element,
      p.description ? h("div", {class: "help"}, p.description) : null,
      h("div", {class: "field-error"})));
  }
  const get = () => Object.fromEntries(Object.entries(controls).map(([k, c]) => [k, c.get()]));
  const set = (v) => { for (const [k, c] of Object.entries(controls)) if (k in v) c.set(v[k]); };
  return {element, controls, get, set};
}

function titleCase(name) {
  return name.split("_").map((w) => w[0].toUpperCase() + w.slice(1)).join(" ");
}

/**
 * A form for `schema` filled with `values`. `onApply(changes)` gets only the fields that changed (by
 * JSON comparison); errors it throws with `body.details[].loc` are shown beside their fields.
 */
export function schemaForm(schema, values, {loadTime = [], exclude = [], onApply, applyLabel = "Apply"} = {}) {
  const fields = buildFields(schema, values, schema, {loadTime, exclude});
  let initial = JSON.parse(JSON.stringify(values));
  const status = h("span", {class: "form-status"});
  const apply = h("button", {type: "submit", class: "primary"}, applyLabel);
  const reset = h("button", {type: "button", class: "ghost", onclick: () => { fields.set(initial); clearErrors(); }}, "Undo changes");
  // novalidate: the server validates and its errors show beside their fields; the browser's own check would
  // silently block a value between a slider's steps (300 on a 1-86400 slider stepping by 500).
  const form = h("form", {class: "schema-form", novalidate: true}, fields.element, h("div", {class: "row end"}, status, reset, apply));

  function clearErrors() {
    for (const el of form.querySelectorAll(".field-error")) el.textContent = "";
    for (const el of form.querySelectorAll(".field.invalid")) el.classList.remove("invalid");
    status.textContent = "";
  }
  function showError(name, message) {
    const field = form.querySelector(`.field[data-field="${CSS.escape(name)}"]`);
    if (!field) return false;
    field.classList.add("invalid");
    field.querySelector(".field-error").textContent = message;
    return true;
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    const changes = {};
    for (const [name, c] of Object.entries(fields.controls)) {
      let value;
      try { value = c.get(); } catch (err) { showError(name, `not valid JSON: ${err.message}`); return; }
      if (JSON.stringify(value) !== JSON.stringify(initial[name])) changes[name] = value;
    }
    if (!Object.keys(changes).length) { status.textContent = "Nothing changed."; return; }
    apply.disabled = true;
    try {
      const result = await onApply(changes);
      initial = {...initial, ...changes, ...(result || {})};
      status.textContent = `Applied: ${Object.keys(changes).join(", ")}`;
    } catch (err) {
      const details = (err.body && err.body.details) || [];
      let placed = false;
      for (const d of details) placed = showError(String(d.loc[0]), d.msg) || placed;
      const field = err.body && err.body.field;
      if (field) placed = showError(field, err.message) || placed;
      status.textContent = `${err.status ? err.status + ": " : ""}${err.message}`;
      status.classList.add("error");
      setTimeout(() => status.classList.remove("error"), 4000);
    } finally {
      apply.disabled = false;
    }
  });
  form.update = (v) => { initial = JSON.parse(JSON.stringify({...initial, ...v})); fields.set(v); };
  return form;
}
