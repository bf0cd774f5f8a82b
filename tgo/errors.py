"""The project's error base class: every error tgo-sweep raises on purpose derives from it.

Subclasses also derive from the built-in a caller expects (``ValueError`` for bad input,
``RuntimeError`` for an unavailable service), so ``except ValueError`` keeps working. The
command line prints ``error: <message>`` and exits with :attr:`TgoError.exit_code` (2: bad
input; 1: a service could not be reached), never with a traceback.

Example:
    >>> class BadThing(TgoError, ValueError):
    ...     pass
    >>> isinstance(BadThing("x"), ValueError), BadThing.exit_code
    (True, 2)
"""

from __future__ import annotations

__all__ = ["TgoError"]


class TgoError(Exception):
    """Base of tgo-sweep's errors; ``exit_code`` is what the ``tgo`` command exits with."""

    exit_code: int = 2
