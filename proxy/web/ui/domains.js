// peephole web UI: the domain catalogue and the passthrough list.
import { useEffect, useState } from "/vendor/preact-hooks.mjs";
import { html, getJSON, post, qs, session } from "./api.js";
import { SortTable, keysOf } from "./tables.js";

const DOMAIN_ORDER = ["domain", "name", "country", "asn", "ips", "ports", "protocols", "requests", "connections", "bytes_up", "bytes_down", "intercepted", "passed_through", "pinned", "named_by", "inferred", "first_seen", "last_seen"];
const DOMAIN_TITLES = { bytes_up: "bytes ↑", bytes_down: "bytes ↓", passed_through: "passed through", named_by: "learned from", intercepted: "intercepted" };

function useJSON(url, deps = []) {
  const [st, setSt] = useState({ loading: true });
  const reload = () => {
    setSt((s) => ({ ...s, loading: true }));
    getJSON(url)
      .then((data) => setSt({ data }))
      .catch((e) => setSt({ error: e.message }));
  };
  useEffect(reload, deps);
  return [st, reload];
}

export function Domains() {
  const [st, reload] = useJSON("/api/domains");
  const [q, setQ] = useState("");
  const rows = Array.isArray(st.data) ? st.data : [];
  const keys = keysOf(rows, DOMAIN_ORDER);
  const shown = q ? rows.filter((r) => JSON.stringify(r).toLowerCase().includes(q.toLowerCase())) : rows;
  return html`<div class="page">
    <div class="page-bar">
      <b>Domains</b> <span class="note">${rows.length} names · click a column to sort · "learned from" says how each name was learned (request Host, SNI, DNS…)</span>
      <input type="search" placeholder="find…" value=${q} onInput=${(e) => setQ(e.target.value)} />
      <button type="button" onClick=${reload}>Reload</button>
    </div>
    ${st.error && html`<div class="error">${st.error}</div>`}
    ${st.loading && !st.data && html`<div class="note">loading…</div>`}
    ${st.data && html`<div class="table-wrap"><${SortTable} rows=${shown} keys=${keys} titles=${DOMAIN_TITLES} testid="domains-table" rowClass=${(r) => (r.pinned ? "pinned" : "")} initialSort=${{ key: "requests", dir: -1 }} /></div>`}
  </div>`;
}

export function Passthrough() {
  const [st, reload] = useJSON("/api/passthrough");
  const [msg, setMsg] = useState({});
  const rows = Array.isArray(st.data) ? st.data : [];
  const keys = keysOf(rows, ["host", "port", "passing_through", "retry", "reason", "last_reason", "count", "rejections", "first_seen", "last_seen", "next_retry"]);
  const retry = async (r) => {
    const k = r.host + ":" + r.port;
    setMsg((m) => ({ ...m, [k]: "…" }));
    try {
      await post("/api/passthrough/retry?" + qs({ host: r.host, port: r.port }));
      setMsg((m) => ({ ...m, [k]: "will intercept again" }));
      reload();
    } catch (e) {
      setMsg((m) => ({ ...m, [k]: e.message }));
    }
  };
  const ro = session.readonly;
  return html`<div class="page">
    <div class="page-bar">
      <b>Passthrough</b> <span class="note">hosts that rejected interception (certificate pinning) and are passed through untouched until their retry time</span>
      <button type="button" onClick=${reload}>Reload</button>
    </div>
    ${st.error && html`<div class="error">${st.error}</div>`}
    ${st.loading && !st.data && html`<div class="note">loading…</div>`}
    ${st.data && rows.length === 0 && html`<div class="note">no host is being passed through</div>`}
    ${rows.length > 0 &&
    html`<div class="table-wrap"><${SortTable} rows=${rows} keys=${keys} testid="passthrough-table" titles=${{ passing_through: "passing through" }} extra=${(r) => {
      const k = r.host + ":" + r.port;
      return html`<button type="button" data-testid="retry-button" disabled=${ro} title=${ro ? "read-only: `peephole web` cannot change the proxy" : "Try intercepting this host again on its next connection"} onClick=${() => retry(r)}>Retry interception</button>${msg[k] && html`<div class="note">${msg[k]}</div>`}`;
    }} /></div>`}
  </div>`;
}
