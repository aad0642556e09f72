"""The control slave: the Vitis ap_ctrl_hs register map (:mod:`.regmap`) and its AXI4-Lite slave
(docs/core.md).
"""
