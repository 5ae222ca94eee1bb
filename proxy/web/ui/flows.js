// peephole web UI: the flow list. Virtualised: only the rows in view (plus a
// few) are in the DOM; every row has the same height.
import { useEffect, useLayoutEffect, useReducer, useRef, useState } from "/vendor/preact-hooks.mjs";
import { html, clock, humanBytes, ms, protoLabel, statusClass } from "./api.js";
import { store, rowKey } from "./store.js";

export const ROW_H = 22;

// path and query: from the URL (the path column has no query); CONNECT
// rows have no path, they show their authority
function pathOf(f) {
  const u = f.url || "";
  const m = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*(.*)$/i.exec(u);
  if (m && m[1]) return m[1];
  if (f.method === "CONNECT") return `${f.host || ""}:${f.port || ""}`;
  return f.path || u;
}
const OVERSCAN = 8;

export const COLUMNS = [
  { key: "id", title: "#", min: 64, cls: "num", get: (f) => f.id },
  { key: "time", title: "Time", min: 104, get: (f) => clock(f.time_us, f.time) },
  { key: "method", title: "Method", min: 72, get: (f) => f.method || "" },
  { key: "status", title: "Status", min: 62, cls: "num", get: (f) => (f.status === null || f.status === undefined ? (f.error ? "ERR" : "…") : f.status) },
  { key: "host", title: "Host", min: 120, fr: 1.2, get: (f) => f.host || "" },
  { key: "path", title: "Path", min: 160, fr: 3, get: (f) => pathOf(f), title2: (f) => f.url },
  { key: "url", title: "URL", min: 200, fr: 3, get: (f) => f.url || "" },
  { key: "type", title: "Type", min: 90, fr: 0.8, get: (f) => (f.content_type || "").split(";")[0] },
  { key: "size", title: "Size", min: 76, cls: "num", get: (f) => humanBytes(f.resp_size), title2: (f) => `request ${f.req_size ?? "?"} B, response ${f.resp_size ?? "?"} B` },
  { key: "duration", title: "Duration", min: 80, cls: "num", get: (f) => ms(f.total_ms) },
  { key: "protocol", title: "Proto", min: 62, get: (f) => protoLabel(f), title2: (f) => `client HTTP/${f.version || "?"}, upstream HTTP/${f.up_version || "?"}` + (f.websocket_messages ? `, ${f.websocket_messages} WebSocket messages` : "") },
  { key: "label", title: "Label", min: 70, fr: 0.6, get: (f) => [f.label, f.replay_of ? "replay of #" + f.replay_of : ""].filter(Boolean).join(" · ") },
  { key: "client", title: "Client", min: 130, fr: 0.6, get: (f) => f.client || "" },
];
const DEFAULT_COLS = ["id", "time", "method", "status", "host", "path", "type", "size", "duration", "protocol", "label"];
const LS_KEY = "peephole.columns";

export function loadColumns() {
  try {
    const v = JSON.parse(localStorage.getItem(LS_KEY));
    if (Array.isArray(v) && v.length) return v.filter((k) => COLUMNS.some((c) => c.key === k));
  } catch {
    /* default */
  }
  return DEFAULT_COLS.slice();
}

export function saveColumns(cols) {
  try {
    localStorage.setItem(LS_KEY, JSON.stringify(cols));
  } catch {
    /* private mode */
  }
}

export function ColumnMenu({ cols, setCols }) {
  const [open, setOpen] = useState(false);
  const ref = useRef();
  useEffect(() => {
    if (!open) return;
    const close = (e) => {
      if (ref.current && !ref.current.contains(e.target)) setOpen(false);
    };
    document.addEventListener("mousedown", close);
    return () => document.removeEventListener("mousedown", close);
  }, [open]);
  const toggle = (k) => {
    const next = cols.includes(k) ? cols.filter((c) => c !== k) : COLUMNS.map((c) => c.key).filter((c) => c === k || cols.includes(c));
    if (next.length === 0) return;
    setCols(next);
    saveColumns(next);
  };
  return html`<div class="menu" ref=${ref}>
    <button type="button" data-testid="columns-button" onClick=${() => setOpen(!open)} title="Choose the columns of the list">Columns ▾</button>
    ${open &&
    html`<div class="menu-pop" data-testid="columns-menu">
      ${COLUMNS.map(
        (c) => html`<label key=${c.key}><input type="checkbox" checked=${cols.includes(c.key)} onChange=${() => toggle(c.key)} /> ${c.title === "#" ? "#id" : c.title}</label>`
      )}
      <button type="button" class="link" onClick=${() => { setCols(DEFAULT_COLS.slice()); saveColumns(DEFAULT_COLS); }}>reset</button>
    </div>`}
  </div>`;
}

function connText(c) {
  const parts = [];
  parts.push(c.target || c.sni || "");
  if (c.sni && c.target && !c.target.startsWith(c.sni)) parts.push("sni " + c.sni);
  if (c.protocol) parts.push(c.protocol);
  if (c.decision) parts.push(c.decision + (c.reason ? " (" + c.reason + ")" : ""));
  else if (c.reason) parts.push(c.reason);
  if (c.error) parts.push("error: " + c.error);
  if (c.close_reason) parts.push("closed: " + c.close_reason);
  parts.push(`↑${humanBytes(c.bytes_up || 0)} ↓${humanBytes(c.bytes_down || 0)}`);
  if (c.duration_ms !== null && c.duration_ms !== undefined) parts.push(ms(c.duration_ms));
  return parts.filter(Boolean).join("  ·  ");
}

function FlowRow({ f, cols, top, selected, onSelect }) {
  const err = !!f.error;
  const cls = "row flow-row" + (err ? " err" : "") + (selected ? " sel" : "") + (f.replay_of ? " replay" : "");
  return html`<div class=${cls} style=${"top:" + top + "px"} data-testid="flow-row" data-id=${f.id} onMouseDown=${() => onSelect(rowKey(f))} title=${err ? f.error : undefined}>
    ${cols.map((c) => {
      const v = c.get(f);
      let k = "cell " + (c.cls || "") + " c-" + c.key;
      if (c.key === "status") k += " " + statusClass(f.status) + (err ? " st-err" : "");
      return html`<span class=${k} title=${c.title2 ? c.title2(f) : String(v)}>${v}</span>`;
    })}
  </div>`;
}

function ConnRow({ c, cols, top, selected, onSelect }) {
  // the leading #id and time columns line up with the flows; the rest is
  // one cell saying what happened
  const lead = [];
  for (const col of cols) {
    if (col.key === "id") lead.push(html`<span class="cell num c-id" title=${"connection " + c.conn_id}>c${c.conn_id}</span>`);
    else if (col.key === "time") lead.push(html`<span class="cell c-time">${clock(c.time_us, c.time)}</span>`);
    else break;
  }
  return html`<div class=${"row conn-row kind-" + c.kind + (selected ? " sel" : "")} style=${"top:" + top + "px"} data-testid="conn-row" data-conn-id=${c.conn_id} onMouseDown=${() => onSelect(rowKey(c))} title=${connText(c)}>
    ${lead}<span class="cell conn-cell" style=${`grid-column:${lead.length + 1} / -1`}><span class="badge">${c.kind}</span>${connText(c)}</span>
  </div>`;
}

export function FlowList({ cols, selected, onSelect, scrollToSel }) {
  const ref = useRef();
  const [, force] = useReducer((x) => x + 1, 0);
  const st = useRef({ stick: true, baseline: 0, top: 0, height: 600, lastSel: null, resets: 0 });
  const s = st.current;

  useEffect(() => store.subscribe(force), []);
  useEffect(() => {
    const el = ref.current;
    const ro = new ResizeObserver(() => {
      s.height = el.clientHeight;
      force();
    });
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  if (s.resets !== store.resets) {
    // new rows for a new filter: start at the bottom again
    s.resets = store.resets;
    s.stick = true;
    s.baseline = store.appended;
    store.pendingPrepend = 0;
  }
  const n = store.rows.length;
  const total = n * ROW_H;
  const headH = ROW_H + 2;
  const view = Math.max(0, s.height - headH);
  let top = s.stick ? Math.max(0, total - view) : s.top;
  if (!s.stick && store.pendingPrepend) top += store.pendingPrepend * ROW_H;
  const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
  const last = Math.min(n, Math.ceil((top + view) / ROW_H) + OVERSCAN);

  useLayoutEffect(() => {
    const el = ref.current;
    if (store.pendingPrepend) {
      if (!s.stick) {
        el.scrollTop += store.pendingPrepend * ROW_H;
        s.top = el.scrollTop;
      }
      store.pendingPrepend = 0;
    }
    if (s.stick) {
      el.scrollTop = el.scrollHeight;
      s.baseline = store.appended;
    }
    // keep the selected row in view when the keyboard moves it
    // (until it is found: ?flow=ID may name a row of a page still loading)
    if (scrollToSel && selected && selected !== s.lastSel) {
      const i = store.indexOfKey(selected);
      if (i >= 0) {
        const y = i * ROW_H;
        if (y < el.scrollTop - view || y > el.scrollTop + 2 * view) el.scrollTop = y - view / 2; // far: centre it
        else if (y < el.scrollTop) el.scrollTop = y;
        else if (y + ROW_H > el.scrollTop + view) el.scrollTop = y + ROW_H - view;
        s.lastSel = selected;
      } else if (store.complete) s.lastSel = selected;
    } else s.lastSel = selected;
  });

  const onScroll = () => {
    const el = ref.current;
    s.top = el.scrollTop;
    const atBottom = el.scrollTop + el.clientHeight >= el.scrollHeight - ROW_H / 2;
    if (atBottom && !s.stick) {
      s.stick = true;
      s.baseline = store.appended;
    } else if (!atBottom && s.stick) {
      s.stick = false;
      s.baseline = store.appended;
    }
    force();
  };

  const toBottom = () => {
    s.stick = true;
    force();
  };

  const colDefs = colDefsOf(cols);
  const rows = [];
  for (let i = first; i < last; i++) {
    const r = store.rows[i];
    const key = rowKey(r);
    rows.push(
      r._conn
        ? html`<${ConnRow} key=${key} c=${r} cols=${colDefs} top=${i * ROW_H} selected=${key === selected} onSelect=${onSelect} />`
        : html`<${FlowRow} key=${key} f=${r} cols=${colDefs} top=${i * ROW_H} selected=${key === selected} onSelect=${onSelect} />`
    );
  }
  // every row is its own grid: tracks must not depend on content, so each
  // is a fixed minimum that only grows by its share of the spare width
  const template = colDefs.map((c) => (c.fr ? `minmax(${c.min}px, ${c.fr}fr)` : c.min + "px")).join(" ");
  const minw = colDefs.reduce((a, c) => a + c.min, 0);
  const fresh = s.stick ? 0 : store.appended - s.baseline;
  return html`<div class="flow-wrap">
    <div class="flow-list" ref=${ref} onScroll=${onScroll} data-testid="flow-list" style=${`--cols:${template};--minw:${minw}px`} tabindex="0">
      <div class="row head">${colDefs.map((c) => html`<span class=${"cell " + (c.cls || "")}>${c.title}</span>`)}</div>
      <div class="rows" style=${"height:" + total + "px"}>
        ${rows}
        ${n === 0 &&
        html`<div class="empty">${store.loading ? "loading…" : store.error ? "" : store.filter ? "no flows match this filter (yet)" : "no flows yet — send traffic through the proxy"}</div>`}
      </div>
    </div>
    ${fresh > 0 && html`<button type="button" class="new-rows" data-testid="new-rows" onClick=${toBottom}>↓ ${fresh} new</button>`}
  </div>`;
}

function colDefsOf(cols) {
  return cols.map((k) => COLUMNS.find((c) => c.key === k)).filter(Boolean);
}
