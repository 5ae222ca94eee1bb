"""
Origins that fail verification or cannot be reached: nothing is forwarded,
the client still gets a TLS session under a forged certificate, and every
request inside it is answered 502 with a body naming the reason; the
connection row carries verify_error. --insecure-upstream turns the check
off.
"""
import pytest

from conftest import free_port, token

from .conftest import conn_rows, req_rows, tcurl

CASES = [
    # (nginx port kind, trust the origin CA?, words the 502 names)
    ("good", False, "unknown issuer"),
    ("self", True, "self-signed"),
    ("wrong", True, "mismatch"),
    ("expired", True, "expired"),
]


@pytest.mark.parametrize("kind,trust,reason", CASES,
                         ids=[c[0] + "-" + c[2].split()[-1] for c in CASES])
def test_untrusted_origin_gets_nothing(tls_proxy, tls_nginx, certs, kind,
                                       trust, reason):
    p = tls_proxy(*(["--upstream-ca", certs.ca] if trust else []))
    port = tls_nginx.ports[kind]
    t = token()
    base = f"https://alpha.test:{port}"
    # two requests: each is answered 502 (the proxy may close the session
    # after a 502; curl then opens another tunnel)
    r = tcurl(p, [f"{base}/small?t={t}", f"{base}/second?t={t}"])
    assert r.rc == 0, r.stderr  # the forged session itself is fine
    assert r.codes == [502, 502], (r.codes, r.body)
    assert reason.encode() in r.body, r.body
    assert b"trusted" in r.body, r.body
    # nothing reached the origin
    assert tls_nginx.wait_entries(t, timeout=0.5) == []
    p.stop()
    cs = conn_rows(p, "target_port = ?", (port,))
    assert len(cs) == r.connects, cs
    for c in cs:
        assert reason in (c["verify_error"] or ""), c
        assert c["decision"] == "intercept"
        assert c["sni"] == "alpha.test"
        assert c["bytes_to_server"] == 0, c  # no request bytes forwarded
        # the origin's certificate is still described
        assert c["upstream_cert_sha256"], c
    rs = req_rows(p, "query LIKE ?", (f"%{t}%",))
    assert [(x["scheme"], x["status"]) for x in rs] == \
        [("https", 502), ("https", 502)], rs


@pytest.mark.parametrize("kind", ["good", "self"])
def test_insecure_upstream_forwards_anyway(tls_proxy, tls_nginx, certs,
                                           kind):
    p = tls_proxy("--insecure-upstream")
    t = token()
    port = tls_nginx.ports[kind]
    r = tcurl(p, f"https://alpha.test:{port}/small?t={t}")
    assert (r.rc, r.code) == (0, 200), (r.stderr, r.body)
    assert r.body == tls_nginx.files["small"]
    assert len(tls_nginx.wait_entries(t)) == 1
    p.stop()
    rs = req_rows(p, "query LIKE ?", (f"%{t}%",))
    assert len(rs) == 1 and rs[0]["status"] == 200
    c = conn_rows(p, "id = ?", (rs[0]["conn_id"],))[0]
    assert c["decision"] == "intercept"
    assert c["upstream_cert_sha256"]


def test_origin_refused_is_502_inside_tls(tls_proxy, certs):
    p = tls_proxy("--upstream-ca", certs.ca)
    port = free_port()  # nothing listens there
    t = token()
    r = tcurl(p, f"https://alpha.test:{port}/small?t={t}")
    assert r.rc == 0, r.stderr   # TLS under the forged certificate worked
    assert r.code == 502, (r.code, r.body)
    assert r.body, "the 502 names the reason"
    p.stop()
    cs = conn_rows(p, "target_port = ?", (port,))
    assert len(cs) == 1, cs
    assert cs[0]["verify_error"] or cs[0]["error"], cs[0]
    assert cs[0]["decision"] == "intercept"
    rs = req_rows(p, "query LIKE ?", (f"%{t}%",))
    assert len(rs) == 1 and rs[0]["status"] == 502 and \
        rs[0]["scheme"] == "https", rs
