"""Preference data: DPO pairs (teacher vs student, best vs worst of N) and CogPO's Critique–Rethink–Verify pairs."""
