"""The degu server: ``Server``, ``SSLServer`` and the RGI request loop.

A blocking HTTP/1.1 server, a thread per connection while it is served,
that calls an RGI app,
``app(session, request, api) -> (status, reason, headers, body)``, once per
request.  It binds in the constructor, serves in ``serve_forever()`` (in any
thread) and stops gracefully in ``shutdown()``.  The rules it follows, with
their RFC sections, are in doc/decisions.rst.

Connection life cycle::

    accept --(over max_connections)--> 503 + retry-after (TLS: nothing), lingering close
       |
    [the accept loop's selector: the TLS handshake, then the first request
     preamble; no thread yet; too slow: closed]
       |
    thread: app.on_connect() -> request loop -> close
                                                      |
        idle --first byte--> preamble --> [body] --> app --> response --+
         ^                                                              |
         +------------- keep-alive -------------------------------------+
         |
    [idle for PARK_AFTER -> parked in the accept loop, no thread; its next
     preamble -> a new thread, same session.  A request whose body is not
     at hand (BODY_WAIT) is parked too, until it is.]

Every response says where it ends (content-length, chunked, or a close to an
HTTP/1.0 peer), and the server renders its date, framing and connection
lines itself, never touching the app's headers dict.  An iterator body goes
out as it is produced.

Errors: a malformed request gets a minimal 400/413/414/431/501/505 with
``content-length: 0`` and ``connection: close``; an app that fails before the
response started gets a 500; a failure after that just closes.  Nothing from
the request and no traceback ever goes on the wire; tracebacks go to the
``degu.server`` logger.
"""

from __future__ import annotations

import logging
import selectors
import socket
import struct
import threading
import time

from ._accesslog import (
    CLIENT_GONE,
    CLOSED,
    CUT_OFF,
    KEPT,
    AccessFormatter,
    CountingTransport,
    access_log,
    log_access,
)
from ._body import (
    BODY_CONSUMED,
    DEFAULT_MAX_REQUESTS,
    MAX_SESSION_REQUESTS,
    drain_body,
    release_body,
)
from ._common import (
    _DAYS,
    _MONTHS,
    _callable_name,
    _check_abspath,
    _remove_socket_file,
    _remove_stale_socket,
)
from ._forwarded import (
    MAX_PROXY_V2_LEN,
    TrustedProxies,
    forwarded_origin,
    parse_proxy_header,
    proxy_header_end,
)
from ._framing import (
    CLOSE,
    LENGTH,
    NO_BODY,
    check_framing_headers,
    framing_line,
    request_close_reason,
    response_output,
)
from ._io import CONTINUE, read_request, write_message
from ._parse import _TYPE_ERROR, _TYPE_ERROR2, chunk_end, response_head
from ._transport import START_BUF_LEN, Transport, receive_nowait
from .base import (
    BUF_LEN,
    MAX_DRAIN_LEN,
    MAX_HEADER_COUNT,
    MAX_PREAMBLE_LEN,
    ConnectionClosed,
    ConnectionTimedOut,
    EmptyPreambleError,
    ParseError,
    Request,
    Session,
    address_family,
    api,
    parse_tokens,
    render_response,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (doc/decisions.rst)
if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable
    from typing import Any, TypeVar

    from ._types import App

    _S = TypeVar('_S', bound='Server')

__all__ = ('Server', 'SSLServer', 'build_server_sslctx', 'Session', 'Request', 'AccessFormatter')

log = logging.getLogger('degu.server')
# access_log ('degu.access'): one line per response at INFO, in the Combined
# Log Format (degu._accesslog); silent unless the embedding program enables
# it, as ``python3 -m degu`` does.  The request loop asks _access_on(_INFO),
# the logger's method looked up once (logging.getLogger() returns the same
# object for good): 510 instructions fewer per request than looking up
# access_log.isEnabledFor and logging.INFO each time (callgrind over
# benchmarks/hotpath.py).
_access_on = access_log.isEnabledFor
_INFO = logging.INFO

_NUMBER = (int, float)

# name -> (default, accepted types, minimum, maximum); None: no limit
_OPTIONS = {
    'max_connections': (50, (int,), 1, 100_000),
    'max_requests': (DEFAULT_MAX_REQUESTS, (int,), 1, MAX_SESSION_REQUESTS),
    'timeout': (30, _NUMBER, 0, None),
    'idle_timeout': (15, _NUMBER, 0, None),
    'max_header_bytes': (MAX_PREAMBLE_LEN, (int,), 1024, 1024 * 1024),
    'max_header_count': (MAX_HEADER_COUNT, (int,), 1, 10_000),
    'max_body': (None, (int, type(None)), 0, None),
    'transfer_timeout': (20, _NUMBER, 0, None),
    'min_rate': (500, (int,), 1, None),
}
# Options that are not numbers (checked by _check_proxy_options(); doc/degu.server.rst,
# 'Behind a proxy'): name -> default
_PROXY_OPTIONS = {
    'forwarded_allow_ips': None,
    'proxy_protocol': False,
    'root_path': '',
}

LISTEN_BACKLOG = 128  # pending connections the kernel queues for accept()
LINGER_TIME = 2.0  # seconds: how long a closing connection drains what the peer still sends
LINGER_BYTES = 256 * 1024  # 256 KiB: and how much of it, at most
MAX_LINGERING = 1024  # rejected (503) sockets drained by the accept loop at once
# When accept() fails (EMFILE, ENFILE, ENOBUFS...), the listening socket stays
# readable: retrying at once spins at full CPU and logs a line per try.  The
# accept loop stops watching it for ACCEPT_PAUSE_MIN, doubled after each
# failure in a row up to ACCEPT_PAUSE_MAX (25, 50, 100... 800 ms, then 1 s:
# 7 tries in the first 2 s, then one a second), and starts again at
# ACCEPT_PAUSE_MIN after an accept() that works.  25 ms is short enough that a
# passing shortage is hardly noticed; 1 s bounds how long a freed descriptor
# waits unused.  Everything else (lingering sockets, shutdown) goes on.
ACCEPT_PAUSE_MIN = 0.025  # seconds
ACCEPT_PAUSE_MAX = 1.0  # seconds
# After shutdown(timeout) cut off the busy connections, their threads get one
# shared SHUTDOWN_GRACE to end (a thread sending its response fails at once);
# a thread still in the app after it is left running, a daemon thread.  So
# shutdown(timeout) and serve_forever() return within timeout + 0.5 s.
SHUTDOWN_GRACE = 0.5  # seconds
# Connections accepted but without a whole request yet get this much of the
# shutdown timeout to send it; then it is served (see _stop_accepting()).
SHUTDOWN_PREREAD = 1.0  # seconds
# A new connection waits in the accept loop's selector (its TLS handshake too), costing no
# thread, until its first request preamble is complete (or over the limit):
# a client dribbling a preamble a byte at a time (slowloris) holds a socket
# and a small buffer, never one of the max_connections threads.  At most
# MAX_PREREADING such connections wait at once (more get 503), and their
# first-byte and whole-preamble deadlines are checked every PREREAD_SWEEP s.
MAX_PREREADING = 10_000
PREREAD_SWEEP = 0.25  # seconds
# A kept-alive connection waits PARK_AFTER seconds for its next
# request in its thread (a client making requests one after another sends
# its next one sooner: no hand-off); then the thread ends and the connection
# is parked in the accept loop's selector until a preamble is complete, for
# the rest of idle_timeout.  The wait costs nothing more than before: it is
# the first-byte wait the transport always had, shorter.  A client that
# pauses longer pays a hand-off on its next request (a new thread: about
# 0.5 ms), small beside its pause; a second instead would let clients that
# make one request each and stay connected hold every thread for a second
# (50 of them a second at the default max_connections, the rest 503).
PARK_AFTER = 0.1  # seconds
# When three quarters of max_connections have a thread, a thread waits only
# CROWDED_WAIT for its connection's next request before parking it: a burst
# of clients that each make a request and stay connected would otherwise
# hold every thread for PARK_AFTER, and newcomers would get 503.  (Not 0: a
# receive timeout of 0 means none at all.)
CROWDED_WAIT = 0.001  # seconds
# At most MAX_PARKED connections are parked at once; past that an idle
# connection closes (no reply, as at idle_timeout) and a request whose body
# is on its way is served in its thread.
MAX_PARKED = 10_000
# The app gets a request once its body is at hand: all of it, or its first
# BODY_AT_HAND bytes, or for a chunked body its first whole chunk (an event
# stream's first event).  Its thread waits BODY_WAIT seconds for that (the rest of a body
# sent in pieces comes within a round trip); then the connection is parked
# with its request until the bytes are there, so that a body trickled by a
# slow peer holds no thread.  A connection's first request does not wait:
# a burst of new connections with slow bodies would take every thread for
# BODY_WAIT, and make everyone else wait or get 503.  The transfer deadline (transfer_timeout,
# min_rate) bounds the wait in the accept loop too, and ends it with 408.  A
# request with "expect: 100-continue" goes to the app at once: its client
# waits for the app's decision before it sends the body.
BODY_WAIT = 0.05  # seconds
BODY_AT_HAND = START_BUF_LEN  # 8 KiB: what a new connection's read buffer holds


def _listen(address: tuple | str | bytes, backlog: int = LISTEN_BACKLOG) -> socket.socket:
    """A socket bound to *address* and listening (``Server`` and ``degu.workers``)."""
    family = address_family(address)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family != socket.AF_UNIX:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as e:
            # A socket file left by a server that was killed (it could not
            # remove it) blocks the path; if nobody listens on it, take it.
            if type(address) is not str or not _remove_stale_socket(address, e):
                raise
            sock.bind(address)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def _check_options(cls, options):
    unknown = sorted(set(options) - set(_OPTIONS) - set(_PROXY_OPTIONS))
    if unknown:
        raise TypeError(f'unsupported {cls.__name__}() **options: {", ".join(unknown)}')
    values = _check_proxy_options(options)
    for name, (default, types, low, high) in _OPTIONS.items():
        value = options.get(name, default)
        if type(value) not in types:
            raise TypeError(_TYPE_ERROR.format(name, types[0] if len(types) == 1 else types,
                                               type(value), value))
        if types is _NUMBER:
            if not value > low:
                raise ValueError(f'{name} must be > {low}; got {value!r}')
        elif value is None:
            pass
        elif high is None:
            if value < low:
                raise ValueError(f'need {name} >= {low}; got {value}')
        elif not (low <= value <= high):
            raise ValueError(f'need {low} <= {name} <= {high}; got {value}')
        values[name] = value
    return values


def _check_proxy_options(options):
    allow = options.get('forwarded_allow_ips')
    trusted = None if allow is None else TrustedProxies(allow)
    proxy_protocol = options.get('proxy_protocol', False)
    if type(proxy_protocol) is not bool:
        raise TypeError(_TYPE_ERROR.format('proxy_protocol', bool, type(proxy_protocol),
                                           proxy_protocol))
    root_path = options.get('root_path', '')
    if type(root_path) is not str:
        raise TypeError(_TYPE_ERROR.format('root_path', str, type(root_path), root_path))
    return {
        'forwarded_allow_ips': trusted or None,  # an empty list trusts nobody
        'proxy_protocol': proxy_protocol,
        'root_path': _root_components(root_path),
    }


def _root_components(root_path):
    """The path components of the *root_path* option: ``'/api/v1'`` -> ``['api', 'v1']``."""
    if root_path in ('', '/'):
        return []
    components = root_path.rstrip('/').split('/')
    if not root_path.startswith('/') or any(
        c in ('', '.', '..') or not _PCHARS.issuperset(c) for c in components[1:]
    ):
        raise ValueError(f"root_path: need '/' and path segments, as '/api'; got {root_path!r}")
    return components[1:]


# RFC 3986 section 3.3, pchar: what a path segment of root_path may hold
_PCHARS = frozenset(
    'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789' "-._~!$&'()*+,;=:@%"
)


# --------------------------------------------------------------------------
# The date header (RFC 9110 section 6.6.1): IMF-fixdate, computed at most once per second, and
# without strftime, whose day and month names follow the locale.  Computing it per request
# would cost 16,800 instructions more (26 % of the request loop, callgrind over
# benchmarks/hotpath.py; http_date() takes 1.2 µs).

_date_field = ''  # the date field line of the current second, CRLF first...
_date_until = 0.0  # ...and when it stops being current
_time = time.time


def http_date(when: float | None = None) -> str:
    """IMF-fixdate for *when* (seconds since the epoch, default now).

    >>> http_date(784111777)
    'Sun, 06 Nov 1994 08:49:37 GMT'
    """
    t = time.gmtime(when)
    return (
        f'{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} '
        f'{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT'
    )


def _date_line() -> str:
    """``'\\r\\ndate: '`` and the current IMF-fixdate.

    The whole line is kept, not the date alone: 170 instructions fewer per
    response than joining the two (callgrind over benchmarks/hotpath.py).
    """
    now = _time()
    return _date_field if now < _date_until else _new_date(now)


def _new_date(now: float) -> str:
    global _date_field, _date_until
    second = int(now)
    _date_field = '\r\ndate: ' + http_date(second)
    _date_until = second + 1.0
    return _date_field


def _error_preamble(status: int, reason: str, extra: str = '') -> bytes:
    return (
        f'HTTP/1.1 {status} {reason}\r\nconnection: close\r\ncontent-length: 0'
        f'{_date_line()}\r\n{extra}\r\n'
    ).encode('ascii')


def _service_unavailable() -> bytes:
    # RFC 9110 section 15.6.4; retry-after (section 10.2.3): in a second.
    return _error_preamble(503, 'Service Unavailable', 'retry-after: 1\r\n')


def _check_response(response, request):
    """The app's response as a 4-tuple, after the RGI checks (doc/rgi.rst)."""
    if type(response) is not tuple:
        if not isinstance(response, tuple):
            raise TypeError(_TYPE_ERROR2.format('response', tuple, type(response)))
        response = tuple(response)  # a client Response passed through
    if len(response) != 4:
        raise ValueError(f'response: need a 4-tuple; got a {len(response)}-tuple')
    (status, reason, headers, body) = response
    if type(status) is not int:
        raise TypeError(_TYPE_ERROR.format('status', int, type(status), status))
    if not (200 <= status <= 599):
        if 100 <= status <= 199:
            # RFC 9110 section 15.2: an interim response is never the last one.
            raise ValueError(f'need a final status (200 <= status <= 599); got {status}')
        raise ValueError(f'need 100 <= status <= 599; got {status}')
    if type(headers) is not dict:
        raise TypeError(_TYPE_ERROR.format('headers', dict, type(headers), headers))
    if body is None:
        if 'content-length' in headers and request._method != 'HEAD' and status != 304:
            length = headers['content-length']
            if str(length) != '0':
                raise ValueError(f'response body is None but content-length is {length!r}')
    elif request._method == 'HEAD':
        raise TypeError(f'request method is HEAD, but response body is not None: {type(body)!r}')
    elif status == 204 or status == 304:
        raise TypeError(f'response status is {status}, but response body is not None: '
                        f'{type(body)!r}')
    return response


# Fields of an app's response the server renders itself: the framing field
# (checked against the body) and the connection field (read for "close").
_OWN_FIELDS = ('content-length', 'transfer-encoding', 'connection')
_NO_CONTENT_OWN = ('connection',)  # HEAD and 304 keep the app's framing fields...
_NO_CONTENT_HTTP10 = ('connection', 'transfer-encoding')  # ...but RFC 9112 6.1: no
# transfer-encoding to a request that is not HTTP/1.1
_NO_CONTENT_204 = _OWN_FIELDS  # RFC 9110 8.6, RFC 9112 6.1: never on a 204


class _Connection:
    """The server's record of one live connection (for shutdown)."""

    __slots__ = ('sock', 'idle', 'thread')

    def __init__(self, sock):
        self.sock = sock
        self.idle = False  # True while waiting for the first byte of a request
        self.thread = None


class _Preread:
    """A new connection whose first request preamble the accept loop is reading."""

    __slots__ = ('sock', 'address', 'data', 'deadline', 'started', 'handshaking', 'proxied',
                 'client')

    def __init__(self, sock, address, deadline, handshaking, proxied=False, client=None):
        self.sock = sock
        self.address = address
        self.proxied = proxied  # the PROXY protocol header is still to be read
        self.client = client  # the address that header gave, if any
        self.data = bytearray()
        # The TLS handshake within timeout, idle_timeout for the first byte,
        # then timeout for the whole preamble.
        self.deadline = deadline
        self.started = False  # a byte arrived
        self.handshaking = handshaking  # TLS: the handshake is not done yet


_PARK = object()  # _read_request(): the connection is idle, park it
# The reasons OpenSSL gives for a handshake that began with an HTTP request.
_PLAIN_HTTP = ('HTTP_REQUEST', 'HTTPS_PROXY_REQUEST')


class _Parked:
    """A connection waiting in the accept loop: idle, or for its request's body."""

    __slots__ = ('conn', 'session', 'transport', 'failures', 'deadline', 'started',
                 'request', 'budget')

    def __init__(self, conn, session, transport, failures, deadline, request):
        self.conn = conn
        self.session = session
        self.transport = transport
        self.failures = failures
        # Idle: the rest of idle_timeout, then timeout once a byte came.  With a
        # request: the transfer budget, or timeout after the last byte if sooner.
        self.deadline = deadline
        self.started = False
        self.request = request  # None while idle
        self.budget = deadline  # with a request: the transfer deadline

    @property
    def sock(self):
        return self.transport.sock


class _AcceptPause:
    """The accept loop's back-off after failed ``accept()`` calls."""

    __slots__ = ('failures', 'delay', 'until', 'since')

    def __init__(self):
        self.failures = 0  # failed accept() calls in a row
        self.delay = ACCEPT_PAUSE_MIN  # the next pause
        self.until = 0.0  # while paused: when to watch the listening socket again
        self.since = 0.0  # when the first failure of the burst happened


class Server:
    """An HTTP/1.1 server calling an RGI *app* (doc/degu.server.rst).

    *address* is an IPv4 ``(host, port)``, an IPv6 ``(host, port, flowinfo,
    scopeid)``, an absolute AF_UNIX path (``str``), a Linux abstract name
    (``bytes``, ``b''`` lets the kernel pick one), or a listening socket.
    The socket is bound and listening when the constructor returns; build
    clients from ``server.address``, which holds the real port.

    Options (also attributes): ``max_connections`` (50), ``max_requests``
    per connection (1000), ``timeout`` (30 s, each socket operation and a
    whole preamble), ``idle_timeout`` (15 s, the wait for a request),
    ``max_header_bytes`` (32 KiB), ``max_header_count`` (100), ``max_body``
    (``None``: no limit; a request body over it gets ``413 Content Too
    Large``, before the app runs when its ``content-length`` says so),
    ``transfer_timeout`` (20 s) and ``min_rate`` (500 bytes per second):
    while a request's body, trailers and response move, the time blocked
    on the peer may total ``transfer_timeout`` plus a second per
    ``min_rate`` bytes moved; a slower peer gets ``408 Request Timeout``
    (while it sends) or is cut off (while it reads).

    Behind a load balancer (doc/degu.server.rst, 'Behind a proxy'):
    ``forwarded_allow_ips`` (``None``: nobody; addresses and networks,
    ``'unix'``, ``'*'``) whose ``X-Forwarded-For``/``Forwarded`` and
    ``X-Forwarded-Proto`` give ``request.client`` and ``request.scheme``;
    ``proxy_protocol`` (``False``) to read a PROXY protocol header, version
    1 or 2, at the start of each connection (``session.client``);
    ``root_path`` (``''``) for an app mounted under a prefix, which then
    starts ``request.mount``.
    """

    def __init__(
        self,
        address: tuple | str | bytes | socket.socket,
        app: App,
        **options: int | float,
    ) -> None:
        if not callable(app):
            raise TypeError(f'app: not callable: {app!r}')
        on_connect = getattr(app, 'on_connect', None)
        if on_connect is not None and not callable(on_connect):
            raise TypeError(f'app.on_connect: not callable: {on_connect!r}')
        values = _check_options(type(self), options)
        self.options = options
        self.app = app
        self.on_connect: Callable[..., Any] | None = on_connect
        self.max_connections: int = values['max_connections']
        self.max_requests: int = values['max_requests']
        self.timeout: float = values['timeout']
        self.idle_timeout: float = values['idle_timeout']
        self.max_header_bytes: int = values['max_header_bytes']
        self.max_header_count: int = values['max_header_count']
        self.max_body: int | None = values['max_body']
        self.transfer_timeout: float = values['transfer_timeout']
        self.min_rate: int = values['min_rate']
        self.forwarded_allow_ips: TrustedProxies | None = values['forwarded_allow_ips']
        self.proxy_protocol: bool = values['proxy_protocol']
        self._root: list[str] = values['root_path']
        self.root_path: str = ''.join('/' + c for c in self._root)
        self._scheme = 'http'  # SSLServer: 'https'
        sock = address if isinstance(address, socket.socket) else _listen(address)
        self.sock: socket.socket = sock
        self.address: tuple | str | bytes = sock.getsockname()
        # A socket file we bound is removed again when the server closes.
        self._owns_file = type(address) is str
        self._lock = threading.Lock()
        self._conns: set[_Connection] = set()  # the live _Connection records
        self._threads: list[threading.Thread] = []  # connection threads that may still be alive
        self._prune_at = 64  # len(self._threads) at which the dead ones are dropped
        self._stopping = False
        self._serving = False
        self._stopped = threading.Event()  # set when the connections are finished or cut off
        self._shutdown_deadline: float | None = None  # when busy connections are cut off
        self._finished_in_time = False  # whether none had to be, once _stopped is set
        # What the accept loop receives from a new connection goes here first.
        self._scratch = memoryview(bytearray(65536))
        (self._wake_r, self._wake_w) = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._parking: list[_Parked] = []  # handed over by threads, for the accept loop
        self._busy = 0  # connections with a thread: at most max_connections
        self._crowded = max(1, 3 * self.max_connections // 4)  # see CROWDED_WAIT
        self._parked = 0  # connections parked or on their way: at most MAX_PARKED

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.address!r}, {_callable_name(self.app)})'

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # ------------------------------------------------------------------
    # Accepting

    def serve_forever(self) -> None:
        """Accept and serve connections until ``shutdown()``; then return.

        Returns once the listening socket is closed and every connection
        thread has finished, or was cut off after the shutdown timeout (see
        ``shutdown()``).
        """
        with self._lock:
            if self._serving:
                raise RuntimeError('serve_forever() is already running')
            if self._stopping:
                raise RuntimeError('server was shut down')
            self._serving = True
        # From here on, every way out must close the listener and set _stopped, or
        # shutdown() waits in vain and the port stays taken: the log line is in the try.
        try:
            try:
                version = _version()
            except Exception:  # a broken install (a stray degu/ folder) must not stop a server
                version = '(unknown version)'
            log.info(
                'Starting degu %s @ %r (max_connections=%d, max_requests=%d, timeout=%r)',
                version, self.address, self.max_connections, self.max_requests, self.timeout,
            )
            self._accept_loop()
        finally:
            self._close_listener()
            deadline = self._shutdown_deadline
            if deadline is None:  # the accept loop failed: no shutdown() to say when
                deadline = time.monotonic() + 5.0
            self._finished_in_time = self._finish(deadline)
            self._stopped.set()

    def _accept_loop(self):
        sel = selectors.DefaultSelector()
        lingering = {}  # socket -> deadline, for rejected connections
        prereading = {}  # socket -> _Preread, for new connections without a request yet
        parked = {}  # socket -> _Parked, for idle kept-alive connections
        pause = _AcceptPause()
        sweep = 0.0  # when the prereading deadlines are checked next
        try:
            self.sock.setblocking(False)
            sel.register(self.sock, selectors.EVENT_READ, None)
            sel.register(self._wake_r, selectors.EVENT_READ, None)
            draining = 0.0  # once stopping: until when accepted connections may finish
            while True:
                if self._stopping:
                    if not draining:
                        draining = self._stop_accepting(sel, pause)
                    if not prereading or time.monotonic() >= draining:
                        break
                timeout = None
                if lingering or pause.until or prereading or parked or draining:
                    wakes = [pause.until] if pause.until else []
                    if lingering:
                        wakes.append(min(lingering.values()))
                    if prereading or parked:
                        wakes.append(sweep)
                    if draining:
                        wakes.append(draining)
                    timeout = max(0.0, min(wakes) - time.monotonic())
                for key, _ in sel.select(timeout):
                    sock = key.fileobj
                    if sock is self.sock:
                        self._accept(sel, lingering, prereading, pause)
                    elif type(key.data) is _Preread:
                        self._preread(sel, lingering, prereading, key.data, key.events)
                    elif type(key.data) is _Parked:
                        self._parked_read(sel, lingering, parked, key.data)
                    elif sock is self._wake_r:
                        self._adopt_parked(sel, lingering, parked)
                    else:
                        self._linger_read(sel, lingering, sock)
                now = time.monotonic()
                if pause.until and pause.until <= now:
                    pause.until = 0.0  # try accept() again
                    sel.register(self.sock, selectors.EVENT_READ, None)
                if lingering:
                    for sock in [s for s, t in lingering.items() if t <= now]:
                        self._linger_end(sel, lingering, sock)
                if (prereading or parked) and sweep <= now:
                    sweep = now + PREREAD_SWEEP
                    for table in (prereading, parked):
                        for rec in [r for r in table.values() if r.deadline <= now]:
                            self._expire(sel, lingering, table, rec)
        finally:
            for sock in list(lingering):
                self._linger_end(sel, lingering, sock)
            with self._lock:
                (leftover, self._parking) = (self._parking, [])
            for rec in leftover:
                parked[rec.sock] = rec
                sel.register(rec.sock, selectors.EVENT_READ, rec)
            for table in (prereading, parked):
                for rec in list(table.values()):
                    if type(rec) is _Parked and rec.request is not None:
                        self._resume(sel, table, rec)  # in flight: served, then closed
                    else:
                        self._drop(sel, table, rec)
            sel.close()

    def _stop_accepting(self, sel, pause):
        """Stop taking connections; returns until when the accepted ones may finish.

        A connection accepted but without a whole request yet is a client
        about to be served: it gets SHUTDOWN_PREREAD (within the shutdown
        timeout) to send its request, which is then served, answered with
        ``connection: close``.  With several processes on one listening
        socket (degu.workers), the connections still queued go to the others.
        """
        if pause.until:
            pause.until = 0.0  # unwatched already, and not to be watched again
        else:
            sel.unregister(self.sock)
        now = time.monotonic()
        deadline = self._shutdown_deadline
        return min(now + SHUTDOWN_PREREAD, now if deadline is None else deadline)

    def _accept(self, sel, lingering, prereading, pause):
        try:
            (sock, address) = self.sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:  # EMFILE and friends: pause accepting, keep serving
            self._accept_failed(sel, pause, e)
            return
        if pause.failures:
            log.info('accept() works again, after %d failed attempts in %.1f s',
                     pause.failures, time.monotonic() - pause.since)
            pause.failures = 0
            pause.delay = ACCEPT_PAUSE_MIN
        with self._lock:
            full = self._busy >= self.max_connections
        if full or len(prereading) >= MAX_PREREADING:
            log.warning('Too many connections, rejecting %r', address)
            self._reject(sel, lingering, sock, peer=address)
            return
        if self.proxy_protocol:  # its header first, in clear, within timeout
            pre = _Preread(sock, address, time.monotonic() + self.timeout, False, True)
            prereading[sock] = pre
            sel.register(sock, selectors.EVENT_READ, pre)
            return
        self._start_preread(sel, prereading, sock, address)

    def _start_preread(self, sel, prereading, sock, address, client=None):
        # The connection waits in the selector: TLS handshake, then its first preamble.
        try:
            tls = self._start_tls(sock)
        except (OSError, ValueError) as e:
            log.info('%r TLS cannot start: %r', address, e)
            sock.close()
            return
        handshaking = tls is not sock
        sock = tls
        wait = self.timeout if handshaking else self.idle_timeout
        pre = _Preread(sock, address, time.monotonic() + wait, handshaking, client=client)
        prereading[sock] = pre
        sel.register(sock, selectors.EVENT_READ, pre)

    def _read_proxy_header(self, sel, lingering, prereading, pre):
        """Read a PROXY protocol header (doc/degu.server.rst, 'Behind a proxy'), no byte more.

        The bytes are peeked first and only those of the header are taken
        (``proxy_header_end()`` says how many), so that what follows stays
        in the socket for the TLS handshake.  A bad header closes the
        connection without a word (its peer is not speaking HTTP yet), with
        a lingering close: a reset could leave the peer guessing.
        """
        sock = pre.sock
        have = len(pre.data)
        try:
            peeked = sock.recv_into(self._scratch, MAX_PROXY_V2_LEN - have, socket.MSG_PEEK)
            if not peeked:  # gone before its header: nothing to say
                self._drop(sel, prereading, pre)
                return
            end = proxy_header_end(pre.data + self._scratch[:peeked])
            taken = sock.recv_into(self._scratch, peeked if end is None else end - have)
            pre.data += self._scratch[:taken]
            if end is None or len(pre.data) < end:
                return
            client = parse_proxy_header(bytes(pre.data))
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            log.info('%r PROXY protocol header not read: %r', pre.address, e)
            self._drop(sel, prereading, pre)
            return
        except ValueError as e:
            log.info('%r bad PROXY protocol header, connection closed: %s', pre.address, e)
            del prereading[sock]
            sel.unregister(sock)
            self._reject(sel, lingering, sock, b'')
            return
        del prereading[sock]
        sel.unregister(sock)
        self._start_preread(sel, prereading, sock, pre.address, client)

    def _start_tls(self, sock):
        return sock  # plain HTTP; SSLServer wraps it, for a handshake in the accept loop

    def _preread(self, sel, lingering, prereading, pre, events=selectors.EVENT_READ):
        """Read what a new connection sent; hand it to a thread once a preamble is complete."""
        sock = pre.sock
        if pre.proxied:
            self._read_proxy_header(sel, lingering, prereading, pre)
            return
        if pre.handshaking and not self._handshake(sel, lingering, prereading, pre, events):
            return
        received = receive_nowait(sock, self._scratch)
        if received is None:
            return
        if not received:  # gone before a request: nothing to answer
            self._drop(sel, prereading, pre)
            return
        if not pre.started:
            pre.started = True
            pre.deadline = time.monotonic() + self.timeout  # the whole preamble
        searched = max(0, len(pre.data) - 3)
        pre.data += self._scratch[:received]
        if pre.data.find(b'\r\n\r\n', searched) < 0 and len(pre.data) < self.max_header_bytes:
            return
        # Complete, or over the limit (the thread answers 431 or 414).
        del prereading[sock]
        sel.unregister(sock)
        self._start_connection(sel, lingering, sock, pre.address, bytes(pre.data), pre.client)

    def _handshake(self, sel, lingering, prereading, pre, events):
        """One step of a TLS handshake, in the accept loop; True once it is done.

        The socket is non-blocking: each step does what the bytes at hand
        allow and says what it waits for, read or write.  A handshake costs
        the accept loop 0.6 ms of CPU (TLS 1.3, a 2048-bit RSA key, measured
        over memory BIOs), so the loop can start about 1,500 a second.
        """
        import ssl

        sock = pre.sock
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            wanted = selectors.EVENT_READ
        except ssl.SSLWantWriteError:
            wanted = selectors.EVENT_WRITE
        except OSError as e:  # a bad certificate, a reset, a peer speaking plain HTTP...
            del prereading[sock]
            sel.unregister(sock)
            if getattr(e, 'reason', None) in _PLAIN_HTTP:
                # OpenSSL saw an HTTP request where a ClientHello belongs: say
                # so in plain HTTP, as a reset would tell the user nothing.
                log.info('%r plain HTTP sent to a TLS port: 400', pre.address)
                raw = socket.socket(sock.family, sock.type, fileno=sock.detach())
                self._reject(sel, lingering, raw, _error_preamble(400, 'Bad Request'),
                             peer=pre.address)
            else:
                log.info('%r TLS handshake failed: %r', pre.address, e)
                sock.close()
            return False
        else:
            pre.handshaking = False
            pre.deadline = time.monotonic() + self.idle_timeout  # the first byte
            if events != selectors.EVENT_READ:
                sel.modify(sock, selectors.EVENT_READ, pre)
            return True  # read at once: the request may have come with the handshake
        if wanted != events:
            sel.modify(sock, wanted, pre)
        return False

    def _drop(self, sel, table, rec):
        # A connection waiting in the selector ends: too slow, gone, shutdown.
        del table[rec.sock]
        sel.unregister(rec.sock)
        if type(rec) is _Parked:
            gone = 'peer closed the connection' if rec.request else 'idle connection closed'
            self._parked_end(rec, gone)
        else:
            rec.sock.close()

    def _expire(self, sel, lingering, table, rec):
        # A deadline passed: closed with no reply (idle, or a preamble too
        # slow), or 408 when a request's body came too slowly.
        if type(rec) is not _Parked or rec.request is None:
            self._drop(sel, table, rec)
            return
        del table[rec.sock]
        sel.unregister(rec.sock)
        rate = self.min_rate
        log.info('- %s %s %s: 408 Request Timeout: body slower than %d bytes per second',
                 rec.session, rec.request._method, rec.request._uri, rate)
        sock = self._parked_end(rec, '408 Request Timeout', detach=True)
        self._reject(sel, lingering, sock, _error_preamble(408, 'Request Timeout'),
                     peer=rec.session, request=rec.request)

    # Parked connections work like prereading ones, in their own table (they
    # do not count toward MAX_PREREADING): a _Parked's deadline is the rest
    # of its idle_timeout, then timeout once a byte came; with a request, the
    # transfer deadline.

    def _adopt_parked(self, sel, lingering, parked):
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        with self._lock:
            (adopted, self._parking) = (self._parking, [])
        for rec in adopted:
            sock = rec.sock
            parked[sock] = rec
            sel.register(sock, selectors.EVENT_READ, rec)
            if rec.transport.has_pending():  # TLS bytes decrypted already: no wake-up for them
                self._parked_read(sel, lingering, parked, rec)

    def _parked_read(self, sel, lingering, parked, rec):
        transport = rec.transport
        received = transport.receive_available()
        if received is None:
            return
        if not received:  # gone while idle, or before its body came
            self._drop(sel, parked, rec)
            return
        request = rec.request
        now = time.monotonic()
        if request is None:
            if not rec.started:
                rec.started = True
                rec.deadline = now + self.timeout  # the whole preamble
            if not transport.holds_block(b'\r\n\r\n', self.max_header_bytes):
                return
        else:
            rec.budget += received / self.min_rate
            rec.deadline = min(rec.budget, now + self.timeout)
            if not _body_at_hand(transport, request):
                return
        with self._lock:
            full = self._busy >= self.max_connections
        if full:
            log.warning('- %s Too many connections, rejecting its request', rec.session)
            del parked[rec.sock]
            sel.unregister(rec.sock)
            sock = self._parked_end(rec, '503 Service Unavailable', detach=True)
            self._reject(sel, lingering, sock, _service_unavailable(),  # inside TLS too
                         peer=rec.session, request=rec.request)
            return
        self._resume(sel, parked, rec)

    def _resume(self, sel, parked, rec):
        # A thread serves the parked connection's request (at shutdown, the
        # last in-flight ones too, whatever max_connections says).
        sock = rec.sock
        del parked[sock]
        sel.unregister(sock)
        with self._lock:
            self._parked -= 1
            self._busy += 1
        try:
            self._spawn(rec.conn, self._run_parked, (rec,), rec.session)
        except RuntimeError as e:  # no thread to be had: the connection goes
            log.warning('- %s cannot resume: %r', rec.session, e)
            with self._lock:
                self._busy -= 1
                self._parked += 1  # _parked_end() counts it out
            self._parked_end(rec, 'no thread to resume')

    def _parked_end(self, rec, message, detach=False):
        # A parked connection that ends: the peer closed, idle_timeout,
        # shutdown, a 408 or a 503 (*detach*: the socket is returned, open).
        with self._lock:
            self._conns.discard(rec.conn)
            self._parked -= 1
        session = rec.session
        session._close(message)
        log.info('- %s Handled %d requests: %s', session, session.requests, session.message)
        rec.failures.clear()
        if detach:
            return rec.transport.detach()
        rec.transport.close()
        return None

    def _run_parked(self, rec):
        self._run_requests(rec.conn, rec.session, rec.transport, rec.failures, rec.request)

    def _park(self, conn, session, transport, failures, request=None):
        """Hand a connection to the accept loop; False when shutting down or too many are.

        Idle (no *request*): it waits for its next request.  With a
        *request*: for the request's body (see BODY_WAIT).
        """
        now = time.monotonic()
        if request is None:
            deadline = now + self.idle_timeout - PARK_AFTER
        else:
            deadline = now + self.transfer_timeout
        with self._lock:
            if self._stopping or self._parked >= MAX_PARKED:
                return False
            self._parked += 1
            self._busy -= 1
            conn.thread = None
            conn.idle = request is None
            if request is None and not transport.has_pending():
                transport.release_buffer()  # idle: nothing to keep
            rec = _Parked(conn, session, transport, failures, deadline, request)
            if request is not None:
                rec.deadline = min(deadline, now + self.timeout)
            self._parking.append(rec)
            try:
                self._wake_w.send(b'p')
            except OSError:  # full: the accept loop has a wake-up pending anyway
                pass
        return True

    def _start_connection(self, sel, lingering, sock, address, preread, client=None):
        """A thread for the connection, or a 503 when ``max_connections`` are busy."""
        with self._lock:
            full = self._busy >= self.max_connections
            if not full:
                conn = _Connection(sock)
                self._conns.add(conn)
                self._busy += 1
        if full:  # a 503 over TLS too: the handshake is done
            log.warning('Too many connections, rejecting %r', address)
            self._reject(sel, lingering, sock, _service_unavailable(), peer=address)
            return
        try:
            self._spawn(conn, self._run_connection, (conn, address, preread, client), address)
        except BaseException:
            with self._lock:
                self._conns.discard(conn)
                self._busy -= 1
            sock.close()
            raise

    def _spawn(self, conn, target, args, name):
        thread = threading.Thread(
            target=target, args=args, daemon=True, name=f'degu connection {name}'
        )
        conn.thread = thread
        thread.start()
        # Every thread is joined at shutdown, even one that already left
        # _conns: it may still be on its way out.  Dead ones are dropped
        # when the list has doubled, not on every accept, which would
        # cost a scan of every live connection per new one.
        self._threads.append(thread)
        if len(self._threads) >= self._prune_at:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._prune_at = 2 * len(self._threads) + 64

    def _accept_failed(self, sel, pause, error):
        # One warning when a burst of failures starts, one info line when it
        # ends (above); in between the listening socket is not watched.
        now = time.monotonic()
        if not pause.failures:
            pause.since = now
            log.warning('accept() failed: %r; accepting paused, retried after %.3f s '
                        'and at most every %.1f s', error, pause.delay, ACCEPT_PAUSE_MAX)
        pause.failures += 1
        pause.until = now + pause.delay
        pause.delay = min(2 * pause.delay, ACCEPT_PAUSE_MAX)
        sel.unregister(self.sock)

    def _reject(self, sel, lingering, sock, answer=None, peer=None, request=None):
        # An immediate 503 (or *answer*), never a stalled accept loop.  The
        # socket is then drained for a moment, so that unread request bytes
        # do not turn our close into a reset that destroys the answer in flight.
        # *peer* (a Session, or the address from accept()) and *request* (if
        # one was read) are for the access log.
        sent = 0
        try:
            sock.setblocking(False)
            if answer is None:
                answer = self._rejection()
            if answer:
                sent = sock.send(answer)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            sock.close()
            return
        finally:
            if answer and access_log.isEnabledFor(logging.INFO):
                self._log_rejected(sock, peer, request, answer, sent)
        if len(lingering) >= MAX_LINGERING:
            sock.close()
            return
        lingering[sock] = time.monotonic() + LINGER_TIME
        sel.register(sock, selectors.EVENT_READ, None)

    @staticmethod
    def _log_rejected(sock, peer, request, answer, sent):
        if type(peer) is not Session:
            credentials = None
            if sock.fileno() >= 0 and sock.family == socket.AF_UNIX:
                credentials = _peer_credentials(sock)
            peer = Session(peer, credentials)
        status = int(answer[9:12])  # our own 'HTTP/1.1 503 ...'
        log_access(peer, request, status, 0, 0.0, CLOSED if sent == len(answer) else CUT_OFF)

    def _rejection(self):
        # What a new connection gets when max_connections are busy.
        return _service_unavailable()

    def _linger_read(self, sel, lingering, sock):
        try:
            if sock.recv(65536):
                return
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._linger_end(sel, lingering, sock)

    def _linger_end(self, sel, lingering, sock):
        del lingering[sock]
        sel.unregister(sock)
        sock.close()

    def _close_listener(self):
        with self._lock:
            sock = self.sock
            if sock.fileno() >= 0:
                sock.close()
                if self._owns_file:
                    _remove_socket_file(self.address)
            self._wake_r.close()
            self._wake_w.close()

    # ------------------------------------------------------------------
    # Stopping

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Stop accepting, let in-flight requests finish, close idle connections.

        A connection accepted but without a whole request yet gets up to
        1 s (``SHUTDOWN_PREREAD``) to send it, and is then served.  Makes
        ``serve_forever()`` return.  Connections still busy after
        *timeout* seconds are cut off (their sockets shut down), and their
        threads get 0.5 s more, all together, to end; a thread still in the
        app after that is left running (connection threads are daemon
        threads) and logged in one warning.  So this returns, and so does
        ``serve_forever()``, within *timeout* + 0.5 s.  Returns ``True``
        when every connection finished in time.  Call it from another
        thread than the one in ``serve_forever()``; calling it again waits
        for the first call and returns its result.
        """
        with self._lock:
            first = not self._stopping
            self._stopping = True
            serving = self._serving
            if first:
                self._shutdown_deadline = time.monotonic() + timeout
                if self._wake_w.fileno() >= 0:
                    try:
                        self._wake_w.send(b'x')
                    except OSError:  # pragma: no cover - a full wake-up pipe is awake enough
                        pass
            deadline = self._shutdown_deadline
            assert deadline is not None  # set by the first call
        if first and not serving:
            self._close_listener()
            self._finished_in_time = self._finish(deadline)
            self._stopped.set()
        else:
            # serve_forever() (or the first call) finishes by deadline + SHUTDOWN_GRACE;
            # 0.5 s more for its last steps, in case its thread is slow to run.
            left = deadline - time.monotonic()
            self._stopped.wait(max(0.0, left) + SHUTDOWN_GRACE + 0.5)
        if self._stopped.is_set():
            return self._finished_in_time
        return not self._conns  # pragma: no cover - serve_forever() did not get to run

    def _finish(self, deadline):
        """Wait for the connections until *deadline*, then cut off the busy ones.

        Returns ``True`` when none was busy.
        """
        self._close_idle()
        for conn in self._snapshot():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if conn.thread is not None:
                conn.thread.join(left)
        busy = self._snapshot()
        for conn in busy:
            log.warning('Shutdown timeout: closing busy connection %r', conn.sock)
            _shutdown_socket(conn.sock, socket.SHUT_RDWR)
        # One grace period shared by all the threads, not one per thread.
        grace = time.monotonic() + SHUTDOWN_GRACE
        stuck = 0
        for thread in list(self._threads):
            thread.join(max(0.0, grace - time.monotonic()))
            stuck += thread.is_alive()
        if stuck:
            log.warning('Shutdown: %d connection threads still running (in the app) %.1f s '
                        'after the cut-off; left behind as daemon threads', stuck, SHUTDOWN_GRACE)
        return not busy

    def _snapshot(self):
        with self._lock:
            return list(self._conns)

    def _close_idle(self):
        # SHUT_RD wakes a thread waiting for a request (its recv returns 0)
        # and still lets a thread that has just read one send its response.
        with self._lock:
            for conn in self._conns:
                if conn.idle:
                    _shutdown_socket(conn.sock, socket.SHUT_RD)

    # ------------------------------------------------------------------
    # One connection, in its own thread

    def _run_connection(self, conn, address, preread=b'', client=None):
        sock = conn.sock
        session = None
        try:
            sock.settimeout(self.timeout)
            credentials = None
            if sock.family == socket.AF_UNIX:
                credentials = _peer_credentials(sock)
            else:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            session = Session(address, credentials, self.max_requests, client=client,
                              scheme=self._scheme)
            trusted = self.forwarded_allow_ips
            session._proxied = trusted is not None and session._client in trusted
            session._rewrite = session._proxied or bool(self._root)
            log.info('+ %s New connection', session)
            accepted = self.on_connect is None or self.on_connect(session, sock) is True
            if not accepted:
                log.warning('- %s Rejected by app.on_connect()', session)
        except OSError as e:
            # Resets, timeouts: the peer's doing, no traceback.
            log.info('- %s Connection lost: %r', session or address, e)
            accepted = False
        except Exception:
            log.exception('- %s Error before the first request:', session or address)
            accepted = False
        if not accepted:
            with self._lock:
                self._conns.discard(conn)
                self._busy -= 1
            sock.close()
            return
        failures = []  # why a request body failed, as the transport reports it
        # Counting what it sends, while the access log is on: a response cut
        # off midway is logged with the bytes that went out.
        counting = access_log.isEnabledFor(logging.INFO)
        transport = (CountingTransport if counting else Transport)(
            sock,
            timeout=self.timeout,
            idle_timeout=self._first_byte_wait(),
            on_failure=failures.append,
            buffer_size=min(START_BUF_LEN, max(BUF_LEN, self.max_header_bytes)),
        )
        if preread:  # what the accept loop received before this thread began
            transport.put_back(preread)
        self._run_requests(conn, session, transport, failures)

    def _first_byte_wait(self):
        # How long a thread waits for the next request before the connection
        # is parked, or closed (when idle_timeout is that short anyway).
        if self.idle_timeout > PARK_AFTER:
            return PARK_AFTER
        return self.idle_timeout

    def _run_requests(self, conn, session, transport, failures, request=None):
        """Serve requests in this thread until the connection closes or is parked.

        *request*: one read already, whose body the accept loop waited for.
        """
        parked = False
        try:
            parked = self._handle_requests(conn, session, transport, failures, request)
            if not parked:
                log.info('- %s Handled %d requests: %s', session, session.requests,
                         session.message)
        except OSError as e:
            log.info('- %s Connection lost after %d requests: %r', session,
                     session.requests, e)
        except Exception:
            log.exception('- %s Error after handling %d requests:', session, session.requests)
        finally:
            if not parked:
                with self._lock:
                    self._conns.discard(conn)
                    self._busy -= 1
                transport.close()

    # The request loop below reads the slots of Request and Session
    # (request._headers, session._requests...) where apps use the read-only
    # properties: 6,600 instructions fewer per request, a tenth of the loop's
    # cost (callgrind over benchmarks/hotpath.py).  The server makes both
    # objects; nothing else reads their slots.

    def _handle_requests(self, conn, session, transport, failures, request=None):
        """The request loop: read a request, call the app, respond, keep alive or close.

        Returns True when the connection was parked: an idle keep-alive
        connection waits in the accept loop for its next request, and a
        request whose body is slow to come for its body (*request* is then
        the one to serve first when it resumes).
        """
        parked = False
        try:
            while True:
                if request is None:
                    request = self._read_request(conn, session, transport)
                    if request is _PARK:
                        parked = self._park(conn, session, transport, failures)
                        if not parked:
                            session._close('shutdown' if self._stopping else 'too many idle')
                        return parked
                    if request is None:
                        return False
                    conn.idle = False
                    if request._body is not None and not _body_at_hand(transport, request):
                        at_hand = self._wait_for_body(session, transport, request)
                        if at_hand is None:
                            return False  # the peer left before its body came
                        if not at_hand and self._park(conn, session, transport, failures,
                                                      request):
                            parked = True
                            return True
                if not self._serve(session, transport, request, failures):
                    return False
                request = None
        finally:
            if not parked:
                transport.close()
                # A stored failure's traceback holds the frames that read the
                # body, and so the transport and its buffers: let them go now,
                # not when the garbage collector finds the cycle.
                failures.clear()

    def _wait_for_body(self, session, transport, request):
        """Wait up to BODY_WAIT for a request body that is not at hand yet (see there).

        True when it is (or the app must see the request now), False when
        the connection is to be parked until it is, ``None`` when the peer
        left first (the app is not called).
        """
        if _expects_continue(request):
            return True
        if not session._requests:
            return False  # see BODY_WAIT
        deadline = time.monotonic() + BODY_WAIT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                if not transport.receive_more(left, 'body'):
                    session._close('peer closed the connection')
                    return None
            except ConnectionTimedOut:
                return False
            if _body_at_hand(transport, request):
                return True

    def _read_request(self, conn, session, transport):
        """The next request, ``None`` when the connection ends, ``_PARK`` when it went idle.

        ``None`` comes after the answer a malformed request gets; ``_PARK``
        when the first-byte wait ran out (see PARK_AFTER).
        """
        # transport._start == transport._stop is transport.buffered without
        # the property's call: 700 instructions fewer per request (callgrind
        # over benchmarks/hotpath.py); waiting and reading in one step saves
        # another 700.
        if transport._start == transport._stop:  # nothing buffered: idle until a request comes
            conn.idle = True
            if self._stopping:
                session._close('shutdown')
                return None
            if transport.idle_timeout != self.idle_timeout:  # parked when idle: how soon
                crowded = self._busy >= self._crowded
                transport.idle_timeout = CROWDED_WAIT if crowded else PARK_AFTER
        try:
            request = read_request(
                transport, self.max_header_bytes, self.max_header_count, self.max_body
            )
        except EmptyPreambleError:
            session._close('peer closed the connection')
            return None
        except ConnectionTimedOut as e:
            if not transport.buffered and transport.idle_timeout != self.idle_timeout:
                return _PARK  # the short first-byte wait ran out: idle, not gone
            session._close(f'{e}')
            return None
        except ConnectionClosed as e:
            session._close(f'{e}')
            return None
        except ParseError as e:
            self._send_error(session, transport, e.status, e.reason, e)
            return None
        except OSError:
            raise  # the connection's own trouble: _run_connection() logs it
        except Exception as e:  # a bug of ours: logged, and the peer still gets an answer
            log.exception('- %s reading a request failed:', session)
            self._send_error(session, transport, 500, 'Internal Server Error', e)
            return None
        if request._version == 'HTTP/1.1' and 'host' not in request._headers:
            # RFC 9112 section 3.2: a server MUST answer 400.
            missing = ParseError('HTTP/1.1 request without host')
            self._send_error(session, transport, 400, 'Bad Request', missing, request)
            return None
        # Without trusted proxies or root_path: one check and one store, 300 instructions
        # of 65,600 per request (callgrind over benchmarks/hotpath.py).
        if session._rewrite:
            self._rewrite_request(session, request)
        else:
            request._origin = session._origin
        return request

    def _rewrite_request(self, session, request):
        # The client and scheme behind trusted proxies; the root_path moved to mount.
        if session._proxied:
            request._origin = forwarded_origin(request._headers, self.forwarded_allow_ips,
                                               session._client, self._scheme)
        else:
            request._origin = session._origin
        root = self._root
        if root and request._path[:len(root)] == root:
            request._mount = request._path[:len(root)]
            del request._path[:len(root)]

    def _serve(self, session, transport, request, failures):
        """Call the app and send its response; returns False when the connection must close."""
        started = time.monotonic() if _access_on(_INFO) else 0.0
        # The body, its trailers and the response as a whole: time blocked on
        # a peer slower than min_rate runs out (doc/security.rst).  This is
        # transport.start_deadline(), and below stop_deadline(), written out
        # as the two slots they set: 750 instructions fewer per request
        # (callgrind over benchmarks/hotpath.py).
        transport._left = self.transfer_timeout
        transport._rate = self.min_rate
        closing = request_close_reason(request._version, request._headers)
        expect100 = request._body is not None and self._arm_continue(transport, request)
        try:
            response = self.app(session, request, api)
            head = None
            if response_head is not None and not failures and (
                request._body is None or request._body.state == BODY_CONSUMED
            ):
                # The common response in one C call (degu._cparse), which
                # returns None for anything else: the path below, the
                # reference, then decides.  What _response_head() decides
                # about the connection is decided here first.  8,700
                # instructions fewer per request, 45,068 -> 36,367 (callgrind
                # over benchmarks/hotpath.py; doc/benchmarks.rst).
                if closing is not None:
                    ending = closing
                elif self._stopping:
                    ending = 'shutdown'
                elif session._requests + 1 >= session._max_requests:
                    ending = 'max_requests'
                else:
                    ending = None
                head = response_head(
                    response,
                    request._method,
                    '\r\nconnection: close' if ending is not None
                    else '' if request._version == 'HTTP/1.1'
                    else '\r\nconnection: keep-alive',
                    # _date_line() written out, and sent counted only for the
                    # access log below: 540 instructions fewer per request.
                    _date_field if (now := _time()) < _date_until else _new_date(now),
                )
            if head is None:
                response = _check_response(response, request)
                if failures:  # the app read a broken body and answered anyway
                    raise failures[0]
                if request._body is not None:
                    closing = self._finish_body(transport, request, response[3], expect100,
                                                closing)
                (preamble, kind, closing) = self._response_head(session, request, closing,
                                                                response)
            elif ending is not None:
                closing = ending
                session._close(closing)
        except Exception as e:
            return self._app_failed(session, transport, request, e, failures, started)
        body = response[3]
        sends = transport.sends
        before = getattr(transport, 'sent', None) if started else None
        try:
            if head is None:
                sent = write_message(transport, preamble, body, kind)
            else:
                # write_message() for bytes or None, written out: the head
                # holds the body unless it is over BUF_LEN.
                if started:  # for the access log
                    sent = len(head) + (0 if body is None or len(body) <= BUF_LEN else len(body))
                    preamble = head if body is None else head[: sent - len(body)]
                if transport._wparts:
                    transport.flush()
                transport.sendall(head)
                if body is not None and len(body) > BUF_LEN:
                    transport.sendall(body)
        except Exception as e:
            if transport.sends != sends or transport.closed:
                # The response started: closing is all that is left.
                if started:
                    _log_cut_off(session, request, response[0], transport, before,
                                 len(preamble), started)
                raise
            # Nothing reached the wire (a body that failed before the first
            # flush): the client can still get a proper answer.
            transport.discard_writes()
            return self._app_failed(session, transport, request, e, failures, started)
        finally:
            if body is not None and type(body) is not bytes:  # those hold nothing
                _release(body)
        transport._left = None  # stop_deadline()
        session._requests += 1
        if started:
            log_access(session, request, response[0], sent - len(preamble), started,
                       KEPT if session._message is None else CLOSED)
        if session._message is not None:
            _linger(transport)
            return False
        return True

    @staticmethod
    def _arm_continue(transport, request):
        # RFC 9110 section 10.1.1: 100 Continue goes out when the app first
        # reads the body, and never if it answers without reading it.
        if _expects_continue(request):
            transport.send_before_read = CONTINUE
            return True
        return False

    @staticmethod
    def _finish_body(transport, request, rbody, expect100, closing):
        """Drain what is left of a small request body; returns why the connection closes."""
        body = request._body
        if body.state == BODY_CONSUMED or body is rbody:
            return closing
        if expect100 and transport.send_before_read is not None:
            transport.send_before_read = None  # never sent: the client sends no body
            return closing or 'expect100 body not read'
        if not drain_body(body, MAX_DRAIN_LEN):
            return closing or 'request body not consumed'
        return closing

    def _response_head(self, session, request, closing, response):
        """``(preamble, kind, closing)`` for the app's checked *response*.

        The app's dict is never changed: the server renders its own date,
        framing and connection lines after the app's fields (the framing
        rules are ``degu._framing``'s; doc/decisions.rst says why).
        """
        (status, reason, headers, body) = response
        http11 = request._version == 'HTTP/1.1'
        (kind, length) = response_output(request._method, status, body, http11)
        if 'content-length' in headers or 'transfer-encoding' in headers or (
            'connection' in headers
        ):
            if 'connection' in headers and 'close' in parse_tokens(str(headers['connection'])):
                closing = closing or 'app closed the connection'
            if kind == NO_BODY:
                if status == 204:
                    own = _NO_CONTENT_204
                else:
                    own = _NO_CONTENT_OWN if http11 else _NO_CONTENT_HTTP10
            else:
                check_framing_headers(headers, kind, length)
                own = _OWN_FIELDS
            headers = {name: value for (name, value) in headers.items() if name not in own}
        if kind == CLOSE:
            # RFC 9112 section 6.1: an HTTP/1.0 peer gets a chunked body's data
            # delimited by the close.
            closing = closing or 'HTTP/1.0 peer and a chunked body'
        # framing_line() written out for a length: 350 instructions fewer
        # per response (callgrind over benchmarks/hotpath.py, pure core).
        extra = f'\r\ncontent-length: {length}' if kind == LENGTH else framing_line(kind, length)
        if closing is None:
            if self._stopping:
                closing = 'shutdown'
            elif session._requests + 1 >= session._max_requests:
                closing = 'max_requests'
        if closing is not None:
            session._close(closing)
            extra += '\r\nconnection: close'
        elif not http11:
            extra += '\r\nconnection: keep-alive'
        if 'date' not in headers:  # RFC 9110 section 6.6.1
            # _date_line() written out: 320 instructions fewer per response.
            extra += _date_field if (now := _time()) < _date_until else _new_date(now)
        return (render_response(status, reason, headers, extra), kind, closing)

    def _app_failed(self, session, transport, request, exc, failures, started=0.0):
        """Answer a request whose app, request body or response failed; returns False.

        A request body that failed decides: the peer vanished (close), or it
        sent a malformed or too large body (its ``ParseError`` status).  A
        ``ParseError`` 413 the app let escape (a body too large to read at
        once) is answered too.  Anything else is our side's fault: logged
        with its traceback, and a 500.
        """
        error = failures[0] if failures else None
        if error is None and isinstance(exc, ParseError) and exc.status == 413:
            error = exc
        if isinstance(error, ConnectionTimedOut):
            # The body or its trailers came too slowly (timeout, or the
            # transfer deadline): RFC 9110 section 15.5.9, then close.
            self._send_error(session, transport, 408, 'Request Timeout', error, request,
                             started)
        elif isinstance(error, ConnectionClosed):
            # The peer vanished while the app read the body: nobody to answer.
            session._close('peer closed the connection')
            log.info('- %s %s %s: %r', session, request.method, request.uri, error)
            if access_log.isEnabledFor(logging.INFO):
                log_access(session, request, CLIENT_GONE, 0, started, CUT_OFF)
        elif isinstance(error, ParseError):
            self._send_error(session, transport, error.status, error.reason, error, request,
                             started)
        else:
            log.error('- %s %s %s: app failed:', session, request.method, request.uri,
                      exc_info=error or exc)
            self._send_error(session, transport, 500, 'Internal Server Error', error or exc,
                             request, started)
        return False

    def _send_error(self, session, transport, status, reason, exc, request=None, started=0.0):
        session._close(f'{status} {reason}')
        log.info('- %s %d %s: %s', session, status, reason, exc)
        logging_on = access_log.isEnabledFor(logging.INFO)
        try:
            transport.discard_writes()
            transport.sock.sendall(_error_preamble(status, reason))
        except OSError:
            if logging_on:
                log_access(session, request, status, 0, started, CUT_OFF)
            return
        if logging_on:
            log_access(session, request, status, 0, started, CLOSED)
        _linger(transport)


def _body_at_hand(transport, request):
    # See BODY_WAIT: all of the body buffered, or BODY_AT_HAND bytes of it,
    # or a whole first chunk (a malformed one too: the app's read will say
    # what is wrong).
    body = request._body
    if body.chunked:
        try:
            return transport.holds(BODY_AT_HAND) or transport.scan(_first_chunk)
        except ValueError:
            return True
    remaining = body._remaining
    return transport.holds(remaining if remaining < BODY_AT_HAND else BODY_AT_HAND)


def _log_cut_off(session, request, status, transport, before, head, started):
    # The bytes of the body that went out: what the transport counted since
    # the response began, less its head (0 when it could not count).
    sent = 0 if before is None else max(0, transport.sent - before - head)
    log_access(session, request, status, sent, started, CUT_OFF)


def _first_chunk(buf, start, stop):
    return chunk_end(buf, start, stop) is not None


def _expects_continue(request):
    # RFC 9110 section 10.1.1: only an HTTP/1.1 request can ask for 100 Continue.
    if request._version == 'HTTP/1.1':
        expect = request._headers.get('expect')
        return expect is not None and expect.lower() == '100-continue'
    return False


def _release(body: object) -> None:
    # release_body(), where a close that fails must not take the connection down
    try:
        release_body(body)
    except Exception:
        log.exception('closing a response body failed: %r', body)


def _shutdown_socket(sock, how):
    try:
        # socket.socket.shutdown, not SSLSocket.shutdown: that would drop
        # the TLS state a busy thread still needs to send its response.
        socket.socket.shutdown(sock, how)
    except OSError:
        pass


def _linger(transport):
    """Close our side, drain what the peer still sends for a moment, then close.

    Closing a socket with unread bytes makes the kernel send a reset, which
    can destroy the last response before the peer reads it.  Over TLS too:
    the bytes are drained from the TCP socket underneath, undecrypted, as
    nothing more will be read from them.
    """
    sock = transport.sock
    if transport.closed:
        return
    try:
        _shutdown_socket(sock, socket.SHUT_WR)
        sock.settimeout(LINGER_TIME)
        deadline = time.monotonic() + LINGER_TIME
        received = 0
        while received < LINGER_BYTES and time.monotonic() < deadline:
            data = socket.socket.recv(sock, 65536)
            if not data:
                break
            received += len(data)
    except OSError:
        pass
    transport.close()


def _peer_credentials(sock: socket.socket) -> tuple[int, int, int] | None:
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize('3i'))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return None
    return struct.unpack('3i', raw)


def _version():
    from . import __version__

    return __version__


# --------------------------------------------------------------------------
# TLS (doc/decisions.rst, 'TLS')


def build_server_sslctx(sslconfig: dict[str, Any]) -> ssl.SSLContext:
    """An ``ssl.SSLContext`` for a server from an *sslconfig* dict.

    Keys: ``cert_file`` and ``key_file`` (required), then ``ca_file`` and/or
    ``ca_path`` to require client certificates signed by that CA, or
    ``allow_unauthenticated_clients: True``.  TLS 1.2 is the minimum and
    TLS 1.3 is allowed; TLS 1.2 is restricted to ECDHE with AEAD.
    """
    import ssl

    if type(sslconfig) is not dict:
        raise TypeError(_TYPE_ERROR.format('sslconfig', dict, type(sslconfig), sslconfig))
    paths = {
        key: _check_abspath(f'sslconfig[{key!r}]', sslconfig[key])
        for key in ('cert_file', 'key_file', 'ca_file', 'ca_path')
        if key in sslconfig
    }
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers('ECDHE+AESGCM:ECDHE+CHACHA20')
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_SINGLE_ECDH_USE | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.load_cert_chain(paths['cert_file'], paths['key_file'])
    has_ca = 'ca_file' in sslconfig or 'ca_path' in sslconfig
    if 'allow_unauthenticated_clients' in sslconfig:
        if sslconfig['allow_unauthenticated_clients'] is not True:
            raise ValueError('True is only allowed value for allow_unauthenticated_clients')
        if has_ca:
            raise ValueError('ca_file/ca_path with allow_unauthenticated_clients')
        return ctx
    if not has_ca:
        raise ValueError('must include ca_file or ca_path (or allow_unauthenticated_clients)')
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(
        cafile=paths.get('ca_file'),
        capath=paths.get('ca_path'),
    )
    return ctx


def _check_server_sslctx(sslctx: ssl.SSLContext | dict[str, Any]) -> ssl.SSLContext:
    import ssl

    if isinstance(sslctx, dict):
        sslctx = build_server_sslctx(sslctx)
    if not isinstance(sslctx, ssl.SSLContext):
        raise TypeError('sslctx must be an ssl.SSLContext')
    if sslctx.protocol not in (ssl.PROTOCOL_TLS_SERVER, ssl.PROTOCOL_TLS):
        raise ValueError('sslctx.protocol must be ssl.PROTOCOL_TLS_SERVER')
    if sslctx.minimum_version < ssl.TLSVersion.TLSv1_2 and (
        sslctx.minimum_version != ssl.TLSVersion.MINIMUM_SUPPORTED
        or ssl.TLSVersion.MINIMUM_SUPPORTED < ssl.TLSVersion.TLSv1_2
    ):
        raise ValueError('sslctx.minimum_version must be >= ssl.TLSVersion.TLSv1_2')
    if sslctx.verify_mode == ssl.CERT_OPTIONAL:
        raise ValueError('sslctx.verify_mode cannot be ssl.CERT_OPTIONAL')
    if sslctx.verify_mode == ssl.CERT_NONE:
        log.warning('Security concern: sslctx allows unauthenticated clients!')
    return sslctx


class SSLServer(Server):
    """A ``Server`` speaking TLS: *sslctx* is an ``ssl.SSLContext`` or an sslconfig dict."""

    def __init__(
        self,
        sslctx: ssl.SSLContext | dict[str, Any],
        address: tuple | str | bytes | socket.socket,
        app: App,
        **options: int | float,
    ) -> None:
        self.sslctx = _check_server_sslctx(sslctx)
        super().__init__(address, app, **options)
        self._scheme = 'https'

    def __repr__(self) -> str:
        return f'SSLServer({self.sslctx!r}, {self.address!r}, {_callable_name(self.app)})'

    def _rejection(self):
        # Over max_connections a TLS peer gets a close (a FIN, then its
        # ClientHello drained and dropped), never a plaintext 503 it would
        # read as a broken record.  A 503 inside TLS needs the handshake,
        # which the accept loop must not run (a slow or silent client would
        # stall it, and every rejected client would cost a key exchange
        # just when the server is busiest) and no free thread may run.
        return b''

    def _start_tls(self, sock):
        # The handshake runs in the accept loop's selector, a step whenever
        # the peer's bytes allow, within timeout (see _handshake()).
        sock.setblocking(False)
        return self.sslctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
