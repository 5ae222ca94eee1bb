"""
The read side of schema v10 (HTTP/2 streams, WebSocket messages) on a file
the proxy created, with the rows an HTTP/2 / WebSocket capture leaves
written straight into it: show (text and JSON), requests, export har and
curl, the ~websocket / ~h2 / ~b filters, and prune. The engine's own tests
drive real h2 and WebSocket clients; these need only the rows.
"""
import base64
import json
import sqlite3

import pytest

from conftest import run_cli

CRLF = "\r\n"
T0 = 1700000000000000


@pytest.fixture
def v10_db(proxy):
    """A v10 file: request 1 an h2 exchange (stream 3, HTTP/1.1 to the
    origin, trailers, reset by the client), 2 a WebSocket with four
    messages, 3 a plain HTTP/1.1 one."""
    assert proxy.stop() == 0
    db = sqlite3.connect(proxy.db)
    assert db.execute("PRAGMA user_version").fetchone()[0] >= 10
    db.execute("INSERT INTO connections (id, listener, client_ip, protocol,"
               " alpn, alpn_client, alpn_server, decision) VALUES (9000,"
               " 'http', '127.0.0.1', 'tls', 'h2,http/1.1', 'h2',"
               " 'http/1.1', 'intercept')")
    req = ("INSERT INTO requests (conn_id, seq, t_start_us, scheme, method,"
           " host, port, path, req_version, resp_version, status,"
           " req_headers, resp_headers, stream_id, up_version, req_trailers,"
           " resp_trailers, stream_end, total_us)"
           " VALUES (9000, ?, ?, 'https', 'GET', 'h2.test', 443, ?, ?, ?,"
           " ?, ?, ?, ?, ?, ?, ?, ?, 1000)")
    h2_req = CRLF.join([":method: GET", ":scheme: https",
                        ":authority: h2.test", ":path: /x",
                        "accept: */*", ""])
    db.execute(req, (1, T0, "/x", "2", "2", 200, h2_req,
                     ":status: 200" + CRLF + "server: t" + CRLF, 3, "1.1",
                     None, "grpc-status: 0" + CRLF, "rst-client CANCEL"))
    db.execute(req, (2, T0 + 10**6, "/ws", "1.1", "1.1", 101,
                     "Host: h2.test" + CRLF + "Upgrade: websocket" + CRLF,
                     "Upgrade: websocket" + CRLF + "Connection: Upgrade"
                     + CRLF, None, None, None, None, None))
    db.execute(req, (3, T0 + 2 * 10**6, "/plain", "1.1", "1.1", 200,
                     "Host: h2.test" + CRLF, "", None, None, None, None,
                     None))
    ws = [(0, 10000, 0, 1, b'{"op":"subscribe"}', None, None, None),
          (1, 20500, 1, 2, b"\x00\x01pong", None, None, None),
          (2, 30000, 1, 1, "h\u00e9llo".encode(), None, None, None),
          (3, 40000, 0, 8, b"\x03\xe8bye", 1000, "bye", "connection closed")]
    for idx, dt, d, op, payload, code, reason, err in ws:
        db.execute("INSERT INTO ws_messages (request_id, idx, t_us, dir,"
                   " opcode, size, wire_bytes, compressed, truncated,"
                   " payload, close_code, close_reason, error) VALUES"
                   " ((SELECT id FROM requests WHERE seq = 2), ?, ?, ?, ?,"
                   " ?, ?, 0, 0, ?, ?, ?, ?)",
                   (idx, T0 + 10**6 + dt, d, op, len(payload),
                    len(payload) + 6, payload, code, reason, err))
    db.commit()
    ids = [r[0] for r in db.execute("SELECT id FROM requests ORDER BY seq")]
    db.close()
    return {"db": proxy.db, "h2": ids[0], "ws": ids[1], "plain": ids[2]}


def test_show_h2_text(v10_db):
    cp = run_cli("show", v10_db["h2"], "--db", v10_db["db"])
    assert cp.returncode == 0, cp.stderr
    out = cp.stdout
    assert "stream     3" in out
    assert "HTTP/2 -> origin HTTP/1.1" in out
    assert "> GET /x HTTP/2" in out
    assert "> :authority: h2.test" in out
    assert "< :status: 200" in out
    assert "trailers:\n< grpc-status: 0" in out
    assert "stream ended: rst-client CANCEL" in out
    assert "alpn cli   h2" in out and "alpn up    http/1.1" in out


def test_show_ws_text_and_json(v10_db):
    cp = run_cli("show", v10_db["ws"], "--db", v10_db["db"])
    assert cp.returncode == 0, cp.stderr
    lines = cp.stdout.splitlines()
    rows = [l.split() for l in lines if l.startswith("  ") and
            l.split()[0] in "0123" and len(l.split()) > 3]
    assert [r[:4] for r in rows] == [["0", "10.0", "->", "text"],
                                     ["1", "20.5", "<-", "binary"],
                                     ["2", "30.0", "<-", "text"],
                                     ["3", "40.0", "->", "close"]]
    assert '"{\\"op\\":\\"subscribe\\"}"' in cp.stdout
    assert "00 01 70 6f 6e 67" in cp.stdout
    assert 'code 1000 "bye"' in cp.stdout
    assert "stopped reading frames: connection closed" in cp.stdout

    cp = run_cli("show", v10_db["ws"], "--json", "--db", v10_db["db"])
    assert cp.returncode == 0, cp.stderr
    o = json.loads(cp.stdout)
    assert o["stream_id"] is None and o["stream_end"] is None
    m = o["websocket_messages"]
    assert [x["dir"] for x in m] == ["send", "receive", "receive", "send"]
    assert m[0]["text"] == '{"op":"subscribe"}' and "base64" not in m[0]
    assert base64.b64decode(m[1]["base64"]) == b"\x00\x01pong"
    assert m[2]["text"] == "h\u00e9llo"
    assert m[3]["close_code"] == 1000 and m[3]["close_reason"] == "bye"
    assert m[3]["error"] == "connection closed"
    assert m[1]["t_us"] == T0 + 10**6 + 20500

    cp = run_cli("show", v10_db["h2"], "--json", "--db", v10_db["db"])
    o = json.loads(cp.stdout)
    assert o["stream_id"] == 3 and o["up_version"] == "1.1"
    assert o["resp_trailers"] == "grpc-status: 0\r\n"
    assert o["req_trailers"] is None
    assert o["stream_end"] == "rst-client CANCEL"
    assert o["websocket_messages"] == []
    assert o["req_headers"][0] == {"name": ":method", "value": "GET"}


def test_requests_filters(v10_db):
    def ids(expr):
        cp = run_cli("requests", "--json", "--filter", expr,
                     "--db", v10_db["db"])
        assert cp.returncode == 0, cp.stderr
        return [r["id"] for r in json.loads(cp.stdout)]
    assert ids("~websocket") == [v10_db["ws"]]
    assert ids("~ws") == [v10_db["ws"]]
    assert ids("~h2") == [v10_db["h2"]]
    assert ids("~b subscribe") == [v10_db["ws"]]
    assert ids("~bs pong") == [v10_db["ws"]]
    assert ids("~bq pong") == []
    assert ids("!~ws & !~http2") == [v10_db["plain"]]

    cp = run_cli("requests", "--json", "--db", v10_db["db"])
    rows = {r["id"]: r for r in json.loads(cp.stdout)}
    assert rows[v10_db["h2"]]["stream_id"] == 3
    assert rows[v10_db["h2"]]["version"] == "2"
    assert rows[v10_db["ws"]]["websocket_messages"] == 4
    cp = run_cli("requests", "--csv", "--db", v10_db["db"])
    assert "h2 stream 3, rst-client CANCEL" in cp.stdout
    assert "websocket, 4 messages" in cp.stdout


def test_export_har_and_curl(v10_db):
    cp = run_cli("export", "har", "-", "--db", v10_db["db"])
    assert cp.returncode == 0, cp.stderr
    by = {e["_id"]: e for e in json.loads(cp.stdout)["log"]["entries"]}
    h2 = by[v10_db["h2"]]
    assert h2["request"]["httpVersion"] == "HTTP/2"
    assert h2["response"]["httpVersion"] == "HTTP/2"
    assert [h["name"] for h in h2["request"]["headers"]][:4] == \
        [":method", ":scheme", ":authority", ":path"]
    assert "_webSocketMessages" not in h2
    ws = by[v10_db["ws"]]["_webSocketMessages"]
    assert [(m["type"], m["opcode"]) for m in ws] == \
        [("send", 1), ("receive", 2), ("receive", 1), ("send", 8)]
    assert ws[0]["data"] == '{"op":"subscribe"}'
    assert base64.b64decode(ws[1]["data"]) == b"\x00\x01pong"
    assert ws[1]["time"] == pytest.approx((T0 + 10**6 + 20500) / 1e6,
                                          abs=1e-5)

    cp = run_cli("export", "curl", v10_db["h2"], "--db", v10_db["db"])
    assert cp.returncode == 0, cp.stderr
    assert "https://h2.test/x" in cp.stdout
    assert ":authority" not in cp.stdout and ":method" not in cp.stdout
    assert "accept: */*" in cp.stdout


def test_prune_deletes_messages(v10_db):
    cp = run_cli("prune", "--filter", "~websocket", "--db", v10_db["db"])
    assert cp.returncode == 0, cp.stderr
    db = sqlite3.connect(v10_db["db"])
    assert db.execute("SELECT count(*) FROM ws_messages").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM requests").fetchone()[0] == 2
    db.close()
