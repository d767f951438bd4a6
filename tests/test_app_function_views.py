"""What the studio's views read about functions from `AppState`, without a window: opening a
call's body and coming back, breadcrumbs, the shapes and problems shown inside a body (those
at its calls), where a function is called, and analysis paths turned into regions."""

from __future__ import annotations

import pytest

from app.commands import SetParam
from app.state import SAMPLES_DIR, AppState, region_of_path
from engine.core.fileformat import load_graph
from engine.core.graph import FUNCTION

BODY = (FUNCTION, "double_conv")


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DPROG_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def unet() -> AppState:
    return AppState(load_graph(SAMPLES_DIR / "unet.json"))


def test_open_a_function_and_come_back_to_its_call(unet: AppState) -> None:
    assert unet.open_function("down2")
    assert unet.region == BODY and unet.function == "double_conv"
    assert unet.breadcrumbs == [("unet", ()), ("ƒ double_conv", BODY)]
    unet.leave_region()
    assert unet.region == () and unet.selection == frozenset({"down2"})
    assert not unet.open_function("pool1"), "not a Call"
    assert unet.region == () and unet.status_level == "warning"


def test_a_body_shows_the_shapes_and_counts_of_its_first_call(unet: AppState) -> None:
    unet.open_function("dec1")
    assert unet.analysis_prefix == "down1/double_conv/"
    ins, outs = unet.port_types("conv_a")
    assert str(ins["x"]) == "(B, 1, 8, 8)" and str(outs["y"]) == "(B, 16, 8, 8)"
    assert unet.param_count("conv_a") == 144


def test_an_edit_in_a_body_changes_every_call_and_undoes_in_one_step(unet: AppState) -> None:
    sites = ["down1", "down2", "bottom", "dec2", "dec1"]
    before = {s: unet.analysis.param_counts[s] for s in sites}
    unet.open_function("down1")
    assert unet.do(SetParam(unet.region, "conv_a", "out_channels", 8))
    after = {s: unet.analysis.param_counts[s] for s in sites}
    assert all(after[s] != before[s] for s in sites)
    unet.leave_region()
    unet.undo()
    assert unet.region == BODY, "undo shows where the edit was made"
    assert {s: unet.analysis.param_counts[s] for s in sites} == before


def test_problems_inside_a_body_come_from_all_its_calls(unet: AppState) -> None:
    unet.open_function("down1")
    # 3 input channels cannot take the 1-channel image at down1 nor the 16 at the others
    assert unet.do(SetParam(unet.region, "conv_a", "groups", 3))
    diags = unet.diagnostics_for("conv_a")
    assert diags and all(d.node == "conv_a" for d in diags)
    assert len({d.message for d in diags}) == len(diags), "each told once"


def test_where_a_function_is_called(unet: AppState) -> None:
    assert unet.function_calls("double_conv") == [
        ((), "down1"), ((), "down2"), ((), "bottom"), ((), "dec2"), ((), "dec1")]
    assert unet.function_calls("nothing") == []


def test_analysis_paths_become_regions(unet: AppState) -> None:
    g = unet.graph
    assert region_of_path(g, "down1") == ((), "down1")
    assert region_of_path(g, "down2/double_conv/conv_a") == (BODY, "conv_a")
    assert region_of_path(g, "down2/double_conv/nope") is None
    assert region_of_path(g, "pool1/body/x") is None
