"""Tests for degu.client: options, addresses, TLS settings, and every way a
response can go wrong, driven by scripted peers that send exact bytes.

Scripted peers come in two kinds: a ``socketpair()`` whose far end the test
writes by hand (fast enough to cut a response at every offset), and small
TCP / AF_UNIX servers in a thread (``Scripted``) for the cases that need a
real listening socket.  Live tests against degu.server and http.server are in
test_client_live.py.
"""

import errno
import gc
import os
import random
import socket
import ssl
import tempfile
import threading
import time
import weakref

import pytest
from helpers import MOVE_SIZES, FakeSocket, encode_chunks, random_chunks
from hypothesis import given, settings
from hypothesis import strategies as st

from degu import client as client_mod
from degu.base import (
    BODY_CONSUMED,
    BodyIter,
    ChunkedBody,
    ChunkedBodyIter,
    ConnectionClosed,
    ConnectionTimedOut,
    ContentRange,
    EmptyPreambleError,
    UnsupportedResponse,
)
from degu.client import (
    Client,
    Connection,
    SSLClient,
    build_client_sslctx,
    is_temp_network_error,
)

TIMEOUT = 5  # seconds: every socket a test makes


# --------------------------------------------------------------------------
# Helpers


class Peer:
    """The far end of a ``socketpair()``: reads requests, writes exact bytes."""

    def __init__(self, sock):
        self.sock = sock
        sock.settimeout(TIMEOUT)
        self.buf = b''

    def send(self, data):
        self.sock.sendall(data)

    def eof(self):
        self.sock.shutdown(socket.SHUT_WR)

    def recv_request(self):
        """One request preamble and its content-length body, as bytes."""
        while b'\r\n\r\n' not in self.buf:
            data = self.sock.recv(65536)
            assert data, 'peer: EOF inside a request preamble'
            self.buf += data
        (preamble, _, self.buf) = self.buf.partition(b'\r\n\r\n')
        length = 0
        for line in preamble.split(b'\r\n')[1:]:
            (name, _, value) = line.partition(b':')
            if name.lower() == b'content-length':
                length = int(value)
        while len(self.buf) < length:
            data = self.sock.recv(65536)
            assert data, 'peer: EOF inside a request body'
            self.buf += data
        body = self.buf[:length]
        self.buf = self.buf[length:]
        return (preamble, body)

    def close(self):
        self.sock.close()


def pair(**kw):
    """A ``Connection`` over one end of a socketpair, and the ``Peer`` at the other."""
    (a, b) = socket.socketpair()
    a.settimeout(TIMEOUT)
    return (Connection(a, None, **kw), Peer(b))


class Scripted:
    """A listening socket and a thread that runs ``script(conn)`` per connection.

    Used as a context manager; on exit the thread is joined and any error in
    the script is raised in the test.
    """

    def __init__(self, *scripts, family=socket.AF_INET):
        if family == socket.AF_UNIX:
            self.tmp = tempfile.TemporaryDirectory()
            address = os.path.join(self.tmp.name, 'scripted.socket')
        elif family == socket.AF_INET6:
            address = ('::1', 0, 0, 0)
        else:
            address = ('127.0.0.1', 0)
        self.lsock = socket.socket(family, socket.SOCK_STREAM)
        self.lsock.bind(address)
        self.lsock.listen(5)
        self.lsock.settimeout(TIMEOUT)
        self.address = self.lsock.getsockname()
        self.scripts = scripts
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for script in self.scripts:
                (sock, _) = self.lsock.accept()
                sock.settimeout(TIMEOUT)
                try:
                    script(Peer(sock))
                finally:
                    sock.close()
        except BaseException as e:  # reported by __exit__
            self.error = e

    def client(self, **options):
        return Client(self.address, **options)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.thread.join(TIMEOUT)
        self.lsock.close()
        if hasattr(self, 'tmp'):
            self.tmp.cleanup()
        assert not self.thread.is_alive(), 'scripted server stuck'
        if self.error is not None and exc[0] is None:
            raise self.error


OK = b'HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nhello world'
CHUNKED = (
    b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n'
    b'5;k=v\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n'
)


# --------------------------------------------------------------------------
# Client options, addresses, base headers


def test_client_defaults():
    c = Client(('127.0.0.1', 5984))
    assert c.address == ('127.0.0.1', 5984)
    assert c.options == {}
    assert c.host == '127.0.0.1:5984'
    assert c.authorization is None
    assert c.timeout == 65
    assert c.on_connect is None
    assert c.max_pending == 16
    assert c.expect100_timeout == 1.0
    assert c.base_headers == (('host', '127.0.0.1:5984'),)
    assert repr(c) == "Client(('127.0.0.1', 5984))"


@pytest.mark.parametrize(
    ('address', 'host'),
    [
        (('en.wikipedia.org', 80), 'en.wikipedia.org'),
        (('192.168.1.2', 5984), '192.168.1.2:5984'),
        (('fe80::1', 5984, 0, 3), '[fe80::1]:5984'),
        (('::1', 80, 0, 0), '[::1]'),
        # RFC 9112 section 3.2: a host always; over AF_UNIX what nginx,
        # aiohttp and curl --unix-socket use
        ('/tmp/foo.socket', 'localhost'),
        (b'\x0000022', 'localhost'),
        (b'', 'localhost'),
        (('fe80::1%eth0', 8080), '[fe80::1]:8080'),  # a zone means nothing to the server
    ],
)
def test_client_default_host(address, host):
    assert Client(address).host == host


def test_sslclient_default_host_port_443():
    ctx = build_client_sslctx({})
    assert SSLClient(ctx, ('example.com', 443)).host == 'example.com'
    assert SSLClient(ctx, ('example.com', 80)).host == 'example.com:80'
    assert SSLClient(ctx, ('example.com', 443)).ssl_host == 'example.com'
    assert SSLClient(ctx, ('::1', 443, 0, 0)).ssl_host == '::1'
    assert SSLClient(ctx, '/tmp/x.socket').ssl_host is None
    assert SSLClient(ctx, ('a', 1), ssl_host='b').ssl_host == 'b'
    c = SSLClient(ctx, ('a', 1))
    assert repr(c) == f"SSLClient({ctx!r}, ('a', 1))"


@pytest.mark.parametrize(
    ('address', 'exc', 'message'),
    [
        (
            ['127.0.0.1', 80],
            TypeError,
            "address: need a (<class 'tuple'>, <class 'str'>, <class 'bytes'>); "
            "got a <class 'list'>: ['127.0.0.1', 80]",
        ),
        (('a', 1, 2), ValueError, "address: must have 2 or 4 items; got ('a', 1, 2)"),
        (('a',), ValueError, "address: must have 2 or 4 items; got ('a',)"),
        ('foo', ValueError, "address: bad socket filename: 'foo'"),
        ('/tmp/../tmp/foo', ValueError, "address: bad socket filename: '/tmp/../tmp/foo'"),
    ],
)
def test_client_bad_address(address, exc, message):
    with pytest.raises(exc) as e:
        Client(address)
    assert str(e.value) == message


def test_client_options():
    def on_connect(conn):
        return True

    c = Client(
        ('127.0.0.1', 80),
        host=None,
        authorization='Basic xyz',
        timeout=2.5,
        on_connect=on_connect,
        max_pending=3,
        expect100_timeout=0.25,
    )
    assert c.host is None
    assert c.base_headers == (('authorization', 'Basic xyz'),)
    assert (c.timeout, c.on_connect, c.max_pending, c.expect100_timeout) == (
        2.5,
        on_connect,
        3,
        0.25,
    )
    assert Client(('a', 1), timeout=None).timeout is None
    c = Client(('a', 1), authorization='x')
    assert c.base_headers == (('authorization', 'x'), ('host', 'a:1'))


@pytest.mark.parametrize(
    ('options', 'exc', 'message'),
    [
        ({'foo': 1, 'bar': 2}, TypeError, 'unsupported Client() **options: bar, foo'),
        ({'ssl_host': 'x'}, TypeError, 'unsupported Client() **options: ssl_host'),
        (
            {'host': b'x'},
            TypeError,
            "host: need a (<class 'str'>, <class 'NoneType'>); got a <class 'bytes'>: b'x'",
        ),
        (
            {'authorization': 1},
            TypeError,
            "authorization: need a (<class 'str'>, <class 'NoneType'>); got a <class 'int'>: 1",
        ),
        (
            {'timeout': '1'},
            TypeError,
            "timeout: need a (<class 'int'>, <class 'float'>, <class 'NoneType'>); "
            "got a <class 'str'>: '1'",
        ),
        (
            {'timeout': True},
            TypeError,
            "timeout: need a (<class 'int'>, <class 'float'>, <class 'NoneType'>); "
            "got a <class 'bool'>: True",
        ),
        ({'timeout': 0}, ValueError, 'timeout must be > 0; got 0'),
        ({'timeout': -1.5}, ValueError, 'timeout must be > 0; got -1.5'),
        ({'on_connect': 'x'}, TypeError, "on_connect: not callable: 'x'"),
        ({'max_pending': 0}, ValueError, 'need 1 <= max_pending <= 100; got 0'),
        ({'max_pending': 101}, ValueError, 'need 1 <= max_pending <= 100; got 101'),
        (
            {'max_pending': 2.0},
            TypeError,
            "max_pending: need a <class 'int'>; got a <class 'float'>: 2.0",
        ),
        (
            {'expect100_timeout': None},
            TypeError,
            "expect100_timeout: need a (<class 'int'>, <class 'float'>); "
            "got a <class 'NoneType'>: None",
        ),
        ({'expect100_timeout': 0}, ValueError, 'expect100_timeout must be > 0; got 0'),
    ],
)
def test_client_bad_options(options, exc, message):
    with pytest.raises(exc) as e:
        Client(('127.0.0.1', 80), **options)
    assert str(e.value) == message


def test_set_base_header():
    c = Client(('a', 1))
    c.set_base_header('x-b', 'b')
    c.set_base_header('authorization', 'z')
    assert c.base_headers == (('authorization', 'z'), ('host', 'a:1'), ('x-b', 'b'))
    c.set_base_header('x-b', 'c')
    assert c.base_headers == (('authorization', 'z'), ('host', 'a:1'), ('x-b', 'c'))
    for name in ('x-b', 'authorization', 'host', 'not-there'):
        c.set_base_header(name, None)
    assert c.base_headers is None
    with pytest.raises(ValueError) as e:
        c.set_base_header('X-B', 'c')
    assert str(e.value) == "bad base header name: 'X-B'"
    with pytest.raises(TypeError) as e:
        c.set_base_header(b'x', 'c')
    assert str(e.value) == "name: need a <class 'str'>; got a <class 'bytes'>: b'x'"
    with pytest.raises(TypeError) as e:
        c.set_base_header('x', 1)
    assert (
        str(e.value) == "value: need a (<class 'str'>, <class 'NoneType'>); got a <class 'int'>: 1"
    )


def test_connect_on_connect():
    seen = []

    def accept(conn):
        seen.append(conn)
        return True

    def reject(conn):
        seen.append(conn)
        return 1  # truthy is not True

    def boom(conn):
        seen.append(conn)
        raise RuntimeError('boom')

    with Scripted(lambda p: None, lambda p: None, lambda p: None) as s:
        conn = s.client(on_connect=accept).connect()
        assert seen[-1] is conn and not conn.closed
        conn.close()
        with pytest.raises(ValueError) as e:
            s.client(on_connect=reject).connect()
        assert str(e.value) == 'on_connect() did not return True'
        assert seen[-1].closed
        with pytest.raises(RuntimeError):
            s.client(on_connect=boom).connect()
        assert seen[-1].closed


@pytest.mark.parametrize('family', [socket.AF_INET, socket.AF_INET6, socket.AF_UNIX])
def test_create_socket_families(family):
    def script(peer):
        (preamble, body) = peer.recv_request()
        assert preamble.split(b'\r\n')[0] == b'GET /x HTTP/1.1'
        peer.send(OK)

    with Scripted(lambda p: None, script, family=family) as s:
        client = s.client(timeout=TIMEOUT)
        sock = client.create_socket()
        try:
            assert sock.family == family
            assert sock.gettimeout() == TIMEOUT
            if family == socket.AF_UNIX:
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED) == 1
            else:
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            sock.close()
        with client.connect() as conn:
            r = conn.get('/x', {})
            assert (r.status, r.reason, r.body.read()) == (200, 'OK', b'hello world')
        assert conn.closed


def test_abstract_unix_address():
    lsock = socket.socket(socket.AF_UNIX)
    lsock.bind(b'')
    lsock.listen(1)
    lsock.settimeout(TIMEOUT)
    try:
        client = Client(lsock.getsockname(), timeout=TIMEOUT)
        assert client.host == 'localhost'
        assert client.base_headers == (('host', 'localhost'),)
        with client.connect() as conn:
            (peer, _) = lsock.accept()
            peer.close()
            assert conn.sock.family == socket.AF_UNIX
    finally:
        lsock.close()


# --------------------------------------------------------------------------
# TLS settings (live TLS tests are in test_client_live.py)


def test_build_client_sslctx_defaults():
    ctx = build_client_sslctx({})
    assert ctx.protocol == ssl.PROTOCOL_TLS_CLIENT
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname is True
    assert ctx.options & ssl.OP_NO_COMPRESSION
    for cipher in ctx.get_ciphers():
        if cipher['protocol'] == 'TLSv1.2':
            assert cipher['kea'] == 'kx-ecdhe' and cipher['aead'], cipher['name']
    assert client_mod._check_sslctx(ctx) is ctx


@pytest.mark.parametrize(
    ('sslconfig', 'exc', 'message'),
    [
        ([], TypeError, "sslconfig: need a <class 'dict'>; got a <class 'list'>: []"),
        (
            {'check_hostname': 1},
            TypeError,
            "sslconfig['check_hostname']: need a <class 'bool'>; got a <class 'int'>: 1",
        ),
        (
            {'check_hostname': False},
            ValueError,
            'check_hostname must be True when using default verify paths',
        ),
        (
            {'key_file': '/k.pem'},
            ValueError,
            "sslconfig['key_file'] provided without sslconfig['cert_file']",
        ),
        (
            {'ca_file': 'ca.pem'},
            ValueError,
            "sslconfig['ca_file']: not absolute, normalized path: 'ca.pem'",
        ),
        (
            {'ca_path': '/a/../b'},
            ValueError,
            "sslconfig['ca_path']: not absolute, normalized path: '/a/../b'",
        ),
        (
            {'cert_file': 'c.pem'},
            ValueError,
            "sslconfig['cert_file']: not absolute, normalized path: 'c.pem'",
        ),
        ({'bogus': 1, 'ca': 2}, ValueError, "unsupported sslconfig keys: 'bogus', 'ca'"),
    ],
)
def test_build_client_sslctx_errors(sslconfig, exc, message):
    with pytest.raises(exc) as e:
        build_client_sslctx(sslconfig)
    assert str(e.value) == message


def test_sslclient_validates_sslctx():
    with pytest.raises(TypeError) as e:
        SSLClient('ctx', ('a', 1))
    assert str(e.value) == 'sslctx must be an ssl.SSLContext'

    def fresh():
        return build_client_sslctx({})

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with pytest.raises(ValueError) as e:
        SSLClient(ctx, ('a', 1))
    assert str(e.value) == 'sslctx.protocol must be ssl.PROTOCOL_TLS_CLIENT'
    ctx = fresh()
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with pytest.raises(ValueError) as e:
        SSLClient(ctx, ('a', 1))
    assert str(e.value) == 'sslctx.minimum_version must be >= ssl.TLSVersion.TLSv1_2'
    ctx = fresh()
    ctx.options &= ~ssl.OP_NO_COMPRESSION
    with pytest.raises(ValueError) as e:
        SSLClient(ctx, ('a', 1))
    assert str(e.value) == 'sslctx.options must include ssl.OP_NO_COMPRESSION'
    ctx = fresh()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with pytest.raises(ValueError) as e:
        SSLClient(ctx, ('a', 1))
    assert str(e.value) == 'sslctx.verify_mode must be ssl.CERT_REQUIRED'
    # TLS 1.3 only is fine.
    ctx = fresh()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    assert SSLClient(ctx, ('a', 1)).sslctx is ctx
    # An sslconfig dict is built into a context.
    assert isinstance(SSLClient({}, ('a', 1)).sslctx, ssl.SSLContext)


# --------------------------------------------------------------------------
# is_temp_network_error


@pytest.mark.parametrize(
    ('exc', 'expected'),
    [
        (ConnectionClosed('x'), True),
        (EmptyPreambleError('x'), True),
        (ConnectionTimedOut('x'), True),
        (ConnectionResetError(), True),
        (BrokenPipeError(), True),
        (TimeoutError(), True),
        (socket.timeout(), True),
        (InterruptedError(), True),
        (ssl.SSLEOFError(), True),
        (ssl.SSLZeroReturnError(), True),
        (ssl.SSLSyscallError(), True),
        (socket.gaierror(socket.EAI_AGAIN, 'again'), True),
        (socket.gaierror(socket.EAI_NONAME, 'no such host'), False),
        (OSError(errno.EHOSTUNREACH, 'x'), True),
        (OSError(errno.ENETUNREACH, 'x'), True),
        (OSError(errno.EPIPE, 'x'), True),
        (OSError(errno.ENOENT, 'x'), False),
        (OSError(errno.EBADF, 'x'), False),
        (ValueError('bad'), False),
        (UnsupportedResponse('x'), False),
        (ssl.SSLCertVerificationError(), False),
        (KeyError('x'), False),
    ],
)
def test_is_temp_network_error(exc, expected):
    assert is_temp_network_error(exc) is expected


# --------------------------------------------------------------------------
# Connection basics


class ClosingSocket:
    def __init__(self):
        self.calls = []

    def recv_into(self, buf):
        return 0

    def send(self, data):
        return len(data)

    def close(self):
        self.calls.append('close')


def test_connection_init():
    sock = ClosingSocket()
    conn = Connection(sock, None)
    assert conn.sock is sock and conn.base_headers is None
    assert conn.api is client_mod.api and conn.bodies is conn.api
    assert conn.closed is False and conn.pending == ()
    assert (conn.max_pending, conn.expect100_timeout) == (16, 1.0)
    assert repr(conn) == f'Connection({sock!r})'
    with pytest.raises(TypeError) as e:
        Connection(sock, [('a', 'b')])
    assert (
        str(e.value) == "base_headers: need a <class 'tuple'>; got a <class 'list'>: [('a', 'b')]"
    )
    with pytest.raises(AttributeError):
        Connection(object(), None)
    assert conn.close() is None
    assert sock.calls == ['close']
    assert conn.close() is None
    assert sock.calls == ['close']
    assert conn.closed
    with pytest.raises(ConnectionClosed) as e:
        conn.get('/', {})
    assert str(e.value) == 'Connection is closed'
    assert e.value.unanswered == ()
    assert not isinstance(e.value, ValueError)  # a ConnectionError only


def test_connection_gc_closes():
    (conn, peer) = pair()
    sock = conn.sock
    del conn
    import gc

    gc.collect()
    assert sock.fileno() == -1
    peer.close()


def test_request_writes_exact_bytes_and_mutates_headers():
    (a, b) = socket.socketpair()
    a.settimeout(TIMEOUT)
    peer = Peer(b)
    conn = Connection(a, (('authorization', 'x'), ('host', 'example.com')))
    headers = {'host': 'caller', 'x-y': 'z'}
    peer.send(OK)
    r = conn.put('/a?b', headers, b'data')
    assert headers == {
        'host': 'example.com',
        'x-y': 'z',
        'authorization': 'x',
        'content-length': 4,
    }
    assert r.body.read() == b'hello world'
    (preamble, body) = peer.recv_request()
    assert preamble == (
        b'PUT /a?b HTTP/1.1\r\nauthorization: x\r\ncontent-length: 4\r\n'
        b'host: example.com\r\nx-y: z'
    )
    assert body == b'data'
    # get_range sets a range header (set if absent, else it must agree).
    peer.send(
        b'HTTP/1.1 206 Partial Content\r\ncontent-range: bytes 2-4/11\r\n'
        b'content-length: 3\r\n\r\nllo'
    )
    headers = {}
    r = conn.get_range('/f', headers, 2, 5)
    assert str(headers['range']) == 'bytes=2-4'
    assert (r.status, r.headers['content-range'].stop, r.body.read()) == (206, 5, b'llo')
    assert peer.recv_request()[0].startswith(
        b'GET /f HTTP/1.1\r\nauthorization: x\r\nhost: example.com\r\nrange: bytes=2-4'
    )
    with pytest.raises(ValueError) as e:
        conn.get_range('/f', {'range': 'bytes=0-0'}, 2, 5)
    assert str(e.value) == "'range' mismatch: Range(2, 5) != 'bytes=0-0'"
    conn.close()
    peer.close()


@pytest.mark.parametrize('method', ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'])
def test_any_method_may_carry_a_body(method):
    (conn, peer) = pair()
    peer.send(b'HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n')
    r = conn.request(method, '/', {}, b'xyz')
    assert r.body is None if method == 'HEAD' else r.body.read() == b''
    assert peer.recv_request() == (f'{method} / HTTP/1.1\r\ncontent-length: 3'.encode(), b'xyz')
    conn.close()
    peer.close()


@pytest.mark.parametrize(
    ('args', 'exc', 'message'),
    [
        (('get', '/', {}, None), ValueError, "bad method: 'get'"),
        (('FOO', '/', {}, None), ValueError, "bad method: 'FOO'"),
        (
            (b'GET', '/', {}, None),
            TypeError,
            "method: need a <class 'str'>; got a <class 'bytes'>: b'GET'",
        ),
        (
            ('GET', '/', [], None),
            TypeError,
            "headers: need a <class 'dict'>; got a <class 'list'>: []",
        ),
        (('GET', '/', {'x': 'a\r\nb'}, None), ValueError, "bad header value: 'x': 'a\\r\\nb'"),
        (
            ('GET', '/ x', {}, None),
            ValueError,
            "bad uri: '/ x': a request-target must be percent-encoded"
            ' (degu.util.build_target() does it)',
        ),
        (
            ('PUT', '/', {'content-length': 4}, b'abc'),
            ValueError,
            "'content-length' mismatch: 3 != 4",
        ),
        (
            ('PUT', '/', {}, 'abc'),
            TypeError,
            'bad body type: need bytes, bytearray, memoryview, a binary file, a body object'
            " or None; got a <class 'str'>: 'abc'",
        ),
        (
            ('PUT', '/', {'transfer-encoding': 'chunked'}, b'abc'),
            ValueError,
            'cannot have both content-length and transfer-encoding headers',
        ),
    ],
)
def test_request_argument_errors_close(args, exc, message):
    (conn, peer) = pair()
    with pytest.raises(exc) as e:
        conn.request(*args)
    assert str(e.value) == message
    assert conn.closed  # any error in the request's arguments closes, as in Degu
    peer.close()


# --------------------------------------------------------------------------
# Truncation: never partial data


def _readers():
    def read(body):
        return body.read()

    def read_sized(body):
        parts = []
        for _ in range(100):
            data = body.read(3)
            if not data:
                return b''.join(parts)
            parts.append(data)
        raise AssertionError('too many reads')

    def iterate(body):
        return b''.join(c[1] if type(c) is tuple else c for c in body)

    def write_to(body):
        import io

        out = io.BytesIO()
        body.write_to(out)
        if body.chunked:  # re-encoded: decode it again
            return ChunkedBody(io.BytesIO(out.getvalue())).read()
        return out.getvalue()

    def readinto(body):
        if body.chunked:
            return body.read()
        buf = bytearray(64)
        n = body.readinto(buf)
        assert n == body.content_length  # never a short count
        return bytes(buf[:n])

    return [read, read_sized, iterate, write_to, readinto]


@pytest.mark.parametrize('full', [OK, CHUNKED], ids=['length', 'chunked'])
@pytest.mark.parametrize('reader', _readers(), ids=lambda f: f.__name__)
def test_truncated_response_at_every_offset(full, reader):
    body_start = full.index(b'\r\n\r\n') + 4
    for cut in range(len(full)):
        (conn, peer) = pair()
        peer.send(full[:cut])
        peer.eof()
        try:
            if cut < body_start:
                with pytest.raises(ConnectionClosed) as e:
                    conn.get('/x', {})
                if cut == 0:
                    assert type(e.value) is EmptyPreambleError
                    assert str(e.value) == 'response preamble is empty'
                else:
                    assert str(e.value).startswith('response preamble truncated: ')
                assert e.value.unanswered == (('GET', '/x'),)
            else:
                r = conn.get('/x', {})
                assert r.status == 200
                with pytest.raises(ConnectionClosed) as e:
                    data = reader(r.body)
                    pytest.fail(f'cut={cut}: partial data returned: {data!r}')
                assert r.body.state == 3  # BODY_ERROR
            assert conn.closed, cut
            with pytest.raises(ConnectionClosed):
                conn.get('/x', {})
        finally:
            conn.close()
            peer.close()
    # And uncut, every reader gets everything.
    (conn, peer) = pair()
    peer.send(full)
    r = conn.get('/x', {})
    assert reader(r.body) == b'hello world'
    assert r.body.state == BODY_CONSUMED
    assert not conn.closed
    conn.close()
    peer.close()


def test_truncated_body_messages():
    (conn, peer) = pair()
    peer.send(OK[:-3])
    peer.eof()
    r = conn.get('/', {})
    with pytest.raises(ConnectionClosed) as e:
        r.body.read()
    assert str(e.value) == 'expected to read 11 bytes, but received 8'
    peer.close()
    (conn, peer) = pair()
    peer.send(CHUNKED[:-30])
    peer.eof()
    r = conn.get('/', {})
    assert r.body.readchunk() == (('k', 'v'), b'hello')
    with pytest.raises(ConnectionClosed) as e:
        r.body.readchunk()
    assert str(e.value) == "chunk line truncated: b''"
    assert conn.closed
    peer.close()


def test_reset_mid_body_is_connection_closed():
    with Scripted(_reset_after(OK[:-4])) as s:
        conn = s.client(timeout=TIMEOUT).connect()
        r = conn.get('/', {})
        with pytest.raises(ConnectionClosed) as e:
            r.body.read()
        assert conn.closed
        assert isinstance(e.value.__cause__, ConnectionResetError) or 'expected to read' in str(
            e.value
        )


def _reset_after(data):
    def script(peer):
        peer.recv_request()
        peer.send(data)
        # SO_LINGER 0: close() sends RST instead of FIN.
        peer.sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b'\x01\x00\x00\x00\x00\x00\x00\x00'
        )

    return script


# --------------------------------------------------------------------------
# Response framing


@pytest.mark.parametrize('interim', [
    b'HTTP/1.1 103 Early Hints\r\nlink: </s.css>; rel=preload\r\n\r\n',
    b'HTTP/1.1 102 Processing\r\n\r\n',
    b'HTTP/1.1 100 Continue\r\n\r\n',  # unasked for: skipped like any other
    b'HTTP/1.1 199 Whatever\r\ncontent-length: 5\r\n\r\n',  # a 1xx never has a body
    b'HTTP/1.1 103 Early Hints\r\n\r\n' * 16,
])
def test_interim_responses_are_skipped(interim):
    # RFC 9110 section 15.2: a client must skip any 1xx it did not expect, or
    # every later response on the connection goes to the wrong request.
    (conn, peer) = pair()
    peer.send(interim + OK + interim + b'HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n')
    r = conn.get('/', {})
    assert (r.status, r.body.read()) == (200, b'hello world')
    r = conn.get('/', {})
    assert (r.status, r.reason) == (404, 'Not Found')
    assert not conn.closed
    conn.close()
    peer.close()


def test_too_many_interim_responses():
    (conn, peer) = pair()
    peer.send(b'HTTP/1.1 103 Early Hints\r\n\r\n' * 17 + OK)
    with pytest.raises(ValueError) as e:
        conn.get('/', {})
    assert str(e.value) == 'more than 16 interim responses'
    assert conn.closed
    peer.close()


def test_101_is_unsupported():
    (conn, peer) = pair()
    peer.send(b'HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n')
    with pytest.raises(UnsupportedResponse) as e:
        conn.get('/', {})
    assert str(e.value) == '101 Switching Protocols is not supported'
    assert conn.closed
    peer.close()


@pytest.mark.parametrize(
    ('method', 'status_line'),
    [
        ('GET', b'HTTP/1.1 204 No Content'),
        ('GET', b'HTTP/1.1 304 Not Modified'),
        ('HEAD', b'HTTP/1.1 200 OK'),
        ('HEAD', b'HTTP/1.1 404 Not Found'),
    ],
)
@pytest.mark.parametrize(
    'framing', [b'content-length: 12', b'transfer-encoding: chunked'], ids=['cl', 'te']
)
def test_no_body_whatever_the_headers_say(method, status_line, framing):
    (conn, peer) = pair()
    peer.send(status_line + b'\r\n' + framing + b'\r\n\r\n' + OK)
    conn.send_request(method, '/a', {}, None)
    conn.send_request('GET', '/b', {}, None)
    r = conn.read_response()
    assert r.body is None
    assert r.status == int(status_line[9:12])
    r = conn.read_response()
    assert (r.status, r.body.read()) == (200, b'hello world')
    assert conn.pending == ()
    assert not conn.closed
    conn.close()
    peer.close()


BAD_RESPONSES = [
    (
        b'HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\nabc',
        ValueError,
        'cannot have both content-length and transfer-encoding headers',
    ),
    (
        b'HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 3\r\n\r\nabc',
        ValueError,
        "duplicate header: 'content-length'",
    ),
    (b'HTTP/1.1 200 OK\r\ncontent-length: 3, 3\r\n\r\nabc', ValueError, None),
    (b'HTTP/1.1 200 OK\r\ncontent-length: -3\r\n\r\nabc', ValueError, None),
    (b'HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\nabc', UnsupportedResponse, None),
    (
        b'HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n',
        UnsupportedResponse,
        None,
    ),
    (b'HTTP/2.0 200 OK\r\ncontent-length: 0\r\n\r\n', UnsupportedResponse, None),
    (b'HTTP/1.1 600 Bad\r\n\r\n', ValueError, None),
    (b'HTTP/1.1 200 OK\r\n folded: x\r\n\r\n', ValueError, None),
    (b'HTTP/1.1 200 OK\r\nbad header\r\n\r\n', ValueError, None),
    (b'HTTP/1.1 200 OK\nx: y\r\n\r\n', ValueError, None),
    (b'ICY 200 OK\r\n\r\n', ValueError, None),
]


@pytest.mark.parametrize(('data', 'exc', 'message'), BAD_RESPONSES)
def test_bad_response_preamble(data, exc, message):
    (conn, peer) = pair()
    peer.send(data)
    with pytest.raises(exc) as e:
        conn.get('/', {})
    assert not isinstance(e.value, ConnectionClosed)
    if message is not None:
        assert str(e.value) == message
    assert conn.closed
    peer.close()


@pytest.mark.parametrize(
    'size_line',
    [b'', b'x', b' 5', b'5 ', b'-1', b'0x5', b'12345678', b'1000001', b'5;', b'5;=v', b'5\n'],
)
def test_bad_chunk_size(size_line):
    (conn, peer) = pair()
    peer.send(
        b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n'
        + size_line
        + b'\r\nhello\r\n0\r\n\r\n'
    )
    r = conn.get('/', {})
    with pytest.raises(ValueError) as e:
        r.body.read()
    assert not isinstance(e.value, ConnectionClosed)
    assert conn.closed
    peer.close()


@pytest.mark.parametrize(
    'chunks', [b'5\r\nhelloXX0\r\n\r\n', b'5\r\nhello\n0\r\n\r\n', b'3\r\nhello\r\n0\r\n\r\n']
)
def test_bad_chunk_termination(chunks):
    (conn, peer) = pair()
    peer.send(b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n' + chunks)
    r = conn.get('/', {})
    with pytest.raises(ValueError):
        r.body.read()
    assert conn.closed
    peer.close()


def test_oversized_preamble():
    (conn, peer) = pair()
    big = b'HTTP/1.1 200 OK\r\n' + b'x-filler: ' + b'a' * (33 * 1024)
    peer.send(big)  # no CRLFCRLF in sight: refused at 32 KiB, not buffered forever
    with pytest.raises(ValueError) as e:
        conn.get('/', {})
    assert str(e.value) == 'response preamble too large: over 32768 bytes'
    assert conn.closed
    peer.close()


def test_too_many_header_fields():
    (conn, peer) = pair()
    fields = b''.join(b'x-%d: %d\r\n' % (i, i) for i in range(101))
    peer.send(b'HTTP/1.1 200 OK\r\n' + fields + b'\r\n')
    with pytest.raises(ValueError) as e:
        conn.get('/', {})
    assert str(e.value) == 'too many header fields: 101 > 100'
    assert conn.closed
    peer.close()


def test_response_fields_repeated_latin1_and_empty_reason():
    (conn, peer) = pair()
    peer.send(
        b'HTTP/1.1 200 \r\nX-A: 1\r\nx-a:  2 \r\nX-Latin: caf\xe9\r\n'
        b'Content-Length: 00005\r\n\r\nhello'
    )
    r = conn.get('/', {})
    assert r.reason == ''
    assert r.headers == {'x-a': '1, 2', 'x-latin': 'café', 'content-length': 5}
    assert r.body.read() == b'hello'
    conn.close()
    peer.close()


# --------------------------------------------------------------------------
# Close-delimited bodies (RFC 9112 section 6.3) and connection: close


def test_http10_close_delimited_body():
    (conn, peer) = pair()
    peer.send(b'HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nhello world, till EOF')
    peer.eof()
    r = conn.get('/', {})
    assert r.body.content_length is None
    assert repr(r.body) == 'Body(<reader>, None)'
    assert not conn.closed
    assert r.body.read() == b'hello world, till EOF'
    assert conn.closed  # closes once the body is consumed
    with pytest.raises(ConnectionClosed) as e:
        conn.get('/', {})
    assert str(e.value) == 'Connection is closed: the server sent an HTTP/1.0 response'
    peer.close()


@pytest.mark.parametrize('status_line', [b'HTTP/1.1 200 OK', b'HTTP/1.1 404 Not Found'])
def test_unframed_http11_body_runs_until_close(status_line):
    # RFC 9112 section 6.3 rule 8: no content-length, no transfer-encoding, a
    # status that may carry content: the body runs until the server closes.
    (conn, peer) = pair()
    conn.send_request('GET', '/a', {}, None)
    conn.send_request('GET', '/b', {}, None)  # pipelined behind it
    peer.send(status_line + b'\r\ncontent-type: text/plain\r\n\r\n' + b'HTTP/1.1 200 OK\r\n')
    peer.eof()
    r = conn.read_response()
    assert r.body.content_length is None
    assert r.body.read() == b'HTTP/1.1 200 OK\r\n'  # bytes of the body, not a response
    assert conn.closed
    with pytest.raises(ConnectionClosed) as e:
        conn.read_response()
    assert e.value.unanswered == (('GET', '/b'),)
    assert str(e.value) == (
        'Connection is closed: the response body runs until the connection closes'
    )
    peer.close()


def test_close_delimited_body_after_a_reset_is_not_complete():
    # A body delimited by the close is complete only on a clean EOF: once a
    # send failed on a reset connection, the EOF that follows proves nothing.
    sock = FakeSocket(
        b'HTTP/1.1 413 Content Too Large\r\nconnection: close\r\n\r\npartial',
        send_error=ConnectionResetError(104, 'Connection reset by peer'),
        send_limit=10,
    )
    conn = Connection(sock, None)
    r = conn.put('/upload', {}, b'x' * 1000)
    assert r.status == 413
    with pytest.raises(ConnectionClosed) as e:
        r.body.read()
    assert str(e.value) == 'connection was reset: the body may be incomplete'
    assert conn.closed
    # Without the reset, the same bytes make a complete body.
    conn = Connection(FakeSocket(b'HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall'), None)
    assert conn.get('/', {}).body.read() == b'all'


def test_length_body_cut_short_raises():
    (conn, peer) = pair()
    peer.send(b'HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort')
    peer.eof()
    r = conn.get('/', {})
    with pytest.raises(ConnectionClosed) as e:
        r.body.read()
    assert str(e.value) == 'expected to read 10 bytes, but received 5'
    peer.close()


def test_chunk_sizes_with_leading_zeros():
    # RFC 9112 section 7.1: chunk-size = 1*HEXDIG
    (conn, peer) = pair()
    peer.send(b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n'
              b'005\r\nhello\r\n0A\r\n0123456789\r\n000\r\n\r\n')
    r = conn.get('/', {})
    assert r.body.read() == b'hello0123456789'
    conn.close()
    peer.close()


@pytest.mark.parametrize('value, parsed', [
    (b'bytes 0-4/*', ContentRange(0, 5, None)),
    (b'bytes 0-4/10', ContentRange(0, 5, 10)),
    (b'bytes */10', 'bytes */10'),
])
def test_content_range_values(value, parsed):
    (conn, peer) = pair()
    peer.send(b'HTTP/1.1 206 Partial Content\r\ncontent-range: ' + value
              + b'\r\ncontent-length: 5\r\n\r\nhello')
    r = conn.get('/', {})
    assert r.headers['content-range'] == parsed
    assert r.body.read() == b'hello'
    conn.close()
    peer.close()


@pytest.mark.parametrize('method, line', [
    ('POST', b'content-length: 0'),
    ('PUT', b'content-length: 0'),
    ('PATCH', b'content-length: 0'),
    ('GET', None),
    ('DELETE', None),
])
def test_request_without_body_framing(method, line):
    # RFC 9110 section 8.6: say content-length: 0 when the method has content.
    (conn, peer) = pair()
    peer.send(OK)
    conn.request(method, '/', {}, None).body.read()
    (preamble, body) = peer.recv_request()
    lines = preamble.split(b'\r\n')[1:]
    if line is None:
        assert not [x for x in lines if x.startswith((b'content-length', b'transfer-encoding'))]
    else:
        assert line in lines
    conn.close()
    peer.close()


def test_streamed_upload():
    # Each piece of an iterator body goes out before the next is asked for.
    (conn, peer) = pair()
    got = []

    def source(chunked):
        for piece in (b'one', b'two'):
            data = b''
            yield (None, piece) if chunked else piece
            # the peer has the piece before the generator goes on
            while piece not in data:
                data += peer.sock.recv(4096)
            got.append(piece)
        if chunked:
            yield (None, b'')

    peer.send(OK + OK)
    conn.put('/', {}, BodyIter(source(False), 6)).body.read()
    conn.put('/', {}, ChunkedBodyIter(source(True))).body.read()
    assert got == [b'one', b'two', b'one', b'two']
    conn.close()
    peer.close()


def test_connection_close_close_delimited_body_iter():
    (conn, peer) = pair()
    peer.send(b'HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n' + b'x' * 100000)
    peer.eof()
    r = conn.get('/', {})
    assert sum(len(p) for p in r.body) == 100000
    assert conn.closed
    peer.close()


def test_http10_keep_alive_with_length():
    (conn, peer) = pair()
    peer.send(b'HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nhi')
    r = conn.get('/', {})
    assert r.body.read() == b'hi'
    assert not conn.closed
    peer.send(b'HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nhi')
    r = conn.get('/', {})
    assert not conn.closed
    assert r.body.read() == b'hi'
    assert conn.closed
    peer.close()


def test_connection_close_honoured_after_body_with_pending():
    (conn, peer) = pair()
    for uri in ('/a', '/b', '/c'):
        conn.send_request('GET', uri, {}, None)
    peer.send(b'HTTP/1.1 200 OK\r\nConnection: Close\r\ncontent-length: 2\r\n\r\nhi')
    r = conn.read_response()
    assert conn.pending == (('GET', '/b'), ('GET', '/c'))
    assert not conn.closed
    with pytest.raises(ConnectionClosed) as e:
        conn.send_request('GET', '/d', {}, None)
    assert str(e.value) == 'Connection is closing: the server sent connection: close'
    assert e.value.unanswered == (('GET', '/b'), ('GET', '/c'))
    assert r.body.read() == b'hi'
    assert conn.closed
    with pytest.raises(ConnectionClosed) as e:
        conn.read_response()
    assert str(e.value) == 'Connection is closed: the server sent connection: close'
    assert e.value.unanswered == (('GET', '/b'), ('GET', '/c'))
    peer.close()


def test_server_closes_with_requests_outstanding():
    (conn, peer) = pair()
    for i in range(5):
        conn.send_request('GET', f'/{i}', {}, None)
    peer.send(OK * 2)
    peer.eof()
    for i in range(2):
        assert conn.read_response().body.read() == b'hello world'
    with pytest.raises(EmptyPreambleError) as e:
        conn.read_response()
    assert e.value.unanswered == (('GET', '/2'), ('GET', '/3'), ('GET', '/4'))
    assert conn.closed
    with pytest.raises(ConnectionClosed) as e:
        conn.read_response()
    assert str(e.value) == 'Connection is closed'
    assert e.value.unanswered == (('GET', '/2'), ('GET', '/3'), ('GET', '/4'))
    peer.close()


def test_send_after_peer_closed_is_connection_closed():
    (conn, peer) = pair()
    peer.close()
    with pytest.raises(ConnectionClosed) as e:
        conn.get('/', {})
    assert e.value.unanswered == (('GET', '/'),)
    assert isinstance(e.value.__cause__, (BrokenPipeError, ConnectionResetError))
    assert conn.closed


# --------------------------------------------------------------------------
# Pipelining rules


def test_pipelining_rules():
    (conn, peer) = pair(max_pending=3)
    with pytest.raises(ValueError) as e:
        conn.read_response()
    assert str(e.value) == 'no pending requests'
    conn.send_request('GET', '/1', {}, None)
    conn.send_request('HEAD', '/2', {}, None)
    conn.send_request('PUT', '/3', {}, b'x')
    with pytest.raises(ValueError) as e:
        conn.send_request('GET', '/4', {}, None)
    assert str(e.value) == 'max_pending reached: 3'
    with pytest.raises(ValueError) as e:
        conn.request('GET', '/4', {}, None)
    assert str(e.value) == 'cannot call request() with 3 pending responses'
    assert not conn.closed  # usage errors of the pipeline leave it open
    peer.send(OK * 3)
    conn.read_response()
    with pytest.raises(ValueError) as e:
        conn.read_response()
    assert str(e.value) == 'response body not consumed: Body(<reader>, 11)'
    assert conn.closed
    peer.close()


def test_unconsumed_body_does_not_block_send_request():
    (conn, peer) = pair()
    conn.send_request('GET', '/1', {}, None)
    peer.send(OK)
    r = conn.read_response()
    conn.send_request('GET', '/2', {}, None)
    with pytest.raises(ValueError) as e:
        conn.request('GET', '/3', {}, None)
    assert str(e.value) == 'cannot call request() with 1 pending response'
    assert r.body.read() == b'hello world'
    peer.send(OK)
    assert conn.read_response().body.read() == b'hello world'
    conn.close()
    peer.close()


def test_post_is_not_pipelined():
    (conn, peer) = pair()
    conn.send_request('GET', '/1', {}, None)
    with pytest.raises(ValueError) as e:
        conn.send_request('POST', '/2', {}, b'x')
    assert str(e.value) == "cannot pipeline 'POST'"
    peer.send(OK)
    conn.read_response().body.read()
    conn.send_request('POST', '/2', {}, b'x')
    with pytest.raises(ValueError) as e:
        conn.send_request('GET', '/3', {}, None)
    assert str(e.value) == "cannot pipeline 'POST'"
    assert conn.pending == (('POST', '/2'),)
    assert not conn.closed
    conn.close()
    peer.close()


def test_discard():
    (conn, peer) = pair()
    conn.send_request('GET', '/1', {}, None)
    conn.send_request('GET', '/2', {}, None)
    conn.send_request('GET', '/3', {}, None)
    peer.send(OK + CHUNKED + b'HTTP/1.1 204 No Content\r\n\r\n')
    assert conn.discard() == 0
    r = conn.read_response()
    assert r.body.read(3) == b'hel'
    assert conn.discard() == 8
    assert r.body.state == BODY_CONSUMED
    r = conn.read_response()
    assert r.body.readchunk() == (('k', 'v'), b'hello')
    assert conn.discard() == 6
    assert conn.discard() == 0
    r = conn.read_response()
    assert r.body is None and conn.discard() == 0
    conn.close()
    peer.close()


def test_read_body_after_close():
    (conn, peer) = pair()
    peer.send(b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n' + b'x' * 10)
    r = conn.get('/', {})
    conn.close()
    assert r.body.read(10) == b'x' * 10  # still in the read buffer
    with pytest.raises(ConnectionClosed) as e:
        r.body.read(10)
    assert str(e.value) == 'Connection is closed'
    peer.close()


def test_timeout_is_connection_timed_out():
    (a, b) = socket.socketpair()
    a.settimeout(0.05)
    conn = Connection(a, None)
    peer = Peer(b)
    with pytest.raises(ConnectionTimedOut) as e:
        conn.get('/', {})
    assert isinstance(e.value, TimeoutError) and isinstance(e.value, ConnectionClosed)
    assert e.value.unanswered == (('GET', '/'),)
    assert conn.closed
    peer.close()


def test_body_object_failure_mid_upload_closes():
    (conn, peer) = pair()

    def gen():
        yield b'abc'
        raise RuntimeError('source failed')

    with pytest.raises(RuntimeError):
        conn.put('/', {}, BodyIter(gen(), 10))
    assert conn.closed
    peer.close()


def test_chunked_upload():
    (conn, peer) = pair()
    peer.send(OK)
    r = conn.post('/', {}, ChunkedBodyIter([(None, b'hello'), (('k', 'v'), b'')]))
    assert r.body.read() == b'hello world'
    data = peer.sock.recv(1000)
    assert data == (
        b'POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0;k=v\r\n\r\n'
    )
    conn.close()
    peer.close()


# --------------------------------------------------------------------------
# Early response after a failed upload (RFC 9112 section 9.5)


BIG = b'x' * (8 * 1024 * 1024)  # more than the socket buffers hold


def _answer_early(status_line):
    def script(peer):
        data = b''
        while b'\r\n\r\n' not in data:
            data += peer.sock.recv(4096)
        peer.send(status_line + b'\r\nconnection: close\r\ncontent-length: 8\r\n\r\ntoo big!')
        peer.sock.shutdown(socket.SHUT_WR)
        # close() with unread data in the receive buffer sends RST.
        time.sleep(0.02)

    return script


@pytest.mark.parametrize('family', [socket.AF_INET, socket.AF_UNIX])
def test_early_response_after_failed_upload(family):
    with Scripted(_answer_early(b'HTTP/1.1 413 Content Too Large'), family=family) as s:
        conn = s.client(timeout=TIMEOUT).connect()
        r = conn.put('/upload', {}, BIG)
        assert (r.status, r.reason) == (413, 'Content Too Large')
        assert not conn.closed
        assert r.body.read() == b'too big!'
        assert conn.closed
        with pytest.raises(ConnectionClosed) as e:
            conn.get('/', {})
        assert str(e.value).startswith('Connection is closed: the server ')


def test_early_response_with_send_request():
    with Scripted(_answer_early(b'HTTP/1.1 401 Unauthorized')) as s:
        conn = s.client(timeout=TIMEOUT).connect()
        with pytest.raises(ConnectionClosed) as e:
            conn.send_request('PUT', '/upload', {}, BIG)
        assert e.value.unanswered == (('PUT', '/upload'),)
        assert not conn.closed  # send-closed: the response may still be read
        with pytest.raises(ConnectionClosed) as e:
            conn.send_request('GET', '/', {}, None)
        assert str(e.value) == 'Connection is closed for sending'
        r = conn.read_response()
        assert r.status == 401
        assert r.body.read() == b'too big!'
        assert conn.closed


def test_failed_upload_without_response_closes():
    def script(peer):
        data = b''
        while b'\r\n\r\n' not in data:
            data += peer.sock.recv(4096)
        peer.sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b'\x01\x00\x00\x00\x00\x00\x00\x00'
        )

    with Scripted(script) as s:
        conn = s.client(timeout=TIMEOUT).connect()
        with pytest.raises(ConnectionClosed) as e:
            conn.put('/upload', {}, BIG)
        assert e.value.unanswered == (('PUT', '/upload'),)
        assert conn.closed  # gave up on the upload: closed


# --------------------------------------------------------------------------
# Expect: 100-continue, all three outcomes, against exact bytes


def test_expect100_continue_arrives():
    (conn, peer) = pair(expect100_timeout=TIMEOUT)
    conn.send_request('PUT', '/a', {}, b'body!', expect100=False)  # plain, for contrast
    assert peer.recv_request() == (b'PUT /a HTTP/1.1\r\ncontent-length: 5', b'body!')
    peer.send(OK)
    conn.read_response().body.read()

    done = threading.Event()
    result = []

    def run():
        try:
            result.append(conn.put('/b', {}, b'body!', expect100=True))
        finally:
            done.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    data = b''
    while b'\r\n\r\n' not in data:
        data += peer.sock.recv(4096)
    assert data == b'PUT /b HTTP/1.1\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n'
    peer.sock.settimeout(0.1)
    with pytest.raises(TimeoutError):
        peer.sock.recv(10)  # the body waits for 100 Continue
    peer.sock.settimeout(TIMEOUT)
    peer.send(b'HTTP/1.1 100 Continue\r\nx-info: 1\r\n\r\n')
    got = b''
    while len(got) < 5:
        got += peer.sock.recv(10)
    assert got == b'body!'
    peer.send(b'HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n')
    assert done.wait(TIMEOUT)
    t.join(TIMEOUT)
    assert result[0].status == 201
    assert not conn.closed
    conn.close()
    peer.close()


def test_expect100_final_status_instead():
    (conn, peer) = pair()
    peer.send(b'HTTP/1.1 417 Expectation Failed\r\ncontent-length: 4\r\n\r\nnope')
    r = conn.put('/b', {}, b'body!', expect100=True)
    assert (r.status, r.reason) == (417, 'Expectation Failed')
    assert peer.sock.recv(4096) == (
        b'PUT /b HTTP/1.1\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n'
    )  # and no body
    assert not conn.closed
    assert r.body.read() == b'nope'
    assert conn.closed
    with pytest.raises(ConnectionClosed) as e:
        conn.get('/', {})
    assert str(e.value) == 'Connection is closed: the server answered before 100 Continue'
    peer.close()


def test_expect100_no_answer_sends_body_anyway():
    (conn2, peer2) = pair(expect100_timeout=0.02)
    start = time.monotonic()
    conn2.send_request('POST', '/b', {}, b'body!', expect100=True)
    assert time.monotonic() - start >= 0.02
    assert peer2.recv_request() == (
        b'POST /b HTTP/1.1\r\ncontent-length: 5\r\nexpect: 100-continue',
        b'body!',
    )
    # A late 100 Continue is skipped for an expect100 request.
    peer2.send(b'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n' + OK)
    r = conn2.read_response()
    assert (r.status, r.body.read()) == (200, b'hello world')
    assert not conn2.closed
    for c in (conn2, peer2):
        c.close()


def test_expect100_send_request_keeps_early_response():
    (conn, peer) = pair()
    peer.send(b'HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n')
    conn.send_request('PUT', '/x', {}, b'secret', expect100=True)
    assert conn.pending == (('PUT', '/x'),)
    with pytest.raises(ValueError) as e:
        conn.send_request('GET', '/y', {}, None)
    assert str(e.value) == 'cannot pipeline a request with expect100'
    r = conn.read_response()
    assert (r.status, r.body.content_length) == (401, 0)
    assert conn.closed  # an empty body need not be read
    assert r.body.read() == b''
    peer.close()


def test_expect100_rules():
    (conn, peer) = pair()
    with pytest.raises(ValueError) as e:
        conn.request('PUT', '/', {}, None, expect100=True)
    assert str(e.value) == 'expect100 requires a request body'
    assert conn.closed
    peer.close()
    (conn, peer) = pair()
    with pytest.raises(ValueError) as e:
        conn.put('/', {'expect': 'something'}, b'x', expect100=True)
    assert str(e.value) == "'expect' mismatch: '100-continue' != 'something'"
    peer.close()
    (conn, peer) = pair()
    conn.send_request('GET', '/', {}, None)
    with pytest.raises(ValueError) as e:
        conn.send_request('PUT', '/', {}, b'x', expect100=True)
    assert str(e.value) == 'cannot pipeline a request with expect100'
    assert conn.pending == (('GET', '/'),)
    conn.close()
    peer.close()


def test_expect_header_given_by_caller_means_expect100():
    (conn, peer) = pair()
    peer.send(b'HTTP/1.1 100 Continue\r\n\r\n' + OK)
    r = conn.put('/', {'expect': '100-Continue'}, b'abc')
    assert (r.status, r.body.read()) == (200, b'hello world')
    conn.close()
    peer.close()


def test_expect100_server_closes_instead():
    (conn, peer) = pair()
    peer.eof()
    with pytest.raises(EmptyPreambleError) as e:
        conn.put('/', {}, b'abc', expect100=True)
    assert e.value.unanswered == (('PUT', '/'),)
    assert conn.closed
    peer.close()


def test_request_with_unconsumed_body_closes():
    (conn, peer) = pair()
    peer.send(OK)
    r = conn.get('/', {})
    with pytest.raises(ValueError) as e:
        conn.get('/', {})
    assert str(e.value) == 'response body not consumed: Body(<reader>, 11)'
    assert conn.closed
    assert r.body.read() == b'hello world'  # what was buffered is still there
    peer.close()


def test_no_body_response_with_connection_close_closes_at_once():
    (conn, peer) = pair()
    conn.send_request('HEAD', '/a', {}, None)
    conn.send_request('HEAD', '/b', {}, None)
    peer.send(b'HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: keep-alive, close\r\n\r\n')
    r = conn.read_response()
    assert r.body is None
    assert conn.closed
    with pytest.raises(ConnectionClosed) as e:
        conn.read_response()
    assert e.value.unanswered == (('HEAD', '/b'),)
    peer.close()


def test_early_response_without_connection_close():
    def script(peer):
        data = b''
        while b'\r\n\r\n' not in data:
            data += peer.sock.recv(4096)
        peer.send(b'HTTP/1.1 413 Content Too Large\r\ncontent-length: 0\r\n\r\n')
        peer.sock.shutdown(socket.SHUT_WR)
        time.sleep(0.02)

    with Scripted(script) as s:
        conn = s.client(timeout=TIMEOUT).connect()
        r = conn.post('/upload', {}, BIG)
        assert r.status == 413
        assert conn.closed  # an empty body need not be read
        assert r.body.read() == b''
        with pytest.raises(ConnectionClosed) as e:
            conn.get('/', {})
        assert str(e.value) == 'Connection is closed: the server closed it during the upload'


def test_expect100_interim_then_continue_with_body_iter():
    (conn, peer) = pair()
    peer.send(b'HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n' + OK)
    r = conn.put('/', {}, BodyIter([b'ab', b'c'], 3), expect100=True)
    assert (r.status, r.body.read()) == (200, b'hello world')
    assert peer.recv_request()[1] == b'abc'
    conn.close()
    peer.close()


@pytest.mark.parametrize('first', [b'', b'HTTP/1.1 100 Continue\r\n\r\n'])
def test_expect100_too_many_interim_responses(first):
    (conn, peer) = pair()
    peer.send(first + b'HTTP/1.1 102 Processing\r\n\r\n' * 17)
    with pytest.raises(ValueError) as e:
        conn.put('/', {}, b'abc', expect100=True)
    assert str(e.value) == 'more than 16 interim responses'
    assert conn.closed
    peer.close()


def test_get_range_headers_type():
    (conn, peer) = pair()
    with pytest.raises(TypeError) as e:
        conn.get_range('/', None, 0, 1)
    assert str(e.value) == "headers: need a <class 'dict'>; got a <class 'NoneType'>: None"
    conn.close()
    peer.close()


# --------------------------------------------------------------------------
# Over a FakeSocket: every boundary split (1 byte per call) or none


@pytest.mark.parametrize('n', MOVE_SIZES)
def test_fake_socket_pipelined_exchange(n):
    chunks = random_chunks(random.Random(n), count=5)
    responses = (
        OK
        + b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n'
        + encode_chunks(chunks)
        + b'HTTP/1.1 204 No Content\r\ncontent-length: 7\r\n\r\n'
        + b'HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n'
    )
    sock = FakeSocket(responses, n)
    conn = Connection(sock, (('host', 'h'),))
    for uri in ('/a', '/b', '/c', '/d'):
        conn.send_request('GET', uri, {}, None)
    assert bytes(sock.sent) == b''.join(
        b'GET %s HTTP/1.1\r\nhost: h\r\n\r\n' % u for u in (b'/a', b'/b', b'/c', b'/d')
    )
    assert conn.read_response().body.read() == b'hello world'
    assert list(conn.read_response().body) == chunks
    assert conn.read_response().body is None
    r = conn.read_response()
    assert (r.status, r.body.read()) == (404, b'')
    with pytest.raises(EmptyPreambleError):
        conn.get('/e', {})
    assert sock.close_count == 1


@pytest.mark.parametrize('n', MOVE_SIZES)
def test_fake_socket_send_error_mapped(n):
    sock = FakeSocket(b'', n, send_error=BrokenPipeError(32, 'Broken pipe'), send_limit=10)
    conn = Connection(sock, None)
    with pytest.raises(ConnectionClosed) as e:
        conn.put('/x', {}, b'y' * 100)
    assert isinstance(e.value.__cause__, BrokenPipeError)
    assert e.value.unanswered == (('PUT', '/x'),)
    assert conn.closed  # no early response came either


@settings(max_examples=60, deadline=None)
@given(
    bodies=st.lists(st.binary(max_size=50), min_size=1, max_size=6),
    chunked=st.lists(st.booleans(), min_size=6, max_size=6),
    n=st.integers(min_value=1, max_value=64),
    cut=st.integers(min_value=0, max_value=10000),
)
def test_property_never_partial(bodies, chunked, n, cut):
    """Random pipelined responses, cut anywhere: each body is whole or raises."""
    wire = b''
    for body, is_chunked in zip(bodies, chunked):
        if is_chunked:
            chunks = [(None, body)] if body else []
            wire += b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n'
            wire += encode_chunks(chunks + [(None, b'')])
        else:
            wire += b'HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n' % len(body) + body
    cut = min(cut, len(wire))
    conn = Connection(FakeSocket(wire[:cut], n), None, max_pending=len(bodies))
    for i in range(len(bodies)):
        conn.send_request('GET', f'/{i}', {}, None)
    got = []
    try:
        for _ in bodies:
            got.append(conn.read_response().body.read())
    except ConnectionClosed as e:
        assert cut < len(wire)
        assert e.unanswered == tuple(('GET', f'/{i}') for i in range(len(got), len(bodies))) or (
            e.unanswered == ()  # raised by the body read itself
        )
        assert conn.closed
    else:
        assert cut == len(wire)
    assert got == bodies[: len(got)]


@pytest.mark.parametrize('n', MOVE_SIZES)
def test_fake_socket_recv_reset_keeps_cause(n):
    reset = ConnectionResetError(104, 'Connection reset by peer')
    sock = FakeSocket(b'HTTP/1.1 200 OK\r\n', n, recv_error=reset)
    conn = Connection(sock, None)
    with pytest.raises(ConnectionClosed) as e:
        conn.get('/', {})
    assert e.value.__cause__ is reset
    assert (
        str(e.value)
        == 'reading response preamble: ConnectionResetError: [Errno 104] Connection reset by peer'
    )
    assert e.value.unanswered == (('GET', '/'),)
    assert conn.closed


def test_a_failed_call_leaves_no_reference_cycle():
    # The exception's traceback must not hold itself through a frame: the
    # connection (and its caller's frames, say a ProxyApp's session) would
    # then live until the garbage collector runs.
    gc.disable()
    try:
        for data in (b'', b'HTTP/1.1 200 OK\r\nbad header\r\n\r\n', b'HTTP/1.1 999 X\r\n\r\n'):
            conn = Connection(FakeSocket(data), None)
            ref = weakref.ref(conn)
            with pytest.raises(ValueError if data else ConnectionClosed):
                conn.get('/', {})
            del conn
            assert ref() is None, data
    finally:
        gc.enable()
