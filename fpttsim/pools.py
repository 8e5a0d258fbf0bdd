"""Process pools that leave multiprocessing's global start method alone.

Lava sets the global start method to ``fork`` when it is imported, and
raises if anything chose the method before. A pool made with the default
context chooses it (``multiprocessing.get_context()`` without a method
fixes the default for the rest of the process), so a sweep or a study run
before Lava in the same process would make Lava unusable. These pools name
their method instead, which changes nothing global; ``fork`` is Linux's
default anyway, and what Lava needs in workers that import it.

Starting a process by ``spawn`` fixes the default too, whatever context it
comes from (the standard library asks for the global method while it
prepares the child), and Dask's local clusters spawn their workers:
:func:`start_method_kept` undoes that.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

# fork is unavailable on Windows and unsafe with macOS system libraries
METHOD = "fork" if sys.platform.startswith("linux") else "spawn"


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes started by :data:`METHOD`."""
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context(METHOD)
    )


def start_method_chosen() -> bool:
    """Whether this process's global start method is fixed yet."""
    return multiprocessing.get_start_method(allow_none=True) is not None


def forget_start_method() -> None:
    """Unfix the global start method, as if it had never been chosen.

    The default context keeps the choice in a private attribute, the one
    place it is held; only call this to undo a choice made behind the
    caller's back (by spawning a process), never one a user made.
    """
    multiprocessing.context._default_context._actual_context = None


@contextmanager
def start_method_kept() -> Iterator[None]:
    """Leave the global start method unchosen if it was before the block."""
    chosen = start_method_chosen()
    try:
        yield
    finally:
        if not chosen:
            forget_start_method()
