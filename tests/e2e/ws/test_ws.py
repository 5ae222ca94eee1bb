"""
WebSocket message recording: the conversation of conftest.converse (text,
binary, a message sent in three fragments, a long compressible text, a
ping and its pong, a close with code 4001 and a reason) through the
proxy, over TLS and plain, CONNECT and SOCKS5, with permessage-deflate
(websockets' default) and without. The client must get every echo, and
ws_messages must hold every message both ways, in order: direction
(0 client->server, 1 server->client), opcode (1 text, 2 binary, 8 close,
9 ping, 10 pong), size and payload inflated and unmasked (a fragmented
message is one row; a close's payload is its code and reason), the
compressed flag, close code and reason.
"""
from conftest import free_port, token, wait_listen

from .conftest import (assert_client_got, client_ctx, connect_tunnel,
                       converse, expected_rows, socks_socket)


def _proxy(tls_proxy, certs):
    sport = free_port()
    p = tls_proxy("--upstream-ca", certs.ca, "--listen",
                  f"socks5@127.0.0.1:{sport}")
    assert wait_listen(sport, 10, p.proc), p.stderr()[-2000:]
    p.socks_port = sport
    return p


def _assert_rows(p, t, scheme, compressed, listener):
    p.stop()
    reqs = p.rows("SELECT * FROM requests WHERE path = '/echo' AND "
                  "query LIKE ?", (f"%{t}%",))
    assert len(reqs) == 1, reqs
    r = reqs[0]
    assert (r["scheme"], r["method"], r["status"]) == (scheme, "GET", 101)
    c = p.rows("SELECT * FROM connections WHERE id = ?", (r["conn_id"],))[0]
    assert c["listener"] == listener
    msgs = p.rows("SELECT * FROM ws_messages WHERE request_id = ? "
                  "ORDER BY idx", (r["id"],))
    got = [(m["dir"], m["opcode"], bytes(m["payload"]), m["close_code"],
            m["close_reason"]) for m in msgs]
    assert got == expected_rows(), got
    assert [m["idx"] for m in msgs] == list(range(len(msgs)))
    ts = [m["t_us"] for m in msgs]
    assert ts == sorted(ts) and ts[0] >= r["t_start_us"], ts
    for m in msgs:
        assert m["size"] == len(m["payload"]), m
        assert m["truncated"] == 0 and m["error"] is None, m
        data = m["opcode"] in (1, 2)
        # control frames are never compressed (RFC 7692 6.1)
        assert m["compressed"] == (1 if compressed and data else 0), m
        if m["compressed"]:
            assert m["wire_bytes"] < m["size"] or m["size"] < 64, m
        else:
            assert m["wire_bytes"] >= m["size"], m
    # the long text: deflate shrinks 12000 repetitive bytes a lot
    longs = [m for m in msgs if m["size"] == 12000]
    assert len(longs) == 2
    if compressed:
        assert all(m["wire_bytes"] < 1000 for m in longs), longs


def test_wss_over_connect_with_deflate(tls_proxy, certs, wss_server):
    p = _proxy(tls_proxy, certs)
    t = token()
    port = wss_server.port
    got = converse(f"wss://alpha.test:{port}/echo?t={t}",
                   connect_tunnel(p.port, "alpha.test", port),
                   client_ctx(p.ca_pem), "alpha.test")
    assert_client_got(got, "deflate")
    assert len([m for q, m in wss_server.received if t in q]) == 4
    _assert_rows(p, t, "https", True, "http")


def test_wss_over_connect_without_compression(tls_proxy, certs, wss_server):
    p = _proxy(tls_proxy, certs)
    t = token()
    port = wss_server.port
    got = converse(f"wss://alpha.test:{port}/echo?t={t}",
                   connect_tunnel(p.port, "alpha.test", port),
                   client_ctx(p.ca_pem), "alpha.test", compression=None)
    assert_client_got(got, None)
    _assert_rows(p, t, "https", False, "http")


def test_ws_plain_over_connect(tls_proxy, certs, ws_server):
    p = _proxy(tls_proxy, certs)
    t = token()
    port = ws_server.port
    got = converse(f"ws://alpha.test:{port}/echo?t={t}",
                   connect_tunnel(p.port, "alpha.test", port))
    assert_client_got(got, "deflate")
    _assert_rows(p, t, "http", True, "http")


def test_wss_over_socks5(tls_proxy, certs, wss_server):
    p = _proxy(tls_proxy, certs)
    t = token()
    port = wss_server.port
    got = converse(f"wss://alpha.test:{port}/echo?t={t}",
                   socks_socket(p.socks_port, "alpha.test", port),
                   client_ctx(p.ca_pem), "alpha.test")
    assert_client_got(got, "deflate")
    _assert_rows(p, t, "https", True, "socks5")


def test_ws_plain_over_socks5_without_compression(tls_proxy, certs,
                                                  ws_server):
    p = _proxy(tls_proxy, certs)
    t = token()
    port = ws_server.port
    got = converse(f"ws://alpha.test:{port}/echo?t={t}",
                   socks_socket(p.socks_port, "alpha.test", port),
                   compression=None)
    assert_client_got(got, None)
    _assert_rows(p, t, "http", False, "socks5")
