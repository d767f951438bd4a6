"""Text from a trained character model: the "generate text" of `dprog generate` and the studio.

A graph can write text when it was trained on the `text` dataset: its data Input takes a
window of character ids (B, T) and one of its Outputs gives next-character logits
(B, T, V) over the dataset's vocabulary (a causal model's logits at step t predict
character t + 1). `generate_text` feeds the prompt's last T characters, left-padded with
spaces, samples the next character from the logits at the last step, appends it, and goes
on; the graph's other Inputs (a loss graph's `target`) get zeros.

Sampling draws from a `torch.Generator` seeded with `seed`, so the same weights, prompt and
seed give the same text. Temperature 0 takes the likeliest character every time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from nodes import lookup
from nodes.types import BATCH

from ..core.analysis import analyze
from ..core.graph import Graph
from ..data.datasets import TEXT_VOCABULARY, decode_text, encode_text

MAX_CHARACTERS = 100_000


class GenerateError(ValueError):
    """The graph cannot write text, or the weights do not fit it; the message says why."""


@dataclass(frozen=True)
class TextModel:
    """Where a graph takes its characters and gives its logits."""

    window: int           # T: the characters the model reads at once
    inputs: tuple         # per forward() argument: (per-sample shape, is the text input)
    logits: int           # which of forward()'s results holds the logits
    vocabulary: str


def text_model(graph: Graph) -> TextModel:
    """How `graph` reads and writes characters; GenerateError when it cannot."""
    dataset = graph.training.get("dataset") if isinstance(graph.training, Mapping) else None
    if not (isinstance(dataset, Mapping) and dataset.get("name") == "text"):
        raise GenerateError("generating text needs a graph trained on the text dataset (its "
                            "training section's dataset name is \"text\")")
    analysis = analyze(graph)
    if not analysis.ok:
        raise GenerateError("the graph has errors: " + "; ".join(str(d) for d in analysis.errors[:3]))
    inputs, text = [], None
    for n in graph.nodes:
        if lookup(n.type).kind != "input":
            continue
        t = analysis.outputs[n.id]["y"]
        is_text = text is None and t.dtype == "long" and t.rank == 2 and n.id != "target"
        if is_text:
            text = t.shape[1]
        inputs.append((tuple(t.shape[1:]), t.dtype, is_text))
    if text is None:
        raise GenerateError("the graph has no Input of character ids (B, T) to feed the prompt to")
    vocab = len(TEXT_VOCABULARY)
    outputs = [analysis.inputs[n.id]["x"] for n in graph.nodes if lookup(n.type).kind == "output"]
    want = (BATCH, text, vocab)
    found = [i for i, t in enumerate(outputs) if t.shape == want and t.dtype == "float"]
    if not found:
        raise GenerateError(f"the graph has no Output of next-character logits (B, {text}, {vocab})")
    return TextModel(text, tuple(inputs), found[0], TEXT_VOCABULARY)


def load_weights(module: nn.Module, path: str | Path) -> None:
    """Load a run folder's weights.pt (or that file itself) into `module`."""
    path = Path(path)
    if path.is_dir():
        path = path / "weights.pt"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise GenerateError(f"{path}: no such file; give a training run folder or its "
                            "weights.pt") from None
    except Exception as e:  # a truncated or foreign file: one line
        raise GenerateError(f"{path}: cannot read ({type(e).__name__}: {e})") from None
    try:
        module.load_state_dict(state)
    except (RuntimeError, ValueError, TypeError, AttributeError) as e:
        raise GenerateError(f"{path}: the weights do not fit this graph ({e})") from None


@torch.no_grad()
def generate_text(graph: Graph, module: nn.Module, prompt: str, length: int, *,
                  temperature: float = 1.0, seed: int = 0) -> str:
    """`length` characters that the model writes after `prompt` (the prompt not included)."""
    model = text_model(graph)
    if not 0 <= length <= MAX_CHARACTERS:
        raise GenerateError(f"length must be in 0..{MAX_CHARACTERS}, not {length}")
    if not (0 <= temperature <= 100):
        raise GenerateError(f"temperature must be in [0, 100], not {temperature}")
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    generator = torch.Generator(device="cpu").manual_seed(seed)
    space = model.vocabulary.index(" ")
    ids = encode_text(prompt).tolist()
    written: list[int] = []
    was_training = module.training
    module.eval()
    try:
        for _ in range(length):
            window = (ids + written)[-model.window:]
            window = [space] * (model.window - len(window)) + window   # left-padded: last is last
            args = [torch.tensor([window], device=device) if is_text
                    else torch.zeros((1, *shape), device=device,
                                     dtype=torch.long if dtype == "long" else torch.float)
                    for shape, dtype, is_text in model.inputs]
            out = module(*args)
            logits = (out if isinstance(out, tuple) else (out,))[model.logits][0, -1]   # (V,)
            written.append(_sample(logits.float().cpu(), temperature, generator))
    finally:
        module.train(was_training)
    return decode_text(written)


def _sample(logits: torch.Tensor, temperature: float, generator: torch.Generator) -> int:
    if temperature == 0:
        return int(logits.argmax())
    probs = torch.softmax(logits / temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))
