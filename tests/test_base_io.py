"""Tests of SocketWrapper, the per-connection reader/writer of degu.base.

Most tests run over a FakeSocket that moves one byte per call and over one
that moves everything (``MOVE_SIZES``); a few use ``socket.socketpair()``.
"""

import errno
import io
import os
import socket
import ssl
import threading

import pytest
from helpers import MOVE_SIZES, FakeFile, FakeSocket, encode_chunks, raises

from degu import _transport
from degu.base import (
    BODY_CONSUMED,
    BODY_ERROR,
    BODY_READY,
    BODY_STARTED,
    IO_SIZE,
    MAX_IO_SIZE,
    Body,
    BodyIter,
    ChunkedBody,
    ChunkedBodyIter,
    ConnectionClosed,
    ConnectionTimedOut,
    EmptyPreambleError,
    ParseError,
    Range,
    Request,
    Response,
    SocketWrapper,
    UnsupportedResponse,
    map_socket_error,
    response_framing,
    set_output_headers,
)

# Every test here runs against both cores (tests/conftest.py).
pytestmark = pytest.mark.usefixtures('core')


def wrap(data=b'', n=1 << 20, **kw):
    return SocketWrapper(FakeSocket(data, n), **kw)


def request_value(r):
    """A comparable view of a Request (bodies by type and framing)."""
    body = r.body
    if body is not None:
        body = (type(body).__name__, getattr(body, 'content_length', None))
    return (r.method, r.uri, r.headers, body, r.mount, r.path, r.query, r.version)


# -------------------------------------------------------------------------
# Construction and closing.


class NoClose:
    def recv_into(self, buf):
        return 0

    def send(self, buf):
        return len(buf)

    close = None


def test_socket_wrapper_checks():
    with pytest.raises(AttributeError):
        SocketWrapper(object())
    raises(TypeError, 'sock.close() is not callable', SocketWrapper, NoClose())


def test_socket_wrapper_attributes():
    sock = FakeSocket()
    sw = SocketWrapper(sock)
    assert sw.sock is sock
    assert sw.closed is False
    assert sw.buffered == 0
    assert sw.error is None
    assert sw.close_on_error is True
    assert (sw.timeout, sw.idle_timeout) == (None, None)
    assert (sw.max_preamble, sw.max_header_count) == (32768, 100)
    assert repr(sw) == f'SocketWrapper({sock!r})'
    with pytest.raises(AttributeError):
        sw.closed = True


def test_socket_wrapper_close():
    sock = FakeSocket()
    sw = SocketWrapper(sock)
    assert sw.close() == 'closed'  # what sock.close() returned
    assert sw.closed is True
    assert sw.close() is None
    assert sock.close_count == 1
    raises(ConnectionClosed, 'Connection is closed', sw.read_request)
    raises(ConnectionClosed, 'Connection is closed', sw.write_response, 200, 'OK', {}, None)


def test_socket_wrapper_del_closes():
    sock = FakeSocket()
    sw = SocketWrapper(sock)
    del sw
    assert sock.close_count == 1
    sock = FakeSocket()
    sw = SocketWrapper(sock)
    sw.close()
    del sw
    assert sock.close_count == 1


# -------------------------------------------------------------------------
# Reading requests.

READ_REQUEST = [
    (b'GET / HTTP/1.1\r\n\r\n', ('GET', '/', {}, None, [], [], None, 'HTTP/1.1')),
    (
        b'GET /a/b?c HTTP/1.0\r\nHost: x\r\nAccept: a\r\naccept: b\r\n\r\n',
        ('GET', '/a/b?c', {'host': 'x', 'accept': 'a, b'}, None, [], ['a', 'b'], 'c', 'HTTP/1.0'),
    ),
    (
        b'PUT /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello',
        ('PUT', '/x', {'content-length': 5}, ('Body', 5), [], ['x'], None, 'HTTP/1.1'),
    ),
    (
        b'GET / HTTP/1.1\r\ncontent-length: 0\r\n\r\n',
        ('GET', '/', {'content-length': 0}, ('Body', 0), [], [], None, 'HTTP/1.1'),
    ),
    (
        b'POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
        (
            'POST',
            '/',
            {'transfer-encoding': 'chunked'},
            ('ChunkedBody', None),
            [],
            [],
            None,
            'HTTP/1.1',
        ),
    ),
    (
        b'OPTIONS * HTTP/1.1\r\n\r\n',
        ('OPTIONS', '*', {}, None, [], [], None, 'HTTP/1.1'),
    ),
    # RFC 9112 section 3.2.2: the authority of an absolute-form target wins
    (
        b'GET http://example.com/p?q HTTP/1.0\r\nrange: bytes=0-9\r\n\r\n',
        (
            'GET',
            '/p?q',
            {'range': Range(0, 10), 'host': 'example.com'},
            None,
            [],
            ['p'],
            'q',
            'HTTP/1.0',
        ),
    ),
    # ... but an HTTP/1.1 request without host stays without: the server says 400
    (
        b'GET http://example.com/p HTTP/1.1\r\n\r\n',
        ('GET', '/p', {}, None, [], ['p'], None, 'HTTP/1.1'),
    ),
    (
        b'GET http://a.example:81/x HTTP/1.1\r\nHost: b.example\r\n\r\n',
        ('GET', '/x', {'host': 'a.example:81'}, None, [], ['x'], None, 'HTTP/1.1'),
    ),
    # RFC 9110 section 14.2: a range is only for GET, and one the server does
    # not take is dropped as if absent
    (
        b'HEAD / HTTP/1.1\r\nHost: h\r\nRange: bytes=0-9\r\n\r\n',
        ('HEAD', '/', {'host': 'h'}, None, [], [], None, 'HTTP/1.1'),
    ),
    (
        b'GET / HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1,4-5\r\n\r\n',
        ('GET', '/', {'host': 'h'}, None, [], [], None, 'HTTP/1.1'),
    ),
    (
        b'GET / HTTP/1.1\r\nHost: h\r\nRange: bytes=-5\r\n\r\n',
        ('GET', '/', {'host': 'h', 'range': Range(-5, None)}, None, [], [], None, 'HTTP/1.1'),
    ),
    # decision 8: empty lines before the request line are skipped
    (b'\r\nGET / HTTP/1.1\r\n\r\n', ('GET', '/', {}, None, [], [], None, 'HTTP/1.1')),
    (b'\r\n\r\nGET / HTTP/1.1\r\n\r\n', ('GET', '/', {}, None, [], [], None, 'HTTP/1.1')),
    (b'\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n', ('GET', '/', {}, None, [], [], None, 'HTTP/1.1')),
    (
        b'\r\n\r\n\r\nGET / HTTP/1.1\r\nx: y\r\n\r\n',
        ('GET', '/', {'x': 'y'}, None, [], [], None, 'HTTP/1.1'),
    ),
]


@pytest.mark.parametrize('n', MOVE_SIZES)
@pytest.mark.parametrize('src, value', READ_REQUEST)
def test_read_request(src, value, n):
    sw = wrap(src + b'GET /next HTTP/1.1\r\n\r\n', n)
    r = sw.read_request()
    assert type(r) is Request
    assert request_value(r) == value
    if r.body is not None:
        r.body.read()
        assert r.body.state == BODY_CONSUMED
        assert repr(r.body).endswith('(<reader>)') or repr(r.body).startswith('Body(<reader>, ')
    assert sw.read_request().uri == '/next'
    raises(EmptyPreambleError, 'request preamble is empty', sw.read_request)


READ_REQUEST_BAD = [
    (b'', EmptyPreambleError, 'request preamble is empty'),
    (b'\r\n\r\n', EmptyPreambleError, 'request preamble is empty'),
    (b'\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n', ParseError, 'empty request line'),
    (b'G', ConnectionClosed, "request preamble truncated: b'G'"),
    (
        b'GET / HTTP/1.1\r\n',
        ConnectionClosed,
        "request preamble truncated: b'GET / HTTP/1.1\\r\\n'",
    ),
    (
        b'GET / HTTP/1.1\n\n',
        ConnectionClosed,
        "request preamble truncated: b'GET / HTTP/1.1\\n\\n'",
    ),
    (b'GET / HTTP/1.1\r\nx: y\n\r\n\r\n', ParseError, "bad byte in header block: b'\\n'"),
    (b'get / HTTP/1.1\r\n\r\n', ParseError, "unsupported method: b'get'"),
    (b'GET / HTTP/2.0\r\n\r\n', ParseError, "unsupported HTTP version: b'HTTP/2.0'"),
    (b'GET //x HTTP/1.1\r\n\r\n', ParseError, "b'//' in path: b'//x'"),
    (
        b'GET / HTTP/1.1\r\n x: y\r\n\r\n',
        ParseError,
        "obs-fold or leading whitespace in header line: b' x'",
    ),
    (
        b'PUT / HTTP/1.1\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n',
        ParseError,
        'cannot have both content-length and transfer-encoding headers',
    ),
    (
        b'PUT / HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n',
        ParseError,
        "unsupported transfer-encoding: b'gzip'",
    ),
    (b'PUT / HTTP/1.1\r\ncontent-length: 1, 1\r\n\r\n', ParseError, "bad content-length: b'1, 1'"),
]


@pytest.mark.parametrize('n', MOVE_SIZES)
@pytest.mark.parametrize('src, exc, message', READ_REQUEST_BAD)
def test_read_request_bad(src, exc, message, n):
    raises(exc, message, wrap(src, n).read_request)


@pytest.mark.parametrize('n', MOVE_SIZES)
def test_read_request_limits(n):
    head = b'GET / HTTP/1.1\r\nx: '
    # a preamble of exactly 32 KiB, CRLFCRLF included, is fine
    src = head + b'a' * (32768 - len(head) - 4) + b'\r\n\r\n'
    assert len(src) == 32768
    r = wrap(src, n).read_request()
    assert len(r.headers['x']) == 32768 - len(head) - 4
    # one byte more is a 431
    src = head + b'a' * (32768 - len(head) - 3) + b'\r\n\r\n'
    e = raises(
        ParseError, 'request preamble too large: over 32768 bytes', wrap(src, n).read_request
    )
    assert (e.status, e.reason) == (431, 'Request Header Fields Too Large')
    # a request line with no CRLF in its first 8 KiB is a 414
    src = b'GET /' + b'a' * 40000
    e = raises(ParseError, 'request line too long: over 8192 bytes', wrap(src, n).read_request)
    assert (e.status, e.reason) == (414, 'URI Too Long')
    # a complete but long request line too
    src = b'GET /' + b'a' * 8200 + b' HTTP/1.1\r\n\r\n'
    e = raises(ParseError, 'request line too long: 8214 > 8192', wrap(src, n).read_request)
    assert e.status == 414
    # header count
    src = b'GET / HTTP/1.1\r\n' + b''.join(b'h%d: v\r\n' % i for i in range(100)) + b'\r\n'
    assert len(wrap(src, n).read_request().headers) == 100
    src = b'GET / HTTP/1.1\r\n' + b''.join(b'h%d: v\r\n' % i for i in range(101)) + b'\r\n'
    e = raises(ParseError, 'too many header fields: 101 > 100', wrap(src, n).read_request)
    assert e.status == 431


def test_read_request_options():
    src = b'GET / HTTP/1.1\r\na: 1\r\nb: 2\r\n\r\n'
    raises(ParseError, 'too many header fields: 2 > 1', wrap(src, max_header_count=1).read_request)
    raises(
        ParseError,
        'request preamble too large: over 20 bytes',
        wrap(src, max_preamble=20).read_request,
    )
    assert wrap(src, max_preamble=len(src)).read_request().headers == {'a': '1', 'b': '2'}
    big = b'GET / HTTP/1.1\r\nx: ' + b'a' * 50000 + b'\r\n\r\n'
    sw = wrap(big, max_preamble=65536)
    assert len(sw.read_request().headers['x']) == 50000


@pytest.mark.parametrize('n', MOVE_SIZES)
def test_read_request_pipelined(n):
    one = b'PUT /a HTTP/1.1\r\ncontent-length: 3\r\n\r\nabc'
    two = b'POST /b HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n1\r\nd\r\n0\r\nt: 1\r\n\r\n'
    three = b'GET /c HTTP/1.1\r\n\r\n'
    sock = FakeSocket((one + two + three) * 3, n)
    sw = SocketWrapper(sock)
    for _ in range(3):
        r = sw.read_request()
        assert r.uri == '/a' and r.body.read() == b'abc'
        r = sw.read_request()
        assert r.uri == '/b' and r.body.read() == b'd'
        r = sw.read_request()
        assert r.uri == '/c' and r.body is None
    raises(EmptyPreambleError, 'request preamble is empty', sw.read_request)
    if n > 1:
        assert sw.buffered == 0
        assert len([c for c in sock.calls if c[0] == 'recv_into']) == 2  # one read, one EOF


def test_buffered():
    sw = wrap(b'GET / HTTP/1.1\r\n\r\nGET /x HTTP/1.1\r\n\r\n')
    sw.read_request()
    assert sw.buffered == len(b'GET /x HTTP/1.1\r\n\r\n')


# -------------------------------------------------------------------------
# Messages cut at every offset: ConnectionClosed or ValueError, never partial data.

REQUESTS = [
    b'PUT /a?b HTTP/1.1\r\nhost: x\r\ncontent-length: 11\r\n\r\nhello world',
    b'POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n'
    b'5;k="v w"\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n',
]


def read_whole_request(sw):
    r = sw.read_request()
    data = r.body.read() if r.body is not None else b''
    return (r, data)


@pytest.mark.parametrize('n', MOVE_SIZES)
@pytest.mark.parametrize('src', REQUESTS)
def test_request_truncated_at_every_offset(src, n):
    (r, data) = read_whole_request(wrap(src, n))
    assert data == b'hello world'
    for i in range(len(src)):
        sw = wrap(src[:i], n)
        with pytest.raises((ConnectionClosed, ValueError)) as info:
            read_whole_request(sw)
        if i == 0:
            assert type(info.value) is EmptyPreambleError
        else:
            assert isinstance(info.value, ConnectionClosed)  # EOF, not bad syntax


RESPONSES = [
    b'HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nhello world',
    b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n'
    b'5;k="v w"\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n',
]


@pytest.mark.parametrize('n', MOVE_SIZES)
@pytest.mark.parametrize('src', RESPONSES)
def test_response_truncated_at_every_offset(src, n):
    r = wrap(src, n).read_response('GET')
    assert r.body.read() == b'hello world'
    for i in range(len(src)):
        sw = wrap(src[:i], n)
        with pytest.raises(ConnectionClosed):
            wrap(src[:i], n).read_response('GET').body.read()
        # iteration and write_to too
        with pytest.raises(ConnectionClosed):
            list(wrap(src[:i], n).read_response('GET').body)
        with pytest.raises(ConnectionClosed):
            sw.read_response('GET').body.write_to(FakeFile())
        # a body error closes at once (close_on_error, the default: a client's
        # choice); a preamble error is left to the owner
        assert sw.closed is (i >= src.index(b'\r\n\r\n') + 4)


@pytest.mark.parametrize('n', MOVE_SIZES)
def test_request_body_truncated_readinto(n):
    src = b'PUT / HTTP/1.1\r\ncontent-length: 10\r\n\r\n0123456789'
    for i in range(len(src) - 10, len(src)):
        sw = wrap(src[:i], n, close_on_error=False)
        body = sw.read_request().body
        buf = bytearray(10)
        raises(
            ConnectionClosed,
            f'expected to read 10 bytes, but received {i - len(src) + 10}',
            body.readinto,
            buf,
        )
        assert body.state == BODY_ERROR
        assert type(sw.error) is ConnectionClosed
        assert not sw.closed  # the server answers or closes


# -------------------------------------------------------------------------
# Reading responses.

READ_RESPONSE = [
    # (method, wire) -> status, reason, headers, body kind, content_length
    (
        'GET',
        b'HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello',
        (200, 'OK', {'content-length': 5}, 'Body', 5),
    ),
    (
        'GET',
        b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n',
        (200, 'OK', {'transfer-encoding': 'chunked'}, 'ChunkedBody', None),
    ),
    # RFC 9112 section 6.3 rule 8: no framing field, the body runs until the close
    ('GET', b'HTTP/1.1 200 OK\r\n\r\n', (200, 'OK', {}, 'Body', None)),
    ('GET', b'HTTP/1.1 404 Not Found\r\n\r\nnope', (404, 'Not Found', {}, 'Body', None)),
    (
        'GET',
        b'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nhello',
        (200, 'OK', {'content-type': 'text/plain'}, 'Body', None),
    ),
    (
        'HEAD',
        b'HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n',
        (200, 'OK', {'content-length': 5}, None, None),
    ),
    (
        'HEAD',
        b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n',
        (200, 'OK', {'transfer-encoding': 'chunked'}, None, None),
    ),
    (
        'GET',
        b'HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n',
        (204, 'No Content', {'content-length': 5}, None, None),
    ),
    (
        'GET',
        b'HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n',
        (304, 'Not Modified', {'content-length': 5}, None, None),
    ),
    ('PUT', b'HTTP/1.1 100 Continue\r\n\r\n', (100, 'Continue', {}, None, None)),
    (
        'GET',
        b'HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n',
        (103, 'Early Hints', {'link': '</a.css>; rel=preload'}, None, None),
    ),
    (
        'GET',
        b'HTTP/1.1 199 X\r\ncontent-length: 1\r\n\r\n',
        (199, 'X', {'content-length': 1}, None, None),
    ),
    (
        'GET',
        b'HTTP/1.1 206 Partial\r\ncontent-range: bytes 0-1/9\r\ncontent-length: 2\r\n\r\nab',
        (206, 'Partial', {'content-range': 'bytes 0-1/9', 'content-length': 2}, 'Body', 2),
    ),
    ('GET', b'HTTP/1.0 200 OK\r\n\r\nhello', (200, 'OK', {}, 'Body', None)),
    (
        'GET',
        b'HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nhello',
        (200, 'OK', {'connection': 'close'}, 'Body', None),
    ),
    (
        'GET',
        b'HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\n\r\nhello',
        (200, 'OK', {'connection': 'Keep-Alive, Close'}, 'Body', None),
    ),
    ('HEAD', b'HTTP/1.0 200 OK\r\n\r\n', (200, 'OK', {}, None, None)),
    ('GET', b'HTTP/1.0 204 \r\n\r\n', (204, '', {}, None, None)),
    (
        'GET',
        b'HTTP/1.0 200 OK\r\ncontent-length: 5\r\n\r\nhello',
        (200, 'OK', {'content-length': 5}, 'Body', 5),
    ),
]


@pytest.mark.parametrize('n', MOVE_SIZES)
@pytest.mark.parametrize('method, src, value', READ_RESPONSE)
def test_read_response(method, src, value, n):
    sw = wrap(src, n)
    (r, version, framing) = sw.read_response_head(method)
    assert type(r) is Response
    body = r.body
    kind = None if body is None else type(body).__name__
    length = getattr(body, 'content_length', None)
    assert (r.status, r.reason, r.headers, kind, length) == value
    assert version == src[:8].decode()
    assert framing == response_framing(method, r.status, r.headers)[0]
    assert wrap(src, n).read_response(method)[:3] == r[:3]
    if body is not None:
        data = body.read()
        assert body.state == BODY_CONSUMED
        assert data == src[src.index(b'\r\n\r\n') + 4 :] or kind == 'ChunkedBody'


READ_RESPONSE_BAD = [
    (b'', EmptyPreambleError, 'response preamble is empty'),
    (
        b'HTTP/1.1 200 OK\r\n',
        ConnectionClosed,
        "response preamble truncated: b'HTTP/1.1 200 OK\\r\\n'",
    ),
    (
        b'HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n',
        UnsupportedResponse,
        "unsupported transfer-encoding: b'gzip'",
    ),
    (b'HTTP/1.1 600 OK\r\n\r\n', ParseError, "bad status: b'600 OK'"),
    (b'HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n', ParseError, "bad content-length: b'x'"),
    (
        b'HTTP/1.1 200 OK\r\n' + b'x' * 40000,
        ParseError,
        'response preamble too large: over 32768 bytes',
    ),
]


@pytest.mark.parametrize('n', MOVE_SIZES)
@pytest.mark.parametrize('src, exc, message', READ_RESPONSE_BAD)
def test_read_response_bad(src, exc, message, n):
    raises(exc, message, wrap(src, n).read_response, 'GET')


def test_unsupported_response_chains_parse_error():
    e = raises(
        UnsupportedResponse,
        "unsupported transfer-encoding: b'gzip'",
        wrap(b'HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n').read_response,
        'GET',
    )
    assert type(e.__cause__) is ParseError


# -------------------------------------------------------------------------
# Close-delimited bodies (RFC 9112 section 6.3).


def close_delimited(data, n=1 << 20):
    sw = wrap(b'HTTP/1.0 200 OK\r\n\r\n' + data, n)
    body = sw.read_response('GET').body
    assert body.content_length is None
    assert repr(body) == 'Body(<reader>, None)'
    return body


@pytest.mark.parametrize('n', MOVE_SIZES)
def test_close_delimited_read(n):
    body = close_delimited(b'hello world', n)
    assert body.read(0) == b''
    assert body.state == BODY_READY  # read(0) has no side effects, even here
    assert body.readinto(bytearray()) == 0
    assert body.state == BODY_READY
    assert body.read() == b'hello world'
    assert body.state == BODY_CONSUMED
    assert body.read() == b''


@pytest.mark.parametrize('n', MOVE_SIZES)
def test_close_delimited_read_sized(n):
    body = close_delimited(b'hello world', n)
    out = []
    while True:
        data = body.read(4)
        assert len(data) <= 4
        if not data:
            break
        assert body.state == BODY_STARTED
        out.append(data)
    assert b''.join(out) == b'hello world'
    assert body.state == BODY_CONSUMED


@pytest.mark.parametrize('n', MOVE_SIZES)
def test_close_delimited_readinto(n):
    body = close_delimited(b'hello world', n)
    buf = bytearray(20)
    out = bytearray()
    while True:
        count = body.readinto(buf)
        if not count:
            break
        out += buf[:count]
    assert out == b'hello world'
    assert body.state == BODY_CONSUMED


@pytest.mark.parametrize('n', MOVE_SIZES)
def test_close_delimited_iter_and_write_to(n):
    body = close_delimited(b'hello world', n)
    assert b''.join(body) == b'hello world'
    assert body.state == BODY_CONSUMED
    body = close_delimited(b'hello world', n)
    out = FakeFile(n=n)
    assert body.write_to(out) == 11
    assert out.written == b'hello world'
    assert body.state == BODY_CONSUMED
    body = close_delimited(b'', n)
    assert list(body) == []
    assert body.state == BODY_CONSUMED


def test_close_delimited_write_to_fails():
    body = close_delimited(b'hello world')

    class Broken:
        def write(self, data):
            raise BrokenPipeError(errno.EPIPE, 'gone')

    with pytest.raises(BrokenPipeError):
        body.write_to(Broken())
    assert body.state == BODY_ERROR
    assert body.rfile.closed


def test_close_delimited_too_large():
    class Endless(FakeSocket):
        def recv_into(self, buf):
            if self.calls:
                buf[: len(buf)] = b'x' * len(buf)
                self.calls.append(('recv_into', len(buf), len(buf)))
                return len(buf)
            return super().recv_into(buf)

    sock = Endless(b'HTTP/1.0 200 OK\r\n\r\n')
    sw = SocketWrapper(sock)
    body = sw.read_response('GET').body
    with pytest.raises(ValueError) as info:
        body.read()
    assert str(info.value).startswith('would exceed max read size: ')
    assert str(info.value).endswith(' > 16777216')
    assert body.state == BODY_ERROR
    assert sw.closed


def test_close_delimited_needs_a_connection():
    raises(
        TypeError,
        "content_length: need a <class 'int'>; got a <class 'NoneType'>: None",
        Body,
        io.BytesIO(),
        None,
    )
    headers = {}
    set_output_headers(headers, Body(wrap(), None))
    assert headers == {'transfer-encoding': 'chunked'}  # sent chunked
    raises(
        ValueError,
        'cannot have both content-length and transfer-encoding headers',
        set_output_headers,
        {'content-length': 5},
        close_delimited(b''),
    )


# -------------------------------------------------------------------------
# Bodies over the connection.


@pytest.mark.parametrize('n', MOVE_SIZES)
@pytest.mark.parametrize('size', [0, 1, 4095, 4096, 4097, 40000, IO_SIZE + 1])
def test_body_sizes(size, n):
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    src = b'PUT / HTTP/1.1\r\ncontent-length: %d\r\n\r\n' % size + data + b'GET / HTTP/1.1\r\n\r\n'
    if n == 1 and size > 40000:
        n = 997  # keep it fast; still many partial reads
    for how in ('read', 'read_sized', 'readinto', 'iter', 'write_to'):
        sw = wrap(src, n)
        body = sw.read_request().body
        if how == 'read':
            got = body.read()
        elif how == 'read_sized':
            got = b''
            while body.state != BODY_CONSUMED:
                got += body.read(5000)
        elif how == 'readinto':
            buf = bytearray(size + 10)
            count = body.readinto(buf)
            got = bytes(buf[:count])
            assert body.readinto(buf) == 0
        elif how == 'iter':
            got = b''.join(body)
        else:
            out = FakeFile(n=n)
            assert body.write_to(out) == size
            got = bytes(out.written)
        assert got == data, how
        assert body.state == BODY_CONSUMED
        assert sw.read_request().uri == '/'


@pytest.mark.parametrize('n', MOVE_SIZES)
def test_chunked_body_over_connection(n):
    chunks = [(None, b'a' * 5000), (('k', 'v w'), b'b'), (None, b'c' * 100), (('e', ''), b'')]
    wire = encode_chunks(chunks, b'x-t: 1\r\n')
    src = (
        b'POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n'
        + wire
        + b'GET /n HTTP/1.1\r\n\r\n'
    )
    sw = wrap(src, n)
    assert list(sw.read_request().body) == chunks
    assert sw.read_request().uri == '/n'
    sw = wrap(src, n)
    assert sw.read_request().body.read() == b'a' * 5000 + b'b' + b'c' * 100
    assert sw.read_request().uri == '/n'
    sw = wrap(src, n)
    body = sw.read_request().body
    got = b''
    while True:
        data = body.read(777)
        if not data:
            break
        got += data
    assert got == b'a' * 5000 + b'b' + b'c' * 100
    sw = wrap(src, n)
    out = FakeFile(n=n)
    body = sw.read_request().body
    assert body.write_to(out) == len(encode_chunks(chunks))
    assert out.written == encode_chunks(chunks)  # the trailer is dropped
    assert sw.read_request().uri == '/n'


CHUNKED_WIRE_BAD = [
    (b'1' * 5000 + b'\r\n', ParseError, f"b'\\r\\n' not found in {b'1' * 32!r}..."),
    (b'5\r\nhelloXY', ParseError, "bad chunk data termination: b'XY'"),
    (b'5;\r\nhello\r\n', ParseError, "bad chunk extension: b';'"),
    (b'5', ConnectionClosed, "chunk line truncated: b'5'"),
    (b'5\r\nhel', ConnectionClosed, 'expected to read 5 bytes, but received 3'),
    (b'0\r\nx: y\r\n', ConnectionClosed, "chunk line truncated: b''"),
    (
        b'0\r\n' + b'x: y\r\n' * 101 + b'\r\n',
        ParseError,
        'trailer too large: 101 fields, 606 bytes',
    ),
]


@pytest.mark.parametrize('n', MOVE_SIZES)
@pytest.mark.parametrize('wire, exc, message', CHUNKED_WIRE_BAD)
def test_chunked_body_over_connection_bad(wire, exc, message, n):
    sw = wrap(b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n' + wire, n)
    body = sw.read_response('GET').body
    raises(exc, message, body.read)
    assert body.state == BODY_ERROR
    assert sw.closed and sw.error is not None


def test_chunk_line_at_limit():
    ext = b';k=' + b'v' * (4096 - 2 - 4)
    line = b'1' + ext + b'\r\n'
    assert len(line) == 4096
    sw = wrap(b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n' + line + b'x\r\n0\r\n\r\n')
    body = sw.read_response('GET').body
    assert body.readchunk() == (('k', 'v' * 4090), b'x')
    line = b'1' + ext + b'v\r\n'
    sw = wrap(b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n' + line + b'x\r\n0\r\n\r\n')
    body = sw.read_response('GET').body
    with pytest.raises(ValueError) as info:
        body.readchunk()
    assert str(info.value).startswith("b'\\r\\n' not found in b'1;k=vvv")


def test_chunk_line_after_exact_preamble_regression():
    # The preamble consumed every buffered byte (start == stop > 0), then the
    # whole chunked body arrives in one recv: readline must find its CRLF.
    a, b = socket.socketpair()
    with a, b:
        a.settimeout(5)
        b.settimeout(5)
        sw = SocketWrapper(a)
        b.sendall(b'POST /x HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n')
        r = sw.read_request()
        assert sw.buffered == 0
        b.sendall(b'5\r\nhello\r\n0\r\n\r\n')
        b.shutdown(socket.SHUT_WR)
        assert r.body.read() == b'hello'


def test_body_error_closes_or_not():
    src = b'HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhel'
    sw = wrap(src)
    body = sw.read_response('GET').body
    raises(ConnectionClosed, 'expected to read 5 bytes, but received 3', body.read)
    assert sw.closed and sw.sock.close_count == 1
    assert type(sw.error) is ConnectionClosed
    sw = wrap(src, close_on_error=False)
    body = sw.read_response('GET').body
    raises(ConnectionClosed, 'expected to read 5 bytes, but received 3', body.read)
    assert not sw.closed and type(sw.error) is ConnectionClosed
    # the first error is kept
    first = sw.error
    sw.body_failed(ValueError('second'))
    assert sw.error is first


def test_body_after_close():
    sw = wrap(b'HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello')
    body = sw.read_response('GET').body
    sw.close()
    assert body.read(5) == b'hello'  # still in the read buffer
    raises(ConnectionClosed, 'Connection is closed', body.read, 5)
    assert body.state == BODY_ERROR


# -------------------------------------------------------------------------
# Socket errors.


class ErrorSocket(FakeSocket):
    pass


MAP_SOCKET_ERROR = [
    (
        ConnectionResetError(104, 'reset'),
        ConnectionClosed,
        'x: ConnectionResetError: [Errno 104] reset',
    ),
    (BrokenPipeError(32, 'pipe'), ConnectionClosed, 'x: BrokenPipeError: [Errno 32] pipe'),
    (ConnectionAbortedError('abort'), ConnectionClosed, 'x: ConnectionAbortedError: abort'),
    (ConnectionRefusedError('no'), ConnectionClosed, 'x: ConnectionRefusedError: no'),
    (TimeoutError('t'), ConnectionTimedOut, 'x timed out'),
    (socket.timeout('t'), ConnectionTimedOut, 'x timed out'),
    (ssl.SSLEOFError(8, 'eof'), ConnectionClosed, 'x: SSLEOFError: eof'),
    (ssl.SSLZeroReturnError(6, 'zero'), ConnectionClosed, 'x: SSLZeroReturnError: zero'),
]


@pytest.mark.parametrize('error, exc, message', MAP_SOCKET_ERROR)
def test_map_socket_error(error, exc, message):
    mapped = map_socket_error(error, 'x')
    assert type(mapped) is exc
    assert str(mapped) == message
    assert mapped.unanswered == ()


@pytest.mark.parametrize(
    'error',
    [OSError(errno.EBADF, 'bad'), ssl.SSLError(1, 'x'), ConnectionClosed('c'), ValueError('v')],
)
def test_map_socket_error_none(error):
    assert map_socket_error(error, 'x') is None


@pytest.mark.parametrize('error, exc, message', MAP_SOCKET_ERROR[:2] + MAP_SOCKET_ERROR[4:5])
def test_recv_errors(error, exc, message):
    sock = FakeSocket(b'', recv_error=error)
    e = raises(
        exc, message.replace('x', 'reading request preamble', 1), SocketWrapper(sock).read_request
    )
    assert e.__cause__ is error
    sock = FakeSocket(b'GET / HTTP/1.1\r\n', recv_error=error)
    raises(
        exc, message.replace('x', 'reading request preamble', 1), SocketWrapper(sock).read_request
    )
    sock = FakeSocket(b'PUT / HTTP/1.1\r\ncontent-length: 9\r\n\r\nabc', recv_error=error)
    sw = SocketWrapper(sock)
    body = sw.read_request().body
    raises(exc, message.replace('x', 'reading body', 1), body.read)
    assert body.state == BODY_ERROR
    sock = FakeSocket(b'PUT / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n5', recv_error=error)
    body = SocketWrapper(sock).read_request().body
    raises(exc, message.replace('x', 'reading chunk line', 1), body.read)


def test_recv_other_oserror_passes():
    error = OSError(errno.EBADF, 'bad')
    sock = FakeSocket(b'', recv_error=error)
    with pytest.raises(OSError) as info:
        SocketWrapper(sock).read_request()
    assert info.value is error


@pytest.mark.parametrize('error, exc, message', MAP_SOCKET_ERROR[:2] + MAP_SOCKET_ERROR[4:5])
def test_send_errors(error, exc, message):
    sock = FakeSocket(send_error=error, send_limit=10)
    sw = SocketWrapper(sock)
    e = raises(exc, message.replace('x', 'sending', 1), sw.write_response, 200, 'OK', {}, b'hello')
    assert e.__cause__ is error
    assert bytes(sock.sent) == b'HTTP/1.1 2'


def test_send_other_oserror_passes():
    error = OSError(errno.EBADF, 'bad')
    sw = SocketWrapper(FakeSocket(send_error=error, send_limit=0))
    with pytest.raises(OSError) as info:
        sw.write_response(200, 'OK', {}, None)
    assert info.value is error


# -------------------------------------------------------------------------
# Timeouts: idle_timeout for the first byte, timeout for the preamble.


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def monotonic(self):
        return self.now


class SlowSocket(FakeSocket):
    """Each recv_into takes `step` seconds of the fake clock."""

    def __init__(self, data, n, clock, step):
        super().__init__(data, n)
        self.clock = clock
        self.step = step

    def recv_into(self, buf):
        self.clock.now += self.step
        return super().recv_into(buf)


def test_idle_timeout(monkeypatch):
    sock = FakeSocket(b'GET / HTTP/1.1\r\n\r\n')
    sw = SocketWrapper(sock, timeout=30, idle_timeout=15)
    sw.read_request()
    assert sock.timeouts == [15]
    # the next operation switches back to timeout, once
    sw.write_response(200, 'OK', {}, None)
    sw.write_response(200, 'OK', {}, None)
    assert sock.timeouts == [15, 30]
    sock = FakeSocket(b'GET / HTTP/1.1\r\n\r\n')
    sw = SocketWrapper(sock, timeout=30, idle_timeout=30)
    sw.read_request()
    sw.write_response(200, 'OK', {}, None)
    assert sock.timeouts == []
    sock = FakeSocket(b'', recv_error=TimeoutError('timed out'))
    sw = SocketWrapper(sock, timeout=30, idle_timeout=15)
    raises(ConnectionTimedOut, 'reading request preamble timed out', sw.read_request)
    assert sock.timeouts == [15]


def test_preamble_deadline(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(_transport, 'time', clock)
    src = b'GET / HTTP/1.1\r\nx: y\r\n\r\n'
    sock = SlowSocket(src, 1, clock, 1.0)
    sw = SocketWrapper(sock, timeout=len(src) + 1)
    assert sw.read_request().headers == {'x': 'y'}
    # every settimeout after the first byte gives the time left, then the
    # next operation goes back to timeout
    sw.write_response(200, 'OK', {}, None)
    # (the first byte took one second of the fake clock: that much less is left)
    assert sock.timeouts[0] == len(src)
    assert sock.timeouts[-1] == len(src) + 1
    assert sock.timeouts[1:-1] == sorted(sock.timeouts[1:-1], reverse=True)
    sock = SlowSocket(src, 1, clock, 1.0)
    sw = SocketWrapper(sock, timeout=10)
    raises(ConnectionTimedOut, 'request preamble not complete in 10s', sw.read_request)
    sw.write_response(200, 'OK', {}, None)
    assert sock.timeouts[-1] == 10


def test_no_timeout_no_settimeout():
    sock = FakeSocket(b'GET / HTTP/1.1\r\n\r\n', 1)
    SocketWrapper(sock).read_request()
    assert sock.timeouts == []


# -------------------------------------------------------------------------
# 100 Continue (RFC 9110 section 10.1.1), armed by the server.


@pytest.mark.parametrize('n', MOVE_SIZES)
def test_expect_continue(n):
    for op in (lambda b: b.read(), lambda b: b.readinto(bytearray(5)), list):
        sock = FakeSocket(
            b'PUT / HTTP/1.1\r\nexpect: 100-continue\r\ncontent-length: 5\r\n\r\nhello', n
        )
        sw = SocketWrapper(sock)
        body = sw.read_request().body
        assert sw.continue_pending is False
        sw.expect_continue()
        assert sw.continue_pending is True
        assert sock.sent == b''
        op(body)
        assert sw.continue_pending is False
        assert sock.sent == b'HTTP/1.1 100 Continue\r\n\r\n'
    sock = FakeSocket(b'PUT / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n', n)
    sw = SocketWrapper(sock)
    body = sw.read_request().body
    sw.expect_continue()
    assert body.read() == b''
    assert sock.sent == b'HTTP/1.1 100 Continue\r\n\r\n'
    # big reads too
    data = b'x' * 10000
    sock = FakeSocket(b'PUT / HTTP/1.1\r\ncontent-length: 10000\r\n\r\n' + data, n)
    sw = SocketWrapper(sock)
    body = sw.read_request().body
    sw.expect_continue()
    assert body.read() == data
    assert sock.sent == b'HTTP/1.1 100 Continue\r\n\r\n'


# -------------------------------------------------------------------------
# Writing.

SET_OUTPUT_HEADERS = [
    (None, {}, {}),
    (None, {'content-length': 5}, {'content-length': 5}),
    (b'hello', {}, {'content-length': 5}),
    (b'', {}, {'content-length': 0}),
    (b'hello', {'content-length': 5}, {'content-length': 5}),
    (b'hello', {'content-length': '5'}, {'content-length': '5'}),
    (BodyIter([], 0), {}, {'content-length': 0}),
    (Body(io.BytesIO(), 7), {}, {'content-length': 7}),
    (ChunkedBodyIter([]), {}, {'transfer-encoding': 'chunked'}),
    (
        ChunkedBody(io.BytesIO()),
        {'transfer-encoding': 'chunked'},
        {'transfer-encoding': 'chunked'},
    ),
    (ChunkedBodyIter([]), {'transfer-encoding': 'Chunked'}, {'transfer-encoding': 'Chunked'}),
]


@pytest.mark.parametrize('body, headers, result', SET_OUTPUT_HEADERS)
def test_set_output_headers(body, headers, result):
    headers = dict(headers)
    assert set_output_headers(headers, body) is None
    assert headers == result


SET_OUTPUT_HEADERS_BAD = [
    (b'hello', {'content-length': 4}, ValueError, "'content-length' mismatch: 5 != 4"),
    (b'hello', {'content-length': '4'}, ValueError, "'content-length' mismatch: 5 != '4'"),
    (BodyIter([], 12), {'content-length': 13}, ValueError, "'content-length' mismatch: 12 != 13"),
    (
        ChunkedBodyIter([]),
        {'transfer-encoding': 'gzip'},
        ValueError,
        "'transfer-encoding' mismatch: 'chunked' != 'gzip'",
    ),
    (
        b'hello',
        {'transfer-encoding': 'chunked'},
        ValueError,
        'cannot have both content-length and transfer-encoding headers',
    ),
    (
        ChunkedBodyIter([]),
        {'content-length': 5},
        ValueError,
        'cannot have both content-length and transfer-encoding headers',
    ),
    (bytearray(b'x'), {}, TypeError, "bad body type: <class 'bytearray'>: bytearray(b'x')"),
    ('x', {}, TypeError, "bad body type: <class 'str'>: 'x'"),
    (b'x' * (MAX_IO_SIZE + 1), {}, ValueError, 'need len(body) <= 16777216; got 16777217'),
]


@pytest.mark.parametrize('body, headers, exc, message', SET_OUTPUT_HEADERS_BAD)
def test_set_output_headers_bad(body, headers, exc, message):
    raises(exc, message, set_output_headers, dict(headers), body)


def test_set_output_headers_truncates_repr():
    e = raises(
        TypeError,
        f"bad body type: <class 'list'>: {[1] * 100!r}"[:200],
        set_output_headers,
        {},
        [1] * 100,
    )
    assert len(str(e)) == 200


WRITE_MESSAGES = [
    # (method or status, body) -> wire
    (('GET', '/', {}, None), b'GET / HTTP/1.1\r\n\r\n'),
    (
        ('PUT', '/a', {'x': 'y'}, b'hello'),
        b'PUT /a HTTP/1.1\r\ncontent-length: 5\r\nx: y\r\n\r\nhello',
    ),
    (
        ('POST', '/', {}, BodyIter([b'he', b'llo'], 5)),
        b'POST / HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello',
    ),
    (
        ('POST', '/', {}, ChunkedBodyIter([(None, b'hi'), (('k', 'v'), b'')])),
        b'POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0;k=v\r\n\r\n',
    ),
    ((200, 'OK', {}, None), b'HTTP/1.1 200 OK\r\n\r\n'),
    ((200, 'OK', {}, b''), b'HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n'),
    (
        (404, 'Not Found', {'content-length': 3}, b'abc'),
        b'HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\n\r\nabc',
    ),
]


@pytest.mark.parametrize('n', MOVE_SIZES)
@pytest.mark.parametrize('args, wire', WRITE_MESSAGES)
def test_write_message(args, wire, n):
    # fresh body objects for each run
    (a, b, headers, body) = args
    if isinstance(body, BodyIter):
        body = BodyIter(list(body.source), body.content_length)
    elif isinstance(body, ChunkedBodyIter):
        body = ChunkedBodyIter(list(body.source))
    sock = FakeSocket(n=n)
    sw = SocketWrapper(sock)
    write = sw.write_request if isinstance(a, str) else sw.write_response
    assert write(a, b, dict(headers), body) == len(wire)
    assert sock.sent == wire
    sends = [c for c in sock.calls if c[0] == 'send']
    if n > 1:
        assert len(sends) == 1  # preamble and a small body coalesced


@pytest.mark.parametrize('n', [1000, 1 << 20])
def test_write_large_bodies(n):
    data = bytes(range(256)) * 400  # 100 KiB, more than the write buffer
    sock = FakeSocket(n=n)
    sw = SocketWrapper(sock)
    total = sw.write_response(200, 'OK', {}, data)
    preamble = b'HTTP/1.1 200 OK\r\ncontent-length: 102400\r\n\r\n'
    assert total == len(preamble) + len(data)
    assert sock.sent == preamble + data
    if n > 1000:
        assert [c[1] for c in sock.calls] == [len(preamble), len(data)]
    # the same through a BodyIter, a Body and a ChunkedBody from another connection
    for make in (
        lambda: BodyIter([data[:50000], data[50000:]], len(data)),
        lambda: (
            wrap(b'PUT / HTTP/1.1\r\ncontent-length: 102400\r\n\r\n' + data).read_request().body
        ),
    ):
        sock = FakeSocket(n=n)
        sw = SocketWrapper(sock)
        assert sw.write_response(200, 'OK', {}, make()) == len(preamble) + len(data)
        assert sock.sent == preamble + data
    chunks = [(None, data), (('a', 'b'), data[:10]), (None, b'')]
    src = b'PUT / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n' + encode_chunks(chunks)
    body = wrap(src).read_request().body
    sock = FakeSocket(n=n)
    sw = SocketWrapper(sock)
    sw.write_request('PUT', '/', {}, body)
    wire = b'PUT / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n' + encode_chunks(chunks)
    assert sock.sent == wire


def test_write_request_checks_before_sending():
    sock = FakeSocket()
    sw = SocketWrapper(sock)
    raises(ValueError, "bad method: 'get'", sw.write_request, 'get', '/', {}, None)
    raises(
        ValueError,
        "'content-length' mismatch: 5 != 4",
        sw.write_request,
        'PUT',
        '/',
        {'content-length': 4},
        b'hello',
    )
    raises(
        ValueError,
        "bad header value: 'x': 'a\\r\\nb'",
        sw.write_response,
        200,
        'OK',
        {'x': 'a\r\nb'},
        None,
    )
    assert sock.sent == b''


def test_write_body_error_midway():
    def gen():
        yield b'abc'
        raise ValueError('source failed')

    sock = FakeSocket()
    sw = SocketWrapper(sock)
    raises(ValueError, 'source failed', sw.write_response, 200, 'OK', {}, BodyIter(gen(), 6))
    # nothing is flushed behind the caller's back; the owner closes the connection


def test_write_buffering():
    sock = FakeSocket()
    sw = SocketWrapper(sock)
    assert sw.write(b'a' * 100) == 100
    assert sw.write(memoryview(b'b' * 100)) == 100
    assert sock.sent == b''
    sw.flush()
    assert sock.sent == b'a' * 100 + b'b' * 100
    assert [c[1] for c in sock.calls] == [200]
    sw.flush()  # nothing left
    assert len(sock.calls) == 1
    # a write that does not fit flushes first; a big one goes straight out
    sw.write(b'c' * 30000)
    sw.write(b'd' * 5000)
    assert sock.sent.endswith(b'c' * 30000)
    sw.write(b'e' * 20000)  # fits: buffered
    assert sock.sent.endswith(b'c' * 30000)
    sw.write(b'f' * 30000)  # flushes d and e, then goes straight out
    assert sock.sent.endswith(b'd' * 5000 + b'e' * 20000 + b'f' * 30000)
    sw.flush()
    assert bytes(sock.sent[200:]) == b'c' * 30000 + b'd' * 5000 + b'e' * 20000 + b'f' * 30000


def test_close_drops_buffered_writes():
    sock = FakeSocket()
    sw = SocketWrapper(sock)
    sw.write(b'abc')
    sw.close()
    sw.flush()
    assert sock.sent == b''


# -------------------------------------------------------------------------
# Real sockets.


def test_socketpair_exchange():
    a, b = socket.socketpair()
    with a, b:
        a.settimeout(5)
        b.settimeout(5)
        client = SocketWrapper(a)
        server = SocketWrapper(b, close_on_error=False, timeout=5, idle_timeout=5)
        data = bytes(range(256)) * 1000
        errors = []

        def serve():
            try:
                for _ in range(3):
                    r = server.read_request()
                    body = r.body.read() if r.body is not None else b''
                    server.write_response(200, 'OK', {'x-method': r.method}, body)
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            client.write_request('PUT', '/a', {}, data)
            r = client.read_response('PUT')
            assert (r.status, r.headers['x-method']) == (200, 'PUT')
            assert r.body.read() == data
            client.write_request('POST', '/b', {}, ChunkedBodyIter([(None, data), (None, b'')]))
            r = client.read_response('POST')
            assert r.body.read() == data
            client.write_request('GET', '/c', {}, None)
            r = client.read_response('GET')
            assert (r.headers['content-length'], r.body.read()) == (0, b'')
        finally:
            thread.join(10)
        assert not thread.is_alive()
        assert errors == []
        client.close()
        raises(EmptyPreambleError, 'request preamble is empty', server.read_request)


def test_socketpair_peer_closes_mid_body():
    a, b = socket.socketpair()
    with a, b:
        a.settimeout(5)
        sw = SocketWrapper(a)
        b.sendall(b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n' + b'x' * 50)
        b.close()
        r = sw.read_response('GET')
        raises(ConnectionClosed, 'expected to read 100 bytes, but received 50', r.body.read)
        assert sw.closed


def test_socketpair_timeout():
    a, b = socket.socketpair()
    with a, b:
        a.settimeout(0.05)
        sw = SocketWrapper(a, timeout=0.05)
        b.sendall(b'GET / HTTP/1.1\r\n')
        raises(ConnectionTimedOut, 'reading request preamble timed out', sw.read_request)


def test_read_response_too_many_headers():
    src = b'HTTP/1.1 200 OK\r\n' + b''.join(b'h%d: v\r\n' % i for i in range(101)) + b'\r\n'
    e = raises(ParseError, 'too many header fields: 101 > 100', wrap(src).read_response, 'GET')
    assert e.status == 431


def test_fill_compacts_a_full_buffer():
    # A guard: no reader leaves the buffer full with unread bytes before a
    # recv, but _fill() must not recv into an empty slice if one ever does.
    sw = wrap(b'xyz')
    size = len(sw._buf)
    sw._start = size - 2
    sw._stop = size
    sw._buf[size - 2 :] = b'ab'
    assert sw._fill('test') == 3
    assert (sw._start, sw._stop) == (0, 5)
    assert sw._buf[:5] == b'abxyz'


# -------------------------------------------------------------------------
# File bodies over a plain socket go out with socket.sendfile().


def _drain_socket(sock, size, out):
    while len(out) < size:
        data = sock.recv(65536)
        if not data:
            break
        out += data


def _send_file_body(tmp_path, data, offset=0, length=None):
    path = tmp_path / 'body'
    path.write_bytes(data)
    length = len(data) - offset if length is None else length
    a, b = socket.socketpair()
    with a, b, open(path, 'rb') as f:
        a.settimeout(5)
        b.settimeout(5)
        f.seek(offset)
        body = Body(f, length)
        sw = SocketWrapper(a)
        received = bytearray()
        preamble = b'HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n' % length
        thread = threading.Thread(target=_drain_socket, args=(b, len(preamble) + length, received))
        thread.start()
        try:
            try:
                total = sw.write_response(200, 'OK', {}, body)
            finally:
                a.shutdown(socket.SHUT_WR)
                thread.join(10)
        except BaseException as e:
            return (e, body, bytes(received), None)
        return (total, body, bytes(received), f.tell())


def test_sendfile(tmp_path):
    data = bytes(range(256)) * 1024  # 256 KiB
    (total, body, received, pos) = _send_file_body(tmp_path, data)
    preamble = b'HTTP/1.1 200 OK\r\ncontent-length: 262144\r\n\r\n'
    assert total == len(preamble) + len(data)
    assert received == preamble + data
    assert body.state == BODY_CONSUMED
    assert pos == len(data)
    # from the file's current position
    (total, body, received, pos) = _send_file_body(tmp_path, data, offset=1000)
    assert received.endswith(data[1000:])
    assert pos == len(data)


def test_sendfile_short_file(tmp_path):
    data = b'x' * 70000
    (error, body, received, _) = _send_file_body(tmp_path, data, length=80000)
    assert type(error) is ValueError
    assert str(error) == 'expected to write 80000 bytes, but sent 70000'
    assert body.state == BODY_ERROR


@pytest.mark.parametrize(
    'error, exc',
    [
        (BrokenPipeError(32, 'Broken pipe'), ConnectionClosed),
        (OSError(errno.EBADF, 'bad'), OSError),
    ],
)
def test_sendfile_errors(tmp_path, monkeypatch, error, exc):
    def sendfile(out_fd, in_fd, offset, count):
        raise error

    monkeypatch.setattr(os, 'sendfile', sendfile)
    (e, body, received, _) = _send_file_body(tmp_path, b'x' * 70000)
    assert type(e) is exc
    if exc is ConnectionClosed:
        assert str(e) == 'sending file: BrokenPipeError: [Errno 32] Broken pipe'
        assert e.__cause__ is error
    else:
        assert e is error
    assert body.state == BODY_ERROR


def test_no_sendfile(tmp_path, monkeypatch):
    calls = []

    def sendfile(out_fd, in_fd, offset, count):  # pragma: no cover - must not run
        calls.append(count)
        raise AssertionError('sendfile() used')

    monkeypatch.setattr(os, 'sendfile', sendfile)
    data = b'y' * 70000
    path = tmp_path / 'small'
    path.write_bytes(data)
    # a small file, a started body, a BytesIO, a pipe: all go through write_to()
    (total, body, received, _) = _send_file_body(tmp_path, data[: 64 * 1024 - 1])
    assert body.state == BODY_CONSUMED and received.endswith(data[: 64 * 1024 - 1])
    a, b = socket.socketpair()
    with a, b:
        a.settimeout(5)
        b.settimeout(5)
        sw = SocketWrapper(a)
        for body in (Body(io.BytesIO(data), len(data)),):
            received = bytearray()
            thread = threading.Thread(target=_drain_socket, args=(b, len(data) + 42, received))
            thread.start()
            sw.write_response(200, 'OK', {}, body)
            thread.join(10)
            assert received.endswith(data)
        with open(path, 'rb') as f:
            body = Body(f, len(data))
            body.read(1)
            assert body._sendfile(sw, b'') is None  # not a file body worth it: write_to()
        r, w = os.pipe()
        with open(r, 'rb') as rf, open(w, 'wb'):
            assert Body(rf, len(data))._sendfile(sw, b'') is None
        reader = wrap(b'PUT / HTTP/1.1\r\ncontent-length: 70000\r\n\r\n' + data)
        assert reader.read_request().body._sendfile(sw, b'') is None
    assert calls == []


@pytest.mark.parametrize('n', [1 << 20, 1000, 4099])
def test_many_pipelined_messages_straddle_the_buffer(n):
    # Messages cross the end of the 32 KiB read buffer at every kind of place.
    parts = []
    for i in range(600):
        if i % 3 == 0:
            parts.append(b'PUT /%d HTTP/1.1\r\ncontent-length: %d\r\n\r\n' % (i, i) + b'x' * i)
        elif i % 3 == 1:
            chunks = [(None, b'y' * i), (('i', str(i)), b'')]
            parts.append(
                b'POST /%d HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n' % i
                + encode_chunks(chunks)
            )
        else:
            parts.append(b'GET /%d HTTP/1.1\r\nx: %s\r\n\r\n' % (i, b'z' * i))
    sw = wrap(b''.join(parts), n)
    for i in range(600):
        r = sw.read_request()
        assert r.uri == f'/{i}'
        if i % 3 == 0:
            assert r.body.read() == b'x' * i
        elif i % 3 == 1:
            assert list(r.body) == [(None, b'y' * i), (('i', str(i)), b'')]
        else:
            assert r.headers == {'x': 'z' * i}
    raises(EmptyPreambleError, 'request preamble is empty', sw.read_request)
