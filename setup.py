# degu: an embeddable HTTP/1.1 server and client library.
# The metadata lives in pyproject.toml.  This file adds the optional
# compiled core, degu._cparse (doc/hacking.rst, 'The compiled core'):
# optional=True, so an install without a C compiler (or without the Python
# headers) still succeeds, and degu runs on its pure-Python core.
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            'degu._cparse',
            sources=['degu/_cparse.c'],
            optional=True,
        )
    ]
)
