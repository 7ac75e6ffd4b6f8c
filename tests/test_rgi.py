"""Tests for degu.rgi.Validator: each rule broken once, and real traffic passing."""

import io
import socket
from types import SimpleNamespace

import pytest

from degu.base import (
    Body,
    BodyIter,
    ChunkedBody,
    ChunkedBodyIter,
    ContentRange,
    Range,
    Session,
    api,
)
from degu.client import Client
from degu.misc import TempServer, mkreq
from degu.rgi import Validator


def ok_app(session, request, api):
    if request.body is not None:
        request.body.read()
    return (200, 'OK', {}, b'hello')


def make_app(response, consume=True):
    """An app that consumes the request body and returns *response*."""

    def app(session, request, api):
        if consume and request.body is not None:
            request.body.read()
        return response() if callable(response) else response

    return app


def session():
    return Session(('127.0.0.1', 12345))


def body(data=b'hello'):
    return Body(io.BytesIO(data), len(data))


def chunked(data=b'5\r\nhello\r\n0\r\n\r\n'):
    return ChunkedBody(io.BytesIO(data))


def req(method='GET', uri='/foo/bar', headers=None, body=None, shift=0):
    return mkreq(method, uri, headers, body, shift)


def run(app, request=None, sess=None, the_api=api):
    v = Validator(app)
    return v(sess or session(), request or req(), the_api)


def check_raises(exc_type, message, app, request=None, sess=None, the_api=api):
    with pytest.raises(exc_type) as e:
        run(app, request, sess, the_api)
    assert str(e.value) == message


# --------------------------------------------------------------------------
# Construction


def test_init():
    v = Validator(ok_app)
    assert v.app is ok_app
    assert v._on_connect is None
    assert repr(v) == f'Validator({ok_app!r})'
    with pytest.raises(TypeError) as e:
        Validator('nope')
    assert str(e.value) == "app: not callable: 'nope'"

    class App:
        on_connect = 17

        def __call__(self, session, request, api):
            pass

    with pytest.raises(TypeError) as e:
        Validator(App())
    assert str(e.value) == 'app.on_connect: not callable: 17'


def test_correct_apps_pass():
    assert run(ok_app) == (200, 'OK', {}, b'hello')
    r = req('PUT', '/x', {'content-length': 5}, body())
    assert run(ok_app, r)[0] == 200
    r = req('POST', '/x', {'transfer-encoding': 'chunked'}, chunked())
    assert run(ok_app, r)[0] == 200
    for value in (Range(0, 5), Range(5, 9999999999999999), Range(-500, None)):
        r = req('GET', '/x', {'range': value})
        assert run(ok_app, r)[0] == 200
    r = req('OPTIONS', '*')
    assert run(ok_app, r)[0] == 200


# --------------------------------------------------------------------------
# Session and api


def fake_session(**kw):
    values = dict(
        address=('127.0.0.1', 1), credentials=None, requests=0, max_requests=10, store={}
    )
    values.update(kw)
    return SimpleNamespace(**values)


SESSION_TABLE = [
    (dict(address=('a', 1, 2)), ValueError,
     "session.address: need a 2-tuple or 4-tuple; got ('a', 1, 2)"),
    (dict(address=17), TypeError,
     "session.address: need a (<class 'tuple'>, <class 'str'>, <class 'bytes'>); "
     "got a <class 'int'>: 17"),
    (dict(credentials=[1, 2, 3]), TypeError,
     "session.credentials: need a <class 'tuple'>; got a <class 'list'>: [1, 2, 3]"),
    (dict(credentials=(1, 2)), ValueError, 'session.credentials: need a 3-tuple; got (1, 2)'),
    (dict(requests='0'), TypeError,
     "session.requests: need a <class 'int'>; got a <class 'str'>: '0'"),
    (dict(requests=-1), ValueError,
     'need 0 <= session.requests <= 9999999999999999; got -1'),
    (dict(requests=10), ValueError, 'session.requests >= session.max_requests: 10 >= 10'),
    (dict(store=[]), TypeError, "session.store: need a <class 'dict'>; got a <class 'list'>: []"),
    (dict(store={1: 2}), TypeError,
     "session.store key: need a <class 'str'>; got a <class 'int'>: 1"),
]


@pytest.mark.parametrize('kw, exc_type, message', SESSION_TABLE)
def test_session_rules(kw, exc_type, message):
    check_raises(exc_type, message, ok_app, sess=fake_session(**kw))


@pytest.mark.parametrize('address', [('::1', 1, 0, 0), '/tmp/sock', b'\x0000022', b'', ''])
def test_session_addresses(address):
    assert run(ok_app, sess=fake_session(address=address))[0] == 200


def test_session_missing_attribute():
    s = fake_session()
    del s.store
    check_raises(ValueError, "session: 'types.SimpleNamespace' object has no attribute 'store'",
                 ok_app, sess=s)


def test_api_rule():
    check_raises(ValueError,
                 "api: need a namedtuple with fields ('Body', 'ChunkedBody', 'BodyIter', "
                 "'ChunkedBodyIter', 'Range', 'ContentRange'); got (1, 2)",
                 ok_app, the_api=(1, 2))


# --------------------------------------------------------------------------
# Request


def fake_request(**kw):
    values = dict(method='GET', uri='/a', headers={}, body=None, mount=[], path=['a'], query=None)
    values.update(kw)
    return SimpleNamespace(**values)


class FakeRange:
    """Looks like a Range to the Validator, whatever its values."""

    def __init__(self, start, stop):
        (self.start, self.stop) = (start, stop)

    def __repr__(self):
        return f'Range({self.start}, {self.stop})'


FakeRange.__name__ = 'Range'


REQUEST_TABLE = [
    # method
    (dict(method=b'GET'), TypeError,
     "request.method: need a <class 'str'>; got a <class 'bytes'>: b'GET'"),
    (dict(method='get'), ValueError, "request.method: bad method: 'get'"),
    (dict(method='TRACE'), ValueError, "request.method: bad method: 'TRACE'"),
    (dict(version='HTTP/1.2'), ValueError,
     "request.version: need 'HTTP/1.1' or 'HTTP/1.0'; got 'HTTP/1.2'"),
    # headers
    (dict(headers=[]), TypeError,
     "request.headers: need a <class 'dict'>; got a <class 'list'>: []"),
    (dict(headers={b'a': 'b'}), TypeError,
     "request.headers key: need a <class 'str'>; got a <class 'bytes'>: b'a'"),
    (dict(headers={'Accept': 'b'}), ValueError, "request.headers: bad header name: 'Accept'"),
    (dict(headers={'a b': 'c'}), ValueError, "request.headers: bad header name: 'a b'"),
    (dict(headers={'a': 1}), TypeError,
     "request.headers['a']: need a <class 'str'>; got a <class 'int'>: 1"),
    (dict(headers={'a': 'x\r\ny'}), ValueError,
     "request.headers['a']: bad header value: 'x\\r\\ny'"),
    (dict(headers={'a': ' x'}), ValueError, "request.headers['a']: bad header value: ' x'"),
    (dict(headers={'a': '\u0100'}), ValueError, "request.headers['a']: bad header value: 'Ā'"),
    (dict(headers={'range': 'bytes=0-4'}), TypeError,
     "request.headers['range']: need a 'Range'; got a <class 'str'>: 'bytes=0-4'"),
    (dict(headers={'range': FakeRange(5, None)}), ValueError,
     "need -9999999999999999 <= request.headers['range'].start <= -1; got 5"),
    (dict(headers={'range': FakeRange(-5, 10)}), ValueError,
     "need 0 <= request.headers['range'].start <= 9999999999999999; got -5"),
    (dict(headers={'range': FakeRange(5, 5)}), ValueError,
     "request.headers['range']: need start < stop; got Range(5, 5)"),
    (dict(headers={'range': FakeRange(0, '5')}), TypeError,
     "request.headers['range'].stop: need a <class 'int'>; got a <class 'str'>: '5'"),
    (dict(headers={'content-range': ContentRange(0, 1, 2)}), ValueError,
     "request.headers: request cannot include a 'content-range' header"),
    (dict(headers={'content-length': '5'}, body=body()), TypeError,
     "request.headers['content-length']: need a <class 'int'>; got a <class 'str'>: '5'"),
    (dict(headers={'content-length': -1}), ValueError,
     "need 0 <= request.headers['content-length'] <= 9999999999999999; got -1"),
    (dict(headers={'transfer-encoding': 'gzip'}), ValueError,
     "request.headers['transfer-encoding']: need 'chunked'; got 'gzip'"),
    (dict(headers={'content-length': 5, 'transfer-encoding': 'chunked'}), ValueError,
     'request.headers: cannot have both content-length and transfer-encoding'),
    # body
    (dict(headers={'content-length': 5}), ValueError,
     "request.body is None, but request.headers has 'content-length'"),
    (dict(headers={'transfer-encoding': 'chunked'}), ValueError,
     "request.body is None, but request.headers has 'transfer-encoding'"),
    (dict(body=body()), ValueError, 'request.body is a Body, but no content-length'),
    (dict(headers={'content-length': 4}, body=body()), ValueError,
     "request.body.content_length != request.headers['content-length']: 5 != 4"),
    (dict(body=chunked()), ValueError,
     'request.body is a ChunkedBody, but no transfer-encoding'),
    (dict(headers={'content-length': 5}, body=io.BytesIO(b'hello')), TypeError,
     "request.body: bad body type: <class '_io.BytesIO'>"),
    (dict(headers={'content-length': 5}, body=BodyIter([b'hello'], 5)), ValueError,
     'request.body.state: need BODY_READY (0); got 1'),  # set up below
    # uri, mount, path, query
    (dict(uri=b'/a'), TypeError,
     "request.uri: need a <class 'str'>; got a <class 'bytes'>: b'/a'"),
    (dict(mount=()), TypeError, "request.mount: need a <class 'list'>; got a <class 'tuple'>: ()"),
    (dict(path=('a',)), TypeError,
     "request.path: need a <class 'list'>; got a <class 'tuple'>: ('a',)"),
    (dict(path=[b'a']), TypeError,
     "request.path[0]: need a <class 'str'>; got a <class 'bytes'>: b'a'"),
    (dict(uri='/a/..', path=['a', '..']), ValueError, "request.path[1]: bad path component: '..'"),
    (dict(uri='/.', path=['.']), ValueError, "request.path[0]: bad path component: '.'"),
    (dict(uri='/a%2', path=['a%2']), ValueError, "request.path[0]: bad path component: 'a%2'"),
    (dict(uri='/a b', path=['a b']), ValueError, "request.path[0]: bad path component: 'a b'"),
    (dict(uri='/', path=['']), ValueError, "request.path[0]: empty path component: ['']"),
    (dict(uri='//a', path=['', 'a']), ValueError,
     "request.path[0]: empty path component: ['', 'a']"),
    (dict(uri='/x/a', mount=['x', '..'], path=['a']), ValueError,
     "request.mount[1]: bad path component: '..'"),
    (dict(uri='/a?q', query=b'q'), TypeError,
     "request.query: need a <class 'str'>; got a <class 'bytes'>: b'q'"),
    (dict(uri='/a?#', query='#'), ValueError, "request.query: bad query: '#'"),
    (dict(uri='/b'), ValueError,
     "before the app call: request.uri != '/' + '/'.join(mount + path) [+ '?' + query]: "
     "'/b' != '/a'"),
    (dict(uri='/a', query=''), ValueError,
     "before the app call: request.uri != '/' + '/'.join(mount + path) [+ '?' + query]: "
     "'/a' != '/a?'"),
    (dict(uri='*', path=[]), ValueError,
     "request.uri is '*' before the app call, but method, path or query disagree"),
    (dict(method='OPTIONS', uri='*'), ValueError,
     "request.uri is '*' before the app call, but method, path or query disagree"),
]


@pytest.mark.parametrize('kw, exc_type, message', REQUEST_TABLE)
def test_request_rules(kw, exc_type, message):
    b = kw.get('body')
    if isinstance(b, BodyIter):
        # a request body that was already started
        b = body()
        b.read(1)
        kw = dict(kw, body=b)
    called = []

    def app(session, request, api):
        called.append(request)
        return (200, 'OK', {}, None)

    check_raises(exc_type, message, app, request=fake_request(**kw))
    assert called == []  # request rules are checked before the app runs


def test_request_missing_attributes():
    r = fake_request(headers={'content-length': 5}, body=SimpleNamespace())
    with pytest.raises(TypeError) as e:
        run(ok_app, r)
    assert str(e.value) == "request.body: bad body type: <class 'types.SimpleNamespace'>"

    class Body:  # looks like a degu Body by name, but lacks the attributes
        pass

    r = fake_request(headers={'content-length': 5}, body=Body())
    with pytest.raises(ValueError) as e:
        run(ok_app, r)
    assert str(e.value) == "request.body: 'Body' object has no attribute 'chunked'"
    r = fake_request()
    del r.query
    with pytest.raises(ValueError) as e:
        run(ok_app, r)
    assert str(e.value) == "request: 'types.SimpleNamespace' object has no attribute 'query'"


def test_uri_invariant_after_call():
    def app(session, request, api):
        request.path.append('extra')
        return (200, 'OK', {}, None)

    check_raises(ValueError,
                 "after the app call: request.uri != '/' + '/'.join(mount + path) "
                 "[+ '?' + query]: '/foo/bar' != '/foo/bar/extra'", app)

    def shifting(session, request, api):
        request.shift_path()  # moving components from path to mount is fine
        return (200, 'OK', {}, None)

    assert run(shifting)[0] == 200


# --------------------------------------------------------------------------
# Request body consumed


def test_body_consumed():
    def reads_nothing(status):
        return make_app((status, 'X', {}, None), consume=False)

    def put():
        return req('PUT', '/x', {'content-length': 5}, body())

    with pytest.raises(ValueError) as e:
        run(reads_nothing(200), put())
    assert str(e.value).startswith('request body not consumed: Body(<_io.BytesIO object at ')
    assert str(e.value).endswith('>, 5) (state 0)')
    # refused without reading: fine
    assert run(reads_nothing(400), put())[0] == 400
    assert run(reads_nothing(413), put())[0] == 413

    def partly(session, request, api):
        request.body.read(2)
        return (413, 'Too Large', {}, None)

    with pytest.raises(ValueError) as e:
        run(partly, put())
    assert str(e.value).endswith('5) (state 1)')

    def sized_read_to_the_end(session, request, api):
        request.body.read(5)  # reaching the end consumes the body
        return (200, 'OK', {}, None)

    assert run(sized_read_to_the_end, put())[0] == 200

    def echo(session, request, api):
        return (200, 'OK', {}, request.body)

    assert run(echo, put())[0] == 200

    # content-length: 0 on a GET: nothing to consume
    empty = Body(io.BytesIO(b''), 0)
    r = req('GET', '/x', {'content-length': 0}, empty)
    assert run(reads_nothing(200), r)[0] == 200
    assert empty.state == 0

    r = req('POST', '/x', {'transfer-encoding': 'chunked'}, chunked())
    with pytest.raises(ValueError) as e:
        run(reads_nothing(201), r)
    assert str(e.value).startswith('request body not consumed: ChunkedBody(')


# --------------------------------------------------------------------------
# Response


def close_delimited():
    """A client response body read until EOF (RFC 9112 section 6.3): no length."""
    from degu.base import SocketWrapper

    (a, b) = socket.socketpair()
    b.close()
    wrapper = SocketWrapper(a)
    wrapper.close()
    return Body(wrapper, None)


def chunked_iter():
    return ChunkedBodyIter([(None, b'hi'), (None, b'')])


RESPONSE_TABLE = [
    # shape
    ([200, 'OK', {}, None], 'GET', TypeError,
     "response: need a <class 'tuple'>; got a <class 'list'>"),
    ((200, 'OK', {}), 'GET', ValueError, 'response: need a 4-tuple; got a 3-tuple'),
    (('200', 'OK', {}, None), 'GET', TypeError,
     "response.status: need a <class 'int'>; got a <class 'str'>: '200'"),
    ((99, 'OK', {}, None), 'GET', ValueError, 'need 200 <= response.status <= 599; got 99'),
    # 1xx are interim responses: never the app's final answer
    ((100, 'Continue', {}, None), 'GET', ValueError,
     'need 200 <= response.status <= 599; got 100'),
    ((101, 'Switching Protocols', {}, None), 'GET', ValueError,
     'need 200 <= response.status <= 599; got 101'),
    ((103, 'Early Hints', {}, None), 'HEAD', ValueError,
     'need 200 <= response.status <= 599; got 103'),
    ((199, 'X', {}, None), 'GET', ValueError, 'need 200 <= response.status <= 599; got 199'),
    ((600, 'OK', {}, None), 'GET', ValueError, 'need 200 <= response.status <= 599; got 600'),
    ((200, b'OK', {}, None), 'GET', TypeError,
     "response.reason: need a <class 'str'>; got a <class 'bytes'>: b'OK'"),
    ((200, '', {}, None), 'GET', ValueError, "response.reason: bad reason: ''"),
    ((200, 'O\nK', {}, None), 'GET', ValueError, "response.reason: bad reason: 'O\\nK'"),
    # headers
    ((200, 'OK', [], None), 'GET', TypeError,
     "response.headers: need a <class 'dict'>; got a <class 'list'>: []"),
    ((200, 'OK', {'Foo': 'x'}, None), 'GET', ValueError,
     "response.headers: bad header name: 'Foo'"),
    ((200, 'OK', {'foo': b'x'}, None), 'GET', TypeError,
     "response.headers['foo']: need a <class 'str'>; got a <class 'bytes'>: b'x'"),
    ((200, 'OK', {'foo': 'x\ry'}, None), 'GET', ValueError,
     "response.headers['foo']: bad header value: 'x\\ry'"),
    ((200, 'OK', {'foo': -1}, None), 'GET', ValueError,
     "need 0 <= response.headers['foo'] <= 9999999999999999; got -1"),
    ((200, 'OK', {'foo': []}, None), 'GET', ValueError,
     "response.headers['foo']: bad list value: []"),
    ((200, 'OK', {'host': ['a', 'b']}, None), 'GET', ValueError,
     "response.headers['host']: bad list value: ['a', 'b']"),
    ((200, 'OK', {'set-cookie': ['a', 1]}, None), 'GET', TypeError,
     "response.headers['set-cookie'][1]: need a <class 'str'>; got a <class 'int'>: 1"),
    ((200, 'OK', {'range': Range(0, 1)}, None), 'GET', ValueError,
     "response.headers: response cannot include a 'range' header"),
    ((206, 'OK', {'content-range': 'bytes 0-1'}, None), 'GET', ValueError,
     "response.headers['content-range']: bad content-range: 'bytes 0-1'"),
    ((416, 'X', {'content-range': 'bytes */*'}, None), 'GET', ValueError,
     "response.headers['content-range']: bad content-range: 'bytes */*'"),
    ((206, 'OK', {'content-range': Range(0, 1)}, None), 'GET', TypeError,
     "response.headers['content-range']: need a (<class 'str'>, 'ContentRange'); "
     "got a <class 'degu._parse.Range'>: Range(0, 1)"),
    ((200, 'OK', {'content-length': '5'}, b'hello'), 'GET', TypeError,
     "response.headers['content-length']: need a <class 'int'>; got a <class 'str'>: '5'"),
    ((200, 'OK', {'transfer-encoding': 'gzip'}, chunked_iter), 'GET', ValueError,
     "response.headers['transfer-encoding']: need 'chunked'; got 'gzip'"),
    ((200, 'OK', {'content-length': 2, 'transfer-encoding': 'chunked'}, None), 'HEAD', ValueError,
     'response.headers: cannot have both content-length and transfer-encoding'),
    # HEAD and the statuses without a body
    ((200, 'OK', {}, b''), 'HEAD', TypeError,
     "request method is HEAD, but response.body is not None: <class 'bytes'>"),
    ((204, 'No Content', {}, b''), 'GET', TypeError,
     "response status is 204, but response.body is not None: <class 'bytes'>"),
    ((304, 'Not Modified', {}, b''), 'GET', TypeError,
     "response status is 304, but response.body is not None: <class 'bytes'>"),
    ((204, 'No Content', {'content-length': 0}, None), 'GET', ValueError,
     "response.headers: status 204 cannot have 'content-length'"),
    ((204, 'No Content', {'transfer-encoding': 'chunked'}, None), 'GET', ValueError,
     "response.headers: status 204 cannot have 'transfer-encoding'"),
    # HEAD: a 2xx (but 204) says what a GET would get
    ((200, 'OK', {}, None), 'HEAD', ValueError,
     'response.headers: a 200 response to HEAD needs content-length or transfer-encoding'),
    ((206, 'Partial Content', {'content-range': 'bytes 0-1/5'}, None), 'HEAD', ValueError,
     'response.headers: a 206 response to HEAD needs content-length or transfer-encoding'),
    ((299, 'X', {'x': 'y'}, None), 'HEAD', ValueError,
     'response.headers: a 299 response to HEAD needs content-length or transfer-encoding'),
    # None body
    ((200, 'OK', {'content-length': 5}, None), 'GET', ValueError,
     "response.body is None, but response.headers['content-length'] is 5"),
    ((200, 'OK', {'transfer-encoding': 'chunked'}, None), 'GET', ValueError,
     "response.body is None, but response.headers has 'transfer-encoding'"),
    # bytes
    ((200, 'OK', {}, bytearray(b'x')), 'GET', TypeError,
     "response.body: bad body type: <class 'bytearray'>"),
    ((200, 'OK', {}, 'text'), 'GET', TypeError, "response.body: bad body type: <class 'str'>"),
    ((200, 'OK', {'content-length': 4}, b'hello'), 'GET', ValueError,
     "response.headers['content-length'] != len(response.body): 4 != 5"),
    ((200, 'OK', {'transfer-encoding': 'chunked'}, b'hello'), 'GET', ValueError,
     "response.body has a length, but response.headers has 'transfer-encoding'"),
    # Body, BodyIter
    ((200, 'OK', {'content-length': 4}, body), 'GET', ValueError,
     "response.headers['content-length'] != len(response.body): 4 != 5"),
    ((200, 'OK', {'content-length': 4}, lambda: BodyIter([], 5)), 'GET', ValueError,
     "response.headers['content-length'] != len(response.body): 4 != 5"),
    ((200, 'OK', {'transfer-encoding': 'chunked'}, body), 'GET', ValueError,
     "response.body has a length, but response.headers has 'transfer-encoding'"),
    ((200, 'OK', {}, lambda: _started(body())), 'GET', ValueError,
     'response.body.state: need BODY_READY (0); got 1'),
    ((200, 'OK', {}, lambda: _started(BodyIter([b'x'], 1))), 'GET', ValueError,
     'response.body.state: need BODY_READY (0); got 2'),
    ((200, 'OK', {'content-length': 5}, close_delimited), 'GET', ValueError,
     "response.headers['content-length'] != len(response.body): 5 != None"),
    ((200, 'OK', {'transfer-encoding': 'chunked'}, close_delimited), 'GET', ValueError,
     "response.body has a length, but response.headers has 'transfer-encoding'"),
    ((200, 'OK', {}, lambda: FakeBodyIter(None)), 'GET', TypeError,
     "response.body.content_length: need a <class 'int'>; got a <class 'NoneType'>: None"),
    ((200, 'OK', {}, lambda: FakeBodyIter(-1)), 'GET', ValueError,
     'need 0 <= response.body.content_length <= 9999999999999999; got -1'),
    # ChunkedBody, ChunkedBodyIter
    ((200, 'OK', {'content-length': 2}, chunked_iter), 'GET', ValueError,
     "response.body is chunked, but response.headers has 'content-length'"),
    ((200, 'OK', {}, lambda: _started(chunked())), 'GET', ValueError,
     'response.body.state: need BODY_READY (0); got 1'),
]


class FakeBodyIter:
    """A BodyIter lookalike: only a Body read from a connection may lack a length."""

    chunked = False
    state = 0

    def __init__(self, content_length):
        self.content_length = content_length


FakeBodyIter.__name__ = 'BodyIter'


def _started(b):
    if isinstance(b, (BodyIter, ChunkedBodyIter)):
        b.write_to(io.BytesIO())
    elif isinstance(b, ChunkedBody):
        b.readchunk()
    else:
        b.read(1)
    return b


@pytest.mark.parametrize('response, method, exc_type, message', RESPONSE_TABLE)
def test_response_rules(response, method, exc_type, message):
    if isinstance(response, tuple) and len(response) == 4 and callable(response[3]):
        response = response[:3] + (response[3](),)
    check_raises(exc_type, message, make_app(response), request=req(method, '/x'))


def test_response_chunked_with_content_length_attribute():
    class ChunkedBodyIter:  # a lookalike with a stray attribute
        chunked = True
        state = 0
        content_length = 2

    check_raises(ValueError, 'response.body: a chunked body has a content_length attribute',
                 make_app((200, 'OK', {}, ChunkedBodyIter())))

    class BodyIter:
        chunked = True
        state = 0
        content_length = 2

    check_raises(ValueError, 'response.body.chunked: need False; got True',
                 make_app((200, 'OK', {}, BodyIter())))


GOOD_RESPONSES = [
    ((200, 'OK', {}, None), 'GET'),
    ((200, 'OK', {'content-length': 0}, None), 'GET'),
    ((404, 'Not Found', {}, None), 'HEAD'),  # other statuses need no framing on HEAD
    ((405, 'Method Not Allowed', {'allow': 'GET'}, None), 'HEAD'),
    ((301, 'Moved Permanently', {'location': '/x/'}, None), 'HEAD'),
    ((304, 'Not Modified', {'etag': '"x"'}, None), 'HEAD'),
    ((204, 'No Content', {}, None), 'HEAD'),
    ((200, 'OK', {'content-length': 12}, None), 'HEAD'),
    ((200, 'OK', {'content-length': 0}, None), 'HEAD'),
    ((206, 'Partial Content', {'content-length': 2}, None), 'HEAD'),
    ((200, 'OK', {'transfer-encoding': 'chunked'}, None), 'HEAD'),
    ((204, 'No Content', {}, None), 'GET'),
    ((304, 'Not Modified', {'content-length': 12, 'etag': '"x"'}, None), 'GET'),
    ((200, 'OK', {}, close_delimited), 'GET'),  # a Body read until the peer closed
    ((200, 'OK', {}, b''), 'GET'),
    ((200, 'OK', {'content-length': 5}, b'hello'), 'GET'),
    ((200, 'OK', {}, body), 'GET'),
    ((200, 'OK', {'content-length': 5}, body), 'GET'),
    ((200, 'OK', {}, lambda: BodyIter([b'hel', b'lo'], 5)), 'GET'),
    ((200, 'OK', {}, chunked), 'GET'),
    ((200, 'OK', {'transfer-encoding': 'chunked'}, chunked_iter), 'GET'),
    ((206, 'Partial Content', {'content-range': ContentRange(0, 2, 5)}, b'he'), 'GET'),
    ((416, 'Range Not Satisfiable', {'content-range': 'bytes */5'}, None), 'GET'),
    ((206, 'Partial Content', {'content-range': ContentRange(0, 2, None)}, b'he'), 'GET'),
    ((206, 'Partial Content', {'content-range': 'bytes 0-1/*'}, b'he'), 'GET'),
    ((200, 'OK', {'set-cookie': ['a=1', 'b=2'], 'retry-after': 1, 'x': ''}, None), 'GET'),
    ((200, 'OK', {'x': 'caf\xe9'}, None), 'GET'),
]


@pytest.mark.parametrize('response, method', GOOD_RESPONSES)
def test_good_responses(response, method):
    if callable(response[3]):
        response = response[:3] + (response[3](),)
    assert run(make_app(response), req(method, '/x')) is response


def test_response_namedtuple():
    from degu.base import Response

    response = Response(200, 'OK', {}, b'x')
    assert run(make_app(response)) is response


def test_app_exception_passes_through():
    def app(session, request, api):
        raise ZeroDivisionError('boom')

    with pytest.raises(ZeroDivisionError):
        run(app)


# --------------------------------------------------------------------------
# on_connect


def test_on_connect():
    v = Validator(ok_app)
    assert v.on_connect(session(), None) is True

    class App:
        def __init__(self, result):
            self.result = result
            self.calls = []

        def __call__(self, session, request, api):
            pass

        def on_connect(self, session, sock):
            self.calls.append((session, sock))
            return self.result

    s = session()
    for result in (True, False):
        app = App(result)
        v = Validator(app)
        assert v._on_connect == app.on_connect
        assert v.on_connect(s, 'sock') is result
        assert app.calls == [(s, 'sock')]
    with pytest.raises(TypeError) as e:
        Validator(App(1)).on_connect(s, None)
    assert str(e.value) == "app.on_connect() result: need a <class 'bool'>; got a <class 'int'>: 1"
    with pytest.raises(ValueError) as e:
        Validator(App(True)).on_connect(fake_session(requests=1), None)
    assert str(e.value) == 'on_connect: need session.requests == 0; got 1'
    with pytest.raises(TypeError) as e:
        Validator(App(True)).on_connect(fake_session(store=None), None)
    assert str(e.value) == "session.store: need a <class 'dict'>; got a <class 'NoneType'>: None"


# --------------------------------------------------------------------------
# Live: what our server produces passes, and a broken app is a 500


def live_app(session, request, api):
    """Answers by the first path component; every answer is correct RGI."""
    kind = request.shift_path()
    if request.method == 'HEAD':
        return (200, 'OK', {'content-length': 5}, None)
    if kind == 'echo':
        return (200, 'OK', {}, request.body)
    if request.body is not None:
        if request.body.chunked:
            for _ in request.body:
                pass
        else:
            request.body.read()
    if kind == 'chunks':
        return (200, 'OK', {}, api.ChunkedBodyIter([(('k', 'v'), b'ab'), (None, b'')]))
    if kind == 'iter':
        return (200, 'OK', {}, api.BodyIter([b'ab', b'c'], 3))
    if kind == 'refuse':
        return (413, 'Content Too Large', {}, None)
    if kind == 'none':
        return (204, 'No Content', {}, None)
    if kind == 'bad':
        return (200, 'OK', {'content-length': 7}, b'short')
    return (200, 'OK', {'x-uri': request.uri}, b'hello')


def refuse_app(session, request, api):
    return (413, 'Content Too Large', {}, None)


def test_live_requests():
    with TempServer(('127.0.0.1', 0), Validator(live_app), thread=True) as server:
        conn = Client(server.address).connect()
        cases = [
            ('GET', '/', {}, None, 200),
            ('GET', '/a/b/?q=1/2?', {}, None, 200),
            ('GET', '/caf%C3%A9/', {'accept': 'x', 'x-obs': 'caf\xe9'}, None, 200),
            ('GET', '/x', {'range': Range(0, 5)}, None, 200),
            ('GET', '/x', {'content-length': 0}, b'', 200),
            ('HEAD', '/x', {}, None, 200),
            ('DELETE', '/x', {}, b'abc', 200),
            ('PATCH', '/x', {}, b'abc', 200),
            ('OPTIONS', '*', {}, None, 200),
            ('OPTIONS', '/x', {}, None, 200),
            ('PUT', '/echo', {}, b'hello', 200),
            ('POST', '/echo', {}, api.ChunkedBodyIter([(('a', 'b c'), b'x'), (None, b'')]), 200),
            ('POST', '/x', {}, api.ChunkedBodyIter([(None, b'x'), (None, b'')]), 200),
            ('PUT', '/iter', {}, api.BodyIter([b'ab'], 2), 200),
            ('GET', '/chunks', {}, None, 200),
            ('GET', '/none', {}, None, 204),
            ('PUT', '/refuse', {}, b'x' * 100, 413),
        ]
        for (method, uri, headers, body, status) in cases:
            r = conn.request(method, uri, headers, body)
            assert r.status == status, (method, uri, r)
            if r.body is not None:
                r.body.read()
        r = conn.get('/bad', {})
        assert (r.status, r.reason) == (500, 'Internal Server Error')
        conn.close()
        # absolute-form target, and an expect: 100-continue upload
        with socket.create_connection(server.address, timeout=5) as sock:
            sock.sendall(b'GET http://example.com:80/a?b HTTP/1.1\r\nhost: example.com\r\n\r\n')
            data = _recv_response(sock)
            assert data.startswith(b'HTTP/1.1 200 OK\r\n')
            assert b'x-uri: /a?b\r\n' in data
        with socket.create_connection(server.address, timeout=5) as sock:
            sock.sendall(b'GET /v?1.0 HTTP/1.0\r\n\r\n')
            data = _recv_response(sock)
            assert data.startswith(b'HTTP/1.1 200 OK\r\n')
            assert b'x-uri: /v?1.0\r\n' in data
        conn = Client(server.address).connect()
        r = conn.put('/echo', {}, b'hello', expect100=True)
        assert (r.status, r.body.read()) == (200, b'hello')
        conn.close()


def test_live_on_connect_and_refusal():
    with TempServer(('::1', 0, 0, 0), Validator(refuse_app), thread=True) as server:
        conn = Client(server.address).connect()
        r = conn.put('/x', {}, b'x' * 10)
        assert (r.status, r.body.read()) == (413, b'')
        r = conn.get('/', {})
        assert (r.status, r.body.read()) == (413, b'')
        conn.close()


def _recv_response(sock):
    data = b''
    for _ in range(100):
        chunk = sock.recv(65536)
        data += chunk
        if not chunk or (b'\r\n\r\n' in data and data.endswith(b'hello')):
            break
    return data


def head_app(session, request, api):
    """Answers HEAD by the path: with framing, without it, or with a 404."""
    if request.path == ['framed']:
        return (200, 'OK', {'content-length': 5}, None)
    if request.path == ['missing']:
        return (404, 'Not Found', {}, None)
    return (200, 'OK', {}, None)  # an app error: a GET would send a body


def test_live_head_rule():
    with TempServer(('127.0.0.1', 0), Validator(head_app), thread=True) as server:
        conn = Client(server.address).connect()
        r = conn.head('/framed', {})
        assert (r.status, r.headers['content-length'], r.body) == (200, 5, None)
        r = conn.head('/missing', {})
        assert (r.status, r.body) == (404, None)
        r = conn.head('/unframed', {})  # the server's own 500: content-length: 0
        assert (r.status, r.reason) == (500, 'Internal Server Error')
        conn.close()
