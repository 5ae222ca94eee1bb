"""
What a CONNECT tunnel may carry before the proxy knows it is TLS: a
ClientHello trickled one byte per TCP segment, malformed ClientHellos,
bytes that are not TLS at all, a record header followed by silence, and
hundreds of half-sent hellos. None of them may crash or hang the proxy; a
normal request through it works afterwards, and it exits 0 on SIGTERM with
no sanitizer report.
"""
import random
import socket
import ssl
import struct
import time

import pytest

from .conftest import (MemTLS, assert_alive, open_tunnel, stop_clean,
                       tls_conns, wait_conns)

# idle-timeout bounds a passed-through tunnel that goes quiet; the sniff
# timeout is the default, spelled out because the tests lean on it
CONF = {"idle-timeout": "2s", "sniff-timeout": "300ms"}
CLOSE_BOUND = 8.0  # > idle-timeout + sniff-timeout, with ASan slack


def https_ok(p, nginx):
    """A normal intercepted request through p succeeds."""
    r = p.curl(f"https://alpha.test:{nginx.tls_port}/small", "--cacert",
               str(p.ca_pem), timeout=15)
    assert r.rc == 0 and r.code == 200, (r.rc, r.code, r.stderr,
                                         p.stderr()[-2000:])
    assert r.body == nginx.files["small"]


def real_hello(p, name="alpha.test"):
    m = MemTLS(p.ca_pem, name)
    return m, m.client_hello()


def trickle(sock, data, pause):
    """One byte per send, Nagle off, pause seconds between sends."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(len(data)):
        sock.sendall(data[i:i + 1])
        if pause:
            time.sleep(pause)


def split_hello_then_get(p, nginx, pause):
    m, hello = real_hello(p)
    assert hello[0] == 0x16 and len(hello) > 200
    rc = open_tunnel(p, "alpha.test", nginx.tls_port)
    try:
        t0 = time.monotonic()
        trickle(rc.sock, hello, pause)
        spent = time.monotonic() - t0
        port = rc.sock.getsockname()[1]
        deadline = time.monotonic() + 10
        try:
            m.pump_handshake(rc.sock, deadline)  # verifies against p's CA
        except ssl.SSLCertVerificationError as e:
            # not the forged certificate: the tunnel was not intercepted
            rc.close()
            row = wait_conns(p, lambda c: c["client_port"] == port and
                             c["t_close_us"])
            pytest.fail("hello sent over %.2fs in %d segments was not "
                        "intercepted (%s); connection row: %s"
                        % (spent, len(hello), e.verify_message, row),
                        pytrace=False)
        assert m.obj.selected_alpn_protocol() == "http/1.1"
        m.send(rc.sock, f"GET /small HTTP/1.1\r\nHost: alpha.test:"
               f"{nginx.tls_port}\r\n\r\n".encode())
        head, body = m.recv_response(rc.sock, deadline)
        assert head.startswith("HTTP/1.1 200"), head
        assert body == nginx.files["small"]
    finally:
        rc.close()
    rows = p.dbh().wait_requests(
        lambda r: r["scheme"] == "https" and r["path"] == "/small" and
        r["host"] == "alpha.test", n=1)
    assert rows and rows[0]["status"] == 200, rows
    conns = wait_conns(p, lambda c: c["client_port"] == port)
    assert conns and conns[0]["sni"] == "alpha.test", conns
    assert conns[0]["decision"] == "intercept", conns
    assert conns[0]["protocol"] == "tls", conns
    return spent, len(hello)


def test_hello_one_byte_per_segment(tls_proxy, tls_nginx):
    """Reassembly: a 517-byte hello in ~517 segments (sniff-timeout long
    enough that only reassembly is tested)."""
    p = tls_proxy(conf_extra=dict(CONF, **{"sniff-timeout": "10s"}))
    split_hello_then_get(p, tls_nginx, pause=0.0005)
    assert_alive(p)
    https_ok(p, tls_nginx)
    stop_clean(p)


def test_hello_trickled_past_sniff_timeout(tls_proxy, tls_nginx):
    """The sniff timeout is for tunnels that send nothing (DESIGN: "other
    ... nothing before the timeout"; conf: "how long to wait for a
    tunnel's first bytes"). A ClientHello that arrives steadily, a byte
    every 2 ms, but takes longer in total than sniff-timeout is still a
    ClientHello, and is intercepted."""
    p = tls_proxy(conf_extra=CONF)
    spent, n = split_hello_then_get(p, tls_nginx, pause=0.002)
    assert spent > 0.3, spent  # the trickle did outlast sniff-timeout
    assert_alive(p)
    https_ok(p, tls_nginx)
    stop_clean(p)


# ---- malformed ClientHellos


def hello_offsets(h):
    """Offsets in a ClientHello record: session id length, cipher suites
    length, compression length, extensions length, and each extension as
    (type, offset of its 4-byte header, data length)."""
    o = {"sid": 5 + 4 + 2 + 32}
    o["cs"] = o["sid"] + 1 + h[o["sid"]]
    o["comp"] = o["cs"] + 2 + int.from_bytes(h[o["cs"]:o["cs"] + 2], "big")
    o["ext"] = o["comp"] + 1 + h[o["comp"]]
    exts, i = [], o["ext"] + 2
    end = i + int.from_bytes(h[o["ext"]:o["ext"] + 2], "big")
    assert end == len(h), (end, len(h))
    while i < end:
        t = int.from_bytes(h[i:i + 2], "big")
        ln = int.from_bytes(h[i + 2:i + 4], "big")
        exts.append((t, i, ln))
        i += 4 + ln
    o["exts"] = exts
    return o


def put(b, off, val, width):
    b[off:off + width] = val.to_bytes(width, "big")


def malformed_hellos(h):
    """(label, bytes): each a record header that sniffs as a TLS
    ClientHello, with lengths inside that do not add up."""
    o = hello_offsets(h)
    ext = {t: (off, ln) for t, off, ln in o["exts"]}
    assert 0 in ext and 16 in ext, "need SNI and ALPN in the sample"
    out = []

    def variant(label, fn):
        b = bytearray(h)
        fn(b)
        out.append((label, bytes(b)))

    variant("handshake length 0xffffff", lambda b: put(b, 6, 0xffffff, 3))
    variant("handshake length 10", lambda b: put(b, 6, 10, 3))
    variant("session id length 255", lambda b: put(b, o["sid"], 255, 1))
    variant("cipher suites length 0xffff",
            lambda b: put(b, o["cs"], 0xffff, 2))
    variant("cipher suites length odd", lambda b: put(b, o["cs"], 3, 2))
    variant("compression length 200", lambda b: put(b, o["comp"], 200, 1))
    variant("extensions length 0xffff",
            lambda b: put(b, o["ext"], 0xffff, 2))
    variant("extensions length short by 3",
            lambda b: put(b, o["ext"], len(h) - o["ext"] - 2 - 3, 2))
    sni, sni_len = ext[0]
    variant("SNI list length 0xffff", lambda b: put(b, sni + 4, 0xffff, 2))
    variant("SNI name length past the extension",
            lambda b: put(b, sni + 7, sni_len, 2))
    variant("SNI name length 0", lambda b: put(b, sni + 7, 0, 2))
    variant("SNI extension length 0xffff",
            lambda b: put(b, sni + 2, 0xffff, 2))
    alpn, alpn_len = ext[16]
    variant("ALPN list length 0xffff",
            lambda b: put(b, alpn + 4, 0xffff, 2))
    variant("ALPN name length 255", lambda b: put(b, alpn + 6, 255, 1))
    variant("ALPN name length 0", lambda b: put(b, alpn + 6, 0, 1))
    variant("ALPN extension length 1", lambda b: put(b, alpn + 2, 1, 2))

    def half_ext_header(b):
        # two bytes of a further extension's header, every length grown
        # to frame them: the record is whole, its last extension is not
        b += b"\x00\x2b"
        put(b, 3, int.from_bytes(b[3:5], "big") + 2, 2)
        put(b, 6, int.from_bytes(b[6:9], "big") + 2, 3)
        put(b, o["ext"], int.from_bytes(b[o["ext"]:o["ext"] + 2], "big") + 2,
            2)
    variant("last extension header cut", half_ext_header)
    # the record itself, recomputed to frame truncated / random contents
    rnd = random.Random(7)
    body = bytes([1]) + (300).to_bytes(3, "big") + rnd.randbytes(300)
    out.append(("random body, lengths framed",
                b"\x16\x03\x01" + len(body).to_bytes(2, "big") + body))
    body = bytes([1]) + (16380).to_bytes(3, "big") + rnd.randbytes(16380)
    out.append(("16384-byte record of random body",
                b"\x16\x03\x01" + len(body).to_bytes(2, "big") + body))
    cut = h[5:5 + 4 + 60]  # 60 bytes of the hello, framed as if whole
    cut = cut[:1] + (len(cut) - 4).to_bytes(3, "big") + cut[4:]
    out.append(("hello cut after the random, framed",
                b"\x16\x03\x01" + len(cut).to_bytes(2, "big") + cut))
    return out


def test_malformed_client_hellos(tls_proxy, tls_nginx):
    p = tls_proxy(conf_extra=CONF)
    _, hello = real_hello(p)
    variants = malformed_hellos(hello)
    # all at once, so the wait for each to end overlaps
    open_ = []
    for label, data in variants:
        rc = open_tunnel(p, "alpha.test", tls_nginx.tls_port)
        rc.sock.sendall(data)
        open_.append((label, rc, rc.sock.getsockname()[1], time.monotonic()))
    hung = []
    for label, rc, _, t0 in open_:
        # pass-through (the origin's alert, then EOF) or a close: either
        # way the tunnel ends, and the proxy never answers with a
        # ServerHello to a hello it could not parse
        left = max(0.1, CLOSE_BOUND - (time.monotonic() - t0))
        if not rc.closed_by_peer(timeout=left):
            hung.append(label)
        got = bytes(rc.buf)
        assert not got.startswith(b"\x16\x03"), (label, got[:16].hex())
        rc.close()
    assert not hung, "tunnels still open after %.0fs: %s" % (CLOSE_BOUND,
                                                              hung)
    assert_alive(p)
    https_ok(p, tls_nginx)

    # each is a connection row, sniffed as TLS, closed; none is taken for
    # a client that refused the forged certificate
    ports = {port: label for label, _, port, _ in open_}
    rows = wait_conns(p, lambda c: c["client_port"] in ports and
                      c["t_close_us"], n=len(ports), timeout=5)
    seen = {c["client_port"] for c in rows}
    assert seen == set(ports), [ports[x] for x in set(ports) - seen]
    for c in rows:
        what = (ports[c["client_port"]], c)
        assert c["protocol"] == "tls", what
        assert c["close_reason"] != "client-rejected-cert", what
    stop_clean(p)


# ---- not TLS at all


def test_garbage_after_connect_is_relayed_untouched(tls_proxy,
                                                    echo_origin):
    p = tls_proxy(conf_extra=CONF)
    rnd = random.Random(1)
    cases = [
        # random bytes, first byte no protocol starts with
        ("64 KiB random", b"\x00" + rnd.randbytes(65535)),
        ("7 bytes", b"\x00\xff\x13\x37\x80\x01\x02"),
        ("1 byte", b"\xfe"),
        # a TLS record header that turns out not to be a ClientHello
        ("TLS alert record", b"\x15\x03\x03\x00\x02\x02\x28"),
        ("handshake record, ServerHello type", b"\x16\x03\x03\x00\x04"
         b"\x02\x00\x00\x00" + rnd.randbytes(100)),
    ]
    ports = {}
    for label, data in cases:
        rc = open_tunnel(p, "127.0.0.1", echo_origin.port)
        try:
            rc.sock.settimeout(10)
            rc.send(data)
            back = rc.read_exact(len(data))
            assert back == data, label
            # and the tunnel keeps relaying both ways
            more = rnd.randbytes(1000)
            rc.send(more)
            assert rc.read_exact(len(more)) == more, label
            ports[rc.sock.getsockname()[1]] = (label, len(data) + 1000)
        finally:
            rc.close()
        assert_alive(p)

    # the prefix of a ClientHello, then nothing: after sniff-timeout it is
    # relayed as it is, and what follows too
    rc = open_tunnel(p, "127.0.0.1", echo_origin.port)
    try:
        rc.sock.settimeout(10)
        t0 = time.monotonic()
        rc.send(b"\x16\x03\x01")
        assert rc.read_exact(3) == b"\x16\x03\x01"
        assert time.monotonic() - t0 < 5
        tail = rnd.randbytes(5000)
        rc.send(tail)
        assert rc.read_exact(len(tail)) == tail
        ports[rc.sock.getsockname()[1]] = ("TLS prefix then silence",
                                           3 + len(tail))
    finally:
        rc.close()
    assert_alive(p)

    rows = wait_conns(p, lambda c: c["client_port"] in ports and
                      c["t_close_us"], n=len(ports), timeout=5)
    assert {c["client_port"] for c in rows} == set(ports), rows
    for c in rows:
        label, n = ports[c["client_port"]]
        assert c["decision"] == "passthrough", (label, c)
        assert c["protocol"] != "tls", (label, c)
        assert c["bytes_to_server"] == n, (label, c)
        assert c["bytes_from_server"] == n, (label, c)
    stop_clean(p)


# ---- a record header, then silence


def test_record_header_then_silence(tls_proxy, tls_nginx):
    p = tls_proxy(conf_extra=CONF)
    stalls = [
        ("record header, 16384 promised", b"\x16\x03\x01\x40\x00"),
        ("hello header, 16380 promised",
         b"\x16\x03\x01\x40\x00\x01\x00\x3f\xfc"),
        ("hello header and 40 bytes", b"\x16\x03\x01\x40\x00\x01\x00\x3f"
         b"\xfc\x03\x03" + bytes(38)),
    ]
    open_ = []
    for label, data in stalls:
        rc = open_tunnel(p, "alpha.test", tls_nginx.tls_port)
        rc.send(data)
        open_.append((label, rc, time.monotonic()))
    # the proxy serves others meanwhile
    https_ok(p, tls_nginx)
    hung = []
    for label, rc, t0 in open_:
        left = max(0.1, CLOSE_BOUND - (time.monotonic() - t0))
        if not rc.closed_by_peer(timeout=left):
            hung.append(label)
        rc.close()
    assert not hung, "still open after %.0fs: %s" % (CLOSE_BOUND, hung)
    assert_alive(p)
    https_ok(p, tls_nginx)
    stop_clean(p)


def test_stalled_hello_keeps_its_tls_label(tls_proxy, echo_origin):
    """DESIGN's sniff table: 16 03 0x, length <= 16384, byte 5 = 01 is
    tls, and "other" is anything else or nothing before the timeout. A
    ClientHello that starts and then stalls past sniff-timeout is relayed
    (fine: the echo origin sends it back, which is how the test knows the
    proxy gave up waiting) but is still recorded as tls."""
    p = tls_proxy(conf_extra=CONF)
    _, hello = real_hello(p)
    ports = {}
    for label, data in (("hello header", hello[:9]),
                        ("half a hello", hello[:len(hello) // 2])):
        rc = open_tunnel(p, "127.0.0.1", echo_origin.port)
        try:
            rc.sock.settimeout(10)
            rc.send(data)
            assert rc.read_exact(len(data)) == data, label
            ports[rc.sock.getsockname()[1]] = label
        finally:
            rc.close()
    rows = wait_conns(p, lambda c: c["client_port"] in ports and
                      c["t_close_us"], n=len(ports))
    assert len(rows) == len(ports), rows
    for c in rows:
        assert c["decision"] == "passthrough", (ports[c["client_port"]], c)
        assert c["protocol"] == "tls", (ports[c["client_port"]], c)
    assert_alive(p)
    stop_clean(p)


# ---- many half-sent hellos


def test_many_partial_hellos_then_close(tls_proxy, tls_nginx):
    p = tls_proxy(conf_extra=CONF)
    _, hello = real_hello(p)
    rnd = random.Random(5)
    target = f"alpha.test:{tls_nginx.tls_port}"
    connect = (f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n"
               .encode())
    socks, later = [], {}
    try:
        for i in range(200):
            s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
            socks.append(s)
            part = hello[:rnd.randint(1, len(hello) - 1)]
            if i % 2:
                s.sendall(connect + part)  # pipelined with the CONNECT
            else:
                s.sendall(connect)
                later[i] = part
        for i, part in later.items():
            # these wait for the 200 before their partial hello
            s, got = socks[i], b""
            for _ in range(100):
                d = s.recv(4096)
                got += d
                if not d or b"\r\n\r\n" in got:
                    break
            assert got.startswith(b"HTTP/1.1 200"), got
            s.sendall(part)
        ports = {s.getsockname()[1] for s in socks}
        for i, s in enumerate(socks):
            if i % 3 == 0:  # some go with a reset
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))
            s.close()
    finally:
        for s in socks:
            s.close()
    assert_alive(p)
    https_ok(p, tls_nginx)
    # every one of them is recorded and closed
    rows = wait_conns(p, lambda c: c["client_port"] in ports and
                      c["t_close_us"], n=len(ports), timeout=10)
    assert len(rows) == len(ports), (len(rows), len(ports))
    assert_alive(p)
    stop_clean(p)
    # nothing left half-open in the db either
    assert len([c for c in tls_conns(p) if not c["t_close_us"]]) == 0
