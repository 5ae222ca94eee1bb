"""
Fixtures for the HTTP/2 tests: nginx on loopback speaking h2 over TLS, an
HTTP/1.1-only TLS port and an h2c (prior knowledge) port; a python3-h2
origin (h2_origin.py: trailers, resets, a stalled stream, RFC 8441
WebSocket) over TLS and plain; a python3-h2 client (h2_client.py); curl
and nghttp helpers; the proxy with the test origin CA trusted and,
when asked, a reverse listener.

This directory is the package `h2`: with tests/e2e on sys.path, `import
h2` inside the test process is this package, not python3-h2. So the
library is used only by h2_origin.py and h2_client.py, run as
subprocesses (their directory comes first on their sys.path and holds no
h2 module), which print JSON.

Reused from ../conftest.py (free_port, wait_listen, kill_proc, ...) and
../tls/conftest.py (the test origin PKI `certs`, the `tls_proxy` factory).
Every process started here is stopped by PID; every wait is bounded.
"""
import json
import random
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import (CURL, NGINX, free_port, kill_proc, nginx_conf,
                      wait_for, wait_listen)
from tls.conftest import certs, sha256_hex, tls_proxy  # noqa: F401 fixtures

HERE = Path(__file__).resolve().parent
PYTHON = "/usr/bin/python3"
NGHTTP = "/usr/bin/nghttp"
BIG_SIZE = 20 << 20


# --------------------------------------------------------------------------
# nginx: h2 over TLS, HTTP/1.1-only TLS, h2c


H2_LOG_FIELDS = {
    "method": "$request_method", "uri": "$request_uri", "status": "$status",
    "proto": "$server_protocol", "server_port": "$server_port",
    "scheme": "$scheme", "host": "$host", "sni": "$ssl_server_name",
    "alpn": "$ssl_alpn_protocol", "bytes_sent": "$body_bytes_sent",
    "connection": "$connection",
    "connection_requests": "$connection_requests",
}


class H2Nginx:
    """ports: "h2" (TLS, ALPN h2 and http/1.1), "h1" (TLS, http/1.1 only),
    "h2c" (cleartext HTTP/2 with prior knowledge only). /trailers.txt gets
    a trailer (x-trailer-test: done) from add_trailer."""

    KINDS = ("h2", "h1", "h2c")

    def __init__(self, root, certs):
        self.root = root
        self.www = root / "www"
        self.log = root / "access.log"
        self.certs = certs
        self.ports = {k: free_port() for k in self.KINDS}
        self.files = {}
        self.proc = None

    def add_file(self, name, data):
        (self.www / name).write_bytes(data)
        self.files[name] = data

    def conf(self):
        crt, key = self.certs.good
        r = self.root
        listens = {"h2": "ssl http2", "h1": "ssl", "h2c": "http2"}
        servers = ""
        for k in self.KINDS:
            servers += f"""
    server {{
        listen 127.0.0.1:{self.ports[k]} {listens[k]};
        server_name _;
        root {self.www};
        access_log {self.log} t;
        ssl_certificate {crt};
        ssl_certificate_key {key};
        http2_max_concurrent_streams 128;
        location / {{ }}
        location = /trailers.txt {{ add_trailer x-trailer-test done; }}
    }}"""
        return nginx_conf(r, H2_LOG_FIELDS,
                          "text/html html; text/css css; "
                          "application/javascript js; text/plain txt;",
                          servers)

    def start(self):
        (self.root / "nginx.conf").write_text(self.conf())
        self.stderr = open(self.root / "nginx.stderr", "wb")
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(self.root), "-c", str(self.root / "nginx.conf"),
             "-g",
             f"daemon off; pid {self.root}/nginx.pid; error_log stderr;"],
            stdin=subprocess.DEVNULL, stdout=self.stderr, stderr=self.stderr)
        for p in self.ports.values():
            if not wait_listen(p, 10, self.proc):
                kill_proc(self.proc)
                raise RuntimeError("nginx did not start: " +
                                   (self.root / "nginx.stderr").read_text())

    def stop(self):
        if self.proc:
            kill_proc(self.proc, signal.SIGQUIT)
            self.stderr.close()

    def entries_with(self, tok):
        try:
            text = self.log.read_text()
        except FileNotFoundError:
            return []
        out = []
        for ln in text.splitlines():
            try:
                e = json.loads(ln)
            except ValueError:
                continue
            if tok in e["uri"]:
                out.append(e)
        return out

    def wait_entries(self, tok, n=1, timeout=5.0):
        got = wait_for(lambda: (lambda es: es if len(es) >= n else None)(
            self.entries_with(tok)), timeout)
        return got or self.entries_with(tok)


PAGE_MARKER = "h2-page-script-ran"


@pytest.fixture(scope="session")
def h2_nginx(tmp_path_factory, certs):  # noqa: F811 (fixture)
    n = H2Nginx(tmp_path_factory.mktemp("h2-nginx"), certs)
    n.www.mkdir(parents=True)
    rnd = random.Random(2026)
    n.add_file("small", bytes(rnd.choice(b"abcdefghij") for _ in range(100)))
    n.add_file("big", rnd.randbytes(BIG_SIZE))
    n.add_file("trailers.txt", b"a body with a trailer after it\n")
    n.add_file("page.html", b"""<!doctype html>
<html><head><title>h2 page</title><link rel="stylesheet" href="/style.css">
</head><body><p id="p">static</p><script src="/app.js"></script></body>
</html>
""")
    n.add_file("style.css", b"body { color: #123456; }\n")
    n.add_file("app.js", ("document.getElementById('p').textContent = '"
                          + PAGE_MARKER + "';\n").encode())
    n.start()
    yield n
    n.stop()


# --------------------------------------------------------------------------
# the python3-h2 origin


class H2Origin:
    """h2_origin.py on a free port, TLS with the "good" certificate (SAN
    alpha.test, 127.0.0.1) or plain h2c; .entries() is its JSON log."""

    def __init__(self, root, certs, plain=False):  # noqa: F811
        self.root = root
        self.log = root / "origin.log"
        self.port = free_port()
        argv = [PYTHON, str(HERE / "h2_origin.py"), "--port", str(self.port),
                "--log", str(self.log)]
        if plain:
            argv.append("--plain")
        else:
            argv += ["--cert", str(certs.good[0]), "--key",
                     str(certs.good[1])]
        self.err = open(root / "origin.stderr", "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self.err, stderr=self.err)
        if not wait_listen(self.port, 10, self.proc):
            kill_proc(self.proc)
            raise RuntimeError("h2_origin did not start: " +
                               (root / "origin.stderr").read_text())

    def entries(self, path=None):
        try:
            lines = self.log.read_text().splitlines()
        except FileNotFoundError:
            return []
        es = [json.loads(ln) for ln in lines if ln.strip()]
        return [e for e in es if path is None or e["path"] == path]

    def wait_entries(self, path, n=1, timeout=5.0):
        got = wait_for(lambda: (lambda es: es if len(es) >= n else None)(
            self.entries(path)), timeout)
        return got or self.entries(path)

    def stop(self):
        kill_proc(self.proc)
        self.err.close()


@pytest.fixture
def h2_origin(tmp_path, certs):  # noqa: F811 (fixture)
    """A fresh TLS origin per test: its log holds only that test's
    streams."""
    d = tmp_path / "h2-origin"
    d.mkdir()
    o = H2Origin(d, certs)
    yield o
    o.stop()


# --------------------------------------------------------------------------
# clients


def h2_client(*args, host="alpha.test", port, connect=None, proxy=None,
              cafile=None, alpn="h2", plain=False, timeout=20.0):
    """Run h2_client.py; its JSON answer (with "rc")."""
    argv = [PYTHON, str(HERE / "h2_client.py"), "--host", host, "--port",
            str(port), "--alpn", alpn, "--timeout", str(timeout)]
    if connect:
        argv += ["--connect", str(connect)]
    if proxy:
        argv += ["--proxy", str(proxy)]
    if cafile:
        argv += ["--cafile", str(cafile)]
    if plain:
        argv.append("--plain")
    cp = subprocess.run(argv + [str(a) for a in args],
                        stdin=subprocess.DEVNULL, capture_output=True,
                        timeout=timeout + 15)
    try:
        out = json.loads(cp.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        out = {"error": "no JSON: " + cp.stdout.decode()[-500:] +
               cp.stderr.decode()[-2000:]}
    out["rc"] = cp.returncode
    out["stderr"] = cp.stderr.decode()[-2000:]
    return out


class CurlOut:
    def __init__(self, cp, body):
        self.rc = cp.returncode
        self.stderr = cp.stderr.decode(errors="replace")
        tail = cp.stdout.decode().split()
        self.code = int(tail[0]) if tail else 0
        self.version = tail[1] if len(tail) > 1 else ""
        self.body = body


def hcurl(url, *args, proxy=None, cacert=None, out=None, timeout=30):
    """curl url (through the HTTP proxy on 127.0.0.1:proxy if given);
    .code, .version (%{http_version}: "2", "1.1"), .body."""
    argv = [CURL, "-sS", "--max-time", str(timeout), "-w",
            "%{http_code} %{http_version}", "-o", str(out)]
    if proxy:
        argv += ["-x", f"http://127.0.0.1:{proxy}", "--noproxy", ""]
    else:
        argv += ["--noproxy", "*"]
    if cacert:
        argv += ["--cacert", str(cacert)]
    cp = subprocess.run(argv + list(args) + [url], stdin=subprocess.DEVNULL,
                        capture_output=True, timeout=timeout + 10)
    body = out.read_bytes() if out.exists() else b""
    if out.exists():
        out.unlink()
    return CurlOut(cp, body)


def start_h2_proxy(tls_proxy, certs, reverse_to=None):  # noqa: F811
    """The proxy trusting the test origin CA; with reverse_to=(host, port)
    also a reverse listener to it, whose port is .rport."""
    args = ["--upstream-ca", certs.ca]
    rport = None
    if reverse_to:
        rport = free_port()
        args += ["--listen", f"reverse@127.0.0.1:{rport}="
                 f"{reverse_to[0]}:{reverse_to[1]}"]
    p = tls_proxy(*args)
    p.rport = rport
    if rport:
        assert wait_listen(rport, 10, p.proc), p.stderr()[-2000:]
    return p


# --------------------------------------------------------------------------
# rows (schema v10)


def h2_rows(p, where="1", params=()):
    return p.rows(f"SELECT * FROM requests WHERE {where} ORDER BY id",
                  params)


def conn_of(p, row):
    cs = p.rows("SELECT * FROM connections WHERE id = ?", (row["conn_id"],))
    assert len(cs) == 1, cs
    return cs[0]


def body_of(p, sha):
    rs = p.rows("SELECT data FROM bodies WHERE sha256 = ?", (sha,))
    return bytes(rs[0]["data"]) if rs else None


def header_lines(text):
    """A recorded head ("name: value\\r\\n" lines) as [(name, value)]."""
    out = []
    for ln in (text or "").split("\r\n"):
        if ln:
            k, _, v = ln.partition(": ")
            out.append((k, v))
    return out

