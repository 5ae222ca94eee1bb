"""
The reverse listener (`--listen reverse@ADDR:PORT=HOST:PORT`): every
connection accepted on it goes to one fixed origin, as if it were a
transparent connection whose original destination was HOST:PORT — what
mitmproxy calls `--mode reverse:https://HOST:PORT`. Clients that cannot
use a proxy (h2load, nghttp) reach an origin through peephole this way.
"""
import subprocess

from conftest import CURL, free_port, run_cli, token, wait_listen

from .conftest import conn_rows, req_rows, sha256_hex


def _reverse_proxy(tls_proxy, certs, target_port, target_host="127.0.0.1"):
    """A proxy with an HTTP listener and a reverse one to target; returns
    (proxy, reverse port)."""
    rport = free_port()
    p = tls_proxy("--upstream-ca", certs.ca, "--listen",
                  f"reverse@127.0.0.1:{rport}={target_host}:{target_port}")
    assert wait_listen(rport, 10, p.proc), p.stderr()[-2000:]
    return p, rport


def _curl_direct(url, *args, timeout=20):
    cp = subprocess.run([CURL, "-sS", "--max-time", str(timeout),
                         "--noproxy", "*", "-o", "-", "-w",
                         "\n%{http_code} %{http_version}", url] + list(args),
                        stdin=subprocess.DEVNULL, capture_output=True,
                        timeout=timeout + 10)
    body, _, tail = cp.stdout.rpartition(b"\n")
    code, _, version = tail.decode().partition(" ")
    return cp.returncode, int(code or 0), version, body, cp.stderr.decode()


def test_reverse_listener_intercepts_and_records(tls_proxy, tls_nginx, certs):
    p, rport = _reverse_proxy(tls_proxy, certs, tls_nginx.port)
    t = token()
    rc, code, _, body, err = _curl_direct(
        f"https://alpha.test:{rport}/small?t={t}", "--http1.1",
        "--resolve", f"alpha.test:{rport}:127.0.0.1",
        "--cacert", str(p.ca_pem))
    assert (rc, code) == (0, 200), err
    assert body == tls_nginx.files["small"]

    # the origin got it over TLS with the client's SNI
    es = tls_nginx.wait_entries(t)
    assert len(es) == 1, es
    assert (es[0]["scheme"], es[0]["sni"]) == ("https", "alpha.test")

    p.stop()
    rs = req_rows(p, "query LIKE ?", (f"%{t}%",))
    assert len(rs) == 1, rs
    rq = rs[0]
    assert (rq["scheme"], rq["method"], rq["path"], rq["status"]) == \
        ("https", "GET", "/small", 200)
    assert rq["resp_body_sha"] == sha256_hex(tls_nginx.files["small"])
    c = conn_rows(p, "id = ?", (rq["conn_id"],))[0]
    assert c["listener"] == "reverse"
    assert (c["target_host"], c["target_port"]) == \
        ("127.0.0.1", tls_nginx.port)
    assert c["decision"] == "intercept"
    assert c["sni"] == "alpha.test"
    # a reverse connection has no CONNECT exchange
    assert req_rows(p, "conn_id = ? AND method = 'CONNECT'",
                    (c["id"],)) == []


def test_reverse_listener_by_name_keeps_connections_apart(
        tls_proxy, tls_nginx, certs):
    """The target is resolved like a CONNECT host (hosts file); two client
    connections are two connection rows, each with its own exchanges."""
    p, rport = _reverse_proxy(tls_proxy, certs, tls_nginx.port,
                              target_host="beta.test")
    t = token()
    for _ in range(2):
        rc, code, _, body, err = _curl_direct(
            f"https://alpha.test:{rport}/second?t={t}", "--http1.1",
            "--resolve", f"alpha.test:{rport}:127.0.0.1",
            "--cacert", str(p.ca_pem))
        assert (rc, code) == (0, 200), err
        assert body == tls_nginx.files["second"]
    p.stop()
    rs = req_rows(p, "query LIKE ?", (f"%{t}%",))
    assert len(rs) == 2, rs
    cs = conn_rows(p, "listener = 'reverse'")
    assert len(cs) == 2, cs
    assert {c["target_host"] for c in cs} == {"beta.test"}
    assert {r["conn_id"] for r in rs} == {c["id"] for c in cs}


def test_bad_reverse_listen_exit_2(tmp_path):
    for spec, want in (("reverse@127.0.0.1:1", "needs its origin"),
                       ("127.0.0.1:1=origin.test:443", "only a reverse"),
                       ("reverse@127.0.0.1:1=origin.test:0", "port")):
        cp = run_cli("run", "--listen", spec, "--db", tmp_path / "x.db",
                     timeout=20, cwd=tmp_path)
        assert cp.returncode == 2, (spec, cp.returncode, cp.stderr)
        assert want in cp.stderr, (spec, cp.stderr)
    assert not (tmp_path / "x.db").exists()


def test_bad_reverse_listen_line_in_conf_names_file_and_line(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("# comment\nquiet yes\nlisten reverse@127.0.0.1:1=a b:2\n")
    cp = run_cli("run", "--db", tmp_path / "x.db", "--conf", conf,
                 timeout=20, cwd=tmp_path)
    assert cp.returncode == 2, (cp.returncode, cp.stderr)
    assert f"{conf}:3" in cp.stderr, cp.stderr
    assert "not a host name" in cp.stderr, cp.stderr
