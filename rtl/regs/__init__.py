"""The scalar register file (SFU_V scalars, FP32)."""
