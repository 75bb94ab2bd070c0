// Shared pieces of the operations pages (traces, analytics, annotations): periods, status badges, payloads.
import { fmtNum, t } from "./i18n.js";
import { badge, h } from "./ui.js";

/** The period choices of the operations pages and the time bucket each one charts in. */
export const PERIODS = {
  "1h": { hours: 1, bucket: "minute" },
  "24h": { hours: 24, bucket: "hour" },
  "7d": { hours: 168, bucket: "hour" },
  "30d": { hours: 720, bucket: "day" },
};

export function statusBadge(status) {
  return status === "error" ? badge(t("traces.status_error"), "err") : badge(t("traces.status_ok"), "ok");
}

/** The key a trace ran under, as people know it. */
export function keyLabel(tr) {
  if (tr.key_id === "key_admin") return t("app.admin_key");
  return tr.key_name || tr.key_id || "—";
}

export function tokens(tr) {
  if (tr.input_tokens == null && tr.output_tokens == null) return "—";
  return `${fmtNum(tr.input_tokens || 0)} + ${fmtNum(tr.output_tokens || 0)}`;
}

/** A span or trace input/output: text as is, anything else as indented JSON. */
export function payload(value, test) {
  if (value === null || value === undefined || value === "") return h("div", { class: "muted small", "data-test": test }, t("traces.none"));
  return h("pre", { class: "payload", "data-test": test }, pretty(value));
}

/** Objects and JSON strings indented; other text as it is. */
function pretty(value) {
  if (typeof value !== "string") return JSON.stringify(value, null, 2);
  const s = value.trim();
  if ((s.startsWith("{") && s.endsWith("}")) || (s.startsWith("[") && s.endsWith("]"))) {
    try { return JSON.stringify(JSON.parse(s), null, 2); } catch { /* not JSON after all */ }
  }
  return value;
}

/** A one-line preview of a payload for tables. */
export function preview(value, max = 80) {
  if (value === null || value === undefined) return "";
  const text = (typeof value === "string" ? value : JSON.stringify(value)).replace(/\s+/g, " ").trim();
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}

/** A <select> whose change calls `onChange(value)`. `options` are [value, label] pairs. */
export function select(label, test, options, current, onChange) {
  return h("select", { "aria-label": label, title: label, "data-test": test, onchange: (e) => onChange(e.target.value) },
    options.map(([v, text]) => h("option", { value: v, selected: v === current }, text)));
}

/** Segmented buttons; `onChange(value)` on click. */
export function segmented(values, current, labelOf, onChange, test) {
  const seg = h("div", { class: "seg", role: "group", "data-test": test }, values.map((v) => h("button", {
    type: "button", class: v === current ? "on" : "", "data-value": v, onclick: (e) => {
      seg.querySelectorAll("button").forEach((b) => b.classList.toggle("on", b === e.currentTarget));
      onChange(v);
    },
  }, labelOf(v))));
  return seg;
}

/** Replace the page's query string without re-rendering (filters that reload in place). */
export function keepQuery(path, values) {
  const q = new URLSearchParams(Object.entries(values).filter(([, v]) => v !== "" && v !== null && v !== undefined));
  const s = q.toString();
  history.replaceState(null, "", s ? `${path}?${s}` : path);
}
