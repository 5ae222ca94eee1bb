#!/usr/bin/python3
"""Benchmark peephole against its peers (tinyproxy, mitmproxy, squid with
ssl-bump, sslsplit) and against nginx directly, on loopback, in one run.

Run as `make bench-peers`, i.e.

    /usr/bin/python3 tests/bench/peers.py --peephole /abs/path/build/peephole

It installs the peers from Debian when they are missing (apt-get, as root;
a peer whose package cannot be had is skipped with a note), starts nginx
(plain HTTP and TLS, /small 100 B and /big 1 MiB, certificate from a
throw-away origin CA, access log on so every row can check that the
requests really reached it) and, per row, a fresh proxy under test pinned
to one CPU (nginx and the clients on another).

Scenarios, each for direct, every peer and peephole:
  plain HTTP /small and /big  wrk, keep-alive, absolute-URI requests
  HTTPS /small and /big       tlsload.c (CONNECT + TLS, verified), reused
                              connections
  HTTPS new connection        tlsload.c, TCP + CONNECT + full handshake per
                              request
  idle tunnels                peers/idle_holder.py holds N CONNECT + TLS
                              tunnels; RSS delta / N per tunnel
  HTTP/2 /small and /big      h2load (-n N -c 10 -m 10) over TLS to nginx's
                              h2 port: direct, through mitmproxy's reverse
                              mode and peephole's reverse listener (h2load
                              speaks no proxy protocol); the other peers
                              have no h2-to-h2 path and are not measured

Checks per row: nginx's access-log count against the requests the client
completed (the proxy really forwards) and, per HTTPS row, the issuer of the
certificate a stdlib client saw (the peer really intercepts; tinyproxy is
a plain CONNECT tunnel, sslsplit a static forwarder that the client talks
to as if it were the origin).

This is a benchmark, not a test: it prints one Markdown table and exits 0
unless nothing could be measured. Everything listens on 127.0.0.1 on ports
picked by binding port 0; every child is started in its own session and
stopped by its process group (its own PID); every wait is bounded.

Helpers come from bench.py next to this file (imported, not changed).
Stdlib only, for Debian's /usr/bin/python3.
"""

import argparse
import http.client
import json
import os
import resource
import select
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402  (helpers only: bench.py is not changed here)
from bench import (Unmeasurable, errors_text, fmt_us, free_port,  # noqa
                   pinned, spawn, stop, tail, tls_errors_text)

NGINX = bench.NGINX
OPENSSL = bench.OPENSSL
HOLDER = os.path.join(HERE, "peers", "idle_holder.py")
H2LOAD = "/usr/bin/h2load"
# The name every client uses for the origin: it is in /etc/hosts on every
# Debian system (peers that use the system's resolver find it there, with
# no DNS query) and peephole gets it from its own hosts file.
HOST = "localhost"
SIZES = {"small": 100, "big": 1 << 20}
CLK_TCK = os.sysconf("SC_CLK_TCK")
PACKAGES = ["mitmproxy", "squid-openssl", "sslsplit", "tinyproxy"]
PEER_ORDER = ["tinyproxy", "mitmproxy", "squid", "sslsplit", "nginx",
              "peephole"]
PEER_PKG = {"tinyproxy": "tinyproxy", "mitmproxy": "mitmproxy",
            "squid": "squid-openssl", "sslsplit": "sslsplit"}
# What a path is, where it is not an intercepting HTTP proxy.
PATH_NOTES = {
    ("tinyproxy", "http"): "no keep-alive to the client",
    ("tinyproxy", "https"): "CONNECT tunnel, no interception",
    ("sslsplit", "http"): "static forwarder, tcp, no HTTP parsing",
    ("sslsplit", "https"): "static forwarder, no HTTP parsing",
    ("nginx", "http"): "reverse proxy, upstream keep-alive",
    ("nginx", "https"): "TLS reverse proxy, upstream keep-alive",
    ("mitmproxy", "h2"): "reverse mode",
    ("peephole", "h2"): "reverse listener",
    ("peephole-before", "h2"): "reverse listener",
}
SCENARIOS = [
    ("http-small", "plain HTTP 100 B, keep-alive"),
    ("http-big", "plain HTTP 1 MiB, keep-alive"),
    ("https-small", "HTTPS 100 B, reused connections"),
    ("https-big", "HTTPS 1 MiB, reused connections"),
    ("https-new", "HTTPS 100 B, new connection per request"),
    ("idle", "idle tunnels held (CONNECT + TLS)"),
    ("h2-small", "HTTP/2 100 B, h2load 10 connections x 10 streams"),
    ("h2-1mib", "HTTP/2 1 MiB, h2load 10 connections x 10 streams"),
]


def log(msg):
    print("peers: " + msg, file=sys.stderr, flush=True)


def run(argv, timeout=60, **kw):
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout,
                           **kw)
    except subprocess.TimeoutExpired:
        raise Unmeasurable("%s did not finish in %ds" % (argv[0], timeout))
    if p.returncode != 0:
        raise Unmeasurable("%s failed (status %d):\n%s%s"
                           % (" ".join(argv), p.returncode, p.stdout,
                              p.stderr))
    return p.stdout


# --- packages ------------------------------------------------------------

def pkg_version(pkg):
    try:
        p = subprocess.run(["dpkg-query", "-W", "-f=${Status}|${Version}",
                            pkg], capture_output=True, text=True,
                           timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if p.returncode != 0 or not p.stdout.startswith("install ok installed"):
        return None
    return p.stdout.split("|", 1)[1]


def ensure_packages(wanted, notes):
    """Install the missing ones of WANTED with apt-get (root only).
    Returns {package: version} for the ones present afterwards."""
    have = {p: pkg_version(p) for p in wanted}
    missing = [p for p, v in have.items() if v is None]
    if missing:
        if os.geteuid() != 0:
            notes.append("not root: could not install %s" % ", ".join(missing))
        else:
            log("installing %s" % " ".join(missing))
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            for batch in ([missing] + [[p] for p in missing]
                          if len(missing) > 1 else [missing]):
                batch = [p for p in batch if pkg_version(p) is None]
                if not batch:
                    continue
                try:
                    p = subprocess.run(
                        ["apt-get", "install", "-y", "--no-install-recommends"]
                        + batch, stdin=subprocess.DEVNULL,
                        capture_output=True, text=True, timeout=600, env=env)
                    if p.returncode != 0:
                        log("apt-get install %s failed:\n%s"
                            % (" ".join(batch), p.stderr[-2000:]))
                except subprocess.TimeoutExpired:
                    log("apt-get install %s: no end in 600s" % " ".join(batch))
        have = {p: pkg_version(p) for p in wanted}
        for p, v in have.items():
            if v is None:
                notes.append("package %s unavailable: its peer is skipped" % p)
    return {p: v for p, v in have.items() if v is not None}


# --- processes -----------------------------------------------------------

def group_pids(pgid):
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        if int(fields[2]) == pgid:
            pids.append(int(d))
    return pids


def group_cpu_ticks(pgid):
    """utime + stime (+ those of reaped children) over the process group."""
    total = 0
    for pid in group_pids(pgid):
        try:
            with open("/proc/%d/stat" % pid) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        total += sum(int(x) for x in fields[11:15])
    return total


def settle_group_cpu(pgid, timeout=3.0):
    deadline = time.monotonic() + timeout
    prev = group_cpu_ticks(pgid)
    while time.monotonic() < deadline:
        time.sleep(0.2)
        cur = group_cpu_ticks(pgid)
        if cur == prev:
            return cur
        prev = cur
    return prev


def group_mem_kib(pgid):
    """(sum of VmRSS, sum of VmHWM) over the process group, KiB."""
    rss = hwm = 0
    for pid in group_pids(pgid):
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
                    elif line.startswith("VmHWM:"):
                        hwm += int(line.split()[1])
        except OSError:
            continue
    return rss, hwm


# tlsload.c sends "Host: NAME" without the port. squid routes a bumped
# request by its Host header (RFC 9110: the port is part of it unless it is
# the scheme's default), so it would go to port 443 and answer 503. The copy
# compiled here says "Host: NAME:PORT" when PORT is not 443; when tlsload.c
# changes so that the patterns are gone, it is compiled as it is.
TLSLOAD_HOST_PATCH = [
    ('"GET %s HTTP/1.1\\r\\nHost: %s\\r\\n',
     '"GET %s HTTP/1.1\\r\\nHost: %s%s%s\\r\\n'),
    ("opt.path, name, opt.mode_new",
     'opt.path, name, strcmp(opt.tport, "443") ? ":" : "",\n'
     '\t                 strcmp(opt.tport, "443") ? opt.tport : "",\n'
     "\t                 opt.mode_new"),
]


def build_tlsload(tmp):
    """Compile tlsload.c (patched as above when it applies) into TMP.
    Returns (binary, why patched or None)."""
    with open(bench.TLSLOAD_SRC) as f:
        src = f.read()
    patched = None
    if all(src.count(old) == 1 for old, _ in TLSLOAD_HOST_PATCH):
        for old, new in TLSLOAD_HOST_PATCH:
            src = src.replace(old, new)
        patched = "squid routes bumped requests by Host"
    c = os.path.join(tmp, "tlsload.c")
    with open(c, "w") as f:
        f.write(src)
    out = os.path.join(tmp, "tlsload")
    run([bench.CC, "-O2", "-o", out, c, "-lssl", "-lcrypto", "-lpthread"],
        timeout=120)
    return out, patched


def wait_port(port, proc, timeout, what, logpath):
    bench.wait_port(port, proc, timeout, what, logpath)


# --- origin --------------------------------------------------------------

def make_ca(d, name, cn, ec=True):
    """A throw-away CA: returns (cert path, key path)."""
    key, pem = os.path.join(d, name + ".key"), os.path.join(d, name + ".pem")
    if ec:
        run([OPENSSL, "genpkey", "-algorithm", "EC", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-out", key])
    else:
        run([OPENSSL, "genpkey", "-algorithm", "RSA", "-pkeyopt",
             "rsa_keygen_bits:2048", "-out", key])
    run([OPENSSL, "req", "-x509", "-new", "-key", key, "-sha256", "-days",
         "2", "-subj", "/CN=" + cn,
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", pem])
    return pem, key


def make_origin(d):
    """Origin CA and an ECDSA P-256 server certificate for localhost and
    127.0.0.1 (as bench.py's, with another name). Returns (ca, crt, key)."""
    ca, ca_key = make_ca(d, "origin-ca", "peers bench origin CA")
    crt, key = make_leaf(d, "server", ca, ca_key)
    return ca, crt, key


def make_leaf(d, name, ca, ca_key):
    """An ECDSA P-256 server certificate for localhost and 127.0.0.1
    signed by CA. Returns (crt, key)."""
    key, csr = os.path.join(d, name + ".key"), os.path.join(d, name + ".csr")
    crt, ext = os.path.join(d, name + ".pem"), os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("basicConstraints = critical, CA:FALSE\n"
                "keyUsage = critical, digitalSignature\n"
                "extendedKeyUsage = serverAuth\n"
                "subjectAltName = DNS:%s, IP:127.0.0.1\n" % HOST)
    run([OPENSSL, "genpkey", "-algorithm", "EC", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-out", key])
    run([OPENSSL, "req", "-new", "-key", key, "-subj", "/CN=" + HOST,
         "-out", csr])
    run([OPENSSL, "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
         "-set_serial", "1", "-sha256", "-days", "2", "-extfile", ext,
         "-out", crt])
    return crt, key


class Nginx:
    """nginx with a plain and a TLS port and a one-line-per-request access
    log, counted incrementally."""

    def __init__(self, tmp, cpu, crt, key):
        root = os.path.join(tmp, "www")
        ngx = os.path.join(tmp, "nginx")
        os.makedirs(root)
        os.makedirs(ngx)
        for name, size in SIZES.items():
            with open(os.path.join(root, name), "wb") as f:
                f.write((b"peephole-bench-" * (size // 15 + 1))[:size])
        self.port, self.tls_port = free_port(), free_port()
        self.h2_port = free_port()
        self.access = os.path.join(ngx, "access.log")
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = f"""{user}worker_processes 1;
worker_rlimit_nofile 16384;
events {{ worker_connections 8192; }}
http {{
    log_format peers '$status $body_bytes_sent';
    access_log {self.access} peers;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    client_body_temp_path {ngx}/body;
    proxy_temp_path {ngx}/proxy;
    fastcgi_temp_path {ngx}/fastcgi;
    server {{
        listen 127.0.0.1:{self.port};
        server_name _;
        root {root};
        location / {{ }}
    }}
    server {{
        listen 127.0.0.1:{self.tls_port} ssl;
        server_name _;
        ssl_certificate {crt};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache off;
        ssl_session_tickets off;
        root {root};
        location / {{ }}
    }}
    server {{
        listen 127.0.0.1:{self.h2_port} ssl http2;
        server_name _;
        ssl_certificate {crt};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        http2_max_concurrent_streams 128;
        root {root};
        location / {{ }}
    }}
}}
"""
        with open(os.path.join(ngx, "nginx.conf"), "w") as f:
            f.write(conf)
        self.log = os.path.join(tmp, "nginx.log")
        self.proc = spawn(pinned(cpu, [
            NGINX, "-p", ngx + "/", "-c", ngx + "/nginx.conf", "-g",
            "daemon off; pid %s/nginx.pid; error_log stderr;" % ngx]),
            self.log)
        self._off = 0
        self._lines = 0
        wait_port(self.port, self.proc, 10, "nginx", self.log)
        wait_port(self.tls_port, self.proc, 10, "nginx (TLS)", self.log)
        wait_port(self.h2_port, self.proc, 10, "nginx (h2)", self.log)

    def count(self):
        """Access-log lines so far (one per request nginx answered)."""
        try:
            with open(self.access, "rb") as f:
                f.seek(self._off)
                data = f.read()
        except FileNotFoundError:
            return 0
        self._off += len(data)
        self._lines += data.count(b"\n")
        return self._lines

    def stop(self):
        stop(self.proc, signal.SIGQUIT)


# --- peers ---------------------------------------------------------------

class Peer:
    """One proxy under test. start(kind) with kind "http" or "https" leaves
    self.proc / self.port set. static: clients talk to it as if it were the
    origin (no CONNECT, no absolute URI)."""
    static = False
    intercepts = True
    h2 = False  # has an h2 reverse path: start("h2") fronts nginx's h2 port
    start_timeout = 10

    def __init__(self, name, ctx):
        self.name, self.ctx = name, ctx
        self.proc = None
        self.port = None
        self.logpath = os.path.join(ctx.tmp, name + ".log")
        self.ca = None

    def argv(self, kind):
        raise NotImplementedError

    def prepare(self):
        pass

    def start(self, kind):
        self.port = free_port()
        argv = self.argv(kind)
        self.proc = spawn(pinned(self.ctx.cpu_proxy, argv), self.logpath)
        wait_port(self.port, self.proc, self.start_timeout, self.name,
                  self.logpath)

    def stop(self):
        stop(self.proc, signal.SIGTERM, timeout=5)
        self.proc = None

    def row_notes(self):
        """Anything the peer itself says about the row, after stop()."""
        return []

    def alive(self, what):
        if self.proc.poll() is not None:
            raise Unmeasurable("%s exited (status %s) during %s\n%s"
                               % (self.name, self.proc.returncode, what,
                                  tail(self.logpath)))


class Tinyproxy(Peer):
    intercepts = False

    def prepare(self):
        self.ca = self.ctx.origin_ca

    def argv(self, kind):
        d = self.ctx.tmp
        conf = os.path.join(d, "tinyproxy.conf")
        with open(conf, "w") as f:
            f.write("Port %d\nListen 127.0.0.1\nTimeout 600\n"
                    "MaxClients 4000\nLogLevel Critical\n"
                    "LogFile \"%s/tinyproxy-file.log\"\n"
                    "PidFile \"%s/tinyproxy.pid\"\n" % (self.port, d, d))
        return ["/usr/bin/tinyproxy", "-d", "-c", conf]


class Mitmproxy(Peer):
    start_timeout = 20
    h2 = True

    def prepare(self):
        self.confdir = os.path.join(self.ctx.tmp, "mitm")
        os.makedirs(self.confdir, exist_ok=True)
        self.ca = os.path.join(self.confdir, "mitmproxy-ca-cert.pem")

    def argv(self, kind):
        mode = []
        if kind == "h2":
            # lazy: the origin is dialled after the client's hello, with
            # its ALPN offer; eager (the default) dials first, offers no
            # ALPN, gets none and mirrors that to the client: no h2
            mode = ["--mode", "reverse:https://%s:%d"
                    % (HOST, self.ctx.nginx.h2_port), "--set", "http2=true",
                    "--set", "connection_strategy=lazy"]
        return ["/usr/bin/mitmdump"] + mode + [
                "--listen-host", "127.0.0.1",
                "--listen-port", str(self.port),
                "--set", "confdir=" + self.confdir,
                "--set", "ssl_insecure=false",
                "--set", "ssl_verify_upstream_trusted_ca=" +
                self.ctx.origin_ca, "-q"]


class Squid(Peer):
    start_timeout = 15

    def prepare(self):
        # squid drops to the 'proxy' user, so its files live in a directory
        # of its own that it may read (the main temp dir is 0700 root).
        d = self.dir = tempfile.mkdtemp(prefix="peephole-peers-squid-")
        os.chmod(d, 0o755)
        pem, key = make_ca(d, "squid-ca", "peers bench squid CA", ec=False)
        self.ca = pem
        self.bundle = os.path.join(d, "squid-ca-bundle.pem")
        with open(self.bundle, "w") as out:
            for p in (pem, key):
                with open(p) as f:
                    out.write(f.read())
        shutil.copy(self.ctx.origin_ca, os.path.join(d, "origin-ca.pem"))
        self.db = os.path.join(d, "ssl_db")
        run(["/usr/lib/squid/security_file_certgen", "-c", "-s", self.db,
             "-M", "16MB"])
        if os.geteuid() == 0:
            run(["chown", "-R", "proxy:proxy", d])
        self.ctx.cleanup.append(d)

    def argv(self, kind):
        d = self.dir
        conf = os.path.join(d, "squid.conf")
        user = ("cache_effective_user proxy\n" if os.geteuid() == 0 else "")
        with open(conf, "w") as f:
            f.write(f"""http_port 127.0.0.1:{self.port} ssl-bump tls-cert={self.bundle} generate-host-certificates=on dynamic_cert_mem_cache_size=16MB
sslcrtd_program /usr/lib/squid/security_file_certgen -s {self.db} -M 16MB
sslcrtd_children 5 startup=1 idle=1
ssl_bump bump all
tls_outgoing_options cafile={d}/origin-ca.pem
http_access allow all
cache deny all
access_log none
cache_store_log none
cache_log {d}/cache.log
pid_filename {d}/squid.pid
coredump_dir {d}
netdb_filename none
dns_nameservers 127.0.0.1
shutdown_lifetime 1 seconds
max_filedescriptors 16384
{user}""")
        return ["/usr/sbin/squid", "-N", "-f", conf]

    def start(self, kind):
        try:
            super().start(kind)
        except Unmeasurable as e:
            raise Unmeasurable("%s\n%s" % (e, tail(os.path.join(
                self.dir, "cache.log"))))


class Sslsplit(Peer):
    static = True

    def prepare(self):
        d = os.path.join(self.ctx.tmp, "sslsplit")
        os.makedirs(d)
        self.ca, self.key = make_ca(d, "sslsplit-ca", "peers bench sslsplit CA",
                                    ec=False)

    def argv(self, kind):
        ngx = self.ctx.nginx
        if kind == "http":
            spec = ["tcp", "127.0.0.1", str(self.port), "127.0.0.1",
                    str(ngx.port)]
        else:
            spec = ["ssl", "127.0.0.1", str(self.port), "127.0.0.1",
                    str(ngx.tls_port)]
        user = ["-u", "root"] if os.geteuid() == 0 else []
        return ["/usr/bin/sslsplit", "-k", self.key, "-c", self.ca] + \
            user + spec


class NginxProxy(Peer):
    """nginx as a reverse proxy to the origin (the yardstick of issue 10):
    static, the client talks to it as if it were the origin; HTTPS is
    terminated with its own CA's certificate and re-encrypted upstream,
    verified against the origin CA. Keep-alive both sides, one worker,
    access log on (one line per request, as the origin's)."""
    static = True

    def prepare(self):
        d = self.dir = os.path.join(self.ctx.tmp, "nginx-rp")
        os.makedirs(d)
        self.ca, ca_key = make_ca(d, "nginx-rp-ca", "peers bench nginx CA")
        self.crt, self.key = make_leaf(d, "nginx-rp", self.ca, ca_key)

    def argv(self, kind):
        d, ngx = self.dir, self.ctx.nginx
        user = "user root;\n" if os.geteuid() == 0 else ""
        if kind == "http":
            listen = "listen 127.0.0.1:%d;" % self.port
            up = "server 127.0.0.1:%d;" % ngx.port
            target = "http://origin"
        else:
            listen = ("listen 127.0.0.1:%d ssl;\n"
                      "        ssl_certificate %s;\n"
                      "        ssl_certificate_key %s;\n"
                      "        ssl_protocols TLSv1.2 TLSv1.3;"
                      % (self.port, self.crt, self.key))
            up = "server 127.0.0.1:%d;" % ngx.tls_port
            target = "https://origin"
        conf = f"""{user}worker_processes 1;
worker_rlimit_nofile 16384;
events {{ worker_connections 8192; }}
http {{
    log_format peers '$status $body_bytes_sent';
    access_log {d}/access.log peers;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    upstream origin {{ {up} keepalive 64; }}
    server {{
        {listen}
        server_name _;
        location / {{
            proxy_pass {target};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host {HOST};
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate {self.ctx.origin_ca};
            proxy_ssl_name {HOST};
            proxy_ssl_server_name on;
            proxy_ssl_session_reuse on;
        }}
    }}
}}
"""
        path = os.path.join(d, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        return [NGINX, "-p", d + "/", "-c", path, "-g",
                "daemon off; pid %s/nginx.pid; error_log stderr;" % d]


class Peephole(Peer):
    h2 = True

    def binary(self):
        return self.ctx.peephole

    def prepare(self):
        d = os.path.join(self.ctx.tmp, self.name)
        self.home = os.path.join(d, "home")
        os.makedirs(self.home, 0o700)
        hosts = os.path.join(d, "hosts")
        self.conf = os.path.join(d, "peephole.conf")
        with open(hosts, "w") as f:
            f.write("127.0.0.1 %s\n" % HOST)
        with open(self.conf, "w") as f:
            # Port 9 answers nothing: a lookup past the hosts file fails
            # fast instead of reaching the system's resolver.
            f.write("dns-server 127.0.0.1:9\nhosts-file %s\n" % hosts)
        self.db = os.path.join(d, "peephole.db")
        self.ca = os.path.join(self.home, "ca.pem")

    def argv(self, kind):
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                os.unlink(self.db + suffix)
            except FileNotFoundError:
                pass
        wrap = shlex.split(self.ctx.args.peephole_wrap or "")
        listen = "127.0.0.1:%d" % self.port
        if kind == "h2":
            listen = "reverse@127.0.0.1:%d=%s:%d" % (
                self.port, HOST, self.ctx.nginx.h2_port)
        return wrap + [self.binary(), "run", "--listen",
                listen, "--db", self.db, "--conf",
                self.conf, "--home", self.home, "--upstream-ca",
                self.ctx.origin_ca, "--workers", "1", "--quiet"]

    def stop(self):
        # A clean stop (flushing the flow store) is part of its run.
        stop(self.proc, signal.SIGTERM, timeout=20)
        self.proc = None

    def row_notes(self):
        """Connections its flow store says were not intercepted (e.g. a
        ClientHello later than sniff-timeout under load): the client then
        sees the origin's certificate and fails verification."""
        import sqlite3
        try:
            c = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True,
                                timeout=5)
            try:
                got = c.execute(
                    "SELECT decision_reason, count(*) FROM connections "
                    "WHERE decision = 'passthrough' GROUP BY 1").fetchall()
            finally:
                c.close()
        except sqlite3.Error:
            return []
        return ["**peephole passed %d connection(s) through: %s**"
                % (n, why) for why, n in got]


class PeepholeBefore(Peephole):
    """Another peephole binary (--peephole-before), e.g. the build before a
    change, measured in the same run as the one under test."""

    def binary(self):
        return self.ctx.args.peephole_before


PEER_CLASSES = {"tinyproxy": Tinyproxy, "mitmproxy": Mitmproxy,
                "squid": Squid, "sslsplit": Sslsplit, "nginx": NginxProxy,
                "peephole": Peephole}


# --- clients -------------------------------------------------------------

def sanity_http(ctx, peer, path):
    """One GET by hand through PEER (None: direct): 200 and the right
    length, else the row is not measured."""
    ngx = ctx.nginx
    try:
        if peer is None:
            c = http.client.HTTPConnection("127.0.0.1", ngx.port, timeout=10)
            c.request("GET", "/" + path)
        elif peer.static:
            c = http.client.HTTPConnection("127.0.0.1", peer.port,
                                           timeout=10)
            c.request("GET", "/" + path)
        else:
            c = http.client.HTTPConnection("127.0.0.1", peer.port,
                                           timeout=10)
            c.request("GET", "http://%s:%d/%s" % (HOST, ngx.port, path))
        r = c.getresponse()
        body = r.read()
        c.close()
    except (OSError, http.client.HTTPException) as e:
        raise Unmeasurable("GET /%s: %s" % (path, e))
    if r.status != 200 or len(body) != SIZES[path]:
        raise Unmeasurable("GET /%s: status %d, %d bytes" % (path, r.status,
                                                              len(body)))


def ca_cn(pem):
    d = ssl._ssl._test_decode_cert(pem)
    return dict(x[0] for x in d["subject"]).get("commonName", "?")


def sanity_https(ctx, peer, path):
    """One HTTPS GET with the stdlib, trusting only the CA the bench's
    clients trust for PEER; returns the issuer CN of the certificate seen
    (an intercepting peer's CA, the origin CA for a tunnel)."""
    ngx = ctx.nginx
    ca = ctx.origin_ca if peer is None else peer.ca
    sctx = ssl.create_default_context(cafile=ca)
    try:
        if peer is None:
            c = http.client.HTTPSConnection(HOST, ngx.tls_port, timeout=10,
                                            context=sctx)
        elif peer.static:
            c = http.client.HTTPSConnection(HOST, peer.port, timeout=10,
                                            context=sctx)
        else:
            c = http.client.HTTPSConnection("127.0.0.1", peer.port,
                                            timeout=10, context=sctx)
            c.set_tunnel(HOST, ngx.tls_port)
        c.request("GET", "/" + path)
        r = c.getresponse()
        body = r.read()
        issuer = dict(x[0] for x in c.sock.getpeercert()["issuer"])
        c.close()
    except (OSError, http.client.HTTPException, ssl.SSLError) as e:
        raise Unmeasurable("HTTPS GET /%s: %s" % (path, e))
    if r.status != 200 or len(body) != SIZES[path]:
        raise Unmeasurable("HTTPS GET /%s: status %d, %d bytes"
                           % (path, r.status, len(body)))
    cn = issuer.get("commonName", "?")
    origin_cn = ca_cn(ctx.origin_ca)
    if peer is not None and peer.intercepts:
        if cn == origin_cn or cn != ca_cn(peer.ca):
            raise Unmeasurable("certificate issued by %r, not by %s's CA: "
                               "not intercepted" % (cn, peer.name))
    elif cn != origin_cn:
        raise Unmeasurable("certificate issued by %r, want the origin CA"
                           % cn)
    return cn


def wrk_args(ctx, peer, path):
    """(script, url) for wrk: origin-form direct and to a static
    forwarder, absolute-URI to a proxy."""
    ngx = ctx.nginx
    if peer is None:
        return (bench.write_wrk_script(ctx.tmp, "direct"),
                "http://127.0.0.1:%d/%s" % (ngx.port, path))
    if peer.static:
        return (bench.write_wrk_script(ctx.tmp, "direct"),
                "http://127.0.0.1:%d/%s" % (peer.port, path))
    script = bench.write_wrk_script(
        ctx.tmp, "proxy", "http://%s:%d/%s" % (HOST, ngx.port, path),
        "%s:%d" % (HOST, ngx.port))
    return script, "http://127.0.0.1:%d" % peer.port


def tlsload(ctx, peer, duration, mode, path):
    ngx = ctx.nginx
    if peer is None:
        return bench.run_tlsload(ctx.cpu_load, ctx, ctx.origin_ca, duration,
                                 ctx.args.connections, mode, path, HOST,
                                 "127.0.0.1:%d" % ngx.tls_port)
    if peer.static:
        return bench.run_tlsload(ctx.cpu_load, ctx, peer.ca, duration,
                                 ctx.args.connections, mode, path, HOST,
                                 "127.0.0.1:%d" % peer.port)
    return bench.run_tlsload(ctx.cpu_load, ctx, peer.ca, duration,
                             ctx.args.connections, mode, path, HOST,
                             "%s:%d" % (HOST, ngx.tls_port), peer.port)


def sanity_h2(port, cafile, path):
    """One GET over TLS to 127.0.0.1:PORT (SNI localhost), offering h2 and
    http/1.1 and trusting only CAFILE: (issuer CN, ALPN the path chose).
    What h2load, which verifies nothing, cannot say: that the path really
    intercepts, and what it gives a client that could take either."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            with ctx.wrap_socket(s, server_hostname=HOST) as t:
                alpn = t.selected_alpn_protocol()
                issuer = dict(x[0] for x in t.getpeercert()["issuer"])
    except (OSError, ssl.SSLError) as e:
        raise Unmeasurable("sanity TLS handshake for /%s: %s" % (path, e))
    return issuer.get("commonName", "?"), alpn or "none"


def h2load(ctx, port, path, n):
    """h2load -n N -c C -m M to https://localhost:PORT/PATH, pinned with
    the load. Returns {"rps", "requests", "failed", "mean_us", "proto"}."""
    args = ctx.args
    argv = [H2LOAD, "-n", str(n), "-c", str(args.h2_clients), "-m",
            str(args.h2_streams), "-t", "1", "--npn-list=h2",
            "https://%s:%d/%s" % (HOST, port, path)]
    try:
        p = subprocess.run(pinned(ctx.cpu_load, argv),
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=args.h2_timeout)
    except subprocess.TimeoutExpired:
        raise Unmeasurable("h2load did not finish %d requests in %ds"
                           % (n, args.h2_timeout))
    out = p.stdout
    r = {"proto": "none", "mean_us": None}
    for line in out.splitlines():
        w = line.split()
        if line.startswith("finished in"):
            r["rps"] = float(w[3])
        elif line.startswith("requests:"):
            r["requests"] = int(w[7])  # succeeded
            r["failed"] = n - r["requests"]
        elif line.startswith("Application protocol:"):
            r["proto"] = w[2]
        elif line.startswith("time for request:"):
            v = w[4]  # mean
            r["mean_us"] = float(v.rstrip("mus")) * (
                1e3 if v.endswith("ms") else 1 if v.endswith("us") else 1e6)
    if "rps" not in r or "requests" not in r:
        raise Unmeasurable("h2load (status %d) said:\n%s%s"
                           % (p.returncode, out[-1500:], p.stderr[-500:]))
    return r


def h2_row(ctx, scen, peer):
    """One HTTP/2 row: direct to nginx's h2 port, or through PEER's
    reverse path to it."""
    args = ctx.args
    ngx = ctx.nginx
    path, n = (("small", args.h2_requests) if scen == "h2-small" else
               ("big", args.h2_requests_big))
    row = {"scen": scen, "path": "direct" if peer is None else peer.name}
    notes = []
    try:
        if peer is not None:
            peer.start("h2")
            time.sleep(0.3)
            row["rss_fresh"] = group_mem_kib(peer.proc.pid)[0]
            port, ca = peer.port, peer.ca
        else:
            port, ca = ngx.h2_port, ctx.origin_ca
        issuer, alpn = sanity_h2(port, ca, path)
        notes.append("issuer \"%s\", ALPN %s offered h2,http/1.1"
                     % (issuer, alpn))
        before = ngx.count()
        t0 = settle_group_cpu(peer.proc.pid) if peer else 0
        r = h2load(ctx, port, path, n)
        if peer is not None:
            t1 = settle_group_cpu(peer.proc.pid)
            peer.alive("the run")
            row["cpu_us"] = (t1 - t0) * 1e6 / CLK_TCK / max(r["requests"], 1)
            row["rss_peak"] = group_mem_kib(peer.proc.pid)[1]
        else:
            time.sleep(0.2)
        notes.insert(0, "h2load ALPN %s, %d/%d ok%s" % (
            r["proto"], r["requests"], n, "" if r["mean_us"] is None else
            ", mean %s" % fmt_us(r["mean_us"])))
        if r["failed"]:
            notes.insert(0, "**%d requests failed**" % r["failed"])
        fwd, _ = fwd_note(ctx, ngx.count() - before, r["requests"])
        notes.append(fwd)
        row.update(rps=r["rps"], p50=None, p99=None)
    except Unmeasurable as e:
        row["fail"] = str(e)
        log("%s %s: not measured: %s" % (scen, row["path"], e))
    finally:
        if peer is not None:
            peer.stop()
            notes += peer.row_notes()
    row["notes"] = notes
    return row


# --- rows ----------------------------------------------------------------

def fwd_note(ctx, seen, want):
    """nginx's count against the client's completions. Clients drop
    requests in flight at their deadline (the server may still log them),
    so up to ~2 per connection per run may be extra."""
    slack = 2 * 2 * ctx.args.connections + 5
    text = "nginx %d / client %d" % (seen, want)
    if seen < 0.99 * want or seen > want + slack:
        return "**%s: not all forwarded**" % text, False
    return text, True


def load_row(ctx, scen, peer):
    """One throughput row. Returns a dict for the table."""
    args = ctx.args
    ngx = ctx.nginx
    row = {"scen": scen, "path": "direct" if peer is None else peer.name}
    notes = []
    http_row = scen.startswith("http-")
    path = "small" if scen in ("http-small", "https-small",
                               "https-new") else "big"
    mode = "new" if scen == "https-new" else "reuse"
    try:
        if peer is not None:
            peer.start("http" if http_row else "https")
            time.sleep(0.3)
            row["rss_fresh"] = group_mem_kib(peer.proc.pid)[0]
        before = ngx.count()
        if http_row:
            sanity_http(ctx, peer, path)
            script, url = wrk_args(ctx, peer, path)
            warm = bench.run_wrk(ctx.cpu_load, script, url, args.warmup,
                                 args.connections)
        else:
            issuer = sanity_https(ctx, peer, path)
            if peer is not None:
                notes.append("issuer \"%s\"" % issuer)
            warm = tlsload(ctx, peer, args.warmup, mode, path)
        t0 = settle_group_cpu(peer.proc.pid) if peer else 0
        if http_row:
            r = bench.run_wrk(ctx.cpu_load, script, url, args.duration,
                              args.connections)
            err = errors_text(r)
        else:
            r = tlsload(ctx, peer, args.duration, mode, path)
            err = tls_errors_text(r)
        if peer is not None:
            t1 = settle_group_cpu(peer.proc.pid)
            peer.alive("the run")
            row["cpu_us"] = (t1 - t0) * 1e6 / CLK_TCK / max(r["requests"], 1)
            row["rss_peak"] = group_mem_kib(peer.proc.pid)[1]
        else:
            time.sleep(0.2)
        fwd, _ = fwd_note(ctx, ngx.count() - before,
                          1 + warm["requests"] + r["requests"])
        notes.append(fwd)
        if err != "0":
            notes.insert(0, "**errors: %s**" % err)
        row.update(rps=r["rps"], p50=r["p50"], p99=r["p99"])
    except Unmeasurable as e:
        row["fail"] = str(e)
        log("%s %s: not measured: %s" % (scen, row["path"], e))
    finally:
        if peer is not None:
            peer.stop()
            notes += peer.row_notes()
    row["notes"] = notes
    return row


def idle_row(ctx, peer):
    args = ctx.args
    ngx = ctx.nginx
    row = {"scen": "idle", "path": peer.name}
    notes = []
    holder = None
    try:
        peer.start("https")
        time.sleep(0.3)
        row["rss_fresh"] = group_mem_kib(peer.proc.pid)[0]
        issuer = sanity_https(ctx, peer, "small")
        notes.append("issuer \"%s\"" % issuer)
        time.sleep(0.5)
        base = group_mem_kib(peer.proc.pid)[0]
        if peer.static:
            argv = ["--connect", "127.0.0.1:%d" % peer.port]
        else:
            argv = ["--connect", "127.0.0.1:%d" % peer.port,
                    "--proxy-connect", "%s:%d" % (HOST, ngx.tls_port)]
        limit = 90
        argv = [sys.executable, HOLDER] + argv + [
            "--name", HOST, "--ca", peer.ca, "-n", str(args.tunnels),
            "--setup-limit", str(limit), "--hold", "120"]
        holder = subprocess.Popen(pinned(ctx.cpu_load, argv),
                                  stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE,
                                  start_new_session=True)
        ready, _, _ = select.select([holder.stdout], [], [], limit + 20)
        line = holder.stdout.readline() if ready else b""
        if not line:
            raise Unmeasurable("idle holder gave no result: %s"
                               % holder.stderr.read1(2000).decode(
                                   errors="replace") if ready else
                               "no answer in %ds" % (limit + 20))
        res = json.loads(line)
        time.sleep(1.0)
        peer.alive("the idle tunnels")
        held, hwm = group_mem_kib(peer.proc.pid)
        row["rss_peak"] = hwm
        row["rss_held"] = held
        if res["ok"]:
            row["per_tunnel"] = (held - base) / res["ok"]
        notes.append("%d/%d tunnels up (RSS %s before, %s held)"
                     % (res["ok"], args.tunnels, fmt_kib(base),
                        fmt_kib(held)))
        if res["errors"]:
            notes.insert(0, "**%d tunnel errors, first: %s**"
                         % (res["errors"], res["first_error"][:80]))
    except Unmeasurable as e:
        row["fail"] = str(e)
        log("idle %s: not measured: %s" % (peer.name, e))
    finally:
        if holder is not None:
            try:
                holder.stdin.close()
            except OSError:
                pass
            try:
                holder.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            stop(holder)
        peer.stop()
        notes += peer.row_notes()
    row["notes"] = notes
    return row


# --- table ---------------------------------------------------------------

def fmt_kib(k):
    if k is None:
        return "–"
    if k >= 1024:
        return "%.1f MiB" % (k / 1024)
    return "%d KiB" % k


def print_table(ctx, rows, header, notes):
    direct = {r["scen"]: r for r in rows if r["path"] == "direct"}
    titles = dict(SCENARIOS)
    print()
    for h in header:
        print(h)
    print()
    print("| scenario | path | req/s | ratio to direct | p50 | p99 "
          "| proxy CPU µs/req | RSS fresh | RSS peak | per idle tunnel "
          "| errors / notes |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
          "| ---: | --- |")
    for r in rows:
        scen = titles[r["scen"]]
        label = r["path"]
        kind = ("http" if r["scen"].startswith("http-") else
                "h2" if r["scen"].startswith("h2-") else "https")
        if (label, kind) in PATH_NOTES:
            label += " (%s)" % PATH_NOTES[label, kind]
        if "fail" in r:
            print("| %s | %s | not measured | | | | | | | | %s |"
                  % (scen, label, r["fail"].splitlines()[0][:160]
                     .replace("|", "/")))
            continue
        d = direct.get(r["scen"])
        rps = ratio = p50 = p99 = cpu = "–"
        if "rps" in r:
            rps = "%.0f" % r["rps"]
            if r.get("p50") is not None:
                p50, p99 = fmt_us(r["p50"]), fmt_us(r["p99"])
            if d and "rps" in d and r is not d:
                ratio = "%.2f" % (r["rps"] / d["rps"])
        if "cpu_us" in r:
            cpu = "%.0f" % r["cpu_us"]
        per = "–"
        if r.get("per_tunnel") is not None:
            per = "%.1f KiB" % r["per_tunnel"]
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |"
              % (scen, label, rps, ratio, p50, p99, cpu,
                 fmt_kib(r.get("rss_fresh")), fmt_kib(r.get("rss_peak")),
                 per, "; ".join(r["notes"]).replace("|", "/")))
    print()
    for n in notes:
        print("- " + n)


# --- main ----------------------------------------------------------------

class Ctx:
    pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peephole", required=True)
    ap.add_argument("--duration", type=int, default=5,
                    help="seconds per measured row (default 5)")
    ap.add_argument("--warmup", type=int, default=1,
                    help="seconds of unmeasured warm-up per row (default 1)")
    ap.add_argument("--connections", type=int, default=50,
                    help="wrk / tlsload connections (default 50)")
    ap.add_argument("--tunnels", type=int, default=1000,
                    help="idle tunnels held (default 1000)")
    ap.add_argument("--peers", default=",".join(PEER_ORDER),
                    help="comma-separated subset of %s" % ",".join(PEER_ORDER))
    ap.add_argument("--scenarios", default=",".join(s for s, _ in SCENARIOS),
                    help="comma-separated subset of %s"
                    % ",".join(s for s, _ in SCENARIOS))
    ap.add_argument("--budget", type=int, default=570,
                    help="seconds after which remaining rows are skipped "
                         "(default 570)")
    ap.add_argument("--peephole-before", metavar="PATH",
                    help="also measure this peephole binary, as the row "
                         "\"peephole-before\" (a before/after comparison "
                         "in one run)")
    ap.add_argument("--peephole-wrap", metavar="CMD",
                    help="run peephole under CMD, e.g. \"perf record -g "
                         "-o /tmp/p.data --\" (a profile of one row: "
                         "pair it with --scenarios)")
    ap.add_argument("--h2-requests", type=int, default=20000,
                    help="h2load requests for h2-small (default 20000)")
    ap.add_argument("--h2-requests-big", type=int, default=2000,
                    help="h2load requests for h2-1mib (default 2000)")
    ap.add_argument("--h2-clients", type=int, default=10,
                    help="h2load connections (default 10)")
    ap.add_argument("--h2-streams", type=int, default=10,
                    help="h2load concurrent streams per connection "
                         "(default 10)")
    ap.add_argument("--h2-timeout", type=int, default=180,
                    help="seconds one h2load run may take (default 180)")
    ap.add_argument("--no-install", action="store_true",
                    help="do not apt-get install missing peers")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temp dirs (configs, logs) for debugging")
    args = ap.parse_args()
    args.peephole = os.path.abspath(args.peephole)
    if args.peephole_before:
        args.peephole_before = os.path.abspath(args.peephole_before)
    command = " ".join(shlex.quote(a) for a in ["/usr/bin/python3"] +
                       sys.argv)
    peers_wanted = [p for p in args.peers.split(",") if p]
    if args.peephole_before:
        PEER_CLASSES["peephole-before"] = PeepholeBefore
        at = (peers_wanted.index("peephole") if "peephole" in peers_wanted
              else len(peers_wanted))
        peers_wanted.insert(at, "peephole-before")
    scens = [s for s in args.scenarios.split(",") if s]
    for p in peers_wanted:
        if p not in PEER_CLASSES:
            ap.error("unknown peer %r" % p)
    for s in scens:
        if s not in dict(SCENARIOS):
            ap.error("unknown scenario %r" % s)
    for path in (args.peephole, NGINX, bench.WRK, OPENSSL, bench.CC):
        if not os.access(path, os.X_OK):
            print("peers: cannot measure: %s is not an executable" % path,
                  file=sys.stderr)
            return 2

    # Children inherit this: 1000 tunnels are 2000+ descriptors in a proxy.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 16384 if hard == resource.RLIM_INFINITY else min(16384, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    notes = []
    t_start = time.monotonic()
    pkgs = {}
    needed = [PEER_PKG[p] for p in peers_wanted if p in PEER_PKG]
    if needed:
        if args.no_install:
            pkgs = {p: v for p in needed for v in [pkg_version(p)] if v}
            for p in needed:
                if p not in pkgs:
                    notes.append("package %s not installed: its peer is "
                                 "skipped" % p)
        else:
            pkgs = ensure_packages(needed, notes)
    peers_ok = [p for p in peers_wanted
                if p not in PEER_PKG or PEER_PKG[p] in pkgs]
    t_install = time.monotonic() - t_start

    cpus = sorted(os.sched_getaffinity(0))
    ctx = Ctx()
    ctx.args = args
    ctx.peephole = args.peephole
    if len(cpus) >= 2 and os.access(bench.TASKSET, os.X_OK):
        ctx.cpu_proxy, ctx.cpu_load = cpus[0], cpus[1]
        pinning = ("proxy under test pinned to CPU %d, nginx and the clients"
                   " to CPU %d" % (ctx.cpu_proxy, ctx.cpu_load))
    else:
        ctx.cpu_proxy = ctx.cpu_load = None
        pinning = "not pinned (%d CPU(s) available)" % len(cpus)
    busy = bench.busy_percent()

    ctx.tmp = tempfile.mkdtemp(prefix="peephole-peers-")
    ctx.cleanup = [ctx.tmp]
    ctx.nginx = None
    rows = []
    t_run = time.monotonic()
    deadline = t_run + args.budget
    try:
        pki = os.path.join(ctx.tmp, "pki")
        os.makedirs(pki)
        ctx.origin_ca, crt, key = make_origin(pki)
        ctx.tlsload, patched = build_tlsload(ctx.tmp)
        if patched:
            notes.append("tlsload.c compiled with a Host header that "
                         "carries the port (%s)" % patched)
        ctx.nginx = Nginx(ctx.tmp, ctx.cpu_load, crt, key)
        log("nginx on 127.0.0.1:%d and TLS on %d; %s"
            % (ctx.nginx.port, ctx.nginx.tls_port, pinning))
        peers = []
        for name in peers_ok:
            p = PEER_CLASSES[name](name, ctx)
            try:
                p.prepare()
            except Unmeasurable as e:
                notes.append("%s skipped: set-up failed: %s"
                             % (name, str(e).splitlines()[0]))
                continue
            peers.append(p)
        for scen, title in SCENARIOS:
            if scen not in scens:
                continue
            paths = ([None] if scen != "idle" else []) + peers
            if scen.startswith("h2-"):
                if not os.access(H2LOAD, os.X_OK):
                    notes.append("%s not measured: no %s (Debian's "
                                 "nghttp2-client)" % (scen, H2LOAD))
                    continue
                paths = [None] + [p for p in peers if p.h2]
            for peer in paths:
                pname = "direct" if peer is None else peer.name
                if time.monotonic() > deadline:
                    rows.append({"scen": scen, "path": pname,
                                 "fail": "skipped: --budget %ds spent"
                                 % args.budget, "notes": []})
                    continue
                log("%s: %s" % (title, pname))
                if scen == "idle":
                    rows.append(idle_row(ctx, peer))
                elif scen.startswith("h2-"):
                    rows.append(h2_row(ctx, scen, peer))
                else:
                    rows.append(load_row(ctx, scen, peer))
                if ctx.nginx.proc.poll() is not None:
                    raise Unmeasurable("nginx exited (status %s)\n%s"
                                       % (ctx.nginx.proc.returncode,
                                          tail(ctx.nginx.log)))
    except Unmeasurable as e:
        notes.append("**run stopped: %s**" % str(e).replace("\n", " "))
        log(str(e))
    finally:
        if ctx.nginx is not None:
            ctx.nginx.stop()
        for d in ctx.cleanup:
            if args.keep:
                log("kept %s" % d)
            else:
                shutil.rmtree(d, ignore_errors=True)
    elapsed = time.monotonic() - t_run

    vers = ", ".join("%s %s" % (p, v) for p, v in sorted(pkgs.items()))
    header = [
        "peephole vs peers: %s; %s; %d s per row (+%d s warm-up), %d "
        "connections; %s." % (bench.machine_line(), vers or "no peers",
                              args.duration, args.warmup, args.connections,
                              pinning),
        "Command: `%s`" % command,
    ]
    if busy is not None and busy > 10:
        header.append("")
        header.append("**Warning: the machine was %.0f%% busy before the "
                      "run (other processes); the numbers are unreliable.**"
                      % busy)
    notes += [
        "Clients: wrk 1 thread (plain HTTP; absolute-URI requests to the "
        "proxies, origin-form to nginx and sslsplit); tlsload.c (HTTPS: "
        "one thread per connection, CONNECT then TLS verified against the "
        "CA of the path: the origin's for direct and tinyproxy, the "
        "peer's own for the others; new-connection rows do TCP + CONNECT "
        "+ full handshake per request, no resumption); "
        "peers/idle_holder.py (idle rows: %d tunnels, each CONNECT + full "
        "TLS handshake, then nothing)." % args.tunnels,
        "Proxy CPU: utime+stime over the proxy's process group (reaped "
        "helpers included) during the measured run, per completed request. "
        "RSS: sum of VmRSS over the group just after start (fresh), sum of "
        "VmHWM at the end of the row (peak); a fresh proxy per row. Per "
        "idle tunnel: (VmRSS with the tunnels held − VmRSS before) / "
        "tunnels up.",
        "Forwarding check: nginx access-log lines during the row against "
        "the requests the client completed (warm-up, run and one sanity "
        "request). Interception check: issuer of the certificate a stdlib "
        "client saw in a sanity request, trusting only that path's CA.",
        "peephole: --workers 1, flow recording on (its default; the peers "
        "record nothing). mitmproxy: mitmdump -q, upstream verified against "
        "the origin CA. squid: ssl-bump `bump all` (client-first), "
        "upstream verified against the origin CA, no cache. sslsplit: "
        "static destination (`tcp` spec for plain HTTP, `ssl` for HTTPS), "
        "no HTTP parsing, does not verify the origin's certificate. "
        "tinyproxy: HTTPS is a CONNECT tunnel; in plain HTTP it closes "
        "the client connection after every response without saying so "
        "(no `Connection: close`), so wrk's next request on it fails: "
        "its socket read errors are those, and each request pays a new "
        "TCP connection.",
        "HTTP/2 rows: h2load (nghttp2) -n N -c %d -m %d, one thread, TLS "
        "with SNI localhost, ALPN h2 only (`--npn-list=h2`: a path that "
        "cannot give h2 fails the row rather than measure HTTP/1.1), "
        "verifying nothing; it has no proxy support, so mitmproxy runs in "
        "reverse mode (`--mode reverse:https://...`, upstream verified, "
        "`connection_strategy=lazy` so that the origin is offered the "
        "client's ALPN) and peephole with a reverse listener "
        "(`reverse@ADDR:PORT=HOST:PORT`); tinyproxy, squid, sslsplit and "
        "the nginx reverse proxy have no h2-to-h2 path and are not "
        "measured. h2load gives a mean, not percentiles (in the notes). "
        "The second ALPN in the notes is what the path gave a stdlib "
        "client offering h2 and http/1.1."
        % (args.h2_clients, args.h2_streams),
        "Package install/check took %.0f s; rows took %.0f s."
        % (t_install, elapsed),
    ]
    print_table(ctx, rows, header, notes)
    return 0 if any("fail" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
