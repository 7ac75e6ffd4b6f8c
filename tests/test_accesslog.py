"""The access log: its line formats, and a line for every response a live server sends."""

import logging
import os
import re
import socket
import threading
import time

import pytest
from helpers import connect, exchange, recv_all, serving

from degu import _accesslog
from degu._accesslog import (
    FIELDS,
    AccessEntry,
    AccessFormat,
    AccessFormatter,
    client_host,
    escape,
)
from degu.base import BodyIter, Session

TIMEOUT = 10  # seconds: the bound on every socket wait in these tests

# The Combined Log Format as a log analyser reads it (GoAccess's and AWStats'
# "combined"), with degu's two fields after it.
CLF = re.compile(
    r'(?P<host>\S+) (?P<ident>\S+) (?P<user>\S+) \[(?P<time>\d\d/[A-Z][a-z]{2}/\d{4}'
    r':\d\d:\d\d:\d\d [+-]\d{4})\] "(?P<request>(?:[^"\\]|\\x[0-9A-F]{2})*)" '
    r'(?P<status>\d{3}) (?P<bytes>\d+) "(?P<referer>(?:[^"\\]|\\x[0-9A-F]{2})*)" '
    r'"(?P<agent>(?:[^"\\]|\\x[0-9A-F]{2})*)"(?P<rest>.*)'
)
TIME = re.compile(r'\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]')
DURATION = re.compile(r' (\d+\.\d{3}|-) ([-+X])$')


# --------------------------------------------------------------------------
# Fixtures and helpers


class Lines(logging.Handler):
    """Collects the degu.access lines, as the default formatter writes them."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []
        self.cond = threading.Condition()

    def emit(self, record):
        with self.cond:
            self.lines.append(record.getMessage())
            self.cond.notify_all()

    def wait(self, count):
        """The first *count* lines, once they are in (bounded)."""
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.lines) >= count, TIMEOUT), self.lines
            return list(self.lines)


@pytest.fixture
def access(monkeypatch):
    monkeypatch.setenv('TZ', 'UTC')
    time.tzset()
    monkeypatch.setattr(_accesslog, '_clf_time', (0, ''))
    logger = logging.getLogger('degu.access')
    handler = Lines()
    (level, propagate) = (logger.level, logger.propagate)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
        monkeypatch.undo()
        time.tzset()




def shape(line):
    """*line* with its time and duration replaced by T and D (checked first)."""
    assert TIME.search(line), line
    line = TIME.sub('[T]', line)
    match = DURATION.search(line)
    assert match, line
    if match.group(1) != '-':
        line = line[: match.start()] + ' D ' + match.group(2)
    return line


def app(session, request, api):
    if request.uri == '/fail':
        raise RuntimeError('the app broke')
    body = request.body.read() if request.body is not None else b''
    if request.method == 'HEAD':
        return (200, 'OK', {'content-length': 5}, None)
    return (200, 'OK', {}, b'hello' + body)


# --------------------------------------------------------------------------
# Formats, offline


def entry(**kw):
    values = dict(when=784111777.0, host='192.0.2.1', port=5000, ident=None,
                  request_line=('GET', '/a?b', 'HTTP/1.1'), status=200, body_bytes=12,
                  referer=None, user_agent=None, duration=0.0011, connection='+')
    values.update(kw)
    return AccessEntry(**values)


def test_combined_and_common(access):
    e = entry(referer='https://example.com/', user_agent='curl/8.5.0')
    assert str(e) == ('192.0.2.1 - - [06/Nov/1994:08:49:37 +0000] "GET /a?b HTTP/1.1" 200 12 '
                      '"https://example.com/" "curl/8.5.0" 1.100 +')
    assert AccessFormat('common').format(e) == (
        '192.0.2.1 - - [06/Nov/1994:08:49:37 +0000] "GET /a?b HTTP/1.1" 200 12')
    e = entry(request_line=None, status=400, body_bytes=0, duration=None, connection='-')
    assert str(e) == '192.0.2.1 - - [06/Nov/1994:08:49:37 +0000] "-" 400 0 "-" "-" - -'
    assert CLF.fullmatch(str(e))


@pytest.mark.parametrize('kw', [
    {},
    {'request_line': None, 'duration': None, 'connection': '-', 'status': 503},
    {'ident': 1000, 'host': 'unix:pid=5', 'port': None},
    {'referer': 'a"b', 'user_agent': '\\\t\xff', 'request_line': ('GET', '/"', 'HTTP/1.0')},
])
def test_combined_written_out_agrees_with_its_template(access, kw):
    e = entry(**kw)
    assert str(e) == _accesslog.COMBINED.format_map({n: get(e) for (n, get) in FIELDS.items()})
    assert CLF.fullmatch(str(e))


def test_every_field(access):
    template = ' '.join(f'{{{name}}}' for name in FIELDS)
    e = entry(host='unix:pid=7', port=None, ident=1000, user_agent='a b', duration=0.0025)
    assert AccessFormat(template).format(e) == (
        'unix:pid=7 - 1000 - 06/Nov/1994:08:49:37 +0000 GET /a?b HTTP/1.1 GET /a?b HTTP/1.1 '
        '200 12 - a b 2.500 2500 +')
    e = entry(request_line=None, duration=None)
    assert AccessFormat('{method}|{target}|{version}|{duration_us}|{{x}}').format(e) == (
        '-|-|-|-|{x}')


@pytest.mark.parametrize('template, message', [
    ('{host} {nope}', "unknown field 'nope'"),
    ('{host} {}', "unknown field ''"),
    ('{status!r}', '{status} takes no conversion or format spec'),
    ('{status:>5}', '{status} takes no conversion or format spec'),
    ('{host}\n{status}', 'control character'),
    ('{host', "expected '}' before end of string"),
    ('no fields', 'no field'),
])
def test_bad_templates(template, message):
    with pytest.raises(ValueError) as info:
        AccessFormat(template)
    assert str(info.value).startswith(f'access log format: {message}')
    with pytest.raises(TypeError):
        AccessFormat(b'{host}')


@pytest.mark.parametrize('text, escaped', [
    ('curl/8.5.0', 'curl/8.5.0'),
    ('a "quoted" \\ back', 'a \\x22quoted\\x22 \\x5C back'),
    ('tab\there', 'tab\\x09here'),
    ('\r\n127.0.0.1 - - [forged', '\\x0D\\x0A127.0.0.1 - - [forged'),
    ('\x00\x1f\x7f', '\\x00\\x1F\\x7F'),
    ('caf\xe9 \xff', 'caf\\xE9 \\xFF'),  # obs-text: latin-1, one character per byte
    ('\u20ac', '\\xE2\\x82\\xAC'),  # not from the wire, but never raw either
])
def test_escape(text, escaped):
    assert escape(text) == escaped
    # Printable ASCII, no raw quote, and a backslash only to start an escape.
    assert re.fullmatch(r'(?:[ !#-\[\]-~]|\\x[0-9A-F]{2})*', escape(text))


@pytest.mark.parametrize('tz, offset', [('UTC', '+0000'), ('IST-5:30', '+0530'),
                                        ('EST5', '-0500')])
def test_time_in_local_time_with_its_offset(monkeypatch, tz, offset):
    monkeypatch.setenv('TZ', tz)
    time.tzset()
    monkeypatch.setattr(_accesslog, '_clf_time', (0, ''))
    try:
        text = _accesslog.clf_time(784111777.5)
    finally:
        monkeypatch.undo()
        time.tzset()
    hour = {'+0000': '08:49', '+0530': '14:19', '-0500': '03:49'}[offset]
    assert text == f'06/Nov/1994:{hour}:37 {offset}'


def test_client_host():
    assert client_host(Session(('203.0.113.9', 41000))) == '203.0.113.9'
    assert client_host(Session(('2001:db8::1', 41000, 0, 0))) == '2001:db8::1'
    assert client_host(Session('')) == 'unix:'
    assert client_host(Session(b'\x00abc', (99, 0, 0))) == 'unix:pid=99'


def test_formatter():
    formatter = AccessFormatter('{status} "{request}"')
    record = logging.LogRecord('degu.access', logging.INFO, __file__, 1, entry(), None, None)
    assert formatter.format(record) == '200 "GET /a?b HTTP/1.1"'
    assert AccessFormatter().format(record) == str(entry())
    other = logging.LogRecord('degu.access', logging.INFO, __file__, 1, 'x %d', (5,), None)
    assert formatter.format(other) == 'x 5'
    with pytest.raises(ValueError):
        AccessFormatter('{bad}')


# --------------------------------------------------------------------------
# Live: the app's responses


def peer(kind, tmp_path):
    """(address to listen on, the host and ident fields its clients get)."""
    if kind == 'ipv4':
        return (('127.0.0.1', 0), '127.0.0.1 -')
    if kind == 'ipv6':
        return (('::1', 0, 0, 0), '::1 -')
    if kind == 'unix':
        return (str(tmp_path / 's.sock'), f'unix:pid={os.getpid()} {os.getuid()}')
    return (b'', f'unix:pid={os.getpid()} {os.getuid()}')


REQUESTS = [
    (b'GET /a/b?c=1&d=%20 HTTP/1.1\r\nHost: x\r\n\r\n',
     '"GET /a/b?c=1&d=%20 HTTP/1.1" 200 5 "-" "-" D +'),
    (b'HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n',
     '"HEAD /h HTTP/1.1" 200 0 "-" "-" D +'),
    (b'POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc',
     '"POST /form HTTP/1.1" 200 8 "-" "-" D +'),
    (b'PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n',
     '"PUT /c HTTP/1.1" 200 7 "-" "-" D +'),
    (b'GET / HTTP/1.1\r\nHost: x\r\nReferer: https://example.com/p?q=1\r\n'
     b'User-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0\r\n\r\n',
     '"GET / HTTP/1.1" 200 5 "https://example.com/p?q=1" '
     '"Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0" D +'),
    (b'GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: a"b\\c\td\xffe\r\n'
     b'Referer: " 200 0 "forged\r\n\r\n',
     '"GET / HTTP/1.1" 200 5 "\\x22 200 0 \\x22forged" "a\\x22b\\x5Cc\\x09d\\xFFe" D +'),
    (b'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n',
     '"OPTIONS * HTTP/1.1" 200 5 "-" "-" D +'),
    (b'GET /ten HTTP/1.0\r\n\r\n',
     '"GET /ten HTTP/1.0" 200 5 "-" "-" D -'),
    (b'GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
     '"GET /bye HTTP/1.1" 200 5 "-" "-" D -'),
    (b'GET /fail HTTP/1.1\r\nHost: x\r\n\r\n',
     '"GET /fail HTTP/1.1" 500 0 "-" "-" D -'),
]


@pytest.mark.parametrize('kind', ['ipv4', 'ipv6', 'unix', 'abstract'])
def test_a_line_per_response(access, tmp_path, kind):
    (address, who) = peer(kind, tmp_path)
    logging.getLogger('degu.server').disabled = True  # the 500's traceback
    try:
        with serving(app, address) as server:
            for (raw, _) in REQUESTS:
                with connect(server.address) as sock:
                    sock.sendall(raw)
                    sock.shutdown(socket.SHUT_WR)
                    assert recv_all(sock).startswith(b'HTTP/1.1 ')
            lines = access.wait(len(REQUESTS))
    finally:
        logging.getLogger('degu.server').disabled = False
    assert [shape(line) for line in lines] == [
        f'{who} - [T] {expected}' for (_, expected) in REQUESTS
    ]
    for line in lines:
        match = CLF.fullmatch(line)
        assert match, line
        assert match.group('host') == who.split()[0]


def test_keep_alive_then_close(access):
    with serving(app) as server:
        raw = (b'GET /1 HTTP/1.1\r\nHost: x\r\n\r\n' * 2
               + b'GET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
        reply = exchange(server.address, raw)
        assert reply.count(b'HTTP/1.1 200 OK') == 3
        lines = access.wait(3)
    assert [line[-1] for line in lines] == ['+', '+', '-']
    assert len(lines) == 3


def test_silent_and_not_counting_when_disabled(access, monkeypatch):
    import degu.server

    def refuse(*args, **kw):
        raise AssertionError('a counting transport with the access log off')

    logging.getLogger('degu.access').setLevel(logging.WARNING)
    monkeypatch.setattr(degu.server, 'CountingTransport', refuse)
    with serving(app) as server:
        assert exchange(server.address, b'GET / HTTP/1.1\r\nHost: x\r\n\r\n').endswith(b'hello')
        assert exchange(server.address, b'GET / HTTP/1.1\r\n\r\n').startswith(
            b'HTTP/1.1 400 ')
    assert access.lines == []


# --------------------------------------------------------------------------
# Live: the server's own answers, each logged once


SERVER_ANSWERS = [
    (b'GET /a"b HTTP/1.1\r\nHost: x\r\n\r\n', {}, 400, '"-"'),  # a hostile target
    (b'GET / HTTP/1.1\r\nHost : x\r\n\r\n', {}, 400, '"-"'),
    (b'GET /nohost HTTP/1.1\r\n\r\n', {}, 400, '"GET /nohost HTTP/1.1"'),
    (b'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n', {'max_body': 3}, 413, '"-"'),
    (b'POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n123456789\r\n'
     b'0\r\n\r\n', {'max_body': 3}, 413, '"POST /big HTTP/1.1"'),
    (b'GET /' + b'a' * 9000 + b' HTTP/1.1\r\nHost: x\r\n\r\n', {}, 414, '"-"'),
    (b'GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n', {'max_header_count': 2}, 431,
     '"-"'),
    (b'BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n', {}, 501, '"-"'),
    (b'GET / HTTP/2.0\r\nHost: x\r\n\r\n', {}, 505, '"-"'),
]


@pytest.mark.parametrize('raw, options, status, request_field', SERVER_ANSWERS)
def test_every_server_answer_is_logged_once(access, raw, options, status, request_field):
    with serving(app, **options) as server:
        reply = exchange(server.address, raw)
        assert reply.startswith(f'HTTP/1.1 {status} '.encode())
        lines = access.wait(1)
    assert len(lines) == 1
    match = CLF.fullmatch(lines[0])
    assert match, lines[0]
    assert (match.group('status'), match.group('bytes')) == (str(status), '0')
    assert lines[0].split(' [', 1)[0] == '127.0.0.1 - -'
    assert f' {request_field} {status} 0 ' in lines[0]
    assert lines[0].endswith(' -')  # closed after it


def test_408_from_the_accept_loop(access):
    with serving(app, timeout=5, transfer_timeout=0.3, min_rate=1000) as server:
        with connect(server.address) as sock:
            sock.sendall(b'PUT /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab')
            reply = recv_all(sock)
        lines = access.wait(1)
    assert reply.startswith(b'HTTP/1.1 408 Request Timeout\r\n')
    assert [shape(line) for line in lines] == [
        '127.0.0.1 - - [T] "PUT /slow HTTP/1.1" 408 0 "-" "-" - -'
    ]


def _blocking_app(release):
    def blocking(session, request, api):
        if request.uri == '/block':
            release.wait(TIMEOUT)
        body = request.body.read() if request.body is not None else b''
        return (200, 'OK', {}, body)
    return blocking


def test_503_when_full_at_accept_time(access):
    release = threading.Event()
    with serving(_blocking_app(release), max_connections=1) as server:
        with connect(server.address) as busy:
            busy.sendall(b'GET /block HTTP/1.1\r\nHost: x\r\n\r\n')
            for _ in range(200):  # until its thread is in the app
                if server._busy:
                    break
                time.sleep(0.01)
            reply = exchange(server.address, b'GET /turned-away HTTP/1.1\r\nHost: x\r\n\r\n')
            assert reply.startswith(b'HTTP/1.1 503 ')
            lines = access.wait(1)
            release.set()
            assert busy.recv(4096).startswith(b'HTTP/1.1 200 ')
        lines = access.wait(2)
    assert shape(lines[0]) == '127.0.0.1 - - [T] "-" 503 0 "-" "-" - -'
    assert shape(lines[1]) == '127.0.0.1 - - [T] "GET /block HTTP/1.1" 200 0 "-" "-" D +'


@pytest.mark.parametrize('first, rest, request_field', [
    # accepted with no request yet: its request comes once every thread is busy
    (b'', b'GET /late HTTP/1.1\r\nHost: x\r\n\r\n', '"-"'),
    # parked with its request, waiting for the body
    (b'PUT /w HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab', b'cd',
     '"PUT /w HTTP/1.1"'),
])
def test_503_when_full_for_a_waiting_connection(access, first, rest, request_field):
    release = threading.Event()
    with serving(_blocking_app(release), max_connections=1) as server:
        with connect(server.address) as waiting, connect(server.address) as busy:
            if first:
                waiting.sendall(first)
            time.sleep(0.3)  # both accepted; the waiting one without a thread
            busy.sendall(b'GET /block HTTP/1.1\r\nHost: x\r\n\r\n')
            for _ in range(200):
                if server._busy:
                    break
                time.sleep(0.01)
            waiting.sendall(rest)
            assert recv_all(waiting).startswith(b'HTTP/1.1 503 ')
            lines = access.wait(1)
            release.set()
        access.wait(2)
    assert shape(lines[0]) == f'127.0.0.1 - - [T] {request_field} 503 0 "-" "-" - -'


def test_a_cut_off_response_is_marked(access):
    def pieces():
        yield b'first piece'
        raise RuntimeError('the source broke')

    def cutting(session, request, api):
        return (200, 'OK', {}, BodyIter(pieces(), 100))

    logging.getLogger('degu.server').disabled = True
    try:
        with serving(cutting) as server:
            reply = exchange(server.address, b'GET /stream HTTP/1.1\r\nHost: x\r\n\r\n')
            lines = access.wait(1)
    finally:
        logging.getLogger('degu.server').disabled = False
    assert reply.startswith(b'HTTP/1.1 200 OK\r\n')
    assert reply.endswith(b'\r\n\r\nfirst piece')
    assert [shape(line) for line in lines] == [
        '127.0.0.1 - - [T] "GET /stream HTTP/1.1" 200 11 "-" "-" D X'
    ]
    assert CLF.fullmatch(lines[0]).group('rest').endswith(' X')


def test_a_client_gone_while_the_app_reads_is_499(access):
    def reader(session, request, api):
        return (200, 'OK', {}, request.body.read())

    with serving(reader) as server:
        with connect(server.address) as sock:
            sock.sendall(b'POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n'
                         b'Expect: 100-continue\r\n\r\n')
            assert sock.recv(4096) == b'HTTP/1.1 100 Continue\r\n\r\n'
            sock.sendall(b'0123456789')
        lines = access.wait(1)
    assert [shape(line) for line in lines] == [
        '127.0.0.1 - - [T] "POST /up HTTP/1.1" 499 0 "-" "-" D X'
    ]


def test_the_client_behind_a_proxy_is_logged(access):
    # The host field is the client the app sees: a trusted proxy's
    # X-Forwarded-For, and a PROXY protocol header's source address.
    with serving(app, forwarded_allow_ips='127.0.0.1') as server:
        exchange(server.address, b'GET / HTTP/1.1\r\nHost: x\r\n'
                 b'X-Forwarded-For: 198.51.100.9, 203.0.113.7\r\n\r\n')
        [line] = access.wait(1)
    assert line.startswith('203.0.113.7 - - [')
    with serving(app, proxy_protocol=True) as server:
        exchange(server.address, b'PROXY TCP4 192.0.2.44 127.0.0.1 4567 80\r\n'
                 b'GET / HTTP/1.1\r\nHost: x\r\n\r\n')
        lines = access.wait(2)
    assert lines[1].startswith('192.0.2.44 - - [')
    with serving(app) as server:  # an untrusted peer's header is not believed
        exchange(server.address, b'GET / HTTP/1.1\r\nHost: x\r\n'
                 b'X-Forwarded-For: 203.0.113.7\r\n\r\n')
        lines = access.wait(3)
    assert lines[2].startswith('127.0.0.1 - - [')
