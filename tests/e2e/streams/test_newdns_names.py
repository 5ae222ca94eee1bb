"""
WeChat's own DNS (newdns) answers become app-dns rows in domain_ips; a
stream to a bare address is then named from them; the CLI (`streams`,
`show stream`, `domains`) shows streams with those names.
"""
import os
import zlib

import pytest

from conftest import RawConn, domain_field, token

from .conftest import (HANDSHAKE, can_bind, http_handler, mm_data,
                       mm_hello, socks_open)

NEWDNS = "/cgi-bin/micromsg-bin/newgetdns"
WX_HOSTS = ("127.0.0.1 dns.weixin.qq.com",)


def raw_deflate(b):
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    return co.compress(b) + co.flush()


def newdns_xml(domains, builtin=(), clientip="192.0.2.7"):
    """domains: [(name, timeout, [ips])]."""
    out = ['<?xml version="1.0" encoding="utf-8"?>\n<dns><domainlist>']
    for name, timeout, ips in domains:
        out.append(f'<domain name="{name}" timeout="{timeout}">' +
                   "".join(f"<ip>{i}</ip>" for i in ips) + "</domain>")
    out.append("</domainlist></dns><builtiniplist>")

    for name, ips in builtin:
        out.append(f'<domain name="{name}">' +
                   "".join(f"<ip>{i}</ip>" for i in ips) + "</domain>")
    out.append(f"</builtiniplist><clientip>{clientip}</clientip>")
    return "".join(out).encode("utf-8")


class NewdnsOrigin:
    """HTTP origin answering each request with the next (headers, body)."""

    def __init__(self, tcp_server, answers):
        self.answers = list(answers)
        self.srv = tcp_server(http_handler(self._route))

    def _route(self, method, target, h, body):
        hdrs, b = self.answers.pop(0)
        return 200, hdrs, b

    @property
    def port(self):
        return self.srv.port


DEFLATE_XML = [("Content-Type", "text/xml"), ("Content-Encoding", "deflate")]


def newdns_get(p, port, tok=""):
    """GET newgetdns through the HTTP listener; the response."""
    rc = RawConn(p.port)
    try:
        rc.send((f"GET http://dns.weixin.qq.com:{port}{NEWDNS}?uin=7&t={tok}"
                 f" HTTP/1.1\r\nHost: dns.weixin.qq.com:{port}\r\n"
                 "Connection: close\r\n\r\n").encode())
        return rc.read_response()
    finally:
        rc.close()


def app_dns(p):
    return {(r["domain"], r["ip"]): r for r in
            p.rows("SELECT * FROM domain_ips WHERE source = 'app-dns'")}


def test_newdns_answers_stored(stream_proxy, tcp_server):
    doms = [("sglong.wechat.com", 1800, ["10.1.2.3", "10.1.2.4"]),
            ("SGshort.WeChat.com", 600, ["10.1.2.9"]),
            ("v6.wechat.com", 300, ["2001:db8::1"])]
    body = raw_deflate(newdns_xml(doms, builtin=[("builtin.wechat.com",
                                                  ["10.9.9.9"])]))
    o = NewdnsOrigin(tcp_server, [(DEFLATE_XML, body)])
    p = stream_proxy(hosts_extra=WX_HOSTS)
    resp = newdns_get(p, o.port, token())
    assert resp.status == 200
    assert resp.body == body  # relayed as sent, still deflated
    assert resp.get("content-encoding") == "deflate"
    got = p.wait_rows("SELECT * FROM domain_ips WHERE source = 'app-dns'",
                      n=5)
    p.stop()
    rows = app_dns(p)
    want = {("sglong.wechat.com", "10.1.2.3"): 1800,
            ("sglong.wechat.com", "10.1.2.4"): 1800,
            ("sgshort.wechat.com", "10.1.2.9"): 600,
            ("v6.wechat.com", "2001:db8::1"): 300}
    for k, ttl in want.items():
        assert k in rows, (k, got)
        assert rows[k]["ttl"] == ttl, rows[k]
        assert rows[k]["first_seen"] and rows[k]["last_seen"], rows[k]
    assert ("builtin.wechat.com", "10.9.9.9") in rows, rows
    assert set(rows) - set(want) == {("builtin.wechat.com", "10.9.9.9")}
    # the client address the answer reports is not a name -> address fact
    assert p.rows("SELECT * FROM domain_ips WHERE ip = '192.0.2.7'") == []
    rs = p.rows("SELECT * FROM requests WHERE path = ?", (NEWDNS,))
    assert len(rs) == 1 and rs[0]["status"] == 200, rs
    assert rs[0]["host"] == "dns.weixin.qq.com"


def test_newdns_zlib_wrapped_and_plain(stream_proxy, tcp_server):
    """Servers that zlib-wrap "deflate", and an answer not compressed."""
    a = newdns_xml([("zlib.wechat.com", 60, ["10.3.0.1"])])
    b = newdns_xml([("plain.wechat.com", 70, ["10.3.0.2"])])
    o = NewdnsOrigin(tcp_server, [(DEFLATE_XML, zlib.compress(a)),
                                  ([("Content-Type", "text/xml")], b)])
    p = stream_proxy(hosts_extra=WX_HOSTS)
    assert newdns_get(p, o.port).status == 200
    assert newdns_get(p, o.port).status == 200
    p.wait_rows("SELECT * FROM domain_ips WHERE source = 'app-dns'", n=2)
    p.stop()
    rows = app_dns(p)
    assert rows[("zlib.wechat.com", "10.3.0.1")]["ttl"] == 60, rows
    assert rows[("plain.wechat.com", "10.3.0.2")]["ttl"] == 70, rows


def test_newdns_malformed_bodies_harmless(stream_proxy, tcp_server):
    good = raw_deflate(newdns_xml([("after.wechat.com", 90, ["10.4.0.1"])]))
    doc = raw_deflate(newdns_xml([("trunc.wechat.com", 90, ["10.4.0.2"])]))
    bad_xml = raw_deflate(b'<dns><domainlist><domain name="badxml.wechat'
                          b'.com" timeout="5"><ip>10.4.0.3</ip><<<&&')
    bomb = raw_deflate(b"<dns>" + b" " * (16 << 20))  # 16 MiB inflated
    big = raw_deflate(newdns_xml([("big.wechat.com", 90, ["10.4.0.4"])])) \
        + os.urandom(200_000)  # past the capture limit below
    weird = raw_deflate(newdns_xml(
        [("ip.wechat.com", 5, ["not-an-ip", "999.1.1.1", "10.4.0.5"]),
         ("caf\u00e9.wechat.com", 5, ["10.4.0.6"]),
         ("", 5, ["10.4.0.7"])]))
    answers = [(DEFLATE_XML, doc[:len(doc) // 2]),  # truncated deflate
               (DEFLATE_XML, os.urandom(500)),      # not deflate at all
               (DEFLATE_XML, bad_xml),
               (DEFLATE_XML, bomb),
               (DEFLATE_XML, big),
               (DEFLATE_XML, b""),
               (DEFLATE_XML, weird),
               (DEFLATE_XML, good)]
    bodies = [b for _, b in answers]
    o = NewdnsOrigin(tcp_server, answers)
    p = stream_proxy({"body-capture-limit": "64k"}, hosts_extra=WX_HOSTS)
    for i, b in enumerate(bodies):
        r = newdns_get(p, o.port, f"n{i}")
        assert r.status == 200 and r.body == b, i
    p.wait_rows("SELECT * FROM domain_ips WHERE domain = 'after.wechat.com'")
    assert p.proc.poll() is None
    p.stop()
    rows = app_dns(p)
    assert ("after.wechat.com", "10.4.0.1") in rows, rows
    assert ("ip.wechat.com", "10.4.0.5") in rows, rows  # the good one kept
    names = {d for d, _ in rows}
    assert names <= {"after.wechat.com", "ip.wechat.com"}, rows
    assert len(rows) == 2, rows
    rs = p.rows("SELECT * FROM requests WHERE path = ? ORDER BY id",
                (NEWDNS,))
    assert len(rs) == len(bodies), rs
    assert [r["status"] for r in rs] == [200] * len(bodies)
    assert [r["resp_body_size"] for r in rs] == [len(b) for b in bodies]
    assert rs[4]["resp_body_truncated"] == 1, rs[4]


def _mm_longlink_origin(o):
    ch = o.recv_exact(5)
    o.recv_exact(int.from_bytes(ch[3:5], "big"))
    o.send(mm_hello(HANDSHAKE, 2, 60, seed=9) + mm_data(100, 3))
    o.recv_exact(5 + 200)
    o.send(mm_data(300, 4))
    o.closed_by_peer(5)


@pytest.fixture
def named_capture(stream_proxy, tcp_server):
    """A capture holding: a newdns answer that maps sglong.wechat.com to
    127.0.0.5, then an mmTLS longlink by address to 127.0.0.5:PORT, and an
    SSH stream by address to 127.0.0.1, which the proxy's own lookup of
    dns.weixin.qq.com (hosts file) named."""
    if not can_bind("127.0.0.5"):
        pytest.skip("cannot bind 127.0.0.5")
    ll = tcp_server(_mm_longlink_origin, "127.0.0.5")
    body = raw_deflate(newdns_xml(
        [("sglong.wechat.com", 1800, ["127.0.0.5", "10.1.2.4"]),
         ("sgshort.wechat.com", 1800, ["10.1.2.9"])]))
    o = NewdnsOrigin(tcp_server, [(DEFLATE_XML, body)])

    def ssh_origin(s):
        s.send(b"SSH-2.0-origin\r\n")
        s.recv_until(b"\r\n")
        s.closed_by_peer(5)

    sshd = tcp_server(ssh_origin)
    p = stream_proxy(hosts_extra=WX_HOSTS)
    assert newdns_get(p, o.port).status == 200
    assert p.wait_rows("SELECT * FROM domain_ips WHERE source = 'app-dns'"
                       " AND ip = '127.0.0.5'")
    c = socks_open(p.socks_port, "127.0.0.5", ll.port)
    c.send(mm_hello(HANDSHAKE, 1, 150, seed=1))
    c.recv_exact(5 + 60 + 5 + 100)
    c.send(mm_data(200, 2))
    c.recv_exact(5 + 300)
    c.shutdown_wr()
    assert c.closed_by_peer(5)
    c.close()
    s = socks_open(p.socks_port, "127.0.0.1", sshd.port)
    s.send(b"SSH-2.0-client\r\n")
    assert s.recv_until(b"\r\n") == b"SSH-2.0-origin\r\n"
    s.shutdown_wr()
    assert s.closed_by_peer(5)
    s.close()
    assert ll.wait_done(1) and ll.errors == []
    p.stop()
    p.ll_port, p.ssh_port = ll.port, sshd.port
    p.ll_id = p.conn_to(ll.port)["id"]
    p.ssh_id = p.conn_to(sshd.port)["id"]
    return p


def test_stream_named_by_app_dns(named_capture):
    p = named_capture
    r = p.conn_to(p.ll_port)
    assert (r["protocol"], r["target_host"], r["listener_target"]) == \
        ("mmtls", "127.0.0.5", f"127.0.0.5:{p.ll_port}"), r
    n = p.rows("SELECT * FROM stream_names WHERE conn_id = ?", (r["id"],))
    assert len(n) == 1, n
    assert (n[0]["name"], n[0]["named_by"]) == ("sglong.wechat.com",
                                                "app-dns"), n
    doms = {domain_field(d, "name"): d for d in p.cli_json("domains")}
    d = doms.get("sglong.wechat.com")
    assert d is not None, sorted(doms)
    protos = d.get("protocols")
    protos = protos.split(",") if isinstance(protos, str) else protos
    assert "mmtls" in protos, d
    named = d.get("named_by")
    named = named.split(",") if isinstance(named, str) else named
    assert "app-dns" in named, d
    # the stream asked for a bare address: an inferred connection, apart
    # from the ones that named the host themselves
    assert d["inferred"] >= 1, d
    assert p.ll_port in domain_field(d, "ports"), d
    assert "127.0.0.5" in domain_field(d, "ips"), d


def test_cli_streams_list(named_capture):
    p = named_capture
    js = p.cli_json("streams")
    by_id = {s["id"]: s for s in js}
    assert set(by_id) == {p.ll_id, p.ssh_id}, js  # the HTTP request is not
    s = by_id[p.ll_id]
    assert (s["host"], s["named_by"], s["protocol"], s["target"],
            s["server_ip"], s["server_port"]) == \
        ("sglong.wechat.com", "app-dns", "mmtls", f"127.0.0.5:{p.ll_port}",
         "127.0.0.5", p.ll_port), s
    assert s["mmtls_records"] == 5, s
    r = p.conn_to(p.ll_port)
    assert (s["bytes_up"], s["bytes_down"]) == \
        (r["bytes_from_client"], r["bytes_from_server"]), (s, r)
    assert r["bytes_to_server"] == 155 + 205, r
    assert r["bytes_from_server"] == 5 + 60 + 5 + 100 + 5 + 300, r
    assert s["closed_by"] == "client-fin", s
    assert s["duration_ms"] is not None and s["duration_ms"] >= 0, s
    t = by_id[p.ssh_id]
    # named from the proxy's own lookup of dns.weixin.qq.com (hosts file)
    assert (t["protocol"], t["host"], t["named_by"]) == \
        ("ssh", "dns.weixin.qq.com", "proxy-dns"), t
    # filters
    ids = lambda *a: [x["id"] for x in p.cli_json("streams", *a)]  # noqa
    assert ids("--domain", "wechat.com") == [p.ll_id]
    assert ids("--domain", "SGLONG.wechat.com") == [p.ll_id]
    assert ids("--domain", "long.wechat.com") == []
    assert ids("--domain", "weixin.qq.com") == [p.ssh_id]
    assert ids("--domain", "127.0.0.5") == [p.ll_id]
    assert ids("--protocol", "mmtls") == [p.ll_id]
    assert ids("--protocol", "ssh") == [p.ssh_id]
    assert ids("--protocol", "other") == [p.ssh_id]
    assert ids("--protocol", "tls") == []
    assert ids("--limit", "1") == [max(p.ll_id, p.ssh_id)]
    # CSV: a header and one row per stream
    cp = p.cli("streams", "--csv")
    assert cp.returncode == 0, cp.stderr
    lines = cp.stdout.splitlines()
    assert lines[0].split(",")[:3] == ["id", "start", "client"], lines
    assert len(lines) == 3, lines
    assert any("sglong.wechat.com" in ln and "mmtls" in ln
               for ln in lines[1:]), lines
    # text
    cp = p.cli("streams")
    assert cp.returncode == 0 and "sglong.wechat.com" in cp.stdout, cp
    # bad usage
    for bad in (["--json", "--csv"], ["--protocol", ""], ["--limit", "0"],
                ["--bogus"], ["extra"]):
        cp = p.cli("streams", *bad)
        assert cp.returncode != 0 and cp.stderr, (bad, cp)


def test_cli_show_stream(named_capture):
    p = named_capture
    r = p.conn_to(p.ll_port)
    ev = p.events(p.ll_id)
    js = p.cli_json("show", "stream", p.ll_id)
    assert js["id"] == p.ll_id
    assert js["named_host"] == "sglong.wechat.com", js
    assert js["named_by"] == "app-dns", js
    assert (js["mmtls_records"], js["mmtls_handshake"], js["mmtls_data"]) \
        == (5, 2, 3), js
    evl = js["events_list"]
    assert len(evl) == len(ev) == r["events"], (evl, ev)
    assert [e["dir"] for e in evl] == \
        ["down" if e["dir"] else "up" for e in ev]
    assert [e["bytes"] for e in evl] == [e["bytes"] for e in ev]
    types = [(e["dir"], e["mmtls_type"]) for e in evl if e["mmtls_type"]]
    assert types == [("up", "handshake"), ("down", "handshake"),
                     ("down", "data"), ("up", "data"), ("down", "data")], \
        types
    assert all(e["t_ms"] >= 0 for e in evl)
    # CSV: just the series
    cp = p.cli("show", "stream", p.ll_id, "--csv")
    assert cp.returncode == 0, cp.stderr
    lines = cp.stdout.splitlines()
    assert lines[0] == "t_ms,dir,bytes,mmtls_type"
    assert len(lines) == 1 + len(ev)
    assert {ln.split(",")[1] for ln in lines[1:]} == {"up", "down"}
    # text: the row and the timeline
    cp = p.cli("show", "stream", p.ll_id)
    assert cp.returncode == 0, cp.stderr
    for want in ("sglong.wechat.com", "app-dns", "mmtls", "timeline",
                 f"127.0.0.5:{p.ll_port}", "client-fin"):
        assert want in cp.stdout, (want, cp.stdout)
    # errors
    cp = p.cli("show", "stream", "999999")
    assert cp.returncode != 0 and "999999" in cp.stderr, cp
    for bad in (["abc"], [], [p.ll_id, "--json", "--csv"]):
        cp = p.cli("show", "stream", *bad)
        assert cp.returncode != 0 and cp.stderr, (bad, cp)
