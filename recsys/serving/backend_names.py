"""The names of the serving text backends, importable without torch (scripts offer them in --help)."""

TEXT_BACKENDS: tuple[str, ...] = ("fp32", "bf16", "int8", "onnx")
ONNX_FILE = "encoder.onnx"
