"""Times one framework on the seeds' MLP (or the CNN chapter's model) in a fresh process; prints one JSON line.

    python benchmarks/run_one.py fastnn --batch 32 --epochs 3
    python benchmarks/run_one.py torch --model cnn --batch 128 --epochs 2

The CNN is the chapter's: Conv2D(32, 3, relu, same) / MaxPooling2D(2) /
Conv2D(64, 3, relu, same) / MaxPooling2D(2) / Flatten / Dense(100, relu) /
Dropout(0.4) / Dense(10, softmax), Adam, on (28, 28, 1) images; PyTorch runs
the same layers (``nn.Conv2d`` on NCHW tensors, converted once before timing).

Measures: import time, time from the start of the framework's import to the
end of the first training step (one batch; data already loaded), seconds per epoch (each epoch separately, after a
warm-up epoch fraction), predict time on 10,000 images (the first call, which
compiles, and the median of five more), test accuracy and peak RSS. Run by compare.py, one process per (framework, batch size), so
each framework's memory and import are its own.
"""
import argparse
import json
import sys
import time

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import mlp_data  # noqa: E402

# CPU seconds of this process (not its children) at the points timed in wall seconds: the import and
# import to first step (both from the start of the import), the first predict.
CPU = {}


def keras_model(keras, kind):
    L = keras.layers
    if kind == "cnn":
        return keras.Sequential([L.Input(shape=(28, 28, 1)), L.Conv2D(32, kernel_size=3, activation="relu", padding="same"),
                                 L.MaxPooling2D(2), L.Conv2D(64, kernel_size=(3, 3), activation="relu", padding="same"),
                                 L.MaxPooling2D(2), L.Flatten(), L.Dense(100, activation="relu"), L.Dropout(0.4),
                                 L.Dense(10, activation="softmax")])
    return keras.Sequential([L.Input(shape=(784,)), L.Dense(300, activation="relu"), L.Dense(100, activation="relu"),
                             L.Dense(10, activation="softmax")])


def torch_model(torch, kind):
    nn = torch.nn
    if kind == "cnn":
        return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1),
                             nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3136, 100), nn.ReLU(), nn.Dropout(0.4),
                             nn.Linear(100, 10))
    return nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))


def run_keras_api(module, args, data):
    """fastnn and Keras run the very same Keras code: only the import differs."""
    import importlib
    c0 = time.process_time()
    t0 = time.perf_counter()
    keras = importlib.import_module(module)
    t_import = time.perf_counter() - t0
    CPU["import_s"] = time.process_time() - c0
    xtr, ytr, xte, yte, _ = data
    keras.utils.set_random_seed(0)
    model = keras_model(keras, args.model)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(xtr[:args.batch], ytr[:args.batch], batch_size=args.batch, epochs=1, verbose=0)
    t_first = time.perf_counter() - t0
    CPU["first_step_s"] = time.process_time() - c0

    def epoch():
        model.fit(xtr, ytr, batch_size=args.batch, epochs=1, verbose=0)

    def predict():
        return model.predict(xte, batch_size=args.predict_batch, verbose=0)
    return t_import, t_first, epoch, predict


def run_fastnn(args, data):
    return run_keras_api("fastnn", args, data)


def run_torch(args, data):
    c0 = time.process_time()
    t0 = time.perf_counter()
    import torch
    t_import = time.perf_counter() - t0
    CPU["import_s"] = time.process_time() - c0
    xtr, ytr, xte, yte, _ = data
    torch.manual_seed(0)
    model = torch_model(torch, args.model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = torch.nn.CrossEntropyLoss()
    if args.model == "cnn":     # NHWC -> NCHW, once
        xtr, xte = (np.ascontiguousarray(a.transpose(0, 3, 1, 2)) for a in (xtr, xte))
    X, Y, XT = torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xte)

    def steps(n_rows):
        model.train()
        perm = torch.randperm(n_rows)
        for i in range(0, n_rows, args.batch):
            idx = perm[i:i + args.batch]
            opt.zero_grad()
            loss = loss_fn(model(X[idx]), Y[idx])
            loss.backward()
            opt.step()
    steps(args.batch)
    t_first = time.perf_counter() - t0
    CPU["first_step_s"] = time.process_time() - c0

    def predict():
        model.eval()
        with torch.no_grad():
            return torch.cat([torch.softmax(model(XT[i:i + args.predict_batch]), 1)
                              for i in range(0, XT.shape[0], args.predict_batch)]).numpy()
    return t_import, t_first, lambda: steps(X.shape[0]), predict


def run_keras(args, data):
    import os
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return run_keras_api("keras", args, data)


RUNNERS = {"fastnn": run_fastnn, "torch": run_torch, "keras": run_keras}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("framework", choices=sorted(RUNNERS))
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3, help="timed epochs after the warm-up")
    p.add_argument("--n-train", type=int, default=60000)
    p.add_argument("--predict-batch", type=int, default=1024)
    p.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    args = p.parse_args()
    data = mlp_data.load(args.n_train)
    if args.model == "cnn":
        data = (data[0].reshape(-1, 28, 28, 1), data[1], data[2].reshape(-1, 28, 28, 1), *data[3:])
    t_import, t_first, epoch, predict = RUNNERS[args.framework](args, data)
    times, cpu_times = [], []
    for _ in range(args.epochs):
        t, c = time.perf_counter(), time.process_time()
        epoch()
        times.append(time.perf_counter() - t)
        cpu_times.append(time.process_time() - c)
    t, c = time.perf_counter(), time.process_time()
    predict()
    t_first_predict = time.perf_counter() - t
    CPU["first_predict_s"] = time.process_time() - c
    predict_times = []
    for _ in range(5):      # one call is at the mercy of the machine's noise; report the median of five
        t = time.perf_counter()
        proba = predict()
        predict_times.append(time.perf_counter() - t)
    t_predict = sorted(predict_times)[2]
    acc = float((proba.argmax(1) == data[3]).mean())
    print(json.dumps({"framework": args.framework, "batch": args.batch, "epochs": times, "import_s": t_import,
                      "first_step_s": t_first, "first_predict_s": t_first_predict, "predict_s": t_predict, "test_accuracy": acc,
                      "peak_rss_mb": mlp_data.peak_rss_mb(), "data": data[4], "n_train": args.n_train,
                      "model": args.model, "cpu_epochs": cpu_times, "cpu": CPU}))


if __name__ == "__main__":
    main()
