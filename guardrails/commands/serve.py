"""``mad-guardrails serve``: start, inspect and stop the vLLM server of a profile (debaters + coordinator adapter)."""

from __future__ import annotations

import json
import time

import typer

from mad_guardrails.core.progress import console
from mad_guardrails.guardrails.commands.hangup import signals_end_command


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        profile: str = typer.Option("offline", "--profile", "-p", help="profile name or config YAML path"),
        detach: bool = typer.Option(False, "--detach",
                                    help="start, wait until healthy, and return (the server keeps running)"),
        stop: bool = typer.Option(False, "--stop", help="stop the profile's server (by the PID in its pid file)"),
        status: bool = typer.Option(False, "--status", help="show whether the profile's server runs and answers"),
        port: int = typer.Option(None, "--port", help="override llm.serve.port"),
        as_json: bool = typer.Option(False, "--json", help="--status as JSON"),
    ) -> None:
        """Serve the profile's LLM with vLLM (OpenAI-compatible API): base model for the debaters, LoRA adapter for
        the coordinator. Foreground by default (Ctrl-C stops it); logs go to $GUARDRAILS_HOME/logs/."""
        from mad_guardrails.agents.serve import VLLMServer, server_status, stop_server
        from mad_guardrails.core.errors import ConfigError
        from mad_guardrails.guardrails.config import load_config

        cfg = load_config(profile)
        sc = cfg.llm.serve
        if sc is None:
            raise ConfigError(f"profile {profile!r} has no llm.serve section", where="llm.serve",
                              fix="add llm.serve (model, port, ...) or point llm.base_url at a server you run")
        if port is not None:
            sc = sc.model_copy(update={"port": port})
        if status:
            info = server_status(sc.port)
            if as_json:
                typer.echo(json.dumps(info or {"port": sc.port, "alive": False, "healthy": False}, indent=2))
            elif info is None:
                console.print(f"no server recorded on port {sc.port}")
            else:
                console.print(f"pid {info['pid']} on port {sc.port}: alive={info['alive']} healthy={info['healthy']} "
                              f"model={info.get('model')} adapters={info.get('adapters')} log={info.get('log')}")
            raise typer.Exit(0 if info and info["healthy"] else 1)
        if stop:
            ok = stop_server(sc.port)
            console.print(f"stopped the server on port {sc.port}" if ok else f"no running server on port {sc.port}")
            raise typer.Exit(0)
        server = VLLMServer(sc)
        console.print(f"starting vLLM for profile {cfg.profile!r} on {server.base_url} (log: {server.log_path}) ...")
        t0 = time.monotonic()
        # Ctrl-C, a kill or a closed terminal, while starting or serving, all stop the server (no orphan on the port)
        with signals_end_command(KeyboardInterrupt):
            try:
                server.start(wait=True)
                console.print(f"ready after {time.monotonic() - t0:.0f} s (pid {server.pid}); models: "
                              f"{', '.join(server.served_models())}")
                if server.missing_adapters:
                    console.print(f"[yellow]not served yet (bundled adapter missing): {server.missing_adapters}; "
                                  f"the coordinator uses the base model[/]")
                if detach:
                    server.detach()  # stop() below is then a no-op
                    console.print(f"detached; stop it with: mad-guardrails serve --profile {profile} --stop")
                    return
                while server.proc is not None and server.proc.poll() is None:
                    time.sleep(1.0)
                console.print(f"[red]the server exited[/] (see {server.log_path})")
                raise typer.Exit(1)
            except KeyboardInterrupt:
                console.print("stopping ...")
            finally:
                server.stop()
