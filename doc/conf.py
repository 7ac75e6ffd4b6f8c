# Sphinx configuration of the degu documentation.
# Build: python3 -m sphinx -W -b html doc doc/_build/html
# The examples in these pages are doctests run by pytest (--doctest-glob).

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

import degu  # noqa: E402

project = 'degu'
author = 'degu maintainers'
copyright = '2026, degu maintainers'
release = degu.__version__
version = '.'.join(release.split('.')[:2])

extensions = ['sphinx.ext.autodoc', 'sphinx.ext.doctest']
exclude_patterns = ['_build']
root_doc = 'index'
html_theme = 'alabaster'
nitpicky = False
