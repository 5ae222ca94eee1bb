// The web UI over a large capture, in Debian's chromium through
// playwright-core. Run as `make bench-web`, i.e.
//
//   PLAYWRIGHT_CORE=/abs/build/npm/node_modules/playwright-core \
//   node tests/bench/web_bench.mjs --peephole /abs/build/peephole \
//       [--flows 100000] [--dir build/bench-web] [--fresh] [--url URL]
//       [--no-mitmweb] [--mitmweb /usr/bin/mitmweb] [--python /usr/bin/python3]
//       [--mitm-timeout 120] [--mitm-read-timeout 300]
//
// 1. A capture of --flows exchanges: `peephole run` creates the schema
//    (started on a free loopback port, stopped with SIGINT), then the
//    sqlite3 CLI fills it from web_bench.sql with recursive CTEs. The file
//    is kept in --dir and reused while it holds the same number of rows
//    (--fresh rebuilds it).
// 2. `peephole web --db FILE --listen 127.0.0.1:PORT`; the link it prints
//    (`web UI: http://ADDR:PORT/?token=T`) is what the browser opens. With
//    --url the bench uses a server already running instead.
// 3. The API alone: every flow through GET /api/flows, 5000 a page.
// 4. The page: time to the first visible [data-testid=flow-row], time
//    until [data-testid=flow-count] shows every flow, scroll to the start
//    (row 1 visible) and to the end (the row of the highest id visible),
//    a sweep through the whole list a screen per frame (frame times and
//    frames with no row on screen), the JS heap (performance.memory and
//    CDP after a GC), DOM size, and the server's RSS.
//
// 5. The baseline, measured in the same run (unless --no-mitmweb), once
//    peephole's server is stopped: web_bench_mitm.py writes the same
//    capture as a mitmproxy flow file (capture-N.mitm beside the .db,
//    reused while newer than it and the generator); then `mitmweb
//    --no-web-open-browser --web-host 127.0.0.1 --web-port P
//    --listen-host 127.0.0.1 --listen-port P2 --set confdir=DIR -r FILE`.
//    Its web port listens at once but answers nothing until the file is
//    read; the bench waits (--mitm-read-timeout) until its command API says
//    the view holds every flow and the read is over, then times GET /flows
//    (all flows in one answer) and the same page measures, each wait bounded
//    by --mitm-timeout. mitmweb shows no count: "all flows loaded" is when
//    its virtual list is every row high. A row's id comes from its React
//    key, the flow id the generator made of the SQLite id. What did not
//    finish in time is reported as such. mitmweb is stopped by its PID.
//
// A row's id is read from data-id (or data-flow-id, or a
// [data-testid=flow-id] cell, or the row's leading number).
//
// It prints one Markdown table, with mitmweb's column and the ratio
// peephole / mitmweb (below 1: peephole is faster or smaller), and writes
// result.json to --dir (mitmweb's numbers under "mitmweb"). This is a
// bench, not a test: it asserts no timing, and exits non-zero only when
// something could not be measured, saying what. Every wait is bounded;
// the server and the browser are stopped by their own handles.

import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "../..");

function parseArgs(argv) {
	const o = {
		peephole: path.join(REPO, "build/peephole"),
		flows: 100000,
		dir: path.join(REPO, "build/bench-web"),
		fresh: false,
		url: null,
		chromium: "/usr/bin/chromium",
		timeout: 180,
		sweep: 200,
		mitmweb: "/usr/bin/mitmweb",
		python: "/usr/bin/python3",
		mitmTimeout: 120,
		mitmReadTimeout: 300,
	};
	for (let i = 2; i < argv.length; i++) {
		const a = argv[i];
		const v = () => {
			if (i + 1 >= argv.length)
				die(`${a} needs a value`);
			return argv[++i];
		};
		if (a === "--peephole") o.peephole = path.resolve(v());
		else if (a === "--flows") o.flows = parseInt(v(), 10);
		else if (a === "--dir") o.dir = path.resolve(v());
		else if (a === "--fresh") o.fresh = true;
		else if (a === "--url") o.url = v();
		else if (a === "--chromium") o.chromium = v();
		else if (a === "--timeout") o.timeout = parseFloat(v());
		else if (a === "--sweep") o.sweep = parseInt(v(), 10);
		else if (a === "--no-mitmweb") o.mitmweb = null;
		else if (a === "--mitmweb") o.mitmweb = v();
		else if (a === "--python") o.python = v();
		else if (a === "--mitm-timeout") o.mitmTimeout = parseFloat(v());
		else if (a === "--mitm-read-timeout")
			o.mitmReadTimeout = parseFloat(v());
		else die(`unknown argument ${a} (see the top of ${process.argv[1]})`);
	}
	if (!(o.flows > 0)) die("--flows must be a positive number");
	return o;
}

function die(msg) {
	console.error(`web_bench: ${msg}`);
	process.exit(1);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
	return new Promise((resolve, reject) => {
		const s = net.createServer();
		s.on("error", reject);
		s.listen(0, "127.0.0.1", () => {
			const { port } = s.address();
			s.close(() => resolve(port));
		});
	});
}

// A child with its output collected; waitFor(re, ms) resolves with the
// first match on stdout or stderr, rejects on exit or timeout.
function start(cmd, args, env) {
	const child = spawn(cmd, args, {
		env: { ...process.env, ...env },
		stdio: ["ignore", "pipe", "pipe"],
	});
	let out = "";
	const waiters = [];
	const check = () => {
		for (const w of waiters.slice()) {
			const m = out.match(w.re);
			if (m) {
				waiters.splice(waiters.indexOf(w), 1);
				clearTimeout(w.timer);
				w.resolve(m);
			}
		}
	};
	child.stdout.on("data", (d) => { out += d; check(); });
	child.stderr.on("data", (d) => { out += d; check(); });
	child.on("exit", (code, sig) => {
		child.exited = { code, sig };
		for (const w of waiters.splice(0)) {
			clearTimeout(w.timer);
			w.reject(new Error(`${cmd} exited (${code ?? sig}): ${out}`));
		}
	});
	child.output = () => out;
	child.waitFor = (re, ms) => new Promise((resolve, reject) => {
		const w = { re, resolve, reject };
		w.timer = setTimeout(() => {
			waiters.splice(waiters.indexOf(w), 1);
			reject(new Error(`no ${re} from ${cmd} in ${ms} ms: ${out}`));
		}, ms);
		waiters.push(w);
		check();
		if (child.exited && waiters.includes(w)) {
			waiters.splice(waiters.indexOf(w), 1);
			clearTimeout(w.timer);
			reject(new Error(`${cmd} exited: ${out}`));
		}
	});
	return child;
}

// SIGINT, then SIGKILL if it has not gone in ms; resolves with the exit.
async function stop(child, ms = 10000) {
	if (!child || child.exited)
		return child && child.exited;
	const gone = new Promise((r) => child.once("exit", (code, sig) =>
		r({ code, sig })));
	child.kill("SIGINT");
	const t = await Promise.race([gone, sleep(ms).then(() => null)]);
	if (t)
		return t;
	child.kill("SIGKILL");
	return gone;
}

function sqlite(db, sql, params = []) {
	const args = [];
	for (const [k, v] of params)
		args.push("-cmd", `.parameter set ${k} ${v}`);
	const r = spawnSync("sqlite3", [...args, db], { input: sql,
		encoding: "utf8", timeout: 300000 });
	if (r.error || r.status !== 0)
		throw new Error(`sqlite3 ${db}: ${r.error || r.stderr}`);
	return r.stdout.trim();
}

function countRows(db) {
	try {
		return parseInt(sqlite(db, "SELECT count(*) FROM requests;"), 10);
	} catch {
		return -1;
	}
}

// The schema from the proxy itself, the rows from web_bench.sql.
async function makeCapture(o) {
	const db = path.join(o.dir, `capture-${o.flows}.db`);
	if (!o.fresh && fs.existsSync(db) && countRows(db) === o.flows)
		return { db, made: false, ms: 0 };
	for (const f of [db, `${db}-wal`, `${db}-shm`])
		fs.rmSync(f, { force: true });
	const t0 = performance.now();
	const port = await freePort();
	const proxy = start(o.peephole, ["run", "--db", db, "--listen",
		`127.0.0.1:${port}`, "--home", path.join(o.dir, "home"), "--quiet"],
	{});
	// Stopped once the schema is committed (user_version is set in the
	// same transaction), however early its signal handler is in place.
	const version = () => {
		try {
			return parseInt(sqlite(db, "PRAGMA user_version;"), 10);
		} catch {
			return 0;
		}
	};
	try {
		await proxy.waitFor(/listening on/, 30000);
		for (let i = 0; i < 200 && !(version() > 0); i++)
			await sleep(50);
	} finally {
		await stop(proxy);
	}
	if (!(version() > 0))
		die(`peephole run left no schema in ${db}:\n${proxy.output()}`);
	const sql = fs.readFileSync(path.join(HERE, "web_bench.sql"), "utf8");
	sqlite(db, sql, [[":flows", o.flows]]);
	const n = countRows(db);
	if (n !== o.flows)
		die(`${db} holds ${n} requests, not ${o.flows}`);
	return { db, made: true, ms: performance.now() - t0 };
}

function rss(pid) {
	try {
		const s = fs.readFileSync(`/proc/${pid}/status`, "utf8");
		const kb = (k) => parseInt((s.match(new RegExp(`^${k}:\\s+(\\d+)`,
			"m")) || [])[1], 10);
		return { rssKiB: kb("VmRSS"), hwmKiB: kb("VmHWM") };
	} catch {
		return { rssKiB: NaN, hwmKiB: NaN };
	}
}

// Every flow through the API, paged by id: what the list has to fetch.
async function apiLoad(base, token, flows, timeoutMs) {
	const t0 = performance.now();
	const deadline = t0 + timeoutMs;
	let after = 0, n = 0, pages = 0, bytes = 0, first = null;
	for (;;) {
		if (performance.now() > deadline)
			throw new Error(`API: ${n} flows after ${timeoutMs} ms`);
		const r = await fetch(`${base}/api/flows?after=${after}&limit=5000`,
			{ headers: { "X-Peephole-Token": token } });
		const body = await r.text();
		if (r.status !== 200)
			throw new Error(`GET /api/flows: ${r.status} ${body}`);
		const j = JSON.parse(body);
		pages++;
		bytes += body.length;
		n += j.flows.length;
		if (first === null)
			first = performance.now() - t0;
		if (!j.more || j.flows.length === 0)
			break;
		after = j.last;
	}
	if (n !== flows)
		throw new Error(`API returned ${n} flows, not ${flows}`);
	return { ms: performance.now() - t0, firstPageMs: first, pages, bytes };
}

// Runs in the page before its scripts: when the first flow row enters the
// DOM, and when the count first shows every flow (one of counts), each with
// the frame after it (close to when it was painted).
//
// cfg: row and count selectors; with countFrom "rows" (mitmweb, which
// shows no count) the number of flows is the list's full height over one
// row's (its virtual list pads the rows off screen to their height).
function pageProbe([cfg, counts]) {
	const b = (window.__bench = {});
	const countShows = (el) => {
		const attr = el.getAttribute("data-count");
		if (attr !== null)
			return counts.includes(parseInt(attr, 10));
		const nums = (el.textContent || "").match(
		    /\d{1,3}(?:[,.'\u00a0\u202f ]\d{3})+|\d+/g) || [];
		return nums.some((s) => counts.includes(parseInt(
		    s.replace(/\D/g, ""), 10)));
	};
	const seen = (key) => {
		b[key + "Dom"] = performance.now();
		requestAnimationFrame(() => { b[key + "Paint"] = performance.now(); });
	};
	const rowsShow = () => {
		const r = document.querySelector(cfg.row);
		const body = r && r.parentElement;
		return r && r.offsetHeight > 0 && counts.includes(
		    Math.round(body.offsetHeight / r.offsetHeight));
	};
	const look = () => {
		if (b.firstRowDom === undefined && document.querySelector(cfg.row))
			seen("firstRow");
		if (b.allDom === undefined && (cfg.countFrom === "rows" ?
		    rowsShow() : (() => {
			const c = document.querySelector(cfg.count);
			return c && countShows(c);
		})()))
			seen("all");
		if (b.firstRowDom !== undefined && b.allDom !== undefined)
			mo.disconnect();
	};
	const mo = new MutationObserver(look);
	mo.observe(document, { childList: true, subtree: true,
		characterData: true, attributes: true,
		attributeFilter: ["data-count"] });
}

// In the page: helpers the steps below call through page.evaluate.
//
// cfg.row and cfg.list are the selectors of a flow row and of the list; with
// cfg.idFrom "react" (mitmweb) a row's id is read from its React element's
// key, the flow id web_bench_mitm.py made of the SQLite id (TCP flows,
// which are connections, get the negated connection id).
function pageHelpers(cfg) {
	const reactId = (row) => {
		const k = Object.keys(row).find((n) =>
		    n.startsWith("__reactFiber$"));
		for (let f = k && row[k], i = 0; f && i < 8; f = f.return, i++) {
			const m = /^0{8}-0000-4000-([89])000-(\d{12})$/.exec(f.key || "");
			if (m)
				return (m[1] === "8" ? 1 : -1) * parseInt(m[2], 10);
		}
		return NaN;
	};
	const rowId = (row) => {
		if (cfg.idFrom === "react")
			return reactId(row);
		const a = row.getAttribute("data-id") ??
		    row.getAttribute("data-flow-id");
		if (a !== null)
			return parseInt(a, 10);
		const cell = row.querySelector("[data-testid=flow-id]");
		const m = (cell || row).textContent.match(/^\s*#?(\d+)/);
		return m ? parseInt(m[1], 10) : NaN;
	};
	const scroller = () => {
		const list = document.querySelector(cfg.list);
		let el = list || document.querySelector(cfg.row);
		for (; el && el !== document.body; el = el.parentElement) {
			const oy = getComputedStyle(el).overflowY;
			if (el.scrollHeight > el.clientHeight + 1 &&
			    (oy === "auto" || oy === "scroll"))
				return el;
		}
		return document.scrollingElement;
	};
	// Rows at least partly inside the scroller's box.
	const visibleIds = () => {
		const s = scroller();
		const box = s === document.scrollingElement ?
		    { top: 0, bottom: innerHeight } : s.getBoundingClientRect();
		const ids = [];
		for (const r of document.querySelectorAll(cfg.row)) {
			const rb = r.getBoundingClientRect();
			if (rb.height > 0 && rb.bottom > box.top && rb.top < box.bottom)
				ids.push(rowId(r));
		}
		return ids;
	};
	const frame = () => new Promise((r) => requestAnimationFrame(r));
	// Jump to top or bottom, then count frames until the wanted id shows.
	const jump = async (where, id, maxMs) => {
		const s = scroller();
		const t0 = performance.now();
		s.scrollTop = where === "end" ? s.scrollHeight : 0;
		while (performance.now() - t0 < maxMs) {
			await frame();
			if (where === "end")
				s.scrollTop = s.scrollHeight;
			if (visibleIds().includes(id))
				return performance.now() - t0;
		}
		return -1;
	};
	// From the top to the end, one screen per frame: frame times, and the
	// frames that showed no row at all.
	const sweep = async (steps) => {
		const s = scroller();
		s.scrollTop = 0;
		await frame();
		const stride = Math.max(1,
		    (s.scrollHeight - s.clientHeight) / steps);
		const dts = [];
		let blank = 0, last = performance.now();
		for (let i = 1; i <= steps; i++) {
			s.scrollTop = Math.round(i * stride);
			await frame();
			const now = performance.now();
			dts.push(now - last);
			last = now;
			if (visibleIds().length === 0)
				blank++;
		}
		dts.sort((a, b) => a - b);
		const q = (p) => dts[Math.min(dts.length - 1,
		    Math.floor(p * dts.length))];
		return { steps, stride, median: q(0.5), p95: q(0.95),
			max: dts[dts.length - 1], over50: dts.filter((d) => d > 50)
			    .length, blank };
	};
	window.__benchLib = {
		rowId, scroller, visibleIds, jump, sweep,
		rows: () => document.querySelectorAll(cfg.row).length,
		nodes: () => document.getElementsByTagName("*").length,
		height: () => scroller().scrollHeight,
	};
}

function fmtMs(x) {
	if (x === null || x === undefined || Number.isNaN(x) || x < 0)
		return "n/a";
	return x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(0)} ms`;
}
const fmtMiB = (b) => Number.isFinite(b) ? `${(b / 1048576).toFixed(1)} MiB`
	: "n/a";

// The list of each UI: peephole's test ids; mitmweb 8's flow table (a row
// is a tr without the style of the two padding rows of its virtual list).
const PEEPHOLE_UI = { row: "[data-testid=flow-row]",
	count: "[data-testid=flow-count]", list: "[data-testid=flow-list]",
	countFrom: "count", idFrom: "attr" };
const MITMWEB_UI = { row: ".flow-table tbody tr:not([style])", count: null,
	list: ".flow-table", countFrom: "rows", idFrom: "react" };

// One page over url: first row, all flows, scrolls, sweep, heap; then
// atEnd() while the page is still open. Throws when a wait runs out (after
// tmo ms), with what was measured in e.partial.
async function measurePage(browser, url, ui, o, tmo, atEnd) {
	const res = {};
	const page = await browser.newPage({ viewport: { width: 1600,
		height: 1000 } });
	const errors = [];
	page.on("pageerror", (e) => errors.push(String(e)));
	page.on("console", (m) => {
		if (m.type() === "error")
			errors.push(m.text());
	});
	res.pageErrors = errors;
	try {
		// The count may include the rows of connections that are not
		// exchanges (web_bench.sql makes one per 250 flows).
		await page.addInitScript(pageProbe, [ui, [o.flows,
			o.flows + Math.floor(o.flows / 250)]]);
		await page.addInitScript(pageHelpers, ui);

		const t0 = Date.now();
		await page.goto(url, { waitUntil: "commit", timeout: tmo });
		await page.waitForSelector(ui.row, { state: "visible",
			timeout: tmo });
		res.firstRowWallMs = Date.now() - t0;
		await page.waitForFunction(() => window.__bench.allPaint !==
		    undefined, null, { timeout: Math.max(1000,
			tmo - (Date.now() - t0)), polling: 50 });
		res.allWallMs = Date.now() - t0;
		Object.assign(res, await page.evaluate(() => {
			const n = performance.getEntriesByType("navigation")[0];
			return { firstRowMs: window.__bench.firstRowPaint,
				allMs: window.__bench.allPaint,
				domContentLoadedMs: n ? n.domContentLoadedEventEnd : null };
		}));

		const maxId = o.flows;
		res.rowsInDom = await page.evaluate(() => window.__benchLib.rows());
		res.listHeightPx = await page.evaluate(() =>
			window.__benchLib.height());
		res.scrollStartMs = await page.evaluate(([ms]) =>
			window.__benchLib.jump("start", 1, ms), [tmo]);
		res.scrollEndMs = await page.evaluate(([id, ms]) =>
			window.__benchLib.jump("end", id, ms), [maxId, tmo]);
		res.sweep = await page.evaluate(([n]) =>
			window.__benchLib.sweep(n), [o.sweep]);
		res.nodes = await page.evaluate(() => window.__benchLib.nodes());

		res.perfMemory = await page.evaluate(() => performance.memory ?
			{ used: performance.memory.usedJSHeapSize,
			  total: performance.memory.totalJSHeapSize } : null);
		const cdp = await page.context().newCDPSession(page);
		await cdp.send("HeapProfiler.collectGarbage");
		await cdp.send("Performance.enable");
		const { metrics } = await cdp.send("Performance.getMetrics");
		res.cdp = Object.fromEntries(metrics.map((m) => [m.name, m.value]));
		if (atEnd)
			atEnd();
	} catch (e) {
		e.partial = res;
		throw e;
	} finally {
		await page.context().close().catch(() => {});
	}
	return res;
}

// The capture as a mitmproxy flow file (web_bench_mitm.py), kept beside
// it and reused while newer than both the capture and the generator.
function makeMitmCapture(o, db) {
	const out = db.replace(/\.db$/, "") + ".mitm";
	const gen = path.join(HERE, "web_bench_mitm.py");
	const mtime = (f) => fs.statSync(f).mtimeMs;
	if (!o.fresh && fs.existsSync(out) && mtime(out) > mtime(db) &&
	    mtime(out) > mtime(gen))
		return { file: out, made: false, ms: 0 };
	const t0 = performance.now();
	const r = spawnSync(o.python, [gen, "--db", db, "--out", out],
		{ encoding: "utf8", timeout: 600000 });
	const m = (r.stdout || "").match(/wrote (\d+) http \+ (\d+) tcp/);
	if (r.error || r.status !== 0 || !m)
		throw new Error(`${gen}: ${r.error || r.stderr || r.stdout}`);
	if (parseInt(m[1], 10) !== o.flows)
		throw new Error(`${out} holds ${m[1]} HTTP flows, not ${o.flows}`);
	return { file: out, made: true, ms: performance.now() - t0 };
}

// mitmweb 8 answers nothing while it reads its -r file (the read holds
// its event loop); then its view holds every flow. Polls its command API
// (the _xsrf cookie from GET / is also the X-XSRFToken header) until
// view.properties.length is want and readfile.reading is false, or
// throws when ms have passed.
async function mitmRead(base, want, ms) {
	const deadline = performance.now() + ms;
	let xsrf = null, n = -1, reading = true;
	while (performance.now() < deadline) {
		const left = () => AbortSignal.timeout(Math.max(100,
			Math.ceil(deadline - performance.now())));
		try {
			if (!xsrf) {
				const r = await fetch(`${base}/`, { signal: left() });
				await r.text();
				const c = (r.headers.get("set-cookie") || "")
					.match(/_xsrf=([^;]+)/);
				if (!c)
					throw new Error("mitmweb: no _xsrf cookie from GET /");
				xsrf = c[1];
			}
			const cmd = async (name) => {
				const r = await fetch(`${base}/commands/${name}`, {
					method: "POST", signal: left(),
					headers: { Cookie: `_xsrf=${xsrf}`,
						"X-XSRFToken": xsrf } });
				const j = await r.json();
				if (r.status !== 200 || j.error)
					throw new Error(`mitmweb ${name}: ${r.status} ` +
					    JSON.stringify(j));
				return j.value;
			};
			n = await cmd("view.properties.length");
			reading = await cmd("readfile.reading");
			if (!reading && n >= want)
				return n;
		} catch (e) {
			if (e.name !== "TimeoutError" && e.name !== "AbortError" &&
			    !/fetch failed/.test(e.message))
				throw e;
		}
		await sleep(250);
	}
	throw new Error(`mitmweb held ${n} flows (reading: ${reading}) after ` +
	    `${ms / 1000} s`);
}

// The baseline: the same capture in mitmweb, the same measures where they
// exist. Never throws for mitmweb being slow: what did not finish is said
// in m.didNotFinish.
async function runMitmweb(o, db, browser) {
	const m = { flowsExpected: o.flows + Math.floor(o.flows / 250) };
	let child = null;
	try {
		const cap = makeMitmCapture(o, db);
		m.file = cap.file;
		m.fileMade = cap.made;
		m.fileMs = cap.ms;
		m.fileBytes = fs.statSync(cap.file).size;
		m.version = spawnSync(o.mitmweb, ["--version"], { encoding: "utf8",
			timeout: 30000 }).stdout.match(/Mitmproxy: (\S+)/)?.[1];
		const webPort = await freePort();
		const proxyPort = await freePort();
		const confdir = path.join(o.dir, "mitm-conf");
		fs.mkdirSync(confdir, { recursive: true });
		const t0 = performance.now();
		child = start(o.mitmweb, ["--no-web-open-browser", "--web-host",
			"127.0.0.1", "--web-port", `${webPort}`, "--listen-host",
			"127.0.0.1", "--listen-port", `${proxyPort}`, "--set",
			`confdir=${confdir}`, "-r", cap.file], {});
		m.pid = child.pid;
		await child.waitFor(/Web server listening at/, 60000);
		m.listenMs = performance.now() - t0;
		const base = `http://127.0.0.1:${webPort}`;
		try {
			m.flowsInView = await mitmRead(base, m.flowsExpected,
				o.mitmReadTimeout * 1000);
		} catch (e) {
			m.didNotFinish = `reading the flow file did not finish in ` +
			    `${o.mitmReadTimeout} s (${e.message})`;
			m.rssRead = rss(child.pid);
			return m;
		}
		m.readMs = performance.now() - t0;
		m.rssIdle = rss(child.pid);

		// Its API: every flow in one GET /flows.
		const tmo = o.mitmTimeout * 1000;
		try {
			const ta = performance.now();
			const r = await fetch(`${base}/flows`,
				{ signal: AbortSignal.timeout(Math.ceil(tmo)) });
			const body = await r.text();
			const n = JSON.parse(body).length;
			if (r.status !== 200 || n !== m.flowsExpected)
				throw new Error(`GET /flows: ${r.status}, ${n} flows`);
			m.api = { ms: performance.now() - ta, pages: 1,
				bytes: body.length };
		} catch (e) {
			m.apiError = String(e.message || e);
		}
		m.rssApi = rss(child.pid);

		try {
			Object.assign(m, await measurePage(browser, `${base}/`,
				MITMWEB_UI, o, tmo, () => {
					m.rssEnd = rss(child.pid);
				}));
		} catch (e) {
			Object.assign(m, e.partial || {});
			m.didNotFinish = `the page did not finish in ` +
			    `${o.mitmTimeout} s (${String(e.message).split("\n")[0]})`;
		}
	} catch (e) {
		m.didNotFinish = String(e.message || e).split("\n")[0];
	} finally {
		if (child) {
			m.rssEnd = m.rssEnd || rss(child.pid);
			// SIGINT; it may take a while to wind down 100k flows.
			m.exit = await stop(child, 30000);
		}
	}
	return m;
}

async function main() {
	const o = parseArgs(process.argv);
	fs.mkdirSync(o.dir, { recursive: true });
	const pwPath = process.env.PLAYWRIGHT_CORE ||
	    path.join(REPO, "build/npm/node_modules/playwright-core");
	if (!fs.existsSync(pwPath))
		die(`no playwright-core at ${pwPath}: run make deps`);
	const { chromium } = createRequire(import.meta.url)(pwPath);
	// playwright-core puts chromium's profile under os.tmpdir(): keep it
	// in the build tree.
	process.env.TMPDIR = path.join(o.dir, "tmp");
	fs.mkdirSync(process.env.TMPDIR, { recursive: true });

	const res = { flows: o.flows, node: process.version,
		host: `${os.cpus().length} x ${os.cpus()[0]?.model}` };
	let server = null, browser = null, cap = null;
	try {
		let url = o.url;
		if (!url || o.mitmweb) {
			cap = await makeCapture(o);
			res.db = cap.db;
			res.dbMade = cap.made;
			res.dbMs = cap.ms;
			res.dbBytes = fs.statSync(cap.db).size;
		}
		if (!url) {
			const port = await freePort();
			const t0 = performance.now();
			server = start(o.peephole, ["web", "--db", cap.db, "--listen",
				`127.0.0.1:${port}`],
			{ PEEPHOLE_HOME: path.join(o.dir, "home") });
			const m = await server.waitFor(/web UI: (http:\/\/\S+)/, 30000);
			url = m[1];
			res.serverStartMs = performance.now() - t0;
			res.serverRssIdle = rss(server.pid);
		}
		const u = new URL(url);
		const token = u.searchParams.get("token");
		const base = `${u.protocol}//${u.host}`;

		res.api = await apiLoad(base, token, o.flows, o.timeout * 1000);
		if (server)
			res.serverRssApi = rss(server.pid);

		const args = ["--enable-precise-memory-info"];
		if (process.getuid && process.getuid() === 0)
			args.push("--no-sandbox");
		browser = await chromium.launch({ executablePath: o.chromium,
			headless: true, args });
		res.browser = browser.version();
		Object.assign(res, await measurePage(browser, url, PEEPHOLE_UI, o,
			o.timeout * 1000, () => {
				if (server)
					res.serverRssEnd = rss(server.pid);
			}));
		if (server) {
			// Stopped before mitmweb starts: one server at a time.
			res.serverExit = await stop(server);
			server = null;
		}
		if (o.mitmweb)
			res.mitmweb = await runMitmweb(o, cap.db, browser);
	} finally {
		if (browser)
			await browser.close().catch(() => {});
		if (server) {
			const e = await stop(server);
			res.serverExit = e;
		}
	}
	fs.writeFileSync(path.join(o.dir, "result.json"),
	    JSON.stringify(res, null, 1) + "\n");
	report(res);
	if (res.scrollEndMs < 0 || res.scrollStartMs < 0)
		die("a scroll never showed its row (see the table)");
}

// One row a measure: peephole's value, mitmweb's, and their ratio
// peephole / mitmweb (below 1: peephole takes less time or memory).
function report(r) {
	const m = r.mitmweb;
	const rows = [];
	// [label, peephole, mitmweb] as [text, number for the ratio]
	const add = (label, p, w = ["", NaN]) => rows.push([label, p, w]);
	const ms = (x) => [fmtMs(x), x >= 0 ? x : NaN];
	const mib = (b) => [fmtMiB(b), b];
	const kib = (s, k) => s && s[k] > 0 ? mib(s[k] * 1024) :
	    ["n/a", NaN];
	const txt = (s) => [s, NaN];
	const mm = m || {};
	const missing = (x) => x === undefined || x === null;
	const mms = (x) => missing(x) ? txt("n/a") : ms(x);

	add("flows in the capture", txt(r.flows.toLocaleString("en")),
	    m ? txt(`${r.flows.toLocaleString("en")} + ` +
		`${(mm.flowsExpected - r.flows).toLocaleString("en")} TCP`) :
	    undefined);
	if (r.dbBytes !== undefined)
		add("capture file", txt(`${fmtMiB(r.dbBytes)}` +
		    (r.dbMade ? ` (made in ${fmtMs(r.dbMs)})` : " (reused)")),
		m && mm.fileBytes ? txt(`${fmtMiB(mm.fileBytes)}` + (mm.fileMade ?
		    ` (made in ${fmtMs(mm.fileMs)})` : " (reused)")) : undefined);
	if (r.serverStartMs !== undefined) {
		add("server up (link printed / web port listening)",
		    ms(r.serverStartMs), mms(mm.listenMs));
		add("server ready: every flow served (mitmweb: -r file read)",
		    ms(r.serverStartMs), mms(mm.readMs));
	}
	add("API: first page of 5000 (mitmweb: no paging)",
	    ms(r.api.firstPageMs), txt("n/a"));
	add("API: all flows (peephole " + r.api.pages + " pages, " +
	    fmtMiB(r.api.bytes) + " JSON" + (mm.api ? "; mitmweb GET /flows, " +
	    fmtMiB(mm.api.bytes) : "") + ")", ms(r.api.ms),
	    mm.api ? ms(mm.api.ms) : txt(mm.apiError ? "failed" : "n/a"));
	add("page: first flow row painted", ms(r.firstRowMs), mms(mm.firstRowMs));
	add("page: first flow row, wall clock from goto", ms(r.firstRowWallMs),
	    mms(mm.firstRowWallMs));
	add("page: all flows loaded (peephole: count shows them; mitmweb: " +
	    "list is all rows high)", ms(r.allMs), mms(mm.allMs));
	add("page: all flows loaded, wall clock from goto", ms(r.allWallMs),
	    mms(mm.allWallMs));
	add("scroll to the start: row 1 on screen", ms(r.scrollStartMs),
	    mms(mm.scrollStartMs));
	add("scroll to the end: row " + r.flows + " on screen",
	    ms(r.scrollEndMs), mms(mm.scrollEndMs));
	const sw = (s, k) => s ? ms(s[k]) : txt("n/a");
	add(`sweep, ${r.sweep.steps} jumps top to end: frame median`,
	    sw(r.sweep, "median"), sw(mm.sweep, "median"));
	add("sweep: frame p95", sw(r.sweep, "p95"), sw(mm.sweep, "p95"));
	add("sweep: frame max", sw(r.sweep, "max"), sw(mm.sweep, "max"));
	const cnt = (s, k) => s ? [`${s[k]}`, s[k]] : txt("n/a");
	add("sweep: frames over 50 ms", cnt(r.sweep, "over50"),
	    cnt(mm.sweep, "over50"));
	add("sweep: frames with no row", cnt(r.sweep, "blank"),
	    cnt(mm.sweep, "blank"));
	add("flow rows in the DOM / all elements",
	    txt(`${r.rowsInDom} / ${r.nodes}`), missing(mm.rowsInDom) ?
	    txt("n/a") : txt(`${mm.rowsInDom} / ${mm.nodes}`));
	add("JS heap used (performance.memory)", r.perfMemory ?
	    mib(r.perfMemory.used) : txt("n/a"), mm.perfMemory ?
	    mib(mm.perfMemory.used) : txt("n/a"));
	add("JS heap used after GC (CDP)", mib(r.cdp.JSHeapUsedSize),
	    mm.cdp ? mib(mm.cdp.JSHeapUsedSize) : txt("n/a"));
	if (r.serverRssIdle) {
		add("server RSS: ready, idle", kib(r.serverRssIdle, "rssKiB"),
		    kib(mm.rssIdle || mm.rssRead, "rssKiB"));
		add("server RSS: after the API load", kib(r.serverRssApi,
		    "rssKiB"), kib(mm.rssApi, "rssKiB"));
		add("server RSS: at the end", kib(r.serverRssEnd, "rssKiB"),
		    kib(mm.rssEnd, "rssKiB"));
		add("server RSS: peak (VmHWM)", kib(r.serverRssEnd, "hwmKiB"),
		    kib(mm.rssEnd, "hwmKiB"));
	}
	console.log(`\nWeb UI bench: Chromium ${r.browser}, node ${r.node},` +
	    ` ${r.host}` + (m ? `, mitmweb ${mm.version || "?"}` : "") + "\n");
	if (m) {
		console.log("| measure | peephole | mitmweb | ratio peephole / " +
		    "mitmweb |\n|---|---|---|---|");
		for (const [k, p, w] of rows) {
			const q = p[1] / w[1];
			const ratio = Number.isFinite(q) && w[1] !== 0 ? (q >= 10 ?
			    q.toFixed(0) : q >= 0.1 ? q.toFixed(2) : q.toPrecision(2)) :
			    "";
			console.log(`| ${k} | ${p[0]} | ${w[0]} | ${ratio} |`);
		}
		if (m.didNotFinish)
			console.log(`\nmitmweb: ${m.didNotFinish}`);
		if (m.pageErrors && m.pageErrors.length)
			console.log(`\nmitmweb page errors: ` +
			    m.pageErrors.slice(0, 5).join(" | "));
	} else {
		console.log("| measure | peephole |\n|---|---|");
		for (const [k, p] of rows)
			console.log(`| ${k} | ${p[0]} |`);
	}
	if (r.pageErrors && r.pageErrors.length)
		console.log(`\npage errors: ${r.pageErrors.slice(0, 5).join(" | ")}`);
}

// Exit at once: nothing is left to wait for once the table is out (the
// fetch agent's idle keep-alive would hold the loop for seconds).
main().then(() => process.exit(0), (e) => die(e && e.stack || String(e)));
