import itertools
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fpttsim.data import AddingTask, CopyTask, SineTask, Task, Window, make_task
from fpttsim.errors import ConfigError


def take(task: Task, seed: int, n: int) -> list[Window]:
    return list(itertools.islice(task.stream(seed), n))


def check_shapes(task: Task, w: Window) -> None:
    T = task.length
    assert w.inputs.shape == (T, task.input_size)
    assert w.inputs.dtype == np.float64
    assert w.mask.shape == (T,)
    assert w.mask.dtype == np.float64
    assert set(np.unique(w.mask)) <= {0.0, 1.0}
    if task.loss == "ce":
        assert w.targets.shape == (T,)
        assert w.targets.dtype == np.int64
        assert np.all((w.targets >= 0) & (w.targets < task.output_size))
    else:
        assert w.targets.shape == (T, task.output_size)
        assert w.targets.dtype == np.float64


TASKS = [
    CopyTask(12, symbols=3, alphabet=4),
    CopyTask(7, symbols=3, alphabet=2),
    AddingTask(10),
    AddingTask(2),
    SineTask(20, noise=0.1, horizon=3),
]


@pytest.mark.parametrize("task", TASKS, ids=repr)
def test_shapes_and_dtypes(task):
    for w in take(task, 0, 5):
        check_shapes(task, w)


@pytest.mark.parametrize("task", TASKS, ids=repr)
def test_same_seed_same_stream(task):
    a, b = take(task, 123, 4), take(task, 123, 4)
    for wa, wb in zip(a, b, strict=True):
        np.testing.assert_array_equal(wa.inputs, wb.inputs)
        np.testing.assert_array_equal(wa.targets, wb.targets)
        np.testing.assert_array_equal(wa.mask, wb.mask)


@pytest.mark.parametrize("task", TASKS, ids=repr)
def test_different_seeds_differ(task):
    a, b = take(task, 1, 4), take(task, 2, 4)
    assert any(
        not np.array_equal(wa.inputs, wb.inputs) for wa, wb in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("task", TASKS, ids=repr)
def test_windows_in_a_stream_differ(task):
    a, b = take(task, 5, 2)
    assert not np.array_equal(a.inputs, b.inputs)


def check_copy(task: CopyTask, w: Window) -> None:
    T, K, A = task.length, task.symbols, task.alphabet
    # Every step is one-hot.
    np.testing.assert_array_equal(w.inputs.sum(axis=1), np.ones(T))
    channel = w.inputs.argmax(axis=1)
    shown = channel[:K]
    assert np.all(shown < A)

    # Exactly one cue, at T - K - 1; every other step after the symbols is blank.
    assert np.flatnonzero(channel == A + 1).tolist() == [T - K - 1]
    rest = np.delete(np.arange(K, T), T - K - 1 - K)
    assert np.all(channel[rest] == A)

    expected_mask = np.r_[np.zeros(T - K), np.ones(K)]
    np.testing.assert_array_equal(w.mask, expected_mask)
    np.testing.assert_array_equal(w.targets[T - K :], shown)
    np.testing.assert_array_equal(w.targets[: T - K], 0)


def test_copy_task_layout():
    task = CopyTask(10, symbols=3, alphabet=5)
    assert (task.input_size, task.output_size, task.loss) == (7, 5, "ce")
    for w in take(task, 7, 20):
        check_copy(task, w)


def test_copy_task_uses_whole_alphabet():
    task = CopyTask(9, symbols=4, alphabet=3)
    seen = np.concatenate([w.targets[-4:] for w in take(task, 0, 50)])
    assert set(seen.tolist()) == {0, 1, 2}


def test_copy_task_too_short():
    with pytest.raises(ValueError, match=r"length must be >= 2 \* symbols \+ 1 = 7"):
        CopyTask(6, symbols=3)
    CopyTask(7, symbols=3)


def check_adding(task: AddingTask, w: Window) -> None:
    T = task.length
    values, marker = w.inputs[:, 0], w.inputs[:, 1]
    assert np.all((values >= 0.0) & (values < 1.0))
    assert set(np.unique(marker)) <= {0.0, 1.0}
    where = np.flatnonzero(marker)
    assert len(where) == 2
    assert where[0] < T // 2 <= where[1]

    expected_mask = np.zeros(T)
    expected_mask[-1] = 1.0
    np.testing.assert_array_equal(w.mask, expected_mask)
    assert w.targets[-1, 0] == values[where[0]] + values[where[1]]
    np.testing.assert_array_equal(w.targets[:-1], 0.0)


def test_adding_task_layout():
    task = AddingTask(11)
    assert (task.input_size, task.output_size, task.loss) == (2, 1, "mse")
    for w in take(task, 3, 20):
        check_adding(task, w)


def test_adding_task_markers_cover_both_halves():
    # Over many windows every position of each half is marked at least once.
    task = AddingTask(6)
    marked = np.zeros(6)
    for w in take(task, 0, 200):
        marked += w.inputs[:, 1]
    assert np.all(marked > 0)


def test_adding_task_too_short():
    with pytest.raises(ValueError, match="length must be >= 2, got 1"):
        AddingTask(1)


@pytest.mark.parametrize("horizon", [1, 4])
def test_sine_targets_are_clean_signal_ahead(horizon):
    T = 30
    noisy = SineTask(T, noise=0.2, horizon=horizon)
    clean = SineTask(T, noise=0.0, horizon=horizon)
    for wn, wc in zip(take(noisy, 9, 5), take(clean, 9, 5), strict=True):
        # Without noise the inputs are the signal itself.
        np.testing.assert_array_equal(wc.targets[: T - horizon], wc.inputs[horizon:])
        # Noise changes the inputs only: the targets are the same clean signal.
        np.testing.assert_array_equal(wn.targets, wc.targets)
        np.testing.assert_array_equal(wn.mask, np.ones(T))
        assert not np.array_equal(wn.inputs, wc.inputs)


def test_sine_noise_level():
    # 200 windows of 50 steps: the sample standard deviation of 10,000 normal
    # draws is within 3% of the true one with overwhelming probability.
    noisy = SineTask(50, noise=0.3)
    clean = SineTask(50, noise=0.0)
    diff = np.concatenate(
        [
            (wn.inputs - wc.inputs).ravel()
            for wn, wc in zip(take(noisy, 4, 200), take(clean, 4, 200), strict=True)
        ]
    )
    assert abs(diff.std() / 0.3 - 1.0) < 0.03


def test_sine_signal_parameters_in_range():
    # The clean signal of a window is a sin(2 pi f t + phi); recover a and f
    # from its samples by a dense discrete Fourier fit.
    T = 400
    task = SineTask(T, noise=0.0, freq_min=0.02, freq_max=0.05)
    t = np.arange(T)
    freqs = np.linspace(0.0, 0.5, 5001)
    basis = np.exp(-2j * np.pi * np.outer(freqs, t))  # (F, T)
    for w in take(task, 11, 10):
        x = w.inputs[:, 0]
        power = np.abs(basis @ x)
        f = freqs[power.argmax()]
        assert 0.02 - 1e-3 <= f <= 0.05 + 1e-3
        # Some sample lies within half a step of a peak, where |s| is at least
        # a cos(pi f); a >= 0.5 and f <= 0.05 bound that from below.
        assert 0.5 * np.cos(np.pi * 0.05) <= np.abs(x).max() <= 1.5


def test_sine_bad_parameters():
    with pytest.raises(ValueError, match="freq_min must be <= freq_max"):
        SineTask(10, freq_min=0.2, freq_max=0.1)
    with pytest.raises(ValueError, match="noise must be finite and >= 0.0"):
        SineTask(10, noise=-1.0)
    with pytest.raises(ValueError, match="horizon must be >= 1, got 0"):
        SineTask(10, horizon=0)
    with pytest.raises(ValueError, match="length must be an integer, got 10.0"):
        SineTask(10.0)


def test_make_task_kinds():
    copy = make_task(SimpleNamespace(kind="copy", length=9, symbols=2, alphabet=3))
    assert isinstance(copy, CopyTask)
    assert (copy.length, copy.symbols, copy.alphabet) == (9, 2, 3)

    adding = make_task(SimpleNamespace(kind="adding", length=8, symbols=None))
    assert isinstance(adding, AddingTask)
    assert adding.length == 8

    sine = make_task(SimpleNamespace(kind="sine", length=5, horizon=2, noise=0.0))
    assert isinstance(sine, SineTask)
    assert (sine.horizon, sine.noise, sine.freq_min) == (2, 0.0, 0.01)


def test_make_task_unknown_kind():
    with pytest.raises(ValueError, match="unknown task kind 'spiral'.*'copy'"):
        make_task(SimpleNamespace(kind="spiral", length=5))


def test_make_task_errors_are_config_errors():
    with pytest.raises(ConfigError, match="needs a length"):
        make_task(SimpleNamespace(kind="adding"))
    with pytest.raises(ConfigError, match="length must be >= 2"):
        make_task(SimpleNamespace(kind="adding", length=1))


@settings(max_examples=60, deadline=None)
@given(
    symbols=st.integers(1, 6),
    extra=st.integers(0, 20),
    alphabet=st.integers(2, 9),
    seed=st.integers(0, 2**32 - 1),
)
def test_copy_property(symbols, extra, alphabet, seed):
    task = CopyTask(2 * symbols + 1 + extra, symbols=symbols, alphabet=alphabet)
    for w in take(task, seed, 2):
        check_shapes(task, w)
        check_copy(task, w)


@settings(max_examples=60, deadline=None)
@given(length=st.integers(2, 60), seed=st.integers(0, 2**32 - 1))
def test_adding_property(length, seed):
    task = AddingTask(length)
    for w in take(task, seed, 2):
        check_shapes(task, w)
        check_adding(task, w)


@settings(max_examples=60, deadline=None)
@given(
    length=st.integers(1, 60),
    horizon=st.integers(1, 10),
    seed=st.integers(0, 2**32 - 1),
)
def test_sine_property(length, horizon, seed):
    task = SineTask(length, noise=0.0, horizon=horizon)
    w = next(task.stream(seed))
    check_shapes(task, w)
    overlap = max(length - horizon, 0)
    np.testing.assert_array_equal(w.targets[:overlap], w.inputs[horizon:])
    assert np.all(np.abs(w.targets) <= 1.5)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**63 - 1))
def test_stream_reproducible_property(seed):
    task = CopyTask(9, symbols=2, alphabet=3)
    a, b = take(task, seed, 3), take(task, seed, 3)
    for wa, wb in zip(a, b, strict=True):
        np.testing.assert_array_equal(wa.inputs, wb.inputs)
        np.testing.assert_array_equal(wa.targets, wb.targets)
