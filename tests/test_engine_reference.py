"""Compiled sample graphs against hand-written torch with the same weights.

Each reference is written the way a person would write the model without dprog; the
dprog module's state_dict is loaded into it (strictly, mapping key names where they
differ) and the outputs must agree.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import engine


def compare(graph, ref: nn.Module, inputs, *, key_map=None, exact=True):
    torch.manual_seed(0)
    model = engine.compile_graph(graph).eval()
    state = model.state_dict()
    if key_map is not None:
        state = {key_map.get(k, k): v for k, v in state.items()}
    ref.load_state_dict(state, strict=True)
    ref.eval()
    with torch.no_grad():
        got, want = model(*inputs), ref(*inputs)
    assert got.shape == want.shape
    if exact:
        assert torch.equal(got, want)
    else:
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    return model, got


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


class MoonsMlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(2, 16), nn.Linear(16, 16), nn.Linear(16, 2)

    def forward(self, x):
        return self.fc3(torch.tanh(self.fc2(torch.tanh(self.fc1(x)))))


def test_moons_mlp(samples):
    compare(samples["moons_mlp"], MoonsMlp(), (randn(9, 2),))


class DigitsCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 2 * 2, 10)

    def forward(self, image):
        x = F.max_pool2d(F.relu(self.conv1(image)), 2)   # (B, 16, 4, 4)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)       # (B, 32, 2, 2)
        return self.fc(x.reshape(x.shape[0], -1))        # (B, 10)


def test_digits_cnn(samples):
    compare(samples["digits_cnn"], DigitsCnn(), (randn(5, 1, 8, 8),))


class ResidualMlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(2, 32)
        self.fc1, self.fc2, self.fc3, self.fc4 = (nn.Linear(32, 32) for _ in range(4))
        self.head = nn.Linear(32, 2)

    def forward(self, x):
        h = F.relu(self.stem(x))
        h = h + self.fc2(F.relu(self.fc1(h)))
        h = h + self.fc4(F.relu(self.fc3(h)))
        return self.head(F.relu(h))


def test_residual_mlp(samples):
    compare(samples["residual_mlp"], ResidualMlp(), (randn(6, 2),))


class ElmanScan(nn.Module):
    """h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1}), h_0 = 0; then a linear head on h_T."""

    def __init__(self):
        super().__init__()
        self.w_ih = nn.Parameter(torch.empty(32, 2))
        self.b_ih = nn.Parameter(torch.empty(32))
        self.w_hh = nn.Parameter(torch.empty(32, 32))
        self.head = nn.Linear(32, 1)

    def forward(self, seq):
        h = torch.zeros(seq.shape[0], 32)
        for t in range(seq.shape[1]):
            h = torch.tanh(seq[:, t] @ self.w_ih.T + self.b_ih + h @ self.w_hh.T)
        return self.head(h)


RNN_KEYS = {"rnn.from_input.weight": "w_ih", "rnn.from_input.bias": "b_ih",
            "rnn.from_state.weight": "w_hh"}


def test_rnn_scan_against_hand_written_loop_and_nn_rnn(samples):
    seq = randn(4, 10, 2)
    model, got = compare(samples["rnn_scan"], ElmanScan(), (seq,), key_map=RNN_KEYS, exact=False)
    # torch's own Elman RNN with the same weights (no hidden bias: from_state has bias=False).
    rnn = nn.RNN(2, 32, batch_first=True)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(model.rnn.from_input.weight)
        rnn.bias_ih_l0.copy_(model.rnn.from_input.bias)
        rnn.weight_hh_l0.copy_(model.rnn.from_state.weight)
        rnn.bias_hh_l0.zero_()
        _, h_n = rnn(seq)
        torch.testing.assert_close(got, model.head(h_n[0]), rtol=1e-5, atol=1e-6)


class GatedBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.then_fc, self.else_fc = nn.Linear(2, 2), nn.Linear(2, 2)

    def forward(self, x):
        return torch.where(x[:, :1] > 0.0, self.then_fc(x), self.else_fc(x))


def test_gated_branch(samples):
    x = randn(16, 2)
    assert (x[:, 0] > 0).any() and (x[:, 0] <= 0).any()
    compare(samples["gated_branch"], GatedBranch(), (x,),
            key_map={"route_then.fc.weight": "then_fc.weight", "route_then.fc.bias": "then_fc.bias",
                     "route_else.fc.weight": "else_fc.weight", "route_else.fc.bias": "else_fc.bias"})


class AdaptiveDepth(nn.Module):
    """A per-sample while loop written with a mask: halted samples keep their state."""

    def __init__(self, max_iters=8, threshold=0.5):
        super().__init__()
        self.embed = nn.Linear(2, 16)
        self.from_state, self.from_input = nn.Linear(16, 16), nn.Linear(2, 16)
        self.score = nn.Linear(16, 1)
        self.head = nn.Linear(16, 2)
        self.max_iters, self.threshold = max_iters, threshold

    def forward(self, x):
        h = torch.tanh(self.embed(x))
        running = torch.ones(x.shape[0], dtype=torch.bool)
        self.steps = torch.zeros(x.shape[0])
        for _ in range(self.max_iters):
            p = torch.sigmoid(self.score(h))                                  # (B, 1)
            new = h + (1 - p) * torch.tanh(self.from_state(h) + self.from_input(x))
            h = torch.where(running[:, None], new, h)
            self.steps += running
            running = running & (p[:, 0] <= self.threshold)
            if not running.any():
                break
        return self.head(h)


def test_adaptive_depth(samples):
    keys = {f"refine.{layer}.{w}": f"{layer}.{w}" for layer in ("from_state", "from_input", "score")
            for w in ("weight", "bias")}
    ref = AdaptiveDepth()
    x = randn(32, 2) * 3
    torch.manual_seed(0)
    model = engine.compile_graph(samples["adaptive_depth"])
    # Spread the halting scores so that samples really stop at different steps.
    with torch.no_grad():
        model.refine.score.weight.copy_(torch.linspace(-1, 1, 16)[None])
        model.refine.score.bias.fill_(-0.2)
    ref.load_state_dict({keys.get(k, k): v for k, v in model.state_dict().items()}, strict=True)
    with torch.no_grad():
        got, want = model(x), ref(x)
    assert torch.equal(got, want)
    assert len(set(ref.steps.tolist())) > 1, "all samples halted at the same step"


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(2, 16)
        self.attend = nn.MultiheadAttention(16, 2, batch_first=True)
        self.norm = nn.LayerNorm(16)
        self.hidden, self.head = nn.Linear(16, 16), nn.Linear(16, 1)

    def forward(self, seq):
        e = self.embed(seq)
        h = self.norm(e + self.attend(e, e, e, need_weights=False)[0]).mean(dim=1)
        return self.head(F.gelu(self.hidden(h)))


def test_attention(samples):
    compare(samples["attention"], Attention(), (randn(3, 10, 2),))
