"""Worker processes and supervision: ``Workers``, socket activation, readiness.

One degu ``Server`` is one process, and its Python code runs on one core at
a time (the GIL).  ``Workers`` serves one listening socket from several
worker processes, each running its own ``Server`` on that socket, under a
parent process that never serves a request itself: it starts the workers,
replaces one that dies, replaces them all on ``reload()`` without refusing
a connection, adds or removes one, and stops them gracefully.

Why one inherited socket rather than SO_REUSEPORT: the parent binds (or is
handed) the socket once and every worker inherits it, so there is one
accept queue.  A worker that stops leaves the connections waiting in that
queue to the others; with SO_REUSEPORT each worker has its own queue, and
the connections queued on a worker that exits are reset, which a graceful
reload must not do.  It also works for AF_UNIX sockets (SO_REUSEPORT does
not), for a port 0 chosen once by the kernel, and for a socket handed over
by systemd or another supervisor (``systemd_sockets()``, ``listening_socket()``).
The cost: the kernel wakes the idle workers together on a new connection and
one wins the accept(); the others find nothing and go back to waiting.

A worker's life (the parent's view)::

    start --('ready' on its pipe)--> READY --(SIGTERM: stop, reload, removal)--> STOPPING
      |                                |                                           |
      | exits before 'ready'           | exits unexpectedly                        | exits
      v                                v                                           v
    at start-up: fatal            replaced (at most MAX_RESTARTS      gone; killed (SIGKILL)
    later: replaced, as a crash   in RESTART_WINDOW s, then fatal)    after stop_timeout +
                                                                      KILL_GRACE

Workers are started from the multiprocessing context the project uses for
server processes (``fork`` on Linux: the app is inherited and the socket
with it; ``spawn`` elsewhere: the app, or its factory, must be a
module-level object).  The parent is single-threaded on purpose: forking a
process that runs other threads can copy a lock another thread held.
"""

from __future__ import annotations

import collections
import errno
import logging
import math
import os
import signal
import socket
import stat
import sys
import threading
import time
from multiprocessing.connection import wait

from . import _mp_context
from ._common import _callable_name, _remove_socket_file
from ._parse import _TYPE_ERROR
from .server import Server, SSLServer, _check_options, _check_server_sslctx, _listen

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (doc/decisions.rst)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ('Workers', 'systemd_sockets', 'listening_socket', 'notify')

log = logging.getLogger('degu.workers')

LISTEN_BACKLOG = 1024  # connections the kernel queues while every worker is busy or restarting
MAX_WORKERS = 1024  # more processes than any machine has cores for
STOP_TIMEOUT = 10.0  # seconds a stopping worker lets its in-flight requests finish
# A stopping worker's server cuts off its busy connections after stop_timeout
# and gives their threads 0.5 s more; the interpreter then needs a moment to
# end.  A worker still alive KILL_GRACE s after stop_timeout is killed.
KILL_GRACE = 2.0  # seconds
# A worker that exits unexpectedly is replaced at once; more than MAX_RESTARTS
# such exits within RESTART_WINDOW seconds means the app crashes as soon as
# it runs (or cannot start), and replacing it again would only burn the CPU in
# a loop of forks: the parent stops the other workers and gives up.
MAX_RESTARTS = 10
RESTART_WINDOW = 10.0  # seconds
READY_TIMEOUT = 30.0  # seconds a new worker has to build its app and report ready
PARENT_CHECK = 1.0  # seconds between a worker's checks that its parent is alive
# The signals the parent handles with serve_forever(signals=True).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
CONTROL_SIGNALS = {signal.SIGHUP: 'reload', signal.SIGTTIN: 'add', signal.SIGTTOU: 'remove'}

# Blocked while a worker is forked, until it has handlers of its own.
_FORK_BLOCKED = {*STOP_SIGNALS, *CONTROL_SIGNALS}

SD_LISTEN_FDS_START = 3  # systemd passes its sockets from fd 3 on (sd_listen_fds(3))


# --------------------------------------------------------------------------
# Sockets from a supervisor, and readiness


def listening_socket(fd: int) -> socket.socket:
    """A socket object for the listening stream socket at file descriptor *fd*.

    Raises ``ValueError`` when *fd* is not open, not a socket, not a stream
    socket, or not listening; the socket is made close-on-exec.
    """
    if type(fd) is not int:
        raise TypeError(_TYPE_ERROR.format('fd', int, type(fd), fd))
    try:
        mode = os.fstat(fd).st_mode
    except OSError as e:
        raise ValueError(f'fd {fd}: {e.strerror}') from None
    if not stat.S_ISSOCK(mode):
        raise ValueError(f'fd {fd}: not a socket')
    sock = socket.socket(fileno=fd)
    if sock.type != socket.SOCK_STREAM or not sock.getsockopt(socket.SOL_SOCKET,
                                                               socket.SO_ACCEPTCONN):
        sock.detach()  # not ours to close
        raise ValueError(f'fd {fd}: not a listening stream socket')
    os.set_inheritable(fd, False)
    return sock


def systemd_sockets(unset_environment: bool = True) -> list[tuple[str, socket.socket]]:
    """The sockets systemd (or ``systemd-socket-activate``) passed, as ``(name, socket)``.

    Read from ``LISTEN_PID`` (must be this process), ``LISTEN_FDS`` (how
    many, from fd 3 on) and ``LISTEN_FDNAMES`` (optional, names separated
    by ``:``; an unnamed socket is called ``'unknown'``, as systemd calls
    it).  Returns ``[]`` when the variables are absent or meant for another
    process.  With *unset_environment* (the default) the three variables
    are removed from ``os.environ`` so that child processes do not take
    sockets that are not theirs.
    """
    env = os.environ
    pid = env.get('LISTEN_PID', '')
    count = env.get('LISTEN_FDS', '')
    names = env.get('LISTEN_FDNAMES')
    if unset_environment:
        for name in ('LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES'):
            env.pop(name, None)
    if not pid or not count:
        return []
    if not pid.isdigit() or int(pid) != os.getpid():
        return []
    if not count.isdigit():
        raise ValueError(f'bad LISTEN_FDS: {count[:32]!r}')
    labels = names.split(':') if names else []
    sockets = []
    for i in range(int(count)):
        fd = SD_LISTEN_FDS_START + i
        label = labels[i] if i < len(labels) and labels[i] else 'unknown'
        try:
            sockets.append((label, listening_socket(fd)))
        except ValueError:
            for (_, sock) in sockets:
                sock.detach()
            raise
    return sockets


def notify(state: str) -> bool:
    """Send *state* (``'READY=1'``, ``'STOPPING=1'``...) to the service manager.

    The service manager (systemd with ``Type=notify``) names an ``AF_UNIX``
    datagram socket in ``NOTIFY_SOCKET``: a path, or an abstract name when
    it starts with ``@``.  Returns ``False`` when there is none; an error
    sending is logged and returns ``False`` too: readiness must never stop a
    server from serving.
    """
    where = os.environ.get('NOTIFY_SOCKET', '')
    if not where or where[0] not in '/@':
        return False
    address = '\0' + where[1:] if where[0] == '@' else where
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.settimeout(1.0)
            sock.sendto(state.encode(), address)
    except OSError as e:
        log.warning('Cannot notify %r of %r: %s', where, state, e)
        return False
    return True


# --------------------------------------------------------------------------
# The worker process


def _build_app(app, factory):
    if not factory:
        return app
    built = app()
    if not callable(built):
        raise TypeError(f'factory {_callable_name(app)} returned {built!r}, which is not '
                        'callable')
    return built


def _run_worker(sock, conn, app, factory, sslconfig, options, stop_timeout, parent):
    """A worker: build the app and the server on the shared socket, report, serve."""
    # The parent blocked these signals around the fork (see _start_worker()),
    # so that none reaches the handlers inherited from it; they are set here,
    # then unblocked: one sent meanwhile is delivered now, to the right handler.
    for signum in (signal.SIGINT, *CONTROL_SIGNALS):
        # Ctrl-C reaches the whole process group; the parent turns it into a
        # graceful stop.  The control signals are the parent's business.
        signal.signal(signum, signal.SIG_IGN)
    state = {'server': None, 'stop': False, 'clean': True}

    def stop(*_):
        server = state['server']
        state['stop'] = True
        if server is None:  # still building the app: nothing in flight, end now
            raise SystemExit(0)
        # shutdown() waits for serve_forever(), which runs in this (the main) thread.
        threading.Thread(target=_stop_server, args=(server, stop_timeout, state),
                         name='degu worker shutdown', daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORK_BLOCKED)
    try:
        built = _build_app(app, factory)
        if sslconfig is None:
            server = Server(sock, built, **options)
        else:
            server = SSLServer(sslconfig, sock, built, **options)
    except Exception as e:  # reported to the parent, which decides
        conn.send(('error', _one_line(e)))
        conn.close()
        sys.exit(1)
    state['server'] = server
    conn.send(('ready', None))
    conn.close()
    watch = threading.Thread(target=_watch_parent, args=(parent, stop), daemon=True,
                             name='degu worker watchdog')
    watch.start()
    try:
        server.serve_forever()
    except RuntimeError:  # 'server was shut down'
        if not state['stop']:
            raise
        # SIGTERM came once the server was built, before serve_forever() began.
    sys.exit(0 if state['clean'] else 1)


def _stop_server(server, timeout, state):
    # Server.shutdown() stops accepting at once and lets the connections this
    # worker took send their requests and be served: the ones still queued
    # on the shared listening socket go to the other workers.
    state['clean'] = server.shutdown(timeout)


def _watch_parent(parent, stop):
    # A parent killed with SIGKILL cannot stop its workers: they stop
    # themselves (gracefully) when they find they were re-parented.
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK)
    log.warning('Worker %d: parent %d is gone, stopping', os.getpid(), parent)
    stop()


def _one_line(exc: BaseException) -> str:
    text = f'{type(exc).__name__}: {exc}'
    return text.splitlines()[0] if text.strip() else type(exc).__name__


def _exit_status(code: int | None) -> str:
    if code is None:
        return 'still running'
    if code < 0:
        try:
            return f'killed by {signal.Signals(-code).name}'
        except ValueError:
            return f'killed by signal {-code}'
    return f'exit status {code}'


# --------------------------------------------------------------------------
# The parent


class _Worker:
    __slots__ = ('process', 'pid', 'conn', 'generation', 'started', 'ready', 'stopping',
                 'kill_at', 'error')

    def __init__(self, process, conn, generation):
        self.process = process
        self.pid: int = process.pid
        self.started = time.monotonic()
        self.conn = conn  # the worker's 'ready' (or 'error') arrives here, once
        self.generation = generation
        self.ready = False
        self.stopping = False  # told to stop (SIGTERM): its exit is expected
        self.kill_at: float | None = None  # when it gets SIGKILL, if still alive
        self.error: str | None = None  # what it reported before it could serve


class Workers:
    """Serve one listening socket from *workers* processes, each a degu ``Server``.

    *address* is what ``Server`` takes (an IPv4 or IPv6 tuple, an AF_UNIX
    path, an abstract name) or a listening socket (say from
    ``systemd_sockets()``); the socket is bound here, once, and inherited
    by every worker.  *app* is the RGI app; with ``factory=True`` it is a
    callable taking no arguments that each worker calls to build its own
    app (a database connection per process, say).  *sslconfig* (a dict or
    an ``ssl.SSLContext``) makes each worker an ``SSLServer``.  The other
    keyword *options* are ``Server`` options, checked here.

    ``serve_forever()`` starts the workers and supervises them until
    ``shutdown()``; ``reload()``, ``add_worker()`` and ``remove_worker()``
    change them meanwhile.  A stopping worker lets in-flight requests finish
    for up to *stop_timeout* seconds (default 10).
    """

    def __init__(
        self,
        address: tuple | str | bytes | socket.socket,
        app: Callable[..., Any],
        workers: int = 2,
        *,
        factory: bool = False,
        sslconfig: Any = None,
        stop_timeout: float = STOP_TIMEOUT,
        **options: int | float,
    ) -> None:
        if not callable(app):
            raise TypeError(f'app: not callable: {app!r}')
        if type(workers) is not int:
            raise TypeError(_TYPE_ERROR.format('workers', int, type(workers), workers))
        if not 1 <= workers <= MAX_WORKERS:
            raise ValueError(f'need 1 <= workers <= {MAX_WORKERS}; got {workers}')
        if type(factory) is not bool:
            raise TypeError(_TYPE_ERROR.format('factory', bool, type(factory), factory))
        if type(stop_timeout) not in (int, float):
            raise TypeError(_TYPE_ERROR.format('stop_timeout', float, type(stop_timeout),
                                               stop_timeout))
        if not stop_timeout >= 0:
            raise ValueError(f'stop_timeout must be >= 0; got {stop_timeout!r}')
        _check_options(Server, options)
        if sslconfig is not None:
            _check_server_sslctx(sslconfig)  # a mistake is raised here, not in every worker
        self.app = app
        self.factory = factory
        self.sslconfig = sslconfig
        self.options = options
        self.stop_timeout = float(stop_timeout)
        self.workers = workers  # how many should run; add_worker()/remove_worker() change it
        if isinstance(address, socket.socket):
            self.sock = address
            self._owns_file = False
        else:
            self.sock = _listen(address, LISTEN_BACKLOG)
            self._owns_file = type(address) is str
        self.address: tuple | str | bytes = self.sock.getsockname()
        self._ctx = _mp_context()
        self._lock = threading.Lock()
        self._commands: collections.deque = collections.deque()  # appended from anywhere
        (self._wake_r, self._wake_w) = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._running: dict[int, _Worker] = {}  # pid -> worker, while it lives
        self._generation = 0  # reload() starts a new one
        self._restarts: collections.deque = collections.deque()  # times of unexpected exits
        self._serving = False
        self._stopping = False
        self._unclean = 0  # workers that stopped with an error, or had to be killed
        self._notify = False
        self._on_ready: Callable[[], object] | None = None
        self._on_reload: Callable[[], object] | None = None
        self._failure: str | None = None  # why the parent gave up
        self._ready = threading.Event()  # set once the first workers all reported ready
        self._stopped = threading.Event()  # set when serve_forever() is over

    def __repr__(self) -> str:
        return (f'Workers({self.address!r}, {_callable_name(self.app)}, '
                f'workers={self.workers})')

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    @property
    def pids(self) -> list[int]:
        """The process ids of the workers alive now (stopping ones included), oldest first."""
        return list(self._running)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the first *workers* workers are serving; ``True`` once they are."""
        return self._ready.wait(timeout)

    # ------------------------------------------------------------------
    # Commands: from any thread, or from a signal handler (no lock taken)

    def _post(self, command: str) -> None:
        self._commands.append(command)
        try:
            self._wake_w.send(b'x')
        except OSError:  # full: awake enough; closed: serve_forever() is over
            pass

    def reload(self) -> None:
        """Replace every worker: new ones start; once they serve, the old ones stop gracefully.

        The listening socket stays open throughout, so no connection is
        refused; the old workers finish their in-flight requests.  New
        workers are forked from this process (with ``factory=True`` each
        calls the factory again).  Returns at once.
        """
        self._post('reload')

    def add_worker(self) -> None:
        """Start one more worker (at most 1024).  Returns at once."""
        self._post('add')

    def remove_worker(self) -> None:
        """Stop one worker gracefully (never the last one).  Returns at once."""
        self._post('remove')

    def shutdown(self, timeout: float | None = None) -> bool:
        """Stop every worker gracefully; return once all are gone.

        Each worker stops accepting and lets its in-flight requests finish
        for up to ``stop_timeout`` seconds; a worker still alive *timeout*
        (default ``stop_timeout``) + 2 seconds later is killed.  Returns
        ``True`` when every worker ended by itself, in time.  Call it from
        another thread than the one in ``serve_forever()``.
        """
        limit = self.stop_timeout if timeout is None else timeout
        with self._lock:
            serving = self._serving
            self._stopping = True
        if not serving:
            self._close()
            self._stopped.set()
            return True
        self._post(f'stop {limit!r}')
        self._stopped.wait(limit + KILL_GRACE + 5.0)
        return self._stopped.is_set() and self._unclean == 0

    # ------------------------------------------------------------------
    # Supervising

    def serve_forever(
        self,
        *,
        signals: bool = False,
        notify: bool = False,
        on_ready: Callable[[], object] | None = None,
        on_reload: Callable[[], object] | None = None,
    ) -> bool:
        """Start the workers and supervise them until ``shutdown()``.

        Returns ``True`` when every worker stopped by itself, in time (none
        had to be killed or ended with an error).

        With *signals* (main thread only), SIGINT and SIGTERM stop gracefully
        (a second one kills the workers at once), SIGHUP reloads, SIGTTIN adds
        a worker and SIGTTOU removes one, until this returns.  With
        *notify*, the service manager is told ``READY=1`` once the workers
        serve and ``STOPPING=1`` when they stop (``notify()``).  *on_ready*
        is called (in this thread) once the first workers serve; *on_reload*
        on each reload, before the new workers start, for what they should
        find fresh (a log file that was rotated: the workers inherit the
        parent's open files).  An exception from either is logged.

        Raises ``RuntimeError`` when the first workers cannot start, or when
        workers keep exiting (more than ``MAX_RESTARTS`` in
        ``RESTART_WINDOW`` seconds); the other workers are stopped first.
        """
        with self._lock:
            if self._stopping:
                raise RuntimeError('Workers were shut down')
            if self._serving:
                raise RuntimeError('serve_forever() is already running')
            self._serving = True
        previous = self._install_signals() if signals else {}
        self._notify = notify
        self._on_ready = on_ready
        self._on_reload = on_reload
        try:
            self._supervise()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self._stopping = True
            self._kill_all()
            self._close()
            self._stopped.set()
        if self._failure is not None:
            raise RuntimeError(self._failure)
        return self._unclean == 0

    def _install_signals(self):
        def on_signal(signum, frame):
            if signum in STOP_SIGNALS:
                self._post('kill' if self._stopping else f'stop {self.stop_timeout!r}')
                self._stopping = True
            else:
                self._post(CONTROL_SIGNALS[signum])

        return {s: signal.signal(s, on_signal) for s in (*STOP_SIGNALS, *CONTROL_SIGNALS)}

    def _supervise(self):
        log.info('Starting %d workers on %r', self.workers, self.address)
        while True:
            self._run_commands()
            if self._stopping or self._failure is not None:
                if not self._running:
                    return
            else:
                self._start_missing()
                self._retire_old()
            waits = [self._wake_r]
            for w in self._running.values():
                waits.append(w.process.sentinel)
                if w.conn is not None:
                    waits.append(w.conn)
            deadlines = [w.kill_at for w in self._running.values() if w.kill_at is not None]
            deadlines += [w.started + READY_TIMEOUT
                          for w in self._running.values() if not w.ready and w.kill_at is None]
            timeout = None
            if deadlines:
                timeout = max(0.0, min(deadlines) - time.monotonic())
            ready = wait(waits, timeout)
            if self._wake_r in ready:
                try:
                    while self._wake_r.recv(4096):
                        pass
                except BlockingIOError:
                    pass
            for w in list(self._running.values()):
                if w.conn is not None and w.conn in ready:
                    self._read_report(w)
            for w in list(self._running.values()):
                if w.process.sentinel in ready:
                    self._reap(w)
            self._enforce_deadlines()

    def _run_commands(self):
        while self._commands:
            command = self._commands.popleft()
            if command.startswith('stop '):
                self._stopping = True
                if self._notify:
                    notify('STOPPING=1')
                log.info('Stopping %d workers', len(self._running))
                self._stop_all(float(command[5:]))
            elif command == 'kill':
                self._stopping = True
                for w in self._running.values():
                    w.stopping = True
                    w.kill_at = time.monotonic()
            elif self._stopping or self._failure is not None:
                continue
            elif command == 'reload':
                if self._on_reload is not None:
                    try:
                        self._on_reload()
                    except Exception:
                        log.exception('on_reload() failed; reloading all the same')
                self._generation += 1
                log.info('Reloading: starting %d new workers', self.workers)
            elif command == 'add':
                if self.workers < MAX_WORKERS:
                    self.workers += 1
                    log.info('Adding a worker: %d now', self.workers)
            elif command == 'remove':
                if self.workers > 1:
                    self.workers -= 1
                    log.info('Removing a worker: %d now', self.workers)
                    self._remove_surplus()
                else:
                    log.info('Not removing the last worker')

    def _current(self):
        """The workers of the current generation that are not stopping, oldest first."""
        return [w for w in self._running.values()
                if w.generation == self._generation and not w.stopping]

    def _start_missing(self):
        for _ in range(self.workers - len(self._current())):
            self._start_worker()

    def _start_worker(self):
        (reader, writer) = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(
            target=_run_worker,
            args=(self.sock, writer, self.app, self.factory, self.sslconfig, self.options,
                  self.stop_timeout, os.getpid()),
            name='degu worker',
            daemon=False,  # so that it may start processes of its own
        )
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _FORK_BLOCKED)
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            writer.close()
        self._running[process.pid] = _Worker(process, reader, self._generation)
        log.debug('Started worker %d', process.pid)

    def _read_report(self, w):
        try:
            (what, detail) = w.conn.recv()
        except (EOFError, OSError):  # it exited before reporting: _reap() says so
            (what, detail) = ('gone', None)
        w.conn.close()
        w.conn = None
        if what == 'ready':
            w.ready = True
            log.debug('Worker %d is ready', w.pid)
            if not self._ready.is_set() and len([x for x in self._current() if x.ready]) \
                    >= self.workers:
                self._ready.set()
                log.info('%d workers serving on %r', self.workers, self.address)
                if self._notify:
                    notify(f'READY=1\nMAINPID={os.getpid()}')
                if self._on_ready is not None:
                    self._on_ready()
        elif what == 'error':
            w.error = detail

    def _reap(self, w):
        if w.conn is not None and w.conn.poll():
            self._read_report(w)
        w.process.join(1.0)
        code = w.process.exitcode
        del self._running[w.pid]
        w.process.close()
        what = w.error or _exit_status(code)
        if w.stopping:
            log.debug('Worker %d stopped (%s)', w.pid, what)
            self._unclean += code != 0
            return
        if self._stopping or self._failure is not None:
            log.info('Worker %d exited while stopping (%s)', w.pid, what)
            self._unclean += 1
            return
        if w.generation != self._generation:
            log.warning('Worker %d (replaced by a reload) exited unexpectedly (%s)', w.pid, what)
            return
        if not self._ready.is_set():
            self._fail(f'worker {w.pid} failed to start: {what}')
            return
        log.warning('Worker %d exited unexpectedly (%s); starting another', w.pid, what)
        now = time.monotonic()
        self._restarts.append(now)
        while self._restarts and self._restarts[0] <= now - RESTART_WINDOW:
            self._restarts.popleft()
        if len(self._restarts) > MAX_RESTARTS:
            self._fail(f'workers exited {len(self._restarts)} times in '
                       f'{RESTART_WINDOW:g} s (the last: {what}); giving up')

    def _fail(self, message):
        log.error('%s', message)
        self._failure = message
        if self._notify:
            notify('STOPPING=1')
        self._stop_all(self.stop_timeout)

    def _retire_old(self):
        """Once the current generation serves, the workers of older ones stop (a reload)."""
        old = [w for w in self._running.values()
               if w.generation != self._generation and not w.stopping]
        if old and len([w for w in self._current() if w.ready]) >= self.workers:
            log.info('Reload: %d new workers serving; stopping %d old ones', self.workers,
                     len(old))
            for w in old:
                self._stop_worker(w, self.stop_timeout)

    def _remove_surplus(self):
        current = self._current()
        # The ones not serving yet go first; then the oldest.
        current.sort(key=lambda w: w.ready)
        for w in current[:max(0, len(current) - self.workers)]:
            self._stop_worker(w, self.stop_timeout)

    def _stop_all(self, timeout):
        for w in self._running.values():
            if not w.stopping:
                self._stop_worker(w, timeout)
            else:
                w.kill_at = min(w.kill_at or math.inf, time.monotonic() + timeout + KILL_GRACE)

    def _stop_worker(self, w, timeout):
        w.stopping = True
        w.kill_at = time.monotonic() + timeout + KILL_GRACE
        _signal(w.pid, signal.SIGTERM)

    def _enforce_deadlines(self):
        now = time.monotonic()
        for w in self._running.values():
            if w.kill_at is not None and w.kill_at <= now and w.process.exitcode is None:
                log.warning('Worker %d did not stop in time: killing it', w.pid)
                _signal(w.pid, signal.SIGKILL)
                w.kill_at = now + KILL_GRACE  # reaped when its sentinel says so
            elif not w.ready and w.kill_at is None and now >= w.started + READY_TIMEOUT:
                w.error = f'not ready after {READY_TIMEOUT:g} s'
                log.warning('Worker %d %s: killing it', w.pid, w.error)
                _signal(w.pid, signal.SIGKILL)
                w.kill_at = now + KILL_GRACE

    def _kill_all(self):
        """The last resort, when serve_forever() ends with workers alive (an exception)."""
        for w in list(self._running.values()):
            if w.process.exitcode is None:
                self._unclean += 1
                _signal(w.pid, signal.SIGKILL)
            w.process.join(5.0)
            if w.conn is not None:
                w.conn.close()
            del self._running[w.pid]

    def _close(self):
        with self._lock:
            if self.sock.fileno() >= 0:
                self.sock.close()
                if self._owns_file:
                    _remove_socket_file(self.address)
            self._wake_r.close()
            self._wake_w.close()


def _signal(pid, signum):
    try:
        os.kill(pid, signum)
    except OSError as e:  # already gone and reaped
        if e.errno != errno.ESRCH:
            raise
