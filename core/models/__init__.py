"""What can be loaded and how: the registry (facts without torch), the offline demo pair, tiny test models, student
derivation by layer pruning. Importing this package is cheap; torch is imported inside the functions that need it."""
