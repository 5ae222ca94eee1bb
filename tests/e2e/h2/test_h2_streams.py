"""
HTTP/2 stream semantics through peephole, against the python3-h2 origin
(h2_origin.py) over a CONNECT tunnel: a gRPC-shaped exchange with trailers
both ways, RST_STREAM from the client and from the origin, and an RFC 8441
WebSocket (extended CONNECT) whose messages are recorded in ws_messages.
"""
from .conftest import (body_of, conn_of, h2_client, h2_rows, header_lines,
                       start_h2_proxy)


def _client(p, origin, *args, **kw):
    return h2_client(*args, port=origin.port, proxy=p.port,
                     cafile=p.ca_pem, **kw)


def test_grpc_shaped_exchange_with_trailers(tls_proxy, certs, h2_origin):
    p = start_h2_proxy(tls_proxy, certs)
    out = _client(p, h2_origin, "trailers", "/trailers")
    assert out["rc"] == 0, out
    st = out["stream"]
    assert st["status"] == 200
    assert st["body"] == "echo:\x00\x00\x00\x00\x05hello"
    assert st["trailers"] == [["grpc-status", "0"],
                              ["grpc-message", "all good"]]
    # the origin got the request trailers, in order
    e = h2_origin.wait_entries("/trailers")
    assert len(e) == 1 and e[0]["trailers"] == [
        ["x-req-trailer", "one"], ["x-req-checksum", "abc123"]], e
    assert e[0]["body_len"] == 10

    p.stop()
    rows = h2_rows(p, "path = '/trailers'")
    assert len(rows) == 1, rows
    r = rows[0]
    assert (r["method"], r["status"], r["req_version"], r["stream_id"]) == \
        ("POST", 200, "2", 1)
    assert r["req_trailers"] == \
        "x-req-trailer: one\r\nx-req-checksum: abc123\r\n"
    assert r["resp_trailers"] == \
        "grpc-status: 0\r\ngrpc-message: all good\r\n"
    assert r["stream_end"] is None
    assert r["req_body_size"] == 10
    assert body_of(p, r["req_body_sha"]) == b"\x00\x00\x00\x00\x05hello"
    assert body_of(p, r["resp_body_sha"]) == \
        b"echo:\x00\x00\x00\x00\x05hello"
    assert r["content_type"] == "application/grpc"
    req = header_lines(r["req_headers"])
    assert ("te", "trailers") in req and \
        ("content-type", "application/grpc") in req
    # trailers are not mixed into the heads
    assert "grpc-status" not in r["resp_headers"]
    assert "x-req-trailer" not in r["req_headers"]


def test_goaway_from_origin_reaches_client(tls_proxy, certs, h2_origin):
    """The origin answers, then says GOAWAY: the client gets the answer
    and a GOAWAY of its own, the stream is recorded as answered, and the
    client's connection ends as the origin's did."""
    p = start_h2_proxy(tls_proxy, certs)
    out = _client(p, h2_origin, "goaway", "/goaway")
    assert out["rc"] == 0, out
    assert out["stream"]["status"] == 200 and out["stream"]["ended"], out
    assert out["goaway"] == 0, out  # NO_ERROR
    p.stop()
    rows = h2_rows(p, "path = '/goaway'")
    assert len(rows) == 1, rows
    assert (rows[0]["status"], rows[0]["stream_end"]) == (200, None), rows
    c = conn_of(p, rows[0])
    # ended at once, not left to time out (the client may reset it)
    assert c["close_reason"] in ("done", "client-eof", "client-error"), c


def test_rst_stream_from_client_and_from_origin(tls_proxy, certs,
                                                 h2_origin):
    p = start_h2_proxy(tls_proxy, certs)
    out = _client(p, h2_origin, "cancel", "/slow", "/ok")
    assert out["rc"] == 0, out
    assert [o["status"] for o in out["ok"]] == [200, 200]
    # the client's CANCEL reached the origin
    e = h2_origin.wait_entries("/slow")
    assert len(e) == 1 and e[0]["reset"] == 8, e  # CANCEL

    out = _client(p, h2_origin, "rst", "/rst")
    assert out["rc"] == 0, out
    assert out["stream"]["status"] == 200
    assert out["stream"]["reset"] == "INTERNAL_ERROR"

    p.stop()
    slow = h2_rows(p, "path = '/slow'")
    assert len(slow) == 1, slow
    assert slow[0]["stream_end"] == "rst-client CANCEL", slow[0]
    assert slow[0]["status"] == 0  # no answer: 0, as for HTTP/1
    assert slow[0]["stream_id"] == 1
    oks = h2_rows(p, "path = '/ok'")
    assert [(r["status"], r["stream_end"], r["stream_id"]) for r in oks] == \
        [(200, None, 3), (200, None, 5)]
    assert len({r["conn_id"] for r in oks + slow}) == 1
    rst = h2_rows(p, "path = '/rst'")
    assert len(rst) == 1, rst
    assert rst[0]["stream_end"] == "rst-origin INTERNAL_ERROR", rst[0]
    assert rst[0]["status"] == 200


def test_websocket_over_h2_extended_connect(tls_proxy, certs, h2_origin):
    """RFC 8441: the origin says SETTINGS_ENABLE_CONNECT_PROTOCOL = 1,
    the client opens a stream with :method CONNECT, :protocol websocket,
    and WebSocket frames travel in DATA frames. peephole must pass the
    setting on to the client, and record each message (payload as the
    frame carried it, unmasked: a close's is its code and reason)."""
    p = start_h2_proxy(tls_proxy, certs)
    out = _client(p, h2_origin, "ws", "/ws")
    assert out["rc"] == 0, out
    assert out["stream"]["status"] == 200
    assert out["received"] == out["sent"]
    e = h2_origin.wait_entries("/ws")
    assert len(e) == 1 and e[0]["protocol"] == "websocket", e

    p.stop()
    rows = h2_rows(p, "path = '/ws'")
    assert len(rows) == 1, rows
    r = rows[0]
    assert (r["method"], r["status"], r["req_version"]) == \
        ("CONNECT", 200, "2")
    assert (":protocol", "websocket") in header_lines(r["req_headers"])
    msgs = p.rows("SELECT * FROM ws_messages WHERE request_id = ? "
                  "ORDER BY idx", (r["id"],))
    assert [m["idx"] for m in msgs] == list(range(6)), msgs
    want = [(1, b"hello over h2", None, None),
            (2, b"\x00\x01\x02binary\xff", None, None),
            (8, b"\x03\xe8bye", 1000, "bye")]
    for d in (0, 1):
        got = [(m["opcode"], bytes(m["payload"]), m["close_code"],
                m["close_reason"]) for m in msgs if m["dir"] == d]
        assert got == want, (d, got)
    for m in msgs:
        assert m["size"] == len(m["payload"]) and m["compressed"] == 0
        assert m["truncated"] == 0 and m["error"] is None
    c = conn_of(p, r)
    assert c["alpn_client"] == "h2" and c["alpn_server"] == "h2"
