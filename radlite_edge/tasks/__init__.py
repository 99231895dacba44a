"""The 9 RadLite radiology tasks: registry, parsers, metrics, rules, synthetic suite, loaders."""

from .registry import SYSTEM_PROMPT, TASKS, Task, get_task, sample_score, select_tasks
from .samples import Sample

__all__ = ["SYSTEM_PROMPT", "TASKS", "Task", "Sample", "get_task", "sample_score", "select_tasks"]
