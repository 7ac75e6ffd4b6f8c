"""Tests of degu.wsgi: WSGI apps on a degu server (wsgiref.validate around
them, a Flask app end to end), and RGI apps under a WSGI server."""

import contextlib
import http.client
import io
import socket
import threading
import wsgiref.simple_server
import wsgiref.util
import wsgiref.validate

import pytest

from degu.base import Range, api
from degu.client import Client
from degu.misc import mkreq
from degu.server import Server
from degu.wsgi import FileWrapper, WSGIApp, WSGIInput, WSGIWrapper

TIMEOUT = 10


@contextlib.contextmanager
def serving(app, **options):
    server = Server(('127.0.0.1', 0), app, **options)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(TIMEOUT)


class Session:
    def __init__(self, address=('127.0.0.1', 4567)):
        self.address = address
        self.store = {}


def echo_app(environ, start_response):
    """Answers with the environ keys that matter, and the request body."""
    parts = []
    while True:  # read(size) only: wsgiref.validate refuses a bare read()
        data = environ['wsgi.input'].read(8192)
        if not data:
            break
        parts.append(data)
    body = b''.join(parts)
    lines = [f'{k}={environ.get(k)!r}' for k in (
        'REQUEST_METHOD', 'SCRIPT_NAME', 'PATH_INFO', 'QUERY_STRING', 'CONTENT_TYPE',
        'CONTENT_LENGTH', 'SERVER_PROTOCOL', 'HTTP_X_CUSTOM', 'wsgi.url_scheme')]
    data = '\n'.join(lines).encode() + b'\nbody=' + body
    start_response('200 OK', [('Content-Type', 'text/plain'),
                              ('Content-Length', str(len(data)))])
    return [data]


def streaming_app(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Set-Cookie', 'a=1'),
                              ('Set-Cookie', 'b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT')])

    def generate():
        for i in range(3):
            yield b'part %d\n' % i

    return generate()


def write_app(environ, start_response):
    write = start_response('201 Created', [('Content-Type', 'text/plain')])
    write(b'written ')
    return [b'and ', b'returned']


def test_environ():
    request = mkreq('POST', '/a%20b/c?x=1', {'content-type': 'text/plain',
                                             'content-length': 3, 'x-custom': 'yes',
                                             'host': 'example.com:8080'},
                    None, shift=1)
    environ = WSGIApp(echo_app).environ(Session(), request)
    assert environ['SCRIPT_NAME'] == '/a b'
    assert environ['PATH_INFO'] == '/c'
    assert environ['QUERY_STRING'] == 'x=1'
    assert environ['CONTENT_LENGTH'] == '3'
    assert environ['CONTENT_TYPE'] == 'text/plain'
    assert environ['HTTP_X_CUSTOM'] == 'yes'
    assert (environ['SERVER_NAME'], environ['SERVER_PORT']) == ('example.com', '8080')
    assert environ['REMOTE_ADDR'] == '127.0.0.1'
    assert environ['wsgi.input_terminated'] is True
    environ = WSGIApp(echo_app).environ(Session('/tmp/sock'), mkreq('GET', '/'))
    assert environ['PATH_INFO'] == '/'
    assert environ['SCRIPT_NAME'] == ''
    assert (environ['SERVER_NAME'], environ['SERVER_PORT']) == ('localhost', '80')


def test_environ_drops_names_with_underscores():
    """x_forwarded_for must not pass off as x-forwarded-for (both HTTP_X_FORWARDED_FOR)."""
    for headers in (
        {'x_forwarded_for': '6.6.6.6', 'x-forwarded-for': '10.0.0.1'},
        {'x-forwarded-for': '10.0.0.1', 'x_forwarded_for': '6.6.6.6'},
    ):
        environ = WSGIApp(echo_app).environ(Session(), mkreq('GET', '/', headers))
        assert environ['HTTP_X_FORWARDED_FOR'] == '10.0.0.1'
    headers = {'x_user': 'admin', 'content_type': 'a/b', 'content_length': '5', 'x-ok': '1'}
    environ = WSGIApp(echo_app).environ(Session(), mkreq('GET', '/', headers))
    assert environ['HTTP_X_OK'] == '1'
    for key in ('HTTP_X_USER', 'CONTENT_TYPE', 'CONTENT_LENGTH', 'HTTP_CONTENT_TYPE',
                'HTTP_CONTENT_LENGTH'):
        assert key not in environ


def test_environ_drops_underscores_live():
    def app(environ, start_response):
        data = repr(sorted(k for k in environ if k.startswith('HTTP_'))).encode()
        start_response('200 OK', [('Content-Length', str(len(data)))])
        return [data]

    with serving(WSGIApp(app)) as server:
        with socket.create_connection(server.address, timeout=TIMEOUT) as sock:
            sock.sendall(b'GET / HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 6.6.6.6\r\n'
                         b'X-Real: 1\r\nConnection: close\r\n\r\n')
            data = b''
            while True:
                piece = sock.recv(65536)
                if not piece:
                    break
                data += piece
    assert data.endswith(b"\r\n\r\n['HTTP_CONNECTION', 'HTTP_HOST', 'HTTP_X_REAL']")


def test_wsgi_input():
    stream = WSGIInput(api.Body(io.BytesIO(b'line one\nline two\nrest'), 22))
    assert stream.readline() == b'line one\n'
    assert stream.read(4) == b'line'
    assert stream.readline(3) == b' tw'
    assert list(stream) == [b'o\n', b'rest']
    assert stream.read() == b''
    assert WSGIInput(None).read() == b''


@pytest.mark.parametrize('app', [echo_app, streaming_app, write_app])
def test_validated_apps_live(app):
    with serving(WSGIApp(wsgiref.validate.validator(app))) as server:
        conn = http.client.HTTPConnection(*server.address, timeout=TIMEOUT)
        for _ in range(2):
            conn.request('POST', '/x?y=z', body=b'payload', headers={'X-Custom': 'hi'})
            response = conn.getresponse()
            data = response.read()
            assert response.status in (200, 201)
        conn.close()
    if app is echo_app:
        assert b"REQUEST_METHOD='POST'" in data
        assert b"PATH_INFO='/x'" in data
        assert b"QUERY_STRING='y=z'" in data
        assert b"HTTP_X_CUSTOM='hi'" in data
        assert data.endswith(b'body=payload')
    elif app is streaming_app:
        assert response.getheader('transfer-encoding') == 'chunked'
        assert response.msg.get_all('set-cookie') == [
            'a=1', 'b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT']
        assert data == b'part 0\npart 1\npart 2\n'
    else:
        assert data == b'written and returned'


def test_chunked_upload_and_degu_client():
    with serving(WSGIApp(echo_app)) as server:
        conn = Client(server.address).connect()
        body = api.ChunkedBodyIter([(None, b'chunk1 '), (None, b'chunk2'), (None, b'')])
        response = conn.put('/up', {}, body)
        data = response.body.read()
        assert b'CONTENT_LENGTH=None' in data
        assert data.endswith(b'body=chunk1 chunk2')
        response = conn.head('/up', {})
        assert response.body is None
        conn.close()


def test_hop_by_hop_from_a_wsgi_app():
    from degu.wsgi import HOP_BY_HOP

    def app_setting(name):
        def app(environ, start_response):
            start_response('200 OK', [(name, 'x')])
            return [b'x']

        return app

    for name in HOP_BY_HOP:
        with pytest.raises(ValueError) as e:
            WSGIApp(app_setting(name.title()))(Session(), mkreq('GET', '/'), api)
        assert str(e.value) == f'WSGI app set a hop-by-hop header: {name.title()!r}'
    # ...and an RGI app's hop-by-hop fields never reach the WSGI server.
    headers = dict.fromkeys(HOP_BY_HOP, 'x')
    headers.update({'transfer-encoding': 'chunked', 'x-end': 'kept'})
    body = api.ChunkedBodyIter([(None, b'a'), (None, b'')])
    (status, got, data, _) = wrapped((200, 'OK', headers, body))
    assert (got, data) == ([('x-end', 'kept')], b'a')


def test_errors_from_the_app():
    def no_start(environ, start_response):
        return [b'oops']

    def bad_header(environ, start_response):
        start_response('200 OK', [('Connection', 'close')])
        return [b'x']

    def raises(environ, start_response):
        raise RuntimeError('broken')

    for app in (no_start, bad_header, raises):
        with serving(WSGIApp(app)) as server:
            conn = http.client.HTTPConnection(*server.address, timeout=TIMEOUT)
            conn.request('GET', '/')
            assert conn.getresponse().status == 500
            conn.close()


def test_exc_info_before_and_after_headers():
    def app(environ, start_response):
        start_response('200 OK', [])
        try:
            raise ValueError('late')
        except ValueError:
            import sys

            start_response('500 Oops', [('Content-Length', '4')], sys.exc_info())
        return [b'oops']

    (status, reason, headers, body) = WSGIApp(app)(Session(), mkreq('GET', '/'), api)
    assert (status, reason, body) == (500, 'Oops', b'oops')


def test_file_wrapper_uses_a_body(tmp_path):
    path = tmp_path / 'data.bin'
    path.write_bytes(b'f' * 100000)

    def app(environ, start_response):
        start_response('200 OK', [('Content-Length', '100000')])
        return environ['wsgi.file_wrapper'](open(path, 'rb'))

    (status, reason, headers, body) = WSGIApp(app)(Session(), mkreq('GET', '/'), api)
    assert isinstance(body, api.Body)
    with serving(WSGIApp(app)) as server:
        conn = Client(server.address).connect()
        assert conn.get('/', {}).body.read() == b'f' * 100000
        conn.close()
    assert list(FileWrapper(io.BytesIO(b'abc'), 2)) == [b'ab', b'c']


def test_flask_app_end_to_end():
    flask = pytest.importorskip('flask')
    app = flask.Flask('degu_test')

    @app.route('/hello/<name>')
    def hello(name):
        return flask.jsonify(hello=name, q=flask.request.args.get('q'))

    @app.route('/upload', methods=['POST'])
    def upload():
        return {'size': len(flask.request.get_data())}

    @app.route('/stream')
    def stream():
        return flask.Response((b'%d,' % i for i in range(5)), mimetype='text/csv')

    with serving(WSGIApp(app)) as server:
        conn = Client(server.address).connect()
        response = conn.get('/hello/world?q=1', {})
        assert response.status == 200
        assert response.headers['content-type'] == 'application/json'
        assert response.body.read().replace(b' ', b'').strip() == b'{"hello":"world","q":"1"}'
        response = conn.post('/upload', {'content-type': 'application/octet-stream'},
                             b'x' * 100000)
        assert response.body.read().replace(b' ', b'').strip() == b'{"size":100000}'
        response = conn.get('/stream', {})
        assert response.body.read() == b'0,1,2,3,4,'
        response = conn.get('/missing', {})
        assert response.status == 404
        response.body.read()
        conn.close()


def rgi_app(session, request, api):
    body = request.body.read() if request.body is not None else b''
    return (200, 'OK', {'x-path': request.uri, 'set-cookie': ['a=1', 'b=2'],
                        'content-type': 'text/plain'},
            b'rgi: ' + body)


def test_rgi_app_under_a_wsgi_server():
    httpd = wsgiref.simple_server.make_server(
        '127.0.0.1', 0, wsgiref.validate.validator(WSGIWrapper(rgi_app)),
        handler_class=_QuietHandler)
    thread = threading.Thread(target=httpd.serve_forever)
    thread.start()
    try:
        conn = http.client.HTTPConnection('127.0.0.1', httpd.server_port, timeout=TIMEOUT)
        conn.request('POST', '/a/b%20c?d=e', body=b'data')
        response = conn.getresponse()
        assert response.read() == b'rgi: data'
        assert response.getheader('x-path') == '/a/b%20c?d=e'
        assert response.msg.get_all('set-cookie') == ['a=1', 'b=2']
        conn.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(TIMEOUT)


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, *args):
        pass


# --------------------------------------------------------------------------
# Streaming: WSGIApp takes nothing from the iterable before the server asks


class Counted:
    """A WSGI app whose response iterable counts the items taken from it."""

    def __init__(self, items, headers=(), lazy=False, gate=None):
        self.items = items
        self.headers = list(headers)
        self.lazy = lazy  # call start_response only when the first item is taken
        self.gate = gate  # an Event to wait for before the second item
        self.taken = 0
        self.closed = 0  # calls to the iterable's close()

    def __call__(self, environ, start_response):
        if not self.lazy:
            start_response('200 OK', self.headers)
        return CountedResult(self, start_response)


class CountedResult:
    """The iterable of a Counted app: a class with close(), as frameworks return."""

    def __init__(self, app, start_response):
        self.app = app
        self.start_response = start_response

    def __iter__(self):
        app = self.app
        for (i, data) in enumerate(app.items):
            if i == 0 and app.lazy:
                self.start_response('200 OK', app.headers)
            if i == 1 and app.gate is not None:
                assert app.gate.wait(TIMEOUT), 'the first item did not reach the client'
            app.taken += 1
            yield data

    def close(self):
        self.app.closed += 1


@pytest.mark.parametrize('lazy', [False, True])
def test_generator_is_not_read_ahead(lazy):
    for headers in ([], [('Content-Length', '9')]):
        app = Counted([b'one', b'two', b'six'], headers, lazy=lazy)
        (status, reason, rheaders, body) = WSGIApp(app)(Session(), mkreq('GET', '/'), api)
        # PEP 3333: a lazy start_response comes with the first item, which
        # is therefore taken; nothing else is
        assert app.taken == (1 if lazy else 0)
        if headers:
            assert type(body) is api.BodyIter and body.content_length == 9
            items = iter(body.source)
        else:
            assert type(body) is api.ChunkedBodyIter
            items = (data for (_, data) in body.source)
        assert next(items) == b'one'
        assert app.taken == 1
        assert next(items) == b'two'
        assert app.taken == 2
        assert list(items) == [b'six'] + ([] if headers else [b''])
        assert app.closed == 1  # at the end
        body.source.close()
        assert app.closed == 1  # once
        # the server closes the body source when the response ends early or
        # never starts: the app's iterable is closed then (PEP 3333)
        for take in (0, 1):
            app = Counted([b'one', b'two'], headers, lazy=lazy)
            body = WSGIApp(app)(Session(), mkreq('GET', '/'), api)[3]
            for _ in range(take):
                next(iter(body.source))
            assert app.closed == 0
            body.source.close()
            assert app.closed == 1 and app.taken == max(take, lazy)


@pytest.mark.parametrize('length', [None, 6])
def test_streaming_live(length):
    """The first item reaches the client while the app waits to produce the second."""
    gate = threading.Event()
    headers = [] if length is None else [('Content-Length', str(length))]
    app = Counted([b'first', b'!'], headers, gate=gate)
    with serving(WSGIApp(app)) as server:
        conn = Client(server.address, timeout=TIMEOUT).connect()
        response = conn.get('/', {})
        if length is None:
            assert response.body.readchunk() == (None, b'first')
        else:
            assert response.body.read(5) == b'first'
        gate.set()
        assert response.body.read() == b'!'
        conn.close()


def test_lists_are_at_hand():
    """A list or tuple (and write() data) is all there: sent with its length."""
    for result in ([b'ab', b'', b'cde'], (b'ab', b'cde'), [b'abcde'], [b'', b'abcde'], []):
        def app(environ, start_response, result=result):
            start_response('200 OK', [])
            return result

        (status, reason, headers, body) = WSGIApp(app)(Session(), mkreq('GET', '/'), api)
        if len([data for data in result if data]) > 1:
            assert type(body) is api.BodyIter and body.content_length == 5
            assert b''.join(body.source) == b'abcde'
        else:
            assert body == (b'abcde' if result else b'')  # one piece: bytes
    (status, reason, headers, body) = WSGIApp(write_app)(Session(), mkreq('GET', '/'), api)
    assert (status, body.content_length) == (201, 20)
    assert b''.join(body.source) == b'written and returned'

    def bad_item(environ, start_response):
        start_response('200 OK', [])
        return [b'ok', 'text']

    with pytest.raises(TypeError) as e:
        WSGIApp(bad_item)(Session(), mkreq('GET', '/'), api)
    assert str(e.value) == "WSGI response item: need bytes; got <class 'str'>"

    def bad_length(environ, start_response):
        start_response('200 OK', [('Content-Length', '7')])
        return [b'ab', b'cde']

    with pytest.raises(ValueError) as e:  # before anything is sent: a 500
        WSGIApp(bad_length)(Session(), mkreq('GET', '/'), api)
    assert str(e.value) == 'WSGI app set Content-Length 7, but returned 5 bytes'


def test_written_data_goes_first_then_the_iterable():
    def app(environ, start_response):
        write = start_response('200 OK', [])
        write(b'written, ')

        def rest():
            yield b'then streamed'

        return rest()

    (status, reason, headers, body) = WSGIApp(app)(Session(), mkreq('GET', '/'), api)
    assert type(body) is api.ChunkedBodyIter
    assert list(body.source) == [(None, b'written, '), (None, b'then streamed'), (None, b'')]


# --------------------------------------------------------------------------
# WSGIWrapper: what the WSGI server is told


def wrapped(response, method='GET', environ=None):
    """Run an RGI app answering *response* under WSGIWrapper.

    Returns ``(status, headers, data, request)``: what the WSGI server was
    told and sent, and the request the app saw.  A callable body in
    *response* is called for a fresh body.
    """
    seen = {}

    def app(session, request, api):
        seen['request'] = request
        body = response[3]() if callable(response[3]) else response[3]
        return response[:3] + (body,)

    env = {'REQUEST_METHOD': method, 'PATH_INFO': '/x', 'QUERY_STRING': ''}
    env.update(environ or {})
    wsgiref.util.setup_testing_defaults(env)
    started = []
    result = WSGIWrapper(app)(env, lambda status, headers: started.append((status, headers)))
    data = b''.join(result)
    [(status, headers)] = started
    return (status, headers, data, seen['request'])


_SOCKETS = []  # the reading ends of close_delimited() bodies, closed by the test


def close_delimited(data):
    """A Body read until its connection closes, as the client returns one."""
    from degu.base import SocketWrapper

    (a, b) = socket.socketpair()
    b.sendall(data)
    b.close()
    _SOCKETS.append(a)
    return api.Body(SocketWrapper(a), None)


# RGI response -> the headers the WSGI server gets, and the data
WRAPPER_FRAMING = [
    ((404, 'Not Found', {}, None), 'GET', [('content-length', '0')], b''),
    ((200, 'OK', {'x': '1'}, None), 'GET', [('x', '1'), ('content-length', '0')], b''),
    ((200, 'OK', {'content-length': 0}, None), 'GET', [('content-length', '0')], b''),
    ((200, 'OK', {'content-length': 7}, None), 'HEAD', [('content-length', '7')], b''),
    ((200, 'OK', {}, None), 'HEAD', [], b''),
    ((204, 'No Content', {}, None), 'GET', [], b''),
    ((304, 'Not Modified', {'etag': '"x"'}, None), 'GET', [('etag', '"x"')], b''),
    ((200, 'OK', {}, b'abc'), 'GET', [('content-length', '3')], b'abc'),
    ((200, 'OK', {}, lambda: close_delimited(b'until the end')), 'GET', [], b'until the end'),
    ((200, 'OK', {}, lambda: api.BodyIter([b'a', b'bc'], 3)), 'GET',
     [('content-length', '3')], b'abc'),
    ((200, 'OK', {}, lambda: api.ChunkedBodyIter([(None, b'a'), (None, b'')])), 'GET', [], b'a'),
]


@pytest.mark.parametrize('response, method, headers, data', WRAPPER_FRAMING)
def test_wrapper_framing(response, method, headers, data):
    try:
        (status, got, received, _) = wrapped(response, method)
        assert got == headers
        assert received == data
    finally:
        while _SOCKETS:
            _SOCKETS.pop().close()


def test_wrapper_bodies_go_through_the_body_protocol(tmp_path):
    # Every body type: its data as produced, checked as the server checks
    # it, and released (file or source closed) when the WSGI server closes
    # the iterable, as PEP 3333 says it does.
    closed = []

    class Source:  # an iterable whose close() only a release calls
        def __iter__(self):
            return iter([b'ab', b'c'])

        def close(self):
            closed.append('source')

    source = Source

    path = tmp_path / 'f'
    path.write_bytes(b'file data')
    bodies = [
        (lambda: api.BodyIter(source(), 3), b'abc', ['source']),
        (lambda: api.ChunkedBodyIter([(('k', 'v'), b'x'), (None, b'')]), b'x', []),
        (lambda: api.ChunkedBody(io.BytesIO(b'1;k=v\r\ny\r\n0\r\n\r\n')), b'y', []),
        (lambda: api.Body(open(path, 'rb'), 9), b'file data', []),
    ]
    for (make, data, released) in bodies:
        closed.clear()
        body = make()

        def app(session, request, api, body=body):
            return (200, 'OK', {}, body)

        env = {'REQUEST_METHOD': 'GET', 'PATH_INFO': '/', 'QUERY_STRING': ''}
        wsgiref.util.setup_testing_defaults(env)
        result = WSGIWrapper(app)(env, lambda status, headers: None)
        assert b''.join(result) == data
        result.close()
        assert closed == released
        assert body.state == 2  # BODY_CONSUMED
        if isinstance(body, api.Body):
            assert body.rfile.closed  # the file behind it was closed
    # a BodyIter that says more than its source gives is refused, not passed on
    env = {'REQUEST_METHOD': 'GET', 'PATH_INFO': '/', 'QUERY_STRING': ''}
    wsgiref.util.setup_testing_defaults(env)
    short = WSGIWrapper(lambda s, r, a: (200, 'OK', {}, a.BodyIter([b'ab'], 3)))
    with pytest.raises(ValueError, match='deceeds content_length: 2 < 3'):
        b''.join(short(env, lambda status, headers: None))


def test_wrapper_request_range():
    for (value, expected) in [('bytes=0-4', Range(0, 5)), ('bytes=-5', Range(-5, None)),
                              ('bytes=0-1,3-4', None), ('items=1-2', None)]:
        request = wrapped((200, 'OK', {}, None), environ={'HTTP_RANGE': value})[3]
        assert request.headers.get('range') == expected
        if expected is not None:
            assert type(request.headers['range']) is Range


def test_wrapper_none_body_live():
    """Under wsgiref, a None body is an empty response, not a wait for the close."""

    def app(session, request, api):
        return (404, 'Not Found', {'content-type': 'text/plain'}, None)  # validate wants it

    httpd = wsgiref.simple_server.make_server(
        '127.0.0.1', 0, wsgiref.validate.validator(WSGIWrapper(app)),
        handler_class=_QuietHandler)
    thread = threading.Thread(target=httpd.serve_forever)
    thread.start()
    try:
        conn = http.client.HTTPConnection('127.0.0.1', httpd.server_port, timeout=TIMEOUT)
        conn.request('GET', '/missing')
        response = conn.getresponse()
        assert (response.status, response.getheader('content-length')) == (404, '0')
        assert response.read() == b''
        conn.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(TIMEOUT)
