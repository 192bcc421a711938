"""SIP over UDP for the molecule scenarios' tests, run on their hosts.

    python3 sip_tool.py request OPTIONS 198.18.100.11 [--timeout 2]
    python3 sip_tool.py request REGISTER 198.18.100.11 --user alice
    python3 sip_tool.py burst INVITE 198.18.100.11 --count 100
    python3 sip_tool.py flood INVITE 198.18.103.11 198.18.103.12 \
        --rate 500 --seconds 300 --stop-file /run/flood.stop
    python3 sip_tool.py junk - 198.18.100.11 --count 10

`request` sends one request from a socket of its own and prints the
status line of the final answer (exit 0), or `no answer` (exit 1).
`burst` builds COUNT requests with scapy, each with its own Call-ID, sends
them all at once without waiting for answers, and prints how many it
sent; COUNT is at most 10000.
`flood` sends RATE requests a second to each target, paced, until the
stop file appears, SECONDS have passed or 200000 went to each target,
and prints {target: sent} as JSON.
`junk` sends COUNT datagrams that are not SIP to the SIP port.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import sys
import time

SIP_PORT = 5060
BURST_SOURCE_PORT = 5070
MAX_BURST = 10000
MAX_FLOOD = 200000
JUNK = b"\x00\x01 not a SIP message \xff" * 4


def build_request(method: str, target: str, user: str, local: str,
                  port: int) -> bytes:
    uri = ("sip:%s@%s" % (user, target) if method == "INVITE"
           else "sip:%s" % target)
    lines = [
        "%s %s SIP/2.0" % (method, uri),
        "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK%s;rport"
        % (local, port, secrets.token_hex(8)),
        "Max-Forwards: 70",
        "From: <sip:%s@%s>;tag=%s" % (user, target, secrets.token_hex(4)),
        "To: <sip:%s@%s>" % (user, target),
        "Call-ID: %s@%s" % (secrets.token_hex(8), local),
        "CSeq: 1 %s" % method,
        "Contact: <sip:%s@%s:%d>" % (user, local, port),
    ]
    if method == "REGISTER":
        lines.append("Expires: 300")
    lines += ["User-Agent: vos-fastpath-molecule", "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def request(method: str, target: str, user: str, timeout: float) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((target, SIP_PORT))
        local, port = sock.getsockname()
        sock.send(build_request(method, target, user, local, port))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                answer = sock.recv(65535)
            except (TimeoutError, ConnectionRefusedError):
                break
            status = answer.split(b"\r\n", 1)[0].decode(errors="replace")
            if not status.startswith("SIP/2.0 1"):
                print(status)
                return 0
    print("no answer")
    return 1


def burst(method: str, target: str, user: str, count: int) -> int:
    from scapy.all import IP, UDP, Raw, send  # only the scanner needs it

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((target, SIP_PORT))
        local = sock.getsockname()[0]
    frames = [
        IP(src=local, dst=target)
        / UDP(sport=BURST_SOURCE_PORT, dport=SIP_PORT)
        / Raw(build_request(method, target, user, local, BURST_SOURCE_PORT))
        for _frame in range(count)
    ]
    send(frames, verbose=False)
    print(count)
    return 0


def flood(method: str, targets: list[str], user: str, rate: int,
          seconds: float, stop_file: str) -> int:
    sent = dict.fromkeys(targets, 0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((targets[0], SIP_PORT))
        local = probe.getsockname()[0]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((local, BURST_SOURCE_PORT))
        start = time.monotonic()
        for n in range(MAX_FLOOD):
            # Paced: the n-th round goes out n/rate seconds after the start.
            pause = start + n / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            if time.monotonic() - start > seconds or (
                    n % 50 == 0 and os.path.exists(stop_file)):
                break
            for target in targets:
                sock.sendto(build_request(method, target, user, local,
                                          BURST_SOURCE_PORT),
                            (target, SIP_PORT))
                sent[target] += 1
    print(json.dumps(sent))
    return 0


def junk(target: str, count: int) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _datagram in range(count):
            sock.sendto(JUNK, (target, SIP_PORT))
    print(count)
    return 0


def main(argv: list[str]) -> int:
    summary = __doc__.split("\n", maxsplit=1)[0]
    parser = argparse.ArgumentParser(description=summary)
    parser.add_argument("action", choices=["request", "burst", "flood",
                                           "junk"])
    parser.add_argument("method",
                        choices=["OPTIONS", "REGISTER", "INVITE", "-"])
    parser.add_argument("targets", nargs="+", metavar="target",
                        help="IPv4 address of a SIP server")
    parser.add_argument("--user", default="molecule")
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--stop-file", default="/run/sip_tool_flood.stop")
    args = parser.parse_args(argv)
    if (args.method == "-") != (args.action == "junk"):
        parser.error("junk takes '-' as its method, the others a SIP method")
    if args.action == "flood":
        if not 1 <= args.rate <= 10000:
            parser.error("--rate must be 1 to 10000")
        return flood(args.method, args.targets, args.user, args.rate,
                     args.seconds, args.stop_file)
    if len(args.targets) != 1:
        parser.error("%s takes one target" % args.action)
    (target,) = args.targets
    if args.action == "request":
        return request(args.method, target, args.user, args.timeout)
    if not 1 <= args.count <= MAX_BURST:
        parser.error("--count must be 1 to %d" % MAX_BURST)
    if args.action == "junk":
        return junk(target, args.count)
    return burst(args.method, target, args.user, args.count)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
