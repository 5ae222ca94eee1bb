// End-to-end checks of the peephole web UI in Debian's chromium, driven by
// playwright-core. One scenario per run:
//
//   node tests/e2e/web/ui/run.mjs SCENARIO
//
// Environment:
//   PEEPHOLE_WEB_URL  the URL peephole printed (with ?token=)
//   PLAYWRIGHT_CORE   absolute path of the playwright-core package directory
//   CHROMIUM          browser binary (default /usr/bin/chromium)
//   SCREENSHOT        where to save a PNG (optional; required by "screenshot")
//   PEEPHOLE_WEB_PASSWORD  the --web-password, if any (sent as Basic auth)
//   EXPECT_HOST, EXPECT_ID, EXPECT_KEY, FILTER  per scenario, see below
//
// Scenarios:
//   live        open the list, print "ready", then wait (10 s) for a row
//               whose host or URL contains EXPECT_HOST; prints elapsed-ms=N
//   filter      type FILTER; every row left must contain EXPECT_HOST and
//               there must be fewer rows than before
//   gzip-json   open flow EXPECT_ID; its response JSON tree shows EXPECT_KEY
//   stream-plot streams tab, first stream: a plot canvas has drawn pixels
//   replay      open flow EXPECT_ID, replay it, wait for the diff; prints
//               replay-id=N
//   screenshot  the whole UI with flows and an open detail, 1280x800, to
//               SCREENSHOT (EXPECT_ID picks the flow, else the newest)
//   views       every view and detail tab renders without a page error
//   stick       scrolled up, new flows leave the list where it is and show
//               "↓ N new"; prints "ready" when it is time to send traffic
//
// Exit 0 on success; on failure print the reason and exit 1. Every wait
// is bounded.
import path from "node:path";
import { pathToFileURL } from "node:url";

const T = 10000; // default bound for one wait

function fail(msg) {
  console.log("FAIL: " + msg);
  process.exitCode = 1;
  throw new Error(msg);
}

function env(name, required = true) {
  const v = process.env[name];
  if (required && (v === undefined || v === "")) fail(`environment variable ${name} is not set`);
  return v;
}

async function loadPlaywright() {
  const dir = env("PLAYWRIGHT_CORE");
  const mod = await import(pathToFileURL(path.join(dir, "index.mjs")).href);
  return mod.chromium || (mod.default && mod.default.chromium);
}

// Open the printed URL (which trades the token for the cookie), then any
// path of the UI on the same origin.
async function openUI(browser, sub = "/") {
  // with --web-password the token goes with HTTP Basic auth
  const pw = process.env.PEEPHOLE_WEB_PASSWORD;
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...(pw ? { httpCredentials: { username: "peephole", password: pw } } : {}) });
  const page = await ctx.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push("pageerror: " + e.message));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push("console: " + m.text());
  });
  page.errors = errors;
  const url = env("PEEPHOLE_WEB_URL");
  const resp = await page.goto(url, { timeout: T });
  if (!resp || resp.status() >= 400) fail(`GET ${url.replace(/token=[^&]*/, "token=…")} answered ${resp && resp.status()}`);
  if (sub !== "/") {
    const origin = new URL(url).origin;
    await page.goto(origin + sub, { timeout: T });
  }
  await page.waitForSelector("[data-testid=flow-list], [data-testid=domains-table], [data-testid=streams-table], .page", { timeout: T }).catch(() => fail("the UI did not render: " + errors.join("; ")));
  return page;
}

const rowsSel = "[data-testid=flow-row]";

async function visibleRows(page) {
  return page.$$eval(rowsSel, (els) => els.map((e) => ({ id: e.dataset.id, text: e.textContent, title: [...e.querySelectorAll("[title]")].map((c) => c.title).join(" ") })));
}

async function waitRows(page) {
  // the first page is in when the count has settled or rows are drawn
  await page.waitForFunction(() => {
    const c = document.querySelector("[data-testid=flow-count]");
    return c && !c.textContent.includes("…");
  }, null, { timeout: T }).catch(() => fail("the flow list did not finish loading"));
}

async function openFlow(browser, id) {
  const page = await openUI(browser, "/?flow=" + encodeURIComponent(id));
  await page.waitForSelector(`[data-testid=detail][data-id="${id}"]`, { timeout: T }).catch(() => fail(`the detail of flow ${id} did not open`));
  return page;
}

const scenarios = {
  async live(browser) {
    const host = env("EXPECT_HOST");
    const page = await openUI(browser);
    await waitRows(page);
    await page.waitForSelector("[data-testid=live-indicator][data-live='1']", { timeout: T }).catch(() => fail("the event stream did not connect"));
    console.log("ready");
    const t0 = Date.now();
    await page
      .waitForFunction(
        (h) => [...document.querySelectorAll("[data-testid=flow-row]")].some((r) => r.textContent.includes(h) || [...r.querySelectorAll("[title]")].some((c) => c.title.includes(h))),
        host,
        { timeout: T, polling: 50 }
      )
      .catch(() => fail(`no row for ${host} appeared within ${T} ms`));
    console.log(`elapsed-ms=${Date.now() - t0}`);
  },

  async filter(browser) {
    const filter = env("FILTER");
    const host = env("EXPECT_HOST");
    const page = await openUI(browser);
    await waitRows(page);
    const countOf = () => page.$eval("[data-testid=flow-count]", (e) => Number(e.dataset.count));
    const before = await countOf();
    if (before < 2) fail(`need at least 2 flows before filtering, have ${before}`);
    await page.fill("[data-testid=filter-input]", filter);
    // the store restarts after the debounce; wait until it settled
    await page
      .waitForFunction(
        (b) => {
          const c = document.querySelector("[data-testid=flow-count]");
          return (c && !c.textContent.includes("…") && Number(c.dataset.count) < b) || document.querySelector("[data-testid=filter-error]");
        },
        before,
        { timeout: T }
      )
      .catch(() => fail("the list did not narrow"));
    const err = await page.$("[data-testid=filter-error]");
    if (err) fail("the server refused the filter: " + (await err.textContent()));
    const after = await countOf();
    const rows = await visibleRows(page);
    if (rows.length === 0) fail("no rows match the filter");
    const bad = rows.filter((r) => !r.text.includes(host) && !r.title.includes(host));
    if (bad.length) fail(`${bad.length} rows do not match ${host}, e.g. #${bad[0].id}: ${bad[0].text}`);
    if ((await page.$$("[data-testid=conn-row]")).length) fail("connection rows are shown while filtering");
    const u = new URL(page.url());
    if (u.searchParams.get("filter") !== filter) fail(`the URL does not carry the filter: ${page.url()}`);
    console.log(`before=${before} after=${after}`);
  },

  async "gzip-json"(browser) {
    const id = env("EXPECT_ID");
    const key = env("EXPECT_KEY");
    const page = await openFlow(browser, id);
    await page.click("[data-testid=detail-tab-response]");
    await page.waitForSelector("[data-testid=detail] [data-testid=json-tree]", { timeout: T }).catch(() => fail("no JSON tree in the response of flow " + id));
    const keysNow = () => page.$$eval("[data-testid=json-tree] .j-key", (els) => els.map((e) => e.textContent));
    const has = (keys) => keys.includes(JSON.stringify(key)) || keys.includes(key);
    let keys = await keysNow();
    // a big document opens two levels deep: open the rest, a round at a time
    for (let round = 0; round < 6 && !has(keys); round++) {
      const opened = await page.$$eval("[data-testid=json-tree] .j-toggle", (els) => {
        let n = 0;
        for (const e of els) if (e.querySelector(".j-caret")?.textContent === "▸" && n < 500) (e.click(), n++);
        return n;
      });
      if (!opened) break;
      await page.waitForTimeout(100);
      keys = await keysNow();
    }
    if (!has(keys)) fail(`key ${key} not in the JSON tree (keys: ${keys.slice(0, 20).join(", ")})`);
    console.log("json-key=" + key);
  },

  async "stream-plot"(browser) {
    const page = await openUI(browser, "/?view=streams");
    await page.waitForSelector("[data-testid=streams-table] tbody tr", { timeout: T }).catch(() => fail("no stream in the streams table"));
    await page.click("[data-testid=streams-table] tbody tr >> nth=0");
    await page.waitForSelector("[data-testid=stream-plot] canvas", { timeout: T }).catch(() => fail("no plot canvas for the first stream"));
    await page.waitForTimeout(300); // uPlot draws on the next frame
    const drawn = await page.$$eval("[data-testid=stream-plot] canvas", (cs) =>
      cs.map((c) => {
        const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) n++;
        return n;
      })
    );
    if (!drawn.some((n) => n > 0)) fail("the plot canvases are blank");
    console.log("drawn-pixels=" + drawn.join(","));
  },

  async replay(browser) {
    const id = env("EXPECT_ID");
    const page = await openFlow(browser, id);
    const btn = await page.$("[data-testid=replay-button]");
    if (await btn.isDisabled()) fail("the replay button is disabled: " + (await btn.getAttribute("title")));
    await btn.click();
    await page.waitForSelector("[data-testid=replay-diff], [data-testid=detail] .error", { timeout: 20000 }).catch(() => fail("no diff view after replay"));
    const diff = await page.$("[data-testid=replay-diff]");
    if (!diff) fail("replay failed: " + (await page.$eval("[data-testid=detail] .error", (e) => e.textContent)));
    const nid = await diff.getAttribute("data-replay-id");
    if (!/^\d+$/.test(nid || "")) fail("the diff view names no replay id");
    console.log(`replay-id=${nid}`);
  },

  // Every view renders without a page error: the list, a detail with each
  // of its tabs, domains, streams (and the first stream's plots), and
  // passthrough.
  async views(browser) {
    const page = await openUI(browser);
    await waitRows(page);
    await page.waitForSelector(rowsSel, { timeout: T }).catch(() => fail("no flow rows"));
    await page.click(`${rowsSel} >> nth=-1`);
    await page.waitForSelector("[data-testid=detail] [data-testid=detail-tab-request]", { timeout: T }).catch(() => fail("the detail did not open"));
    for (const tab of ["request", "response", "timing", "connection"]) {
      await page.click(`[data-testid=detail-tab-${tab}]`);
      await page.waitForTimeout(150);
    }
    await page.waitForSelector("[data-testid=waterfall], [data-testid=detail] .kv-groups, [data-testid=detail] .note", { timeout: T });
    await page.click("[data-testid=copy-curl]");
    await page.waitForSelector("[data-testid=curl-text]", { timeout: T }).catch(() => fail("no curl command shown"));
    const curl = await page.$eval("[data-testid=curl-text]", (e) => e.value);
    if (!/^curl /.test(curl)) fail("the curl box holds no curl command: " + curl.slice(0, 80));
    await page.keyboard.press("Escape");
    await page.click("[data-testid=tab-domains]");
    await page.waitForSelector("[data-testid=domains-table], .page .note, .page .error", { timeout: T });
    await page.click("[data-testid=tab-streams]");
    await page.waitForSelector("[data-testid=streams-table], .page .note, .page .error", { timeout: T });
    if (await page.$("[data-testid=streams-table] tbody tr")) {
      await page.click("[data-testid=streams-table] tbody tr >> nth=0");
      await page.waitForSelector("[data-testid=stream-plot] canvas, [data-testid=stream-detail] .note", { timeout: T });
    }
    await page.click("[data-testid=tab-passthrough]");
    await page.waitForSelector("[data-testid=passthrough-table], .page .note, .page .error", { timeout: T });
    await page.waitForTimeout(300);
    const errs = page.errors.filter((e) => e.startsWith("pageerror"));
    if (errs.length) fail(errs.join(" | "));
    const bad = await page.$$eval(".page .error", (els) => els.map((e) => e.textContent));
    if (bad.length) fail("a view shows an error: " + bad.join(" | "));
  },

  // Stick to bottom: scrolled up, new flows do not move the list and a
  // "N new" button appears; clicking it goes to the newest row. Needs more
  // flows than a screen holds; prints "ready" when scrolled up (send
  // traffic then).
  async stick(browser) {
    const page = await openUI(browser);
    await waitRows(page);
    const scrolled = await page.evaluate(() => {
      const el = document.querySelector("[data-testid=flow-list]");
      if (el.scrollHeight <= el.clientHeight + 50) return false;
      el.scrollTop = Math.max(0, el.scrollTop - 400);
      el.dispatchEvent(new Event("scroll"));
      return true;
    });
    if (!scrolled) fail("not enough flows to scroll the list");
    await page.waitForTimeout(300);
    const topBefore = await page.$eval("[data-testid=flow-list]", (e) => e.scrollTop);
    console.log("ready");
    await page.waitForSelector("[data-testid=new-rows]", { timeout: T }).catch(() => fail("no “N new” button after new flows arrived"));
    const topAfter = await page.$eval("[data-testid=flow-list]", (e) => e.scrollTop);
    if (Math.abs(topAfter - topBefore) > 1) fail(`the list moved while scrolled up (${topBefore} -> ${topAfter})`);
    await page.click("[data-testid=new-rows]");
    await page.waitForTimeout(500);
    const atEnd = await page.evaluate(() => {
      const el = document.querySelector("[data-testid=flow-list]");
      return el.scrollTop + el.clientHeight >= el.scrollHeight - 30;
    });
    if (!atEnd) fail("the “N new” button did not go to the bottom");
    console.log("stick ok");
  },

  async screenshot(browser) {
    const out = env("SCREENSHOT");
    let page;
    if (process.env.EXPECT_ID) page = await openFlow(browser, process.env.EXPECT_ID);
    else {
      page = await openUI(browser);
      await waitRows(page);
      await page.waitForSelector(rowsSel, { timeout: T }).catch(() => fail("no flows to show"));
      await page.click(`${rowsSel} >> nth=-1`);
      await page.waitForSelector("[data-testid=detail]", { timeout: T }).catch(() => fail("the detail did not open"));
    }
    await waitRows(page);
    await page.waitForTimeout(500);
    await page.screenshot({ path: out });
    console.log("screenshot=" + out);
  },
};

async function main() {
  const name = process.argv[2];
  if (!scenarios[name]) {
    console.log(`usage: run.mjs ${Object.keys(scenarios).join("|")}`);
    process.exit(2);
  }
  const chromium = await loadPlaywright();
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", timeout: T * 3 });
  let page;
  const watchdog = setTimeout(() => {
    console.log(`FAIL: scenario ${name} took longer than 60 s`);
    process.exit(1);
  }, 60000);
  try {
    await scenarios[name](browser);
    const pages = browser.contexts().flatMap((c) => c.pages());
    page = pages[0];
    const errs = pages.flatMap((p) => p.errors || []);
    if (errs.length) console.log("page errors (not fatal): " + errs.join(" | "));
  } catch (e) {
    if (!process.exitCode) console.log("FAIL: " + (e && e.message ? e.message : e));
    process.exitCode = 1;
    if (process.env.SCREENSHOT && name !== "screenshot") {
      page = browser.contexts().flatMap((c) => c.pages())[0];
      if (page) await page.screenshot({ path: process.env.SCREENSHOT }).catch(() => {});
    }
  } finally {
    clearTimeout(watchdog);
    await browser.close().catch(() => {});
  }
  void page;
}

main();
