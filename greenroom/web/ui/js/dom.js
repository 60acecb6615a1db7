// Small DOM helpers: an element builder, toasts, and wrappers that show errors instead of swallowing them.

/** h("button", {class: "x", onclick: fn}, "text", child, [more]) -> element. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** A titled card, the unit every panel is made of. */
export function card(title, ...children) {
  return h("section", {class: "card"}, title ? h("h3", {}, title) : null, ...children);
}

export function errorText(err) {
  if (err && err.status) return `${err.status}: ${err.message}`;
  return (err && err.message) || String(err);
}

/** Show a message in the corner; errors stay longer and can be dismissed. */
export function toast(message, kind = "error") {
  const box = document.getElementById("toasts");
  const item = h("div", {class: `toast ${kind}`, role: kind === "error" ? "alert" : "status"},
    h("span", {}, message), h("button", {class: "close", title: "Dismiss", onclick: () => item.remove()}, "×"));
  box.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 12000 : 3500);
  if (kind === "error") console.warn("Greenroom:", message);
  return item;
}

/** Run an async action; its button shows progress and any error is shown to the user (and rethrown never). */
export async function run(action, button = null, label = "") {
  if (button) { button.disabled = true; button.classList.add("busy"); }
  try {
    return await action();
  } catch (err) {
    toast(label ? `${label}: ${errorText(err)}` : errorText(err));
    return undefined;
  } finally {
    if (button) { button.disabled = false; button.classList.remove("busy"); }
  }
}

/** Call fn at most every `ms` (first call at once, the last one always delivered). */
export function throttle(fn, ms) {
  let last = 0, timer = null, pending = null;
  return (...args) => {
    pending = args;
    const wait = last + ms - Date.now();
    if (wait <= 0) { last = Date.now(); fn(...pending); pending = null; return; }
    if (!timer) timer = setTimeout(() => { timer = null; last = Date.now(); if (pending) fn(...pending); pending = null; }, wait);
  };
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

/** A labelled range slider with a number box; onInput(value) on every change. */
export function slider({label, min, max, step, value, title = "", onInput, format = (v) => v}) {
  const range = h("input", {type: "range", min, max, step, value, title});
  const number = h("input", {type: "number", min, max, step, value, class: "num", title});
  const set = (v, from) => {
    if (from !== range) range.value = v;
    if (from !== number) number.value = format(Number(v));
    onInput(Number(v));
  };
  range.addEventListener("input", () => set(range.value, range));
  number.addEventListener("change", () => set(number.value, number));
  const row = h("label", {class: "slider", title}, h("span", {class: "label"}, label), range, number);
  row.setValue = (v) => { range.value = v; number.value = format(Number(v)); };
  row.range = range;
  return row;
}

export function select(options, value, onChange, attrs = {}) {
  const el = h("select", attrs, options.map((o) => {
    const [val, text] = Array.isArray(o) ? o : [o, o];
    return h("option", {value: val, selected: val === value}, text);
  }));
  if (onChange) el.addEventListener("change", () => onChange(el.value));
  return el;
}

export function download(name, text, type = "application/json") {
  const a = h("a", {href: URL.createObjectURL(new Blob([text], {type})), download: name});
  document.body.append(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

export function pickFile(accept) {
  return new Promise((resolve) => {
    const input = h("input", {type: "file", accept, style: {display: "none"}});
    input.addEventListener("change", () => { resolve(input.files[0] || null); input.remove(); });
    document.body.append(input);
    input.click();
  });
}

/** Link a stylesheet once: a panel loads its own, e.g. stylesheet(new URL("x.css", import.meta.url)). */
export function stylesheet(href) {
  const link = h("link", {rel: "stylesheet", href: String(href)});
  if (![...document.querySelectorAll("link[rel=stylesheet]")].some((l) => l.href === link.href)) document.head.append(link);
}
