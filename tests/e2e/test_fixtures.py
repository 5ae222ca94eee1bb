"""
The fixtures themselves, without the proxy: when one of these fails, the
proxy tests that use the fixture say nothing about the proxy.
"""
import socket
import struct

from conftest import RawConn, origin_body, sha256, token


def test_nginx_serves_and_logs(nginx):
    t = token()
    with RawConn(nginx.port) as c:
        c.send(f"GET /small?t={t} HTTP/1.1\r\nHost: alpha.test\r\n"
               "X-Test: direct\r\n\r\n".encode())
        r = c.read_response()
        assert r.status == 200
        assert r.body == nginx.files["small"]
        assert r.get("x-uri") == f"/small?t={t}"
        body = b"hello=world&x=1"
        c.send(f"POST /upload?t={t} HTTP/1.1\r\nHost: alpha.test\r\n"
               f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        r = c.read_response()
        assert r.status == 200 and r.body == b"ok\n"
    es = nginx.wait_entries(t, 2)
    assert [e["method"] for e in es] == ["GET", "POST"]
    assert es[0]["h_x_test"] == "direct"
    assert es[1]["body"] == body.decode()
    assert es[0]["connection"] == es[1]["connection"]
    assert es[1]["connection_requests"] == "2"


def test_origin_chunked_and_sha(origin):
    t = token()
    with RawConn(origin.port) as c:
        c.send(f"GET /chunked?size=50000&seed=7&t={t} HTTP/1.1\r\n"
               "Host: x\r\n\r\n".encode())
        r = c.read_response()
        assert r.get("transfer-encoding") == "chunked"
        assert r.body == origin_body(50000, 7)
        c.send(f"POST /sha?t={t} HTTP/1.1\r\nHost: x\r\n"
               "Transfer-Encoding: chunked\r\n\r\n"
               "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n".encode())
        r = c.read_response()
        assert r.body.decode().split() == [sha256(b"abcde"), "5"]
    assert len(origin.with_token(t)) == 2


def test_dns_stub_nxdomain(dns_stub):
    q = (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
         b"\x07nosuch1\x04test\x00\x00\x01\x00\x01")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(q, ("127.0.0.1", dns_stub.port))
        resp, _ = s.recvfrom(512)
    ident, flags, qd, an = struct.unpack(">HHHH", resp[:8])
    assert ident == 0x1234
    assert flags & 0x8000 and flags & 0xF == 3
    assert qd == 1 and an == 0
    assert dns_stub.asked("nosuch1.test")
