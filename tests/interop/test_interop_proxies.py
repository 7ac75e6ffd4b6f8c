"""Real load balancers in front of degu: nginx and HAProxy tell it who the client is.

nginx sends ``X-Forwarded-For`` (``$proxy_add_x_forwarded_for``) and
``X-Forwarded-Proto``, read because its address is in
``forwarded_allow_ips``; HAProxy sends a PROXY protocol header, version 1
(``send-proxy``) or 2 (``send-proxy-v2``), with ``option forwardfor`` too.
The test's client connects from 127.0.0.2, so that the address the app
sees can only have come through the proxy (which talks to degu from
127.0.0.1, or over AF_UNIX).  Each test starts its own proxy with a
configuration of its own in a temporary folder and stops it.
"""

import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
from helpers import free_port, wait_listening
from interop_helpers import DEADLINE, Nginx, need_program, nginx_proxy, serve

from degu.misc import TempPKI, TempSSLServer

pytestmark = pytest.mark.interop

CLIENT_IP = '127.0.0.2'  # where the test's requests come from: not the proxy's address
UPSTREAMS = ['tcp', 'unix']


def whoami(session, request, api):
    info = {
        'address': session.address,
        'session_client': session.client,
        'client': request.client,
        'scheme': request.scheme,
        'xff': request.headers.get('x-forwarded-for'),
        'path': request.path,
        'mount': request.mount,
    }
    return (200, 'OK', {'content-type': 'application/json'}, json.dumps(info).encode())


def get(address, path='/who', headers=None):
    """GET *path* from 127.0.0.2 with http.client; returns the app's JSON."""
    conn = http.client.HTTPConnection(address[0], address[1], timeout=DEADLINE,
                                      source_address=(CLIENT_IP, 0))
    try:
        conn.request('GET', path, headers=headers or {})
        response = conn.getresponse()
        assert response.status == 200, (response.status, response.read())
        return json.loads(response.read())
    finally:
        conn.close()


def upstream_options(upstream):
    family = 'unix' if upstream == 'unix' else 'ipv4'
    trusted = 'unix' if upstream == 'unix' else '127.0.0.1'
    return (family, trusted)


# --------------------------------------------------------------------------
# nginx: X-Forwarded-For and X-Forwarded-Proto

NGINX_FORWARDING = """
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
"""


@pytest.mark.parametrize('upstream', UPSTREAMS)
def test_nginx_forwarded_for(upstream):
    (family, trusted) = upstream_options(upstream)
    with serve(whoami, family, forwarded_allow_ips=trusted, root_path='/app') as served:
        (http_text, server_text) = nginx_proxy(served.address, proxy=NGINX_FORWARDING)
        with Nginx(server_text, http_text) as nginx:
            info = get(nginx.address, '/app/who')
            assert info['client'] == [CLIENT_IP, 0]
            assert info['scheme'] == 'http'
            assert info['xff'] == CLIENT_IP
            assert (info['mount'], info['path']) == (['app'], ['who'])
            if upstream == 'tcp':
                assert info['address'][0] == '127.0.0.1'  # the socket peer: nginx
            # A client writing its own X-Forwarded-For cannot pose as someone else:
            # nginx appends its peer, the right-most untrusted address.
            info = get(nginx.address, '/who', {'X-Forwarded-For': '203.0.113.66'})
            assert info['xff'] == f'203.0.113.66, {CLIENT_IP}'
            assert info['client'] == [CLIENT_IP, 0]


@pytest.mark.parametrize('upstream', UPSTREAMS)
def test_nginx_untrusted(upstream):
    # Without forwarded_allow_ips the headers are there, and ignored.
    (family, _) = upstream_options(upstream)
    with serve(whoami, family) as served:
        (http_text, server_text) = nginx_proxy(served.address, proxy=NGINX_FORWARDING)
        with Nginx(server_text, http_text) as nginx:
            info = get(nginx.address, '/who', {'X-Forwarded-Proto': 'https'})
            assert info['xff'] == CLIENT_IP
            assert info['client'] == info['session_client']
            assert info['scheme'] == 'http'


# --------------------------------------------------------------------------
# HAProxy: the PROXY protocol

HAPROXY_CONF = """\
global
    maxconn 64
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
    {options}
frontend front
    bind 127.0.0.1:{port}
    default_backend degu
backend degu
    {backend}
    server degu {server}
"""


def haproxy_path():
    return need_program('haproxy', '/usr/sbin/haproxy')


class HAProxy:
    """``haproxy`` in the foreground with its own configuration in a temporary folder."""

    def __init__(self, server, backend='', options=''):
        self.haproxy = haproxy_path()
        self.server = server
        self.backend = backend
        self.options = options
        self.folder = tempfile.mkdtemp(prefix='degu-haproxy-')
        self.proc = None
        self.address = None

    def start(self):
        for _ in range(3):  # a free port can be taken between the check and haproxy's bind
            port = free_port()
            self.address = ('127.0.0.1', port)
            conf = os.path.join(self.folder, 'haproxy.cfg')
            with open(conf, 'w') as f:
                f.write(HAPROXY_CONF.format(port=port, server=self.server,
                                            backend=self.backend, options=self.options))
            self.proc = subprocess.Popen([self.haproxy, '-db', '-f', conf],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if wait_listening(self.proc, self.address):
                return self
            err = self.stop()
        pytest.fail(f'haproxy did not start: {err[-2000:]}')

    def stop(self):
        proc = self.proc
        if proc is None:
            return ''
        self.proc = None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # hard stop: no wait for open connections
        try:
            (_, err) = proc.communicate(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            proc.kill()
            (_, err) = proc.communicate()
        return err.decode(errors='replace')

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def haproxy_server(address, extra):
    if isinstance(address, str):
        return f'unix@{address} {extra}'
    return f'{address[0]}:{address[1]} {extra}'


@pytest.mark.parametrize('upstream', UPSTREAMS)
@pytest.mark.parametrize('send', ['send-proxy', 'send-proxy-v2'])
def test_haproxy_proxy_protocol(upstream, send):
    (family, _) = upstream_options(upstream)
    with serve(whoami, family, proxy_protocol=True) as served:
        with HAProxy(haproxy_server(served.address, send),
                     backend='option forwardfor') as haproxy:
            for _ in range(2):  # kept-alive upstream connections say the same
                info = get(haproxy.address, '/who', {'X-Forwarded-For': '203.0.113.66'})
                assert info['session_client'][0] == CLIENT_IP  # the PROXY header's source
                assert info['client'][0] == CLIENT_IP
                assert info['session_client'] != info['address']  # the socket peer: haproxy
                assert info['xff'] == f'203.0.113.66, {CLIENT_IP}'  # there, ignored
                assert info['scheme'] == 'http'


@pytest.mark.parametrize('send', ['send-proxy', 'send-proxy-v2'])
def test_haproxy_forwardfor_trusted(send):
    # The PROXY header's source counts as the client for forwarded_allow_ips: trusting
    # 127.0.0.2 (a proxy in front of HAProxy, say) makes degu read X-Forwarded-For.
    with serve(whoami, 'ipv4', proxy_protocol=True, forwarded_allow_ips=CLIENT_IP) as served:
        with HAProxy(haproxy_server(served.address, send),
                     backend='option forwardfor') as haproxy:
            info = get(haproxy.address, '/who', {'X-Forwarded-For': '203.0.113.66',
                                                 'X-Forwarded-Proto': 'https'})
    assert info['session_client'][0] == CLIENT_IP
    assert info['client'] == ['203.0.113.66', 0]
    assert info['scheme'] == 'https'


def test_haproxy_health_check_local():
    # HAProxy's health checks over send-proxy-v2 say LOCAL: the socket peer stays.
    checks = []

    def app(session, request, api):
        if request.path == ['health']:
            checks.append((session.address, session.client, request.client))
        return whoami(session, request, api)

    with serve(app, 'ipv4', proxy_protocol=True) as served:
        server = haproxy_server(served.address, 'send-proxy-v2 check inter 50ms')
        with HAProxy(server, backend='option httpchk GET /health') as haproxy:
            deadline = time.monotonic() + DEADLINE
            while not checks and time.monotonic() < deadline:
                time.sleep(0.02)
            info = get(haproxy.address)
    assert checks, 'no health check came'
    for (address, session_client, client) in checks:
        assert session_client == tuple(address[:2]) == client
    assert info['client'][0] == CLIENT_IP


def test_haproxy_tls():
    # The PROXY header in clear, then TLS: HAProxy speaks HTTPS to an SSLServer.
    with TempPKI(client_pki=False) as pki:
        with TempSSLServer(pki.anonymous_server_sslconfig, ('127.0.0.1', 0), whoami,
                           thread=True, proxy_protocol=True, timeout=5) as served:
            for send in ('send-proxy', 'send-proxy-v2'):
                server = haproxy_server(served.address, f'{send} ssl verify none')
                with HAProxy(server) as haproxy:
                    info = get(haproxy.address)
                assert info['client'][0] == CLIENT_IP
                assert info['scheme'] == 'https'


def test_haproxy_without_proxy_protocol_refused():
    # A listener expecting the PROXY protocol refuses a proxy that does not send it:
    # HAProxy answers 502, degu logs it and serves on.
    with serve(whoami, 'ipv4', proxy_protocol=True) as served:
        with HAProxy(haproxy_server(served.address, '')) as haproxy:
            conn = http.client.HTTPConnection(*haproxy.address, timeout=DEADLINE)
            try:
                conn.request('GET', '/who')
                assert conn.getresponse().status in (502, 503)
            finally:
                conn.close()
