"""Tests of the body objects and RGI values of degu.base, over ordinary files.

Bodies over a connection (``SocketWrapper``) are in test_base_io.py.  Every
reading test runs with a file that moves one byte per call and with one that
moves everything (``MOVE_SIZES``).
"""

import io
import random
import shutil

import pytest
from helpers import MOVE_SIZES, FakeFile, MockTransport, encode_chunks, raises, random_chunks

from degu import base
from degu.base import (
    BODY_CONSUMED,
    BODY_ERROR,
    BODY_READY,
    BODY_STARTED,
    IO_SIZE,
    MAX_IO_SIZE,
    Body,
    BodyIter,
    ChunkedBody,
    ChunkedBodyIter,
    ContentRange,
    ParseError,
    Range,
    Request,
    Response,
    Session,
    read_request,
)

# Every test here runs against both cores (tests/conftest.py).
pytestmark = pytest.mark.usefixtures('core')

STATE_NAMES = {
    BODY_STARTED: 'BODY_STARTED, cannot start another operation',
    BODY_CONSUMED: 'BODY_CONSUMED, already consumed',
    BODY_ERROR: 'BODY_ERROR, cannot be used',
}


def state_message(body, state):
    return f'{type(body).__name__}.state == {STATE_NAMES[state]}'


# -------------------------------------------------------------------------
# Body: construction.

BODY_ARGS_BAD = [
    (
        (io.BytesIO(), '1'),
        TypeError,
        "content_length: need a <class 'int'>; got a <class 'str'>: '1'",
    ),
    (
        (io.BytesIO(), 1.0),
        TypeError,
        "content_length: need a <class 'int'>; got a <class 'float'>: 1.0",
    ),
    (
        (io.BytesIO(), True),
        TypeError,
        "content_length: need a <class 'int'>; got a <class 'bool'>: True",
    ),
    (
        (io.BytesIO(), None),
        TypeError,
        "content_length: need a <class 'int'>; got a <class 'NoneType'>: None",
    ),
    ((io.BytesIO(), -1), ValueError, 'need 0 <= content_length <= 9999999999999999; got -1'),
    (
        (io.BytesIO(), 10**16),
        ValueError,
        'need 0 <= content_length <= 9999999999999999; got 10000000000000000',
    ),
]


@pytest.mark.parametrize('args, exc, message', BODY_ARGS_BAD)
def test_body_args_bad(args, exc, message):
    raises(exc, message, Body, *args)


class NotCallable:
    readinto = b''
    readline = b''


def test_body_rfile_checks():
    with pytest.raises(AttributeError):
        Body(object(), 1)
    raises(TypeError, 'NotCallable.readinto() is not callable', Body, NotCallable(), 1)
    with pytest.raises(AttributeError):
        ChunkedBody(io.RawIOBase())  # has readinto and readline: fine
        ChunkedBody(object())
    raises(TypeError, 'NotCallable.readinto() is not callable', ChunkedBody, NotCallable())

    class NoReadline:
        def readinto(self, buf):
            return 0

    with pytest.raises(AttributeError):
        ChunkedBody(NoReadline())


def test_body_attributes():
    rfile = io.BytesIO(b'hello')
    body = Body(rfile, 5)
    assert body.rfile is rfile
    assert body.content_length == 5
    assert body.state == BODY_READY
    assert body.chunked is False
    assert repr(body) == f'Body({rfile!r}, 5)'
    for name in ('rfile', 'content_length', 'state'):
        with pytest.raises(AttributeError):
            setattr(body, name, None)
    with body as b:
        assert b is body
    assert Body(rfile, 0).content_length == 0
    assert Body(rfile, base.MAX_LENGTH).content_length == base.MAX_LENGTH


# -------------------------------------------------------------------------
# Body: reading.


@pytest.mark.parametrize('n', MOVE_SIZES)
def test_body_read_all(n):
    body = Body(FakeFile(b'hello world', n), 11)
    assert body.read() == b'hello world'
    assert body.state == BODY_CONSUMED
    assert body.read() == b''  # decision 1: file semantics
    assert body.read(5) == b''
    assert body.read(0) == b''
    assert body.state == BODY_CONSUMED


@pytest.mark.parametrize('n', MOVE_SIZES)
def test_body_read_sized(n):
    body = Body(FakeFile(b'hello world!', n), 11)
    assert body.read(0) == b''
    assert body.state == BODY_READY  # read(0) has no side effects
    assert body.read(5) == b'hello'
    assert body.state == BODY_STARTED
    assert body.read(0) == b''
    assert body.state == BODY_STARTED
    assert body.read(5) == b' worl'
    assert body.state == BODY_STARTED
    assert body.read(5) == b'd'  # the read that reaches the end consumes
    assert body.state == BODY_CONSUMED
    assert body.read(5) == b''
    assert body.rfile.readinto(bytearray(5)) == 1  # the '!' was never read


@pytest.mark.parametrize('n', MOVE_SIZES)
def test_body_read_exact_end(n):
    body = Body(FakeFile(b'abcdef', n), 6)
    assert body.read(3) == b'abc'
    assert body.read(3) == b'def'
    assert body.state == BODY_CONSUMED


def test_body_empty():
    body = Body(io.BytesIO(b'xyz'), 0)
    assert body.read(0) == b''
    assert body.state == BODY_READY
    assert body.read(1) == b''
    assert body.state == BODY_CONSUMED
    body = Body(io.BytesIO(b'xyz'), 0)
    assert body.read() == b''
    assert body.state == BODY_CONSUMED
    body = Body(io.BytesIO(b'xyz'), 0)
    assert list(body) == []
    assert body.state == BODY_CONSUMED
    body = Body(io.BytesIO(b'xyz'), 0)
    out = io.BytesIO()
    assert body.write_to(out) == 0
    assert body.state == BODY_CONSUMED and out.getvalue() == b''
    body = Body(io.BytesIO(b'xyz'), 0)
    assert body.readinto(bytearray(3)) == 0
    assert body.state == BODY_CONSUMED


READ_SIZE_BAD = [
    ('1', TypeError, "size: need a <class 'int'>; got a <class 'str'>: '1'"),
    (1.0, TypeError, "size: need a <class 'int'>; got a <class 'float'>: 1.0"),
    (-1, ValueError, 'need 0 <= size <= 16777216; got -1'),
    (MAX_IO_SIZE + 1, ValueError, 'need 0 <= size <= 16777216; got 16777217'),
]


@pytest.mark.parametrize('size, exc, message', READ_SIZE_BAD)
@pytest.mark.parametrize('cls', [Body, ChunkedBody])
def test_read_size_bad(cls, size, exc, message):
    rfile = io.BytesIO(b'5\r\nhello\r\n0\r\n\r\n')
    body = cls(rfile, 15) if cls is Body else cls(rfile)
    raises(exc, message, body.read, size)
    assert body.state == BODY_READY  # size is checked first
    body.read()
    raises(exc, message, body.read, size)
    assert body.state == BODY_CONSUMED


def test_body_read_max_size():
    body = Body(io.BytesIO(), MAX_IO_SIZE + 1)
    e = raises(ParseError, 'would exceed max read size: 16777217 > 16777216', body.read)
    assert (e.status, e.reason) == (413, 'Content Too Large')  # what the server answers
    assert body.state == BODY_READY
    data = b'x' * (MAX_IO_SIZE + 1)
    body = Body(io.BytesIO(data), MAX_IO_SIZE + 1)
    assert body.read(1) == b'x'
    assert body.read() == data[1:]
    assert body.state == BODY_CONSUMED


@pytest.mark.parametrize('n', MOVE_SIZES)
def test_body_short(n):
    body = Body(FakeFile(b'hello', n), 6)
    raises(ValueError, 'expected to read 6 bytes, but received 5', body.read)
    assert body.state == BODY_ERROR
    msg = 'Body.state == BODY_ERROR, cannot be used'
    raises(ValueError, msg, body.read)
    raises(ValueError, msg, body.read, 1)
    raises(ValueError, msg, body.readinto, bytearray(1))
    raises(ValueError, msg, list, body)
    raises(ValueError, msg, body.write_to, io.BytesIO())
    raises(ValueError, msg, body.read, 0)


def test_body_short_sized():
    body = Body(io.BytesIO(b'hello'), 10)
    assert body.read(3) == b'hel'
    raises(ValueError, 'expected to read 3 bytes, but received 2', body.read, 3)
    assert body.state == BODY_ERROR


class BadReadinto:
    def __init__(self, value):
        self.value = value

    def readinto(self, buf):
        return self.value

    def readline(self, size):
        return self.value


READINTO_BAD = [
    ('2', TypeError, "received: need a <class 'int'>; got a <class 'str'>: '2'"),
    (None, TypeError, "received: need a <class 'int'>; got a <class 'NoneType'>: None"),
    (-1, ValueError, 'need 0 <= received <= 4; got -1'),
    (5, ValueError, 'need 0 <= received <= 4; got 5'),
    (0, ValueError, 'expected to read 4 bytes, but received 0'),
]


@pytest.mark.parametrize('value, exc, message', READINTO_BAD)
def test_body_rfile_readinto_bad(value, exc, message):
    body = Body(BadReadinto(value), 4)
    raises(exc, message, body.read)
    assert body.state == BODY_ERROR
    body = Body(BadReadinto(value), 4)
    raises(exc, message, body.readinto, bytearray(10))
    assert body.state == BODY_ERROR


class Boom(Exception):
    pass


class ExplodingFile:
    def readinto(self, buf):
        raise Boom('readinto')

    def readline(self, size):
        raise Boom('readline')

    def write(self, data):
        raise Boom('write')


def test_body_rfile_raises():
    for op in (
        lambda b: b.read(),
        lambda b: b.read(2),
        lambda b: b.readinto(bytearray(2)),
        list,
        lambda b: b.write_to(io.BytesIO()),
    ):
        body = Body(ExplodingFile(), 4)
        with pytest.raises(Boom):
            op(body)
        assert body.state == BODY_ERROR


@pytest.mark.parametrize('n', MOVE_SIZES)
def test_body_readinto(n):
    body = Body(FakeFile(b'hello world', n), 11)
    buf = bytearray(4)
    assert body.readinto(buf) == 4 and buf == b'hell'
    assert body.state == BODY_STARTED
    assert body.readinto(bytearray()) == 0
    assert body.state == BODY_STARTED
    assert body.readinto(memoryview(buf)) == 4 and buf == b'o wo'
    big = bytearray(10)
    assert body.readinto(big) == 3 and big[:3] == b'rld'
    assert body.state == BODY_CONSUMED
    assert body.readinto(big) == 0


def test_body_readinto_no_side_effects_when_empty():
    body = Body(io.BytesIO(b'abc'), 3)
    assert body.readinto(bytearray()) == 0
    assert body.state == BODY_READY


def test_body_readinto_other_buffers():
    import array

    body = Body(io.BytesIO(bytes(range(8))), 8)
    a = array.array('H', [0, 0])
    assert body.readinto(a) == 4
    assert bytes(a) == bytes(range(4))
    assert body.read() == bytes(range(4, 8))


def test_body_copyfileobj():
    # decision 1: a Body is a file for shutil
    data = bytes(range(256)) * 100
    body = Body(io.BytesIO(data), len(data))
    out = io.BytesIO()
    shutil.copyfileobj(body, out, 1000)
    assert out.getvalue() == data
    assert body.state == BODY_CONSUMED


@pytest.mark.parametrize('n', MOVE_SIZES)
def test_body_iter(n):
    body = Body(FakeFile(b'hello', n), 5)
    assert list(body) == [b'hello']
    assert body.state == BODY_CONSUMED
    raises(ValueError, 'Body.state == BODY_CONSUMED, already consumed', list, body)


def test_body_iter_pieces():
    data = random.Random(1).randbytes(2 * IO_SIZE + 7)
    body = Body(io.BytesIO(data), len(data))
    it = iter(body)
    first = next(it)
    assert body.state == BODY_STARTED
    rest = list(it)
    assert [len(x) for x in [first] + rest] == [IO_SIZE, IO_SIZE, 7]
    assert b''.join([first] + rest) == data
    assert body.state == BODY_CONSUMED


def test_body_iter_only_from_ready():
    body = Body(io.BytesIO(b'hello'), 5)
    body.read(1)
    raises(ValueError, 'Body.state == BODY_STARTED, cannot start another operation', list, body)
    raises(
        ValueError,
        'Body.state == BODY_STARTED, cannot start another operation',
        body.write_to,
        io.BytesIO(),
    )
    assert body.read() == b'ello'


@pytest.mark.parametrize('n', MOVE_SIZES)
def test_body_write_to(n):
    data = random.Random(2).randbytes(IO_SIZE + 3)
    body = Body(FakeFile(data, n * 1000), len(data))
    out = FakeFile(n=n * 1000)
    assert body.write_to(out) == len(data)
    assert out.written == data
    assert body.state == BODY_CONSUMED
    raises(ValueError, 'Body.state == BODY_CONSUMED, already consumed', body.write_to, out)


def test_body_write_to_partial_writes():
    body = Body(io.BytesIO(b'hello world'), 11)
    out = FakeFile(n=1)
    assert body.write_to(out) == 11
    assert out.written == b'hello world'


class BadWrite:
    def __init__(self, value):
        self.value = value

    def write(self, data):
        return self.value


WRITE_BAD = [
    ('1', TypeError, "sent: need a <class 'int'>; got a <class 'str'>: '1'"),
    (None, TypeError, "sent: need a <class 'int'>; got a <class 'NoneType'>: None"),
    (-1, ValueError, 'need 0 <= sent <= 5; got -1'),
    (6, ValueError, 'need 0 <= sent <= 5; got 6'),
    (0, ValueError, 'expected to write 5 bytes, but sent 0'),
]


@pytest.mark.parametrize('value, exc, message', WRITE_BAD)
def test_write_to_wfile_bad(value, exc, message):
    body = Body(io.BytesIO(b'hello'), 5)
    raises(exc, message, body.write_to, BadWrite(value))
    assert body.state == BODY_ERROR
    for body in (BodyIter([b'hello'], 5), ChunkedBodyIter([(None, b'hello'), (None, b'')])):
        with pytest.raises(exc):
            body.write_to(BadWrite(value))
        assert body.state == BODY_ERROR
    body = ChunkedBody(io.BytesIO(b'5\r\nhello\r\n0\r\n\r\n'))
    with pytest.raises(exc):
        body.write_to(BadWrite(value))
    assert body.state == BODY_ERROR


def test_write_to_wfile_raises():
    body = Body(io.BytesIO(b'hello'), 5)
    with pytest.raises(Boom):
        body.write_to(ExplodingFile())
    assert body.state == BODY_ERROR


# -------------------------------------------------------------------------
# ChunkedBody.


def test_chunked_body_attributes():
    rfile = io.BytesIO(b'0\r\n\r\n')
    body = ChunkedBody(rfile)
    assert body.rfile is rfile
    assert body.state == BODY_READY
    assert body.chunked is True
    assert repr(body) == f'ChunkedBody({rfile!r})'
    with pytest.raises(AttributeError):
        body.state = BODY_CONSUMED
    with body as b:
        assert b is body


CHUNKED_GOOD = [
    # wire bytes -> chunks
    (b'0\r\n\r\n', [(None, b'')]),
    (b'0;k=v\r\n\r\n', [(('k', 'v'), b'')]),
    (b'5\r\nhello\r\n0\r\n\r\n', [(None, b'hello'), (None, b'')]),
    (
        b'5;a=b\r\nhello\r\n1 ; c = "d e"\r\n \r\n0;f\r\n\r\n',
        [(('a', 'b'), b'hello'), (('c', 'd e'), b' '), (('f', ''), b'')],
    ),
    (b'2\r\n\r\n\r\n0\r\n\r\n', [(None, b'\r\n'), (None, b'')]),
    (b'A\r\n0123456789\r\n0\r\n\r\n', [(None, b'0123456789'), (None, b'')]),
    # chunk-size = 1*HEXDIG: leading zeros (RFC 9112 section 7.1)
    (b'05\r\nhello\r\n000\r\n\r\n', [(None, b'hello'), (None, b'')]),
    (b'0A\r\n0123456789\r\n0\r\n\r\n', [(None, b'0123456789'), (None, b'')]),
    # trailers are read, checked and dropped (RFC 9112 section 7.1.2)
    (b'3\r\nabc\r\n0\r\nx-sum: 1\r\n\r\n', [(None, b'abc'), (None, b'')]),
    (b'0\r\na: 1\r\nB: 2\r\na: 3\r\n\r\n', [(None, b'')]),
    # any field syntax is fine in a trailer: nothing is interpreted
    (
        b'0\r\ncontent-range: bytes 0-1/*\r\ncontent-length: x\r\nrange: y\r\n\r\n',
        [(None, b'')],
    ),
]


@pytest.mark.parametrize('n', MOVE_SIZES)
@pytest.mark.parametrize('src, chunks', CHUNKED_GOOD)
def test_chunked_body_good(src, chunks, n):
    rest = b'NEXT'
    # readchunk()
    body = ChunkedBody(FakeFile(src + rest, n))
    for chunk in chunks:
        assert body.state in (BODY_READY, BODY_STARTED)
        assert body.readchunk() == chunk
    assert body.state == BODY_CONSUMED
    raises(ValueError, 'ChunkedBody.state == BODY_CONSUMED, already consumed', body.readchunk)
    assert body.rfile.readline() == rest
    # iteration
    body = ChunkedBody(FakeFile(src + rest, n))
    assert list(body) == chunks
    assert body.state == BODY_CONSUMED
    # read()
    body = ChunkedBody(FakeFile(src + rest, n))
    assert body.read() == b''.join(c[1] for c in chunks)
    assert body.state == BODY_CONSUMED
    assert body.read() == b''
    # read(size), one byte at a time
    body = ChunkedBody(FakeFile(src + rest, n))
    out = []
    while True:
        data = body.read(1)
        if not data:
            break
        out.append(data)
    assert b''.join(out) == b''.join(c[1] for c in chunks)
    assert body.state == BODY_CONSUMED
    # write_to()
    body = ChunkedBody(FakeFile(src + rest, n))
    out = FakeFile(n=n)
    total = body.write_to(out)
    assert total == len(out.written)
    assert out.written == encode_chunks(chunks)
    assert body.state == BODY_CONSUMED


def test_chunked_body_read_sized_across_chunks():
    body = ChunkedBody(io.BytesIO(b'3;a=b\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n'))
    assert body.read(0) == b''
    assert body.state == BODY_READY
    assert body.read(2) == b'ab'
    assert body.state == BODY_STARTED
    assert body.read(5) == b'c'  # up to size: what is left of the current chunk
    assert body.read(100) == b'defg'
    assert body.state == BODY_STARTED
    assert body.read(100) == b''
    assert body.state == BODY_CONSUMED


def test_chunked_body_pending_then_readchunk_and_read():
    body = ChunkedBody(io.BytesIO(b'3;a=b\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n'))
    assert body.read(1) == b'a'
    assert body.readchunk() == (('a', 'b'), b'bc')  # the rest of the current chunk
    assert body.readchunk() == (None, b'defg')
    body = ChunkedBody(io.BytesIO(b'3;a=b\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n'))
    assert body.read(1) == b'a'
    assert body.read() == b'bcdefg'
    assert body.state == BODY_CONSUMED


def test_chunked_body_iter_only_from_ready():
    body = ChunkedBody(io.BytesIO(b'1\r\na\r\n0\r\n\r\n'))
    assert body.readchunk() == (None, b'a')
    msg = 'ChunkedBody.state == BODY_STARTED, cannot start another operation'
    raises(ValueError, msg, list, body)
    raises(ValueError, msg, body.write_to, io.BytesIO())
    assert body.readchunk() == (None, b'')


def test_chunked_body_read_max_size():
    half = MAX_IO_SIZE // 2
    data = b'x' * half
    src = b'%x\r\n%s\r\n' % (half, data) * 2 + b'1\r\ny\r\n0\r\n\r\n'
    body = ChunkedBody(io.BytesIO(src))
    e = raises(ParseError, 'chunks exceed max read size: 16777217 > 16777216', body.read)
    assert (e.status, e.reason) == (413, 'Content Too Large')
    assert body.state == BODY_ERROR
    src = b'%x\r\n%s\r\n' % (half, data) * 2 + b'0\r\n\r\n'
    assert ChunkedBody(io.BytesIO(src)).read() == data * 2


def test_chunked_body_max_chunk():
    data = b'z' * MAX_IO_SIZE
    body = ChunkedBody(io.BytesIO(b'1000000\r\n' + data + b'\r\n0\r\n\r\n'))
    assert body.readchunk() == (None, data)
    body = ChunkedBody(io.BytesIO(b'1000001\r\n' + data + b'z\r\n0\r\n\r\n'))
    raises(ParseError, 'need chunk_size <= 16777216; got 16777217', body.readchunk)
    assert body.state == BODY_ERROR


REASONS = {400: 'Bad Request', 431: 'Request Header Fields Too Large'}

# Every error is a ParseError (malformed chunked data) with the status a server answers.
CHUNKED_BAD = [
    (b'', 400, "b'\\r\\n' not found in b''"),
    (b'5', 400, "b'\\r\\n' not found in b'5'"),
    (b'5\n', 400, "b'\\r\\n' not found in b'5\\n'"),
    (b'\r\n', 400, "bad chunk_size: b''"),
    (b'-5\r\nhello\r\n0\r\n\r\n', 400, "bad chunk_size: b'-5'"),
    (b'5 \r\nhello\r\n0\r\n\r\n', 400, "bad chunk_size: b'5 '"),
    (b'5;\r\nhello\r\n0\r\n\r\n', 400, "bad chunk extension: b';'"),
    (b'5\r\nhel', 400, 'expected to read 5 bytes, but received 3'),
    (b'5\r\nhello', 400, 'expected to read 2 bytes, but received 0'),
    (b'5\r\nhello\r', 400, 'expected to read 2 bytes, but received 1'),
    (b'5\r\nhelloXY0\r\n\r\n', 400, "bad chunk data termination: b'XY'"),
    (b'5\r\nhello\n\r0\r\n\r\n', 400, "bad chunk data termination: b'\\n\\r'"),
    (b'0\r\n', 400, "b'\\r\\n' not found in b''"),
    (b'0\r\nx: y\r\n', 400, "b'\\r\\n' not found in b''"),
    (b'0\r\nx: y\n\r\n', 400, "b'\\r\\n' not found in b'x: y\\n'"),
    (b'0\r\nx : y\r\n\r\n', 400, "whitespace before colon in header name: b'x '"),
    (b'0\r\n y\r\n\r\n', 400, "obs-fold or leading whitespace in header line: b' y'"),
    (b'0\r\nxy\r\n\r\n', 400, "header line without a colon: b'xy'"),
    (
        b'0\r\n' + b'x: y\r\n' * 101 + b'\r\n',
        431,
        'trailer too large: 101 fields, 606 bytes',
    ),
    (
        b'0\r\n' + (b'x: ' + b'y' * 4000 + b'\r\n') * 9 + b'\r\n',
        431,
        'trailer too large: 9 fields, 36045 bytes',
    ),
    (b'1' * 5000 + b'\r\n', 400, f"b'\\r\\n' not found in {b'1' * 32!r}..."),
]


@pytest.mark.parametrize('n', MOVE_SIZES)
@pytest.mark.parametrize('src, status, message', CHUNKED_BAD)
def test_chunked_body_bad(src, status, message, n):
    for op in (ChunkedBody.readchunk, ChunkedBody.read, list):
        body = ChunkedBody(FakeFile(src, n))
        if op is ChunkedBody.readchunk and src.startswith(b'5\r\nhello\r\n'):
            assert body.readchunk() == (None, b'hello')
        e = raises(ParseError, message, op, body)
        assert (e.status, e.reason) == (status, REASONS[status])
        assert body.state == BODY_ERROR
        msg = 'ChunkedBody.state == BODY_ERROR, cannot be used'
        raises(ValueError, msg, body.readchunk)
        raises(ValueError, msg, body.read)
        raises(ValueError, msg, body.read, 1)


def test_chunked_body_readline_type():
    body = ChunkedBody(BadReadinto(bytearray(b'0\r\n')))
    msg = "need a <class 'bytes'>; readline() returned a <class 'bytearray'>"
    raises(TypeError, msg, body.readchunk)
    assert body.state == BODY_ERROR


def test_chunked_body_readline_too_long():
    class LongLine:
        def readinto(self, buf):
            return 0

        def readline(self, size):
            return b'1' * (size + 1) + b'\r\n'

    body = ChunkedBody(LongLine())
    raises(ParseError, f"b'\\r\\n' not found in {b'1' * 32!r}...", body.readchunk)


def test_chunked_body_random():
    rng = random.Random(3)
    for _ in range(30):
        chunks = random_chunks(rng)
        src = encode_chunks(chunks)
        assert list(ChunkedBody(io.BytesIO(src))) == chunks
        out = io.BytesIO()
        assert ChunkedBody(io.BytesIO(src)).write_to(out) == len(src)
        assert out.getvalue() == src


@pytest.mark.parametrize('n', MOVE_SIZES)
def test_chunked_body_truncated_at_every_offset(n):
    src = b'5;k="a b"\r\nhello\r\n1\r\n!\r\n0;e\r\nt: x\r\n\r\n'
    data = b'hello!'
    assert ChunkedBody(FakeFile(src, n)).read() == data
    for i in range(len(src)):
        body = ChunkedBody(FakeFile(src[:i], n))
        with pytest.raises(ValueError):
            body.read()
        assert body.state == BODY_ERROR


@pytest.mark.parametrize('n', MOVE_SIZES)
def test_body_truncated_at_every_offset(n):
    src = b'hello world'
    for i in range(len(src)):
        body = Body(FakeFile(src[:i], n), len(src))
        raises(ValueError, f'expected to read 11 bytes, but received {i}', body.read)
        assert body.state == BODY_ERROR
        body = Body(FakeFile(src[:i], n), len(src))
        with pytest.raises(ValueError):
            list(body)
        body = Body(FakeFile(src[:i], n), len(src))
        with pytest.raises(ValueError):
            body.write_to(io.BytesIO())


# -------------------------------------------------------------------------
# BodyIter.


def test_body_iter_attributes():
    source = [b'a']
    body = BodyIter(source, 1)
    assert body.source is source
    assert body.content_length == 1
    assert body.state == BODY_READY
    assert body.chunked is False
    assert repr(body) == "BodyIter([b'a'], 1)"
    raises(
        TypeError,
        "content_length: need a <class 'int'>; got a <class 'str'>: '1'",
        BodyIter,
        [],
        '1',
    )
    raises(ValueError, 'need 0 <= content_length <= 9999999999999999; got -1', BodyIter, [], -1)


BODY_ITER_GOOD = [
    ([], 0),
    ([b''], 0),
    ([b'', b'hello', b'', b' world', b''], 11),
]


@pytest.mark.parametrize('source, length', BODY_ITER_GOOD)
@pytest.mark.parametrize('n', MOVE_SIZES)
def test_body_iter_write_to(source, length, n):
    source = list(source)
    body = BodyIter(source, length)
    out = FakeFile(n=n)
    assert body.write_to(out) == length
    assert out.written == b''.join(source)
    assert body.state == BODY_CONSUMED
    raises(ValueError, 'BodyIter.state == BODY_CONSUMED, already consumed', body.write_to, out)


BODY_ITER_BAD = [
    (
        [b'hello', 'x'],
        6,
        TypeError,
        "BodyIter source item: need a <class 'bytes'>; got a <class 'str'>",
        5,
    ),
    (
        [bytearray(b'x')],
        1,
        TypeError,
        "BodyIter source item: need a <class 'bytes'>; got a <class 'bytearray'>",
        0,
    ),
    ([b'hello', b'world!'], 10, ValueError, 'exceeds content_length: 11 > 10', 5),
    ([b'hello'], 6, ValueError, 'deceeds content_length: 5 < 6', 5),
    ([], 1, ValueError, 'deceeds content_length: 0 < 1', 0),
    ([b'x'], 0, ValueError, 'exceeds content_length: 1 > 0', 0),
]


@pytest.mark.parametrize('source, length, exc, message, written', BODY_ITER_BAD)
def test_body_iter_bad(source, length, exc, message, written):
    body = BodyIter(source, length)
    out = io.BytesIO()
    raises(exc, message, body.write_to, out)
    assert len(out.getvalue()) == written  # checked before writing the offending item
    assert body.state == BODY_ERROR
    raises(ValueError, 'BodyIter.state == BODY_ERROR, cannot be used', body.write_to, out)


def test_body_iter_generator():
    body = BodyIter((x for x in [b'a', b'', b'b']), 2)
    out = io.BytesIO()
    assert body.write_to(out) == 2
    assert out.getvalue() == b'ab'


def test_body_iter_item_too_large():
    body = BodyIter([b'x' * (MAX_IO_SIZE + 1)], MAX_IO_SIZE + 1)
    raises(ValueError, 'need len(data) <= 16777216; got 16777217', body.write_to, io.BytesIO())


def test_body_iter_source_raises():
    def gen():
        yield b'a'
        raise Boom('source')

    body = BodyIter(gen(), 2)
    with pytest.raises(Boom):
        body.write_to(io.BytesIO())
    assert body.state == BODY_ERROR


# -------------------------------------------------------------------------
# ChunkedBodyIter.


def test_chunked_body_iter_attributes():
    source = [(None, b'')]
    body = ChunkedBodyIter(source)
    assert body.source is source
    assert body.state == BODY_READY
    assert body.chunked is True
    assert repr(body) == "ChunkedBodyIter([(None, b'')])"


CHUNKED_BODY_ITER_GOOD = [
    ([(None, b'')], b'0\r\n\r\n'),
    ([(('k', 'v'), b'')], b'0;k=v\r\n\r\n'),
    (
        [(None, b'hello'), (('a', 'b c'), b'!'), (None, b'')],
        b'5\r\nhello\r\n1;a="b c"\r\n!\r\n0\r\n\r\n',
    ),
    ([(None, b'x' * 5000), (None, b'')], b'1388\r\n' + b'x' * 5000 + b'\r\n0\r\n\r\n'),
]


@pytest.mark.parametrize('n', MOVE_SIZES)
@pytest.mark.parametrize('source, wire', CHUNKED_BODY_ITER_GOOD)
def test_chunked_body_iter_write_to(source, wire, n):
    body = ChunkedBodyIter(source)
    out = FakeFile(n=n)
    assert body.write_to(out) == len(wire)
    assert out.written == wire
    assert body.state == BODY_CONSUMED
    assert list(ChunkedBody(io.BytesIO(wire))) == source
    msg = 'ChunkedBodyIter.state == BODY_CONSUMED, already consumed'
    raises(ValueError, msg, body.write_to, out)


CHUNKED_BODY_ITER_BAD = [
    ([], ValueError, 'final chunk data was not empty'),
    ([(None, b'x')], ValueError, 'final chunk data was not empty'),
    ([(None, b''), (None, b'')], ValueError, 'additional chunk after empty chunk data'),
    ([(None, b''), (None, b'x')], ValueError, 'additional chunk after empty chunk data'),
    ([[None, b'']], TypeError, "chunk: need a <class 'tuple'>; got a <class 'list'>: [None, b'']"),
    ([(None, b'', 1)], ValueError, 'chunk: need a 2-tuple; got a 3-tuple'),
    ([(None,)], ValueError, 'chunk: need a 2-tuple; got a 1-tuple'),
    ([(None, 'x')], TypeError, "chunk data: need a <class 'bytes'>; got a <class 'str'>"),
    (
        [(None, bytearray())],
        TypeError,
        "chunk data: need a <class 'bytes'>; got a <class 'bytearray'>",
    ),
    ([(('k',), b'')], ValueError, 'extension: need a 2-tuple; got a 1-tuple'),
    ([(('k', 'a\nb'), b'')], ValueError, "bad chunk extension value: 'a\\nb'"),
    ([('k=v', b'')], TypeError, "extension: need a <class 'tuple'>; got a <class 'str'>: 'k=v'"),
]


@pytest.mark.parametrize('source, exc, message', CHUNKED_BODY_ITER_BAD)
def test_chunked_body_iter_bad(source, exc, message):
    body = ChunkedBodyIter(source)
    raises(exc, message, body.write_to, io.BytesIO())
    assert body.state == BODY_ERROR
    raises(
        ValueError,
        'ChunkedBodyIter.state == BODY_ERROR, cannot be used',
        body.write_to,
        io.BytesIO(),
    )


def test_chunked_body_iter_too_large():
    body = ChunkedBodyIter([(None, b'x' * (MAX_IO_SIZE + 1)), (None, b'')])
    raises(
        ValueError, 'need len(chunk data) <= 16777216; got 16777217', body.write_to, io.BytesIO()
    )


def test_chunked_body_iter_random():
    rng = random.Random(4)
    for _ in range(20):
        chunks = random_chunks(rng)
        out = io.BytesIO()
        ChunkedBodyIter(chunks).write_to(out)
        assert out.getvalue() == encode_chunks(chunks)
        assert list(ChunkedBody(io.BytesIO(out.getvalue()))) == chunks


# -------------------------------------------------------------------------
# The state machine: every (state, operation) pair of the input bodies.


def make_body(kind, state):
    if kind == 'Body':
        body = Body(io.BytesIO(b'hello'), 5)
    else:
        body = ChunkedBody(io.BytesIO(b'5\r\nhello\r\n0\r\n\r\n'))
    if state == BODY_STARTED:
        body.read(1)
    elif state == BODY_CONSUMED:
        body.read()
    elif state == BODY_ERROR:
        body._state = BODY_ERROR  # the error paths are tested above
    assert body.state == state
    return body


OPERATIONS = {
    'read()': lambda b: b.read(),
    'read(2)': lambda b: b.read(2),
    'read(0)': lambda b: b.read(0),
    'readinto': lambda b: b.readinto(bytearray(2)),
    'readchunk': lambda b: b.readchunk(),
    'iter': list,
    'write_to': lambda b: b.write_to(io.BytesIO()),
}

# state -> operation -> result, or the state error
STATE_MATRIX = {
    BODY_READY: {
        'read()': 'ok',
        'read(2)': 'ok',
        'read(0)': b'',
        'readinto': 'ok',
        'readchunk': 'ok',
        'iter': 'ok',
        'write_to': 'ok',
    },
    BODY_STARTED: {
        'read()': 'ok',
        'read(2)': 'ok',
        'read(0)': b'',
        'readinto': 'ok',
        'readchunk': 'ok',
        'iter': BODY_STARTED,
        'write_to': BODY_STARTED,
    },
    BODY_CONSUMED: {
        'read()': b'',
        'read(2)': b'',
        'read(0)': b'',
        'readinto': 0,
        'readchunk': BODY_CONSUMED,
        'iter': BODY_CONSUMED,
        'write_to': BODY_CONSUMED,
    },
    BODY_ERROR: {
        'read()': BODY_ERROR,
        'read(2)': BODY_ERROR,
        'read(0)': BODY_ERROR,
        'readinto': BODY_ERROR,
        'readchunk': BODY_ERROR,
        'iter': BODY_ERROR,
        'write_to': BODY_ERROR,
    },
}


@pytest.mark.parametrize('kind', ['Body', 'ChunkedBody'])
@pytest.mark.parametrize('state', [BODY_READY, BODY_STARTED, BODY_CONSUMED, BODY_ERROR])
@pytest.mark.parametrize('op', sorted(OPERATIONS))
def test_state_matrix(kind, state, op):
    if (kind, op) == ('Body', 'readchunk'):
        assert not hasattr(make_body(kind, state), op)
        return
    body = make_body(kind, state)
    expected = STATE_MATRIX[state][op]
    if expected in STATE_NAMES:
        raises(ValueError, state_message(body, expected), OPERATIONS[op], body)
        assert body.state == state
    elif expected == 'ok':
        OPERATIONS[op](body)
        assert body.state in (BODY_STARTED, BODY_CONSUMED)
    else:
        assert OPERATIONS[op](body) == expected
        assert body.state == state


@pytest.mark.parametrize('state', [BODY_READY, BODY_STARTED, BODY_CONSUMED, BODY_ERROR])
def test_out_body_states(state):
    for body in (BodyIter([b'x'], 1), ChunkedBodyIter([(None, b'')])):
        body._state = state
        if state == BODY_READY:
            body.write_to(io.BytesIO())
            assert body.state == BODY_CONSUMED
        else:
            raises(ValueError, state_message(body, state), body.write_to, io.BytesIO())
            assert body.state == state


# -------------------------------------------------------------------------
# API, Response, Request, Session.


def test_api():
    assert base.API is base.APIType
    assert base.API._fields == (
        'Body',
        'ChunkedBody',
        'BodyIter',
        'ChunkedBodyIter',
        'Range',
        'ContentRange',
    )
    assert base.api == (Body, ChunkedBody, BodyIter, ChunkedBodyIter, Range, ContentRange)
    assert base.api.Body is Body and base.api.ContentRange is ContentRange
    assert base.bodies is base.api
    assert Response is base.ResponseType
    r = Response(200, 'OK', {}, None)
    assert (r.status, r.reason, r.headers, r.body) == (200, 'OK', {}, None)
    assert repr(r) == "Response(status=200, reason='OK', headers={}, body=None)"


def test_request():
    body = Body(io.BytesIO(b'x'), 1)
    r = Request('PUT', '/a/b?c', {'x': 'y'}, body, [], ['a', 'b'], 'c')
    assert (r.method, r.uri, r.headers, r.body, r.mount, r.path, r.query) == (
        'PUT',
        '/a/b?c',
        {'x': 'y'},
        body,
        [],
        ['a', 'b'],
        'c',
    )
    assert r.version == 'HTTP/1.1'
    assert repr(r) == (
        "Request(method='PUT', uri='/a/b?c', headers={'x': 'y'}, "
        f"body={body!r}, mount=[], path=['a', 'b'], query='c')"
    )
    assert r.build_proxy_uri() == '/a/b?c'
    assert r.shift_path() == 'a'
    assert (r.mount, r.path) == (['a'], ['b'])
    assert r.build_proxy_uri() == '/b?c'
    assert r.shift_path() == 'b'
    assert r.build_proxy_uri() == '/?c'
    assert r.shift_path() is None
    assert (r.mount, r.path) == (['a', 'b'], [])
    for name in ('method', 'uri', 'headers', 'body', 'mount', 'path', 'query', 'version'):
        with pytest.raises(AttributeError):
            setattr(r, name, None)


def test_request_version():
    # decision 5: keyword-only, read-only, not in the repr
    r = Request('GET', '/', {}, None, [], [], None, version='HTTP/1.0')
    assert r.version == 'HTTP/1.0'
    assert 'version' not in repr(r) and 'HTTP/1.0' not in repr(r)
    with pytest.raises(TypeError):
        Request('GET', '/', {}, None, [], [], None, 'HTTP/1.0')
    r = Request('GET', '/', {}, None, [], [], None)
    assert r.build_proxy_uri() == '/'


REQUEST_BAD = [
    (
        (1, '/', {}, None, [], [], None),
        TypeError,
        "method: need a <class 'str'>; got a <class 'int'>: 1",
    ),
    (('get', '/', {}, None, [], [], None), ValueError, "bad method: 'get'"),
    (('TRACE', '/', {}, None, [], [], None), ValueError, "bad method: 'TRACE'"),
    (
        ('GET', '/', {}, None, (), [], None),
        TypeError,
        "mount: need a <class 'list'>; got a <class 'tuple'>",
    ),
    (
        ('GET', '/', {}, None, [], ('a',), None),
        TypeError,
        "path: need a <class 'list'>; got a <class 'tuple'>",
    ),
]


@pytest.mark.parametrize('args, exc, message', REQUEST_BAD)
def test_request_bad(args, exc, message):
    raises(exc, message, Request, *args)


@pytest.mark.parametrize('method', base.METHODS)
def test_request_methods(method):
    assert Request(method, '/', {}, None, [], [], None).method == method


def test_session():
    s = Session(('127.0.0.1', 5000))
    assert s.address == ('127.0.0.1', 5000)
    assert (s.credentials, s.max_requests, s.requests, s.closed, s.message) == (
        None,
        500,
        0,
        False,
        None,
    )
    assert s.store is s.store and s.store == {}
    assert repr(s) == "Session(('127.0.0.1', 5000))"
    assert str(s) == "('127.0.0.1', 5000)"
    s = Session('\0sock', (1, 2, 3), 2)
    assert repr(s) == "Session('\\x00sock', (1, 2, 3))"
    assert str(s) == "'\\x00sock' (1, 2, 3)"
    s._count()
    assert (s.requests, s.closed) == (1, False)
    s._count()
    assert (s.requests, s.closed, s.message) == (2, True, 'max_requests')
    s._close('400 Bad Request')
    assert s.message == 'max_requests'  # the first reason wins
    for name in (
        'address',
        'credentials',
        'max_requests',
        'requests',
        'store',
        'closed',
        'message',
    ):
        with pytest.raises(AttributeError):
            setattr(s, name, None)
    assert Session('x', max_requests=0).max_requests == 0
    assert Session('x', max_requests=75000).max_requests == 75000


def test_session_and_server_share_max_requests():
    # One maximum for both; the server's default is 1000, a Session built by
    # hand keeps Degu's 500 (the server always passes its own).
    from degu import _body, server

    assert _body.DEFAULT_MAX_REQUESTS == 1000 and _body.MAX_SESSION_REQUESTS == 75000
    assert Session('x').max_requests == _body.SESSION_MAX_REQUESTS == 500
    (default, types, low, high) = server._OPTIONS['max_requests']
    assert (default, types, low, high) == (1000, (int,), 1, 75000)
    assert default is _body.DEFAULT_MAX_REQUESTS and high is _body.MAX_SESSION_REQUESTS


SESSION_BAD = [
    (('a', [1, 2, 3]), TypeError, "credentials: need a <class 'tuple'>; got a <class 'list'>"),
    (('a', (1, 2)), ValueError, 'credentials: need a 3-tuple; got a 2-tuple'),
    (('a', None, '5'), TypeError, "max_requests: need a <class 'int'>; got a <class 'str'>: '5'"),
    (
        ('a', None, True),
        TypeError,
        "max_requests: need a <class 'int'>; got a <class 'bool'>: True",
    ),
    (('a', None, -1), ValueError, 'need 0 <= max_requests <= 75000; got -1'),
    (('a', None, 75001), ValueError, 'need 0 <= max_requests <= 75000; got 75001'),
]


@pytest.mark.parametrize('args, exc, message', SESSION_BAD)
def test_session_bad(args, exc, message):
    raises(exc, message, Session, *args)


# -------------------------------------------------------------------------
# Draining an unread request body (the server calls _drain()).


def test_body_drain():
    body = Body(io.BytesIO(b'x' * 100), 100)
    assert body._drain(99) is False
    assert body.state == BODY_READY
    assert body._drain(100) is True
    assert body.state == BODY_CONSUMED
    assert body._drain(0) is True
    body = Body(io.BytesIO(b'x' * 100), 100)
    body.read(60)
    assert body._drain(40) is True
    assert body.rfile.read() == b''
    body = Body(io.BytesIO(b'x' * 10), 100)
    with pytest.raises(ValueError):
        body._drain(1000)
    assert body.state == BODY_ERROR
    assert body._drain(1000) is False
    big = Body(io.BytesIO(b'x' * (IO_SIZE + 5)), IO_SIZE + 5)
    assert big._drain(IO_SIZE + 5) is True


def test_chunked_body_drain():
    src = b'5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nNEXT'
    body = ChunkedBody(io.BytesIO(src))
    assert body._drain(11) is True
    assert body.state == BODY_CONSUMED
    assert body.rfile.read() == b'NEXT'
    assert body._drain(0) is True
    body = ChunkedBody(io.BytesIO(src))
    assert body._drain(10) is False  # 11 bytes dropped > 10: the connection closes
    assert body.state == BODY_STARTED
    body = ChunkedBody(io.BytesIO(src))
    assert body.read(2) == b'he'
    assert body._drain(9) is True  # 3 pending + 6
    body = ChunkedBody(io.BytesIO(src))
    assert body.read(2) == b'he'
    assert body._drain(8) is False
    body = ChunkedBody(io.BytesIO(b'5\r\nhel'))
    with pytest.raises(ValueError):
        body._drain(100)
    assert body.state == BODY_ERROR
    assert body._drain(100) is False


# -------------------------------------------------------------------------
# ChunkedBody.readinto(): chunk data straight into the caller's buffer.

READINTO_WIRE = b'5;a=1\r\nhello\r\n3\r\n, w\r\n4;b\r\norld\r\n0\r\nx-t: 1\r\n\r\n'


@pytest.mark.parametrize(
    'size, counts',
    [
        (1, [1] * 12),
        (2, [2, 2, 1, 2, 1, 2, 2]),
        (4, [4, 1, 3, 4]),
        (100, [5, 3, 4]),  # one chunk per call: never waits for the next
    ],
)
def test_chunked_readinto(size, counts):
    for n in MOVE_SIZES:
        body = ChunkedBody(FakeFile(READINTO_WIRE, n))
        buf = bytearray(size)
        got = []
        data = b''
        while True:
            count = body.readinto(buf)
            if not count:
                break
            got.append(count)
            data += buf[:count]
        assert (got, data) == (counts, b'hello, world')
        assert body.state == BODY_CONSUMED
        assert body.readinto(buf) == 0
        assert body.read() == b''


def test_chunked_readinto_then_the_other_reads():
    # readinto() stops inside a chunk: readchunk() returns the rest of it,
    # with its extension; a sized read() and readinto() take over each other.
    body = ChunkedBody(io.BytesIO(READINTO_WIRE))
    buf = bytearray(2)
    assert body.readinto(buf) == 2 and buf == b'he'
    assert body.readchunk() == (('a', '1'), b'llo')
    assert body.read(1) == b','
    assert body.readinto(memoryview(buf)) == 2 and buf == b' w'
    assert body.readinto(buf) == 2 and buf == b'or'
    assert list(body._pieces()) == [(('b', ''), b'ld'), (None, b'')]
    assert body.state == BODY_CONSUMED


def test_chunked_readinto_drain():
    body = ChunkedBody(io.BytesIO(READINTO_WIRE))
    assert body.readinto(bytearray(3)) == 3
    assert body._drain(9) is True  # the rest of the first chunk (2), and 3 + 4 more
    assert body.state == BODY_CONSUMED
    body = ChunkedBody(io.BytesIO(READINTO_WIRE))
    assert body.readinto(bytearray(3)) == 3
    assert body._drain(8) is False
    body = ChunkedBody(io.BytesIO(READINTO_WIRE))
    assert body.readinto(bytearray(1)) == 1
    assert body._drain(3) is False  # 4 bytes left in the chunk: more than 3


@pytest.mark.parametrize(
    'wire, exc, message',
    [
        (b'5\r\nhelloXX0\r\n\r\n', ParseError, "bad chunk data termination: b'XX'"),
        (b'zz\r\n', ParseError, "bad chunk_size: b'zz'"),
        (b'5\r\nhel', ParseError, 'expected to read 5 bytes, but received 3'),
    ],
)
def test_chunked_readinto_errors(wire, exc, message):
    # The same errors as readchunk(), and the body fails.
    body = ChunkedBody(io.BytesIO(wire))
    raises(exc, message, body.readinto, bytearray(10))
    assert body.state == BODY_ERROR
    body = ChunkedBody(io.BytesIO(wire))
    raises(exc, message, body.readchunk)


def test_chunked_readinto_over_max_body():
    wire = b'PUT / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n6\r\nhello!\r\n0\r\n\r\n'
    request = read_request(MockTransport([wire]), max_body=5)
    e = raises(ParseError, 'chunked body over max_body', request.body.readinto, bytearray(3))
    assert e.status == 413


def test_chunked_pieces_reuse_one_buffer():
    # Forwarding (write_to, the server, ProxyApp) reads each chunk into one
    # buffer grown to the largest chunk, and writes it out before the next.
    chunks = [(None, b'a' * 10), (('k', 'v'), b'b' * 5000), (None, b'c' * 3), (None, b'')]
    out = io.BytesIO()
    ChunkedBodyIter(chunks).write_to(out)
    body = ChunkedBody(io.BytesIO(out.getvalue()))
    items = body._items()
    views = []
    for (extension, data) in items:
        views.append((extension, bytes(data), type(data)))
    assert [(e, d) for (e, d, _) in views] == chunks
    assert [t for (_, _, t) in views[:3]] == [memoryview] * 3
    again = io.BytesIO()
    ChunkedBody(io.BytesIO(out.getvalue())).write_to(again)
    assert again.getvalue() == out.getvalue()
