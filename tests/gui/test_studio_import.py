"""File › Import PyTorch module… in the real studio, and fine-tuning what it imports.

The form is filled by typing, as a person does: a file whose forward branches on a value is
refused in the dialog (naming the line, nothing written); a plain one is written with its
weights and opened. Then torchvision's resnet18 architecture, imported with its weights,
fine-tunes on digits resized to 32×32 RGB and its wires take gradient colours."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from harness import VirtualScreen
from studio_driver import Studio, center, studio

from engine import load_graph
from engine.core.fileformat import save_graph

pytestmark = pytest.mark.gui

TESTS = Path(__file__).resolve().parents[1]

MODELS = '''
import torch
from torch import nn


class Branchy(nn.Module):
    def forward(self, x):
        return x if x.mean() > 0 else -x


class SmallNet(nn.Module):
    def __init__(self, width=8):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        return self.head(self.features(x))
'''

RESNET = '''
from vision import ResNet


class ResNet18(ResNet):
    """torchvision's resnet18, from the copy in vision.py."""

    def __init__(self, num_classes=1000):
        super().__init__([2, 2, 2, 2], num_classes)
'''


def fill(app: Studio, field: str, text: str) -> None:
    """Click into a field of the import form, select what is there and type over it."""
    r = app.wait(lambda s: s["import_module"]["fields"].get(field), f"the {field} field")
    app.click(center(r))
    app.key("ctrl+a")
    app.type_text(text)
    app.wait(lambda s: s["import_module"]["values"][field] == text, f"{field} typed")


def press(app: Studio, button: str) -> None:
    r = app.wait(lambda s: s["layout"]["dialog_buttons"].get(button), f"the {button} button")
    app.click(center(r))


def test_import_dialog_refuses_then_imports_and_opens(screen: VirtualScreen,
                                                      tmp_path: Path) -> None:
    source = tmp_path / "mynet.py"
    source.write_text(MODELS, encoding="utf-8")
    with studio(screen, tmp_path) as app:
        app.menu("File>Import PyTorch module…")
        app.wait(lambda s: "import" in s["dialogs"], "the import form")
        fill(app, "source", str(source))
        s = app.wait(lambda s: s["import_module"]["classes"] == ["Branchy", "SmallNet"] and s,
                     "the file's classes, parsed")
        assert s["import_module"]["values"]["class"] == "Branchy"
        assert s["import_module"]["values"]["graph"] == str(tmp_path / "branchy.json")
        app.shot(tmp_path / "import_form.png")

        # A forward that branches on a value cannot be traced: refused, naming the line.
        press(app, "import_module")
        s = app.wait(lambda s: s["import_module"]["error"] and not s["import_module"]["running"]
                     and s, "the refusal", timeout=120)
        assert "data-dependent" in s["import_module"]["error"], s["import_module"]
        assert "mynet.py:8" in s["import_module"]["error"], s["import_module"]
        assert "import" in s["dialogs"] and not (tmp_path / "branchy.json").exists()
        app.shot(tmp_path / "import_refused.png")

        # The other class, its width typed as an argument: written with its weights, opened.
        r = app.wait(lambda s: s["import_module"]["class_buttons"].get("SmallNet"),
                     "the SmallNet button")
        app.click(center(r))
        app.wait(lambda s: s["import_module"]["values"]["class"] == "SmallNet", "SmallNet picked")
        fill(app, "args", '{"width": 6}')
        fill(app, "graph", str(tmp_path / "small.json"))
        press(app, "import_module")
        s = app.wait(lambda s: s["file"] and s["file"].endswith("small.json") and s,
                     "the imported graph, open", timeout=120)
        assert "checked equal to SmallNet" in s["status"], s["status"]
        assert "import" not in s["dialogs"]
        graph = load_graph(tmp_path / "small.json")
        assert graph.training == {"weights": "small.weights.pt"}
        assert (tmp_path / "small.weights.pt").is_file()
        labels = {n.label for n in graph.nodes}
        assert {"features.0", "features.2"} <= labels   # the Sequential's own keys
        app.shot(tmp_path / "imported_small.png")
        # The Training tab says where a run starts from.
        app.click(center(app.layout()["tabs"]["training"]))
        app.wait(lambda s: s["runs"]["setting_values"]["weights"] == "small.weights.pt",
                 "the weights a run starts from, in the Training tab")
        app.shot(tmp_path / "imported_small_training.png")


@pytest.fixture(scope="module")
def resnet_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """resnet18 imported with its weights, set to fine-tune on digits as 3×32×32 images."""
    from engine.runtime.import_file import import_file

    folder = tmp_path_factory.mktemp("resnet")
    shutil.copy(TESTS / "torchvision_models.py", folder / "vision.py")
    (folder / "resnet18.py").write_text(RESNET, encoding="utf-8")
    written = import_file(folder / "resnet18.py", "ResNet18", {"num_classes": 10},
                          [(1, 3, 32, 32)], ["float"], folder / "resnet18.json",
                          folder / "resnet18.weights.pt")
    training = {**written.graph.training, "steps": 6, "batch_size": 32, "gradflow_every": 2,
                "optimizer": "sgd", "lr": 0.01,
                "dataset": {"name": "digits", "size": 32, "channels": 3}}
    save_graph(replace(written.graph, training=training), folder / "resnet18.json")
    return folder


@pytest.fixture(scope="module")
def resnet(screen: VirtualScreen, resnet_folder: Path) -> Iterator[Studio]:
    with studio(screen, resnet_folder, resnet_folder / "resnet18.json") as s:
        yield s


def test_imported_resnet18_fine_tunes_with_gradients_on_its_wires(resnet: Studio,
                                                                  resnet_folder: Path) -> None:
    app = resnet
    s = app.state()
    calls = [n for n in s["graph"]["nodes"] if n["type"] == "call"]
    assert [n.get("label") for n in calls] == [f"layer{i}.{j}" for i in (1, 2, 3, 4)
                                               for j in (0, 1)]
    app.shot(resnet_folder / "resnet18_imported.png")
    app.click(center(app.layout()["tabs"]["gradients"]))
    app.click(center(app.layout()["train_button"]))
    s = app.wait(lambda s: s["run"]["status"] in ("running", "finished") and s, "the run",
                 timeout=180)
    s = app.wait(lambda s: s["run"]["status"] == "finished" and s, "the run to finish",
                 timeout=300)
    coloured = set(s["run"]["colored_edges"])
    # Gradients on the wires the importer drew: into, between and out of the residual stages.
    for wire in ("maxpool.y -> layer1_0.x", "layer1_0.y -> layer1_1.x",
                 "layer4_1.y -> avgpool.x", "fc.y -> output.x"):
        assert wire in coloured, sorted(coloured)
    # The Gradient flow tab has a row per residual stage: the gradient on each call's output.
    s = app.wait(lambda s: "layer4_1" in s["gradient_charts"]["rows"]["bars"]["labels"] and s,
                 "a row per stage")
    assert s["gradient_charts"]["rows"]["bars"]["labels"] == [
        "conv1", "bn1", *(f"layer{i}_{j}" for i in (1, 2, 3, 4) for j in (0, 1)), "fc"]
    assert not s["internal_errors"], s["internal_errors"]
    app.shot(resnet_folder / "resnet18_gradients.png")
