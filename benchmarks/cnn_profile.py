"""Where a training step of the chapter's CNN (or the seeds' MLP) spends its time, op by op.

    python benchmarks/cnn_profile.py --batch 128 --reps 20
    NUMBA_NUM_THREADS=1 python benchmarks/cnn_profile.py --batch 32 --reps 10 --best-of 5
    python benchmarks/cnn_profile.py --model mlp --batch 1024 --reps 10 --best-of 5

Builds the chapter CNN (Conv2D 32 / MaxPooling2D / Conv2D 64 / MaxPooling2D /
Flatten / Dense 100 / Dropout / Dense 10, Adam; ``--model mlp``: 784-300-100-10),
then runs each op of its compiled program alone, forward and backward,
``--reps`` times on a batch of MNIST-shaped random images, through the same compiled functions fit
uses (``engine.forward`` / ``engine.backward`` on a one-row program), with
BLAS pinned to one thread as in fit. Prints milliseconds per call, the
share of the step, and GFLOP/s for the convolutions; then the whole step
(fit on ``--steps`` batches) to compare with the sum.
"""
import argparse
import sys
import time
from pathlib import Path

import numba
import numpy as np
from numba import njit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fastnn as keras  # noqa: E402
from fastnn.kernels import kinds, program as P  # noqa: E402
from fastnn.kernels.cpu import engine  # noqa: E402
from fastnn.kernels.cpu.pointers import call  # noqa: E402
from fastnn import threads  # noqa: E402
from fastnn.models.training import Workspace  # noqa: E402


@njit
def _repeat(fn, prog, ints, params, consts, grads, ws, gs, b, n_parts, ab, parallel, block, acts, reps):
    for _ in range(reps):
        call(fn, prog, ints, params, consts, grads, ws, gs, b, n_parts, ab, True, parallel, block, acts, ws)


@njit
def _repeat_backward(fn, prog, ints, params, consts, grads, ws, gs, b, n_parts, ab, parallel, act_block, block,
                     acts, reps):
    for _ in range(reps):
        call(fn, prog, ints, params, consts, grads, ws, gs, b, n_parts, ab, True, parallel, act_block, block, acts)


def chapter_cnn(dropout=True):
    L = keras.layers
    layers = [L.Input(shape=(28, 28, 1)), L.Conv2D(32, 3, activation="relu", padding="same"), L.MaxPooling2D(2),
              L.Conv2D(64, 3, activation="relu", padding="same"), L.MaxPooling2D(2), L.Flatten(),
              L.Dense(100, activation="relu")]
    if dropout:
        layers.append(L.Dropout(0.4))
    layers.append(L.Dense(10, activation="softmax"))
    model = keras.Sequential(layers)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def seeds_mlp():
    L = keras.layers
    model = keras.Sequential([L.Input(shape=(784,)), L.Dense(300, activation="relu"), L.Dense(100, activation="relu"),
                              L.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def conv_flops(rec, ints):
    """Multiply-adds x 2 of a Conv op's forward pass per sample (0 for other kinds)."""
    from fastnn.kernels.kinds import conv
    from fastnn.kernels.kinds.parallel import HEADER
    if rec[P.KIND] != conv.CONV:
        return 0
    g = rec[P.IAUX] + HEADER
    OH, OW, KH, KW, C, F = (ints[g + k] for k in (conv.G_OH, conv.G_OW, conv.G_KH, conv.G_KW, conv.G_C, conv.G_F))
    return 2 * OH * OW * KH * KW * C * F


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["cnn", "mlp"], default="cnn")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--best-of", type=int, default=1,
                   help="time each op this many rounds of --reps calls and report the fastest round (on a "
                        "machine whose speed drifts, differences between ops or trees show in the minimum)")
    p.add_argument("--cpu-time", action="store_true",
                   help="report the process's CPU time instead of wall time (with NUMBA_NUM_THREADS=1 that is "
                        "the op's own cost however busy the machine is)")
    args = p.parse_args()
    b = args.batch
    keras.utils.set_random_seed(0)
    model, shape = (chapter_cnn(), (28, 28, 1)) if args.model == "cnn" else (seeds_mlp(), (784,))
    rng = np.random.default_rng(0)
    x = rng.random((b * args.steps, *shape), dtype=np.float32)
    y = rng.integers(0, 10, b * args.steps)
    model.fit(x[:b], y[:b], batch_size=b, verbose=0)
    program = model._program_for_training()
    prog, ints, params, consts = program.prog, program.ints, model._params, program.consts
    parts = engine.training_parts(prog, b)
    fwd, bwd, parallel, fblock, ablock, bblock, acts = parts
    ws = Workspace(program, b)
    ws.ws[:] = rng.random(ws.ws.shape[0], dtype=np.float32)
    ws.gs[:] = rng.standard_normal(ws.gs.shape[0]).astype(np.float32) * 1e-3
    grads = np.zeros_like(params)
    n_parts = threads.parts()
    names = [n.layer.name for n in model._graph()[1] if n.layer.op(n.input_shape) is not None]
    rows = []
    with threads.compiled_run():
        for i in range(prog.shape[0]):
            one = np.ascontiguousarray(prog[i:i + 1])
            if one[0, P.KIND] == P.DENSE:
                one[0, P.FLAGS] &= ~P.DIRECT_INPUT
            times = []
            for k in range(2):
                if k == 0:
                    repeat = _repeat
                    args_ = (fwd, one, ints, params, consts, grads, ws.ws, ws.gs, b, n_parts, ws.ab, parallel, fblock,
                             acts)
                else:
                    repeat = _repeat_backward
                    args_ = (bwd, one, ints, params, consts, grads, ws.ws, ws.gs, b, n_parts, ws.ab, parallel, ablock,
                             bblock, acts)
                repeat(*args_, 1)
                rounds = []
                for _ in range(args.best_of):
                    t, c = time.perf_counter(), time.process_time()
                    repeat(*args_, args.reps)
                    clock = time.process_time() - c if args.cpu_time else time.perf_counter() - t
                    rounds.append(clock / args.reps * 1e3)
                times.append(min(rounds))
            rows.append((names[i], kinds.get(int(prog[i, P.KIND])).name, times[0], times[1],
                         conv_flops(prog[i], ints) * b, 2 if prog[i, P.FLAGS] & P.NEED_DX else 1))
        t, c = time.perf_counter(), time.process_time()
        model.fit(x, y, batch_size=b, verbose=0, epochs=1)
        step = ((time.process_time() - c) if args.cpu_time else (time.perf_counter() - t)) / args.steps * 1e3
    total = sum(r[2] + r[3] for r in rows)
    print(f"{'chapter CNN' if args.model == 'cnn' else 'seeds MLP'}, batch {b}, {n_parts} threads, threading layer {numba.threading_layer()}; "
          f"{'CPU' if args.cpu_time else 'wall'} ms per call")
    print("| op | kind | forward ms | backward ms | share | conv GFLOP/s fwd / bwd |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, kind, f, bw, flops, passes in rows:
        rate = f"{flops / f / 1e6:.0f} / {passes * flops / bw / 1e6:.0f}" if flops else ""
        print(f"| {name} | {kind} | {f:.2f} | {bw:.2f} | {(f + bw) / total:.0%} | {rate} |")
    print(f"sum of ops {total:.1f} ms; whole training step (fit, {args.steps} steps) {step:.1f} ms")


if __name__ == "__main__":
    main()
