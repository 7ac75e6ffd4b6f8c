# degu: an embeddable HTTP/1.1 server and client library.
# The metadata lives in pyproject.toml; this file exists for tools that
# still call ``python3 setup.py``.
from setuptools import setup

setup()
