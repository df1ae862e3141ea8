"""pytest's collection: ``skksae/onnx.py`` imports skl2onnx at import (its doctest
needs the ``onnx`` extra), so it is left out where that extra is not installed."""

import importlib.util

collect_ignore = []
if any(importlib.util.find_spec(name) is None
       for name in ("skl2onnx", "onnx", "onnxruntime")):
    collect_ignore.append("skksae/onnx.py")
