"""How the device runs the op kinds of ``kernels.kinds`` that the engine does not run itself
(it runs Dense, the elementwise kinds, Dropout and BatchNormalization): per kind code, a
*planner* that turns one op of the table into kernel launches.

A device module (``conv``, ``depthwise``, ``pooling``, ``reshaping``, ``spatial_dropout``,
``embedding``, ``recurrent``) registers for a kind:

- ``forward(session, i, b, training)`` and ``backward(session, i, b, training)``: lists of
  ``(configured kernel, args)`` that do what the CPU kind's forward and backward do for op ``i``
  of ``session.prog`` on a batch of ``b`` rows (backward: the weight gradients unless FROZEN, the
  input gradient with NEED_DX);
- ``scratch(rec, ints)``: device floats per sample the op needs beyond the workspace (im2col
  columns), at ``session.scratch[session.scratch_at[i]:]``;
- ``random``: whether it draws random numbers (from ``session.states``), or a function
  ``(rec, consts)`` saying whether op ``rec`` does (the recurrent layers, with a dropout rate).

The engine runs chains of ops (``Program.chain``), each reading the one before it and, for the
recurrent layers, a sequence mask (the token ids an Embedding read, which get no gradient): no op
there adds into its input's gradient (ACC) or into a shared layer's weights (W_ACC), so the planners
never do; ``plan`` checks.
"""
from ..program import ACC, FLAGS, KIND, W_ACC


class Planner:
    def __init__(self, forward, backward, scratch, random):
        self.forward, self.backward, self.scratch = forward, backward, scratch
        self.draws = random if callable(random) else (lambda rec, consts: random)


_PLANNERS = {}


def register(code, forward, backward, scratch=None, random=False):
    """Registers the device planner of kind ``code``."""
    _PLANNERS[code] = Planner(forward, backward, scratch or (lambda rec, ints: 0), random)


def get(code):
    """The planner of kind ``code``, or None when the engine runs the kind itself."""
    return _PLANNERS.get(int(code))


def plan(session, i, b, training, backward):
    """The launches of op ``i``'s forward or backward pass (its kind has a planner)."""
    rec = session.prog[i]
    # ACC bits above the first are mask inputs, which get no gradient
    if int(rec[ACC]) & 1 or int(rec[FLAGS]) & W_ACC:
        raise NotImplementedError("the CUDA engine runs chains of layers: an op whose input feeds several ops, or "
                                  "a layer called twice, is not supported on the device")
    planner = _PLANNERS[int(rec[KIND])]
    return (planner.backward if backward else planner.forward)(session, i, b, training)


# imported for their planners, which they register
from . import conv, depthwise, embedding, pooling, recurrent, reshaping, spatial_dropout  # noqa: E402,F401
