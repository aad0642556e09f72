"""The dfx compute core: top (:mod:`.core`), unit ports, faults (docs/core.md)."""
