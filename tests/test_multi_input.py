"""Several data Inputs (issue 12, item 7): datasets that give one array per Input id (the
Dataset record, an .npz with `inputs`, the built-in digit_pairs), the trainer feeding each
Input the array of its id, the fit check agreeing with the trainer's refusals, the pairs_mlp
sample past its trivial baseline, checkpoints, and `dprog train` with the train.py it writes.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import SAMPLES_DIR, build

from engine.cli import main
from engine.core.analysis import analyze
from engine.core.config import TrainingConfig
from engine.core.graph import Graph, set_param
from engine.data.datasets import Dataset, DatasetError, InputSamples, load_dataset
from engine.data.fit import fit_problems
from engine.runtime.trainer import Trainer, TrainingError, train
from tests.test_run_scripts import run_alone

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PAIRS = SAMPLES_DIR / "pairs_mlp.json"


def error_of(spec: dict, **kwargs) -> str:
    with pytest.raises(DatasetError) as info:
        load_dataset(spec, **kwargs)
    return str(info.value)


def with_training(graph: Graph, **changes) -> Graph:
    return replace(graph, training={**graph.training, **changes})


def small_pairs(graph: Graph, n_samples: int = 400, **changes) -> Graph:
    dataset = {**graph.training["dataset"], "n_samples": n_samples}
    return with_training(graph, dataset=dataset, **changes)


# ---- the Dataset record ---------------------------------------------------------------------------

def test_a_dataset_with_several_inputs_checks_each_of_them():
    y = np.array([0, 1, 0, 1])
    a, b = np.zeros((4, 3), np.float32), np.ones((4, 2, 2), np.float32)
    ok = dict(name="t", task="classification", x_train=a, y_train=y, x_val=a, y_val=y,
              num_classes=2, input_shape=(3,), target_shape=(), description="t",
              inputs={"a": InputSamples(a, a), "b": InputSamples(b, b)})
    data = Dataset(**ok)
    assert data.input_ids == ("a", "b") and data.inputs["b"].shape == (2, 2)
    assert [k for k, _, _ in data.feeds()] == ["a", "b"] and not data.is_2d
    points = np.zeros((4, 2), np.float32)   # 2-D, but two of them: no decision boundary
    assert not Dataset(**{**ok, "x_train": points, "x_val": points, "input_shape": (2,),
                          "inputs": {"p": InputSamples(points, points),
                                     "q": InputSamples(points, points)}}).is_2d
    single = Dataset(**{**ok, "inputs": {}})
    assert single.input_ids == () and [k for k, _, _ in single.feeds()] == [None]
    for inputs, words in (
            ({"a": InputSamples(a.copy(), a), "b": InputSamples(b, b)}, "first input's"),
            ({"a": InputSamples(a, a), "1b": InputSamples(b, b)}, "not an Input id"),
            ({"a": InputSamples(a, a), "target": InputSamples(b, b)}, "kept for the targets"),
            ({"a": InputSamples(a, a), "b": InputSamples(b[:3], b)}, "3 samples"),
            ({"a": InputSamples(a, a), "b": InputSamples(b, b.astype(np.float64))}, "float32"),
            ({"a": InputSamples(a, a), "b": InputSamples(b, np.ones((4, 4), np.float32))},
             "shape")):
        with pytest.raises(DatasetError, match=words):
            Dataset(**{**ok, "inputs": inputs})


# ---- digit_pairs ----------------------------------------------------------------------------------

def test_digit_pairs_are_balanced_seeded_and_labelled_by_their_digits():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    index = {row.tobytes(): i for i, row in enumerate((bunch.data / 16).astype(np.float32))}
    data = load_dataset({"name": "digit_pairs", "n_samples": 600, "flatten": True}, seed=3)
    assert data.input_ids == ("left", "right") and data.class_names == ("different", "same")
    assert data.inputs["left"].shape == data.inputs["right"].shape == (64,)
    assert (len(data.y_train), len(data.y_val)) == (480, 120)
    seen = {}
    for part, y in (("train", data.y_train), ("val", data.y_val)):
        left = np.array([index[r.tobytes()] for r in getattr(data.inputs["left"], part)])
        right = np.array([index[r.tobytes()] for r in getattr(data.inputs["right"], part)])
        np.testing.assert_array_equal(y, bunch.target[left] == bunch.target[right])
        assert y.sum() * 2 == len(y)                  # balanced
        assert (left != right).all()                  # "same" pairs are two different images
        seen[part] = set(left) | set(right)
    assert not seen["train"] & seen["val"]            # validation images are never trained on
    again = load_dataset({"name": "digit_pairs", "n_samples": 600, "flatten": True}, seed=3)
    other = load_dataset({"name": "digit_pairs", "n_samples": 600, "flatten": True}, seed=4)
    assert np.array_equal(again.inputs["right"].val, data.inputs["right"].val)
    assert not np.array_equal(other.inputs["right"].val, data.inputs["right"].val)
    images = load_dataset({"name": "digit_pairs", "n_samples": 600}, seed=3)
    assert images.input_shape == images.inputs["right"].shape == (1, 8, 8)
    np.testing.assert_array_equal(images.inputs["right"].train.reshape(-1, 64),
                                  data.inputs["right"].train)


def test_digit_pairs_options_are_checked():
    assert "at least 10" in error_of({"name": "digit_pairs", "n_samples": 5})
    assert "at most 100,000" in error_of({"name": "digit_pairs", "n_samples": 100_001})
    assert "did you mean 'flatten'" in error_of({"name": "digit_pairs", "flaten": True})
    tiny = load_dataset({"name": "digit_pairs", "n_samples": 10, "val_fraction": 0.01})
    assert (len(tiny.y_train), len(tiny.y_val)) == (9, 1)


# ---- npz: one array per Input id --------------------------------------------------------------------

def test_npz_gives_one_array_per_input_id_row_for_row(tmp_path):
    n = 40
    a = np.arange(n * 3, dtype=np.float64).reshape(n, 3)
    b = np.repeat(a[:, :1], 4, axis=1).reshape(n, 2, 2)    # b's row i holds a[i, 0]
    np.savez(tmp_path / "two.npz", a=a, b=b, y=np.arange(n) % 2)
    data = load_dataset({"name": "npz", "path": "two.npz", "inputs": "a, b"},
                        base_dir=tmp_path)
    assert data.input_ids == ("a", "b") and data.inputs["b"].shape == (2, 2)
    assert data.x_train is data.inputs["a"].train and data.input_shape == (3,)
    for part in ("train", "val"):
        rows_a, rows_b = getattr(data.inputs["a"], part), getattr(data.inputs["b"], part)
        np.testing.assert_array_equal(rows_b[:, 0, 0], rows_a[:, 0])   # split alike
    ys = np.concatenate([data.y_train, data.y_val])
    firsts = np.concatenate([data.inputs["a"].train, data.inputs["a"].val])[:, 0]
    np.testing.assert_array_equal(ys, (firsts / 3).astype(int) % 2)
    assert data.spec["inputs"] == "a, b"   # the spec rebuilds it
    assert np.array_equal(load_dataset(data.spec, base_dir=tmp_path).inputs["b"].val,
                          data.inputs["b"].val)


def test_npz_inputs_refusals_name_the_place_and_the_fix(tmp_path):
    n = 40
    a, b = np.zeros((n, 3)), np.zeros((n, 2))
    np.savez(tmp_path / "two.npz", a=a, b=b, y=np.arange(n) % 2)
    spec = {"name": "npz", "path": str(tmp_path / "two.npz")}
    message = error_of(spec)   # no x: the archive's arrays are named, and so is the fix
    assert "no array 'x'" in message and 'set the option inputs to "a,b"' in message
    assert "no array 'c'" in error_of({**spec, "inputs": "a,c"})
    assert "targets' array" in error_of({**spec, "inputs": "a,y"})
    assert "listed twice" in error_of({**spec, "inputs": "a,a"})
    assert "not an Input id" in error_of({**spec, "inputs": "a,b-c"})
    assert "kept for the targets" in error_of({**spec, "inputs": "a,target"})
    assert "not both" in error_of({**spec, "inputs": "a,b", "x": "a"})
    assert "list the Input ids" in error_of({**spec, "inputs": " "})
    np.savez(tmp_path / "short.npz", a=a, b=b[:39], y=np.arange(n) % 2)
    message = error_of({**spec, "path": str(tmp_path / "short.npz"), "inputs": "a,b"})
    assert "short.npz['a'] has 40 samples" in message and "short.npz['b'] has 39" in message
    np.savez(tmp_path / "text.npz", a=a, b=np.array(["x"] * n), y=np.arange(n) % 2)
    message = error_of({**spec, "path": str(tmp_path / "text.npz"), "inputs": "a,b"})
    assert "text.npz['b']" in message and "features must be numbers" in message


class Payload:
    """Unpickling this runs code: it creates the marker file. Loading must never do that."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def test_a_pickle_in_any_input_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "pwned"
    np.savez(tmp_path / "evil.npz", a=np.zeros((40, 3)),
             b=np.array([Payload(marker)] * 40, dtype=object), y=np.arange(40) % 2)
    message = error_of({"name": "npz", "path": str(tmp_path / "evil.npz"), "inputs": "a,b"})
    assert "evil.npz['b']" in message and "Python objects" in message
    assert not marker.exists()
    pickle.loads(pickle.dumps(Payload(marker)))   # the payload is live
    assert marker.exists()


def test_the_arrays_of_one_npz_are_bounded_together(tmp_path, monkeypatch):
    from engine.data import datasets

    monkeypatch.setattr(datasets, "MAX_DATASET_VALUES", 1000)
    np.savez(tmp_path / "big.npz", a=np.zeros((40, 10)), b=np.zeros((40, 10)),
             c=np.zeros((40, 10)), y=np.arange(40) % 2)
    message = error_of({"name": "npz", "path": str(tmp_path / "big.npz"), "inputs": "a,b,c"})
    assert "1,240 values" in message and "limit 1,000" in message


# ---- the trainer ------------------------------------------------------------------------------------

def two_input_graph(tmp_path, order=("b", "a")) -> Graph:
    """Inputs a (3,) and b (5,), listed in `order`, from an npz with one array per id."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 3)), rng.normal(size=(200, 5))
    np.savez(tmp_path / "ab.npz", a=a, b=b, y=((a[:, 0] + b[:, 0]) > 0).astype(np.int64))
    shapes = {"a": [3], "b": [5]}
    return build([*((k, "input", {"shape": shapes[k]}) for k in order),
                  ("fa", "linear", {"out_features": 8}), ("fb", "linear", {"out_features": 8}),
                  ("join", "concat", {}), ("act", "tanh", {}),
                  ("head", "linear", {"out_features": 2}), ("out", "output", {})],
                 ["a -> fa", "b -> fb", "fa -> join.x0", "fb -> join.x1", "join -> act",
                  "act -> head", "head -> out"],
                 training={"dataset": {"name": "npz", "path": str(tmp_path / "ab.npz"),
                                       "inputs": "a,b"},
                           "epochs": 15, "lr": 0.03, "batch_size": 32, "gradflow_every": 5})


def test_each_input_gets_the_array_of_its_id_and_the_model_learns(tmp_path):
    graph = two_input_graph(tmp_path)   # Input b comes first: forward(b, a)
    trainer, events = train(graph)
    assert type(events[-1]).__name__ == "Finished", events[-1]
    args = trainer._inputs(trainer.xs_val, trainer.y_val)
    assert torch.equal(args[0], torch.from_numpy(trainer.data.inputs["b"].val))
    assert torch.equal(args[1], torch.from_numpy(trainer.data.inputs["a"].val))
    evals = [e for e in events if type(e).__name__ == "EvalMetrics"]
    assert evals[-1].val_loss < 0.6 * evals[0].val_loss
    assert evals[-1].val_accuracy > 0.85   # a linear rule: chance is about 50%
    flows = [e for e in events if type(e).__name__ == "GradFlowSnapshot"]
    assert flows and {"a.y->fa.x", "b.y->fb.x"} <= set(flows[-1].edges)
    assert not any(type(e).__name__ == "DecisionBoundary" for e in events)
    reading = trainer.read_wire("b.y->fb.x")   # a wire from the first argument, read now
    assert reading.activation.shape == (32, 5) and reading.heatmap is None


def test_a_two_input_run_resumes_from_its_checkpoint_exactly(tmp_path):
    graph = with_training(two_input_graph(tmp_path), steps=24, epochs=1)
    whole, _ = train(graph)
    train(with_training(graph, steps=12), out_dir=tmp_path / "run")
    rest, events = train(graph, resume_from=tmp_path / "run")
    assert type(events[-1]).__name__ == "Finished" and rest.step == 24
    for key, value in whole.module.state_dict().items():
        assert torch.equal(value, rest.module.state_dict()[key]), key


def problem_and_refusal(graph: Graph):
    config = TrainingConfig.from_mapping(graph.training)
    found = fit_problems(graph, analyze(graph), load_dataset(config.dataset, config.seed), config)
    with pytest.raises(TrainingError) as info:
        Trainer(graph).setup()
    assert len(found) == 1 and found[0].node == info.value.node, (found, info.value)
    return found[0], info.value


def test_inputs_that_do_not_match_the_arrays_are_refused_naming_input_array_and_fix(samples):
    graph = small_pairs(samples["pairs_mlp"])
    assert fit_problems(graph, analyze(graph), load_dataset(graph.training["dataset"]),
                        TrainingConfig.from_mapping(graph.training)) == ()
    renamed = Graph(tuple(replace(n, id="lft") if n.id == "left" else n for n in graph.nodes),
                    tuple(replace(e, src=("lft", "y")) if e.src[0] == "left" else e
                          for e in graph.edges), name=graph.name, training=graph.training)
    found, refused = problem_and_refusal(renamed)
    assert found.code == "data_inputs" and found.node == "lft"
    assert "Input 'lft' has no array in dataset 'digit_pairs'" in str(refused)
    assert "change the Input's id to 'left'" in found.message
    one = build([("left", "input", {"shape": [64]}), ("head", "linear", {"out_features": 2}),
                 ("out", "output", {})], ["left -> head", "head -> out"],
                training=graph.training)
    found, refused = problem_and_refusal(one)
    assert found.code == "data_inputs" and "gives the array 'right'" in str(refused)
    assert "add an Input 'right' of shape [64]" in found.message
    found, refused = problem_and_refusal(set_param(graph, "right", "shape", [32]))
    assert found.code == "data_input_shape" and found.node == "right"
    assert "(64,) for 'right'" in str(refused) and "set the Input's shape to [64]" in str(refused)
    found, refused = problem_and_refusal(with_training(graph, dataset={"name": "moons"}))
    assert found.code == "data_inputs" and "gives one input array" in str(refused)
    assert "2 data Inputs (left, right)" in found.message


# ---- the sample and the command line ----------------------------------------------------------------

def test_pairs_mlp_beats_the_coin_flip(samples):
    """The trivial baseline: balanced pairs, so always answering "same" (or a coin) is right
    half the time. 8 epochs reach 84-88% on seeds 0-2; the sample's own 20 about 91%."""
    graph = with_training(samples["pairs_mlp"], epochs=8)
    _, events = train(graph)
    final = events[-1]
    assert type(final).__name__ == "Finished", final
    assert final.metrics.val_accuracy > 0.7, final.metrics


def test_dprog_train_on_pairs_and_its_train_py_repeat_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(PAIRS), "--steps", "30", "--out", str(out), "--device", "cpu"]) == 0
    assert "val accuracy" in capsys.readouterr().out
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["step"] == 30
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert run_alone(out / "train.py", elsewhere) == metrics


def test_dprog_train_data_keeps_the_input_ids_for_another_npz(tmp_path, capsys):
    from engine.core.fileformat import save_graph

    graph = two_input_graph(tmp_path)
    save_graph(graph, tmp_path / "ab.json")
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "more.npz", a=rng.normal(size=(60, 3)), b=rng.normal(size=(60, 5)),
             y=np.arange(60) % 2)
    assert main(["train", str(tmp_path / "ab.json"), "--data", str(tmp_path / "more.npz"),
                 "--steps", "4", "--out", str(tmp_path / "run"), "--device", "cpu"]) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["dataset"]["inputs"] == "a,b" and config["dataset"]["path"].endswith("more.npz")
