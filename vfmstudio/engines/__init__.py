"""Batch executors: run one tool over many images and write one prediction file per image.

``local`` (default: prefetching decode threads, batched preparation, one inference thread) and
``_ray`` (Ray Data actors, the optional ``ray`` extra) share the per-image work in ``worker`` and
the output folder in ``outputs``. Importing this package is cheap: no torch, no ray.
"""
