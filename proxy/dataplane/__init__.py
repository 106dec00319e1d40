"""The data plane: the request spine, body reading, dispatch over targets, the stream relay and tap,
and the ``/v1/models`` handlers."""
