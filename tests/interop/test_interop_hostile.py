"""The defences against slow and idle peers, seen by peers degu did not write.

A kept-alive connection parked in the accept loop (idle past
``PARK_AFTER``) must look to ``http.client`` like any kept-alive
connection; a ``408`` for a body that came too slowly must parse under h11
as a complete response followed by the close.
"""

import time

import pytest
from interop_helpers import h11_exchange, h11_request, serve

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
