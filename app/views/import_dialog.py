"""File › Import PyTorch module…: a form that opens a model written in PyTorch as a graph.

The user names a Python file, picks one of its classes (found by parsing the file, not by
running it; each has a button), gives the constructor's arguments, an example input shape
and where the graph goes. Import runs the file - the user's own code, as the dialog says in so many words
- on a worker thread, as tracing and checking a ResNet takes seconds; the studio keeps
drawing. The graph is written with the model's weights beside it (`<graph>.weights.pt`,
named in the graph's training.weights, so training fine-tunes from them), then opened. A
refusal (an op with no block, a data-dependent branch) stays in the dialog, which keeps
what was typed; nothing is written. Existing files are never overwritten.

The work itself is engine.runtime.import_file's, shared with `dprog import`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dearpygui.dearpygui as dpg

from engine.core.naming import snake_case

from .dialogs import Dialogs, center
from .theme import ERROR, TEXT_DIM, WARNING, Theme

RUNS_CODE = ("Importing RUNS this Python file: it is your own code, imported and its class "
             "built, as `python` would. Import only files you trust. The graph it gives is data.")
SHAPE_HINT = "2,3,32,32  (batch first; several inputs: 2,16; 2,16; token ids: long 2,16)"


@dataclass(frozen=True)
class ImportRequest:
    """What the form asks for, checked: everything `import_file` takes."""

    source: Path
    class_name: str
    args: dict | list
    shapes: list[tuple[int, ...]]
    dtypes: list[str]
    graph_path: Path
    weights_path: Path | None

    @classmethod
    def parse(cls, source: str, class_name: str, args: str, shapes: str, graph_path: str,
              weights: bool) -> ImportRequest:
        """The request, or ValueError saying which field is wrong and how to write it."""
        from engine.runtime.import_file import parse_shape

        if not source.strip():
            raise ValueError("Python file: give the file that defines the model")
        path = Path(source.strip()).expanduser()
        if not path.is_file():
            raise ValueError(f"Python file: {path} is not a file")
        if not class_name.isidentifier():
            raise ValueError("Class: pick the nn.Module class to import")
        try:
            ctor = json.loads(args.strip() or "{}")
        except ValueError as e:
            raise ValueError(f"Arguments: not JSON ({e}); give an object like "
                             '{"width": 64}, or a list of positional ones') from None
        if not isinstance(ctor, dict | list):
            raise ValueError('Arguments: give a JSON object like {"width": 64}, or a list')
        parsed, dtypes = [], []
        for part in (p.strip() for p in shapes.split(";")):
            dtype, _, text = part.rpartition(" ") if part.startswith("long ") else ("", "", part)
            parsed.append(parse_shape(text.strip()))
            dtypes.append(dtype or "float")
        target = Path(graph_path.strip()).expanduser()
        if not graph_path.strip():
            raise ValueError("Graph file: give where the graph goes")
        if target.suffix != ".json":
            target = target.with_suffix(".json")
        weights_path = target.with_name(target.stem + ".weights.pt") if weights else None
        for existing in (target, weights_path):
            if existing is not None and existing.exists():
                raise ValueError(f"{existing} exists: choose another graph file name "
                                 "(the import never overwrites a file)")
        if not target.parent.is_dir():
            raise ValueError(f"Graph file: the folder {target.parent} does not exist")
        return cls(path, class_name, ctor, parsed, dtypes, target, weights_path)


class ImportModuleDialog:
    """The form, its worker, and `step()` (per frame) that hands a finished import over."""

    def __init__(self, theme: Theme, dialogs: Dialogs,
                 on_imported: Callable[[Path, str], None],
                 blocked: Callable[[], str | None] = lambda: None) -> None:
        """`blocked()` says why an import cannot start now (a training run is on), or None."""
        self.theme, self.dialogs, self.on_imported = theme, dialogs, on_imported
        self.blocked = blocked
        self.window = self.file_dialog = 0
        self.fields: dict[str, int] = {}
        self.error = self.busy = self.import_button = 0
        self._worker: threading.Thread | None = None
        self._result: tuple[Path, str] | Exception | None = None
        self.classes: list[str] = []   # the file's classes, as parsed
        self.class_row = 0
        self.class_buttons: dict[str, int] = {}   # class → its button, which picks it

    def build(self) -> None:
        with dpg.window(label="Import PyTorch module", modal=True, show=False, no_resize=True,
                        no_saved_settings=True, width=640, autosize=True) as self.window:
            dpg.add_text(RUNS_CODE, wrap=610, color=WARNING)
            dpg.add_spacer(height=4)
            f = self.fields
            with dpg.group(horizontal=True):
                f["source"] = dpg.add_input_text(label="Python file", width=430,
                                                 hint="/path/to/mynet.py",
                                                 callback=self._source_changed)
                dpg.add_button(label="Browse…", callback=self._browse)
            f["class"] = dpg.add_input_text(label="Class", width=430, hint="the nn.Module class",
                                            callback=self._class_picked)
            with dpg.group(horizontal=True):
                dpg.add_text("In the file:", color=TEXT_DIM)
                self.class_row = dpg.add_group(horizontal=True)
            f["args"] = dpg.add_input_text(label="Arguments (JSON)", width=430, default_value="{}")
            f["shapes"] = dpg.add_input_text(label="Input shape", width=430, hint=SHAPE_HINT,
                                             default_value="2,3,32,32")
            dpg.add_text(SHAPE_HINT, color=TEXT_DIM)
            f["graph"] = dpg.add_input_text(label="Graph file", width=430,
                                            hint="/path/to/graph.json")
            f["weights"] = dpg.add_checkbox(
                label="Bring its weights (saved beside the graph; training starts from them)",
                default_value=True)
            dpg.add_spacer(height=4)
            with dpg.group(horizontal=True):   # above the message, which may be long
                self.import_button = dpg.add_button(label="Import", width=100,
                                                    callback=self._import)
                dpg.bind_item_theme(self.import_button, self.theme.primary_button)
                cancel = dpg.add_button(label="Cancel", width=100, callback=self._cancel)
                self.busy = dpg.add_text("importing: running the file, tracing and checking…",
                                         show=False)
            self.error = dpg.add_text("", color=ERROR, wrap=610, show=False)
        with dpg.file_dialog(show=False, modal=True, width=720, height=440,
                             directory_selector=False, callback=self._file_chosen
                             ) as self.file_dialog:
            dpg.add_file_extension(".py", color=(120, 200, 140, 255))
            dpg.add_file_extension(".*")
        self.dialogs.register("import", self.window, [f["source"], f["class"], f["args"],
                                                      f["shapes"], f["graph"]])
        self.dialogs.buttons.update(import_module=self.import_button, import_cancel=cancel)

    # -- the form -------------------------------------------------------------------------------

    def show(self, folder: Path | None) -> None:
        if self.running:
            self.dialogs.show(self.window)
            return
        if folder is not None and not dpg.get_value(self.fields["source"]):
            dpg.set_value(self.fields["source"], str(folder) + "/")
        center(self.window, 640, 420)
        self.dialogs.show(self.window, focus=self.fields["source"])

    def fill(self, **values: object) -> None:
        """Set fields by name (source, class, args, shapes, graph, weights), as typing would."""
        for name, value in values.items():
            dpg.set_value(self.fields[name], value)
            if name == "source":
                self._source_changed()

    def _source_changed(self, *args: object) -> None:
        """List the file's classes (parsed, never run) and suggest a graph file beside it."""
        from engine.runtime.import_file import module_classes

        source = Path(dpg.get_value(self.fields["source"]).strip()).expanduser()
        classes = module_classes(source) if source.suffix == ".py" else []
        if classes == self.classes:
            return
        self.classes = classes
        dpg.delete_item(self.class_row, children_only=True)
        self.class_buttons = {name: dpg.add_button(label=name, small=True, parent=self.class_row,
                                                   callback=self._class_clicked, user_data=name)
                              for name in classes}
        if classes and dpg.get_value(self.fields["class"]) not in classes:
            dpg.set_value(self.fields["class"], classes[0])
            self._class_picked()

    def _class_clicked(self, sender: int, app_data: object, name: str) -> None:
        dpg.set_value(self.fields["class"], name)
        self._class_picked()

    def _class_picked(self, *args: object) -> None:
        source = Path(dpg.get_value(self.fields["source"]).strip()).expanduser()
        name = dpg.get_value(self.fields["class"])
        if name:
            dpg.set_value(self.fields["graph"], str(source.with_name(f"{snake_case(name)}.json")))

    def _browse(self) -> None:
        current = dpg.get_value(self.fields["source"]).strip()
        folder = str(Path(current).expanduser().parent) if current else str(Path.cwd())
        dpg.configure_item(self.file_dialog, default_path=folder, show=True)

    def _file_chosen(self, sender: int, app_data: dict, user_data: object) -> None:
        path = app_data.get("file_path_name") if isinstance(app_data, dict) else None
        if path:
            self.fill(source=path)

    def _error(self, text: str) -> None:
        dpg.set_value(self.error, text)
        dpg.configure_item(self.error, show=bool(text))

    def _cancel(self) -> None:
        if not self.running:   # a running import cannot be stopped halfway; it finishes
            self.dialogs.hide(self.window)

    # -- the import -----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._worker is not None

    def _import(self, *args: object) -> None:
        if self.running:
            return
        why = self.blocked()
        if why:
            self._error(why)
            return
        f = self.fields
        try:
            request = ImportRequest.parse(
                dpg.get_value(f["source"]), dpg.get_value(f["class"]) or "",
                dpg.get_value(f["args"]), dpg.get_value(f["shapes"]), dpg.get_value(f["graph"]),
                bool(dpg.get_value(f["weights"])))
        except ValueError as e:
            self._error(str(e))
            return
        self._error("")
        dpg.configure_item(self.busy, show=True)
        dpg.configure_item(self.import_button, enabled=False)
        self._worker = threading.Thread(target=self._work, args=(request,), daemon=True,
                                        name="dprog-import")
        self._worker.start()

    def _work(self, request: ImportRequest) -> None:
        try:
            from engine.runtime.import_file import import_file

            written = import_file(request.source, request.class_name, request.args,
                                  request.shapes, request.dtypes, request.graph_path,
                                  request.weights_path)
            self._result = (request.graph_path, written.describe(
                request.class_name, request.graph_path.name,
                request.weights_path.name if request.weights_path else None))
        except OSError as e:
            self._result = OSError(f"cannot write {e.filename} ({e.strerror})")
        except Exception as e:   # ImportRefused, or anything the user's code raised
            self._result = e

    def step(self) -> None:
        """Per frame: a finished import opens its graph, or shows why it was refused."""
        if self._worker is None or self._worker.is_alive():
            return
        self._worker, result, self._result = None, self._result, None
        dpg.configure_item(self.busy, show=False)
        dpg.configure_item(self.import_button, enabled=True)
        if isinstance(result, tuple):
            self.dialogs.hide(self.window)
            self.on_imported(*result)
            return
        text = str(result) if result is not None else "the import ended without a result"
        self._error(f"Not imported: {text}")
        if not dpg.is_item_shown(self.window):   # closed (Esc) while it ran: show why
            self.dialogs.show(self.window)
