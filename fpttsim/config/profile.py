"""The hardware profile schema: the number formats a device computes in.

Not supported
-------------
Only the exact IEEE 754 binary64 reference (``fp64``). Reduced-precision
floats and fixed-point formats come in a later version.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator

_SECTION = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ArithmeticConfig(BaseModel):
    """Number formats of stored values and arithmetic results.

    Parameters
    ----------
    default
        Format of every quantity the profile does not list separately.
    """

    model_config = _SECTION

    default: Literal["fp64"] = "fp64"

    @field_validator("default", mode="before")
    @classmethod
    def _only_fp64(cls, value: Any) -> Any:
        # TODO: remove when reduced-precision formats are added to the schema.
        if isinstance(value, str) and value != "fp64":
            raise ValueError(
                f"only 'fp64' is supported in this version, got {value!r}. "
                "Reduced-precision formats come in a later version."
            )
        return value


class Profile(BaseModel):
    """A hardware profile.

    Parameters
    ----------
    name
        The profile's name.
    description
        Free text: the device and where its numbers come from.
    arithmetic
        Number formats.
    """

    model_config = _SECTION

    name: Annotated[str, Strict(), Field(min_length=1)]
    description: Annotated[str, Strict()] = ""
    arithmetic: ArithmeticConfig = ArithmeticConfig()
