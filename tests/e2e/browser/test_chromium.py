"""
Headless Chromium through the intercepting proxy: a page on alpha.test
whose image and script come from beta.test, all over HTTPS, with
peephole's CA trusted through an NSS database made with certutil. Then the
forged certificates themselves, fetched over raw CONNECT tunnels and
checked with Python's ssl against the CA.
"""
import json
import os
import ssl
import subprocess
import time
import pytest

from .conftest import (ORIGIN_NAMES, assert_alive, kill_group, open_tunnel,
                       stop_clean, wait_conns)

CHROMIUM = "/usr/bin/chromium"
CERTUTIL = "/usr/bin/certutil"
OPENSSL = "/usr/bin/openssl"
CHROMIUM_TIMEOUT = 30.0


def need(path, pkg):
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} missing: install Debian's {pkg} (make deps)",
                    pytrace=False)


def make_nssdb(home, ca_pem):
    """$HOME/.pki/nssdb trusting ca_pem for TLS servers (what Chromium on
    Linux reads)."""
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True)
    for argv in (["-N", "--empty-password"],
                 ["-A", "-t", "C,,", "-n", "peephole", "-i", str(ca_pem)],
                 ["-L", "-n", "peephole"]):
        cp = subprocess.run([CERTUTIL, "-d", f"sql:{db}"] + argv,
                            stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=30)
        assert cp.returncode == 0, f"certutil {argv}: {cp.stderr}"


def run_chromium(tmp, proxy_port, url):
    """chromium --dump-dom url through the proxy; (rc, dom, stderr). The
    run is bounded: the whole process group is killed by PID on timeout."""
    home = tmp / "chrome-home"
    env = {k: v for k, v in os.environ.items()
           if not k.lower().endswith("_proxy")}
    env["HOME"] = str(home)
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage",
            f"--user-data-dir={tmp / 'profile'}",
            f"--proxy-server=http://127.0.0.1:{proxy_port}",
            "--proxy-bypass-list=<-loopback>",
            "--dump-dom", url]
    out_path, err_path = tmp / "chromium.out", tmp / "chromium.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err, env=env, cwd=str(tmp),
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=CHROMIUM_TIMEOUT)
        except subprocess.TimeoutExpired:
            rc = "timeout"
        finally:
            # the browser's helpers (zygote, network service) share its
            # process group; take them down too
            kill_group(proc)
    return (rc, out_path.read_text(errors="replace"),
            err_path.read_text(errors="replace"))


def test_chromium_page_from_two_hosts(tls_proxy, tls_nginx, tmp_path):
    need(CHROMIUM, "chromium")
    need(CERTUTIL, "libnss3-tools")
    p = tls_proxy()
    make_nssdb(tmp_path / "chrome-home", p.ca_pem)
    port = tls_nginx.tls_port
    url = f"https://alpha.test:{port}/page.html"

    rc, dom, err = run_chromium(tmp_path, p.port, url)
    assert_alive(p)
    why = (f"chromium rc={rc}\nDOM:\n{dom[-2000:]}\nchromium stderr "
           f"tail:\n{err[-3000:]}\nproxy stderr tail:\n{p.stderr()[-2000:]}")
    assert rc == 0, why
    # the script from beta.test ran, the image from beta.test decoded
    assert tls_nginx.marker in dom, why
    assert "img-loaded-1" in dom, why

    # every resource was intercepted and recorded as https, status 200
    want = {("alpha.test", "/page.html"), ("beta.test", "/img.png"),
            ("beta.test", "/script.js")}
    db = p.dbh()
    rows = db.wait_requests(
        lambda r: r["scheme"] == "https" and r["port"] == port and
        (r["host"], r["path"]) in want, n=3, timeout=5)
    got = {(r["host"], r["path"]): r for r in rows}
    assert set(got) == want, [(r["scheme"], r["host"], r["port"],
                               r["path"], r["status"])
                              for r in db.requests()]
    for key, r in got.items():
        assert r["status"] == 200, (key, r)
        assert r["method"] == "GET", (key, r)
    assert got[("beta.test", "/img.png")]["resp_body_size"] == \
        len(tls_nginx.files["img.png"])
    assert got[("beta.test", "/script.js")]["resp_body_size"] == \
        len(tls_nginx.files["script.js"])

    # nginx saw each of them once per fetch, over HTTP/1.1 (the proxy
    # offered Chromium http/1.1 only)
    log = tls_nginx.root / "tls-access.log"
    entries = [json.loads(ln) for ln in log.read_text().splitlines()
               if ln.strip()]
    for host, path in want:
        assert any(e["uri"] == path and e["host"].startswith(host) and
                   e["status"] == "200" for e in entries), (host, path,
                                                            entries)

    # connection rows: SNI per host, intercepted; Chromium offered h2 and
    # http/1.1, and the client-side TLS is recorded
    conns = wait_conns(
        p, lambda c: c["target_port"] == port and c["sni"] in ORIGIN_NAMES,
        n=2, timeout=5)
    by_sni = {}
    for c in conns:
        by_sni.setdefault(c["sni"], []).append(c)
    assert set(by_sni) == set(ORIGIN_NAMES), conns
    for name, cs in by_sni.items():
        # the connections that carried the page's requests
        assert any(c["nrequests"] > 0 for c in cs), cs
        for c in cs:
            assert c["decision"] == "intercept", c
            assert c["target_host"] == name, c
            assert c["protocol"] == "tls", c
            alpn = (c["alpn"] or "").split(",")
            assert "http/1.1" in alpn and "h2" in alpn, c
            if c["nrequests"] == 0 and c["tls_client"] is None:
                # a connection Chromium opened ahead and dropped before
                # our handshake with it finished (it races them; a slow
                # build, ASan, widens the window). Dropping one is not
                # refusing our certificate: nothing may be learned.
                assert c["close_reason"] in ("client-eof",
                                             "client-tls-failed"), c
                continue
            assert (c["tls_client"] or "").startswith("TLSv1."), c
            assert (c["tls_server"] or "").startswith("TLSv1."), c
    # every request row of this page sits on a connection of its host
    ids = {c["id"]: c["sni"] for c in conns}
    for (host, _), r in got.items():
        assert ids.get(r["conn_id"]) == host, (r, ids)

    stop_clean(p)


def fetch_forged(p, name, port, cafile):
    """CONNECT name:port, TLS with verification against cafile and
    server_hostname=name; (peer cert dict, DER, response head)."""
    rc = open_tunnel(p, name, port)
    try:
        ctx = ssl.create_default_context(cafile=str(cafile))
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        with ctx.wrap_socket(rc.sock, server_hostname=name) as s:
            assert s.selected_alpn_protocol() == "http/1.1"
            cert = s.getpeercert()
            der = s.getpeercert(binary_form=True)
            s.sendall(f"GET /small HTTP/1.1\r\nHost: {name}:{port}\r\n"
                      "Connection: close\r\n\r\n".encode())
            data = b""
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                d = s.recv(65536)
                if not d:
                    break
                data += d
            return cert, der, data
    finally:
        rc.close()


def openssl_verify(cert_pem, cafile, name):
    """`openssl verify` of cert_pem against cafile alone, for name."""
    return subprocess.run(
        [OPENSSL, "verify", "-CAfile", str(cafile), "-purpose", "sslserver",
         "-verify_hostname", name, str(cert_pem)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)


def test_forged_certs_verify_against_ca(tls_proxy, tls_nginx, origin_pki,
                                        tmp_path):
    p = tls_proxy()
    port = tls_nginx.tls_port
    for name in ORIGIN_NAMES:
        # Python's ssl verifies against peephole's CA only (cafile) and
        # checks the name (server_hostname); it raises if either fails
        cert, der, data = fetch_forged(p, name, port, p.ca_pem)
        sans = {v for k, v in cert.get("subjectAltName", ()) if k == "DNS"}
        # copied from the origin's certificate
        assert sans == set(ORIGIN_NAMES), cert
        assert name in sans
        assert dict(x[0] for x in cert["subject"]).get("commonName") == \
            "alpha.test", cert
        assert data.startswith(b"HTTP/1.1 200"), data[:200]
        assert data.endswith(tls_nginx.files["small"]), data[-200:]
        assert_alive(p)

        # the same, by openssl; and it is a forgery: the origin CA does not
        # vouch for it
        pem = tmp_path / f"forged-{name}.pem"
        pem.write_text(ssl.DER_cert_to_PEM_cert(der))
        cp = openssl_verify(pem, p.ca_pem, name)
        assert cp.returncode == 0, cp.stdout + cp.stderr
        cp = openssl_verify(pem, origin_pki.ca, name)
        assert cp.returncode != 0, cp.stdout + cp.stderr

    rows = wait_conns(p, lambda c: c["target_port"] == port and
                      c["sni"] in ORIGIN_NAMES and c["t_close_us"], n=2)
    assert sorted(c["sni"] for c in rows) == sorted(ORIGIN_NAMES), rows
    assert all(c["decision"] == "intercept" for c in rows), rows
    stop_clean(p)
