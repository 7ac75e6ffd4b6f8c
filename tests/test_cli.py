"""Tests of the command line, ``python3 -m degu``: real subprocesses on free
ports, fetched with urllib.request and curl, stopped with SIGTERM."""

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

from degu.__main__ import CommandError, format_url, parse_address

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 20


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Degu:
    """``python3 -m degu ARGS`` in a subprocess, started and waited for."""

    def __init__(self, *args, cwd=None):
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'degu', *args], cwd=cwd or ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.first_line = self.proc.stderr.readline()

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
    assert parse_address('/tmp/x.sock') == '/tmp/x.sock'
    assert parse_address('./x.sock') == os.path.abspath('x.sock')
    assert parse_address('@') == b''
    assert parse_address('@name') == b'\x00name'
    for bad in ('nope', '1.2.3.4', '[::1]', '[::1]80', '1.2.3.4:http', '1.2.3.4:70000',
                '::1:80', '[fe80::1%nosuchif]:80'):
        with pytest.raises(CommandError) as e:
            parse_address(bad)
        assert e.value.code == 2
        assert str(e.value).startswith('bad address: ')


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
    assert '"GET /hello" 200' in err  # the access log
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
    (['serve', 'nosuchmodule:app'], 1, "degu: error: cannot import module 'nosuchmodule'"),
    (['serve', 'cliapp:missing'], 1, "degu: error: module 'cliapp' has no attribute 'missing'"),
    (['serve', 'cliapp:not_callable'], 1, "degu: error: 'cliapp:not_callable' is not callable"),
    (['serve', 'cliapp:app', '--address', 'nowhere'], 2, "degu: error: bad address: 'nowhere'"),
    (['serve', 'cliapp:app', '--ssl-cert', 'x.pem'], 2,
     'degu: error: --ssl-cert and --ssl-key go together'),
    (['serve', 'cliapp:app', '--max-connections', '0'], 2,
     'degu: error: bad option: need 1 <= max_connections <= 100000; got 0'),
    (['files', '/no/such/folder'], 1, "degu: error: not a folder: '/no/such/folder'"),
])
def test_errors_are_one_line(appdir, args, code, message):
    result = run_degu(*args, cwd=appdir)
    assert result.returncode == code
    assert result.stderr.startswith(message)
    assert 'Traceback' not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


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
