"""`peephole run`'s live output for a SOCKS5 raw stream: one line when it
closes, with protocol, target as asked, bytes each way and why it was
relayed unread (text and --format json)."""
import json
import os
import re

from .conftest import echo_handler, socks_open

STREAM = re.compile(r"^c(\d+) \d\d:\d\d:\d\d\.\d{3} 127\.0\.0\.1 stream "
                    r"(\S+) (\S+) up=(\d+) down=(\d+) \d+\.\dms "
                    r"passthrough: (.*)$")


def _echo_once(p, port):
    c = socks_open(p.socks_port, "alpha.test", port)
    try:
        payload = b"\x00\x01raw " + os.urandom(500)
        c.send(payload)
        assert c.recv_exact(len(payload)) == payload
        c.shutdown_wr()
        assert c.closed_by_peer(5)
    finally:
        c.close()


def test_socks_raw_stream_line(stream_proxy, tcp_server):
    srv = tcp_server(echo_handler)
    p = stream_proxy(quiet=False)
    _echo_once(p, srv.port)
    assert p.stop() == 0
    ms = [m for m in map(STREAM.match, p.stdout().splitlines()) if m]
    assert len(ms) == 1, p.stdout()
    m = ms[0]
    r = p.conn_to(srv.port)
    assert int(m.group(1)) == r["id"]
    assert m.group(2) == "other"
    assert m.group(3) == f"alpha.test:{srv.port}"
    assert int(m.group(4)) == r["bytes_from_client"]
    assert int(m.group(5)) == r["bytes_from_server"]
    assert m.group(6) == r["decision_reason"]


def test_socks_raw_stream_json(stream_proxy, tcp_server):
    srv = tcp_server(echo_handler)
    p = stream_proxy(quiet=False, args=("--format", "json"))
    _echo_once(p, srv.port)
    assert p.stop() == 0
    objs = [json.loads(ln) for ln in p.stdout().splitlines()]
    st = [o for o in objs if o["kind"] == "stream"]
    assert len(st) == 1, p.stdout()
    r = p.conn_to(srv.port)
    assert st[0]["id"] == r["id"]
    assert st[0]["target"] == f"alpha.test:{srv.port}"
    assert st[0]["bytes_up"] == r["bytes_from_client"]
    assert st[0]["bytes_down"] == r["bytes_from_server"]
    assert st[0]["reason"] == r["decision_reason"]
