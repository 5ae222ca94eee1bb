"""
End-to-end fixtures for peephole: real nginx, a small threaded Python origin
(for chunked / close-delimited / 1xx / 204 / 101 / stalling answers), a stub
DNS server that answers NXDOMAIN to everything, and the proxy itself, all on
free loopback ports.

Every wait here is bounded in iterations and in time. Subprocesses are
stopped by PID at teardown. Database access goes through the helpers at the
bottom (DB, *_COLS) so a schema rename is a one-line fix.
"""
import hashlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PEEPHOLE_BIN = os.environ.get("PEEPHOLE_BIN", str(REPO / "build" / "peephole"))
NGINX = "/usr/sbin/nginx"
CURL = "/usr/bin/curl"

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "ThreadSanitizer")


# --------------------------------------------------------------------------
# small helpers


def free_port():
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0, proc=None):
    """Poll until 127.0.0.1:port accepts; bounded. False on timeout/exit."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.02) + 1):
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return False


def is_listening(port):
    """True if something listens on 127.0.0.1:port (or any address), read
    from /proc/net/tcp{,6}: no probe connection that the proxy would
    record."""
    want = ":%04X" % port
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(f).read_text().splitlines()[1:]
        except OSError:
            continue
        for ln in lines:
            parts = ln.split()
            if len(parts) > 3 and parts[1].endswith(want) and parts[3] == "0A":
                return True
    return False


def wait_listen(port, timeout=10.0, proc=None):
    """Poll until port is in LISTEN state; bounded. False on timeout/exit."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.02) + 1):
        if proc is not None and proc.poll() is not None:
            return False
        if is_listening(port):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return False


def wait_for(pred, timeout=5.0, step=0.05):
    """Poll pred() until truthy (returned) or the bound passes (None)."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / step) + 2):
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            return None
        time.sleep(step)
    return None


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def token():
    return uuid.uuid4().hex[:12]


def is_asan_binary(path=PEEPHOLE_BIN):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    return b"__asan_init" in data or b"libasan" in data


def is_tsan_binary(path=PEEPHOLE_BIN):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    return b"__tsan_init" in data


def kill_proc(proc, sig=signal.SIGTERM, timeout=10.0):
    """Signal proc by PID, wait (bounded), SIGKILL if it will not go."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return proc.returncode


# --------------------------------------------------------------------------
# raw HTTP/1.x client pieces (for what curl would hide)


class RawConn:
    """A client socket with a buffered reader of HTTP/1.x responses."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=timeout)
        self.buf = bytearray()
        self.sent = 0
        self.received = 0

    def send(self, data):
        self.sock.sendall(data)
        self.sent += len(data)

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError("connection closed")
        self.received += len(d)
        self.buf += d

    def read_until(self, sep, limit=1 << 20):
        for _ in range(100000):
            i = self.buf.find(sep)
            if i >= 0:
                out = bytes(self.buf[:i + len(sep)])
                del self.buf[:i + len(sep)]
                return out
            if len(self.buf) > limit:
                raise ValueError("no %r within %d bytes" % (sep, limit))
            self._fill()
        raise ValueError("read_until: too many reads")

    def read_exact(self, n):
        for _ in range(1000000):
            if len(self.buf) >= n:
                out = bytes(self.buf[:n])
                del self.buf[:n]
                return out
            self._fill()
        raise ValueError("read_exact: too many reads")

    def read_to_eof(self, limit=1 << 30):
        for _ in range(1000000):
            try:
                self._fill()
            except EOFError:
                out, self.buf = bytes(self.buf), bytearray()
                return out
            if len(self.buf) > limit:
                raise ValueError("too much data")
        raise ValueError("read_to_eof: too many reads")

    def read_head(self):
        head = self.read_until(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        version, status = lines[0].split(" ", 2)[:2]
        headers = []
        for ln in lines[1:]:
            if ln:
                k, v = ln.split(":", 1)
                headers.append((k.strip().lower(), v.strip()))
        return Response(version, int(status), headers, head)

    def read_response(self, method="GET", keep_interim=False):
        """Read one final response (1xx interim ones collected)."""
        interim = []
        for _ in range(20):
            r = self.read_head()
            if 100 <= r.status < 200 and r.status != 101:
                interim.append(r)
                continue
            break
        else:
            raise ValueError("too many 1xx")
        r.interim = interim
        if method == "HEAD" or r.status in (101, 204, 304):
            r.body = b""
            return r
        te = r.get("transfer-encoding")
        cl = r.get("content-length")
        if te is not None and "chunked" in te.lower():
            r.body = self._read_chunked(r)
        elif cl is not None:
            r.body = self.read_exact(int(cl))
        else:
            r.body = self.read_to_eof()
        return r

    def _read_chunked(self, r):
        out = []
        for _ in range(10000000):
            line = self.read_until(b"\r\n")
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                for _ in range(1000):
                    t = self.read_until(b"\r\n")
                    if t == b"\r\n":
                        return b"".join(out)
                    k, v = t.decode("latin-1").split(":", 1)
                    r.trailers.append((k.strip().lower(), v.strip()))
                raise ValueError("too many trailers")
            out.append(self.read_exact(size))
            if self.read_exact(2) != b"\r\n":
                raise ValueError("bad chunk terminator")
        raise ValueError("too many chunks")

    def closed_by_peer(self, timeout=5.0):
        """True if the peer closes (EOF or reset) within timeout, with no
        further bytes beyond what is already buffered being required."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        for _ in range(10000):
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not d:
                return True
            self.buf += d
            if time.monotonic() > deadline:
                return False
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


class Response:
    def __init__(self, version, status, headers, raw_head):
        self.version = version
        self.status = status
        self.headers = headers
        self.raw_head = raw_head
        self.body = b""
        self.trailers = []
        self.interim = []

    def get(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return default

    def all(self, name):
        return [v for k, v in self.headers if k == name.lower()]


# --------------------------------------------------------------------------
# stub DNS: NXDOMAIN to everything, and it remembers what it was asked


class DnsStub:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.queries = []  # (qname, qtype)
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @staticmethod
    def _parse_question(pkt):
        i, labels = 12, []
        for _ in range(128):
            n = pkt[i]
            if n == 0:
                i += 1
                break
            labels.append(pkt[i + 1:i + 1 + n].decode("ascii", "replace"))
            i += 1 + n
        qtype = int.from_bytes(pkt[i:i + 2], "big")
        return ".".join(labels).lower(), i + 4, qtype

    def _run(self):
        while not self.stopping:
            try:
                pkt, addr = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(pkt) < 12:
                continue
            try:
                qname, qend, qtype = self._parse_question(pkt)
            except (IndexError, ValueError):
                continue
            with self.lock:
                self.queries.append((qname, qtype))
            # ID copied; QR=1, opcode and RD copied, RA=1, RCODE=3.
            flags = 0x8000 | (pkt[2] << 8 & 0x7900) | 0x0080 | 3
            resp = (pkt[0:2] + flags.to_bytes(2, "big") +
                    b"\x00\x01\x00\x00\x00\x00\x00\x00" + pkt[12:qend])
            try:
                self.sock.sendto(resp, addr)
            except OSError:
                pass

    def asked(self, name):
        with self.lock:
            return [q for q in self.queries if q[0] == name.lower()]

    def stop(self):
        self.stopping = True
        self.thread.join(timeout=2)
        self.sock.close()


@pytest.fixture(scope="session")
def dns_stub():
    d = DnsStub()
    yield d
    d.stop()


# --------------------------------------------------------------------------
# nginx


NGINX_LOG_FIELDS = {
    "method": "$request_method", "uri": "$request_uri",
    "proto": "$server_protocol", "status": "$status",
    "request_length": "$request_length", "content_length": "$content_length",
    "body": "$request_body", "bytes_sent": "$body_bytes_sent",
    "connection": "$connection",
    "connection_requests": "$connection_requests",
    "remote_port": "$remote_port", "host": "$http_host",
    "h_connection": "$http_connection",
    "h_proxy_connection": "$http_proxy_connection",
    "h_keep_alive": "$http_keep_alive", "h_te": "$http_te",
    "h_trailer": "$http_trailer",
    "h_proxy_authorization": "$http_proxy_authorization",
    "h_x_hop": "$http_x_hop", "h_x_test": "$http_x_test",
    "h_via": "$http_via", "h_expect": "$http_expect",
    "h_transfer_encoding": "$http_transfer_encoding",
    "h_upgrade": "$http_upgrade", "h_user_agent": "$http_user_agent",
}


def nginx_conf(root, log_fields, types, servers):
    """An nginx.conf for a test origin: its temporary files under root,
    an access-log format "t" (JSON of log_fields), the MIME types given
    and the server blocks."""
    fmt = "{" + ",".join('"%s":"%s"' % kv for kv in log_fields.items()) + "}"
    return f"""
user root root;
worker_processes 1;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    log_format t escape=json '{fmt}';
    client_body_temp_path {root}/tmp_body;
    proxy_temp_path {root}/tmp_proxy;
    fastcgi_temp_path {root}/tmp_fastcgi;
    uwsgi_temp_path {root}/tmp_uwsgi;
    scgi_temp_path {root}/tmp_scgi;
    sendfile on;
    keepalive_timeout 60s;
    keepalive_requests 100000;
    types {{ {types} }}
    default_type application/octet-stream;
{servers}
}}
"""


class Nginx:
    def __init__(self, root):
        self.root = root
        self.www = root / "www"
        self.port = free_port()
        self.log = root / "access.log"
        self.files = {}
        self.proc = None

    def add_file(self, name, data):
        (self.www / name).parent.mkdir(parents=True, exist_ok=True)
        (self.www / name).write_bytes(data)
        self.files[name] = data

    def conf(self):
        return nginx_conf(self.root, NGINX_LOG_FIELDS,
                          "image/jpeg jpg; text/plain txt;", f"""
    server {{
        listen 127.0.0.1:{self.port};
        server_name _;
        root {self.www};
        access_log {self.log} t;
        add_header X-Uri $request_uri always;
        location / {{ }}
        location /gz/ {{ gzip on; gzip_min_length 1; gzip_types text/plain; }}
        location /upload {{
            client_max_body_size 0;
            client_body_buffer_size 16m;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:{self.port}/sink;
        }}
        location /sink {{
            access_log off;
            client_max_body_size 0;
            return 200 "ok\\n";
        }}
    }}""")

    def start(self):
        self.www.mkdir(parents=True, exist_ok=True)
        (self.root / "nginx.conf").write_text(self.conf())
        self.stderr = open(self.root / "nginx.stderr", "wb")
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(self.root), "-c", str(self.root / "nginx.conf"),
             "-g",
             f"daemon off; pid {self.root}/nginx.pid; error_log stderr;"],
            stdin=subprocess.DEVNULL, stdout=self.stderr, stderr=self.stderr)
        if not wait_port(self.port, 10, self.proc):
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
        """Entries whose URI holds tok, once at least n are there."""
        got = wait_for(lambda: (lambda es: es if len(es) >= n else None)(
            self.entries_with(tok)), timeout)
        return got or self.entries_with(tok)

    def url(self, host, path):
        return f"http://{host}:{self.port}{path}"


@pytest.fixture(scope="session")
def nginx(tmp_path_factory):
    n = Nginx(tmp_path_factory.mktemp("nginx"))
    n.www.mkdir(parents=True)
    rnd = random.Random(1234)
    n.add_file("small", bytes(rnd.choice(b"abcdefghij") for _ in range(100)))
    n.add_file("p2.txt", b"second\n" * 30)
    n.add_file("p3.txt", b"third!\n" * 70)
    n.add_file("img.jpg", b"\xff\xd8\xff\xe0" + os.urandom(60000 - 4))
    n.add_file("medium.bin", os.urandom(3 * 1024 * 1024 + 17))
    n.start()
    yield n
    n.stop()


@pytest.fixture(scope="session")
def huge_file(nginx):
    """256 MiB of random bytes under nginx's root: (name, size, sha)."""
    name = "huge.bin"
    size = 256 * 1024 * 1024
    h = hashlib.sha256()
    with open(nginx.www / name, "wb") as f:
        for _ in range(size // (4 << 20)):
            chunk = os.urandom(4 << 20)
            h.update(chunk)
            f.write(chunk)
    yield name, size, h.hexdigest()
    (nginx.www / name).unlink()


# --------------------------------------------------------------------------
# Python origin for what nginx will not do on demand


_WS_TABLE = bytes(b ^ 0x55 for b in range(256))


def ws_echo(data):
    """What the origin's /ws tunnel sends back for data."""
    return data.translate(_WS_TABLE)


def origin_body(size, seed):
    return random.Random(seed).randbytes(size)


class Origin:
    """Threaded HTTP/1.1 origin. Records every request it gets."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.requests = []  # dicts
        self.lock = threading.Lock()
        self.conns = []
        self.stopping = False
        self.nconn = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def url(self, host, path):
        return f"http://{host}:{self.port}{path}"

    def with_token(self, tok):
        with self.lock:
            return [r for r in self.requests if tok in r["target"]]

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.nconn += 1
            with self.lock:
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(c, self.nconn),
                             daemon=True).start()

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

    # -- per connection

    def _serve(self, c, cid):
        c.settimeout(15)
        rd = _SockReader(c)
        try:
            for nreq in range(1, 1000):
                if not self._one(c, rd, cid, nreq):
                    break
        except (OSError, EOFError, ValueError):
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def _one(self, c, rd, cid, nreq):
        head = rd.read_until(b"\r\n\r\n", eof_ok=True)
        if head is None:
            return False
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = []
        for ln in lines[1:]:
            if ln:
                k, v = ln.split(":", 1)
                headers.append((k.strip().lower(), v.strip()))
        hd = {}
        for k, v in headers:
            hd.setdefault(k, v)
        req = {"method": method, "target": target, "version": version,
               "headers": headers, "h": hd, "conn": cid, "nreq": nreq,
               "body": b"", "sent_100": False}
        with self.lock:
            self.requests.append(req)
        path, _, query = target.partition("?")
        params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)

        if path == "/stall":
            # Never answer; hold the connection until the peer goes away.
            c.settimeout(0.2)
            for _ in range(75):
                try:
                    if not c.recv(4096):
                        break
                except socket.timeout:
                    continue
            return False

        expect = hd.get("expect", "").lower() == "100-continue"
        if path == "/reject":
            # Final answer without reading the body (RFC 9110 10.1.1).
            c.sendall(b"HTTP/1.1 413 Content Too Large\r\n"
                      b"Content-Length: 9\r\nConnection: close\r\n\r\n"
                      b"too big!\n")
            time.sleep(0.2)
            return False
        if expect:
            c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            req["sent_100"] = True
        te = hd.get("transfer-encoding", "").lower()
        if "chunked" in te:
            req["body"] = rd.read_chunked()
        elif "content-length" in hd:
            req["body"] = rd.read_exact(int(hd["content-length"]))
        keep = version == "HTTP/1.1" and \
            "close" not in hd.get("connection", "").lower()

        def respond(status, reason, body=b"", extra=()):
            h = [f"HTTP/1.1 {status} {reason}"]
            h += [f"{k}: {v}" for k, v in extra]
            if status not in (204, 304) and status >= 200:
                h.append(f"Content-Length: {len(body)}")
            if not keep:
                h.append("Connection: close")
            c.sendall(("\r\n".join(h) + "\r\n\r\n").encode() + body)
            return keep

        if path == "/sha":
            b = req["body"]
            return respond(200, "OK", f"{sha256(b)} {len(b)}\n".encode(),
                           [("Content-Type", "text/plain")])
        if path == "/chunked":
            size, seed = int(params.get("size", "100000")), \
                int(params.get("seed", "1"))
            body = origin_body(size, seed)
            if version == "HTTP/1.0":
                # no chunked coding towards a 1.0 peer: close-delimited
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: "
                          b"application/x-test\r\nConnection: close\r\n"
                          b"\r\n" + body)
                c.shutdown(socket.SHUT_WR)
                return False
            rnd = random.Random(seed + 1)
            out = [b"HTTP/1.1 200 OK\r\nContent-Type: application/x-test\r\n"
                   b"Transfer-Encoding: chunked\r\n"]
            if not keep:
                out.append(b"Connection: close\r\n")
            out.append(b"\r\n")
            c.sendall(b"".join(out))
            i = 0
            while i < len(body):
                n = rnd.randint(1, 9000)
                part = body[i:i + n]
                ext = b";x=1" if rnd.random() < 0.1 else b""
                c.sendall(b"%x%s\r\n%s\r\n" % (len(part), ext, part))
                i += n
            trailer = b"X-Trail: yes\r\n" if params.get("trailer") else b""
            c.sendall(b"0\r\n" + trailer + b"\r\n")
            return keep
        if path == "/close":
            size, seed = int(params.get("size", "100000")), \
                int(params.get("seed", "2"))
            body = origin_body(size, seed)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-test"
                      b"\r\nConnection: close\r\n\r\n")
            for i in range(0, len(body), 16384):
                c.sendall(body[i:i + 16384])
            c.shutdown(socket.SHUT_WR)
            return False
        if path == "/status/204":
            return respond(204, "No Content", extra=[("X-Was", "204")])
        if path == "/status/304":
            return respond(304, "Not Modified", extra=[("ETag", '"abc"')])
        if path == "/slow":
            ms = int(params.get("ms", "500"))
            time.sleep(ms / 1000)
            return respond(200, "OK", f"slow {ms}\n".encode(),
                           [("Content-Type", "text/plain")])
        if path == "/idle-close":
            # A keep-alive answer, then the origin drops the idle connection
            # (as servers do when their keep-alive timeout passes).
            respond(200, "OK", b"idle-close\n",
                    [("Content-Type", "text/plain")])
            time.sleep(0.2)
            return False
        if path == "/bighead":
            n = int(params.get("size", "100000"))
            return respond(200, "OK", b"big head\n", [("X-Big", "a" * n)])
        if path == "/truncated":
            # promises more than it sends, then closes
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n"
                      b"Content-Type: application/x-test\r\n\r\n" +
                      origin_body(5000, 6))
            time.sleep(0.1)
            return False
        if path == "/badchunk":
            c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                      b"Content-Type: application/x-test\r\n\r\n"
                      b"5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n")
            time.sleep(0.1)
            return False
        if path == "/garbage":
            c.sendall(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
            time.sleep(0.1)
            return False
        if path == "/cookies":
            return respond(200, "OK", b"cookies\n",
                           [("Set-Cookie", "a=1; Path=/"),
                            ("Set-Cookie", "b=2; Expires=Wed, 21 Oct 2037 "
                             "07:28:00 GMT"),
                            ("Set-Cookie", "c=3")])
        if path == "/hop":
            return respond(200, "OK", b"hop\n",
                           [("Connection", "X-Resp-Hop"), ("X-Resp-Hop", "1"),
                            ("Keep-Alive", "timeout=5"), ("X-Kept", "yes")])
        if path == "/early":
            c.sendall(b"HTTP/1.1 103 Early Hints\r\n"
                      b"Link: </style.css>; rel=preload\r\n\r\n")
            return respond(200, "OK", b"after-hints\n",
                           [("Content-Type", "text/plain")])
        if path == "/ws":
            up = hd.get("upgrade", "")
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\n"
                      b"Upgrade: " + up.encode() + b"\r\n"
                      b"Connection: Upgrade\r\n\r\n")
            # Echo each byte XOR 0x55 (so an echo is visibly the origin's)
            # until EOF, bounded by the socket timeout.
            pending = rd.take_buffer()
            if pending:
                c.sendall(ws_echo(pending))
            for _ in range(100000):
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(ws_echo(d))
            return False
        return respond(200, "OK", b"origin-ok\n",
                       [("Content-Type", "text/plain")])


class _SockReader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def take_buffer(self):
        b, self.buf = bytes(self.buf), bytearray()
        return b

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError
        self.buf += d

    def read_until(self, sep, eof_ok=False):
        for _ in range(100000):
            i = self.buf.find(sep)
            if i >= 0:
                out = bytes(self.buf[:i + len(sep)])
                del self.buf[:i + len(sep)]
                return out
            if len(self.buf) > 1 << 20:
                raise ValueError("head too big")
            try:
                self._fill()
            except EOFError:
                if eof_ok and not self.buf:
                    return None
                raise
        raise ValueError("too many reads")

    def read_exact(self, n):
        for _ in range(10000000):
            if len(self.buf) >= n:
                out = bytes(self.buf[:n])
                del self.buf[:n]
                return out
            self._fill()
        raise ValueError("too many reads")

    def read_chunked(self):
        out = []
        for _ in range(10000000):
            size = int(self.read_until(b"\r\n").split(b";")[0].strip(), 16)
            if size == 0:
                for _ in range(1000):
                    if self.read_until(b"\r\n") == b"\r\n":
                        return b"".join(out)
                raise ValueError("too many trailers")
            out.append(self.read_exact(size))
            self.read_exact(2)
        raise ValueError("too many chunks")


@pytest.fixture(scope="session")
def origin():
    o = Origin()
    yield o
    o.stop()


# --------------------------------------------------------------------------
# the proxy


class Proxy:
    def __init__(self, workdir, dns_port, conf_extra=None, quiet=True,
                 workers=2, env_extra=None):
        self.dir = workdir
        self.db = workdir / "peephole.db"
        self.conf_path = workdir / "peephole.conf"
        self.hosts = workdir / "hosts"
        self.hosts.write_text("127.0.0.1 alpha.test beta.test\n"
                              "127.0.0.1 localhost\n")
        conf = {
            "dns-server": f"127.0.0.1:{dns_port}",
            "hosts-file": str(self.hosts),
            "connect-timeout": "2s",
            "upstream-timeout": "5s",
            "header-timeout": "5s",
            "dns-timeout": "2s",
            "shutdown-grace": "3s",
        }
        conf.update(conf_extra or {})
        self.conf_path.write_text("# written by tests/e2e/conftest.py\n" +
                                  "".join(f"{k} {v}\n" for k, v in
                                          conf.items() if v is not None))
        self.quiet = quiet
        self.workers = workers
        self.env = dict(os.environ)
        for k in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
                  "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
            self.env.pop(k, None)
        if env_extra:
            for k, v in env_extra.items():
                self.env[k] = v
        self.proc = None
        self.rc = None
        self.stdout_path = workdir / "proxy.stdout"
        self.stderr_path = workdir / "proxy.stderr"

    def start(self):
        last = ""
        for _ in range(3):  # the free port can be taken in between; retry
            self.port = free_port()
            args = [PEEPHOLE_BIN, "run", "--listen", f"127.0.0.1:{self.port}",
                    "--db", str(self.db), "--conf", str(self.conf_path),
                    "--workers", str(self.workers)]
            if self.quiet:
                args.append("--quiet")
            self.out = open(self.stdout_path, "wb")
            self.err = open(self.stderr_path, "wb")
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                         stdout=self.out, stderr=self.err,
                                         cwd=str(self.dir), env=self.env)
            if wait_listen(self.port, 20, self.proc):
                return self
            kill_proc(self.proc, signal.SIGKILL)
            self.out.close()
            self.err.close()
            last = self.stderr_path.read_text(errors="replace")
        raise RuntimeError("peephole did not start:\n" + last[-4000:])

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig=signal.SIGTERM, timeout=20.0):
        """Signal by PID, wait (bounded); returns the exit code."""
        if self.proc is not None and self.rc is None:
            self.rc = kill_proc(self.proc, sig, timeout)
            self.out.close()
            self.err.close()
        return self.rc

    def stderr(self):
        return self.stderr_path.read_text(errors="replace")

    def stdout(self):
        return self.stdout_path.read_text(errors="replace")

    def _status_kib(self, field):
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        for ln in status.split("\n"):
            if ln.startswith(field + ":"):
                return int(ln.split()[1])
        raise AssertionError(f"no {field}")

    def rss_hwm_kib(self):
        """Peak resident set (VmHWM), KiB."""
        return self._status_kib("VmHWM")

    def rss_kib(self):
        return self._status_kib("VmRSS")

    def dbh(self):
        return DB(self.db)

    def curl(self, url, *args, timeout=30):
        return curl(self, url, *args, timeout=timeout)


@pytest.fixture
def start_proxy(tmp_path, dns_stub):
    """Factory: start_proxy(conf_extra={...}, quiet=True) -> Proxy.
    Each proxy is stopped at teardown; a non-zero exit or a sanitizer report
    fails the test."""
    started = []

    def _start(conf_extra=None, quiet=True, workers=2, env_extra=None):
        d = tmp_path / f"proxy{len(started)}"
        d.mkdir()
        p = Proxy(d, dns_stub.port, conf_extra, quiet, workers, env_extra)
        started.append(p)
        return p.start()

    yield _start
    problems = []
    for p in started:
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


@pytest.fixture
def proxy(start_proxy):
    return start_proxy()


# --------------------------------------------------------------------------
# curl


CURL_W = "%{http_code} %{exitcode} %{size_download} %{num_connects}\\n"


class CurlResult:
    def __init__(self, cp, body):
        self.rc = cp.returncode
        self.stderr = cp.stderr.decode(errors="replace")
        self.body = body
        self.lines = [ln.split() for ln in cp.stdout.decode().splitlines()
                      if ln.strip()]
        # one per transfer: [code, exitcode, size, num_connects]
        self.code = int(self.lines[-1][0]) if self.lines else 0

    @property
    def codes(self):
        return [int(ln[0]) for ln in self.lines]

    @property
    def connects(self):
        return sum(int(ln[3]) for ln in self.lines)


def curl(p, url, *args, timeout=30):
    """curl through proxy p. Body of the (last) transfer in .body."""
    out = p.dir / f"curl-{token()}.out"
    urls = url if isinstance(url, (list, tuple)) else [url]
    argv = [CURL, "-sS", "--max-time", str(timeout), "-x", p.url,
            "--noproxy", "", "-w", CURL_W]
    for u in urls:
        argv += ["-o", str(out), u]
    argv += list(args)
    cp = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                        timeout=timeout + 10, env=p.env)
    body = out.read_bytes() if out.exists() else b""
    if out.exists():
        out.unlink()
    return CurlResult(cp, body)


def run_cli(*args, timeout=30, cwd=None):
    """Run `peephole ARGS...`; returns CompletedProcess (text)."""
    return subprocess.run([PEEPHOLE_BIN] + [str(a) for a in args],
                          stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)


# --------------------------------------------------------------------------
# the database. Canonical name -> column in proxy/store/schema.c; a rename
# there is a one-line change here.

REQ_COLS = {k: k for k in (
    "id", "conn_id", "seq", "t_start_us", "client_ip", "scheme", "method",
    "host", "port", "path", "query", "req_version", "resp_version", "status",
    "req_headers", "resp_headers", "req_header_bytes", "resp_header_bytes",
    "req_body_size", "req_body_sha", "req_body_truncated", "resp_body_size",
    "resp_body_sha", "resp_body_truncated", "content_type", "server_ip",
    "server_port", "upstream_reused", "dns_us", "connect_us", "ttfb_us",
    "total_us", "error")}
CONN_COLS = {k: k for k in (
    "id", "listener", "client_ip", "client_port", "target_host",
    "target_port", "server_ip", "server_port", "protocol", "t_accept_us",
    "t_first_byte_us", "t_close_us", "bytes_from_client", "bytes_to_client",
    "bytes_to_server", "bytes_from_server", "nrequests", "close_reason",
    "error")}
BODY_COLS = {"sha256": "sha256", "size": "size", "data": "data"}
DIP_COLS = {k: k for k in ("domain", "ip", "source", "first_seen",
                           "last_seen", "ttl", "count")}
TABLES = {"requests": ("requests", REQ_COLS),
          "connections": ("connections", CONN_COLS),
          "bodies": ("bodies", BODY_COLS),
          "domain_ips": ("domain_ips", DIP_COLS)}


class DB:
    def __init__(self, path):
        self.path = Path(path)

    def _rows(self, table, where="", params=()):
        name, cols = TABLES[table]
        c = sqlite3.connect(str(self.path), timeout=10)
        try:
            c.row_factory = sqlite3.Row
            sel = ", ".join(f"{real} AS {canon}" for canon, real in
                            cols.items())
            q = f"SELECT {sel} FROM {name}"
            if where:
                q += " WHERE " + where
            q += " ORDER BY rowid"
            return [dict(r) for r in c.execute(q, params)]
        finally:
            c.close()

    def requests(self, where="", params=()):
        return self._rows("requests", where, params)

    def connections(self, where="", params=()):
        return self._rows("connections", where, params)

    def bodies(self, where="", params=()):
        return self._rows("bodies", where, params)

    def domain_ips(self, where="", params=()):
        return self._rows("domain_ips", where, params)

    def requests_with(self, tok):
        """Request rows whose query (or path) carries tok."""
        return [r for r in self.requests()
                if tok in (r["query"] or "") or tok in (r["path"] or "")]

    def body(self, sha):
        rows = self.bodies("sha256 = ?", (sha,))
        return rows[0] if rows else None

    def wait_requests(self, pred, n=1, timeout=5.0):
        """While the proxy runs (WAL): rows matching pred, once >= n."""
        def f():
            try:
                rs = [r for r in self.requests() if pred(r)]
            except sqlite3.Error:
                return None
            return rs if len(rs) >= n else None
        return wait_for(f, timeout) or []


def domain_field(obj, key):
    """Field of a `peephole domains --json` object, by canonical name."""
    names = {"name": ("name", "domain", "host"),
             "requests": ("requests", "nrequests"),
             "connections": ("connections", "nconnections"),
             "bytes_up": ("bytes_up", "up", "bytes_out"),
             "bytes_down": ("bytes_down", "down", "bytes_in"),
             "ports": ("ports",), "ips": ("ips",)}[key]
    for n in names:
        if n in obj:
            v = obj[n]
            if key in ("ports", "ips") and isinstance(v, str):
                v = [x for x in v.split(",") if x]
            if key == "ports":
                v = [int(x) for x in v]
            return v
    raise KeyError(f"{key} (tried {names}) not in {sorted(obj)}")
