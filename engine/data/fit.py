"""Does the graph fit its dataset? The checks a training run makes when it starts, made
ahead of it: on the graph's analysis and the dataset's shapes, without torch, so the studio
can list them under Problems while the graph is edited, before Train is pressed.

    fit_problems(graph, analysis, dataset, config) -> tuple[Diagnostic, ...]

Each problem is an error `Diagnostic` on the block concerned, worded to name the fix:
- `data_inputs` on a data Input (or on none): the graph's data Inputs do not match the
  dataset's input arrays. A dataset with one unnamed input feeds a graph with one data Input,
  whatever its id; a dataset with named inputs (digit_pairs' `left` and `right`, an npz
  with `inputs`) feeds each Input the array of its id, and every array needs its Input;
- `data_input_shape` on a data Input: the samples' shape is not the Input's;
- `data_output_shape` on the Output the loss reads: its shape does not fit the classes (or
  the targets) under the loss, e.g. "... outputs (B, 3) but the dataset has 2 classes:
  set fc3's out_features to 2";
- `data_task` (no node): the training section's task or loss contradicts the dataset.

The rules are the trainer's (`engine.runtime.trainer`: `_check_inputs`, which calls
`input_feeds`, and `_loss_function`); `tests/test_data_fit.py` checks that the two agree on every sample and on
broken variants of them. Graphs whose loss is the graph itself ("graph") get the input
check only. Problems the analysis already reports (an unknown shape) are not repeated.

May import `engine.core` and `nodes`; never torch.
"""

from __future__ import annotations

import difflib
import math

from nodes import lookup
from nodes.types import BATCH, fmt_shape

from ..core.analysis import Analysis, Diagnostic
from ..core.config import TrainingConfig
from ..core.graph import Graph, Node
from .datasets import TARGET_INPUT, Dataset, check_input_shape


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
    outputs = [n for n, spec in kinds if spec is not None and spec.kind == "output"]
    problems = []
    # A graph without Inputs is a program that takes no data (the trainer loads none).
    order, mismatch = input_feeds(graph, dataset, loss) if graph_inputs(graph) else ([], None)
    if mismatch is not None:
        problems.append(mismatch)
    for node, feed in zip(graph_inputs(graph), order, strict=True) if mismatch is None else ():
        t = analysis.outputs.get(node.id, {}).get("y")
        if feed is None or t is None:
            continue
        message = check_input_shape(dataset, t.shape[1:], node.name, dataset.input_ids[feed]
                                    if dataset.inputs else None)
        if message:
            problems.append(Diagnostic("data_input_shape", message, node.id))
    if loss != "graph" and outputs:
        problem = _output_problem(graph, analysis, outputs[0].id, dataset, task, loss)
        if problem is not None:
            problems.append(problem)
    return tuple(problems)


def graph_inputs(graph: Graph) -> list[Node]:
    """The graph's Input blocks, in the order the compiled module takes them."""
    return [n for n in graph.nodes if (spec := lookup(n.type)) is not None
            and spec.kind == "input"]


def input_feeds(graph: Graph, dataset: Dataset, loss: str
                ) -> tuple[list[int | None], Diagnostic | None]:
    """What feeds each of the graph's Inputs, in argument order: the index of one of the
    dataset's inputs (`dataset.feeds()`), or None for the Input that receives the targets
    (id `target` under loss "graph"); with the problem (`data_inputs`) when the graph's data
    Inputs and the dataset's arrays do not match, and then no order."""
    inputs = graph_inputs(graph)
    is_target = [n.id == TARGET_INPUT and loss == "graph" for n in inputs]
    data = [n for n, t in zip(inputs, is_target, strict=True) if not t]
    ids = dataset.input_ids
    if not ids:
        if len(data) != 1:
            named = f" ({', '.join(n.id for n in data)})" if data else ""
            fix = ("use a dataset that gives one array per Input id (an npz with the option "
                   "inputs)" if len(data) > 1 else "add an Input block for the data")
            if loss == "graph":
                fix += f"; name the targets' Input '{TARGET_INPUT}'"
            return [], Diagnostic(
                "data_inputs", f"dataset '{dataset.name}' gives one input array, but the graph "
                f"has {len(data)} data Inputs{named}: {fix}", data[1].id if len(data) > 1
                else None)
        return [None if t else 0 for t in is_target], None
    index = {k: i for i, k in enumerate(ids)}
    graph_ids = {n.id for n in data}
    for node in data:
        if node.id not in index:
            free = [k for k in ids if k not in graph_ids]
            hint = difflib.get_close_matches(node.id, free, n=1) or free[:1]
            rename = f": change the Input's id to '{hint[0]}'" if hint else \
                ": remove the Input, or use a dataset that gives it an array"
            return [], Diagnostic(
                "data_inputs", f"Input '{node.id}' has no array in dataset '{dataset.name}', "
                f"which feeds Inputs by id: {', '.join(ids)}{rename}", node.id)
    for k in ids:
        if k not in graph_ids:
            shape = list(dataset.inputs[k].shape)
            return [], Diagnostic(
                "data_inputs", f"dataset '{dataset.name}' gives the array '{k}' but the graph "
                f"has no data Input with id '{k}': add an Input '{k}' of shape {shape}")
    return [None if t else index[n.id] for n, t in zip(inputs, is_target, strict=True)], None


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


__all__ = ["TARGET_INPUT", "fit_problems", "graph_inputs", "input_feeds"]
