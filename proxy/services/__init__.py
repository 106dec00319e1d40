"""Control-plane logic shared by the admin API, ``/me``, the dashboard and the CLI."""
