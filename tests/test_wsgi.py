"""Tests of degu.wsgi: WSGI apps on a degu server (wsgiref.validate around
them, a Flask app end to end), and RGI apps under a WSGI server."""

import contextlib
import http.client
import io
import threading
import wsgiref.simple_server
import wsgiref.validate

import pytest

from degu.base import api
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
