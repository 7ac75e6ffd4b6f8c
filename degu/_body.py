"""Body objects and the RGI value types of the shared HTTP engine.

Re-exported by ``degu.base``; import them from there.

Every body keeps an explicit state::

    BODY_READY --any operation--> BODY_STARTED --end reached--> BODY_CONSUMED
         \\                              |
          `-------- any exception -------+----> BODY_ERROR

An operation checks the state first and its error names the state it found.
Any exception during IO moves the body to ``BODY_ERROR``, and a body read
from a connection then hands the error to that connection (the client
closes it; the server answers 400 or closes).  ``read()`` on a consumed body
returns ``b''``, like a file at its end; every other operation on a consumed
body raises.

The body protocol.  Every outgoing body (the four classes here; a
``bytes`` body and ``None`` are the writers' own cases) is sent, framed,
released and checked through the same few members, so the server, the
client, ProxyApp, the WSGI adapter and ``rgi.Validator`` never ask which
class a body is::

    chunked                  True: (extension, data) chunks; False: data
    content_length           int, or None: chunked, or read until the close
    _items()                 check the state, then an iterator of pieces
    _at_hand()               True when the next piece needs no wait
    _abort(exc)              writing failed: the body cannot go on
    _sendfile(transport, p)  sent with sendfile(): bytes sent, or None
    _release()               close what the body reads from, once sent

Writing: every body is written by one loop, ``_write_body()``, over the
body's ``_items()`` (data pieces, or ``(extension, data)`` chunks, checked
as they come).  A piece is flushed to the peer before the next one is asked
for, unless the next one is already at hand (a list or tuple source, a
file, bytes already received from a connection): so a stream goes out as it
is produced, and what is at hand still goes out in as few sends as it can.
"""

import os
import stat
from collections import namedtuple

from ._common import _bound_method
from ._parse import (
    _TYPE_ERROR,
    _TYPE_ERROR2,
    IO_SIZE,
    MAX_HEADER_COUNT,
    MAX_IO_SIZE,
    MAX_LINE_LEN,
    MAX_PREAMBLE_LEN,
    ConnectionClosed,
    ContentRange,
    ParseError,
    Range,
    _check_length,
    _check_method,
    _short,
    content_too_large,
    format_chunk,
    parse_chunk,
    parse_trailer_line,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing stays out of the import path
    from typing import Any, Generic, Iterable, Iterator, NamedTuple

    # typing_extensions: TypeVar defaults (typing has them from 3.13).  Type
    # checkers ship its stubs; it is never imported at run time.
    from typing_extensions import TypeVar

    from ._types import Address, ResponseBody

    _I = TypeVar('_I', bound='_InBody')

__all__ = (
    'BODY_READY',
    'BODY_STARTED',
    'BODY_CONSUMED',
    'BODY_ERROR',
    'Body',
    'ChunkedBody',
    'BodyIter',
    'ChunkedBodyIter',
    'is_body',
    'API',
    'APIType',
    'api',
    'bodies',
    'Response',
    'ResponseType',
    'Request',
    'Session',
)

BODY_READY = 0
BODY_STARTED = 1
BODY_CONSUMED = 2
BODY_ERROR = 3

_STATE_ERRORS = {
    BODY_STARTED: '{}.state == BODY_STARTED, cannot start another operation',
    BODY_CONSUMED: '{}.state == BODY_CONSUMED, already consumed',
    BODY_ERROR: '{}.state == BODY_ERROR, cannot be used',
}


def _state_error(body):
    return ValueError(_STATE_ERRORS[body._state].format(type(body).__name__))


class ConnReader:
    """Base class of readers that own a connection (``degu._transport.Transport``).

    A body over such a reader is *connection-backed*: its repr says
    ``<reader>`` and an error while reading it is reported to the reader.
    Subclasses provide ``read_exact(n)``, ``readinto_exact(view)``,
    ``readinto_some(view)``, ``read_some(n)``, ``readline(limit, what)``,
    ``body_failed(exc)`` and ``buffered`` (bytes received and not yet read).
    """

    __slots__ = ()


class _FileReader:
    """Adapts an ordinary file object (``readinto``, ``readline``) to the reader methods."""

    __slots__ = ('_rfile', '_readinto', '_readline')

    def __init__(self, rfile, need_readline):
        self._rfile = rfile
        label = type(rfile).__name__
        self._readinto = _bound_method(rfile, 'readinto', label)
        self._readline = _bound_method(rfile, 'readline', label) if need_readline else None

    def readinto_exact(self, view):
        size = len(view)
        got = 0
        while got < size:
            received = _count('received', self._readinto(view[got:]), size - got)
            if received == 0:
                raise ValueError(f'expected to read {size} bytes, but received {got}')
            got += received

    def read_exact(self, size):
        buf = bytearray(size)
        self.readinto_exact(memoryview(buf))
        return bytes(buf)

    def readline(self, limit, what='line'):
        line = self._readline(limit)
        if type(line) is not bytes:
            raise TypeError(f'need a {bytes!r}; readline() returned a {type(line)!r}')
        if len(line) > limit or line[-2:] != b'\r\n':
            raise ValueError(f"b'\\r\\n' not found in {_short(line)}")
        return line

    def body_failed(self, exc):
        pass


def _count(name, count, most):
    # What a file's readinto() or write() returned: an int from 0 to most.
    if type(count) is not int:
        raise TypeError(_TYPE_ERROR.format(name, int, type(count), count))
    if not (0 <= count <= most):
        raise ValueError(f'need 0 <= {name} <= {most}; got {count}')
    return count


def _reader_for(rfile, need_readline):
    if isinstance(rfile, ConnReader):
        return rfile
    return _FileReader(rfile, need_readline)


def _write_all(write, data):
    """Write all of *data* through a file's ``write()``, checking what it returns."""
    size = len(data)
    sent = write(data)
    if sent == size:
        return size
    view = memoryview(data)
    total = 0
    while True:
        sent = _count('sent', sent, size - total)
        if sent == 0:
            raise ValueError(f'expected to write {size} bytes, but sent {total}')
        total += sent
        if total == size:
            return size
        sent = write(view[total:])


def _check_size(size):
    if type(size) is not int:
        raise TypeError(_TYPE_ERROR.format('size', int, type(size), size))
    if not (0 <= size <= MAX_IO_SIZE):
        raise ValueError(f'need 0 <= size <= {MAX_IO_SIZE}; got {size}')


SENDFILE_MIN = 64 * 1024  # 64 KiB: smaller file bodies are cheaper to copy than to sendfile()


def _close_source(source: object) -> None:
    """Call ``source.close()`` when it has one (a file, a generator, a WSGI result)."""
    close = getattr(source, 'close', None)
    if close is not None:
        close()


class _BodyBase:
    """The body protocol (see the module docstring), with its defaults."""

    __slots__ = ()
    chunked: bool
    _state: int

    @property
    def content_length(self) -> int | None:
        return None

    @property
    def state(self) -> int:
        return self._state

    def write_to(self, wfile: 'Any') -> int:
        """Write the whole body to *wfile* (a chunked body re-encoded with its extensions).

        Returns the number of bytes written.  Each piece is flushed (when
        *wfile* has ``flush()``) before the next is asked for, unless the
        next is at hand (see the module docstring).
        """
        return _write_body(self, wfile, self.chunked)

    def _items(self):
        # Checks the state now (an error here, not at the first next()),
        # then the pieces come from the generator _pieces().
        self._start_items()
        return self._pieces()

    def _at_hand(self):
        return False

    def _abort(self, exc):
        self._state = BODY_ERROR

    def _sendfile(self, transport, preamble):
        return None

    def _release(self):
        pass


def is_body(obj: object) -> bool:
    """True for a body object: ``Body``, ``ChunkedBody``, ``BodyIter``, ``ChunkedBodyIter``.

    >>> (is_body(BodyIter([], 0)), is_body(b'data'), is_body(None))
    (True, False, False)
    """
    return isinstance(obj, _BodyBase)


def release_body(body: object) -> None:
    """Close what a sent response body read from (a file, a generator's source).

    The response belongs to the server once the app returned it: a file
    behind a ``Body`` or ``ChunkedBody`` is closed (a connection behind one,
    as a proxy returns, is not), and so is the source of an iterator body
    that has a ``close()``.  ``bytes``, ``None`` and non-bodies: nothing.
    """
    if isinstance(body, _BodyBase):
        body._release()


def drain_body(body: 'Body | ChunkedBody', limit: int) -> bool:
    """Read and drop what is left of a received *body* if it is at most *limit* bytes.

    True when the body is now consumed (the connection can carry the next
    message); False when more than *limit* bytes were left, or the body
    failed earlier.
    """
    return body._drain(limit)


class _InBody(_BodyBase):
    """What Body and ChunkedBody share: state checks and error handling."""

    __slots__ = ()
    _rfile: object
    _reader: 'Any'

    @property
    def rfile(self) -> object:
        return self._rfile

    def _start(self, *allowed):
        if self._state not in allowed:
            raise _state_error(self)
        self._state = BODY_STARTED

    def _start_items(self):
        self._start(BODY_READY)

    def _fail(self, exc):
        self._state = BODY_ERROR
        self._reader.body_failed(exc)

    _abort = _fail  # what _write_body() calls when writing failed

    def _at_hand(self):
        # A connection's next bytes are at hand when they were received
        # already; a file's always are.
        return self._reader is not self._rfile or self._reader.buffered > 0

    def _rfile_repr(self):
        if self._reader is self._rfile:
            return '<reader>'
        return repr(self._rfile)

    def _release(self):
        # A file behind the body is closed; a connection is not (a proxy
        # returns a body that still reads from its upstream connection).
        if self._reader is not self._rfile:
            _close_source(self._rfile)

    def __enter__(self: '_I') -> '_I':
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class Body(_InBody):
    """A body framed by a length: ``Body(rfile, content_length)``.

    *rfile* is a connection's reader or any object with ``readinto()``.  A
    ``content_length`` of ``None`` (only for a connection's reader) means the
    body runs until the peer closes: a close-delimited response (RFC 9112 6.3).

    >>> import io
    >>> body = Body(io.BytesIO(b'hello world'), 11)
    >>> body.read(5)
    b'hello'
    >>> body.read()
    b' world'
    >>> body.state == BODY_CONSUMED
    True
    """

    __slots__ = ('_rfile', '_reader', '_content_length', '_remaining', '_state')

    chunked = False

    def __init__(self, rfile: object, content_length: int | None) -> None:
        reader = _reader_for(rfile, False)
        if content_length is None:
            if reader is not rfile:
                raise TypeError(_TYPE_ERROR.format('content_length', int, type(None), None))
        else:
            _check_length('content_length', content_length)
        self._rfile = rfile
        self._reader = reader
        self._content_length = content_length
        self._remaining = content_length
        self._state = BODY_READY

    @property
    def content_length(self) -> int | None:
        return self._content_length

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self._rfile_repr()}, {self._content_length!r})'

    def read(self, size: int | None = None) -> bytes:
        """Read *size* bytes (all that remain when ``None``); ``b''`` at the end.

        A sized read never returns less than ``min(size, remaining)``: a body
        that ends early raises.  The read that reaches the end consumes the body.
        """
        if size is not None:
            _check_size(size)
        if self._state >= BODY_CONSUMED:
            if self._state == BODY_CONSUMED:
                return b''
            raise _state_error(self)
        if size == 0:
            return b''  # no side effects, not even on a close-delimited body
        remaining = self._remaining
        if remaining is None:
            return self._read_until_eof(size)
        if size is None:
            if remaining > MAX_IO_SIZE:
                raise _read_too_large(remaining)
            size = remaining
        elif size > remaining:
            size = remaining
        self._state = BODY_STARTED
        if size:
            try:
                data = self._reader.read_exact(size)
            except BaseException as e:
                self._fail(e)
                raise
            remaining -= size
            self._remaining = remaining
        else:
            data = b''
        if remaining == 0:
            self._state = BODY_CONSUMED
        return data

    def _read_until_eof(self, size):
        self._state = BODY_STARTED
        limit = MAX_IO_SIZE if size is None else size
        try:
            data = self._reader.read_some(limit, size is None)
        except BaseException as e:
            self._fail(e)
            raise
        if not data or size is None:
            self._state = BODY_CONSUMED
        return data

    def readinto(self, buf: bytearray | memoryview) -> int:
        """Read into a writable buffer; returns the byte count, 0 at the end.

        Fills ``min(len(buf), remaining)`` bytes without a copy through an
        intermediate ``bytes`` (the fast way to move a large body).
        """
        view = memoryview(buf).cast('B')
        if self._state >= BODY_CONSUMED:
            if self._state == BODY_CONSUMED:
                return 0
            raise _state_error(self)
        if not view:
            return 0  # like read(0): no side effects
        if self._remaining is None:
            data = self._read_until_eof(len(view))
            view[: len(data)] = data
            return len(data)
        size = min(len(view), self._remaining)
        self._state = BODY_STARTED
        if size:
            try:
                self._reader.readinto_exact(view[:size])
            except BaseException as e:
                self._fail(e)
                raise
            self._remaining -= size
        if self._remaining == 0:
            self._state = BODY_CONSUMED
        return size

    def __iter__(self) -> 'Iterator[bytes]':
        self._start(BODY_READY)
        if self._remaining is None:
            while True:
                data = self._read_until_eof(IO_SIZE)
                if not data:
                    return
                self._state = BODY_STARTED
                yield data
        read_exact = self._reader.read_exact
        while self._remaining:
            size = min(self._remaining, IO_SIZE)
            try:
                data = read_exact(size)
            except BaseException as e:
                self._fail(e)
                raise
            self._remaining -= size
            yield data
        self._state = BODY_CONSUMED

    def _pieces(self):
        # The data, in pieces: as it arrives from a connection, in IO_SIZE
        # pieces from a file.  A piece may be a view of a buffer reused for
        # the next one: write it before asking for more.
        reader = self._reader
        remaining = self._remaining
        try:
            if remaining is None:  # until the connection closes
                while True:
                    data = reader.read_some(IO_SIZE)
                    if not data:
                        break
                    yield data
            elif remaining:
                view = memoryview(bytearray(min(remaining, IO_SIZE)))
                if reader is self._rfile:
                    readinto_some = reader.readinto_some
                    while remaining:
                        received = readinto_some(view[: min(remaining, len(view))])
                        if not received:
                            got = self._content_length - remaining
                            raise ConnectionClosed(
                                f'expected to read {self._content_length} bytes, '
                                f'but received {got}'
                            )
                        remaining -= received
                        self._remaining = remaining
                        yield view[:received]
                else:
                    readinto_exact = reader.readinto_exact
                    while remaining:
                        part = view[: min(remaining, len(view))]
                        readinto_exact(part)
                        remaining -= len(part)
                        self._remaining = remaining
                        yield part
        except GeneratorExit:
            raise
        except BaseException as e:
            self._fail(e)
            raise
        self._state = BODY_CONSUMED

    def _sendfile(self, transport, preamble):
        # A regular file of SENDFILE_MIN bytes or more, from its position:
        # the preamble, then socket.sendfile(), no copy through user space.
        if self._state != BODY_READY or self._reader is self._rfile:
            return None
        count = self._content_length
        if count < SENDFILE_MIN:
            return None
        try:
            rfile = self._rfile
            if not stat.S_ISREG(os.fstat(rfile.fileno()).st_mode):
                return None
            offset = rfile.tell()
        except (AttributeError, OSError, ValueError):
            return None
        self._state = BODY_STARTED
        try:
            transport.write(preamble)
            transport.sendfile(rfile, offset, count)
        except BaseException:
            self._state = BODY_ERROR
            raise
        self._remaining = 0
        self._state = BODY_CONSUMED
        return len(preamble) + count

    def _drain(self, limit):
        """Read and drop the rest when at most *limit* bytes remain (doc/decisions.rst)."""
        if self._state >= BODY_CONSUMED:
            return self._state == BODY_CONSUMED
        if self._remaining is None or self._remaining > limit:
            return False
        while self._remaining:
            self.read(min(self._remaining, IO_SIZE))
        self._state = BODY_CONSUMED
        return True


def _new_body(reader, content_length):
    """A ``Body`` over a connection's reader, with a length the parser checked.

    The hot path's constructor: the same object ``Body(reader, n)`` makes,
    without checks that cannot fail here.
    """
    body = object.__new__(Body)
    body._rfile = body._reader = reader
    body._content_length = body._remaining = content_length
    body._state = BODY_READY
    return body


def _new_chunked(reader, max_body):
    """A ``ChunkedBody`` over a connection's reader, taking at most *max_body* data bytes."""
    body = object.__new__(ChunkedBody)
    body._rfile = body._reader = reader
    body._state = BODY_READY
    body._pending = None
    body._left = max_body
    body._inside = None
    return body


class ChunkedBody(_InBody):
    """A chunk-encoded body: ``ChunkedBody(rfile)``.

    *rfile* is a connection's reader or any object with ``readline()`` and
    ``readinto()``.  Chunks are ``(extension, data)`` tuples; the last has
    ``data == b''``.  Trailer fields after it are read, bounded, and dropped.

    >>> import io
    >>> body = ChunkedBody(io.BytesIO(b'5;k=v\\r\\nhello\\r\\n0\\r\\n\\r\\n'))
    >>> body.readchunk()
    (('k', 'v'), b'hello')
    >>> body.readchunk()
    (None, b'')
    """

    __slots__ = ('_rfile', '_reader', '_state', '_pending', '_left', '_inside')

    chunked = True

    def __init__(self, rfile: object) -> None:
        self._rfile = rfile
        self._reader = reader = _reader_for(rfile, True)
        self._state = BODY_READY
        # (extension, memoryview) left over by a sized read()
        self._pending: 'tuple[Any, memoryview] | None' = None
        # chunk data bytes the reader still accepts (None: no limit)
        self._left: int | None = getattr(reader, 'max_body', None)
        # (extension, count): the data of a chunk readinto() began, still unread
        self._inside: 'tuple[Any, int] | None' = None

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self._rfile_repr()})'

    def _readchunk(self, most=None, scratch=None):
        # One chunk off the wire; moves to CONSUMED after the last one.
        # With *most*: None, reading nothing more, when the chunk's data
        # is larger (a drain stops at its limit inside a chunk).  With
        # *scratch* (a _Scratch), the data is a view of its buffer, reused
        # for the next chunk: one copy less (see _pieces()).
        if self._inside is not None:
            return self._rest_of_chunk(most)
        reader = self._reader
        try:
            line = reader.readline(MAX_LINE_LEN, 'chunk line')
            (size, extension) = parse_chunk(line[:-2])
            if most is not None and size > most:
                return None
            if size:
                if self._left is not None:
                    self._left -= size
                    if self._left < 0:
                        raise content_too_large('chunked body over max_body')
                if scratch is None:
                    data = reader.read_exact(size)
                else:
                    data = scratch.view(size)
                    reader.readinto_exact(data)
                end = reader.read_exact(2)
            else:
                data = b''
                end = reader.readline(MAX_LINE_LEN, 'chunk line')
                if end != b'\r\n':
                    self._read_trailer(end)
                    end = b'\r\n'
            if end != b'\r\n':
                raise ParseError(f'bad chunk data termination: {end!r}')
        except BaseException as e:
            error = self._failed(e)
            if error is e:
                raise
            raise error from None
        if not size:
            self._state = BODY_CONSUMED
        return (extension, data)

    def _failed(self, e):
        # The body failed with *e*: what to raise (a line without CRLF, from
        # the transport or a file, is malformed data: a ParseError; a
        # ParseError or a file's UnicodeError stays itself).
        if type(e) is ValueError:
            e = ParseError(str(e))
        self._fail(e)
        return e

    def _rest_of_chunk(self, most):
        # What readinto() left of a chunk, as the chunk (extension, rest).
        (extension, size) = self._inside
        if most is not None and size > most:
            return None
        try:
            data = self._reader.read_exact(size)
            self._end_of_data()
        except BaseException as e:
            error = self._failed(e)
            if error is e:
                raise
            raise error from None
        self._inside = None
        return (extension, data)

    def _end_of_data(self):
        end = self._reader.read_exact(2)
        if end != b'\r\n':
            raise ParseError(f'bad chunk data termination: {end!r}')

    def readinto(self, buf: 'bytearray | memoryview') -> int:
        """Read chunk data into a writable buffer; returns the count, 0 at the end.

        Chunk boundaries and extensions are lost, as with ``read()``; the
        data goes from the connection into *buf* with no ``bytes`` object
        on the way, the fast way to move a large chunked body.  Each call
        fills *buf* from one chunk only, so an event that arrived is
        returned without waiting for the next.
        """
        view = memoryview(buf).cast('B')
        if self._state >= BODY_CONSUMED:
            if self._state == BODY_CONSUMED:
                return 0
            raise _state_error(self)
        if not view:
            return 0  # like read(0): no side effects
        self._state = BODY_STARTED
        if self._pending is not None:  # what a sized read() left
            (extension, rest) = self._pending
            size = min(len(view), len(rest))
            view[:size] = rest[:size]
            self._pending = (extension, rest[size:]) if size < len(rest) else None
            return size
        reader = self._reader
        try:
            if self._inside is None:
                line = reader.readline(MAX_LINE_LEN, 'chunk line')
                (left, extension) = parse_chunk(line[:-2])
                if not left:
                    end = reader.readline(MAX_LINE_LEN, 'chunk line')
                    if end != b'\r\n':
                        self._read_trailer(end)
                    self._state = BODY_CONSUMED
                    return 0
                if self._left is not None:
                    self._left -= left
                    if self._left < 0:
                        raise content_too_large('chunked body over max_body')
            else:
                (extension, left) = self._inside
            size = min(len(view), left)
            reader.readinto_exact(view[:size])
            left -= size
            if left:
                self._inside = (extension, left)
            else:
                self._inside = None
                self._end_of_data()
        except BaseException as e:
            error = self._failed(e)
            if error is e:
                raise
            raise error from None
        return size

    def _read_trailer(self, line):
        # trailer-section = *( field-line CRLF ), then CRLF: checked, bounded, dropped.
        total = len(line)
        count = 0
        while line != b'\r\n':
            count += 1
            if count > MAX_HEADER_COUNT or total > MAX_PREAMBLE_LEN:
                raise ParseError(
                    f'trailer too large: {count} fields, {total} bytes',
                    431,
                    'Request Header Fields Too Large',
                )
            parse_trailer_line(line[:-2])
            line = self._reader.readline(MAX_LINE_LEN, 'chunk line')
            total += len(line)

    def readchunk(self) -> 'tuple[tuple[str, str] | None, bytes]':
        """Read the next ``(extension, data)`` chunk."""
        self._start(BODY_READY, BODY_STARTED)
        if self._pending is not None:
            (extension, view) = self._pending
            self._pending = None
            return (extension, bytes(view))
        return self._readchunk()

    def read(self, size: int | None = None) -> bytes:
        """Read chunk data: everything (at most ``MAX_IO_SIZE``) or up to *size* bytes.

        Chunk boundaries and extensions are lost; use ``readchunk()`` or
        iteration to keep them.  Returns ``b''`` once the last chunk was read.
        """
        if size is not None:
            _check_size(size)
        if self._state >= BODY_CONSUMED:
            if self._state == BODY_CONSUMED:
                return b''
            raise _state_error(self)
        if size == 0:
            return b''
        self._state = BODY_STARTED
        if size is None:
            return self._read_all()
        while self._pending is None:
            (extension, data) = self._readchunk()
            if not data:
                return b''  # _readchunk() consumed the body
            self._pending = (extension, memoryview(data))
        (extension, view) = self._pending
        if len(view) > size:
            self._pending = (extension, view[size:])
            return bytes(view[:size])
        self._pending = None
        return bytes(view)

    def _read_all(self):
        parts = []
        total = 0
        if self._pending is not None:
            parts.append(bytes(self._pending[1]))
            total = len(parts[0])
            self._pending = None
        while True:
            data = self._readchunk()[1]
            if not data:
                return b''.join(parts)
            total += len(data)
            if total > MAX_IO_SIZE:
                e = _read_too_large(total, 'chunks exceed max read size')
                self._fail(e)
                raise e
            parts.append(data)

    def __iter__(self) -> 'Iterator[tuple[tuple[str, str] | None, bytes]]':
        self._start(BODY_READY)
        while self._state == BODY_STARTED:
            yield self._readchunk()

    def _pieces(self):
        # Each chunk's data is a view of one buffer, reused (and grown) for
        # the next: written out before the next is read, it saves a copy
        # per chunk when a body is forwarded (ProxyApp, write_to()).
        scratch = _Scratch()
        while self._state == BODY_STARTED:
            yield self._readchunk(None, scratch)

    def _drain(self, limit):
        """Read and drop chunks while at most *limit* bytes were dropped (doc/decisions.rst)."""
        if self._state >= BODY_CONSUMED:
            return self._state == BODY_CONSUMED
        self._state = BODY_STARTED
        total = 0 if self._pending is None else len(self._pending[1])
        self._pending = None
        while total <= limit:
            chunk = self._readchunk(limit - total)
            if chunk is None:  # a chunk past the limit: its data is not read
                return False
            if not chunk[1]:
                return True
            total += len(chunk[1])
        return False


class _Scratch:
    """A buffer lent to one chunk's data at a time, grown to the largest chunk so far.

    Bounded by ``MAX_IO_SIZE`` as any chunk is; a view handed out stays
    valid while it is used, as growing makes a new buffer.
    """

    __slots__ = ('_buf',)

    def __init__(self):
        self._buf = bytearray()

    def view(self, size):
        if size > len(self._buf):
            self._buf = bytearray(size)
        return memoryview(self._buf)[:size]


def _read_too_large(size, what='would exceed max read size'):
    # A read that would need more memory than one read may take: the
    # server answers 413 when the app lets it escape.
    return content_too_large(f'{what}: {size} > {MAX_IO_SIZE}')


_LAST_CHUNK = b'0\r\n\r\n'


def check_chunk(chunk: object) -> bytes:
    """The data of an outgoing *chunk*, after checking it is an ``(extension, data)`` tuple.

    The extension is checked when it is rendered (``format_chunk()``).

    >>> check_chunk((None, b'hi'))
    b'hi'
    """
    if type(chunk) is not tuple:
        raise TypeError(_TYPE_ERROR.format('chunk', tuple, type(chunk), chunk))
    if len(chunk) != 2:
        raise ValueError(f'chunk: need a 2-tuple; got a {len(chunk)}-tuple')
    data = chunk[1]
    if type(data) is not bytes:
        raise TypeError(_TYPE_ERROR2.format('chunk data', bytes, type(data)))
    if len(data) > MAX_IO_SIZE:
        raise ValueError(f'need len(chunk data) <= {MAX_IO_SIZE}; got {len(data)}')
    return data


def _write_chunk(write, chunk):
    line = format_chunk(chunk)
    data = chunk[1]
    if len(data) < 4096:
        return _write_all(write, b''.join((line, data, b'\r\n')))
    return _write_all(write, line) + _write_all(write, data) + _write_all(write, b'\r\n')


def _write_body(body, wfile, encode):
    """Write *body* to *wfile* through its ``_items()``; returns the bytes written.

    *encode*: chunk-encode (a chunked body's own chunks, or a length body's
    pieces as chunks of a body of unknown length); else the data alone (a
    length body, or a chunked body's data close-delimited for an HTTP/1.0
    peer).  Each piece is flushed before the next is asked for, unless the
    body says the next is at hand (see the module docstring).
    """
    write = wfile.write
    flush = getattr(wfile, 'flush', None)
    at_hand = body._at_hand
    chunked = body.chunked
    items = body._items()  # checks the state first
    total = 0
    try:
        for item in items:
            if chunked:
                if encode:
                    total += _write_chunk(write, item)
                elif item[1]:
                    total += _write_all(write, item[1])
            elif encode:
                total += _write_chunk(write, (None, item))
            else:
                total += _write_all(write, item)
            if flush is not None and not at_hand():
                flush()
        if encode and not chunked:
            total += _write_all(write, _LAST_CHUNK)
    except BaseException as e:
        if body._state != BODY_ERROR:
            body._abort(e)  # a piece was lost: the body cannot go on
        items.close()
        raise
    return total


class _OutBody(_BodyBase):
    __slots__ = ()
    _source: 'Any'

    @property
    def source(self) -> 'Any':
        return self._source

    def _start(self):
        if self._state != BODY_READY:
            raise _state_error(self)
        self._state = BODY_STARTED

    _start_items = _start

    def _release(self):
        # The source of an iterator body is closed when it has a close():
        # a generator (its finally clauses run), a file, a WSGI result.
        _close_source(self._source)

    def _at_hand(self):
        # A list or tuple is all at hand; any other iterable may have to
        # wait for its next item (a generator, a socket, a queue).
        return type(self._source) in (list, tuple)


class BodyIter(_OutBody):
    """An outgoing body of *content_length* bytes from an iterable of ``bytes``.

    Items are written as the iterable yields them (see the module docstring).

    >>> import io
    >>> out = io.BytesIO()
    >>> BodyIter([b'hello', b' ', b'world'], 11).write_to(out)
    11
    """

    __slots__ = ('_source', '_content_length', '_state')

    chunked = False

    def __init__(self, source: 'Iterable[bytes]', content_length: int) -> None:
        _check_length('content_length', content_length)
        self._source = source
        self._content_length = content_length
        self._state = BODY_READY

    @property
    def content_length(self) -> int:
        return self._content_length

    def __repr__(self) -> str:
        return f'BodyIter({self._source!r}, {self._content_length})'

    def _pieces(self):
        total = 0
        length = self._content_length
        try:
            for data in self._source:
                if type(data) is not bytes:
                    raise TypeError(_TYPE_ERROR2.format('BodyIter source item', bytes, type(data)))
                if len(data) > MAX_IO_SIZE:
                    raise ValueError(f'need len(data) <= {MAX_IO_SIZE}; got {len(data)}')
                total += len(data)
                if total > length:
                    raise ValueError(f'exceeds content_length: {total} > {length}')
                if data:
                    yield data
            if total != length:
                raise ValueError(f'deceeds content_length: {total} < {length}')
        except GeneratorExit:
            raise
        except BaseException:
            self._state = BODY_ERROR
            raise
        self._state = BODY_CONSUMED


class ChunkedBodyIter(_OutBody):
    """An outgoing chunked body from an iterable of ``(extension, data)`` tuples.

    The last item, and only the last, has ``data == b''``.  Chunks are
    written as the iterable yields them (see the module docstring).

    >>> import io
    >>> out = io.BytesIO()
    >>> ChunkedBodyIter([(None, b'hi'), (('k', 'v'), b'')]).write_to(out)
    16
    >>> out.getvalue()
    b'2\\r\\nhi\\r\\n0;k=v\\r\\n\\r\\n'
    """

    __slots__ = ('_source', '_state')

    chunked = True

    def __init__(self, source: 'Iterable[tuple[tuple[str, str] | None, bytes]]') -> None:
        self._source = source
        self._state = BODY_READY

    def __repr__(self) -> str:
        return f'ChunkedBodyIter({self._source!r})'

    def _pieces(self):
        done = False
        try:
            for chunk in self._source:
                if done:
                    raise ValueError('additional chunk after empty chunk data')
                done = not check_chunk(chunk)
                yield chunk
            if not done:
                raise ValueError('final chunk data was not empty')
        except GeneratorExit:
            raise
        except BaseException:
            self._state = BODY_ERROR
            raise
        self._state = BODY_CONSUMED


if TYPE_CHECKING:
    # What type checkers see: the same two namedtuples with typed fields.
    _Body = Body
    _ChunkedBody = ChunkedBody
    _BodyIter = BodyIter
    _ChunkedBodyIter = ChunkedBodyIter
    _Range = Range
    _ContentRange = ContentRange

    class API(NamedTuple):
        Body: type[_Body]
        ChunkedBody: type[_ChunkedBody]
        BodyIter: type[_BodyIter]
        ChunkedBodyIter: type[_ChunkedBodyIter]
        Range: type[_Range]
        ContentRange: type[_ContentRange]

    # The body type: any response body by default; a client's responses
    # are Response[Body | ChunkedBody | None] (degu.client.ClientResponse).
    _B = TypeVar('_B', covariant=True, default=ResponseBody)

    class Response(NamedTuple, Generic[_B]):
        status: int
        reason: str
        headers: dict[str, Any]
        body: _B

else:
    API = namedtuple('API', 'Body ChunkedBody BodyIter ChunkedBodyIter Range ContentRange')
    Response = namedtuple('Response', 'status reason headers body')
    # Response[X], as type checkers write it, works at run time too, as
    # list[X] does (ClientResponse names its body type so).  A class
    # attribute: the tuples themselves are unchanged.
    Response.__class_getitem__ = classmethod(type(list[int]))

APIType = API
api = API(Body, ChunkedBody, BodyIter, ChunkedBodyIter, Range, ContentRange)
bodies = api  # deprecated alias kept from Degu
ResponseType = Response


class Request:
    """One HTTP request as an RGI app sees it (doc/rgi.rst).

    >>> r = Request('GET', '/foo/bar?x', {}, None, [], ['foo', 'bar'], 'x')
    >>> r.shift_path()
    'foo'
    >>> (r.mount, r.path)
    (['foo'], ['bar'])
    >>> r.build_proxy_uri()
    '/bar?x'

    ``client`` and ``scheme`` say who sent the request and how, as the
    server found out: the connection's client (``Session.client``) and the
    listener's scheme, or what trusted proxies said (doc/degu.server.rst,
    'Behind a proxy').

    >>> (r.client, r.scheme)
    (None, 'http')
    """

    __slots__ = (
        '_method', '_uri', '_headers', '_body', '_mount', '_path', '_query', '_version',
        '_origin',
    )

    def __init__(
        self,
        method: str,
        uri: str,
        headers: 'dict[str, Any]',
        body: 'Body | ChunkedBody | None',
        mount: 'list[str]',
        path: 'list[str]',
        query: str | None,
        *,
        version: str = 'HTTP/1.1',
        client: 'tuple[str, int] | str | bytes | None' = None,
        scheme: str = 'http',
    ) -> None:
        _check_method(method)
        if scheme not in ('http', 'https'):
            raise ValueError(f"scheme: need 'http' or 'https'; got {scheme!r}")
        if type(mount) is not list:
            raise TypeError(_TYPE_ERROR2.format('mount', list, type(mount)))
        if type(path) is not list:
            raise TypeError(_TYPE_ERROR2.format('path', list, type(path)))
        self._method = method
        self._uri = uri
        self._headers = headers
        self._body = body
        self._mount = mount
        self._path = path
        self._query = query
        self._version = version
        self._origin: 'tuple[tuple[str, int] | str | bytes | None, str]' = (client, scheme)

    @property
    def method(self) -> str:
        """One of the seven methods (METHODS)."""
        return self._method

    @property
    def uri(self) -> str:
        """The raw request-target, e.g. '/a/b?c'."""
        return self._uri

    @property
    def headers(self) -> 'dict[str, Any]':
        """Lower-case names to values."""
        return self._headers

    @property
    def body(self) -> 'Body | ChunkedBody | None':
        """None, a Body or a ChunkedBody."""
        return self._body

    @property
    def mount(self) -> 'list[str]':
        """Path components already routed."""
        return self._mount

    @property
    def path(self) -> 'list[str]':
        """Path components not yet routed."""
        return self._path

    @property
    def query(self) -> str | None:
        """None (no '?') or the text after '?'."""
        return self._query

    @property
    def version(self) -> str:
        """'HTTP/1.1' or 'HTTP/1.0'."""
        return self._version

    @property
    def client(self) -> 'tuple[str, int] | str | bytes | None':
        """The client address: (host, port), an AF_UNIX address, or None when unknown."""
        return self._origin[0]

    @property
    def scheme(self) -> str:
        """'http' or 'https', as the client used."""
        return self._origin[1]

    def __repr__(self) -> str:
        return (
            f'Request(method={self._method!r}, uri={self._uri!r}, headers={self._headers!r}, '
            f'body={self._body!r}, mount={self._mount!r}, path={self._path!r}, '
            f'query={self._query!r})'
        )

    def shift_path(self) -> str | None:
        """Move the next path component to ``mount`` and return it (``None`` when done)."""
        if not self._path:
            return None
        component = self._path.pop(0)
        self._mount.append(component)
        return component

    def build_proxy_uri(self) -> str:
        """The URI of the unrouted part: ``'/' + '/'.join(path)`` plus the query."""
        uri = '/' + '/'.join(self._path)
        if self._query is not None:
            return uri + '?' + self._query
        return uri


def _new_request(method, uri, headers, body, path, query, version):
    """A ``Request`` from values the parsers checked (the hot path's constructor)."""
    request = object.__new__(Request)
    request._method = method
    request._uri = uri
    request._headers = headers
    request._body = body
    request._mount = []
    request._path = path
    request._query = query
    request._version = version
    request._origin = _NO_ORIGIN  # the server puts the connection's in
    return request


_NO_ORIGIN = (None, 'http')


MAX_SESSION_REQUESTS = 75000  # the largest max_requests (Session and Server)
DEFAULT_MAX_REQUESTS = 1000  # requests per connection: the server's default
# A Session built without max_requests (an app's tests, say): Degu's 500.  The
# server always passes its own option, so this never applies to a served connection.
SESSION_MAX_REQUESTS = 500


class Session:
    """One connection as an RGI app sees it (doc/rgi.rst).

    >>> s = Session(('127.0.0.1', 5000))
    >>> (s.requests, s.max_requests, s.closed, s.message)
    (0, 500, False, None)
    >>> str(s)
    "('127.0.0.1', 5000)"

    ``client`` is the client's address: the one a PROXY protocol header
    gave (the server's ``proxy_protocol`` option), else the socket peer's
    ``(host, port)``, or its AF_UNIX address.

    >>> Session(('::1', 5000, 0, 0)).client
    ('::1', 5000)
    """

    __slots__ = (
        '_address', '_credentials', '_max_requests', '_requests', '_store', '_message',
        '_client', '_origin', '_proxied', '_rewrite',
    )

    def __init__(
        self,
        address: 'Address',
        credentials: 'tuple[int, int, int] | None' = None,
        max_requests: int | None = None,
        *,
        client: 'tuple[str, int] | None' = None,
        scheme: str = 'http',
    ) -> None:
        if credentials is not None:
            if type(credentials) is not tuple:
                raise TypeError(_TYPE_ERROR2.format('credentials', tuple, type(credentials)))
            if len(credentials) != 3:
                raise ValueError(f'credentials: need a 3-tuple; got a {len(credentials)}-tuple')
        if max_requests is None:
            max_requests = SESSION_MAX_REQUESTS
        elif type(max_requests) is not int:
            raise TypeError(
                _TYPE_ERROR.format('max_requests', int, type(max_requests), max_requests)
            )
        if not (0 <= max_requests <= MAX_SESSION_REQUESTS):
            raise ValueError(
                f'need 0 <= max_requests <= {MAX_SESSION_REQUESTS}; got {max_requests}'
            )
        self._address = address
        self._credentials = credentials
        self._max_requests = max_requests
        self._requests = 0
        self._store: 'dict[str, Any]' = {}
        self._message: str | None = None
        if client is None:
            peer = address[:2] if type(address) is tuple else address
        elif type(client) is not tuple or len(client) != 2:
            raise TypeError(f'client: need a (host, port) tuple; got {client!r}')
        else:
            peer = client
        if scheme not in ('http', 'https'):
            raise ValueError(f"scheme: need 'http' or 'https'; got {scheme!r}")
        self._client: 'tuple[str, int] | str | bytes' = peer
        # What each request gets, without trusted proxies:
        self._origin: 'tuple[tuple[str, int] | str | bytes | None, str]' = (peer, scheme)
        self._proxied = False  # the client is a trusted proxy: requests are looked at
        self._rewrite = False  # each request is looked at (trusted proxy, or a root path)

    @property
    def address(self) -> 'Address':
        """The peer address from accept()."""
        return self._address

    @property
    def credentials(self) -> 'tuple[int, int, int] | None':
        """(pid, uid, gid) or None."""
        return self._credentials

    @property
    def client(self) -> 'tuple[str, int] | str | bytes':
        """The client: a PROXY protocol source address, else the socket peer."""
        return self._client

    @property
    def max_requests(self) -> int:
        return self._max_requests

    @property
    def requests(self) -> int:
        """Requests completely handled."""
        return self._requests

    @property
    def store(self) -> 'dict[str, Any]':
        """A dict for app use on this connection."""
        return self._store

    @property
    def closed(self) -> bool:
        return self._message is not None

    @property
    def message(self) -> str | None:
        """Why the connection is closing."""
        return self._message

    def _close(self, message):
        # The first reason wins.
        if self._message is None:
            self._message = message

    def _count(self):
        self._requests += 1
        if self._requests >= self._max_requests:
            self._close('max_requests')

    def __repr__(self) -> str:
        if self._credentials is None:
            return f'Session({self._address!r})'
        return f'Session({self._address!r}, {self._credentials!r})'

    def __str__(self) -> str:
        if self._credentials is None:
            return repr(self._address)
        return f'{self._address!r} {self._credentials!r}'
