"""The ``sltrepro`` command: run pipeline steps, check claims, regress, report."""

import argparse
import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import yaml

from . import provenance, regress, report, resources
from .claims import (
    check_claims,
    count_passing,
    format_table,
    load_claims,
    load_metrics,
    split_kinds,
)
from .config import DEFAULT_PROFILE, PROFILES, ConfigError
from .paths import UnknownPaperError, known_papers, paper_dir, repo_root, results_dir


def _add_profile(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default=DEFAULT_PROFILE, choices=PROFILES)
    parser.add_argument("--results", default="results", help="results root (default: results)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sltrepro", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="list the papers this checkout reproduces")

    run = sub.add_parser("run", help="run one step of a paper's pipeline (what rules call)")
    run.add_argument("paper")
    run.add_argument("step")
    _add_profile(run)
    run.add_argument("--outdir", required=True, help="folder the step writes into")
    run.add_argument("--threads", type=int, default=1)
    run.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE")
    files = {
        "--input": "a file the step reads, as ctx.input(NAME); NAME=PATH PATH ... for a list",
        "--output": "a file the step writes, as ctx.output(NAME) (metrics: returned metrics)",
    }
    for flag, what in files.items():
        run.add_argument(
            flag, action="append", nargs="+", default=[], metavar="NAME=PATH", help=what
        )
    run.add_argument(
        "--reads",
        metavar="KEYS@DIGEST",
        help="the config keys the step may read, as the rule declares them (default: all)",
    )

    claims = sub.add_parser("claims", help="check a paper's claims; exit 1 if any fails")
    claims.add_argument("paper")
    _add_profile(claims)
    claims.add_argument("--metrics", help="metrics.json (default: in the results folder)")
    claims.add_argument("--out", help="also write the table as CSV here")
    claims.add_argument(
        "--no-fail", action="store_true", help="exit 0 even when a claim fails (for the DAG)"
    )

    reg = sub.add_parser(
        "regress", help="compare metrics.json with the accepted baseline, within measured noise"
    )
    reg.add_argument("paper", help="a paper, or 'all'")
    _add_profile(reg)
    reg.add_argument(
        "--calibrate",
        action="store_true",
        help="measure a new baseline: run the paper's DAG under every floating-point rounding "
        "path this CPU offers and record values, spreads and tolerances",
    )
    reg.add_argument("--cores", type=int, default=2, help="snakemake cores for --calibrate")
    reg.add_argument(
        "--forcerun",
        nargs="+",
        default=[],
        metavar="RULE",
        help="with --calibrate: rerun these rules (and what follows) in every rounding path's "
        "results; a code change Snakemake cannot see, e.g. in a summary step, needs this",
    )
    reg.add_argument(
        "--keep-earlier",
        action="store_true",
        help="with --calibrate: keep the rounding paths of the baseline's earlier calibration "
        "(e.g. another CPU kind's) for the metrics they measured; refused when a shared "
        "metric moved since then",
    )

    rep = sub.add_parser(
        "report", help="write a paper's report.md (and its parts of the HTML report)"
    )
    rep.add_argument("paper")
    _add_profile(rep)
    rep.add_argument("--claims", required=True)
    rep.add_argument("--out", required=True)
    rep.add_argument("--html", help="also write the claims page of the HTML report here")
    rep.add_argument("--front", help="also write the paper's front-page section (.rst) here")
    rep.add_argument("--figures", nargs="*", default=[], help="figures to show, in order")
    rep.add_argument("--metrics", help="metrics.json: its LLC diagnostics go into the report")

    res = sub.add_parser(
        "resources",
        help="SLURM requests (mem_mb, runtime) of each rule, from a run's benchmark files",
    )
    res.add_argument("papers", nargs="*", help="papers whose benchmarks to read (default: all)")
    _add_profile(res)
    res.add_argument(
        "--write",
        nargs="?",
        const="",
        metavar="FOLDER",
        help="write them as a workflow profile, FOLDER/config.yaml (default FOLDER: "
        "profiles/slurm-<profile>), for --workflow-profile beside --profile profiles/slurm",
    )

    summ = sub.add_parser("summary", help="write summary.md of every paper's claims")
    _add_profile(summ)
    summ.add_argument("--out", required=True)
    summ.add_argument(
        "--claims", nargs="+", required=True, help="claims.csv files, results/<profile>/<paper>/"
    )
    return parser


def cmd_claims(args) -> int:
    claims = load_claims(args.paper)
    metrics_path = args.metrics or results_dir(args.profile, args.paper, args.results) / (
        "metrics.json"
    )
    table = check_claims(claims, load_metrics(metrics_path), args.profile)
    if args.out:
        table.to_csv(args.out, index=False)
    print(f"{args.paper} ({args.profile})")
    claims_table, checks_table = split_kinds(table)
    print(format_table(claims_table) if len(claims_table) else "(no claims apply to this profile)")
    if len(checks_table):
        print("harness checks:")
        print(format_table(checks_table))
    failed = table.loc[table["status"] != "pass", "claim"].tolist()
    if failed:
        print(f"{count_passing(table)}. FAILED: {', '.join(failed)}")
        return 0 if args.no_fail else 1
    print(f"all pass: {count_passing(table)}")
    return 0


def cmd_regress(args) -> int:
    papers = known_papers() if args.paper == "all" else [paper_dir(args.paper).name]
    if args.calibrate:
        for paper in papers:
            calibrate(
                paper, args.profile, args.results, args.cores, args.forcerun, args.keep_earlier
            )
        return 0
    status = 0
    for paper in papers:
        metrics_path = results_dir(args.profile, paper, args.results) / "metrics.json"
        baseline_path = _baseline_path(paper, args.profile)
        if not metrics_path.exists():
            print(f"{paper}: {metrics_path} missing; run the {args.profile} pipeline first")
            status = 1
            continue
        seen = _observed(results_dir(args.profile, paper, args.results))
        moved = regress.compare(regress.read_baseline(baseline_path), seen)
        if moved:
            status = 1
            print(f"{paper}: {len(moved)} value(s) moved from {baseline_path}:")
            print("\n".join(f"  {m}" for m in moved))
        else:
            print(f"{paper}: matches {baseline_path}")
    return status


def cmd_resources(args) -> int:
    papers = [paper_dir(p).name for p in args.papers] or known_papers()
    reqs = resources.requests(resources.read_benchmarks(args.profile, papers, args.results))
    table = pd.DataFrame([vars(r) for r in reqs])
    print(table.to_string(index=False, float_format=lambda x: f"{x:.0f}"))
    if args.write is not None:
        profiles = repo_root() / "profiles"
        slurm, local = (
            yaml.safe_load((profiles / name / "config.yaml").read_text())
            for name in ("slurm", "default")
        )
        target = Path(args.write or profiles / f"slurm-{args.profile}") / "config.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(resources.workflow_profile(reqs, slurm, local, args.profile))
        print(f"wrote {target}")
    return 0


def _observed(folder: Path) -> dict:
    """A finished run's metrics and claim verdicts (``folder``: results/<profile>/<paper>)."""
    claims_csv = folder / "claims.csv"
    if not claims_csv.exists():
        raise FileNotFoundError(f"{claims_csv}: no claims table; run the whole pipeline first")
    return regress.observed(load_metrics(folder / "metrics.json"), pd.read_csv(claims_csv))


def _baseline_path(paper: str, profile: str) -> Path:
    return paper_dir(paper) / "baselines" / f"{profile}.csv"


def calibrate(
    paper: str, profile: str, results: str, cores: int, forcerun=(), keep_earlier=False
) -> None:
    """Run ``paper``'s DAG once per rounding path and write its baseline with the spreads
    (``keep_earlier``: with the earlier calibration's paths, :func:`regress.earlier_paths`)."""
    target = _baseline_path(paper, profile)
    record_path = target.with_suffix(".calibration.json")
    if keep_earlier and not record_path.exists():
        raise ConfigError(f"--keep-earlier: {record_path} does not exist")
    paths = regress.rounding_paths()
    print(f"{paper}: {len(paths)} rounding paths: {', '.join(p.name for p in paths)}")
    snakemake = Path(sys.executable).parent / "snakemake"
    runs, per_path = [], {}
    for path in paths:
        root = Path(results) / "calibration" / path.name
        print(f"{paper}: running the {profile} DAG with {path.env or 'no overrides'} -> {root}")
        done = subprocess.run(
            [
                str(snakemake),
                f"-c{cores}",
                paper,
                "--config",
                f"profile={profile}",
                f"results={root}",
                *(["--forcerun", *forcerun] if forcerun else []),
            ],
            cwd=repo_root(),
            env={**os.environ, **path.env},
        )
        if done.returncode != 0:
            raise RuntimeError(f"{paper}: the {path.name} run failed; see its log above")
        seen = _observed(results_dir(profile, paper, root))
        runs.append(seen)
        per_path[path.name] = regress.flat_metrics(seen)
    earlier = {}
    if keep_earlier:
        earlier = regress.earlier_paths(
            json.loads(record_path.read_text()), regress.read_baseline(target), runs[0]
        )
        print(f"{paper}: keeping {len(earlier)} earlier paths: {', '.join(earlier)}")
    table = regress.baseline_from_runs(runs, list(earlier.values()))
    regress.write_baseline(
        table,
        target,
        {
            "paper": paper,
            "profile": profile,
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": provenance.host_info(),
            "git": provenance.git_state(),
            "rounding_paths": {p.name: p.env for p in paths},
            "values": per_path | earlier,
        },
    )
    noisy = table[table["spread"] > 0]
    print(f"{paper}: baseline {target} written; {len(noisy)} of {len(table)} metrics vary")
    for row in noisy.itertuples(index=False):
        print(f"  {row.metric}: spread {row.spread:.3g}, tolerance {row.tolerance:.3g}")


def cmd_summary(args) -> int:
    csvs = {Path(c).parent.name: c for c in args.claims}
    print(report.summary(args.profile, csvs, args.out))
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s"
    )
    args = build_parser().parse_args(argv)
    try:
        if args.command == "list":
            print("\n".join(known_papers()))
            return 0
        if args.command == "run":
            from .steps import parse_opts, run_step  # torch loads only for steps that compute

            run_step(
                args.paper,
                args.step,
                profile=args.profile,
                outdir=args.outdir,
                threads=args.threads,
                opts=parse_opts(args.opt),
                inputs=args.input,
                outputs=args.output,
                reads=args.reads,
            )
            return 0
        if args.command == "claims":
            return cmd_claims(args)
        if args.command == "regress":
            return cmd_regress(args)
        if args.command == "report":
            metrics = load_metrics(args.metrics) if args.metrics else None
            parts = (args.paper, args.profile, args.claims)
            report.paper_report(*parts, args.figures, args.out, metrics)
            if args.html:
                report.claims_html(*parts, args.html, metrics)
            if args.front:
                report.front_page_rst(*parts, args.front, metrics)
            return 0
        if args.command == "summary":
            return cmd_summary(args)
        if args.command == "resources":
            return cmd_resources(args)
    except (ConfigError, UnknownPaperError, FileNotFoundError, RuntimeError) as err:
        print(f"sltrepro: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
