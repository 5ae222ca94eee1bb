"""
A test origin for the fidelity tests (issue 9: "an observer, not an
editor"). It records the raw bytes of every connection it accepts, both
ways, and answers with heads that a normalising proxy would change: odd
field-name case, doubled spaces, duplicate Set-Cookie, a custom reason
phrase, chunk extensions and trailers, close-delimited bodies, 101 Upgrade
followed by a byte stream.

Two modes:
- routed (default): requests are parsed (for framing only) and answered by
  path, keep-alive and pipelining included;
- strict: the origin is given the exact bytes it must receive on a
  connection and the reply to send once they are all there; the first byte
  that differs resets the connection (SO_LINGER 0 close), so a client behind
  a proxy that alters anything sees a reset instead of the reply.

TLS: pass an ssl.SSLContext (server side); recording is of the plaintext.
make_test_ca() creates a CA and a leaf for loopback names with the openssl
CLI.

Every socket has a timeout, every loop a bound; threads are daemons and
stop() joins the accept thread.
"""
import socket
import ssl
import struct
import subprocess
import threading
import time
import zlib
from pathlib import Path

OPENSSL = "/usr/bin/openssl"
IO_TIMEOUT = 10.0


# --------------------------------------------------------------------------
# canned answers; each returns exact bytes


def odd_response(body):
    """200 with a custom reason, odd case, doubled spaces, no space after a
    colon, Set-Cookie twice (not adjacent) and Content-Length framing."""
    return (b"HTTP/1.1 200 Fine Thanks\r\n"
            b"x-ODD-case:  two  spaces\r\n"
            b"Set-Cookie: a=1; Path=/\r\n"
            b"content-TYPE:text/plain\r\n"
            b"Set-Cookie: b=2\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n"
            b"ZZ-Last:   padded value\r\n"
            b"\r\n" + body)


def chunked_response(tag, ext2=b'a="q v"'):
    """Chunked with chunk extensions, a last-chunk extension and trailers.
    ext2: the second chunk's extensions."""
    return (b"HTTP/1.1 200 Chunky Bits\r\n"
            b"transfer-encoding: chunked\r\n"
            b"Trailer: X-Sum, x-more\r\n"
            b"X-Tag: " + tag + b"\r\n"
            b"\r\n"
            b"5;ext=1\r\nhello\r\n"
            b"6;" + ext2 + b"\r\n world\r\n"
            b"000A\r\n0123456789\r\n"
            b"0;last=yes\r\n"
            b"X-Sum: 1f2e\r\n"
            b"x-more:  trailing  spaces\r\n"
            b"\r\n")


def hop_response(body):
    """An answer with hop-by-hop fields of its own (Connection names one)."""
    return (b"HTTP/1.1 203 Hop Along\r\n"
            b"Connection: X-Resp-Hop, keep-alive\r\n"
            b"X-Resp-Hop: secret\r\n"
            b"Keep-Alive: timeout=5, max=100\r\n"
            b"x-KEPT:  yes\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n"
            b"\r\n" + body)


CLOSE_HEAD = (b"HTTP/1.1 200 Bye Now\r\n"
              b"Connection: close\r\n"
              b"x-close-DELIMITED:yes\r\n"
              b"\r\n")


def upgrade_head(proto):
    return (b"HTTP/1.1 101 Switching, Gladly\r\n"
            b"upgrade: " + proto + b"\r\n"
            b"CONNECTION: Upgrade\r\n"
            b"x-after:  101\r\n"
            b"\r\n")


UPGRADE_BANNER = b"origin-first:\x00\xff\r\n\r\n"
_XOR = bytes(b ^ 0x5a for b in range(256))


def upgrade_echo(data):
    """What the origin sends back for data after a 101 (byte-wise, so chunk
    boundaries do not matter)."""
    return bytes(data).translate(_XOR)


# --------------------------------------------------------------------------
# one accepted connection


class OriginConn:
    def __init__(self, sock, addr):
        self.sock = sock
        self.addr = addr
        self.received = bytearray()  # every byte read, in order
        self.sent = bytearray()      # every byte written, in order
        self.requests = []           # raw bytes of each complete request
        self.buf = bytearray()       # read but not yet parsed
        self.peer_closed = threading.Event()  # EOF or reset from the peer
        self.done = threading.Event()         # handler returned
        self.reset_sent = False      # strict mode: we reset it
        self.mismatch_at = None      # strict mode: offset of first bad byte
        self.error = None

    def recv(self):
        """One read into received/buf; False on EOF or reset."""
        try:
            d = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            d = b""
        if not d:
            self.peer_closed.set()
            return False
        self.received += d
        self.buf += d
        return True

    def send(self, data):
        self.sent += data  # recorded before it can reach anyone
        self.sock.sendall(data)

    def reset(self):
        self.reset_sent = True
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    def finish(self):
        """Orderly end: close_notify under TLS, then FIN."""
        if isinstance(self.sock, ssl.SSLSocket):
            try:
                self.sock.unwrap()
            except (OSError, ValueError, ssl.SSLError):
                pass
        else:
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # -- framing, to know where a request ends (the bytes stay raw)

    def _need(self, n):
        for _ in range(100000):
            if len(self.buf) >= n:
                return True
            if not self.recv():
                return False
        return False

    def _until(self, sep):
        for _ in range(100000):
            i = self.buf.find(sep)
            if i >= 0:
                return i + len(sep)
            if len(self.buf) > 1 << 22 or not self.recv():
                return None
        return None

    def read_request(self):
        """Raw bytes of the next whole request, or None at EOF."""
        end = self._until(b"\r\n\r\n")
        if end is None:
            return None
        head = bytes(self.buf[:end])
        fields = parse_fields(head)
        raw = bytearray(self.buf[:end])
        del self.buf[:end]
        te = fields.get("transfer-encoding", "").lower()
        if "chunked" in te:
            for _ in range(100000):
                e = self._until(b"\r\n")
                if e is None:
                    return None
                line = bytes(self.buf[:e])
                raw += self.buf[:e]
                del self.buf[:e]
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    for _ in range(1000):
                        e = self._until(b"\r\n")
                        if e is None:
                            return None
                        t = bytes(self.buf[:e])
                        raw += self.buf[:e]
                        del self.buf[:e]
                        if t == b"\r\n":
                            return bytes(raw)
                    return None
                if not self._need(size + 2):
                    return None
                raw += self.buf[:size + 2]
                del self.buf[:size + 2]
            return None
        n = int(fields.get("content-length", "0") or 0)
        if not self._need(n):
            return None
        raw += self.buf[:n]
        del self.buf[:n]
        return bytes(raw)


def parse_fields(head):
    """{lower name: value (last wins)} of a raw head, for framing only."""
    out = {}
    for ln in head.decode("latin-1").split("\r\n")[1:]:
        if ":" in ln:
            k, v = ln.split(":", 1)
            out[k.strip().lower()] = v.strip()
    return out


def request_target(raw):
    return raw.split(b"\r\n", 1)[0].split(b" ")[1].decode("latin-1")


def request_path(raw):
    """Path of a request in origin-form or absolute-form."""
    t = request_target(raw)
    if "://" in t:
        t = "/" + t.split("://", 1)[1].partition("/")[2]
    return t.split("?", 1)[0]


# --------------------------------------------------------------------------
# the server


class FidelityOrigin:
    """Listens on 127.0.0.1:<free port>. conns: OriginConn per accepted
    connection, in accept order.

    strict: None (routed mode) or a list of (expected_request_bytes,
    reply_bytes), one per connection in accept order."""

    def __init__(self, tls_ctx=None, strict=None):
        self.tls_ctx = tls_ctx
        self.strict = list(strict) if strict is not None else None
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.lsock.settimeout(0.1)
        self.port = self.lsock.getsockname()[1]
        self.conns = []
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping:
            try:
                c, addr = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            c.settimeout(IO_TIMEOUT)
            with self.lock:
                idx = len(self.conns)
                oc = OriginConn(c, addr)
                self.conns.append(oc)
            threading.Thread(target=self._serve, args=(oc, idx),
                             daemon=True).start()

    def _serve(self, oc, idx):
        try:
            if self.tls_ctx is not None:
                oc.sock = self.tls_ctx.wrap_socket(oc.sock, server_side=True)
            if self.strict is not None:
                self._strict(oc, idx)
            else:
                self._routed(oc)
        except Exception as e:  # noqa: BLE001 -- read by the tests
            oc.error = repr(e)
            oc.close()
        finally:
            oc.done.set()

    # -- strict: exact bytes or a reset

    def _strict(self, oc, idx):
        if idx >= len(self.strict):
            oc.mismatch_at = 0
            oc.reset()
            return
        expected, reply = self.strict[idx]
        replied = False
        for _ in range(100000):
            n = len(oc.received)
            if oc.received != expected[:n] or n > len(expected):
                for i in range(n):
                    if i >= len(expected) or oc.received[i] != expected[i]:
                        oc.mismatch_at = i
                        break
                oc.reset()
                return
            if n == len(expected) and not replied:
                oc.send(reply)
                replied = True
            if not oc.recv():
                oc.close()
                return

    # -- routed: parse, answer by path, keep alive

    def _routed(self, oc):
        for n in range(1000):
            raw = oc.read_request()
            if raw is None:
                oc.close()
                return
            oc.requests.append(raw)
            path = request_path(raw)
            tag = f"{len(oc.requests)}:{request_target(raw)}".encode()
            if path == "/chunked":
                oc.send(chunked_response(tag))
            elif path == "/chunked-multi-ext":
                oc.send(chunked_response(tag, b"a=b;c=d"))
            elif path == "/hop":
                oc.send(hop_response(b"hop " + tag + b"\n"))
            elif path in ("/close", "/close-later", "/close-no-notify"):
                oc.send(CLOSE_HEAD + b"close-delimited " + tag + b"\n")
                if path == "/close-later":
                    time.sleep(0.3)  # the answer has gone before the end
                if path != "/close-no-notify":
                    oc.finish()  # TLS: close_notify first
                else:
                    # TCP FIN with no TLS close_notify (an unclean end)
                    oc.sock.shutdown(socket.SHUT_RDWR)
                    oc.close()
                return
            elif path == "/upgrade":
                proto = parse_fields(raw.split(b"\r\n\r\n")[0] + b"\r\n") \
                    .get("upgrade", "x").encode()
                oc.send(upgrade_head(proto) + UPGRADE_BANNER)
                if oc.buf:
                    pending = bytes(oc.buf)
                    oc.buf.clear()
                    oc.send(upgrade_echo(pending))
                for _ in range(100000):
                    before = len(oc.received)
                    if not oc.recv():
                        break
                    oc.buf.clear()
                    oc.send(upgrade_echo(oc.received[before:]))
                oc.close()
                return
            else:
                oc.send(odd_response(b"odd " + tag + b"\n"))

    # -- for the tests

    def wait_conns(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.02) + 2):
            with self.lock:
                if len(self.conns) >= n:
                    return list(self.conns)
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        with self.lock:
            return list(self.conns)

    def wait_received(self, conn_index, nbytes, timeout=10.0):
        """Bytes received on connection conn_index once there are at least
        nbytes (or whatever arrived when the bound passes)."""
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.02) + 2):
            with self.lock:
                cs = list(self.conns)
            if len(cs) > conn_index and \
                    len(cs[conn_index].received) >= nbytes:
                return bytes(cs[conn_index].received)
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        with self.lock:
            cs = list(self.conns)
        return bytes(cs[conn_index].received) if len(cs) > conn_index else b""

    def all_received(self):
        with self.lock:
            return b"".join(bytes(c.received) for c in self.conns)

    def stop(self):
        self.stopping = True
        self.thread.join(timeout=2)
        self.lsock.close()
        with self.lock:
            for c in self.conns:
                c.close()


# --------------------------------------------------------------------------
# certificates: a CA of our own and a leaf for the loopback names


def _run(argv):
    cp = subprocess.run([str(a) for a in argv], capture_output=True,
                        timeout=60, stdin=subprocess.DEVNULL)
    if cp.returncode != 0:
        raise RuntimeError(f"{argv[:3]}: {cp.stderr.decode(errors='replace')}")


def make_test_ca(d, names=("alpha.test",)):
    """(ca_pem, leaf_pem, leaf_key) under d, made with the openssl CLI."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    ca, ca_key = d / "fid-ca.pem", d / "fid-ca.key"
    leaf, key, csr = d / "fid-leaf.pem", d / "fid-leaf.key", d / "fid.csr"
    ext = d / "fid-leaf.ext"
    _run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt",
          "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca_key, "-out", ca,
          "-days", "30", "-subj", "/CN=Fidelity Test CA",
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    _run([OPENSSL, "req", "-new", "-newkey", "ec", "-pkeyopt",
          "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr,
          "-subj", f"/CN={names[0]}"])
    san = ",".join([f"DNS:{n}" for n in names] + ["IP:127.0.0.1"])
    ext.write_text("basicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature\n"
                   "extendedKeyUsage=serverAuth\n"
                   f"subjectAltName={san}\n")
    _run([OPENSSL, "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
          "-set_serial", str(int(time.time() * 1000)), "-days", "30",
          "-extfile", ext, "-out", leaf])
    return ca, leaf, key


def server_context(leaf, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(leaf), str(key))
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


# --------------------------------------------------------------------------
# WeChat-shaped exchanges (DESIGN.md): shortlink and newdns


def mm_record(rtype, payload):
    return bytes([rtype]) + b"\xf1\x04" + len(payload).to_bytes(2, "big") + \
        payload


def shortlink_request(host, hexid="0a1b2c3d"):
    """POST /mmtls/<8 hex> with Upgrade: mmtls and mmTLS records as body
    (a ClientHello-framed handshake record and a data record)."""
    hello = (200 - 4).to_bytes(4, "big") + b"\x01" + \
        bytes((i * 7 + 3) & 0xff for i in range(195))
    body = mm_record(0x19, hello) + \
        mm_record(0x17, bytes((i * 31 + 1) & 0xff for i in range(300)))
    head = (f"POST /mmtls/{hexid} HTTP/1.1\r\n"
            "Accept: */*\r\n"
            "Cache-Control: no-cache\r\n"
            "Connection: close\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Content-Type: application/octet-stream\r\n"
            f"Host: {host}\r\n"
            "Upgrade: mmtls\r\n"
            "User-Agent: MicroMessenger Client\r\n"
            "\r\n").encode()
    return head + body


def shortlink_reply():
    hello = (120 - 4).to_bytes(4, "big") + b"\x02" + \
        bytes((i * 5 + 9) & 0xff for i in range(115))
    body = mm_record(0x16, hello) + \
        mm_record(0x17, bytes((i * 13 + 7) & 0xff for i in range(500)))
    return (b"HTTP/1.1 200 OK\r\n"
            b"Accept-Ranges: bytes\r\n"
            b"Cache-Control: no-cache, must-revalidate\r\n"
            b"Connection: close\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n"
            b"Content-Type: application/octet-stream\r\n"
            b"\r\n" + body)


def newdns_request(host):
    return (f"GET /cgi-bin/micromsg-bin/newgetdns?uin=0&clientversion="
            f"654316592&scene=0&net=1&md5=d41d8cd98f00b204e9800998ecf8427e"
            f"&devicetype=android-29&lan=en_GB&sigver=2 HTTP/1.1\r\n"
            "Accept: */*\r\n"
            f"Host: {host}\r\n"
            "User-Agent: MicroMessenger Client\r\n"
            "Connection: Keep-Alive\r\n"
            "\r\n").encode()


NEWDNS_XML = (b'<dns><domainlist>'
              b'<domain name="short.weixin.qq.com" timeout="1800">'
              b'<ip>127.0.0.1</ip></domain>'
              b'<domain name="long.weixin.qq.com" timeout="1800">'
              b'<ip>127.0.0.1</ip></domain>'
              b'</domainlist></dns>'
              b'<builtiniplist><ip>127.0.0.1</ip></builtiniplist>'
              b'<clientip>127.0.0.1</clientip>')


def newdns_reply():
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = c.compress(NEWDNS_XML) + c.flush()
    return (b"HTTP/1.1 200 OK\r\n"
            b"Content-Type: text/xml\r\n"
            b"Content-Encoding: deflate\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n"
            b"Connection: keep-alive\r\n"
            b"\r\n" + body)
