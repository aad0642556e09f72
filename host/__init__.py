"""dfx.host"""
