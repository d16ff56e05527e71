"""One backend protocol for teachers, judges and students (see base.py)."""
