"""Where windows come from: streams started at any window, held-out windows."""

import itertools
import struct

import numpy as np
import pytest

from fpttsim.data import AddingTask, CopyTask, SineTask, Task, Window
from fpttsim.data.idx import IdxError, read_idx


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


# --- the IDX reader -----------------------------------------------------------


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    """An IDX file written field by field from the format's description."""
    header = struct.pack(">HBB", 0, code, array.ndim)
    header += b"".join(struct.pack(">I", size) for size in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def test_read_idx_roundtrip_of_every_type(tmp_path):
    codes = {0x08: "u1", 0x09: "i1", 0x0B: "i2", 0x0C: "i4", 0x0D: "f4", 0x0E: "f8"}
    for code, dtype in codes.items():
        array = (np.arange(24) - 5).reshape(2, 3, 4).astype(dtype)
        if dtype == "u1":
            array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
        (tmp_path / "a").write_bytes(idx_bytes(array, code))
        back = read_idx(tmp_path / "a")
        assert back.dtype == np.dtype(dtype) and np.array_equal(back, array)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x00", "holds 2 bytes"),
        (b"\x01\x00\x08\x01" + b"\x00" * 8, "magic number is 0x01000801"),
        (b"\x00\x00\x07\x01" + b"\x00" * 8, "magic number is 0x00000701"),
        (b"\x00\x00\x08\x00", "gives 0 dimensions"),
        (b"\x00\x00\x08\x02\x00\x00\x00\x01", "header needs 12 bytes"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05abcd", "is truncated: a 5 array"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x03abcd", "longer than its header says"),
    ],
)
def test_read_idx_refuses_malformed_files(tmp_path, data, message):
    (tmp_path / "bad").write_bytes(data)
    with pytest.raises(IdxError, match=message):
        read_idx(tmp_path / "bad")


def test_read_idx_refuses_a_gz_file_that_is_not_gzip(tmp_path):
    (tmp_path / "x.gz").write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(IdxError, match="not a valid gzip file"):
        read_idx(tmp_path / "x.gz")
