"""Sphinx configuration of the binaccel docs: MyST markdown pages and the autodoc API reference.

Built by ``make docs``: ``binaccel records --markdown build/docs/results.md`` first (the results
page includes it), then ``sphinx-build -W --keep-going -b html docs build/docs/html``.
"""

import binaccel

project = "binaccel"
release = version = binaccel.__version__
author = "binaccel contributors"
copyright = "binaccel contributors, Apache-2.0"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = []
templates_path = ["_templates"]

# Cross-page links such as [the frame format](link.md#frame-format) resolve to heading anchors.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# The API reference: autosummary writes one page per module into api/generated/ (gitignored) on
# every build, so new modules and subpackages appear without editing the docs.
autosummary_generate = True
autosummary_imported_members = False
# Every object is documented once, in the module that defines it: "ignore-module-all" skips the
# names a module re-exports through __all__ (a package's __init__, binaccel.hw.params re-exporting
# the parameter classes of binaccel.sw.hwif), which would otherwise be duplicate descriptions.
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_preserve_defaults = False

html_theme = "alabaster"
html_title = "binaccel"
html_static_path = []

# Docstrings with "Parameters" sections are numpy style; no module uses Google style, and reading
# prose lines such as "Returns the ..." as Google sections would garble them.
napoleon_google_docstring = False
napoleon_numpy_docstring = True

# Some classes appear under two modules (binaccel.sw.hwif defines the interface types that
# binaccel.hw.params and binaccel.sw.link re-export), which makes short cross-references ambiguous.
suppress_warnings = ["ref.python"]


class _InjectorSignatureFilter:
    """Drops autodoc's "error while formatting signature" for Brevitas injector classes (the
    quantizers of binaccel.sw.quant): they are classes used as configuration, resolving every
    attribute through their dependencies, and have no call signature to show. Every other warning
    stays an error."""

    def filter(self, record):
        msg = record.getMessage()
        return not (msg.startswith("error while formatting signature for binaccel.")
                    and "can not resolve attribute" in msg)


_current_module = {"name": None}


def _note_module(app, what, name, obj, options, lines):
    """Remembers the module being documented (its docstring comes before its members)."""
    if what == "module":
        _current_module["name"] = name


def _skip_imported(app, what, name, obj, skip, options):
    """Classes a module imports from elsewhere are skipped. Brevitas' injector classes answer every
    attribute lookup through their dependency resolver, so autodoc cannot tell where they are
    defined; their ``__module__`` is read from the class dictionary here."""
    if what != "module" or not isinstance(obj, type):
        return None
    try:
        defined_in = type.__getattribute__(obj, "__module__")
    except Exception:
        return None
    module = _current_module["name"]
    if module is None:
        return None
    if defined_in != module:
        return True
    return None


def setup(app):
    app.connect("autodoc-process-docstring", _note_module)
    app.connect("autodoc-skip-member", _skip_imported)
    from sphinx.util import logging as sphinx_logging

    sphinx_logging.getLogger("sphinx.ext.autodoc").logger.addFilter(_InjectorSignatureFilter())
