"""
The WebSocket fixtures without the proxy: the same conversation the proxy
tests run, straight to the servers, with and without permessage-deflate.
"""
from conftest import token

from .conftest import (CLOSE_CODE, CLOSE_REASON, FRAGMENTS, assert_client_got,
                       client_ctx, converse, direct_socket)


def test_wss_server_direct_deflate(wss_server, certs):
    t = token()
    got = converse(f"wss://alpha.test:{wss_server.port}/echo?t={t}",
                   direct_socket(wss_server.port), client_ctx(certs.ca),
                   "alpha.test")
    assert_client_got(got, "deflate")
    # the server got one message for the three fragments
    msgs = [m for p, m in wss_server.received if t in p]
    assert msgs[2] == "".join(FRAGMENTS) and len(msgs) == 4
    assert wss_server.extensions[-1] == ["permessage-deflate"]


def test_ws_server_direct_no_compression(ws_server):
    t = token()
    got = converse(f"ws://alpha.test:{ws_server.port}/echo?t={t}",
                   direct_socket(ws_server.port), compression=None)
    assert_client_got(got, None)
    assert ws_server.extensions[-1] == []
    assert ws_server.saw_close(CLOSE_CODE, CLOSE_REASON), \
        ws_server.close_codes
