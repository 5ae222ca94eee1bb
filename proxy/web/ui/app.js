// peephole web UI: the shell (header bar, views, URL state, keyboard).
import { render } from "/vendor/preact.mjs";
import { useEffect, useReducer, useRef, useState, useCallback } from "/vendor/preact-hooks.mjs";
import { html, loadSession, session, post, qs, downloadBlob, onAuthLost, memo } from "./api.js";
import { store, rowKey, MAX_FLOWS } from "./store.js";
import { FlowList, ColumnMenu, loadColumns } from "./flows.js";
import { FlowDetail as FlowDetailView, ConnDetail } from "./detail.js";

const FlowDetail = memo(FlowDetailView);
import { Domains, Passthrough } from "./domains.js";
import { Streams } from "./streams.js";

const VIEWS = [
  ["flows", "Flows"],
  ["domains", "Domains"],
  ["streams", "Streams"],
  ["passthrough", "Passthrough"],
];

function readURL() {
  const p = new URLSearchParams(location.search);
  const flow = p.get("flow");
  return {
    filter: p.get("filter") || "",
    view: VIEWS.some(([v]) => v === p.get("view")) ? p.get("view") : "flows",
    sel: flow && /^\d+$/.test(flow) ? "f:" + flow : null,
    stream: /^\d+$/.test(p.get("stream") || "") ? Number(p.get("stream")) : null,
  };
}

function writeURL({ filter, view, sel, stream }) {
  const p = new URLSearchParams();
  if (filter) p.set("filter", filter);
  if (view && view !== "flows") p.set("view", view);
  if (sel && sel.startsWith("f:")) p.set("flow", sel.slice(2));
  if (view === "streams" && stream) p.set("stream", stream);
  const s = p.toString();
  const url = location.pathname + (s ? "?" + s : "") + location.hash;
  if (url !== location.pathname + location.search + location.hash) history.replaceState(null, "", url);
}

function useStore() {
  const [, force] = useReducer((x) => x + 1, 0);
  useEffect(() => store.subscribe(force), []);
  return store;
}

function LiveIndicator() {
  const s = useStore();
  const state = s.live ? "live" : s.es ? "connecting" : "off";
  return html`<span class=${"live is-" + state} data-testid="live-indicator" data-live=${s.live ? "1" : "0"} title=${s.live ? "connected: new flows arrive as they happen" : "not connected to the event stream (retrying)"}>
    <span class="dot"></span>${s.live ? "live" : state}
  </span>`;
}

function FlowCount() {
  const s = useStore();
  const conns = s.showConns ? s.rows.length - s.flows.length : 0;
  const title = s.loading ? "still loading older flows" : s.dropped ? `the page keeps the newest ${MAX_FLOWS.toLocaleString()} flows; use a filter to reach older ones` : "";
  return html`<span class="count" data-testid="flow-count" data-count=${s.flows.length} title=${title}>${s.dropped ? "newest " : ""}
    ${s.flows.length.toLocaleString()} flow${s.flows.length === 1 ? "" : "s"}${conns > 0 ? ` + ${conns} conn` : ""}${s.loading ? "…" : ""}
  </span>`;
}

const FILTER_HELP = [
  ["~d RE", "host"],
  ["~u RE", "full URL (a bare word means ~u too)"],
  ["~m RE", "method"],
  ["~c CODE", "response status"],
  ["~t RE  ~tq ~ts", "content type: either, request, response"],
  ["~h RE  ~hq ~hs", "a header line \"Name: value\""],
  ["~b RE  ~bq ~bs", "a body (decoded), WebSocket messages too"],
  ["~s / ~q", "has a response / has none"],
  ["~e", "failed (an error was recorded)"],
  ["~ws  ~h2", "WebSocket; HTTP/2"],
  ["~proto NAME", "label, connection protocol or scheme"],
  ["! & | ( )", "not, and, or, grouping; two side by side mean &"],
];

function FilterHelp() {
  const [open, setOpen] = useState(false);
  return html`<span class="menu">
    <button type="button" class="help-btn" title="Filter syntax" data-testid="filter-help" onClick=${() => setOpen(!open)}>?</button>
    ${open &&
    html`<div class="menu-pop help-pop" onMouseLeave=${() => setOpen(false)}>
      <div class="note">mitmproxy's filter syntax, run by peephole on the server (regexes are case-insensitive)</div>
      <table class="kv mono">
        <tbody>${FILTER_HELP.map(([k, v]) => html`<tr><th>${k}</th><td>${v}</td></tr>`)}</tbody>
      </table>
      <div class="note">e.g. <code>~d api & ~c 500</code> · <code>~ts json & ~bs token</code> · <code>!~d cdn</code></div>
    </div>`}
  </span>`;
}

function FilterBox({ value, onInput }) {
  const s = useStore();
  // "... at position N": a caret under the place, as the CLI prints it
  let caret = null;
  const m = s.error && /position (\d+)/.exec(s.error);
  if (m && s.filter) {
    const lead = value.length - value.trimStart().length;
    const pos = Number(m[1]) + lead;
    if (pos <= value.length + 1) caret = html`<pre class="caret">${value + "\n" + " ".repeat(pos) + "^"}</pre>`;
  }
  return html`<div class="filter">
    <input type="search" class="mono" data-testid="filter-input" placeholder="filter, e.g. ~d example.com & ~c 404 | ~t json & !~b token" value=${value} onInput=${(e) => onInput(e.target.value)} spellcheck="false" autocomplete="off" title="The filter language of peephole requests --filter, evaluated by the server (body filters included). Connection rows (failed TLS, passed-through streams) show only while the filter is empty." />
    ${s.error && html`<div class="filter-error" data-testid="filter-error">${s.error}${caret}</div>`}
  </div><${FilterHelp} />`;
}

function HarButton({ filter }) {
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState("");
  const click = async () => {
    setBusy(true);
    setErr("");
    try {
      const r = await post("/api/har?" + qs({ filter }));
      downloadBlob(await r.blob(), "peephole.har");
    } catch (e) {
      setErr(e.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<button type="button" data-testid="har-button" onClick=${click} disabled=${busy} title=${err || (filter ? "Download the flows matching the filter as HAR" : "Download all flows as HAR")}>${busy ? "HAR…" : "HAR"}</button>${err && html`<span class="error small">${err}</span>`}`;
}

function ConnNote() {
  const s = useStore();
  return html`<span class="note" data-testid="conn-note" title="Failed TLS handshakes, failed upstream connections and passed-through streams get rows of their own, merged by time. The filter language applies to HTTP exchanges only, so these rows show only while the filter box is empty.">
    ${s.showConns ? "connection rows shown (filter empty)" : "connection rows hidden while filtering"}<span class="info">i</span>
  </span>`;
}

// The detail re-renders when its flow changed (response arrived, more
// WebSocket messages), not on every event of the list.
function DetailHost({ sel, onClose, onOpen }) {
  const s = useStore();
  const f = s.rowByKey(sel);
  const key = f ? `${f.status}|${f.total_ms}|${f.websocket_messages}|${f.error}|${f.resp_size}` : "";
  return html`<${FlowDetail} id=${Number(sel.slice(2))} summary=${f} refreshKey=${key} onClose=${onClose} onOpen=${onOpen} />`;
}

function App() {
  const init = useRef(readURL()).current;
  const [view, setView] = useState(init.view);
  const [filterText, setFilterText] = useState(init.filter);
  const [filter, setFilter] = useState(init.filter);
  const [sel, setSel] = useState(init.sel);
  const [streamSel, setStreamSel] = useState(init.stream);
  const [cols, setCols] = useState(loadColumns);
  const [kbd, setKbd] = useState(!!init.sel); // scroll the selection into view (keyboard, ?flow=)
  const [authLost, setAuthLost] = useState(false);

  useEffect(() => onAuthLost(() => setAuthLost(true)), []);

  // debounce the box into the filter the store runs
  useEffect(() => {
    const t = setTimeout(() => setFilter(filterText.trim()), 250);
    return () => clearTimeout(t);
  }, [filterText]);
  const first = useRef(true);
  useEffect(() => {
    // main() started the store with the URL's filter already
    if (first.current && filter === store.filter && store.gen > 0) {
      first.current = false;
      return;
    }
    first.current = false;
    store.start(filter);
  }, [filter]);
  useEffect(() => writeURL({ filter: filterText.trim(), view, sel, stream: streamSel }), [filterText, view, sel, streamSel]);

  const select = useCallback((key) => {
    setKbd(false);
    setSel(key);
  }, []);

  // keyboard: Esc closes the detail, arrows move through the list
  useEffect(() => {
    const onKey = (e) => {
      if (view !== "flows") return;
      const t = e.target;
      if (t && (t.tagName === "INPUT" || (t.tagName === "TEXTAREA" && !t.readOnly) || t.isContentEditable)) {
        if (e.key === "Escape" && t.dataset.testid === "filter-input") t.blur();
        return;
      }
      if (e.key === "Escape" && sel) {
        setSel(null);
        e.preventDefault();
      } else if ((e.key === "ArrowDown" || e.key === "ArrowUp" || e.key === "j" || e.key === "k") && store.rows.length) {
        const down = e.key === "ArrowDown" || e.key === "j";
        let i = store.indexOfKey(sel);
        if (i < 0) i = down ? -1 : store.rows.length;
        i = Math.max(0, Math.min(store.rows.length - 1, i + (down ? 1 : -1)));
        setKbd(true);
        setSel(rowKey(store.rows[i]));
        e.preventDefault();
      } else if ((e.key === "Home" || e.key === "End") && store.rows.length && sel) {
        setKbd(true);
        setSel(rowKey(store.rows[e.key === "Home" ? 0 : store.rows.length - 1]));
        e.preventDefault();
      }
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [view, sel]);

  const close = useCallback(() => setSel(null), []);
  const [detailW, setDetailW] = useState(() => {
    const w = Number(localStorage.getItem("peephole.detailWidth"));
    return w >= 320 ? w : Math.round(Math.max(420, window.innerWidth * 0.5));
  });
  const startDrag = (e) => {
    e.preventDefault();
    const x0 = e.clientX,
      w0 = detailW;
    let w = w0;
    const move = (ev) => {
      w = Math.max(320, Math.min(window.innerWidth - 240, w0 + x0 - ev.clientX));
      setDetailW(w);
    };
    const up = () => {
      document.removeEventListener("mousemove", move);
      document.removeEventListener("mouseup", up);
      document.body.classList.remove("dragging");
      try {
        localStorage.setItem("peephole.detailWidth", String(Math.round(w)));
      } catch {
        /* private mode */
      }
    };
    document.body.classList.add("dragging");
    document.addEventListener("mousemove", move);
    document.addEventListener("mouseup", up);
  };
  const openFlow = useCallback((id) => {
    setKbd(true);
    setSel("f:" + id);
  }, []);
  let detail = null;
  if (sel && sel.startsWith("f:")) detail = html`<${DetailHost} sel=${sel} onClose=${close} onOpen=${openFlow} />`;
  else if (sel) {
    const c = store.rowByKey(sel);
    if (c)
      detail = html`<${ConnDetail} c=${c} onClose=${close} onOpenStream=${(id) => {
        setStreamSel(id);
        setView("streams");
      }} />`;
  }

  return html`<div class="app">
    <header class="bar">
      <span class="brand" title=${`peephole ${session.version || ""} · ${session.db || ""}${session.readonly ? " · read-only" : ""}`}>peephole</span>
      <nav class="tabs">
        ${VIEWS.map(([v, label]) => html`<button type="button" class=${v === view ? "on" : ""} data-testid=${"tab-" + v} onClick=${() => setView(v)}>${label}</button>`)}
      </nav>
      <${FilterBox} value=${filterText} onInput=${(v) => {
        setFilterText(v);
        if (view !== "flows") setView("flows");
      }} />
      <${HarButton} filter=${filter} />
      <${LiveIndicator} />
      <${FlowCount} />
      ${session.readonly && html`<span class="badge ro" title="peephole web: a capture served read-only; replay and retry are off">read-only</span>`}
    </header>
    ${authLost && html`<div class="banner error">Not signed in (401): open the link peephole printed (with ?token=) again.</div>`}
    <main class=${"main view-" + view}>
      ${view === "flows" &&
      html`<div class=${"flows-view" + (detail ? " with-detail" : "")}>
        <div class="list-pane">
          <div class="list-bar">
            <${ColumnMenu} cols=${cols} setCols=${setCols} />
            <${ConnNote} />
            <span class="note right">↑↓ move · Esc closes</span>
          </div>
          <${FlowList} cols=${cols} selected=${sel} onSelect=${select} scrollToSel=${kbd} />
        </div>
        ${detail &&
        html`<div class="splitter" title="Drag to resize" onMouseDown=${startDrag}></div>
          <div class="detail-wrap" style=${`width:${detailW}px`}>${detail}</div>`}
      </div>`}
      ${view === "domains" && html`<${Domains} />`}
      ${view === "streams" && html`<${Streams} sel=${streamSel} setSel=${setStreamSel} />`}
      ${view === "passthrough" && html`<${Passthrough} />`}
    </main>
  </div>`;
}

async function main() {
  const root = document.getElementById("app");
  // the flows start loading while the session is asked for (and before
  // Preact's first effects run)
  store.start(readURL().filter.trim());
  try {
    await loadSession();
  } catch (e) {
    render(html`<div class="banner error">Cannot start: ${e.message}. Open the link peephole printed (with ?token=).</div>`, root);
    return;
  }
  document.title = "peephole" + (session.readonly ? " (read-only)" : "");
  render(html`<${App} />`, root);
}

main();
