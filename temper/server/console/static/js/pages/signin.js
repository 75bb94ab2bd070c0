// Sign in with the admin key or an API key; the server answers with an HTTP-only session cookie.
import { post } from "../api.js";
import { LANGS, getLang, setLang, t } from "../i18n.js";
import { signedIn } from "../main.js";
import { busy, errorBox, field, h, mount } from "../ui.js";

export function render(root, { query, navigate }, mode = "key") {
  const key = h("input", { type: "password", name: "key", autocomplete: "off", required: true,
    placeholder: "sk-temper-…", "data-test": "signin-key" });
  const username = h("input", { name: "username", autocomplete: "username", required: true, "data-test": "signin-username" });
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true,
    "data-test": "signin-password" });
  const msg = h("div", {});
  const button = h("button", { class: "primary", type: "submit", "data-test": "signin-submit" }, t("signin.submit"));
  const form = h("form", {
    onsubmit: (e) => {
      e.preventDefault();
      mount(msg);
      const body = mode === "key" ? { key: key.value } : { username: username.value, password: password.value };
      busy(button, async () => {
        const me = await post("/api/v1/auth/session", body);
        signedIn(me);
        const next = query.get("next");
        navigate(next && next.startsWith("/") && !next.startsWith("//") ? next : "/models", { replace: true });
      }, (err) => mount(msg, errorBox(err)));
    },
  }, mode === "key" ? field(t("signin.key"), key)
    : [field(t("signin.username"), username), field(t("signin.password"), password)],
  msg, h("div", { class: "row" }, button));
  const rerender = (m) => render(root, { query, navigate }, m);
  const modes = h("div", { class: "seg", role: "tablist", style: { marginBottom: "14px" } }, ["key", "password"].map((m) =>
    h("button", { class: m === mode ? "on" : "", role: "tab", "data-test": `signin-mode-${m}`, onclick: () => rerender(m) },
      t(`signin.mode_${m}`))));
  const lang = h("select", { "aria-label": t("common.language"), onchange: (e) => { setLang(e.target.value); rerender(mode); } },
    Object.entries(LANGS).map(([k, v]) => h("option", { value: k, selected: k === getLang() }, v)));
  mount(root, h("div", { class: "signin" }, h("div", { class: "panel" },
    h("div", { class: "row" }, h("div", { class: "brand" }, h("img", { src: "/assets/favicon.svg", alt: "" }), "Temper"),
      h("span", { style: { flex: "1" } }), lang),
    h("h1", {}, t("signin.title")),
    h("p", { class: "muted" }, mode === "key" ? t("signin.hint") : t("signin.hint_password")),
    modes,
    form,
    h("p", { class: "muted small" }, mode === "key" ? t("signin.where_key") : t("signin.where_user")))));
  (mode === "key" ? key : username).focus();
}
