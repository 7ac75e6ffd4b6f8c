"""HTTP message readers and writers over a ``degu._transport.Transport``.

Readers: ``read_request()`` and ``read_response_head()`` read a preamble
with ``Transport.read_block()``, parse it (``degu._parse``), decide how its
body is delimited (``degu._framing``) and return the message with a body
object reading from the transport.  On the C core they first hand the
transport's buffer to ``scan_request()`` or ``scan_response()``, which do
all of that but the body in one call for the common valid preamble, and
take the Python path for anything else (doc/hacking.rst, 'The compiled
core').  Writers: ``write_message()`` sends a
rendered preamble and its body through the body protocol (``degu._body``);
``write_request()`` and ``write_response()`` frame and render first.

They keep no state of their own: the server and the client own a
``Transport`` each and keep their state themselves.  ``SocketWrapper``
bundles a transport with these functions for programs and tests that want
one object per connection.

Re-exported by ``degu.base``; import it from there.
"""

from functools import update_wrapper

from ._body import (
    _NO_ORIGIN,
    Body,
    ChunkedBody,
    Request,
    Response,
    _new_body,
    _new_chunked,
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
    BUF_LEN,
    MAX_HEADER_COUNT,
    MAX_PREAMBLE_LEN,
    MAX_REQUEST_LINE_LEN,
    EmptyPreambleError,
    ParseError,
    UnsupportedResponse,
    content_too_large,
    parse_authority,
    parse_headers,
    parse_request_line,
    parse_response_line,
    render_request,
    render_response,
    scan_request,
    scan_response,
)
from ._transport import (
    START_BUF_LEN,
    BlockTooLarge,
    Transport,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing stays out of the import path
    from typing import Any

__all__ = (
    'SocketWrapper',
    'read_request',
    'read_response_head',
    'read_response',
    'write_message',
    'write_request',
    'write_response',
    'set_output_headers',
)

_CRLF = b'\r\n'
_CRLFCRLF = b'\r\n\r\n'
# Response(...) without the namedtuple's Python-level __new__: 1.5k fewer instructions
# per response read (2.3 % of the client's in-process cost, callgrind).
_new_response = tuple.__new__
CONTINUE = b'HTTP/1.1 100 Continue\r\n\r\n'


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


# --------------------------------------------------------------------------
# Readers


def _read_preamble(transport, what, limit):
    # The next preamble, CRLFCRLF stripped.
    try:
        preamble = transport.read_block(_CRLFCRLF, limit, what)
    except BlockTooLarge as e:
        raise _too_large(what, e.head, limit) from None
    if preamble is None:
        raise EmptyPreambleError(f'{what} is empty')
    return preamble


def _too_large(what, head, limit):
    if what == 'request preamble' and head.find(_CRLF, 0, MAX_REQUEST_LINE_LEN + 2) < 0:
        return ParseError(
            f'request line too long: over {MAX_REQUEST_LINE_LEN} bytes', 414, 'URI Too Long'
        )
    return ParseError(
        f'{what} too large: over {limit} bytes', 431, 'Request Header Fields Too Large'
    )


def read_request(
    transport: Transport,
    max_preamble: int = MAX_PREAMBLE_LEN,
    max_header_count: int = MAX_HEADER_COUNT,
    max_body: int | None = None,
) -> Request:
    """Read and parse the next request preamble; returns a ``Request``.

    Raises ``EmptyPreambleError`` when the peer closed before sending a
    byte, ``ParseError`` for a malformed preamble (with the status to
    answer: 400, or 413, 414, 431, 501, 505).  *max_preamble* bounds the
    preamble (CRLFCRLF included), *max_header_count* its fields, and
    *max_body* (``None``: no limit) the body: a longer ``content-length``
    is a 413 now, a chunked body that grows past it fails when read.
    Empty lines before a request line are skipped (RFC 9112 section 2.2).
    The authority of an absolute-form target replaces the ``host`` (section
    3.2.2).  A ``range`` on a method other than GET is dropped (RFC 9110
    section 14.2).
    """
    # _read_preamble() written out (430 instructions fewer per request), and
    # the first byte looked at instead of a slice of two (520 fewer).
    try:
        preamble = transport.read_block(_CRLFCRLF, max_preamble, 'request preamble')
    except BlockTooLarge as e:
        raise _too_large('request preamble', e.head, max_preamble) from None
    if not preamble or preamble[0] == 0x0D:  # EOF (None), or a CR first: empty lines?
        preamble = _skip_empty_lines(transport, preamble, max_preamble)
    (line, _, block) = preamble.partition(_CRLF)
    (method, uri, path, query, version) = parse_request_line(line)
    headers = parse_headers(block, False, max_header_count) if block else {}
    if line[len(method) + 1] != 0x2F:  # '/': not origin-form
        authority = parse_authority(line[len(method) + 1 :])
        # An HTTP/1.1 request without host stays without (it gets 400).
        if authority is not None and ('host' in headers or version != 'HTTP/1.1'):
            headers['host'] = authority
    if 'range' in headers and method != 'GET':
        del headers['range']
    (kind, length) = request_framing(headers)
    if kind == LENGTH:
        if max_body is not None and length > max_body:
            raise content_too_large(f'body too large: {length} > {max_body}')
        body = _new_body(transport, length)
    elif kind == CHUNKED:
        body = _new_chunked(transport, max_body)
    else:
        body = None
    return _new_request(method, uri, headers, body, path, query, version)


def _scan_request(
    transport: Transport,
    max_preamble: int = MAX_PREAMBLE_LEN,
    max_header_count: int = MAX_HEADER_COUNT,
    max_body: int | None = None,
) -> Request:
    # read_request() on the C core: the first recv as read_block() makes it,
    # then one scan_request() call (degu/_cparse.c) in place of read_block(),
    # partition(), the parsers and request_framing(); None from it (not the
    # common valid case, or not all there) and the Python path reads on
    # from where the buffer is, as it would have after its own first recv.
    # That recv is written out here, in _scan_response_head() and in
    # read_block() alike: one Transport method for the three cost 390 to
    # 480 instructions more per request on either core (callgrind over
    # benchmarks/hotpath.py).
    start = transport._start
    if start == transport._stop:
        idle = transport.idle_timeout
        transport._start = transport._stop = start = 0
        received = transport._recv(
            transport._view,
            'request preamble',
            transport.timeout if idle is None else idle,
        )
        if received == 0:
            raise EmptyPreambleError('request preamble is empty')
        transport._stop = received
    found = scan_request(transport._buf, start, transport._stop, max_preamble, max_header_count)
    if found is None:
        return _read_request(transport, max_preamble, max_header_count, max_body)
    # The Request comes made, its body None: 2,100 instructions fewer per
    # request than _new_request() (callgrind over benchmarks/hotpath.py).
    (transport._start, kind, length, request) = found
    if kind == LENGTH:
        if max_body is not None and length > max_body:
            raise content_too_large(f'body too large: {length} > {max_body}')
        request._body = _new_body(transport, length)
    elif kind == CHUNKED:
        request._body = _new_chunked(transport, max_body)
    return request


def _skip_empty_lines(transport, preamble, limit):
    if preamble is None:
        raise EmptyPreambleError('request preamble is empty')
    while preamble[:2] == _CRLF:
        preamble = preamble[2:]
    if not preamble:
        # CRLF CRLF alone, or a request line hiding after it: once more.
        preamble = _read_preamble(transport, 'request preamble', limit)
        while preamble[:2] == _CRLF:
            preamble = preamble[2:]
        if not preamble:
            raise ParseError('empty request line')
    return preamble


def read_response_head(
    transport: Transport,
    method: str,
    max_preamble: int = MAX_PREAMBLE_LEN,
    max_header_count: int = MAX_HEADER_COUNT,
) -> 'tuple[Response, str, int]':
    """Read the next response preamble: ``(response, version, kind)``.

    *version* is that of the status line and *kind* the framing decision
    (``degu._framing``), what the client needs to decide persistence.  The
    body follows ``degu._framing.response_framing()``: ``None`` for HEAD and
    for 1xx, 204 and 304 responses whatever the headers say; a ``Body`` or
    ``ChunkedBody`` by the framing field; and without one, a ``Body`` whose
    ``content_length`` is ``None``, read until the server closes (RFC 9112
    section 6.3).
    """
    # _read_preamble() written out: 460 instructions fewer per response.
    try:
        preamble = transport.read_block(_CRLFCRLF, max_preamble, 'response preamble')
    except BlockTooLarge as e:
        raise _too_large('response preamble', e.head, max_preamble) from None
    if preamble is None:
        raise EmptyPreambleError('response preamble is empty')
    (line, _, block) = preamble.partition(_CRLF)
    (version, status, reason) = parse_response_line(line)
    try:
        headers = parse_headers(block, True, max_header_count)
    except ParseError as e:
        if e.status == 501:
            raise UnsupportedResponse(str(e)) from e
        raise
    (kind, length) = response_framing(method, status, headers)
    if kind == LENGTH:
        body = _new_body(transport, length)
    elif kind == CHUNKED:
        body = ChunkedBody(transport)
    elif kind == CLOSE:
        body = Body(transport, None)
    else:
        body = None
    return (_new_response(Response, (status, reason, headers, body)), version, kind)


def _scan_response_head(
    transport: Transport,
    method: str,
    max_preamble: int = MAX_PREAMBLE_LEN,
    max_header_count: int = MAX_HEADER_COUNT,
) -> 'tuple[Response, str, int]':
    # read_response_head() on the C core, as _scan_request() is read_request()
    # (its first recv written out, as there).
    start = transport._start
    if start == transport._stop:
        idle = transport.idle_timeout
        transport._start = transport._stop = start = 0
        received = transport._recv(
            transport._view,
            'response preamble',
            transport.timeout if idle is None else idle,
        )
        if received == 0:
            raise EmptyPreambleError('response preamble is empty')
        transport._stop = received
    found = scan_response(
        transport._buf, start, transport._stop, max_preamble, max_header_count, method
    )
    if found is None:
        return _read_response_head(transport, method, max_preamble, max_header_count)
    (transport._start, kind, length, version, status, reason, headers) = found
    if kind == LENGTH:
        body = _new_body(transport, length)
    elif kind == CHUNKED:
        body = ChunkedBody(transport)
    elif kind == CLOSE:
        body = Body(transport, None)
    else:
        body = None
    return (_new_response(Response, (status, reason, headers, body)), version, kind)


# The Python paths, kept as the C core's fallback and the tests' reference;
# the C core's readers take their names and docstrings.
_read_request = read_request
_read_response_head = read_response_head
if scan_request is not None:
    from ._cparse import _bind_request  # type: ignore[import-not-found]

    _bind_request(Request, _NO_ORIGIN)
    read_request = update_wrapper(_scan_request, _read_request)
    read_response_head = update_wrapper(_scan_response_head, _read_response_head)


def read_response(transport: Transport, method: str, **limits: int) -> Response:
    """``read_response_head()`` without the version and kind: the ``Response`` alone."""
    return read_response_head(transport, method, **limits)[0]


# --------------------------------------------------------------------------
# Writers


def write_message(transport: Transport, preamble: bytes, body: 'Any', kind: int = LENGTH) -> int:
    """Send a rendered *preamble* and its *body*; returns the total bytes sent.

    *kind* is how the preamble framed the body (``degu._framing``):
    ``LENGTH`` sends the data as it is, ``CHUNKED`` chunk-encodes it,
    ``CLOSE`` sends a chunked body's data alone (for an HTTP/1.0 peer).
    A ``bytes`` body goes out with the preamble in one ``send``; a body
    object goes out as it is produced (``degu._body``): the preamble with
    its first piece, and each piece before the next is asked for; a large
    regular file goes out with ``sendfile()`` on a plain socket.
    """
    # Whatever write() buffered goes first; transport._wparts looked at
    # before calling flush(): 420 instructions fewer per message when there
    # is none (callgrind over benchmarks/hotpath.py).
    if body is None:
        if transport._wparts:
            transport.flush()
        transport.sendall(preamble)
        return len(preamble)
    if type(body) is bytes:
        if transport._wparts:
            transport.flush()
        if len(body) <= BUF_LEN:
            transport.sendall(preamble + body)
        else:
            if preamble:  # b'' after 100 Continue: the body alone
                transport.sendall(preamble)
            transport.sendall(body)
        return len(preamble) + len(body)
    if kind == LENGTH and transport.can_sendfile:
        sent = body._sendfile(transport, preamble)  # None: not a file worth it
        if sent is not None:
            return sent
    transport.write(preamble)
    total = len(preamble) + _write_body(body, transport, kind == CHUNKED)
    transport.flush()
    return total


def write_request(
    transport: Transport, method: str, uri: str, headers: 'dict[str, Any]', body: object
) -> int:
    """Frame, render and send a request; returns the bytes sent."""
    set_output_headers(headers, body)
    kind = CHUNKED if 'transfer-encoding' in headers else LENGTH
    return write_message(transport, render_request(method, uri, headers), body, kind)


def write_response(
    transport: Transport, status: int, reason: str, headers: 'dict[str, Any]', body: object
) -> int:
    """Frame, render and send a response; returns the bytes sent."""
    set_output_headers(headers, body)
    kind = CHUNKED if 'transfer-encoding' in headers else LENGTH
    return write_message(transport, render_response(status, reason, headers), body, kind)


# --------------------------------------------------------------------------
# One object per connection


class SocketWrapper(Transport):
    """A ``Transport`` with the message readers and writers as methods.

    For programs and tests that want one object per connection (the server
    and the client use a ``Transport`` and the functions directly).
    *max_preamble* bounds a whole preamble (CRLFCRLF included) and
    *max_header_count* its header fields; *max_body* (``None`` for no limit)
    bounds a request body: a longer ``content-length`` is refused with 413
    when the request is read, a chunked body when it grows past it.  With
    *timeout* set, a whole preamble must arrive within *timeout* seconds of
    its first byte, and the wait for that first byte is bounded by
    *idle_timeout*.  A body over the wrapper that fails leaves its error in
    ``error``, and closes the wrapper at once when *close_on_error* is true.
    """

    __slots__ = ('max_preamble', 'max_header_count', 'max_body', 'close_on_error', 'error')

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
        super().__init__(
            sock,
            timeout=timeout,
            idle_timeout=idle_timeout,
            buffer_size=min(START_BUF_LEN, max(BUF_LEN, max_preamble)),
        )
        self.max_preamble = max_preamble
        self.max_header_count = max_header_count
        self.max_body = max_body
        self.close_on_error = close_on_error
        self.error: 'BaseException | None' = None

    def body_failed(self, exc: BaseException) -> None:
        """A body over this connection failed: remember why, close if asked to."""
        if self.error is None:
            self.error = exc
        if self.close_on_error:
            self.close()

    def read_request(self) -> Request:
        """``read_request()`` with this wrapper's limits."""
        return read_request(self, self.max_preamble, self.max_header_count, self.max_body)

    def read_response_head(self, method: str) -> 'tuple[Response, str, int]':
        """``read_response_head()`` with this wrapper's limits."""
        return read_response_head(self, method, self.max_preamble, self.max_header_count)

    def read_response(self, method: str) -> Response:
        """``read_response()`` with this wrapper's limits."""
        return read_response_head(self, method, self.max_preamble, self.max_header_count)[0]

    def expect_continue(self) -> None:
        """Arm the lazy ``100 Continue``: sent just before the first body byte is read."""
        self.send_before_read = CONTINUE

    @property
    def continue_pending(self) -> bool:
        """True while an armed ``100 Continue`` was not sent (the body is untouched)."""
        return self.send_before_read is not None

    def write_message(self, preamble: bytes, body: 'Any', kind: int = LENGTH) -> int:
        """``write_message()`` over this wrapper."""
        return write_message(self, preamble, body, kind)

    def write_request(
        self, method: str, uri: str, headers: 'dict[str, Any]', body: object
    ) -> int:
        """``write_request()`` over this wrapper."""
        return write_request(self, method, uri, headers, body)

    def write_response(
        self, status: int, reason: str, headers: 'dict[str, Any]', body: object
    ) -> int:
        """``write_response()`` over this wrapper."""
        return write_response(self, status, reason, headers, body)
