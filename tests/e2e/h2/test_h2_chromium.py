"""
Headless Chromium loads a page (HTML, a stylesheet, a script) from nginx
over HTTP/2 through the proxy's CONNECT tunnel, peephole's CA trusted via
an NSS database (as tests/e2e/browser does). The script must have run, and
every resource must be a request row with req_version '2' on an h2
connection.
"""
from browser.test_chromium import (CERTUTIL, CHROMIUM, make_nssdb, need,
                                   run_chromium)

from .conftest import PAGE_MARKER, h2_rows, start_h2_proxy


def test_chromium_page_over_h2(tls_proxy, certs, h2_nginx, tmp_path):
    need(CHROMIUM, "chromium")
    need(CERTUTIL, "libnss3-tools")
    p = start_h2_proxy(tls_proxy, certs)
    make_nssdb(tmp_path / "chrome-home", p.ca_pem)
    port = h2_nginx.ports["h2"]
    rc, dom, err = run_chromium(tmp_path, p.port,
                                f"https://alpha.test:{port}/page.html")
    why = (f"chromium rc={rc}\nDOM:\n{dom[-2000:]}\nchromium stderr "
           f"tail:\n{err[-3000:]}\nproxy stderr tail:\n{p.stderr()[-2000:]}")
    assert rc == 0, why
    assert PAGE_MARKER in dom, why

    p.stop()
    rows = h2_rows(p, "method = 'GET' AND port = ?", (port,))
    got = {r["path"]: r for r in rows}
    assert {"/page.html", "/style.css", "/app.js"} <= set(got), \
        [(r["path"], r["status"], r["req_version"]) for r in rows]
    for path in ("/page.html", "/style.css", "/app.js"):
        r = got[path]
        assert (r["status"], r["req_version"], r["up_version"]) == \
            (200, "2", None), r
        assert r["stream_id"] is not None and r["stream_id"] % 2 == 1, r
        assert r["resp_body_size"] == len(h2_nginx.files[path[1:]])
    conns = p.rows("SELECT * FROM connections WHERE target_port = ?",
                   (port,))
    assert conns and all(c["alpn_client"] == "h2" and
                         c["alpn_server"] == "h2" for c in conns), conns
    # Chromium offers h2 and http/1.1
    assert all(c["alpn"] == "h2,http/1.1" for c in conns), conns
