#!/usr/bin/python3
"""The web UI bench's capture (web_bench.sql) as a mitmproxy flow file, for
the mitmweb baseline in web_bench.mjs. Run with Debian's python3, which has
mitmproxy (8.1.1) in dist-packages:

    /usr/bin/python3 tests/bench/web_bench_mitm.py --db CAPTURE.db --out F

Every row of `requests` becomes an http.HTTPFlow with the same client and
server addresses, scheme, method, host, port, path and query, HTTP version,
status and reason, request and response headers (Content-Type from the
content_type column, which the recorded header block does not follow),
and the same times (start, first byte and end from t_start_us, ttfb_us
and total_us; the connection's accept, TLS and close times on its client and server
connection, shared by the flows of one connection). Bodies are NOT stored
(there are none in the SQLite capture either): every body is empty, and a
Content-Length header carries the recorded size (so mitmweb's size column,
which counts body bytes, shows 0). Exchanges that failed without an answer
get no response and a flow.Error with the same message and time; WebSocket
upgrades (status 101) get their messages from ws_messages. Connections with
no exchange (failed TLS, passed-through streams) become tcp.TCPFlows with no
messages, the failed ones with an error, so mitmweb's list holds the same
rows as peephole's.

Flow ids encode the SQLite ids, so the bench can tell rows apart:
    00000000-0000-4000-8000-<request id, 12 digits>   HTTP exchanges
    00000000-0000-4000-9000-<connection id, 12 digits> TCP flows

The file is written beside --out and renamed into place when complete. On
success the last line on stdout is `wrote N http + M tcp flows`.
"""

import argparse
import os
import sqlite3
import sys
import time

from mitmproxy import connection, flow, http, io, tcp, websocket


def s(us):
    return None if us is None else us / 1e6


def headers(text, extra=()):
    """The recorded header block, with extra (name, value) pairs replacing
    headers of the same name (a value of None adds nothing)."""
    over = {k.lower(): v for k, v in extra if v is not None}
    fields = []
    for line in (text or "").splitlines():
        if ":" not in line:
            continue
        k, v = line.split(":", 1)
        k = k.strip().encode()
        if k.lower() not in over:
            fields.append((k, v.strip().encode()))
    for k, v in over.items():
        fields.append((k, str(v).encode()))
    return http.Headers(fields)


def version(v):
    if v is None:
        return None
    return b"HTTP/2.0" if v == "2" else ("HTTP/" + v).encode()


def tls_parts(desc):
    # "TLSv1.3 TLS_AES_128_GCM_SHA256" -> ("TLSv1.3", "TLS_AES_...")
    if not desc:
        return None, None
    p = desc.split(" ", 1)
    return p[0], (p[1] if len(p) > 1 else None)


def client_conn(c):
    tls = c["protocol"] == "tls"
    ver, cipher = tls_parts(c["tls_client"])
    failed = c["close_reason"] == "client-tls-error"
    return connection.Client.from_state(dict(
        id="00000000-0000-4000-a000-%012d" % c["id"],
        address=(c["client_ip"], c["client_port"]),
        mitmcert=None,
        tls_established=bool(tls and not failed and ver),
        timestamp_start=s(c["t_accept_us"]),
        timestamp_tls_setup=s(c["t_first_byte_us"]) if tls and ver else None,
        timestamp_end=s(c["t_close_us"]),
        sni=c["sni"],
        cipher_name=cipher,
        alpn=c["alpn"].encode() if c["alpn"] else None,
        tls_version=ver,
        tls_extensions=[],
        state=0,
        sockname=("127.0.0.1", 8080),
        error=c["error"],
        tls=tls,
        certificate_list=[],
        alpn_offers=[],
        cipher_list=[],
    ))


def server_conn(c):
    tls = c["protocol"] == "tls"
    ver, cipher = tls_parts(c["tls_server"])
    return connection.Server.from_state(dict(
        id="00000000-0000-4000-b000-%012d" % c["id"],
        address=(c["target_host"], c["target_port"]),
        source_address=None,
        ip_address=(c["server_ip"], c["server_port"]) if c["server_ip"]
        else None,
        timestamp_start=s(c["t_accept_us"]),
        timestamp_tcp_setup=s(c["t_first_byte_us"]),
        timestamp_tls_setup=s(c["t_first_byte_us"]) if tls and ver else None,
        timestamp_end=s(c["t_close_us"]),
        tls_established=bool(tls and ver),
        sni=c["sni"],
        alpn=c["alpn"].encode() if c["alpn"] else None,
        tls_version=ver,
        via=None,
        state=0,
        error=None,
        tls=tls,
        certificate_list=[],
        alpn_offers=[],
        cipher_name=cipher,
        cipher_list=[],
        via2=None,
    ))


def http_flow(r, cc, sc, ws):
    t0 = s(r["t_start_us"])
    h2 = r["req_version"] == "2"
    path = r["path"] + ("?" + r["query"] if r["query"] else "")
    req = http.Request(
        r["host"], r["port"], r["method"].encode(), r["scheme"].encode(),
        (r["host"] if h2 else "").encode(), path.encode(),
        version(r["req_version"]),
        headers(r["req_headers"], [(b"content-length",
                                    r["req_body_size"] or None)]),
        b"", None, t0, t0 + 0.0002)
    f = http.HTTPFlow(cc, sc)
    f.id = "00000000-0000-4000-8000-%012d" % r["id"]
    f.timestamp_created = t0
    f.request = req
    f.live = False
    if r["status"] is not None:
        ttfb = s(r["ttfb_us"]) or 0
        f.response = http.Response(
            version(r["resp_version"]), r["status"],
            (r["resp_reason"] or "").encode(),
            headers(r["resp_headers"], [
                (b"content-type", r["content_type"]),
                (b"content-length", r["resp_body_size"])]),
            b"", None, t0 + ttfb, t0 + max(ttfb, s(r["total_us"]) or 0))
    if r["error"]:
        f.error = flow.Error(r["error"], t0 + (s(r["total_us"]) or 0))
    if ws:
        d = websocket.WebSocketData()
        d.messages = [websocket.WebSocketMessage(
            m["opcode"], m["dir"] == 0, bytes(m["payload"] or b""),
            s(m["t_us"])) for m in ws]
        d.timestamp_end = s(r["t_start_us"] + r["total_us"])
        f.websocket = d
    return f


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    t0 = time.monotonic()
    db = sqlite3.connect("file:%s?mode=ro" % a.db, uri=True)
    db.row_factory = sqlite3.Row
    conns = {}
    for c in db.execute("SELECT * FROM connections"):
        conns[c["id"]] = c
    ws = {}
    for m in db.execute("SELECT * FROM ws_messages ORDER BY request_id, idx"):
        ws.setdefault(m["request_id"], []).append(m)
    with_reqs = set()
    cache = {}
    tmp = a.out + ".part"
    nh = nt = 0
    with open(tmp, "wb") as fo:
        w = io.FlowWriter(fo)
        # Written in start order, as a recording would have them.
        rows = db.execute(
            "SELECT 'r' AS kind, id, t_start_us AS t FROM requests UNION ALL "
            "SELECT 'c', id, t_accept_us FROM connections WHERE id NOT IN "
            "(SELECT conn_id FROM requests WHERE conn_id IS NOT NULL) "
            "ORDER BY t, kind DESC, id").fetchall()
        reqs = db.execute("SELECT * FROM requests ORDER BY id")
        byid = {}
        for r in reqs:
            byid[r["id"]] = r
        for kind, rid, _ in rows:
            if kind == "r":
                r = byid.pop(rid)
                cid = r["conn_id"]
                with_reqs.add(cid)
                if cid not in cache:
                    c = conns[cid]
                    cache.clear()  # requests of a connection are adjacent
                    cache[cid] = (client_conn(c), server_conn(c))
                cc, sc = cache[cid]
                w.add(http_flow(r, cc, sc, ws.get(rid)))
                nh += 1
            else:
                c = conns[rid]
                f = tcp.TCPFlow(client_conn(c), server_conn(c))
                f.id = "00000000-0000-4000-9000-%012d" % c["id"]
                f.timestamp_created = s(c["t_accept_us"])
                f.messages = []
                f.live = False
                if c["error"] or c["close_reason"] == "client-tls-error":
                    f.error = flow.Error(c["error"] or c["close_reason"],
                                         s(c["t_close_us"]))
                w.add(f)
                nt += 1
    os.replace(tmp, a.out)
    print("%s: %d bytes in %.1f s" % (a.out, os.path.getsize(a.out),
                                      time.monotonic() - t0))
    print("wrote %d http + %d tcp flows" % (nh, nt))


if __name__ == "__main__":
    sys.exit(main())
