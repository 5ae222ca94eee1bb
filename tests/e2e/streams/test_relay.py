"""
Streams peephole relays without reading them: what the connection row says
about timing, bytes, reads, who closed, TCP_INFO and the event series; the
sniff labels (h2, ssh, other) and server-speaks-first streams.
"""
import socket
import threading
import time

import pytest

from conftest import RawConn

from .conftest import echo_handler, socks_open

TIME_COLS = ("t_accept_us", "t_upstream_connected_us", "t_first_up_us",
             "t_last_up_us", "t_first_down_us", "t_last_down_us",
             "t_close_us")
TCP_FIELDS = ("rtt_us", "rttvar_us", "retransmits", "total_retrans", "lost",
              "reordering", "snd_cwnd", "pmtu")


def ping_pong(c, msgs, gap=0.05):
    """Send each message, wait for its echo, pause gap."""
    for m in msgs:
        c.send(m)
        assert c.recv_exact(len(m)) == m
        time.sleep(gap)


def assert_timing(r):
    t = {k: r[k] for k in TIME_COLS}
    assert all(v is not None and v > 0 for v in t.values()), t
    assert t["t_accept_us"] <= t["t_upstream_connected_us"] <= \
        t["t_first_up_us"] <= t["t_last_up_us"] <= t["t_close_us"], t
    assert t["t_upstream_connected_us"] <= t["t_first_down_us"] <= \
        t["t_last_down_us"] <= t["t_close_us"], t


def assert_counts(r, client, origin):
    assert r["bytes_from_client"] == len(client.sent), r
    assert r["bytes_to_client"] == len(client.got), r
    assert r["bytes_to_server"] == len(origin.got), r
    assert r["bytes_from_server"] == len(origin.sent), r


def test_stream_row_client_fin(stream_proxy, tcp_server):
    srv = tcp_server(echo_handler)
    p = stream_proxy()
    msgs = [b"\x00first message", b"\x00second, longer message " * 3,
            b"\x00third"]
    c = socks_open(p.socks_port, "127.0.0.1", srv.port)
    t0 = time.monotonic()
    ping_pong(c, msgs, gap=0.06)
    c.shutdown_wr()  # the client ends it; the echo origin follows
    assert c.closed_by_peer(5)
    c.close()
    elapsed = time.monotonic() - t0
    assert srv.wait_done(1)
    p.stop()
    r = p.conn_to(srv.port)
    assert (r["listener"], r["protocol"], r["decision"]) == \
        ("socks5", "other", "passthrough"), r
    assert r["decision_reason"], r
    assert_timing(r)
    assert r["t_first_up_us"] <= r["t_first_down_us"], r
    # three exchanges 60 ms apart: the first and last byte up show it
    span = r["t_last_up_us"] - r["t_first_up_us"]
    assert 100_000 <= span <= elapsed * 1e6, r
    assert r["t_close_us"] - r["t_accept_us"] <= elapsed * 1e6 + 2e6
    assert_counts(r, c, srv.peers[0])
    assert r["bytes_to_server"] == sum(map(len, msgs))
    # each message waited for its echo: one read each way per message
    assert (r["reads_up"], r["reads_down"]) == (3, 3), r
    assert r["closed_by"] == "client-fin", r
    for side in ("client", "server"):
        for f in TCP_FIELDS:
            assert r[f"tcp_{side}_{f}"] is not None, (side, f, r)
        assert r[f"tcp_{side}_rtt_us"] > 0, r
        assert r[f"tcp_{side}_snd_cwnd"] > 0, r
    # the event series: one per read, in order, inside the row's times
    ev = p.events(r["id"])
    assert r["events"] == len(ev) == 6 and r["events_capped"] == 0, (r, ev)
    assert [e["dir"] for e in ev] == [0, 1, 0, 1, 0, 1]
    assert [e["bytes"] for e in ev] == [len(m) for m in msgs
                                        for _ in (0, 1)]
    assert all(not e["mmtls_type"] for e in ev), ev
    ts = [e["t_us"] for e in ev]
    assert ts == sorted(ts)
    assert r["t_accept_us"] <= ts[0] and ts[-1] <= r["t_close_us"]
    # the same reads as the first / last byte times (clock read apart)
    for i, col in ((0, "t_first_up_us"), (-2, "t_last_up_us"),
                   (1, "t_first_down_us"), (-1, "t_last_down_us")):
        assert abs(ts[i] - r[col]) < 1000, (col, r[col], ev)


def test_stream_row_server_fin(stream_proxy, tcp_server):
    def handler(o):
        o.recv_exact(10)
        o.send(b"\x00bye from the origin\n" * 50)
        o.shutdown_wr()
        o.closed_by_peer(5)

    srv = tcp_server(handler)
    p = stream_proxy()
    c = socks_open(p.socks_port, "127.0.0.1", srv.port)
    c.send(b"\x00" * 10)
    c.recv_to_eof()
    time.sleep(0.1)
    c.close()
    assert srv.wait_done(1)
    p.stop()
    r = p.conn_to(srv.port)
    assert r["closed_by"] == "server-fin", r
    assert_timing(r)
    assert_counts(r, c, srv.peers[0])
    assert r["bytes_from_server"] == 21 * 50


@pytest.mark.parametrize("who", ["client", "server"])
def test_stream_row_reset(stream_proxy, tcp_server, who):
    def handler(o):
        o.recv_exact(5)
        o.send(b"\x00pong")
        if who == "server":
            time.sleep(0.1)
            o.reset()
        else:
            o.closed_by_peer(5)

    srv = tcp_server(handler)
    p = stream_proxy()
    c = socks_open(p.socks_port, "127.0.0.1", srv.port)
    c.send(b"\x00ping")
    assert c.recv_exact(5) == b"\x00pong"
    if who == "client":
        time.sleep(0.1)
        c.reset()
    else:
        assert c.closed_by_peer(5)
        c.close()
    assert srv.wait_done(1)
    p.stop()
    r = p.conn_to(srv.port)
    assert r["closed_by"] == f"{who}-rst", r
    assert r["bytes_to_server"] == 5 and r["bytes_from_server"] == 5, r


def test_stream_idle_timeout(stream_proxy, tcp_server):
    srv = tcp_server(echo_handler)
    p = stream_proxy({"idle-timeout": "500ms"})
    c = socks_open(p.socks_port, "127.0.0.1", srv.port)
    ping_pong(c, [b"\x00quiet after this"])
    t0 = time.monotonic()
    assert c.closed_by_peer(5)  # neither side says anything: proxy ends it
    waited = time.monotonic() - t0
    c.close()
    assert 0.3 <= waited <= 4, waited
    assert srv.wait_done(1)
    p.stop()
    r = p.conn_to(srv.port)
    assert r["closed_by"] == "idle-timeout", r


def test_stream_events_capped(stream_proxy, tcp_server):
    srv = tcp_server(echo_handler)
    p = stream_proxy({"stream-events-max": "5"})
    msgs = [b"\x00msg %02d " % i + b"x" * i for i in range(20)]
    c = socks_open(p.socks_port, "127.0.0.1", srv.port)
    ping_pong(c, msgs, gap=0.005)
    c.shutdown_wr()
    assert c.closed_by_peer(5)
    c.close()
    assert srv.wait_done(1)
    p.stop()
    r = p.conn_to(srv.port)
    ev = p.events(r["id"])
    assert (r["events"], r["events_capped"], len(ev)) == (5, 1, 5), r
    # capping the series caps nothing else
    assert r["bytes_to_server"] == sum(map(len, msgs)), r
    assert r["bytes_from_server"] == sum(map(len, msgs)), r
    assert (r["reads_up"], r["reads_down"]) == (20, 20), r
    assert r["t_last_up_us"] > ev[-1]["t_us"], (r, ev)


def test_events_uncapped_at_exact_max(stream_proxy, tcp_server):
    """Exactly stream-events-max events is not capped."""
    srv = tcp_server(echo_handler)
    p = stream_proxy({"stream-events-max": "4"})
    c = socks_open(p.socks_port, "127.0.0.1", srv.port)
    ping_pong(c, [b"\x00a", b"\x00b"])
    c.shutdown_wr()
    assert c.closed_by_peer(5)
    c.close()
    assert srv.wait_done(1)
    p.stop()
    r = p.conn_to(srv.port)
    assert (r["events"], r["events_capped"]) == (4, 0), r


def test_connect_tunnel_stream_row(stream_proxy, tcp_server):
    """The same record for a stream through the HTTP listener's CONNECT."""
    srv = tcp_server(echo_handler)
    p = stream_proxy()
    rc = RawConn(p.port)
    rc.send(f"CONNECT 127.0.0.1:{srv.port} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{srv.port}\r\n\r\n".encode())
    assert rc.read_head().status == 200
    rc.send(b"\x00raw bytes in a tunnel")
    assert rc.read_exact(22) == b"\x00raw bytes in a tunnel"
    rc.sock.shutdown(socket.SHUT_WR)
    assert rc.closed_by_peer(5)
    rc.close()
    assert srv.wait_done(1)
    p.stop()
    r = p.conn_to(srv.port)
    assert (r["listener"], r["listener_target"], r["protocol"],
            r["decision"], r["closed_by"]) == \
        ("http", f"127.0.0.1:{srv.port}", "other", "passthrough",
         "client-fin"), r
    assert (r["bytes_to_server"], r["bytes_from_server"]) == (22, 22), r
    assert_timing(r)




def test_ssh_banner_relayed(stream_proxy, tcp_server):
    client_banner = b"SSH-2.0-OpenSSH_9.6p1 Debian-3\r\n"
    server_banner = b"SSH-2.0-OpenSSH_9.2p1 origin\r\n"
    kex = bytes(range(256)) * 4

    def handler(o):
        o.send(server_banner)
        assert o.recv_exact(len(client_banner)) == client_banner
        o.send(kex)
        o.closed_by_peer(5)

    srv = tcp_server(handler)
    p = stream_proxy()
    c = socks_open(p.socks_port, "127.0.0.1", srv.port)
    c.send(client_banner)  # sent at once: the client speaks first here
    assert c.recv_exact(len(server_banner) + len(kex)) == server_banner + kex
    c.shutdown_wr()
    assert c.closed_by_peer(5)
    c.close()
    assert srv.wait_done(1) and srv.errors == []
    p.stop()
    r = p.conn_to(srv.port)
    assert (r["protocol"], r["decision"]) == ("ssh", "passthrough"), r
    assert_counts(r, c, srv.peers[0])


BANNER = b"220 smtp.test ESMTP ready\r\n"


def banner_handler(o):
    o.send(BANNER)
    line = o.recv_until(b"\r\n")
    o.send(b"250 got " + line)
    o.closed_by_peer(5)


@pytest.mark.parametrize("sniff_ms", [None, 1000])
def test_server_speaks_first(stream_proxy, tcp_server, sniff_ms):
    """The client waits for the banner: after sniff-timeout (300 ms by
    default) the proxy connects and relays."""
    srv = tcp_server(banner_handler)
    p = stream_proxy({"sniff-timeout": f"{sniff_ms}ms"} if sniff_ms else {})
    wait = (sniff_ms or 300) / 1000
    c = socks_open(p.socks_port, "127.0.0.1", srv.port)
    t0 = time.monotonic()
    assert c.recv_until(b"\r\n") == BANNER
    took = time.monotonic() - t0
    assert wait * 0.8 <= took <= wait + 3, took
    c.send(b"EHLO me\r\n")
    assert c.recv_until(b"\r\n") == b"250 got EHLO me\r\n"
    c.shutdown_wr()
    assert c.closed_by_peer(5)
    c.close()
    assert srv.wait_done(1) and srv.errors == []
    p.stop()
    r = p.conn_to(srv.port)
    assert (r["protocol"], r["decision"]) == ("other", "passthrough"), r
    assert "sniff-timeout" in r["decision_reason"], r
    assert r["t_upstream_connected_us"] - r["t_accept_us"] >= \
        wait * 0.8 * 1e6, r
    assert r["t_first_down_us"] < r["t_first_up_us"], r
    assert_timing(r)
    assert_counts(r, c, srv.peers[0])
    assert r["closed_by"] == "client-fin", r


def test_partial_first_bytes_then_silence(stream_proxy, tcp_server):
    """Four bytes that could still become anything, then nothing: relayed
    after the sniff timeout, bytes intact."""
    srv = tcp_server(echo_handler)
    p = stream_proxy()
    c = socks_open(p.socks_port, "127.0.0.1", srv.port)
    c.send(b"SSH")
    assert c.recv_exact(3) == b"SSH"
    c.send(b"-not really\r\n")
    assert c.recv_exact(13) == b"-not really\r\n"
    c.shutdown_wr()
    assert c.closed_by_peer(5)
    c.close()
    assert srv.wait_done(1)
    p.stop()
    r = p.conn_to(srv.port)
    assert r["decision"] == "passthrough", r
    assert r["bytes_to_server"] == 16 and r["bytes_from_server"] == 16, r


def test_many_streams_concurrently(stream_proxy, tcp_server):
    """Twenty streams at once, each with its own row and exact counts."""
    srv = tcp_server(echo_handler)
    p = stream_proxy()
    errs, peers = [], []

    def one(i):
        try:
            c = socks_open(p.socks_port, "127.0.0.1", srv.port)
            port = c.sock.getsockname()[1]
            ping_pong(c, [b"\x00%d " % i + b"z" * (100 * i)] * 3, gap=0.01)
            c.shutdown_wr()
            assert c.closed_by_peer(5)
            c.close()
            peers.append((port, c))
        except Exception as e:  # noqa: BLE001
            errs.append(repr(e))

    ts = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert errs == []
    assert srv.wait_done(20)
    p.stop()
    rs = p.conns("target_port = ?", (srv.port,))
    assert len(rs) == 20
    by_port = {r["client_port"]: r for r in rs}
    for port, c in peers:
        r = by_port[port]
        assert (r["bytes_from_client"], r["bytes_to_client"]) == \
            (len(c.sent), len(c.got)), r
        assert r["closed_by"] == "client-fin", r
        assert r["events"] == 6, r
