"""Where an optimizer's state sits among Keras 3's optimizer variables.

Keras stores ``iterations``, then the learning rate (unless it is a
schedule), then the slot variables in the order the optimizer's ``build``
creates them. Slots created by one ``add_optimizer_variables`` call
interleave per model variable (Adam: m0, v0, m1, v1, ...); the groups of
successive calls follow one another (RMSprop: every velocity, then every
momentum). fastnn keeps each kind of slot as one row of ``optimizer.slots``
over the flat trainable buffer, the rows named by ``optimizer.slot_names``.

The groups below are read from Keras 3.15's ``build`` methods (Nadam's checked
against the variables Keras 3.15.1 lists: iteration, learning_rate, then
momentum and velocity per weight, then its u_product). An optimizer
class not listed cannot be saved in Keras's layout, and saying so beats
dropping its state.
"""
import numpy as np

_GROUPS = {
    "SGD": lambda o: [("momentum",)] if o.momentum != 0 else [],
    "RMSprop": lambda o: [("velocity",)] + ([("momentum",)] if getattr(o, "momentum", 0) > 0 else [])
    + ([("average_gradient",)] if getattr(o, "centered", False) else []),
    "Adam": lambda o: [("momentum", "velocity")] + ([("velocity_hat",)] if getattr(o, "amsgrad", False) else []),
    "Adamax": lambda o: [("momentum", "norm")],
    "Nadam": lambda o: [("momentum", "velocity")],
    "Adagrad": lambda o: [("accumulator",)],
    "Adadelta": lambda o: [("accumulated_grad", "accumulated_delta_var")],
    "Ftrl": lambda o: [("accumulator", "linear")],
    "Lion": lambda o: [("momentum",)],
    "Lion": lambda o: [("momentum",)],
}


# Scalar variables Keras creates after the slots: Nadam's running product of momentum
# factors (``_u_product``), which fastnn computes from the iteration count.
_TRAILING = {"Nadam": lambda o: [np.float32(o.u_product())]}


def trailing_scalars(optimizer):
    """The float32 scalars Keras keeps after ``optimizer``'s slots (usually none)."""
    for cls in type(optimizer).__mro__:
        if cls.__name__ in _TRAILING:
            return _TRAILING[cls.__name__](optimizer)
    return []


def slot_groups(optimizer):
    """Keras's slot groups for ``optimizer`` as tuples of rows of its ``slots``
    (Adam: ``[(0, 1)]``); a subclass follows its nearest listed base (AdamW: Adam)."""
    for cls in type(optimizer).__mro__:
        if cls.__name__ in _GROUPS:
            rows = list(optimizer.slot_names)
            return [tuple(rows.index(name) for name in group) for group in _GROUPS[cls.__name__](optimizer)]
    raise NotImplementedError(f"fastnn does not know where Keras keeps the state of {type(optimizer).__name__}, "
                              "so it cannot save or load it in Keras's format")


def has_learning_rate_variable(optimizer):
    """Keras keeps a fixed learning rate as a variable, and a schedule as config only."""
    return getattr(optimizer, "schedule", None) is None
