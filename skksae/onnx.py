"""ONNX export of skksae's estimators, through skl2onnx.

Importing this module registers a converter with skl2onnx for
:class:`~skksae.KSparseAutoencoder`, :class:`~skksae.DenoisingAutoencoder` and
:class:`~skksae.AutoencoderClassifier`, so that ``skl2onnx.to_onnx`` converts them
and the pipelines they sit in; the graphs run in onnxruntime with no Python, Numba
or compile at start-up.  It needs the ``onnx`` extra (``pip install
"skksae[onnx]"``); ``import skksae`` alone does not import skl2onnx.

What the graphs compute, from the fitted parameters that
``_BaseAutoencoder._encoder_layer`` gives (the input mean folded into the bias):

- an autoencoder's :meth:`transform`: ``z = x W^T + b``, then its top-k (``TopK``
  with ``round(transform_k_factor * k)`` units, ties to the lower index as the
  kernels break them; the values activated and scattered back into a dense code with
  ``ScatterElements``), or every unit activated where the model keeps them all, or
  with ``batch_topk`` every activation above the learned ``threshold_``.  A model
  with ``sparse_output=True`` exports dense codes (ONNX has no CSR);
- the classifier: the same layers, its output layer and the softmax, with the label
  and probability outputs of skl2onnx's own classifiers (their ``zipmap`` and
  ``nocl`` options).

The graph's precision is the input's: float32 from a float32 example, float64 from a
float64 one.  ``inverse_transform`` is not exported.

Examples
--------
>>> import numpy as np
>>> import onnxruntime as ort
>>> from skl2onnx import to_onnx
>>> import skksae.onnx  # registers the converters
>>> from skksae import KSparseAutoencoder
>>> X = np.random.RandomState(0).rand(200, 20).astype(np.float32)
>>> ae = KSparseAutoencoder(n_components=16, k=4, max_iter=3).fit(X)
>>> onx = to_onnx(ae, X[:1])
>>> session = ort.InferenceSession(onx.SerializeToString(),
...                                providers=["CPUExecutionProvider"])
>>> codes = session.run(None, {session.get_inputs()[0].name: X})[0]
>>> bool(np.allclose(codes, ae.transform(X), atol=1e-5))
True
"""

import numpy as np
from onnx import TensorProto
from onnx.helper import make_tensor
from skl2onnx import update_registered_converter
from skl2onnx._parse import _parse_sklearn_classifier
from skl2onnx.common.data_types import guess_proto_type
from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
from skl2onnx.common.utils import check_input_and_output_numbers
from sklearn.utils.validation import check_is_fitted

from ._classifier import AutoencoderClassifier
from ._denoising import DenoisingAutoencoder
from ._ksparse import KSparseAutoencoder

__all__ = []  # importing the module is its whole interface

_ACTIVATIONS = {"linear": None, "relu": "Relu", "sigmoid": "Sigmoid"}


class _Graph:
    """Nodes and initializers added to skl2onnx's container, each with a fresh name."""

    def __init__(self, scope, container, operator):
        self.scope, self.container = scope, container
        self.proto = guess_proto_type(operator.inputs[0].type)
        if self.proto != TensorProto.DOUBLE:
            self.proto = TensorProto.FLOAT
        self.dtype = np.float64 if self.proto == TensorProto.DOUBLE else np.float32

    def const(self, name, value, proto=None):
        """An initializer of the graph's precision (or of ``proto``)."""
        value = np.asarray(value, dtype=self.dtype if proto is None else None)
        unique = self.scope.get_unique_variable_name(name)
        self.container.add_initializer(unique, self.proto if proto is None else proto,
                                       list(value.shape), value.ravel().tolist())
        return unique

    def node(self, op, inputs, n_outputs=1, output=None, domain="", **attrs):
        """One node; returns its output's name (a list of names with ``n_outputs``)."""
        outputs = ([output] if output is not None else
                   [self.scope.get_unique_variable_name(op.lower()) for _ in range(n_outputs)])
        self.container.add_node(op, inputs, outputs, op_domain=domain,
                                name=self.scope.get_unique_operator_name(op), **attrs)
        return outputs[0] if n_outputs == 1 else outputs

    def activate(self, x, activation):
        op = _ACTIVATIONS[activation]
        return x if op is None else self.node(op, [x])

    def layer(self, x, W, b, activation, k, threshold=None):
        """``act(select_k(x W^T + b))`` for weights ``W`` of shape (units, inputs):
        the top-k units activated and the rest 0, every unit when ``k`` is None, or
        every activation above ``threshold``."""
        z = self.node("Add", [self.node("MatMul", [x, self.const("W", W.T)]),
                              self.const("b", b)])
        if threshold is not None:
            a = self.activate(z, activation)
            keep = self.node("Greater", [a, self.const("threshold", [threshold])])
            return self.node("Where", [keep, a, self.const("zero", [0])])
        if k is None:
            return self.activate(z, activation)
        values, indices = self.node(
            "TopK", [z, self.const("k", [k], TensorProto.INT64)], n_outputs=2, axis=1,
            largest=1, sorted=1)
        zeros = self.node("ConstantOfShape", [self.node("Shape", [z])],
                          value=make_tensor("value", self.proto, [1], [0]))
        return self.node("ScatterElements",
                         [zeros, indices, self.activate(values, activation)], axis=1)


def _autoencoder_shape(operator):
    check_input_and_output_numbers(operator, input_count_range=1, output_count_range=1)
    model = operator.raw_operator
    check_is_fitted(model)
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = operator.inputs[0].type.__class__(
        [n, model.components_.shape[0]])


def _convert_autoencoder(scope, operator, container):
    """An autoencoder's ``transform``."""
    model = operator.raw_operator
    g = _Graph(scope, container, operator)
    layer = model._encoder_layer(g.dtype)
    x = g.node("Cast", [operator.inputs[0].full_name], to=g.proto)
    codes = g.layer(x, layer.W, layer.b, layer.activation, layer.k, layer.threshold)
    g.node("Identity", [codes], output=operator.outputs[0].full_name)


def _parse_classifier(scope, model, inputs, custom_parsers=None):
    # skl2onnx's classifier parser reads classes_ first: say "not fitted" before it
    check_is_fitted(model)
    return _parse_sklearn_classifier(scope, model, inputs, custom_parsers=custom_parsers)


def _classifier_shape(operator):
    check_is_fitted(operator.raw_operator)
    calculate_linear_classifier_output_shapes(operator)


def _convert_classifier(scope, operator, container):
    """The classifier's labels and probabilities."""
    model = operator.raw_operator
    g = _Graph(scope, container, operator)
    a = g.node("Cast", [operator.inputs[0].full_name], to=g.proto)
    L = len(model.coefs_) - 1
    for W, b, activation, k in zip(model.coefs_[:L], model.intercepts_[:L],
                                   model.hidden_activations_, model.hidden_k_):
        a = g.layer(a, W.T, b, activation, k)
    logits = g.layer(a, model.coefs_[L].T, model.intercepts_[L], "linear", None)
    g.node("Softmax", [logits], output=operator.outputs[1].full_name, axis=1)
    classes = model.classes_
    if container.get_options(model, dict(nocl=False))["nocl"]:
        classes = np.arange(len(classes))  # skl2onnx's option: indices, not labels
    if np.issubdtype(classes.dtype, np.integer) or classes.dtype == np.bool_:
        labels = g.const("classes", classes.astype(np.int64), TensorProto.INT64)
    else:
        labels = g.scope.get_unique_variable_name("classes")
        g.container.add_initializer(labels, TensorProto.STRING, [len(classes)],
                                    [str(c).encode("utf-8") for c in classes])
    best = g.node("ArgMax", [logits], axis=1)
    picked = g.node("ArrayFeatureExtractor", [labels, best], domain="ai.onnx.ml")
    g.node("Reshape", [picked, g.const("shape", [-1], TensorProto.INT64)],
           output=operator.outputs[0].full_name)


for _model in (KSparseAutoencoder, DenoisingAutoencoder):
    update_registered_converter(_model, f"Skksae{_model.__name__}", _autoencoder_shape,
                                _convert_autoencoder, overwrite=True)
update_registered_converter(AutoencoderClassifier, "SkksaeAutoencoderClassifier",
                            _classifier_shape, _convert_classifier, overwrite=True,
                            parser=_parse_classifier,
                            options={"zipmap": [True, False, "columns"],
                                     "nocl": [False, True]})
