#!/usr/bin/python3
"""Measure what PyTorch eager keeps in memory for one training step.

This is a reference benchmark, not a test: it gives PyTorch's numbers for
the same four small models that oombench measures, so the two can be
compared.  Nothing in the build or the test suite depends on it.

Run with Debian's system interpreter (PyTorch 1.13, CPU build):

    /usr/bin/python3 scripts/bench-pytorch-memory.py [--json FILE]

Reference training step (the one that is measured):

    x, y = batch                          # x float32, held by the caller for
                                          # the whole step; y int64 labels
    loss = F.cross_entropy(model(x), y)   # logits not held by a Python variable
    loss.backward()

Before the measured step every parameter's .grad is set to None
(zero_grad(set_to_none=True)), the model is in train mode, nn.ReLU is not in
place and nn.GELU uses approximate='tanh'.  One warm-up step runs first so
that lazy one-time allocations are not measured.  torch.set_num_threads(1).

For each model the script reports:

  input_bytes      bytes of x (allocated before measuring, so not counted
                   in the peaks below).
  saved_bytes      bytes of the tensors autograd saves for backward during the
                   forward (and the loss), collected with
                   torch.autograd.graph.saved_tensors_hooks.  Tensors are
                   deduplicated by storage (each storage counted once, by its
                   nbytes); parameters and module buffers are excluded.  The
                   input x and labels y are included when an op saves them.
  peak             the peak of live activation memory over the measured step
                   (forward, loss and backward), from the CPU allocator's
                   "[memory]" events recorded by torch.profiler with
                   profile_memory=True: running sum of the events' nbytes in
                   list order, maximum taken.  Parameter gradients are
                   excluded (see GradMarker below), so the number is the
                   memory of activations, their gradients and temporaries.
  ckpt_peak        the same peak with non-reentrant activation checkpointing
                   (torch.utils.checkpoint.checkpoint(..., use_reentrant=False))
                   over S = ceil(sqrt(L)) consecutive segments of the L
                   top-level layers; segment lengths differ by at most one
                   (the first L % S segments are one longer); every segment
                   but the last is checkpointed, the last runs normally, as
                   torch.utils.checkpoint.checkpoint_sequential does.

The allocator events see only memory that goes through c10's CPU allocator
(oneDNN's buffers do go through it in this build); anything allocated with
plain malloc would not be seen.
"""

import argparse
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile
from torch.utils.checkpoint import checkpoint


# ---------------------------------------------------------------------------
# Models.  Each model is an nn.Sequential of its top-level layers; the
# checkpoint segments are cut along that list.
# ---------------------------------------------------------------------------

class Residual(nn.Module):
    """Residual(body)(x) = x + body(x), with an out-of-place add."""

    def __init__(self, *body):
        super().__init__()
        self.body = nn.Sequential(*body)

    def forward(self, x):
        return x + self.body(x)


class AttentionCore(torch.autograd.Function):
    """heads = softmax(q k^T / sqrt(d)) v for q, k, v packed in one tensor.

    Input qkv is (B, T, 3C); q, k, v are the three C-wide slices of its last
    dimension, viewed as (B, H, T, d) with d = C / H.  The output is a
    contiguous (B, T, C) tensor.  The node saves exactly qkv and the softmax
    probabilities (B, H, T, T), as a fused attention kernel would; the
    split and the head views happen inside forward and backward, so autograd
    records no separate nodes (and no saved tensors) for them.
    """

    @staticmethod
    def _views(qkv, heads):
        B, T, C3 = qkv.shape
        C = C3 // 3
        d = C // heads
        q, k, v = qkv.split(C, dim=-1)
        return [t.reshape(B, T, heads, d).transpose(1, 2) for t in (q, k, v)]

    @staticmethod
    def forward(ctx, qkv, heads):
        B, T, C3 = qkv.shape
        q, k, v = AttentionCore._views(qkv, heads)
        scale = 1.0 / math.sqrt(q.shape[-1])
        probs = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * scale, dim=-1)
        out = torch.matmul(probs, v)                      # (B, H, T, d)
        out = out.transpose(1, 2).reshape(B, T, C3 // 3)  # contiguous copy
        ctx.heads = heads
        ctx.save_for_backward(qkv, probs)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        qkv, probs = ctx.saved_tensors
        heads = ctx.heads
        B, T, C3 = qkv.shape
        C = C3 // 3
        q, k, v = AttentionCore._views(qkv, heads)
        scale = 1.0 / math.sqrt(q.shape[-1])
        g = grad_out.reshape(B, T, heads, C // heads).transpose(1, 2)  # (B,H,T,d)
        dqkv = qkv.new_empty(qkv.shape)
        dq, dk, dv = AttentionCore._views(dqkv, heads)   # views into dqkv
        dv.copy_(torch.matmul(probs.transpose(-2, -1), g))
        dp = torch.matmul(g, v.transpose(-2, -1))
        # softmax backward: ds = p * (dp - sum(dp * p, -1))
        ds = probs * (dp - (dp * probs).sum(dim=-1, keepdim=True))
        ds.mul_(scale)
        dq.copy_(torch.matmul(ds, k))
        dk.copy_(torch.matmul(ds.transpose(-2, -1), q))
        return dqkv, None


class Attention(nn.Module):
    """Multi-head self-attention (not causal) over a (B, T, C) input."""

    def __init__(self, C, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(C, 3 * C)
        self.proj = nn.Linear(C, C)

    def forward(self, x):
        qkv = self.qkv(x)                               # saves x (its input)
        heads = AttentionCore.apply(qkv, self.heads)    # saves qkv, probs
        return self.proj(heads)                         # saves heads


def make_mlp():
    return nn.Sequential(
        nn.Linear(784, 1024), nn.ReLU(),
        nn.Linear(1024, 1024), nn.ReLU(),
        nn.Linear(1024, 1024), nn.ReLU(),
        nn.Linear(1024, 1024), nn.ReLU(),
        nn.Linear(1024, 10))


def make_fmnist_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def make_resnet():
    def block():
        return Residual(
            nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32))
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        block(), nn.ReLU(), nn.MaxPool2d(2),
        block(), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 10))


def make_transformer(T=32, D=64, C=128, heads=4, blocks=2):
    layers = [nn.Linear(D, C)]
    for _ in range(blocks):
        layers.append(Residual(nn.LayerNorm(C), Attention(C, heads)))
        layers.append(Residual(nn.LayerNorm(C), nn.Linear(C, 4 * C),
                               nn.GELU(approximate='tanh'), nn.Linear(4 * C, C)))
    layers += [nn.LayerNorm(C), nn.Flatten(), nn.Linear(T * C, 10)]
    return nn.Sequential(*layers)


# name, constructor, batch, input shape without the batch dimension
MODELS = [
    ("mlp", make_mlp, 256, (784,)),
    ("fmnist-cnn", make_fmnist_cnn, 128, (1, 28, 28)),
    ("resnet", make_resnet, 32, (3, 32, 32)),
    ("transformer", make_transformer, 64, (32, 64)),
]


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def storage_of(t):
    """(data_ptr, nbytes) of the storage behind t."""
    s = t.untyped_storage() if hasattr(t, "untyped_storage") else t.storage()
    return s.data_ptr(), s.nbytes()


def nbytes(t):
    return t.numel() * t.element_size()


def fmt_bytes(n):
    return f"{n:,}"


def run_step(model, x, y, forward=None):
    """The reference step: loss = cross_entropy(model(x), y); backward."""
    fwd = forward or model
    loss = F.cross_entropy(fwd(x), y)
    loss.backward()
    return loss


def checkpointed_forward(model, preserve_rng_state=True):
    """Forward over the top-level layers split into S checkpointed segments.

    With preserve_rng_state (checkpoint's default) every checkpointed segment
    stashes the CPU RNG state, a 5,056-byte uint8 tensor, and the
    recomputation forks it again; the models use no randomness, so the
    script also reports the peak without it.
    """
    layers = list(model)
    L = len(layers)
    S = math.ceil(math.sqrt(L))
    base, extra = divmod(L, S)
    segments, start = [], 0
    for i in range(S):
        n = base + (1 if i < extra else 0)
        segments.append(layers[start:start + n])
        start += n

    def run_segment(seg):
        def fn(inp):
            for layer in seg:
                inp = layer(inp)
            return inp
        return fn

    def forward(x):
        for seg in segments[:-1]:
            x = checkpoint(run_segment(seg), x, use_reentrant=False,
                           preserve_rng_state=preserve_rng_state)
        return run_segment(segments[-1])(x)

    forward.segment_lengths = [len(s) for s in segments]
    return forward


# ---------------------------------------------------------------------------
# (a) Tensors saved for backward
# ---------------------------------------------------------------------------

def saved_tensor_owners(root):
    """Map (storage data_ptr, shape, dtype) -> list of "Node.attr" that saved it.

    Walks the autograd graph from root and reads each node's saved tensors
    (the _saved_* attributes of built-in nodes, saved_tensors of custom
    Function nodes).  Used only to label the breakdown.
    """
    owners = {}
    seen, stack = set(), [root]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        name = type(node).__name__
        items = []
        for attr in dir(node):
            if not attr.startswith("_saved_"):
                continue
            try:
                val = getattr(node, attr)
            except Exception:
                continue
            vals = val if isinstance(val, (tuple, list)) else [val]
            items += [(attr[len("_saved_"):], v) for v in vals if isinstance(v, torch.Tensor)]
        if hasattr(node, "saved_tensors"):            # custom Function node
            try:
                items += [(f"saved[{i}]", v) for i, v in enumerate(node.saved_tensors)]
            except Exception:
                pass
        for attr, t in items:
            key = (storage_of(t)[0], tuple(t.shape), t.dtype)
            owners.setdefault(key, []).append(f"{name}.{attr}")
        stack += [f for f, _ in node.next_functions]
    return owners


def measure_saved(model, x, y):
    packed = []

    def pack(t):
        packed.append(t)
        return t

    def unpack(t):
        return t

    model.zero_grad(set_to_none=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        loss = F.cross_entropy(model(x), y)
    owners = saved_tensor_owners(loss.grad_fn)

    excluded = {storage_of(t)[0] for t in list(model.parameters()) + list(model.buffers())}
    inputs = {storage_of(x)[0]: "x", storage_of(y)[0]: "y"}
    storages = {}                      # data_ptr -> entry, in first-saved order
    for t in packed:
        ptr, size = storage_of(t)
        if ptr == 0 or ptr in excluded:
            continue
        entry = storages.setdefault(ptr, {"bytes": size, "dtype": str(t.dtype).replace("torch.", ""),
                                          "shapes": [], "savers": [], "input": inputs.get(ptr)})
        shape = tuple(t.shape)
        if shape not in entry["shapes"]:
            entry["shapes"].append(shape)
        for s in owners.get((ptr, shape, t.dtype), []):
            if s not in entry["savers"]:
                entry["savers"].append(s)
    loss.backward()                    # release the graph
    model.zero_grad(set_to_none=True)
    total = sum(e["bytes"] for e in storages.values())
    total_inputs = sum(e["bytes"] for e in storages.values() if e["input"])
    return total, total_inputs, list(storages.values())


# ---------------------------------------------------------------------------
# (b), (c) Peak live activation memory from the profiler's allocator events
# ---------------------------------------------------------------------------

class GradMarker:
    """Marks parameter-gradient allocations in the profiler's memory stream.

    A hook on every parameter runs when its gradient is ready, before it is
    accumulated into .grad.  The hook records the gradient's size and then
    allocates and drops a 1-byte marker tensor, which puts a +1/-1 pair of
    "[memory]" events into the stream right after the gradient's
    allocation.  With .grad set to None the gradient tensor itself becomes
    .grad (AccumulateGrad steals it), so it stays allocated to the end of the
    step; post-processing drops its allocation event from the running sum.
    """

    def __init__(self, model):
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.sizes = []
        self.ptrs = []
        self.handles = [p.register_hook(self._hook) for p in self.params]

    def _hook(self, grad):
        self.sizes.append(nbytes(grad))
        self.ptrs.append(grad.data_ptr())
        del grad
        torch.empty(1, dtype=torch.uint8)   # marker: +1 then -1 event
        return None

    def reset(self):
        self.sizes, self.ptrs = [], []

    def stolen(self):
        """How many .grad tensors are the very tensor the hook saw."""
        kept = {p.grad.data_ptr() for p in self.params if p.grad is not None}
        return sum(1 for ptr in self.ptrs if ptr in kept)

    def remove(self):
        for h in self.handles:
            h.remove()


def activation_peak(events, grad_sizes):
    """Peak of the running sum of allocator events, parameter grads excluded.

    events: nbytes of the "[memory]" events, in list order (allocations
    positive, frees negative).  grad_sizes: the gradient sizes the hooks
    recorded, in hook order.  Each marker (+1 directly followed by -1)
    claims the most recent earlier, not yet claimed allocation of the size
    its hook recorded; the claimed allocations and the markers are left out
    of the running sum.

    Returns a dict: peak, final (running sum at the end of the step),
    markers, claimed, ties (markers that had more than one allocation of
    the right size since the previous marker), ambiguous (ties where one
    of those allocations stayed unclaimed, so the choice may have been
    wrong; a tie among gradients only is harmless, they all stay live) and
    uncertainty (the sum of the ambiguous sizes: a wrong choice swaps a
    temporary of that size for a gradient of the same size, which moves the
    running sum by at most that much at any point).
    """
    excluded, claims = set(), []
    sizes = iter(grad_sizes)
    prev_marker = -1
    for i, n in enumerate(events):
        if not (n == 1 and i + 1 < len(events) and events[i + 1] == -1):
            continue
        excluded.update((i, i + 1))
        size = next(sizes, None)
        if size is not None:
            window = [j for j in range(i - 1, prev_marker, -1)
                      if events[j] == size and j not in excluded]
            earlier = [j for j in range(prev_marker, -1, -1)
                       if events[j] == size and j not in excluded]
            pick = (window or earlier or [None])[0]
            if pick is not None:
                excluded.add(pick)
                claims.append((size, window))
        prev_marker = i + 1
    running, peak, peak_at = 0, 0, -1
    for i, n in enumerate(events):
        if i not in excluded:
            running += n
            if running > peak:
                peak, peak_at = running, i
    ties = [(size, w) for size, w in claims if len(w) > 1]
    ambiguous = [size for size, w in ties if any(j not in excluded for j in w)]
    return {
        "peak": peak,
        "peak_event": peak_at,
        "final": running,
        "markers": sum(1 for i in range(len(events) - 1) if events[i] == 1 and events[i + 1] == -1),
        "claimed": len(claims),
        "ties": len(ties),
        "ambiguous": len(ambiguous),
        "uncertainty": sum(ambiguous),
    }


def phase_of(all_events, memory_index):
    """Name the autograd node (or 'forward') running at the given memory event."""
    phase, seen = "forward", -1
    for e in all_events:
        name = e.name()
        if name == "[memory]":
            seen += 1
            if seen == memory_index:
                return phase
        elif name.startswith("autograd::engine::evaluate_function: "):
            phase = name.split(": ", 1)[1]
    return phase


def measure_peak(model, x, y, forward=None):
    marker = GradMarker(model)
    try:
        run_step(model, x, y, forward)            # warm-up
        model.zero_grad(set_to_none=True)
        marker.reset()
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            loss = run_step(model, x, y, forward)
        all_events = prof.profiler.kineto_results.events()
        events = [e.nbytes() for e in all_events if e.name() == "[memory]"]
        result = activation_peak(events, marker.sizes)
        result["peak_during"] = phase_of(all_events, result["peak_event"])
        result.update({
            "params": len(marker.params),
            "hooks": len(marker.sizes),
            "stolen": marker.stolen(),
            "loss": loss.item(),
        })
    finally:
        marker.remove()
        model.zero_grad(set_to_none=True)
    return result


def batchnorm_check(model, x, y, forward):
    """Show that the double running-stats update under checkpoint costs no memory.

    Under checkpointing a BatchNorm layer runs its forward twice per step, so
    the running statistics are updated twice (num_batches_tracked grows by 2).
    The update is in place on the buffers.  The same checkpointed step with
    running statistics switched off must give the same peak.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return None
    before = [int(m.num_batches_tracked) for m in bns]
    run_step(model, x, y, forward)
    model.zero_grad(set_to_none=True)
    updates = [int(m.num_batches_tracked) - b for m, b in zip(bns, before)]
    saved = [(m.running_mean, m.running_var, m.num_batches_tracked, m.track_running_stats) for m in bns]
    for m in bns:
        m.track_running_stats = False
        m.running_mean = m.running_var = m.num_batches_tracked = None
    try:
        no_stats = measure_peak(model, x, y, forward)
    finally:
        for m, (rm, rv, nbt, trs) in zip(bns, saved):
            m.running_mean, m.running_var, m.num_batches_tracked = rm, rv, nbt
            m.track_running_stats = trs
    return {"updates_per_step": updates, "peak_without_running_stats": no_stats["peak"]}


# ---------------------------------------------------------------------------

def check_attention_grad():
    torch.manual_seed(0)
    qkv = torch.randn(2, 3, 3 * 8, dtype=torch.double, requires_grad=True)
    return torch.autograd.gradcheck(lambda t: AttentionCore.apply(t, 2), (qkv,))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--quiet", action="store_true", help="print only the table")
    args = ap.parse_args()

    torch.set_num_threads(1)
    t0 = time.time()
    ok = check_attention_grad()
    print(f"AttentionCore gradcheck (double, B=2 T=3 C=8 H=2): {'passed' if ok else 'FAILED'}")

    results = []
    for name, make, batch, shape in MODELS:
        torch.manual_seed(0)
        model = make().train()
        x = torch.randn(batch, *shape)
        y = torch.randint(0, 10, (batch,))
        input_bytes = nbytes(x)

        saved, saved_inputs, breakdown = measure_saved(model, x, y)
        plain = measure_peak(model, x, y)
        fwd = checkpointed_forward(model)
        ckpt = measure_peak(model, x, y, fwd)
        ckpt_no_rng = measure_peak(model, x, y, checkpointed_forward(model, False))
        bn = batchnorm_check(model, x, y, fwd)

        r = {
            "model": name, "batch": batch, "input_bytes": input_bytes,
            "saved_bytes": saved, "saved_bytes_of_inputs": saved_inputs,
            "peak_activation_bytes": plain["peak"],
            "peak_plus_input": plain["peak"] + input_bytes,
            "checkpoint_segments": fwd.segment_lengths,
            "checkpoint_peak_activation_bytes": ckpt["peak"],
            "checkpoint_peak_plus_input": ckpt["peak"] + input_bytes,
            "checkpoint_peak_activation_bytes_no_rng_state": ckpt_no_rng["peak"],
            "plain_check": plain, "checkpoint_check": ckpt,
            "checkpoint_no_rng_state_check": ckpt_no_rng, "batchnorm_check": bn,
            "saved": [{**e, "shapes": [list(s) for s in e["shapes"]]} for e in breakdown],
        }
        results.append(r)

        if args.quiet:
            continue
        print(f"\n== {name}: batch {batch}, {len(list(model))} top-level layers, "
              f"{plain['params']} parameter tensors")
        print(f"  saved for backward: {fmt_bytes(saved)} B in {len(breakdown)} storages "
              f"({fmt_bytes(saved_inputs)} B of them x / y)")
        for e in breakdown:
            shapes = " ".join("x".join(map(str, s)) or "scalar" for s in e["shapes"])
            tag = f" [{e['input']}]" if e["input"] else ""
            print(f"    {e['bytes']:>12,} B  {e['dtype']:<8} {shapes:<28} "
                  f"{', '.join(e['savers']) or '?'}{tag}")
        seg = fwd.segment_lengths
        for label, m in (("plain", plain), (f"checkpoint {seg}", ckpt),
                         (f"checkpoint {seg}, preserve_rng_state=False", ckpt_no_rng)):
            ok_counts = m["claimed"] == m["params"] == m["markers"] == m["hooks"]
            note = "" if ok_counts else "  <-- COUNTS DIFFER"
            tie = (f", {m['ties']} size ties ({m['ambiguous']} ambiguous: peak uncertain "
                   f"by <= {m['uncertainty']} B)" if m["ties"] else "")
            print(f"  {label}: peak {fmt_bytes(m['peak'])} B (during {m['peak_during']}); left at end "
                  f"{fmt_bytes(m['final'])} B; grad allocations claimed {m['claimed']} of "
                  f"{m['params']} params{tie}; .grad is the hooked tensor "
                  f"{m['stolen']}/{m['hooks']}{note}")
        if bn:
            print(f"  batch norm under checkpoint: running stats updated "
                  f"{sorted(set(bn['updates_per_step']))} times per step; checkpoint peak "
                  f"with running stats off {fmt_bytes(bn['peak_without_running_stats'])} B "
                  f"(with: {fmt_bytes(ckpt['peak'])} B)")

    print("\nmodel        batch  input_bytes  saved_bytes  peak_activation  peak+input  ckpt_peak+input")
    for r in results:
        print(f"{r['model']:<12} {r['batch']:>5} {r['input_bytes']:>12,} {r['saved_bytes']:>12,} "
              f"{r['peak_activation_bytes']:>16,} {r['peak_plus_input']:>11,} "
              f"{r['checkpoint_peak_plus_input']:>16,}")
    print(f"(torch {torch.__version__}, {time.time() - t0:.1f} s)")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "attention_gradcheck": bool(ok),
                       "models": results}, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
