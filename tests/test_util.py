"""Tests for degu.util: path shifting, URI rebuilding, one path component."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from degu import util
from degu.misc import mkreq

# (uri, shift) -> (mount, path, relative_uri, absolute_uri)
URI_TABLE = [
    ('/', 0, [], [], '/', '/'),
    ('/?', 0, [], [], '/?', '/?'),
    ('/?q', 0, [], [], '/?q', '/?q'),
    ('/foo', 0, [], ['foo'], '/foo', '/foo'),
    ('/foo', 1, ['foo'], [], '/', '/foo'),
    ('/foo/', 0, [], ['foo', ''], '/foo/', '/foo/'),
    ('/foo/', 1, ['foo'], [''], '/', '/foo/'),
    ('/foo/', 2, ['foo', ''], [], '/', '/foo/'),
    ('/foo/bar', 1, ['foo'], ['bar'], '/bar', '/foo/bar'),
    ('/foo/bar?k=v', 1, ['foo'], ['bar'], '/bar?k=v', '/foo/bar?k=v'),
    ('/foo/bar?', 2, ['foo', 'bar'], [], '/?', '/foo/bar?'),
    ('/a%2Fb/c?x=/y?', 1, ['a%2Fb'], ['c'], '/c?x=/y?', '/a%2Fb/c?x=/y?'),
]


@pytest.mark.parametrize('uri, shift, mount, path, relative, absolute', URI_TABLE)
def test_uri_helpers(uri, shift, mount, path, relative, absolute):
    r = mkreq('GET', uri, shift=shift)
    assert (r.mount, r.path) == (mount, path)
    assert util.relative_uri(r) == relative
    assert util.relative_uri(r) == r.build_proxy_uri()
    assert util.absolute_uri(r) == absolute
    if shift == 0:
        assert util.absolute_uri(r) == uri


def test_shift_path():
    r = mkreq('GET', '/a/b/')
    assert [util.shift_path(r), util.shift_path(r), util.shift_path(r)] == ['a', 'b', '']
    assert (r.mount, r.path) == (['a', 'b', ''], [])
    with pytest.raises(IndexError):
        util.shift_path(r)
    assert (r.mount, r.path) == (['a', 'b', ''], [])


def test_shift_path_duck_typed():
    class Thing:
        def __init__(self):
            self.mount = []
            self.path = ['x']
            self.query = None

    t = Thing()
    assert util.shift_path(t) == 'x'
    assert util.absolute_uri(t) == '/x'
    assert util.relative_uri(t) == '/'


# component -> decoded text, or the exact ValueError message
UNQUOTE_TABLE = [
    ('', ''),
    ('foo', 'foo'),
    ('a+b', 'a+b'),
    ("-._~!$&'()*+,;=:@", "-._~!$&'()*+,;=:@"),
    ('%20', ' '),
    ('%41%42c', 'ABc'),
    ('%2f%2F', '//'),
    ('%2e%2E', '..'),
    ('%00', '\x00'),
    ('caf%C3%A9', 'café'),
    ('caf%c3%a9', 'café'),
    ('%F0%9F%98%80', '\U0001f600'),
    ('%25', '%'),
    ('%2525', '%25'),
    ('%', "bad percent-escape in path component: '%'"),
    ('%2', "bad percent-escape in path component: '%2'"),
    ('a%g0', "bad percent-escape in path component: 'a%g0'"),
    ('a%0g', "bad percent-escape in path component: 'a%0g'"),
    ('%%41', "bad percent-escape in path component: '%%41'"),
    ('%C3', "path component not UTF-8: '%C3'"),
    ('%C3%28', "path component not UTF-8: '%C3%28'"),
    ('%FF', "path component not UTF-8: '%FF'"),
    ('%C0%AF', "path component not UTF-8: '%C0%AF'"),  # overlong '/'
    ('%ED%A0%80', "path component not UTF-8: '%ED%A0%80'"),  # a surrogate
    ('café', "path component not ASCII: 'café'"),
    ('caf%C3%A9é', "path component not ASCII: 'caf%C3%A9é'"),
    ('x' * 70 + '%', f"bad percent-escape in path component: {'x' * 64!r}"),
]


@pytest.mark.parametrize('component, expected', UNQUOTE_TABLE)
def test_unquote(component, expected):
    if expected.startswith(('bad percent', 'path component')):
        with pytest.raises(ValueError) as e:
            util.unquote(component)
        assert str(e.value) == expected
    else:
        assert util.unquote(component) == expected


@pytest.mark.parametrize('value', [b'foo', None, 17, ['a']])
def test_unquote_type_error(value):
    with pytest.raises(TypeError) as e:
        util.unquote(value)
    assert str(e.value) == f"component: need a <class 'str'>; got a {type(value)!r}: {value!r}"


QUOTE_TABLE = [
    ('', ''),
    ('foo', 'foo'),
    ('a b', 'a%20b'),
    ('a/b', 'a%2Fb'),
    ('50%', '50%25'),
    ('?#[]', '%3F%23%5B%5D'),
    ('café', 'caf%C3%A9'),
    ("-._~!$&'()*+,;=:@", "-._~!$&'()*+,;=:@"),
]


@pytest.mark.parametrize('name, expected', QUOTE_TABLE)
def test_quote(name, expected):
    assert util.quote(name) == expected
    assert util.unquote(expected) == name


def test_quote_type_error():
    with pytest.raises(TypeError) as e:
        util.quote(b'x')
    assert str(e.value) == "name: need a <class 'str'>; got a <class 'bytes'>: b'x'"


@given(st.text(st.characters(blacklist_categories=('Cs',))))
def test_quote_roundtrip(name):
    quoted = util.quote(name)
    assert '/' not in quoted and '?' not in quoted
    assert util.unquote(quoted) == name


@given(st.text(max_size=20))
def test_unquote_only_value_error(component):
    try:
        result = util.unquote(component)
    except ValueError:
        return
    assert type(result) is str
