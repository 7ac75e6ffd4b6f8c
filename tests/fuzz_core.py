#!/usr/bin/env python3
"""Differential fuzzing of the two cores: ``python3 tests/fuzz_core.py [SECONDS] [SEED]``.

Feeds the same inputs to each function of degu._cparse and to its
pure-Python reference in degu._parse, and stops at the first input where
they differ: a different result, or a different exception (type, message,
status and reason).  The inputs are valid messages of every kind, mutated
(bytes replaced, inserted, deleted, repeated; lines cut) and random bytes.
Runs for SECONDS (default 10), then prints how many inputs it tried.

degu._cparse.response_head() has no namesake: it stands for the server's
checked path (``_check_response()`` then ``Server._response_head()``), and
returns None for what it leaves to it.  Whenever it returns bytes, that path
must give the same bytes (``compare_head()``).

The whole-preamble scanners (scan_request, scan_response) have no Python
twin: the reference is what degu._io's readers do on their Python path.
So each preamble is read twice from a Transport over the same scripted
chunks, once through the scanner and once through the Python path with the
pure-Python parsers, and the two must leave the same message (every field,
the body's type and length) or raise the same exception, with the
transport's buffer offsets the same afterwards.

.ci/fuzz-core runs it against a build under AddressSanitizer and
UndefinedBehaviorSanitizer; tests/test_core.py imports the helpers.
"""

import random
import sys
import time

CRLF = b'\r\n'

REQUEST_LINES = [
    b'GET / HTTP/1.1',
    b'GET /api/items?page=2 HTTP/1.1',
    b'POST /a/b/c/ HTTP/1.0',
    b'PUT /a%20b/%7E?x=%41&y HTTP/1.1',
    b'DELETE /x?{a}|b^c`d HTTP/1.1',
    b'OPTIONS * HTTP/1.1',
    b'HEAD http://example.com:8080/a?b HTTP/1.1',
    b'PATCH /./a/../b//c HTTP/1.1',
    b'GET /? HTTP/1.9',
    b'get / HTTP/1.1',
]
STATUS_LINES = [
    b'HTTP/1.1 200 OK',
    b'HTTP/1.0 404 Not Found',
    b'HTTP/1.1 204 ',
    b'HTTP/1.1 301',
    b'HTTP/1.1 500 Internal\tServer \xe9rror',
    b'HTTP/1.2 100 Continue',
    b'HTTP/2.0 200 OK',
]
HEADER_LINES = [
    b'Host: example.com:8080',
    b'host: [::1]:80',
    b'Host: a%2Fb',
    b'User-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0',
    b'Accept: application/json',
    b'accept:  text/html ',
    b'Content-Length: 12',
    b'content-length: 0017',
    b'Transfer-Encoding: chunked',
    b'transfer-encoding: CHUNKED',
    b'Range: bytes=0-99',
    b'range: bytes=-5',
    b'Content-Range: bytes 0-4/10',
    b'Connection: keep-alive',
    b'X-Empty:',
    b'X-Tab: \ta\tb\t',
    b'X-Latin: caf\xe9',
    b'Set-Cookie: a=1',
]
CHUNK_LINES = [b'0', b'5', b'1e', b'00000000000000ff', b'1000000', b'1000001', b'a;k=v',
               b'3 ; name="a \\"b\\""', b'7;flag', b'F']
CHUNK_BUFFERS = [
    b'5\r\nhello\r\n0\r\n\r\n',
    b'0\r\n\r\n',
    b'0\r\nx-trailer: 1\r\n\r\n',
    b'3;k=v\r\nabc\r\n',
    b'10\r\n0123456789abcdef\r\n',
]
# Values for the renderers: the valid ones first, then the rest.
METHODS = (['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'], ['get', 'TRACE', '', 1])
URIS = (['/', '/a?b=c', '*', '/~!$&()', 'http://h/x'], ['/caf\xe9', '/a b', '', '/\x7f', b'/'])
NAMES = (['host', 'content-type', 'content-length', 'transfer-encoding', 'x-a', 'set-cookie',
          "!#$%&'*+-.^_`|~09az"],
         ['X-Upper', 'bad name', '', 'caf\xe9', 1, ('a',)])
VALUES = (['v', '', 'a\tb', 'caf\xe9', '\x85', 12, -3, 0, 'x' * 300, 'a:b, c;d', ['a=1', 'b=2'],
           [7, 'x'], ['y'] * 60],
          [' lead', 'trail ', 'a\r\nb', '\u20ac', True, None, 2.5, [], ['a\n'], [None], [['a']],
           10 ** 5000])
REASONS = (['OK', 'Not Found', 'caf\xe9', 'A\tB', 'x'], ['', ' OK', 'OK\r\n', '\u20ac', 7])
STATUSES = ([200, 100, 599, 404, 101], [99, 600, True, 200.0, '200', -1, 2 ** 70])
EXTRAS = (['', '\r\ndate: x', '\r\ncontent-length: 5', '\xe9'], ['\u20ac', None, 5])


def pick(rng, choices):
    """A valid value most of the time, else one of the others."""
    (good, bad) = choices
    return rng.choice(good if rng.random() < 0.9 else bad)


def outcome(func, *args):
    """What ``func(*args)`` does: ``('ok', type, repr)`` or ``('error', type, message, ...)``."""
    try:
        value = func(*args)
    except Exception as e:  # noqa: BLE001 - every exception is compared
        return ('error', type(e), str(e), getattr(e, 'status', None), getattr(e, 'reason', None))
    return ('ok', type(value), repr(value))


def mutate(rng, src, maxlen=200):
    """*src* with a few random edits (bytes)."""
    data = bytearray(src)
    for _ in range(rng.randrange(1, 4)):
        op = rng.randrange(6)
        pos = rng.randrange(len(data) + 1)
        byte = rng.choice((rng.randrange(256), rng.choice(b' \t\r\n:;/?%.=",\\\x00\x7f\xff')))
        if op == 0 and pos < len(data):
            data[pos] = byte
        elif op == 1:
            data.insert(pos, byte)
        elif op == 2 and pos < len(data):
            del data[pos]
        elif op == 3:
            data[pos:pos] = data[pos : pos + rng.randrange(1, 8)]
        elif op == 4:
            del data[pos:]
        else:
            data[pos:pos] = rng.choice((CRLF, b'\r\n\r\n', b'\r', b'\n', b'0' * 20))
    return bytes(data[:maxlen])


def header_block(rng):
    lines = [rng.choice(HEADER_LINES) for _ in range(rng.randrange(0, 8))]
    if rng.random() < 0.3:
        lines.append(rng.choice(HEADER_LINES).swapcase())
    return CRLF.join(lines)


def random_bytes(rng, n=40):
    return bytes(rng.randrange(256) for _ in range(rng.randrange(n)))


def header_dict(rng):
    return {pick(rng, NAMES): pick(rng, VALUES) for _ in range(rng.randrange(0, 6))}


def cases(rng):
    """One random input for every function: ``(name, args)`` pairs."""
    maybe = (lambda src: mutate(rng, src)) if rng.random() < 0.7 else (lambda src: src)
    yield ('parse_request_line', (maybe(rng.choice(REQUEST_LINES)),))
    yield ('parse_request_line', (random_bytes(rng),))
    yield ('parse_response_line', (maybe(rng.choice(STATUS_LINES)),))
    block = maybe(header_block(rng))
    yield ('parse_headers', (block,))
    yield ('parse_headers', (block, True))
    yield ('parse_headers', (block, rng.random() < 0.5, rng.randrange(0, 8)))
    yield ('parse_chunk', (maybe(rng.choice(CHUNK_LINES)),))
    buf = maybe(b''.join(rng.choice(CHUNK_BUFFERS) for _ in range(rng.randrange(1, 4))))
    pos = rng.randrange(len(buf) + 1)
    stop = rng.randrange(pos, len(buf) + 1)
    yield ('chunk_end', (rng.choice((buf, bytearray(buf))), pos, stop))
    yield ('render_request', (pick(rng, METHODS), pick(rng, URIS), header_dict(rng)))
    args = (pick(rng, STATUSES), pick(rng, REASONS), header_dict(rng))
    yield ('render_response', args)
    yield ('render_response', (*args, pick(rng, EXTRAS)))
    data = rng.choice((b'', b'hello', b'x' * 300, bytearray(b'abc'), 'text'))
    extension = rng.choice((None, ('k', 'v'), ('k', 'a b'), ('bad name', 'v'), ('k',), 'k=v'))
    yield ('format_chunk', (rng.choice(((extension, data), [extension, data], (None,))),))


# degu._cparse.response_head(response, method, connection, date): the
# responses an app returns, the common ones first.
class _Str(str):
    pass


class _Int(int):
    pass


class _Tuple(tuple):
    pass


HEAD_STATUSES = ([200, 201, 299, 404, 500, 599],
                 [204, 304, 199, 100, 600, True, 200.0, '200', 2 ** 70, -200, _Int(200)])
HEAD_REASONS = (REASONS[0], REASONS[1] + [_Str('OK'), None, b'OK'])
HEAD_OWN = [('content-length', 0), ('content-length', 5), ('content-length', '0'),
            ('content-length', 'x'), ('transfer-encoding', 'chunked'),
            ('connection', 'close'), ('connection', 'keep-alive'), ('connection', 'Close, x'),
            ('date', 'Sun, 06 Nov 1994 08:49:37 GMT'), ('date', 'a\nb'), (_Str('x-a'), 'v'),
            (_Str('connection'), 'close')]
HEAD_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD']
# The lines _serve() passes: its connection line, or none (HTTP/1.1 kept).
HEAD_CONNECTIONS = ['', '\r\nconnection: close', '\r\nconnection: keep-alive']
DATE = '\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT'
BUF_LEN = 32 * 1024  # degu._parse.BUF_LEN: a bigger body is sent after its preamble


def head_body(rng):
    """A body an app returns: bytes or None mostly, else anything."""
    if rng.random() < 0.8:
        return rng.choice((None, b'', b'hello', b'x' * 300, b'y' * BUF_LEN,
                           b'z' * (BUF_LEN + 1)))
    from degu.base import BodyIter

    return rng.choice((bytearray(b'ab'), 'text', memoryview(b'ab'), 0,
                       BodyIter([b'ab'], 2)))


def head_case(rng):
    """One random ``(response, method, connection, date)``."""
    headers = header_dict(rng)
    if rng.random() < 0.5:
        headers['content-type'] = 'text/plain'
    if rng.random() < 0.3:
        (name, value) = rng.choice(HEAD_OWN)
        headers[name] = value
    response = (pick(rng, HEAD_STATUSES), pick(rng, HEAD_REASONS), headers, head_body(rng))
    if rng.random() < 0.05:
        response = rng.choice((list(response), response[:3], response + (None,),
                               _Tuple(response)))
    elif rng.random() < 0.03:
        response = response[:2] + (rng.choice((list(headers.items()), None)),) + response[3:]
    method = rng.choice(HEAD_METHODS)
    return (response, method, rng.choice(HEAD_CONNECTIONS), DATE)


def head_reference(response, method, connection, date):
    """What the server's checked path sends for what response_head() takes, or raises.

    ``_check_response()`` and ``Server._response_head()`` of degu.server
    themselves, over the pure-Python renderer, for a request whose version
    and close reason give *connection*, with *date* as the current date line.
    """
    from types import SimpleNamespace

    from degu import _parse, server

    version = 'HTTP/1.0' if connection.endswith('keep-alive') else 'HTTP/1.1'
    request = SimpleNamespace(_method=method, _version=version)
    closing = 'closing' if connection.endswith('close') else None
    session = SimpleNamespace(_requests=0, _max_requests=2, _close=lambda reason: None)
    saved = (server.render_response, server._date_field, server._date_until)
    server.render_response = _parse.PYTHON_CORE['render_response']
    (server._date_field, server._date_until) = (date, float('inf'))
    try:
        response = server._check_response(response, request)
        (preamble, _, _) = server.Server._response_head(
            SimpleNamespace(_stopping=False), session, request, closing, response
        )
    finally:
        (server.render_response, server._date_field, server._date_until) = saved
    body = response[3]
    if type(body) is bytes and len(body) <= BUF_LEN:
        return preamble + body
    return preamble


def compare_head(c, args):
    """Raise AssertionError when ``c.response_head(*args)`` gives bytes the reference does not."""
    got = outcome(c.response_head, *args)
    if got == ('ok', type(None), 'None'):
        return False  # left to the reference
    expected = outcome(head_reference, *args)
    if expected != got:
        raise AssertionError(f'response_head{args!r}:\n  reference: {expected!r}\n'
                             f'  c:         {got!r}')
    return True
# --------------------------------------------------------------------------
# Whole preambles: read_request() and read_response_head() both ways


class ChunkSocket:
    """A socket whose peer sent *chunks*, one per ``recv_into``, then EOF."""

    def __init__(self, chunks):
        self._chunks = [bytes(c) for c in chunks if c]

    def recv_into(self, buf):
        if not self._chunks:
            return 0
        chunk = self._chunks[0]
        size = min(len(buf), len(chunk))
        buf[:size] = chunk[:size]
        self._chunks[0] = chunk[size:]
        if not self._chunks[0]:
            del self._chunks[0]
        return size

    def send(self, data):
        return len(data)

    def close(self):
        pass


def summary(message, transport):
    """The fields of a ``Request`` or ``(Response, version, kind)`` worth comparing."""
    if isinstance(message, tuple) and len(message) == 3:
        ((status, reason, headers, body), version, kind) = message
        fields = (status, reason, version, kind)
    else:
        (headers, body) = (message.headers, message.body)
        fields = (message.method, message.uri, message.mount, message.path, message.query,
                  message.version, message._origin)
    values = [(name, type(value), value) for (name, value) in headers.items()]
    framing = None
    if body is not None:
        framing = (body.content_length, body._state, body._rfile is transport,
                   body._reader is transport, getattr(body, '_remaining', None),
                   getattr(body, '_left', None), getattr(body, '_pending', None),
                   getattr(body, '_inside', None))
    return ('ok', fields, values, type(body), framing, transport._start, transport._stop)


def read_outcome(read, transport, *args):
    """What a reader does: a summary of its message, or its exception, and the offsets."""
    try:
        message = read(transport, *args)
    except Exception as e:  # noqa: BLE001 - every exception is compared
        return ('error', type(e), str(e), getattr(e, 'status', None),
                getattr(e, 'reason', None), transport._start, transport._stop)
    return summary(message, transport)


def both_ways(c, make, method=None, args=()):
    """``(python, scanned)``: a request (*method* None) or response read each way.

    *make()* gives a new transport to read from, the same bytes each time.
    """
    from degu import _io, _parse
    from degu._body import _NO_ORIGIN, Request

    c._bind_request(Request, _NO_ORIGIN)  # degu._io does it on the C core alone
    python = _parse.PYTHON_CORE
    names = ('parse_request_line', 'parse_response_line', 'parse_headers')
    saved = {name: getattr(_io, name) for name in names + ('scan_request', 'scan_response')}
    outcomes = []
    try:
        for scanned in (False, True):
            for name in names:
                setattr(_io, name, getattr(c, name) if scanned else python[name])
            _io.scan_request = c.scan_request
            _io.scan_response = c.scan_response
            transport = make()
            if method is None:
                read = _io._scan_request if scanned else _io._read_request
                outcomes.append(read_outcome(read, transport, *args))
            else:
                read = _io._scan_response_head if scanned else _io._read_response_head
                outcomes.append(read_outcome(read, transport, method, *args))
    finally:
        for (name, value) in saved.items():
            setattr(_io, name, value)
    return tuple(outcomes)


def compare_read(c, chunks, method=None, args=(), buffer_size=None):
    """Raise AssertionError when the two ways of reading *chunks* disagree."""
    from degu._transport import Transport

    options = {} if buffer_size is None else {'buffer_size': buffer_size}
    (expected, got) = both_ways(c, lambda: Transport(ChunkSocket(chunks), **options), method,
                                args)
    if expected != got:
        what = 'request' if method is None else f'response to {method}'
        raise AssertionError(f'{what} {chunks!r} {args!r}:\n  python: {expected!r}\n'
                             f'  scan:   {got!r}')


# What a scanner takes itself, most of the time: the others are the Python path's.
COMMON_REQUEST_LINES = REQUEST_LINES[:5]
COMMON_HEADER_LINES = [line for line in HEADER_LINES if b'ange' not in line.lower()]


def preamble(rng, first, common):
    (lines, fields) = (first, HEADER_LINES)
    if rng.random() < 0.6:
        (lines, fields) = (common, COMMON_HEADER_LINES)
    chosen = [rng.choice(lines)] + [rng.choice(fields) for _ in range(rng.randrange(0, 6))]
    return CRLF.join(chosen) + b'\r\n\r\n'


def request_preamble(rng):
    return preamble(rng, REQUEST_LINES, COMMON_REQUEST_LINES)


def response_preamble(rng):
    return preamble(rng, STATUS_LINES, STATUS_LINES[:5])


def split(rng, data):
    """*data* as the chunks a peer might send: whole, or cut once or twice."""
    if rng.random() < 0.6 or len(data) < 2:
        return [data]
    cuts = sorted(rng.randrange(1, len(data)) for _ in range(rng.randrange(1, 3)))
    return [data[a:b] for (a, b) in zip([0] + cuts, cuts + [len(data)])]


def read_cases(rng):
    """One random input for each reader: ``(chunks, method, args, buffer_size)``."""
    maybe = (lambda src: mutate(rng, src, 400)) if rng.random() < 0.4 else (lambda src: src)
    tail = rng.choice((b'', b'hello', b'GET / HTTP/1.1\r\n\r\n', b'\r\n'))
    limits = rng.choice(((), (rng.randrange(0, 300),), (rng.randrange(0, 300), rng.randrange(8)),
                         (4096, 100, rng.choice((None, 0, 5, 17)))))
    data = maybe(request_preamble(rng)) + tail
    if rng.random() < 0.1:
        data = b'\r\n' * rng.randrange(1, 3) + data
    size = rng.choice((None, None, 16, 64))  # a small buffer grows (Transport._grow())
    yield (split(rng, data), None, limits, size)
    yield ([random_bytes(rng, 60) + b'\r\n\r\n'], None, (), None)
    method = rng.choice(('GET', 'HEAD', 'POST', 'PUT'))
    data = maybe(response_preamble(rng)) + tail
    yield (split(rng, data), method, limits[:2], size)


def compare(python, c, name, args):
    """Raise AssertionError when the cores disagree on ``name(*args)``."""
    expected = outcome(python[name], *args)
    got = outcome(getattr(c, name), *args)
    if expected != got:
        raise AssertionError(f'{name}{args!r}:\n  python: {expected!r}\n  c:      {got!r}')


def main(argv):
    seconds = float(argv[1]) if len(argv) > 1 else 10.0
    seed = int(argv[2]) if len(argv) > 2 else random.randrange(2 ** 32)
    from degu import _parse

    python = _parse.PYTHON_CORE
    c = _parse._load_c_core()
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        for _ in range(100):
            for (name, args) in cases(rng):
                compare(python, c, name, args)
                count += 1
            compare_head(c, head_case(rng))
            count += 1
            for (chunks, method, args, size) in read_cases(rng):
                compare_read(c, chunks, method, args, size)
                count += 1
    print(f'fuzz_core: {count} inputs, no difference (seed {seed}, {seconds:g} s)')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
