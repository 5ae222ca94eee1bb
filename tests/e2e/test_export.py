"""
`peephole export` over a capture made through the real proxy from nginx:
HAR 1.2 checked by an npm HAR validator (installed into build/npm by this
test) and read back against the database; the printed curl command run
against the origin; bodies written as files, byte for byte.
"""
import base64
import json
import os
import shutil
import sqlite3
import subprocess

import pytest

from conftest import REPO, run_cli, token

NODE = shutil.which("node") or "/usr/bin/node"
NPM_DIR = REPO / "build" / "npm"
HAR_VALIDATOR = NPM_DIR / "node_modules" / "har-validator"


@pytest.fixture(scope="module")
def har_validator():
    """har-validator, pinned in proxy/web/package-lock.json and installed
    into build/npm by `make deps` (an install here would change that tree
    behind npm ci's back)."""
    assert HAR_VALIDATOR.exists(), "build/npm lacks har-validator: make deps"
    return HAR_VALIDATOR


def validate_har(path):
    script = (
        "const hv = require(%s);"
        "const d = JSON.parse(require('fs').readFileSync(%s, 'utf8'));"
        "hv.har(d).then(() => console.log('valid')).catch(e => {"
        " console.error(JSON.stringify(e.errors || e.message, null, 1));"
        " process.exit(1); });" % (json.dumps(str(HAR_VALIDATOR)),
                                   json.dumps(str(path))))
    return subprocess.run([NODE, "-e", script], capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def capture(start_proxy, nginx):
    """A page, an image, a form POST, a binary POST with NUL bytes, a 404,
    a body over the 64 KiB capture limit and a request with no answer."""
    p = start_proxy(conf_extra={"body-capture-limit": "64K"})
    t = token()
    base = f"http://127.0.0.1:{nginx.port}"
    binary = b"a\x00b\x01c'\\\"$x `y` \n\tz" * 3
    bin_file = p.dir / "binary.post"
    bin_file.write_bytes(binary)
    steps = [
        ("txt", f"{base}/p2.txt?t={t}", []),
        ("img", f"{base}/img.jpg?t={t}&size=small", []),
        ("form", f"{base}/upload?t={t}&kind=form",
         ["--data-binary", "user=alice&token=s3cret", "-H",
          "Cookie: session=abc; theme=dark", "-H", "X-Test: export"]),
        ("binary", f"{base}/upload?t={t}&kind=binary",
         ["--data-binary", f"@{bin_file}", "-H",
          "Content-Type: application/octet-stream"]),
        ("missing", f"{base}/missing?t={t}", []),
        ("medium", f"{base}/medium.bin?t={t}", []),
        ("refused", "http://127.0.0.1:1/nothing-listens", []),
    ]
    for _, url, extra in steps:
        p.curl(url, *extra)
    assert p.stop() == 0
    c = sqlite3.connect(str(p.db))
    c.row_factory = sqlite3.Row
    rows = [dict(r) for r in c.execute("SELECT * FROM requests ORDER BY id")]
    c.close()
    assert len(rows) == len(steps), rows
    ids = {name: r["id"] for (name, _, _), r in zip(steps, rows)}
    return {"proxy": p, "ids": ids, "rows": rows, "binary": binary,
            "t": t, "base": base}


def test_har_validates_and_reads_back(capture, nginx, har_validator,
                                      tmp_path):
    p, ids = capture["proxy"], capture["ids"]
    out = tmp_path / "capture.har"
    cp = run_cli("export", "har", out, "--db", p.db)
    assert cp.returncode == 0, cp.stderr
    v = validate_har(out)
    assert v.returncode == 0 and "valid" in v.stdout, v.stdout + v.stderr

    har = json.loads(out.read_text())
    entries = {e["_id"]: e for e in har["log"]["entries"]}
    assert sorted(entries) == sorted(ids.values())

    img = entries[ids["img"]]
    assert img["response"]["status"] == 200
    assert img["response"]["content"]["encoding"] == "base64"
    assert base64.b64decode(img["response"]["content"]["text"]) == \
        nginx.files["img.jpg"]
    assert img["response"]["content"]["mimeType"] == "image/jpeg"
    assert {"name": "size", "value": "small"} in \
        img["request"]["queryString"]
    assert img["serverIPAddress"] == "127.0.0.1"
    assert img["timings"]["wait"] >= 0 and img["time"] > 0

    txt = entries[ids["txt"]]
    assert txt["response"]["content"]["text"] == \
        nginx.files["p2.txt"].decode()
    assert "encoding" not in txt["response"]["content"]

    form = entries[ids["form"]]
    assert form["request"]["method"] == "POST"
    assert form["request"]["postData"]["text"] == "user=alice&token=s3cret"
    assert form["request"]["postData"]["mimeType"] == \
        "application/x-www-form-urlencoded"
    assert {"name": "theme", "value": "dark"} in form["request"]["cookies"]
    assert {"name": "X-Test", "value": "export"} in \
        form["request"]["headers"]

    medium = entries[ids["medium"]]
    assert "truncated at 65536 of %d bytes" % \
        len(nginx.files["medium.bin"]) in medium["comment"]
    assert medium["response"]["content"]["size"] == \
        len(nginx.files["medium.bin"])
    assert len(base64.b64decode(
        medium["response"]["content"]["text"])) == 65536

    refused = entries[ids["refused"]]
    assert refused["response"]["status"] == 502  # the proxy's own answer
    assert refused["_error"] and "error:" in refused["comment"]

    assert entries[ids["missing"]]["response"]["status"] == 404

    # --filter picks entries; - writes to stdout
    cp = run_cli("export", "har", "-", "--filter", "~m POST", "--db", p.db)
    assert cp.returncode == 0, cp.stderr
    assert sorted(e["_id"] for e in json.loads(cp.stdout)["log"]["entries"]) \
        == sorted([ids["form"], ids["binary"]])


def _run_exported(cmd, out):
    """Run a printed curl command straight at the origin."""
    return subprocess.run(
        ["/bin/bash", "-c", cmd.rstrip("\n") + f" -sS --noproxy '*' "
         f"-o {out} -w '%{{http_code}}'"],
        capture_output=True, text=True, timeout=30,
        env={"PATH": "/usr/bin:/bin"})


def test_curl_command_sends_the_same_request(capture, nginx, tmp_path):
    p, ids = capture["proxy"], capture["ids"]
    for name, body in (("form", b"user=alice&token=s3cret"),
                       ("binary", capture["binary"])):
        cp = run_cli("export", "curl", ids[name], "--db", p.db)
        assert cp.returncode == 0, cp.stderr
        assert cp.stdout.startswith("printf" if b"\0" in body else "curl")
        t2 = token()
        cmd = cp.stdout.replace(capture["t"], t2)
        r = _run_exported(cmd, tmp_path / f"{name}.out")
        assert r.returncode == 0, (cmd, r.stderr)
        assert r.stdout == "200"
        assert (tmp_path / f"{name}.out").read_bytes() == b"ok\n"
        es = nginx.wait_entries(t2)
        assert len(es) == 1, es
        assert es[0]["method"] == "POST"
        assert es[0]["body"] == body.decode()
        assert es[0]["content_length"] == str(len(body))
        if name == "form":
            assert es[0]["h_x_test"] == "export"

    # a GET: the same response as the proxy got
    cp = run_cli("export", "curl", ids["img"], "--db", p.db)
    r = _run_exported(cp.stdout, tmp_path / "img.out")
    assert r.stdout == "200", r.stderr
    assert (tmp_path / "img.out").read_bytes() == nginx.files["img.jpg"]

    cp = run_cli("export", "curl", "999999", "--db", p.db)
    assert cp.returncode == 1 and "no request 999999" in cp.stderr
    cp = run_cli("export", "curl", "--db", p.db)
    assert cp.returncode == 2


def test_curl_refuses_a_truncated_body(start_proxy, nginx, tmp_path):
    p = start_proxy(conf_extra={"body-capture-limit": "1K"})
    t = token()
    body = os.urandom(5000).hex()
    r = p.curl(f"http://127.0.0.1:{nginx.port}/upload?t={t}",
               "--data-binary", body)
    assert r.code == 200
    assert p.stop() == 0
    cp = run_cli("export", "curl", "1", "--db", p.db)
    assert cp.returncode == 1
    assert "truncated" in cp.stderr and "--allow-truncated" in cp.stderr
    cp = run_cli("export", "curl", "1", "--allow-truncated", "--db", p.db)
    assert cp.returncode == 0 and "--data-binary" in cp.stdout


def test_bodies_written_byte_for_byte(capture, nginx, tmp_path):
    p, ids = capture["proxy"], capture["ids"]
    d = tmp_path / "bodies"
    cp = run_cli("export", "bodies", d, "--request-bodies", "--db", p.db)
    assert cp.returncode == 0, cp.stderr
    assert (d / f"{ids['img']}.jpg").read_bytes() == nginx.files["img.jpg"]
    assert (d / f"{ids['txt']}.txt").read_bytes() == nginx.files["p2.txt"]
    partial = d / f"{ids['medium']}.partial.bin"
    assert partial.read_bytes() == nginx.files["medium.bin"][:65536]
    assert (d / f"{ids['form']}.request.txt").read_bytes() == \
        b"user=alice&token=s3cret"
    assert (d / f"{ids['binary']}.request.bin").read_bytes() == \
        capture["binary"]
    # the proxy's own 502 page is recorded with its body, like any answer
    assert (d / f"{ids['refused']}.txt").read_bytes().startswith(
        b"502 Bad Gateway\n")
    assert f"{ids['img']}.jpg" in cp.stdout

    # nothing is overwritten unless asked
    cp = run_cli("export", "bodies", d, str(ids["img"]), "--db", p.db)
    assert cp.returncode == 1 and "--force" in cp.stderr
    cp = run_cli("export", "bodies", d, str(ids["img"]), "--force",
                 "--db", p.db)
    assert cp.returncode == 0, cp.stderr
    # a filter picks the images
    d2 = tmp_path / "images"
    cp = run_cli("export", "bodies", d2, "--filter", "~ts image/",
                 "--db", p.db)
    assert cp.returncode == 0, cp.stderr
    assert [f.name for f in d2.iterdir()] == [f"{ids['img']}.jpg"]
