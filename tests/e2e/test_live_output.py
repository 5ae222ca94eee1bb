"""`peephole run`'s live output: a line per exchange carrying the request
row id (the one `peephole show` takes), the local time with ms, client,
method, URL, status, size and duration; a line per stream relayed
unread; CONNECT lines only with --verbose; --format json."""
import json
import re
import subprocess
from datetime import datetime

from conftest import CURL, RawConn, run_cli, token

# "#42 06:03:41.123 127.0.0.1 GET http://... 200 1234 3.2ms"
EXCHANGE = re.compile(r"^#(\d+) (\d\d:\d\d:\d\d\.\d{3}) (\S+) (\S+) (\S+) "
                      r"(\d+) (\d+) (\d+\.\d)ms( error=.*)?$")
# "c7 06:03:41.500 127.0.0.1 stream tls a.test:443 up=1 down=2 3.0ms
#  passthrough: rule a.test"
STREAM = re.compile(r"^c(\d+) (\d\d:\d\d:\d\d\.\d{3}) (\S+) stream (\S+) "
                    r"(\S+) up=(\d+) down=(\d+) (\d+\.\d)ms "
                    r"passthrough: (.*)$")


def _lines(p, pat):
    return [m for m in (pat.match(ln) for ln in p.stdout().splitlines())
            if m]


def _ssh_stream(p, port):
    """CONNECT to port, then bytes that are not TLS (an SSH banner): the
    proxy relays them unread. Returns once the tunnel is closed."""
    rc = RawConn(p.port)
    rc.send(f"CONNECT alpha.test:{port} HTTP/1.1\r\n"
            f"Host: alpha.test:{port}\r\n\r\n".encode())
    assert rc.read_head().status == 200
    rc.send(b"SSH-2.0-peephole-test\r\n\r\n")
    try:
        rc.sock.settimeout(5)
        rc.read_to_eof()
    except (OSError, EOFError):
        pass
    rc.sock.close()


def test_exchange_line_has_the_row_id_and_time(start_proxy, nginx):
    p = start_proxy(quiet=False)
    t = token()
    assert p.curl(nginx.url("alpha.test", f"/small?t={t}")).code == 200
    assert p.curl(nginx.url("beta.test", f"/missing?t={t}")).code == 404
    assert p.stop() == 0
    ms = [m for m in _lines(p, EXCHANGE) if t in m.group(5)]
    assert len(ms) == 2, p.stdout()
    rows = p.dbh().requests_with(t)
    assert len(rows) == 2
    for m, row in zip(ms, rows):
        assert int(m.group(1)) == row["id"]
        assert m.group(3) == "127.0.0.1"
        assert m.group(4) == "GET"
        assert m.group(6) == str(row["status"])
        assert int(m.group(7)) == (row["resp_body_size"] or 0)
        datetime.strptime(m.group(2), "%H:%M:%S.%f")
    assert ms[0].group(5) == nginx.url("alpha.test", f"/small?t={t}")
    cp = run_cli("show", ms[0].group(1), "--db", p.db)
    assert cp.returncode == 0, cp.stderr
    assert "/small" in cp.stdout


def _curl_https(p, url):
    return subprocess.run([CURL, "-sS", "--max-time", "10", "-x", p.url,
                           "--noproxy", "", "-k", "-o", "/dev/null", url],
                          stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=20, env=p.env)


def test_passthrough_stream_line_and_no_connect_line(start_proxy, nginx):
    """A CONNECT passed through by rule: no CONNECT line by default, a
    stream line with protocol, target, bytes and the reason at close. The
    origin is plain nginx, so the handshake fails: the stream is still
    relayed and shown."""
    p = start_proxy(conf_extra={"passthrough": "alpha.test"}, quiet=False)
    _curl_https(p, f"https://alpha.test:{nginx.port}/small")
    _ssh_stream(p, nginx.port)
    assert p.stop() == 0
    out = p.stdout()
    assert " CONNECT " not in out, out
    streams = _lines(p, STREAM)
    tls = [m for m in streams if m.group(4) == "tls"]
    assert len(tls) == 1, out
    m = tls[0]
    assert m.group(5) == f"alpha.test:{nginx.port}"
    assert int(m.group(6)) > 0 and int(m.group(7)) > 0
    assert m.group(9) == "rule alpha.test"
    datetime.strptime(m.group(2), "%H:%M:%S.%f")
    conns = p.dbh().connections("id = ?", (int(m.group(1)),))
    assert len(conns) == 1 and conns[0]["protocol"] == "tls"
    assert conns[0]["bytes_from_client"] == int(m.group(6))
    ssh = [m for m in streams if m.group(4) == "ssh"]
    assert len(ssh) == 1, out
    assert ssh[0].group(9) == "not TLS (ssh)"


def test_verbose_shows_connect(start_proxy, nginx):
    p = start_proxy(conf_extra={"passthrough": "alpha.test",
                                "verbose": "yes"}, quiet=False)
    _curl_https(p, f"https://alpha.test:{nginx.port}/small")
    assert p.stop() == 0
    cs = [m for m in _lines(p, EXCHANGE) if m.group(4) == "CONNECT"]
    assert len(cs) == 1, p.stdout()
    assert cs[0].group(5) == f"alpha.test:{nginx.port}"
    rows = p.dbh().requests("id = ?", (int(cs[0].group(1)),))
    assert rows and rows[0]["method"] == "CONNECT"


def test_json_lines(start_proxy, nginx):
    p = start_proxy(conf_extra={"passthrough": "alpha.test",
                                "format": "json"}, quiet=False)
    t = token()
    assert p.curl(nginx.url("beta.test", f"/small?t={t}")).code == 200
    _curl_https(p, f"https://alpha.test:{nginx.port}/small")
    assert p.stop() == 0
    objs = [json.loads(ln) for ln in p.stdout().splitlines()
            if ln.startswith("{")]
    ex = [o for o in objs if o["kind"] == "exchange"]
    assert len(ex) == 1, p.stdout()  # no CONNECT without verbose
    e = ex[0]
    for k in ("id", "time", "client", "method", "url", "status", "size",
              "duration_ms"):
        assert k in e, e
    row = p.dbh().requests_with(t)[0]
    assert e["id"] == row["id"] and e["status"] == 200
    assert e["url"] == nginx.url("beta.test", f"/small?t={t}")
    assert e["size"] == row["resp_body_size"]
    datetime.fromisoformat(e["time"])
    st = [o for o in objs if o["kind"] == "stream"]
    assert len(st) == 1, p.stdout()
    s = st[0]
    for k in ("id", "time", "client", "protocol", "target", "bytes_up",
              "bytes_down", "duration_ms", "reason"):
        assert k in s, s
    assert s["protocol"] == "tls" and s["reason"] == "rule alpha.test"
    assert s["target"] == f"alpha.test:{nginx.port}"
    datetime.fromisoformat(s["time"])


def test_long_url_keeps_the_line_bounded(start_proxy, nginx):
    p = start_proxy(quiet=False)
    t = token()
    long_q = "x" * 3000
    p.curl(nginx.url("alpha.test", f"/small?t={t}&q={long_q}"))
    assert p.stop() == 0
    lines = [ln for ln in p.stdout().splitlines() if t in ln]
    assert len(lines) == 1, p.stdout()
    assert len(lines[0]) < 1024
    assert "..." in lines[0]


def test_bad_format_is_refused():
    cp = run_cli("run", "--format", "yaml", "--db", "/nonexistent/x.db")
    assert cp.returncode != 0
    assert "text or json" in cp.stderr

