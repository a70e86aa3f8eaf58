"""`wmw-link synth`: synthetic partner extracts with ground truth."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from wmw_link import runrecord
from wmw_link.errors import ConfigError


def _load_rates(path: Path | None, scale: float, profile: str) -> dict[str, float] | None:
    from wmw_link.synth import ErrorRates
    from wmw_link.synth.profiles import get_profile

    overrides: dict[str, float] = {}
    if path is not None:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise ConfigError(f"{path}: cannot read the error rates ({type(e).__name__})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: error rates must be a mapping of name to rate")
        overrides = data
    if path is None and scale == 1.0:
        return None
    base = get_profile(profile).errors
    if overrides:  # the file overrides some of the profile's rates
        base = ErrorRates.model_validate({**base.model_dump(), **overrides})
    return base.scaled(scale).model_dump() if scale != 1.0 else base.model_dump()


@click.command("synth")
@click.option(
    "--people",
    "n_people",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Number of working-age residents to generate.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Random seed: the same arguments give byte-identical files.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Output directory (extracts/, truth/, synth.json).",
)
@click.option(
    "--profile",
    default="standard",
    show_default=True,
    help="Error and household profile: standard, or hard (error rates at the upper end of "
    "published linkage studies; docs/synthetic-data.md). --rates and --error-scale apply on top.",
)
@click.option(
    "--rates",
    "rates_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML or JSON file overriding error rates, e.g. {typo_surname: 0.05}.",
)
@click.option(
    "--error-scale",
    type=click.FloatRange(min=0.0),
    default=1.0,
    show_default=True,
    help="Multiply every error rate (0 gives clean extracts).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Processes generating chunks of 100,000 people [default: up to 2].",
)
@click.option(
    "--confounding",
    type=click.FloatRange(min=0.0, max=5.0),
    default=0.0,
    show_default=True,
    help="Strength of an unobserved trait raising both the chance of hub support and of "
    "finding work (0 = none): shows what matching on the record cannot fix.",
)
@click.option(
    "--deliveries",
    type=click.IntRange(min=1, max=33),
    default=None,
    help="Also cut the history into this many monthly deliveries, OUT/deliveries/01..K "
    "(01 the initial load, then one a month up to 2026-09, with re-sent corrections).",
)
def synth(
    n_people: int,
    seed: int,
    out: Path,
    profile: str,
    rates_file: Path | None,
    error_scale: float,
    workers: int | None,
    confounding: float,
    deliveries: int | None,
) -> None:
    """Generate synthetic West Midlands partner extracts and their ground truth.

    Writes one extract per partner (HMRC, DWP, NHS, skills and the seven hubs) in that
    partner's own columns and formats under OUT/extracts/, the ground truth under OUT/truth/
    (for evaluation only), and OUT/synth.json with parameters, error rates and realised rates.
    """
    from wmw_link.synth import generate
    from wmw_link.synth.profiles import PROFILES

    if profile not in PROFILES:  # a usage error (exit 2), like click.Choice, with our wording
        raise click.BadParameter(
            f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}",
            param_hint="'--profile'",
        )
    try:
        rates = _load_rates(rates_file, error_scale, profile)
    except ValueError as e:  # pydantic's ValidationError is a ValueError
        raise ConfigError(f"{rates_file}: invalid error rates: {str(e).splitlines()[0]}") from None
    result = generate(
        people=n_people,
        seed=seed,
        out=out,
        rates=rates,
        workers=workers,
        confounding=confounding,
        profile=profile,
        deliveries=deliveries,
    )
    rec = runrecord.current()
    for path in [*result.extracts.values(), result.truth, result.people, result.summary]:
        rec.add_output(path)
    rec.rows.update(result.rows)
    total = sum(result.rows.values())
    click.echo(
        f"Generated {n_people:,} people ({profile} profile) and {total:,} extract records "
        f"in {result.seconds:.1f}s."
    )
    for name, n in result.rows.items():
        click.echo(f"  {name:<20} {n:>10,}  {result.extracts[name]}")
    effect = result.true_effect
    click.echo(
        f"True effect of hub support on employment: +{effect.get('att_6m_points', 0):.1f} points at 6 months, "
        f"+{effect.get('att_12m_points', 0):.1f} at 12 months ({int(effect.get('supported_people', 0)):,} supported)."
    )
    if result.deliveries is not None:
        cut = result.deliveries
        for d, month in enumerate(cut.months, start=1):
            folder = cut.root / f"{d:02d}"
            rec.add_output(folder / "delivery.json")
            click.echo(
                f"  delivery {d:02d} ({month}): {sum(cut.new[d].values()):>10,} new, "
                f"{sum(cut.resent[d].values()):>8,} re-sent  {folder}"
            )
    click.echo(f"Ground truth (evaluation only): {result.truth}")
    click.echo(f"Parameters and realised rates: {result.summary}")
