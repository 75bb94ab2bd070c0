// Code samples for calling a model through this server's /v1: curl, Python (the official `openai` package)
// and JavaScript (the official `openai` npm package). Samples never contain a secret: they read the key from
// the TEMPER_API_KEY environment variable. Only the "key created" dialog passes the new key, which then shows
// in a separate `export TEMPER_API_KEY=…` line above the samples (the secret is on screen there anyway, once).
import { codeBlock } from "./markdown.js";
import { t } from "./i18n.js";
import { h } from "./ui.js";

export const KEY_ENV = "TEMPER_API_KEY";
export const LANGS = ["curl", "python", "javascript"];
const LABELS = { curl: "curl", python: "Python", javascript: "JavaScript" };
// What the openai SDKs call each endpoint, and how a sample prints the answer.
const SDK = {
  "/v1/chat/completions": { method: "chat.completions.create", py: "response.choices[0].message.content",
    js: "response.choices[0].message.content" },
  "/v1/completions": { method: "completions.create", py: "response.choices[0].text", js: "response.choices[0].text" },
  "/v1/embeddings": { method: "embeddings.create", py: "response.data[0].embedding[:5]", js: "response.data[0].embedding.slice(0, 5)" },
};

/** The request a sample makes for `model` when no conversation is given: a greeting, by modality. */
export function sampleRequest(model) {
  switch (model.modality) {
    case "completion": return ["/v1/completions", { model: model.id, prompt: "Once upon a time", max_tokens: 64 }];
    case "embedding": return ["/v1/embeddings", { model: model.id, input: "Hello, world" }];
    case "rerank": return ["/v1/rerank", { model: model.id, query: "What is Temper?", documents: ["Temper is a model studio.", "Paris is in France."] }];
    default: return ["/v1/chat/completions", { model: model.id, messages: [{ role: "user", content: t("samples.hello") }] }];
  }
}

/** `value` as a Python literal (JSON with True/False/None), indented by `pad`. */
function py(value, pad = "") {
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value !== "object") return JSON.stringify(value);
  const inner = pad + "    ";
  if (Array.isArray(value)) {
    return value.length ? `[\n${value.map((v) => inner + py(v, inner)).join(",\n")},\n${pad}]` : "[]";
  }
  const entries = Object.entries(value);
  return entries.length ? `{\n${entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${py(v, inner)}`).join(",\n")},\n${pad}}` : "{}";
}

/** `value` as a JavaScript literal: JSON with unquoted keys where they are identifiers. A line of
 * JSON.stringify's output starts with structure, never inside a string (newlines in strings are escaped). */
const jsObject = (value) => JSON.stringify(value, null, 2).replace(/^(\s*)"([A-Za-z_$][\w$]*)":/gm, "$1$2:");

/** The source of one sample: `lang` is curl, python or javascript; `path` a /v1 path; `body` the JSON body. */
export function sampleCode(lang, path, body, baseUrl = `${location.origin}/v1`) {
  const sdk = SDK[path];
  const url = baseUrl.replace(/\/v1$/, "") + path;
  if (lang === "curl") {
    const json = JSON.stringify(body, null, 2).replace(/'/g, "'\\''");
    return `curl ${url} \\\n  -H "Authorization: Bearer $${KEY_ENV}" \\\n  -H "Content-Type: application/json" \\\n  -d '${json}'`;
  }
  if (lang === "python") {
    if (!sdk) {  // no SDK method (rerank): a plain POST with httpx, which the openai package installs
      return `import os\n\nimport httpx\n\nresponse = httpx.post(\n    ${JSON.stringify(url)},\n`
        + `    headers={"Authorization": f"Bearer {os.environ['${KEY_ENV}']}"},\n    json=${py(body, "    ")},\n)\nprint(response.json())`;
    }
    const args = Object.entries(body).map(([k, v]) => `    ${k}=${py(v, "    ")},`).join("\n");
    return `import os\n\nfrom openai import OpenAI\n\nclient = OpenAI(base_url=${JSON.stringify(baseUrl)}, api_key=os.environ["${KEY_ENV}"])\n`
      + `response = client.${sdk.method}(\n${args}\n)\nprint(${sdk.py})`;
  }
  if (!sdk) {
    return `const response = await fetch(${JSON.stringify(url)}, {\n  method: "POST",\n`
      + `  headers: { Authorization: \`Bearer \${process.env.${KEY_ENV}}\`, "Content-Type": "application/json" },\n`
      + `  body: JSON.stringify(${JSON.stringify(body, null, 2).replace(/\n/g, "\n  ")}),\n});\nconsole.log(await response.json());`;
  }
  return `import OpenAI from "openai";\n\nconst client = new OpenAI({ baseURL: ${JSON.stringify(baseUrl)}, apiKey: process.env.${KEY_ENV} });\n`
    + `const response = await client.${sdk.method}(${jsObject(body)});\nconsole.log(${sdk.js});`;
}

/** Tabs (curl, Python, JavaScript) over the samples for one request; `key` adds the `export` line for it. */
export function codeSamples(path, body, { key } = {}) {
  let current = localStorage.getItem("temper.sample.lang");
  if (!LANGS.includes(current)) current = "curl";
  const box = h("div", { "data-test": "code-sample" });
  const draw = () => box.replaceChildren(codeBlock(sampleCode(current, path, body), current === "curl" ? "bash" : current));
  const tabs = h("div", { class: "seg", role: "tablist" }, LANGS.map((lang) => h("button", {
    type: "button", role: "tab", class: lang === current ? "on" : "", "data-test": `sample-tab-${lang}`,
    onclick: (e) => {
      current = lang;
      localStorage.setItem("temper.sample.lang", lang);
      tabs.querySelectorAll("button").forEach((b) => b.classList.toggle("on", b === e.currentTarget));
      draw();
    },
  }, LABELS[lang])));
  draw();
  return h("div", { class: "code-samples" },
    h("p", { class: "muted small" }, key ? t("samples.key_hint", { env: KEY_ENV }) : t("samples.env_hint", { env: KEY_ENV })),
    key && codeBlock(`export ${KEY_ENV}="${key}"`, "bash"),
    tabs, box);
}
