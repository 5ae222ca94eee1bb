"""
Onboarding (the proxy's own page, the CA downloads, /proxy.pac, the magic
host peephole.local) and SSLKEYLOGFILE (both legs' secrets, NSS format).
"""
import os
import re
import stat

from .conftest import openssl_x509, pem_to_der, tcurl


def _direct(p, path):
    """GET http://127.0.0.1:PORT/path straight at the proxy."""
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{p.port}{path}",
                                timeout=10) as r:
        return r.status, dict(r.headers), r.read()


def test_onboarding_page_and_downloads(tls_proxy):
    p = tls_proxy()
    pem = p.ca_pem.read_bytes()

    status, hdrs, body = _direct(p, "/")
    assert status == 200
    assert hdrs["Content-Type"].startswith("text/html")
    for link in (b"/ca.pem", b"/ca.cer", b"/ca.p12", b"/proxy.pac"):
        assert link in body
    assert b"update-ca-certificates" in body  # the per-OS steps

    status, hdrs, body = _direct(p, "/ca.pem")
    assert (status, body) == (200, pem)
    assert "attachment" in hdrs.get("Content-Disposition", "")

    status, _, body = _direct(p, "/ca.cer")
    assert (status, body) == (200, pem_to_der(pem))

    status, hdrs, pac = _direct(p, "/proxy.pac")
    assert status == 200
    assert b"FindProxyForURL" in pac
    assert f"PROXY 127.0.0.1:{p.port}".encode() in pac

    import urllib.error
    try:
        _direct(p, "/nothing-here")
        raise AssertionError("expected 404")
    except urllib.error.HTTPError as e:
        assert e.code == 404


def test_peephole_local_through_the_proxy(tls_proxy):
    """A device set to use the proxy browses to http://peephole.local/."""
    p = tls_proxy()
    r = tcurl(p, "http://peephole.local/ca.pem", cacert=None)
    assert r.code == 200, r.stderr
    assert r.body == p.ca_pem.read_bytes()
    # the certificate it serves is the CA that forges
    assert "CA:TRUE" in openssl_x509(r.body, "-text")
    rows = p.wait_rows("SELECT * FROM requests WHERE host='peephole.local'")
    assert rows and rows[0]["status"] == 200


def test_sslkeylogfile_has_both_legs(tls_proxy, tls_nginx, certs, tmp_path):
    keylog = tmp_path / "keys.log"
    p = tls_proxy("--upstream-ca", certs.ca,
                  env_extra={"SSLKEYLOGFILE": str(keylog)})
    r = tcurl(p, f"https://alpha.test:{tls_nginx.port}/small")
    assert r.code == 200, r.stderr
    assert p.stop() == 0
    assert stat.S_IMODE(os.stat(keylog).st_mode) == 0o600
    lines = keylog.read_text().splitlines()
    # TLS 1.3 lines are LABEL CLIENT_RANDOM SECRET, one client random per
    # handshake: one for the client leg, one for the origin leg
    randoms = set()
    for ln in lines:
        m = re.fullmatch(r"([A-Z_0-9]+) ([0-9a-f]{64}) ([0-9a-f]+)", ln)
        assert m, ln
        randoms.add(m.group(2))
    assert len(randoms) == 2, lines
    assert any(ln.startswith("CLIENT_TRAFFIC_SECRET_0 ") for ln in lines)
