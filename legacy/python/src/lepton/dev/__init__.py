"""The local stack and the tools around it (``make run``, ``lepton dev``, ``lepton demo``).

Modules, one idea each: ``settings`` (ports, data folder), ``ports`` (the taken-port check),
``logs`` (one readable log, prefixed by part), ``azurite`` (the emulator), ``eventgrid``
(BlobCreated events), ``watcher`` (models/ → webhook, exactly once), ``host`` and ``server`` (the
local Functions host), ``durable_http`` (the instance-management API), ``worker_process`` (the
inference worker subprocess), ``app`` (what the host runs: the Functions app), ``stack`` (all of it
in order), ``api_client``/``publish``/``views`` (the CLI's plumbing), ``loadgen`` and ``demo`` (the
scenario), ``sample_models`` (real ONNX models on scikit-learn's digits).

Nothing is imported here, so importing ``lepton.dev.azurite`` stays cheap for the test suite.
"""

__all__: list[str] = []
