"""The engine: turns a plan into verified, merged commits on the integration branch.

``loop.Engine`` runs the dependency-driven schedule; ``attempt`` is one task attempt from
worktree to verdict; ``setup``/``record``/``runend`` are what happens before, during and at
the end of a run.
"""
