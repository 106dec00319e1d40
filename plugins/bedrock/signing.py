"""AWS Signature Version 4 for Bedrock calls, by ``botocore`` (the optional extra
``efflux-gateway[bedrock]``), imported here only: the base install runs without it, and a ``bedrock``
provider without it is a config error that says what to install.

Credentials: the provider's ``aws_access_key_id`` / ``aws_secret_access_key`` / ``aws_session_token``
(``${VAR}``s), else botocore's own chain (environment, shared config and credentials files, SSO, container
and instance roles), resolved once when the config loads. Temporary credentials from a role are refreshed
by botocore when they near expiry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SERVICE = "bedrock"


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

    def sign(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        """``headers`` plus ``X-Amz-Date``, ``X-Amz-Security-Token`` (temporary credentials) and
        ``Authorization`` for this exact method, URL, headers and body."""
        request = self._request_class(method=method, url=url, data=body, headers=dict(headers))
        frozen = self.credentials.get_frozen_credentials()
        self._auth_class(frozen, SERVICE, self.region).add_auth(request)
        return {str(k): str(v) for k, v in request.headers.items()}
