"""Chat adapters: each a thin translator between a platform and the core.

Native event in, one ``core.dispatch(Command)`` call, native reply out. They
know nothing of monitoring or git.
"""
