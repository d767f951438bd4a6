"""Fuzzing helpers for graph files: case generators (generate.py) and the pipeline that
feeds a case through load → validate → compile → forward → `dprog check` and judges the
outcome (pipeline.py). Used by tests/test_fuzz_*.py (a few hundred cases) and by
bench/fuzz.py (the long run). Importing this package does not import torch.
"""
