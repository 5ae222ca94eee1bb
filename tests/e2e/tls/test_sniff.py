"""
What follows a CONNECT when it is not TLS: plain HTTP is parsed and
recorded (scheme http); anything else, or nothing at all within the sniff
timeout (a server-speaks-first protocol), is relayed untouched and
labelled.
"""
from conftest import token

from .conftest import conn_rows, req_rows, tcurl, tunnel


def test_plain_http_inside_connect(tls_proxy, tls_nginx):
    p = tls_proxy()
    t = token()
    port = tls_nginx.plain_port
    r = tcurl(p, f"http://alpha.test:{port}/small?t={t}", "--proxytunnel",
              cacert=None)
    assert (r.rc, r.code) == (0, 200), r.stderr
    assert r.body == tls_nginx.files["small"]
    es = tls_nginx.wait_entries(t)
    assert len(es) == 1 and es[0]["scheme"] == "http"
    p.stop()
    rs = req_rows(p, "query LIKE ?", (f"%{t}%",))
    assert len(rs) == 1, rs
    assert (rs[0]["scheme"], rs[0]["host"], rs[0]["port"], rs[0]["path"],
            rs[0]["status"]) == ("http", "alpha.test", port, "/small", 200)
    c = conn_rows(p, "id = ?", (rs[0]["conn_id"],))[0]
    assert c["protocol"] == "http", c
    assert c["decision"] != "passthrough", c
    assert len(req_rows(p, "conn_id = ? AND method = 'CONNECT'",
                        (c["id"],))) == 1


def _read_line(rc):
    return rc.read_until(b"\r\n")


def test_server_speaks_first_is_relayed(tls_proxy, banner_server):
    p = tls_proxy()
    rc = tunnel(p, "alpha.test", banner_server.port)
    try:
        # the client says nothing: after the sniff timeout the proxy
        # connects and the banner arrives
        assert _read_line(rc) == banner_server.BANNER
        rc.send(b"EHLO client.test\r\n")
        assert _read_line(rc) == b"250 got EHLO client.test\r\n"
    finally:
        rc.close()
    p.stop()
    cs = conn_rows(p, "target_port = ?", (banner_server.port,))
    assert len(cs) == 1, cs
    c = cs[0]
    assert c["protocol"] == "other", c
    assert c["decision"] == "passthrough", c
    assert c["decision_reason"], c
    assert c["bytes_from_server"] == len(banner_server.BANNER) + \
        len(b"250 got EHLO client.test\r\n"), c
    assert c["bytes_to_server"] == len(b"EHLO client.test\r\n"), c
    # nothing parsed as HTTP inside
    assert [r["method"] for r in req_rows(p, "conn_id = ?", (c["id"],))] \
        == ["CONNECT"]


def test_ssh_first_bytes_relayed_and_labelled(tls_proxy, banner_server):
    p = tls_proxy()
    rc = tunnel(p, "alpha.test", banner_server.port)
    try:
        rc.send(b"SSH-2.0-peephole_test\r\n")
        assert _read_line(rc) == banner_server.BANNER
        assert _read_line(rc) == b"250 got SSH-2.0-peephole_test\r\n"
    finally:
        rc.close()
    p.stop()
    cs = conn_rows(p, "target_port = ?", (banner_server.port,))
    assert len(cs) == 1
    assert (cs[0]["protocol"], cs[0]["decision"]) == ("ssh", "passthrough")


def test_random_bytes_relayed_as_other(tls_proxy, banner_server):
    p = tls_proxy()
    rc = tunnel(p, "alpha.test", banner_server.port)
    junk = bytes([0x00, 0x9f, 0xfe, 0x13, 0x37, 0x80]) + b"\r\n"
    try:
        rc.send(junk)
        assert _read_line(rc) == banner_server.BANNER
        assert _read_line(rc) == b"250 got " + junk
    finally:
        rc.close()
    p.stop()
    cs = conn_rows(p, "target_port = ?", (banner_server.port,))
    assert len(cs) == 1
    assert (cs[0]["protocol"], cs[0]["decision"]) == ("other", "passthrough")


def test_late_client_hello_is_still_intercepted(tls_proxy, tls_nginx, certs):
    """A client that is slow to start TLS after CONNECT (a loaded machine)
    must not be waved through: past sniff-timeout the origin is connected,
    but the first side to speak decides, and a ClientHello is intercepted."""
    import ssl
    import time

    from .conftest import https_get, tunnel

    p = tls_proxy("--upstream-ca", certs.ca)
    rc = tunnel(p, "alpha.test", tls_nginx.port)
    time.sleep(0.8)  # well past the 300 ms sniff-timeout
    ctx = ssl.create_default_context(cafile=str(p.ca_pem))
    s = ctx.wrap_socket(rc.sock, server_hostname="alpha.test")
    try:
        issuer = dict(x[0] for x in s.getpeercert()["issuer"])
        assert "peephole" in issuer.get("commonName", ""), issuer
        status, body = https_get(s, "alpha.test", "/small")
        assert (status, body) == (200, tls_nginx.files["small"])
    finally:
        s.close()
    rows = p.wait_rows("SELECT * FROM connections WHERE decision IS NOT NULL")
    assert rows and rows[0]["decision"] == "intercept", rows
    assert rows[0]["protocol"] == "tls"
