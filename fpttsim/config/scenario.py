"""The scenario schema: what to learn, with which model, algorithm and budget.

Every section is a frozen pydantic model that forbids unknown keys. Integer
fields are strict (``3.7`` or ``"3"`` is an error, not a silent conversion);
float fields accept integers.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    model_validator,
)

from fpttsim.config.profile import QuantityFormats
from fpttsim.config.relations import relation_error
from fpttsim.data.datasets import (
    DIGITS_LENGTHS,
    MNIST1D_LENGTH,
    MNIST1D_SAMPLES,
    MNIST1D_SEED,
    MNIST1D_TRAIN_SPLIT,
    MNIST98_LENGTH,
)

if TYPE_CHECKING:
    from fpttsim.config.profile import Profile


_NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]+")

# learning.fptt.inverse in the order of the codes fpttsim.cells.jacobian gives
# them (EXACT, NEUMANN): the configuration does not import compiled code.
INVERSE_METHODS = ("exact", "neumann")


def _check_name(value: str) -> str:
    if not _NAME_PATTERN.fullmatch(value):
        raise ValueError(
            f"expected a name made of letters, digits, '.', '_' and '-' only, "
            f"got {value!r}. The name is used in file names, so it cannot hold "
            "spaces or slashes."
        )
    return value


Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Text = Annotated[str, Strict()]
Name = Annotated[str, Strict(), AfterValidator(_check_name)]

_SECTION = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class _Loaded(BaseModel):
    """A model that remembers the file it was loaded from, apart from its data.

    Equality is about content: the same values read from two files are the
    same values, so the private origin is left out of ``==`` and ``hash``.
    """

    # Where the values came from, set by the loader; not part of the data.
    _origin: Any = PrivateAttr(default=None)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BaseModel):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        # Defining __eq__ removes the hash pydantic gives frozen models; this
        # one agrees with __eq__ by hashing the field values only.
        return hash((type(self), tuple(self.__dict__.values())))


class TaskSection(_Loaded):
    """What every task section shares: where it was written.

    The loader records the scenario's origin in the task section too, so that
    a task reading files can resolve a relative path against the scenario's
    folder and name the line of a key in its errors.
    """

    model_config = _SECTION

    @property
    def base_folder(self) -> Path | None:
        """The scenario file's folder, or None for a scenario built in code."""
        return None if self._origin is None else Path(self._origin.file).parent

    def where(self, key: str) -> tuple[str | None, int | None]:
        """File and line of this section's key ``key``; see :meth:`Scenario.where`.

        Parameters
        ----------
        key
            A key of the section, such as ``"path"``.

        Returns
        -------
        tuple
            ``(file, line)``; either may be None when unknown.
        """
        if self._origin is None:
            return None, None
        return self._origin.where(("task", *key.split(".")))


class CopyTask(TaskSection):
    """Copy task: remember a few symbols, wait, then recall them in order.

    Parameters
    ----------
    kind
        Always ``"copy"``.
    length
        Steps per window (T); at least ``2 * symbols + 1``.
    symbols
        How many symbols to remember.
    alphabet
        Number of distinct symbols.
    """

    model_config = _SECTION

    kind: Literal["copy"]
    length: Annotated[Int, Field(ge=1)]
    symbols: Annotated[Int, Field(ge=1)] = 3
    alphabet: Annotated[Int, Field(ge=2)] = 4

    @model_validator(mode="after")
    def _fits_in_window(self) -> CopyTask:
        # The symbols are shown, a cue follows, then the symbols are recalled.
        minimum = 2 * self.symbols + 1
        if self.length < minimum:
            raise relation_error(
                "length",
                f"expected a length of at least 2 * symbols + 1 = {minimum} "
                f"for {self.symbols} symbols, got {self.length}. Raise the "
                "length or lower task.symbols.",
            )
        return self


class AddingTask(TaskSection):
    """Adding task: output the sum of the two marked values of a sequence.

    Parameters
    ----------
    kind
        Always ``"adding"``.
    length
        Steps per window (T).
    """

    model_config = _SECTION

    kind: Literal["adding"]
    length: Annotated[Int, Field(ge=2)]


class SineTask(TaskSection):
    """Sine task: predict a noisy sine wave ``horizon`` steps ahead.

    Parameters
    ----------
    kind
        Always ``"sine"``.
    length
        Steps per window (T).
    noise
        Standard deviation of the additive noise.
    horizon
        How many steps ahead to predict.
    freq_min, freq_max
        Range of the frequency in cycles per step; at most 0.5, the Nyquist
        frequency of a signal sampled once per step.
    """

    model_config = _SECTION

    kind: Literal["sine"]
    length: Annotated[Int, Field(ge=1)]
    noise: Annotated[Float, Field(ge=0)] = 0.05
    horizon: Annotated[Int, Field(ge=1)] = 1
    freq_min: Annotated[Float, Field(gt=0, le=0.5)] = 0.01
    freq_max: Annotated[Float, Field(gt=0, le=0.5)] = 0.1

    @model_validator(mode="after")
    def _ordered_frequencies(self) -> SineTask:
        if self.freq_min > self.freq_max:
            raise relation_error(
                "freq_min",
                f"expected freq_min <= freq_max, got freq_min = {self.freq_min} "
                f"and freq_max = {self.freq_max}.",
            )
        return self


def _multiple_of_ten(value: int) -> int:
    if value % 10:
        raise ValueError(
            f"expected a multiple of 10 (the same number of examples for each "
            f"of the 10 classes), got {value}. Try {10 * max(1, round(value / 10))}."
        )
    return value


class Mnist1dTask(TaskSection):
    """MNIST-1D: classify sequences generated by the ``mnist1d`` package.

    Each window is one sequence of ``length`` steps of 1 input; its class
    (10) is the target at the last step. The defaults are the package's own generation
    arguments, those of the published benchmark: 5000 sequences from seed 42,
    the first 4000 for training and the last 1000 for testing.

    Parameters
    ----------
    kind
        Always ``"mnist1d"``.
    samples
        Sequences generated, a multiple of 10.
    train_split
        Fraction of the sequences in the training split; the test split has
        the rest, and neither may be empty.
    data_seed
        Seed of the generator (not of the order of training: that is the
        scenario's ``seed``).
    length
        Steps per window (T): the generator resamples each sequence to this
        length; 40 is the published benchmark's.
    """

    model_config = _SECTION

    kind: Literal["mnist1d"]
    samples: Annotated[Int, Field(ge=10), AfterValidator(_multiple_of_ten)] = (
        MNIST1D_SAMPLES
    )
    train_split: Annotated[Float, Field(gt=0, lt=1)] = MNIST1D_TRAIN_SPLIT
    data_seed: Annotated[Int, Field(ge=0)] = MNIST1D_SEED
    length: Annotated[Int, Field(ge=2)] = MNIST1D_LENGTH

    @model_validator(mode="after")
    def _splits_not_empty(self) -> Mnist1dTask:
        train = int(self.samples * self.train_split)  # as the generator splits
        if not 0 < train < self.samples:
            raise relation_error(
                "train_split",
                f"expected a train_split that leaves at least one of the "
                f"{self.samples} samples in each split, got {self.train_split} "
                f"({train} for training, {self.samples - train} for testing).",
            )
        return self


class DigitsTask(TaskSection):
    """scikit-learn's 8 x 8 handwritten digits, one image per window.

    The 1797 images ship with scikit-learn; pixels are scaled to ``[0, 1]``.
    The class (10) is the target at the last step. The split is stratified:
    every class is divided between the splits in the proportion
    ``train_split``.

    Parameters
    ----------
    kind
        Always ``"digits"``.
    order
        ``"rows"``: one row per step, 8 steps of 8 inputs; ``"pixels"``: one
        pixel per step in row-major order, 64 steps of 1 input.
    train_split
        Fraction of the images in the training split.
    data_seed
        Seed of the split (not of the order of training: that is the
        scenario's ``seed``).

    Notes
    -----
    There is no ``length`` key: :attr:`length` follows from ``order``.
    """

    model_config = _SECTION

    kind: Literal["digits"]
    order: Literal["rows", "pixels"] = "rows"
    train_split: Annotated[Float, Field(ge=0.01, le=0.99)] = 0.8
    data_seed: Annotated[Int, Field(ge=0)] = 0

    @property
    def length(self) -> int:
        """Steps per window, T: 8 by rows, 64 by pixels."""
        return DIGITS_LENGTHS[self.order]


class Mnist98Task(TaskSection):
    """MNIST from the user's IDX files, each image as 98 steps of 1 input.

    Each step is the mean of 8 consecutive pixels in row-major order, scaled
    to ``[0, 1]``; the class (10) is the target at the last step. The
    training split is MNIST's training set, the test split its ``t10k`` set.

    Parameters
    ----------
    kind
        Always ``"mnist98"``.
    path
        Folder holding ``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
        ``t10k-labels-idx1-ubyte``, plain or with ``.gz``. A relative path is
        relative to the scenario file's folder. The files are read when the
        task is built, not when the scenario is loaded.

    Notes
    -----
    There is no ``length`` key: the window length, :attr:`length`, is 98.
    """

    model_config = _SECTION

    kind: Literal["mnist98"]
    path: Annotated[Text, Field(min_length=1)]

    @property
    def length(self) -> int:
        """Steps per window, T."""
        return MNIST98_LENGTH


TaskConfig = Annotated[
    Union[CopyTask, AddingTask, SineTask, Mnist1dTask, DigitsTask, Mnist98Task],
    Field(discriminator="kind"),
]
"""A task section; ``kind`` selects :class:`CopyTask`, :class:`AddingTask`,
:class:`SineTask`, :class:`Mnist1dTask`, :class:`DigitsTask` or
:class:`Mnist98Task`. Every section has a ``length``, the steps per window:
a key of the synthetic tasks, a property of the dataset tasks."""


class ModelConfig(BaseModel):
    """The recurrent network.

    Parameters
    ----------
    cell
        Recurrent cell type.
    layers
        Number of recurrent layers.
    hidden
        State size N of each cell.
    width
        Width of the signals between layers; None means ``hidden``.
    mlp_hidden
        Hidden size of each layer's MLP; None means ``2 * width``.
    r_min, r_max
        Range of the eigenvalue moduli at initialisation,
        ``0 <= r_min <= r_max < 1`` (a modulus drawn from the range is
        almost surely positive, so ``r_min = 0`` is allowed).
    max_phase
        Range of the eigenvalue phases at initialisation, in ``(0, 2 pi]``.
    """

    model_config = _SECTION

    cell: Literal["lru", "diagonal", "rnn", "gru"] = "lru"
    layers: Annotated[Int, Field(ge=1)] = 1
    hidden: Annotated[Int, Field(ge=1)] = 32
    width: Annotated[Int, Field(ge=1)] | None = None
    mlp_hidden: Annotated[Int, Field(ge=1)] | None = None
    r_min: Annotated[Float, Field(ge=0, lt=1)] = 0.9
    r_max: Annotated[Float, Field(gt=0, lt=1)] = 0.999
    max_phase: Annotated[Float, Field(gt=0, le=2 * math.pi)] = 2 * math.pi

    @model_validator(mode="after")
    def _ordered_radii(self) -> ModelConfig:
        if self.r_min > self.r_max:
            raise relation_error(
                "r_min",
                f"expected r_min <= r_max, got r_min = {self.r_min} and "
                f"r_max = {self.r_max}.",
            )
        return self

    def resolved_width(self) -> int:
        """Return the width between layers: ``width``, or ``hidden`` when unset.

        Returns
        -------
        int
            The width.
        """
        return self.hidden if self.width is None else self.width

    def resolved_mlp_hidden(self) -> int:
        """Return the MLP hidden size: ``mlp_hidden``, or twice the width.

        Returns
        -------
        int
            The MLP hidden size.
        """
        if self.mlp_hidden is None:
            return 2 * self.resolved_width()
        return self.mlp_hidden


class FpttConfig(BaseModel):
    """How FPTT runs (``learning.fptt``): segments, refinement, inverses.

    Parameters
    ----------
    segments
        Segmented shooting: the window's error pass restarts at ``segments``
        boundaries whose errors come from a short backward recursion over
        the boundaries alone, so that rounding errors grow over
        ``T / segments`` steps instead of ``T``. Costs ``segments`` Jacobian
        products and three errors each.
    refine
        Extra error passes per segment, each after a Newton step on the
        segment's start error from its end residual.
    until
        Stop refining a segment once its relative end residual is at most
        this; 0 runs every ``refine`` pass.
    inverse
        How each step applies ``J^{-T}``: ``exact`` (a division, or an LU
        solve for dense cells) or ``neumann``, the truncated series
        ``sum_{i<=terms} (I - J^T)^i``: ``terms`` products with ``J^T``
        instead of a factorisation, biased unless ``J`` is close to the
        identity (see :func:`fpttsim.cells.jacobian.inverse_transpose`).
        Both passes use it; the product ``P`` stays exact.
    terms
        The Neumann series' terms beyond the first; 1 gives
        ``(2 I - J^T)``. Only with ``inverse: neumann``.
    """

    model_config = _SECTION

    segments: Annotated[Int, Field(ge=1)] = 1
    refine: Annotated[Int, Field(ge=0)] = 0
    until: Annotated[Float, Field(ge=0)] = 0.0
    inverse: Literal["exact", "neumann"] = "exact"
    terms: Annotated[Int, Field(ge=1)] = 1

    @model_validator(mode="after")
    def _terms_apply(self) -> FpttConfig:
        if self.terms != 1 and self.inverse != "neumann":
            raise relation_error(
                "terms",
                f"terms is the Neumann series' length, got terms = {self.terms} "
                f"with inverse {self.inverse}. Remove terms, or set "
                "inverse: neumann.",
            )
        return self

    @property
    def plain(self) -> bool:
        """Whether this is FPTT as published: one segment, no refinement."""
        return self.segments == 1 and self.refine == 0

    @property
    def inverse_code(self) -> int:
        """The inverse method's code, as ``fpttsim.cells.jacobian`` numbers them."""
        return INVERSE_METHODS.index(self.inverse)


class LearningConfig(BaseModel):
    """The learning algorithm and optimiser.

    Parameters
    ----------
    algorithm
        Gradient algorithm.
    optimizer
        Parameter update rule.
    lr
        Learning rate.
    passes
        FPTT passes over the window; None means ``model.layers + 1``.
    clip
        Global gradient-norm clipping threshold; None disables clipping.
    weight_decay
        Decoupled weight decay, ``theta -= lr_t * weight_decay * theta``; the
        cells' recurrent parameters do not decay.
    momentum
        SGD's momentum, in ``[0, 1)``; 0 is plain SGD. Adam takes none.
    schedule
        Learning-rate schedule over ``training.steps`` updates: ``constant``,
        or ``cosine`` from ``lr`` down to ``lr_min``.
    warmup
        Updates of linear warm-up from 0 to ``lr``, before the schedule.
    lr_min
        The cosine's floor, ``0 <= lr_min <= lr``; cosine only.
    recurrent_lr_factor
        Multiplies the learning rate of the cells' recurrent parameters (their
        eigenvalues, or recurrent matrices); 0 freezes them.
    rtrl_max_bytes
        RTRL refuses to run when its sensitivity matrix would exceed this.
    online
        The truly online variant of FPTT: the parameters are updated during
        the error pass, every ``online_every`` steps, instead of at the end of
        the window (one recurrent layer, ``training.batch: 1``). No longer
        the exact gradient.
    online_every
        Steps of the error pass per update when ``online``.
    fptt
        Segmented shooting and refinement passes (:class:`FpttConfig`).
    """

    model_config = _SECTION

    algorithm: Literal["fptt", "bptt", "spatial", "rtrl"] = "fptt"
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: Annotated[Float, Field(gt=0)] = 1.0e-3
    passes: Annotated[Int, Field(ge=1)] | None = None
    clip: Annotated[Float, Field(gt=0)] | None = None
    weight_decay: Annotated[Float, Field(ge=0)] = 0.0
    momentum: Annotated[Float, Field(ge=0, lt=1)] = 0.0
    schedule: Literal["constant", "cosine"] = "constant"
    warmup: Annotated[Int, Field(ge=0)] = 0
    lr_min: Annotated[Float, Field(ge=0)] = 0.0
    recurrent_lr_factor: Annotated[Float, Field(ge=0)] = 1.0
    rtrl_max_bytes: Annotated[Int, Field(ge=1)] = 1_000_000_000
    online: bool = False
    online_every: Annotated[Int, Field(ge=1)] = 1
    fptt: FpttConfig = FpttConfig()

    @model_validator(mode="after")
    def _optimizer_keys_apply(self) -> LearningConfig:
        if self.momentum and self.optimizer != "sgd":
            raise relation_error(
                "momentum",
                f"momentum is for optimizer sgd, got momentum = {self.momentum} "
                f"with optimizer {self.optimizer}. Remove momentum, or set "
                "optimizer: sgd.",
            )
        if self.lr_min and self.schedule != "cosine":
            raise relation_error(
                "lr_min",
                f"lr_min is the cosine schedule's floor, got lr_min = "
                f"{self.lr_min} with schedule {self.schedule}. Remove lr_min, or "
                "set schedule: cosine.",
            )
        if self.lr_min > self.lr:
            raise relation_error(
                "lr_min",
                f"expected lr_min <= lr, got lr_min = {self.lr_min} and "
                f"lr = {self.lr}.",
            )
        return self

    def resolved_passes(self, layers: int) -> int:
        """Return the number of FPTT passes: ``passes``, or ``layers + 1``.

        Parameters
        ----------
        layers
            The model's number of layers.

        Returns
        -------
        int
            The number of passes.
        """
        return layers + 1 if self.passes is None else self.passes


class TrainingConfig(BaseModel):
    """How long to train and how often to log.

    Parameters
    ----------
    steps
        Number of parameter updates (each from ``batch`` learnt windows).
    log_every
        Log the metrics every this many steps.
    batch
        Windows per parameter update.
    on_nan
        What a window whose loss or gradient is not finite does: ``"stop"``
        the run (its results so far are written, with the report), or
        ``"skip"`` the window and go on; either way it is counted.
    eval_every
        Measure the loss on held-out windows every this many steps; 0 only
        before and after training.
    held_out
        Number of held-out windows drawn for synthetic tasks; a dataset uses
        its test split (all of it when small; see ``Task.held_out``).
    cosine_every
        Every this many steps, compare the device's gradient of the last
        window with float64 BPTT's (cosine similarity); 0 never (it costs a
        BPTT window each time).
    checkpoint_every
        Save a checkpoint every this many steps into the run's folder, from
        which ``fpttsim run --resume`` continues; 0 never.
    """

    model_config = _SECTION

    steps: Annotated[Int, Field(ge=1)] = 2000
    log_every: Annotated[Int, Field(ge=1)] = 20
    batch: Annotated[Int, Field(ge=1)] = 1
    on_nan: Literal["stop", "skip"] = "stop"
    eval_every: Annotated[Int, Field(ge=0)] = 0
    held_out: Annotated[Int, Field(ge=1)] = 64
    cosine_every: Annotated[Int, Field(ge=0)] = 0
    checkpoint_every: Annotated[Int, Field(ge=0)] = 0


class DeviceConfig(BaseModel):
    """The stream the device learns from.

    Parameters
    ----------
    rate_hz
        Samples (time steps of the stream) arriving per second.
    double_buffer
        Whether the replay buffer holds a second window, filled while the
        learner works on the first; without it, samples that arrive while the
        learner works are not stored and their window is not learnt.
    formats
        Quantities this design holds in other formats than the profile's
        (mixed precision, e.g. ``{error: fp32, jacobian_product: fp32}``),
        as a profile's ``arithmetic.formats`` gives them; memory, cost and
        arithmetic all follow.
    """

    model_config = _SECTION

    rate_hz: Annotated[Float, Field(gt=0)] = 1000.0
    double_buffer: bool = True
    formats: QuantityFormats | None = None


class GradcheckConfig(BaseModel):
    """The finite-difference gradient check.

    Parameters
    ----------
    algorithms
        Algorithms to check; None means all that apply.
    directions
        Number of random directions for the finite-difference check.
    epsilon
        Finite-difference step.
    """

    model_config = _SECTION

    algorithms: (
        Annotated[
            tuple[Literal["fptt", "spatial", "rtrl", "bptt"], ...],
            Field(min_length=1),
        ]
        | None
    ) = None
    directions: Annotated[Int, Field(ge=1)] = 4
    epsilon: Annotated[Float, Field(gt=0)] = 1.0e-5


class Scenario(_Loaded):
    """A complete scenario: task, model, learning, training, device, gradcheck.

    Parameters
    ----------
    name
        Letters, digits, ``.``, ``_`` and ``-`` only.
    seed
        Seed of every random draw.
    profile
        Shipped hardware profile name, or a path to a profile file; a relative
        path is relative to the scenario file's folder.
    description
        Free text.
    task, model, learning, training, device, gradcheck
        The sections.

    Notes
    -----
    Two scenarios are equal when their fields are equal, wherever they were
    loaded from.

    Examples
    --------
    >>> from pathlib import Path
    >>> import fpttsim
    >>> scenario = fpttsim.load_scenario("quickstart", {"model.hidden": 16})
    >>> scenario.model.cell, scenario.model.hidden, scenario.task.length
    ('lru', 16, 50)
    >>> file, line = scenario.where("model.cell")
    >>> Path(file).name, line > 0
    ('quickstart.yaml', True)
    >>> scenario.where("model.hidden")
    ('--set', None)
    >>> scenario.resolve_profile().name
    'fp64-reference'
    >>> scenario == fpttsim.load_scenario("quickstart", ["model.hidden=16"])
    True
    """

    model_config = _SECTION

    name: Name
    seed: Annotated[Int, Field(ge=0)] = 0
    profile: Annotated[Text, Field(min_length=1)] = "fp64-reference"
    description: Text = ""
    task: TaskConfig
    model: ModelConfig
    learning: LearningConfig = LearningConfig()
    training: TrainingConfig = TrainingConfig()
    device: DeviceConfig = DeviceConfig()
    gradcheck: GradcheckConfig = GradcheckConfig()

    @model_validator(mode="after")
    def _passes_fit_layers(self) -> Scenario:
        passes = self.learning.passes
        if passes is not None and passes > self.model.layers + 1:
            raise relation_error(
                "learning.passes",
                f"expected at most model.layers + 1 = {self.model.layers + 1} "
                f"FPTT passes, got {passes}.",
            )
        return self

    @model_validator(mode="after")
    def _online_fits(self) -> Scenario:
        if not self.learning.online:
            return self
        problem = None
        if self.learning.algorithm != "fptt":
            problem = f"learning.algorithm is {self.learning.algorithm!r}"
        elif self.model.layers != 1:
            problem = f"model.layers is {self.model.layers}"
        elif self.training.batch != 1:
            problem = f"training.batch is {self.training.batch}"
        if problem:
            raise relation_error(
                "learning.online",
                "online updates are FPTT's on one recurrent layer, one window "
                f"at a time (fptt, model.layers: 1, training.batch: 1), but "
                f"{problem}.",
            )
        return self

    @property
    def source(self) -> str | None:
        """The file the scenario was loaded from, or None if built in code."""
        return None if self._origin is None else self._origin.file

    def where(self, key: str) -> tuple[str | None, int | None]:
        """File and line a dotted key's value came from.

        ``("--set", None)`` for an overridden value, ``(None, None)`` for a
        scenario built in code; the line is None when the file does not set
        the key (a default).
        """
        if self._origin is None:
            return None, None
        return self._origin.where(tuple(key.split(".")))

    def resolve_profile(self) -> Profile:
        """Load the hardware profile this scenario names.

        A relative path is resolved against the folder of the scenario file
        (the working directory when the scenario was not loaded from a file).
        The formats of ``device.formats`` replace the profile's.

        Returns
        -------
        Profile
            The validated profile.

        Raises
        ------
        ConfigError
            When the profile cannot be found (naming this scenario's file and
            the line of its ``profile`` key) or is not valid (naming the
            profile's file).
        """
        # Imported here because the loader imports this module.
        from fpttsim.config.loader import load_profile_for

        base = None if self.source is None else Path(self.source).parent
        profile = load_profile_for(self.profile, base, self._origin)
        if self.device.formats is None:
            return profile
        return profile.with_formats(self.device.formats)
