"""Talking to providers: the pooled HTTP/1.1 client (answers parsed by llhttp, bounded), its egress proxies
and TLS settings (``client`` maps the modules), and the incremental SSE parser."""
