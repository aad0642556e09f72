"""dfx.sim"""
