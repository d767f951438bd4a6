"""Drive a real Dear PyGui window under Xvfb with xdotool, and read it back as pixels.

Three pieces, usable from any test (stdlib + Pillow only):

- ``VirtualScreen``: a private Xvfb display, started and torn down by a context manager,
  with xdotool input helpers (move, click, drag, key chords, typing) and screenshots.
- ``AppProcess``: a Python program started on that display; waits for its window,
  collects stdout/stderr so failures can quote them, and never outlives the test.
- Pixel helpers (``color_fraction``, ``diff_fraction``, ``region_differs``) that work on
  Pillow images with ``Region`` boxes ``(x0, y0, x1, y1)``, x1/y1 exclusive.

Guarantees: a missing Xvfb or xdotool raises ``HarnessError`` naming the apt packages,
so a test fails loudly instead of skipping; every process started here is killed on
exit, even when the test fails. Coordinates are X screen pixels; a DPG viewport created
with ``x_pos=0, y_pos=0`` (no window manager runs, so there are no decorations) makes
screen pixels equal viewport pixels.

Timing: ImGui reads input once per frame, so every input step must be seen by a frame
of its own (a drag must rest, press, move over several frames, rest, release). Set
``VirtualScreen.sync`` to a callable that returns once the app has rendered two more
frames (the app writes its frame count somewhere the test can read) and the helpers
wait exactly that long; otherwise they sleep ``frame_delay``, which is fine at 60 fps
and flaky when a loaded machine drops the app to a few fps. The measured recipes and
their failure modes are in docs/dev/dearpygui_notes.md.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TypeVar

from PIL import Image, ImageChops, ImageGrab

T = TypeVar("T")
Region = tuple[int, int, int, int]  # (x0, y0, x1, y1) in pixels, x1/y1 exclusive
Color = tuple[int, int, int]

# The tools this module shells out to, and the Debian package that provides each.
REQUIRED_TOOLS = {"Xvfb": "xvfb", "xdotool": "xdotool"}


class HarnessError(RuntimeError):
    """The virtual screen or the app under test could not be driven as asked."""


def require_tools(tools: Mapping[str, str] = REQUIRED_TOOLS) -> None:
    """Raise HarnessError naming every missing tool and the apt packages that provide it."""
    missing = {tool: pkg for tool, pkg in tools.items() if shutil.which(tool) is None}
    if missing:
        pkgs = " ".join(sorted(set(missing.values())))
        raise HarnessError(
            f"real-window tests need {', '.join(missing)} on PATH; install with: "
            f"apt-get install -y {pkgs}"
        )


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float = 5.0,
    interval: float = 0.02,
    what: str = "condition",
    on_timeout: Callable[[], str] | None = None,
) -> T:
    """Poll ``predicate`` until it returns a truthy value, and return that value.

    Raises HarnessError after ``timeout`` seconds; ``on_timeout`` may add context
    (for example the app's stderr) to the message.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = on_timeout() if on_timeout else ""
            raise HarnessError(f"timed out after {timeout:.1f}s waiting for {what}{extra}")
        time.sleep(interval)


class VirtualScreen:
    """A private Xvfb display with xdotool input and screenshots.

    Use as a context manager::

        with VirtualScreen() as screen:
            with AppProcess([sys.executable, "app.py"], screen) as app:
                app.wait_for_window("dprog")
                screen.drag((100, 100), (400, 300))
                img = screen.screenshot()

    Xvfb picks a free display number itself (``-displayfd``), so parallel test runs and
    stale lock files from crashed servers cannot collide.
    """

    def __init__(
        self,
        width: int = 1600,
        height: int = 1000,
        depth: int = 24,
        *,
        start_timeout: float = 30.0,
        frame_delay: float = 0.05,
    ) -> None:
        self.width, self.height, self.depth = width, height, depth
        self.start_timeout = start_timeout
        # How input helpers wait for the app to see each step (see settle()): either
        # ``sync``, a callable that returns after the app rendered a new frame (exact),
        # or a sleep of ``frame_delay`` (three frames at 60 fps; too short when the
        # machine is so loaded that the app renders below ~20 fps).
        self.sync: Callable[[], None] | None = None
        self.frame_delay = frame_delay
        self.display: str = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> VirtualScreen:
        require_tools()
        read_fd, write_fd = os.pipe()
        # A file, not a pipe: nobody drains Xvfb's chatter while tests run.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        try:
            self._proc = subprocess.Popen(
                [
                    "Xvfb",
                    "-displayfd",
                    str(write_fd),
                    "-screen",
                    "0",
                    f"{self.width}x{self.height}x{self.depth}",
                    "-nolisten",
                    "tcp",
                    "-noreset",
                ],
                pass_fds=(write_fd,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._log,
                start_new_session=True,  # a Ctrl-C on pytest must not reach Xvfb first
            )
        except BaseException:
            os.close(read_fd)
            self.stop()
            raise
        finally:
            os.close(write_fd)
        try:
            # Xvfb writes the display number once it is ready to accept connections.
            self.display = f":{self._read_display_number(read_fd)}"
            # Belt and braces: a client can really talk to the server.
            wait_until(
                self._xdotool_ok,
                timeout=self.start_timeout,
                what=f"Xvfb on {self.display} to accept connections",
                on_timeout=lambda: f": {self.log()}",
            )
        except BaseException:
            self.stop()  # never leak a server when start-up fails
            raise
        return self

    def _read_display_number(self, read_fd: int) -> str:
        deadline = time.monotonic() + self.start_timeout
        buf = b""
        with os.fdopen(read_fd, "rb", buffering=0) as pipe:
            os.set_blocking(pipe.fileno(), False)
            while not buf.endswith(b"\n"):
                if self._proc is not None and self._proc.poll() is not None:
                    raise HarnessError(f"Xvfb exited with {self._proc.returncode}: {self.log()}")
                if time.monotonic() > deadline:
                    raise HarnessError(
                        f"Xvfb did not report a display number in time: {self.log()}"
                    )
                chunk = pipe.read(64)
                if chunk:
                    buf += chunk
                else:
                    time.sleep(0.01)
        return buf.decode().strip()

    def _xdotool_ok(self) -> bool:
        result = subprocess.run(
            ["xdotool", "getmouselocation"],
            env=self.env(),
            capture_output=True,
            timeout=5,
        )
        return result.returncode == 0

    def log(self) -> str:
        """What Xvfb has written to stderr so far."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace").strip()

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> VirtualScreen:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """os.environ with DISPLAY pointing here (and any ``extra`` variables)."""
        env = dict(os.environ)
        env["DISPLAY"] = self.display
        # Wayland variables would make GLFW try a compositor that is not there.
        env.pop("WAYLAND_DISPLAY", None)
        if extra:
            env.update(extra)
        return env

    # -- input -----------------------------------------------------------------------

    def xdotool(self, *args: str | int | float) -> str:
        """Run one xdotool command on this display and return its stdout."""
        if not self.display:
            raise HarnessError("VirtualScreen is not started")
        try:
            result = subprocess.run(
                ["xdotool", *map(str, args)],
                env=self.env(),
                capture_output=True,
                text=True,
                timeout=10,
            )
        except subprocess.TimeoutExpired as exc:
            raise HarnessError(f"xdotool {' '.join(map(str, args))} hung for 10 s") from exc
        if result.returncode != 0:
            raise HarnessError(
                f"xdotool {' '.join(map(str, args))} failed: {result.stderr.strip()}"
            )
        return result.stdout

    def mouse_position(self) -> tuple[int, int]:
        fields = dict(
            part.split(":", 1) for part in self.xdotool("getmouselocation").split() if ":" in part
        )
        return int(fields["x"]), int(fields["y"])

    def settle(self) -> None:
        """Wait until the app has had a chance to see the last input event.

        With ``sync`` set (a callable that returns once the app has rendered a new
        frame or two), this is exact and fast; otherwise sleep ``frame_delay``.
        """
        if self.sync is not None:
            self.sync()
        else:
            time.sleep(self.frame_delay)

    def move(self, x: float, y: float) -> None:
        """Put the pointer at screen pixel (x, y) and let the app see it there."""
        # No --sync: xdotool 3.2016 can wait forever for motion when the pointer is
        # already there. XTEST requests are applied in order, so none is needed.
        self.xdotool("mousemove", round(x), round(y))
        self.settle()

    def mouse_down(self, button: int = 1) -> None:
        self.xdotool("mousedown", button)
        self.settle()

    def mouse_up(self, button: int = 1) -> None:
        self.xdotool("mouseup", button)
        self.settle()

    def click(self, x: float, y: float, button: int = 1) -> None:
        """Move, let ImGui see the hover, then press and release in separate frames."""
        self.move(x, y)
        self.mouse_down(button)
        self.mouse_up(button)

    def double_click(self, x: float, y: float, button: int = 1) -> None:
        """Two clicks 60 ms apart: inside ImGui's 0.30 s double-click time, which
        ImGui measures in frame time, so this needs the app to render >= ~15 fps."""
        self.move(x, y)
        self.xdotool("click", "--repeat", 2, "--delay", 60, button)
        self.settle()

    def drag(
        self,
        start: tuple[float, float],
        end: tuple[float, float],
        *,
        button: int = 1,
        steps: int = 10,
    ) -> None:
        """Press at ``start``, move to ``end`` in ``steps`` moves, release there.

        The order matters to ImGui, which reads input once per frame: the pointer must
        rest at ``start`` for a frame before the press (ImGui applies a mouse move and
        a button press that arrive in the same frame together, and imnodes then pans
        by the whole jump), each step must be its own frame (a drag source starts only
        after the mouse moved past the 6 px drag threshold while held), and the pointer
        must rest at ``end`` for a frame or two before the release so the drop target
        sees the payload hovering over it.
        """
        (x0, y0), (x1, y1) = start, end
        self.move(x0, y0)
        self.mouse_down(button)
        for i in range(1, steps + 1):
            t = i / steps
            self.xdotool("mousemove", round(x0 + (x1 - x0) * t), round(y0 + (y1 - y0) * t))
            self.settle()
        self.settle()
        self.mouse_up(button)

    def key(self, *chords: str) -> None:
        """Press key chords in X keysym names: ``key("ctrl+z")``, ``key("ctrl+shift+z")``,
        ``key("Delete")``, ``key("space")``, ``key("Return")``, ``key("ctrl+a")``
        (a literal plus key is ``"plus"``).

        Sent to whichever window has focus (no window manager: GLFW focuses the
        viewport on show, and ``AppProcess.wait_for_window`` focuses it too).

        Each chord goes out in one xdotool call as presses in order, then releases in
        reverse order: ctrl down, z down, z up, ctrl up. ImGui's input queue never
        applies two changes of one key in the same frame, so z's release, and the ctrl
        release queued behind it, reach a later frame than z's press, and a handler
        sees ctrl held with z. ``xdotool key ctrl+z`` is not safe: it releases ctrl
        *before* z, so z's press and ctrl's release can share a frame. Nor is holding
        keys across frames: past the key-repeat delay (0.275 s of frame time, two
        frames at 5 fps) handlers fire again.
        """
        for chord in chords:
            keys = chord.split("+")
            args: list[str] = []
            for k in keys:
                args += ["keydown", k]
            for k in reversed(keys):
                args += ["keyup", k]
            self.xdotool(*args)
            self.settle()

    def type_text(self, text: str, delay_ms: int = 40) -> None:
        """Type ``text`` as key presses ``delay_ms`` apart (ImGui queues characters,
        so none is lost even when several arrive in one frame)."""
        self.xdotool("type", "--delay", delay_ms, text)
        self.settle()

    # -- pixels ----------------------------------------------------------------------

    def screenshot(self, path: str | os.PathLike[str] | None = None) -> Image.Image:
        """Capture the whole screen as an RGB image (and save it to ``path`` if given).

        Uses Pillow's XCB grabber (``ImageGrab.grab(xdisplay=...)``): no extra tools.
        """
        img = ImageGrab.grab(xdisplay=self.display).convert("RGB")
        if path is not None:
            img.save(path)
        return img


class AppProcess:
    """A program under test running on a VirtualScreen.

    stdout and stderr are collected on background threads (so a chatty app never
    blocks on a full pipe) and quoted in every HarnessError. ``send`` writes a line to
    the program's stdin, for apps that accept test commands there.
    """

    def __init__(
        self,
        argv: Sequence[str],
        screen: VirtualScreen,
        *,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.screen = screen
        self.cwd = cwd
        self.extra_env = dict(env or {})
        self.proc: subprocess.Popen[str] | None = None
        self.window_id: int | None = None
        self._out: list[str] = []
        self._err: list[str] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> AppProcess:
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.screen.env(self.extra_env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        for stream, sink in ((self.proc.stdout, self._out), (self.proc.stderr, self._err)):
            thread = threading.Thread(target=_pump, args=(stream, sink), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __enter__(self) -> AppProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()

    @property
    def stdout(self) -> str:
        return "".join(self._out)

    @property
    def stderr(self) -> str:
        return "".join(self._err)

    def describe(self) -> str:
        """Exit status and the tail of stderr/stdout, for failure messages."""
        code = self.proc.poll() if self.proc else None
        status = "running" if code is None else f"exited with {code}"
        return (
            f"\n--- app {status}: {' '.join(self.argv)}"
            f"\n--- stderr (tail):\n{self.stderr[-3000:]}"
            f"\n--- stdout (tail):\n{self.stdout[-2000:]}"
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def assert_alive(self) -> None:
        if not self.alive():
            raise HarnessError("app is not running" + self.describe())

    def wait_until(
        self, predicate: Callable[[], T | None], timeout: float = 5.0, what: str = "condition"
    ) -> T:
        """Like module ``wait_until``, but fails fast if the app dies and quotes its stderr."""

        def check() -> T | None:
            self.assert_alive()
            return predicate()

        return wait_until(check, timeout=timeout, what=what, on_timeout=self.describe)

    def wait_for_window(self, name: str | None = None, timeout: float = 20.0) -> int:
        """Wait until the app maps a visible window (optionally titled ``name``).

        Returns the X window id and gives that window keyboard focus (there is no
        window manager to do it). Without ``name`` the window is found by the app's
        pid (``_NET_WM_PID``, which GLFW sets).
        """
        assert self.proc is not None, "start() first"
        query = ["search", "--onlyvisible", "--pid", str(self.proc.pid)]
        if name is not None:
            query = ["search", "--onlyvisible", "--name", name]

        def find() -> int | None:
            try:
                out = self.screen.xdotool(*query)
            except HarnessError:
                return None  # xdotool exits 1 while nothing matches
            ids = [int(line) for line in out.split()]
            return ids[-1] if ids else None

        self.window_id = self.wait_until(find, timeout=timeout, what="the app's window")
        self.focus()
        return self.window_id

    def focus(self) -> None:
        """Give the app's window keyboard focus (XSetInputFocus; no WM needed)."""
        if self.window_id is None:
            raise HarnessError("no window yet; call wait_for_window()")
        self.screen.xdotool("windowfocus", "--sync", self.window_id)

    def window_geometry(self) -> Region:
        """The window's screen box as (x0, y0, x1, y1)."""
        if self.window_id is None:
            raise HarnessError("no window yet; call wait_for_window()")
        fields = dict(
            line.strip().split("=", 1)
            for line in self.screen.xdotool("getwindowgeometry", "--shell", self.window_id).split()
            if "=" in line
        )
        x, y, w, h = (int(fields[k]) for k in ("X", "Y", "WIDTH", "HEIGHT"))
        return x, y, x + w, y + h

    def send(self, line: str) -> None:
        """Write one line to the app's stdin."""
        self.assert_alive()
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line.rstrip("\n") + "\n")
        self.proc.stdin.flush()

    def kill(self, timeout: float = 5.0) -> int | None:
        """Stop the app (SIGTERM to its process group, then SIGKILL) and reap it."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
                proc.wait(timeout=timeout)
        if proc.stdin:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        for thread in self._threads:
            thread.join(timeout=2)
        return proc.returncode


def _pump(stream: object, sink: list[str]) -> None:
    for line in iter(stream.readline, ""):  # type: ignore[attr-defined]
        sink.append(line)
    stream.close()  # type: ignore[attr-defined]


# -- pixel helpers ---------------------------------------------------------------------


def crop(img: Image.Image, region: Region | None) -> Image.Image:
    return img if region is None else img.crop(region)


def color_fraction(
    img: Image.Image, color: Color, region: Region | None = None, tolerance: int = 0
) -> float:
    """Fraction of pixels in ``region`` within ``tolerance`` (per channel) of ``color``."""
    part = crop(img, region).convert("RGB")
    bands = [
        band.point(lambda v, c=c: 255 if abs(v - c) <= tolerance else 0)
        for band, c in zip(part.split(), color, strict=True)
    ]
    match = ImageChops.multiply(ImageChops.multiply(bands[0], bands[1]), bands[2])
    hist = match.histogram()
    total = part.width * part.height
    return hist[255] / total if total else 0.0


def diff_fraction(
    a: Image.Image, b: Image.Image, region: Region | None = None, tolerance: int = 8
) -> float:
    """Fraction of pixels in ``region`` whose largest channel difference exceeds ``tolerance``."""
    pa, pb = crop(a, region).convert("RGB"), crop(b, region).convert("RGB")
    if pa.size != pb.size:
        raise ValueError(f"images differ in size: {pa.size} vs {pb.size}")
    diff = ImageChops.difference(pa, pb)
    r, g, b_ = diff.split()
    worst = ImageChops.lighter(ImageChops.lighter(r, g), b_)
    hist = worst.histogram()
    total = pa.width * pa.height
    return sum(hist[tolerance + 1 :]) / total if total else 0.0


def region_differs(
    a: Image.Image,
    b: Image.Image,
    region: Region | None = None,
    *,
    min_fraction: float = 0.001,
    tolerance: int = 8,
) -> bool:
    """True when more than ``min_fraction`` of the region's pixels changed."""
    return diff_fraction(a, b, region, tolerance) > min_fraction


def distinct_colors(img: Image.Image, region: Region | None = None, limit: int = 4096) -> int:
    """Number of distinct colours in the region (a blank region has 1)."""
    colors = crop(img, region).convert("RGB").getcolors(maxcolors=limit)
    return limit if colors is None else len(colors)


def save_on_failure(img: Image.Image, directory: str | os.PathLike[str], name: str) -> Path:
    """Save a screenshot for post-mortem and return its path."""
    path = Path(directory) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


@contextlib.contextmanager
def running_app(
    argv: Sequence[str], screen: VirtualScreen, *, window: str | None = None, **kwargs: object
) -> Iterator[AppProcess]:
    """Start ``argv`` on ``screen``, wait for its window, and kill it afterwards."""
    with AppProcess(argv, screen, **kwargs) as app:  # type: ignore[arg-type]
        app.wait_for_window(window)
        yield app


# -- window-manager requests (appended for the studio tests) ------------------------------


def request_close(display: str, window: int) -> None:
    """Ask a window to close, as a window manager's close button does: send it the ICCCM
    WM_DELETE_WINDOW client message (GLFW turns it into its window-close callback).

    Uses libX11 through ctypes, since xdotool 3.2016 can only destroy or kill a window.
    """
    import ctypes
    import ctypes.util

    x11 = ctypes.cdll.LoadLibrary(ctypes.util.find_library("X11") or "libX11.so.6")
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XInternAtom.restype = ctypes.c_ulong
    x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]

    class ClientMessage(ctypes.Structure):
        _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong),
                    ("send_event", ctypes.c_int), ("display", ctypes.c_void_p),
                    ("window", ctypes.c_ulong), ("message_type", ctypes.c_ulong),
                    ("format", ctypes.c_int), ("data", ctypes.c_long * 5)]

    class XEvent(ctypes.Union):
        _fields_ = [("xclient", ClientMessage), ("pad", ctypes.c_long * 24)]

    x11.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long,
                               ctypes.POINTER(XEvent)]
    x11.XFlush.argtypes = [ctypes.c_void_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    conn = x11.XOpenDisplay(display.encode())
    if not conn:
        raise HarnessError(f"cannot open X display {display}")
    try:
        event = XEvent()
        event.xclient.type = 33   # ClientMessage
        event.xclient.window = window
        event.xclient.message_type = x11.XInternAtom(conn, b"WM_PROTOCOLS", 0)
        event.xclient.format = 32
        event.xclient.data[0] = x11.XInternAtom(conn, b"WM_DELETE_WINDOW", 0)
        x11.XSendEvent(conn, window, 0, 0, ctypes.byref(event))
        x11.XFlush(conn)
    finally:
        x11.XCloseDisplay(conn)
