"""Programs in the real studio: a program without data plots its Parameters while it learns
(projectile.json), an autoencoder shows its reconstructions beside the digits (vae.json),
and a character model writes text from a prompt after training (char_gpt.json).

Each test opens its own studio on a copy of the sample, made shorter where the sample trains
for long; checks are on the app's state (run status, the parameters it reports, image grids,
the generated text) and on screenshots of the plots (they draw, and change).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from harness import VirtualScreen, region_differs
from studio_driver import SAMPLES, Studio, center, studio

pytestmark = pytest.mark.gui

SHOTS = os.environ.get("DPROG_GUI_SHOTS")   # a folder to keep the screenshots in, if set


def sample_copy(folder: Path, name: str, **training) -> Path:
    doc = json.loads((SAMPLES / f"{name}.json").read_text())
    doc["training"].update(training)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(doc))
    return path


def rect_of(app: Studio, kind: str) -> tuple[int, int, int, int] | None:
    r = app.layout()["plots"].get(kind)
    return tuple(int(v) for v in r) if r else None


def in_window(app: Studio, name: str) -> tuple[float, float]:
    """The middle of a widget of the Generate window, once it is drawn."""
    app.wait_frames(2)
    return center(app.wait(lambda s: s["layout"]["generate_window"][name],
                           f"the Generate window's {name}"))


def train(app: Studio) -> None:
    app.click(center(app.layout()["train_button"]))


def keep(image, name: str) -> None:
    """Screenshots for a person to look at, when DPROG_GUI_SHOTS names a folder."""
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        image.save(Path(SHOTS) / name)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path


def test_a_program_without_data_plots_its_parameters(screen: VirtualScreen, folder: Path) -> None:
    # A constant learning rate, and many steps: the run is still going when it is watched.
    path = sample_copy(folder, "projectile", steps=3000, schedule="constant", lr=0.02)
    with studio(screen, folder, path) as app:
        assert rect_of(app, "params") is None and rect_of(app, "acc") is not None
        idle = app.shot()
        train(app)
        s = app.wait(lambda s: s["run"]["status"] in ("running", "finished")
                     and s["run"]["parameter_lines"] == 2 and s["run"]["plot_updates"] >= 2
                     and s, "the Parameters plot", timeout=120)
        assert set(s["run"]["parameters"]) == {"speed", "angle"}
        app.wait_frames(4)
        params = rect_of(app, "params")
        assert params is not None and rect_of(app, "acc") is None, app.layout()["plots"]
        first = app.shot()
        speed = s["run"]["parameters"]["speed"]
        s = app.wait(lambda s: abs(s["run"]["parameters"]["speed"] - speed) > 0.5 and s,
                     "the speed to move", timeout=120)
        app.wait_frames(6)
        second = app.shot()
        keep(second, "projectile_parameters.png")
        assert region_differs(idle, first, params, min_fraction=0.01), "the plot never drew"
        assert region_differs(first, second, params, min_fraction=0.002), "the plot froze"
        assert s["run"]["parameters"]["speed"] > 10.0   # towards the 17.8 m/s that lands


def test_the_vae_shows_its_reconstructions(screen: VirtualScreen, folder: Path) -> None:
    # Evaluations (each draws the grid) every 8 steps: a few epochs' worth of pictures.
    path = sample_copy(folder, "vae", epochs=40, eval_every=8)
    with studio(screen, folder, path) as app:
        train(app)
        s = app.wait(lambda s: s["run"]["image_updates"] >= 2 and s["run"]["image_grids"] >= 3
                     and s, "reconstructions on screen", timeout=180)
        assert s["run"]["status"] != "failed", s["run"]["message"]
        app.wait_frames(4)
        images = rect_of(app, "images")
        assert images is not None and rect_of(app, "boundary") is None, app.layout()["plots"]
        # Its predictions are reconstructions, not class scores: the empty plot says so.
        assert "not class scores" in s["data_preview"]["accuracy"], s["data_preview"]
        first = app.shot()
        grids = s["run"]["image_grids"]
        app.wait(lambda s: s["run"]["image_grids"] >= grids + 3 and s, "later reconstructions",
                 timeout=180)
        app.wait_frames(8)
        later = app.shot()
        keep(later, "vae_reconstructions.png")
        # Grey digits on the plot's dark ground: many distinct bright pixels in the grid.
        part = later.crop(images).convert("L")
        bright = sum(part.histogram()[120:])
        assert bright > 0.02 * part.width * part.height, "no images in the grid"
        assert region_differs(first, later, images, min_fraction=0.001), "the grid never changed"


def test_generate_text_after_training(screen: VirtualScreen, folder: Path) -> None:
    # A short run: the test is about the window writing text, not about how good it is.
    path = sample_copy(folder, "char_gpt", steps=12, eval_every=6,
                       dataset={"name": "text", "length": 32, "n_samples": 400})
    with studio(screen, folder, path) as app:
        button = app.wait(lambda s: s["layout"]["generate_button"], "the Generate button")
        app.click(center(button))
        app.wait(lambda s: s["generate"]["shown"] and s, "the Generate window")
        app.click(in_window(app, "generate"))
        s = app.wait(lambda s: "train" in s["generate"]["error"] and s,
                     "the window saying to train first")
        train(app)
        app.wait(lambda s: s["run"]["status"] == "finished" and s, "training", timeout=300)
        app.click(in_window(app, "prompt"))
        app.key("ctrl+a")
        app.type_text("The data")
        app.click(in_window(app, "generate"))
        s = app.wait(lambda s: s["generate"]["text"] and not s["generate"]["busy"] and s,
                     "generated text", timeout=120)
        assert s["generate"]["error"] == ""
        text = s["generate"]["text"]
        assert text.startswith("The data") and len(text) == len("The data") + 200, text
        keep(app.shot(), "char_gpt_generate.png")
