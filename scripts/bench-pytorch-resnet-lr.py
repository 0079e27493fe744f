#!/usr/bin/python3
"""The training loss of scenarios/resnet.yaml's model in PyTorch, at two
Adam learning rates, so that oombench's loss curve on that scenario can be
told apart from a bug: the same architecture, PyTorch's default
initialisation (U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as oombench's), batch 32
of N(0, 1) images labelled by a fixed random linear teacher (as oombench's
synthetic data), 30 steps, three seeds each.

Run with Debian's interpreter: /usr/bin/python3 scripts/bench-pytorch-resnet-lr.py
Not used by any test.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(2)


class Residual(nn.Module):
    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return x + self.body(x)


def block():
    return Residual(nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                                  nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32)))


def model():
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), block(),
                         nn.ReLU(), nn.MaxPool2d(2), block(), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 8 * 8, 10))


for lr in (1e-3, 1e-4):
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        m = model()
        opt = torch.optim.Adam(m.parameters(), lr=lr)
        teacher = torch.randn(10, 3 * 32 * 32)
        losses = []
        for step in range(30):
            x = torch.randn(32, 3, 32, 32)
            y = (x.flatten(1) @ teacher.T).argmax(1)
            loss = F.cross_entropy(m(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(round(loss.item(), 2))
        print(f"lr {lr:g} seed {seed}: first 8 losses {losses[:8]}, max {max(losses)}, "
              f"last {losses[-1]}")
