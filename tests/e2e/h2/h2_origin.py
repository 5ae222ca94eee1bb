#!/usr/bin/python3
"""
An HTTP/2 origin for the h2 tests, on python3-h2 (run as a subprocess: the
test package is named h2 and would shadow the library in-process).

    h2_origin.py --port N --log FILE [--cert PEM --key PEM | --plain]

TLS with ALPN h2 only (or h2c with prior knowledge when --plain); one
thread per connection; SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 (RFC 8441).
Answers by path:

  /trailers  reads the request (body and trailers), answers 200 with
             content-type application/grpc, the body "echo:" + request
             body, then trailers grpc-status: 0, grpc-message: all good
  /rst       answers the headers, then RST_STREAM INTERNAL_ERROR
  /slow      never answers (until the client resets the stream)
  /ws        extended CONNECT :protocol websocket: 200, then every
             WebSocket frame the client sends comes back unmasked with
             the same opcode and payload (a close is echoed, then END_STREAM)
  anything   200, "h2-origin PATH\n"

Every stream is logged as one JSON line in --log when it ends (or is
reset): path, method, headers (request, in order), body length, request
trailers, reset code if reset, and the connection's serial number.
"""
import argparse
import json
import socket
import ssl
import sys
import threading

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

def ws_frames(buf):
    """Complete client frames in buf: ([(fin, opcode, payload)], rest)."""
    out = []
    for _ in range(10000):
        if len(buf) < 2:
            break
        b0, b1 = buf[0], buf[1]
        n, i = b1 & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                break
            n, i = int.from_bytes(buf[2:4], "big"), 4
        elif n == 127:
            if len(buf) < 10:
                break
            n, i = int.from_bytes(buf[2:10], "big"), 10
        mask = b""
        if b1 & 0x80:
            if len(buf) < i + 4:
                break
            mask, i = buf[i:i + 4], i + 4
        if len(buf) < i + n:
            break
        payload = bytearray(buf[i:i + n])
        if mask:
            for k in range(n):
                payload[k] ^= mask[k % 4]
        out.append((bool(b0 & 0x80), b0 & 0x0F, bytes(payload)))
        buf = buf[i + n:]
    return out, buf


def ws_frame(fin, opcode, payload):
    """One unmasked (server) frame."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + n.to_bytes(2, "big")
    else:
        head += bytes([127]) + n.to_bytes(8, "big")
    return head + payload


class Stream:
    def __init__(self, sid, headers):
        self.id = sid
        self.headers = headers
        h = dict(headers)
        self.path = h.get(":path", "")
        self.method = h.get(":method", "")
        self.protocol = h.get(":protocol")
        self.body = bytearray()
        self.trailers = []
        self.reset = None
        self.ws_buf = b""


class Origin:
    def __init__(self, args):
        self.args = args
        self.log_lock = threading.Lock()
        self.nconn = 0

    def log(self, serial, st):
        rec = {"conn": serial, "stream_id": st.id, "path": st.path,
               "method": st.method, "headers": st.headers,
               "body_len": len(st.body), "trailers": st.trailers,
               "reset": st.reset, "protocol": st.protocol}
        with self.log_lock, open(self.args.log, "a") as f:
            f.write(json.dumps(rec) + "\n")

    def serve(self):
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.args.port))
        ls.listen(128)
        ctx = None
        if not self.args.plain:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.args.cert, self.args.key)
            ctx.set_alpn_protocols(["h2"])
        for _ in range(1000000):
            c, _ = ls.accept()
            self.nconn += 1
            threading.Thread(target=self.conn, args=(c, ctx, self.nconn),
                             daemon=True).start()

    def conn(self, sock, ctx, serial):
        try:
            sock.settimeout(30)
            if ctx is not None:
                sock = ctx.wrap_socket(sock, server_side=True)
            Conn(self, sock, serial).run()
        except (OSError, ssl.SSLError, h2.exceptions.ProtocolError):
            pass
        finally:
            sock.close()


class Conn:
    def __init__(self, origin, sock, serial):
        self.origin = origin
        self.sock = sock
        self.serial = serial
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False,
                                      header_encoding="utf-8"))
        self.streams = {}

    def flush(self):
        d = self.h2.data_to_send()
        if d:
            self.sock.sendall(d)

    def run(self):
        self.h2.initiate_connection()
        self.h2.update_settings(
            {h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 1})
        self.flush()
        for _ in range(10000000):
            data = self.sock.recv(65536)
            if not data:
                return
            for ev in self.h2.receive_data(data):
                self.event(ev)
            self.flush()

    def event(self, ev):
        if isinstance(ev, h2.events.RequestReceived):
            st = Stream(ev.stream_id, [list(h) for h in ev.headers])
            self.streams[ev.stream_id] = st
            if st.path == "/rst":
                self.h2.send_headers(st.id, [(":status", "200"),
                                             ("content-type", "text/plain")])
                self.flush()
                self.h2.reset_stream(st.id, h2.errors.ErrorCodes.INTERNAL_ERROR)
                self.origin.log(self.serial, st)
            elif st.protocol is not None and st.method == "CONNECT":
                self.h2.send_headers(st.id, [(":status", "200")])
        elif isinstance(ev, h2.events.DataReceived):
            self.h2.acknowledge_received_data(ev.flow_controlled_length,
                                              ev.stream_id)
            st = self.streams.get(ev.stream_id)
            if st is None:
                return
            st.body += ev.data
            if st.protocol is not None:
                self.ws_echo(st, ev.data)
        elif isinstance(ev, h2.events.TrailersReceived):
            st = self.streams.get(ev.stream_id)
            if st is not None:
                st.trailers = [list(h) for h in ev.headers]
        elif isinstance(ev, h2.events.StreamEnded):
            st = self.streams.get(ev.stream_id)
            if st is not None:
                self.answer(st)
        elif isinstance(ev, h2.events.StreamReset):
            st = self.streams.pop(ev.stream_id, None)
            if st is not None:
                st.reset = int(ev.error_code)
                self.origin.log(self.serial, st)

    def ws_echo(self, st, data):
        frames, st.ws_buf = ws_frames(st.ws_buf + data)
        for fin, op, payload in frames:
            self.h2.send_data(st.id, ws_frame(fin, op, payload))

    def answer(self, st):
        if st.path in ("/slow", "/rst") or st.id not in self.streams:
            return
        if st.protocol is not None:
            # the client ended its side (after its close frame): end ours
            self.h2.end_stream(st.id)
        elif st.path == "/trailers":
            self.h2.send_headers(st.id, [
                (":status", "200"), ("content-type", "application/grpc"),
                ("x-origin", "h2_origin")])
            self.h2.send_data(st.id, b"echo:" + bytes(st.body))
            self.h2.send_headers(st.id, [("grpc-status", "0"),
                                         ("grpc-message", "all good")],
                                 end_stream=True)
        else:
            body = ("h2-origin %s\n" % st.path).encode()
            self.h2.send_headers(st.id, [
                (":status", "200"), ("content-type", "text/plain"),
                ("content-length", str(len(body)))])
            self.send_body(st.id, body)
        self.streams.pop(st.id, None)
        self.origin.log(self.serial, st)
        if st.path == "/goaway":
            # answered; now the origin is done with this connection
            self.h2.close_connection(last_stream_id=st.id)

    def send_body(self, sid, body):
        """Small bodies only: they fit the peer's initial window, so
        nothing here waits for WINDOW_UPDATE."""
        assert len(body) <= self.h2.local_flow_control_window(sid)
        for i in range(0, len(body), 16384):
            self.h2.send_data(sid, body[i:i + 16384])
        self.h2.end_stream(sid)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--plain", action="store_true")
    args = ap.parse_args()
    if not args.plain and not (args.cert and args.key):
        ap.error("--cert and --key, or --plain")
    Origin(args).serve()


if __name__ == "__main__":
    sys.exit(main())
