"""The run engine: drives flow and task runs through their states and records them.

- ``flow_engine.run_flow(flow, parameters, flow_run=None, return_type=...)``: one flow run
  (a new one, or an existing record such as a worker's); ``flow_run`` holds its record
  and state proposals, ``flow_support`` subflow links and ``wait_for``;
- ``task_engine.run_task(task, parameters, ...)``: one task run, called directly,
  submitted to a task runner or mapped; ``task_run`` holds its record, inputs and states;
- ``recorder``: task run state changes leave the hot path and reach the store in ordered
  batches from a background thread (``recorder.flush()`` waits for them);
- ``inputs`` (futures, lineage), ``parameters`` (binding, validation, run names),
  ``outcomes`` (return value/exception -> state), ``hooks``, ``timeouts``,
  ``cancellation`` (runs cancelled from outside), ``caching`` (the results seam),
  ``records`` (engine-built records), ``scope`` (what a flow run's task runs share),
  ``extensions`` (optional logging integration).

The engine is sync-first: async flow and task functions are awaited at one boundary, by
a second small driver over the same steps.
"""
