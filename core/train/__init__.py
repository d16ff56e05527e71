"""Training jobs (one entry per method, built on TRL) and the pieces only distillation needs: top-k KD losses and
the teacher logit cache. Importing this package is cheap; torch/TRL load when an entry runs."""
