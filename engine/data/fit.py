"""Does the graph fit its dataset? The checks a training run makes when it starts, made
ahead of it: on the graph's analysis and the dataset's shapes, without torch, so the studio
can list them under Problems while the graph is edited, before Train is pressed.

    fit_problems(graph, analysis, dataset, config) -> tuple[Diagnostic, ...]

Each problem is an error `Diagnostic` on the block concerned, worded to name the fix:
- `data_input_shape` on the data Input: the samples' shape is not the Input's;
- `data_output_shape` on the Output the loss reads: its shape does not fit the classes (or
  the targets) under the loss, e.g. "... outputs (B, 3) but the dataset has 2 classes:
  set fc3's out_features to 2";
- `data_task` (no node): the training section's task or loss contradicts the dataset.

The rules are the trainer's (`engine.runtime.trainer`: `_check_inputs` and
`_loss_function`); `tests/test_data_fit.py` checks that the two agree on every sample and on
broken variants of them. Graphs whose loss is the graph itself ("graph") get the input
check only. Problems the analysis already reports (an unknown shape) are not repeated.

May import `engine.core` and `nodes`; never torch.
"""

from __future__ import annotations

import math

from nodes import lookup
from nodes.types import BATCH, fmt_shape

from ..core.analysis import Analysis, Diagnostic
from ..core.config import TrainingConfig
from ..core.graph import Graph
from .datasets import Dataset, check_input_shape

TARGET_INPUT = "target"   # with loss "graph", the Input that receives the targets


def fit_problems(graph: Graph, analysis: Analysis, dataset: Dataset,
                 config: TrainingConfig) -> tuple[Diagnostic, ...]:
    """Where `graph` (analysed as `analysis`) does not fit `dataset` under `config`'s task
    and loss; empty when it fits, or when the analysis cannot tell yet."""
    task = dataset.task if config.task == "auto" else config.task
    if task != dataset.task:
        return (Diagnostic("data_task", f"the training task is {config.task} but dataset "
                           f"'{dataset.name}' is a {dataset.task} task: set the task to auto "
                           f"or {dataset.task}"),)
    loss = config.loss if config.loss != "auto" else (
        "cross_entropy" if task == "classification" else "mse")
    kinds = [(n, lookup(n.type)) for n in graph.nodes]
    inputs = [n for n, spec in kinds if spec is not None and spec.kind == "input"
              and not (n.id == TARGET_INPUT and loss == "graph")]
    outputs = [n for n, spec in kinds if spec is not None and spec.kind == "output"]
    problems = []
    if len(inputs) == 1:
        t = analysis.outputs.get(inputs[0].id, {}).get("y")
        message = check_input_shape(dataset, t.shape[1:], inputs[0].name) if t else None
        if message:
            problems.append(Diagnostic("data_input_shape", message, inputs[0].id))
    if loss != "graph" and outputs:
        problem = _output_problem(graph, analysis, outputs[0].id, dataset, task, loss)
        if problem is not None:
            problems.append(problem)
    return tuple(problems)


def _output_problem(graph: Graph, analysis: Analysis, output: str, dataset: Dataset,
                    task: str, loss: str) -> Diagnostic | None:
    t = analysis.inputs.get(output, {}).get("x")
    if t is None or not t.shape or t.shape[0] != BATCH:
        return None   # unknown, or no batch dim: the analysis (or the run) says so
    per_sample = tuple(t.shape[1:])
    out = fmt_shape(t.shape)
    if task == "classification":
        n = dataset.num_classes
        if per_sample == (n,) or (loss == "bce_with_logits" and n <= 2 and
                                  math.prod(per_sample) == 1):
            return None
        if loss not in ("cross_entropy", "mse", "l1", "bce_with_logits"):
            return None
        return Diagnostic("data_output_shape", f"the model outputs {out} but dataset "
                          f"'{dataset.name}' has {n} classes, so {loss} needs (B, {n}): "
                          + _set_width(graph, output, n), output, "x")
    if loss == "cross_entropy":
        return Diagnostic("data_task", f"cross_entropy needs class labels, but dataset "
                          f"'{dataset.name}' is a regression task: use the loss mse or l1")
    want = math.prod(dataset.target_shape)
    if math.prod(per_sample) == want:
        return None
    targets = fmt_shape((BATCH, *dataset.target_shape))
    return Diagnostic("data_output_shape", f"the model outputs {out} but the targets of "
                      f"dataset '{dataset.name}' are {targets}: " + _set_width(graph, output, want),
                      output, "x")


def _set_width(graph: Graph, output: str, width: int) -> str:
    """How to make the block feeding the Output give `width` values per sample."""
    src = next((e.src[0] for e in graph.edges if e.dst == (output, "x")), None)
    node = graph.get(src) if src else None
    spec = lookup(node.type) if node is not None else None
    if spec is not None and spec.param("out_features") is not None:
        return f"set {node.name}'s out_features to {width}"
    return f"end the model with a Linear of out_features={width}"


__all__ = ["fit_problems"]
