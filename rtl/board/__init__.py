"""The board top of the Alveo kernel (docs/u280.md): the core with its Vitis ports, the ring's
QSFP link streams and their clock-domain crossing."""
