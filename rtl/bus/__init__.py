"""Bus and stream plumbing shared by every unit of the core: AXI4 / AXI4-Lite signatures
(:mod:`.axi`), small stream FIFOs (:mod:`.stream`), Vitis port naming (:mod:`.vitis`)."""
