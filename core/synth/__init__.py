"""Teacher-driven data synthesis (REFERENCE §2): operators label, expand, refine, extract, cot_generate, long2short,
short2long, classify as pure steps (operators.py), a runner that keeps a teacher busy (runner.py), the in-memory
`apply` and "Try on N rows" (apply.py, trial.py), and the resumable job (job.py). No torch at import.
"""
