"""
`peephole prune`: requests captured through the real proxy are deleted by
filter and by age, with the connections and bodies only they used; a body
another request still uses stays; --dry-run changes nothing; and a prune
while the proxy records into the same file loses none of its new rows.
"""
import http.server
import sqlite3
import threading
import time

from conftest import run_cli, wait_for


class Origin:
    """GET /shared* answers one shared body; other paths their own."""

    def __init__(self):
        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                n = int(self.headers.get("Content-Length", "0"))
                if n:
                    self.rfile.read(n)
                out = (b"shared body" if self.path.startswith("/shared")
                       else b"body of " + self.path.encode())
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_POST = do_GET

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever,
                         kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def q(db, sql, params=()):
    c = sqlite3.connect(str(db), timeout=10)
    try:
        return c.execute(sql, params).fetchall()
    finally:
        c.close()


def counts(db):
    return tuple(q(db, f"SELECT count(*) FROM {t}")[0][0]
                 for t in ("requests", "connections", "bodies"))


def prune(db, *args):
    return run_cli("prune", *args, "--db", db, timeout=60)


def capture(p, o, paths):
    for path in paths:
        assert p.curl(o.url(path), "--data-binary", "req " + path).code == 200


def test_prune_by_filter_and_dry_run(start_proxy):
    o = Origin()
    try:
        p = start_proxy()
        capture(p, o, ["/keep/1", "/drop/1", "/drop/2", "/shared-a",
                       "/shared-b"])
        assert p.stop() == 0
        before = counts(p.db)
        shared = q(p.db, "SELECT resp_body_sha FROM requests WHERE path ="
                         " '/shared-b'")[0][0]

        cp = prune(p.db, "--filter", "~u /drop/|~u /shared-a", "--dry-run")
        assert cp.returncode == 0, cp.stderr
        # 3 requests; their 3 request bodies and 2 response bodies, the
        # shared response body kept for /shared-b
        assert cp.stdout.startswith("would delete 3 requests"), cp.stdout
        assert "5 bodies" in cp.stdout
        assert counts(p.db) == before

        cp = prune(p.db, "--filter", "~u /drop/|~u /shared-a")
        assert cp.returncode == 0, cp.stderr
        assert cp.stdout.startswith("deleted 3 requests"), cp.stdout
        assert "5 bodies" in cp.stdout
        paths = [r[0] for r in q(p.db, "SELECT path FROM requests")]
        assert sorted(paths) == ["/keep/1", "/shared-b"]
        assert q(p.db, "SELECT count(*) FROM bodies WHERE sha256 = ?",
                 (shared,))[0][0] == 1
        # every remaining reference resolves, nothing unreferenced is left
        assert q(p.db, "SELECT count(*) FROM bodies WHERE sha256 NOT IN"
                       " (SELECT req_body_sha FROM requests WHERE"
                       " req_body_sha IS NOT NULL UNION SELECT"
                       " resp_body_sha FROM requests WHERE resp_body_sha"
                       " IS NOT NULL)")[0][0] == 0
        assert q(p.db, "SELECT count(*) FROM requests WHERE resp_body_sha"
                       " NOT IN (SELECT sha256 FROM bodies)")[0][0] == 0
        # --filter alone leaves connections alone
        assert counts(p.db)[1] == before[1]

        cp = prune(p.db, "--filter", "~u ((")
        assert cp.returncode == 2
        cp = prune(p.db)
        assert cp.returncode == 2
        cp = prune(p.db, "--before", "yesterday")
        assert cp.returncode == 2
        cp = prune(p.dir / "missing.db", "--before", "1d")
        assert cp.returncode == 1
    finally:
        o.stop()


def test_prune_before_with_connections_and_vacuum(start_proxy):
    o = Origin()
    try:
        p = start_proxy()
        capture(p, o, ["/old/1", "/old/2", "/new/1"])
        assert p.stop() == 0
        # age the /old rows and their connections by ten days
        ten = 10 * 86400 * 1000000
        c = sqlite3.connect(str(p.db))
        c.execute("UPDATE requests SET t_start_us = t_start_us - ? WHERE"
                  " path LIKE '/old/%'", (ten,))
        c.execute("UPDATE connections SET t_accept_us = t_accept_us - ?"
                  " WHERE id IN (SELECT conn_id FROM requests WHERE path"
                  " LIKE '/old/%')", (ten,))
        c.commit()
        c.close()
        old_conns = [r[0] for r in q(p.db, "SELECT conn_id FROM requests"
                                           " WHERE path LIKE '/old/%'")]
        before = counts(p.db)

        cp = prune(p.db, "--before", "7d", "--dry-run")
        assert cp.returncode == 0, cp.stderr
        assert cp.stdout.startswith(
            f"would delete 2 requests, {len(set(old_conns))} connections")
        assert counts(p.db) == before

        # an absolute time before everything: nothing
        cp = prune(p.db, "--before", "2001-01-01T00:00:00Z")
        assert cp.returncode == 0, cp.stderr
        assert cp.stdout.startswith("deleted 0 requests")

        cp = prune(p.db, "--before", "7d", "--vacuum")
        assert cp.returncode == 0, cp.stderr
        assert cp.stdout.startswith(
            f"deleted 2 requests, {len(set(old_conns))} connections")
        assert "vacuumed" in cp.stdout
        assert [r[0] for r in q(p.db, "SELECT path FROM requests")] == \
            ["/new/1"]
        left = [r[0] for r in q(p.db, "SELECT id FROM connections")]
        assert not set(old_conns) & set(left)
        assert counts(p.db)[1] == before[1] - len(set(old_conns))
    finally:
        o.stop()


def test_prune_while_the_proxy_records(start_proxy):
    o = Origin()
    try:
        p = start_proxy()
        capture(p, o, [f"/old/{i}" for i in range(60)])
        wait_for(lambda: q(p.db, "SELECT count(*) FROM requests")[0][0]
                 == 60, timeout=10)
        stop = threading.Event()
        sent = []

        def traffic():
            i = 0
            while not stop.is_set() and i < 200:
                path = f"/live/{i}"
                if p.curl(o.url(path)).code == 200:
                    sent.append(path)
                i += 1

        t = threading.Thread(target=traffic)
        t.start()
        try:
            for _ in range(3):
                cp = prune(p.db, "--filter", "~u /old/")
                assert cp.returncode == 0, cp.stderr
                time.sleep(0.1)
            cp = prune(p.db, "--filter", "~u /live/1", "--vacuum")
            assert cp.returncode == 0, cp.stderr
        finally:
            stop.set()
            t.join(timeout=120)
        assert p.stop() == 0
        # the writer's complaints all start "store:"
        assert "store:" not in p.stderr(), p.stderr()
        paths = {r[0] for r in q(p.db, "SELECT path FROM requests")}
        assert not any(x.startswith("/old/") for x in paths)
        # every live request after the last prune of /live/1... landed
        survivors = {x for x in sent if not x.startswith("/live/1")}
        assert survivors <= paths
        assert len(sent) > 0
        # all their bodies are there
        assert q(p.db, "SELECT count(*) FROM requests WHERE resp_body_sha"
                       " NOT IN (SELECT sha256 FROM bodies)")[0][0] == 0
    finally:
        o.stop()
