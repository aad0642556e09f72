"""``dfx build``: the Vitis kernel project of a core on a board (docs/u280.md)."""
