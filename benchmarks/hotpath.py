#!/usr/bin/env python3
"""The per-request cost of degu's hot paths, without sockets or scheduling noise.

``python3 benchmarks/hotpath.py [--baseline DIR] [--count N] [--reps R]``

Two loops, each in this process over an in-memory socket (``recv_into`` and
``send`` on bytes, nothing else):

``server``
    ``Server``'s request loop reading N pipelined keep-alive GETs (a browser's
    header block) and answering each with a 12-byte body.
``client``
    A ``Connection`` making N GETs and reading N canned 12-byte responses.

It prints the best of R runs in microseconds per request.  With
``--baseline DIR`` each loop also runs, interleaved, in a child process that
imports the degu of another checkout (a git worktree of an older commit):
the way to see what a change costs on the hot path, where run.py's
round trips between processes vary by ten percent from run to run.  Under
``valgrind --tool=callgrind`` (``--count`` small) the instruction counts are
exact and repeatable.
"""

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

REQUEST = (
    b'GET /api/items?page=2 HTTP/1.1\r\n'
    b'Host: example.com:8080\r\n'
    b'User-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0\r\n'
    b'Accept: application/json\r\n'
    b'Accept-Encoding: gzip, deflate\r\n'
    b'Connection: keep-alive\r\n\r\n'
)
RESPONSE = (
    b'HTTP/1.1 200 OK\r\ncontent-length: 12\r\ncontent-type: text/plain\r\n'
    b'date: Wed, 02 Dec 2026 00:00:00 GMT\r\n\r\nHello, World'
)


class MemorySocket:
    """What SocketWrapper needs of a socket: ``recv_into`` from bytes, ``send`` into nothing.

    Each ``recv_into`` returns at most one message (*unit* bytes), as a peer
    that waits for each answer before it sends again.
    """

    def __init__(self, data, unit):
        self._data = memoryview(data)
        self._pos = 0
        self._unit = unit
        self.family = None

    def settimeout(self, timeout):
        pass

    def recv_into(self, buf):
        size = min(len(buf), len(self._data) - self._pos, self._unit)
        buf[:size] = self._data[self._pos : self._pos + size]
        self._pos += size
        return size

    def send(self, data):
        return len(data)

    def close(self):
        pass

    def fileno(self):
        return -1


def app(session, request, api):
    return (200, 'OK', {'content-type': 'text/plain'}, b'Hello, World')


def server_loop(count):
    from degu.base import Session
    from degu.server import Server, _Connection

    # idle_timeout == timeout: no settimeout() between requests, as with a
    # real socket, whose timeouts the kernel enforces.
    server = Server(b'', app, max_requests=count + 1, timeout=15, idle_timeout=15)
    try:
        sock = MemorySocket(REQUEST * count, len(REQUEST))
        session = Session(('127.0.0.1', 1234), None, count + 1)
        (handle, transport, failures) = _request_loop(server, sock)
        t0 = time.perf_counter()
        handle(_Connection(sock), session, transport, *failures)
        elapsed = time.perf_counter() - t0
        assert session.requests == count, (session.requests, session.message)
    finally:
        server.sock.close()
    return elapsed


def _request_loop(server, sock):
    """The server's request loop and what it takes, in this checkout or an older one.

    Since the transport layer, the loop reads from a ``Transport`` and is
    told where body failures go; before, it took the socket itself.
    """
    import inspect

    handle = server._handle_requests
    if 'failures' not in inspect.signature(handle).parameters:
        return (handle, sock, ())
    from degu._transport import START_BUF_LEN, Transport

    failures = []
    transport = Transport(sock, timeout=15, idle_timeout=15, on_failure=failures.append,
                          buffer_size=START_BUF_LEN)
    return (handle, transport, (failures,))


def client_loop(count):
    from degu.client import Connection

    sock = MemorySocket(RESPONSE * count, len(RESPONSE))
    conn = Connection(sock, (('host', 'example.com:8080'),))
    get = conn.get
    t0 = time.perf_counter()
    for _ in range(count):
        get('/api/items?page=2', {'accept': 'application/json'}).body.read()
    return time.perf_counter() - t0


LOOPS = {'server': server_loop, 'client': client_loop}


def run(name, count, reps, path=None):
    """Best µs/request of *reps* runs, here or (with *path*) in a child on that checkout."""
    if path is None:
        return min(LOOPS[name](count) for _ in range(reps)) / count * 1e6
    env = {**os.environ, 'PYTHONPATH': os.path.abspath(path)}
    cmd = [sys.executable, __file__, '--one', name, '--count', str(count), '--reps', str(reps)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return float(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--count', type=int, default=20000, help='requests per run')
    parser.add_argument('--reps', type=int, default=5, help='runs (the best counts)')
    parser.add_argument('--rounds', type=int, default=3, help='interleaved rounds')
    parser.add_argument('--baseline', metavar='DIR', help='a checkout to compare with')
    parser.add_argument('--one', choices=LOOPS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:  # a child of --baseline: print one number
        print(run(args.one, args.count, args.reps))
        return 0
    sys.path.insert(0, os.path.join(HERE, '..'))
    for name in LOOPS:
        here, base = [], []
        for _ in range(args.rounds):
            here.append(run(name, args.count, args.reps))
            if args.baseline:
                base.append(run(name, args.count, args.reps, args.baseline))
        line = f'{name:8} {min(here):7.2f} µs/request'
        if args.baseline:
            line += f'   baseline {min(base):7.2f} µs/request   ratio {min(here) / min(base):.3f}'
        print(line)
    return 0


if __name__ == '__main__':
    sys.exit(main())
