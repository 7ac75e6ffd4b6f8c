"""Streaming: a body produced piece by piece reaches the peer piece by piece.

RFC 9112 section 7 makes chunked coding a way to send "a stream of
content of unknown size", and a length-framed body is no different on the
wire: a server that buffers an iterator's output until it ends turns a
live feed (server-sent events, progress, a proxied download) into one late
blob.  Each source here is a ``Gate``: piece *i* + 1 is produced only once
the peer has piece *i* in hand, or after ``GAP`` seconds if it never comes;
the test then says which piece came late.  The peers are curl -N,
http.client, urllib3, nginx with ``proxy_buffering off``, Flask under
``degu.wsgi.WSGIApp``, TLS through curl, and ProxyApp in both directions.
"""

import time

import h11
import pytest
from interop_helpers import (
    DEADLINE,
    FAMILIES,
    FAST,
    Gate,
    Nginx,
    RawServer,
    curl,
    curl_stream,
    h11_read_request,
    h11_respond,
    h11_send,
    nginx_proxy,
    pieces,
    serve,
)

from degu.applib import ProxyApp
from degu.base import ChunkedBodyIter
from degu.client import Client

pytestmark = pytest.mark.interop


def streaming_app(gate):
    def app(session, request, api):
        headers = {'content-type': 'text/plain'}
        if request.path == ['chunked']:
            return (200, 'OK', headers, api.ChunkedBodyIter(gate.chunks()))
        if request.path == ['length']:
            return (200, 'OK', headers, api.BodyIter(iter(gate), gate.length))
        return (404, 'Not Found', {}, None)

    return app


def follow(gate, read):
    """Call ``read()`` for more bytes, marking each piece seen as it completes."""
    data = b''
    seen = 0
    deadline = time.monotonic() + DEADLINE + gate.gap * len(gate.pieces)
    while seen < len(gate.pieces) and time.monotonic() < deadline:
        more = read()
        if not more:
            break
        data += more
        while seen < len(gate.pieces) and b''.join(gate.pieces[: seen + 1]) in data:
            gate.seen(seen)
            seen += 1
    return data


def follow_curl(gate, reader):
    for (i, piece) in enumerate(gate.pieces):
        if reader.read_until(piece, DEADLINE + gate.gap) is None:
            break
        gate.seen(i)
    reader.read_to_eof()
    return reader.data


ROUTES = ['chunked', 'length']


@pytest.mark.parametrize('route', ROUTES)
@pytest.mark.parametrize('family', FAMILIES)
def test_curl_streaming(route, family):
    """RFC 9112 section 7: each piece of an iterator body reaches ``curl -N``
    before the source is asked for the next."""
    gate = Gate(pieces())
    with serve(streaming_app(gate), family) as served:
        with curl_stream(served.url(f'/{route}'), served=served) as reader:
            data = follow_curl(gate, reader)
    gate.check(f'curl -N, {route}, {family}')
    assert data == b''.join(gate.pieces)


@pytest.mark.parametrize('route', ROUTES)
def test_http_client_streaming(route):
    """RFC 9112 section 7: ``http.client``'s ``read1()`` gets each piece as the
    server produces it."""
    gate = Gate(pieces())
    with serve(streaming_app(gate)) as served:
        conn = served.http_client()
        try:
            conn.request('GET', f'/{route}')
            response = conn.getresponse()
            data = follow(gate, lambda: response.read1(65536))
            assert response.read() == b''
        finally:
            conn.close()
    gate.check(f'http.client, {route}')
    assert data == b''.join(gate.pieces)


@pytest.mark.parametrize('route', ROUTES)
def test_urllib3_streaming(route):
    """RFC 9112 section 7: urllib3 with ``preload_content=False`` streams each
    piece as the server produces it."""
    gate = Gate(pieces())
    with serve(streaming_app(gate)) as served:
        with served.urllib3_pool() as pool:
            response = pool.request('GET', f'/{route}', preload_content=False)
            stream = response.stream(len(gate.pieces[0]))
            data = follow(gate, lambda: next(stream, b''))
            response.release_conn()
    gate.check(f'urllib3, {route}')
    assert data == b''.join(gate.pieces)


@pytest.mark.parametrize('route', ROUTES)
@pytest.mark.parametrize('upstream', ['tcp', 'unix'])
def test_nginx_streaming(route, upstream):
    """RFC 9112 section 7 and RFC 9110 section 7.6: through nginx with
    ``proxy_buffering off`` each piece reaches curl before the next is made."""
    gate = Gate(pieces())
    family = 'unix' if upstream == 'unix' else 'ipv4'
    with serve(streaming_app(gate), family) as served:
        (http, server) = nginx_proxy(served.address)
        with Nginx(server, http) as nginx:
            with curl_stream(nginx.url(f'/{route}')) as reader:
                data = follow_curl(gate, reader)
    gate.check(f'curl -N through nginx, {route}, {upstream}')
    assert data == b''.join(gate.pieces)


@pytest.fixture
def tls_server(pki):
    """``(TempSSLServer, curl arguments, base URL)`` for a streaming app over TLS.

    curl checks the certificate against the TempPKI server CA; its name is
    the certificate's common name (the server id), resolved to 127.0.0.1.
    """
    from degu.misc import TempSSLServer

    gate = Gate(pieces())
    host = pki.server_id
    cacert = pki.path(pki.server_ca_id, 'ca')
    with TempSSLServer(pki.anonymous_server_sslconfig, ('127.0.0.1', 0),
                       streaming_app(gate), thread=True, timeout=5) as server:
        port = server.address[1]
        args = ['--cacert', cacert, '--resolve', f'{host}:{port}:127.0.0.1']
        yield (gate, args, f'https://{host}:{port}')


def test_tls_bodiless_404(tls_server):
    """RFC 9112 section 6.3 over TLS: a bodiless 404 ends at once
    (``content-length: 0``) and the TLS connection is reused."""
    (_, args, base) = tls_server
    (first, second) = curl(f'{base}/missing', f'{base}/missing', args=args).check()
    assert (first.status, first.body) == (404, b'')
    assert first.headers.get('content-length') == '0'
    assert first.info['time_total'] < FAST
    assert (second.status, second.info['num_connects']) == (404, 0)


def test_tls_streaming(tls_server):
    """RFC 9112 section 7 over TLS: each piece goes out (as its own TLS
    record) when it is produced."""
    (gate, args, base) = tls_server
    with curl_stream(f'{base}/chunked', args=args) as reader:
        data = follow_curl(gate, reader)
    gate.check('curl -N over TLS')
    assert data == b''.join(gate.pieces)


def test_wsgi_flask_event_stream():
    """RFC 9112 section 7: a Flask app streaming server-sent events through
    ``degu.wsgi.WSGIApp``: each event reaches curl -N before the next is
    produced (PEP 3333: the server must not delay a yielded block)."""
    flask = pytest.importorskip('flask')
    from degu.wsgi import WSGIApp

    events = [f'data: event {i}\n\n'.encode() for i in range(3)]
    gate = Gate(events)
    web = flask.Flask(__name__)

    @web.route('/events')
    def stream():
        return flask.Response(iter(gate), mimetype='text/event-stream')

    with serve(WSGIApp(web)) as served:
        with curl_stream(served.url('/events')) as reader:
            data = follow_curl(gate, reader)
    gate.check('curl -N, Flask under WSGIApp')
    assert data == b''.join(events)


def test_proxy_app_streams_download():
    """RFC 9110 section 7.6 and RFC 9112 section 7: ProxyApp relays an
    upstream's chunked body as it arrives, not once it ended."""
    gate = Gate(pieces())

    def upstream(sock, i):
        conn = h11.Connection(h11.SERVER)
        h11_read_request(conn, sock)
        h11_send(conn, sock, h11.Response(status_code=200, headers=[
            ('transfer-encoding', 'chunked')]))
        for piece in gate:
            h11_send(conn, sock, h11.Data(data=piece))
        h11_send(conn, sock, h11.EndOfMessage())
        h11_read_request(conn, sock)

    with RawServer(upstream) as raw:
        with serve(ProxyApp(Client(raw.address, timeout=DEADLINE))) as served:
            with curl_stream(served.url('/feed')) as reader:
                data = follow_curl(gate, reader)
    gate.check('curl -N through ProxyApp')
    assert data == b''.join(gate.pieces)


def test_proxy_app_streams_upload():
    """RFC 9110 section 7.6 and RFC 9112 section 7: ProxyApp relays a chunked
    request body to the upstream as it arrives: the upstream (h11) has each
    piece before degu's client produces the next."""
    gate = Gate(pieces())

    def upstream(sock, i):
        conn = h11.Connection(h11.SERVER)
        received = gate.h11_receive(conn, sock)
        h11_respond(conn, sock, 200, body=received)
        h11_read_request(conn, sock)

    with RawServer(upstream) as raw:
        with serve(ProxyApp(Client(raw.address, timeout=DEADLINE))) as served:
            with served.client(timeout=DEADLINE + 2).connect() as conn:
                response = conn.put('/upload', {}, ChunkedBodyIter(gate.chunks()))
                assert response.body.read() == b''.join(gate.pieces)
    gate.check('degu client -> ProxyApp -> h11 upstream')
