"""h11 as a strict parser of every kind of response a degu server sends.

Raw request bytes go to a degu server; every byte that comes back goes
through ``h11.Connection(h11.CLIENT)``.  h11 refuses what RFC 9112 refuses
(a body after a 204, a bad chunk, garbage between responses), and between
responses it starts a new cycle, so keep-alive and pipelining are checked
byte for byte.  The tests add what h11 lets pass but RFC 9112 section 6.3
wants from a keep-alive server: a response that may carry content says how
long it is.
"""

import io
import socket
import threading

import h11
import pytest
from interop_helpers import (
    DEADLINE,
    FAST,
    HELLO,
    RawServer,
    assert_framed,
    connect,
    h11_exchange,
    h11_request,
    read_preamble,
    serve,
)

from degu.applib import FilesApp, ProxyApp
from degu.client import Client

pytestmark = pytest.mark.interop

CHUNKS = [(None, b'hello'), (('k', 'v'), b' world'), (None, b'')]
ENCODED = b'5\r\nhello\r\n6;k=v\r\n world\r\n0\r\n\r\n'


def shapes(session, request, api):
    """One route per kind of response body."""
    route = request.path[0] if request.path else ''
    if route == 'bytes':
        return (200, 'OK', {}, b'hello bytes')
    if route == 'none':
        status = int(request.path[1])
        return (status, 'Some Reason', {}, None)
    if route == 'fail':
        raise RuntimeError('this app fails on purpose')
    if route == 'head':  # for HEAD: the app says how long a GET would be
        return (200, 'OK', {'content-length': 11}, None)
    if route == 'nocontent':
        return (204, 'No Content', {}, None)
    if route == 'notmodified':
        return (304, 'Not Modified', {'etag': '"x"'}, None)
    if route == 'body':
        return (200, 'OK', {}, api.Body(io.BytesIO(b'a body over a file'), 18))
    if route == 'bodyiter':
        return (200, 'OK', {}, api.BodyIter([b'abc', b'', b'def'], 6))
    if route == 'chunkediter':
        return (200, 'OK', {}, api.ChunkedBodyIter(list(CHUNKS)))
    if route == 'chunkedbody':
        return (200, 'OK', {}, api.ChunkedBody(io.BytesIO(ENCODED)))
    if route == 'early':  # an interim status as the final response: an app error
        return (103, 'Early Hints', {'link': '</style.css>; rel=preload'}, None)
    if route == 'echo':
        data = request.body.read() if request.body is not None else b''
        return (200, 'OK', {}, data)
    if route == 'host':
        return (200, 'OK', {}, str(request.headers.get('host')).encode())
    if route == 'uri':
        return (200, 'OK', {}, request.uri.encode())
    return (410, 'Gone', {}, None)


def get(path, version='1.1', headers=b'host: example.com\r\n', method='GET'):
    return f'{method} {path} HTTP/{version}\r\n'.encode() + headers + b'\r\n'


FOLLOW = get('/uri')  # a follow-up request: the connection must still work after a response

# (id, method, path, status, body)
SHAPES = [
    ('bytes', 'GET', '/bytes', 200, b'hello bytes'),
    ('none-200', 'GET', '/none/200', 200, b''),
    ('none-201', 'GET', '/none/201', 201, b''),
    ('none-404', 'GET', '/none/404', 404, b''),
    ('none-410', 'GET', '/none/410', 410, b''),
    ('none-405', 'GET', '/none/405', 405, b''),
    ('head-app-length', 'HEAD', '/head', 200, b''),
    ('head-bytes-route', 'HEAD', '/none/200', 200, b''),
    ('204', 'GET', '/nocontent', 204, b''),
    ('304', 'GET', '/notmodified', 304, b''),
    ('Body', 'GET', '/body', 200, b'a body over a file'),
    ('BodyIter', 'GET', '/bodyiter', 200, b'abcdef'),
    ('ChunkedBodyIter', 'GET', '/chunkediter', 200, b'hello world'),
    ('ChunkedBody', 'GET', '/chunkedbody', 200, b'hello world'),
]


@pytest.mark.parametrize('case', SHAPES, ids=[c[0] for c in SHAPES])
def test_response_shape_http11(case):
    """RFC 9112 sections 6 and 9.3: each kind of response is valid for h11, says
    how long it is (sections 6.2, 6.3), and leaves the connection ready for
    the next request."""
    (_, method, path, status, body) = case
    with serve(shapes) as served:
        raw = get(path, method=method) + FOLLOW
        told = [h11_request(method, path), h11_request('GET', '/uri')]
        exchange = h11_exchange(served.address, raw, told)
    (first, second) = exchange.responses
    assert (first.status, first.body) == (status, body)
    assert_framed(first, head=(method == 'HEAD'))
    assert 'date' in first.headers  # RFC 9110 section 6.6.1
    assert second.body == b'/uri'
    assert exchange.elapsed < FAST


def test_head_response_framing():
    """RFC 9110 section 9.3.2: a HEAD response may say what a GET would get; the
    server adds no framing header itself (it does not know the length), and
    keeps the app's ``content-length``."""
    with serve(shapes) as served:
        raw = get('/head', method='HEAD') + get('/none/200', method='HEAD')
        told = [h11_request('HEAD', '/head'), h11_request('HEAD', '/none/200')]
        (with_length, without) = h11_exchange(served.address, raw, told).responses
    assert with_length.headers['content-length'] == '11'
    assert 'transfer-encoding' not in with_length.headers
    assert 'content-length' not in without.headers
    assert 'transfer-encoding' not in without.headers


def test_204_and_304_carry_no_framing():
    """RFC 9110 sections 8.6 and 15.4.5: no ``content-length`` on a 204; a 304
    carries none the app did not give (it would describe the selected
    representation), and neither carries ``transfer-encoding``."""
    with serve(shapes) as served:
        raw = get('/nocontent') + get('/notmodified') + FOLLOW
        told = [h11_request('GET', '/nocontent'), h11_request('GET', '/notmodified'),
                h11_request('GET', '/uri')]
        (r204, r304, follow) = h11_exchange(served.address, raw, told).responses
    assert r204.status == 204 and r304.status == 304
    for r in (r204, r304):
        assert 'content-length' not in r.headers and 'transfer-encoding' not in r.headers
    assert follow.body == b'/uri'


def test_app_error_500_closes():
    """RFC 9110 section 15.6.1: an app that raises gets the client a ``500``
    with ``content-length: 0`` and ``connection: close`` (RFC 9112 section
    9.6), then the close."""
    with serve(shapes) as served:
        exchange = h11_exchange(served.address, get('/fail'), wait_close=True)
    (response,) = exchange.responses
    assert response.status == 500
    assert response.headers['content-length'] == '0'
    assert response.headers['connection'] == 'close'
    assert exchange.closed


def test_app_interim_status_is_500():
    """RFC 9110 section 15.2: a 1xx is interim, never the final response to a
    request; an app returning one is an app error (500), not a response the
    client would wait after forever."""
    with serve(shapes) as served:
        exchange = h11_exchange(served.address, get('/early'), wait_close=True)
    (response,) = exchange.responses
    assert response.interim == []
    assert response.status == 500
    assert response.headers['content-length'] == '0'


CHUNKED_SHAPES = [
    ('ChunkedBodyIter', '/chunkediter'),
    ('ChunkedBody', '/chunkedbody'),
]


@pytest.mark.parametrize('case', CHUNKED_SHAPES, ids=[c[0] for c in CHUNKED_SHAPES])
def test_chunked_to_http10_is_close_delimited(case):
    """RFC 9112 section 6.1: chunked is an HTTP/1.1 coding an HTTP/1.0 peer
    does not know, so the body goes out close-delimited: no
    ``transfer-encoding``, ``connection: close``, then the close."""
    (_, path) = case
    with serve(shapes) as served:
        told = [h11_request('GET', path, [('connection', 'close')])]
        exchange = h11_exchange(served.address, get(path, '1.0', b''), told, wait_close=True)
    (response,) = exchange.responses
    assert 'transfer-encoding' not in response.headers
    assert 'content-length' not in response.headers
    assert response.headers.get('connection') == 'close'
    assert response.body == b'hello world'
    assert exchange.closed


@pytest.mark.parametrize('path', ['/bytes', '/none/404', '/body', '/bodyiter'])
def test_http10_keep_alive_stays_open(path):
    """RFC 9112 section 9.3: an HTTP/1.0 request with ``connection: keep-alive``
    and a length-framed answer leaves the connection open for the next one."""
    keep = b'connection: keep-alive\r\n'
    with serve(shapes) as served:
        raw = get(path, '1.0', keep) + get('/uri', '1.0', keep)
        told = [h11_request('GET', path), h11_request('GET', '/uri')]
        exchange = h11_exchange(served.address, raw, told)
    (first, second) = exchange.responses
    assert 'content-length' in first.headers
    assert first.headers.get('connection', '').lower() == 'keep-alive'
    assert second.body == b'/uri'


def test_http10_without_keep_alive_closes():
    """RFC 9112 section 9.3: an HTTP/1.0 request without keep-alive gets its
    answer, then the close."""
    with serve(shapes) as served:
        told = [h11_request('GET', '/bytes', [('connection', 'close')])]
        exchange = h11_exchange(served.address, get('/bytes', '1.0', b''), told, wait_close=True)
    assert exchange.responses[0].body == b'hello bytes'
    assert exchange.closed


def test_http10_transfer_encoding_is_served_then_closed():
    """RFC 9112 section 6.1: a server that receives ``transfer-encoding`` in an
    HTTP/1.0 request reads the body as chunked and closes the connection
    after the response, even with ``connection: keep-alive``."""
    raw = (
        b'PUT /echo HTTP/1.0\r\ntransfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n'
        + ENCODED
    )
    with serve(shapes) as served:
        told = [h11_request('PUT', '/echo')]
        exchange = h11_exchange(served.address, raw, told, wait_close=True)
    (response,) = exchange.responses
    assert (response.status, response.body) == (200, b'hello world')
    assert response.headers.get('connection', '').lower() == 'close'
    assert exchange.closed


def test_keep_alive_many_requests():
    """RFC 9112 section 9.3: one connection carries one request after another,
    each response complete and framed; h11 starts a new cycle for each."""
    paths = ['/bytes', '/none/404', '/body', '/chunkediter', '/bodyiter', '/nocontent', '/uri']
    with serve(shapes) as served:
        sock = connect(served.address)
        with sock:
            for path in paths:
                exchange = h11_exchange(None, get(path), [h11_request('GET', path)], sock=sock)
                assert_framed(exchange.responses[0])
                assert exchange.elapsed < FAST, path


def test_pipelined_requests_answered_in_order():
    """RFC 9112 section 9.3.2: requests sent back to back in one write are
    answered in order, each response complete before the next."""
    requests = [
        ('GET', '/uri?1'),
        ('HEAD', '/head'),
        ('GET', '/none/404'),
        ('GET', '/chunkediter'),
        ('GET', '/uri?2'),
    ]
    raw = b''.join(get(path, method=method) for (method, path) in requests)
    with serve(shapes) as served:
        told = [h11_request(method, path) for (method, path) in requests]
        exchange = h11_exchange(served.address, raw, told)
    bodies = [r.body for r in exchange.responses]
    assert bodies == [b'/uri?1', b'', b'', b'hello world', b'/uri?2']
    assert [r.status for r in exchange.responses] == [200, 200, 404, 200, 200]


def test_app_headers_dict_left_alone():
    """RFC 9110 section 6.6.1 and RFC 9112 section 6: the server renders
    ``date``, framing and ``connection`` itself; the headers dict the app
    returned (here shared by every response) is not changed."""
    shared = {'x-app': 'yes'}

    def app(session, request, api):
        if request.path == ['chunked']:
            return (200, 'OK', shared, api.ChunkedBodyIter(list(CHUNKS)))
        return (200, 'OK', shared, b'same headers')

    with serve(app) as served:
        raw = get('/bytes') + get('/chunked')
        h11_exchange(served.address, raw, [h11_request('GET', '/'), h11_request('GET', '/')])
        told = [h11_request('GET', '/', [('connection', 'close')])]
        h11_exchange(served.address, get('/chunked', '1.0', b''), told, wait_close=True)
    assert shared == {'x-app': 'yes'}


# --------------------------------------------------------------------------
# Chunk sizes (RFC 9112 section 7.1: chunk-size = 1*HEXDIG)


@pytest.mark.parametrize(
    'chunks',
    [
        b'005\r\nhello\r\n0A\r\n0123456789\r\n0\r\n\r\n',
        b'0000000000000005\r\nhello\r\n00a\r\n0123456789\r\n000\r\n\r\n',
    ],
    ids=['leading-zeros', 'sixteen-digits'],
)
def test_chunk_size_leading_zeros_accepted(chunks):
    """RFC 9112 section 7.1: ``chunk-size = 1*HEXDIG``, so ``005`` and ``0A`` are
    valid sizes (as curl, nginx and h11 accept them)."""
    raw = b'PUT /echo HTTP/1.1\r\nhost: example.com\r\ntransfer-encoding: chunked\r\n\r\n' + chunks
    with serve(shapes) as served:
        raw += FOLLOW
        exchange = h11_exchange(served.address, raw, [h11_request('PUT', '/echo'),
                                                      h11_request('GET', '/uri')])
    (response, follow) = exchange.responses
    assert (response.status, response.body) == (200, b'hello0123456789')
    assert follow.body == b'/uri'


def test_chunk_size_too_many_digits_is_400():
    """RFC 9112 section 7.1 lets a recipient bound the chunk-size line: more
    than 16 hex digits is refused with ``400`` and the close."""
    raw = (
        b'PUT /echo HTTP/1.1\r\nhost: example.com\r\ntransfer-encoding: chunked\r\n\r\n'
        b'00000000000000005\r\nhello\r\n0\r\n\r\n'
    )
    with serve(shapes) as served:
        exchange = h11_exchange(served.address, raw, [h11_request('PUT', '/echo')],
                                wait_close=True)
    assert exchange.responses[0].status == 400


# --------------------------------------------------------------------------
# The server's own answers: 400, 413, 414, 431, 501, 503, 505

OWN_ERRORS = [
    ('400-request-line', b'GET /a b HTTP/1.1\r\nhost: x\r\n\r\n', 400),
    ('400-both-framings', b'PUT /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n'
     b'transfer-encoding: chunked\r\n\r\n0\r\n\r\n', 400),
    ('400-bad-chunk', b'PUT /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n'
     b'5\r\nhelloXX0\r\n\r\n', 400),
    ('414', b'GET /' + b'a' * 9000 + b' HTTP/1.1\r\nhost: x\r\n\r\n', 414),
    ('431-size', b'GET / HTTP/1.1\r\nhost: x\r\nx-big: ' + b'a' * 40000 + b'\r\n\r\n', 431),
    ('431-count', b'GET / HTTP/1.1\r\nhost: x\r\n'
     + b''.join(b'x-f%d: v\r\n' % i for i in range(150)) + b'\r\n', 431),
    ('501-method', b'BREW /pot HTTP/1.1\r\nhost: x\r\n\r\n', 501),
    ('501-coding', b'PUT /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: gzip, chunked\r\n\r\n'
     b'0\r\n\r\n', 501),
    ('505', b'GET / HTTP/2.0\r\nhost: x\r\n\r\n', 505),
]


def check_own_error(exchange, status):
    (response,) = exchange.responses
    assert response.status == status, exchange
    assert response.headers.get('content-length') == '0'
    assert response.headers.get('connection') == 'close'
    assert 'date' in response.headers
    assert exchange.closed
    assert exchange.elapsed < FAST


@pytest.mark.parametrize('case', OWN_ERRORS, ids=[c[0] for c in OWN_ERRORS])
def test_server_error_answers(case):
    """RFC 9110 sections 15.5 and 15.6, RFC 9112 section 9.6: a request the
    server refuses gets a complete, valid answer with ``content-length: 0``
    and ``connection: close``, then the close."""
    (_, raw, status) = case
    with serve(shapes) as served:
        exchange = h11_exchange(served.address, raw, [h11_request('PUT', '/')], wait_close=True)
    check_own_error(exchange, status)


def test_503_when_max_connections_reached():
    """RFC 9110 section 15.6.4: a connection over ``max_connections`` gets a
    ``503`` with ``retry-after`` at once, valid for h11, then the close."""
    with serve(shapes, max_connections=1) as served:
        first = connect(served.address)
        with first:
            # The first connection is being served: its answer came back.
            h11_exchange(None, get('/bytes'), sock=first)
            exchange = h11_exchange(served.address, get('/bytes'), wait_close=True)
    check_own_error(exchange, 503)
    assert 'retry-after' in exchange.responses[0].headers


def test_413_declared_length_over_max_body():
    """RFC 9110 section 15.5.14: a declared ``content-length`` over
    ``max_body`` gets ``413 Content Too Large`` before the app runs."""
    calls = []

    def app(session, request, api):
        calls.append(request.uri)
        return shapes(session, request, api)

    raw = b'PUT /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n'
    with serve(app, max_body=100) as served:
        exchange = h11_exchange(served.address, raw, [h11_request('PUT', '/echo')])
    assert exchange.responses[0].status == 413
    assert exchange.responses[0].headers.get('content-length') == '0'
    assert calls == []


def test_413_chunked_body_growing_over_max_body():
    """RFC 9110 section 15.5.14: a chunked body that grows past ``max_body``
    fails the read, and the server answers ``413``, then closes."""
    raw = (
        b'PUT /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n'
        + b'40\r\n' + b'x' * 64 + b'\r\n'
        + b'40\r\n' + b'y' * 64 + b'\r\n0\r\n\r\n'
    )
    with serve(shapes, max_body=100) as served:
        exchange = h11_exchange(served.address, raw, [h11_request('PUT', '/echo')],
                                wait_close=True)
    check_own_error(exchange, 413)


def test_413_sizeless_read_over_16_mib():
    """RFC 9110 section 15.5.14: ``request.body.read()`` of a body over 16 MiB
    refuses to allocate it; the server answers ``413`` when the app lets the
    error escape.  The first 64 KiB of the body go with the preamble: the app
    is called once the connection's read buffer is full."""
    raw = b'PUT /echo HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n' % (17 * 1024 * 1024)
    raw += b'x' * (64 * 1024)
    with serve(shapes) as served:
        exchange = h11_exchange(served.address, raw, [h11_request('PUT', '/echo')],
                                wait_close=True)
    check_own_error(exchange, 413)


# --------------------------------------------------------------------------
# Host (RFC 9112 section 3.2)

BAD_HOSTS = [
    ('missing', b''),
    ('twice', b'host: a.example\r\nhost: b.example\r\n'),
    ('space', b'host: exa mple.com\r\n'),
    ('userinfo', b'host: user@host\r\n'),
    ('bad-port', b'host: host:abc\r\n'),
]


@pytest.mark.parametrize('case', BAD_HOSTS, ids=[c[0] for c in BAD_HOSTS])
def test_bad_host_is_400(case):
    """RFC 9112 section 3.2: a server responds ``400`` to an HTTP/1.1 request
    without ``host``, with more than one, or with an invalid value; the
    connection closes."""
    (_, fields) = case
    with serve(shapes) as served:
        exchange = h11_exchange(served.address, get('/host', headers=fields), wait_close=True)
    check_own_error(exchange, 400)


@pytest.mark.parametrize(
    'raw, host',
    [
        (b'GET /host HTTP/1.0\r\n\r\n', b'None'),
        (b'GET /host HTTP/1.1\r\nhost:\r\n\r\n', b''),
        (b'GET /host HTTP/1.1\r\nhost: a.example:8080\r\n\r\n', b'a.example:8080'),
        (b'GET /host HTTP/1.1\r\nhost: [::1]:5984\r\n\r\n', b'[::1]:5984'),
    ],
    ids=['http10-without', 'empty', 'with-port', 'ipv6-literal'],
)
def test_valid_host_is_served(raw, host):
    """RFC 9112 section 3.2: HTTP/1.0 may omit ``host``; an empty value is
    valid (a target URI without authority); ``host:port`` and an IPv6
    literal are valid ``uri-host [":" port]``."""
    http10 = b'HTTP/1.0' in raw
    with serve(shapes) as served:
        told = [h11_request('GET', '/host', [('connection', 'close')] if http10 else [])]
        exchange = h11_exchange(served.address, raw, told, wait_close=http10)
    assert (exchange.responses[0].status, exchange.responses[0].body) == (200, host)


def test_absolute_form_authority_wins():
    """RFC 9112 section 3.2.2: with an absolute-form target the server uses
    its authority and ignores the ``host`` field."""
    raw = b'GET http://a.example/host HTTP/1.1\r\nhost: b.example\r\n\r\n'
    with serve(shapes) as served:
        exchange = h11_exchange(served.address, raw, [h11_request('GET', '/host')])
    assert (exchange.responses[0].status, exchange.responses[0].body) == (200, b'a.example')


# --------------------------------------------------------------------------
# FilesApp's answers


FILES = [
    ('200', 'GET', '/hello.txt', {}, 200, HELLO),
    ('206', 'GET', '/hello.txt', {'range': 'bytes=0-4'}, 206, HELLO[:5]),
    ('206-suffix', 'GET', '/hello.txt', {'range': 'bytes=-6'}, 206, HELLO[-6:]),
    ('416', 'GET', '/hello.txt', {'range': 'bytes=100-200'}, 416, b''),
    ('404', 'GET', '/missing', {}, 404, b''),
    ('405', 'DELETE', '/hello.txt', {}, 405, b''),
    ('head', 'HEAD', '/hello.txt', {}, 200, b''),
    ('dir-with-slash', 'GET', '/sub/', {}, 200, b'<p>sub</p>\n'),
]


@pytest.mark.parametrize('case', FILES, ids=[c[0] for c in FILES])
def test_files_app_answers(files_dir, case):
    """RFC 9110 sections 14 and 15: FilesApp's 200/206/416/404/405 and HEAD
    answers are valid for h11, framed, and keep the connection usable."""
    (_, method, path, headers, status, body) = case
    fields = b'host: x\r\n' + b''.join(f'{k}: {v}\r\n'.encode() for (k, v) in headers.items())
    with serve(FilesApp(files_dir)) as served:
        raw = get(path, headers=fields, method=method) + get('/hello.txt')
        told = [h11_request(method, path), h11_request('GET', '/hello.txt')]
        exchange = h11_exchange(served.address, raw, told)
    (response, follow) = exchange.responses
    assert (response.status, response.body) == (status, body)
    assert_framed(response, head=(method == 'HEAD'))
    if status == 206:
        assert response.headers['content-range'].startswith('bytes ')
    if status == 416:
        assert response.headers['content-range'] == f'bytes */{len(HELLO)}'
    assert follow.body == HELLO


def test_files_app_directory_without_slash(files_dir):
    """RFC 9110 section 15.4: a folder named without its trailing slash is
    answered (its index, or a redirect to the slash form) validly for h11."""
    with serve(FilesApp(files_dir)) as served:
        raw = get('/sub') + get('/hello.txt')
        told = [h11_request('GET', '/sub'), h11_request('GET', '/hello.txt')]
        exchange = h11_exchange(served.address, raw, told)
    (response, follow) = exchange.responses
    assert response.status in (200, 301, 308)
    if response.status != 200:
        assert response.headers['location'].endswith('/sub/')
    assert_framed(response)
    assert follow.body == HELLO


def test_files_app_304(files_dir):
    """RFC 9110 section 13.1.2: ``if-none-match`` with the current etag gives a
    304 without content and without ``transfer-encoding``."""
    with serve(FilesApp(files_dir)) as served:
        (first,) = h11_exchange(served.address, get('/hello.txt')).responses
        fields = b'host: x\r\nif-none-match: ' + first.headers['etag'].encode() + b'\r\n'
        raw = get('/hello.txt', headers=fields) + get('/hello.txt')
        told = [h11_request('GET', '/hello.txt'), h11_request('GET', '/hello.txt')]
        (response, follow) = h11_exchange(served.address, raw, told).responses
    assert (response.status, response.body) == (304, b'')
    assert 'transfer-encoding' not in response.headers
    assert follow.body == HELLO


# --------------------------------------------------------------------------
# A close-delimited upstream body, relayed by ProxyApp


def unframed_upstream(sock, i):
    (preamble, _) = read_preamble(sock)
    sock.sendall(b'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the close')
    sock.shutdown(socket.SHUT_WR)


@pytest.mark.parametrize('version', ['1.1', '1.0'])
def test_proxied_close_delimited_body(version):
    """RFC 9112 sections 6.1 and 6.3: a body whose length is unknown (read
    from an upstream until it closed) goes out chunked to an HTTP/1.1 peer
    and close-delimited to an HTTP/1.0 peer; either way complete and valid."""
    with RawServer(unframed_upstream) as upstream:
        app = ProxyApp(Client(upstream.address, timeout=DEADLINE))
        with serve(app) as served:
            headers = [('connection', 'close')] if version == '1.0' else []
            told = [h11_request('GET', '/x', headers)]
            raw = get('/x', version)
            exchange = h11_exchange(served.address, raw, told, wait_close=(version == '1.0'))
    (response,) = exchange.responses
    assert (response.status, response.body) == (200, b'until the close')
    if version == '1.1':
        assert response.headers.get('transfer-encoding') == 'chunked'
    else:
        assert 'transfer-encoding' not in response.headers
        assert exchange.closed


def test_no_reply_to_a_silent_connection():
    """RFC 9112 section 9.5: a connection that sends nothing gets nothing (no
    408 or other unsolicited bytes) while it is idle."""
    with serve(shapes) as served:
        sock = connect(served.address, timeout=0.2)
        with sock:
            with pytest.raises((TimeoutError, socket.timeout)):
                sock.recv(1)
            # ... and it still serves a request afterwards.
            exchange = h11_exchange(None, get('/bytes'), sock=sock)
    assert exchange.responses[0].body == b'hello bytes'


def test_threads_share_nothing():
    """RFC 9112 section 9: connections are independent; two clients served at
    once each get their own, complete responses."""
    results = {}
    errors = []

    def fetch(name, address):
        raw = get(f'/uri?{name}') * 3
        told = [h11_request('GET', '/uri')] * 3
        try:
            results[name] = [r.body for r in h11_exchange(address, raw, told).responses]
        except BaseException as e:  # pytest.fail() in a thread: hand it to the test
            errors.append(e)

    with serve(shapes) as served:
        threads = [threading.Thread(target=fetch, args=(n, served.address)) for n in 'abcd']
        for t in threads:
            t.start()
        for t in threads:
            t.join(DEADLINE + 1)
    assert errors == []
    assert results == {n: [f'/uri?{n}'.encode()] * 3 for n in 'abcd'}


def test_h11_request_through_h11():
    """RFC 9112 section 3: a request written by h11 itself (not hand-written) is
    served, and h11 reads the answer."""
    conn = h11.Connection(h11.CLIENT)
    raw = conn.send(h11.Request(method='PUT', target='/echo', headers=[
        ('host', 'example.com'), ('transfer-encoding', 'chunked')]))
    raw += conn.send(h11.Data(data=b'from h11')) + conn.send(h11.EndOfMessage())
    with serve(shapes) as served:
        exchange = h11_exchange(served.address, raw, [h11_request('PUT', '/echo')])
    assert exchange.responses[0].body == b'from h11'
