"""
Many clients at once on several workers, with the status page (which
reads every worker's counters) fetched all the while. Under `make
test-tsan` this is the test that shows races between workers, and
between workers and the store writer: the proxy then exits non-zero with
a ThreadSanitizer report and the fixture fails the test.
"""
import threading

from conftest import RawConn

CLIENTS = 12
REQUESTS = 15
STATUS_READERS = 3


def _status_page(port):
    with RawConn(port, timeout=30) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Connection: close\r\n\r\n")
        return c.read_response()


def test_concurrent_clients_and_status_page(start_proxy, nginx):
    p = start_proxy(workers=4)
    want = nginx.files["small"]
    errs = []
    done = threading.Event()

    def client(i):
        try:
            with RawConn(p.port, timeout=30) as c:
                for j in range(REQUESTS):
                    c.send(f"GET http://127.0.0.1:{nginx.port}/small?c={i}"
                           f"&r={j} HTTP/1.1\r\n"
                           f"Host: 127.0.0.1:{nginx.port}\r\n\r\n".encode())
                    r = c.read_response()
                    assert (r.status, r.body) == (200, want), (i, j)
        except Exception as e:  # noqa: BLE001
            errs.append(f"client {i}: {e!r}")

    def status_reader(i):
        try:
            for _ in range(200):
                r = _status_page(p.port)
                assert r.status == 200, r.raw_head
                if done.is_set():
                    return
        except Exception as e:  # noqa: BLE001
            errs.append(f"status reader {i}: {e!r}")

    readers = [threading.Thread(target=status_reader, args=(i,))
               for i in range(STATUS_READERS)]
    clients = [threading.Thread(target=client, args=(i,))
               for i in range(CLIENTS)]
    for t in readers + clients:
        t.start()
    for t in clients:
        t.join(60)
    done.set()
    for t in readers:
        t.join(60)
    assert not any(t.is_alive() for t in readers + clients), "clients hung"
    assert errs == []
    assert p.proc.poll() is None, p.stderr()[-6000:]

    # the counters add up once everything is closed
    r = _status_page(p.port)
    assert b"exchanges: " in r.body, r.body
