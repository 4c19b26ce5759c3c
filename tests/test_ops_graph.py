"""keras.ops on symbolic tensors: each op is a compiled graph op.

Every case is one function written with keras.ops, run two ways: eagerly on
NumPy arrays (whose values test_ops_eager checks against Keras 3's) and as a
functional model's compiled program; the model's outputs must equal the
eager values, and its back-propagated gradients (through Dense layers in
front of the op, so every input of the op receives a gradient) must match
central finite differences (broadcasting, axes, keepdims).
"""
import math

import numpy as np
import pytest

import fastnn as keras
from fastnn import ops

from _util import assert_gradient_matches


def _pos(x):
    return ops.square(x) + 0.5          # keeps sqrt/log/power/divide away from their poles


CASES = {
    # name: (per-sample input shapes, function of the tensors)
    "add_broadcast": ([(2, 3), (1, 3)], lambda a, b: a + b),
    "subtract_rows": ([(2, 3), (2, 1)], lambda a, b: ops.subtract(a, b)),
    "multiply_scalar_const": ([(4,)], lambda a: a * 3.0 - 1.0),
    "rsub_rdiv": ([(4,)], lambda a: 1.0 - 2.0 / _pos(a)),
    "multiply_same": ([(4,)], lambda a: a * a),
    "divide": ([(2, 3), (1, 3)], lambda a, b: ops.divide(a, _pos(b))),
    "power_tensor": ([(3,), (3,)], lambda a, b: ops.power(_pos(a), b)),
    "power_scalar": ([(3,)], lambda a: _pos(a) ** 1.5),
    "maximum_minimum": ([(2, 3), (2, 1)], lambda a, b: ops.maximum(a, b) + ops.minimum(a, 0.1)),
    "where": ([(2, 3), (1, 3)], lambda a, b: ops.where(a > b, a * 2.0, b)),
    "where_const": ([(5,)], lambda a: ops.where(ops.less(a, 0.0), 0.0, a)),
    "compare_cast": ([(4,)], lambda a: ops.cast(ops.greater_equal(a, 0.0), "float32") + a),
    "negative_abs_sign": ([(4,)], lambda a: -a + ops.abs(a) * 0.5 + ops.sign(a)),
    "square_sqrt": ([(4,)], lambda a: ops.square(a) + ops.sqrt(_pos(a))),
    "exp_log": ([(4,)], lambda a: ops.exp(a * 0.5) + ops.log(_pos(a))),
    "log1p_expm1": ([(4,)], lambda a: ops.log1p(_pos(a)) + ops.expm1(a * 0.5)),
    "clip": ([(6,)], lambda a: ops.clip(a, -1.2, 1.2)),
    "relu_relu6": ([(6,)], lambda a: ops.relu(a) + ops.relu6(a * 5.0)),
    "sigmoid_tanh": ([(6,)], lambda a: ops.sigmoid(a) + ops.tanh(a)),
    "elu_selu": ([(6,)], lambda a: ops.elu(a, alpha=0.5) + ops.selu(a)),
    "gelu": ([(6,)], lambda a: ops.gelu(a) + ops.gelu(a, approximate=False)),
    "softplus_silu": ([(6,)], lambda a: ops.softplus(a) + ops.silu(a)),
    "leaky_hard_softsign": ([(6,)], lambda a: ops.leaky_relu(a, negative_slope=0.3) + ops.hard_sigmoid(a * 4.0)
                            + ops.softsign(a)),
    "softmax_last": ([(2, 4)], lambda a: ops.softmax(a * 2.0)),
    "softmax_axis1": ([(3, 2, 2)], lambda a: ops.softmax(a, axis=1)),
    "log_softmax": ([(2, 4)], lambda a: ops.log_softmax(a, axis=-1)),
    "sum_axis": ([(2, 3)], lambda a: ops.sum(a, axis=-1)),
    "sum_keepdims": ([(2, 3)], lambda a: ops.sum(a, axis=1, keepdims=True) * a),
    "sum_two_axes": ([(2, 2, 3)], lambda a: ops.sum(a, axis=(1, 3))),
    "mean": ([(2, 3)], lambda a: ops.mean(a, axis=1)),
    "mean_keepdims": ([(3, 2)], lambda a: a - ops.mean(a, axis=-1, keepdims=True)),
    "max_min": ([(2, 3)], lambda a: ops.max(a, axis=-1, keepdims=True) + ops.min(a, axis=1, keepdims=True)),
    "logsumexp": ([(2, 3)], lambda a: ops.logsumexp(a, axis=-1, keepdims=True)),
    "argmax_argmin": ([(2, 3)], lambda a: ops.cast(ops.argmax(a, axis=-1), "float32")
                      + ops.cast(ops.argmin(a, axis=-1), "float32") + ops.sum(a, axis=-1)),
    "matmul_slots": ([(2, 3), (3, 4)], lambda a, b: ops.matmul(a, b)),
    "dot_constant": ([(2, 3)], lambda a: ops.dot(a, np.array([0.5, -1.0, 2.0], dtype=np.float32))),
    "matmul_operator": ([(2, 3), (3, 1)], lambda a, b: a @ b),
    "matmul_constant": ([(2, 3)], lambda a: ops.matmul(a, np.arange(12, dtype=np.float32).reshape(3, 4) / 10)),
    "reshape_transpose": ([(6,)], lambda a: ops.transpose(ops.reshape(a, (-1, 2, 3)), (0, 2, 1)) * 1.0),
    "expand_squeeze": ([(3,)], lambda a: ops.squeeze(ops.expand_dims(a, 1) * 2.0, axis=1)),
    "getitem": ([(3, 4)], lambda a: a[:, 1:, ::2] + a[:, 0, None, 1:3]),
    "getitem_ellipsis": ([(2, 3)], lambda a: a[..., -1]),
    "concatenate": ([(2, 3), (2, 1)], lambda a, b: ops.concatenate([a, b], axis=-1)),
    "stack": ([(3,), (3,)], lambda a, b: ops.stack([a, b], axis=1)),
    "ones_zeros_like": ([(3,)], lambda a: a * ops.ones_like(a) + ops.zeros_like(a)),
    "constant_array": ([(2, 3)], lambda a: a * np.array([1.0, -2.0, 0.5], dtype=np.float32)),
}


def _data(shapes, seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((5, *s)).astype(np.float32) for s in shapes]


def _flat(t):
    return ops.reshape(t, (-1, math.prod(t.shape[1:])))


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_forward_equals_eager(name):
    shapes, fn = CASES[name]
    inputs = [keras.Input(shape=s) for s in shapes]
    model = keras.Model(inputs, _flat(fn(*inputs)))
    arrays = _data(shapes, 0)
    expected = np.asarray(fn(*arrays), dtype=np.float32).reshape(5, -1)
    got = model.predict(arrays if len(arrays) > 1 else arrays[0], verbose=0)
    np.testing.assert_allclose(got, expected, rtol=2e-6, atol=2e-6)


# Where the ops' inputs sit in the gradient checks: Dense k's biases are pattern k (the two
# patterns 0.2 apart), its kernel tiny, so every input of an op stays 0.15 or more from the
# kinks of the cases (relu at 0, relu6(5a) at 1.2, hard_sigmoid(4a) at +-0.75, clip at +-1.2,
# ties of max/min/argmax, where's conditions): a finite difference never steps across one.
_PATTERN = np.array([0.55, -0.95, 1.45, -1.75, 2.1, -0.55, 0.95, -1.45, 1.75, -2.1])
_KERNEL_SCALE = 0.02


def _place_away_from_kinks(model):
    dense = [l for l in model.layers if isinstance(l, keras.layers.Dense)]
    for k, layer in enumerate(dense):
        kernel, bias = layer.get_weights()
        pattern = _PATTERN[(np.arange(bias.size) * 7) % _PATTERN.size] + 0.2 * k
        layer.set_weights([kernel * _KERNEL_SCALE, pattern.astype(np.float32)])


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_gradient_matches_finite_differences(name):
    shapes, fn = CASES[name]
    keras.utils.set_random_seed(1)
    inp = keras.Input(shape=(3,))
    tensors = [ops.reshape(keras.layers.Dense(math.prod(s))(inp), (-1, *s)) for s in shapes]
    out = _flat(fn(*tensors))
    model = keras.Model(inp, out)
    _place_away_from_kinks(model)
    model.compile(loss="mse", optimizer="sgd")
    x = _data([(3,)], 2)[0]
    y = _data([out.shape[1:]], 3)[0]
    assert_gradient_matches(model, x, y)


def test_unsupported_symbolic_uses_name_the_op():
    x = keras.Input(shape=(3,))
    with pytest.raises(ValueError, match="keras.ops.sum .*batch axis"):
        ops.sum(x, axis=0)
    with pytest.raises(ValueError, match="keras.ops.reshape"):
        ops.reshape(x, (3, -1))
    with pytest.raises(TypeError, match="keras.ops.getitem.*batch axis"):
        x[0]
    with pytest.raises(ValueError, match="keras.ops.add.*broadcast"):
        ops.add(x, keras.Input(shape=(4,)))
    with pytest.raises(ValueError, match="keras.ops.add.*batch axis"):     # (None, 2, 3) + (None, 3)
        ops.add(keras.Input(shape=(2, 3)), x)
    with pytest.raises(ValueError, match="keras.ops.matmul"):
        ops.matmul(x, keras.Input(shape=(3,)))
    with pytest.raises(ValueError, match="keras.ops.tile has no compiled form"):
        ops.tile(x, (1, 2))
    with pytest.raises(ValueError, match="keras.ops.add.*batch axis"):
        x + np.ones((2, 3), dtype=np.float32)
    w = keras.layers.Dense(2).add_weight(shape=(3, 2))
    with pytest.raises(ValueError, match="outside a layer's call"):
        ops.matmul(x, w)


def test_seed_mlp_compiles_none_of_the_op_kinds():
    """The op kinds, traced losses and constraints register at import but compile only when a model
    uses them: a fresh process with an empty cache fits and predicts an MLP without compiling any."""
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    probe = """
import numpy as np
import fastnn as keras
from fastnn.kernels.cpu import constraints
from fastnn.kernels.kinds import tensor_ops as T
x = np.random.default_rng(0).random((40, 6), dtype=np.float32)
model = keras.Sequential([keras.Input(shape=(6,)), keras.layers.Dense(5, activation="relu"),
                          keras.layers.Dense(3, activation="softmax")])
model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
model.fit(x, np.arange(40) % 3, epochs=1, batch_size=8, verbose=0)
model.predict(x, verbose=0)
fns = [T.param_forward, T.param_backward, T.unary_forward, T.unary_backward, T.broadcast_forward,
       T.broadcast_backward, T.reduce_forward, T.reduce_backward, T.softmax_forward, T.softmax_backward,
       T.matmul_forward, T.matmul_backward, T.strided_forward, T.strided_backward, constraints.constrain]
print(sorted(fn.py_func.__name__ for fn in fns if fn.signatures))
"""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with tempfile.TemporaryDirectory() as cache:
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                             env=dict(env, NUMBA_CACHE_DIR=cache), cwd=root)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
