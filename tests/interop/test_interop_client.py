"""degu's client against servers we did not write: h11 and hand-written bytes.

Each server here runs in a thread (``RawServer``) and emits one shape that
degu servers never send but the open web does: interim 1xx responses,
bodies delimited by the close, ``content-range`` with an unknown length,
chunk sizes with leading zeros, truncated bodies and resets.  Others check
what the client sends: ``host`` always, ``content-length: 0`` for an empty
POST, a streamed upload going out piece by piece.
"""

import socket
import time

import h11
import pytest
from interop_helpers import (
    DEADLINE,
    FAMILIES,
    FAST,
    Gate,
    RawServer,
    drain,
    h11_next,
    h11_read_request,
    h11_respond,
    h11_send,
    pieces,
    read_preamble,
)

from degu.base import (
    BodyIter,
    ChunkedBodyIter,
    ConnectionClosed,
    ContentRange,
    UnsupportedResponse,
)

pytestmark = pytest.mark.interop


def read_all(body):
    """Read a response body to its end, piece by piece (any framing)."""
    out = b''
    while True:
        data = body.read(65536)
        if not data:
            return out
        out += data


# --------------------------------------------------------------------------
# Interim responses (RFC 9110 section 15.2)


def interim_server(status, count=1):
    def handler(sock, i):
        conn = h11.Connection(h11.SERVER)
        (request, _) = h11_read_request(conn, sock)
        for _ in range(count):
            fields = [('link', '</style.css>; rel=preload; as=style')] if status == 103 else []
            h11_send(conn, sock, h11.InformationalResponse(status_code=status, headers=fields))
        h11_respond(conn, sock, 200, body=b'final for ' + request.target)
        (request, _) = h11_read_request(conn, sock)
        h11_respond(conn, sock, 200, body=b'next for ' + request.target)
        h11_read_request(conn, sock)  # the client closes

    return handler


@pytest.mark.parametrize('status', [103, 102])
def test_interim_responses_skipped(status):
    """RFC 9110 section 15.2: a client must be able to parse one or more 1xx
    responses before the final one, and a user agent may ignore them; the
    caller gets the final 200, and the next request gets its own answer."""
    with RawServer(interim_server(status, count=2)) as server:
        with server.client().connect() as conn:
            response = conn.get('/first', {})
            assert response.status == 200
            assert response.body.read() == b'final for /first'
            response = conn.get('/second', {})
            assert (response.status, response.body.read()) == (200, b'next for /second')


def test_interim_response_after_100_continue():
    """RFC 9110 sections 10.1.1 and 15.2: with ``expect: 100-continue`` the
    client sends the body after ``100``, and skips a 103 before the final
    response."""

    def handler(sock, i):
        conn = h11.Connection(h11.SERVER)
        ev = h11_next(conn, sock)
        assert type(ev) is h11.Request and conn.they_are_waiting_for_100_continue
        h11_send(conn, sock, h11.InformationalResponse(status_code=100, headers=[]))
        body = b''
        while type(ev := h11_next(conn, sock)) is not h11.EndOfMessage:
            body += ev.data
        h11_send(conn, sock, h11.InformationalResponse(status_code=103, headers=[
            ('link', '</a.js>; rel=preload')]))
        h11_respond(conn, sock, 201, body=b'got ' + body)
        h11_read_request(conn, sock)

    with RawServer(handler) as server:
        with server.client().connect() as conn:
            response = conn.put('/', {}, b'the body', expect100=True)
            assert (response.status, response.body.read()) == (201, b'got the body')


def test_101_is_unsupported():
    """RFC 9110 section 15.2.2: ``101 Switching Protocols`` ends HTTP/1.1 on the
    connection; the client refuses it (``UnsupportedResponse``) and closes."""

    def handler(sock, i):
        read_preamble(sock)
        sock.sendall(b'HTTP/1.1 101 Switching Protocols\r\nupgrade: foo\r\n'
                     b'connection: upgrade\r\n\r\n')
        drain(sock)

    with RawServer(handler) as server:
        conn = server.client().connect()
        with pytest.raises(UnsupportedResponse):
            conn.get('/', {})
        assert conn.closed


def test_endless_interim_responses_refused():
    """RFC 9110 section 15.2: interim responses are bounded by the client; a
    server that sends them forever gets the connection closed, not a hang."""

    def handler(sock, i):
        read_preamble(sock)
        try:
            for _ in range(1000):
                sock.sendall(b'HTTP/1.1 103 Early Hints\r\nlink: </x>; rel=preload\r\n\r\n')
        except OSError:
            pass

    with RawServer(handler) as server:
        conn = server.client().connect()
        start = time.monotonic()
        with pytest.raises((ValueError, ConnectionError)):
            conn.get('/', {})
        assert time.monotonic() - start < FAST
        assert conn.closed


# --------------------------------------------------------------------------
# Bodies delimited by the close (RFC 9112 section 6.3, rule 8)

UNFRAMED = b'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n'
UNFRAMED_BODY = b'read me until the server closes ' * 1000


def unframed_server(requests=1):
    def handler(sock, i):
        buf = b''
        for _ in range(requests):  # read every request: no reset on close
            (_, buf) = read_preamble(sock, buf)
        sock.sendall(UNFRAMED + UNFRAMED_BODY)
        sock.shutdown(socket.SHUT_WR)
        drain(sock)

    return handler


def test_unframed_http11_response_read_to_close():
    """RFC 9112 section 6.3 (rule 8): a response with neither
    ``content-length`` nor ``transfer-encoding`` is read until the server
    closes, in HTTP/1.1 too; the connection is closed afterwards."""
    with RawServer(unframed_server()) as server:
        conn = server.client().connect()
        response = conn.get('/', {})
        assert response.status == 200
        assert response.body.content_length is None
        assert read_all(response.body) == UNFRAMED_BODY
        assert conn.closed


def test_unframed_response_fails_pipelined_request():
    """RFC 9112 sections 6.3 and 9.3.2: after a close-delimited response
    nothing more comes on the connection, so a request pipelined behind it
    is reported unanswered."""
    with RawServer(unframed_server(requests=2)) as server:
        conn = server.client().connect()
        conn.send_request('GET', '/one', {}, None)
        conn.send_request('GET', '/two', {}, None)
        response = conn.read_response()
        assert read_all(response.body) == UNFRAMED_BODY
        with pytest.raises(ConnectionClosed) as info:
            conn.read_response()
        assert info.value.unanswered == (('GET', '/two'),)
        assert conn.closed


def test_http10_response_read_to_close():
    """RFC 9112 section 6.3: an HTTP/1.0 response without ``content-length``
    is delimited by the close."""

    def handler(sock, i):
        read_preamble(sock)
        sock.sendall(b'HTTP/1.0 200 OK\r\n\r\nold style')
        sock.shutdown(socket.SHUT_WR)
        drain(sock)

    with RawServer(handler) as server:
        conn = server.client().connect()
        response = conn.get('/', {})
        assert read_all(response.body) == b'old style'
        assert conn.closed


# --------------------------------------------------------------------------
# Truncation: never a short body returned as complete (RFC 9112 section 8)


def test_reset_after_early_413_raises():
    """RFC 9112 section 8: a close-delimited body is complete only on a clean
    close.  A server that answers ``413`` and closes without reading the
    upload resets the connection; the client must raise ``ConnectionClosed``,
    never return the part of the body that arrived."""

    def handler(sock, i):
        read_preamble(sock)
        head = b'HTTP/1.1 413 Content Too Large\r\nconnection: close\r\n\r\n'
        data = head + b'x' * 300_000
        sock.setblocking(False)
        sent = 0
        try:
            while sent < len(data):
                sent += sock.send(data[sent:])
        except BlockingIOError:
            pass
        # Closing with the upload unread makes the kernel send a reset.

    with RawServer(handler) as server:
        conn = server.client().connect()
        with pytest.raises(ConnectionClosed):
            response = conn.put('/upload', {}, b'u' * (8 * 1024 * 1024))
            assert response.status == 413
            body = read_all(response.body)
            pytest.fail(f'a body cut by a reset was returned: {len(body)} bytes')


@pytest.mark.parametrize(
    'head, partial',
    [
        (b'HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n', b'x' * 500),
        (b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n', b'3e8\r\n' + b'x' * 500),
        (b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n', b'5\r\nhello\r\n'),
    ],
    ids=['content-length', 'inside-chunk', 'before-last-chunk'],
)
def test_body_cut_short_raises(head, partial):
    """RFC 9112 section 8: a message that ends before its framing says it does
    is incomplete; the client raises ``ConnectionClosed``."""

    def handler(sock, i):
        read_preamble(sock)
        sock.sendall(head + partial)
        sock.shutdown(socket.SHUT_WR)
        drain(sock)

    with RawServer(handler) as server:
        conn = server.client().connect()
        response = conn.get('/', {})
        with pytest.raises(ConnectionClosed):
            read_all(response.body)
        assert conn.closed


# --------------------------------------------------------------------------
# Chunks and ranges from other servers


def test_chunk_sizes_with_leading_zeros():
    """RFC 9112 section 7.1: ``chunk-size = 1*HEXDIG``: ``005`` and ``0A`` are
    valid sizes in a response."""

    def handler(sock, i):
        read_preamble(sock)
        sock.sendall(b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n'
                     b'005\r\nhello\r\n0A\r\n0123456789\r\n00\r\n\r\n')
        drain(sock)

    with RawServer(handler) as server:
        with server.client().connect() as conn:
            response = conn.get('/', {})
            assert response.body.read() == b'hello0123456789'


def range_server(sock, i):
    conn = h11.Connection(h11.SERVER)
    h11_read_request(conn, sock)
    h11_respond(conn, sock, 206, [('content-range', 'bytes 0-4/*')], b'hello')
    h11_read_request(conn, sock)
    h11_respond(conn, sock, 416, [('content-range', 'bytes */5000')])
    h11_read_request(conn, sock)


def test_content_range_unknown_length():
    """RFC 9110 section 14.4: ``content-range: bytes 0-4/*`` (complete length
    unknown) and ``bytes */5000`` (on a 416) are valid and accepted."""
    with RawServer(range_server) as server:
        with server.client().connect() as conn:
            response = conn.get_range('/', {}, 0, 5)
            assert response.status == 206
            assert response.body.read() == b'hello'
            content_range = response.headers['content-range']
            assert str(content_range) == 'bytes 0-4/*'
            if isinstance(content_range, ContentRange):
                assert (content_range.start, content_range.stop) == (0, 5)
                assert content_range.total is None
            response = conn.get_range('/', {}, 9000, 9010)
            assert response.status == 416
            assert str(response.headers['content-range']) == 'bytes */5000'
            assert response.body is None or response.body.read() == b''


# --------------------------------------------------------------------------
# Streaming both ways (RFC 9112 section 7)


@pytest.mark.parametrize('framing', ['chunked', 'length'])
def test_client_reads_slow_stream(framing):
    """RFC 9112 section 7: a response body is a stream; the client hands each
    piece to the caller as it arrives, before the server sends the next."""
    gate = Gate(pieces())

    def handler(sock, i):
        conn = h11.Connection(h11.SERVER)
        h11_read_request(conn, sock)
        if framing == 'chunked':
            fields = [('transfer-encoding', 'chunked')]
        else:
            fields = [('content-length', str(gate.length))]
        h11_send(conn, sock, h11.Response(status_code=200, headers=fields))
        for piece in gate:
            h11_send(conn, sock, h11.Data(data=piece))
        h11_send(conn, sock, h11.EndOfMessage())
        h11_read_request(conn, sock)

    with RawServer(handler) as server:
        with server.client().connect() as conn:
            response = conn.get('/', {})
            for (i, piece) in enumerate(gate.pieces):
                if framing == 'chunked':
                    (_, data) = response.body.readchunk()
                else:
                    data = response.body.read(len(piece))
                assert data == piece
                gate.seen(i)
            assert response.body.read() == b''
    gate.check('degu client reading')


@pytest.mark.parametrize('kind', ['ChunkedBodyIter', 'BodyIter'])
def test_client_uploads_slow_stream(kind):
    """RFC 9112 section 7: a streamed request body goes out as it is produced:
    the server receives each piece before the source is asked for the next."""
    gate = Gate(pieces())

    def handler(sock, i):
        conn = h11.Connection(h11.SERVER)
        received = gate.h11_receive(conn, sock)
        h11_respond(conn, sock, 200, body=b'%d' % len(received))
        h11_read_request(conn, sock)

    if kind == 'ChunkedBodyIter':
        body = ChunkedBodyIter(gate.chunks())
    else:
        body = BodyIter(iter(gate), gate.length)
    with RawServer(handler) as server:
        with server.client().connect() as conn:
            response = conn.put('/', {}, body)
            assert response.body.read() == b'%d' % gate.length
    gate.check(f'degu client uploading a {kind}')


# --------------------------------------------------------------------------
# What the client sends


@pytest.mark.parametrize('family', FAMILIES)
def test_client_always_sends_host(family):
    """RFC 9112 section 3.2: a client must send ``host`` in every HTTP/1.1
    request; over AF_UNIX, where there is no authority, it sends one a
    server accepts (``localhost`` by default).  h11, a strict server, reads
    the request."""
    hosts = []

    def handler(sock, i):
        conn = h11.Connection(h11.SERVER)
        (request, _) = h11_read_request(conn, sock)
        hosts.append(dict(request.headers).get(b'host'))
        h11_respond(conn, sock, 200, body=b'ok')
        h11_read_request(conn, sock)

    with RawServer(handler, family=family) as server:
        with server.client().connect() as conn:
            assert conn.get('/', {}).body.read() == b'ok'
    address = server.address
    if family == 'unix':
        assert hosts == [b'localhost']
    elif family == 'ipv6':
        assert hosts == [f'[::1]:{address[1]}'.encode()]
    else:
        assert hosts == [f'127.0.0.1:{address[1]}'.encode()]


def test_client_host_option_over_unix():
    """RFC 9112 section 3.2: the ``host`` option sets the value over AF_UNIX."""
    hosts = []

    def handler(sock, i):
        conn = h11.Connection(h11.SERVER)
        (request, _) = h11_read_request(conn, sock)
        hosts.append(dict(request.headers).get(b'host'))
        h11_respond(conn, sock, 204)
        h11_read_request(conn, sock)

    with RawServer(handler, family='unix') as server:
        with server.client(host='api.internal').connect() as conn:
            assert conn.get('/', {}).status == 204
    assert hosts == [b'api.internal']


def test_empty_bodies_say_content_length_0():
    """RFC 9110 section 8.6: a user agent should send ``content-length`` in a
    request whose method defines a meaning for content (POST, PUT, PATCH)
    even when it is empty, and none for GET, HEAD and DELETE without one."""
    seen = []

    def handler(sock, i):
        conn = h11.Connection(h11.SERVER)
        while True:
            (request, body) = h11_read_request(conn, sock)
            if request is None:
                return
            fields = dict(request.headers)
            seen.append((request.method.decode(), fields.get(b'content-length'),
                         fields.get(b'transfer-encoding'), body))
            h11_respond(conn, sock, 200, body=b'' if request.method == b'HEAD' else b'ok')

    with RawServer(handler) as server:
        with server.client().connect() as conn:
            for method in ('POST', 'PUT', 'PATCH', 'GET', 'HEAD', 'DELETE'):
                response = conn.request(method, '/', {}, None)
                if response.body is not None:
                    response.body.read()
    assert seen == [
        ('POST', b'0', None, b''),
        ('PUT', b'0', None, b''),
        ('PATCH', b'0', None, b''),
        ('GET', None, None, b''),
        ('HEAD', None, None, b''),
        ('DELETE', None, None, b''),
    ]


def test_h11_server_keep_alive_many_requests():
    """RFC 9112 section 9.3: the client reuses one connection to an h11 server
    for request after request, with bodies of every framing."""

    def handler(sock, i):
        conn = h11.Connection(h11.SERVER)
        while True:
            (request, body) = h11_read_request(conn, sock)
            if request is None:
                return
            if request.target == b'/chunked':
                h11_send(conn, sock, h11.Response(status_code=200, headers=[
                    ('transfer-encoding', 'chunked')]))
                h11_send(conn, sock, h11.Data(data=b'chunk'), h11.EndOfMessage())
            else:
                h11_respond(conn, sock, 200, body=b'echo ' + body)

    with RawServer(handler) as server:
        with server.client().connect() as conn:
            start = time.monotonic()
            for i in range(5):
                assert conn.get('/chunked', {}).body.read() == b'chunk'
                assert conn.put('/', {}, b'%d' % i).body.read() == b'echo %d' % i
                body = ChunkedBodyIter([(None, b'a'), (None, b'b'), (None, b'')])
                assert conn.post('/', {}, body).body.read() == b'echo ab'
            assert time.monotonic() - start < DEADLINE
