"""dfx.boards"""
