"""Limits, errors, parsers and renderers of the shared HTTP engine.

Bytes in, values out, no IO: the per-connection reader (``degu._io``) reads a
bounded preamble or chunk line and hands complete ``bytes`` to the functions
here.  Renderers mirror the parsers and refuse anything unsafe to put on the
wire.  Everything is re-exported by ``degu.base``; import it from there.

The grammar is RFC 9112's, with the deviations recorded (with their
reasons) in doc/decisions.rst: strict wherever a lenient reading could
desynchronise the byte stream, RFC conformant wherever the original Degu
refused valid, common traffic.
"""

import os
import re

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing stays out of the import path
    from typing import Any

__all__ = (
    'CORE',
    # limits
    'BUF_LEN',
    'MAX_PREAMBLE_LEN',
    'MAX_HEADER_COUNT',
    'MAX_REQUEST_LINE_LEN',
    'MAX_LINE_LEN',
    'MAX_CL_LEN',
    'MAX_LENGTH',
    'MAX_CHUNK_SIZE_LEN',
    'IO_SIZE',
    'MAX_IO_SIZE',
    'MAX_DRAIN_LEN',
    'METHODS',
    # errors
    'ConnectionClosed',
    'EmptyPreambleError',
    'ConnectionTimedOut',
    'UnsupportedResponse',
    'ParseError',
    'content_too_large',
    # values
    'Range',
    'ContentRange',
    # parsers
    'parse_method',
    'parse_uri',
    'parse_version',
    'parse_request_line',
    'parse_response_line',
    'parse_header_name',
    'parse_headers',
    'parse_content_length',
    'parse_transfer_encoding',
    'parse_range',
    'parse_request_range',
    'parse_content_range',
    'parse_chunk_size',
    'parse_chunk_extension',
    'parse_chunk',
    'parse_tokens',
    'parse_host',
    'parse_authority',
    'parse_trailer_line',
    # renderers
    'render_headers',
    'render_request',
    'render_response',
    'render_chunk_extension',
    'format_chunk',
)

_TYPE_ERROR = '{}: need a {!r}; got a {!r}: {!r}'
_TYPE_ERROR2 = '{}: need a {!r}; got a {!r}'


# --------------------------------------------------------------------------
# Limits.  Every bound that protects memory or the byte stream lives here,
# with its unit.  The server exposes the preamble limits as options
# (``max_header_bytes``, ``max_header_count``) with these defaults.

BUF_LEN = 32 * 1024  # 32 KiB: read and write buffer of one connection
MAX_PREAMBLE_LEN = 32 * 1024  # 32 KiB: a whole preamble, including the final CRLFCRLF
MAX_HEADER_COUNT = 100  # header fields in one preamble (in and out) or in a trailer
MAX_REQUEST_LINE_LEN = 8 * 1024  # 8 KiB: a longer request line gets 414 (RFC 9112 3)
MAX_LINE_LEN = 4 * 1024  # 4 KiB: a chunk-size line, including its CRLF
MAX_CL_LEN = 16  # decimal digits in a content-length or a range number
MAX_LENGTH = 9999999999999999  # largest content-length, range offset or total (16 digits)
MAX_CHUNK_SIZE_LEN = 16  # hex digits in a chunk size, leading zeros included
IO_SIZE = 1024 * 1024  # 1 MiB: the piece size when a Body is iterated
MAX_IO_SIZE = 16 * 1024 * 1024  # 16 MiB: largest single read, chunk and bytes body
MAX_DRAIN_LEN = 64 * 1024  # 64 KiB: an unread request body the server drains

# The seven request methods, case-sensitive (doc/decisions.rst, 'Methods'):
METHODS = ('GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS')


def _check_method(method: object, label: str = 'method') -> str:
    """*method* if it is one of the seven ``METHODS`` (a ``str``), else raise.

    Not a ``str``: ``TypeError`` naming *label*.  Any other ``str``:
    ``ValueError("bad method: 'get'")``, after ``'<label>: '`` when *label* is
    not plain ``'method'`` (``rgi.Validator`` says ``request.method``).
    The server's parser has its own check of the raw bytes (``parse_method``).
    """
    if type(method) is not str:
        raise TypeError(_TYPE_ERROR.format(label, str, type(method), method))
    if method not in METHODS:
        prefix = '' if label == 'method' else f'{label}: '
        raise ValueError(f'{prefix}bad method: {method!r}')
    return method


# Hop-by-hop fields: they describe one connection and are never passed on
# (doc/decisions.rst, 'Proxying').  RFC 9110 section 7.6.1 names connection
# and the fields it lists, then proxy-connection, keep-alive, te,
# transfer-encoding (RFC 9112 section 6.1) and upgrade.  Also: trailer,
# because degu drops every trailer section (announcing fields that never
# come is wrong), and proxy-authenticate and proxy-authorization, which
# are for the next hop only (RFC 9110 sections 11.7.1 and 11.7.2).
# ProxyApp drops them, but for transfer-encoding, which it leaves to the
# engine; WSGIApp refuses them from a WSGI app and WSGIWrapper drops them.
HOP_BY_HOP = frozenset(
    [
        'connection',
        'proxy-connection',
        'keep-alive',
        'te',
        'transfer-encoding',
        'upgrade',
        'trailer',
        'proxy-authenticate',
        'proxy-authorization',
    ]
)


def _set_default(headers: 'dict[str, Any]', name: str, value: object) -> None:
    """Set the field *name* to *value* if absent; a given value must agree with it.

    For the fields a sender implies (the client's ``expect`` and ``range``;
    the framing field a body implies): agreeing is being equal, or equal as
    ``str`` ignoring ASCII case, as the values it checks are compared
    (100-continue, RFC 9110 section 10.1.1; the range unit, section 14.1;
    transfer codings, section 10.1.4; digits have no case).

    >>> headers = {'expect': '100-Continue'}
    >>> _set_default(headers, 'expect', '100-continue')
    >>> _set_default(headers, 'content-length', 5)
    >>> headers
    {'expect': '100-Continue', 'content-length': 5}
    >>> _set_default({'content-length': '4'}, 'content-length', 5)
    Traceback (most recent call last):
      ...
    ValueError: 'content-length' mismatch: 5 != '4'
    """
    current = headers.get(name)
    if current is None:
        headers[name] = value
    elif current != value and str(current).lower() != str(value).lower():
        raise ValueError(f'{name!r} mismatch: {value!r} != {current!r}')


# --------------------------------------------------------------------------
# Errors.  Bad bytes from a peer raise ParseError (the parsers below); a bad
# value from the program raises ValueError or TypeError (the constructors and
# renderers), so a server can tell a 4xx from its own bug, a 500.

class ConnectionClosed(ConnectionError):
    """The connection ended before the exchange finished (doc/decisions.rst, 'Exceptions').

    ``unanswered`` is a tuple of ``(method, uri)`` for requests already sent
    whose responses will never arrive, oldest first.

    ``response_started`` is True when some of the response to the request
    (a byte of its preamble, an interim response, its body) had arrived
    before the connection ended, and False when none had.  A request whose
    response never started may be retried if it is idempotent (RFC 9110
    section 9.2.2); once the response started, the server got the request
    and was answering it.
    """

    response_started = False  # also for an instance made without __init__

    def __init__(self, message='', unanswered=(), *, response_started=False):
        super().__init__(message)
        self.unanswered = tuple(unanswered)
        self.response_started = response_started


class EmptyPreambleError(ConnectionClosed):
    """The peer closed the connection before sending any byte of a preamble."""


class ConnectionTimedOut(ConnectionClosed, TimeoutError):
    """A socket operation timed out during an exchange."""


class UnsupportedResponse(ValueError):
    """A well-formed response that degu will not frame (doc/decisions.rst)."""


class ParseError(ValueError):
    """A malformed message: ``status`` and ``reason`` name the response a server answers with
    (400 unless the error says otherwise: 413, 414, 431, 501, 505).

    The parsers raise it, and only it, for any bad bytes from a peer; a plain
    ``ValueError`` or ``TypeError`` is a bad value from the program itself,
    which a server answers with 500.
    """

    def __init__(self, message, status=400, reason='Bad Request'):
        super().__init__(message)
        self.status = status
        self.reason = reason

    def __reduce__(self):
        # args holds the message alone: pickle the status and reason too.
        return (type(self), (str(self), self.status, self.reason))


def _uri_too_long(message):
    return ParseError(message, 414, 'URI Too Long')


def _too_large(message):
    return ParseError(message, 431, 'Request Header Fields Too Large')


def content_too_large(message: str) -> 'ParseError':
    """The error of a body over a limit; a server answers it with 413 (RFC 9110 15.5.14).

    Raised for a request body over ``max_body`` and for a sizeless read
    that would take more than ``MAX_IO_SIZE`` at once.
    """
    return ParseError(message, 413, 'Content Too Large')


def _not_implemented(message):
    return ParseError(message, 501, 'Not Implemented')


def _short(src, limit=32):
    """Truncated repr of peer bytes, for error messages and logs."""
    if len(src) > limit:
        return f'{bytes(src[:limit])!r}...'
    return repr(bytes(src))


# --------------------------------------------------------------------------
# Byte classes (RFC 9110 section 5.6.2, RFC 3986 section 3.3).

#   tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
#           "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
_TCHARS = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_TOKEN_RE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_LOWER_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+")
_STR_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

#   pchar = unreserved / pct-encoded / sub-delims / ":" / "@"
#   unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"
#   sub-delims = "!" / "$" / "&" / "'" / "(" / ")" / "*" / "+" / "," / ";" / "="
# The origin-form target is "/" path and an optional "?" query, where the
# query may also hold "/" and "?": so every byte of it is a pchar, "/" or
# "?", and every "%" starts a two-hex-digit escape.
_TARGET_CHARS = (
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    b"-._~!$&'()*+,;=:@/?%"
)
_BAD_ESCAPE_RE = re.compile(rb'%(?![0-9A-Fa-f]{2})')
_TARGET_TABLE = bytes(0 if b in _TARGET_CHARS else (b or 1) for b in range(256))
# Deviation: the query also takes every other visible ASCII byte but "#"
# (browsers send "{", "}", "|", "^", "\\" and "`" unencoded in a query, and
# nginx and gunicorn accept them); control bytes, SP, obs-text and bad "%"
# escapes stay out.  See doc/decisions.rst.
_QUERY_TABLE = bytes(0 if (0x21 <= b <= 0x7E and b != 0x23) else (b or 1) for b in range(256))

#   absolute-form = absolute-URI ; only http and https, with an authority.
_ABSOLUTE_RE = re.compile(
    rb'(?i:https?)://('
    rb'(?:[A-Za-z0-9\-._~!$&\'()*+,;=%]+|\[[0-9A-Fa-f:.]+\])'  # host
    rb'(?::[0-9]*)?)'  # port
)

#   field-value = *field-content, where field-content holds VCHAR, obs-text,
#   SP and HTAB.  Every other control byte is refused, and so is a CR or LF
#   that is not part of a CRLF line ending (doc/decisions.rst, 'Header fields').
_BAD_FIELD_RE = re.compile(rb'[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)|(?<!\r)\n')
_FIELD_TABLE = bytes(  # HTAB, SP, VCHAR and obs-text -> SP; every other byte -> NUL
    0x20 if (b == 9 or 32 <= b < 127 or b >= 128) else 0 for b in range(256)
)
_BAD_TEXT_RE = re.compile(rb'[\x00-\x08\x0a-\x1f\x7f]')  # one line: no CR or LF at all

_HEXDIGITS = b'0123456789abcdefABCDEF'
_HEX_TABLE = bytes(0 if b in _HEXDIGITS else (b or 1) for b in range(256))  # hex -> NUL


# --------------------------------------------------------------------------
# Range and ContentRange (RFC 9110 section 14): Python slice semantics, stop exclusive.

def _check_length(name, value):
    # Program values only: the parsers check bounds before they construct, so
    # a ValueError here is a bug of ours, never a peer's (a 500, not a 400).
    if type(value) is not int:
        raise TypeError(_TYPE_ERROR.format(name, int, type(value), value))
    if not (0 <= value <= MAX_LENGTH):
        raise ValueError(f'need 0 <= {name} <= {MAX_LENGTH}; got {value}')
    return value


class Range:
    """A single byte range from a ``range`` request header (RFC 9110 section 14.1.2).

    ``Range(start, stop)`` selects bytes ``[start, stop)``, Python slice
    style (stop exclusive).  ``Range(-length, None)`` is a suffix range: the
    last *length* bytes, like ``data[-length:]``.

    >>> r = Range(2, 5)
    >>> r
    Range(2, 5)
    >>> str(r)
    'bytes=2-4'
    >>> r.content_range(4)
    ContentRange(2, 4, 4)
    >>> suffix = Range(-3, None)
    >>> str(suffix)
    'bytes=-3'
    >>> suffix.content_range(10)
    ContentRange(7, 10, 10)
    """

    __slots__ = ('_start', '_stop')

    def __init__(self, start: int, stop: int | None) -> None:
        if stop is None:
            if type(start) is not int:
                raise TypeError(_TYPE_ERROR.format('start', int, type(start), start))
            if not (-MAX_LENGTH <= start <= -1):
                raise ValueError(f'need -{MAX_LENGTH} <= start <= -1 for a suffix; got {start}')
        else:
            _check_length('start', start)
            _check_length('stop', stop)
            if start >= stop:
                raise ValueError(f'need start < stop; got {start} >= {stop}')
        self._start = start
        self._stop = stop

    @property
    def start(self) -> int:
        return self._start

    @property
    def stop(self) -> int | None:
        return self._stop

    def __repr__(self) -> str:
        return f'Range({self._start}, {self._stop})'

    def __str__(self) -> str:
        if self._stop is None:
            return f'bytes={self._start}'
        return f'bytes={self._start}-{self._stop - 1}'

    def __eq__(self, other: object) -> bool:
        if type(other) is Range:
            return self._start == other._start and self._stop == other._stop
        if type(other) is str:
            return str(self) == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash((Range, self._start, self._stop))

    def _bounds(self, total):
        # [start, stop) within a representation of *total* bytes; a range
        # that selects nothing is unsatisfiable (RFC 9110 section 14.1.1).
        # A ValueError: the request parsed fine, the app decides (416).
        _check_length('total', total)
        if self._stop is None:
            if total == 0:
                raise ValueError(f'{self!r} out of bounds (total={total})')
            return (max(0, total + self._start), total)
        if self._start >= total:
            raise ValueError(f'{self!r} out of bounds (total={total})')
        return (self._start, min(self._stop, total))

    def content_length(self, total: int) -> int:
        """Bytes this range selects from a representation of *total* bytes."""
        (start, stop) = self._bounds(total)
        return stop - start

    def content_range(self, total: int) -> 'ContentRange':
        """The ``ContentRange`` answering this range for *total* bytes."""
        (start, stop) = self._bounds(total)
        return ContentRange(start, stop, total)


class ContentRange:
    """A ``content-range`` value: bytes ``[start, stop)`` of *total*.

    *total* is ``None`` when the sender does not know it (``bytes 2-4/*``).

    >>> cr = ContentRange(2, 5, 7)
    >>> str(cr)
    'bytes 2-4/7'
    >>> cr == 'bytes 2-4/7'
    True
    >>> str(ContentRange(0, 5, None))
    'bytes 0-4/*'
    """

    __slots__ = ('_start', '_stop', '_total')

    def __init__(self, start: int, stop: int, total: int | None) -> None:
        _check_length('start', start)
        _check_length('stop', stop)
        if total is None:
            if not start < stop:
                raise ValueError(f'need start < stop; got {(start, stop)!r}')
        else:
            _check_length('total', total)
            if not (start < stop <= total):
                raise ValueError(f'need start < stop <= total; got {(start, stop, total)!r}')
        self._start = start
        self._stop = stop
        self._total = total

    @property
    def start(self) -> int:
        return self._start

    @property
    def stop(self) -> int:
        return self._stop

    @property
    def total(self) -> int | None:
        return self._total

    def __repr__(self) -> str:
        return f'ContentRange({self._start}, {self._stop}, {self._total})'

    def __str__(self) -> str:
        total = '*' if self._total is None else self._total
        return f'bytes {self._start}-{self._stop - 1}/{total}'

    def __eq__(self, other: object) -> bool:
        if type(other) is ContentRange:
            return (self._start, self._stop, self._total) == (
                other._start,
                other._stop,
                other._total,
            )
        if type(other) is str:
            return str(self) == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash((ContentRange, self._start, self._stop, self._total))


# --------------------------------------------------------------------------
# The request line (RFC 9112 section 3):
#
#   request-line   = method SP request-target SP HTTP-version
#   request-target = origin-form / absolute-form / authority-form / asterisk-form
#   HTTP-version   = "HTTP/" DIGIT "." DIGIT

_METHODS = {m.encode(): m for m in METHODS}
_VERSIONS = {b'HTTP/1.1': 'HTTP/1.1', b'HTTP/1.0': 'HTTP/1.0'}
_VERSION_RE = re.compile(rb'HTTP/([0-9])\.([0-9])')


def parse_method(src: bytes) -> str:
    """One of the seven ``METHODS``; another token is a 501, anything else a 400.

    >>> parse_method(b'GET')
    'GET'
    """
    method = _METHODS.get(src)
    if method is not None:
        return method
    if _TOKEN_RE.fullmatch(src):
        raise _not_implemented(f'unsupported method: {_short(src)}')
    raise ParseError(f'bad method: {_short(src)}')


def parse_version(src: bytes) -> str:
    """``'HTTP/1.1'`` or ``'HTTP/1.0'``; later 1.x minors count as 1.1 (RFC 9110 2.5).

    >>> parse_version(b'HTTP/1.9')
    'HTTP/1.1'
    """
    version = _VERSIONS.get(src)
    if version is not None:
        return version
    m = _VERSION_RE.fullmatch(src)
    if m is None:
        raise ParseError(f'bad HTTP version: {_short(src)}')
    if m.group(1) == b'1':
        return 'HTTP/1.1'
    raise ParseError(f'unsupported HTTP version: {_short(src)}', 505, 'HTTP Version Not Supported')


def _parse_origin(src):
    # src starts with b'/': check the bytes, then the escapes, decode last.
    # translate() with a table maps every allowed byte to NUL (a per-call
    # delete set would build its table on every call).
    q = src.find(b'?')
    if q < 0:
        if src.translate(_TARGET_TABLE).count(0) != len(src):
            raise ParseError(f'bad request-target: {_short(src)}')
    elif (
        src[:q].translate(_TARGET_TABLE).count(0) != q
        or src[q:].translate(_QUERY_TABLE).count(0) != len(src) - q
    ):
        raise ParseError(f'bad request-target: {_short(src)}')
    if b'%' in src and _BAD_ESCAPE_RE.search(src):
        raise ParseError(f'bad percent-encoding in request-target: {_short(src)}')
    uri = src.decode('ascii')
    path, sep, query = uri.partition('?')
    if path == '/':
        return (uri, [], query if sep else None)
    if '//' in path:
        raise ParseError(f"b'//' in path: {_short(src)}")
    components = path[1:].split('/')
    if '..' in components or '.' in components:
        raise ParseError(f'dot segment in path: {_short(src)}')
    return (uri, components, query if sep else None)


# Memoized parsers.  Clients repeat themselves (the same endpoints, the same
# header block on every request of a connection), and a parse costs dozens
# of interpreter operations where a dict lookup costs one.  The caches hold
# what the pure functions returned for small inputs only, are cleared when
# full (so a peer sending endless variety costs an insert and a rare clear),
# and never hold anything a caller can mutate.
#
# What each cache buys, in instructions per request of benchmarks/hotpath.py
# under callgrind (server 64,000, client 66,000 with every cache on):
#   _TARGETS       request-targets            server 13,900 (22 %)
#   _BLOCKS        header blocks              server 32,900 (51 %), client 17,300 (26 %)
#   _NAME_CACHE    header names, when a block misses: server 20,100 (21 %)
#   _STATUS_LINE_CACHE  status lines parsed   client 9,400 (14 %)
#   _LINES         rendered field lines       server 7,000 (11 %), client 17,700 (27 %)
#   _GOOD_NAMES    checked names, when a line misses: server 2,400 (3 %)
#   _STATUS_LINES  rendered status lines      server 5,800 (9 %)
_CACHE_ENTRIES = 1024  # per cache
_TARGET_CACHE_LEN = 256  # bytes: longer request-targets are parsed every time
_BLOCK_CACHE_LEN = 1024  # bytes: longer header blocks are parsed every time
_TARGETS: 'dict[bytes, tuple[str, tuple[str, ...], str | None]]' = {}
_BLOCKS: 'dict[tuple[bytes, bool, int], dict[str, Any]]' = {}


def _target(src):
    """``_parse_origin(src)``, remembered, with the path as a tuple."""
    (uri, path, query) = _parse_origin(src)
    parsed = (uri, tuple(path), query)
    if len(src) <= _TARGET_CACHE_LEN:
        if len(_TARGETS) >= _CACHE_ENTRIES:
            _TARGETS.clear()
        _TARGETS[src] = parsed
    return parsed


def parse_uri(src: bytes) -> 'tuple[str, list[str], str | None]':
    """Parse a request-target into ``(uri, path, query)``.

    Origin-form is taken as is; path components stay percent-encoded.
    An absolute-form target gives the values of its origin part.  The
    asterisk-form is the caller's business (only ``OPTIONS *`` allows it).

    >>> parse_uri(b'/foo/bar?k=v')
    ('/foo/bar?k=v', ['foo', 'bar'], 'k=v')
    >>> parse_uri(b'/foo/')
    ('/foo/', ['foo', ''], None)
    >>> parse_uri(b'http://example.com:8080/a%20b?')
    ('/a%20b?', ['a%20b'], '')
    """
    if src[:1] == b'/':
        return _parse_origin(src)
    m = _ABSOLUTE_RE.match(src)
    if m is None:
        raise ParseError(f'bad request-target: {_short(src)}')
    rest = src[m.end() :]
    if rest[:1] != b'/':
        if rest[:1] not in (b'', b'?'):
            raise ParseError(f'bad request-target: {_short(src)}')
        rest = b'/' + rest
    return _parse_origin(rest)


def parse_request_line(line: bytes) -> 'tuple[str, str, list[str], str | None, str]':
    """Parse a request line into ``(method, uri, path, query, version)``.

    >>> parse_request_line(b'GET /a/b?c HTTP/1.1')
    ('GET', '/a/b?c', ['a', 'b'], 'c', 'HTTP/1.1')
    >>> parse_request_line(b'OPTIONS * HTTP/1.1')
    ('OPTIONS', '*', [], None, 'HTTP/1.1')
    """
    if len(line) > MAX_REQUEST_LINE_LEN:
        raise _uri_too_long(f'request line too long: {len(line)} > {MAX_REQUEST_LINE_LEN}')
    parts = line.split(b' ')
    if len(parts) != 3:
        raise ParseError(f'bad request line: {_short(line)}')
    (msrc, target, vsrc) = parts
    # The common case in three dict lookups and a slice; the rest says why not.
    method = _METHODS.get(msrc)
    version = _VERSIONS.get(vsrc)
    if method is not None and version is not None and target[:1] == b'/':
        parsed = _TARGETS.get(target) or _target(target)
        # A fresh path list every time: apps shift_path() it.
        return (method, parsed[0], list(parsed[1]), parsed[2], version)
    method = parse_method(msrc)
    version = parse_version(vsrc)
    if not target:
        raise ParseError(f'bad request line: {_short(line)}')
    if target == b'*':
        if method != 'OPTIONS':
            raise ParseError(f"request-target '*' with method {method!r}")
        return (method, '*', [], None, version)
    return (method, *parse_uri(target), version)


# --------------------------------------------------------------------------
# The status line (RFC 9112 section 4):
#
#   status-line = HTTP-version SP status-code SP [ reason-phrase ]
#   reason-phrase = 1*( HTAB / SP / VCHAR / obs-text )

_STATUS_RE = re.compile(rb'([1-5][0-9][0-9])(?: (.*))?', re.DOTALL)
# Status lines seen before -> (version, status, reason); bounded.
_STATUS_LINE_CACHE: 'dict[bytes, tuple[str, int, str]]' = {}
_STATUS_LINE_CACHE_MAX = 64


def parse_response_line(line: bytes) -> 'tuple[str, int, str]':
    """Parse a status line into ``(version, status, reason)``.

    An empty reason phrase is fine; a missing SP before it is tolerated.
    Status lines seen before are remembered (64 of them): servers repeat a
    handful.

    >>> parse_response_line(b'HTTP/1.1 200 OK')
    ('HTTP/1.1', 200, 'OK')
    >>> parse_response_line(b'HTTP/1.0 204 ')
    ('HTTP/1.0', 204, '')
    """
    parsed = _STATUS_LINE_CACHE.get(line)
    if parsed is not None:
        return parsed
    version = parse_version(line[:8])
    if line[8:9] != b' ':
        raise ParseError(f'bad status line: {_short(line)}')
    m = _STATUS_RE.fullmatch(line, 9)
    if m is None:
        raise ParseError(f'bad status: {_short(line[9:])}')
    rsrc = m.group(2) or b''
    if _BAD_TEXT_RE.search(rsrc):
        raise ParseError(f'bad reason phrase: {_short(rsrc)}')
    parsed = (version, int(m.group(1)), rsrc.decode('latin-1'))
    if len(line) <= 64:
        if len(_STATUS_LINE_CACHE) >= _STATUS_LINE_CACHE_MAX:
            _STATUS_LINE_CACHE.clear()  # like the other caches: a new set can settle in
        _STATUS_LINE_CACHE[line] = parsed
    return parsed


# --------------------------------------------------------------------------
# Header fields (RFC 9112 section 5; doc/decisions.rst, 'Header fields'):
#
#   field-line = field-name ":" OWS field-value OWS
#   field-name = token

# Framing and routing fields whose repetition could let two parsers disagree
# about the message: a repeat is a 400, never a join.
_SINGLE = frozenset(['content-length', 'transfer-encoding', 'host', 'range', 'content-range'])

# Folded names of fields seen before, keyed by their raw bytes: a valid name
# is checked once, then found with one dict lookup.  Bounded.
_NAME_CACHE: 'dict[bytes, str]' = {}
_NAME_CACHE_MAX = 512


def parse_header_name(src: bytes) -> str:
    """A field name, case-folded to a lower-case ``str``.

    >>> parse_header_name(b'Content-Type')
    'content-type'
    """
    name = _NAME_CACHE.get(src)
    if name is not None:
        return name
    if not _TOKEN_RE.fullmatch(src):
        if not src:
            raise ParseError('empty header name')
        if src[0] in b' \t':
            raise ParseError(f'obs-fold or leading whitespace in header line: {_short(src)}')
        if src.rstrip(b' \t') != src:
            raise ParseError(f'whitespace before colon in header name: {_short(src)}')
        raise ParseError(f'bad header name: {_short(src)}')
    name = src.decode('ascii').lower()
    if len(_NAME_CACHE) < _NAME_CACHE_MAX:
        _NAME_CACHE[src] = name
    return name


def parse_content_length(src: bytes) -> int:
    """1 to 16 decimal digits; leading zeros are allowed, lists are not (doc/decisions.rst).

    >>> parse_content_length(b'0017')
    17
    """
    if len(src) > MAX_CL_LEN:
        raise ParseError(f'content-length too long: {_short(src, MAX_CL_LEN)}')
    if not src.isdigit():  # ASCII digits only, at least one
        raise ParseError(f'bad content-length: {_short(src)}')
    return int(src)


def parse_transfer_encoding(src: bytes) -> str:
    """Exactly ``chunked`` (any case); another coding or a list is a 501 (RFC 9112 6.1).

    >>> parse_transfer_encoding(b'Chunked')
    'chunked'
    """
    if src.lower() == b'chunked':
        return 'chunked'
    if not src:
        raise ParseError('empty transfer-encoding')
    raise _not_implemented(f'unsupported transfer-encoding: {_short(src)}')


#   Range        = ranges-specifier
#   ranges-specifier = range-unit "=" range-set
#   range-set    = 1#range-spec
#   range-spec   = int-range / suffix-range / other-range
#   int-range    = first-pos "-" [ last-pos ]
#   suffix-range = "-" suffix-length
_RANGE_RE = re.compile(rb'bytes=([0-9]{1,16})-([0-9]{1,16})?|bytes=-([0-9]{1,16})')
#   Content-Range = range-unit SP ( range-resp / unsatisfied-range )
#   range-resp    = incl-range "/" ( complete-length / "*" )
_CONTENT_RANGE_RE = re.compile(rb'bytes ([0-9]{1,16})-([0-9]{1,16})/(?:([0-9]{1,16})|\*)')
_UNSATISFIED_RE = re.compile(rb'bytes \*/([0-9]{1,16})')


def parse_range(src: bytes) -> Range:
    """One ``bytes=`` range: ``first-last``, ``first-`` or the suffix ``-length``.

    An open-ended range (what browsers and media players send) runs to
    ``MAX_LENGTH``, which ``Range.content_range(total)`` clamps to the end of
    the representation; a suffix range is ``Range(-length, None)``.  Anything
    else raises ``ParseError``: another unit, several ranges, a last byte
    before the first, ``bytes=-0``.  The server drops a ``range`` it cannot
    parse, as if absent (RFC 9110 section 14.2): see doc/decisions.rst.

    >>> parse_range(b'bytes=0-99')
    Range(0, 100)
    >>> parse_range(b'bytes=100-').content_range(150)
    ContentRange(100, 150, 150)
    >>> parse_range(b'bytes=-500')
    Range(-500, None)
    """
    m = _RANGE_RE.fullmatch(src)
    if m is not None:
        (first, last, suffix) = m.groups()
        if suffix is not None:
            length = int(suffix)
            if length:
                return Range(-length, None)
        else:
            start = int(first)
            if last is None:
                if start < MAX_LENGTH:
                    return Range(start, MAX_LENGTH)
            else:
                end = int(last)
                if start <= end < MAX_LENGTH:
                    return Range(start, end + 1)
    raise ParseError(f'bad range: {_short(src)}')


def parse_request_range(src: 'bytes | str') -> 'Range | None':
    """A request's ``range`` as the server takes it: a ``Range``, or ``None`` to ignore.

    RFC 9110 section 14.2: a range the server does not take (several ranges,
    another unit, bad syntax) is ignored as if absent.  The server's header
    parser, ``degu.misc.mkreq()`` and the WSGI adapter all go through here.

    >>> parse_request_range(b'bytes=-5')
    Range(-5, None)
    >>> parse_request_range('bytes=0-1,5-6') is None
    True
    """
    try:
        return parse_range(src.encode('latin-1') if type(src) is str else src)
    except (ParseError, UnicodeEncodeError):  # not ValueError: a bug of ours must not hide
        return None


def parse_content_range(src: bytes) -> 'ContentRange | str':
    """``bytes FIRST-LAST/TOTAL`` (or ``/*``) as a ``ContentRange``.

    The unsatisfied-range form ``bytes */TOTAL`` of a 416 response stays a
    ``str`` (there is no range to represent).

    >>> parse_content_range(b'bytes 0-99/1000')
    ContentRange(0, 100, 1000)
    >>> parse_content_range(b'bytes 0-4/*')
    ContentRange(0, 5, None)
    >>> parse_content_range(b'bytes */1000')
    'bytes */1000'
    """
    m = _CONTENT_RANGE_RE.fullmatch(src)
    if m is not None:
        start = int(m.group(1))
        end = int(m.group(2))
        if m.group(3) is None:
            if start <= end < MAX_LENGTH:
                return ContentRange(start, end + 1, None)
        else:
            total = int(m.group(3))
            if start <= end < total <= MAX_LENGTH:
                return ContentRange(start, end + 1, total)
    else:
        m = _UNSATISFIED_RE.fullmatch(src)
        if m is not None and int(m.group(1)) <= MAX_LENGTH:
            return src.decode('ascii')
    raise ParseError(f'bad content-range: {_short(src)}')


#   Host       = uri-host [ ":" port ]        (RFC 9112 section 3.2)
#   uri-host   = IP-literal / IPv4address / reg-name
#   IP-literal = "[" ( IPv6address / IPvFuture ) "]"
#   reg-name   = *( unreserved / pct-encoded / sub-delims )
#   port       = *DIGIT
_HOST_RE = re.compile(
    rb"(?:\[(?:[0-9A-Fa-f:.]+|v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+)\]"
    rb"|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*)"
    rb"(?::[0-9]*)?"
)


def parse_host(src: bytes) -> str:
    """A ``host`` value: ``uri-host [":" port]``, possibly empty (RFC 9112 3.2).

    >>> parse_host(b'[::1]:8080')
    '[::1]:8080'
    >>> parse_host(b'user@example.com')
    Traceback (most recent call last):
      ...
    degu._parse.ParseError: bad host: b'user@example.com'
    """
    if not _HOST_RE.fullmatch(src):
        raise ParseError(f'bad host: {_short(src)}')
    return src.decode('ascii')


def parse_authority(target: bytes) -> str | None:
    """The authority of an absolute-form request-target, ``None`` for other forms.

    >>> parse_authority(b'http://example.com:8080/a?b')
    'example.com:8080'
    >>> parse_authority(b'/a') is None
    True
    """
    m = _ABSOLUTE_RE.match(target)
    if m is None:
        return None
    return m.group(1).decode('ascii')


_VALUE_PARSERS = {
    'content-length': parse_content_length,
    'transfer-encoding': parse_transfer_encoding,
    'range': parse_range,
    'content-range': parse_content_range,
    'host': parse_host,
}


def parse_headers(
    src: bytes, isresponse: bool = False, max_count: int = MAX_HEADER_COUNT
) -> 'dict[str, Any]':
    """Parse a header block (lines joined by CRLF, no trailing CRLF) into a dict.

    Names are folded to lower case, values have optional whitespace stripped
    and are decoded as latin-1.  ``content-length`` becomes an ``int``,
    ``range`` a ``Range``, ``content-range`` a ``ContentRange``; a field given
    twice is joined with ``', '``, except the framing and routing fields,
    whose repetition is an error.  Every call returns a new dict.

    >>> parse_headers(b'Content-Length: 5\\r\\nAccept: a\\r\\naccept:  b ')
    {'content-length': 5, 'accept': 'a, b'}
    """
    if len(src) > _BLOCK_CACHE_LEN:
        return _parse_headers(src, isresponse, max_count)
    key = (src, isresponse, max_count)
    headers = _BLOCKS.get(key)
    if headers is None:
        headers = _parse_headers(src, isresponse, max_count)
        if len(_BLOCKS) >= _CACHE_ENTRIES:
            _BLOCKS.clear()
        _BLOCKS[key] = headers.copy()  # the caller may change its dict
        return headers
    return headers.copy()


def _parse_headers(src, isresponse, max_count, plain=False):
    # The parser behind parse_headers(), without the cache.  plain: check
    # the field syntax only (no value parsers, no repetition rules), for
    # trailer fields, which are dropped.
    headers: 'dict[str, Any]' = {}
    if not src:
        return headers
    lines = src.split(b'\r\n')
    count = len(lines)
    if count > max_count:
        raise _too_large(f'too many header fields: {count} > {max_count}')
    # Two C-level passes: the table maps every allowed byte to SP and the
    # rest (CR and LF included) to NUL, so the NULs must be exactly the
    # CRLFs between the lines; anything else is a control byte or a bare CR
    # or LF (and the regex below says which, for the message).
    if src.translate(_FIELD_TABLE).count(0) != 2 * count - 2:
        m = _BAD_FIELD_RE.search(src)
        assert m is not None  # the table and the regex say the same
        raise ParseError(f'bad byte in header block: {bytes(m.group())!r}')
    special = False
    for line in lines:
        (nsrc, colon, vsrc) = line.partition(b':')
        name = _NAME_CACHE.get(nsrc) or parse_header_name(nsrc)
        if not colon:
            raise ParseError(f'header line without a colon: {_short(line)}')
        vsrc = vsrc.strip(b' \t')
        if plain:
            continue
        if name in headers:
            if name in _SINGLE:
                raise ParseError(f'duplicate header: {name!r}')
            # RFC 9110 section 5.3: a repeat is one list; empty members
            # count for nothing (section 5.6.1), so none is joined.
            if vsrc:
                value = headers[name]
                headers[name] = value + ', ' + vsrc.decode('latin-1') if value else (
                    vsrc.decode('latin-1')
                )
        elif name in _VALUE_PARSERS:
            if name == 'content-length' and vsrc.isdigit() and len(vsrc) <= MAX_CL_LEN:
                headers[name] = int(vsrc)  # parse_content_length(), inlined
            elif isresponse and (name == 'range' or name == 'host'):
                headers[name] = vsrc.decode('latin-1')  # meaningless here: kept as text
            elif name == 'range':
                headers[name] = parse_request_range(vsrc)  # None: dropped below
            else:
                headers[name] = _VALUE_PARSERS[name](vsrc)
            special = True
        else:
            headers[name] = vsrc.decode('latin-1')
    if special:
        _check_header_combinations(headers, isresponse)
    return headers


def _check_header_combinations(headers, isresponse):
    if 'content-length' in headers and 'transfer-encoding' in headers:
        raise ParseError('cannot have both content-length and transfer-encoding headers')
    if 'range' in headers and headers['range'] is None:
        del headers['range']
    if 'content-range' in headers and not isresponse:
        raise ParseError("request cannot include a 'content-range' header")


def parse_trailer_line(src: bytes) -> None:
    """Check one trailer field line (without its CRLF); trailers are then dropped.

    The field syntax is that of the header section (RFC 9112 section 7.1.2);
    no value is interpreted, so a ``content-range`` trailer is as good as
    any other.

    >>> parse_trailer_line(b'Expires: never')
    """
    _parse_headers(src, False, 1, True)


def parse_tokens(value: str) -> 'list[str]':
    """A comma-separated field value as lower-case items (RFC 9110 5.6.1).

    For ``connection`` and its like; empty items stay (``'a,,b'`` has three).

    >>> parse_tokens('Keep-Alive, Upgrade')
    ['keep-alive', 'upgrade']
    """
    return [token.strip() for token in value.lower().split(',')]


# --------------------------------------------------------------------------
# Chunk lines (RFC 9112 section 7.1; doc/decisions.rst, 'Chunked bodies'):
#
#   chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
#   chunk-size     = 1*HEXDIG
#   chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
#   chunk-ext-val  = token / quoted-string
#   quoted-string  = DQUOTE *( qdtext / quoted-pair ) DQUOTE
#
# Deviation: a chunk size has at most 16 hex digits (leading zeros included)
# and a value of at most 16 MiB: a bounded size keeps memory bounded.

_EXT_RE = re.compile(
    rb"[ \t]*;[ \t]*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)"
    rb"(?:[ \t]*=[ \t]*(?:([!#$%&'*+\-.^_`|~0-9A-Za-z]+)"
    rb'|"((?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*)"))?'
)
_QUOTED_PAIR_RE = re.compile(rb'\\(.)', re.DOTALL)


def parse_chunk_size(src: bytes) -> int:
    """1 to 16 hex digits (leading zeros allowed), at most ``MAX_IO_SIZE``.

    >>> parse_chunk_size(b'1e')
    30
    >>> parse_chunk_size(b'005')
    5
    """
    if len(src) > MAX_CHUNK_SIZE_LEN:
        raise ParseError(f'chunk_size is too long: {_short(src, MAX_CHUNK_SIZE_LEN)}')
    if not src or src.translate(_HEX_TABLE).count(0) != len(src):
        raise ParseError(f'bad chunk_size: {_short(src)}')
    size = int(src, 16)
    if size > MAX_IO_SIZE:
        raise ParseError(f'need chunk_size <= {MAX_IO_SIZE}; got {size}')
    return size


def parse_chunk_extension(src: bytes) -> 'tuple[str, str] | None':
    """Parse the extensions after a chunk size; ``b''`` gives ``None``.

    The first ``name=value`` pair is returned as a ``(str, str)`` tuple;
    later ones are checked and dropped.  A quoted value comes back unquoted,
    a bare name gives ``(name, '')``.

    >>> parse_chunk_extension(b';name="a \\\\"b\\\\""')
    ('name', 'a "b"')
    >>> parse_chunk_extension(b' ; flag')
    ('flag', '')
    """
    if not src:
        return None
    first = None
    pos = 0
    end = len(src)
    while pos < end:
        m = _EXT_RE.match(src, pos)
        if m is None:
            raise ParseError(f'bad chunk extension: {_short(src)}')
        if first is None:
            (name, token, quoted) = m.groups()
            if token is not None:
                value = token.decode('ascii')
            elif quoted is not None:
                value = _QUOTED_PAIR_RE.sub(rb'\1', quoted).decode('latin-1')
            else:
                value = ''
            first = (name.decode('ascii'), value)
        pos = m.end()
    return first


def parse_chunk(line: bytes) -> 'tuple[int, tuple[str, str] | None]':
    """Parse a chunk-size line (without its CRLF) into ``(size, extension)``.

    >>> parse_chunk(b'5;key=value')
    (5, ('key', 'value'))
    """
    i = line.find(b';')
    if i < 0:
        return (parse_chunk_size(line), None)
    return (parse_chunk_size(line[:i].rstrip(b' \t')), parse_chunk_extension(line[i:]))


def chunk_end(buf: 'bytes | bytearray', pos: int, stop: int) -> 'int | None':
    """Where the chunk at ``buf[pos]`` ends, or ``None`` if ``buf[:stop]`` lacks some of it.

    A data chunk ends after the CRLF that follows its data; the last chunk
    after its trailer section.  Only the chunk line is parsed (a
    ``ParseError`` when it is bad, or longer than ``MAX_LINE_LEN``, or when
    the data's CRLF is missing); nothing is copied.  For a reader deciding
    whether a chunk has arrived before it reads it.

    >>> chunk_end(b'5\\r\\nhello\\r\\n0\\r\\n\\r\\n', 0, 15)
    10
    >>> chunk_end(b'5\\r\\nhello\\r\\n0\\r\\n\\r\\n', 10, 15)
    15
    >>> chunk_end(b'5\\r\\nhel', 0, 6) is None
    True
    """
    eol = buf.find(b'\r\n', pos, stop)
    if eol < 0:
        if stop - pos >= MAX_LINE_LEN:
            raise ParseError(f'chunk line too long: {_short(buf[pos:pos + MAX_LINE_LEN])}')
        return None
    (size, _) = parse_chunk(bytes(buf[pos:eol]))
    if not size:
        # The trailer section ends with an empty line: CRLF CRLF, counting
        # the chunk line's own CRLF when there are no trailer fields.
        end = buf.find(b'\r\n\r\n', eol, stop)
        return None if end < 0 else end + 4
    end = eol + size + 4
    if end > stop:
        return None
    if buf[end - 2 : end] != b'\r\n':
        raise ParseError(f'bad chunk data termination: {bytes(buf[end - 2 : end])!r}')
    return end


# --------------------------------------------------------------------------
# Renderers.  Everything we send stays strict and canonical: names are
# lower-case tokens, values hold no control byte but HTAB and no leading or
# trailing whitespace, nothing can end a line early (header injection).

_GOOD_NAMES: 'set[str]' = set()  # names already checked, so the hot path skips the regex
_GOOD_NAMES_MAX = 512
_BAD_VALUE_RE = re.compile(r'[\x00-\x08\x0a-\x1f\x7f]|^[ \t]|[ \t]$')


def _check_name(name):
    if name in _GOOD_NAMES:
        return name
    if type(name) is not str:
        raise TypeError(_TYPE_ERROR.format('header name', str, type(name), name))
    if not _LOWER_TOKEN_RE.fullmatch(name):
        raise ValueError(f'bad header name: {name!r}')
    if len(_GOOD_NAMES) < _GOOD_NAMES_MAX:
        _GOOD_NAMES.add(name)
    return name


def fold_names(headers: 'dict[str, Any]') -> 'dict[str, Any]':
    """*headers* with its field names folded to lower case (RFC 9110 5.1: case-insensitive).

    Returns *headers* itself when every name is lower-case already (a name
    checked before is one set lookup), else a new dict: the caller's dict
    is never changed.  Only ASCII names are folded: ``str.lower()`` maps
    some non-ASCII letters to ASCII ones (the Kelvin sign to ``k``), which
    would let a name the renderer refuses pass as another.  Two names that
    fold to the same one are a ``ValueError``.

    >>> fold_names({'X-Token': 'secret', 'accept': '*/*'})
    {'x-token': 'secret', 'accept': '*/*'}
    """
    if headers.keys() <= _GOOD_NAMES:
        return headers
    for name in headers:
        if type(name) is str and name.isascii() and name.lower() != name:
            break
    else:
        # Lower-case (the renderer checks the rest).  Names that are tokens
        # join the checked ones here too: the C renderer does not add them,
        # and without this a client on the C core folded every request's
        # names again (2,200 instructions per request, callgrind over
        # benchmarks/hotpath.py).
        for name in headers:
            if name not in _GOOD_NAMES and len(_GOOD_NAMES) < _GOOD_NAMES_MAX and (
                type(name) is str and _LOWER_TOKEN_RE.fullmatch(name)
            ):
                _GOOD_NAMES.add(name)
        return headers
    folded: 'dict[str, Any]' = {}
    given: 'dict[str, Any]' = {}
    for (name, value) in headers.items():
        key = name.lower() if type(name) is str and name.isascii() else name
        if key in folded:
            raise ValueError(
                f'header names {given[key]!r} and {name!r} are the same field {key!r}'
            )
        folded[key] = value
        given[key] = name
    return folded


def _check_headers(headers):
    if type(headers) is not dict:
        raise TypeError(_TYPE_ERROR.format('headers', dict, type(headers), headers))
    if len(headers) > MAX_HEADER_COUNT:
        raise ValueError(f'need len(headers) <= {MAX_HEADER_COUNT}; got {len(headers)}')
    if 'content-length' in headers and 'transfer-encoding' in headers:
        raise ValueError('cannot have both content-length and transfer-encoding headers')


def _values(name, value):
    # A list value is a field sent once per item (Set-Cookie, RFC 6265 3).
    if not value or name in _SINGLE:
        raise ValueError(f'bad list value for header {name!r}: {value!r}'[:200])
    return value


# (name, value) -> its checked field line; cleared when full
_LINES: 'dict[tuple[str, str], str]' = {}
_LINES_MAX = 1024
_LINE_VALUE_MAX = 256  # longer values are checked every time, not kept


def _line(name, value):
    """The field line ``'\\r\\nname: value'`` for a ``str`` *value*, checked."""
    line = _LINES.get((name, value))
    if line is None:
        _check_name(name)
        if _BAD_VALUE_RE.search(value):
            raise ValueError(f'bad header value: {name!r}: {value[:64]!r}')
        _latin1(name, value)
        line = f'\r\n{name}: {value}'
        if len(value) <= _LINE_VALUE_MAX:
            if len(_LINES) >= _LINES_MAX:
                _LINES.clear()
            _LINES[(name, value)] = line
    return line


def _header_lines(headers):
    """``(text, count)``: the header lines sorted by name, and how many there are.

    Every line is checked on its own (and remembered, so a repeated field
    costs one dict lookup): the name a lower-case token, the value
    ``str(value)`` without control bytes (but HTAB), without leading or
    trailing whitespace, and latin-1.  An ``int`` value needs no check.
    """
    if type(headers) is not dict or len(headers) > MAX_HEADER_COUNT or (
        'content-length' in headers and 'transfer-encoding' in headers
    ):
        _check_headers(headers)  # raises, saying which
    parts = []
    for name in sorted(headers):
        value = headers[name]
        vtype = type(value)
        if vtype is str:
            parts.append(_line(name, value))
        elif vtype is list:
            # !s: the value sent is str(value), the one checked, even for an
            # object whose __format__ says something else (header injection).
            parts.extend([_line(name, f'{item!s}') for item in _values(name, value)])
        else:
            parts.append(_line(name, f'{value!s}'))
    if len(parts) > MAX_HEADER_COUNT:  # list values: count the lines a peer will count
        raise ValueError(f'need at most {MAX_HEADER_COUNT} header lines; got {len(parts)}')
    return (''.join(parts), len(parts))


def render_headers(headers: 'dict[str, Any]') -> str:
    """The header lines, sorted by name, each preceded by CRLF, as a ``str``.

    A ``list`` value is sent as one field line per item (for ``set-cookie``).

    >>> render_headers({'b': 2, 'a': '1', 'set-cookie': ['x=1', 'y=2']})
    '\\r\\na: 1\\r\\nb: 2\\r\\nset-cookie: x=1\\r\\nset-cookie: y=2'
    """
    return _header_lines(headers)[0]


def _latin1(name, value):
    try:
        value.encode('latin-1')
    except UnicodeEncodeError:
        raise ValueError(f'{name}: not latin-1: {value[:64]!r}') from None




def render_request(method: str, uri: str, headers: 'dict[str, Any]') -> bytes:
    """The request preamble, CRLFCRLF included.

    >>> render_request('GET', '/', {'host': 'example.com'})
    b'GET / HTTP/1.1\\r\\nhost: example.com\\r\\n\\r\\n'
    """
    _check_method(method)
    if type(uri) is not str:
        raise TypeError(_TYPE_ERROR.format('uri', str, type(uri), uri))
    # Visible ASCII only (no space, no control byte): the same as [!-~]+.
    if not (uri.isascii() and uri.isprintable()) or ' ' in uri or not uri:
        raise ValueError(f'bad uri: {uri[:64]!r}')
    return f'{method} {uri} HTTP/1.1{_header_lines(headers)[0]}\r\n\r\n'.encode('latin-1')


def render_response(
    status: int, reason: str, headers: 'dict[str, Any]', extra: str = ''
) -> bytes:
    """The response preamble, CRLFCRLF included.

    *extra* is field lines the caller rendered itself (each starting with
    CRLF), sent after those of *headers*: the server's own date, framing
    and connection lines, which never go into an app's dict.

    >>> render_response(200, 'OK', {'content-length': 2})
    b'HTTP/1.1 200 OK\\r\\ncontent-length: 2\\r\\n\\r\\n'
    """
    # Cached by value, so the types are checked first (200.0 == 200).
    line = None
    if type(status) is int and type(reason) is str:
        line = _STATUS_LINES.get((status, reason))
    if line is None:
        line = _status_line(status, reason)
    if not headers and type(headers) is dict:
        return f'{line}{extra}\r\n\r\n'.encode('latin-1')
    return f'{line}{_header_lines(headers)[0]}{extra}\r\n\r\n'.encode('latin-1')


# (status, reason) -> checked status line; bounded
_STATUS_LINES: 'dict[tuple[int, str], str]' = {}
_STATUS_LINES_MAX = 256


def _status_line(status, reason):
    if type(status) is not int:
        raise TypeError(_TYPE_ERROR.format('status', int, type(status), status))
    if not (100 <= status <= 599):
        raise ValueError(f'need 100 <= status <= 599; got {status}')
    if type(reason) is not str:
        raise TypeError(_TYPE_ERROR.format('reason', str, type(reason), reason))
    if not reason or _BAD_VALUE_RE.search(reason):
        raise ValueError(f'bad reason: {reason[:64]!r}')
    _latin1('reason', reason)
    line = f'HTTP/1.1 {status} {reason}'
    if len(_STATUS_LINES) < _STATUS_LINES_MAX:
        _STATUS_LINES[(status, reason)] = line
    return line


def _quote(value):
    return '"' + value.replace('\\', '\\\\').replace('"', '\\"') + '"'


def render_chunk_extension(extension: 'tuple[str, str] | None') -> str:
    """``''`` for ``None``, else ``';name=value'`` (value quoted when needed).

    >>> render_chunk_extension(('key', 'a b'))
    ';key="a b"'
    """
    if extension is None:
        return ''
    if type(extension) is not tuple:
        raise TypeError(_TYPE_ERROR.format('extension', tuple, type(extension), extension))
    if len(extension) != 2:
        raise ValueError(f'extension: need a 2-tuple; got a {len(extension)}-tuple')
    (name, value) = extension
    if type(name) is not str:
        raise TypeError(_TYPE_ERROR.format('extension name', str, type(name), name))
    if type(value) is not str:
        raise TypeError(_TYPE_ERROR.format('extension value', str, type(value), value))
    if not _STR_TOKEN_RE.fullmatch(name):
        raise ValueError(f'bad chunk extension name: {name!r}')
    if _STR_TOKEN_RE.fullmatch(value):
        return f';{name}={value}'
    if _BAD_TEXT_RE.search(value.encode('latin-1', 'replace')):
        raise ValueError(f'bad chunk extension value: {value[:64]!r}')
    _latin1('extension value', value)
    return f';{name}={_quote(value)}'


def format_chunk(chunk: 'tuple[tuple[str, str] | None, bytes]') -> bytes:
    """The chunk-size line (CRLF included) for an ``(extension, data)`` chunk.

    >>> format_chunk((None, b'hello'))
    b'5\\r\\n'
    >>> format_chunk((('k', 'v'), b''))
    b'0;k=v\\r\\n'
    """
    (extension, data) = chunk
    if extension is None:
        return b'%x\r\n' % len(data)
    return f'{len(data):x}{render_chunk_extension(extension)}\r\n'.encode('latin-1')


# --------------------------------------------------------------------------
# The core (doc/hacking.rst, 'The compiled core').  degu._cparse, when it was
# built, holds C versions of the hot functions above: same arguments, same
# results, and for anything but the common valid case it calls the function
# here, so errors are raised by this module alone.  It replaces them by name
# here, before any other module imports them, unless DEGU_PURE=1.  The
# functions above stay the reference, kept in PYTHON_CORE.

_COMPILED = (
    'parse_request_line',
    'parse_response_line',
    'parse_headers',
    'parse_chunk',
    'chunk_end',
    'render_request',
    'render_response',
    'format_chunk',
)
PYTHON_CORE = {name: globals()[name] for name in _COMPILED}
# Whole preambles out of a transport's buffer, C alone: degu._io's readers
# call them first on the C core, and their Python path is the reference.
_SCANNERS = ('scan_request', 'scan_response')
scan_request = scan_response = None
# Their doctests run whichever core is active (on the names it binds here).
__test__ = dict(PYTHON_CORE)


def _load_c_core():
    """``degu._cparse`` bound to the reference functions; ``ImportError`` when not built."""
    from . import _cparse  # type: ignore[attr-defined]

    _cparse._bind(PYTHON_CORE)
    return _cparse


CORE = 'python'  # which core is active: 'c' (degu._cparse) or 'python'
# The server's shortcut for a common response (degu/server.py, _serve()):
# C only, with no pure-Python twin; None on the pure-Python core, whose
# server takes its ordinary path, the reference.
response_head = None
if os.environ.get('DEGU_PURE') != '1':
    try:
        _c = _load_c_core()
    except ImportError:
        pass
    else:
        globals().update({name: getattr(_c, name) for name in _COMPILED + _SCANNERS})
        response_head = getattr(_c, 'response_head', None)  # None: an older build
        CORE = 'c'
        del _c
