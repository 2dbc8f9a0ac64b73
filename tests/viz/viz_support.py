"""Helpers for the viz tests: small models, an independent graph count, and a DOT reader."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field

import pytest
import torch

import autodiff as ad
import nn
from autodiff import Tensor

HAS_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAS_DOT, reason="Graphviz `dot` is not installed")


def course_net(seed: int = 0, activation=nn.ReLU, dtype=None) -> nn.Sequential:
    """2 -> 25 -> 25 -> 25 -> 1, the course network."""
    g = torch.Generator().manual_seed(seed)
    sizes = (2, 25, 25, 25)
    layers = []
    for i, o in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(i, o, generator=g, dtype=dtype), activation()]
    layers.append(nn.Linear(25, 1, generator=g, dtype=dtype))
    return nn.Sequential(layers)


def course_loss(model, n: int = 16, seed: int = 1, dtype=torch.float32):
    from nn.data import disc_dataset

    x, y = disc_dataset(n, seed=seed, dtype=dtype)
    return nn.MSELoss()(model(x), y), x, y


class Block(nn.Module):
    def __init__(self, n: int, g: torch.Generator) -> None:
        super().__init__()
        self.fc = nn.Linear(n, n, generator=g)
        self.act = nn.Tanh()

    def forward(self, x):
        return x + self.act(self.fc(x))


class Net(nn.Module):
    """Three levels of modules: Net > blocks (Sequential) > Block > fc (Linear)."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.inp = nn.Linear(2, 8, generator=g)
        self.blocks = nn.Sequential(Block(8, g), Block(8, g))
        self.out = nn.Linear(8, 1, generator=g)

    def forward(self, x):
        return self.out(self.blocks(self.inp(x).relu()))


def recorded_counts(roots) -> tuple[int, int, int, int]:
    """(ops, leaves requiring grad, inputs without grad, edges) of the recorded graph, counted
    directly from grad_fn/parents (independently of viz)."""
    nodes: set = set()
    leaves: set = set()
    none_inputs = edges = 0
    stack = [r.grad_fn for r in roots]
    nodes.update(stack)
    while stack:
        n = stack.pop()
        for p in n.next_functions:
            edges += 1
            if p is None:
                none_inputs += 1
            elif isinstance(p, Tensor):
                leaves.add(p)
            elif p not in nodes:
                nodes.add(p)
                stack.append(p)
    return len(nodes), len(leaves), none_inputs, edges


@dataclass
class Cluster:
    name: str
    label: str = ""
    parent: Cluster | None = None
    nodes: list = field(default_factory=list)


@dataclass
class Dot:
    nodes: dict  # id -> attribute text
    edges: list  # (src, dst, attribute text)
    clusters: dict  # name -> Cluster
    home: dict  # node id -> Cluster or None


_NODE = re.compile(r"^\s*(n\d+|more|legend|n\d+_s\d+|n\d+_u\d+) \[(.*)\]$")
_EDGE = re.compile(r"^\s*(\w+) -> (\w+)(?: \[(.*)\])?$")


def parse(source: str) -> Dot:
    """Nodes, edges and the cluster tree of a DOT text written by viz (one statement per line)."""
    nodes, edges, clusters, home = {}, [], {}, {}
    stack: list = []
    for line in source.splitlines():
        s = line.strip()
        m = re.match(r"^subgraph (cluster_\d+) \{$", s)
        if m:
            c = Cluster(m.group(1), parent=stack[-1] if stack else None)
            clusters[c.name] = c
            stack.append(c)
            continue
        if s == "}" and stack:
            stack.pop()
            continue
        if stack and s.startswith("label=") and not stack[-1].label:
            stack[-1].label = text_of(s).strip()
            continue
        m = _EDGE.match(s)
        if m:
            edges.append((m.group(1), m.group(2), m.group(3) or ""))
            continue
        m = _NODE.match(s)
        if m:
            nodes[m.group(1)] = m.group(2)
            home[m.group(1)] = stack[-1] if stack else None
            if stack:
                stack[-1].nodes.append(m.group(1))
    return Dot(nodes, edges, clusters, home)


def text_of(attrs: str) -> str:
    """The visible text of an HTML-like label (tags dropped, lines joined by ' | ')."""
    m = re.search(r"label=<(.*)>(?: |$)", attrs)
    html = m.group(1) if m else attrs
    html = html.replace("<BR/>", " | ")
    return re.sub(r"<[^>]*>", "", html)


def labels(dot: Dot) -> dict:
    return {k: text_of(v) for k, v in dot.nodes.items()}


def chain_of(dot: Dot, start: str) -> list[str]:
    """Follow single out-edges from ``start``; returns the node ids in order."""
    out: dict = {}
    for a, b, attrs in dot.edges:
        if "invis" not in attrs:
            out.setdefault(a, []).append(b)
    path = [start]
    while len(out.get(path[-1], [])) == 1:
        path.append(out[path[-1]][0])
    return path


def dead_layer_net(dead: int = 2):
    """Course network whose Linear at index ``dead`` always outputs negatives: ReLU kills it."""
    m = course_net()
    with ad.no_grad():
        m[dead].bias.data.fill_(-100.0)
    return m


def is_node(x) -> bool:
    return isinstance(x, ad.Node)
