"""Experiments of the paper run as commands (`stdbp experiment ...`)."""
