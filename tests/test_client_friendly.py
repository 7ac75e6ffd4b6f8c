"""The client's shorter calls: URLs, optional headers, folded names, more
body types, request-targets from names, JSON, and raise_for_status().

Live tests over real sockets: a degu TempServer in a thread (IPv4, IPv6,
AF_UNIX, TLS) and the standard library's http.server as a peer we did not
write.
"""

import http.server
import io
import json
import os
import socket
import ssl
import threading

import pytest

from degu.base import Body, ChunkedBodyIter
from degu.client import (
    Client,
    ClientResponse,
    Connection,
    HTTPError,
    Response,
    SSLClient,
    from_url,
    parse_url,
)
from degu.misc import TempPKI, TempServer, TempSSLServer
from degu.util import build_target, unquote

TIMEOUT = 5  # seconds: every client socket here


def app(session, request, api):
    """Echo what arrived, as JSON: method, uri, decoded path, headers, body."""
    body = request.body
    if request.path == ['status']:
        status = int(request.query)
        return (status, 'Custom', {}, None if status in (204, 304) else b'status body')
    if request.path == ['chunked-json']:
        return (200, 'OK', {}, ChunkedBodyIter([(None, b'[1, '), (None, b'2]'), (None, b'')]))
    data = b''
    framing = None
    if body is not None:
        framing = 'chunked' if body.chunked else 'length'
        data = body.read() if not body.chunked else b''.join(d for (_, d) in body)
    out = {
        'method': request.method,
        'uri': request.uri,
        'path': [unquote(c) for c in request.path],
        'query': request.query,
        'headers': {k: str(v) for (k, v) in request.headers.items()},
        'framing': framing,
        'body': data.decode('latin-1'),
    }
    if request.method == 'HEAD':
        return (200, 'OK', {}, None)
    return (200, 'OK', {'content-type': 'application/json'}, json.dumps(out).encode())


@pytest.fixture(scope='module', params=['ipv4', 'ipv6', 'unix'])
def server(request, tmp_path_factory):
    if request.param == 'ipv4':
        address = ('127.0.0.1', 0)
    elif request.param == 'ipv6':
        address = ('::1', 0, 0, 0)
    else:
        address = str(tmp_path_factory.mktemp('sock') / 'degu.socket')
    with TempServer(address, app, thread=True) as s:
        yield s


def _url(address):
    if isinstance(address, str):
        return 'http+unix://' + address.replace('/', '%2F') + '/'
    if ':' in address[0]:
        return f'http://[{address[0]}]:{address[1]}/'
    return f'http://{address[0]}:{address[1]}'


# --------------------------------------------------------------------------
# URLs


@pytest.mark.parametrize(
    'url, expected',
    [
        ('http://127.0.0.1:8101/', ('http', ('127.0.0.1', 8101))),
        ('http://127.0.0.1', ('http', ('127.0.0.1', 80))),
        ('HTTP://Example.COM:8080', ('http', ('example.com', 8080))),
        ('https://example.com/', ('https', ('example.com', 443))),
        ('https://[::1]:8443', ('https', ('::1', 8443))),
        ('http://[fe80::1]/', ('http', ('fe80::1', 80))),
        ('http://[fe80::1%25eth0]:8080/', ('http', ('fe80::1%eth0', 8080))),
        ('http+unix://%2Frun%2Fapi.sock/', ('http+unix', '/run/api.sock')),
        ('http+unix://%2Frun%2Fapi.sock', ('http+unix', '/run/api.sock')),
        ('http+unix://%00degu', ('http+unix', b'\x00degu')),
    ],
)
def test_parse_url(url, expected):
    assert parse_url(url) == expected


@pytest.mark.parametrize(
    'url, exc, message',
    [
        ('ftp://example.com/', ValueError,
         "url: need an http, https or http+unix URL; got 'ftp://example.com/'"),
        ('http://example.com/api', ValueError,
         "url: need no path (give it with each request); got 'http://example.com/api'"),
        ('http://example.com/?x=1', ValueError,
         "url: need no query or fragment; got 'http://example.com/?x=1'"),
        ('http://example.com/#top', ValueError,
         "url: need no query or fragment; got 'http://example.com/#top'"),
        ('http://example.com?', ValueError,
         "url: need no query or fragment; got 'http://example.com?'"),
        ('http://user:secret@example.com/', ValueError,
         'url: user info is not supported (use the authorization option)'),
        ('http://:80/', ValueError, "url: need a host; got 'http://:80/'"),
        ('http://example.com:99999/', ValueError,
         "url: Port out of range 0-65535: 'http://example.com:99999/'"),
        ('http+unix:///', ValueError,
         "url: need a percent-encoded socket path; got 'http+unix:///'"),
        ('http+unix://run%2Fapi.sock', ValueError,
         "address: bad socket filename: 'run/api.sock'"),
        ('http+unix://%2Fcaf%C3', ValueError, "path component not UTF-8: '%2Fcaf%C3'"),
        ('http://[fe80::1%eth0]/', ValueError,
         "url: need an IPv6 zone as '%25zone'; got 'http://[fe80::1%eth0]/'"),
        ('http://[fe80::1%25]/', ValueError,
         "url: need an IPv6 zone as '%25zone'; got 'http://[fe80::1%25]/'"),
        (b'http://x/', TypeError, "url: need a <class 'str'>; got a <class 'bytes'>: b'http://x/'"),
    ],
)
def test_parse_url_errors(url, exc, message):
    with pytest.raises(exc) as e:
        parse_url(url)
    assert str(e.value) == message


def test_url_clients():
    client = Client('http://127.0.0.1:8101/')
    assert (client.address, client.host) == (('127.0.0.1', 8101), '127.0.0.1:8101')
    client = Client('http://[::1]/')
    assert (client.address, client.host) == (('::1', 80), '[::1]')
    client = Client('http+unix://%2Frun%2Fapi.sock/')
    assert (client.address, client.host) == ('/run/api.sock', 'localhost')
    assert type(from_url('http://127.0.0.1:8101')) is Client
    client = from_url('https://localhost:8443/')
    assert type(client) is SSLClient
    assert (client.address, client.host, client.ssl_host) == (
        ('localhost', 8443), 'localhost:8443', 'localhost')
    assert client.sslctx.verify_mode == ssl.CERT_REQUIRED and client.sslctx.check_hostname
    assert from_url('https://[::1]').host == '[::1]'
    # The old address forms are unchanged.
    assert Client(('127.0.0.1', 80)).host == '127.0.0.1'
    with pytest.raises(ValueError) as e:
        Client('tmp/socket')
    assert str(e.value) == "address: bad socket filename: 'tmp/socket'"


def test_url_client_errors():
    with pytest.raises(ValueError) as e:
        Client('https://example.com/')
    assert str(e.value) == (
        'an https URL needs an SSLClient: use degu.client.from_url() or SSLClient(sslctx, url)'
    )
    with pytest.raises(ValueError) as e:
        SSLClient({}, 'http://example.com/')
    assert str(e.value) == "an SSLClient needs an https URL; got 'http://example.com/'"
    with pytest.raises(ValueError) as e:
        from_url('http://example.com/', {})
    assert str(e.value) == "sslctx given for a http URL: 'http://example.com/'"
    with pytest.raises(TypeError) as e:
        from_url('http://example.com/', timeout=1, bogus=2)
    assert str(e.value) == 'unsupported Client() **options: bogus'


def test_url_live(server):
    client = from_url(_url(server.address), timeout=TIMEOUT)
    assert client.address == server.address[:2] or client.address == server.address
    with client.connect() as conn:
        got = conn.get('/a').json()
        assert got['uri'] == '/a'
        assert got['headers']['host'] == client.host


@pytest.fixture(scope='module')
def pki():
    with TempPKI(client_pki=False) as pki:
        yield pki


@pytest.mark.parametrize('host', ['127.0.0.1', '::1'])
def test_https_url_live(pki, host):
    address = (host, 0) if host == '127.0.0.1' else (host, 0, 0, 0)
    with TempSSLServer(pki.anonymous_server_sslconfig, address, app, thread=True) as s:
        url = f'https://{host}:{s.address[1]}/' if ':' not in host else (
            f'https://[{host}]:{s.address[1]}/')
        client = from_url(url, pki.anonymous_client_sslconfig, timeout=TIMEOUT)
        with client.connect() as conn:
            assert conn.get('/tls').json()['uri'] == '/tls'
        # The default context verifies against the system CAs: our test CA is not one.
        client = from_url(url, timeout=TIMEOUT)
        with pytest.raises(ssl.SSLCertVerificationError):
            client.connect()


# --------------------------------------------------------------------------
# Optional headers and body


def test_headers_optional(server):
    client = Client(server.address, timeout=TIMEOUT)
    with client.connect() as conn:
        for (call, method) in ((conn.get, 'GET'), (conn.delete, 'DELETE')):
            got = call('/x').json()
            assert (got['method'], got['body'], got['framing']) == (method, '', None)
        r = conn.head('/x')
        assert (r.status, r.body) == (200, None)
        got = conn.put('/x').json()
        assert (got['method'], got['headers']['content-length']) == ('PUT', '0')
        got = conn.post('/x', body=b'hi').json()
        assert (got['method'], got['body']) == ('POST', 'hi')
        got = conn.request('PATCH', '/x', body=b'p').json()
        assert (got['method'], got['body']) == ('PATCH', 'p')
        conn.send_request('GET', '/pipelined')
        assert conn.read_response().json()['uri'] == '/pipelined'
        # The 0.19 calls, positional headers and body, are unchanged.
        got = conn.put('/x', {}, b'old').json()
        assert got['body'] == 'old'


# --------------------------------------------------------------------------
# Header names in capitals


def test_header_names_folded(server):
    client = Client(server.address, timeout=TIMEOUT)
    with client.connect() as conn:
        headers = {'X-Token': 'secret', 'Accept': '*/*', 'x-lower': '1'}
        got = conn.get('/h', headers).json()['headers']
        assert (got['x-token'], got['accept'], got['x-lower']) == ('secret', '*/*', '1')
        # The caller's dict is not changed (no base headers, no folding).
        assert headers == {'X-Token': 'secret', 'Accept': '*/*', 'x-lower': '1'}
        headers = {'x-token': 'secret'}  # lower case: as in 0.19, the dict gets the base headers
        conn.get('/h', headers).json()
        assert headers == {'x-token': 'secret', 'host': client.host}


@pytest.mark.parametrize(
    'headers, exc, message',
    [
        ({'X-Token': 'a', 'x-token': 'b'}, ValueError,
         "header names 'X-Token' and 'x-token' are the same field 'x-token'"),
        ({'Content-Type': 'a', 'CONTENT-TYPE': 'b'}, ValueError,
         "header names 'Content-Type' and 'CONTENT-TYPE' are the same field 'content-type'"),
        # Non-ASCII names are never folded: the Kelvin sign would become a 'k'.
        ({'X-To\u212aen': 'a'}, ValueError, "bad header name: 'X-To\u212aen'"),
        ({'X Token': 'a'}, ValueError, "bad header name: 'x token'"),
    ],
)
def test_header_name_errors(server, headers, exc, message):
    conn = Client(server.address, timeout=TIMEOUT).connect()
    with pytest.raises(exc) as e:
        conn.get('/h', headers)
    assert str(e.value) == message
    assert conn.closed


def test_fold_names_remembers_only_token_names():
    # Lower-case token names join the checked set, so the next request skips
    # folding; anything else never does, and the renderer still refuses it.
    from degu._parse import _GOOD_NAMES, fold_names

    saved = set(_GOOD_NAMES)
    _GOOD_NAMES.clear()  # bounded: other tests may have filled it
    try:
        for headers in ({'x-fold-ok': '1'}, {'x fold bad': '1'}, {'x-fold-\u212a': '1'},
                        {7: '1'}):
            assert fold_names(headers) is headers
        assert _GOOD_NAMES == {'x-fold-ok'}
    finally:
        _GOOD_NAMES.clear()
        _GOOD_NAMES.update(saved)


def test_bad_lower_case_name_refused_every_time(server):
    for _ in range(2):
        conn = Client(server.address, timeout=TIMEOUT).connect()
        with pytest.raises(ValueError) as e:
            conn.get('/h', {'x token': 'a'})
        assert str(e.value) == "bad header name: 'x token'"
        assert conn.closed


# --------------------------------------------------------------------------
# Body types


def test_bytes_like_bodies(server):
    with Client(server.address, timeout=TIMEOUT).connect() as conn:
        for body in (bytearray(b'array'), memoryview(b'xview')[1:], memoryview(bytearray(b'mv'))):
            got = conn.put('/b', body=body).json()
            assert (got['body'], got['framing']) == (bytes(body).decode(), 'length')
        big = bytearray(16 * 1024 * 1024 + 1)
    conn = Client(server.address, timeout=TIMEOUT).connect()
    with pytest.raises(ValueError) as e:
        conn.put('/b', body=big)
    assert str(e.value) == 'need len(body) <= 16777216; got 16777217'
    assert conn.closed


@pytest.mark.parametrize('size', [0, 10, 300 * 1024])  # 300 KiB: sendfile() on TCP
def test_regular_file_body(server, tmp_path, size):
    data = os.urandom(size + 5)
    path = tmp_path / 'body.bin'
    path.write_bytes(data)
    with Client(server.address, timeout=TIMEOUT).connect() as conn:
        for opener in (lambda: open(path, 'rb'), lambda: open(path, 'rb', buffering=0)):
            with opener() as f:
                f.read(5)  # sent from the current position
                got = conn.put('/f', body=f).json(limit=4 * 1024 * 1024)
                assert got['framing'] == 'length'
                assert got['headers']['content-length'] == str(size)
                assert got['body'].encode('latin-1') == data[5:]
                assert not f.closed  # the caller's file


def test_pipe_body_is_chunked(server):
    (r, w) = os.pipe()
    data = os.urandom(200 * 1024)

    def writer():
        with open(w, 'wb') as f:
            f.write(data)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        with open(r, 'rb') as f, Client(server.address, timeout=TIMEOUT).connect() as conn:
            got = conn.post('/p', body=f).json(limit=4 * 1024 * 1024)
    finally:
        thread.join(TIMEOUT)
    assert got['framing'] == 'chunked'
    assert got['headers']['transfer-encoding'] == 'chunked'
    assert got['body'].encode('latin-1') == data


@pytest.mark.parametrize(
    'make, message',
    [
        (lambda p: 'text', "got a <class 'str'>: 'text'"),
        (lambda p: io.BytesIO(b'x'), "got a <class '_io.BytesIO'>: <_io.BytesIO object at"),
        (lambda p: [b'a'], "got a <class 'list'>: [b'a']"),
    ],
)
def test_unsupported_body_types(server, tmp_path, make, message):
    conn = Client(server.address, timeout=TIMEOUT).connect()
    with pytest.raises(TypeError) as e:
        conn.put('/b', body=make(tmp_path))
    prefix = (
        'bad body type: need bytes, bytearray, memoryview, a binary file, a body object'
        ' or None; '
    )
    assert str(e.value).startswith(prefix + message)
    assert conn.closed


def test_text_file_body_refused(server, tmp_path):
    path = tmp_path / 'text.txt'
    path.write_text('hello')
    conn = Client(server.address, timeout=TIMEOUT).connect()
    with open(path) as f, pytest.raises(TypeError) as e:
        conn.put('/b', body=f)
    assert str(e.value).startswith(
        'bad body type: need a binary file; got a text file: <_io.TextIOWrapper name='
    )
    assert conn.closed


def test_file_body_against_http_server(tmp_path):
    # http.server reads content-length bytes: the file's size, from its position.
    data = os.urandom(100 * 1024)
    path = tmp_path / 'body.bin'
    path.write_bytes(data)
    with _stdlib_server() as client, client.connect() as conn, open(path, 'rb') as f:
        f.seek(1000)
        r = conn.put('/up', {'X-Upload': 'yes'}, f)
        assert r.body.read() == data[1000:]
        assert r.headers['x-upload'] == 'yes'
        r = conn.post('/up', body=memoryview(data)[:10])
        assert r.body.read() == data[:10]


# --------------------------------------------------------------------------
# Request-targets from names


@pytest.mark.parametrize(
    'segments, query, target',
    [
        ([], None, '/'),
        ([''], None, '/'),
        (['a', 'b'], None, '/a/b'),
        (['a', ''], None, '/a/'),
        (('a b', 'café'), None, '/a%20b/caf%C3%A9'),
        (['a/b', '50%', '?#'], None, '/a%2Fb/50%25/%3F%23'),
        (["!$&'()*+,;=:@-._~"], None, "/!$&'()*+,;=:@-._~"),
        (['.x', '...'], None, '/.x/...'),
        (['s'], {}, '/s'),
        (['s'], {'q': 'a b', 'n': 1}, '/s?q=a%20b&n=1'),
        (['s'], [('k', 'v1'), ('k', 'v2')], '/s?k=v1&k=v2'),
        ([], {'a&b': 'c=d+e;f', 'é': '/?'}, '/?a%26b=c%3Dd%2Be%3Bf&%C3%A9=%2F%3F'),
        ([], {'k': ''}, '/?k='),
    ],
)
def test_build_target(segments, query, target):
    assert build_target(segments, query) == target


@pytest.mark.parametrize(
    'segments, query, exc, message',
    [
        ('a/b', None, TypeError,
         "segments: need a (<class 'list'>, <class 'tuple'>); got a <class 'str'>: 'a/b'"),
        ([1], None, TypeError, "segments[0]: need a <class 'str'>; got a <class 'int'>: 1"),
        (['a', '', 'b'], None, ValueError, "bad path segment: segments[1] is ''"),
        (['.'], None, ValueError, "bad path segment: segments[0] is '.'"),
        (['a', '..'], None, ValueError, "bad path segment: segments[1] is '..'"),
        ([], 'q=1', TypeError,
         "query: need a (<class 'dict'>, <class 'list'>, <class 'tuple'>); "
         "got a <class 'str'>: 'q=1'"),
        ([], [('a', 'b', 'c')], TypeError, "query: need (name, value) pairs; got ('a', 'b', 'c')"),
        ([], {'': 'x'}, ValueError, "query: need a non-empty str name; got ''"),
        ([], {'k': None}, TypeError,
         "query['k']: need a (<class 'str'>, <class 'int'>); got a <class 'NoneType'>: None"),
        ([], {'k': 1.5}, TypeError,
         "query['k']: need a (<class 'str'>, <class 'int'>); got a <class 'float'>: 1.5"),
    ],
)
def test_build_target_errors(segments, query, exc, message):
    with pytest.raises(exc) as e:
        build_target(segments, query)
    assert str(e.value) == message


def test_build_target_live(server):
    names = ['café au lait', 'a/b', '50% off', 'x?y#z', "it's"]
    with Client(server.address, timeout=TIMEOUT).connect() as conn:
        got = conn.get(build_target(names, {'q': 'a&b', 'é': 'ü'})).json()
    assert got['path'] == names  # each component decodes to its name
    assert got['query'] == 'q=a%26b&%C3%A9=%C3%BC'


@pytest.mark.parametrize('uri', ['/a b', '/café', ''])
def test_bad_uri_points_at_build_target(uri):
    (a, b) = socket.socketpair()
    with a, b:
        conn = Connection(a, None)
        with pytest.raises(ValueError) as e:
            conn.get(uri)
        assert str(e.value) == (
            f'bad uri: {uri!r}: a request-target must be percent-encoded'
            ' (degu.util.build_target() does it)'
        )
        assert conn.closed


# --------------------------------------------------------------------------
# JSON


def test_json_request_and_response(server):
    with Client(server.address, timeout=TIMEOUT).connect() as conn:
        obj = {'name': 'café', 'n': [1, 2.5, None, True]}
        got = conn.post('/j', json=obj).json()
        assert got['headers']['content-type'] == 'application/json'
        assert json.loads(got['body'].encode('latin-1').decode('utf-8')) == obj
        assert got['body'].encode('latin-1') == json.dumps(
            obj, ensure_ascii=False, separators=(',', ':')).encode('utf-8')
        headers = {'Content-Type': 'application/vnd.api+json'}
        got = conn.put('/j', headers, json=None).json()
        assert got['headers']['content-type'] == 'application/vnd.api+json'
        assert got['body'] == 'null'
        assert headers == {'Content-Type': 'application/vnd.api+json'}
        conn.send_request('PUT', '/j', json=[1])
        assert conn.read_response().json()['body'] == '[1]'
        assert conn.get('/chunked-json').json(limit=6) == [1, 2]


def test_json_errors(server):
    client = Client(server.address, timeout=TIMEOUT)
    conn = client.connect()
    with pytest.raises(TypeError) as e:
        conn.post('/j', {}, b'x', json=1)
    assert str(e.value) == 'cannot send both body and json'
    assert not conn.closed  # nothing was sent
    with pytest.raises(ValueError) as e:
        conn.post('/j', json=float('nan'))
    assert str(e.value) == 'Out of range float values are not JSON compliant'
    conn = client.connect()
    r = conn.get('/status?200')
    with pytest.raises(ValueError) as e:
        r.json(limit=10)
    assert str(e.value) == 'response body too large: need content-length <= 10; got 11'
    assert conn.discard() == 11  # nothing was read: the connection goes on
    with pytest.raises(ValueError) as e:
        conn.get('/chunked-json').json(limit=5)
    assert str(e.value) == 'response body too large: more than 5 bytes'
    conn.close()
    conn = client.connect()
    r = conn.head('/x')
    with pytest.raises(ValueError) as e:
        r.json()
    assert str(e.value) == 'no response body to decode: 200 OK'
    with pytest.raises(json.JSONDecodeError):
        conn.get('/status?200').json()
    for (limit, exc, message) in (
        (0, ValueError, 'need limit >= 1; got 0'),
        ('1', TypeError, "limit: need a <class 'int'>; got a <class 'str'>: '1'"),
    ):
        with pytest.raises(exc) as e:
            r.json(limit)
        assert str(e.value) == message
    conn.close()


# --------------------------------------------------------------------------
# raise_for_status() and the 4-tuple


def test_raise_for_status(server):
    with Client(server.address, timeout=TIMEOUT).connect() as conn:
        r = conn.get('/status?404')
        assert isinstance(r, ClientResponse) and isinstance(r, Response)
        (status, reason, headers, body) = r  # still a 4-tuple
        assert (status, reason, len(r)) == (404, 'Custom', 4)
        assert repr(r).startswith("Response(status=404, reason='Custom', headers={")
        assert r == (404, 'Custom', headers, body)
        with pytest.raises(HTTPError) as e:
            r.raise_for_status()
        assert str(e.value) == '404 Custom for GET /status?404'
        assert (e.value.response, e.value.request) == (r, ('GET', '/status?404'))
        assert r.body.read() == b'status body'
        for status in (200, 204, 302, 399):
            r = conn.get(f'/status?{status}')
            assert type(r) is ClientResponse
            assert repr(r).startswith(f"Response(status={status}, reason='Custom', headers={{")
            assert r.raise_for_status() is r
            conn.discard()
        r = conn.post('/status?500', body=b'x')
        with pytest.raises(HTTPError) as e:
            r.raise_for_status()
        assert str(e.value) == '500 Custom for POST /status?500'
    with pytest.raises(HTTPError) as e:
        ClientResponse(400, 'Bad Request', {}, None).raise_for_status()
    assert (str(e.value), e.value.request) == ('400 Bad Request', None)


# --------------------------------------------------------------------------
# http.server as the peer


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):
        pass

    def do_PUT(self):
        body = self.rfile.read(int(self.headers['Content-Length']))
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.send_header('X-Upload', self.headers.get('x-upload', 'no'))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PUT

    def do_GET(self):
        body = json.dumps({'path': self.path, 'token': self.headers.get('X-Token')}).encode()
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _stdlib_server:
    def __enter__(self):
        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True
        )
        self.thread.start()
        (host, port) = self.server.server_address[:2]
        return from_url(f'http://{host}:{port}/', timeout=TIMEOUT)

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(TIMEOUT)


def test_http_server_url_headers_target():
    with _stdlib_server() as client, client.connect() as conn:
        r = conn.get(build_target(['a b'], {'q': 'é'}), {'X-Token': 'T'}).raise_for_status()
        assert r.json() == {'path': '/a%20b?q=%C3%A9', 'token': 'T'}


def test_body_object_still_accepted(server):
    with Client(server.address, timeout=TIMEOUT).connect() as conn:
        got = conn.put('/b', body=Body(io.BytesIO(b'hello'), 5)).json()
        assert (got['body'], got['framing']) == ('hello', 'length')
