#!/usr/bin/env python3
"""Requests/second of keep-alive GETs: degu.server vs http.server.

Not a test: a measurement.  Each server runs in its own process pinned to
CPU 0; the load generator (one process, non-blocking sockets driven by a
selector, one request in flight per connection) runs pinned to CPU 1.  The
implementations are interleaved (A B A B ...) and the median is reported.

    python3 benchmarks/server_bench.py [--seconds 3] [--reps 3] [--conns 1,16]
"""

import argparse
import json
import multiprocessing
import os
import selectors
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

BODY = b'Hello, World'  # 12 bytes
REQUEST = b'GET /hello HTTP/1.1\r\nHost: bench\r\n\r\n'


def _pin(cpu):
    if cpu is not None and hasattr(os, 'sched_setaffinity'):
        os.sched_setaffinity(0, {cpu})


def degu_app(session, request, api):
    return (200, 'OK', {'content-type': 'text/plain'}, BODY)


def run_degu(queue, cpu):
    _pin(cpu)
    from degu.server import Server

    server = Server(('127.0.0.1', 0), degu_app, max_connections=200, max_requests=75000)
    queue.put(server.address)
    server.serve_forever()


def run_stdlib(queue, cpu):
    _pin(cpu)
    import http.server

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'
        # Without this, the separate header and body writes meet Nagle and
        # delayed ACKs: 40 ms per request.  Compare against the best stdlib.
        disable_nagle_algorithm = True

        def do_GET(self):
            self.send_response(200)
            self.send_header('Content-Type', 'text/plain')
            self.send_header('Content-Length', str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            pass  # the load generator hanging up at the end is not news

    server = Server(('127.0.0.1', 0), Handler)
    queue.put(server.server_address)
    server.serve_forever()


SERVERS = {'degu': run_degu, 'http.server': run_stdlib}


class _Conn:
    __slots__ = ('sock', 'buf', 'need')

    def __init__(self, address):
        self.sock = socket.create_connection(address, timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.buf = b''
        self.need = None


def _complete(conn):
    """True when conn.buf holds a whole response (which it then removes)."""
    if conn.need is None:
        end = conn.buf.find(b'\r\n\r\n')
        if end < 0:
            return False
        head = conn.buf[:end].lower()
        i = head.find(b'content-length:')
        length = int(head[i + 15 : head.find(b'\r\n', i) if head.find(b'\r\n', i) > 0 else None])
        conn.need = end + 4 + length
    if len(conn.buf) < conn.need:
        return False
    conn.buf = conn.buf[conn.need :]
    conn.need = None
    return True


def load(address, conns, seconds):
    """Drive *conns* keep-alive connections for *seconds*; returns (requests, latencies)."""
    sel = selectors.DefaultSelector()
    clients = [_Conn(address) for _ in range(conns)]
    started = {}
    latencies = []
    count = 0
    deadline = time.perf_counter() + seconds
    for c in clients:
        sel.register(c.sock, selectors.EVENT_READ, c)
        started[c] = time.perf_counter()
        c.sock.send(REQUEST)
    while True:
        now = time.perf_counter()
        if now >= deadline:
            break
        for key, _ in sel.select(1.0):
            c = key.data
            data = c.sock.recv(65536)
            if not data:
                raise RuntimeError('server closed a connection')
            c.buf += data
            while _complete(c):
                now = time.perf_counter()
                latencies.append(now - started[c])
                count += 1
                started[c] = now
                c.sock.send(REQUEST)
    for c in clients:
        c.sock.close()
    sel.close()
    return (count, latencies)


def _load_proc(address, conns, seconds, cpu, queue):
    _pin(cpu)
    queue.put(load(address, conns, seconds))


def measure(name, conns, seconds, server_cpu, client_cpu):
    ctx = multiprocessing.get_context('fork')
    queue = ctx.Queue()
    proc = ctx.Process(target=SERVERS[name], args=(queue, server_cpu), daemon=True)
    proc.start()
    try:
        address = queue.get(timeout=10)
        cpu0 = _cpu_time(proc.pid)
        loader = ctx.Process(target=_load_proc,
                             args=(address, conns, seconds, client_cpu, queue), daemon=True)
        loader.start()
        (count, latencies) = queue.get(timeout=seconds + 30)
        loader.join(10)
        cpu = _cpu_time(proc.pid) - cpu0
    finally:
        proc.terminate()
        proc.join(10)
    latencies.sort()
    return {
        'rps': count / seconds,
        'p50_ms': 1000 * latencies[len(latencies) // 2],
        'p99_ms': 1000 * latencies[int(len(latencies) * 0.99)],
        'cpu_us_per_req': 1e6 * cpu / max(count, 1),
    }


def _cpu_time(pid):
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=float, default=3.0)
    parser.add_argument('--reps', type=int, default=3)
    parser.add_argument('--conns', default='1,16')
    parser.add_argument('--pin', choices=('split', 'none'), default='split')
    parser.add_argument('--json', help='write the results to this file')
    args = parser.parse_args()
    (server_cpu, client_cpu) = (0, 1) if args.pin == 'split' else (None, None)
    results = {}
    for conns in [int(c) for c in args.conns.split(',')]:
        runs = {name: [] for name in SERVERS}
        for _ in range(args.reps):
            for name in SERVERS:  # interleaved: A B A B ...
                runs[name].append(measure(name, conns, args.seconds, server_cpu, client_cpu))
        for name, values in runs.items():
            rps = [v['rps'] for v in values]
            results[(name, conns)] = {
                'rps_median': statistics.median(rps),
                'rps_min': min(rps),
                'rps_max': max(rps),
                'p50_ms': statistics.median(v['p50_ms'] for v in values),
                'p99_ms': statistics.median(v['p99_ms'] for v in values),
                'cpu_us_per_req': statistics.median(v['cpu_us_per_req'] for v in values),
            }
    print(f'{"server":<12} {"conns":>5} {"req/s":>9} {"min-max":>17} {"p50 ms":>7} '
          f'{"p99 ms":>7} {"cpu us/req":>10} {"ratio":>6}')
    for (name, conns), r in results.items():
        ratio = r['rps_median'] / results[('http.server', conns)]['rps_median']
        print(f'{name:<12} {conns:>5} {r["rps_median"]:>9.0f} '
              f'{r["rps_min"]:>8.0f}-{r["rps_max"]:<8.0f} {r["p50_ms"]:>7.3f} '
              f'{r["p99_ms"]:>7.3f} {r["cpu_us_per_req"]:>10.1f} {ratio:>6.2f}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({f'{n}/{c}': r for (n, c), r in results.items()}, f, indent=2)


if __name__ == '__main__':
    main()
