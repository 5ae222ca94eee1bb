"""
Text tables on a terminal: `requests`, `domains` and `streams` run under a
pseudo-terminal of 80x24 must fit 80 columns, cut long URLs in the middle
with '…', colour status classes unless NO_COLOR, and print full cells with
--wide or into a pipe. Times are local (TZ=Asia/Tokyo here) unless --utc.
"""
import errno
import fcntl
import os
import re
import select
import struct
import subprocess
import termios
import time

import pytest

from conftest import PEEPHOLE_BIN, run_cli, token

ANSI = re.compile(r"\x1b\[[0-9;]*m")
TAIL = "/v1/items?id=3"


def cli_env(**extra):
    env = dict(os.environ)
    for k in ("COLUMNS", "NO_COLOR", "TZ"):
        env.pop(k, None)
    env["TZ"] = "Asia/Tokyo"
    env.update(extra)
    return env


def run_pty(*args, cols=80, rows=24, env=None, timeout=20):
    """Run `peephole ARGS` with stdout on a pty of cols x rows; returns
    (exit status, output with CRLF turned back into LF)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols,
                                                       0, 0))
    try:
        p = subprocess.Popen([PEEPHOLE_BIN] + [str(a) for a in args],
                             stdin=subprocess.DEVNULL, stdout=slave,
                             stderr=subprocess.PIPE,
                             env=env if env is not None else cli_env())
    finally:
        os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.5)
            if not r:
                if p.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError as e:
                if e.errno == errno.EIO:  # the child closed the pty
                    break
                raise
            if not chunk:
                break
            out += chunk
        rc = p.wait(timeout=max(1, deadline - time.monotonic()))
    finally:
        os.close(master)
        if p.poll() is None:
            p.kill()
            p.wait()
    return rc, out.decode("utf-8").replace("\r\n", "\n")


def widths(text):
    return [len(ANSI.sub("", ln)) for ln in text.splitlines()]


@pytest.fixture
def long_capture(proxy, nginx):
    """One request with a URL far wider than a terminal (a 404 from
    nginx), one short one (a 200)."""
    t = token()
    seg = "/".join("segment%02d-%s" % (i, t) for i in range(12))
    long_url = nginx.url("alpha.test", f"/{seg}{TAIL}")
    assert len(long_url) > 200
    assert proxy.curl(long_url).code == 404
    assert proxy.curl(nginx.url("beta.test", f"/small?t={t}")).code == 200
    time.sleep(0.2)
    assert proxy.stop() == 0
    return {"proxy": proxy, "url": long_url, "db": proxy.db}


@pytest.mark.parametrize("cmd", [["requests"], ["domains"], ["streams"],
                                 ["passthrough", "list"]])
def test_tables_fit_80_columns(long_capture, cmd):
    rc, out = run_pty(*cmd, "--db", long_capture["db"])
    assert rc == 0, out
    assert all(w <= 80 for w in widths(out)), out


def test_long_url_cut_in_the_middle(long_capture):
    url = long_capture["url"]
    host = url[:url.index("/", len("http://")) + 1]
    for cols in ("80", "120"):
        rc, out = run_pty("requests", "--db", long_capture["db"],
                          env=cli_env(COLUMNS=cols))
        assert rc == 0, out
        plain = ANSI.sub("", out)
        assert url not in plain
        line = next(ln for ln in plain.splitlines() if host + "…" in ln)
        # scheme and host, "…", then the end of the URL
        cell = line.split(host + "…", 1)[1].split()[0]
        assert len(cell) >= 8 and url.endswith(cell), line
    assert TAIL in line, line  # with room, from a slash


def test_pipe_and_wide_print_full_url(long_capture):
    url = long_capture["url"]
    cp = run_cli("requests", "--db", long_capture["db"])
    assert cp.returncode == 0, cp.stderr
    assert url in cp.stdout and "…" not in cp.stdout
    assert "\x1b[" not in cp.stdout  # no colour into a pipe
    rc, out = run_pty("requests", "--wide", "--db", long_capture["db"])
    assert rc == 0, out
    assert url in ANSI.sub("", out)
    assert max(widths(out)) > 200


def test_csv_and_json_never_cut(long_capture):
    url = long_capture["url"]
    for fmt in ("--csv", "--json"):
        rc, out = run_pty("requests", fmt, "--db", long_capture["db"])
        assert rc == 0, out
        assert url in out and "…" not in out and "\x1b[" not in out


def test_colour_only_on_a_tty_without_no_color(long_capture):
    db = long_capture["db"]
    rc, out = run_pty("requests", "--db", db)
    assert rc == 0
    assert "\x1b[32m200\x1b[0m" in out  # 2xx green
    assert "\x1b[33m404\x1b[0m" in out  # 4xx yellow
    rc, out = run_pty("requests", "--db", db, env=cli_env(NO_COLOR="1"))
    assert rc == 0
    assert "\x1b[" not in out and "200" in out


def test_columns_env_overrides_the_terminal(long_capture):
    rc, out = run_pty("requests", "--db", long_capture["db"],
                      env=cli_env(COLUMNS="120"))
    assert rc == 0
    assert max(widths(out)) <= 120 and max(widths(out)) > 80


def test_local_time_and_utc(long_capture):
    db = long_capture["db"]
    rows = {r["id"]: r for r in long_capture["proxy"].dbh().requests()}
    first = min(rows)
    us = rows[first]["t_start_us"]
    utc = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(us // 1000000))
    tokyo = time.strftime("%Y-%m-%d %H:%M:%S",
                          time.gmtime(us // 1000000 + 9 * 3600))
    rc, out = run_pty("requests", "--db", db)
    assert rc == 0
    plain = ANSI.sub("", out)
    assert "TIME (JST)" in plain.splitlines()[0]
    assert tokyo in plain and utc not in plain
    rc, out = run_pty("requests", "--utc", "--db", db)
    assert rc == 0
    assert utc in out and tokyo not in out
    # machine formats stay ISO-8601 UTC whatever the zone
    cp = subprocess.run([PEEPHOLE_BIN, "requests", "--csv", "--db", db],
                        capture_output=True, text=True, env=cli_env(),
                        timeout=30)
    assert utc in cp.stdout and tokyo not in cp.stdout
