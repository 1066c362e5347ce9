"""Export: a training run -> ``weights/<name>/`` (ONNX graph + model card), with parity proved."""
