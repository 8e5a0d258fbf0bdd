"""Exception classes shared by the library and the command line.

The command line turns each into an exit code: :class:`ConfigError` into 2
(bad input), :class:`CheckFailed` into 1 (the simulation ran but a check
failed; :class:`BudgetError`, a scenario that does not fit the device's
memory, is one). :class:`NumericalError` is raised where a computation
cannot go on (a singular Jacobian, say) and also exits with 1.
"""

from __future__ import annotations


class FpttsimError(Exception):
    """Base class of every error fpttsim raises on purpose."""


class ConfigError(FpttsimError, ValueError):
    """Bad input: a scenario, profile or command-line value that is not valid.

    Parameters
    ----------
    message
        What was expected and what was received, with a hint where one helps.
    file
        The file the value came from, or a description such as ``"--set"``.
    line
        1-based line in ``file``, when known.
    key
        Dotted key path, e.g. ``"model.hidden"``, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.key = key
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file if self.line is None else f"{self.file}:{self.line}"
            where += ": "
        key = f"{self.key}: " if self.key else ""
        return f"{where}{key}{self.message}"


class NumericalError(FpttsimError, ArithmeticError):
    """A computation that cannot go on, such as a singular recurrent Jacobian."""


class CheckFailed(FpttsimError):
    """The simulation ran, but a check the user asked for did not pass."""


class BudgetError(CheckFailed):
    """A scenario does not fit the device's memory.

    Raised before the simulation starts; the command line exits with 1.

    Attributes
    ----------
    breakdown
        Bytes by component of what was asked for.
    over
        Bytes over the budget, by memory (``"working"``, ``"replay"``).
    """

    def __init__(self, message: str, breakdown: dict, over: dict) -> None:
        super().__init__(message)
        self.breakdown = breakdown
        self.over = over
