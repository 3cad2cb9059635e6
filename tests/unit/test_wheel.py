"""The wheel holds the driver package and its command, nothing else.

A cinder-volume host must not carry the test kit (``bootcache_testkit``:
the Ceph sandbox, the in-process Cinder, the end-to-end services with
their ``USER:PROJECT``-is-admin paste filter, demo, bench), nor the tests.
The wheel is built the way an operator builds it (``pip wheel --no-deps``)
from a copy of the source tree: a build in the tree itself would reuse
whatever an earlier build left in ``build/``, and setuptools copies stale
files from there into the wheel.
"""

import configparser
import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = 'cinder_rbd_bootcache'
# Not sources: venvs, caches, earlier builds.
SKIP = shutil.ignore_patterns('.git', '.tox', '.venv', 'build', 'dist',
                              '*.egg-info', '__pycache__', '*.pyc')


def _version() -> str:
    config = configparser.ConfigParser()
    config.read(ROOT / 'setup.cfg')
    return config['metadata']['version']


@pytest.fixture(scope='module')
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    source = tmp_path_factory.mktemp('source') / 'tree'
    out = tmp_path_factory.mktemp('wheel')
    shutil.copytree(ROOT, source, ignore=SKIP)
    # The copy has no git: pbr takes the version from PBR_VERSION.
    env = dict(os.environ, PBR_VERSION=_version())
    env.pop('PYTHONPATH', None)
    done = subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', '--no-deps',
         '--no-build-isolation', '--no-cache-dir', '--disable-pip-version-'
         'check', '-q', '-w', str(out), str(source)],
        capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    [built] = out.glob('*.whl')
    with zipfile.ZipFile(built) as archive:
        yield archive


def test_wheel_holds_only_the_driver_package(wheel: zipfile.ZipFile) -> None:
    dist_info = '%s-%s.dist-info/' % (PACKAGE, _version())
    names = wheel.namelist()
    others = [n for n in names
              if not n.startswith((PACKAGE + '/', dist_info))]
    assert others == []
    # Nor inside the package: what the test kit is made of must never
    # come back into it.
    kit = {'sandbox', 'harness', 'e2e', 'demo.py', 'bench.py',
           'keystone_wsgi.py', 'tests'}
    assert [n for n in names if kit & set(n.split('/'))] == []


def test_wheel_has_the_driver_and_its_command(
        wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    # Every module of the package, in every concept folder.
    sources = {path.relative_to(ROOT).as_posix()
               for path in (ROOT / PACKAGE).rglob('*.py')}
    assert '%s/driver.py' % PACKAGE in sources
    assert '%s/ceph/api.py' % PACKAGE in sources
    assert sources - names == set()
    dist_info = '%s-%s.dist-info/' % (PACKAGE, _version())
    entry_points = wheel.read(dist_info + 'entry_points.txt').decode()
    assert ('cinder-rbd-bootcache = cinder_rbd_bootcache.cli.app:main'
            in entry_points)
