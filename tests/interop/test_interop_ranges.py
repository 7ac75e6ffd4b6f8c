"""Range requests from curl, urllib3 and Flask apps (RFC 9110 section 14).

A server may ignore a ``range`` it does not support (section 14.2): the
answer is then the full 200, which every client handles.  A 400 for a
range a client sent in good faith (a suffix ``-500``, several ranges,
another unit) breaks downloads that would have worked anywhere else.
"""

import pytest
from interop_helpers import HELLO, curl, serve

from degu.applib import FilesApp, Router

pytestmark = pytest.mark.interop

SIZE = len(HELLO)


@pytest.fixture
def files(files_dir):
    with FilesApp(files_dir) as app:
        yield app


# (id, curl arguments, status, body, content-range)
CURL_RANGES = [
    ('first-last', ['-r', '0-4'], 206, HELLO[:5], f'bytes 0-4/{SIZE}'),
    ('first-open', ['-r', '7-'], 206, HELLO[7:], f'bytes 7-{SIZE - 1}/{SIZE}'),
    ('last-past-end', ['-r', '5-1000'], 206, HELLO[5:], f'bytes 5-{SIZE - 1}/{SIZE}'),
    ('suffix', ['-r', '-10'], 206, HELLO[-10:], f'bytes {SIZE - 10}-{SIZE - 1}/{SIZE}'),
    ('suffix-longer-than-file', ['-r', '-1000'], 206, HELLO, f'bytes 0-{SIZE - 1}/{SIZE}'),
    ('several', ['-r', '0-1,5-6'], 200, HELLO, None),
    ('other-unit', ['-H', 'Range: items=0-5'], 200, HELLO, None),
    ('last-before-first', ['-H', 'Range: bytes=5-2'], 200, HELLO, None),
    ('bad-syntax', ['-H', 'Range: bytes=abc'], 200, HELLO, None),
    ('unsatisfiable', ['-r', '100-'], 416, b'', f'bytes */{SIZE}'),
]


@pytest.mark.parametrize('case', CURL_RANGES, ids=[c[0] for c in CURL_RANGES])
def test_curl_ranges(files, case):
    """RFC 9110 sections 14.1.2 and 14.2: one ``bytes`` range (``first-last``,
    ``first-``, or the suffix ``-length``) gets a 206 with ``content-range``;
    any other range is ignored (full 200); a range starting past the end is
    416 with ``content-range: bytes */size``.  The connection is reused."""
    (_, args, status, body, content_range) = case
    with serve(files) as served:
        result = curl(served.url('/hello.txt'), served.url('/hello.txt'), args=args)
        (first, second) = result.check()
    assert (first.status, first.body) == (status, body)
    assert first.headers.get('content-range') == content_range
    assert first.headers['content-length'] == str(len(body))
    assert second.status == status and second.info['num_connects'] == 0


def test_curl_range_on_head_is_ignored(files):
    """RFC 9110 section 14.2: a server ignores ``range`` for a method other
    than GET; HEAD gets the headers of the full 200."""
    with serve(files) as served:
        (head,) = curl(served.url('/hello.txt'), args=['--head', '-r', '0-4']).check()
    assert head.status == 200
    assert head.headers['content-length'] == str(SIZE)
    assert 'content-range' not in head.headers


@pytest.mark.parametrize(
    'value, status, body',
    [
        ('bytes=2-5', 206, HELLO[2:6]),
        ('bytes=-3', 206, HELLO[-3:]),
        ('bytes=0-0,-1', 200, HELLO),
        ('pages=1', 200, HELLO),
    ],
    ids=['first-last', 'suffix', 'several', 'other-unit'],
)
def test_urllib3_range(files, value, status, body):
    """RFC 9110 section 14.2: urllib3 sending ``range`` gets the range or, for
    one the server does not support, the full representation."""
    with serve(files) as served:
        with served.urllib3_pool() as pool:
            response = pool.request('GET', '/hello.txt', headers={'Range': value})
    assert (response.status, response.data) == (status, body)


def test_if_range(files):
    """RFC 9110 section 13.1.5: ``if-range`` with the current strong etag (or
    exact date) gives the 206; a stale one gives the full 200, so a resumed
    download never splices two versions of a file."""
    with serve(files) as served:
        (full,) = curl(served.url('/hello.txt')).check()
        etag = full.headers['etag']
        date = full.headers['last-modified']
        stale = '"0-0"'
        old_date = 'Thu, 01 Jan 1970 00:00:00 GMT'
        results = [
            curl(served.url('/hello.txt'), args=['-r', '0-4', '-H', f'If-Range: {value}'])
            for value in (etag, stale, date, old_date)
        ]
    (matching, stale_etag, matching_date, stale_date) = [r.check()[0] for r in results]
    assert (matching.status, matching.body) == (206, HELLO[:5])
    assert (stale_etag.status, stale_etag.body) == (200, HELLO)
    assert (matching_date.status, matching_date.body) == (206, HELLO[:5])
    assert (stale_date.status, stale_date.body) == (200, HELLO)


def test_flask_sees_no_ignored_range():
    """RFC 9110 section 14.2: a range the server ignores is gone before the app
    runs: a Flask app under ``degu.wsgi.WSGIApp`` sees no ``Range`` for it,
    and sees a supported one as sent."""
    flask = pytest.importorskip('flask')
    from degu.wsgi import WSGIApp

    web = flask.Flask(__name__)

    @web.route('/range')
    def show():
        return repr(flask.request.headers.get('Range'))

    with serve(WSGIApp(web)) as served:
        url = served.url('/range')
        results = {
            value: curl(url, args=['-H', f'Range: {value}']).check()[0].body
            for value in ('items=0-5', 'bytes=0-1,5-6', 'bytes=x-y', 'bytes=0-4', 'bytes=-5')
        }
    assert results == {
        'items=0-5': b'None',
        'bytes=0-1,5-6': b'None',
        'bytes=x-y': b'None',
        'bytes=0-4': b"'bytes=0-4'",
        'bytes=-5': b"'bytes=-5'",
    }


def test_rgi_app_gets_suffix_range():
    """RFC 9110 section 14.1.2: ``bytes=-500`` (the last 500 bytes) reaches an
    RGI app as a range it can resolve against its length."""

    def app(session, request, api):
        r = request.headers.get('range')
        if r is None:
            return (200, 'OK', {}, b'no range')
        return (200, 'OK', {}, f'{r} {r.content_range(1000)} {r.content_length(1000)}'.encode())

    with serve(Router({'r': app})) as served:
        (suffix,) = curl(served.url('/r'), args=['-r', '-500']).check()
    assert suffix.body == b'bytes=-500 bytes 500-999/1000 500'
