"""One end-to-end environment (real Glance, RabbitMQ, MariaDB, Cinder
api/scheduler/volume with our driver, the Ceph sandbox) for the run; it is
always torn down.  Each scenario records the wall time of its
``cinder create`` calls; they are printed at the end and written to
e2e-results.json."""

import json
import os

import pytest

from bootcache_testkit.e2e import environment

RESULTS: list = []


@pytest.fixture(scope='session')
def env(tmp_path_factory):
    keep = os.environ.get('BOOTCACHE_E2E_KEEP')
    directory = str(tmp_path_factory.mktemp('e2e'))
    with environment.Environment(directory, keep=bool(keep)) as running:
        yield running


@pytest.fixture
def record():
    def add(scenario, **fields):
        RESULTS.append(dict(scenario=scenario, **fields))
    return add


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    terminalreporter.section('cinder create wall times')
    for row in RESULTS:
        terminalreporter.write_line(json.dumps(row))
    with open('e2e-results.json', 'w') as f:
        json.dump(RESULTS, f, indent=2)
