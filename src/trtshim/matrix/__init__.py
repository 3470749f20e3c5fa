"""The version matrix: which torch / torch_tensorrt / TensorRT releases pair, generated from PyPI metadata."""
