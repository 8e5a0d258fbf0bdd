"""Where windows come from: streams started at any window, held-out windows."""

import itertools

import numpy as np
import pytest

from fpttsim.data import AddingTask, CopyTask, SineTask, Task, Window


def take(task: Task, seed: int, n: int, start: int = 0) -> list[Window]:
    return list(itertools.islice(task.stream(seed, start=start), n))


def same_windows(a: list[Window], b: list[Window]) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(x.inputs, y.inputs)
        and np.array_equal(x.targets, y.targets)
        and np.array_equal(x.mask, y.mask)
        for x, y in zip(a, b, strict=True)
    )


@pytest.mark.parametrize(
    "task",
    [CopyTask(12), AddingTask(10), SineTask(20)],
    ids=["copy", "adding", "sine"],
)
def test_synthetic_start_equals_skipping_windows(task):
    assert same_windows(take(task, 4, 6, start=9), take(task, 4, 15)[9:])
    # start=0 is today's stream: windows drawn one after another.
    rng = np.random.default_rng(4)
    assert same_windows(take(task, 4, 3), [task.sample(rng) for _ in range(3)])


def test_synthetic_held_out_draws_from_the_generator():
    task = AddingTask(10)
    rng = np.random.default_rng(1)
    expected = [task.sample(rng) for _ in range(4)]
    assert same_windows(task.held_out(np.random.default_rng(1), 4), expected)
    with pytest.raises(ValueError, match="needs a number of windows, got None"):
        task.held_out(np.random.default_rng(1), None)
