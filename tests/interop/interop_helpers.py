"""Helpers for the interop suite: peers we did not write, each held to a deadline.

Our client and our server agree with each other by construction, so these
tests put something else on the other end of the wire:

* ``curl()`` runs the curl command line and returns, per transfer, the status,
  the header fields, the body and curl's own measurements (``-w '%{json}'``).
* ``h11_exchange()`` writes raw request bytes to a degu server and feeds every
  byte that comes back to ``h11.Connection(h11.CLIENT)``, a strict parser: a
  ``RemoteProtocolError`` fails the test.
* ``RawServer`` is a one-connection-at-a-time server in a thread, driven by a
  handler that writes hand-made bytes or drives ``h11.Connection(h11.SERVER)``.
* ``Nginx`` runs ``nginx`` in the foreground with a configuration of its own in
  a temporary folder.
* ``Gate`` is the source of a streamed body: piece *i* + 1 is produced only
  once the peer saw piece *i*, or after ``GAP`` seconds if it never does, so a
  server that holds pieces back fails without a sleep in the test.

Every socket has a timeout and every subprocess a deadline: a hang fails in
about ``DEADLINE`` seconds instead of waiting for a server's idle timeout.
"""

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import h11
import pytest
from helpers import free_port, wait_listening

from degu.client import Client
from degu.misc import TempServer

DEADLINE = 2.0  # seconds: every exchange; a hang fails loudly, not after 15 s
FAST = 0.75  # seconds: an answer whose bug was a hang must come well within this
GAP = 0.5  # seconds: the longest a Gate waits for the peer before producing anyway

REQUIRED = os.environ.get('DEGU_INTEROP_REQUIRED') == '1'

FAMILIES = ('ipv4', 'ipv6', 'unix')

HELLO = b'Hello, interop world!\n'  # hello.txt of the files_dir fixture
BIG_SIZE = 5 * 1024 * 1024  # 5 MiB (big.bin): more than any buffer on the way


# --------------------------------------------------------------------------
# Programs and address families


def need_program(name, *candidates):
    """The path of program *name*; skip the test without it (fail under CI)."""
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    path = shutil.which(name)
    if path is None:
        reason = f'{name} is not installed (the interop tests need it as a peer)'
        if REQUIRED:
            pytest.fail(f'{reason}, and DEGU_INTEROP_REQUIRED=1')
        pytest.skip(reason)
    return path


def curl_path():
    return need_program('curl')


def nginx_path():
    return need_program('nginx', '/usr/sbin/nginx')


def _have_ipv6():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(('::1', 0))
    except OSError:
        return False
    return True


HAVE_IPV6 = _have_ipv6()


@contextlib.contextmanager
def short_tmpdir():
    """A fresh folder with a short path (AF_UNIX paths are limited to 107 bytes)."""
    path = tempfile.mkdtemp(prefix='degu-interop-')
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def bind_address(family, tmpdir):
    """A degu address to bind for *family*: port 0 on loopback, or a path in *tmpdir*."""
    if family == 'ipv4':
        return ('127.0.0.1', 0)
    if family == 'ipv6':
        if not HAVE_IPV6:
            pytest.skip('no IPv6 loopback (::1) on this host')
        return ('::1', 0, 0, 0)
    assert family == 'unix'
    return os.path.join(tmpdir, 'degu.sock')


def connect(address, timeout=DEADLINE):
    """A connected socket with *timeout* to a degu address (tuple or AF_UNIX path)."""
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
        return sock
    return socket.create_connection(address[:2], timeout=timeout)


class Served:
    """A degu server for one test: its address, URLs for it, and how peers reach it."""

    def __init__(self, server):
        self.server = server
        self.address = server.address

    @property
    def family(self):
        if isinstance(self.address, str):
            return 'unix'
        return 'ipv6' if len(self.address) == 4 else 'ipv4'

    @property
    def authority(self):
        """The ``host[:port]`` of URLs for this server (``localhost`` for AF_UNIX)."""
        if isinstance(self.address, str):
            return 'localhost'
        host = self.address[0]
        if ':' in host:
            host = f'[{host}]'
        return f'{host}:{self.address[1]}'

    def url(self, path='/'):
        return f'http://{self.authority}{path}'

    @property
    def curl_args(self):
        """What curl needs besides the URL: ``--unix-socket`` for AF_UNIX."""
        if isinstance(self.address, str):
            return ['--unix-socket', self.address]
        return []

    def client(self, **options):
        options.setdefault('timeout', DEADLINE)
        return Client(self.address, **options)

    def http_client(self):
        """An ``http.client.HTTPConnection`` to this server (AF_UNIX: a connected socket)."""
        import http.client

        if isinstance(self.address, str):
            conn = http.client.HTTPConnection('localhost', timeout=DEADLINE)
            conn.sock = connect(self.address)
            return conn
        return http.client.HTTPConnection(self.address[0], self.address[1], timeout=DEADLINE)

    def urllib3_pool(self):
        """A urllib3 connection pool for this server (AF_UNIX through a connection subclass)."""
        import urllib3

        if isinstance(self.address, str):
            return UnixHTTPConnectionPool(self.address)
        return urllib3.HTTPConnectionPool(
            self.address[0], self.address[1], timeout=DEADLINE, retries=False, maxsize=1
        )

    def requests_session(self):
        """A ``requests.Session`` that reaches this server (AF_UNIX through an adapter)."""
        import requests

        session = requests.Session()
        if isinstance(self.address, str):
            session.mount('http://localhost', UnixAdapter(self.address))
        return session


@contextlib.contextmanager
def serve(app, family='ipv4', **options):
    """A thread-backed degu server for *app* on *family*, stopped on exit."""
    options.setdefault('timeout', 5)
    with short_tmpdir() as tmpdir:
        address = bind_address(family, tmpdir)
        with TempServer(address, app, thread=True, **options) as server:
            yield Served(server)


# --------------------------------------------------------------------------
# urllib3 and requests over AF_UNIX


def _unix_classes():
    import requests.adapters
    import urllib3

    class UnixHTTPConnection(urllib3.connection.HTTPConnection):
        def __init__(self, *args, unix_path, **kw):
            super().__init__(*args, **kw)
            self.unix_path = unix_path

        def _new_conn(self):
            return connect(self.unix_path, self.timeout or DEADLINE)

    class UnixHTTPConnectionPool(urllib3.HTTPConnectionPool):
        ConnectionCls = UnixHTTPConnection

        def __init__(self, path):
            super().__init__(
                'localhost', timeout=DEADLINE, retries=False, maxsize=1, unix_path=path
            )

    class UnixAdapter(requests.adapters.HTTPAdapter):
        def __init__(self, path):
            super().__init__(max_retries=0)
            self.pool = UnixHTTPConnectionPool(path)

        def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
            return self.pool

        def get_connection(self, url, proxies=None):  # requests < 2.32
            return self.pool

        def close(self):
            self.pool.close()
            super().close()

    return (UnixHTTPConnectionPool, UnixAdapter)


(UnixHTTPConnectionPool, UnixAdapter) = _unix_classes()


# --------------------------------------------------------------------------
# curl


class Transfer:
    """One curl transfer: ``status``, ``headers`` (the final response), ``body``, ``info``.

    ``info`` is curl's ``-w '%{json}'`` object (``num_connects``, ``size_upload``,
    ``time_total``...); ``interim`` holds the status codes of 1xx responses.
    """

    def __init__(self, info, blocks, body):
        self.info = info
        self.status = info['http_code']
        self.body = body
        self.interim = []
        self.headers = {}
        self.raw_headers = b''
        for block in blocks:
            (status, headers) = _parse_header_block(block)
            if 100 <= status < 200:
                self.interim.append(status)
            else:
                self.headers = headers
                self.raw_headers = block

    def __repr__(self):
        return f'<Transfer {self.status} {self.headers!r} {self.body[:60]!r} {self.info}>'


def _parse_header_block(block):
    lines = block.split(b'\r\n')
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if line:
            (name, _, value) = line.partition(b':')
            name = name.strip().lower().decode('latin-1')
            value = value.strip().decode('latin-1')
            headers[name] = f'{headers[name]}, {value}' if name in headers else value
    return (status, headers)


class CurlResult:
    def __init__(self, returncode, stderr, elapsed, transfers):
        self.returncode = returncode
        self.stderr = stderr
        self.elapsed = elapsed
        self.transfers = transfers

    def __repr__(self):
        return (
            f'<CurlResult exit {self.returncode} after {self.elapsed:.3f} s '
            f'{self.stderr!r} {self.transfers!r}>'
        )

    def check(self):
        """Assert curl exited 0; return the transfers."""
        assert self.returncode == 0, f'curl failed: {self!r}'
        return self.transfers


def curl(*urls, args=(), served=None, timeout=DEADLINE, stdin=None):
    """Fetch *urls* with one curl process (so the connection can be reused).

    *args* go before the URLs; *served* adds ``--unix-socket`` when needed.
    Each transfer gets ``--max-time`` *timeout*; the process is killed
    shortly after all of them could have timed out.
    """
    cmd = [curl_path(), '-sS', '--max-time', str(timeout), '-w', '%{json}\n']
    if served is not None:
        cmd += served.curl_args
    cmd += list(args)
    with short_tmpdir() as tmpdir:
        headers_file = os.path.join(tmpdir, 'headers')
        cmd += ['-D', headers_file]
        for i, url in enumerate(urls):
            cmd += ['-o', os.path.join(tmpdir, f'body{i}'), url]
        start = time.monotonic()
        proc = subprocess.run(
            cmd, input=stdin, capture_output=True, timeout=timeout * len(urls) + 3, check=False
        )
        elapsed = time.monotonic() - start
        infos = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        blocks = []
        if os.path.exists(headers_file):
            with open(headers_file, 'rb') as f:
                blocks = [b for b in f.read().split(b'\r\n\r\n') if b.strip()]
        transfers = []
        for i, info in enumerate(infos):
            # Header blocks belong to transfers in order: a transfer's 1xx
            # blocks, then its final block.
            mine = []
            while blocks:
                block = blocks.pop(0)
                mine.append(block)
                if not (100 <= _parse_header_block(block)[0] < 200):
                    break
            path = os.path.join(tmpdir, f'body{info.get("urlnum", i)}')
            body = b''
            if os.path.exists(path):
                with open(path, 'rb') as f:
                    body = f.read()
            transfers.append(Transfer(info, mine, body))
    return CurlResult(proc.returncode, proc.stderr, elapsed, transfers)


class StreamReader:
    """Read a pipe or socket incrementally, with timestamps, under a deadline."""

    def __init__(self, source):
        self.source = source  # a socket, or a file descriptor
        self.data = b''
        self.eof = False
        self.start = time.monotonic()

    def _read(self):
        if isinstance(self.source, socket.socket):
            return self.source.recv(65536)
        return os.read(self.source, 65536)

    def read_until(self, needle, timeout=DEADLINE):
        """Read until *needle* arrives; returns the time it did, or ``None`` (EOF, timeout)."""
        deadline = time.monotonic() + timeout
        while needle not in self.data:
            remaining = deadline - time.monotonic()
            if self.eof or remaining <= 0:
                return None
            (readable, _, _) = select.select([self.source], [], [], remaining)
            if readable:
                chunk = self._read()
                if not chunk:
                    self.eof = True
                self.data += chunk
        return time.monotonic()

    def read_to_eof(self, timeout=DEADLINE):
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self.read_until(b'\0never\0', deadline - time.monotonic())
        return self.eof


@contextlib.contextmanager
def curl_stream(url, args=(), served=None, timeout=DEADLINE + 2):
    """A running ``curl -N`` whose stdout is read with a ``StreamReader``."""
    cmd = [curl_path(), '-sSN', '--max-time', str(timeout)]
    if served is not None:
        cmd += served.curl_args
    cmd += list(args) + [url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        yield StreamReader(proc.stdout.fileno())
    finally:
        try:
            proc.wait(timeout + 1)
        except subprocess.TimeoutExpired:  # pragma: no cover - curl's own deadline failed
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


# --------------------------------------------------------------------------
# Streaming sources


class Gate:
    """The source of a streamed body, held back until the peer saw what came before.

    Piece *i* + 1 is produced once the test calls ``seen(i)`` (the peer got
    piece *i*), or after *gap* seconds if it never does.  ``on_time[i]`` says
    whether piece *i* reached the peer before the source was asked for piece
    *i* + 1 (RFC 9112 section 7: chunks are a stream, not a buffer).
    """

    def __init__(self, pieces, gap=GAP):
        self.pieces = list(pieces)
        self.gap = gap
        self._seen = [threading.Event() for _ in self.pieces]
        self.on_time = []
        self.produced = []  # time.monotonic() of each piece
        self.seen_at = {}

    def __iter__(self):
        for (i, piece) in enumerate(self.pieces):
            if i:
                self.on_time.append(self._seen[i - 1].wait(self.gap))
            self.produced.append(time.monotonic())
            yield piece

    def chunks(self):
        """The pieces as ``(extension, data)`` chunks, then the last chunk."""
        for piece in self:
            yield (None, piece)
        yield (None, b'')

    def seen(self, i):
        self.seen_at[i] = time.monotonic()
        self._seen[i].set()

    @property
    def length(self):
        return sum(len(p) for p in self.pieces)

    def h11_receive(self, conn, sock):
        """A request body read by h11 on the server side, marking each piece seen as it comes."""
        received = b''
        seen = 0
        while True:
            ev = h11_next(conn, sock)
            if type(ev) is h11.Data:
                received += ev.data
                while seen < len(self.pieces) and b''.join(self.pieces[: seen + 1]) in received:
                    self.seen(seen)
                    seen += 1
            elif type(ev) is h11.EndOfMessage:
                return received

    def check(self, peer):
        late = [i for (i, ok) in enumerate(self.on_time) if not ok]
        assert not late, (
            f'{peer}: piece(s) {late} arrived only after the source was asked for the next '
            f'one (the body was held back, not streamed); produced at '
            f'{[round(t - self.produced[0], 3) for t in self.produced]}, seen at '
            f'{ {i: round(t - self.produced[0], 3) for (i, t) in self.seen_at.items()} }'
        )


def pieces(n=3, size=16):
    """*n* distinct, recognisable pieces of about *size* bytes."""
    return [(f'<piece {i}>'.encode() + b'.' * size)[:size] for i in range(n)]


# --------------------------------------------------------------------------
# h11 as a strict parser of degu's responses


class H11Response:
    def __init__(self):
        self.status = None
        self.reason = None
        self.http_version = None
        self.headers = {}
        self.header_list = []
        self.body = b''
        self.interim = []  # the 1xx responses before this one

    def __repr__(self):
        return f'<H11Response {self.status} {self.header_list!r} {self.body[:80]!r}>'


class H11Exchange:
    def __init__(self, responses, closed, received, elapsed):
        self.responses = responses
        self.closed = closed  # the server closed the connection after the last response
        self.received = received
        self.elapsed = elapsed

    def __repr__(self):
        return f'<H11Exchange closed={self.closed} {self.received[:400]!r}>'


def h11_request(method='GET', target='/', headers=(), host='example.com'):
    """What h11 is told was sent: it needs the method (HEAD) and ``connection`` to parse."""
    fields = [('host', host)] + list(headers)
    return h11.Request(method=method, target=target, headers=fields)


class _Stalled(Exception):
    """The server sent nothing more before the deadline."""


def _next_event(conn, sock, deadline, received):
    """The next h11 event, reading from *sock* as h11 needs; ``_Stalled`` at the deadline."""
    while True:
        ev = conn.next_event()
        if ev is not h11.NEED_DATA:
            return ev
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Stalled()
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except (TimeoutError, socket.timeout):
            raise _Stalled() from None
        except ConnectionResetError:
            data = b''  # h11 reports the close, or the message it cut short
        received.extend(data)
        conn.receive_data(data)


def _h11_response(conn, sock, deadline, received, response):
    """Read one response (after any 1xx) into *response* with h11; returns it."""
    while True:
        ev = _next_event(conn, sock, deadline, received)
        if type(ev) is h11.InformationalResponse:
            response.interim.append(ev.status_code)
        elif type(ev) is h11.Response:
            response.status = ev.status_code
            response.reason = ev.reason.decode('latin-1')
            response.http_version = ev.http_version.decode()
            for (name, value) in ev.headers:
                (name, value) = (name.decode('latin-1'), value.decode('latin-1'))
                response.header_list.append((name, value))
                if name in response.headers:
                    value = f'{response.headers[name]}, {value}'
                response.headers[name] = value
        elif type(ev) is h11.Data:
            response.body += ev.data
        elif type(ev) is h11.EndOfMessage:
            return response
        elif type(ev) is h11.ConnectionClosed:
            raise AssertionError('the server closed the connection before the response ended')
        else:  # pragma: no cover
            raise AssertionError(f'unexpected h11 event {ev!r}')


def h11_exchange(address, raw, told=None, *, wait_close=False, sock=None, timeout=DEADLINE):
    """Write *raw* to the server at *address*; parse every byte that comes back with h11.

    *told* lists one ``h11.Request`` per expected response (what h11 is told
    was sent; default: one ``GET /``).  Between responses h11 starts a new
    cycle, so keep-alive and pipelining are checked byte for byte.  After the
    last response, when h11 says the connection must close (or *wait_close*),
    the server must close it within the deadline, and sending anything more
    is an error.  A ``RemoteProtocolError`` fails the test.  With *sock*, an
    open connection is used (and left open).
    """
    if told is None:
        told = [h11_request()]
    start = time.monotonic()
    deadline = start + timeout
    own = sock is None
    if own:
        sock = connect(address, timeout)
    received = bytearray()
    conn = h11.Connection(h11.CLIENT)
    responses = []
    closed = False

    def show():
        return bytes(received[:600])

    try:
        if raw:
            sock.sendall(raw)
        for (i, request) in enumerate(told):
            if i:
                if h11.MUST_CLOSE in (conn.our_state, conn.their_state):
                    pytest.fail(f'response {i - 1} said the connection closes, but {len(told)} '
                                f'responses were expected; received {show()!r}')
                conn.start_next_cycle()
            conn.send(request)
            conn.send(h11.EndOfMessage())
            response = H11Response()
            try:
                responses.append(_h11_response(conn, sock, deadline, received, response))
            except _Stalled:
                why = 'h11 waits for more'
                framing = {'content-length', 'transfer-encoding'} & set(response.headers)
                if response.status is not None and not framing:
                    why = 'no content-length nor transfer-encoding: h11 reads until the close'
                pytest.fail(f'response {i}: not complete within {timeout} s ({why}); '
                            f'received {show()!r}')
            except AssertionError as e:
                pytest.fail(f'response {i}: {e}; received {show()!r}')
        must_close = conn.their_state is h11.MUST_CLOSE
        if wait_close or must_close:
            try:
                ev = _next_event(conn, sock, deadline, received)
            except _Stalled:
                said = 'the last response says it closes, but ' if must_close else ''
                pytest.fail(f'{said}the connection stayed open; received {show()!r}')
            if type(ev) is not h11.ConnectionClosed:
                pytest.fail(f'unexpected h11 event after the last response: {ev!r}')
            closed = True
    except h11.RemoteProtocolError as e:
        pytest.fail(f'h11 refused the response: {e}; received {show()!r}')
    finally:
        if own:
            sock.close()
    return H11Exchange(responses, closed, bytes(received), time.monotonic() - start)


def assert_framed(response, *, head=False):
    """RFC 9110 section 8.6 / RFC 9112 section 6.3: a response that may carry content says
    how long it is (content-length or chunked), and 1xx/204 carry neither header."""
    headers = response.headers
    status = response.status
    if status < 200 or status == 204:
        assert 'content-length' not in headers and 'transfer-encoding' not in headers, response
    elif status == 304 or head:
        assert 'transfer-encoding' not in headers, response
    else:
        assert 'content-length' in headers or headers.get('transfer-encoding') == 'chunked', (
            f'{status} response without content-length or transfer-encoding: the peer '
            f'must wait for the close to know the body ended: {response!r}'
        )
    if 'content-length' in headers and not (head or status == 304):
        assert int(headers['content-length']) == len(response.body), response


# --------------------------------------------------------------------------
# Raw servers for degu's client


class RawServer:
    """A server in a thread: ``handler(sock, i)`` runs for each of *connections* accepts.

    The handler speaks bytes (or drives ``h11.Connection(h11.SERVER)``); its
    sockets time out after ``DEADLINE``.  An exception in the handler (an
    assertion about what the client sent) is raised again on leaving the
    ``with`` block.  ``address`` is a degu address for ``Client``.
    """

    def __init__(self, handler, connections=1, family='ipv4'):
        self.handler = handler
        self.connections = connections
        self.errors = []
        self.accepted = 0
        self.tmpdir = None
        if family == 'unix':
            self.tmpdir = tempfile.mkdtemp(prefix='degu-interop-')
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(os.path.join(self.tmpdir, 'raw.sock'))
        elif family == 'ipv6':
            if not HAVE_IPV6:
                pytest.skip('no IPv6 loopback (::1) on this host')
            self.sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            self.sock.bind(('::1', 0))
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(8)
        self.sock.settimeout(DEADLINE * 2)
        self.address = self.sock.getsockname()
        self.thread = threading.Thread(target=self._run, name='interop raw server', daemon=True)

    def _run(self):
        try:
            for i in range(self.connections):
                (sock, _) = self.sock.accept()
                self.accepted += 1
                sock.settimeout(DEADLINE)
                with sock:
                    self.handler(sock, i)
        except BaseException as e:  # handed to __exit__
            self.errors.append(e)

    def client(self, **options):
        options.setdefault('timeout', DEADLINE)
        return Client(self.address, **options)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.thread.join(DEADLINE * 2 + 1)
        self.sock.close()
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        if self.errors:
            if exc[0] is None:
                raise self.errors[0]
            add_note = getattr(exc[1], 'add_note', None)  # Python 3.11+
            if add_note is not None:
                add_note(f'the raw server handler failed too: {self.errors[0]!r}')
        assert not self.thread.is_alive(), 'the raw server thread is still running'


def read_preamble(sock, buf=b''):
    """Read up to and including a blank line; returns ``(preamble, rest)``."""
    while b'\r\n\r\n' not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f'EOF inside a request preamble: {buf[:200]!r}')
        buf += data
    (preamble, _, rest) = buf.partition(b'\r\n\r\n')
    return (preamble + b'\r\n\r\n', rest)


def drain(sock, timeout=0.2):
    """Read and drop what the peer sends until EOF, *timeout* seconds of silence,
    or ``DEADLINE``."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + DEADLINE
    try:
        while sock.recv(65536) and time.monotonic() < deadline:
            pass
    except OSError:
        pass


def h11_next(conn, sock):
    """The next event from the client h11 parses on the server side."""
    while True:
        ev = conn.next_event()
        if ev is not h11.NEED_DATA:
            return ev
        conn.receive_data(sock.recv(65536))


def h11_read_request(conn, sock):
    """``(h11.Request, body bytes)`` of the next request; ``(None, b'')`` on a clean close."""
    if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
        conn.start_next_cycle()
    request = None
    body = b''
    while True:
        ev = h11_next(conn, sock)
        if type(ev) is h11.Request:
            request = ev
        elif type(ev) is h11.Data:
            body += ev.data
        elif type(ev) is h11.EndOfMessage:
            return (request, body)
        elif type(ev) is h11.ConnectionClosed:
            return (None, b'')


def h11_send(conn, sock, *events):
    for ev in events:
        data = conn.send(ev)
        if data:
            sock.sendall(data)


def h11_respond(conn, sock, status, headers=(), body=b''):
    """Send a complete response with h11 (content-length framing)."""
    fields = [('content-length', str(len(body)))] + list(headers)
    h11_send(conn, sock, h11.Response(status_code=status, headers=fields))
    if body:
        h11_send(conn, sock, h11.Data(data=body))
    h11_send(conn, sock, h11.EndOfMessage())


# --------------------------------------------------------------------------
# nginx


def _nginx_temp_paths(nginx, prefix):
    """``*_temp_path`` lines inside *prefix* for every module this nginx was built with."""
    info = subprocess.run([nginx, '-V'], capture_output=True, timeout=DEADLINE).stderr.decode()
    lines = [f'client_body_temp_path {prefix}/client_body;', f'proxy_temp_path {prefix}/proxy;']
    for module in ('fastcgi', 'uwsgi', 'scgi'):
        if f'--without-http_{module}_module' not in info:
            lines.append(f'{module}_temp_path {prefix}/{module};')
    return '\n    '.join(lines)


_NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{
    worker_connections 256;
}}
http {{
    access_log {prefix}/access.log;
    {temp_paths}
    default_type application/octet-stream;
    sendfile off;
    keepalive_timeout 10s;
    {http}
    server {{
        listen {listen};
        server_name localhost;
        {server}
    }}
}}
"""


class Nginx:
    """``nginx`` in the foreground with its own configuration in a temporary folder.

    *server* is the text inside ``server {}`` (``listen`` is added), *http*
    extra text at the ``http {}`` level (an ``upstream`` block).  With
    *unix* nginx listens on an AF_UNIX socket instead of 127.0.0.1.
    ``address`` is a degu address for it.
    """

    def __init__(self, server, http='', unix=False):
        self.nginx = nginx_path()
        self.server_text = server
        self.http_text = http
        self.unix = unix
        self.prefix = tempfile.mkdtemp(prefix='degu-nginx-')
        self.proc = None
        self.address = None

    def _conf(self, listen):
        return _NGINX_CONF.format(
            prefix=self.prefix,
            temp_paths=_nginx_temp_paths(self.nginx, self.prefix),
            http=self.http_text,
            listen=listen,
            server=self.server_text,
        )

    def start(self):
        for _ in range(3):  # a free port can be taken between the check and nginx's bind
            if self.unix:
                self.address = os.path.join(self.prefix, 'nginx.sock')
                listen = f'unix:{self.address}'
            else:
                port = free_port()
                self.address = ('127.0.0.1', port)
                listen = f'127.0.0.1:{port}'
            conf = os.path.join(self.prefix, 'nginx.conf')
            with open(conf, 'w') as f:
                f.write(self._conf(listen))
            self.proc = subprocess.Popen(
                [self.nginx, '-e', f'{self.prefix}/error.log', '-p', self.prefix, '-c', conf],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            if wait_listening(self.proc, self.address):
                return self
            self.stop()
        pytest.fail(f'nginx did not start: {self.error_log()[-2000:]}')

    def error_log(self):
        try:
            with open(os.path.join(self.prefix, 'error.log')) as f:
                return f.read()
        except OSError:
            return ''

    def url(self, path='/'):
        if self.unix:
            return f'http://localhost{path}'
        return f'http://{self.address[0]}:{self.address[1]}{path}'

    @property
    def curl_args(self):
        return ['--unix-socket', self.address] if self.unix else []

    def client(self, **options):
        options.setdefault('timeout', DEADLINE)
        return Client(self.address, **options)

    def stop(self):
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # fast shutdown: no wait for keep-alive peers
            try:
                proc.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stderr.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.prefix, ignore_errors=True)


def nginx_upstream(address):
    """The ``server`` of an nginx ``upstream`` block for a degu address."""
    if isinstance(address, str):
        return f'unix:{address}'
    if len(address) == 4:
        return f'[{address[0]}]:{address[1]}'
    return f'{address[0]}:{address[1]}'


def nginx_proxy(upstream, locations='', proxy=''):
    """``(http, server)`` texts of nginx as a reverse proxy to a degu server at *upstream*.

    HTTP/1.1 upstream with keep-alive (``connection`` cleared), responses
    not buffered (streaming reaches the client as it comes), tight timeouts.
    """
    http = f"""
    upstream degu {{
        server {nginx_upstream(upstream)};
        keepalive 4;
    }}"""
    server = f"""
        proxy_connect_timeout 2s;
        proxy_read_timeout 3s;
        proxy_send_timeout 3s;
        client_max_body_size 50m;
        {locations}
        location / {{
            proxy_pass http://degu;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            {proxy}
        }}"""
    return (http, server)
