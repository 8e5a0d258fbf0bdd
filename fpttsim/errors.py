"""Exception classes shared by the library and the command line.

The command line turns each into an exit code: :class:`ConfigError` into 2
(bad input), :class:`CheckFailed` into 1 (the simulation ran but a check
failed; :class:`BudgetError`, a scenario that does not fit the device's
memory, is one). :class:`NumericalError` is raised where a computation
cannot go on (a singular Jacobian, say) and also exits with 1.
"""

from __future__ import annotations


class FpttsimError(Exception):
    """Base class of every error fpttsim raises on purpose.

    Examples
    --------
    >>> import fpttsim
    >>> try:
    ...     fpttsim.load_scenario("no-such-scenario")
    ... except fpttsim.FpttsimError as error:
    ...     print(type(error).__name__)
    ConfigError
    """


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

    Examples
    --------
    >>> import fpttsim
    >>> try:
    ...     fpttsim.load_scenario("quickstart", {"model.hidden": 0})
    ... except fpttsim.ConfigError as error:
    ...     print(error.key, "|", error.message)
    model.hidden | expected a number >= 1, got 0.
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
    """A computation that cannot go on, such as a singular recurrent Jacobian.

    Examples
    --------
    Loihi 2's products keep 20 fraction bits, truncated: an LRU eigenvalue
    of modulus below 2^-10 has a squared modulus of zero there, and FPTT
    cannot divide by it.

    >>> import fpttsim
    >>> fast = {"profile": "loihi2", "model.r_min": 0.0, "model.r_max": 0.001}
    >>> try:
    ...     fpttsim.gradcheck("gradcheck-lru", fast)
    ... except fpttsim.NumericalError as error:
    ...     print(str(error).split(",")[0])
    FPTT warm-up pass: the recurrent Jacobian of layer 1 (lru) is singular at step 1
    """


class CheckFailed(FpttsimError):
    """The simulation ran, but a check the user asked for did not pass.

    Examples
    --------
    A device that cannot infer at the stream's rate:

    >>> import fpttsim
    >>> try:
    ...     fpttsim.run("quickstart", overrides={"device.rate_hz": 1e9})
    ... except fpttsim.CheckFailed as error:
    ...     print(str(error).split(",")[0])
    at device.rate_hz = 1e+09 a sample arrives every 0.001 us
    """


class BudgetError(CheckFailed):
    """A scenario does not fit the device's memory.

    Raised before the simulation starts; the command line exits with 1.

    Attributes
    ----------
    breakdown
        Bytes by component of what was asked for.
    over
        Bytes over the budget, by memory (``"working"``, ``"replay"``).

    Examples
    --------
    >>> import fpttsim
    >>> try:
    ...     fpttsim.run("quickstart", overrides={"profile": "cortex-m0plus"})
    ... except fpttsim.BudgetError as error:
    ...     print(error.over, error.breakdown["optimizer_state"])
    {'working': 88210} 60480
    """

    def __init__(self, message: str, breakdown: dict, over: dict) -> None:
        super().__init__(message)
        self.breakdown = breakdown
        self.over = over
