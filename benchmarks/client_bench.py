#!/usr/bin/env python3
"""Requests per second on one keep-alive connection: degu.client vs http.client.

Each server runs in its own process; the server and this client are pinned
to the same CPU (cross-CPU wake-ups swamp the numbers on small VMs).  The
servers are degu.server.Server and http.server.ThreadingHTTPServer with an
HTTP/1.1 handler; both answer ``GET /`` with a 13-byte body.  degu is also
measured pipelined, 8 requests in flight, for the same small GETs.

    python3 benchmarks/client_bench.py [--requests N] [--rounds R] [--cpu C]
                                       [--server-cpu S] [--depth D]
"""

import argparse
import http.client
import http.server
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BODY = b'Hello, World!'


def degu_app(session, request, api):
    return (200, 'OK', {'content-type': 'text/plain'}, BODY)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    # The headers and the body go out in two writes: without TCP_NODELAY,
    # Nagle plus delayed ACKs cost 40 ms per request, for every client.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header('Content-Type', 'text/plain')
        self.send_header('Content-Length', str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)


def serve(kind, cpu):
    os.sched_setaffinity(0, {cpu})
    if kind == 'degu':
        from degu.server import Server

        server = Server(('127.0.0.1', 0), degu_app, max_requests=75000)
        port = server.address[1]
        run = server.serve_forever
    else:
        server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        server.daemon_threads = True
        port = server.server_address[1]
        run = server.serve_forever
    print(port, flush=True)
    run()


def start_server(kind, cpu):
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), '--serve', kind, '--cpu', str(cpu)],
        stdout=subprocess.PIPE,
    )
    port = int(proc.stdout.readline())
    return (proc, port)


def bench_degu(port, n):
    from degu.client import Client

    conn = Client(('127.0.0.1', port), timeout=10).connect()
    conn.get('/', {}).body.read()
    start = time.perf_counter()
    for _ in range(n):
        r = conn.request('GET', '/', {}, None)
        r.body.read()
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed


def bench_degu_pipelined(port, n, depth):
    from degu.client import Client

    conn = Client(('127.0.0.1', port), timeout=10, max_pending=depth).connect()
    conn.get('/', {}).body.read()
    start = time.perf_counter()
    sent = 0
    for _ in range(depth):
        conn.send_request('GET', '/', {}, None)
        sent += 1
    for _ in range(n):
        conn.read_response().body.read()
        if sent < n:
            conn.send_request('GET', '/', {}, None)
            sent += 1
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed


def bench_http_client(port, n):
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    conn.request('GET', '/')
    conn.getresponse().read()
    start = time.perf_counter()
    for _ in range(n):
        conn.request('GET', '/')
        conn.getresponse().read()
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--requests', type=int, default=5000)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--cpu', type=int, default=0)
    parser.add_argument(
        '--server-cpu', type=int, default=None, help='pin the server elsewhere (default: --cpu)'
    )
    parser.add_argument('--depth', type=int, default=8)
    parser.add_argument('--serve', choices=['degu', 'stdlib'])
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.cpu)
    os.sched_setaffinity(0, {args.cpu})
    n = args.requests
    server_cpu = args.cpu if args.server_cpu is None else args.server_cpu
    rows = []
    for kind, label in (('degu', 'degu.server'), ('stdlib', 'http.server (1.1)')):
        (proc, port) = start_server(kind, server_cpu)
        try:
            results = {'degu.client': [], 'http.client': [], f'degu pipelined x{args.depth}': []}
            for _ in range(args.rounds):
                results['degu.client'].append(bench_degu(port, n))
                results['http.client'].append(bench_http_client(port, n))
                results[f'degu pipelined x{args.depth}'].append(
                    bench_degu_pipelined(port, n, args.depth)
                )
        finally:
            proc.terminate()
            proc.wait(10)
        for client, values in results.items():
            rows.append((label, client, max(values)))
    print(
        f'{n} small GETs on one keep-alive connection, best of {args.rounds}, '
        f'client pinned to CPU {args.cpu}, server to CPU {server_cpu}'
    )
    print(f'{"server":<20} {"client":<22} {"requests/s":>12}')
    base = {}
    for label, client, rate in rows:
        if client == 'degu.client':
            base[label] = rate
        extra = ''
        if client != 'degu.client':
            extra = f'  ({rate / base[label]:.2f}x degu.client)'
        print(f'{label:<20} {client:<22} {rate:>12,.0f}{extra}')


if __name__ == '__main__':
    main()
