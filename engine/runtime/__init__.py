"""The torch runtime: the compiler (generated source → live `nn.Module`), the trainer, the
gradient-flow probe, run folders (checkpoints), the export of weights and `train.py`, and
deployment (`deploy`: ONNX and torch.export programs, checked against the compiled module).

torch lives here (onnx and onnxruntime, optional, only in `deploy`). It may import `nodes`,
`engine.core` and `engine.data`; never dearpygui, `engine.cli` or `app`. Nothing in the core
knows this package exists.
"""
