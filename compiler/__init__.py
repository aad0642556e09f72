"""dfx.compiler"""
