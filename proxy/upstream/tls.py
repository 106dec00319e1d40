"""TLS for provider connections: the default context, a provider's own (private CA, client certificate),
and the words for a handshake that failed."""

from __future__ import annotations

import ssl

from proxy.upstream.errors import named


class TLSSetupError(ValueError):
    """A provider's TLS files cannot be used; the message names the provider and the file."""


def default_context() -> ssl.SSLContext:
    """The system's CA store, hostnames checked. Reads files: make it at startup."""
    return ssl.create_default_context()


def provider_context(
    provider: str,
    *,
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    system_ca: bool = True,
) -> ssl.SSLContext:
    """A context for one provider. ``ca_file`` (PEM, one or more CA certificates) is trusted in addition
    to the system's store, or instead of it with ``system_ca=False``; ``cert_file`` (with ``key_file``, or
    a PEM holding both) is presented as a client certificate. Hostnames are always checked."""
    if ca_file is not None and not system_ca:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies and checks hostnames
    else:
        context = ssl.create_default_context()
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise TLSSetupError(
                named(provider, f"cannot load the CA file {ca_file!r} ({_reason(exc)})")
            ) from None
    if cert_file is not None:
        try:
            context.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError) as exc:
            files = f"{cert_file!r}" + (f" / {key_file!r}" if key_file else "")
            raise TLSSetupError(
                named(provider, f"cannot load the client certificate {files} ({_reason(exc)})")
            ) from None
    return context


def handshake_failure(provider: str, host: str, exc: BaseException) -> str:
    """What a failed TLS handshake with ``host`` means, in words that name the provider."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or str(exc)
        return named(provider, f"the TLS certificate of {host} was not accepted ({why})")
    return named(provider, f"the TLS handshake with {host} failed ({_reason(exc)})")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
