"""The text chapter: two stacked LSTMs classify IMDB movie reviews as positive or negative.

Loads Keras's IMDB file with ``keras.datasets.imdb.load_data(num_words=500)`` (from ``--data``, else
``$FASTNN_DATA_DIR/imdb.npz``, ``~/.keras/datasets/imdb.npz``, fastnn's cache, or a download). Where
IMDB cannot be had, a generated stand-in of the same shape takes its place and the output says so:
reviews of 20 to 400 word ids below 500, where positive reviews use some ids more often than negative
ones. Then the chapter's code, unchanged apart from the import:

    PYTHONPATH=. python examples/imdb_lstm.py --epochs 10
"""
import argparse
import os
import tempfile

import numpy as np

import fastnn as keras

NUM_WORDS, MAXLEN = 500, 100


def stand_in(n_train=25000, n_test=25000, seed=42):
    """IMDB-shaped reviews: lists of ids in [1, 500) starting with 1, labels 0/1 (half each).
    Ids 10-19 are 'positive' words and 20-29 'negative' ones, each used in about 1 word of 20 by
    reviews of their side (and rarely by the other side); every other word is uniform."""
    rng = np.random.default_rng(seed)

    def reviews(n):
        labels = rng.integers(0, 2, n)
        out = []
        for label in labels:
            words = rng.integers(30, NUM_WORDS, int(rng.integers(20, 401)))
            marked = rng.random(len(words)) < 0.05
            own = 10 if label == 1 else 20
            words[marked] = rng.integers(own, own + 10, int(marked.sum()))
            out.append([1] + words.tolist())
        return np.array(out, dtype=object), labels
    return reviews(n_train), reviews(n_test)


def load(path):
    try:
        return keras.datasets.imdb.load_data(path=path, num_words=NUM_WORDS), "IMDB"
    except FileNotFoundError as e:
        print(f"NOTE: IMDB not available ({str(e).splitlines()[0]})\n"
              "NOTE: using a generated stand-in of IMDB's shape instead (word ids below 500, labels 0/1).")
        return stand_in(), "generated stand-in for IMDB"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="Keras's imdb.npz")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--limit", type=int, help="use the first N training and test reviews")
    p.add_argument("--learning-rate", type=float, default=1e-4)
    args = p.parse_args(argv)

    ((train_input, train_target), (test_input, test_target)), title = load(args.data)
    if args.limit:
        train_input, train_target = train_input[:args.limit], train_target[:args.limit]
        test_input, test_target = test_input[:args.limit], test_target[:args.limit]
    # the chapter holds out a fifth of the training reviews for validation
    split = len(train_input) * 4 // 5
    train_seq = keras.utils.pad_sequences(train_input[:split], maxlen=MAXLEN)
    val_seq = keras.utils.pad_sequences(train_input[split:], maxlen=MAXLEN)
    test_seq = keras.utils.pad_sequences(test_input, maxlen=MAXLEN)
    train_y, val_y = train_target[:split], train_target[split:]
    print(f"{title}: {len(train_seq)} training, {len(val_seq)} validation and {len(test_seq)} test reviews, "
          f"padded to {MAXLEN} words")

    keras.utils.set_random_seed(42)
    model = keras.Sequential()
    model.add(keras.layers.Embedding(NUM_WORDS, 16, input_shape=(MAXLEN,)))
    model.add(keras.layers.LSTM(8, dropout=0.3, return_sequences=True))
    model.add(keras.layers.LSTM(8, dropout=0.3))
    model.add(keras.layers.Dense(1, activation="sigmoid"))
    model.summary()
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=args.learning_rate),
                  loss="binary_crossentropy", metrics=["accuracy"])
    with tempfile.TemporaryDirectory() as tmp:
        best = os.path.join(tmp, "best-2rnn-model.keras")
        checkpoint_cb = keras.callbacks.ModelCheckpoint(best, save_best_only=True)
        early_stopping_cb = keras.callbacks.EarlyStopping(patience=3, restore_best_weights=True)
        history = model.fit(train_seq, train_y, epochs=args.epochs, batch_size=64,
                            validation_data=(val_seq, val_y), callbacks=[checkpoint_cb, early_stopping_cb],
                            verbose=2)
        model = keras.models.load_model(best)
    loss, accuracy = model.evaluate(test_seq, test_target, verbose=0)
    print(f"epochs run: {len(history.history['loss'])}")
    print(f"test accuracy: {accuracy:.4f} on {len(test_seq)} reviews (test loss {loss:.4f})")


if __name__ == "__main__":
    main()
