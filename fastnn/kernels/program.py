"""The layout of a compiled model program, shared by the CPU and CUDA kernels.

A model compiles to ``prog``, an int64 array of shape ``(n_ops, N_FIELDS)``:
one row per operation in an order where every op comes after the ops it
reads, read by generic kernels, and ``ints``, int64 lists the rows point
into (input slots, integer constants). Activations live in one flat
float32 workspace ``ws`` and their gradients in ``gs`` of the same layout; a
"slot" is a per-sample position, so the block of a batch of ``b`` rows for a
slot at ``pos`` of width ``w`` starts at ``b * pos`` (row-major ``b x w``).
Parameters live in one flat float32 buffer addressed by element offsets.
"""

# Fields of one program row. The program is a graph: an op reads any number
# of input slots (listed in the int64 ``ints`` array at INS: N_INS pairs
# (per-sample position, per-sample size)) and writes one output slot (an op of several
# outputs, a recurrent layer's states: their slots one after the other from A_POS). X_POS
# and N_IN repeat the first input for the ops that read one.
(KIND, N_IN, N_OUT, ACT, W_OFF, B_OFF, X_POS, Z_POS, A_POS, FLAGS, AUX, S_OFF,
 INS, N_INS, IAUX, ACC, FWD, BWD, AFTER, ROWS) = range(20)
N_FIELDS = 20
# S_OFF: offset of an op's non-trainable state in the parameter buffer, or -1
# (BatchNormalization: moving mean, then moving variance right after it).
# Z_POS: the op's own per-sample scratch (Dense: pre-activations; Dropout: its
# mask), or X_POS when it needs none. AUX: offset of its float constants in
# ``consts``; IAUX: offset of its integer constants in ``ints``.
# ACC: bit k set when the backward pass adds the gradient of input k to what
# is already there (the slot feeds several ops) instead of writing it.
# FWD, BWD, AFTER: addresses of the kind's compiled forward, backward and
# after-a-training-step functions (``kernels.kinds``), 0 where there is none.
# ROWS: Dense acts on the last axis, so a sample is ROWS rows of N_IN values
# (1 for flat inputs); N_IN and N_OUT are then the last axis's sizes.

# Operation kinds with fixed codes (the CUDA engine knows these); kinds added
# later take codes from ``kernels.kinds.register``.
DENSE = 0        # z = x @ W + b (W at W_OFF, n_in x n_out; b at B_OFF or -1), a = act(z)
ACTIVATION = 1   # a = act(x); Z_POS == X_POS
NORMALIZE = 2    # a = (x - mean) / max(sqrt(var), 1e-7); mean at W_OFF, var at B_OFF
RESCALE = 3      # a = x * scale + offset; scale, offset in the float constants at AUX
DROPOUT = 4      # training: a = x * mask / (1 - rate), rate in the float constants at AUX; mask kept in ws at Z_POS
BATCHNORM = 5    # a = (x - mean) * gamma / sqrt(var + eps) + beta; gamma at W_OFF, beta at B_OFF (or -1),
                 # moving statistics at S_OFF; constants at AUX: eps, momentum, 1 - momentum; the statistics
                 # used and scratch live in a slot of width 5 * N_OUT at Z_POS (see kernels/kinds/batchnorm.py)
LEAKY_RELU = 6   # a = x if x > 0 else slope * x; slope in the float constants at AUX
FIRST_FREE_KIND = 7

# FLAGS bits.
NEED_DX = 1      # propagate the gradient to this op's input (some earlier op trains)
LOSS_FUSED = 2   # the loss kernel writes d loss / d z directly: skip act backward
FROZEN = 4       # the layer is not trainable: no weight gradients; BatchNormalization uses its moving statistics
W_ACC = 8        # a shared layer's later call (in backward order): add to its weight gradients
DIRECT_INPUT = 16  # (first op) the model's only input is read by this Dense op alone: inference may read it in place
# A layer called with training=True or training=False runs in that mode whatever the run's mode
# (Monte-Carlo Dropout in predict; a frozen BatchNormalization kept in inference during fit).
TRAIN_ON = 32
TRAIN_OFF = 64

# Fields of one model output's row in ``outs`` (outputs, O_FIELDS), which the
# loops read to run its loss and metrics and to copy its predictions.
(O_LOSS_POS, O_POS, O_N, O_Y_OFF, O_Y_STRIDE, O_SPARSE, O_SUMS, O_M0, O_M1, O_LOSS, O_WEIGHT, O_COL) = range(12)
O_FIELDS = 12
# O_LOSS_POS: the slot the loss reads (O_POS, or the pre-activations of a fused
# softmax/sigmoid); O_POS, O_N: the output's slot and width. Targets: with
# O_SPARSE, labels at column O_Y_OFF of Yi's rows of O_Y_STRIDE columns, else
# columns [O_Y_OFF, O_Y_OFF + O_N) of Yf's rows of O_Y_STRIDE. O_SUMS: where its
# [loss, samples, metrics...] sums start (0: it is the model's only output and
# they are the model's). O_M0, O_M1: its metric codes' range. O_LOSS: the
# address of its batch loss (0: no loss, in predict). O_WEIGHT: index of its
# loss weight in ``consts``. O_COL: its first column in the predictions.

# Loss codes.
MSE, MAE, CCE, SCCE, BCE = range(5)
CUSTOM = 5       # per-sample value and gradient from a Loss subclass's compiled functions (losses.Loss)
# Loss modes: what the loss kernel reads.
ON_OUTPUT = 0    # probabilities / values in the output slot A
ON_LOGITS = 1    # logits: either from_logits=True (slot A) or a fused softmax/sigmoid (slot Z)

# Metric codes (each a mean over samples of a per-sample value).
M_SPARSE_ACC, M_CAT_ACC, M_BIN_ACC, M_MSE, M_MAE, M_RMSE = range(6)

# Optimizer codes.
SGD, RMSPROP, ADAM, ADAGRAD, NADAM, ADAMAX, ADADELTA, FTRL, LION = range(9)

# The optimizer's parameter vector ``hp`` (float32), read by the update kernels.
# HP_LR is the learning rate of the step being taken: fixed, or written before
# each step from the schedule at HP_SCHED. HP_1..HP_5 are the optimizer's own
# numbers (see each optimizer's ``_fill``); a 0 in HP_WD / HP_CLIP* turns that
# option off. HP_UPROD is Nadam's running product of momentum factors.
(HP_LR, HP_1, HP_2, HP_EPS, HP_NESTEROV, HP_3, HP_4, HP_5, HP_AMSGRAD, HP_CENTERED, HP_WD,
 HP_CLIPNORM, HP_CLIPVALUE, HP_GLOBAL_CLIPNORM, HP_UPROD) = range(15)
HP_SCHED = 15    # from here to the end: the learning-rate schedule, [SCHED_* code, its numbers...]
                 # (kernels/cpu/schedules.py); a fixed rate has [SCHED_NONE], so len(hp) >= 16

# Learning-rate schedule codes.
SCHED_NONE, SCHED_EXPONENTIAL, SCHED_PIECEWISE, SCHED_COSINE, SCHED_INVERSE_TIME = range(5)
