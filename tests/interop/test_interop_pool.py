"""The client's pool against nginx, which closes idle connections on its own schedule.

nginx here closes a kept-alive connection after 30 ms without a request
(``keepalive_timeout``) and after 7 requests (``keepalive_requests``, with
``connection: close`` on the last response), so with clients that pause 0 to
80 ms between requests, its closes race with their requests all the time:
the case a pool has to get right, proven against a server we did not write.
Files go in with ``PUT`` (nginx's DAV module), come back with ``GET`` and go
with ``DELETE``; ``POST`` is answered by a ``return`` and logged.
"""

import os
import random
import threading

import pytest
from interop_helpers import Nginx

from degu.client import Client, ConnectionClosed

pytestmark = pytest.mark.interop

THREADS = 8
ROUNDS = 20


@pytest.fixture(params=['tcp', 'unix'])
def nginx(request):
    unix = request.param == 'unix'
    server = """
        keepalive_timeout 30ms;
        keepalive_requests 7;
        root {files};
        location /files/ {{
            dav_methods PUT DELETE;
            create_full_put_path on;
        }}
        location /post/ {{
            return 200 "posted";
        }}"""
    nginx = Nginx('', unix=unix)
    nginx.server_text = server.format(files=nginx.prefix)
    with nginx:
        yield nginx


def _racing(client, n, errors, posted, refused):
    rng = random.Random(n)

    def pause():
        if rng.random() < 0.3:
            threading.Event().wait(rng.uniform(0, 0.08))

    try:
        for i in range(ROUNDS):
            name = f'/files/{n}-{i}.bin'
            data = rng.randbytes(rng.randrange(1, 40_000))
            assert client.put(name, body=data).status in (201, 204)
            pause()
            response = client.get(name)
            assert (response.status, response.body.read()) == (200, data)
            assert client.head(name).headers['content-length'] == len(data)
            pause()
            assert client.delete(name).status == 204
            pause()
            try:
                response = client.post(f'/post/{n}-{i}', body=b'x' * rng.randrange(100))
                assert response.body.read() == b'posted'
                posted.append(f'/post/{n}-{i}')
            except ConnectionClosed as e:
                assert e.response_started is False
                refused.append(f'/post/{n}-{i}')
            pause()
    except Exception as e:  # noqa: BLE001 - reported by the test
        errors.append(e)


def test_threads_share_a_pool_while_nginx_closes_idle_connections(nginx):
    # nginx's root is its prefix: the DAV files land in a folder of the test.
    os.makedirs(os.path.join(nginx.prefix, 'files'), exist_ok=True)
    client = Client(nginx.address, pool_size=4, timeout=5)
    errors = []
    posted = []
    refused = []
    threads = [
        threading.Thread(target=_racing, args=(client, n, errors, posted, refused))
        for n in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    info = client.pool_info()
    client.close()
    assert info['open'] <= 4 and info['lent'] == 0
    # nginx closed connections under the pool: idle ones (found stale or
    # retried) and after 7 requests (its connection: close).
    assert info['dropped'] > 0
    assert info['retries'] + info['stale'] + info['dropped'] > 0
    assert os.listdir(os.path.join(nginx.prefix, 'files')) == []
    # Every POST that succeeded reached nginx once; none that failed did.
    with open(os.path.join(nginx.prefix, 'access.log')) as f:
        logged = [line.split('"')[1].split()[1] for line in f if '"POST ' in line]
    assert sorted(logged) == sorted(posted)
    assert not set(refused) & set(logged)


def test_a_put_retried_against_nginx_lands_once(nginx):
    # One connection, a pause longer than nginx's keepalive_timeout before
    # every request: each request finds its connection closed by nginx.
    os.makedirs(os.path.join(nginx.prefix, 'files'), exist_ok=True)
    client = Client(nginx.address, pool_size=1, timeout=5)
    for i in range(5):
        data = f'version {i}'.encode()
        assert client.put('/files/doc.txt', body=data).status in (201, 204)
        threading.Event().wait(0.08)
        response = client.get('/files/doc.txt')
        assert response.body.read() == data
        threading.Event().wait(0.08)
    info = client.pool_info()
    client.close()
    assert info['retries'] + info['expired'] + info['stale'] >= 1
    with open(os.path.join(nginx.prefix, 'files', 'doc.txt'), 'rb') as f:
        assert f.read() == b'version 4'
