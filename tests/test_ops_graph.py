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

from fastnn.models.program import _offset
from fastnn.models.training import loss_and_gradients

from _util import STEP, assert_gradient_matches, finite_difference_gradient


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
    "prod": ([(2, 3)], lambda a: ops.prod(a, axis=-1) + ops.prod(a, axis=1, keepdims=True)[:, :, 0]),
    "prod_with_zero": ([(4,)], lambda a: ops.prod(ops.relu(a + 1.2), axis=-1, keepdims=True) + a),
    "var_std": ([(3, 4)], lambda a: ops.var(a, axis=-1, keepdims=True) + ops.std(a, axis=1, keepdims=True)),
    "var_two_axes": ([(2, 2, 3)], lambda a: ops.var(a, axis=(-1, 1))),
    "any_all": ([(2, 3)], lambda a: ops.cast(ops.any(a > 0.0, axis=-1), "float32")
                + ops.cast(ops.all(a > -3.0, axis=2), "float32") + ops.sum(a, axis=-1)),
    "cumsum": ([(2, 3)], lambda a: ops.cumsum(a, axis=-1) + ops.cumsum(a, axis=1)),
    "cumsum_middle": ([(2, 3, 2)], lambda a: ops.cumsum(a, axis=2)),
    "tile": ([(2, 3)], lambda a: ops.tile(a, (1, 2, 1)) + ops.tile(a[:, :1, :], 2)[:, :, :3]),
    "repeat": ([(2, 3)], lambda a: ops.repeat(a, 2, axis=-1)),
    "repeat_counts": ([(2, 3)], lambda a: ops.repeat(a, [1, 0, 2], axis=2)),
    "flip": ([(2, 3)], lambda a: ops.flip(a, axis=-1) + ops.flip(a, axis=(1, 2)) * 0.5),
    "one_hot": ([(3,)], lambda a: ops.one_hot(ops.cast(ops.clip(a * 2.0 + 2.0, 0.0, 4.0), "int32"), 4)
                + ops.expand_dims(a, -1)),
    "one_hot_axis1": ([(3,)], lambda a: ops.one_hot(ops.cast(ops.clip(a * 2.0 + 2.0, 0.0, 4.0), "int32"), 3, axis=1)
                      * ops.expand_dims(a, 1)),
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
    with pytest.raises(ValueError, match="keras.ops.sin .*no compiled form"):
        ops.sin(x)
    with pytest.raises(ValueError, match="keras.ops.tile.*batch axis"):
        ops.tile(x, (2, 1))
    for op in (ops.var, ops.std, ops.prod, ops.any, ops.all, ops.max):
        with pytest.raises(ValueError, match=f"keras.ops.{op.__name__} .*batch axis"):
            op(x)
    for op in (ops.cumsum, ops.flip):
        with pytest.raises(ValueError, match=f"keras.ops.{op.__name__} .*batch axis"):
            op(x)
    with pytest.raises(ValueError, match="keras.ops.repeat .*batch axis"):
        ops.repeat(x, 2)
    with pytest.raises(ValueError, match="keras.ops.repeat .*one per value"):
        ops.repeat(x, [1, 2], axis=-1)
    with pytest.raises(ValueError, match="keras.ops.one_hot .*num_classes"):
        ops.one_hot(x, 0)
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


@pytest.mark.parametrize("zeros", [1, 2])
def test_prod_gradient_at_exact_zeros(zeros):
    """d prod / d x_i is the product of the other values: with one zero it is non-zero at
    that zero only, with two it is zero everywhere; checked where the zeros are exact."""
    keras.utils.set_random_seed(2)
    inp = keras.Input(shape=(3,))
    dense = keras.layers.Dense(4)
    model = keras.Model(inp, ops.prod(dense(inp), axis=-1, keepdims=True))
    kernel, bias = dense.get_weights()
    kernel[:, :zeros] = 0.0            # these outputs are exactly 0 for every sample, moved only by their bias
    bias[:] = [0.0] * zeros + [0.8, -1.3, 1.7][:4 - zeros]
    dense.set_weights([kernel, bias])
    model.compile(loss="mse", optimizer="sgd")
    x, y = _data([(3,)], 4)[0], _data([(1,)], 5)[0]
    _, grad = loss_and_gradients(model, x, y)
    start = _offset(model._params, dense.weights[1])
    bias_grad = grad[start:start + 4]
    if zeros == 1:
        assert_gradient_matches(model, x, y)
        assert bias_grad[0] != 0.0 and np.all(bias_grad[1:] == 0.0)
    else:       # the product stays 0 whichever single weight moves: every difference is exactly 0
        assert np.all(grad == 0.0)
        assert np.all(finite_difference_gradient(model, x, y, STEP) == 0.0)


def test_stop_gradient_passes_values_and_no_gradient():
    keras.utils.set_random_seed(3)
    inp = keras.Input(shape=(3,))
    stopped, live = keras.layers.Dense(2), keras.layers.Dense(2)
    model = keras.Model(inp, ops.stop_gradient(stopped(inp)) * live(inp))
    model.compile(loss="mse", optimizer="sgd")
    x, y = _data([(3,)], 6)[0], _data([(2,)], 7)[0]
    (ws, bs), (wl, bl) = stopped.get_weights(), live.get_weights()
    h, z = x @ ws + bs, x @ wl + bl
    np.testing.assert_allclose(model.predict(x, verbose=0), h * z, rtol=1e-5, atol=1e-6)
    _, grad = loss_and_gradients(model, x, y)

    def grad_of(var):
        start = _offset(model._params, var)
        return grad[start:start + var.size].reshape(var.shape)

    assert all(np.all(grad_of(v) == 0.0) for v in stopped.weights)
    # the live layer's gradient: that of the same model with the stopped branch a constant
    dz = 2.0 * (h * z - y) * h / y.size
    np.testing.assert_allclose(grad_of(live.weights[0]), x.T @ dz, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grad_of(live.weights[1]), dz.sum(axis=0), rtol=1e-4, atol=1e-6)



def test_model_with_the_new_ops_trains_by_their_gradients():
    """One SGD step of fit moves the weights by -lr times the compiled gradient
    (which the cases above check against finite differences)."""
    keras.utils.set_random_seed(4)
    inp = keras.Input(shape=(4,))
    h = keras.layers.Dense(6, activation="tanh")(inp)
    grid = ops.reshape(h, (-1, 2, 3))
    mixed = ops.concatenate([ops.cumsum(grid, axis=-1), ops.flip(ops.tile(grid, (1, 1, 2)), axis=2)[:, :, :3],
                             ops.repeat(ops.var(grid, axis=-1, keepdims=True), 3, axis=2),
                             ops.prod(grid, axis=1, keepdims=True) + ops.std(grid, axis=1, keepdims=True)], axis=1)
    out = keras.layers.Dense(2)(ops.reshape(mixed, (-1, 21)))
    model = keras.Model(inp, out)
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(learning_rate=0.1))
    x, y = _data([(4,)], 8)[0], _data([(2,)], 9)[0]
    before = model._params[:model._n_trainable].copy()
    loss, grad = loss_and_gradients(model, x, y)
    model.fit(x, y, batch_size=5, epochs=1, shuffle=False, verbose=0)
    step = before - np.float32(0.1) * grad[:model._n_trainable]
    np.testing.assert_allclose(model._params[:model._n_trainable], step, rtol=1e-5, atol=1e-7)
    assert loss_and_gradients(model, x, y)[0] < loss
