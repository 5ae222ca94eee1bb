"""
The same streams down the other ways in: an mmTLS longlink through HTTP
CONNECT and through the transparent listener (in a network namespace), and
a newdns answer served by a real nginx with the real headers, fetched by
curl through the HTTP listener.
"""
import socket
import time
import zlib
from collections import Counter

import pytest

from conftest import CURL, Nginx, curl, free_port

from tls.conftest import certs, tls_nginx  # noqa: F401

from .conftest import (ALERT, DATA, EARLY, HANDSHAKE, Peer, TcpServer,
                       mm_hello, mm_parse, mm_record, sha, socks_open)
from .test_transparent import IPT, _wait_tcp, netns  # noqa: F401

# --------------------------------------------------------------------------
# one longlink conversation, shared by the CONNECT and transparent tests

CH = mm_hello(HANDSHAKE, 1, 220, seed=1)
EARLY_REC = mm_hello(EARLY, 1, 130, seed=2)
DATA_UP = [mm_record(DATA, bytes([i + 1]) * n)
           for i, n in enumerate((1000, 50, 3000, 16384, 7))]
ALERT_REC = mm_record(ALERT, b"\x02\x28")
SH = mm_hello(HANDSHAKE, 2, 90, seed=3)
DOWN1 = SH + mm_record(DATA, b"\xaa" * 300) + mm_record(DATA, b"\xbb" * 40)
R1, R2 = mm_record(DATA, b"\xcc" * 2000), mm_record(DATA, b"\xdd" * 10)
DOWN2 = R1 + R2
UP_GROUP = b"".join(DATA_UP)
UP = CH + EARLY_REC + UP_GROUP + ALERT_REC
DOWN = DOWN1 + DOWN2


def mm_origin(o):
    """Origin side: ServerHello + data after the hello; a record split
    across two sends after the client's data records; wait for close."""
    got = o.recv_exact(len(CH) + len(EARLY_REC))
    assert got == CH + EARLY_REC
    o.send(DOWN1)  # several records in one send
    o.recv_exact(len(UP_GROUP))
    o.send(R1[:1003])
    time.sleep(0.05)
    o.send(R1[1003:] + R2)
    o.closed_by_peer(10)
    o.close()


# the client's sends: data records split inside a header, inside a
# payload, and several coalesced in one send
def client_sends():
    d = DATA_UP
    return [d[0][:3], d[0][3:] + d[1] + d[2][:500], d[2][500:] + d[3] + d[4]]


def assert_mm_row(p, r, listener):
    assert (r["listener"], r["protocol"], r["decision"], r["mmtls_bad"]) \
        == (listener, "mmtls", "passthrough", 0), (r, p.stderr()[-2000:])
    assert (r["bytes_to_server"], r["bytes_from_server"]) == \
        (len(UP), len(DOWN)), r
    recs = mm_parse(UP) + mm_parse(DOWN)
    c = Counter(t for t, _ in recs)
    assert r["mmtls_records"] == len(recs) == 13, r
    assert (r["mmtls_handshake"], r["mmtls_early"], r["mmtls_data"],
            r["mmtls_alert"]) == (c[HANDSHAKE], c[EARLY], c[DATA],
                                  c[ALERT]) == (2, 1, 9, 1), r


def test_mmtls_longlink_through_connect(stream_proxy, tcp_server):
    srv = tcp_server(mm_origin)
    p = stream_proxy()
    c = Peer(socket.create_connection(("127.0.0.1", p.port), timeout=10))
    try:
        c.send((f"CONNECT 127.0.0.1:{srv.port} HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{srv.port}\r\n\r\n").encode())
        head = c.recv_until(b"\r\n\r\n")
        assert head.split(b" ", 2)[1] == b"200", head
        n_sent, n_got = len(c.sent), len(c.got)
        c.send(CH + EARLY_REC)
        assert c.recv_exact(len(DOWN1)) == DOWN1
        for i, chunk in enumerate(client_sends()):
            if i:
                time.sleep(0.05)
            c.send(chunk)
        assert c.recv_exact(len(DOWN2)) == DOWN2
        c.send(ALERT_REC)
        c.shutdown_wr()
        assert c.closed_by_peer(5)
    finally:
        c.close()
    assert srv.wait_done(1) and srv.errors == [], srv.errors
    o = srv.peers[0]
    assert sha(o.got) == sha(UP)
    assert sha(c.sent[n_sent:]) == sha(UP)
    assert sha(c.got[n_got:]) == sha(DOWN) == sha(o.sent)
    p.stop()
    r = p.conn_to(srv.port)
    assert_mm_row(p, r, "http")
    assert r["bytes_to_client"] == len(c.got), r
    js = p.cli_json("streams", "--protocol", "mmtls")
    mine = [s for s in js if s["id"] == r["id"]]
    assert len(js) == 1 and len(mine) == 1, js
    assert mine[0]["protocol"] == "mmtls", mine
    assert mine[0]["mmtls_records"] == 13, mine
    assert mine[0]["target"] == f"127.0.0.1:{srv.port}", mine


CLIENT = """
import socket, sys, time
UP1 = bytes.fromhex("{hello}")
SENDS = [bytes.fromhex(x) for x in {sends!r}]
ALERT = bytes.fromhex("{alert}")
N1, N2 = {n1}, {n2}
s = socket.create_connection(("{host}", {port}), timeout=10)
got = b""
def need(n):
    global got
    want = len(got) + n
    while len(got) < want:
        d = s.recv(65536)
        if not d:
            raise SystemExit("eof after %d bytes" % len(got))
        got += d
s.sendall(UP1)
need(N1)
for i, x in enumerate(SENDS):
    if i:
        time.sleep(0.05)
    s.sendall(x)
need(N2)
s.sendall(ALERT)
s.shutdown(socket.SHUT_WR)
while True:
    d = s.recv(65536)
    if not d:
        break
    got += d
sys.stdout.write(got.hex())
"""


def test_mmtls_longlink_transparent(netns, stream_proxy):  # noqa: F811
    tport = free_port()
    srv = TcpServer(mm_origin, host=netns.v4_host)
    p = stream_proxy(args=["--listen",
                           f"transparent@{netns.v4_host}:{tport}"])
    try:
        assert _wait_tcp(netns.v4_host, tport)
        netns.redirect(IPT, netns.v4_host, srv.port, tport)
        script = CLIENT.format(
            hello=(CH + EARLY_REC).hex(),
            sends=[x.hex() for x in client_sends()],
            alert=ALERT_REC.hex(), n1=len(DOWN1), n2=len(DOWN2),
            host=netns.v4_host, port=srv.port)
        cp = netns.run("/usr/bin/python3", "-c", script)
        assert cp.returncode == 0, cp.stderr
        assert bytes.fromhex(cp.stdout.decode()) == DOWN
        assert srv.wait_done(1) and srv.errors == [], srv.errors
        assert sha(srv.peers[0].got) == sha(UP)
        assert sha(srv.peers[0].sent) == sha(DOWN)
    finally:
        srv.stop()
    p.stop()
    # the stream's row: the readiness probe above reached the listener
    # itself (its own original destination) and may have a row too
    rows = p.conns("listener = 'transparent' AND listener_target = ?",
                   (f"{netns.v4_host}:{srv.port}",))
    assert len(rows) == 1, rows
    r = rows[0]
    assert r["client_ip"] == netns.v4_ns, r
    assert_mm_row(p, r, "transparent")
    assert r["bytes_from_client"] == len(UP), r
    assert r["bytes_to_client"] == len(DOWN), r
    js = p.cli_json("streams", "--protocol", "mmtls")
    assert [s["id"] for s in js] == [r["id"]], js


# --------------------------------------------------------------------------
# newdns from a real nginx

NEWDNS = "/cgi-bin/micromsg-bin/newgetdns"
NEWDNS_XML = (b'<dns><domainlist><domain name="sglong.wechat.com" '
              b'timeout="1800"><ip>10.9.8.7</ip></domain></domainlist></dns>'
              b'<builtiniplist><domain name="dns.weixin.qq.com"><ip>10.9.8.6'
              b'</ip></domain></builtiniplist><clientip>192.0.2.1</clientip>')


class NewdnsNginx(Nginx):
    """An nginx of its own: the shared one's config has no place for the
    newdns location and its headers."""

    def conf(self):
        r = self.root
        return f"""
user root root;
worker_processes 1;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {r}/tmp_body;
    proxy_temp_path {r}/tmp_proxy;
    fastcgi_temp_path {r}/tmp_fastcgi;
    uwsgi_temp_path {r}/tmp_uwsgi;
    scgi_temp_path {r}/tmp_scgi;
    types {{ }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{self.port};
        server_name _;
        root {self.www};
        location = {NEWDNS} {{
            default_type text/xml;
            add_header Content-Encoding deflate;
            alias {self.www}/newgetdns.bin;
        }}
    }}
}}
"""


@pytest.fixture
def newdns_nginx(tmp_path):
    n = NewdnsNginx(tmp_path / "nginx")
    n.www.mkdir(parents=True)
    co = zlib.compressobj(wbits=-15)
    n.add_file("newgetdns.bin", co.compress(NEWDNS_XML) + co.flush())
    n.start()
    yield n
    n.stop()


def test_newdns_from_nginx(newdns_nginx, stream_proxy):
    import subprocess
    n = newdns_nginx
    body = n.files["newgetdns.bin"]
    assert zlib.decompress(body, -15) == NEWDNS_XML
    url = f"http://127.0.0.1:{n.port}{NEWDNS}?uin=1"
    cp = subprocess.run([CURL, "-sSI", "--max-time", "5", "--noproxy", "*",
                         url], capture_output=True, timeout=15)
    hd = cp.stdout.decode().lower()
    assert cp.returncode == 0 and " 200" in hd.splitlines()[0], cp
    assert "content-type: text/xml" in hd, hd
    assert "content-encoding: deflate" in hd, hd

    p = stream_proxy(hosts_extra=["127.0.0.1 dns.weixin.qq.com"])
    res = curl(p, f"http://dns.weixin.qq.com:{n.port}{NEWDNS}?uin=1",
               timeout=10)
    assert res.rc == 0 and res.code == 200, res.stderr
    assert res.body == body  # relayed as sent, still deflated
    p.wait_rows("SELECT * FROM domain_ips WHERE source = 'app-dns'", n=2)
    p.stop()
    rows = {(r["domain"], r["ip"]): r for r in
            p.rows("SELECT * FROM domain_ips WHERE source = 'app-dns'")}
    assert ("sglong.wechat.com", "10.9.8.7") in rows, rows
    assert rows[("sglong.wechat.com", "10.9.8.7")]["ttl"] == 1800, rows
    assert ("dns.weixin.qq.com", "10.9.8.6") in rows, rows
    assert set(rows) == {("sglong.wechat.com", "10.9.8.7"),
                         ("dns.weixin.qq.com", "10.9.8.6")}, rows
    assert p.rows("SELECT * FROM domain_ips WHERE ip = '192.0.2.1'") == []
    rs = p.rows("SELECT * FROM requests WHERE path = ?", (NEWDNS,))
    assert len(rs) == 1 and rs[0]["status"] == 200, rs


# --------------------------------------------------------------------------
# TLS inside a SOCKS5 tunnel is intercepted like TLS inside CONNECT

def test_tls_through_socks_is_intercepted(stream_proxy, tls_nginx,  # noqa: F811
                                          certs):  # noqa: F811
    import ssl
    from conftest import token
    from tls.conftest import https_get, sha256_hex
    home = tls_nginx.root.parent / f"home-{token()}"
    p = stream_proxy(args=["--home", str(home), "--upstream-ca",
                           str(certs.ca)])
    port = tls_nginx.port
    t = token()
    c = socks_open(p.socks_port, "alpha.test", port)
    ctx = ssl.create_default_context(cafile=str(home / "ca.pem"))
    s = ctx.wrap_socket(c.sock, server_hostname="alpha.test")
    try:
        forged = s.getpeercert()
        status, body = https_get(s, "alpha.test", f"/small?t={t}")
    finally:
        s.close()
    assert status == 200
    assert body == tls_nginx.files["small"]
    issuer = dict(x[0] for x in forged["issuer"])
    assert "Test Origin CA" not in str(issuer), forged  # the proxy's CA
    es = tls_nginx.wait_entries(t)
    assert len(es) == 1 and es[0]["scheme"] == "https" and \
        es[0]["sni"] == "alpha.test", es
    p.stop()
    rs = p.rows("SELECT * FROM requests WHERE query LIKE ?", (f"%{t}%",))
    assert len(rs) == 1, (rs, p.stderr()[-2000:])
    rq = rs[0]
    assert (rq["scheme"], rq["method"], rq["host"], rq["port"], rq["path"],
            rq["status"]) == ("https", "GET", "alpha.test", port, "/small",
                              200), rq
    assert rq["resp_body_sha"] == sha256_hex(tls_nginx.files["small"])
    cr = p.conns("id = ?", (rq["conn_id"],))
    assert len(cr) == 1, cr
    r = cr[0]
    assert (r["listener"], r["decision"], r["protocol"], r["sni"]) == \
        ("socks5", "intercept", "tls", "alpha.test"), r
    assert (r["target_host"], r["target_port"]) == ("alpha.test", port), r
    assert "Test Origin CA" in (r["upstream_cert_issuer"] or ""), r
    assert r["verify_error"] in (None, ""), r
