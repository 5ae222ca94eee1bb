"""
The store under load: memory bounded in bytes with 1 MiB answers on 50
connections, and several processes (run, replay, a second run) writing one
database at once without losing or refusing a record.
"""
import os
import sqlite3
import threading

from conftest import (RawConn, Proxy, is_asan_binary, is_tsan_binary,
                      run_cli, token, wait_for)

MIB = 1 << 20
CONNS = 50
REQS_PER_CONN = 6


def _asan_env():
    if not is_asan_binary():
        return None
    return {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") +
            ":quarantine_size_mb=16:thread_local_quarantine_size_kb=256"}


def rss_bound_kib(base_kib, conns, asan):
    """The bound the README states ("What bounds memory"): the store queue's
    bytes, per connection a captured request and answer body and a relay
    buffer each way, plus 32 MiB of slack for the allocator and libraries,
    above the RSS at start. ASan adds shadow memory (1/8) and its
    quarantine (16 MiB, set by _asan_env)."""
    queue = 64 * MIB
    per_conn = 2 * MIB + 2 * 256 * 1024
    bound = base_kib * 1024 + queue + conns * per_conn + 32 * MIB
    if asan:
        bound = bound * 9 // 8 + 16 * MIB
    return bound // 1024


def _get_all(port, host, first, tok, n, errors, lock):
    try:
        with RawConn(port, timeout=60) as c:
            for i in range(n):
                path = f"/mib{first + i}.bin"
                c.send(f"GET http://{host}{path}?t={tok}&i={i} HTTP/1.1\r\n"
                       f"Host: {host}\r\n\r\n".encode())
                r = c.read_response()
                if r.status != 200 or len(r.body) != MIB:
                    raise AssertionError(f"status {r.status}, "
                                         f"{len(r.body)} bytes")
    except Exception as e:  # noqa: BLE001 - reported by the test
        with lock:
            errors.append(repr(e))


def test_peak_rss_1mib_answers_50_connections(start_proxy, nginx):
    asan = is_asan_binary()
    # every answer different, so each is a body the writer must store
    block = os.urandom(MIB)
    for k in range(CONNS * REQS_PER_CONN):
        nginx.add_file(f"mib{k}.bin", block[k:] + block[:k])
    p = start_proxy(env_extra=_asan_env())
    base = p.rss_kib()
    t = token()
    host = f"alpha.test:{nginx.port}"
    errors, lock = [], threading.Lock()
    threads = [threading.Thread(target=_get_all, daemon=True,
                                args=(p.port, host, k * REQS_PER_CONN,
                                      f"{t}c{k}",
                                      REQS_PER_CONN, errors, lock))
               for k in range(CONNS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(180)
    assert not any(th.is_alive() for th in threads), "clients stuck"
    assert errors == []
    hwm = p.rss_hwm_kib()
    bound = rss_bound_kib(base, CONNS, asan)
    print(f"peak RSS {hwm} KiB, start {base} KiB, bound {bound} KiB")
    # ThreadSanitizer keeps shadow and history for every byte touched:
    # its RSS says nothing about peephole's, so only the records count there
    if not is_tsan_binary():
        assert hwm < bound, f"peak RSS {hwm} KiB over the bound {bound} KiB"
    assert p.stop() == 0
    # nothing was dropped to stay under it
    rows = p.dbh().requests_with(t)
    assert len(rows) == CONNS * REQS_PER_CONN
    assert all(r["resp_body_size"] == MIB for r in rows)


def _load(port, host, tok, n, errors):
    try:
        for i in range(n):
            with RawConn(port, timeout=20) as c:
                c.send(f"GET http://{host}/small?t={tok}&i={i} HTTP/1.1\r\n"
                       f"Host: {host}\r\nConnection: close\r\n\r\n".encode())
                r = c.read_response()
                if r.status != 200:
                    raise AssertionError(f"status {r.status}")
    except Exception as e:  # noqa: BLE001 - reported by the test
        errors.append(repr(e))


def test_run_replay_and_second_run_share_one_database(
        start_proxy, nginx, dns_stub, tmp_path):
    nginx.add_file("small", b"hello\n")
    a = start_proxy()
    host = f"127.0.0.1:{nginx.port}"  # replay resolves with the system
    seed = token()
    with RawConn(a.port) as c:
        c.send(f"GET http://{host}/small?t={seed} HTTP/1.1\r\n"
               f"Host: {host}\r\n\r\n".encode())
        assert c.read_response().status == 200
    assert wait_for(lambda: len(a.dbh().requests_with(seed)) == 1, 10)
    orig = a.dbh().requests_with(seed)[0]["id"]

    # a second proxy on the same file
    d = tmp_path / "second"
    d.mkdir()
    b = Proxy(d, dns_stub.port)
    b.db = a.db
    b.start()
    try:
        t = token()
        errors = []
        loads = [threading.Thread(target=_load, daemon=True,
                                  args=(px.port, host, f"{t}{k}", 60, errors))
                 for k, px in enumerate((a, b, a, b))]
        for th in loads:
            th.start()
        replays = []
        for _ in range(6):
            cp = run_cli("replay", orig, "--repeat", "5", "--db", a.db,
                         timeout=60)
            replays.append(cp)
        for th in loads:
            th.join(120)
        assert not any(th.is_alive() for th in loads), "clients stuck"
        assert errors == []
        for cp in replays:
            assert cp.returncode == 0, cp.stderr
            assert "store:" not in cp.stderr, cp.stderr
    finally:
        assert b.stop() == 0
    assert a.stop() == 0
    for px in (a, b):
        assert "store:" not in px.stderr(), px.stderr()[-3000:]
    db = a.dbh()
    for k in range(4):
        assert len(db.requests_with(f"{t}{k}")) == 60
    with sqlite3.connect(str(a.db), timeout=10) as h:
        n_replayed = h.execute("SELECT count(*) FROM requests"
                               " WHERE replay_of = ?", (orig,)).fetchone()[0]
        n_conn = h.execute("SELECT count(*) FROM connections").fetchone()[0]
    assert n_replayed == 30
    # every client connection and every replay has its connection row
    assert n_conn >= 4 * 60 + 30 + 1
