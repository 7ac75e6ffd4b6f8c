"""Big chunks, forwarded through one reused buffer and sent with their line in one sendmsg().

A chunk of 16 KiB or more leaves a plain socket in one ``sendmsg()`` with
its chunk line (and the CRLF of the chunk before); a forwarded chunked body
(``write_to()``, a server sending a ``ChunkedBody``, ``ProxyApp``) reads each
chunk into one buffer reused for the next; ``ChunkedBody.readinto()`` reads
chunk data straight into the caller's buffer.  Here peers we did not write
check the bytes: h11 parses every byte of the responses as a strict client,
curl downloads them, and ``http.client`` uploads a chunked body of big
chunks (its own framing) that the app reads with ``readinto()``.
"""

import hashlib

import pytest
from interop_helpers import FAMILIES, curl, h11_exchange, h11_request, serve

from degu.applib import ProxyApp
from degu.base import ChunkedBodyIter

pytestmark = pytest.mark.interop

# Sizes around the 32 KiB write buffer and its half, where write() changes
# paths, with extensions on some.
CHUNKS = [
    (None, b'a' * 10),
    (('part', '1'), bytes(range(256)) * 160),  # 40 KiB
    (None, b'b' * 16_383),
    (None, b'c' * 16_384),
    (('part', '2'), bytes(range(256)) * 400),  # 100 KiB
    (None, b'd'),
    (None, b''),
]
DATA = b''.join(data for (_, data) in CHUNKS)


def big_chunks_app(session, request, api):
    if request.method == 'PUT':
        # readinto(): chunk data straight into a buffer, 7 KiB at a time.
        digest = hashlib.sha256()
        buf = bytearray(7 * 1024)
        total = 0
        while True:
            n = request.body.readinto(buf)
            if not n:
                break
            digest.update(buf[:n])
            total += n
        return (200, 'OK', {}, f'{total} {digest.hexdigest()}'.encode())
    return (200, 'OK', {}, ChunkedBodyIter(list(CHUNKS)))


@pytest.mark.parametrize('family', FAMILIES)
def test_h11_and_curl_read_big_chunks_byte_for_byte(family):
    with serve(big_chunks_app, family) as served:
        raw = b'GET / HTTP/1.1\r\nHost: example.com\r\n\r\n' * 2
        exchange = h11_exchange(served.address, raw, [h11_request(), h11_request()])
        assert [r.body for r in exchange.responses] == [DATA, DATA]
        assert exchange.responses[0].headers['transfer-encoding'] == 'chunked'
        # The extensions are on the wire as sent.
        assert b'a000;part=1\r\n' in exchange.received
        assert b'19000;part=2\r\n' in exchange.received
        result = curl(served.url('/'), served=served)
        assert result.transfers[0].body == DATA


@pytest.mark.parametrize('family', FAMILIES)
def test_proxyapp_forwards_big_chunks_to_h11(family):
    with serve(big_chunks_app, family) as upstream:
        proxy = ProxyApp(upstream.client())
        with serve(proxy, family) as served:
            raw = b'GET / HTTP/1.1\r\nHost: example.com\r\n\r\n'
            exchange = h11_exchange(served.address, raw)
            assert exchange.responses[0].body == DATA
            assert b'19000;part=2\r\n' in exchange.received


@pytest.mark.parametrize('family', FAMILIES)
def test_http_client_uploads_big_chunks_read_with_readinto(family):
    # http.client frames the body itself (encode_chunked=True): a chunk per
    # piece the iterator gives, in sizes degu did not choose.
    pieces = [data for (_, data) in CHUNKS if data]
    with serve(big_chunks_app, family) as served:
        conn = served.http_client()
        try:
            conn.request('PUT', '/', body=iter(pieces), encode_chunked=True,
                         headers={'Transfer-Encoding': 'chunked'})
            response = conn.getresponse()
            assert response.status == 200
            expected = f'{len(DATA)} {hashlib.sha256(DATA).hexdigest()}'.encode()
            assert response.read() == expected
        finally:
            conn.close()


@pytest.mark.parametrize('family', FAMILIES)
def test_proxyapp_forwards_a_big_chunked_upload(family):
    # The request body through ProxyApp: http.client's chunks, read by the
    # proxy into its one buffer and sent on to the upstream degu app.
    pieces = [data for (_, data) in CHUNKS if data]
    with serve(big_chunks_app, family) as upstream:
        proxy = ProxyApp(upstream.client())
        with serve(proxy, family) as served:
            conn = served.http_client()
            try:
                conn.request('PUT', '/', body=iter(pieces), encode_chunked=True,
                             headers={'Transfer-Encoding': 'chunked'})
                response = conn.getresponse()
                expected = f'{len(DATA)} {hashlib.sha256(DATA).hexdigest()}'.encode()
                assert (response.status, response.read()) == (200, expected)
            finally:
                conn.close()
