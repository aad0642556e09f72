"""The front end of the core: program loader, instruction buffer, fetch and decode (docs/core.md).

"""
