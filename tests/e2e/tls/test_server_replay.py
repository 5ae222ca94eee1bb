"""
Server replay: `peephole run --replay-from CAPTURE` answers requests from a
capture made by an earlier run, without asking the origin — over plain HTTP
and over intercepted HTTPS. Each test captures through a real proxy from a
real origin (nginx, or a small Python server where the answer must change
from one request to the next), then stops the origin or checks it was not
asked, and drives curl through the replaying proxy.
"""
import http.server
import os
import threading

from conftest import Nginx, run_cli, sha256, token

from .conftest import req_rows, tcurl


class CountingOrigin:
    """An origin whose answers differ per request: GET /n answers the
    count so far; POST echoes the body it got."""

    def __init__(self):
        self.count = 0
        self.bodies = []
        origin = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _answer(self, body):
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                origin.count += 1
                self._answer(b"answer %d" % origin.count)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                origin.bodies.append(body)
                self._answer(b"got " + body)

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever,
                                       kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def _capture_stopped(p):
    """Stop the capturing proxy cleanly: every exchange is in its file."""
    assert p.stop() == 0, p.stderr()[-2000:]
    return p.db


def test_offline_http_from_a_stopped_origin(tls_proxy, tmp_path):
    ng = Nginx(tmp_path / "origin")
    ng.www.mkdir(parents=True)
    page = b"<html><body>offline " + os.urandom(8).hex().encode() + b"</body>"
    img = os.urandom(600 * 1024)  # several reads from the capture
    ng.add_file("page.html", page)
    ng.add_file("img.jpg", img)
    ng.start()
    try:
        cap = tls_proxy()
        for path in ("/page.html", "/img.jpg", "/page.html?session=1&x=2"):
            r = cap.curl(ng.url("127.0.0.1", path))
            assert (r.rc, r.code) == (0, 200), r.stderr
        capture = _capture_stopped(cap)
    finally:
        ng.stop()

    p = tls_proxy("--replay-from", capture, "--ignore-param", "session")
    r = p.curl(ng.url("127.0.0.1", "/page.html"), "-D", "-")
    assert (r.rc, r.code) == (0, 200), r.stderr
    assert r.body == page
    r = p.curl(ng.url("127.0.0.1", "/img.jpg"))
    assert (r.rc, r.code) == (0, 200), r.stderr
    assert sha256(r.body) == sha256(img)
    # an ignored parameter may differ; the others must not
    r = p.curl(ng.url("127.0.0.1", "/page.html?session=999&x=2"))
    assert (r.rc, r.code, r.body) == (0, 200, page), r.stderr
    r = p.curl(ng.url("127.0.0.1", "/page.html?session=1&x=3"))
    assert r.code == 404
    r = p.curl(ng.url("127.0.0.1", "/missing"))
    assert r.code == 404
    assert b"not in the replayed capture" in r.body
    assert b"nothing logged for GET" in r.body

    assert p.stop() == 0
    orig = {(x["path"], x["query"]): x["id"]
            for x in req_rows(cap)}
    rows = req_rows(p)
    served = [x for x in rows if x["status"] == 200]
    assert [(x["path"], x["replay_of"]) for x in served] == [
        ("/page.html", orig[("/page.html", None)]),
        ("/img.jpg", orig[("/img.jpg", None)]),
        ("/page.html", orig[("/page.html", "session=1&x=2")])]
    assert all(x["label"] == "server-replay" for x in served)
    # the served bodies are recorded like any other
    assert served[1]["resp_body_size"] == len(img)
    assert served[1]["resp_body_sha"] == sha256(img)
    missing = [x for x in rows if x["path"] == "/missing"][0]
    assert missing["status"] == 404
    assert "nothing logged" in missing["error"]


def test_offline_https_never_asks_the_origin(tls_proxy, tls_nginx, certs):
    cap = tls_proxy("--upstream-ca", certs.ca)
    t = token()
    url = f"https://alpha.test:{tls_nginx.port}/small?t={t}"
    r = tcurl(cap, url)
    assert (r.rc, r.code) == (0, 200), r.stderr
    assert len(tls_nginx.wait_entries(t)) == 1
    capture = _capture_stopped(cap)

    p = tls_proxy("--replay-from", capture)
    for _ in range(2):
        r = tcurl(p, url)
        assert (r.rc, r.code) == (0, 200), r.stderr
        assert r.body == tls_nginx.files["small"]
    r = tcurl(p, f"https://alpha.test:{tls_nginx.port}/small?t=other")
    assert r.code == 404
    # the forged certificate was made from the name alone: nginx saw
    # nothing but the capture's one request
    assert p.stop() == 0
    assert len(tls_nginx.entries_with(t)) == 1
    rows = req_rows(p, "scheme = 'https' AND status = 200")
    assert len(rows) == 2
    assert all(x["replay_of"] > 0 for x in rows)


def test_logged_answers_in_order_then_the_last(tls_proxy):
    o = CountingOrigin()
    try:
        cap = tls_proxy()
        for i in range(3):
            r = cap.curl(o.url("/n"))
            assert r.body == b"answer %d" % (i + 1)
        capture = _capture_stopped(cap)
    finally:
        o.stop()
    p = tls_proxy("--replay-from", capture)
    got = [p.curl(o.url("/n")).body for _ in range(5)]
    assert got == [b"answer 1", b"answer 2", b"answer 3", b"answer 3",
                   b"answer 3"]


def test_match_body_and_forward_unmatched(tls_proxy):
    o = CountingOrigin()
    try:
        cap = tls_proxy()
        for b in (b"alpha", b"beta"):
            r = cap.curl(o.url("/echo"), "--data-binary", b.decode())
            assert r.body == b"got " + b
        capture = _capture_stopped(cap)

        # without --match-body the body does not count: logged order
        p = tls_proxy("--replay-from", capture)
        r = p.curl(o.url("/echo"), "--data-binary", "beta")
        assert r.body == b"got alpha"

        p = tls_proxy("--replay-from", capture, "--match-body")
        assert p.curl(o.url("/echo"), "--data-binary", "beta").body == \
            b"got beta"
        assert p.curl(o.url("/echo"), "--data-binary", "alpha").body == \
            b"got alpha"
        r = p.curl(o.url("/echo"), "--data-binary", "gamma")
        assert r.code == 404
        assert b"none with this request body" in r.body
        assert o.bodies == [b"alpha", b"beta"]  # the origin saw no replay

        # unmatched goes to the origin, body intact
        p = tls_proxy("--replay-from", capture, "--match-body",
                      "--forward-unmatched")
        r = p.curl(o.url("/echo"), "--data-binary", "gamma")
        assert (r.code, r.body) == (200, b"got gamma")
        assert o.bodies[-1] == b"gamma"
        assert p.curl(o.url("/echo"), "--data-binary", "beta").body == \
            b"got beta"
        assert o.bodies == [b"alpha", b"beta", b"gamma"]
        assert p.stop() == 0
        rows = req_rows(p)
        assert [(x["replay_of"] > 0, x["label"]) for x in rows] == [
            (False, None), (True, "server-replay")]
    finally:
        o.stop()


def test_replay_flags_are_checked(tmp_path):
    r = run_cli("run", "--match-body", "--db", tmp_path / "x.db")
    assert r.returncode == 2
    assert "--replay-from" in r.stderr
    r = run_cli("run", "--replay-from", tmp_path / "absent.db", "--db",
                tmp_path / "y.db", "--listen", "127.0.0.1:1")
    assert r.returncode == 1
    assert "absent.db" in r.stderr


def test_filter_limits_what_answers(tls_proxy):
    o = CountingOrigin()
    try:
        cap = tls_proxy()
        assert cap.curl(o.url("/keep/a")).code == 200
        assert cap.curl(o.url("/drop/b")).code == 200
        capture = _capture_stopped(cap)
    finally:
        o.stop()
    p = tls_proxy("--replay-from", capture, "--filter", "~u /keep/")
    assert p.curl(o.url("/keep/a")).body == b"answer 1"
    assert p.curl(o.url("/drop/b")).code == 404
    r = run_cli("run", "--replay-from", capture, "--filter", "~d (",
                "--listen", "127.0.0.1:1", "--db", p.dir / "never.db",
                timeout=20)
    assert r.returncode == 2
    assert "bad filter" in r.stderr
    assert not (p.dir / "never.db").exists()
