"""The stochastic optimizers: SGD with momentum and Adam, as small objects.

Each optimizer owns its state, a dict of plain NumPy arrays (and the step counter
``"t"``), so an estimator that keeps ``optimizer.state`` pickles and loads with
``skops.io`` using only trusted types.  The state's keys are ``"t"`` and, per
parameter, ``"v_<name>"`` (SGD's velocity) or ``"m_<name>"``, ``"v_<name>"``
(Adam's moments).

One step is two calls: :meth:`tick` advances the counter and returns the
:class:`Step` (solver code, step size, first decay, second decay, epsilon) that the
update kernels read; :meth:`update` applies it to named parameters.  A kernel that
fuses the step into a backward pass receives the same :class:`Step` and the state
arrays of :meth:`slots`.
"""

from collections import namedtuple

import numpy as np

from . import _kernels as K

Step = namedtuple("Step", "solver rate beta1 beta2 epsilon")
Step.__doc__ = """The arguments of one step, as the update kernels take them: the
solver code (``_kernels.SGD``, ``_kernels.ADAM``; 0: no step), the step size, the
first decay (SGD's momentum, Adam's beta_1), Adam's beta_2 and epsilon."""

# what a backward kernel is given when it must not step
NO_STEP = Step(0, 0.0, 0.0, 0.999, 1e-8)


class _Optimizer:
    """Base class: the state, and the update of named parameters."""

    slot_names = ()
    beta_2 = 0.999
    epsilon = 1e-8

    def __init__(self, learning_rate, state=None):
        self.learning_rate = learning_rate
        self.state = {"t": 0} if state is None else state

    @classmethod
    def state_keys(cls, names):
        """The keys of the state for parameters ``names``."""
        return ["t"] + [f"{slot}_{name}" for name in names for slot in cls.slot_names]

    def add_slots(self, params, names):
        """Zero state for each of the named parameters that has none yet (a fresh
        optimizer, or parameters that were frozen and are trained now)."""
        for key in self.state_keys(names)[1:]:
            if key not in self.state:
                self.state[key] = np.zeros_like(params[key.split("_", 1)[1]])
        return self

    def has_slots(self, name):
        return f"v_{name}" in self.state

    def slots(self, name, like):
        """The two state arrays a kernel reads for parameter ``name`` (``like``
        stands in for a slot the solver does not have, or a parameter without
        state)."""
        if not self.has_slots(name):
            return like, like
        return self._slots(name)

    def update(self, params, grads, names, step, l2=None):
        """Apply ``step`` to the named parameters; ``l2`` maps names to the
        coefficient of an L2 penalty's gradient ``l2 * p`` (none by default).
        Returns the sum of the squares, before the step, of the parameters with a
        nonzero coefficient."""
        squares = 0.0
        for name in names:
            p = params[name]
            s1, s2 = self.slots(name, p)
            squares += K.call(
                K.optimizer_update, step.solver, p.reshape(-1), s1.reshape(-1),
                s2.reshape(-1), grads[name].reshape(-1), step.rate, step.beta1, step.beta2,
                step.epsilon, 0.0 if l2 is None else l2.get(name, 0.0),
            )
        return squares

    def step(self, params, grads, names):
        """One step (:meth:`tick`, then :meth:`update`) of the named parameters."""
        return self.update(params, grads, names, self.tick())


class SGD(_Optimizer):
    """Mini-batch SGD with momentum: ``v = momentum * v - rate * g``, ``w += v``."""

    slot_names = ("v",)

    def __init__(self, learning_rate, state=None, momentum=0.9):
        super().__init__(learning_rate, state)
        self.momentum = momentum

    def tick(self):
        self.state["t"] += 1
        return Step(K.SGD, self.learning_rate, self.momentum, self.beta_2, self.epsilon)

    def _slots(self, name):
        v = self.state[f"v_{name}"]
        return v, v  # the second slot is not read


class Adam(_Optimizer):
    """Adam (Kingma & Ba 2015), its bias corrections folded into the step size."""

    slot_names = ("m", "v")
    beta_1 = 0.9

    def tick(self):
        self.state["t"] += 1
        t = self.state["t"]
        rate = self.learning_rate * np.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t)
        return Step(K.ADAM, rate, self.beta_1, self.beta_2, self.epsilon)

    def _slots(self, name):
        return self.state[f"m_{name}"], self.state[f"v_{name}"]


SOLVERS = {"sgd": SGD, "adam": Adam}


def make_optimizer(solver, learning_rate, momentum=0.9, state=None):
    """The optimizer named ``solver`` ("sgd" or "adam") over ``state`` (a fresh
    state when None; the dict is used as it is, not copied)."""
    if solver == "sgd":
        return SGD(learning_rate, state, momentum=momentum)
    return Adam(learning_rate, state)


def state_keys(solver, names):
    """The keys of the state of ``solver`` for parameters ``names``."""
    return SOLVERS[solver].state_keys(names)
