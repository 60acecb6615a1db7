// The server's API: URLs relative to this script's /ui/js/ (works behind a path prefix and from pages that
// modules ship under /ui/modules/<name>/), the API key as a Bearer header (asked for once when the server
// answers 401), and errors as exceptions carrying the server's message. Every answer that names an avatar
// instance (X-Instance-Id) is announced as state event "instance-reply", so the avatar panel notices when the
// server no longer has its instance, whichever panel asked.

import {state} from "./state.js";

export const BASE = new URL("../../", import.meta.url);
const KEY = "greenroom.api-key";

let apiKey = sessionStorage.getItem(KEY) || localStorage.getItem(KEY) || "";
let asking = null;

export class ApiError extends Error {
  constructor(status, message, body = null) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/** An absolute URL for an API path ("api/x") with optional query parameters (null values dropped). */
export function url(path, query = {}) {
  const u = new URL(path.replace(/^\//, ""), BASE);
  for (const [k, v] of Object.entries(query)) if (v !== null && v !== undefined) u.searchParams.set(k, v);
  return u.toString();
}

export function hasKey() { return Boolean(apiKey); }

/**
 * Call the API. opts: {method, json, form (FormData), query}. Answers parsed JSON, text (text/plain) or a
 * Blob; throws ApiError(status, server message) for any non-2xx answer and for network failures.
 */
export async function api(path, opts = {}, retried = false) {
  const method = opts.method || (opts.json !== undefined || opts.form ? "POST" : "GET");
  const headers = {};
  let body;
  if (opts.json !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(opts.json); }
  else if (opts.form) body = opts.form;
  if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
  // A load balancer routes avatar calls by this header; it never reads bodies (deploy/README.md).
  const named = opts.json?.instance_id ?? (opts.form instanceof FormData ? opts.form.get("instance_id") : null);
  if (named) headers["X-Instance-Id"] = named;
  let res;
  try {
    res = await fetch(url(path, opts.query), {method, headers, body, signal: opts.signal});
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, `server unreachable (${err.message})`);
  }
  if (res.status === 401 && !retried) {
    if (await askForKey()) return api(path, opts, true);
  }
  const instanceId = res.headers.get("X-Instance-Id");
  if (instanceId) state.emit("instance-reply", {path: path.replace(/^\//, ""), method, status: res.status, instanceId});
  const type = res.headers.get("Content-Type") || "";
  let data;
  if (type.includes("json")) data = await res.json().catch(() => null);
  else if (type.startsWith("text/")) data = await res.text();
  else data = await res.blob();
  if (!res.ok) {
    const message = (data && data.error) || (typeof data === "string" && data) || res.statusText || "request failed";
    throw new ApiError(res.status, message, data);
  }
  return data;
}

// The key dialog, added to whichever page asks first (the main page, or a page that a module ships).
const KEY_DIALOG = `<form method="dialog" class="key-form">
  <h2>API key needed</h2>
  <p>This server runs with <code>--secure</code>. Paste the key from its <code>api_key_file</code>
    (the server prints the path at start).</p>
  <input type="text" autocomplete="username" value="greenroom" hidden>
  <input id="key-input" type="password" autocomplete="current-password" placeholder="API key" required>
  <label class="check"><input id="key-remember" type="checkbox"> Remember on this device</label>
  <div class="row end">
    <button value="cancel" class="ghost" formnovalidate>Cancel</button>
    <button value="ok" class="primary">Use key</button>
  </div>
</form>`;

function keyDialog() {
  let dialog = document.getElementById("key-dialog");
  if (!dialog) {
    dialog = Object.assign(document.createElement("dialog"), {id: "key-dialog", innerHTML: KEY_DIALOG});
    document.body.append(dialog);
  }
  return dialog;
}

/** Show the key dialog (once, however many requests failed together); true when a key was entered. */
export function askForKey() {
  if (!asking) {
    asking = new Promise((resolve) => {
      const dialog = keyDialog();
      const input = document.getElementById("key-input");
      input.value = "";
      dialog.addEventListener("close", () => {
        asking = null;
        const key = input.value.trim();
        if (dialog.returnValue === "ok" && key) {
          setKey(key, document.getElementById("key-remember").checked);
          resolve(true);
        } else resolve(false);
      }, {once: true});
      dialog.showModal();
      input.focus();
    });
  }
  return asking;
}

export function setKey(key, remember) {
  apiKey = key;
  sessionStorage.setItem(KEY, key);
  if (remember) localStorage.setItem(KEY, key); else localStorage.removeItem(KEY);
  const button = document.getElementById("key-button");
  if (button) button.hidden = false;
}

/** Base64 (as /api/tts/speak answers) -> Blob. */
export function base64Blob(data, type) {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  return new Blob([bytes], {type});
}
