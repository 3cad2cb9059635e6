"""A throwaway single-node Ceph cluster on 127.0.0.1 for tests, demo, bench.

One monitor, one manager and one memstore OSD, all in one directory, all on
loopback.  Nothing here is meant for production: the OSD keeps every byte in
RAM (``memstore device bytes``), pools have size 1.

Why memstore: it needs no block device and no ``ceph-volume``, starts in
seconds and leaves nothing on disk.  The price is that memstore does not
enforce its size: the monitor flags the pool full a few seconds after
usage passes 95 %, and until then writes past the store's size are not
refused (an ordinary librbd client then waits for ever); size the store
for the data a run writes and remove what you create.  A memstore OSD
also loses every object when it stops, so it cannot be restarted.

``objectstore='bluestore'`` (or ``BOOTCACHE_SANDBOX_OBJECTSTORE=bluestore``)
gives the OSD a BlueStore on a sparse file in the sandbox directory
instead: slower to create and to write, but an OSD killed with SIGKILL
and started again (:meth:`Sandbox.kill_daemon`, :meth:`Sandbox.start_daemon`)
comes back with its data, as a real one does.  The fault tests use it;
memstore stays the default where speed matters.

Daemons run in the foreground as children of the process that calls
:meth:`Sandbox.up`.  With ``tie_to_parent=True`` (what tests, demo and bench
use) the kernel sends them SIGTERM when that process dies, so even a
``kill -9`` of a test run leaves no Ceph daemon behind.  The command line
(``python -m bootcache_testkit.sandbox up``) detaches them instead and
``down`` stops them through the pid files in the sandbox directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Any
from typing import Iterator
from typing import Optional
import uuid

from oslo_concurrency import processutils
from oslo_utils import units

from cinder_rbd_bootcache.ceph import api as ceph

# Order matters: started in this order, stopped in reverse.
DAEMONS = (('mon', 'a'), ('osd', '0'), ('mgr', 'x'))
POOLS = ('volumes', 'images')
CLIENT = 'cinder'
#: Opt-in: ``require_min_compat_client`` of the cluster (e.g. ``mimic``).  A
#: new cluster says ``luminous``, so librbd's default clone format ("auto")
#: makes format 1 clones; ``mimic`` or newer makes it format 2 (the modern
#: default of clusters without pre-Mimic clients).
MIN_COMPAT_ENV = 'BOOTCACHE_SANDBOX_MIN_COMPAT'
#: Opt-in: the OSD's object store, ``memstore`` (default) or ``bluestore``.
OBJECTSTORE_ENV = 'BOOTCACHE_SANDBOX_OBJECTSTORE'
OBJECTSTORES = ('memstore', 'bluestore')
_PR_SET_PDEATHSIG = 1


class SandboxError(Exception):
    """The sandbox could not be started, used or stopped."""


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Have the kernel send ``sig`` to this process when its parent dies;
    call it in the child between fork and exec (``preexec_fn``)."""
    libc = ctypes.CDLL('libc.so.6', use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, sig)


def _run(cmd: list[str]) -> str:
    try:
        out, _err = processutils.execute(*cmd)
    except processutils.ProcessExecutionError as exc:
        raise SandboxError('%s failed (exit %s): %s' % (
            ' '.join(cmd), exc.exit_code,
            (exc.stderr or exc.stdout or '').strip()[-2000:]))
    return out


def osd_class_dir_fix() -> str:
    """An ``osd class dir`` line for ceph.conf when the OSD's built-in
    default is wrong, else ''.

    Debian 13's Ceph Reef (18.2.7+ds-1) is built with a relative default,
    ``lib/x86_64-linux-gnu/rados-classes`` (CMake's install libdir without
    the prefix): the OSD looks for its object classes relative to its
    working directory, loads none, and every class method -- ``rbd``'s
    directory and trash, ``lock`` -- fails with EOPNOTSUPP.  The classes are
    under the install prefix, /usr.
    """
    try:
        value = _run(['ceph-osd', '--show-config-value',
                      'osd_class_dir']).strip()
    except (OSError, SandboxError):
        return ''
    fixed = os.path.join('/usr', value)
    if value and not os.path.isabs(value) and os.path.isdir(fixed):
        return 'osd class dir = %s\n' % fixed
    return ''


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Sandbox:
    """A single-node Ceph cluster living in ``directory``.

    ``with Sandbox() as sb:`` starts it and always stops it again.
    """

    def __init__(self, directory: Optional[str] = None,
                 memstore_bytes: int = 4 * units.Gi,
                 pools: tuple[str, ...] = POOLS,
                 pg_num: int = 8,
                 min_compat_client: Optional[str] = None,
                 objectstore: Optional[str] = None) -> None:
        self.min_compat_client = (min_compat_client or
                                  os.environ.get(MIN_COMPAT_ENV) or None)
        self.objectstore = (objectstore or os.environ.get(OBJECTSTORE_ENV)
                            or 'memstore')
        if self.objectstore not in OBJECTSTORES:
            raise SandboxError('objectstore %r: choose one of %s' % (
                self.objectstore, ', '.join(OBJECTSTORES)))
        self._own_dir = directory is None
        self.directory = os.path.abspath(
            directory or tempfile.mkdtemp(prefix='bootcache-ceph-'))
        self.memstore_bytes = memstore_bytes
        self.pools = pools
        self.pg_num = pg_num
        self._children: list[subprocess.Popen] = []
        #: The OSD map epoch the OSD was last up from, when it was killed.
        self._osd_up_from = -1

    # -- paths a caller needs -------------------------------------------
    @property
    def conf_path(self) -> str:
        return os.path.join(self.directory, 'ceph.conf')

    @property
    def admin_keyring(self) -> str:
        return os.path.join(self.directory, 'client.admin.keyring')

    @property
    def client_keyring(self) -> str:
        return os.path.join(self.directory, 'client.%s.keyring' % CLIENT)

    @property
    def client_name(self) -> str:
        return CLIENT

    @property
    def run_dir(self) -> str:
        return os.path.join(self.directory, 'run')

    def info(self) -> dict[str, Any]:
        with open(os.path.join(self.directory, 'sandbox.json')) as f:
            return json.load(f)

    @property
    def fsid(self) -> str:
        return self.info()['fsid']

    # -- lifecycle --------------------------------------------------------
    def __enter__(self) -> 'Sandbox':
        self.up(tie_to_parent=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.down()

    def up(self, tie_to_parent: bool = True, timeout: float = 60) -> None:
        """Create and start the cluster; on any failure stop what started."""
        try:
            self._up(tie_to_parent, timeout)
        except BaseException:
            self.down(remove=False)
            raise

    def _up(self, tie_to_parent: bool, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        fsid = str(uuid.uuid4())
        port = free_loopback_port()
        for sub in ('run', 'log', 'mon.a', 'osd0', 'mgr.x'):
            os.makedirs(os.path.join(self.directory, sub), exist_ok=True)
        with open(os.path.join(self.directory, 'sandbox.json'), 'w') as f:
            json.dump({'fsid': fsid, 'mon_port': port,
                       'conf': self.conf_path, 'client': CLIENT,
                       'pools': list(self.pools)}, f)
        self._write_conf(fsid, port)
        d = self.directory
        mon_keyring = os.path.join(d, 'mon.keyring')
        _run(['ceph-authtool', '--create-keyring', mon_keyring, '--gen-key',
              '-n', 'mon.', '--cap', 'mon', 'allow *'])
        _run(['ceph-authtool', '--create-keyring', self.admin_keyring,
              '--gen-key', '-n', 'client.admin', '--cap', 'mon', 'allow *',
              '--cap', 'osd', 'allow *', '--cap', 'mgr', 'allow *',
              '--cap', 'mds', 'allow *'])
        _run(['ceph-authtool', mon_keyring, '--import-keyring',
              self.admin_keyring])
        monmap = os.path.join(d, 'monmap')
        _run(['monmaptool', '--create', '--fsid', fsid, '--addv', 'a',
              '[v2:127.0.0.1:%d]' % port, monmap])
        _run(['ceph-mon', '-c', self.conf_path, '--mkfs', '-i', 'a',
              '--monmap', monmap, '--keyring', mon_keyring])
        self._start('mon', 'a', tie_to_parent)

        with self.admin_client(timeout=max(5, deadline - time.monotonic())) \
                as cluster:
            osd_id = self._mon(cluster, 'osd create')
            assert int(osd_id) == 0, osd_id
            self._write_keyring(cluster, 'osd.0', os.path.join(d, 'osd0'),
                                ['mon', 'allow profile osd', 'osd', 'allow *',
                                 'mgr', 'allow profile osd'])
            _run(['ceph-osd', '-c', self.conf_path, '-i', '0', '--mkfs',
                  '--no-mon-config', '--keyring',
                  os.path.join(d, 'osd0', 'keyring')])
            self._mon(cluster, 'osd crush add', id=0, weight=1.0,
                      args=['host=localhost', 'root=default'])
            self._start('osd', '0', tie_to_parent)
            self._write_keyring(cluster, 'mgr.x', os.path.join(d, 'mgr.x'),
                                ['mon', 'allow profile mgr', 'osd', 'allow *',
                                 'mds', 'allow *'])
            self._start('mgr', 'x', tie_to_parent)
            self._wait(lambda: self._mon(cluster, 'osd stat',
                                         format='json')['num_up_osds'] == 1,
                       deadline, 'the OSD to come up')
            if self.min_compat_client:
                self._mon(cluster, 'osd set-require-min-compat-client',
                          version=self.min_compat_client)
            self._create_pools(cluster, deadline)
            osd_caps = ', '.join('profile rbd pool=%s' % p
                                 for p in self.pools)
            self._write_keyring(cluster, 'client.%s' % CLIENT, None,
                                ['mon', 'profile rbd', 'osd', osd_caps,
                                 'mgr', 'profile rbd'],
                                path=self.client_keyring)

    def _create_pools(self, cluster: Any, deadline: float) -> None:
        import rbd
        for pool in self.pools:
            self._mon(cluster, 'osd pool create', pool=pool,
                      pg_num=self.pg_num)
        self._wait(lambda: self._all_pgs_active(cluster), deadline,
                   'placement groups to become active')
        for pool in self.pools:
            with cluster.open_ioctx(pool) as ioctx:
                rbd.RBD().pool_init(ioctx, True)

    def _all_pgs_active(self, cluster: Any) -> bool:
        stat = self._mon(cluster, 'pg stat', format='json')
        summary = stat.get('pg_summary', stat)
        total = summary.get('num_pgs', 0)
        active = sum(s['num'] for s in summary.get('num_pg_by_state', [])
                     if 'active' in s['name'])
        return total > 0 and active == total

    def _write_conf(self, fsid: str, port: int) -> None:
        d = self.directory
        conf = f"""[global]
fsid = {fsid}
mon host = v2:127.0.0.1:{port}
public addr = 127.0.0.1
ms bind ipv4 = true
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
run dir = {d}/run
admin socket = {d}/run/$name.asok
pid file = {d}/run/$name.pid
log file = {d}/log/$name.log
mon cluster log file = {d}/log/cluster.log
crash dir = {d}/crash
keyring = {d}/$name.keyring

[mon]
mon data = {d}/mon.$id
keyring = {d}/mon.keyring

[osd]
osd data = {d}/osd$id
keyring = {d}/osd$id/keyring
{self._objectstore_conf()}
osd max object name len = 460
osd max object namespace len = 64
# A killed client's watch on an RBD image keeps the image busy (not
# removable) until the OSD times it out; 30 s by default, 10 s here so the
# kill -9 tests do not wait that long.
osd client watch timeout = 10
{osd_class_dir_fix()}
[mgr]
mgr data = {d}/mgr.$id
keyring = {d}/mgr.$id/keyring
"""
        with open(self.conf_path, 'w') as f:
            f.write(conf)

    def _objectstore_conf(self) -> str:
        if self.objectstore == 'memstore':
            return ('osd objectstore = memstore\n'
                    'memstore device bytes = %d' % self.memstore_bytes)
        # A sparse file of the memstore's size (the OSD's data directory's
        # ``block``, which mkfs creates): BlueStore allocates in it as it
        # writes.  One device (no separate DB or WAL); small caches,
        # so that a test machine's memory is not BlueStore's.  It refuses
        # writes when full, as a real OSD does.
        return '\n'.join((
            'osd objectstore = bluestore',
            'bluestore block create = true',
            'bluestore block size = %d' % self.memstore_bytes,
            'bluestore block db create = false',
            'bluestore block wal create = false',
            'bluestore fsck on mkfs = false',
            'bluestore cache autotune = false',
            'bluestore cache size = 134217728',
            'osd memory target = 939524096',
        ))

    def kill_daemon(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to one daemon (``'osd.0'``, ``'mon.a'``,
        ``'mgr.x'``) and wait until it is gone."""
        pid = self.daemon_pids().get(name)
        if pid is None:
            raise SandboxError('%s is not running' % name)
        if name.startswith('osd.'):
            self._osd_up_from = self._osd_state()['up_from']
        os.kill(pid, sig)
        for child in self._children:
            if child.pid == pid:
                child.wait(timeout=30)
        deadline = time.monotonic() + 30
        while name in self.daemon_pids():
            if time.monotonic() > deadline:
                raise SandboxError('%s did not stop' % name)
            time.sleep(0.1)

    def start_daemon(self, name: str, tie_to_parent: bool = True,
                     timeout: float = 60) -> None:
        """Start a daemon :meth:`kill_daemon` stopped; for the OSD, wait
        until the monitor has it up and every placement group is active
        again.  A memstore OSD comes back empty: restart only a
        BlueStore one."""
        kind, _, ident = name.partition('.')
        if (kind, ident) not in DAEMONS:
            raise SandboxError('no daemon %s' % name)
        if kind == 'osd' and self.objectstore == 'memstore':
            raise SandboxError('a memstore OSD loses its data when it '
                               'stops; use objectstore bluestore')
        self._start(kind, ident, tie_to_parent)
        deadline = time.monotonic() + timeout
        with self.admin_client(timeout=max(5, timeout)) as cluster:
            if kind == 'osd':
                # One OSD has no peer to report it down, so the monitor
                # marks the killed one down only when the new one boots:
                # until then its map still says "up" at the old address.
                self._wait(lambda: self._osd_booted(cluster), deadline,
                           'the OSD to boot again')
            self._wait(lambda: self._all_pgs_active(cluster), deadline,
                       'placement groups to become active')

    def _osd_state(self, cluster: Any = None) -> dict[str, Any]:
        if cluster is None:
            with self.admin_client() as cluster:
                return self._osd_state(cluster)
        (osd,) = self._mon(cluster, 'osd dump', format='json')['osds']
        return osd

    def _osd_booted(self, cluster: Any) -> bool:
        state = self._osd_state(cluster)
        return bool(state['up']) and \
            state['up_from'] > self._osd_up_from

    def _start(self, kind: str, ident: str, tie_to_parent: bool) -> None:
        log = open(os.path.join(self.directory, 'log',
                                '%s.%s.stdout' % (kind, ident)), 'ab')
        with log:
            child = subprocess.Popen(
                ['ceph-%s' % kind, '-c', self.conf_path, '-i', ident, '-f'],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                preexec_fn=die_with_parent if tie_to_parent else None,
                start_new_session=not tie_to_parent)
        self._children.append(child)
        # Ceph writes its own pid file a moment later; ours is there at once
        # so that down() can find a daemon that failed before writing it.
        with open(os.path.join(self.run_dir, '%s.%s.spawned' % (kind, ident)),
                  'w') as f:
            f.write(str(child.pid))

    def _write_keyring(self, cluster: Any, entity: str,
                       directory: Optional[str], caps: list[str],
                       path: Optional[str] = None) -> None:
        out = self._mon(cluster, 'auth get-or-create', entity=entity,
                        caps=caps, raw=True)
        path = path or os.path.join(directory, 'keyring')
        with open(path, 'w') as f:
            # Ceph's keyring parser rejects a file without a final newline.
            f.write(out + '\n')

    @staticmethod
    def _mon(cluster: Any, prefix: str, raw: bool = False,
             **args: Any) -> Any:
        try:
            text = ceph.mon_command_text(cluster, prefix, **args)
        except ceph.MonCommandError as exc:
            raise SandboxError(str(exc))
        if raw or args.get('format') != 'json':
            return text.strip()
        return json.loads(text)

    @staticmethod
    def _wait(predicate: Any, deadline: float, what: str) -> None:
        while True:
            if predicate():
                return
            if time.monotonic() > deadline:
                raise SandboxError('timed out waiting for %s' % what)
            time.sleep(0.2)

    @contextlib.contextmanager
    def admin_client(self, timeout: float = 10) -> Iterator[Any]:
        """A connected ``rados.Rados`` as client.admin."""
        with self._client('admin', self.admin_keyring, timeout) as cluster:
            yield cluster

    @contextlib.contextmanager
    def client(self, timeout: float = 10) -> Iterator[Any]:
        """A connected ``rados.Rados`` as the restricted cinder client."""
        with self._client(CLIENT, self.client_keyring, timeout) as cluster:
            yield cluster

    def _client(self, name: str, keyring: str, timeout: float) -> Any:
        import rados
        cluster = rados.Rados(conffile=self.conf_path, rados_id=name,
                              conf={'keyring': keyring})
        cluster.connect(timeout=int(timeout))
        return _shutdown_on_exit(cluster)

    def daemon_pids(self) -> dict[str, int]:
        """Pids of this sandbox's daemons that are still running."""
        pids = {}
        if not os.path.isdir(self.run_dir):
            return pids
        for kind, ident in DAEMONS:
            for name in ('%s.%s.pid' % (kind, ident),
                         '%s.%s.spawned' % (kind, ident)):
                path = os.path.join(self.run_dir, name)
                try:
                    with open(path) as f:
                        pid = int(f.read().strip())
                except (OSError, ValueError):
                    continue
                if _pid_alive(pid) and self._is_our_daemon(pid):
                    pids['%s.%s' % (kind, ident)] = pid
                    break
        return pids

    def _is_our_daemon(self, pid: int) -> bool:
        # A recycled pid must never be killed: check it runs our ceph.conf.
        try:
            with open('/proc/%d/cmdline' % pid, 'rb') as f:
                return self.conf_path.encode() in f.read()
        except OSError:
            return False

    def down(self, remove: bool = True, timeout: float = 20) -> None:
        """Stop every daemon (TERM, then KILL) and remove the directory."""
        for name, pid in reversed(list(self.daemon_pids().items())):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.daemon_pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in self.daemon_pids().values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for child in self._children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)
        self._children = []
        if self.daemon_pids():
            raise SandboxError('daemons still running: %s' %
                               self.daemon_pids())
        if remove and os.path.isdir(self.directory):
            shutil.rmtree(self.directory, ignore_errors=True)

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = {'directory': self.directory,
                                  'daemons': self.daemon_pids()}
        if os.path.exists(os.path.join(self.directory, 'sandbox.json')):
            result.update(self.info())
        return result


@contextlib.contextmanager
def _shutdown_on_exit(cluster: Any) -> Iterator[Any]:
    try:
        yield cluster
    finally:
        cluster.shutdown()
