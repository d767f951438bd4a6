"""Incremental passes: analysis and code generation that redo only what an edit reached.

The studio keeps one `AnalysisCache` and one `CodeCache` per document. Graphs are values
that share their unchanged `Node` objects, so what a node gave in the last pass can be
replayed when the node, its place and its input types are the same objects, and an edit
that keeps the node ids and wires patches the last pass instead of walking every node.
Every path gives exactly what a fresh pass of `engine.core` gives (tests/test_engine_caches.py).

Pure, like the core: may import `nodes` and `engine.core`; never torch, numpy, dearpygui,
the runtime, or `app`.
"""
