# Sphinx configuration of the documentation (tox -e docs).
#
# The option reference and the sample file are generated from
# cinder_rbd_bootcache/options.py by oslo.config's extensions, the command
# reference from the cliff commands registered in setup.cfg; nothing of
# them is written by hand.

import configparser
import os
import sys

# The command reference imports the cliff commands, which import Cinder:
# a command-line program's setting (no eventlet patching) before that.
os.environ.setdefault('OS_CINDER_DISABLE_EVENTLET_PATCHING', '1')
sys.path.insert(0, os.path.abspath(os.path.join('..', '..')))

extensions = [
    'openstackdocstheme',
    'oslo_config.sphinxext',
    'oslo_config.sphinxconfiggen',
    'cliff.sphinxext',
    'sphinx.ext.autodoc',
]

project = 'cinder-rbd-bootcache'
copyright = 'cinder-rbd-bootcache developers'

_setup_cfg = configparser.ConfigParser()
_setup_cfg.read(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                             '..', '..', 'setup.cfg'))
version = release = _setup_cfg['metadata']['version']

# openstackdocstheme
openstackdocs_repo_name = 'cinder-rbd-bootcache'
# The version is setup.cfg's (what the package and the driver's VERSION
# say), not one derived from git: the repository has no release tags.
openstackdocs_auto_version = False
openstackdocs_use_storyboard = False
openstackdocs_auto_name = False
openstackdocs_bug_project = 'cinder-rbd-bootcache'
openstackdocs_bug_tag = 'docs'
html_theme = 'openstackdocs'
html_theme_options = {
    'display_toc': True,
}
pygments_style = 'native'

# oslo_config.sphinxconfiggen: the sample file, from the generator's own
# configuration (the file tox -e genconfig writes to etc/).
config_generator_config_file = [
    ('../../etc/oslo-config-generator/cinder-rbd-bootcache.conf',
     '_static/cinder-rbd-bootcache'),
]

# cliff.sphinxext: every subcommand, as "cinder-rbd-bootcache NAME".
autoprogram_cliff_application = 'cinder-rbd-bootcache'

autodoc_mock_imports = []
master_doc = 'index'
exclude_patterns = ['_build']
html_static_path = ['_static']
