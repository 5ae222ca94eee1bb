"""
Fixtures for the HTTPS-interception tests driven by a browser and by raw
sockets: an origin PKI made with the openssl CLI (a CA and one leaf for
alpha.test and beta.test), nginx serving TLS with that leaf, a TCP echo
origin, a proxy factory that trusts the origin CA, and helpers to build and
finish a TLS handshake by hand (ssl.MemoryBIO) over a CONNECT tunnel.

Everything from ../conftest.py (nginx, dns_stub, start_proxy, RawConn, DB,
wait_for, ...) is reused; nothing here starts a process that is not
stopped by PID at teardown, and every wait is bounded.
"""
import os
import signal
import socket
import sqlite3
import ssl
import struct
import subprocess
import threading
import time
import zlib

import pytest

from conftest import (SANITIZER_MARKS, Nginx, RawConn, free_port,
                      kill_proc, token, wait_for)

OPENSSL = "/usr/bin/openssl"
ORIGIN_NAMES = ("alpha.test", "beta.test")

# connections columns added by store v2 (proxy/store/schema.c); canonical
# name -> column, as CONN_COLS in ../conftest.py
TLS_CONN_COLS = {k: k for k in (
    "id", "client_port", "target_host", "target_port", "protocol", "sni",
    "alpn", "decision", "decision_reason", "tls_client", "tls_server",
    "upstream_cert_subject", "verify_error", "close_reason", "error",
    "bytes_from_client", "bytes_to_client", "bytes_to_server",
    "bytes_from_server", "t_close_us", "nrequests")}


# --------------------------------------------------------------------------
# origin PKI (openssl CLI)


def _openssl(*args, cwd):
    cp = subprocess.run([OPENSSL] + list(args), cwd=str(cwd),
                        stdin=subprocess.DEVNULL, capture_output=True,
                        text=True, timeout=30)
    if cp.returncode != 0:
        raise RuntimeError("openssl %s failed:\n%s" % (args[0], cp.stderr))


class OriginPKI:
    def __init__(self, d):
        self.dir = d
        self.ca = d / "origin-ca.pem"
        self.ca_key = d / "origin-ca.key"
        self.cert = d / "origin.pem"
        self.key = d / "origin.key"


@pytest.fixture(scope="session")
def origin_pki(tmp_path_factory):
    """An origin CA and a leaf (CN alpha.test, SANs alpha.test and
    beta.test) signed by it."""
    d = tmp_path_factory.mktemp("origin-pki")
    p = OriginPKI(d)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-nodes", "-keyout", p.ca_key.name,
             "-out", p.ca.name, "-days", "30",
             "-subj", "/CN=peephole e2e origin CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", p.key.name, "-out", "origin.csr",
             "-subj", "/CN=alpha.test", cwd=d)
    (d / "ext.cnf").write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=" + ",".join("DNS:" + n for n in ORIGIN_NAMES) +
        "\n")
    _openssl("x509", "-req", "-in", "origin.csr", "-CA", p.ca.name,
             "-CAkey", p.ca_key.name, "-CAcreateserial", "-days", "30",
             "-sha256", "-extfile", "ext.cnf", "-out", p.cert.name, cwd=d)
    return p


# --------------------------------------------------------------------------
# nginx with TLS: page.html on alpha.test pulls img.png and script.js
# from beta.test


def png_1x1():
    """A valid 1x1 RGB PNG (so the browser's decoder accepts it)."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
            chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) +
            chunk(b"IEND", b""))


class TlsNginx(Nginx):
    """The parent's Nginx, plus a TLS server for alpha.test/beta.test."""

    def __init__(self, root, pki):
        super().__init__(root)
        self.pki = pki
        self.tls_port = free_port()
        for _ in range(20):  # two probes may pick the same free port
            if self.tls_port != self.port:
                break
            self.tls_port = free_port()
        self.marker = "script-ran-" + token()

    def conf(self):
        base = super().conf().rstrip()
        assert base.endswith("}")
        tls = f"""
    server {{
        listen 127.0.0.1:{self.tls_port} ssl;
        server_name alpha.test beta.test;
        ssl_certificate {self.pki.cert};
        ssl_certificate_key {self.pki.key};
        root {self.www};
        access_log {self.root}/tls-access.log t;
        types {{ text/html html; application/javascript js;
                 image/png png; text/plain txt; }}
        location / {{ }}
    }}
"""
        return base[:-1] + tls + "}\n"

    def build_site(self):
        beta = f"https://beta.test:{self.tls_port}"
        self.add_file("page.html", (
            "<!doctype html>\n<html><head><title>peephole e2e</title>"
            "</head><body>\n"
            "<p id=\"img\">img-pending</p>\n"
            f"<img src=\"{beta}/img.png\" onload=\"document.getElementById("
            "'img').textContent='img-loaded-'+this.naturalWidth\" "
            "onerror=\"document.getElementById('img').textContent="
            "'img-failed'\">\n"
            "<p id=\"marker\">script-pending</p>\n"
            f"<script src=\"{beta}/script.js\"></script>\n"
            "</body></html>\n").encode())
        self.add_file("script.js", (
            "document.getElementById('marker').textContent = '%s';\n"
            % self.marker).encode())
        self.add_file("img.png", png_1x1())
        self.add_file("small", b"small-over-tls\n" * 4)


@pytest.fixture(scope="session")
def tls_nginx(tmp_path_factory, origin_pki):
    n = TlsNginx(tmp_path_factory.mktemp("tls-nginx"), origin_pki)
    n.www.mkdir(parents=True)
    n.build_site()
    n.start()
    yield n
    n.stop()


# --------------------------------------------------------------------------
# TCP echo origin


class EchoOrigin:
    """Sends every byte back on the connection it came from."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.conns = []
        self.received = []  # bytes per connection, in accept order
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
                self.conns.append(c)
                idx = len(self.received)
                self.received.append(bytearray())
            threading.Thread(target=self._serve, args=(c, idx),
                             daemon=True).start()

    def _serve(self, c, idx):
        c.settimeout(15)
        try:
            for _ in range(1000000):
                d = c.recv(65536)
                if not d:
                    break
                with self.lock:
                    self.received[idx] += d
                c.sendall(d)
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def stop(self):
        self.stopping = True
        self.lsock.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.close()
                except OSError:
                    pass
        self.thread.join(timeout=2)


@pytest.fixture(scope="session")
def echo_origin():
    e = EchoOrigin()
    yield e
    e.stop()


# --------------------------------------------------------------------------
# the proxy, intercepting, trusting the origin CA


@pytest.fixture
def tls_proxy(start_proxy, origin_pki, tmp_path):
    """Factory: tls_proxy(**conf) -> Proxy with a fresh home (its CA is
    home/ca.pem, as .ca_pem) and the origin CA as upstream-ca."""
    n = [0]

    def _start(conf_extra=None, **kw):
        home = tmp_path / f"home{n[0]}"
        n[0] += 1
        conf = {"home": str(home), "upstream-ca": str(origin_pki.ca)}
        conf.update(conf_extra or {})
        p = start_proxy(conf_extra=conf, **kw)
        p.home = home
        p.ca_pem = home / "ca.pem"
        assert wait_for(p.ca_pem.exists, 5), "no CA at %s" % p.ca_pem
        return p

    return _start


def tls_conns(p, where="", params=()):
    """connections rows with the TLS columns, as dicts."""
    c = sqlite3.connect(str(p.db), timeout=10)
    try:
        c.row_factory = sqlite3.Row
        sel = ", ".join(f"{real} AS {canon}"
                        for canon, real in TLS_CONN_COLS.items())
        q = f"SELECT {sel} FROM connections"
        if where:
            q += " WHERE " + where
        return [dict(r) for r in c.execute(q + " ORDER BY rowid", params)]
    finally:
        c.close()


def wait_conns(p, pred, n=1, timeout=5.0):
    """While the proxy runs (WAL): connection rows matching pred, once
    there are >= n of them (else what there is)."""
    def f():
        try:
            rs = [r for r in tls_conns(p) if pred(r)]
        except sqlite3.Error:
            return None
        return rs if len(rs) >= n else None
    got = wait_for(f, timeout)
    if got:
        return got
    try:
        return [r for r in tls_conns(p) if pred(r)]
    except sqlite3.Error:
        return []


def assert_alive(p):
    assert p.proc.poll() is None, (
        "proxy died (rc %s); stderr tail:\n%s"
        % (p.proc.returncode, p.stderr()[-3000:]))


def stop_clean(p):
    """SIGTERM by PID; exit 0 and no sanitizer report, or fail."""
    rc = p.stop(signal.SIGTERM)
    err = p.stderr()
    assert rc == 0, "proxy exit %s on SIGTERM; stderr tail:\n%s" % (
        rc, err[-3000:])
    for m in SANITIZER_MARKS:
        assert m not in err, "sanitizer report:\n" + err[-6000:]


# --------------------------------------------------------------------------
# tunnels and hand-driven TLS


def open_tunnel(p, host, port, timeout=10.0):
    """CONNECT host:port through p; returns the RawConn after the 200."""
    rc = RawConn(p.port, timeout=timeout)
    rc.send(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "\r\n".encode())
    r = rc.read_head()
    assert r.status == 200, r.raw_head
    return rc


class MemTLS:
    """A TLS client over an ssl.MemoryBIO pair; the caller moves bytes."""

    def __init__(self, cafile, server_hostname, alpn=("http/1.1",)):
        ctx = ssl.create_default_context(cafile=str(cafile))
        if alpn:
            ctx.set_alpn_protocols(list(alpn))
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out,
                                server_hostname=server_hostname)

    def client_hello(self):
        """The first flight (the ClientHello record), without sending."""
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        else:
            raise AssertionError("handshake finished with no peer")
        return self.out.read()

    def pump_handshake(self, sock, deadline):
        """Finish the handshake over sock (hello already sent)."""
        for _ in range(1000):
            try:
                self.obj.do_handshake()
                data = self.out.read()
                if data:
                    sock.sendall(data)
                return
            except ssl.SSLWantReadError:
                data = self.out.read()
                if data:
                    sock.sendall(data)
                if time.monotonic() > deadline:
                    raise TimeoutError("TLS handshake not done in time")
                d = sock.recv(65536)
                if not d:
                    raise EOFError("peer closed during the handshake")
                self.inc.write(d)
        raise AssertionError("handshake: too many rounds")

    def send(self, sock, data):
        self.obj.write(data)
        sock.sendall(self.out.read())

    def recv_response(self, sock, deadline):
        """Read an HTTP/1.1 response with a Content-Length; (head, body)."""
        buf = bytearray()
        for _ in range(100000):
            try:
                buf += self.obj.read(65536)
            except ssl.SSLWantReadError:
                if time.monotonic() > deadline:
                    raise TimeoutError("no response in time")
                d = sock.recv(65536)
                if not d:
                    raise EOFError("peer closed: %r" % bytes(buf))
                self.inc.write(d)
                continue
            i = buf.find(b"\r\n\r\n")
            if i < 0:
                continue
            head = bytes(buf[:i]).decode("latin-1")
            cl = 0
            for ln in head.split("\r\n")[1:]:
                k, _, v = ln.partition(":")
                if k.strip().lower() == "content-length":
                    cl = int(v)
            if len(buf) >= i + 4 + cl:
                return head, bytes(buf[i + 4:i + 4 + cl])
        raise AssertionError("response: too many reads")


def kill_group(proc, timeout=5.0):
    """Stop a subprocess started with start_new_session=True: its process
    group is the one it leads (pgid == its PID), so only what we started
    is signalled. Helpers that outlive a clean exit of the browser
    (crashpad) go too."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_proc(proc, signal.SIGKILL, timeout)
