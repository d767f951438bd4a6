"""A tiny Dear PyGui app (not the product) that proves each studio interaction works
under Xvfb + xdotool.

It lays out, on a 1280x800 viewport at screen (0, 0):
  - a "palette" window with two draggable block buttons (drag_payload, type "block"),
    an input_int and an input_float (on_enter=True);
  - a "main" window holding a child_window "canvas" that accepts "block" drops and
    contains a node_editor (minimap on) with nodes "node_a" (output pin "a_out") and
    "node_b" (input pin "b_in").

Callbacks are run by hand (manual_callback_management) from a capped-fps render loop,
as the studio does. After every frame the probe rewrites a JSON state file
(atomically): the frame number, item rects, node grid positions, the derived
node-editor panning, links, selection, widget values and an append-only event log
(drops, links, keys, value changes). Tests poll that file.

stdin takes one command per line:
  screenshot PATH   dpg.output_frame_buffer(file=PATH); the state records the frame
                    it was asked for and the frame the file appeared on
  clear_links       delete every link (imnodes refuses to create a duplicate link)
  quit              leave the render loop
Usage: python dpg_probe.py STATE_JSON [--fps N]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
import time
from pathlib import Path

import dearpygui.dearpygui as dpg

VIEWPORT = (1280, 800)
NODE_PADDING = (8, 8)  # imnodes' default NodePadding; DPG node rect_min is inside it
BLOCKS = ("linear", "relu")


class Probe:
    def __init__(self, state_path: Path) -> None:
        self.state_path = state_path
        self.events: list[dict] = []
        self.commands: queue.Queue[str] = queue.Queue()
        self.callbacks_run = 0
        self.pending_shots: dict[str, int] = {}  # path -> frame requested
        self.shots: dict[str, dict] = {}
        self.dropped = 0

    # -- callbacks (all run on the main thread via run_callbacks) ------------------------

    def event(self, kind: str, **data: object) -> None:
        self.events.append({"kind": kind, "frame": dpg.get_frame_count(), **data})

    def on_drop(self, sender: int | str, app_data: object, user_data: object) -> None:
        mouse = dpg.get_mouse_pos(local=False)
        canvas_min = [dpg.get_item_pos("main")[i] + dpg.get_item_pos("canvas")[i] for i in range(2)]
        origin = editor_origin()
        pan = panning()
        grid = [mouse[0] - origin[0] - pan[0], mouse[1] - origin[1] - pan[1]]
        self.dropped += 1
        tag = f"dropped_{self.dropped}"
        # What the studio would do: a new node whose top-left sits where the mouse let go.
        with dpg.node(label=str(app_data), tag=tag, parent="editor", pos=grid):
            with dpg.node_attribute(attribute_type=dpg.mvNode_Attr_Input, tag=f"{tag}_in"):
                dpg.add_text("x")
        self.event(
            "drop",
            sender=alias(sender),
            payload=app_data,
            mouse=mouse,
            mouse_local=dpg.get_mouse_pos(local=True),
            canvas_min=canvas_min,
            editor_origin=origin,
            panning=pan,
            grid=grid,
            node=tag,
        )

    def on_link(self, sender: int | str, app_data: tuple, user_data: object) -> None:
        a, b = app_data  # attribute uuids (ints), output first
        dpg.add_node_link(a, b, parent=sender)
        self.event("link", sender=alias(sender), attrs=[alias(a), alias(b)])

    def on_delink(self, sender: int | str, app_data: int, user_data: object) -> None:
        self.event("delink", link=alias(app_data))
        dpg.delete_item(app_data)

    def on_key(self, sender: int | str, app_data: int, user_data: object) -> None:
        key = app_data
        ctrl = dpg.is_key_down(dpg.mvKey_ModCtrl)
        shift = dpg.is_key_down(dpg.mvKey_ModShift)
        chord = "+".join(
            [
                *(["ctrl"] if ctrl else []),
                *(["shift"] if shift else []),
                KEY_NAMES.get(key, str(key)),
            ]
        )
        self.event(
            "key",
            key=key,
            chord=chord,
            ctrl_mod=ctrl,
            lctrl=dpg.is_key_down(dpg.mvKey_LControl),
            shift_mod=shift,
            lshift=dpg.is_key_down(dpg.mvKey_LShift),
            typing=is_typing(),
            focused=alias(dpg.get_focused_item()) if dpg.get_focused_item() else None,
            selected_links=len(dpg.get_selected_links("editor")),
        )
        # What the studio would do: Delete removes the selected nodes, unless the user
        # is typing into a widget (global key handlers fire then too).
        if key == dpg.mvKey_Delete and not is_typing():
            for node in dpg.get_selected_nodes("editor"):
                dpg.delete_item(node)

    def on_mouse_double_click(self, sender: int | str, app_data: int, user_data: object) -> None:
        # Item click/double-click handlers bound to a node never fire (imnodes takes the
        # active id on press), but a node's hovered state is reliable: ask which one.
        hovered = [alias(n) for n in editor_nodes() if dpg.is_item_hovered(n)]
        self.event(
            "double_click", button=app_data, mouse=dpg.get_mouse_pos(local=False), nodes=hovered
        )

    def on_value(self, sender: int | str, app_data: object, user_data: object) -> None:
        self.event("value", item=alias(sender), value=app_data)

    # -- frame loop -------------------------------------------------------------------

    def read_stdin(self) -> None:
        for line in sys.stdin:
            self.commands.put(line.strip())
        self.commands.put("quit")  # the test closed our stdin: it is done with us

    def handle_commands(self) -> bool:
        while True:
            try:
                cmd = self.commands.get_nowait()
            except queue.Empty:
                return True
            name, _, arg = cmd.partition(" ")
            if name == "quit":
                return False
            if name == "clear_links":
                for link in dpg.get_item_children("editor", 0) or []:
                    if dpg.get_item_type(link) == "mvAppItemType::mvNodeLink":
                        dpg.delete_item(link)
            if name == "screenshot":
                Path(arg).unlink(missing_ok=True)
                dpg.output_frame_buffer(file=arg)
                self.pending_shots[arg] = dpg.get_frame_count()

    def check_screenshots(self) -> None:
        for path, asked in list(self.pending_shots.items()):
            if os.path.exists(path):
                del self.pending_shots[path]
                self.shots[path] = {"asked_frame": asked, "seen_frame": dpg.get_frame_count()}

    def snapshot(self) -> dict:
        nodes = {}
        for node in editor_nodes():
            # Attributes have no rect of their own; their first widget stands in for the
            # row, and the pin sits on the node's edge at that row's vertical centre.
            attrs = {}
            for a in dpg.get_item_children(node, 1) or []:
                row = (dpg.get_item_children(a, 1) or [a])[0]
                attrs[alias(a)] = {
                    "rect_min": dpg.get_item_rect_min(row),
                    "rect_max": dpg.get_item_rect_max(row),
                }
            nodes[alias(node)] = {
                "pos": dpg.get_item_pos(node),
                "rect_min": dpg.get_item_rect_min(node),
                "rect_max": dpg.get_item_rect_max(node),
                "rect_size": dpg.get_item_rect_size(node),
                "attrs": attrs,
            }
        links = [
            [
                alias(dpg.get_item_configuration(link)["attr_1"]),
                alias(dpg.get_item_configuration(link)["attr_2"]),
            ]
            for link in dpg.get_item_children("editor", 0) or []
            if dpg.get_item_type(link) == "mvAppItemType::mvNodeLink"
        ]
        items = {
            tag: {k: v for k, v in dpg.get_item_state(tag).items() if k.startswith(("rect", "pos"))}
            for tag in ("palette", "main", "canvas", "editor", *BLOCKS, "in_int", "in_float")
        }
        return {
            "pid": os.getpid(),
            "mode": "manual"
            if dpg.get_app_configuration()["manual_callback_management"]
            else "auto",
            "callbacks_run": self.callbacks_run,
            "viewport": {
                "pos": dpg.get_viewport_pos(),
                "client": [dpg.get_viewport_client_width(), dpg.get_viewport_client_height()],
            },
            "items": items,
            "editor_origin": editor_origin(),
            "panning": panning(),
            "nodes": nodes,
            "links": links,
            "selected_nodes": [alias(n) for n in dpg.get_selected_nodes("editor")],
            "values": {"in_int": dpg.get_value("in_int"), "in_float": dpg.get_value("in_float")},
            "mouse": dpg.get_mouse_pos(local=False),
            "events": self.events,
            "screenshots": self.shots,
        }

    def write_state(self, frame: int) -> None:
        # Every frame, so "frame" doubles as a heartbeat tests can sync input on.
        state = self.snapshot()
        state["frame"] = frame
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, sort_keys=True, indent=1))
        os.replace(tmp, self.state_path)  # atomic: a reader never sees half a file


KEY_NAMES = {
    dpg.mvKey_Z: "z",
    dpg.mvKey_A: "a",
    dpg.mvKey_Delete: "Delete",
    dpg.mvKey_Spacebar: "space",
    dpg.mvKey_Return: "Return",
    dpg.mvKey_LControl: "LControl",
    dpg.mvKey_LShift: "LShift",
}


def editor_nodes() -> list[int]:
    return [
        n
        for n in dpg.get_item_children("editor", 1) or []
        if dpg.get_item_type(n) == "mvAppItemType::mvNode"
    ]


def alias(item: int | str) -> int | str:
    """The string tag of an item when it has one, else its integer uuid."""
    if isinstance(item, str):
        return item
    return dpg.get_item_alias(item) or item


def is_typing() -> bool:
    """True while one of the probe's input widgets is being edited."""
    return any(dpg.is_item_active(tag) for tag in ("in_int", "in_float"))


def editor_origin() -> list[float]:
    """Screen position of the node editor's canvas: grid (0, 0) with zero panning.

    Neither a child_window nor a node_editor reports rect_min (the editor's stays at
    0, 0), but get_item_pos of each is relative to its parent's content origin and a
    top-level window's pos is in viewport pixels, so the sum of the chain is exact
    while nothing on the way scrolls.
    """
    chain = ("main", "canvas", "editor")
    return [sum(dpg.get_item_pos(tag)[i] for tag in chain) for i in range(2)]


def panning() -> list[float]:
    """The node editor's panning, derived from any visible node.

    DPG exposes no panning getter. For a node, get_item_pos is its grid-space position
    and get_item_rect_min is the screen position of its content, NodePadding inside the
    node's corner, so: screen = origin + panning + grid + padding.
    """
    origin = editor_origin()
    for node in editor_nodes():
        if not dpg.is_item_shown(node):
            continue  # a node scrolled out of view still reports its rect; a hidden one does not
        grid, rmin = dpg.get_item_pos(node), dpg.get_item_rect_min(node)
        return [rmin[i] - NODE_PADDING[i] - origin[i] - grid[i] for i in range(2)]
    return [0.0, 0.0]


def build(probe: Probe) -> None:
    with dpg.window(
        label="Palette",
        tag="palette",
        pos=(0, 0),
        width=260,
        height=800,
        no_move=True,
        no_resize=True,
        no_collapse=True,
        no_close=True,
    ):
        dpg.add_text("Blocks")
        for block in BLOCKS:
            dpg.add_button(label=block.title(), tag=block, width=200, height=30)
            with dpg.drag_payload(parent=block, payload_type="block", drag_data=block):
                dpg.add_text(f"+ {block}")
        dpg.add_separator()
        dpg.add_input_int(
            label="int",
            tag="in_int",
            default_value=3,
            on_enter=True,
            width=140,
            callback=probe.on_value,
        )
        dpg.add_input_float(
            label="float",
            tag="in_float",
            default_value=0.5,
            on_enter=True,
            width=140,
            callback=probe.on_value,
        )
    with dpg.window(
        label="Main",
        tag="main",
        pos=(260, 0),
        width=1020,
        height=800,
        no_move=True,
        no_resize=True,
        no_collapse=True,
        no_close=True,
        no_scrollbar=True,
    ):
        with dpg.child_window(
            tag="canvas",
            border=False,
            payload_type="block",
            drop_callback=probe.on_drop,
            no_scrollbar=True,
        ):
            with dpg.node_editor(
                tag="editor",
                callback=probe.on_link,
                delink_callback=probe.on_delink,
                minimap=True,
                minimap_location=dpg.mvNodeMiniMap_Location_BottomRight,
            ):
                with dpg.node(label="Node A", tag="node_a", pos=(40, 60)):
                    with dpg.node_attribute(attribute_type=dpg.mvNode_Attr_Output, tag="a_out"):
                        dpg.add_text("out")
                with dpg.node(label="Node B", tag="node_b", pos=(360, 220)):
                    with dpg.node_attribute(attribute_type=dpg.mvNode_Attr_Input, tag="b_in"):
                        dpg.add_text("in")
    with dpg.handler_registry():
        dpg.add_key_press_handler(callback=probe.on_key)  # key=-1: every key
        dpg.add_mouse_double_click_handler(callback=probe.on_mouse_double_click)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("state", type=Path)
    parser.add_argument("--fps", type=float, default=60.0)
    args = parser.parse_args()

    probe = Probe(args.state)
    dpg.create_context()
    dpg.configure_app(manual_callback_management=True)
    dpg.create_viewport(title="dpg-probe", width=VIEWPORT[0], height=VIEWPORT[1], x_pos=0, y_pos=0)
    build(probe)
    dpg.setup_dearpygui()
    dpg.show_viewport()
    threading.Thread(target=probe.read_stdin, daemon=True).start()

    frame_budget = 1.0 / args.fps
    while dpg.is_dearpygui_running():
        started = time.perf_counter()
        jobs = dpg.get_callback_queue()
        if jobs:
            probe.callbacks_run += len(jobs)
        dpg.run_callbacks(jobs)
        if not probe.handle_commands():
            break
        dpg.render_dearpygui_frame()
        probe.check_screenshots()
        probe.write_state(dpg.get_frame_count())
        # Software GL ignores vsync; cap the rate so the 2-core machine stays responsive.
        spare = frame_budget - (time.perf_counter() - started)
        if spare > 0:
            time.sleep(spare)
    dpg.destroy_context()


if __name__ == "__main__":
    main()
