"""Tests for degu.applib: AllowedMethods, MethodFilter, Router, ProxyApp, FilesApp."""

import email.utils
import hashlib
import io
import json
import os
import socket
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from degu import applib
from degu.applib import AllowedMethods, FilesApp, MethodFilter, ProxyApp, Router
from degu.base import (
    Body,
    ChunkedBody,
    ConnectionClosed,
    EmptyPreambleError,
    Range,
    Session,
    api,
)
from degu.client import Client
from degu.misc import TempServer, mkreq
from degu.rgi import Validator

METHODS = ('GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS')


def hello(session, request, api):
    return (200, 'OK', {}, b'hello')


def named(name):
    def app(session, request, api):
        return (200, 'OK', {'x-app': name, 'x-mount': '/'.join(request.mount)}, None)

    app.__name__ = name
    return app


# --------------------------------------------------------------------------
# AllowedMethods, MethodFilter


def test_allowed_methods():
    allowed = AllowedMethods(*METHODS)
    assert allowed.methods == METHODS
    assert repr(AllowedMethods()) == 'AllowedMethods()'
    assert repr(AllowedMethods('PUT')) == "AllowedMethods('PUT')"
    assert repr(AllowedMethods('GET', 'HEAD')) == "AllowedMethods('GET', 'HEAD')"
    for m in METHODS:
        assert allowed.isallowed(m) is True
        assert AllowedMethods().isallowed(m) is False
    assert allowed.isallowed('get') is False
    for bad in ('get', 'TRACE', 'CONNECT', 'FOO', ''):
        with pytest.raises(ValueError) as e:
            AllowedMethods('GET', bad)
        assert str(e.value) == f'bad method: {bad!r}'
    with pytest.raises(TypeError) as e:
        AllowedMethods(b'GET')
    assert str(e.value) == "method: need a <class 'str'>; got a <class 'bytes'>: b'GET'"
    f = AllowedMethods('GET')(hello)
    assert type(f) is MethodFilter
    assert f.app is hello and f.allowed_methods.methods == ('GET',)


def test_method_filter():
    allowed = AllowedMethods('GET', 'PUT')
    with pytest.raises(TypeError) as e:
        MethodFilter('nope', allowed)
    assert str(e.value) == "app not callable: 'nope'"
    with pytest.raises(TypeError) as e:
        MethodFilter(hello, ('GET',))
    assert str(e.value) == (
        "allowed_methods: need a <class 'degu.applib.AllowedMethods'>; "
        "got a <class 'tuple'>: ('GET',)"
    )
    f = MethodFilter(hello, allowed)
    assert repr(f) == f"MethodFilter({hello!r}, AllowedMethods('GET', 'PUT'))"
    for m in METHODS:
        got = f(None, mkreq(m, '/'), api)
        if m in ('GET', 'PUT'):
            assert got == (200, 'OK', {}, b'hello')
        else:
            assert got == (405, 'Method Not Allowed', {'allow': 'GET, PUT'}, None)
    assert MethodFilter(hello, AllowedMethods())(None, mkreq('GET', '/'), api) == (
        405, 'Method Not Allowed', {'allow': ''}, None
    )


# --------------------------------------------------------------------------
# Router

ROUTER_ERRORS = [
    ([], TypeError, "appmap: need a <class 'dict'>; got a <class 'list'>: []"),
    ({b'a': hello}, TypeError,
     "appmap key: need a (<class 'str'>, <class 'NoneType'>); got a <class 'bytes'>: b'a'"),
    ({'a': {1: hello}}, TypeError,
     "appmap key: need a (<class 'str'>, <class 'NoneType'>); got a <class 'int'>: 1"),
    ({'caf\xe9': hello}, ValueError, "appmap key: need ASCII without a slash; got 'café'"),
    ({'a/b': hello}, ValueError, "appmap key: need ASCII without a slash; got 'a/b'"),
    ({'bar': 'x'}, TypeError, "appmap['bar']: value not callable: 'x'"),
    ({'a': {None: 17}}, TypeError, "appmap['a'][None]: value not callable: 17"),
]


@pytest.mark.parametrize('appmap, exc_type, message', ROUTER_ERRORS)
def test_router_errors(appmap, exc_type, message):
    with pytest.raises(exc_type) as e:
        Router(appmap)
    assert str(e.value) == message


def nested(depth):
    appmap = {'x': hello}
    for _ in range(depth - 1):
        appmap = {'x': appmap}
    return appmap


def test_router_depth():
    assert Router(nested(10)).appmap == nested(10)
    with pytest.raises(ValueError) as e:
        Router(nested(11))
    assert str(e.value) == 'Router: max appmap depth 10 exceeded'
    cycle = {}
    cycle['loop'] = cycle
    with pytest.raises(ValueError) as e:
        Router(cycle)
    assert str(e.value) == 'Router: max appmap depth 10 exceeded'
    r = Router(nested(10))
    assert r(None, mkreq('GET', '/x' * 10), api) == (200, 'OK', {}, b'hello')
    assert r(None, mkreq('GET', '/x' * 9), api) == (410, 'Gone', {}, None)
    assert r(None, mkreq('GET', '/x' * 11), api) == (200, 'OK', {}, b'hello')


APPMAP = {
    None: named('root'),
    'a': named('a'),
    'b': {None: named('b-none'), '': named('b-slash'), 'c': named('b-c')},
    'd': {'e': {'f': named('d-e-f')}},
    'caf%C3%A9': named('cafe'),
    '': named('empty'),
}

# uri -> (x-app, x-mount), or 410
ROUTES = [
    ('/', 'root', ''),
    ('/?q', 'root', ''),
    ('/a', 'a', 'a'),
    ('/a/', 'a', 'a'),
    ('/a/more/stuff', 'a', 'a'),
    ('/b', 'b-none', 'b'),
    ('/b/', 'b-slash', 'b/'),
    ('/b/c', 'b-c', 'b/c'),
    ('/b/c/', 'b-c', 'b/c'),
    ('/b/x', 410, None),
    ('/d/e/f', 'd-e-f', 'd/e/f'),
    ('/d/e', 410, None),
    ('/d', 410, None),
    ('/caf%C3%A9', 'cafe', 'caf%C3%A9'),
    ('/café', 410, None),
    ('/nope', 410, None),
    ('/A', 410, None),
]


@pytest.mark.parametrize('uri, app_name, mount', ROUTES)
def test_router_routes(uri, app_name, mount):
    router = Router(APPMAP)
    response = router(None, mkreq('GET', uri), api)
    if app_name == 410:
        assert response == (410, 'Gone', {}, None)
    else:
        assert response[:2] == (200, 'OK')
        assert response[2] == {'x-app': app_name, 'x-mount': mount}


def test_router_request_type():
    class NotRequest:
        pass

    with pytest.raises(TypeError) as e:
        Router({})(None, NotRequest(), api)
    assert str(e.value) == (
        "request: need a <class 'degu.base.Request'>; got a "
        "<class 'test_applib.test_router_request_type.<locals>.NotRequest'>"
    )
    assert repr(Router({'a': hello})) == f"Router({{'a': {hello!r}}})"


def test_router_live():
    router = Validator(Router({'a': AllowedMethods('GET')(hello), 'b': {None: hello}}))
    with TempServer(('127.0.0.1', 0), router, thread=True) as server:
        conn = Client(server.address).connect()
        assert conn.get('/a', {}).body.read() == b'hello'
        r = conn.put('/a', {}, b'xyz')
        assert (r.status, r.headers['allow']) == (405, 'GET')
        assert conn.get('/b', {}).body.read() == b'hello'
        assert conn.get('/b/', {}).status == 410
        assert conn.delete('/zz', {}).status == 410
        conn.close()


# --------------------------------------------------------------------------
# ProxyApp


def upstream_app(session, request, api):
    """Reports what it got; echoes bodies back with their chunk extensions."""
    kind = request.path[0] if request.path else ''
    info = {
        'method': request.method,
        'uri': request.uri,
        'headers': {k: str(v) for (k, v) in request.headers.items()},
        'address': repr(session.address),
        'requests': session.requests,
    }
    headers = {'x-info': json.dumps(info, sort_keys=True)}
    # hop-by-hop fields on the way back, which the proxy must drop
    headers.update({
        'connection': 'x-hop-back', 'x-hop-back': '1', 'keep-alive': 'timeout=5',
        'proxy-authenticate': 'Basic', 'trailer': 'x-t', 'upgrade': 'foo',
    })
    if kind == 'close':
        headers['connection'] = 'close'
    body = request.body
    if request.method == 'HEAD':
        headers['content-length'] = 7
        return (200, 'OK', headers, None)
    if body is None:
        return (200, 'OK', headers, b'no body')
    return (201, 'Created', headers, body)  # streamed back as it arrives


def info_of(response):
    return json.loads(response.headers['x-info'])


@pytest.fixture
def proxy_pair():
    with TempServer(('127.0.0.1', 0), Validator(upstream_app), thread=True) as upstream:
        client = Client(upstream.address)
        with TempServer(('127.0.0.1', 0), Validator(ProxyApp(client)), thread=True) as proxy:
            yield (upstream, proxy)


HOP_BACK = {'connection', 'x-hop-back', 'keep-alive', 'proxy-authenticate', 'trailer', 'upgrade'}


def test_proxy_init():
    client = Client(('127.0.0.1', 9))
    p = ProxyApp(client)
    assert (p.client, p.key) == (client, 'conn')
    assert repr(p) == f"ProxyApp({client!r}, 'conn')"
    assert ProxyApp(client, key='_up').key == '_up'
    with pytest.raises(TypeError) as e:
        ProxyApp(client, key=b'x')
    assert str(e.value) == "key: need a <class 'str'>; got a <class 'bytes'>: b'x'"
    with pytest.raises(TypeError) as e:
        ProxyApp('nope')
    assert str(e.value) == "client: no connect() method: 'nope'"
    with pytest.raises(TypeError) as e:
        p(None, mkreq('GET', '/'), api)
    assert str(e.value) == "session: need a <class 'degu.base.Session'>; got a <class 'NoneType'>"
    with pytest.raises(TypeError) as e:
        p(Session(('127.0.0.1', 1)), None, api)
    assert str(e.value) == "request: need a <class 'degu.base.Request'>; got a <class 'NoneType'>"


def test_proxy_hop_by_hop_and_connection_reuse(proxy_pair):
    (upstream, proxy) = proxy_pair
    conn = Client(proxy.address).connect()
    headers = {
        'connection': 'x-hop, keep-alive', 'x-hop': '1', 'keep-alive': '300',
        'proxy-connection': 'keep-alive', 'te': 'trailers', 'trailer': 'x-t', 'upgrade': 'h2c',
        'proxy-authorization': 'Basic eDp5', 'x-end': 'kept', 'accept': 'a/b',
    }
    r = conn.get('/x/y?z=1', dict(headers))
    assert (r.status, r.body.read()) == (200, b'no body')
    info = info_of(r)
    assert info['method'] == 'GET' and info['uri'] == '/x/y?z=1'
    sent = info['headers']
    for name in ('connection', 'x-hop', 'keep-alive', 'proxy-connection', 'te', 'trailer',
                 'upgrade', 'proxy-authorization'):
        assert name not in sent
    assert sent['x-end'] == 'kept' and sent['accept'] == 'a/b'
    assert sent['host'] == f'127.0.0.1:{upstream.address[1]}'  # the client's base header
    assert not HOP_BACK & set(r.headers)
    first = info['address']
    assert info['requests'] == 0
    # the same downstream connection keeps its upstream connection
    for i in range(1, 4):
        r = conn.head('/h', {})
        assert r.status == 200 and r.body is None
        assert info_of(r)['address'] == first and info_of(r)['requests'] == i
    # another downstream connection gets another upstream connection
    conn2 = Client(proxy.address).connect()
    r = conn2.get('/', {})
    r.body.read()
    assert info_of(r)['address'] != first and info_of(r)['requests'] == 0
    conn2.close()
    conn.close()


def test_proxy_chunked_both_ways(proxy_pair):
    (upstream, proxy) = proxy_pair
    conn = Client(proxy.address).connect()
    chunks = [
        (('k', 'v'), b'hello'),
        (None, b'x' * 70000),
        (('quoted', 'a "b" c'), b'\x00\xff'),
        (('flag', ''), b'z'),
        (('last', 'yes'), b''),
    ]
    r = conn.post('/chunks', {}, api.ChunkedBodyIter(list(chunks)))
    assert r.status == 201
    assert r.headers['transfer-encoding'] == 'chunked'
    assert type(r.body) is ChunkedBody
    assert list(r.body) == chunks
    assert info_of(r)['headers']['transfer-encoding'] == 'chunked'
    # length bodies stream through too, both ways
    data = os.urandom(3 * 1024 * 1024 + 7)
    r = conn.put('/big', {}, api.BodyIter([data[:1000], data[1000:]], len(data)))
    assert (r.status, r.headers['content-length']) == (201, len(data))
    assert type(r.body) is Body
    assert r.body.read() == data
    conn.close()


def test_proxy_prefix_via_router(proxy_pair):
    (upstream, proxy) = proxy_pair
    app = Router({'up': ProxyApp(Client(upstream.address))})
    with TempServer(('127.0.0.1', 0), Validator(app), thread=True) as front:
        conn = Client(front.address).connect()
        r = conn.get('/up/a%20b/c?d', {})
        r.body.read()
        assert info_of(r)['uri'] == '/a%20b/c?d'
        conn.close()


def test_proxy_upstream_says_close(proxy_pair):
    (upstream, proxy) = proxy_pair
    conn = Client(proxy.address).connect()
    r = conn.get('/close', {})
    assert r.body.read() == b'no body'
    assert 'connection' not in r.headers  # the downstream connection stays open
    first = info_of(r)['address']
    r = conn.get('/again', {})
    r.body.read()
    assert info_of(r)['address'] != first and info_of(r)['requests'] == 0
    conn.close()


def test_proxy_bad_gateway():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    address = sock.getsockname()
    sock.close()  # nothing listens there now
    app = Validator(ProxyApp(Client(address, timeout=5)))
    with TempServer(('127.0.0.1', 0), app, thread=True) as proxy:
        conn = Client(proxy.address).connect()
        r = conn.get('/', {})
        assert (r.status, r.reason, r.body) == (502, 'Bad Gateway', None)
        r = conn.get('/', {})
        assert r.status == 502
        conn.close()


class RawUpstream:
    """A scripted upstream on a raw socket: *script(sock, index)* serves connection *index*."""

    def __init__(self, script, connections):
        self.listener = socket.create_server(('127.0.0.1', 0))
        self.listener.settimeout(10)
        self.address = self.listener.getsockname()
        self.script = script
        self.served = []
        self.errors = []
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(connections,), daemon=True)
        self.thread.start()

    def _run(self, connections):
        try:
            for i in range(connections):
                (sock, _) = self.listener.accept()
                with sock:
                    sock.settimeout(10)
                    self.served.append(i)
                    self.script(sock, i)
        except Exception as e:  # reported by close()
            self.errors.append(e)
        finally:
            self.listener.close()

    def close(self):
        self.thread.join(10)
        assert not self.thread.is_alive()
        assert self.errors == []


def read_request(sock):
    data = b''
    for _ in range(1000):
        if b'\r\n\r\n' in data:
            return data
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    raise AssertionError('request too long')


def test_proxy_replaces_stale_connection():
    closed = threading.Event()

    def script(sock, i):
        read_request(sock)
        sock.sendall(b'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n' + str(i).encode() + b'!')
        if i == 0:
            sock.shutdown(socket.SHUT_RDWR)  # an idle timeout, without telling
            closed.set()
        else:
            read_request(sock)  # wait for the proxy to close

    upstream = RawUpstream(script, 2)
    app = Validator(ProxyApp(Client(upstream.address, timeout=10)))
    with TempServer(('127.0.0.1', 0), app, thread=True) as proxy:
        conn = Client(proxy.address).connect()
        assert conn.get('/', {}).body.read() == b'0!'
        assert closed.wait(10)
        assert conn.get('/', {}).body.read() == b'1!'
        conn.close()
    upstream.close()
    assert upstream.served == [0, 1]


def test_proxy_close_delimited_upstream():
    def script(sock, i):
        read_request(sock)
        sock.sendall(b'HTTP/1.0 200 OK\r\nx-a: b\r\n\r\n' + b'old style body')

    upstream = RawUpstream(script, 1)
    app = Validator(ProxyApp(Client(upstream.address, timeout=10)))
    with TempServer(('127.0.0.1', 0), app, thread=True) as proxy:
        conn = Client(proxy.address).connect()
        r = conn.get('/', {})
        assert r.headers['transfer-encoding'] == 'chunked' and r.headers['x-a'] == 'b'
        assert r.body.read() == b'old style body'
        conn.close()
    upstream.close()


# The retry-once rule, with fakes: the race cannot be timed on a live socket.


class FakeConnection:
    def __init__(self, results):
        self.results = list(results)
        self.calls = []
        self.closed = False
        (self.sock, self._peer) = socket.socketpair()

    def request(self, method, uri, headers, body):
        self.calls.append((method, uri, headers, body))
        result = self.results.pop(0)
        if isinstance(result, BaseException):
            raise result
        return result

    def close(self):
        self.closed = True
        self.sock.close()
        self._peer.close()


class FakeClient:
    def __init__(self, *connections):
        self.connections = list(connections)
        self.made = []

    def connect(self):
        conn = self.connections.pop(0)
        self.made.append(conn)
        return conn


OK = (200, 'OK', {}, None)


def proxied(client, request, store=None):
    session = Session(('127.0.0.1', 1))
    if store is not None:
        session.store.update(store)
    return (ProxyApp(client)(session, request, api), session)


def test_proxy_retry_once_on_idle_close():
    for error in (EmptyPreambleError('response preamble is empty'),
                  ConnectionClosed('reading response preamble: ConnectionResetError: x'),
                  ConnectionClosed('sending: BrokenPipeError: x')):
        stale = FakeConnection([error])
        fresh = FakeConnection([OK])
        client = FakeClient(fresh)
        (response, session) = proxied(client, mkreq('GET', '/a'), {'conn': stale})
        assert response == OK
        assert stale.closed and session.store['conn'] is fresh
        assert [c[:2] for c in fresh.calls] == [('GET', '/a')]
        fresh.close()


def test_proxy_no_retry():
    # a fresh connection is never retried
    fresh = FakeConnection([EmptyPreambleError('response preamble is empty')])
    (response, session) = proxied(FakeClient(fresh), mkreq('GET', '/'))
    assert response == (502, 'Bad Gateway', {}, None)
    assert fresh.closed and 'conn' not in session.store
    # a timeout, a partly received response, a body already sent: no retry
    body = Body(io.BytesIO(b'abc'), 3)
    body.read()
    cases = [
        (mkreq('GET', '/'), applib.ConnectionTimedOut('reading response preamble timed out')),
        (mkreq('GET', '/'), ConnectionClosed("response preamble truncated: b'HTTP/1.1 2'")),
        (mkreq('PUT', '/', {'content-length': 3}, body), EmptyPreambleError('empty')),
    ]
    for (request, error) in cases:
        stale = FakeConnection([error])
        client = FakeClient()
        (response, session) = proxied(client, request, {'conn': stale})
        assert response == (502, 'Bad Gateway', {}, None)
        assert client.made == [] and stale.closed
    # the retry itself fails: 502, not a second retry
    stale = FakeConnection([EmptyPreambleError('empty')])
    fresh = FakeConnection([EmptyPreambleError('empty')])
    client = FakeClient(fresh)
    (response, session) = proxied(client, mkreq('GET', '/'), {'conn': stale})
    assert response == (502, 'Bad Gateway', {}, None)
    assert client.made == [fresh] and fresh.closed


def test_proxy_untouched_body_is_resent():
    body = Body(io.BytesIO(b'abc'), 3)  # the send failed before the body started
    stale = FakeConnection([ConnectionClosed('sending: BrokenPipeError: x')])
    fresh = FakeConnection([OK])
    (response, _) = proxied(FakeClient(fresh), mkreq('PUT', '/', {'content-length': 3}, body),
                            {'conn': stale})
    assert response == OK and fresh.calls[0][3] is body
    fresh.close()


def test_proxy_end_to_end_headers():
    assert applib._end_to_end({'a': '1', 'connection': 'A, b ,', 'b': '2', 'c': 3}) == {'c': 3}
    assert applib._end_to_end({'te': 'x', 'x': 'y'}) == {'x': 'y'}
    assert applib.HOP_BY_HOP == {
        'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade',
        'proxy-authenticate', 'proxy-authorization',
    }


# --------------------------------------------------------------------------
# FilesApp


@pytest.fixture
def root(tmp_path):
    """A served directory, next to a secret that must stay out of reach."""
    (tmp_path / 'secret.txt').write_bytes(b'secret')
    (tmp_path / 'secret_dir').mkdir()
    (tmp_path / 'secret_dir' / 'index.html').write_bytes(b'secret index')
    top = tmp_path / 'www'
    top.mkdir()
    (top / 'hello.txt').write_bytes(b'hello world')
    (top / 'index.html').write_bytes(b'<h1>top</h1>')
    (top / 'empty.json').write_bytes(b'')
    (top / 'sub').mkdir()
    (top / 'sub' / 'index.html').write_bytes(b'<h1>sub</h1>')
    (top / 'sub' / 'caf\xe9 au lait.zzz').write_bytes(b'\x00\x01')
    (top / 'sub' / 'data.tar.gz').write_bytes(b'gz')
    (top / 'noindex').mkdir()
    (top / 'link_out.txt').symlink_to(tmp_path / 'secret.txt')
    (top / 'link_in.txt').symlink_to(top / 'hello.txt')
    (top / 'link_dir').symlink_to(tmp_path / 'secret_dir')
    (top / 'sub' / 'up').symlink_to('..')
    os.mkfifo(top / 'fifo')
    return str(top)


def test_files_init(root):
    with pytest.raises(TypeError) as e:
        FilesApp(root.encode())
    assert str(e.value) == "dir_name: need a <class 'str'>; got a <class 'bytes'>"
    for bad in ('www', root + '/', root + '/../www', root + '/./sub'):
        with pytest.raises(ValueError) as e:
            FilesApp(bad)
        assert str(e.value) == f'dir_name: not absolute, normalized path: {bad!r}'
    with pytest.raises(FileNotFoundError):
        FilesApp(root + '/missing')
    with pytest.raises(NotADirectoryError):
        FilesApp(root + '/hello.txt')
    app = FilesApp(root)
    assert repr(app) == f'FilesApp({root!r})'
    assert app.dir_name == root and app.dir_fd >= 0
    fd = app.dir_fd
    app.close()
    assert app.dir_fd == -1
    with pytest.raises(OSError):
        os.fstat(fd)
    app.close()
    with FilesApp(root) as app:
        assert app.dir_fd >= 0
    assert app.dir_fd == -1


def call(app, method, uri, headers=None, body=None, shift=0):
    response = app(None, mkreq(method, uri, headers, body, shift), api)
    (status, reason, headers, body) = response
    if body is not None:
        assert type(body) is Body
        data = body.read()
        body.rfile.close()
        return (status, reason, headers, data)
    return response


# uri -> (status, body) for a GET
FILES_TABLE = [
    ('/hello.txt', 200, b'hello world'),
    ('/hello.txt?x=1', 200, b'hello world'),
    ('/', 200, b'<h1>top</h1>'),
    ('/index.html', 200, b'<h1>top</h1>'),
    ('/sub', 200, b'<h1>sub</h1>'),
    ('/sub/', 200, b'<h1>sub</h1>'),
    ('/sub/caf%C3%A9%20au%20lait.zzz', 200, b'\x00\x01'),
    ('/%68ello.txt', 200, b'hello world'),
    ('/empty.json', 200, b''),
    ('/missing', 404, None),
    ('/hello.txt/', 404, None),
    ('/hello.txt/x', 404, None),
    ('/noindex', 404, None),
    ('/noindex/', 404, None),
    ('/fifo', 404, None),
    ('/sub/caf\xe9 au lait.zzz', 400, None),
    ('/..', 400, None),
    ('/.', 400, None),
    ('/sub/..', 400, None),
    ('/%2e%2e', 400, None),
    ('/%2E%2E/secret.txt', 400, None),
    ('/sub/%2e%2e/%2e%2e/secret.txt', 400, None),
    ('/.%2e/secret.txt', 400, None),
    ('/%2e', 400, None),
    ('/..%2Fsecret.txt', 400, None),
    ('/%2Fetc%2Fpasswd', 400, None),
    ('/hello.txt%00', 400, None),
    ('/%ZZ', 400, None),
    ('/%C3', 400, None),
    ('/%', 400, None),
    # symbolic links are never followed, out of the root or not
    ('/link_out.txt', 404, None),
    ('/link_in.txt', 404, None),
    ('/link_dir', 404, None),
    ('/link_dir/', 404, None),
    ('/link_dir/index.html', 404, None),
    ('/sub/up/hello.txt', 404, None),
    ('/sub/up/..%2Fsecret.txt', 400, None),
]


@pytest.mark.parametrize('uri, status, data', FILES_TABLE)
def test_files_get(root, uri, status, data):
    with FilesApp(root) as app:
        response = call(app, 'GET', uri)
        assert response[0] == status
        if status == 200:
            assert response[3] == data
            assert response[2]['content-length'] == len(data)
        else:
            reasons = {400: 'Bad Request', 404: 'Not Found'}
            assert response == (status, reasons[status], {}, None)


def test_files_headers(root):
    st = os.stat(os.path.join(root, 'hello.txt'))
    with FilesApp(root) as app:
        (status, reason, headers, data) = call(app, 'GET', '/hello.txt')
        assert (status, reason) == (200, 'OK')
        assert headers == {
            'content-length': 11,
            'content-type': 'text/plain',
            'accept-ranges': 'bytes',
            'etag': f'"b-{st.st_mtime_ns:x}"',
            'last-modified': email.utils.formatdate(st.st_mtime, usegmt=True),
        }
        assert call(app, 'GET', '/')[2]['content-type'] == 'text/html'
        assert call(app, 'GET', '/sub')[2]['content-type'] == 'text/html'
        assert call(app, 'GET', '/empty.json')[2]['content-type'] == 'application/json'
        assert 'content-type' not in call(app, 'GET', '/sub/caf%C3%A9%20au%20lait.zzz')[2]
        assert 'content-type' not in call(app, 'GET', '/sub/data.tar.gz')[2]  # compressed
        assert call(app, 'HEAD', '/hello.txt') == (200, 'OK', headers, None)


@pytest.mark.parametrize('method', ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'])
def test_files_method_not_allowed(root, method):
    with FilesApp(root) as app:
        assert call(app, method, '/hello.txt') == (
            405, 'Method Not Allowed', {'allow': 'GET, HEAD'}, None
        )


def test_files_request_body(root):
    with FilesApp(root) as app:
        empty = Body(io.BytesIO(b''), 0)
        assert call(app, 'GET', '/hello.txt', {'content-length': 0}, empty)[3] == b'hello world'
        assert empty.state == 2
        body = Body(io.BytesIO(b'abc'), 3)
        assert call(app, 'GET', '/hello.txt', {'content-length': 3}, body) == (
            400, 'Bad Request', {}, None
        )
        assert body.state == 0
        body = ChunkedBody(io.BytesIO(b'0\r\n\r\n'))
        assert call(app, 'GET', '/hello.txt', {'transfer-encoding': 'chunked'}, body)[0] == 400


# (start, stop) on an 11-byte file -> (status, data, content-range)
RANGES = [
    (0, 1, 206, b'h', 'bytes 0-0/11'),
    (0, 11, 206, b'hello world', 'bytes 0-10/11'),
    (6, 11, 206, b'world', 'bytes 6-10/11'),
    (10, 11, 206, b'd', 'bytes 10-10/11'),
    (6, 12, 206, b'world', 'bytes 6-10/11'),  # clamped (RFC 9110 14.1.2)
    (0, 9999999999999999, 206, b'hello world', 'bytes 0-10/11'),  # bytes=0-, clamped
    (10, 9999999999999999, 206, b'd', 'bytes 10-10/11'),
    (11, 12, 416, None, 'bytes */11'),
    (11, 9999999999999999, 416, None, 'bytes */11'),
    (100, 200, 416, None, 'bytes */11'),
]


@pytest.mark.parametrize('start, stop, status, data, content_range', RANGES)
def test_files_ranges(root, start, stop, status, data, content_range):
    with FilesApp(root) as app:
        for value in (Range(start, stop), str(Range(start, stop))):
            (s, reason, headers, body) = call(app, 'GET', '/hello.txt', {'range': value})
            assert s == status
            assert headers['content-range'] == content_range
            assert str(headers['content-range']) == content_range
            if status == 206:
                assert reason == 'Partial Content'
                assert body == data and headers['content-length'] == len(data)
            else:
                assert (reason, body) == ('Range Not Satisfiable', None)
                assert 'content-length' not in headers
        # HEAD ignores range (RFC 9110 14.2), and so does a GET for a bad str value
        assert call(app, 'HEAD', '/hello.txt', {'range': Range(start, stop)})[0] == 200
    assert call(FilesApp(root), 'GET', '/hello.txt', {'range': 'bytes=-5'})[0] == 200
    assert call(FilesApp(root), 'GET', '/hello.txt', {'range': 'bytes=5-'})[0] == 206
    (s, _, headers, _) = call(FilesApp(root), 'GET', '/empty.json', {'range': Range(0, 1)})
    assert (s, headers['content-range']) == (416, 'bytes */0')


def test_files_conditional(root):
    path = os.path.join(root, 'hello.txt')
    os.utime(path, (1_000_000_000, 1_000_000_000))
    with FilesApp(root) as app:
        headers = call(app, 'GET', '/hello.txt')[2]
        etag = headers['etag']
        lm = headers['last-modified']
        assert lm == 'Sun, 09 Sep 2001 01:46:40 GMT'
        not_modified = (304, 'Not Modified', {'etag': etag, 'last-modified': lm}, None)
        cases = [
            ({'if-none-match': etag}, 304),
            ({'if-none-match': 'W/' + etag}, 304),
            ({'if-none-match': f'"x", {etag}'}, 304),
            ({'if-none-match': '*'}, 304),
            ({'if-none-match': '"x"'}, 200),
            ({'if-none-match': etag[1:-1]}, 200),  # not quoted: no entity-tag at all
            ({'if-none-match': '"x"', 'if-modified-since': lm}, 200),  # inm wins
            ({'if-modified-since': lm}, 304),
            ({'if-modified-since': 'Sun, 09 Sep 2001 01:46:41 GMT'}, 304),
            ({'if-modified-since': 'Sun, 09 Sep 2001 01:46:39 GMT'}, 200),
            ({'if-modified-since': 'Sunday, 09-Sep-01 01:46:40 GMT'}, 304),  # rfc850-date
            ({'if-modified-since': 'yesterday'}, 200),  # invalid: ignored
            ({'if-modified-since': ''}, 200),
        ]
        for (headers, status) in cases:
            for method in ('GET', 'HEAD'):
                response = call(app, method, '/hello.txt', dict(headers))
                assert response[0] == status, (headers, method)
                if status == 304:
                    assert response == not_modified
        # conditionals come before range (RFC 9110 13.2.2)
        r = call(app, 'GET', '/hello.txt', {'if-none-match': etag, 'range': Range(0, 1)})
        assert r[0] == 304


def test_files_validator_and_pickle(root):
    import pickle

    app = FilesApp(root)
    copy = pickle.loads(pickle.dumps(app))
    assert type(copy) is FilesApp and copy.dir_name == root and copy.dir_fd != app.dir_fd
    copy.close()
    v = Validator(app)
    s = Session(('127.0.0.1', 1))
    for (method, uri, headers) in [
        ('GET', '/hello.txt', {}), ('HEAD', '/hello.txt', {}), ('GET', '/nope', {}),
        ('HEAD', '/nope', {}), ('PUT', '/x', {}), ('GET', '/hello.txt', {'range': Range(1, 2)}),
        ('GET', '/hello.txt', {'range': Range(20, 30)}), ('GET', '/%2e%2e', {}),
    ]:
        (status, reason, rheaders, body) = v(s, mkreq(method, uri, headers), api)
        if body is not None:
            body.read()
            body.rfile.close()
    app.close()


# --------------------------------------------------------------------------
# FilesApp live


def raw_get(address, request):
    """Send *request* bytes, read until the server closes; returns the raw response."""
    if isinstance(address, tuple):
        family = socket.AF_INET if len(address) == 2 else socket.AF_INET6
    else:
        family = socket.AF_UNIX
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(address)
        sock.sendall(request)
        data = b''
        for _ in range(10000):
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    raise AssertionError('response too long')


@pytest.mark.parametrize('family', ['ipv4', 'ipv6', 'unix'])
def test_files_live(root, tmp_path, family):
    address = {
        'ipv4': ('127.0.0.1', 0),
        'ipv6': ('::1', 0, 0, 0),
        'unix': str(tmp_path / 'files.sock'),
    }[family]
    app = Validator(FilesApp(root))
    with TempServer(address, app, thread=True) as server:
        conn = Client(server.address).connect()
        r = conn.get('/hello.txt', {})
        assert (r.status, r.body.read()) == (200, b'hello world')
        etag = r.headers['etag']
        r = conn.get('/hello.txt', {'if-none-match': etag})
        assert (r.status, r.body) == (304, None)
        r = conn.get_range('/hello.txt', {}, 6, 100)
        assert (r.status, r.body.read()) == (206, b'world')
        assert r.headers['content-range'] == 'bytes 6-10/11'
        r = conn.head('/sub/', {})
        assert (r.status, r.headers['content-length'], r.body) == (200, 12, None)
        for uri in ('/missing', '/link_out.txt', '/link_dir/', '/link_dir/index.html',
                    '/sub/up/hello.txt'):
            assert conn.get(uri, {}).status == 404, uri
        for uri in ('/%2e%2e/secret.txt', '/sub/%2E%2E%2F%2E%2E%2Fsecret.txt', '/%00'):
            assert conn.get(uri, {}).status == 400, uri
        assert conn.put('/hello.txt', {}, b'x').status == 405
        assert conn.get('/hello.txt', {}).body.read() == b'hello world'  # still alive
        conn.close()
        # '..' as a component never reaches the app: the server refuses it (D1)
        data = raw_get(server.address, b'GET /../secret.txt HTTP/1.1\r\n\r\n')
        assert data.startswith(b'HTTP/1.1 400 Bad Request\r\n')
        # 416 carries content-range: bytes */11 (read raw: see the report on the client)
        data = raw_get(
            server.address,
            b'GET /hello.txt HTTP/1.1\r\nrange: bytes=11-20\r\nconnection: close\r\n\r\n',
        )
        assert data.startswith(b'HTTP/1.1 416 Range Not Satisfiable\r\n')
        assert b'\r\ncontent-range: bytes */11\r\n' in data


BIG_SIZE = 64 * 1024 * 1024  # 64 MiB


@pytest.fixture(scope='module')
def big_root(tmp_path_factory):
    top = tmp_path_factory.mktemp('big')
    block = os.urandom(1024 * 1024)
    digest = hashlib.sha256()
    with open(top / 'big.bin', 'wb') as fp:
        for i in range(BIG_SIZE // len(block)):
            piece = bytes([i]) + block[1:]
            fp.write(piece)
            digest.update(piece)
    return (str(top), digest.hexdigest())


def vm_hwm(pid):
    """Peak resident set size of process *pid*, in bytes."""
    with open(f'/proc/{pid}/status') as fp:
        for line in fp:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    raise AssertionError('no VmHWM')


def test_files_64mib_memory_bounded(big_root):
    (top, hexdigest) = big_root
    with TempServer(('127.0.0.1', 0), FilesApp(top)) as server:
        pid = server.process.pid
        conn = Client(server.address).connect()
        assert conn.get('/missing', {}).status == 404  # warm up: a thread, its buffers
        before = vm_hwm(pid)
        r = conn.get('/big.bin', {})
        assert r.status == 200 and r.headers['content-length'] == BIG_SIZE
        digest = hashlib.sha256()
        for piece in r.body:
            digest.update(piece)
        assert digest.hexdigest() == hexdigest
        # a large range, sent the same way
        r = conn.get_range('/big.bin', {}, 1, BIG_SIZE - 1)
        assert r.headers['content-length'] == BIG_SIZE - 2
        total = 0
        for piece in r.body:
            total += len(piece)
        assert total == BIG_SIZE - 2
        growth = vm_hwm(pid) - before
        assert growth < 32 * 1024 * 1024, growth
        conn.close()


def test_files_sent_with_sendfile(root, monkeypatch):
    data = os.urandom(200 * 1024)
    with open(os.path.join(root, 'blob.dat'), 'wb') as fp:
        fp.write(data)
    calls = []
    real = socket.socket.sendfile

    def sendfile(self, file, offset=0, count=None):
        calls.append((type(file).__name__, offset, count))
        return real(self, file, offset, count)

    monkeypatch.setattr(socket.socket, 'sendfile', sendfile)
    with TempServer(('127.0.0.1', 0), FilesApp(root), thread=True) as server:
        conn = Client(server.address).connect()
        assert conn.get('/blob.dat', {}).body.read() == data
        r = conn.get_range('/blob.dat', {}, 100, 100 + 70000)
        assert r.body.read() == data[100:70100]
        assert conn.get('/hello.txt', {}).body.read() == b'hello world'  # small: copied
        conn.close()
    assert calls == [('_File', 0, len(data)), ('_File', 100, 70000)]


def test_files_under_router(root):
    router = Router({'static': FilesApp(root)})
    assert call(router, 'GET', '/static/')[3] == b'<h1>top</h1>'
    assert call(router, 'GET', '/static')[3] == b'<h1>top</h1>'
    assert call(router, 'GET', '/static/sub/')[3] == b'<h1>sub</h1>'
    assert call(router, 'GET', '/static/hello.txt')[3] == b'hello world'
    assert call(router, 'GET', '/other/hello.txt')[0] == 410


def test_proxy_interim_response_is_bad_gateway():
    stale = FakeConnection([(103, 'Early Hints', {'link': '</a>'}, None)])
    (response, session) = proxied(FakeClient(), mkreq('GET', '/'), {'conn': stale})
    assert response == (502, 'Bad Gateway', {}, None)
    assert stale.closed and 'conn' not in session.store


def test_proxy_empty_reason():
    stale = FakeConnection([(200, '', {'connection': 'close', 'x': '1'}, None),
                            (299, '', {}, None)])
    (response, session) = proxied(FakeClient(), mkreq('GET', '/'), {'conn': stale})
    assert response == (200, 'OK', {'x': '1'}, None)
    (response, session) = proxied(FakeClient(), mkreq('GET', '/'), {'conn': stale})
    assert response == (299, 'Unknown', {}, None)
    stale.close()


PIECES = ['..', '.', '%2e', '%2E', '%2f', '%2F', '%00', '%5C', 'sub', 'up', 'hello.txt',
          'secret.txt', 'secret_dir', 'link_out.txt', 'link_dir', 'index.html', '', 'www', '%']


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.lists(st.sampled_from(PIECES), max_size=4).map(''.join), max_size=5))
def test_files_never_escape(root, path):
    allowed = set()
    for (dirpath, _, filenames) in os.walk(root):  # followlinks=False: nothing through a link
        for name in filenames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full) and os.path.isfile(full):
                with open(full, 'rb') as fp:
                    allowed.add(fp.read())
    uri = '/' + '/'.join(path)
    with FilesApp(root) as app:
        for method in ('GET', 'HEAD'):
            response = call(app, method, uri)
            assert response[0] in (200, 400, 404), (uri, response)
            if response[0] == 200 and method == 'GET':
                assert response[3] in allowed, uri
                assert b'secret' not in response[3]


# --------------------------------------------------------------------------
# FilesApp(..., listing=True): a folder without index.html lists its entries


def _listed(app, uri):
    (status, reason, headers, body) = app(None, mkreq('GET', uri), api)
    assert (status, reason) == (200, 'OK')
    assert headers == {'content-type': 'text/html; charset=utf-8', 'content-length': len(body)}
    return body.decode()


def test_files_listing(tmp_path):
    (tmp_path / 'sub dir').mkdir()
    (tmp_path / 'sub dir' / 'inner.txt').write_bytes(b'inner')
    (tmp_path / 'a <b>&c.txt').write_bytes(b'x')
    (tmp_path / 'outside').symlink_to('/etc/passwd')
    os.mkfifo(tmp_path / 'fifo')
    with FilesApp(str(tmp_path), listing=True) as app:
        page = _listed(app, '/')
        assert '<title>Index of /</title>' in page
        assert page.count('<li>') == 2  # no ../ at the top, no symlink, no fifo
        assert '<li><a href="/a%20%3Cb%3E&amp;c.txt">a &lt;b&gt;&amp;c.txt</a></li>' in page
        assert '<li><a href="/sub%20dir/">sub dir/</a></li>' in page
        assert 'outside' not in page and 'fifo' not in page
        page = _listed(app, '/sub%20dir')  # with or without the trailing slash
        assert '<title>Index of /sub dir/</title>' in page
        assert '<li><a href="../">../</a></li>' in page
        assert '<li><a href="/sub%20dir/inner.txt">inner.txt</a></li>' in page
        assert _listed(app, '/sub%20dir/?q=1') == page
        (status, _, headers, body) = app(None, mkreq('HEAD', '/'), api)
        assert (status, body) == (200, None)
        assert headers['content-length'] > 0
        (tmp_path / 'index.html').write_bytes(b'<p>index</p>')
        assert call(app, 'GET', '/')[3] == b'<p>index</p>'  # index.html wins
    with FilesApp(str(tmp_path / 'sub dir')) as app:
        assert call(app, 'GET', '/')[0] == 404  # listing is off by default
    with pytest.raises(TypeError):
        FilesApp(str(tmp_path), listing=1)


def test_files_listing_survives_pickling(tmp_path):
    import pickle

    app = pickle.loads(pickle.dumps(FilesApp(str(tmp_path), listing=True)))
    assert app.listing is True
    assert '<title>Index of /</title>' in _listed(app, '/')
    app.close()
