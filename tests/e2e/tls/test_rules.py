"""
Host rules (--intercept / --passthrough / --block; first match wins) and
the h2-only rule. A passed-through tunnel shows the client the origin's own
certificate: trusting only the origin's CA works, trusting only the proxy's
CA fails.
"""
import ssl

import pytest

from conftest import token

from .conftest import (conn_rows, req_rows, sha256_hex, tcurl,
                       tls_over_tunnel, tunnel)


def _decision(p, port):
    cs = conn_rows(p, "target_port = ?", (port,))
    return [(c["decision"], c["decision_reason"]) for c in cs]


def test_passthrough_rule_shows_origin_certificate(tls_proxy, tls_nginx,
                                                   certs):
    p = tls_proxy("--passthrough", "alpha.test")
    port = tls_nginx.port
    t = token()
    r = tcurl(p, f"https://alpha.test:{port}/small?t={t}", cacert=certs.ca)
    assert (r.rc, r.code) == (0, 200), r.stderr
    assert r.body == tls_nginx.files["small"]
    assert len(tls_nginx.wait_entries(t)) == 1
    r = tcurl(p, f"https://alpha.test:{port}/small")  # the proxy's CA
    assert r.rc == 60, (r.rc, r.stderr)
    p.stop()
    cs = conn_rows(p, "target_port = ?", (port,))
    assert len(cs) == 2
    for c in cs:
        assert c["decision"] == "passthrough", c
        assert c["decision_reason"], c
        assert "pinned" not in c["decision_reason"]
        assert c["sni"] == "alpha.test"
        assert c["protocol"] == "tls"
        assert c["bytes_from_server"] > 0 and c["bytes_to_server"] > 0
    # nothing decrypted
    assert req_rows(p, "scheme = 'https'") == []
    assert len(req_rows(p, "method = 'CONNECT'")) == 2
    assert p.rows("SELECT * FROM learned_passthrough") == []


def test_block_rule_on_connect_host(tls_proxy, tls_nginx):
    p = tls_proxy("--block", "alpha.test")
    port = tls_nginx.port
    t = token()
    r = tcurl(p, f"https://alpha.test:{port}/small?t={t}")
    assert r.rc != 0
    assert "403" in r.stderr, r.stderr
    assert tls_nginx.wait_entries(t, timeout=0.3) == []
    p.stop()
    cs = conn_rows(p, "target_port = ?", (port,))
    assert len(cs) == 1 and cs[0]["decision"] == "block", cs
    rs = req_rows(p, "method = 'CONNECT'")
    assert len(rs) == 1 and rs[0]["status"] == 403, rs


def test_block_rule_on_sni(tls_proxy, tls_nginx, certs):
    """CONNECT names an allowed host, the ClientHello a blocked one: the
    connection is closed after the ClientHello."""
    p = tls_proxy("--block", "beta.test", "--upstream-ca", certs.ca)
    port = tls_nginx.port
    rc = tunnel(p, "alpha.test", port)
    ctx = ssl.create_default_context(cafile=str(p.ca_pem))
    with pytest.raises((ssl.SSLError, OSError)):
        s = ctx.wrap_socket(rc.sock, server_hostname="beta.test")
        s.close()
    rc.close()
    p.stop()
    cs = conn_rows(p, "target_port = ?", (port,))
    assert len(cs) == 1
    assert (cs[0]["decision"], cs[0]["sni"]) == ("block", "beta.test"), cs
    assert not cs[0]["bytes_to_server"], cs


def test_pattern_with_port_and_first_match_wins(tls_proxy, tls_nginx,
                                                certs):
    good, wrong = tls_nginx.ports["good"], tls_nginx.ports["wrong"]
    p = tls_proxy("--upstream-ca", certs.ca,
                  "--intercept", "beta.test",
                  "--passthrough", f"*.test:{good}")
    # *.test:GOOD matches alpha.test:GOOD -> passthrough
    r = tcurl(p, f"https://alpha.test:{good}/small", cacert=certs.ca)
    assert (r.rc, r.code) == (0, 200), r.stderr
    # beta.test:GOOD: the earlier --intercept wins -> forged cert
    t = token()
    r = tcurl(p, f"https://beta.test:{good}/small?t={t}")
    assert (r.rc, r.code) == (0, 200), r.stderr
    # alpha.test on another port: no rule -> intercepted (and the
    # wrong.test certificate there gives a 502)
    r = tcurl(p, f"https://alpha.test:{wrong}/small")
    assert (r.rc, r.code) == (0, 502), r.stderr
    p.stop()
    cs = conn_rows(p)
    assert [(c["target_host"], c["target_port"], c["decision"])
            for c in cs] == [("alpha.test", good, "passthrough"),
                             ("beta.test", good, "intercept"),
                             ("alpha.test", wrong, "intercept")], cs
    rs = req_rows(p, "query LIKE ?", (f"%{t}%",))
    assert len(rs) == 1 and rs[0]["scheme"] == "https"


def test_cidr_passthrough_rule(tls_proxy, tls_nginx, certs):
    p = tls_proxy("--passthrough", "127.0.0.0/8")
    port = tls_nginx.port
    r = tcurl(p, f"https://127.0.0.1:{port}/small", cacert=certs.ca)
    assert (r.rc, r.code) == (0, 200), r.stderr
    p.stop()
    cs = conn_rows(p, "target_port = ?", (port,))
    assert [c["decision"] for c in cs] == ["passthrough"], cs


def test_h2_only_client_intercepted(tls_proxy, tls_nginx, certs):
    """An h2-only client is intercepted (it used to be passed through):
    the origin is offered h2 and speaks it, so both legs are h2."""
    p = tls_proxy("--upstream-ca", certs.ca)
    port = tls_nginx.port
    s = tls_over_tunnel(p, "alpha.test", port, cafile=p.ca_pem, alpn=["h2"])
    try:
        assert s.selected_alpn_protocol() == "h2"
    finally:
        s.close()
    p.stop()
    cs = conn_rows(p, "target_port = ?", (port,))
    assert len(cs) == 1
    c = cs[0]
    assert (c["decision"], c["decision_reason"]) == ("intercept", "default")
    assert (c["alpn"], c["alpn_client"], c["alpn_server"]) == \
        ("h2", "h2", "h2"), c
    assert p.rows("SELECT * FROM learned_passthrough") == []


def test_client_without_h2_or_http11_passed_through(tls_proxy, tls_nginx,
                                                    certs):
    """A client offering only protocols peephole cannot speak is relayed
    untouched, and the row says why."""
    p = tls_proxy("--upstream-ca", certs.ca)
    port = tls_nginx.port
    try:
        s = tls_over_tunnel(p, "alpha.test", port, cafile=certs.ca,
                            alpn=["spdy/3.1"])
        der = s.getpeercert(binary_form=True)
        s.close()
        # the origin's own certificate: nothing was forged
        assert sha256_hex(der) == sha256_hex(certs.der(certs.good[0]))
    except ssl.SSLError:
        pass  # the origin may refuse a protocol it does not know
    p.stop()
    cs = conn_rows(p, "target_port = ?", (port,))
    assert len(cs) == 1
    assert (cs[0]["decision"], cs[0]["decision_reason"]) == \
        ("passthrough", "client offers neither h2 nor http/1.1"), cs[0]


def test_h2_and_http11_client_is_intercepted(tls_proxy, tls_nginx, certs):
    p = tls_proxy("--upstream-ca", certs.ca)
    s = tls_over_tunnel(p, "alpha.test", tls_nginx.port, cafile=p.ca_pem,
                        alpn=["h2", "http/1.1"])
    try:
        # what the origin chose (nginx speaks h2)
        assert s.selected_alpn_protocol() == "h2"
    finally:
        s.close()


def test_no_http2_keeps_both_legs_http11(tls_proxy, tls_nginx, certs):
    """--no-http2: a client offering h2 and http/1.1 gets http/1.1 (the
    origin is offered nothing else), and an h2-only client is relayed
    untouched, as before HTTP/2 was intercepted."""
    p = tls_proxy("--upstream-ca", certs.ca, "--no-http2")
    port = tls_nginx.port
    s = tls_over_tunnel(p, "alpha.test", port, cafile=p.ca_pem,
                        alpn=["h2", "http/1.1"])
    try:
        assert s.selected_alpn_protocol() == "http/1.1"
    finally:
        s.close()
    s = tls_over_tunnel(p, "alpha.test", port, cafile=certs.ca, alpn=["h2"])
    try:
        der = s.getpeercert(binary_form=True)
        assert s.selected_alpn_protocol() == "h2"  # the origin's own
    finally:
        s.close()
    assert sha256_hex(der) == sha256_hex(certs.der(certs.good[0]))
    p.stop()
    cs = conn_rows(p, "target_port = ?", (port,))
    assert len(cs) == 2, cs
    assert (cs[0]["decision"], cs[0]["alpn_client"], cs[0]["alpn_server"]) \
        == ("intercept", "http/1.1", "http/1.1"), cs[0]
    assert (cs[1]["decision"], cs[1]["decision_reason"]) == \
        ("passthrough", "client offers only h2 (http2 off)"), cs[1]
