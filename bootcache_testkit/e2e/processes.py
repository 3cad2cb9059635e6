"""Start the services of the end-to-end environment, and stop them all.

Every service runs in a process group of its own (so a wrapper script and
whatever it forks go together), dies with the process that started it
(``PR_SET_PDEATHSIG``), and is stopped in reverse order of start: SIGTERM
to the group, then SIGKILL.  Output goes to one log file per service,
whose tail is in the error when a service does not come up.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from typing import Callable
from typing import Iterator
from typing import Optional

from bootcache_testkit import sandbox as ceph_sandbox


class ServiceError(Exception):
    """A service did not start, or a command failed."""


free_port = ceph_sandbox.free_loopback_port


def _own_group_dying_with_parent() -> None:
    # Runs in the child between fork and exec.
    os.setsid()
    ceph_sandbox.die_with_parent(signal.SIGKILL)


def tail(path: str, lines: int = 25) -> str:
    with contextlib.suppress(OSError), open(path, errors='replace') as f:
        return ''.join(f.readlines()[-lines:])
    return ''


def _stop_group(process: subprocess.Popen, grace: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


class Supervisor:
    """The environment's processes, started in order, stopped in reverse."""

    def __init__(self, log_dir: str) -> None:
        self.log_dir = log_dir
        os.makedirs(log_dir, exist_ok=True)
        self._started: list[tuple[str, subprocess.Popen]] = []
        self._cleanups: list[Callable[[], None]] = []
        self._argv: dict[str, tuple[list[str], Optional[dict]]] = {}

    def log(self, name: str) -> str:
        return os.path.join(self.log_dir, '%s.log' % name)

    def start(self, name: str, argv: list[str],
              env: Optional[dict] = None) -> subprocess.Popen:
        with open(self.log(name), 'ab') as log:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=dict(os.environ, **(env or {})),
                preexec_fn=_own_group_dying_with_parent)
        self._started.append((name, process))
        self._argv[name] = (argv, env)
        return process

    def restart(self, name: str, grace: float = 15) -> subprocess.Popen:
        """Stop service ``name`` (its group: SIGTERM, then SIGKILL) and
        start it again with the same command line and environment, in its
        place in the stopping order."""
        index, process = next((i, p) for i, (n, p) in
                              enumerate(self._started) if n == name)
        _stop_group(process, grace)
        argv, env = self._argv[name]
        self.start(name, argv, env)
        self._started[index] = self._started.pop()
        return self._started[index][1]

    def stop(self, name: str, grace: float = 15) -> None:
        """Stop service ``name`` (its group: SIGTERM, then SIGKILL) for
        good: it is no longer in the stopping order."""
        index, process = next((i, p) for i, (n, p) in
                              enumerate(self._started) if n == name)
        _stop_group(process, grace)
        del self._started[index]
        del self._argv[name]

    def environ(self, name: str) -> dict:
        """The environment service ``name`` was started with (what it
        added to this process's)."""
        return dict(self._argv[name][1] or {})

    def sessions(self) -> dict[int, str]:
        """Session id -> service name: each service is started as the
        leader of its own session, with every worker it forks in it."""
        return {process.pid: name for name, process in self._started}

    def on_stop(self, cleanup: Callable[[], None]) -> None:
        """Also run ``cleanup`` when stopping (e.g. a daemon that forked
        away from its group)."""
        self._cleanups.append(cleanup)

    def run(self, name: str, argv: list[str], env: Optional[dict] = None,
            timeout: float = 300) -> str:
        """Run a set-up command to completion; its output in the log."""
        done = subprocess.run(argv, capture_output=True, text=True,
                              env=dict(os.environ, **(env or {})),
                              timeout=timeout)
        with open(self.log(name), 'a') as log:
            log.write('$ %s\n%s%s' % (' '.join(argv), done.stdout,
                                      done.stderr))
        if done.returncode:
            raise ServiceError('%s failed (exit %d): %s' % (
                ' '.join(argv[:3]), done.returncode,
                (done.stdout + done.stderr)[-2000:]))
        return done.stdout

    def wait_for_port(self, name: str, port: int,
                      timeout: float = 120) -> None:
        process = dict(self._started)[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServiceError('%s exited with %s before listening on '
                                   '%d; its log:\n%s' % (
                                       name, process.returncode, port,
                                       tail(self.log(name))))
            with contextlib.suppress(OSError), \
                    socket.create_connection(('127.0.0.1', port), 1):
                return
            time.sleep(0.3)
        raise ServiceError('%s did not listen on %d within %d s; its log:\n'
                           '%s' % (name, port, timeout,
                                   tail(self.log(name))))

    def check_running(self) -> None:
        for name, process in self._started:
            if process.poll() is not None:
                raise ServiceError('%s exited with %s; its log:\n%s' % (
                    name, process.returncode, tail(self.log(name))))

    def stop_all(self, grace: float = 15) -> None:
        for _name, process in reversed(self._started):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for _name, process in reversed(self._started):
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for cleanup in reversed(self._cleanups):
            with contextlib.suppress(Exception):
                cleanup()
        self._started.clear()
        self._cleanups.clear()

    @contextlib.contextmanager
    def running(self) -> Iterator['Supervisor']:
        try:
            yield self
        finally:
            self.stop_all()
