// API keys: create (the secret is shown once), limits and budget, revoke, and a link to each key's usage.
import { del, get, patch, post } from "../api.js";
import { codeSamples, sampleRequest } from "../code_samples.js";
import { fmtNum, fmtTime, t } from "../i18n.js";
import { badge, busy, confirmDialog, emptyState, field, formDialog, h, modal, mount, pagedList, progress, table, toast } from "../ui.js";

function status(k) {
  if (k.revoked_at) return badge(t("keys.revoked"), "err");
  if (k.expires_at && new Date(k.expires_at) <= new Date()) return badge(t("keys.expired"), "warn");
  return badge(t("keys.active"), "ok");
}

function budget(k) {
  if (!k.token_budget) return h("span", {}, fmtNum(k.tokens_used), " ", h("span", { class: "muted" }, t("keys.no_budget")));
  const f = k.tokens_used / k.token_budget;
  return h("div", {}, h("div", { class: "small" }, `${fmtNum(k.tokens_used)} / ${fmtNum(k.token_budget)}`), progress(f, `${(f * 100).toFixed(1)}%`));
}

function limits(k) {
  const parts = [];
  if (k.rpm) parts.push(t("keys.rpm_value", { n: fmtNum(k.rpm) }));
  if (k.tpm) parts.push(t("keys.tpm_value", { n: fmtNum(k.tpm) }));
  return parts.length ? parts.join(" · ") : h("span", { class: "muted" }, t("keys.unlimited"));
}

/** The model the "key created" samples call: one the key may use, a chat model (the built-in one) first. */
function sampleModel(created, models) {
  const usable = models.filter((m) => m.status === "active" && (!created.allowed_models || created.allowed_models.includes(m.id)));
  const rank = (m) => (m.modality === "chat" ? 0 : 2) + (m.builtin ? 0 : 1);
  return usable.sort((a, b) => rank(a) - rank(b))[0];
}

// The samples read the key from an environment variable; the new key itself appears only in the `export`
// line above them, in the same dialog that shows it once anyway.
function showSecret(created, models) {
  const model = sampleModel(created, models);
  const secret = h("div", { class: "secret", "data-test": "new-key-secret" }, created.key);
  const copy = h("button", { onclick: async () => {
    try { await navigator.clipboard.writeText(created.key); toast(t("keys.copied")); } catch { toast(t("keys.copy_failed"), "err"); }
  } }, t("keys.copy"));
  modal({
    title: t("keys.created_title", { name: created.name || created.prefix }),
    body: h("div", {}, h("div", { class: "alert warn" }, t("keys.shown_once")), secret, h("div", { class: "row", style: { marginTop: "10px" } }, copy),
      model && h("div", { "data-test": "key-samples" }, h("h3", {}, t("samples.title")), codeSamples(...sampleRequest(model), { key: created.key }))),
    actions: [{ label: t("keys.done"), kind: "primary", test: "secret-done", onClick: (_, close) => close() }],
  });
}

async function allModels() {
  try { return (await get("/api/v1/models", { limit: 1000 })).data; } catch { return []; /* the form still works for all models */ }
}

const localDate = (iso) => {
  if (!iso) return "";
  const d = new Date(iso);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
};

/** The name, models and limits of a new key, or of key `k` when editing it. */
function keyForm(models, k) {
  const val = (x) => (x == null ? "" : String(x));
  const picks = h("div", { class: "tags", style: { maxHeight: "120px", overflow: "auto" } }, models.map((m) =>
    h("label", { class: "check badge" }, h("input", { type: "checkbox", value: m.id, "data-model": m.id,
      checked: Boolean(k && k.allowed_models && k.allowed_models.includes(m.id)) }), m.id)));
  const hint = t("keys.limits_hint");
  const form = h("form", {},
    field(t("keys.name"), h("input", { name: "name", required: true, maxlength: "200", placeholder: t("keys.name_placeholder"), "data-test": "key-name", value: val(k && k.name) })),
    field(t("keys.models"), picks, t("keys.models_hint")),
    h("div", { class: "row" },
      field(t("keys.rpm"), h("input", { name: "rpm", type: "number", min: "1", value: val(k && k.rpm), "data-test": "key-rpm" }), hint),
      field(t("keys.tpm"), h("input", { name: "tpm", type: "number", min: "1", value: val(k && k.tpm) }), hint)),
    h("div", { class: "row" },
      field(t("keys.budget"), h("input", { name: "token_budget", type: "number", min: "1", value: val(k && k.token_budget) }), hint),
      field(t("keys.expires"), h("input", { name: "expires_at", type: "date", value: localDate(k && k.expires_at) }), hint)));
  return { form, picks };
}

/** Change a key's name, models and limits; an emptied limit is lifted. */
async function editDialog(k, onSaved) {
  const { form, picks } = keyForm(await allModels(), k);
  formDialog({
    title: t("keys.edit_title", { name: k.name || k.prefix }), form, submitLabel: t("common.save"), test: "edit-key-submit",
    submit: async (v) => {
      const allowed = [...picks.querySelectorAll("input:checked")].map((x) => x.value);
      const body = { name: v.name, rpm: v.rpm ?? null, tpm: v.tpm ?? null, token_budget: v.token_budget ?? null,
        allowed_models: allowed.length ? allowed : null };
      if ((v.expires_at || "") !== localDate(k.expires_at)) {
        body.expires_at = v.expires_at ? new Date(`${v.expires_at}T23:59:59`).toISOString() : null;
      }
      await patch(`/api/v1/keys/${encodeURIComponent(k.id)}`, body);
      toast(t("keys.saved"));
      onSaved();
    },
  });
}

async function createDialog(onCreated) {
  const models = await allModels();
  const { form, picks } = keyForm(models);
  formDialog({
    title: t("keys.create_title"), form, submitLabel: t("keys.create"), test: "create-key-submit",
    submit: async (v) => {
      const allowed = [...picks.querySelectorAll("input:checked")].map((x) => x.value);
      onCreated(models, await post("/api/v1/keys", {
        name: v.name, rpm: v.rpm, tpm: v.tpm, token_budget: v.token_budget, allowed_models: allowed.length ? allowed : null,
        expires_at: v.expires_at ? new Date(`${v.expires_at}T23:59:59`).toISOString() : undefined,
      }));
    },
  });
}

export function render(root) {
  const list = h("div", {});
  let includeRevoked = false;
  let revokedCount = 0;  // shown when every key is revoked and revoked keys are hidden
  const reload = () => pagedList(list, {
    load: async (p) => {
      const page = await get("/api/v1/keys", { ...p, include_revoked: includeRevoked });
      revokedCount = !page.total && !includeRevoked ? (await get("/api/v1/keys", { limit: 1, include_revoked: true })).total : 0;
      return page;
    },
    render: (keys) => table([
      { label: t("keys.name"), render: (k) => h("div", {}, h("strong", {}, k.name || "—"), h("div", { class: "mono muted" }, `${k.prefix}…`)) },
      { label: t("keys.status"), render: status },
      { label: t("keys.models"), render: (k) => (k.allowed_models ? k.allowed_models.join(", ") : h("span", { class: "muted" }, t("keys.all_models"))) },
      { label: t("keys.limits"), render: limits },
      { label: t("keys.budget_used"), render: budget },
      { label: t("keys.expires"), render: (k) => (k.expires_at ? fmtTime(k.expires_at) : h("span", { class: "muted" }, t("keys.never"))) },
      { label: t("keys.created"), render: (k) => fmtTime(k.created_at) },
      { label: "", render: (k) => h("div", { class: "row" },
        h("a", { href: `/usage?key_id=${encodeURIComponent(k.id)}`, "data-test": "key-usage" }, t("keys.usage")),
        !k.revoked_at && h("button", { class: "small", "data-test": "edit-key", onclick: () => editDialog(k, reload) }, t("keys.edit")),
        !k.revoked_at && h("button", { class: "small danger", onclick: async (e) => {
          const btn = e.currentTarget;
          if (!(await confirmDialog(t("keys.revoke_confirm", { name: k.name || k.prefix }), { ok: t("keys.revoke"), danger: true }))) return;
          busy(btn, async () => { await del(`/api/v1/keys/${k.id}`); toast(t("keys.revoked_toast")); reload(); });
        } }, t("keys.revoke"))) },
    ], keys),
    empty: () => (revokedCount
      ? emptyState({ title: t("keys.none_active"), hint: t("keys.none_active_hint", { n: fmtNum(revokedCount) }),
        action: { label: t("keys.show_revoked"), onClick: () => { showRevoked.checked = true; includeRevoked = true; reload(); } } })
      : emptyState({ title: t("keys.empty"), hint: t("keys.empty_hint"), action: { label: t("keys.create"), onClick: create } })),
  });
  const create = () => createDialog((models, created) => { showSecret(created, models); reload(); });
  const showRevoked = h("input", { type: "checkbox", "data-test": "show-revoked", onchange: (e) => { includeRevoked = e.target.checked; reload(); } });
  const revoked = h("label", { class: "check" }, showRevoked, t("keys.show_revoked"));
  mount(root,
    h("div", { class: "page-head" }, h("h1", {}, t("nav.keys")), h("span", { class: "sub" }, t("keys.subtitle")),
      h("div", { class: "actions" }, revoked, h("button", { class: "primary", onclick: create, "data-test": "create-key" }, "+ " + t("keys.create")))),
    list);
  reload();
}
