"""The degu HTTP/1.1 client: ``Client``, ``SSLClient`` and ``Connection``.

A ``Client`` says *where* a server is and *how* to connect, and keeps a
pool of kept-alive connections for ``Client.request()`` and its shortcuts,
which any number of threads may call at once (``_Pool``: lending, giving
back, retries).  ``Client.connect()`` gives a ``Connection`` of your own:
one socket, one conversation, used by one thread (or, for pipelining, by
exactly one sending and one reading thread).

All IO goes through the shared engine: a ``Transport`` per connection, and
the message readers and writers of ``degu._io``.
The client adds what ``http.client`` cannot do: pipelining
(``send_request()`` / ``read_response()``), ``Expect: 100-continue``, one
exception for every way a connection ends early (``ConnectionClosed``, with
``unanswered`` listing the requests that will get no response), and never
partial data passed off as complete.

States of a ``Connection`` (``_State``)::

    OPEN         may send requests and read responses
    SEND_CLOSED  a send failed because the peer closed or reset; a response
                 it sent before that (413, 401...) may still be read
    CLOSING      nothing more goes out; the connection ends once the
                 current response body is consumed
    CLOSED       the socket is closed; every call raises ConnectionClosed

Transitions, each with its trigger::

    OPEN        --a send fails: the peer closed or reset (not a timeout)--> SEND_CLOSED
    OPEN        --a response says the server closes (connection: close, an
                  HTTP/1.0 response without keep-alive)--> CLOSING
    OPEN        --a response whose body runs until the close--> CLOSING
    OPEN        --read_response() returns the final status that came
                  instead of 100 Continue--> CLOSING
    SEND_CLOSED --read_response() returns the early response--> CLOSING
    SEND_CLOSED --read_response() finds none (request() then raises
                  the send's error)--> CLOSED
    CLOSING     --the response has no body: at once--> CLOSED
    CLOSING     --the next call, once the body was consumed (or failed)--> CLOSED
    any         --close(); any other error (a malformed response, a timeout,
                  a body that fails, bad request arguments)--> CLOSED

A usage error of the pipeline (``max_pending`` reached, a ``POST``
pipelined, ``'no pending requests'``) changes nothing.

The reason for CLOSING (``'the server sent connection: close'``...) is kept
for the messages.  ``closed`` only looks: it is True in CLOSED, and in
CLOSING once the body was consumed; the socket is closed by the next call,
``close()``, or at once on the move to CLOSED.  A response body that fails
closes the socket itself, and the state follows at the next call.

Interim (1xx) responses are read and skipped before every final one.  See
doc/degu.client.rst, and doc/decisions.rst for the rules and their RFC sections.
"""

from __future__ import annotations

import enum
import io
import itertools
import os
import socket
import stat
import sys
import threading
import time
import weakref
from collections import deque

from ._body import ConnReader
from ._common import _check_abspath, _wait_readable
from ._framing import (
    _CONTENT_METHODS,
    CHUNKED,
    CLOSE,
    LENGTH,
    NO_BODY,
    check_framing_headers,
    request_output,
    response_close_reason,
)
from ._io import _new_response, read_response_head, write_message
from ._parse import (
    _GOOD_NAMES,
    _TYPE_ERROR,
    METHODS,
    _check_method,
    _set_default,
    chunk_end,
    fold_names,
    parse_chunk,
)
from ._transport import Transport
from .base import (
    BODY_CONSUMED,
    BODY_ERROR,
    BODY_READY,
    IO_SIZE,
    MAX_IO_SIZE,
    Body,
    ChunkedBody,
    ChunkedBodyIter,
    ConnectionClosed,
    ConnectionTimedOut,
    EmptyPreambleError,
    ParseError,
    Range,
    Response,
    UnsupportedResponse,
    address_family,
    api,
    is_body,
    render_request,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (doc/decisions.rst)
if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable
    from typing import Any, Protocol, TypeVar

    _C = TypeVar('_C', bound='Connection')
    _Cl = TypeVar('_Cl', bound='Client')

    class _Socket(Protocol):
        """What a ``Connection`` needs of *sock*: a socket, an ``ssl.SSLSocket``, a test double.

        ``fileno()`` is used only to wait for ``100 Continue`` (and by
        ``degu.applib.ProxyApp`` to spot a stale connection).
        """

        def recv_into(self, buffer: memoryview, /) -> int: ...
        def send(self, data: bytes | bytearray | memoryview, /) -> int: ...
        def close(self) -> None: ...
        def fileno(self) -> int: ...

__all__ = (
    'Client',
    'SSLClient',
    'from_url',
    'parse_url',
    'Connection',
    'Response',
    'ClientResponse',
    'HTTPError',
    'PoolTimeout',
    'build_client_sslctx',
    'is_temp_network_error',
    'ConnectionClosed',
    'EmptyPreambleError',
    'ConnectionTimedOut',
    'UnsupportedResponse',
)

DEFAULT_TIMEOUT = 65  # seconds: every socket operation of a Connection
DEFAULT_MAX_PENDING = 16  # requests sent and not yet answered on one Connection
MAX_MAX_PENDING = 100  # the largest max_pending a Client accepts
DEFAULT_EXPECT100_TIMEOUT = 1.0  # seconds to wait for 100 Continue before sending anyway
MAX_INTERIM = 16  # 1xx responses skipped before a final one (RFC 9110 section 15.2)
DEFAULT_UNIX_HOST = 'localhost'  # the host header over AF_UNIX (nginx, aiohttp, curl agree)
DEFAULT_POOL_SIZE = 10  # connections a Client's pool keeps open at most (as urllib3)
DEFAULT_POOL_TIMEOUT = 10.0  # seconds a request waits for a free connection of the pool
# Seconds an idle pooled connection is kept: under the 15 s after which a
# degu server closes an idle connection, so the usual race is avoided; the
# retry covers the rest.
DEFAULT_POOL_IDLE_TIMEOUT = 10.0
MAX_POOL_SIZE = 1000
# Seconds: a pooled connection idle this long is polled before it is used
# again (0.7 us), so that what the server sent or did while it was idle (a
# close, an unsolicited 408) is seen before a request goes out.  A POST or
# PATCH always polls.  Busy connections, reused at once, do not pay for it.
CHECK_AFTER = 0.001
CLOSE_DRAIN = 64 * 1024  # bytes: ClientResponse.close() reads a rest this small, else closes

_CLOSED = 'Connection is closed'
_NO_JSON = object()  # json= not given (None is JSON null)
_BODY_TYPES = 'bytes, bytearray, memoryview, a binary file, a body object or None'
_NOT_PIPELINED = ('POST', 'PATCH')  # not idempotent (RFC 9110 section 9.2.2)
# RFC 9110 section 9.2.2: the idempotent methods, which a pool may send again
# when a kept-alive connection turns out closed before any of the response.
_IDEMPOTENT = frozenset(('GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'TRACE'))


class _State(enum.Enum):
    """Where a ``Connection`` is in its life (the table in the module docstring)."""

    OPEN = 'open'  # may send and read
    SEND_CLOSED = 'send-closed'  # a send failed: only an early response may be read
    CLOSING = 'closing'  # nothing goes out; ends once the current body is consumed
    CLOSED = 'closed'  # the socket is closed


# Module-level names: the hot path compares with ``is`` and no attribute lookup.
_OPEN = _State.OPEN
_SEND_CLOSED = _State.SEND_CLOSED
_CLOSING = _State.CLOSING
_CLOSED_STATE = _State.CLOSED


class _Transport(Transport):
    """The client's transport: a response body that fails closes it, and marks its error.

    Response bodies report their errors here (``body_failed()``): the
    stream's position is lost, so the socket closes at once (the state
    follows at the next call); a ``ConnectionClosed`` from a body always
    comes after the response started.
    """

    __slots__ = ('lease',)
    lease: tuple[_Pool, Connection] | None  # while the pool lends the connection out

    def body_failed(self, exc: BaseException) -> None:
        if isinstance(exc, ConnectionClosed):
            exc.response_started = True
        self.close()


class _DeadlineTransport(_Transport):
    """A ``_Transport`` whose reads end at ``deadline`` (``response_timeout``).

    Each receive waits at most until the deadline (``timeout`` still bounds
    it when that comes first); a receive asked for after it, or cut short
    by it, is a ``ConnectionTimedOut``.  Only connections with a
    ``response_timeout`` use this class: the others pay nothing for it.
    """

    __slots__ = ('deadline', 'response_timeout')
    deadline: float | None  # time.monotonic() when the response must be complete
    response_timeout: float

    def _recv(self, view, what, wait=None):
        deadline = self.deadline
        if deadline is None:
            return Transport._recv(self, view, what, wait)
        left = deadline - time.monotonic()
        if left <= 0:
            raise self._late(what)
        limit = self.timeout if wait is None else wait
        if limit is None or left < limit:
            wait = left
        try:
            return Transport._recv(self, view, what, wait)
        except ConnectionTimedOut as e:
            if time.monotonic() < deadline:
                raise
            raise self._late(what) from e

    def _late(self, what):
        self.deadline = None  # once: the connection is done
        return ConnectionTimedOut(
            f'reading {what}: no complete response within {self.response_timeout} s'
            ' (response_timeout)'
        )


def _check_timeout(name, value, allow_none):
    if value is None and allow_none:
        return value
    if type(value) not in (int, float):
        types = (int, float, type(None)) if allow_none else (int, float)
        raise TypeError(_TYPE_ERROR.format(name, types, type(value), value))
    if not value > 0:
        raise ValueError(f'{name} must be > 0; got {value!r}')
    return value


def _check_str_or_none(name, value):
    if value is not None and type(value) is not str:
        raise TypeError(_TYPE_ERROR.format(name, (str, type(None)), type(value), value))
    return value


_URL_PORTS = {'http': 80, 'https': 443}


def parse_url(url: str) -> tuple[str, tuple | str | bytes]:
    """``(scheme, address)`` from an ``http``, ``https`` or ``http+unix`` URL.

    The URL names a server, not a resource: its path must be empty or
    ``/`` (give the path with each request), and it may hold no query,
    fragment or user info (use the ``authorization`` option).  The port
    defaults to 80 or 443; an IPv6 literal goes in brackets.  The host of
    an ``http+unix`` URL is the socket's path, percent-encoded (``%00``
    first: a Linux abstract name).

    >>> parse_url('http://127.0.0.1:8101/')
    ('http', ('127.0.0.1', 8101))
    >>> parse_url('https://[::1]')
    ('https', ('::1', 443))
    >>> parse_url('http://[fe80::1%25eth0]:8080/')  # RFC 6874: a zone after '%25'
    ('http', ('fe80::1%eth0', 8080))
    >>> parse_url('http+unix://%2Frun%2Fapi.sock/')
    ('http+unix', '/run/api.sock')
    """
    from urllib.parse import urlsplit

    from .util import unquote

    if type(url) is not str:
        raise TypeError(_TYPE_ERROR.format('url', str, type(url), url))
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ('http', 'https', 'http+unix'):
        raise ValueError(f'url: need an http, https or http+unix URL; got {url[:80]!r}')
    if '@' in parts.netloc:
        raise ValueError('url: user info is not supported (use the authorization option)')
    if parts.path not in ('', '/'):
        raise ValueError(f'url: need no path (give it with each request); got {url[:80]!r}')
    if parts.query or parts.fragment or url.endswith(('?', '#')):
        raise ValueError(f'url: need no query or fragment; got {url[:80]!r}')
    if scheme == 'http+unix':
        if not parts.netloc:
            raise ValueError(f'url: need a percent-encoded socket path; got {url[:80]!r}')
        path = unquote(parts.netloc)
        if path.startswith('\0'):
            return (scheme, path.encode('utf-8'))
        address_family(path)  # an absolute, normalised path
        return (scheme, path)
    try:
        host = parts.hostname
        port = parts.port
    except ValueError as e:
        raise ValueError(f'url: {e}: {url[:80]!r}') from None
    if not host:
        raise ValueError(f'url: need a host; got {url[:80]!r}')
    if '%' in host:
        # RFC 6874: an IPv6 zone is written '%25' (a percent-encoded '%').
        (address, sep, zone) = host.partition('%25')
        if not sep or not zone:
            raise ValueError(f"url: need an IPv6 zone as '%25zone'; got {url[:80]!r}")
        host = f'{address}%{zone}'
    if port is None:
        port = _URL_PORTS[scheme]
    return (scheme, (host, port))


def _address(address, sslclient):
    # A URL given as the address: the scheme must match the class.
    if type(address) is not str or address.startswith('/') or '://' not in address:
        return address
    (scheme, parsed) = parse_url(address)
    if scheme == 'https' and not sslclient:
        raise ValueError(
            'an https URL needs an SSLClient: use degu.client.from_url() or SSLClient(sslctx, url)'
        )
    if scheme != 'https' and sslclient:
        raise ValueError(f'an SSLClient needs an https URL; got {address[:80]!r}')
    return parsed


def from_url(url: str, sslctx: ssl.SSLContext | dict[str, Any] | None = None, **options: Any
) -> Client:
    """A ``Client`` for an ``http`` or ``http+unix`` URL, an ``SSLClient`` for ``https``.

    For ``https`` the server's certificate is verified against the system
    CAs unless *sslctx* (an ``ssl.SSLContext`` or an *sslconfig* ``dict``,
    as ``SSLClient`` takes) says otherwise; *sslctx* with another scheme is
    a ``ValueError``.  ``**options`` are those of ``Client``.

    >>> from_url('http://127.0.0.1:8101/')
    Client(('127.0.0.1', 8101))
    >>> from_url('http+unix://%2Frun%2Fapi.sock').host
    'localhost'
    """
    (scheme, _) = parse_url(url)
    if scheme == 'https':
        return SSLClient({} if sslctx is None else sslctx, url, **options)
    if sslctx is not None:
        raise ValueError(f'sslctx given for a {scheme} URL: {url[:80]!r}')
    return Client(url, **options)


def _default_host(address: tuple | str | bytes, default_port: int) -> str:
    # RFC 9112 section 3.2: every HTTP/1.1 request carries a host.
    if not isinstance(address, tuple):
        return DEFAULT_UNIX_HOST
    (host, port) = address[:2]
    if ':' in host:
        # An IPv6 literal; a zone ("%eth0") means nothing to the server.
        host = f'[{host.partition("%")[0]}]'
    if port == default_port:
        return host
    return f'{host}:{port}'


# --------------------------------------------------------------------------
# Responses


class HTTPError(Exception):
    """A response with an error status (400 or more): ``Response.raise_for_status()``.

    ``response`` is the ``Response``; its body is left unread (read it, or
    ``conn.discard()`` it, before the next request on that connection).
    ``request`` is the ``(method, uri)`` it answers, for a response a
    ``Connection`` returned; ``None`` for one made by hand.
    """

    def __init__(self, response: ClientResponse) -> None:
        request = getattr(response, '_request', None)
        message = f'{response.status} {response.reason}'
        if request is not None:
            message += f' for {request[0]} {request[1]}'
        super().__init__(message)
        self.response = response
        self.request: tuple[str, str] | None = request


class ClientResponse(Response['Body | ChunkedBody | None']):
    """What a ``Connection`` returns: a ``Response`` with two helpers.

    Still the 4-tuple ``(status, reason, headers, body)``, equal to and
    printed as the ``Response`` it extends, so unpacking works as ever::

        (status, reason, headers, body) = conn.get('/')

    ``headers`` is a plain ``dict`` whose names are lower case.
    """

    # No instance dict: the Response the reader built becomes one by a
    # __class__ assignment, which costs a tenth of a copy (callgrind).
    __slots__ = ()
    _request: tuple[str, str] | None = None  # (method, uri): see _ErrorResponse

    def __repr__(self) -> str:
        return 'Response' + Response.__repr__(self)[len(type(self).__name__) :]

    def raise_for_status(self) -> ClientResponse:
        """Raise ``HTTPError`` for a status of 400 or more; else return the response.

        >>> ClientResponse(404, 'Not Found', {}, None).raise_for_status()
        Traceback (most recent call last):
          ...
        degu.client.HTTPError: 404 Not Found
        >>> ClientResponse(200, 'OK', {}, None).raise_for_status().status
        200
        """
        if self.status >= 400:
            raise HTTPError(self)
        return self

    def close(self) -> None:
        """Done with this response: its connection can carry the next request.

        What is left of the body is read and dropped when it is at most
        ``CLOSE_DRAIN`` bytes (64 KiB); a bigger rest closes the connection
        instead, as reading it would cost more than a new connection.  A
        read body, or none, changes nothing.  Errors while reading the rest
        close the connection and are not raised.  ``with response:`` calls
        this at the end of the block.
        """
        body = self.body
        if body is None or body.state >= BODY_CONSUMED:
            return
        try:
            if body._drain(CLOSE_DRAIN):
                return
        except (ConnectionClosed, OSError, ValueError):
            return  # the body failed: its connection is closed already
        body._fail(ConnectionClosed('the response was closed with its body unread'))

    def __enter__(self) -> ClientResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def json(self, limit: int = MAX_IO_SIZE) -> Any:
        """Read the whole body, at most *limit* bytes, and decode it as JSON.

        The body must be unread.  A ``content-length`` over *limit* is
        refused before a byte is read (the body can still be discarded); a
        chunked or close-delimited body is refused once it passes *limit*.
        The encoding is UTF-8 (or UTF-16/32, as ``json.loads()`` detects).
        """
        import json

        if type(limit) is not int:
            raise TypeError(_TYPE_ERROR.format('limit', int, type(limit), limit))
        if limit < 1:
            raise ValueError(f'need limit >= 1; got {limit}')
        body = self.body
        if body is None:
            raise ValueError(f'no response body to decode: {self.status} {self.reason}')
        length = body.content_length
        if length is not None and length > limit:
            raise ValueError(
                f'response body too large: need content-length <= {limit}; got {length}'
            )
        pieces = []
        total = 0
        while True:
            piece = body.read(min(IO_SIZE, limit + 1 - total))
            if not piece:
                break
            total += len(piece)
            if total > limit:
                raise ValueError(f'response body too large: more than {limit} bytes')
            pieces.append(piece)
        return json.loads(b''.join(pieces))


class _ErrorResponse(ClientResponse):
    """A ``ClientResponse`` with a status of 400 or more, which knows its request.

    ``_request`` is the ``(method, uri)`` for ``HTTPError``'s message; only
    error responses pay for the instance dict that holds it.
    """


def _json_args(headers, body, obj):
    # json= on a request: the body, and a content-type unless the caller gave one.
    import json

    if body is not None:
        raise TypeError('cannot send both body and json')
    if headers is None:
        headers = {}
    elif type(headers) is not dict:
        raise TypeError(_TYPE_ERROR.format('headers', dict, type(headers), headers))
    else:
        headers = dict(fold_names(headers))
    headers.setdefault('content-type', 'application/json')
    # RFC 8259: UTF-8, and no NaN or Infinity.
    text = json.dumps(obj, ensure_ascii=False, separators=(',', ':'), allow_nan=False)
    return (headers, text.encode('utf-8'))


def _file_chunks(file):
    # A pipe or socket file: each piece goes out as a chunk as soon as it is read.
    read = getattr(file, 'read1', None) or file.read
    while True:
        data = read(IO_SIZE)
        if data is None:
            raise ValueError(f'body: the file is non-blocking: {file!r}')
        if not data:
            yield (None, b'')
            return
        yield (None, data)


def _request_body(body):
    """What *body* goes out as: the types beyond ``bytes``, ``None`` and body objects.

    A ``bytearray`` or ``memoryview`` is sent as ``bytes`` (so with the same
    16 MiB limit: bigger data belongs in a file or a ``BodyIter``).  A
    regular binary file is a ``Body`` of its size from its position (so
    ``sendfile()`` where the socket allows); any other binary file (a pipe)
    is sent chunked as it is read.  The file is not closed.
    """
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, io.TextIOBase):
        raise TypeError(f'bad body type: need a binary file; got a text file: {body!r}'[:200])
    if hasattr(body, 'fileno') and (hasattr(body, 'readinto') or hasattr(body, 'read')):
        try:
            fd = body.fileno()
        except (OSError, ValueError):  # io.BytesIO, a closed file
            fd = None
        if fd is not None:
            info = os.fstat(fd)
            if stat.S_ISREG(info.st_mode):
                return Body(body, max(0, info.st_size - body.tell()))
            return ChunkedBodyIter(_file_chunks(body))
    raise TypeError(f'bad body type: need {_BODY_TYPES}; got a {type(body)!r}: {body!r}'[:200])


# --------------------------------------------------------------------------
# The pool behind Client.request() and its shortcuts


class PoolTimeout(ConnectionTimedOut):
    """No connection of a ``Client``'s pool came free within ``pool_timeout``.

    Nothing was sent (``unanswered`` is empty).  A connection is lent out
    until the body of its response is read (or ``response.close()`` is
    called, or the response is dropped): a program that keeps responses
    with unread bodies holds connections.
    """


def _all_buffered(body):
    """True when the rest of *body* is in its connection's buffer: draining it cannot wait."""
    reader = body._reader
    if type(body) is not _PooledChunkedBody:
        remaining = body._remaining
        return remaining is not None and reader.buffered >= remaining

    def scan(buf, pos, stop):
        # Chunk by chunk (each is at least 5 bytes, so at most stop / 5 of them).
        while True:
            end = chunk_end(buf, pos, stop)
            if end is None:
                return False
            eol = buf.find(b'\r\n', pos, end)
            if parse_chunk(bytes(buf[pos:eol]))[0] == 0:
                return True
            pos = end

    if body._state != BODY_READY:
        return False  # within a chunk: the buffer does not start at a chunk line
    try:
        return reader.scan(scan)
    except ValueError:  # a bad chunk: reading it would fail anyway
        return False


def _pooled_class(cls):
    """A subclass of *cls* whose body gives its connection back to the pool.

    A response body of the pool becomes one by a ``__class__`` assignment:
    no copy, no new slot.  Its ``_state`` is a property over the slot of
    *cls*: setting it to ``BODY_CONSUMED`` (the last byte was read) gives
    the connection back for the next request, and to ``BODY_ERROR`` closes
    it.  A body dropped before its end is drained when the rest is buffered
    already (a small body nobody read), else its connection is closed.
    Measured (benchmarks/run.py client): the property costs about 0.1 us
    per read of a pooled body; other bodies do not see it.
    """
    slot = cls.__dict__['_state']
    get_state = slot.__get__
    set_state = slot.__set__

    def _set(self, value):
        set_state(self, value)
        if value >= BODY_CONSUMED:
            lease = self._reader.lease
            if lease is not None:
                self._reader.lease = None  # once
                lease[0].give_back(lease[1], value == BODY_CONSUMED)

    def __del__(self):
        try:
            if get_state(self) >= BODY_CONSUMED or self._reader.lease is None:
                return
            if not self._reader.closed and _all_buffered(self):
                self._drain(MAX_IO_SIZE)  # from the buffer: no wait
            if get_state(self) < BODY_CONSUMED:
                self._state = BODY_ERROR  # closes the connection
        except Exception:  # pragma: no cover - nothing to do about it at GC time
            pass

    namespace = {
        '__slots__': (),
        '__module__': cls.__module__,
        '__qualname__': cls.__qualname__,  # the repr stays Body(...) or ChunkedBody(...)
        '__doc__': cls.__doc__,
        '_state': property(get_state, _set),
        '__del__': __del__,
    }
    return type(cls.__name__, (cls,), namespace)


# pool_info() counts, since the pool opened: see Client.pool_info().
_POOL_COUNTERS = ('connects', 'reuses', 'retries', 'expired', 'stale', 'dropped')

_PooledBody = _pooled_class(Body)
_PooledChunkedBody = _pooled_class(ChunkedBody)
_POOLED = {Body: _PooledBody, ChunkedBody: _PooledChunkedBody}


_SAME = object()  # _resender(): the body can be sent again as it is


class _Received(ConnReader):
    """The whole body of a pooled response, taken from its connection's buffer at once.

    A response whose body had arrived with its preamble (most small ones)
    gives its connection back to the pool before it is returned: its
    ``Body`` reads these bytes instead (a slot change, no new object).
    Measured against nginx (benchmarks/run.py client): this saves half of
    what lending the connection out until the body is read costs.
    """

    __slots__ = ('_data', '_pos')

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    @property
    def buffered(self) -> int:
        return len(self._data) - self._pos

    def read_exact(self, size):
        pos = self._pos
        data = self._data
        if pos == 0 and size == len(data):
            self._pos = size
            return data
        end = pos + size
        if end > len(data):  # pragma: no cover - the Body never asks for more
            raise ValueError(f'expected to read {size} bytes, but {len(data) - pos} remain')
        self._pos = end
        return data[pos:end]

    def readinto_exact(self, view):
        view[:] = self.read_exact(len(view))

    def readinto_some(self, view):
        size = min(len(view), len(self._data) - self._pos)
        view[:size] = self.read_exact(size)
        return size

    def body_failed(self, exc):
        pass


def _resender(method, body):
    """What the pool may send again, or ``None`` when the request must not be retried.

    A retry needs an idempotent method (RFC 9110 section 9.2.2) and a body
    that can be sent a second time: none, ``bytes`` (or a ``bytearray`` or
    ``memoryview``), or a regular file, from where it was.  Returns a
    function that gives the body for the second attempt.
    """
    if method not in _IDEMPOTENT:
        return None
    if body is None or type(body) in (bytes, bytearray, memoryview):
        return _SAME
    if isinstance(body, io.IOBase) and not isinstance(body, io.TextIOBase):
        try:
            if body.seekable() and stat.S_ISREG(os.fstat(body.fileno()).st_mode):
                position = body.tell()

                def rewind():
                    body.seek(position)
                    return body

                return rewind
        except (OSError, ValueError):
            pass
    return None  # a body object or a stream: what was read of it is gone


def _next_value(counter):
    # The value an itertools.count() would give next: what it counted so far.
    return counter.__reduce__()[1][0]


class _Pool:
    """The connections of one ``Client``, shared by threads: see ``Client.request()``.

    ``_idle`` is a stack of ``(connection, since)``, the most recently used
    on top (the least likely to have been closed by the server), so when
    the top one has been idle too long, all of them have.  ``_open`` counts
    every connection of the pool: idle, lent out, or being opened.

    The hot path takes no lock: ``list.pop()`` and ``list.append()`` are
    atomic, and so is ``next()`` on the counters.  The lock guards
    ``_open``, the waiters and the sweeps.  No wake-up is lost: a waiter
    counts itself in ``_waiting`` before it looks at ``_idle`` a last time,
    and ``give_back()`` appends before it reads ``_waiting``.  Measured
    with benchmarks/run.py client against nginx: the locks on both paths
    cost 0.3 us of the 1.5 us a pooled request first cost over a bare one.
    Connections are opened and closed outside the lock.
    """

    def __init__(self, client: Client) -> None:
        self.client = client
        self.size = client.pool_size
        self.timeout = client.pool_timeout
        self.idle_timeout = client.pool_idle_timeout
        # Idle for less than this, a connection is used without a look.
        self._fresh = min(CHECK_AFTER, self.idle_timeout)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._idle: list[tuple[Connection, float]] = []
        self._open = 0
        self._waiting = 0
        self.closed = False
        # Counters for pool_info(): next() on an itertools.count is atomic.
        self._counters = {name: itertools.count() for name in _POOL_COUNTERS}
        self._reused = self._counters['reuses']

    def info(self) -> dict[str, int]:
        with self._lock:
            idle = len(self._idle)
            info = {
                'size': self.size,
                'open': self._open,
                'idle': idle,
                'lent': self._open - idle,
                'waiting': self._waiting,
            }
        for (name, counter) in self._counters.items():
            info[name] = _next_value(counter)
        return info

    def _count(self, name, n=1):
        counter = self._counters[name]
        for _ in range(n):
            next(counter)

    def acquire(self, check, fresh=False):
        """A connection for one request: ``(conn, reused)``.

        The most recently used idle one, unless *fresh* (the retry); with
        *check* (the request cannot be sent again if it fails), or after
        ``CHECK_AFTER`` idle, one the server closed meanwhile (it reads as
        readable) is closed and the next one taken.  Otherwise a new one while fewer
        than ``size`` are open, or the first to come back, waiting
        ``timeout`` seconds at most.
        """
        idle = self._idle
        deadline = None
        while True:
            while idle and not fresh:
                try:
                    (conn, since) = idle.pop()
                except IndexError:  # another thread took the last one
                    break
                idle_for = time.monotonic() - since
                if idle_for >= self.idle_timeout:
                    self._expire(conn)  # and all the older ones
                    break
                if (check or idle_for >= CHECK_AFTER) and _wait_readable(conn.sock, 0):
                    # EOF, or bytes no request asked for (a server's 408
                    # before it closed): either way, not usable.
                    self._count('stale')
                    self._forget(conn)
                    continue
                next(self._reused)
                return (conn, True)
            if deadline is None:
                deadline = time.monotonic() + self.timeout
            if self._reserve(fresh, deadline):
                break
        try:
            conn = self.client.connect()
        except BaseException:
            self._forget(None)
            raise
        self._count('connects')
        return (conn, False)

    def _reserve(self, fresh, deadline):
        """Count a connection about to be opened: True; or False when one is idle to take.

        Waits while ``size`` connections are open and none is idle.  For a
        *fresh* one (the retry), an idle connection is closed to make room.
        """
        closing = None
        try:
            with self._lock:
                while True:
                    if self._open < self.size:
                        self._open += 1
                        return True
                    if self._idle:
                        if not fresh:
                            return False
                        closing = self._idle.pop(0)[0]  # the oldest makes room
                        return True  # its place in _open goes to the new one
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise self._timed_out()
                    self._waiting += 1
                    try:
                        # Counted as waiting before this last look: a
                        # connection given back from now on notifies.
                        if self._idle:
                            continue
                        self._cond.wait(left)
                    finally:
                        self._waiting -= 1
        finally:
            if closing is not None:
                closing.close()

    def _expire(self, conn):
        # *conn* (off the top) was idle too long, and so were those under it.
        with self._lock:
            closing = [conn] + [c for (c, _) in self._idle]
            self._idle.clear()
            self._open -= len(closing)
        self._count('expired', len(closing))
        for conn in closing:
            conn.close()

    def _timed_out(self):
        lent = self._open - len(self._idle)
        return PoolTimeout(
            f'no connection free within {self.timeout} s (pool_timeout): all {lent} of'
            f' pool_size={self.size} lent out (read or close() each response body)'
        )

    def _forget(self, conn):
        # A connection of the pool is gone (closed, or never opened).
        if conn is not None:
            conn.close()
        with self._lock:
            self._open -= 1
            if self._waiting:
                self._cond.notify()

    def give_back(self, conn, reusable):
        """The request on *conn* is over: idle it for the next one, or close it.

        Not reusable after an error, when the server said it closes, or
        when bytes beyond the response were received: no request asked for
        them, and the next response must not be read from them.
        """
        transport = conn._transport
        # The transport's own fields, not its properties: 0.15 us a request.
        if (
            reusable
            and conn._state is _OPEN
            and not transport._closed
            and transport._start == transport._stop
        ):
            now = time.monotonic()
            idle = self._idle
            item = (conn, now)
            idle.append(item)
            if self._waiting:
                with self._lock:
                    self._cond.notify()
            if self.closed:
                self._remove(item)  # close() ran meanwhile
                return
            try:
                oldest = idle[0][1]
            except IndexError:  # taken meanwhile
                return
            if now - oldest >= self.idle_timeout:
                self._sweep(now)
            return
        self._count('dropped')
        self._forget(conn)

    def _remove(self, item):
        try:
            self._idle.remove(item)
        except ValueError:
            return  # close() took it
        self._forget(item[0])

    def _sweep(self, now):
        # The oldest idle connection goes once too old, while the pool is used.
        try:
            item = self._idle.pop(0)
        except IndexError:
            return
        if now - item[1] >= self.idle_timeout:
            self._count('expired')
            self._forget(item[0])
        else:
            self._idle.append(item)  # another thread changed the stack meanwhile

    def close(self):
        with self._lock:
            self.closed = True
            idle = [conn for (conn, _) in self._idle]
            self._idle.clear()
            self._open -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            conn.close()

    def request(self, method, uri, headers, body, expect100):
        """One request on a connection of the pool, sent a second time when that is safe.

        A kept-alive connection may have been closed by the server while it
        was idle (its idle timeout), a race no client can avoid.  When the
        request fails with nothing of the response received, it is sent
        once more on a new connection if it can be: an idempotent method and
        a body that can be sent again (``_resender()``).  Never a ``POST``
        or ``PATCH``: for those, an idle connection is checked before use
        (one ``poll()``), which narrows the race but cannot close it.  A
        timeout is not retried: the server may still be working on it.
        """
        if body is None and method in _IDEMPOTENT:
            resend = _SAME  # what _resender() says, without the call
        else:
            if type(body) is not bytes and body is not None and not is_body(body):
                _request_body(body)  # a bad type raises before a connection is taken
            resend = _resender(method, body)
        # acquire()'s common case written out: the newest idle connection,
        # idle too briefly to need a check (1,000 instructions fewer a
        # request, callgrind); any other goes back for acquire() to judge.
        idle = self._idle
        try:
            item = idle.pop()
        except IndexError:
            item = None
        if item is not None and resend is not None and time.monotonic() - item[1] < self._fresh:
            conn = item[0]
            reused = True
            next(self._reused)
        else:
            if item is not None:
                idle.append(item)
            (conn, reused) = self.acquire(resend is None)
        try:
            response = conn.request(method, uri, headers, body, expect100=expect100)
        except ConnectionClosed as e:
            self.give_back(conn, False)
            if not reused or resend is None or e.response_started or isinstance(
                e, ConnectionTimedOut
            ):
                raise
            if resend is not _SAME:
                body = resend()
            self._count('retries')
            (conn, _) = self.acquire(False, fresh=True)
            try:
                response = conn.request(method, uri, headers, body, expect100=expect100)
            except BaseException:
                self.give_back(conn, False)
                raise
        except BaseException:
            self.give_back(conn, False)
            raise
        body = response.body
        if body is None:
            self.give_back(conn, True)
            return response
        transport = conn._transport
        remaining = body._remaining if type(body) is Body else None
        if remaining is not None and transport._stop - transport._start >= remaining:
            # All of it came with the preamble: see _Received.
            body._reader = body._rfile = _Received(transport.read_exact(remaining))
            conn._response_body = None
            self.give_back(conn, True)
        else:
            # Lent out until the body is read: see _pooled_class().  The
            # connection forgets the body, so that dropping the response
            # drops the body (and runs its __del__).
            body.__class__ = _POOLED[type(body)]
            conn._transport.lease = (self, conn)
            conn._response_body = None
        return response


class _Shortcuts:
    """``get``, ``head``, ``delete``, ``put`` and ``post``: ``request()`` with the method.

    Shared by ``Client`` (requests on its pool) and ``Connection``, each of
    which defines ``request()``.
    """

    if TYPE_CHECKING:  # what the shortcuts call, for type checkers

        def request(
            self,
            method: str,
            uri: str,
            headers: dict[str, Any] | None = None,
            body: object = None,
            *,
            expect100: bool = False,
            json: object = _NO_JSON,
        ) -> ClientResponse: ...

    def get(self, uri: str, headers: dict[str, Any] | None = None) -> ClientResponse:
        """``request('GET', uri, headers)``."""
        return self.request('GET', uri, headers, None)

    def head(self, uri: str, headers: dict[str, Any] | None = None) -> ClientResponse:
        """``request('HEAD', uri, headers)``."""
        return self.request('HEAD', uri, headers, None)

    def delete(self, uri: str, headers: dict[str, Any] | None = None) -> ClientResponse:
        """``request('DELETE', uri, headers)``."""
        return self.request('DELETE', uri, headers, None)

    def put(
        self,
        uri: str,
        headers: dict[str, Any] | None = None,
        body: object = None,
        *,
        expect100: bool = False,
        json: object = _NO_JSON,
    ) -> ClientResponse:
        """``request('PUT', uri, headers, body)``."""
        return self.request('PUT', uri, headers, body, expect100=expect100, json=json)

    def post(
        self,
        uri: str,
        headers: dict[str, Any] | None = None,
        body: object = None,
        *,
        expect100: bool = False,
        json: object = _NO_JSON,
    ) -> ClientResponse:
        """``request('POST', uri, headers, body)`` (the pool never sends one twice)."""
        return self.request('POST', uri, headers, body, expect100=expect100, json=json)


# --------------------------------------------------------------------------
# Client and SSLClient


class Client(_Shortcuts):
    """Where an HTTP server is and how to connect to it: ``Client(address, **options)``.

    *address* is a ``(host, port)`` pair (resolved by
    ``socket.create_connection``, so IPv4, IPv6 or a name), an IPv6 4-tuple,
    a ``str`` AF_UNIX path or a ``bytes`` abstract AF_UNIX name (see
    ``degu.base.address_family()``), or an ``http://`` or ``http+unix://``
    URL (``parse_url()``; ``from_url()`` also takes ``https://``).

    Options (each also an attribute): ``host`` (the ``host`` header sent with
    every request, as RFC 9112 section 3.2 requires: derived from a tuple
    address by default, ``'localhost'`` over AF_UNIX; ``None`` sends none, and
    then each request must carry its own), ``authorization``
    (an ``authorization`` header for every request), ``timeout`` (seconds for
    every socket operation, default 65, ``None`` to block), ``on_connect``
    (a callable ``(conn) -> bool``; anything but ``True`` rejects the
    connection), ``max_pending`` (pipelining depth, default 16, 1..100),
    ``expect100_timeout`` (seconds to wait for ``100 Continue``, default 1.0),
    ``connect_timeout`` (seconds to connect and for a TLS handshake, default
    ``timeout``), ``response_timeout`` (seconds for a whole response, its
    body included; default ``None``) and, for ``request()`` and its
    shortcuts, ``pool_size`` (10), ``pool_timeout`` (10 s) and
    ``pool_idle_timeout`` (10 s).

    >>> client = Client(('127.0.0.1', 5984))
    >>> client.host
    '127.0.0.1:5984'
    >>> client.base_headers
    (('host', '127.0.0.1:5984'),)
    >>> Client(('::1', 80, 0, 0)).host
    '[::1]'
    >>> Client('/tmp/my.socket').host
    'localhost'
    """

    _default_port = 80
    _allowed_options: tuple[str, ...] = (
        'host',
        'authorization',
        'timeout',
        'on_connect',
        'max_pending',
        'expect100_timeout',
        'connect_timeout',
        'response_timeout',
        'pool_size',
        'pool_timeout',
        'pool_idle_timeout',
    )

    def __init__(self, address: tuple | str | bytes, **options: Any) -> None:
        address = _address(address, isinstance(self, SSLClient))
        address_family(address)  # checks it
        self.address = address
        unsupported = sorted(set(options) - set(self._allowed_options))
        if unsupported:
            raise TypeError(
                f'unsupported {type(self).__name__}() **options: {", ".join(unsupported)}'
            )
        self.options = options
        self.host: str | None = _check_str_or_none(
            'host', options.get('host', _default_host(address, self._default_port))
        )
        self.authorization: str | None = _check_str_or_none(
            'authorization', options.get('authorization')
        )
        self.timeout: float | None = _check_timeout(
            'timeout', options.get('timeout', DEFAULT_TIMEOUT), True
        )
        on_connect = options.get('on_connect')
        if on_connect is not None and not callable(on_connect):
            raise TypeError(f'on_connect: not callable: {on_connect!r}')
        self.on_connect: Callable[[Connection], object] | None = on_connect
        max_pending = options.get('max_pending', DEFAULT_MAX_PENDING)
        if type(max_pending) is not int:
            raise TypeError(_TYPE_ERROR.format('max_pending', int, type(max_pending), max_pending))
        if not (1 <= max_pending <= MAX_MAX_PENDING):
            raise ValueError(f'need 1 <= max_pending <= {MAX_MAX_PENDING}; got {max_pending}')
        self.max_pending: int = max_pending
        self.expect100_timeout: float = _check_timeout(
            'expect100_timeout', options.get('expect100_timeout', DEFAULT_EXPECT100_TIMEOUT), False
        )
        self.connect_timeout: float | None = _check_timeout(
            'connect_timeout', options.get('connect_timeout', self.timeout), True
        )
        self.response_timeout: float | None = _check_timeout(
            'response_timeout', options.get('response_timeout'), True
        )
        pool_size = options.get('pool_size', DEFAULT_POOL_SIZE)
        if type(pool_size) is not int:
            raise TypeError(_TYPE_ERROR.format('pool_size', int, type(pool_size), pool_size))
        if not (1 <= pool_size <= MAX_POOL_SIZE):
            raise ValueError(f'need 1 <= pool_size <= {MAX_POOL_SIZE}; got {pool_size}')
        self.pool_size: int = pool_size
        self.pool_timeout: float = _check_timeout(
            'pool_timeout', options.get('pool_timeout', DEFAULT_POOL_TIMEOUT), False
        )
        self.pool_idle_timeout: float = _check_timeout(
            'pool_idle_timeout', options.get('pool_idle_timeout', DEFAULT_POOL_IDLE_TIMEOUT), False
        )
        self._pool: _Pool | None = None
        self._pool_lock = threading.Lock()
        self._headers: dict[str, str] = {}
        if self.authorization:
            self._headers['authorization'] = self.authorization
        if self.host:
            self._headers['host'] = self.host
        self._rebuild_base_headers()

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.address!r})'

    def _rebuild_base_headers(self) -> None:
        items = sorted(self._headers.items())
        self.base_headers: tuple[tuple[str, str], ...] | None = tuple(items) if items else None

    def set_base_header(self, name: str, value: str | None) -> None:
        """Set (or, with ``None``, remove) a header sent with every request.

        >>> client = Client('/tmp/my.socket')
        >>> client.set_base_header('x-token', 'secret')
        >>> client.base_headers
        (('host', 'localhost'), ('x-token', 'secret'))
        >>> client.set_base_header('x-token', None)
        >>> client.base_headers
        (('host', 'localhost'),)
        """
        if type(name) is not str:
            raise TypeError(_TYPE_ERROR.format('name', str, type(name), name))
        if not name or name.lower() != name or not name.isascii() or not name.isprintable():
            raise ValueError(f'bad base header name: {name!r}')
        if value is None:
            self._headers.pop(name, None)
        elif type(value) is str:
            self._headers[name] = value
        else:
            raise TypeError(_TYPE_ERROR.format('value', (str, type(None)), type(value), value))
        self._rebuild_base_headers()

    def create_socket(self) -> socket.socket:
        """A new connected socket (AF_UNIX sockets get ``SO_PASSCRED``).

        Connecting (and for ``SSLClient`` the TLS handshake) may take
        ``connect_timeout`` seconds, a ``ConnectionTimedOut`` after that;
        the socket then has ``timeout`` for every operation.
        """
        address = self.address
        family = address_family(address)
        try:
            if family == socket.AF_INET and isinstance(address, tuple):
                # (host, port): the host may be a name, or an IPv6 literal
                sock = socket.create_connection(address, timeout=self.connect_timeout)
            else:
                sock = socket.socket(family, socket.SOCK_STREAM)
                try:
                    if family == socket.AF_UNIX:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
                    sock.settimeout(self.connect_timeout)
                    sock.connect(address)
                except BaseException:
                    sock.close()
                    raise
        except TimeoutError as e:
            raise self._connect_timed_out('connecting') from e
        try:
            if sock.family != socket.AF_UNIX:
                # Preamble and small body go out in one send; a body sent after
                # its preamble (100-continue, large bodies) must not wait on
                # Nagle's algorithm plus the server's delayed ACK (40 ms each).
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock = self._secure(sock)
            sock.settimeout(self.timeout)
        except BaseException:
            sock.close()
            raise
        return sock

    def _secure(self, sock):
        # The TLS handshake of an SSLClient, within connect_timeout.
        return sock

    def _connect_timed_out(self, what):
        return ConnectionTimedOut(
            f'{what} to {self.address!r}: timed out after {self.connect_timeout} s'
            ' (connect_timeout)'
        )

    def connect(self) -> Connection:
        """A new ``Connection``; calls ``on_connect(conn)`` when set.

        The connection is yours alone (not the pool's): close it when done.
        """
        conn = Connection(
            self.create_socket(),
            self.base_headers,
            max_pending=self.max_pending,
            expect100_timeout=self.expect100_timeout,
            response_timeout=self.response_timeout,
        )
        if self.on_connect is not None:
            try:
                accepted = self.on_connect(conn)
            except BaseException:
                conn.close()
                raise
            if accepted is not True:
                conn.close()
                raise ValueError('on_connect() did not return True')
        return conn

    # ------------------------------------------------------------------
    # Requests on the pool's connections

    def _open_pool(self) -> _Pool:
        with self._pool_lock:
            if self._pool is None:
                self._pool = _Pool(self)
                _POOLS.add(self)
            return self._pool

    def request(
        self,
        method: str,
        uri: str,
        headers: dict[str, Any] | None = None,
        body: object = None,
        *,
        expect100: bool = False,
        json: object = _NO_JSON,
    ) -> ClientResponse:
        """Send one request on a connection of this client's pool; returns a ``Response``.

        Safe to call from any number of threads at once.  The arguments are
        those of ``Connection.request()``, and the caller's *headers* dict
        is left as it was.  The pool keeps at most ``pool_size``
        connections (default 10); a request that finds them all lent out
        waits for one, ``pool_timeout`` seconds at most (default 10), then
        raises ``PoolTimeout``.  A connection idle for ``pool_idle_timeout``
        seconds (default 10) is closed.

        **A connection is lent out until the body of its response is read**
        to its end, or ``response.close()`` is called (``with response:``
        does it), or the response is dropped; a response without a body
        gives it back at once.  Then it carries the next request, unless the
        server said it closes.

        A kept-alive connection the server closed meanwhile (its idle
        timeout) is retried for you, once, on a new connection, when not a
        byte of the response had arrived, the method is idempotent (``GET``,
        ``HEAD``, ``PUT``, ``DELETE``, ``OPTIONS``, ``TRACE``) and the body
        can be sent again (none, ``bytes``-like, *json*, or a regular file).
        A ``POST`` or ``PATCH`` is never sent twice.  ``pool_info()`` counts
        what the pool did.
        """
        if json is not _NO_JSON:
            (headers, body) = _json_args(headers, body, json)
        elif headers is not None:
            if type(headers) is not dict:
                raise TypeError(_TYPE_ERROR.format('headers', dict, type(headers), headers))
            headers = headers.copy()
        else:
            headers = {}
        pool = self._pool or self._open_pool()
        return pool.request(method, uri, headers, body, expect100)

    def pool_info(self) -> dict[str, int]:
        """What the pool holds and has done, for monitoring and tests.

        ``size``, ``open`` (idle, lent out, or being opened), ``idle``,
        ``lent``, ``waiting`` (threads waiting for a connection), and the
        counts since the pool opened: ``connects``, ``reuses``,
        ``retries``, ``expired`` (closed idle), ``stale`` (found closed by
        the server before a ``POST``), ``dropped`` (closed after an error,
        a server's ``connection: close``, or an unread body).
        """
        pool = self._pool
        if pool is None:
            pool = _Pool(self)  # nothing yet: all zero
        return pool.info()

    def close(self) -> None:
        """Close the pool's idle connections; those lent out close when given back.

        The client stays usable: a later request opens a new pool.
        """
        with self._pool_lock:
            pool = self._pool
            self._pool = None
        if pool is not None:
            pool.close()

    def __enter__(self: _Cl) -> _Cl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# The clients with a pool: a child process made by fork() starts without
# their connections, which belong to the parent (the same sockets: two
# processes reading one connection would take each other's responses).
_POOLS: weakref.WeakSet[Client] = weakref.WeakSet()


def _forget_pools_after_fork():
    for client in list(_POOLS):
        client._pool = None
        client._pool_lock = threading.Lock()
    _POOLS.clear()


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_forget_pools_after_fork)


def _check_sslctx(sslctx: ssl.SSLContext) -> ssl.SSLContext:
    import ssl

    if not isinstance(sslctx, ssl.SSLContext):
        raise TypeError('sslctx must be an ssl.SSLContext')
    if sslctx.protocol != ssl.PROTOCOL_TLS_CLIENT:
        raise ValueError('sslctx.protocol must be ssl.PROTOCOL_TLS_CLIENT')
    minimum = sslctx.minimum_version
    if minimum == ssl.TLSVersion.MINIMUM_SUPPORTED or minimum < ssl.TLSVersion.TLSv1_2:
        raise ValueError('sslctx.minimum_version must be >= ssl.TLSVersion.TLSv1_2')
    if not (sslctx.options & ssl.OP_NO_COMPRESSION):
        raise ValueError('sslctx.options must include ssl.OP_NO_COMPRESSION')
    if sslctx.verify_mode != ssl.CERT_REQUIRED:
        raise ValueError('sslctx.verify_mode must be ssl.CERT_REQUIRED')
    return sslctx


_SSLCONFIG_KEYS = ('ca_file', 'ca_path', 'cert_file', 'check_hostname', 'key_file')


def build_client_sslctx(sslconfig: dict[str, Any]) -> ssl.SSLContext:
    """An ``ssl.SSLContext`` for ``SSLClient`` from an *sslconfig* ``dict``.

    Keys: ``ca_file`` and/or ``ca_path`` (the CAs that sign servers; neither
    means the system CAs, and then ``check_hostname`` must stay ``True``),
    ``check_hostname`` (a ``bool``, default ``True``), ``cert_file`` and
    ``key_file`` (a client certificate).  ``{}`` behaves like a browser.
    TLS 1.2 is the minimum, TLS 1.3 allowed; TLS 1.2 ciphers are ECDHE with
    AEAD; compression is off; the server certificate is always verified.

    >>> ctx = build_client_sslctx({})
    >>> (ctx.check_hostname, ctx.minimum_version.name)
    (True, 'TLSv1_2')
    """
    import ssl

    if type(sslconfig) is not dict:
        raise TypeError(_TYPE_ERROR.format('sslconfig', dict, type(sslconfig), sslconfig))
    unknown = sorted(set(sslconfig) - set(_SSLCONFIG_KEYS))
    if unknown:
        raise ValueError(f'unsupported sslconfig keys: {", ".join(map(repr, unknown))}')
    check_hostname = sslconfig.get('check_hostname', True)
    if type(check_hostname) is not bool:
        raise TypeError(
            _TYPE_ERROR.format(
                "sslconfig['check_hostname']", bool, type(check_hostname), check_hostname
            )
        )
    if 'key_file' in sslconfig and 'cert_file' not in sslconfig:
        raise ValueError("sslconfig['key_file'] provided without sslconfig['cert_file']")
    paths = {
        key: _check_abspath(f'sslconfig[{key!r}]', sslconfig[key])
        for key in ('ca_file', 'ca_path', 'cert_file', 'key_file')
        if key in sslconfig
    }
    ca_file = paths.get('ca_file')
    ca_path = paths.get('ca_path')
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers('ECDHE+AESGCM:ECDHE+CHACHA20')
    ctx.options |= ssl.OP_NO_COMPRESSION
    ctx.verify_mode = ssl.CERT_REQUIRED
    if ca_file or ca_path:
        ctx.load_verify_locations(cafile=ca_file, capath=ca_path)
    else:
        if not check_hostname:
            raise ValueError('check_hostname must be True when using default verify paths')
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    ctx.check_hostname = check_hostname
    if 'cert_file' in sslconfig:
        ctx.load_cert_chain(paths['cert_file'], paths.get('key_file'))
    return ctx


class SSLClient(Client):
    """A ``Client`` over TLS: ``SSLClient(sslctx, address, **options)``.

    *sslctx* is an ``ssl.SSLContext`` (``PROTOCOL_TLS_CLIENT``, minimum TLS
    1.2, ``OP_NO_COMPRESSION``, ``CERT_REQUIRED``) or an *sslconfig* ``dict``
    for ``build_client_sslctx()``.  Extra option ``ssl_host``: the name sent
    for SNI and checked against the certificate (default: the host part of
    a tuple address, ``None`` for AF_UNIX).  A server that closes without a
    TLS close_notify raises ``ConnectionClosed``, never a short read.
    """

    _default_port = 443
    _allowed_options = Client._allowed_options + ('ssl_host',)

    def __init__(
        self,
        sslctx: ssl.SSLContext | dict[str, Any],
        address: tuple | str | bytes,
        **options: Any,
    ) -> None:
        if isinstance(sslctx, dict):
            sslctx = build_client_sslctx(sslctx)
        self.sslctx = _check_sslctx(sslctx)
        address = _address(address, True)
        super().__init__(address, **options)
        default = address[0] if isinstance(address, tuple) else None
        self.ssl_host: str | None = _check_str_or_none(
            'ssl_host', options.get('ssl_host', default)
        )

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.sslctx!r}, {self.address!r})'

    def create_socket(self) -> ssl.SSLSocket:
        return super().create_socket()  # type: ignore[return-value]  # see _secure()

    def _secure(self, sock):
        try:
            return self.sslctx.wrap_socket(
                sock, server_hostname=self.ssl_host, suppress_ragged_eofs=False
            )
        except TimeoutError as e:
            raise self._connect_timed_out('TLS handshake') from e


# --------------------------------------------------------------------------
# Connection


class Connection(_Shortcuts):
    """One HTTP/1.1 connection: ``Connection(sock, base_headers)``.

    Usually made by ``Client.connect()``.  *sock* is anything with
    ``recv_into``, ``send`` and ``close``; *base_headers* is ``None`` or a
    ``tuple`` of ``(name, value)`` pairs added to every request (they win
    over the caller's headers).  Keyword options ``max_pending``,
    ``expect100_timeout`` and ``response_timeout`` come from the ``Client``.

    Every failure that ends the connection early is a ``ConnectionClosed``
    (a ``ConnectionError``) whose ``unanswered`` lists the ``(method, uri)``
    of requests sent but never answered, and whose ``response_started``
    says whether any of the response had arrived.  A response body that
    ends early raises too: partial data is never returned as complete.
    """

    api = api
    bodies = api  # deprecated alias kept from Degu

    def __init__(
        self,
        sock: _Socket,
        base_headers: tuple[tuple[str, str], ...] | None,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        expect100_timeout: float = DEFAULT_EXPECT100_TIMEOUT,
        response_timeout: float | None = None,
    ) -> None:
        if base_headers is not None and type(base_headers) is not tuple:
            raise TypeError(
                _TYPE_ERROR.format('base_headers', tuple, type(base_headers), base_headers)
            )
        if type(max_pending) is not int or not (1 <= max_pending <= MAX_MAX_PENDING):
            raise ValueError(f'need 1 <= max_pending <= {MAX_MAX_PENDING}; got {max_pending!r}')
        self.expect100_timeout: float = _check_timeout(
            'expect100_timeout', expect100_timeout, False
        )
        for name in ('recv_into', 'send', 'close'):
            if not callable(getattr(sock, name)):
                raise TypeError(f'sock.{name}() is not callable')
        self.response_timeout: float | None = _check_timeout(
            'response_timeout', response_timeout, True
        )
        if response_timeout is None:
            self._transport = _Transport(sock)
        else:
            self._transport = _DeadlineTransport(sock)
            self._transport.deadline = None
            self._transport.response_timeout = response_timeout
        self._transport.lease = None
        self.sock = sock
        self.base_headers = base_headers
        self.max_pending = max_pending
        # (method, uri, expect100) oldest first
        self._pending: deque[tuple[str, str, bool]] = deque()
        # Guards _pending, and _state changes, between the sending and the reading thread.
        self._queue_lock = threading.Lock()
        self._read_lock = threading.Lock()  # one reader of the socket at a time
        self._state = _OPEN
        self._reason: str | None = None  # why it is CLOSING (kept once CLOSED), for messages
        self._response_body: Body | ChunkedBody | None = None  # body of the last response returned
        # The final response that came instead of 100 Continue, until read_response() returns it.
        self._early: tuple[Response, str, int] | None = None
        # The wait for 100 Continue of the last expect100 request ended after
        # an interim response: the response to that request had started.
        self._continued = False

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.sock!r})'

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------
    # State (the transition table is in the module docstring)

    @property
    def closed(self) -> bool:
        """True once nothing more can be sent or read on the connection.

        That is when it is closed, or closing (the server said it closes,
        the body ran until the close, an early response) and the current
        response body was consumed; not while *send-closed*, as a response
        may still be read.  Reading it has no side effects: the
        socket of a connection that is done is closed by the next call
        (which raises ``ConnectionClosed``), by ``close()``, or at once when
        nothing remains to be read (a failure, a response without a body).
        """
        state = self._state
        if state is _CLOSING:
            return self._body_done() or self._transport.closed
        # A response body that failed closed the socket itself.
        return state is _CLOSED_STATE or self._transport.closed

    @property
    def pending(self) -> tuple[tuple[str, str], ...]:
        """The ``(method, uri)`` of requests sent and not yet answered, oldest first."""
        with self._queue_lock:
            return tuple((m, u) for (m, u, _) in self._pending)

    def close(self) -> object:
        """Close the socket; later calls do nothing and return ``None``."""
        with self._queue_lock:
            self._state = _CLOSED_STATE  # from any state, for good
        return self._transport.close()  # what sock.close() returned, the first time

    def _move(self, state, reason=None):
        """OPEN -> SEND_CLOSED, or OPEN or SEND_CLOSED -> CLOSING (*reason* why).

        Under the queue lock, like ``close()``: the sending thread moves to
        SEND_CLOSED while the reading thread may move to CLOSING or close.
        Never out of CLOSED or CLOSING, and SEND_CLOSED only from OPEN.
        """
        with self._queue_lock:
            current = self._state
            if current is _OPEN or (current is _SEND_CLOSED and state is _CLOSING):
                self._state = state
                if reason is not None:
                    self._reason = reason

    def _unanswered(self):
        with self._queue_lock:
            return tuple((m, u) for (m, u, _) in self._pending)

    def _body_done(self):
        # body._state and, in request() and _read_response(), transport._closed:
        # the slots behind the properties, 2,400 instructions fewer per request
        # (four property calls; callgrind over benchmarks/hotpath.py).  The
        # body is always a Body or ChunkedBody (read_response_head()'s).
        body = self._response_body
        return body is None or body._state >= BODY_CONSUMED

    def _closed_error(self):
        if self._reason is not None:
            message = f'{_CLOSED}: {self._reason}'
        else:
            message = _CLOSED
        return ConnectionClosed(message, self._unanswered())

    def _check_open(self):
        """At the start of every call: make a due move to CLOSED; raise if CLOSED."""
        if self._state is not _OPEN or self._transport.closed:
            state = self._state
            if state is _CLOSED_STATE or self._transport.closed or (
                state is _CLOSING and self._body_done()
            ):
                self.close()  # CLOSING -> CLOSED: the body was consumed (or failed)
                raise self._closed_error()

    def _fail(self, exc):
        """Close after *exc*; returns the exception to raise, with ``unanswered`` set."""
        self.close()
        if isinstance(exc, ConnectionClosed):
            exc.unanswered = self._unanswered()
            return exc
        if isinstance(exc, ParseError) and exc.status == 505:
            return UnsupportedResponse(str(exc))
        if isinstance(exc, OSError) and not isinstance(exc, TimeoutError):
            # EBADF and friends: the socket was closed under us (another thread).
            return ConnectionClosed(f'{type(exc).__name__}: {exc}', self._unanswered())
        return exc

    def _raise(self, exc):
        """Close after *exc* and raise it, or what it means (its cause kept)."""
        new = self._fail(exc)
        try:
            if new is exc:
                raise exc
            raise new from exc
        finally:
            # The traceback holds this frame: without its exception, no
            # reference cycle keeps the caller's frames (and connections)
            # alive until the garbage collector runs.
            del exc, new

    # ------------------------------------------------------------------
    # Sending

    def send_request(
        self,
        method: str,
        uri: str,
        headers: dict[str, Any] | None = None,
        body: object = None,
        *,
        expect100: bool = False,
        json: object = _NO_JSON,
    ) -> None:
        """Send one request without reading its response (pipelining).

        Adds the base headers to *headers* (the caller's dict is changed)
        and the framing header *body* implies (``content-length: 0`` for a
        POST, PUT or PATCH without one, RFC 9110 section 8.6), then writes
        the whole request, each piece of an iterator body as it is produced.
        ``POST`` and ``PATCH`` are sent only when nothing is pending, and
        nothing is sent while one is pending; at most ``max_pending``
        requests may wait for responses.  With *expect100*, waits for
        ``100 Continue`` before sending *body* (see ``request()``).
        """
        self._check_open()
        state = self._state
        if state is not _OPEN:
            if state is _CLOSING:
                # The server said it will close: nothing more goes out.
                raise ConnectionClosed(
                    f'Connection is closing: {self._reason}', self._unanswered()
                )
            raise ConnectionClosed(f'{_CLOSED} for sending', self._unanswered())
        if json is not _NO_JSON:
            (headers, body) = _json_args(headers, body, json)
        self._send_request(method, uri, headers, body, expect100)

    def _send_request(self, method, uri, headers, body, expect100):
        # send_request() after its state checks (request() has made them).
        try:
            # The checks' common outcomes written out instead of two calls
            # (_check_method() and request_output()): 970 instructions fewer
            # per request (callgrind over benchmarks/hotpath.py).
            if type(method) is not str or method not in METHODS:
                _check_method(method)  # raises
            if headers is None:
                headers = {}
            elif type(headers) is not dict:
                raise TypeError(_TYPE_ERROR.format('headers', dict, type(headers), headers))
            else:
                # Names the renderer checked before are lower-case tokens: a
                # set lookup each (half the cost of a keys view compared with
                # the set, which is less than set.issuperset()'s copy).
                for name in headers:
                    if name not in _GOOD_NAMES:
                        headers = fold_names(headers)  # a copy if a name has capitals
                        break
            if type(body) is not bytes and body is not None and not is_body(body):
                body = _request_body(body)
            if self.base_headers:
                headers.update(self.base_headers)
            if not expect100 and body is not None:
                expect = headers.get('expect')
                expect100 = type(expect) is str and expect.lower() == '100-continue'
            if expect100:
                if body is None:
                    raise ValueError('expect100 requires a request body')
                _set_default(headers, 'expect', '100-continue')
            if body is None and method not in _CONTENT_METHODS:
                (kind, length) = (NO_BODY, None)
            else:
                (kind, length) = request_output(method, body)
            if 'content-length' in headers or 'transfer-encoding' in headers:
                # The caller's framing field must agree with the body.
                check_framing_headers(headers, LENGTH if kind == NO_BODY else kind, length or 0)
            elif kind == LENGTH:
                headers['content-length'] = length
            elif kind == CHUNKED:
                headers['transfer-encoding'] = 'chunked'
            preamble = render_request(method, uri, headers)
        except BaseException as e:
            self.close()
            if isinstance(e, ValueError) and str(e).startswith('bad uri:'):
                raise ValueError(
                    f'{e}: a request-target must be percent-encoded'
                    ' (degu.util.build_target() does it)'
                ) from None
            raise
        if expect100:
            self._send_expect100(method, uri, preamble, body, kind)
            return
        self._enqueue(method, uri, False)
        self._send(preamble, body, kind)

    def _enqueue(self, method, uri, expect100):
        with self._queue_lock:
            pending = self._pending
            if pending:
                if len(pending) >= self.max_pending:
                    raise ValueError(f'max_pending reached: {self.max_pending}')
                # RFC 9112 section 9.3.2: only idempotent requests are pipelined.
                if method in _NOT_PIPELINED or pending[-1][0] in _NOT_PIPELINED:
                    name = method if method in _NOT_PIPELINED else pending[-1][0]
                    raise ValueError(f'cannot pipeline {name!r}')
                if expect100 or pending[-1][2]:
                    raise ValueError('cannot pipeline a request with expect100')
            pending.append((method, uri, expect100))

    def _send(self, preamble, body, kind=LENGTH):
        try:
            write_message(self._transport, preamble, body, kind)
        except BaseException as e:
            if isinstance(e, ConnectionClosed) and not isinstance(e, ConnectionTimedOut):
                if not self._transport.closed:
                    # OPEN -> SEND_CLOSED: the peer closed or reset while we
                    # sent.  It may have answered already (413, 401...), so
                    # keep the read side.
                    self._move(_SEND_CLOSED)
                    e.unanswered = self._unanswered()
                    raise
            self._raise(e)

    def _send_expect100(self, method, uri, preamble, body, kind):
        # The read lock is taken before the request is queued, so a reading
        # thread cannot start on this response while we wait for 100.
        with self._read_lock:
            self._enqueue(method, uri, True)
            self._send(preamble, None)
            try:
                early = self._read_final(method, True)
            except BaseException as e:
                self._raise(e)
            if early is not None:
                # A final status instead of 100: the body is not sent, and
                # the stream position after it is unknowable (RFC 9110 10.1.1).
                # read_response() returns it and moves to CLOSING.
                self._early = early
                return
            self._send(b'', body, kind)

    # ------------------------------------------------------------------
    # Reading

    def _read_final(self, method, expect100=False):
        """Read response heads up to the final one; returns its ``(response, version, kind)``.

        RFC 9110 section 15.2: a client must be able to parse and skip any
        1xx response it did not ask for (103 Early Hints, 102 Processing),
        with or without ``expect: 100-continue``; at most ``MAX_INTERIM``,
        and ``101 Switching Protocols`` is ``UnsupportedResponse``.

        With *expect100* (the body waits for ``100 Continue``) returns
        ``None`` when ``100 Continue`` arrives, or when nothing arrives
        within ``expect100_timeout`` seconds (RFC 9110 section 10.1.1): the
        body is to be sent.  A ``ConnectionClosed`` gets ``response_started``:
        False only when not a byte of a response to this request arrived.
        """
        transport = self._transport
        skipped = 0
        while True:
            if (
                expect100
                and not transport.buffered
                and not _wait_readable(self.sock, self.expect100_timeout)
            ):
                self._continued = skipped > 0
                return None
            try:
                head = read_response_head(transport, method)
            except ConnectionClosed as e:
                # Bytes of a truncated preamble are still buffered; interim
                # responses may have come before (while waiting for 100).
                e.response_started = (
                    skipped > 0
                    or transport.buffered > 0
                    or (not expect100 and self._pending[0][2] and self._continued)
                )
                raise
            status = head[0].status
            if status >= 200:
                return head
            if status == 101:
                raise UnsupportedResponse('101 Switching Protocols is not supported')
            if status == 100 and expect100:
                self._continued = True
                return None
            skipped += 1
            if skipped > MAX_INTERIM:
                raise ValueError(f'more than {MAX_INTERIM} interim responses')

    def read_response(self) -> ClientResponse:
        """Read the response to the oldest pending request; returns a ``Response``.

        The body of the previous response must have been consumed first.
        Interim (1xx) responses are read and skipped; the one returned is
        final.  A response without a framing field (RFC 9112 section 6.3)
        has a body that runs until the server closes, and the connection
        is closed after it.
        """
        with self._read_lock:
            if self.response_timeout is not None:
                self._start_deadline()
            return self._read_response()

    def _start_deadline(self):
        self._transport.deadline = time.monotonic() + self.response_timeout

    def _read_response(self):
        if self._state is not _OPEN or self._transport._closed:  # see _body_done()
            self._check_open()
        # One reader at a time (the read lock): the oldest entry stays put
        # while the sender appends, and deque operations are atomic.
        if not self._pending:
            raise ValueError('no pending requests')
        (method, uri, _) = self._pending[0]
        if not self._body_done():
            self.close()
            raise ValueError(f'response body not consumed: {self._response_body!r}')
        return self._read_next(method, uri)

    def _read_next(self, method, uri):
        # _read_response() after its checks: request() has just made them
        # and sent (1,350 instructions fewer per request, callgrind over
        # benchmarks/hotpath.py).
        early = self._early
        if early is None:
            try:
                head = self._read_final(method)
            except BaseException as e:
                self._raise(e)
        else:
            self._early = None
            head = early
        self._pending.popleft()
        (response, version, kind) = head
        if response[0] < 400:
            response.__class__ = ClientResponse
        else:
            response = _new_response(_ErrorResponse, response)
            response._request = (method, uri)
        body = response.body
        headers = response.headers
        if kind == LENGTH and headers['content-length'] == 0:
            # Reading an empty body is optional: nothing of it is on the wire.
            body = None
        self._response_body = body
        reason = None
        if early is not None:
            reason = 'the server answered before 100 Continue'
        elif 'connection' in headers or version != 'HTTP/1.1' or kind == CLOSE:
            reason = response_close_reason(version, headers, kind)
        if reason is None and self._state is _SEND_CLOSED:
            reason = 'the server closed it during the upload'
        if reason is not None:
            # OPEN or SEND_CLOSED -> CLOSING, and on to CLOSED at once
            # when there is no body to read.
            self._move(_CLOSING, reason)
            if body is None:
                self.close()
        return response

    def request(
        self,
        method: str,
        uri: str,
        headers: dict[str, Any] | None = None,
        body: object = None,
        *,
        expect100: bool = False,
        json: object = _NO_JSON,
    ) -> ClientResponse:
        """Send one request and read its response; returns a ``Response``.

        Allowed only when nothing is pending.  The caller must consume a
        non-``None`` response body before the next request.  A 4xx or 5xx
        status is not an exception.  If the upload fails because the server
        closed or reset the connection, a response it sent first (413, 401
        ...) is returned; otherwise the original ``ConnectionClosed`` is
        raised and the connection is closed.

        With *expect100* (a body is required) the preamble goes out with
        ``expect: 100-continue``; the body follows once ``100 Continue``
        arrives, or after ``expect100_timeout`` seconds of silence.  A final
        status that arrives instead is returned, the body is not sent, and
        the connection closes once that response's body is consumed.

        *headers* may be left out (no fields beyond the base headers).
        Names are sent in lower case: a dict with a name in capitals is
        copied with its names folded (two names that fold to one are a
        ``ValueError``); a lower-case dict gets the base headers and the
        framing field added, as before.  *body* is ``bytes``, a
        ``bytearray`` or ``memoryview`` (up to 16 MiB, as ``bytes``), a
        binary file (a regular file is sent from its position with its size,
        a pipe chunked; the file is not closed), a body object or ``None``.
        With *json*, the body is that object as JSON (UTF-8) and the
        ``content-type`` is ``application/json`` unless *headers* has one.
        """
        if json is not _NO_JSON:
            (headers, body) = _json_args(headers, body, json)
        if self._state is not _OPEN or self._transport._closed:  # see _body_done()
            self._check_open()
        if self.response_timeout is not None:
            self._start_deadline()
        n = len(self._pending)
        if n:
            raise ValueError(f'cannot call request() with {n} pending response{"s" * (n != 1)}')
        previous = self._response_body  # _body_done() written out: 500 instructions fewer
        if previous is not None and previous._state < BODY_CONSUMED:
            self.close()
            raise ValueError(f'response body not consumed: {self._response_body!r}')
        try:
            if self._state is not _OPEN:
                self.send_request(method, uri, headers, body, expect100=expect100)  # raises
            self._send_request(method, uri, headers, body, expect100)
        except ConnectionClosed as e:
            if self._state is not _SEND_CLOSED:
                raise
            try:
                return self.read_response()
            except ConnectionClosed as read_error:
                # SEND_CLOSED -> CLOSED: no early response either.
                self.close()
                e.response_started = read_error.response_started
                raise e from e.__cause__
        with self._read_lock:
            return self._read_next(method, uri)

    def discard(self) -> int:
        """Read and drop the rest of the current response body; returns the bytes dropped."""
        body = self._response_body
        if body is None or body.state == BODY_CONSUMED:
            return 0
        total = 0
        while True:
            data = body.read(IO_SIZE)
            if not data:
                break
            total += len(data)
        return total

    # ------------------------------------------------------------------
    # Shortcuts: get, head, delete, put and post come from _Shortcuts

    def get_range(
        self, uri: str, headers: dict[str, Any], start: int, stop: int
    ) -> ClientResponse:
        """GET bytes ``start`` up to (not including) ``stop``: sets a ``range`` header."""
        if type(headers) is not dict:
            raise TypeError(_TYPE_ERROR.format('headers', dict, type(headers), headers))
        _set_default(headers, 'range', Range(start, stop))
        return self.request('GET', uri, headers, None)


# --------------------------------------------------------------------------
# Errors worth a retry


def _temp_errnos():
    import errno

    names = (
        'EHOSTDOWN EHOSTUNREACH ENETDOWN ENETRESET ENETUNREACH ENOLINK ENONET ENOTCONN '
        'ENXIO EPIPE EREMCHG ESHUTDOWN ETIMEDOUT EAGAIN'
    ).split()
    return frozenset(getattr(errno, n) for n in names if hasattr(errno, n))


_TEMP_ERRNOS = _temp_errnos()


def is_temp_network_error(exc: BaseException) -> bool:
    """True if *exc* is a network error that may go away: worth a reconnect and retry.

    >>> is_temp_network_error(ConnectionClosed('gone'))
    True
    >>> is_temp_network_error(ValueError('bad chunk_size'))
    False
    """
    if isinstance(exc, (ConnectionError, TimeoutError, InterruptedError)):
        return True
    ssl = sys.modules.get('ssl')  # loaded already if this could be a TLS error
    if ssl is not None and isinstance(
        exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)
    ):
        return True
    if isinstance(exc, socket.gaierror):
        return exc.errno == socket.EAI_AGAIN
    if isinstance(exc, OSError):
        return exc.errno in _TEMP_ERRNOS
    return False
