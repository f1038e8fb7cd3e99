"""Background work: one ``claude --bg`` session per plan, watching the sessions, and
collecting (verify + merge) what they did.
"""
