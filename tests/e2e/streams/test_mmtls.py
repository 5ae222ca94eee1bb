"""
WeChat's mmTLS without decrypting it: a longlink (raw TCP through SOCKS5)
is relayed byte for byte and its records are counted and logged by type and
length both ways; garbage after valid records relabels the stream `mmtls?`
and stops parsing, not relaying; a shortlink (HTTP POST /mmtls/<hex>) is a
normal request whose bodies' records are counted on its connection.
"""
import time
from collections import Counter

import pytest

from conftest import RawConn

from .conftest import (ALERT, DATA, EARLY, HANDSHAKE, http_handler,
                       mm_data, mm_hello, mm_parse, mm_record, sha,
                       socks_open)


def typed(events, d):
    """[(type, bytes)] of the record events in direction d."""
    return [(e["mmtls_type"], e["bytes"]) for e in events
            if e["dir"] == d and e["mmtls_type"]]


def assert_mm_counts(r, records):
    c = Counter(t for t, _ in records)
    assert r["mmtls_records"] == len(records), r
    assert (r["mmtls_handshake"], r["mmtls_early"], r["mmtls_data"],
            r["mmtls_alert"]) == (c[HANDSHAKE], c[EARLY], c[DATA],
                                  c[ALERT]), r


@pytest.mark.parametrize("version", [b"\xf1\x04", b"\xf1\x03"])
def test_longlink_records_counted_bytes_intact(stream_proxy, tcp_server,
                                               version):
    def rec(t, payload):
        return mm_record(t, payload, version)

    ch = mm_hello(HANDSHAKE, 1, 220, seed=1, version=version)
    early = mm_hello(EARLY, 1, 130, seed=2, version=version)
    d = [rec(DATA, bytes([i]) * n) for i, n in
         enumerate((1000, 50, 3000, 16384, 7))]
    alert = rec(ALERT, b"\x02\x28")
    sh = mm_hello(HANDSHAKE, 2, 90, seed=3, version=version)
    down1 = sh + rec(DATA, b"\xaa" * 300) + rec(DATA, b"\xbb" * 40)
    r1, r2 = rec(DATA, b"\xcc" * 2000), rec(DATA, b"\xdd" * 10)
    down2 = r1 + r2
    up_group = b"".join(d)

    def handler(o):
        o.recv_exact(len(ch) + len(early))
        o.send(down1)  # several records in one send
        o.recv_exact(len(up_group))
        o.send(r1[:1003])  # a record split across sends
        time.sleep(0.05)
        o.send(r1[1003:] + r2)
        o.closed_by_peer(10)

    srv = tcp_server(handler)
    p = stream_proxy()
    c = socks_open(p.socks_port, "127.0.0.1", srv.port)
    hs = len(c.sent), len(c.got)
    c.send(ch + early)
    assert c.recv_exact(len(down1)) == down1
    # data records split inside a header, inside a payload, and several
    # in one send
    c.send(d[0][:3])
    time.sleep(0.05)
    c.send(d[0][3:] + d[1] + d[2][:500])
    time.sleep(0.05)
    c.send(d[2][500:] + d[3] + d[4])
    assert c.recv_exact(len(down2)) == down2
    c.send(alert)
    c.shutdown_wr()
    assert c.closed_by_peer(5)
    c.close()
    assert srv.wait_done(1) and srv.errors == []
    o = srv.peers[0]
    up = ch + early + up_group + alert
    down = down1 + down2
    assert sha(o.got) == sha(up)
    assert sha(c.got[hs[1]:]) == sha(down) == sha(o.sent)
    p.stop()
    r = p.conn_to(srv.port)
    assert (r["listener"], r["protocol"], r["decision"], r["mmtls_bad"]) \
        == ("socks5", "mmtls", "passthrough", 0), r
    assert (r["bytes_to_server"], r["bytes_from_server"]) == \
        (len(up), len(down)), r
    assert r["bytes_from_client"] == len(c.sent), r
    assert r["bytes_to_client"] == len(c.got), r
    recs_up, recs_down = mm_parse(up), mm_parse(down)
    assert_mm_counts(r, recs_up + recs_down)
    ev = p.events(r["id"])
    assert r["events"] == len(ev) and r["events_capped"] == 0, r
    assert typed(ev, 0) == recs_up, ev
    assert typed(ev, 1) == recs_down, ev
    reads = [e for e in ev if not e["mmtls_type"]]
    assert len(reads) == r["reads_up"] + r["reads_down"], (r, ev)
    assert sum(e["bytes"] for e in reads if e["dir"] == 0) == len(up)
    assert sum(e["bytes"] for e in reads if e["dir"] == 1) == len(down)
    assert r["closed_by"] == "client-fin", r
    # the CLI timeline says the same
    cp = p.cli("show", "stream", r["id"], "--csv")
    assert cp.returncode == 0, cp.stderr
    lines = cp.stdout.splitlines()
    assert lines[0] == "t_ms,dir,bytes,mmtls_type"
    rows = [ln.split(",") for ln in lines[1:]]
    assert len(rows) == len(ev)
    names = {HANDSHAKE: "handshake", EARLY: "early", DATA: "data",
             ALERT: "alert"}
    assert [(x[2], x[3]) for x in rows if x[1] == "up" and x[3]] == \
        [(str(n), names[t]) for t, n in recs_up]
    assert [(x[2], x[3]) for x in rows if x[1] == "down" and x[3]] == \
        [(str(n), names[t]) for t, n in recs_down]
    assert [float(x[0]) for x in rows] == sorted(float(x[0]) for x in rows)


GARBAGE = {
    "type": b"GET / HTTP/1.1\r\n\r\n",           # not a record type
    "version": b"\x17\x03\x03\x00\x05hello",     # a TLS record, not mmTLS
    "length": b"\x17\xf1\x04\xff\xff" + b"\x00" * 100,  # far too long
}


@pytest.mark.parametrize("where", ["up-type", "up-version", "up-length",
                                   "down-type"])
def test_longlink_garbage_relabels_and_still_relays(stream_proxy,
                                                    tcp_server, where):
    side, kind = where.split("-")
    junk = GARBAGE[kind]
    ch = mm_hello(HANDSHAKE, 1, 100, seed=4)
    d1 = mm_data(200, 5)
    after = mm_data(64, 6)  # valid again, but parsing has stopped
    sh = mm_hello(HANDSHAKE, 2, 80, seed=7)
    up = ch + d1 + (junk if side == "up" else b"") + after
    down = sh + mm_data(30, 8) + (junk if side == "down" else b"") + \
        mm_data(20, 9)

    def handler(o):
        o.recv_exact(len(ch))
        o.send(down[:len(sh)])
        o.recv_exact(len(up) - len(ch))
        o.send(down[len(sh):])
        o.closed_by_peer(10)

    srv = tcp_server(handler)
    p = stream_proxy()
    c = socks_open(p.socks_port, "127.0.0.1", srv.port)
    n0 = len(c.got)
    c.send(ch)
    assert c.recv_exact(len(sh)) == sh
    c.send(up[len(ch):len(ch) + len(d1)])
    time.sleep(0.03)
    c.send(up[len(ch) + len(d1):])
    assert c.recv_exact(len(down) - len(sh)) == down[len(sh):]
    c.shutdown_wr()
    assert c.closed_by_peer(5)
    c.close()
    assert srv.wait_done(1) and srv.errors == []
    assert bytes(srv.peers[0].got) == up
    assert bytes(c.got[n0:]) == down
    p.stop()
    r = p.conn_to(srv.port)
    assert (r["protocol"], r["mmtls_bad"], r["decision"]) == \
        ("mmtls?", 1, "passthrough"), r
    assert (r["bytes_to_server"], r["bytes_from_server"]) == \
        (len(up), len(down)), r
    ev = p.events(r["id"])
    # records before the garbage are counted, none after it
    if side == "up":
        want_up = mm_parse(ch + d1)
        want_down = mm_parse(down)
    else:
        want_up = mm_parse(up)
        want_down = mm_parse(sh + mm_data(30, 8))
    assert typed(ev, 0) == want_up, ev
    assert typed(ev, 1) == want_down, ev
    assert_mm_counts(r, want_up + want_down)
    # the CLI shows it as mmtls?, once
    js = p.cli_json("streams")
    mine = [s for s in js if s["id"] == r["id"]]
    assert len(mine) == 1 and mine[0]["protocol"] == "mmtls?", mine
    cp = p.cli("show", "stream", r["id"])
    assert cp.returncode == 0, cp.stderr
    assert "mmtls??" not in cp.stdout, cp.stdout


def test_tls_lookalike_is_not_mmtls(stream_proxy, tcp_server):
    """A handshake record with version F1 04 but no hello framing (bytes
    5-8 not length - 4) is not a ClientHello: not labelled mmtls."""
    rec = mm_record(HANDSHAKE, b"\x00\x00\x00\x00\x01" + b"q" * 50)

    def handler(o):
        o.recv_exact(len(rec))
        o.send(b"\x00ok")
        o.closed_by_peer(5)

    srv = tcp_server(handler)
    p = stream_proxy()
    c = socks_open(p.socks_port, "127.0.0.1", srv.port)
    c.send(rec)
    assert c.recv_exact(3) == b"\x00ok"
    c.shutdown_wr()
    assert c.closed_by_peer(5)
    c.close()
    p.stop()
    r = p.conn_to(srv.port)
    assert r["protocol"] not in ("mmtls", "mmtls?"), r
    assert r["decision"] == "passthrough" and r["bytes_to_server"] == \
        len(rec), r


def _shortlink_origin(bodies):
    """HTTP origin answering each POST /mmtls/... with the next body."""
    it = iter(bodies)

    def routes(method, target, h, body):
        return 200, [("Content-Type", "application/octet-stream")], next(it)
    return routes


def test_shortlink_recorded_and_counted(stream_proxy, tcp_server):
    req_body = mm_hello(HANDSHAKE, 1, 180, seed=11) + \
        mm_hello(EARLY, 1, 90, seed=12) + mm_data(700, 13)
    resp_body = mm_hello(HANDSHAKE, 2, 120, seed=14) + mm_data(400, 15) + \
        mm_data(5000, 16)
    srv = tcp_server(http_handler(_shortlink_origin([resp_body])))
    p = stream_proxy()
    rc = RawConn(p.port)
    url = f"http://alpha.test:{srv.port}/mmtls/0123abcd"
    rc.send((f"POST {url} HTTP/1.1\r\nHost: alpha.test:{srv.port}\r\n"
             "Upgrade: mmtls\r\nContent-Type: application/octet-stream\r\n"
             f"Content-Length: {len(req_body)}\r\n\r\n").encode() +
            req_body[:100])
    time.sleep(0.03)
    rc.send(req_body[100:])  # the body split mid-record
    resp = rc.read_response("POST")
    rc.close()
    assert resp.status == 200
    assert resp.body == resp_body
    assert srv.errors == []
    method, target, h, body = srv.peers[0].request
    assert (method, target, body) == ("POST", "/mmtls/0123abcd", req_body)
    p.stop()
    rs = p.rows("SELECT * FROM requests WHERE path = '/mmtls/0123abcd'")
    assert len(rs) == 1, rs
    # a normal request, labelled as what it is
    assert rs[0]["label"] == "mmtls-shortlink", rs
    listed = [x for x in p.cli_json("requests") if x["id"] == rs[0]["id"]]
    assert listed and listed[0]["label"] == "mmtls-shortlink", listed
    q = rs[0]
    assert (q["method"], q["scheme"], q["host"], q["port"], q["status"],
            q["req_body_size"], q["resp_body_size"]) == \
        ("POST", "http", "alpha.test", srv.port, 200, len(req_body),
         len(resp_body)), q
    r = p.conns("id = ?", (q["conn_id"],))[0]
    recs_up, recs_down = mm_parse(req_body), mm_parse(resp_body)
    assert_mm_counts(r, recs_up + recs_down)
    assert r["mmtls_bad"] == 0, r
    ev = p.events(r["id"])
    assert typed(ev, 0) == recs_up, ev
    assert typed(ev, 1) == recs_down, ev
    assert r["events"] == len(ev), r


def test_shortlink_two_exchanges_one_connection(stream_proxy, tcp_server):
    """Two shortlink POSTs on one keep-alive client connection: the row
    counts the records of both."""
    bodies_up = [mm_hello(HANDSHAKE, 1, 100, seed=21) + mm_data(50, 22),
                 mm_hello(EARLY, 1, 60, seed=23) + mm_data(70, 24) +
                 mm_data(80, 25)]
    bodies_down = [mm_hello(HANDSHAKE, 2, 90, seed=26) + mm_data(30, 27),
                   mm_data(40, 28)]
    srv = tcp_server(http_handler(_shortlink_origin(bodies_down[:1])))
    srv2 = tcp_server(http_handler(_shortlink_origin(bodies_down[1:])))
    p = stream_proxy()
    rc = RawConn(p.port)
    for s, path, b, want in ((srv, "/mmtls/0000beef", bodies_up[0],
                              bodies_down[0]),
                             (srv2, "/mmtls/DEADbeef", bodies_up[1],
                              bodies_down[1])):
        rc.send((f"POST http://alpha.test:{s.port}{path} HTTP/1.1\r\n"
                 f"Host: alpha.test:{s.port}\r\nUpgrade: mmtls\r\n"
                 "Content-Type: application/octet-stream\r\n"
                 f"Content-Length: {len(b)}\r\n\r\n").encode() + b)
        resp = rc.read_response("POST")
        assert resp.status == 200 and resp.body == want
    rc.close()
    p.stop()
    rs = p.rows("SELECT * FROM requests WHERE path LIKE '/mmtls/%'"
                " ORDER BY id")
    assert len(rs) == 2 and rs[0]["conn_id"] == rs[1]["conn_id"], rs
    r = p.conns("id = ?", (rs[0]["conn_id"],))[0]
    recs = [x for b in bodies_up + bodies_down for x in mm_parse(b)]
    assert_mm_counts(r, recs)
    ev = p.events(r["id"])
    assert len([e for e in ev if e["mmtls_type"]]) == len(recs), ev


def test_not_shortlink_path_not_counted(stream_proxy, tcp_server):
    """POST /mmtls/xyz (not 8 hex digits) is an ordinary request."""
    body = mm_hello(HANDSHAKE, 1, 100, seed=31)
    srv = tcp_server(http_handler(_shortlink_origin([body])))
    p = stream_proxy()
    rc = RawConn(p.port)
    rc.send((f"POST http://alpha.test:{srv.port}/mmtls/xyz HTTP/1.1\r\n"
             f"Host: alpha.test:{srv.port}\r\n"
             f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
    assert rc.read_response("POST").body == body
    rc.close()
    p.stop()
    q = p.rows("SELECT * FROM requests WHERE path = '/mmtls/xyz'")[0]
    r = p.conns("id = ?", (q["conn_id"],))[0]
    assert not r["mmtls_records"], r


def test_shortlink_upgrade_header_reaches_origin(stream_proxy, tcp_server):
    """`Upgrade: mmtls` on a shortlink is not an HTTP upgrade (no
    `Connection: upgrade`, no 101): it is how WeChat's servers know the
    body is mmTLS, so an observer that should go unnoticed forwards it."""
    body = mm_hello(HANDSHAKE, 1, 100, seed=41)
    srv = tcp_server(http_handler(_shortlink_origin([mm_data(10, 42)])))
    p = stream_proxy()
    rc = RawConn(p.port)
    rc.send((f"POST http://alpha.test:{srv.port}/mmtls/89abcdef HTTP/1.1\r\n"
             f"Host: alpha.test:{srv.port}\r\nUpgrade: mmtls\r\n"
             "Content-Type: application/octet-stream\r\n"
             f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
    assert rc.read_response("POST").status == 200
    rc.close()
    assert srv.errors == []
    h = srv.peers[0].request[2]
    assert h.get("upgrade") == "mmtls", h
