"""The diffusion model's forward replayed from CUDA graphs, one per canvas shape.

A small masked-diffusion model's forward on a GPU costs the launches of its ~100 kernels, not
their work: the shipped 8.9M-parameter model took about 6.7 ms per forward on an H200
(BENCHMARKS.md), for a canvas the GPU computes in a fraction of that. Every forward of one
request sees the same canvas shape (the tokens change, not their number), and `build_canvas`
gives every document longer than the model's context the same length, so a graph captured once
per shape is replayed for the forwards that follow: the engine's median for a line fell from
68 to 32 ms on an H200, the same completions (BENCHMARKS.md, 2026-11-29, fourth session).
Capture failures (a model whose forward synchronises with the host, say) fall back to the eager
forward for good.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from types import SimpleNamespace

import torch

log = logging.getLogger(__name__)

MAX_GRAPHS = 8  # canvas shapes kept (least recently used dropped): short documents vary
# Graphs only for a model this small: a large one's forward is bound by its work, not its
# launches, and each graph keeps its own logits ([1, canvas, vocabulary]: LLaDA's at 4,096
# positions are 1 GB in bf16).
MAX_PARAMETERS = 1_000_000_000


class _Graph:
    def __init__(self, model, input_ids: torch.Tensor, pool, emulate: bool):
        self.input = input_ids.clone()
        if emulate:  # the same buffers and calls, run eagerly (tests on a CPU)
            self.run = lambda: model(input_ids=self.input).logits
            self.graph = None
            return
        stream = torch.cuda.Stream(input_ids.device)
        stream.wait_stream(torch.cuda.current_stream(input_ids.device))
        with torch.cuda.stream(stream):  # warm up on a side stream, as PyTorch's docs say
            for _ in range(2):
                model(input_ids=self.input)
        torch.cuda.current_stream(input_ids.device).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool, capture_error_mode="thread_local"):
            self.output = model(input_ids=self.input).logits

    def __call__(self, input_ids: torch.Tensor) -> torch.Tensor:
        self.input.copy_(input_ids)
        if self.graph is None:
            return self.run()
        self.graph.replay()
        return self.output.clone()  # the next replay overwrites the graph's output


class GraphedModel:
    """`model(input_ids=...)` with `.logits`, as the sampler calls it, through CUDA graphs."""

    def __init__(self, model, emulate: bool = False):
        self.model, self.emulate = model, emulate
        self.graphs: OrderedDict[tuple, _Graph] = OrderedDict()
        self.pool = None if emulate else torch.cuda.graph_pool_handle()
        self.failed = False

    @torch.inference_mode()
    def __call__(self, input_ids: torch.Tensor) -> SimpleNamespace:
        if self.failed:
            return self.model(input_ids=input_ids)
        key = tuple(input_ids.shape)
        graph = self.graphs.get(key)
        if graph is None:
            try:
                graph = self.graphs[key] = _Graph(self.model, input_ids, self.pool, self.emulate)
            except Exception as exc:  # run eagerly rather than fail a request
                log.warning("diffusion CUDA graph capture failed (%s); eager forwards", exc)
                self.failed = True
                self.graphs.clear()
                return self.model(input_ids=input_ids)
            if len(self.graphs) > MAX_GRAPHS:
                self.graphs.popitem(last=False)
        self.graphs.move_to_end(key)
        return SimpleNamespace(logits=graph(input_ids))
