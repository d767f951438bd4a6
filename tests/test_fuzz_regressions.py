"""Every bug the graph-file fuzzer found, as the smallest graph that showed it.

Each case was one of the forbidden outcomes (an uncaught exception, a graph that validated
but failed to compile or run, a shape the analysis got wrong); each now either validates
and runs with exactly the promised shapes ("ok"), or is refused with the diagnostic code
given here. The fix is named in the comment beside each case.
"""

from __future__ import annotations

import json
import random
import sys

import pytest
from fuzzing.generate import nested_loops
from fuzzing.pipeline import judge
from helpers import build

import engine
from engine.core.fileformat import GraphFileError, dumps, loads


def ok(graph) -> None:
    """Validates, compiles, runs on example inputs with the promised shapes, checks clean."""
    outcome = judge(dumps(graph), seconds=60)
    assert outcome.kind == "ok", outcome


def refused(graph, code: str) -> None:
    errors = [d for d in engine.validate(graph) if d.severity == "error"]
    assert [d.code for d in errors] == [code], [str(d) for d in errors]
    outcome = judge(dumps(graph), seconds=60)   # the CLI and the round trip agree
    assert (outcome.kind, outcome.detail) == ("invalid", code)


def body(*specs, wires=()):
    return build(list(specs), list(wires))


IDENTITY = body(("x", "body_input"), ("y", "body_output"), wires=["x -> y"])


# --- loops -----------------------------------------------------------------------------


def test_repeat_loop_with_a_plain_output_generates():
    # A repeat loop with a plain output keeps its last step; only a scan collects steps.
    tanh = body(("x", "body_input"), ("t", "tanh"), ("y", "body_output"), wires=["x -> t", "t -> y"])
    ok(build([("x", "input", {"shape": [3]}), ("lp", "loop", {"count": 2}, {"body": tanh}),
              ("o", "output")], ["x -> lp.x", "lp.y -> o"]))


def test_loop_params_left_out_take_their_defaults():
    # library.loop_ports read role and mode raw: a body output without "role" (default
    # "output") gave the loop no port, and analysis crashed zipping types with ports.
    out_no_role = build([("x", "body_input"), ("e", "embedding", {"num_embeddings": 3}),
                         ("y", "body_output", {})], ["x -> e", "e -> y"])
    ok(build([("x", "input", {"shape": [3], "dtype": "long"}),
              ("lp", "loop", {"count": 1}, {"body": out_no_role}), ("o", "output")],
             ["x -> lp.x", "lp.y -> o"]))
    # mode left out is "repeat", so count_from=input needs a count port.
    ok(build([("x", "input", {"shape": [3]}), ("c", "mean", {"dim": -1}),
              ("lp", "loop", {"count_from": "input", "max_iters": 3}, {"body": IDENTITY}),
              ("o", "output")], ["x -> c", "c -> lp.count", "x -> lp.x", "lp.y -> o"]))


def test_loop_count_that_is_nan_runs_once():
    # int(nan) raised in forward; codegen now nan_to_num()s the count.
    ok(build([("x", "input", {"shape": [3]}),
              ("lg", "expression", {"expr": "torch.log(a) * 0", "inputs": 1}),
              ("c", "mean", {"dim": -1}),
              ("lp", "loop", {"count_from": "input", "max_iters": 3}, {"body": IDENTITY}),
              ("o", "output")], ["x -> lg.a", "lg -> c", "c -> lp.count", "x -> lp.x", "lp.y -> o"]))


def state_body():
    return body(("h", "body_input", {"role": "state", "shape": [4]}), ("x", "body_input"),
                ("fc", "linear", {"out_features": 4}),
                ("h_next", "body_output", {"role": "state", "state": "h"}),
                wires=["h -> fc", "fc -> h_next"])


def test_zero_state_takes_size_and_dtype_from_a_batched_float_input():
    # The zeros copied the first input: long ids gave a long state (Linear then refused
    # it), an unbatched constant gave them its own first dim.
    ok(build([("ids", "input", {"shape": [3], "dtype": "long"}),
              ("lp", "loop", {"count": 2}, {"body": state_body()}), ("o", "output")],
             ["ids -> lp.x", "lp.h -> o"]))
    two = body(("h", "body_input", {"role": "state", "shape": [4]}), ("c", "body_input"),
               ("x", "body_input"), ("fc", "linear", {"out_features": 4}),
               ("h_next", "body_output", {"role": "state", "state": "h"}),
               wires=["h -> fc", "fc -> h_next"])
    ok(build([("k", "constant", {"shape": [5]}), ("x", "input", {"shape": [2]}),
              ("lp", "loop", {"count": 2}, {"body": two}), ("o", "output")],
             ["k -> lp.c", "x -> lp.x", "lp.h -> o"]))


def test_zero_state_without_a_batched_input_is_refused():
    refused(build([("k", "constant", {"shape": [5]}),
                   ("lp", "loop", {"count": 2}, {"body": state_body()}), ("o", "output")],
                  ["k -> lp.x", "lp.h -> o"]), "region_signature")


def halting_body(extra=(), wires=()):
    return body(("x", "body_input"), ("s", "mean", {"dim": -1, "keepdim": True}),
                ("halt", "body_output", {"role": "halt"}), *extra,
                wires=["x -> s", "s -> halt", *wires])


def test_while_loop_needs_a_batched_input_and_batched_states():
    # iterations = x.new_zeros(x.shape[0]) took an unbatched input's size; a per-sample
    # where() against an unbatched state broadcast wrongly or failed.
    refused(build([("k", "constant", {"shape": [5]}),
                   ("lp", "loop", {"mode": "while", "halt": "batch"}, {"body": halting_body()}),
                   ("o", "output")], ["k -> lp.x", "lp.iterations -> o"]), "region_signature")
    stateful = body(("x", "body_input"), ("h", "body_input", {"role": "state"}),
                    ("s", "mean", {"dim": -1, "keepdim": True}),
                    ("halt", "body_output", {"role": "halt"}),
                    ("h_next", "body_output", {"role": "state", "state": "h"}),
                    wires=["x -> s", "s -> halt", "h -> h_next"])
    refused(build([("x", "input", {"shape": [5]}), ("k", "constant", {"shape": [3]}),
                   ("lp", "loop", {"mode": "while"}, {"body": stateful}), ("o", "output")],
                  ["x -> lp.x", "k -> lp.h", "lp.h -> o"]), "shape_mismatch")


def test_halt_score_and_branch_condition_must_be_float():
    # .mean() refuses integer tensors: a long halt score or hard-branch condition failed.
    long_halt = body(("x", "body_input"), ("halt", "body_output", {"role": "halt"}),
                     wires=["x -> halt"])
    refused(build([("ids", "input", {"shape": [1], "dtype": "long"}), ("f", "input", {"shape": [2]}),
                   ("lp", "loop", {"mode": "while", "halt": "batch"}, {"body": long_halt}),
                   ("o", "output")], ["ids -> lp.x", "lp.iterations -> o"]), "type_mismatch")
    refused(build([("ids", "input", {"shape": [1], "dtype": "long"}), ("f", "input", {"shape": [2]}),
                   ("br", "branch", {"mode": "hard"}, {"then": IDENTITY, "else": IDENTITY}),
                   ("o", "output")], ["ids -> br.cond", "f -> br.x", "br.y -> o"]), "type_mismatch")


def test_bodies_that_return_nothing_are_refused():
    # The generated "= self.body(...)" with no targets was a SyntaxError in compile().
    nothing = body(("x", "body_input"), ("t", "tanh"), wires=["x -> t"])
    refused(build([("x", "input", {"shape": [3]}), ("lp", "loop", {}, {"body": nothing}),
                   ("o", "output")], ["x -> lp.x", "x -> o"]), "region_signature")
    refused(build([("x", "input", {"shape": [3]}), ("c", "select", {"index": 0}),
                   ("br", "branch", {}, {"then": nothing, "else": nothing}), ("o", "output")],
                  ["x -> c", "c -> br.cond", "x -> br.x", "x -> o"]), "region_signature")


def test_scan_output_needs_the_dim_it_is_stacked_along():
    # torch.stack(steps, dim=2) of (B,) steps raised; the analysis said (B, L).
    steps = body(("s", "body_input", {"role": "sequence"}), ("m", "mean", {"dim": -1}),
                 ("y", "body_output"), wires=["s -> m", "m -> y"])
    refused(build([("x", "input", {"shape": [4, 5]}), ("lp", "loop", {"mode": "scan", "dim": 2},
                                                        {"body": steps}),
                   ("o", "output")], ["x -> lp.s", "lp.y -> o"]), "shape_mismatch")


def test_loop_nest_that_would_run_for_hours_is_refused():
    # Sixteen nested 3-step loops validated and ran 43 million body steps.
    doc = nested_loops(random.Random(0), 16, 3)
    errors = [d for d in engine.validate(loads(json.dumps(doc))) if d.severity == "error"]
    assert [d.code for d in errors] == ["too_large"]
    ok(loads(json.dumps(nested_loops(random.Random(0), 4, 3))))


# --- shapes and dtypes the analysis got wrong ------------------------------------------


def test_split_into_one_section_is_a_tensor():
    # torch.split returns a 1-tuple; Linear then got a tuple.
    ok(build([("x", "input", {"shape": [4]}), ("s", "split", {"sections": [4]}),
              ("fc", "linear", {"out_features": 2}), ("o", "output")],
             ["x -> s", "s.y0 -> fc", "fc -> o"]))


def test_batch_dim_must_stay_in_front():
    # (B,) + (3, 1) broadcast to (3, B); Linear then read "B" as in_features and the
    # analysis crashed with TypeError. (B, K) @ (B, K, N) gave (B, B, N) and wrong counts.
    refused(build([("x", "input", {"shape": []}), ("k", "constant", {"shape": [3, 1]}),
                   ("add", "add"), ("fc", "linear", {"out_features": 2}), ("o", "output")],
                  ["x -> add.a", "k -> add.b", "add -> fc", "fc -> o"]), "shape_mismatch")
    refused(build([("a", "input", {"shape": [3]}), ("b", "input", {"shape": [3, 4]}),
                   ("mm", "matmul"), ("o", "output")], ["a -> mm.a", "b -> mm.b", "mm -> o"]),
            "shape_mismatch")


def test_unbatched_inputs_keep_their_own_first_dim():
    # Conv and cell rules wrote B as the first output dim even for unbatched inputs.
    ok(build([("x", "input", {"shape": [2]}), ("k", "constant", {"shape": [1, 2, 5, 5]}),
              ("conv", "conv2d", {"out_channels": 3}), ("o1", "output"), ("o2", "output")],
             ["k -> conv", "conv -> o1", "x -> o2"]))
    refused(build([("x", "input", {"shape": [3]}), ("k", "constant", {"shape": [1, 3]}),
                   ("h", "input", {"shape": [8]}), ("gru", "gru_cell", {"hidden_size": 8}),
                   ("o", "output")], ["k -> gru.x", "h -> gru.h", "gru.h -> o"]), "shape_mismatch")


def test_attention_keys_share_the_queries_batch():
    # Found by the 100k run: keys reduced over the batch, (1, T, E), for (B, T, E) queries
    # validated, then failed in torch: "shape '[6, 4, 2]' is invalid for input of size 24".
    refused(build([("x", "input", {"shape": [6, 4]}), ("k", "mean", {"dim": 0, "keepdim": True}),
                   ("att", "multihead_attention"), ("o", "output")],
                  ["x -> k", "x -> att.q", "k -> att.k", "k -> att.v", "att -> o"]), "shape_mismatch")


def test_batch_norm_needs_a_batch():
    # An unbatched (1, C) Constant validated, then: "Expected more than 1 value per channel".
    refused(build([("x", "input", {"shape": [5]}), ("k", "constant", {"shape": [1, 5]}),
                   ("bn", "batch_norm1d"), ("add", "add"), ("o", "output")],
                  ["k -> bn", "bn -> add.a", "x -> add.b", "add -> o"]), "shape_mismatch")


def test_concat_of_mixed_dtypes_is_refused():
    # torch.cat promotes long + float to float; the analysis said long, Embedding failed.
    refused(build([("ids", "input", {"shape": [3], "dtype": "long"}), ("x", "input", {"shape": [3]}),
                   ("cat", "concat"), ("emb", "embedding", {"num_embeddings": 5}), ("o", "output")],
                  ["ids -> cat.x0", "x -> cat.x1", "cat -> emb", "emb -> o"]), "type_mismatch")


def test_loss_targets_match_exactly_and_none_keeps_the_shape():
    # A broadcast target: mse warned, bce_with_logits raised. reduction="none" promised
    # (B,) but returned the prediction's shape.
    refused(build([("x", "input", {"shape": [3, 4]}), ("t", "input", {"shape": [3, 1]}),
                   ("loss", "bce_with_logits"), ("o", "output")],
                  ["x -> loss.input", "t -> loss.target", "loss -> o"]), "shape_mismatch")
    ok(build([("x", "input", {"shape": [3, 4]}), ("t", "input", {"shape": [3, 4]}),
              ("loss", "l1", {"reduction": "none"}), ("o", "output")],
             ["x -> loss.input", "t -> loss.target", "loss -> o"]))


def test_transposed_conv_output_padding_below_stride():
    refused(build([("x", "input", {"shape": [2, 4, 4]}),
                   ("up", "conv_transpose2d", {"output_padding": 1}), ("o", "output")],
                  ["x -> up", "up -> o"]), "param_out_of_range")


def test_clamp_needs_a_bound():
    refused(build([("x", "input", {"shape": [3]}),
                   ("e", "expression", {"expr": "torch.clamp(a)", "inputs": 1}), ("o", "output")],
                  ["x -> e.a", "e -> o"]), "bad_expression")


# --- example inputs ----------------------------------------------------------------------


def test_example_ids_stay_below_every_vocabulary_and_class_count():
    # Only Embeddings wired directly to the Input were looked at; through a Loop or a
    # Reshape the ids ran up to 10 and indexed past a vocabulary of 3.
    emb = body(("x", "body_input"), ("e", "embedding", {"num_embeddings": 3, "embedding_dim": 2}),
               ("y", "body_output"), wires=["x -> e", "e -> y"])
    ok(build([("ids", "input", {"shape": [3], "dtype": "long"}),
              ("lp", "loop", {"count": 1}, {"body": emb}), ("o", "output")],
             ["ids -> lp.x", "lp.y -> o"]))
    ok(build([("x", "input", {"shape": [4]}), ("y", "input", {"shape": [], "dtype": "long"}),
              ("fc", "linear", {"out_features": 2}), ("loss", "cross_entropy"), ("o", "output")],
             ["x -> fc", "fc -> loss.input", "y -> loss.target", "loss -> o"]))


# --- files -------------------------------------------------------------------------------

DEEP = '{{"format": "dprog-graph", "version": 2, "nodes": [], "edges": [], ' \
       '"training": {{"dataset": {{"name": "x", "k": {}}}}}}}'


@pytest.mark.parametrize("depth", [129, 500, 900, 985, 990, 995, 1000, 100_000])
@pytest.mark.parametrize("stack", [0, 150])
def test_deep_json_is_refused_cleanly_at_any_stack_depth(depth, stack):
    # Nesting just under json's recursion limit got through json.loads, then raised
    # RecursionError while jsonschema repr()'d the value for its message.
    def at_depth(n):
        if n:
            return at_depth(n - 1)
        text = DEEP.format("[" * depth + "]" * depth)
        with pytest.raises(GraphFileError, match="nested"):
            loads(text)

    assert sys.getrecursionlimit() > stack + 100
    at_depth(stack)


def test_too_many_nodes_are_refused_before_the_slow_schema_check():
    # Checking the schema costs ~0.4 ms a node: a 64 MiB file took many minutes.
    nodes = [{"id": f"n{i}", "type": "relu"} for i in range(25_000)]
    with pytest.raises(GraphFileError, match="nodes and wires"):
        loads(json.dumps({"format": "dprog-graph", "version": 2, "nodes": nodes, "edges": []}))


# --- programs: positions, probabilities ----------------------------------------------------


def test_positions_beyond_an_embeddings_vocabulary_are_refused():
    # Positions give ids 0..n-1, known before the model runs; an Embedding with fewer rows
    # validated, then raised IndexError ("index out of range in self") in its forward.
    def graph(rows: int):
        return build([("x", "input", {"shape": [2]}), ("p", "positions", {"dim": 1}),
                      ("e", "embedding", {"num_embeddings": rows, "embedding_dim": 3}),
                      ("o", "output")], ["x -> p", "p -> e", "e -> o"])

    refused(graph(1), "param_out_of_range")
    ok(graph(2))


def test_a_slice_of_positions_forgets_its_bound_rather_than_overstate_it():
    # A bound carried through a new shape would overstate a slice's ids; it is dropped.
    ok(build([("x", "input", {"shape": [6]}), ("p", "positions", {"dim": 1}),
              ("s", "slice", {"dim": 0, "start": 0, "stop": 2}),
              ("e", "embedding", {"num_embeddings": 2, "embedding_dim": 3}), ("o", "output")],
             ["x -> p", "p -> s", "s -> e", "e -> o"]))


def test_bce_on_values_outside_zero_one_is_the_datas_fault():
    # BCE takes probabilities; torch refuses others only when the model runs, so a graph
    # feeding it raw values validates and its forward names the block (spec unit_inputs).
    outcome = judge(dumps(build([("x", "input", {"shape": [3]}), ("t", "input", {"shape": [3]}),
                                 ("f", "linear", {"out_features": 3}), ("l", "bce"),
                                 ("o", "output")],
                                ["x -> f", "f -> l.input", "t -> l.target", "l -> o"])), seconds=60)
    assert outcome.kind == "ok"


def test_an_attention_mask_has_its_two_last_dims():
    # A scalar mask broadcasts to any (…, T, S), but torch's scaled_dot_product_attention
    # reads dims -2 and -1 of it: "Dimension specified as -2 but tensor has no dimensions".
    def graph(mask_shape):
        return build([("x", "input", {"shape": [6, 4]}), ("m", "input", {"shape": mask_shape}),
                      ("a", "scaled_dot_product_attention"), ("o", "output")],
                     ["x -> a.q", "x -> a.k", "x -> a.v", "m -> a.mask", "a -> o"])

    refused(build([("x", "input", {"shape": [6, 4]}), ("p", "parameter", {"shape": []}),
                   ("a", "scaled_dot_product_attention"), ("o", "output")],
                  ["x -> a.q", "x -> a.k", "x -> a.v", "p -> a.mask", "a -> o"]), "shape_mismatch")
    refused(graph([6]), "shape_mismatch")
    ok(graph([6, 6]))
