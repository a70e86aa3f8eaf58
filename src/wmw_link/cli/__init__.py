"""The ``wmw-link`` command line: a click group whose commands each call one library function.

Commands are imported lazily so that ``wmw-link --help`` is fast and a command's heavy
dependencies (Splink, Spark) load only when it runs. Any :class:`WmwLinkError` becomes a
one-line message and exit status 1, never a traceback.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import click

from wmw_link import runrecord
from wmw_link._version import __version__
from wmw_link.errors import WmwLinkError

# command name -> (module, attribute, one-line help)
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "agreement": ("wmw_link.cli.agreement_cmd", "agreement", "Validate and summarise agreements."),
    "synth": (
        "wmw_link.cli.synth_cmd",
        "synth",
        "Generate synthetic partner extracts with ground truth.",
    ),
    "keys": ("wmw_link.cli.keys_cmd", "keys", "Create linkage keys and party keypairs."),
    "tokenise": (
        "wmw_link.cli.tokenise_cmd",
        "tokenise",
        "Controller: turn an extract into tokens and payload.",
    ),
    "link": (
        "wmw_link.cli.link_cmd",
        "link",
        "Trusted third party: link all partners' tokens into persons.",
    ),
    "evaluate": (
        "wmw_link.cli.evaluate_cmd",
        "evaluate",
        "Score linkage maps against a ground truth.",
    ),
    "journeys": (
        "wmw_link.cli.journeys_cmd",
        "journeys",
        "Analyst: join payloads to person ids as journeys.",
    ),
    "outcomes": (
        "wmw_link.cli.outcomes_cmd",
        "outcomes",
        "Analyst: measure outcomes with disclosure control.",
    ),
    "impact": (
        "wmw_link.cli.impact_cmd",
        "impact",
        "Analyst: effect of hub support against a matched comparison group.",
    ),
    "withdraw": (
        "wmw_link.cli.withdraw_cmd",
        "withdraw",
        "Controller: list withdrawn records (opt-outs, erasure) as signed row refs.",
    ),
    "seal": ("wmw_link.cli.seal_cmd", "seal", "Encrypt a file to a party and sign it."),
    "unseal": ("wmw_link.cli.seal_cmd", "unseal", "Verify and decrypt a sealed file."),
    "audit": ("wmw_link.cli.audit_cmd", "audit", "Inspect and verify the audit log."),
    "demo": ("wmw_link.cli.demo_cmd", "demo", "Run the whole pipeline on synthetic data."),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _COMMANDS:
            return None
        module, attr, _ = _COMMANDS[cmd_name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help text from the table, so `--help` need not import every command module.
        rows = [(name, _COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, cmd, rest = super().resolve_command(ctx, args)
        # Name the audit record after the command, and the subcommand of a group (keys new-party).
        if name is not None:
            full = name
            if isinstance(cmd, click.Group) and rest and rest[0] in cmd.commands:
                full = f"{name} {rest[0]}"
            runrecord.current().command = full
        return name, cmd, rest

    def invoke(self, ctx: click.Context) -> Any:
        # Every command runs inside a RunRecord and leaves one line in the audit log, whatever
        # its outcome: the refusal message (which never holds personal data) or the error type.
        token = runrecord.start("(unknown)")
        outcome = "ok"
        can_audit = False
        try:
            _check_audit_log_writable(ctx)
            can_audit = True
            return super().invoke(ctx)
        except WmwLinkError as e:
            outcome = f"refused: {e}"
            raise click.ClickException(str(e)) from None
        except OSError as e:
            # A path the user gave cannot be read or written (missing folder, /proc, a file
            # where a folder should be): say which, without a traceback.
            outcome = f"error: {type(e).__name__}"
            raise click.ClickException(_describe_os_error(e)) from None
        except click.exceptions.Exit as e:
            outcome = "ok" if e.exit_code == 0 else f"error: exit {e.exit_code}"
            raise
        except (click.ClickException, click.exceptions.Abort) as e:  # usage errors, Ctrl-C
            outcome = f"error: {type(e).__name__}"
            raise
        except Exception as e:
            # An unexpected error's message may quote a cell of the data (pyarrow and DuckDB
            # do), so only its type is shown unless the user asks for the traceback.
            outcome = f"error: {type(e).__name__}"
            if os.environ.get("WMW_LINK_DEBUG"):
                raise
            raise click.ClickException(
                f"internal error ({type(e).__name__}); its details are not shown because they "
                "may quote personal data. Set WMW_LINK_DEBUG=1 to see the traceback, on the "
                "machine that holds the data, and report the error without the data."
            ) from None
        except BaseException as e:  # Ctrl-C, SystemExit: recorded, then left to click
            outcome = f"error: {type(e).__name__}"
            raise
        finally:
            record = runrecord.current()
            runrecord.finish(token)
            if can_audit:
                _append_audit(ctx.params.get("audit_log"), record, outcome)


def _check_audit_log_writable(ctx: click.Context) -> None:
    """Fail before doing any work when the audit log cannot be appended to."""
    if ctx.resilient_parsing:
        return
    from wmw_link import audit

    log = Path(ctx.params.get("audit_log") or audit.default_log_path())
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab"):
            pass
    except OSError as e:
        raise WmwLinkError(
            f"audit log: cannot append to {log} ({e.strerror or type(e).__name__}); nothing was done"
        ) from None
    # Envelopes sealed by this command carry this head: the recipient's log records it.
    runrecord.current().audit_head = audit.head(log)


def _describe_os_error(e: OSError) -> str:
    where = e.filename if e.filename is not None else "a file"
    reason = e.strerror or type(e).__name__
    hint = ""
    if isinstance(e, IsADirectoryError):
        hint = " (a folder is there; give a file name)"
    elif isinstance(e, (FileExistsError, NotADirectoryError)):
        hint = " (a file is there; give a folder)"
    return f"cannot use {where}: {reason}{hint}"


def _append_audit(log: Path | None, record: runrecord.RunRecord, outcome: str) -> None:
    from wmw_link import audit

    try:
        audit.append(log or audit.default_log_path(), record, outcome)
    except WmwLinkError as e:
        # Fail closed: a command whose use cannot be recorded does not report success.
        raise click.ClickException(f"audit log: {e}") from None


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wmw-link")
@click.option(
    "--audit-log",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="WMW_LINK_AUDIT_LOG",
    default="wmw-link-audit.jsonl",
    show_default=True,
    help="Hash-chained audit log every command appends to (env WMW_LINK_AUDIT_LOG).",
)
def main(audit_log: Path) -> None:
    """wmw-link: privacy-preserving record linkage for West Midlands Works.

    Controllers tokenise, the trusted third party links, analysts measure outcomes.
    """
    exit_on_sigterm()


def exit_on_sigterm() -> None:
    """A SIGTERM (``kill``, a scheduler's timeout, ``docker stop``) exits through Python, so
    every ``finally`` runs: a run's scratch database and spill files hold tokens and pairs and
    must not outlive it. Python's default for SIGTERM ends the process at once."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


__all__ = ["main"]
