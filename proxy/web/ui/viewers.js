// peephole web UI: body viewers (JSON tree, source text, image, hex) and a
// line diff. Bodies are shown as text, never rendered as HTML.
import { useEffect, useMemo, useState } from "/vendor/preact-hooks.mjs";
import { html, getBytes, humanBytes } from "./api.js";

const MAX_TEXT = 2 * 1024 * 1024; // show at most this much source text
const MAX_CHILDREN = 500; // per JSON node before "show more"
const HEX_MAX = 64 * 1024;

// ---- JSON tree ----

function JsonValue({ v }) {
  if (v === null) return html`<span class="j-null">null</span>`;
  switch (typeof v) {
    case "string":
      return html`<span class="j-str">${JSON.stringify(v)}</span>`;
    case "number":
      return html`<span class="j-num">${String(v)}</span>`;
    case "boolean":
      return html`<span class="j-bool">${String(v)}</span>`;
    default:
      return html`<span>${String(v)}</span>`;
  }
}

function JsonNode({ name, v, depth, open: open0, openDepth }) {
  const isObj = v !== null && typeof v === "object";
  const [open, setOpen] = useState(open0 !== undefined ? open0 : depth < openDepth);
  const [limit, setLimit] = useState(MAX_CHILDREN);
  const label = name !== undefined ? html`<span class="j-key">${typeof name === "number" ? name : JSON.stringify(name)}</span><span class="j-colon">: </span>` : null;
  if (!isObj) return html`<div class="j-row">${label}<${JsonValue} v=${v} /></div>`;
  const arr = Array.isArray(v);
  const entries = arr ? v.map((x, i) => [i, x]) : Object.entries(v);
  const summary = arr ? `[${entries.length}]` : `{${entries.length}}`;
  return html`<div class="j-node">
    <div class="j-row j-toggle" onClick=${() => setOpen(!open)}>
      <span class="j-caret">${open ? "▾" : "▸"}</span>${label}<span class="j-sum">${summary}</span>
    </div>
    ${open &&
    html`<div class="j-children">
      ${entries.slice(0, limit).map(([k, x]) => html`<${JsonNode} key=${k} name=${k} v=${x} depth=${depth + 1} openDepth=${openDepth} />`)}
      ${entries.length > limit && html`<button type="button" class="link" onClick=${() => setLimit(limit + MAX_CHILDREN)}>show ${Math.min(MAX_CHILDREN, entries.length - limit)} more of ${entries.length - limit}</button>`}
    </div>`}
  </div>`;
}

// how many nodes, counting no further than cap
function countNodes(v, cap) {
  let n = 0;
  const walk = (x) => {
    if (n > cap) return;
    n++;
    if (x !== null && typeof x === "object") for (const k in x) walk(x[k]);
  };
  walk(v);
  return n;
}

// A small document opens whole; a big one two levels deep.
export function JsonTree({ value }) {
  const openDepth = useMemo(() => (countNodes(value, 400) <= 400 ? Infinity : 2), [value]);
  return html`<div class="json-tree mono" data-testid="json-tree"><${JsonNode} v=${value} depth=${0} open=${true} openDepth=${openDepth} /></div>`;
}

export function tryJSON(text, type) {
  if (typeof text !== "string") return undefined;
  const t = text.trimStart();
  if (!/json/i.test(type || "") && !(t.startsWith("{") || t.startsWith("["))) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

// ---- text ----

function prettyXml(text) {
  // light indentation for one-line XML/HTML: a newline between tags only
  if (text.length > 200000 || text.includes("\n")) return text;
  return text.replace(/>\s*</g, ">\n<");
}

export function TextView({ text, type }) {
  let t = text;
  let note = "";
  if (t.length > MAX_TEXT) {
    note = `showing the first ${humanBytes(MAX_TEXT)} of ${humanBytes(t.length)} characters`;
    t = t.slice(0, MAX_TEXT);
  }
  if (/xml|html/i.test(type || "")) t = prettyXml(t);
  return html`<div class="text-view">
    ${note && html`<div class="note">${note}</div>`}
    <pre class="source mono" data-testid="text-view">${t}</pre>
  </div>`;
}

// ---- image ----

export function ImagePreview({ src, type }) {
  const [dim, setDim] = useState("");
  const [small, setSmall] = useState(0);
  return html`<div class="image-preview" data-testid="image-preview">
    <img src=${src} alt="response body (${type})" style=${small ? `width:${small}px;image-rendering:pixelated` : ""} onLoad=${(e) => {
      const w = e.target.naturalWidth, h = e.target.naturalHeight;
      setDim(w + " × " + h + (w < 64 && h < 64 ? " (shown 4×)" : ""));
      if (w < 64 && h < 64) setSmall(w * 4);
    }} />
    ${dim && html`<div class="note">${type} · ${dim}</div>`}
  </div>`;
}

// ---- hex ----

const hex2 = (b) => (b < 16 ? "0" : "") + b.toString(16);

export function hexDump(bytes) {
  const lines = [];
  for (let off = 0; off < bytes.length; off += 16) {
    let hx = "";
    let asc = "";
    for (let i = 0; i < 16; i++) {
      if (off + i < bytes.length) {
        const b = bytes[off + i];
        hx += hex2(b) + (i === 7 ? "  " : " ");
        asc += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".";
      } else hx += i === 7 ? "    " : "   ";
    }
    lines.push(off.toString(16).padStart(8, "0") + "  " + hx + " |" + asc + "|");
  }
  return lines.join("\n");
}

export function HexView({ url }) {
  const [state, setState] = useState({ loading: true });
  useEffect(() => {
    let live = true;
    setState({ loading: true });
    getBytes(url)
      .then((buf) => live && setState({ bytes: new Uint8Array(buf, 0, Math.min(buf.byteLength, HEX_MAX)), total: buf.byteLength }))
      .catch((e) => live && setState({ error: e.message }));
    return () => {
      live = false;
    };
  }, [url]);
  if (state.loading) return html`<div class="note">loading bytes…</div>`;
  if (state.error) return html`<div class="error">${state.error}</div>`;
  return html`<div class="hex-wrap">
    <div class="note">${state.total > HEX_MAX ? `first ${humanBytes(HEX_MAX)} of ${humanBytes(state.total)} (download the body for all of it)` : humanBytes(state.total)}</div>
    <pre class="hex mono" data-testid="hex-view">${hexDump(state.bytes)}</pre>
  </div>`;
}

// ---- line diff (LCS) ----

// Lines of a and b as [op, line] with op " ", "-" or "+". Common head and
// tail are trimmed first; the middle gets an O(n*m) LCS table, capped (past
// the cap the middle is shown as all removed then all added).
export function lineDiff(aText, bText, cap = 4000000) {
  const a = aText.split("\n");
  const b = bText.split("\n");
  let s = 0;
  while (s < a.length && s < b.length && a[s] === b[s]) s++;
  let ea = a.length,
    eb = b.length;
  while (ea > s && eb > s && a[ea - 1] === b[eb - 1]) {
    ea--;
    eb--;
  }
  const out = [];
  for (let i = 0; i < s; i++) out.push([" ", a[i]]);
  const A = a.slice(s, ea),
    B = b.slice(s, eb);
  const n = A.length,
    m = B.length;
  if (n * m > cap) {
    for (const l of A) out.push(["-", l]);
    for (const l of B) out.push(["+", l]);
  } else if (n || m) {
    // lcs[i][j] = LCS length of A[i..] and B[j..]
    const w = m + 1;
    const t = new Uint32Array((n + 1) * w);
    for (let i = n - 1; i >= 0; i--)
      for (let j = m - 1; j >= 0; j--) t[i * w + j] = A[i] === B[j] ? t[(i + 1) * w + j + 1] + 1 : Math.max(t[(i + 1) * w + j], t[i * w + j + 1]);
    let i = 0,
      j = 0;
    while (i < n && j < m) {
      if (A[i] === B[j]) {
        out.push([" ", A[i]]);
        i++;
        j++;
      } else if (t[(i + 1) * w + j] >= t[i * w + j + 1]) out.push(["-", A[i++]]);
      else out.push(["+", B[j++]]);
    }
    while (i < n) out.push(["-", A[i++]]);
    while (j < m) out.push(["+", B[j++]]);
  }
  for (let i = ea; i < a.length; i++) out.push([" ", a[i]]);
  return out;
}

// Show a diff with long unchanged runs folded.
export function DiffLines({ lines, context = 3 }) {
  const keep = new Array(lines.length).fill(false);
  lines.forEach(([op], i) => {
    if (op !== " ") for (let k = Math.max(0, i - context); k <= Math.min(lines.length - 1, i + context); k++) keep[k] = true;
  });
  const out = [];
  let skipped = 0;
  lines.forEach(([op, l], i) => {
    if (!keep[i]) {
      skipped++;
      return;
    }
    if (skipped) {
      out.push(html`<div class="d-skip">… ${skipped} unchanged line${skipped > 1 ? "s" : ""}</div>`);
      skipped = 0;
    }
    out.push(html`<div class=${op === "-" ? "d-del" : op === "+" ? "d-add" : "d-eq"}>${op} ${l}</div>`);
  });
  if (skipped) out.push(html`<div class="d-skip">… ${skipped} unchanged line${skipped > 1 ? "s" : ""}</div>`);
  if (!lines.some(([op]) => op !== " ")) return html`<div class="note">bodies are identical</div>`;
  return html`<pre class="diff mono">${out}</pre>`;
}
