// DOM helpers and the console's components. Pages build everything from these so that every list
// paginates, every empty list says what to do next and every error shows in place.
import { t, fmtNum } from "./i18n.js";

/** h("div", {class: "x", onclick: fn}, child, [children], "text") → element. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "style") Object.assign(el.style, v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else if (k === "value" || k === "checked" || k === "disabled") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const spinner = () => h("span", { class: "spinner", role: "status", "aria-label": t("common.loading") });

export function badge(text, kind = "") {
  return h("span", { class: `badge ${kind}` }, text);
}

export function errorBox(err) {
  return h("div", { class: "alert", role: "alert" }, err && err.message ? err.message : String(err));
}

export function emptyState({ title, hint, action }) {
  return h("div", { class: "empty" },
    h("div", { class: "big" }, title),
    hint && h("div", {}, hint),
    action && h("button", { class: "primary", onclick: action.onClick }, action.label));
}

export function progress(fraction, title) {
  const f = Math.max(0, Math.min(1, fraction || 0));
  return h("div", { class: `progress ${fraction > 1 ? "over" : ""}`, title },
    h("div", { style: { width: `${(f * 100).toFixed(1)}%` } }));
}

export function toast(message, kind = "") {
  let box = document.querySelector(".toasts");
  if (!box) document.body.append((box = h("div", { class: "toasts" })));
  const el = h("div", { class: `toast ${kind}`, role: "status" }, message);
  box.append(el);
  setTimeout(() => el.remove(), 4000);
}

/** Run `fn` while `button` shows a spinner and is disabled; errors go to `onError` (default: a toast). */
export async function busy(button, fn, onError) {
  const before = [...button.childNodes];
  button.disabled = true;
  button.replaceChildren(spinner(), ...before.map((n) => n.cloneNode(true)));
  try {
    return await fn();
  } catch (e) {
    (onError || ((err) => toast(err.message, "err")))(e);
    return undefined;
  } finally {
    button.disabled = false;
    button.replaceChildren(...before);
  }
}

export function modal({ title, body, actions = [], onClose }) {
  const close = () => { back.remove(); document.removeEventListener("keydown", esc); onClose && onClose(); };
  const esc = (e) => { if (e.key === "Escape") close(); };
  const back = h("div", { class: "backdrop", onclick: (e) => { if (e.target === back) close(); } },
    h("div", { class: "modal", role: "dialog", "aria-modal": "true", "aria-label": title },
      h("h2", {}, title), body,
      h("div", { class: "foot" }, actions.map((a) => h("button", {
        class: a.kind || "", type: a.type || "button", "data-test": a.test, onclick: (e) => a.onClick(e, close),
      }, a.label)))));
  document.addEventListener("keydown", esc);
  document.body.append(back);
  const first = back.querySelector("input, textarea, select");
  if (first) first.focus();
  return { close, root: back };
}

/** A modal around `form`: Submit validates it, shows a spinner, runs `submit(values)` and closes, or shows
 * the error in place and stays open. */
export function formDialog({ title, form, submitLabel, test, submit }) {
  const msg = h("div", {});
  return modal({
    title, body: h("div", {}, form, msg),
    actions: [
      { label: t("common.cancel"), onClick: (_, close) => close() },
      {
        label: submitLabel, kind: "primary", test, onClick: (e, close) => {
          if (!form.reportValidity()) return;
          mount(msg);
          busy(e.currentTarget, async () => { await submit(formValues(form)); close(); }, (err) => mount(msg, errorBox(err)));
        },
      },
    ],
  });
}

export function confirmDialog(message, { ok = t("common.confirm"), danger = false } = {}) {
  return new Promise((resolve) => {
    let answered = false;
    modal({
      title: t("common.are_you_sure"), body: h("p", {}, message),
      onClose: () => { if (!answered) resolve(false); },
      actions: [
        { label: t("common.cancel"), onClick: (_, close) => close() },
        { label: ok, kind: danger ? "danger" : "primary", onClick: (_, close) => { answered = true; close(); resolve(true); } },
      ],
    });
  });
}

export function field(label, input, hint) {
  return h("label", { class: "field" }, h("span", {}, label, hint && h("small", {}, " · ", hint)), input);
}

/** A table: columns [{label, render(row) → node|string, num}], clickable rows when `onRow`. */
export function table(columns, rows, onRow) {
  return h("div", { class: "table-wrap" }, h("table", { class: "tbl" },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : "" }, c.label)))),
    h("tbody", {}, rows.map((r) => h("tr", { class: onRow ? "click" : "", onclick: onRow && (() => onRow(r)) },
      columns.map((c) => h("td", { class: c.num ? "num" : "" }, c.render(r))))))));
}

export function pager({ total, limit, offset }, onPage) {
  if (total <= limit && offset === 0) return null;
  const pages = Math.max(1, Math.ceil(total / limit));
  const current = Math.floor(offset / limit) + 1;
  return h("div", { class: "pager" },
    t("common.page_of", { page: current, pages, total: fmtNum(total) }),
    h("button", { class: "small", disabled: offset === 0, onclick: () => onPage(Math.max(0, offset - limit)) },
      "‹ " + t("common.prev")),
    h("button", { class: "small", disabled: offset + limit >= total, onclick: () => onPage(offset + limit) },
      t("common.next") + " ›"));
}

/**
 * A paginated list in `root`: `load({limit, offset})` returns an API list page, `render(data)` draws it,
 * `empty()` draws the empty state. Returns `reload()`; loading and errors show in place.
 */
export function pagedList(root, { load, render, empty, limit = 20 }) {
  let offset = 0;
  async function reload(newOffset = offset) {
    offset = newOffset;
    mount(root, h("div", { class: "muted" }, spinner(), " ", t("common.loading")));
    try {
      const page = await load({ limit, offset });
      if (!page.data.length && offset > 0) return reload(0);
      mount(root, page.data.length ? render(page.data) : empty(),
        pager({ total: page.total, limit, offset }, reload));
    } catch (e) {
      mount(root, errorBox(e));
    }
  }
  reload(0);
  return reload;
}

/**
 * A list paged by cursor ("load more"): `load(cursor)` returns {data, has_more, next_cursor}; `render(rows)` draws
 * every row loaded so far; `empty()` draws the empty state. Returns `reload()` (back to the first page). Only the
 * newest list drawn into `root` may paint: an answer that arrives after a newer reload is dropped.
 */
export function cursorList(root, { load, render, empty }) {
  let rows = [];
  let mine = 0;
  const current = () => root.dataset.listGeneration === String(mine);
  async function more(cursor, button) {
    try {
      const page = await load(cursor);
      if (!current()) return;
      rows = rows.concat(page.data);
      const next = page.has_more && page.next_cursor;
      const btn = next && h("button", { "data-test": "load-more", onclick: (e) => busy(e.currentTarget, () => more(next, e.currentTarget)) },
        t("common.load_more"));
      mount(root, rows.length ? render(rows) : empty(),
        h("div", { class: "pager" }, rows.length ? t("common.shown_n", { n: fmtNum(rows.length) }) : null, btn || null));
    } catch (e) {
      if (!current()) return;
      if (button) throw e;
      mount(root, errorBox(e));
    }
  }
  function reload() {
    mine = Number(root.dataset.listGeneration || 0) + 1;
    root.dataset.listGeneration = String(mine);
    rows = [];
    mount(root, h("div", { class: "muted" }, spinner(), " ", t("common.loading")));
    return more(null);
  }
  reload();
  return reload;
}

/** Collect a form's named inputs into an object (numbers as numbers, empty as undefined). */
export function formValues(form) {
  const out = {};
  for (const el of form.querySelectorAll("[name]")) {
    if (el.type === "checkbox") out[el.name] = el.checked;
    else if (el.value.trim() === "") out[el.name] = undefined;
    else out[el.name] = el.type === "number" ? Number(el.value) : el.value.trim();
  }
  return out;
}

const ICONS = {
  models: "M3 3h7v7H3zM14 3h7v7h-7zM3 14h7v7H3zM14 14h7v7h-7z",
  playground: "M4 5h16v11H9l-5 4z",
  keys: "M14 10a4 4 0 1 1 0-.01M10.5 12.5 4 19m2-2 2 2m0-4 2 2",
  usage: "M4 20V10M10 20V4M16 20v-7M21 20H3",
  traces: "M4 6h9M7 12h10M10 18h10M4 4v4M7 10v4M10 16v4",
  analytics: "M3 17l5-6 4 3 5-7 4 4M3 21h18",
  annotations: "M9 11l3 3 8-8M20 12v7a1 1 0 0 1-1 1H5a1 1 0 0 1-1-1V5a1 1 0 0 1 1-1h11",
  prompts: "M4 4h16v12H8l-4 4zM8 8h8M8 12h5",
  knowledge: "M4 19.5A2.5 2.5 0 0 1 6.5 17H20V3H6.5A2.5 2.5 0 0 0 4 5.5zM4 19.5A2.5 2.5 0 0 0 6.5 22H20v-5M9 8h7",
  menu: "M4 6h16M4 12h16M4 18h16",
};

/** A small stroke icon (inline SVG, so it needs no font glyph). */
export function icon(name) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  for (const [k, v] of Object.entries({ viewBox: "0 0 24 24", width: "18", height: "18", fill: "none", stroke: "currentColor",
    "stroke-width": "2", "stroke-linecap": "round", "stroke-linejoin": "round", "aria-hidden": "true" })) svg.setAttribute(k, v);
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", ICONS[name] || "");
  svg.append(path);
  return svg;
}
