"""TensorBoard, the ecosystem's convention: a run's scalars, histograms and per-wire gradient
RMS as event files in `<run folder>/tensorboard/`, through `torch.utils.tensorboard`.

Optional: the `tensorboard` package (`pip install 'dprog[tensorboard]'`). Building a writer
without it raises ImportError with that command, which the trainer reports as a config
failure before the first step.

Tags: `loss/train` and `lr` per step (`accuracy/train` for classification),
`loss/val`, `accuracy/val` per evaluation, `gradflow/<edge key>` (the wire's gradient RMS)
per gradient-flow snapshot, and `weights/<node>` and `grads/<node>` histograms of every
block's parameters at the gradient-flow steps (`histograms`, called by the trainer after
backward, before the optimizer step).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..core.events import EvalMetrics, GradFlowSnapshot, LiveEdit, StepMetrics
from ..core.runs import TENSORBOARD_DIR
from .gradflow import node_parameters

INSTALL = "pip install 'dprog[tensorboard]'   (or: pip install tensorboard)"


def _summary_writer():
    try:
        import tensorboard  # noqa: F401  torch.utils.tensorboard needs it, and says so less clearly
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ImportError(f"tensorboard is not installed, so the run cannot write TensorBoard "
                          f"files: {INSTALL}; or train without --tensorboard") from None
    return SummaryWriter


class TensorBoardWriter:
    """Writes one run's TensorBoard files in `<run folder>/tensorboard/` as events arrive."""

    def __init__(self, run_folder: str | Path):
        self.folder = Path(run_folder) / TENSORBOARD_DIR
        self.writer = _summary_writer()(log_dir=str(self.folder))

    def put(self, event) -> None:
        w = self.writer
        if isinstance(event, StepMetrics):
            w.add_scalar("loss/train", event.loss, event.step)
            w.add_scalar("lr", event.lr, event.step)
            if event.accuracy is not None:
                w.add_scalar("accuracy/train", event.accuracy, event.step)
        elif isinstance(event, EvalMetrics):
            w.add_scalar("loss/val", event.val_loss, event.step)
            if event.val_accuracy is not None:
                w.add_scalar("accuracy/val", event.val_accuracy, event.step)
        elif isinstance(event, GradFlowSnapshot):
            for key, flow in event.edges.items():
                if flow.grad_rms is not None:
                    w.add_scalar(f"gradflow/{key}", flow.grad_rms, event.step)
        elif isinstance(event, LiveEdit):
            w.add_text("live_edits", f"step {event.step}: {event.setting} {event.old} → "
                       f"{event.new}", event.step)

    @torch.no_grad()
    def histograms(self, step: int, module: nn.Module, node_modules: Mapping[str, str]) -> None:
        """Each block's weights and gradients (all its parameters together) at `step`."""
        for path, params in node_parameters(module, node_modules).items():
            if not params:
                continue
            self.writer.add_histogram(f"weights/{path}",
                                      torch.cat([p.detach().reshape(-1) for p in params]).cpu(),
                                      step)
            grads = [p.grad.reshape(-1) for p in params if p.grad is not None]
            if grads:
                self.writer.add_histogram(f"grads/{path}", torch.cat(grads).cpu(), step)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()
