"""Keras's ``model.summary()`` tables: a Sequential's in the Keras 2 layout
users know (``summary_text``), a functional or subclassed model's in Keras
3's box layout with its "Connected to" column (``keras3_summary_text``)."""
import numpy as np


def summary_text(model, line_length=65):
    """The table as a string; columns start at 45% and 85% of ``line_length``, as in Keras 2."""
    c1, c2 = int(line_length * 0.45), int(line_length * 0.85)

    positions = (c1, c2, line_length)

    def row(*fields):
        """Keras 2's ``print_row``: a field too long for its column wraps onto
        further lines (after "),"-like breaks where there are some), so the
        columns stay aligned."""
        left, lines = list(fields), []
        while any(left):
            line = ""
            for col, text in enumerate(left):
                last = col == len(positions) - 1
                width = positions[col] - (positions[col - 1] if col else 0) - (0 if last else 3)
                piece = text[:width]
                breaks = [piece.find(b) + len(b) for b in ("),", "},", "],", "',") if piece.find(b) >= 0]
                if breaks:
                    piece = piece[:min(breaks)]
                line += (" " if col == 0 else "") + piece + ("" if last else "  ")
                left[col] = text[len(piece):]
                line = line.ljust(positions[col])
            lines.append(line.rstrip())
        return "\n".join(lines)

    lines = [f'Model: "{model.name}"', "_" * line_length,
             row("Layer (type)", "Output Shape", "Param #"), "=" * line_length]
    for layer in model.layers:
        shape = "?" if layer.output_shape is None else str((None, *layer.output_shape))
        lines.append(row(f"{layer.name} ({type(layer).__name__})", shape, str(layer.count_params())))
    lines.append("=" * line_length)
    total = model.count_params()
    trainable = sum(w.size for w in model.trainable_weights)
    lines += [f"Total params: {total:,}", f"Trainable params: {trainable:,}",
              f"Non-trainable params: {total - trainable:,}", "_" * line_length]
    return "\n".join(lines)


# -- Keras 3's table, for graph and subclassed models -----------------------------------------
# Keras 3 draws these with the `rich` library; the functions below reproduce rich's layout for
# Keras's table (fixed column widths shrunk evenly to fit, word wrap, '…' for a word too long).
_BOX_TOP, _BOX_HEAD, _BOX_HEAD_RULE = ("┏", "━", "┳", "┓"), "┃", ("┡", "━", "╇", "┩")
_BOX_ROW_RULE, _BOX_BODY, _BOX_BOTTOM = ("├", "─", "┼", "┤"), "│", ("└", "─", "┴", "┘")


def keras3_summary_text(model, line_length=None):
    """Keras 3's ``summary()`` of a functional or subclassed model, as its
    ``print_fn`` receives it (one string ending in a newline).

    A graph that is not a chain gets the fourth column, "Connected to"
    (``<layer>[<node>][<tensor>]`` for each input of each of the layer's
    calls in the model), and lines of 108 characters; a chain (and a
    subclassed model) three columns in 88. Either is capped at the
    terminal's width less 4 (80 when output is not a terminal)."""
    import shutil
    rows, connected = _summary_rows(model)
    if connected:
        default, positions = 108, [0.3, 0.56, 0.74, 1.0]
        header, right = ["Layer (type)", "Output Shape", "Param #", "Connected to"], [False, False, True, False]
    else:
        default, positions = 88, [0.45, 0.80, 1.0]
        header, right = ["Layer (type)", "Output Shape", "Param #"], [False, False, True]
        rows = [r[:3] for r in rows]
    line_length = line_length or min(default, shutil.get_terminal_size().columns - 4)
    widths, current = [], 0
    for pos in positions:
        widths.append(int(pos * line_length) - current)
        current += widths[-1]
    widths = _fit_widths([w + 2 for w in widths], line_length - (len(widths) + 1))
    lines = [f'Model: "{model.name}"', _rule(_BOX_TOP, widths)]
    lines += _table_row(header, widths, right, _BOX_HEAD)
    lines.append(_rule(_BOX_HEAD_RULE, widths))
    for i, row in enumerate(rows):
        if i:
            lines.append(_rule(_BOX_ROW_RULE, widths))
        lines += _table_row(row, widths, right, _BOX_BODY)
    lines.append(_rule(_BOX_BOTTOM, widths))
    for label, (count, size) in _param_counts(model):
        lines.append(f" {label}: {count:,} ({_memory(size)})")
    return "\n".join(lines) + "\n"


def _summary_rows(model):
    """([name (class), output shape, params, connected to] per layer, whether the graph needs "Connected to")."""
    from ..models.functional import Functional, node_depths
    from ..saving.h5_weights import keras_variables
    if not isinstance(model, Functional):
        layers, nodes, chain = model.layers, [], True
    else:
        layers = model.layers
        depth = node_depths(model._in, model._out)
        nodes = set(depth)
        by_depth = {}
        for d, node in depth.values():
            by_depth.setdefault(d, []).append(node)
        chain = all(len(v) == 1 and len(v[0].input_tensors) <= 1 for v in by_depth.values()) and \
            all(sum(id(n) in nodes for n in layer._inbound_nodes) <= 1 for layer in layers)
    rows = []
    for layer in layers:
        if layer._inbound_nodes:
            outs = layer._inbound_nodes[-1].outputs    # several: Keras prints the list of shapes
            shape = str(tuple(outs[0].shape)) if len(outs) == 1 else f"[{', '.join(str(tuple(o.shape)) for o in outs)}]"
        else:
            shape = "?" if layer.output_shape is None else str((None, *layer.output_shape))
        params = f"{sum(v.size for v, _ in keras_variables(layer)):,}" if layer.built else "0 (unbuilt)"
        links = [f"{t._keras_history[0].name}[{t._keras_history[1]}][{t._keras_history[2]}]"
                 for n in layer._inbound_nodes if id(n) in nodes for t in n.input_tensors]
        rows.append([f"{layer.name} ({type(layer).__name__})", shape, params, ", ".join(links) or "-"])
    return rows, not chain


def _param_counts(model):
    """[(label, (count, bytes))] of Keras's footer: Normalization's count is an int64."""
    from ..saving.h5_weights import _built_slots, keras_variables
    from ..saving.optimizer_layout import has_learning_rate_variable
    trainable, frozen = [0, 0], [0, 0]
    for layer in model._weight_layers() if model.built else []:
        train_ids = {id(v) for v in layer.trainable_weights}
        for var, dtype in keras_variables(layer):
            part = trainable if id(var) in train_ids else frozen
            part[0] += var.size
            part[1] += var.size * np.dtype(dtype).itemsize
    counts = [("Trainable params", tuple(trainable)), ("Non-trainable params", tuple(frozen))]
    if model.compiled and model.optimizer is not None and model.built and _built_slots(model) is not None:
        opt = model.optimizer
        slots = len(opt.slot_names) * trainable[0] if opt.slot_names else 0
        lr = 1 if has_learning_rate_variable(opt) else 0
        counts.append(("Optimizer params", (1 + lr + slots, 8 + 4 * lr + 4 * slots)))   # iterations is an int64
    total = (sum(c for _, (c, _) in counts), sum(b for _, (_, b) in counts))
    return [("Total params", total)] + counts


def _memory(size):
    """Keras's readable_memory_size: '4.82 KB'."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size / 1024 < 1:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} PB"


def _fit_widths(widths, room):
    """rich's last resort for fixed columns wider than the table: take the excess off evenly
    (``ratio_reduce`` with equal ratios; Python's round, as rich)."""
    excess = sum(widths) - room
    if excess <= 0:
        return widths
    out, left, parts = [], excess, len(widths)
    for w in widths:
        cut = min(w, round(left / parts))
        out.append(w - cut)
        left -= cut
        parts -= 1
    return out


def _wrap(text, width):
    """rich's wrap of one cell: words (with their trailing spaces) fill a line; a word
    that does not fit starts the next; a line still too long ends in '…'."""
    import re
    lines, line = [], ""
    for word in re.findall(r"\s*\S+\s*", text):
        if line and len(line) + len(word.rstrip()) > width:
            lines.append(line)
            line = word
        else:
            line += word
    lines.append(line)
    out = []
    for line in lines:
        line = line.rstrip()
        out.append(line if len(line) <= width else line[:width - 1] + "…")
    return out


def _table_row(cells, widths, right, edge):
    wrapped = [_wrap(c, w - 2) for c, w in zip(cells, widths)]
    height = max(len(w) for w in wrapped)
    lines = []
    for k in range(height):
        parts = []
        for lines_of_cell, w, r in zip(wrapped, widths, right):
            text = lines_of_cell[k] if k < len(lines_of_cell) else ""
            parts.append(" " + (text.rjust(w - 2) if r else text.ljust(w - 2)) + " ")
        lines.append(edge + edge.join(parts) + edge)
    return lines


def _rule(box, widths):
    left, fill, cross, end = box
    return left + cross.join(fill * w for w in widths) + end
