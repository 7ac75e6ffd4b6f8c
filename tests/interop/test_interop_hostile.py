"""The defences against slow and idle peers, seen by peers degu did not write.

A kept-alive connection parked in the accept loop (idle past
``PARK_AFTER``) must look to ``http.client`` like any kept-alive
connection; a ``408`` for a body that came too slowly must parse under h11
as a complete response followed by the close.  With the TLS handshake in
the accept loop, curl sending plain HTTP to a TLS port reads a ``400`` and
http.client reads a ``503`` inside TLS when every thread is busy; a
request sent while the server shuts down is answered.
"""

import time

import pytest
from interop_helpers import curl, h11_exchange, h11_request, serve

import degu.server

pytestmark = pytest.mark.interop


def counting(session, request, api):
    if request.body is not None:
        request.body.read()
    session.store['n'] = session.store.get('n', 0) + 1
    return (200, 'OK', {'content-type': 'text/plain'}, b'%d' % session.store['n'])


@pytest.mark.parametrize('family', ['ipv4', 'unix'])
def test_http_client_keeps_a_parked_connection(family, monkeypatch):
    monkeypatch.setattr(degu.server, 'PARK_AFTER', 0.1)
    with serve(counting, family) as served:
        conn = served.http_client()
        try:
            for n in (1, 2, 3):
                conn.request('GET', '/')
                response = conn.getresponse()
                assert (response.status, response.read()) == (200, b'%d' % n)
                if n == 1:
                    sock = conn.sock
                time.sleep(0.3)  # idle past PARK_AFTER: parked, then resumed
            assert conn.sock is sock  # one connection, one session throughout
        finally:
            conn.close()


def test_408_for_a_slow_body_parses_under_h11():
    head = b'PUT / HTTP/1.1\r\nhost: example.com\r\ncontent-length: 200\r\n\r\n'
    # (h11 is only told what was sent, to parse the answer: a body it can end)
    told = [h11_request('PUT', '/', [('transfer-encoding', 'chunked')])]
    with serve(counting, timeout=1, transfer_timeout=0.3, min_rate=1000) as served:
        exchange = h11_exchange(served.address, head + b'x' * 10, told, wait_close=True)
    [response] = exchange.responses
    assert response.status == 408
    assert response.headers['connection'] == 'close'
    assert exchange.closed


def echo_length(session, request, api):
    total = 0
    if request.body is not None:
        if request.body.chunked:
            for (_, data) in request.body:
                total += len(data)
        else:
            total = len(request.body.read())
    return (200, 'OK', {'content-type': 'text/plain'}, b'%d' % total)


@pytest.mark.parametrize('family', ['ipv4', 'unix'])
def test_http_client_uploads_a_body_that_comes_slowly(family):
    # http.client sends an iterable body chunk-encoded, each piece as it
    # comes, after the preamble: the body is not at hand when the request is
    # read, the connection waits in the accept loop, and the request is
    # served when its first chunk came; again on the kept-alive connection.
    def pieces():
        for _ in range(3):
            time.sleep(0.15)  # longer than the server's BODY_WAIT
            yield b'x' * 1000

    with serve(echo_length, family) as served:
        conn = served.http_client()
        try:
            for _ in range(2):
                conn.request('PUT', '/', body=pieces(), encode_chunked=True)
                response = conn.getresponse()
                assert (response.status, response.read()) == (200, b'3000')
        finally:
            conn.close()


def test_curl_sending_plain_http_to_a_tls_port_gets_400(pki):
    # OpenSSL recognizes an HTTP request where a ClientHello belongs: curl
    # gets a plaintext 400 it can show its user, not a reset.
    from degu.misc import TempSSLServer

    with TempSSLServer(pki.anonymous_server_sslconfig, ('127.0.0.1', 0), counting,
                       thread=True, timeout=5) as server:
        (host, port) = server.address
        [transfer] = curl(f'http://{host}:{port}/').check()
    assert transfer.status == 400
    assert (transfer.headers['connection'], transfer.body) == ('close', b'')


def test_http_client_gets_a_503_inside_tls_when_every_thread_is_busy(pki):
    # The handshake is done in the accept loop; the request that follows
    # finds the one thread busy: http.client reads a 503 over TLS.
    import http.client
    import ssl
    import threading

    from degu.misc import TempSSLServer

    release = threading.Event()

    def app(session, request, api):
        if request.uri == '/block':
            release.wait(10)
        return (200, 'OK', {}, b'ok')

    ctx = ssl.create_default_context(cafile=pki.path(pki.server_ca_id, 'ca'))
    ctx.check_hostname = False
    with TempSSLServer(pki.anonymous_server_sslconfig, ('127.0.0.1', 0), app, thread=True,
                       timeout=5, max_connections=1) as server:
        waiting = http.client.HTTPSConnection(*server.address, timeout=10, context=ctx)
        busy = http.client.HTTPSConnection(*server.address, timeout=10, context=ctx)
        try:
            waiting.connect()  # the handshake, no request yet: no thread
            busy.request('GET', '/block')
            time.sleep(0.3)  # the one thread is in the app
            waiting.request('GET', '/')
            response = waiting.getresponse()
            assert (response.status, response.getheader('retry-after')) == (503, '1')
            assert response.read() == b''
            release.set()
            assert busy.getresponse().read() == b'ok'
        finally:
            release.set()
            waiting.close()
            busy.close()


def test_http_client_served_while_the_server_shuts_down():
    # Accepted before shutdown() but its request sent after: served, with
    # connection: close, as http.client reads it.
    import http.client
    import threading

    from degu.server import Server

    server = Server(('127.0.0.1', 0), counting)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    conn = http.client.HTTPConnection(*server.address, timeout=10)
    try:
        conn.connect()
        time.sleep(0.2)  # accepted, waiting in the accept loop for its request
        stopper = threading.Thread(target=server.shutdown, args=(5,))
        stopper.start()
        time.sleep(0.2)
        conn.request('GET', '/')
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b'1')
        assert response.getheader('connection') == 'close'
        stopper.join(10)
        thread.join(10)
        assert not thread.is_alive()
    finally:
        conn.close()
        server.shutdown(1)
