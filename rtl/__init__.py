"""dfx.rtl"""
