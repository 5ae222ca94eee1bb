"""
`peephole resolve-compare` against real resolvers on loopback: two dnsmasq
instances (Debian's dnsmasq-base) that answer the same names differently
(other addresses, an NXDOMAIN, no AAAA, other TTLs), a port where nothing
answers, and the app-dns / proxy-dns answers of a capture that a running
`peephole run` holds. The stored rows, the verdicts, the JSON and CSV, the
reprint of a stored run and the exit statuses are checked exactly.
"""
import json
import os
import signal
import socket
import sqlite3
import struct
import subprocess

import pytest

from conftest import (SANITIZER_MARKS, free_port, kill_proc, run_cli,
                      wait_for)

DNSMASQ = "/usr/sbin/dnsmasq"

# The records of each resolver: name -> (addresses, ttl). Names missing
# from one are NXDOMAIN there (dnsmasq is authoritative for .test).
R1_RECORDS = {
    "a.test": (["203.0.113.10", "2001:db8::10"], 300),
    "b.test": (["198.51.100.5"], 60),
    "pub.test": (["114.114.114.114"], 30),
}
R2_RECORDS = {
    "a.test": (["203.0.113.20"], 120),
    "b.test": (["198.51.100.5"], 60),
    "c.test": (["192.0.2.7"], 30),
    "pub.test": (["8.8.8.8"], 30),
}


def dns_query(port, name, qtype=1, timeout=0.5):
    """One UDP query to 127.0.0.1:port: (rcode, answer count), or None."""
    qn = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    pkt = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + qn + \
        b"\0" + struct.pack(">HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(pkt, ("127.0.0.1", port))
        try:
            d = s.recv(512)
        except OSError:
            return None
    return struct.unpack(">H", d[2:4])[0] & 15, struct.unpack(">H", d[6:8])[0]


def free_udp_port():
    """A loopback UDP port nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dnsmasq:
    """dnsmasq in the foreground on a free loopback port, authoritative
    for .test with the given records, stopped by PID."""

    def __init__(self, workdir, name, records):
        self.dir = workdir
        self.name = name
        self.records = records
        self.proc = None

    def start(self):
        last = ""
        for _ in range(3):  # the port can be taken in between: retry
            self.port = free_port()
            args = [DNSMASQ, "--keep-in-foreground", "--no-resolv",
                    "--no-hosts", f"--port={self.port}",
                    "--listen-address=127.0.0.1", "--bind-interfaces",
                    f"--pid-file={self.dir / (self.name + '.pid')}",
                    "--conf-file=/dev/null", "--local=/test/",
                    f"--log-facility={self.dir / (self.name + '.log')}"]
            if os.geteuid() == 0:
                args.append("--user=root")
            for host, (addrs, ttl) in self.records.items():
                args.append(f"--host-record={host},{','.join(addrs)},{ttl}")
            self.err = open(self.dir / (self.name + ".stderr"), "wb")
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                         stdout=self.err, stderr=self.err)
            host = next(iter(self.records))
            if wait_for(lambda: self.proc.poll() is not None or
                        dns_query(self.port, host, timeout=0.2), 10):
                if self.proc.poll() is None:
                    return self
            kill_proc(self.proc, signal.SIGKILL)
            self.err.close()
            last = (self.dir / (self.name + ".stderr")).read_text()
        raise RuntimeError("dnsmasq did not start: " + last[-2000:])

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        if self.proc is not None:
            kill_proc(self.proc)
            self.err.close()
            self.proc = None


@pytest.fixture
def resolvers(tmp_path):
    if not os.access(DNSMASQ, os.X_OK):
        pytest.skip(f"{DNSMASQ} missing: install Debian's dnsmasq-base")
    r1 = Dnsmasq(tmp_path, "r1", R1_RECORDS)
    r2 = Dnsmasq(tmp_path, "r2", R2_RECORDS)
    try:
        yield r1.start(), r2.start()
    finally:
        r1.stop()
        r2.stop()


T_APP = 1733000000000000  # when the capture logged the app-dns answers


@pytest.fixture
def capture(start_proxy):
    """A running proxy's database holding app-dns and proxy-dns answers
    and requests (one to a bare address, which is no name to ask)."""
    p = start_proxy()
    c = sqlite3.connect(str(p.db), timeout=10)
    with c:
        c.executemany(
            "INSERT INTO domain_ips (domain, ip, source, first_seen,"
            " last_seen, ttl) VALUES (?, ?, ?, ?, ?, ?)",
            [("a.test", "101.32.1.1", "app-dns", T_APP, T_APP, 600),
             ("B.test", "198.51.100.5", "app-dns", T_APP, T_APP, 900),
             ("b.test", "198.51.100.5", "proxy-dns", T_APP, T_APP + 1, 60)])
        c.executemany(
            "INSERT INTO requests (conn_id, t_start_us, method, host, port,"
            " path) VALUES (?, ?, 'GET', ?, 80, '/')",
            [(1, T_APP, "c.test"), (2, T_APP, "192.0.2.1")])
    c.close()
    return p


def stored(db, run):
    c = sqlite3.connect(str(db), timeout=10)
    try:
        return [tuple(r) for r in c.execute(
            "SELECT domain, resolver, qtype, ip, ttl, status FROM"
            " resolver_answers WHERE run_id = ? ORDER BY id", (run,))]
    finally:
        c.close()


def compare(db, *args, timeout=60):
    cp = run_cli("resolve-compare", "--db", db, *args, timeout=timeout)
    for m in SANITIZER_MARKS:
        assert m not in cp.stderr, cp.stderr[-6000:]
    return cp


def test_runs_stored_and_compared(resolvers, capture):
    """--all over the capture, two resolvers that disagree and one that
    never answers, while the proxy runs on the same file."""
    r1, r2 = resolvers
    dead = f"127.0.0.1:{free_udp_port()}"
    cp = compare(capture.db, "--all", "--no-system",
                 "--resolver", r1.addr, "--resolver", r2.addr,
                 "--resolver", dead, "--timeout", "1", "--attempts", "1",
                 "--json")
    assert cp.returncode == 0, cp.stderr
    A, B = r1.addr, r2.addr
    assert stored(capture.db, 1) == [
        ("a.test", A, "A", "203.0.113.10", 300, "ok"),
        ("a.test", A, "AAAA", "2001:db8::10", 300, "ok"),
        ("a.test", B, "A", "203.0.113.20", 120, "ok"),
        ("a.test", B, "AAAA", None, None, "nodata"),
        ("a.test", dead, "A", None, None, "timeout"),
        ("a.test", dead, "AAAA", None, None, "timeout"),
        ("a.test", "app-dns", "A", "101.32.1.1", 600, "ok"),
        ("b.test", A, "A", "198.51.100.5", 60, "ok"),
        ("b.test", A, "AAAA", None, None, "nodata"),
        ("b.test", B, "A", "198.51.100.5", 60, "ok"),
        ("b.test", B, "AAAA", None, None, "nodata"),
        ("b.test", dead, "A", None, None, "timeout"),
        ("b.test", dead, "AAAA", None, None, "timeout"),
        ("b.test", "app-dns", "A", "198.51.100.5", 900, "ok"),
        ("b.test", "proxy-dns", "A", "198.51.100.5", 60, "ok"),
        ("c.test", A, "A", None, None, "nxdomain"),
        ("c.test", A, "AAAA", None, None, "nxdomain"),
        ("c.test", B, "A", "192.0.2.7", 30, "ok"),
        ("c.test", B, "AAAA", None, None, "nodata"),
        ("c.test", dead, "A", None, None, "timeout"),
        ("c.test", dead, "AAAA", None, None, "timeout"),
    ]
    c = sqlite3.connect(str(capture.db), timeout=10)
    t_app = c.execute("SELECT t_us FROM resolver_answers WHERE resolver ="
                      " 'app-dns' AND domain = 'a.test'").fetchone()[0]
    c.close()
    assert t_app == T_APP  # when the capture saw it, not when read

    out = json.loads(cp.stdout)
    assert out["run"] == 1
    doms = {d["domain"]: d for d in out["domains"]}
    assert sorted(doms) == ["a.test", "b.test", "c.test"]
    assert doms["a.test"]["compare"] == (
        f"differ: addresses; missing: {B} AAAA nodata, {dead} timeout")
    assert doms["a.test"]["flags"] == ["addresses", "missing"]
    assert doms["b.test"]["compare"] == f"missing: {dead} timeout"
    assert doms["b.test"]["flags"] == ["missing"]
    assert doms["c.test"]["compare"] == (
        f"missing: {A} nxdomain, {dead} timeout")
    assert all(d["differ"] for d in out["domains"])
    first = doms["a.test"]["answers"][0]
    assert first["resolver"] == A and first["ip"] == "203.0.113.10"
    assert first["ttl"] == 300 and first["scope"] == "documentation"
    assert first["country"] is None
    assert out["summary"] == {"domains": 3, "differ": 3, "addresses": 1,
                              "countries": 0, "missing": 3,
                              "no_answers": 0, "answers": 21}


def test_text_only_differ_and_reprint(resolvers, capture):
    r1, r2 = resolvers
    args = ["--domain", "b.test", "--domain", "A.test.", "--no-system",
            "--resolver", r1.addr, "--resolver", r2.addr]
    cp = compare(capture.db, *args)
    assert cp.returncode == 0, cp.stderr
    lines = cp.stdout.splitlines()
    assert lines[0].split() == ["DOMAIN", "RESOLVER", "TYPE", "ADDRESS",
                                "TTL", "COUNTRY", "ASN", "ORG", "STATUS",
                                "COMPARE"]
    assert lines[1].split()[:6] == ["a.test", r1.addr, "A", "203.0.113.10",
                                    "300", "documentation"]
    assert lines[1].endswith(
        f"differ: addresses; missing: {r2.addr} AAAA nodata")
    b_first = [ln for ln in lines if ln.startswith("b.test")]
    assert len(b_first) == 1 and b_first[0].endswith("same")
    assert "1 of 2 domains differ (addresses 1, countries 0, missing 1):" \
        in cp.stdout
    assert f"  a.test  differ: addresses; missing: {r2.addr} AAAA nodata" \
        in lines
    assert "Run 1 in " in cp.stdout

    # printed again from the database, without a query: the same text
    again = compare(capture.db, "--show", "1")
    assert again.returncode == 0 and again.stdout == cp.stdout
    last = compare(capture.db, "--last")
    assert last.returncode == 0 and last.stdout == cp.stdout

    only = compare(capture.db, "--last", "--only-differ")
    assert only.returncode == 0
    assert "a.test" in only.stdout
    assert not [ln for ln in only.stdout.splitlines()
                if ln.startswith("b.test")]

    csv = compare(capture.db, "--show", "1", "--csv")
    assert csv.returncode == 0
    rows = csv.stdout.splitlines()  # CRLF, read as text
    assert rows[0] == ("domain,resolver,type,address,ttl,country,asn,org,"
                       "status,compare,scope")
    assert rows[1] == (f"a.test,{r1.addr},A,203.0.113.10,300,,,,ok,"
                       f"differ: addresses; missing: {r2.addr} AAAA "
                       "nodata,documentation")

    # a second run gets the next number
    cp2 = compare(capture.db, "--domain", "b.test", "--no-system",
                  "--resolver", r1.addr)
    assert cp2.returncode == 0
    assert "Run 2 in " in cp2.stdout
    assert [r[:2] for r in stored(capture.db, 2)] == [
        ("b.test", r1.addr), ("b.test", r1.addr), ("b.test", "app-dns"),
        ("b.test", "proxy-dns")]


def test_filter_names(resolvers, capture):
    r1, r2 = resolvers
    cp = compare(capture.db, "--filter", "~m GET", "--no-system",
                 "--resolver", r2.addr, "--json")
    assert cp.returncode == 0, cp.stderr
    # the request to a bare address is left out
    assert stored(capture.db, 1) == [
        ("c.test", r2.addr, "A", "192.0.2.7", 30, "ok"),
        ("c.test", r2.addr, "AAAA", None, None, "nodata")]
    assert json.loads(cp.stdout)["domains"][0]["compare"] == "same"


def test_countries(resolvers, capture):
    """Where the geo data is built, the countries of the answers are shown
    and compared (114.114.114.114 and 8.8.8.8 are in different ones)."""
    r1, r2 = resolvers
    cp = compare(capture.db, "--domain", "pub.test", "--no-system",
                 "--resolver", r1.addr, "--resolver", r2.addr, "--json")
    assert cp.returncode == 0, cp.stderr
    if "countries unknown" in cp.stderr:
        pytest.skip("no geo data in this build: " + cp.stderr.strip())
    dom = json.loads(cp.stdout)["domains"][0]
    got = [a for a in dom["answers"] if a["ip"] is not None]
    cc = [a["country"] for a in got]
    assert [a["ip"] for a in got] == ["114.114.114.114", "8.8.8.8"]
    assert all(cc) and cc[0] != cc[1]
    assert all(a["asn"] for a in got)
    assert dom["flags"] == ["addresses", "countries"]
    assert dom["compare"] == f"differ: addresses, countries {cc[0]} vs {cc[1]}"
    text = compare(capture.db, "--last")
    assert f"countries {cc[0]} vs {cc[1]}" in text.stdout
    assert "AS%d" % got[0]["asn"] in text.stdout


def test_unreachable_resolver_given_up(capture):
    """A resolver that never answers costs RC_GIVE_UP (16) timeouts, not
    one per query: the rest are recorded as not asked."""
    dead = f"127.0.0.1:{free_udp_port()}"
    names = []
    for i in range(20):
        names += ["--domain", f"n{i}.test"]
    cp = compare(capture.db, *names, "--no-system", "--resolver", dead,
                 "--timeout", "1", "--attempts", "1", "--concurrency", "16")
    assert cp.returncode == 0, cp.stderr
    statuses = [r[5] for r in stored(capture.db, 1)]
    assert len(statuses) == 40
    assert set(statuses) == {"timeout", "error: not asked (unreachable)"}
    assert statuses.count("timeout") >= 16
    assert all(r[3] is None and r[4] is None for r in stored(capture.db, 1))
    # nobody answered: no disagreement
    assert "No disagreement among 20 domains; 20 without any address." \
        in cp.stdout


def test_failed_store_leaves_no_run(resolvers, capture):
    """Regression: a run whose storing failed part way kept the batches
    committed before the failure, and `--last` then read them as a whole
    run ("No disagreement among 64 domains"). 300 names cross a chunk
    (256 names resolved and stored together); a trigger fails the insert
    of the 271st, after four batches of the first chunk were committed.
    The run's rows are deleted and the error said; without the trigger
    the same run is stored whole."""
    r1, _ = resolvers
    names = []
    for i in range(300):
        names += ["--domain", f"n{i:03d}.test"]
    c = sqlite3.connect(str(capture.db), timeout=10)
    with c:
        c.execute("CREATE TRIGGER inject BEFORE INSERT ON resolver_answers"
                  " WHEN NEW.domain = 'n270.test'"
                  " BEGIN SELECT RAISE(ABORT, 'injected'); END")
    c.close()
    cp = compare(capture.db, *names, "--no-system", "--resolver", r1.addr)
    assert cp.returncode == 1
    assert "injected" in cp.stderr
    assert "run 1 was not stored whole: its rows are deleted" in cp.stderr
    c = sqlite3.connect(str(capture.db), timeout=10)
    assert c.execute("SELECT count(*) FROM resolver_answers") \
        .fetchone()[0] == 0
    with c:
        c.execute("DROP TRIGGER inject")
    c.close()
    cp = compare(capture.db, "--last")
    assert cp.returncode == 1 and "no run stored yet" in cp.stderr
    cp = compare(capture.db, *names, "--no-system", "--resolver", r1.addr)
    assert cp.returncode == 0, cp.stderr
    rows = stored(capture.db, 1)
    assert len(rows) == 600
    assert {r[5] for r in rows} == {"nxdomain"}
    assert sorted({r[0] for r in rows}) == \
        [f"n{i:03d}.test" for i in range(300)]


def test_bad_flags(capture, tmp_path):
    db = capture.db
    for args in ([],
                 ["--domain", "192.0.2.1"],
                 ["--domain", "a..test"],
                 ["--domain", "a.test", "--resolver", "dns.example"],
                 ["--domain", "a.test", "--resolver", "1.2.3.4:70000"],
                 ["--domain", "a.test", "--concurrency", "0"],
                 ["--domain", "a.test", "--timeout", "0"],
                 ["--domain", "a.test", "--attempts", "9"],
                 ["--domain", "a.test", "--json", "--csv"],
                 ["--domain", "a.test", "--no-system"],
                 ["--show", "1", "--domain", "a.test"],
                 ["--show", "x"],
                 ["--domain", "a.test", "stray"],
                 ["--domain"],
                 ["--bogus"],
                 ["--filter", "~zz(", "--no-system", "--resolver",
                  "127.0.0.1"]):
        cp = compare(db, *args)
        assert cp.returncode == 2, (args, cp.stderr)
        assert cp.stderr.startswith("peephole resolve-compare: "), args
        assert cp.stdout == ""
    cp = compare(db, "--show", "7")
    assert cp.returncode == 1 and "no run 7" in cp.stderr
    cp = compare(db, "--last")
    assert cp.returncode == 1 and "no run stored yet" in cp.stderr
    cp = compare(tmp_path / "none.db", "--domain", "a.test")
    assert cp.returncode == 1 and "no database" in cp.stderr
    cp = run_cli("resolve-compare", "--help")
    assert cp.returncode == 0 and "--resolver" in cp.stdout
