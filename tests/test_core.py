"""The two cores: selection, and proof that degu._cparse does what degu._parse does.

* ``CORE`` says which core is active; ``DEGU_PURE=1`` forces pure Python;
  ``DEGU_REQUIRE_C=1`` (CI) fails where the C core would be skipped.
* Differential tests (hypothesis): the same valid, mutated and random
  inputs go to each C function and to its pure-Python reference, which
  must give the same result or raise the same exception with the same
  message, status and reason.  tests/fuzz_core.py runs the same comparison
  in a loop (under the sanitizers, from .ci/fuzz-core).
"""

import os
import random

import pytest
from fuzz_core import (
    CHUNK_BUFFERS,
    CHUNK_LINES,
    HEADER_LINES,
    REQUEST_LINES,
    STATUS_LINES,
    cases,
    compare,
    mutate,
)
from helpers import C_CORE, DIFF, memory_growth, need_c, run_python
from hypothesis import given
from hypothesis import strategies as st

from degu import _parse, base

C = C_CORE
PYTHON = _parse.PYTHON_CORE


# --------------------------------------------------------------------------
# Selection


def test_core_flag():
    assert base.CORE == _parse.CORE
    assert _parse.CORE in ('c', 'python')
    for name in PYTHON:
        if _parse.CORE == 'python':
            assert getattr(_parse, name) is PYTHON[name]
        else:
            assert getattr(_parse, name) is getattr(C, name)


def test_degu_pure_forces_python():
    code = 'import sys, degu.base as b; print(b.CORE, "degu._cparse" in sys.modules)'
    assert run_python(code, DEGU_PURE='1') == 'python False'
    expected = 'c True' if C is not None else 'python False'
    assert run_python(code) == expected
    # The modules that import the functions get the active core's.
    code = 'import degu._io as io, degu.server as s; print(type(io.parse_headers).__name__,'
    code += ' type(s.chunk_end).__name__)'
    kind = 'builtin_function_or_method' if C is not None else 'function'
    assert run_python(code) == f'{kind} {kind}'


def test_required_c_core_is_active():
    # CI sets DEGU_REQUIRE_C=1 for its run with the C core.
    if os.environ.get('DEGU_REQUIRE_C') != '1':
        pytest.skip('DEGU_REQUIRE_C is not set')
    assert C is not None, 'degu._cparse was not built'
    if os.environ.get('DEGU_PURE') != '1':
        assert _parse.CORE == 'c'


@need_c
def test_limits_agree():
    for name in ('MAX_REQUEST_LINE_LEN', 'MAX_HEADER_COUNT', 'MAX_LINE_LEN', 'MAX_CL_LEN',
                 'MAX_CHUNK_SIZE_LEN', 'MAX_IO_SIZE'):
        assert getattr(C, name) == getattr(_parse, name), name


@need_c
@pytest.mark.parametrize('name', sorted(PYTHON))
def test_same_signature(name):
    import inspect

    def plain(func):
        return [(p.name, p.kind, p.default) for p in inspect.signature(func).parameters.values()]

    assert plain(getattr(C, name)) == plain(PYTHON[name])
    assert getattr(C, name).__doc__ == f'degu._parse.{name}(), compiled.'


@pytest.mark.parametrize('name', sorted(PYTHON))
def test_core_fixture_swaps_every_reference(core, name):
    from degu import _io, client, server

    assert getattr(core, name) is getattr(_parse, name)
    for module in (base, _io, client, server):
        if name in vars(module):
            assert getattr(module, name) is getattr(core, name)


@need_c
def test_unbound_c_core_says_so():
    code = (
        'import degu._cparse as c\n'
        'try:\n'
        '    c.parse_headers(1)\n'
        'except RuntimeError as e:\n'
        '    print(e)\n'
    )
    assert run_python(code) == (
        'degu._cparse.parse_headers: no reference function; call _bind() first'
    )
    with pytest.raises(ValueError, match='no reference function parse_request_line'):
        C._bind({})
    with pytest.raises(TypeError):
        C._bind([])


# --------------------------------------------------------------------------
# The same answers: tables of edge cases, then random and mutated input


EDGES = [
    ('parse_request_line', (b'GET /a/b/ HTTP/1.1',)),
    ('parse_request_line', (b'GET /%zz HTTP/1.1',)),
    ('parse_request_line', (b'GET /a%2 HTTP/1.1',)),
    ('parse_request_line', (b'GET /a/./b HTTP/1.1',)),
    ('parse_request_line', (b'GET /a/.. HTTP/1.1',)),
    ('parse_request_line', (b'GET /a/.../b HTTP/1.1',)),
    ('parse_request_line', (b'GET //a HTTP/1.1',)),
    ('parse_request_line', (b'GET /?a#b HTTP/1.1',)),
    ('parse_request_line', (b'GET /a?b?c/d HTTP/1.1',)),
    ('parse_request_line', (b'GET / HTTP/1.1 ',)),
    ('parse_request_line', (b'GET  / HTTP/1.1',)),
    ('parse_request_line', (b'GET /' + b'a' * 8200 + b' HTTP/1.1',)),
    ('parse_request_line', (b'GET /' + b'a' * (8192 - 14) + b' HTTP/1.1',)),
    ('parse_request_line', (b'GET /' + b'a' * (8192 - 13) + b' HTTP/1.1',)),
    ('parse_request_line', (bytearray(b'GET / HTTP/1.1'),)),
    ('parse_request_line', ('GET / HTTP/1.1',)),
    ('parse_request_line', ()),
    ('parse_response_line', (b'HTTP/1.1 200 OK',)),
    ('parse_response_line', (b'HTTP/1.1 200',)),
    ('parse_response_line', (b'HTTP/1.1 200 ',)),
    ('parse_response_line', (b'HTTP/1.1 2000',)),
    ('parse_response_line', (b'HTTP/1.1 600 x',)),
    ('parse_response_line', (b'HTTP/1.1 200 a\x7fb',)),
    ('parse_response_line', (b'HTTP/1.1 200 a\x80b',)),
    ('parse_response_line', (b'HTTP/1.1 200 ' + b'x' * 100,)),
    ('parse_headers', (b'',)),
    ('parse_headers', (b'', True, 0)),
    ('parse_headers', (b'a: b', False, 0)),
    ('parse_headers', (b'a: b\r\n',)),
    ('parse_headers', (b'a: b\r\n\r\nc: d',)),
    ('parse_headers', (b'A: 1\r\na: 2',)),
    ('parse_headers', (b'Host: a\r\nHost: b',)),
    ('parse_headers', (b'Content-Length: 1\r\nTransfer-Encoding: chunked',)),
    ('parse_headers', (b'Content-Length: 9999999999999999',)),
    ('parse_headers', (b'Content-Length: 00000000000000000',)),
    ('parse_headers', (b'Content-Length: +5',)),
    ('parse_headers', (b'Transfer-Encoding: gzip',)),
    ('parse_headers', (b'Host: a b',)),
    ('parse_headers', (b'Host: a%4',)),
    ('parse_headers', (b'Host: a:8o',)),
    ('parse_headers', (b'Host: :',)),
    ('parse_headers', (b'Host:',)),
    ('parse_headers', (b'Host: [::1]:8080',)),
    ('parse_headers', (b'Host: [fe80::1.2.3.4]',)),
    ('parse_headers', (b'Host: []',)),
    ('parse_headers', (b'Host: [::1',)),
    ('parse_headers', (b'Host: [::1]x',)),
    ('parse_headers', (b'Host: [::1]:',)),
    ('parse_headers', (b'Host: [::g]',)),
    ('parse_headers', (b'Host: [v1.a:b]:80',)),
    ('parse_headers', (b'Host: [',)),
    ('parse_headers', (b'Range: bytes=0-1', True)),
    ('parse_headers', (b'Host: a b', True)),
    ('parse_headers', (b'Content-Range: bytes 0-1/2',)),
    ('parse_headers', (b'Content-Range: bytes 0-1/2', True)),
    ('parse_headers', (b'X-' + b'n' * 40 + b': v',)),
    ('parse_headers', (b'X-' + b'n' * 30 + b': v',)),  # 32 bytes: the C core's name buffer
    ('parse_headers', (b'X-' + b'n' * 31 + b': v',)),
    ('parse_headers', (b'a : b',)),
    ('parse_headers', (b' a: b',)),
    ('parse_headers', (b'a: b\rc',)),
    ('parse_headers', (b'a: b\nc',)),
    ('parse_headers', (b'a: b', 1)),
    ('parse_headers', (b'a: b', [])),
    ('parse_headers', (b'a: b', False, 2 ** 70)),
    ('parse_headers', (b'a: b', False, 1.5)),
    ('parse_headers', (bytearray(b'a: b'),)),
    ('parse_chunk', (b'',)),
    ('parse_chunk', (b'1000000',)),
    ('parse_chunk', (b'1000001',)),
    ('parse_chunk', (b'ffffffffffffffff',)),
    ('parse_chunk', (b'0000000000000001',)),
    ('parse_chunk', (b'00000000000000001',)),
    ('parse_chunk', (b'0x1',)),
    ('parse_chunk', (b'1_0',)),
    ('parse_chunk', (b' 1',)),
    ('chunk_end', (b'5\r\nhello\r\n', 0, 10)),
    ('chunk_end', (b'5\r\nhello\r\n', 0, 9)),
    ('chunk_end', (b'5\r\nhelloXX', 0, 10)),
    ('chunk_end', (b'5', 0, 1)),
    ('chunk_end', (b'5' * 5000, 0, 5000)),
    ('chunk_end', (b'5' * 5000, 10, 5000)),
    ('chunk_end', (b'0\r\n\r\n', 0, 5)),
    ('chunk_end', (b'0\r\n\r\n', 0, 4)),
    ('chunk_end', (b'0\r\n\r\n', 3, 1)),
    ('chunk_end', (b'0\r\n\r\n', -1, 5)),
    ('chunk_end', (b'0\r\n\r\n', 0, 50)),
    ('chunk_end', (b'0\r\n\r\n', True, 5)),
    ('chunk_end', (b'0\r\n\r\n', 0, 2 ** 70)),
    ('chunk_end', (memoryview(b'0\r\n\r\n'), 0, 5)),
    ('render_request', ('GET', '/', {})),
    ('render_request', ('GET', '/', {'a': 1, 'B': 2})),
    ('render_request', ('GET', '/', {'a': 1, 2: 2})),
    ('render_request', ('GET', '/', {'content-length': 1, 'transfer-encoding': 'chunked'})),
    ('render_request', ('GET', '/', {str(i): i for i in range(101)})),
    ('render_request', ('GET', '/', {str(i): i for i in range(100)})),
    ('render_request', ('GET', '/', {'a': 'b'}, 'x')),
    ('render_request', ('GET', '/\x80', {})),
    ('render_response', (200, 'OK', {})),
    ('render_response', (200, 'OK', {}, '\r\nx: y')),
    ('render_response', (200, 'OK', [])),
    ('render_response', (200, 'OK', None)),
    ('render_response', (200, 'OK', {'a': True})),
    ('render_response', (200, 'OK', {'a': 10 ** 5000})),
    ('render_response', (200, 'OK', {'a': ['1', '2']})),
    ('render_response', (200, 'OK', {'a': ['1', 2, '3']})),
    ('render_response', (200, 'OK', {'a': []})),
    ('render_response', (200, 'OK', {'host': ['a']})),
    ('render_response', (200, 'OK', {'content-length': [1]})),
    ('render_response', (200, 'OK', {'a': ['1', None]})),
    ('render_response', (200, 'OK', {'a': ['1', ' 2']})),
    ('render_response', (200, 'OK', {'a': ('1', '2')})),
    ('render_response', (200, 'OK', {'a': ['x'] * 99, 'b': 'y'})),
    ('render_response', (200, 'OK', {'a': ['x'] * 100, 'b': 'y'})),
    ('render_response', (200, 'OK', {'a': ['x'] * 100})),
    ('render_response', (200, 'OK', {'a': ['x'] * 101})),
    ('render_response', (200, 'OK', {'a': 'caf\xe9', 'b': '\x85'})),
    ('render_response', (200, 'O\tK', {})),
    ('format_chunk', ((None, b''),)),
    ('format_chunk', ((None, b'x' * 4096),)),
    ('format_chunk', ((('k', 'v'), b'x'),)),
    ('format_chunk', ([None, b'x'],)),
    ('format_chunk', ((None, bytearray(b'x')),)),
    ('format_chunk', ((None, 'x'),)),
    ('format_chunk', ((None,),)),
]


@need_c
@pytest.mark.parametrize('name, args', EDGES)
def test_same_answers(name, args):
    compare(PYTHON, C, name, args)


def test_fresh_path_lists(core):
    # The cores remember request lines; each call still gets its own path
    # list, which an app may change (shift_path()).
    line = b'GET /fresh/path?q=1 HTTP/1.1'
    first = core.parse_request_line(line)
    first[2].append('changed')
    second = core.parse_request_line(line)
    assert second == ('GET', '/fresh/path?q=1', ['fresh', 'path'], 'q=1', 'HTTP/1.1')
    assert second[2] is not first[2]
    third = core.parse_request_line(line)
    assert third[2] is not second[2]


@need_c
def test_same_answers_to_keyword_arguments():
    for (name, args, kwargs) in [
        ('parse_headers', (b'a: b',), {'isresponse': True}),
        ('parse_headers', (), {'src': b'a: b', 'max_count': 0}),
        ('render_response', (200, 'OK', {}), {'extra': '\r\nx: y'}),
        ('parse_chunk', (), {'line': b'5'}),
        ('parse_chunk', (), {'nope': b'5'}),
    ]:
        try:
            expected = ('ok', PYTHON[name](*args, **kwargs))
        except Exception as e:  # noqa: BLE001
            expected = ('error', type(e), str(e))
        try:
            got = ('ok', getattr(C, name)(*args, **kwargs))
        except Exception as e:  # noqa: BLE001
            got = ('error', type(e), str(e))
        assert got == expected


def valid_or_mutated(corpus, joiner=None):
    base = st.sampled_from(corpus)
    if joiner is not None:
        base = st.lists(base, max_size=8).map(joiner.join)
    return st.one_of(
        base,
        st.tuples(base, st.integers(0, 2 ** 32)).map(lambda t: mutate(random.Random(t[1]), t[0])),
        st.binary(max_size=80),
    )


@need_c
@DIFF
@given(valid_or_mutated(REQUEST_LINES))
def test_differential_request_line(line):
    compare(PYTHON, C, 'parse_request_line', (line,))


@need_c
@DIFF
@given(valid_or_mutated(STATUS_LINES))
def test_differential_status_line(line):
    compare(PYTHON, C, 'parse_response_line', (line,))


@need_c
@DIFF
@given(valid_or_mutated(HEADER_LINES, b'\r\n'), st.booleans(), st.integers(-1, 10))
def test_differential_headers(block, isresponse, max_count):
    compare(PYTHON, C, 'parse_headers', (block, isresponse))
    compare(PYTHON, C, 'parse_headers', (block, isresponse, max_count))


@need_c
@DIFF
@given(valid_or_mutated(CHUNK_LINES))
def test_differential_chunk_line(line):
    compare(PYTHON, C, 'parse_chunk', (line,))


@need_c
@DIFF
@given(valid_or_mutated(CHUNK_BUFFERS, b''), st.data())
def test_differential_chunk_end(buf, data):
    pos = data.draw(st.integers(0, len(buf)))
    stop = data.draw(st.integers(pos, len(buf)))
    compare(PYTHON, C, 'chunk_end', (buf, pos, stop))
    compare(PYTHON, C, 'chunk_end', (bytearray(buf), pos, stop))


@need_c
@DIFF
@given(st.integers(0, 2 ** 32))
def test_differential_everything(seed):
    # Every function, on the inputs tests/fuzz_core.py makes (renderers too).
    for (name, args) in cases(random.Random(seed)):
        compare(PYTHON, C, name, args)


header_values = st.one_of(
    st.text(st.characters(max_codepoint=0x17F), max_size=12), st.integers(-5, 10 ** 17)
)
header_values = st.one_of(header_values, st.lists(header_values, max_size=4))


@need_c
@DIFF
@given(
    st.dictionaries(st.text("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzA", min_size=1,
                            max_size=12), header_values, max_size=6),
    st.integers(98, 601),
    st.text(st.characters(max_codepoint=0x17F), max_size=12),
    st.text(st.characters(max_codepoint=0x17F), max_size=12),
    st.text(st.characters(min_codepoint=0x1F, max_codepoint=0x81), max_size=12),
)
def test_differential_render(headers, status, reason, extra, uri):
    compare(PYTHON, C, 'render_response', (status, reason, headers))
    compare(PYTHON, C, 'render_response', (status, reason, headers, extra))
    compare(PYTHON, C, 'render_request', ('PUT', uri, headers))


@need_c
def test_no_leak_in_a_loop():
    # Reference counts: thousands of calls down every path (results and
    # errors) leave no object behind.  The inputs repeat, so the bounded
    # caches of the reference are full after the first round.  (One str
    # leaked by each request line parsed makes 25,000 bytes here.)
    rng = random.Random(7)
    inputs = [pair for _ in range(200) for pair in cases(rng)]

    def burst():
        for (name, args) in inputs:
            try:
                getattr(C, name)(*args)
            except Exception:  # noqa: BLE001, S110
                pass

    growth = memory_growth(burst)
    assert growth < 10_000, growth  # bytes (a leak per parse: 25,000)


def test_core_fixture_picks_the_readers_too(core):
    # A 'python' run reads through the Python path alone; a 'c' run tries
    # the scanners first, under DEGU_PURE=1 as well.
    from degu import _io, client, server

    if core.name == 'python':
        expected = (_io._read_request, _io._read_response_head)
    else:
        expected = (_io._scan_request, _io._scan_response_head)
        assert _io.scan_request is not None and _io.scan_response is not None
    assert (_io.read_request, _io.read_response_head) == expected
    assert (server.read_request, client.read_response_head) == expected
    assert (core.read_request, core.read_response_head) == expected
    assert _io._read_request.__module__ == 'degu._io'
