"""The Responses API (``/v1/responses``): a dialect of the request spine, its translation to and from
Chat Completions for chat-only targets, and the responses the gateway keeps."""
