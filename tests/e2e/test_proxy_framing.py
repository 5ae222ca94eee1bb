"""
Message framing through the proxy: chunked both ways, close-delimited,
large bodies streamed in bounded memory, HEAD / 1xx / 204 / 304 on a kept
connection, Expect: 100-continue.
"""
import hashlib
import os
import subprocess
import time

from conftest import (CURL, RawConn, is_asan_binary, origin_body, sha256,
                      token)


def test_chunked_upload_to_nginx(proxy, nginx):
    t = token()
    text = ("line of text\n" * 4000).encode()
    f = proxy.dir / "up.txt"
    f.write_bytes(text)
    r = proxy.curl(nginx.url("alpha.test", f"/upload?t={t}"),
                   "--data-binary", f"@{f}",
                   "-H", "Transfer-Encoding: chunked", "-H", "Expect:")
    assert r.rc == 0, r.stderr
    assert (r.code, r.body) == (200, b"ok\n")
    e = nginx.wait_entries(t)[0]
    assert e["method"] == "POST"
    assert e["body"] == text.decode()
    assert proxy.stop() == 0
    row = proxy.dbh().requests_with(t)[0]
    assert row["req_body_size"] == len(text)
    assert row["req_body_sha"] == sha256(text)


def test_chunked_upload_large_to_origin(proxy, origin):
    t = token()
    blob = os.urandom(5 * 1024 * 1024 + 3)
    f = proxy.dir / "up.bin"
    f.write_bytes(blob)
    r = proxy.curl(origin.url("alpha.test", f"/sha?t={t}"),
                   "--data-binary", f"@{f}",
                   "-H", "Transfer-Encoding: chunked", "-H", "Expect:")
    assert r.rc == 0, r.stderr
    assert r.code == 200
    assert r.body.decode().split() == [sha256(blob), str(len(blob))]
    assert proxy.stop() == 0
    row = proxy.dbh().requests_with(t)[0]
    assert row["req_body_size"] == len(blob)
    assert row["req_body_truncated"] == 1  # over the 1 MiB capture default


def test_chunked_download(proxy, origin):
    t = token()
    size = 2_000_003
    r = proxy.curl(origin.url("alpha.test",
                              f"/chunked?size={size}&seed=11&t={t}"))
    assert r.rc == 0, r.stderr
    assert r.code == 200
    assert r.body == origin_body(size, 11)
    assert proxy.stop() == 0
    row = proxy.dbh().requests_with(t)[0]
    assert row["resp_body_size"] == size
    assert row["status"] == 200
    assert row["content_type"] == "application/x-test"


def test_chunked_with_trailer_then_next_request(proxy, origin, nginx):
    """After a chunked response with a trailer, the same client connection
    carries the next exchange cleanly (no stray bytes)."""
    t = token()
    ohost = f"alpha.test:{origin.port}"
    nhost = f"alpha.test:{nginx.port}"
    with RawConn(proxy.port) as c:
        c.send(f"GET http://{ohost}/chunked?size=70000&seed=3&trailer=1&t={t}"
               f" HTTP/1.1\r\nHost: {ohost}\r\nTE: trailers\r\n\r\n".encode())
        r1 = c.read_response()
        c.send(f"GET http://{nhost}/small?t={t} HTTP/1.1\r\n"
               f"Host: {nhost}\r\n\r\n".encode())
        r2 = c.read_response()
    assert r1.status == 200 and r1.body == origin_body(70000, 3)
    assert r2.status == 200 and r2.body == nginx.files["small"]
    assert r2.get("x-uri") == f"/small?t={t}"


def test_close_delimited_download(proxy, origin, nginx):
    t = token()
    size = 1_000_001
    r = proxy.curl(origin.url("alpha.test",
                              f"/close?size={size}&seed=4&t={t}"))
    assert r.rc == 0, r.stderr
    assert r.code == 200
    assert r.body == origin_body(size, 4)
    # A raw 1.1 client: the proxy re-frames the body (chunked, or closing
    # its side after it); either way the client gets exactly the bytes.
    ohost = f"alpha.test:{origin.port}"
    with RawConn(proxy.port) as c:
        c.send(f"GET http://{ohost}/close?size=5000&seed=9&t={t} HTTP/1.1\r\n"
               f"Host: {ohost}\r\n\r\n".encode())
        resp = c.read_response()
        assert resp.status == 200
        assert resp.body == origin_body(5000, 9)
    assert proxy.stop() == 0
    rows = proxy.dbh().requests_with(t)
    assert [r["resp_body_size"] for r in rows] == [size, 5000]


def test_head_then_get_on_one_connection(proxy, nginx):
    t = token()
    host = f"alpha.test:{nginx.port}"
    size = len(nginx.files["medium.bin"])
    with RawConn(proxy.port) as c:
        c.send(f"HEAD http://{host}/medium.bin?t={t} HTTP/1.1\r\n"
               f"Host: {host}\r\n\r\n".encode())
        r1 = c.read_response("HEAD")
        assert r1.status == 200
        assert r1.get("content-length") == str(size)
        c.send(f"GET http://{host}/small?t={t} HTTP/1.1\r\n"
               f"Host: {host}\r\n\r\n".encode())
        r2 = c.read_response()
        assert r2.status == 200
        assert r2.body == nginx.files["small"]
    assert proxy.stop() == 0
    rows = proxy.dbh().requests_with(t)
    assert [(r["method"], r["resp_body_size"]) for r in rows] == [
        ("HEAD", 0), ("GET", 100)]


def test_204_and_304_then_next_on_one_connection(proxy, origin):
    t = token()
    host = f"alpha.test:{origin.port}"
    with RawConn(proxy.port) as c:
        for path, status in (("/status/204", 204), ("/status/304", 304),
                             ("/plain", 200)):
            c.send(f"GET http://{host}{path}?t={t} HTTP/1.1\r\n"
                   f"Host: {host}\r\n\r\n".encode())
            r = c.read_response()
            assert r.status == status
            if status == 200:
                assert r.body == b"origin-ok\n"
            else:
                assert r.get("transfer-encoding") is None
        assert c.buf == b""
    assert proxy.stop() == 0
    rows = proxy.dbh().requests_with(t)
    assert [r["status"] for r in rows] == [204, 304, 200]
    assert len({r["conn_id"] for r in rows}) == 1


def test_conditional_304_from_nginx(proxy, nginx):
    t = token()
    host = f"alpha.test:{nginx.port}"
    with RawConn(proxy.port) as c:
        c.send(f"GET http://{host}/img.jpg?t={t} HTTP/1.1\r\n"
               f"Host: {host}\r\n\r\n".encode())
        r = c.read_response()
        assert r.status == 200
        etag, lm = r.get("etag"), r.get("last-modified")
        assert etag and lm
        c.send(f"GET http://{host}/img.jpg?t={t}&c=1 HTTP/1.1\r\n"
               f"Host: {host}\r\nIf-None-Match: {etag}\r\n\r\n".encode())
        r = c.read_response()
        assert r.status == 304 and r.body == b""
        c.send(f"GET http://{host}/img.jpg?t={t}&c=2 HTTP/1.1\r\n"
               f"Host: {host}\r\nIf-Modified-Since: {lm}\r\n\r\n".encode())
        r = c.read_response()
        assert r.status == 304
        c.send(f"GET http://{host}/small?t={t}&c=3 HTTP/1.1\r\n"
               f"Host: {host}\r\n\r\n".encode())
        r = c.read_response()
        assert r.status == 200 and r.body == nginx.files["small"]
    assert [e["status"] for e in nginx.wait_entries(t, 4)] == [
        "200", "304", "304", "200"]


def test_1xx_interim_forwarded(proxy, origin):
    t = token()
    host = f"alpha.test:{origin.port}"
    with RawConn(proxy.port) as c:
        c.send(f"GET http://{host}/early?t={t} HTTP/1.1\r\n"
               f"Host: {host}\r\n\r\n".encode())
        r = c.read_response()
        assert [i.status for i in r.interim] == [103]
        assert "style.css" in (r.interim[0].get("link") or "")
        assert r.status == 200 and r.body == b"after-hints\n"
    assert proxy.stop() == 0
    rows = proxy.dbh().requests_with(t)
    assert len(rows) == 1 and rows[0]["status"] == 200


def _expect_continue(proxy, port, path, t):
    host = f"alpha.test:{port}"
    body = b"E" * 70000
    with RawConn(proxy.port) as c:
        c.send(f"POST http://{host}{path}?t={t} HTTP/1.1\r\nHost: {host}\r\n"
               f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n"
               "Content-Type: text/plain\r\n\r\n".encode())
        c.sock.settimeout(5)
        interim = c.read_head()  # must come before we send the body
        assert interim.status == 100
        c.sock.settimeout(10)
        c.send(body)
        r = c.read_response()
    return body, r


def test_expect_100_continue_origin(proxy, origin):
    t = token()
    body, r = _expect_continue(proxy, origin.port, "/sha", t)
    assert r.status == 200
    assert r.body.decode().split() == [sha256(body), str(len(body))]
    assert len(origin.with_token(t)) == 1


def test_expect_100_continue_nginx(proxy, nginx):
    t = token()
    body, r = _expect_continue(proxy, nginx.port, "/upload", t)
    assert (r.status, r.body) == (200, b"ok\n")
    e = nginx.wait_entries(t)[0]
    assert e["body"] == body.decode()


def test_large_download_bounded_memory(start_proxy, nginx, huge_file):
    name, size, digest = huge_file
    env = None
    asan = is_asan_binary()
    if asan:
        # Keep ASan's quarantine of freed chunks from passing for a leak of
        # relay buffers; the bound below is then on top of the start-up RSS.
        env = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") +
               ":quarantine_size_mb=16:thread_local_quarantine_size_kb=256"}
    p = start_proxy(env_extra=env)
    base = p.rss_kib()
    t = token()
    argv = [CURL, "-sS", "--max-time", "60", "-x", p.url, "--noproxy", "",
            nginx.url("alpha.test", f"/{name}?t={t}")]
    h = hashlib.sha256()
    n = 0
    t0 = time.monotonic()
    with subprocess.Popen(argv, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=p.env) as cp:
        for _ in range(size // 65536 + 10000):
            chunk = cp.stdout.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
        rc = cp.wait(timeout=70)
    assert time.monotonic() - t0 < 70
    assert rc == 0
    assert n == size
    assert h.hexdigest() == digest
    hwm = p.rss_hwm_kib()
    print(f"proxy RSS: start {base} KiB, peak {hwm} KiB, asan={asan}")
    limit = 64 * 1024 + (base if asan else 0)
    assert hwm < limit, f"peak RSS {hwm} KiB (start {base} KiB)"
    assert p.stop() == 0
    row = p.dbh().requests_with(t)[0]
    assert row["resp_body_size"] == size
    assert row["resp_body_truncated"] == 1
    e = nginx.wait_entries(t)[0]
    assert e["bytes_sent"] == str(size)


def test_expect_rejected_without_body(proxy, origin, nginx):
    """The origin answers a final status instead of 100: the client gets it
    without having sent the body, and the proxy does not hang."""
    t = token()
    host = f"alpha.test:{origin.port}"
    t0 = time.monotonic()
    with RawConn(proxy.port) as c:
        c.send(f"POST http://{host}/reject?t={t} HTTP/1.1\r\nHost: {host}\r\n"
               "Content-Length: 50000000\r\nExpect: 100-continue\r\n\r\n"
               .encode())
        c.sock.settimeout(5)
        r = c.read_response()
        assert r.status == 413
        assert r.body == b"too big!\n"
    assert time.monotonic() - t0 < 5
    # the proxy still serves others
    r = proxy.curl(nginx.url("alpha.test", f"/small?t={t}"))
    assert r.code == 200
    assert proxy.stop() == 0
    rows = proxy.dbh().requests_with(t)
    assert [r["status"] for r in rows] == [413, 200]
