// A small Markdown renderer for model answers. It builds DOM nodes with createElement and text nodes only
// (never innerHTML), so any HTML in the text shows as text: <script>, <img onerror> and the like stay inert.
// Supported: paragraphs (single newlines kept as line breaks), ATX headings, bullet and numbered lists,
// blockquotes, rules, fenced code blocks (with a Copy button), pipe tables, **bold**, *italic*, ~~strike~~,
// `code` and [links](https://…) — links only for http(s) URLs, opened with rel="noopener noreferrer".
// An unclosed fence (a stream still arriving) renders as a code block up to the end.
import { t } from "./i18n.js";
import { h, toast } from "./ui.js";

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const BULLET = /^(\s*)[-*+]\s+(.*)$/;
const NUMBERED = /^(\s*)(\d{1,9})[.)]\s+(.*)$/;
const QUOTE = /^ {0,3}>\s?(.*)$/;
const TABLE_SEP = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;
// Inline spans, earliest match wins: code, bold, italic, strike, link.
const INLINE = /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)|\*\*(?=\S)([\s\S]*?\S)\*\*|(?<![\p{L}\p{N}_])__(?=\S)([\s\S]*?\S)__(?![\p{L}\p{N}_])|\*(?=[^\s*])([\s\S]*?[^\s*])\*|(?<![\p{L}\p{N}_])_(?=[^\s_])([\s\S]*?[^\s_])_(?![\p{L}\p{N}_])|~~(?=\S)([\s\S]*?\S)~~|\[([^\]\n]+)\]\(\s*<?([^)\s>]+)>?\s*\)/gu;

/** `url` if it is an absolute http(s) URL, else null (javascript:, data:, relative and malformed URLs). */
export function safeUrl(url) {
  try {
    const u = new URL(url);
    return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
  } catch {
    return null;
  }
}

/** Copy `text` to the clipboard; the button says "Copied" for a moment, a toast says when it fails. */
export async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    if (button) {
      const label = button.textContent;
      button.textContent = t("md.copied");
      setTimeout(() => { button.textContent = label; }, 1500);
    }
  } catch {
    toast(t("md.copy_failed"), "err");
  }
}

/** A code block with its language and a Copy button. */
export function codeBlock(code, lang = "") {
  const copy = h("button", { class: "small ghost", type: "button", "data-test": "copy-code",
    onclick: (e) => copyText(code, e.currentTarget) }, t("md.copy"));
  return h("div", { class: "md-code" },
    h("div", { class: "md-code-head" }, h("span", {}, lang), copy),
    h("pre", {}, h("code", {}, code)));
}

function inline(text) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > last) out.push(...breaks(text.slice(last, m.index)));
    last = m.index + m[0].length;
    if (m[1]) out.push(h("code", {}, m[2].replace(/^ (.*) $/s, "$1")));
    else if (m[3] || m[4]) out.push(h("strong", {}, inline(m[3] || m[4])));
    else if (m[5] || m[6]) out.push(h("em", {}, inline(m[5] || m[6])));
    else if (m[7]) out.push(h("del", {}, inline(m[7])));
    else {
      const href = safeUrl(m[9]);
      out.push(href ? h("a", { href, target: "_blank", rel: "noopener noreferrer" }, inline(m[8])) : m[0]);
    }
  }
  if (last < text.length) out.push(...breaks(text.slice(last)));
  return out;
}

function breaks(text) {
  return text.split("\n").flatMap((line, i) => (i ? [h("br", {}), line] : [line]));
}

function cells(line) {
  return line.trim().replace(/^\|/, "").replace(/\|$/, "").split("|").map((c) => c.trim());
}

/** One list (bullet or numbered) from `lines[i]` on; returns [element, next index]. */
function list(lines, i) {
  const numbered = NUMBERED.test(lines[i]);
  const pattern = numbered ? NUMBERED : BULLET;
  const first = lines[i].match(pattern);
  const indent = first[1].length;
  const start = numbered ? Number(first[2]) : 1;
  const items = [];
  while (i < lines.length) {
    const m = lines[i].match(pattern);
    if (m && m[1].length === indent) {
      items.push([numbered ? m[3] : m[2]]);
      i += 1;
    } else if (lines[i].trim() && lines[i].match(/^\s*/)[0].length > indent) {
      items[items.length - 1].push(lines[i].slice(Math.min(indent + 2, lines[i].match(/^\s*/)[0].length)));
      i += 1;
    } else break;
  }
  const el = h(numbered ? "ol" : "ul", { start: numbered && start !== 1 ? String(start) : undefined },
    items.map((it) => h("li", {}, it.length > 1 ? blocks(it) : inline(it[0]))));
  return [el, i];
}

function blocks(lines) {
  const out = [];
  let para = [];
  const flush = () => { if (para.length) out.push(h("p", {}, inline(para.join("\n")))); para = []; };
  for (let i = 0; i < lines.length;) {
    const line = lines[i];
    let m;
    if ((m = line.match(FENCE))) {
      flush();
      const close = new RegExp(`^ {0,3}${m[1][0]}{${m[1].length},}\\s*$`);
      const code = [];
      for (i += 1; i < lines.length && !close.test(lines[i]); i += 1) code.push(lines[i]);
      i += 1;
      out.push(codeBlock(code.join("\n"), m[2]));
    } else if (!line.trim()) {
      flush();
      i += 1;
    } else if ((m = line.match(HEADING))) {
      flush();
      out.push(h(`h${Math.min(m[1].length + 2, 6)}`, { class: "md-h" }, inline(m[2])));
      i += 1;
    } else if (RULE.test(line)) {
      flush();
      out.push(h("hr", {}));
      i += 1;
    } else if (QUOTE.test(line)) {
      flush();
      const quoted = [];
      for (; i < lines.length && (m = lines[i].match(QUOTE)); i += 1) quoted.push(m[1]);
      out.push(h("blockquote", {}, blocks(quoted)));
    } else if (BULLET.test(line) || NUMBERED.test(line)) {
      flush();
      let el;
      [el, i] = list(lines, i);
      out.push(el);
    } else if (line.includes("|") && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1]) && lines[i + 1].includes("-")) {
      flush();
      const head = cells(line);
      const rows = [];
      for (i += 2; i < lines.length && lines[i].includes("|") && lines[i].trim(); i += 1) rows.push(cells(lines[i]));
      out.push(h("div", { class: "table-wrap" }, h("table", { class: "tbl md-table" },
        h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, inline(c))))),
        h("tbody", {}, rows.map((r) => h("tr", {}, head.map((_, j) => h("td", {}, inline(r[j] || "")))))))));
    } else {
      para.push(line);
      i += 1;
    }
  }
  flush();
  return out;
}

/** Render Markdown `text` into a new element (class "md"). */
export function renderMarkdown(text) {
  return h("div", { class: "md" }, blocks(String(text ?? "").replace(/\r\n?/g, "\n").split("\n")));
}
