"""Keras's ``model.summary()`` table (the Keras 2 layout users know)."""


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
