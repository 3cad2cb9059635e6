"""Pure parts of the operator command: choosing the backend, the doctor's
verdicts, the progress display."""

import configparser
import importlib
import inspect
import io
import pathlib
import types
import unittest

import ddt

from cinder_rbd_bootcache.bootcache import cache
from cinder_rbd_bootcache.bootcache import catalog
from cinder_rbd_bootcache.bootcache import eviction
from cinder_rbd_bootcache.bootcache import index as entry_index
from cinder_rbd_bootcache.cli import app
from cinder_rbd_bootcache.cli import backend
from cinder_rbd_bootcache.cli import doctor
from cinder_rbd_bootcache.cli import entries
from cinder_rbd_bootcache.cli import progress_bar


def registered_commands() -> dict:
    """setup.cfg's subcommands: name -> 'module:Class'."""
    config = configparser.ConfigParser()
    config.read(pathlib.Path(__file__).resolve().parents[3] / 'setup.cfg')
    lines = config['entry_points'][app.COMMAND_NAMESPACE]
    return {name.strip(): target.strip() for name, target in (
        line.split('=') for line in lines.strip().splitlines())}


def command_class(target: str) -> type:
    module, _, name = target.partition(':')
    return getattr(importlib.import_module(module), name)


@ddt.ddt
class ChooseBackendTest(unittest.TestCase):

    @ddt.unpack
    @ddt.data(
        (['ceph'], None, 'ceph'),
        (['ceph', 'fast'], 'fast', 'fast'),
        # No enabled_backends: the section named on the command line.
        ([], 'ceph', 'ceph'),
    )
    def test_chosen(self, enabled, requested, chosen):
        conf = types.SimpleNamespace(enabled_backends=enabled)
        self.assertEqual(chosen, backend.choose_backend(conf, requested))

    @ddt.unpack
    @ddt.data(
        (['ceph', 'fast'], None, 'pass --backend NAME'),
        (['ceph'], 'other', 'not in enabled_backends'),
        ([], None, 'no enabled_backends'),
    )
    def test_refused(self, enabled, requested, words):
        conf = types.SimpleNamespace(enabled_backends=enabled)
        with self.assertRaisesRegex(backend.ConfigError, words):
            backend.choose_backend(conf, requested)


@ddt.ddt
class CloneFormatTest(unittest.TestCase):

    @ddt.unpack
    @ddt.data(
        ('luminous', 'auto', doctor.WARNING),
        ('mimic', 'auto', doctor.OK),
        ('reef', 'auto', doctor.OK),
        ('luminous', '2', doctor.OK),
        ('reef', '1', doctor.WARNING),
        ('unknown (EACCES)', 'auto', doctor.WARNING),
    )
    def test_verdict(self, min_compat, clone_format, result):
        self.assertEqual(result, doctor.clone_format_row(min_compat,
                                                         clone_format)[1])


class FakeCatalog:
    """What ``evict`` asks of a catalog: ``remove``, which answers as told
    (the real one is tests/functional's)."""

    def __init__(self, answer):
        self.answer = answer
        self.waits = []

    def remove(self, info, reason, wait=0):
        self.waits.append(wait)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@ddt.ddt
class EvictRowTest(unittest.TestCase):

    @ddt.unpack
    @ddt.data(
        (catalog.REMOVED, 0, 'removed', 'evicted by an operator'),
        (catalog.TRASHED, 2, 'moved to trash', 'clone format 2'),
        (catalog.KEPT, 3, 'kept', 'clone format 1 need it: kept, never '
         'cloned again, removed by the first maintenance'),
        (catalog.PopulationUnderWay('img'), 0, 'not evicted',
         'still being populated after 60 s'),
    )
    def test_row(self, answer, children, result, words):
        found = FakeCatalog(answer)
        info = types.SimpleNamespace(image_id='img', children=children)
        row = entries.Evict._remove(found, info, 'evicted by an operator')
        self.assertEqual(('img', result), row[:2])
        self.assertIn(words, row[2])
        # An image being populated is waited for, not skipped at once.
        self.assertEqual([entries.POPULATION_WAIT], found.waits)


class FakeBootCache:
    """What ``evict --policy`` asks of the boot cache (the real
    ``maintain`` is tests/functional's)."""

    def __init__(self, limits, done):
        self.limits = limits
        self.done = done

    def maintain(self):
        return self.done


@ddt.ddt
class EvictByPolicyTest(unittest.TestCase):

    def _run(self, limits, done):
        stderr = io.StringIO()
        fake_backend = types.SimpleNamespace(
            name='ceph', boot_cache=lambda: FakeBootCache(limits, done))
        app = types.SimpleNamespace(stderr=stderr)
        rows = entries.Evict(app, None)._by_policy(fake_backend)
        return rows, stderr.getvalue()

    def test_no_limit_set_is_said_with_the_options(self):
        rows, err = self._run(eviction.Limits(), cache.Maintenance({}))
        self.assertEqual([], rows)
        self.assertIn('No limit is set: bootcache_max_size_gb, '
                      'bootcache_max_entries and bootcache_max_idle_hours '
                      'are 0 in [ceph] of cinder.conf', err)

    def test_limits_that_hold_are_said(self):
        rows, err = self._run(eviction.Limits(max_entries=3),
                              cache.Maintenance({}))
        self.assertEqual([], rows)
        self.assertEqual('Every limit holds: no entry was evicted.\n', err)

    def test_rows_are_what_this_maintenance_did(self):
        done = cache.Maintenance({}, evicted=[
            cache.Evicted('b', 'over 1 entry', catalog.KEPT),
            cache.Evicted('a', 'over 1 entry', catalog.REMOVED),
            cache.Evicted('c', 'over 1 entry', cache.ALREADY_GONE)],
            swept=['d'])
        rows, err = self._run(eviction.Limits(max_entries=1), done)
        self.assertEqual('', err)
        self.assertEqual(
            [('a', 'removed', 'over 1 entry'), ('b', 'kept'),
             ('c', 'already gone'), ('d', 'removed')],
            [row if row[0] == 'a' else row[:2] for row in rows])
        self.assertIn('its last clone is gone', rows[-1][2])


class ListRowsTest(unittest.TestCase):

    def test_short_list_has_no_clone_column_and_shows_kept_entries(self):
        contents = entry_index.Contents(
            ready={'a': entry_index.ReadyRecord('a', bytes_used=5,
                                                size=7)},
            building=['bootcache.b.building.x'], kept={'rbd1': 'c'},
            trash={'t1': 'd'}, complete=True)
        found = types.SimpleNamespace(
            indexed=lambda: contents,
            counters=types.SimpleNamespace(all=lambda: {'hits.a': 2}))
        rows = [dict(zip(entries.SHORT_COLUMNS, row))
                for row in entries.indexed_rows(found)]
        self.assertNotIn('Clones', entries.SHORT_COLUMNS)
        self.assertEqual(
            [('a', 'ready', 2), ('b', 'building', None),
             ('c', 'kept', None), ('d', 'in trash', None)],
            [(r['Image ID'], r['State'], r['Hits']) for r in rows])
        self.assertTrue(all(len(row) == len(entries.SHORT_COLUMNS)
                            for row in entries.indexed_rows(found)))


@ddt.ddt
class CommandHelpTest(unittest.TestCase):
    """cliff's command list shows the first line of each command's
    docstring: it must be a whole sentence."""

    @ddt.data(*sorted(registered_commands().items()))
    @ddt.unpack
    def test_first_line_is_a_sentence(self, name, target):
        lines = inspect.getdoc(command_class(target)).splitlines()
        self.assertTrue(lines[0].endswith('.'), (name, lines[0]))
        self.assertTrue(len(lines) == 1 or not lines[1].strip(),
                        (name, lines[:2]))


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


class ProgressBarTest(unittest.TestCase):

    def _tracker(self, done, total=100 << 20, rate=10 << 20):
        return types.SimpleNamespace(done=done, total=total, rate=rate)

    def test_render(self):
        line = progress_bar.render(50 << 20, 100 << 20, 10 << 20, 'img')
        self.assertEqual('img [' + '#' * 15 + '-' * 15 + ']  50% 50.0 MiB '
                         'of 100.0 MiB, 10.0 MiB/s, ETA 5s', line)
        self.assertEqual('img 5.0 MiB, 1.0 MiB/s',
                         progress_bar.render(5 << 20, None, 1 << 20, 'img'))

    def test_terminal_redraws_one_line(self):
        stream, now = FakeTTY(), [0.0]
        bar = progress_bar.ProgressBar('img', stream, clock=lambda: now[0])
        for step in range(1, 11):
            now[0] = step * 0.2
            bar(self._tracker(step * (10 << 20)))
        bar.close()
        out = stream.getvalue()
        self.assertEqual(10, out.count('\r'))
        self.assertEqual(1, out.count('\n'))
        self.assertIn('100%', out)

    def test_not_a_terminal_prints_lines_at_an_interval(self):
        stream, now = io.StringIO(), [0.0]
        bar = progress_bar.ProgressBar('img', stream, plain_interval=5,
                                       clock=lambda: now[0])
        for second in range(12):
            now[0] = second
            bar(self._tracker(second << 20))
        bar(self._tracker(100 << 20))  # the end is always shown
        bar.close()
        lines = stream.getvalue().splitlines()
        self.assertNotIn('\r', stream.getvalue())
        self.assertEqual(['0%', '5%', '10%', '100%'],
                         [line.split()[2] for line in lines])


class CommandsTest(unittest.TestCase):

    def test_setup_cfg_registers_every_command_of_the_cli(self):
        """The command and the docs' reference load the subcommands from
        the entry points setup.cfg declares; a command class missing
        there would be unreachable."""
        import pkgutil

        from cliff import command

        from cinder_rbd_bootcache import cli

        registered = set(registered_commands().values())
        defined = set()
        for info in pkgutil.iter_modules(cli.__path__):
            if info.name == '__main__':  # runs the command when imported
                continue
            module = importlib.import_module('%s.%s' % (cli.__name__,
                                                        info.name))
            for _, value in inspect.getmembers(module, inspect.isclass):
                if (issubclass(value, command.Command) and
                        value.__module__ == module.__name__ and
                        not inspect.isabstract(value)):
                    defined.add('%s:%s' % (module.__name__,
                                           value.__qualname__))
        self.assertEqual(defined, registered)
