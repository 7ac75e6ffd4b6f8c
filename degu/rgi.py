"""``Validator``: middleware that checks server, middleware and app against RGI.

Wrap an app in ``Validator(app)`` in tests: every request the server hands
in, and every response the app hands back, is checked against the RGI
contract as our engine implements it (doc/rgi.rst, doc/degu.rgi.rst).  A
violation raises ``TypeError`` or ``ValueError`` whose message names the
offending value by its path (``request.headers['content-length']``,
``response.body``...), so the server answers 500 and logs exactly what broke.
It is slow; do not use it in production.

It checks degu's own server as an outsider would: body objects are
recognised by class name (``Body``, ``ChunkedBody``, ``BodyIter``,
``ChunkedBodyIter``, or a subclass) and then by their attributes.  Only the
framing rules and the method check come from the engine (``degu._framing``,
``degu._parse``, pure functions), so the Validator and the server never
disagree about which responses have content or which methods exist.

The rules, in the order they are checked::

    on_connect   session valid, session.requests == 0; the app's own
                 on_connect (if any) must return a bool
    before app   session, api, request (method, uri, mount, path, query,
                 headers, body) as the server produces them; body READY;
                 range, if present, a Range: Range(start, stop) or the
                 suffix Range(-length, None)
    app call     exceptions pass through unchanged
    after app    uri == '/' + '/'.join(mount + path) [+ '?' + query] still;
                 request body CONSUMED, except an untouched body under a
                 status >= 400 (the app refused it: the server drains or
                 closes), an untouched empty Body (content-length: 0),
                 or a body sent straight back as the response
    response     (status, reason, headers, body): status 200..599 (a 1xx is
                 an interim response, never the final one), then the
                 framing rules below

Response framing, by request method and status.  The server frames every
response that may carry content itself (a ``None`` body goes out with
``content-length: 0``, RFC 9110 section 8.6), so an app only has to keep
what it sets consistent::

    HEAD, 2xx but 204  body None; content-length or transfer-encoding
                       required: what a GET would get (RFC 9110 9.3.2)
    HEAD, other        body None; framing headers optional
    204                body None; no content-length, no transfer-encoding
    304                body None; content-length optional
    other, None body   no transfer-encoding; content-length absent or 0
    bytes              at most 16 MiB; content-length, if given, == len(body)
    Body, BodyIter     chunked False, state READY, no transfer-encoding;
                       content_length an int equal to a given
                       content-length, or None for a Body read until its
                       connection closed (sent chunked)
    ChunkedBody(Iter)  chunked True, state READY, content_length None (or
                       no such attribute), no content-length header
"""

from __future__ import annotations

import re

from ._framing import has_no_content
from ._parse import _TYPE_ERROR, _TYPE_ERROR2, _check_method

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ._types import App as App
    from ._types import ConnectApp as ConnectApp
    from ._types import ResponseBody as ResponseBody
    from ._types import ResponseTuple as ResponseTuple

__all__ = ('Validator',)

# The types of an RGI app and its response, for annotations (doc/rgi.rst,
# 'Type hints').  Made on first use by __getattr__(): they need typing, which
# costs several times what `import degu` does (doc/decisions.rst, 'Imports').
_TYPES = ('App', 'ConnectApp', 'ResponseBody', 'ResponseTuple')


def __getattr__(name: str) -> object:
    if name in _TYPES:
        from . import _types

        return getattr(_types, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')

MAX_LENGTH = 9999999999999999  # largest content-length (16 digits)
MAX_IO_SIZE = 16 * 1024 * 1024  # 16 MiB: largest bytes body the engine sends
BODY_READY = 0
BODY_STARTED = 1
BODY_CONSUMED = 2
BODY_ERROR = 3

_API_FIELDS = ('Body', 'ChunkedBody', 'BodyIter', 'ChunkedBodyIter', 'Range', 'ContentRange')
_LENGTH_BODIES = frozenset(['Body', 'BodyIter'])
_CHUNKED_BODIES = frozenset(['ChunkedBody', 'ChunkedBodyIter'])
_SINGLE = frozenset(['content-length', 'transfer-encoding', 'host', 'range', 'content-range'])

# Header names: lower-case RFC 9110 tokens (the engine folds input, and
# refuses anything else on output).
_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+")
# Header values: no control character but HTAB, no surrounding whitespace
# (the parser strips it), latin-1 only (obs-text, RFC 9110 section 5.5).
_BAD_VALUE_RE = re.compile(r'[\x00-\x08\x0a-\x1f\x7f]|^[ \t]|[ \t]$|[^\x00-\xff]')
# Raw path components (RFC 3986 section 3.3): pchar, every % starting a
# two-hex-digit escape.
_COMPONENT_RE = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})*")
_QUERY_RE = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*")
_CONTENT_RANGE_RE = re.compile(r'bytes [0-9]+-[0-9]+/(?:[0-9]+|\*)|bytes \*/[0-9]+')


def _type_error(label, need, value):
    return TypeError(_TYPE_ERROR.format(label, need, type(value), value))


def _attr(obj, name, label):
    """``obj.name``; a missing attribute is a ``ValueError`` naming *label*."""
    try:
        return getattr(obj, name)
    except AttributeError as e:
        raise ValueError(f'{label}: {e}') from None


def _check_int(label, value, low=0, high=MAX_LENGTH):
    if type(value) is not int:
        raise _type_error(label, int, value)
    if not (low <= value <= high):
        raise ValueError(f'need {low} <= {label} <= {high}; got {value}')
    return value


def _check_str(label, value):
    if type(value) is not str:
        raise _type_error(label, str, value)
    return value


def _class_names(obj):
    return {cls.__name__ for cls in type(obj).__mro__}


def _body_kind(label, body):
    """``'length'`` or ``'chunked'`` for a degu body object, else ``TypeError``."""
    names = _class_names(body)
    if names & _LENGTH_BODIES:
        return 'length'
    if names & _CHUNKED_BODIES:
        return 'chunked'
    raise TypeError(f'{label}: bad body type: {type(body)!r}')


# --------------------------------------------------------------------------
# Session, api and request


def _check_address(label, address):
    # An address as degu gives it: (host, port), (host, port, flowinfo, scopeid), or an
    # AF_UNIX path (str) or abstract name (bytes).
    if type(address) is tuple:
        if len(address) not in (2, 4):
            raise ValueError(f'{label}: need a 2-tuple or 4-tuple; got {address!r}')
    elif type(address) not in (str, bytes):
        raise _type_error(label, (tuple, str, bytes), address)


def _check_session(session):
    _check_address('session.address', _attr(session, 'address', 'session'))
    client = getattr(session, 'client', None)  # degu's extra attribute
    if client is not None:
        _check_address('session.client', client)
    credentials = _attr(session, 'credentials', 'session')
    if credentials is not None:
        if type(credentials) is not tuple:
            raise _type_error('session.credentials', tuple, credentials)
        if len(credentials) != 3:
            raise ValueError(f'session.credentials: need a 3-tuple; got {credentials!r}')
    requests = _check_int('session.requests', _attr(session, 'requests', 'session'))
    max_requests = _check_int('session.max_requests', _attr(session, 'max_requests', 'session'))
    if requests >= max_requests:
        raise ValueError(f'session.requests >= session.max_requests: {requests} >= {max_requests}')
    store = _attr(session, 'store', 'session')
    if type(store) is not dict:
        raise _type_error('session.store', dict, store)
    for key in store:
        if type(key) is not str:
            raise _type_error('session.store key', str, key)
    return requests


def _check_api(api):
    fields = getattr(api, '_fields', None)
    if fields != _API_FIELDS:
        raise ValueError(f'api: need a namedtuple with fields {_API_FIELDS!r}; got {api!r}')


def _check_name(label, name):
    if type(name) is not str:
        raise _type_error(f'{label} key', str, name)
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f'{label}: bad header name: {name!r}')


def _check_text(label, value):
    _check_str(label, value)
    if _BAD_VALUE_RE.search(value):
        raise ValueError(f'{label}: bad header value: {value[:64]!r}')


def _check_range(label, value):
    if 'Range' not in _class_names(value):
        raise _type_error(label, 'Range', value)
    start = _attr(value, 'start', label)
    stop = _attr(value, 'stop', label)
    if stop is None:  # a suffix range, bytes=-N: Range(-N, None)
        _check_int(f'{label}.start', start, -MAX_LENGTH, -1)
        return
    _check_int(f'{label}.start', start)
    _check_int(f'{label}.stop', stop)
    if not start < stop:
        raise ValueError(f'{label}: need start < stop; got {value!r}')


def _check_content_range(label, value):
    if type(value) is str:
        if not _CONTENT_RANGE_RE.fullmatch(value):
            raise ValueError(f'{label}: bad content-range: {value[:64]!r}')
        return
    if 'ContentRange' not in _class_names(value):
        raise _type_error(label, (str, 'ContentRange'), value)
    start = _check_int(f'{label}.start', _attr(value, 'start', label))
    stop = _check_int(f'{label}.stop', _attr(value, 'stop', label))
    total = _attr(value, 'total', label)
    if total is None:  # bytes a-b/*: the total is unknown
        if not start < stop:
            raise ValueError(f'{label}: need start < stop; got {value!r}')
        return
    _check_int(f'{label}.total', total)
    if not start < stop <= total:
        raise ValueError(f'{label}: need start < stop <= total; got {value!r}')


def _check_framing(label, headers):
    if 'content-length' in headers and 'transfer-encoding' in headers:
        raise ValueError(f'{label}: cannot have both content-length and transfer-encoding')
    if 'content-length' in headers:
        _check_int(f"{label}['content-length']", headers['content-length'])
    if 'transfer-encoding' in headers and headers['transfer-encoding'] != 'chunked':
        raise ValueError(
            f"{label}['transfer-encoding']: need 'chunked'; "
            f"got {headers['transfer-encoding']!r}"
        )


def _check_request_headers(headers):
    label = 'request.headers'
    if type(headers) is not dict:
        raise _type_error(label, dict, headers)
    for (name, value) in headers.items():
        _check_name(label, name)
        item = f'{label}[{name!r}]'
        if name in ('content-length', 'transfer-encoding'):
            continue  # _check_framing()
        if name == 'range':
            _check_range(item, value)
        elif name == 'content-range':
            raise ValueError(f"{label}: request cannot include a 'content-range' header")
        else:
            _check_text(item, value)
    _check_framing(label, headers)


def _check_request_body(body, headers):
    label = 'request.body'
    if body is None:
        for name in ('content-length', 'transfer-encoding'):
            if name in headers:
                raise ValueError(f'{label} is None, but request.headers has {name!r}')
        return
    kind = _body_kind(label, body)
    chunked = _attr(body, 'chunked', label)
    if kind == 'length':
        if chunked is not False:
            raise ValueError(f'{label}.chunked: need False; got {chunked!r}')
        if 'content-length' not in headers:
            raise ValueError(f"{label} is a {type(body).__name__}, but no content-length")
        length = _attr(body, 'content_length', label)
        if length != headers['content-length']:
            raise ValueError(
                f"{label}.content_length != request.headers['content-length']: "
                f"{length!r} != {headers['content-length']!r}"
            )
    else:
        if chunked is not True:
            raise ValueError(f'{label}.chunked: need True; got {chunked!r}')
        if 'transfer-encoding' not in headers:
            raise ValueError(f'{label} is a {type(body).__name__}, but no transfer-encoding')
    state = _attr(body, 'state', label)
    if state != BODY_READY:
        raise ValueError(f'{label}.state: need BODY_READY (0); got {state!r}')


def _check_components(request):
    mount = _attr(request, 'mount', 'request')
    path = _attr(request, 'path', 'request')
    if type(mount) is not list:
        raise _type_error('request.mount', list, mount)
    if type(path) is not list:
        raise _type_error('request.path', list, path)
    components = mount + path
    last = len(components) - 1
    for (i, component) in enumerate(components):
        (name, j) = ('request.mount', i) if i < len(mount) else ('request.path', i - len(mount))
        label = f'{name}[{j}]'
        _check_str(label, component)
        if component in ('.', '..') or not _COMPONENT_RE.fullmatch(component):
            raise ValueError(f'{label}: bad path component: {component[:64]!r}')
        if component == '' and (i != last or last == 0):
            # '/' is [] and '/a/' is ['a', '']: an empty component is only ever the last of several
            raise ValueError(f'{label}: empty path component: {components!r}')
    return components


def _check_uri(request, when):
    uri = _attr(request, 'uri', 'request')
    _check_str('request.uri', uri)
    components = _check_components(request)
    query = _attr(request, 'query', 'request')
    if query is not None:
        _check_str('request.query', query)
        if not _QUERY_RE.fullmatch(query):
            raise ValueError(f'request.query: bad query: {query[:64]!r}')
    if uri == '*':  # OPTIONS * (asterisk-form, RFC 9112 section 3.2.4)
        if request.method != 'OPTIONS' or components or query is not None:
            raise ValueError(f"request.uri is '*' {when}, but method, path or query disagree")
        return
    expected = '/' + '/'.join(components)
    if query is not None:
        expected += '?' + query
    if uri != expected:
        raise ValueError(
            f"{when}: request.uri != '/' + '/'.join(mount + path) [+ '?' + query]: "
            f'{uri!r} != {expected!r}'
        )


def _check_request(request):
    _check_method(_attr(request, 'method', 'request'), 'request.method')
    version = getattr(request, 'version', 'HTTP/1.1')  # degu's extra attribute
    if version not in ('HTTP/1.1', 'HTTP/1.0'):
        raise ValueError(f"request.version: need 'HTTP/1.1' or 'HTTP/1.0'; got {version!r}")
    client = getattr(request, 'client', None)  # degu's extra attributes, like version
    if client is not None:
        _check_address('request.client', client)
    scheme = getattr(request, 'scheme', 'http')
    if scheme not in ('http', 'https'):
        raise ValueError(f"request.scheme: need 'http' or 'https'; got {scheme!r}")
    headers = _attr(request, 'headers', 'request')
    _check_request_headers(headers)
    _check_request_body(_attr(request, 'body', 'request'), headers)
    _check_uri(request, 'before the app call')


# --------------------------------------------------------------------------
# Response


def _check_response_headers(headers):
    label = 'response.headers'
    if type(headers) is not dict:
        raise _type_error(label, dict, headers)
    for (name, value) in headers.items():
        _check_name(label, name)
        item = f'{label}[{name!r}]'
        if name in ('content-length', 'transfer-encoding'):
            continue  # _check_framing()
        if name == 'range':
            raise ValueError(f"{label}: response cannot include a 'range' header")
        if name == 'content-range':
            _check_content_range(item, value)
        elif type(value) is int:
            _check_int(item, value)
        elif type(value) is list:
            # one field line per item (set-cookie)
            if not value or name in _SINGLE:
                raise ValueError(f'{item}: bad list value: {value!r}'[:200])
            for (i, v) in enumerate(value):
                _check_text(f'{item}[{i}]', v)
        else:
            _check_text(item, value)
    _check_framing(label, headers)


def _check_response_body(request, status, headers, body):
    label = 'response.body'
    method = request.method
    if has_no_content(method, status):
        if body is not None:
            if method == 'HEAD':
                what = 'request method is HEAD'
            else:
                what = f'response status is {status}'
            raise TypeError(f'{what}, but {label} is not None: {type(body)!r}')
    if body is None:
        if method == 'HEAD':
            # A 2xx to HEAD stands for the GET response, framing included
            # (RFC 9110 section 9.3.2); the server adds none to a HEAD
            # response, so the app must.  Other statuses need nothing.
            if 200 <= status < 300 and status != 204:
                if 'content-length' not in headers and 'transfer-encoding' not in headers:
                    raise ValueError(
                        f'response.headers: a {status} response to HEAD needs '
                        'content-length or transfer-encoding'
                    )
            return
        if status == 204:
            for name in ('content-length', 'transfer-encoding'):
                if name in headers:
                    raise ValueError(f'response.headers: status {status} cannot have {name!r}')
            return
        if status == 304:
            return
        if 'transfer-encoding' in headers:
            raise ValueError(f"{label} is None, but response.headers has 'transfer-encoding'")
        if headers.get('content-length', 0) != 0:
            raise ValueError(
                f"{label} is None, but response.headers['content-length'] is "
                f"{headers['content-length']!r}"
            )
        return
    if type(body) is bytes:
        if len(body) > MAX_IO_SIZE:
            raise ValueError(f'need len({label}) <= {MAX_IO_SIZE}; got {len(body)}')
        kind = 'length'
        length = len(body)
    else:
        kind = _body_kind(label, body)
        chunked = _attr(body, 'chunked', label)
        state = _attr(body, 'state', label)
        if state != BODY_READY:
            raise ValueError(f'{label}.state: need BODY_READY (0); got {state!r}')
        if kind == 'length':
            if chunked is not False:
                raise ValueError(f'{label}.chunked: need False; got {chunked!r}')
            length = _attr(body, 'content_length', label)
            # A Body read until its connection closed has no length: the
            # server sends it chunked (or close-delimited to HTTP/1.0).
            if length is not None or 'Body' not in _class_names(body):
                _check_int(f'{label}.content_length', length)
        else:
            if chunked is not True:
                raise ValueError(f'{label}.chunked: need True; got {chunked!r}')
            # Every degu body has content_length (the body protocol); a
            # chunked one says None.
            if getattr(body, 'content_length', None) is not None:
                raise ValueError(f'{label}: a chunked body has a content_length attribute')
    if kind == 'length':
        if 'transfer-encoding' in headers:
            raise ValueError(f"{label} has a length, but response.headers has 'transfer-encoding'")
        if 'content-length' in headers and headers['content-length'] != length:
            raise ValueError(
                f"response.headers['content-length'] != len({label}): "
                f"{headers['content-length']!r} != {length!r}"
            )
    elif 'content-length' in headers:
        raise ValueError(f"{label} is chunked, but response.headers has 'content-length'")


def _check_response(request, response):
    if not isinstance(response, tuple):
        raise TypeError(_TYPE_ERROR2.format('response', tuple, type(response)))
    if len(response) != 4:
        raise ValueError(f'response: need a 4-tuple; got a {len(response)}-tuple')
    (status, reason, headers, body) = response
    _check_int('response.status', status, 200, 599)  # 1xx: interim, never final
    _check_str('response.reason', reason)
    if not reason or _BAD_VALUE_RE.search(reason):
        raise ValueError(f'response.reason: bad reason: {reason[:64]!r}')
    _check_response_headers(headers)
    _check_response_body(request, status, headers, body)
    return status


def _check_consumed(request, status, response_body):
    body = request.body
    if body is None or body is response_body:
        return  # no body, or an echo: the server sends it as the response
    state = _attr(body, 'state', 'request.body')
    if state == BODY_CONSUMED:
        return
    if state == BODY_READY:
        if status >= 400:
            return  # refused without reading: the server drains it or closes
        if getattr(body, 'chunked', None) is False and getattr(body, 'content_length', 1) == 0:
            return  # content-length: 0 (common on a GET): nothing to read
    raise ValueError(f'request body not consumed: {body!r} (state {state})')


class Validator:
    """Middleware checking server, middleware and app against RGI (doc/degu.rgi.rst).

    >>> def app(session, request, api):
    ...     return (200, 'OK', {}, b'hello')
    >>> Validator(app)  # doctest: +ELLIPSIS
    Validator(<function app at 0x...>)
    """

    def __init__(self, app: Callable[..., Any]) -> None:
        if not callable(app):
            raise TypeError(f'app: not callable: {app!r}')
        on_connect = getattr(app, 'on_connect', None)
        if on_connect is not None and not callable(on_connect):
            raise TypeError(f'app.on_connect: not callable: {on_connect!r}')
        self.app = app
        self._on_connect = on_connect

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.app!r})'

    # session, request and api are object: checking them is the point (duck typed).
    def __call__(self, session: object, request: object, api: object) -> tuple:
        _check_session(session)
        _check_api(api)
        _check_request(request)
        response = self.app(session, request, api)
        _check_uri(request, 'after the app call')
        status = _check_response(request, response)
        _check_consumed(request, status, response[3])
        return response

    def on_connect(self, session: object, sock: object) -> bool:
        """Check the new session, then ask the app's ``on_connect`` (``True`` without one)."""
        requests = _check_session(session)
        if requests != 0:
            raise ValueError(f'on_connect: need session.requests == 0; got {requests}')
        if self._on_connect is None:
            return True
        result = self._on_connect(session, sock)
        if type(result) is not bool:
            raise _type_error('app.on_connect() result', bool, result)
        return result
