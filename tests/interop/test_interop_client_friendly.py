"""degu's client, its friendly side, against peers we did not write.

URLs (``Client(url)``, ``from_url()``, ``SSLClient(sslctx, url)``), optional
headers and names in capitals, ``bytearray``/``memoryview``/file bodies,
``build_target()``, ``json=``, ``response.json()`` and
``raise_for_status()`` were written against degu's own server, which agrees
with degu's client by construction.  Here the other end is:

* nginx, listening on 127.0.0.1, [::1] and an AF_UNIX socket at once (and
  once over TLS).  A ``return`` location echoes what nginx made of a
  request (target, decoded path, query, ``host``, framing fields); a WebDAV
  ``PUT`` location stores request bodies on disk, where the test reads them
  back byte for byte (and sees which file name nginx decoded the target
  to); a folder of JSON files is served as is, and through SSI (which makes
  the response chunked).
* h11 on the server side, a strict parser: every request shape the friendly
  features produce is accepted, with the exact bytes sent; a pipe body
  streams, and ``Expect`` in capitals holds the body back.
* Python's ``http.server``, for the URL forms (an abstract AF_UNIX name
  too), a JSON round trip, and a JSON body that ends with the connection.

One nginx serves the whole module (it starts in a few milliseconds, but the
requests of each test are independent of the others anyway).
"""

import contextlib
import http.server
import json
import os
import socket
import socketserver
import ssl
import threading
from array import array
from urllib.parse import quote

import h11
import pytest
from interop_helpers import (
    BIG_SIZE,
    DEADLINE,
    FAMILIES,
    HAVE_IPV6,
    Gate,
    Nginx,
    RawServer,
    h11_next,
    h11_read_request,
    h11_respond,
    pieces,
    short_tmpdir,
)

from degu.base import ChunkedBody
from degu.client import Client, HTTPError, SSLClient, from_url
from degu.util import build_target

pytestmark = pytest.mark.interop

TIMEOUT = DEADLINE  # seconds: the Client timeout option, on every socket operation

# The JSON files nginx serves (under /json/ as they are, under /ssi/ chunked).
SMALL = {'name': 'café', 'emoji': '\U0001f980', 'n': [1, 2.5, None, True], 'nested': {'a': []}}
BIG = [{'i': i, 'text': f'item {i} ü'} for i in range(40_000)]  # about 1 MiB

# What the /echo location answers: one nginx variable a line.
ECHO_FIELDS = (
    'request_method',
    'request_uri',
    'uri',
    'args',
    'http_host',
    'server_addr',
    'connection_requests',
    'http_x_token',
    'http_x_other_name',
    'http_content_length',
    'content_type',
    'http_transfer_encoding',
)


def compact(obj):
    """What ``json=obj`` puts on the wire: compact UTF-8 JSON."""
    return json.dumps(obj, ensure_ascii=False, separators=(',', ':')).encode('utf-8')


def unix_url(path):
    return 'http+unix://' + quote(path, safe='')


def tcp_url(family, port, scheme='http'):
    if family == 'ipv6':
        if not HAVE_IPV6:
            pytest.skip('no IPv6 loopback (::1) on this host')
        return f'{scheme}://[::1]:{port}/'
    return f'{scheme}://127.0.0.1:{port}/'


def expected_host(family, port):
    """The ``host`` header the client derives from the URL (RFC 9112 section 3.2)."""
    if family in ('unix', 'abstract'):
        return 'localhost'
    return {'ipv4': f'127.0.0.1:{port}', 'ipv6': f'[::1]:{port}'}[family]


@contextlib.contextmanager
def pipe_file(source, buffering=-1):
    """The read end of a pipe (a binary file) that a thread fills, then closes.

    *source* is ``bytes``, or an iterable of pieces (a ``Gate``), each
    written as soon as it is produced.
    """
    (r, w) = os.pipe()
    reader = open(r, 'rb', buffering=buffering)

    def feed():
        try:
            with open(w, 'wb') as f:
                for piece in [source] if isinstance(source, bytes) else source:
                    f.write(piece)
                    f.flush()
        except BrokenPipeError:  # the test failed before the client read it all
            pass

    thread = threading.Thread(target=feed, name='interop pipe feeder', daemon=True)
    thread.start()
    try:
        yield reader
    finally:
        reader.close()
        thread.join(DEADLINE)
        assert not thread.is_alive(), 'the pipe feeder is still writing'


# --------------------------------------------------------------------------
# nginx


class NginxEverywhere(Nginx):
    """``Nginx`` on 127.0.0.1, on [::1] (same port) and on an AF_UNIX socket in its folder.

    ``address`` stays the IPv4 one, which ``start()`` waits for: nginx binds
    every ``listen`` before it accepts a connection.  With *tls* (cert and key
    files) the TCP listeners speak TLS and there is no AF_UNIX one.
    """

    def __init__(self, server, tls=None):
        super().__init__(server)
        self.tls = tls
        self.unix_path = os.path.join(self.prefix, 'nginx.sock')
        self.port = None

    def _conf(self, listen):
        # The template has one "listen {listen};" line: the others follow it.
        self.port = int(listen.rpartition(':')[2])
        ssl = ' ssl' if self.tls else ''
        lines = [listen + ssl]
        if HAVE_IPV6:
            lines.append(f'listen [::1]:{self.port}{ssl}')
        if self.tls:
            lines.append(f'ssl_certificate {self.tls["cert_file"]}')
            lines.append(f'ssl_certificate_key {self.tls["key_file"]}')
        else:
            with contextlib.suppress(FileNotFoundError):  # left by a failed start
                os.unlink(self.unix_path)
            lines.append(f'listen unix:{self.unix_path}')
        return super()._conf(';\n        '.join(lines))

    def url_for(self, family):
        if family == 'unix':
            return unix_url(self.unix_path)
        return tcp_url(family, self.port, 'https' if self.tls else 'http')


def nginx_site(www):
    """The text of nginx's ``server {}``: echo, WebDAV PUT, JSON files as is and chunked."""
    echo = '\\n'.join('$' + name for name in ECHO_FIELDS)
    return f"""
        client_max_body_size 20m;
        types {{
            application/json json;
        }}
        location /echo {{
            default_type text/plain;
            return 200 "{echo}\\n";
        }}
        location /dav/ {{
            root {www};
            dav_methods PUT;
            create_full_put_path on;
        }}
        location /json/ {{
            root {www};
        }}
        location /ssi/ {{
            root {www};
            ssi on;
            ssi_types application/json;
        }}"""


class Site:
    def __init__(self, nginx, www):
        self.nginx = nginx
        self.www = www

    def client(self, family='ipv4', **options):
        options.setdefault('timeout', TIMEOUT)
        return Client(self.nginx.url_for(family), **options)

    def stored(self, name):
        """The bytes nginx stored for ``PUT /dav/<name>`` (*name* as nginx decoded it)."""
        with open(os.path.join(self.www, 'dav', name), 'rb') as f:
            return f.read()


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    www = tmp_path_factory.mktemp('www')
    (www / 'dav').mkdir()
    for folder in ('json', 'ssi'):
        (www / folder).mkdir()
        (www / folder / 'small.json').write_bytes(compact(SMALL))
        (www / folder / 'big.json').write_bytes(compact(BIG))
    with NginxEverywhere(nginx_site(www)) as nginx:
        yield Site(nginx, str(www))


def stored(response):
    """The status of nginx's answer to a WebDAV ``PUT``, whose body is read:
    ``201 Created``, or ``204 No Content`` when it replaced a file."""
    assert response.status in (201, 204), response
    if response.body is not None:
        response.body.read()
    return response.status


def echo(response):
    """What nginx echoed, as a dict of ``ECHO_FIELDS``."""
    assert response.status == 200, response
    lines = response.body.read().decode('utf-8').split('\n')
    assert len(lines) == len(ECHO_FIELDS) + 1 and lines[-1] == '', lines
    return dict(zip(ECHO_FIELDS, lines))


@pytest.mark.parametrize('family', FAMILIES)
@pytest.mark.parametrize('make', ['Client', 'from_url'])
def test_nginx_url_forms(site, family, make):
    """RFC 3986 section 3.2.2 and RFC 9112 section 3.2: ``http://127.0.0.1:port``,
    ``http://[::1]:port`` and ``http+unix://%2F...`` each reach nginx on that
    address, with the ``host`` header derived from the URL."""
    url = site.nginx.url_for(family)
    client = Client(url, timeout=TIMEOUT) if make == 'Client' else from_url(url, timeout=TIMEOUT)
    assert type(client) is Client
    with client.connect() as conn:
        response = conn.get('/echo')
        assert response.headers['server'].startswith('nginx')
        seen = echo(response)
        assert seen['http_host'] == expected_host(family, site.nginx.port)
        addresses = {'ipv4': '127.0.0.1', 'ipv6': '::1', 'unix': f'unix:{site.nginx.unix_path}'}
        assert seen['server_addr'] == addresses[family]
        assert (seen['request_method'], seen['request_uri']) == ('GET', '/echo')
        assert (seen['http_content_length'], seen['http_transfer_encoding']) == ('', '')
        # The same connection again, a bodiless POST this time (RFC 9110 section 8.6).
        seen = echo(conn.post('/echo'))
        assert (seen['connection_requests'], seen['request_method']) == ('2', 'POST')
        assert (seen['http_content_length'], seen['http_transfer_encoding']) == ('0', '')


@pytest.mark.parametrize('spelling, host', [
    ('http://127.0.0.1:{port}', '127.0.0.1:{port}'),
    ('HTTP://127.0.0.1:{port}/', '127.0.0.1:{port}'),
    ('http://localhost:{port}/', 'localhost:{port}'),
])
def test_nginx_url_spellings(site, spelling, host):
    """RFC 3986 sections 3.1 and 6.2.3: no trailing slash, a scheme in capitals
    and a name (``localhost``, resolved to 127.0.0.1 or ::1, on both of which
    nginx listens) are the same server."""
    port = site.nginx.port
    with Client(spelling.format(port=port), timeout=TIMEOUT).connect() as conn:
        seen = echo(conn.get('/echo'))
    assert (seen['http_host'], seen['request_uri']) == (host.format(port=port), '/echo')


def test_nginx_names_in_capitals(site):
    """RFC 9110 section 5.1: field names are case-insensitive; the client sends
    ``X-Token`` as ``x-token`` and nginx finds it, and leaves the caller's dict
    as it was."""
    headers = {'X-Token': 'secret', 'X-Other-Name': 'Other Value'}
    with site.client().connect() as conn:
        seen = echo(conn.get('/echo', headers))
    assert (seen['http_x_token'], seen['http_x_other_name']) == ('secret', 'Other Value')
    assert headers == {'X-Token': 'secret', 'X-Other-Name': 'Other Value'}


def body_cases(tmp_path, size):
    """``(name, make, data, framing)``: ``make()`` gives a request body of each
    accepted type (as a context manager), *data* the bytes that must arrive,
    *framing* is ``'length'`` or ``'chunked'``."""
    data = os.urandom(size)
    path = tmp_path / 'upload.bin'
    path.write_bytes(data)
    ints = array('i', range(1000))
    return [
        ('bytearray', lambda: contextlib.nullcontext(bytearray(data)), data, 'length'),
        ('memoryview', lambda: contextlib.nullcontext(memoryview(data)[7:-7]), data[7:-7],
         'length'),
        ('memoryview-of-ints', lambda: contextlib.nullcontext(memoryview(ints)),
         ints.tobytes(), 'length'),
        ('file', lambda: open(path, 'rb'), data, 'length'),
        ('file-unbuffered', lambda: open(path, 'rb', buffering=0), data, 'length'),
        ('file-from-offset', lambda: seeked(path, 1000), data[1000:], 'length'),
        ('file-after-read', lambda: partly_read(path, 1000), data[1000:], 'length'),
        ('big-file', lambda: open(path, 'rb'), data, 'length'),
        ('empty-file', lambda: open(tmp_path / 'empty.bin', 'w+b'), b'', 'length'),
        ('pipe', lambda: pipe_file(data), data, 'chunked'),
        ('empty-pipe', lambda: pipe_file(b''), b'', 'chunked'),
        ('socket-file', lambda: socket_file(data), data, 'chunked'),
    ]


@contextlib.contextmanager
def socket_file(data):
    """The reading side of a socket pair as a binary file, fed with *data* by a thread."""
    (a, b) = socket.socketpair()
    a.settimeout(DEADLINE)
    reader = a.makefile('rb')

    def feed():
        with b:
            with contextlib.suppress(OSError):
                b.sendall(data)

    thread = threading.Thread(target=feed, name='interop socket feeder', daemon=True)
    thread.start()
    try:
        yield reader
    finally:
        reader.close()
        a.close()
        thread.join(DEADLINE)
        assert not thread.is_alive(), 'the socket feeder is still writing'


def seeked(path, offset):
    f = open(path, 'rb')
    f.seek(offset)
    return f


def partly_read(path, size):
    """A buffered file after ``read(size)``: it has read ahead of its position."""
    f = open(path, 'rb')
    assert len(f.read(size)) == size
    assert os.lseek(f.fileno(), 0, os.SEEK_CUR) > f.tell()
    return f


BODY_NAMES = [
    'bytearray', 'memoryview', 'memoryview-of-ints', 'file', 'file-unbuffered',
    'file-from-offset', 'file-after-read', 'big-file', 'empty-file', 'pipe', 'empty-pipe',
    'socket-file',
]
BODY_SIZE = 300_000  # bytes: more than a socket buffer, and enough for sendfile()
SENDFILE_BODIES = ('file', 'file-unbuffered', 'file-from-offset', 'file-after-read', 'big-file')


def body_case(tmp_path, name):
    """``(make, data, framing)`` of the body *name* (``big-file``: 5 MiB)."""
    size = BIG_SIZE if name == 'big-file' else BODY_SIZE
    (case,) = [c for c in body_cases(tmp_path, size) if c[0] == name]
    return case[1:]


@pytest.mark.parametrize('family', ['ipv4', 'unix'])  # AF_UNIX: sendfile()
@pytest.mark.parametrize('name', BODY_NAMES)
def test_nginx_stores_bodies(site, tmp_path, monkeypatch, family, name):
    """RFC 9112 sections 6.2 and 7.1: nginx frames each body as the client said
    (``content-length`` for bytes-like and regular files, from the file's
    position; chunked for a pipe), and its WebDAV ``PUT`` stores exactly the
    bytes sent.  The file is left open for the caller.  Over AF_UNIX a
    regular file goes out with ``sendfile()``, so that path meets nginx too."""
    (make, data, framing) = body_case(tmp_path, name)
    calls = []

    def sendfile(*args):
        calls.append(args)
        return real_sendfile(*args)

    real_sendfile = os.sendfile
    monkeypatch.setattr(os, 'sendfile', sendfile)
    stored_as = f'body-{name}-{family}'
    with site.client(family).connect() as conn:
        with make() as body:
            response = conn.put(f'/dav/{stored_as}', None, body)
            if hasattr(body, 'closed'):
                assert not body.closed
        assert stored(response) == 201
        assert site.stored(stored_as) == data
        with make() as body:
            seen = echo(conn.post('/echo', {'Content-Type': 'application/x-test'}, body))
    framed = (seen['http_content_length'], seen['http_transfer_encoding'])
    assert framed == ((str(len(data)), '') if framing == 'length' else ('', 'chunked'))
    assert (seen['content_type'], seen['connection_requests']) == ('application/x-test', '2')
    if family == 'unix' and name in SENDFILE_BODIES:
        assert calls, 'the file did not go out with sendfile()'


@pytest.mark.parametrize('name', ['file', 'pipe', 'memoryview'])
def test_nginx_expect100_bodies(site, tmp_path, name):
    """RFC 9110 section 10.1.1: with ``expect100`` the friendly bodies go out
    after nginx's ``100 Continue`` and are stored intact."""
    (make, data, _) = body_case(tmp_path, name)
    with site.client().connect() as conn:
        with make() as body:
            assert stored(conn.put(f'/dav/expect-{name}', {'Expect': '100-continue'}, body)) == 201
        stored(conn.put('/dav/expect.json', json={'a': name}, expect100=True))
        assert site.stored('expect.json') == compact({'a': name})
    assert site.stored(f'expect-{name}') == data


# Names that need percent-encoding in a path segment, and what nginx makes of them.
SEGMENTS = [
    'plain.txt',
    'with space.txt',
    'café ü 中文 \U0001f980.txt',
    'query?hash#percent%25%.txt',
    "sub-delims!$&'()*+,;=:@.txt",
    'tilde~dash-under_dot.txt',
]


@pytest.mark.parametrize('segment', SEGMENTS)
def test_nginx_build_target_paths(site, segment):
    """RFC 3986 section 3.3: ``build_target()`` percent-encodes one segment so
    that nginx gets the target as built (``$request_uri``), decodes it back to
    the same name (``$uri``) and stores the ``PUT`` under that file name."""
    target = build_target(['dav', 'names', segment])
    with site.client().connect() as conn:
        assert stored(conn.put(target, None, segment.encode('utf-8'))) == 201
        seen = echo(conn.get(build_target(['echo', segment])))
    assert site.stored(f'names/{segment}') == segment.encode('utf-8')
    assert seen['request_uri'] == build_target(['echo', segment])
    assert seen['uri'] == f'/echo/{segment}'
    assert (seen['args'], seen['connection_requests']) == ('', '2')


def test_nginx_build_target_slash_in_segment(site):
    """A ``/`` inside a segment goes out as ``%2F`` (one segment, as sent); nginx
    decodes it to a ``/`` of its path, as it documents, so the file lands in a
    sub-folder: what a server does with ``%2F`` is up to the server."""
    target = build_target(['dav', 'slash', 'a/b.txt'])
    assert target == '/dav/slash/a%2Fb.txt'
    with site.client().connect() as conn:
        assert stored(conn.put(target, None, b'a/b')) == 201
        seen = echo(conn.get(build_target(['echo', 'a/b'])))
    assert site.stored('slash/a/b.txt') == b'a/b'
    assert (seen['request_uri'], seen['uri']) == ('/echo/a%2Fb', '/echo/a/b')


@pytest.mark.parametrize('query, args', [
    ({'q': 'a&b=c', 'page': 2}, 'q=a%26b%3Dc&page=2'),
    ({'text': 'x y+z', 'u': 'é中'}, 'text=x%20y%2Bz&u=%C3%A9%E4%B8%AD'),
    ([('k', 'one'), ('k', 'two'), ('empty', '')], 'k=one&k=two&empty='),
    ({'hash': '#', 'q': '?', 'pct': '%', 'slash': '/'}, 'hash=%23&q=%3F&pct=%25&slash=%2F'),
    ({}, ''),
])
def test_nginx_build_target_query(site, query, args):
    """RFC 3986 section 3.4: the query nginx sees (``$args``) is exactly the one
    built, and ``$uri`` is the path alone."""
    target = build_target(['echo', 'q'], query)
    with site.client().connect() as conn:
        seen = echo(conn.get(target))
    assert (seen['request_uri'], seen['uri'], seen['args']) == (target, '/echo/q', args)


def test_nginx_json_request(site):
    """RFC 8259 section 8.1: ``json=`` sends UTF-8 with ``content-type:
    application/json`` and a ``content-length``; nginx stores it byte for byte.
    A ``Content-Type`` of the caller's (in capitals) wins."""
    obj = {'text': 'café 中文 \U0001f980', 'n': [1, -2.5, 1e300], 'none': None, 'quote': '"\\'}
    with site.client().connect() as conn:
        assert stored(conn.put('/dav/request.json', json=obj)) == 201
        seen = echo(conn.post('/echo', {'X-Token': 't'}, json=obj))
        assert (seen['content_type'], seen['http_content_length']) == (
            'application/json', str(len(compact(obj)))
        )
        assert (seen['http_x_token'], seen['http_transfer_encoding']) == ('t', '')
        headers = {'Content-Type': 'application/merge-patch+json'}
        seen = echo(conn.request('PATCH', '/echo', headers, json=[]))
        assert (seen['content_type'], seen['http_content_length']) == (
            'application/merge-patch+json', '2'
        )
    assert site.stored('request.json') == compact(obj)
    assert json.loads(site.stored('request.json')) == obj


@pytest.mark.parametrize('folder', ['json', 'ssi'])
def test_nginx_response_json(site, folder):
    """RFC 8259: ``response.json()`` decodes what nginx serves, a small file
    and a 1 MiB one, with ``content-length`` (``/json/``) and chunked
    (``/ssi/``, RFC 9112 section 7.1); the connection goes on after each."""
    with site.client().connect() as conn:
        response = conn.get(f'/{folder}/small.json').raise_for_status()
        assert response.headers['content-type'] == 'application/json'
        chunked = isinstance(response.body, ChunkedBody)
        assert chunked == (folder == 'ssi'), response
        assert response.json() == SMALL
        response = conn.get(f'/{folder}/big.json')
        assert response.json() == BIG
        assert echo(conn.get('/echo'))['connection_requests'] == '3'


def test_nginx_response_json_limit_by_length(site):
    """A ``content-length`` over the limit is refused before a byte is read; the
    body can still be discarded and the connection used again."""
    size = len(compact(BIG))
    with site.client().connect() as conn:
        response = conn.get('/json/big.json')
        assert response.headers['content-length'] == size
        with pytest.raises(ValueError) as info:
            response.json(limit=size - 1)
        assert str(info.value) == (
            f'response body too large: need content-length <= {size - 1}; got {size}'
        )
        assert conn.discard() == size
        assert conn.get('/json/big.json').json(limit=size) == BIG
        assert echo(conn.get('/echo'))['connection_requests'] == '3'


def test_nginx_response_json_limit_chunked(site):
    """A chunked body (nginx's SSI output) is refused once it passes the limit."""
    with site.client().connect() as conn:
        response = conn.get('/ssi/big.json')
        assert response.body.content_length is None
        with pytest.raises(ValueError) as info:
            response.json(limit=100_000)
        assert str(info.value) == 'response body too large: more than 100000 bytes'
    with site.client().connect() as conn:
        assert conn.get('/ssi/small.json').json(limit=len(compact(SMALL))) == SMALL


def test_nginx_raise_for_status(site):
    """RFC 9110 section 15.5.5: nginx's 404 raises ``HTTPError`` that names the
    request; its body is unread, and once discarded the same connection
    serves the next request."""
    with site.client().connect() as conn:
        with pytest.raises(HTTPError) as info:
            conn.get('/json/missing.json').raise_for_status()
        error = info.value
        assert str(error) == '404 Not Found for GET /json/missing.json'
        assert error.request == ('GET', '/json/missing.json')
        assert (error.response.status, error.response.reason) == (404, 'Not Found')
        length = error.response.headers['content-length']
        assert length > 0 and conn.discard() == length
        response = conn.get('/json/small.json')
        assert response.raise_for_status() is response
        assert response.json() == SMALL
        assert echo(conn.get('/echo'))['connection_requests'] == '3'


def test_nginx_head_and_304(site):
    """RFC 9110 sections 9.3.2 and 15.4.5: ``HEAD`` and a 304 for
    ``If-Modified-Since``/``If-None-Match`` (names in capitals) carry no body,
    ``raise_for_status()`` lets them through, and the connection goes on."""
    size = len(compact(SMALL))
    with site.client().connect() as conn:
        response = conn.head('/json/small.json').raise_for_status()
        assert (response.status, response.body) == (200, None)
        assert response.headers['content-length'] == size
        (last_modified, etag) = (response.headers['last-modified'], response.headers['etag'])
        for headers in ({'If-Modified-Since': last_modified}, {'If-None-Match': etag}):
            response = conn.get('/json/small.json', headers).raise_for_status()
            assert (response.status, response.body) == (304, None), response
            with pytest.raises(ValueError):
                response.json()
        assert conn.get('/json/small.json').json() == SMALL
        assert echo(conn.get('/echo'))['connection_requests'] == '5'


@pytest.mark.parametrize('family', ['ipv4', 'ipv6'])
def test_nginx_https_url(pki, tmp_path, family):
    """``SSLClient(sslctx, 'https://...')`` and ``from_url('https://...', sslctx)``
    reach nginx over TLS, with the ``host`` header from the URL; a regular
    file (no ``sendfile()`` through TLS) and a pipe are stored intact.
    Without *sslctx*, ``from_url()`` trusts the system CAs only, so nginx's
    certificate from a private CA is refused."""
    tls = pki.anonymous_server_sslconfig
    with short_tmpdir() as www, NginxEverywhere(nginx_site(www), tls=tls) as nginx:
        url = nginx.url_for(family)
        with pytest.raises(ssl.SSLCertVerificationError):
            from_url(url, timeout=TIMEOUT).connect()
        sslconfig = pki.anonymous_client_sslconfig
        for client in (SSLClient(sslconfig, url, timeout=TIMEOUT),
                       from_url(url, sslconfig, timeout=TIMEOUT)):
            assert type(client) is SSLClient
            with client.connect() as conn:
                seen = echo(conn.post('/echo', {'X-Token': 'tls'}, json={'a': 1}))
                assert seen['http_host'] == expected_host(family, nginx.port)
                assert (seen['http_x_token'], seen['content_type']) == (
                    'tls', 'application/json'
                )
                assert echo(conn.get('/echo'))['connection_requests'] == '2'
                for name in ('file', 'pipe'):
                    (make, data, _) = body_case(tmp_path, name)
                    with make() as body:
                        stored(conn.put(f'/dav/tls-{name}', None, body))
                    with open(os.path.join(www, 'dav', f'tls-{name}'), 'rb') as f:
                        assert f.read() == data


# --------------------------------------------------------------------------
# h11 as a strict parser of what the client sends


def h11_recorder(records):
    """A ``RawServer`` handler: h11 reads every request of the connection into
    *records* as ``(h11.Request, body)`` and answers each with a 200."""

    def handler(sock, i):
        if sock.family != socket.AF_UNIX:
            # h11_respond() sends a response in pieces: without this, each
            # waits for the client's delayed ACK (40 ms) behind Nagle.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = h11.Connection(h11.SERVER)
        while True:
            (request, body) = h11_read_request(conn, sock)
            if request is None:
                return
            records.append((request, body))
            h11_respond(conn, sock, 200, [('content-type', 'application/json')],
                        json.dumps({'n': len(records)}).encode())

    return handler


def raw_url(server, family):
    if family == 'unix':
        return unix_url(server.address)
    return tcp_url(family, server.address[1])


def fields(request):
    """The header fields as they were on the wire (h11 keeps the case of names)."""
    return [(name.decode(), value.decode()) for (name, value) in request.headers.raw_items()]


@pytest.mark.parametrize('family', FAMILIES)
def test_h11_url_forms_and_names(family):
    """RFC 9112 sections 3.2 and 5: a request from a URL-made client, with no
    headers or names in capitals, is valid to h11; names go out in lower case,
    and ``host`` is the only field a bodiless GET needs."""
    records = []
    with RawServer(h11_recorder(records), family=family) as server:
        url = raw_url(server, family)
        port = None if family == 'unix' else server.address[1]
        host = expected_host(family, port)
        with Client(url, timeout=TIMEOUT).connect() as conn:
            assert conn.get('/').json() == {'n': 1}
            response = conn.get('/x', {'X-Token': 'secret', 'Accept': 'application/json'})
            assert response.json() == {'n': 2}
            assert conn.post('/empty').json() == {'n': 3}
    assert [(r.method, r.target, body) for (r, body) in records] == [
        (b'GET', b'/', b''), (b'GET', b'/x', b''), (b'POST', b'/empty', b''),
    ]
    assert fields(records[0][0]) == [('host', host)]
    assert sorted(fields(records[1][0])) == [
        ('accept', 'application/json'), ('host', host), ('x-token', 'secret'),
    ]
    assert sorted(fields(records[2][0])) == [('content-length', '0'), ('host', host)]


@pytest.mark.parametrize('family', ['ipv4', 'unix'])  # AF_UNIX: sendfile()
@pytest.mark.parametrize('name', BODY_NAMES)
def test_h11_bodies(tmp_path, family, name):
    """RFC 9112 sections 6 and 7: each body type goes out with the framing h11
    expects and exactly the bytes given, and the connection goes on."""
    (make, data, framing) = body_case(tmp_path, name)
    records = []
    with RawServer(h11_recorder(records), family=family) as server:
        with server.client(timeout=TIMEOUT).connect() as conn:
            with make() as body:
                assert conn.put('/body', {'Content-Type': 'application/x-test'}, body).json() == {
                    'n': 1
                }
            assert conn.get('/after').json() == {'n': 2}
    ((request, received), (after, _)) = records
    assert received == data
    names = dict(fields(request))
    assert names['content-type'] == 'application/x-test'
    if framing == 'length':
        assert (names['content-length'], 'transfer-encoding' in names) == (str(len(data)), False)
    else:
        assert (names['transfer-encoding'], 'content-length' in names) == ('chunked', False)
    assert after.target == b'/after'


@pytest.mark.parametrize('buffering', [-1, 0])
def test_h11_pipe_streams(buffering):
    """RFC 9112 section 7.1: a pipe goes out chunked as it is read; each piece
    reaches the server before the pipe's writer produces the next, so a
    slow producer (a process writing to the pipe) is streamed, not buffered."""
    gate = Gate(pieces(4, 1000))
    received = []

    def handler(sock, i):
        conn = h11.Connection(h11.SERVER)
        request = h11_next(conn, sock)
        assert type(request) is h11.Request
        assert dict(fields(request))['transfer-encoding'] == 'chunked'
        received.append(gate.h11_receive(conn, sock))
        h11_respond(conn, sock, 200, body=b'ok')
        h11_read_request(conn, sock)  # until the client closes

    with RawServer(handler) as server:
        with server.client(timeout=TIMEOUT).connect() as conn:
            with pipe_file(gate, buffering) as body:
                response = conn.put('/stream', None, body)
            assert (response.status, response.body.read()) == (200, b'ok')
    assert received == [b''.join(gate.pieces)]
    gate.check('a pipe body to h11')


def test_h11_json_request():
    """RFC 8259 section 8.1: ``json=`` on ``request``, ``put`` and ``post`` is a
    valid request to h11 with exactly the compact UTF-8 bytes, ``content-type:
    application/json`` unless the caller named one, and ``json=None`` is
    ``null``."""
    obj = {'text': 'café 中文 \U0001f980', 'list': [1, 2.5, True, None], 'esc': '"\\\n'}
    records = []
    with RawServer(h11_recorder(records)) as server:
        with server.client(timeout=TIMEOUT).connect() as conn:
            conn.post('/post', json=obj).json()
            conn.put('/put', {'X-Token': 't'}, json=[]).json()
            conn.request('PATCH', '/patch', {'Content-Type': 'application/merge-patch+json'},
                         json=obj).json()
            conn.post('/null', json=None).json()
    got = [(r.method, r.target, dict(fields(r)), body) for (r, body) in records]
    assert [(method, target, body) for (method, target, _, body) in got] == [
        (b'POST', b'/post', compact(obj)),
        (b'PUT', b'/put', b'[]'),
        (b'PATCH', b'/patch', compact(obj)),
        (b'POST', b'/null', b'null'),
    ]
    types = [names['content-type'] for (_, _, names, _) in got]
    assert types == ['application/json'] * 2 + ['application/merge-patch+json', 'application/json']
    assert [names['content-length'] for (_, _, names, _) in got] == [
        str(len(compact(obj))), '2', str(len(compact(obj))), '4'
    ]
    assert got[1][2]['x-token'] == 't'
    assert json.loads(records[0][1].decode('utf-8')) == obj


def test_h11_build_target():
    """RFC 9112 section 3.2 and RFC 3986: every ``build_target()`` target is a
    valid request-target to h11 and arrives as built."""
    targets = [build_target(['files', segment]) for segment in SEGMENTS + ['a/b', '']]
    targets += [build_target(['echo', 'q'], query) for query in (
        {'q': 'a&b=c', 'page': 2}, {'hash': '#', 'q': '?', 'pct': '%', 'sp': 'x y'},
        [('k', 'é'), ('k', '中')],
    )]
    targets.append(build_target([]))
    records = []
    with RawServer(h11_recorder(records)) as server:
        with server.client(timeout=TIMEOUT).connect() as conn:
            for target in targets:
                conn.get(target).json()
    assert [r.target.decode('ascii') for (r, _) in records] == targets


@pytest.mark.parametrize('name', ['file', 'pipe', 'bytearray'])
def test_h11_expect_in_capitals(tmp_path, name):
    """RFC 9110 section 10.1.1: ``Expect: 100-continue`` given in capitals counts
    as ``expect100``: a final status that comes instead of ``100 Continue`` is
    returned, and not a byte of the body goes out."""
    (make, _, _) = body_case(tmp_path, name)
    after = []

    def handler(sock, i):
        conn = h11.Connection(h11.SERVER)
        request = h11_next(conn, sock)
        assert type(request) is h11.Request and conn.they_are_waiting_for_100_continue
        assert dict(fields(request))['expect'] == '100-continue'
        h11_respond(conn, sock, 403, body=b'not you')
        rest = b''
        while data := sock.recv(65536):  # until the client closes
            rest += data
        after.append(rest)

    with RawServer(handler) as server:
        with server.client(timeout=TIMEOUT).connect() as conn:
            with make() as body:
                response = conn.put('/', {'Expect': '100-continue'}, body)
            assert (response.status, response.body.read()) == (403, b'not you')
            assert conn.closed
    assert after == [b'']


# --------------------------------------------------------------------------
# Python's http.server


class JSONEchoHandler(http.server.BaseHTTPRequestHandler):
    """Answers a request with JSON of what it got (HTTP/1.1, keep-alive)."""

    protocol_version = 'HTTP/1.1'
    timeout = DEADLINE
    disable_nagle_algorithm = True  # TCP: headers and body are two sends

    def do_GET(self):
        if self.path == '/missing':
            self.send_error(404)
            return
        self.answer(None)

    def do_POST(self):
        length = int(self.headers['content-length'])
        self.answer(json.loads(self.rfile.read(length)))

    def answer(self, received):
        out = json.dumps({
            'method': self.command,
            'path': self.path,
            'host': self.headers['host'],
            'token': self.headers['x-token'],
            'type': self.headers['content-type'],
            'json': received,
        }).encode()
        self.send_response(200)
        self.send_header('content-type', 'application/json')
        self.send_header('content-length', str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


class UnixJSONEchoHandler(JSONEchoHandler):
    disable_nagle_algorithm = False  # no TCP_NODELAY on AF_UNIX


@contextlib.contextmanager
def stdlib_server(family):
    """A ``ThreadingHTTPServer`` (or its AF_UNIX twin) in a thread; yields its URL.

    The AF_UNIX socket sits in a folder whose name needs percent-encoding in
    an ``http+unix`` URL (a space, ``%``, ``?``, ``#`` and a non-ASCII letter);
    the ``abstract`` one is a Linux abstract name (``%00`` first).
    """
    if family == 'ipv6' and not HAVE_IPV6:
        pytest.skip('no IPv6 loopback (::1) on this host')
    with short_tmpdir() as tmpdir:
        if family == 'unix':
            folder = os.path.join(tmpdir, 'odd %25 é?#')
            os.mkdir(folder)
            path = os.path.join(folder, 'http.sock')
            server = UnixHTTPServer(path, UnixJSONEchoHandler)
            url = unix_url(path) + '/'
        elif family == 'abstract':
            name = '\0' + os.path.basename(tmpdir)  # unique while tmpdir exists
            server = UnixHTTPServer(name, UnixJSONEchoHandler)
            url = unix_url(name)
        else:
            cls = IPv6HTTPServer if family == 'ipv6' else http.server.ThreadingHTTPServer
            server = cls(('::1' if family == 'ipv6' else '127.0.0.1', 0), JSONEchoHandler)
            url = tcp_url(family, server.server_address[1])
        with serving(server):
            yield url


@contextlib.contextmanager
def serving(server):
    """A ``socketserver`` server in a thread until the block ends, then closed."""
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), name='interop stdlib')
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(DEADLINE)


class IPv6HTTPServer(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


class UnixHTTPServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


@pytest.mark.parametrize('family', FAMILIES + ('abstract',))
def test_stdlib_json_round_trip(family):
    """``http.server`` reached through ``http://`` and ``http+unix://`` URLs:
    ``json=`` in, ``response.json()`` out, a target from ``build_target()``,
    and its 404 (which says ``connection: close``) raised by
    ``raise_for_status()``."""
    obj = {'text': 'café \U0001f980', 'n': [1, 2]}
    with stdlib_server(family) as url:
        port = None if 'unix' in url else int(url.rstrip('/').rpartition(':')[2])
        target = build_target(['notes', 'a b'], {'tag': 'x&y'})
        for client in (Client(url, timeout=TIMEOUT), from_url(url, timeout=TIMEOUT)):
            with client.connect() as conn:
                got = conn.post(target, {'X-Token': 'secret'}, json=obj).json()
                assert got == {
                    'method': 'POST', 'path': target, 'host': expected_host(family, port),
                    'token': 'secret', 'type': 'application/json', 'json': obj,
                }
                assert conn.get('/plain').json()['method'] == 'GET'
                with pytest.raises(HTTPError) as info:
                    conn.get('/missing').raise_for_status()
                assert str(info.value) == '404 Not Found for GET /missing'
                assert info.value.response.headers['connection'] == 'close'
                assert conn.discard() > 0
                assert conn.closed


class HTTP10JSONHandler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.0 without ``content-length``: the JSON body runs until the close."""

    timeout = DEADLINE

    def do_GET(self):
        self.send_response(200)
        self.send_header('content-type', 'application/json')
        self.end_headers()
        with contextlib.suppress(ConnectionError):  # the client past its limit closes
            self.wfile.write(compact(BIG))

    def log_message(self, *args):
        pass


def test_stdlib_json_close_delimited():
    """RFC 9112 section 6.3: ``response.json()`` reads a body that ends with the
    connection (an HTTP/1.0 ``http.server``), and the connection is then
    closed; the limit holds for such a body too."""
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), HTTP10JSONHandler)
    with serving(server):
        client = Client(f'http://127.0.0.1:{server.server_address[1]}', timeout=TIMEOUT)
        with client.connect() as conn:
            response = conn.get('/big.json')
            assert 'content-length' not in response.headers
            assert response.body.content_length is None
            assert response.json() == BIG
            assert conn.closed
        with client.connect() as conn:
            with pytest.raises(ValueError) as info:
                conn.get('/big.json').json(limit=100_000)
            assert str(info.value) == 'response body too large: more than 100000 bytes'
