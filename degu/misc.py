"""Fixtures for tests and doctests: throw-away servers, a throw-away PKI, helpers.

What a user of degu reaches for in their own unit tests (doc/degu.misc.rst):

* ``TempServer`` / ``TempSSLServer``: a server on a loopback or AF_UNIX
  address, in a child process (the default) or in a thread of this process
  (``thread=True``, for apps that are closures or share state with the test).
  The constructor returns once the server listens; ``address`` is the bound
  address; ``terminate()`` (or ``with``, or garbage collection) stops it.
* ``TempPKI``: a server CA and certificate, and a client CA and certificate,
  in a temporary directory, with ready-made sslconfig dicts.
* ``mkreq``, ``mkuri``: build a ``Request`` or a URI without a server.
* ``parse_headers``, ``write_chunk``, ``format_headers``, ``format_request``,
  ``format_response``: raw message pieces for tests that speak bytes.
* ``RequestLogger``: middleware that logs one line per request.

Not for production import: it pulls in the server, the client side helpers
and ``degu.sslhelpers``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import weakref

from . import (
    STOP_TIMEOUT,
    _start_server_process,
    _stop_server_process,
    _Stoppable,
)
from ._body import check_chunk
from ._common import _callable_name, _remove_socket_file
from ._parse import _TYPE_ERROR
from .base import Request, format_chunk, parse_headers, parse_request_range
from .sslhelpers import PKI

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time
if TYPE_CHECKING:
    from typing import Any, Protocol, TypeVar

    from ._types import App
    from .base import API, Session

    _P = TypeVar('_P', bound='TempPKI')

    class _Writer(Protocol):
        def write(self, data: bytes, /) -> int: ...

__all__ = (
    'TempServer',
    'TempSSLServer',
    'TempPKI',
    'mkreq',
    'mkuri',
    'parse_headers',
    'write_chunk',
    'format_headers',
    'format_request',
    'format_response',
    'RequestLogger',
)

log = logging.getLogger('degu.misc')


# --------------------------------------------------------------------------
# Temporary servers
#
#   process (default)                     thread=True
#   -----------------                     -----------
#   child process, fork on Linux          Server built here, serve_forever()
#   Server built in the child;            in a daemon thread
#   address or error sent back
#   terminate(): SIGTERM, join            terminate(): server.shutdown(), join
#
# Either way a failure to bind is raised by the constructor, in the caller's
# process, and an AF_UNIX socket file is removed after the server stops.  The
# start method is chosen explicitly: see doc/decisions.rst, 'Server lifecycle'.


class _TempServerBase(_Stoppable):
    """The life cycle shared by TempServer and TempSSLServer.

    ``process`` (or ``thread`` and ``server``) stay set after ``terminate()``,
    as in the original Degu: ``process.is_alive()`` is then ``False`` and
    ``process.exitcode`` tells how it ended.
    """

    process = None
    thread = None
    server = None

    def _start(
        self,
        sslconfig: dict[str, Any] | None,
        address: tuple | str | bytes,
        app: App,
        thread: bool,
        options: dict[str, Any],
    ) -> None:
        if type(thread) is not bool:
            raise TypeError(_TYPE_ERROR.format('thread', bool, type(thread), thread))
        self._pid = os.getpid()
        self._state = {'error': None}  # what the serving thread hands back
        if not thread:
            (self.process, self.address) = _start_server_process(
                sslconfig, address, app, None, (), options
            )
            return
        if sslconfig is None:
            from .server import Server

            server = Server(address, app, **options)
        else:
            from .server import SSLServer

            server = SSLServer(sslconfig, address, app, **options)
        self.server = server
        self.address = server.address
        # The thread must not reference self, or garbage collection could
        # never stop a forgotten server.
        self.thread = threading.Thread(
            target=_serve_thread,
            args=(server, self._state),
            name=f'{type(self).__name__} {server.address!r}',
            daemon=True,
        )
        try:
            self.thread.start()
        except BaseException:  # pragma: no cover - thread limit reached
            self.thread = None
            server.shutdown()
            raise

    def terminate(self) -> None:
        """Stop the server and wait for it; calling it again does nothing.

        Raises ``RuntimeError`` when a thread-backed server did not stop within
        ``degu.STOP_TIMEOUT`` seconds, and re-raises what its
        ``serve_forever()`` raised, if anything.
        """
        if self._stopped or getattr(self, '_pid', None) != os.getpid():
            return  # already stopped, never started, or a copy inherited by a forked child
        self._stopped = True
        (process, thread, server) = (self.process, self.thread, self.server)
        try:
            if process is not None:
                _stop_server_process(process)
            elif thread is not None:
                assert server is not None  # set with thread, in _start()
                if server.shutdown(STOP_TIMEOUT) is False:
                    log.warning(
                        '%r: connections still busy after %s s were cut off', self, STOP_TIMEOUT
                    )
                thread.join(STOP_TIMEOUT)
                if thread.is_alive():
                    raise RuntimeError(
                        f'{self!r}: serve_forever() did not return within {STOP_TIMEOUT} s'
                    )
        finally:
            if process is not None or thread is not None:
                _remove_socket_file(self.address)
        (error, self._state['error']) = (self._state['error'], None)
        if error is not None:
            raise error

    # Degu's fixtures are stopped with terminate(); close() is the usual name.
    close = terminate


def _serve_thread(server, state):
    try:
        server.serve_forever()
    except BaseException as e:  # handed to terminate()
        state['error'] = e
        log.exception('%r: serve_forever() failed', server)


class TempServer(_TempServerBase):
    """A ``degu.server.Server`` for a test, in a child process or a thread.

    *address* and ``**options`` are those of ``Server``.  With the default
    ``thread=False`` the app is handed to a child process (``fork`` on Linux,
    so no pickling there; elsewhere it must be a picklable module-level
    object).  With ``thread=True`` the server runs in a daemon thread of this
    process, so the app may be a closure or share state with the test.

    >>> def app(session, request, api):
    ...     return (200, 'OK', {}, b'hello')
    >>> with TempServer(('127.0.0.1', 0), app, thread=True) as server:
    ...     server.address[0]
    '127.0.0.1'
    """

    def __init__(
        self,
        address: tuple | str | bytes,
        app: App,
        *,
        thread: bool = False,
        **options: Any,
    ) -> None:
        self.address = address
        self.app = app
        self.options = options
        self._start(None, address, app, thread, options)

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.address!r}, {_callable_name(self.app)})'


class TempSSLServer(_TempServerBase):
    """A ``degu.server.SSLServer`` for a test; *sslconfig* must be a ``dict``.

    Same life cycle and ``thread`` keyword as ``TempServer``.  Use a
    ``TempPKI`` for the sslconfig: ``TempSSLServer(pki.server_sslconfig, ...)``.
    """

    def __init__(
        self,
        sslconfig: dict[str, Any],
        address: tuple | str | bytes,
        app: App,
        *,
        thread: bool = False,
        **options: Any,
    ) -> None:
        if type(sslconfig) is not dict:
            raise TypeError(_TYPE_ERROR.format('sslconfig', dict, type(sslconfig), sslconfig))
        self.sslconfig = sslconfig
        self.address = address
        self.app = app
        self.options = options
        self._start(sslconfig, address, app, thread, options)

    def __repr__(self) -> str:
        return (
            f'{type(self).__name__}({self.sslconfig!r}, {self.address!r}, '
            f'{_callable_name(self.app)})'
        )


# --------------------------------------------------------------------------
# A temporary PKI


class TempPKI(PKI):
    """A throw-away PKI in a fresh ``tempfile.mkdtemp(prefix='TempPKI.')`` directory.

    Creates a server CA and a server certificate signed by it (ids in
    ``server_ca_id`` and ``server_id``) and, with *client_pki*, a client CA
    and a client certificate (``client_ca_id``, ``client_id``).  The four
    ``*_sslconfig`` properties return new dicts for ``TempSSLServer`` /
    ``SSLServer`` and ``SSLClient``.

    The directory is removed by ``close()``, on leaving a ``with`` block, when
    the object is garbage collected, or at interpreter exit, whichever comes
    first (and only by the process that created it, never by a forked child).
    """

    def __init__(self, client_pki: bool = True, bits: int = 2048) -> None:
        if type(client_pki) is not bool:
            raise TypeError(_TYPE_ERROR.format('client_pki', bool, type(client_pki), client_pki))
        ssldir = tempfile.mkdtemp(prefix='TempPKI.')
        self._finalizer = weakref.finalize(self, _remove_tree, ssldir, os.getpid())
        try:
            super().__init__(ssldir)
            self.client_pki = client_pki
            self.server_ca_id = self._create_ca(bits)
            self.server_id = self._create_cert(bits, self.server_ca_id)
            self.client_ca_id = None
            self.client_id = None
            if client_pki:
                self.client_ca_id = self._create_ca(bits)
                self.client_id = self._create_cert(bits, self.client_ca_id)
        except BaseException:
            self.close()
            raise

    def _create_ca(self, bits: int) -> str:
        ca_id = self.create_key(bits)
        self.create_ca(ca_id)
        return ca_id

    def _create_cert(self, bits: int, ca_id: str) -> str:
        cert_id = self.create_key(bits)
        self.create_csr(cert_id)
        self.issue_cert(cert_id, ca_id)
        return cert_id

    def close(self) -> None:
        """Remove the directory and everything in it now."""
        self._finalizer()

    @property
    def closed(self) -> bool:
        """``True`` once the directory was removed."""
        return not self._finalizer.alive

    def __enter__(self: _P) -> _P:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _need_client_pki(self) -> tuple[str, str]:
        """``(client_ca_id, client_id)``, or ``ValueError`` without a client PKI."""
        (ca_id, cert_id) = (self.client_ca_id, self.client_id)
        if ca_id is None or cert_id is None:
            raise ValueError('TempPKI(client_pki=False) has no client CA or certificate')
        return (ca_id, cert_id)

    @property
    def server_sslconfig(self) -> dict[str, object]:
        """Server cert and key; clients must present a cert from the client CA."""
        (ca_id, _) = self._need_client_pki()
        return self.get_server_sslconfig(self.server_id, ca_id)

    @property
    def client_sslconfig(self) -> dict[str, object]:
        """Trust the server CA (no hostname check); present the client cert."""
        (_, cert_id) = self._need_client_pki()
        return self.get_client_sslconfig(self.server_ca_id, cert_id)

    @property
    def anonymous_server_sslconfig(self) -> dict[str, object]:
        """Server cert and key; clients need no certificate."""
        return self.get_anonymous_server_sslconfig(self.server_id)

    @property
    def anonymous_client_sslconfig(self) -> dict[str, object]:
        """Trust the server CA (no hostname check); present no certificate."""
        return self.get_anonymous_client_sslconfig(self.server_ca_id)


def _remove_tree(ssldir: str, pid: int) -> None:
    if os.getpid() == pid:
        shutil.rmtree(ssldir, ignore_errors=True)


# --------------------------------------------------------------------------
# Requests and URIs without a server


def mkreq(
    method: str,
    uri: str,
    headers: dict[str, Any] | None = None,
    body: Any = None,
    shift: int = 0,
    cls: type[Request] = Request,
) -> Request:
    """Build a ``Request`` from a URI, the way the server would (no validation).

    The query is the text after the first ``?`` (``None`` without one), the
    path is split on ``/`` (``'/'`` is ``[]``, ``'/a/'`` is ``['a', '']``),
    and *shift* components move to ``mount``.  *headers* is used as given,
    with one exception: a ``range`` given as ``str`` or ``bytes`` becomes a
    ``Range``, or is dropped when the server would drop it (several ranges,
    another unit, bad syntax; RFC 9110 section 14.2); the request then holds
    a copy of *headers*, so the caller's dict is never changed.  No ``host``
    is added: the server refuses an HTTP/1.1 request without one before any
    app runs, so an app that reads ``host`` should be given one.

    >>> r = mkreq('GET', '/foo/bar?k=v', shift=1)
    >>> (r.mount, r.path, r.query, r.headers)
    (['foo'], ['bar'], 'k=v', {})
    >>> mkreq('GET', '/', {'range': 'bytes=-500'}).headers
    {'range': Range(-500, None)}
    >>> mkreq('GET', '/', {'range': 'bytes=0-1,5-6'}).headers
    {}
    """
    (path_str, sep, rest) = uri.partition('?')
    query = rest if sep else None
    if path_str in ('', '/', '*'):  # '*': OPTIONS in asterisk-form (RFC 9112 3.2.4)
        path = []
    else:
        path = path_str[1:].split('/') if path_str.startswith('/') else path_str.split('/')
    if type(shift) is not int:
        raise TypeError(_TYPE_ERROR.format('shift', int, type(shift), shift))
    if not (0 <= shift <= len(path)):
        raise ValueError(f'need 0 <= shift <= {len(path)}; got {shift}')
    if headers is None:
        headers = {}
    elif type(headers.get('range')) in (str, bytes):
        headers = _parse_range_header(headers)
    return cls(method, uri, headers, body, path[:shift], path[shift:], query)


def _parse_range_header(headers: dict[str, object]) -> dict[str, object]:
    """A copy of *headers* whose ``range`` is parsed as the server parses it."""
    headers = dict(headers)
    parsed = parse_request_range(headers.pop('range'))  # type: ignore[arg-type]
    if parsed is not None:
        headers['range'] = parsed
    return headers


def mkuri(*path: str, query: str | None = None) -> str:
    """``'/' + '/'.join(path)``, plus ``'?' + query`` unless *query* is ``None``.

    >>> mkuri('foo', 'bar', query='k=v')
    '/foo/bar?k=v'
    >>> mkuri()
    '/'
    """
    uri = '/' + '/'.join(path)
    if query is None:
        return uri
    return uri + '?' + query


# --------------------------------------------------------------------------
# Raw message pieces


def write_chunk(wfile: _Writer, chunk: tuple[tuple[str, str] | None, bytes]) -> int:
    """Write one ``(extension, data)`` chunk to *wfile*; return the bytes written.

    >>> import io
    >>> out = io.BytesIO()
    >>> write_chunk(out, (('k', 'v'), b'hello'))
    14
    >>> out.getvalue()
    b'5;k=v\\r\\nhello\\r\\n'
    """
    data = check_chunk(chunk)
    src = b''.join((format_chunk(chunk), data, b'\r\n'))
    sent = wfile.write(src)
    if sent != len(src):
        raise ValueError(f'expected to write {len(src)} bytes, but sent {sent!r}')
    return sent


def format_headers(headers: dict[str, Any]) -> bytes:
    """Header lines ``'name: value'``, sorted, joined by CRLF; no validation.

    Values go through ``str()`` and the text is encoded as latin-1, so a test
    can write any byte it needs, valid or not.

    >>> format_headers({'b': 2, 'a': 'x'})
    b'a: x\\r\\nb: 2'
    """
    return '\r\n'.join(f'{name}: {headers[name]}' for name in sorted(headers)).encode('latin-1')


def _format_preamble(first_line: str, headers: dict[str, object]) -> bytes:
    if headers:
        return first_line.encode('latin-1') + b'\r\n' + format_headers(headers)
    return first_line.encode('latin-1')


def format_request(method: str, uri: str, headers: dict[str, Any]) -> bytes:
    """``b'METHOD URI HTTP/1.1'`` and the header lines; no final CRLF, no validation.

    >>> format_request('GET', '/foo', {'host': 'example.com'})
    b'GET /foo HTTP/1.1\\r\\nhost: example.com'
    """
    return _format_preamble(f'{method} {uri} HTTP/1.1', headers)


def format_response(status: int, reason: str, headers: dict[str, Any]) -> bytes:
    """``b'HTTP/1.1 STATUS REASON'`` and the header lines; no final CRLF, no validation.

    >>> format_response(200, 'OK', {'content-length': 5})
    b'HTTP/1.1 200 OK\\r\\ncontent-length: 5'
    """
    return _format_preamble(f'HTTP/1.1 {status} {reason}', headers)


# --------------------------------------------------------------------------
# Middleware


class RequestLogger:
    """RGI middleware: log ``'[%d] %s %s --> %s %s'`` for every request.

    The fields are ``session.requests``, method, URI, status and reason, at
    INFO on the ``degu.misc`` logger.  The wrapped app's ``on_connect``, if it
    has one, is passed through.
    """

    def __init__(self, app: App) -> None:
        if not callable(app):
            raise TypeError(f'app: not callable: {app!r}')
        self.app = app
        on_connect = getattr(app, 'on_connect', None)
        if on_connect is not None:
            self.on_connect = on_connect

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.app!r})'

    def __call__(self, session: Session, request: Request, api: API) -> tuple:
        response = self.app(session, request, api)
        log.info(
            '[%d] %s %s --> %s %s',
            session.requests,
            request.method,
            request.uri,
            response[0],
            response[1],
        )
        return response
