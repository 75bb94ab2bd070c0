// How the Usage and Analytics pages name a group of requests (metered model calls, defined once on the server
// in temper/ops/analytics.py): the same key, model, app and source labels on both pages.
import { t } from "./i18n.js";

export const SOURCES = ["api", "knowledge", "job", "internal"];

/** The label of a group row `r` (`{group, key_name, key_prefix}`) grouped by `by`. */
export function groupLabel(by, r) {
  const g = r.group;
  if (by === "key") {
    if (g === null || g === undefined) return t("calls.internal");  // the server's own calls, on no key
    if (g === "key_admin") return t("app.admin_key");
    return r.key_name || (r.key_prefix ? `${r.key_prefix}…` : g);
  }
  if (by === "source") return SOURCES.includes(g) ? t(`calls.source_${g}`) : g;
  if (by === "model") return g ? g : t("calls.no_model");
  if (by === "app") return g ? g : t("calls.no_app");
  return g || "";
}
