"""Framing: how a message's body is delimited, and whether its connection persists.

The one place that decides framing, for both sides and both directions:
the server's reader and writer, the client's reader and writer, and through
them ProxyApp, the WSGI adapter and ``rgi.Validator``.  No other module reads
``content-length`` or ``transfer-encoding`` to decide how many bytes follow.

A received body is delimited one of four ways (RFC 9112 section 6.3)::

    kind      request                        response
    NO_BODY   neither framing header         HEAD, 1xx, 204, 304 (whatever the headers say)
    LENGTH    content-length: N              content-length: N
    CHUNKED   transfer-encoding: chunked     transfer-encoding: chunked
    CLOSE     (never: RFC 9112 6.3 rule 6)   neither framing header: runs until the close

A sent body is framed by its type, and the peer's version (section 6.1 and
RFC 9110 section 8.6)::

    body                       HTTP/1.1 peer                 HTTP/1.0 peer
    None                       content-length: 0             content-length: 0
    bytes, Body, BodyIter      content-length: N             content-length: N
    ChunkedBody(Iter)          transfer-encoding: chunked    chunk data, then close
    Body of unknown length     transfer-encoding: chunked    data, then close

except that nothing is added for a response without content (HEAD, 204,
304; the app may describe the GET response itself on HEAD and 304).  The
rules and their reasons are in doc/decisions.rst.

Pure functions of method, status, version and header dicts: no IO.
"""

from ._body import ChunkedBodyIter, is_body  # noqa: F401 (ChunkedBodyIter: the doctests)
from ._parse import MAX_IO_SIZE, parse_tokens

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing stays out of the import path
    from typing import Any

__all__ = (
    'NO_BODY',
    'LENGTH',
    'CHUNKED',
    'CLOSE',
    'has_no_content',
    'request_framing',
    'response_framing',
    'request_close_reason',
    'response_close_reason',
    'body_framing',
    'request_output',
    'response_output',
    'framing_line',
    'check_framing_headers',
)

NO_BODY = 0  # no body at all
LENGTH = 1  # content-length bytes
CHUNKED = 2  # the chunked transfer coding
CLOSE = 3  # everything until the connection closes

# The answers without a length, built once: a tuple of globals is built anew
# at every return, 250 instructions more per message (callgrind over
# benchmarks/hotpath.py).
_NO_BODY = (NO_BODY, None)
_CHUNKED = (CHUNKED, None)
_CLOSE = (CLOSE, None)


def has_no_content(method: str, status: int) -> bool:
    """True when a response never has content (RFC 9110 sections 6.4.1, 9.3.2).

    >>> (has_no_content('HEAD', 200), has_no_content('GET', 304), has_no_content('GET', 404))
    (True, True, False)
    """
    # Written out again in response_framing() and response_output(): a call
    # per message on the hot path costs more than the comparison.
    return method == 'HEAD' or status < 200 or status == 204 or status == 304


def request_framing(headers: 'dict[str, Any]') -> 'tuple[int, int | None]':
    """``(kind, length)`` of a received request body (RFC 9112 section 6.3).

    The parser has already refused both framing headers together, a
    coding other than ``chunked`` and a bad length.

    >>> request_framing({'content-length': 5})
    (1, 5)
    >>> request_framing({})
    (0, None)
    """
    if 'transfer-encoding' in headers:
        return _CHUNKED
    if 'content-length' in headers:
        return (LENGTH, headers['content-length'])
    return _NO_BODY


def response_framing(
    method: str, status: int, headers: 'dict[str, Any]'
) -> 'tuple[int, int | None]':
    """``(kind, length)`` of a received response body (RFC 9112 section 6.3).

    A response with neither framing header runs until the server closes,
    in HTTP/1.1 as in HTTP/1.0 (rule 8).

    >>> response_framing('GET', 200, {})
    (3, None)
    >>> response_framing('HEAD', 200, {'content-length': 5})
    (0, None)
    """
    if method == 'HEAD' or status < 200 or status == 204 or status == 304:  # has_no_content()
        return _NO_BODY
    if 'transfer-encoding' in headers:
        return _CHUNKED
    if 'content-length' in headers:
        return (LENGTH, headers['content-length'])
    return _CLOSE


def _closes(headers):
    # The close connection option (RFC 9112 section 9.6); the common values
    # without a split.
    value = headers.get('connection')
    if value is None or value == 'keep-alive':
        return (False, value is not None)
    tokens = parse_tokens(value)
    return ('close' in tokens, 'keep-alive' in tokens)


def request_close_reason(version: str, headers: 'dict[str, Any]') -> str | None:
    """Why the connection closes after this request's response, or ``None``.

    RFC 9112 section 9.3: ``connection: close`` ends it; an HTTP/1.0 request
    keeps it only with ``connection: keep-alive``; and an HTTP/1.0 request
    with ``transfer-encoding`` ends it whatever it says (section 6.1).

    >>> request_close_reason('HTTP/1.0', {'connection': 'keep-alive'}) is None
    True
    >>> request_close_reason('HTTP/1.0', {'transfer-encoding': 'chunked'})
    'HTTP/1.0 with transfer-encoding'
    """
    value = headers.get('connection')
    if value is None:
        keep_alive = False
    elif value == 'keep-alive':  # what browsers send: 1,050 instructions fewer than _closes()
        keep_alive = True
    else:
        (close, keep_alive) = _closes(headers)
        if close:
            return 'connection: close'
    if version == 'HTTP/1.1':
        return None
    if 'transfer-encoding' in headers:
        return 'HTTP/1.0 with transfer-encoding'
    return None if keep_alive else 'HTTP/1.0'


def response_close_reason(version: str, headers: 'dict[str, Any]', kind: int) -> str | None:
    """Why the client must close after this response, or ``None`` (RFC 9112 9.3).

    >>> response_close_reason('HTTP/1.1', {}, LENGTH) is None
    True
    >>> response_close_reason('HTTP/1.1', {}, CLOSE)
    'the response body runs until the connection closes'
    """
    if 'connection' in headers:
        (close, keep_alive) = _closes(headers)
        if close:
            return 'the server sent connection: close'
    else:
        keep_alive = False
    if version != 'HTTP/1.1' and not keep_alive:
        return 'the server sent an HTTP/1.0 response'
    if kind == CLOSE:
        return 'the response body runs until the connection closes'
    return None


# Methods whose requests have defined content: a request without a body
# still says content-length: 0 (RFC 9110 section 8.6).
_CONTENT_METHODS = frozenset(['POST', 'PUT', 'PATCH'])


def body_framing(body: object) -> 'tuple[int, int | None]':
    """``(kind, length)`` an outgoing *body* implies: ``LENGTH`` or ``CHUNKED``.

    ``None`` is ``(LENGTH, 0)``.  A ``Body`` of unknown length (one read
    until its connection closed) is sent ``CHUNKED``.  Anything else is a
    ``TypeError``.

    >>> body_framing(b'hello')
    (1, 5)
    >>> body_framing(None)
    (1, 0)
    """
    if body is None:
        return (LENGTH, 0)
    if type(body) is bytes:
        if len(body) > MAX_IO_SIZE:
            raise ValueError(f'need len(body) <= {MAX_IO_SIZE}; got {len(body)}')
        return (LENGTH, len(body))
    if is_body(body):  # the body protocol (degu._body)
        length = body.content_length
        if body.chunked or length is None:
            return _CHUNKED
        return (LENGTH, length)
    raise TypeError(f'bad body type: {type(body)!r}: {body!r}'[:200])


def request_output(method: str, body: object) -> 'tuple[int, int | None]':
    """``(kind, length)`` of an outgoing request.

    No body is ``NO_BODY``, except for POST, PUT and PATCH, which say
    ``content-length: 0`` (RFC 9110 section 8.6).

    >>> request_output('GET', None)
    (0, None)
    >>> request_output('POST', None)
    (1, 0)
    """
    if type(body) is bytes and len(body) <= MAX_IO_SIZE:
        return (LENGTH, len(body))  # the common case, without a second call
    if body is None and method not in _CONTENT_METHODS:
        return _NO_BODY
    return body_framing(body)


def response_output(
    method: str, status: int, body: object, http11: bool
) -> 'tuple[int, int | None]':
    """``(kind, length)`` of an outgoing response (see the module docstring).

    A response without content is ``NO_BODY`` (the caller has checked its
    body is ``None``); any other always says how long it is, ``None`` as
    ``content-length: 0``; a chunked body to an HTTP/1.0 peer is ``CLOSE``.

    >>> response_output('GET', 404, None, True)
    (1, 0)
    >>> response_output('HEAD', 200, None, True)
    (0, None)
    >>> response_output('GET', 200, ChunkedBodyIter([]), False)
    (3, None)
    """
    if method == 'HEAD' or status < 200 or status == 204 or status == 304:  # has_no_content()
        return _NO_BODY
    if type(body) is bytes and len(body) <= MAX_IO_SIZE:
        return (LENGTH, len(body))  # the common case, without a second call
    (kind, length) = body_framing(body)
    if kind == CHUNKED and not http11:
        return _CLOSE
    return (kind, length)


def framing_line(kind: int, length: int | None) -> str:
    """The framing field line for *kind*, CRLF first; ``''`` when there is none.

    >>> framing_line(LENGTH, 12)
    '\\r\\ncontent-length: 12'
    """
    if kind == LENGTH:
        return f'\r\ncontent-length: {length}'
    if kind == CHUNKED:
        return '\r\ntransfer-encoding: chunked'
    return ''


def check_framing_headers(headers: 'dict[str, Any]', kind: int, length: int | None) -> None:
    """Check the framing fields a caller set in *headers* against the body's.

    A given ``content-length`` must equal the body's length and a given
    ``transfer-encoding`` must be ``chunked`` for a chunked body; one field
    where the body implies the other is an error (never both on the wire).
    """
    if 'content-length' in headers:
        if 'transfer-encoding' in headers:
            raise ValueError('cannot have both content-length and transfer-encoding headers')
        given = headers['content-length']
        if kind != LENGTH:  # the body needs transfer-encoding
            raise ValueError('cannot have both content-length and transfer-encoding headers')
        if given != length and str(given) != str(length):
            raise ValueError(f"'content-length' mismatch: {length!r} != {given!r}")
    elif 'transfer-encoding' in headers:
        given = headers['transfer-encoding']
        if kind != CHUNKED and kind != CLOSE:  # the body needs content-length
            raise ValueError('cannot have both content-length and transfer-encoding headers')
        if str(given).lower() != 'chunked':
            raise ValueError(f"'transfer-encoding' mismatch: 'chunked' != {given!r}")

