"""The whole end-to-end environment, up and torn down as one.

``with Environment(directory) as env:`` starts, in order, the project's
Ceph sandbox, RabbitMQ, MariaDB, glance-api, Cinder's api, scheduler
and volume services (our driver in cinder.conf), Placement and Nova's
api, conductor, scheduler and compute (fake virt driver), and stops all of
them on the way out, also after a failure.  ``env.cinder(...)`` and
``env.glance(...)`` run the users' command-line clients against it,
``env.operator(...)`` the operator's ``cinder-rbd-bootcache`` with
cinder-volume's cinder.conf, ``env.compute(...)`` calls Nova's API.
There is no Neutron, only an empty stand-in (``empty_neutron``) so that
servers can be deleted: servers are booted with ``"networks": "none"``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Optional, Sequence

from oslo_utils import units

from bootcache_testkit import sandbox as ceph_sandbox
from bootcache_testkit.e2e import processes
from bootcache_testkit.e2e import services

OUR_DRIVER = 'cinder_rbd_bootcache.driver.BootCacheRBDDriver'
UPSTREAM_DRIVER = 'cinder.volume.drivers.rbd.RBDDriver'
#: The e2e suite's one backend: ours, on the sandbox's ``volumes`` pool.
DEFAULT_BACKENDS = (services.BackendSection(
    'ceph', OUR_DRIVER, 'volumes',
    (('bootcache_allowed_clone_pools', 'images'),)),)
PROJECT_ID = 'e2e0000000000000000000000000000a'
USER_ID = 'e2e0000000000000000000000000000b'


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
            b.pool for b in self.backends if b.pool not in ceph_sandbox.POOLS)
        self.sandbox = ceph_sandbox.Sandbox(
            os.path.join(self.directory, 'ceph'),
            memstore_bytes=memstore_bytes, pools=tuple(dict.fromkeys(pools)))
        self.cinder_url = ''
        self.glance_url = ''
        self.cinder_conf = ''
        self.placement_url = ''
        self.nova_url = ''

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
        transport = services.rabbitmq(self.supervisor,
                                      os.path.join(d, 'rabbitmq'))
        databases = services.mariadb(
            self.supervisor, os.path.join(d, 'mariadb'),
            ('cinder', 'glance', 'placement', 'nova_api', 'nova',
             'nova_cell0'))
        self.glance_url = services.glance(
            self.supervisor, os.path.join(d, 'glance'), self.sandbox,
            databases['glance'])
        self.cinder_url, self.cinder_conf = services.cinder(
            self.supervisor, os.path.join(d, 'cinder'), self.sandbox,
            databases['cinder'], transport, self.glance_url, self.backends,
            self.volume_concurrency)
        self.wait_for_pool()
        self.placement_url = services.placement(
            self.supervisor, os.path.join(d, 'placement'),
            databases['placement'])
        self.nova_url = services.nova(
            self.supervisor, os.path.join(d, 'nova'), databases, transport,
            self.placement_url, self.glance_url, self.cinder_url)
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
            pools = [r for r in self.cinder_json('get-pools')
                     if r.get('Property') == 'name']
            if len(pools) >= len(self.backends):
                return
            time.sleep(2)
        raise processes.ServiceError('the scheduler never reported a pool')

    # -- users' clients ------------------------------------------------
    def _client(self, argv: list[str], check: bool = True) -> str:
        done = subprocess.run(argv, capture_output=True, text=True,
                              timeout=600)
        if check and done.returncode:
            raise processes.ServiceError('%s failed (exit %d): %s' % (
                ' '.join(argv[:4]), done.returncode,
                done.stderr[-2000:] or done.stdout[-2000:]))
        return done.stdout

    def cinder(self, *args: str, check: bool = True) -> str:
        """``cinder ARGS`` as a user of the project (noauth)."""
        return self._client([
            services._bin('cinder'), '--os-auth-type', 'noauth',
            '--os-user-id', USER_ID, '--os-project-id', PROJECT_ID,
            '--os-endpoint', '%s/v3/%s' % (self.cinder_url, PROJECT_ID),
            '--os-volume-api-version', '3.70'] + list(args), check)

    def cinder_json(self, *args: str) -> Any:
        """A cinder command whose table is read into dicts."""
        return _parse_table(self.cinder(*args))

    def cinder_properties(self, *args: str) -> dict:
        """A cinder command that prints one Property/Value table."""
        return properties(self.cinder(*args))

    def glance(self, *args: str) -> str:
        """``glance ARGS`` (noauth: any token, the endpoint given)."""
        return self._client([
            services._bin('glance'), '--os-image-url', self.glance_url,
            '--os-auth-token', 'e2e'] + list(args))

    def operator(self, *args: str, check: bool = True
                 ) -> subprocess.CompletedProcess:
        """``cinder-rbd-bootcache ARGS`` as an operator runs it on the
        cinder-volume host: with cinder-volume's own cinder.conf."""
        done = subprocess.run(
            [services._bin('cinder-rbd-bootcache'), '--config-file',
             self.cinder_conf] + list(args),
            capture_output=True, text=True, timeout=600)
        if check and done.returncode:
            raise processes.ServiceError(
                'cinder-rbd-bootcache %s failed (exit %d): %s' % (
                    ' '.join(args), done.returncode, done.stderr[-2000:]))
        return done

    def upload_image(self, path: str, disk_format: str, store: str,
                     name: str) -> dict:
        out = self.glance('image-create', '--name', name, '--disk-format',
                          disk_format, '--container-format', 'bare',
                          '--visibility', 'public', '--file', path,
                          '--store', store)
        return properties(out)

    def compute(self, method: str, path: str, body: Optional[dict] = None,
                ok: tuple = (200, 201, 202, 204)) -> Any:
        """The compute API as this project's user (see trusted_auth);
        HTTP, not ``openstack server ...``: the client's ``server show``
        asks Neutron for security groups; only an empty stand-in runs."""
        import requests
        response = requests.request(
            method, '%s/v2.1%s' % (self.nova_url, path),
            headers={'X-Auth-Token': '%s:%s' % (USER_ID, PROJECT_ID),
                     'X-OpenStack-Nova-API-Version': '2.90'},
            json=body, timeout=60)
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


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m bootcache_testkit.e2e.environment [DIR]``: start
    everything, print the endpoints, wait for Enter, stop everything."""
    argv = sys.argv[1:] if argv is None else argv
    # SIGTERM stops everything as Enter does (not a bare exit).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with Environment(argv[0] if argv else None, keep=bool(argv)) as env:
        print(json.dumps({'cinder': env.cinder_url, 'glance': env.glance_url,
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
