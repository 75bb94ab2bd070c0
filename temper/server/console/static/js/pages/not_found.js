// Any URL the router does not know.
import { t } from "../i18n.js";
import { emptyState, mount } from "../ui.js";

export function render(root, { navigate }) {
  mount(root, emptyState({ title: t("not_found.title"), hint: t("not_found.hint"),
    action: { label: t("nav.models"), onClick: () => navigate("/models") } }));
}
