"""The uplink's TLS client context: verification always on, optional private CA and client cert.

Why a module of its own: the daemon builds the context once at start (and again on reload)
and reports a bad file as a :class:`~agent.config.ConfigError` naming the key, before any
connection is tried; the uplink only uses the context.
"""

from __future__ import annotations

import ssl

from agent.config import ConfigError, Problem, UplinkConfig

__all__ = ["client_ssl_context"]


def client_ssl_context(config: UplinkConfig) -> ssl.SSLContext:
    """A client context that verifies the hub's certificate and host name.

    ``ca_file`` set: trust only that PEM bundle (a private CA); unset: the system store.
    ``client_cert_file``/``client_key_file``: present a client certificate (mutual TLS).
    TLS 1.2 is the floor. Raises :class:`ConfigError` naming the key of a file that cannot be
    loaded.
    """
    problems: list[Problem] = []
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=config.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError([Problem("uplink.ca_file",
                                   f"cannot load CA bundle {config.ca_file}: {exc}")]) from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    if config.client_key_file is not None and config.client_cert_file is None:
        problems.append(Problem("uplink.client_cert_file",
                                "client_key_file is set without client_cert_file"))
    if config.client_cert_file is not None:
        try:
            context.load_cert_chain(config.client_cert_file, config.client_key_file)
        except (OSError, ssl.SSLError) as exc:
            problems.append(Problem("uplink.client_cert_file",
                                    f"cannot load client certificate "
                                    f"{config.client_cert_file} / key "
                                    f"{config.client_key_file}: {exc}"))
    if problems:
        raise ConfigError(problems)
    return context
