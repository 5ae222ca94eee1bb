"""
Readable bodies: answers compressed with gzip, deflate (zlib and raw), br,
zstd and a stack of two come through the proxy untouched, are stored as
they came, and are decoded on read by show, requests --filter, export har
and export bodies. brotli and zstd bodies are made with Debian's CLI tools,
the rest with Python's zlib; nginx's own gzip is read too.
"""
import gzip
import http.server
import json
import re
import subprocess
import threading
import zlib

import pytest

from conftest import run_cli, token


def _cli(tool, data):
    return subprocess.run([tool, "-c", "-q"] if tool == "zstd"
                          else [tool, "-c"], input=data, check=True,
                          capture_output=True, timeout=30).stdout


def _raw_deflate(data):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


ENCODERS = {
    "gzip": ("gzip", gzip.compress),
    "deflate": ("deflate", zlib.compress),
    "rawdeflate": ("deflate", _raw_deflate),
    "br": ("br", lambda d: _cli("brotli", d)),
    "zstd": ("zstd", lambda d: _cli("zstd", d)),
    "gzip-br": ("gzip, br", lambda d: _cli("brotli", gzip.compress(d))),
}


def plain_body(tok, name):
    words = [f"{name}-word-{i}" for i in range(300)]
    return json.dumps({"token": tok, "coding": name, "words": words},
                      separators=(",", ":")).encode()


class EncodingOrigin:
    """GET /enc/NAME?t=TOK answers plain_body(TOK, NAME) encoded as NAME
    says; /bomb answers 80 MiB of zeros gzipped."""

    def __init__(self):
        self.sent = {}
        origin = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                path, _, q = self.path.partition("?")
                tok = q.partition("t=")[2]
                if path == "/bomb":
                    enc, body = "gzip", gzip.compress(bytes(80 << 20), 9)
                    ctype = "text/plain"
                else:
                    name = path.rsplit("/", 1)[-1]
                    enc, fn = ENCODERS[name]
                    body = fn(plain_body(tok, name))
                    ctype = "application/json"
                origin.sent[path] = body
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Encoding", enc)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever,
                         kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def capture(proxy, nginx):
    """Every coding fetched once through the proxy, then the proxy
    stopped: (proxy, token, origin, {name: request id})."""
    o = EncodingOrigin()
    t = token()
    nginx.add_file("gz/notes.txt", ("nginx gzip " + t + "\n").encode() * 200)
    try:
        for name in ENCODERS:
            r = proxy.curl(f"http://alpha.test:{o.port}/enc/{name}?t={t}",
                           "-H", "Accept-Encoding: gzip, br, zstd")
            assert r.code == 200, r.stderr
            # the client got the encoded bytes, as the origin sent them
            assert r.body == o.sent[f"/enc/{name}"]
        r = proxy.curl(nginx.url("alpha.test", f"/gz/notes.txt?t={t}"),
                       "-H", "Accept-Encoding: gzip")
        assert r.code == 200
        assert r.body[:2] == b"\x1f\x8b", "nginx did not gzip"
        r = proxy.curl(f"http://alpha.test:{o.port}/bomb?t={t}")
        assert r.code == 200
    finally:
        o.stop()
    assert proxy.stop() == 0
    ids = {}
    for row in proxy.dbh().requests_with(t):
        ids[row["path"].rsplit("/", 1)[-1]] = row["id"]
    assert len(ids) == len(ENCODERS) + 2, ids
    return proxy, t, o, ids


def test_show_decodes_every_coding(capture):
    p, t, o, ids = capture
    for name, (enc, _) in ENCODERS.items():
        cp = run_cli("show", ids[name], "--db", p.db)
        assert cp.returncode == 0, cp.stderr
        stored = len(o.sent[f"/enc/{name}"])
        plain = len(plain_body(t, name))
        assert (f"encoding: {enc}, {stored} bytes stored; "
                f"decoded: {plain} bytes") in cp.stdout, cp.stdout
        # JSON, pretty-printed
        assert f'  |   "token": "{t}",' in cp.stdout, cp.stdout
        # --raw shows what was stored: no longer readable JSON
        cp = run_cli("show", ids[name], "--raw", "--db", p.db)
        assert f'"token": "{t}"' not in cp.stdout
    cp = run_cli("show", ids["notes.txt"], "--db", p.db)
    assert "encoding: gzip" in cp.stdout
    assert f"  | nginx gzip {t}" in cp.stdout


def test_show_body_out_decoded_and_safe(capture, tmp_path):
    p, t, o, ids = capture
    cp = subprocess.run([*_peephole(), "show", str(ids["br"]), "--body-out",
                         "-", "--db", str(p.db)], capture_output=True,
                        timeout=30)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout == plain_body(t, "br")
    err = cp.stderr.decode().strip().splitlines()
    assert len(err) == 1 and "wrote" in err[0] and "stdout" in err[0], err
    out = tmp_path / "body.json"
    out.write_bytes(b"keep me")
    cp = run_cli("show", ids["zstd"], "--body-out", out, "--db", p.db)
    assert cp.returncode != 0 and "--force" in cp.stderr
    assert out.read_bytes() == b"keep me"
    cp = run_cli("show", ids["zstd"], "--body-out", out, "--force", "--db",
                 p.db)
    assert cp.returncode == 0, cp.stderr
    assert out.read_bytes() == plain_body(t, "zstd")
    cp = run_cli("show", ids["zstd"], "--body-out", out, "--force", "--raw",
                 "--db", p.db)
    assert out.read_bytes() == o.sent["/enc/zstd"]


def test_zip_bomb_capped_and_said(capture):
    p, t, o, ids = capture
    cp = run_cli("show", ids["bomb"], "--db", p.db, timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert "decoded size cut at 67108864 bytes" in cp.stdout, cp.stdout
    assert "decoded: 67108864 bytes" in cp.stdout


def test_filter_matches_decoded_bodies(capture):
    p, t, o, ids = capture
    cp = run_cli("requests", "--filter", f"~t json & ~bs {t}", "--json",
                 "--db", p.db)
    assert cp.returncode == 0, cp.stderr
    got = {r["id"] for r in json.loads(cp.stdout)}
    assert got == {ids[n] for n in ENCODERS}
    cp = run_cli("requests", "--filter", "~t json & ~bs gzip-br-word-299",
                 "--json",
                 "--db", p.db)
    assert {r["id"] for r in json.loads(cp.stdout)} == {ids["gzip-br"]}
    # --raw: the stored bytes, where the token is compressed away
    cp = run_cli("requests", "--filter", f"~t json & ~bs {t}", "--raw",
                 "--json", "--db", p.db)
    assert cp.returncode == 0, cp.stderr
    assert json.loads(cp.stdout) == []


def test_har_content_decoded(capture, tmp_path):
    p, t, o, ids = capture
    har = tmp_path / "out.har"
    cp = run_cli("export", "har", har, *[ids[n] for n in ENCODERS], "--db",
                 p.db)
    assert cp.returncode == 0, cp.stderr
    # timings are µs / 1000: never more than three decimals (no float
    # noise such as 2.6099999999999999)
    assert not re.search(r"\d\.\d{4,}", har.read_text()), \
        "float noise in the HAR"
    entries = json.loads(har.read_text())["log"]["entries"]
    assert len(entries) == len(ENCODERS)
    for e, name in zip(entries, ENCODERS):
        c = e["response"]["content"]
        plain = plain_body(t, name)
        stored = len(o.sent[f"/enc/{name}"])
        assert json.loads(c["text"])["token"] == t
        assert "encoding" not in c
        assert c["size"] == len(plain)
        assert c["compression"] == len(plain) - stored
        assert e["response"]["bodySize"] == stored


def test_export_bodies_decoded_unless_raw(capture, tmp_path):
    p, t, o, ids = capture
    d = tmp_path / "bodies"
    sel = [ids[n] for n in ENCODERS]
    cp = run_cli("export", "bodies", d, *sel, "--db", p.db)
    assert cp.returncode == 0, cp.stderr
    for name in ENCODERS:
        assert (d / f"{ids[name]}.json").read_bytes() == \
            plain_body(t, name)
    cp = run_cli("export", "bodies", d, *sel, "--raw", "--force", "--db",
                 p.db)
    assert cp.returncode == 0, cp.stderr
    for name in ENCODERS:
        assert (d / f"{ids[name]}.json").read_bytes() == \
            o.sent[f"/enc/{name}"]


def _peephole():
    from conftest import PEEPHOLE_BIN
    return [PEEPHOLE_BIN]
