"""Optional Lava support: finding lava-nc, and saying how to get it.

lava-nc is an optional extra, installed with ``pip install 'fpttsim[lava]'``.
The core of fpttsim (configuration, simulation, training, gradient checks)
never imports it; only the Lava features do, through :func:`require_lava`,
which turns a missing or broken installation into an error that says how to
install it. Importing this module does not import lava.
"""

from __future__ import annotations

import importlib
import platform
import types
from importlib import metadata

from fpttsim.errors import FpttsimError

__all__ = [
    "LAVA_DISTRIBUTION",
    "LAVA_INSTALL_HINT",
    "LavaNotInstalled",
    "lava_version",
    "require_lava",
]

LAVA_DISTRIBUTION = "lava-nc"
"""The name lava is published under on the package index."""

LAVA_INSTALL_HINT = "pip install 'fpttsim[lava]'"
"""The command that installs fpttsim with its Lava extra."""


class LavaNotInstalled(FpttsimError, ImportError):
    """A Lava feature was used, but the ``lava`` package cannot be imported.

    It is an :class:`ImportError` too, so that code guarding an optional
    import with ``except ImportError`` keeps working.
    """


def lava_version() -> str | None:
    """Return the installed version of lava-nc, without importing it.

    Returns
    -------
    str or None
        The version from the installed package metadata, e.g. ``"0.10.0"``,
        or None when lava-nc is not installed.
    """
    try:
        return metadata.version(LAVA_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None


def _interpreter() -> str:
    """Describe the running Python and numpy, the two versions lava-nc pins."""
    try:
        numpy = metadata.version("numpy")
    except metadata.PackageNotFoundError:
        numpy = "not installed"
    return f"Python {platform.python_version()} with numpy {numpy}"


def require_lava(feature: str = "This feature") -> types.ModuleType:
    """Import and return the ``lava`` package, or say how to install it.

    Parameters
    ----------
    feature
        What needs Lava, as the subject of the error message, e.g.
        ``"fpttsim export-lava"``.

    Returns
    -------
    types.ModuleType
        The ``lava`` package.

    Raises
    ------
    LavaNotInstalled
        When ``lava`` cannot be imported. The message names the feature, the
        versions lava-nc 0.10 needs (Python 3.10, numpy < 2), the ones running,
        and the install command; the original ImportError is its cause.
    """
    try:
        return importlib.import_module("lava")
    except ImportError as exc:
        installed = lava_version()
        state = (
            "is not installed"
            if installed is None
            else f"{installed} is installed but cannot be imported ({exc})"
        )
        raise LavaNotInstalled(
            f"{feature} needs the optional package lava-nc, which {state}. "
            f"lava-nc 0.10 needs Python 3.10 and numpy < 2; this is "
            f"{_interpreter()}. Install it with: {LAVA_INSTALL_HINT}"
        ) from exc
