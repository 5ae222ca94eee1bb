"""
Fixtures for the web UI tests: the proxy with its web UI (`run --web`), a
read-only `peephole web --db` over a capture, a small Python origin that
answers gzip JSON, an HTML page and a PNG, and an HTTP client (urllib,
never through a proxy) that speaks to the UI with or without its token.

Reused from ../conftest.py: start_proxy, free_port, kill_proc, wait_for.
Every process is stopped by PID; every wait is bounded.
"""
import gzip
import http.client
import http.server
import json
import re
import signal
import subprocess
import threading
import time
import urllib.parse

import pytest

from conftest import PEEPHOLE_BIN, free_port, kill_proc, wait_for

WEB_LINE = re.compile(r"web UI: (http://([^/]+)/\?token=([0-9a-f]{64}))")

# a 1x1 PNG
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201a5f6e1"
    "9a0000000049454e44ae426082")


class WebOrigin:
    """GET /data.json: gzip JSON {"token": ..., "greeting": "hello web"};
    /page.html: HTML; /pixel.png: a PNG; anything else: text."""

    def __init__(self):
        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(
                    self.path).query)
                tok = q.get("t", [""])[0]
                enc = None
                if path == "/data.json":
                    body = gzip.compress(json.dumps(
                        {"token": tok, "greeting": "hello web",
                         "nested": {"list": [1, 2, 3]}}).encode())
                    ctype, enc = "application/json", "gzip"
                elif path == "/page.html":
                    body = b"<html><body><h1>page " + tok.encode() + \
                        b"</h1></body></html>"
                    ctype = "text/html; charset=utf-8"
                elif path == "/pixel.png":
                    body, ctype = PNG, "image/png"
                else:
                    body, ctype = b"plain " + tok.encode() + b"\n", \
                        "text/plain"
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                if enc:
                    self.send_header("Content-Encoding", enc)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever,
                                       daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://alpha.test:{self.port}{path}"

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture(scope="module")
def web_origin():
    o = WebOrigin()
    yield o
    o.stop()


class WebClient:
    """The UI at base (http://ADDR:PORT) with token; requests go straight
    to it (no proxy). Every call is bounded by timeout."""

    def __init__(self, base, token):
        self.base = base
        self.token = token
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port

    def request(self, method, path, headers=None, body=None, auth=True,
                timeout=10):
        """(status, headers dict lower-cased, body bytes)."""
        h = {"Host": f"{self.host}:{self.port}"}
        if auth:
            h["X-Peephole-Token"] = self.token
        h.update(headers or {})
        c = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def json(self, path, method="GET", want=200, **kw):
        st, h, data = self.request(method, path, **kw)
        assert st == want, (path, st, data[:500])
        assert h["content-type"].startswith("application/json"), h
        return json.loads(data)


def read_web_line(path, proc, timeout=20.0):
    """The "web UI: URL" line a process printed into path: (url, base,
    token)."""
    def find():
        try:
            m = WEB_LINE.search(path.read_text(errors="replace"))
        except FileNotFoundError:
            return None
        return m

    m = wait_for(find, timeout)
    if m is None:
        raise RuntimeError(f"no 'web UI:' line (exit {proc.poll()})")
    return m.group(1), "http://" + m.group(2), m.group(3)


@pytest.fixture
def web_proxy(start_proxy):
    """The proxy with --web on a free port: .proxy, .web (WebClient),
    .url (the printed link)."""
    port = free_port()
    p = start_proxy(conf_extra={"web": f"127.0.0.1:{port}"})
    url, base, tok = read_web_line(p.stdout_path, p.proc)
    p.web_url = url
    p.web = WebClient(base, tok)
    return p


class WebAlone:
    """`peephole web --db DB --listen 127.0.0.1:0` (read-only)."""

    def __init__(self, db, workdir, extra=()):
        self.out_path = workdir / "web.stdout"
        self.err_path = workdir / "web.stderr"
        self.out = open(self.out_path, "wb")
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(
            [PEEPHOLE_BIN, "web", "--db", str(db), "--listen",
             "127.0.0.1:0", *extra],
            stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err)
        self.url, base, tok = read_web_line(self.out_path, self.proc)
        self.web = WebClient(base, tok)

    def stop(self):
        rc = kill_proc(self.proc, signal.SIGTERM, 10)
        self.out.close()
        self.err.close()
        return rc


@pytest.fixture
def web_alone(tmp_path):
    """Factory: web_alone(db, *extra_args) -> WebAlone; stopped (and its
    exit status checked) at teardown."""
    started = []

    def _start(db, *extra):
        w = WebAlone(db, tmp_path, extra)
        started.append(w)
        return w

    yield _start
    for w in started:
        rc = w.stop()
        err = w.err_path.read_text(errors="replace")
        assert rc == 0, err[-2000:]
        assert "Sanitizer" not in err, err[-4000:]


def sse_events(host, port, path, headers, want, timeout=10.0):
    """Open an event stream and read until want(events) is true or the
    time is up. Returns the list of (id, event, data dict)."""
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    events = []
    deadline = time.monotonic() + timeout
    try:
        c.request("GET", path, headers=headers)
        r = c.getresponse()
        assert r.status == 200, r.status
        assert r.getheader("Content-Type") == "text/event-stream"
        cur = {}
        while time.monotonic() < deadline and not want(events):
            c.sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                line = r.readline()
            except (TimeoutError, OSError):
                break
            if not line:
                break
            line = line.decode().rstrip("\r\n")
            if line == "":
                if "event" in cur:
                    events.append((cur.get("id"), cur["event"],
                                   json.loads(cur.get("data", "null"))))
                cur = {}
            elif not line.startswith(":") and ":" in line:
                k, v = line.split(":", 1)
                cur[k] = v[1:] if v.startswith(" ") else v
    finally:
        c.close()
    return events
