"""Learning curves of a ``fit``: ``plot_history(history, path="curves.png")``.

matplotlib is an optional extra (``pip install "fastnn[plot]"``), imported only
when a plot is drawn.
"""
import math
from numbers import Real


def _curves(history):
    """``{key: [float, ...]}`` from a History or its ``.history`` dict, validated."""
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict) or not logs:
        raise ValueError("plot_history expects the History returned by fit (or its non-empty .history dict), "
                         f"got {type(history).__name__}")
    curves = {}
    for key, values in logs.items():
        if not isinstance(key, str):
            raise ValueError(f"plot_history: history keys must be strings, got {key!r}")
        values = list(values) if isinstance(values, (list, tuple)) else None
        if not values or not all(isinstance(v, Real) and not isinstance(v, bool) for v in values):
            raise ValueError(f"plot_history: history[{key!r}] must be a non-empty list of numbers")
        curves[key] = [float(v) for v in values]
    return curves


def plot_history(history, path=None):
    """Draws one panel per quantity (loss first, then each metric), each with its
    training curve and, when present, its validation curve (``val_`` keys),
    against the epoch number (1, 2, ...).

    Args:
        history: the ``History`` returned by ``model.fit`` or its ``.history`` dict
            ``{"loss": [...], "accuracy": [...], "val_loss": [...], ...}``.
        path: where to save the figure as a PNG. Default ``None``: nothing is
            saved and the figure is drawn with pyplot, so ``plt.show()`` or a
            notebook displays it.

    Returns:
        The matplotlib ``Figure``.

    Raises:
        ImportError: matplotlib is not installed.
        ValueError: ``history`` is not a history of per-epoch numbers.
    """
    curves = _curves(history)
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise ImportError('plot_history needs matplotlib: pip install "fastnn[plot]" '
                          "(or pip install matplotlib)") from None
    names = [k for k in curves if not k.startswith("val_")]
    names += [k[4:] for k in curves if k.startswith("val_") and k[4:] not in curves]
    names.sort(key=lambda k: k != "loss")        # loss first, metrics in fit's order
    cols = min(len(names), 3)
    rows = math.ceil(len(names) / cols)
    size = (4.5 * cols, 3.5 * rows)
    if path is None:
        import matplotlib.pyplot as plt
        fig = plt.figure(figsize=size)
    else:
        # A bare Figure draws without pyplot: no GUI backend, no global figure list.
        fig = Figure(figsize=size)
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        for key, label, style in ((name, "train", "o-"), ("val_" + name, "validation", "s--")):
            if key in curves:
                ax.plot(range(1, len(curves[key]) + 1), curves[key], style, label=label, markersize=3)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, format="png", dpi=100)
    return fig
