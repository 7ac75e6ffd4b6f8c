"""The README's example must run as printed, and its commands must be the real ones."""

import contextlib
import io
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(name):
    with open(os.path.join(ROOT, name)) as f:
        return f.read()


def test_readme_example_runs():
    text = read('README.rst')
    (code,) = re.findall(r'\.\. code-block:: python\n\n((?:    .*\n|\n)+)', text)
    code = '\n'.join(line[4:] for line in code.splitlines())
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, 'README.rst', 'exec'), {'__name__': 'readme'})
    expected = re.findall(r'# (\d{3} .*)$', code, re.MULTILINE)
    assert out.getvalue().splitlines() == expected


def test_ci_runs_the_readme_test_command():
    readme = read('README.rst')
    ci = read('.ci/run')
    assert 'python3 -m pytest' in readme
    assert ci.endswith('\npython3 -m pytest\n')
    assert '    python3 -m degu files .\n' in readme
