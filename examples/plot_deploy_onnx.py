"""
===============================================================
Deploying: export a pipeline to ONNX, serve it with onnxruntime
===============================================================

A model trained with skksae runs anywhere ONNX does once it is exported: no Python
at serving time, no Numba, no compile at start-up. Importing :mod:`skksae.onnx`
registers skksae's converters with skl2onnx (``pip install "skksae[onnx]"``); then
``skl2onnx.to_onnx`` converts the estimators and the pipelines they sit in.

Here a k-sparse autoencoder ahead of a logistic regression is trained on the digits,
exported with a dynamic batch size, and served with onnxruntime; the served
predictions and probabilities are compared with the pipeline's own on the test
split.
"""

import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import onnxruntime as ort
from skl2onnx import to_onnx
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

import skksae.onnx  # noqa: F401  (registers the converters)
from skksae import KSparseAutoencoder

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                    random_state=0)
pipe = make_pipeline(KSparseAutoencoder(n_components=256, k=25, max_iter=30, random_state=0),
                     LogisticRegression(max_iter=1000))
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    pipe.fit(X_train, y_train)

# %%
# Export: the example row fixes the input's type (float32) and width; the batch size
# stays dynamic. ``zipmap=False`` gives the probabilities as one array, as
# ``predict_proba`` does.
onx = to_onnx(pipe, X_train[:1], options={"zipmap": False})
path = Path(tempfile.mkdtemp()) / "ksparse_pipeline.onnx"
path.write_bytes(onx.SerializeToString())

# %%
# Serve: onnxruntime needs only the file.
session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
labels, proba = session.run(None, {session.get_inputs()[0].name: X_test})
print(f"labels equal to predict: {np.mean(labels == pipe.predict(X_test)):.4f}")
print(f"largest probability difference: {np.abs(proba - pipe.predict_proba(X_test)).max():.2e}")
print(f"test accuracy served: {np.mean(labels == y_test):.4f}, "
      f"in Python: {pipe.score(X_test, y_test):.4f}")

# %%
# The codes themselves: the autoencoder alone exports its ``transform``, the top-k
# selection included (ONNX ``TopK``, ties to the lower index as in skksae's kernels).
ae = pipe[0]
codes_session = ort.InferenceSession(to_onnx(ae, X_train[:1]).SerializeToString(),
                                     providers=["CPUExecutionProvider"])
codes = codes_session.run(None, {codes_session.get_inputs()[0].name: X_test})[0]
reference = ae.transform(X_test)
same_support = np.mean((codes != 0) == (reference != 0))
print(f"codes: same nonzero units {same_support:.4f}, "
      f"largest difference {np.abs(codes - reference).max():.2e}")

fig, axes = plt.subplots(1, 2, figsize=(8, 3))
axes[0].imshow(reference[:20], aspect="auto", cmap="viridis")
axes[0].set_title("ae.transform (20 test images)")
axes[1].imshow(codes[:20], aspect="auto", cmap="viridis")
axes[1].set_title("onnxruntime")
for ax in axes:
    ax.set_xlabel("hidden unit")
fig.tight_layout()
plt.show()
