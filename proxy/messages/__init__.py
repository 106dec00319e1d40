"""Anthropic's Messages API for inbound clients (the ``anthropic`` SDK, Claude Code): ``/v1/messages`` and
``/v1/messages/count_tokens``.

A provider that speaks Messages (the ``anthropic`` plugin) gets the client's body as it is and its bytes go
back unchanged; any other is reached through chat: :mod:`.request` turns the client's body into a chat
request, :mod:`.reply` and :mod:`.stream` turn the chat answer back into a message or its event stream.
:mod:`.errors` is the endpoint's error envelope, :mod:`.dialect` ties them to the spine, and
:mod:`.count_tokens` answers the token count (the provider's, or the gateway's estimate).
"""
