"""
HTTPS interception that works: curl, Python ssl, openssl s_client and
urllib through the proxy to an nginx origin whose certificate is signed by
a test CA the proxy was told to trust (--upstream-ca). Each test checks
what the client got, what nginx got, and the rows written.
"""
import json
import ssl
import subprocess
import time
import urllib.request

from conftest import run_cli, token, wait_for

from .conftest import (OPENSSL, conn_rows, https_get, openssl_x509, req_rows,
                       sha256_hex, tcurl, tls_over_tunnel)


def _subject(pem_path):
    return openssl_x509(open(pem_path, "rb").read(), "-subject").strip()


def test_curl_get_is_intercepted_and_recorded(tls_proxy, tls_nginx, certs):
    p = tls_proxy("--upstream-ca", certs.ca)
    t = token()
    port = tls_nginx.port
    r = tcurl(p, f"https://alpha.test:{port}/small?t={t}")
    assert (r.rc, r.code) == (0, 200), r.stderr
    assert r.body == tls_nginx.files["small"]

    # nginx got it over TLS, with the client's SNI passed on
    es = tls_nginx.wait_entries(t)
    assert len(es) == 1, es
    assert es[0]["scheme"] == "https"
    assert es[0]["sni"] == "alpha.test"
    assert es[0]["server_port"] == str(port)

    p.stop()
    rs = req_rows(p, "query LIKE ?", (f"%{t}%",))
    assert len(rs) == 1, rs
    rq = rs[0]
    assert (rq["scheme"], rq["method"], rq["host"], rq["port"], rq["path"],
            rq["status"]) == ("https", "GET", "alpha.test", port, "/small",
                              200)
    assert rq["resp_body_size"] == 100
    assert rq["resp_body_sha"] == sha256_hex(tls_nginx.files["small"])

    c = conn_rows(p, "id = ?", (rq["conn_id"],))[0]
    assert c["decision"] == "intercept"
    assert c["decision_reason"]
    assert c["protocol"] == "tls"
    assert c["sni"] == "alpha.test"
    assert (c["target_host"], c["target_port"]) == ("alpha.test", port)
    assert c["tls_client"].startswith("TLSv1."), c["tls_client"]
    assert "/" in c["tls_client"]
    assert c["tls_server"].startswith("TLSv1."), c["tls_server"]
    assert "http/1.1" in (c["alpn"] or "")
    assert c["upstream_cert_sha256"].lower().replace(":", "") == \
        sha256_hex(certs.der(certs.good[0]))
    assert "CN=alpha.test" in c["upstream_cert_subject"]
    assert "Test Origin CA" in c["upstream_cert_issuer"]
    assert c["verify_error"] in (None, "")

    # the tunnel itself: one CONNECT row on the same connection
    cr = req_rows(p, "conn_id = ? AND method = 'CONNECT'", (c["id"],))
    assert len(cr) == 1, cr
    assert (cr[0]["scheme"], cr[0]["status"], cr[0]["host"],
            cr[0]["port"]) == ("connect", 200, "alpha.test", port)


def test_forged_certificate_seen_by_python_ssl(tls_proxy, tls_nginx, certs):
    """The client sees a certificate issued by the proxy's CA, with the
    origin's names, and in ALPN the protocol it offered that the origin
    chose."""
    p = tls_proxy("--upstream-ca", certs.ca)
    port = tls_nginx.port
    t = token()
    s = tls_over_tunnel(p, "alpha.test", port, cafile=p.ca_pem,
                        alpn=["http/1.1"])
    try:
        cert = s.getpeercert()
        der = s.getpeercert(binary_form=True)
        assert s.selected_alpn_protocol() == "http/1.1"
        status, body = https_get(s, "alpha.test", f"/small?t={t}")
    finally:
        s.close()
    assert status == 200
    assert body == tls_nginx.files["small"]

    issuer = dict(x[0] for x in cert["issuer"])
    ca_subj = _subject(p.ca_pem)
    assert issuer["commonName"] in ca_subj, (issuer, ca_subj)
    subject = dict(x[0] for x in cert["subject"])
    assert subject["commonName"] == "alpha.test"
    sans = set(cert["subjectAltName"])
    assert ("DNS", "alpha.test") in sans
    # copied from the origin's certificate
    assert ("DNS", "beta.test") in sans, sans
    assert ("IP Address", "127.0.0.1") in sans, sans
    assert sha256_hex(der) != sha256_hex(certs.der(certs.good[0]))

    p.stop()
    c = conn_rows(p, "sni = 'alpha.test'")
    assert len(c) == 1 and c[0]["decision"] == "intercept"
    assert (c[0]["alpn"], c[0]["alpn_client"], c[0]["alpn_server"]) == \
        ("http/1.1", "http/1.1", "http/1.1"), c[0]


def test_openssl_s_client_verifies_forged_chain(tls_proxy, tls_nginx, certs):
    p = tls_proxy("--upstream-ca", certs.ca)
    cp = subprocess.run(
        [OPENSSL, "s_client", "-proxy", f"127.0.0.1:{p.port}",
         "-connect", f"alpha.test:{tls_nginx.port}",
         "-servername", "alpha.test", "-verify_hostname", "alpha.test",
         "-CAfile", str(p.ca_pem)],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    out = cp.stdout.decode(errors="replace")
    assert "Verify return code: 0 (ok)" in out, out + cp.stderr.decode()
    ca_cn = _subject(p.ca_pem).split("CN=")[1].split(",")[0]
    issuer_lines = [ln for ln in out.splitlines() if "i:" in ln]
    assert any(ca_cn in ln for ln in issuer_lines), out


def test_keep_alive_two_requests_one_tunnel(tls_proxy, tls_nginx, certs):
    p = tls_proxy("--upstream-ca", certs.ca)
    t = token()
    base = f"https://alpha.test:{tls_nginx.port}"
    r = tcurl(p, [f"{base}/small?t={t}", f"{base}/second?t={t}"])
    assert r.rc == 0, r.stderr
    assert r.codes == [200, 200]
    assert r.connects == 1
    assert r.body == tls_nginx.files["second"]
    p.stop()
    rs = req_rows(p, "query LIKE ?", (f"%{t}%",))
    assert [(x["scheme"], x["path"], x["status"]) for x in rs] == \
        [("https", "/small", 200), ("https", "/second", 200)]
    assert rs[0]["conn_id"] == rs[1]["conn_id"]
    cid = rs[0]["conn_id"]
    assert len(req_rows(p, "conn_id = ? AND method = 'CONNECT'",
                        (cid,))) == 1
    assert len(req_rows(p, "conn_id = ?", (cid,))) == 3
    assert len(conn_rows(p)) == 1


def test_idle_tunnel_releases_buffers_then_serves_again(tls_proxy, tls_nginx,
                                                       certs):
    """Quiet between requests, a tunnel gives back its read buffers (and
    its TLS filter reads a byte at a time until the next request): the
    next requests on it, a large answer and a pipelined pair, arrive
    whole."""
    p = tls_proxy("--upstream-ca", certs.ca, "-v")
    s = tls_over_tunnel(p, "alpha.test", tls_nginx.port, cafile=p.ca_pem)
    try:
        assert https_get(s, "alpha.test", "/small") == \
            (200, tls_nginx.files["small"])
        assert wait_for(lambda: "idle: releasing read buffers" in
                        p.stderr(), 5.0), p.stderr()[-2000:]
        assert https_get(s, "alpha.test", "/img.jpg") == \
            (200, tls_nginx.files["img.jpg"])
        time.sleep(0.4)
        # two requests in one write, after another quiet spell
        s.sendall(b"GET /second HTTP/1.1\r\nHost: alpha.test\r\n\r\n"
                  b"GET /small HTTP/1.1\r\nHost: alpha.test\r\n\r\n")
        want = [tls_nginx.files["second"], tls_nginx.files["small"]]
        buf = b""
        for _ in range(1000):
            if all(w in buf for w in want) and buf.count(b"200 OK") == 2:
                break
            d = s.recv(65536)
            if not d:
                break
            buf += d
        assert buf.count(b"HTTP/1.1 200 OK") == 2, buf[:400]
        assert buf.index(want[0]) < buf.rindex(want[1])
    finally:
        s.close()
    p.stop()
    assert p.stderr().count("idle: releasing read buffers") >= 2
    rs = req_rows(p, "scheme = 'https'")
    assert [(x["path"], x["status"]) for x in rs] == [
        ("/small", 200), ("/img.jpg", 200), ("/second", 200),
        ("/small", 200)]


def test_sessions_resumed_on_both_legs(tls_proxy, tls_nginx, certs):
    """Later tunnels to the same origin resume the origin's session (the
    newest kept per origin), and a client that kept its ticket resumes
    with the proxy."""
    p = tls_proxy("--upstream-ca", certs.ca)
    t = token()
    url = f"https://alpha.test:{tls_nginx.port}/small?t={t}"
    for _ in range(3):
        r = tcurl(p, url)
        assert (r.rc, r.code) == (0, 200), r.stderr
        assert r.body == tls_nginx.files["small"]
    es = tls_nginx.wait_entries(t, 3)
    # each tunnel has its own origin connection (end to end); every one
    # after the first resumes
    fresh = [e["reused"] for e in es if e["connection_requests"] == "1"]
    assert len(fresh) == 3, es
    assert fresh[0] == "." and fresh[1:] and set(fresh[1:]) == {"r"}, es

    # the client leg: s_client keeps its session and offers it again
    sess = p.dir / "client.sess"
    for i in range(2):
        cp = subprocess.run(
            [OPENSSL, "s_client", "-proxy", f"127.0.0.1:{p.port}",
             "-connect", f"alpha.test:{tls_nginx.port}", "-servername",
             "alpha.test", "-CAfile", str(p.ca_pem), "-ign_eof",
             "-sess_out" if i == 0 else "-sess_in", str(sess)],
            input=b"GET /small HTTP/1.1\r\nHost: alpha.test\r\n"
                  b"Connection: close\r\n\r\n",
            capture_output=True, timeout=20)
        assert cp.returncode == 0, cp.stderr[-2000:]
        assert tls_nginx.files["small"] in cp.stdout
    assert b"Reused, TLSv1.3" in cp.stdout, cp.stdout[-3000:]

    p.stop()
    cs = conn_rows(p, "decision = 'intercept'")
    assert len(cs) == 5
    assert "resumed" not in cs[0]["tls_server"]
    assert any("resumed" in c["tls_server"] for c in cs[1:]), \
        [c["tls_server"] for c in cs]
    assert "resumed" not in cs[3]["tls_client"]
    assert "resumed" in cs[4]["tls_client"]


def test_post_body_intact_through_tls(tls_proxy, tls_nginx, certs):
    p = tls_proxy("--upstream-ca", certs.ca)
    t = token()
    data = (b"abcdefghijklmnopqrstuvwxyz0123456789" * 1000)[:30011]
    f = p.dir / "post.bin"
    f.write_bytes(data)
    r = tcurl(p, f"https://alpha.test:{tls_nginx.port}/upload?t={t}",
              "--data-binary", f"@{f}", "-H",
              "Content-Type: application/octet-stream")
    assert (r.rc, r.code) == (0, 200), r.stderr
    assert r.body == b"ok\n"
    es = tls_nginx.wait_entries(t)
    assert len(es) == 1
    assert es[0]["method"] == "POST"
    assert es[0]["content_length"] == str(len(data))
    assert es[0]["body"] == data.decode()
    p.stop()
    rs = req_rows(p, "query LIKE ?", (f"%{t}%",))
    assert len(rs) == 1
    assert (rs[0]["scheme"], rs[0]["method"], rs[0]["status"]) == \
        ("https", "POST", 200)
    assert rs[0]["req_body_size"] == len(data)
    assert rs[0]["req_body_sha"] == sha256_hex(data)


def test_large_image_byte_identical_and_extractable(tls_proxy, tls_nginx,
                                                    certs):
    p = tls_proxy("--upstream-ca", certs.ca,
                  conf_extra={"body-capture-limit": "4M"})
    t = token()
    img = tls_nginx.files["img.jpg"]
    assert len(img) > 1 << 20
    r = tcurl(p, f"https://alpha.test:{tls_nginx.port}/img.jpg?t={t}")
    assert (r.rc, r.code) == (0, 200), r.stderr
    assert len(r.body) == len(img)
    assert r.body == img
    p.stop()
    rs = req_rows(p, "query LIKE ?", (f"%{t}%",))
    assert len(rs) == 1
    rq = rs[0]
    assert rq["scheme"] == "https"
    assert rq["content_type"] == "image/jpeg"
    assert rq["resp_body_size"] == len(img)
    assert rq["resp_body_truncated"] == 0
    assert rq["resp_body_sha"] == sha256_hex(img)
    out = p.dir / "img.out"
    cp = run_cli("show", rq["id"], "--body-out", out, "--db", p.db)
    assert cp.returncode == 0, cp.stderr
    assert out.read_bytes() == img


def test_python_urllib_through_proxy(tls_proxy, tls_nginx, certs):
    p = tls_proxy("--upstream-ca", certs.ca)
    t = token()
    ctx = ssl.create_default_context(cafile=str(p.ca_pem))
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"https": p.url}),
        urllib.request.HTTPSHandler(context=ctx))
    url = f"https://alpha.test:{tls_nginx.port}/second?t={t}"
    with opener.open(url, timeout=20) as resp:
        assert resp.status == 200
        body = resp.read()
    assert body == tls_nginx.files["second"]
    assert len(tls_nginx.wait_entries(t)) == 1
    p.stop()
    rs = req_rows(p, "query LIKE ?", (f"%{t}%",))
    assert len(rs) == 1
    assert (rs[0]["scheme"], rs[0]["host"], rs[0]["status"]) == \
        ("https", "alpha.test", 200)


def test_domains_json_counts_intercepted(tls_proxy, tls_nginx, certs):
    p = tls_proxy("--upstream-ca", certs.ca)
    r = tcurl(p, f"https://alpha.test:{tls_nginx.port}/small")
    assert r.code == 200, r.stderr
    p.stop()
    cp = run_cli("domains", "--json", "--db", p.db)
    assert cp.returncode == 0, cp.stderr
    doms = {d.get("name", d.get("domain")): d for d in json.loads(cp.stdout)}
    a = doms["alpha.test"]
    assert a["intercepted"] >= 1, a
    assert a["passed_through"] == 0, a
    assert not a["pinned"], a
    protos = a["protocols"]
    if isinstance(protos, str):
        protos = protos.split(",")
    assert "tls" in protos, a


def test_sequential_tunnels_to_same_origin(tls_proxy, tls_nginx, certs):
    """Each new tunnel to an origin gets a working upstream, also when an
    earlier tunnel's origin connection went back to the pool (one worker,
    so every tunnel shares the pool)."""
    p = tls_proxy("--upstream-ca", certs.ca, "--workers", "1")
    t = token()
    got = []
    for i in range(3):
        t0 = time.monotonic()
        r = tcurl(p, f"https://alpha.test:{tls_nginx.port}/small?t={t}-{i}")
        got.append((r.rc, r.code, r.body == tls_nginx.files["small"],
                    time.monotonic() - t0 < 3.0))
    assert got == [(0, 200, True, True)] * 3, (got, p.stderr()[-2000:])
    assert len(tls_nginx.wait_entries(t, n=3)) == 3
    p.stop()
    rs = req_rows(p, "query LIKE ? AND scheme = 'https'", (f"%{t}%",))
    assert [x["status"] for x in rs] == [200] * 3, rs
    assert all(not x["error"] for x in rs), rs


def test_har_ssl_timing_from_the_origin_leg(tls_proxy, tls_nginx, certs,
                                            tmp_path):
    """The first exchange of an intercepted tunnel opened the origin's TLS
    leg: HAR's ssl is that handshake, and (HAR 1.2) within connect; a
    plain-HTTP exchange has no ssl (-1)."""
    p = tls_proxy("--upstream-ca", certs.ca)
    t = token()
    r = tcurl(p, f"https://alpha.test:{tls_nginx.port}/small?t={t}")
    assert r.code == 200, r.stderr
    p.stop()
    rq = req_rows(p, "query LIKE ?", (f"%{t}%",))[0]
    assert rq["tls_us"] is not None and rq["tls_us"] > 0, rq
    assert rq["tls_us"] <= rq["connect_us"], rq
    har = tmp_path / "t.har"
    cp = run_cli("export", "har", har, rq["id"], "--db", p.db)
    assert cp.returncode == 0, cp.stderr
    tm = json.loads(har.read_text())["log"]["entries"][0]["timings"]
    assert 0 < tm["ssl"] <= tm["connect"], tm
    cp = run_cli("show", rq["id"], "--db", p.db)
    assert ", tls " in cp.stdout, cp.stdout
