"""
`peephole geo` against the data `make deps` builds (ip-location-db
2.3.2026061719, data of 2026-06-17; the answers below were checked in it
with mmdblookup and the ASN CSVs): text, JSON and CSV answers with the data
file and date, `geo update --from` (a copy is installed, a broken file is
refused and nothing replaced), and `domains` with where each address is,
over a capture whose domain_ips and connections hold public addresses
(rows put into a database `peephole run` made) and a loopback one.
"""
import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import PEEPHOLE_BIN

TENCENT = "Shenzhen Tencent Computer Systems Company Limited"
DATA_DATE = "2026-06-17"


def geo_env(**extra):
    env = dict(os.environ)
    env.pop("PEEPHOLE_GEO_DIR", None)
    env.update(extra)
    return env


def cli(*args, env=None):
    return subprocess.run([PEEPHOLE_BIN] + [str(a) for a in args],
                          stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=60,
                          env=env if env is not None else geo_env())


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """The data directory the binary finds beside itself (build/geo),
    from a home without geo/ of its own."""
    home = tmp_path_factory.mktemp("nohome")
    r = cli("geo", "--json", "8.8.8.8", env=geo_env(PEEPHOLE_HOME=str(home)))
    assert r.returncode == 0, r.stderr
    src = json.loads(r.stdout)[0]["source"]
    path = src.split("country: ", 1)[1].split(" (", 1)[0]
    assert path.endswith("/country.mmdb")
    return os.path.dirname(path)


def test_geo_text(data_dir, tmp_path):
    r = cli("geo", "8.8.8.8", "43.137.0.1", "119.29.29.29", "127.0.0.1",
            "fd00::1", env=geo_env(PEEPHOLE_HOME=str(tmp_path)))
    assert r.returncode == 0, r.stderr
    rows = {ln.split()[0]: ln.split() for ln in r.stdout.splitlines()[1:]
            if ln and not ln.startswith("data:")}
    assert rows["8.8.8.8"][1:4] == ["US", "AS15169", "Google"]
    assert rows["43.137.0.1"][1:3] == ["CN", "AS45090"]
    assert rows["119.29.29.29"][1:3] == ["HK", "AS132203"]
    assert rows["127.0.0.1"][1:] == ["loopback"]
    assert rows["fd00::1"][1:] == ["private"]
    last = r.stdout.splitlines()[-1]
    assert last.startswith("data: country: " + data_dir + "/country.mmdb")
    assert DATA_DATE in last and "asn: " + data_dir + "/asn.bin" in last


def test_geo_json_and_csv(data_dir):
    r = cli("geo", "--json", "2001:4860:4860::8888", "::ffff:43.137.0.1",
            "::1", "--dir", data_dir)
    assert r.returncode == 0, r.stderr
    a = json.loads(r.stdout)
    assert a[0] == {"ip": "2001:4860:4860::8888", "country": "US",
                    "asn": 15169, "org": "Google LLC", "scope": None,
                    "source": a[0]["source"]}
    assert "@ip-location-db/asn 2.3.2026061719, " + DATA_DATE in \
        a[0]["source"]
    assert (a[1]["country"], a[1]["asn"], a[1]["org"]) == \
        ("CN", 45090, TENCENT)
    assert a[2]["scope"] == "loopback" and a[2]["country"] is None
    r = cli("geo", "--csv", "1.1.1.1", "10.1.2.3", "--dir", data_dir)
    assert r.returncode == 0, r.stderr
    assert list(csv.reader(io.StringIO(r.stdout))) == [
        ["ip", "country", "asn", "org", "scope"],
        ["1.1.1.1", "AU", "13335", "Cloudflare, Inc.", ""],
        ["10.1.2.3", "", "", "", "private"]]


def test_geo_errors(tmp_path):
    r = cli("geo", "not-an-ip")
    assert r.returncode == 2 and "not an IP address" in r.stderr
    r = cli("geo")
    assert r.returncode == 2
    r = cli("geo", "--bogus", "8.8.8.8")
    assert r.returncode == 2
    # no data: scopes still answered, the rest unknown, said on stderr
    missing = tmp_path / "missing"
    r = cli("geo", "--json", "8.8.8.8", "192.168.0.1",
            env=geo_env(PEEPHOLE_GEO_DIR=str(missing)))
    assert r.returncode == 1
    assert str(missing) in r.stderr and "no geo data" in r.stderr
    a = json.loads(r.stdout)
    assert a[0]["country"] is None and a[0]["asn"] is None
    assert a[1]["scope"] == "private"
    assert "Lite" in cli("geo", "--help").stdout  # the attribution
    assert "CC BY 4.0" in cli("geo", "--help").stdout


def _snapshot(d):
    return {n: (d / n).read_bytes() for n in sorted(os.listdir(d))}


def test_geo_update(data_dir, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(data_dir, src)
    home = tmp_path / "home"
    r = cli("geo", "update", "--from", src, "--home", home)
    assert r.returncode == 0, r.stderr
    assert "country.mmdb  added" in r.stdout and "asn.bin       added" \
        in r.stdout
    assert sorted(os.listdir(home)) == ["geo"]
    before = _snapshot(home / "geo")
    assert before["asn.bin"] == (src / "asn.bin").read_bytes()
    # the home's copy answers first now
    r = cli("geo", "--json", "43.137.0.1",
            env=geo_env(PEEPHOLE_HOME=str(home)))
    a = json.loads(r.stdout)[0]
    assert a["asn"] == 45090 and str(home / "geo") in a["source"]
    # broken files are refused, nothing replaced, no staging left
    for name, data in (("asn.bin", before["asn.bin"][:1000]),
                       ("country.mmdb", b"not an mmdb" * 100)):
        bad = tmp_path / ("bad-" + name)
        bad.mkdir()
        (bad / name).write_bytes(data)
        r = cli("geo", "update", "--from", bad, "--home", home)
        assert r.returncode == 1
        assert "refused" in r.stderr and "nothing replaced" in r.stderr
        assert _snapshot(home / "geo") == before
        assert sorted(os.listdir(home)) == ["geo"]
    empty = tmp_path / "empty"
    empty.mkdir()
    r = cli("geo", "update", "--from", empty, "--home", home)
    assert r.returncode == 1 and "holds none of" in r.stderr
    assert cli("geo", "update", "--home", home).returncode == 2
    # a second install replaces both and says what it was
    r = cli("geo", "update", "--from", src, "--home", home)
    assert r.returncode == 0, r.stderr
    assert "asn.bin       replaced" in r.stdout
    assert "was: country: " + str(home / "geo") in r.stdout
    assert _snapshot(home / "geo") == before


def test_geo_update_refuses_symlinked_geo(data_dir, tmp_path):
    """Regression: with HOME/geo a symlink, the exchange swapped the link
    into the staging name and the clean-up emptied the link's target
    (exit 0). Now refused, the target untouched."""
    src = tmp_path / "src"
    shutil.copytree(data_dir, src)
    target = tmp_path / "elsewhere"
    shutil.copytree(data_dir, target)
    (target / "precious.txt").write_text("keep me")
    before = _snapshot(target)
    home = tmp_path / "home"
    home.mkdir()
    os.symlink(target, home / "geo")
    r = cli("geo", "update", "--from", src, "--home", home)
    assert r.returncode == 1
    assert "symbolic link" in r.stderr and "nothing replaced" in r.stderr
    assert _snapshot(target) == before
    assert os.path.islink(home / "geo")
    assert sorted(os.listdir(home)) == ["geo"]  # no staging left


def test_geo_update_refuses_corrupt_country(data_dir, tmp_path):
    """Regression: the check looked up one address only, so a country
    file with bytes flipped inside it was installed."""
    home = tmp_path / "home"
    assert cli("geo", "update", "--from", data_dir, "--home", home) \
        .returncode == 0
    before = _snapshot(home / "geo")
    bad = tmp_path / "bad"
    bad.mkdir()
    data = bytearray((tmp_path / "home" / "geo" / "country.mmdb")
                     .read_bytes())
    for off in range(len(data) // 3, len(data) // 3 + 4000, 7):
        data[off] ^= 0xff
    (bad / "country.mmdb").write_bytes(bytes(data))
    # still answers the probe: the old check passed it
    r = cli("geo", "--json", "8.8.8.8", "--dir", bad)
    assert json.loads(r.stdout)[0]["country"] == "US"
    r = cli("geo", "update", "--from", bad, "--home", home)
    assert r.returncode == 1
    assert "country.mmdb" in r.stderr and "nothing replaced" in r.stderr
    assert _snapshot(home / "geo") == before
    assert sorted(os.listdir(home)) == ["geo"]


def test_geo_update_long_home(data_dir, tmp_path):
    """A home of 4001+ bytes was cut to 4000 by the format; refused."""
    home = str(tmp_path) + "/" + "h" * (4001 - len(str(tmp_path)) - 1)
    assert len(home) == 4001
    r = cli("geo", "update", "--from", data_dir, "--home", home)
    assert r.returncode == 2 and "4000" in r.stderr


def test_geo_update_from_release_csv(data_dir, tmp_path):
    """ip-location-db's release files: the ASN CSVs are converted; the
    country file already installed is kept."""
    npm = os.path.join(os.path.dirname(data_dir), "npm", "node_modules",
                       "@ip-location-db", "asn")
    if not os.path.exists(os.path.join(npm, "asn-ipv4.csv")):
        pytest.skip("no @ip-location-db/asn CSVs beside " + data_dir)
    home = tmp_path / "home"
    src = tmp_path / "src"
    shutil.copytree(data_dir, src)
    assert cli("geo", "update", "--from", src, "--home", home) \
        .returncode == 0
    rel = tmp_path / "rel"
    rel.mkdir()
    for n in ("asn-ipv4.csv", "asn-ipv6.csv"):
        os.symlink(os.path.join(npm, n), rel / n)
    r = cli("geo", "update", "--from", rel, "--home", home)
    assert r.returncode == 0, r.stderr
    assert "country.mmdb  kept" in r.stdout
    assert "asn.bin       replaced" in r.stdout
    assert (home / "geo" / "asn.bin").read_bytes() == \
        (src / "asn.bin").read_bytes()[:24] + \
        (home / "geo" / "asn.bin").read_bytes()[24:40] + \
        (src / "asn.bin").read_bytes()[40:]


ROWS = [  # domain, ip, source
    ("wx.qq.com", "43.137.0.1", "app-dns"),
    ("dns.google", "8.8.8.8", "proxy-dns"),
    ("dns.google", "2001:4860:4860::8888", "proxy-dns"),
    ("local.test", "127.0.0.1", "proxy-dns"),
]


@pytest.fixture
def capture(start_proxy):
    p = start_proxy()
    # one answered request first: the proxy may be listening before its
    # SIGTERM handler is in place, and a stop that early kills it
    try:
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            p.url + "/", timeout=10).read()
    except urllib.error.URLError:
        pass
    assert p.stop() == 0
    db = sqlite3.connect(p.db)
    t = 1_780_000_000_000_000
    db.executemany(
        "INSERT INTO domain_ips (domain, ip, source, first_seen, last_seen,"
        " ttl, count) VALUES (?, ?, ?, ?, ?, 60, 1)",
        [(d, ip, s, t, t + 1) for d, ip, s in ROWS])
    db.execute(
        "INSERT INTO connections (listener, client_ip, client_port,"
        " target_host, target_port, server_ip, server_port, protocol,"
        " t_accept_us, t_close_us, bytes_from_client, bytes_to_client)"
        " VALUES ('http', '127.0.0.1', 40000, 'wx.qq.com', 443,"
        " '121.51.0.1', 443, 'mmtls', ?, ?, 100, 200)", (t, t + 5))
    db.commit()
    db.close()
    return p.db


def test_domains_geo_json(capture, data_dir):
    r = cli("domains", "--json", "--db", capture,
            env=geo_env(PEEPHOLE_GEO_DIR=data_dir))
    assert r.returncode == 0, r.stderr
    by = {d["domain"]: d for d in json.loads(r.stdout)}
    wx = by["wx.qq.com"]
    assert sorted(wx["ips"]) == ["121.51.0.1", "43.137.0.1"]
    assert {g["ip"]: (g["country"], g["asn"], g["org"], g["scope"])
            for g in wx["ips_geo"]} == {
        "121.51.0.1": ("CN", 45090, TENCENT, None),
        "43.137.0.1": ("CN", 45090, TENCENT, None)}
    assert wx["country"] == ["CN"] and wx["asn"] == [45090]
    assert wx["org"] == [TENCENT]
    g = by["dns.google"]
    assert g["country"] == ["US"] and g["asn"] == [15169]
    assert len(g["ips_geo"]) == 2
    loc = by["local.test"]
    assert loc["ips_geo"] == [{"ip": "127.0.0.1", "country": None,
                               "asn": None, "org": None,
                               "scope": "loopback"}]
    assert loc["country"] == ["loopback"] and loc["asn"] == []


def test_domains_geo_table_and_csv(capture, data_dir):
    env = geo_env(PEEPHOLE_GEO_DIR=data_dir)
    r = cli("domains", "--wide", "--db", capture, env=env)
    assert r.returncode == 0, r.stderr
    head = r.stdout.splitlines()[0]
    assert "WHERE" in head.upper()
    wx = [ln for ln in r.stdout.splitlines() if ln.startswith("wx.qq.com")]
    assert "CN AS45090,CN AS45090" in wx[0]
    loc = [ln for ln in r.stdout.splitlines()
           if ln.startswith("local.test")]
    assert " loopback " in loc[0] + " "
    r = cli("domains", "--csv", "--db", capture, env=env)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    by = {row["domain"]: row for row in rows}
    assert by["dns.google"]["where"] == \
        "US AS15169 Google LLC; US AS15169 Google LLC"
    assert by["local.test"]["where"] == "loopback"


def test_domains_without_geo_data(capture, tmp_path):
    r = cli("domains", "--json", "--db", capture,
            env=geo_env(PEEPHOLE_GEO_DIR=str(tmp_path / "none")))
    assert r.returncode == 0
    assert "note:" in r.stderr and "no geo data" in r.stderr
    by = {d["domain"]: d for d in json.loads(r.stdout)}
    assert by["wx.qq.com"]["ips_geo"][0]["country"] is None
    assert by["local.test"]["ips_geo"][0]["scope"] == "loopback"
