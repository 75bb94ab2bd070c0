// Strings live in /assets/locales/{en,zh}.json; every visible string goes through t().
export const LANGS = { en: "English", zh: "中文" };
const dicts = {};
let lang = pick();

function pick() {
  const saved = localStorage.getItem("temper.lang");
  if (saved && saved in LANGS) return saved;
  return (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";
}

export async function loadLocales() {
  await Promise.all(Object.keys(LANGS).map(async (l) => {
    dicts[l] = await (await fetch(`/assets/locales/${l}.json`, { credentials: "same-origin" })).json();
  }));
  applyLang();
}

function applyLang() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
}

export function getLang() { return lang; }

export function setLang(l) {
  lang = l;
  localStorage.setItem("temper.lang", l);
  applyLang();
}

/** The string for `key` in the current language, with {name} placeholders filled from `params`. */
export function t(key, params) {
  const s = (dicts[lang] && dicts[lang][key]) ?? (dicts.en && dicts.en[key]) ?? key;
  return params ? s.replace(/\{(\w+)\}/g, (m, k) => (k in params ? String(params[k]) : m)) : s;
}

/**
 * A server error in the current language: `errors.<code>` filled from the error's `params`, or, when the server
 * sent fewer params than that string names, `errors.<code>_plain`; the server's `fallback` message for codes the
 * locale files do not know.
 */
export function errorText(code, params, fallback) {
  // most specific first: the code with the reason it gives (a validation error's "less_than_equal"), the code
  // with its params, then the code alone
  const reason = params && params.reason ? [`errors.${code}_${params.reason}`] : [];
  for (const key of code ? [...reason, `errors.${code}`, `errors.${code}_plain`] : []) {
    const s = (dicts[lang] && dicts[lang][key]) ?? (dicts.en && dicts.en[key]);
    if (s === undefined) continue;
    const names = [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
    if (names.every((n) => params[n] !== undefined && params[n] !== null && params[n] !== "")) return t(key, params);
  }
  return fallback;
}

const locale = () => (lang === "zh" ? "zh-CN" : "en-US");

export function fmtNum(n, digits = 0) {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  return Number(n).toLocaleString(locale(), { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function fmtMoney(n) {
  if (n === null || n === undefined) return "—";
  return "$" + Number(n).toLocaleString(locale(), { maximumFractionDigits: n && n < 0.01 ? 6 : 4 });
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined) return "—";
  return ms >= 1000 ? `${fmtNum(ms / 1000, 2)} s` : `${fmtNum(ms, 0)} ms`;
}

export function fmtTime(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleString(locale(), { dateStyle: "medium", timeStyle: "short" });
}

/** A moment to the second (trace lists and spans). */
export function fmtDateTimeSec(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleString(locale(), { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/** A fraction (0.125) as a percentage ("12.5%"). */
export function fmtPct(x, digits = 1) {
  if (x === null || x === undefined || Number.isNaN(x)) return "—";
  return Number(x * 100).toLocaleString(locale(), { maximumFractionDigits: digits }) + "%";
}
