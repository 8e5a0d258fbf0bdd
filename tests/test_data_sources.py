"""Tasks over datasets: MNIST-1D, scikit-learn's digits and MNIST from IDX files."""

import gzip
import itertools
import random
import re
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import fpttsim
from fpttsim.config import load_scenario
from fpttsim.data import (
    AddingTask,
    CopyTask,
    DatasetTask,
    DigitsTask,
    IdxError,
    Mnist1dTask,
    Mnist98Task,
    SineTask,
    Task,
    Window,
    make_task,
    read_idx,
)
from fpttsim.errors import ConfigError

# Sizes of the synthetic MNIST written by the tests: a handful of images.
TRAIN_IMAGES, TEST_IMAGES = 12, 5


def take(task: Task, seed: int, n: int, start: int = 0) -> list[Window]:
    return list(itertools.islice(task.stream(seed, start=start), n))


def same_windows(a: list[Window], b: list[Window]) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(x.inputs, y.inputs)
        and np.array_equal(x.targets, y.targets)
        and np.array_equal(x.mask, y.mask)
        for x, y in zip(a, b, strict=True)
    )


# --- synthetic MNIST files ----------------------------------------------------


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    """An IDX file written field by field from the format's description."""
    header = struct.pack(">HBB", 0, code, array.ndim)
    header += b"".join(struct.pack(">I", size) for size in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_mnist(folder: Path, seed: int = 0, gz: bool = False) -> dict:
    """Write small MNIST files; return their arrays by file stem."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(
            0, 256, (TRAIN_IMAGES, 28, 28), dtype=np.uint8
        ),
        "train-labels-idx1-ubyte": rng.integers(0, 10, TRAIN_IMAGES, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(
            0, 256, (TEST_IMAGES, 28, 28), dtype=np.uint8
        ),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, TEST_IMAGES, dtype=np.uint8),
    }
    for name, array in arrays.items():
        if gz:
            with gzip.open(folder / f"{name}.gz", "wb") as f:
                f.write(idx_bytes(array))
        else:
            (folder / name).write_bytes(idx_bytes(array))
    return arrays


def mnist98_by_loops(images: np.ndarray) -> np.ndarray:
    """MNIST98 computed pixel by pixel: sum each run of 8, divide by 8 * 255."""
    out = np.zeros((len(images), 98, 1))
    for n, image in enumerate(images):
        pixels = [int(image[r][c]) for r in range(28) for c in range(28)]
        for t in range(98):
            out[n, t, 0] = sum(pixels[8 * t : 8 * t + 8]) / (8 * 255)
    return out


SCENARIO = """\
name: mnist
task:
  kind: mnist98
  path: {path}
model: {{cell: lru, hidden: 4}}
training: {{steps: 3, log_every: 1}}
"""
PATH_LINE = 4  # line of "path:" in SCENARIO


def mnist_scenario(folder: Path, path: str) -> Path:
    file = folder / "scenario.yaml"
    file.write_text(SCENARIO.format(path=path), encoding="utf-8")
    return file


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mnist")
    arrays = write_mnist(folder)
    return Mnist98Task(folder), arrays


@pytest.fixture(scope="module")
def mnist1d():
    return Mnist1dTask()


@pytest.fixture(scope="module", params=["rows", "pixels"])
def digits(request):
    return DigitsTask(order=request.param)


def dataset_tasks(mnist, mnist1d, digits) -> list[DatasetTask]:
    return [mnist[0], mnist1d, digits]


# --- windows ------------------------------------------------------------------


def test_shapes_dtypes_and_masks(mnist, mnist1d, digits):
    expected = {"mnist98": (98, 1), "mnist1d": (40, 1)}
    expected["digits"] = (8, 8) if digits.order == "rows" else (64, 1)
    for task in dataset_tasks(mnist, mnist1d, digits):
        assert (task.length, task.input_size) == expected[task.name]
        assert (task.loss, task.output_size) == ("ce", 10)
        windows = (
            take(task, 0, 3)
            + task.held_out(None, 2)
            + [task.sample(np.random.default_rng(0))]
        )
        for w in windows:
            assert w.inputs.shape == expected[task.name]
            assert w.inputs.dtype == np.float64
            assert w.targets.shape == (task.length,) and w.targets.dtype == np.int64
            assert w.mask.dtype == np.float64
            # The class is the target at the last step only.
            assert np.array_equal(w.mask, np.eye(task.length)[-1])
            assert np.all(w.targets[:-1] == 0) and 0 <= w.targets[-1] < 10


@pytest.mark.parametrize(
    "task", ["kind: mnist1d\n", "kind: digits\n", "kind: digits\norder: pixels\n"]
)
def test_schema_length_matches_the_task(tmp_path, task):
    scenario = load_scenario(write_scenario(tmp_path, task))
    assert scenario.task.length == make_task(scenario.task).length


def test_schema_length_of_mnist98(tmp_path, mnist):
    scenario = load_scenario(mnist_scenario(tmp_path, str(mnist[0].folder)))
    assert scenario.task.length == make_task(scenario.task).length == 98


def test_windows_are_copies_of_the_cached_data(digits):
    window = next(digits.stream(0))
    window.inputs[:] = -1.0
    assert np.all(next(digits.stream(0)).inputs >= 0.0)


def test_a_task_built_twice_reuses_the_generated_arrays(mnist1d):
    again = make_task(SimpleNamespace(kind="mnist1d"))
    assert np.shares_memory(again.train_inputs, mnist1d.train_inputs)


def test_a_dataset_task_leaves_the_callers_arrays_writable():
    inputs, labels = np.zeros((3, 2, 1)), np.array([0, 1, 0])
    task = DatasetTask(inputs, labels, inputs, labels, classes=2)
    inputs[0, 0, 0] = 1.0  # still writable
    assert not task.train_inputs.flags.writeable


# --- streams ------------------------------------------------------------------


def test_same_seed_same_stream_other_seed_other_order(mnist, mnist1d, digits):
    for task in dataset_tasks(mnist, mnist1d, digits):
        first = take(task, 5, 10)
        assert same_windows(first, take(task, 5, 10))
        assert not same_windows(first, take(task, 6, 10))


def test_start_equals_skipping_windows(mnist, digits):
    task = mnist[0]
    # Starts inside the first epoch, at its end and a few epochs on.
    for start in (0, 3, TRAIN_IMAGES - 1, TRAIN_IMAGES, 3 * TRAIN_IMAGES + 7):
        skipped = take(task, 2, start + 2 * TRAIN_IMAGES)[start:]
        assert same_windows(take(task, 2, 2 * TRAIN_IMAGES, start=start), skipped)
    n = len(digits.train_labels)
    assert same_windows(take(digits, 1, 5, start=n + 3), take(digits, 1, n + 8)[-5:])


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


def test_start_must_be_a_natural_number(digits):
    with pytest.raises(ValueError, match="start must be >= 0, got -1"):
        digits.stream(0, start=-1)
    with pytest.raises(ValueError, match="start must be an integer"):
        CopyTask(12).stream(0, start=2.0)


def test_every_epoch_visits_every_training_example_once():
    # Inputs numbered 0..N-1 tell which example a window shows.
    n, T = 7, 3
    inputs = np.repeat(np.arange(n, dtype=np.float64), T).reshape(n, T, 1)
    labels = np.arange(n) % 2
    task = DatasetTask(inputs, labels, inputs[:2], labels[:2], classes=2)
    windows = take(task, 0, 4 * n)
    seen = np.array([int(w.inputs[0, 0]) for w in windows]).reshape(4, n)
    for epoch in seen:
        assert sorted(epoch) == list(range(n))
    assert len({tuple(epoch) for epoch in seen}) > 1  # a fresh order each epoch
    assert all(w.targets[-1] == labels[int(w.inputs[0, 0])] for w in windows)


def test_an_epoch_of_digits_is_the_training_split(digits):
    n = len(digits.train_labels)
    epoch = take(digits, 3, n)

    def key(inputs, label):
        return inputs.tobytes() + bytes([label])

    shown = sorted(key(w.inputs, w.targets[-1]) for w in epoch)
    split = sorted(map(key, digits.train_inputs, digits.train_labels))
    assert shown == split


# --- held-out windows ---------------------------------------------------------


def test_held_out_is_the_test_split_in_order(mnist, mnist1d, digits):
    for task in dataset_tasks(mnist, mnist1d, digits):
        windows = task.held_out(np.random.default_rng(0), None)
        assert len(windows) == len(task.test_labels)
        assert np.array_equal(np.stack([w.inputs for w in windows]), task.test_inputs)
        assert np.array_equal([w.targets[-1] for w in windows], task.test_labels)


def test_small_test_splits_are_used_whole_large_ones_cut(digits):
    # 360 test images: at most whole_test_split_up_to, so all of them.
    assert len(digits.test_labels) == 360
    assert len(digits.held_out(None, 64)) == 360

    class Small(DigitsTask):
        whole_test_split_up_to = 100

    small = Small(order=digits.order)
    held = small.held_out(None, 64)
    assert len(held) == 64
    assert np.array_equal(held[-1].inputs, small.test_inputs[63])
    assert len(small.held_out(None, 10_000)) == 360


def test_held_out_refuses_a_negative_count(digits):
    with pytest.raises(ValueError, match="n must be >= 0, got -1"):
        digits.held_out(None, -1)


def test_synthetic_held_out_draws_from_the_generator():
    task = AddingTask(10)
    rng = np.random.default_rng(1)
    expected = [task.sample(rng) for _ in range(4)]
    assert same_windows(task.held_out(np.random.default_rng(1), 4), expected)
    with pytest.raises(ValueError, match="needs a number of windows, got None"):
        task.held_out(np.random.default_rng(1), None)


def test_digits_splits_are_disjoint_and_stratified(digits):
    from sklearn.datasets import load_digits

    train, test = digits.train_index, digits.test_index
    assert not set(train) & set(test)
    assert sorted([*train, *test]) == list(range(1797))
    counts = np.bincount(digits.test_labels, minlength=10)
    expected = 0.2 * np.bincount(load_digits().target)
    assert np.all(np.abs(counts - expected) <= 1)  # stratified: +-1 rounding


# --- the sources themselves ---------------------------------------------------


def test_mnist1d_is_the_packages_own_data(mnist1d):
    from mnist1d.data import get_dataset_args, make_dataset

    data = make_dataset(get_dataset_args())
    assert np.array_equal(mnist1d.train_inputs[:, :, 0], data["x"])
    assert np.array_equal(mnist1d.train_labels, data["y"])
    assert np.array_equal(mnist1d.test_inputs[:, :, 0], data["x_test"])
    assert np.array_equal(mnist1d.test_labels, data["y_test"])
    assert (len(mnist1d.train_labels), len(mnist1d.test_labels)) == (4000, 1000)


def test_mnist1d_generation_arguments_reach_the_generator():
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.train_split, args.seed = 200, 0.75, 7
    args.final_seq_length = 64
    data = make_dataset(args)
    task = make_task(
        SimpleNamespace(
            kind="mnist1d", samples=200, train_split=0.75, data_seed=7, length=64
        )
    )
    assert task.length == 64
    assert np.array_equal(task.train_inputs[:, :, 0], data["x"])
    assert np.array_equal(task.test_labels, data["y_test"])
    assert (len(task.train_labels), len(task.test_labels)) == (150, 50)


def test_mnist1d_leaves_the_global_generators_alone():
    np.random.seed(123)
    random.seed(123)
    expected = (np.random.random(), random.random())
    np.random.seed(123)
    random.seed(123)
    Mnist1dTask(samples=30, data_seed=3)
    assert (np.random.random(), random.random()) == expected


def test_digits_rows_and_pixels_are_the_same_pixels():
    from sklearn.datasets import load_digits

    rows, pixels = DigitsTask(order="rows"), DigitsTask(order="pixels")
    assert np.array_equal(rows.train_index, pixels.train_index)
    for a, b in zip(take(rows, 0, 5), take(pixels, 0, 5), strict=True):
        assert np.array_equal(a.inputs.ravel(), b.inputs.ravel())
        assert a.targets[-1] == b.targets[-1]

    # Row t of image i is step t; pixel values 0..16 become 0..1.
    images = load_digits().images
    i = rows.test_index[0]
    assert np.array_equal(rows.test_inputs[0], images[i] / 16.0)
    assert np.array_equal(pixels.test_inputs[0, :, 0], images[i].ravel() / 16.0)
    assert rows.train_inputs.max() == 1.0 and rows.train_inputs.min() == 0.0


def test_mnist98_preprocessing_against_pixel_loops(mnist):
    task, arrays = mnist
    train = arrays["train-images-idx3-ubyte"]
    test = arrays["t10k-images-idx3-ubyte"]
    # Sums of 8 small integers are exact; one division each side.
    np.testing.assert_allclose(task.train_inputs, mnist98_by_loops(train), rtol=1e-15)
    np.testing.assert_allclose(task.test_inputs, mnist98_by_loops(test), rtol=1e-15)
    assert np.array_equal(task.train_labels, arrays["train-labels-idx1-ubyte"])
    assert np.array_equal(task.test_labels, arrays["t10k-labels-idx1-ubyte"])


def test_mnist98_reads_gzip_files(tmp_path, mnist):
    write_mnist(tmp_path, gz=True)
    task = Mnist98Task(tmp_path)
    assert np.array_equal(task.train_inputs, mnist[0].train_inputs)


def test_mnist98_relative_path_is_relative_to_the_scenario(tmp_path, monkeypatch):
    write_mnist(tmp_path / "data" / "mnist")
    file = mnist_scenario(tmp_path / "data", "mnist")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the working directory must not matter

    task = make_task(load_scenario(file).task)
    assert task.folder == tmp_path / "data" / "mnist"
    assert len(task.train_labels) == TRAIN_IMAGES


# --- the IDX reader -----------------------------------------------------------


def test_read_idx_roundtrip_of_every_type(tmp_path):
    codes = {0x08: "u1", 0x09: "i1", 0x0B: "i2", 0x0C: "i4", 0x0D: "f4", 0x0E: "f8"}
    for code, dtype in codes.items():
        offset = 0 if dtype == "u1" else 60  # negative values where signed
        array = (5 * np.arange(24).reshape(2, 3, 4) - offset).astype(dtype)
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


# --- missing and malformed MNIST files ----------------------------------------


def build_from(file: Path):
    return make_task(load_scenario(file).task)


def check_located(info, file: Path) -> None:
    error = info.value
    assert (error.file, error.line, error.key) == (str(file), PATH_LINE, "task.path")
    assert str(error).startswith(f"{file}:{PATH_LINE}: task.path: ")


def test_missing_mnist_folder_names_file_line_and_key(tmp_path):
    file = mnist_scenario(tmp_path, "no/such/folder")
    looked = str(tmp_path / "no" / "such" / "folder")
    with pytest.raises(
        ConfigError, match="MNIST folder 'no/such/folder' does not"
    ) as info:
        build_from(file)
    check_located(info, file)
    assert looked in info.value.message


@pytest.mark.parametrize(
    "name",
    [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ],
)
def test_missing_mnist_file_is_named(tmp_path, name):
    write_mnist(tmp_path / "data")
    (tmp_path / "data" / name).unlink()
    file = mnist_scenario(tmp_path, "data")
    folder = tmp_path / "data"
    expected = f"expected the MNIST file '{name}' (or '{name}.gz') in '{folder}'"
    with pytest.raises(ConfigError, match=re.escape(expected)) as info:
        build_from(file)
    check_located(info, file)


@pytest.mark.parametrize(
    ("name", "array", "message"),
    [
        ("train-images-idx3-ubyte", np.zeros((12, 28, 27), np.uint8), "28 x 27"),
        ("t10k-images-idx3-ubyte", np.zeros((5, 28, 28), np.int16), "of int16"),
        ("train-labels-idx1-ubyte", np.zeros((12, 1), np.uint8), "12 x 1 array"),
        ("t10k-labels-idx1-ubyte", np.full(5, 10, np.uint8), "labels up to 10"),
        ("t10k-labels-idx1-ubyte", np.zeros(4, np.uint8), "holds 5 images but"),
    ],
)
def test_malformed_mnist_file_is_named(tmp_path, name, array, message):
    write_mnist(tmp_path / "data")
    code = 0x0B if array.dtype == np.int16 else 0x08
    (tmp_path / "data" / name).write_bytes(idx_bytes(array, code))
    file = mnist_scenario(tmp_path, "data")
    with pytest.raises(ConfigError, match=message) as info:
        build_from(file)
    check_located(info, file)


def test_truncated_mnist_file_is_named(tmp_path):
    arrays = write_mnist(tmp_path / "data")
    name = "train-images-idx3-ubyte"
    (tmp_path / "data" / name).write_bytes(idx_bytes(arrays[name])[:-10])
    file = mnist_scenario(tmp_path, "data")
    with pytest.raises(ConfigError, match=f"{name}' is truncated") as info:
        build_from(file)
    check_located(info, file)


def test_cli_missing_mnist_path_exits_2_without_traceback(tmp_path):
    file = mnist_scenario(tmp_path, "nowhere")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fpttsim",
            "run",
            str(file),
            "--out",
            str(tmp_path / "o"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"{file}:{PATH_LINE}: task.path: the MNIST folder 'nowhere'" in proc.stderr
    assert not (tmp_path / "o").exists()


# --- the schema ---------------------------------------------------------------


def write_scenario(tmp_path: Path, task: str) -> Path:
    file = tmp_path / "s.yaml"
    text = f"name: x\ntask:\n{textwrap.indent(task, '  ')}model: {{cell: lru}}\n"
    file.write_text(text, encoding="utf-8")
    return file


@pytest.mark.parametrize(
    ("task", "key", "message"),
    [
        ("kind: mnist1d\nsamples: 505\n", "task.samples", "multiple of 10 .*got 505"),
        (
            "kind: mnist1d\nsamples: 10\ntrain_split: 0.05\n",
            "task.train_split",
            r"0 for training",
        ),
        ("kind: mnist1d\ntrain_split: 1.0\n", "task.train_split", "< 1"),
        ("kind: mnist1d\ndata_seed: 4.0\n", "task.data_seed", "Write 4 without"),
        ("kind: digits\norder: columns\n", "task.order", "'rows', 'pixels'"),
        ("kind: digits\ntrain_split: 0.999\n", "task.train_split", "<= 0.99"),
        ("kind: digits\nlength: 8\n", "task.length", "unknown key 'length'"),
        ("kind: mnist1d\nlength: 1\n", "task.length", ">= 2"),
        ("kind: mnist98\n", "task.path", "required key is missing"),
        ("kind: mnist98\npath: ''\n", "task.path", "non-empty text"),
    ],
)
def test_schema_refuses_bad_values(tmp_path, task, key, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_scenario(write_scenario(tmp_path, task))
    assert info.value.key == key


def test_schema_defaults_are_the_published_mnist1d(tmp_path):
    task = load_scenario(write_scenario(tmp_path, "kind: mnist1d\n")).task
    assert (task.samples, task.train_split, task.data_seed) == (5000, 0.8, 42)


def test_dataset_sections_compare_by_content(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    text = "kind: mnist98\npath: data\n"
    first = load_scenario(write_scenario(tmp_path / "a", text))
    second = load_scenario(write_scenario(tmp_path / "b", text))
    assert first == second and hash(first) == hash(second)
    assert first.task.base_folder != second.task.base_folder


# --- the shipped scenarios ----------------------------------------------------


@pytest.mark.parametrize("name", ["digits-lru", "mnist1d-lru"])
def test_shipped_dataset_scenario_gradcheck_passes(name):
    result = fpttsim.gradcheck(name, {"gradcheck.directions": 2})
    assert result.passed
    assert result.algorithms["fptt"].rel_error < 1e-10
