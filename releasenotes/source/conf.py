# Sphinx configuration of the release notes (tox -e releasenotes).

extensions = [
    'openstackdocstheme',
    'reno.sphinxext',
]

project = 'cinder-rbd-bootcache Release Notes'
copyright = 'cinder-rbd-bootcache developers'

openstackdocs_repo_name = 'cinder-rbd-bootcache'
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
