"""Small helpers of the SDK that users import by name (``utilities.annotations``)."""
