"""The CUDA path: device choice, every kernel against the CPU path or a written-out
formula, and whole fits that must end where the CPU's do.

The device tests need ``numba.cuda``: on a machine with a GPU they run on it;
everywhere, ``test_device_suite_on_cuda_simulator`` runs this file (and the
``test_cuda_*.py`` files beside it) again in a subprocess with
``NUMBA_ENABLE_CUDASIM=1`` (the simulator must be switched on before
``numba.cuda`` is first imported, so it cannot share this process with the
CPU tests). Shapes are tiny: the simulator runs one Python thread per GPU
thread.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnn as keras
from fastnn import config
from numba.core import config as numba_config

ROOT = Path(__file__).resolve().parents[1]

SIMULATOR = bool(numba_config.ENABLE_CUDASIM)
if SIMULATOR:
    # The simulator runs each GPU thread as a Python thread and its launcher busy-polls them: with
    # Python's default 5 ms GIL switch interval, most of a launch is threads waiting for their turn
    # (measured: a small fit ran 4.5x faster at 0.5 ms).
    sys.setswitchinterval(5e-4)
    # Numba's simulator seeds xoroshiro states with wrapping uint64 NumPy maths and
    # an object-mode jit: both warn, neither matters.
    pytestmark = [pytest.mark.filterwarnings("ignore:overflow encountered in scalar:RuntimeWarning"),
                  pytest.mark.filterwarnings("ignore:The keyword argument 'nopython=False'")]


def _run(code):
    """Runs ``code`` in a fresh Python (simulator off), from the repository root."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


# -- device choice (this process, whatever the machine) ---------------------------------------------

def test_import_fastnn_never_imports_numba_cuda():
    r = _run("import sys, fastnn\n"
             "assert 'numba.cuda' not in sys.modules, 'import fastnn imported numba.cuda'\n"
             "print(fastnn.config.get_device())")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() in ("cpu", "cuda")


def test_cpu_training_without_a_driver_never_imports_numba_cuda():
    if config.cuda_available():
        pytest.skip("CUDA (or its simulator) is usable in this process: auto picks it")
    r = _run("import sys, numpy as np, fastnn as keras\n"
             "m = keras.Sequential([keras.layers.Input(shape=[3]), keras.layers.Dense(2, activation='softmax')])\n"
             "m.compile(loss='sparse_categorical_crossentropy', optimizer='sgd')\n"
             "m.fit(np.ones((4, 3)), np.array([0, 1, 0, 1]), verbose=0)\n"
             "assert keras.config.get_device() == 'cpu'\n"
             "assert 'numba.cuda' not in sys.modules, 'CPU training imported numba.cuda'\n")
    assert r.returncode == 0, r.stderr


def test_set_device_rejects_unknown_names():
    with pytest.raises(ValueError, match="device must be one of"):
        config.set_device("gpu")
    with pytest.raises(ValueError, match="device must be one of"):
        with keras.device(3):
            pass


def test_asking_for_cuda_without_cuda_says_why():
    if config.cuda_available():
        pytest.skip("CUDA (or its simulator) is usable in this process")
    with pytest.raises(RuntimeError, match=r"set_device\('cuda'\): CUDA cannot be used here"):
        config.set_device("cuda")
    assert config.get_device() == "cpu"


def test_device_context_restores_the_previous_choice_even_on_error():
    # The choice itself ("auto" vs "cpu") is checked: both resolve to "cpu" without a GPU.
    config.set_device("cpu")
    try:
        with pytest.raises(KeyError):
            with keras.device("auto"):
                raise KeyError("inside")
        assert config._choice == "cpu"
    finally:
        config.set_device("auto")


if not SIMULATOR:
    def test_device_suite_on_cuda_simulator():
        """Runs the device tests of this file and of every ``test_cuda_*.py`` under Numba's CUDA simulator."""
        env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1",
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        files = [__file__, *sorted(str(p) for p in Path(__file__).parent.glob("test_cuda_*.py"))]
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files],
                           env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
        tail = (r.stdout + r.stderr)[-6000:]
        assert r.returncode == 0, tail
        assert " passed" in r.stdout, tail


# -- device tests ----------------------------------------------------------------------------------

# Needs numba.cuda; without it conftest.py deselects these (test_device_suite_on_cuda_simulator runs them).
device = pytest.mark.cuda_device
RNG = np.random.default_rng(7)


def _f32(*shape, lo=-2.0, hi=2.0):
    return RNG.uniform(lo, hi, shape).astype(np.float32)


def _grid(work):
    from fastnn.kernels.cuda.launch import THREADS, blocks_for
    return blocks_for(work), THREADS


@device
@pytest.mark.parametrize("tile", [None, (64, 64, 16, 16, 16)], ids=["default-tile", "gpu-tile"])
def test_gemm_matches_numpy_for_every_transpose_offset_and_epilogue(tile):
    from numba import cuda
    from fastnn.kernels.cpu.activations import ELU, RELU, SIGMOID, TANH, act_derivative, act_value
    from fastnn.kernels.cuda.blas import EPI_ACT, EPI_DACT, EPI_NONE, gemm
    m, n, k = 5, 21, 18     # not multiples of any tile
    cases = [(False, False, EPI_ACT, RELU, False), (False, True, EPI_DACT, TANH, False),
             (True, False, EPI_ACT, ELU, True), (True, True, EPI_NONE, SIGMOID, False)]
    for ta, tb, epi, act, ones_row in cases:
        # Operands are sub-blocks of wider buffers: offsets and leading dimensions matter.
        lda, ldb, ldc = (m if ta else k) + 3, (k if tb else n) + 2, n + 4
        A = _f32((k if ta else m), lda)
        B = _f32((n if tb else k), ldb)
        C = _f32(m, ldc)
        bias = _f32(n + 1)
        zs, as_ = _f32(m * ldc), _f32(m * ldc, lo=-0.9, hi=0.9)      # aux: z at 0, a at m*ldc
        d_a, d_b = cuda.to_device(np.r_[np.zeros(2, np.float32), A.ravel()]), cuda.to_device(B.ravel())
        d_c, d_bias = cuda.to_device(C.ravel()), cuda.to_device(bias)
        d_out, d_aux = cuda.to_device(np.zeros(m * ldc + 5, np.float32)), cuda.to_device(np.r_[zs, as_])
        if ones_row:        # op(A)'s last row is ones, not read from A
            opA = np.vstack([A[:, :m - 1].T if ta else A[:m - 1, :k], np.ones((1, k))])
        else:
            opA = A[:, :m].T if ta else A[:, :k]
        opA = opA.astype(np.float64)
        opB = B[:, :k].T if tb else B[:, :n]
        beta = 0.5 if epi == EPI_NONE else 0.0
        use_bias = epi == EPI_ACT
        gemm(ta, tb, m, n, k, 1.5, beta, d_a, 2, lda, d_b, 0, ldb, d_c, 0, ldc, ones_row=ones_row,
             bias=d_bias, bias_off=1 if use_bias else -1, epi=epi, act=act, out=d_out, out_off=5,
             aux=d_aux, aux_z=0, aux_a=m * ldc, tile=tile)
        want = 1.5 * (opA @ opB) + beta * C[:, :n]
        if use_bias:
            want += bias[1:]
        got = d_c.copy_to_host().reshape(m, ldc)
        label = f"trans {ta} {tb} epilogue {epi} ones_row {ones_row}"
        np.testing.assert_allclose(got[:, :n], want, rtol=1e-5, atol=1e-5, err_msg=label)
        np.testing.assert_array_equal(got[:, n:], C[:, n:])          # padding columns untouched
        out = d_out.copy_to_host()[5:].reshape(m, ldc)[:, :n]
        z, a = zs.reshape(m, ldc)[:, :n], as_.reshape(m, ldc)[:, :n]
        if epi == EPI_ACT:
            want_out = [[act_value(act, v) for v in row] for row in got[:, :n]]
        elif epi == EPI_DACT:
            want_out = got[:, :n] * np.vectorize(lambda zz, aa: act_derivative(act, zz, aa))(z, a)
        else:
            want_out = np.zeros((m, n))
        np.testing.assert_allclose(out, want_out, rtol=1e-5, atol=1e-7, err_msg=label)


@device
def test_gemm_reads_rows_of_a_through_an_index():
    # The first layer's products read the batch in place: x @ W with x = X[ids[pos:pos+b]], and
    # [dW; db] = [x^T; 1] @ dZ, with 19 rows (more than one simulator tile).
    from numba import cuda
    from fastnn.kernels.cuda.blas import gemm
    N, f, n, b, pos = 30, 5, 6, 19, 4
    X, W, dZ = _f32(N, f), _f32(f, n), _f32(b, n)
    ids = RNG.permutation(N).astype(np.int64)
    x = X[ids[pos:pos + b]].astype(np.float64)
    d_X, d_ids = cuda.to_device(X.ravel()), cuda.to_device(ids)
    d_c = cuda.to_device(np.zeros(b * n, np.float32))
    gemm(False, False, b, n, f, 1.0, 0.0, d_X, 0, f, cuda.to_device(W.ravel()), 0, n, d_c, 0, n, a_rows=d_ids,
         a_rows_off=pos)
    np.testing.assert_allclose(d_c.copy_to_host().reshape(b, n), x @ W, rtol=1e-5, atol=1e-5)
    d_c = cuda.to_device(np.zeros((f + 1) * n, np.float32))
    gemm(True, False, f + 1, n, b, 1.0, 0.0, d_X, 0, f, cuda.to_device(dZ.ravel()), 0, n, d_c, 0, n, ones_row=True,
         a_rows=d_ids, a_rows_off=pos)
    np.testing.assert_allclose(d_c.copy_to_host().reshape(f + 1, n), np.vstack([x.T @ dZ, dZ.sum(0)]),
                               rtol=1e-5, atol=1e-5)


@device
def test_activation_forward_and_backward_kernels_match_the_cpu_functions():
    from numba import cuda
    from fastnn.kernels.cpu.activations import SOFTMAX, act_derivative, act_value
    from fastnn.kernels.cuda import elementwise as ew
    from fastnn.kernels.program import ACTIVATION, DENSE
    rows, n = 3, 5
    x = _f32(rows * n, lo=-3, hi=3)
    empty = cuda.to_device(np.zeros(1, np.float32))
    for code in range(12):
        if code == SOFTMAX:
            continue
        ws = cuda.to_device(np.r_[x, np.zeros(rows * n, np.float32)])
        ew.op_forward[_grid(rows * n)](ACTIVATION, code, n, rows, 0, rows * n, ws, empty, -1, -1, empty, 0)
        a = ws.copy_to_host()[rows * n:]
        np.testing.assert_allclose(a, [act_value(code, v) for v in x], rtol=2e-6, atol=1e-7, err_msg=str(code))
        # backward: gs[z] = gs[a] * act'(z, a), with z at 0 and a at rows*n
        ga = _f32(rows * n)
        gs = cuda.to_device(np.r_[np.zeros(rows * n, np.float32), ga])
        ew.op_backward[_grid(rows * n)](DENSE, code, n, rows, 0, 0, rows * n, ws, gs, empty, -1, empty, 0)
        want = ga * np.array([act_derivative(code, z, av) for z, av in zip(x, a)], np.float32)
        np.testing.assert_allclose(gs.copy_to_host()[:rows * n], want, rtol=2e-6, atol=1e-7, err_msg=str(code))


@device
def test_normalize_rescale_and_dropout_ops_follow_their_formulas():
    from numba import cuda
    from fastnn.kernels.cuda import elementwise as ew
    from fastnn.kernels.program import DROPOUT, NORMALIZE, RESCALE
    rows, n = 4, 3
    x = _f32(rows * n)
    mean, var = _f32(n), np.array([4.0, 0.0, 0.25], np.float32)     # var 0 hits the 1e-7 floor
    params = cuda.to_device(np.r_[np.zeros(2, np.float32), mean, var])
    consts = cuda.to_device(np.array([9.0, 0.5, -1.0], np.float32))
    ws = cuda.to_device(np.r_[x, np.zeros(rows * n, np.float32)])
    ew.op_forward[_grid(rows * n)](NORMALIZE, 0, n, rows, 0, rows * n, ws, params, 2, 2 + n, consts, 0)
    denom = np.maximum(np.sqrt(var), np.float32(1e-7))
    np.testing.assert_allclose(ws.copy_to_host()[rows * n:], ((x.reshape(rows, n) - mean) / denom).ravel(), rtol=1e-6)
    ew.op_forward[_grid(rows * n)](RESCALE, 0, n, rows, 0, rows * n, ws, params, -1, -1, consts, 1)
    np.testing.assert_allclose(ws.copy_to_host()[rows * n:], x * np.float32(0.5) - 1, rtol=1e-6)
    # input gradients
    ga = _f32(rows * n)
    mask = np.where(RNG.random(rows * n) < 0.5, 0, 2).astype(np.float32)
    ws = cuda.to_device(np.r_[x, mask])
    for kind, aux, want in [(NORMALIZE, 0, (ga.reshape(rows, n) / denom).ravel()), (RESCALE, 1, ga * np.float32(0.5)),
                            (DROPOUT, 0, ga * mask)]:
        gs = cuda.to_device(np.r_[np.zeros(rows * n, np.float32), ga])
        # x at 0, z (the dropout mask) at rows*n in ws, a at rows*n in gs
        ew.op_backward[_grid(rows * n)](kind, 0, n, rows, 0, rows * n, rows * n, ws, gs, params, 2 + n, consts, aux)
        np.testing.assert_allclose(gs.copy_to_host()[:rows * n], want, rtol=1e-6, err_msg=str(kind))


@device
def test_dropout_keeps_values_scaled_by_one_over_keep_probability():
    from numba import cuda
    from fastnn.kernels.cuda import elementwise as ew
    from fastnn.kernels.cuda.engine import _DROPOUT_STATES
    from numba.cuda.random import create_xoroshiro128p_states
    import warnings
    count, rate = 2048, np.float32(0.25)
    x = _f32(count)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        states = create_xoroshiro128p_states(_DROPOUT_STATES, seed=3)
    ws = cuda.to_device(np.r_[x, np.full(2 * count, np.nan, np.float32)])
    blocks, threads = _grid(count)
    ew.dropout[min(blocks, _DROPOUT_STATES // threads), threads](states, rate, count, 0, count, 2 * count, ws)
    out = ws.copy_to_host()
    mask, a = out[count:2 * count], out[2 * count:]
    scale = np.float32(1) / (np.float32(1) - rate)
    assert set(np.unique(mask)) <= {0.0, scale}
    np.testing.assert_array_equal(a, x * mask)
    kept = np.mean(mask > 0)
    assert abs(kept - 0.75) < 0.06, kept      # 2048 draws: 0.06 is over 6 standard deviations


@device
def test_softmax_rows_column_sums_gather_and_copy():
    from numba import cuda
    from fastnn.kernels.cuda import elementwise as ew
    rows, n = 4, 6
    z = _f32(rows, n, lo=-20, hi=20)
    d = cuda.to_device(np.r_[z.ravel(), np.zeros(rows * n, np.float32)])
    ew.softmax_rows[_grid(rows)](d, 0, d, rows * n, rows, n)
    p = d.copy_to_host()[rows * n:].reshape(rows, n)
    e = np.exp(z.astype(np.float64) - z.max(1, keepdims=True))
    np.testing.assert_allclose(p, e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)
    ga = _f32(rows, n)
    g = cuda.to_device(np.r_[np.zeros(rows * n, np.float32), ga.ravel()])
    ew.softmax_rows_backward[_grid(rows)](d, g, rows * n, g, 0, rows, n)
    want = p * (ga - (ga * p).sum(1, keepdims=True))
    np.testing.assert_allclose(g.copy_to_host()[:rows * n].reshape(rows, n), want, rtol=1e-5, atol=1e-6)
    # bias gradient: column sums of a block at an offset, into an offset
    dst = cuda.to_device(np.full(n + 2, 7, np.float32))
    ew.column_sums[_grid(n)](d, rows * n, rows, n, dst, 2)
    np.testing.assert_allclose(dst.copy_to_host(), np.r_[7, 7, p.sum(0)], rtol=1e-6)
    # gathering a batch from a shuffled index (when the first op is not a Dense layer)
    X = _f32(10, 3)
    ids = RNG.permutation(10).astype(np.int64)
    ws = cuda.to_device(np.zeros(12, np.float32))
    ew.gather[_grid(12)](cuda.to_device(X.ravel()), 3, cuda.to_device(ids), 5, 4, ws)
    np.testing.assert_array_equal(ws.copy_to_host(), X[ids[5:9]].ravel())
    out = cuda.to_device(np.zeros(14, np.float32))
    ew.copy[_grid(12)](ws, 0, out, 2, 12)
    np.testing.assert_array_equal(out.copy_to_host(), np.r_[0, 0, X[ids[5:9]].ravel()])


@device
def test_loss_kernel_matches_cpu_losses_gradients_and_metrics():
    from numba import cuda
    from fastnn.kernels import program as P
    from fastnn.kernels.cpu.activations import softmax_rows
    from fastnn.kernels.cpu.losses import row_loss, row_metric
    from fastnn.kernels.cpu.sample_loss import rowwise_loss, unused_loss
    from fastnn.kernels.cuda.losses import loss_rows
    b, n = 5, 4
    logits = _f32(b, n, lo=-4, hi=4)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    sig = (1 / (1 + np.exp(-logits))).astype(np.float32)
    sig[0, 0], sig[1, 1] = 1.0, 0.0                       # clipped probabilities: zero gradient
    onehot_i = RNG.integers(0, n, b).astype(np.int64)
    onehot = np.eye(n, dtype=np.float32)[onehot_i]
    binary = (RNG.random((b, n)) < 0.5).astype(np.float32)
    values = _f32(b, n)
    cases = [(P.MSE, P.ON_OUTPUT, values, onehot), (P.MAE, P.ON_OUTPUT, values, onehot),
             (P.BCE, P.ON_OUTPUT, sig, binary), (P.BCE, P.ON_LOGITS, logits, binary),
             (P.CCE, P.ON_OUTPUT, probs.astype(np.float32), onehot), (P.CCE, P.ON_LOGITS, logits, onehot),
             (P.SCCE, P.ON_OUTPUT, probs.astype(np.float32), None), (P.SCCE, P.ON_LOGITS, logits, None)]
    # The kernel reads targets and weights of batch row r at data set row ids[pos + r].
    N, pos = 9, 3
    ids = RNG.permutation(N).astype(np.int64)
    rows = ids[pos:pos + b]
    weights = _f32(N, lo=0, hi=3)
    for (code, mode, src, yf), weighted in [(case, False) for case in cases] + [(case, True) for case in cases[::2]]:
        sparse = yf is None
        # the data set's targets: the batch's rows where the index points, other rows random
        Yf = np.zeros((0, n), np.float32) if sparse else _f32(N, n)
        Yi = RNG.integers(0, n, N).astype(np.int64) if sparse else np.zeros(0, np.int64)
        if sparse:
            Yi[rows] = onehot_i
        else:
            Yf[rows] = yf
        yf_flat = np.zeros(0, np.float32) if sparse else yf.ravel()
        yi = onehot_i if sparse else np.zeros(0, np.int64)
        metrics = np.array([P.M_SPARSE_ACC] if sparse else [P.M_CAT_ACC, P.M_BIN_ACC, P.M_MSE, P.M_MAE, P.M_RMSE])
        # A loss on logits that fuses a softmax also writes the outputs (softmax_out) the metrics read.
        softmax_out = mode == P.ON_LOGITS and code in (P.CCE, P.SCCE)
        # CPU reference: same buffers, offsets 3 into src / 2 into grad
        src_buf = np.r_[np.zeros(3, np.float32), src.ravel()].astype(np.float32)
        out_buf = src_buf.copy()
        if softmax_out:
            softmax_rows(src_buf, 3, out_buf, 3, b, n)
        cpu_grad = np.zeros(2 + b * n, np.float32)
        cpu_sums = np.zeros(2 + len(metrics))
        if weighted:    # the CPU's weighted path: one row at a time, scaled by w / b
            cpu_sums[0] = rowwise_loss(code, mode, src_buf[3:], cpu_grad[2:], yf_flat, yi, weights[rows], b, n, True,
                                       np.float32(1.0), *unused_loss(), np.zeros(0, np.float32))
        else:
            cpu_sums[0] = sum(row_loss(code, mode, src_buf, 3 + r * n, cpu_grad, 2 + r * n, True, yf_flat, yi, r, n,
                                       np.float32(1) / np.float32(b)) for r in range(b))
        for k, metric in enumerate(metrics):
            cpu_sums[2 + k] = sum(row_metric(metric, out_buf, 3 + r * n, yf_flat, yi, r, n) for r in range(b))
        cpu_sums[1] = b
        d_grad, d_sums = cuda.to_device(np.zeros(2 + b * n, np.float32)), cuda.to_device(np.zeros(len(cpu_sums)))
        d_src, d_out = cuda.to_device(src_buf), cuda.to_device(src_buf if not softmax_out else np.zeros_like(src_buf))
        loss_rows[_grid(b)](code, mode, d_src, 3, d_grad, 2, True, cuda.to_device(Yf.ravel()), cuda.to_device(Yi),
                            cuda.to_device(weights), weighted, cuda.to_device(ids), pos, b, n, cuda.to_device(metrics),
                            d_out, 3, softmax_out, d_sums)
        label = f"loss {code} mode {mode} weighted {weighted}"
        np.testing.assert_allclose(d_sums.copy_to_host(), cpu_sums, rtol=2e-6, err_msg=label)
        np.testing.assert_allclose(d_grad.copy_to_host(), cpu_grad, rtol=2e-5, atol=1e-7, err_msg=label)
        np.testing.assert_allclose(d_out.copy_to_host()[3:], out_buf[3:], rtol=1e-6, atol=1e-7, err_msg=label)


def _classifier(opt):
    keras.set_random_seed(11)
    model = keras.Sequential([keras.layers.Input(shape=[6]), keras.layers.Dense(9, activation="relu"),
                              keras.layers.Dense(7, activation="tanh"), keras.layers.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer=opt, metrics=["accuracy"])
    return model


def _fit_on(dev, make, X, y, **fit_kwargs):
    """Trains a fresh model from ``make()`` on device ``dev``; returns what a user sees."""
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append([w.copy() for w in self.model.get_weights()])

    model = make()
    with keras.device(dev):
        history = model.fit(X, y, verbose=0, callbacks=[Record()], **fit_kwargs)
        pred = model.predict(X, batch_size=4, verbose=0)
        score = model.evaluate(X, y, batch_size=5, verbose=0)
    return model, history.history, seen, pred, score


def _assert_same_training(cpu, gpu):
    (m0, h0, seen0, p0, s0), (m1, h1, seen1, p1, s1) = cpu, gpu
    for a, b in zip(m0.get_weights(), m1.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    for e0, e1 in zip(seen0, seen1):           # callbacks saw the device's weights after every epoch
        for a, b in zip(e0, e1):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    assert h0.keys() == h1.keys()
    for key in h0:
        np.testing.assert_allclose(h1[key], h0[key], rtol=1e-5, err_msg=key)
    np.testing.assert_allclose(p1, p0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s1, s0, rtol=1e-5)
    opt0, opt1 = m0.optimizer, m1.optimizer
    assert opt0.iterations == opt1.iterations
    np.testing.assert_allclose(opt1.slots, opt0.slots, rtol=1e-5, atol=1e-7)


@device
@pytest.mark.parametrize("opt", ["sgd", "adam", "rmsprop"])
def test_fit_on_cuda_ends_on_the_cpu_weights(opt):
    X, y = _f32(11, 6), RNG.integers(0, 3, 11)
    make = lambda: _classifier(keras.optimizers.SGD(0.1, momentum=0.9) if opt == "sgd" else opt)  # noqa: E731
    # 11 samples in batches of 4: a partial last batch; validation runs on the device too.
    kwargs = dict(batch_size=4, epochs=2, shuffle=False, validation_data=(X[:5], y[:5]))
    _assert_same_training(_fit_on("cpu", make, X, y, **kwargs), _fit_on("cuda", make, X, y, **kwargs))


@device
def test_shuffled_regression_fit_with_preprocessing_and_dropout_layers_matches_cpu():
    X = _f32(10, 3) * 5 + 2
    y = X @ np.array([[1.0], [-2.0], [0.5]], np.float32)

    def make():
        keras.set_random_seed(5)
        norm = keras.layers.Normalization(input_shape=[3])
        norm.adapt(X)
        model = keras.Sequential([norm, keras.layers.Rescaling(0.5, offset=0.1),
                                  keras.layers.Dense(4, activation="elu"), keras.layers.Dropout(0.0),
                                  keras.layers.Dense(3), keras.layers.Activation("swish"), keras.layers.Dense(1)])
        model.compile(loss="mse", optimizer="adam", metrics=["RootMeanSquaredError"])
        return model
    # The same seed gives the same permutation each epoch: the device gathers from it.
    kwargs = dict(batch_size=3, epochs=2, shuffle=True)
    _assert_same_training(_fit_on("cpu", make, X, y, **kwargs), _fit_on("cuda", make, X, y, **kwargs))


@device
def test_loss_and_gradients_on_cuda_match_cpu():
    from fastnn.models.training import loss_and_gradients
    X, y = _f32(6, 6), RNG.integers(0, 3, 6)
    model = _classifier("sgd")
    with keras.device("cpu"):
        loss0, g0 = loss_and_gradients(model, X, y)
    with keras.device("cuda"):
        loss1, g1 = loss_and_gradients(model, X, y)
    assert loss1 == pytest.approx(loss0, rel=1e-6)
    np.testing.assert_allclose(g1, g0, rtol=1e-5, atol=1e-7)
    assert np.abs(g0).max() > 0


@device
def test_launches_configured_side_by_side_keep_their_own_grids():
    # A plan keeps one configured launch per GEMM; each must cover its own grid, not the last one made.
    from numba import cuda
    from fastnn.kernels.cuda.blas import gemm_launch
    m, n, k = 19, 5, 3                      # 19 rows: two tile rows in the simulator's 16-row tiles
    A, B = _f32(m, k), _f32(k, n)
    d_c = cuda.to_device(np.zeros(m * n, np.float32))
    tall = gemm_launch(False, False, m, n, k, 1.0, 0.0, cuda.to_device(A.ravel()), 0, k, cuda.to_device(B.ravel()), 0,
                       n, d_c, 0, n)
    gemm_launch(False, False, 2, n, k, 1.0, 0.0, cuda.to_device(A.ravel()), 0, k, cuda.to_device(B.ravel()), 0, n,
                cuda.to_device(np.zeros(2 * n, np.float32)), 0, n)      # configured after, never run
    tall[0](*tall[1])
    np.testing.assert_allclose(d_c.copy_to_host().reshape(m, n), A @ B, rtol=1e-5, atol=1e-6)


def _deep_classifier(opt="sgd"):
    """Three hidden layers, two of them wider than a simulator GEMM tile (16)."""
    keras.set_random_seed(13)
    model = keras.Sequential([keras.layers.Input(shape=[6]), keras.layers.Dense(18, activation="relu"),
                              keras.layers.Dense(17, activation="tanh"), keras.layers.Dense(5, activation="elu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer=opt, metrics=["accuracy"])
    return model


@device
@pytest.mark.parametrize("rows", [19, 37])
def test_gradients_of_every_layer_match_cpu_for_batches_beyond_one_tile(rows):
    # Batches that are not a multiple of the GEMM tile height: every layer's gradient, not just the last.
    from fastnn.models.training import loss_and_gradients
    X, y = _f32(rows, 6), RNG.integers(0, 3, rows)
    model = _deep_classifier()
    with keras.device("cpu"):
        loss0, g0 = loss_and_gradients(model, X, y)
    with keras.device("cuda"):
        loss1, g1 = loss_and_gradients(model, X, y)
    assert loss1 == pytest.approx(loss0, rel=1e-6)
    n_first = 6 * 18 + 18
    assert np.abs(g0[:n_first]).max() > 1e-3          # the first layer's gradient is not trivially zero
    np.testing.assert_allclose(g1, g0, rtol=1e-4, atol=1e-7)


@device
def test_fit_with_batches_beyond_one_tile_and_a_partial_last_batch_matches_cpu():
    X, y = _f32(37, 6), RNG.integers(0, 3, 37)
    runs = []
    for dev in ("cpu", "cuda"):
        model = _deep_classifier(keras.optimizers.SGD(0.1, momentum=0.9))
        with keras.device(dev):
            history = model.fit(X, y, batch_size=19, epochs=2, shuffle=True, verbose=0)   # batches of 19 and 18
        runs.append((model, history.history))
    (m0, h0), (m1, h1) = runs
    for a, b in zip(m0.get_weights(), m1.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m1.optimizer.slots, m0.optimizer.slots, rtol=1e-5, atol=1e-6)
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(h1[key], h0[key], rtol=1e-5, err_msg=key)


def _mlp(widths, first=None):
    keras.set_random_seed(2)
    layers = [keras.layers.Input(shape=[widths[0]])] + ([first] if first is not None else [])
    layers += [keras.layers.Dense(w, activation="relu") for w in widths[1:-1]]
    model = keras.Sequential(layers + [keras.layers.Dense(widths[-1], activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def _session(model, batch):
    from fastnn.kernels.cuda.engine import Session
    model.optimizer.build(model._n_trainable)
    return Session(model._program_for_training(), model._params, batch, model.optimizer, model._n_trainable)


@device
def test_a_training_step_of_the_seeds_mlp_is_ten_launches():
    # 784-300-100-10 with Adam: 3 forward GEMMs (the first reads the batch through the index; the softmax is
    # left to the loss kernel), the loss, 5 backward GEMMs (activation derivatives and bias gradients fused
    # in), one update. A regression in the fusions shows here.
    session = _session(_mlp([784, 300, 100, 10]), 32)
    assert session._plan(32, True).launches() == 10
    assert session._plan(32, False, with_loss=True).launches() == 4       # evaluate: 3 GEMMs and the loss
    assert session._plan(32, False, with_loss=False).launches(with_loss=False) == 4     # predict: and the softmax
    # Options that need their own launch: weight penalties, and a schedule / Nadam / clipping by norm.
    assert session._plan(32, True).launches(penalty=True, prepare=True) == 12
    # A first op that is not Dense needs the batch gathered first.
    scaled = _session(_mlp([784, 300, 100, 10], first=keras.layers.Rescaling(0.5)), 32)
    assert scaled._plan(32, True).launches() == 12                      # + gather, + the rescaling op


@device
@pytest.mark.skipif(not SIMULATOR, reason="counts launches through the simulator's launcher")
def test_plan_launch_count_is_what_a_training_step_launches(monkeypatch):
    from fastnn.kernels.cuda import launch
    model = _mlp([5, 6, 4, 3])
    session = _session(model, 4)
    X, y = _f32(8, 5), RNG.integers(0, 3, 8)
    data = session.data(X, np.zeros((0, 3), np.float32), y.astype(np.int64))
    calls = []
    real = launch._SimulatorLaunch.__call__
    monkeypatch.setattr(launch._SimulatorLaunch, "__call__", lambda self, *args: (calls.append(1), real(self, *args)))
    session.train_steps(data, np.arange(8, dtype=np.int64), 0, 8, model.optimizer.hyper(), 0, model.loss.code, 0,
                        np.array([0]), np.zeros(3))
    assert len(calls) == 2 * session._plan(4, True).launches() == 2 * 10     # two steps of 4 rows


@device
def test_callbacks_see_and_change_device_weights_between_batches_and_fits_continue():
    X, y = _f32(8, 6), RNG.integers(0, 3, 8)

    def run(dev):
        seen = []

        class Shrink(keras.callbacks.Callback):
            """Records the weights after each batch; halves the first kernel after batch 1."""
            def on_train_batch_end(self, batch, logs=None):
                weights = self.model.get_weights()
                seen.append([w.copy() for w in weights])
                if batch == 1:
                    weights[0] *= 0.5
                    self.model.set_weights(weights)

        model = _classifier("adam")
        with keras.device(dev):
            model.fit(X, y, batch_size=3, epochs=1, shuffle=False, verbose=0, callbacks=[Shrink()])
            model.fit(X, y, batch_size=3, epochs=1, shuffle=False, verbose=0)   # Adam's state carries on
        return model, seen

    (m0, seen0), (m1, seen1) = run("cpu"), run("cuda")
    assert len(seen0) == len(seen1) == 3
    for e0, e1 in zip(seen0, seen1):
        for a, b in zip(e0, e1):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    for a, b in zip(m0.get_weights(), m1.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    assert m0.optimizer.iterations == m1.optimizer.iterations == 6
    np.testing.assert_allclose(m1.optimizer.slots, m0.optimizer.slots, rtol=1e-5, atol=1e-7)


@device
def test_dropout_training_on_cuda_is_reproducible_and_inference_ignores_it():
    X, y = _f32(8, 6), RNG.integers(0, 3, 8)

    def make(rate=0.5):
        keras.set_random_seed(21)
        return keras.Sequential([keras.layers.Input(shape=[6]), keras.layers.Dense(8, activation="relu"),
                                 keras.layers.Dropout(rate), keras.layers.Dense(3, activation="softmax")])

    model = make()
    with keras.device("cpu"):
        p_cpu = model.predict(X, verbose=0)        # an uncompiled model predicts too
    with keras.device("cuda"):
        np.testing.assert_allclose(model.predict(X, verbose=0), p_cpu, rtol=1e-5, atol=1e-7)
    runs = []
    for rate in (0.5, 0.5, 0.0):
        model = make(rate)
        model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
        with keras.device("cuda"):
            model.fit(X, y, batch_size=4, epochs=1, verbose=0)
        runs.append(model.get_weights())
    for a, b in zip(runs[0], runs[1]):              # the same seed draws the same masks
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(runs[0][2], runs[2][2])  # and the masks do drop units


@device
def test_a_graph_the_device_cannot_run_falls_back_to_the_cpu_unless_cuda_was_asked_for():
    # Two inputs: not a chain of one-input layers, which is what the CUDA engine runs.
    a, b = keras.Input(shape=(3,)), keras.Input(shape=(2,))
    model = keras.Model([a, b], keras.layers.Dense(1)(keras.layers.concatenate([a, b])))
    model.compile(loss="mse", optimizer="sgd")
    x, y = [_f32(8, 3), _f32(8, 2)], _f32(8, 1)
    with keras.device("auto"):
        with pytest.warns(UserWarning, match="runs on the CPU"):
            model.fit(x, y, verbose=0)
    with keras.device("cuda"):
        with pytest.raises(NotImplementedError, match="CUDA device does not run"):
            model.fit(x, y, verbose=0)
