"""Data sources: streaming sequence tasks."""

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
    "SineTask",
    "Task",
    "Window",
    "make_task",
]
