"""Inputs of flow runs: typed answers to pauses and messages between flows.

``RunInput`` models (or plain types) are what ``pause_flow_run(wait_for_input=...)``
returns at resume and what ``send_input``/``receive_input`` carry; the ``*_flow_run_input``
functions read and write the stored inputs by key.
"""

from prefect_lite.input.actions import (
    create_flow_run_input,
    create_flow_run_input_from_model,
    delete_flow_run_input,
    filter_flow_run_input,
    read_flow_run_input,
)
from prefect_lite.input.handlers import GetInputHandler, receive_input, send_input
from prefect_lite.input.run_input import (
    AutomaticRunInput,
    Keyset,
    RunInput,
    RunInputMetadata,
    keyset_from_base_key,
    keyset_from_paused_state,
    run_input_subclass_from_type,
)
from prefect_lite.schemas import RunInput as FlowRunInput

__all__ = [
    "AutomaticRunInput",
    "FlowRunInput",
    "GetInputHandler",
    "Keyset",
    "RunInput",
    "RunInputMetadata",
    "create_flow_run_input",
    "create_flow_run_input_from_model",
    "delete_flow_run_input",
    "filter_flow_run_input",
    "keyset_from_base_key",
    "keyset_from_paused_state",
    "read_flow_run_input",
    "receive_input",
    "run_input_subclass_from_type",
    "send_input",
]
