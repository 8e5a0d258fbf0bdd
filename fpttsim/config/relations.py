"""The error of a check that involves several fields of a configuration.

Pydantic reports a model-level check at the model's location; the ``key`` in
the error's context names the field the message is about, so that the loader
points at that field's line.
"""

from __future__ import annotations

from pydantic_core import PydanticCustomError

# the error type the loader recognises
RELATION_ERROR = "fpttsim_relation"


def relation_error(key: str, message: str) -> PydanticCustomError:
    """Build the error of a check that involves several fields.

    Parameters
    ----------
    key
        Dotted path of the field to blame, relative to the model that checks.
    message
        Full-sentence message naming the constraint and the values received.

    Returns
    -------
    PydanticCustomError
        An error of type :data:`RELATION_ERROR` whose context holds ``key``.
    """
    # The message is passed as a template: braces would be read as fields.
    template = message.replace("{", "(").replace("}", ")")
    return PydanticCustomError(RELATION_ERROR, template, {"key": key})
