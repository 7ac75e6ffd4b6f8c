"""Small helpers for RGI apps: path shifting, URI rebuilding, path components.

``shift_path``, ``relative_uri`` and ``absolute_uri`` are the original
Degu's helpers, kept for old apps: new code can use ``request.shift_path()``
and ``request.build_proxy_uri()``.  They work on any object with list
``mount`` and ``path`` attributes and a ``query`` attribute.

``unquote`` and ``quote`` deal with one path component; ``build_target``
makes a whole request-target for the client from names and parameters.  The server hands
path components to apps *raw*, still percent-encoded (see doc/decisions.rst,
'Request target'), so that a proxy can rebuild the request-target exactly;
an app that maps components to names (files, keys) decodes each one with
``unquote``, which is strict: a bad escape or bytes that are not UTF-8
raise ``ValueError`` rather than guess.  Decoding each component on its own
keeps ``%2F`` inside a name instead of letting it split the path.
"""

from __future__ import annotations

import re

from ._parse import _TYPE_ERROR

# typing.TYPE_CHECKING without importing typing: see doc/decisions.rst, 'Imports'.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .base import Request

__all__ = ('shift_path', 'relative_uri', 'absolute_uri', 'unquote', 'quote', 'build_target')

#   pchar = unreserved / pct-encoded / sub-delims / ":" / "@"   (RFC 3986 3.3)
# Every character of a raw component is one of these, or starts an escape.
_PCHAR = frozenset(
    'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
    "-._~!$&'()*+,;=:@"
)
#   unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"   (RFC 3986 2.3)
# A query name or value keeps only these: "&", "=", "+" and ";" would split it.
_UNRESERVED = frozenset('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~')
_ESCAPE_RE = re.compile(r'%([0-9A-Fa-f]{2})')
_BAD_ESCAPE_RE = re.compile(r'%(?![0-9A-Fa-f]{2})')


def shift_path(request: Request) -> str:
    """Move ``request.path[0]`` to the end of ``request.mount`` and return it.

    Unlike ``Request.shift_path()``, an empty path raises ``IndexError``.

    >>> from degu.misc import mkreq
    >>> r = mkreq('GET', '/foo/bar')
    >>> shift_path(r)
    'foo'
    >>> (r.mount, r.path)
    (['foo'], ['bar'])
    """
    component = request.path.pop(0)
    request.mount.append(component)
    return component


def _uri(components: list[str], query: str | None) -> str:
    uri = '/' + '/'.join(components)
    if query is None:
        return uri
    return uri + '?' + query


def relative_uri(request: Request) -> str:
    """The URI of the not-yet-routed part: ``path`` and ``query``.

    The same as ``request.build_proxy_uri()``.

    >>> from degu.misc import mkreq
    >>> relative_uri(mkreq('GET', '/foo/bar?k=v', shift=1))
    '/bar?k=v'
    """
    return _uri(request.path, request.query)


def absolute_uri(request: Request) -> str:
    """The whole URI again, from ``mount + path`` and ``query``.

    >>> from degu.misc import mkreq
    >>> absolute_uri(mkreq('GET', '/foo/bar?k=v', shift=1))
    '/foo/bar?k=v'
    """
    return _uri(request.mount + request.path, request.query)


def unquote(component: str) -> str:
    """Percent-decode one raw path component; strict.

    Every ``%`` must start an escape of two hex digits, the component must be
    ASCII (as every raw component the server hands out is), and the decoded
    bytes must be UTF-8; otherwise ``ValueError``.  ``+`` stays ``+`` (that
    rule belongs to HTML forms, not to paths), and ``%2F`` gives a ``/``
    inside the name, which callers that map names to files must refuse.

    >>> unquote('caf%C3%A9%20au%20lait')
    'café au lait'
    >>> unquote('a%2Fb')
    'a/b'
    >>> unquote('100%')
    Traceback (most recent call last):
      ...
    ValueError: bad percent-escape in path component: '100%'
    """
    if type(component) is not str:
        raise TypeError(_TYPE_ERROR.format('component', str, type(component), component))
    if '%' not in component:
        if not component.isascii():
            raise ValueError(f'path component not ASCII: {component[:64]!r}')
        return component
    if _BAD_ESCAPE_RE.search(component):
        raise ValueError(f'bad percent-escape in path component: {component[:64]!r}')
    if not component.isascii():
        raise ValueError(f'path component not ASCII: {component[:64]!r}')
    raw = _ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 16)), component).encode('latin-1')
    try:
        return raw.decode('utf-8')
    except UnicodeDecodeError:
        raise ValueError(f'path component not UTF-8: {component[:64]!r}') from None


def quote(name: str) -> str:
    """Percent-encode *name* into one path component; ``unquote`` reverses it.

    Everything but the RFC 3986 ``pchar`` characters is escaped, ``%`` and
    ``/`` included, as UTF-8 bytes.

    >>> quote('café au lait/2')
    'caf%C3%A9%20au%20lait%2F2'
    >>> unquote(quote('50% off'))
    '50% off'
    """
    if type(name) is not str:
        raise TypeError(_TYPE_ERROR.format('name', str, type(name), name))
    if _PCHAR.issuperset(name):
        return name
    out = []
    for ch in name:
        if ch in _PCHAR:
            out.append(ch)
        else:
            out.extend(f'%{b:02X}' for b in ch.encode('utf-8'))
    return ''.join(out)


def _escape(text: str, safe: frozenset[str]) -> str:
    if safe.issuperset(text):
        return text
    return ''.join(
        ch if ch in safe else ''.join(f'%{b:02X}' for b in ch.encode('utf-8')) for ch in text
    )


def _query_text(name: str, value: object) -> str:
    if type(value) is int:
        value = str(value)
    elif type(value) is not str:
        raise TypeError(_TYPE_ERROR.format(f'query[{name!r}]', (str, int), type(value), value))
    return f'{_escape(name, _UNRESERVED)}={_escape(value, _UNRESERVED)}'


def build_target(
    segments: 'list[str] | tuple[str, ...]',
    query: 'dict[str, str | int] | list[tuple[str, str | int]] | None' = None,
) -> str:
    """A request-target (``/path?query``) from path *segments* and *query* parameters.

    Each segment is one path component, percent-encoded as UTF-8 like
    ``quote()`` does (so a ``/`` inside a name stays inside it).  An empty
    segment is allowed only last (a trailing slash); ``.`` and ``..`` are
    refused, as servers resolve or refuse them.  *query* is a ``dict`` or a
    list of ``(name, value)`` pairs (for a repeated name); values are
    ``str`` or ``int``, and names and values keep only the RFC 3986
    unreserved characters, all else percent-encoded (a space is ``%20``,
    never ``+``).  The client needs such a target: it sends the URI as given.

    >>> build_target(['files', 'café au lait.txt'])
    '/files/caf%C3%A9%20au%20lait.txt'
    >>> build_target(['search', ''], {'q': 'a&b=c', 'page': 2})
    '/search/?q=a%26b%3Dc&page=2'
    >>> build_target([])
    '/'
    """
    if type(segments) not in (list, tuple):
        raise TypeError(_TYPE_ERROR.format('segments', (list, tuple), type(segments), segments))
    last = len(segments) - 1
    parts = []
    for (i, segment) in enumerate(segments):
        if type(segment) is not str:
            raise TypeError(_TYPE_ERROR.format(f'segments[{i}]', str, type(segment), segment))
        if segment in ('.', '..') or (segment == '' and i != last):
            raise ValueError(f'bad path segment: segments[{i}] is {segment!r}')
        parts.append(_escape(segment, _PCHAR))
    target = '/' + '/'.join(parts)
    if query is None:
        return target
    if isinstance(query, dict):
        items = list(query.items())
    elif isinstance(query, (list, tuple)):
        items = list(query)
        for item in items:
            if type(item) is not tuple or len(item) != 2:
                raise TypeError(f'query: need (name, value) pairs; got {item!r}'[:200])
    else:
        raise TypeError(_TYPE_ERROR.format('query', (dict, list, tuple), type(query), query))
    for (name, _) in items:
        if type(name) is not str or not name:
            raise ValueError(f'query: need a non-empty str name; got {name!r}'[:200])
    if not items:
        return target
    return target + '?' + '&'.join(_query_text(name, value) for (name, value) in items)
