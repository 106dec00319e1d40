"""Talking to providers: the pooled HTTP/1.1 client and the incremental SSE parser."""
