"""Tests for degu.applib: AllowedMethods, MethodFilter, Router, ProxyApp, FilesApp."""

import email.utils
import hashlib
import html
import io
import json
import os
import re
import socket
import threading
import time
import urllib.parse

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


def answer(response):
    """``(status, body bytes)``, the body read (``None`` for none): the connection goes on."""
    body = response.body
    return (response.status, None if body is None else body.read())


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
        "request: need a <class 'degu._body.Request'>; got a "
        "<class 'test_applib.test_router_request_type.<locals>.NotRequest'>"
    )
    assert repr(Router({'a': hello})) == f"Router({{'a': {hello!r}}})"


def test_router_live():
    router = Validator(Router({'a': AllowedMethods('GET')(hello), 'b': {None: hello}}))
    with TempServer(('127.0.0.1', 0), router, thread=True) as server:
        conn = Client(server.address).connect()
        assert conn.get('/a', {}).body.read() == b'hello'
        r = conn.put('/a', {}, b'xyz')
        assert (answer(r), r.headers['allow']) == ((405, b''), 'GET')
        assert conn.get('/b', {}).body.read() == b'hello'
        assert answer(conn.get('/b/', {})) == (410, b'')
        assert answer(conn.delete('/zz', {})) == (410, b'')
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
    assert str(e.value) == "session: need a <class 'degu._body.Session'>; got a <class 'NoneType'>"
    with pytest.raises(TypeError) as e:
        p(Session(('127.0.0.1', 1)), None, api)
    assert str(e.value) == "request: need a <class 'degu._body.Request'>; got a <class 'NoneType'>"


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
    # (the degu upstream renders its own connection line: the app's does not
    # reach the wire; test_proxy_hop_by_hop_back has a raw upstream)
    assert not HOP_BACK - {'x-hop-back'} & set(r.headers)
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
        assert (answer(r), r.reason, r.headers['content-length']) == ((502, b''), 'Bad Gateway', 0)
        assert answer(conn.get('/', {})) == (502, b'')
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


def test_proxy_hop_by_hop_back():
    def script(sock, i):
        read_request(sock)
        sock.sendall(
            b'HTTP/1.1 200 OK\r\nconnection: x-hop-back, keep-alive\r\nx-hop-back: 1\r\n'
            b'keep-alive: timeout=5\r\nproxy-authenticate: Basic\r\ntrailer: x-t\r\n'
            b'upgrade: foo\r\nx-end: kept\r\ncontent-length: 2\r\n\r\nok'
        )
        read_request(sock)  # until the proxy closes

    upstream = RawUpstream(script, 1)
    app = Validator(ProxyApp(Client(upstream.address, timeout=10)))
    with TempServer(('127.0.0.1', 0), app, thread=True) as proxy:
        conn = Client(proxy.address).connect()
        r = conn.get('/', {})
        assert r.body.read() == b'ok'
        assert r.headers['x-end'] == 'kept'
        assert not HOP_BACK & set(r.headers)
        conn.close()
    upstream.close()


def test_proxy_close_delimited_upstream():
    def script(sock, i):
        read_request(sock)
        sock.sendall(b'HTTP/1.0 200 OK\r\nx-a: b\r\n\r\n' + b'old style body')

    upstream = RawUpstream(script, 2)
    app = Validator(ProxyApp(Client(upstream.address, timeout=10)))
    with TempServer(('127.0.0.1', 0), app, thread=True) as proxy:
        # to an HTTP/1.1 client the server sends the body chunked
        conn = Client(proxy.address).connect()
        r = conn.get('/', {})
        assert r.headers['transfer-encoding'] == 'chunked' and r.headers['x-a'] == 'b'
        assert r.body.read() == b'old style body'
        conn.close()
        # to an HTTP/1.0 client, until the close
        data = raw_get(proxy.address, b'GET / HTTP/1.0\r\n\r\n')
        (preamble, _, body) = data.partition(b'\r\n\r\n')
        assert preamble.startswith(b'HTTP/1.1 200 OK\r\n')
        assert b'transfer-encoding' not in preamble and b'content-length' not in preamble
        assert body == b'old style body'
    upstream.close()


def test_proxy_close_delimited_is_not_rechunked():
    """The upstream Body goes back to the server as it is: it streams, unbuffered."""
    from degu.base import SocketWrapper

    (a, b) = socket.socketpair()
    b.sendall(b'streamed')
    b.close()
    upstream_body = Body(SocketWrapper(a), None)
    conn = FakeConnection([(200, 'OK', {'x': '1'}, upstream_body)])
    (response, _) = proxied(FakeClient(), mkreq('GET', '/'), {'conn': conn})
    assert response[:3] == (200, 'OK', {'x': '1'}) and response[3] is upstream_body
    assert upstream_body.read() == b'streamed'
    a.close()
    conn.close()


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


IDEMPOTENT = ('GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS')  # RFC 9110 section 9.2.2

# Every ConnectionClosed but a timeout whose response_started is False (the
# default), whatever its message says: the rule reads the flag, not the text
RETRIED_ERRORS = [
    EmptyPreambleError('response preamble is empty'),
    ConnectionClosed('reading response preamble: ConnectionResetError: x'),
    ConnectionClosed('sending: BrokenPipeError: x'),
    ConnectionClosed("response preamble truncated: b'HTTP/1.1 2'"),
    ConnectionClosed('anything at all'),
]


@pytest.mark.parametrize('method', IDEMPOTENT)
@pytest.mark.parametrize('error', RETRIED_ERRORS, ids=repr)
def test_proxy_retry_once_on_idle_close(method, error):
    stale = FakeConnection([error])
    fresh = FakeConnection([OK])
    client = FakeClient(fresh)
    (response, session) = proxied(client, mkreq(method, '/a'), {'conn': stale})
    assert response == OK
    assert stale.closed and session.store['conn'] is fresh
    assert [c[:2] for c in fresh.calls] == [(method, '/a')]
    fresh.close()


@pytest.mark.parametrize('method', ['POST', 'PATCH'])
def test_proxy_never_retries_post_and_patch(method):
    for body in (None, Body(io.BytesIO(b'abc'), 3)):
        headers = {} if body is None else {'content-length': 3}
        stale = FakeConnection([EmptyPreambleError('response preamble is empty')])
        client = FakeClient()
        (response, session) = proxied(client, mkreq(method, '/', headers, body),
                                      {'conn': stale})
        assert response == (502, 'Bad Gateway', {}, None)
        assert client.made == [] and stale.closed and 'conn' not in session.store


def test_proxy_no_retry():
    # a fresh connection is never retried
    fresh = FakeConnection([EmptyPreambleError('response preamble is empty')])
    (response, session) = proxied(FakeClient(fresh), mkreq('GET', '/'))
    assert response == (502, 'Bad Gateway', {}, None)
    assert fresh.closed and 'conn' not in session.store
    # a timeout, a body already sent, an error that is not a ConnectionClosed: no retry
    started = Body(io.BytesIO(b'abc'), 3)
    started.read(1)
    consumed = Body(io.BytesIO(b'abc'), 3)
    consumed.read()
    chunks = ChunkedBody(io.BytesIO(b'1\r\nx\r\n0\r\n\r\n'))
    chunks.readchunk()
    cases = [
        (mkreq('GET', '/'), applib.ConnectionTimedOut('reading response preamble timed out')),
        (mkreq('PUT', '/', {'content-length': 3}, started), EmptyPreambleError('empty')),
        (mkreq('PUT', '/', {'content-length': 3}, consumed), EmptyPreambleError('empty')),
        (mkreq('DELETE', '/', {'transfer-encoding': 'chunked'}, chunks),
         ConnectionClosed('sending: BrokenPipeError: x')),
        (mkreq('GET', '/'), ConnectionResetError('not through the client')),
        (mkreq('GET', '/'), ValueError('bad status line')),
        (mkreq('GET', '/'), OSError('no route')),
    ]
    for (request, error) in cases:
        stale = FakeConnection([error])
        client = FakeClient()
        (response, session) = proxied(client, request, {'conn': stale})
        assert response == (502, 'Bad Gateway', {}, None), error
        assert client.made == [] and stale.closed
    # the retry itself fails: 502, not a second retry
    stale = FakeConnection([EmptyPreambleError('empty')])
    fresh = FakeConnection([EmptyPreambleError('empty')])
    client = FakeClient(fresh)
    (response, session) = proxied(client, mkreq('GET', '/'), {'conn': stale})
    assert response == (502, 'Bad Gateway', {}, None)
    assert client.made == [fresh] and fresh.closed


# The response had started: the upstream had the request, so never a retry,
# whatever the method (RFC 9110 section 9.2.2 covers only requests that may
# not have been seen).
STARTED_ERRORS = [
    ConnectionClosed("response preamble truncated: b'HTTP/1.1 2'", response_started=True),
    EmptyPreambleError('response preamble is empty', response_started=True),  # after a 1xx
    ConnectionClosed('reading response preamble: ConnectionResetError: x',
                     response_started=True),
]


@pytest.mark.parametrize('method', IDEMPOTENT)
@pytest.mark.parametrize('error', STARTED_ERRORS, ids=repr)
def test_proxy_no_retry_once_the_response_started(method, error):
    stale = FakeConnection([error])
    client = FakeClient()
    (response, session) = proxied(client, mkreq(method, '/a'), {'conn': stale})
    assert response == (502, 'Bad Gateway', {}, None)
    assert client.made == [] and stale.closed and 'conn' not in session.store


@pytest.mark.parametrize('first_byte', [False, True], ids=['before', 'after'])
def test_proxy_upstream_closes_kept_alive_connection(first_byte):
    """The upstream closes an idle kept-alive connection just as a request
    arrives: before any byte of the response the request is sent once more
    on a new connection; after a byte of it, the answer is 502."""

    def script(sock, i):
        request = read_request(sock)
        sock.sendall(b'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n' + str(i).encode() + b'!')
        if i == 0:
            # The next request has arrived (so the proxy saw nothing stale);
            # close, with or without a first byte of its response.
            request = read_request(sock)
            assert request.startswith(b'GET /two HTTP/1.1\r\n')
            if first_byte:
                sock.sendall(b'H')
        else:
            read_request(sock)  # wait for the proxy to close

    upstream = RawUpstream(script, 1 if first_byte else 2)
    app = Validator(ProxyApp(Client(upstream.address, timeout=10)))
    with TempServer(('127.0.0.1', 0), app, thread=True) as proxy:
        with Client(proxy.address, timeout=10).connect() as conn:
            assert conn.get('/one', {}).body.read() == b'0!'
            r = conn.get('/two', {})
            if first_byte:
                assert (r.status, r.body.read()) == (502, b'')
            else:
                assert (r.status, r.body.read()) == (200, b'1!')
    upstream.close()
    assert upstream.served == ([0] if first_byte else [0, 1])


def test_proxy_untouched_body_is_resent():
    for method in ('PUT', 'DELETE', 'OPTIONS'):
        body = Body(io.BytesIO(b'abc'), 3)  # the send failed before the body started
        stale = FakeConnection([ConnectionClosed('sending: BrokenPipeError: x')])
        fresh = FakeConnection([OK])
        request = mkreq(method, '/', {'content-length': 3}, body)
        (response, _) = proxied(FakeClient(fresh), request, {'conn': stale})
        assert response == OK and fresh.calls[0][3] is body
        fresh.close()


def test_proxy_end_to_end_headers():
    assert applib._end_to_end({'a': '1', 'connection': 'A, b ,', 'b': '2', 'c': 3}) == {'c': 3}
    assert applib._end_to_end({'te': 'x', 'x': 'y'}) == {'x': 'y'}
    assert applib.HOP_BY_HOP == {
        'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade',
        'proxy-authenticate', 'proxy-authorization', 'transfer-encoding',
    }
    # One set, shared with the WSGI adapter.
    from degu import _parse, wsgi

    assert applib.HOP_BY_HOP is _parse.HOP_BY_HOP is wsgi.HOP_BY_HOP
    # transfer-encoding goes on: the client and the server check it against the body.
    every = dict.fromkeys(applib.HOP_BY_HOP, 'x')
    assert applib._end_to_end(dict(every, a='1')) == {'transfer-encoding': 'x', 'a': '1'}
    named = {'transfer-encoding': 'chunked', 'connection': 'transfer-encoding'}
    assert applib._end_to_end(named) == {}


def test_proxy_keeps_transfer_encoding():
    def upstream(session, request, api):
        if request.method == 'HEAD':  # what a GET gets: chunked
            return (200, 'OK', {'transfer-encoding': 'chunked', 'x-a': 'b'}, None)
        body = request.body.read() if request.body is not None else b''
        return (200, 'OK', {}, api.ChunkedBodyIter([(None, b'got ' + body), (None, b'')]))

    with TempServer(('127.0.0.1', 0), Validator(upstream), thread=True) as up:
        app = Validator(ProxyApp(Client(up.address)))
        with TempServer(('127.0.0.1', 0), app, thread=True) as proxy:
            conn = Client(proxy.address).connect()
            r = conn.head('/', {})
            assert r.status == 200 and r.body is None
            assert (r.headers['transfer-encoding'], r.headers['x-a']) == ('chunked', 'b')
            r = conn.get('/', {})
            assert r.headers['transfer-encoding'] == 'chunked'
            assert r.body.read() == b'got '
            body = api.ChunkedBodyIter([(None, b'up'), (None, b'')])
            r = conn.post('/', {'transfer-encoding': 'chunked'}, body)
            assert r.body.read() == b'got up'
            conn.close()


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
    (top / '.env').write_bytes(b'SECRET=1')
    (top / '.git').mkdir()
    (top / '.git' / 'config').write_bytes(b'[core]')
    (top / 'sub' / '.hidden').write_bytes(b'hidden')
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


# uri -> (status, body) for a GET; for a 301, the location instead of the body
FILES_TABLE = [
    ('/hello.txt', 200, b'hello world'),
    ('/hello.txt?x=1', 200, b'hello world'),
    ('/', 200, b'<h1>top</h1>'),
    ('/?x=1', 200, b'<h1>top</h1>'),
    ('/index.html', 200, b'<h1>top</h1>'),
    ('/sub/', 200, b'<h1>sub</h1>'),
    ('/sub/caf%C3%A9%20au%20lait.zzz', 200, b'\x00\x01'),
    ('/%68ello.txt', 200, b'hello world'),
    ('/empty.json', 200, b''),
    # a directory without the slash: relative links in it would break
    ('/sub', 301, '/sub/'),
    ('/sub?x=1&y', 301, '/sub/?x=1&y'),
    ('/sub?', 301, '/sub/?'),
    ('/noindex', 301, '/noindex/'),
    ('/missing', 404, None),
    ('/hello.txt/', 404, None),
    ('/hello.txt/x', 404, None),
    ('/noindex/', 404, None),
    ('/fifo', 404, None),
    # names starting with a dot are hidden, as if absent
    ('/.env', 404, None),
    ('/%2eenv', 404, None),
    ('/.git', 404, None),
    ('/.git/', 404, None),
    ('/.git/config', 404, None),
    ('/sub/.hidden', 404, None),
    ('/.well-known/x', 404, None),
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
        for method in ('GET', 'HEAD'):
            response = call(app, method, uri)
            assert response[0] == status
            if status == 200:
                assert response[3] == (data if method == 'GET' else None)
                assert response[2]['content-length'] == len(data)
            elif status == 301:
                assert response == (301, 'Moved Permanently', {'location': data}, None)
            else:
                reasons = {400: 'Bad Request', 404: 'Not Found'}
                assert response == (status, reasons[status], {}, None)


# uri -> body, with FilesApp(..., dotfiles=True)
DOTFILES_TABLE = [
    ('/.env', b'SECRET=1'),
    ('/%2eenv', b'SECRET=1'),
    ('/.git/config', b'[core]'),
    ('/sub/.hidden', b'hidden'),
    ('/.git', 301),
    ('/.git/', 404),  # no index.html, no listing
    ('/..', 400),  # still never a way up
    ('/.', 400),
]


@pytest.mark.parametrize('uri, expected', DOTFILES_TABLE)
def test_files_dotfiles_option(root, uri, expected):
    with FilesApp(root, dotfiles=True) as app:
        assert app.dotfiles is True
        response = call(app, 'GET', uri)
        if type(expected) is bytes:
            assert (response[0], response[3]) == (200, expected)
        else:
            assert response[0] == expected
    with FilesApp(root) as app:
        assert app.dotfiles is False
        assert call(app, 'GET', uri)[0] in (400, 404)
    with pytest.raises(TypeError) as e:
        FilesApp(root, dotfiles=1)
    assert str(e.value) == "dotfiles: need a <class 'bool'>; got a <class 'int'>"


def test_files_redirect_under_router(root):
    """The location is the request's own path plus '/', whatever a Router shifted."""
    router = Router({'static': FilesApp(root), 'deep': {'er': FilesApp(root)}})
    assert call(router, 'GET', '/static') == (
        301, 'Moved Permanently', {'location': '/static/'}, None
    )
    assert call(router, 'GET', '/static?q=1')[2] == {'location': '/static/?q=1'}
    assert call(router, 'HEAD', '/deep/er/sub')[:3] == (
        301, 'Moved Permanently', {'location': '/deep/er/sub/'}
    )
    assert call(router, 'GET', '/static/')[3] == b'<h1>top</h1>'


def test_files_headers(root):
    st = os.stat(os.path.join(root, 'hello.txt'))
    with FilesApp(root) as app:
        (status, reason, headers, data) = call(app, 'GET', '/hello.txt')
        assert (status, reason) == (200, 'OK')
        assert headers == {
            'content-length': 11,
            'content-type': 'text/plain; charset=utf-8',
            'accept-ranges': 'bytes',
            'etag': f'"b-{st.st_mtime_ns:x}"',
            'last-modified': email.utils.formatdate(st.st_mtime, usegmt=True),
        }
        assert call(app, 'HEAD', '/hello.txt') == (200, 'OK', headers, None)


_JS_TYPE = applib._MIME.guess_type('x.js')[0]  # text/javascript from Python 3.12

# file name -> content-type
CONTENT_TYPES = [
    ('a.txt', 'text/plain; charset=utf-8'),
    ('a.html', 'text/html; charset=utf-8'),
    ('a.css', 'text/css; charset=utf-8'),
    ('a.csv', 'text/csv; charset=utf-8'),
    ('a.js', _JS_TYPE + '; charset=utf-8'),
    ('a.json', 'application/json'),  # RFC 8259 section 11: no charset parameter
    ('a.svg', 'image/svg+xml'),
    ('a.png', 'image/png'),
    ('a.pdf', 'application/pdf'),
    ('a.zzz', 'application/octet-stream'),  # unknown
    ('noext', 'application/octet-stream'),
    ('a.tar.gz', 'application/gzip'),  # compressed: what the bytes are
    ('a.txt.gz', 'application/gzip'),
    ('a.tar.bz2', 'application/octet-stream'),
    ('a.tar.xz', 'application/octet-stream'),
]


@pytest.mark.parametrize('name, content_type', CONTENT_TYPES)
def test_files_content_type(tmp_path, name, content_type):
    (tmp_path / name).write_bytes(b'x')
    with FilesApp(str(tmp_path)) as app:
        assert call(app, 'GET', '/' + name)[2]['content-type'] == content_type
        assert call(app, 'HEAD', '/' + name)[2]['content-type'] == content_type


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


MAX = 9999999999999999  # Range(N, MAX) is bytes=N-

# the range on an 11-byte file -> (status, data, content-range)
RANGES = [
    (Range(0, 1), 206, b'h', 'bytes 0-0/11'),
    (Range(0, 11), 206, b'hello world', 'bytes 0-10/11'),
    (Range(6, 11), 206, b'world', 'bytes 6-10/11'),
    (Range(10, 11), 206, b'd', 'bytes 10-10/11'),
    (Range(6, 12), 206, b'world', 'bytes 6-10/11'),  # clamped (RFC 9110 14.1.2)
    (Range(0, MAX), 206, b'hello world', 'bytes 0-10/11'),  # bytes=0-
    (Range(10, MAX), 206, b'd', 'bytes 10-10/11'),
    (Range(-5, None), 206, b'world', 'bytes 6-10/11'),  # bytes=-5: the last 5
    (Range(-1, None), 206, b'd', 'bytes 10-10/11'),
    (Range(-11, None), 206, b'hello world', 'bytes 0-10/11'),
    (Range(-500, None), 206, b'hello world', 'bytes 0-10/11'),  # shorter: all of it
    (Range(11, 12), 416, None, 'bytes */11'),
    (Range(11, MAX), 416, None, 'bytes */11'),
    (Range(100, 200), 416, None, 'bytes */11'),
]


@pytest.mark.parametrize('value, status, data, content_range', RANGES)
def test_files_ranges(root, value, status, data, content_range):
    with FilesApp(root) as app:
        # as the server hands it over, and as mkreq() parses a str
        for given in (value, str(value)):
            (s, reason, headers, body) = call(app, 'GET', '/hello.txt', {'range': given})
            assert s == status
            assert headers['content-range'] == content_range
            assert str(headers['content-range']) == content_range
            if status == 206:
                assert reason == 'Partial Content'
                assert body == data and headers['content-length'] == len(data)
            else:
                assert (reason, body) == ('Range Not Satisfiable', None)
                assert 'content-length' not in headers
        # HEAD ignores range (RFC 9110 14.2)
        (s, _, headers, _) = call(app, 'HEAD', '/hello.txt', {'range': value})
        assert s == 200 and 'content-range' not in headers
        # on an empty file no range is satisfiable
        (s, _, headers, body) = call(app, 'GET', '/empty.json', {'range': value})
        assert (s, headers['content-range'], body) == (416, 'bytes */0', None)


# what the server (and mkreq) drop as if absent: the app answers 200
@pytest.mark.parametrize('value', [
    'bytes=0-1,3-4', 'bytes=0-0, -1', 'items=0-1', 'bytes=5-2', 'bytes=-0', 'bytes=-', 'bytes=',
    'bytes 0-1', 'bytes=a-b', '',
])
def test_files_ranges_dropped(root, value):
    request = mkreq('GET', '/hello.txt', {'range': value})
    assert 'range' not in request.headers
    with FilesApp(root) as app:
        (status, _, headers, body) = call(app, 'GET', '/hello.txt', {'range': value})
        assert (status, body) == (200, b'hello world')
        assert 'content-range' not in headers


def test_files_if_range(root):
    path = os.path.join(root, 'hello.txt')
    os.utime(path, (1_000_000_000, 1_000_000_000))
    with FilesApp(root) as app:
        headers = call(app, 'GET', '/hello.txt')[2]
        (etag, lm) = (headers['etag'], headers['last-modified'])
        assert lm == 'Sun, 09 Sep 2001 01:46:40 GMT'
        # if-range -> status for range: bytes=6-
        cases = [
            (etag, 206),  # strong comparison (RFC 9110 section 8.8.3.2)
            ('W/' + etag, 200),  # a weak tag never matches strongly
            ('"other"', 200),
            (etag[:-2] + '"', 200),
            (lm, 206),  # exactly the last-modified date
            ('Sunday, 09-Sep-01 01:46:40 GMT', 206),  # the same date, rfc850-date form
            ('Sun, 09 Sep 2001 01:46:41 GMT', 200),  # later: not an exact match
            ('Sun, 09 Sep 2001 01:46:39 GMT', 200),
            ('yesterday', 200),
            ('*', 200),
            ('', 200),
        ]
        for (if_range, status) in cases:
            got = call(app, 'GET', '/hello.txt', {'range': Range(6, MAX), 'if-range': if_range})
            assert got[0] == status, if_range
            assert got[3] == (b'world' if status == 206 else b'hello world')
        # without a range, if-range changes nothing
        assert call(app, 'GET', '/hello.txt', {'if-range': '"other"'})[0] == 200
        # a failed if-range sends the whole file, even for an unsatisfiable range
        got = call(app, 'GET', '/hello.txt', {'range': Range(50, 60), 'if-range': '"other"'})
        assert (got[0], got[3]) == (200, b'hello world')
        got = call(app, 'GET', '/hello.txt', {'range': Range(50, 60), 'if-range': etag})
        assert got[0] == 416
    # a file modified less than a second ago (here: in the future) has a weak
    # last-modified (RFC 9110 section 8.8.2.2): a date never matches it
    with open(path, 'wb') as fp:
        fp.write(b'HELLO WORLD')
    future = time.time() + 3600
    os.utime(path, (future, future))
    with FilesApp(root) as app:
        headers = call(app, 'GET', '/hello.txt')[2]
        (etag, lm) = (headers['etag'], headers['last-modified'])
        got = call(app, 'GET', '/hello.txt', {'range': Range(6, MAX), 'if-range': lm})
        assert (got[0], got[3]) == (200, b'HELLO WORLD')
        got = call(app, 'GET', '/hello.txt', {'range': Range(6, MAX), 'if-range': etag})
        assert (got[0], got[3]) == (206, b'WORLD')


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
        ('GET', '/hello.txt', {'range': Range(-3, None)}), ('GET', '/sub', {}),
        ('HEAD', '/sub', {}), ('GET', '/.env', {}), ('HEAD', '/', {}),
        ('GET', '/hello.txt', {'range': Range(1, 2), 'if-range': '"x"'}),
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
        r = conn.get('/sub?x', {})
        assert (answer(r), r.headers['location']) == ((301, b''), '/sub/?x')
        assert answer(conn.get('/.env', {})) == (404, b'')
        # a request body is refused; the server drains it and the connection goes on
        r = conn.request('GET', '/hello.txt', {}, b'abc')
        assert answer(r) == (400, b'')
        r = conn.request('GET', '/hello.txt', {}, api.ChunkedBodyIter([(None, b'x'), (None, b'')]))
        assert answer(r) == (400, b'')
        r = conn.request('GET', '/hello.txt', {}, b'')
        assert (r.status, r.body.read()) == (200, b'hello world')
        for uri in ('/missing', '/link_out.txt', '/link_dir/', '/link_dir/index.html',
                    '/sub/up/hello.txt'):
            assert answer(conn.get(uri, {})) == (404, b''), uri
        for uri in ('/%2e%2e/secret.txt', '/sub/%2E%2E%2F%2E%2E%2Fsecret.txt', '/%00'):
            assert answer(conn.get(uri, {})) == (400, b''), uri
        assert answer(conn.put('/hello.txt', {}, b'x')) == (405, b'')
        assert conn.get('/hello.txt', {}).body.read() == b'hello world'  # still alive
        conn.close()
        # '..' as a component never reaches the app: the server refuses it (RFC 3986
        # section 3.3 dot-segments; see doc/rgi.rst)
        data = raw_get(server.address, b'GET /../secret.txt HTTP/1.1\r\nhost: a\r\n\r\n')
        assert data.startswith(b'HTTP/1.1 400 Bad Request\r\n')
        # 416 carries content-range: bytes */11
        data = raw_get(
            server.address,
            b'GET /hello.txt HTTP/1.1\r\nhost: a\r\nrange: bytes=11-20\r\n'
            b'connection: close\r\n\r\n',
        )
        assert data.startswith(b'HTTP/1.1 416 Range Not Satisfiable\r\n')
        assert b'\r\ncontent-range: bytes */11\r\n' in data
        assert b'\r\ncontent-length: 0\r\n' in data
        # a suffix range; several ranges are dropped by the server: 200
        data = raw_get(
            server.address,
            b'GET /hello.txt HTTP/1.1\r\nhost: a\r\nrange: bytes=-5\r\nconnection: close\r\n\r\n',
        )
        assert data.startswith(b'HTTP/1.1 206 Partial Content\r\n')
        assert b'\r\ncontent-range: bytes 6-10/11\r\n' in data and data.endswith(b'\r\nworld')
        data = raw_get(
            server.address,
            b'GET /hello.txt HTTP/1.1\r\nhost: a\r\nrange: bytes=0-1,3-4\r\n'
            b'connection: close\r\n\r\n',
        )
        assert data.startswith(b'HTTP/1.1 200 OK\r\n') and data.endswith(b'\r\nhello world')
        # the redirect, raw: the server frames the empty body
        data = raw_get(
            server.address, b'GET /sub HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n'
        )
        assert data.startswith(b'HTTP/1.1 301 Moved Permanently\r\n')
        assert b'\r\nlocation: /sub/\r\n' in data and b'\r\ncontent-length: 0\r\n' in data


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
        assert answer(conn.get('/missing', {})) == (404, b'')  # warm up: a thread, buffers
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


def test_files_sent_with_sendfile(root, tmp_path, monkeypatch):
    # Over AF_UNIX a large file goes out with sendfile(); over TCP it is
    # copied, which measured faster on loopback (see degu/_transport.py).
    data = os.urandom(200 * 1024)
    with open(os.path.join(root, 'blob.dat'), 'wb') as fp:
        fp.write(data)
    calls = []
    real = os.sendfile

    def sendfile(out_fd, in_fd, offset, count):
        calls.append((offset, count))
        return real(out_fd, in_fd, offset, count)

    monkeypatch.setattr(os, 'sendfile', sendfile)
    for (address, sent) in [
        (str(tmp_path / 'files.sock'), [(0, len(data)), (100, 70000)]),
        (('127.0.0.1', 0), []),
    ]:
        calls.clear()
        with TempServer(address, FilesApp(root), thread=True) as server:
            conn = Client(server.address).connect()
            assert conn.get('/blob.dat', {}).body.read() == data
            r = conn.get_range('/blob.dat', {}, 100, 100 + 70000)
            assert r.body.read() == data[100:70100]
            assert conn.get('/hello.txt', {}).body.read() == b'hello world'  # small: copied
            conn.close()
        # (one call each here; a call may send less, and the loop goes on)
        assert [c for c in calls if c[0] in (0, 100)] == sent


def test_files_under_router(root):
    router = Router({'static': FilesApp(root)})
    assert call(router, 'GET', '/static/')[3] == b'<h1>top</h1>'
    assert call(router, 'GET', '/static')[:3] == (
        301, 'Moved Permanently', {'location': '/static/'}
    )
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


PIECES = ['..', '.', '%2e', '%2E', '%2f', '%2F', '%00', '%5C', 'sub', 'up', 'hello.txt', '.env',
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
            assert response[0] in (200, 301, 400, 404), (uri, response)
            if response[0] == 200 and method == 'GET':
                assert response[3] in allowed, uri
                assert b'secret' not in response[3] and b'SECRET' not in response[3]


# --------------------------------------------------------------------------
# FilesApp(..., listing=True): a folder without index.html lists its entries


def _listed(app, uri):
    (status, reason, headers, body) = app(None, mkreq('GET', uri), api)
    assert (status, reason) == (200, 'OK')
    assert headers == {'content-type': 'text/html; charset=utf-8', 'content-length': len(body)}
    return body.decode()


def _links(page):
    return re.findall(r'<a href="([^"]*)">', page)


def _follow(app, base, page):
    """Resolve every link of *page* (served at *base*) and GET it: the status of each."""
    statuses = {}
    for href in _links(page):
        target = urllib.parse.urljoin('http://example.com' + base, html.unescape(href))
        uri = target[len('http://example.com'):]
        statuses[uri] = app(None, mkreq('GET', uri), api)[0]
    return statuses


def test_files_listing(tmp_path):
    (tmp_path / 'sub dir').mkdir()
    (tmp_path / 'sub dir' / 'inner.txt').write_bytes(b'inner')
    (tmp_path / 'sub dir' / 'deeper').mkdir()
    (tmp_path / 'sub dir' / 'deeper' / 'x.txt').write_bytes(b'x')
    (tmp_path / 'a <b>&c.txt').write_bytes(b'x')
    (tmp_path / 'a:b.txt').write_bytes(b'x')  # 'a:' must not read as a URI scheme
    (tmp_path / '.hidden').write_bytes(b'x')
    (tmp_path / '.git').mkdir()
    (tmp_path / 'outside').symlink_to('/etc/passwd')
    os.mkfifo(tmp_path / 'fifo')
    with FilesApp(str(tmp_path), listing=True) as app:
        page = _listed(app, '/')
        assert '<title>Index of /</title>' in page
        assert _links(page) == ['a%20%3Cb%3E&amp;c.txt', 'a%3Ab.txt', 'sub%20dir/']
        assert '<li><a href="a%20%3Cb%3E&amp;c.txt">a &lt;b&gt;&amp;c.txt</a></li>' in page
        assert '<li><a href="sub%20dir/">sub dir/</a></li>' in page
        for hidden in ('outside', 'fifo', '.hidden', '.git'):
            assert hidden not in page
        assert _follow(app, '/', page) == {
            '/a%20%3Cb%3E&c.txt': 200, '/a%3Ab.txt': 200, '/sub%20dir/': 200,
        }
        # without the trailing slash: a redirect, never a page whose links break
        assert app(None, mkreq('GET', '/sub%20dir?q=1'), api) == (
            301, 'Moved Permanently', {'location': '/sub%20dir/?q=1'}, None
        )
        page = _listed(app, '/sub%20dir/')
        assert '<title>Index of /sub dir/</title>' in page
        assert _links(page) == ['../', 'deeper/', 'inner.txt']
        assert _follow(app, '/sub%20dir/', page) == {
            '/': 200, '/sub%20dir/deeper/': 200, '/sub%20dir/inner.txt': 200,
        }
        assert _listed(app, '/sub%20dir/?q=1') == page
        page = _listed(app, '/sub%20dir/deeper/')
        assert _follow(app, '/sub%20dir/deeper/', page) == {
            '/sub%20dir/': 200, '/sub%20dir/deeper/x.txt': 200,
        }
        (status, _, headers, body) = app(None, mkreq('HEAD', '/'), api)
        assert (status, body) == (200, None)
        assert headers['content-length'] > 0
        assert app(None, mkreq('GET', '/.git/'), api)[0] == 404
        (tmp_path / 'index.html').write_bytes(b'<p>index</p>')
        assert call(app, 'GET', '/')[3] == b'<p>index</p>'  # index.html wins
        (tmp_path / 'index.html').unlink()
    with FilesApp(str(tmp_path), listing=True, dotfiles=True) as app:
        page = _listed(app, '/')
        assert _links(page) == [
            '.git/', '.hidden', 'a%20%3Cb%3E&amp;c.txt', 'a%3Ab.txt', 'sub%20dir/'
        ]
        assert set(_follow(app, '/', page).values()) == {200}
    # under a Router: the links stay right, and the top has no ../
    router = Router({'files': FilesApp(str(tmp_path), listing=True)})
    page = _listed(router, '/files/')
    assert _links(page) == ['a%20%3Cb%3E&amp;c.txt', 'a%3Ab.txt', 'sub%20dir/']
    assert '<title>Index of /files/</title>' in page
    assert set(_follow(router, '/files/', page).values()) == {200}
    page = _listed(router, '/files/sub%20dir/')
    assert _follow(router, '/files/sub%20dir/', page) == {
        '/files/': 200, '/files/sub%20dir/deeper/': 200, '/files/sub%20dir/inner.txt': 200,
    }
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
