"""Table-driven tests of the pure parsers and renderers of degu.base.

Every table line is raw input and either the value or the exact error.  The
byte loops try every byte value 0..255 in every field, against reference sets
written here from the RFC grammar (not taken from the engine).
"""

import importlib

import pytest
from helpers import raises
from hypothesis import given, settings
from hypothesis import strategies as st

from degu import base
from degu._parse import chunk_end
from degu.base import (
    ConnectionClosed,
    ConnectionTimedOut,
    ContentRange,
    EmptyPreambleError,
    ParseError,
    Range,
    UnsupportedResponse,
    format_chunk,
    parse_authority,
    parse_chunk,
    parse_chunk_extension,
    parse_chunk_size,
    parse_content_length,
    parse_content_range,
    parse_header_name,
    parse_headers,
    parse_host,
    parse_method,
    parse_range,
    parse_request_line,
    parse_response_line,
    parse_trailer_line,
    parse_transfer_encoding,
    parse_uri,
    parse_version,
    render_chunk_extension,
    render_headers,
    render_request,
    render_response,
)

# Every test here runs against both cores (tests/conftest.py).
pytestmark = pytest.mark.usefixtures('core')

# -------------------------------------------------------------------------
# Reference byte classes, from RFC 9110 5.6.2, RFC 3986 3.3 and RFC 9112.

ALPHA = frozenset(b'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz')
DIGIT = frozenset(b'0123456789')
HEXDIG = DIGIT | frozenset(b'abcdefABCDEF')
TCHAR = ALPHA | DIGIT | frozenset(b"!#$%&'*+-.^_`|~")
LOWER_TCHAR = TCHAR - frozenset(b'ABCDEFGHIJKLMNOPQRSTUVWXYZ')
UNRESERVED = ALPHA | DIGIT | frozenset(b'-._~')
SUB_DELIMS = frozenset(b"!$&'()*+,;=")
PCHAR = UNRESERVED | SUB_DELIMS | frozenset(b':@')  # and pct-encoded
VCHAR = frozenset(range(0x21, 0x7F))
OBS_TEXT = frozenset(range(0x80, 0x100))
FIELD_CONTENT = VCHAR | OBS_TEXT | frozenset(b' \t')  # field values and reason phrases
QDTEXT = (
    frozenset(b'\t !') | frozenset(range(0x23, 0x5C)) | frozenset(range(0x5D, 0x7F)) | OBS_TEXT
)
ALL_BYTES = range(256)


# -------------------------------------------------------------------------
# Limits: pinned, so a change is a deliberate one (STYLE 6).

LIMITS = [
    ('BUF_LEN', 32768),
    ('MAX_PREAMBLE_LEN', 32768),
    ('MAX_HEADER_COUNT', 100),
    ('MAX_REQUEST_LINE_LEN', 8192),
    ('MAX_LINE_LEN', 4096),
    ('MAX_CL_LEN', 16),
    ('MAX_LENGTH', 9999999999999999),
    ('MAX_CHUNK_SIZE_LEN', 16),
    ('IO_SIZE', 1048576),
    ('MAX_IO_SIZE', 16777216),
    ('MAX_DRAIN_LEN', 65536),
    ('BODY_READY', 0),
    ('BODY_STARTED', 1),
    ('BODY_CONSUMED', 2),
    ('BODY_ERROR', 3),
    ('METHODS', ('GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS')),
]


@pytest.mark.parametrize('name, value', LIMITS)
def test_limits(name, value):
    assert getattr(base, name) == value
    assert name in base.__all__


def test_limit_relations():
    assert len(str(base.MAX_LENGTH)) == base.MAX_CL_LEN
    assert len(f'{base.MAX_IO_SIZE:x}') < base.MAX_CHUNK_SIZE_LEN == base.MAX_CL_LEN
    assert base.MAX_REQUEST_LINE_LEN < base.MAX_PREAMBLE_LEN <= base.BUF_LEN


def test_all_names_exist():
    for name in base.__all__:
        assert hasattr(base, name), name
    assert len(set(base.__all__)) == len(base.__all__)


def test_type_error_formats_defined_once():
    from degu import _parse

    # The two type-error messages are written once, in degu._parse, and
    # imported everywhere else (a second copy could drift).
    need = "x: need a <class 'int'>; got a <class 'str'>"
    assert _parse._TYPE_ERROR.format('x', int, str, 'y') == need + ": 'y'"
    assert _parse._TYPE_ERROR2.format('x', int, str) == need
    names = ('_body', '_io', 'applib', 'client', 'misc', 'rgi', 'server', 'sslhelpers', 'util')
    for name in names:
        module = importlib.import_module(f'degu.{name}')
        for fmt in ('_TYPE_ERROR', '_TYPE_ERROR2'):
            assert getattr(module, fmt, getattr(_parse, fmt)) is getattr(_parse, fmt), (name, fmt)


def test_check_method():
    from degu._parse import _check_method

    for method in base.METHODS:
        assert _check_method(method) is method
        assert _check_method(method, 'request.method') is method

    class Str(str):
        pass

    for bad in (b'GET', None, 1, Str('GET')):
        raises(TypeError, f"method: need a <class 'str'>; got a {type(bad)!r}: {bad!r}",
               _check_method, bad)
        raises(TypeError, f"request.method: need a <class 'str'>; got a {type(bad)!r}: {bad!r}",
               _check_method, bad, 'request.method')
    for bad in ('get', 'Get', 'TRACE', 'CONNECT', 'GET ', '', 'POST\r\n'):
        raises(ValueError, f'bad method: {bad!r}', _check_method, bad)
        raises(ValueError, f'request.method: bad method: {bad!r}', _check_method, bad,
               'request.method')


def test_set_default():
    from degu._parse import _set_default

    headers = {}
    assert _set_default(headers, 'expect', '100-continue') is None
    assert headers == {'expect': '100-continue'}
    # A sent value that agrees stays as the caller wrote it: equal, or equal
    # as str ignoring case (these values are case-insensitive in RFC 9110).
    for (name, sent, value) in (
        ('expect', '100-continue', '100-continue'),
        ('expect', '100-Continue', '100-continue'),
        ('range', 'bytes=2-4', Range(2, 5)),
        ('range', 'BYTES=2-4', Range(2, 5)),
        ('range', Range(2, 5), Range(2, 5)),
        ('content-length', '5', 5),
        ('content-length', 5, 5),
        ('transfer-encoding', 'Chunked', 'chunked'),
    ):
        headers = {name: sent, 'x': 'y'}
        _set_default(headers, name, value)
        assert headers == {name: sent, 'x': 'y'}
    headers = {'range': None}  # None is absent
    _set_default(headers, 'range', Range(0, 1))
    assert headers == {'range': Range(0, 1)}
    for (name, sent, value, message) in (
        ('expect', 'something', '100-continue', "'100-continue' != 'something'"),
        ('range', 'bytes=0-0', Range(2, 5), "Range(2, 5) != 'bytes=0-0'"),
        ('content-length', '4', 5, "5 != '4'"),
        ('content-length', 50, 5, '5 != 50'),
        ('transfer-encoding', 'gzip', 'chunked', "'chunked' != 'gzip'"),
    ):
        headers = {name: sent}
        raises(ValueError, f'{name!r} mismatch: {message}', _set_default, headers, name, value)
        assert headers == {name: sent}


# -------------------------------------------------------------------------
# Errors.


def test_error_hierarchy():
    assert issubclass(ConnectionClosed, ConnectionError)
    assert not issubclass(ConnectionClosed, ValueError)  # doc/decisions.rst, 'Exceptions'
    assert issubclass(EmptyPreambleError, ConnectionClosed)
    assert issubclass(ConnectionTimedOut, ConnectionClosed)
    assert issubclass(ConnectionTimedOut, TimeoutError)
    assert issubclass(UnsupportedResponse, ValueError)
    assert issubclass(ParseError, ValueError)
    assert not issubclass(ParseError, UnsupportedResponse)


def test_connection_closed():
    e = ConnectionClosed()
    assert str(e) == '' and e.unanswered == ()
    e = ConnectionClosed('gone', [('GET', '/a'), ('HEAD', '/b')])
    assert str(e) == 'gone'
    assert e.unanswered == (('GET', '/a'), ('HEAD', '/b'))
    assert EmptyPreambleError('x').unanswered == ()


# RFC 9110 section 15 and RFC 6585 section 5, written here, not taken from the engine.
REASONS = {
    400: 'Bad Request',
    413: 'Content Too Large',
    414: 'URI Too Long',
    431: 'Request Header Fields Too Large',
    501: 'Not Implemented',
    505: 'HTTP Version Not Supported',
}


def refused(status, message, func, *args, **kw):
    """``func(*args, **kw)`` raises exactly ``ParseError(message)``, answered with *status*."""
    e = raises(ParseError, message, func, *args, **kw)
    assert (e.status, e.reason) == (status, REASONS[status])
    return e


def test_parse_error():
    e = ParseError('too long', 414, 'URI Too Long')
    assert (str(e), e.status, e.reason) == ('too long', 414, 'URI Too Long')
    e = ParseError('bad')  # a 400 unless said otherwise
    assert (str(e), e.status, e.reason) == ('bad', 400, 'Bad Request')
    e = ParseError('gone', status=413, reason='Content Too Large')
    assert (str(e), e.status, e.reason) == ('gone', 413, 'Content Too Large')


# -------------------------------------------------------------------------
# Range and ContentRange (RFC 9110 section 14).

M = base.MAX_LENGTH

RANGE_BAD = [
    ((-1, 5), ValueError, 'need 0 <= start <= 9999999999999999; got -1'),
    ((0, None), ValueError, 'need -9999999999999999 <= start <= -1 for a suffix; got 0'),
    ((5, None), ValueError, 'need -9999999999999999 <= start <= -1 for a suffix; got 5'),
    (
        (-M - 1, None),
        ValueError,
        'need -9999999999999999 <= start <= -1 for a suffix; got -10000000000000000',
    ),
    ((-1.0, None), TypeError, "start: need a <class 'int'>; got a <class 'float'>: -1.0"),
    ((0, M + 1), ValueError, 'need 0 <= stop <= 9999999999999999; got 10000000000000000'),
    ((5, 5), ValueError, 'need start < stop; got 5 >= 5'),
    ((6, 5), ValueError, 'need start < stop; got 6 >= 5'),
    (('1', 2), TypeError, "start: need a <class 'int'>; got a <class 'str'>: '1'"),
    ((1, 2.0), TypeError, "stop: need a <class 'int'>; got a <class 'float'>: 2.0"),
    ((True, 2), TypeError, "start: need a <class 'int'>; got a <class 'bool'>: True"),
]


@pytest.mark.parametrize('args, exc, message', RANGE_BAD)
def test_range_bad(args, exc, message):
    raises(exc, message, Range, *args)


CONTENT_RANGE_BAD = [
    ((-1, 5, 7), ValueError, 'need 0 <= start <= 9999999999999999; got -1'),
    ((0, 5, M + 1), ValueError, 'need 0 <= total <= 9999999999999999; got 10000000000000000'),
    ((5, 5, 7), ValueError, 'need start < stop <= total; got (5, 5, 7)'),
    ((0, 8, 7), ValueError, 'need start < stop <= total; got (0, 8, 7)'),
    ((0, 1, '2'), TypeError, "total: need a <class 'int'>; got a <class 'str'>: '2'"),
    ((1, 1, None), ValueError, 'need start < stop; got (1, 1)'),
    ((0, M + 1, None), ValueError, 'need 0 <= stop <= 9999999999999999; got 10000000000000000'),
]


@pytest.mark.parametrize('args, exc, message', CONTENT_RANGE_BAD)
def test_content_range_bad(args, exc, message):
    raises(exc, message, ContentRange, *args)


def test_range():
    r = Range(2, 5)
    assert (r.start, r.stop) == (2, 5)
    assert repr(r) == 'Range(2, 5)'
    assert str(r) == 'bytes=2-4'
    assert r == Range(2, 5) and r != Range(2, 6) and r != Range(1, 5)
    assert r == 'bytes=2-4' and r != 'bytes=2-5'
    assert hash(r) == hash(Range(2, 5))
    assert (r == 7) is False and (r != 7) is True  # NotImplemented: identity fallback
    assert r != ContentRange(2, 5, 7)
    with pytest.raises(AttributeError):
        r.start = 3
    assert Range(0, M) == Range(0, M)
    assert str(Range(0, M)) == 'bytes=0-9999999999999998'


def test_range_suffix():
    # RFC 9110 section 14.1.2: suffix-range = "-" suffix-length, data[-length:]
    r = Range(-500, None)
    assert (r.start, r.stop) == (-500, None)
    assert repr(r) == 'Range(-500, None)'
    assert str(r) == 'bytes=-500'
    assert r == Range(-500, None) and r != Range(-499, None) and r == 'bytes=-500'
    assert hash(r) == hash(Range(-500, None))
    assert r != Range(0, 500)


RANGE_SUFFIX_TOTAL = [
    # length, total -> content_length, content_range
    (500, 10000, 500, ContentRange(9500, 10000, 10000)),
    (500, 500, 500, ContentRange(0, 500, 500)),
    (500, 499, 499, ContentRange(0, 499, 499)),  # shorter: the whole representation
    (1, 1, 1, ContentRange(0, 1, 1)),
    (M, M, M, ContentRange(0, M, M)),
]


@pytest.mark.parametrize('length, total, content_length, content_range', RANGE_SUFFIX_TOTAL)
def test_range_suffix_total(length, total, content_length, content_range):
    r = Range(-length, None)
    assert r.content_length(total) == content_length
    assert r.content_range(total) == content_range
    if total < 1000:  # Python slice semantics: data[-length:]
        data = bytes(range(256)) * 4
        assert data[:total][-length:] == data[content_range.start : content_range.stop]


@pytest.mark.parametrize('method', ['content_length', 'content_range'])
def test_range_suffix_unsatisfiable(method):
    # RFC 9110 section 14.1.1: nothing to select from an empty representation.
    func = getattr(Range(-5, None), method)
    raises(ValueError, 'Range(-5, None) out of bounds (total=0)', func, 0)


def test_content_range_unknown_total():
    cr = ContentRange(0, 5, None)
    assert (cr.start, cr.stop, cr.total) == (0, 5, None)
    assert repr(cr) == 'ContentRange(0, 5, None)'
    assert str(cr) == 'bytes 0-4/*'
    assert cr == 'bytes 0-4/*' and cr == ContentRange(0, 5, None) and cr != ContentRange(0, 5, 5)
    assert hash(cr) == hash(ContentRange(0, 5, None))


RANGE_TOTAL = [
    # (start, stop), total -> content_length, content_range
    ((2, 5), 7, 3, ContentRange(2, 5, 7)),
    ((2, 5), 5, 3, ContentRange(2, 5, 5)),
    ((2, 5), 4, 2, ContentRange(2, 4, 4)),
    ((2, 5), 3, 1, ContentRange(2, 3, 3)),
    ((0, M), M, M, ContentRange(0, M, M)),
]


@pytest.mark.parametrize('args, total, length, content_range', RANGE_TOTAL)
def test_range_total(args, total, length, content_range):
    r = Range(*args)
    assert r.content_length(total) == length
    assert r.content_range(total) == content_range


@pytest.mark.parametrize('method', ['content_length', 'content_range'])
def test_range_total_bad(method):
    r = Range(5, 15)
    raises(ValueError, 'Range(5, 15) out of bounds (total=5)', getattr(r, method), 5)
    raises(ValueError, 'Range(5, 15) out of bounds (total=0)', getattr(r, method), 0)
    raises(ValueError, 'need 0 <= total <= 9999999999999999; got -1', getattr(r, method), -1)
    raises(
        TypeError, "total: need a <class 'int'>; got a <class 'str'>: '7'", getattr(r, method), '7'
    )


def test_content_range():
    cr = ContentRange(2, 5, 7)
    assert (cr.start, cr.stop, cr.total) == (2, 5, 7)
    assert repr(cr) == 'ContentRange(2, 5, 7)'
    assert str(cr) == 'bytes 2-4/7'
    assert cr == ContentRange(2, 5, 7)
    assert cr != ContentRange(2, 5, 8) and cr != ContentRange(1, 5, 7)
    assert cr == 'bytes 2-4/7' and cr != 'bytes 2-4/8'
    assert hash(cr) == hash(ContentRange(2, 5, 7))
    assert (cr == 7) is False
    with pytest.raises(AttributeError):
        cr.total = 3


# -------------------------------------------------------------------------
# Methods and versions.


@pytest.mark.parametrize('method', base.METHODS)
def test_parse_method_good(method):
    assert parse_method(method.encode()) is method


PARSE_METHOD_BAD = [
    (b'get', 501, "unsupported method: b'get'"),
    (b'Get', 501, "unsupported method: b'Get'"),
    (b'CONNECT', 501, "unsupported method: b'CONNECT'"),
    (b'TRACE', 501, "unsupported method: b'TRACE'"),
    (b'GETS', 501, "unsupported method: b'GETS'"),
    (b'X' * 40, 501, f'unsupported method: {b"X" * 32!r}...'),
    (b'', 400, "bad method: b''"),
    (b'G ET', 400, "bad method: b'G ET'"),
    (b'GET\x00', 400, "bad method: b'GET\\x00'"),
    (b'G\xe9T', 400, "bad method: b'G\\xe9T'"),
    (b'(GET)', 400, "bad method: b'(GET)'"),
]


@pytest.mark.parametrize('src, status, message', PARSE_METHOD_BAD)
def test_parse_method_bad(src, status, message):
    refused(status, message, parse_method, src)


def test_parse_method_every_byte():
    for b in ALL_BYTES:
        src = bytes([b])
        if b in TCHAR:
            refused(501, f'unsupported method: {src!r}', parse_method, src)
        else:
            refused(400, f'bad method: {src!r}', parse_method, src)


PARSE_VERSION = [
    (b'HTTP/1.1', 'HTTP/1.1'),
    (b'HTTP/1.0', 'HTTP/1.0'),
    (b'HTTP/1.2', 'HTTP/1.1'),
    (b'HTTP/1.9', 'HTTP/1.1'),
]


@pytest.mark.parametrize('src, version', PARSE_VERSION)
def test_parse_version_good(src, version):
    assert parse_version(src) == version


PARSE_VERSION_BAD = [
    (b'HTTP/2.0', 505, "unsupported HTTP version: b'HTTP/2.0'"),
    (b'HTTP/0.9', 505, "unsupported HTTP version: b'HTTP/0.9'"),
    (b'HTTP/3.1', 505, "unsupported HTTP version: b'HTTP/3.1'"),
    (b'http/1.1', 400, "bad HTTP version: b'http/1.1'"),
    (b'HTTP/1.1 ', 400, "bad HTTP version: b'HTTP/1.1 '"),
    (b'HTTP/1', 400, "bad HTTP version: b'HTTP/1'"),
    (b'HTTP/11.1', 400, "bad HTTP version: b'HTTP/11.1'"),
    (b'HTTP/1.10', 400, "bad HTTP version: b'HTTP/1.10'"),
    (b'', 400, "bad HTTP version: b''"),
]


@pytest.mark.parametrize('src, status, message', PARSE_VERSION_BAD)
def test_parse_version_bad(src, status, message):
    refused(status, message, parse_version, src)


def test_parse_version_every_byte():
    for b in ALL_BYTES:
        src = b'HTTP/1.' + bytes([b])
        if b in DIGIT:
            assert parse_version(src) == ('HTTP/1.0' if b == 0x30 else 'HTTP/1.1')
        else:
            refused(400, f'bad HTTP version: {src!r}', parse_version, src)


# -------------------------------------------------------------------------
# Request targets (RFC 9112 section 3.2).

PARSE_URI = [
    (b'/', ('/', [], None)),
    (b'/?', ('/?', [], '')),
    (b'/?q', ('/?q', [], 'q')),
    (b'/foo', ('/foo', ['foo'], None)),
    (b'/foo/', ('/foo/', ['foo', ''], None)),
    (b'/foo/bar', ('/foo/bar', ['foo', 'bar'], None)),
    (b'/foo/bar?', ('/foo/bar?', ['foo', 'bar'], '')),
    (b'/foo/bar?k=v&x=/y?z', ('/foo/bar?k=v&x=/y?z', ['foo', 'bar'], 'k=v&x=/y?z')),
    (b'/a%20b/%7E', ('/a%20b/%7E', ['a%20b', '%7E'], None)),
    (b'/a?%2f', ('/a?%2f', ['a'], '%2f')),
    (b'/..a/a../.a./...', ('/..a/a../.a./...', ['..a', 'a..', '.a.', '...'], None)),
    (b"/!$&'()*+,;=:@-._~", ("/!$&'()*+,;=:@-._~", ["!$&'()*+,;=:@-._~"], None)),
    (b'/a?//..', ('/a?//..', ['a'], '//..')),
    (b'/a?b?c', ('/a?b?c', ['a'], 'b?c')),
    # what browsers send unencoded in a query
    (b'/a?filter={%22a%22:1}|x', ('/a?filter={%22a%22:1}|x', ['a'], 'filter={%22a%22:1}|x')),
    (b'/a?x=[1]^`\\"<>', ('/a?x=[1]^`\\"<>', ['a'], 'x=[1]^`\\"<>')),
    # absolute-form: the origin part
    (b'http://example.com', ('/', [], None)),
    (b'http://example.com/', ('/', [], None)),
    (b'https://example.com:8443/a/b?c', ('/a/b?c', ['a', 'b'], 'c')),
    (b'HTTP://EXAMPLE.COM:/x', ('/x', ['x'], None)),
    (b'http://example.com?q', ('/?q', [], 'q')),
    (b'http://[::1]:8080/p', ('/p', ['p'], None)),
    (b'http://127.0.0.1/p/', ('/p/', ['p', ''], None)),
]


@pytest.mark.parametrize('src, value', PARSE_URI)
def test_parse_uri_good(src, value):
    assert parse_uri(src) == value


PARSE_URI_BAD = [
    (b'', "bad request-target: b''"),
    (b'foo', "bad request-target: b'foo'"),
    (b'*', "bad request-target: b'*'"),
    (b'/a b', "bad request-target: b'/a b'"),
    (b'/a#f', "bad request-target: b'/a#f'"),
    (b'/a?b#f', "bad request-target: b'/a?b#f'"),
    (b'/a?b c', "bad request-target: b'/a?b c'"),
    (b'/a?b\x7f', "bad request-target: b'/a?b\\x7f'"),
    (b'/a?b\xe9', "bad request-target: b'/a?b\\xe9'"),
    (b'/a|b', "bad request-target: b'/a|b'"),
    (b'/a{b}?c', "bad request-target: b'/a{b}?c'"),
    (b'/a?{%zz}', "bad percent-encoding in request-target: b'/a?{%zz}'"),
    (b'/a\\b', "bad request-target: b'/a\\\\b'"),
    (b'/\xe9', "bad request-target: b'/\\xe9'"),
    (b'/a%', "bad percent-encoding in request-target: b'/a%'"),
    (b'/a%2', "bad percent-encoding in request-target: b'/a%2'"),
    (b'/a%2g', "bad percent-encoding in request-target: b'/a%2g'"),
    (b'/a?%zz', "bad percent-encoding in request-target: b'/a?%zz'"),
    (b'//', "b'//' in path: b'//'"),
    (b'/a//b', "b'//' in path: b'/a//b'"),
    (b'/a/b//', "b'//' in path: b'/a/b//'"),
    (b'/.', "dot segment in path: b'/.'"),
    (b'/..', "dot segment in path: b'/..'"),
    (b'/a/./b', "dot segment in path: b'/a/./b'"),
    (b'/a/../b', "dot segment in path: b'/a/../b'"),
    (b'/a/..?q', "dot segment in path: b'/a/..?q'"),
    (b'ftp://example.com/', "bad request-target: b'ftp://example.com/'"),
    (b'http:/x', "bad request-target: b'http:/x'"),
    (b'http:///x', "bad request-target: b'http:///x'"),
    (b'http://a@b/', "bad request-target: b'http://a@b/'"),
    (b'http://host:8x/', "bad request-target: b'http://host:8x/'"),
    (b'http://host#f', "bad request-target: b'http://host#f'"),
    (b'http://host/a//b', "b'//' in path: b'/a//b'"),
    (b'/' + b'a' * 40 + b' ', f'bad request-target: {b"/" + b"a" * 31!r}...'),
]


@pytest.mark.parametrize('src, message', PARSE_URI_BAD)
def test_parse_uri_bad(src, message):
    refused(400, message, parse_uri, src)


# Deviation: the query takes every visible ASCII byte but '#' (what browsers
# send unencoded: '{', '}', '|', '^', '\\', '`', '[', ']'), the path only pchar.
QUERY_CHARS = bytes(b for b in range(0x21, 0x7F) if b != 0x23)


def test_parse_uri_every_byte():
    for b in ALL_BYTES:
        for template in (b'/a%cb', b'/a?b%cc'):
            src = template.replace(b'%c', bytes([b]))
            in_query = template == b'/a?b%cc' and b in QUERY_CHARS and b != 0x25
            if b in PCHAR or b in b'/?' or in_query:
                uri = src.decode()
                value = parse_uri(src)
                assert value[0] == uri
                if template == b'/a?b%cc':
                    assert value == (uri, ['a'], uri[3:])
                elif b == 0x3F:  # '?'
                    assert value == (uri, ['a'], 'b')
                elif b == 0x2F:  # '/'
                    assert value == (uri, ['a', 'b'], None)
                else:
                    assert value == (uri, [uri[1:]], None)
            elif b == 0x25:  # '%' followed by a non-hex byte
                msg = f'bad percent-encoding in request-target: {src!r}'
                refused(400, msg, parse_uri, src)
            else:
                refused(400, f'bad request-target: {src!r}', parse_uri, src)


def test_parse_uri_percent_every_byte():
    for b in ALL_BYTES:
        src = b'/%a' + bytes([b])
        if b in HEXDIG:
            assert parse_uri(src) == (src.decode(), [src[1:].decode()], None)
        elif b in PCHAR or b in b'/?%':
            msg = f'bad percent-encoding in request-target: {src!r}'
            refused(400, msg, parse_uri, src)
        else:
            refused(400, f'bad request-target: {src!r}', parse_uri, src)


# -------------------------------------------------------------------------
# Request lines.

PARSE_REQUEST_LINE = [
    (b'GET / HTTP/1.1', ('GET', '/', [], None, 'HTTP/1.1')),
    (b'HEAD /a HTTP/1.0', ('HEAD', '/a', ['a'], None, 'HTTP/1.0')),
    (b'POST /a/b?c HTTP/1.1', ('POST', '/a/b?c', ['a', 'b'], 'c', 'HTTP/1.1')),
    (b'PUT /a/ HTTP/1.7', ('PUT', '/a/', ['a', ''], None, 'HTTP/1.1')),
    (b'DELETE /x?y HTTP/1.1', ('DELETE', '/x?y', ['x'], 'y', 'HTTP/1.1')),
    (b'PATCH /x HTTP/1.1', ('PATCH', '/x', ['x'], None, 'HTTP/1.1')),
    (b'OPTIONS * HTTP/1.1', ('OPTIONS', '*', [], None, 'HTTP/1.1')),
    (b'OPTIONS / HTTP/1.1', ('OPTIONS', '/', [], None, 'HTTP/1.1')),
    (b'GET http://h:1/a?b HTTP/1.1', ('GET', '/a?b', ['a'], 'b', 'HTTP/1.1')),
]


@pytest.mark.parametrize('line, value', PARSE_REQUEST_LINE)
def test_parse_request_line_good(line, value):
    assert parse_request_line(line) == value


LONG_TARGET = b'/' + b'a' * 8200
PARSE_REQUEST_LINE_BAD = [
    (b'', 400, "bad request line: b''"),
    (b'GET /', 400, "bad request line: b'GET /'"),
    (b'GET / HTTP/1.1 ', 400, "bad request line: b'GET / HTTP/1.1 '"),
    (b'GET  / HTTP/1.1', 400, "bad request line: b'GET  / HTTP/1.1'"),
    (b'GET / \tHTTP/1.1', 400, "bad HTTP version: b'\\tHTTP/1.1'"),
    (b'GET /a\tb HTTP/1.1', 400, "bad request-target: b'/a\\tb'"),
    (b' / HTTP/1.1', 400, "bad method: b''"),
    (b'GET  HTTP/1.1', 400, "bad request line: b'GET  HTTP/1.1'"),
    (b'get / HTTP/1.1', 501, "unsupported method: b'get'"),
    (b'CONNECT h:443 HTTP/1.1', 501, "unsupported method: b'CONNECT'"),
    (b'GET / HTTP/2.0', 505, "unsupported HTTP version: b'HTTP/2.0'"),
    (b'GET / http/1.1', 400, "bad HTTP version: b'http/1.1'"),
    (b'GET * HTTP/1.1', 400, "request-target '*' with method 'GET'"),
    (b'OPTIONS ** HTTP/1.1', 400, "bad request-target: b'**'"),
    (b'GET h:443 HTTP/1.1', 400, "bad request-target: b'h:443'"),
    (b'GET /a/../b HTTP/1.1', 400, "dot segment in path: b'/a/../b'"),
    pytest.param(
        b'GET ' + LONG_TARGET + b' HTTP/1.1',
        414,
        'request line too long: 8214 > 8192',
        id='too-long',
    ),
]


@pytest.mark.parametrize('line, status, message', PARSE_REQUEST_LINE_BAD)
def test_parse_request_line_bad(line, status, message):
    refused(status, message, parse_request_line, line)


def test_parse_request_line_length_limit():
    line = b'GET /' + b'a' * (8192 - 14) + b' HTTP/1.1'
    assert len(line) == 8192
    assert parse_request_line(line)[0] == 'GET'
    refused(
        414,
        'request line too long: 8193 > 8192',
        parse_request_line,
        line[:5] + b'a' + line[5:],
    )


def test_parse_request_line_every_byte():
    for b in ALL_BYTES:
        x = bytes([b])
        # in the method
        line = b'GE' + x + b'T / HTTP/1.1'
        if b == 0x20:
            refused(400, f'bad request line: {line!r}', parse_request_line, line)
        elif b in TCHAR:
            refused(501, f'unsupported method: {b"GE" + x + b"T"!r}', parse_request_line, line)
        else:
            refused(400, f'bad method: {b"GE" + x + b"T"!r}', parse_request_line, line)
        # in the target
        line = b'GET /a' + x + b'b HTTP/1.1'
        if b == 0x20:
            refused(400, f'bad request line: {line!r}', parse_request_line, line)
        elif b in PCHAR or b in b'/?':
            assert parse_request_line(line)[1] == '/a' + chr(b) + 'b'
        elif b == 0x25:
            msg = f'bad percent-encoding in request-target: {b"/a%b"!r}'
            refused(400, msg, parse_request_line, line)
        else:
            msg = f'bad request-target: {b"/a" + x + b"b"!r}'
            refused(400, msg, parse_request_line, line)
        # in the version
        line = b'GET / HTTP/1' + x + b'1'
        if b == 0x20:
            refused(400, f'bad request line: {line!r}', parse_request_line, line)
        elif b == 0x2E:
            assert parse_request_line(line)[4] == 'HTTP/1.1'
        else:
            msg = f'bad HTTP version: {b"HTTP/1" + x + b"1"!r}'
            refused(400, msg, parse_request_line, line)


# -------------------------------------------------------------------------
# Status lines (RFC 9112 section 4).

PARSE_RESPONSE_LINE = [
    (b'HTTP/1.1 200 OK', ('HTTP/1.1', 200, 'OK')),
    (b'HTTP/1.0 404 Not Found', ('HTTP/1.0', 404, 'Not Found')),
    (b'HTTP/1.1 100 Continue', ('HTTP/1.1', 100, 'Continue')),
    (b'HTTP/1.1 599 x', ('HTTP/1.1', 599, 'x')),
    (b'HTTP/1.1 204 ', ('HTTP/1.1', 204, '')),
    (b'HTTP/1.1 204', ('HTTP/1.1', 204, '')),
    (b'HTTP/1.1 200 \xe9t\xe9', ('HTTP/1.1', 200, '\xe9t\xe9')),
    (b'HTTP/1.1 200 a\tb  c ', ('HTTP/1.1', 200, 'a\tb  c ')),
    (b'HTTP/1.1 200  OK', ('HTTP/1.1', 200, ' OK')),
    (b'HTTP/1.5 200 OK', ('HTTP/1.1', 200, 'OK')),
]


@pytest.mark.parametrize('line, value', PARSE_RESPONSE_LINE)
def test_parse_response_line_good(line, value):
    assert parse_response_line(line) == value


def test_parse_response_line_shares_reasons():
    a = parse_response_line(b'HTTP/1.1 200 OK')[2]
    b = parse_response_line(b'HTTP/1.1 200 OK')[2]
    assert a is b


PARSE_RESPONSE_LINE_BAD = [
    (b'', 400, "bad HTTP version: b''"),
    (b'HTTP/1.1', 400, "bad status line: b'HTTP/1.1'"),
    (b'HTTP/1.1 ', 400, "bad status: b''"),
    (b'HTTP/1.1 20', 400, "bad status: b'20'"),
    (b'HTTP/1.1 2000', 400, "bad status: b'2000'"),
    (b'HTTP/1.1 600 X', 400, "bad status: b'600 X'"),
    (b'HTTP/1.1 099 X', 400, "bad status: b'099 X'"),
    (b'HTTP/1.1 20x OK', 400, "bad status: b'20x OK'"),
    (b'HTTP/1.1  200 OK', 400, "bad status: b' 200 OK'"),
    (b'HTTP/1.1 200OK', 400, "bad status: b'200OK'"),
    (b'HTTP/1.1\t200 OK', 400, "bad status line: b'HTTP/1.1\\t200 OK'"),
    (b'HTTP/1.1 200 O\x00K', 400, "bad reason phrase: b'O\\x00K'"),
    (b'HTTP/1.1 200 O\rK', 400, "bad reason phrase: b'O\\rK'"),
    (b'HTTP/1.1 200 O\nK', 400, "bad reason phrase: b'O\\nK'"),
    (b'HTTP/1.1 200 O\x7fK', 400, "bad reason phrase: b'O\\x7fK'"),
    (b'http/1.1 200 OK', 400, "bad HTTP version: b'http/1.1'"),
    (b'HTTP/2.0 200 OK', 505, "unsupported HTTP version: b'HTTP/2.0'"),
    (b'ICY 200 OK', 400, "bad HTTP version: b'ICY 200 '"),
]


@pytest.mark.parametrize('line, status, message', PARSE_RESPONSE_LINE_BAD)
def test_parse_response_line_bad(line, status, message):
    refused(status, message, parse_response_line, line)


def test_parse_response_line_every_byte():
    for b in ALL_BYTES:
        x = bytes([b])
        line = b'HTTP/1.1 200 O' + x + b'K'
        if b in FIELD_CONTENT:
            assert parse_response_line(line) == ('HTTP/1.1', 200, 'O' + chr(b) + 'K')
        else:
            refused(400, f'bad reason phrase: {b"O" + x + b"K"!r}', parse_response_line, line)
        line = b'HTTP/1.1 2' + x + b'0 OK'
        if b in DIGIT:
            assert parse_response_line(line)[1] == 200 + 10 * (b - 0x30)
        else:
            refused(400, f'bad status: {b"2" + x + b"0 OK"!r}', parse_response_line, line)


def test_parse_response_line_every_status():
    for status in range(1000):
        line = b'HTTP/1.1 %03d OK' % status
        if 100 <= status <= 599:
            assert parse_response_line(line) == ('HTTP/1.1', status, 'OK')
        else:
            refused(400, f'bad status: {b"%03d OK" % status!r}', parse_response_line, line)


# -------------------------------------------------------------------------
# Header fields (RFC 9112 section 5).

PARSE_HEADER_NAME = [
    (b'a', 'a'),
    (b'Content-Type', 'content-type'),
    (b'X-FOO', 'x-foo'),
    (b"!#$%&'*+-.^_`|~09AZaz", "!#$%&'*+-.^_`|~09azaz"),
    (b'x' * 200, 'x' * 200),
]


@pytest.mark.parametrize('src, name', PARSE_HEADER_NAME)
def test_parse_header_name_good(src, name):
    assert parse_header_name(src) == name
    assert parse_header_name(src) == name  # second time from the cache


PARSE_HEADER_NAME_BAD = [
    (b'', 'empty header name'),
    (b' a', "obs-fold or leading whitespace in header line: b' a'"),
    (b'\ta', "obs-fold or leading whitespace in header line: b'\\ta'"),
    (b'a ', "whitespace before colon in header name: b'a '"),
    (b'a\t', "whitespace before colon in header name: b'a\\t'"),
    (b'a b', "bad header name: b'a b'"),
    (b'a(b)', "bad header name: b'a(b)'"),
    (b'\xe9', "bad header name: b'\\xe9'"),
    (b'a' * 33 + b'@', f'bad header name: {b"a" * 32!r}...'),
]


@pytest.mark.parametrize('src, message', PARSE_HEADER_NAME_BAD)
def test_parse_header_name_bad(src, message):
    refused(400, message, parse_header_name, src)


PARSE_HEADERS = [
    (b'', {}),
    (b'a: b', {'a': 'b'}),
    (b'A:b', {'a': 'b'}),
    (b'a:', {'a': ''}),
    (b'a:   ', {'a': ''}),
    (b'a: \t b \t ', {'a': 'b'}),
    (b'a: b  c', {'a': 'b  c'}),
    (b'a: b\tc', {'a': 'b\tc'}),
    (b'a: b:c: d', {'a': 'b:c: d'}),
    (b'a: \xe9\xff', {'a': '\xe9\xff'}),
    (b'a: 1\r\nA: 2\r\na:3', {'a': '1, 2, 3'}),
    (b'a: 1\r\na:', {'a': '1'}),  # RFC 9110 5.6.1: empty members count for nothing
    (b'a:\r\na: 1', {'a': '1'}),
    (b'a:\r\na:', {'a': ''}),
    (b'a: 1\r\na:\r\na: 2', {'a': '1, 2'}),
    (b'Content-Length: 17', {'content-length': 17}),
    (b'content-length: 0', {'content-length': 0}),
    (b'content-length: 007', {'content-length': 7}),
    (b'content-length: 9999999999999999', {'content-length': 9999999999999999}),
    (b'Transfer-Encoding: chunked', {'transfer-encoding': 'chunked'}),
    (b'transfer-encoding: CHUNKED', {'transfer-encoding': 'chunked'}),
    (b'range: bytes=0-0', {'range': Range(0, 1)}),
    (b'host: a\r\naccept: b', {'host': 'a', 'accept': 'b'}),
    (b'connection: close\r\nx-1: ""', {'connection': 'close', 'x-1': '""'}),
]


@pytest.mark.parametrize('src, headers', PARSE_HEADERS)
def test_parse_headers_good(src, headers):
    assert parse_headers(src) == headers
    assert list(parse_headers(src)) == list(headers)


def test_parse_headers_value_types():
    h = parse_headers(b'content-length: 5\r\nx: 1')
    assert [type(v) for v in h.values()] == [int, str]
    h = parse_headers(b'range: bytes=1-2\r\nx: 1')
    assert [type(v) for v in h.values()] == [Range, str]
    h = parse_headers(b'content-range: bytes 1-2/3\r\ncontent-length: 2', True)
    assert h == {'content-range': ContentRange(1, 3, 3), 'content-length': 2}
    assert type(h['content-range']) is ContentRange


PARSE_HEADERS_BAD = [
    (b'a: b\r\n', 400, 'empty header name'),
    (b'\r\na: b', 400, 'empty header name'),
    (b':b', 400, 'empty header name'),
    (b'a : b', 400, "whitespace before colon in header name: b'a '"),
    (b'a: b\r\n c', 400, "obs-fold or leading whitespace in header line: b' c'"),
    (b'a: b\r\n\tc', 400, "obs-fold or leading whitespace in header line: b'\\tc'"),
    (b'a', 400, "header line without a colon: b'a'"),
    (b'a: b\r\nc', 400, "header line without a colon: b'c'"),
    (b'a: b\nc: d', 400, "bad byte in header block: b'\\n'"),
    (b'a: b\rc: d', 400, "bad byte in header block: b'\\r'"),
    (b'a: b\r', 400, "bad byte in header block: b'\\r'"),
    (b'a: \x00', 400, "bad byte in header block: b'\\x00'"),
    (b'a: \x7f', 400, "bad byte in header block: b'\\x7f'"),
    (b'a: \x1b[0m', 400, "bad byte in header block: b'\\x1b'"),
    (b'Host: a\r\nhost: b', 400, "duplicate header: 'host'"),
    (b'content-length: 1\r\ncontent-length: 1', 400, "duplicate header: 'content-length'"),
    (
        b'transfer-encoding: chunked\r\ntransfer-encoding: chunked',
        400,
        "duplicate header: 'transfer-encoding'",
    ),
    (b'range: bytes=0-1\r\nrange: bytes=0-1', 400, "duplicate header: 'range'"),
    (b'content-length: 5, 5', 400, "bad content-length: b'5, 5'"),
    (b'content-length: +5', 400, "bad content-length: b'+5'"),
    (b'content-length:', 400, "bad content-length: b''"),
    (
        b'content-length: 12345678901234567',
        400,
        "content-length too long: b'1234567890123456'...",
    ),
    (b'transfer-encoding: gzip', 501, "unsupported transfer-encoding: b'gzip'"),
    (
        b'transfer-encoding: gzip, chunked',
        501,
        "unsupported transfer-encoding: b'gzip, chunked'",
    ),
    (b'transfer-encoding:  ', 400, 'empty transfer-encoding'),
    (
        b'content-length: 1\r\ntransfer-encoding: chunked',
        400,
        'cannot have both content-length and transfer-encoding headers',
    ),
    (
        b'transfer-encoding: chunked\r\ncontent-length: 1',
        400,
        'cannot have both content-length and transfer-encoding headers',
    ),
    (b'host: a b', 400, "bad host: b'a b'"),
    (b'host: user@example.com', 400, "bad host: b'user@example.com'"),
    (b'host: example.com:abc', 400, "bad host: b'example.com:abc'"),
    (b'host: a:1:2', 400, "bad host: b'a:1:2'"),
    (b'host: [::1', 400, "bad host: b'[::1'"),
    (b'host: caf\xe9', 400, "bad host: b'caf\\xe9'"),
    (b'host: a%zz', 400, "bad host: b'a%zz'"),
    (b'host: a\r\nhost: b', 400, "duplicate header: 'host'"),
    (b'range: bytes=0-1\r\nrange: bytes=2-3', 400, "duplicate header: 'range'"),
    (b'content-range: bytes 0-1/2', 400, "request cannot include a 'content-range' header"),
    (
        b'x: y\r\ncontent-range: bytes 0-1/2',
        400,
        "request cannot include a 'content-range' header",
    ),
    (b'a: b\r\n' * 100 + b'a: b', 431, 'too many header fields: 101 > 100'),
]


@pytest.mark.parametrize('src, status, message', PARSE_HEADERS_BAD)
def test_parse_headers_bad(src, status, message):
    refused(status, message, parse_headers, src)


PARSE_RESPONSE_HEADERS_BAD = [
    (b'content-range: bytes 0-0/0', "bad content-range: b'bytes 0-0/0'"),
]


PARSE_HEADERS_RANGES = [
    # A request's range is a Range, or dropped as if absent (RFC 9110 14.2).
    (b'range: bytes=0-1', {'range': Range(0, 2)}),
    (b'range: bytes=-5', {'range': Range(-5, None)}),
    (b'range: bytes=5-', {'range': Range(5, M)}),
    (b'range: bytes=0-1,5-6', {}),
    (b'range: items=0-5', {}),
    (b'range: bytes=5-4', {}),
    (b'range: bytes=-0', {}),
    (b'range: bytes 0-1', {}),
    (b'x: y\r\nrange: bytes=0-1, 3-4', {'x': 'y'}),
    (b'content-length: 1\r\nrange: bytes=0-1', {'content-length': 1, 'range': Range(0, 2)}),
    (b'transfer-encoding: chunked\r\nrange: nope', {'transfer-encoding': 'chunked'}),
]


@pytest.mark.parametrize('src, value', PARSE_HEADERS_RANGES)
def test_parse_headers_ranges(src, value):
    assert parse_headers(src) == value
    assert parse_headers(src) == value  # the second time from the cache, the same


PARSE_HEADERS_HOST = [
    # Host = uri-host [ ":" port ] (RFC 9112 section 3.2)
    (b'', ''),
    (b'example.com', 'example.com'),
    (b'example.com:8080', 'example.com:8080'),
    (b'example.com:', 'example.com:'),
    (b'127.0.0.1:80', '127.0.0.1:80'),
    (b'[::1]', '[::1]'),
    (b'[::1]:8080', '[::1]:8080'),
    (b'[v7.fe80::1]', '[v7.fe80::1]'),
    (b'xn--caf-dma.example', 'xn--caf-dma.example'),
    (b'a%20b', 'a%20b'),
    (b"!$&'()*+,;=", "!$&'()*+,;="),
]


@pytest.mark.parametrize('src, value', PARSE_HEADERS_HOST)
def test_parse_headers_host(src, value):
    assert parse_headers(b'host: ' + src) == {'host': value}
    assert parse_host(src) == value


def test_parse_headers_response_keeps_text():
    # range and host mean nothing in a response: kept as text, never refused.
    assert parse_headers(b'range: bytes=0-1\r\nhost: a b', True) == {
        'range': 'bytes=0-1',
        'host': 'a b',
    }


def test_parse_trailer_line():
    assert parse_trailer_line(b'content-range: bytes 0-1/*') is None
    assert parse_trailer_line(b'Expires: never') is None
    refused(400, "bad header name: b'a b'", parse_trailer_line, b'a b: c')
    refused(400, "header line without a colon: b'abc'", parse_trailer_line, b'abc')
    refused(400, "bad byte in header block: b'\\x00'", parse_trailer_line, b'a: \x00')


def test_parse_authority():
    assert parse_authority(b'http://example.com/x') == 'example.com'
    assert parse_authority(b'HTTPS://[::1]:8443/x?y') == '[::1]:8443'
    assert parse_authority(b'/x') is None
    assert parse_authority(b'*') is None


@pytest.mark.parametrize('src, message', PARSE_RESPONSE_HEADERS_BAD)
def test_parse_headers_response_bad(src, message):
    refused(400, message, parse_headers, src, True)


def test_parse_headers_max_count():
    block = b'\r\n'.join(b'h%d: v' % i for i in range(100))
    assert len(parse_headers(block)) == 100
    refused(431, 'too many header fields: 101 > 100', parse_headers, block + b'\r\nx: y')
    assert parse_headers(b'a: 1\r\nb: 2', max_count=2) == {'a': '1', 'b': '2'}
    refused(
        431,
        'too many header fields: 3 > 2',
        parse_headers,
        b'a: 1\r\nb: 2\r\nc: 3',
        False,
        2,
    )
    # repeated lines count as lines, not as distinct names
    refused(
        431,
        'too many header fields: 3 > 2',
        parse_headers,
        b'a: 1\r\na: 2\r\na: 3',
        False,
        2,
    )


def test_parse_headers_name_every_byte():
    for b in ALL_BYTES:
        x = bytes([b])
        src = b'a' + x + b'b: v'
        if b in TCHAR:
            assert parse_headers(src) == {('a' + chr(b) + 'b').lower(): 'v'}
        elif b == 0x3A:  # ':'
            assert parse_headers(src) == {'a': 'b: v'}
        elif b in (0x0D, 0x0A) or (b < 0x20 and b != 0x09) or b == 0x7F:
            refused(400, f'bad byte in header block: {x!r}', parse_headers, src)
        else:
            refused(400, f'bad header name: {b"a" + x + b"b"!r}', parse_headers, src)


def test_parse_headers_value_every_byte():
    for b in ALL_BYTES:
        x = bytes([b])
        for src, value in ((b'a: x' + x + b'y', 'x' + chr(b) + 'y'), (b'a:' + x, chr(b))):
            if b in FIELD_CONTENT:
                assert parse_headers(src) == {'a': value.strip(' \t')}
            else:
                refused(400, f'bad byte in header block: {x!r}', parse_headers, src)


PARSE_CONTENT_LENGTH = [
    (b'0', 0),
    (b'1', 1),
    (b'00', 0),
    (b'0017', 17),
    (b'1234567890123456', 1234567890123456),
    (b'9999999999999999', 9999999999999999),
    (b'0000000000000000', 0),
]


@pytest.mark.parametrize('src, value', PARSE_CONTENT_LENGTH)
def test_parse_content_length_good(src, value):
    assert parse_content_length(src) == value


PARSE_CONTENT_LENGTH_BAD = [
    (b'', "bad content-length: b''"),
    (b' 1', "bad content-length: b' 1'"),
    (b'-1', "bad content-length: b'-1'"),
    (b'+1', "bad content-length: b'+1'"),
    (b'1_000', "bad content-length: b'1_000'"),
    (b'0x10', "bad content-length: b'0x10'"),
    (b'1,1', "bad content-length: b'1,1'"),
    (b'\xd9\xa1', "bad content-length: b'\\xd9\\xa1'"),  # Arabic-Indic digit one in UTF-8
    (b'10000000000000000', "content-length too long: b'1000000000000000'..."),
    (b'00000000000000001', "content-length too long: b'0000000000000000'..."),
]


@pytest.mark.parametrize('src, message', PARSE_CONTENT_LENGTH_BAD)
def test_parse_content_length_bad(src, message):
    refused(400, message, parse_content_length, src)


def test_parse_content_length_every_byte():
    for b in ALL_BYTES:
        src = b'1' + bytes([b]) + b'2'
        if b in DIGIT:
            assert parse_content_length(src) == int(src)
        else:
            refused(400, f'bad content-length: {src!r}', parse_content_length, src)
        # through parse_headers too (where OWS around the value is stripped)
        hsrc = b'content-length: ' + src
        if b in DIGIT:
            assert parse_headers(hsrc) == {'content-length': int(src)}
        elif b in FIELD_CONTENT:
            refused(400, f'bad content-length: {src!r}', parse_headers, hsrc)
        else:
            refused(400, f'bad byte in header block: {bytes([b])!r}', parse_headers, hsrc)


PARSE_TRANSFER_ENCODING_BAD = [
    (b'', 400, 'empty transfer-encoding'),
    (b'gzip', 501, "unsupported transfer-encoding: b'gzip'"),
    (b'chunked, chunked', 501, "unsupported transfer-encoding: b'chunked, chunked'"),
    (b'chunked;q=1', 501, "unsupported transfer-encoding: b'chunked;q=1'"),
    (b'identity', 501, "unsupported transfer-encoding: b'identity'"),
]


@pytest.mark.parametrize('src, status, message', PARSE_TRANSFER_ENCODING_BAD)
def test_parse_transfer_encoding(src, status, message):
    assert parse_transfer_encoding(b'chunked') == 'chunked'
    assert parse_transfer_encoding(b'ChUnKeD') == 'chunked'
    refused(status, message, parse_transfer_encoding, src)


PARSE_RANGE = [
    (b'bytes=0-0', Range(0, 1)),
    (b'bytes=0-499', Range(0, 500)),
    (b'bytes=500-999', Range(500, 1000)),
    (b'bytes=007-8', Range(7, 9)),
    (b'bytes=0-9999999999999998', Range(0, 9999999999999999)),
    (b'bytes=9999999999999998-9999999999999998', Range(9999999999999998, 9999999999999999)),
    # open-ended: to the end, clamped by content_range(total)
    (b'bytes=5-', Range(5, 9999999999999999)),
    (b'bytes=0-', Range(0, 9999999999999999)),
    (b'bytes=9999999999999998-', Range(9999999999999998, 9999999999999999)),
    # suffix: the last N bytes
    (b'bytes=-5', Range(-5, None)),
    (b'bytes=-0005', Range(-5, None)),
    (b'bytes=-9999999999999999', Range(-9999999999999999, None)),
]


@pytest.mark.parametrize('src, value', PARSE_RANGE)
def test_parse_range_good(src, value):
    assert parse_range(src) == value


PARSE_RANGE_BAD = [
    b'',
    b'bytes=',
    b'bytes=5-4',
    b'bytes=-0',
    b'bytes=-',
    b'bytes=--5',
    b'bytes=-12345678901234567',
    b'bytes=9999999999999999-',
    b'bytes=0-1,2-3',
    b'bytes=0-,5-',
    b'bytes = 0-1',
    b'Bytes=0-1',
    b'items=0-1',
    b'bytes=0-9999999999999999',
    b'bytes=0-12345678901234567',
    b'bytes=a-b',
    b'bytes=0-1 ',
]


@pytest.mark.parametrize('src', PARSE_RANGE_BAD)
def test_parse_range_bad(src):
    refused(400, f'bad range: {src!r}', parse_range, src)


PARSE_CONTENT_RANGE = [
    (b'bytes 0-0/1', ContentRange(0, 1, 1)),
    (b'bytes 0-99/1000', ContentRange(0, 100, 1000)),
    (b'bytes 999-999/1000', ContentRange(999, 1000, 1000)),
    (
        b'bytes 0-9999999999999998/9999999999999999',
        ContentRange(0, 9999999999999999, 9999999999999999),
    ),
    (b'bytes */5', 'bytes */5'),  # a 416's unsatisfied-range: kept as a str
    (b'bytes */0', 'bytes */0'),
    # complete-length "*": unknown total (RFC 9110 section 14.4)
    (b'bytes 0-1/*', ContentRange(0, 2, None)),
    (b'bytes 5-5/*', ContentRange(5, 6, None)),
]


@pytest.mark.parametrize('src, value', PARSE_CONTENT_RANGE)
def test_parse_content_range_good(src, value):
    assert parse_content_range(src) == value


PARSE_CONTENT_RANGE_BAD = [
    b'',
    b'bytes 0-0/0',
    b'bytes 1-0/5',
    b'bytes 0-5/5',
    b'bytes */12345678901234567',
    b'bytes */',
    b'bytes * /5',
    b'bytes 1-0/*',
    b'bytes 0-1/**',
    b'bytes */*',
    b'bytes=0-1/5',
    b'bytes 0-1/12345678901234567',
    b'bytes  0-1/5',
]


@pytest.mark.parametrize('src', PARSE_CONTENT_RANGE_BAD)
def test_parse_content_range_bad(src):
    refused(400, f'bad content-range: {src!r}', parse_content_range, src)


def test_parse_range_every_byte():
    for b in ALL_BYTES:
        src = b'bytes=1' + bytes([b]) + b'-99'
        if b in DIGIT:
            assert parse_range(src) == Range(int(src[6:-3]), 100)
        else:
            refused(400, f'bad range: {src!r}', parse_range, src)


# -------------------------------------------------------------------------
# Chunk lines (RFC 9112 section 7.1).

PARSE_CHUNK_SIZE = [
    (b'0', 0),
    (b'1', 1),
    (b'a', 10),
    (b'F', 15),
    (b'1e', 30),
    (b'fFfF', 0xFFFF),
    (b'1000000', 16777216),
    (b'ffffff', 16777215),
    # 1*HEXDIG: leading zeros are fine (RFC 9112 section 7.1)
    (b'00', 0),
    (b'01', 1),
    (b'005', 5),
    (b'0A', 10),
    (b'0000000000000000', 0),
    (b'0000000001000000', 16777216),
]


@pytest.mark.parametrize('src, value', PARSE_CHUNK_SIZE)
def test_parse_chunk_size_good(src, value):
    assert parse_chunk_size(src) == value


PARSE_CHUNK_SIZE_BAD = [
    (b'', "bad chunk_size: b''"),
    (b'0x1', "bad chunk_size: b'0x1'"),
    (b'-1', "bad chunk_size: b'-1'"),
    (b'+1', "bad chunk_size: b'+1'"),
    (b' 1', "bad chunk_size: b' 1'"),
    (b'1 ', "bad chunk_size: b'1 '"),
    (b'g', "bad chunk_size: b'g'"),
    (b'1_0', "bad chunk_size: b'1_0'"),
    (b'1000001', 'need chunk_size <= 16777216; got 16777217'),
    (b'fffffff', 'need chunk_size <= 16777216; got 268435455'),
    (b'10000000', 'need chunk_size <= 16777216; got 268435456'),
    (b'00000000001000001', "chunk_size is too long: b'0000000000100000'..."),
    (b'ffffffffffffffff0', "chunk_size is too long: b'ffffffffffffffff'..."),
]


@pytest.mark.parametrize('src, message', PARSE_CHUNK_SIZE_BAD)
def test_parse_chunk_size_bad(src, message):
    refused(400, message, parse_chunk_size, src)


def test_parse_chunk_size_every_byte():
    for b in ALL_BYTES:
        x = bytes([b])
        if b in HEXDIG:
            assert parse_chunk_size(x) == int(x, 16)
            assert parse_chunk_size(b'1' + x) == int(b'1' + x, 16)
            assert parse_chunk_size(b'0' + x) == int(x, 16)
        else:
            refused(400, f'bad chunk_size: {x!r}', parse_chunk_size, x)
            src = b'1' + x
            refused(400, f'bad chunk_size: {src!r}', parse_chunk_size, src)


PARSE_CHUNK_EXTENSION = [
    (b'', None),
    (b';k=v', ('k', 'v')),
    (b';Key=Value', ('Key', 'Value')),
    (b';k', ('k', '')),
    (b' ; k', ('k', '')),
    (b'\t;\tk\t=\tv', ('k', 'v')),
    (b';k = v', ('k', 'v')),
    (b';k=v;k2=v2', ('k', 'v')),
    (b';k;k2="x"', ('k', '')),
    (b';k=""', ('k', '')),
    (b';k="a b"', ('k', 'a b')),
    (b';k="a;b=c"', ('k', 'a;b=c')),
    (b';k="\\"\\\\"', ('k', '"\\')),
    (b';k="\\a\\ "', ('k', 'a ')),
    (b';k="\xe9\\\xff"', ('k', '\xe9\xff')),
    (b";!#$%&'*+-.^_`|~=!#$%&'*+-.^_`|~", ("!#$%&'*+-.^_`|~", "!#$%&'*+-.^_`|~")),
]


@pytest.mark.parametrize('src, value', PARSE_CHUNK_EXTENSION)
def test_parse_chunk_extension_good(src, value):
    assert parse_chunk_extension(src) == value


PARSE_CHUNK_EXTENSION_BAD = [
    b';',
    b'k=v',
    b';=v',
    b';k=',
    b';k=v ',
    b';k=v;',
    b';k==v',
    b';k=v=w',
    b';k="v',
    b';k="v"x',
    b';k="\\"',
    b';k="a\x00"',
    b';k="a\x7f"',
    b';k=a b',
    b';k v',
    b';k=\xe9',
    b';k=(v)',
    b';k=v\r',
]


@pytest.mark.parametrize('src', PARSE_CHUNK_EXTENSION_BAD)
def test_parse_chunk_extension_bad(src):
    refused(400, f'bad chunk extension: {src!r}', parse_chunk_extension, src)


def test_parse_chunk_extension_every_byte():
    for b in ALL_BYTES:
        x = bytes([b])
        c = chr(b)
        # in the name
        src = b';a' + x + b'=v'
        if b in TCHAR:
            assert parse_chunk_extension(src) == ('a' + c, 'v')
        elif b in b' \t':
            assert parse_chunk_extension(src) == ('a', 'v')
        elif b == 0x3B:  # ';a;=v': the second name is missing
            refused(400, f'bad chunk extension: {src!r}', parse_chunk_extension, src)
        else:
            refused(400, f'bad chunk extension: {src!r}', parse_chunk_extension, src)
        # in a token value
        src = b';a=v' + x + b'w'
        if b in TCHAR:
            assert parse_chunk_extension(src) == ('a', 'v' + c + 'w')
        elif b == 0x3B:  # ';a=v;w': a second, bare extension
            assert parse_chunk_extension(src) == ('a', 'v')
        else:
            refused(400, f'bad chunk extension: {src!r}', parse_chunk_extension, src)
        # in a quoted value
        src = b';a="v' + x + b'w"'
        if b in QDTEXT:
            assert parse_chunk_extension(src) == ('a', 'v' + c + 'w')
        elif b == 0x5C:  # backslash: a quoted-pair '\w'
            assert parse_chunk_extension(src) == ('a', 'vw')
        else:
            refused(400, f'bad chunk extension: {src!r}', parse_chunk_extension, src)
        # escaped in a quoted value
        src = b';a="\\' + x + b'"'
        if b in QDTEXT or b in b'"\\':
            assert parse_chunk_extension(src) == ('a', c)
        else:
            refused(400, f'bad chunk extension: {src!r}', parse_chunk_extension, src)


PARSE_CHUNK = [
    (b'0', (0, None)),
    (b'5', (5, None)),
    (b'5;k=v', (5, ('k', 'v'))),
    (b'5 ;k=v', (5, ('k', 'v'))),
    (b'5\t; k', (5, ('k', ''))),
    (b'0;k="a b"', (0, ('k', 'a b'))),
    (b'1000000;x', (16777216, ('x', ''))),
]


@pytest.mark.parametrize('line, value', PARSE_CHUNK)
def test_parse_chunk_good(line, value):
    assert parse_chunk(line) == value


PARSE_CHUNK_BAD = [
    (b'', "bad chunk_size: b''"),
    (b';k=v', "bad chunk_size: b''"),
    (b'5 ', "bad chunk_size: b'5 '"),
    (b' 5', "bad chunk_size: b' 5'"),

    (b'5;', "bad chunk extension: b';'"),
    (b'5;k=v ', "bad chunk extension: b';k=v '"),
    (b'12345678901234567;k', "chunk_size is too long: b'1234567890123456'..."),
    (b'1000001;k', 'need chunk_size <= 16777216; got 16777217'),
]


@pytest.mark.parametrize('line, message', PARSE_CHUNK_BAD)
def test_parse_chunk_bad(line, message):
    refused(400, message, parse_chunk, line)


BODY = b'5\r\nhello\r\n3;k=v\r\nabc\r\n0\r\nx-t: 1\r\n\r\nGET /next'
# (pos, stop, end): where the chunk at BODY[pos] ends when BODY[:stop] arrived
CHUNK_END = [
    (0, 0, None),
    (0, 2, None),  # '5\r' : the line is not complete
    (0, 3, None),  # '5\r\n': the line, no data
    (0, 8, None),  # 'hello' without its CRLF
    (0, 9, None),  # the CR of its CRLF alone
    (0, 10, 10),
    (0, 11, 10),
    (0, len(BODY), 10),
    (10, 21, None),
    (10, 22, 22),  # a chunk with an extension
    (22, 25, None),  # the last chunk, its trailer section not there
    (22, 33, None),  # the trailer field, not the empty line after it
    (22, 34, None),
    (22, 35, 35),  # the last chunk ends after its trailer section
    (22, len(BODY), 35),  # a pipelined request after it is not its business
]


@pytest.mark.parametrize('pos, stop, end', CHUNK_END)
def test_chunk_end(pos, stop, end):
    assert chunk_end(BODY, pos, stop) == end
    assert chunk_end(bytearray(BODY), pos, stop) == end


@pytest.mark.parametrize('src, message', [
    (b'x\r\n', "bad chunk_size: b'x'"),
    (b'1\r\nabc', "bad chunk data termination: b'bc'"),
    (b'1' * 4096, f"chunk line too long: {b'1' * 32!r}..."),
])
def test_chunk_end_bad(src, message):
    refused(400, message, chunk_end, src, 0, len(src))


def test_chunk_end_of_the_last_chunk_without_trailers():
    assert chunk_end(b'0\r\n\r\n', 0, 5) == 5
    assert chunk_end(b'0\r\n\r\n', 0, 4) is None
    assert chunk_end(b'0;x\r\n\r\n', 0, 7) == 7


# -------------------------------------------------------------------------
# One error model: bad bytes from a peer raise exactly ParseError, with the
# status a server answers with; a plain ValueError would be our bug (a 500).

LONG_LINE = b'GET /' + b'a' * 8200 + b' HTTP/1.1'
MANY_FIELDS = b'\r\n'.join(b'h%d: v' % i for i in range(101))

# (parser, args, status, message): a line for every raise in the parsers
PARSER_ERRORS = [
    (parse_method, (b'G ET',), 400, "bad method: b'G ET'"),
    (parse_method, (b'BREW',), 501, "unsupported method: b'BREW'"),
    (parse_version, (b'HTTP/1',), 400, "bad HTTP version: b'HTTP/1'"),
    (parse_version, (b'HTTP/2.0',), 505, "unsupported HTTP version: b'HTTP/2.0'"),
    (parse_uri, (b'foo',), 400, "bad request-target: b'foo'"),
    (parse_uri, (b'http://h:1x',), 400, "bad request-target: b'http://h:1x'"),
    (parse_uri, (b'/a b',), 400, "bad request-target: b'/a b'"),
    (parse_uri, (b'/a?b c',), 400, "bad request-target: b'/a?b c'"),
    (parse_uri, (b'/a%2g',), 400, "bad percent-encoding in request-target: b'/a%2g'"),
    (parse_uri, (b'/a//b',), 400, "b'//' in path: b'/a//b'"),
    (parse_uri, (b'/a/../b',), 400, "dot segment in path: b'/a/../b'"),
    (parse_request_line, (LONG_LINE,), 414, 'request line too long: 8214 > 8192'),
    (parse_request_line, (b'GET / HTTP/1.1 x',), 400, "bad request line: b'GET / HTTP/1.1 x'"),
    (parse_request_line, (b'GET  HTTP/1.1',), 400, "bad request line: b'GET  HTTP/1.1'"),
    (parse_request_line, (b'GET * HTTP/1.1',), 400, "request-target '*' with method 'GET'"),
    (parse_request_line, (b'BREW / HTTP/1.1',), 501, "unsupported method: b'BREW'"),
    (parse_request_line, (b'GET / HTTP/3.0',), 505, "unsupported HTTP version: b'HTTP/3.0'"),
    (parse_request_line, (b'GET /a%zz HTTP/1.1',), 400, (
        "bad percent-encoding in request-target: b'/a%zz'"
    )),
    (parse_response_line, (b'HTTP/1.1',), 400, "bad status line: b'HTTP/1.1'"),
    (parse_response_line, (b'HTTP/1.1 2000',), 400, "bad status: b'2000'"),
    (parse_response_line, (b'HTTP/1.1 200 O\x00K',), 400, "bad reason phrase: b'O\\x00K'"),
    (parse_response_line, (b'HTTP/2.0 200 OK',), 505, "unsupported HTTP version: b'HTTP/2.0'"),
    (parse_response_line, (b'ICY 200 OK',), 400, "bad HTTP version: b'ICY 200 '"),
    (parse_header_name, (b'',), 400, 'empty header name'),
    (parse_header_name, (b' a',), 400, "obs-fold or leading whitespace in header line: b' a'"),
    (parse_header_name, (b'a ',), 400, "whitespace before colon in header name: b'a '"),
    (parse_header_name, (b'a@b',), 400, "bad header name: b'a@b'"),
    (parse_content_length, (b'1' * 17,), 400, f"content-length too long: {b'1' * 16!r}..."),
    (parse_content_length, (b'1 1',), 400, "bad content-length: b'1 1'"),
    (parse_transfer_encoding, (b'',), 400, 'empty transfer-encoding'),
    (parse_transfer_encoding, (b'gzip',), 501, "unsupported transfer-encoding: b'gzip'"),
    (parse_range, (b'bytes=0-1,2-3',), 400, "bad range: b'bytes=0-1,2-3'"),
    (parse_content_range, (b'bytes 0-5/5',), 400, "bad content-range: b'bytes 0-5/5'"),
    (parse_host, (b'a@b',), 400, "bad host: b'a@b'"),
    (parse_headers, (MANY_FIELDS,), 431, 'too many header fields: 101 > 100'),
    (parse_headers, (b'a: 1\r\nb: 2', False, 1), 431, 'too many header fields: 2 > 1'),
    (parse_headers, (b'a: \x00',), 400, "bad byte in header block: b'\\x00'"),
    (parse_headers, (b'a',), 400, "header line without a colon: b'a'"),
    (parse_headers, (b'a b: c',), 400, "bad header name: b'a b'"),
    (parse_headers, (b'host: a\r\nhost: a',), 400, "duplicate header: 'host'"),
    (parse_headers, (b'content-length: 1\r\ntransfer-encoding: chunked',), 400, (
        'cannot have both content-length and transfer-encoding headers'
    )),
    (parse_headers, (b'content-range: bytes 0-1/2',), 400, (
        "request cannot include a 'content-range' header"
    )),
    (parse_headers, (b'content-length: x',), 400, "bad content-length: b'x'"),
    (parse_headers, (b'transfer-encoding: gzip',), 501, "unsupported transfer-encoding: b'gzip'"),
    (parse_headers, (b'host: a b',), 400, "bad host: b'a b'"),
    (parse_headers, (b'content-range: bytes 1-0/5', True), 400, (
        "bad content-range: b'bytes 1-0/5'"
    )),
    (parse_trailer_line, (b'a b: c',), 400, "bad header name: b'a b'"),
    (parse_trailer_line, (b'abc',), 400, "header line without a colon: b'abc'"),
    (parse_trailer_line, (b'a: \x7f',), 400, "bad byte in header block: b'\\x7f'"),
    (parse_chunk_size, (b'1' * 17,), 400, f"chunk_size is too long: {b'1' * 16!r}..."),
    (parse_chunk_size, (b'0x5',), 400, "bad chunk_size: b'0x5'"),
    (parse_chunk_size, (b'1000001',), 400, 'need chunk_size <= 16777216; got 16777217'),
    (parse_chunk_extension, (b';k=v;',), 400, "bad chunk extension: b';k=v;'"),
    (parse_chunk, (b'x;k=v',), 400, "bad chunk_size: b'x'"),
    (parse_chunk, (b'5;k="v',), 400, "bad chunk extension: b';k=\"v'"),
    (parse_chunk, (b'1000001',), 400, 'need chunk_size <= 16777216; got 16777217'),
]


@pytest.mark.parametrize(
    'parser, args, status, message',
    PARSER_ERRORS,
    ids=[f'{row[0].__name__}-{i}' for (i, row) in enumerate(PARSER_ERRORS)],
)
def test_parser_errors(parser, args, status, message):
    refused(status, message, parser, *args)


def test_parser_errors_cover_every_parser():
    tested = {row[0].__name__ for row in PARSER_ERRORS}
    # these never raise: the first two answer None, parse_tokens() takes a str
    quiet = {'parse_request_range', 'parse_authority', 'parse_tokens'}
    assert tested | quiet == {n for n in base.__all__ if n.startswith('parse_')}


PROGRAM_ERRORS = [
    (Range, (5, 5)),
    (ContentRange, (0, 8, 7)),
    (Range(5, 15).content_range, (5,)),  # unsatisfiable: the app answers 416
    (render_headers, ({'Foo': 'a'},)),
    (render_request, ('CONNECT', '/', {})),
    (render_response, (99, 'OK', {})),
    (render_chunk_extension, (('a b', 'v'),)),
    (format_chunk, ((('k', 'a\r\n'), b''),)),
]


@pytest.mark.parametrize('func, args', PROGRAM_ERRORS)
def test_program_errors_stay_value_errors(func, args):
    # A bad value from the program is not a peer's fault: never a ParseError (a 400).
    with pytest.raises(ValueError) as info:
        func(*args)
    assert type(info.value) is ValueError


def test_content_too_large():
    e = base.content_too_large('body too large: 6 > 5')
    assert type(e) is ParseError
    assert (str(e), e.status, e.reason) == ('body too large: 6 > 5', 413, REASONS[413])


def test_parse_request_range():
    # RFC 9110 section 14.2: what the server does not take is ignored, never an error.
    assert base.parse_request_range(b'bytes=0-1') == Range(0, 2)
    assert base.parse_request_range('bytes=-5') == Range(-5, None)
    assert base.parse_request_range(b'bytes=0-1,2-3') is None
    assert base.parse_request_range('items=0-1') is None
    assert base.parse_request_range('bytes=\u20ac') is None  # not latin-1
    assert base.parse_request_range(b'bytes=\xff') is None


# (parser, the statuses it may answer with, valid inputs to mutate)
PARSER_STATUSES = [
    (parse_method, {400, 501}, [b'GET', b'OPTIONS']),
    (parse_version, {400, 505}, [b'HTTP/1.1']),
    (parse_uri, {400}, [b'/a/b?c=d', b'http://h:80/a?b', b'/%20/']),
    (
        parse_request_line,
        {400, 414, 501, 505},
        [b'GET /a/b?c HTTP/1.1', b'OPTIONS * HTTP/1.1', b'PUT http://h/ HTTP/1.0'],
    ),
    (parse_response_line, {400, 505}, [b'HTTP/1.1 200 OK', b'HTTP/1.0 404 Not Found']),
    (parse_header_name, {400}, [b'Content-Type']),
    (
        parse_headers,
        {400, 431, 501},
        [b'Host: a\r\nContent-Length: 5\r\nRange: bytes=0-1', b'transfer-encoding: chunked'],
    ),
    (
        lambda src: parse_headers(src, True, 3),
        {400, 431, 501},
        [b'content-range: bytes 0-1/2\r\ncontent-length: 2', b'a: 1\r\nA: 2'],
    ),
    (parse_content_length, {400}, [b'0123']),
    (parse_transfer_encoding, {400, 501}, [b'chunked']),
    (parse_range, {400}, [b'bytes=0-99', b'bytes=-5', b'bytes=5-']),
    (base.parse_request_range, set(), [b'bytes=0-99', b'bytes=-5']),
    (parse_content_range, {400}, [b'bytes 0-1/2', b'bytes */5', b'bytes 0-1/*']),
    (parse_host, {400}, [b'example.com:80', b'[::1]:8080', b'a%20b']),
    (parse_authority, set(), [b'http://h:1/a', b'https://[::1]/']),
    # 431: a CRLF inside the line, which the reader never passes
    (parse_trailer_line, {400, 431}, [b'Expires: never']),
    (parse_chunk_size, {400}, [b'1e', b'005']),
    (parse_chunk_extension, {400}, [b';k=v', b' ; k = "a \\"b"']),
    (parse_chunk, {400}, [b'5;k=v', b'0']),
]

# bytes that look like HTTP, so random input gets past the first checks
FRAGMENTS = st.sampled_from([
    b'GET', b'OPTIONS', b'BREW', b' ', b'/', b'//', b'.', b'..', b'?', b'#', b'%', b'%2', b'*',
    b'HTTP/1.1', b'HTTP/2.0', b'http://h', b':', b'@', b'[', b']', b'\r\n', b'\r', b'\n',
    b'\t', b'\x00', b'\x7f', b'\xe9', b'a', b'A', b'0', b'5', b'f', b'200', b'OK',
    b'content-length', b'transfer-encoding', b'chunked', b'host', b'range',
    b'content-range', b'bytes', b'bytes=', b'-', b',', b';', b'=', b'"', b'\\',
    b'1000001', b'9' * 17,
])


@st.composite
def mutants(draw, seeds):
    """A valid input with a slice of it repeated, or replaced by random or HTTP-ish bytes."""
    seed = draw(st.sampled_from(seeds))
    i = draw(st.integers(0, len(seed)))
    j = draw(st.integers(i, len(seed)))
    if draw(st.booleans()):
        return seed[:j] + seed[i:]
    return seed[:i] + draw(st.binary(max_size=4) | FRAGMENTS) + seed[j:]


@pytest.mark.parametrize(
    'parser, statuses, seeds',
    PARSER_STATUSES,
    ids=[f'{i}-{row[0].__name__}' for (i, row) in enumerate(PARSER_STATUSES)],
)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_parsers_raise_only_parse_error(parser, statuses, seeds, data):
    src = data.draw(
        st.binary(max_size=200) | st.lists(FRAGMENTS, max_size=24).map(b''.join) | mutants(seeds)
    )
    try:
        parser(src)
    except Exception as e:
        # exactly ParseError: never a plain ValueError, UnicodeDecodeError, IndexError...
        assert type(e) is ParseError, repr(e)
        assert e.status in statuses and e.reason == REASONS[e.status], repr(e)


# -------------------------------------------------------------------------
# Renderers: strict and canonical output (decision 2).

RENDER_HEADERS = [
    ({}, ''),
    ({'a': 'b'}, '\r\na: b'),
    ({'b': 2, 'a': '1'}, '\r\na: 1\r\nb: 2'),
    ({'content-length': 17}, '\r\ncontent-length: 17'),
    ({'range': Range(0, 5)}, '\r\nrange: bytes=0-4'),
    ({'content-range': ContentRange(0, 5, 9)}, '\r\ncontent-range: bytes 0-4/9'),
    ({"!#$%&'*+-.^_`|~09az": 'v'}, "\r\n!#$%&'*+-.^_`|~09az: v"),
    ({'x' * 100: 'v'}, '\r\n' + 'x' * 100 + ': v'),
]


@pytest.mark.parametrize('headers, text', RENDER_HEADERS)
def test_render_headers_good(headers, text):
    assert render_headers(headers) == text


RENDER_HEADERS_BAD = [
    ([], TypeError, "headers: need a <class 'dict'>; got a <class 'list'>: []"),
    ({1: 'a'}, TypeError, "header name: need a <class 'str'>; got a <class 'int'>: 1"),
    ({b'a': 'a'}, TypeError, "header name: need a <class 'str'>; got a <class 'bytes'>: b'a'"),
    ({'': 'a'}, ValueError, "bad header name: ''"),
    ({'Foo': 'a'}, ValueError, "bad header name: 'Foo'"),
    ({'a b': 'a'}, ValueError, "bad header name: 'a b'"),
    ({'a:': 'a'}, ValueError, "bad header name: 'a:'"),
    ({'\xe9': 'a'}, ValueError, "bad header name: '\xe9'"),
    (
        {'content-length': 1, 'transfer-encoding': 'chunked'},
        ValueError,
        'cannot have both content-length and transfer-encoding headers',
    ),
    ({f'h{i}': 'v' for i in range(101)}, ValueError, 'need len(headers) <= 100; got 101'),
]


@pytest.mark.parametrize('headers, exc, message', RENDER_HEADERS_BAD)
def test_render_headers_bad(headers, exc, message):
    raises(exc, message, render_headers, headers)
    raises(exc, message, render_request, 'GET', '/', headers)
    raises(exc, message, render_response, 200, 'OK', headers)


def test_render_headers_max_count():
    headers = {f'h{i:03d}': 'v' for i in range(100)}
    text = render_request('GET', '/', headers).decode()
    assert text.count('\r\n') == 102


RENDER_REQUEST = [
    (('GET', '/', {}), b'GET / HTTP/1.1\r\n\r\n'),
    (('PATCH', '/a?b', {'a': 1}), b'PATCH /a?b HTTP/1.1\r\na: 1\r\n\r\n'),
    (('OPTIONS', '*', {}), b'OPTIONS * HTTP/1.1\r\n\r\n'),
    (('PUT', '/x', {'b': 'y', 'a': 'x'}), b'PUT /x HTTP/1.1\r\na: x\r\nb: y\r\n\r\n'),
    (('GET', '/', {'a': ''}), b'GET / HTTP/1.1\r\na: \r\n\r\n'),
    (('GET', '/', {'a': 'b\tc'}), b'GET / HTTP/1.1\r\na: b\tc\r\n\r\n'),
    (('GET', '/', {'a': 'b  c'}), b'GET / HTTP/1.1\r\na: b  c\r\n\r\n'),
    (('GET', '/', {'a': 'b: \tc'}), b'GET / HTTP/1.1\r\na: b: \tc\r\n\r\n'),
    (('GET', '/', {'a': '\xe9'}), b'GET / HTTP/1.1\r\na: \xe9\r\n\r\n'),
    (('GET', '/', {'a': None}), b'GET / HTTP/1.1\r\na: None\r\n\r\n'),
]


@pytest.mark.parametrize('args, preamble', RENDER_REQUEST)
def test_render_request_good(args, preamble):
    assert render_request(*args) == preamble


RENDER_REQUEST_BAD = [
    ((1, '/', {}), TypeError, "method: need a <class 'str'>; got a <class 'int'>: 1"),
    (('get', '/', {}), ValueError, "bad method: 'get'"),
    (('CONNECT', '/', {}), ValueError, "bad method: 'CONNECT'"),
    (('GET', b'/', {}), TypeError, "uri: need a <class 'str'>; got a <class 'bytes'>: b'/'"),
    (('GET', '', {}), ValueError, "bad uri: ''"),
    (('GET', '/a b', {}), ValueError, "bad uri: '/a b'"),
    (('GET', '/\r\n', {}), ValueError, "bad uri: '/\\r\\n'"),
    (('GET', '/\xe9', {}), ValueError, "bad uri: '/\xe9'"),
    (('GET', '/', {'a': ' x'}), ValueError, "bad header value: 'a': ' x'"),
    (('GET', '/', {'a': 'x '}), ValueError, "bad header value: 'a': 'x '"),
    (('GET', '/', {'a': '\tx'}), ValueError, "bad header value: 'a': '\\tx'"),
    (('GET', '/', {'a': ' '}), ValueError, "bad header value: 'a': ' '"),
    (('GET', '/', {'a': 'x\r\nb: y'}), ValueError, "bad header value: 'a': 'x\\r\\nb: y'"),
    (('GET', '/', {'a': 'x\n'}), ValueError, "bad header value: 'a': 'x\\n'"),
    (('GET', '/', {'a': 'x\x00'}), ValueError, "bad header value: 'a': 'x\\x00'"),
    (('GET', '/', {'a': 'x\x7f'}), ValueError, "bad header value: 'a': 'x\\x7f'"),
    (('GET', '/', {'a': '\u20ac'}), ValueError, "a: not latin-1: '\u20ac'"),
]


@pytest.mark.parametrize('args, exc, message', RENDER_REQUEST_BAD)
def test_render_request_bad(args, exc, message):
    raises(exc, message, render_request, *args)


RENDER_RESPONSE = [
    ((200, 'OK', {}), b'HTTP/1.1 200 OK\r\n\r\n'),
    ((100, 'Continue', {}), b'HTTP/1.1 100 Continue\r\n\r\n'),
    ((599, 'x', {'a': 'b'}), b'HTTP/1.1 599 x\r\na: b\r\n\r\n'),
    ((404, 'Not\tFound \xe9', {}), b'HTTP/1.1 404 Not\tFound \xe9\r\n\r\n'),
]


@pytest.mark.parametrize('args, preamble', RENDER_RESPONSE)
def test_render_response_good(args, preamble):
    assert render_response(*args) == preamble


RENDER_RESPONSE_BAD = [
    ((200.0, 'OK', {}), TypeError, "status: need a <class 'int'>; got a <class 'float'>: 200.0"),
    (('200', 'OK', {}), TypeError, "status: need a <class 'int'>; got a <class 'str'>: '200'"),
    ((99, 'OK', {}), ValueError, 'need 100 <= status <= 599; got 99'),
    ((600, 'OK', {}), ValueError, 'need 100 <= status <= 599; got 600'),
    ((200, b'OK', {}), TypeError, "reason: need a <class 'str'>; got a <class 'bytes'>: b'OK'"),
    ((200, '', {}), ValueError, "bad reason: ''"),
    ((200, ' OK', {}), ValueError, "bad reason: ' OK'"),
    ((200, 'OK ', {}), ValueError, "bad reason: 'OK '"),
    ((200, 'O\r\nK', {}), ValueError, "bad reason: 'O\\r\\nK'"),
    ((200, '\u20ac', {}), ValueError, "reason: not latin-1: '\u20ac'"),
    ((200, 'OK', {'a': 'x\r\n'}), ValueError, "bad header value: 'a': 'x\\r\\n'"),
]


@pytest.mark.parametrize('args, exc, message', RENDER_RESPONSE_BAD)
def test_render_response_bad(args, exc, message):
    raises(exc, message, render_response, *args)


def test_render_every_byte():
    for b in ALL_BYTES:
        c = chr(b)
        # header name
        name = 'a' + c + 'b'
        if b in LOWER_TCHAR:
            assert render_headers({name: 'v'}) == f'\r\n{name}: v'
        else:
            raises(ValueError, f'bad header name: {name!r}', render_headers, {name: 'v'})
        # header value: inside, leading and trailing
        ok = b in FIELD_CONTENT
        for value in ('x' + c + 'y', c + 'y', 'x' + c):
            edge = value[0] == c or value[-1] == c
            if ok and not (edge and c in ' \t'):
                want = f'GET / HTTP/1.1\r\na: {value}\r\n\r\n'.encode('latin-1')
                assert render_request('GET', '/', {'a': value}) == want
            else:
                msg = f'bad header value: {"a"!r}: {value!r}'
                raises(ValueError, msg, render_request, 'GET', '/', {'a': value})
        # reason phrase
        reason = 'O' + c + 'K'
        if ok:
            assert render_response(200, reason, {}) == f'HTTP/1.1 200 {reason}\r\n\r\n'.encode(
                'latin-1'
            )
        else:
            raises(ValueError, f'bad reason: {reason!r}', render_response, 200, reason, {})
        # request uri
        uri = '/' + c
        if b in VCHAR:
            assert render_request('GET', uri, {}) == f'GET {uri} HTTP/1.1\r\n\r\n'.encode()
        else:
            raises(ValueError, f'bad uri: {uri!r}', render_request, 'GET', uri, {})


def test_render_value_types():
    headers = {'a': 17, 'b': Range(0, 2), 'c': ContentRange(0, 2, 5), 'd': 1.5}
    assert render_request('GET', '/', headers) == (
        b'GET / HTTP/1.1\r\na: 17\r\nb: bytes=0-1\r\nc: bytes 0-1/5\r\nd: 1.5\r\n\r\n'
    )

    class Evil:
        def __str__(self):
            return 'x\r\nset-cookie: y'

    class Sneaky:  # what is checked is what is sent: str(value)
        def __format__(self, spec):
            return 'x\r\nset-cookie: y'

        def __str__(self):
            return 'x'

    msg = "bad header value: 'a': 'x\\r\\nset-cookie: y'"
    raises(ValueError, msg, render_request, 'GET', '/', {'a': Evil()})
    assert render_request('GET', '/', {'a': Sneaky()}) == b'GET / HTTP/1.1\r\na: x\r\n\r\n'


def test_render_response_is_latin1():
    assert render_response(200, 'OK', {'x': '\xff'}) == b'HTTP/1.1 200 OK\r\nx: \xff\r\n\r\n'


RENDER_CHUNK_EXTENSION = [
    (None, ''),
    (('k', 'v'), ';k=v'),
    (('Key', "!#$%&'*+-.^_`|~"), ";Key=!#$%&'*+-.^_`|~"),
    (('k', ''), ';k=""'),
    (('k', 'a b'), ';k="a b"'),
    (('k', 'a"b\\c'), ';k="a\\"b\\\\c"'),
    (('k', 'a;b=c'), ';k="a;b=c"'),
    (('k', '\t\xe9'), ';k="\t\xe9"'),
]


@pytest.mark.parametrize('extension, text', RENDER_CHUNK_EXTENSION)
def test_render_chunk_extension_good(extension, text):
    assert render_chunk_extension(extension) == text
    if extension is not None:
        assert parse_chunk_extension(text.encode('latin-1')) == extension


RENDER_CHUNK_EXTENSION_BAD = [
    (['k', 'v'], TypeError, "extension: need a <class 'tuple'>; got a <class 'list'>: ['k', 'v']"),
    (('k',), ValueError, 'extension: need a 2-tuple; got a 1-tuple'),
    (('k', 'v', 'w'), ValueError, 'extension: need a 2-tuple; got a 3-tuple'),
    ((1, 'v'), TypeError, "extension name: need a <class 'str'>; got a <class 'int'>: 1"),
    (('k', 1), TypeError, "extension value: need a <class 'str'>; got a <class 'int'>: 1"),
    (('', 'v'), ValueError, "bad chunk extension name: ''"),
    (('a b', 'v'), ValueError, "bad chunk extension name: 'a b'"),
    (('k=', 'v'), ValueError, "bad chunk extension name: 'k='"),
    (('k', 'a\r\n'), ValueError, "bad chunk extension value: 'a\\r\\n'"),
    (('k', '\x00'), ValueError, "bad chunk extension value: '\\x00'"),
    (('k', '\x7f'), ValueError, "bad chunk extension value: '\\x7f'"),
    (('k', '\u20ac'), ValueError, "extension value: not latin-1: '\u20ac'"),
]


@pytest.mark.parametrize('extension, exc, message', RENDER_CHUNK_EXTENSION_BAD)
def test_render_chunk_extension_bad(extension, exc, message):
    raises(exc, message, render_chunk_extension, extension)
    raises(exc, message, format_chunk, (extension, b'x'))


def test_render_chunk_extension_every_byte():
    for b in ALL_BYTES:
        c = chr(b)
        name = 'a' + c
        if b in TCHAR:
            assert render_chunk_extension((name, 'v')) == f';{name}=v'
        else:
            msg = f'bad chunk extension name: {name!r}'
            raises(ValueError, msg, render_chunk_extension, (name, 'v'))
        value = 'x' + c
        if b in TCHAR:
            assert render_chunk_extension(('a', value)) == f';a={value}'
        elif b in FIELD_CONTENT:
            text = render_chunk_extension(('a', value))
            assert text[:4] == ';a="' and text[-1] == '"'
            assert parse_chunk_extension(text.encode('latin-1')) == ('a', value)
        else:
            msg = f'bad chunk extension value: {value!r}'
            raises(ValueError, msg, render_chunk_extension, ('a', value))


FORMAT_CHUNK = [
    ((None, b''), b'0\r\n'),
    ((None, b'hello'), b'5\r\n'),
    ((None, b'x' * 255), b'ff\r\n'),
    ((('k', 'v'), b'x' * 16), b'10;k=v\r\n'),
    ((('k', 'a b'), b''), b'0;k="a b"\r\n'),
    ((('k', '\xe9'), b'x'), b'1;k="\xe9"\r\n'),
]


@pytest.mark.parametrize('chunk, line', FORMAT_CHUNK)
def test_format_chunk(chunk, line):
    assert format_chunk(chunk) == line
    assert parse_chunk(line[:-2]) == (len(chunk[1]), chunk[0])


def test_caches_are_bounded():
    from degu import _parse

    names = [f'x-cache-{i}' for i in range(2 * _parse._NAME_CACHE_MAX)]
    block = '\r\n'.join(f'{n}: v' for n in names).encode()
    for i in range(0, len(names), 100):
        lines = block.split(b'\r\n')[i : i + 100]
        assert len(parse_headers(b'\r\n'.join(lines))) == len(lines)
    assert len(_parse._NAME_CACHE) <= _parse._NAME_CACHE_MAX
    for i in range(0, len(names), 100):
        headers = {n: 'v' for n in names[i : i + 100]}
        assert render_headers(headers).count('\r\n') == len(headers)
    assert len(_parse._GOOD_NAMES) <= _parse._GOOD_NAMES_MAX
    reasons = [b'HTTP/1.1 200 r%d' % i for i in range(100)]
    assert [parse_response_line(r)[2] for r in reasons] == [f'r{i}' for i in range(100)]
    assert len(_parse._STATUS_LINE_CACHE) <= _parse._STATUS_LINE_CACHE_MAX


# -------------------------------------------------------------------------
# List values: one field line per item (set-cookie, RFC 6265 section 3).

RENDER_LIST_VALUES = [
    ({'set-cookie': ['a=1']}, '\r\nset-cookie: a=1'),
    ({'set-cookie': ['a=1', 'b=2'], 'a': 'x'}, '\r\na: x\r\nset-cookie: a=1\r\nset-cookie: b=2'),
    ({'x': [1, '', Range(0, 1)]}, '\r\nx: 1\r\nx: \r\nx: bytes=0-0'),
]


@pytest.mark.parametrize('headers, text', RENDER_LIST_VALUES)
def test_render_list_values(headers, text):
    assert render_headers(headers) == text
    preamble = render_response(200, 'OK', headers)
    assert preamble == f'HTTP/1.1 200 OK{text}\r\n\r\n'.encode()


RENDER_LIST_VALUES_BAD = [
    ({'set-cookie': []}, "bad list value for header 'set-cookie': []"),
    ({'content-length': [1, 2]}, "bad list value for header 'content-length': [1, 2]"),
    ({'host': ['a']}, "bad list value for header 'host': ['a']"),
    ({'set-cookie': ['a', 'b\r\nc: d']}, "bad header value: 'set-cookie': 'b\\r\\nc: d'"),
    ({'set-cookie': ['a', ' b']}, "bad header value: 'set-cookie': ' b'"),
    ({'set-cookie': ['a', 'b\x00']}, "bad header value: 'set-cookie': 'b\\x00'"),
    ({'set-cookie': ['\u20ac']}, "set-cookie: not latin-1: '\u20ac'"),
    ({'a': ['ok', '\xe9'], 'b': 'x\u20ac'}, "b: not latin-1: 'x\u20ac'"),
]


@pytest.mark.parametrize('headers, message', RENDER_LIST_VALUES_BAD)
def test_render_list_values_bad(headers, message):
    raises(ValueError, message, render_request, 'GET', '/', headers)
    raises(ValueError, message, render_response, 200, 'OK', headers)


@pytest.mark.parametrize('value, tokens', [
    ('close', ['close']),
    ('Keep-Alive, Upgrade', ['keep-alive', 'upgrade']),
    (' close ,\tTE', ['close', 'te']),
    ('a,,b', ['a', '', 'b']),
    ('', ['']),
])
def test_parse_tokens(value, tokens):
    assert base.parse_tokens(value) == tokens


def test_parse_error_pickles_with_its_status():
    import pickle

    e = pickle.loads(pickle.dumps(ParseError('too long', 414, 'URI Too Long')))
    assert (type(e), str(e), e.status, e.reason) == (ParseError, 'too long', 414, 'URI Too Long')
