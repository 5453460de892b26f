// The mcp-policy playground: the filter's own core (crates/web, built by
// `make web` into pkg/) deciding MCP messages in this page. Nothing leaves
// the page. docs/playground.md.
import init, { compile, decide } from "./pkg/mcp_policy_web.js";

const $ = (id) => document.getElementById(id);
let examples = { policies: {}, messages: {} };
let started = 0; // time to first decision, from navigation start (docs/playground.md, "Weight")

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c));
  return e;
}

function addModule(name = "policy.rego", source = "package mcp\n\nimport rego.v1\n\ndefault allow := false\n") {
  const box = el("div", { class: "module" });
  const nameInput = el("input", { type: "text", class: "name", value: name, "aria-label": "module name" });
  const remove = el("button", { onclick: () => box.remove() }, "remove");
  const text = el("textarea", { spellcheck: "false", "aria-label": "Rego module" });
  text.value = source;
  text.addEventListener("keydown", (ev) => {
    if (ev.key === "Tab" && !ev.shiftKey && !ev.ctrlKey) {
      ev.preventDefault();
      text.setRangeText("\t", text.selectionStart, text.selectionEnd, "end");
    }
  });
  box.append(el("label", {}, "Module ", nameInput, " ", remove), text);
  $("modules").append(box);
}

function modules() {
  const out = {};
  for (const m of document.querySelectorAll(".module")) out[m.querySelector(".name").value] = m.querySelector("textarea").value;
  return out;
}

function parseJson(id, fallback) {
  const t = $(id).value.trim();
  if (!t) return fallback;
  try { return JSON.parse(t); } catch (e) { throw new Error(`${id}: not JSON: ${e.message}`); }
}

function state() {
  return {
    modules: modules(), data: $("data").value, settings: $("settings").value, messages: $("messages").value,
    form: $("form").value, protocol: $("protocol").value, headers: $("headers").value, claims: $("claims").value,
  };
}

function restore(s) {
  $("modules").replaceChildren();
  for (const [n, src] of Object.entries(s.modules || {})) addModule(n, src);
  for (const k of ["data", "settings", "messages", "form", "protocol", "headers", "claims"]) if (s[k] !== undefined) $(k).value = s[k];
}

// The state as a URL fragment: UTF-8 JSON, base64url.
function toFragment(s) {
  const bytes = new TextEncoder().encode(JSON.stringify(s));
  let bin = ""; for (const b of bytes) bin += String.fromCharCode(b);
  return "#s=" + btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
function fromFragment(hash) {
  const m = /^#s=(.+)$/.exec(hash); if (!m) return null;
  try {
    const bin = atob(m[1].replace(/-/g, "+").replace(/_/g, "/"));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
  } catch { return null; }
}

// Put the caret on a module's line and column.
function goTo(module, line, column) {
  for (const m of document.querySelectorAll(".module")) {
    if (m.querySelector(".name").value !== module) continue;
    const t = m.querySelector("textarea");
    const lines = t.value.split("\n");
    let pos = 0; for (let i = 0; i < Math.min(line - 1, lines.length); i++) pos += lines[i].length + 1;
    pos += Math.max(0, (column || 1) - 1);
    t.focus(); t.setSelectionRange(pos, pos);
    t.scrollTop = Math.max(0, (line - 3) * parseFloat(getComputedStyle(t).lineHeight || "18"));
    return;
  }
}

function locationLink(p) {
  if (!p.module || !p.line) return document.createTextNode(p.location || "");
  return el("button", { class: "link", onclick: () => goTo(p.module, p.line, p.column) }, p.location);
}

function problem(p, kind) {
  return el("div", { class: kind }, locationLink(p), p.location ? ": " : "", `${kind}: ${p.message}`, p.suggestion ? ` (${p.suggestion})` : "");
}

function pre(v) { return el("pre", {}, typeof v === "string" ? v : JSON.stringify(v, null, 2)); }

function renderResult(r, i, n) {
  const box = el("div", { class: "result" });
  if (r.error) { box.append(el("div", { class: "error" }, `[${i}] the message cannot be read: ${r.error}`)); return box; }
  box.append(el("div", {}, n > 1 ? `[${i}] ` : "", el("span", { class: r.decision }, r.decision), " — ", r.message_form,
    r.forwarded ? ": forwarded to the server" : `: the filter answers HTTP ${r.reply?.status}`));
  for (const m of r.messages) {
    const title = [m.kind, m.method, m.name && JSON.stringify(m.name), m.id !== undefined && `(id ${JSON.stringify(m.id)})`].filter(Boolean).join(" ");
    const d = el("div", {}, el("strong", {}, title), " ", m.decision ? el("span", { class: m.decision }, m.decision) : "");
    if (m.invalid) d.append(el("div", { class: "error" }, `invalid: ${m.invalid}`));
    if (m.reasons?.length) d.append(el("div", {}, "reasons: ", m.reasons.join("; ")));
    if (m.rules?.length) {
      const ul = el("ul");
      for (const rule of m.rules) {
        const [mod, line, col] = rule.location.split(/:(?=\d+:\d+$)|:(?=\d+$)/);
        ul.append(el("li", {}, `${rule.rule} `, el("button", { class: "link", onclick: () => goTo(mod, +line, +col) }, rule.location), " ",
          rule.default ? `default (no other allow rule holds): ${JSON.stringify(rule.value)}` : JSON.stringify(rule.value)));
      }
      d.append(el("div", {}, "rules:"), ul);
    }
    if (m.explanation_error) d.append(el("div", { class: "warning" }, `rules not available: ${m.explanation_error}`));
    if (m.result?.error) d.append(el("div", { class: "error" }, `policy evaluation failed: ${m.result.error}`));
    if (m.input) d.append(el("details", {}, el("summary", {}, "input document"), pre(m.input)));
    box.append(d);
  }
  if (r.reply) box.append(el("details", { open: "" }, el("summary", {}, "reply to the client"),
    pre(`HTTP ${r.reply.status}\n${r.reply.headers.map(([k, v]) => `${k}: ${v}`).join("\n")}\n\n${r.reply.body_text}`)));
  else if (r.forward && (r.forward.body || r.forward.request_headers?.length || r.forward.response_headers?.length))
    box.append(el("details", {}, el("summary", {}, "forwarded with changes"), pre(r.forward)));
  return box;
}

// A trap in the engine (a Rust panic: `unreachable`): the module cannot be
// used again, so the page says so instead of failing silently.
function trapped(e) {
  $("compile").append(el("div", { class: "error" },
    `the engine stopped (${e}); reload the page to start it again.`));
  $("status").textContent = "the engine stopped; reload the page";
}

function run() {
  try { runUnguarded(); } catch (e) { trapped(e); }
}

function runUnguarded() {
  const t0 = performance.now();
  $("compile").replaceChildren(); $("results").replaceChildren();
  let request;
  try {
    request = {
      modules: modules(), data: parseJson("data", {}), settings: parseJson("settings", {}),
      [$("form").value]: $("messages").value, headers: parseJson("headers", {}), protocol_version: $("protocol").value.trim(),
      now_ms: Date.now(), seed: Array.from(crypto.getRandomValues(new Uint8Array(32))),
    };
    const claims = parseJson("claims", null);
    if (claims) request.identity = { claims };
  } catch (e) { $("compile").append(el("div", { class: "error" }, e.message)); return; }
  const c = JSON.parse(compile(JSON.stringify(request)));
  for (const e of c.errors || []) $("compile").append(problem(e, "error"));
  for (const w of c.warnings || []) $("compile").append(problem(w, "warning"));
  if (!c.ok) { $("status").textContent = "the policy does not compile"; const e = (c.errors || [])[0]; if (e?.line) goTo(e.module, e.line, e.column); return; }
  const out = JSON.parse(decide(JSON.stringify(request)));
  if (!out.ok) { for (const e of out.errors) $("results").append(problem(e, "error")); return; }
  out.results.forEach((r, i) => $("results").append(renderResult(r, i, out.results.length)));
  $("status").textContent = `engine ${out.policy.engine}, revision ${out.policy.revision.slice(0, 19)}…; decided in ${(performance.now() - t0).toFixed(1)} ms`
    + (started !== null ? `; first decision ${performance.now().toFixed(0)} ms after navigation` : "");
  started = null;
  history.replaceState(null, "", toFragment(state()));
}

function loadExample(name) {
  const ex = examples.policies[name]; if (!ex) return;
  $("modules").replaceChildren();
  for (const [n, src] of Object.entries(ex.modules)) addModule(n, src);
  $("data").value = JSON.stringify(ex.data || {}, null, 2);
}

async function main() {
  const t0 = performance.now();
  await init();
  try { examples = await (await fetch("pkg/examples.json")).json(); } catch { /* no examples: an empty page still works */ }
  for (const n of Object.keys(examples.policies)) $("example").append(el("option", { value: n }, n));
  $("message-example").append(el("option", { value: "" }, "(choose a recorded message)"));
  for (const n of Object.keys(examples.messages)) $("message-example").append(el("option", { value: n }, n));
  $("example").addEventListener("change", (e) => { loadExample(e.target.value); run(); });
  $("message-example").addEventListener("change", (e) => { if (e.target.value) { $("messages").value = examples.messages[e.target.value]; run(); } });
  $("add-module").addEventListener("click", () => addModule(`module${document.querySelectorAll(".module").length + 1}.rego`, "package mcp\n\nimport rego.v1\n"));
  $("decide").addEventListener("click", run);
  $("share").addEventListener("click", async () => { history.replaceState(null, "", toFragment(state())); try { await navigator.clipboard.writeText(location.href); $("status").textContent = "link copied"; } catch { $("status").textContent = "the link is in the address bar"; } });
  document.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(); } });
  const s = fromFragment(location.hash);
  if (s) restore(s); else {
    const first = Object.keys(examples.policies)[0];
    if (first) loadExample(first); else addModule();
    const m = Object.keys(examples.messages)[0]; if (m) $("messages").value = examples.messages[m];
  }
  $("status").textContent = `engine loaded in ${(performance.now() - t0).toFixed(0)} ms`;
  run();
}

main().catch((e) => { $("status").textContent = `the engine did not load: ${e}`; });
