"""Whether the backend's Ceph settings can work, checked one at a time.

A wrong ``rbd_ceph_conf``, keyring, ``rbd_user``, pool or cap otherwise
surfaces as librados' own error (``error connecting to the cluster``)
after upstream's connection retries, naming none of them.  The checks
here run in the order the Ceph client needs these settings, each
answering with one line that names the option, its value and what to do
(``errors.CephMisconfigured``):

1. ``rbd_ceph_conf``: the file exists and is readable;
2. ``rbd_keyring_conf`` (only if set): the same;
3. ``keyring``: the keyring librados will read for ``rbd_user`` (ceph.conf's
   ``keyring``, else Ceph's default paths) exists, is readable and holds a
   key for that user;
4. ``monitors``: a monitor answers within ``rados_connect_timeout``;
5. ``authentication``: the monitors accept the user's key;
6. ``caps``: the user's caps as ``auth get`` shows them (when the user may
   read them), covering every pool the backend uses;
7. one check per pool (``rbd_pool``, ``bootcache_pool``): it exists, and the
   user may read, write and call object classes in it (a probe object is
   written and removed; a refusal names the missing cap).

A check that fails means the later ones cannot run.  Ceph's refusals are
answers: nothing is retried, and only an unreachable monitor waits
(``rados_connect_timeout``, once).  The checks take the ``rados`` binding
and the settings they need, so the driver (at start-up), the command
(before it uses the driver) and ``doctor`` (row by row) share them.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import socket
from typing import Any
from typing import Callable
from typing import Iterator
from typing import Optional

from cinder_rbd_bootcache import errors
from cinder_rbd_bootcache.upstream import compat

#: errno values of a refusal by Ceph (cephx or an OSD's caps check).
_REFUSED = frozenset({errno.EPERM, errno.EACCES})
#: errno values of "no monitor answered in time".
_NO_ANSWER = frozenset({errno.ETIMEDOUT, errno.EINTR, errno.ECONNREFUSED})
#: Where librados looks for ceph.conf when ``rbd_ceph_conf`` is empty.
_DEFAULT_CONFS = ('/etc/ceph/%s.conf', '~/.ceph/%s.conf', '%s.conf')
#: The object classes the driver calls (librbd's ``rbd``, the image lock
#: ``lock``, the boot cache's own omap index): refused without ``x``.
_PROBE_CLASS = ('lock', 'get_info')

Check = Callable[[], str]


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the checks need from a backend's configuration."""
    cluster: str
    conf: str
    user: str
    timeout: int
    #: (option, pool) in the order they are checked.
    pools: tuple[tuple[str, str], ...]
    keyring_conf: Optional[str] = None

    @classmethod
    def from_configuration(cls, configuration: Any,
                           keyring_conf: Optional[str] = None
                           ) -> 'Settings':
        """From a backend's ``Configuration`` (upstream's RBD options and
        ours).  ``keyring_conf``: ``rbd_keyring_conf`` if set (Cinder does
        not register it; see :func:`keyring_conf_of`)."""
        rbd_pool = configuration.rbd_pool
        bootcache_pool = (configuration.safe_get('bootcache_pool') or
                          rbd_pool)
        return cls(cluster=configuration.rbd_cluster_name or 'ceph',
                   conf=configuration.rbd_ceph_conf or '',
                   user=configuration.rbd_user or 'admin',
                   timeout=configuration.rados_connect_timeout,
                   pools=(('rbd_pool', rbd_pool),
                          ('bootcache_pool', bootcache_pool)),
                   keyring_conf=keyring_conf or None)


def keyring_conf_of(config_files: list[str],
                    sections: tuple[str, ...]) -> Optional[str]:
    """``rbd_keyring_conf`` as written in cinder.conf's ``sections``.

    Cinder does not register this option (OSSN-0085: upstream reads it
    only when cinderlib sets it on the configuration object), so
    oslo.config never shows its value; it is read from the files here,
    only to tell an operator that the file it names is missing.
    """
    from oslo_config import cfg
    found = None
    for path in config_files:
        parsed: dict = {}
        try:
            cfg.ConfigParser(path, parsed).parse()
        except Exception:
            continue  # oslo.config itself reports unreadable files
        for section in sections:
            values = parsed.get(section, {}).get('rbd_keyring_conf')
            if values:
                found = values[-1]
                break
    return found


def _file_problem(path: str) -> Optional[str]:
    if not os.path.exists(path):
        return 'no such file'
    if not os.path.isfile(path):
        return 'not a file'
    if not os.access(path, os.R_OK):
        return 'not readable by this process (uid %d)' % os.getuid()
    return None


def check_ceph_conf(settings: Settings) -> str:
    """``rbd_ceph_conf`` names a readable file (or, empty, librados finds
    one where it looks by default)."""
    if settings.conf:
        problem = _file_problem(settings.conf)
        if problem:
            raise errors.CephFileUnusable(
                option='rbd_ceph_conf', value=settings.conf, problem=problem,
                fix='Set rbd_ceph_conf to the ceph.conf of the cluster '
                    '(usually /etc/ceph/%s.conf) or copy it there, '
                    'readable by cinder-volume\'s user' % settings.cluster)
        return '%s readable' % settings.conf
    candidates = [os.path.expanduser(p % settings.cluster)
                  for p in _DEFAULT_CONFS]
    for path in candidates:
        if not _file_problem(path):
            return 'not set; librados reads %s' % path
    raise errors.CephFileUnusable(
        option='rbd_ceph_conf', value='""',
        problem='not set, and none of librados\' default paths (%s) is a '
                'readable file' % ', '.join(candidates),
        fix='Set rbd_ceph_conf to the ceph.conf of the cluster')


def check_keyring_conf(settings: Settings) -> str:
    """``rbd_keyring_conf``, if set, names a readable file."""
    problem = _file_problem(settings.keyring_conf)
    if problem:
        raise errors.CephFileUnusable(
            option='rbd_keyring_conf', value=settings.keyring_conf,
            problem=problem,
            fix='Point rbd_keyring_conf at client.%s\'s keyring, or remove '
                'it (cinder-volume\'s Ceph client reads the keyring '
                'ceph.conf names)' % settings.user)
    return '%s readable' % settings.keyring_conf


def _keyring_setting(binding: Any, settings: Settings,
                     conffile: Optional[str]) -> tuple[str, str]:
    """(keyring paths, inline key or keyfile) as librados resolves them
    for the user, from ``conffile`` (None: Ceph's defaults only)."""
    client = binding.Rados(rados_id=settings.user,
                           clustername=settings.cluster, conffile=conffile)
    try:
        inline = client.conf_get('key') or client.conf_get('keyfile')
        return client.conf_get('keyring') or '', inline or ''
    finally:
        client.shutdown()


def holds_key_for(text: str, entity: str) -> bool:
    """Whether keyring ``text`` has a section for ``entity``."""
    return any(line.strip() == '[%s]' % entity for line in text.splitlines())


def check_keyring(binding: Any, settings: Settings) -> tuple[str, str]:
    """The keyring librados will read for ``rbd_user`` is there and holds
    that user's key: (what was found, the keyring's path or "ceph.conf")."""
    entity = 'client.%s' % settings.user
    paths, inline = _keyring_setting(binding, settings,
                                     settings.conf or None)
    if inline:
        return ('ceph.conf gives %s\'s key inline (key or keyfile)'
                % entity, settings.conf)
    default, _inline = _keyring_setting(binding, settings, None)
    candidates = [p for p in re.split(r'[,;\s]+', paths) if p]
    if paths != default:
        option, value = 'keyring (in %s)' % settings.conf, paths
    else:
        option, value = 'rbd_user', settings.user
    existing = [p for p in candidates if os.path.exists(p)]
    if not existing:
        raise errors.CephFileUnusable(
            option=option, value=value,
            problem='no keyring for %s: %s' % (
                entity, 'none of %s exists' % ', '.join(candidates)
                if len(candidates) > 1 else '%s does not exist' % paths),
            fix='Check rbd_user, or write %s\'s keyring to %s ("ceph auth '
                'get %s -o %s")' % (entity, candidates[0], entity,
                                    candidates[0]))
    path = existing[0]
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as exc:
        raise errors.CephFileUnusable(
            option=option, value=value,
            problem='cannot read keyring %s (%s)' % (path, exc.strerror),
            fix='Make it readable by cinder-volume\'s user')
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return '%s (binary keyring, not inspected)' % path, path
    if not holds_key_for(text, entity):
        raise errors.CephFileUnusable(
            option=option, value=value,
            problem='keyring %s holds no key for %s' % (path, entity),
            fix='Check rbd_user, or add %s\'s key ("ceph auth get %s")'
                % (entity, entity))
    return '%s holds %s\'s key' % (path, entity), path


def pools_not_covered(osd_caps: str, pools: list[str]) -> list[str]:
    """The ``pools`` that no grant of ``osd_caps`` (``auth get``'s osd
    caps, e.g. ``profile rbd pool=volumes, profile rbd pool=images``)
    names, in order.  A grant without a pool covers every pool."""
    covered: set[str] = set()
    for grant in osd_caps.split(','):
        if not grant.strip():
            continue
        named = re.search(r'\bpool[= ]\s*(\S+)', grant)
        if named is None:
            return []
        covered.add(named.group(1))
    return [p for p in pools if p not in covered]


class Preflight:
    """The ordered checks of one backend, on one librados client that
    :meth:`close` shuts down."""

    def __init__(self, binding: Any, settings: Settings) -> None:
        self.binding = binding
        self.settings = settings
        self.client: Any = None
        self._refused: Optional[BaseException] = None
        self._keyring = ''

    def checks(self) -> Iterator[tuple[str, Check]]:
        """(name, check) in order; a check returns what it found, or
        raises ``errors.CephMisconfigured``."""
        yield 'rbd_ceph_conf', lambda: check_ceph_conf(self.settings)
        if self.settings.keyring_conf:
            yield ('rbd_keyring_conf',
                   lambda: check_keyring_conf(self.settings))
        yield 'keyring', self.keyring
        yield 'monitors', self.reach_monitors
        yield 'authentication', self.authenticated
        yield 'caps', self.caps
        seen = set()
        for option, pool in self.settings.pools:
            if pool in seen:
                yield option, (lambda p=pool: 'pool %s, checked above' % p)
            else:
                seen.add(pool)
                yield option, (lambda o=option, p=pool: self.pool(o, p))

    def run(self) -> None:
        """Every check; raises the first failure."""
        try:
            for _name, check in self.checks():
                check()
        finally:
            self.close()

    def close(self) -> None:
        if self.client is not None:
            self.client.shutdown()
            self.client = None

    def _entity(self) -> str:
        return 'client.%s' % self.settings.user

    def keyring(self) -> str:
        found, self._keyring = check_keyring(self.binding, self.settings)
        return found

    def reach_monitors(self) -> str:
        """Connect; a refusal is an answer (``authenticated`` says it)."""
        settings = self.settings
        # Off eventlet's hub, if any, as every librados call of ours.
        client = compat.tpool_wrap(self.binding.Rados(
            rados_id=settings.user, clustername=settings.cluster,
            conffile=settings.conf or None))
        if settings.timeout >= 0:
            for name in ('rados_osd_op_timeout', 'rados_mon_op_timeout',
                         'client_mount_timeout'):
                client.conf_set(name, str(settings.timeout))
        try:
            client.connect()
        except self.binding.Error as exc:
            client.shutdown()
            code = abs(getattr(exc, 'errno', 0) or 0)
            if code in _REFUSED:
                self._refused = exc
                return 'a monitor answered'
            if code in _NO_ANSWER or isinstance(
                    exc, getattr(self.binding, 'TimedOut', ())):
                raise errors.CephMonitorsUnreachable(
                    option='rbd_ceph_conf', value=settings.conf,
                    problem='no monitor of its mon_host (%s) answered '
                            'within %s s (rados_connect_timeout)' % (
                                self._mon_host(), settings.timeout),
                    fix='Check mon_host there, that the monitors run, and '
                        'that this host reaches them')
            raise errors.CephAuthRefused(
                option='rbd_user', value=settings.user,
                problem='librados could not connect as %s (%s)' % (
                    self._entity(), exc),
                fix='Check rbd_user, rbd_ceph_conf and the keyring')
        self.client = client
        return 'cluster %s answered' % client.get_fsid()

    def _mon_host(self) -> str:
        try:
            client = self.binding.Rados(
                rados_id=self.settings.user,
                clustername=self.settings.cluster,
                conffile=self.settings.conf or None)
            try:
                return client.conf_get('mon_host') or 'not set'
            finally:
                client.shutdown()
        except self.binding.Error:
            return 'unknown'

    def authenticated(self) -> str:
        if self._refused is not None:
            raise errors.CephAuthRefused(
                option='rbd_user', value=self.settings.user,
                problem='the monitors refused the key of %s in %s (the user '
                        'does not exist, its key is another, or it has no '
                        'mon caps)' % (self._entity(), self._keyring),
                fix='Compare "ceph auth get %s" with that keyring, and give '
                    'it mon \'profile rbd\'' % self._entity())
        return 'authenticated as %s' % self._entity()

    def caps(self) -> str:
        """The user's caps, when it may read them; a pool no osd grant
        names is an error here, other refusals show in the pool checks."""
        ret, out, _err = self.client.mon_command(json.dumps(
            {'prefix': 'auth get', 'entity': self._entity(),
             'format': 'json'}), b'')
        if ret != 0:
            return ('%s may not read its caps ("auth get"); the pool checks '
                    'probe them' % self._entity())
        caps = json.loads(out)[0].get('caps', {})
        pools = list(dict.fromkeys(p for _o, p in self.settings.pools))
        missing = pools_not_covered(caps.get('osd', ''), pools)
        if missing:
            raise errors.CephCapsTooNarrow(
                option='rbd_user', value=self.settings.user,
                problem='osd caps "%s" do not name pool %s' % (
                    caps.get('osd', ''), ', '.join(missing)),
                fix='Add "profile rbd pool=%s" to its osd caps ("ceph auth '
                    'caps %s ...")' % (missing[0], self._entity()))
        return ', '.join('%s \'%s\'' % item for item in sorted(caps.items()))

    def pool(self, option: str, pool: str) -> str:
        if not self.client.pool_exists(pool):
            raise errors.CephPoolMissing(
                option=option, value=pool,
                problem='cluster %s has no pool %s' % (
                    self.client.get_fsid(), pool),
                fix='Create it ("ceph osd pool create %s" and "rbd pool '
                    'init %s") or set %s to an existing pool'
                    % (pool, pool, option))
        ioctx = compat.tpool_wrap(self.client.open_ioctx(pool))
        try:
            # A full pool answers the probe's write at once (ENOSPC).
            ioctx.set_osdmap_full_try()
            return self._probe(ioctx, option, pool)
        finally:
            ioctx.close()

    def _probe(self, ioctx: Any, option: str, pool: str) -> str:
        name = 'bootcache_preflight.%s.%d' % (socket.gethostname(),
                                              os.getpid())
        steps = (('r', 'read', lambda: ioctx.stat(name)),
                 ('w', 'write', lambda: ioctx.write_full(name, b'')),
                 ('x', 'call object class methods (%s.%s) on' % _PROBE_CLASS,
                  lambda: ioctx.execute(name, *_PROBE_CLASS, b'')))
        notes = []
        try:
            for cap, what, step in steps:
                try:
                    step()
                except self.binding.Error as exc:
                    code = abs(getattr(exc, 'errno', 0) or 0)
                    if code in _REFUSED:
                        raise errors.CephCapsTooNarrow(
                            option='rbd_user', value=self.settings.user,
                            problem='Ceph refused to let %s %s objects in '
                                    'pool %s (%s): its osd caps lack \'%s\' '
                                    'there' % (self._entity(), what, pool,
                                               option, cap),
                            fix='Give it "profile rbd pool=%s" in its osd '
                                'caps ("ceph auth caps %s ...")'
                                % (pool, self._entity()))
                    if code == errno.ENOSPC:
                        notes.append('full')
                        break
        finally:
            try:
                ioctx.remove_object(name)
            except self.binding.Error:
                pass  # never written, or not ours to remove
        return 'pool %s exists; %s may read, write and call classes in it%s' \
            % (pool, self._entity(),
               ' (it is full)' if notes else '')
