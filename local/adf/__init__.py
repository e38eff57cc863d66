"""The local Data Factory runner: executes the pipelines in ``adf/`` on one machine.

``factory`` loads the JSON, ``expressions`` evaluates it with Microsoft's engine, ``scheduler``
applies ADF's dependency, retry and timeout rules, ``activities`` does the work of each activity
type, and ``runner`` wires them into :func:`local.adf.runner.run_pipeline`.
"""
