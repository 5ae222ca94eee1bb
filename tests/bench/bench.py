#!/usr/bin/python3
"""Benchmark peephole against nginx on loopback with wrk and tlsload.

Run as `make bench`, i.e.

    /usr/bin/python3 tests/bench/bench.py --peephole /abs/path/build/peephole
    (add --only http or --only https for half of it)

It starts nginx (serving /small, 100 bytes, and /big, 1 MiB, over plain
HTTP and over TLS) and, per row, a fresh peephole.

Plain HTTP: wrk (keep-alive, 50 connections, 1 thread) at nginx directly
and through the proxy with flow recording on and off.

HTTPS: tlsload.c (next to this file, compiled here with cc; wrk cannot send
CONNECT) at nginx's TLS port directly and through the proxy (CONNECT, then
TLS to the proxy's forged certificate, recording on): keep-alive /small and
/big, a new TCP + CONNECT + full TLS handshake per request (forged-
certificate cache warm), and the first-contact cost of a new host name
(forged-certificate cache miss) against a repeated one. The origin's
certificate comes from a throw-away ECDSA P-256 CA made with the openssl
CLI; the proxy gets it as --upstream-ca and a fresh --home (its own CA,
which is the only CA tlsload trusts through the proxy).

It prints one Markdown table, ready to paste into the README.

This is a benchmark, not a test: it exits 0 whatever the numbers are, and
non-zero only when something could not be measured (a server did not
start, wrk failed, a sanity request did not come back), saying what.

Everything runs on loopback on ports picked by binding port 0. Every child
is started here in its own session and killed by its process group (its
own PID) in a finally block; every wait is bounded. The proxy is pinned to
one CPU and nginx + wrk to another when there are at least two.

Stdlib only, for Debian's /usr/bin/python3.
"""

import argparse
import http.client
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

NGINX = "/usr/sbin/nginx"
WRK = "/usr/bin/wrk"
TASKSET = "/usr/bin/taskset"
OPENSSL = "/usr/bin/openssl"
CC = "/usr/bin/cc"
HOST = "bench.test"
# First-contact names: h1.bench.test ... hN.bench.test, covered by the
# origin certificate's *.bench.test and mapped in the proxy's hosts file.
FIRST_CONTACT_NAME = "h%d.bench.test"
# Used once per HTTPS proxy, by a client that trusts only the origin CA and
# must therefore be refused: the proxy may then learn it as a pinned host
# (auto-passthrough), so it is not a name any measured row uses.
NEG_HOST = "neg.bench.test"
TLSLOAD_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "tlsload.c")
SIZES = {"small": 100, "big": 1 << 20}
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Unmeasurable(Exception):
    """Something the benchmark needs did not work; the message says what."""


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def free_port():
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout, what, logpath):
    """Poll until PORT accepts TCP; fail if PROC exits or TIMEOUT passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Unmeasurable("%s exited with status %s before listening\n%s"
                               % (what, proc.returncode, tail(logpath)))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise Unmeasurable("%s did not accept on port %d within %ds\n%s"
                       % (what, port, timeout, tail(logpath)))


def tail(path, n=20):
    try:
        with open(path, "r", errors="replace") as f:
            lines = f.readlines()[-n:]
    except OSError:
        return "(no log)"
    return "".join("    | " + line for line in lines).rstrip()


def pinned(cpu, argv):
    """ARGV under `taskset -c CPU` (taskset execs, so the PID is the
    program's), or ARGV alone when not pinning."""
    if cpu is None:
        return argv
    return [TASKSET, "-c", str(cpu)] + argv


def spawn(argv, logpath):
    """Start ARGV in its own session (so its process group id is its PID)
    with stdout and stderr to LOGPATH."""
    with open(logpath, "ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop(proc, sig=signal.SIGTERM, timeout=10):
    """Signal PROC's process group (its own PID: see spawn) and wait, with
    SIGKILL after TIMEOUT. Returns the exit status, or None if unknown."""
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log("pid %d ignored signal %d for %ds, killing"
                % (proc.pid, sig, timeout))
    # Whatever is left in the group (nginx's worker) goes too.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return None
    return proc.returncode


def cpu_ticks(pid):
    """utime + stime of PID (all its threads), in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    # The command name may hold spaces; fields restart after its ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def settle_cpu(pid, timeout=3.0):
    """Wait (bounded) until PID stops using CPU, so work queued during a
    run (the flow writer) is counted in it, and return its CPU ticks."""
    deadline = time.monotonic() + timeout
    prev = cpu_ticks(pid)
    while time.monotonic() < deadline:
        time.sleep(0.2)
        cur = cpu_ticks(pid)
        if cur == prev:
            return cur
        prev = cur
    return prev


def peak_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def busy_percent(interval=1.0):
    """How busy all CPUs are (0-100) over INTERVAL, from /proc/stat: other
    load on the machine makes every number below unreliable."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v), idle
    try:
        t0, i0 = sample()
        time.sleep(interval)
        t1, i1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    if t1 == t0:
        return None
    return 100.0 * (1 - (i1 - i0) / (t1 - t0))


def machine_line():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "nproc %d, %s, Linux %s" % (os.cpu_count() or 0, model,
                                       platform.release())


# --- nginx ---------------------------------------------------------------

def make_origin_certs(tmp):
    """A throw-away origin CA and a server certificate for bench.test,
    *.bench.test and 127.0.0.1 signed by it, ECDSA P-256, with the openssl
    CLI. Returns (ca.pem, server cert, server key) paths."""
    d = os.path.join(tmp, "origin-pki")
    os.makedirs(d)
    ca_key, ca_pem = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
    key, csr = os.path.join(d, "server.key"), os.path.join(d, "server.csr")
    crt, ext = os.path.join(d, "server.pem"), os.path.join(d, "server.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints = critical, CA:FALSE\n"
                "keyUsage = critical, digitalSignature\n"
                "extendedKeyUsage = serverAuth\n"
                "subjectAltName = DNS:%s, DNS:*.%s, IP:127.0.0.1\n"
                % (HOST, HOST))
    steps = [
        ["genpkey", "-algorithm", "EC", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-out", ca_key],
        ["req", "-x509", "-new", "-key", ca_key, "-sha256", "-days", "2",
         "-subj", "/CN=peephole bench origin CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign",
         "-out", ca_pem],
        ["genpkey", "-algorithm", "EC", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-out", key],
        ["req", "-new", "-key", key, "-subj", "/CN=%s" % HOST, "-out", csr],
        ["x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key,
         "-set_serial", "1", "-sha256", "-days", "2", "-extfile", ext,
         "-out", crt],
    ]
    for step in steps:
        try:
            p = subprocess.run([OPENSSL] + step, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            raise Unmeasurable("openssl %s did not finish in 30s" % step[0])
        if p.returncode != 0:
            raise Unmeasurable("openssl %s failed (status %d):\n%s"
                               % (" ".join(step), p.returncode, p.stderr))
    return ca_pem, crt, key


def build_tlsload(tmp):
    """Compile tests/bench/tlsload.c into TMP; returns the binary's path."""
    out = os.path.join(tmp, "tlsload")
    argv = [CC, "-O2", "-o", out, TLSLOAD_SRC, "-lssl", "-lcrypto",
            "-lpthread"]
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise Unmeasurable("compiling tlsload did not finish in 120s")
    if p.returncode != 0:
        raise Unmeasurable("%s failed (status %d):\n%s"
                           % (" ".join(argv), p.returncode, p.stderr))
    return out


def start_nginx(tmp, cpu, tls=None):
    """nginx on a free port for plain HTTP and, with TLS = (cert, key), on
    a second one with TLS. Returns (proc, port, tls port or None, log)."""
    root = os.path.join(tmp, "www")
    ngx = os.path.join(tmp, "nginx")
    os.makedirs(root)
    os.makedirs(ngx)
    for name, size in SIZES.items():
        with open(os.path.join(root, name), "wb") as f:
            f.write((b"peephole-bench-" * (size // 15 + 1))[:size])
    port = free_port()
    tls_port = None
    tls_server = ""
    if tls:
        tls_port = free_port()
        # No session cache and no tickets: no client here resumes (tlsload
        # turns resumption off; the proxy's upstream side gets no chance),
        # so a full handshake per new connection either way, and nginx does
        # not spend time issuing tickets nobody uses.
        tls_server = f"""
    server {{
        listen 127.0.0.1:{tls_port} ssl;
        server_name _;
        ssl_certificate {tls[0]};
        ssl_certificate_key {tls[1]};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache off;
        ssl_session_tickets off;
        root {root};
        location / {{ }}
    }}"""
    # Running as root, workers would switch to "nobody" and be unable to
    # read the 0700 temp dir.
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = f"""{user}worker_processes 1;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 100000;
    keepalive_timeout 120s;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    client_body_temp_path {ngx}/body;
    proxy_temp_path {ngx}/proxy;
    fastcgi_temp_path {ngx}/fastcgi;
    server {{
        listen 127.0.0.1:{port};
        server_name _;
        root {root};
        location / {{ }}
    }}{tls_server}
}}
"""
    with open(os.path.join(ngx, "nginx.conf"), "w") as f:
        f.write(conf)
    logpath = os.path.join(tmp, "nginx.log")
    argv = pinned(cpu, [NGINX, "-p", ngx + "/", "-c", ngx + "/nginx.conf",
                        "-g", "daemon off; pid %s/nginx.pid; "
                        "error_log stderr;" % ngx])
    proc = spawn(argv, logpath)
    return proc, port, tls_port, logpath


# --- peephole ------------------------------------------------------------

def start_proxy(binary, tmp, cpu, record, tag, tls=None, names=0):
    """Start a fresh peephole on a free port with an empty TMP/bench.db.
    With TLS = (home dir, origin CA file) it gets --home and --upstream-ca.
    NAMES first-contact host names go into the hosts file too.
    Returns (proc, port, db path, log path)."""
    db = os.path.join(tmp, "bench.db")
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(db + suffix)
        except FileNotFoundError:
            pass
    hosts = os.path.join(tmp, "hosts")
    conf = os.path.join(tmp, "bench.conf")
    with open(hosts, "w") as f:
        f.write("127.0.0.1 %s\n" % HOST)
        f.write("127.0.0.1 %s\n" % NEG_HOST)
        for i in range(1, names + 1):
            f.write("127.0.0.1 %s\n" % (FIRST_CONTACT_NAME % i))
    # Port 9 (discard) answers nothing: a lookup that slips past the hosts
    # file fails fast instead of reaching the system resolver.
    with open(conf, "w") as f:
        f.write("dns-server 127.0.0.1:9\nhosts-file %s\n" % hosts)
    port = free_port()
    argv = [binary, "run", "--listen", "127.0.0.1:%d" % port, "--db", db,
            "--workers", "1", "--quiet", "--conf", conf]
    # Not repeated as --set flags: dns-server is a list, so a flag adds a
    # second, identical name server and start-up fails.
    if not record:
        argv += ["--set", "record-flows=no"]
    if tls:
        argv += ["--home", tls[0], "--upstream-ca", tls[1]]
    logpath = os.path.join(tmp, "peephole-%s-%s.log"
                           % (tag, "on" if record else "off"))
    proc = spawn(pinned(cpu, argv), logpath)
    return proc, port, db, logpath


def sanity_request(proxy_port, origin_port, path, size, logpath):
    """One request through the proxy by hand: a proxied row is only
    meaningful if the proxy really forwards."""
    url = "http://%s:%d/%s" % (HOST, origin_port, path)
    try:
        c = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=10)
        c.request("GET", url)
        r = c.getresponse()
        body = r.read()
        c.close()
    except (OSError, http.client.HTTPException) as e:
        raise Unmeasurable("GET %s through the proxy failed: %s\n%s"
                           % (url, e, tail(logpath)))
    if r.status != 200 or len(body) != size:
        raise Unmeasurable("GET %s through the proxy: status %d, %d bytes "
                           "(want 200, %d)\n%s" % (url, r.status, len(body),
                                                    size, tail(logpath)))


def db_request_count(db, where=""):
    """(rows, rows that are complete 200 exchanges or None) in the requests
    table (restricted by WHERE, e.g. "scheme = 'https'"), or None if there
    is no db or no such table."""
    if not os.path.exists(db):
        return None
    try:
        c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5)
    except sqlite3.Error:
        return None
    try:
        cond = (" WHERE " + where) if where else ""
        rows = c.execute("SELECT count(*) FROM requests" + cond).fetchone()[0]
        try:
            ok = c.execute("SELECT count(*) FROM requests WHERE status = 200"
                           " AND error IS NULL" + (" AND " + where
                                                   if where else "")
                           ).fetchone()[0]
        except sqlite3.Error:
            ok = None
        return rows, ok
    except sqlite3.Error:
        return None
    finally:
        c.close()


# --- wrk -----------------------------------------------------------------

# done() prints the numbers as one JSON line, so nothing depends on wrk's
# human-readable units. Latencies are in microseconds.
WRK_DONE = r"""
function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
      '"p50":%d,"p99":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(99)))
end
"""


def write_wrk_script(tmp, name, absolute_url=None, host=None):
    """A wrk Lua script; with ABSOLUTE_URL the request line carries the
    absolute-form target a client sends to an HTTP proxy (wrk has no proxy
    option, so wrk connects to the proxy's address instead)."""
    body = ""
    if absolute_url:
        body += 'wrk.path = "%s"\nwrk.headers["Host"] = "%s"\n' % (
            absolute_url, host)
    path = os.path.join(tmp, name + ".lua")
    with open(path, "w") as f:
        f.write(body + WRK_DONE)
    return path


def run_wrk(cpu, script, url, duration, conns):
    argv = pinned(cpu, [WRK, "-t1", "-c%d" % conns, "-d%ds" % duration,
                        "--timeout", "5s", "--latency", "-s", script, url])
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True,
                           timeout=duration + 30)
    except subprocess.TimeoutExpired:
        raise Unmeasurable("wrk %s did not finish within %ds"
                           % (url, duration + 30))
    for line in p.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            r = json.loads(line[len("BENCHJSON "):])
            r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
            return r
    raise Unmeasurable("wrk %s gave no result (status %d):\n%s%s"
                       % (url, p.returncode, p.stdout, p.stderr))


def errors_text(r):
    parts = []
    if r["status"]:
        parts.append("%d non-2xx/3xx" % r["status"])
    sock = [(k, r[k]) for k in ("connect", "read", "write", "timeout")
            if r[k]]
    if sock:
        parts.append("socket " + ", ".join("%s %d" % kv for kv in sock))
    return "; ".join(parts) if parts else "0"


def fmt_us(us):
    if us >= 1000:
        return "%.2f ms" % (us / 1000)
    return "%d µs" % us


# --- scenarios -----------------------------------------------------------

def measure_direct(args, tmp, cpu_load, ngx_port, size_name):
    url = "http://127.0.0.1:%d/%s" % (ngx_port, size_name)
    script = write_wrk_script(tmp, "direct")
    run_wrk(cpu_load, script, url, args.warmup, args.connections)
    r = run_wrk(cpu_load, script, url, args.duration, args.connections)
    return r


def measure_proxied(args, tmp, cpu_proxy, cpu_load, ngx_port, size_name,
                    record):
    """One proxied row on a fresh proxy (so peak RSS and the db count are
    this row's). Returns (wrk result, extras)."""
    proc = None
    try:
        proc, port, db, logpath = start_proxy(args.peephole, tmp, cpu_proxy,
                                              record, size_name)
        wait_port(port, proc, 10, "peephole", logpath)
        sanity_request(port, ngx_port, size_name, SIZES[size_name], logpath)
        target = "http://%s:%d/%s" % (HOST, ngx_port, size_name)
        script = write_wrk_script(tmp, "proxy", target,
                                  "%s:%d" % (HOST, ngx_port))
        url = "http://127.0.0.1:%d" % port
        warm = run_wrk(cpu_load, script, url, args.warmup, args.connections)
        t0 = settle_cpu(proc.pid)
        r = run_wrk(cpu_load, script, url, args.duration, args.connections)
        t1 = settle_cpu(proc.pid)
        if proc.poll() is not None:
            why = "died"
            if proc.returncode == 0:
                why = ("stopped cleanly, so something outside the benchmark "
                       "sent it SIGTERM/SIGINT,")
            raise Unmeasurable("peephole %s during the run (status %s)\n%s"
                               % (why, proc.returncode, tail(logpath)))
        rss = peak_rss_kib(proc.pid)
        # A clean stop flushes the flow store before the count is read.
        status = stop(proc, signal.SIGTERM, timeout=20)
        if status not in (0, -signal.SIGTERM):
            log("peephole exited with status %s after the %s row\n%s"
                % (status, size_name, tail(logpath)))
        proc = None
        rows = db_request_count(db)
        # Rows expected: the sanity request, the warm-up and the run.
        # wrk does not count requests still in flight when it stops.
        want = 1 + warm["requests"] + r["requests"]
        extras = {
            "cpu_us": (t1 - t0) * 1e6 / CLK_TCK / max(r["requests"], 1),
            "rss_kib": rss,
            "db_rows": rows,
            "db_want": want,
        }
        return r, extras
    finally:
        stop(proc)


def db_text(extras, record, conns):
    """What the db says about a proxied row, checked against what wrk saw."""
    counts, want = extras["db_rows"], extras["db_want"]
    if counts is None:
        return ("no requests table (recording off)" if not record
                else "n/a (no db or no requests table)")
    rows, ok = counts
    if not record:
        return "%d rows (recording off)" % rows
    text = "%d rows" % rows
    if ok is not None:
        text += ", %d of them complete 200s" % ok
    text += ", for %d requests wrk completed (incl. warm-up and one " \
            "sanity request)" % want
    # wrk stops with up to one request in flight per connection, per run
    # (warm-up and measured): the proxy logs those too, cut short.
    good = ok if ok is not None else rows
    if good < 0.99 * want or rows > want + 2 * conns + 2:
        text += " **far from what wrk completed: check the proxy**"
    return text


# --- HTTPS (tlsload) ----------------------------------------------------

class Tls:
    """What the HTTPS rows share: the tlsload binary, the origin CA, the
    proxy's home (its CA is created there by the first proxy started, and
    kept for the later ones) and nginx's TLS port."""

    def __init__(self, tlsload, origin_ca, home, port):
        self.tlsload, self.origin_ca, self.home, self.port = (
            tlsload, origin_ca, home, port)

    @property
    def proxy_ca(self):
        return os.path.join(self.home, "ca.pem")


def run_tlsload(cpu, tls, ca, duration, conns, mode, path, name, target,
                proxy_port=None, requests=None):
    argv = [tls.tlsload, "--target", target, "--ca", ca, "--name", name,
            "--path", "/" + path, "--conns", str(conns), "--duration",
            str(duration), "--mode", mode, "--timeout", "5"]
    if proxy_port is not None:
        argv += ["--proxy", "127.0.0.1:%d" % proxy_port]
    if requests:
        argv += ["--requests", str(requests)]
    what = "tlsload %s %s%s" % (mode, target, " via proxy"
                                if proxy_port is not None else "")
    try:
        p = subprocess.run(pinned(cpu, argv), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True,
                           timeout=duration + 30)
    except subprocess.TimeoutExpired:
        raise Unmeasurable("%s did not finish within %ds"
                           % (what, duration + 30))
    lines = p.stdout.strip().splitlines()
    if p.returncode != 0 or not lines:
        raise Unmeasurable("%s failed (status %d):\n%s%s"
                           % (what, p.returncode, p.stdout, p.stderr))
    r = json.loads(lines[-1])
    if r["requests"] == 0:
        raise Unmeasurable("%s completed no request: %s"
                           % (what, r["first_error"] or "no error given"))
    return r


def tls_errors_text(r):
    if not r["errors"]:
        return "0"
    kinds = ", ".join("%s %d" % (k[4:], v) for k, v in sorted(r.items())
                      if k.startswith("err_") and v)
    return "%d (%s; first: %s)" % (r["errors"], kinds, r["first_error"])


def https_sanity(proxy_port, tls, path, size, logpath):
    """One request through the proxy with Python's own TLS stack, trusting
    only the proxy's CA (so the forged certificate must verify for
    bench.test); then one trusting only the origin's CA, which the proxy
    must fail (else it is not intercepting)."""
    import ssl
    ctx = ssl.create_default_context(cafile=tls.proxy_ca)
    try:
        c = http.client.HTTPSConnection("127.0.0.1", proxy_port, timeout=10,
                                        context=ctx)
        c.set_tunnel(HOST, tls.port)
        c.request("GET", "/" + path)
        r = c.getresponse()
        body = r.read()
        issuer = dict(x[0] for x in c.sock.getpeercert()["issuer"])
        c.close()
    except (OSError, http.client.HTTPException, ssl.SSLError) as e:
        raise Unmeasurable("HTTPS GET %s:%d/%s through the proxy failed: "
                           "%s\n%s" % (HOST, tls.port, path, e, tail(logpath)))
    if r.status != 200 or len(body) != size:
        raise Unmeasurable("HTTPS GET /%s through the proxy: status %d, %d "
                           "bytes (want 200, %d)\n%s"
                           % (path, r.status, len(body), size, tail(logpath)))
    ctx = ssl.create_default_context(cafile=tls.origin_ca)
    try:
        c = http.client.HTTPSConnection("127.0.0.1", proxy_port, timeout=10,
                                        context=ctx)
        c.set_tunnel(NEG_HOST, tls.port)
        c.request("GET", "/" + path)
        c.getresponse().read()
        c.close()
    except ssl.SSLCertVerificationError:
        return issuer.get("commonName", "?")
    except (OSError, http.client.HTTPException, ssl.SSLError) as e:
        raise Unmeasurable("HTTPS through the proxy, trusting the origin CA "
                           "only: want a certificate verification failure, "
                           "got %r\n%s" % (e, tail(logpath)))
    raise Unmeasurable("HTTPS through the proxy verified against the "
                       "origin's CA: the proxy did not intercept")


def proxy_checks(proc, logpath, what):
    if proc.poll() is not None:
        why = "died"
        if proc.returncode == 0:
            why = ("stopped cleanly, so something outside the benchmark "
                   "sent it SIGTERM/SIGINT,")
        raise Unmeasurable("peephole %s during %s (status %s)\n%s"
                           % (why, what, proc.returncode, tail(logpath)))


def stop_and_count(proc, db, logpath, what):
    """Stop the proxy cleanly (which flushes the flow store) and return the
    db counts of HTTPS requests."""
    status = stop(proc, signal.SIGTERM, timeout=20)
    if status not in (0, -signal.SIGTERM):
        log("peephole exited with status %s after %s\n%s"
            % (status, what, tail(logpath)))
    return db_request_count(db, "scheme = 'https'")


def measure_https_direct(args, tls, cpu_load, path, mode):
    target = "127.0.0.1:%d" % tls.port
    run_tlsload(cpu_load, tls, tls.origin_ca, args.warmup, args.connections,
                mode, path, HOST, target)
    return run_tlsload(cpu_load, tls, tls.origin_ca, args.duration,
                       args.connections, mode, path, HOST, target)


def measure_https_proxied(args, tmp, tls, cpu_proxy, cpu_load, path, mode):
    """One HTTPS row through a fresh proxy, recording on. The sanity
    request also warms the forged-certificate cache for bench.test."""
    proc = None
    tag = "https-%s-%s" % (path, mode)
    try:
        proc, port, db, logpath = start_proxy(
            args.peephole, tmp, cpu_proxy, True, tag,
            tls=(tls.home, tls.origin_ca))
        wait_port(port, proc, 10, "peephole", logpath)
        issuer = https_sanity(port, tls, path, SIZES[path], logpath)
        target = "%s:%d" % (HOST, tls.port)
        warm = run_tlsload(cpu_load, tls, tls.proxy_ca, args.warmup,
                           args.connections, mode, path, HOST, target, port)
        t0 = settle_cpu(proc.pid)
        r = run_tlsload(cpu_load, tls, tls.proxy_ca, args.duration,
                        args.connections, mode, path, HOST, target, port)
        t1 = settle_cpu(proc.pid)
        proxy_checks(proc, logpath, "the run")
        rss = peak_rss_kib(proc.pid)
        rows = stop_and_count(proc, db, logpath, tag)
        proc = None
        # tlsload does not count requests in flight (or completed) after
        # its deadline; the proxy logs those too.
        extras = {
            "cpu_us": (t1 - t0) * 1e6 / CLK_TCK / max(r["requests"], 1),
            "rss_kib": rss,
            "db_rows": rows,
            "db_want": 1 + warm["requests"] + r["requests"],
            "issuer": issuer,
        }
        return r, extras
    finally:
        stop(proc)


def measure_first_contact(args, tmp, tls, cpu_proxy, cpu_load):
    """On one fresh proxy, after the sanity request (bench.test forged):
    K sequential new-connection requests to bench.test (cache hit), then K
    to h1..hK.bench.test (one forge each). Returns (repeat result, miss
    result, extras for each, extra proxy CPU µs and latency µs per new
    host)."""
    k = args.hosts
    proc = None
    bound = max(60, args.duration)
    try:
        proc, port, db, logpath = start_proxy(
            args.peephole, tmp, cpu_proxy, True, "https-first",
            tls=(tls.home, tls.origin_ca), names=k)
        wait_port(port, proc, 10, "peephole", logpath)
        https_sanity(port, tls, "small", SIZES["small"], logpath)
        t0 = settle_cpu(proc.pid)
        rep = run_tlsload(cpu_load, tls, tls.proxy_ca, bound, 1, "new",
                          "small", HOST, "%s:%d" % (HOST, tls.port), port,
                          requests=k)
        t1 = settle_cpu(proc.pid)
        miss = run_tlsload(cpu_load, tls, tls.proxy_ca, bound, 1, "new",
                           "small", FIRST_CONTACT_NAME,
                           "%s:%d" % (FIRST_CONTACT_NAME, tls.port), port,
                           requests=k)
        t2 = settle_cpu(proc.pid)
        proxy_checks(proc, logpath, "the first-contact runs")
        rss = peak_rss_kib(proc.pid)
        rows = stop_and_count(proc, db, logpath, "first contact")
        proc = None
        cpu_rep = (t1 - t0) * 1e6 / CLK_TCK / max(rep["requests"], 1)
        cpu_miss = (t2 - t1) * 1e6 / CLK_TCK / max(miss["requests"], 1)
        want = 1 + rep["requests"] + miss["requests"]
        ex_rep = {"cpu_us": cpu_rep, "rss_kib": rss, "db_rows": None,
                  "db_want": None}
        ex_miss = {"cpu_us": cpu_miss, "rss_kib": rss, "db_rows": rows,
                   "db_want": want}
        return rep, miss, ex_rep, ex_miss
    finally:
        stop(proc)


def measure_direct_sequential(args, tls, cpu_load):
    return run_tlsload(cpu_load, tls, tls.origin_ca, max(60, args.duration),
                       1, "new", "small", HOST, "127.0.0.1:%d" % tls.port,
                       requests=args.hosts)


def https_db_text(extras, conns):
    """What the db says about an HTTPS row, checked against tlsload."""
    counts, want = extras["db_rows"], extras["db_want"]
    if counts is None:
        return "n/a (no db or no requests table)"
    rows, ok = counts
    text = "%d rows with scheme 'https'" % rows
    if ok is not None:
        text += ", %d of them complete 200s" % ok
    text += (", for %d requests tlsload completed (incl. warm-up and one "
             "sanity request)" % want)
    good = ok if ok is not None else rows
    if good < 0.99 * want or rows > want + 2 * conns + 2:
        text += " **far from what tlsload completed: check the proxy**"
    return text


def run_http_rows(args, tmp, cpu_proxy, cpu_load, ngx_port, rows, notes,
                  failures):
    for size_name in SIZES:
        scen = "HTTP %s (%s)" % (size_name, "100 B" if size_name == "small"
                                 else "1 MiB")
        log("%s: direct" % scen)
        try:
            direct = measure_direct(args, tmp, cpu_load, ngx_port, size_name)
        except Unmeasurable as e:
            failures.append("%s direct: %s" % (scen, e))
            direct = None
        rows.append({"scen": scen, "label": "direct", "r": direct,
                     "err": errors_text(direct) if direct else None})
        for record in (True, False):
            label = "peephole, logging %s" % ("on" if record else "off")
            log("%s: %s" % (scen, label))
            try:
                r, extras = measure_proxied(args, tmp, cpu_proxy, cpu_load,
                                            ngx_port, size_name, record)
            except Unmeasurable as e:
                failures.append("%s %s: %s" % (scen, label, e))
                r, extras = None, None
            rows.append({"scen": scen, "label": label, "r": r,
                         "extras": extras, "direct": direct,
                         "err": errors_text(r) if r else None})
            if extras:
                notes.append("%s, %s: db %s" % (scen, label,
                                                db_text(extras, record,
                                                        args.connections)))


def run_https_rows(args, tmp, tls, cpu_proxy, cpu_load, rows, notes,
                   failures):
    label_p = "peephole, logging on"
    for path, mode, scen in (
            ("small", "reuse", "HTTPS small (100 B), keep-alive"),
            ("big", "reuse", "HTTPS big (1 MiB), keep-alive"),
            ("small", "new", "HTTPS new connection per request (100 B), "
                             "req/s = handshakes/s, cert cache warm")):
        log("%s: direct" % scen)
        try:
            direct = measure_https_direct(args, tls, cpu_load, path, mode)
        except Unmeasurable as e:
            failures.append("%s direct: %s" % (scen, e))
            direct = None
        rows.append({"scen": scen, "label": "direct", "r": direct,
                     "err": tls_errors_text(direct) if direct else None})
        log("%s: %s" % (scen, label_p))
        try:
            r, extras = measure_https_proxied(args, tmp, tls, cpu_proxy,
                                              cpu_load, path, mode)
        except Unmeasurable as e:
            failures.append("%s %s: %s" % (scen, label_p, e))
            r, extras = None, None
        rows.append({"scen": scen, "label": label_p, "r": r,
                     "extras": extras, "direct": direct,
                     "err": tls_errors_text(r) if r else None})
        if extras:
            notes.append("%s, %s: db %s; forged certificate issued by "
                         "\"%s\"" % (scen, label_p,
                                      https_db_text(extras,
                                                    args.connections),
                                      extras["issuer"]))

    k = args.hosts
    scen = "HTTPS first contact, 1 connection, %d sequential new-connection" \
           " requests" % k
    log("%s: direct" % scen)
    try:
        direct = measure_direct_sequential(args, tls, cpu_load)
    except Unmeasurable as e:
        failures.append("%s direct: %s" % (scen, e))
        direct = None
    rows.append({"scen": scen, "label": "direct (one host)", "r": direct,
                 "err": tls_errors_text(direct) if direct else None})
    log("%s: peephole, repeated host then %d new hosts" % (scen, k))
    try:
        rep, miss, ex_rep, ex_miss = measure_first_contact(
            args, tmp, tls, cpu_proxy, cpu_load)
    except Unmeasurable as e:
        failures.append("%s peephole: %s" % (scen, e))
        return
    rows.append({"scen": scen, "label": "peephole, one repeated host "
                 "(cert cache hit)", "r": rep, "extras": ex_rep,
                 "direct": direct, "err": tls_errors_text(rep)})
    rows.append({"scen": scen, "label": "peephole, %d new hosts "
                 "(cert cache miss)" % k, "r": miss, "extras": ex_miss,
                 "direct": direct, "err": tls_errors_text(miss)})
    notes.append("First contact of a new host name (forge a certificate, "
                 "plus whatever else is per host) costs %+.0f µs of mean "
                 "latency (%.0f vs %.0f µs) and %+.0f µs of proxy CPU "
                 "(%.0f vs %.0f µs/req) over a repeated host, measured "
                 "with %d requests each on one fresh proxy. Proxy CPU is "
                 "counted in %.0f ms clock ticks over the run, so per "
                 "request it is good to about ±%.0f µs."
                 % (miss["mean"] - rep["mean"], miss["mean"], rep["mean"],
                    ex_miss["cpu_us"] - ex_rep["cpu_us"], ex_miss["cpu_us"],
                    ex_rep["cpu_us"], k, 1000 / CLK_TCK,
                    2e6 / CLK_TCK / k))
    notes.append("%s: db %s" % (scen, https_db_text(ex_miss, 1)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peephole", required=True,
                    help="path to the peephole binary")
    ap.add_argument("--duration", type=int, default=8,
                    help="seconds per measured scenario (default 8)")
    ap.add_argument("--warmup", type=int, default=1,
                    help="seconds of unmeasured warm-up per row (default 1)")
    ap.add_argument("--connections", type=int, default=50,
                    help="wrk / tlsload connections (default 50)")
    ap.add_argument("--hosts", type=int, default=500,
                    help="distinct host names for the HTTPS first-contact "
                         "row (default 500)")
    ap.add_argument("--only", choices=("http", "https"),
                    help="only the plain-HTTP or only the HTTPS rows")
    args = ap.parse_args()
    args.peephole = os.path.abspath(args.peephole)
    do_http = args.only in (None, "http")
    do_https = args.only in (None, "https")
    command = " ".join(shlex.quote(a) for a in
                       ["/usr/bin/python3"] + sys.argv)

    need = [args.peephole, NGINX]
    if do_http:
        need.append(WRK)
    if do_https:
        need += [OPENSSL, CC]
    for path in need:
        if not os.access(path, os.X_OK):
            print("bench: cannot measure: %s is not an executable" % path,
                  file=sys.stderr)
            return 2
    if args.hosts < 1 or args.connections < 1 or args.duration < 1:
        print("bench: --hosts, --connections and --duration must be >= 1",
              file=sys.stderr)
        return 2

    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2 and os.access(TASKSET, os.X_OK):
        cpu_proxy, cpu_load = cpus[0], cpus[1]
        pinning = ("proxy pinned to CPU %d, nginx and the load client to "
                   "CPU %d" % (cpu_proxy, cpu_load))
    else:
        cpu_proxy = cpu_load = None
        pinning = ("not pinned: %d CPU(s) available%s"
                   % (len(cpus), "" if os.access(TASKSET, os.X_OK)
                      else ", no taskset"))

    busy = busy_percent()
    rows = []
    notes = []
    failures = []
    tmp = tempfile.mkdtemp(prefix="peephole-bench-")
    nginx = None
    start = time.monotonic()
    try:
        tls = None
        certs = None
        if do_https:
            certs = make_origin_certs(tmp)
            tlsload = build_tlsload(tmp)
        nginx, ngx_port, ngx_tls_port, ngx_log = start_nginx(
            tmp, cpu_load, certs[1:] if certs else None)
        wait_port(ngx_port, nginx, 10, "nginx", ngx_log)
        if do_https:
            wait_port(ngx_tls_port, nginx, 10, "nginx (TLS)", ngx_log)
            home = os.path.join(tmp, "home")
            os.mkdir(home, 0o700)
            tls = Tls(tlsload, certs[0], home, ngx_tls_port)
        log("nginx on 127.0.0.1:%d%s; %s"
            % (ngx_port, " and TLS on %d" % ngx_tls_port if do_https else "",
               pinning))
        if do_http:
            run_http_rows(args, tmp, cpu_proxy, cpu_load, ngx_port, rows,
                          notes, failures)
        if nginx.poll() is not None:
            raise Unmeasurable("nginx exited (status %s)\n%s"
                               % (nginx.returncode, tail(ngx_log)))
        if do_https:
            run_https_rows(args, tmp, tls, cpu_proxy, cpu_load, rows, notes,
                           failures)
        if nginx.poll() is not None:
            raise Unmeasurable("nginx exited (status %s)\n%s"
                               % (nginx.returncode, tail(ngx_log)))
    except Unmeasurable as e:
        failures.append(str(e))
    finally:
        stop(nginx, signal.SIGQUIT)
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.monotonic() - start

    print()
    clients = []
    if do_http:
        clients.append("plain HTTP: wrk 1 thread, %d connections, "
                       "keep-alive" % args.connections)
    if do_https:
        clients.append("HTTPS: tlsload, %d connections (one thread each), "
                       "TLS verified by the client, nginx with ECDSA P-256, "
                       "no session cache or tickets" % args.connections)
    print("peephole bench: %s; %s; %d s per row; %s."
          % (machine_line(), "; ".join(clients), args.duration, pinning))
    print("Command: `%s`" % command)
    if busy is not None and busy > 10:
        print()
        print("**Warning: the machine was %.0f%% busy before the run "
              "(other processes); the numbers below are unreliable.**"
              % busy)
    print()
    print("| scenario | path | req/s | ratio to direct | p50 | p99 "
          "| proxy CPU µs/req | proxy peak RSS | errors |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for row in rows:
        r = row["r"]
        if r is None:
            print("| %s | %s | not measured | | | | | | |"
                  % (row["scen"], row["label"]))
            continue
        ratio = cpu = rss = "–"
        extras = row.get("extras")
        if extras:
            if row.get("direct"):
                ratio = "%.2f" % (r["rps"] / row["direct"]["rps"])
            cpu = "%.1f" % extras["cpu_us"]
            if extras["rss_kib"] is not None:
                rss = "%.1f MiB" % (extras["rss_kib"] / 1024)
        err = row["err"]
        if err != "0":
            err = "**%s** (suspect)" % err
        print("| %s | %s | %.0f | %s | %s | %s | %s | %s | %s |"
              % (row["scen"], row["label"], r["rps"], ratio, fmt_us(r["p50"]),
                 fmt_us(r["p99"]), cpu, rss, err))
    print()
    print("Proxy CPU is utime+stime of the whole proxy process (all threads, "
          "flow writer included) over the measured run, per completed "
          "request; peak RSS is VmHWM of a proxy started fresh for that row "
          "(the two first-contact rows share one proxy). "
          "Ratio is proxied req/s over direct req/s in the same run.")
    if do_https:
        print("HTTPS latency: keep-alive rows per request (as wrk); "
              "new-connection rows include TCP connect, CONNECT and the full "
              "TLS handshake. Through the proxy, tlsload trusts only the "
              "proxy's CA, so every counted request was intercepted; each "
              "proxy also refused a client trusting only the origin's CA.")
    for n in notes:
        print("- " + n)
    print()
    print("Total time %.0f s." % elapsed)
    if failures:
        for f in failures:
            print("bench: could not measure: " + f, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
