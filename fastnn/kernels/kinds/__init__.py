"""Op kinds: each kind of op the compiled program runs, in one place.

A kind is registered once (``register``) with its compiled functions, all of
one signature ``OP_SIG``:

    forward(rec, ints, params, consts, grads, ws, gs, b, training)
    backward(...)    # weight gradients into ``grads``; with NEED_DX the
                     # gradient of each input into ``gs`` (added where ACC says)
    after(...)       # after a training forward pass (moving statistics)

``rec`` is the op's row of the program (``kernels.program``), ``ints`` the
program's integer lists (its inputs' slots at INS, its own integer constants
at IAUX), ``ws``/``gs`` the workspaces of ``b`` rows. Once the whole table is
written, the program builder links it (``Kind.link``): it stores the
addresses of the functions in each row (FWD, BWD, AFTER; a kind run in parts
also those of its parts, at the start of its integer constants) and the
loops call them through those (``pointers``), so one compiled loop runs every
kind and a kind compiles only when a model uses it.

The layer class says what op it wants (``layers.base.Op``) and the shapes;
the kind module holds the maths. Adding a kind touches its module here, its
layer class and its tests. Dense is the exception the engine runs itself, in
its tuned parallel blocks (``cpu/engine.py``).
"""
from numba import njit, types

from .. import program as P
from ..cpu.pointers import NO_WRAPPERS, function_pointer, pointer_from_address

_F1 = types.float32[::1]
_I1 = types.int64[::1]
OP_SIG = types.void(_I1, _I1, _F1, _F1, _F1, _F1, _F1, types.int64, types.boolean)
op_pointer = pointer_from_address(OP_SIG)

# Options of a kind's functions: only the loops call them, through pointers.
KERNEL = dict(cache=True, error_model="numpy", **NO_WRAPPERS)


class Kind:
    """A registered op kind: ``name``, ``code`` (the program's KIND), its
    compiled ``forward``/``backward``/``after`` (Numba dispatchers or None),
    ``shareable``: whether its backward honours W_ACC (a layer called twice),
    ``on_cuda``: whether the CUDA engine runs it; ``cuda_refusal(rec, ints)``: None, or what in op
    ``rec`` the CUDA engine does not run (a feature it lacks), said in a few words; ``linked``:
    (dispatcher or None, signature) pairs whose addresses (0 for None) ``link`` writes at the start
    of each op's integer constants (a kind run in parts: ``parallel.register_parallel``)."""

    def __init__(self, name, code, forward, backward, after, shareable, on_cuda, cuda_refusal=None, linked=()):
        self.name, self.code = name, code
        self.forward, self.backward, self.after = forward, backward, after
        self.shareable, self.on_cuda = shareable, on_cuda
        self.cuda_refusal = cuda_refusal or (lambda rec, ints: None)
        self.linked = tuple(linked)

    def functions(self):
        """(dispatcher, signature) of each compiled function an op of this kind calls, in the order
        ``link`` compiles them."""
        return [(fn, sig) for fn, sig in self.linked if fn is not None] + \
            [(fn, OP_SIG) for fn in (self.forward, self.backward, self.after) if fn is not None]

    def link(self, rec, ints):
        """Writes the addresses of the functions op ``rec`` calls, compiling them on first use:
        ``linked`` at rec[IAUX] of ``ints`` (the program's integer list), FWD, BWD and AFTER in ``rec``."""
        for k, (fn, sig) in enumerate(self.linked):
            ints[rec[P.IAUX] + k] = 0 if fn is None else function_pointer(fn, sig).address
        rec[P.FWD], rec[P.BWD], rec[P.AFTER] = (0 if fn is None else function_pointer(fn, OP_SIG).address
                                                for fn in (self.forward, self.backward, self.after))


_KINDS = {}


def register(name, forward=None, backward=None, after=None, code=None, shareable=False, on_cuda=False,
             cuda_refusal=None, linked=()):
    """Registers a kind; returns its code (``code`` for the kinds the CUDA engine knows by number)."""
    if code is None:
        code = max(P.FIRST_FREE_KIND - 1, *_KINDS) + 1
    if code in _KINDS:
        raise RuntimeError(f"op kind code {code} is taken by {_KINDS[code].name}")
    _KINDS[code] = Kind(name, code, forward, backward, after, shareable, on_cuda, cuda_refusal, linked)
    return code


def get(code):
    return _KINDS[code]


@njit(cache=True, inline="always")
def input_slot(rec, ints, k):
    """(position, size) per sample of the op's input ``k``."""
    i = rec[P.INS] + 2 * k
    return ints[i], ints[i + 1]


@njit(cache=True, inline="always")
def put(gs, i, value, acc):
    """Writes a gradient value, or adds it (``acc``: the slot feeds several ops)."""
    if acc:
        gs[i] += value
    else:
        gs[i] = value


register("Dense", code=P.DENSE, shareable=True, on_cuda=True)

from . import elementwise, batchnorm, merging  # noqa: E402,F401  (register their kinds)
from . import conv, pooling, reshaping, spatial_dropout  # noqa: E402,F401
from . import embedding, recurrent, global_pooling1d  # noqa: E402,F401
from . import tensor_ops  # noqa: E402,F401
