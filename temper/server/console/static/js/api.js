// The API client: JSON in and out, OpenAI-shaped errors, CSRF header, SSE streams.
import { errorText, t } from "./i18n.js";

let csrf = null;
let onSignedOut = () => {};

export function setCsrf(token) { csrf = token; }
export function whenSignedOut(fn) { onSignedOut = fn; }

/** An error answer; `message` is worded from its code and params in the console's language (i18n.errorText). */
export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    const params = { param: e.param, ...(e.params || {}) };
    super(errorText(e.code, params, e.message || t("error.status", { status })));
    this.status = status;
    this.code = e.code || null;
    this.param = e.param || null;
  }
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") q.append(k, v);
  }
  const s = q.toString();
  return s ? "?" + s : "";
}

async function send(method, path, body, signal) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && csrf) headers["x-csrf-token"] = csrf;
  try {
    return await fetch(path, {
      method, headers, signal, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, { error: { message: t("error.network"), code: "network" } });
  }
}

async function fail(res) {
  const body = await res.json().catch(() => null);
  const err = new ApiError(res.status, body);
  if (res.status === 401) onSignedOut(err);
  throw err;
}

export async function api(method, path, body, { signal } = {}) {
  const res = await send(method, path, body, signal);
  if (!res.ok) await fail(res);
  if (res.status === 204) return null;
  return res.json();
}

export const get = (path, params, opts) => api("GET", path + query(params), undefined, opts);
export const post = (path, body, opts) => api("POST", path, body ?? {}, opts);
export const patch = (path, body, opts) => api("PATCH", path, body, opts);
export const put = (path, body, opts) => api("PUT", path, body, opts);
export const del = (path, opts) => api("DELETE", path, undefined, opts);

/** POST a multipart form (file uploads): `fields` maps names to a string, a File/Blob or a list of them. */
export async function postForm(path, fields, { signal } = {}) {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields || {})) {
    for (const item of Array.isArray(v) ? v : [v]) {
      if (item === undefined || item === null) continue;
      if (item instanceof Blob) form.append(k, item, item.name || k);
      else form.append(k, String(item));
    }
  }
  const headers = { accept: "application/json" };  // the browser sets the multipart content-type and boundary
  if (csrf) headers["x-csrf-token"] = csrf;
  let res;
  try {
    res = await fetch(path, { method: "POST", headers, signal, credentials: "same-origin", body: form });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, { error: { message: t("error.network"), code: "network" } });
  }
  if (!res.ok) await fail(res);
  return res.status === 204 ? null : res.json();
}

/** POST a streaming request and yield each `data:` JSON event until `[DONE]`; `onResponse(res)` sees the
 * response (its headers, e.g. x-trace-id) before any error is thrown. */
export async function* stream(path, body, signal, onResponse) {
  const res = await send("POST", path, body, signal);
  if (onResponse) onResponse(res);
  if (!res.ok) await fail(res);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
      if (!data) continue;
      if (data === "[DONE]") return;
      const event = JSON.parse(data);
      if (event.error) throw new ApiError(500, event);
      yield event;
    }
  }
}
