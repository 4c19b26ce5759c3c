"""fastnn on CUDA vs PyTorch on CUDA: the seeds' MLP, the CNN chapter's model or the text chapter's LSTM,
steady-state seconds per epoch.

    python benchmarks/bench_cuda.py                      # MLP, batch 32, 128, 1024; median of 3 timed epochs each
    python benchmarks/bench_cuda.py --batches 128 --epochs 2 --rows 10000
    python benchmarks/bench_cuda.py --model cnn          # the CNN (issue 17), batch 32 and 128
    python benchmarks/bench_cuda.py --model lstm         # the text chapter's LSTM (issue 18), batch 64

The MLP is 784-300-100-10 (relu, relu, softmax); the CNN is the chapter's (Conv2D 32 same relu,
MaxPooling2D, Conv2D 64, MaxPooling2D, Flatten, Dense 100, Dropout 0.4, Dense 10 softmax) on
28 x 28 x 1 images (PyTorch: the same layers on NCHW, ``run_one.torch_model``). Both use Adam (lr 1e-3,
eps 1e-7), sparse categorical cross-entropy, on MNIST's 60,000 training images when the
IDX files are found (``$FASTNN_MNIST_DIR``, ``../shared/data/mnist``; see
``mlp_data.py``), else on random data of that shape (the speed does not
depend on the values). The LSTM is the issue's IMDB classifier (as ``run_lstm.py``): Embedding(500, 16)
on 100 token ids (``--seq``), LSTM(8, dropout=0.3, return_sequences=True), LSTM(8, dropout=0.3),
Dense(1, sigmoid), RMSprop(1e-4), binary cross-entropy, on ``--rows`` synthetic pre-padded sequences of
IMDB-like lengths (default 20,000); PyTorch: nn.Embedding, two nn.LSTM(batch_first=True) with
nn.Dropout(0.3) on their inputs, Linear + sigmoid, BCELoss, RMSprop(alpha=0.9, eps=1e-7). The LSTM
row has not been timed on a GPU yet (only run under the simulator).

Both frameworks keep the data on the GPU and shuffle
every epoch; an untimed warm-up epoch pays compilation first. PyTorch runs
when ``torch`` imports with CUDA. Prints one table (median seconds per epoch
and the ratio), with the GPU's name and fastnn's kernel launches per
training step; both run in one process so the ratios are side by side.

Under the CUDA simulator this only checks that the script runs; the
simulator runs every GPU thread in Python, so shrink everything:

    NUMBA_ENABLE_CUDASIM=1 python benchmarks/bench_cuda.py --rows 64 --batches 32 --epochs 1 --hidden 8 4
    NUMBA_ENABLE_CUDASIM=1 python benchmarks/bench_cuda.py --model cnn --rows 8 --batches 4 --epochs 1 --no-torch
    NUMBA_ENABLE_CUDASIM=1 python benchmarks/bench_cuda.py --model lstm --rows 8 --batches 4 --epochs 1 --seq 6 \
        --no-torch
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np


HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import mlp_data  # noqa: E402
import run_lstm  # noqa: E402
import run_one  # noqa: E402


def _model(keras, hidden, kind="mlp", seq=run_lstm.SEQ):
    keras.set_random_seed(0)
    if kind == "lstm":
        model = run_lstm.keras_model(keras, seq)
        model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=1e-4), loss="binary_crossentropy",
                      metrics=["accuracy"])
        return model
    if kind == "cnn":
        model = run_one.keras_model(keras, "cnn")
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
        return model
    layers = [keras.layers.Input(shape=(784,))] + [keras.layers.Dense(w, activation="relu") for w in hidden]
    model = keras.Sequential(layers + [keras.layers.Dense(10, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def launches_per_step(hidden, batch, kind="mlp", seq=run_lstm.SEQ):
    """Kernel launches of one fastnn training step on CUDA (from the step's plan)."""
    import fastnn as keras
    from fastnn.kernels.cuda.engine import Session
    model = _model(keras, hidden, kind, seq)
    model.optimizer.build(model._n_trainable)
    session = Session(model._program_for_training(), model._params, batch, model.optimizer, model._n_trainable)
    return session._plan(batch, True).launches()


def time_fastnn(x, y, batch, epochs, hidden, kind="mlp"):
    """Seconds of each timed epoch of fastnn on CUDA (after one warm-up epoch)."""
    import fastnn as keras
    model = _model(keras, hidden, kind, x.shape[1] if kind == "lstm" else run_lstm.SEQ)
    stamps = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            stamps.append([time.perf_counter()])

        def on_epoch_end(self, epoch, logs=None):
            stamps[-1].append(time.perf_counter())   # fit has synchronised to fetch the epoch's loss

    with keras.device("cuda"):
        model.fit(x, y, batch_size=batch, epochs=epochs + 1, verbose=0, callbacks=[Clock()])
    return [end - start for start, end in stamps[1:]]


def time_torch(x, y, batch, epochs, hidden, kind="mlp"):
    """Seconds of each timed epoch of PyTorch on CUDA (after one warm-up epoch)."""
    import torch
    dev = torch.device("cuda")
    torch.manual_seed(0)
    if kind == "lstm":
        model = run_lstm.torch_net(torch).to(dev)
        opt = torch.optim.RMSprop(model.parameters(), lr=1e-4, alpha=0.9, eps=1e-7)    # Keras's rho and epsilon
        loss_fn = torch.nn.BCELoss()
        x, y = x.astype(np.int64), y[:, None]       # token ids; one target column
    else:
        if kind == "cnn":
            model = run_one.torch_model(torch, "cnn").to(dev)
            x = x.reshape(-1, 1, 28, 28)            # NCHW, converted once
        else:
            widths = [784, *hidden]
            layers = []
            for w_in, w_out in zip(widths, widths[1:]):
                layers += [torch.nn.Linear(w_in, w_out), torch.nn.ReLU()]
            model = torch.nn.Sequential(*layers, torch.nn.Linear(widths[-1], 10)).to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
        loss_fn = torch.nn.CrossEntropyLoss()      # softmax + cross-entropy on logits, as fastnn fuses them
    X, Y = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)
    n = X.shape[0]
    times = []
    for epoch in range(epochs + 1):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        order = torch.randperm(n, device=dev)
        total = torch.zeros((), device=dev)
        for i in range(0, n, batch):
            ids = order[i:i + batch]
            loss = loss_fn(model(X[ids]), Y[ids])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * ids.shape[0]   # a running loss, as fastnn reports, without a sync
        float(total)                                # one sync per epoch
        if epoch:
            times.append(time.perf_counter() - t0)
    return times


def torch_cuda():
    """(True, GPU name) when PyTorch imports with CUDA, else (False, why not)."""
    try:
        import torch
    except ImportError:
        return False, "torch is not installed"
    if not torch.cuda.is_available():
        return False, f"torch {torch.__version__} has no CUDA device"
    return True, f"torch {torch.__version__}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["mlp", "cnn", "lstm"], default="mlp")
    parser.add_argument("--batches", type=int, nargs="+", help="default: 32 128 1024 (MLP), 32 128 (CNN), 64 (LSTM)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per run (after one warm-up)")
    parser.add_argument("--rows", type=int, help="training rows (default: MNIST's 60,000; LSTM: 20,000)")
    parser.add_argument("--seq", type=int, default=run_lstm.SEQ, help="LSTM: token ids per sequence")
    parser.add_argument("--hidden", type=int, nargs="+", default=[300, 100], help="hidden layer widths")
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args()
    if args.batches is None:
        args.batches = {"cnn": [32, 128], "lstm": [64]}.get(args.model, [32, 128, 1024])
    if args.rows is None:
        args.rows = run_lstm.N if args.model == "lstm" else 60000

    from fastnn import config
    try:
        config.set_device("cuda")
    except RuntimeError as exc:
        sys.exit(str(exc))
    from numba import cuda
    from numba.core import config as numba_config
    if numba_config.ENABLE_CUDASIM:
        sys.setswitchinterval(5e-4)      # the simulator's threads wait less for the GIL (see tests/test_cuda.py)
        gpu = "Numba's CUDA simulator (timings mean nothing)"
    else:
        gpu = cuda.get_current_device().name
        gpu = gpu.decode() if isinstance(gpu, bytes) else gpu
    if args.model == "lstm":
        x, y = run_lstm.synthetic(args.rows, args.seq)
        source = f"synthetic token ids, {args.seq} per row"
    else:
        x, y, _, _, source = mlp_data.load(args.rows)
    with_torch, torch_note = (False, "skipped (--no-torch)") if args.no_torch else torch_cuda()
    what = {"cnn": "the CNN chapter's model, Adam", "lstm": "the text chapter's LSTM, RMSprop"}.get(
        args.model, "MLP " + "-".join(str(w) for w in (784, *args.hidden, 10)) + ", Adam")
    x_in = x.reshape(-1, 28, 28, 1) if args.model == "cnn" else x

    print(f"GPU: {gpu}; data: {source}, {x.shape[0]} rows; {what}; median s/epoch of {args.epochs} "
          f"epochs after a warm-up; PyTorch: {torch_note}")
    print("| batch | fastnn launches/step | fastnn CUDA s/epoch | PyTorch CUDA s/epoch | fastnn / PyTorch |")
    print("| --- | --- | --- | --- | --- |")
    for batch in args.batches:
        ours = statistics.median(time_fastnn(x_in, y, batch, args.epochs, args.hidden, args.model))
        theirs = statistics.median(time_torch(x, y, batch, args.epochs, args.hidden, args.model)) if with_torch \
            else None
        ratio = f"{ours / theirs:.2f}x" if theirs else "-"
        print(f"| {batch} | {launches_per_step(args.hidden, batch, args.model, args.seq)} | {ours:.3f} | "
              f"{f'{theirs:.3f}' if theirs else '-'} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
