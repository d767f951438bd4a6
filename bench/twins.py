"""Hand-written torch twins of the sample graphs, written the way a person would write them.

Each twin has the architecture of its sample and the same parameter names, so the compiled
module's `state_dict` loads into it and both compute the same function. Row 1 of the suite
times a training step of each against the compiled module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MoonsMlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(2, 16)
        self.fc2 = nn.Linear(16, 16)
        self.fc3 = nn.Linear(16, 2)

    def forward(self, x):
        return self.fc3(torch.tanh(self.fc2(torch.tanh(self.fc1(x)))))


class DigitsCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(128, 10)

    def forward(self, x):                                # (B, 1, 8, 8)
        x = F.max_pool2d(torch.relu(self.conv1(x)), 2)   # (B, 16, 4, 4)
        x = F.max_pool2d(torch.relu(self.conv2(x)), 2)   # (B, 32, 2, 2)
        return self.fc(torch.flatten(x, 1))              # (B, 10)


class ResidualMlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(2, 32)
        self.fc1 = nn.Linear(32, 32)
        self.fc2 = nn.Linear(32, 32)
        self.fc3 = nn.Linear(32, 32)
        self.fc4 = nn.Linear(32, 32)
        self.head = nn.Linear(32, 2)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        h = h + self.fc2(torch.relu(self.fc1(h)))
        h = h + self.fc4(torch.relu(self.fc3(h)))
        return self.head(torch.relu(h))


class ElmanCell(nn.Module):
    def __init__(self):
        super().__init__()
        self.from_input = nn.Linear(2, 32)
        self.from_state = nn.Linear(32, 32, bias=False)

    def forward(self, h, x_t):
        return torch.tanh(self.from_input(x_t) + self.from_state(h))


class RnnScan(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = ElmanCell()
        self.head = nn.Linear(32, 1)

    def forward(self, seq):                              # (B, T, 2)
        h = seq.new_zeros(seq.shape[0], 32)
        for x_t in seq.unbind(1):
            h = self.rnn(h, x_t)
        return self.head(h)


class Refine(nn.Module):
    def __init__(self):
        super().__init__()
        self.from_state = nn.Linear(16, 16)
        self.from_input = nn.Linear(2, 16)
        self.score = nn.Linear(16, 1)


class AdaptiveDepth(nn.Module):
    """Refine h until each sample's halting score passes 0.5, at most 8 steps."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(2, 16)
        self.refine = Refine()
        self.head = nn.Linear(16, 2)

    def forward(self, x):
        r = self.refine
        h = torch.tanh(self.embed(x))
        running = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        for _ in range(8):
            delta = torch.tanh(r.from_state(h) + r.from_input(x))
            halt = torch.sigmoid(r.score(h))                  # (B, 1)
            h = torch.where(running[:, None], h + (1 - halt) * delta, h)
            running = running & (halt.squeeze(1) <= 0.5)
            if not running.any():
                break
        return self.head(h)


class Route(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)


class GatedBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.route_then = Route()
        self.route_else = Route()

    def forward(self, x):
        take = x[:, 0] > 0.0                                   # (B,)
        return torch.where(take[:, None], self.route_then.fc(x), self.route_else.fc(x))


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(2, 16)
        self.attend = nn.MultiheadAttention(16, 2, batch_first=True)
        self.norm = nn.LayerNorm(16)
        self.hidden = nn.Linear(16, 16)
        self.head = nn.Linear(16, 1)

    def forward(self, seq):                                    # (B, T, 2)
        e = self.embed(seq)
        h = self.norm(e + self.attend(e, e, e, need_weights=False)[0])
        return self.head(F.gelu(self.hidden(h.mean(1))))


TWINS: dict[str, type[nn.Module]] = {
    "moons_mlp": MoonsMlp, "digits_cnn": DigitsCnn, "residual_mlp": ResidualMlp,
    "rnn_scan": RnnScan, "gated_branch": GatedBranch, "adaptive_depth": AdaptiveDepth,
    "attention": Attention,
}
