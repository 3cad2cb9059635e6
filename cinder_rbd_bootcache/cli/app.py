"""The cliff application: global options, commands, one-line errors."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any
from typing import Optional
import warnings

from cliff import app
from cliff import commandmanager

from cinder_rbd_bootcache.upstream import compat


def _use_native_threads() -> None:
    # A command-line tool has no eventlet hub: Cinder must not patch one
    # in, nor warn on every run that eventlet is deprecated.  Before
    # anything imports Cinder.
    os.environ.setdefault('OS_CINDER_DISABLE_EVENTLET_PATCHING', '1')
    warnings.filterwarnings('ignore', message=r'\s*Eventlet is deprecated')
    compat.select_threading_service_backend()


_use_native_threads()

from cinder_rbd_bootcache.cli import backend as backend_mod  # noqa: E402,I202

#: The entry-point group of the subcommands (setup.cfg).
COMMAND_NAMESPACE = 'cinder_rbd_bootcache.cli'

DESCRIPTION = ('See and steer the boot cache of a cinder-rbd-bootcache '
               'backend, from the cinder.conf that cinder-volume uses.')


class BootCacheApp(app.App):

    # The console shows warnings and errors; -v adds the driver's INFO
    # lines (Ceph connections, imports), -vv its DEBUG.
    DEFAULT_VERBOSE_LEVEL = 0
    # cliff names the program after argv[0]; also under ``python -m``.
    NAME = 'cinder-rbd-bootcache'

    def __init__(self) -> None:
        from cinder_rbd_bootcache import __version__
        # The subcommands are the package's entry points of this
        # namespace (setup.cfg), as for ``openstack``; the docs' command
        # reference reads the same list.
        manager = commandmanager.CommandManager(
            COMMAND_NAMESPACE, convert_underscores=True)
        super().__init__(description=DESCRIPTION, version=__version__,
                         command_manager=manager, deferred_help=True)
        self._backend: Optional[backend_mod.Backend] = None

    def build_option_parser(self, description: str, version: str,
                            argparse_kwargs: Optional[dict] = None) -> Any:
        argparse_kwargs = dict(argparse_kwargs or {},
                               prog='cinder-rbd-bootcache')
        parser = super().build_option_parser(description, version,
                                             argparse_kwargs)
        # cliff's --version says cliff.App.NAME, not ours.
        for action in parser._actions:
            if '--version' in action.option_strings:
                action.version = '%s %s' % (self.NAME, version)
        parser.add_argument(
            '--config-file', action='append', metavar='PATH',
            help='cinder.conf to read (repeatable, as for cinder-volume; '
                 'default %s)' % backend_mod.DEFAULT_CONFIG)
        parser.add_argument(
            '--backend', metavar='NAME',
            help='backend section of cinder.conf; required when '
                 'enabled_backends lists several')
        return parser

    def configure_logging(self) -> None:
        # A handler some import put on the root logger would print every
        # message twice; cliff's own are the ones wanted.
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        super().configure_logging()
        # stevedore lists every formatter it loads at DEBUG; cliff's root
        # logger passes DEBUG to --log-file, and with -vv to the console.
        logging.getLogger('stevedore').setLevel(logging.WARNING)

    def clean_up(self, cmd: Any, result: int,
                 err: Optional[BaseException]) -> None:
        """Shut down the librados clients the command's operations
        shared (``rados_clients``) before the program exits."""
        from cinder_rbd_bootcache.ceph import clients as rados_clients
        rados_clients.CLIENTS.close_all()

    @property
    def backend(self) -> backend_mod.Backend:
        """The backend of the command line, loaded on first use."""
        if self._backend is None:
            self._backend = backend_mod.Backend(
                self.options.config_file or [backend_mod.DEFAULT_CONFIG],
                self.options.backend)
        return self._backend


def main(argv: Optional[list[str]] = None) -> int:
    return BootCacheApp().run(sys.argv[1:] if argv is None else argv)
