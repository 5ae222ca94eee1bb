"""
The web UI's server, end to end with curl and urllib: the token, cookie,
Host and CSRF gate; the JSON API over a capture that curl made through the
proxy (flows, filters, one exchange with its gzip body decoded, bodies,
curl export, domains, connections, streams, passthrough); the live event
stream and its resumption; the actions (replay, HAR); `peephole web`
read-only; and the password.
"""
import json
import subprocess
import time

from conftest import CURL, run_cli, token, wait_for
from web.conftest import sse_events


def _curl_through(p, url, *extra):
    r = p.curl(url, *extra)
    assert r.code == 200, r
    return r


def _flow_for(web, tok, timeout=5.0):
    """The /api/flows row whose URL holds tok, once it is there."""
    def find():
        rows = web.json("/api/flows?limit=5000")["flows"]
        return next((f for f in rows if tok in (f["url"] or "")), None)

    f = wait_for(find, timeout)
    assert f is not None, f"no flow with {tok}"
    return f


# ---- the gate ----


def test_token_cookie_host_and_csrf(web_proxy):
    web = web_proxy.web
    # nothing without the token: the API and the page alike
    st, h, body = web.get("/api/flows", auth=False)
    assert st == 401 and b"token" in body
    st, _, _ = web.get("/", auth=False)
    assert st == 401
    st, _, _ = web.get("/?token=" + "0" * 64, auth=False)
    assert st == 401
    # the printed link: a cookie, and the token taken out of the address
    st, h, _ = web.get(f"/?token={web.token}&filter=x", auth=False)
    assert st == 303
    assert h["location"] == "/?filter=x"
    cookie = h["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    session = cookie.split(";")[0]
    assert web.token not in session  # the cookie is not the token
    st, h, page = web.get("/", auth=False, headers={"Cookie": session})
    assert st == 200 and b"<html" in page.lower()
    assert "script-src 'self'" in h["content-security-policy"]
    assert h["x-frame-options"] == "DENY"
    assert "access-control-allow-origin" not in h
    st, _, _ = web.get("/api/session", auth=False,
                       headers={"Cookie": session})
    assert st == 200
    # DNS rebinding: a foreign name is refused even with the token
    for host in ("evil.example", f"evil.example:{web.port}",
                 f"127.0.0.1:{web.port + 1}"):
        st, _, _ = web.get("/api/session", headers={"Host": host})
        assert st == 403, host
    for host in (f"localhost:{web.port}", f"127.0.0.1:{web.port}"):
        st, _, _ = web.get("/api/session", headers={"Host": host})
        assert st == 200, host
    # a POST needs the token in its header, not only the cookie (CSRF),
    # and a foreign Origin is refused
    st, _, _ = web.post("/api/har", auth=False, headers={"Cookie": session})
    assert st == 403
    st, _, _ = web.post("/api/har", headers={"Origin": "http://evil.example"})
    assert st == 403
    st, _, _ = web.post("/api/har", headers={
        "Origin": f"http://127.0.0.1:{web.port}"})
    assert st == 200
    # the session says what the page needs
    s = web.json("/api/session")
    assert s["token"] == web.token and s["readonly"] is False


def test_static_files_and_etag(web_proxy):
    web = web_proxy.web
    for path, ctype in (("/", "text/html"), ("/vendor/preact.mjs",
                                             "text/javascript"),
                        ("/vendor/uplot.css", "text/css")):
        st, h, body = web.get(path)
        assert st == 200 and h["content-type"].startswith(ctype), path
        assert len(body) > 100
        st2, _, _ = web.get(path, headers={"If-None-Match": h["etag"]})
        assert st2 == 304
    st, _, _ = web.get("/no-such-file.js")
    assert st == 404
    st, _, _ = web.get("/api/no-such")
    assert st == 404


# ---- reads ----


def test_flows_filter_detail_and_bodies(web_proxy, web_origin):
    p, web = web_proxy, web_proxy.web
    tok = token()
    _curl_through(p, web_origin.url(f"/data.json?t={tok}"),
                  "-H", "Accept-Encoding: gzip")
    _curl_through(p, web_origin.url(f"/page.html?t={tok}"))
    _curl_through(p, web_origin.url(f"/pixel.png?t={tok}"))
    flow = _flow_for(web, f"data.json?t={tok}")
    wait_for(lambda: len([f for f in web.json("/api/flows")["flows"]
                          if tok in f["url"]]) == 3, 5)
    page = web.json("/api/flows")
    mine = [f for f in page["flows"] if tok in f["url"]]
    assert len(mine) == 3
    assert [f["id"] for f in page["flows"]] == sorted(
        f["id"] for f in page["flows"])
    assert flow["method"] == "GET" and flow["status"] == 200
    assert flow["host"] == "alpha.test"

    # the filter is the CLI's, bodies included, evaluated on the server
    by_body = web.json("/api/flows?filter=" + "~bs%20'hello%20web'")
    assert [f["id"] for f in by_body["flows"]] == [flow["id"]]
    by_url = web.json(f"/api/flows?filter=png%20%26%20{tok}")["flows"]
    assert len(by_url) == 1 and by_url[0]["url"].endswith(
        f"/pixel.png?t={tok}")
    err = web.json("/api/flows?filter=~q%20(", want=400)
    assert "error" in err and err["error"]
    # paging: after / limit / more
    one = web.json(f"/api/flows?limit=1&after={mine[0]['id'] - 1}")
    assert [f["id"] for f in one["flows"]] == [mine[0]["id"]]
    assert one["more"] is True and one["last"] == mine[0]["id"]
    assert web.json("/api/flows?limit=x", want=400)

    # one exchange: headers in order, the gzip JSON body decoded
    d = web.json(f"/api/flows/{flow['id']}")
    assert d["id"] == flow["id"]
    names = [h["name"].lower() for h in d["resp_headers"]]
    assert names.index("content-type") < names.index("content-encoding")
    assert json.loads(d["resp_body_text"])["greeting"] == "hello web"
    assert d["resp_body_encoding"] == "gzip"
    raw = web.json(f"/api/flows/{flow['id']}?raw=1")
    assert raw["resp_body_text"] is None or \
        "hello web" not in raw["resp_body_text"]
    assert web.json("/api/flows/999999", want=404)

    # the body itself: decoded, or as stored; sandboxed; downloadable
    st, h, body = web.get(f"/api/flows/{flow['id']}/body?side=resp")
    assert st == 200 and json.loads(body)["token"] == tok
    assert h["content-type"].startswith("application/json")
    assert "sandbox" in h["content-security-policy"]
    st, h, body = web.get(f"/api/flows/{flow['id']}/body?raw=1")
    assert st == 200 and body[:2] == b"\x1f\x8b"
    st, h, _ = web.get(f"/api/flows/{flow['id']}/body?download=1")
    assert "attachment" in h["content-disposition"]
    png = _flow_for(web, f"pixel.png?t={tok}")
    st, h, body = web.get(f"/api/flows/{png['id']}/body")
    assert st == 200 and h["content-type"] == "image/png"
    assert body.startswith(b"\x89PNG")
    st, _, _ = web.get(f"/api/flows/{png['id']}/body?side=req")
    assert st == 404
    st, _, _ = web.get(f"/api/flows/{png['id']}/body?side=both")
    assert st == 400

    # copy as curl: the CLI's own export
    st, h, text = web.get(f"/api/flows/{flow['id']}/curl")
    assert st == 200 and h["content-type"].startswith("text/plain")
    cli = run_cli("export", "curl", flow["id"], "--db", p.db)
    assert text.decode() == cli.stdout
    assert f"data.json?t={tok}" in text.decode()


def test_domains_conns_streams_passthrough(web_proxy, web_origin):
    p, web = web_proxy, web_proxy.web
    tok = token()
    _curl_through(p, web_origin.url(f"/x?t={tok}"))
    # a tunnel to a port where nothing listens: a connection without an
    # exchange of its own
    dead = subprocess.run(
        [CURL, "-sS", "--max-time", "10", "-x", p.url, "--noproxy", "",
         "-p", f"https://alpha.test:{web_origin.port}/"],
        capture_output=True, timeout=20, env=p.env)
    assert dead.returncode != 0
    doms = wait_for(lambda: [d for d in web.json("/api/domains")
                             if d.get("domain") == "alpha.test"], 5)
    assert doms, web.json("/api/domains")
    conns = wait_for(lambda: web.json("/api/conns")["conns"], 10)
    assert conns, "no connection rows"
    c = conns[-1]
    for k in ("conn_id", "seq", "kind", "time_us", "target", "reason",
              "bytes_up", "bytes_down"):
        assert k in c, k
    assert [x["seq"] for x in conns] == sorted(x["seq"] for x in conns)
    assert isinstance(web.json("/api/streams"), list)
    assert isinstance(web.json("/api/passthrough"), list)
    assert web.json("/api/streams/999999", want=404)


# ---- live ----


def test_events_live_and_resume(web_proxy, web_origin):
    p, web = web_proxy, web_proxy.web
    hdr = {"Host": f"127.0.0.1:{web.port}", "X-Peephole-Token": web.token}
    tok = token()
    # a stream opened now sees the next exchange within two seconds
    import threading
    got = {}

    def listen():
        got["ev"] = sse_events(
            web.host, web.port, "/api/events", hdr,
            lambda evs: any(e == "flow" and tok in d["url"]
                            for _, e, d in evs), timeout=10)

    t = threading.Thread(target=listen)
    t.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    _curl_through(p, web_origin.url(f"/live?t={tok}"))
    t.join(15)
    flows = [(i, d) for i, e, d in got["ev"] if e == "flow"]
    assert any(tok in d["url"] for _, d in flows), got["ev"]
    last_id = [i for i, d in flows if tok in d["url"]][-1]
    assert last_id.count(".") == 2

    # what happens while nobody listens comes with Last-Event-ID
    tok2 = token()
    for n in range(3):
        _curl_through(p, web_origin.url(f"/missed{n}?t={tok2}"))
    _flow_for(web, f"missed2?t={tok2}")
    evs = sse_events(web.host, web.port, "/api/events",
                     dict(hdr, **{"Last-Event-ID": last_id}),
                     lambda evs: sum(1 for _, e, d in evs if e == "flow"
                                     and tok2 in d["url"]) >= 3,
                     timeout=10)
    missed = [d["url"] for _, e, d in evs if e == "flow"]
    assert [u for u in missed if tok2 in u] == [
        web_origin.url(f"/missed{n}?t={tok2}") for n in range(3)]
    assert not any(tok in u for u in missed)  # nothing twice
    # a filtered stream gets only what matches
    evs = sse_events(web.host, web.port,
                     "/api/events?filter=missed1&last=0.0.0", hdr,
                     lambda evs: any(e == "flow" for _, e, d in evs),
                     timeout=10)
    urls = [d["url"] for _, e, d in evs if e == "flow"]
    assert urls and all("missed1" in u for u in urls)
    assert time.monotonic() - t0 < 60


# ---- actions ----


def test_replay_and_har(web_proxy, web_origin):
    p, web = web_proxy, web_proxy.web
    tok = token()
    _curl_through(p, web_origin.url(f"/data.json?t={tok}"),
                  "-H", "Accept-Encoding: gzip")
    flow = _flow_for(web, tok)
    r = web.json(f"/api/flows/{flow['id']}/replay", method="POST")
    new = r["id"]
    assert new > flow["id"]
    assert r["replay"]["replay"]["status"] == 200
    row = p.dbh().requests("id = ?", (new,))
    assert len(row) == 1
    got = _flow_for(web, tok)  # noqa: F841 the list has both
    assert web.json(f"/api/flows/{new}")["replay_of"] == flow["id"]
    assert web.json("/api/flows/999999/replay", method="POST",
                    want=502)["error"]

    # HAR of a filter, as a download, streamed from `export har`
    st, h, body = web.post(f"/api/har?filter={tok}")
    assert st == 200 and "attachment" in h["content-disposition"]
    har = json.loads(body)
    urls = [e["request"]["url"] for e in har["log"]["entries"]]
    assert len(urls) == 2 and all(tok in u for u in urls)
    st, _, body = web.post("/api/har?filter=~q%20(")
    assert st == 400 and b"error" in body


# ---- read-only, password ----


def test_web_alone_is_read_only(web_proxy, web_origin, web_alone):
    p = web_proxy
    tok = token()
    _curl_through(p, web_origin.url(f"/ro?t={tok}"))
    flow = _flow_for(p.web, tok)
    w = web_alone(p.db).web
    assert any(f["id"] == flow["id"] for f in w.json("/api/flows")["flows"])
    assert w.json("/api/session")["readonly"] is True
    e = w.json(f"/api/flows/{flow['id']}/replay", method="POST", want=403)
    assert e["error"].startswith("read-only")
    e = w.json("/api/passthrough/retry?host=alpha.test", method="POST",
               want=403)
    assert e["error"].startswith("read-only")
    st, _, body = w.post(f"/api/har?filter={tok}")
    assert st == 200 and len(json.loads(body)["log"]["entries"]) == 1
    # a capture being written shows up live in the read-only server too
    tok2 = token()
    _curl_through(p, web_origin.url(f"/ro2?t={tok2}"))
    _flow_for(w, tok2)


def test_password_and_listen_rules(web_proxy, web_alone, tmp_path):
    db = web_proxy.db
    w = web_alone(db, "--web-password", "s3cret").web
    st, h, _ = w.get(f"/?token={w.token}", auth=False)
    assert st == 401 and h["www-authenticate"].startswith("Basic")
    st, _, _ = w.get("/api/session")  # token without the password
    assert st == 401
    import base64
    basic = "Basic " + base64.b64encode(b"me:s3cret").decode()
    st, h, _ = w.get(f"/?token={w.token}", auth=False,
                     headers={"Authorization": basic})
    assert st == 303 and "set-cookie" in h
    st, _, _ = w.get("/api/session", headers={"Authorization": basic})
    assert st == 200
    # off loopback without a password: refused at start, exit 2
    r = run_cli("web", "--db", db, "--listen", "0.0.0.0:0")
    assert r.returncode == 1 and "--web-password" in r.stderr
    r = run_cli("web", "--db", db, "--listen", "not-an-address:1")
    assert r.returncode == 2 and "IP address" in r.stderr
    r = run_cli("run", "--db", tmp_path / "x.db", "--web", "nope:x")
    assert r.returncode == 2


def test_retry_interception_for_a_pinned_host(web_proxy):
    p, web = web_proxy, web_proxy.web
    import sqlite3
    future = int(time.time() * 1e6) + 3600 * 10**6
    db = sqlite3.connect(str(p.db), timeout=10)
    db.execute("INSERT INTO learned_passthrough (host, port, reason,"
               " first_seen, last_seen, rejections, last_reason,"
               " next_retry_us) VALUES ('pinned.test', 443,"
               " 'client-rejected-cert', 1, 1, 1, 'client-rejected-cert',"
               " ?)", (future,))
    db.commit()
    db.close()
    rows = wait_for(lambda: [r for r in web.json("/api/passthrough")
                             if r.get("host") == "pinned.test"], 5)
    assert rows, web.json("/api/passthrough")
    assert web.json("/api/passthrough/retry?host=pinned.test",
                    method="POST") == {"ok": True}
    db = sqlite3.connect(str(p.db), timeout=10)
    (nxt,) = db.execute("SELECT next_retry_us FROM learned_passthrough"
                        " WHERE host = 'pinned.test'").fetchone()
    db.close()
    assert nxt == 0
    assert web.json("/api/passthrough/retry", method="POST", want=400)


def test_the_readme_curl_examples(web_proxy, web_origin):
    """The API as the README shows it, with curl itself."""
    p, web = web_proxy, web_proxy.web
    tok = token()
    _curl_through(p, web_origin.url(f"/data.json?t={tok}"),
                  "-H", "Accept-Encoding: gzip")
    flow = _flow_for(web, tok)
    base = f"http://127.0.0.1:{web.port}"
    hdr = ["-H", f"X-Peephole-Token: {web.token}"]

    def c(*args, timeout=15):
        r = subprocess.run([CURL, "-sS", "--noproxy", "*", *hdr, *args],
                           capture_output=True, timeout=timeout + 5)
        return r.stdout

    rows = json.loads(c(f"{base}/api/flows?filter=~d%20alpha&limit=50"))
    assert any(f["id"] == flow["id"] for f in rows["flows"])
    one = json.loads(c(f"{base}/api/flows/{flow['id']}"))
    assert json.loads(one["resp_body_text"])["token"] == tok
    ev = c("-N", "--max-time", "3", f"{base}/api/events?last=0.0.0",
           timeout=3).decode()
    assert f"\"id\":{flow['id']}," in ev and "event: flow" in ev
    rep = json.loads(c("-X", "POST", f"{base}/api/flows/{flow['id']}/replay"))
    assert rep["id"] > flow["id"]
    # without the token: 401
    r = subprocess.run([CURL, "-sS", "--noproxy", "*", "-o", "/dev/null",
                        "-w", "%{http_code}", f"{base}/api/flows"],
                       capture_output=True, timeout=15)
    assert r.stdout == b"401"


# ---- regressions from review ----


def _raw(port, data, timeout=5):
    """Send raw bytes to the web server and read until it closes or the
    time is up."""
    import socket
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                d = s.recv(65536)
            except TimeoutError:
                break
            if not d:
                break
            out += d
    finally:
        s.close()
    return out


def test_head_and_http10_framing(web_proxy, web_origin):
    """HEAD gets no body (evhttp 2.1 would send one and desynchronise a
    keep-alive connection); streamed answers to HTTP/1.0 keep-alive end
    with the connection, not after a bogus Content-Length: 0; "//x" is
    refused rather than redirected off the site."""
    p, web = web_proxy, web_proxy.web
    tok = token()
    _curl_through(p, web_origin.url(f"/h10?t={tok}"))
    _flow_for(web, tok)
    host = f"Host: 127.0.0.1:{web.port}\r\nX-Peephole-Token: {web.token}"
    out = _raw(web.port, (f"HEAD / HTTP/1.1\r\n{host}\r\n\r\n"
                          f"GET /api/session HTTP/1.1\r\n{host}\r\n"
                          "Connection: close\r\n\r\n").encode())
    head, rest = out.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length:" in head
    assert rest.startswith(b"HTTP/1.1 200"), rest[:200]  # no stray body
    out = _raw(web.port, f"HEAD /api/session HTTP/1.1\r\n{host}\r\n"
               "Connection: close\r\n\r\n".encode())
    assert out.startswith(b"HTTP/1.1 405") and b"Allow: GET, POST" in out
    out = _raw(web.port, (f"POST /api/har?filter={tok} HTTP/1.0\r\n{host}"
                          "\r\nConnection: keep-alive\r\n\r\n").encode(),
               timeout=15)
    head, body = out.split(b"\r\n\r\n", 1)
    assert b"Content-Length: 0" not in head, head
    assert len(json.loads(body)["log"]["entries"]) == 1
    st, h, _ = web.get(f"//evil.example/?token={web.token}", auth=False)
    assert st != 303 or not h["location"].startswith("//")
    st, _, _ = web.get(f"/\\evil.example/?token={web.token}", auth=False)
    assert st == 400
    # a bad filter on the event stream: one error event, then the end
    out = _raw(web.port, (f"GET /api/events?filter=~q%20( HTTP/1.0\r\n"
                          f"{host}\r\n\r\n").encode(), timeout=10)
    assert b"event: error" in out


class _Silent:
    """An origin that accepts and never answers: a replay of it runs
    until its timeout, long enough to look at the child."""

    def __init__(self):
        import socket
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        import threading
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            if len(self.conns) == 1:
                # the first exchange is the capture: answer it
                c.recv(4096)
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def _children(pid):
    kids = []
    import os
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                st = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            if int(st.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(d))
    return kids


def _socket_inodes(pid):
    import os
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            t = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if t.startswith("socket:"):
            out.add(t)
    return out


def test_action_children_take_signals_and_no_sockets(web_proxy):
    """A child command (here a replay waiting on a silent origin) runs
    with no blocked signals, default SIGPIPE, and none of the proxy's
    sockets; the proxy's stop ends it."""
    import threading
    p, web = web_proxy, web_proxy.web
    srv = _Silent()
    try:
        r = p.curl(f"http://127.0.0.1:{srv.port}/slow")
        assert r.code == 200
        flow = _flow_for(web, f"127.0.0.1:{srv.port}/slow")
        def replay():
            try:
                web.post(f"/api/flows/{flow['id']}/replay", timeout=40)
            except OSError:
                pass  # the proxy stopped under it

        t = threading.Thread(target=replay, daemon=True)
        t.start()
        kids = wait_for(lambda: _children(p.proc.pid), 10)
        assert kids, "no child command"
        kid = kids[0]
        status = open(f"/proc/{kid}/status").read()
        fields = dict(ln.split(":\t", 1) for ln in status.splitlines()
                      if ":\t" in ln)
        assert int(fields["SigBlk"], 16) == 0, fields["SigBlk"]
        assert not int(fields["SigIgn"], 16) & (1 << (13 - 1))  # SIGPIPE
        assert not (_socket_inodes(kid) & _socket_inodes(p.proc.pid))
        assert p.stop() == 0  # web_stop kills and reaps the child
        import os
        assert not os.path.exists(f"/proc/{kid}/stat") or \
            open(f"/proc/{kid}/stat").read().split()[2] == "Z"
    finally:
        srv.close()
    t.join(10)
