"""The per-connection reader/writer of the shared HTTP engine.

``SocketWrapper(sock)`` owns one connection's buffers.  It needs only
``recv_into``, ``send`` and ``close`` from *sock*, so tests can pass a fake.
Reading goes through one fixed buffer: a preamble is found with one
``bytes.find`` per ``recv_into``, bounded by the limits, and handed to the
parsers in one piece; body bytes are copied out of the buffer or received
straight into the caller's memory.  Writing coalesces a small preamble and
body into one ``send``.  EOF, resets and timeouts become ``ConnectionClosed``
and ``ConnectionTimedOut``; nothing partial passes as complete.

Re-exported by ``degu.base``; import it from there.
"""

import os
import socket
import stat
import struct
import sys
import time

from ._body import (
    BODY_CONSUMED,
    BODY_ERROR,
    BODY_READY,
    BODY_STARTED,
    Body,
    ChunkedBody,
    ConnReader,
    Request,
    Response,
    _new_body,
    _new_request,
    _write_body,
)
from ._framing import (
    CHUNKED,
    CLOSE,
    LENGTH,
    body_framing,
    check_framing_headers,
    request_framing,
    response_framing,
)
from ._parse import (
    _TYPE_ERROR,
    BUF_LEN,
    MAX_HEADER_COUNT,
    MAX_PREAMBLE_LEN,
    MAX_REQUEST_LINE_LEN,
    ConnectionClosed,
    ConnectionTimedOut,
    EmptyPreambleError,
    ParseError,
    UnsupportedResponse,
    _short,
    content_too_large,
    parse_authority,
    parse_headers,
    parse_request_line,
    parse_response_line,
    render_request,
    render_response,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing stays out of the import path
    from typing import Any

__all__ = ('SocketWrapper', 'set_output_headers', 'map_socket_error', 'address_family')

_CRLF = b'\r\n'
_new_response = tuple.__new__  # Response(...) without the namedtuple's Python-level __new__
_SMALL_READ = 4096  # reads this small go through the buffer, which may save a recv
_CONTINUE = b'HTTP/1.1 100 Continue\r\n\r\n'
START_BUF_LEN = 8 * 1024  # 8 KiB: a new connection's read buffer, grown for big preambles
SENDFILE_MIN = 64 * 1024  # 64 KiB: smaller file bodies are cheaper to copy than to sendfile()


def address_family(address: 'tuple | str | bytes') -> socket.AddressFamily:
    """The socket family an *address* selects, after checking it (doc/decisions.rst, 'Addresses').

    Server and client share the rules: a 2-tuple is IPv4 (the client also
    resolves names), a 4-tuple IPv6, a ``str`` an absolute, normalised
    AF_UNIX path, ``bytes`` a Linux abstract AF_UNIX name.  The family is
    never guessed from a host string.

    >>> address_family(('::1', 0, 0, 0)) == socket.AF_INET6
    True
    """
    if isinstance(address, tuple):
        if len(address) == 2:
            return socket.AF_INET
        if len(address) == 4:
            return socket.AF_INET6
        raise ValueError(f'address: must have 2 or 4 items; got {address!r}')
    if isinstance(address, str):
        if os.path.abspath(address) != address:
            raise ValueError(f'address: bad socket filename: {address!r}')
        return socket.AF_UNIX
    if isinstance(address, bytes):
        return socket.AF_UNIX
    raise TypeError(_TYPE_ERROR.format('address', (tuple, str, bytes), type(address), address))


def map_socket_error(exc: BaseException, what: str) -> 'ConnectionClosed | None':
    """The ``ConnectionClosed`` an ``OSError`` from a socket means, or ``None``.

    Resets, broken pipes, aborts and TLS EOFs are ``ConnectionClosed``;
    timeouts are ``ConnectionTimedOut``; other errors stay as they are.
    """
    if isinstance(exc, ConnectionClosed):
        return None
    if isinstance(exc, TimeoutError):
        return ConnectionTimedOut(f'{what} timed out')
    if isinstance(exc, ConnectionError):
        return ConnectionClosed(f'{what}: {type(exc).__name__}: {exc}')
    ssl = sys.modules.get('ssl')  # loaded already if this could be a TLS error
    if ssl is not None and isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return ConnectionClosed(f'{what}: {type(exc).__name__}: {exc}')
    return None


def set_output_headers(headers: 'dict[str, Any]', body: object) -> None:
    """Add the framing field *body* implies to *headers*, or check the one given.

    ``None`` adds nothing; a ``Body`` of unknown length is chunked.  The
    rules are those of ``degu._framing.body_framing()``.

    >>> h = {}
    >>> set_output_headers(h, b'hello')
    >>> h
    {'content-length': 5}
    """
    if body is None:
        return
    (kind, length) = body_framing(body)
    check_framing_headers(headers, kind, length)
    if kind == LENGTH:
        headers.setdefault('content-length', length)
    else:
        headers.setdefault('transfer-encoding', 'chunked')


class SocketWrapper(ConnReader):
    """Buffered reading and writing of HTTP messages over one socket.

    *max_preamble* bounds a whole preamble (CRLFCRLF included) and
    *max_header_count* its header fields; *max_body* (``None`` for no limit)
    bounds a request body: a longer ``content-length`` is refused with 413
    when the request is read, a chunked body when it grows past it.  With
    *timeout* set, a whole preamble must arrive within *timeout* seconds of
    its first byte, and the wait for that first byte is bounded by
    *idle_timeout*; the socket's own timeout is then left at *timeout*.
    *close_on_error* says whether a body that fails closes the connection at
    once (client) or leaves the error in ``error`` for the owner to answer
    (server).
    """

    __slots__ = (
        'sock',
        '_recv_into',
        '_send',
        '_buf',
        '_view',
        '_start',
        '_stop',
        '_wparts',
        '_wlen',
        '_closed',
        '_continue',
        'max_preamble',
        'max_header_count',
        'timeout',
        'idle_timeout',
        'close_on_error',
        'error',
        'max_body',
        'sends',
        'reset',
        '_native',
        '_rcv_timeout',
        '__weakref__',
    )

    def __init__(
        self,
        sock: 'Any',
        *,
        max_preamble: int = MAX_PREAMBLE_LEN,
        max_header_count: int = MAX_HEADER_COUNT,
        timeout: float | None = None,
        idle_timeout: float | None = None,
        close_on_error: bool = True,
        max_body: int | None = None,
    ) -> None:
        self._recv_into = _method(sock, 'recv_into')
        self._send = _method(sock, 'send')
        _method(sock, 'close')
        self.sock = sock
        # Small at first (what an idle connection costs), grown to the whole
        # preamble limit the first time a preamble does not fit.
        self._buf = bytearray(min(START_BUF_LEN, max(BUF_LEN, max_preamble)))
        self._view = memoryview(self._buf)
        self._start = 0
        self._stop = 0
        self._wparts: 'list[bytes]' = []
        self._wlen = 0
        self._closed = False
        self._continue = False
        self.max_preamble = max_preamble
        self.max_header_count = max_header_count
        self.timeout = timeout
        self.idle_timeout = idle_timeout
        self.close_on_error = close_on_error
        self.error: 'BaseException | None' = None
        self.max_body = max_body
        self.sends = 0  # send attempts so far: the server tells if a response started
        # True once a send failed because the peer reset or closed: an EOF
        # read afterwards cannot prove a close-delimited body complete, as
        # the reset may have destroyed what was still in flight.
        self.reset = False
        self._native = False
        self._rcv_timeout = None
        if type(sock) is socket.socket and (timeout is not None or sock.gettimeout()):
            self._use_native_timeouts(sock, timeout or sock.gettimeout())

    def __repr__(self) -> str:
        return f'SocketWrapper({self.sock!r})'

    # ------------------------------------------------------------------
    # Timeouts.  A Python socket with a timeout polls before every recv and
    # send (two syscalls where one would do), and settimeout() is an ioctl.
    # So a plain socket is made blocking, with the kernel enforcing the
    # timeouts (SO_RCVTIMEO, SO_SNDTIMEO): one syscall per operation, and
    # the receive timeout is switched between idle_timeout and timeout only
    # when the wait at hand needs the other one.  A timed-out operation
    # fails with EAGAIN, which becomes ConnectionTimedOut.

    def _use_native_timeouts(self, sock, timeout):
        self.timeout = timeout
        sock.settimeout(None)
        _set_timeout(sock, socket.SO_SNDTIMEO, timeout)
        _set_timeout(sock, socket.SO_RCVTIMEO, timeout)
        self._rcv_timeout = timeout
        self._native = True

    def _set_recv_timeout(self, timeout):
        if timeout != self._rcv_timeout:
            _set_timeout(self.sock, socket.SO_RCVTIMEO, timeout)
            self._rcv_timeout = timeout

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> object:
        """Close the socket once; later calls do nothing and return ``None``."""
        if self._closed:
            return None
        self._closed = True
        self._wparts = []
        return self.sock.close()

    def __del__(self):
        # getattr: __init__ may have failed before setting _closed (a bad sock)
        if not getattr(self, '_closed', True):
            self._closed = True
            try:
                self.sock.close()
            except Exception:  # pragma: no cover - nothing to do about it at GC time
                pass

    def body_failed(self, exc: BaseException) -> None:
        """A body over this connection failed: remember why, close if asked to."""
        if self.error is None:
            self.error = exc
        if self.close_on_error:
            self.close()

    @property
    def buffered(self) -> int:
        """Bytes received but not yet read (a pipelined request, say)."""
        return self._stop - self._start

    # ------------------------------------------------------------------
    # Reading

    def _recv(self, view, what, wait=None):
        # wait: the receive timeout this call needs (None: self.timeout);
        # only a native-timeout socket switches here.
        if self._closed:
            raise ConnectionClosed('Connection is closed')
        if self._native:
            wait = wait or self.timeout
            if wait != self._rcv_timeout:
                self._set_recv_timeout(wait)
        try:
            return self._recv_into(view)
        except OSError as e:
            mapped = self._map(e, what)
            if mapped is None:
                raise
            raise mapped from e

    def _map(self, exc, what):
        if self._native and isinstance(exc, BlockingIOError):
            return ConnectionTimedOut(f'{what} timed out')
        return map_socket_error(exc, what)

    def _fill(self, what, wait=None):
        """One ``recv_into`` into the free end of the buffer; returns the count."""
        stop = self._stop
        if self._start == stop:
            self._start = self._stop = stop = 0
        elif stop == len(self._buf):
            self._compact()
            stop = self._stop
        received = self._recv(self._view[stop:], what, wait)
        self._stop = stop + received
        return received

    def _grow(self, size):
        # A bigger buffer holding what the old one held, from offset 0.
        stop = self._stop - self._start
        buf = bytearray(size)
        buf[:stop] = self._view[self._start : self._stop]
        self._buf = buf
        self._view = memoryview(buf)
        self._start = 0
        self._stop = stop

    def _compact(self):
        start = self._start
        if start:
            stop = self._stop
            self._buf[: stop - start] = self._view[start:stop]
            self._start = 0
            self._stop = stop - start

    def _wait_first(self, what):
        # The first byte of a preamble: bounded by idle_timeout
        # (doc/decisions.rst, 'Timeouts').
        idle = self.idle_timeout
        if idle is None or idle == self.timeout or self._native:
            return self._fill(what, idle)
        sock = self.sock
        sock.settimeout(idle)
        try:
            return self._fill(what)
        finally:
            if not self._closed:
                sock.settimeout(self.timeout)

    def _read_preamble(self, kind, what):
        # The next preamble, CRLFCRLF stripped: one find() in what the last
        # recv brought, one copy out of the buffer (the common case).
        start = self._start
        if start == self._stop:
            if self._wait_first(what) == 0:
                raise EmptyPreambleError(f'{kind} preamble is empty')
            start = self._start
        idx = self._buf.find(b'\r\n\r\n', start, self._stop)
        if idx < 0 or idx + 4 - start > self.max_preamble:
            idx = self._read_more_preamble(kind)
            start = self._start
        self._start = idx + 4
        return bytes(self._view[start:idx])

    def _read_more_preamble(self, kind):
        limit = self.max_preamble
        what = f'reading {kind} preamble'
        timeout = self.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        self._compact()
        if len(self._buf) < max(BUF_LEN, limit):
            self._grow(max(BUF_LEN, limit))
        searched = 0
        try:
            while True:
                idx = self._buf.find(b'\r\n\r\n', searched, self._stop)
                searched = max(0, self._stop - 3)
                if idx >= 0 and idx + 4 <= limit:
                    return idx
                if idx >= 0 or self._stop >= limit:
                    raise self._too_large(kind)
                left = None
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise ConnectionTimedOut(f'{kind} preamble not complete in {timeout}s')
                    if not self._native:
                        self.sock.settimeout(left)
                received = self._recv(self._view[self._stop : limit], what, left)
                if received == 0:
                    raise ConnectionClosed(
                        f'{kind} preamble truncated: {_short(self._view[: self._stop])}'
                    )
                self._stop += received
        finally:
            if deadline is not None and not self._closed and not self._native:
                self.sock.settimeout(timeout)

    def _too_large(self, kind):
        if kind == 'request' and self._buf.find(_CRLF, 0, MAX_REQUEST_LINE_LEN + 2) < 0:
            return ParseError(
                f'request line too long: over {MAX_REQUEST_LINE_LEN} bytes', 414, 'URI Too Long'
            )
        return ParseError(
            f'{kind} preamble too large: over {self.max_preamble} bytes',
            431,
            'Request Header Fields Too Large',
        )

    def read_request(self) -> Request:
        """Read and parse the next request preamble; returns a ``Request``.

        Raises ``EmptyPreambleError`` when the peer closed before sending a
        byte, ``ValueError`` (or ``ParseError``) for a malformed preamble.
        Empty lines before a request line are skipped (RFC 9112 section 2.2).
        A ``host`` must be valid (section 3.2; the server refuses an HTTP/1.1
        request without one); the authority of an absolute-form target
        replaces it (section 3.2.2).  A ``range`` on a method other than GET
        is dropped (RFC 9110 section 14.2).
        """
        preamble = self._read_preamble('request', 'reading request preamble')
        if preamble[:2] == _CRLF or not preamble:
            preamble = self._skip_empty_lines(preamble)
        (line, _, block) = preamble.partition(_CRLF)
        (method, uri, path, query, version) = parse_request_line(line)
        headers = parse_headers(block, False, self.max_header_count) if block else {}
        if line[len(method) + 1] != 0x2F:  # '/': not origin-form
            authority = parse_authority(line[len(method) + 1 :])
            # An HTTP/1.1 request without host stays without (it gets 400).
            if authority is not None and ('host' in headers or version != 'HTTP/1.1'):
                headers['host'] = authority
        if 'range' in headers and method != 'GET':
            del headers['range']
        (kind, length) = request_framing(headers)
        if kind == LENGTH:
            if self.max_body is not None and length > self.max_body:
                raise content_too_large(f'body too large: {length} > {self.max_body}')
            body = _new_body(self, length)
        elif kind == CHUNKED:
            body = ChunkedBody(self)
        else:
            body = None
        return _new_request(method, uri, headers, body, path, query, version)

    def _skip_empty_lines(self, preamble):
        while preamble[:2] == _CRLF:
            preamble = preamble[2:]
        if not preamble:
            # CRLF CRLF alone, or a request line hiding after it: once more.
            preamble = self._read_preamble('request', 'reading request preamble')
            while preamble[:2] == _CRLF:
                preamble = preamble[2:]
            if not preamble:
                raise ValueError('empty request line')
        return preamble

    def read_response(self, method: str) -> Response:
        """Read and parse the next response preamble; returns a ``Response``.

        The body follows ``degu._framing.response_framing()``: ``None`` for
        HEAD and for 1xx, 204 and 304 responses whatever the headers say; a
        ``Body`` or ``ChunkedBody`` by the framing field; and without one, a
        ``Body`` whose ``content_length`` is ``None``, read until the server
        closes (RFC 9112 section 6.3).
        """
        return self.read_response_head(method)[0]

    def read_response_head(self, method: str) -> 'tuple[Response, str, int]':
        """``read_response()``, with what persistence needs: ``(response, version, kind)``.

        *version* is that of the status line, *kind* the framing decision
        (``degu._framing``).
        """
        preamble = self._read_preamble('response', 'reading response preamble')
        (line, _, block) = preamble.partition(_CRLF)
        (version, status, reason) = parse_response_line(line)
        try:
            headers = parse_headers(block, True, self.max_header_count)
        except ParseError as e:
            if e.status == 501:
                raise UnsupportedResponse(str(e)) from e
            raise
        (kind, length) = response_framing(method, status, headers)
        if kind == LENGTH:
            body = _new_body(self, length)
        elif kind == CHUNKED:
            body = ChunkedBody(self)
        elif kind == CLOSE:
            body = Body(self, None)
        else:
            body = None
        response = _new_response(Response, (status, reason, headers, body))  # no Python frame
        return (response, version, kind)

    def expect_continue(self) -> None:
        """Arm the lazy ``100 Continue``: sent just before the first body byte is read."""
        self._continue = True

    @property
    def continue_pending(self) -> bool:
        """True while an armed ``100 Continue`` was not sent (the body is untouched)."""
        return self._continue

    def _send_continue(self):
        self._continue = False
        self._sendall(_CONTINUE, 'sending 100 Continue')

    def read_exact(self, size: int) -> bytes:
        """Exactly *size* bytes as ``bytes``; ``ConnectionClosed`` if the peer closes first."""
        if self._continue:
            self._send_continue()
        start = self._start
        avail = self._stop - start
        if avail >= size:
            self._start = start + size
            return bytes(self._view[start : start + size])
        if size <= _SMALL_READ:
            self._compact()
            while self._stop < size:
                if self._fill('reading body') == 0:
                    raise self._eof(size, self._stop)
            self._start = size
            return bytes(self._view[:size])
        buf = bytearray(size)
        self.readinto_exact(memoryview(buf))
        return bytes(buf)

    def readinto_exact(self, view: memoryview) -> int:
        """Fill all of *view*: buffered bytes first, then ``recv_into`` straight into it."""
        if self._continue:
            self._send_continue()
        size = len(view)
        start = self._start
        avail = self._stop - start
        if avail >= size:
            view[:] = self._view[start : start + size]
            self._start = start + size
            return size
        view[:avail] = self._view[start : self._stop]
        self._start = self._stop = 0
        got = avail
        while got < size:
            received = self._recv(view[got:], 'reading body')
            if received == 0:
                raise self._eof(size, got)
            got += received
        return size

    def _eof(self, size, got):
        return ConnectionClosed(f'expected to read {size} bytes, but received {got}')

    def readinto_some(self, view: memoryview) -> int:
        """Fill part of *view* with what is buffered, or else with one ``recv``; 0 at EOF."""
        if self._continue:
            self._send_continue()
        start = self._start
        avail = self._stop - start
        if avail:
            size = min(avail, len(view))
            view[:size] = self._view[start : start + size]
            self._start = start + size
            return size
        return self._recv(view, 'reading body')

    def _clean_eof(self):
        # The end of a close-delimited body: complete only if the peer
        # closed cleanly (RFC 9112 section 8).  After a reset, the EOF that
        # follows proves nothing: data in flight may have been destroyed.
        if self.reset:
            raise ConnectionClosed('connection was reset: the body may be incomplete')
        return b''

    def read_some(self, size: int, all_of_it: bool = False) -> bytes:
        """Up to *size* bytes, ``b''`` at EOF; with *all_of_it*, everything until EOF.

        For bodies that run until the connection closes.  Reading everything
        refuses more than *size* bytes rather than allocating them.  The EOF
        is a ``ConnectionClosed`` once a send failed on a reset connection.
        """
        if not all_of_it:
            if self._start == self._stop and self._fill('reading body') == 0:
                return self._clean_eof()
            start = self._start
            end = min(self._stop, start + size)
            self._start = end
            return bytes(self._view[start:end])
        parts: 'list[bytes]' = []
        total = 0
        while True:
            if self._start == self._stop and self._fill('reading body') == 0:
                self._clean_eof()
                return b''.join(parts)
            total += self._stop - self._start
            if total > size:
                raise content_too_large(f'would exceed max read size: {total} > {size}')
            parts.append(bytes(self._view[self._start : self._stop]))
            self._start = self._stop

    def readline(self, limit: int) -> bytes:
        """One line of at most *limit* bytes, its CRLF included (chunk and trailer lines)."""
        if self._continue:
            self._send_continue()
        buf = self._buf
        idx = buf.find(_CRLF, self._start, min(self._stop, self._start + limit))
        if idx < 0:
            # Compact first: _fill() resets an empty buffer to offset 0, which
            # would make the search start below stale past the new data.
            self._compact()
            while True:
                searched = self._stop
                end = self._start + limit
                if searched >= end:
                    found = _short(self._view[self._start : end])
                    raise ValueError(f"b'\\r\\n' not found in {found}")
                if self._fill('reading chunk line') == 0:
                    raise ConnectionClosed(
                        f'chunk line truncated: {_short(self._view[self._start : self._stop])}'
                    )
                idx = buf.find(_CRLF, max(self._start, searched - 1), min(self._stop, end))
                if idx >= 0:
                    break
        start = self._start
        self._start = idx + 2
        return bytes(self._view[start : idx + 2])

    # ------------------------------------------------------------------
    # Writing

    def _sendall(self, data, what='sending'):
        if self._closed:
            raise ConnectionClosed('Connection is closed')
        send = self._send
        self.sends += 1
        try:
            sent = send(data)
            size = len(data)
            if sent != size:
                view = memoryview(data)
                while sent < size:
                    n = send(view[sent:])
                    if not n:  # a real socket blocks or raises; this is a broken one
                        raise ConnectionClosed(f'{what}: send() returned {n!r}')
                    sent += n
        except OSError as e:
            mapped = self._map(e, what)
            if mapped is None:
                raise
            if not isinstance(mapped, ConnectionTimedOut):
                self.reset = True
            raise mapped from e

    def write(self, data: 'bytes | bytearray | memoryview') -> int:
        """Buffered write of *data*; returns ``len(data)``.  Call ``flush()`` to send."""
        size = len(data)
        if self._wlen + size <= BUF_LEN:
            self._wparts.append(data if type(data) is bytes else bytes(data))
            self._wlen += size
            return size
        self.flush()
        if size < BUF_LEN // 2:
            self._wparts.append(data if type(data) is bytes else bytes(data))
            self._wlen = size
        else:
            self._sendall(data)
        return size

    def discard_writes(self) -> None:
        """Drop what ``write()`` buffered and was not sent yet."""
        self._wparts = []
        self._wlen = 0

    def flush(self) -> None:
        """Send whatever ``write()`` buffered, in one ``send`` when it can."""
        parts = self._wparts
        if parts:
            self._wparts = []
            self._wlen = 0
            self._sendall(parts[0] if len(parts) == 1 else b''.join(parts))

    def write_message(self, preamble: bytes, body: 'Any', kind: int = LENGTH) -> int:
        """Send a rendered *preamble* and its *body*; returns the total bytes sent.

        *kind* is how the preamble framed the body (``degu._framing``):
        ``LENGTH`` sends the data as it is, ``CHUNKED`` chunk-encodes it,
        ``CLOSE`` sends a chunked body's data alone (for an HTTP/1.0 peer).
        A ``bytes`` body goes out with the preamble in one ``send``; a body
        object goes out as it is produced: the preamble with its first
        piece, and each piece before the next is asked for (see
        ``degu._body``).
        """
        if body is None:
            self.flush()
            self._sendall(preamble)
            return len(preamble)
        if type(body) is bytes:
            self.flush()
            if len(body) <= BUF_LEN:
                self._sendall(preamble + body)
            else:
                if preamble:  # b'' after 100 Continue: the body alone
                    self._sendall(preamble)
                self._sendall(body)
            return len(preamble) + len(body)
        if kind == LENGTH and isinstance(body, Body) and self._can_sendfile(body):
            return self._sendfile(preamble, body)
        self.write(preamble)
        total = len(preamble) + _write_body(body, self, kind == CHUNKED)
        self.flush()
        return total

    def _can_sendfile(self, body):
        # Only a plain socket (not TLS, not a fake) and a regular file whose
        # position is known; anything else goes through write_to().
        if type(self.sock) is not socket.socket or body._state != BODY_READY:
            return False
        if body._reader is body._rfile or body._content_length < SENDFILE_MIN:
            return False
        try:
            return stat.S_ISREG(os.fstat(body._rfile.fileno()).st_mode)
        except (AttributeError, OSError, ValueError):
            return False

    def _sendfile(self, preamble, body):
        """Send a file body with ``socket.sendfile()``: no copy through user space."""
        self.write(preamble)
        self.flush()
        rfile = body._rfile
        count = body._content_length
        body._state = BODY_STARTED
        sock = self.sock
        try:
            if self._native:
                # socket.sendfile() waits for a blocking socket without a
                # bound: give it the Python-level timeout for the transfer.
                sock.settimeout(self.timeout)
            sent = sock.sendfile(rfile, rfile.tell(), count)
            if sent != count:
                raise ValueError(f'expected to write {count} bytes, but sent {sent}')
        except BaseException as e:
            body._state = BODY_ERROR
            mapped = self._map(e, 'sending file') if isinstance(e, OSError) else None
            if mapped is not None:
                raise mapped from e
            raise
        finally:
            if self._native and not self._closed and sock.fileno() >= 0:
                sock.settimeout(None)
        body._remaining = 0
        body._state = BODY_CONSUMED
        return len(preamble) + count

    def write_request(
        self, method: str, uri: str, headers: 'dict[str, Any]', body: object
    ) -> int:
        """Frame, render and send a request; returns the bytes sent."""
        set_output_headers(headers, body)
        kind = CHUNKED if 'transfer-encoding' in headers else LENGTH
        return self.write_message(render_request(method, uri, headers), body, kind)

    def write_response(
        self, status: int, reason: str, headers: 'dict[str, Any]', body: object
    ) -> int:
        """Frame, render and send a response; returns the bytes sent."""
        set_output_headers(headers, body)
        kind = CHUNKED if 'transfer-encoding' in headers else LENGTH
        return self.write_message(render_response(status, reason, headers), body, kind)


def _set_timeout(sock, option, seconds):
    # struct timeval; 0 would mean "no timeout", so at least 1 microsecond.
    micros = max(1, round(seconds * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, option, struct.pack('ll', *divmod(micros, 1_000_000)))


def _method(obj, name):
    m = getattr(obj, name)
    if not callable(m):
        raise TypeError(f'sock.{name}() is not callable')
    return m
