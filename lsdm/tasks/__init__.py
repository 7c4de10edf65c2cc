"""Tasks: what the condition x of a pair is, and everything that differs with it.

A task is one module here whose `TASK` is a `Task` subclass; `task:` in params.yaml names the module
(found without importing it, so validating params stays cheap), and its params section, if any, is
read by `TASK.from_params`. The judge, the evaluate stage and the run report call only the hooks
below, so a new task is one module (plus its params section); nothing outside it branches on it.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # not at run time: params validation lists TASKS without torch
    import pandas as pd
    import torch
    from torch import nn

#: Every task's name: the modules of this package.
TASKS: tuple[str, ...] = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")))


class Task:
    """The hooks a task supplies. Defaults fit a task judged as a distribution only."""

    title = ""  # heading of its own section in the run report
    condition_text = ""  # what each sample is conditioned on, as the report says it
    samples_layout = ""  # how the sample grid is laid out, as the report says it
    report_metrics: tuple[str, ...] = ()  # registry keys of its own section in the run report
    grid_rows = 0  # held-out conditions whose samples (every noise seed's) the grid may show

    @classmethod
    def from_params(cls, params) -> Task:
        return cls()

    def check_data(self, images: pd.DataFrame) -> None:
        """Refuse, with a DataError, data this task cannot use (checked by `lsdm check`, on the split prepare
        will make, and again by `prepare`). `images` has columns id, label and split at least."""

    def condition_spec(self, images: pd.DataFrame) -> dict:
        """How G and f encode x (`lsdm.models.matcher.condition_encoder`)."""
        raise NotImplementedError

    def conditions(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The conditions x of a batch of images [B, C, H, W] and their labels [B]."""
        raise NotImplementedError

    def as_evaluated(self, sampler: nn.Module) -> nn.Module:
        """The sampler as every method is judged (e.g. with post-processing the task prescribes)."""
        return sampler

    def draw_metrics(self, fake: torch.Tensor, truth: torch.Tensor, cond: torch.Tensor) -> dict[str, float]:
        """Metrics of one draw (one noise seed) against the ground truth of each condition."""
        return {}

    def across_draws(self, n_draws: int, draw_batches: Callable[[], Iterator[list[torch.Tensor]]]) -> dict[str, Any]:
        """Metrics across the draws of all `n_draws` noise seeds (e.g. how much outputs for one input
        differ). `draw_batches()` regenerates them batch of held-out conditions by batch: the K draws of
        each batch together, never the K whole sets (called only by a task that needs them)."""
        return {}

    def to_truth(self, lpips_fn, fake: torch.Tensor, truth: torch.Tensor) -> dict[str, Any]:
        """Perceptual distances to the ground truth (`lpips_fn` is None when its weights are missing)."""
        return {}

    def grid(self, ref, draw, heads: list[torch.Tensor]) -> tuple[torch.Tensor, int]:
        """The sample grid to save and its row length. `draw(cond, seed)` samples the judged sampler at
        any conditions; `heads` are its samples of the first `grid_rows` held-out conditions, one per
        noise seed."""
        raise NotImplementedError

    def reference_samplers(self, device) -> list[tuple[str, nn.Module]]:
        """Classical baselines judged beside every run on the same test set (e.g. bicubic)."""
        return []

    def extra_results(self, ref, sampler: nn.Module, judge) -> dict[str, Any]:
        """More of `evaluate`'s results for LSDM's `sampler` (`judge(ref, sampler)` judges another one)."""
        return {}

    def report_columns(self, e: dict[str, Any]) -> dict[str, dict]:
        """Columns of the task's report table beside LSDM's and the reference samplers'."""
        return {}

    def report_note(self, e: dict[str, Any]) -> str:
        return ""


def task_class(name: str) -> type[Task]:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; allowed: {list(TASKS)}")
    return importlib.import_module(f"lsdm.tasks.{name}").TASK


def make_task(params) -> Task:
    """The task named by `params.task`, configured by its own params section where it has one."""
    return task_class(params.task).from_params(params)
