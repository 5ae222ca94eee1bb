"""
Plain-HTTP forward proxying: methods, versions, keep-alive, pipelining,
hop-by-hop headers, Via, Upgrade tunnels, requests addressed to the proxy.
"""
import os
import time

from conftest import run_cli, RawConn, origin_body, sha256, token, ws_echo


def test_get_small(proxy, nginx, dns_stub):
    t = token()
    r = proxy.curl(nginx.url("alpha.test", f"/small?t={t}"),
                   "-H", "X-Test: get")
    assert r.rc == 0, r.stderr
    assert r.code == 200
    assert r.body == nginx.files["small"]
    es = nginx.wait_entries(t)
    assert len(es) == 1
    e = es[0]
    # origin-form upstream, Host kept as the client gave it
    assert e["method"] == "GET"
    assert e["uri"] == f"/small?t={t}"
    assert e["host"] == f"alpha.test:{nginx.port}"
    assert e["h_x_test"] == "get"
    assert e["status"] == "200"
    # alpha.test comes from the hosts file, not from DNS
    assert dns_stub.asked("alpha.test") == []
    assert proxy.stop() == 0
    rows = proxy.dbh().requests_with(t)
    assert len(rows) == 1
    assert rows[0]["status"] == 200
    assert rows[0]["host"] == "alpha.test"


def test_post_body_reaches_origin(proxy, nginx, origin):
    t = token()
    text = ("field=" + "x" * 20000 + "&end=1").encode()
    f = proxy.dir / "post.txt"
    f.write_bytes(text)
    r = proxy.curl(nginx.url("alpha.test", f"/upload?t={t}"),
                   "--data-binary", f"@{f}", "-H", "Expect:")
    assert r.rc == 0, r.stderr
    assert (r.code, r.body) == (200, b"ok\n")
    e = nginx.wait_entries(t)[0]
    assert e["method"] == "POST"
    assert e["content_length"] == str(len(text))
    assert e["body"] == text.decode()

    # binary body, checked by hash at a Python origin
    blob = os.urandom(300001)
    f.write_bytes(blob)
    r = proxy.curl(origin.url("alpha.test", f"/sha?t={t}"),
                   "--data-binary", f"@{f}", "-H",
                   "Content-Type: application/octet-stream")
    assert r.rc == 0, r.stderr
    assert r.body.decode().split() == [sha256(blob), str(len(blob))]
    got = origin.with_token(t)
    assert len(got) == 1 and got[0]["body"] == blob


def test_head(proxy, nginx):
    t = token()
    size = len(nginx.files["medium.bin"])
    r = proxy.curl(nginx.url("alpha.test", f"/medium.bin?t={t}"), "-I")
    assert r.rc == 0, r.stderr
    assert r.code == 200
    assert f"content-length: {size}" in r.body.decode().lower()
    e = nginx.wait_entries(t)[0]
    assert e["method"] == "HEAD"
    assert e["bytes_sent"] == "0"


def test_keepalive_client_and_upstream_reuse(proxy, nginx):
    t = token()
    urls = [nginx.url("alpha.test", f"/{n}?t={t}&n={i}")
            for i, n in enumerate(["small", "p2.txt", "p3.txt"])]
    r = proxy.curl(urls)
    assert r.rc == 0, r.stderr
    assert r.codes == [200, 200, 200]
    assert r.connects == 1  # curl kept one connection to the proxy
    es = nginx.wait_entries(t, 3)
    assert len(es) == 3
    # the proxy reused its upstream connection: one nginx connection
    assert len({e["connection"] for e in es}) == 1, es
    assert [int(e["connection_requests"]) for e in es] == sorted(
        int(e["connection_requests"]) for e in es)
    assert proxy.stop() == 0
    db = proxy.dbh()
    rows = db.requests_with(t)
    assert len(rows) == 3
    assert len({r["conn_id"] for r in rows}) == 1
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert [r["path"] for r in rows] == ["/small", "/p2.txt", "/p3.txt"]
    assert [r["upstream_reused"] for r in rows][1:] == [1, 1]
    conns = db.connections("id = ?", (rows[0]["conn_id"],))
    assert len(conns) == 1
    assert conns[0]["nrequests"] == 3


def test_pipelined_requests_answered_in_order(proxy, nginx):
    t = token()
    host = f"alpha.test:{nginx.port}"
    reqs = [("GET", f"/small?t={t}&n=1"), ("HEAD", f"/p2.txt?t={t}&n=2"),
            ("GET", f"/p3.txt?t={t}&n=3")]
    wire = b"".join(
        f"{m} http://{host}{u} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        for m, u in reqs)
    with RawConn(proxy.port) as c:
        c.send(wire)  # all three in one write
        got = [c.read_response(m) for m, _ in reqs]
    assert [g.status for g in got] == [200, 200, 200]
    assert [g.get("x-uri") for g in got] == [u for _, u in reqs]
    assert got[0].body == nginx.files["small"]
    assert got[1].body == b""
    assert got[1].get("content-length") == str(len(nginx.files["p2.txt"]))
    assert got[2].body == nginx.files["p3.txt"]
    es = nginx.wait_entries(t, 3)
    assert [e["uri"] for e in es] == [u for _, u in reqs]
    assert proxy.stop() == 0
    rows = sorted(proxy.dbh().requests_with(t), key=lambda r: r["seq"])
    assert [(r["method"], r["query"]) for r in rows] == [
        (m, u.split("?", 1)[1]) for m, u in reqs]


def test_http10_client(proxy, nginx, origin):
    t = token()
    r = proxy.curl(nginx.url("alpha.test", f"/small?t={t}"), "--http1.0")
    assert r.rc == 0, r.stderr
    assert (r.code, r.body) == (200, nginx.files["small"])

    # Raw HTTP/1.0 without Host or keep-alive: the proxy answers and closes;
    # a chunked origin response must reach a 1.0 client de-chunked.
    with RawConn(proxy.port) as c:
        c.send(f"GET {origin.url('alpha.test', '/chunked')}"
               f"?size=30000&seed=5&t={t} HTTP/1.0\r\n\r\n".encode())
        resp = c.read_response()
        assert resp.status == 200
        assert "chunked" not in (resp.get("transfer-encoding") or "")
        assert resp.body == origin_body(30000, 5)
        assert c.closed_by_peer(5)
    assert proxy.stop() == 0
    rows = proxy.dbh().requests_with(t)
    assert len(rows) == 2
    assert [r["req_version"] for r in rows] == ["1.0", "1.0"]
    assert rows[1]["resp_body_size"] == 30000


def test_hop_by_hop_removed_no_via(proxy, nginx):
    """RFC 9110 7.6.1: the proxy drops Proxy-Connection,
    Proxy-Authorization and the fields Connection names (X-Hop, and
    Keep-Alive via `Connection: keep-alive`). TE and Trailer are not named
    by Connection here, so they are forwarded like any end-to-end field.
    No Via by default (README "How it proxies")."""
    t = token()
    r = proxy.curl(nginx.url("alpha.test", f"/small?t={t}"),
                   "-H", "Connection: keep-alive, X-Hop",
                   "-H", "X-Hop: secret",
                   "-H", "Proxy-Connection: keep-alive",
                   "-H", "Keep-Alive: timeout=5",
                   "-H", "TE: trailers",
                   "-H", "Trailer: X-Checksum",
                   "-H", "Proxy-Authorization: Basic Zm9vOmJhcg==",
                   "-H", "X-Test: kept")
    assert r.rc == 0, r.stderr
    assert r.code == 200
    e = nginx.wait_entries(t)[0]
    assert e["h_x_test"] == "kept"
    assert e["h_te"] == "trailers", e["h_te"]
    assert e["h_trailer"] == "X-Checksum", e["h_trailer"]
    for h in ("h_x_hop", "h_proxy_connection", "h_keep_alive",
              "h_proxy_authorization"):
        assert e[h] == "", (h, e[h])
    # Connection itself goes as sent (it is what names the hop fields)
    assert e["h_connection"] == "keep-alive, X-Hop", e["h_connection"]
    assert e["h_via"] == "", e["h_via"]


def test_response_hop_by_hop_removed(proxy, origin):
    t = token()
    with RawConn(proxy.port) as c:
        c.send(f"GET {origin.url('alpha.test', '/hop')}?t={t} HTTP/1.1\r\n"
               f"Host: alpha.test:{origin.port}\r\n\r\n".encode())
        r = c.read_response()
    assert r.status == 200
    assert r.body == b"hop\n"
    assert r.get("x-kept") == "yes"
    assert r.get("x-resp-hop") is None
    assert r.get("keep-alive") is None
    assert "x-resp-hop" not in (r.get("connection") or "").lower()


def test_upgrade_tunnel(proxy, origin):
    t = token()
    host = f"alpha.test:{origin.port}"
    with RawConn(proxy.port) as c:
        c.send(f"GET http://{host}/ws?t={t} HTTP/1.1\r\nHost: {host}\r\n"
               "Connection: Upgrade\r\nUpgrade: websocket\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        r = c.read_response()
        assert r.status == 101
        assert (r.get("upgrade") or "").lower() == "websocket"
        for msg in (b"ping-1", b"\x00\x01binary\xff", b"x" * 100000):
            c.send(msg)
            assert c.read_exact(len(msg)) == ws_echo(msg)
    got = origin.with_token(t)
    assert len(got) == 1
    assert got[0]["h"].get("upgrade") == "websocket"
    assert "upgrade" in got[0]["h"].get("connection", "").lower()
    assert proxy.stop() == 0
    rows = proxy.dbh().requests_with(t)
    assert len(rows) == 1 and rows[0]["status"] == 101


def test_request_to_proxy_itself(proxy, nginx):
    with RawConn(proxy.port) as c:
        c.send(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{proxy.port}\r\n"
               "Connection: close\r\n\r\n".encode())
        r = c.read_response()
        assert r.status == 200
        assert len(r.body) > 0
    with RawConn(proxy.port) as c:
        c.send(f"GET http://127.0.0.1:{proxy.port}/ HTTP/1.1\r\n"
               f"Host: 127.0.0.1:{proxy.port}\r\n"
               "Connection: close\r\n\r\n".encode())
        r = c.read_response()
        assert r.status == 200
        assert len(r.body) > 0
    assert proxy.stop() == 0
    db = proxy.dbh()
    # Never forwarded: a loop through itself would add connections.
    assert len(db.connections()) <= 2
    assert all(r["status"] in (200, None) for r in db.requests())
    assert len(db.requests()) <= 2
    # logged with the host and path asked for, and the page itself
    rows = db.requests()
    assert [(r["host"], r["port"], r["path"]) for r in rows] == \
        [("127.0.0.1", proxy.port, "/")] * 2, rows
    assert all(r["resp_headers"] and r["resp_body_size"] > 0 for r in rows)
    cp = run_cli("show", rows[0]["id"], "--db", proxy.db)
    assert f"http://127.0.0.1:{proxy.port}/" in cp.stdout, cp.stdout


def test_stdout_line_per_exchange(start_proxy, nginx):
    p = start_proxy(quiet=False)
    t = token()
    r = p.curl(nginx.url("alpha.test", f"/small?t={t}"))
    assert r.code == 200
    r = p.curl(nginx.url("beta.test", f"/p2.txt?t={t}"))
    assert r.code == 200
    assert p.stop() == 0
    lines = [ln for ln in p.stdout().splitlines() if t in ln]
    assert len(lines) == 2, p.stdout()
    assert "alpha.test" in lines[0] and "200" in lines[0]
    assert "beta.test" in lines[1] and "/p2.txt" in lines[1]


def test_quiet_prints_no_exchanges(proxy, nginx):
    t = token()
    assert proxy.curl(nginx.url("alpha.test", f"/small?t={t}")).code == 200
    assert proxy.stop() == 0
    assert t not in proxy.stdout()


def test_many_parallel_clients(proxy, nginx):
    """A burst of concurrent connections on two workers all get answers."""
    import threading
    t = token()
    results = []

    def one(i):
        r = proxy.curl(nginx.url("alpha.test", f"/img.jpg?t={t}&i={i}"),
                       timeout=20)
        results.append((r.code, r.body == nginx.files["img.jpg"]))

    ths = [threading.Thread(target=one, args=(i,)) for i in range(24)]
    t0 = time.monotonic()
    for th in ths:
        th.start()
    for th in ths:
        th.join(timeout=30)
    assert time.monotonic() - t0 < 30
    assert sorted(results) == [(200, True)] * 24


def test_client_connection_close(proxy, nginx):
    t = token()
    host = f"alpha.test:{nginx.port}"
    with RawConn(proxy.port) as c:
        c.send(f"GET http://{host}/small?t={t} HTTP/1.1\r\nHost: {host}\r\n"
               "Connection: close\r\n\r\n".encode())
        r = c.read_response()
        assert (r.status, r.body) == (200, nginx.files["small"])
        assert c.closed_by_peer(5)
        assert c.buf == b""


def test_ip_literal_host_needs_no_dns(proxy, nginx, dns_stub):
    t = token()
    before = len(dns_stub.queries)
    r = proxy.curl(f"http://127.0.0.1:{nginx.port}/small?t={t}")
    assert (r.code, r.body) == (200, nginx.files["small"])
    assert len(dns_stub.queries) == before
    assert nginx.wait_entries(t)[0]["host"] == f"127.0.0.1:{nginx.port}"
    assert proxy.stop() == 0
    rows = proxy.dbh().requests_with(t)
    assert rows[0]["host"] == "127.0.0.1"


def test_idle_keepalive_client_closed(start_proxy, nginx):
    p = start_proxy({"idle-timeout": "1s"})
    t = token()
    host = f"alpha.test:{nginx.port}"
    with RawConn(p.port) as c:
        c.send(f"GET http://{host}/small?t={t} HTTP/1.1\r\n"
               f"Host: {host}\r\n\r\n".encode())
        assert c.read_response().status == 200
        t0 = time.monotonic()
        assert c.closed_by_peer(6)
        took = time.monotonic() - t0
    assert 0.8 < took < 4, took
    assert p.stop() == 0
    conns = p.dbh().connections()
    assert len(conns) == 1
    assert "idle" in conns[0]["close_reason"]
    assert conns[0]["nrequests"] == 1


def test_origin_form_is_never_forwarded(proxy, nginx):
    """An origin-form request is for the proxy itself, whatever its Host
    says: it must not turn peephole into a reverse proxy for that host."""
    t = token()
    with RawConn(proxy.port) as c:
        c.send(f"GET /small?t={t} HTTP/1.1\r\nHost: alpha.test:{nginx.port}"
               "\r\nConnection: close\r\n\r\n".encode())
        r = c.read_response()
    assert r.status in (200, 404), r.raw_head
    assert r.body != nginx.files["small"]
    time.sleep(0.3)
    assert nginx.entries_with(t) == []


def test_proxy_address_by_name_not_forwarded(proxy):
    """alpha.test resolves to 127.0.0.1: http://alpha.test:PROXYPORT/ names
    the proxy itself and is answered locally, not sent round a loop."""
    t0 = time.monotonic()
    with RawConn(proxy.port) as c:
        c.send(f"GET http://alpha.test:{proxy.port}/ HTTP/1.1\r\n"
               f"Host: alpha.test:{proxy.port}\r\n"
               "Connection: close\r\n\r\n".encode())
        r = c.read_response()
    assert time.monotonic() - t0 < 5
    assert r.status == 200
    assert proxy.stop() == 0
    db = proxy.dbh()
    conns = db.connections()
    assert len(conns) == 1, \
        f"forwarded to itself: {len(conns)} connection rows, e.g. " \
        f"server_ip={conns[0]['server_ip']}:{conns[0]['server_port']}"
    assert len(db.requests()) == 1


def test_absolute_form_overrides_host_header(proxy, nginx):
    """RFC 9112 3.2.2: the request-target's authority wins over Host."""
    t = token()
    with RawConn(proxy.port) as c:
        c.send(f"GET http://alpha.test:{nginx.port}/small?t={t} HTTP/1.1\r\n"
               "Host: elsewhere.test\r\nConnection: close\r\n\r\n".encode())
        r = c.read_response()
    assert (r.status, r.body) == (200, nginx.files["small"])
    assert nginx.wait_entries(t)[0]["host"] == f"alpha.test:{nginx.port}"
    assert proxy.stop() == 0
    assert proxy.dbh().requests_with(t)[0]["host"] == "alpha.test"


def test_repeated_response_headers_kept(proxy, origin):
    with RawConn(proxy.port) as c:
        c.send(f"GET {origin.url('alpha.test', '/cookies')} HTTP/1.1\r\n"
               f"Host: alpha.test:{origin.port}\r\n\r\n".encode())
        r = c.read_response()
    assert r.status == 200
    assert r.all("set-cookie") == [
        "a=1; Path=/", "b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT", "c=3"]


def test_sigterm_right_after_listening(start_proxy):
    """SIGTERM as soon as the port accepts stops the proxy cleanly (exit
    0): the signal is caught before any listener exists. It used to be
    installed after, and a fast stop killed the process (-15)."""
    for _ in range(5):
        p = start_proxy()
        assert p.stop() == 0, p.stderr()[-2000:]
