"""Accuracy measurements and scheme prototypes for issue 9 (not imported by the package). See docs/accuracy.md."""
