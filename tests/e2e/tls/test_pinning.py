"""
Pinning: a client that aborts the handshake against the forged certificate
(curl without the proxy's CA sends alert unknown_ca) gets its host:port
learned; later tunnels to it are relayed untouched, so the client sees the
origin's own certificate, until pinning-retry (60s by default) has passed
(test_pinning_retry.py covers the back-off). The list lives in the db, is
loaded at start, and `peephole passthrough clear` empties it, in a running
proxy too.
"""
import json
import time

from conftest import run_cli, token

from .conftest import conn_rows, learned_rows, req_rows, tcurl


def _pl_list(p):
    cp = run_cli("passthrough", "list", "--json", "--db", p.db)
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)


def _learn(p, port):
    """curl without the proxy's CA: refused (60), and alpha.test:port is
    learned."""
    r = tcurl(p, f"https://alpha.test:{port}/small", cacert=None)
    assert r.rc == 60, (r.rc, r.stderr)
    rows = p.wait_rows("SELECT * FROM learned_passthrough WHERE host = ? "
                       "AND port = ?", ("alpha.test", port))
    assert len(rows) == 1, learned_rows(p)
    return rows[0]


def _last_conn(p, port, n):
    """The last of the connection rows to port, once there are n."""
    cs = p.wait_rows("SELECT * FROM connections WHERE target_port = ? "
                     "ORDER BY id", (port,), n=n)
    assert len(cs) == n, cs
    return cs[-1]


def _origin_trusting_curl(p, port, t):
    """Trusting only the ORIGIN's CA works only through a passthrough."""
    return tcurl(p, f"https://alpha.test:{port}/small?t={t}",
                 cacert=p.origin_ca)


def test_rejected_cert_is_learned_then_passed_through(tls_proxy, tls_nginx,
                                                      certs):
    p = tls_proxy("--upstream-ca", certs.ca)
    p.origin_ca = certs.ca
    port = tls_nginx.port
    row = _learn(p, port)
    assert row["reason"]
    lst = _pl_list(p)
    assert [(e["host"], e["port"]) for e in lst] == [("alpha.test", port)]

    # the refused attempt: intercepted, and nothing reached nginx
    c1 = _last_conn(p, port, 1)
    assert c1["decision"] == "intercept"
    assert not req_rows(p, "conn_id = ? AND scheme = 'https'", (c1["id"],))

    t = token()
    r = _origin_trusting_curl(p, port, t)
    assert (r.rc, r.code) == (0, 200), r.stderr
    assert r.body == tls_nginx.files["small"]
    assert len(tls_nginx.wait_entries(t)) == 1
    # and the proxy's CA no longer works: the origin's cert is shown
    r2 = tcurl(p, f"https://alpha.test:{port}/small")
    assert r2.rc == 60, (r2.rc, r2.stderr)

    p.stop()
    cs = conn_rows(p, "target_port = ?", (port,))
    assert len(cs) == 3, cs
    for c in cs[1:]:
        assert c["decision"] == "passthrough", c
        assert c["decision_reason"] == "pinned (learned)", c
        assert c["sni"] == "alpha.test"
        assert c["protocol"] == "tls"
        assert c["bytes_from_server"] > 0
    # nothing decrypted: no https rows, only the tunnels' CONNECT rows
    assert req_rows(p, "query LIKE ?", (f"%{t}%",)) == []
    assert len(req_rows(p, "conn_id = ? AND method = 'CONNECT'",
                        (cs[1]["id"],))) == 1

    cp = run_cli("domains", "--json", "--db", p.db)
    assert cp.returncode == 0, cp.stderr
    doms = {d.get("name", d.get("domain")): d for d in json.loads(cp.stdout)}
    a = doms["alpha.test"]
    assert a["pinned"], a
    assert a["passed_through"] == 2, a
    assert a["intercepted"] == 1, a


def test_no_auto_passthrough_keeps_intercepting(tls_proxy, tls_nginx, certs):
    p = tls_proxy("--upstream-ca", certs.ca, "--no-auto-passthrough")
    p.origin_ca = certs.ca
    port = tls_nginx.port
    r = tcurl(p, f"https://alpha.test:{port}/small", cacert=None)
    assert r.rc == 60, (r.rc, r.stderr)
    # still the forged certificate: the origin's CA does not verify it...
    t = token()
    r = _origin_trusting_curl(p, port, t)
    assert r.rc == 60, (r.rc, r.stderr)
    # ...the proxy's does
    r = tcurl(p, f"https://alpha.test:{port}/small?t={t}")
    assert (r.rc, r.code) == (0, 200), r.stderr
    p.stop()
    cs = conn_rows(p, "target_port = ?", (port,))
    assert len(cs) == 3
    assert [c["decision"] for c in cs] == ["intercept"] * 3, cs
    assert len(req_rows(p, "query LIKE ? AND scheme = 'https'",
                        (f"%{t}%",))) == 1


def test_learned_list_survives_restart_and_clear(tls_proxy, tls_nginx,
                                                 certs):
    p = tls_proxy("--upstream-ca", certs.ca)
    p.origin_ca = certs.ca
    port = tls_nginx.port
    _learn(p, port)

    # loaded from the db at start
    p.restart()
    r = _origin_trusting_curl(p, port, token())
    assert (r.rc, r.code) == (0, 200), r.stderr
    c = _last_conn(p, port, 2)
    assert (c["decision"], c["decision_reason"]) == \
        ("passthrough", "pinned (learned)"), c

    # clear: the db list empties, and the running proxy reloads it (its
    # writer looks at the file every 250 ms)
    cp = run_cli("passthrough", "clear", "alpha.test", "--db", p.db)
    assert cp.returncode == 0, cp.stderr
    assert _pl_list(p) == []
    assert learned_rows(p) == []
    time.sleep(1.0)
    t = token()
    r = tcurl(p, f"https://alpha.test:{port}/small?t={t}")
    assert (r.rc, r.code) == (0, 200), r.stderr
    assert r.body == tls_nginx.files["small"]
    p.stop()
    c = conn_rows(p, "target_port = ?", (port,))[-1]
    assert (c["decision"], c["sni"]) == ("intercept", "alpha.test"), c
    assert len(req_rows(p, "query LIKE ? AND scheme = 'https'",
                        (f"%{t}%",))) == 1


def test_clear_without_host_empties_everything(tls_proxy, tls_nginx, certs):
    p = tls_proxy("--upstream-ca", certs.ca)
    _learn(p, tls_nginx.port)
    p.stop()
    assert len(_pl_list(p)) == 1
    cp = run_cli("passthrough", "clear", "--db", p.db)
    assert cp.returncode == 0, cp.stderr
    assert _pl_list(p) == []
