"""A block that raises while training is marked on the canvas like a diagnostic, and the
studio goes on.

The graph `token_reader` reads six token ids (B, 6) with a scan Loop `reader` whose body
looks each token up in an Embedding(10, 4) `lookup`, then a Linear head. It validates:
every shape and dtype fits. Its data (tokens.npz, beside the graph) holds ids up to 19, so
the first forward pass raises IndexError inside `reader/body/lookup` - a failure only the
real batch can show. Pressing Train must then: enter the loop's body and select `lookup`,
draw it as an error (red title, the message on the node), list it under Problems, badge the
loop in the main graph ("problem inside"), and keep the studio working: a click on the
problem goes back to the block, an edit there clears the mark, and the next run trains.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from failing_graphs import FAILING_NODE, write_token_reader
from harness import VirtualScreen, color_fraction, save_on_failure
from studio_driver import Studio, center, studio

from app.views.theme import SEVERITY_TITLE

pytestmark = pytest.mark.gui

BODY = ["reader", "body"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("run_errors")


@pytest.fixture(scope="module")
def app(screen: VirtualScreen, folder: Path) -> Iterator[Studio]:
    with studio(screen, folder, write_token_reader(folder)) as s:
        yield s


def run_errors(s: dict) -> list[list]:
    return [d for d in s["diagnostics"] if d[0].startswith("run_")]


def test_the_failing_block_is_marked_where_it_lives(app: Studio, folder: Path) -> None:
    assert not app.state()["diagnostics"], "the graph validates"
    app.click(center(app.layout()["train_button"]))
    s = app.wait(lambda s: s["run"]["status"] == "failed" and s, "the run to fail", timeout=180)
    assert "IndexError" in s["run"]["message"] and s["status_level"] == "error"
    # The studio went to the block, inside the loop's body.
    s = app.wait(lambda s: s["region"] == BODY and s["selection"] == ["lookup"]
                 and s["layout"]["nodes"].get("lookup", {}).get("problem") and s,
                 "the failing block, shown in its body")
    (error,) = run_errors(s)
    assert error[:3] == ["run_error", FAILING_NODE, "error"]
    assert error[3].startswith("IndexError") and "node " not in error[3], error
    assert s["layout"]["nodes"]["lookup"]["problem"].startswith("⚠ IndexError")
    assert ["run_error", FAILING_NODE] in s["problems_list"]
    assert all(not n["problem"] for i, n in s["layout"]["nodes"].items() if i != "lookup")
    # Drawn like a validation error: the error red on the block's title bar, nowhere else.
    shot = app.shot(folder / "run_error.png")
    s = app.state()   # the geometry of the frame on screen (the body was fitted to the view)
    rect = [int(v) for v in s["layout"]["nodes"]["lookup"]["rect"]]
    title = (rect[0] - 8, rect[1] - 8, rect[2] + 8, rect[1] + 14)
    red = color_fraction(shot, SEVERITY_TITLE["error"], title, tolerance=4)
    if red < 0.3:
        save_on_failure(shot, folder, "run_error_unmarked")
    assert red > 0.3, f"the title bar of lookup is not error red ({red:.2f})"
    others = [n["rect"] for i, n in s["layout"]["nodes"].items() if i != "lookup"]
    for r in others:
        box = (int(r[0]) - 8, int(r[1]) - 8, int(r[2]) + 8, int(r[1]) + 14)
        assert color_fraction(shot, SEVERITY_TITLE["error"], box, tolerance=4) < 0.05


def test_the_loop_says_a_problem_is_inside_and_problems_lead_back(app: Studio) -> None:
    app.key("Escape")
    s = app.wait(lambda s: s["region"] == [] and s["layout"]["nodes"].get("reader") and s,
                 "the main graph")
    assert "problem inside" in s["layout"]["nodes"]["reader"]["problem"]
    app.click(center(s["layout"]["tabs"]["problems"]))
    row = app.wait(lambda s: next((r for r in s["layout"]["problems"] if r[4] == FAILING_NODE), None),
                   "the run's error in the Problems list")
    app.click(center(row))
    s = app.wait(lambda s: s["region"] == BODY and s["selection"] == ["lookup"] and s,
                 "a click on the problem to go to the block")


def test_an_edit_clears_the_mark_and_the_next_run_trains(app: Studio) -> None:
    s = app.state()
    assert s["region"] == BODY and s["selection"] == ["lookup"]
    app.click(app.widget("num_embeddings"))
    app.key("ctrl+a")
    app.type_text("20")
    app.key("Return")

    def vocabulary(s: dict) -> int:
        (reader,) = [n for n in s["graph"]["nodes"] if n["id"] == "reader"]
        (lookup,) = [n for n in reader["regions"]["body"]["nodes"] if n["id"] == "lookup"]
        return lookup["params"]["num_embeddings"]

    s = app.wait(lambda s: vocabulary(s) == 20 and s, "the vocabulary to become 20")
    s = app.wait(lambda s: not run_errors(s) and not s["layout"]["nodes"]["lookup"]["problem"]
                 and s, "the mark to clear")
    assert not s["problems_list"], "nothing left under Problems"
    app.click(center(s["layout"]["train_button"]))
    s = app.wait(lambda s: s["run"]["status"] in ("finished", "failed") and s,
                 "the second run to end", timeout=180)
    assert s["run"]["status"] == "finished", s["run"]["message"]
    assert not run_errors(s)
