"""The run state: one JSON file per plan run, changed only inside a locked transaction.

``store`` (StateStore) reads and writes it; ``records`` is the document and its transition
table, ``ops`` the transitions, ``create`` a new state from a plan, ``recover`` resume checks.
"""
