"""Datasets for the trainer: built-in toy problems, scikit-learn's bundled sets and user files.

`load_dataset(spec, seed)` turns the `dataset` section of a graph file's training setup into
a `Dataset`: numpy arrays already split into a training and a validation part, in the dtypes
the trainer hands to torch as they are (float32 features, int64 class ids, float32 regression
targets). This module never imports torch; numpy is imported at the top, scikit-learn
(about 1.5 s) only inside the loaders that need it, so importing the module stays cheap.

What it guarantees:
- The same spec and seed give identical arrays. Generation and split are both seeded from
  `seed`; a `seed` key in the spec overrides the argument. `Dataset.spec` holds the resolved
  spec (defaults filled in, seed included), so `load_dataset(dataset.spec)` rebuilds the
  same data (relative paths again resolve against `base_dir`).
- Every user mistake (unknown dataset or option, an option of the wrong type or out of range,
  a bad file) raises `DatasetError`, a ValueError whose message names the dataset, option,
  file, line and column concerned. Errors from numpy, csv or zipfile never leak out raw.
- Files are read without pickle. The header of every .npy array (alone or inside an .npz) is
  parsed first, and arrays of Python objects are refused before any of their bytes are
  read, so a hostile file cannot run code.

Decisions:
- Split: the validation part gets ceil(n * val_fraction) samples. Classification splits are
  stratified whenever stratifying is possible (each class has at least 2 samples and each part
  has room for every class); otherwise the split is a plain shuffled one.
- moons, circles, spirals and xor give raw coordinates with no preprocessing. iris features
  are standardized (zero mean, unit variance) with the training part's mean and std, so the
  validation part stays unseen; csv does the same when its option `standardize` is true.
- digits: pixel values 0..16 are divided by 16; each image has shape (1, 8, 8), channel
  first as torch's Conv2d wants it, or (64,) with `flatten`. `size` resizes them bilinearly
  (with zeros beyond the border, as the scans have) and `channels` repeats the grey image,
  so that a model made for RGB images (an imported ResNet) can be fine-tuned on them.
- CSV: the first non-empty line is the header. Lines are numbered as a text editor numbers
  them (the header is usually line 1). Fully empty lines are skipped; an empty cell is an
  error. Task rule when `task` is "auto": classification if the target column holds any
  non-numeric cell, or only integer values with at most 20 distinct ones; regression
  otherwise. Class ids follow the sorted order of the distinct target values (numeric order
  for numbers, string order for text), and `class_names` keeps their text.
- npz/npy: with `task` "auto", integer or bool targets mean classification with the ids as
  stored (num_classes = max id + 1), string targets are mapped to ids as in CSV, and float
  targets mean regression. 1-D features and 1-D regression targets get one value per
  sample: (N,) -> (N, 1).
- Several inputs: a Dataset may give one array per Input id (`Dataset.inputs`), which the
  trainer feeds to the graph's Inputs by id. digit_pairs gives `left` and `right` (pairs of
  digit images, class 1 "same digit", balanced; its image pools are split before pairing,
  so validation pairs use unseen images). An npz with the option `inputs` ("left,right")
  reads one array per listed id plus the targets (option `y`); every listed array must be
  there, the same number of rows as the targets, and all of them are bounded together.
- Size guards: n_samples in 10..1,000,000, at most 1,000,000 rows from a file, at most
  20,000,000 values for a generated sequence set, at most 2 GiB per array read from a file.
- Relative file paths resolve against `base_dir` (the graph file's folder) when given, else
  against the current directory.
- `BUILTIN` lists the generated and bundled datasets; `FILE_FORMATS` lists csv, npz and npy.
  Both are plain dicts of `DatasetInfo`, so a UI builds its option widgets from them.
"""

from __future__ import annotations

import array
import contextlib
import csv
import difflib
import io
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO, TextIO

import numpy as np

from ..core.files import FileRefused, file_kind, open_regular
from ..core.graph import ID_PATTERN

TASKS = ("classification", "regression")
MIN_SAMPLES = 10
MAX_SAMPLES = 1_000_000
# The adding and parity problems allocate n_samples * length values; keep that bounded too.
MAX_SEQUENCE_VALUES = 20_000_000
# A file's header may claim any shape; refuse giant arrays before allocating for them.
MAX_ARRAY_BYTES = 2 << 30
MAX_AUTO_CLASSES = 20
# A CSV's feature cells (float64 until the split: 512 MiB), and its longest line.
MAX_CSV_VALUES = 1 << 26
MAX_CSV_LINE = 1 << 20
# Values in one array of an .npy or .npz file, checked from its header before it is read.
MAX_FILE_VALUES = 1 << 27
MAX_NPZ_MEMBERS = 1000
# Values in all the arrays of one dataset read from files (features of every input, targets).
MAX_DATASET_VALUES = 2 * MAX_FILE_VALUES
MAX_CLASSES = 100_000
MAX_SEED = 2**32 - 1  # scikit-learn's random_state range

TARGET_INPUT = "target"   # the Input that receives the targets under loss "graph"
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


class DatasetError(ValueError):
    """A dataset spec or file the trainer cannot use; the message says which one and why."""


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value
class InputSamples:
    """One data Input's samples in a dataset with several: (N, *shape) for each part."""

    train: np.ndarray = field(repr=False)
    val: np.ndarray = field(repr=False)

    @property
    def shape(self) -> tuple[int, ...]:
        """The per-sample shape (no batch dim)."""
        return tuple(int(d) for d in self.train.shape[1:])


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value
class Dataset:
    """A dataset split into training and validation parts; checks its invariants when built.

    Shapes: x_train is (N, *input_shape); y_train is (N,) int64 class ids for classification
    or (N, *target_shape) float32 for regression. Features are float32, or int64 token ids
    for sequence tasks that need them.

    Several data Inputs: `inputs` maps each Input id the dataset feeds to its samples, in
    the order the dataset gives them; a graph's data Inputs are matched to them by id.
    x_train, x_val and input_shape are then the first Input's (so code that counts samples
    still works); `feeds()` lists them all. Empty `inputs`: one unnamed input, x_train and
    x_val, fed to the graph's one data Input whatever its id.
    """

    name: str
    task: str
    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_val: np.ndarray = field(repr=False)
    y_val: np.ndarray = field(repr=False)
    num_classes: int | None
    input_shape: tuple[int, ...]
    target_shape: tuple[int, ...]
    description: str
    class_names: tuple[str, ...] | None = None
    spec: Mapping[str, Any] = field(default_factory=dict, repr=False)
    # (H, W) when each sample is a grey image (flattened or not): the studio then shows what
    # an autoencoder makes of it.
    image_shape: tuple[int, int] | None = None
    # For text: the characters the token ids stand for, id i being vocabulary[i].
    vocabulary: str | None = None
    # Several data Inputs: Input id -> its samples (see the class docstring).
    inputs: Mapping[str, InputSamples] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        def bad(what: str) -> DatasetError:
            return DatasetError(f"dataset '{self.name}': {what}")

        if self.task not in TASKS:
            raise bad(f"task must be one of {TASKS}, got {self.task!r}")
        if self.task == "classification" and (self.num_classes is None or self.num_classes < 1):
            raise bad("a classification dataset needs num_classes >= 1")
        if self.task == "regression" and self.num_classes is not None:
            raise bad("a regression dataset has num_classes None")
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise bad(f"{len(self.class_names)} class names for {self.num_classes} classes")
        object.__setattr__(self, "inputs", MappingProxyType(dict(self.inputs)))
        if self.inputs:
            first = next(iter(self.inputs.values()))
            if first.train is not self.x_train or first.val is not self.x_val:
                raise bad("x_train and x_val must be the first input's arrays")
        for input_id, samples in self.inputs.items():
            if not isinstance(input_id, str) or not ID_PATTERN.fullmatch(input_id):
                raise bad(f"input {input_id!r} is not an Input id (1-64 letters, digits or _, "
                          "not starting with a digit)")
            if input_id == TARGET_INPUT:
                raise bad(f"an input may not be called '{TARGET_INPUT}': that Input id is kept "
                          "for the targets (loss \"graph\"); give the array another name")
            shape = samples.shape
            for part, x, y in (("train", samples.train, self.y_train),
                               ("val", samples.val, self.y_val)):
                what = f"input '{input_id}' ({part})"
                if x.dtype not in (np.float32, np.int64):
                    raise bad(f"{what} must be float32 or int64, got {x.dtype}")
                if x.ndim == 0 or x.shape[1:] != shape:
                    raise bad(f"{what} has shape {x.shape}, not (N, *{shape})")
                if len(x) != len(y):
                    raise bad(f"{what} has {len(x)} samples but y_{part} has {len(y)}")
        for part, x, y in (("train", self.x_train, self.y_train), ("val", self.x_val, self.y_val)):
            if x.dtype not in (np.float32, np.int64):
                raise bad(f"x_{part} must be float32 or int64, got {x.dtype}")
            if x.shape[1:] != self.input_shape:
                raise bad(f"x_{part} has shape {x.shape}, not (N, *{self.input_shape})")
            if len(x) != len(y):
                raise bad(f"x_{part} has {len(x)} samples but y_{part} has {len(y)}")
            if y.shape[1:] != self.target_shape:
                raise bad(f"y_{part} has shape {y.shape}, not (N, *{self.target_shape})")
            if self.task == "classification":
                if y.dtype != np.int64:
                    raise bad(f"y_{part} must hold int64 class ids, got {y.dtype}")
                if y.size and (y.min() < 0 or y.max() >= self.num_classes):
                    raise bad(f"y_{part} holds ids outside 0..{self.num_classes - 1}")
            elif y.dtype != np.float32:
                raise bad(f"y_{part} must be float32 regression targets, got {y.dtype}")

    @property
    def is_2d(self) -> bool:
        """True for 2-D points (one input): the studio draws a decision boundary for these."""
        return self.input_shape == (2,) and len(self.inputs) <= 1

    @property
    def input_ids(self) -> tuple[str, ...]:
        """The Input ids the dataset feeds by name; () for one unnamed input."""
        return tuple(self.inputs)

    def feeds(self) -> list[tuple[str | None, np.ndarray, np.ndarray]]:
        """(Input id, training samples, validation samples) for every input, in order; the
        id is None for one unnamed input."""
        if not self.inputs:
            return [(None, self.x_train, self.x_val)]
        return [(k, v.train, v.val) for k, v in self.inputs.items()]

    def scored_by(self, predictions: Any) -> bool:
        """Whether predictions of this type (a `TensorType`) are class scores for these
        targets: (B, *target shape, classes), or one logit per sample for two classes.
        Accuracy is counted only then (the trainer and the exported train.py agree)."""
        if self.task != "classification" or predictions.dtype != "float":
            return False
        per_sample = tuple(predictions.shape[1:])
        return per_sample == (*self.target_shape, self.num_classes) or (
            self.target_shape == () and self.num_classes <= 2 and math.prod(per_sample) == 1)


# ---- option specs ---------------------------------------------------------------------------

_KIND_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


@dataclass(frozen=True)
class Option:
    """One option of a dataset: its JSON type, default, allowed range or choices, and doc.

    `kind` is the Python type of the JSON value: int options refuse floats and booleans, float
    options accept integers. A default of None means "not set"; a `required` option must be set.
    """

    name: str
    kind: type
    default: Any
    doc: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    choices: tuple[str, ...] = ()
    required: bool = False

    def check(self, value: Any, dataset: str) -> Any:
        """The value, validated (ints given to a float option become floats)."""
        where = f"dataset '{dataset}' option '{self.name}'"
        if value is None:
            if self.required:
                raise DatasetError(
                    f"dataset '{dataset}' needs the option '{self.name}': {self.doc}")
            if self.default is None:
                return None
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        # bool is a subclass of int in Python, but `true` is never a sample count in JSON.
        if not isinstance(value, self.kind) or (self.kind is not bool and isinstance(value, bool)):
            raise DatasetError(
                f"{where} must be {_KIND_WORDS[self.kind]}, got {value!r} ({type(value).__name__})"
            )
        if self.kind is float and not math.isfinite(value):
            raise DatasetError(f"{where} must be a finite number, got {value!r}")
        if self.minimum is not None:
            if self.exclusive_minimum and value <= self.minimum:
                raise DatasetError(f"{where} must be greater than {self.minimum:g}, got {value!r}")
            if value < self.minimum:
                raise DatasetError(f"{where} must be at least {self.minimum:,g}, got {value!r}")
        if self.maximum is not None and value > self.maximum:
            raise DatasetError(f"{where} must be at most {self.maximum:,.12g}, got {value!r}")
        if self.choices and value not in self.choices:
            raise DatasetError(f"{where} must be one of {', '.join(self.choices)}; got {value!r}")
        return value


def _n_samples(default: int = 1000) -> Option:
    return Option("n_samples", int, default, "number of samples generated",
                  minimum=MIN_SAMPLES, maximum=MAX_SAMPLES)


def _noise(default: float, doc: str) -> Option:
    return Option("noise", float, default, doc, minimum=0.0, maximum=10.0)


_VAL_FRACTION = Option("val_fraction", float, 0.2, "share of the samples held out for validation",
                       minimum=0.0, maximum=0.9, exclusive_minimum=True)
_SEED = Option("seed", int, None, "overrides the trainer's seed for generation and split",
               minimum=0, maximum=MAX_SEED)
_TASK = Option("task", str, "auto", "classification or regression; auto decides from the targets",
               choices=("auto", *TASKS))
_X_DTYPE = Option("x_dtype", str, "float32",
                  "float32 features, or int64 token ids for models that embed them",
                  choices=("float32", "int64"))
_COMMON = (_VAL_FRACTION, _SEED)


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset as UIs and the CLI list it: title, task, options; `load` builds it."""

    name: str
    title: str
    task: str  # "classification", "regression", or "from file"
    options: tuple[Option, ...]
    doc: str
    load: Callable[[_Request], Dataset] = field(repr=False, compare=False)

    def option(self, name: str) -> Option | None:
        return next((o for o in self.options if o.name == name), None)


@dataclass(frozen=True)
class _Request:
    """What a loader gets: its resolved options (JSON values, "name" and "seed" included)."""

    info: DatasetInfo
    opts: Mapping[str, Any]
    seed: int
    base_dir: Path | None

    def path(self, key: str) -> Path:
        """The file named by option `key`, resolved; DatasetError unless it is a regular file
        (a FIFO or a device would hang or never end; they are refused by type)."""
        where = f"dataset '{self.info.name}' option '{key}'"
        try:
            path = Path(self.opts[key]).expanduser()
            if not path.is_absolute() and self.base_dir is not None:
                path = self.base_dir / path
            path = path.absolute()
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            raise DatasetError(f"{where}: file not found: {path}") from None
        # ValueError: a NUL byte in the name; RuntimeError: "~nobody/x" with no such user.
        except (OSError, ValueError, RuntimeError) as e:
            text = getattr(e, "strerror", None) or e
            raise DatasetError(f"{where}: cannot use path {self.opts[key]!r}: {text}") from None
        kind = file_kind(mode)
        if kind == "a directory":
            raise DatasetError(f"{where}: {path} is a directory, not a file")
        if kind is not None:
            raise DatasetError(f"{where}: {path} is {kind}, not a regular file")
        return path


# ---- the shared tail: split, standardize, build -----------------------------------------------

def _split(xs: Sequence[np.ndarray], y: np.ndarray, task: str, val_fraction: float, seed: int,
           name: str) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    """Every input array and the targets split alike: (inputs' training parts, inputs'
    validation parts, y_train, y_val)."""
    from sklearn.model_selection import train_test_split

    n = len(y)
    # round() first so 0.2 * 1000 cannot become 200.00000000000003 and ceil to 201.
    n_val = math.ceil(round(n * val_fraction, 9))
    n_train = n - n_val
    if n_train < 1 or n_val < 1:
        raise DatasetError(f"dataset '{name}' has only {n} samples: too few to hold out "
                           f"val_fraction={val_fraction:g} for validation and keep some for "
                           "training")
    stratify = None
    if task == "classification":
        counts = np.bincount(y)
        present = counts[counts > 0]
        if present.min() >= 2 and min(n_val, n_train) >= len(present):
            stratify = y
    # One call splits every array by the same indices: x alone splits as it always did.
    *parts, y_train, y_val = train_test_split(
        *xs, y, test_size=n_val, random_state=seed, stratify=stratify)
    return parts[0::2], parts[1::2], y_train, y_val


def _standardize(x_train: np.ndarray, x_val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x_train.mean(axis=0, dtype=np.float64)
    std = x_train.std(axis=0, dtype=np.float64)
    std[std == 0] = 1.0  # a constant feature becomes 0 rather than NaN
    return (x_train - mean) / std, (x_val - mean) / std


def _finish(req: _Request, task: str, x: np.ndarray | Mapping[str, np.ndarray], y: np.ndarray,
            *, num_classes: int | None, description: str,
            class_names: Sequence[str] | None = None, standardize: bool = False,
            name: str | None = None, image_shape: tuple[int, int] | None = None) -> Dataset:
    """Split, optionally standardize, cast to the trainer's dtypes and build the Dataset.
    `x` is the one input's array, or Input id -> array for several data Inputs."""
    name = name or req.info.name
    if task == "classification":
        y = y.astype(np.int64)
    elif y.ndim == 1:
        y = y.reshape(-1, 1)  # (N,) -> (N, 1): one regression target per sample
    ids = list(x) if isinstance(x, Mapping) else None
    xs = list(x.values()) if isinstance(x, Mapping) else [x]
    trains, vals, y_train, y_val = _split(xs, y, task, req.opts["val_fraction"], req.seed, name)
    if standardize:
        for k in range(len(xs)):
            trains[k], vals[k] = _standardize(trains[k], vals[k])
    x_dtypes = [np.int64 if a.dtype == np.int64 else np.float32 for a in xs]
    return _build(req, task, name, [(np.ascontiguousarray(t, dtype=d),
                                     np.ascontiguousarray(v, dtype=d))
                                    for t, v, d in zip(trains, vals, x_dtypes, strict=True)],
                  y_train, y_val, ids=ids, num_classes=num_classes, description=description,
                  class_names=class_names, image_shape=image_shape)


def _build(req: _Request, task: str, name: str, parts: Sequence[tuple[np.ndarray, np.ndarray]],
           y_train: np.ndarray, y_val: np.ndarray, *, ids: Sequence[str] | None,
           num_classes: int | None, description: str, class_names: Sequence[str] | None = None,
           image_shape: tuple[int, int] | None = None) -> Dataset:
    """The Dataset of split, cast inputs (train, val), one per id in `ids` (None: one
    unnamed input), and targets cast here."""
    y_dtype = np.int64 if task == "classification" else np.float32
    (x_train, x_val), *_ = parts
    return Dataset(
        name=name,
        task=task,
        x_train=x_train,
        y_train=np.ascontiguousarray(y_train, dtype=y_dtype),
        x_val=x_val,
        y_val=np.ascontiguousarray(y_val, dtype=y_dtype),
        num_classes=num_classes,
        input_shape=tuple(int(d) for d in x_train.shape[1:]),
        target_shape=tuple(int(d) for d in y_train.shape[1:]),
        description=description,
        class_names=tuple(class_names) if class_names is not None else None,
        spec=MappingProxyType(dict(req.opts)),
        image_shape=image_shape,
        inputs={k: InputSamples(t, v) for k, (t, v) in zip(ids, parts, strict=True)}
        if ids is not None else {},
    )


# ---- built-in datasets -------------------------------------------------------------------------

def _load_moons(req: _Request) -> Dataset:
    from sklearn.datasets import make_moons

    n, noise = req.opts["n_samples"], req.opts["noise"]
    x, y = make_moons(n_samples=n, noise=noise, random_state=req.seed)
    return _finish(req, "classification", x, y, num_classes=2,
                   description=f"two moons, {n} points, noise {noise:g}")


def _load_circles(req: _Request) -> Dataset:
    from sklearn.datasets import make_circles

    n, noise, factor = req.opts["n_samples"], req.opts["noise"], req.opts["factor"]
    x, y = make_circles(n_samples=n, noise=noise, factor=factor, random_state=req.seed)
    return _finish(req, "classification", x, y, num_classes=2,
                   description=f"two circles, {n} points, noise {noise:g}, factor {factor:g}")


def _load_spirals(req: _Request) -> Dataset:
    n, noise, turns = req.opts["n_samples"], req.opts["noise"], req.opts["turns"]
    rng = np.random.default_rng(req.seed)
    y = np.arange(n) % 2  # alternate the classes: balanced to within one point
    # Archimedean spiral: arc length grows like t², so t = sqrt(u) spaces points evenly along
    # each arm. Starting at t = 0.15 keeps the two arms apart where they meet at the centre.
    t = np.sqrt(rng.uniform(0.15**2, 1.0, n))
    angle = 2 * np.pi * turns * t + np.pi * y  # the second arm is the first turned by 180°
    x = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1)  # (N, 2), radius <= 1
    x += noise * rng.standard_normal(x.shape)
    return _finish(req, "classification", x, y, num_classes=2,
                   description=f"two spirals, {n} points, {turns:g} turns, noise {noise:g}")


def _load_xor(req: _Request) -> Dataset:
    n, noise = req.opts["n_samples"], req.opts["noise"]
    rng = np.random.default_rng(req.seed)
    x = rng.uniform(-1.0, 1.0, (n, 2))
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)  # class 1 where sign(x0 * x1) is positive
    x += noise * rng.standard_normal(x.shape)  # jitter after labelling: points cross the axes
    return _finish(req, "classification", x, y, num_classes=2,
                   description=f"xor, {n} points in [-1, 1]², noise {noise:g}")


def _load_regression1d(req: _Request) -> Dataset:
    n, noise = req.opts["n_samples"], req.opts["noise"]
    rng = np.random.default_rng(req.seed)
    x = rng.uniform(-2.0, 2.0, (n, 1))  # (N, 1)
    y = np.sin(3.0 * x) + noise * rng.standard_normal((n, 1))  # (N, 1)
    return _finish(req, "regression", x, y, num_classes=None,
                   description=f"y = sin(3x) + noise, {n} points on [-2, 2], noise {noise:g}")


def _sequence_size(req: _Request) -> tuple[int, int]:
    n, length = req.opts["n_samples"], req.opts["length"]
    if n * length > MAX_SEQUENCE_VALUES:
        raise DatasetError(f"dataset '{req.info.name}': n_samples * length = {n * length:,} "
                           f"exceeds {MAX_SEQUENCE_VALUES:,}; lower n_samples or length")
    return n, length


def _load_adding(req: _Request) -> Dataset:
    n, length = _sequence_size(req)
    rng = np.random.default_rng(req.seed)
    values = rng.uniform(0.0, 1.0, (n, length))  # (N, T)
    # Two distinct marked steps per sequence: the first two of a random permutation.
    marked = np.argsort(rng.random((n, length)), axis=1)[:, :2]  # (N, 2)
    markers = np.zeros((n, length))
    np.put_along_axis(markers, marked, 1.0, axis=1)
    x = np.stack([values, markers], axis=-1)  # (N, T, 2): value, marker
    y = (values * markers).sum(axis=1, keepdims=True)  # (N, 1)
    return _finish(req, "regression", x, y, num_classes=None,
                   description=f"adding problem, {n} sequences of length {length}")


def _load_parity(req: _Request) -> Dataset:
    n, length = _sequence_size(req)
    rng = np.random.default_rng(req.seed)
    bits = rng.integers(0, 2, (n, length))  # (N, T)
    y = bits.sum(axis=1) % 2
    x = bits[:, :, None].astype(np.float32)  # (N, T) -> (N, T, 1): one feature per step
    return _finish(req, "classification", x, y, num_classes=2, class_names=("even", "odd"),
                   description=f"parity, {n} bit strings of length {length}")


# Characters a text dataset's token ids stand for: id 0 is a newline, ids 1..95 the printable
# ASCII characters from space to "~". Other characters read as "?" (tabs as a space).
TEXT_VOCABULARY = "\n" + "".join(chr(c) for c in range(32, 127))
_CHAR_IDS = {c: i for i, c in enumerate(TEXT_VOCABULARY)}
TEXT_CORPORA = {
    "sklearn_descr": "the descriptions of scikit-learn's bundled datasets (its DESCR texts, "
                     "about 43,000 characters of English)",
    "python_help": "Python's own help topics (the standard library's pydoc_data, about "
                   "470,000 characters)",
}


def encode_text(text: str) -> np.ndarray:
    """Characters → token ids (int64) in TEXT_VOCABULARY's order."""
    unknown = _CHAR_IDS["?"]
    return np.array([_CHAR_IDS.get(" " if c == "\t" else c, unknown) for c in text
                     if c != "\r"], dtype=np.int64)


def decode_text(ids: Sequence[int]) -> str:
    """Token ids → characters; ids outside the vocabulary read as "?"."""
    return "".join(TEXT_VOCABULARY[i] if 0 <= i < len(TEXT_VOCABULARY) else "?"
                   for i in (int(v) for v in ids))


def text_corpus(name: str) -> str:
    """A text that ships with a package dprog depends on, or with Python itself; nothing is
    downloaded."""
    if name == "sklearn_descr":
        import sklearn

        folder = Path(sklearn.__file__).parent / "datasets" / "descr"
        return "\n\n".join(p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.rst")))
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


def _load_text(req: _Request) -> Dataset:
    """Windows of `length` characters, each with the next character at every position as its
    target (a language model's task). The corpus is cut once: training windows come from its
    first part and validation windows from the last `val_fraction` of it, so no validation
    text is seen in training."""
    n, length = _sequence_size(req)
    corpus = req.opts["corpus"]
    ids = encode_text(text_corpus(corpus))   # (characters,)
    fraction = req.opts["val_fraction"]
    cut = int(len(ids) * (1 - fraction))
    parts = {"train": ids[:cut], "val": ids[cut:]}
    for part, chars in parts.items():
        if len(chars) <= length + 1:
            raise DatasetError(f"dataset 'text': its {part} part has {len(chars)} characters, too "
                               f"few for windows of length {length}; lower length or "
                               "val_fraction")
    rng = np.random.default_rng(req.seed)
    n_val = math.ceil(round(n * fraction, 9))
    arrays = {}
    for part, count in (("train", n - n_val), ("val", n_val)):
        chars = parts[part]
        starts = rng.integers(0, len(chars) - length, count)   # (N,)
        window = starts[:, None] + np.arange(length)           # (N, T)
        arrays[part] = (chars[window], chars[window + 1])      # ids, and the next ones
    return Dataset(
        name="text", task="classification",
        x_train=arrays["train"][0], y_train=arrays["train"][1],
        x_val=arrays["val"][0], y_val=arrays["val"][1],
        num_classes=len(TEXT_VOCABULARY), input_shape=(length,), target_shape=(length,),
        description=f"{n} windows of {length} characters from {TEXT_CORPORA[corpus]}; target: "
                    "the next character at every position",
        spec=MappingProxyType(dict(req.opts)), vocabulary=TEXT_VOCABULARY)


def _load_digits(req: _Request) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    size, channels = req.opts["size"], req.opts["channels"]
    # (N, 1, 8, 8), pixel values 0..16 -> [0, 1]; float32 before resizing: 64×64×3 is 88 MB
    x = (bunch.data.reshape(-1, 1, 8, 8) / 16.0).astype(np.float32)
    if size != 8:   # bilinear, for models made for larger images (an imported ResNet)
        from scipy.ndimage import zoom

        x = np.clip(zoom(x, (1, 1, size / 8, size / 8), order=1, grid_mode=True,
                         mode="grid-constant"), 0.0, 1.0)   # (N, 1, size, size)
    x = np.repeat(x, channels, axis=1)   # (N, channels, size, size): grey as RGB for channels=3
    shape = f"{channels}×{size}×{size} images"
    if req.opts["flatten"]:
        x = x.reshape(len(x), -1)   # (N, channels·size·size)
        shape = f"{x.shape[1]} features"
    return _finish(req, "classification", x, bunch.target, num_classes=10,
                   class_names=[str(d) for d in range(10)], image_shape=(size, size),
                   description=f"handwritten digits, {len(x)} {shape} in [0, 1], 10 classes")


PAIR_INPUTS = ("left", "right")   # the Input ids digit_pairs feeds
MAX_PAIRS = 100_000
MIN_PAIR_POOL = 40   # images in the validation pool at least: a few of every digit


def _pair_indices(rng: np.random.Generator, digits: np.ndarray, count: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`count` pairs of image indices into a pool whose images show `digits`: (left, right,
    same). Half the pairs (to within one) show one digit twice, two different images of it,
    in a shuffled order; the others two different digits, each pair of digits equally likely."""
    order = np.argsort(digits, kind="stable")             # the pool's images, digit by digit
    sizes = np.bincount(digits, minlength=10)             # (10,) images of each digit
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    same = rng.permutation(np.arange(count) % 2 == 0)     # (count,) balanced
    first = rng.integers(0, 10, count)
    second = np.where(same, first, (first + rng.integers(1, 10, count)) % 10)
    i = (rng.random(count) * sizes[first]).astype(np.int64)
    # The same digit: another image of it (an offset of 1..size-1 around the pool of it).
    j_same = (i + 1 + (rng.random(count) * (sizes[first] - 1)).astype(np.int64)) % sizes[first]
    j = np.where(same, j_same, (rng.random(count) * sizes[second]).astype(np.int64))
    return order[starts[first] + i], order[starts[second] + j], same


def _load_digit_pairs(req: _Request) -> Dataset:
    """Pairs of digit images as two inputs, `left` and `right`; class 1 ("same") when both
    show the same digit. The images are split first, stratified by digit (val_fraction of
    them, at least MIN_PAIR_POOL, form the validation pool), and each part's pairs come from
    its own pool: no validation image is seen in training."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    n, fraction = req.opts["n_samples"], req.opts["val_fraction"]
    bunch = load_digits()
    images = bunch.data / 16.0   # (1797, 64), pixel values 0..16 -> [0, 1]
    if not req.opts["flatten"]:
        images = images.reshape(-1, 1, 8, 8)   # (N, 64) -> (N, C=1, H=8, W=8)
    pool_val = max(math.ceil(len(images) * fraction), MIN_PAIR_POOL)
    img_train, img_val, digit_train, digit_val = train_test_split(
        images, bunch.target, test_size=pool_val, random_state=req.seed, stratify=bunch.target)
    n_val = math.ceil(round(n * fraction, 9))
    rng = np.random.default_rng(req.seed)
    lefts, rights, ys = [], [], []
    for pool, digits, count in ((img_train, digit_train, n - n_val), (img_val, digit_val, n_val)):
        left, right, same = _pair_indices(rng, digits, count)
        lefts.append(pool[left].astype(np.float32))
        rights.append(pool[right].astype(np.float32))
        ys.append(same.astype(np.int64))
    shape = "64 features" if req.opts["flatten"] else "1×8×8 images"
    return _build(req, "classification", "digit_pairs",
                  [(np.ascontiguousarray(lefts[0]), np.ascontiguousarray(lefts[1])),
                   (np.ascontiguousarray(rights[0]), np.ascontiguousarray(rights[1]))],
                  ys[0], ys[1], ids=PAIR_INPUTS, num_classes=2,
                  class_names=("different", "same"),
                  description=f"{n} pairs of handwritten digits ({shape} as inputs "
                              f"{' and '.join(PAIR_INPUTS)}), half of them the same digit; "
                              "target: same digit or not")


def _load_iris(req: _Request) -> Dataset:
    from sklearn.datasets import load_iris

    bunch = load_iris()
    return _finish(req, "classification", bunch.data, bunch.target, num_classes=3,
                   class_names=[str(s) for s in bunch.target_names], standardize=True,
                   description=f"iris flowers, {len(bunch.data)} samples, "
                               "4 standardized features, 3 classes")


# ---- user files -------------------------------------------------------------------------------

def _cell_number(cell: str, path: Path, line: int, column: str) -> float:
    where = f"{path}, line {line}, column '{column}'"
    text = cell.strip()
    if not text:
        raise DatasetError(f"{where}: empty cell; every feature and target needs a value")
    try:
        value = float(text)
    except ValueError:
        raise DatasetError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise DatasetError(f"{where}: {text!r} is not a finite number")
    return value


def _csv_lines(f: TextIO, path: Path) -> Iterator[str]:
    """The file's lines, refusing one longer than MAX_CSV_LINE characters: a file with no
    line breaks (a binary, or a sparse file of zeros) is refused after that many characters
    instead of being read whole into memory."""
    number = 0
    while True:
        line = f.readline(MAX_CSV_LINE + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_CSV_LINE:
            raise DatasetError(f"{path}, line {number}: longer than {MAX_CSV_LINE:,} "
                               "characters; is it a CSV file?")
        yield line


@dataclass
class _CsvTable:
    """A CSV file read row by row: features parsed to numbers as they come (8 bytes each),
    target cells kept as text (the task is decided from all of them)."""

    header: list[str]
    header_line: int
    target: int
    values: array.array = field(default_factory=lambda: array.array("d"))
    labels: list[tuple[int, str]] = field(default_factory=list)   # (line, target cell)

    @property
    def features(self) -> list[int]:
        return [j for j in range(len(self.header)) if j != self.target]

    def add(self, cells: list[str], line: int, path: Path) -> None:
        if len(cells) != len(self.header):
            raise DatasetError(f"{path}, line {line}: {_count(len(cells), 'cell')}, but the "
                               f"header on line {self.header_line} has {len(self.header)} columns")
        if len(self.labels) == MAX_SAMPLES:
            raise DatasetError(f"{path} has more than {MAX_SAMPLES:,} rows")
        features = self.features
        if len(self.values) + len(features) > MAX_CSV_VALUES:
            raise DatasetError(f"{path}: more than {MAX_CSV_VALUES:,} feature values "
                               f"({len(features)} columns); use an .npz file for data this large")
        self.values.extend(_cell_number(cells[j], path, line, self.header[j]) for j in features)
        self.labels.append((line, cells[self.target].strip()))


def _read_csv(path: Path, delimiter: str, target: str | None) -> _CsvTable:
    """The header, its line number, the target column, feature values and target cells."""
    table: _CsvTable | None = None
    try:
        # utf-8-sig: spreadsheet programs often start the file with a byte-order mark.
        with open_regular(path) as raw, io.TextIOWrapper(raw, encoding="utf-8-sig",
                                                          newline="") as f:
            reader = csv.reader(_csv_lines(f, path), delimiter=delimiter)
            try:
                for cells in reader:
                    if not cells:
                        continue  # an empty line
                    # line_num counts physical lines, so a quoted multi-line cell still
                    # leaves the right number for the next record.
                    if table is None:
                        table = _csv_header([c.strip() for c in cells], reader.line_num, path,
                                            target, delimiter)
                    else:
                        table.add(cells, reader.line_num, path)
            except csv.Error as e:
                raise DatasetError(f"{path}, line {reader.line_num}: malformed CSV: {e}") from None
    except UnicodeDecodeError as e:
        raise DatasetError(
            f"{path} is not UTF-8 text (byte {e.start}); is it a CSV file?") from None
    except FileRefused as e:
        raise DatasetError(f"{path} {e}") from None
    except OSError as e:
        raise DatasetError(f"cannot read {path}: {e.strerror or e}") from None
    if table is None:
        raise DatasetError(f"{path} is empty; a CSV dataset needs a header line and data rows")
    if not table.labels:
        raise DatasetError(f"{path} has a header but no data rows")
    return table


def _csv_header(header: list[str], line: int, path: Path, target: str | None,
                delimiter: str) -> _CsvTable:
    if len(header) < 2:
        raise DatasetError(f"{path} has a single column; it needs feature columns and a target "
                           f"(if its cells are not separated by {delimiter!r}, set the option "
                           "delimiter)")
    target = target if target is not None else header[-1]
    if header.count(target) != 1:
        if target in header:
            raise DatasetError(f"{path}: the header names column '{target}' more than once")
        hint = difflib.get_close_matches(target, header, n=1)
        raise DatasetError(
            f"{path}: no column named '{target}'"
            + (f" (did you mean '{hint[0]}'?)" if hint else "")
            + f"; the header on line {line} names: {', '.join(header)}")
    return _CsvTable(header, line, header.index(target))


def _class_ids(labels: Sequence[Any], names: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Ids in sorted order of the distinct labels, and each class's name."""
    classes = sorted(set(labels))
    index = {label: i for i, label in enumerate(classes)}
    name_of = dict(zip(labels, names, strict=True))
    return np.array([index[label] for label in labels], np.int64), [name_of[c] for c in classes]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _number_text(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _load_csv(req: _Request) -> Dataset:
    path = req.path("path")
    table = _read_csv(path, req.opts["delimiter"], req.opts["target"])
    target = table.header[table.target]
    features = table.features
    x = np.frombuffer(table.values, dtype=np.float64).reshape(len(table.labels), len(features))
    for line, label in table.labels:
        if not label:
            raise DatasetError(f"{path}, line {line}, column '{target}': empty target cell")
    labels = [label for _, label in table.labels]
    numeric = all(_is_number(label) for label in labels)
    numbers: list[float] = []
    if numeric or req.opts["task"] == "regression":
        # Names the first cell that is not a finite number: a numeric target must be all numbers.
        numbers = [_cell_number(label, path, line, target) for line, label in table.labels]
    task = req.opts["task"]
    if task == "auto":
        task = "classification" if not numeric or (
            all(v.is_integer() for v in numbers) and len(set(numbers)) <= MAX_AUTO_CLASSES
        ) else "regression"
    if task == "regression":
        y = np.array(numbers, np.float64)
        kind = "regression"
        num_classes, class_names = None, None
    else:
        if numeric:
            y, class_names = _class_ids(numbers, [_number_text(v) for v in numbers])
        else:
            y, class_names = _class_ids(labels, labels)
        num_classes = len(class_names)
        if num_classes < 2:
            raise DatasetError(f"{path}: column '{target}' holds a single class "
                               f"({class_names[0]!r}); classification needs at least 2")
        kind = f"{num_classes} classes"
    _check_float32(x, f"{path}, feature columns")
    return _finish(req, task, x, y, num_classes=num_classes, class_names=class_names,
                   standardize=req.opts["standardize"], name=path.name,
                   description=f"{path.name}: {_count(len(labels), 'row')}, "
                               f"{_count(len(features), 'feature')}, "
                               f"target '{target}' ({kind})")


@dataclass(frozen=True)
class _NpyHeader:
    """What an .npy header promises, checked before any of its data is read."""

    shape: tuple[int, ...]
    fortran_order: bool
    dtype: np.dtype
    where: str

    @property
    def count(self) -> int:
        return math.prod(self.shape)


def _npy_header(fp: BinaryIO, where: str) -> _NpyHeader:
    """The header of one .npy array, refused unless it holds plain numbers or strings of a
    size dprog reads: never unpickled, never allocated for first."""
    try:
        version = np.lib.format.read_magic(fp)
        # Version 3 headers differ from version 2 only by allowing UTF-8 field names.
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran_order, dtype = read_header(fp)
    # numpy parses the header's text with tokenize and literal_eval: damaged text fails
    # there in more ways than ValueError (tokenize.TokenError, SyntaxError, RecursionError).
    except Exception as e:
        raise DatasetError(f"{where} is not a valid NumPy .npy array "
                           f"({type(e).__name__}: {e})") from None
    if dtype.hasobject:
        raise DatasetError(f"{where} holds Python objects (dtype {dtype}); refused, because "
                           "loading them would unpickle and could run code. Save plain numbers.")
    if dtype.kind not in "biufU" or dtype.itemsize == 0:
        raise DatasetError(f"{where} has dtype {dtype}; expected numbers (or strings for labels)")
    header = _NpyHeader(tuple(shape), fortran_order, dtype, where)
    need = header.count * dtype.itemsize
    if need > MAX_ARRAY_BYTES:
        raise DatasetError(f"{where} is too large: shape {shape} needs {need:,} bytes "
                           f"(limit {MAX_ARRAY_BYTES:,})")
    if header.count > MAX_FILE_VALUES:
        raise DatasetError(f"{where} is too large: shape {shape} holds {header.count:,} values "
                           f"(limit {MAX_FILE_VALUES:,})")
    if shape and shape[0] > MAX_SAMPLES:
        raise DatasetError(f"{where} has {shape[0]:,} samples; the limit is {MAX_SAMPLES:,}")
    return header


def _npy_data(fp: BinaryIO, header: _NpyHeader, size: int) -> np.ndarray:
    """The array a checked header promises, read in chunks into place (no second copy)."""
    need = header.count * header.dtype.itemsize
    left = size - fp.tell()
    out = np.empty(header.count, dtype=header.dtype)
    flat = out.view(np.uint8).reshape(-1)
    got = 0
    while left >= need and got < need:
        chunk = fp.read(min(need - got, 1 << 24))
        if not chunk:
            break
        flat[got:got + len(chunk)] = np.frombuffer(chunk, np.uint8)
        got += len(chunk)
    if got < need:
        raise DatasetError(f"{header.where} is truncated: its header promises shape "
                           f"{header.shape} ({need:,} bytes) but only {max(left, got):,} "
                           "bytes follow")
    return out.reshape(header.shape, order="F" if header.fortran_order else "C")


def _read_pair(streams: Sequence[tuple[BinaryIO, int, str]]) -> list[np.ndarray]:
    """Features and targets (the features of several inputs, then the targets) from open .npy
    streams (stream, size, where): every header first, so a mismatch or an oversized array
    is refused before any is read."""
    headers = [_npy_header(fp, where) for fp, _, where in streams]
    x = headers[0]
    for y in headers[1:]:
        if x.shape and y.shape and x.shape[0] != y.shape[0]:
            raise DatasetError(f"{x.where} has {x.shape[0]} samples but {y.where} has "
                               f"{y.shape[0]}; they must match row for row")
    total = sum(h.count for h in headers)
    if total > MAX_DATASET_VALUES:
        raise DatasetError(f"{x.where} and the arrays read with it are too large together: "
                           f"{total:,} values (limit {MAX_DATASET_VALUES:,})")
    return [_npy_data(fp, header, size) for (fp, size, _), header in zip(streams, headers,
                                                                          strict=True)]


def _open_data(path: Path) -> BinaryIO:
    try:
        return open_regular(path)
    except FileRefused as e:
        raise DatasetError(f"{path} {e}") from None


def _read_npy_files(paths: Sequence[Path]) -> list[np.ndarray]:
    try:
        with _open_data(paths[0]) as fx, _open_data(paths[1]) as fy:
            streams = []
            for f, path in ((fx, paths[0]), (fy, paths[1])):
                if f.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC:
                    raise DatasetError(f"{path} is an .npz archive, not an .npy array; "
                                       "use the dataset name 'npz'")
                f.seek(0)
                streams.append((f, os.fstat(f.fileno()).st_size, str(path)))
            return _read_pair(streams)
    except OSError as e:
        raise DatasetError(f"cannot read {e.filename or paths[0]}: {e.strerror or e}") from None


def _zip_directory_size(f: BinaryIO, path: Path) -> None:
    """Refuse an archive whose central directory lists more than MAX_NPZ_MEMBERS entries,
    read from its end record before zipfile loads the directory into memory."""
    size = f.seek(0, os.SEEK_END)
    f.seek(max(0, size - (1 << 16) - 22))
    tail = f.read()
    at = tail.rfind(b"PK\x05\x06")
    if at >= 0 and len(tail) >= at + 22:
        entries, = struct.unpack("<H", tail[at + 10:at + 12])
        if entries > MAX_NPZ_MEMBERS:
            raise DatasetError(f"{path} lists {entries:,} arrays or more; an .npz dataset "
                               f"holds a few (limit {MAX_NPZ_MEMBERS:,})")
    f.seek(0)


def _read_npz(path: Path, keys: Sequence[str],
              hint: Callable[[str, list[str]], str] | None = None) -> list[np.ndarray]:
    """The arrays `keys` of an .npz archive, in order; every header is checked before any
    array is read. `hint(key, names)` adds to the message for a missing array."""
    try:
        with _open_data(path) as f:
            if f.read(len(_NPY_MAGIC)) == _NPY_MAGIC:
                raise DatasetError(f"{path} is a single .npy array, not an .npz archive; "
                                   "use the dataset name 'npy'")
            _zip_directory_size(f, path)
            with zipfile.ZipFile(f) as archive:
                members = {n.removesuffix(".npy"): n for n in archive.namelist()
                           if n.endswith(".npy")}
                infos = []
                for key in keys:
                    if key not in members:
                        names = sorted(members)
                        raise DatasetError(f"{path} has no array '{key}'; it holds: "
                                           f"{', '.join(names) or 'no arrays'}"
                                           + (hint(key, names) if hint is not None else ""))
                    infos.append(archive.getinfo(members[key]))
                with contextlib.ExitStack() as stack:
                    streams = [(stack.enter_context(archive.open(info)), info.file_size,
                                f"{path}['{key}']") for key, info in zip(keys, infos, strict=True)]
                    return _read_pair(streams)
    except DatasetError:
        raise
    # A corrupt archive fails in zipfile, zlib or struct, depending on where the damage is;
    # zipfile says RuntimeError for a member flagged as encrypted.
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error, EOFError,
            NotImplementedError, ValueError, RuntimeError) as e:
        raise DatasetError(f"{path} is not a readable .npz archive: {e}") from None
    except OSError as e:
        raise DatasetError(f"cannot read {path}: {e.strerror or e}") from None


def _check_float32(x: np.ndarray, where: str) -> None:
    if x.size and np.abs(x).max() > np.finfo(np.float32).max:
        raise DatasetError(f"{where}: values too large for float32 (max {np.abs(x).max():g})")


def _check_finite(a: np.ndarray, where: str) -> None:
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        raise DatasetError(f"{where} has a non-finite value ({a[tuple(bad)]}) "
                           f"at index {tuple(int(i) for i in bad)}")


def _features(req: _Request, x: np.ndarray, y: np.ndarray, x_where: str,
              y_where: str) -> np.ndarray:
    """One input's user array, checked against the targets and converted."""
    for a, where in ((x, x_where), (y, y_where)):
        if a.ndim == 0:
            raise DatasetError(f"{where} is a single value; expected one row per sample")
    if len(x) != len(y):
        raise DatasetError(f"{x_where} has {len(x)} samples but {y_where} has {len(y)}; "
                           "they must match row for row")
    if len(x) > MAX_SAMPLES:
        raise DatasetError(f"{x_where} has {len(x):,} samples; the limit is {MAX_SAMPLES:,}")
    if x.dtype.kind not in "biuf":
        raise DatasetError(f"{x_where} has dtype {x.dtype}; features must be numbers")
    _check_finite(x, x_where)
    if req.opts["x_dtype"] == "int64":
        if (x.dtype.kind == "f" and (x != np.round(x)).any()) or (x.size and x.min() < 0):
            raise DatasetError(f"{x_where}: x_dtype int64 needs non-negative integer token ids")
        x = x.astype(np.int64)
    else:
        _check_float32(x, x_where)
        x = x.astype(np.float64)
    if x.ndim == 1:
        x = x.reshape(-1, 1)  # (N,) -> (N, 1): one feature per sample
    return x


def _from_arrays(req: _Request, name: str, x: np.ndarray | Mapping[str, np.ndarray],
                 y: np.ndarray, x_where: str | Mapping[str, str], y_where: str) -> Dataset:
    """Check and convert user arrays (features x, targets y) into a Dataset; x (and x_where)
    by Input id for several inputs."""
    if isinstance(x, Mapping):
        x = {k: _features(req, a, y, x_where[k], y_where) for k, a in x.items()}
        shapes = ", ".join(f"{k} {a.shape[1:]}" for k, a in x.items())
        inputs = f"inputs {shapes}"
        n = len(y)
    else:
        x = _features(req, x, y, x_where, y_where)
        inputs = f"inputs of shape {x.shape[1:]}"
        n = len(x)

    task = req.opts["task"]
    labels = y.dtype.kind == "U"
    if task == "auto":
        task = "classification" if labels or y.dtype.kind in "biu" else "regression"
    class_names = None
    if task == "classification":
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]  # (N, 1) -> (N,): class ids are one per sample
        if y.ndim != 1:
            raise DatasetError(f"{y_where} has shape {y.shape}; class ids must be one per sample")
        if labels:
            text = [str(v) for v in y]
            y, class_names = _class_ids(text, text)
            num_classes = len(class_names)
        else:
            _check_finite(y, y_where)
            if y.dtype.kind == "f" and (y != np.round(y)).any():
                raise DatasetError(f"{y_where} holds fractional values; class ids must be "
                                   "integers (or set task to regression)")
            if y.size and y.min() < 0:
                raise DatasetError(f"{y_where} holds negative class ids (min {y.min()})")
            num_classes = int(y.max()) + 1
            if num_classes > MAX_CLASSES:
                raise DatasetError(f"{y_where}: class id {num_classes - 1} implies "
                                   f"{num_classes:,} classes; renumber them from 0")
        if num_classes < 2:
            raise DatasetError(f"{y_where} holds a single class; classification needs at least 2")
        kind = f"{num_classes} classes"
    else:
        if labels:
            raise DatasetError(f"{y_where} holds strings; regression targets must be numbers")
        if y.dtype.kind not in "biuf":
            raise DatasetError(f"{y_where} has dtype {y.dtype}; targets must be numbers")
        _check_finite(y, y_where)
        _check_float32(y, y_where)
        num_classes = None
        kind = f"regression targets of shape {tuple(y.shape[1:]) or (1,)}"
    return _finish(req, task, x, y.astype(np.float64) if task == "regression" else y,
                   num_classes=num_classes, class_names=class_names, name=name,
                   description=f"{name}: {n} samples, {inputs}, {kind}")


def _npz_inputs(req: _Request) -> list[str] | None:
    """The Input ids the npz option `inputs` lists (None: unset, one input `x`)."""
    text, y_key = req.opts["inputs"], req.opts["y"]
    if text is None:
        return None
    where = "dataset 'npz' option 'inputs'"
    ids = [part.strip() for part in text.split(",")]
    if req.opts["x"] != "x":
        raise DatasetError(f"{where}: set either x (one input) or inputs (one array per "
                           "Input id), not both")
    if not any(ids):
        raise DatasetError(f"{where}: list the Input ids, comma-separated (e.g. \"left,right\")")
    if len(ids) > MAX_NPZ_MEMBERS:
        raise DatasetError(f"{where}: {len(ids):,} Input ids; the limit is {MAX_NPZ_MEMBERS:,}")
    for k in ids:
        if not ID_PATTERN.fullmatch(k):
            raise DatasetError(f"{where}: {k!r} is not an Input id (1-64 letters, digits or _, "
                               "not starting with a digit); each names an Input of the graph "
                               "and an array of the archive")
        if k == y_key:
            raise DatasetError(f"{where}: '{k}' is the targets' array (option y); an input "
                               "needs an array of its own")
        if k == TARGET_INPUT:
            raise DatasetError(f"{where}: the Input id '{TARGET_INPUT}' is kept for the "
                               "targets (loss \"graph\"); rename that array and its Input")
        if ids.count(k) > 1:
            raise DatasetError(f"{where}: '{k}' is listed twice")
    return ids


def _load_npz(req: _Request) -> Dataset:
    path = req.path("path")
    x_key, y_key = req.opts["x"], req.opts["y"]
    ids = _npz_inputs(req)
    if ids is None:
        def hint(key: str, names: list[str]) -> str:
            others = [k for k in names if k != y_key]
            if key != x_key or y_key not in names or not others:
                return ""
            return (f"; for one array per Input id, set the option inputs to "
                    f"\"{','.join(others)}\"")

        x, y = _read_npz(path, [x_key, y_key], hint)
        return _from_arrays(req, path.name, x, y, f"{path}['{x_key}']", f"{path}['{y_key}']")
    *xs, y = _read_npz(path, [*ids, y_key])
    return _from_arrays(req, path.name, dict(zip(ids, xs, strict=True)), y,
                        {k: f"{path}['{k}']" for k in ids}, f"{path}['{y_key}']")


def _load_npy(req: _Request) -> Dataset:
    x_path, y_path = req.path("path"), req.path("targets")
    x, y = _read_npy_files([x_path, y_path])
    return _from_arrays(req, x_path.name, x, y, str(x_path), str(y_path))


# ---- the registry -------------------------------------------------------------------------------

BUILTIN: dict[str, DatasetInfo] = {info.name: info for info in (
    DatasetInfo("moons", "Two moons", "classification",
                (_n_samples(), _noise(0.2, "std of Gaussian noise added to the points"),
                 *_COMMON),
                "Two interleaving half circles (sklearn make_moons), raw 2-D coordinates.",
                _load_moons),
    DatasetInfo("circles", "Two circles", "classification",
                (_n_samples(), _noise(0.1, "std of Gaussian noise added to the points"),
                 Option("factor", float, 0.5, "inner circle radius relative to the outer one",
                        minimum=0.0, maximum=0.99), *_COMMON),
                "A small circle inside a large one (sklearn make_circles), raw 2-D coordinates.",
                _load_circles),
    DatasetInfo("spirals", "Two spirals", "classification",
                (_n_samples(), _noise(0.05, "std of Gaussian noise added to the points"),
                 Option("turns", float, 1.5, "turns of each spiral arm", minimum=0.25,
                        maximum=10.0), *_COMMON),
                "Two interleaved spiral arms within radius 1, raw 2-D coordinates.",
                _load_spirals),
    DatasetInfo("xor", "XOR", "classification",
                (_n_samples(), _noise(0.1, "std of Gaussian jitter added after labelling"),
                 *_COMMON),
                "Points uniform in [-1, 1]²; class 1 where x0 * x1 > 0, else class 0.",
                _load_xor),
    DatasetInfo("regression1d", "Sine regression", "regression",
                (_n_samples(), _noise(0.1, "std of Gaussian noise added to the targets"),
                 *_COMMON),
                "y = sin(3x) + noise for x uniform on [-2, 2]; input (1,), target (1,).",
                _load_regression1d),
    DatasetInfo("digits", "Handwritten digits", "classification",
                (Option("flatten", bool, False, "give (64,) vectors instead of (1, 8, 8) images"),
                 Option("size", int, 8, "image side in pixels: 8 as scanned, more resized "
                        "bilinearly (32 for an imported ResNet)", minimum=8, maximum=64),
                 Option("channels", int, 1, "3 repeats the grey image as RGB, for models made "
                        "for colour images", minimum=1, maximum=3),
                 *_COMMON),
                "scikit-learn's 1797 8×8 digit images, pixels scaled to [0, 1], 10 classes.",
                _load_digits),
    DatasetInfo("digit_pairs", "Pairs of digits", "classification",
                (Option("n_samples", int, 2000, "number of pairs generated",
                        minimum=MIN_SAMPLES, maximum=MAX_PAIRS),
                 Option("flatten", bool, False, "give (64,) vectors instead of (1, 8, 8) images"),
                 *_COMMON),
                "Pairs of scikit-learn's 8×8 digit images (pixels in [0, 1]) as two inputs, "
                "Input ids left and right; class 1 (same) when both show the same digit, half "
                "the pairs. Validation pairs come from images training never sees.",
                _load_digit_pairs),
    DatasetInfo("iris", "Iris flowers", "classification", _COMMON,
                "Fisher's 150 iris flowers: 4 features standardized with the training part's "
                "mean and std, 3 classes.",
                _load_iris),
    DatasetInfo("adding", "Adding problem", "regression",
                (_n_samples(), Option("length", int, 20, "steps per sequence", minimum=2,
                                      maximum=1000), *_COMMON),
                "Sequences (T, 2) of a uniform value and a 0/1 marker; exactly two steps are "
                "marked and the target (1,) is the sum of their values. For recurrent models.",
                _load_adding),
    DatasetInfo("parity", "Parity", "classification",
                (_n_samples(), Option("length", int, 8, "bits per sequence", minimum=2,
                                      maximum=1000), *_COMMON),
                "Bit strings (T, 1); class 1 when the number of ones is odd. For recurrent models.",
                _load_parity),
    DatasetInfo("text", "Text (characters)", "classification",
                (Option("corpus", str, "sklearn_descr", "the text: " + "; ".join(
                    f"{k}: {v}" for k, v in TEXT_CORPORA.items()), choices=tuple(TEXT_CORPORA)),
                 _n_samples(2000),
                 Option("length", int, 32, "characters per window (the context)", minimum=2,
                        maximum=1024), *_COMMON),
                "Windows (T,) of character ids from a text that ships with scikit-learn or "
                "Python; the target (T,) is the next character at every position. For language "
                "models; 96 ids: newline and printable ASCII.",
                _load_text),
)}

_PATH_DOC = "the file to read; relative paths start at the graph file's folder"
FILE_FORMATS: dict[str, DatasetInfo] = {info.name: info for info in (
    DatasetInfo("csv", "CSV file", "from file",
                (Option("path", str, None, _PATH_DOC, required=True),
                 Option("target", str, None, "the target column's name (default: the last)"),
                 _TASK,
                 Option("delimiter", str, ",", "the character between cells",
                        choices=(",", ";", "\t", "|", " ")),
                 Option("standardize", bool, False,
                        "scale features to zero mean and unit variance (training statistics)"),
                 *_COMMON),
                "A CSV file with a header line; numeric feature columns and one target column.",
                _load_csv),
    DatasetInfo("npz", "NumPy .npz archive", "from file",
                (Option("path", str, None, _PATH_DOC, required=True),
                 Option("x", str, "x", "name of the features array in the archive"),
                 Option("y", str, "y", "name of the targets array in the archive"),
                 Option("inputs", str, None, "several inputs: the Input ids, comma-separated, "
                        "each the name of an array in the archive (instead of x)"),
                 _TASK, _X_DTYPE, *_COMMON),
                "Features and targets as arrays of one .npz archive (no pickled objects): x and "
                "y, or one array per Input id (option inputs) and y.",
                _load_npz),
    DatasetInfo("npy", "NumPy .npy arrays", "from file",
                (Option("path", str, None, _PATH_DOC, required=True),
                 Option("targets", str, None, "the .npy file of targets", required=True),
                 _TASK, _X_DTYPE, *_COMMON),
                "Features and targets as two .npy files (no pickled objects).",
                _load_npy),
)}


def load_dataset(spec: Mapping[str, Any], seed: int = 0, *,
                 base_dir: str | Path | None = None) -> Dataset:
    """Build the dataset a graph file's `dataset` section describes, e.g. {"name": "moons"}.

    `seed` seeds generation and split unless the spec has its own `seed`. Relative paths in
    the spec resolve against `base_dir` when given. Raises DatasetError for any mistake.
    """
    if not isinstance(spec, Mapping):
        raise DatasetError(f"the dataset section must be a JSON object, got {type(spec).__name__}")
    known = {**BUILTIN, **FILE_FORMATS}
    name = spec.get("name")
    if not isinstance(name, str) or name not in known:
        hint = difflib.get_close_matches(name, known, n=1) if isinstance(name, str) else []
        said = "has no name" if name is None else f"names an unknown dataset {name!r}"
        raise DatasetError(f"the dataset section {said}"
                           + (f" (did you mean '{hint[0]}'?)" if hint else "")
                           + f"; known datasets: {', '.join(known)}")
    info = known[name]
    names = [o.name for o in info.options]
    unknown = [key for key in spec if key != "name" and key not in names]
    if unknown:
        problems = []
        for key in unknown:
            hint = difflib.get_close_matches(str(key), names, n=1)
            problems.append(f"no option {str(key)!r}"
                            + (f" (did you mean '{hint[0]}'?)" if hint else ""))
        raise DatasetError(f"dataset '{name}' has " + "; ".join(problems)
                           + f"; its options are: {', '.join(names)}")
    opts: dict[str, Any] = {"name": name}
    for option in info.options:
        opts[option.name] = option.check(spec.get(option.name, option.default), name)
    if opts["seed"] is None:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise DatasetError(f"the seed must be an integer in 0..{MAX_SEED}, got {seed!r}")
        opts["seed"] = seed
    request = _Request(info, opts, opts["seed"], Path(base_dir) if base_dir is not None else None)
    return info.load(request)


def check_input_shape(dataset: Dataset, expected: Sequence[int],
                      input_name: str = "x", input_id: str | None = None) -> str | None:
    """A message saying how to fix the graph when the dataset's per-sample input shape differs
    from the shape an Input node expects (without the batch dim), else None. `input_id`
    picks one of several inputs (`Dataset.inputs`); None: the one input."""
    expected = tuple(int(d) for d in expected)
    actual = dataset.inputs[input_id].shape if input_id is not None else dataset.input_shape
    if expected == actual:
        return None
    array = f" for '{input_id}'" if input_id is not None else ""
    message = (f"dataset '{dataset.name}' gives inputs of shape {actual}{array} but Input "
               f"'{input_name}' expects {expected}: set the Input's shape to {list(actual)}")
    if expected[1:] == actual:
        message += " (the batch dimension is implicit, leave it out)"
    flatten = dataset.spec.get("flatten")
    if flatten is False and expected == (math.prod(actual),):
        message += " or use the dataset option flatten=true"
    elif flatten is True and math.prod(expected) == math.prod(actual):
        message += " or use the dataset option flatten=false"
    return message


def check_token_ids(dataset: Dataset, num_embeddings: int, embedding: str,
                    input_id: str | None = None) -> str | None:
    """A message when the dataset's integer features (token ids) go past what an Embedding
    of `num_embeddings` rows accepts, the way class ids past the model's outputs get one;
    None when they fit or the features are not ids. `input_id`: only that input's ids
    (None: every input's)."""
    top = token_id_max(dataset, input_id)
    if top is None:
        return None
    if top < num_embeddings:
        return None
    return (f"dataset '{dataset.name}' holds token ids up to {top}, but Embedding "
            f"'{embedding}' has num_embeddings {num_embeddings} (ids 0..{num_embeddings - 1}): "
            f"set num_embeddings to at least {top + 1}")


def token_id_max(dataset: Dataset, input_id: str | None = None) -> int | None:
    """The largest token id among the integer inputs (`input_id`'s alone, when given); None
    when there are none."""
    arrays = [a for k, train, val in dataset.feeds() if input_id in (None, k)
              for a in (train, val) if a.dtype == np.int64 and a.size]
    return max((int(a.max()) for a in arrays), default=None)
