"""Tests for engine.data.datasets: built-ins, seeding and splits, user files and their errors."""

from __future__ import annotations

import math
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.data.datasets import (
    BUILTIN,
    FILE_FORMATS,
    Dataset,
    DatasetError,
    check_input_shape,
    load_dataset,
)

REPO = Path(__file__).resolve().parents[1]

# name -> (task, input_shape, target_shape, num_classes) with default options
EXPECTED = {
    "moons": ("classification", (2,), (), 2),
    "circles": ("classification", (2,), (), 2),
    "spirals": ("classification", (2,), (), 2),
    "xor": ("classification", (2,), (), 2),
    "regression1d": ("regression", (1,), (1,), None),
    "digits": ("classification", (1, 8, 8), (), 10),
    "iris": ("classification", (4,), (), 3),
    "adding": ("regression", (20, 2), (1,), None),
    "parity": ("classification", (8, 1), (), 2),
    "text": ("classification", (32,), (32,), 96),
    "digit_pairs": ("classification", (1, 8, 8), (), 2),   # two inputs; the first's shape
}


def arrays(ds: Dataset) -> tuple[np.ndarray, ...]:
    return ds.x_train, ds.y_train, ds.x_val, ds.y_val


def error_of(spec: object, **kwargs) -> str:
    with pytest.raises(DatasetError) as info:
        load_dataset(spec, **kwargs)
    return str(info.value)


# ---- built-ins ----------------------------------------------------------------------------------

def test_expected_covers_every_builtin():
    assert set(EXPECTED) == set(BUILTIN)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builtin_loads_with_right_shapes_and_dtypes(name):
    task, input_shape, target_shape, num_classes = EXPECTED[name]
    ds = load_dataset({"name": name})
    assert (ds.name, ds.task, ds.input_shape, ds.target_shape) == (
        name, task, input_shape, target_shape)
    assert ds.num_classes == num_classes
    assert ds.is_2d == (input_shape == (2,))
    assert ds.description and "\n" not in ds.description
    for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val)):
        # text gives character ids, everything else features
        assert x.dtype == (np.int64 if name == "text" else np.float32)
        assert x.shape[1:] == input_shape
        assert y.shape == (len(x), *target_shape)
        assert np.isfinite(x).all()
        if task == "classification":
            assert y.dtype == np.int64
            assert y.min() >= 0 and y.max() < num_classes
        else:
            assert y.dtype == np.float32
    n = len(ds.x_train) + len(ds.x_val)
    assert len(ds.x_val) == math.ceil(n * 0.2)
    if task == "classification" and name != "text":   # a text uses only some characters
        assert set(np.unique(ds.y_train)) == set(range(num_classes))


def test_every_option_default_passes_its_own_check():
    for info in (*BUILTIN.values(), *FILE_FORMATS.values()):
        names = [o.name for o in info.options]
        assert len(names) == len(set(names)), info.name
        assert {"val_fraction", "seed"} <= set(names)
        for option in info.options:
            if not option.required:
                assert option.check(option.default, info.name) == option.default
            assert option.doc


def test_digits_scaled_to_unit_range_and_flatten_option():
    ds = load_dataset({"name": "digits"})
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    assert len(ds.x_train) + len(ds.x_val) == 1797
    assert ds.class_names == tuple(str(d) for d in range(10))
    flat = load_dataset({"name": "digits", "flatten": True})
    assert flat.input_shape == (64,)
    np.testing.assert_array_equal(flat.x_train, ds.x_train.reshape(-1, 64))


def test_digits_resized_and_repeated_as_rgb_for_imported_image_models():
    ds = load_dataset({"name": "digits"})
    big = load_dataset({"name": "digits", "size": 32, "channels": 3})
    assert big.input_shape == (3, 32, 32) and big.x_train.dtype == np.float32
    np.testing.assert_array_equal(big.y_train, ds.y_train)   # the same split
    np.testing.assert_array_equal(big.x_train[:, 0], big.x_train[:, 2])   # grey as RGB
    assert big.x_train.min() >= 0.0 and big.x_train.max() <= 1.0
    # bilinear resizing keeps each image's picture: 4×4 blocks average back to the scan
    blocks = big.x_train[:, 0].reshape(-1, 8, 4, 8, 4).mean(axis=(2, 4))
    assert np.corrcoef(blocks.ravel(), ds.x_train[:, 0].ravel())[0, 1] > 0.9
    with pytest.raises(DatasetError, match="size"):
        load_dataset({"name": "digits", "size": 4})


def test_iris_features_standardized_with_training_statistics():
    ds = load_dataset({"name": "iris"})
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(axis=0), 1.0, atol=1e-5)
    assert ds.class_names == ("setosa", "versicolor", "virginica")


def test_moons_are_raw_coordinates_and_noise_changes_them():
    clean = load_dataset({"name": "moons", "noise": 0.0})
    # Without noise the first moon (class 0) lies exactly on the unit circle: no rescaling.
    upper = clean.x_train[clean.y_train == 0]
    np.testing.assert_allclose(np.hypot(upper[:, 0], upper[:, 1]), 1.0, atol=1e-6)
    noisy = load_dataset({"name": "moons", "noise": 0.3})
    assert not np.array_equal(clean.x_train, noisy.x_train)


@pytest.mark.parametrize("name", ["circles", "spirals", "xor", "regression1d"])
def test_noise_option_changes_data(name):
    a = load_dataset({"name": name, "noise": 0.0})
    b = load_dataset({"name": name, "noise": 0.3})
    assert not np.array_equal(a.x_train, b.x_train) or not np.array_equal(a.y_train, b.y_train)


def test_regression1d_without_noise_is_sin_3x():
    ds = load_dataset({"name": "regression1d", "noise": 0, "n_samples": 200})
    assert ds.x_train.min() >= -2 and ds.x_train.max() <= 2
    np.testing.assert_allclose(ds.y_train, np.sin(3 * ds.x_train), atol=1e-6)


def test_adding_targets_are_the_sum_of_the_two_marked_values():
    ds = load_dataset({"name": "adding", "length": 7, "n_samples": 300})
    assert ds.input_shape == (7, 2)
    for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val)):
        values, markers = x[:, :, 0], x[:, :, 1]
        assert set(np.unique(markers)) == {0.0, 1.0}
        assert (markers.sum(axis=1) == 2).all()
        assert values.min() >= 0 and values.max() <= 1
        np.testing.assert_allclose(y[:, 0], (values * markers).sum(axis=1), rtol=1e-6)


def test_parity_labels_count_the_ones():
    ds = load_dataset({"name": "parity", "length": 5})
    assert ds.input_shape == (5, 1)
    np.testing.assert_array_equal(ds.y_train, ds.x_train[:, :, 0].sum(axis=1).astype(int) % 2)


# ---- seeding and splitting --------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_same_seed_same_arrays_different_seed_different(name):
    a, b = load_dataset({"name": name}, seed=3), load_dataset({"name": name}, seed=3)
    for u, v in zip(arrays(a), arrays(b), strict=True):
        np.testing.assert_array_equal(u, v)
    c = load_dataset({"name": name}, seed=4)
    assert not np.array_equal(a.x_train, c.x_train)


def test_spec_seed_overrides_argument_and_spec_rebuilds_the_data():
    a = load_dataset({"name": "spirals", "seed": 7}, seed=1)
    b = load_dataset({"name": "spirals"}, seed=7)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert dict(b.spec) == {"name": "spirals", "n_samples": 1000, "noise": 0.05, "turns": 1.5,
                            "val_fraction": 0.2, "seed": 7}
    again = load_dataset(b.spec, seed=99)
    for u, v in zip(arrays(b), arrays(again), strict=True):
        np.testing.assert_array_equal(u, v)


def test_stratified_split_sizes():
    ds = load_dataset({"name": "moons", "n_samples": 1000, "val_fraction": 0.25})
    assert (len(ds.x_train), len(ds.x_val)) == (750, 250)
    np.testing.assert_array_equal(np.bincount(ds.y_val), [125, 125])
    iris = load_dataset({"name": "iris", "val_fraction": 0.2})
    np.testing.assert_array_equal(np.bincount(iris.y_val), [10, 10, 10])
    np.testing.assert_array_equal(np.bincount(iris.y_train), [40, 40, 40])


def test_split_sizes_at_the_limits():
    ds = load_dataset({"name": "xor", "n_samples": 10, "val_fraction": 0.9})
    assert (len(ds.x_train), len(ds.x_val)) == (1, 9)
    ds = load_dataset({"name": "xor", "n_samples": 10, "val_fraction": 0.01})
    assert (len(ds.x_train), len(ds.x_val)) == (9, 1)


# ---- spec errors --------------------------------------------------------------------------------

def test_unknown_dataset_is_refused_by_name():
    message = error_of({"name": "moon"})
    assert "'moon'" in message and "did you mean 'moons'" in message and "digits" in message
    assert "has no name" in error_of({"noise": 0.1})
    assert "JSON object" in error_of(["moons"])


def test_unknown_option_is_refused_by_name():
    message = error_of({"name": "moons", "nosie": 0.1})
    assert "'nosie'" in message and "did you mean 'noise'" in message
    assert "'flatten'" in error_of({"name": "iris", "flatten": True})


@pytest.mark.parametrize(("spec", "words"), [
    ({"name": "moons", "noise": "high"}, ["'noise'", "number", "'high'"]),
    ({"name": "moons", "n_samples": 100.5}, ["'n_samples'", "integer"]),
    ({"name": "moons", "n_samples": True}, ["'n_samples'", "integer"]),
    ({"name": "moons", "noise": None}, ["'noise'", "number"]),
    ({"name": "digits", "flatten": 1}, ["'flatten'", "true or false"]),
    ({"name": "moons", "noise": float("nan")}, ["'noise'", "finite"]),
    ({"name": "moons", "n_samples": 5}, ["'n_samples'", "at least 10"]),
    ({"name": "moons", "n_samples": 1_000_001}, ["'n_samples'", "at most 1,000,000"]),
    ({"name": "moons", "val_fraction": 0}, ["'val_fraction'", "greater than 0"]),
    ({"name": "moons", "val_fraction": 0.95}, ["'val_fraction'", "at most 0.9"]),
    ({"name": "moons", "seed": -1}, ["'seed'", "at least 0"]),
    ({"name": "csv", "path": "d.csv", "task": "clustering"}, ["'task'", "classification"]),
    ({"name": "csv"}, ["'path'"]),
    ({"name": "adding", "n_samples": 1_000_000, "length": 1000}, ["n_samples * length"]),
])
def test_bad_option_values_are_refused_naming_the_key(spec, words):
    message = error_of(spec)
    for word in words:
        assert word in message


def test_bad_seed_argument_is_refused():
    assert "seed" in error_of({"name": "moons"}, seed=-1)
    assert "seed" in error_of({"name": "moons"}, seed=1.5)


def test_csv_single_column_hints_at_the_delimiter(tmp_path):
    path = write(tmp_path, "semi.csv", "a;y\n1;0\n2;1\n")
    assert "delimiter" in error_of({"name": "csv", "path": str(path)})
    ds = load_dataset({"name": "csv", "path": str(path), "delimiter": ";", "val_fraction": 0.5})
    assert ds.input_shape == (1,)


def test_int_given_to_float_option_is_accepted():
    assert load_dataset({"name": "moons", "noise": 0, "n_samples": 50}).spec["noise"] == 0.0


# ---- CSV ----------------------------------------------------------------------------------------

def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


IRIS_LIKE = "sepal,petal,species\n" + "".join(
    f"{i * 0.1:.1f},{(i % 7) * 0.5},{['setosa', 'virginica', 'Versicolor'][i % 3]}\n"
    for i in range(30))


def test_csv_classification_with_string_labels(tmp_path):
    path = write(tmp_path, "flowers.csv", IRIS_LIKE)
    ds = load_dataset({"name": "csv", "path": str(path)})
    assert ds.name == "flowers.csv" and ds.task == "classification"
    assert ds.input_shape == (2,) and ds.num_classes == 3
    assert ds.class_names == ("Versicolor", "setosa", "virginica")  # sorted order
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(ds.y_val), [2, 2, 2])  # stratified
    # Rows keep their label: petal = (i % 7) * 0.5 and sepal = i / 10 identify row i.
    for x, label in zip(ds.x_train, ds.y_train, strict=True):
        i = round(float(x[0]) * 10)
        assert ds.class_names[label] == ["setosa", "virginica", "Versicolor"][i % 3]


def test_csv_target_by_name_bom_quotes_and_blank_lines(tmp_path):
    text = '\ufefflabel,"a",b\n\n' + "".join(
        f'{i % 2},"{i}",{-i}\n' for i in range(20)) + "\n"
    ds = load_dataset({"name": "csv", "path": str(write(tmp_path, "d.csv", text)),
                       "target": "label"})
    assert ds.task == "classification" and ds.class_names == ("0", "1")
    x = np.concatenate([ds.x_train, ds.x_val])
    np.testing.assert_array_equal(x[:, 1], -x[:, 0])


def test_csv_regression_and_the_auto_task_rule(tmp_path):
    rows = "".join(f"{i},{i * 0.5 + 0.25}\n" for i in range(30))
    ds = load_dataset({"name": "csv", "path": str(write(tmp_path, "r.csv", "x,y\n" + rows))})
    assert ds.task == "regression" and ds.target_shape == (1,) and ds.num_classes is None
    np.testing.assert_allclose(ds.y_train[:, 0], ds.x_train[:, 0] * 0.5 + 0.25)
    # Integers with at most 20 distinct values: classification; more: regression.
    few = write(tmp_path, "few.csv", "x,y\n" + "".join(f"{i},{i % 20}\n" for i in range(40)))
    assert load_dataset({"name": "csv", "path": str(few)}).num_classes == 20
    many = write(tmp_path, "many.csv", "x,y\n" + "".join(f"{i},{i % 21}\n" for i in range(42)))
    assert load_dataset({"name": "csv", "path": str(many)}).task == "regression"
    forced = load_dataset({"name": "csv", "path": str(few), "task": "regression"})
    assert forced.task == "regression"


def test_csv_numeric_labels_map_in_numeric_order_and_standardize(tmp_path):
    rows = "".join(f"{i},{i * 100},{[10, 2, 1][i % 3]}\n" for i in range(30))
    path = write(tmp_path, "n.csv", "a,b,c\n" + rows)
    ds = load_dataset({"name": "csv", "path": str(path), "standardize": True})
    assert ds.class_names == ("1", "2", "10")
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-5)


def test_csv_relative_path_resolves_against_base_dir(tmp_path):
    write(tmp_path, "flowers.csv", IRIS_LIKE)
    ds = load_dataset({"name": "csv", "path": "flowers.csv"}, base_dir=tmp_path)
    assert ds.num_classes == 3 and ds.spec["path"] == "flowers.csv"
    again = load_dataset(ds.spec, base_dir=tmp_path)
    for u, v in zip(arrays(ds), arrays(again), strict=True):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize(("text", "words"), [
    ("a,b,y\n1,2,0\n3,x7,1\n", ["line 3", "column 'b'", "'x7' is not a number"]),
    ("a,b,y\n1,2,0\n3,,1\n", ["line 3", "column 'b'", "empty cell"]),
    ("a,b,y\n1,2,0\n\n3,nan,1\n", ["line 4", "column 'b'", "not a finite number"]),
    ("a,b,y\n1,2,0\n3,4,\n", ["line 3", "column 'y'", "empty target"]),
    ("a,b,y\n1,2,0\n3,4\n", ["line 3", "2 cells", "3 columns"]),
    ("a,b,y\n1,2,0\n3,4,5,6\n", ["line 3", "4 cells"]),
    ("", ["is empty"]),
    ("\n\n", ["is empty"]),
    ("a,b,y\n", ["no data rows"]),
    ("y\n1\n2\n", ["single column"]),
    ("a,y\n1,cat\n2,cat\n", ["single class", "'cat'"]),
])
def test_csv_errors_name_the_file_line_and_column(tmp_path, text, words):
    path = write(tmp_path, "bad.csv", text)
    message = error_of({"name": "csv", "path": str(path)})
    assert "bad.csv" in message
    for word in words:
        assert word in message


def test_csv_missing_target_column_lists_the_columns(tmp_path):
    path = write(tmp_path, "d.csv", "sepal,petal,species\n1,2,a\n")
    message = error_of({"name": "csv", "path": str(path), "target": "specie"})
    assert "'specie'" in message and "did you mean 'species'" in message
    assert "sepal, petal, species" in message
    path = write(tmp_path, "twice.csv", "a,a,y\n1,2,0\n3,4,1\n")
    assert "more than once" in error_of({"name": "csv", "path": str(path), "target": "a"})


def test_csv_regression_refuses_text_targets(tmp_path):
    path = write(tmp_path, "d.csv", "a,y\n1,2\n2,cat\n")
    message = error_of({"name": "csv", "path": str(path), "task": "regression"})
    assert "line 3" in message and "'cat' is not a number" in message


def test_csv_binary_file_is_refused(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(b"\x93NUMPY\x01\x00\xff\xfe\x00garbage")
    assert "x.csv" in error_of({"name": "csv", "path": str(path)})


# ---- npz and npy --------------------------------------------------------------------------------

class Payload:
    """Unpickling this runs code: it creates the marker file. Loading must never do that."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def features(n: int = 40) -> np.ndarray:
    return np.arange(n * 3, dtype=np.float64).reshape(n, 3)


def test_npz_classification_regression_and_custom_keys(tmp_path):
    x = features()
    path = tmp_path / "a.npz"
    np.savez(path, x=x, y=np.arange(40) % 4, inputs=x.astype(np.uint8),
             targets=x[:, :2] * 0.5)
    ds = load_dataset({"name": "npz", "path": str(path)})
    assert (ds.name, ds.task, ds.num_classes, ds.input_shape) == ("a.npz", "classification", 4,
                                                                   (3,))
    reg = load_dataset({"name": "npz", "path": str(path), "x": "inputs", "y": "targets"})
    assert (reg.task, reg.target_shape, reg.y_train.dtype) == ("regression", (2,), np.float32)
    np.testing.assert_allclose(reg.y_train, reg.x_train[:, :2] * 0.5)


def test_npz_compressed_string_labels_and_tokens(tmp_path):
    path = tmp_path / "t.npz"
    tokens = np.arange(40 * 5).reshape(40, 5) % 11
    np.savez_compressed(path, x=tokens, y=np.array(["b", "a"] * 20))
    ds = load_dataset({"name": "npz", "path": str(path), "x_dtype": "int64"})
    assert ds.x_train.dtype == np.int64 and ds.input_shape == (5,)
    assert ds.class_names == ("a", "b")


def test_npy_pair_happy_path(tmp_path):
    np.save(tmp_path / "x.npy", features().astype(np.float32)[:, 0])  # (N,) -> (N, 1)
    np.save(tmp_path / "y.npy", np.linspace(0, 1, 40).reshape(40, 1))
    ds = load_dataset({"name": "npy", "path": "x.npy", "targets": "y.npy"}, base_dir=tmp_path)
    assert (ds.name, ds.task, ds.input_shape, ds.target_shape) == (
        "x.npy", "regression", (1,), (1,))
    fortran = tmp_path / "f.npy"
    np.save(fortran, np.asfortranarray(features()))
    np.save(tmp_path / "c.npy", np.arange(40) % 2)
    ds = load_dataset({"name": "npy", "path": str(fortran), "targets": str(tmp_path / "c.npy")},
                      seed=1)
    x = np.concatenate([ds.x_train, ds.x_val])
    np.testing.assert_array_equal(np.sort(x[:, 0]), features()[:, 0])
    np.testing.assert_array_equal(x[:, 1], x[:, 0] + 1)


def test_pickled_object_array_in_npy_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "pwned"
    np.save(tmp_path / "evil.npy", np.array([Payload(marker)] * 40, dtype=object),
            allow_pickle=True)
    np.save(tmp_path / "y.npy", np.arange(40) % 2)
    message = error_of({"name": "npy", "path": str(tmp_path / "evil.npy"),
                        "targets": str(tmp_path / "y.npy")})
    assert "evil.npy" in message and "Python objects" in message
    assert not marker.exists()
    # The payload is live: a careless loader would have created the marker.
    np.load(tmp_path / "evil.npy", allow_pickle=True)
    assert marker.exists()


def test_raw_pickle_and_object_arrays_in_npz_are_refused_without_running_code(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "raw.npy").write_bytes(pickle.dumps(Payload(marker)))
    np.save(tmp_path / "y.npy", np.arange(40) % 2)
    message = error_of({"name": "npy", "path": str(tmp_path / "raw.npy"),
                        "targets": str(tmp_path / "y.npy")})
    assert "raw.npy" in message and "not a valid NumPy .npy array" in message
    np.savez(tmp_path / "evil.npz", x=features(), y=np.array([Payload(marker)] * 40, dtype=object))
    message = error_of({"name": "npz", "path": str(tmp_path / "evil.npz")})
    assert "evil.npz['y']" in message and "Python objects" in message
    assert not marker.exists()


def test_npz_and_npy_errors(tmp_path):
    np.savez(tmp_path / "short.npz", x=features(40), y=np.arange(39) % 2)
    message = error_of({"name": "npz", "path": str(tmp_path / "short.npz")})
    assert "40 samples" in message and "39" in message

    message = error_of({"name": "npz", "path": str(tmp_path / "short.npz"), "y": "labels"})
    assert "no array 'labels'" in message and "x, y" in message

    np.savez(tmp_path / "nan.npz", x=np.where(features() == 7, np.nan, features()),
             y=np.arange(40) % 2)
    assert "non-finite" in error_of({"name": "npz", "path": str(tmp_path / "nan.npz")})

    np.savez(tmp_path / "frac.npz", x=features(), y=np.arange(40) * 0.5)
    frac = {"name": "npz", "path": str(tmp_path / "frac.npz"), "task": "classification"}
    assert "fractional" in error_of(frac)

    np.savez(tmp_path / "strx.npz", x=np.array(["a"] * 40), y=np.arange(40) % 2)
    assert "features must be numbers" in error_of({"name": "npz",
                                                   "path": str(tmp_path / "strx.npz")})

    np.save(tmp_path / "x.npy", features())
    np.save(tmp_path / "y.npy", np.arange(40) % 2)
    message = error_of({"name": "npz", "path": str(tmp_path / "x.npy")})
    assert "use the dataset name 'npy'" in message
    message = error_of({"name": "npy", "path": str(tmp_path / "short.npz"), "targets": "y.npy"},
                       base_dir=tmp_path)
    assert "use the dataset name 'npz'" in message


def test_truncated_and_corrupt_files_are_refused_with_the_path(tmp_path):
    np.save(tmp_path / "x.npy", features())
    np.save(tmp_path / "y.npy", np.arange(40) % 2)
    data = (tmp_path / "x.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[: len(data) - 50])
    message = error_of({"name": "npy", "path": str(tmp_path / "cut.npy"),
                        "targets": str(tmp_path / "y.npy")})
    assert "cut.npy" in message and "truncated" in message

    np.savez_compressed(tmp_path / "a.npz", x=features(), y=np.arange(40) % 2)
    data = (tmp_path / "a.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    assert "cut.npz" in error_of({"name": "npz", "path": str(tmp_path / "cut.npz")})
    broken = bytearray(data)
    broken[60:90] = b"\x00" * 30  # inside the first member's compressed bytes
    (tmp_path / "broken.npz").write_bytes(bytes(broken))
    assert "broken.npz" in error_of({"name": "npz", "path": str(tmp_path / "broken.npz")})


def test_missing_file_and_directory_are_refused_with_the_path(tmp_path):
    message = error_of({"name": "csv", "path": str(tmp_path / "nope.csv")})
    assert "file not found" in message and "nope.csv" in message
    message = error_of({"name": "npz", "path": str(tmp_path)})
    assert "is a directory" in message and str(tmp_path) in message
    assert "'path'" in error_of({"name": "csv", "path": "a\0b"})


# ---- the Dataset record and shape checks -------------------------------------------------------

def test_dataset_checks_its_invariants():
    x = np.zeros((4, 2), np.float32)
    y = np.array([0, 1, 0, 1])
    ok = dict(name="t", task="classification", x_train=x, y_train=y, x_val=x, y_val=y,
              num_classes=2, input_shape=(2,), target_shape=(), description="t")
    assert Dataset(**ok).is_2d
    for change in ({"input_shape": (3,)}, {"num_classes": 1}, {"num_classes": None},
                   {"task": "ranking"}, {"task": "regression"},
                   {"y_train": y.astype(np.float32)}, {"y_val": y[:3]},
                   {"x_train": x.astype(np.float64)}):
        with pytest.raises(DatasetError):
            Dataset(**{**ok, **change})


def test_check_input_shape_messages():
    digits = load_dataset({"name": "digits"})
    assert check_input_shape(digits, (1, 8, 8)) is None
    assert check_input_shape(digits, (64,)) == (
        "dataset 'digits' gives inputs of shape (1, 8, 8) but Input 'x' expects (64,): "
        "set the Input's shape to [1, 8, 8] or use the dataset option flatten=true")
    flat = load_dataset({"name": "digits", "flatten": True})
    assert "flatten=false" in check_input_shape(flat, [1, 8, 8], "image")
    assert "Input 'image'" in check_input_shape(flat, [1, 8, 8], "image")
    moons = load_dataset({"name": "moons", "n_samples": 20})
    message = check_input_shape(moons, (4,))
    assert message == ("dataset 'moons' gives inputs of shape (2,) but Input 'x' expects (4,): "
                       "set the Input's shape to [2]")
    assert "batch dimension" in check_input_shape(moons, (32, 2))


def test_importing_the_module_is_cheap_and_torch_free():
    code = ("import sys; sys.modules['torch'] = None; import engine.data.datasets; "
            "assert 'sklearn' not in sys.modules, 'sklearn imported eagerly'")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


# ---- text ----------------------------------------------------------------------------------------


def test_text_windows_predict_the_next_character_and_keep_validation_text_unseen():
    from engine.data.datasets import TEXT_VOCABULARY, decode_text, encode_text, text_corpus

    ds = load_dataset({"name": "text", "length": 16, "n_samples": 300, "seed": 3})
    assert ds.vocabulary == TEXT_VOCABULARY and ds.num_classes == len(TEXT_VOCABULARY) == 96
    # each target window is its input window moved on by one character
    assert (ds.x_train[:, 1:] == ds.y_train[:, :-1]).all()
    assert (ds.x_val[:, 1:] == ds.y_val[:, :-1]).all()
    ids = encode_text(text_corpus("sklearn_descr"))
    cut = int(len(ids) * 0.8)
    text, train_part = decode_text(ids), decode_text(ids[:cut])
    for window in ds.x_val[:20]:
        assert decode_text(window) in text[cut - 1:]   # from the held-out end
    assert decode_text(ds.x_train[0]) in train_part
    again = load_dataset({"name": "text", "length": 16, "n_samples": 300, "seed": 3})
    assert (again.x_train == ds.x_train).all() and (again.x_val == ds.x_val).all()


def test_text_codec_round_trips_printable_text_and_maps_the_rest():
    from engine.data.datasets import decode_text, encode_text

    line = "Hello, world! 1 + 2 = 3\n~`{}[]"
    assert decode_text(encode_text(line)) == line
    assert decode_text(encode_text("tab\there, é\r\n")) == "tab here, ?\n"
    assert decode_text([-1, 96, 1000]) == "???"


def test_text_corpora_ship_with_the_packages():
    from engine.data.datasets import TEXT_CORPORA, text_corpus

    for name in TEXT_CORPORA:
        assert len(text_corpus(name)) > 20_000, name
    assert "too few" in error_of({"name": "text", "length": 100, "val_fraction": 0.001,
                                  "corpus": "sklearn_descr", "n_samples": 10})
    assert "corpus" in error_of({"name": "text", "corpus": "wikipedia"})
