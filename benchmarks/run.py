#!/usr/bin/env python3
"""degu's benchmark suite: ``python3 benchmarks/run.py MODE [options]``.

Modes (``all`` runs each in turn):

``roundtrip``
    One connection, sequential POSTs of a ~70-byte body answered with a
    ~70-byte body, server in another process, over IPv6 loopback and
    AF_UNIX.  Rows: degu server + degu client; ``http.server``
    (ThreadingHTTPServer, HTTP/1.1) + ``http.client``; and the raw-socket
    floor: the same byte counts echoed by a minimal socket loop, no HTTP.
``server``
    Keep-alive GETs of a 12-byte body from 1, 16 and 64 connections against
    degu and ThreadingHTTPServer (and waitress/cheroot when installed), with
    ``wrk`` when present, else a Python load generator; requests/s, p50/p99
    latency, server CPU time per request.
``client``
    One keep-alive connection, sequential GETs against one fixed server
    (nginx when installed, else degu): degu client vs ``http.client`` vs the
    raw-socket floor, plus degu pipelined at depth 8.
``bodies``
    64 MiB upload and download, content-length and chunked: MB/s and peak
    RSS of both processes, next to a raw-socket transfer of the same size.
``idle``
    ``--idle`` (default 1,000) idle keep-alive connections held by a degu
    server at its default options: memory per connection and the server's
    threads once they were idle for 2 s, and a new connection's request
    latency with them held, beside the same on an idle server.
``slowloris``
    ``--attackers`` connections (default 2,000) dribble a request preamble
    one byte every 2 s, reconnecting when cut, against a degu server at its
    default options; beside the attack, a legitimate client makes requests
    on new connections for ``--seconds``: its success rate and p50/p99
    latency, and the server's threads.
``workers``
    The ``server`` load (wrk, keep-alive GETs of a 12-byte body, the largest
    ``--conns``) against one degu ``Server`` and against ``degu.workers.Workers``
    with 1, 2 and 4 worker processes, side by side: how req/s scales with
    processes.  Nothing is pinned here: the workers need every CPU, and wrk
    shares them.
``slowbody``
    50 connections send a request preamble and then trickle its body one
    byte a second (half of them declare ``content-length``, half a
    ``ffffff`` chunk), against a degu server at its default options: the
    legitimate client's success rate and latency, and the server's RSS.

Placement: on a 2-CPU VM a round trip between processes on different CPUs
pays a cross-CPU wake-up that swamps the HTTP work, so ``roundtrip``,
``client`` and ``bodies`` pin both processes to CPU 0 and ``server`` puts
the server on CPU 0 and the load on CPU 1 (``--pin none`` leaves placement
to the kernel).  Implementations are interleaved (A B A B ...) over
``--reps`` repetitions; the table shows medians, min-max and ratios from
the same run.  ``--json FILE`` writes the results.  ``--quick`` runs tiny
counts (CI uses it so the script cannot rot).  ``--baseline DIR`` adds, to
``roundtrip`` and ``server``, the degu of another checkout (a git worktree
of an older commit), interleaved with this one: the way to measure a change.
"""

import argparse
import http.client
import json
import multiprocessing
import os
import platform
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..'))

BODY70 = b'x' * 70  # the roundtrip request and response bodies
BODY12 = b'Hello, World'
MiB = 1024 * 1024
CTX = multiprocessing.get_context('fork')


# --------------------------------------------------------------------------
# Processes and placement


def pin(cpu):
    if cpu is not None and hasattr(os, 'sched_setaffinity'):
        os.sched_setaffinity(0, {cpu})


def start(target, *args, cpu=None):
    """Run target(queue, *args) in a child pinned to *cpu*; returns (process, first message)."""
    queue = CTX.Queue()

    def main():
        pin(cpu)
        target(queue, *args)

    proc = CTX.Process(target=main, daemon=True)
    proc.start()
    message = queue.get(timeout=30)
    if isinstance(message, BaseException):
        proc.join(5)
        raise message
    return (proc, message, queue)


def at_checkout(path, func):
    """*func*, run with the degu of another checkout at *path* (``--baseline``).

    For a child process only (fork): it forgets the degu modules the parent
    imported and imports them again from *path*, so one run can put two
    versions side by side.
    """

    def with_degu_at(*args, **kw):
        for name in [n for n in sys.modules if n == 'degu' or n.startswith('degu.')]:
            del sys.modules[name]
        sys.path.insert(0, os.path.abspath(path))
        import degu

        assert os.path.dirname(os.path.dirname(degu.__file__)) == os.path.abspath(path)
        return func(*args, **kw)

    return with_degu_at


def active_core():
    """Which core degu runs on here: 'c' (degu._cparse, when built) or 'python'."""
    from degu import _parse

    return getattr(_parse, 'CORE', 'python')


PURE = 'pure Python core'


def pure_core(func):
    """*func*, run with degu's pure-Python core (``DEGU_PURE=1``), for a child process.

    Like ``at_checkout()``: the child forgets the degu modules the parent
    imported and imports them again, now choosing the pure-Python core, so
    one run puts both cores side by side.
    """

    def with_pure_core(*args, **kw):
        for name in [n for n in sys.modules if n == 'degu' or n.startswith('degu.')]:
            del sys.modules[name]
        os.environ['DEGU_PURE'] = '1'
        assert active_core() == 'python'
        return func(*args, **kw)

    return with_pure_core


def stop(proc):
    if proc.is_alive():
        proc.terminate()
    proc.join(10)


def run_in_child(func, *args, cpu=None, timeout=600):
    """func(*args) in a pinned child process; returns its result."""

    def target(queue):
        queue.put('ready')
        try:
            queue.put(func(*args))
        except BaseException as e:  # pragma: no cover - reported in the parent
            queue.put(RuntimeError(f'{type(e).__name__}: {e}'))

    (proc, _, queue) = start(target, cpu=cpu)
    try:
        result = queue.get(timeout=timeout)
    finally:
        proc.join(10)
    if isinstance(result, BaseException):
        raise result
    return result


def cpu_seconds(pid):
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def machine_cpu():
    """(busy, total) jiffies of the whole machine, every CPU, from /proc/stat."""
    with open('/proc/stat') as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle, sum(fields))


def peak_rss_kib(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1])
    return 0  # pragma: no cover


def current_rss_kib(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0  # pragma: no cover


def address_for(family, tmpdir, name):
    if family == 'ipv6':
        return ('::1', 0, 0, 0)
    if family == 'ipv4':
        return ('127.0.0.1', 0)
    return os.path.join(tmpdir, f'{name}.sock')


def connect(address, timeout=30):
    if isinstance(address, tuple) and len(address) == 2:
        sock = socket.create_connection(address, timeout=timeout)
    else:
        family = socket.AF_INET6 if isinstance(address, tuple) else socket.AF_UNIX
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(address)
    if sock.family != socket.AF_UNIX:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


# --------------------------------------------------------------------------
# Servers (each runs in a child: target(queue, address, ...))


def degu_app(session, request, api):
    if request.body is not None:
        request.body.read()
    if request.uri == '/hello':
        return (200, 'OK', {'content-type': 'text/plain'}, BODY12)
    return (200, 'OK', {}, BODY70)


def bodies_app(session, request, api):
    if request.method == 'PUT':
        # readinto(): the fast way for both framings (a chunk's data goes
        # straight into buf, no bytes object per chunk).
        total = 0
        buf = bytearray(MiB)
        while True:
            n = request.body.readinto(buf)
            if not n:
                break
            total += n
        return (200, 'OK', {}, str(total).encode())
    size = int(request.query)
    if request.path == ['chunked']:
        piece = b'd' * MiB
        chunks = [(None, piece)] * (size // MiB) + [(None, b'')]
        return (200, 'OK', {}, api.ChunkedBodyIter(chunks))
    piece = b'd' * MiB
    return (200, 'OK', {}, api.BodyIter([piece] * (size // MiB), size))


def serve_degu(queue, address, app=degu_app, **options):
    try:
        from degu.server import Server

        options.setdefault('max_connections', 1000)
        server = Server(address, app, max_requests=75000, **options)
    except BaseException as e:
        queue.put(e)
        return
    queue.put(server.address)
    server.serve_forever()


def serve_workers(queue, address, count):
    try:
        from degu.workers import Workers

        # start() makes daemonic processes, which multiprocessing forbids to
        # have children; this one stops its workers itself (SIGTERM).
        multiprocessing.current_process().daemon = False
        workers = Workers(address, degu_app, count, max_connections=1000, max_requests=75000)
    except BaseException as e:
        queue.put(e)
        return
    workers.serve_forever(signals=True, on_ready=lambda: queue.put(workers.address))


def serve_stdlib(queue, address):
    import http.server
    import socketserver

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'
        # Header and body go out in separate writes: without this each
        # response meets Nagle plus delayed ACK (40 ms).  The best stdlib.
        disable_nagle_algorithm = True

        def _answer(self, body):
            self.send_response(200)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self._answer(BODY12 if self.path == '/hello' else BODY70)

        def do_POST(self):
            self.rfile.read(int(self.headers['Content-Length']))
            self._answer(BODY70)

        def log_message(self, *args):
            pass

    family = socket.AF_INET6 if len(address) == 4 else socket.AF_INET
    if isinstance(address, str):

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass

        class UnixHandler(Handler):
            disable_nagle_algorithm = False  # TCP_NODELAY fails on AF_UNIX

            def address_string(self):
                return 'unix'

            def setup(self):
                self.client_address = ('unix', 0)
                super().setup()

        server = Server(address, UnixHandler)
    else:

        class Server(http.server.ThreadingHTTPServer):
            address_family = family

            def handle_error(self, request, client_address):
                pass

        server = Server(address[:2] if family == socket.AF_INET else address, Handler)
    queue.put(server.server_address)
    server.serve_forever()


def serve_raw_echo(queue, address, request_size, response):
    """The floor: read exactly request_size bytes, answer with response; no HTTP."""
    family = socket.AF_UNIX if isinstance(address, str) else (
        socket.AF_INET6 if len(address) == 4 else socket.AF_INET)
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(5)
    queue.put(listener.getsockname())
    while True:
        (sock, _) = listener.accept()
        if family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = bytearray(65536)
        view = memoryview(buf)
        pending = 0
        while True:
            n = sock.recv_into(view)
            if not n:
                break
            pending += n
            while pending >= request_size:
                pending -= request_size
                sock.sendall(response)
        sock.close()


def serve_waitress(queue, address):  # pragma: no cover - optional peer
    import waitress

    def app(environ, start_response):
        start_response('200 OK', [('Content-Length', '12')])
        return [BODY12]

    sock = socket.socket()
    sock.bind(address[:2])
    sock.listen(128)
    queue.put(sock.getsockname())
    waitress.serve(app, sockets=[sock], threads=16, _quiet=True)


def serve_nginx(queue, address, tmpdir):
    """nginx answering every GET with the 12-byte body (the fixed server of `client`)."""
    port = _free_port()
    conf = os.path.join(tmpdir, 'nginx.conf')
    with open(conf, 'w') as f:
        f.write(f"""
worker_processes 1;
daemon off;
pid {tmpdir}/nginx.pid;
error_log {tmpdir}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmpdir};
    proxy_temp_path {tmpdir};
    fastcgi_temp_path {tmpdir};
    uwsgi_temp_path {tmpdir};
    scgi_temp_path {tmpdir};
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "Hello, World"; }}
    }}
}}
""")
    proc = subprocess.Popen(['nginx', '-c', conf], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(('127.0.0.1', port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    queue.put(('127.0.0.1', port))
    # Pass SIGTERM on (nginx: fast shutdown); the wait below then returns.
    signal.signal(signal.SIGTERM, lambda *a: proc.terminate())
    proc.wait()


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# Clients (run in a child; return seconds elapsed for `count` exchanges)


def degu_posts(address, count):
    from degu.client import Client

    conn = Client(address).connect()
    post = conn.post
    t0 = time.perf_counter()
    for _ in range(count):
        post('/echo', {}, BODY70).body.read()
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


def stdlib_posts(address, count):
    conn = _stdlib_conn(address)
    headers = {'Content-Type': 'application/octet-stream'}
    t0 = time.perf_counter()
    for _ in range(count):
        conn.request('POST', '/echo', BODY70, headers)
        conn.getresponse().read()
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


def _stdlib_conn(address):
    if isinstance(address, tuple):
        conn = http.client.HTTPConnection(address[0], address[1], timeout=30)
    else:

        class UnixConnection(http.client.HTTPConnection):
            def connect(self):
                self.sock = connect(address)

        conn = http.client.HTTPConnection('localhost', timeout=30)
        conn.__class__ = UnixConnection
    conn.connect()
    if conn.sock.family != socket.AF_UNIX:
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def raw_exchanges(address, count, request, response_size):
    sock = connect(address)
    sock.settimeout(None)  # the floor: no poll() before each recv and send
    buf = bytearray(65536)
    view = memoryview(buf)
    t0 = time.perf_counter()
    for _ in range(count):
        sock.sendall(request)
        got = 0
        while got < response_size:
            n = sock.recv_into(view)
            if not n:
                raise ConnectionError('server closed')
            got += n
    elapsed = time.perf_counter() - t0
    sock.close()
    return elapsed


def degu_gets(address, count, depth=1):
    from degu.client import Client

    conn = Client(address, host='bench').connect()
    t0 = time.perf_counter()
    if depth == 1:
        get = conn.get
        for _ in range(count):
            get('/hello', {}).body.read()
    else:
        send = conn.send_request
        read = conn.read_response
        for _ in range(depth):
            send('GET', '/hello', {}, None)
        for i in range(count):
            read().body.read()
            if i + depth < count:
                send('GET', '/hello', {}, None)
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


def degu_pool_gets(address, count):
    # The same GETs through Client.get(): the pool lends a connection and
    # takes it back once the body is read.
    from degu.client import Client

    client = Client(address, host='bench')
    get = client.get
    t0 = time.perf_counter()
    for _ in range(count):
        get('/hello').body.read()
    elapsed = time.perf_counter() - t0
    assert client.pool_info()['connects'] == 1
    client.close()
    return elapsed


def stdlib_gets(address, count):
    conn = _stdlib_conn(address)
    t0 = time.perf_counter()
    for _ in range(count):
        conn.request('GET', '/hello')
        conn.getresponse().read()
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


def _response_size(address, raw_request):
    with connect(address) as sock:
        sock.sendall(raw_request)
        data = b''
        while b'\r\n\r\n' not in data:
            data += _recv_some(sock)
        (head, _, rest) = data.partition(b'\r\n\r\n')
        if not head.startswith(b'HTTP/1.1 200 '):
            raise ConnectionError(f'the request was refused: {head[:80]!r}')
        length = int(re.search(rb'(?i)content-length: *(\d+)', head).group(1))
        while len(rest) < length:
            rest += _recv_some(sock)
        return len(head) + 4 + length


def _recv_some(sock):
    data = sock.recv(65536)
    if not data:
        raise ConnectionError('server closed the connection')
    return data


# --------------------------------------------------------------------------
# Reporting


class Table:
    def __init__(self, title):
        self.title = title
        self.rows = []

    def add(self, group, name, values, unit, better='high', **extra):
        med = statistics.median(values)
        self.rows.append({'group': group, 'name': name, 'median': med, 'min': min(values),
                          'max': max(values), 'unit': unit, 'better': better, **extra})
        return med

    def ratio(self, group, name, base):
        rows = {r['name']: r for r in self.rows if r['group'] == group}
        return rows[name]['median'] / rows[base]['median']

    def show(self, refs):
        print(f'\n== {self.title}')
        width = max(len(r['name']) for r in self.rows) + 2
        for group in dict.fromkeys(r['group'] for r in self.rows):
            rows = [r for r in self.rows if r['group'] == group]
            print(f'-- {group}')
            base = refs.get(group)
            for r in rows:
                ratio = ''
                if base and base in {x['name'] for x in rows}:
                    ratio = f'{self.ratio(group, r["name"], base):7.2f}x {base}'
                extra = ''.join(f'  {k}={v}' for k, v in r.items() if k not in (
                    'group', 'name', 'median', 'min', 'max', 'unit', 'better'))
                print(f'   {r["name"]:<{width}} {r["median"]:>12,.1f} {r["unit"]:<6}'
                      f' ({r["min"]:,.1f}-{r["max"]:,.1f})  {ratio}{extra}')


def interleave(reps, runners):
    """Run each runner once per rep, in turn (A B A B ...); returns name -> [values]."""
    results = {name: [] for name in runners}
    for _ in range(reps):
        for name, runner in runners.items():
            results[name].append(runner())
    return results


# --------------------------------------------------------------------------
# Modes


def mode_roundtrip(args, tmpdir):
    from degu.base import render_request

    both = active_core() == 'c'  # the compiled core, and the pure one beside it
    table = Table(f'roundtrip: {args.count} sequential POSTs, 70-byte bodies, '
                  f'one connection (req/s), degu on its {active_core()} core')
    cpu = 0 if args.pin == 'split' else None
    request = render_request('POST', '/echo', {'content-length': 70, 'host': 'bench'}) + BODY70
    for family in ('ipv6', 'unix'):
        servers = {}
        try:
            servers['degu'] = start(serve_degu, address_for(family, tmpdir, 'degu'), cpu=cpu)
            if args.baseline:
                servers['base'] = start(at_checkout(args.baseline, serve_degu),
                                        address_for(family, tmpdir, 'base'), cpu=cpu)
            if both:
                servers['pure'] = start(pure_core(serve_degu),
                                        address_for(family, tmpdir, 'pure'), cpu=cpu)
            servers['stdlib'] = start(serve_stdlib, address_for(family, tmpdir, 'std'),
                                      cpu=cpu)
            response_size = _response_size(servers['degu'][1], request)
            servers['raw'] = start(serve_raw_echo, address_for(family, tmpdir, 'raw'),
                                   len(request), b'r' * response_size, cpu=cpu)
            addr = {k: v[1] for k, v in servers.items()}
            count = args.count
            runners = {
                'degu server + degu client':
                    lambda: count / run_in_child(degu_posts, addr['degu'], count, cpu=cpu),
                'http.server + http.client':
                    lambda: count / run_in_child(stdlib_posts, addr['stdlib'], count, cpu=cpu),
                'raw-socket floor':
                    lambda: count / run_in_child(raw_exchanges, addr['raw'], count, request,
                                                 response_size, cpu=cpu),
            }
            if args.baseline:
                posts = at_checkout(args.baseline, degu_posts)
                runners[BASELINE_PAIR] = (
                    lambda: count / run_in_child(posts, addr['base'], count, cpu=cpu)
                )
            if both:
                runners[PURE_PAIR] = lambda: count / run_in_child(
                    pure_core(degu_posts), addr['pure'], count, cpu=cpu)
            for name, values in interleave(args.reps, runners).items():
                table.add(family, name, values, 'req/s')
        finally:
            for (proc, _, _) in servers.values():
                stop(proc)
    refs = {'ipv6': 'raw-socket floor', 'unix': 'raw-socket floor'}
    table.show(refs)
    for family in ('ipv6', 'unix'):
        ratio = table.ratio(family, 'degu server + degu client', 'http.server + http.client')
        print(f'   {family}: degu/stdlib = {ratio:.2f}x')
        if args.baseline:
            ratio = table.ratio(family, 'degu server + degu client', BASELINE_PAIR)
            print(f'   {family}: degu/baseline = {ratio:.3f}x')
        if both:
            ratio = table.ratio(family, 'degu server + degu client', PURE_PAIR)
            print(f'   {family}: compiled core / pure Python core = {ratio:.3f}x')
    return table


PURE_PAIR = f'degu pair, {PURE}'
BASELINE_PAIR = 'degu pair at --baseline'
BASELINE_SERVER = 'degu at --baseline'


def _wrk(address, conns, seconds, cpu):
    cmd = ['wrk', '-t1', f'-c{conns}', f'-d{seconds}s', '--latency',
           f'http://127.0.0.1:{address[1]}/hello']
    if cpu is not None:
        cmd = ['taskset', '-c', str(cpu)] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(re.search(r'Requests/sec:\s+([\d.]+)', out).group(1))

    def latency(p):
        m = re.search(rf'\s{p}%\s+([\d.]+)(us|ms|s)', out)
        if not m:
            return float('nan')
        scale = {'us': 0.001, 'ms': 1.0, 's': 1000.0}[m.group(2)]
        return float(m.group(1)) * scale

    errors = re.search(r'Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)', out)
    return (rps, latency(50), latency(99), errors.group(0) if errors else '')


def _pyload(address, conns, seconds, cpu):
    def work():
        return _selector_load(address, conns, seconds)

    (count, lat) = run_in_child(work, cpu=cpu, timeout=seconds + 60)
    lat.sort()
    return (count / seconds, 1000 * lat[len(lat) // 2], 1000 * lat[int(len(lat) * 0.99)], '')


def _selector_load(address, conns, seconds):
    request = b'GET /hello HTTP/1.1\r\nHost: bench\r\n\r\n'
    sel = selectors.DefaultSelector()
    state = {}
    for _ in range(conns):
        sock = connect(address)
        sock.setblocking(False)
        state[sock] = [b'', time.perf_counter()]
        sel.register(sock, selectors.EVENT_READ)
        sock.send(request)
    latencies = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for key, _ in sel.select(1.0):
            sock = key.fileobj
            st = state[sock]
            data = sock.recv(65536)
            if not data:
                raise ConnectionError('server closed a connection')
            st[0] += data
            while True:
                end = st[0].find(b'\r\n\r\n')
                if end < 0:
                    break
                m = re.search(rb'(?i)content-length: *(\d+)', st[0][:end])
                total = end + 4 + int(m.group(1))
                if len(st[0]) < total:
                    break
                st[0] = st[0][total:]
                now = time.perf_counter()
                latencies.append(now - st[1])
                st[1] = now
                sock.send(request)
    for sock in state:
        sock.close()
    return (len(latencies), latencies)


def mode_server(args, tmpdir):
    seconds = args.seconds
    use_wrk = shutil.which('wrk') is not None and not args.no_wrk
    loader = 'wrk' if use_wrk else 'python load generator'
    table = Table(f'server: keep-alive GETs of a 12-byte body for {seconds}s ({loader}), '
                  f'degu on its {active_core()} core')
    (server_cpu, load_cpu) = (0, 1) if args.pin == 'split' else (None, None)
    impls = {'degu': serve_degu, 'http.server': serve_stdlib}
    both = active_core() == 'c'
    if both:
        impls[f'degu, {PURE}'] = pure_core(serve_degu)
    if args.baseline:
        impls[BASELINE_SERVER] = at_checkout(args.baseline, serve_degu)
    try:
        import waitress  # noqa: F401

        impls['waitress'] = serve_waitress  # pragma: no cover
    except ImportError:
        pass
    for conns in args.conns:
        def runner(impl):
            def run():
                (proc, address, _) = start(impl, ('127.0.0.1', 0), cpu=server_cpu)
                try:
                    cpu0 = cpu_seconds(proc.pid)
                    if use_wrk:
                        result = _wrk(address, conns, seconds, load_cpu)
                    else:
                        result = _pyload(address, conns, seconds, load_cpu)
                    cpu = cpu_seconds(proc.pid) - cpu0
                finally:
                    stop(proc)
                return result + (1e6 * cpu / max(1, result[0] * seconds),)
            return run

        results = interleave(args.reps, {name: runner(impl) for name, impl in impls.items()})
        for name, values in results.items():
            table.add(f'{conns} connections', name, [v[0] for v in values], 'req/s',
                      p50_ms=round(statistics.median(v[1] for v in values), 3),
                      p99_ms=round(statistics.median(v[2] for v in values), 3),
                      cpu_us_per_req=round(statistics.median(v[4] for v in values), 1),
                      **({'errors': values[0][3]} if values[0][3] else {}))
    table.show({f'{c} connections': 'http.server' for c in args.conns})
    if args.baseline:
        for conns in args.conns:
            ratio = table.ratio(f'{conns} connections', 'degu', BASELINE_SERVER)
            rows = {r['name']: r for r in table.rows if r['group'] == f'{conns} connections'}
            lower = rows[BASELINE_SERVER]['cpu_us_per_req'] / rows['degu']['cpu_us_per_req']
            print(f'   {conns} connections: degu/baseline = {ratio:.3f}x req/s,'
                  f' CPU per request {lower:.2f}x lower')
    if both:
        for conns in args.conns:
            rows = {r['name']: r for r in table.rows if r['group'] == f'{conns} connections'}
            (c, pure) = (rows['degu'], rows[f'degu, {PURE}'])
            print(f'   {conns} connections: compiled / pure = {c["median"] / pure["median"]:.3f}x'
                  f' req/s, CPU per request {pure["cpu_us_per_req"] / c["cpu_us_per_req"]:.2f}x'
                  ' lower')
    return table


def mode_workers(args, tmpdir):
    seconds = args.seconds
    conns = max(args.conns)
    use_wrk = shutil.which('wrk') is not None and not args.no_wrk
    loader = 'wrk' if use_wrk else 'python load generator'
    table = Table(f'workers: keep-alive GETs of a 12-byte body, {conns} connections, '
                  f'{seconds}s ({loader}, {os.cpu_count()} CPUs, nothing pinned)')
    impls = {'degu Server (one process)': (serve_degu, ())}
    for count in (1, 2, 4):
        impls[f'Workers, {count} worker{"s" if count > 1 else ""}'] = (serve_workers, (count,))

    def runner(impl, extra):
        def run():
            (proc, address, _) = start(impl, ('127.0.0.1', 0), *extra)
            try:
                before = machine_cpu()
                load_before = resource.getrusage(resource.RUSAGE_CHILDREN)
                if use_wrk:
                    result = _wrk(address, conns, seconds, None)
                else:
                    result = _pyload(address, conns, seconds, None)
                load_after = resource.getrusage(resource.RUSAGE_CHILDREN)
                after = machine_cpu()
            finally:
                stop(proc)
            busy = (after[0] - before[0]) / max(1, after[1] - before[1])
            # The load generator's CPU (wrk, or the Python one in a child), in CPUs.
            load_cpu = sum(getattr(load_after, f) - getattr(load_before, f)
                           for f in ('ru_utime', 'ru_stime')) / seconds
            return result + (100 * busy, load_cpu)
        return run

    results = interleave(args.reps, {name: runner(*impl) for name, impl in impls.items()})
    group = f'{conns} connections'
    for name, values in results.items():
        table.add(group, name, [v[0] for v in values], 'req/s',
                  p50_ms=round(statistics.median(v[1] for v in values), 3),
                  p99_ms=round(statistics.median(v[2] for v in values), 3),
                  machine_busy_pct=round(statistics.median(v[4] for v in values)),
                  load_cpus=round(statistics.median(v[5] for v in values), 2),
                  **({'errors': values[0][3]} if values[0][3] else {}))
    table.show({group: 'Workers, 1 worker'})
    return table


def mode_client(args, tmpdir):
    cpu = 0 if args.pin == 'split' else None
    count = args.count
    fixed = args.client_server
    if fixed == 'auto':
        fixed = 'nginx' if shutil.which('nginx') and not args.no_nginx else 'degu'
    if fixed == 'nginx':
        (proc, address, _) = start(serve_nginx, None, tmpdir, cpu=cpu)
    elif fixed == 'http.server':
        (proc, address, _) = start(serve_stdlib, ('127.0.0.1', 0), cpu=cpu)
    else:
        (proc, address, _) = start(serve_degu, ('127.0.0.1', 0), cpu=cpu)
    both = active_core() == 'c'
    table = Table(f'client: {count} sequential GETs on one connection against {fixed} (req/s), '
                  f'degu on its {active_core()} core')
    try:
        request = b'GET /hello HTTP/1.1\r\nhost: bench\r\n\r\n'
        response_size = _response_size(address, request)
        runners = {
            'degu client': lambda: count / run_in_child(degu_gets, address, count, cpu=cpu),
            **({f'degu client, {PURE}': lambda: count / run_in_child(
                pure_core(degu_gets), address, count, cpu=cpu)} if both else {}),
            'degu client, pool (Client.get)':
                lambda: count / run_in_child(degu_pool_gets, address, count, cpu=cpu),
            'degu client, pipelined x8':
                lambda: count / run_in_child(degu_gets, address, count, 8, cpu=cpu),
            'http.client': lambda: count / run_in_child(stdlib_gets, address, count, cpu=cpu),
            'raw-socket floor': lambda: count / run_in_child(
                raw_exchanges, address, count, request, response_size, cpu=cpu),
        }
        for name, values in interleave(args.reps, runners).items():
            table.add(fixed, name, values, 'req/s')
    finally:
        stop(proc)
    table.show({fixed: 'http.client'})
    print(f'   degu / raw floor = {table.ratio(fixed, "degu client", "raw-socket floor"):.2f}x')
    pool = table.ratio(fixed, 'degu client, pool (Client.get)', 'degu client')
    print(f'   pool / bare connection = {pool:.3f}x')
    if both:
        ratio = table.ratio(fixed, f'degu client, {PURE}', 'raw-socket floor')
        print(f'   degu ({PURE}) / raw floor = {ratio:.2f}x')
    return table


def _upload(address, size, chunked):
    from degu.base import BodyIter, ChunkedBodyIter
    from degu.client import Client

    conn = Client(address).connect()
    piece = b'u' * MiB
    if chunked:
        body = ChunkedBodyIter([(None, piece)] * (size // MiB) + [(None, b'')])
    else:
        body = BodyIter([piece] * (size // MiB), size)
    t0 = time.perf_counter()
    response = conn.put('/upload', {}, body)
    assert int(response.body.read()) == size
    elapsed = time.perf_counter() - t0
    conn.close()
    return (elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _download(address, size, chunked, chunks=False):
    # chunks: iterate (extension, data) chunks, a bytes object each;
    # otherwise readinto() a buffer, for either framing.
    from degu.client import Client

    conn = Client(address).connect()
    buf = bytearray(MiB)
    t0 = time.perf_counter()
    response = conn.get(f'/{"chunked" if chunked else "length"}?{size}', {})
    total = 0
    if chunks:
        for (_, data) in response.body:
            total += len(data)
    else:
        while True:
            n = response.body.readinto(buf)
            if not n:
                break
            total += n
    assert total == size
    elapsed = time.perf_counter() - t0
    conn.close()
    return (elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _raw_download(address, size):
    sock = connect(address)
    buf = bytearray(MiB)
    t0 = time.perf_counter()
    sock.sendall(b'go')
    got = 0
    while got < size:
        n = sock.recv_into(buf)
        if not n:
            raise ConnectionError('short')
        got += n
    elapsed = time.perf_counter() - t0
    sock.close()
    return (elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def serve_raw_source(queue, address, size):
    listener = socket.socket(socket.AF_INET6)
    listener.bind(address)
    listener.listen(5)
    queue.put(listener.getsockname())
    piece = b'd' * MiB
    while True:
        (sock, _) = listener.accept()
        sock.recv(2)
        for _ in range(size // MiB):
            sock.sendall(piece)
        sock.close()


def mode_bodies(args, tmpdir):
    size = args.size * MiB
    cpu = 0 if args.pin == 'split' else None
    table = Table(f'bodies: {args.size} MiB over IPv6 loopback (MB/s)')
    (proc, address, _) = start(serve_degu, ('::1', 0, 0, 0), bodies_app, cpu=cpu)
    (raw_proc, raw_address, _) = start(serve_raw_source, ('::1', 0, 0, 0), size, cpu=cpu)
    try:
        rss0 = peak_rss_kib(proc.pid)
        runners = {
            'upload, content-length': lambda: run_in_child(_upload, address, size, False,
                                                           cpu=cpu),
            'upload, chunked': lambda: run_in_child(_upload, address, size, True, cpu=cpu),
            'download, content-length': lambda: run_in_child(_download, address, size, False,
                                                             cpu=cpu),
            'download, chunked': lambda: run_in_child(_download, address, size, True, cpu=cpu),
            'download, chunked, by chunk': lambda: run_in_child(_download, address, size,
                                                                True, True, cpu=cpu),
            'raw-socket transfer': lambda: run_in_child(_raw_download, raw_address, size,
                                                        cpu=cpu),
        }
        results = interleave(args.reps, runners)
        server_growth = (peak_rss_kib(proc.pid) - rss0) // 1024
        for name, values in results.items():
            table.add('MB/s', name, [size / 1e6 / v[0] for v in values], 'MB/s',
                      client_peak_rss_mib=max(v[1] for v in values) // 1024)
    finally:
        stop(proc)
        stop(raw_proc)
    table.show({'MB/s': 'raw-socket transfer'})
    print(f'   degu server peak RSS growth: {server_growth} MiB')
    table.rows.append({'group': 'rss', 'name': 'server peak RSS growth', 'median': server_growth,
                       'min': server_growth, 'max': server_growth, 'unit': 'MiB',
                       'better': 'low'})
    return table


def mode_idle(args, tmpdir):
    count = args.idle
    table = Table(f'idle: {count} idle keep-alive connections on a degu server at its '
                  'default options')
    (proc, address, _) = start(_serve_idle, count)
    socks = []
    try:
        quiet = _new_connection_latencies(address, 200)
        rss0 = current_rss_kib(proc.pid)
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)
        if limit[0] < count + 100:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit[1], count + 1000), limit[1]))
        # In batches well under max_connections (50), a little apart: each
        # request takes a thread until its connection is parked, 0.1 s after
        # (1 ms when the server is crowded).
        for first in range(0, count, IDLE_BATCH):
            time.sleep(0.01)
            batch = [connect(address) for _ in range(min(IDLE_BATCH, count - first))]
            socks.extend(batch)
            for sock in batch:
                sock.sendall(b'GET /hello HTTP/1.1\r\nHost: bench\r\n\r\n')
            for sock in batch:
                data = b''
                while not data.endswith(BODY12):
                    received = sock.recv(4096)
                    if not received or data.startswith(b'HTTP/1.1 503'):
                        raise ConnectionError(f'server closed a connection: {data[:80]!r}')
                    data += received
        time.sleep(2.0)  # idle for longer than the server's PARK_AFTER (0.1 s): parked
        rss1 = current_rss_kib(proc.pid)
        threads = int(open(f'/proc/{proc.pid}/status').read().split('Threads:')[1].split()[0])
        crowded = _new_connection_latencies(address, 200)
    finally:
        for sock in socks:
            sock.close()
        stop(proc)
    per = (rss1 - rss0) / count
    table.add('memory', 'RSS per idle connection', [per], 'KiB', better='low',
              threads=threads, held=len(socks))
    for (label, latencies) in (('an idle server', quiet), (f'{count} idle held', crowded)):
        table.add('new connection, one request', f'p50 with {label}',
                  [_percentile(latencies, 50)], 'ms', better='low',
                  p99=round(_percentile(latencies, 99), 2))
    table.show({})
    return table


IDLE_BATCH = 10  # connections opened at once by the idle mode


def _serve_idle(queue, count):
    serve_degu(queue, ('127.0.0.1', 0), max_connections=50, idle_timeout=60)


def _new_connection_latencies(address, count):
    """*count* requests, each on a new connection: their latencies in ms."""
    latencies = [_new_connection_request(address) for _ in range(count)]
    return [latency for latency in latencies if latency is not None]


# --------------------------------------------------------------------------
# Attacks, and a legitimate client beside them


def _attack(address, conns, scripts, interval, stop_at):
    """*conns* connections, each sending a script's head at once, then its trickle a byte
    per *interval* seconds; a connection the server cuts comes back.  Returns the reconnects.
    """
    socks = {}  # socket -> (trickle, next byte)

    def open_one(i):
        (head, trickle) = scripts[i % len(scripts)]
        try:
            sock = socket.create_connection(address, timeout=2)
            if head:
                sock.sendall(head)
            sock.setblocking(False)
        except OSError:
            return
        socks[sock] = (trickle, 0)

    for i in range(conns):
        open_one(i)
    n = conns
    while time.monotonic() < stop_at:
        started = time.monotonic()
        for sock in list(socks):
            (trickle, pos) = socks[sock]
            try:
                sock.send(trickle[pos : pos + 1])
                socks[sock] = (trickle, min(pos + 1, len(trickle) - 1))
            except OSError:
                del socks[sock]
                sock.close()
                open_one(n)  # cut: come back, as an attacker would
                n += 1
            if time.monotonic() >= stop_at:
                break
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
    for sock in socks:
        sock.close()
    return n - conns


def _legit(address, seconds):
    """Requests on new connections for *seconds*: (successes, attempts, latencies in ms)."""
    latencies = []
    attempts = 0
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        attempts += 1
        latency = _new_connection_request(address)
        if latency is not None:
            latencies.append(latency)
        time.sleep(0.05)
    return (len(latencies), attempts, latencies)


def _new_connection_request(address):
    """A GET on a new connection: its latency in ms, or ``None`` if it failed."""
    started = time.monotonic()
    try:
        with socket.create_connection(address, timeout=2) as sock:
            sock.sendall(b'GET /hello HTTP/1.1\r\nHost: bench\r\n\r\n')
            data = b''
            while b'\r\n\r\n' not in data or not data.endswith(BODY12):
                received = sock.recv(4096)
                if not received:
                    break
                data += received
    except OSError:
        return None
    if data.startswith(b'HTTP/1.1 200 '):
        return 1000 * (time.monotonic() - started)
    return None


def _percentile(values, p):
    if not values:
        return float('nan')
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def _attack_mode(title, conns, scripts, interval, args):
    import threading

    table = Table(title)
    (proc, address, _) = start(_serve_defaults, ('127.0.0.1', 0), cpu=0)
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)
    if limit[0] < conns + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit[1], conns + 1000), limit[1]))
    try:
        rss0 = current_rss_kib(proc.pid)
        seconds = args.seconds * 2
        stop_at = time.monotonic() + seconds + 2
        result = {}
        attacker = threading.Thread(
            target=lambda: result.setdefault(
                'reconnects', _attack(address, conns, scripts, interval, stop_at)
            ),
            daemon=True,
        )
        attacker.start()
        time.sleep(2)  # let the attack take hold
        threads = int(open(f'/proc/{proc.pid}/status').read().split('Threads:')[1].split()[0])
        (ok, attempts, latencies) = _legit(address, seconds)
        rss1 = current_rss_kib(proc.pid)
        attacker.join(seconds + 10)
    finally:
        stop(proc)
    extra = {'attempts': attempts, 'server_threads': threads,
             'server_rss_growth_mib': round((rss1 - rss0) / 1024, 1),
             'reconnects': result.get('reconnects')}
    table.add('legitimate client', 'served', [100 * ok / max(1, attempts)], '%', **extra)
    table.add('legitimate client', 'p50 latency', [_percentile(latencies, 50)], 'ms',
              better='low')
    table.add('legitimate client', 'p99 latency', [_percentile(latencies, 99)], 'ms',
              better='low')
    table.show({})
    return table


def _serve_defaults(queue, address):
    import logging

    logging.getLogger('degu.server').setLevel(logging.ERROR)  # a 503 warning per attacker
    serve_degu(queue, address, max_connections=50)  # the default, where serve_degu raises it


def mode_slowloris(args, tmpdir):
    preamble = b'GET / HTTP/1.1\r\nHost: bench\r\n' + b'x-a: b\r\n' * 1000
    return _attack_mode(f'slowloris: {args.attackers} connections, a header byte every 2 s',
                        args.attackers, [(b'', preamble)], 2.0, args)


def mode_slowbody(args, tmpdir):
    scripts = [
        (b'PUT /hello HTTP/1.1\r\nHost: bench\r\ncontent-length: 1000000\r\n\r\n',
         b'x' * 1000),
        (b'PUT /hello HTTP/1.1\r\nHost: bench\r\ntransfer-encoding: chunked\r\n\r\n'
         b'ffffff\r\n', b'x' * 1000),
    ]
    return _attack_mode('slowbody: 50 connections trickle a body, a byte a second', 50,
                        scripts, 1.0, args)


MODES = {'roundtrip': mode_roundtrip, 'server': mode_server, 'client': mode_client,
         'bodies': mode_bodies, 'idle': mode_idle, 'slowloris': mode_slowloris,
         'slowbody': mode_slowbody, 'workers': mode_workers}


def main(argv=None):
    parser = argparse.ArgumentParser(description="degu's benchmarks",
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split('\n\n', 1)[1])
    parser.add_argument('mode', choices=[*MODES, 'all'])
    parser.add_argument('--count', type=int, default=20000, help='exchanges per run')
    parser.add_argument('--reps', type=int, default=3, help='repetitions (interleaved)')
    parser.add_argument('--seconds', type=int, default=5, help='server mode: seconds per run')
    parser.add_argument('--conns', type=lambda s: [int(c) for c in s.split(',')],
                        default=[1, 16, 64], help='server mode: connection counts')
    parser.add_argument('--size', type=int, default=64, help='bodies mode: MiB')
    parser.add_argument('--idle', type=int, default=1000, help='idle mode: connections')
    parser.add_argument('--attackers', type=int, default=2000,
                        help='slowloris mode: attacking connections')
    parser.add_argument('--pin', choices=('split', 'none'), default='split')
    parser.add_argument('--no-wrk', action='store_true', help='use the Python load generator')
    parser.add_argument('--no-nginx', action='store_true', help='client mode: degu as server')
    parser.add_argument('--client-server', choices=('auto', 'nginx', 'degu', 'http.server'),
                        default='auto', help='client mode: the fixed server (auto: nginx '
                        'when installed, else degu)')
    parser.add_argument('--quick', action='store_true', help='tiny counts: a smoke test')
    parser.add_argument('--baseline', metavar='DIR',
                        help='roundtrip and server modes: also run the degu of the checkout '
                        'in DIR (say a git worktree of an older commit), side by side')
    parser.add_argument('--json', help='write the results here')
    args = parser.parse_args(argv)
    if args.quick:
        (args.count, args.reps, args.seconds, args.size, args.idle) = (200, 1, 1, 4, 50)
        args.attackers = 60
        args.conns = [1, 4]
    if args.pin == 'split' and (os.cpu_count() or 1) < 2:
        args.pin = 'none'
    print(f'# python {platform.python_version()}, {os.cpu_count()} CPUs, pin={args.pin}')
    results = {}
    modes = list(MODES) if args.mode == 'all' else [args.mode]
    with tempfile.TemporaryDirectory(prefix='degu-bench.') as tmpdir:
        for mode in modes:
            results[mode] = MODES[mode](args, tmpdir).rows
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'python': platform.python_version(), 'pin': args.pin,
                       'results': results}, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
