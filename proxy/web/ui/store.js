// peephole web UI: the flow store. Rows live in plain arrays outside Preact
// (100k rows must not become 100k pieces of state); views subscribe and
// re-render at most once a frame.
import { getJSON, qs, ApiError } from "./api.js";

const PAGE = 5000;
const FIRST_PAGE = 1000;
// Memory stays bounded: the page keeps the newest MAX_FLOWS exchanges (about
// 350 bytes of heap each); past that the oldest go, and a filter reaches them.
export const MAX_FLOWS = (() => {
  try {
    const n = Number(localStorage.getItem("peephole.maxFlows"));
    return n >= 1000 ? n : 300000;
  } catch {
    return 300000;
  }
})();
const NEWEST = Number.MAX_SAFE_INTEGER;

const byTime = (r) => (r.time_us !== null && r.time_us !== undefined ? Number(r.time_us) : Date.parse(r.time) * 1000 || 0);

export class FlowStore {
  constructor() {
    this.flows = []; // HTTP exchanges, id ascending
    this.flowById = new Map();
    this.conns = []; // connection rows, seq ascending
    this.connById = new Map();
    this.connLast = 0; // cursor of GET /api/conns (live events do not move it)
    this.rows = []; // what the list shows: flows, plus conns when unfiltered
    this.filter = "";
    this.error = ""; // the server's message for a bad filter (or a load error)
    this.live = false;
    this.loading = false;
    this.complete = false; // every older page loaded
    this.dropped = false; // older flows left out (MAX_FLOWS)
    this.appended = 0; // rows added live (for "↓ N new")
    this.pendingPrepend = 0; // rows added above the top since the list last looked
    this.swapping = false; // a new filter's first page is on its way
    this.resets = 0; // times the rows were replaced (the list goes to the bottom)
    this.version = 0;
    this.gen = 0;
    this.es = null;
    this.lastEventId = ""; // of this filter's stream
    this.listeners = new Set();
    this.scheduled = false;
  }

  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  changed() {
    this.version++;
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      for (const fn of this.listeners) fn();
    });
  }

  get showConns() {
    return this.filter.trim() === "";
  }

  rebuildRows() {
    if (!this.showConns || this.conns.length === 0) {
      this.rows = this.flows.slice();
      return;
    }
    // merge by time: flows in id order, conns slotted in by accept time
    let cs = this.conns.slice().sort((a, b) => byTime(a) - byTime(b));
    // older flows left out: so are the connection rows of their time
    if (this.dropped && this.flows.length) {
      const t0 = byTime(this.flows[0]);
      cs = cs.filter((c) => byTime(c) >= t0);
    }
    const out = new Array(this.flows.length + cs.length);
    let i = 0,
      j = 0,
      k = 0;
    while (i < this.flows.length || j < cs.length) {
      if (j >= cs.length || (i < this.flows.length && byTime(this.flows[i]) <= byTime(cs[j]))) out[k++] = this.flows[i++];
      else out[k++] = cs[j++];
    }
    this.rows = out;
  }

  // a live row goes at the end, or a few places before it by time
  insertRow(r) {
    const rows = this.rows;
    const t = byTime(r);
    let i = rows.length;
    let steps = 0;
    while (i > 0 && byTime(rows[i - 1]) > t && steps < 10000) {
      i--;
      steps++;
    }
    if (i === rows.length) rows.push(r);
    else rows.splice(i, 0, r);
  }

  upsertFlow(f, live) {
    const old = this.flowById.get(f.id);
    if (old) {
      Object.assign(old, f);
      return false;
    }
    this.flowById.set(f.id, f);
    const last = this.flows[this.flows.length - 1];
    if (!last || last.id < f.id) this.flows.push(f);
    else {
      let i = this.flows.length;
      while (i > 0 && this.flows[i - 1].id > f.id) i--;
      this.flows.splice(i, 0, f);
    }
    if (live && !this.swapping) {
      this.insertRow(f);
      this.appended++;
      if (this.flows.length > MAX_FLOWS * 1.05) this.trim(true);
    }
    return true;
  }

  // Drop the oldest flows past MAX_FLOWS (and connection rows older than
  // the oldest flow kept). With inRows, out of the shown rows too, telling
  // the list how many went from the top.
  trim(inRows) {
    const n = this.flows.length - MAX_FLOWS;
    if (n <= 0) return;
    const gone = this.flows.splice(0, n);
    for (const f of gone) this.flowById.delete(f.id);
    this.dropped = true;
    const t0 = byTime(this.flows[0]);
    const oldConns = this.conns.filter((c) => byTime(c) < t0);
    if (oldConns.length) {
      for (const c of oldConns) this.connById.delete(c.conn_id);
      this.conns = this.conns.filter((c) => byTime(c) >= t0);
    }
    if (inRows) {
      const before = this.rows.length;
      this.rows = this.rows.filter((r) => (r._conn ? this.connById.has(r.conn_id) : this.flowById.has(r.id)));
      this.pendingPrepend -= before - this.rows.length;
    }
  }

  upsertConn(c, live) {
    c._conn = true;
    const old = this.connById.get(c.conn_id);
    if (old) {
      Object.assign(old, c);
      return false;
    }
    this.connById.set(c.conn_id, c);
    this.conns.push(c);
    if (live && this.showConns && !this.swapping) {
      this.insertRow(c);
      this.appended++;
    }
    return true;
  }

  // (Re)start: the list for this filter, then live events.
  async start(filter) {
    const gen = ++this.gen;
    this.filter = filter || "";
    this.error = "";
    this.flows = [];
    this.flowById = new Map();
    // the old rows stay on screen until the first page of the new filter
    // is in (no flash of an empty list while typing)
    this.swapping = true;
    this.appended = 0;
    this.pendingPrepend = 0;
    this.complete = false;
    this.dropped = false;
    this.loading = true;
    this.lastEventId = "";
    this.changed();
    // The event stream first (it starts at "now"), so nothing falls
    // between the first page and the first event; duplicates are merged.
    const opened = this.openEvents(gen);
    await Promise.race([opened, new Promise((r) => setTimeout(r, 1500))]);
    if (gen !== this.gen) return;
    if (this.showConns) this.loadConns(gen);
    try {
      await this.loadFlows(gen);
    } catch (e) {
      if (gen !== this.gen) return;
      this.error = e instanceof ApiError ? e.message : "cannot load flows: " + e.message;
      this.loading = false;
      this.swapping = false;
      this.resets++;
      this.rows = [];
      if (e instanceof ApiError && e.status === 400) this.closeEvents();
      this.changed();
    }
  }

  async loadFlows(gen) {
    const filter = this.filter;
    let page;
    let backwards = true;
    try {
      // a small first page paints sooner; the rest come 5000 at a time
      page = await getJSON("/api/flows?" + qs({ filter, before: NEWEST, limit: FIRST_PAGE }));
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 400) throw e;
      // a server without before=: page forwards from the start instead
      page = await getJSON("/api/flows?" + qs({ filter, after: 0, limit: PAGE }));
      backwards = false;
    }
    if (gen !== this.gen) return;
    for (const f of page.flows) this.upsertFlow(f, false);
    this.flows.sort((a, b) => a.id - b.id);
    this.swapping = false;
    this.resets++;
    this.rebuildRows();
    this.changed();
    if (backwards) {
      while (page.flows.length > 0 && page.more) {
        if (this.flows.length >= MAX_FLOWS) {
          this.dropped = true;
          const before = this.rows.length;
          this.rebuildRows();
          this.pendingPrepend += this.rows.length - before;
          break;
        }
        const oldest = this.flows[0].id;
        page = await getJSON("/api/flows?" + qs({ filter, before: oldest, limit: PAGE }));
        if (gen !== this.gen) return;
        const fresh = page.flows.filter((f) => !this.flowById.has(f.id) && f.id < oldest);
        if (fresh.length === 0) break;
        for (const f of fresh) this.flowById.set(f.id, f);
        this.flows = fresh.concat(this.flows);
        const before = this.rows.length;
        this.rebuildRows();
        this.pendingPrepend += this.rows.length - before;
        this.changed();
      }
    } else {
      while (page.more && page.flows.length > 0) {
        page = await getJSON("/api/flows?" + qs({ filter, after: page.last, limit: PAGE }));
        if (gen !== this.gen) return;
        for (const f of page.flows) this.upsertFlow(f, false);
        this.trim();
        this.rebuildRows();
        this.changed();
      }
    }
    this.loading = false;
    this.complete = true;
    this.changed();
  }

  async loadConns(gen) {
    try {
      let added = 0;
      for (let n = 0; n < 100; n++) {
        const page = await getJSON("/api/conns?" + qs({ after: this.connLast, limit: PAGE }));
        if (gen !== this.gen) return;
        for (const c of page.conns) if (this.upsertConn(c, false)) added++;
        if (page.last > this.connLast) this.connLast = page.last;
        if (!page.more || page.conns.length === 0) break;
      }
      if (added && this.showConns && !this.swapping) {
        this.rebuildRows();
        this.changed();
      }
    } catch (e) {
      console.warn("conns:", e.message);
    }
  }

  openEvents(gen) {
    this.closeEvents();
    // a fresh EventSource (after the server refused one) resumes with
    // ?last=; the browser's own reconnects send Last-Event-ID
    const q = qs({ filter: this.filter, last: this.lastEventId });
    const url = "/api/events" + (q ? "?" + q : "");
    const es = new EventSource(url);
    this.es = es;
    return new Promise((resolve) => {
      es.onopen = () => {
        if (gen !== this.gen) return;
        this.live = true;
        this.retries = 0;
        this.changed();
        resolve();
      };
      es.onerror = () => {
        if (gen !== this.gen) return;
        this.live = false;
        this.changed();
        resolve();
        // EventSource retries by itself (with Last-Event-ID) unless the
        // server answered with an error status; then try again later.
        if (es.readyState === EventSource.CLOSED && !this.error) {
          // say why when it is the session (a restarted peephole has a
          // new token): GET /api/session answers 401 and the page says so
          getJSON("/api/session").catch(() => {});
          this.retries = (this.retries || 0) + 1;
          setTimeout(() => {
            if (gen === this.gen && this.es === es) this.openEvents(gen);
          }, Math.min(30000, 2000 * this.retries));
        }
      };
      es.addEventListener("flow", (ev) => {
        if (gen !== this.gen) return;
        if (ev.lastEventId) this.lastEventId = ev.lastEventId;
        try {
          this.upsertFlow(JSON.parse(ev.data), true);
          this.changed();
        } catch (e) {
          console.warn("flow event:", e);
        }
      });
      es.addEventListener("conn", (ev) => {
        if (gen !== this.gen) return;
        if (ev.lastEventId) this.lastEventId = ev.lastEventId;
        try {
          this.upsertConn(JSON.parse(ev.data), true);
          this.changed();
        } catch (e) {
          console.warn("conn event:", e);
        }
      });
      es.addEventListener("ws", (ev) => {
        if (gen !== this.gen) return;
        if (ev.lastEventId) this.lastEventId = ev.lastEventId;
        try {
          const m = JSON.parse(ev.data);
          const f = this.flowById.get(m.request_id);
          if (f) {
            f.websocket_messages = m.messages;
            this.changed();
          }
        } catch (e) {
          console.warn("ws event:", e);
        }
      });
    });
  }

  closeEvents() {
    if (this.es) {
      this.es.onerror = null;
      this.es.close();
      this.es = null;
    }
    this.live = false;
  }

  // index of a row by key ("f:ID" or "c:CONN_ID"), -1 if absent
  indexOfKey(key) {
    if (!key) return -1;
    const r = this.rowByKey(key);
    return r ? this.rows.indexOf(r) : -1;
  }

  rowByKey(key) {
    if (!key) return null;
    const [t, v] = key.split(":");
    return t === "f" ? this.flowById.get(Number(v)) || null : this.connById.get(Number(v)) || null;
  }
}

export const rowKey = (r) => (r._conn ? "c:" + r.conn_id : "f:" + r.id);

export const store = new FlowStore();
