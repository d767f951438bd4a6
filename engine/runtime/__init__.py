"""The torch runtime: the compiler (generated source → live `nn.Module`), the trainer, the
gradient-flow probe, run folders (checkpoints), and the export of weights and `train.py`.

torch lives here. It may import `nodes`, `engine.core` and `engine.data`; never dearpygui,
`engine.cli` or `app`. Nothing in the core knows this package exists.
"""
