"""kdtemp: knowledge distillation with a measured temperature.

The package has two halves: a distillation library (``kdtemp.objectives``,
``kdtemp.temperature``, ``kdtemp.signals``, ``kdtemp.diagnostics``) and a
training and study system built on it.
"""

__version__ = "0.1.0"
