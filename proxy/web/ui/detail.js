// peephole web UI: one exchange (or connection row) in detail.
import { useEffect, useMemo, useState } from "/vendor/preact-hooks.mjs";
import { html, getJSON, getText, post, session, copyText, humanBytes, ms, clock, localTime, statusClass, cellText } from "./api.js";
import { JsonTree, TextView, ImagePreview, HexView, tryJSON, lineDiff, DiffLines } from "./viewers.js";

const TABS = ["request", "response", "timing", "connection", "websocket", "replay"];

function Headers({ list, title }) {
  if (!Array.isArray(list) || list.length === 0) return title === "trailers" ? null : html`<div class="note">no headers</div>`;
  return html`<table class="kv headers mono" data-testid=${"headers-" + title}>
    <tbody>
      ${list.map((hd, i) => html`<tr key=${i}><th>${hd.name}</th><td>${hd.value}</td></tr>`)}
    </tbody>
  </table>`;
}

function headerValue(list, name) {
  if (!Array.isArray(list)) return null;
  const x = list.find((hd) => hd.name.toLowerCase() === name);
  return x ? x.value : null;
}

function Body({ d, side, raw }) {
  const p = side + "_body_";
  const captured = d[p + "captured"];
  const text = d[p + "text"];
  const size = d[p + "size"];
  const truncated = d[p + "truncated"];
  const type = d[p + "type"] || headerValue(d[side + "_headers"], "content-type") || (side === "resp" ? d.content_type : "") || "";
  const url = `/api/flows/${d.id}/body?side=${side}${raw ? "&raw=1" : ""}`;
  const json = useMemo(() => tryJSON(text, type), [text, type]);
  const isImage = /^image\//i.test(type) && !/svg/i.test(type);
  const auto = isImage && text === null ? "image" : json !== undefined ? "json" : text !== null && text !== undefined ? "text" : "hex";
  const [mode, setMode] = useState(auto);
  useEffect(() => setMode(auto), [d.id, side, raw, auto]);

  if ((captured === null || captured === undefined) && !size) return html`<div class="note">no body</div>`;
  if (captured === null || captured === undefined)
    return html`<div class="note">body of ${humanBytes(size)} not captured</div>`;
  const info = [
    type,
    humanBytes(size) + (captured !== size ? ` (${humanBytes(captured)} stored)` : ""),
    truncated ? "truncated" : "",
    d[p + "encoding"] ? "encoding: " + d[p + "encoding"] : "",
    d[p + "decoding"] || "",
    raw ? "raw (as stored)" : "",
  ].filter(Boolean);
  const modes = [
    json !== undefined && "json",
    text !== null && text !== undefined && "text",
    isImage && "image",
    "hex",
  ].filter(Boolean);
  let view;
  if (mode === "json" && json !== undefined) view = html`<${JsonTree} value=${json} />`;
  else if (mode === "text" && text !== null && text !== undefined) view = html`<${TextView} text=${text} type=${type} />`;
  else if (mode === "image") view = html`<${ImagePreview} src=${url} type=${type} />`;
  else view = html`<${HexView} url=${url} />`;
  return html`<div class="body">
    <div class="body-bar">
      <span class="note">${info.join(" · ")}</span>
      <span class="seg">
        ${modes.map((m) => html`<button type="button" class=${m === mode ? "on" : ""} data-testid=${"view-" + side + "-" + m} onClick=${() => setMode(m)}>${m}</button>`)}
      </span>
    </div>
    ${view}
  </div>`;
}

function Waterfall({ t, reused }) {
  if (!t) return html`<div class="note">no timing recorded</div>`;
  const dns = t.dns_ms, conn = t.connect_ms, tls = t.tls_ms, ttfb = t.ttfb_ms, total = t.total_ms;
  const n = (v) => (v === null || v === undefined ? null : Number(v));
  let at = 0;
  const bars = [];
  const seq = (name, v) => {
    v = n(v);
    if (v === null) {
      bars.push({ name, v: null });
      return;
    }
    bars.push({ name, start: at, v });
    at += v;
  };
  seq("dns", dns);
  seq("connect", conn);
  seq("tls", tls);
  const setup = at;
  const tt = n(ttfb);
  bars.push(tt === null ? { name: "ttfb", v: null } : { name: "ttfb", start: 0, v: tt, note: "request start → first response byte" });
  const tot = n(total);
  if (tot !== null && tt !== null && tot >= tt) bars.push({ name: "download", start: tt, v: tot - tt });
  bars.push(tot === null ? { name: "total", v: null } : { name: "total", start: 0, v: tot });
  const span = Math.max(tot || 0, tt || 0, setup, 0.001);
  return html`<div class="waterfall" data-testid="waterfall">
    ${bars.map(
      (b) => html`<div class="wf-row">
        <span class="wf-name">${b.name}</span>
        <span class="wf-track">
          ${b.v !== null && html`<span class=${"wf-bar wf-" + b.name} style=${`left:${(b.start / span) * 100}%;width:${Math.max(0.3, (b.v / span) * 100)}%`} title=${b.note || ""}></span>`}
        </span>
        <span class="wf-val">${b.v === null ? "—" : ms(b.v)}</span>
      </div>`
    )}
    <div class="note">${reused ? "the upstream connection was reused: no dns, connect or tls for this exchange. " : ""}dns, connect and tls set up the upstream connection; ttfb and total count from the start of the request.</div>
  </div>`;
}

const CONN_GROUPS = [
  ["Connection", /^(id|listener|listener_target|protocol|client_ip|client_port|target_host|target_port|server_ip|server_port|named_by|t_accept_us|t_close_us|t_upstream_connected_us|close_reason|closed_by|error|bytes_.*|reads_.*)$/],
  ["TLS", /^(sni|alpn.*|decision.*|tls_.*)$/],
  ["Origin certificate", /^(upstream_cert_.*|verify_error)$/],
  ["TCP (at close)", /^tcp_/],
  ["mmTLS", /^mmtls_/],
];

const LABELS = {
  tls_client: "TLS client ↔ proxy",
  tls_server: "TLS proxy ↔ origin",
  alpn_client: "ALPN offered by client",
  alpn_server: "ALPN agreed with origin",
  alpn: "ALPN to client",
  sni: "SNI",
  decision: "decision",
  decision_reason: "why",
  upstream_cert_subject: "subject",
  upstream_cert_issuer: "issuer",
  upstream_cert_sha256: "SHA-256",
  verify_error: "verify error",
  bytes_from_client: "client → proxy",
  bytes_to_client: "proxy → client",
  bytes_to_server: "proxy → origin",
  bytes_from_server: "origin → proxy",
};

function fmtConnVal(k, v) {
  if ((k === "time" || /_time$/.test(k)) && typeof v === "string" && /^\d{4}-/.test(v)) {
    const d = new Date(v);
    return isNaN(d) ? v : localTime(v) + "." + String(d.getMilliseconds()).padStart(3, "0");
  }
  if (/_us$/.test(k) && /^t_/.test(k) && typeof v === "number") return localTime(new Date(v / 1000).toISOString()) + "." + String(Math.floor((v / 1000) % 1000)).padStart(3, "0");
  if (/^bytes_/.test(k) && typeof v === "number") return `${humanBytes(v)} (${v})`;
  return cellText(v);
}

export function KVGroups({ obj, groups }) {
  if (!obj) return html`<div class="note">connection not recorded (yet)</div>`;
  const used = new Set();
  const sections = [];
  for (const [title, re] of groups) {
    const keys = Object.keys(obj).filter((k) => re.test(k) && obj[k] !== null && obj[k] !== "" && !used.has(k));
    keys.forEach((k) => used.add(k));
    if (keys.length) sections.push([title, keys]);
  }
  const rest = Object.keys(obj).filter((k) => !used.has(k) && obj[k] !== null && obj[k] !== "" && k !== "_conn" && k !== "time_us" && typeof obj[k] !== "object");
  if (rest.length) sections.push(["Other", rest]);
  return html`<div class="kv-groups">
    ${sections.map(
      ([title, keys]) => html`<h4>${title}</h4>
        <table class="kv mono">
          <tbody>${keys.map((k) => html`<tr><th title=${k}>${LABELS[k] || k}</th><td>${fmtConnVal(k, obj[k])}</td></tr>`)}</tbody>
        </table>`
    )}
  </div>`;
}

const OPCODES = { 0: "cont", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong" };

function WsMessages({ list, t0 }) {
  if (!Array.isArray(list) || list.length === 0) return html`<div class="note">no WebSocket messages</div>`;
  return html`<table class="grid ws mono" data-testid="ws-messages">
    <thead><tr><th></th><th>+ms</th><th>opcode</th><th>size</th><th>data</th></tr></thead>
    <tbody>
      ${list.map((m, i) => {
        const send = m.dir === "send";
        let data = m.text !== undefined && m.text !== null ? m.text : m.base64 !== undefined ? "base64:" + m.base64 : "";
        if (m.opcode === 8) data = `close ${m.close_code ?? ""} ${m.close_reason ?? ""}`.trim();
        const flags = [m.compressed && "deflate", m.truncated && "truncated", m.error].filter(Boolean).join(", ");
        return html`<tr key=${i} class=${send ? "ws-send" : "ws-recv"}>
          <td class="ws-dir" title=${send ? "client → server" : "server → client"}>${send ? "↑" : "↓"}</td>
          <td class="num">${t0 ? ((m.t_us - t0) / 1000).toFixed(1) : clock(m.t_us)}</td>
          <td>${OPCODES[m.opcode] || m.opcode}</td>
          <td class="num" title=${"on the wire: " + (m.wire_bytes ?? "?") + " B"}>${m.size}</td>
          <td class="ws-data" title=${flags}>${data.length > 300 ? data.slice(0, 300) + "…" : data}${flags && html` <span class="note">(${flags})</span>`}</td>
        </tr>`;
      })}
    </tbody>
  </table>`;
}

// ---- replay diff ----

function headerDiff(a, b) {
  const group = (l) => {
    const m = new Map();
    for (const hd of l || []) {
      const k = hd.name.toLowerCase();
      m.set(k, m.has(k) ? m.get(k) + "\n" + hd.value : hd.value);
    }
    return m;
  };
  const A = group(a), B = group(b);
  const out = [];
  for (const [k, v] of A) {
    if (!B.has(k)) out.push(["-", k, v]);
    else if (B.get(k) !== v) out.push(["~", k, v, B.get(k)]);
  }
  for (const [k, v] of B) if (!A.has(k)) out.push(["+", k, v]);
  return out;
}

function diffable(d) {
  const t = d.resp_body_text;
  if (t === null || t === undefined) return null;
  const j = tryJSON(t, d.resp_body_type || d.content_type);
  return j !== undefined ? JSON.stringify(j, null, 2) : t;
}

const totalOf = (x) => (x.timing && x.timing.total_ms !== null && x.timing.total_ms !== undefined ? x.timing.total_ms : x.total_ms ?? (x.total_us !== null && x.total_us !== undefined ? x.total_us / 1000 : null));

function ReplayDiff({ a, b, onOpen }) {
  const hd = headerDiff(a.resp_headers, b.resp_headers);
  const ta = diffable(a), tb = diffable(b);
  return html`<div class="replay-diff" data-testid="replay-diff" data-replay-id=${b.id}>
    <h4>replay #${b.id} of #${a.id} ${onOpen && html`<button type="button" class="link" data-testid="open-replay" onClick=${() => onOpen(b.id)}>open #${b.id}</button>`}</h4>
    <table class="kv mono">
      <tbody>
        <tr><th>status</th><td><span class=${statusClass(a.status)}>${a.status ?? a.error ?? "—"}</span> → <span class=${statusClass(b.status)}>${b.status ?? b.error ?? "—"}</span>${a.status === b.status ? " (same)" : ""}</td></tr>
        <tr><th>size</th><td>${humanBytes(a.resp_body_size ?? a.resp_size)} → ${humanBytes(b.resp_body_size ?? b.resp_size)}</td></tr>
        <tr><th>time</th><td>${ms(totalOf(a))} → ${ms(totalOf(b))}</td></tr>
      </tbody>
    </table>
    <h4>response headers</h4>
    ${hd.length === 0
      ? html`<div class="note">same headers</div>`
      : html`<pre class="diff mono">${hd.map(([op, k, v, v2]) =>
          op === "~"
            ? html`<div class="d-chg">~ ${k}: ${v} → ${v2}</div>`
            : html`<div class=${op === "+" ? "d-add" : "d-del"}>${op} ${k}: ${v}</div>`
        )}</pre>`}
    <h4>response body</h4>
    ${ta === null || tb === null
      ? html`<div class="note">${ta === null && tb === null ? "no text bodies to compare" : "one body is not text"}${a.resp_body_captured !== b.resp_body_captured ? ` (${a.resp_body_captured ?? 0} vs ${b.resp_body_captured ?? 0} bytes)` : ""}</div>`
      : html`<${DiffLines} lines=${lineDiff(ta, tb)} />`}
  </div>`;
}

// ---- the panel ----

export function FlowDetail({ id, summary, refreshKey, onClose, onOpen }) {
  const [raw, setRaw] = useState(false);
  const [d, setD] = useState(null);
  const [err, setErr] = useState("");
  const [tab, setTab] = useState("response");
  const [curl, setCurl] = useState(null);
  const [replay, setReplay] = useState(null); // {busy} | {a,b} | {error}

  useEffect(() => {
    setCurl(null);
    setReplay(null);
  }, [id]);
  useEffect(() => {
    let live = true;
    setErr("");
    getJSON(`/api/flows/${id}${raw ? "?raw=1" : ""}`)
      .then((x) => live && setD(x))
      .catch((e) => live && (setErr(e.message), setD(null)));
    return () => {
      live = false;
    };
  }, [id, raw, refreshKey]);

  const doCurl = async () => {
    try {
      const t = await getText(`/api/flows/${id}/curl`);
      const ok = await copyText(t.trim());
      setCurl({ text: t.trim(), copied: ok });
    } catch (e) {
      setCurl({ text: "", error: e.message });
    }
  };

  const doReplay = async () => {
    setReplay({ busy: true });
    setTab("replay");
    try {
      const r = await post(`/api/flows/${id}/replay`);
      const { id: nid } = await r.json();
      const a = await getJSON(`/api/flows/${id}`);
      let b = null;
      for (let i = 0; i < 20 && !b; i++) {
        try {
          b = await getJSON(`/api/flows/${nid}`);
        } catch (e) {
          if (e.status !== 404) throw e;
          await new Promise((res) => setTimeout(res, 250));
        }
      }
      if (!b) throw new Error(`replay #${nid} was not recorded`);
      setReplay({ a, b });
    } catch (e) {
      setReplay({ error: e.message });
    }
  };

  const wsCount = d && Array.isArray(d.websocket_messages) ? d.websocket_messages.length : 0;
  const tabs = TABS.filter((t) => (t === "websocket" ? wsCount > 0 : t === "replay" ? replay !== null : true));
  const cur = tabs.includes(tab) ? tab : "response";
  const ro = session.readonly;

  return html`<aside class="detail" data-testid="detail" data-id=${id}>
    <div class="detail-head">
      <div class="detail-title mono" title=${d ? d.url : ""}>
        <b>#${id}</b> ${d ? html`${d.method} <span class=${statusClass(d.status)}>${d.status ?? ""}</span> ${d.url}` : summary ? `${summary.method} ${summary.url}` : ""}
      </div>
      <button type="button" class="close" title="Close (Esc)" data-testid="detail-close" onClick=${onClose}>×</button>
    </div>
    <div class="actions">
      <button type="button" data-testid="copy-curl" onClick=${doCurl}>Copy as curl</button>
      <button type="button" data-testid="replay-button" disabled=${ro || (replay && replay.busy)} title=${ro ? "read-only: this capture is served by `peephole web`; replay needs `peephole run --web`" : "Send this request again (peephole replay)"} onClick=${doReplay}>${replay && replay.busy ? "Replaying…" : "Replay"}</button>
      <a class="button" data-testid="download-body" href=${`/api/flows/${id}/body?side=resp&download=1${raw ? "&raw=1" : ""}`} download>Download body</a>
      <label class="raw-toggle" title="Show the bodies as stored, without decoding"><input type="checkbox" data-testid="raw-toggle" checked=${raw} onChange=${(e) => setRaw(e.target.checked)} /> raw</label>
    </div>
    ${curl &&
    html`<div class="curl-box">
      ${curl.error ? html`<div class="error">${curl.error}</div>` : html`<div class="note">${curl.copied ? "copied to the clipboard" : "select and copy:"}</div>`}
      <textarea readonly class="mono" data-testid="curl-text" rows=${Math.min(10, Math.max(2, curl.text.split("\n").length))} onFocus=${(e) => e.target.select()} value=${curl.text}></textarea>
    </div>`}
    <nav class="tabs small">
      ${tabs.map((t) => html`<button type="button" class=${t === cur ? "on" : ""} data-testid=${"detail-tab-" + t} onClick=${() => setTab(t)}>${t}${t === "websocket" ? ` (${wsCount})` : ""}</button>`)}
    </nav>
    <div class="detail-body">
      ${err && html`<div class="error">${err}</div>`}
      ${!d && !err && html`<div class="note">loading…</div>`}
      ${d && cur === "request" &&
      html`<section>
        <div class="line mono">${d.method} ${d.url} HTTP/${d.req_version || d.version || ""}</div>
        <div class="note">${localTime(d.time)} · client ${d.client || d.client_ip || ""}${d.label ? " · label " + d.label : ""}${d.replay_of ? " · replay of #" + d.replay_of : ""}${d.stream_id ? " · h2 stream " + d.stream_id : ""}</div>
        <h4>headers</h4>
        <${Headers} list=${d.req_headers} title="request" />
        <h4>body</h4>
        <${Body} d=${d} side="req" raw=${raw} />
        ${Array.isArray(d.req_trailers) && d.req_trailers.length > 0 && html`<h4>trailers</h4><${Headers} list=${d.req_trailers} title="trailers" />`}
      </section>`}
      ${d && cur === "response" &&
      html`<section>
        <div class="line mono">HTTP/${d.resp_version || d.up_version || d.version || ""} <span class=${statusClass(d.status)}>${d.status ?? ""}</span> ${d.resp_reason || ""}</div>
        ${d.error && html`<div class="error">error: ${d.error}</div>`}
        ${d.stream_end && html`<div class="note">stream ended: ${d.stream_end}</div>`}
        <h4>headers</h4>
        <${Headers} list=${d.resp_headers} title="response" />
        <h4>body</h4>
        <${Body} d=${d} side="resp" raw=${raw} />
        ${Array.isArray(d.resp_trailers) && d.resp_trailers.length > 0 && html`<h4>trailers</h4><${Headers} list=${d.resp_trailers} title="trailers" />`}
      </section>`}
      ${d && cur === "timing" && html`<section><${Waterfall} t=${d.timing || { total_ms: d.total_ms }} reused=${!!d.upstream_reused} /></section>`}
      ${d && cur === "connection" && html`<section><${KVGroups} obj=${d.connection} groups=${CONN_GROUPS} /></section>`}
      ${d && cur === "websocket" && html`<section><${WsMessages} list=${d.websocket_messages} t0=${d.time_us || d.t_start_us} /></section>`}
      ${cur === "replay" &&
      replay &&
      html`<section>
        ${replay.busy && html`<div class="note">replaying…</div>`}
        ${replay.error && html`<div class="error">replay failed: ${replay.error}</div>`}
        ${replay.b && html`<${ReplayDiff} a=${replay.a} b=${replay.b} onOpen=${onOpen} />`}
      </section>`}
    </div>
  </aside>`;
}

const CONN_ROW_GROUPS = [
  ["Connection", /^(kind|conn_id|seq|time|client|target|protocol|duration_ms|bytes_.*|close_reason)$/],
  ["Why", /^(sni|decision|reason|error)$/],
];

export function ConnDetail({ c, onClose, onOpenStream }) {
  return html`<aside class="detail" data-testid="detail" data-conn-id=${c.conn_id}>
    <div class="detail-head">
      <div class="detail-title mono"><b>connection ${c.conn_id}</b> ${c.kind} ${c.target || ""}</div>
      <button type="button" class="close" title="Close (Esc)" data-testid="detail-close" onClick=${onClose}>×</button>
    </div>
    <div class="detail-body">
      <div class="note">${c.kind === "stream" ? "passed through without interception: the bytes were relayed, not decrypted" : "this connection did not become an HTTP exchange"}</div>
      ${c.kind === "stream" && onOpenStream && html`<div class="actions"><button type="button" data-testid="open-stream" onClick=${() => onOpenStream(c.conn_id)}>Timeline and plots</button></div>`}
      <${KVGroups} obj=${c} groups=${CONN_ROW_GROUPS} />
    </div>
  </aside>`;
}
