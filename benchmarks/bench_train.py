"""Training throughput (samples/s) per input view and network, against the seed team's setup.

The seed team trained a ResNet34 on the full 1024 x 1024 count map in float32. This script
times full training steps (forward, score loss, backward, Adam step) on random batches of each
input view's shape (:class:`sevi_lib.nn.views.View`: ``full`` 1 x 1024 x 1024, ``fold``
1 x 512 x 512, ``fold`` downsampled by 4: 1 x 128 x 128) for ResNet18 and ResNet34, and prints
each configuration's samples/s with its ratio to the seed team's configuration measured in
the same process. With CUDA it also times bf16 and fp16 autocast (fp16 with a GradScaler) and
channels-last. It also times the shard reader (:class:`sevi_lib.nn.data.ShardDataset`
through a DataLoader, per-sample gzip chunks as :mod:`sevi_lib.nn.synth` writes them) to show
whether data loading can keep up.

    python benchmarks/bench_train.py              # quick: batch 2, 1 warm-up + best of 2 steps, CPU
    python benchmarks/bench_train.py --steps 3 --rounds 2 --batch 8 --threads 2
    python benchmarks/bench_train.py --device cuda --batch 32 --steps 20

Timings on a shared machine are noisy; compare ratios from one run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from sevi_lib.nn.network import build_model
from sevi_lib.nn.data import ShardDataset
from sevi_lib.nn.device import resolve_device
from sevi_lib.nn.loss import score_loss
from sevi_lib.nn.views import View

VIEWS = {
    "full": View("full"),
    "fold": View("fold"),
    "fold/4": View("fold", downsample=4),
}


def time_steps(arch, shape, batch, steps, warmup, device, amp="off", channels_last=False, compile_=False):
    """Seconds per training step: the fastest of ``steps`` timed steps after ``warmup`` steps
    (the minimum is the least disturbed by other load on a shared machine)."""
    torch.manual_seed(0)
    model = build_model(arch, in_channels=shape[0]).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    fwd = torch.compile(model) if compile_ else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")
    x = torch.rand((batch, *shape), device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = 0.3 * torch.randn(batch, 2, 12, device=device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            pred = fwd(x)
        loss = score_loss(pred.float(), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        sync()
        t = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t)
    return min(times)


def time_reader(view, n, batch, workers, folder):
    """Samples/s of ShardDataset through a DataLoader for one view shape (gzip-1 per-sample chunks)."""
    rng = np.random.default_rng(0)
    path = Path(folder) / f"bench_{view.shape[1]}.h5"
    counts = np.zeros((n, 1024, 1024), np.float32)
    for i in range(n):  # sparse count maps like the synthetic ones (~1e5 electrons, ring-like)
        r = np.clip(rng.normal(0.6, 0.01, 100_000), -1, 1) * 512
        phi = rng.uniform(0, 2 * np.pi, r.size)
        ix = np.clip((512 + r * np.cos(phi)).astype(int), 0, 1023)
        iz = np.clip((512 + r * np.sin(phi)).astype(int), 0, 1023)
        np.add.at(counts[i], (ix, iz), 1.0)
    from sevi_lib.nn.views import apply_view

    with h5py.File(path, "w") as f:
        d = f.create_dataset("inputs", shape=(n,) + view.shape, dtype=np.float32, chunks=(1,) + view.shape,
                             compression="gzip", compression_opts=1)
        for i in range(n):
            d[i] = apply_view(counts[i], view)
        f["labels"] = np.zeros((n, 2, 12))
    ds = ShardDataset([path])
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                                         persistent_workers=False)
    t = time.perf_counter()
    seen = sum(len(x) for x, _ in loader)
    return seen / (time.perf_counter() - t)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", default="resnet18,resnet34")
    p.add_argument("--views", default="fold/4,fold,full", help=f"comma list of {', '.join(VIEWS)}")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--rounds", type=int, default=1, help="repeat all configurations; keep each one's best")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (CUDA)")
    p.add_argument("--reader-samples", type=int, default=16, help="samples per view for the reader timing (0: skip)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers for the reader timing")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    archs = args.archs.split(",")
    views = args.views.split(",")
    print(f"device {device}{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}, "
          f"{args.warmup} warm-up + best of {args.steps} timed steps, {args.rounds} round(s)")

    variants = [("fp32", "off", False, False)]
    if device.type == "cuda":
        variants += [("bf16", "bf16", False, False), ("fp16", "fp16", False, False),
                     ("bf16+cl", "bf16", True, False)]
        if args.compile:
            variants.append(("bf16+cl+compile", "bf16", True, True))

    time_steps("resnet18", VIEWS["fold/4"].shape, args.batch, 1, 1, device)  # warm the process up
    configs = [(arch, name, *v) for arch in archs for name in views for v in variants]
    baseline = ("resnet34", "full", *variants[0])
    if baseline not in configs:
        configs.insert(0, baseline)
    best = {}
    for r in range(args.rounds):  # rounds interleave the configurations: load bursts hit all alike
        for c in configs:
            arch, name, label, amp, cl, comp = c
            sec = time_steps(arch, VIEWS[name].shape, args.batch, args.steps, args.warmup, device, amp, cl, comp)
            best[c] = min(sec, best.get(c, float("inf")))
    base_rate = args.batch / best[baseline]
    print(f"baseline (seed team: resnet34, full 1x1024x1024, fp32): {base_rate:8.2f} samples/s "
          f"({1e3 * best[baseline]:.0f} ms/step)")
    print(f"{'arch':9s} {'view':7s} {'shape':12s} {'variant':16s} {'samples/s':>10s} {'ms/step':>9s} {'x baseline':>10s}")
    for c in configs:
        arch, name, label = c[:3]
        rate = args.batch / best[c]
        print(f"{arch:9s} {name:7s} {'x'.join(map(str, VIEWS[name].shape)):12s} {label:16s} {rate:10.2f} "
              f"{1e3 * best[c]:9.1f} {rate / base_rate:10.2f}")
    if args.reader_samples:
        with tempfile.TemporaryDirectory() as tmp:
            for name in views:
                rate = time_reader(VIEWS[name], args.reader_samples, max(args.batch, 2), args.workers, tmp)
                print(f"reader    {name:7s} {'x'.join(map(str, VIEWS[name].shape)):12s} {'shards':16s} {rate:10.1f}"
                      f" samples/s ({args.workers} workers)")


if __name__ == "__main__":
    main()
