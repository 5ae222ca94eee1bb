"""
Fixtures for the WebSocket tests: python3-websockets (10.4, asyncio API)
echo servers on loopback, over TLS (the test origin's "good" certificate,
alpha.test / 127.0.0.1) and plain, each on its own event loop in a thread;
clients that reach them through the proxy's CONNECT tunnel (opened by hand
on a socket) or its SOCKS5 listener, then hand the socket to
websockets.connect(sock=...); and one scripted conversation whose every
message, both ways, the tests then expect in ws_messages.

Reused: ../conftest.py (token, free_port, wait_listen, ...), the test
origin PKI and proxy factory of ../tls/conftest.py, the SOCKS5 client of
../streams/conftest.py. Every wait is bounded (asyncio.wait_for).
"""
import asyncio
import socket
import ssl
import threading
import time

import pytest
import websockets

from conftest import free_port, wait_listen
from streams.conftest import socks_open
from tls.conftest import certs, tls_proxy  # noqa: F401 fixtures

STEP_TIMEOUT = 10.0


class WsServer:
    """Echo: every message comes back as it came (text as text, binary as
    binary); pings are answered by the library; a close is echoed with
    its code and reason. No keepalive pings (they would be recorded)."""

    def __init__(self, tls_pair=None):
        self.port = free_port()
        self.received = []  # (path, message) in arrival order
        self.extensions = []  # per connection: the negotiated extensions
        self.close_codes = []
        self.ctx = None
        if tls_pair is not None:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(*map(str, tls_pair))
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(10) or not wait_listen(self.port, 10):
            raise RuntimeError("websockets server did not start")

    async def _handler(self, ws, path):
        self.extensions.append([e.name for e in ws.extensions])
        try:
            async for msg in ws:
                self.received.append((path, msg))
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass
        self.close_codes.append((ws.close_code, ws.close_reason))

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(websockets.serve(
            self._handler, "127.0.0.1", self.port, ssl=self.ctx,
            ping_interval=None, max_size=None))
        self.ready.set()
        self.loop.run_forever()

    def saw_close(self, code, reason, timeout=5.0):
        """The server's handler records the close after the client has
        its own answer: wait for it, bounded."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if (code, reason) in self.close_codes:
                return True
            time.sleep(0.02)
        return False

    def stop(self):
        async def _close():
            self.server.close()
            await asyncio.wait_for(self.server.wait_closed(), 5)
        fut = asyncio.run_coroutine_threadsafe(_close(), self.loop)
        try:
            fut.result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


@pytest.fixture(scope="session")
def wss_server(certs):  # noqa: F811 (fixture)
    s = WsServer(certs.good)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def ws_server():
    s = WsServer()
    yield s
    s.stop()


def connect_tunnel(proxy_port, host, port, timeout=10.0):
    """A socket through which the proxy said 200 to CONNECT host:port; the
    answer is read byte by byte so nothing after it is taken."""
    s = socket.create_connection(("127.0.0.1", proxy_port), timeout=timeout)
    s.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}"
              "\r\n\r\n".encode())
    head = b""
    for _ in range(4096):
        if head.endswith(b"\r\n\r\n"):
            break
        d = s.recv(1)
        if not d:
            break
        head += d
    assert head.startswith(b"HTTP/1.1 200"), head
    s.setblocking(False)
    return s


def socks_socket(socks_port, host, port):
    s = socks_open(socks_port, host, port).sock
    s.setblocking(False)
    return s


def direct_socket(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setblocking(False)
    return s


# The conversation: (what the client does, the rows it should leave in
# ws_messages as (dir, opcode, payload, close_code, close_reason)).
TEXT = "hello text \u00e9"
BINARY = bytes(range(256)) * 4
FRAGMENTS = ["frag-one ", "frag-two ", "frag-three"]
LONG = "compress me " * 1000
PING = b"ping-data"
CLOSE_CODE, CLOSE_REASON = 4001, "test done"


def expected_rows():
    t = TEXT.encode()
    f = "".join(FRAGMENTS).encode()
    close = CLOSE_CODE.to_bytes(2, "big") + CLOSE_REASON.encode()
    return [(0, 1, t, None, None), (1, 1, t, None, None),
            (0, 2, BINARY, None, None), (1, 2, BINARY, None, None),
            (0, 1, f, None, None), (1, 1, f, None, None),
            (0, 1, LONG.encode(), None, None),
            (1, 1, LONG.encode(), None, None),
            (0, 9, PING, None, None), (1, 10, PING, None, None),
            (0, 8, close, CLOSE_CODE, CLOSE_REASON),
            (1, 8, close, CLOSE_CODE, CLOSE_REASON)]


async def _step(aw):
    return await asyncio.wait_for(aw, STEP_TIMEOUT)


async def _converse(uri, sock, ctx, host, compression):
    got = {}
    kw = {"sock": sock, "ping_interval": None, "max_size": None,
          "open_timeout": STEP_TIMEOUT, "close_timeout": STEP_TIMEOUT}
    if ctx is not None:
        kw.update(ssl=ctx, server_hostname=host)
    if compression is None:
        kw["compression"] = None
    ws = await websockets.connect(uri, **kw)
    got["extensions"] = [e.name for e in ws.extensions]
    await _step(ws.send(TEXT))
    got["text"] = await _step(ws.recv())
    await _step(ws.send(BINARY))
    got["binary"] = await _step(ws.recv())
    await _step(ws.send(list(FRAGMENTS)))  # one message, three frames
    got["fragmented"] = await _step(ws.recv())
    await _step(ws.send(LONG))
    got["long"] = await _step(ws.recv())
    pong = await _step(ws.ping(PING))
    await _step(pong)
    got["pong"] = True
    await _step(ws.close(CLOSE_CODE, CLOSE_REASON))
    got["close"] = (ws.close_code, ws.close_reason)
    return got


def converse(uri, sock, ctx=None, host=None, compression="deflate"):
    """Run the conversation on sock (already through the proxy, or not);
    returns what the client got."""
    return asyncio.run(_converse(uri, sock, ctx, host, compression))


def assert_client_got(got, compression):
    assert got["text"] == TEXT
    assert got["binary"] == BINARY
    assert got["fragmented"] == "".join(FRAGMENTS)
    assert got["long"] == LONG
    assert got["pong"] is True
    assert got["close"] == (CLOSE_CODE, CLOSE_REASON)
    want = ["permessage-deflate"] if compression else []
    assert got["extensions"] == want, got["extensions"]


def client_ctx(cafile):
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx
