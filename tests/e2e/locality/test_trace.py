"""
`peephole trace` for real: a chain of network namespaces this test makes,

    client --- router1 --- router2 --- server
     .1.2   .1.1   .2.1   .2.2   .3.1   .3.2      (10.214.x.0/24, fd00:214:x::/64)

with forwarding on in the routers and a TCP listener in the server's
namespace. The trace runs inside the client's namespace, so every probe
and every ICMP error stays on the veth pairs made here (created straight
into the namespaces: nothing is added to the host's). The hop addresses
must come in order, the server answer syn-ack on the open port and rst
on a closed one, and the rows land in the database of a proxy that is
running and writing the same file. Without CAP_NET_RAW the command says
so. Needs root and ip(8); skipped, saying why, where namespaces cannot be
made.
"""
import json
import os
import re
import shutil
import sqlite3
import subprocess
import threading

import pytest

from conftest import PEEPHOLE_BIN, SANITIZER_MARKS, run_cli, token, wait_for

IP = shutil.which("ip") or "/usr/sbin/ip"
IPT = shutil.which("iptables") or "/usr/sbin/iptables"
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
CAPSH = shutil.which("capsh") or "/usr/sbin/capsh"
PY = "/usr/bin/python3"

CAP_MSG = ("peephole trace: needs CAP_NET_RAW (run as root or "
           "`setcap cap_net_raw+ep peephole`)")

R1, R2, SRV = "10.214.1.1", "10.214.2.2", "10.214.3.2"
R1_6, R2_6, SRV_6 = "fd00:214:1::1", "fd00:214:2::2", "fd00:214:3::2"

# A listener that says when it listens, then accepts and closes forever.
SERVER = r"""
import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(64)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.close()
"""


def _sh(*argv, check=True):
    cp = subprocess.run([str(a) for a in argv], capture_output=True,
                        text=True, timeout=20)
    if check and cp.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))}: {cp.stderr}")
    return cp


class Chain:
    """Four namespaces in a row; names unique to this run."""

    def __init__(self):
        t = token()[:6]
        self.client, self.r1, self.r2, self.server = (
            f"ptc{t}", f"ptr1{t}", f"ptr2{t}", f"pts{t}")
        self.lonely = f"ptn{t}"  # loopback only: no route anywhere
        self.all = [self.client, self.r1, self.r2, self.server, self.lonely]
        self.made = []
        self.procs = []
        self.v6 = False
        self.reject = False

    def ex(self, ns, *argv, check=True):
        return _sh(IP, "netns", "exec", ns, *argv, check=check)

    def link(self, a, a_if, b, b_if):
        _sh(IP, "link", "add", a_if, "netns", a, "type", "veth", "peer",
            "name", b_if, "netns", b)
        for ns, ifn in ((a, a_if), (b, b_if)):
            _sh(IP, "-n", ns, "link", "set", ifn, "up")

    def addr(self, ns, ifn, v4, v6):
        _sh(IP, "-n", ns, "addr", "add", v4, "dev", ifn)
        if _sh(IP, "-n", ns, "-6", "addr", "add", v6, "dev", ifn, "nodad",
               check=False).returncode != 0:
            self.v6 = False

    def route(self, ns, dst, via):
        _sh(IP, "-n", ns, "route", "add", dst, "via", via)

    def up(self):
        for ns in self.all:
            _sh(IP, "netns", "add", ns)
            self.made.append(ns)
            _sh(IP, "-n", ns, "link", "set", "lo", "up")
        self.link(self.client, "c0", self.r1, "r1a")
        self.link(self.r1, "r1b", self.r2, "r2a")
        self.link(self.r2, "r2b", self.server, "s0")
        self.v6 = True
        self.addr(self.client, "c0", "10.214.1.2/24", "fd00:214:1::2/64")
        self.addr(self.r1, "r1a", "10.214.1.1/24", "fd00:214:1::1/64")
        self.addr(self.r1, "r1b", "10.214.2.1/24", "fd00:214:2::1/64")
        self.addr(self.r2, "r2a", "10.214.2.2/24", "fd00:214:2::2/64")
        self.addr(self.r2, "r2b", "10.214.3.1/24", "fd00:214:3::1/64")
        self.addr(self.server, "s0", "10.214.3.2/24", "fd00:214:3::2/64")
        self.route(self.client, "default", R1)
        self.route(self.r1, "10.214.3.0/24", R2)
        self.route(self.r1, "10.214.8.0/23", R2)
        self.route(self.r2, "10.214.1.0/24", "10.214.2.1")
        self.route(self.server, "default", "10.214.3.1")
        # what the traces to the unreachable and the silent nets meet:
        # router2 rejects the first (with an ICMP error under the ICMP
        # rate limit set below, unlike an unreachable route's, which the
        # kernel limits host-wide) and drops the second in silence
        _sh(IP, "-n", self.r2, "route", "add", "10.214.8.0/24", "dev", "r2b")
        _sh(IP, "-n", self.r2, "route", "add", "blackhole", "10.214.9.0/24")
        self.reject = os.path.exists(IPT) and self.ex(
            self.r2, IPT, "-A", "FORWARD", "-d", "10.214.8.0/24", "-j",
            "REJECT", "--reject-with", "icmp-host-unreachable",
            check=False).returncode == 0
        if self.v6:
            self.route(self.client, "default", R1_6)
            self.route(self.r1, "fd00:214:3::/64", R2_6)
            self.route(self.r2, "fd00:214:1::/64", "fd00:214:2::1")
            self.route(self.server, "default", "fd00:214:3::1")
        for r in (self.r1, self.r2):
            self.ex(r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            # routers answer every probe: no ICMP rate limit to race
            self.ex(r, "sysctl", "-qw", "net.ipv4.icmp_ratelimit=0")
            if self.v6:
                self.ex(r, "sysctl", "-qw",
                        "net.ipv6.conf.all.forwarding=1")
                self.ex(r, "sysctl", "-qw", "net.ipv6.icmp.ratelimit=0",
                        check=False)

    def listen(self, addr, port):
        p = subprocess.Popen([IP, "netns", "exec", self.server, PY, "-c",
                              SERVER, addr, str(port)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        self.procs.append(p)
        line = p.stdout.readline()  # bounded: the process exits on error
        if line.strip() != "ready":
            raise RuntimeError(f"listener on {addr}:{port}: "
                               f"{p.stderr.read()[:500]}")

    def trace(self, *args, timeout=60, ns=None):
        """peephole trace ARGS in the client's namespace (or ns)."""
        return subprocess.run(
            [IP, "netns", "exec", ns or self.client, PEEPHOLE_BIN, "trace"] +
            [str(a) for a in args], capture_output=True, text=True,
            timeout=timeout, stdin=subprocess.DEVNULL)

    def down(self):
        for p in self.procs:
            p.kill()
            p.wait(timeout=10)
        for ns in self.made:
            _sh(IP, "netns", "del", ns, check=False)


PORT, CLOSED = 8080, 8081


@pytest.fixture(scope="module")
def chain():
    if os.geteuid() != 0:
        pytest.skip("trace tests need root to make network namespaces")
    if not os.path.exists(IP):
        pytest.skip(f"{IP} is not installed")
    c = Chain()
    try:
        c.up()
        c.listen(SRV, PORT)
        if c.v6:
            c.listen(SRV_6, PORT)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
        c.down()
        pytest.skip(f"cannot build the namespace chain: {e}")
    yield c
    c.down()


@pytest.fixture
def running(start_proxy):
    """A proxy that runs the whole test, writing its database."""
    return start_proxy()


@pytest.fixture
def db(running):
    return running.db


def clean(cp):
    for m in SANITIZER_MARKS:
        assert m not in cp.stderr, cp.stderr


def hop_lines(out):
    """{ttl: line} of the hop lines traceroute-style output printed."""
    return {int(m.group(1)): m.group(0)
            for m in re.finditer(r"(?m)^ ?(\d+)  .*$", out)}


def first_addr(line):
    return line.split()[1]


def trace_id(out):
    m = re.search(r"(?m)^trace (\d+): ", out)
    assert m, out
    return int(m.group(1))


def rows(db, sql, *args):
    con = sqlite3.connect(db, timeout=10)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql, args)]
    finally:
        con.close()


def test_trace_reaches_open_port(chain, running, origin):
    db = running.db
    # the proxy writes the same file all along: requests through it while
    # the trace stores its rows
    stop, codes = threading.Event(), []

    def traffic():
        while not stop.is_set() and len(codes) < 200:
            codes.append(running.curl(
                origin.url("beta.test", f"/busy-trace?t={token()}")).code)

    th = threading.Thread(target=traffic)
    th.start()
    try:
        cp = chain.trace("--ip", SRV, "--port", PORT, "--db", db)
    finally:
        stop.set()
        th.join(timeout=60)
    clean(cp)
    assert cp.returncode == 0, cp.stderr
    assert codes and set(codes) == {200}
    assert wait_for(lambda: rows(db, "SELECT id FROM requests WHERE path ="
                                 " '/busy-trace'"), timeout=10)
    assert f"trace to {SRV} port {PORT}, 30 hops max, 3 probes per hop" \
        in cp.stdout
    hops = hop_lines(cp.stdout)
    assert sorted(hops) == [1, 2, 3], cp.stdout
    assert [first_addr(hops[t]) for t in (1, 2, 3)] == [R1, R2, SRV]
    assert "[syn-ack]" in hops[3] and "[" not in hops[1] + hops[2]
    for t in (1, 2, 3):
        assert hops[t].count(" ms") == 3, hops[t]
        assert hops[t].endswith("private"), hops[t]
    tid = trace_id(cp.stdout)
    assert f"trace {tid}: reached {SRV} port {PORT} in 3 hops" in cp.stdout

    (t,) = rows(db, "SELECT * FROM traces WHERE id = ?", tid)
    assert (t["ip"], t["port"], t["method"], t["reached"], t["hops"],
            t["error"]) == (SRV, PORT, "tcp-syn", 1, 3, None)
    hr = rows(db, "SELECT ttl, probe, ip, rtt_us, kind FROM trace_hops"
              " WHERE trace_id = ? ORDER BY ttl, probe", tid)
    assert [(h["ttl"], h["probe"]) for h in hr] == [
        (ttl, p) for ttl in (1, 2, 3) for p in (1, 2, 3)]
    assert [h["ip"] for h in hr] == [R1] * 3 + [R2] * 3 + [SRV] * 3
    assert [h["kind"] for h in hr] == ["time-exceeded"] * 6 + ["syn-ack"] * 3
    assert all(h["rtt_us"] is not None and h["rtt_us"] >= 0 for h in hr)

    # stored, it prints the same hops again
    sh = run_cli("show", "trace", tid, "--db", db)
    clean(sh)
    assert sh.returncode == 0, sh.stderr
    assert sh.stdout.startswith(f"trace {tid}  ")
    assert hop_lines(sh.stdout) == hops
    assert f"reached {SRV} port {PORT} in 3 hops" in sh.stdout
    js = run_cli("show", "trace", tid, "--json", "--db", db)
    assert js.returncode == 0, js.stderr
    obj = json.loads(js.stdout)
    assert obj["id"] == tid and obj["reached"] is True and obj["hops"] == 3
    assert [h["ttl"] for h in obj["path"]] == [1, 2, 3]
    assert [[p["ip"] for p in h["probes"]] for h in obj["path"]] == [
        [R1] * 3, [R2] * 3, [SRV] * 3]
    assert obj["path"][2]["probes"][0]["kind"] == "syn-ack"
    assert obj["path"][0]["probes"][0]["scope"] == "private"
    lst = run_cli("trace", "--list", "--db", db)
    assert lst.returncode == 0, lst.stderr
    assert re.search(rf"(?m)^\s*{tid}\s.*{re.escape(SRV)}:{PORT}\s.*yes",
                     lst.stdout), lst.stdout
    missing = run_cli("show", "trace", tid + 1000, "--db", db)
    assert missing.returncode == 1
    assert "no trace with id" in missing.stderr


def test_trace_closed_port_rst_json(chain, db):
    cp = chain.trace("--ip", SRV, "--port", CLOSED, "--probes", 2, "--json",
                     "--db", db)
    clean(cp)
    assert cp.returncode == 0, cp.stderr
    (obj,) = json.loads(cp.stdout)
    assert (obj["ip"], obj["port"], obj["reached"], obj["hops"]) == (
        SRV, CLOSED, True, 3)
    assert [[(p["ip"], p["kind"]) for p in h["probes"]]
            for h in obj["path"]] == [
        [(R1, "time-exceeded")] * 2, [(R2, "time-exceeded")] * 2,
        [(SRV, "rst")] * 2]
    (t,) = rows(db, "SELECT reached, hops FROM traces WHERE id = ?",
                obj["id"])
    assert (t["reached"], t["hops"]) == (1, 3)


def test_trace_unreachable(chain, db):
    if not chain.reject:
        pytest.skip("no iptables REJECT in the router's namespace")
    # router2 will not forward: a probe that gets past it (TTL 3) is
    # rejected, and its unreachable ends the trace there
    cp = chain.trace("--ip", "10.214.8.5", "--port", 80, "--probes", 1,
                     "--db", db)
    clean(cp)
    assert cp.returncode == 0, cp.stderr
    hops = hop_lines(cp.stdout)
    assert sorted(hops) == [1, 2, 3], cp.stdout
    assert [first_addr(hops[t]) for t in (1, 2, 3)] == [R1, R2, R2]
    assert "[unreachable]" in hops[3] and "[" not in hops[2]
    assert "10.214.8.5 port 80 unreachable (hop 3 said so)" in cp.stdout
    tid = trace_id(cp.stdout)
    (t,) = rows(db, "SELECT reached, hops FROM traces WHERE id = ?", tid)
    assert (t["reached"], t["hops"]) == (0, 3)
    kinds = rows(db, "SELECT kind FROM trace_hops WHERE trace_id = ?"
                 " ORDER BY ttl", tid)
    assert [k["kind"] for k in kinds] == ["time-exceeded"] * 2 + [
        "unreachable"]


def test_trace_silent(chain, db):
    # router2 drops in silence (a blackhole route: before the TTL is
    # checked, so it says nothing even at hop 2): timeouts to --max-hops
    cp = chain.trace("--ip", "10.214.9.5", "--port", 80, "--probes", 1,
                     "--max-hops", 4, "--timeout", 300, "--db", db)
    clean(cp)
    assert cp.returncode == 0, cp.stderr
    hops = hop_lines(cp.stdout)
    assert [first_addr(hops[t]) for t in (1, 2, 3, 4)] == [R1, "*", "*", "*"]
    assert "not reached in 4 hops" in cp.stdout
    tid = trace_id(cp.stdout)
    kinds = rows(db, "SELECT ttl, ip, kind FROM trace_hops"
                 " WHERE trace_id = ? ORDER BY ttl", tid)
    assert [(k["ttl"], k["ip"], k["kind"]) for k in kinds] == [
        (1, R1, "time-exceeded"), (2, None, "timeout"),
        (3, None, "timeout"), (4, None, "timeout")]


def test_trace_ipv6(chain, db):
    if not chain.v6:
        pytest.skip("no IPv6 in these namespaces")
    cp = chain.trace("--ip", SRV_6, "--port", PORT, "--db", db)
    clean(cp)
    assert cp.returncode == 0, cp.stderr
    hops = hop_lines(cp.stdout)
    assert [first_addr(hops[t]) for t in sorted(hops)] == [R1_6, R2_6,
                                                           SRV_6]
    assert "[syn-ack]" in hops[3]
    cp = chain.trace("--ip", SRV_6, "--port", CLOSED, "--probes", 1,
                     "--db", db)
    assert cp.returncode == 0, cp.stderr
    assert "[rst]" in hop_lines(cp.stdout)[3]


def test_trace_no_route_is_an_error(chain, db):
    cp = chain.trace("--ip", SRV, "--port", PORT, "--json", "--db", db,
                     ns=chain.lonely)
    clean(cp)
    assert cp.returncode == 1
    assert f"{SRV} port {PORT}: connect to {SRV}: Network is unreachable" \
        in cp.stderr
    (obj,) = json.loads(cp.stdout)  # stored all the same, with the error
    assert obj["reached"] is False
    assert obj["error"] == f"connect to {SRV}: Network is unreachable"
    assert obj["path"] == [{"ttl": 1, "probes": []}]  # none was sent
    (t,) = rows(db, "SELECT error FROM traces WHERE id = ?", obj["id"])
    assert t["error"] == obj["error"]
    assert rows(db, "SELECT * FROM trace_hops WHERE trace_id = ?",
                obj["id"]) == []
    sh = run_cli("show", "trace", obj["id"], "--db", db)
    assert sh.returncode == 0, sh.stderr
    assert hop_lines(sh.stdout) == {}
    assert f"error: connect to {SRV}: Network is unreachable" in sh.stdout


def add_conns(db, conns):
    con = sqlite3.connect(db, timeout=10)
    with con:
        con.executemany(
            "INSERT INTO connections (id, target_host, target_port,"
            " server_ip, server_port, protocol) VALUES (?, ?, ?, ?, ?, 'tcp')",
            conns)
    con.close()


def test_trace_domain_and_all(chain, db):
    add_conns(db, [(900001, "srv.trace.test", PORT, SRV, PORT),
                   (900002, "closed.trace.test", CLOSED, SRV, CLOSED),
                   (900003, "localhost", 80, "127.0.0.1", 80)])
    # a private endpoint is traced only when asked for
    cp = chain.trace("--domain", "srv.trace.test", "--db", db)
    assert cp.returncode == 1
    assert "--private takes private addresses too" in cp.stderr
    cp = chain.trace("--domain", "SRV.trace.test", "--private",
                     "--probes", 1, "--db", db)
    clean(cp)
    assert cp.returncode == 0, cp.stderr
    assert f"trace to {SRV} port {PORT} (srv.trace.test)" in cp.stdout
    (t,) = rows(db, "SELECT ip, port, domain, reached FROM traces"
                " WHERE id = ?", trace_id(cp.stdout))
    assert t == {"ip": SRV, "port": PORT, "domain": "srv.trace.test",
                 "reached": 1}
    # --all: both endpoints of the server, never loopback; capped
    cp = chain.trace("--all", "--private", "--probes", 1, "--json",
                     "--db", db)
    clean(cp)
    assert cp.returncode == 0, cp.stderr
    got = [(o["ip"], o["port"], o["domain"]) for o in json.loads(cp.stdout)]
    assert got == [(SRV, PORT, "srv.trace.test"),
                   (SRV, CLOSED, "closed.trace.test")]
    cp = chain.trace("--all", "--private", "--probes", 1,
                     "--max-endpoints", 1, "--db", db)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.count("trace to ") == 1
    assert "1 more left out (--max-endpoints)" in cp.stderr
    # --ip without --port: the ports the capture saw for it
    cp = chain.trace("--ip", SRV, "--probes", 1, "--json", "--db", db)
    assert cp.returncode == 0, cp.stderr
    assert [o["port"] for o in json.loads(cp.stdout)] == [PORT, CLOSED]


def test_trace_without_cap_net_raw(tmp_path):
    """No raw socket, no trace: the plain message, exit 1. Nothing is
    sent (the check comes first), so loopback is target enough."""
    argv = [PEEPHOLE_BIN, "trace", "--ip", "127.0.0.1", "--port", "9",
            "--db", str(tmp_path / "none.db")]
    runs = []  # (argv, may the binary be out of this user's reach)
    if os.geteuid() == 0:
        if os.path.exists(SETPRIV):
            # root without the capability, then nobody without any
            runs.append(([SETPRIV, "--bounding-set=-net_raw",
                          "--inh-caps=-all"] + argv, False))
            runs.append(([SETPRIV, "--reuid=nobody", "--regid=nogroup",
                          "--clear-groups", "--inh-caps=-all"] + argv,
                         True))
        if os.path.exists(CAPSH):
            runs.append(([CAPSH, "--drop=cap_net_raw", "--", "-c",
                          " ".join(f"'{a}'" for a in argv)], False))
        if not runs:
            pytest.skip("neither setpriv nor capsh to drop CAP_NET_RAW")
    else:
        runs.append((argv, False))
    checked = 0
    for r, foreign in runs:
        cp = subprocess.run(r, capture_output=True, text=True, timeout=30,
                            stdin=subprocess.DEVNULL)
        if foreign and CAP_MSG not in cp.stderr and \
                "Permission denied" in cp.stderr:
            continue  # nobody cannot reach the build tree: not our case
        assert cp.returncode == 1, (r, cp.stdout, cp.stderr)
        assert cp.stderr.strip() == CAP_MSG, (r, cp.stderr)
        checked += 1
    assert checked >= 1


@pytest.mark.parametrize("args, msg", [
    ([], "say what to trace"),
    (["--ip", "10.0.0.1", "--all"], "exclude each other"),
    (["--ip", "nope"], "not an IP address"),
    (["--port", "80", "--all"], "--port goes with --ip"),
    (["--ip", "10.0.0.1", "--max-hops", "0"], "max-hops"),
    (["--ip", "10.0.0.1", "--probes", "9"], "probes"),
    (["--ip", "10.0.0.1", "--csv"], "unknown option '--csv'"),
    (["--ip", "10.0.0.1", "extra"], "extra"),
])
def test_trace_bad_flags(args, msg):
    cp = run_cli("trace", *args)
    assert cp.returncode == 2, cp.stderr
    assert msg in cp.stderr
