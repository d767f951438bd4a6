"""Datasets: the registry of built-in datasets and the readers for the user's own files.

numpy arrays in, numpy arrays out; scikit-learn is imported only by the loaders that need it.
May import `engine.core` and `nodes`; never torch, dearpygui, the runtime or `app`.
"""
