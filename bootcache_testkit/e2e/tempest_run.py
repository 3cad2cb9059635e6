"""Tempest against the end-to-end environment.

``python -m bootcache_testkit.e2e.tempest_run [--subset ci|full]`` starts
the environment (Keystone, Glance, Cinder with our driver as its only
backend, Nova with the fake virt driver), uploads the image Tempest boots
and makes volumes from (``compute.image_ref``) and a flavor, writes
``tempest.conf`` in a Tempest workspace in a temporary directory, runs
``tempest run`` on Tempest's volume API tests and cinder-tempest-plugin's
with the exclusions of ``tests/tempest/exclude.txt`` (each says why), and
stops everything afterwards, also after a failure.  The subset ``ci`` is
what CI runs: the tests that create volumes from images and clone volumes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Optional

from bootcache_testkit.e2e import environment
from bootcache_testkit.e2e import services
from bootcache_testkit.harness import disk_images

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
EXCLUDE = os.path.join(ROOT, 'tests', 'tempest', 'exclude.txt')
#: Every test of the whole set: Tempest's volume API and the plugin's.
FULL = r'^(tempest\.api\.volume\.|cinder_tempest_plugin\.api\.volume\.)'
#: CI's subset: volumes created from images and cloned from volumes.
CI = ('^(tempest\\.api\\.volume\\.test_volumes_clone'
      '|tempest\\.api\\.volume\\.test_volumes_get\\.VolumesGetTest\\.'
      'test_volume_create_get_update_delete_from_image'
      '|tempest\\.api\\.volume\\.test_image_metadata'
      '|cinder_tempest_plugin\\.api\\.volume\\.test_create_from_image'
      '|cinder_tempest_plugin\\.api\\.volume\\.'
      'test_multiple_volume_from_resource)')
MiB = 1 << 20


def tempest_conf(env: environment.Environment, image_id: str,
                 flavor_id: str, log_dir: str) -> str:
    assert env.identity is not None
    admin = env.identity.accounts['admin']
    backends = ','.join(b.name for b in env.backends)
    return f'''[DEFAULT]
log_dir = {log_dir}
log_file = tempest.log

[auth]
admin_username = {admin.username}
admin_password = {admin.password}
admin_project_name = {admin.project}
admin_domain_name = Default
use_dynamic_credentials = true
create_isolated_networks = false
tempest_roles = member

[identity]
uri_v3 = {env.identity.url}/v3
auth_version = v3
region = RegionOne
v3_endpoint_type = public

[identity-feature-enabled]
api_v2 = false

[service_available]
cinder = true
glance = true
nova = true
neutron = false
swift = false
heat = false
horizon = false
barbican = false

[compute]
image_ref = {image_id}
image_ref_alt = {image_id}
flavor_ref = {flavor_id}
flavor_ref_alt = {flavor_id}
build_timeout = 300

[compute-feature-enabled]
attach_encrypted_volume = false
console_output = false
vnc_console = false

[validation]
run_validation = false

[image]
catalog_type = image
disk_formats = raw,qcow2

[volume]
catalog_type = block-storage
backend_names = {backends}
storage_protocol = ceph
vendor_name = Open Source
volume_size = 1
build_timeout = 300
min_microversion = 3.0
max_microversion = {environment.CINDER_API_VERSION}

[volume-feature-enabled]
multi_backend = {'true' if len(env.backends) > 1 else 'false'}
backup = true
snapshot = true
clone = true
manage_snapshot = false
manage_volume = false
extend_attached_volume = false
extend_volume_with_snapshot = true
volume_revert = true
# The image dependency tests delete a Glance image with volumes made from
# it; an rbd-store image whose volumes are copy-on-write clones of it
# cannot be deleted (Glance answers 409, "in use through the backend
# store"), which is the RBD driver's design, not a failure.
enable_volume_image_dep_tests = false
'''


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--subset', choices=('ci', 'full'), default='full')
    parser.add_argument('--concurrency', type=int, default=2)
    parser.add_argument('--workdir', help='keep everything here')
    parser.add_argument('--regex', help='instead of the subset\'s')
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    directory = args.workdir or tempfile.mkdtemp(prefix='bootcache-tempest-')
    try:
        return _run(args, directory)
    finally:
        # The workspace holds tempest.conf with the admin's password.
        if not args.workdir:
            shutil.rmtree(directory, ignore_errors=True)


def _run(args: argparse.Namespace, directory: str) -> int:
    started = time.monotonic()
    with environment.Environment(os.path.join(directory, 'env'),
                                 keep=bool(args.workdir)) as env:
        up = time.monotonic() - started
        image = disk_images.make_raw(os.path.join(directory, 'image.raw'),
                                     64 * MiB, 16 * MiB)
        image_id = env.upload_image(image, 'raw',
                                    services.GLANCE_DEFAULT_STORE,
                                    'tempest-image')['id']
        env.compute('POST', '/flavors', {'flavor': {
            'name': 'tempest', 'id': 'tempest', 'ram': 64, 'vcpus': 1,
            'disk': 1}}, user='admin')
        workspace = os.path.join(directory, 'tempest')
        subprocess.run([services._bin('tempest'), 'init',
                        '--workspace-path',
                        os.path.join(directory, 'workspace.yaml'),
                        workspace], check=True)
        conf = os.path.join(workspace, 'etc', 'tempest.conf')
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as f:
            f.write(tempest_conf(env, image_id, 'tempest',
                                 os.path.join(workspace, 'logs')))
        regex = args.regex or (CI if args.subset == 'ci' else FULL)
        print('environment up in %.0f s; running tempest (%s)' % (
            up, args.subset), flush=True)
        run_started = time.monotonic()
        done = subprocess.run(
            [services._bin('tempest'), 'run', '--config-file', conf,
             '--regex', regex, '--exclude-list', EXCLUDE,
             '--concurrency', str(args.concurrency)], cwd=workspace)
        print('tempest run: exit %d in %.0f s (environment up in %.0f s)'
              % (done.returncode, time.monotonic() - run_started, up),
              flush=True)
        return done.returncode


if __name__ == '__main__':
    sys.exit(main())
