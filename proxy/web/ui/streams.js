// peephole web UI: passed-through streams and one stream's timeline as
// uPlot plots.
import { useEffect, useRef, useState } from "/vendor/preact-hooks.mjs";
import uPlot from "/vendor/uplot.mjs";
import { html, getJSON, humanBytes } from "./api.js";
import { SortTable, keysOf } from "./tables.js";

const STREAM_ORDER = ["id", "start", "client", "target", "host", "sni", "named_by", "server_ip", "protocol", "duration_ms", "bytes_up", "bytes_down", "mmtls_records", "events", "events_capped", "closed_by", "close_reason"];
const BUCKET_MS = 100;
const UP = "#3b82f6";
const DOWN = "#f59e0b";
const PALETTE = ["#22c55e", "#a855f7", "#ef4444", "#06b6d4", "#eab308", "#ec4899", "#84cc16", "#64748b"];
// the two legs of a TCP sample (tcp_samples[].side) and how they are drawn
const LEGS = [
  { side: "client", label: "client ↔ proxy", color: "#22c55e" },
  { side: "origin", label: "proxy ↔ server", color: "#a855f7" },
];

function themeColor(name, fallback) {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

function axes(yLabel, yValues) {
  const fg = themeColor("--muted", "#888");
  const grid = themeColor("--grid", "rgba(128,128,128,0.2)");
  const ax = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
  return [
    { ...ax, label: "seconds since open", labelSize: 18 },
    { ...ax, label: yLabel, labelSize: 18, size: 84, ...(yValues ? { values: yValues } : {}) },
  ];
}

function Plot({ title, opts, data, note }) {
  const ref = useRef();
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const height = opts.height || 200;
    const u = new uPlot({ ...opts, width: Math.max(300, el.clientWidth), height }, data, el);
    const ro = new ResizeObserver(() => {
      const w = Math.max(300, el.clientWidth);
      if (Math.abs(w - u.width) > 2) u.setSize({ width: w, height });
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
    };
  }, [data, opts]);
  return html`<div class="plot" data-testid="stream-plot">
    <div class="plot-title">${title}</div>
    ${note && html`<div class="note">${note}</div>`}
    <div class="plot-canvas" ref=${ref}></div>
  </div>`;
}

const fmtBytes = (u, v) => (v === null || v === undefined ? "—" : humanBytes(Math.round(v)));
const bytesAxis = (u, splits) => splits.map((v) => humanBytes(v));

export function buildSeries(events) {
  const ev = events.slice().sort((a, b) => a.t_ms - b.t_ms);
  // (a) cumulative bytes, one point per event
  const xs = [0], cu = [0], cd = [0];
  let su = 0, sd = 0;
  for (const e of ev) {
    if (e.dir === "up") su += e.bytes || 0;
    else sd += e.bytes || 0;
    xs.push(e.t_ms / 1000);
    cu.push(su);
    cd.push(sd);
  }
  // (b) throughput per bucket: 100 ms, finer for a stream shorter than
  // 2 s, coarser past 20,000 buckets
  const tmax = ev.length ? ev[ev.length - 1].t_ms : 0;
  let bucketMs = Math.max(BUCKET_MS, tmax / 20000);
  if (tmax < 2000) bucketMs = [1, 2, 5, 10, 20, 50, 100].find((b) => tmax / b <= 60) || 100;
  const nb = Math.floor(tmax / bucketMs) + 1;
  const bx = new Array(nb + 1), bu = new Array(nb + 1).fill(0), bd = new Array(nb + 1).fill(0);
  for (let i = 0; i <= nb; i++) bx[i] = (i * bucketMs) / 1000;
  for (const e of ev) {
    const i = Math.min(nb - 1, Math.floor(e.t_ms / bucketMs));
    if (e.dir === "up") bu[i] += e.bytes || 0;
    else bd[i] += e.bytes || 0;
  }
  // (d) mmTLS records by type
  const types = [...new Set(ev.map((e) => e.mmtls_type).filter((t) => t !== null && t !== undefined && t !== ""))];
  const mm = ev.filter((e) => e.mmtls_type);
  return { ev, cum: [xs, cu, cd], buckets: [bx, bu, bd], bucketMs, types, mm };
}

// The TCP_INFO samples (s.tcp_samples: one object per leg and reading) as
// uPlot data on one x axis, seconds since open: for each key, a column per
// leg, null where that leg has no reading at that time (a leg closed
// early, the other not sampled). RTTs in ms.
export function buildSampleSeries(samples) {
  const sm = samples.slice().sort((a, b) => a.t_ms - b.t_ms);
  const xs = [...new Set(sm.map((p) => p.t_ms))].sort((a, b) => a - b);
  const idx = new Map(xs.map((x, i) => [x, i]));
  const col = (key, side, f = (v) => v) => {
    const ys = new Array(xs.length).fill(null);
    for (const p of sm) if (p.side === side && typeof p[key] === "number") ys[idx.get(p.t_ms)] = f(p[key]);
    return ys;
  };
  const ms = (v) => v / 1000;
  const legs = LEGS.filter((l) => sm.some((p) => p.side === l.side));
  const x = xs.map((t) => t / 1000);
  return {
    legs,
    count: sm.length,
    rtt: [x, ...legs.map((l) => col("rtt_us", l.side, ms))],
    flight: [x, ...legs.map((l) => col("snd_cwnd", l.side)), ...legs.map((l) => col("bytes_in_flight", l.side))],
    retrans: [x, ...legs.map((l) => col("total_retrans", l.side))],
  };
}

// RTT, cwnd and in-flight bytes, retransmissions over time, both legs.
function samplePlots(b) {
  const x = { scales: { x: { time: false } } };
  const line = (l, extra = {}) => ({ label: l.label, stroke: l.color, width: 1.5, spanGaps: true, points: { show: b.rtt[0].length < 200, size: 4 }, ...extra });
  const flightAxes = axes("cwnd (segments)");
  flightAxes[1].scale = "seg";
  flightAxes.push({ ...flightAxes[1], scale: "bytes", side: 1, label: "bytes in flight", grid: { show: false }, values: bytesAxis });
  return [
    html`<${Plot} key="rtt" title="RTT per leg (TCP_INFO samples)" data=${b.rtt} opts=${{
      ...x,
      axes: axes("ms"),
      series: [{ label: "s" }, ...b.legs.map((l) => line(l, { label: `rtt ${l.label}`, value: (u, v) => (v === null || v === undefined ? "—" : v.toFixed(3) + " ms") }))],
    }} />`,
    html`<${Plot} key="flight" title="congestion window and bytes in flight" note="cwnd in segments (solid, left axis); bytes sent and not yet acknowledged, less what was SACKed or deemed lost (dashed, right axis)" data=${b.flight} opts=${{
      scales: { x: { time: false }, seg: {}, bytes: {} },
      axes: flightAxes,
      series: [{ label: "s" }, ...b.legs.map((l) => line(l, { label: `cwnd ${l.label}`, scale: "seg" })), ...b.legs.map((l) => line(l, { label: `in flight ${l.label}`, scale: "bytes", dash: [6, 4], value: fmtBytes }))],
    }} />`,
    html`<${Plot} key="retrans" title="retransmissions (total so far, per leg)" data=${b.retrans} opts=${{
      ...x,
      axes: axes("segments"),
      series: [{ label: "s" }, ...b.legs.map((l) => line(l, { label: `retransmitted ${l.label}`, paths: uPlot.paths.stepped({ align: 1 }) }))],
    }} />`,
  ];
}

function StreamPlots({ s }) {
  const events = Array.isArray(s.events_list) ? s.events_list : [];
  const samples = Array.isArray(s.tcp_samples) ? s.tcp_samples : [];
  const [built, setBuilt] = useState(null);
  useEffect(() => setBuilt({ ev: buildSeries(events), sm: samples.length ? buildSampleSeries(samples) : null }), [s]);
  if (events.length === 0 && samples.length === 0) return html`<div class="note">no events or TCP samples recorded for this stream (they are recorded for passed-through connections)</div>`;
  if (!built) return html`<div class="note">plotting…</div>`;
  const { cum, buckets, bucketMs, types, mm } = built.ev;
  const plots = [];
  if (events.length) {
    plots.push(
      html`<${Plot} key="cum" title="bytes over time (cumulative)" data=${cum} opts=${{
        scales: { x: { time: false } },
        axes: axes("bytes", bytesAxis),
        series: [{ label: "s" }, { label: "up (client → server)", stroke: UP, width: 2, value: fmtBytes, paths: uPlot.paths.stepped({ align: 1 }) }, { label: "down (server → client)", stroke: DOWN, width: 2, value: fmtBytes, paths: uPlot.paths.stepped({ align: 1 }) }],
      }} />`
    );
    plots.push(
      html`<${Plot} key="rate" title=${`throughput per ${bucketMs} ms`} note=${built.sm ? "how much crossed in each direction per bucket; bytes in flight are in the TCP sample plots" : "how much crossed in each direction per bucket; bytes in flight need TCP samples (tcp-sample-interval)"} data=${buckets} opts=${{
        scales: { x: { time: false } },
        axes: axes("bytes / bucket", bytesAxis),
        series: [{ label: "s" }, { label: "up", stroke: UP, fill: UP + "40", width: 1, value: fmtBytes, points: { show: false }, paths: uPlot.paths.stepped({ align: 1 }) }, { label: "down", stroke: DOWN, fill: DOWN + "40", width: 1, value: fmtBytes, points: { show: false }, paths: uPlot.paths.stepped({ align: 1 }) }],
      }} />`
    );
  }
  if (built.sm) plots.push(...samplePlots(built.sm));
  if (types.length) {
    const xs = mm.map((e) => e.t_ms / 1000);
    const data = [xs, ...types.map((t, ti) => mm.map((e) => (e.mmtls_type === t ? ti + 1 : null)))];
    const sizes = mm.map((e) => e.bytes);
    plots.push(
      html`<${Plot} key="mmtls" title="mmTLS records by type" data=${data} opts=${{
        height: 60 + 30 * types.length,
        scales: { x: { time: false }, y: { range: [0.5, types.length + 0.5] } },
        axes: (() => {
          const a = axes("type", (u, splits) => splits.map((v) => types[v - 1] || ""));
          a[1].splits = () => types.map((t, i) => i + 1);
          a[1].size = 90;
          return a;
        })(),
        series: [
          { label: "s" },
          ...types.map((t, i) => ({
            label: t,
            stroke: PALETTE[i % PALETTE.length],
            fill: PALETTE[i % PALETTE.length],
            width: 0,
            paths: () => null,
            points: { show: true, size: 7, stroke: PALETTE[i % PALETTE.length], fill: PALETTE[i % PALETTE.length] },
            value: (u, v, si, di) => (v === null || di === null || di === undefined ? "—" : `${mm[di].dir} ${sizes[di]} B`),
          })),
        ],
      }} />`
    );
  }
  return html`<div class="plots">${plots}</div>`;
}

function TcpInfo({ s, hasSamples }) {
  // TCP_INFO at close: tcp_client_* and tcp_server_* (not tcp_samples*)
  const keys = Object.keys(s).filter((k) => /^tcp_(client|server)_/.test(k));
  if (keys.length === 0) return html`<div class="note">no TCP_INFO recorded for this connection</div>`;
  // rows per side: tcp_client_rtt_us -> side client, field rtt_us
  const sides = {};
  const fields = [];
  for (const k of keys) {
    const m = /^tcp_(client|server)_(.*)$/.exec(k);
    const side = m[1];
    const f = m[2];
    (sides[side] ||= {})[f] = s[k];
    if (!fields.includes(f)) fields.push(f);
  }
  const fmt = (f, v) => (v === null || v === undefined ? "—" : /_us$/.test(f) ? (v / 1000).toFixed(3) : String(v));
  return html`<div class="tcpinfo">
    <h4>RTT and retransmissions (TCP_INFO at close)</h4>
    ${!hasSamples && html`<div class="note">no TCP samples for this connection (tcp-sample-interval 0, or not relayed as a stream); these are the values read when it closed</div>`}
    <table class="grid mono" data-testid="tcp-info">
      <thead><tr><th>leg</th>${fields.map((f) => html`<th class="num" title=${"tcpi_" + f}>${f.replace(/_us$/, " (ms)")}</th>`)}</tr></thead>
      <tbody>
        ${Object.entries(sides).map(([side, v]) => html`<tr><th>${side === "client" ? "client ↔ proxy" : side === "server" ? "proxy ↔ server" : side}</th>${fields.map((f) => html`<td class="num">${fmt(f, v[f])}</td>`)}</tr>`)}
      </tbody>
    </table>
  </div>`;
}

export function Streams({ sel, setSel }) {
  const [list, setList] = useState({ loading: true });
  const [one, setOne] = useState(null);
  const load = () =>
    getJSON("/api/streams")
      .then((data) => setList({ data }))
      .catch((e) => setList({ error: e.message }));
  useEffect(() => {
    load();
  }, []);
  useEffect(() => {
    if (sel === null || sel === undefined) return;
    let live = true;
    setOne({ loading: true });
    getJSON(`/api/streams/${sel}`)
      .then((data) => live && setOne({ data }))
      .catch((e) => live && setOne({ error: e.message }));
    return () => {
      live = false;
    };
  }, [sel]);
  const rows = Array.isArray(list.data) ? list.data : [];
  const keys = keysOf(rows, STREAM_ORDER).filter((k) => !/_us$/.test(k) && k !== "target_host" && k !== "target_port" && k !== "server_port");
  const s = one && one.data;
  const hasSamples = s && Array.isArray(s.tcp_samples) && s.tcp_samples.length > 0;
  return html`<div class="page streams-page">
    <div class="page-bar">
      <b>Streams</b> <span class="note">${rows.length} passed-through connections · click one for its timeline</span>
      <button type="button" onClick=${load}>Reload</button>
    </div>
    ${list.error && html`<div class="error">${list.error}</div>`}
    ${list.loading && html`<div class="note">loading…</div>`}
    ${list.data && rows.length === 0 && html`<div class="note">no streams recorded</div>`}
    <div class="streams-split">
      ${rows.length > 0 &&
      html`<div class="table-wrap streams-list"><${SortTable} rows=${rows} keys=${keys} testid="streams-table" onRow=${(r) => setSel(r.id)} keyOf=${(r) => r.id} selectedKey=${sel} initialSort=${{ key: "id", dir: -1 }} /></div>`}
      ${one &&
      html`<div class="stream-one" data-testid="stream-detail">
        ${one.loading && html`<div class="note">loading stream ${sel}…</div>`}
        ${one.error && html`<div class="error">${one.error}</div>`}
        ${s &&
        html`<div>
          <h3 class="mono">stream ${s.id ?? sel} ${s.target_host || s.sni || ""} ${s.protocol ? "· " + s.protocol : ""} ${s.events_capped ? html`<span class="note">(events capped: later ones were dropped)</span>` : ""} ${s.tcp_samples_capped ? html`<span class="note">(TCP samples capped at tcp-samples-max)</span>` : ""}</h3>
          <${StreamPlots} s=${s} />
          <${TcpInfo} s=${s} hasSamples=${hasSamples} />
        </div>`}
      </div>`}
    </div>
  </div>`;
}
