"""
The SOCKS5 listener (RFC 1928 CONNECT, RFC 1929 user/password) and the
transparent listener's refusal of connections that were not redirected.
Real curl where curl can say it, raw sockets for the rest.
"""
import os
import socket
import subprocess

import pytest

from conftest import CURL, token

from .conftest import (Peer, SocksError, echo_handler, have_ipv6_loopback,
                       socks_open)


def socks_curl(p, url, *args, timeout=20):
    out = p.dir / f"curl-{token()}.out"
    argv = [CURL, "-sS", "--max-time", str(timeout), "-o", str(out),
            "-w", "%{http_code}", url] + list(args)
    cp = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                        timeout=timeout + 10, env=p.env)
    body = out.read_bytes() if out.exists() else b""
    return cp.returncode, cp.stdout.decode(), body, cp.stderr.decode()


def _one_exchange(p, sport, host, port, payload, auth=None):
    """SOCKS to host:port, send payload, read the echo, close first."""
    c = socks_open(sport, host, port, auth=auth)
    try:
        c.send(payload)
        assert c.recv_exact(len(payload)) == payload
        c.shutdown_wr()
        assert c.closed_by_peer(5)
    finally:
        c.close()
    return c


def test_curl_socks5_hostname_http_recorded(stream_proxy, nginx):
    p = stream_proxy()
    t = token()
    rc, code, body, err = socks_curl(
        p, f"http://alpha.test:{nginx.port}/small?t={t}",
        "--socks5-hostname", f"127.0.0.1:{p.socks_port}")
    assert (rc, code) == (0, "200"), err
    assert body == nginx.files["small"]
    assert len(nginx.wait_entries(t)) == 1
    p.stop()
    c = p.conn_to(nginx.port)
    assert c["listener"] == "socks5", c
    assert c["listener_target"] == f"alpha.test:{nginx.port}", c
    assert (c["target_host"], c["target_port"]) == ("alpha.test",
                                                    nginx.port), c
    assert (c["server_ip"], c["server_port"]) == ("127.0.0.1", nginx.port)
    assert c["protocol"] == "http", c
    rs = p.rows("SELECT * FROM requests WHERE conn_id = ?", (c["id"],))
    assert len(rs) == 1, rs
    r = rs[0]
    assert (r["scheme"], r["method"], r["host"], r["port"], r["path"],
            r["status"]) == ("http", "GET", "alpha.test", nginx.port,
                             "/small", 200), r
    assert t in r["query"]
    assert r["resp_body_size"] == len(nginx.files["small"])


def test_curl_socks5_local_resolve(stream_proxy, nginx):
    """--socks5: curl resolves the name and asks for the address."""
    p = stream_proxy()
    t = token()
    rc, code, body, err = socks_curl(
        p, f"http://127.0.0.1:{nginx.port}/p2.txt?t={t}",
        "--socks5", f"127.0.0.1:{p.socks_port}")
    assert (rc, code) == (0, "200"), err
    assert body == nginx.files["p2.txt"]
    p.stop()
    c = p.conn_to(nginx.port)
    assert c["listener"] == "socks5"
    assert c["listener_target"] == f"127.0.0.1:{nginx.port}", c
    assert c["target_host"] == "127.0.0.1"
    rs = p.rows("SELECT * FROM requests WHERE conn_id = ?", (c["id"],))
    assert [(r["scheme"], r["host"], r["path"], r["status"]) for r in rs] \
        == [("http", "127.0.0.1", "/p2.txt", 200)]


@pytest.mark.parametrize("atyp", ["domain", "ipv4", "ipv6"])
def test_raw_targets_relayed_with_exact_counts(stream_proxy, tcp_server,
                                               atyp):
    if atyp == "ipv6" and not have_ipv6_loopback():
        pytest.skip("no ::1 on this host")
    host = {"domain": "alpha.test", "ipv4": "127.0.0.1",
            "ipv6": "::1"}[atyp]
    srv = tcp_server(echo_handler, "::1" if atyp == "ipv6" else "127.0.0.1")
    p = stream_proxy()
    payload = b"\x00\x01not-a-known-protocol " + os.urandom(3000)
    c = _one_exchange(p, p.socks_port, host, srv.port, payload)
    assert c.reply[:3] == b"\x05\x00\x00"
    assert srv.wait_done(1)
    o = srv.peers[0]
    assert bytes(o.got) == payload
    p.stop()
    r = p.conn_to(srv.port)
    want_target = f"[{host}]:{srv.port}" if atyp == "ipv6" \
        else f"{host}:{srv.port}"
    assert r["listener"] == "socks5"
    assert r["listener_target"] == want_target, r
    assert r["target_host"] == host, r
    assert r["server_ip"] == ("::1" if atyp == "ipv6" else "127.0.0.1"), r
    assert r["server_port"] == srv.port
    assert r["protocol"] == "other", r
    assert r["decision"] == "passthrough", r
    # what each end saw, handshake included on the client side
    assert r["bytes_from_client"] == len(c.sent), r
    assert r["bytes_to_client"] == len(c.got), r
    assert r["bytes_to_server"] == len(o.got) == len(payload), r
    assert r["bytes_from_server"] == len(o.sent) == len(payload), r


def test_auth_ok_curl_and_raw(stream_proxy, nginx, tcp_server):
    p = stream_proxy({"socks5-user": "alice:s3cret\nsocks5-user bob:pw2"})
    t = token()
    rc, code, body, err = socks_curl(
        p, f"http://alpha.test:{nginx.port}/small?t={t}",
        "-x", f"socks5h://alice:s3cret@127.0.0.1:{p.socks_port}")
    assert (rc, code) == (0, "200"), err
    assert body == nginx.files["small"]
    # a second configured user, on a raw socket
    srv = tcp_server(echo_handler)
    _one_exchange(p, p.socks_port, "127.0.0.1", srv.port, b"\x01\x02abc",
                  auth=("bob", "pw2"))
    # without credentials curl gets no acceptable method
    rc, code, body, err = socks_curl(
        p, f"http://alpha.test:{nginx.port}/small?t={t}x",
        "--socks5-hostname", f"127.0.0.1:{p.socks_port}")
    assert rc != 0 and code == "000", (rc, code, err)
    p.stop()
    assert len(p.conns("target_port = ? AND protocol = 'http'",
                       (nginx.port,))) == 1
    assert len(p.conns("target_port = ?", (srv.port,))) == 1


def test_auth_wrong_password(stream_proxy, tcp_server):
    p = stream_proxy({"socks5-user": "alice:s3cret"})
    srv = tcp_server(echo_handler)
    for user, pw in (("alice", "wrong"), ("alice", "s3cre"),
                     ("alice", "s3cret!"), ("mallory", "s3cret"),
                     ("", "")):
        with pytest.raises(SocksError) as ei:
            socks_open(p.socks_port, "127.0.0.1", srv.port,
                       auth=(user, pw))
        e = ei.value
        assert e.stage == "auth" and e.reply == b"\x01\x01", (user, pw)
        assert e.peer.closed_by_peer(5), (user, pw)
        e.peer.close()
    # curl with the wrong password fails too
    rc, code, _, err = socks_curl(
        p, f"http://127.0.0.1:{srv.port}/",
        "-x", f"socks5h://alice:nope@127.0.0.1:{p.socks_port}")
    assert rc != 0 and code == "000", (rc, err)
    assert srv.peers == []  # nothing reached the origin
    p.stop()
    assert p.conns("target_port = ?", (srv.port,)) == []


def test_no_acceptable_method(stream_proxy, tcp_server):
    srv = tcp_server(echo_handler)
    # auth required, client offers only no-auth (and GSSAPI)
    p = stream_proxy({"socks5-user": "alice:s3cret"})
    with pytest.raises(SocksError) as ei:
        socks_open(p.socks_port, "127.0.0.1", srv.port, methods=[0, 1])
    assert ei.value.stage == "method" and ei.value.reply == b"\x05\xff"
    assert ei.value.peer.closed_by_peer(5)
    ei.value.peer.close()
    # no auth configured, client offers only user/password
    q = stream_proxy()
    with pytest.raises(SocksError) as ei:
        socks_open(q.socks_port, "127.0.0.1", srv.port, methods=[2])
    assert ei.value.stage == "method" and ei.value.reply == b"\x05\xff"
    assert ei.value.peer.closed_by_peer(5)
    ei.value.peer.close()
    # a client offering both gets no-auth from the open proxy
    _one_exchange(q, q.socks_port, "127.0.0.1", srv.port, b"\x02xyz")
    assert len(srv.peers) == 1


@pytest.mark.parametrize("cmd", [2, 3])  # BIND, UDP ASSOCIATE
def test_unsupported_command(stream_proxy, tcp_server, cmd):
    srv = tcp_server(echo_handler)
    p = stream_proxy()
    with pytest.raises(SocksError) as ei:
        socks_open(p.socks_port, "127.0.0.1", srv.port, cmd=cmd)
    e = ei.value
    assert e.stage == "request"
    assert e.reply[:2] == b"\x05\x07", e.reply  # command not supported
    assert e.peer.closed_by_peer(5)
    e.peer.close()
    assert srv.peers == []


def test_unsupported_address_type_and_garbage(stream_proxy, tcp_server):
    srv = tcp_server(echo_handler)
    p = stream_proxy()
    c = Peer(socket.create_connection(("127.0.0.1", p.socks_port), 5))
    c.send(b"\x05\x01\x00")
    assert c.recv_exact(2) == b"\x05\x00"
    c.send(b"\x05\x01\x00\x05" + b"\x00" * 6)  # ATYP 5 does not exist
    r = c.recv_exact(2)
    assert r == b"\x05\x08", r
    assert c.closed_by_peer(5)
    c.close()
    # not SOCKS at all: closed without an answer, the proxy lives on
    c = Peer(socket.create_connection(("127.0.0.1", p.socks_port), 5))
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.closed_by_peer(5)
    c.close()
    _one_exchange(p, p.socks_port, "127.0.0.1", srv.port, b"\x03still")
    assert len(srv.peers) == 1


def test_transparent_refuses_unredirected(stream_proxy, tcp_server):
    """No iptables/nft here, so only the refusal: a connection that was
    not redirected has no original destination other than the proxy."""
    p = stream_proxy(transparent=True)
    c = Peer(socket.create_connection(("127.0.0.1", p.tport), 5))
    try:
        c.send(b"GET / HTTP/1.1\r\nHost: alpha.test\r\n\r\n")
    except OSError:
        pass
    assert c.closed_by_peer(5)
    assert bytes(c.got) == b""
    c.close()
    # the other listeners still work
    srv = tcp_server(echo_handler)
    _one_exchange(p, p.socks_port, "127.0.0.1", srv.port, b"\x04ok")
    p.stop()
    rs = p.conns("listener = 'transparent'")
    assert len(rs) == 1, rs
    r = rs[0]
    err = (r["error"] or "").lower()
    assert "redirect" in err or "original" in err, r
    assert not r["server_ip"] and not r["bytes_to_server"], r
