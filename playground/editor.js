// A small code editor for Rego modules: a textarea (which keeps native
// editing, undo, selection and accessibility) over a highlighted <pre> of
// the same text, with a line-number gutter; both follow the textarea on
// input and scroll. Problems (compile errors, lint warnings) mark their
// line in the gutter and the text, with the message on hover and listed
// under the editor. docs/playground.md, "The editor".

const KEYWORDS = new Set(["package", "import", "default", "if", "else", "not", "some", "every", "in",
  "contains", "with", "as", "true", "false", "null"]);

// One pass over the text: comments, strings (quoted and raw), numbers,
// operators, words (keywords, rule heads at the start of a line, builtins).
const TOKEN = /(#[^\n]*)|("(?:[^"\\\n]|\\.)*"?|`[^`]*`?)|(\b\d+(?:\.\d+)?(?:[eE][+-]?\d+)?\b)|(:=|==|!=|<=|>=|[=<>|&])|([A-Za-z_][A-Za-z0-9_]*)|(\n)/g;

function esc(s) {
  return s.replace(/[&<>]/g, (c) => (c === "&" ? "&amp;" : c === "<" ? "&lt;" : "&gt;"));
}

// The text as highlighted HTML, one block per line (so a line can be marked).
export function highlight(text, marks = new Map()) {
  const lines = [];
  let cur = "";
  let lineStart = 0; // where the current line starts in the text
  let last = 0;
  const flush = () => { lines.push(cur); cur = ""; lineStart = last; };
  const plain = (s) => { cur += esc(s); };
  for (const m of text.matchAll(TOKEN)) {
    plain(text.slice(last, m.index));
    last = m.index + m[0].length;
    const [t, comment, str, num, op, word, nl] = m;
    if (nl) { flush(); continue; }
    let cls = comment ? "c" : str ? "s" : num ? "n" : op ? "o" : "";
    if (word) {
      if (KEYWORDS.has(word)) cls = "k";
      else if (m.index === lineStart) cls = "r"; // a rule head: a name in the first column
      else if (text[last] === "(") cls = "f";
    }
    cur += cls ? `<span class="${cls}">${esc(t)}</span>` : esc(t);
  }
  plain(text.slice(last));
  lines.push(cur);
  return lines.map((l, i) => {
    const mark = marks.get(i + 1);
    return `<span class="l${mark ? " " + mark.kind : ""}">${l || " "}</span>`;
  }).join("");
}

// Build an editor in `host`; returns its API.
export function createEditor(host, { label, value = "", onChange = () => {} }) {
  host.classList.add("editor");
  const gutter = document.createElement("div");
  gutter.className = "gutter";
  gutter.setAttribute("aria-hidden", "true");
  const code = document.createElement("div");
  code.className = "code";
  const pre = document.createElement("pre");
  pre.className = "hl";
  pre.setAttribute("aria-hidden", "true");
  const text = document.createElement("textarea");
  text.spellcheck = false;
  text.setAttribute("wrap", "off");
  text.setAttribute("autocapitalize", "off");
  text.setAttribute("aria-label", label);
  text.setAttribute("aria-description", "Tab indents, Shift+Tab outdents; press Escape, then Tab, to leave the editor. Ctrl+Enter decides.");
  text.value = value;
  const problems = document.createElement("ul");
  problems.className = "problems";
  problems.id = `problems-${Math.random().toString(36).slice(2)}`;
  code.append(pre, text);
  host.append(gutter, code, problems);

  let marks = new Map(); // line → {kind, messages}
  let escaped = false;

  function render() {
    pre.innerHTML = highlight(text.value, marks);
    const n = text.value.split("\n").length;
    let g = "";
    for (let i = 1; i <= n; i++) {
      const m = marks.get(i);
      g += m ? `<div class="${m.kind}" title="${esc(m.messages.join("\n")).replace(/"/g, "&quot;")}">${i}</div>` : `<div>${i}</div>`;
    }
    gutter.innerHTML = g;
    sync();
  }
  function sync() {
    pre.scrollTop = text.scrollTop;
    pre.scrollLeft = text.scrollLeft;
    gutter.scrollTop = text.scrollTop;
  }

  // Tab and Shift+Tab on the selected lines; Escape lets the next Tab leave.
  text.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") { escaped = true; return; }
    if (ev.key !== "Tab" || ev.ctrlKey || ev.altKey || ev.metaKey || escaped) { escaped = false; return; }
    ev.preventDefault();
    const { selectionStart: s, selectionEnd: e, value: v } = text;
    const from = v.lastIndexOf("\n", s - 1) + 1;
    if (!ev.shiftKey && !v.slice(s, e).includes("\n")) {
      text.setRangeText("\t", s, e, "end");
    } else {
      const block = v.slice(from, e);
      const out = ev.shiftKey ? block.replace(/^(\t| {1,4})/gm, "") : block.replace(/^/gm, "\t");
      text.setRangeText(out, from, e, "preserve");
      text.setSelectionRange(from, from + out.length);
    }
    text.dispatchEvent(new Event("input"));
  });
  text.addEventListener("input", () => { render(); onChange(); });
  text.addEventListener("scroll", sync);

  return {
    textarea: text,
    get value() { return text.value; },
    set value(v) { text.value = v; render(); },
    // Problems: [{line, column, message, kind ("error"|"warning"), link}]
    setProblems(list) {
      marks = new Map();
      problems.replaceChildren();
      for (const p of list) {
        if (!p.line) continue;
        const m = marks.get(p.line) || { kind: p.kind, messages: [] };
        if (p.kind === "error") m.kind = "error";
        m.messages.push(`${p.line}:${p.column || 1}: ${p.message}`);
        marks.set(p.line, m);
        const li = document.createElement("li");
        li.className = p.kind;
        li.append(p.link, `: ${p.kind}: ${p.message}`);
        problems.append(li);
      }
      const hasError = list.some((p) => p.kind === "error" && p.line);
      text.setAttribute("aria-invalid", hasError ? "true" : "false");
      if (problems.childElementCount) text.setAttribute("aria-describedby", problems.id);
      else text.removeAttribute("aria-describedby");
      render();
    },
    // Put the caret on a line and column, scrolled into view.
    goTo(line, column) {
      const lines = text.value.split("\n");
      let pos = 0;
      for (let i = 0; i < Math.min(line - 1, lines.length); i++) pos += lines[i].length + 1;
      pos += Math.max(0, (column || 1) - 1);
      text.focus();
      text.setSelectionRange(pos, pos);
      const lh = parseFloat(getComputedStyle(text).lineHeight) || 18;
      text.scrollTop = Math.max(0, (line - 3) * lh);
      sync();
    },
    render,
  };
}
