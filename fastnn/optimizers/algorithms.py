"""Keras 3's optimizers: names, defaults, and where each keeps its numbers.

The update formulas are written out in ``fastnn.kernels.cpu.optimizers``.
Every optimizer also takes the base arguments (``weight_decay``,
``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``name``; see ``base``).
"""
import numpy as np

from ..kernels import program as P
from ..kernels.cpu.optimizers import nadam_product
from .base import Optimizer, number


class SGD(Optimizer):
    """learning_rate 0.01, momentum 0, nesterov False. Slot: momentum (if momentum > 0)."""
    code = P.SGD
    # Keras 3 names an optimizer by its class in snake case: "sgd", "rm_sprop" (as its files record)
    default_name = "sgd"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.momentum = number(momentum, "momentum", 0, 1)
        self.nesterov = bool(nesterov)

    @property
    def slot_names(self):
        return ("momentum",) if self.momentum else ()

    def _fill(self, hp):
        hp[P.HP_1] = self.momentum
        hp[P.HP_NESTEROV] = float(self.nesterov)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class RMSprop(Optimizer):
    """learning_rate 0.001, rho 0.9, momentum 0, epsilon 1e-7 (inside the
    square root), centered False. Slots: velocity, momentum, average gradient."""
    code = P.RMSPROP
    default_name = "rm_sprop"

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho = number(rho, "rho", 0, 1)
        self.momentum = number(momentum, "momentum", 0, 1)
        self.epsilon = number(epsilon, "epsilon", 0)
        self.centered = bool(centered)

    @property
    def slot_names(self):
        return ("velocity", "momentum", "average_gradient") if self.centered else ("velocity", "momentum")

    def _fill(self, hp):
        hp[P.HP_1], hp[P.HP_2], hp[P.HP_EPS] = self.rho, self.momentum, self.epsilon
        hp[P.HP_CENTERED] = float(self.centered)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


class _AdamFamily(Optimizer):
    """beta_1 0.9, beta_2 0.999, epsilon 1e-7 (outside the square root)."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = number(beta_1, "beta_1", 0, 1)
        self.beta_2 = number(beta_2, "beta_2", 0, 1)
        self.epsilon = number(epsilon, "epsilon", 0)

    slot_names = ("momentum", "velocity")

    def _fill(self, hp):
        hp[P.HP_1], hp[P.HP_2], hp[P.HP_EPS] = self.beta_1, self.beta_2, self.epsilon

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class Adam(_AdamFamily):
    """learning_rate 0.001, beta_1 0.9, beta_2 0.999, epsilon 1e-7, amsgrad
    False. Slots: momentum, velocity, velocity_hat (amsgrad)."""
    code = P.ADAM
    default_name = "adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, **kwargs)
        self.amsgrad = bool(amsgrad)

    @property
    def slot_names(self):
        return ("momentum", "velocity", "velocity_hat") if self.amsgrad else ("momentum", "velocity")

    def _fill(self, hp):
        super()._fill(hp)
        hp[P.HP_AMSGRAD] = float(self.amsgrad)

    def get_config(self):
        return {**super().get_config(), "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay: weight_decay 0.004 (required), then
    Adam's defaults; the decay ``w -= w * weight_decay * lr`` comes before
    each Adam step."""
    default_name = "adamw"

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, **kwargs):
        if weight_decay is None:
            raise ValueError("AdamW: weight_decay must be a float, got None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay=weight_decay, **kwargs)


class Nadam(_AdamFamily):
    """learning_rate 0.001, beta_1 0.9, beta_2 0.999, epsilon 1e-7. Slots:
    momentum, velocity; Keras's running product of momentum factors follows
    from the iteration count."""
    code = P.NADAM
    default_name = "nadam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, **kwargs)
        self._product = (None, 0, np.float32(1.0))   # (beta_1, iterations, product) last computed

    def _fill(self, hp):
        super()._fill(hp)
        b1 = np.float32(self.beta_1)
        cached_b1, done, prod = self._product
        if cached_b1 != b1 or done > self.iterations:
            done, prod = 0, np.float32(1.0)
        prod = nadam_product(b1, prod, done, self.iterations)
        self._product = (b1, self.iterations, prod)
        hp[P.HP_UPROD] = prod

    def u_product(self):
        """Keras's ``_u_product`` after ``iterations`` steps: the product of the momentum factors."""
        return float(nadam_product(np.float32(self.beta_1), np.float32(1.0), 0, self.iterations))


class Adamax(_AdamFamily):
    """learning_rate 0.001, beta_1 0.9, beta_2 0.999, epsilon 1e-7. Slots:
    momentum, norm (the exponentially weighted infinity norm)."""
    code = P.ADAMAX
    default_name = "adamax"
    slot_names = ("momentum", "norm")


class Adagrad(Optimizer):
    """learning_rate 0.001, initial_accumulator_value 0.1, epsilon 1e-7. Slot: accumulator."""
    code = P.ADAGRAD
    default_name = "adagrad"
    slot_names = ("accumulator",)

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value = number(initial_accumulator_value, "initial_accumulator_value", 0)
        self.epsilon = number(epsilon, "epsilon", 0)

    def _fill(self, hp):
        hp[P.HP_EPS] = self.epsilon

    def _init_slots(self):
        self.slots[0] = self.initial_accumulator_value

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class Adadelta(Optimizer):
    """learning_rate 0.001, rho 0.95, epsilon 1e-7. Slots: accumulated
    squared gradient, accumulated squared update."""
    code = P.ADADELTA
    default_name = "adadelta"
    slot_names = ("accumulated_grad", "accumulated_delta_var")

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho = number(rho, "rho", 0, 1)
        self.epsilon = number(epsilon, "epsilon", 0)

    def _fill(self, hp):
        hp[P.HP_1], hp[P.HP_EPS] = self.rho, self.epsilon

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class Ftrl(Optimizer):
    """learning_rate 0.001, learning_rate_power -0.5, initial_accumulator_value
    0.1, l1/l2/l2-shrinkage regularization strengths 0, beta 0. Slots:
    accumulator, linear."""
    code = P.FTRL
    default_name = "ftrl"
    slot_names = ("accumulator", "linear")

    def __init__(self, learning_rate=0.001, learning_rate_power=-0.5, initial_accumulator_value=0.1,
                 l1_regularization_strength=0.0, l2_regularization_strength=0.0,
                 l2_shrinkage_regularization_strength=0.0, beta=0.0, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.learning_rate_power = number(learning_rate_power, "learning_rate_power", maximum=0)
        self.initial_accumulator_value = number(initial_accumulator_value, "initial_accumulator_value", 0)
        self.l1_regularization_strength = number(l1_regularization_strength, "l1_regularization_strength", 0)
        self.l2_regularization_strength = number(l2_regularization_strength, "l2_regularization_strength", 0)
        self.l2_shrinkage_regularization_strength = number(
            l2_shrinkage_regularization_strength, "l2_shrinkage_regularization_strength", 0)
        self.beta = number(beta, "beta", 0)

    def _fill(self, hp):
        hp[P.HP_1] = self.learning_rate_power
        hp[P.HP_2] = self.l1_regularization_strength
        hp[P.HP_3] = self.l2_regularization_strength
        hp[P.HP_4] = self.l2_shrinkage_regularization_strength
        hp[P.HP_5] = self.beta

    def _init_slots(self):
        self.slots[0] = self.initial_accumulator_value

    def get_config(self):
        return {**super().get_config(), "learning_rate_power": self.learning_rate_power,
                "initial_accumulator_value": self.initial_accumulator_value,
                "l1_regularization_strength": self.l1_regularization_strength,
                "l2_regularization_strength": self.l2_regularization_strength,
                "l2_shrinkage_regularization_strength": self.l2_shrinkage_regularization_strength,
                "beta": self.beta}


class Lion(Optimizer):
    """learning_rate 0.001, beta_1 0.9 (in (0, 1]: at 0 it would be signSGD),
    beta_2 0.99. Slot: momentum. Each step moves every weight by exactly
    the learning rate (the sign of the interpolated momentum), so its rate is
    usually 3-10x smaller than AdamW's."""
    code = P.LION
    default_name = "lion"
    slot_names = ("momentum",)

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = number(beta_1, "beta_1", 0, 1)
        if self.beta_1 == 0:
            raise ValueError("Argument `beta_1` must be in the (0, 1] range; at 0 the optimizer degenerates to "
                             f"SignSGD. Received: beta_1={beta_1!r}")
        self.beta_2 = number(beta_2, "beta_2", 0, 1)

    def _fill(self, hp):
        hp[P.HP_1], hp[P.HP_2] = self.beta_1, self.beta_2

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}
