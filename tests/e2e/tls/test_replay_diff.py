"""
`peephole replay --diff`: an origin whose answers change between calls (a
JSON body, a gzip-encoded text body, a binary one, headers and status);
the replay must say what changed — JSON by path, text as a unified diff of
the decoded bodies, binary by size and SHA-256 — in text and in --json.
"""
import gzip
import hashlib
import http.server
import json
import threading

from conftest import run_cli

from .conftest import req_rows


class ChangingOrigin:
    """Each path answers differently on every call (n counts calls)."""

    def __init__(self):
        self.n = {}
        origin = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def date_time_string(self, timestamp=None):
                # a fixed Date: the second ticking over between the
                # original and its replay would show as a changed header
                return "Sun, 06 Dec 2026 00:00:00 GMT"

            def do_GET(self):
                n = origin.n[self.path] = origin.n.get(self.path, 0) + 1
                extra = []
                status = 200
                if self.path == "/json":
                    out = json.dumps({"data": {"items": [
                        {"price": 10}, {"price": 11 + n}],
                        "v": n, **({"old": True} if n == 1 else {})}}
                    ).encode()
                    ctype = "application/json"
                elif self.path == "/gz":
                    text = "".join(f"line {i}\n" for i in range(20))
                    text = text.replace("line 7\n", f"line 7 call {n}\n")
                    out = gzip.compress(text.encode())
                    ctype = "text/plain"
                    extra.append(("Content-Encoding", "gzip"))
                else:
                    out = bytes([0, 1, 2, n]) * 8
                    ctype = "application/octet-stream"
                    status = 200 if n == 1 else 203
                extra.append((f"X-Call-{n}", "yes"))
                extra.append(("X-Count", str(n)))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(out)))
                for k, v in extra:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(out)

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever,
                         kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def _ids(cap, o):
    for p in ("/json", "/gz", "/bin"):
        assert cap.curl(o.url(p)).code == 200
    assert cap.stop() == 0
    return {r["path"]: r["id"] for r in req_rows(cap)}


def test_replay_diff_text(tls_proxy):
    o = ChangingOrigin()
    try:
        cap = tls_proxy()
        ids = _ids(cap, o)
        cp = run_cli("replay", ids["/json"], ids["/gz"], ids["/bin"],
                     "--diff", "--db", cap.db, timeout=60)
        assert cp.returncode == 0, cp.stderr
        out = cp.stdout
        # no colour: stdout is not a terminal
        assert "\033[" not in out
        assert "$.data.items[1].price: 12 -> 13" in out
        assert "$.data.v: 1 -> 2" in out
        assert "- $.data.old: true" in out
        # headers: hop-by-hop ignored, end-to-end named
        assert "- X-Call-1: yes" in out and "+ X-Call-2: yes" in out
        assert "~ X-Count: 1 -> 2" in out
        assert "Connection" not in out
        # gzip decoded before the line diff
        assert "-line 7 call 1" in out and "+line 7 call 2" in out
        assert "@@ -5,7 +5,7 @@" in out
        # binary: sizes and hashes; and the status line
        h1 = hashlib.sha256(bytes([0, 1, 2, 1]) * 8).hexdigest()
        h2 = hashlib.sha256(bytes([0, 1, 2, 2]) * 8).hexdigest()
        assert f"- 32 bytes sha256 {h1}" in out
        assert f"+ 32 bytes sha256 {h2}" in out
        assert "status: 200 OK -> 203 Non-Authoritative" in out
    finally:
        o.stop()


def test_replay_diff_json(tls_proxy):
    o = ChangingOrigin()
    try:
        cap = tls_proxy()
        ids = _ids(cap, o)
        cp = run_cli("replay", ids["/json"], ids["/gz"], ids["/bin"],
                     "--diff", "--json", "--db", cap.db, timeout=60)
        assert cp.returncode == 0, cp.stderr
        res = {x["id"]: x["diff"] for x in json.loads(cp.stdout)}
        j = res[ids["/json"]]
        assert j["status"]["same"] is True
        assert j["body"]["kind"] == "json" and j["body"]["same"] is False
        ch = {c["path"]: c for c in j["body"]["changes"]}
        assert ch["$.data.items[1].price"]["original"] == 12
        assert ch["$.data.items[1].price"]["replay"] == 13
        assert ch["$.data.old"]["op"] == "removed"
        assert {h["name"] for h in j["headers"]["added"]} == {"X-Call-2"}
        # the body is shorter: Content-Length is end to end, and changed
        assert {h["name"] for h in j["headers"]["changed"]} == {
            "Content-Length", "X-Count"}
        g = res[ids["/gz"]]
        assert g["body"]["kind"] == "text"
        assert "+line 7 call 2\n" in g["body"]["unified"]
        assert "gzip" in g["body"]["note"]
        b = res[ids["/bin"]]
        assert b["body"]["kind"] == "binary"
        assert b["status"] == {"same": False, "original": 200, "replay": 203,
                               "original_reason": "OK",
                               "replay_reason": "Non-Authoritative "
                                                "Information"}
        assert b["body"]["replay"]["size"] == 32
    finally:
        o.stop()
