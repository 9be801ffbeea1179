"""Triton's interpreter runs the kernels' tests (tests/speculative/test_kernels.py) on a
machine without CUDA. Triton reads the variable when it is first imported, and torch.compile
imports it too, so it is set here, before any test module."""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
