"""The CPU seconds of a create: this process, its children, the OSDs
(bootcache_testkit.harness.cpu_cost).  Real processes burn real CPU; the
assertions are on CPU seconds the child itself counted, never on time."""

import subprocess
import sys
import unittest

from bootcache_testkit.harness import cpu_cost

#: A child that burns 0.3 CPU seconds each time it reads a line, then
#: says so; it ends when its stdin closes.
BURNER = '''
import sys, time
for _line in sys.stdin:
    until = time.process_time() + 0.3
    while time.process_time() < until:
        pass
    print('burnt', flush=True)
'''


class FakeSandbox:
    """daemon_pids of a sandbox whose one OSD is ``pid``; its monitor is
    this process, which the meter must leave out."""

    def __init__(self, pid):
        import os
        self.pids = {'mon.a': os.getpid(), 'osd.0': pid}

    def daemon_pids(self):
        return dict(self.pids)


class MeterTest(unittest.TestCase):

    def burner(self):
        child = subprocess.Popen([sys.executable, '-c', BURNER],
                                 stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        self.addCleanup(child.wait)
        self.addCleanup(child.stdin.close)
        return child

    @staticmethod
    def burn(child):
        child.stdin.write('go\n')
        child.stdin.flush()
        assert child.stdout.readline() == 'burnt\n'

    def test_a_child_waited_for_counts_in_children(self):
        with cpu_cost.Meter() as meter:
            child = self.burner()
            self.burn(child)
            child.stdin.close()
            child.wait()
        self.assertGreaterEqual(meter.spent.children, 0.29)
        self.assertEqual(0.0, meter.spent.osds)

    def test_an_osd_counts_what_it_burnt_during_the_create(self):
        osd = self.burner()
        self.burn(osd)  # before: not the create's
        with cpu_cost.Meter(FakeSandbox(osd.pid)) as meter:
            self.burn(osd)
        # /proc counts in clock ticks.
        self.assertGreaterEqual(meter.spent.osds, 0.28)
        self.assertLess(meter.spent.osds, 0.6)
        # Still running, so not a child that was waited for.
        self.assertEqual(0.0, meter.spent.children)
        self.assertAlmostEqual(
            meter.spent.total, meter.spent.process + meter.spent.osds)

    def test_an_osd_gone_during_the_create_is_left_out(self):
        osd = self.burner()
        sandbox = FakeSandbox(osd.pid)
        with cpu_cost.Meter(sandbox) as meter:
            sandbox.pids['osd.0'] = 2 ** 22 + 1  # above pid_max: no such
        self.assertEqual(0.0, meter.spent.osds)
