#!/usr/bin/python3
"""A tiny DNS server for tests: UDP on 127.0.0.1, answers from a JSON zone file.

  dns_server.py ZONE.json [PORT]

Prints the port it listens on (one line), then serves until its standard input
closes (so it never outlives the test that started it). The zone maps a name to
its records:

  {"example.com": {"A": ["192.0.2.1"], "AAAA": ["2001:db8::1"], "MX": [[10, "mx.example.com"]],
                   "TXT": ["some text"], "PTR": ["host.example.com"], "CNAME": "other.example.com"},
   "broken.example": {"rcode": "SERVFAIL"},   # or REFUSED
   "slow.example": {"drop": true}}            # never answers (a timeout)

A name that is not in the zone is NXDOMAIN; a name without the asked type is
NODATA (NOERROR, no answers). A CNAME is answered with the alias and, as a
recursive server does, the target's records of the asked type.
"""
import json
import socket
import struct
import sys
import threading

TYPES = {1: "A", 28: "AAAA", 15: "MX", 16: "TXT", 12: "PTR", 5: "CNAME"}
RCODES = {"NOERROR": 0, "SERVFAIL": 2, "NXDOMAIN": 3, "REFUSED": 5}


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def decode_question(packet):
    """(id, flags, name, qtype, end of question) of a query."""
    ident, flags = struct.unpack("!HH", packet[:4])
    at, labels = 12, []
    while packet[at]:
        length = packet[at]
        labels.append(packet[at + 1:at + 1 + length].decode())
        at += 1 + length
    qtype, _ = struct.unpack("!HH", packet[at + 1:at + 5])
    return ident, flags, ".".join(labels), qtype, at + 5


def rdata(kind, value):
    if kind == "A":
        return socket.inet_pton(socket.AF_INET, value)
    if kind == "AAAA":
        return socket.inet_pton(socket.AF_INET6, value)
    if kind == "MX":
        return struct.pack("!H", value[0]) + encode_name(value[1])
    if kind == "TXT":
        data = value.encode()
        return b"".join(bytes([len(data[i:i + 255])]) + data[i:i + 255] for i in range(0, max(len(data), 1), 255))
    return encode_name(value)  # PTR, CNAME


def record(name, kind, value):
    code = {v: k for k, v in TYPES.items()}[kind]
    data = rdata(kind, value)
    return encode_name(name) + struct.pack("!HHIH", code, 1, 60, len(data)) + data


def answer(zone, packet):
    ident, flags, name, qtype, end = decode_question(packet)
    key = name.lower()
    kind = TYPES.get(qtype)
    answers, rcode = [], 0
    for _ in range(8):
        entry = zone.get(key)
        if entry is None:
            rcode = 0 if answers else 3
            break
        if entry.get("drop"):
            return None
        if "rcode" in entry:
            rcode = RCODES[entry["rcode"]]
            break
        if "CNAME" in entry and kind != "CNAME":
            answers.append(record(key, "CNAME", entry["CNAME"]))
            if entry.get("alias_only"):
                break
            key = entry["CNAME"].lower()
            continue
        answers += [record(key, kind, v) for v in entry.get(kind, [])]
        break
    header = struct.pack("!HHHHHH", ident, 0x8180 | (flags & 0x0100) | rcode, 1, len(answers), 0, 0)
    return header + packet[12:end] + b"".join(answers)


def main():
    with open(sys.argv[1]) as f:
        zone = {k.lower().rstrip("."): v for k, v in json.load(f).items()}
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", int(sys.argv[2]) if len(sys.argv) > 2 else 0))
    print(sock.getsockname()[1], flush=True)

    def serve():
        while True:
            packet, peer = sock.recvfrom(4096)
            try:
                reply = answer(zone, packet)
            except (IndexError, struct.error, UnicodeDecodeError):
                continue  # not a query we understand
            if reply is not None:
                sock.sendto(reply, peer)

    threading.Thread(target=serve, daemon=True).start()
    sys.stdin.read()


if __name__ == "__main__":
    main()
