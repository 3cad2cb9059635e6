# Sphinx configuration of the release notes (tox -e releasenotes).

import configparser
import os

extensions = [
    'openstackdocstheme',
    'reno.sphinxext',
]

project = 'cinder-rbd-bootcache Release Notes'
copyright = 'cinder-rbd-bootcache developers'

_setup_cfg = configparser.ConfigParser()
_setup_cfg.read(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                             '..', '..', 'setup.cfg'))
version = release = _setup_cfg['metadata']['version']

openstackdocs_repo_name = 'cinder-rbd-bootcache'
# The version is setup.cfg's (what the package and the driver's VERSION
# say), not one derived from git: the repository has no release tags.
openstackdocs_auto_version = False
openstackdocs_use_storyboard = False
openstackdocs_auto_name = False
openstackdocs_bug_project = 'cinder-rbd-bootcache'
openstackdocs_bug_tag = 'releasenotes'
html_theme = 'openstackdocs'
pygments_style = 'native'

master_doc = 'index'
templates_path = ['_templates']
html_static_path = ['_static']
exclude_patterns = []
# Release notes name no Python objects; nothing to index.
html_use_index = False

# The repository has no release tags (releasenotes/config.yaml says why
# and where each version's notes are).  reno names notes on a tag-less
# history "0.0.0" and gives a page's :unreleased-version-title: only to a
# version that looks unreleased ("<tag>-<commits since>"), so every page
# would say 0.0.0.  Tag-less notes are unreleased in reno's terms: report
# them so, and each page shows the version it documents.
from reno import scanner as _reno_scanner  # noqa: E402

_reno_current_version = _reno_scanner.Scanner._get_current_version


def _current_version(self, branch=None):
    version = _reno_current_version(self, branch)
    return '0.0.0-untagged' if version == '0.0.0' else version


_reno_scanner.Scanner._get_current_version = _current_version
