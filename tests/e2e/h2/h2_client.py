#!/usr/bin/python3
"""
An HTTP/2 client for the h2 tests, on python3-h2 (run as a subprocess: the
test package is named h2 and would shadow the library in-process). Prints
one JSON object on stdout; exit status 0 unless something it was asked to
check outright could not be done (connect, handshake, timeout: exit 1
with {"error": ...}).

    h2_client.py --host NAME --port N [--connect PORT] [--proxy PORT]
                 [--plain] [--cafile PEM] [--alpn h2[,http/1.1]]
                 SCENARIO [PATH...]

--connect dials 127.0.0.1:PORT (default: --port) — a reverse listener or
the origin itself; --proxy opens a CONNECT tunnel to NAME:N through
127.0.0.1:PORT first. TLS with SNI NAME, ALPN as given, verified against
--cafile; --plain speaks h2c with prior knowledge. Scenarios:

  get PATH...     all requests at once on one connection; every answer
  slowbig BIG N   BIG first; once its first DATA arrived and while its
                  window is not acknowledged, N small GETs (/small?i=K);
                  then BIG is read to the end (acknowledged at once)
  trailers PATH   POST with a body and request trailers; the answer with
                  its trailers
  cancel SLOW OK  SLOW, then OK (answered: SLOW has reached the origin's
                  side), then RST_STREAM CANCEL on SLOW, then OK again
  rst PATH        GET PATH; the answer head and the reset the stream got
  ws PATH         RFC 8441 extended CONNECT (:protocol websocket), then a
                  text, a binary and a close frame (1000, "bye"); what
                  came back
"""
import argparse
import hashlib
import json
import os
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings


class Fail(Exception):
    pass


class Stream:
    def __init__(self, sid, path):
        self.id = sid
        self.path = path
        self.headers = None
        self.data = bytearray()
        self.trailers = None
        self.ended = False
        self.reset = None
        self.t_end = None

    def done(self):
        return self.ended or self.reset is not None

    def json(self, keep_body=False):
        h = dict(self.headers or [])
        out = {"stream_id": self.id, "path": self.path,
               "status": int(h[":status"]) if ":status" in h else None,
               "headers": self.headers, "trailers": self.trailers,
               "body_len": len(self.data),
               "body_sha256": hashlib.sha256(self.data).hexdigest(),
               "ended": self.ended, "reset": self.reset}
        if keep_body:
            out["body"] = self.data.decode("latin-1")
        return out


class Client:
    def __init__(self, a):
        self.a = a
        self.deadline = time.monotonic() + a.timeout
        self.sock = self.dial()
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True,
                                      header_encoding="utf-8"))
        self.streams = {}
        self.acked = set()  # streams whose data is acknowledged at once
        self.hold = set()   # streams whose window is held back
        self.settings_seen = False
        self.goaway = None  # the error code of a GOAWAY received
        self.h2.initiate_connection()
        self.flush()

    def dial(self):
        a = self.a
        s = socket.create_connection(
            ("127.0.0.1", a.proxy or a.connect or a.port), timeout=a.timeout)
        if a.proxy:
            s.sendall(("CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (
                a.host, a.port, a.host, a.port)).encode())
            buf = b""
            for _ in range(1000):
                if b"\r\n\r\n" in buf:
                    break
                d = s.recv(1)  # byte by byte: nothing past the head
                if not d:
                    raise Fail("proxy closed during CONNECT")
                buf += d
            if buf.split(b" ")[1:2] != [b"200"]:
                raise Fail("CONNECT answered %r" % buf[:200])
        self.alpn = None
        if a.plain:
            return s
        ctx = ssl.create_default_context(cafile=a.cafile)
        ctx.set_alpn_protocols(a.alpn.split(","))
        s = ctx.wrap_socket(s, server_hostname=a.host)
        self.alpn = s.selected_alpn_protocol()
        if self.alpn != "h2":
            raise Fail("ALPN selected %r, not h2" % self.alpn)
        return s

    def flush(self):
        d = self.h2.data_to_send()
        if d:
            self.sock.sendall(d)

    def request(self, path, method="GET", end=True, extra=()):
        sid = self.h2.get_next_available_stream_id()
        self.h2.send_headers(sid, [
            (":method", method), (":scheme", "http" if self.a.plain
                                  else "https"),
            (":authority", "%s:%d" % (self.a.host, self.a.port)),
            (":path", path), ("user-agent", "h2_client")] + list(extra),
            end_stream=end)
        self.streams[sid] = Stream(sid, path)
        self.acked.add(sid)
        self.flush()
        return self.streams[sid]

    def pump(self, until, what):
        for _ in range(10000000):
            if until():
                return
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise Fail("timeout waiting for " + what)
            self.sock.settimeout(min(left, 1.0))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                raise Fail("connection closed waiting for " + what)
            for ev in self.h2.receive_data(data):
                self.event(ev)
            self.flush()

    def event(self, ev):
        st = self.streams.get(getattr(ev, "stream_id", None))
        if isinstance(ev, h2.events.ResponseReceived) and st:
            st.headers = [list(h) for h in ev.headers]
        elif isinstance(ev, h2.events.DataReceived):
            if st is not None:
                st.data += ev.data
            if ev.stream_id in self.hold:
                return
            self.h2.acknowledge_received_data(ev.flow_controlled_length,
                                              ev.stream_id)
        elif isinstance(ev, h2.events.TrailersReceived) and st:
            st.trailers = [list(h) for h in ev.headers]
        elif isinstance(ev, h2.events.StreamEnded) and st:
            st.ended = True
            st.t_end = time.monotonic()
        elif isinstance(ev, h2.events.StreamReset) and st:
            st.reset = h2.errors.ErrorCodes(ev.error_code).name \
                if ev.error_code in list(h2.errors.ErrorCodes) \
                else int(ev.error_code)
            st.t_end = time.monotonic()
        elif isinstance(ev, h2.events.RemoteSettingsChanged):
            self.settings_seen = True
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = int(ev.error_code)
            if self.a.scenario != "goaway":
                raise Fail("GOAWAY %s" % ev.error_code)

    def close(self):
        try:
            self.h2.close_connection()
            self.flush()
        except (OSError, h2.exceptions.ProtocolError):
            pass
        self.sock.close()


def do_get(c, paths):
    sts = [c.request(p) for p in paths]
    c.pump(lambda: all(s.done() for s in sts), "answers")
    return {"streams": [s.json() for s in sts]}


def do_slowbig(c, big, n):
    # the connection window is made large so that only the big stream's
    # own window holds it back
    c.h2.increment_flow_control_window(1 << 30)
    b = c.request(big)
    c.acked.discard(b.id)
    c.hold.add(b.id)
    c.pump(lambda: len(b.data) > 0, "the first bytes of " + big)
    smalls = [c.request("/small?i=%d" % i) for i in range(n)]
    c.pump(lambda: all(s.done() for s in smalls), "the small answers")
    big_at_smalls_done = len(b.data)
    # now read the big one at full speed: give back what it used
    c.hold.discard(b.id)
    if b.data:
        c.h2.acknowledge_received_data(len(b.data), b.id)
        c.flush()
    c.pump(lambda: b.done(), "the end of " + big)
    return {"big": b.json(), "smalls": [s.json(keep_body=True)
                                        for s in smalls],
            "big_bytes_when_smalls_done": big_at_smalls_done}


def do_trailers(c, path):
    st = c.request(path, "POST", end=False, extra=[
        ("content-type", "application/grpc"), ("te", "trailers")])
    c.h2.send_data(st.id, b"\x00\x00\x00\x00\x05hello")
    c.h2.send_headers(st.id, [("x-req-trailer", "one"),
                              ("x-req-checksum", "abc123")], end_stream=True)
    c.flush()
    c.pump(st.done, "the answer to " + path)
    return {"stream": st.json(keep_body=True)}


def do_cancel(c, slow, ok):
    s = c.request(slow)
    o1 = c.request(ok)
    c.pump(o1.done, "the answer to " + ok)
    c.h2.reset_stream(s.id, h2.errors.ErrorCodes.CANCEL)
    c.flush()
    o2 = c.request(ok)
    c.pump(o2.done, "the second answer to " + ok)
    return {"slow": s.json(), "ok": [o1.json(), o2.json()]}


def do_goaway(c, path):
    """A stream the origin answers and then says GOAWAY: the answer and
    a GOAWAY reach the client."""
    st = c.request(path)
    c.pump(lambda: st.done() and c.goaway is not None, "answer and GOAWAY")
    return {"stream": st.json(), "goaway": c.goaway}


def do_rst(c, path):
    st = c.request(path)
    c.pump(st.done, "the reset of " + path)
    return {"stream": st.json()}


def ws_frame(opcode, payload, fin=True):
    """One masked (client) frame."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    else:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ws_parse(buf):
    out = []
    for _ in range(1000):
        if len(buf) < 2:
            break
        n, i = buf[1] & 0x7F, 2
        if n == 126:
            n, i = int.from_bytes(buf[2:4], "big"), 4
        if len(buf) < i + n:
            break
        out.append([buf[0] & 0x0F, buf[i:i + n].decode("latin-1")])
        buf = buf[i + n:]
    return out


def do_ws(c, path):
    c.pump(lambda: c.settings_seen, "the server's SETTINGS")
    if not c.h2.remote_settings.enable_connect_protocol:
        raise Fail("the server did not send SETTINGS_ENABLE_CONNECT_PROTOCOL")
    sid = c.h2.get_next_available_stream_id()
    c.h2.send_headers(sid, [
        (":method", "CONNECT"), (":protocol", "websocket"),
        (":scheme", "http" if c.a.plain else "https"),
        (":path", path), (":authority", "%s:%d" % (c.a.host, c.a.port)),
        ("sec-websocket-version", "13"), ("origin", "https://" + c.a.host)])
    st = c.streams[sid] = Stream(sid, path)
    c.flush()
    c.pump(lambda: st.headers is not None or st.done(), "the CONNECT answer")
    sent = [[1, "hello over h2"], [2, "\x00\x01\x02binary\xff"],
            [8, (1000).to_bytes(2, "big").decode("latin-1") + "bye"]]
    for op, payload in sent:
        c.h2.send_data(sid, ws_frame(op, payload.encode("latin-1")))
    c.h2.end_stream(sid)
    c.flush()
    c.pump(st.done, "the echoes")
    return {"stream": st.json(), "sent": sent,
            "received": ws_parse(bytes(st.data))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--connect", type=int)
    ap.add_argument("--proxy", type=int)
    ap.add_argument("--plain", action="store_true")
    ap.add_argument("--cafile")
    ap.add_argument("--alpn", default="h2")
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("scenario")
    ap.add_argument("args", nargs="*")
    a = ap.parse_args()
    out = {}
    try:
        c = Client(a)
        out["alpn"] = c.alpn
        f = {"get": do_get, "trailers": do_trailers, "cancel": do_cancel,
             "rst": do_rst, "ws": do_ws,
             "goaway": do_goaway}.get(a.scenario)
        if a.scenario == "slowbig":
            out.update(do_slowbig(c, a.args[0], int(a.args[1])))
        elif f is not None:
            out.update(f(c, *a.args) if a.scenario != "get"
                       else f(c, a.args))
        else:
            raise Fail("unknown scenario " + a.scenario)
        c.close()
    except (Fail, OSError, ssl.SSLError, h2.exceptions.ProtocolError) as e:
        out["error"] = "%s: %s" % (type(e).__name__, e)
        print(json.dumps(out))
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
