"""Plans: the one model every format is read into, ids of files and tasks, the graph.

Exports ``model`` (Plan, Phase, Task), ``graph`` (the DAG of tasks and phase gates),
``analysis`` (what ``plan show``/``validate`` compute) and ``formats`` (one reader per format).
"""
