"""
The flow store: what one exchange writes, bodies by hash with the capture
limit, connection accounting, DNS facts, record-flows off, and a clean
flush on SIGTERM under load.
"""
import os
import signal
import subprocess
import threading
import time

from conftest import CURL, CURL_W, RawConn, sha256, token


def test_request_row_fields(proxy, nginx):
    t = token()
    host = f"alpha.test:{nginx.port}"
    head = (f"GET http://{host}/img.jpg?t={t}&a=b HTTP/1.1\r\nHost: {host}\r\n"
            "X-Test: one\r\nUser-Agent: e2e\r\n\r\n").encode()
    w0 = time.time()
    with RawConn(proxy.port) as c:
        c.send(head)
        r = c.read_response()
    w1 = time.time()
    assert r.status == 200 and r.body == nginx.files["img.jpg"]
    assert proxy.stop() == 0
    db = proxy.dbh()
    rows = db.requests_with(t)
    assert len(rows) == 1
    row = rows[0]
    img = nginx.files["img.jpg"]
    expect = {
        "method": "GET", "scheme": "http", "host": "alpha.test",
        "port": nginx.port, "path": "/img.jpg", "query": f"t={t}&a=b",
        "req_version": "1.1", "resp_version": "1.1", "status": 200,
        "content_type": "image/jpeg", "resp_body_size": len(img),
        "resp_body_sha": sha256(img), "resp_body_truncated": 0,
        "req_body_truncated": 0, "seq": 1, "client_ip": "127.0.0.1",
        "server_ip": "127.0.0.1", "server_port": nginx.port,
    }
    assert {k: row[k] for k in expect} == expect
    assert row["req_body_size"] in (0, None)
    assert not row["error"]
    assert "x-test: one" in row["req_headers"].lower()
    assert "content-type: image/jpeg" in row["resp_headers"].lower()
    assert 0 < row["req_header_bytes"] <= len(head)
    assert 0 < row["resp_header_bytes"] < 4096
    # times: µs since the epoch; durations in µs
    assert w0 * 1e6 - 2e6 <= row["t_start_us"] <= w1 * 1e6 + 2e6
    assert 0 < row["total_us"] <= (w1 - w0) * 1e6 + 1e6
    assert 0 <= row["ttfb_us"] <= row["total_us"]
    b = db.body(row["resp_body_sha"])
    assert b is not None and bytes(b["data"]) == img and b["size"] == len(img)
    conns = db.connections("id = ?", (row["conn_id"],))
    assert len(conns) == 1


def test_request_body_stored(proxy, origin):
    t = token()
    blob = os.urandom(12345)
    f = proxy.dir / "b.bin"
    f.write_bytes(blob)
    r = proxy.curl(origin.url("beta.test", f"/sha?t={t}"),
                   "--data-binary", f"@{f}")
    assert r.code == 200
    assert proxy.stop() == 0
    db = proxy.dbh()
    row = db.requests_with(t)[0]
    assert row["method"] == "POST"
    assert row["req_body_size"] == len(blob)
    assert row["req_body_sha"] == sha256(blob)
    assert row["req_body_truncated"] == 0
    assert bytes(db.body(sha256(blob))["data"]) == blob


def test_body_capture_limit_and_dedup(start_proxy, nginx):
    p = start_proxy({"body-capture-limit": "1M"})
    t = token()
    med = nginx.files["medium.bin"]
    img = nginx.files["img.jpg"]
    r = p.curl(nginx.url("alpha.test", f"/medium.bin?t={t}"))
    assert r.code == 200 and r.body == med  # the client gets it all
    for i in range(2):
        r = p.curl(nginx.url("beta.test", f"/img.jpg?t={t}&i={i}"))
        assert r.code == 200 and r.body == img
    assert p.stop() == 0
    db = p.dbh()
    rows = db.requests_with(t)
    assert len(rows) == 3
    big = rows[0]
    assert big["resp_body_size"] == len(med)
    assert big["resp_body_truncated"] == 1
    b = db.body(big["resp_body_sha"])
    assert b is not None
    assert bytes(b["data"]) == med[:1 << 20]
    # same body twice: one stored copy, both rows point at it
    assert rows[1]["resp_body_sha"] == rows[2]["resp_body_sha"] == sha256(img)
    assert rows[1]["resp_body_truncated"] == 0
    assert len(db.bodies()) == 2


def test_connection_row_accounting(proxy, nginx):
    t = token()
    host = f"alpha.test:{nginx.port}"
    with RawConn(proxy.port) as c:
        c.send(f"GET http://{host}/small?t={t} HTTP/1.1\r\n"
               f"Host: {host}\r\n\r\n".encode())
        r1 = c.read_response()
        c.send(f"GET http://{host}/p2.txt?t={t} HTTP/1.1\r\n"
               f"Host: {host}\r\n\r\n".encode())
        r2 = c.read_response()
        assert (r1.status, r2.status) == (200, 200)
        sent, received = c.sent, c.received
    time.sleep(0.2)
    assert proxy.stop() == 0
    db = proxy.dbh()
    rows = db.requests_with(t)
    conns = db.connections()
    assert len(conns) == 1
    k = conns[0]
    assert k["id"] == rows[0]["conn_id"] == rows[1]["conn_id"]
    assert k["client_ip"] == "127.0.0.1"
    assert k["target_host"] == "alpha.test"
    assert k["target_port"] == nginx.port
    assert k["nrequests"] == 2
    assert k["bytes_from_client"] == sent
    assert k["bytes_to_client"] == received
    bodies = len(nginx.files["small"]) + len(nginx.files["p2.txt"])
    assert k["bytes_from_server"] >= bodies
    assert k["bytes_to_server"] > 0
    assert k["close_reason"]
    assert not k["error"]
    assert k["t_accept_us"] <= k["t_first_byte_us"] <= k["t_close_us"]


def test_domain_ips_from_hosts_file(proxy, nginx):
    t = token()
    assert proxy.curl(nginx.url("beta.test", f"/small?t={t}")).code == 200
    assert proxy.stop() == 0
    ips = proxy.dbh().domain_ips("domain = ?", ("beta.test",))
    assert ips
    assert {d["ip"] for d in ips} == {"127.0.0.1"}
    assert all(d["source"] for d in ips)


def test_rows_visible_while_running(proxy, nginx):
    """WAL: a reader sees the exchange without stopping the proxy."""
    t = token()
    assert proxy.curl(nginx.url("alpha.test", f"/small?t={t}")).code == 200
    rows = proxy.dbh().wait_requests(lambda r: t in (r["query"] or ""),
                                     timeout=5)
    assert len(rows) == 1 and rows[0]["status"] == 200


def test_record_flows_no(start_proxy, nginx):
    p = start_proxy({"record-flows": "no"})
    t = token()
    r = p.curl(nginx.url("alpha.test", f"/small?t={t}"))
    assert (r.code, r.body) == (200, nginx.files["small"])
    assert nginx.wait_entries(t)
    assert p.stop() == 0
    if p.db.exists():
        db = p.dbh()
        assert db.requests() == []
        assert db.connections() == []
        assert db.bodies() == []


def test_sigterm_mid_load_flushes_everything(start_proxy, nginx, origin):
    """Concurrent curl loops, SIGTERM mid-load: exit 0, every exchange a
    client saw complete has its row, and exchanges in flight at the signal
    (slow origin) are finished rather than cut."""
    p = start_proxy({"shutdown-grace": "5s"})
    t = token()
    results = []  # (id, http_code, exitcode, size)
    slow = []  # (t_begin, t_end, http_code, exitcode, id)
    lock = threading.Lock()
    term_sent = threading.Event()
    deadline = time.monotonic() + 6
    base = [CURL, "-sS", "--max-time", "10", "-x", p.url, "--noproxy", "",
            "-w", CURL_W]

    def fast_loop(k):
        for i in range(100000):
            if time.monotonic() > deadline:
                return
            ids = [f"{t}-{k}-{i}-{j}" for j in range(3)]
            argv = list(base)
            for x in ids:
                argv += ["-o", "/dev/null",
                         nginx.url("alpha.test", f"/small?id={x}")]
            cp = subprocess.run(argv, capture_output=True, timeout=30,
                                env=p.env)
            with lock:
                for x, ln in zip(ids, cp.stdout.decode().split("\n")):
                    f = ln.split()
                    if len(f) >= 3:
                        results.append((x, int(f[0]), int(f[1]), int(f[2])))
            if term_sent.is_set() and p.proc.poll() is not None:
                return

    def slow_loop(k):
        for i in range(100000):
            if time.monotonic() > deadline:
                return
            x = f"{t}-s{k}-{i}"
            t0 = time.monotonic()
            cp = subprocess.run(
                base + ["-o", "/dev/null",
                        origin.url("beta.test", f"/slow?ms=400&id={x}")],
                capture_output=True, timeout=30, env=p.env)
            f = cp.stdout.decode().split()
            with lock:
                slow.append((t0, time.monotonic(), int(f[0]), int(f[1]), x))
            if term_sent.is_set() and p.proc.poll() is not None:
                return

    ths = [threading.Thread(target=fast_loop, args=(k,)) for k in range(4)]
    ths += [threading.Thread(target=slow_loop, args=(k,)) for k in range(2)]
    for th in ths:
        th.start()
    time.sleep(1.5)
    term_sent.set()
    t_term = time.monotonic()
    rc = p.stop(signal.SIGTERM, timeout=20)  # one SIGTERM, then wait
    took = time.monotonic() - t_term
    for th in ths:
        th.join(timeout=40)
    assert rc == 0, p.stderr()[-3000:]
    assert took < 8, took  # within shutdown-grace, plus flushing
    ok = [x for x, code, ec, size in results
          if code == 200 and ec == 0 and size == 100]
    assert len(ok) >= 20, results[:10]  # the load was real
    in_flight = [s for s in slow if s[0] < t_term - 0.1 and s[1] > t_term]
    assert in_flight, "no slow exchange straddled the signal"
    assert [s[2:4] for s in in_flight] == [(200, 0)] * len(in_flight), \
        in_flight
    ok += [s[4] for s in slow if s[2:4] == (200, 0)]
    stored = {r["query"]: r for r in p.dbh().requests()}
    missing = [x for x in ok if f"id={x}" not in stored
               and f"ms=400&id={x}" not in stored]
    assert not missing, f"{len(missing)} of {len(ok)} completed requests " \
        f"have no row, e.g. {missing[:5]}"
    assert all(r["status"] == 200 for q, r in stored.items()
               if any(x in q for x in ok[:50]))
