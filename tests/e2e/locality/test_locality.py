"""
`peephole locality`: where a capture's bytes went.

The capture is a real database (made by starting and stopping `peephole
run`) holding WeChat-like traffic as rows: mmTLS longlinks and HTTP to bare
Tencent addresses that WeChat's own DNS (app-dns) named, TLS passed
through to Google and Cloudflare, a bare address in Hong Kong, and a local
HTTP origin on loopback. No packet leaves the machine: the public
addresses are only rows.

A live capture checks the bytes themselves: an mmTLS longlink and a raw
TCP stream relayed through SOCKS5 (passed through, never read) and an
HTTP exchange, all to loopback origins, count in full in the `loopback`
row and never as leaving home.

Totals and shares are checked exactly without geo data (every public
address unknown), and, where the geo data is built (`make deps`), that
the addresses land in the countries and networks that data gives
(8.8.8.8 US AS15169, 43.137.0.1 CN AS45090, 1.1.1.1 AU AS13335,
119.29.29.29 HK AS132203) and which share left China.
"""
import json
import os
import sqlite3
import subprocess

import pytest

from conftest import PEEPHOLE_BIN, free_port, kill_proc, wait_for, \
    wait_listen
from streams.conftest import (DATA, HANDSHAKE, echo_handler,  # noqa: F401
                              http_handler, mm_hello, mm_record, socks_open,
                              stream_proxy, tcp_server)

T0 = 1_700_000_000_000_000
CLIENT = "127.0.0.1"

# id, target host, server ip, port, sni, protocol, decision, up, down
CONNS = [
    (1, "43.137.0.1", "43.137.0.1", 8080, None, "mmtls", "passthrough",
     1000, 9000),
    (2, "43.137.0.1", "43.137.0.1", 8080, None, "mmtls", "passthrough",
     500, 4500),
    (3, "dns.google", "8.8.8.8", 443, "dns.google", "tls", "passthrough",
     2000, 18000),
    (4, "1.1.1.1", "1.1.1.1", 443, "one.one.one.one", "tls", "passthrough",
     300, 2700),
    (5, "119.29.29.29", "119.29.29.29", 443, None, "other", "passthrough",
     1000, 1000),
    (6, "localhost", "127.0.0.1", 8081, None, "http", None, 50, 950),
    (7, "121.51.0.1", "121.51.0.1", 80, None, "http", None, 1000, 9000),
]
TOTAL = 51000
# name, address, source: WeChat's own DNS answers and one through the proxy
ANSWERS = [
    ("szshort.weixin.qq.com", "43.137.0.1", "app-dns"),
    ("szshort.weixin.qq.com", "43.137.0.2", "app-dns"),
    ("dns.weixin.qq.com", "121.51.0.1", "app-dns"),
    ("doh.pub", "119.29.29.29", "app-dns"),
    ("dns.google", "8.8.8.8", "proxy-dns"),
    ("unused.weixin.qq.com", "43.137.0.3", "app-dns"),
]


def share(part, total=TOTAL):
    """Hundredths of a percent rounded half up, as the command does."""
    return (part * 10000 * 2 + total) // (2 * total) / 100


def user_version(path):
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return db.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error:
        return 0


def empty_db(path):
    """A database as `peephole run` makes it: started, then stopped once
    it listens. (Its exit status is not this test's business: a SIGTERM
    that comes right after "listening" can find no handler yet.)"""
    port = free_port()
    proc = subprocess.Popen(
        [PEEPHOLE_BIN, "run", "--db", str(path), "--quiet", "--listen",
         f"127.0.0.1:{port}"], stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_listen(port, 20, proc)
        wait_for(lambda: user_version(path) > 0, timeout=10)
    finally:
        kill_proc(proc)
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
    assert user_version(path) > 0, err


@pytest.fixture
def capture(tmp_path):
    path = tmp_path / "capture.db"
    empty_db(path)
    db = sqlite3.connect(str(path), timeout=10)
    db.executemany(
        "INSERT INTO connections (id, listener, client_ip, client_port,"
        " target_host, server_ip, target_port, server_port, sni, protocol,"
        " decision, t_accept_us, t_close_us, bytes_from_client,"
        " bytes_to_server, bytes_from_server, bytes_to_client)"
        " VALUES (?, 'http', ?, 40000 + ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
        " ?, ?, ?, ?)",
        [(i, CLIENT, i, th, ip, port, port, sni, proto, dec,
          T0 + i * 1_000_000, T0 + i * 1_000_000 + 500_000, up, up, down,
          down) for (i, th, ip, port, sni, proto, dec, up, down) in CONNS])
    for name, ip, src in ANSWERS:
        db.execute("INSERT INTO domain_ips (domain, ip, source, first_seen,"
                   " last_seen, ttl) VALUES (?, ?, ?, ?, ?, 600)",
                   (name, ip, src, T0, T0))
        db.execute("INSERT INTO name_sightings (client_ip, domain, ip,"
                   " source, first_seen, last_seen, ttl)"
                   " VALUES (?, ?, ?, ?, ?, ?, 600)",
                   (CLIENT, name, ip, src, T0, T0))
    db.commit()
    db.close()
    return path


def locality(db, *args, geo_dir=None):
    env = dict(os.environ)
    if geo_dir is not None:
        env["PEEPHOLE_GEO_DIR"] = str(geo_dir)
    return subprocess.run([PEEPHOLE_BIN, "locality", "--db", str(db)] +
                          [str(a) for a in args], env=env, text=True,
                          stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=60)


def locality_json(db, *args, geo_dir=None):
    r = locality(db, "--json", *args, geo_dir=geo_dir)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout), r.stderr


def by_key(rows, key):
    return {r[key]: r for r in rows}


def test_totals_without_geo(capture, tmp_path):
    nogeo = tmp_path / "nogeo"
    nogeo.mkdir()
    j, err = locality_json(capture, "--home", "CN", geo_dir=nogeo)
    assert "unknown" in err  # said on stderr, not silently
    assert j["geo"] is None and j["home"] == ["CN"]
    assert j["connections"] == 7
    assert j["bytes_up"] == sum(c[7] for c in CONNS)
    assert j["bytes_down"] == sum(c[8] for c in CONNS)
    assert j["bytes"] == TOTAL
    assert j["addresses"] == 6
    w = j["where"]
    assert w["unknown"] == {"bytes": 50000, "share": share(50000),
                            "connections": 6}
    assert w["local"] == {"bytes": 1000, "share": share(1000),
                          "connections": 1}
    assert w["left"]["bytes"] == 0 and w["home"]["bytes"] == 0
    countries = by_key(j["countries"], "country")
    assert set(countries) == {"unknown", "loopback"}
    assert countries["loopback"]["where"] == "local"
    assert countries["unknown"]["share"] == share(50000)
    assert j["left_to"] == []


def test_domains_named_by_app_dns(capture, tmp_path):
    nogeo = tmp_path / "nogeo"
    nogeo.mkdir()
    j, _ = locality_json(capture, "--by", "domain", geo_dir=nogeo)
    assert "countries" not in j and "asns" not in j
    # without --home nothing is home or away
    assert set(j["where"]) == {"public", "unknown", "local", "none"}
    assert j["where"]["unknown"]["bytes"] == 50000
    rows = j["domains"]
    sz = [r for r in rows if r["domain"] == "szshort.weixin.qq.com"]
    assert len(sz) == 1
    sz = sz[0]
    # the app asked for a bare address; WeChat's own DNS named it
    assert sz["asked"] == "address" and sz["named_by"] == ["app-dns"]
    assert sz["connections"] == 2 and sz["bytes"] == 15000
    assert sz["share"] == share(15000)
    assert sz["learned"] == ["app-dns"]
    # every address WeChat's DNS gave for it, used or not
    assert [(a["ip"], a["sources"], a["where"]) for a in sz["answers"]] == [
        ("43.137.0.1", ["app-dns"], "unknown"),
        ("43.137.0.2", ["app-dns"], "unknown")]
    assert rows[0]["domain"] == "dns.google"  # most bytes first
    assert rows[0]["asked"] == "name" and rows[0]["named_by"] == ["target"]
    assert "proxy-dns" in rows[0]["learned"]
    one = [r for r in rows if r["domain"] == "one.one.one.one"][0]
    assert one["asked"] == "name" and one["named_by"] == ["sni"]
    # a name only WeChat's DNS gave, never connected to: listed, 0 bytes
    unused = [r for r in rows if r["domain"] == "unused.weixin.qq.com"][0]
    assert unused["asked"] == "dns" and unused["connections"] == 0
    assert unused["learned"] == ["app-dns"]
    assert sum(r["bytes"] for r in rows) == TOTAL


def geo_or_skip(capture):
    j, _ = locality_json(capture)
    if j["geo"] is None:
        pytest.skip("no geo data found beside the binary (make deps "
                    "builds build/geo): countries cannot be checked")
    return j


def test_home_cn_with_geo(capture):
    geo_or_skip(capture)
    j, _ = locality_json(capture, "--home", "CN")
    assert "2026" in j["geo"] or "(" in j["geo"]
    w = j["where"]
    assert w["home"]["bytes"] == 25000  # 43.137.0.1 twice, 121.51.0.1
    assert w["left"] == {"bytes": 25000, "share": share(25000),
                         "connections": 3}
    assert w["local"]["bytes"] == 1000
    left = [(r["country"], r["asn"], r["bytes"], r["share"])
            for r in j["left_to"]]
    assert left == [("US", 15169, 20000, share(20000)),
                    ("AU", 13335, 3000, share(3000)),
                    ("HK", 132203, 2000, share(2000))]
    assert j["left_to"][0]["org"] == "Google LLC"
    countries = by_key(j["countries"], "country")
    assert countries["CN"]["where"] == "home"
    assert countries["CN"]["domains"] == 2
    assert countries["CN"]["addresses"] == 2
    assert countries["US"]["where"] == "left"
    assert countries["US"]["bytes_left"] == 20000
    assert countries["loopback"]["where"] == "local"
    asns = by_key(j["asns"], "label")
    assert asns["AS45090"]["countries"] == ["CN"]
    assert asns["AS45090"]["bytes"] == 25000
    assert asns["AS45090"]["left_share"] == 0
    assert asns["AS15169"]["left_share"] == 100

    r = locality(capture, "--home", "CN")
    assert r.returncode == 0, r.stderr
    head = [ln for ln in r.stdout.splitlines() if "left CN" in ln]
    assert head and head[0].startswith(
        f"{share(25000):.1f}% of bytes (") and \
        "left CN: to US (AS15169 Google LLC) 39.2%, AU (AS13335" in head[0]
    assert "by country:" in r.stdout and "by network (AS):" in r.stdout


def test_home_region_and_domains_with_geo(capture):
    geo_or_skip(capture)
    j, _ = locality_json(capture, "--home", "cn,hk", "--by", "domain")
    assert j["home"] == ["CN", "HK"]
    assert j["where"]["left"]["bytes"] == 23000
    rows = by_key(j["domains"], "domain")
    sz = rows["szshort.weixin.qq.com"]
    assert sz["countries"] == ["CN"] and sz["asns"] == ["AS45090"]
    assert sz["bytes_left"] == 0
    assert [(a["ip"], a["country"], a["asn"], a["where"])
            for a in sz["answers"]] == [
        ("43.137.0.1", "CN", 45090, "home"),
        ("43.137.0.2", "CN", 45090, "home")]
    assert rows["dns.google"]["answers"][0]["where"] == "left"
    assert rows["dns.google"]["left_share"] == 100
    assert rows["doh.pub"]["bytes_left"] == 0  # HK is home now
    assert rows["unused.weixin.qq.com"]["countries"] == ["CN"]


def test_csv_and_asn_table(capture, tmp_path):
    nogeo = tmp_path / "nogeo"
    nogeo.mkdir()
    r = locality(capture, "--by", "asn", "--csv", geo_dir=nogeo)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()  # text mode: CRLF read as newlines
    assert lines[0] == ("asn,org,countries,domains,addresses,connections,"
                        "bytes_up,bytes_down,share")
    assert lines[1] == "unknown,-,unknown,5,5,6,5800,44200,%.2f" % share(
        50000)
    assert lines[2] == "loopback,-,loopback,1,1,1,50,950,%.2f" % share(1000)
    r = locality(capture, "--csv", "--home", "CN", geo_dir=nogeo)
    assert r.stdout.splitlines()[0] == ("country,where,domains,addresses,"
                                        "connections,bytes_up,bytes_down,"
                                        "share")


@pytest.mark.parametrize("args", [
    ["--by", "city"], ["--home", "CHN"], ["--home", ""], ["--json", "--csv"],
    ["--limit", "0"], ["--bogus"], ["extra"], ["--by"]])
def test_bad_flags_exit_2(capture, args):
    r = locality(capture, *args)
    assert r.returncode == 2
    assert "peephole locality:" in r.stderr and r.stdout == ""


def test_missing_database_exit_1(tmp_path):
    r = locality(tmp_path / "none.db")
    assert r.returncode == 1 and "none.db" in r.stderr
    assert not (tmp_path / "none.db").exists()  # a reader creates nothing


def test_live_streams_count_in_full(stream_proxy, tcp_server, tmp_path):
    """Bytes of passed-through streams (mmTLS, raw TCP) and of HTTP are
    all counted, each connection once, and loopback never leaves home."""
    ch = mm_hello(HANDSHAKE, 1, 220, seed=1)
    up_mm = ch + mm_record(DATA, b"\x01" * 3000)
    down_mm = mm_hello(HANDSHAKE, 2, 90, seed=2) + \
        mm_record(DATA, b"\x02" * 12000)

    def mm_origin(o):
        o.recv_exact(len(up_mm))
        o.send(down_mm)
        o.closed_by_peer(10)

    mm_srv = tcp_server(mm_origin)
    echo_srv = tcp_server(echo_handler)
    p = stream_proxy()
    c = socks_open(p.socks_port, "127.0.0.1", mm_srv.port)
    c.send(up_mm)
    assert c.recv_exact(len(down_mm)) == down_mm
    c.shutdown_wr()
    assert c.closed_by_peer(5)
    c.close()
    e = socks_open(p.socks_port, "alpha.test", echo_srv.port)
    e.send(b"e" * 5000)
    assert e.recv_exact(5000) == b"e" * 5000
    e.shutdown_wr()
    assert e.closed_by_peer(5)
    e.close()
    web = tcp_server(http_handler(lambda m, t, h, b: (200, [], b"w" * 7000)))
    r = p.curl(f"http://beta.test:{web.port}/page")
    assert r.rc == 0 and r.body == b"w" * 7000, r.stderr
    assert mm_srv.wait_done(1) and echo_srv.wait_done(1)
    assert p.stop() == 0
    conns = p.conns()
    assert len(conns) == 3
    http = [r for r in conns if r["target_host"] == "beta.test"][0]
    assert http["bytes_from_server"] > 7000
    nogeo = tmp_path / "nogeo"
    nogeo.mkdir()
    j, _ = locality_json(p.db, "--home", "CN", geo_dir=nogeo)
    assert j["connections"] == 3
    assert j["bytes_up"] == sum(r["bytes_to_server"] for r in conns) == \
        len(up_mm) + 5000 + http["bytes_to_server"]
    assert j["bytes_down"] == sum(r["bytes_from_server"] for r in conns) \
        == len(down_mm) + 5000 + http["bytes_from_server"]
    assert j["where"]["local"]["bytes"] == j["bytes"]
    assert j["where"]["local"]["share"] == 100
    assert j["where"]["left"]["bytes"] == 0
    assert [(r["country"], r["where"], r["connections"], r["bytes"])
            for r in j["countries"]] == [
        ("loopback", "local", 3, j["bytes"])]
    j, _ = locality_json(p.db, "--by", "domain", geo_dir=nogeo)
    rows = {(r["domain"], r["asked"]): r for r in j["domains"]}
    mm = rows[("127.0.0.1", "address")]  # nothing named it
    assert mm["named_by"] == ["address"]
    assert (mm["bytes_up"], mm["bytes_down"]) == (len(up_mm), len(down_mm))
    alpha = rows[("alpha.test", "name")]
    assert alpha["named_by"] == ["target"]
    assert (alpha["bytes_up"], alpha["bytes_down"]) == (5000, 5000)
    assert "connect" in alpha["learned"]  # the tunnel's own evidence
    beta = rows[("beta.test", "name")]
    assert (beta["connections"], beta["bytes_down"]) == \
        (1, http["bytes_from_server"])


def test_live_keepalive_split_by_host(stream_proxy, tcp_server, tmp_path):
    """One plain-HTTP proxy connection kept alive from one host to the
    next: its bytes are shared out by host and count exactly once."""
    a = tcp_server(http_handler(lambda m, t, h, b: (200, [], b"a" * 3000)))
    b = tcp_server(http_handler(lambda m, t, h, b: (200, [], b"b" * 9000)))
    p = stream_proxy()
    r = p.curl([f"http://alpha.test:{a.port}/x", f"http://beta.test:{b.port}/y"])
    assert r.rc == 0, r.stderr
    assert p.stop() == 0
    conns = p.conns()
    reqs = p.rows("SELECT conn_id, host FROM requests ORDER BY id")
    if len(conns) != 1:
        pytest.skip(f"curl used {len(conns)} connections, not one")
    assert [q["host"] for q in reqs] == ["alpha.test", "beta.test"]
    nogeo = tmp_path / "nogeo"
    nogeo.mkdir()
    j, _ = locality_json(p.db, "--by", "domain", geo_dir=nogeo)
    assert j["connections"] == 1
    rows = {r["domain"]: r for r in j["domains"] if r["connections"]}
    assert set(rows) == {"alpha.test", "beta.test"}
    assert rows["alpha.test"]["named_by"] == ["host"]
    c = conns[0]
    assert sum(r["bytes_up"] for r in rows.values()) == c["bytes_to_server"]
    assert sum(r["bytes_down"] for r in rows.values()) == \
        c["bytes_from_server"]
    assert 3000 < rows["alpha.test"]["bytes_down"] < 4000
    assert 9000 < rows["beta.test"]["bytes_down"] < 10000
    # regression: the connection was counted once per host it went to
    # ("1 connections" then "local 100.0% (..., 2 conns)"); each domain
    # row counts it once, and so do the headline and a row holding both
    assert [r["connections"] for r in rows.values()] == [1, 1]
    assert j["where"]["local"]["connections"] == 1
    j, _ = locality_json(p.db, geo_dir=nogeo)
    assert [(r["country"], r["connections"]) for r in j["countries"]] == \
        [("loopback", 1)]
    r = locality(p.db, geo_dir=nogeo)
    assert r.returncode == 0, r.stderr
    assert "1 conns)" in r.stdout and "2 conns)" not in r.stdout
