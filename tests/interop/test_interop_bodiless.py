"""Bodiless responses against curl, http.client, urllib3, requests and h11.

RFC 9112 section 6.3: a response to a request other than HEAD, with a status
other than 1xx, 204 and 304, that has neither ``content-length`` nor
``transfer-encoding`` is read until the server closes.  So every bodiless
answer of a keep-alive server must say ``content-length: 0``, or its peer
waits for the idle timeout (curl used to wait 15 s on every 404).  Each
exchange here must end within ``FAST`` seconds, and the connection must
carry another request afterwards.
"""

import os

import pytest
from interop_helpers import (
    DEADLINE,
    FAMILIES,
    FAST,
    HELLO,
    assert_framed,
    curl,
    h11_exchange,
    h11_request,
    serve,
    short_tmpdir,
)

from degu.applib import AllowedMethods, FilesApp, MethodFilter, ProxyApp, Router
from degu.client import Client

pytestmark = pytest.mark.interop


def hello(session, request, api):
    # Which request of its connection this is: 1 means the connection was reused.
    return (200, 'OK', {}, b'hello %d' % session.requests)


def created(session, request, api):
    return (201, 'Created', {'location': '/files/new.txt'}, None)


def empty(session, request, api):
    return (200, 'OK', {}, None)


def fail(session, request, api):
    raise RuntimeError('this app fails on purpose')


def no_content(session, request, api):
    return (204, 'No Content', {}, None)


@pytest.fixture(scope='module')
def dead_upstream():
    """An AF_UNIX path nothing listens on: ProxyApp's upstream is down."""
    with short_tmpdir() as tmpdir:
        yield os.path.join(tmpdir, 'nobody.sock')


@pytest.fixture
def app(files_dir, dead_upstream):
    with FilesApp(files_dir) as files:
        yield Router({
            'files': files,
            'filtered': MethodFilter(hello, AllowedMethods('GET', 'HEAD')),
            'proxy': ProxyApp(Client(dead_upstream, timeout=DEADLINE)),
            'created': created,
            'empty': empty,
            'fail': fail,
            'hello': hello,
            'nocontent': no_content,
        })


# (id, method, path, request headers, status, the connection stays open)
CASES = [
    ('files-404', 'GET', '/files/missing.txt', {}, 404, True),
    ('files-405', 'DELETE', '/files/hello.txt', {}, 405, True),
    ('files-416', 'GET', '/files/hello.txt', {'range': 'bytes=1000-2000'}, 416, True),
    ('router-410', 'GET', '/nowhere', {}, 410, True),
    ('filter-405', 'DELETE', '/filtered', {}, 405, True),
    ('proxy-502', 'GET', '/proxy/x', {}, 502, True),
    ('created-201', 'GET', '/created', {}, 201, True),
    ('none-200', 'GET', '/empty', {}, 200, True),
    ('raise-500', 'GET', '/fail', {}, 500, False),
]
PEERS = ['curl', 'http.client', 'urllib3', 'requests', 'h11']


class Answer:
    """What a peer got: the bodiless response, the follow-up ``/hello`` response."""

    def __init__(self, status, headers, body, elapsed, second):
        self.status = status
        self.headers = {k.lower(): v for (k, v) in headers.items()}
        self.body = body
        self.elapsed = elapsed
        self.second = second  # body of GET /hello sent next by the same peer


def ask_curl(served, method, path, headers):
    args = ['-X', method] + [f'-H{name}: {value}' for (name, value) in headers.items()]
    result = curl(served.url(path), served.url('/hello'), args=args, served=served)
    (first, second) = result.check()
    return Answer(
        first.status, first.headers, first.body, first.info['time_total'], second.body
    )


def ask_http_client(served, method, path, headers):
    import time

    conn = served.http_client()
    try:
        start = time.monotonic()
        conn.request(method, path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        elapsed = time.monotonic() - start
        conn.request('GET', '/hello')
        second = conn.getresponse().read()
        return Answer(response.status, dict(response.getheaders()), body, elapsed, second)
    finally:
        conn.close()


def ask_urllib3(served, method, path, headers):
    import time

    with served.urllib3_pool() as pool:
        start = time.monotonic()
        response = pool.request(method, path, headers=headers)
        elapsed = time.monotonic() - start
        second = pool.request('GET', '/hello').data
        return Answer(response.status, dict(response.headers), response.data, elapsed, second)


def ask_requests(served, method, path, headers):
    with served.requests_session() as session:
        response = session.request(method, served.url(path), headers=headers, timeout=DEADLINE)
        second = session.get(served.url('/hello'), timeout=DEADLINE).content
        return Answer(
            response.status_code,
            dict(response.headers),
            response.content,
            response.elapsed.total_seconds(),
            second,
        )


def ask_h11(served, method, path, headers):
    lines = [f'{method} {path} HTTP/1.1', 'host: example.com']
    lines += [f'{name}: {value}' for (name, value) in headers.items()]
    raw = ('\r\n'.join(lines) + '\r\n\r\n').encode()
    told = [h11_request(method, path)]
    # The follow-up goes out at once (pipelined): a body where none was
    # announced would be read by h11 as the start of the next response.
    raw += b'GET /hello HTTP/1.1\r\nhost: example.com\r\n\r\n'
    told.append(h11_request('GET', '/hello'))
    exchange = h11_exchange(served.address, raw, told)
    (first, second) = exchange.responses
    assert_framed(first)
    return Answer(first.status, first.headers, first.body, exchange.elapsed, second.body)


def ask_h11_closing(served, method, path, headers):
    raw = f'{method} {path} HTTP/1.1\r\nhost: example.com\r\n\r\n'.encode()
    exchange = h11_exchange(served.address, raw, [h11_request(method, path)], wait_close=True)
    (first,) = exchange.responses
    assert_framed(first)
    return Answer(first.status, first.headers, first.body, exchange.elapsed, None)


ASK = {
    'curl': ask_curl,
    'http.client': ask_http_client,
    'urllib3': ask_urllib3,
    'requests': ask_requests,
    'h11': ask_h11,
}


def ask(peer, served, method, path, headers, keep_alive=True):
    if peer == 'h11' and not keep_alive:
        return ask_h11_closing(served, method, path, headers)
    try:
        return ASK[peer](served, method, path, headers)
    except (TimeoutError, OSError) as e:
        pytest.fail(f'{peer}: {method} {path}: no complete answer within {DEADLINE} s: {e!r}')
    except Exception as e:  # urllib3 and requests wrap the timeout in their own errors
        if 'timed out' in str(e).lower() or 'timeout' in type(e).__name__.lower():
            pytest.fail(f'{peer}: {method} {path}: no complete answer within {DEADLINE} s: {e!r}')
        raise


@pytest.mark.parametrize('peer', PEERS)
@pytest.mark.parametrize(
    'case', CASES, ids=[c[0] for c in CASES]
)
def test_bodiless_answer(app, peer, case):
    """RFC 9112 section 6.3 and RFC 9110 section 8.6: a bodiless answer says
    ``content-length: 0``, so the peer gets it at once and can reuse the
    connection (RFC 9112 section 9.3); a 500 closes it and says so."""
    (_, method, path, headers, status, keep_alive) = case
    with serve(app) as served:
        answer = ask(peer, served, method, path, headers, keep_alive)
    assert answer.status == status
    assert answer.body == b''
    assert answer.headers.get('content-length') == '0', answer.headers
    assert 'transfer-encoding' not in answer.headers
    assert answer.elapsed < FAST, f'{peer} waited {answer.elapsed:.3f} s for a {status}'
    if keep_alive:
        assert answer.headers.get('connection', '').lower() != 'close'
        if answer.second is not None:
            assert answer.second == b'hello 1', 'the connection was not reused'
    else:
        assert answer.headers.get('connection', '').lower() == 'close'
        if answer.second is not None:
            assert answer.second == b'hello 0', 'a new connection was expected'


@pytest.mark.parametrize('peer', PEERS)
@pytest.mark.parametrize('family', FAMILIES)
def test_bodiless_404_every_family(files_dir, peer, family):
    """RFC 9112 section 6.3: a 404 with ``content-length: 0`` ends at once over
    IPv4, IPv6 and AF_UNIX alike, and the connection carries the next request."""
    app = Router({'files': FilesApp(files_dir), 'hello': hello})
    with serve(app, family) as served:
        answer = ask(peer, served, 'GET', '/files/missing.txt', {})
    assert (answer.status, answer.body) == (404, b'')
    assert answer.headers.get('content-length') == '0'
    assert answer.elapsed < FAST, f'{peer} waited {answer.elapsed:.3f} s for a 404'
    assert answer.second == b'hello 1'


@pytest.mark.parametrize('peer', PEERS)
def test_head_no_body_no_hang(files_dir, peer):
    """RFC 9110 section 9.3.2: a response to HEAD has no content, whatever its
    ``content-length`` says; the peer must not wait for one."""
    app = Router({'files': FilesApp(files_dir), 'hello': hello})
    with serve(app) as served:
        if peer == 'h11':
            raw = b'HEAD /files/hello.txt HTTP/1.1\r\nhost: example.com\r\n\r\n'
            raw += b'GET /hello HTTP/1.1\r\nhost: example.com\r\n\r\n'
            told = [h11_request('HEAD', '/files/hello.txt'), h11_request('GET', '/hello')]
            exchange = h11_exchange(served.address, raw, told)
            (first, second) = exchange.responses
            assert_framed(first, head=True)
            answer = Answer(first.status, first.headers, first.body, exchange.elapsed, second.body)
        elif peer == 'curl':
            # --head: curl writes the header section where the body would go.
            result = curl(served.url('/files/hello.txt'), args=['--head'], served=served)
            (first,) = result.check()
            assert first.body == first.raw_headers + b'\r\n\r\n'
            answer = Answer(first.status, first.headers, b'', result.elapsed, None)
        else:
            answer = ask(peer, served, 'HEAD', '/files/hello.txt', {})
    assert (answer.status, answer.body) == (200, b'')
    assert answer.headers['content-length'] == str(len(HELLO))
    assert answer.elapsed < FAST
    assert answer.second in (None, b'hello 1')


@pytest.mark.parametrize('peer', PEERS)
def test_204_no_body_no_hang(app, peer):
    """RFC 9110 section 15.3.5 and 8.6: a 204 has no content and no
    ``content-length``; the peer reads nothing after its header section."""
    with serve(app) as served:
        answer = ask(peer, served, 'GET', '/nocontent', {})
    assert (answer.status, answer.body) == (204, b'')
    assert 'content-length' not in answer.headers
    assert 'transfer-encoding' not in answer.headers
    assert answer.elapsed < FAST
    assert answer.second == b'hello 1'


@pytest.mark.parametrize('peer', PEERS)
def test_304_no_body_no_hang(app, peer):
    """RFC 9110 section 15.4.5: a 304 has no content; the peer reads nothing
    after its header section, and the connection stays usable."""
    with serve(app) as served:
        first = ask(peer, served, 'GET', '/files/hello.txt', {})
        etag = first.headers['etag']
        answer = ask(peer, served, 'GET', '/files/hello.txt', {'if-none-match': etag})
    assert (answer.status, answer.body) == (304, b'')
    assert 'transfer-encoding' not in answer.headers
    assert answer.headers.get('content-length') in (None, str(len(HELLO)))
    assert answer.elapsed < FAST
    assert answer.second == b'hello 1'
