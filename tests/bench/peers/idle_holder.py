#!/usr/bin/python3
"""Hold N idle TLS connections open, for tests/bench/peers.py.

Each connection: TCP to --connect (the proxy, or the origin / a static
forwarder), with --proxy-connect HOST:PORT a CONNECT to that target first,
then a full TLS handshake verified against --ca for --name. Nothing is sent
after the handshake. When all are up (or failed) it prints one JSON line
{"ok": n, "errors": n, "first_error": "..."} and then sleeps until stdin
closes or --hold seconds pass, whichever is first, and exits (closing all).

Bounded: every socket has a --timeout; the set-up stops at --setup-limit
seconds (the rest are counted as errors).

Stdlib only.
"""

import argparse
import json
import resource
import select
import socket
import ssl
import sys
import time


def open_one(args, ctx):
    host, port = args.connect.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=args.timeout)
    try:
        if args.proxy_connect:
            s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n"
                       % (args.proxy_connect, args.proxy_connect)).encode())
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    raise OSError("proxy closed during CONNECT")
                buf += chunk
                if len(buf) > 16384:
                    raise OSError("CONNECT response too long")
            head, _, rest = buf.partition(b"\r\n\r\n")
            if rest or not head.startswith(b"HTTP/1.") or \
                    head[9:12] != b"200":
                raise OSError("CONNECT: %r" % head[:60])
        t = ctx.wrap_socket(s, server_hostname=args.name)
        t.settimeout(None)
        return t
    except BaseException:
        s.close()
        raise


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connect", required=True)
    ap.add_argument("--proxy-connect")
    ap.add_argument("--name", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--timeout", type=float, default=10)
    ap.add_argument("--setup-limit", type=float, default=90)
    ap.add_argument("--hold", type=float, default=60)
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.n + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (min(want, hard) if hard != resource.RLIM_INFINITY
                            else want, hard))

    ctx = ssl.create_default_context(cafile=args.ca)
    # No resumption: every tunnel gets a full handshake.
    ctx.options |= ssl.OP_NO_TICKET
    held = []
    errors = 0
    first = ""
    deadline = time.monotonic() + args.setup_limit
    for _ in range(args.n):
        if time.monotonic() >= deadline:
            errors += 1
            first = first or "set-up limit of %gs reached" % args.setup_limit
            continue
        try:
            held.append(open_one(args, ctx))
        except (OSError, ssl.SSLError) as e:
            errors += 1
            first = first or repr(e)
    print(json.dumps({"ok": len(held), "errors": errors,
                      "first_error": first}), flush=True)
    # Hold until the harness closes our stdin (or the bound passes).
    end = time.monotonic() + args.hold
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([sys.stdin], [], [], left)
        if r and not sys.stdin.buffer.read1(4096):
            break
    for t in held:
        try:
            t.close()
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
