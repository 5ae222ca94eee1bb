"""
Origins that misbehave or go away: the client must never be handed a
response that looks complete when it is not, and the row must say what
happened. Also pooled upstream connections the origin closed, slow origins
behind fast ones in a pipeline, and back-pressure both ways.
"""
import os
import socket
import subprocess
import time

from conftest import (CURL, RawConn, is_asan_binary, origin_body, sha256,
                      token)


def _rss_limit_kib(p, asan):
    return 64 * 1024 + (p.base_rss if asan else 0)


def _asan_env():
    if not is_asan_binary():
        return None
    return {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") +
            ":quarantine_size_mb=16:thread_local_quarantine_size_kb=256"}


def test_pipeline_slow_origin_before_fast_one(proxy, origin, nginx):
    """Responses come back in request order even when the second request
    goes to a faster origin."""
    t = token()
    oh, nh = f"alpha.test:{origin.port}", f"beta.test:{nginx.port}"
    wire = (f"GET http://{oh}/slow?ms=700&t={t} HTTP/1.1\r\nHost: {oh}\r\n\r\n"
            f"GET http://{nh}/small?t={t} HTTP/1.1\r\nHost: {nh}\r\n\r\n"
            ).encode()
    with RawConn(proxy.port) as c:
        c.send(wire)
        r1 = c.read_response()
        r2 = c.read_response()
    assert (r1.status, r1.body) == (200, b"slow 700\n")
    assert (r2.status, r2.body) == (200, nginx.files["small"])
    assert proxy.stop() == 0
    rows = proxy.dbh().requests_with(t)
    assert [(r["host"], r["seq"]) for r in rows] == [
        ("alpha.test", 1), ("beta.test", 2)]


def test_pooled_upstream_closed_by_origin(proxy, origin):
    t = token()
    r = proxy.curl(origin.url("alpha.test", f"/idle-close?t={t}"))
    assert (r.code, r.body) == (200, b"idle-close\n")
    time.sleep(0.6)  # the origin has closed the pooled connection by now
    r = proxy.curl(origin.url("alpha.test", f"/plain?t={t}&n=2"))
    assert r.rc == 0, r.stderr
    assert (r.code, r.body) == (200, b"origin-ok\n")
    got = origin.with_token(t)
    assert len(got) == 2
    assert got[0]["conn"] != got[1]["conn"]


def test_upstream_head_too_large_502(proxy, origin):
    t = token()
    r = proxy.curl(origin.url("alpha.test", f"/bighead?size=200000&t={t}"))
    assert r.rc == 0, r.stderr
    assert r.code == 502
    assert proxy.stop() == 0
    rows = proxy.dbh().requests_with(t)
    assert len(rows) == 1 and rows[0]["error"]


def test_upstream_not_http_502(proxy, origin):
    t = token()
    r = proxy.curl(origin.url("alpha.test", f"/garbage?t={t}"))
    assert r.rc == 0, r.stderr
    assert r.code == 502
    assert proxy.stop() == 0
    rows = proxy.dbh().requests_with(t)
    assert len(rows) == 1 and rows[0]["error"]


def test_upstream_truncated_body_not_passed_off_as_complete(proxy, origin):
    t = token()
    host = f"alpha.test:{origin.port}"
    with RawConn(proxy.port) as c:
        c.send(f"GET http://{host}/truncated?t={t} HTTP/1.1\r\n"
               f"Host: {host}\r\n\r\n".encode())
        head = c.read_head()
        assert head.status == 200
        rest = c.read_to_eof()  # the proxy must close, not hang or pad
    if head.get("content-length") is not None:
        assert head.get("content-length") == "100000"
        assert len(rest) < 100000
    else:  # re-framed as chunked: the terminating chunk must be missing
        assert b"\r\n0\r\n\r\n" not in rest
    assert origin_body(5000, 6)[:1000] in rest
    assert proxy.stop() == 0
    rows = proxy.dbh().requests_with(t)
    assert len(rows) == 1
    assert rows[0]["error"]
    assert rows[0]["resp_body_size"] == 5000


def test_upstream_bad_chunk_aborts_client(proxy, origin):
    t = token()
    r = proxy.curl(origin.url("alpha.test", f"/badchunk?t={t}"))
    assert r.rc != 0  # curl saw a broken transfer, not a clean end
    assert b"world" not in r.body
    assert proxy.stop() == 0
    rows = proxy.dbh().requests_with(t)
    assert len(rows) == 1 and rows[0]["error"]


def test_slow_reader_backpressure(start_proxy, nginx, huge_file):
    """A client that stops reading: the proxy stops reading the origin
    instead of buffering the rest of a 256 MiB body."""
    name, size, _ = huge_file
    asan = is_asan_binary()
    p = start_proxy(env_extra=_asan_env())
    p.base_rss = p.rss_kib()
    t = token()
    host = f"alpha.test:{nginx.port}"
    with RawConn(p.port) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.send(f"GET http://{host}/{name}?t={t} HTTP/1.1\r\n"
               f"Host: {host}\r\n\r\n".encode())
        head = c.read_head()
        assert head.status == 200
        c.read_exact(1 << 20)
        time.sleep(1.5)  # nginx could push it all in this time
        hwm = p.rss_hwm_kib()
        # and the stream still resumes correctly
        got = c.read_exact(4 << 20)
        assert len(got) == 4 << 20
    assert hwm < _rss_limit_kib(p, asan), \
        f"peak RSS {hwm} KiB with a stalled reader (start {p.base_rss} KiB)"


def test_large_upload_bounded_memory(start_proxy, origin, tmp_path):
    asan = is_asan_binary()
    p = start_proxy(env_extra=_asan_env())
    p.base_rss = p.rss_kib()
    t = token()
    f = tmp_path / "up.bin"
    block = os.urandom(1 << 20)
    with open(f, "wb") as fh:
        for i in range(64):
            fh.write(block[i:] + block[:i])  # each MiB different
    data = f.read_bytes()
    try:
        cp = subprocess.run(
            [CURL, "-sS", "--max-time", "60", "-x", p.url, "--noproxy", "",
             "-T", str(f), "-H", "Expect:",
             origin.url("alpha.test", f"/sha?t={t}")],
            capture_output=True, timeout=90, env=p.env)
    finally:
        f.unlink()
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.decode().split() == [sha256(data), str(len(data))]
    hwm = p.rss_hwm_kib()
    assert hwm < _rss_limit_kib(p, asan), \
        f"peak RSS {hwm} KiB (start {p.base_rss} KiB)"
    assert p.stop() == 0
    row = p.dbh().requests_with(t)[0]
    assert row["method"] == "PUT"
    assert row["req_body_size"] == len(data)
    assert row["req_body_truncated"] == 1
