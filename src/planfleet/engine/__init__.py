"""The engine: turns a plan into verified, merged commits on the integration branch.

``loop.Engine`` runs the dependency-driven schedule with the ``options.RunOptions`` it is
given; ``attempt`` is one task attempt from worktree to verdict; ``setup``/``record``/
``runend`` are what happens before, during and at the end of a run; ``control`` stops it.
"""
