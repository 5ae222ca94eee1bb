"""
Intercepted TLS from many clients at once on four workers: the forged
certificate cache, the origin session cache and the learned-passthrough
table are shared between workers. Old hellos to another name run at the
same time, so the failed-handshake path (and whatever it records) meets
the good one. Under `make test-tsan` a race there ends the proxy with a
report and the fixture fails the test; otherwise every good client must
get its page.
"""
import threading

from conftest import token

from .conftest import https_get, tls_over_tunnel
from .test_old_hellos import HELLOS, _send_hello

CLIENTS = 10
REQUESTS = 4


def test_concurrent_intercepted_clients(tls_proxy, tls_nginx, certs):
    p = tls_proxy("--upstream-ca", certs.ca, start=False)
    p.workers = 4
    p.start()
    port = tls_nginx.port
    bundle = p.dir / "both-cas.pem"
    bundle.write_bytes(p.ca_pem.read_bytes() + b"\n" +
                       open(certs.ca, "rb").read())
    want = tls_nginx.files["small"]
    errs = []

    def client(i):
        try:
            for j in range(REQUESTS):
                s = tls_over_tunnel(p, "alpha.test", port, cafile=bundle,
                                    timeout=30)
                try:
                    status, body = https_get(s, "alpha.test",
                                             f"/small?t={token()}")
                finally:
                    s.close()
                assert (status, body) == (200, want), (i, j, status)
        except Exception as e:  # noqa: BLE001
            errs.append(f"client {i}: {e!r}")

    def old_hellos():
        for flags in HELLOS.values():
            _send_hello(p, port, flags, host="beta.test")

    ts = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    ts.append(threading.Thread(target=old_hellos))
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not any(t.is_alive() for t in ts), "clients hung"
    assert errs == []
    assert p.proc.poll() is None, p.stderr()[-6000:]
