"""What a request reads: the immutable snapshot, the layers that keep it current (live), the routing
overlay and the synced catalogues."""
