"""Tests of degu.server: options, live requests over every address family,
raw-socket error and smuggling cases, limits, timeouts and shutdown."""

import contextlib
import errno
import http.client
import logging
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
import warnings

import pytest
from helpers import connect, exchange, recv_all, serving

import degu.server
from degu.base import MAX_IO_SIZE, Range
from degu.server import Server, SSLServer, build_server_sslctx, http_date

TIMEOUT = 10  # seconds: the bound on every socket wait in these tests


# --------------------------------------------------------------------------
# Fixtures and helpers




def families(tmp_path_factory=None):
    return ['ipv4', 'ipv6', 'unix', 'abstract']


@pytest.fixture(params=['ipv4', 'ipv6', 'unix', 'abstract'])
def address(request, tmp_path):
    return {
        'ipv4': ('127.0.0.1', 0),
        'ipv6': ('::1', 0, 0, 0),
        'unix': str(tmp_path / 'server.sock'),
        'abstract': b'',
    }[request.param]


def read_response(sock, buf=b''):
    """Read one response with a content-length framed body; returns (head, body, rest)."""
    while b'\r\n\r\n' not in buf:
        data = sock.recv(65536)
        assert data, buf
        buf += data
    (head, _, buf) = buf.partition(b'\r\n\r\n')
    length = 0
    for line in head.split(b'\r\n')[1:]:
        (name, _, value) = line.partition(b':')
        if name.lower() == b'content-length':
            length = int(value)
    while len(buf) < length:
        data = sock.recv(65536)
        assert data
        buf += data
    return (head, buf[:length], buf[length:])


def status_line(raw):
    return raw.split(b'\r\n', 1)[0]


def hello_app(session, request, api):
    body = request.body.read() if request.body is not None else b''
    return (200, 'OK', {'x-method': request.method}, b'hello ' + body)


class Recorder:
    """An app that records the requests it saw."""

    def __init__(self):
        self.calls = []

    def __call__(self, session, request, api):
        body = request.body.read() if request.body is not None else None
        self.calls.append((request.method, request.uri, body))
        return (200, 'OK', {}, b'ok')


# --------------------------------------------------------------------------
# Construction


def test_options_validation():
    with pytest.raises(TypeError) as e:
        Server(('127.0.0.1', 0), hello_app, foo=1, bar=2)
    assert str(e.value) == 'unsupported Server() **options: bar, foo'
    cases = [
        ({'max_connections': 0}, ValueError, 'need 1 <= max_connections <= 100000; got 0'),
        ({'max_connections': 1.5}, TypeError,
         "max_connections: need a <class 'int'>; got a <class 'float'>: 1.5"),
        ({'max_requests': 75001}, ValueError, 'need 1 <= max_requests <= 75000; got 75001'),
        ({'timeout': 0}, ValueError, 'timeout must be > 0; got 0'),
        ({'timeout': '1'}, TypeError,
         "timeout: need a (<class 'int'>, <class 'float'>); got a <class 'str'>: '1'"),
        ({'idle_timeout': -1}, ValueError, 'idle_timeout must be > 0; got -1'),
        ({'max_header_bytes': 100}, ValueError,
         'need 1024 <= max_header_bytes <= 1048576; got 100'),
        ({'max_header_count': 0}, ValueError, 'need 1 <= max_header_count <= 10000; got 0'),
        ({'max_connections': True}, TypeError,
         "max_connections: need a <class 'int'>; got a <class 'bool'>: True"),
    ]
    for (options, exc, message) in cases:
        with pytest.raises(exc) as e:
            Server(('127.0.0.1', 0), hello_app, **options)
        assert str(e.value) == message


def test_app_and_address_validation():
    with pytest.raises(TypeError) as e:
        Server(('127.0.0.1', 0), 'nope')
    assert str(e.value) == "app: not callable: 'nope'"

    class App:
        on_connect = 17

        def __call__(self, session, request, api):  # pragma: no cover
            pass

    with pytest.raises(TypeError) as e:
        Server(('127.0.0.1', 0), App())
    assert str(e.value) == 'app.on_connect: not callable: 17'
    with pytest.raises(ValueError) as e:
        Server(('127.0.0.1', 0, 0), hello_app)
    assert str(e.value) == "address: must have 2 or 4 items; got ('127.0.0.1', 0, 0)"
    with pytest.raises(ValueError) as e:
        Server('foo.sock', hello_app)
    assert str(e.value) == "address: bad socket filename: 'foo.sock'"
    with pytest.raises(TypeError) as e:
        Server(['127.0.0.1', 0], hello_app)
    assert str(e.value) == (
        "address: need a (<class 'tuple'>, <class 'str'>, <class 'bytes'>); "
        "got a <class 'list'>: ['127.0.0.1', 0]"
    )


def test_attributes_and_repr(tmp_path):
    filename = str(tmp_path / 'a.sock')
    server = Server(filename, hello_app, timeout=2)
    try:
        assert server.address == filename
        assert server.timeout == 2
        assert server.idle_timeout == 15
        assert server.max_connections == 50
        assert server.max_requests == 1000
        assert server.max_header_bytes == 32 * 1024
        assert server.max_header_count == 100
        assert server.options == {'timeout': 2}
        assert repr(server) == f"Server({filename!r}, {__name__}.hello_app)"
        assert os.path.exists(filename)
    finally:
        assert server.shutdown() is True
    assert server.sock.fileno() == -1
    assert not os.path.exists(filename)  # the socket file goes with the server


def test_bind_error_and_listening_socket():
    with Server(('127.0.0.1', 0), hello_app) as first:
        with pytest.raises(OSError):
            Server(first.address, hello_app)
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    sock.listen(5)
    with serving(hello_app, sock) as server:
        assert server.address == sock.getsockname()
        conn = http.client.HTTPConnection(*server.address, timeout=TIMEOUT)
        conn.request('GET', '/')
        assert conn.getresponse().read() == b'hello '
        conn.close()


def test_http_date():
    assert http_date(0) == 'Thu, 01 Jan 1970 00:00:00 GMT'
    assert http_date(784111777) == 'Sun, 06 Nov 1994 08:49:37 GMT'


# --------------------------------------------------------------------------
# Live requests


def test_live_every_family(address):
    seen = []

    def app(session, request, api):
        seen.append((session.address, session.credentials))
        return hello_app(session, request, api)

    with serving(app, address) as server:
        with connect(server.address) as sock:
            for i in range(3):
                sock.sendall(b'POST /a/b?c HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nxyz')
                (head, body, rest) = read_response(sock)
                assert rest == b''
                assert status_line(head) == b'HTTP/1.1 200 OK'
                assert body == b'hello xyz'
                assert b'\r\ndate: ' in head
                assert b'connection' not in head
    assert len(seen) == 3
    if isinstance(address, (str, bytes)):
        assert seen[0][1] == (os.getpid(), os.getuid(), os.getgid())
    else:
        assert seen[0][1] is None


def test_http_client_and_urllib():
    with serving(hello_app) as server:
        conn = http.client.HTTPConnection(*server.address, timeout=TIMEOUT)
        for method in ('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'):
            conn.request(method, '/x', body=b'data' if method in ('POST', 'PUT') else None)
            response = conn.getresponse()
            assert response.status == 200
            assert response.getheader('x-method') == method
            expected = b'hello data' if method in ('POST', 'PUT') else b'hello '
            assert response.read() == expected
        conn.request('HEAD', '/x')
        response = conn.getresponse()
        assert response.status == 500  # the app returned a body for HEAD
        conn.close()
        url = 'http://127.0.0.1:%d/foo' % server.address[1]
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            assert response.read() == b'hello '
        request = urllib.request.Request(url, data=b'posted', method='POST')
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            assert response.read() == b'hello posted'


def test_http_client_chunked_upload_and_download():
    def app(session, request, api):
        chunks = [request.body.readchunk() for _ in range(3)]
        assert request.body.state == 2
        return (200, 'OK', {}, api.ChunkedBodyIter(iter(chunks)))

    with serving(app) as server:
        conn = http.client.HTTPConnection(*server.address, timeout=TIMEOUT)
        conn.request('PUT', '/', body=iter([b'ab', b'cde']), encode_chunked=True)
        response = conn.getresponse()
        assert response.getheader('transfer-encoding') == 'chunked'
        assert response.read() == b'abcde'
        conn.close()


def test_head_and_no_body_statuses():
    def app(session, request, api):
        if request.uri == '/head':
            return (200, 'OK', {'content-length': 1234}, None)
        if request.uri == '/304':
            return (304, 'Not Modified', {'content-length': 99}, None)
        return (204, 'No Content', {}, None)

    with serving(app) as server:
        with connect(server.address) as sock:
            sock.sendall(b'HEAD /head HTTP/1.1\r\nHost: t\r\n\r\nGET /304 HTTP/1.1\r\n'
                         b'Host: t\r\n\r\n'
                         b'DELETE /x HTTP/1.1\r\nHost: t\r\n\r\n')
            sock.shutdown(socket.SHUT_WR)
            raw = recv_all(sock)
    responses = raw.split(b'\r\n\r\n')
    assert responses[-1] == b''
    assert len(responses) == 4
    assert status_line(responses[0]) == b'HTTP/1.1 200 OK'
    assert b'content-length: 1234' in responses[0]
    assert status_line(responses[1]) == b'HTTP/1.1 304 Not Modified'
    assert status_line(responses[2]) == b'HTTP/1.1 204 No Content'


# Framing of every response (RFC 9112 section 6.3, RFC 9110 sections 6.4.1,
# 8.6): (method, app response) -> the exact preamble the server renders.
FRAMING = [
    ('GET', (404, 'Not Found', {}, None), 'content-length: 0\r\ndate: D'),
    (
        'POST',
        (201, 'Created', {'location': '/a'}, None),
        'location: /a\r\ncontent-length: 0\r\ndate: D',
    ),
    ('GET', (200, 'OK', {}, b'hello'), 'content-length: 5\r\ndate: D'),
    ('GET', (200, 'OK', {'content-length': 5}, b'hello'), 'content-length: 5\r\ndate: D'),
    ('GET', (200, 'OK', {'content-length': 0}, None), 'content-length: 0\r\ndate: D'),
    ('GET', (200, 'OK', {}, 'BodyIter'), 'content-length: 2\r\ndate: D'),
    ('GET', (200, 'OK', {}, 'ChunkedBodyIter'), 'transfer-encoding: chunked\r\ndate: D'),
    (
        'GET',
        (200, 'OK', {'transfer-encoding': 'chunked'}, 'ChunkedBodyIter'),
        'transfer-encoding: chunked\r\ndate: D',
    ),
    ('GET', (200, 'OK', {'date': 'x'}, None), 'date: x\r\ncontent-length: 0'),
    # the app's connection field is the server's business: read for close
    ('GET', (200, 'OK', {'connection': 'keep-alive'}, None), 'content-length: 0\r\ndate: D'),
    (
        'GET',
        (200, 'OK', {'connection': 'close'}, None),
        'content-length: 0\r\nconnection: close\r\ndate: D',
    ),
    # no content: nothing added; HEAD and 304 keep what the app says
    ('HEAD', (200, 'OK', {}, None), 'date: D'),
    ('HEAD', (200, 'OK', {'content-length': 99}, None), 'content-length: 99\r\ndate: D'),
    (
        'HEAD',
        (200, 'OK', {'transfer-encoding': 'chunked'}, None),
        'transfer-encoding: chunked\r\ndate: D',
    ),
    ('GET', (304, 'Not Modified', {'etag': '"x"'}, None), 'etag: "x"\r\ndate: D'),
    ('GET', (304, 'Not Modified', {'content-length': 9}, None), 'content-length: 9\r\ndate: D'),
    ('GET', (204, 'No Content', {}, None), 'date: D'),
    ('GET', (204, 'No Content', {'content-length': 0, 'x': 'y'}, None), 'x: y\r\ndate: D'),
]


@pytest.mark.parametrize('method, response, lines', FRAMING)
def test_response_framing(method, response, lines):
    (status, reason, headers, body) = response
    frozen = dict(headers)

    def app(session, request, api):
        if request.body is not None:
            request.body.read()
        if body == 'BodyIter':
            return (status, reason, headers, api.BodyIter((b'h', b'i'), 2))
        if body == 'ChunkedBodyIter':
            return (status, reason, headers, api.ChunkedBodyIter([(None, b'hi'), (None, b'')]))
        return (status, reason, headers, body)

    with serving(app) as server:
        with connect(server.address) as sock:
            for _ in range(2):  # the same dict twice: it is never changed
                sock.sendall(f'{method} / HTTP/1.1\r\nHost: t\r\n\r\n'.encode())
                head = b''
                while b'\r\n\r\n' not in head:
                    head += sock.recv(1)
                head = re.sub(rb'date: [^\r]+GMT', b'date: D', head)
                assert head == f'HTTP/1.1 {status} {reason}\r\n{lines}\r\n\r\n'.encode()
                assert headers == frozen
                if 'connection: close' in lines:
                    break
                if body is not None and method != 'HEAD':
                    sock.recv(1024)


@pytest.mark.parametrize('status', [200, 304])
def test_no_transfer_encoding_to_http10(status):
    # RFC 9112 section 6.1: a server never sends transfer-encoding in a
    # response to a request that is not HTTP/1.1, even where the app
    # describes the GET response on HEAD or 304.
    def app(session, request, api):
        return (status, 'X', {'transfer-encoding': 'chunked', 'etag': '"e"'}, None)

    with serving(app) as server:
        reply = exchange(server.address, b'HEAD / HTTP/1.0\r\n\r\n')
        assert reply.startswith(b'HTTP/1.1 %d X\r\n' % status)
        assert b'transfer-encoding' not in reply and b'etag: "e"' in reply
        # an HTTP/1.1 request gets what the app said
        reply = exchange(server.address, b'HEAD / HTTP/1.1\r\nhost: x\r\n\r\n')
        assert b'\r\ntransfer-encoding: chunked\r\n' in reply


FINAL_STATUS_BAD = [
    (100, 'Continue'),
    (103, 'Early Hints'),
    (199, 'Whatever'),
    (101, 'Switching Protocols'),
]


@pytest.mark.parametrize('status, reason', FINAL_STATUS_BAD)
def test_interim_status_as_final_is_500(status, reason):
    # RFC 9110 section 15.2: a 1xx is never the final response.
    def app(session, request, api):
        return (status, reason, {}, None)

    with serving(app) as server:
        reply = exchange(server.address, b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
    assert status_line(reply) == b'HTTP/1.1 500 Internal Server Error'


def test_pipelined_requests_in_order():
    app = Recorder()
    with serving(app) as server:
        with connect(server.address) as sock:
            requests = b''.join(
                b'GET /%d HTTP/1.1\r\nHost: t\r\n\r\n' % i if i % 2 else
                b'PUT /%d HTTP/1.1\r\nHost: t\r\ncontent-length: 1\r\n\r\n%d' % (i, i % 10)
                for i in range(20)
            )
            sock.sendall(requests)
            rest = b''
            for i in range(20):
                (head, body, rest) = read_response(sock, rest)
                assert body == b'ok'
    assert [c[1] for c in app.calls] == ['/%d' % i for i in range(20)]


def test_max_requests_closes_with_header():
    with serving(hello_app, max_requests=3) as server:
        with connect(server.address) as sock:
            sock.sendall(b'GET / HTTP/1.1\r\nHost: t\r\n\r\n' * 5)
            raw = recv_all(sock)
    assert raw.count(b'HTTP/1.1 200 OK') == 3
    assert raw.count(b'connection: close') == 1
    assert raw.split(b'HTTP/1.1 200 OK')[3].count(b'connection: close') == 1


def test_connection_close_request():
    with serving(hello_app) as server:
        raw = exchange(server.address, b'GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n'
                                       b'GET /again HTTP/1.1\r\nHost: t\r\n\r\n')
    assert raw.count(b'HTTP/1.1') == 1
    assert b'\r\nconnection: close\r\n' in raw


def test_app_connection_close():
    def app(session, request, api):
        return (200, 'OK', {'connection': 'close'}, b'bye')

    with serving(app) as server:
        raw = exchange(server.address, b'GET / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\n'
                                       b'Host: t\r\n\r\n')
    assert raw.count(b'HTTP/1.1 200') == 1
    assert raw.endswith(b'\r\n\r\nbye')


def test_http10():
    def app(session, request, api):
        if request.uri == '/chunked':
            return (200, 'OK', {}, api.ChunkedBodyIter([(None, b'ab'), (('x', 'y'), b'cd'),
                                                        (None, b'')]))
        return (200, 'OK', {'x-version': request.version}, b'ten')

    with serving(app) as server:
        raw = exchange(server.address, b'GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n')
        assert raw.count(b'HTTP/1.1 200 OK') == 1
        assert b'x-version: HTTP/1.0' in raw
        assert b'connection: close' in raw
        with connect(server.address) as sock:
            for _ in range(2):
                sock.sendall(b'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n')
                (head, body, _) = read_response(sock)
                assert b'connection: keep-alive' in head
                assert body == b'ten'
        raw = exchange(server.address, b'GET /chunked HTTP/1.0\r\n\r\n')
        (head, _, body) = raw.partition(b'\r\n\r\n')
        assert b'transfer-encoding' not in head
        assert b'connection: close' in head
        assert body == b'abcd'
        raw = exchange(server.address, b'GET / HTTP/1.7\r\nHost: t\r\n\r\n')
        assert b'x-version: HTTP/1.1' in raw


def test_date_header_kept_when_app_sets_it():
    def app(session, request, api):
        return (200, 'OK', {'date': 'Thu, 01 Jan 1970 00:00:00 GMT'}, None)

    with serving(app) as server:
        raw = exchange(server.address, b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
    assert raw.count(b'date:') == 1
    assert b'date: Thu, 01 Jan 1970 00:00:00 GMT' in raw


# --------------------------------------------------------------------------
# Malformed requests: the right 4xx/5xx, then close, never two requests.

BAD_REQUESTS = [
    (b'GET / HTTP/1.1\r\nHost: t\r\nHost : x\r\n\r\n', 400),
    (b'GET / HTTP/1.1\r\nHost: t\r\nHost: a\r\nHost: b\r\n\r\n', 400),
    (b'GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n', 400),  # obs-fold
    (b'GET / HTTP/1.1\nHost: x\r\n\r\n', 400),  # bare LF
    (b'GET / HTTP/1.1\r\nHost: t\r\nX: a\rb\r\n\r\n', 400),  # bare CR
    (b'GET / HTTP/1.1\r\nHost: t\r\nX: a\x00b\r\n\r\n', 400),
    (b'GET /a//b HTTP/1.1\r\nHost: t\r\n\r\n', 400),
    (b'GET /a/../b HTTP/1.1\r\nHost: t\r\n\r\n', 400),
    (b'GET /%zz HTTP/1.1\r\nHost: t\r\n\r\n', 400),
    (b'GET /a b HTTP/1.1\r\nHost: t\r\n\r\n', 400),
    (b'get / HTTP/1.1\r\nHost: t\r\n\r\n', 501),
    (b'BREW / HTTP/1.1\r\nHost: t\r\n\r\n', 501),
    (b'CONNECT example.com:443 HTTP/1.1\r\nHost: t\r\n\r\n', 501),
    (b'GET / HTTP/2.0\r\n\r\n', 505),
    (b'GET / HTTP/1.1x\r\n\r\n', 400),
    (b'GET / HTTP/1.1x\r\nHost: t\r\n\r\n', 400),
    (b'GET /' + b'a' * 9000 + b' HTTP/1.1\r\nHost: t\r\n\r\n', 414),
    (b'GET / HTTP/1.1\r\nHost: t\r\n' + b'X: y\r\n' * 101 + b'\r\n', 431),
    (b'GET / HTTP/1.1\r\nHost: t\r\nX: ' + b'y' * 40000 + b'\r\n\r\n', 431),
    (b'GET * HTTP/1.1\r\nHost: t\r\n\r\n', 400),
    (b'PUT / HTTP/1.1\r\nHost: t\r\nContent-Range: bytes 0-1/2\r\n\r\n', 400),
    # Host (RFC 9112 section 3.2): an HTTP/1.1 request needs exactly one, valid
    (b'GET / HTTP/1.1\r\n\r\n', 400),
    (b'GET / HTTP/1.1\r\nX: y\r\n\r\n', 400),
    (b'GET http://a.example/ HTTP/1.1\r\n\r\n', 400),
    (b'GET / HTTP/1.7\r\n\r\n', 400),  # served as 1.1: needs a host too
    (b'GET / HTTP/1.1\r\nHost: exa mple.com\r\n\r\n', 400),
    (b'GET / HTTP/1.1\r\nHost: user@host\r\n\r\n', 400),
    (b'GET / HTTP/1.1\r\nHost: host:abc\r\n\r\n', 400),
    (b'GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n', 400),
    (b'PUT / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc', 400),
]

SMUGGLING = [
    # (request bytes, expected status); each body hides a second request.
    (b'POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n'
     b'0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n', 400),
    (b'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n'
     b'0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n', 400),
    (b'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n'
     b'0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n', 501),
    (b'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: identity, chunked\r\n\r\n'
     b'0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n', 501),
    (b'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n'
     b'0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n', 501),
    (b'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n'
     b'Transfer-Encoding: chunked\r\n\r\n'
     b'0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n', 400),
    (b'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding\t: chunked\r\n\r\n'
     b'0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n', 400),
    (b'POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n'
     b'abcdeGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n', 400),
    (b'POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\n\r\n'
     b'abcdeGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n', 400),
    (b'POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\n'
     b'abcdeGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n', 400),
    (b'POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0x5\r\n\r\n'
     b'abcdeGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n', 400),
    (b'POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 12345678901234567\r\n\r\n', 400),
    (b'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n'
     b'-1\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n', 400),
    (b'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n'
     b'0x3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n', 400),
    (b'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n'
     b'3 abc\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n', 400),
    (b'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n'
     b'3\r\nabcX\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n', 400),
    (b'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n'
     b'3\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n', 400),
    (b'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n'
     b'1000000000\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n', 400),
    (b'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n'
     b'3;a=b c\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n', 400),
    (b'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n'
     b'0\r\nX: y\r\nbad trailer\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n', 400),
]


@pytest.mark.parametrize('raw,status', BAD_REQUESTS)
def test_bad_requests(raw, status):
    app = Recorder()
    with serving(app) as server:
        reply = exchange(server.address, raw)
    assert app.calls == []
    lines = reply.split(b'\r\n')
    assert lines[0].startswith(b'HTTP/1.1 %d ' % status)
    assert b'connection: close' in lines
    assert b'content-length: 0' in lines
    assert reply.endswith(b'\r\n\r\n')
    assert reply.count(b'HTTP/1.1') == 1


def test_only_parse_errors_are_the_peers_fault(monkeypatch, caplog):
    # A ParseError is answered with its status and logged at INFO; any other
    # exception while reading a request is a bug of ours: a logged 500.
    import degu.server

    def broken(*args):
        raise ValueError('a bug in the reader')

    monkeypatch.setattr(degu.server, 'read_request', broken)
    app = Recorder()
    with caplog.at_level(logging.INFO, logger='degu.server'):
        with serving(app) as server:
            reply = exchange(server.address, b'GET / HTTP/1.1\r\nhost: x\r\n\r\n')
    assert app.calls == []
    assert reply.startswith(b'HTTP/1.1 500 Internal Server Error\r\n')
    assert b'connection: close' in reply.split(b'\r\n')
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.exc_info[1].args for r in errors] == [('a bug in the reader',)]


@pytest.mark.parametrize('raw,status', SMUGGLING)
def test_smuggling_shapes(raw, status):
    app = Recorder()
    with serving(app) as server:
        reply = exchange(server.address, raw)
    assert all(call[1] != '/smuggled' for call in app.calls)
    assert len(app.calls) <= 1
    assert reply.startswith(b'HTTP/1.1 %d ' % status)
    assert reply.count(b'HTTP/1.1 ') == 1
    assert b'connection: close' in reply


@pytest.mark.parametrize('raw', [
    b'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:  chunked \r\n\r\n3\r\nabc\r\n0\r\n\r\n',
    b'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: CHUNKED\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
    b'POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 003\r\n\r\nabc',
    b'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n'
    b'3;name="quoted value";other\r\nabc\r\n0\r\nTrailer: dropped\r\n\r\n',
])
def test_served_exactly_once(raw):
    app = Recorder()
    with serving(app) as server:
        reply = exchange(server.address, raw + b'GET /next HTTP/1.1\r\nHost: t\r\n\r\n')
    assert app.calls == [('POST', '/', b'abc'), ('GET', '/next', None)]
    assert reply.count(b'HTTP/1.1 200 OK') == 2


def test_leading_empty_line_is_skipped():
    app = Recorder()
    with serving(app) as server:
        reply = exchange(server.address, b'\r\nGET /x HTTP/1.1\r\nHost: t\r\n\r\n')
    assert app.calls == [('GET', '/x', None)]
    assert status_line(reply) == b'HTTP/1.1 200 OK'


SERVED_HEADERS = [
    # (request, the headers the app sees): RFC 9112 section 3.2 and RFC 9110 14.2
    (b'GET / HTTP/1.1\r\nHost: \r\n\r\n', {'host': ''}),
    (b'GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n', {'host': '[::1]:8080'}),
    (b'GET / HTTP/1.0\r\n\r\n', {}),  # HTTP/1.0 may omit it
    (b'GET http://a.example/x HTTP/1.1\r\nHost: b.example\r\n\r\n', {'host': 'a.example'}),
    (b'GET http://a.example:81/ HTTP/1.0\r\n\r\n', {'host': 'a.example:81'}),
    (
        b'GET / HTTP/1.1\r\nHost: t\r\nRange: bytes=-5\r\n\r\n',
        {'host': 't', 'range': Range(-5, None)},
    ),
    (b'GET / HTTP/1.1\r\nHost: t\r\nRange: bytes=0-1,3-4\r\n\r\n', {'host': 't'}),
    (b'GET / HTTP/1.1\r\nHost: t\r\nRange: items=0-5\r\n\r\n', {'host': 't'}),
    (b'GET / HTTP/1.1\r\nHost: t\r\nRange: bytes=5-4\r\n\r\n', {'host': 't'}),
    (b'HEAD / HTTP/1.1\r\nHost: t\r\nRange: bytes=0-4\r\n\r\n', {'host': 't'}),
    (b'GET / HTTP/1.1\r\nHost: t\r\nA: 1\r\nA:\r\nA: 2\r\n\r\n', {'host': 't', 'a': '1, 2'}),
    (b'GET /?f={%22a%22:1}|x HTTP/1.1\r\nHost: t\r\n\r\n', {'host': 't'}),
]


@pytest.mark.parametrize('raw, headers', SERVED_HEADERS)
def test_served_with_headers(raw, headers):
    seen = []

    def app(session, request, api):
        seen.append(request.headers)
        return (200, 'OK', {}, None)

    with serving(app) as server:
        reply = exchange(server.address, raw)
    assert status_line(reply) == b'HTTP/1.1 200 OK'
    assert seen == [headers]


def test_http10_with_transfer_encoding_closes():
    # RFC 9112 section 6.1: the framing of an HTTP/1.0 message with
    # transfer-encoding is faulty; serve it by the chunked rules, then close.
    app = Recorder()
    raw = (
        b'POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n'
        b'3\r\nabc\r\n0\r\n\r\nGET /next HTTP/1.0\r\n\r\n'
    )
    with serving(app) as server:
        reply = exchange(server.address, raw)
    assert app.calls == [('POST', '/', b'abc')]
    assert reply.count(b'HTTP/1.1 200 OK') == 1
    assert b'\r\nconnection: close\r\n' in reply


def test_max_body(address):
    # RFC 9110 section 15.5.14: 413 Content Too Large, before the app runs
    # when the length says so, and when a chunked body grows past the limit.
    app = Recorder()
    with serving(app, address, max_body=5) as server:
        assert server.max_body == 5
        reply = exchange(server.address, b'PUT / HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\n')
        assert status_line(reply) == b'HTTP/1.1 413 Content Too Large'
        assert b'\r\nconnection: close\r\n' in reply and b'content-length: 0' in reply
        assert app.calls == []
        reply = exchange(server.address, b'PUT / HTTP/1.1\r\nHost: t\r\n'
                                         b'Content-Length: 5\r\n\r\nhello')
        assert status_line(reply) == b'HTTP/1.1 200 OK'
        chunked = b'PUT / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n'
        reply = exchange(server.address, chunked + b'3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n')
        assert status_line(reply) == b'HTTP/1.1 413 Content Too Large'
        reply = exchange(server.address, chunked + b'3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n')
        assert status_line(reply) == b'HTTP/1.1 200 OK'
    assert app.calls == [('PUT', '/', b'hello'), ('PUT', '/', b'abcde')]


def test_sizeless_read_over_the_read_limit_is_413():
    def app(session, request, api):
        return (200, 'OK', {}, request.body.read())  # more than one read may take

    big = MAX_IO_SIZE + 1
    with serving(app) as server:
        with connect(server.address) as sock:
            # The app is called once the read buffer (8 KiB) is full.
            sock.sendall(b'PUT / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n' % big
                         + b'x' * (16 * 1024))
            (head, body, _) = read_response(sock)
    assert status_line(head) == b'HTTP/1.1 413 Content Too Large'
    assert b'connection: close' in head


@pytest.mark.parametrize('options, message', [
    ({'max_body': -1}, 'need max_body >= 0; got -1'),
    (
        {'max_body': 1.5},
        "max_body: need a (<class 'int'>, <class 'NoneType'>); got a <class 'float'>: 1.5",
    ),
])
def test_max_body_option_bad(options, message):
    with pytest.raises((TypeError, ValueError)) as e:
        Server(('127.0.0.1', 0), hello_app, **options)
    assert str(e.value) == message


def test_no_traceback_on_the_wire(caplog):
    def app(session, request, api):
        raise RuntimeError('secret detail')

    with caplog.at_level(logging.INFO, logger='degu.server'):
        with serving(app) as server:
            reply = exchange(server.address, b'GET / HTTP/1.1\r\nHost: t\r\n\r\n'
                                             b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
    assert status_line(reply) == b'HTTP/1.1 500 Internal Server Error'
    assert b'secret' not in reply
    assert reply.count(b'HTTP/1.1') == 1
    assert any('secret detail' in (r.exc_text or '') for r in caplog.records)


BAD_RESPONSES = [
    ['not a tuple'],
    (200, 'OK', {}),
    (600, 'Nope', {}, None),
    (200.0, 'OK', {}, None),
    (200, 'OK', [], None),
    (200, 'OK', {}, 'str body'),
    (200, 'OK', {}, bytearray(b'x')),
    (200, 'OK', {'Upper': 'x'}, None),
    (200, 'OK', {'x': 'a\r\nInjected: yes'}, None),
    (200, 'O\r\nK', {}, None),
    (200, '', {}, None),
    (204, 'No Content', {}, b'body'),
    (101, 'Switching', {}, b'body'),
    (200, 'OK', {'content-length': 5}, None),
    (200, 'OK', {'content-length': 4}, b'abc'),
    (200, 'OK', {'transfer-encoding': 'chunked'}, b'abc'),
]


@pytest.mark.parametrize('response', BAD_RESPONSES)
def test_bad_app_responses_get_500(response):
    def app(session, request, api):
        return response

    with serving(app) as server:
        reply = exchange(server.address, b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
    assert status_line(reply) == b'HTTP/1.1 500 Internal Server Error'
    assert b'Injected' not in reply
    assert reply.count(b'HTTP/1.1') == 1


def test_streamed_piece_then_failure_just_closes():
    # A generator's first piece goes out with the preamble (streaming): a
    # failure after it can only close, and the peer sees a short body.
    def source():
        yield b'ok'
        raise RuntimeError('mid-body')

    def app(session, request, api):
        return (200, 'OK', {}, api.BodyIter(source(), 100))

    with serving(app) as server:
        reply = exchange(server.address, b'GET / HTTP/1.1\r\nHost: t\r\n\r\n' * 2)
    (head, _, body) = reply.partition(b'\r\n\r\n')
    assert status_line(head) == b'HTTP/1.1 200 OK'
    assert b'content-length: 100' in head
    assert body == b'ok'


def test_failure_after_response_started_just_closes():
    def source():
        yield b'p' * 65536  # more than the write buffer: the response has started
        raise RuntimeError('mid-body')

    def app(session, request, api):
        return (200, 'OK', {}, api.BodyIter(source(), 100000))

    with serving(app) as server:
        reply = exchange(server.address, b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
    assert status_line(reply) == b'HTTP/1.1 200 OK'
    assert reply.count(b'HTTP/1.1') == 1
    assert b'500' not in reply


@pytest.mark.parametrize('items', [
    'raise',  # the source fails before its first item
    [b'x' * 200],  # more than content_length: refused before it is written
    [b'ok', 'not bytes'],  # a list: at hand, so still in the write buffer
])
def test_body_failing_before_anything_was_sent_gets_500(items):
    def source():
        raise RuntimeError('no data today')
        yield

    def app(session, request, api):
        return (200, 'OK', {}, api.BodyIter(source() if items == 'raise' else items, 100))

    with serving(app) as server:
        reply = exchange(server.address, b'GET / HTTP/1.1\r\nHost: t\r\n\r\n'
                                         b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
    assert status_line(reply) == b'HTTP/1.1 500 Internal Server Error'
    assert reply.count(b'HTTP/1.1') == 1  # no 200 preamble before it, and then closed
    assert b'connection: close' in reply


def test_sent_response_bodies_are_released(tmp_path):
    path = tmp_path / 'data.bin'
    path.write_bytes(b'f' * 100_000)  # big enough for sendfile()
    opened = []
    closed = []

    def gen():
        try:
            yield b'abc'
        finally:
            closed.append('generator')

    def app(session, request, api):
        if request.uri == '/file':
            fp = open(path, 'rb')
            opened.append(fp)
            return (200, 'OK', {}, api.Body(fp, 100_000))
        if request.uri == '/small':
            fp = open(path, 'rb')
            opened.append(fp)
            return (200, 'OK', {}, api.Body(fp, 10))  # through the write buffer
        return (200, 'OK', {}, api.BodyIter(gen(), 3))

    with serving(app) as server:
        with connect(server.address) as sock:
            for uri in (b'/file', b'/small', b'/gen'):
                sock.sendall(b'GET ' + uri + b' HTTP/1.1\r\nHost: t\r\n\r\n')
                read_response(sock)
    assert [fp.closed for fp in opened] == [True, True]
    assert closed == ['generator']


def test_bad_body_found_while_app_reads_it():
    def app(session, request, api):
        try:
            request.body.read()
        except ValueError:
            pass  # the app swallows it: still a 400
        return (200, 'OK', {}, b'fine')

    raw = b'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n'
    with serving(app) as server:
        reply = exchange(server.address, raw)
    assert status_line(reply) == b'HTTP/1.1 400 Bad Request'


def test_peer_vanishing_mid_body_gets_nothing(caplog):
    done = threading.Event()

    def app(session, request, api):
        try:
            request.body.read()
        finally:
            done.set()
        return (200, 'OK', {}, b'fine')  # pragma: no cover

    with caplog.at_level(logging.INFO, logger='degu.server'):
        with serving(app) as server:
            with connect(server.address) as sock:
                # More than the read buffer: the app is called, and its read fails.
                sock.sendall(b'PUT / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n'
                             + b'x' * 20000)
                sock.shutdown(socket.SHUT_WR)
                assert recv_all(sock) == b''
            assert done.wait(TIMEOUT)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize('body', [
    b'Content-Length: 100\r\n\r\npartial',
    b'Transfer-Encoding: chunked\r\n\r\n64\r\npartial',
])
def test_peer_vanishing_before_its_body_came_is_never_served(caplog, body):
    """A request whose body the peer never finished sending never reaches the app."""
    calls = []

    def app(session, request, api):
        calls.append(request)  # pragma: no cover
        return (200, 'OK', {}, None)  # pragma: no cover

    with caplog.at_level(logging.INFO, logger='degu.server'):
        with serving(app) as server:
            with connect(server.address) as sock:
                sock.sendall(b'PUT / HTTP/1.1\r\nHost: t\r\n' + body)
                time.sleep(0.2)  # parked: the thread waited BODY_WAIT and left
                sock.shutdown(socket.SHUT_WR)
                assert recv_all(sock) == b''
    assert calls == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# --------------------------------------------------------------------------
# Draining and 100-continue


def test_small_unread_body_is_drained():
    def app(session, request, api):
        return (200, 'OK', {}, b'ignored your body')

    with serving(app) as server:
        with connect(server.address) as sock:
            small = b'x' * (60 * 1024)
            sock.sendall(b'PUT / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n'
                         b'' % len(small) + small)
            (head, body, rest) = read_response(sock)
            assert b'connection' not in head
            chunked = b''.join(b'1000\r\n' + b'y' * 4096 + b'\r\n' for _ in range(10))
            sock.sendall(b'PUT / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n'
                         + chunked + b'0\r\n\r\n')
            (head, body, rest) = read_response(sock, rest)
            assert b'connection' not in head
            sock.sendall(b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
            (head, body, rest) = read_response(sock, rest)
            assert status_line(head) == b'HTTP/1.1 200 OK'


def test_large_unread_body_closes():
    def app(session, request, api):
        return (200, 'OK', {}, b'ignored')

    with serving(app) as server:
        with connect(server.address) as sock:
            sock.sendall(b'PUT / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n'
                         b'' + b'z' * 10000)
            (head, body, rest) = read_response(sock)
            assert b'connection: close' in head
            assert body == b'ignored'


def test_expect_100_continue():
    def app(session, request, api):
        if request.uri == '/reject':
            return (413, 'Payload Too Large', {}, None)
        return (200, 'OK', {}, request.body.read())

    with serving(app) as server:
        with connect(server.address) as sock:
            sock.sendall(b'PUT / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n'
                         b'Expect: 100-continue\r\n\r\n')
            assert sock.recv(1024) == b'HTTP/1.1 100 Continue\r\n\r\n'
            sock.sendall(b'hello')
            (head, body, rest) = read_response(sock)
            assert body == b'hello'
        with connect(server.address) as sock:
            sock.sendall(b'PUT /reject HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n'
                         b'Expect: 100-Continue\r\n\r\n')
            raw = recv_all(sock)
            assert status_line(raw) == b'HTTP/1.1 413 Payload Too Large'
            assert b'connection: close' in raw
            assert b'100 Continue' not in raw


def test_echo_request_body_as_response_body():
    def app(session, request, api):
        return (200, 'OK', {}, request.body)

    with serving(app) as server:
        with connect(server.address) as sock:
            sock.sendall(b'PUT / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello'
                         b'PUT / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n'
                         b'2;a=b\r\nhi\r\n0\r\n\r\n')
            (head, body, rest) = read_response(sock)
            assert body == b'hello'
            while not rest.endswith(b'0\r\n\r\n'):
                rest += sock.recv(1024)
            assert rest.endswith(b'\r\n\r\n2;a=b\r\nhi\r\n0\r\n\r\n')


# --------------------------------------------------------------------------
# on_connect


def test_on_connect():
    class App:
        def __init__(self):
            self.results = [True, False, 1, RuntimeError('boom')]

        def on_connect(self, session, sock):
            assert session.requests == 0
            result = self.results.pop(0)
            if isinstance(result, Exception):
                raise result
            return result

        def __call__(self, session, request, api):
            return (200, 'OK', {}, b'welcome')

    with serving(App()) as server:
        assert exchange(server.address, b'GET / HTTP/1.1\r\nHost: t\r\n\r\n').endswith(b'welcome')
        for _ in range(3):
            try:  # nothing sent; the close may come as a reset (unread request bytes)
                assert exchange(server.address, b'GET / HTTP/1.1\r\nHost: t\r\n\r\n') == b''
            except ConnectionResetError:
                pass


# --------------------------------------------------------------------------
# Limits and timeouts


def test_max_connections_gets_immediate_503():
    with serving(hello_app, max_connections=2) as server:
        holders = [connect(server.address) for _ in range(2)]
        try:
            for sock in holders:
                sock.sendall(b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
                read_response(sock)
            start = time.monotonic()
            reply = exchange(server.address, b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
            assert time.monotonic() - start < 5  # bounded, generous for a loaded CI machine
            assert status_line(reply) == b'HTTP/1.1 503 Service Unavailable'
            assert b'retry-after: 1' in reply
            assert b'content-length: 0' in reply
        finally:
            for sock in holders:
                sock.close()


def test_flood_then_still_serving():
    with serving(hello_app, max_connections=5) as server:
        socks = [connect(server.address) for _ in range(60)]
        for sock in socks:
            sock.sendall(b'GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')
        statuses = []
        for sock in socks:
            statuses.append(status_line(recv_all(sock)))
            sock.close()
        assert set(statuses) <= {b'HTTP/1.1 200 OK', b'HTTP/1.1 503 Service Unavailable'}
        assert b'HTTP/1.1 200 OK' in statuses
        reply = exchange(server.address, b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
        assert status_line(reply) == b'HTTP/1.1 200 OK'


def test_idle_timeout_closes_without_reply():
    with serving(hello_app, idle_timeout=0.3) as server:
        with connect(server.address) as sock:
            sock.sendall(b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
            read_response(sock)
            start = time.monotonic()
            assert sock.recv(1024) == b''
            assert 0.2 < time.monotonic() - start < 8
        with connect(server.address) as sock:  # the first request too
            start = time.monotonic()
            assert sock.recv(1024) == b''
            assert time.monotonic() - start < 3


def test_slowloris_whole_preamble_deadline():
    with serving(hello_app, timeout=0.5) as server:
        with connect(server.address) as sock:
            start = time.monotonic()
            closed = dribble(sock, b'GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ' + b'a' * 100, 0.02)
            if closed != 'refused':
                with contextlib.suppress(OSError):
                    assert sock.recv(1024) == b''
            assert time.monotonic() - start < 3


class FailingListener(socket.socket):
    """A listening socket whose accept() fails with EMFILE while ``failing()`` says so."""

    def __init__(self, failing):
        super().__init__(socket.AF_INET, socket.SOCK_STREAM)
        self.bind(('127.0.0.1', 0))
        self.listen(16)
        self.failing = failing
        self.failures = 0

    def accept(self):
        if self.failing():
            self.failures += 1
            raise OSError(errno.EMFILE, 'Too many open files')
        return super().accept()


def test_accept_failures_pause_accepting(caplog):
    until = time.monotonic() + 0.5
    listener = FailingListener(lambda: time.monotonic() < until)
    with caplog.at_level(logging.INFO, logger='degu.server'):
        with serving(hello_app, listener) as server:
            with connect(server.address) as sock:  # pending: accept() is tried at once
                sock.sendall(b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
                (head, body, _) = read_response(sock)
                assert body == b'hello '  # served once accept() works again
            assert time.monotonic() >= until
            # 25, 50, 100, 200 ms... pauses: about 6 tries in 0.5 s, where a
            # retry at once made many thousands.
            assert 2 <= listener.failures <= 30
    records = [r for r in caplog.records if r.name == 'degu.server']
    warnings = [r.getMessage() for r in records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1  # one per burst
    assert warnings[0].startswith("accept() failed: OSError(24, 'Too many open files')")
    infos = [r.getMessage() for r in records if 'works again' in r.getMessage()]
    assert len(infos) == 1
    assert f'after {listener.failures} failed attempts' in infos[0]


def test_shutdown_during_an_accept_pause(monkeypatch):
    monkeypatch.setattr(degu.server, 'ACCEPT_PAUSE_MIN', 30.0, raising=False)
    monkeypatch.setattr(degu.server, 'ACCEPT_PAUSE_MAX', 30.0, raising=False)
    listener = FailingListener(lambda: True)
    with serving(hello_app, listener) as server:
        with connect(server.address):
            deadline = time.monotonic() + TIMEOUT
            while listener.failures == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert listener.failures == 1  # and now paused for 30 s
            start = time.monotonic()
            assert server.shutdown(5) is True
            assert time.monotonic() - start < 2
    assert listener.failures == 1


_EMFILE_CHILD = """
import logging, resource, sys, threading
from degu.server import Server
def app(session, request, api):
    return (200, 'OK', {}, b'ok')
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
server = Server(('127.0.0.1', 0), app, max_connections=1000, idle_timeout=60)
resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))
threading.Thread(target=server.serve_forever, daemon=True).start()
print(server.address[1], flush=True)
sys.stdin.read()  # until the parent closes it
server.shutdown(1)
"""


def _cpu_seconds(pid):
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


@pytest.mark.skipif(not os.path.exists('/proc/self/stat'), reason='needs /proc')
def test_out_of_file_descriptors_does_not_spin(tmp_path):
    log_file = open(tmp_path / 'child.log', 'w+')  # not a pipe: a full one would stall the child
    child = subprocess.Popen(
        [sys.executable, '-c', _EMFILE_CHILD], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=log_file, text=True,
    )
    socks = []
    try:
        port = int(child.stdout.readline())
        for _ in range(60):  # more than the child's 48 descriptors
            socks.append(socket.create_connection(('127.0.0.1', port), timeout=TIMEOUT))
        time.sleep(0.3)  # the child is out of descriptors by now
        before = _cpu_seconds(child.pid)
        time.sleep(1.0)
        used = _cpu_seconds(child.pid) - before
        assert used < 0.3  # a retry at once keeps a core busy: about 1.0
        for sock in socks:
            sock.close()
        socks = []
        deadline = time.monotonic() + TIMEOUT
        while True:  # served again once descriptors are free
            try:
                with socket.create_connection(('127.0.0.1', port), timeout=TIMEOUT) as sock:
                    sock.sendall(b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
                    (head, body, _) = read_response(sock)
                    break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert body == b'ok'
        child.communicate('', timeout=TIMEOUT)
    finally:
        for sock in socks:
            sock.close()
        if child.poll() is None:
            child.kill()
            child.communicate(timeout=TIMEOUT)
        log_file.seek(0)
        err = log_file.read()
        log_file.close()
    warnings = [line for line in err.splitlines() if line.startswith('WARNING')]
    assert 1 <= len(warnings) <= 3, err  # one per burst of failures
    assert all('accept() failed: OSError(24' in line for line in warnings), err
    assert 'accept() works again' in err


# --------------------------------------------------------------------------
# Shutdown


def test_shutdown_finishes_in_flight_and_closes_idle():
    entered = threading.Event()
    release = threading.Event()

    def app(session, request, api):
        if request.uri == '/slow':
            entered.set()
            assert release.wait(TIMEOUT)
        return (200, 'OK', {}, b'done')

    server = Server(('127.0.0.1', 0), app)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    idle = connect(server.address)
    idle.sendall(b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
    read_response(idle)
    busy = connect(server.address)
    busy.sendall(b'GET /slow HTTP/1.1\r\nHost: t\r\n\r\n')
    assert entered.wait(TIMEOUT)
    result = []
    stopper = threading.Thread(target=lambda: result.append(server.shutdown(5)))
    stopper.start()
    assert idle.recv(1024) == b''  # closed without a reply
    time.sleep(0.05)
    release.set()
    raw = recv_all(busy)
    assert status_line(raw) == b'HTTP/1.1 200 OK'
    assert b'connection: close' in raw
    assert raw.endswith(b'done')
    stopper.join(TIMEOUT)
    thread.join(TIMEOUT)
    assert result == [True]
    assert not thread.is_alive()
    with pytest.raises(OSError):
        connect(server.address)
    idle.close()
    busy.close()
    assert server.shutdown() is True  # again: nothing to do
    with pytest.raises(RuntimeError):
        server.serve_forever()


def test_shutdown_cuts_off_after_timeout():
    release = threading.Event()

    def app(session, request, api):
        release.wait(TIMEOUT)
        return (200, 'OK', {}, b'late')

    server = Server(('127.0.0.1', 0), app)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    with connect(server.address) as sock:
        sock.sendall(b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
        time.sleep(0.1)
        start = time.monotonic()
        assert server.shutdown(0.3) is False
        assert time.monotonic() - start < 3
        release.set()
    thread.join(TIMEOUT)
    assert not thread.is_alive()


def test_shutdown_with_apps_that_never_return(caplog):
    entered = threading.Semaphore(0)
    release = threading.Event()

    def app(session, request, api):
        entered.release()
        release.wait(30)  # far longer than the shutdown timeout
        return (200, 'OK', {}, b'late')

    server = Server(('127.0.0.1', 0), app)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    socks = []
    try:
        for _ in range(4):
            sock = connect(server.address)
            socks.append(sock)
            sock.sendall(b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
        for _ in range(4):
            assert entered.acquire(timeout=TIMEOUT)
        start = time.monotonic()
        with caplog.at_level(logging.WARNING, logger='degu.server'):
            assert server.shutdown(0.5) is False
            elapsed = time.monotonic() - start
            # One grace period for all four threads, not a second each.
            thread.join(0.5 + 1.5 - elapsed)
            assert not thread.is_alive()  # serve_forever() returned with shutdown()
        assert time.monotonic() - start < 0.5 + 1.5
        assert 0.4 < elapsed < 0.5 + 1.5
        stuck = [r.getMessage() for r in caplog.records if 'left behind' in r.getMessage()]
        assert len(stuck) == 1
        assert stuck[0].startswith('Shutdown: 4 connection threads still running')
        assert server.shutdown() is False  # again: the first call's result
    finally:
        release.set()
        for sock in socks:
            sock.close()
        thread.join(TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while any(t.name.startswith('degu connection') for t in threading.enumerate()):
            assert time.monotonic() < deadline  # the apps return once released
            time.sleep(0.01)


def test_context_manager_without_serving():
    with Server(('127.0.0.1', 0), hello_app) as server:
        address = server.address
    assert server.sock.fileno() == -1
    with pytest.raises(OSError):
        connect(address)


# --------------------------------------------------------------------------
# Logging


def test_one_log_line_per_connection_open_and_close(caplog):
    with caplog.at_level(logging.INFO, logger='degu.server'):
        with serving(hello_app) as server:
            with connect(server.address) as sock:
                for _ in range(5):
                    sock.sendall(b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
                    read_response(sock)
    messages = [r.getMessage() for r in caplog.records if r.name == 'degu.server']
    assert len([m for m in messages if 'New connection' in m]) == 1
    assert len([m for m in messages if 'Handled 5 requests' in m]) == 1
    assert len(messages) == 3  # plus the start-up line


# --------------------------------------------------------------------------
# Concurrency


@pytest.mark.slow
def test_50_clients_times_100_requests():
    def app(session, request, api):
        return (200, 'OK', {}, request.uri.encode())

    errors = []

    def client(n, address):
        try:
            with connect(address) as sock:
                rest = b''
                for i in range(100):
                    uri = b'/%d/%d' % (n, i)
                    sock.sendall(b'GET ' + uri + b' HTTP/1.1\r\nHost: t\r\n\r\n')
                    (head, body, rest) = read_response(sock, rest)
                    if body != uri:
                        errors.append((uri, body))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    with serving(app, max_connections=60) as server:
        threads = [threading.Thread(target=client, args=(n, server.address)) for n in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert errors == []


# --------------------------------------------------------------------------
# TLS


@pytest.fixture(scope='module')
def certs(tmp_path_factory):
    """A CA, a server cert and a client cert, made with the openssl command line."""
    d = tmp_path_factory.mktemp('pki')

    def run(*args):
        subprocess.run(['openssl', *args], check=True, capture_output=True, timeout=60)

    for name in ('ca', 'server', 'client'):
        run('genrsa', '-out', str(d / f'{name}.key'), '2048')
    run('req', '-new', '-x509', '-key', str(d / 'ca.key'), '-out', str(d / 'ca.pem'),
        '-days', '2', '-subj', '/CN=Test CA')
    for name in ('server', 'client'):
        run('req', '-new', '-key', str(d / f'{name}.key'), '-out', str(d / f'{name}.csr'),
            '-subj', f'/CN={name}')
        run('x509', '-req', '-in', str(d / f'{name}.csr'), '-CA', str(d / 'ca.pem'),
            '-CAkey', str(d / 'ca.key'), '-CAcreateserial', '-out', str(d / f'{name}.pem'),
            '-days', '2')
    return {name: str(d / name) for name in (
        'ca.pem', 'server.pem', 'server.key', 'client.pem', 'client.key')}


def test_build_server_sslctx_errors(certs):
    with pytest.raises(TypeError):
        build_server_sslctx([])
    base = {'cert_file': certs['server.pem'], 'key_file': certs['server.key']}
    with pytest.raises(ValueError) as e:
        build_server_sslctx(base)
    assert str(e.value) == 'must include ca_file or ca_path (or allow_unauthenticated_clients)'
    with pytest.raises(ValueError) as e:
        build_server_sslctx(dict(base, allow_unauthenticated_clients=1))
    assert str(e.value) == 'True is only allowed value for allow_unauthenticated_clients'
    with pytest.raises(ValueError) as e:
        build_server_sslctx(dict(base, allow_unauthenticated_clients=True,
                                 ca_file=certs['ca.pem']))
    assert str(e.value) == 'ca_file/ca_path with allow_unauthenticated_clients'
    with pytest.raises(ValueError) as e:
        build_server_sslctx(dict(base, cert_file='relative.pem', ca_file=certs['ca.pem']))
    assert str(e.value) == (
        "sslconfig['cert_file']: not absolute, normalized path: 'relative.pem'")
    ctx = build_server_sslctx(dict(base, ca_file=certs['ca.pem']))
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2


def test_build_server_sslctx_paths(certs):
    # The same check as the client's and degu.sslhelpers': a str, absolute and normalized.
    base = {'cert_file': certs['server.pem'], 'key_file': certs['server.key'],
            'ca_file': certs['ca.pem']}
    for key in ('cert_file', 'key_file', 'ca_file', 'ca_path'):
        with pytest.raises(TypeError) as e:
            build_server_sslctx(dict(base, **{key: b'/x.pem'}))
        assert str(e.value) == (
            f"sslconfig[{key!r}]: need a <class 'str'>; got a <class 'bytes'>: b'/x.pem'")
        with pytest.raises(ValueError) as e:
            build_server_sslctx(dict(base, **{key: '/tmp/../x.pem'}))
        assert str(e.value) == (
            f"sslconfig[{key!r}]: not absolute, normalized path: '/tmp/../x.pem'")


def test_sslserver_validation(certs, caplog):
    with pytest.raises(TypeError) as e:
        SSLServer('nope', ('127.0.0.1', 0), hello_app)
    assert str(e.value) == 'sslctx must be an ssl.SSLContext'
    with pytest.raises(ValueError):
        SSLServer(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), ('127.0.0.1', 0), hello_app)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ValueError) as e:
        SSLServer(ctx, ('127.0.0.1', 0), hello_app)
    assert str(e.value) == 'sslctx.minimum_version must be >= ssl.TLSVersion.TLSv1_2'
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_OPTIONAL
    with pytest.raises(ValueError) as e:
        SSLServer(ctx, ('127.0.0.1', 0), hello_app)
    assert str(e.value) == 'sslctx.verify_mode cannot be ssl.CERT_OPTIONAL'
    ctx.verify_mode = ssl.CERT_NONE
    with caplog.at_level(logging.WARNING, logger='degu.server'):
        with SSLServer(ctx, ('127.0.0.1', 0), hello_app) as server:
            assert repr(server).startswith('SSLServer(<ssl.SSLContext')
    assert 'Security concern: sslctx allows unauthenticated clients!' in caplog.text


def _client_ctx(certs, with_cert):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(certs['ca.pem'])
    ctx.check_hostname = False
    if with_cert:
        ctx.load_cert_chain(certs['client.pem'], certs['client.key'])
    return ctx


def test_tls_live_with_client_certs(certs):
    sslconfig = {'cert_file': certs['server.pem'], 'key_file': certs['server.key'],
                 'ca_file': certs['ca.pem']}
    peers = []

    def app(session, request, api):
        return (200, 'OK', {}, request.body.read() if request.body else b'tls')

    class App:
        def on_connect(self, session, sock):
            peers.append((sock.version(), sock.getpeercert()['subject']))
            return True

        __call__ = staticmethod(app)

    with serving(App(), ('127.0.0.1', 0), SSLServer, sslconfig) as server:
        conn = http.client.HTTPSConnection(*server.address, timeout=TIMEOUT,
                                           context=_client_ctx(certs, True))
        for _ in range(3):
            conn.request('POST', '/', body=b'secret')
            assert conn.getresponse().read() == b'secret'
        conn.close()
        with socket.create_connection(server.address, timeout=TIMEOUT) as raw:
            with pytest.raises((ssl.SSLError, ConnectionError)):
                with _client_ctx(certs, False).wrap_socket(raw) as tls:
                    tls.sendall(b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
                    assert tls.recv(1024) == b''
    assert peers == [('TLSv1.3', ((('commonName', 'client'),),))]


def test_tls_error_answer_survives_an_unread_upload(certs):
    # Closing with unread input makes the kernel send a reset, which can
    # destroy the answer in flight: the server drains for a moment first,
    # over TLS too (the bytes are read off the TCP socket underneath).
    sslconfig = {'cert_file': certs['server.pem'], 'key_file': certs['server.key'],
                 'ca_file': certs['ca.pem']}
    with serving(hello_app, ('127.0.0.1', 0), SSLServer, sslconfig, max_body=10) as server:
        for _ in range(3):
            with socket.create_connection(server.address, timeout=TIMEOUT) as raw:
                with _client_ctx(certs, True).wrap_socket(raw) as tls:
                    tls.sendall(b'PUT / HTTP/1.1\r\nHost: t\r\nContent-Length: 500000\r\n\r\n'
                                + b'x' * 100_000)
                    reply = b''
                    while b'\r\n\r\n' not in reply:
                        data = tls.recv(4096)
                        assert data, reply
                        reply += data
    assert status_line(reply) == b'HTTP/1.1 413 Content Too Large'


def _gated_app(gate):
    # /hold keeps its thread until *gate* is set: the server stays full for
    # as long as the test needs (an idle connection would be parked, and
    # free its thread, within milliseconds).
    def app(session, request, api):
        if request.path == ['hold']:
            assert gate.wait(TIMEOUT)
        return hello_app(session, request, api)

    return app


def test_full_sslserver_closes_without_plaintext(certs):
    # A plaintext 503 before the handshake reads as a broken TLS record
    # (WRONG_VERSION_NUMBER): a full SSLServer just closes.
    sslconfig = {'cert_file': certs['server.pem'], 'key_file': certs['server.key'],
                 'ca_file': certs['ca.pem']}
    gate = threading.Event()
    with serving(_gated_app(gate), ('127.0.0.1', 0), SSLServer, sslconfig,
                 max_connections=1) as server:
        with socket.create_connection(server.address, timeout=TIMEOUT) as raw:
            with _client_ctx(certs, True).wrap_socket(raw) as held:
                held.sendall(b'GET /hold HTTP/1.1\r\nHost: t\r\n\r\n')
                _wait_busy(server, 1)
                # Nothing sent yet: whatever comes is the server's own.
                with socket.create_connection(server.address, timeout=TIMEOUT) as second:
                    assert recv_all(second) == b''
                # A TLS client sees the close, not a plaintext record.
                with socket.create_connection(server.address, timeout=TIMEOUT) as second:
                    with pytest.raises(OSError) as e:
                        _client_ctx(certs, True).wrap_socket(second)
                    assert 'WRONG_VERSION_NUMBER' not in str(e.value)
                    assert isinstance(e.value, (ssl.SSLEOFError, ConnectionResetError))
                gate.set()
                assert status_line(read_response(held)[0]) == b'HTTP/1.1 200 OK'
                held.sendall(b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')  # still served
                assert read_response(held)[1] == b'hello '
    gate = threading.Event()
    with serving(_gated_app(gate), max_connections=1) as server:  # plain HTTP: still a 503
        with connect(server.address) as held:
            held.sendall(b'GET /hold HTTP/1.1\r\nHost: t\r\n\r\n')
            _wait_busy(server, 1)
            with connect(server.address) as second:
                assert status_line(recv_all(second)) == b'HTTP/1.1 503 Service Unavailable'
            gate.set()
            assert status_line(read_response(held)[0]) == b'HTTP/1.1 200 OK'


def _wait_busy(server, count):
    # Until *count* connections have a thread (the app is running for them).
    deadline = time.monotonic() + TIMEOUT
    while server._busy < count:
        assert time.monotonic() < deadline, 'the server never got busy'
        time.sleep(0.005)


def _sslconfig(certs):
    return {'cert_file': certs['server.pem'], 'key_file': certs['server.key'],
            'ca_file': certs['ca.pem']}


def _tls_connect(certs, address):
    raw = socket.create_connection(address, timeout=TIMEOUT)
    return _client_ctx(certs, True).wrap_socket(raw)


def _client_hello(certs):
    # The first flight of a real TLS client, without a socket.
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = _client_ctx(certs, True).wrap_bio(incoming, outgoing)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def test_tls_slowloris_costs_no_thread(certs):
    # The handshake and the first preamble happen in the accept loop: silent
    # connections, half a ClientHello, and a preamble dribbled after the
    # handshake cost no thread, so max_connections stay free.  Before, each
    # took a thread for its handshake, bounded only by timeout.
    hello = _client_hello(certs)
    before = threading.active_count()
    with serving(hello_app, ('127.0.0.1', 0), SSLServer, _sslconfig(certs),
                 max_connections=3) as server:
        attackers = []
        try:
            for i in range(12):
                sock = socket.create_connection(server.address, timeout=TIMEOUT)
                attackers.append(sock)
                if i % 3 == 1:
                    sock.sendall(hello[: len(hello) // 2])
                elif i % 3 == 2:
                    tls = _client_ctx(certs, True).wrap_socket(sock)
                    tls.sendall(b'GET / HTTP/1.1\r\nHost: t\r\nx-a: ')
                    attackers[-1] = tls
            assert wait_for_threads(before + 1) == before + 1  # serve_forever() alone
            for _ in range(3):
                conn = http.client.HTTPSConnection(*server.address, timeout=TIMEOUT,
                                                   context=_client_ctx(certs, True))
                conn.request('PUT', '/', body=b'tls')
                response = conn.getresponse()
                assert (response.status, response.read()) == (200, b'hello tls')
                conn.close()
        finally:
            for sock in attackers:
                sock.close()


def test_tls_handshake_runs_out_of_time(certs):
    with serving(hello_app, ('127.0.0.1', 0), SSLServer, _sslconfig(certs),
                 timeout=0.3) as server:
        with socket.create_connection(server.address, timeout=TIMEOUT) as sock:
            started = time.monotonic()
            sock.sendall(_client_hello(certs)[:20])
            assert recv_all(sock) == b''
            assert time.monotonic() - started < 2


def test_tls_idle_connections_are_parked(certs, monkeypatch):
    monkeypatch.setattr(degu.server, 'PARK_AFTER', 0.1)

    def app(session, request, api):
        session.store['n'] = session.store.get('n', 0) + 1
        body = request.body.read() if request.body is not None else b''
        return (200, 'OK', {'x-n': str(session.store['n'])}, body)

    before = threading.active_count()
    big = b'b' * 12000  # with its preamble, one TLS record over the 8 KiB read buffer
    with serving(app, ('127.0.0.1', 0), SSLServer, _sslconfig(certs)) as server:
        socks = [_tls_connect(certs, server.address) for _ in range(5)]
        try:
            for sock in socks:
                sock.sendall(b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
                assert b'x-n: 1' in read_response(sock)[0].split(b'\r\n')
            assert wait_for_threads(before + 1) == before + 1  # all parked
            for sock in socks:  # resumed: the same session
                sock.sendall(b'PUT / HTTP/1.1\r\nHost: t\r\ncontent-length: 12000\r\n\r\n'
                             + big)
                (head, body, _) = read_response(sock)
                assert b'x-n: 2' in head.split(b'\r\n')
                assert body == big
            assert wait_for_threads(before + 1) == before + 1
            for sock in socks:  # a body that comes later: parked with its request
                sock.sendall(b'PUT / HTTP/1.1\r\nHost: t\r\ncontent-length: 4\r\n\r\nab')
                time.sleep(0.2)
                sock.sendall(b'cd')
                (head, body, _) = read_response(sock)
                assert (body, b'x-n: 3' in head.split(b'\r\n')) == (b'abcd', True)
        finally:
            for sock in socks:
                sock.close()


@pytest.mark.parametrize('waiting_as', ['preamble', 'parked'])
def test_tls_503_inside_tls_once_the_handshake_is_done(certs, monkeypatch, waiting_as):
    # A connection whose handshake is done (its preamble still coming, or
    # parked after a first request) and whose request then finds every
    # thread busy gets its 503 inside TLS, not a bare close.
    monkeypatch.setattr(degu.server, 'PARK_AFTER', 0.1)
    release = threading.Event()

    def app(session, request, api):
        if request.uri == '/block':
            release.wait(TIMEOUT)
        return (200, 'OK', {}, b'ok')

    with serving(app, ('127.0.0.1', 0), SSLServer, _sslconfig(certs),
                 max_connections=1) as server:
        with _tls_connect(certs, server.address) as waiting:
            if waiting_as == 'preamble':
                waiting.sendall(b'GET / HTTP/1.1\r\n')  # handshake done, preamble not
                rest = b'Host: t\r\n\r\n'
            else:
                waiting.sendall(b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
                assert read_response(waiting)[1] == b'ok'
                time.sleep(0.4)  # parked, its thread gone
                rest = b'GET / HTTP/1.1\r\nHost: t\r\n\r\n'
            with _tls_connect(certs, server.address) as busy:
                busy.sendall(b'GET /block HTTP/1.1\r\nHost: t\r\n\r\n')
                time.sleep(0.2)  # the one thread is in the app
                waiting.sendall(rest)
                (head, body, _) = read_response(waiting)
                assert status_line(head) == b'HTTP/1.1 503 Service Unavailable'
                assert b'retry-after: 1' in head.split(b'\r\n')
                release.set()
                assert read_response(busy)[1] == b'ok'


def test_plain_http_to_a_tls_port_gets_400(certs, caplog):
    with caplog.at_level(logging.INFO, logger='degu.server'):
        with serving(hello_app, ('127.0.0.1', 0), SSLServer, _sslconfig(certs)) as server:
            reply = exchange(server.address, b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
            assert status_line(reply) == b'HTTP/1.1 400 Bad Request'
            assert b'connection: close' in reply.split(b'\r\n')
            with _tls_connect(certs, server.address) as sock:  # still serving TLS
                sock.sendall(b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
                assert read_response(sock)[1] == b'hello '
    assert 'plain HTTP sent to a TLS port: 400' in caplog.text


def test_app_framing_field_checked_for_http10_too():
    # An HTTP/1.0 peer gets a chunked body's data close-delimited, but the
    # app's framing field is checked all the same: never 10 bytes under a
    # content-length of 3.
    def app(session, request, api):
        chunks = [(None, b'0123456789'), (None, b'')]
        return (200, 'OK', {'content-length': 3}, api.ChunkedBodyIter(chunks))

    with serving(app) as server:
        for version in (b'1.0', b'1.1'):
            reply = exchange(server.address, b'GET / HTTP/%s\r\nHost: t\r\n\r\n' % version)
            assert status_line(reply) == b'HTTP/1.1 500 Internal Server Error'
            assert b'0123456789' not in reply


def test_a_new_body_type_needs_only_the_body_protocol():
    # doc/hacking.rst: a body type implements the protocol of degu._body and
    # nothing else changes: the server frames, streams and releases it, the
    # client sends it, http.client (a peer we did not write) reads it.
    from degu._body import BODY_CONSUMED, BODY_READY, _OutBody
    from degu.client import Client

    released = []

    class Repeat(_OutBody):
        """*count* copies of *piece*, one at a time."""

        __slots__ = ('_source', '_state', '_count')
        chunked = False

        def __init__(self, piece, count):
            self._source = piece
            self._count = count
            self._state = BODY_READY

        @property
        def content_length(self):
            return len(self._source) * self._count

        def _pieces(self):
            for _ in range(self._count):
                yield self._source
            self._state = BODY_CONSUMED

        def _release(self):
            released.append(self._count)

    def app(session, request, api):
        data = request.body.read() if request.body is not None else b''
        return (200, 'OK', {'x-got': str(len(data))}, Repeat(b'ab', 3))

    with serving(app) as server:
        conn = http.client.HTTPConnection(*server.address, timeout=5)
        conn.request('GET', '/')
        r = conn.getresponse()
        assert (r.status, r.getheader('content-length'), r.read()) == (200, '6', b'ababab')
        conn.close()
        conn = Client(server.address).connect()
        r = conn.put('/', {}, Repeat(b'xyz', 2))
        assert (r.headers['x-got'], r.body.read()) == ('6', b'ababab')
        conn.close()
    # the server releases the responses it sent; a request body stays the caller's
    assert released == [3, 3]


def _rss():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def test_aborted_uploads_leave_no_memory_behind():
    # A peer declares a 16 MiB chunk, sends a little of it and vanishes, ten
    # times.  Memory follows what arrived, and a dead connection's buffers
    # go with it, without the garbage collector (no reference cycle keeps
    # them): before, each round took 16 MiB, kept until a collection.
    import gc

    def app(session, request, api):
        return (200, 'OK', {}, request.body.read())

    wire = b'POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nffffff\r\n'
    with serving(app) as server:
        gc.collect()
        gc.disable()
        try:
            before = _rss()
            for _ in range(10):
                with connect(server.address) as sock:
                    sock.sendall(wire + b'x' * 100_000)
                    time.sleep(0.05)  # the server is reading the chunk now
                deadline = time.monotonic() + 5
                while server._conns and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert not server._conns
            grown = _rss() - before
        finally:
            gc.enable()
    assert grown < 16 * 1024 * 1024, grown


@pytest.mark.parametrize(
    'head, trickle',
    [
        # a body, one byte at a time
        (b'PUT / HTTP/1.1\r\nhost: x\r\ncontent-length: 200\r\n\r\n', b'x' * 200),
        # the trailer of a chunked body, one byte at a time
        (
            b'PUT / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n',
            b'x-trailer: ' + b'y' * 150 + b'\r\n\r\n',
        ),
    ],
)
def test_a_trickling_body_gets_408(head, trickle):
    # Each byte comes well within the per-operation timeout, but the whole
    # transfer is slower than min_rate: the deadline runs out.
    def app(session, request, api):
        return (200, 'OK', {}, request.body.read())

    with serving(app, timeout=5, transfer_timeout=0.5, min_rate=1000) as server:
        with connect(server.address) as sock:
            sock.sendall(head)
            started = time.monotonic()
            dribble(sock, trickle, 0.05)
            reply = recv_all(sock)
            elapsed = time.monotonic() - started
    assert reply.startswith(b'HTTP/1.1 408 Request Timeout\r\n'), reply[:80]
    assert b'connection: close' in reply.split(b'\r\n')
    assert elapsed < 3  # before: the per-operation timeout, refreshed by every byte


def select_readable(sock, timeout):
    import select

    return bool(select.select([sock], [], [], timeout)[0])


def dribble(sock, data, pause):
    """Send *data* a byte at a time, *pause* s apart, until the server acts.

    Returns ``'answered'`` when the server sent something or closed (the
    socket is readable), ``'refused'`` when a send failed, ``None`` when all
    of *data* went out.
    """
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return 'refused'
        if select_readable(sock, pause):
            return 'answered'
    return None


def test_the_thread_list_stays_bounded():
    # Finished connection threads are dropped in batches (when the list has
    # doubled), not by a scan of every thread on every accept.
    def app(session, request, api):
        return (200, 'OK', {}, b'ok')

    with serving(app) as server:
        for _ in range(300):
            with connect(server.address) as sock:
                sock.sendall(b'GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n')
                assert recv_all(sock).endswith(b'ok')
        assert len(server._threads) <= 2 * 64 + 64


def test_slowloris_costs_no_thread():
    # 200 connections dribble a request preamble.  They wait in the accept
    # loop, costing no thread, so the 50 (default) slots stay free: a
    # legitimate request is served at once.  Before, the first 50 took every
    # thread and everyone else got 503.
    before = threading.active_count()
    with serving(hello_app) as server:
        attackers = [connect(server.address) for _ in range(200)]
        try:
            for sock in attackers:
                sock.sendall(b'GET / HTTP/1.1\r\nHost: t\r\nx-a: ')
            time.sleep(0.2)
            assert threading.active_count() <= before + 3  # serve_forever() and one more
            started = time.monotonic()
            reply = exchange(server.address, b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
            assert status_line(reply) == b'HTTP/1.1 200 OK'
            assert time.monotonic() - started < 1
            # an attacker that finishes its preamble is served like anyone
            attackers[0].sendall(b'b\r\n\r\n')
            assert read_response(attackers[0])[1] == b'hello '
        finally:
            for sock in attackers:
                sock.close()


def test_a_dribbled_preamble_runs_out_of_time():
    # The whole preamble must arrive within timeout of its first byte, and
    # the first byte within idle_timeout; then the connection closes, no reply.
    with serving(hello_app, timeout=0.5, idle_timeout=0.5) as server:
        with connect(server.address) as sock:
            started = time.monotonic()
            acted = dribble(sock, b'GET / HTTP/1.1\r\nHost: t\r\n' + b'x' * 100, 0.05)
            closed = acted == 'refused' or (acted == 'answered' and sock.recv(1) == b'')
            assert closed and time.monotonic() - started < 2
        with connect(server.address) as sock:  # silent: idle_timeout
            started = time.monotonic()
            assert recv_all(sock) == b''
            assert time.monotonic() - started < 2


def test_too_many_prereading_connections_get_503(monkeypatch):
    import degu.server

    monkeypatch.setattr(degu.server, 'MAX_PREREADING', 2)
    with serving(hello_app) as server:
        waiting = [connect(server.address) for _ in range(2)]
        try:
            time.sleep(0.1)
            with connect(server.address) as third:
                assert status_line(recv_all(third)) == b'HTTP/1.1 503 Service Unavailable'
        finally:
            for sock in waiting:
                sock.close()


def test_idle_keep_alive_connections_are_parked(monkeypatch):
    # A kept-alive connection idle for PARK_AFTER gives its thread back and
    # waits in the accept loop; its next request resumes it (same session),
    # it closes at idle_timeout, and shutdown closes the parked ones.
    import degu.server

    monkeypatch.setattr(degu.server, 'PARK_AFTER', 0.1)

    def app(session, request, api):
        session.store['n'] = session.store.get('n', 0) + 1
        return (200, 'OK', {}, b'%d' % session.store['n'])

    before = threading.active_count()
    with serving(app, idle_timeout=3) as server:
        socks = [connect(server.address) for _ in range(20)]
        try:
            for sock in socks:
                sock.sendall(b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
                assert read_response(sock)[1] == b'1'
            deadline = time.monotonic() + 5
            while threading.active_count() > before + 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert threading.active_count() <= before + 1  # serve_forever() alone
            assert len(server._conns) == 20
            for sock in socks:  # resumed: the same session, one thread again
                sock.sendall(b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
                assert read_response(sock)[1] == b'2'
            socks[0].close()  # a parked connection whose peer leaves is let go
            deadline = time.monotonic() + 5
            while len(server._conns) > 19 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert len(server._conns) == 19
        finally:
            for sock in socks:
                sock.close()
    with serving(app, idle_timeout=0.5) as server:
        with connect(server.address) as sock:
            sock.sendall(b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
            assert read_response(sock)[1] == b'1'
            started = time.monotonic()
            assert recv_all(sock) == b''  # idle_timeout, parked or not: no reply
            assert time.monotonic() - started < 2
    with serving(app) as server:
        sock = connect(server.address)
        sock.sendall(b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
        read_response(sock)
        time.sleep(0.3)  # parked now
        started = time.monotonic()
        assert server.shutdown(5) is True
        assert time.monotonic() - started < 1
        assert recv_all(sock) == b''
        sock.close()


def test_parked_connections_leave_room_for_new_ones(monkeypatch):
    import degu.server

    monkeypatch.setattr(degu.server, 'PARK_AFTER', 0.1)
    monkeypatch.setattr(degu.server, 'MAX_PREREADING', 2)
    with serving(hello_app) as server:
        idle = [connect(server.address) for _ in range(5)]
        try:
            for sock in idle:
                sock.sendall(b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
                read_response(sock)
            time.sleep(0.4)  # all five parked
            for _ in range(3):  # parked ones are not prereading ones: no 503
                reply = exchange(server.address, b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
                assert status_line(reply) == b'HTTP/1.1 200 OK'
        finally:
            for sock in idle:
                sock.close()


def wait_for_threads(count, seconds=5):
    deadline = time.monotonic() + seconds
    while threading.active_count() > count and time.monotonic() < deadline:
        time.sleep(0.02)
    return threading.active_count()


def test_a_trickled_body_costs_no_thread(address):
    # Requests whose bodies trickle in (a declared length, a 16 MiB chunk)
    # wait in the accept loop until the body is at hand: the max_connections
    # threads stay free for everyone else.  Before, each held a thread while
    # its body came, and max_connections of them locked everyone out.
    before = threading.active_count()
    with serving(hello_app, address, max_connections=3) as server:
        attackers = [connect(server.address) for _ in range(6)]
        try:
            for (i, sock) in enumerate(attackers):
                if i % 2:
                    sock.sendall(b'PUT / HTTP/1.1\r\nHost: t\r\ncontent-length: 1000000\r\n\r\nx')
                else:
                    sock.sendall(b'PUT / HTTP/1.1\r\nHost: t\r\ntransfer-encoding: chunked\r\n'
                                 b'\r\nffffff\r\nx')
            assert wait_for_threads(before + 1) == before + 1  # serve_forever() alone
            for sock in attackers:
                sock.sendall(b'x')
            for _ in range(3):
                reply = exchange(server.address, b'PUT / HTTP/1.1\r\nHost: t\r\n'
                                 b'content-length: 2\r\n\r\nhi')
                assert status_line(reply) == b'HTTP/1.1 200 OK'
                assert reply.endswith(b'hello hi')
            deadline = time.monotonic() + 5
            while len(server._conns) > 6 and time.monotonic() < deadline:
                time.sleep(0.02)  # the legitimate ones' threads end
            assert len(server._conns) == 6  # no attacker was turned away
        finally:
            for sock in attackers:
                sock.close()


@pytest.mark.parametrize('head, pieces, echoed', [
    (b'content-length: 11', [b'hello', b' world'], b'hello world'),
    (b'transfer-encoding: chunked', [b'5\r\nhel', b'lo\r\n0\r\n\r\n'], b'hello'),
    (b'transfer-encoding: chunked', [b'5\r\nhello\r\n0\r', b'\n\r\n'], b'hello'),
    (b'transfer-encoding: chunked', [b'0\r\nx-t: 1\r\n', b'\r\n'], b''),
])
def test_a_body_that_comes_in_pieces_is_served_after_the_wait(address, head, pieces,
                                                              echoed):
    # The body is not at hand after BODY_WAIT: the connection is parked with
    # its request, and a thread serves it, in the same session, when the
    # rest came.
    def app(session, request, api):
        session.store['n'] = session.store.get('n', 0) + 1
        body = request.body.read() if request.body is not None else b''
        return (200, 'OK', {'x-n': str(session.store['n'])}, body)

    with serving(app, address) as server:
        with connect(server.address) as sock:
            for n in (1, 2):
                sock.sendall(b'PUT / HTTP/1.1\r\nHost: t\r\n' + head + b'\r\n\r\n' + pieces[0])
                time.sleep(0.2)
                sock.sendall(pieces[1])
                (headers, body, rest) = read_response(sock)
                assert (status_line(headers), body, rest) == (b'HTTP/1.1 200 OK', echoed, b'')
                assert b'x-n: %d' % n in headers.split(b'\r\n')


def test_a_chunked_body_goes_to_the_app_with_its_first_chunk():
    # An event stream uploaded as a chunked body: the app has the first
    # event at once, not when the buffer fills or the stream ends.
    events = []

    def app(session, request, api):
        for (_, data) in request.body:
            events.append(data)
        return (200, 'OK', {}, b'%d events' % (len(events) - 1))

    with serving(app) as server:
        with connect(server.address) as sock:
            sock.sendall(b'PUT / HTTP/1.1\r\nHost: t\r\ntransfer-encoding: chunked\r\n\r\n'
                         b'7\r\nevent 1\r\n')
            deadline = time.monotonic() + TIMEOUT
            while not events and time.monotonic() < deadline:
                time.sleep(0.01)
            assert events == [b'event 1']
            sock.sendall(b'7\r\nevent 2\r\n0\r\n\r\n')
            assert read_response(sock)[1] == b'2 events'


def test_parked_connections_do_not_count_toward_max_connections(monkeypatch):
    # max_connections bounds the connections being served (a thread each);
    # idle ones wait in the accept loop, bounded by MAX_PARKED.
    monkeypatch.setattr(degu.server, 'PARK_AFTER', 0.1)
    monkeypatch.setattr(degu.server, 'MAX_PARKED', 3)
    with serving(hello_app, max_connections=1) as server:
        socks = []
        try:
            for _ in range(4):
                sock = connect(server.address)
                socks.append(sock)
                sock.sendall(b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
                assert read_response(sock)[1] == b'hello '
                time.sleep(0.3)  # parked: the one thread is free again
            # The fourth found MAX_PARKED parked already: closed when idle.
            assert recv_all(socks[3]) == b''
            for sock in socks[:3]:
                sock.sendall(b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
                assert read_response(sock)[1] == b'hello '
                time.sleep(0.3)  # parked again: its thread kept the one slot meanwhile
        finally:
            for sock in socks:
                sock.close()


def test_a_crowded_server_parks_idle_connections_at_once():
    # With three quarters of max_connections busy, a thread parks its idle
    # connection after CROWDED_WAIT instead of PARK_AFTER: 30 clients
    # that each make a request and stay connected, one after another within
    # a second, are all served by 4 threads.  Before, the fifth got 503.
    before = threading.active_count()
    with serving(hello_app, max_connections=4) as server:
        socks = []
        try:
            for _ in range(30):
                sock = connect(server.address)
                socks.append(sock)
                sock.sendall(b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
                (head, body, _) = read_response(sock)
                assert status_line(head) == b'HTTP/1.1 200 OK'
                time.sleep(0.01)
            assert threading.active_count() <= before + 1 + 4
            for sock in socks:  # every one still open, resumed when it speaks
                sock.sendall(b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
                assert read_response(sock)[1] == b'hello '
                time.sleep(0.01)
        finally:
            for sock in socks:
                sock.close()


def test_a_parked_request_finding_the_server_full_gets_503():
    release = threading.Event()

    def app(session, request, api):
        if request.uri == '/block':
            release.wait(TIMEOUT)
        body = request.body.read() if request.body is not None else b''
        return (200, 'OK', {}, body)

    with serving(app, max_connections=1) as server:
        with connect(server.address) as waiting, connect(server.address) as busy:
            waiting.sendall(b'PUT / HTTP/1.1\r\nHost: t\r\ncontent-length: 4\r\n\r\nab')
            time.sleep(0.3)  # parked, its thread gone
            busy.sendall(b'GET /block HTTP/1.1\r\nHost: t\r\n\r\n')
            time.sleep(0.2)  # the one thread is in the app
            waiting.sendall(b'cd')
            reply = recv_all(waiting)
            assert status_line(reply) == b'HTTP/1.1 503 Service Unavailable'
            assert b'retry-after: 1' in reply.split(b'\r\n')
            release.set()
            assert status_line(read_response(busy)[0]) == b'HTTP/1.1 200 OK'


def test_shutdown_serves_a_request_whose_preamble_is_on_its_way():
    # Accepted, its request not all there yet: a client about to be served.
    # shutdown() stops accepting and gives it SHUTDOWN_PREREAD to send its
    # request, which is answered (connection: close); a silent one is closed
    # at the end of that, not at once.
    with serving(hello_app) as server:
        with connect(server.address) as sending, connect(server.address) as silent:
            sending.sendall(b'GET / HTTP/1.1\r\n')
            time.sleep(0.2)  # both accepted, waiting in the accept loop
            result = []
            started = time.monotonic()
            stopper = threading.Thread(target=lambda: result.append(server.shutdown(5)))
            stopper.start()
            time.sleep(0.2)
            sending.sendall(b'Host: t\r\n\r\n')
            (head, body, _) = read_response(sending)
            assert (status_line(head), body) == (b'HTTP/1.1 200 OK', b'hello ')
            assert b'connection: close' in head.split(b'\r\n')
            assert recv_all(silent) == b''
            stopper.join(TIMEOUT)
            assert result == [True]
            assert time.monotonic() - started < 1 + 0.5 + 1
        with pytest.raises(OSError):  # no longer accepting
            connect(server.address).close()


def test_shutdown_serves_a_request_whose_body_is_on_its_way():
    with serving(hello_app) as server:
        with connect(server.address) as sock:
            sock.sendall(b'PUT / HTTP/1.1\r\nHost: t\r\ncontent-length: 4\r\n\r\nab')
            time.sleep(0.3)  # parked with its request
            result = []
            stopper = threading.Thread(target=lambda: result.append(server.shutdown(5)))
            stopper.start()
            time.sleep(0.3)
            sock.sendall(b'cd')
            (head, body, _) = read_response(sock)
            stopper.join(TIMEOUT)
            assert (status_line(head), body) == (b'HTTP/1.1 200 OK', b'hello abcd')
            assert b'connection: close' in head.split(b'\r\n')
            assert result == [True]


def test_serve_forever_survives_a_failing_start_up_line(monkeypatch, caplog):
    # A stray degu/ folder shadowing the package made _version() fail: the server
    # must still serve, and shutdown() must still return at once and close the listener.
    def broken_version():
        raise ImportError('cannot import name __version__')

    monkeypatch.setattr(degu.server, '_version', broken_version)
    server = Server(('127.0.0.1', 0), hello_app)
    thread = threading.Thread(target=server.serve_forever, name='test serve_forever')
    with caplog.at_level(logging.INFO, logger='degu.server'):
        thread.start()
        try:
            reply = exchange(server.address, b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
            assert status_line(reply) == b'HTTP/1.1 200 OK'
        finally:
            started = time.monotonic()
            assert server.shutdown(5) is True
            assert time.monotonic() - started < 1
            thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert server.sock.fileno() == -1
    assert 'Starting degu (unknown version) @ ' in caplog.text


def _stale_socket(path):
    # What a killed server leaves: a socket file with nobody listening on it.
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(path)
    sock.listen(1)
    sock.close()
    assert os.path.exists(path)


def test_unix_socket_file_left_by_a_killed_server_is_replaced(tmp_path):
    path = str(tmp_path / 'stale.sock')
    _stale_socket(path)
    with serving(hello_app, path) as server:
        assert server.address == path
        reply = exchange(path, b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
        assert status_line(reply) == b'HTTP/1.1 200 OK'
    assert not os.path.exists(path)  # removed on shutdown, as ever


def test_unix_socket_file_of_a_live_server_is_not_taken(tmp_path):
    path = str(tmp_path / 'live.sock')
    with serving(hello_app, path):
        with pytest.raises(OSError) as e:
            Server(path, hello_app)
        assert e.value.errno == errno.EADDRINUSE
        reply = exchange(path, b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
        assert status_line(reply) == b'HTTP/1.1 200 OK'  # the first server still owns it


def test_unix_path_that_is_not_a_socket_is_left_alone(tmp_path):
    path = tmp_path / 'data.sock'
    path.write_bytes(b'precious')
    with pytest.raises(OSError) as e:
        Server(str(path), hello_app)
    assert e.value.errno == errno.EADDRINUSE
    assert str(e.value) == (
        f'[Errno {errno.EADDRINUSE}] Address already in use by a file that is not a socket '
        f"(left alone): '{path}'"
    )
    assert path.read_bytes() == b'precious'
    folder = tmp_path / 'folder.sock'
    folder.mkdir()
    with pytest.raises(OSError) as e:
        Server(str(folder), hello_app)
    assert (e.value.errno, e.value.filename) == (errno.EADDRINUSE, str(folder))
    assert folder.is_dir()
