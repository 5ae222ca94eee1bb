"""
HTTP/2 through peephole to nginx: curl over a CONNECT tunnel, nghttp with
100 concurrent streams through the reverse listener, an h2-only client
against an HTTP/1.1-only origin (translated), a slow large stream beside
small ones, and h2c with prior knowledge inside a plain CONNECT tunnel.
Each test checks what the client got, what nginx saw, and the rows: one
request row per stream (req_version '2', stream_id, up_version), the
pseudo-headers first in req_headers / resp_headers, and the connection's
ALPN columns (alpn offered, alpn_client agreed, alpn_server chosen).
"""
import subprocess

from conftest import token
from tls.conftest import https_get, tls_over_tunnel

from .conftest import (BIG_SIZE, NGHTTP, body_of, conn_of, h2_client,
                       h2_rows, hcurl, header_lines, sha256_hex,
                       start_h2_proxy)

PSEUDO_REQ = (":method", ":scheme", ":authority", ":path")


def assert_h2_request_head(row, method, scheme, authority, path, fields):
    """req_headers: the four pseudo-headers first, then the fields as the
    client sent them (names only: values such as user-agent vary)."""
    lines = header_lines(row["req_headers"])
    assert sorted(lines[:4]) == sorted([
        (":method", method), (":scheme", scheme),
        (":authority", authority), (":path", path)]), row["req_headers"]
    assert [k for k, _ in lines[4:]] == fields, row["req_headers"]


def assert_h2_response_head(row, status):
    lines = header_lines(row["resp_headers"])
    assert lines[0] == (":status", str(status)), row["resp_headers"]
    assert all(not k.startswith(":") for k, _ in lines[1:])
    assert all(k == k.lower() for k, _ in lines), row["resp_headers"]


def test_curl_http2_over_connect_to_nginx(tls_proxy, certs, h2_nginx,
                                          tmp_path):
    p = start_h2_proxy(tls_proxy, certs)
    port = h2_nginx.ports["h2"]
    t = token()
    base = f"https://alpha.test:{port}"
    r = hcurl(f"{base}/small?t={t}", "--http2", proxy=p.port,
              cacert=p.ca_pem, out=tmp_path / "o")
    assert (r.rc, r.code, r.version) == (0, 200, "2"), r.stderr
    assert r.body == h2_nginx.files["small"]
    r = hcurl(f"{base}/big?t={t}", "--http2", proxy=p.port,
              cacert=p.ca_pem, out=tmp_path / "o")
    assert (r.rc, r.code, r.version) == (0, 200, "2"), r.stderr
    assert len(r.body) == BIG_SIZE and r.body == h2_nginx.files["big"]
    out = h2_client("get", f"/trailers.txt?t={t}", port=port, proxy=p.port,
                    cafile=p.ca_pem)
    assert out["rc"] == 0, out
    assert out["streams"][0]["trailers"] == [["x-trailer-test", "done"]]

    # the origin leg is h2 as well
    es = h2_nginx.wait_entries(t, 3)
    assert [(e["proto"], e["alpn"], e["sni"]) for e in es] == \
        [("HTTP/2.0", "h2", "alpha.test")] * 3, es

    p.stop()
    rows = h2_rows(p, "query LIKE ? AND method = 'GET'", (f"%{t}%",))
    assert [r["path"] for r in rows] == ["/small", "/big", "/trailers.txt"]
    small, big, trl = rows
    for row in rows:
        assert (row["scheme"], row["host"], row["port"], row["status"]) == \
            ("https", "alpha.test", port, 200), row
        assert row["req_version"] == "2", row
        assert row["up_version"] is None, row
        assert row["stream_id"] == 1, row  # each its own connection
        assert row["stream_end"] is None, row
        assert_h2_response_head(row, 200)
    assert_h2_request_head(small, "GET", "https", f"alpha.test:{port}",
                           f"/small?t={t}", ["user-agent", "accept"])
    assert small["resp_body_sha"] == sha256_hex(h2_nginx.files["small"])
    assert body_of(p, small["resp_body_sha"]) == h2_nginx.files["small"]
    assert ("content-length", "100") in header_lines(small["resp_headers"])
    assert big["resp_body_size"] == BIG_SIZE
    assert big["resp_body_truncated"] == 1
    assert trl["resp_trailers"] == "x-trailer-test: done\r\n"
    assert trl["req_trailers"] is None

    for row in rows:
        c = conn_of(p, row)
        assert c["listener"] == "http" and c["decision"] == "intercept", c
        assert c["alpn_client"] == "h2", c
        assert c["alpn_server"] == "h2", c
    assert conn_of(p, small)["alpn"] == "h2,http/1.1"  # curl's offer
    assert conn_of(p, trl)["alpn"] == "h2"              # h2_client's


def test_nghttp_100_streams_through_reverse_listener(tls_proxy, certs,
                                                     h2_nginx):
    """nghttp has no proxy support (no CONNECT): it reaches nginx through
    the reverse listener, which treats the connection as one to nginx's
    h2 port. 100 requests, all in flight at once (-m 100, 100 concurrent
    streams allowed) on one connection."""
    port = h2_nginx.ports["h2"]
    p = start_h2_proxy(tls_proxy, certs, reverse_to=("127.0.0.1", port))
    t = token()
    cp = subprocess.run([NGHTTP, "-n", "-s", "-m", "100", "-t", "20",
                         f"https://127.0.0.1:{p.rport}/small?t={t}"],
                        stdin=subprocess.DEVNULL, capture_output=True,
                        timeout=40)
    assert cp.returncode == 0, cp.stderr.decode()[-2000:]
    stats = [ln for ln in cp.stdout.decode().splitlines()
             if f"/small?t={t}" in ln]
    assert len(stats) == 100, cp.stdout.decode()[-3000:]
    assert all(" 200 " in ln for ln in stats), stats[:3]

    es = h2_nginx.wait_entries(t, 100)
    assert len(es) == 100 and {e["proto"] for e in es} == {"HTTP/2.0"}
    # the client's one connection is one origin connection
    assert len({e["connection"] for e in es}) == 1

    p.stop()
    rows = h2_rows(p, "query LIKE ?", (f"%{t}%",))
    assert len(rows) == 100, len(rows)
    assert {r["req_version"] for r in rows} == {"2"}
    assert {r["status"] for r in rows} == {200}
    assert {r["up_version"] for r in rows} == {None}
    sids = [r["stream_id"] for r in rows]
    assert len(set(sids)) == 100 and all(s % 2 == 1 for s in sids), sids
    assert {r["resp_body_sha"] for r in rows} == \
        {sha256_hex(h2_nginx.files["small"])}
    assert len({r["conn_id"] for r in rows}) == 1
    conns = p.rows("SELECT * FROM connections")
    assert len(conns) == 1, conns
    c = conns[0]
    assert (c["listener"], c["target_host"], c["target_port"]) == \
        ("reverse", "127.0.0.1", port)
    assert (c["alpn_client"], c["alpn_server"]) == ("h2", "h2")


def test_h2_only_client_to_http11_only_origin_is_translated(
        tls_proxy, certs, h2_nginx):
    """The client offers only h2; nginx's "h1" port speaks only HTTP/1.1
    (and refuses a handshake offering only h2: see test_fixtures_direct).
    The client gets h2 from peephole and each stream becomes an HTTP/1.1
    exchange with the origin."""
    p = start_h2_proxy(tls_proxy, certs)
    port = h2_nginx.ports["h1"]
    t = token()
    out = h2_client("get", f"/small?t={t}", f"/big?t={t}",
                    f"/small?t={t}&again=1", port=port, proxy=p.port,
                    cafile=p.ca_pem, alpn="h2", timeout=30)
    assert out["rc"] == 0, out
    assert out["alpn"] == "h2"
    sts = out["streams"]
    assert [s["status"] for s in sts] == [200, 200, 200]
    assert sts[0]["body_sha256"] == sha256_hex(h2_nginx.files["small"])
    assert sts[1]["body_sha256"] == sha256_hex(h2_nginx.files["big"])
    assert sts[2]["body_sha256"] == sha256_hex(h2_nginx.files["small"])

    es = h2_nginx.wait_entries(t, 3)
    assert len(es) == 3 and {e["proto"] for e in es} == {"HTTP/1.1"}, es

    p.stop()
    rows = h2_rows(p, "query LIKE ? AND method = 'GET'", (f"%{t}%",))
    assert len(rows) == 3, rows
    for row, st in zip(sorted(rows, key=lambda r: r["stream_id"]), sts):
        assert row["stream_id"] == st["stream_id"]
        assert (row["req_version"], row["up_version"]) == ("2", "1.1"), row
        assert row["status"] == 200
        assert row["resp_body_sha"] == st["body_sha256"] or \
            row["resp_body_truncated"] == 1
        assert row["resp_body_size"] == st["body_len"]
        assert_h2_response_head(row, 200)
    c = conn_of(p, rows[0])
    assert (c["alpn"], c["alpn_client"]) == ("h2", "h2"), c
    # what nginx chose when offered HTTP/1.1 (no ALPN at all is as good)
    assert c["alpn_server"] in ("http/1.1", None), c


def test_slow_big_stream_does_not_hold_up_small_ones(tls_proxy, certs,
                                                     h2_nginx):
    """The client stops acknowledging the 20 MiB stream after its first
    window, then asks for 20 small files on the same connection: they
    must all complete while the big one waits; then the big one is read
    to the end, intact. Bounded by the client's 30 s."""
    p = start_h2_proxy(tls_proxy, certs)
    port = h2_nginx.ports["h2"]
    out = h2_client("slowbig", "/big?slow=1", "20", port=port,
                    proxy=p.port, cafile=p.ca_pem, timeout=30)
    assert out["rc"] == 0, out
    assert [s["status"] for s in out["smalls"]] == [200] * 20
    assert all(s["body"].encode("latin-1") == h2_nginx.files["small"]
               for s in out["smalls"])
    assert out["big_bytes_when_smalls_done"] < BIG_SIZE
    assert out["big"]["body_len"] == BIG_SIZE
    assert out["big"]["body_sha256"] == sha256_hex(h2_nginx.files["big"])

    p.stop()
    rows = h2_rows(p, "method = 'GET'")
    assert len(rows) == 21, [(r["path"], r["status"]) for r in rows]
    assert len({r["conn_id"] for r in rows}) == 1
    assert len({r["stream_id"] for r in rows}) == 21
    big = [r for r in rows if r["path"] == "/big"]
    assert len(big) == 1 and big[0]["resp_body_size"] == BIG_SIZE
    assert big[0]["stream_end"] is None
    assert all(r["status"] == 200 and r["req_version"] == "2" for r in rows)


def test_h2c_prior_knowledge_in_plain_connect_tunnel(tls_proxy, certs,
                                                     h2_nginx, tmp_path):
    p = start_h2_proxy(tls_proxy, certs)
    port = h2_nginx.ports["h2c"]
    t = token()
    r = hcurl(f"http://alpha.test:{port}/small?t={t}",
              "--http2-prior-knowledge", "-p", proxy=p.port,
              out=tmp_path / "o")
    assert (r.rc, r.code, r.version) == (0, 200, "2"), r.stderr
    assert r.body == h2_nginx.files["small"]
    out = h2_client("get", f"/small?t={t}&n=1", f"/small?t={t}&n=2",
                    f"/trailers.txt?t={t}", port=port, proxy=p.port,
                    plain=True)
    assert out["rc"] == 0, out
    assert [s["status"] for s in out["streams"]] == [200] * 3

    es = h2_nginx.wait_entries(t, 4)
    assert len(es) == 4 and {e["proto"] for e in es} == {"HTTP/2.0"}, es

    p.stop()
    rows = h2_rows(p, "query LIKE ? AND method = 'GET'", (f"%{t}%",))
    assert len(rows) == 4, rows
    for row in rows:
        assert (row["scheme"], row["req_version"], row["up_version"]) == \
            ("http", "2", None), row
        assert row["status"] == 200
    assert_h2_request_head(rows[0], "GET", "http", f"alpha.test:{port}",
                           f"/small?t={t}", ["user-agent", "accept"])
    assert [r["stream_id"] for r in rows[1:]] == [1, 3, 5]
    assert len({r["conn_id"] for r in rows[1:]}) == 1
    assert rows[3]["resp_trailers"] == "x-trailer-test: done\r\n"
    c = conn_of(p, rows[1])
    assert c["protocol"] == "h2", c
    assert c["alpn"] is None and c["alpn_client"] is None, c


def test_malformed_h2_client_closed_and_recorded(tls_proxy, certs, h2_nginx):
    """A client that agrees on h2 and then sends no HTTP/2 preface is
    closed (nghttp2 sends no GOAWAY for a bad preface); its connection row
    says why, and a good client after it is served."""
    p = start_h2_proxy(tls_proxy, certs)
    port = h2_nginx.ports["h2"]
    s = tls_over_tunnel(p, "alpha.test", port, cafile=p.ca_pem, alpn=["h2"])
    assert s.selected_alpn_protocol() == "h2"
    s.sendall(b"GET / HTTP/1.1\r\nHost: alpha.test\r\n\r\n")
    got, closed = b"", False
    s.settimeout(5)
    for _ in range(100):
        d = s.recv(65536)
        if not d:
            closed = True
            break
        got += d
    s.close()
    assert closed, got
    assert got[3:4] == b"\x04", got  # our SETTINGS went first
    ok = tls_over_tunnel(p, "alpha.test", port, cafile=p.ca_pem,
                         alpn=["http/1.1"])
    status, _ = https_get(ok, "alpha.test", "/small")
    ok.close()
    assert status == 200
    p.stop()
    cs = p.rows("SELECT * FROM connections WHERE alpn_client = 'h2'")
    assert len(cs) == 1, cs
    assert cs[0]["close_reason"] == "client-h2-error", cs[0]
    assert cs[0]["error"], cs[0]
