// peephole web UI: talking to the server (web-spec.md) and small formatters.
import { h, Component } from "/vendor/preact.mjs";
import htm from "/vendor/htm.mjs";

export const html = htm.bind(h);

// Like preact/compat's memo: re-render only when a prop changed (===).
export function memo(C) {
  class Memo extends Component {
    shouldComponentUpdate(next) {
      for (const k in next) if (next[k] !== this.props[k]) return true;
      for (const k in this.props) if (!(k in next)) return true;
      return false;
    }
    render(props) {
      return h(C, props);
    }
  }
  Memo.displayName = "Memo(" + (C.displayName || C.name) + ")";
  return Memo;
}

// GET /api/session: {token, readonly, db, version}. The token goes on every
// POST as X-Peephole-Token (CSRF); GETs ride on the HttpOnly cookie.
export const session = { token: "", readonly: false, db: "", version: "" };

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function errorOf(r) {
  let msg = r.status + " " + r.statusText;
  try {
    const t = await r.text();
    try {
      const j = JSON.parse(t);
      if (j && j.error) msg = j.error;
    } catch {
      if (t) msg = t.slice(0, 300);
    }
  } catch {
    /* keep the status line */
  }
  if (r.status === 401) authLost();
  return new ApiError(r.status, msg);
}

const authListeners = new Set();
export function onAuthLost(fn) {
  authListeners.add(fn);
  return () => authListeners.delete(fn);
}
function authLost() {
  for (const fn of authListeners) fn();
}

export async function getJSON(url, opts = {}) {
  const r = await fetch(url, { credentials: "same-origin", signal: opts.signal });
  if (!r.ok) throw await errorOf(r);
  return r.json();
}

export async function getText(url) {
  const r = await fetch(url, { credentials: "same-origin" });
  if (!r.ok) throw await errorOf(r);
  return r.text();
}

export async function getBytes(url) {
  const r = await fetch(url, { credentials: "same-origin" });
  if (!r.ok) throw await errorOf(r);
  return r.arrayBuffer();
}

export async function post(url) {
  const r = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-Peephole-Token": session.token },
  });
  if (!r.ok) throw await errorOf(r);
  return r;
}

export async function loadSession() {
  const s = await getJSON("/api/session");
  Object.assign(session, s);
  return session;
}

export const qs = (o) =>
  Object.entries(o)
    .filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => encodeURIComponent(k) + "=" + encodeURIComponent(v))
    .join("&");

// ---- formatting ----

export function humanBytes(n) {
  if (n === null || n === undefined || n === "") return "";
  n = Number(n);
  if (!isFinite(n)) return "";
  if (n < 1024) return n + " B";
  const u = ["KiB", "MiB", "GiB", "TiB"];
  let i = -1;
  do {
    n /= 1024;
    i++;
  } while (n >= 1024 && i < u.length - 1);
  return (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2)) + " " + u[i];
}

const pad = (n, w = 2) => String(n).padStart(w, "0");

// HH:MM:SS.mmm in local time, from time_us (or an ISO string).
export function clock(us, iso) {
  let d;
  if (us !== null && us !== undefined) d = new Date(Number(us) / 1000);
  else if (iso) d = new Date(iso);
  else return "";
  if (isNaN(d)) return "";
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function localTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return String(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function ms(v) {
  if (v === null || v === undefined || v === "") return "";
  v = Number(v);
  if (v >= 10000) return (v / 1000).toFixed(1) + " s";
  if (v >= 100) return v.toFixed(0) + " ms";
  if (v >= 10) return v.toFixed(1) + " ms";
  if (v >= 1) return v.toFixed(2) + " ms";
  return v.toFixed(3) + " ms";
}

export function protoLabel(f) {
  if (f.websocket_messages > 0 || f.status === 101) return "ws";
  const v = String(f.version || "");
  if (v.startsWith("2")) return "h2";
  if (v.startsWith("3")) return "h3";
  if (v.startsWith("1")) return "h1";
  return v;
}

export function statusClass(s) {
  if (s === null || s === undefined) return "st-none";
  return "st-" + String(s)[0] + "xx";
}

export function cellText(v) {
  if (v === null || v === undefined) return "";
  if (Array.isArray(v)) return v.map(cellText).join(", ");
  if (typeof v === "object") return JSON.stringify(v);
  if (typeof v === "boolean") return v ? "yes" : "no";
  return String(v);
}

// Clipboard with a fallback for browsers that refuse navigator.clipboard.
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const ta = document.createElement("textarea");
    ta.value = text;
    ta.style.position = "fixed";
    ta.style.opacity = "0";
    document.body.appendChild(ta);
    ta.select();
    let ok = false;
    try {
      ok = document.execCommand("copy");
    } catch {
      ok = false;
    }
    ta.remove();
    return ok;
  }
}

export function downloadBlob(blob, name) {
  const a = document.createElement("a");
  const url = URL.createObjectURL(blob);
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
