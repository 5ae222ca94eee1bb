"""
Failures the proxy must answer itself: upstream refused / unresolvable /
silent, malformed and smuggling-style requests, oversized heads, slow heads.
Each leaves a row in the db saying what went wrong.
"""
import socket
import time

import pytest

from conftest import RawConn, free_port, token


def _error_rows(db, tok=None):
    rows = db.requests_with(tok) if tok else db.requests()
    return [r for r in rows if r["error"]]


def test_upstream_refused_502(proxy):
    t = token()
    port = free_port()  # nothing listens there
    r = proxy.curl(f"http://alpha.test:{port}/x?t={t}")
    assert r.rc == 0, r.stderr
    assert r.code == 502
    assert proxy.stop() == 0
    rows = proxy.dbh().requests_with(t)
    assert len(rows) == 1
    assert rows[0]["error"]
    assert rows[0]["status"] in (0, 502, None)
    assert rows[0]["port"] == port


def test_unresolvable_host_502(proxy, dns_stub):
    t = token()
    name = f"nosuch-{t}.test"
    t0 = time.monotonic()
    r = proxy.curl(f"http://{name}:8080/x?t={t}")
    assert time.monotonic() - t0 < 10
    assert r.rc == 0, r.stderr
    assert r.code == 502
    # resolved through the configured DNS server, not the system resolver
    assert dns_stub.asked(name), dns_stub.queries[-5:]
    assert proxy.stop() == 0
    rows = proxy.dbh().requests_with(t)
    assert len(rows) == 1
    assert rows[0]["host"] == name
    assert rows[0]["error"]


def test_upstream_silent_504(start_proxy, origin):
    p = start_proxy({"upstream-timeout": "1s"})
    t = token()
    t0 = time.monotonic()
    r = p.curl(origin.url("alpha.test", f"/stall?t={t}"), timeout=15)
    took = time.monotonic() - t0
    assert r.rc == 0, r.stderr
    assert r.code == 504
    assert 0.8 < took < 5, took
    assert len(origin.with_token(t)) == 1  # the request did reach it
    assert p.stop() == 0
    rows = p.dbh().requests_with(t)
    assert len(rows) == 1 and rows[0]["error"]


def _expect_400_and_close(proxy, wire):
    with RawConn(proxy.port, timeout=5) as c:
        try:
            c.send(wire)
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = c.read_response()
        assert r.status == 400, r.raw_head
        assert "nginx" not in (r.get("server") or ""), \
            "the 400 came from the origin: the request was forwarded"
        assert c.closed_by_peer(5)
    return r


def _assert_error_recorded(proxy):
    db = proxy.dbh()
    assert _error_rows(db) or [c for c in db.connections() if c["error"]], \
        (db.requests(), db.connections())


MALFORMED = {
    "garbage": b"GARBAGE\r\n\r\n",
    "header-without-colon":
        b"GET http://alpha.test:{port}/small?t={t} HTTP/1.1\r\n"
        b"Host alpha.test\r\n\r\n",
    "space-before-colon":
        b"GET http://alpha.test:{port}/small?t={t} HTTP/1.1\r\n"
        b"Host : alpha.test\r\n\r\n",
    "nul-in-header":
        b"GET http://alpha.test:{port}/small?t={t} HTTP/1.1\r\n"
        b"Host: alpha.test\r\nX-A: a\x00b\r\n\r\n",
    "bad-content-length":
        b"POST http://alpha.test:{port}/upload?t={t} HTTP/1.1\r\n"
        b"Host: alpha.test\r\nContent-Length: abc\r\n\r\n",
    "bad-version":
        b"GET http://alpha.test:{port}/small?t={t} HTTP/1.x\r\n"
        b"Host: alpha.test\r\n\r\n",
}

SMUGGLING = {
    "cl-and-te":
        b"POST http://alpha.test:{port}/upload?t={t} HTTP/1.1\r\n"
        b"Host: alpha.test\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        b"GET /small?t={t}&smuggled=1 HTTP/1.1\r\nHost: alpha.test\r\n\r\n",
    "te-and-cl":
        b"POST http://alpha.test:{port}/upload?t={t} HTTP/1.1\r\n"
        b"Host: alpha.test\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Length: 5\r\n\r\n0\r\n\r\n",
    "duplicate-content-length":
        b"POST http://alpha.test:{port}/upload?t={t} HTTP/1.1\r\n"
        b"Host: alpha.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
        b"hello!",
    "duplicate-host":
        b"GET http://alpha.test:{port}/small?t={t} HTTP/1.1\r\n"
        b"Host: alpha.test\r\nHost: beta.test\r\n\r\n",
    "content-length-list":
        b"POST http://alpha.test:{port}/upload?t={t} HTTP/1.1\r\n"
        b"Host: alpha.test\r\nContent-Length: 5, 6\r\n\r\nhello!",
}


@pytest.mark.parametrize("case", sorted(MALFORMED) + sorted(SMUGGLING))
def test_malformed_or_smuggling_400(proxy, nginx, case):
    t = token()
    wire = {**MALFORMED, **SMUGGLING}[case].replace(
        b"{port}", str(nginx.port).encode()).replace(b"{t}", t.encode())
    _expect_400_and_close(proxy, wire)
    time.sleep(0.3)
    assert nginx.entries_with(t) == []  # nothing reached the origin
    assert proxy.stop() == 0
    _assert_error_recorded(proxy)


@pytest.mark.parametrize("size", [b"zz", b"-1", b"fffffffffffffffffff1",
                                  b"5 5", b"0x5"])
def test_bad_chunk_size_400(proxy, nginx, size):
    t = token()
    wire = (f"POST http://alpha.test:{nginx.port}/upload?t={t} HTTP/1.1\r\n"
            "Host: alpha.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            ).encode() + size + b"\r\nhello\r\n0\r\n\r\n"
    _expect_400_and_close(proxy, wire)
    assert proxy.stop() == 0
    _assert_error_recorded(proxy)
    # nginx must not have accepted a complete POST for it
    assert [e for e in nginx.entries_with(t) if e["status"] == "200"] == []


def test_header_too_large_431(start_proxy, nginx):
    p = start_proxy({"max-header-size": "8K"})
    t = token()
    host = f"alpha.test:{nginx.port}"
    # just under the limit passes
    with RawConn(p.port) as c:
        c.send(f"GET http://{host}/small?t={t}&ok=1 HTTP/1.1\r\n"
               f"Host: {host}\r\nX-Big: {'a' * 6000}\r\n\r\n".encode())
        r = c.read_response()
        assert r.status == 200
    with RawConn(p.port) as c:
        try:
            c.send(f"GET http://{host}/small?t={t}&big=1 HTTP/1.1\r\n"
                   f"Host: {host}\r\nX-Big: {'a' * 20000}\r\n\r\n".encode())
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = c.read_response()
        assert r.status == 431
        assert c.closed_by_peer(5)
    time.sleep(0.3)
    assert [e["uri"] for e in nginx.entries_with(t)] == [
        f"/small?t={t}&ok=1"]
    assert p.stop() == 0
    _assert_error_recorded(p)


def test_slow_request_head_times_out(start_proxy, nginx):
    p = start_proxy({"header-timeout": "1s"})
    t0 = time.monotonic()
    with RawConn(p.port) as c:
        c.send(f"GET http://alpha.test:{nginx.port}/small HTTP/1.1\r\n"
               "Host: alph".encode())
        assert c.closed_by_peer(6)
        took = time.monotonic() - t0
        assert c.buf == b"" or c.buf.startswith(b"HTTP/1.1 408"), c.buf
    assert 0.8 < took < 5, took


def test_proxy_survives_abrupt_clients(proxy, nginx):
    """Clients that vanish mid-request or mid-response do not hurt others."""
    t = token()
    host = f"alpha.test:{nginx.port}"
    for i in range(5):
        s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        s.sendall(f"POST http://{host}/upload?t={t} HTTP/1.1\r\nHost: {host}"
                  "\r\nContent-Length: 100000\r\n\r\npartial".encode())
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
        s.close()
        s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        s.sendall(f"GET http://{host}/medium.bin?t={t} HTTP/1.1\r\n"
                  f"Host: {host}\r\n\r\n".encode())
        s.recv(1000)
        s.close()
    r = proxy.curl(nginx.url("alpha.test", f"/small?t={t}&after=1"))
    assert (r.code, r.body) == (200, nginx.files["small"])
