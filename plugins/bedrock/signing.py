"""AWS Signature Version 4 for Bedrock calls, by ``botocore`` (the optional extra
``efflux-gateway[bedrock]``), imported here only: the base install runs without it, and a ``bedrock``
provider without it is a config error that says what to install.

Credentials: the provider's ``aws_access_key_id`` / ``aws_secret_access_key`` / ``aws_session_token``
(``${VAR}``s), else botocore's own chain (environment, shared config and credentials files, SSO, container
and instance roles), resolved once when the config loads. Temporary credentials (a role's) are refreshed
by botocore when they near expiry; that may take a network call, so requests sign with the last frozen
copy and at most once a minute a worker thread asks botocore for a fresh one (never the event loop).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

SERVICE = "bedrock"
REFRESH_EVERY = 60.0  # seconds between two looks at temporary credentials (botocore refreshes ahead)


class Signer:
    def __init__(self, region: str, options: Mapping[str, str]) -> None:
        try:
            from botocore.auth import SigV4Auth
            from botocore.awsrequest import AWSRequest
            from botocore.credentials import Credentials
            from botocore.session import Session
        except ImportError:
            raise ValueError(
                "plugin 'bedrock' needs botocore: pip install 'efflux-gateway[bedrock]'"
            ) from None
        self._auth_class: Any = SigV4Auth
        self._request_class: Any = AWSRequest
        key_id = options.get("aws_access_key_id")
        secret = options.get("aws_secret_access_key")
        if bool(key_id) != bool(secret):
            raise ValueError("aws_access_key_id and aws_secret_access_key go together")
        credentials: Any
        if key_id and secret:
            credentials = Credentials(key_id, secret, options.get("aws_session_token") or None)
        else:
            credentials = Session().get_credentials()
            if credentials is None:
                raise ValueError(
                    "no AWS credentials: set aws_access_key_id/aws_secret_access_key, or the environment "
                    "(AWS_ACCESS_KEY_ID..., AWS_PROFILE) or an instance role"
                )
        self.credentials = credentials
        self.region = region
        self.frozen: Any = credentials.get_frozen_credentials()
        # Only refreshable credentials (a role's, SSO's) change; static ones are frozen once.
        self._refreshable = hasattr(credentials, "refresh_needed")
        self._looked = time.monotonic()
        self._refreshing = False

    def _current(self) -> Any:
        if self._refreshable and not self._refreshing and time.monotonic() - self._looked > REFRESH_EVERY:
            self._looked = time.monotonic()
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not on a loop (a CLI command): refreshing here blocks nothing
                self._refresh()
            else:
                self._refreshing = True
                loop.run_in_executor(None, self._refresh)
        return self.frozen

    def _refresh(self) -> None:
        try:
            self.frozen = self.credentials.get_frozen_credentials()
        except Exception as exc:  # keep signing with the last ones; AWS says when they expired
            log.warning("bedrock: refreshing AWS credentials failed (%s)", type(exc).__name__)
        finally:
            self._refreshing = False

    def sign(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        """``headers`` plus ``X-Amz-Date``, ``X-Amz-Security-Token`` (temporary credentials) and
        ``Authorization`` for this exact method, URL, headers and body."""
        request = self._request_class(method=method, url=url, data=body, headers=dict(headers))
        self._auth_class(self._current(), SERVICE, self.region).add_auth(request)
        return {str(k): str(v) for k, v in request.headers.items()}
