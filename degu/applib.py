"""Ready-made RGI apps: method filters, a router, a reverse proxy, a file server.

* ``AllowedMethods`` / ``MethodFilter``: answer ``405`` (with ``allow``) to
  methods an app does not handle.
* ``Router``: dispatch on path components through nested dicts.
* ``ProxyApp``: a reverse proxy that streams bodies both ways over one
  upstream connection per downstream connection.
* ``FilesApp``: serve the files under one directory (GET/HEAD, single
  ranges, conditional requests), never anything outside it.

Each is an ordinary ``app(session, request, api)`` callable; compose them
freely.  Not API-stable yet.  See doc/degu.applib.rst.
"""

from __future__ import annotations

import datetime
import email.utils
import html
import http
import io
import logging
import mimetypes
import os
import re
import stat
import time

from ._common import _check_abspath, _wait_readable
from ._parse import _TYPE_ERROR, _TYPE_ERROR2, HOP_BY_HOP, _check_method
from .base import (
    BODY_READY,
    ConnectionClosed,
    ConnectionTimedOut,
    Range,
    Request,
    Session,
    parse_tokens,
)
from .util import quote, unquote

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from ._types import App, ResponseTuple
    from .base import API
    from .client import Client, Connection
    _F = TypeVar('_F', bound='FilesApp')

__all__ = (
    'ROUTER_MAX_DEPTH',
    'HOP_BY_HOP',
    'IDEMPOTENT',
    'MAX_LISTING',
    'AllowedMethods',
    'MethodFilter',
    'Router',
    'ProxyApp',
    'FilesApp',
)

log = logging.getLogger('degu.applib')

ROUTER_MAX_DEPTH = 10  # nested appmap dicts, the top one included (also catches cycles)


# --------------------------------------------------------------------------
# Methods


class AllowedMethods:
    """The methods an app handles; ``AllowedMethods('GET', 'HEAD')(app)`` filters it.

    >>> allowed = AllowedMethods('GET', 'HEAD')
    >>> allowed
    AllowedMethods('GET', 'HEAD')
    >>> (allowed.isallowed('GET'), allowed.isallowed('PUT'))
    (True, False)
    """

    __slots__ = ('_methods',)

    def __init__(self, *methods: str) -> None:
        for method in methods:
            _check_method(method)
        self._methods = methods

    @property
    def methods(self) -> tuple[str, ...]:
        return self._methods

    def __repr__(self) -> str:
        return f'AllowedMethods({", ".join(repr(m) for m in self._methods)})'

    def isallowed(self, method: str) -> bool:
        return method in self._methods

    def __call__(self, app: App) -> MethodFilter:
        return MethodFilter(app, self)


class MethodFilter:
    """Call *app* for allowed methods; answer anything else with ``405``.

    The ``405 Method Not Allowed`` carries an ``allow`` header listing the
    allowed methods (RFC 9110 section 15.5.6), and leaves any request body
    unread (the server drains a small one, or closes).
    """

    __slots__ = ('app', 'allowed_methods', '_allow')

    def __init__(self, app: App, allowed_methods: AllowedMethods) -> None:
        if not callable(app):
            raise TypeError(f'app not callable: {app!r}')
        if type(allowed_methods) is not AllowedMethods:
            raise TypeError(
                _TYPE_ERROR.format(
                    'allowed_methods', AllowedMethods, type(allowed_methods), allowed_methods
                )
            )
        self.app = app
        self.allowed_methods = allowed_methods
        self._allow = ', '.join(allowed_methods.methods)

    def __repr__(self) -> str:
        return f'MethodFilter({self.app!r}, {self.allowed_methods!r})'

    def __call__(self, session: Session, request: Request, api: API) -> ResponseTuple:
        if self.allowed_methods.isallowed(request.method):
            return self.app(session, request, api)
        return (405, 'Method Not Allowed', {'allow': self._allow}, None)


# --------------------------------------------------------------------------
# Routing


def _check_appmap(appmap: dict, depth: int, label: str) -> None:
    if depth > ROUTER_MAX_DEPTH:
        raise ValueError(f'Router: max appmap depth {ROUTER_MAX_DEPTH} exceeded')
    for (key, value) in appmap.items():
        if key is not None:
            if type(key) is not str:
                types = (str, type(None))
                raise TypeError(_TYPE_ERROR.format('appmap key', types, type(key), key))
            if not key.isascii() or '/' in key:
                raise ValueError(f'appmap key: need ASCII without a slash; got {key!r}')
        if type(value) is dict:
            _check_appmap(value, depth + 1, f'{label}[{key!r}]')
        elif not callable(value):
            raise TypeError(f'{label}[{key!r}]: value not callable: {value!r}')


class Router:
    """Dispatch on path components through nested dicts.

    Each call shifts one component from ``request.path`` to ``request.mount``
    and looks it up in *appmap*: a dict value routes on the next component,
    anything else is the app to call.  When the path is exhausted the key is
    ``None``; ``'/foo'`` gives ``['foo']`` and ``'/foo/'`` gives
    ``['foo', '']``, so the keys ``None`` and ``''`` tell those apart.  Keys
    are compared with the *raw* component: ``caf%C3%A9``, not ``café``.
    An unknown key is ``410 Gone``.  At most ``ROUTER_MAX_DEPTH`` (10) levels
    of dicts, the top one included, which also rejects cycles.

    >>> from degu.misc import mkreq
    >>> def hello(session, request, api):
    ...     return (200, 'OK', {}, b'hello')
    >>> router = Router({'api': {'hello': hello}})
    >>> from degu.base import api
    >>> router(None, mkreq('GET', '/api/hello'), api)
    (200, 'OK', {}, b'hello')
    >>> router(None, mkreq('GET', '/api/nope'), api)
    (410, 'Gone', {}, None)
    """

    __slots__ = ('appmap',)

    def __init__(self, appmap: dict[str | None, Any]) -> None:
        if type(appmap) is not dict:
            raise TypeError(_TYPE_ERROR.format('appmap', dict, type(appmap), appmap))
        _check_appmap(appmap, 1, 'appmap')
        self.appmap = appmap

    def __repr__(self) -> str:
        return f'Router({self.appmap!r})'

    def __call__(self, session: Session, request: Request, api: API) -> ResponseTuple:
        if type(request) is not Request:
            raise TypeError(_TYPE_ERROR2.format('request', Request, type(request)))
        handler: Any = self.appmap  # a dict, then maybe an app
        for _ in range(ROUTER_MAX_DEPTH):  # bounded: the depth was checked
            handler = handler.get(request.shift_path(), None)
            if handler is None:
                return (410, 'Gone', {}, None)
            if type(handler) is not dict:
                return handler(session, request, api)
        raise ValueError(f'Router: max appmap depth {ROUTER_MAX_DEPTH} exceeded')


# --------------------------------------------------------------------------
# Reverse proxy

# The hop-by-hop fields (HOP_BY_HOP, degu._parse) are dropped both ways, all
# but transfer-encoding: the client and the server check it against the body
# and frame each side themselves, and a HEAD response keeps it, as the GET
# response would have it (RFC 9110 section 9.3.2).
_NOT_FORWARDED = HOP_BY_HOP - {'transfer-encoding'}


def _end_to_end(headers: dict[str, object]) -> dict[str, object]:
    """A copy of *headers* without hop-by-hop fields, nor those ``connection`` names."""
    drop = _NOT_FORWARDED
    connection = headers.get('connection')
    if connection is not None:
        drop = drop | set(parse_tokens(str(connection)))
    return {name: value for (name, value) in headers.items() if name not in drop}


def _add_forwarding(session: Session, request: Request, headers: dict[str, object]) -> None:
    """Say upstream who the client is and how it came (doc/degu.applib.rst, ProxyApp).

    ``x-forwarded-for`` gets the address of this proxy's peer,
    ``session.client``, appended to the list it came with when that peer
    is a trusted proxy (the server's ``forwarded_allow_ips``); from anyone
    else the list is dropped, and so is ``forwarded``, which a client may
    have written to pose as someone else.  ``x-forwarded-proto`` is the
    scheme the client used, ``request.scheme``.  ``via`` gets this hop
    appended (RFC 9110 section 7.6.3): the version of the request received
    and ``degu`` as the pseudonym.
    """
    client = session.client
    forwarded_for = headers.pop('x-forwarded-for', None)
    if not session._proxied:
        forwarded_for = None
        headers.pop('forwarded', None)
    if type(client) is tuple:
        host = client[0]
        node = f'[{host}]' if ':' in host else host
        forwarded_for = node if forwarded_for is None else f'{forwarded_for}, {node}'
    if forwarded_for is not None:
        headers['x-forwarded-for'] = forwarded_for
    headers['x-forwarded-proto'] = request.scheme
    hop = f'{request.version[5:]} degu'
    via = headers.get('via')
    headers['via'] = hop if via is None else f'{via}, {hop}'


# RFC 9110 section 9.2.2: a request whose effect is the same however often it
# is made may be sent again after the connection failed; POST and PATCH may not.
IDEMPOTENT = frozenset(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS'])


def _can_retry(method: str, exc: ConnectionClosed, body: Any) -> bool:
    """True when a request that failed with *exc* may be sent again on a new connection.

    Only when not a byte of the response had arrived (``not
    exc.response_started``: a truncated preamble or an interim response
    means the server got the request and was answering it), only an
    idempotent method, only when the connection closed (a timeout may mean
    the server is still working on the request), and only with a body that
    is ``None`` or untouched (what was streamed cannot be resent).
    """
    return (
        not exc.response_started
        and method in IDEMPOTENT
        and not isinstance(exc, ConnectionTimedOut)
        and (body is None or body.state == BODY_READY)
    )


class ProxyApp:
    """A reverse proxy to *client* (a ``degu.client.Client``).

    Each downstream connection gets its own upstream ``Connection``, kept in
    ``session.store[key]``, so requests keep their order.  The request is
    forwarded as ``request.method request.build_proxy_uri()`` (so a
    ``Router`` in front can strip a prefix), and the upstream response is
    returned: bodies stream through in both directions, chunked bodies stay
    chunked with their extensions, and hop-by-hop fields (``HOP_BY_HOP`` and
    any field that ``connection`` names) are dropped both ways, except
    ``transfer-encoding``, which the client and the server check against
    the body and frame anew.  The client's base headers (``host``...) win
    over the forwarded ones.

    Upstream connections: a stored connection that the server closed (it
    said ``connection: close``, or it became readable while idle) is
    replaced before use.  If a reused connection turns out to be closed only
    while the request is sent or its response awaited (the race with the
    server's idle timeout: ``ConnectionClosed``, but not
    ``ConnectionTimedOut``) and not a byte of the response had arrived
    (``response_started`` is False), the request is sent once more on a
    new connection when its method is idempotent (``IDEMPOTENT``, RFC 9110
    section 9.2.2) and its body is ``None`` or untouched.  Otherwise (a
    response cut short is never retried: the server had the request), and
    when the upstream cannot be reached or sends something malformed, the
    answer is ``502 Bad Gateway``.  An upstream body delimited by the close
    of its connection is returned as it is: the server sends it on chunked
    (or close-delimited to an HTTP/1.0 client).
    """

    __slots__ = ('client', 'key')

    def __init__(self, client: Client, key: str = 'conn') -> None:
        if not callable(getattr(client, 'connect', None)):
            raise TypeError(f'client: no connect() method: {client!r}')
        if type(key) is not str:
            raise TypeError(_TYPE_ERROR.format('key', str, type(key), key))
        self.client = client
        self.key = key

    def __repr__(self) -> str:
        return f'ProxyApp({self.client!r}, {self.key!r})'

    def _connection(self, store: dict[str, Any]) -> tuple[Connection, bool]:
        conn = store.get(self.key)
        if conn is not None:
            # Between responses nothing may arrive: a readable idle connection
            # was closed (idle timeout) or broken by the server.
            if not conn.closed and not _wait_readable(conn.sock, 0):
                return (conn, True)
            conn.close()
            del store[self.key]
        conn = self.client.connect()
        store[self.key] = conn
        return (conn, False)

    def _drop(self, store: dict[str, Any]) -> None:
        conn = store.pop(self.key, None)
        if conn is not None:
            conn.close()

    def __call__(self, session: Session, request: Request, api: API) -> ResponseTuple:
        if type(session) is not Session:
            raise TypeError(_TYPE_ERROR2.format('session', Session, type(session)))
        if type(request) is not Request:
            raise TypeError(_TYPE_ERROR2.format('request', Request, type(request)))
        store = session.store
        headers = _end_to_end(request.headers)
        _add_forwarding(session, request, headers)
        uri = request.build_proxy_uri()
        body = request.body
        try:
            (conn, reused) = self._connection(store)
            try:
                response = conn.request(request.method, uri, dict(headers), body)
            except ConnectionClosed as e:
                if not (reused and _can_retry(request.method, e, body)):
                    raise
                log.info('%s: upstream %r closed an idle connection (%s); retrying once',
                         session, self.client, e)
                self._drop(store)
                (conn, _) = self._connection(store)
                response = conn.request(request.method, uri, dict(headers), body)
        except (OSError, ValueError) as e:
            self._drop(store)
            log.warning('%s: %s %s: upstream %r failed: %r',
                        session, request.method, uri, self.client, e)
            return (502, 'Bad Gateway', {}, None)
        (status, reason, rheaders, rbody) = response
        if status < 200:
            # Cannot happen with degu's client, which skips interim
            # responses; a client that did not would leave the final
            # response unread on the connection.
            self._drop(store)
            log.warning('%s: %s %s: upstream %r answered %d', session, request.method, uri,
                        self.client, status)
            return (502, 'Bad Gateway', {}, None)
        rheaders = _end_to_end(rheaders)
        if not reason:
            reason = _reason(status)
        return (status, reason, rheaders, rbody)


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return 'Unknown'


# --------------------------------------------------------------------------
# Files

_MIME = mimetypes.MimeTypes()  # the built-in table only: the same answer on every host
# A compressed file is sent as what its bytes are, never with the type of
# what they decompress to: that would need a content-encoding.
_ENCODED_TYPES = {'gzip': 'application/gzip'}  # RFC 6713
# Text the browser must decode: say it is UTF-8 rather than let it guess.
# (application/json defines no charset parameter, RFC 8259 section 11.)
_CHARSET_TYPES = frozenset(['application/javascript'])
_ETAG_RE = re.compile(r'(?:W/)?("[\x21\x23-\x7e\x80-\xff]*")|(\*)')
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, 'O_CLOEXEC', 0)
    | getattr(os, 'O_NOCTTY', 0)
    | os.O_NOFOLLOW
    | os.O_NONBLOCK  # a FIFO must not block open(); cleared again for regular files
)


class _File(io.FileIO):
    """A file that also closes itself when dropped unsent.

    The degu server closes a response body's file once the response is sent
    (or failed); this covers a response that is never sent at all (a test
    calling the app directly, a middleware that drops it).
    """

    def __del__(self):
        self.close()


def _content_type(name: str) -> str:
    """The ``content-type`` for the file *name*, from the built-in table.

    >>> (_content_type('a.txt'), _content_type('a.json'), _content_type('a.tar.gz'))
    ('text/plain; charset=utf-8', 'application/json', 'application/gzip')
    >>> _content_type('README')
    'application/octet-stream'
    """
    (ctype, encoding) = _MIME.guess_type(name)
    if encoding is not None:
        return _ENCODED_TYPES.get(encoding, 'application/octet-stream')
    if ctype is None:
        return 'application/octet-stream'
    if ctype.startswith('text/') or ctype in _CHARSET_TYPES:
        return ctype + '; charset=utf-8'
    return ctype


def _http_date(seconds: float) -> str:
    return email.utils.formatdate(seconds, usegmt=True)


def _parse_http_date(value: str) -> float | None:
    """Seconds since the epoch for an HTTP date, or ``None`` when it is not one."""
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 5.6.7: HTTP dates are UTC
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


def _etag_matches(value: str, etag: str) -> bool:
    """RFC 9110 13.1.2: weak comparison of *etag* against an ``if-none-match`` list."""
    opaque = etag[2:] if etag.startswith('W/') else etag
    for m in _ETAG_RE.finditer(value):
        if m.group(2) is not None or m.group(1) == opaque:
            return True
    return False


def _if_range(value: object, etag: str, mtime: float) -> bool:
    """True when an ``if-range`` value lets the range be served (RFC 9110 13.1.5).

    An entity-tag must match *etag* by strong comparison (a weak tag never
    does); a date must equal the last-modified date exactly, and only counts
    when that date is strong, that is at least one second in the past (RFC
    9110 8.8.2.2: a file changed within the same second may change again
    with the same date).  Anything else sends the whole file.
    """
    text = str(value)
    if text.startswith('"') or text.startswith('W/'):
        return text == etag
    since = _parse_http_date(text)
    seconds = int(mtime)
    return since is not None and since == seconds and time.time() >= seconds + 1


def _files_app(dir_name: str, listing: bool, dotfiles: bool) -> FilesApp:
    return FilesApp(dir_name, listing=listing, dotfiles=dotfiles)


MAX_LISTING = 10_000  # entries shown in a directory listing (bounds memory and time)


def _href(name: str) -> str:
    """A relative link to *name* from the page of its directory."""
    # quote() keeps ':', but in the first segment of a relative reference it
    # would read as a scheme (RFC 3986 section 4.2): 'a:b.txt' is 'a%3Ab.txt'.
    return quote(name).replace(':', '%3A')


def _listing(request: Request, fd: int, top: bool, dotfiles: bool) -> tuple:
    """An HTML list of the regular files and directories under *fd*.

    The page is only ever served at a URL that ends in ``/`` (``/dir``
    redirects), so every link is relative to it, and ``../`` is offered
    below the top of the served directory.
    """
    entries = []
    with os.scandir(fd) as it:
        for entry in it:
            if not dotfiles and entry.name.startswith('.'):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    entries.append(entry.name + '/')
                elif entry.is_file(follow_symlinks=False):
                    entries.append(entry.name)
            except OSError:  # pragma: no cover - gone while we looked
                continue
            if len(entries) >= MAX_LISTING:
                break
    entries.sort()
    title = html.escape(_display_path(request.uri.partition('?')[0]))
    items = [] if top else ['<li><a href="../">../</a></li>']
    for name in entries:
        try:
            href = _href(name.rstrip('/')) + ('/' if name.endswith('/') else '')
        except (UnicodeError, ValueError):
            continue  # a name that is not valid UTF-8 cannot be linked
        items.append(f'<li><a href="{html.escape(href)}">{html.escape(name)}</a></li>')
    page = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f'<title>Index of {title}</title></head>\n'
        f'<body><h1>Index of {title}</h1>\n<ul>\n' + '\n'.join(items) + '\n</ul></body></html>\n'
    ).encode('utf-8', 'surrogateescape')
    headers = {'content-type': 'text/html; charset=utf-8', 'content-length': len(page)}
    if request.method == 'HEAD':
        return (200, 'OK', headers, None)
    return (200, 'OK', headers, page)


def _display_path(path: str) -> str:
    """*path* percent-decoded for display, or as it is when it does not decode."""
    try:
        return '/'.join(unquote(part) for part in path.split('/'))
    except ValueError:
        return path


def _decode_path(path: list[str]) -> tuple[list[str], bool] | None:
    """``(names, want_dir)`` from raw path components, or ``None`` for a bad request.

    Refused: a component that is not strict UTF-8 after percent-decoding, or
    that decodes to ``''`` (except the last one: ``/dir/``, or ``/`` below a
    ``Router`` key), ``.``, ``..``, or a name holding ``/``, NUL or ``os.sep``.
    """
    names: list[str] = []
    last = len(path) - 1
    for (i, component) in enumerate(path):
        try:
            name = unquote(component)
        except ValueError:
            return None
        if name == '' and i == last:
            return (names, True)  # '/dir/', or '/' below a Router key
        if name in ('', '.', '..') or '/' in name or '\x00' in name or os.sep in name:
            return None
        if os.altsep and os.altsep in name:  # pragma: no cover - not POSIX
            return None
        names.append(name)
    return (names, False)


def _close_fd(fd: int) -> None:
    if fd >= 0:
        os.close(fd)


class FilesApp:
    """Serve the files under *dir_name*, and nothing outside it.

    GET and HEAD only (else ``405`` with ``allow``).  Path components are
    percent-decoded with ``degu.util.unquote``; a bad escape, bad UTF-8, or
    a name that is ``.``, ``..`` or holds ``/`` or NUL is ``400 Bad
    Request``.  A name starting with ``.`` (``.git``, ``.env``) is hidden:
    ``404``, and left out of listings, unless *dotfiles* is true.  Files
    are opened component by component relative to a directory descriptor
    with ``O_NOFOLLOW``: symbolic links are never followed (``404``), so no
    link leads outside the directory, and there is no window between a
    check and an open.  A directory asked for without its trailing slash
    is a ``301`` to the same path plus ``/`` (relative links in its page
    would break otherwise); with the slash it serves its ``index.html``, or
    without one, with *listing* true, an HTML list of its regular files and
    subdirectories (symbolic links are left out, as they are never served),
    else ``404``.  Anything missing, unreadable or not a regular file is
    ``404 Not Found``.

    Responses carry ``content-length``, ``content-type`` (from the built-in
    ``mimetypes`` table; ``application/octet-stream`` when unknown; text
    types with ``charset=utf-8``), ``last-modified``, a strong ``etag``
    (size and modification time) and ``accept-ranges``.  ``if-none-match``
    (or, without it, ``if-modified-since``) gives ``304``.  A GET with a
    ``range`` (the server hands over one ``Range``, the suffix form
    included) gives ``206`` with the range clamped to the file (RFC 9110
    section 14), or ``416`` with ``content-range: bytes */SIZE`` when it is
    not satisfiable; ``if-range`` that does not match sends the whole file.
    A request body is refused (``400``) unless it is empty.  The file goes
    out as an ``api.Body`` over the open file: the server sends it with
    ``socket.sendfile()`` on a plain socket.
    """

    def __init__(self, dir_name: str, *, listing: bool = False, dotfiles: bool = False) -> None:
        if type(dir_name) is not str:
            raise TypeError(_TYPE_ERROR2.format('dir_name', str, type(dir_name)))
        _check_abspath('dir_name', dir_name)
        if type(listing) is not bool:
            raise TypeError(_TYPE_ERROR2.format('listing', bool, type(listing)))
        if type(dotfiles) is not bool:
            raise TypeError(_TYPE_ERROR2.format('dotfiles', bool, type(dotfiles)))
        self.dir_name = dir_name
        self.listing = listing
        self.dotfiles = dotfiles
        self.dir_fd = os.open(
            dir_name, os.O_RDONLY | os.O_DIRECTORY | getattr(os, 'O_CLOEXEC', 0)
        )

    def __repr__(self) -> str:
        return f'FilesApp({self.dir_name!r})'

    def __reduce__(self):
        # A descriptor cannot cross a process boundary: open the directory again.
        return (_files_app, (self.dir_name, self.listing, self.dotfiles))

    def close(self) -> None:
        """Close the directory descriptor; later calls do nothing."""
        fd = self.dir_fd
        if fd is not None and fd >= 0:
            self.dir_fd = -1
            os.close(fd)

    def __del__(self):
        fd = getattr(self, 'dir_fd', None)
        if fd is not None and fd >= 0:
            self.close()

    def __enter__(self: _F) -> _F:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self, names: list[str]) -> tuple[int, os.stat_result] | None:
        """``(fd, stat)`` of what *names* lead to, or ``None`` when there is nothing."""
        fd = -1
        try:
            fd = os.open('.', _OPEN_FLAGS | os.O_DIRECTORY, dir_fd=self.dir_fd)
            for name in names:
                child = os.open(name, _OPEN_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
            return (fd, os.fstat(fd))
        except OSError:
            _close_fd(fd)
            return None

    def __call__(self, session: Session, request: Request, api: API) -> ResponseTuple:
        method = request.method
        if method != 'GET' and method != 'HEAD':
            return (405, 'Method Not Allowed', {'allow': 'GET, HEAD'}, None)
        body = request.body
        if body is not None:
            # Refused unread: the server drains a small body or closes.
            if body.chunked or body.content_length != 0:
                return (400, 'Bad Request', {}, None)
            body.read()
        decoded = _decode_path(request.path)
        if decoded is None:
            return (400, 'Bad Request', {}, None)
        (names, want_dir) = decoded
        if not self.dotfiles:
            for name in names:
                if name.startswith('.'):
                    return (404, 'Not Found', {}, None)
        opened = self._open(names)
        if opened is None:
            return (404, 'Not Found', {}, None)
        (fd, st) = opened
        try:
            if stat.S_ISDIR(st.st_mode):
                (path, sep, query) = request.uri.partition('?')
                if not path.endswith('/'):
                    # request.uri, not path: a Router in front shifted components.
                    location = path + '/' + sep + query
                    return (301, 'Moved Permanently', {'location': location}, None)
                name = 'index.html'
                try:
                    child = os.open(name, _OPEN_FLAGS, dir_fd=fd)
                except OSError:
                    if self.listing:
                        return _listing(request, fd, not names, self.dotfiles)
                    return (404, 'Not Found', {}, None)
                os.close(fd)
                fd = child
                st = os.fstat(fd)
            elif want_dir:
                return (404, 'Not Found', {}, None)  # '/file.txt/'
            else:
                name = names[-1]
            if not stat.S_ISREG(st.st_mode):
                return (404, 'Not Found', {}, None)
            os.set_blocking(fd, True)
            fp = _File(fd, 'rb')
            fd = -1  # fp owns it now
        finally:
            _close_fd(fd)
        try:
            response = self._respond(request, api, name, fp, st)
        except BaseException:
            fp.close()
            raise
        if response[3] is None:
            fp.close()
        return response

    def _respond(
        self, request: Request, api: API, name: str, fp: _File, st: os.stat_result
    ) -> tuple:
        size = st.st_size
        etag = f'"{size:x}-{st.st_mtime_ns:x}"'
        headers: dict[str, object] = {'etag': etag, 'last-modified': _http_date(st.st_mtime)}
        request_headers = request.headers
        if self._not_modified(request_headers, etag, st.st_mtime):
            return (304, 'Not Modified', headers, None)
        headers['content-type'] = _content_type(name)
        headers['accept-ranges'] = 'bytes'
        r = request_headers.get('range') if request.method == 'GET' else None
        if type(r) is Range:  # the server drops what it does not take (RFC 9110 14.2)
            value = request_headers.get('if-range')
            if value is None or _if_range(value, etag, st.st_mtime):
                try:
                    content_range = r.content_range(size)
                except ValueError:  # starts at or past the end, or an empty file
                    headers['content-range'] = f'bytes */{size}'
                    return (416, 'Range Not Satisfiable', headers, None)
                length = content_range.stop - content_range.start
                headers['content-length'] = length
                headers['content-range'] = content_range
                fp.seek(content_range.start)
                return (206, 'Partial Content', headers, api.Body(fp, length))
        headers['content-length'] = size
        if request.method == 'HEAD':
            return (200, 'OK', headers, None)
        return (200, 'OK', headers, api.Body(fp, size))

    def _not_modified(self, headers: dict[str, object], etag: str, mtime: float) -> bool:
        # RFC 9110 13.2.2: if-none-match first; if-modified-since only without it.
        value = headers.get('if-none-match')
        if value is not None:
            return _etag_matches(str(value), etag)
        value = headers.get('if-modified-since')
        if value is not None:
            since = _parse_http_date(str(value))
            if since is not None and int(mtime) <= since:
                return True
        return False
