"""Git work on the repository: task worktrees and their pool, scratch checkouts, guards,
the merge queue and landing.

Everything here goes through the one ``planfleet.git`` helper; git metadata writes are
serialized under planfleet's own lock.
"""
