"""The whole end-to-end environment, up and torn down as one.

``with Environment(directory) as env:`` starts, in order, the project's
Ceph sandbox, RabbitMQ, MariaDB, Keystone (see :mod:`identity`),
glance-api, Cinder's api, scheduler and volume services (our driver in
cinder.conf), Placement and Nova's api, conductor, scheduler and compute
(fake virt driver), every API behind keystonemiddleware and in Keystone's
catalog, and stops all of them on the way out, also after a failure.
glance-api and Cinder publish their notifications to the RabbitMQ
(``messagingv2``, topic ``notifications``), and ``cinder-rbd-bootcache
listen`` runs for each of our backends as the operations guide runs it.
``env.openstack(...)`` and ``env.cinder(...)`` run the users'
command-line clients against it with a Keystone user's credentials in
their environment (``OS_AUTH_URL``, ...: the ``demo`` user unless told),
``env.operator(...)`` the operator's ``cinder-rbd-bootcache`` with
cinder-volume's cinder.conf, ``env.compute(...)`` calls Nova's API.
There is no Neutron, only an empty stand-in (``empty_neutron``) so that
servers can be deleted: servers are booted with ``"networks": "none"``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any
from typing import Iterator
from typing import Optional
from typing import Sequence

from oslo_utils import units

from bootcache_testkit.e2e import identity as identity_mod
from bootcache_testkit.e2e import processes
from bootcache_testkit.e2e import services
from bootcache_testkit import sandbox as ceph_sandbox

OUR_DRIVER = 'cinder_rbd_bootcache.driver.BootCacheRBDDriver'
UPSTREAM_DRIVER = 'cinder.volume.drivers.rbd.RBDDriver'
#: The property that makes an image one ``ceph``'s listener warms.
WARM_PROPERTY = 'bootcache_warm'
#: The e2e suite's backends: ours, on the sandbox's ``volumes`` pool
#: (the default volume type's), whose listener warms the images with
#: property WARM_PROPERTY (a policy the other scenarios' images do not
#: match, so their first create still downloads), and a second one of
#: ours on ``volumes2``, where volumes are retyped and migrated to, whose
#: cache holds one entry (a second image's population evicts the first).
DEFAULT_BACKENDS = (
    services.BackendSection('ceph', OUR_DRIVER, 'volumes', (
        ('bootcache_allowed_clone_pools', 'images'),
        ('bootcache_warm_policy', 'property:%s' % WARM_PROPERTY))),
    services.BackendSection('ceph2', OUR_DRIVER, 'volumes2', (
        ('bootcache_allowed_clone_pools', 'images'),
        ('bootcache_max_entries', '1'))),
)
#: cinder-backup's pool (Cinder's Ceph backup driver).
BACKUP_POOL = 'backups'
CINDER_API_VERSION = '3.70'


class Environment:

    def __init__(self, directory: Optional[str] = None,
                 memstore_bytes: int = 4 * units.Gi,
                 keep: bool = False,
                 backends: Sequence[services.BackendSection] = (
                     DEFAULT_BACKENDS),
                 volume_concurrency: str = 'eventlet') -> None:
        """``backends``: the sections of the one cinder-volume, each on
        its own pool (pools the sandbox does not have by default are
        added to it); ``volume_concurrency``: cinder-volume's,
        ``eventlet`` (Cinder 29's default) or ``threading``."""
        self._own_directory = directory is None
        self.directory = directory or tempfile.mkdtemp(prefix='bootcache-e2e-')
        self.keep = keep
        self.backends = tuple(backends)
        self.volume_concurrency = volume_concurrency
        self.supervisor = processes.Supervisor(
            os.path.join(self.directory, 'logs'))
        pools = tuple(ceph_sandbox.POOLS) + tuple(
            b.pool for b in self.backends) + (BACKUP_POOL,)
        self.sandbox = ceph_sandbox.Sandbox(
            os.path.join(self.directory, 'ceph'),
            memstore_bytes=memstore_bytes, pools=tuple(dict.fromkeys(pools)))
        self.cinder_url = ''
        self.glance_url = ''
        self.cinder_conf = ''
        self.placement_url = ''
        self.nova_url = ''
        self.transport_url = ''
        #: backend name -> its ``cinder-rbd-bootcache listen`` service.
        self.listeners: dict[str, str] = {}
        self.identity: Optional[identity_mod.Identity] = None

    # -- up and down ------------------------------------------------------
    def __enter__(self) -> 'Environment':
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.down()

    def up(self) -> None:
        d = self.directory
        started = time.monotonic()
        self.sandbox.up(tie_to_parent=True)
        self.transport_url = transport = services.rabbitmq(
            self.supervisor, os.path.join(d, 'rabbitmq'))
        databases = services.mariadb(
            self.supervisor, os.path.join(d, 'mariadb'),
            ('keystone', 'cinder', 'glance', 'placement', 'nova_api',
             'nova', 'nova_cell0'))
        self.identity = identity = identity_mod.keystone(
            self.supervisor, os.path.join(d, 'keystone'),
            databases['keystone'])
        self.glance_url = services.glance(
            self.supervisor, os.path.join(d, 'glance'), self.sandbox,
            databases['glance'], identity, transport)
        identity.add_service('image', 'glance', self.glance_url)
        self.cinder_url, self.cinder_conf = services.cinder(
            self.supervisor, os.path.join(d, 'cinder'), self.sandbox,
            databases['cinder'], transport, self.glance_url, self.backends,
            identity, self.volume_concurrency, backup_pool=BACKUP_POOL)
        for service_type in ('block-storage', 'volumev3'):
            identity.add_service(service_type, 'cinder',
                                 self.cinder_url + '/v3/$(project_id)s')
        self.wait_for_pool()
        for backend in self.backends:
            if backend.driver == OUR_DRIVER:
                self.listeners[backend.name] = services.bootcache_listener(
                    self.supervisor, self.cinder_conf, backend.name)
        for backend in self.listeners:
            self.wait_for_listeners(backend, 1)
        # A volume without a type goes to the first backend, as on a
        # cloud whose default type names its backend; the others are
        # reached by a type of their own (same name as the backend).
        self.openstack('volume', 'type', 'set', '--property',
                       'volume_backend_name=%s' % self.backends[0].name,
                       '__DEFAULT__', user='admin')
        for backend in self.backends[1:]:
            self.openstack('volume', 'type', 'create', '--property',
                           'volume_backend_name=%s' % backend.name,
                           backend.name, user='admin')
        self.placement_url = services.placement(
            self.supervisor, os.path.join(d, 'placement'),
            databases['placement'], identity)
        identity.add_service('placement', 'placement', self.placement_url)
        self.nova_url = services.nova(
            self.supervisor, os.path.join(d, 'nova'), databases, transport,
            self.placement_url, self.glance_url, self.cinder_url, identity)
        identity.add_service('compute', 'nova', self.nova_url + '/v2.1')
        self._write_clouds_yaml()
        self.seconds_to_start = time.monotonic() - started

    def down(self) -> None:
        try:
            self.supervisor.stop_all()
        finally:
            self.sandbox.down()
            if self._own_directory and not self.keep:
                shutil.rmtree(self.directory, ignore_errors=True)

    def wait_for_pool(self, timeout: float = 120) -> None:
        """Until the scheduler has every backend's stats (it then can
        place volumes on each)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.supervisor.check_running()
            pools = [r for r in self.cinder_json('get-pools', user='admin')
                     if r.get('Property') == 'name']
            if len(pools) >= len(self.backends):
                return
            time.sleep(2)
        raise processes.ServiceError('the scheduler never reported a pool')

    @staticmethod
    def listener_pool(backend: str) -> str:
        """The listener pool (a RabbitMQ queue) of ``backend``'s
        listeners: the default, one per backend."""
        return 'cinder-rbd-bootcache.%s' % backend

    def wait_for_listeners(self, backend: str, count: int,
                           timeout: float = 120) -> None:
        """Until ``count`` listeners of ``backend`` consume its pool."""
        services.wait_for_consumers(self.supervisor,
                                    self.listener_pool(backend), count,
                                    timeout)

    @contextlib.contextmanager
    def another_listener(self, backend: str) -> Iterator[str]:
        """A second ``listen`` of ``backend`` (as on a second
        cinder-volume host), consuming once this yields its service name;
        stopped afterwards, also after a failure."""
        name = services.bootcache_listener(
            self.supervisor, self.cinder_conf, backend,
            'bootcache-listen-%s-2' % backend)
        try:
            self.wait_for_listeners(backend, 2)
            yield name
        finally:
            self.supervisor.stop(name)

    def restart_rabbitmq(self, timeout: float = 180) -> None:
        """Restart RabbitMQ (its queues, which are not durable, are gone);
        return once it listens and every listener consumes again."""
        port = int(self.transport_url.rstrip('/').rsplit(':', 1)[1])
        self.supervisor.restart('rabbitmq')
        self.supervisor.wait_for_port('rabbitmq', port, timeout)
        for backend in self.listeners:
            self.wait_for_listeners(backend, 1, timeout)

    @contextlib.contextmanager
    def glance_user_of_cinder_volume(self, user: str) -> Iterator[str]:
        """cinder-volume with ``[glance]`` credentials of Keystone user
        ``user`` (restarted with them), and back to the cinder user
        afterwards, also after a failure.  Yields the cinder.conf with
        ``user`` (a copy; cinder-volume's own is restored)."""
        assert self.identity is not None
        with open(self.cinder_conf) as f:
            original = f.read()
        start = original.index('[glance]\n')
        end = original.index('\n[', start) + 1
        changed = (original[:start] +
                   self.identity.auth_options('glance', user) +
                   original[end:])
        copy = os.path.join(os.path.dirname(self.cinder_conf),
                            'cinder-%s.conf' % user)
        for path, text in ((copy, changed), (self.cinder_conf, changed)):
            with open(path, 'w') as f:
                f.write(text)
        try:
            self.restart_cinder_volume()
            yield copy
        finally:
            with open(self.cinder_conf, 'w') as f:
                f.write(original)
            self.restart_cinder_volume()

    def restart_cinder_volume(self, timeout: float = 120) -> None:
        """Restart cinder-volume; return once its drivers are ready and
        it takes requests again."""
        marker = 'Driver post RPC initialization completed successfully'
        log = self.log('cinder-volume.app')

        def ready() -> int:
            with open(log, errors='replace') as f:
                return sum(marker in line for line in f)
        before = ready()
        self.supervisor.restart('cinder-volume')
        deadline = time.monotonic() + timeout
        while ready() < before + len(self.backends):
            self.supervisor.check_running()
            if time.monotonic() > deadline:
                raise processes.ServiceError(
                    'cinder-volume not ready %d s after its restart' %
                    timeout)
            time.sleep(1)

    # -- users' clients ------------------------------------------------
    def _write_clouds_yaml(self) -> None:
        """clouds.yaml in the environment's directory (mode 0600), one
        cloud per Keystone user, for a person at the keyboard:
        ``OS_CLIENT_CONFIG_FILE=DIR/clouds.yaml openstack --os-cloud
        demo ...``."""
        assert self.identity is not None
        lines = ['clouds:']
        for name in ('admin', 'demo'):
            env = self.identity.environ(name)
            lines += ['  %s:' % name, '    region_name: %s' %
                      env['OS_REGION_NAME'], '    auth:']
            lines += ['      %s: %s' % (key, env['OS_' + key.upper()])
                      for key in ('auth_url', 'username', 'password',
                                  'project_name', 'user_domain_name',
                                  'project_domain_name')]
        path = os.path.join(self.directory, 'clouds.yaml')
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as f:
            f.write('\n'.join(lines) + '\n')

    def client_environ(self, user: str = 'demo') -> dict:
        """The environment the clients run with: ``user``'s credentials
        (passwords never on a command line)."""
        assert self.identity is not None
        env = {k: v for k, v in os.environ.items()
               if not k.startswith('OS_')}
        env.update(self.identity.environ(user))
        env['OS_VOLUME_API_VERSION'] = CINDER_API_VERSION
        return env

    def _client(self, argv: list[str], check: bool = True,
                user: str = 'demo', close_stdin: bool = False) -> str:
        # close_stdin: the command's standard input is a terminal with
        # nothing typed, as for a user at a shell: "openstack image
        # create" without --file otherwise reads the image's data from a
        # standard input that is not a terminal.
        terminal = os.openpty() if close_stdin else None
        try:
            done = subprocess.run(
                argv, capture_output=not terminal, text=True, timeout=600,
                env=self.client_environ(user),
                **({'stdin': terminal[1], 'stdout': subprocess.PIPE,
                    'stderr': subprocess.PIPE} if terminal else {}))
        finally:
            if terminal:
                os.close(terminal[0])
                os.close(terminal[1])
        if check and done.returncode:
            raise processes.ServiceError('%s failed (exit %d): %s' % (
                ' '.join(argv[:4]), done.returncode,
                done.stderr[-2000:] or done.stdout[-2000:]))
        return done.stdout

    def cinder(self, *args: str, check: bool = True,
               user: str = 'demo') -> str:
        """``cinder ARGS`` as Keystone user ``user`` (``demo``, a member
        of project demo; ``admin``, the cloud admin)."""
        return self._client([services._bin('cinder')] + list(args), check,
                            user)

    def cinder_json(self, *args: str, user: str = 'demo') -> Any:
        """A cinder command whose table is read into dicts."""
        return _parse_table(self.cinder(*args, user=user))

    def cinder_properties(self, *args: str, user: str = 'demo') -> dict:
        """A cinder command that prints one Property/Value table."""
        return properties(self.cinder(*args, user=user))

    def openstack(self, *args: str, check: bool = True,
                  user: str = 'demo', close_stdin: bool = False) -> str:
        """``openstack ARGS`` as Keystone user ``user``."""
        return self._client([services._bin('openstack')] + list(args),
                            check, user, close_stdin)

    def openstack_json(self, *args: str, user: str = 'demo',
                       close_stdin: bool = False) -> Any:
        """``openstack ARGS -f json``, read."""
        return json.loads(self.openstack(*args, '-f', 'json', user=user,
                                         close_stdin=close_stdin))

    def operator(self, *args: str, check: bool = True,
                 config_file: Optional[str] = None
                 ) -> subprocess.CompletedProcess:
        """``cinder-rbd-bootcache ARGS`` as an operator runs it on the
        cinder-volume host: with cinder-volume's own cinder.conf (or
        ``config_file``), for the first backend unless ``ARGS`` name one
        (``--backend``: cinder.conf enables several)."""
        backend = [] if '--backend' in args else [
            '--backend', self.backends[0].name]
        done = subprocess.run(
            [services._bin('cinder-rbd-bootcache'), '--config-file',
             config_file or self.cinder_conf] + backend + list(args),
            capture_output=True, text=True, timeout=600)
        if check and done.returncode:
            raise processes.ServiceError(
                'cinder-rbd-bootcache %s failed (exit %d): %s' % (
                    ' '.join(args), done.returncode, done.stderr[-2000:]))
        return done

    def upload_image(self, path: str, disk_format: str, store: str,
                     name: str, timeout: float = 300,
                     user: str = 'admin',
                     properties: Optional[dict] = None) -> dict:
        """A public image, as the cloud admin makes one (another
        ``user``: a private image of that user's project): in Glance's
        default store (``ceph``, the rbd store) ``openstack image create
        --file``; in another store, the image is created, its data staged
        and imported into that store (``openstack image stage``, ``image
        import --store``) and waited for.  ``properties``: the image's
        own, set as it is created."""
        common = ('--disk-format', disk_format, '--container-format',
                  'bare', '--public' if user == 'admin' else '--private')
        for key, value in (properties or {}).items():
            common += ('--property', '%s=%s' % (key, value))
        common += (name,)
        if store == services.GLANCE_DEFAULT_STORE:
            return self.openstack_json('image', 'create', '--file', path,
                                       *common, user=user)
        image = self.openstack_json('image', 'create', *common,
                                    user=user, close_stdin=True)
        self.openstack('image', 'stage', '--file', path, image['id'],
                       user=user)
        self.openstack('image', 'import', image['id'], '--method',
                       'glance-direct', '--store', store, user=user)
        deadline = time.monotonic() + timeout
        while True:
            shown = self.openstack_json('image', 'show', image['id'],
                                        user=user)
            if shown['status'] == 'active':
                return shown
            glance_props = {k: v for k, v in
                            (shown.get('properties') or {}).items()
                            if k.startswith('os_glance')}
            if time.monotonic() > deadline or shown['status'] in (
                    'killed', 'deleted') or glance_props.get(
                    'os_glance_failed_import'):
                raise processes.ServiceError(
                    'image %s is %s after its import into %s: %s' % (
                        image['id'], shown['status'], store, glance_props))
            time.sleep(0.5)

    def compute(self, method: str, path: str, body: Optional[dict] = None,
                ok: tuple = (200, 201, 202, 204), user: str = 'demo') -> Any:
        """The compute API as Keystone user ``user``; HTTP with a Keystone
        session, not ``openstack server ...``: the client's ``server
        show`` asks Neutron for security groups; only an empty stand-in
        runs."""
        assert self.identity is not None
        response = self.identity.session(user).request(
            '%s/v2.1%s' % (self.nova_url, path), method,
            headers={'X-OpenStack-Nova-API-Version': '2.90'},
            json=body, timeout=60, raise_exc=False)
        if response.status_code not in ok:
            raise processes.ServiceError('%s %s: %d %s' % (
                method, path, response.status_code, response.text[:500]))
        return response.json() if response.content else None

    def log(self, name: str) -> str:
        return self.supervisor.log(name)

    def downloads(self, image_id: str) -> int:
        """GETs of the image's data that glance-api served, from its
        access log (a line is written once the response is sent)."""
        with open(self.log('glance-api')) as f:
            return sum('GET /v2/images/%s/file' % image_id in line
                       for line in f)


def _parse_table(text: str) -> list[dict]:
    """Rows of a prettytable as the OpenStack clients print them."""
    lines = [line for line in text.splitlines() if line.startswith('|')]
    if not lines:
        return []
    header = [c.strip() for c in lines[0].strip('|').split('|')]
    return [dict(zip(header, [c.strip() for c in line.strip('|').split('|')]))
            for line in lines[1:]]


def properties(text: str) -> dict:
    """A Property/Value table (``show``, ``create``) as one dict."""
    return {row['Property']: row['Value'] for row in _parse_table(text)}


def pools(text: str) -> dict[str, dict]:
    """``cinder get-pools --detail``: each pool's Property/Value table,
    by the pool's name (``host@backend#pool``).  The client prints one
    table per pool, its rows sorted (``name`` is not the first), each
    table after the first starting with its header row."""
    tables: list[dict] = [{}]
    for row in _parse_table(text):
        if row.get('Property') == 'Property':
            tables.append({})
        else:
            tables[-1][row.get('Property')] = row.get('Value')
    return {table['name']: table for table in tables if 'name' in table}


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m bootcache_testkit.e2e.environment [DIR]``: start
    everything, print the endpoints, wait for Enter, stop everything."""
    argv = sys.argv[1:] if argv is None else argv
    # SIGTERM stops everything as Enter does (not a bare exit).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with Environment(argv[0] if argv else None, keep=bool(argv)) as env:
        print(json.dumps({'keystone': env.identity.url,
                          'clouds_yaml': os.path.join(env.directory,
                                                      'clouds.yaml'),
                          'cinder': env.cinder_url, 'glance': env.glance_url,
                          'nova': env.nova_url,
                          'placement': env.placement_url,
                          'cinder_conf': env.cinder_conf,
                          'logs': env.supervisor.log_dir,
                          'started_in_seconds': round(env.seconds_to_start,
                                                      1)}), flush=True)
        try:
            input('Running; press Enter (or send SIGTERM) to stop '
                  'everything.\n')
        except EOFError:
            signal.pause()
    return 0


if __name__ == '__main__':
    sys.exit(main())
