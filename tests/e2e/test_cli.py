"""
The read-side sub-commands (domains, requests, show) against a db the proxy
just wrote, and the command line's own error handling.
"""
import json
import time

import pytest

from conftest import RawConn, domain_field, free_port, run_cli, token


@pytest.fixture
def two_host_capture(proxy, nginx):
    """alpha.test: 3 requests on one raw connection; beta.test: 2 requests
    on 2 connections. Returns what the clients sent and received."""
    t = token()
    host = f"alpha.test:{nginx.port}"
    with RawConn(proxy.port) as c:
        for path in ("/small", "/small", "/img.jpg"):
            c.send(f"GET http://{host}{path}?t={t} HTTP/1.1\r\n"
                   f"Host: {host}\r\n\r\n".encode())
            assert c.read_response().status == 200
        alpha = {"sent": c.sent, "received": c.received,
                 "bodies": 200 + len(nginx.files["img.jpg"])}
    beta = {"bodies": 2 * len(nginx.files["p2.txt"])}
    for i in range(2):
        r = proxy.curl(nginx.url("beta.test", f"/p2.txt?t={t}&i={i}"))
        assert r.code == 200
    time.sleep(0.2)
    assert proxy.stop() == 0
    return {"t": t, "alpha": alpha, "beta": beta, "proxy": proxy}


def test_domains_json(two_host_capture, nginx):
    cap = two_host_capture
    p = cap["proxy"]
    cp = run_cli("domains", "--json", "--db", p.db)
    assert cp.returncode == 0, cp.stderr
    doms = json.loads(cp.stdout)
    assert isinstance(doms, list)
    by = {domain_field(d, "name"): d for d in doms}
    assert set(by) == {"alpha.test", "beta.test"}, by
    a, b = by["alpha.test"], by["beta.test"]
    assert domain_field(a, "requests") == 3
    assert domain_field(a, "connections") == 1
    assert domain_field(b, "requests") == 2
    assert domain_field(b, "connections") == 2
    for d in (a, b):
        assert domain_field(d, "ports") == [nginx.port]
        assert "127.0.0.1" in domain_field(d, "ips")
    # bytes: at least the bodies, at most what crossed the client socket
    ad = domain_field(a, "bytes_down")
    # (the head the origin sent may differ a little from the one relayed)
    assert cap["alpha"]["bodies"] < ad <= cap["alpha"]["received"] + 3 * 64
    au = domain_field(a, "bytes_up")
    assert 0 < au <= cap["alpha"]["sent"]
    bd = domain_field(b, "bytes_down")
    assert cap["beta"]["bodies"] < bd < cap["beta"]["bodies"] + 2 * 2048
    assert domain_field(b, "bytes_up") > 0


def test_domains_table_and_csv(two_host_capture):
    p = two_host_capture["proxy"]
    cp = run_cli("domains", "--db", p.db)
    assert cp.returncode == 0, cp.stderr
    assert "alpha.test" in cp.stdout and "beta.test" in cp.stdout
    cp = run_cli("domains", "--csv", "--db", p.db)
    assert cp.returncode == 0, cp.stderr
    lines = [ln for ln in cp.stdout.splitlines() if ln.strip()]
    assert len(lines) == 3  # header + two names
    assert any(ln.startswith("alpha.test,") or ",alpha.test," in ln
               or ln.startswith('"alpha.test"') for ln in lines)


def test_requests_json(two_host_capture, nginx):
    p = two_host_capture["proxy"]
    t = two_host_capture["t"]
    cp = run_cli("requests", "--json", "--db", p.db)
    assert cp.returncode == 0, cp.stderr
    reqs = json.loads(cp.stdout)
    assert isinstance(reqs, list) and len(reqs) == 5
    ids = {r["id"] for r in p.dbh().requests()}
    assert {r["id"] for r in reqs} == ids
    assert sum(1 for r in reqs if r.get("host") == "alpha.test") == 3
    assert all(r.get("status") == 200 for r in reqs)
    assert t in json.dumps(reqs)


def test_show_body_out_identical(two_host_capture, nginx, tmp_path):
    p = two_host_capture["proxy"]
    row = [r for r in p.dbh().requests() if r["path"] == "/img.jpg"][0]
    out = tmp_path / "img.out"
    cp = run_cli("show", row["id"], "--body-out", out, "--db", p.db)
    assert cp.returncode == 0, cp.stderr
    assert out.read_bytes() == nginx.files["img.jpg"]
    cp = run_cli("show", row["id"], "--db", p.db)
    assert cp.returncode == 0, cp.stderr
    assert "/img.jpg" in cp.stdout and "200" in cp.stdout


def test_show_unknown_id(two_host_capture):
    p = two_host_capture["proxy"]
    cp = run_cli("show", "999999", "--db", p.db)
    assert cp.returncode != 0
    assert cp.stderr.strip()


def test_read_commands_on_missing_db(tmp_path):
    missing = tmp_path / "nope.db"
    cp = run_cli("domains", "--json", "--db", missing)
    assert cp.returncode != 0
    assert cp.stderr.strip()
    assert not missing.exists()  # a reader must not create the file


@pytest.mark.parametrize("argv", [
    ["run", "--no-such-flag"],
    ["run", "--workers"],
    ["run", "--workers", "zero"],
    ["run", "--listen", "not-an-address"],
    ["domains", "--bogus"],
    ["requests", "--bogus"],
    ["show"],
    ["no-such-command"],
    [],
])
def test_bad_command_line_exit_2(argv, tmp_path):
    cp = run_cli(*argv, timeout=20, cwd=tmp_path)
    assert cp.returncode == 2, (cp.returncode, cp.stderr)
    assert cp.stderr.strip()
    assert not (tmp_path / "peephole.db").exists()


@pytest.mark.parametrize("bad,line", [
    ("no-such-key 1", 5),
    ("connect-timeout banana", 5),
    ("max-header-size", 5),
    ("record-flows maybe", 5),
])
def test_bad_conf_line_exit_2(tmp_path, dns_stub, bad, line):
    conf = tmp_path / "bad.conf"
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 alpha.test\n")
    conf.write_text(f"# comment\n\ndns-server 127.0.0.1:{dns_stub.port}\n"
                    f"hosts-file {hosts}\n{bad}\nshutdown-grace 1s\n")
    port = free_port()
    cp = run_cli("run", "--listen", f"127.0.0.1:{port}", "--db",
                 tmp_path / "x.db", "--conf", conf, "--quiet", timeout=20)
    assert cp.returncode == 2, (cp.returncode, cp.stderr)
    assert f"{conf}:{line}" in cp.stderr, cp.stderr


def test_requests_json_filtered_by_domain(two_host_capture):
    p = two_host_capture["proxy"]
    cp = run_cli("requests", "--json", "--domain", "beta.test", "--db", p.db)
    assert cp.returncode == 0, cp.stderr
    reqs = json.loads(cp.stdout)
    assert len(reqs) == 2
    assert {r["host"] for r in reqs} == {"beta.test"}


def test_requests_filter_expressions(proxy, nginx):
    """--filter over a real capture: GETs and a POST to two hosts, one
    answered 404; each expression picks exactly the right ids, bodies
    included, and combines with --limit and the plain flags."""
    t = token()
    got = {}
    for name, host, path, extra in (
            ("alpha_small", "alpha.test", "/small", []),
            ("alpha_post", "alpha.test", "/upload",
             ["--data-binary", "user=alice&token=s3cret"]),
            ("beta_img", "beta.test", "/img.jpg", []),
            ("beta_404", "beta.test", "/missing", [])):
        r = proxy.curl(nginx.url(host, f"{path}?t={t}"), *extra)
        assert r.rc == 0, r.stderr
        got[name] = r.code
    assert got["beta_404"] == 404
    assert proxy.stop() == 0
    rows = json.loads(run_cli("requests", "--json", "--db", proxy.db).stdout)
    ids = {r["url"].split("/")[3].split("?")[0] + "@" + r["host"]: r["id"]
           for r in rows}

    def sel(expr, *more):
        cp = run_cli("requests", "--json", "--filter", expr, *more,
                     "--db", proxy.db)
        assert cp.returncode == 0, (expr, cp.stderr)
        return [r["id"] for r in json.loads(cp.stdout)]

    assert sel("~d alpha & ~m POST") == [ids["upload@alpha.test"]]
    assert sel("~d beta") == [ids["img.jpg@beta.test"],
                              ids["missing@beta.test"]]
    assert sel("~c 404 | ~m POST") == sorted(
        [ids["missing@beta.test"], ids["upload@alpha.test"]])
    assert sel("~d beta & !~c 404") == [ids["img.jpg@beta.test"]]
    assert sel("~bq 'token=s3cret'") == [ids["upload@alpha.test"]]
    assert sel("~t jpeg") == [ids["img.jpg@beta.test"]]
    assert sel("~hq 'content-type: application/x-www-form'") == [
        ids["upload@alpha.test"]]
    assert sel("small|missing") == sorted(
        [ids["small@alpha.test"], ids["missing@beta.test"]])
    # with --limit: the newest match; with a plain flag: both apply
    assert sel("~s", "--limit", "1") == [max(ids.values())]
    assert sel("~s", "--method", "POST") == [ids["upload@alpha.test"]]

    cp = run_cli("requests", "--filter", "~d alpha & ", "--db", proxy.db)
    assert cp.returncode == 2
    assert "expected an expression after '&'" in cp.stderr
    assert "(position 11)" in cp.stderr
    assert "          ^" in cp.stderr
    cp = run_cli("requests", "--filter", "~zz x", "--db", proxy.db)
    assert cp.returncode == 2 and "unknown filter ~zz" in cp.stderr
