// The web UI over a large capture, in Debian's chromium through
// playwright-core. Run as `make bench-web`, i.e.
//
//   PLAYWRIGHT_CORE=/abs/build/npm/node_modules/playwright-core \
//   node tests/bench/web_bench.mjs --peephole /abs/build/peephole \
//       [--flows 100000] [--dir build/bench-web] [--fresh] [--url URL]
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
// A row's id is read from data-id (or data-flow-id, or a
// [data-testid=flow-id] cell, or the row's leading number).
//
// It prints one Markdown table (and writes result.json to --dir). This is a
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
function pageProbe(counts) {
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
	const look = () => {
		if (b.firstRowDom === undefined &&
		    document.querySelector("[data-testid=flow-row]"))
			seen("firstRow");
		const c = document.querySelector("[data-testid=flow-count]");
		if (b.allDom === undefined && c && countShows(c))
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
function pageHelpers() {
	const rowId = (row) => {
		const a = row.getAttribute("data-id") ??
		    row.getAttribute("data-flow-id");
		if (a !== null)
			return parseInt(a, 10);
		const cell = row.querySelector("[data-testid=flow-id]");
		const m = (cell || row).textContent.match(/^\s*#?(\d+)/);
		return m ? parseInt(m[1], 10) : NaN;
	};
	const scroller = () => {
		const list = document.querySelector("[data-testid=flow-list]");
		let el = list || document.querySelector("[data-testid=flow-row]");
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
		for (const r of document.querySelectorAll("[data-testid=flow-row]")) {
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
		rows: () => document.querySelectorAll("[data-testid=flow-row]")
		    .length,
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
	let server = null, browser = null;
	try {
		let url = o.url;
		if (!url) {
			const cap = await makeCapture(o);
			res.db = cap.db;
			res.dbMade = cap.made;
			res.dbMs = cap.ms;
			res.dbBytes = fs.statSync(cap.db).size;
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
		const page = await browser.newPage({ viewport: { width: 1600,
			height: 1000 } });
		const errors = [];
		page.on("pageerror", (e) => errors.push(String(e)));
		page.on("console", (m) => {
			if (m.type() === "error")
				errors.push(m.text());
		});
		// The count may include the rows of connections that are not
		// exchanges (web_bench.sql makes one per 250 flows).
		await page.addInitScript(pageProbe, [o.flows,
			o.flows + Math.floor(o.flows / 250)]);
		await page.addInitScript(pageHelpers);
		const tmo = o.timeout * 1000;

		const t0 = Date.now();
		await page.goto(url, { waitUntil: "commit", timeout: tmo });
		await page.waitForSelector("[data-testid=flow-row]",
			{ state: "visible", timeout: tmo });
		res.firstRowWallMs = Date.now() - t0;
		await page.waitForFunction(() => window.__bench.allPaint !==
		    undefined, null, { timeout: tmo, polling: 50 });
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
		if (server)
			res.serverRssEnd = rss(server.pid);
		res.pageErrors = errors;
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

function report(r) {
	const rows = [
		["flows in the capture", r.flows.toLocaleString("en")],
	];
	if (r.dbBytes !== undefined)
		rows.push(["capture file", `${fmtMiB(r.dbBytes)}` +
			(r.dbMade ? ` (made in ${fmtMs(r.dbMs)})` : " (reused)")]);
	if (r.serverStartMs !== undefined)
		rows.push(["`peephole web` up (link printed)", fmtMs(r.serverStartMs)]);
	rows.push(
		["API: first page of 5000", fmtMs(r.api.firstPageMs)],
		["API: all flows (" + r.api.pages + " pages, " +
		    fmtMiB(r.api.bytes) + " JSON)", fmtMs(r.api.ms)],
		["page: first flow row painted", fmtMs(r.firstRowMs) +
		    ` (wall ${fmtMs(r.firstRowWallMs)})`],
		["page: all flows loaded (count shows them)", fmtMs(r.allMs) +
		    ` (wall ${fmtMs(r.allWallMs)})`],
		["scroll to the start: row 1 on screen", fmtMs(r.scrollStartMs)],
		["scroll to the end: row " + r.flows + " on screen",
		    fmtMs(r.scrollEndMs)],
		[`sweep, ${r.sweep.steps} jumps top to end: frame median / p95 / max`,
		    `${fmtMs(r.sweep.median)} / ${fmtMs(r.sweep.p95)} / ` +
		    fmtMs(r.sweep.max)],
		["sweep: frames over 50 ms / frames with no row", `${r.sweep.over50}` +
		    ` / ${r.sweep.blank}`],
		["flow rows in the DOM / all elements", `${r.rowsInDom} / ${r.nodes}`],
		["JS heap used (performance.memory)", r.perfMemory ?
		    fmtMiB(r.perfMemory.used) : "n/a"],
		["JS heap used after GC (CDP)", fmtMiB(r.cdp.JSHeapUsedSize)],
	);
	const kib = (x) => fmtMiB(x * 1024);
	if (r.serverRssIdle)
		rows.push(["server RSS: idle / after API load / at the end (peak)",
		    `${kib(r.serverRssIdle.rssKiB)} / ${kib(r.serverRssApi.rssKiB)}` +
		    ` / ${kib(r.serverRssEnd.rssKiB)} ` +
		    `(${kib(r.serverRssEnd.hwmKiB)})`]);
	console.log(`\nWeb UI bench: Chromium ${r.browser}, node ${r.node},` +
	    ` ${r.host}\n`);
	console.log("| measure | value |\n|---|---|");
	for (const [k, v] of rows)
		console.log(`| ${k} | ${v} |`);
	if (r.pageErrors && r.pageErrors.length)
		console.log(`\npage errors: ${r.pageErrors.slice(0, 5).join(" | ")}`);
}

// Exit at once: nothing is left to wait for once the table is out (the
// fetch agent's idle keep-alive would hold the loop for seconds).
main().then(() => process.exit(0), (e) => die(e && e.stack || String(e)));
