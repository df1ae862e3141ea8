"""Sphinx configuration for the skksae documentation."""

import os
import sys
import warnings

sys.path.insert(0, os.path.abspath(".."))

import skksae  # noqa: E402

project = "skksae"
author = "skksae developers"
copyright = "2026, skksae developers"
release = skksae.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    # MathJax bundled into the site, so that formulas render without a network
    "sphinx-mathjax-offline",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

autosummary_generate = True
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# Offline machines cannot fetch other projects' inventories; cross references to
# scikit-learn then render as plain text.
intersphinx_mapping = {}

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": "/plot_",
    # a script that starts a Dask cluster: documented on the "Scaling out" page
    "ignore_pattern": r"__init__\.py|scaling_out_dask\.py",
    "download_all_examples": False,
    "remove_config_comments": True,
}

html_theme = "pydata_sphinx_theme"
html_title = "skksae"
html_theme_options = {"navigation_with_keys": False}
templates_path = ["_templates"]
exclude_patterns = ["_build", "_tables"]
nitpicky = False

warnings.filterwarnings("ignore", category=UserWarning,
                        message="Matplotlib is currently using agg")
