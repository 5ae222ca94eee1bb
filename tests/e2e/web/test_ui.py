"""
The web UI in Debian's chromium (playwright-core from build/npm), against
the real proxy and its web server: a flow made with curl appears live, the
filter box narrows the list, a gzip JSON body is shown decoded as a tree,
a stream's plot is drawn, replay from the UI records a replay row, and a
screenshot for the README. The browser side is tests/e2e/web/ui/run.mjs,
one scenario per run; this file makes the traffic and checks the rows.
"""
import json
import os
import select
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, RawConn, kill_proc, token, wait_for

HERE = Path(__file__).resolve().parent
RUN_MJS = HERE / "ui" / "run.mjs"
NODE = "/usr/bin/node"
PLAYWRIGHT_CORE = os.environ.get(
    "PLAYWRIGHT_CORE", str(REPO / "build" / "npm" / "node_modules" /
                           "playwright-core"))
# where the screenshot goes: the build tree (the README's copy is
# tests/e2e/web/web-ui.png, refreshed from here by hand)
SHOT = REPO / "build" / "web-ui.png"


def scenario(p, name, timeout=90, **env):
    """Start run.mjs NAME against p's web UI; returns the Popen (stdout
    piped, text)."""
    e = dict(p.env, PEEPHOLE_WEB_URL=p.web_url,
             PLAYWRIGHT_CORE=PLAYWRIGHT_CORE,
             **{k: str(v) for k, v in env.items()})
    return subprocess.Popen([NODE, str(RUN_MJS), name], env=e,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(proc, timeout=90):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_proc(proc)
        out, _ = proc.communicate()
    assert proc.returncode == 0, out
    return out


def run_scenario(p, name, **env):
    return finish(scenario(p, name, **env))


def _value(out, key):
    for ln in out.splitlines():
        if ln.startswith(key + "="):
            return ln.split("=", 1)[1]
    raise AssertionError(f"no {key}= in:\n{out}")


def _flow(p, tok):
    rows = wait_for(lambda: [f for f in p.web.json(
        "/api/flows?limit=5000")["flows"] if tok in f["url"]], 5)
    assert rows, tok
    return rows[-1]


def test_ui_live_flow_appears(web_proxy, web_origin):
    p = web_proxy
    p.curl(web_origin.url(f"/warmup?t={token()}"))
    proc = scenario(p, "live", EXPECT_HOST=(host := f"live-{token()}"))
    _wait_ready(proc)  # the page is up: now make the exchange
    r = p.curl(web_origin.url(f"/{host}"))
    assert r.code == 200
    out = finish(proc)
    ms = int(_value(out, "elapsed-ms"))
    print(f"flow on screen {ms} ms after curl began (no reload)")


def _wait_ready(proc):
    """Wait (bounded) for the scenario's "ready" line."""
    deadline = time.monotonic() + 60
    line = ""
    while time.monotonic() < deadline:
        r, _, _ = select.select([proc.stdout], [], [], 1)
        if r:
            line = proc.stdout.readline()
            if line.strip() == "ready" or not line:
                break
    assert line.strip() == "ready", line + finish(proc)


def test_ui_sticks_to_bottom_only_there(web_proxy, web_origin):
    """Scrolled up, new flows do not move the list; a button takes it to
    the bottom, where it then stays."""
    p = web_proxy
    tok = token()
    urls = [web_origin.url(f"/fill{n}?t={tok}") for n in range(60)]
    r = p.curl(urls)
    assert r.codes == [200] * 60
    _flow(p, f"fill59?t={tok}")
    proc = scenario(p, "stick")
    _wait_ready(proc)
    for n in range(3):
        assert p.curl(web_origin.url(f"/new{n}?t={tok}")).code == 200
    assert "stick ok" in finish(proc)


def test_ui_every_view_renders(web_proxy, web_origin):
    """Each tab and detail tab opens without a page error or an error
    shown, over a capture with an exchange, a stream-less list and a
    pinned host."""
    p = web_proxy
    tok = token()
    p.curl(web_origin.url(f"/data.json?t={tok}"), "-H",
           "Accept-Encoding: gzip")
    _flow(p, tok)
    run_scenario(p, "views")


def test_ui_filter_narrows(web_proxy, web_origin):
    p = web_proxy
    tok = token()
    for path in ("/a", "/b", "/c"):
        p.curl(web_origin.url(f"{path}?t={tok}"))
    p.curl(web_origin.url(f"/only-this?t={tok}"))
    _flow(p, f"only-this?t={tok}")
    out = run_scenario(p, "filter", FILTER=f"only-this", EXPECT_HOST="only-this")
    before, after = out.split("before=")[1].split()
    assert int(after.split("=")[1]) < int(before)


def test_ui_gzip_json_tree(web_proxy, web_origin):
    p = web_proxy
    tok = token()
    r = p.curl(web_origin.url(f"/data.json?t={tok}"), "-H",
               "Accept-Encoding: gzip")
    assert r.code == 200
    f = _flow(p, tok)
    run_scenario(p, "gzip-json", EXPECT_ID=f["id"], EXPECT_KEY="greeting")


class TalkativeServer:
    """A raw TCP server that, per connection, sends 40 records of 1 KiB
    20 ms apart after reading the client's hello: a stream for the plot."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        try:
            c, _ = self.sock.accept()
        except OSError:
            return
        with c:
            c.settimeout(10)
            c.recv(100)
            for _ in range(40):
                c.sendall(b"\x01" * 1024)
                time.sleep(0.02)

    def close(self):
        self.sock.close()


def test_ui_stream_plot(web_proxy):
    p = web_proxy
    srv = TalkativeServer()
    try:
        with RawConn(p.port) as c:
            c.send(f"CONNECT 127.0.0.1:{srv.port} HTTP/1.1\r\n"
                   f"Host: 127.0.0.1:{srv.port}\r\n\r\n".encode())
            assert c.read_head().status == 200
            c.send(b"\x00HELLO not-http not-tls\n")
            got = c.read_exact(40 * 1024)
            assert len(got) == 40 * 1024
    finally:
        srv.close()
    assert wait_for(lambda: p.web.json("/api/streams"), 10)
    out = run_scenario(p, "stream-plot")
    assert "drawn-pixels=" in out


def test_ui_replay_makes_a_row(web_proxy, web_origin):
    p = web_proxy
    tok = token()
    p.curl(web_origin.url(f"/data.json?t={tok}"))
    f = _flow(p, tok)
    out = run_scenario(p, "replay", EXPECT_ID=f["id"])
    nid = int(_value(out, "replay-id"))
    rows = p.dbh().requests("id = ?", (nid,))
    assert len(rows) == 1 and rows[0]["path"] == "/data.json"
    assert p.web.json(f"/api/flows/{nid}")["replay_of"] == f["id"]


def test_ui_screenshot(web_proxy, web_origin):
    p = web_proxy
    tok = token()
    for path in ("/page.html", "/pixel.png", "/x", "/api/v1/items",
                 "/static/app.js", "/data.json"):
        p.curl(web_origin.url(f"{path}?t={tok}"), "-H",
               "Accept-Encoding: gzip")
    f = _flow(p, f"data.json?t={tok}")
    SHOT.parent.mkdir(parents=True, exist_ok=True)
    run_scenario(p, "screenshot", EXPECT_ID=f["id"], SCREENSHOT=SHOT)
    data = SHOT.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 10000
