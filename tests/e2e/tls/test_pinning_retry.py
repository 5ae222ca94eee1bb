"""
Pinning as a back-off that a new user cannot trip over: only a client that
refuses the forged certificate (curl without the proxy's CA: alert
unknown_ca) puts host:port on the learned list; it is passed through until
pinning-retry has passed, intercepted again after, and a client that
completes the handshake takes it off the list. TLS 1.0 clients, cipher
mismatches and s_client closing after a good handshake learn nothing.
`peephole passthrough retry` reaches a running proxy. `run` says which CA
it uses.
"""
import json
import re
import subprocess
import time

from conftest import run_cli, token, wait_for

from .conftest import OPENSSL, conn_rows, learned_rows, tcurl


def _reject(p, port):
    """curl without the proxy's CA refuses the forged certificate."""
    r = tcurl(p, f"https://alpha.test:{port}/small", cacert=None)
    assert r.rc == 60, (r.rc, r.stderr)


def _learned(p, port, rejections):
    rows = p.wait_rows("SELECT * FROM learned_passthrough WHERE host = ? "
                       "AND port = ? AND rejections = ?",
                       ("alpha.test", port, rejections))
    assert len(rows) == 1, learned_rows(p)
    return rows[0]


def _wait_unlearned(p):
    assert wait_for(lambda: learned_rows(p) == [], 5.0), learned_rows(p)


def _last_conn(p, port, n):
    cs = p.wait_rows("SELECT * FROM connections WHERE target_port = ? "
                     "ORDER BY id", (port,), n=n)
    assert len(cs) >= n, cs
    return cs[n - 1]


def _s_client(p, port, *args, host="alpha.test", timeout=20):
    return subprocess.run(
        [OPENSSL, "s_client", "-proxy", f"127.0.0.1:{p.port}",
         "-connect", f"{host}:{port}", "-servername", host]
        + list(args),
        stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)


def test_backoff_expires_doubles_and_success_forgets(tls_proxy, tls_nginx,
                                                     certs):
    p = tls_proxy("--upstream-ca", certs.ca, "--pinning-retry", "1s")
    port = tls_nginx.port
    _reject(p, port)
    row = _learned(p, port, 1)
    assert row["last_reason"] == \
        "client rejected the forged certificate: alert unknown_ca", row
    assert row["next_retry_us"] - row["last_seen"] == 1_000_000, row

    # within the back-off: passed through, the origin's own certificate
    r = tcurl(p, f"https://alpha.test:{port}/small", cacert=certs.ca)
    assert (r.rc, r.code) == (0, 200), r.stderr
    c = _last_conn(p, port, 2)
    assert (c["decision"], c["decision_reason"]) == \
        ("passthrough", "pinned (learned)"), c

    # after it: intercepted again; refused again, the wait doubles
    time.sleep(1.2)
    _reject(p, port)
    row = _learned(p, port, 2)
    assert row["next_retry_us"] - row["last_seen"] == 2_000_000, row
    assert row["count"] == 2
    c = _last_conn(p, port, 3)
    assert (c["decision"], c["close_reason"]) == \
        ("intercept", "client-rejected-cert"), c

    # after that: a client trusting the CA succeeds and the entry goes
    time.sleep(2.2)
    t = token()
    r = tcurl(p, f"https://alpha.test:{port}/small?t={t}")
    assert (r.rc, r.code) == (0, 200), r.stderr
    assert r.body == tls_nginx.files["small"]
    _wait_unlearned(p)
    c = _last_conn(p, port, 4)
    assert (c["decision"], c["decision_reason"]) == ("intercept", "default")

    # and a later refusal starts again at the first wait
    _reject(p, port)
    row = _learned(p, port, 1)
    assert row["next_retry_us"] - row["last_seen"] == 1_000_000, row


def test_passthrough_retry_reaches_running_proxy(tls_proxy, tls_nginx,
                                                 certs):
    p = tls_proxy("--upstream-ca", certs.ca)  # default pinning-retry 60s
    port = tls_nginx.port
    _reject(p, port)
    _learned(p, port, 1)
    cp = run_cli("passthrough", "list", "--json", "--db", p.db)
    assert cp.returncode == 0, cp.stderr
    [e] = json.loads(cp.stdout)
    assert e["passing_through"] and e["rejections"] == 1, e
    assert re.fullmatch(r"in (59|60)s", e["retry"]), e
    cp = run_cli("passthrough", "list", "--db", p.db)
    assert "unknown_ca" in cp.stdout and "in " in cp.stdout, cp.stdout

    # still backing off
    r = tcurl(p, f"https://alpha.test:{port}/small", cacert=certs.ca)
    assert (r.rc, r.code) == (0, 200), r.stderr

    cp = run_cli("passthrough", "retry", "alpha.test", "--db", p.db)
    assert cp.returncode == 0, cp.stderr
    assert "intercepted again" in cp.stdout, cp.stdout
    # the writer looks at the file every 250 ms
    time.sleep(1.0)
    t = token()
    r = tcurl(p, f"https://alpha.test:{port}/small?t={t}")
    assert (r.rc, r.code) == (0, 200), (r.stderr, p.stderr()[-2000:])
    _wait_unlearned(p)
    assert "reloaded from the database" in p.stderr()


def test_tls10_client_is_passed_through_not_learned(tls_proxy, tls_nginx,
                                                    certs):
    p = tls_proxy("--upstream-ca", certs.ca)
    port = tls_nginx.port
    _s_client(p, port, "-tls1", "-cipher", "DEFAULT@SECLEVEL=0")
    c = _last_conn(p, port, 1)
    assert (c["decision"], c["decision_reason"]) == \
        ("passthrough", "client-tls-unsupported"), c
    assert c["protocol"] == "tls"
    assert learned_rows(p) == []
    r = tcurl(p, f"https://alpha.test:{port}/small")
    assert (r.rc, r.code) == (0, 200), r.stderr
    c = _last_conn(p, port, 2)
    assert c["decision"] == "intercept", c
    assert learned_rows(p) == []


def test_cipher_mismatch_is_recorded_not_learned(tls_proxy, tls_nginx,
                                                 certs):
    p = tls_proxy("--upstream-ca", certs.ca)
    port = tls_nginx.port
    # TLS 1.2 with only a NULL cipher: nothing the forged side offers
    _s_client(p, port, "-tls1_2", "-cipher", "NULL-SHA256@SECLEVEL=0")
    c = _last_conn(p, port, 1)
    assert (c["decision"], c["decision_reason"], c["close_reason"]) == \
        ("intercept", "client-tls-unsupported",
         "client-tls-unsupported"), c
    assert learned_rows(p) == []
    r = tcurl(p, f"https://alpha.test:{port}/small")
    assert (r.rc, r.code) == (0, 200), r.stderr


def test_s_client_closing_after_handshake_is_not_learned(tls_proxy,
                                                         tls_nginx, certs):
    p = tls_proxy("--upstream-ca", certs.ca)
    port = tls_nginx.port
    # no -CAfile: s_client reports the verify error but completes the
    # handshake, then closes (stdin is empty)
    for args in ((), ("-tls1_2",)):
        cp = _s_client(p, port, *args)
        out = cp.stdout.decode(errors="replace")
        assert "Cipher is" in out, out + cp.stderr.decode()
    cs = p.wait_rows("SELECT * FROM connections WHERE target_port = ?",
                     (port,), n=2)
    for c in cs:
        assert c["close_reason"] != "client-rejected-cert", c
        assert c["decision"] == "intercept", c
    assert learned_rows(p) == []
    r = tcurl(p, f"https://alpha.test:{port}/small")
    assert (r.rc, r.code) == (0, 200), r.stderr


def test_live_output_says_why(tls_proxy, tls_nginx, certs):
    p = tls_proxy("--upstream-ca", certs.ca, quiet=False)
    port = tls_nginx.port
    _reject(p, port)
    _learned(p, port, 1)
    r = tcurl(p, f"https://alpha.test:{port}/small", cacert=certs.ca)
    assert (r.rc, r.code) == (0, 200), r.stderr
    # another name: alpha.test is passed through before its hello is read
    _s_client(p, port, "-tls1", "-cipher", "DEFAULT@SECLEVEL=0",
              host="beta.test")
    p.stop()
    out = p.stdout()
    assert re.search(
        rf"rejected alpha\.test:{port} client rejected the forged "
        r"certificate: alert unknown_ca; passing it through for 60s", out), \
        out
    assert re.search(rf"passthrough alpha\.test:{port} pinned \(learned\): "
                     r".*intercepting again in \d+s", out), out
    assert re.search(rf"passthrough beta\.test:{port} "
                     r"client-tls-unsupported: the client offers TLS 1\.0",
                     out), out


def _fingerprint(pem):
    cp = subprocess.run([OPENSSL, "x509", "-noout", "-fingerprint",
                         "-sha256", "-in", str(pem)],
                        capture_output=True, timeout=20, check=True)
    return cp.stdout.decode().strip().split("=", 1)[1]


def test_run_prints_the_ca(tls_proxy):
    p = tls_proxy()
    err = p.stderr()
    m = re.search(r"CA (\S+) \(just created[^)]*\): subject (.*), "
                  r"SHA-256 ([0-9A-F:]+)", err)
    assert m, err
    assert m.group(1) == str(p.ca_pem)
    assert re.search(r"CN=peephole CA [0-9a-f]{6} ", m.group(2)), m.group(2)
    assert m.group(3) == _fingerprint(p.ca_pem)
    p.restart()
    lines = [ln for ln in p.stderr().splitlines()
             if f"CA {p.ca_pem}" in ln]
    assert len(lines) == 2, lines
    assert "just created" not in lines[1], lines
    assert _fingerprint(p.ca_pem) in lines[1]
