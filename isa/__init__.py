"""dfx.isa"""
