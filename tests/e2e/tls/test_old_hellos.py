"""
Old and unacceptable ClientHellos through CONNECT: TLS 1.0 and 1.1 only,
an SSL 3.0 hello (built by hand: OpenSSL 3 cannot send one), no cipher in
common under TLS 1.2 or TLS 1.3. The forged side (TLS 1.2 minimum) refuses
them all; how it refuses and what it learns is not asserted here (that
policy changes). What is asserted: the proxy survives each hello, twice
(the second one meets whatever the first left cached or learned), and a
normal curl through the same proxy works afterwards. These run in the
ASan and TSan builds too, where a use-after-free or race on the failed
handshake path ends the proxy with a report that the fixture fails on.
"""
import os
import struct
import subprocess

import pytest

from conftest import RawConn, token

from .conftest import OPENSSL, tcurl

HOST = "alpha.test"
STEP_TIMEOUT = 30  # seconds for each client; TSan makes the proxy slow

# openssl s_client flags for each hello; None: a hand-built SSL 3.0 hello
HELLOS = {
    "tls1_0": ["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"],
    "tls1_1": ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
    "tls1_2-no-common-cipher": ["-tls1_2", "-cipher",
                                "NULL-SHA256@SECLEVEL=0"],
    "tls1_3-no-common-suite": ["-tls1_3", "-ciphersuites",
                               "TLS_AES_128_CCM_8_SHA256"],
    "ssl3": None,
}


def _ssl3_hello(host):
    """An SSL 3.0 ClientHello record with an SNI extension (so the proxy
    knows the name and goes as far as forging)."""
    name = host.encode()
    sni = struct.pack("!BH", 0, len(name)) + name
    sni = struct.pack("!H", len(sni)) + sni
    exts = struct.pack("!HH", 0, len(sni)) + sni
    suites = [0x002f, 0x0035, 0x000a, 0x0005, 0x00ff]
    body = (b"\x03\x00" + os.urandom(32) + b"\x00" +
            struct.pack("!H", 2 * len(suites)) +
            b"".join(struct.pack("!H", s) for s in suites) + b"\x01\x00" +
            struct.pack("!H", len(exts)) + exts)
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x00" + struct.pack("!H", len(hs)) + hs


def _send_ssl3(p, port, host):
    rc = RawConn(p.port, timeout=STEP_TIMEOUT)
    try:
        rc.send(f"CONNECT {host}:{port} HTTP/1.1\r\n"
                f"Host: {host}:{port}\r\n\r\n".encode())
        r = rc.read_head()
        if r.status != 200:
            return
        rc.send(_ssl3_hello(host))
        # whatever comes back (an alert, a close): read it to the end
        try:
            rc.read_to_eof(limit=1 << 20)
        except (OSError, ValueError):
            pass
    except (OSError, EOFError, ValueError):
        pass
    finally:
        rc.close()


def _send_hello(p, port, flags, host=HOST):
    """One handshake attempt through p; its outcome is not asserted."""
    if flags is None:
        _send_ssl3(p, port, host)
        return
    argv = [OPENSSL, "s_client", "-proxy", f"127.0.0.1:{p.port}",
            "-connect", f"{host}:{port}", "-servername", host,
            "-CAfile", str(p.ca_pem)] + flags
    try:
        subprocess.run(argv, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=STEP_TIMEOUT, env=p.env)
    except subprocess.TimeoutExpired:
        pass  # a hung handshake is not this test's question


def _trust_both(p, certs):
    """A CA bundle trusting the proxy's CA and the origin's: the follow-up
    works whether the proxy intercepts the host or passes it through."""
    bundle = p.dir / "both-cas.pem"
    bundle.write_bytes(p.ca_pem.read_bytes() + b"\n" +
                       open(certs.ca, "rb").read())
    return bundle


@pytest.mark.parametrize("hello", list(HELLOS))
def test_old_hello_leaves_proxy_working(tls_proxy, tls_nginx, certs, hello):
    p = tls_proxy("--upstream-ca", certs.ca)
    port = tls_nginx.port
    bundle = _trust_both(p, certs)
    for attempt in range(2):
        _send_hello(p, port, HELLOS[hello])
        assert p.proc.poll() is None, \
            f"proxy died after {hello} hello #{attempt}:\n" + \
            p.stderr()[-6000:]
        t = token()
        r = tcurl(p, f"https://{HOST}:{port}/small?t={t}", cacert=bundle,
                  timeout=STEP_TIMEOUT)
        assert (r.rc, r.code) == (0, 200), (hello, attempt, r.stderr)
        assert r.body == tls_nginx.files["small"]
    assert p.proc.poll() is None, p.stderr()[-6000:]


def test_old_hellos_interleaved_with_requests(tls_proxy, tls_nginx, certs):
    """Every kind of hello in turn on one proxy, a request after each."""
    p = tls_proxy("--upstream-ca", certs.ca)
    port = tls_nginx.port
    bundle = _trust_both(p, certs)
    for hello, flags in HELLOS.items():
        _send_hello(p, port, flags)
        assert p.proc.poll() is None, \
            f"proxy died after {hello} hello:\n" + p.stderr()[-6000:]
        r = tcurl(p, f"https://{HOST}:{port}/small?t={token()}",
                  cacert=bundle, timeout=STEP_TIMEOUT)
        assert (r.rc, r.code) == (0, 200), (hello, r.stderr)
