// Sign in with the admin key or an API key; the server answers with an HTTP-only session cookie.
import { post } from "../api.js";
import { LANGS, getLang, setLang, t } from "../i18n.js";
import { signedIn } from "../main.js";
import { busy, errorBox, field, h, mount } from "../ui.js";

export function render(root, { query, navigate }) {
  const key = h("input", { type: "password", name: "key", autocomplete: "current-password", required: true,
    placeholder: "sk-temper-…", "data-test": "signin-key" });
  const msg = h("div", {});
  const button = h("button", { class: "primary", type: "submit", "data-test": "signin-submit" }, t("signin.submit"));
  const form = h("form", {
    onsubmit: (e) => {
      e.preventDefault();
      mount(msg);
      busy(button, async () => {
        const me = await post("/api/v1/auth/session", { key: key.value });
        signedIn(me);
        const next = query.get("next");
        navigate(next && next.startsWith("/") && !next.startsWith("//") ? next : "/models", { replace: true });
      }, (err) => mount(msg, errorBox(err)));
    },
  }, field(t("signin.key"), key), msg, h("div", { class: "row" }, button));
  const lang = h("select", { "aria-label": t("common.language"), onchange: (e) => { setLang(e.target.value); render(root, { query, navigate }); } },
    Object.entries(LANGS).map(([k, v]) => h("option", { value: k, selected: k === getLang() }, v)));
  mount(root, h("div", { class: "signin" }, h("div", { class: "panel" },
    h("div", { class: "row" }, h("div", { class: "brand" }, h("img", { src: "/assets/favicon.svg", alt: "" }), "Temper"),
      h("span", { class: "grow", style: { flex: "1" } }), lang),
    h("h1", {}, t("signin.title")),
    h("p", { class: "muted" }, t("signin.hint")),
    form,
    h("p", { class: "muted small" }, t("signin.where_key")))));
  key.focus();
}
