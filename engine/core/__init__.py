"""The pure core: the graph model (functions included), the file format and its library files
(`functionlib`), the training config, analysis (validation and shape inference), code
generation, and the trainer's events; `files` (opening hostile
files by type and size, and escaping what is printed from them) and `limits` (the module
cap the analysis does not check yet).

Everything here is plain data and plain Python. It may import `nodes` and the standard
library (and jsonschema, lazily, to enforce the file format); never torch, numpy, dearpygui,
nor any other part of `engine` or `app`. That is why the studio can draw its first frame
before torch has loaded, and why `tests/test_engine_layering.py` imports it with torch made
unimportable.
"""
