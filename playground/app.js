// The mcp-policy playground: the filter's own core (crates/web, built by
// `make web` into pkg/) deciding MCP messages in this page. Nothing leaves
// the page. docs/playground.md.
import init, { compile, decide } from "./pkg/mcp_policy_web.js";
import { createEditor } from "./editor.js";

const $ = (id) => document.getElementById(id);
let examples = { policies: {}, messages: {}, audit_logs: {}, tools: "" };
const editors = new Map(); // module box → editor
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
  const remove = el("button", { onclick: () => { editors.delete(box); box.remove(); } }, "remove");
  const host = el("div");
  box.append(el("label", {}, "Module ", nameInput, " ", remove), host);
  $("modules").append(box);
  editors.set(box, createEditor(host, { label: `Rego module ${name}`, value: source }));
}

function editorOf(module) {
  for (const [box, ed] of editors) if (box.querySelector(".name").value === module) return ed;
  return null;
}

function modules() {
  const out = {};
  for (const [box, ed] of editors) out[box.querySelector(".name").value] = ed.value;
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
    tools: $("tools").value,
  };
}

function clearModules() { editors.clear(); $("modules").replaceChildren(); }

function restore(s) {
  clearModules();
  for (const [n, src] of Object.entries(s.modules || {})) addModule(n, src);
  for (const k of ["data", "settings", "messages", "form", "protocol", "headers", "claims", "tools"]) if (s[k] !== undefined) $(k).value = s[k];
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
  editorOf(module)?.goTo(line, column);
}

function locationLink(p) {
  if (!p.module || !p.line) return document.createTextNode(p.location || "");
  return el("button", { class: "link", onclick: () => goTo(p.module, p.line, p.column) }, p.location);
}

function problem(p, kind) {
  return el("div", { class: kind }, locationLink(p), p.location ? ": " : "", `${kind}: ${p.message}`, p.suggestion ? ` (${p.suggestion})` : "");
}

function pre(v) { return el("pre", {}, typeof v === "string" ? v : JSON.stringify(v, null, 2)); }

function messageView(m) {
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
  return d;
}

// The recorded decision of an audit event, next to the new one.
function recordedView(r) {
  const rec = r.recorded;
  const what = [rec.kind, rec.method, rec.tool || rec.prompt || rec.resource].filter(Boolean).join(" ");
  const line = el("div", { class: "recorded" }, `log line ${rec.line}: ${what} — recorded `,
    el("span", { class: rec.decision }, rec.decision), rec.mode === "audit" ? " (audit mode)" : "",
    rec.reasons?.length ? ` (${rec.reasons.join("; ")})` : "", rec.time ? ` at ${rec.time}` : "");
  if (r.changed !== undefined) line.append(r.changed ? el("strong", { class: "changed-label" }, " → changed") : " → unchanged");
  const box = el("div", {}, line);
  if (r.reconstructed?.length) box.append(el("div", { class: "note" }, "reconstructed: ", r.reconstructed.join("; ")));
  box.append(el("details", {}, el("summary", {}, "audit event"), pre(rec.event)));
  return box;
}

function listView(list) {
  return el("div", { class: "list" },
    el("div", {}, "tools/list answer filtered: ", el("span", { class: list.decision }, list.decision),
      list.hidden.length ? ` — hidden from this caller: ${list.hidden.join(", ")}` : " — nothing hidden",
      `; shown: ${list.shown.join(", ") || "(none)"}`),
    list.reasons?.length ? el("div", {}, "reasons: ", list.reasons.join("; ")) : "",
    el("details", {}, el("summary", {}, "the answer the client gets"), pre(prettyJson(list.answer))));
}

function prettyJson(text) { try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return text; } }

function renderResult(r, i, n) {
  const box = el("div", { class: "result" + (r.changed ? " changed" : "") + (r.skipped ? " skipped" : "") });
  if (r.recorded) box.append(recordedView(r));
  if (r.skipped) { box.append(el("div", { class: "note" }, `not decided again: ${r.skipped}`)); return box; }
  if (r.error) { box.append(el("div", { class: "error" }, `[${i}] the message cannot be read: ${r.error}`)); return box; }
  box.append(el("div", { class: "outcome" }, n > 1 ? `[${i}] ` : "", el("span", { class: r.decision }, r.decision), " — ", r.message_form,
    r.forwarded ? ": forwarded to the server" : `: the filter answers HTTP ${r.reply?.status}`));
  for (const m of r.messages) box.append(messageView(m));
  if (r.list) box.append(listView(r.list));
  if (r.reply) box.append(el("details", { open: "" }, el("summary", {}, "reply to the client"),
    pre(`HTTP ${r.reply.status}\n${r.reply.headers.map(([k, v]) => `${k}: ${v}`).join("\n")}\n\n${r.reply.body_text}`)));
  else if (r.forward && (r.forward.body || r.forward.request_headers?.length || r.forward.response_headers?.length))
    box.append(el("details", {}, el("summary", {}, "forwarded with changes"), pre(r.forward)));
  return box;
}

// An audit log decided again: how many events, decided again, changed.
function auditSummary(results) {
  const decided = results.filter((r) => r.changed !== undefined);
  const changed = decided.filter((r) => r.changed);
  const skipped = results.filter((r) => r.skipped).length;
  const only = el("input", { type: "checkbox", id: "only-changed",
    onchange: (e) => $("results").classList.toggle("only-changed", e.target.checked) });
  return el("div", { class: "summary", id: "audit-summary" },
    `${results.length} audit events: ${decided.length} decided again, `, el("strong", {}, `${changed.length} changed`),
    `, ${skipped} not decidable (server messages, rejections). `, only, el("label", { for: "only-changed", class: "inline" }, "show only the changed ones"));
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

// Compile errors and warnings: listed, and marked at their line in the editor.
function showProblems(c) {
  const per = new Map();
  for (const [kind, list] of [["error", c.errors || []], ["warning", c.warnings || []]]) {
    for (const p of list) {
      $("compile").append(problem(p, kind));
      if (p.module && p.line) {
        if (!per.has(p.module)) per.set(p.module, []);
        per.get(p.module).push({ ...p, kind, link: locationLink(p) });
      }
    }
  }
  for (const [box, ed] of editors) ed.setProblems(per.get(box.querySelector(".name").value) || []);
}

function request() {
  const form = $("form").value;
  const r = {
    modules: modules(), data: parseJson("data", {}), settings: parseJson("settings", {}),
    [form]: $("messages").value, headers: parseJson("headers", {}), protocol_version: $("protocol").value.trim(),
    now_ms: Date.now(), seed: Array.from(crypto.getRandomValues(new Uint8Array(32))),
  };
  const claims = parseJson("claims", null);
  if (claims) r.identity = { claims };
  const tools = parseJson("tools", null);
  if (tools) r.tools = tools;
  return r;
}

function runUnguarded() {
  const t0 = performance.now();
  $("compile").replaceChildren(); $("results").replaceChildren(); $("results").classList.remove("only-changed");
  let req;
  try { req = request(); } catch (e) { $("compile").append(el("div", { class: "error" }, e.message)); return; }
  const c = JSON.parse(compile(JSON.stringify(req)));
  showProblems(c);
  if (!c.ok) { $("status").textContent = "the policy does not compile"; const e = (c.errors || [])[0]; if (e?.line) goTo(e.module, e.line, e.column); return; }
  const out = JSON.parse(decide(JSON.stringify(req)));
  if (!out.ok) { for (const e of out.errors) $("results").append(problem(e, "error")); return; }
  if (req.audit !== undefined) $("results").append(auditSummary(out.results));
  out.results.forEach((r, i) => $("results").append(renderResult(r, i, out.results.length)));
  $("status").textContent = `engine ${out.policy.engine}, revision ${out.policy.revision.slice(0, 19)}…; decided in ${(performance.now() - t0).toFixed(1)} ms`
    + (started !== null ? `; first decision ${performance.now().toFixed(0)} ms after navigation` : "");
  started = null;
  history.replaceState(null, "", toFragment(state()));
}

function loadExample(name) {
  const ex = examples.policies[name]; if (!ex) return;
  clearModules();
  for (const [n, src] of Object.entries(ex.modules)) addModule(n, src);
  $("data").value = JSON.stringify(ex.data || {}, null, 2);
}

// Recorded messages and audit logs share one select: the form follows.
function loadInput(key) {
  const [kind, name] = key.split(":", 2);
  if (kind === "audit") { $("form").value = "audit"; $("messages").value = examples.audit_logs[name]; }
  else { if ($("form").value === "audit") $("form").value = "message"; $("messages").value = examples.messages[name]; }
}

function fillSelects() {
  for (const n of Object.keys(examples.policies)) $("example").append(el("option", { value: n }, n));
  const sel = $("message-example");
  sel.append(el("option", { value: "" }, "(choose a recorded message or an audit log)"));
  const group = (label, kind, names) => {
    const g = el("optgroup", { label });
    for (const n of names) g.append(el("option", { value: `${kind}:${n}` }, n));
    sel.append(g);
  };
  group("recorded messages", "message", Object.keys(examples.messages));
  group("audit logs", "audit", Object.keys(examples.audit_logs || {}));
}

async function main() {
  const t0 = performance.now();
  await init();
  try { examples = await (await fetch("pkg/examples.json")).json(); } catch { /* no examples: an empty page still works */ }
  fillSelects();
  $("example").addEventListener("change", (e) => { loadExample(e.target.value); run(); });
  $("message-example").addEventListener("change", (e) => { if (e.target.value) { loadInput(e.target.value); run(); } });
  $("tools-example").addEventListener("click", () => { $("tools").value = examples.tools || ""; run(); });
  $("add-module").addEventListener("click", () => addModule(`module${editors.size + 1}.rego`, "package mcp\n\nimport rego.v1\n"));
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
