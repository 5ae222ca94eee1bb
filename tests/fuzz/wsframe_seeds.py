#!/usr/bin/env python3
"""Write the seed corpus of fuzz_wsframe to tests/fuzz/corpus/wsframe/.

Each seed is 3 set-up bytes (see fuzz_wsframe.c) then the stream:
  byte 0: bit 0 dir, bit 1 permessage-deflate, bit 2 client / bit 3 server
          no_context_takeover, bit 4 framed mode (records, not raw bytes);
  byte 1: window bits - 8, client in bits 0-2, server in bits 3-5;
  byte 2: capture limit index (0, 1, 2, 3, 16, 125, 200, 4096).
Run from the top of the tree: python3 tests/fuzz/wsframe_seeds.py
"""
import os
import struct
import zlib

KEY = bytes([0x37, 0xFA, 0x21, 0x3D])
OUT = "tests/fuzz/corpus/wsframe"


def frame(op, payload, fin=True, rsv1=False, mask=False):
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | op
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        h = bytes([b0, m | n])
    elif n <= 0xFFFF:
        h = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        h = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if mask:
        payload = bytes(c ^ KEY[i & 3] for i, c in enumerate(payload))
        h += KEY
    return h + payload


def pmd_msgs(texts, wbits=15, reset=False):
    z = zlib.compressobj(9, zlib.DEFLATED, -wbits)
    out = []
    for t in texts:
        if reset:
            z = zlib.compressobj(9, zlib.DEFLATED, -wbits)
        c = z.compress(t) + z.flush(zlib.Z_SYNC_FLUSH)
        assert c.endswith(b"\x00\x00\xff\xff")
        out.append(c[:-4])
    return out


def bfinal(t):
    """A message flushed with a final block and the 00 octet, RFC 7692
    7.2.3.4."""
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    return z.compress(t) + z.flush() + b"\x00"


def record(b0, payload, mask=False):
    assert len(payload) < 128
    return bytes([b0, (0x80 if mask else 0) | len(payload)]) + payload


def main():
    os.makedirs(OUT, exist_ok=True)
    txt = [b"hello hello hello websocket", b"hello again, websocket hello"]
    c = pmd_msgs(txt)
    seeds = {
        "hello": b"\x01\x3f\x07" + frame(1, b"Hello")
        + frame(1, b"Hello", mask=True),
        "fragments": b"\x00\x3f\x04" + frame(1, b"Hel", fin=False, mask=True)
        + frame(9, b"ping", mask=True) + frame(0, b"lo", mask=True)
        + frame(8, b"\x03\xe8bye", mask=True),
        "len126": b"\x01\x3f\x05" + frame(2, bytes(range(256)) * 2),
        "close": b"\x01\x3f\x07" + frame(8, b"\x03\xe9going away")
        + frame(8, b""),
        "pmd_takeover": b"\x02\x3f\x07"
        + b"".join(frame(1, m, rsv1=True, mask=True) for m in c),
        "pmd_no_takeover": b"\x0b\x3f\x07"
        + b"".join(frame(1, m, rsv1=True)
                   for m in pmd_msgs(txt, reset=True)),
        "pmd_window9": b"\x03\x09\x07"
        + b"".join(frame(2, m, rsv1=True) for m in pmd_msgs(txt, 9)),
        "pmd_bfinal": b"\x03\x3f\x07" + frame(1, bfinal(txt[0]), rsv1=True),
        "framed_pmd": b"\x12\x3f\x06" + record(0xC1, c[0][:5], mask=True)
        + record(0x89, b"p") + record(0x80, c[0][5:]) + record(0xC1, c[1]),
        "framed_plain": b"\x10\x3f\x04" + record(0x01, b"abc")
        + record(0x8A, b"") + record(0x80, b"def", mask=True)
        + record(0x88, b"\x03\xe8"),
        # the harness also parses every input as an extensions header
        "ext_header": b"permessage-deflate; client_max_window_bits=10; "
        b'server_no_context_takeover, x-foo; a="b\\"c"',
    }
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
