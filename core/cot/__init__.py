"""Chain-of-thought curation: judging RV / CD / correctness, score parsing, the RV/CD mixer and range filters."""
