"""cocotb testbenches of the datapath units, run on Verilator by ``dfx regress``.

They live in the package (not under tests/) so that ``dfx regress`` works from an installed
dfx. Each follows the cocotbext-axi shape: a ``TB`` class owning clock, reset and drivers,
scenario coroutines, every scenario crossed with idle/back-pressure generators, and every
output bit compared with the golden arithmetic (:mod:`dfx.isa.golden`).
"""
