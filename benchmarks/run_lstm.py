"""Times one framework on the text chapter's LSTM model in a fresh process; prints one JSON line.

    python benchmarks/run_lstm.py fastnn --epochs 2
    python benchmarks/run_lstm.py torch --epochs 2
    /path/to/keras/python benchmarks/run_lstm.py keras --epochs 2

The model (the issue's IMDB classifier): Embedding(500, 16) on sequences of 100 token ids,
LSTM(8, dropout=0.3, return_sequences=True), LSTM(8, dropout=0.3), Dense(1, sigmoid); RMSprop(1e-4),
binary cross-entropy, batch 64. PyTorch: nn.Embedding + two nn.LSTM(batch_first=True) with
nn.Dropout(0.3) on each LSTM's input, Linear + sigmoid, BCELoss, RMSprop(alpha=0.9, eps=1e-7).
Data: Keras's IMDB (num_words=500, pad_sequences(maxlen=100)) when ``--imdb PATH`` names its
imdb.npz, else synthetic sequences of the same shape: 20,000 rows of 100 ids in [1, 500) with
IMDB-like lengths (lognormal around 230 words), pre-padded with 0 as pad_sequences does.
Reports each timed epoch (after a warm-up epoch on 640 rows: compile, first-touch) and the first
step's time from import.
"""
import argparse
import json
import sys
import time

import numpy as np

SEQ, VOCAB, N = 100, 500, 20000


def data(args):
    if args.imdb:
        sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
        import fastnn
        (x, y), _ = fastnn.datasets.imdb.load_data(path=args.imdb, num_words=VOCAB)
        return fastnn.utils.pad_sequences(x[:N], maxlen=SEQ).astype(np.float32), y[:N].astype(np.float32), "imdb"
    return (*synthetic(), "synthetic")


def synthetic(rows=N, seq=SEQ):
    """``rows`` sequences of ``seq`` ids in [1, VOCAB) with IMDB-like lengths, pre-padded with 0, and 0/1 labels."""
    rng = np.random.default_rng(0)
    lengths = np.clip(rng.lognormal(np.log(230), 0.6, rows).astype(int), 10, None)
    x = np.zeros((rows, seq), dtype=np.float32)
    for i, n in enumerate(lengths):
        n = min(n, seq)
        x[i, seq - n:] = rng.integers(1, VOCAB, n)
    return x, rng.integers(0, 2, rows).astype(np.float32)


def keras_model(keras, seq=SEQ):
    """The issue's model, uncompiled (fastnn and Keras run the same lines: only the module differs)."""
    model = keras.Sequential()
    model.add(keras.layers.Embedding(VOCAB, 16, input_shape=(seq,)))
    model.add(keras.layers.LSTM(8, dropout=0.3, return_sequences=True))
    model.add(keras.layers.LSTM(8, dropout=0.3))
    model.add(keras.layers.Dense(1, activation="sigmoid"))
    return model


def torch_net(torch):
    """The same model in PyTorch: nn.Dropout(0.3) on each LSTM's input (Keras's dropout=0.3)."""
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(VOCAB, 16)
            self.drop1, self.lstm1 = nn.Dropout(0.3), nn.LSTM(16, 8, batch_first=True)
            self.drop2, self.lstm2 = nn.Dropout(0.3), nn.LSTM(8, 8, batch_first=True)
            self.out = nn.Linear(8, 1)

        def forward(self, ids):
            h, _ = self.lstm1(self.drop1(self.emb(ids)))
            h, _ = self.lstm2(self.drop2(h))
            return torch.sigmoid(self.out(h[:, -1]))
    return Net()


def run_keras_api(module, x, y):
    """fastnn and Keras run the same lines: only the imported module differs."""
    t0 = time.perf_counter()
    keras = __import__(module)
    t_import = time.perf_counter() - t0
    keras.utils.set_random_seed(0)
    model = keras_model(keras)
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=1e-4), loss="binary_crossentropy",
                  metrics=["accuracy"])
    model.fit(x[:64], y[:64], batch_size=64, epochs=1, verbose=0)
    t_first = time.perf_counter() - t0
    model.fit(x[:640], y[:640], batch_size=64, epochs=1, verbose=0)

    def epoch():
        return model.fit(x, y, batch_size=64, epochs=1, verbose=0).history["loss"][0]
    return t_import, t_first, epoch


def run_torch(args, x, y):
    t0 = time.perf_counter()
    import torch
    from torch import nn
    t_import = time.perf_counter() - t0
    torch.manual_seed(0)
    model = torch_net(torch)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-4, alpha=0.9, eps=1e-7)
    loss_fn = nn.BCELoss()
    X, Y = torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y[:, None])

    def steps(n_rows):
        perm = torch.randperm(n_rows)
        total = 0.0
        for i in range(0, n_rows, 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            loss = loss_fn(model(X[idx]), Y[idx])
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
        return total / n_rows
    steps(64)
    t_first = time.perf_counter() - t0
    steps(640)
    return t_import, t_first, lambda: steps(len(X))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("framework", choices=["fastnn", "torch", "keras"])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--imdb", help="Keras's imdb.npz (default: synthetic data of its shape)")
    args = p.parse_args()
    x, y, source = data(args)
    if args.framework == "torch":
        t_import, t_first, epoch = run_torch(args, x, y)
    else:
        t_import, t_first, epoch = run_keras_api(args.framework, x, y)
    times, losses = [], []
    for _ in range(args.epochs):
        t = time.perf_counter()
        losses.append(float(epoch()))
        times.append(time.perf_counter() - t)
    print(json.dumps({"framework": args.framework, "data": source, "n_train": len(x), "epochs": times,
                      "losses": losses, "import_s": t_import, "first_step_s": t_first}))


if __name__ == "__main__":
    main()
