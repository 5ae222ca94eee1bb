"""
The h2 fixtures without the proxy: every client here talks straight to
the origin. When one of these fails, the proxy tests that use the fixture
say nothing about the proxy; when they pass, the through-proxy tests are
asking for what a correct origin does give.
"""
import subprocess

from conftest import token

from .conftest import (BIG_SIZE, NGHTTP, H2Origin, h2_client, hcurl,
                       sha256_hex)


def test_nginx_h2_over_tls(h2_nginx, certs, tmp_path):
    port = h2_nginx.ports["h2"]
    t = token()
    r = hcurl(f"https://alpha.test:{port}/small?t={t}", "--http2",
              "--resolve", f"alpha.test:{port}:127.0.0.1",
              cacert=certs.ca, out=tmp_path / "o")
    assert (r.rc, r.code, r.version) == (0, 200, "2"), r.stderr
    assert r.body == h2_nginx.files["small"]
    e = h2_nginx.wait_entries(t)[0]
    assert (e["proto"], e["alpn"]) == ("HTTP/2.0", "h2")


def test_nginx_h2_big_and_trailer(h2_nginx, certs, tmp_path):
    port = h2_nginx.ports["h2"]
    r = hcurl(f"https://alpha.test:{port}/big", "--http2",
              "--resolve", f"alpha.test:{port}:127.0.0.1",
              cacert=certs.ca, out=tmp_path / "o")
    assert (r.rc, r.code, r.version) == (0, 200, "2"), r.stderr
    assert len(r.body) == BIG_SIZE and r.body == h2_nginx.files["big"]
    # the trailer arrives in a HEADERS frame after the DATA
    out = h2_client("get", "/trailers.txt", port=port, cafile=certs.ca)
    assert out["rc"] == 0, out
    st = out["streams"][0]
    assert st["status"] == 200
    assert st["body_sha256"] == sha256_hex(h2_nginx.files["trailers.txt"])
    assert st["trailers"] == [["x-trailer-test", "done"]]


def test_nginx_h1_port_is_http11_only(h2_nginx, certs):
    port = h2_nginx.ports["h1"]
    # an h2-only client gets no h2 from this port: nginx refuses the
    # handshake (no_application_protocol alert), as nginx >= 1.21.4 does
    out = h2_client("get", "/small", port=port, cafile=certs.ca)
    assert out["rc"] == 1, out
    assert "no application protocol" in out["error"], out
    out = h2_client("get", "/small", port=port, cafile=certs.ca,
                    alpn="h2,http/1.1")
    assert out["rc"] == 1 and "'http/1.1', not h2" in out["error"], out


def test_nginx_h2c_prior_knowledge(h2_nginx, tmp_path):
    port = h2_nginx.ports["h2c"]
    t = token()
    r = hcurl(f"http://alpha.test:{port}/small?t={t}",
              "--http2-prior-knowledge",
              "--resolve", f"alpha.test:{port}:127.0.0.1", out=tmp_path / "o")
    assert (r.rc, r.code, r.version) == (0, 200, "2"), r.stderr
    assert r.body == h2_nginx.files["small"]
    assert h2_nginx.wait_entries(t)[0]["proto"] == "HTTP/2.0"


def test_nghttp_100_streams_one_connection(h2_nginx):
    port = h2_nginx.ports["h2"]
    t = token()
    cp = subprocess.run([NGHTTP, "-n", "-s", "-m", "100", "-t", "20",
                         f"https://127.0.0.1:{port}/small?t={t}"],
                        stdin=subprocess.DEVNULL, capture_output=True,
                        timeout=40)
    assert cp.returncode == 0, cp.stderr.decode()
    stats = [ln for ln in cp.stdout.decode().splitlines()
             if f"/small?t={t}" in ln]
    assert len(stats) == 100 and all(" 200 " in ln for ln in stats)
    es = h2_nginx.wait_entries(t, 100)
    assert len(es) == 100 and {e["status"] for e in es} == {"200"}
    assert len({e["connection"] for e in es}) == 1


def test_h2_client_slow_big_with_small_streams(h2_nginx, certs):
    port = h2_nginx.ports["h2"]
    out = h2_client("slowbig", "/big", "20", port=port, cafile=certs.ca,
                    timeout=30)
    assert out["rc"] == 0, out
    assert out["big"]["body_len"] == BIG_SIZE
    assert out["big"]["body_sha256"] == sha256_hex(h2_nginx.files["big"])
    assert out["big_bytes_when_smalls_done"] < BIG_SIZE
    assert [s["status"] for s in out["smalls"]] == [200] * 20
    assert all(s["body"].encode("latin-1") == h2_nginx.files["small"]
               for s in out["smalls"])


def test_h2_origin_scenarios(h2_origin, certs):
    kw = dict(port=h2_origin.port, cafile=certs.ca)
    out = h2_client("trailers", "/trailers", **kw)
    assert out["rc"] == 0, out
    st = out["stream"]
    assert st["status"] == 200
    assert st["trailers"] == [["grpc-status", "0"],
                              ["grpc-message", "all good"]]
    assert st["body"] == "echo:\x00\x00\x00\x00\x05hello"
    e = h2_origin.wait_entries("/trailers")[0]
    assert e["trailers"] == [["x-req-trailer", "one"],
                             ["x-req-checksum", "abc123"]]

    out = h2_client("rst", "/rst", **kw)
    assert out["rc"] == 0, out
    assert (out["stream"]["status"], out["stream"]["reset"]) == \
        (200, "INTERNAL_ERROR")

    out = h2_client("cancel", "/slow", "/ok", **kw)
    assert out["rc"] == 0, out
    assert [o["status"] for o in out["ok"]] == [200, 200]
    assert h2_origin.wait_entries("/slow")[0]["reset"] == 8  # CANCEL

    out = h2_client("ws", "/ws", **kw)
    assert out["rc"] == 0, out
    assert out["stream"]["status"] == 200
    assert out["received"] == out["sent"]
    assert h2_origin.wait_entries("/ws")[0]["protocol"] == "websocket"


def test_h2_origin_plain(tmp_path, certs):
    o = H2Origin(tmp_path, certs, plain=True)
    try:
        out = h2_client("get", "/plain", port=o.port, plain=True)
        assert out["rc"] == 0, out
        assert out["streams"][0]["status"] == 200
    finally:
        o.stop()
