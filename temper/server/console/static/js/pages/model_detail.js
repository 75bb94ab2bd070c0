// One model: what it is, how it is deployed, and its usage over time.
import { del, get, patch, post } from "../api.js";
import { timeChart } from "../charts.js";
import { codeSamples, sampleRequest } from "../code_samples.js";
import { fmtMoney, fmtMs, fmtNum, fmtTime, t } from "../i18n.js";
import { badge, busy, confirmDialog, errorBox, h, mount, spinner, table, toast } from "../ui.js";
import { checkResult, editModelDialog, healthBadge, price, statusBadge } from "./models.js";

const RANGES = { "24h": { hours: 24, bucket: "hour" }, "7d": { hours: 168, bucket: "hour" }, "30d": { hours: 720, bucket: "day" } };

async function usage(box, id, range) {
  mount(box, spinner());
  try {
    const { hours, bucket } = RANGES[range];
    const s = await get("/api/v1/usage/series", { model: id, hours, bucket });
    const total = s.data.reduce((a, p) => ({ r: a.r + p.requests, tok: a.tok + p.prompt_tokens + p.completion_tokens, c: a.c + p.cost }), { r: 0, tok: 0, c: 0 });
    mount(box,
      h("div", { class: "stats" },
        h("div", { class: "stat" }, h("div", { class: "v" }, fmtNum(total.r)), h("div", { class: "k" }, t("usage.requests"))),
        h("div", { class: "stat" }, h("div", { class: "v" }, fmtNum(total.tok)), h("div", { class: "k" }, t("usage.tokens"))),
        h("div", { class: "stat" }, h("div", { class: "v" }, fmtMoney(total.c)), h("div", { class: "k" }, t("usage.cost")))),
      total.r ? timeChart(s.data, [
        { label: t("usage.requests"), value: (p) => p.requests, type: "bar" },
        { label: t("usage.tokens"), value: (p) => p.prompt_tokens + p.completion_tokens, axis: "y2" },
      ], { bucket }) : h("div", { class: "empty" }, h("div", { class: "big" }, t("model.no_usage")), t("model.no_usage_hint")));
  } catch (e) {
    mount(box, errorBox(e));
  }
}

export async function render(root, { me, params, navigate }) {
  const id = decodeURIComponent(params.id);
  mount(root, spinner());
  let m;
  try {
    m = await get(`/api/v1/models/${encodeURIComponent(id)}`);
  } catch (e) {
    mount(root, h("div", { class: "page-head" }, h("a", { href: "/models" }, "‹ " + t("nav.models"))), errorBox(e));
    return;
  }
  const admin = me.role === "admin";
  const usageBox = h("div", {});
  let range = "24h";
  const ranges = h("div", { class: "seg" }, Object.keys(RANGES).map((r) => h("button", {
    class: r === range ? "on" : "", onclick: (e) => {
      range = r;
      ranges.querySelectorAll("button").forEach((b) => b.classList.toggle("on", b === e.currentTarget));
      usage(usageBox, m.id, range);
    },
  }, t(`range.${r}`))));
  const toggle = admin && h("button", {
    onclick: (e) => busy(e.currentTarget, async () => {
      await patch(`/api/v1/models/${encodeURIComponent(m.id)}`, { status: m.status === "active" ? "disabled" : "active" });
      render(root, { me, params, navigate });
    }),
  }, m.status === "active" ? t("model.disable") : t("model.enable"));
  const remove = admin && !m.builtin && h("button", {
    class: "danger", onclick: async (e) => {
      if (!(await confirmDialog(t("model.delete_confirm", { id: m.id }), { ok: t("common.delete"), danger: true }))) return;
      busy(e.currentTarget, async () => {
        await del(`/api/v1/models/${encodeURIComponent(m.id)}`);
        toast(t("model.deleted", { id: m.id }));
        navigate("/models");
      });
    },
  }, t("common.delete"));
  const edit = admin && !m.builtin && h("button", { "data-test": "edit-model",
    onclick: () => editModelDialog(m, () => render(root, { me, params, navigate })) }, t("model.edit"));
  const checked = h("div", {});  // an admin's "check now" result
  const check = admin && m.health && h("button", { class: "small", "data-test": "check-model", onclick: (e) => busy(e.currentTarget, async () => {
    const c = await post(`/api/v1/models/${encodeURIComponent(m.id)}/check`);
    const d = m.deployments[0] || {};
    m.health = { state: c.state, checked_at: c.checked_at };
    mount(headHealth, healthBadge(m));
    mount(health, healthBadge(m), " ", h("span", { class: "muted small" }, t("models.checked_at", { time: fmtTime(c.checked_at) })), " ", check);
    mount(checked, checkResult(c, { env: d.api_key_env, model: d.upstream_model || m.id }));
  }) }, t("model.check_now"));
  const headHealth = h("span", {}, healthBadge(m));
  const health = h("dd", { "data-test": "model-health" }, healthBadge(m), " ",
    m.health && m.health.checked_at && h("span", { class: "muted small" }, t("models.checked_at", { time: fmtTime(m.health.checked_at) })), " ", check);
  const playable = m.modality === "chat" || m.modality === "completion";
  mount(root,
    h("div", { class: "page-head" }, h("a", { href: "/models" }, "‹ " + t("nav.models"))),
    h("div", { class: "page-head" }, h("h1", {}, m.id), statusBadge(m), headHealth, badge(t(`modality.${m.modality}`), "accent"),
      h("div", { class: "actions" }, playable && h("a", { class: "btn", href: `/playground?model=${encodeURIComponent(m.id)}` }, t("model.try")), edit, toggle, remove)),
    h("div", { class: "grid", style: { gridTemplateColumns: "minmax(280px, 1fr) 2fr", marginBottom: "16px" } },
      h("div", { class: "panel" }, h("h2", {}, t("model.about")),
        h("p", { class: "muted" }, m.description || t("models.no_description")),
        h("dl", { class: "facts" },
          h("dt", {}, t("models.provider")), h("dd", {}, m.builtin ? t("models.local") : m.provider),
          h("dt", {}, t("models.size")), h("dd", {}, m.parameters || "—"),
          h("dt", {}, t("models.context")), h("dd", {}, m.context_length ? fmtNum(m.context_length) : "—"),
          h("dt", {}, t("models.price")), h("dd", {}, price(m)),
          m.health && [h("dt", {}, t("models.health")), health],
          h("dt", {}, t("model.aliases")), h("dd", {}, m.aliases.join(", ") || "—"),
          h("dt", {}, t("model.fallbacks")), h("dd", {}, m.fallbacks.join(", ") || "—"),
          h("dt", {}, t("models.tags")), h("dd", {}, h("div", { class: "tags" }, m.tags.map((x) => badge(x))))), checked),
      h("div", { class: "panel" }, h("div", { class: "row", style: { marginBottom: "10px" } }, h("h2", { style: { margin: 0, flex: "1" } }, t("model.usage")), ranges), usageBox)),
    h("div", { class: "panel" }, h("h2", {}, t("model.deployments")),
      table([
        { label: t("models.provider"), render: (d) => d.provider },
        { label: t("models.base_url"), render: (d) => h("code", {}, d.base_url || "—") },
        { label: t("models.upstream_model"), render: (d) => d.upstream_model || m.id },
        { label: t("models.api_key_env"), render: (d) => (d.api_key_env ? h("code", {}, d.api_key_env) : "—") },
        { label: t("model.weight"), num: true, render: (d) => fmtNum(d.weight, 2) },
        { label: t("model.timeout"), num: true, render: (d) => fmtMs(d.timeout_s * 1000) },
      ], m.deployments)),
    h("div", { class: "panel", style: { marginTop: "16px" }, "data-test": "model-samples" },
      h("h2", {}, t("samples.title")), codeSamples(...sampleRequest(m))));
  usage(usageBox, m.id, range);
}
