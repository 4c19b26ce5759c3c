"""Keras's ``model.summary()`` table (the Keras 2 layout users know)."""


def summary_text(model, line_length=65):
    """The table as a string; columns start at 45% and 85% of ``line_length``."""
    c1, c2 = int(line_length * 0.45), int(line_length * 0.85)

    def row(name, shape, params):
        first = (" " + name).ljust(c1 - 2) + "  "
        second = (first + shape).ljust(c2 - 2) + "  "
        return (second + params).rstrip()

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
