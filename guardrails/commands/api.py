"""``mad-guardrails api``: the guard as an HTTP service (FastAPI + uvicorn; see docs/service.md).

    mad-guardrails api --profile offline --host 127.0.0.1 --port 8080
    mad-guardrails api --upstream http://127.0.0.1:8000/v1 --on-flag hold      # + the guarded chat proxy
    mad-guardrails api hash-key KEY                                            # a key's sha256 for --key-file
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import typer

API_HELP = ("Serve the guardrail over HTTP: POST /v1/check, /v1/check/batch, a guarded OpenAI-compatible "
            "/v1/chat/completions proxy (--upstream), /healthz, /readyz, /metrics, /docs. Keys: "
            "MAD_GUARDRAILS_API_KEYS (comma-separated) and/or --key-file (sha256 digests); without keys it binds to "
            "loopback only.")


def register(app: typer.Typer) -> None:
    grp = typer.Typer(help=API_HELP, invoke_without_command=True)
    app.add_typer(grp, name="api")

    @grp.callback()
    def api(
        ctx: typer.Context,
        profile: str = typer.Option("offline", "--profile", "-p", help="profile name or config YAML path"),
        host: str = typer.Option("127.0.0.1", "--host", help="address to bind (non-loopback needs API keys)"),
        port: int = typer.Option(8080, "--port", help="port to bind"),
        key_file: Path = typer.Option(None, "--key-file", help="file of accepted keys' sha256 hex digests, one a "
                                      "line (`mad-guardrails api hash-key KEY` prints one)"),
        max_concurrency: int = typer.Option(8, "--max-concurrency", min=1, help="requests checked at once"),
        max_queue: int = typer.Option(64, "--max-queue", min=0, help="requests waiting for a slot; then 429"),
        queue_timeout: float = typer.Option(30.0, "--queue-timeout-s", help="longest wait for a slot; then 429"),
        max_body: int = typer.Option(4 * 1024 * 1024, "--max-body-bytes", min=1024, help="largest request body"),
        max_batch: int = typer.Option(64, "--max-batch", min=1, max=1024, help="items per /v1/check/batch"),
        batch_concurrency: int = typer.Option(4, "--batch-concurrency", min=1, help="items of a batch at once"),
        timeout: float = typer.Option(None, "--timeout-s", help="per-check deadline (default: the profile's "
                                      "timeout_s); past it the verdict fails closed to flag"),
        upstream: str = typer.Option(None, "--upstream", help="OpenAI-compatible server to proxy (…/v1)"),
        upstream_key: str = typer.Option(None, "--upstream-key", envvar="MAD_GUARDRAILS_UPSTREAM_KEY",
                                         help="API key for the upstream (or MAD_GUARDRAILS_UPSTREAM_KEY)"),
        upstream_timeout: float = typer.Option(600.0, "--upstream-timeout-s", help="upstream request timeout"),
        on_flag: str = typer.Option("pass", "--on-flag", help="proxy: pass a flagged answer with the verdict "
                                    "attached, or hold it (replace it like a block, saying it is held for review)"),
        refusal: str = typer.Option(None, "--refusal", help="proxy: text replacing a blocked answer; placeholders "
                                    "{provisions} {rules} {reason}"),
        hold_message: str = typer.Option(None, "--hold-message", help="proxy: text replacing a held answer"),
        proxy_mode: str = typer.Option("balanced", "--proxy-mode", help="proxy: check mode of answers"),
        stream_mode: str = typer.Option("sentence", "--stream-mode", help="proxy streams: sentence (release "
                                        "checked sentences as they come) | buffer (release after the full check)"),
        keepalive: float = typer.Option(10.0, "--keepalive-s", help="proxy streams: SSE keep-alive comment "
                                        "interval while the full check runs"),
        otel: str = typer.Option("api", "--otel", help="tracing: api (the process's OpenTelemetry provider, no-op "
                                 "if none) | console | otlp | off"),
        log_level: str = typer.Option("info", "--log-level", help="debug | info | warning"),
        test_hooks: bool = typer.Option(False, "--test-hooks", hidden=True,
                                        help="tests only: honour x-test-hold-s (hold a slot that long)"),
    ) -> None:
        if ctx.invoked_subcommand is not None:
            return
        import importlib.util
        import logging

        from mad_guardrails.core.errors import ConfigError
        from mad_guardrails.guardrails.service.auth import ENV_KEYS, is_loopback, keys_from_env, read_key_file
        from mad_guardrails.guardrails.service.settings import DEFAULT_HOLD, DEFAULT_REFUSAL, ServiceSettings

        missing = [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
        if missing:
            raise ConfigError(f"the service needs FastAPI and uvicorn ({', '.join(missing)} missing)",
                              fix="pip install fastapi uvicorn (they come with the vllm-cpu and gpu extras)")
        import uvicorn

        for name, value, allowed in (("--on-flag", on_flag, ("pass", "hold")),
                                     ("--stream-mode", stream_mode, ("sentence", "buffer")),
                                     ("--otel", otel, ("api", "console", "otlp", "off"))):
            if value not in allowed:
                raise ConfigError(f"{name} {value!r} is not one of {', '.join(allowed)}", where=name)
        digests = keys_from_env()
        if key_file is not None:
            digests += read_key_file(key_file)
        if not digests and not is_loopback(host):
            typer.echo(f"error: refusing to bind to {host}: no API keys are configured, and without keys the service "
                       f"serves only loopback (127.0.0.1 / ::1). Set {ENV_KEYS}=key1,key2 or pass --key-file FILE "
                       "(sha256 digests: `mad-guardrails api hash-key KEY`), or bind to 127.0.0.1.", err=True)
            raise typer.Exit(2)

        from mad_guardrails.guardrails.config import load_config

        cfg = load_config(profile)  # a bad profile fails here, before anything binds
        settings = ServiceSettings(
            profile=profile, host=host, port=port, key_digests=digests, max_body_bytes=max_body,
            max_concurrency=max_concurrency, max_queue=max_queue, queue_timeout_s=queue_timeout, max_batch=max_batch,
            batch_concurrency=batch_concurrency, timeout_s=timeout, upstream=upstream, upstream_key=upstream_key,
            upstream_timeout_s=upstream_timeout, on_flag=on_flag, refusal=refusal or DEFAULT_REFUSAL,
            hold_message=hold_message or DEFAULT_HOLD, proxy_mode=proxy_mode, stream_mode=stream_mode, keepalive_s=keepalive, otel=otel,
            test_hooks=test_hooks)

        from mad_guardrails.guardrails.service.app import create_app
        from mad_guardrails.guardrails.service.middleware import configure_logging

        level = getattr(logging, log_level.upper(), logging.INFO)
        configure_logging(level)
        log = logging.getLogger("mad_guardrails.service")
        server: uvicorn.Server | None = None

        def on_fatal() -> None:
            if server is not None:
                server.should_exit = True

        app_ = create_app(settings, guardrail_config=cfg, on_fatal=on_fatal)
        log.info({"msg": "starting", "profile": cfg.profile, "host": host, "port": port,
                  "auth": "api keys" if digests else "off (no keys configured: loopback only)",
                  "keys": len(set(digests)), "upstream": upstream, "on_flag": on_flag, "stream_mode": stream_mode,
                  "max_concurrency": max_concurrency, "max_queue": max_queue, "max_body_bytes": max_body,
                  "timeout_s": timeout or cfg.timeout_s, "metrics": app_.state.svc.metrics.backend})
        if not digests:
            log.warning({"msg": f"no API keys configured ({ENV_KEYS} / --key-file): authentication is off; "
                                f"serving on loopback {host} only"})
        uv_cfg = uvicorn.Config(app_, host=host, port=port, log_config=None, access_log=False,
                                log_level=log_level, lifespan="on", timeout_graceful_shutdown=30)
        server = uvicorn.Server(uv_cfg)
        server.run()
        svc = app_.state.svc
        if svc.load_error:
            typer.echo(f"error: the guardrail could not be loaded: {svc.load_error}", err=True)
            raise typer.Exit(2)
        if not server.started:
            raise typer.Exit(1)

    @grp.command("hash-key")
    def hash_key_cmd(
        key: str = typer.Argument(None, help="the API key ('-' or omitted: read one line from stdin)"),
        new: bool = typer.Option(False, "--new", help="make a new random key; print it (stderr) and its digest"),
    ) -> None:
        """Print the sha256 digest of an API key, for --key-file (the file never holds keys in clear)."""
        from mad_guardrails.guardrails.service.auth import hash_key

        if new:
            key = secrets.token_urlsafe(32)
            typer.echo(f"new key (give it to the client, it is not stored): {key}", err=True)
        elif key is None or key == "-":
            key = sys.stdin.readline().strip()
        if not key:
            typer.echo("error: empty key", err=True)
            raise typer.Exit(2)
        typer.echo(hash_key(key))

