// Boot, session state, the client-side router and the page layout.
// A page is a module exporting `render(root, ctx)`; ctx = {me, params, query, navigate}. It may return a
// cleanup function, called when the user leaves the page (abort streams, stop timers).
import { get, del, setCsrf, whenSignedOut } from "./api.js";
import { LANGS, getLang, loadLocales, setLang, t } from "./i18n.js";
import { h, icon, mount, toast } from "./ui.js";

const PAGES = [
  { path: /^\/$/, redirect: "/models" },
  { path: /^\/signin$/, module: "signin", bare: true },
  { path: /^\/models$/, module: "models", nav: "models" },
  { path: /^\/models\/(?<id>.+)$/, module: "model_detail", nav: "models" },
  { path: /^\/playground$/, module: "playground", nav: "playground" },
  { path: /^\/keys$/, module: "keys", nav: "keys", admin: true },
  { path: /^\/usage$/, module: "usage", nav: "usage" },
  { path: /^\/traces$/, module: "traces", nav: "traces" },
  { path: /^\/traces\/(?<id>[^/]+)$/, module: "trace_detail", nav: "traces" },
  { path: /^\/analytics$/, module: "analytics", nav: "analytics" },
  { path: /^\/annotations$/, module: "annotations", nav: "annotations", admin: true },
  { path: /^\/annotations\/(?<id>[^/]+)$/, module: "annotate", nav: "annotations", admin: true },
  { path: /^\/prompts$/, module: "prompts", nav: "prompts" },
  { path: /^\/prompts\/(?<name>[^/]+)$/, module: "prompt_detail", nav: "prompts" },
  { path: /^\/knowledge$/, module: "knowledge", nav: "knowledge" },
  { path: /^\/knowledge\/(?<id>[^/]+)$/, module: "knowledge_detail", nav: "knowledge" },
];
// The sidebar, in order. Later capabilities add their pages here and in PAGES.
const NAV = [
  { id: "models", href: "/models" },
  { id: "playground", href: "/playground" },
  { id: "keys", href: "/keys", admin: true },
  { id: "usage", href: "/usage" },
  { group: "build" },
  { id: "knowledge", href: "/knowledge" },
  { group: "ops" },
  { id: "traces", href: "/traces" },
  { id: "analytics", href: "/analytics" },
  { id: "annotations", href: "/annotations", admin: true },
  { id: "prompts", href: "/prompts" },
];
const GROUPS = { build: () => t("nav.group_build"), ops: () => t("nav.group_ops") };

const app = document.getElementById("app");
const state = { me: null, cleanup: null };

export function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  route();
}

/** Who am I: /auth/status answers 200 when signed out, so the first load has no failed request. */
async function whoami() {
  const status = await get("/api/v1/auth/status");
  state.me = status.signed_in ? status.identity : null;
  setCsrf(state.me ? state.me.csrf_token : null);
}

export function signedIn(me) {
  state.me = me;
  setCsrf(me.csrf_token);
}

async function signOut() {
  try { await del("/api/v1/auth/session"); } catch { /* already signed out */ }
  state.me = null;
  setCsrf(null);
  navigate("/signin", { replace: true });
}

function layout(active) {
  const me = state.me;
  const page = h("main", { class: "page", id: "page" });
  const langSel = h("select", { "aria-label": t("common.language"), onchange: (e) => { setLang(e.target.value); route(); } },
    Object.entries(LANGS).map(([k, v]) => h("option", { value: k, selected: k === getLang() }, v)));
  // At phone width the sidebar is a bar whose menu button shows the navigation (closed again by the next route).
  const side = h("aside", { class: "side" });
  const menu = h("button", { class: "ghost menu-toggle", "aria-label": t("app.menu"), title: t("app.menu"), "aria-expanded": "false",
    "aria-controls": "nav", "data-test": "menu",
    onclick: () => menu.setAttribute("aria-expanded", String(side.classList.toggle("open"))) }, icon("menu"));
  mount(app, h("div", { class: "shell" },
    mount(side,
      h("div", { class: "brand" }, h("img", { src: "/assets/favicon.svg", alt: "" }), h("span", {}, "Temper"), menu),
      h("nav", { class: "nav", id: "nav" }, NAV.filter((n) => !n.admin || me.role === "admin").map((n) => n.group
        ? h("div", { class: "nav-group" }, GROUPS[n.group]())
        : h("a", { href: n.href, class: n.id === active ? "active" : "", "data-nav": n.id, title: t(`nav.${n.id}`) },
          h("span", { class: "icon" }, icon(n.id)), h("span", { class: "label" }, t(`nav.${n.id}`))))),
      h("div", { class: "foot" }, t("app.tagline"))),
    h("div", { class: "main" },
      h("header", { class: "top" },
        h("span", { class: "badge accent" }, t(`role.${me.role}`)),
        h("span", { class: "muted small top-key", title: me.key_id }, me.role === "admin" ? t("app.admin_key") : `${me.key_name || me.key_prefix}`),
        h("span", { class: "grow" }),
        langSel,
        h("button", { class: "ghost", onclick: signOut, "data-test": "sign-out" }, t("app.sign_out"))),
      page)));
  return page;
}

async function route() {
  if (state.cleanup) { try { state.cleanup(); } catch { /* page already gone */ } state.cleanup = null; }
  const { pathname, search } = location;
  const match = PAGES.map((p) => ({ p, m: pathname.match(p.path) })).find((x) => x.m);
  if (match && match.p.redirect) return navigate(match.p.redirect, { replace: true });
  if (!state.me && !(match && match.p.bare)) {
    return navigate(`/signin?next=${encodeURIComponent(pathname + search)}`, { replace: true });
  }
  if (state.me && match && match.p.bare) return navigate("/models", { replace: true });
  const spec = match ? match.p : { module: "not_found" };
  if (spec.admin && state.me.role !== "admin") return navigate("/models", { replace: true });
  const root = spec.bare ? mount(app, h("div", {})) : layout(spec.nav);
  document.title = `${t(`nav.${spec.nav || spec.module}`)} · Temper`;
  const ctx = { me: state.me, params: (match && match.m.groups) || {}, query: new URLSearchParams(search), navigate };
  try {
    const mod = await import(`./pages/${spec.module}.js`);
    state.cleanup = (await mod.render(root, ctx)) || null;
  } catch (e) {
    mount(root, h("div", { class: "alert" }, e.message || String(e)));
  }
}

document.addEventListener("click", (e) => {
  const a = e.target.closest("a[href]");
  if (!a || a.target || a.origin !== location.origin || e.ctrlKey || e.metaKey || e.shiftKey) return;
  if (a.pathname.startsWith("/api/") || a.pathname.startsWith("/assets/") || a.pathname.startsWith("/docs")) return;
  e.preventDefault();
  navigate(a.pathname + a.search);
});
window.addEventListener("popstate", route);
whenSignedOut(() => {
  if (!state.me) return;
  state.me = null;
  toast(t("app.session_ended"), "err");
  navigate(`/signin?next=${encodeURIComponent(location.pathname + location.search)}`, { replace: true });
});

(async () => {
  await loadLocales();
  await whoami();
  route();
})();
