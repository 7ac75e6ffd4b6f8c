"""Tests of the command line, ``python3 -m degu``: real subprocesses on free
ports, fetched with urllib.request and curl, stopped with SIGTERM."""

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request

import pytest
from helpers import free_port

import degu
from degu.__main__ import (
    CommandError,
    build_parser,
    format_address,
    format_url,
    looks_like_wsgi,
    parse_address,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 20


class Degu:
    """``python3 -m degu ARGS`` in a subprocess, started and waited for."""

    def __init__(self, *args, cwd=None):
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'degu', *args], cwd=cwd or ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        # The 'Serving ...' line; with --log-level info or debug, log lines may come first.
        self.lines = []
        for _ in range(20):
            line = self.proc.stderr.readline()
            self.lines.append(line)
            if not line or line.startswith('Serving '):
                break
        self.first_line = self.lines[-1]

    def stop(self, sig=signal.SIGTERM):
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            (out, err) = self.proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:  # pragma: no cover - reported by the assert
            self.proc.kill()
            (out, err) = self.proc.communicate()
        return (self.proc.returncode, err)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def run_degu(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, '-m', 'degu', *args], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)


def fetch(url, data=None):
    with urllib.request.urlopen(urllib.request.Request(url, data=data),
                                timeout=TIMEOUT) as response:
        return (response.status, dict(response.headers), response.read())


APP_MODULE = textwrap.dedent('''
    import threading
    release = threading.Event()

    def app(session, request, api):
        if request.uri == '/slow':
            release.wait(0.5)
        body = request.body.read() if request.body is not None else b''
        return (200, 'OK', {'content-type': 'text/plain'}, b'rgi ' + request.uri.encode() + body)

    class nested:
        @staticmethod
        def app(session, request, api):
            return (200, 'OK', {}, b'nested')

    def wsgi(environ, start_response):
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'wsgi ' + environ['PATH_INFO'].encode()]

    not_callable = 42

    def create_app():
        def made(session, request, api):
            return (200, 'OK', {}, b'made by create_app()')
        return made

    def failing_factory():
        settings = {}
        return settings['database']

    def bad_factory():
        return 42

    class WSGIObject:
        def __call__(self, environ, start_response):
            start_response('200 OK', [])
            return [b'object']

    wsgi_object = WSGIObject()
''')


@pytest.fixture
def appdir(tmp_path):
    (tmp_path / 'cliapp.py').write_text(APP_MODULE)
    return tmp_path


def test_parse_address():
    assert parse_address('127.0.0.1:80') == ('127.0.0.1', 80)
    assert parse_address('localhost:8000') == ('localhost', 8000)
    assert parse_address('[::1]:80') == ('::1', 80, 0, 0)
    assert parse_address('[fe80::1%1]:80') == ('fe80::1', 80, 0, 1)
    assert parse_address('8080') == ('127.0.0.1', 8080)
    assert parse_address(':8080') == ('127.0.0.1', 8080)
    assert parse_address('localhost') == ('localhost', 8000)
    assert parse_address('0.0.0.0') == ('0.0.0.0', 8000)
    assert parse_address('[::1]') == ('::1', 8000, 0, 0)
    assert parse_address('[::1]', 9000) == ('::1', 9000, 0, 0)
    assert parse_address('0.0.0.0', 9000) == ('0.0.0.0', 9000)
    assert parse_address('/tmp/x.sock') == '/tmp/x.sock'
    assert parse_address('./x.sock') == os.path.abspath('x.sock')
    assert parse_address('@') == b''
    assert parse_address('@name') == b'\x00name'
    for bad in ('', 'a b', '[::1]80', '1.2.3.4:http', '1.2.3.4:70000', '::1:80', '::1',
                '[fe80::1%nosuchif]:80', ':'):
        with pytest.raises(CommandError) as e:
            parse_address(bad)
        assert e.value.code == 2
        assert str(e.value).startswith('bad address: ')
    for (text, message) in [
        ('::1', "bad address: '::1' (an IPv6 address goes in brackets: [IPV6]:PORT)"),
        ('a b', "bad address: 'a b' (expected HOST:PORT, HOST, :PORT, [IPV6]:PORT, PORT, "
                'a path or @name)'),
        ('1.2.3.4:70000', "bad address: '1.2.3.4:70000' (bad port '70000')"),
    ]:
        with pytest.raises(CommandError) as e:
            parse_address(text)
        assert str(e.value) == message
    for (text, message) in [
        ('localhost:80', "bad address: 'localhost:80' has a port already; --port 90 too"),
        ('80', "bad address: '80' has a port already; --port 90 too"),
        ('/tmp/x.sock', "bad address: '/tmp/x.sock' is an AF_UNIX socket; it takes no --port"),
        ('@x', "bad address: '@x' is an AF_UNIX socket; it takes no --port"),
    ]:
        with pytest.raises(CommandError) as e:
            parse_address(text, 90)
        assert (e.value.code, str(e.value)) == (2, message)


def test_format_address():
    assert format_address(('127.0.0.1', 80)) == '127.0.0.1:80'
    assert format_address(('::1', 80, 0, 0)) == '[::1]:80'
    assert format_address('/tmp/a.sock') == '/tmp/a.sock'
    assert format_address(b'\x00abc') == '@abc'


def test_format_url():
    assert format_url(('127.0.0.1', 8000)) == 'http://127.0.0.1:8000/'
    assert format_url(('::1', 8000, 0, 0), True) == 'https://[::1]:8000/'
    assert format_url('/tmp/a.sock') == 'http over AF_UNIX /tmp/a.sock'
    assert format_url(b'\x00abc') == 'http over AF_UNIX @abc'


def test_serve_rgi_app_and_sigterm(appdir):
    port = free_port()
    with Degu('serve', 'cliapp:app', '--address', f'127.0.0.1:{port}', cwd=appdir) as degu:
        assert degu.first_line.startswith('Serving cliapp:app on http://127.0.0.1:')
        (status, headers, body) = fetch(f'http://127.0.0.1:{port}/hello')
        assert (status, body) == (200, b'rgi /hello')
        assert 'date' in {name.lower() for name in headers}
        (status, headers, body) = fetch(f'http://127.0.0.1:{port}/post', b'data')
        assert body == b'rgi /postdata'
        (code, err) = degu.stop()
    assert code == 0
    assert 'Stopping (SIGTERM)' in err
    assert '"GET /hello HTTP/1.1" 200 10 ' in err  # the access log
    assert 'Traceback' not in err


def test_sigterm_lets_in_flight_requests_finish(appdir):
    port = free_port()
    with Degu('serve', 'cliapp:app', '--address', str(port), '--quiet', cwd=appdir) as degu:
        with socket.create_connection(('127.0.0.1', port), timeout=TIMEOUT) as sock:
            sock.sendall(b'GET /slow HTTP/1.1\r\nHost: t\r\n\r\n')
            time.sleep(0.1)
            degu.proc.send_signal(signal.SIGTERM)
            data = b''
            while True:
                part = sock.recv(65536)
                if not part:
                    break
                data += part
        (code, err) = degu.stop(None)
    assert data.startswith(b'HTTP/1.1 200 OK')
    assert data.endswith(b'rgi /slow')
    assert code == 0
    assert '"GET /slow"' not in err  # --quiet


def test_serve_nested_and_wsgi_over_unix(appdir):
    path = str(appdir / 'degu.sock')
    with Degu('serve', 'cliapp:nested.app', '--address', path, cwd=appdir) as degu:
        assert degu.first_line.startswith('Serving cliapp:nested.app on http over AF_UNIX')
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(TIMEOUT)
            sock.connect(path)
            sock.sendall(b'GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')
            assert sock.recv(4096).endswith(b'nested')
        assert degu.stop()[0] == 0
    port = free_port()
    with Degu('serve', '--wsgi', 'cliapp:wsgi', '--address', f'[::1]:{port}',
              cwd=appdir) as degu:
        assert fetch(f'http://[::1]:{port}/w')[2] == b'wsgi /w'
        assert degu.stop()[0] == 0


@pytest.mark.parametrize('args,code,message', [
    (['serve', 'nosuchmodule:app'], 1,
     "degu: error: cannot import module 'nosuchmodule': No module named 'nosuchmodule'"),
    (['serve', 'cliapp:missing'], 1, "degu: error: module 'cliapp' has no attribute 'missing'"),
    (['serve', 'cliapp:not_callable'], 1,
     "degu: error: 'cliapp:not_callable' is not callable: 42"),
    (['serve', 'cliapp:app', '--address', 'no where'], 2,
     "degu: error: bad address: 'no where' (expected HOST:PORT, HOST, :PORT, [IPV6]:PORT, "
     "PORT, a path or @name)"),
    (['serve', 'cliapp:app', '--ssl-key', 'x.pem'], 2, 'degu: error: --ssl-key needs --ssl-cert'),
    (['serve', 'cliapp:app', '--ssl-ca', 'x.pem'], 2, 'degu: error: --ssl-ca needs --ssl-cert'),
    (['serve', 'cliapp:app', '--max-connections', '0'], 2,
     'degu: error: --max-connections: need 1 <= max_connections <= 100000; got 0'),
    (['serve', 'cliapp:app', '-p', '80000'], 2,
     "degu: error: bad port: '80000' (need 0 to 65535)"),
    (['serve', 'cliapp:app', '-p', 'http'], 2, "degu: error: bad port: 'http' (need 0 to 65535)"),
    (['serve', 'cliapp:app', '-b', 'localhost:8080', '-p', '9000'], 2,
     "degu: error: bad address: 'localhost:8080' has a port already; --port 9000 too"),
    (['files', '8080', '-p', '9000'], 2,
     'degu: error: the port is given twice: 8080 and --port 9000'),
    (['files', '8080', '9090'], 1, "degu: error: not a folder: '8080'"),
    (['files', 'a', '-d', 'b'], 2, "degu: error: the folder is given twice: 'a' and "
     "--directory 'b'"),
    (['serve', 'cliapp:wsgi'], 2, "degu: error: 'cliapp:wsgi' takes (environ, start_response), "
     'a WSGI application: serve it with --wsgi'),
    (['serve', 'cliapp:wsgi_object'], 2, "degu: error: 'cliapp:wsgi_object' takes (environ, "
     'start_response), a WSGI application: serve it with --wsgi'),
    (['serve', 'cliapp:bad_factory()'], 1,
     "degu: error: 'cliapp:bad_factory()' returned 42, which is not callable"),
    (['serve', 'cliapp:create_app(1)'], 2, "degu: error: bad app: 'cliapp:create_app(1)' (a "
     'factory is called with no arguments: MODULE:FACTORY())'),
    (['serve', 'cliapp:()'], 2,
     "degu: error: bad app: 'cliapp:()' (expected MODULE:APP or MODULE:FACTORY())"),
    (['files', '/no/such/folder'], 1, "degu: error: not a folder: '/no/such/folder'"),
])
def test_errors_are_one_line(appdir, args, code, message):
    result = run_degu(*args, cwd=appdir)
    assert result.returncode == code
    assert result.stderr == message + '\n'


def test_port_in_use(appdir):
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_degu('serve', 'cliapp:app', '--address', f'127.0.0.1:{port}', cwd=appdir)
    assert result.returncode == 1
    assert result.stderr == (
        f'degu: error: cannot listen on 127.0.0.1:{port}: Address already in use\n'
    )


def test_bad_arguments_exit_2():
    result = run_degu('frobnicate')
    assert result.returncode == 2
    assert 'invalid choice' in result.stderr


@pytest.fixture
def folder(tmp_path):
    (tmp_path / 'index.html').write_bytes(b'<h1>index</h1>')
    (tmp_path / 'data.bin').write_bytes(bytes(range(256)) * 400)
    return tmp_path


def test_files(folder):
    port = free_port()
    with Degu('files', str(folder), '--address', f'127.0.0.1:{port}') as degu:
        assert degu.first_line.startswith(f'Serving folder {folder} on http://127.0.0.1:')
        (status, headers, body) = fetch(f'http://127.0.0.1:{port}/')
        assert body == b'<h1>index</h1>'
        (status, headers, body) = fetch(f'http://127.0.0.1:{port}/data.bin')
        assert body == bytes(range(256)) * 400
        with pytest.raises(urllib.error.HTTPError) as e:
            fetch(f'http://127.0.0.1:{port}/missing')
        assert e.value.code == 404
        request = urllib.request.Request(f'http://127.0.0.1:{port}/data.bin',
                                         headers={'Range': 'bytes=10-19'})
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            assert response.status == 206
            assert response.read() == bytes(range(10, 20))
        (code, err) = degu.stop(signal.SIGINT)
    assert code == 0
    assert 'Stopping (SIGINT)' in err


def test_files_lists_a_folder_without_index_html(folder):
    (folder / 'index.html').unlink()
    port = free_port()
    with Degu('files', str(folder), '--address', str(port)) as degu:
        (status, headers, body) = fetch(f'http://127.0.0.1:{port}/')
        assert status == 200
        assert b'<a href="data.bin">data.bin</a>' in body
        assert degu.stop()[0] == 0
    with Degu('files', str(folder), '--address', str(port), '--no-listing') as degu:
        with pytest.raises(urllib.error.HTTPError) as e:
            fetch(f'http://127.0.0.1:{port}/')
        assert e.value.code == 404
        assert degu.stop()[0] == 0


def test_files_default_is_the_current_folder(folder):
    port = free_port()
    with Degu('files', '--address', str(port), cwd=folder) as degu:
        assert fetch(f'http://127.0.0.1:{port}/index.html')[2] == b'<h1>index</h1>'
        assert degu.stop()[0] == 0


@pytest.mark.skipif(shutil.which('curl') is None, reason='curl is not installed')
def test_files_with_curl(folder):
    port = free_port()
    with Degu('files', str(folder), '--address', f'127.0.0.1:{port}') as degu:
        url = f'http://127.0.0.1:{port}/data.bin'
        out = subprocess.run(['curl', '-sS', '--max-time', '10', url, url],
                             capture_output=True, timeout=TIMEOUT)
        assert out.returncode == 0
        assert out.stdout == (bytes(range(256)) * 400) * 2
        out = subprocess.run(['curl', '-sS', '--max-time', '10', '-r', '0-3', url],
                             capture_output=True, timeout=TIMEOUT)
        assert out.stdout == bytes(range(4))
        out = subprocess.run(['curl', '-sS', '--max-time', '10', '-I', url],
                             capture_output=True, text=True, timeout=TIMEOUT)
        assert 'content-length: 102400' in out.stdout.lower()
        assert degu.stop()[0] == 0


@pytest.mark.parametrize('pure', ['0', '1'])
def test_version(monkeypatch, pure):
    import importlib.util

    monkeypatch.setenv('DEGU_PURE', pure)
    result = run_degu('--version')
    assert result.returncode == 0
    version = '.'.join(map(str, sys.version_info[:3]))
    built = importlib.util.find_spec('degu._cparse') is not None
    core = 'c' if built and pure == '0' else 'python'
    assert result.stdout == f'degu {degu.__version__} (Python {version}, {core} core)\n'


def test_program_name_in_usage(monkeypatch):
    result = run_degu('--help')
    assert result.stdout.startswith('usage: python3 -m degu [-h] [--version] COMMAND')
    monkeypatch.setattr(sys, 'argv', ['/usr/local/bin/degu', '--help'])
    assert build_parser().format_usage().startswith('usage: degu [-h]')


def test_unknown_option_shows_the_usage_of_its_command():
    result = run_degu('files', '--bogus')
    assert result.returncode == 2
    assert result.stderr.startswith('usage: python3 -m degu files [-h]')
    assert result.stderr.endswith(
        'python3 -m degu files: error: unrecognized arguments: --bogus\n'
    )
    result = run_degu('serve', 'cliapp:app', '--threads', '4')
    assert result.returncode == 2
    assert result.stderr.startswith('usage: python3 -m degu serve [-h]')
    assert result.stderr.endswith(
        'python3 -m degu serve: error: unrecognized arguments: --threads 4\n'
    )


def test_looks_like_wsgi():
    class RGI:
        def __call__(self, session, request, api):
            return (200, 'OK', {}, None)

    class WSGI:
        def __call__(self, environ, start_response):
            return []

    assert looks_like_wsgi(WSGI()) is True
    assert looks_like_wsgi(lambda environ, start_response, *rest: []) is False
    assert looks_like_wsgi(RGI()) is False
    assert looks_like_wsgi(lambda *args: None) is False
    assert looks_like_wsgi(len) is False
    assert looks_like_wsgi(print) is False  # no signature: served as given


def test_port_as_argument_and_http_server_habits(folder):
    port = free_port()
    with Degu('files', str(port), cwd=folder) as degu:  # python3 -m http.server PORT
        assert degu.first_line.startswith(f'Serving folder {folder} on '
                                          f'http://127.0.0.1:{port}/')
        assert fetch(f'http://127.0.0.1:{port}/index.html')[2] == b'<h1>index</h1>'
        assert degu.stop()[0] == 0
    (folder / '1234').mkdir()
    (folder / '1234' / 'index.html').write_bytes(b'in 1234')
    port = free_port()
    with Degu('files', '1234', '-p', str(port), cwd=folder) as degu:  # a folder wins
        assert fetch(f'http://127.0.0.1:{port}/')[2] == b'in 1234'
        assert degu.stop()[0] == 0
    port = free_port()
    with Degu('files', '-d', str(folder / '1234'), '-b', '127.0.0.1', '--port', str(port)) \
            as degu:
        assert fetch(f'http://127.0.0.1:{port}/')[2] == b'in 1234'
        assert degu.stop()[0] == 0
    port = free_port()
    with Degu('files', str(folder), str(port)) as degu:
        assert fetch(f'http://127.0.0.1:{port}/')[2] == b'<h1>index</h1>'
        assert degu.stop()[0] == 0
    port = free_port()
    with Degu('files', '--directory', str(folder), '--bind', f':{port}') as degu:
        assert fetch(f'http://127.0.0.1:{port}/')[2] == b'<h1>index</h1>'
        assert degu.stop()[0] == 0


def test_factory(appdir):
    port = free_port()
    with Degu('serve', 'cliapp:create_app()', '-p', str(port), cwd=appdir) as degu:
        assert degu.first_line.startswith('Serving cliapp:create_app() on http://127.0.0.1:')
        assert fetch(f'http://127.0.0.1:{port}/')[2] == b'made by create_app()'
        assert degu.stop()[0] == 0
    result = run_degu('serve', 'cliapp:failing_factory()', cwd=appdir)
    assert result.returncode == 1
    # Python 3.11+ may underline the expression with ~ and ^: not compared.
    assert [line for line in result.stderr.splitlines() if line.strip('~^ ')] == [
        "degu: error: 'cliapp:failing_factory()' failed: KeyError: 'database'",
        f'  File "{appdir / "cliapp.py"}", line 29, in failing_factory',
        "    return settings['database']",
    ]
    assert 'degu/' not in result.stderr.replace(str(appdir), '')


BROKEN_MODULES = {
    'syntax': ('x = 1\ndef broken(:\n    pass\n', [
        "degu: error: cannot import module 'broken': SyntaxError: invalid syntax",
        '  File "{dir}/broken.py", line 2',
        '    def broken(:',
    ]),
    'missing_dependency': ('import os\nimport nosuchdependency\n', [
        "degu: error: cannot import module 'broken': ModuleNotFoundError: "
        "No module named 'nosuchdependency'",
        '  File "{dir}/broken.py", line 2, in <module>',
        '    import nosuchdependency',
    ]),
    'raises': ('import helper\n', [
        "degu: error: cannot import module 'broken': RuntimeError: no DATABASE_URL",
        '  File "{dir}/broken.py", line 1, in <module>',
        '    import helper',
        '  File "{dir}/helper.py", line 3, in <module>',
        '    connect()',
        '  File "{dir}/helper.py", line 2, in connect',
        "    raise RuntimeError('no DATABASE_URL')",
    ]),
}


@pytest.mark.parametrize('case', sorted(BROKEN_MODULES))
def test_a_module_that_fails_to_import_shows_only_its_own_frames(tmp_path, case):
    (source, expected) = BROKEN_MODULES[case]
    (tmp_path / 'broken.py').write_text(source)
    (tmp_path / 'helper.py').write_text(
        "def connect():\n    raise RuntimeError('no DATABASE_URL')\nconnect()\n"
    )
    result = run_degu('serve', 'broken:app', cwd=tmp_path)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip('~^ ')]
    assert lines == [line.format(dir=tmp_path) for line in expected]


def test_server_limits_as_options(appdir):
    port = free_port()
    with Degu('serve', 'cliapp:app', '-p', str(port), '--max-body', '4', '--max-requests', '2',
              '--idle-timeout', '5', '--timeout', '5', '--transfer-timeout', '5',
              '--min-rate', '100', '--max-header-bytes', '2048', '--max-header-count', '10',
              '--max-connections', '3', cwd=appdir) as degu:
        conn = http.client.HTTPConnection('127.0.0.1', port, timeout=TIMEOUT)
        try:
            conn.request('POST', '/a', body=b'1234')
            response = conn.getresponse()
            assert (response.status, response.read()) == (200, b'rgi /a1234')
            assert response.getheader('connection') is None
            conn.request('GET', '/b')
            response = conn.getresponse()
            assert (response.status, response.read()) == (200, b'rgi /b')
            assert response.getheader('connection') == 'close'  # --max-requests 2
        finally:
            conn.close()
        conn = http.client.HTTPConnection('127.0.0.1', port, timeout=TIMEOUT)
        try:
            conn.request('POST', '/c', body=b'12345')
            assert conn.getresponse().status == 413  # --max-body 4
            conn = http.client.HTTPConnection('127.0.0.1', port, timeout=TIMEOUT)
            conn.request('GET', '/d', headers={f'x-{i}': 'v' for i in range(10)})
            assert conn.getresponse().status == 431  # --max-header-count 10
        finally:
            conn.close()
        assert degu.stop()[0] == 0


@pytest.mark.parametrize('args,message', [
    (['--max-body', 'lots'], "--max-body: need an integer; got 'lots'"),
    (['--max-body', '-1'], '--max-body: need max_body >= 0; got -1'),
    (['--timeout', 'soon'], "--timeout: need a number; got 'soon'"),
    (['--timeout', '0'], '--timeout: timeout must be > 0; got 0'),
    (['--idle-timeout', '-0.5'], '--idle-timeout: idle_timeout must be > 0; got -0.5'),
    (['--transfer-timeout', 'inf'], "--transfer-timeout: need a finite number; got 'inf'"),
    (['--max-requests', '0'], '--max-requests: need 1 <= max_requests <= '),
    (['--max-header-bytes', '10'],
     '--max-header-bytes: need 1024 <= max_header_bytes <= 1048576; got 10'),
    (['--max-header-count', '1.5'], "--max-header-count: need an integer; got '1.5'"),
    (['--min-rate', '0'], '--min-rate: need min_rate >= 1; got 0'),
])
def test_bad_limit_is_one_line_naming_the_flag(appdir, args, message):
    result = run_degu('serve', 'cliapp:app', *args, cwd=appdir)
    assert result.returncode == 2
    assert result.stderr.startswith(f'degu: error: {message}')
    assert len(result.stderr.splitlines()) == 1


def test_log_level_in_any_case_and_sighup_is_harmless(appdir):
    port = free_port()
    with Degu('serve', 'cliapp:app', '-p', str(port), '--log-level', 'INFO',
              cwd=appdir) as degu:
        assert degu.first_line.startswith('Serving cliapp:app')
        degu.proc.send_signal(signal.SIGHUP)
        assert fetch(f'http://127.0.0.1:{port}/after-hup')[2] == b'rgi /after-hup'
        degu.proc.send_signal(signal.SIGHUP)
        assert fetch(f'http://127.0.0.1:{port}/again')[2] == b'rgi /again'
        (code, err) = degu.stop()
    assert code == 0
    err = ''.join(degu.lines) + err
    # Each SIGHUP is logged; two sent close together may arrive as one (POSIX
    # signals do not queue), so at least one line, and the server served on.
    assert 1 <= err.count('SIGHUP received: nothing to reload, still serving') <= 2
    assert 'Starting degu ' in err  # INFO is on
    assert 'Stopping (SIGTERM)' in err
    result = run_degu('serve', 'cliapp:app', '--log-level', 'LOUD', cwd=appdir)
    assert result.returncode == 2
    assert "argument --log-level: invalid choice: 'loud'" in result.stderr


@pytest.fixture(scope='module')
def pki():
    from degu.misc import TempPKI

    with TempPKI(client_pki=True) as pki:
        yield pki


def _https_get(port, path='/'):
    import ssl

    ctx = ssl.create_default_context(cafile=None)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection('127.0.0.1', port, timeout=TIMEOUT, context=ctx)
    try:
        conn.request('GET', path)
        response = conn.getresponse()
        return (response.status, response.read())
    finally:
        conn.close()


def test_tls_with_a_combined_pem_file(appdir, pki):
    both = appdir / 'both.pem'
    both.write_bytes(pki.read(pki.server_id, 'cert') + pki.read(pki.server_id, 'key'))
    port = free_port()
    with Degu('serve', 'cliapp:app', '-p', str(port), '--ssl-cert', str(both),
              cwd=appdir) as degu:
        assert degu.first_line.startswith(f'Serving cliapp:app on https://127.0.0.1:{port}/')
        assert _https_get(port, '/tls') == (200, b'rgi /tls')
        assert degu.stop()[0] == 0
    port = free_port()
    with Degu('serve', 'cliapp:app', '-p', str(port),
              '--ssl-cert', pki.path(pki.server_id, 'cert'),
              '--ssl-key', pki.path(pki.server_id, 'key'), cwd=appdir) as degu:
        assert _https_get(port, '/tls') == (200, b'rgi /tls')
        assert degu.stop()[0] == 0


def test_tls_file_errors_name_the_flag_and_the_file(appdir, pki):
    cert = pki.path(pki.server_id, 'cert')
    key = pki.path(pki.server_id, 'key')
    other_key = pki.path(pki.client_id, 'key')
    text = appdir / 'notes.txt'
    text.write_text('not a PEM file\n')
    folder = appdir / 'certs'
    folder.mkdir()
    missing = str(appdir / 'nonexistent.pem')
    encrypted = appdir / 'encrypted.key'
    subprocess.run(['openssl', 'pkey', '-in', key, '-out', str(encrypted), '-aes256',
                    '-passout', 'pass:secret'], check=True, capture_output=True, timeout=TIMEOUT)
    cases = [
        (['--ssl-cert', missing, '--ssl-key', key], f'--ssl-cert: no such file: {missing!r}'),
        (['--ssl-cert', str(folder), '--ssl-key', key], f"--ssl-cert: not a file: '{folder}'"),
        (['--ssl-cert', str(text), '--ssl-key', key],
         f"--ssl-cert: no PEM certificate in '{text}'"),
        (['--ssl-cert', key, '--ssl-key', key], f'--ssl-cert: no PEM certificate in {key!r}'),
        (['--ssl-cert', cert], f'--ssl-cert: no private key in {cert!r} (give it with '
         '--ssl-key)'),
        (['--ssl-cert', cert, '--ssl-key', missing], f'--ssl-key: no such file: {missing!r}'),
        (['--ssl-cert', cert, '--ssl-key', str(text)],
         f"--ssl-key: no PEM private key in '{text}'"),
        (['--ssl-cert', cert, '--ssl-key', other_key],
         f'--ssl-key: the private key in {other_key!r} does not match the certificate in '
         f'{cert!r}'),
        (['--ssl-cert', cert, '--ssl-key', str(encrypted)],
         f"--ssl-key: the private key in '{encrypted}' is encrypted; degu needs it without a "
         'passphrase'),
        (['--ssl-cert', cert, '--ssl-key', key, '--ssl-ca', str(text)],
         f"--ssl-ca: no PEM certificate in '{text}'"),
        (['--ssl-cert', cert, '--ssl-key', key, '--ssl-ca', missing],
         f'--ssl-ca: no such file: {missing!r}'),
    ]
    for (args, message) in cases:
        result = run_degu('serve', 'cliapp:app', '-p', '0', *args, cwd=appdir)
        assert (result.returncode, result.stderr) == (1, f'degu: error: {message}\n')


def test_unix_socket_file_left_behind(appdir):
    path = str(appdir / 'app.sock')
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # as a killed server leaves it: the file stays
    with Degu('serve', 'cliapp:app', '--address', path, cwd=appdir) as degu:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(TIMEOUT)
            sock.connect(path)
            sock.sendall(b'GET /unix HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')
            assert sock.recv(4096).endswith(b'rgi /unix')
        assert degu.stop()[0] == 0
    assert not os.path.exists(path)
    with open(path, 'w') as f:
        f.write('not a socket')
    result = run_degu('serve', 'cliapp:app', '--address', path, cwd=appdir)
    assert (result.returncode, result.stderr) == (1, (
        f'degu: error: cannot listen on {path}: Address already in use by a file that is not '
        'a socket (left alone)\n'
    ))
    with open(path) as f:
        assert f.read() == 'not a socket'


def test_proxy_options_parsed():
    from degu.__main__ import parse_args, server_options

    args = parse_args(['serve', 'm:app', '--forwarded-allow-ips', '127.0.0.1, unix',
                       '--proxy-protocol', '--root-path', '/api'])
    assert server_options(args) == {'forwarded_allow_ips': '127.0.0.1, unix',
                                    'proxy_protocol': True, 'root_path': '/api'}
    assert server_options(parse_args(['files'])) == {}
    for (flag, value, message) in [
        ('--forwarded-allow-ips', 'localhost', "--forwarded-allow-ips: forwarded_allow_ips: bad "
         "entry: 'localhost' (need an IP address, a network, 'unix' or '*')"),
        ('--root-path', 'api', "--root-path: root_path: need '/' and path segments, as "
         "'/api'; got 'api'"),
    ]:
        with pytest.raises(CommandError) as e:
            server_options(parse_args(['serve', 'm:app', flag, value]))
        assert str(e.value) == message


def test_serve_behind_proxy(appdir):
    port = free_port()
    with Degu('serve', '--wsgi', 'cliapp:wsgi', '--address', f'127.0.0.1:{port}',
              '--proxy-protocol', '--root-path', '/r', '--log-level', 'info',
              cwd=appdir) as degu:
        with socket.create_connection(('127.0.0.1', port), timeout=TIMEOUT) as sock:
            sock.sendall(b'PROXY TCP4 192.0.2.1 127.0.0.1 5000 80\r\n'
                         b'GET /r/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')
            assert sock.recv(4096).endswith(b'wsgi /x')
        with socket.create_connection(('127.0.0.1', port), timeout=TIMEOUT) as sock:
            sock.sendall(b'GET /r/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')
            assert sock.recv(4096) == b''  # no PROXY header: closed without a word
        (code, err) = degu.stop()
    assert code == 0
    assert 'Traceback' not in err
    assert 'bad PROXY protocol header, connection closed' in err


# --------------------------------------------------------------------------
# The access log: --access-log, --access-log-format, SIGHUP

ACCESS_TIME = r'\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000\]'


def _access_lines(path):
    with open(path, encoding='ascii') as f:
        return f.read().splitlines()


@pytest.mark.skipif(shutil.which('curl') is None, reason='curl is not installed')
def test_access_log_file_with_curl(folder, tmp_path, monkeypatch):
    import re

    monkeypatch.setenv('TZ', 'UTC')
    log = tmp_path / 'logs' / 'access.log'
    log.parent.mkdir()
    log.write_text('an earlier line\n')  # appended to, never truncated
    port = free_port()
    with Degu('files', str(folder), '--address', str(port), '--access-log', str(log)) as degu:
        url = f'http://127.0.0.1:{port}/index.html?x=1'
        out = subprocess.run(['curl', '-sS', '--max-time', '10', '-A', 'tester "1.0"\\',
                              '-e', 'http://example.com/from', url],
                             capture_output=True, timeout=TIMEOUT)
        assert (out.returncode, out.stdout) == (0, b'<h1>index</h1>')
        (code, err) = degu.stop()
    assert code == 0
    lines = _access_lines(log)
    assert lines[0] == 'an earlier line'
    assert len(lines) == 2
    assert re.fullmatch(
        r'127\.0\.0\.1 - - ' + ACCESS_TIME + r' "GET /index\.html\?x=1 HTTP/1\.1" 200 14 '
        r'"http://example\.com/from" "tester \\x221\.0\\x22\\x5C" \d+\.\d{3} \+', lines[1]
    ), lines[1]
    assert 'GET /index.html' not in err  # the file, not stderr


def test_access_log_formats_and_stderr(appdir, monkeypatch):
    import re

    monkeypatch.setenv('TZ', 'UTC')
    port = free_port()
    with Degu('serve', 'cliapp:app', '-p', str(port), '--access-log', '-',
              '--access-log-format', 'common', cwd=appdir) as degu:
        fetch(f'http://127.0.0.1:{port}/c')
        (code, err) = degu.stop()
    assert code == 0
    assert re.search(r'^127\.0\.0\.1 - - ' + ACCESS_TIME + r' "GET /c HTTP/1\.1" 200 6$',
                     err, re.MULTILINE), err
    template = '{method} {target} -> {status} {bytes} {connection} {{{user_agent}}}'
    with Degu('serve', 'cliapp:app', '-p', str(port), '--access-log-format', template,
              cwd=appdir) as degu:
        fetch(f'http://127.0.0.1:{port}/t')
        (code, err) = degu.stop()
    assert code == 0
    assert re.search(r'^GET /t -> 200 6 - \{Python-urllib/[\d.]+\}$', err, re.MULTILINE), err


def test_access_log_reopened_on_sighup(appdir, tmp_path):
    log = tmp_path / 'access.log'
    port = free_port()
    with Degu('serve', 'cliapp:app', '-p', str(port), '--access-log', str(log),
              '--log-level', 'info', cwd=appdir) as degu:
        fetch(f'http://127.0.0.1:{port}/before')
        os.rename(log, tmp_path / 'access.log.1')  # as logrotate does
        fetch(f'http://127.0.0.1:{port}/moved')  # still written to the moved file
        # A line is written just after its response went out: wait for both.
        deadline = time.monotonic() + TIMEOUT
        while (len(_access_lines(tmp_path / 'access.log.1')) < 2
               and time.monotonic() < deadline):
            time.sleep(0.05)
        degu.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + TIMEOUT
        while not log.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert log.exists()
        fetch(f'http://127.0.0.1:{port}/after')
        (code, err) = degu.stop()
    assert code == 0
    rotated = _access_lines(tmp_path / 'access.log.1')
    assert ['"GET /before ' in rotated[0], '"GET /moved ' in rotated[1]] == [True, True]
    assert len(rotated) == 2
    current = _access_lines(log)
    assert len(current) == 1 and '"GET /after HTTP/1.1" 200 ' in current[0]
    assert f"SIGHUP received: access log {str(log)!r} reopened" in ''.join(degu.lines) + err


@pytest.mark.parametrize('args, code, message', [
    (['--access-log', '/no/such/folder/access.log'], 1,
     "--access-log: cannot open '/no/such/folder/access.log': No such file or directory"),
    (['--access-log', '/'], 1, "--access-log: cannot open '/': Is a directory"),
    (['--access-log-format', '{host} {nope}'], 2,
     "--access-log-format: unknown field 'nope' in '{host} {nope}'"),
    (['--access-log-format', '{status'], 2,
     "--access-log-format: expected '}' before end of string in '{status'"),
    (['--quiet', '--access-log', 'x.log'], 2,
     '--quiet turns the access log off; --access-log turns it on'),
])
def test_access_log_errors_are_one_line(appdir, args, code, message):
    result = run_degu('serve', 'cliapp:app', '-p', str(free_port()), *args, cwd=appdir)
    assert (result.returncode, result.stderr) == (code, f'degu: error: {message}\n')


# --------------------------------------------------------------------------
# --workers, --fd and socket activation (more in tests/test_workers.py)


def test_process_option_errors(appdir):
    cases = [
        (['--workers', '0'], 2, '--workers: need 1 <= N <= 1024; got \'0\''),
        (['--workers', 'two'], 2, '--workers: need 1 <= N <= 1024; got \'two\''),
        (['--fd', '99'], 2, '--fd 99: Bad file descriptor'),
        (['--fd', 'web'], 2, '--fd web: no socket of that name (no LISTEN_FDS)'),
        (['--fd', '3', '-p', '8000'], 2, '--port and --fd 3: give one or the other'),
        (['--fd', '3', '--address', '/x.sock'], 2, '--address and --fd 3: give one or the other'),
    ]
    for (args, code, message) in cases:
        result = run_degu('serve', 'cliapp:app', *args, cwd=appdir)
        assert (result.returncode, result.stderr) == (code, f'degu: error: {message}\n')


def test_fd_not_listening(appdir):
    with socket.socket() as sock:
        fd = sock.fileno()
        result = subprocess.run(
            [sys.executable, '-m', 'degu', 'serve', 'cliapp:app', '--fd', str(fd)],
            cwd=appdir, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
            timeout=TIMEOUT, pass_fds=[fd],
        )
    assert (result.returncode, result.stderr) == (
        2, f'degu: error: --fd {fd}: not a listening stream socket\n')


def test_fd_from_any_supervisor(appdir):
    listener = socket.create_server(('127.0.0.1', 0))
    port = listener.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen(
        [sys.executable, '-m', 'degu', 'serve', 'cliapp:app', '--fd', str(listener.fileno())],
        cwd=appdir, env=env, stderr=subprocess.PIPE, text=True, pass_fds=[listener.fileno()],
    )
    try:
        listener.close()  # the server's copy is the only one left
        line = proc.stderr.readline()
        assert line.startswith(f'Serving cliapp:app on http://127.0.0.1:{port}/ ')
        with urllib.request.urlopen(f'http://127.0.0.1:{port}/fd', timeout=TIMEOUT) as r:
            assert r.read() == b'rgi /fd'
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@pytest.mark.skipif(os.environ.get('DEGU_INTEROP_REQUIRED') != '1'
                    and not os.path.exists('/usr/bin/systemd-socket-activate'),
                    reason='needs systemd-socket-activate')
def test_socket_activation_with_two_sockets_needs_fd(appdir):
    (port1, port2) = (free_port(), free_port())
    proc = subprocess.Popen(
        ['/usr/bin/systemd-socket-activate', '-l', f'127.0.0.1:{port1}', '-l',
         f'127.0.0.1:{port2}', '--fdname=web:admin', '-E', 'PYTHONPATH',
         sys.executable, '-m', 'degu', 'serve', 'cliapp:app'],
        cwd=appdir, env=dict(os.environ, PYTHONPATH=ROOT), stderr=subprocess.PIPE, text=True,
    )
    try:
        for _ in range(2):
            assert proc.stderr.readline().startswith('Listening on ')
        # It starts degu at the first connection.
        with socket.create_connection(('127.0.0.1', port1), timeout=TIMEOUT):
            assert proc.wait(TIMEOUT) == 2
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert err.endswith('degu: error: systemd passed 2 sockets, web (fd 3), admin (fd 4): '
                        'choose one with --fd\n')
