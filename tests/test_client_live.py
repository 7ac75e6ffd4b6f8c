"""Live tests of degu.client: against degu.server (IPv4, IPv6, AF_UNIX, TLS)
and against the standard library's http.server in HTTP/1.1 mode.

The servers run in daemon threads of this process (``serve_forever()``) and
are shut down at the end of each module-scoped fixture.  TLS certificates
come from the ``openssl`` command line, made once per session.
"""

import http.server
import io
import os
import select
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager

import pytest

from degu.base import (
    BodyIter,
    ChunkedBody,
    ChunkedBodyIter,
    ConnectionClosed,
    ContentRange,
)
from degu.client import Client, SSLClient

server_mod = pytest.importorskip('degu.server')

TIMEOUT = 5  # seconds: every client socket here


# --------------------------------------------------------------------------
# The RGI app


def app(session, request, api):
    route = request.path[0] if request.path else ''
    method = request.method
    body = request.body
    if route == '':
        data = b'hello world'
        if 'range' in request.headers:
            r = request.headers['range']
            cr = r.content_range(len(data))
            return (206, 'Partial Content', {'content-range': cr}, data[cr.start : cr.stop])
        if method == 'HEAD':
            return (200, 'OK', {'content-length': len(data)}, None)
        return (200, 'OK', {}, data)
    if route == 'echo':
        if body is None:
            return (200, 'OK', {}, b'')
        if body.chunked:
            return (200, 'OK', {}, ChunkedBodyIter(list(body)))
        return (200, 'OK', {'x-method': method}, body.read())
    if route == 'seq':
        return (200, 'OK', {}, request.uri.encode())
    if route == 'chunked':
        return (
            200,
            'OK',
            {},
            ChunkedBodyIter([(None, b'hello'), (('k', 'v'), b' world'), (None, b'')]),
        )
    if route == 'noread':
        return (403, 'Forbidden', {}, b'no thanks')
    if route == 'close':
        return (200, 'OK', {'connection': 'close'}, b'bye')
    if route == 'headers':
        return (200, 'OK', {}, repr(sorted(request.headers.items())).encode())
    if route == 'big':
        size = int(request.query)
        return (
            200,
            'OK',
            {},
            BodyIter((b'x' * min(65536, size - i) for i in range(0, size, 65536)), size),
        )
    if route == 'count':
        total = 0
        for data in body:
            total += len(data)
        return (200, 'OK', {}, str(total).encode())
    return (404, 'Not Found', {}, None)


@contextmanager
def running(server):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown(timeout=2)
        thread.join(TIMEOUT)
        assert not thread.is_alive()


def _address(family, tmpdir):
    if family == 'ipv4':
        return ('127.0.0.1', 0)
    if family == 'ipv6':
        return ('::1', 0, 0, 0)
    return os.path.join(tmpdir, 'degu.socket')


@pytest.fixture(scope='module', params=['ipv4', 'ipv6', 'unix'])
def live(request):
    with tempfile.TemporaryDirectory() as tmpdir:
        server = server_mod.Server(_address(request.param, tmpdir), app, idle_timeout=5)
        with running(server):
            yield Client(server.address, timeout=TIMEOUT)


# --------------------------------------------------------------------------
# Against degu.server


def test_methods(live):
    with live.connect() as conn:
        r = conn.get('/', {})
        assert (r.status, r.reason, r.body.read()) == (200, 'OK', b'hello world')
        assert 'date' in r.headers
        r = conn.head('/', {})
        assert (r.status, r.headers['content-length'], r.body) == (200, 11, None)
        r = conn.put('/echo', {}, b'put body')
        assert (r.headers['x-method'], r.body.read()) == ('PUT', b'put body')
        r = conn.post('/echo', {}, b'post body')
        assert (r.headers['x-method'], r.body.read()) == ('POST', b'post body')
        r = conn.request('PATCH', '/echo', {}, b'patch')
        assert (r.headers['x-method'], r.body.read()) == ('PATCH', b'patch')
        r = conn.delete('/nothing', {})
        assert (r.status, r.headers['content-length'], r.body.content_length) == (404, 0, 0)
        r = conn.delete('/nothing', {})  # reading an empty body is optional
        assert (r.status, r.body.read(), r.body.read()) == (404, b'', b'')
        r = conn.get_range('/', {}, 2, 5)
        assert (r.status, r.headers['content-range'], r.body.read()) == (
            206,
            ContentRange(2, 5, 11),
            b'llo',
        )
        r = conn.get('/headers', {'x-custom': 'yes'})
        text = r.body.read().decode()
        assert "('x-custom', 'yes')" in text
        assert f"('host', {live.host!r})" in text  # AF_UNIX: 'localhost'
        assert not conn.closed


def test_chunked_both_ways(live):
    with live.connect() as conn:
        r = conn.get('/chunked', {})
        assert r.headers['transfer-encoding'] == 'chunked'
        assert list(r.body) == [(None, b'hello'), (('k', 'v'), b' world'), (None, b'')]
        chunks = [(None, b'a' * 100), (('n', 'x y'), b'b'), (None, b'')]
        r = conn.put('/echo', {}, ChunkedBodyIter(chunks))
        assert list(r.body) == chunks


def test_large_bodies(live):
    size = 3 * 1024 * 1024 + 7
    with live.connect() as conn:
        r = conn.get(f'/big?{size}', {})
        assert r.headers['content-length'] == size
        assert sum(len(p) for p in r.body) == size
        source = (b'y' * 100000 for _ in range(30))
        r = conn.put('/count', {}, BodyIter(source, 3000000))
        assert r.body.read() == b'3000000'


def test_pipelining_depth_1_to_16(live):
    with live.connect() as conn:
        for depth in range(1, 17):
            uris = [f'/seq/{depth}/{i}' for i in range(depth)]
            for uri in uris:
                conn.send_request('GET', uri, {}, None)
            assert conn.pending == tuple(('GET', u) for u in uris)
            for uri in uris:
                r = conn.read_response()
                assert r.body.read() == uri.encode()
            assert conn.pending == ()
        assert not conn.closed


def test_pipelining_mixed_methods(live):
    with live.connect() as conn:
        conn.send_request('PUT', '/echo', {}, b'one')
        conn.send_request('HEAD', '/', {}, None)
        conn.send_request('GET', '/chunked', {}, None)
        conn.send_request('DELETE', '/nothing', {}, None)
        conn.send_request('PUT', '/echo', {}, ChunkedBodyIter([(None, b'two'), (None, b'')]))
        assert conn.read_response().body.read() == b'one'
        assert conn.read_response().body is None
        assert conn.read_response().body.read() == b'hello world'
        assert conn.read_response().status == 404
        assert conn.read_response().body.read() == b'two'


def test_pipelining_two_threads(live):
    count = 300
    depth = 8
    slots = threading.Semaphore(depth)
    errors = []
    with live.connect() as conn:

        def sender():
            try:
                for i in range(count):
                    assert slots.acquire(timeout=TIMEOUT)
                    conn.send_request('GET', f'/seq/{i}', {}, None)
            except BaseException as e:
                errors.append(e)

        thread = threading.Thread(target=sender, daemon=True)
        thread.start()
        got = []
        deadline = time.monotonic() + 20
        while len(got) < count and time.monotonic() < deadline:
            if not conn.pending:
                time.sleep(0.0005)
                continue
            got.append(conn.read_response().body.read())
            slots.release()
        thread.join(TIMEOUT)
        assert not errors
        assert got == [f'/seq/{i}'.encode() for i in range(count)]


def test_server_max_requests_unanswered(tmp_path):
    server = server_mod.Server(('127.0.0.1', 0), app, max_requests=3)
    with running(server):
        with Client(server.address, timeout=TIMEOUT).connect() as conn:
            for i in range(5):
                conn.send_request('GET', f'/seq/{i}', {}, None)
            for i in range(3):
                r = conn.read_response()
                assert r.body.read() == f'/seq/{i}'.encode()
            assert r.headers['connection'] == 'close'
            assert conn.closed
            with pytest.raises(ConnectionClosed) as e:
                conn.read_response()
            assert e.value.unanswered == (('GET', '/seq/3'), ('GET', '/seq/4'))
            assert str(e.value) == 'Connection is closed: the server sent connection: close'


def test_connection_close_from_app(live):
    with live.connect() as conn:
        r = conn.get('/close', {})
        assert r.headers['connection'] == 'close'
        assert not conn.closed
        assert r.body.read() == b'bye'
        assert conn.closed


def test_expect100_continue(live):
    client = Client(live.address, timeout=TIMEOUT, expect100_timeout=20)
    with client.connect() as conn:
        for _ in range(3):
            start = time.monotonic()
            r = conn.put('/echo', {}, b'x' * 100000, expect100=True)
            assert time.monotonic() - start < 10  # the server said 100, no timeout
            assert (r.status, r.body.read()) == (200, b'x' * 100000)
        assert not conn.closed


def test_expect100_final_status(live):
    client = Client(live.address, timeout=TIMEOUT, expect100_timeout=20)
    with client.connect() as conn:
        start = time.monotonic()
        r = conn.put('/noread', {}, b'x' * 100000, expect100=True)
        assert time.monotonic() - start < 10
        assert (r.status, r.body.read()) == (403, b'no thanks')
        assert conn.closed
        with pytest.raises(ConnectionClosed):
            conn.get('/', {})


def test_early_response_from_degu_server(live):
    # The app refuses without reading 8 MiB: the server answers and closes,
    # the upload fails, and request() returns the answer.
    with live.connect() as conn:
        r = conn.put('/noread', {}, b'z' * (8 * 1024 * 1024))
        assert r.status == 403
        assert r.body.read() == b'no thanks'
        assert conn.closed


def test_server_idle_close_between_requests(tmp_path):
    server = server_mod.Server(('127.0.0.1', 0), app, idle_timeout=0.05)
    with running(server):
        with Client(server.address, timeout=TIMEOUT).connect() as conn:
            assert conn.get('/', {}).body.read() == b'hello world'
            # Wait until the server's close arrives (EOF is readable).
            assert select.select([conn.sock], [], [], TIMEOUT)[0]
            with pytest.raises(ConnectionClosed) as e:
                conn.get('/', {})
            assert e.value.unanswered == (('GET', '/'),)
            assert conn.closed


# --------------------------------------------------------------------------
# TLS, with certificates from the openssl command line


def _openssl(*args, cwd):
    subprocess.run(
        ('openssl',) + args,
        cwd=cwd,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=30,
    )


def _make_ca(d, name):
    ext = os.path.join(d, f'{name}.ext')
    with open(ext, 'w') as f:
        f.write(
            'basicConstraints=critical,CA:TRUE\n'
            'keyUsage=critical,keyCertSign,cRLSign\n'
            'subjectKeyIdentifier=hash\n'
        )
    _openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f'{name}.key', cwd=d)
    _openssl(
        'req',
        '-new',
        '-x509',
        '-key',
        f'{name}.key',
        '-out',
        f'{name}.pem',
        '-days',
        '2',
        '-subj',
        f'/CN={name}',
        '-extensions',
        'v3_ca',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
        cwd=d,
    )


def _make_leaf(d, name, ca, usage):
    ext = os.path.join(d, f'{name}.ext')
    with open(ext, 'w') as f:
        f.write(
            'basicConstraints=critical,CA:FALSE\n'
            'keyUsage=critical,digitalSignature\n'
            f'extendedKeyUsage={usage}\n'
            'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n'
            'authorityKeyIdentifier=keyid\n'
            'subjectKeyIdentifier=hash\n'
        )
    _openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f'{name}.key', cwd=d)
    _openssl(
        'req', '-new', '-key', f'{name}.key', '-out', f'{name}.csr', '-subj', f'/CN={name}', cwd=d
    )
    _openssl(
        'x509',
        '-req',
        '-in',
        f'{name}.csr',
        '-CA',
        f'{ca}.pem',
        '-CAkey',
        f'{ca}.key',
        '-CAcreateserial',
        '-out',
        f'{name}.pem',
        '-days',
        '2',
        '-extfile',
        ext,
        cwd=d,
    )


@pytest.fixture(scope='session')
def pki():
    if shutil.which('openssl') is None:
        pytest.skip('no openssl command line')
    d = tempfile.mkdtemp(prefix='degu-client-pki.')
    try:
        _make_ca(d, 'server-ca')
        _make_ca(d, 'client-ca')
        _make_leaf(d, 'server', 'server-ca', 'serverAuth')
        _make_leaf(d, 'client', 'client-ca', 'clientAuth')
        yield {
            name: os.path.join(d, name) for name in ('server-ca', 'client-ca', 'server', 'client')
        }
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _server_ctx(pki, client_ca):
    sslconfig = {'cert_file': pki['server'] + '.pem', 'key_file': pki['server'] + '.key'}
    if client_ca:
        sslconfig['ca_file'] = pki['client-ca'] + '.pem'
    else:
        sslconfig['allow_unauthenticated_clients'] = True
    return server_mod.build_server_sslctx(sslconfig)


def _client_config(pki, cert=True, check_hostname=False):
    config = {'ca_file': pki['server-ca'] + '.pem', 'check_hostname': check_hostname}
    if cert:
        config['cert_file'] = pki['client'] + '.pem'
        config['key_file'] = pki['client'] + '.key'
    return config


@pytest.mark.parametrize('family', ['ipv4', 'ipv6', 'unix'])
def test_tls_with_client_certificate(pki, family, tmp_path):
    server = server_mod.SSLServer(_server_ctx(pki, True), _address(family, str(tmp_path)), app)
    with running(server):
        client = SSLClient(_client_config(pki), server.address, timeout=TIMEOUT)
        with client.connect() as conn:
            assert conn.sock.version() in ('TLSv1.2', 'TLSv1.3')
            assert conn.get('/', {}).body.read() == b'hello world'
            for i in range(4):
                conn.send_request('GET', f'/seq/{i}', {}, None)
            assert [conn.read_response().body.read() for _ in range(4)] == [
                f'/seq/{i}'.encode() for i in range(4)
            ]
            r = conn.put('/echo', {}, b'e' * 200000, expect100=True)
            assert r.body.read() == b'e' * 200000


def test_tls_hostname_check(pki):
    server = server_mod.SSLServer(_server_ctx(pki, False), ('127.0.0.1', 0), app)
    with running(server):
        port = server.address[1]
        config = _client_config(pki, cert=False, check_hostname=True)
        client = SSLClient(config, ('localhost', port), timeout=TIMEOUT)
        with client.connect() as conn:
            assert conn.get('/', {}).body.read() == b'hello world'
        client = SSLClient(config, ('127.0.0.1', port), timeout=TIMEOUT, ssl_host='wrong.example')
        with pytest.raises(ssl.SSLCertVerificationError):
            client.connect()


def test_tls_without_client_certificate(pki):
    # Anonymous server: a client without a certificate is fine.
    server = server_mod.SSLServer(_server_ctx(pki, False), ('127.0.0.1', 0), app)
    with running(server):
        client = SSLClient(_client_config(pki, cert=False), server.address, timeout=TIMEOUT)
        with client.connect() as conn:
            assert conn.get('/', {}).body.read() == b'hello world'
    # A server that requires one refuses it (at the handshake, or at the
    # first read under TLS 1.3).
    server = server_mod.SSLServer(_server_ctx(pki, True), ('127.0.0.1', 0), app)
    with running(server):
        client = SSLClient(_client_config(pki, cert=False), server.address, timeout=TIMEOUT)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with client.connect() as conn:
                conn.get('/', {}).body.read()
    # And a client that does not trust the server CA refuses the server.
    server = server_mod.SSLServer(_server_ctx(pki, False), ('127.0.0.1', 0), app)
    with running(server):
        config = {'ca_file': pki['client-ca'] + '.pem', 'check_hostname': False}
        with pytest.raises(ssl.SSLCertVerificationError):
            SSLClient(config, server.address, timeout=TIMEOUT).connect()


def _tls_scripted(pki, payload, close_notify):
    """A one-shot TLS server that answers any request with *payload*."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki['server'] + '.pem', pki['server'] + '.key')
    lsock = socket.socket()
    lsock.bind(('127.0.0.1', 0))
    lsock.listen(1)
    lsock.settimeout(TIMEOUT)
    errors = []

    def run():
        raw = sock = None
        try:
            (raw, _) = lsock.accept()
            raw.settimeout(TIMEOUT)
            sock = ctx.wrap_socket(raw, server_side=True)
            data = b''
            while b'\r\n\r\n' not in data:
                data += sock.recv(4096)
            sock.sendall(payload)
            if close_notify:
                try:
                    sock.unwrap()  # sends close_notify, then waits for the client's
                except (ssl.SSLError, OSError):
                    pass  # the client closes without one: fine
            else:
                socket.socket(fileno=sock.detach()).close()  # no close_notify
        except BaseException as e:
            errors.append(e)
        finally:
            for s in (sock, raw):
                if s is not None:
                    s.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return (lsock, thread, errors)


@pytest.mark.parametrize('close_notify', [True, False])
def test_tls_close_delimited_body(pki, close_notify):
    payload = b'HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end'
    (lsock, thread, errors) = _tls_scripted(pki, payload, close_notify)
    try:
        client = SSLClient(_client_config(pki, cert=False), lsock.getsockname(), timeout=TIMEOUT)
        with client.connect() as conn:
            r = conn.get('/', {})
            assert r.body.content_length is None
            if close_notify:
                assert r.body.read() == b'until the end'
            else:
                # Without close_notify, EOF may be a truncation attack: no data.
                with pytest.raises(ConnectionClosed):
                    r.body.read()
            assert conn.closed
        thread.join(TIMEOUT)
        assert not errors
    finally:
        lsock.close()


def test_tls_truncated_length_body(pki):
    payload = b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly some'
    (lsock, thread, errors) = _tls_scripted(pki, payload, True)
    try:
        client = SSLClient(_client_config(pki, cert=False), lsock.getsockname(), timeout=TIMEOUT)
        with client.connect() as conn:
            r = conn.get('/', {})
            with pytest.raises(ConnectionClosed):
                r.body.read()
            assert conn.closed
        thread.join(TIMEOUT)
    finally:
        lsock.close()


# --------------------------------------------------------------------------
# Interop: http.server in HTTP/1.1 mode


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):
        pass

    def _reply(self, body, status=200):
        self.send_response(status)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    def do_GET(self):
        if self.path == '/chunked':
            self.send_response(200)
            self.send_header('Transfer-Encoding', 'chunked')
            self.end_headers()
            self.wfile.write(b'5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n')
            return
        if self.path == '/close':
            self.send_response(200)
            self.send_header('Connection', 'close')
            self.end_headers()
            self.wfile.write(b'no length, until close')
            return
        self._reply(self.path.encode())

    do_HEAD = do_GET

    def do_PUT(self):
        length = int(self.headers['Content-Length'])
        self._reply(self.rfile.read(length))

    do_POST = do_PUT


@pytest.fixture(scope='module')
def stdlib_server():
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05})
    thread.daemon = True
    thread.start()
    try:
        # A long expect100_timeout, so a test can tell a 100 from a timeout.
        yield Client(server.server_address, timeout=TIMEOUT, expect100_timeout=20)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


def test_http_server_basic(stdlib_server):
    with stdlib_server.connect() as conn:
        r = conn.get('/a?b=c', {})
        assert (r.status, r.reason, r.body.read()) == (200, 'OK', b'/a?b=c')
        assert r.headers['server'].startswith('BaseHTTP/')
        r = conn.head('/xyz', {})
        assert (r.headers['content-length'], r.body) == (4, None)
        r = conn.put('/up', {}, b'data' * 1000)
        assert r.body.read() == b'data' * 1000
        r = conn.post('/up', {}, BodyIter([b'ab', b'cd'], 4))
        assert r.body.read() == b'abcd'
        r = conn.get('/chunked', {})
        assert r.body.read() == b'hello world'
        start = time.monotonic()
        r = conn.put('/up', {}, b'e' * 5000, expect100=True)  # http.server sends 100 Continue
        assert r.body.read() == b'e' * 5000
        assert time.monotonic() - start < 10  # no expect100_timeout wait
        assert not conn.closed
        r = conn.delete('/x', {})
        assert r.status == 501  # no do_DELETE: send_error() says connection: close
        assert r.headers['connection'] == 'close'
        r.body.read()
        assert conn.closed


def test_http_server_pipelining(stdlib_server):
    with stdlib_server.connect() as conn:
        for depth in (1, 4, 8, 16):
            for i in range(depth):
                conn.send_request('GET', f'/p/{i}', {}, None)
            assert [conn.read_response().body.read() for _ in range(depth)] == [
                f'/p/{i}'.encode() for i in range(depth)
            ]


def test_http_server_close_delimited(stdlib_server):
    with stdlib_server.connect() as conn:
        r = conn.get('/close', {})
        assert r.body.content_length is None
        assert r.body.read() == b'no length, until close'
        assert conn.closed


def test_http_server_http10_mode():
    class Handler10(Handler):
        protocol_version = 'HTTP/1.0'

    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler10)
    thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05})
    thread.daemon = True
    thread.start()
    try:
        with Client(server.server_address, timeout=TIMEOUT).connect() as conn:
            r = conn.get('/ten', {})
            assert r.body.read() == b'/ten'
            assert conn.closed  # an HTTP/1.0 response without keep-alive
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


def test_chunked_body_from_file_roundtrip(live):
    # A ChunkedBody over an ordinary file is a valid request body too.
    raw = io.BytesIO(b'3\r\nabc\r\n0\r\n\r\n')
    with live.connect() as conn:
        r = conn.put('/echo', {}, ChunkedBody(raw))
        assert list(r.body) == [(None, b'abc'), (None, b'')]
