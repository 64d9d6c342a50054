"""The run engine: drives flow and task runs through their states and records them.

- ``flow_engine.run_flow(flow, parameters, flow_run=None, return_type=...)``: one flow run
  (a new one, or an existing record such as a worker's);
- ``task_engine.run_task(task, parameters, ...)``: one task run, called directly, submitted
  to a task runner or mapped;
- ``recorder``: task run state changes leave the hot path and reach the store in ordered
  batches from a background thread.

The engine is sync-first: async flow and task functions are awaited at one boundary, by
a second small driver over the same steps.
"""
