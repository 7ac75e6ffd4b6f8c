"""The transport: buffered bytes over one socket, knowing nothing of HTTP.

``Transport(sock)`` needs only ``recv_into``, ``send`` and ``close`` from
*sock* (tests pass a fake, see tests/helpers.py).  It offers:

* reads through one buffer: ``read_block()`` (bytes up to a delimiter,
  bounded in size and time), ``readline()``, ``read_exact()``,
  ``readinto_exact()``, ``readinto_some()``, ``read_some()``;
* writes: ``write()`` into a small write buffer, ``flush()``,
  ``sendall()``, and ``sendfile()`` for a plain socket;
* one timeout policy (below), and one place, ``map_socket_error()``, that
  turns a socket's errors into ``ConnectionClosed`` and
  ``ConnectionTimedOut``;
* two generic hooks its owner sets: ``send_before_read`` (bytes sent lazily
  just before the next body read: the server's ``100 Continue``) and
  ``on_failure`` (a reader lost its place in the stream: the server records
  why, the default closes the transport).

The HTTP readers and writers (``degu._io``) and the body objects
(``degu._body``) are built on it; the server and the client own one each.
"""

import os
import socket
import struct
import sys
import time

from ._body import ConnReader
from ._common import _bound_method
from ._parse import (
    _TYPE_ERROR,
    BUF_LEN,
    ConnectionClosed,
    ConnectionTimedOut,
    _short,
    content_too_large,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing stays out of the import path
    from typing import Any, Callable

__all__ = ('Transport', 'BlockTooLarge', 'map_socket_error', 'address_family')

_CRLF = b'\r\n'
_SMALL_READ = 4096  # reads this small go through the buffer, which may save a recv
START_BUF_LEN = 8 * 1024  # 8 KiB: a new connection's read buffer, grown for big blocks
# 256 KiB: the most a read of a declared size allocates before its bytes
# arrive.  A peer that declares a 16 MiB chunk and sends nothing costs this,
# not 16 MiB; larger reads grow piece by piece as the data comes.
READ_PIECE = 256 * 1024


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

    The one place that maps socket errors: resets, broken pipes, aborts and
    TLS EOFs are ``ConnectionClosed``; timeouts, and the ``EAGAIN`` of a
    kernel timeout, are ``ConnectionTimedOut``; other errors stay as they are.

    >>> map_socket_error(BrokenPipeError(32, 'Broken pipe'), 'sending')
    ConnectionClosed('sending: BrokenPipeError: [Errno 32] Broken pipe')
    """
    if isinstance(exc, ConnectionClosed):
        return None
    if isinstance(exc, (TimeoutError, BlockingIOError)):
        return ConnectionTimedOut(f'{what} timed out')
    if isinstance(exc, ConnectionError):
        return ConnectionClosed(f'{what}: {type(exc).__name__}: {exc}')
    ssl = sys.modules.get('ssl')  # loaded already if this could be a TLS error
    if ssl is not None and isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return ConnectionClosed(f'{what}: {type(exc).__name__}: {exc}')
    return None


def receive_nowait(sock: 'Any', view: memoryview) -> int | None:
    """Receive into *view* what arrived already, without waiting.

    Returns the byte count, 0 at EOF (or a socket error), ``None`` when
    nothing has arrived.  A TLS socket has no ``MSG_DONTWAIT``: it is made
    non-blocking for the call (unless it is already), and it also gives
    what its TLS layer decrypted already (``pending()``), which a selector
    cannot see.
    """
    pending = getattr(sock, 'pending', None)
    if pending is None:
        try:
            return sock.recv_into(view, 0, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            return 0
    import ssl  # loaded already: the socket is an SSLSocket

    timeout = sock.gettimeout()
    if timeout != 0.0:
        sock.settimeout(0.0)
    got = 0
    try:
        while got < len(view):
            received = sock.recv_into(view[got:])
            if not received:
                return got
            got += received
            if not pending():
                break
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError, InterruptedError):
        return got or None
    except OSError:
        return got
    finally:
        if timeout != 0.0:
            sock.settimeout(timeout)
    return got


class BlockTooLarge(ValueError):
    """``read_block()`` found no delimiter within its limit.

    ``head`` holds the first bytes received (at most the limit), for the
    caller to say what was too large.
    """

    def __init__(self, message: str, head: bytes) -> None:
        super().__init__(message)
        self.head = head


class Transport(ConnReader):
    """Buffered reading and writing of bytes over one socket.

    *timeout* bounds every socket operation and a whole ``read_block()``
    from its first byte; *idle_timeout* bounds the wait for that first
    byte.  *on_failure* is called with the exception when a reader of this
    transport (a body) failed midway; without it the transport closes, as
    the stream's position is lost.

    Timeouts: a Python socket with a timeout polls before every recv and
    send (two syscalls where one would do), and ``settimeout()`` is a
    syscall too.  So a plain ``socket.socket`` is made blocking, with the
    kernel enforcing the timeouts (``SO_RCVTIMEO``, ``SO_SNDTIMEO``): one
    syscall per operation, and the receive timeout is switched only when a
    wait needs another one.  Other sockets (TLS, fakes) keep Python-level
    timeouts.  Either way a timed-out operation is a ``ConnectionTimedOut``.
    Measured with benchmarks/run.py roundtrip, side by side with
    Python-level timeouts: 14-16 % more requests per second over IPv6, 9-11 %
    over AF_UNIX; the server makes 2 syscalls per request instead of 6.
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
        'timeout',
        'idle_timeout',
        'sends',
        'reset',
        'send_before_read',
        'on_failure',
        '_left',
        '_rate',
        '_native',
        '_wait',
        '_size',
        '__weakref__',
    )

    def __init__(
        self,
        sock: 'Any',
        *,
        timeout: float | None = None,
        idle_timeout: float | None = None,
        on_failure: 'Callable[[BaseException], object] | None' = None,
        buffer_size: int = START_BUF_LEN,
    ) -> None:
        self._recv_into = _bound_method(sock, 'recv_into', 'sock')
        self._send = _bound_method(sock, 'send', 'sock')
        _bound_method(sock, 'close', 'sock')
        self.sock = sock
        # Small at first (what an idle connection costs), grown when a
        # block does not fit.
        self._size = buffer_size
        self._buf = bytearray(buffer_size)
        self._view = memoryview(self._buf)
        self._start = 0
        self._stop = 0
        self._wparts: 'list[bytes]' = []
        self._wlen = 0
        self._closed = False
        self.idle_timeout = idle_timeout
        self.sends = 0  # send attempts so far: tells an owner if a message started
        # True once a send failed because the peer reset or closed: an EOF
        # read afterwards cannot prove data complete, as the reset may have
        # destroyed what was still in flight.
        self.reset = False
        self.send_before_read: bytes | None = None
        self.on_failure = on_failure
        self._left: float | None = None  # see start_deadline()
        self._rate = 0
        if timeout is None:
            timeout = getattr(sock, 'gettimeout', lambda: None)()
        self.timeout = timeout
        self._wait = timeout  # the receive timeout the socket has now
        self._native = type(sock) is socket.socket and timeout is not None
        if self._native:
            sock.settimeout(None)
            _set_timeout(sock, socket.SO_SNDTIMEO, timeout)
            _set_timeout(sock, socket.SO_RCVTIMEO, timeout)

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.sock!r})'

    # ------------------------------------------------------------------
    # The timeout policy: one method switches the socket's receive timeout

    def _set_wait(self, seconds):
        # Native: SO_RCVTIMEO alone.  Python-level: settimeout(), which
        # also bounds sends, so sending switches back to self.timeout.
        self._wait = seconds
        if self._native:
            _set_timeout(self.sock, socket.SO_RCVTIMEO, seconds)
        else:
            self.sock.settimeout(seconds)

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
        """A reader over this transport failed midway: tell the owner, or close."""
        if self.on_failure is not None:
            self.on_failure(exc)
        else:
            self.close()

    def receive_available(self) -> int | None:
        """One receive of what has arrived already, without waiting for more.

        Into the buffer, like any read: returns the byte count, 0 at EOF (or
        a socket error), ``None`` when nothing has arrived or the buffer is
        full.  For an owner that waits with a selector (the server's accept
        loop).
        """
        if not self._buf:  # released while idle: a new one for what comes
            self._buf = bytearray(self._size)
            self._view = memoryview(self._buf)
        self._compact()  # off the hot path: a partial preamble moves to the front
        stop = self._stop
        if stop == len(self._buf):
            return None  # full: nothing can be received before someone reads
        received = receive_nowait(self.sock, self._view[stop:])
        if received:
            self._stop = stop + received
        return received

    def release_buffer(self) -> bool:
        """Let the read buffer go while nothing is buffered; True if it went.

        For a connection that waits idle in a selector: the buffer is most of
        what it costs (8 KiB of 9.6).  The next ``receive_available()`` makes
        a new one; nothing else may read before it.
        """
        if self._start != self._stop:
            return False
        self._buf = bytearray()
        self._view = memoryview(self._buf)
        self._start = self._stop = 0
        return True

    def has_pending(self) -> bool:
        """True when a TLS socket holds bytes it decrypted already, which no selector sees."""
        pending = getattr(self.sock, 'pending', None)
        return pending is not None and pending() > 0

    def receive_more(self, wait: float, what: str) -> int:
        """One receive into the buffer, waiting at most *wait* seconds; 0 at EOF.

        Nothing is consumed: the bytes stay buffered for the next read.  For
        an owner that waits a little for more of a message before deciding
        what to do with it (the server, for a request body).  Nothing
        arriving in time is a ``ConnectionTimedOut``.  The buffer must have
        room (``holds()`` is False).
        """
        return self._fill(what, wait)

    def holds(self, count: int) -> bool:
        """True when *count* bytes are buffered, or as many as the buffer can hold."""
        return self._stop - self._start >= min(count, len(self._buf))

    def scan(self, scanner: 'Callable[[bytearray, int, int], Any]') -> 'Any':
        """``scanner(buf, start, stop)`` over the bytes buffered, consuming nothing.

        For an owner that looks at what arrived before reading it (the
        server, to see whether a request body's first chunk is there).
        """
        return scanner(self._buf, self._start, self._stop)

    def detach(self) -> 'Any':
        """The socket, which this transport no longer closes; the transport is closed."""
        self._closed = True
        self._wparts = []
        return self.sock

    def holds_block(self, end: bytes, limit: int) -> bool:
        """True when the buffer holds a whole *end*-delimited block, or is full (*limit*)."""
        if self._buf.find(end, self._start, self._stop) >= 0:
            return True
        return self._stop - self._start >= min(limit, len(self._buf))

    def put_back(self, data: bytes) -> None:
        """Take *data* as received, ahead of what comes next from the socket.

        For bytes an owner read before the transport existed (the server's
        accept loop reads a new connection's first preamble).
        """
        self._compact()
        stop = self._stop + len(data)
        if stop > len(self._buf):
            self._grow(stop)
        self._buf[self._stop : stop] = data
        self._stop = stop

    @property
    def buffered(self) -> int:
        """Bytes received but not yet read (a pipelined request, say)."""
        return self._stop - self._start

    # ------------------------------------------------------------------
    # Reading

    def _recv(self, view, what, wait=None):
        # what: what is being read, for the error message ('body');
        # wait: the receive timeout this call needs (None: self.timeout).
        if self._closed:
            raise ConnectionClosed('Connection is closed')
        if wait is None:
            wait = self.timeout
        left = self._left
        if left is not None:
            self._check_deadline(f'reading {what}')
            started = time.monotonic()
        if wait != self._wait:
            self._set_wait(wait)
        try:
            received = self._recv_into(view)
        except OSError as e:
            mapped = map_socket_error(e, f'reading {what}')
            if mapped is None:
                raise
            raise mapped from e
        finally:
            if left is not None and self._left is not None:
                self._left -= time.monotonic() - started
        if left is not None and self._left is not None:
            self._left += received / self._rate
        return received

    # ------------------------------------------------------------------
    # Transfer deadlines: a whole transfer, not only each operation

    def start_deadline(self, seconds: float, min_rate: int) -> None:
        """Bound the time spent waiting on the peer from now on, until ``stop_deadline()``.

        Reads and sends may block for *seconds* in all, plus one second for
        every *min_rate* bytes they move: a peer that keeps each operation
        within ``timeout`` but moves less than *min_rate* bytes per second
        (one byte a second, say) runs out of time, a ``ConnectionTimedOut``.
        Only the time blocked on the peer counts, never the time between
        operations (a slow app, an event stream's pauses).  The check comes
        before each ``recv()`` and ``send()``, which keep their own
        ``timeout``: a silent peer overruns by up to ``timeout``, and no
        socket option changes on the way (no syscall).  (The server's
        request loop sets ``_left`` and ``_rate`` itself, a measured saving:
        a change here goes there too.)
        """
        self._left = seconds
        self._rate = min_rate

    def stop_deadline(self) -> None:
        """Back to the per-operation timeout alone."""
        self._left = None

    def _check_deadline(self, what):
        if self._left <= 0:
            self._left = None  # once: the error is final
            raise ConnectionTimedOut(f'{what}: slower than {self._rate} bytes per second')

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

    def read_block(self, end: bytes, limit: int, what: str) -> bytes | None:
        """The bytes before the next *end*, which is consumed; ``None`` at a clean EOF.

        The block, *end* included, must fit in *limit* bytes
        (``BlockTooLarge`` otherwise).  The wait for its first byte is
        bounded by ``idle_timeout``, and the whole block must arrive within
        ``timeout`` of that (``ConnectionTimedOut``).  An EOF after the
        first byte is a ``ConnectionClosed`` naming *what* was truncated.
        One ``find()`` per ``recv_into`` and one copy out of the buffer in
        the common case (the block arrived in one piece).
        """
        start = self._start
        if start == self._stop:
            # _fill() on an empty buffer, written out: no call and no slice
            # of the view (a new memoryview), 1,550 instructions fewer per
            # request on the server and the client (callgrind over
            # benchmarks/hotpath.py).
            idle = self.idle_timeout
            self._start = self._stop = start = 0
            received = self._recv(self._view, what, self.timeout if idle is None else idle)
            if received == 0:
                return None
            self._stop = received
        idx = self._buf.find(end, start, self._stop)
        if idx < 0 or idx + len(end) - start > limit:
            idx = self._read_more_block(end, limit, what)
            start = self._start
        self._start = idx + len(end)
        # tobytes(), not bytes(): 600-740 instructions fewer per copy (the
        # constructor parses its arguments and asks for a buffer).
        return self._view[start:idx].tobytes()

    def _read_more_block(self, end, limit, what):
        timeout = self.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        self._compact()
        if len(self._buf) < max(BUF_LEN, limit):
            self._grow(max(BUF_LEN, limit))
        searched = 0
        while True:
            idx = self._buf.find(end, searched, self._stop)
            searched = max(0, self._stop - len(end) + 1)
            if idx >= 0 and idx + len(end) <= limit:
                return idx
            if idx >= 0 or self._stop >= limit:
                head = bytes(self._view[: min(self._stop, limit)])
                raise BlockTooLarge(f'{what} too large: over {limit} bytes', head)
            left = None
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ConnectionTimedOut(f'{what} not complete in {timeout}s')
            received = self._recv(self._view[self._stop : limit], what, left)
            if received == 0:
                raise ConnectionClosed(f'{what} truncated: {_short(self._view[: self._stop])}')
            self._stop += received

    def _before_read(self):
        data = self.send_before_read
        self.send_before_read = None
        self.sendall(data)

    def read_exact(self, size: int) -> bytes:
        """Exactly *size* bytes as ``bytes``; ``ConnectionClosed`` if the peer closes first."""
        if self.send_before_read is not None:
            self._before_read()
        start = self._start
        avail = self._stop - start
        if avail >= size:
            self._start = start + size
            return self._view[start : start + size].tobytes()  # see read_block()
        if size <= _SMALL_READ:
            self._compact()
            while self._stop < size:
                if self._fill('body') == 0:
                    raise self._eof(size, self._stop)
            self._start = size
            return bytes(self._view[:size])
        if size <= READ_PIECE:
            buf = bytearray(size)
            self.readinto_exact(memoryview(buf))
            return bytes(buf)
        return self._read_pieces(size)

    def _read_pieces(self, size):
        # read_exact() of more than READ_PIECE bytes: one piece at a time,
        # each allocated once the previous one is full, then joined (the
        # one copy bytes(buf) made before).
        pieces = []
        got = 0
        while got < size:
            piece = memoryview(bytearray(min(size - got, READ_PIECE)))
            filled = 0
            while filled < len(piece):
                received = self.readinto_some(piece[filled:])
                if received == 0:
                    raise self._eof(size, got + filled)
                filled += received
            pieces.append(piece)
            got += filled
        return b''.join(pieces)

    def readinto_exact(self, view: memoryview) -> int:
        """Fill all of *view*: buffered bytes first, then ``recv_into`` straight into it."""
        if self.send_before_read is not None:
            self._before_read()
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
            received = self._recv(view[got:], 'body')
            if received == 0:
                raise self._eof(size, got)
            got += received
        return size

    def _eof(self, size, got):
        return ConnectionClosed(f'expected to read {size} bytes, but received {got}')

    def readinto_some(self, view: memoryview) -> int:
        """Fill part of *view* with what is buffered, or else with one ``recv``; 0 at EOF."""
        if self.send_before_read is not None:
            self._before_read()
        start = self._start
        avail = self._stop - start
        if avail:
            size = min(avail, len(view))
            view[:size] = self._view[start : start + size]
            self._start = start + size
            return size
        return self._recv(view, 'body')

    def _clean_eof(self):
        # An EOF that ends data delimited by the close is complete only if
        # the peer closed cleanly.  After a reset, the EOF proves nothing:
        # data in flight may have been destroyed.
        if self.reset:
            raise ConnectionClosed('connection was reset: the body may be incomplete')
        return b''

    def read_some(self, size: int, all_of_it: bool = False) -> bytes:
        """Up to *size* bytes, ``b''`` at EOF; with *all_of_it*, everything until EOF.

        For data that runs until the connection closes.  Reading everything
        refuses more than *size* bytes rather than allocating them.  The EOF
        is a ``ConnectionClosed`` once a send failed on a reset connection.
        """
        if not all_of_it:
            if self._start == self._stop and self._fill('body') == 0:
                return self._clean_eof()
            start = self._start
            end = min(self._stop, start + size)
            self._start = end
            return bytes(self._view[start:end])
        parts: 'list[bytes]' = []
        total = 0
        while True:
            if self._start == self._stop and self._fill('body') == 0:
                self._clean_eof()
                return b''.join(parts)
            total += self._stop - self._start
            if total > size:
                raise content_too_large(f'would exceed max read size: {total} > {size}')
            parts.append(bytes(self._view[self._start : self._stop]))
            self._start = self._stop

    def readline(self, limit: int, what: str = 'line') -> bytes:
        """One line of at most *limit* bytes, its CRLF included.

        ``ValueError`` when no CRLF comes within *limit* bytes,
        ``ConnectionClosed`` (naming *what* was truncated) when the peer
        closes first.
        """
        if self.send_before_read is not None:
            self._before_read()
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
                if self._fill(what) == 0:
                    raise ConnectionClosed(
                        f'{what} truncated: {_short(self._view[self._start : self._stop])}'
                    )
                idx = buf.find(_CRLF, max(self._start, searched - 1), min(self._stop, end))
                if idx >= 0:
                    break
        start = self._start
        self._start = idx + 2
        return bytes(self._view[start : idx + 2])

    # ------------------------------------------------------------------
    # Writing

    def sendall(self, data: 'bytes | bytearray | memoryview', what: str = 'sending') -> None:
        """Send all of *data* now, looping over partial sends."""
        if self._closed:
            raise ConnectionClosed('Connection is closed')
        if self._wait != self.timeout and not self._native:
            self._set_wait(self.timeout)  # a Python-level timeout bounds sends too
        send = self._send
        self.sends += 1
        try:
            sent = send(data)
            size = len(data)
            if sent != size:
                view = memoryview(data)
                if self._left is not None:  # the peer is not keeping up: time it
                    self._left += sent / self._rate
                    return self._send_limited(view[sent:], what)
                while sent < size:
                    n = send(view[sent:])
                    if not n:  # a real socket blocks or raises; this is a broken one
                        raise ConnectionClosed(f'{what}: send() returned {n!r}')
                    sent += n
        except OSError as e:
            mapped = self._send_failed(e, what)
            if mapped is None:
                raise
            raise mapped from e

    def _send_failed(self, e, what):
        # What a failed send raises instead of *e*: a ConnectionClosed (a
        # reset marks the transport); None when *e* stays itself.
        mapped = map_socket_error(e, what)
        if mapped is None:
            return None
        if not isinstance(mapped, ConnectionTimedOut):
            self.reset = True
        return mapped

    def _send_limited(self, view, what):
        # The rest of a sendall() under start_deadline(), once a send() was
        # partial: the time blocked in each send() is spent, the bytes it
        # moved earn time back.  (A send() that does not block costs nothing.)
        sent = 0
        while sent < len(view):
            self._check_deadline(what)
            started = time.monotonic()
            n = self._send(view[sent:])
            if self._left is not None:
                self._left += n / self._rate - (time.monotonic() - started)
            if not n:
                raise ConnectionClosed(f'{what}: send() returned {n!r}')
            sent += n

    def write(self, data: 'bytes | bytearray | memoryview') -> int:
        """Buffered write of *data*; returns ``len(data)``.  Call ``flush()`` to send."""
        size = len(data)
        if self._wlen + size <= BUF_LEN:
            self._wparts.append(data if type(data) is bytes else bytes(data))
            self._wlen += size
            return size
        if size < BUF_LEN // 2:
            self.flush()
            self._wparts.append(data if type(data) is bytes else bytes(data))
            self._wlen = size
        elif self._wparts and self._native:
            self._send_after(data)
        else:
            self.flush()
            self.sendall(data)
        return size

    def _send_after(self, data):
        """Send what write() buffered and then *data* (large), in one ``sendmsg()``.

        A chunk's line goes out with its data instead of in a send of its
        own (and a segment of its own, with TCP_NODELAY) before it: one
        syscall a chunk fewer for a chunked body of big chunks, and the
        peer's reads are not split at every chunk line.  Plain sockets only
        (``_native``); a partial send finishes with ``sendall()``.
        """
        prefix = self._wparts[0] if len(self._wparts) == 1 else b''.join(self._wparts)
        self._wparts = []
        self._wlen = 0
        if self._closed:
            raise ConnectionClosed('Connection is closed')
        self.sends += 1
        try:
            sent = self.sock.sendmsg((prefix, data))
        except OSError as e:
            mapped = self._send_failed(e, 'sending')
            if mapped is None:
                raise
            raise mapped from e
        if self._left is not None:  # as in sendall(): bytes moved earn time
            self._left += sent / self._rate
        if sent < len(prefix):
            self.sendall(memoryview(prefix)[sent:])
            sent = len(prefix)
        sent -= len(prefix)
        if sent < len(data):
            self.sendall(memoryview(data)[sent:])

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
            self.sendall(parts[0] if len(parts) == 1 else b''.join(parts))

    @property
    def can_sendfile(self) -> bool:
        """True when ``sendfile()`` pays: a plain AF_UNIX socket (not TLS, not a fake).

        Measured with 64 MiB file downloads (doc/benchmarks.rst): over
        AF_UNIX, 15 % more throughput and a quarter less server CPU than
        copying; over TCP loopback, 28 % less throughput for the same CPU,
        so TCP copies.
        """
        sock = self.sock
        return type(sock) is socket.socket and sock.family == socket.AF_UNIX

    def sendfile(self, file: 'Any', offset: int, count: int) -> int:
        """Send *count* bytes of *file* from *offset* with ``os.sendfile()``.

        No copy through user space.  Flushes the write buffer first; returns
        *count*, or raises (a file shorter than *count* is a ``ValueError``);
        the file's position ends after what was sent.  The socket stays
        blocking: with the kernel's send timeout, a call that times out is
        a ``ConnectionTimedOut``.  (``socket.sendfile()`` would switch the
        socket to non-blocking and poll before every call: 12-15 % less
        throughput over AF_UNIX, measured.)
        """
        self.flush()
        if self._closed:
            raise ConnectionClosed('Connection is closed')
        sockno = self.sock.fileno()
        fileno = file.fileno()
        self.sends += 1
        sent = 0
        try:
            while sent < count:
                n = os.sendfile(sockno, fileno, offset + sent, count - sent)
                if n == 0:  # the file ended early
                    break
                sent += n
        except OSError as e:
            mapped = map_socket_error(e, 'sending file')
            if mapped is None:
                raise
            if not isinstance(mapped, ConnectionTimedOut):
                self.reset = True
            raise mapped from e
        finally:
            file.seek(offset + sent)
        if sent != count:
            raise ValueError(f'expected to write {count} bytes, but sent {sent}')
        return count


def _set_timeout(sock, option, seconds):
    # struct timeval; 0 would mean "no timeout", so at least 1 microsecond.
    micros = max(1, round(seconds * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, option, struct.pack('ll', *divmod(micros, 1_000_000)))
