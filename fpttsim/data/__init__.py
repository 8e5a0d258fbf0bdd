"""Data sources: streaming sequence tasks, synthetic or over a dataset."""

from fpttsim.data.datasets import (
    DatasetTask,
    DigitsTask,
    Mnist1dTask,
    Mnist98Task,
)
from fpttsim.data.idx import IdxError, read_idx
from fpttsim.data.tasks import (
    AddingTask,
    CopyTask,
    SineTask,
    Task,
    Window,
    make_task,
)

__all__ = [
    "AddingTask",
    "CopyTask",
    "DatasetTask",
    "DigitsTask",
    "IdxError",
    "Mnist1dTask",
    "Mnist98Task",
    "SineTask",
    "Task",
    "Window",
    "make_task",
    "read_idx",
]
