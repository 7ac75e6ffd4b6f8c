"""Run WSGI (PEP 3333) applications on a degu server, and RGI apps under WSGI.

``WSGIApp(wsgi_app)`` is an RGI app that calls a WSGI application: it
builds the environ from the request, gives it ``wsgi.input`` over the
request body, and hands the response iterable to the server, which sends
each item as the app produces it (length-framed when the app set
``Content-Length``, chunked otherwise).  Nothing is buffered here.

``WSGIWrapper(rgi_app)`` goes the other way: a WSGI application that calls
an RGI app, so RGI apps run under any WSGI server.

>>> def hello(environ, start_response):
...     start_response('200 OK', [('Content-Type', 'text/plain')])
...     return [b'Hello from ', environ['PATH_INFO'].encode('latin-1')]
...
>>> from degu.misc import mkreq
>>> from degu.base import api
>>> (status, reason, headers, body) = WSGIApp(hello)(
...     _FakeSession(), mkreq('GET', '/there'), api)
>>> (status, reason, headers['content-type'])
(200, 'OK', 'text/plain')
>>> b''.join(body.source)  # a list: all at hand, sent with its length
b'Hello from /there'
"""

from __future__ import annotations

import io
import sys
import urllib.parse
from http import HTTPStatus

from ._body import _close_source, release_body
from ._parse import HOP_BY_HOP  # what a WSGI app must not set (PEP 3333)
from .base import (
    LENGTH,
    METHODS,
    Body,
    BodyIter,
    ChunkedBody,
    ChunkedBodyIter,
    Request,
    api,
    has_no_content,
    parse_request_range,
    response_output,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import Any, BinaryIO, TextIO

    from .base import API, Session
    # PEP 3333: the environ, start_response and the application.
    Environ = dict[str, Any]
    StartResponse = Callable[..., Callable[[bytes], object]]
    WSGIApplication = Callable[[Environ, StartResponse], Iterable[bytes]]

__all__ = ('WSGIApp', 'WSGIWrapper', 'FileWrapper', 'WSGIInput')

_INPUT_READ_SIZE = 64 * 1024  # 64 KiB: what one read of wsgi.input asks the body for


class _FakeSession:
    """A stand-in session for the doctests above."""

    address = ('127.0.0.1', 12345)
    store: dict[str, object] = {}


class WSGIInput(io.RawIOBase):
    """``wsgi.input``: a binary file over a request body (``None`` reads as empty).

    ``read(n)``, ``read()``, ``readline()``, ``readlines()`` and iteration
    work as on a file; reading at the end returns ``b''``.
    """

    def __init__(self, body: Body | ChunkedBody | None) -> None:
        super().__init__()
        self._body = body
        self._buf = b''  # what readline() read past its line

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        if self._buf:
            (data, self._buf) = (self._buf[:size], self._buf[size:])
            return data
        if self._body is None or size == 0:
            return b''
        return self._body.read(min(size, _INPUT_READ_SIZE))

    def readall(self) -> bytes:
        parts = [self._buf]
        self._buf = b''
        while True:
            data = self.read(_INPUT_READ_SIZE)
            if not data:
                return b''.join(parts)
            parts.append(data)

    def readinto(self, buf: Any) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        parts = []
        total = 0
        while size is None or size < 0 or total < size:
            want = _INPUT_READ_SIZE if size is None or size < 0 else size - total
            data = self.read(want)
            if not data:
                break
            i = data.find(b'\n')
            if i >= 0:
                self._buf = data[i + 1 :] + self._buf
                data = data[: i + 1]
                parts.append(data)
                break
            parts.append(data)
            total += len(data)
        return b''.join(parts)


class FileWrapper:
    """``wsgi.file_wrapper``: iterates a file in blocks, and lets the server
    send a regular file with ``sendfile()`` when the app set its length."""

    def __init__(self, filelike: BinaryIO, blksize: int = _INPUT_READ_SIZE) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while True:
            data = read(self.blksize)
            if not data:
                return
            yield data

    def close(self) -> None:
        close = getattr(self.filelike, 'close', None)
        if close is not None:
            close()


def _wsgi_path(components: list[str]) -> str:
    # PATH_INFO and SCRIPT_NAME are the decoded path as latin-1 (PEP 3333).
    if not components:
        return ''
    return urllib.parse.unquote_to_bytes('/' + '/'.join(components)).decode('latin-1')


def _server_name_port(host: str | None, default_port: str) -> tuple[str, str]:
    if not host:
        return ('localhost', default_port)
    if host.startswith('['):
        (name, _, rest) = host.partition(']')
        return (name + ']', rest[1:] or default_port)
    (name, sep, port) = host.rpartition(':')
    if sep and port.isdigit():
        return (name, port)
    return (host, default_port)


class _Start:
    """The ``start_response`` callable of one request, and what it was told."""

    __slots__ = ('status', 'headers', 'sent', 'written')

    def __init__(self):
        self.status = None
        self.headers = None
        self.sent = False  # set once the response is handed to the server
        self.written = []  # data given to write() before the app returned

    def __call__(self, status, response_headers, exc_info=None):
        if exc_info is not None:
            try:
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError('start_response() called twice without exc_info')
        if type(status) is not str:
            raise TypeError(f'status: need a str; got {status!r}')
        if type(response_headers) is not list:
            raise TypeError(f'response_headers: need a list; got {type(response_headers)!r}')
        self.status = status
        self.headers = response_headers
        return self.write

    def write(self, data):
        if self.status is None:
            raise AssertionError('write() before start_response()')
        if type(data) is not bytes:
            raise TypeError(f'write(): need bytes; got {type(data)!r}')
        self.written.append(data)


def _parse_status(status: str) -> tuple[int, str]:
    (code, _, reason) = status.partition(' ')
    if len(code) != 3 or not code.isdigit():
        raise ValueError(f'bad WSGI status: {status!r}')
    value = int(code)
    if not reason:
        try:
            reason = HTTPStatus(value).phrase
        except ValueError:
            reason = 'Unknown'
    return (value, reason)


def _convert_headers(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    for pair in pairs:
        (name, value) = pair
        if type(name) is not str or type(value) is not str:
            raise TypeError(f'response header: need a (str, str); got {pair!r}')
        key = name.lower()
        if key in HOP_BY_HOP:
            raise ValueError(f'WSGI app set a hop-by-hop header: {name!r}')
        if key in headers:
            old = headers[key]
            headers[key] = (old if type(old) is list else [old]) + [value]
        else:
            headers[key] = value
    if 'content-length' in headers:
        value = headers['content-length']
        if type(value) is list or not value.isdigit():
            raise ValueError(f'bad Content-Length from WSGI app: {value!r}')
        headers['content-length'] = int(value)
    return headers


def _iterate(result: Iterable[bytes], written: list[bytes]) -> Iterator[bytes]:
    """Every data item: what write() got, then the result, skipping empties."""
    for data in written:
        if data:
            yield data
    for data in result:
        if type(data) is not bytes:
            raise TypeError(f'WSGI response item: need bytes; got {type(data)!r}')
        if data:
            yield data


def _chunks(items: Iterator[bytes]) -> Iterator[tuple[None, bytes]]:
    for data in items:
        yield (None, data)
    yield (None, b'')


class _Source:
    """The source of a streamed response body: *items*, and the app's *result* to close.

    One item is taken from *items* per item the server asks for.  ``close()``
    closes the app's iterable, as PEP 3333 requires, whether the response
    was sent, failed, or never started (closing a generator that never
    started would not run its ``finally``); reaching the end closes it too.
    """

    __slots__ = ('_items', '_result')

    def __init__(self, items: Iterator[Any], result: Iterable[bytes]) -> None:
        self._items = items
        self._result: Iterable[bytes] | None = result

    def __iter__(self) -> _Source:
        return self

    def __next__(self) -> Any:
        try:
            return next(self._items)
        except StopIteration:
            self.close()
            raise

    def close(self) -> None:
        result = self._result
        if result is not None:
            self._result = None
            self._items.close()  # type: ignore[attr-defined]  # a generator
            _close_source(result)


class WSGIApp:
    """An RGI app that runs the WSGI application *app* (PEP 3333).

    ``wsgi.errors`` is *errors* (default ``sys.stderr``); ``wsgi.url_scheme``
    is ``https`` on a TLS connection.  Request fields whose name holds
    ``_`` are left out of the environ (``x_user`` would pass for
    ``x-user``: both are ``HTTP_X_USER``).

    A list or tuple response is all at hand: it goes out with its length.
    Any other iterable streams: the server sends each item as it is
    produced, before asking for the next, length-framed when the app set
    ``Content-Length`` (a mismatch closes the connection), chunked
    otherwise (an HTTP/1.0 client gets it close-delimited).  Nothing is
    taken from the iterable here, except its first item when the app calls
    ``start_response`` only then (PEP 3333 allows it).  Data given to
    ``write()`` is held until the app returns, then sent first (PEP 3333
    lets a server buffer it).  Repeated response headers (``Set-Cookie``)
    are sent as repeated fields.
    """

    def __init__(self, app: WSGIApplication, errors: TextIO | None = None) -> None:
        if not callable(app):
            raise TypeError(f'app: not callable: {app!r}')
        self.app = app
        self.errors = sys.stderr if errors is None else errors

    def __repr__(self) -> str:
        return f'WSGIApp({self.app!r})'

    def on_connect(self, session: Session, sock: object) -> bool:
        session.store['_wsgi_url_scheme'] = 'https' if hasattr(sock, 'getpeercert') else 'http'
        return True

    def environ(self, session: Session, request: Request) -> Environ:
        """The PEP 3333 environ for *request* on *session*."""
        headers = request.headers
        # The scheme and client address the server found, behind trusted proxies too
        # (doc/degu.server.rst, 'Behind a proxy').
        scheme = request.scheme
        if request.client is None:  # a Request made by hand: the connection says
            scheme = session.store.get('_wsgi_url_scheme', scheme)
        (name, port) = _server_name_port(headers.get('host'), '443' if scheme == 'https'
                                         else '80')
        environ = {
            'REQUEST_METHOD': request.method,
            'SCRIPT_NAME': _wsgi_path(request.mount),
            'PATH_INFO': _wsgi_path(request.path) or ('/' if request.uri != '*' else ''),
            'QUERY_STRING': request.query or '',
            'SERVER_NAME': name,
            'SERVER_PORT': str(port),
            'SERVER_PROTOCOL': request.version,
            'wsgi.version': (1, 0),
            'wsgi.url_scheme': scheme,
            'wsgi.input': WSGIInput(request.body),
            'wsgi.input_terminated': True,
            'wsgi.errors': self.errors,
            'wsgi.multithread': True,
            'wsgi.multiprocess': False,
            'wsgi.run_once': False,
            'wsgi.file_wrapper': FileWrapper,
        }
        if request.mount and not request.path and request.uri.split('?')[0].endswith('/'):
            environ['PATH_INFO'] = '/'
        address = request.client
        if address is None:
            address = session.address
        if type(address) is tuple:
            environ['REMOTE_ADDR'] = address[0]
            environ['REMOTE_PORT'] = str(address[1])
        else:
            environ['REMOTE_ADDR'] = ''
        for (key, value) in headers.items():
            if '_' in key:
                # CGI turns '-' into '_' (RFC 3875 section 4.1.18): x_user would
                # pass for x-user, a field a front proxy may vouch for.  See
                # doc/decisions.rst, 'WSGI'.
                continue
            if key == 'content-type':
                environ['CONTENT_TYPE'] = value
            elif key == 'content-length':
                environ['CONTENT_LENGTH'] = str(value)
            else:
                environ['HTTP_' + key.upper().replace('-', '_')] = str(value)
        return environ

    def __call__(self, session: Session, request: Request, api: API) -> tuple:
        start = _Start()
        result: Any = self.app(self.environ(session, request), start)
        try:
            if start.status is None:
                # PEP 3333: start_response may come with the first item.
                iterator = iter(result)
                first = next(iterator, None)
                if start.status is None:
                    raise ValueError('WSGI app returned without calling start_response()')
                if first is not None:
                    start.written.append(first)
                result = _Rest(iterator, result)
            (status, reason) = _parse_status(start.status)
            headers = _convert_headers(start.headers)
        except BaseException:
            _close_source(result)
            raise
        start.sent = True
        if has_no_content(request.method, status):
            _close_source(result)
            return (status, reason, headers, None)
        length = headers.get('content-length')
        if type(result) is FileWrapper and length is not None and not start.written:
            return (status, reason, headers, _FileBody(result, length))
        if type(result) in (list, tuple):
            return (status, reason, headers, _at_hand(start.written, result, length))
        items = _iterate(result, start.written)
        if length is not None:
            return (status, reason, headers, BodyIter(_Source(items, result), length))
        return (status, reason, headers, ChunkedBodyIter(_Source(_chunks(items), result)))


def _at_hand(written: list[bytes], result: list | tuple, length: int | None) -> Any:
    """The body for data that is all at hand: ``bytes``, or a ``BodyIter`` over a list."""
    _close_source(result)
    items = []
    total = 0
    for data in (*written, *result):
        if type(data) is not bytes:
            raise TypeError(f'WSGI response item: need bytes; got {type(data)!r}')
        if data:
            items.append(data)
            total += len(data)
    if length is not None and length != total:
        raise ValueError(f'WSGI app set Content-Length {length}, but returned {total} bytes')
    if len(items) <= 1:
        return items[0] if items else b''
    return BodyIter(items, total)  # the server coalesces what is at hand


class _Rest:
    """The rest of a response iterator whose first item was taken, closing like the result."""

    def __init__(self, iterator, result):
        self._iterator = iterator
        self._result = result

    def __iter__(self):
        return self._iterator

    def close(self):
        _close_source(self._result)


class _FileBody(Body):
    """A Body over a FileWrapper's file that closes the file when done."""

    __slots__ = ('_wrapper',)

    def __init__(self, wrapper, length):
        super().__init__(wrapper.filelike, length)
        self._wrapper = wrapper

    def _release(self):
        # The body protocol: once sent, the FileWrapper closes (PEP 3333).
        self._wrapper.close()


# --------------------------------------------------------------------------
# The reverse adapter: an RGI app under a WSGI server.


class _Input:
    """Adapts wsgi.input (read() only is guaranteed) to what Body needs."""

    __slots__ = ('_read',)

    def __init__(self, stream):
        self._read = stream.read

    def readinto(self, buf):
        data = self._read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def readline(self, size):  # pragma: no cover - WSGI servers de-chunk for us
        raise ValueError('chunked input is not available under WSGI')


class _Session:
    __slots__ = ('address', 'credentials', 'store', 'requests', 'max_requests', 'closed',
                 'message')

    def __init__(self, address):
        self.address = address
        self.credentials = None
        self.store = {}
        self.requests = 0
        self.max_requests = 1
        self.closed = True
        self.message = None


class WSGIWrapper:
    """A WSGI application that runs the RGI app *app*.

    Each WSGI request gets a fresh session (WSGI has no connections).  The
    request URI is rebuilt from ``SCRIPT_NAME``, ``PATH_INFO`` and
    ``QUERY_STRING``; a request body arrives as a ``Body`` (with
    ``CONTENT_LENGTH``) or ``None``; a ``range`` becomes a ``Range`` or is
    dropped, as the degu server does.  Chunk extensions do not survive WSGI.

    The WSGI server is told the length of every response that may carry
    content: ``Content-Length: 0`` for a ``None`` body, the length of a
    ``bytes``, ``Body`` or ``BodyIter``.  A chunked body, or a ``Body`` of
    unknown length, goes without one and the WSGI server frames it.
    """

    def __init__(self, app: Callable[..., Any]) -> None:
        if not callable(app):
            raise TypeError(f'app: not callable: {app!r}')
        self.app = app

    def __repr__(self) -> str:
        return f'WSGIWrapper({self.app!r})'

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method = environ['REQUEST_METHOD']
        if method not in METHODS:
            start_response('501 Not Implemented', [('Content-Length', '0')])
            return []
        raw = environ.get('SCRIPT_NAME', '') + environ.get('PATH_INFO', '')
        path = urllib.parse.quote(raw.encode('latin-1'), safe="/!$&'()*+,;=:@-._~") or '/'
        query = environ.get('QUERY_STRING')
        uri = path + ('?' + query if query else '')
        headers = {}
        for (key, value) in environ.items():
            if key.startswith('HTTP_'):
                headers[key[5:].lower().replace('_', '-')] = value
        if 'range' in headers:  # as the degu server takes it: a Range, or dropped
            parsed = parse_request_range(headers.pop('range'))
            if parsed is not None:
                headers['range'] = parsed
        if environ.get('CONTENT_TYPE'):
            headers['content-type'] = environ['CONTENT_TYPE']
        body = None
        length = environ.get('CONTENT_LENGTH')
        if length:
            headers['content-length'] = int(length)
            body = Body(_Input(environ['wsgi.input']), int(length))
        components = [] if path == '/' else path[1:].split('/')
        request = Request(method, uri, headers, body, [], components, query or None,
                          version=environ.get('SERVER_PROTOCOL', 'HTTP/1.1'))
        address = (environ.get('REMOTE_ADDR', ''), int(environ.get('REMOTE_PORT') or 0))
        (status, reason, rheaders, rbody) = self.app(_Session(address), request, api)
        pairs = []
        for (name, value) in rheaders.items():
            if name in HOP_BY_HOP:
                continue
            for item in (value if type(value) is list else [value]):
                pairs.append((name, str(item)))
        if 'content-length' not in rheaders:
            # The framing degu's own server would send (a None body is
            # content-length: 0, else the peer waits for a close); a chunked
            # body is left to the WSGI server.
            (kind, length) = response_output(method, status, rbody, True)
            if kind == LENGTH:
                pairs.append(('content-length', str(length)))
        start_response(f'{status} {reason}', pairs)
        if rbody is None:
            return []
        if type(rbody) is bytes:
            return [rbody]
        return _data(rbody)


def _data(body: Any) -> Iterator[bytes]:
    """The data of a degu response body for a WSGI server, through the body protocol.

    Each piece as the body produces it, a ``BodyIter`` checked against its
    length; chunk extensions are dropped (WSGI has no place for them).  The
    body is released (its file or source closed) when the WSGI server
    closes this iterator, as PEP 3333 says it must.
    """
    try:
        chunked = body.chunked
        for item in body._items():
            data = item[1] if chunked else item
            if data:
                yield bytes(data)  # a piece may be a view of a reused buffer
    finally:
        release_body(body)
