"""The example programs of doc/examples/ run as their readers would run them.

Each runs from a copy outside the checkout, so it finds degu the way a user's
program does: installed.  ``tests/test_typing.py`` checks the same copies
with ``mypy --strict``.
"""

import os
import re
import signal
import subprocess
import sys

from helpers import EXAMPLES, check_installed, copy_examples, user_env

TIMEOUT = 30  # seconds for any one program


def test_every_example_is_shown():
    # Each program is on a page (literalinclude), and each included one exists.
    names = sorted(name for name in os.listdir(EXAMPLES) if not name.startswith('__'))
    assert names == ['notes_app.py', 'notes_client.py', 'test_notes.py']
    doc = os.path.dirname(EXAMPLES)
    included = []
    for page in sorted(os.listdir(doc)):
        if page.endswith('.rst'):
            with open(os.path.join(doc, page), encoding='utf-8') as fp:
                included += re.findall(r'^\.\. literalinclude:: examples/(\S+)$', fp.read(), re.M)
    assert sorted(included) == names


def test_server_and_client(tmp_path):
    copy_examples(tmp_path)
    check_installed(tmp_path)
    env = user_env()
    server = subprocess.Popen(
        [sys.executable, 'notes_app.py', '0'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env,
    )  # fmt: skip
    try:
        line = server.stdout.readline()
        assert line.startswith('serving on http://127.0.0.1:'), (line, server.stderr.read())
        url = line.split()[-1].rstrip('/')
        client = subprocess.run(
            [sys.executable, 'notes_client.py', url],
            capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path, env=env,
        )  # fmt: skip
        assert client.returncode == 0, client.stderr
        assert client.stdout == (
            'hello from the notes service\n'
            "shopping: {'milk': 2, 'bread': 1}\n"
            'holidays: None\n'
        )
        server.send_signal(signal.SIGTERM)  # the example stops gracefully
        assert server.wait(TIMEOUT) == 0, server.stderr.read()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        server.stdout.close()
        server.stderr.close()


def test_example_tests(tmp_path):
    # test_notes.py is also collected with the rest of the suite (doc/ is a
    # test path); here it runs as its author runs it, in a folder of its own.
    copy_examples(tmp_path)
    check_installed(tmp_path)
    result = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', 'test_notes.py'],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=user_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert '\n3 passed in ' in result.stdout
