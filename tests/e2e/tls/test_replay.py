"""
`peephole replay`: requests captured through the real proxy are sent again
to a recording origin (plain HTTP) and to nginx over verified TLS; the
origin must get the same request (hop-by-hop fields aside), modified where
asked, and each replay must be a new row naming its original.
"""
import http.server
import json
import os
import threading

from conftest import run_cli, token

from .conftest import req_rows, tcurl

HOP = {"connection", "proxy-connection", "keep-alive", "te", "trailer",
       "transfer-encoding", "upgrade", "proxy-authorization"}


class RecordingOrigin:
    """Answers every request with 'seen N <path>' and records what came."""

    def __init__(self):
        self.seen = []
        origin = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _any(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n) if n else b""
                origin.seen.append({
                    "method": self.command, "path": self.path,
                    "headers": [(k, v) for k, v in self.headers.items()],
                    "body": body})
                out = b"seen %d %s" % (len(origin.seen),
                                       self.path.encode())
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = _any

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever,
                         kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def _end_to_end(headers):
    return [(k.lower(), v) for k, v in headers if k.lower() not in HOP]


def _replay(db, *args):
    return run_cli("replay", *args, "--db", db, timeout=60)


def test_replay_sends_the_same_request(tls_proxy):
    o = RecordingOrigin()
    try:
        cap = tls_proxy()
        r = cap.curl(o.url("/api/items?x=1&y=2"), "--data-binary",
                     '{"a": 1}', "-H", "Content-Type: application/json",
                     "-H", "X-Trace: abc", "-H", "Connection: X-Hop",
                     "-H", "X-Hop: drop-me")
        assert r.code == 200
        r = cap.curl(o.url("/page"))
        assert r.code == 200
        assert cap.stop() == 0
        post_id, get_id = [x["id"] for x in req_rows(cap)]
        first = o.seen[0]

        cp = _replay(cap.db, post_id, get_id)
        assert cp.returncode == 0, cp.stderr
        again = o.seen[2]
        assert (again["method"], again["path"], again["body"]) == \
            ("POST", "/api/items?x=1&y=2", b'{"a": 1}')
        # what the client sent, as the origin got it the first time (the
        # proxy's own Via aside)
        assert _end_to_end(again["headers"]) == [
            h for h in _end_to_end(first["headers"]) if h[0] != "via"]
        assert ("x-hop", "drop-me") not in _end_to_end(again["headers"])
        lines = cp.stdout.splitlines()
        assert len(lines) == 2
        assert lines[0].startswith(f"#{post_id} -> #")
        assert "status 200->200" in lines[0]
        # the origin counts requests: the answer differs
        assert "body differs" in lines[0]
        rows = req_rows(cap, "replay_of > 0")
        assert [x["replay_of"] for x in rows] == [post_id, get_id]
        assert rows[0]["req_body_size"] == len(b'{"a": 1}')
        assert rows[0]["status"] == 200 and rows[0]["method"] == "POST"

        # modifications reach the origin
        body = cap.dir / "new-body.json"
        body.write_bytes(b'{"b": 2, "c": [1, 2, 3]}')
        cp = _replay(cap.db, post_id, "--set-header", "X-Trace: replayed",
                     "--set-header", "X-New: 1", "--remove-header",
                     "user-agent", "--body", body)
        assert cp.returncode == 0, cp.stderr
        mod = o.seen[-1]
        hs = dict(_end_to_end(mod["headers"]))
        assert hs["x-trace"] == "replayed" and hs["x-new"] == "1"
        assert "user-agent" not in hs
        assert mod["body"] == body.read_bytes()
        assert hs["content-length"] == str(len(body.read_bytes()))

        # repeat and concurrency: three more rows, all answered
        n = len(o.seen)
        cp = _replay(cap.db, get_id, "--repeat", "3", "--concurrency", "2",
                     "--json")
        assert cp.returncode == 0, cp.stderr
        res = json.loads(cp.stdout)
        assert len(res) == 3 and len(o.seen) == n + 3
        assert all(x["replay"]["status"] == 200 for x in res)
        assert len({x["replay_id"] for x in res}) == 3

        # --filter picks the originals
        cp = _replay(cap.db, "--filter", "~m POST & !~proto server-replay",
                     "--json")
        assert cp.returncode == 0, cp.stderr
        assert {x["id"] for x in json.loads(cp.stdout)} >= {post_id}
    finally:
        o.stop()


def test_replay_through_a_proxy_and_when_the_origin_is_gone(tls_proxy):
    o = RecordingOrigin()
    cap = tls_proxy()
    assert cap.curl(o.url("/via")).code == 200
    assert cap.stop() == 0
    rid = req_rows(cap)[0]["id"]
    via = tls_proxy()
    cp = _replay(cap.db, rid, "--via", f"127.0.0.1:{via.port}")
    assert cp.returncode == 0, cp.stderr
    assert o.seen[-1]["path"] == "/via"
    assert via.stop() == 0
    # the proxy it went through logged it too
    assert [x["path"] for x in req_rows(via)] == ["/via"]

    o.stop()
    cp = _replay(cap.db, rid, "--timeout", "5")
    assert cp.returncode == 1
    assert "error: cannot connect" in cp.stdout
    failed = req_rows(cap, "replay_of = ?", (rid,))[-1]
    assert failed["status"] == 0 and "cannot connect" in failed["error"]

    cp = _replay(cap.db, 999999)
    assert cp.returncode == 1 and "no request 999999" in cp.stderr
    cp = _replay(cap.db)
    assert cp.returncode == 2
    cp = _replay(cap.db, rid, "--set-header", "no colon")
    assert cp.returncode == 2


def test_truncated_body_refused_unless_allowed(tls_proxy):
    o = RecordingOrigin()
    try:
        cap = tls_proxy(conf_extra={"body-capture-limit": "1K"})
        big = os.urandom(3000).hex()
        assert cap.curl(o.url("/upload"), "--data-binary", big).code == 200
        assert cap.stop() == 0
        rid = req_rows(cap)[0]["id"]
        n = len(o.seen)
        cp = _replay(cap.db, rid)
        assert cp.returncode == 1
        assert "truncated" in cp.stdout and len(o.seen) == n
        cp = _replay(cap.db, rid, "--allow-truncated")
        assert cp.returncode == 0, cp.stderr
        assert o.seen[-1]["body"] == big.encode()[:1024]
    finally:
        o.stop()


def test_https_replay_verifies_the_origin(tls_proxy, tls_nginx, certs):
    cap = tls_proxy("--upstream-ca", certs.ca)
    t = token()
    r = tcurl(cap, f"https://alpha.test:{tls_nginx.port}/small?t={t}")
    assert r.code == 200
    assert cap.stop() == 0
    rid = req_rows(cap, "scheme = 'https'")[0]["id"]
    resolve = "alpha.test:127.0.0.1"
    # the test CA is not in the system store: refused, nothing sent
    cp = _replay(cap.db, rid, "--resolve", resolve)
    assert cp.returncode == 1
    assert "certificate rejected" in cp.stdout, cp.stdout
    assert len(tls_nginx.entries_with(t)) == 1
    cp = _replay(cap.db, rid, "--resolve", resolve, "--upstream-ca",
                 certs.ca)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "status 200->200" in cp.stdout and "body same" in cp.stdout
    es = tls_nginx.wait_entries(t, 2)
    assert len(es) == 2 and es[1]["sni"] == "alpha.test"
    row = req_rows(cap, "replay_of = ?", (rid,))[-1]
    assert row["scheme"] == "https" and row["status"] == 200


def test_replay_times_out_on_a_silent_origin(tls_proxy):
    import socket
    o = RecordingOrigin()
    cap = tls_proxy()
    assert cap.curl(o.url("/slow")).code == 200
    assert cap.stop() == 0
    port = o.port
    o.stop()
    # the same port now accepts and never answers
    with socket.socket() as silent:
        silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        silent.bind(("127.0.0.1", port))
        silent.listen(8)
        rid = req_rows(cap)[0]["id"]
        cp = _replay(cap.db, rid, "--timeout", "1")
    assert cp.returncode == 1
    assert "no answer within 1s" in cp.stdout, cp.stdout
    row = req_rows(cap, "replay_of = ?", (rid,))[-1]
    assert row["status"] == 0 and "no answer" in row["error"]


def test_https_replay_through_peephole(tls_proxy, tls_nginx, certs):
    """--via for https: CONNECT, then TLS with the proxy's forged
    certificate (trusted with --upstream-ca), which the proxy logs."""
    cap = tls_proxy("--upstream-ca", certs.ca)
    t = token()
    assert tcurl(cap, f"https://alpha.test:{tls_nginx.port}/second?t={t}"
                 ).code == 200
    assert cap.stop() == 0
    rid = req_rows(cap, "scheme = 'https'")[0]["id"]
    via = tls_proxy("--upstream-ca", certs.ca)
    cp = _replay(cap.db, rid, "--via", f"127.0.0.1:{via.port}",
                 "--upstream-ca", via.ca_pem)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "status 200->200" in cp.stdout and "body same" in cp.stdout
    assert via.stop() == 0
    rows = req_rows(via, "scheme = 'https'")
    assert [(x["host"], x["path"]) for x in rows] == [("alpha.test",
                                                       "/second")]
    # a proxy that cannot be reached is an error, not a hang
    cp = _replay(cap.db, rid, "--via", "127.0.0.1:1", "--timeout", "5")
    assert cp.returncode == 1 and "cannot connect" in cp.stdout
