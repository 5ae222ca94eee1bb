"""
Fixtures for the stream tests: the proxy with a SOCKS5 (and optionally a
transparent) listener next to its HTTP one, scriptable TCP origins on any
loopback address (IPv4, 127.0.0.5, ::1), a SOCKS5 client on raw sockets
that counts every byte it sends and gets, mmTLS record builders, and
helpers over the stream columns of the database.

The parent directory's fixtures (dns_stub, nginx, ...) and helpers (Proxy,
run_cli, wait_for, ...) are reused: this directory is a package, so this
module is `streams.conftest` and the parent's stays importable as
`conftest`.
"""
import hashlib
import json
import os
import signal
import socket
import sqlite3
import struct
import subprocess
import threading

import pytest

from conftest import (PEEPHOLE_BIN, SANITIZER_MARKS, Proxy, free_port,
                      kill_proc, run_cli, wait_for, wait_listen)


def sha(b):
    return hashlib.sha256(bytes(b)).hexdigest()


# --------------------------------------------------------------------------
# the proxy with extra listeners


class StreamProxy(Proxy):
    """Proxy listening on http@127.0.0.1:port, socks5@127.0.0.1:socks_port
    and, when asked, transparent@127.0.0.1:tport. hosts_extra lines are
    added to the proxy's hosts file."""

    def __init__(self, workdir, dns_port, conf_extra=None, transparent=False,
                 hosts_extra=(), args=(), quiet=True):
        super().__init__(workdir, dns_port, conf_extra, quiet, 2)
        if hosts_extra:
            with open(self.hosts, "a") as f:
                f.write("".join(h + "\n" for h in hosts_extra))
        self.transparent = transparent
        self.args = list(args)
        self.port = self.socks_port = self.tport = None

    def argv(self):
        a = [PEEPHOLE_BIN, "run", "--listen", f"127.0.0.1:{self.port}",
             "--listen", f"socks5@127.0.0.1:{self.socks_port}"]
        if self.transparent:
            a += ["--listen", f"transparent@127.0.0.1:{self.tport}"]
        return a + ["--db", str(self.db), "--conf", str(self.conf_path),
                    "--workers", str(self.workers)] + \
            (["--quiet"] if self.quiet else []) + self.args

    def start(self):
        last = ""
        for _ in range(3):  # a free port can be taken in between; retry
            self.port, self.socks_port, self.tport = \
                free_port(), free_port(), free_port()
            if len({self.port, self.socks_port, self.tport}) < 3:
                continue
            self.out = open(self.stdout_path, "ab")
            self.err = open(self.stderr_path, "ab")
            self.rc = None
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                         stdout=self.out, stderr=self.err,
                                         cwd=str(self.dir), env=self.env)
            ports = [self.port, self.socks_port] + \
                ([self.tport] if self.transparent else [])
            if all(wait_listen(p, 20, self.proc) for p in ports):
                return self
            kill_proc(self.proc, signal.SIGKILL)
            self.rc = self.proc.returncode
            self.out.close()
            self.err.close()
            last = self.stderr_path.read_text(errors="replace")
        raise RuntimeError("peephole did not start:\n" + last[-4000:])

    @property
    def socks_url(self):
        return f"socks5h://127.0.0.1:{self.socks_port}"

    # -- the database (SELECT * so every stream column is there)

    def rows(self, sql, params=()):
        c = sqlite3.connect(str(self.db), timeout=10)
        try:
            c.row_factory = sqlite3.Row
            return [dict(r) for r in c.execute(sql, params)]
        finally:
            c.close()

    def wait_rows(self, sql, params=(), n=1, timeout=5.0):
        """While running (WAL): rows of sql once there are >= n."""
        def f():
            try:
                rs = self.rows(sql, params)
            except sqlite3.Error:
                return None
            return rs if len(rs) >= n else None
        return wait_for(f, timeout) or self.rows(sql, params)

    def conns(self, where="1", params=()):
        return self.rows(f"SELECT * FROM connections WHERE {where} "
                         "ORDER BY id", params)

    def conn_to(self, port):
        """The one connection row whose target port is port."""
        cs = self.conns("target_port = ?", (port,))
        assert len(cs) == 1, (cs, self.stderr()[-2000:])
        return cs[0]

    def events(self, conn_id):
        return self.rows("SELECT * FROM stream_events WHERE conn_id = ? "
                         "ORDER BY t_us, rowid", (conn_id,))

    def cli(self, *args):
        return run_cli(*args, "--db", self.db)

    def cli_json(self, *args):
        cp = self.cli(*args, "--json")
        assert cp.returncode == 0, cp.stderr
        return json.loads(cp.stdout)


@pytest.fixture
def stream_proxy(tmp_path, dns_stub):
    """Factory: stream_proxy(conf_extra={...}, transparent=False,
    hosts_extra=(), args=(), quiet=True) -> StreamProxy, started. Stopped by PID at teardown; a
    non-zero exit or a sanitizer report fails the test."""
    started = []

    def _start(conf_extra=None, transparent=False, hosts_extra=(), args=(),
               quiet=True):
        d = tmp_path / f"sproxy{len(started)}"
        d.mkdir()
        p = StreamProxy(d, dns_stub.port, conf_extra, transparent,
                        hosts_extra, args, quiet)
        started.append(p)
        return p.start()

    yield _start
    problems = []
    for p in started:
        if p.proc is None:
            continue
        rc = p.stop()
        err = p.stderr()
        if rc != 0:
            problems.append(f"proxy exit code {rc} (want 0); stderr tail:\n"
                            + err[-3000:])
        for m in SANITIZER_MARKS:
            if m in err:
                problems.append(f"sanitizer report ({m}):\n" + err[-6000:])
                break
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


# --------------------------------------------------------------------------
# a peer socket that counts what it sends and receives


class Peer:
    """A connected socket with byte counters and bounded reads."""

    def __init__(self, sock, timeout=10.0):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.buf = bytearray()
        self.sent = bytearray()
        self.got = bytearray()  # everything received, buffered or taken

    def send(self, data):
        self.sock.sendall(data)
        self.sent += data

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError("peer closed")
        self.buf += d
        self.got += d

    def recv_exact(self, n):
        for _ in range(1000000):
            if len(self.buf) >= n:
                out = bytes(self.buf[:n])
                del self.buf[:n]
                return out
            self._fill()
        raise ValueError("recv_exact: too many reads")

    def recv_until(self, sep, limit=1 << 20):
        for _ in range(100000):
            i = self.buf.find(sep)
            if i >= 0:
                out = bytes(self.buf[:i + len(sep)])
                del self.buf[:i + len(sep)]
                return out
            if len(self.buf) > limit:
                raise ValueError("no %r within %d bytes" % (sep, limit))
            self._fill()
        raise ValueError("recv_until: too many reads")

    def recv_to_eof(self, limit=1 << 28):
        for _ in range(1000000):
            try:
                self._fill()
            except EOFError:
                out, self.buf = bytes(self.buf), bytearray()
                return out
            if len(self.buf) > limit:
                raise ValueError("too much data")
        raise ValueError("recv_to_eof: too many reads")

    def closed_by_peer(self, timeout=5.0):
        """True if the peer closes (EOF or RST) within timeout."""
        self.sock.settimeout(timeout)
        try:
            for _ in range(10000):
                d = self.sock.recv(65536)
                if not d:
                    return True
                self.buf += d
                self.got += d
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        return False

    def shutdown_wr(self):
        self.sock.shutdown(socket.SHUT_WR)

    def reset(self):
        """Close with RST (SO_LINGER 0)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


# --------------------------------------------------------------------------
# scriptable TCP origin


class TcpServer:
    """Listens on (host, 0); runs handler(peer) in a thread per connection.
    self.peers keeps each connection's Peer (what it got and sent);
    self.done counts handlers that have returned; self.errors what they
    raised."""

    def __init__(self, handler, host="127.0.0.1"):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.lsock = socket.socket(fam, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, 0))
        self.lsock.listen(64)
        self.lsock.settimeout(0.1)
        self.host = host
        self.port = self.lsock.getsockname()[1]
        self.handler = handler
        self.peers = []
        self.done = 0
        self.errors = []
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
            p = Peer(c, timeout=10)
            with self.lock:
                self.peers.append(p)
            threading.Thread(target=self._serve, args=(p,),
                             daemon=True).start()

    def _serve(self, p):
        try:
            self.handler(p)
        except Exception as e:  # noqa: BLE001 -- reported by the test
            with self.lock:
                self.errors.append(repr(e))
        finally:
            with self.lock:
                self.done += 1

    def wait_done(self, n=1, timeout=10.0):
        return wait_for(lambda: self.done >= n, timeout) is not None

    def stop(self):
        self.stopping = True
        self.thread.join(timeout=2)
        self.lsock.close()
        with self.lock:
            for p in self.peers:
                p.close()


@pytest.fixture
def tcp_server():
    """Factory: tcp_server(handler, host='127.0.0.1') -> TcpServer; all
    stopped at teardown."""
    made = []

    def _make(handler, host="127.0.0.1"):
        s = TcpServer(handler, host)
        made.append(s)
        return s

    yield _make
    for s in made:
        s.stop()


def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def can_bind(ip):
    try:
        with socket.socket() as s:
            s.bind((ip, 0))
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------
# origin handlers


def echo_handler(p):
    """Echo everything until EOF, then close."""
    for _ in range(100000):
        d = p.sock.recv(65536)
        if not d:
            break
        p.got += d
        p.send(d)


def http_handler(routes):
    """A tiny keep-alive HTTP/1.1 origin: routes(method, target, headers,
    body) -> (status, headers list, body) for each request; p.request is
    the last one, p.requests all of them."""
    def handler(p):
        p.requests = []
        for _ in range(1000):
            try:
                head = p.recv_until(b"\r\n\r\n").decode("latin-1")
            except (EOFError, socket.timeout, ConnectionResetError):
                return  # the proxy closed or kept an idle connection
            lines = head.split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            h = {}
            for ln in lines[1:]:
                if ln:
                    k, v = ln.split(":", 1)
                    h[k.strip().lower()] = v.strip()
            body = p.recv_exact(int(h.get("content-length", "0")))
            p.request = (method, target, h, body)
            p.requests.append(p.request)
            status, hdrs, rbody = routes(method, target, h, body)
            out = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in hdrs]
            out.append(f"Content-Length: {len(rbody)}")
            p.send(("\r\n".join(out) + "\r\n\r\n").encode() + rbody)
    return handler


# --------------------------------------------------------------------------
# SOCKS5 client on a raw socket (RFC 1928, RFC 1929)


class SocksError(Exception):
    def __init__(self, stage, reply, peer):
        super().__init__(f"{stage}: {reply!r}")
        self.stage = stage
        self.reply = reply
        self.peer = peer


def socks_addr(host):
    """ATYP and DST.ADDR for host: IPv4, IPv6 or a domain name."""
    try:
        return b"\x01" + socket.inet_pton(socket.AF_INET, host)
    except OSError:
        pass
    try:
        return b"\x04" + socket.inet_pton(socket.AF_INET6, host)
    except OSError:
        pass
    n = host.encode()
    return b"\x03" + bytes([len(n)]) + n


def socks_open(sport, host, port, auth=None, methods=None, cmd=1,
               timeout=10.0):
    """SOCKS5 handshake to 127.0.0.1:sport asking for host:port. Returns a
    Peer whose counters include the handshake; raises SocksError with the
    server's reply when it refuses."""
    p = Peer(socket.create_connection(("127.0.0.1", sport), timeout=timeout),
             timeout)
    if methods is None:
        methods = [2] if auth else [0]
    p.send(bytes([5, len(methods)] + list(methods)))
    r = p.recv_exact(2)
    if r[0] != 5 or r[1] == 0xff or r[1] not in methods:
        raise SocksError("method", r, p)
    if r[1] == 2:
        u, pw = (x.encode() for x in auth)
        p.send(bytes([1, len(u)]) + u + bytes([len(pw)]) + pw)
        r = p.recv_exact(2)
        if r != b"\x01\x00":
            raise SocksError("auth", r, p)
    p.send(bytes([5, cmd, 0]) + socks_addr(host) + port.to_bytes(2, "big"))
    r = p.recv_exact(4)
    alen = {1: 4, 4: 16}.get(r[3])
    if alen is None:
        alen = p.recv_exact(1)[0]
    r += p.recv_exact(alen + 2)
    if r[1] != 0:
        raise SocksError("request", r, p)
    p.reply = r
    return p


# --------------------------------------------------------------------------
# mmTLS records (DESIGN.md "Recognising streams")

HANDSHAKE, DATA, EARLY, ALERT = 0x16, 0x17, 0x19, 0x15


def mm_record(rtype, payload, version=b"\xf1\x04"):
    return bytes([rtype]) + version + len(payload).to_bytes(2, "big") + \
        payload


def mm_hello(rtype, hs_type, size, seed=0, version=b"\xf1\x04"):
    """A handshake / 0-RTT record in the hello framing: bytes 5-8 are
    length - 4, byte 9 the hello type (1 ClientHello, 2 ServerHello)."""
    rest = bytes((seed + i * 7) & 0xff for i in range(size - 5))
    payload = (size - 4).to_bytes(4, "big") + bytes([hs_type]) + rest
    return mm_record(rtype, payload, version)


def mm_data(size, seed=0, rtype=DATA):
    return mm_record(rtype, os.urandom(size) if seed is None else
                     bytes((seed * 31 + i) & 0xff for i in range(size)))


def mm_parse(b):
    """[(type, length)] of a well-formed record stream."""
    out, i = [], 0
    while i < len(b):
        out.append((b[i], int.from_bytes(b[i + 3:i + 5], "big")))
        i += 5 + out[-1][1]
    assert i == len(b)
    return out
