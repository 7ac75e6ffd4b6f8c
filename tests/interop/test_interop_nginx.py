"""nginx in front of a degu server, and behind degu's client and ProxyApp.

In front (a reverse proxy, RFC 9110 section 7.6), nginx speaks HTTP/1.1 to
its upstream and keeps those connections alive (``proxy_http_version
1.1``, ``connection`` cleared, an ``upstream`` with ``keepalive``), so a
degu response that does not say where it ends stalls nginx until its read
timeout.  Behind, nginx serves a folder (``root``) and fixed answers
(``return``) to degu's ``Client`` and to ``ProxyApp``.

Each test starts its own nginx (it takes a few milliseconds) so that
nothing of one degu server outlives its test; the static nginx is shared by
the module.
"""

import hashlib
import os
import time

import pytest
from interop_helpers import (
    BIG_SIZE,
    DEADLINE,
    FAST,
    HELLO,
    Nginx,
    curl,
    nginx_proxy,
    serve,
)

from degu.applib import FilesApp, ProxyApp, Router
from degu.base import ChunkedBodyIter, ConnectionClosed
from degu.client import Client

pytestmark = pytest.mark.interop

UPSTREAMS = ['tcp', 'unix']


def family_of(upstream):
    return 'unix' if upstream == 'unix' else 'ipv4'


def upstream_app(files_dir, seen=None):
    """A degu app behind nginx: files, echo, chunked, bodiless answers."""

    def echo(session, request, api):
        body = request.body.read() if request.body is not None else b''
        digest = hashlib.sha256(body).hexdigest()
        return (200, 'OK', {'x-method': request.method}, f'{len(body)} {digest}'.encode())

    def chunked(session, request, api):
        chunks = [(None, b'chunk %d;' % i) for i in range(100)] + [(None, b'')]
        return (200, 'OK', {}, ChunkedBodyIter(chunks))

    def session_info(session, request, api):
        if seen is not None:
            seen.append((id(session), session.requests))
        return (200, 'OK', {}, b'%d' % session.requests)

    def created(session, request, api):
        return (201, 'Created', {'location': '/files/new'}, None)

    return Router({
        'files': FilesApp(files_dir),
        'echo': echo,
        'chunked': chunked,
        'session': session_info,
        'created': created,
    })


def proxied(files_dir, upstream, seen=None, unix_listen=False, locations=''):
    """A degu server with nginx in front; yields ``(served, nginx)``."""
    import contextlib

    @contextlib.contextmanager
    def run():
        with serve(upstream_app(files_dir, seen), family_of(upstream)) as served:
            (http, server) = nginx_proxy(served.address, locations)
            with Nginx(server, http, unix=unix_listen) as nginx:
                yield (served, nginx)

    return run()


# --------------------------------------------------------------------------
# nginx in front of degu


@pytest.mark.parametrize('upstream', UPSTREAMS)
def test_proxy_get_head_post(files_dir, upstream):
    """RFC 9110 sections 9.3.1, 9.3.2, 9.3.3 through a reverse proxy: GET,
    HEAD and POST (1 MiB body) all complete, well within the deadline."""
    body = os.urandom(1024 * 1024)
    with proxied(files_dir, upstream) as (served, nginx):
        with nginx.client().connect() as conn:
            start = time.monotonic()
            response = conn.get('/files/hello.txt', {})
            assert (response.status, response.body.read()) == (200, HELLO)
            response = conn.head('/files/hello.txt', {})
            assert response.status == 200 and response.body is None
            assert response.headers['content-length'] == len(HELLO)
            response = conn.post('/echo', {}, body)
            digest = hashlib.sha256(body).hexdigest()
            assert response.body.read() == f'{len(body)} {digest}'.encode()
            assert response.headers['x-method'] == 'POST'
            assert time.monotonic() - start < DEADLINE


@pytest.mark.parametrize('upstream', UPSTREAMS)
@pytest.mark.parametrize('path, status', [
    ('/files/missing', 404),
    ('/nowhere', 410),
    ('/created', 201),
])
def test_proxy_bodiless_is_fast(files_dir, upstream, path, status):
    """RFC 9112 section 6.3: nginx reads an upstream response without
    ``content-length`` until the upstream closes; degu says
    ``content-length: 0`` so a bodiless answer passes through at once."""
    with proxied(files_dir, upstream) as (served, nginx):
        result = curl(nginx.url(path), nginx.url('/files/hello.txt'))
        (first, second) = result.check()
    assert (first.status, first.body) == (status, b'')
    assert first.info['time_total'] < FAST, f'nginx waited {first.info["time_total"]} s'
    assert (second.status, second.body) == (200, HELLO)


@pytest.mark.parametrize('upstream', UPSTREAMS)
def test_proxy_chunked_and_big(files_dir, upstream):
    """RFC 9112 sections 6.1 and 7.1: a chunked response and a 5 MiB file
    pass through nginx complete and intact."""
    with open(os.path.join(files_dir, 'big.bin'), 'rb') as f:
        big = f.read()
    with proxied(files_dir, upstream) as (served, nginx):
        result = curl(nginx.url('/chunked'), nginx.url('/files/big.bin'), timeout=DEADLINE * 2)
        (chunked, whole) = result.check()
    assert chunked.body == b''.join(b'chunk %d;' % i for i in range(100))
    assert whole.headers['content-length'] == str(BIG_SIZE)
    assert whole.body == big


@pytest.mark.parametrize('upstream', UPSTREAMS)
def test_proxy_upstream_keep_alive(files_dir, upstream):
    """RFC 9112 section 9.3: nginx reuses its upstream connection; the degu
    app sees later requests arrive on the session of the first."""
    seen = []
    with proxied(files_dir, upstream, seen) as (served, nginx):
        for _ in range(3):
            (transfer,) = curl(nginx.url('/files/missing'), nginx.url('/session')).check()[1:]
            assert transfer.status == 200
    sessions = {s for (s, _) in seen}
    assert len(sessions) == 1, f'nginx opened {len(sessions)} upstream connections: {seen}'
    assert [n for (_, n) in seen] == [1, 3, 5]


@pytest.mark.parametrize('upstream', UPSTREAMS)
def test_client_over_unix_through_nginx(files_dir, upstream):
    """RFC 9112 section 3.2: nginx listening on an AF_UNIX socket answers 400
    to an HTTP/1.1 request without ``host``; degu's client sends one."""
    with proxied(files_dir, upstream, unix_listen=True) as (served, nginx):
        assert isinstance(nginx.address, str)
        with nginx.client().connect() as conn:
            response = conn.get('/files/hello.txt', {})
            assert (response.status, response.body.read()) == (200, HELLO)
            response = conn.put('/echo', {}, b'over unix')
            assert response.body.read().startswith(b'9 ')


@pytest.mark.parametrize('upstream', UPSTREAMS)
def test_client_pipelines_through_nginx(files_dir, upstream):
    """RFC 9112 section 9.3.2: nginx answers pipelined requests in order; so
    does the degu server behind it."""
    paths = ['/files/hello.txt', '/files/missing', '/chunked', '/created', '/files/digits.txt']
    with proxied(files_dir, upstream) as (served, nginx):
        with nginx.client().connect() as conn:
            for path in paths:
                conn.send_request('GET', path, {}, None)
            answers = []
            for path in paths:
                response = conn.read_response()
                body = response.body.read() if response.body is not None else None
                answers.append((response.status, body))
    assert [status for (status, _) in answers] == [200, 404, 200, 201, 200]
    assert answers[0][1] == HELLO
    assert answers[4][1] == b'0123456789' * 10


@pytest.mark.parametrize('upstream', UPSTREAMS)
def test_expect_100_through_nginx(files_dir, upstream):
    """RFC 9110 section 10.1.1: nginx sends ``100 Continue`` when it reads the
    body, so degu's client sends it at once instead of after its
    ``expect100_timeout``; a body over nginx's limit gets ``413`` without
    being sent, and the connection is closed after that answer."""
    locations = """
        location /small {
            client_max_body_size 1k;
            proxy_pass http://degu;
        }"""
    body = os.urandom(256 * 1024)
    with proxied(files_dir, upstream, locations=locations) as (served, nginx):
        with nginx.client(expect100_timeout=DEADLINE).connect() as conn:
            start = time.monotonic()
            response = conn.put('/echo', {}, body, expect100=True)
            elapsed = time.monotonic() - start
            assert response.body.read().startswith(b'%d ' % len(body))
            assert elapsed < FAST, f'the body waited {elapsed:.3f} s for 100 Continue'
        with nginx.client(expect100_timeout=DEADLINE).connect() as conn:
            start = time.monotonic()
            response = conn.put('/small', {}, body, expect100=True)
            assert response.status == 413
            if response.body is not None:
                response.body.read()
            assert time.monotonic() - start < FAST
            with pytest.raises(ConnectionClosed):
                conn.get('/files/hello.txt', {})


# --------------------------------------------------------------------------
# nginx behind degu: a static server

STATIC = """
        root {root};
        etag on;
        location = /nocontent {{ return 204; }}
        location = /teapot {{ return 418 "short and stout\\n"; }}
        location = /moved {{ return 301 /hello.txt; }}
        location = /small {{ client_max_body_size 1k; return 200 "small\\n"; }}
        location = /accept {{ client_max_body_size 10m; return 200 "accepted\\n"; }}
"""


@pytest.fixture(scope='module')
def static(files_dir):
    with Nginx(STATIC.format(root=files_dir)) as nginx:
        yield nginx


def read(response):
    return None if response.body is None else response.body.read()


def check_static_answers(conn):
    """The static nginx's 200, HEAD, 404 and 204 on *conn*; returns hello.txt's etag."""
    response = conn.get('/hello.txt', {})
    assert (response.status, read(response)) == (200, HELLO)
    etag = response.headers['etag']
    response = conn.head('/hello.txt', {})
    assert (response.status, response.body) == (200, None)
    assert response.headers['content-length'] == len(HELLO)
    response = conn.get('/missing', {})
    assert response.status == 404
    read(response)
    response = conn.get('/nocontent', {})
    assert (response.status, response.body) == (204, None)
    return etag


def test_client_against_nginx_static(static, files_dir):
    """RFC 9110 sections 9.3.1, 9.3.2, 15: degu's client reads nginx's 200,
    HEAD, 404, 204, 301, 418 and 206 answers on one connection."""
    with static.client().connect() as conn:
        check_static_answers(conn)
        response = conn.get('/moved', {})
        assert response.status == 301 and response.headers['location'].endswith('/hello.txt')
        read(response)
        response = conn.get('/teapot', {})
        assert (response.status, read(response)) == (418, b'short and stout\n')
        response = conn.get_range('/digits.txt', {}, 10, 15)
        assert (response.status, read(response)) == (206, b'01234')
        assert str(response.headers['content-range']) == 'bytes 10-14/100'


def test_client_against_nginx_304(static):
    """RFC 9110 section 13.1.2: ``if-none-match`` with nginx's etag gives a 304
    without a body, and the connection goes on."""
    with static.client().connect() as conn:
        response = conn.get('/hello.txt', {})
        read(response)
        etag = response.headers['etag']
        response = conn.get('/hello.txt', {'if-none-match': etag})
        assert (response.status, response.body) == (304, None)
        assert read(conn.get('/hello.txt', {})) == HELLO


def test_client_big_file_from_nginx(static, files_dir):
    """RFC 9112 section 6.2: a 5 MiB file read by length, intact."""
    with open(os.path.join(files_dir, 'big.bin'), 'rb') as f:
        big = f.read()
    with static.client().connect() as conn:
        response = conn.get('/big.bin', {})
        assert response.headers['content-length'] == BIG_SIZE
        data = b''.join(response.body)
    assert data == big


def test_client_pipelines_to_nginx(static):
    """RFC 9112 section 9.3.2: degu's client pipelines requests to nginx and
    reads the answers in order, each body before the next response."""
    paths = ['/hello.txt', '/missing', '/nocontent', '/digits.txt', '/hello.txt']
    with static.client().connect() as conn:
        for path in paths:
            conn.send_request('GET', path, {}, None)
        assert conn.pending == tuple(('GET', p) for p in paths)
        results = []
        for path in paths:
            response = conn.read_response()
            results.append((response.status, read(response)))
    assert [s for (s, _) in results] == [200, 404, 204, 200, 200]
    assert results[0][1] == HELLO and results[4][1] == HELLO
    assert results[3][1] == b'0123456789' * 10


def test_client_expect_100_to_nginx(static):
    """RFC 9110 section 10.1.1: a body nginx would refuse (over
    ``client_max_body_size``) gets ``413`` without being sent; one it
    accepts is answered without waiting out ``expect100_timeout``."""
    body = os.urandom(64 * 1024)
    with static.client(expect100_timeout=DEADLINE).connect() as conn:
        start = time.monotonic()
        response = conn.put('/small', {}, body, expect100=True)
        assert response.status == 413
        read(response)
        assert time.monotonic() - start < FAST
    with static.client(expect100_timeout=DEADLINE).connect() as conn:
        start = time.monotonic()
        response = conn.put('/accept', {}, body, expect100=True)
        assert (response.status, read(response)) == (200, b'accepted\n')
        assert time.monotonic() - start < FAST


def test_proxy_app_to_nginx(static):
    """RFC 9110 section 7.6: ProxyApp relays nginx's answers (200, HEAD, 404,
    204, 304, 206) to degu's client, and to curl."""
    with serve(ProxyApp(Client(static.address, timeout=DEADLINE))) as served:
        with served.client().connect() as conn:
            etag = check_static_answers(conn)
            response = conn.get('/hello.txt', {'if-none-match': etag})
            assert (response.status, response.body) == (304, None)
            response = conn.get_range('/digits.txt', {}, 0, 3)
            assert (response.status, read(response)) == (206, b'012')
        result = curl(served.url('/nocontent'), served.url('/hello.txt'), served.url('/missing'))
        (nocontent, hello, missing) = result.check()
    assert (nocontent.status, hello.status, missing.status) == (204, 200, 404)
    assert hello.body == HELLO
    assert max(t.info['time_total'] for t in result.transfers) < FAST
