"""
Fixtures for the HTTPS-interception tests: a test origin CA and server
certificates made with the openssl CLI, nginx serving them over TLS on
loopback (one port per certificate, plus a plain-HTTP port), a
server-speaks-first TCP server, and a proxy factory that gives every proxy
its own CA home and accepts extra command-line flags.

The parent directory's fixtures (dns_stub, nginx, start_proxy, ...) and
helpers (Proxy, RawConn, curl, run_cli, DB, ...) are reused: this directory
is a package, so this module is `tls.conftest` and the parent's module
stays importable as `conftest`.
"""
import hashlib
import json
import os
import random
import signal
import socket
import sqlite3
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import (NGINX, PEEPHOLE_BIN, SANITIZER_MARKS, Proxy, RawConn,
                      curl, free_port, kill_proc, nginx_conf, wait_for,
                      wait_listen)

OPENSSL = "/usr/bin/openssl"


def sha256_hex(b):
    return hashlib.sha256(b).hexdigest()


def _run(argv, **kw):
    cp = subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL,
                        capture_output=True, timeout=60, **kw)
    if cp.returncode != 0:
        raise RuntimeError("%s failed (%d):\n%s" % (
            " ".join(map(str, argv)), cp.returncode,
            cp.stderr.decode(errors="replace")))
    return cp.stdout


def openssl_x509(data, *opts, inform="PEM"):
    """`openssl x509 -noout OPTS` over a certificate (bytes); text out."""
    cp = subprocess.run([OPENSSL, "x509", "-inform", inform, "-noout",
                         "-nameopt", "RFC2253"] + list(opts),
                        input=data, capture_output=True, timeout=30)
    if cp.returncode != 0:
        raise RuntimeError("openssl x509: " + cp.stderr.decode())
    return cp.stdout.decode()


def pem_to_der(pem):
    return _run_input([OPENSSL, "x509", "-outform", "DER"], pem)


def _run_input(argv, data):
    cp = subprocess.run(argv, input=data, capture_output=True, timeout=30)
    if cp.returncode != 0:
        raise RuntimeError(" ".join(argv) + ": " + cp.stderr.decode())
    return cp.stdout


# --------------------------------------------------------------------------
# certificates (openssl CLI)


OPENSSL_CNF = """
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused
[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ leaf_alpha ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:alpha.test, DNS:beta.test, IP:127.0.0.1
[ leaf_wrong ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:wrong.test
[ leaf_self ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment, keyCertSign
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
subjectAltName = DNS:alpha.test, IP:127.0.0.1
[ ca ]
default_ca = ca_default
[ ca_default ]
dir = {d}
database = {d}/index.txt
new_certs_dir = {d}/newcerts
serial = {d}/serial
default_md = sha256
policy = policy_any
unique_subject = no
[ policy_any ]
commonName = supplied
"""


class Certs:
    """Origin CA and server certificates under one directory.

    good:    CN alpha.test, SAN alpha.test beta.test 127.0.0.1, origin CA
    expired: same names, origin CA, valid Jan 2020 only (`openssl ca
             -startdate/-enddate`)
    wrong:   CN wrong.test, SAN wrong.test only, origin CA
    self:    CN alpha.test, self-signed
    """

    def __init__(self, d):
        self.dir = d
        cnf = d / "openssl.cnf"
        cnf.write_text(OPENSSL_CNF.replace("{d}", str(d)))
        (d / "newcerts").mkdir()
        (d / "index.txt").write_text("")
        (d / "serial").write_text("1000\n")
        self.cnf = cnf
        self.ca_key = d / "origin-ca.key"
        self.ca = d / "origin-ca.pem"
        self._key(self.ca_key)
        _run([OPENSSL, "req", "-x509", "-new", "-config", cnf,
              "-key", self.ca_key,
              "-subj", "/O=peephole tests/CN=Test Origin CA",
              "-days", "30", "-extensions", "v3_ca", "-out", self.ca])
        self.good = self._leaf("good", "alpha.test", "leaf_alpha")
        self.wrong = self._leaf("wrong", "wrong.test", "leaf_wrong")
        self.expired = self._expired("expired", "alpha.test")
        key = d / "self.key"
        self._key(key)
        crt = d / "self.pem"
        _run([OPENSSL, "req", "-x509", "-new", "-config", cnf, "-key", key,
              "-subj", "/CN=alpha.test", "-days", "30",
              "-extensions", "leaf_self", "-out", crt])
        self.self_signed = (crt, key)

    def _key(self, path):
        _run([OPENSSL, "genpkey", "-algorithm", "EC", "-pkeyopt",
              "ec_paramgen_curve:P-256", "-out", path])
        os.chmod(path, 0o600)

    def _csr(self, name, cn):
        key = self.dir / f"{name}.key"
        csr = self.dir / f"{name}.csr"
        self._key(key)
        _run([OPENSSL, "req", "-new", "-config", self.cnf, "-key", key,
              "-subj", f"/CN={cn}", "-out", csr])
        return key, csr

    def _leaf(self, name, cn, ext):
        key, csr = self._csr(name, cn)
        crt = self.dir / f"{name}.pem"
        _run([OPENSSL, "x509", "-req", "-in", csr, "-CA", self.ca,
              "-CAkey", self.ca_key, "-set_serial",
              str(random.randrange(1, 1 << 62)), "-days", "30",
              "-extfile", self.cnf, "-extensions", ext, "-out", crt])
        return crt, key

    def _expired(self, name, cn):
        key, csr = self._csr(name, cn)
        crt = self.dir / f"{name}.pem"
        _run([OPENSSL, "ca", "-batch", "-config", self.cnf, "-notext",
              "-cert", self.ca, "-keyfile", self.ca_key, "-in", csr,
              "-startdate", "20200101000000Z", "-enddate", "20200201000000Z",
              "-extfile", self.cnf, "-extensions", "leaf_alpha",
              "-out", crt])
        return crt, key

    def der(self, crt):
        return pem_to_der(Path(crt).read_bytes())


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    return Certs(tmp_path_factory.mktemp("certs"))


# --------------------------------------------------------------------------
# nginx over TLS


TLS_LOG_FIELDS = {
    "method": "$request_method", "uri": "$request_uri", "status": "$status",
    "server_port": "$server_port", "scheme": "$scheme", "host": "$http_host",
    "sni": "$ssl_server_name", "ssl_protocol": "$ssl_protocol",
    "body": "$request_body", "content_length": "$content_length",
    "bytes_sent": "$body_bytes_sent", "connection": "$connection",
    "connection_requests": "$connection_requests",
    "reused": "$ssl_session_reused",
}


class TlsNginx:
    """One nginx: a plain-HTTP port and one TLS port per certificate; the
    "good" port offers h2 as well as http/1.1 in ALPN."""

    KINDS = ("good", "expired", "wrong", "self")

    def __init__(self, root, certs):
        self.root = root
        self.www = root / "www"
        self.log = root / "access.log"
        self.certs = certs
        self.plain_port = free_port()
        self.ports = {k: free_port() for k in self.KINDS}
        self.files = {}
        self.proc = None

    @property
    def port(self):
        return self.ports["good"]

    def add_file(self, name, data):
        (self.www / name).write_bytes(data)
        self.files[name] = data

    def _server(self, listen, crt=None, key=None):
        tls = ""
        if crt is not None:
            tls = (f"ssl_certificate {crt};\n"
                   f"        ssl_certificate_key {key};\n")
        return f"""
    server {{
        listen {listen};
        server_name _;
        root {self.www};
        access_log {self.log} t;
        {tls}
        location / {{ }}
        location /upload {{
            client_max_body_size 0;
            client_body_buffer_size 16m;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:{self.plain_port}/sink;
        }}
        location /sink {{
            access_log off;
            client_max_body_size 0;
            return 200 "ok\\n";
        }}
    }}"""

    def conf(self):
        r = self.root
        c = self.certs
        pairs = {"good": c.good, "expired": c.expired, "wrong": c.wrong,
                 "self": c.self_signed}
        servers = self._server(f"127.0.0.1:{self.plain_port}")
        for k in self.KINDS:
            crt, key = pairs[k]
            # the good origin also speaks h2 (ALPN h2,http/1.1), as most do
            h2 = " http2" if k == "good" else ""
            servers += self._server(f"127.0.0.1:{self.ports[k]} ssl{h2}",
                                    crt, key)
        return nginx_conf(r, TLS_LOG_FIELDS, "image/jpeg jpg; text/plain txt;",
                          servers)

    def start(self):
        self.www.mkdir(parents=True, exist_ok=True)
        (self.root / "nginx.conf").write_text(self.conf())
        self.stderr = open(self.root / "nginx.stderr", "wb")
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(self.root), "-c", str(self.root / "nginx.conf"),
             "-g",
             f"daemon off; pid {self.root}/nginx.pid; error_log stderr;"],
            stdin=subprocess.DEVNULL, stdout=self.stderr, stderr=self.stderr)
        for p in [self.plain_port] + list(self.ports.values()):
            if not wait_listen(p, 10, self.proc):
                kill_proc(self.proc)
                raise RuntimeError("nginx did not start: " +
                                   (self.root / "nginx.stderr").read_text())

    def stop(self):
        if self.proc:
            kill_proc(self.proc, signal.SIGQUIT)
            self.stderr.close()

    def entries(self):
        try:
            text = self.log.read_text()
        except FileNotFoundError:
            return []
        out = []
        for ln in text.splitlines():
            try:
                out.append(json.loads(ln))
            except ValueError:
                pass
        return out

    def entries_with(self, tok):
        return [e for e in self.entries() if tok in e["uri"]]

    def wait_entries(self, tok, n=1, timeout=5.0):
        got = wait_for(lambda: (lambda es: es if len(es) >= n else None)(
            self.entries_with(tok)), timeout)
        return got or self.entries_with(tok)


@pytest.fixture(scope="session")
def tls_nginx(tmp_path_factory, certs):
    n = TlsNginx(tmp_path_factory.mktemp("tls-nginx"), certs)
    n.www.mkdir(parents=True)
    rnd = random.Random(4321)
    n.add_file("small", bytes(rnd.choice(b"klmnopqrst") for _ in range(100)))
    n.add_file("second", b"second\n" * 40)
    n.add_file("img.jpg", b"\xff\xd8\xff\xe0" +
               rnd.randbytes(1536 * 1024 + 13 - 4))
    n.start()
    yield n
    n.stop()


# --------------------------------------------------------------------------
# a server-speaks-first TCP server: sends a banner, then echoes a line


class BannerServer:
    BANNER = b"220 banner.test ESMTP ready\r\n"

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.received = []
        self.nconn = 0
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.nconn += 1
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _serve(self, c):
        c.settimeout(10)
        try:
            c.sendall(self.BANNER)
            buf = b""
            for _ in range(1000):
                d = c.recv(4096)
                if not d:
                    break
                buf += d
                if b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    with self.lock:
                        self.received.append(line)
                    c.sendall(b"250 got " + line + b"\r\n")
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.stopping = True
        self.thread.join(timeout=2)
        self.lsock.close()


@pytest.fixture(scope="session")
def banner_server():
    b = BannerServer()
    yield b
    b.stop()


# --------------------------------------------------------------------------
# the proxy, with a CA home of its own and extra flags


class TlsProxy(Proxy):
    """Proxy started with `--home DIR/home` (unless told otherwise) and
    extra flags; restart() keeps the db and home and appends to stderr."""

    def __init__(self, workdir, dns_port, args=(), conf_extra=None,
                 home=True, workers=2, env_extra=None, quiet=True):
        super().__init__(workdir, dns_port, conf_extra, quiet, workers,
                         env_extra)
        self.home = workdir / "home" if home is True else home
        self.args = list(args)
        self.expect_nonzero = False
        self.port = None

    @property
    def ca_pem(self):
        return self.home / "ca.pem"

    def argv(self):
        argv = [PEEPHOLE_BIN, "run", "--listen", f"127.0.0.1:{self.port}",
                "--db", str(self.db), "--conf", str(self.conf_path),
                "--workers", str(self.workers)]
        if self.quiet:
            argv.append("--quiet")
        if self.home is not None:
            argv += ["--home", str(self.home)]
        return argv + [str(a) for a in self.args]

    def start(self):
        last = ""
        for _ in range(3):  # the free port can be taken in between; retry
            self.port = free_port()
            self.out = open(self.stdout_path, "ab")
            self.err = open(self.stderr_path, "ab")
            self.rc = None
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                         stdout=self.out, stderr=self.err,
                                         cwd=str(self.dir), env=self.env)
            if wait_listen(self.port, 20, self.proc):
                return self
            kill_proc(self.proc, signal.SIGKILL)
            self.rc = self.proc.returncode
            self.out.close()
            self.err.close()
            last = self.stderr_path.read_text(errors="replace")
        raise RuntimeError("peephole did not start:\n" + last[-4000:])

    def restart(self):
        rc = self.stop()
        assert rc == 0, f"proxy exit code {rc}:\n{self.stderr()[-3000:]}"
        return self.start()

    def rows(self, sql, params=()):
        c = sqlite3.connect(str(self.db), timeout=10)
        try:
            c.row_factory = sqlite3.Row
            return [dict(r) for r in c.execute(sql, params)]
        finally:
            c.close()

    def wait_rows(self, sql, params=(), n=1, timeout=5.0):
        """Rows of sql once there are at least n (bounded wait)."""
        def f():
            try:
                rs = self.rows(sql, params)
            except sqlite3.Error:
                return None
            return rs if len(rs) >= n else None
        return wait_for(f, timeout) or self.rows(sql, params)


@pytest.fixture
def tls_proxy(tmp_path, dns_stub):
    """Factory: tls_proxy(*flags, conf_extra={...}, home=True) -> TlsProxy,
    started. Stopped at teardown; a non-zero exit or a sanitizer report
    fails the test."""
    started = []

    def _start(*args, conf_extra=None, home=True, env_extra=None,
               start=True, quiet=True):
        d = tmp_path / f"tproxy{len(started)}"
        d.mkdir()
        p = TlsProxy(d, dns_stub.port, args, conf_extra, home,
                     env_extra=env_extra, quiet=quiet)
        started.append(p)
        return p.start() if start else p

    yield _start
    problems = []
    for p in started:
        if p.proc is None:
            continue
        rc = p.stop()
        err = p.stderr()
        if rc != 0 and not p.expect_nonzero:
            problems.append(f"proxy exit code {rc} (want 0); stderr tail:\n"
                            + err[-3000:])
        for m in SANITIZER_MARKS:
            if m in err:
                problems.append(f"sanitizer report ({m}):\n" + err[-6000:])
                break
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


# --------------------------------------------------------------------------
# clients


def tunnel(p, host, port, timeout=10.0):
    """A RawConn through which CONNECT host:port succeeded."""
    rc = RawConn(p.port, timeout)
    rc.send(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n"
            .encode())
    r = rc.read_head()
    assert r.status == 200, r.raw_head
    assert not rc.buf, "bytes after the CONNECT answer: %r" % bytes(rc.buf)
    return rc


def tls_over_tunnel(p, host, port, cafile=None, alpn=None, verify=True,
                    timeout=10.0):
    """CONNECT through p, then a TLS handshake with SNI host. Returns the
    SSLSocket (the caller closes it)."""
    rc = tunnel(p, host, port, timeout)
    ctx = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    try:
        return ctx.wrap_socket(rc.sock, server_hostname=host)
    except BaseException:
        rc.close()
        raise


def https_get(s, host, path, extra=b""):
    """One HTTP/1.1 GET over an established TLS socket: (status, body)."""
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n".encode() + extra +
              b"\r\n")
    buf = b""
    for _ in range(100000):
        if b"\r\n\r\n" in buf:
            break
        d = s.recv(65536)
        if not d:
            raise EOFError("closed before the head")
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    cl = None
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        if k.strip().lower() == "content-length":
            cl = int(v.strip())
    assert cl is not None, head
    for _ in range(100000):
        if len(body) >= cl:
            break
        d = s.recv(65536)
        if not d:
            raise EOFError("closed in the body")
        body += d
    return status, body[:cl]


def tcurl(p, url, *args, cacert=True, timeout=20):
    """curl through p; cacert=True trusts p's CA, a path trusts that file,
    None trusts nothing but the system store."""
    extra = []
    if cacert is True:
        extra = ["--cacert", str(p.ca_pem)]
    elif cacert is not None:
        extra = ["--cacert", str(cacert)]
    return curl(p, url, *(extra + list(args)), timeout=timeout)


def conn_rows(p, where="1", params=()):
    return p.rows(f"SELECT * FROM connections WHERE {where} ORDER BY id",
                  params)


def req_rows(p, where="1", params=()):
    return p.rows(f"SELECT * FROM requests WHERE {where} ORDER BY id",
                  params)


def learned_rows(p):
    return p.rows("SELECT * FROM learned_passthrough ORDER BY host, port")
