"""The PySpark package of the lakehouse: RAW -> BRONZE -> SILVER -> GOLD on Delta Lake.

One module per layer (:mod:`bronze`, :mod:`silver`, :mod:`gold`) holding pure DataFrame
functions, :mod:`quality` (rules and their evaluation), :mod:`contracts` (versioned table
schemas shipped as data files), :mod:`tables` (the only Delta I/O), :mod:`raw` (reading RAW
files whole), and :mod:`jobs` (one entry point per notebook).
"""
