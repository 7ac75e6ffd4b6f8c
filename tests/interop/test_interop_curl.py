"""curl against a degu server: uploads, ``Expect: 100-continue``, HTTP/1.0.

curl is the peer most people reach for first, and it is strict about
framing: it waits for the close when a response does not say where it
ends, waits one second for ``100 Continue`` before sending a large body,
and reuses a connection only when the server says it may.
"""

import hashlib
import os

import pytest
from interop_helpers import FAMILIES, FAST, curl, serve, short_tmpdir

from degu.applib import Router
from degu.base import ChunkedBodyIter

pytestmark = pytest.mark.interop

UPLOAD_SIZE = 2 * 1024 * 1024  # 2 MiB: curl adds ``expect: 100-continue`` above 1 MiB


def make_app(log):
    def echo(session, request, api):
        log.append((request.method, request.headers.get('expect')))
        body = request.body.read() if request.body is not None else b''
        return (200, 'OK', {}, f'{len(body)} {hashlib.sha256(body).hexdigest()}'.encode())

    def deny(session, request, api):  # answers without reading the body
        log.append((request.method, request.headers.get('expect')))
        return (401, 'Unauthorized', {'www-authenticate': 'Basic realm="interop"'}, None)

    def too_large(session, request, api):
        log.append((request.method, request.headers.get('expect')))
        return (413, 'Content Too Large', {}, None)

    def chunked(session, request, api):
        return (200, 'OK', {}, ChunkedBodyIter([(None, b'one '), (None, b'two'), (None, b'')]))

    def hello(session, request, api):
        return (200, 'OK', {}, b'hello %d' % session.requests)

    return Router({
        'echo': echo, 'deny': deny, 'toolarge': too_large, 'chunked': chunked, 'hello': hello,
    })


@pytest.fixture(scope='module')
def upload():
    """A 2 MiB file to upload, and its expected echo."""
    data = os.urandom(UPLOAD_SIZE)
    with short_tmpdir() as tmpdir:
        path = os.path.join(tmpdir, 'upload.bin')
        with open(path, 'wb') as f:
            f.write(data)
        yield (path, f'{len(data)} {hashlib.sha256(data).hexdigest()}'.encode())


@pytest.mark.parametrize('family', FAMILIES)
def test_large_upload_with_expect_100(upload, family):
    """RFC 9110 section 10.1.1: curl sends ``expect: 100-continue`` for a large
    body and waits up to a second for ``100 Continue``; the server sends it
    when the app reads the body, so the upload does not wait."""
    (path, echo) = upload
    log = []
    with serve(make_app(log), family) as served:
        result = curl(served.url('/echo'), served=served, args=['--data-binary', f'@{path}'])
    (transfer,) = result.check()
    assert (transfer.status, transfer.body) == (200, echo)
    assert transfer.interim == [100]
    assert log == [('POST', '100-continue')]
    assert transfer.info['time_total'] < FAST, 'curl waited for 100 Continue'


def test_forced_expect_100_small_body():
    """RFC 9110 section 10.1.1: ``expect: 100-continue`` on a small body works
    the same: ``100``, then the body, then the final answer."""
    log = []
    with serve(make_app(log)) as served:
        args = ['--data-binary', 'small body', '-H', 'Expect: 100-continue']
        (transfer,) = curl(served.url('/echo'), args=args).check()
    assert transfer.status == 200
    assert transfer.body.startswith(b'10 ')
    assert transfer.interim == [100]
    assert transfer.info['time_total'] < FAST


@pytest.mark.parametrize('path, status', [('/deny', 401), ('/toolarge', 413)])
def test_expect_100_final_answer_without_body(upload, path, status):
    """RFC 9110 section 10.1.1: an app that answers without reading the body
    gets its answer to curl at once and no ``100 Continue``, so curl never
    sends the 2 MiB body; the server then closes the connection."""
    (upload_path, _) = upload
    log = []
    with serve(make_app(log)) as served:
        args = ['--data-binary', f'@{upload_path}']
        result = curl(served.url(path), served.url('/hello'), args=args)
    (first, second) = result.check()
    assert (first.status, first.interim) == (status, [])
    assert first.info['size_upload'] == 0, 'curl sent the body'
    assert first.info['time_total'] < FAST
    assert first.headers.get('content-length') == '0'
    assert second.status == 200
    assert log[0] == ('POST', '100-continue')


def test_chunked_upload():
    """RFC 9112 section 7.1: curl's chunked upload is read whole by the app."""
    data = os.urandom(300_000)
    log = []
    with serve(make_app(log)) as served:
        args = ['--data-binary', '@-', '-H', 'Transfer-Encoding: chunked']
        (transfer,) = curl(served.url('/echo'), args=args, stdin=data).check()
    assert transfer.body == f'{len(data)} {hashlib.sha256(data).hexdigest()}'.encode()


def test_http10_chunked_app_is_close_delimited():
    """RFC 9112 section 6.1 and 6.3: to ``curl --http1.0`` a chunked app's body
    goes out without ``transfer-encoding``, ended by the close; curl gets
    all of it and opens a new connection for the next request."""
    with serve(make_app([])) as served:
        result = curl(served.url('/chunked'), served.url('/hello'), args=['--http1.0'])
    (first, second) = result.check()
    assert (first.status, first.body) == (200, b'one two')
    assert 'transfer-encoding' not in first.headers
    assert first.headers.get('connection', '').lower() == 'close'
    assert first.info['time_total'] < FAST
    assert (second.body, second.info['num_connects']) == (b'hello 0', 1)


def test_http10_keep_alive():
    """RFC 9112 section 9.3 (and RFC 1945 practice): ``curl --http1.0`` with
    ``connection: keep-alive`` gets a length-framed answer that says
    keep-alive, and reuses the connection."""
    with serve(make_app([])) as served:
        args = ['--http1.0', '-H', 'Connection: keep-alive']
        result = curl(served.url('/hello'), served.url('/hello'), args=args)
    (first, second) = result.check()
    assert first.body == b'hello 0'
    assert first.headers.get('connection', '').lower() == 'keep-alive'
    assert (second.body, second.info['num_connects']) == (b'hello 1', 0)


@pytest.mark.parametrize('family', FAMILIES)
def test_many_requests_one_connection(family):
    """RFC 9112 section 9.3: curl fetching ten URLs reuses one connection."""
    with serve(make_app([])) as served:
        urls = [served.url('/hello')] * 5 + [served.url('/chunked')] * 5
        transfers = curl(*urls, served=served).check()
    assert [t.body for t in transfers[:5]] == [b'hello %d' % i for i in range(5)]
    assert [t.body for t in transfers[5:]] == [b'one two'] * 5
    assert [t.info['num_connects'] for t in transfers] == [1] + [0] * 9


@pytest.mark.parametrize('query', [
    'filter={%22a%22:1}|x',  # what a browser's address bar sends unencoded
    'q=[1]^`\\',
])
def test_browser_query_bytes_are_served(query):
    """RFC 3986 section 3.4 is stricter, but browsers send ``{ } | ^`` and
    friends unencoded in a query; curl (``--globoff``) sends them as typed,
    and the app gets the query byte for byte."""
    seen = []

    def app(session, request, api):
        seen.append(request.query)
        return (200, 'OK', {}, None)

    with serve(app) as served:
        result = curl(served.url('/search?' + query), args=['--globoff'])
    (transfer,) = result.check()
    assert transfer.status == 200
    assert seen == [query]
