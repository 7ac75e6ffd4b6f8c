"""Property tests (hypothesis) of the parsers, renderers and bodies of degu.base.

* render -> parse gives back the input: request and response preambles,
  header blocks, chunk lines with extensions, ranges, content-lengths;
* arbitrary bytes into any parser raise only ``ValueError`` (``ParseError``
  and ``UnsupportedResponse`` are subclasses), and into the reader only
  ``ValueError`` or ``ConnectionClosed``;
* bodies driven by random operation sequences keep their state machine.
"""

import io
import string

import pytest
from helpers import FakeFile, FakeSocket
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from degu import base
from degu.base import (
    BODY_CONSUMED,
    BODY_READY,
    BODY_STARTED,
    MAX_LENGTH,
    Body,
    ChunkedBody,
    ConnectionClosed,
    ContentRange,
    Range,
    SocketWrapper,
    format_chunk,
    parse_chunk,
    parse_content_length,
    parse_content_range,
    parse_headers,
    parse_range,
    parse_request_line,
    parse_response_line,
    render_headers,
    render_request,
    render_response,
)

# Every test here runs against both cores (tests/conftest.py).
pytestmark = pytest.mark.usefixtures('core')

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TCHAR = "!#$%&'*+-.^_`|~" + string.digits + string.ascii_letters
LOWER_TCHAR = "!#$%&'*+-.^_`|~" + string.digits + string.ascii_lowercase
PCHAR = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@"
# field-content: VCHAR, obs-text, SP and HTAB; decoded as latin-1
FIELD_CHARS = ''.join(chr(b) for b in range(0x21, 0x7F)) + ''.join(
    chr(b) for b in range(0x80, 0x100)
)
PARSED_NAMES = {'content-length', 'transfer-encoding', 'range', 'content-range', 'host'}

tokens = st.text(TCHAR, min_size=1, max_size=20)
lower_tokens = st.text(LOWER_TCHAR, min_size=1, max_size=20)
header_names = lower_tokens.filter(lambda n: n not in PARSED_NAMES)


@st.composite
def field_values(draw, min_size=0):
    """Field text without leading or trailing whitespace (what we send)."""
    inner = draw(st.text(FIELD_CHARS + ' \t', max_size=30))
    if not inner and min_size == 0 and draw(st.booleans()):
        return ''
    first = draw(st.sampled_from(FIELD_CHARS))
    last = draw(st.sampled_from(FIELD_CHARS))
    return first + inner + last if inner else first


header_dicts = st.dictionaries(header_names, field_values(), max_size=12)
segments = st.text(PCHAR, max_size=8).filter(lambda s: s not in ('.', '..'))


@st.composite
def targets(draw):
    """An origin-form target and its expected (uri, path, query)."""
    path = draw(st.lists(segments, max_size=5))
    # empty segments would make '//': only the last one may be empty
    path = [p for p in path[:-1] if p] + path[-1:]
    if path == ['']:
        path = []  # '/' is the empty path
    query = draw(st.none() | st.text(PCHAR + '/?', max_size=12))
    uri = '/' + '/'.join(path)
    if query is not None:
        uri += '?' + query
    return (uri, path, query)


# -------------------------------------------------------------------------
# Round trips.


@SETTINGS
@given(st.sampled_from(base.METHODS), targets(), header_dicts)
def test_request_preamble_round_trip(method, target, headers):
    (uri, path, query) = target
    preamble = render_request(method, uri, headers)
    (line, _, block) = preamble[:-4].partition(b'\r\n')
    assert parse_request_line(line) == (method, uri, path, query, 'HTTP/1.1')
    assert parse_headers(block) == headers
    # and through the reader, one byte at a time
    r = SocketWrapper(FakeSocket(preamble, 7)).read_request()
    assert (r.method, r.uri, r.headers, r.body, r.path, r.query) == (
        method,
        uri,
        headers,
        None,
        path,
        query,
    )


@SETTINGS
@given(st.integers(100, 599), field_values(min_size=1), header_dicts)
def test_response_preamble_round_trip(status, reason, headers):
    preamble = render_response(status, reason, headers)
    (line, _, block) = preamble[:-4].partition(b'\r\n')
    assert parse_response_line(line) == ('HTTP/1.1', status, reason)
    assert parse_headers(block, True) == headers
    r = SocketWrapper(FakeSocket(preamble, 5)).read_response('HEAD')
    assert (r.status, r.reason, r.headers, r.body) == (status, reason, headers, None)


@SETTINGS
@given(header_dicts, st.integers(0, MAX_LENGTH))
def test_header_block_round_trip(headers, length):
    text = render_headers(headers)
    assert parse_headers(text[2:].encode('latin-1')) == headers
    headers['content-length'] = length
    text = render_headers(headers)
    assert parse_headers(text[2:].encode('latin-1')) == headers


@SETTINGS
@given(
    st.none() | st.tuples(tokens, st.text(FIELD_CHARS + ' \t', max_size=20)),
    st.integers(0, 300),
)
def test_chunk_line_round_trip(extension, size):
    line = format_chunk((extension, b'x' * size))
    assert line.endswith(b'\r\n')
    assert parse_chunk(line[:-2]) == (size, extension)


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.none() | st.tuples(tokens, st.text(FIELD_CHARS + ' ', max_size=8)),
            st.binary(min_size=1, max_size=50),
        ),
        max_size=6,
    ),
    st.sampled_from([1, 3, 1 << 20]),
)
def test_chunked_body_round_trip(chunks, n):
    chunks = chunks + [(None, b'')]
    out = io.BytesIO()
    base.ChunkedBodyIter(chunks).write_to(out)
    assert list(ChunkedBody(FakeFile(out.getvalue(), n))) == chunks
    src = b'PUT / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n' + out.getvalue()
    body = SocketWrapper(FakeSocket(src, n)).read_request().body
    assert body.read() == b''.join(c[1] for c in chunks)


@SETTINGS
@given(st.integers(0, MAX_LENGTH - 1), st.integers(1, MAX_LENGTH))
def test_range_round_trip(start, size):
    stop = min(start + size, MAX_LENGTH)
    r = Range(start, stop)
    assert parse_range(str(r).encode()) == r
    total = st_total = max(stop, start + 1)
    cr = ContentRange(start, stop, st_total)
    assert parse_content_range(str(cr).encode()) == cr
    assert r.content_range(total) == cr
    assert r.content_length(total) == stop - start


@SETTINGS
@given(st.integers(0, MAX_LENGTH), st.integers(0, 5))
def test_content_length_round_trip(length, zeros):
    src = b'0' * zeros + str(length).encode()
    assume(len(src) <= 16)
    assert parse_content_length(src) == length


# -------------------------------------------------------------------------
# Arbitrary bytes: only ValueError.

PARSERS = [
    base.parse_method,
    base.parse_uri,
    base.parse_version,
    base.parse_request_line,
    base.parse_response_line,
    base.parse_header_name,
    base.parse_headers,
    lambda src: base.parse_headers(src, True),
    base.parse_content_length,
    base.parse_transfer_encoding,
    base.parse_range,
    base.parse_content_range,
    base.parse_chunk_size,
    base.parse_chunk_extension,
    base.parse_chunk,
]

# bytes that look like HTTP, so the parsers get past their first checks
HTTPISH = st.lists(
    st.sampled_from(
        [
            b'GET',
            b' ',
            b'/',
            b'HTTP/1.1',
            b'\r\n',
            b':',
            b'a',
            b'%',
            b'?',
            b';',
            b'=',
            b'"',
            b'\\',
            b'0',
            b'5',
            b'f',
            b'bytes',
            b'-',
            b'content-length',
            b'transfer-encoding',
            b'chunked',
            b'range',
            b'content-range',
            b'\t',
            b'\xe9',
            b'\x00',
            b'\n',
            b'\r',
            b'*',
            b'http://h',
        ]
    ),
    max_size=20,
).map(b''.join)
ARBITRARY = st.binary(max_size=80) | HTTPISH


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(range(len(PARSERS))), ARBITRARY)
def test_parsers_raise_only_value_error(index, src):
    try:
        PARSERS[index](src)
    except ValueError:
        pass


@SETTINGS
@given(ARBITRARY, st.sampled_from([1, 1 << 20]))
def test_reader_raises_only_value_error_or_connection_closed(src, n):
    sw = SocketWrapper(FakeSocket(src, n))
    try:
        r = sw.read_request()
        if r.body is not None:
            r.body.read()
    except (ValueError, ConnectionClosed):
        pass
    sw = SocketWrapper(
        FakeSocket(b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n' + src, n)
    )
    body = sw.read_response('GET').body
    try:
        body.read()
    except (ValueError, ConnectionClosed):
        pass
    try:
        ChunkedBody(io.BytesIO(src)).read()
    except ValueError:
        pass


@SETTINGS
@given(ARBITRARY)
def test_response_reader_raises_only_value_error_or_connection_closed(src):
    sw = SocketWrapper(FakeSocket(b'HTTP/1.1 200 OK\r\n' + src))
    try:
        r = sw.read_response('GET')
        if r.body is not None:
            r.body.read()
    except (ValueError, ConnectionClosed):
        pass


# -------------------------------------------------------------------------
# Body state machines under random operation sequences.

OPS = st.lists(
    st.sampled_from(['read', 'read0', 'readinto', 'iter', 'write_to']) | st.integers(1, 40),
    max_size=12,
)


@SETTINGS
@given(st.binary(max_size=100), OPS, st.sampled_from([1, 1 << 20]))
def test_body_state_machine(data, ops, n):
    body = Body(FakeFile(data, n), len(data))
    got = b''
    for op in ops:
        before = body.state
        try:
            if op == 'read':
                got += body.read()
            elif op == 'read0':
                assert body.read(0) == b''
                assert body.state == before
            elif op == 'readinto':
                buf = bytearray(7)
                count = body.readinto(buf)
                got += buf[:count]
            elif op == 'iter':
                got += b''.join(body)
            elif op == 'write_to':
                out = io.BytesIO()
                body.write_to(out)
                got += out.getvalue()
            else:
                part = body.read(op)
                assert len(part) == min(op, len(data) - len(got))
                got += part
        except ValueError as e:
            # only the documented state errors: iteration and write_to need READY
            assert op in ('iter', 'write_to')
            assert before != BODY_READY
            assert str(e).startswith('Body.state == ')
            assert body.state == before
        assert data.startswith(got)  # never more, never other data
        if len(got) == len(data) and op != 'read0':
            assert body.state == BODY_CONSUMED
        elif body.state == BODY_CONSUMED:
            assert got == data
        else:
            assert body.state in (BODY_READY, BODY_STARTED)
    if body.state == BODY_CONSUMED:
        assert body.read() == b''


@FEW
@given(
    st.lists(st.binary(min_size=1, max_size=20), max_size=5),
    st.lists(
        st.sampled_from(['read', 'readchunk', 'iter', 'write_to', 'readinto'])
        | st.integers(1, 9)
        | st.integers(-9, -1),
        max_size=10,
    ),
    st.sampled_from([1, 1 << 20]),
)
def test_chunked_body_state_machine(parts, ops, n):
    chunks = [(None, p) for p in parts] + [(None, b'')]
    out = io.BytesIO()
    base.ChunkedBodyIter(chunks).write_to(out)
    data = b''.join(parts)
    body = ChunkedBody(FakeFile(out.getvalue(), n))
    got = b''
    for op in ops:
        before = body.state
        try:
            if op == 'read':
                got += body.read()
            elif op == 'readchunk':
                got += body.readchunk()[1]
            elif op == 'readinto':
                buf = bytearray(7)
                got += buf[: body.readinto(buf)]
            elif op == 'iter':
                got += b''.join(c[1] for c in body)
            elif op == 'write_to':
                w = io.BytesIO()
                body.write_to(w)
                got += b''.join(c[1] for c in ChunkedBody(io.BytesIO(w.getvalue())))
            elif op < 0:  # readinto() a buffer of -op bytes
                buf = bytearray(-op)
                count = body.readinto(buf)
                assert count <= -op
                got += buf[:count]
            else:
                part = body.read(op)
                assert len(part) <= op
                got += part
        except ValueError as e:
            assert str(e).startswith('ChunkedBody.state == ')
            assert body.state == before
            if before == BODY_CONSUMED:
                assert op in ('readchunk', 'iter', 'write_to')
            else:
                assert before == BODY_STARTED and op in ('iter', 'write_to')
        assert data.startswith(got)
        if body.state == BODY_CONSUMED:
            assert got == data
