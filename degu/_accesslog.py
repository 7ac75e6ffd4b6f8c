"""The access log: one line per response the server sends (doc/degu.server.rst).

The server hands each response to the ``degu.access`` logger at INFO as an
``AccessEntry``, a record of plain values taken when the response ended
(who asked, the request line, the status, the body bytes sent, how long it
took, what became of the connection).  Nothing is formatted until a handler
asks for the text: ``str(entry)`` is the line in the Combined Log Format
that nginx, Apache and gunicorn write, and ``AccessFormatter`` writes the
other formats (``common``, or a template of named fields).  With the logger
silent (the default) the server checks ``isEnabledFor()`` once per request
and builds nothing.

Every value the peer controls (the request-target, ``referer``,
``user-agent``) is escaped as nginx does, so a line can neither be split nor
forged: ``"``, ``\\``, control bytes and bytes over 0x7E become ``\\xHH``.
"""

from __future__ import annotations

import logging
import re
import string
import time

from ._body import Session
from ._common import _MONTHS
from ._transport import Transport

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._body import Request

__all__ = ('AccessEntry', 'AccessFormatter', 'FORMATS', 'client_host', 'log_access')

access_log = logging.getLogger('degu.access')

# What became of the connection after the response (Apache's %X):
KEPT = '+'  # kept alive for another request
CLOSED = '-'  # closed after a complete response
CUT_OFF = 'X'  # the response was cut off (or the answer could not be sent)

# 499, as nginx logs it: the client went away before it could be answered.
CLIENT_GONE = 499

COMMON = '{host} {ident} {user} [{time}] "{request}" {status} {bytes}'
COMBINED = COMMON + ' "{referer}" "{user_agent}" {duration_ms} {connection}'
FORMATS = {'combined': COMBINED, 'common': COMMON}

# --------------------------------------------------------------------------
# Field values


def client_host(session: Session, request: Request | None = None) -> str:
    """The client's address as the access log's first field writes it.

    An IP address without its port (IPv6 without brackets, as nginx writes
    it); over AF_UNIX, ``unix:`` and, when the kernel told the peer's
    credentials, its process id.  The client is the one the app sees:
    ``request.client`` (from a trusted proxy's ``X-Forwarded-For``, say),
    else ``session.client`` (from a PROXY protocol header, or the peer).

    >>> client_host(Session(('::1', 5000, 0, 0)))
    '::1'
    >>> client_host(Session(('10.0.0.2', 5000), client=('203.0.113.7', 0)))
    '203.0.113.7'
    >>> client_host(Session('', (1234, 1000, 1000)))
    'unix:pid=1234'
    """
    address = None if request is None else request._origin[0]
    if address is None:
        address = session._client
    if type(address) is tuple:
        return address[0]
    credentials = session._credentials
    if credentials is None:
        return 'unix:'
    return f'unix:pid={credentials[0]}'


# Printable ASCII but '"' and '\': what a quoted field may hold as it is.
_UNSAFE = re.compile(r'[^ !#-\[\]-~]')


def _escape_char(match):
    char = match.group()
    code = ord(char)
    if code < 256:  # header values are latin-1: one character per byte received
        return f'\\x{code:02X}'
    return ''.join(f'\\x{b:02X}' for b in char.encode('utf-8', 'surrogatepass'))


def escape(text: str) -> str:
    """*text* safe inside a quoted log field: ``"``, ``\\`` and non-printables as ``\\xHH``.

    >>> print(escape('say "hi"\\r\\n\\\\'))
    say \\x22hi\\x22\\x0D\\x0A\\x5C
    """
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_escape_char, text)


_clf_time = (0, '')  # (second, its text): one localtime() per second, not per line


def clf_time(when: float) -> str:
    """*when* (seconds since the epoch) as the Common Log Format writes it, in local time.

    The day and month names do not follow the locale; the offset is that
    of the local time zone at *when* (``TZ=UTC`` makes it ``+0000``).
    """
    global _clf_time
    second = int(when)
    cached = _clf_time
    if cached[0] == second:
        return cached[1]
    t = time.localtime(second)
    offset = t.tm_gmtoff // 60
    sign = '-' if offset < 0 else '+'
    (hours, minutes) = divmod(abs(offset), 60)
    text = (f'{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:'
            f'{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {sign}{hours:02d}{minutes:02d}')
    _clf_time = (second, text)
    return text


# --------------------------------------------------------------------------
# Entries and formats


class AccessEntry:
    """One response, as the access log records it: plain values, formatted on demand.

    *request_line* is ``(method, target, version)``, or ``None`` when the
    server answered before it had a request; *duration* is in seconds, or
    ``None`` when unknown; *connection* is ``'+'`` (kept alive), ``'-'``
    (closed) or ``'X'`` (the response was cut off).
    """

    __slots__ = ('when', 'host', 'port', 'ident', 'request_line', 'status', 'bytes',
                 'referer', 'user_agent', 'duration', 'connection')

    def __init__(self, when: float, host: str, port: int | None, ident: int | None,
                 request_line: tuple[str, str, str] | None, status: int, body_bytes: int,
                 referer: str | None, user_agent: str | None, duration: float | None,
                 connection: str) -> None:
        self.when = when
        self.host = host
        self.port = port
        self.ident = ident
        self.request_line = request_line
        self.status = status
        self.bytes = body_bytes
        self.referer = referer
        self.user_agent = user_agent
        self.duration = duration
        self.connection = connection

    def __repr__(self) -> str:
        return f'AccessEntry({self})'

    def __str__(self) -> str:
        return _COMBINED.format(self)


def _dash(value):
    return '-' if value is None else escape(value)


def _request(e):
    if e.request_line is None:
        return '-'
    return escape(' '.join(e.request_line))


def _part(index):
    return lambda e: '-' if e.request_line is None else escape(e.request_line[index])


def _ms(e):
    return '-' if e.duration is None else f'{1000 * e.duration:.3f}'


def _us(e):
    return '-' if e.duration is None else str(round(1_000_000 * e.duration))


# name -> how an entry gives its text
FIELDS = {
    'host': lambda e: e.host,
    'port': lambda e: '-' if e.port is None else str(e.port),
    'ident': lambda e: '-' if e.ident is None else str(e.ident),
    'user': lambda e: '-',
    'time': lambda e: clf_time(e.when),
    'request': _request,
    'method': _part(0),
    'target': _part(1),
    'version': _part(2),
    'status': lambda e: str(e.status),
    'bytes': lambda e: str(e.bytes),
    'referer': lambda e: _dash(e.referer),
    'user_agent': lambda e: _dash(e.user_agent),
    'duration_ms': _ms,
    'duration_us': _us,
    'connection': lambda e: e.connection,
}


class AccessFormat:
    """A line format: ``'combined'``, ``'common'``, or a template of ``{field}`` names.

    ``{{`` and ``}}`` are literal braces.  An unknown field, a positional
    ``{}``, a conversion or format spec, or a control character (a line
    break would split the line) is a ``ValueError``.

    >>> AccessFormat('{status} {nope}')
    Traceback (most recent call last):
      ...
    ValueError: access log format: unknown field 'nope' in '{status} {nope}'
    """

    __slots__ = ('template', '_fields', '_render')

    def __init__(self, spec: str) -> None:
        if type(spec) is not str:
            raise TypeError(f'access log format: need a str; got a {type(spec)!r}: {spec!r}')
        template = FORMATS.get(spec, spec)
        if re.search(r'[\x00-\x1f\x7f]', template):
            raise ValueError(f'access log format: control character in {template!r}')
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as e:
            raise ValueError(f'access log format: {e} in {template!r}') from None
        fields = {}
        for (_, name, spec_, conversion) in parsed:
            if name is None:
                continue
            if name not in FIELDS:
                raise ValueError(f'access log format: unknown field {name!r} in {template!r}')
            if spec_ or conversion:
                raise ValueError(f'access log format: {{{name}}} takes no conversion or '
                                 f'format spec in {template!r}')
            fields[name] = FIELDS[name]
        if not fields:
            raise ValueError(f'access log format: no field in {template!r}')
        self.template = template
        self._fields = tuple(fields.items())
        # The default format as one f-string: with the log on (to /dev/null),
        # the request loop takes 14.9 µs per request instead of 18.5 through
        # the template (benchmarks/hotpath.py's request and response).
        self._render = _combined_line if template == COMBINED else self._fill

    def _fill(self, entry):
        return self.template.format_map({name: get(entry) for (name, get) in self._fields})

    def __repr__(self) -> str:
        return f'AccessFormat({self.template!r})'

    def format(self, entry: AccessEntry) -> str:
        """The line for *entry*."""
        return self._render(entry)


def _combined_line(e):
    # COMBINED, written out (tests/test_accesslog.py checks that both agree).
    line = e.request_line
    request = '-' if line is None else escape(f'{line[0]} {line[1]} {line[2]}')
    referer = '-' if e.referer is None else escape(e.referer)
    agent = '-' if e.user_agent is None else escape(e.user_agent)
    ident = '-' if e.ident is None else e.ident
    ms = '-' if e.duration is None else f'{1000 * e.duration:.3f}'
    return (f'{e.host} {ident} - [{clf_time(e.when)}] "{request}" {e.status} {e.bytes} '
            f'"{referer}" "{agent}" {ms} {e.connection}')


_COMBINED = AccessFormat('combined')


class AccessFormatter(logging.Formatter):
    """A ``logging.Formatter`` writing ``degu.access`` records in *fmt* (see ``AccessFormat``).

    Records that are not access entries are formatted as a plain
    ``logging.Formatter()`` would.
    """

    def __init__(self, fmt: str = 'combined') -> None:
        super().__init__()
        self.access_format = AccessFormat(fmt)

    def format(self, record: logging.LogRecord) -> str:
        entry = record.msg
        if type(entry) is AccessEntry:
            return self.access_format.format(entry)
        return super().format(record)


# --------------------------------------------------------------------------
# What the server calls


def log_access(session: Session, request: Request | None, status: int, body_bytes: int,
               started: float, connection: str) -> None:
    """Log one response to ``degu.access`` (the caller checked that the logger is enabled).

    *request* is ``None`` for an answer made before a request was read;
    *started* is the ``time.monotonic()`` at which serving it began, or 0
    when unknown; *connection*: ``KEPT``, ``CLOSED`` or ``CUT_OFF``.
    """
    duration = time.monotonic() - started if started else None
    address = session._address
    port = address[1] if type(address) is tuple else None
    credentials = session._credentials
    ident = credentials[1] if credentials is not None else None
    if request is None:
        (line, referer, agent) = (None, None, None)
    else:
        line = (request._method, request._uri, request._version)
        headers = request._headers
        referer = headers.get('referer')
        agent = headers.get('user-agent')
    entry = AccessEntry(time.time(), client_host(session, request), port, ident, line, status,
                        body_bytes, referer, agent, duration, connection)
    access_log.info(entry)


class CountingTransport(Transport):
    """A ``Transport`` that counts the bytes it sent, in ``sent``.

    The server uses it while the access log is on, so that a response cut
    off midway is logged with what did go out.  A ``sendall()`` that fails
    midway counts nothing of what it sent: ``sent`` is a lower bound.
    """

    __slots__ = ('sent',)

    def __init__(self, sock: Any, **kw: Any) -> None:
        super().__init__(sock, **kw)
        self.sent = 0

    def sendall(self, data: bytes | bytearray | memoryview, what: str = 'sending') -> None:
        Transport.sendall(self, data, what)
        self.sent += len(data)

    def sendfile(self, file: Any, offset: int, count: int) -> int:
        try:
            return Transport.sendfile(self, file, offset, count)
        finally:
            self.sent += file.tell() - offset  # sendfile() leaves it after what was sent
