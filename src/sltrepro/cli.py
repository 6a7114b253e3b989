"""The ``sltrepro`` command: run pipeline steps, check claims, regress, report."""

import argparse
import logging
import sys
from pathlib import Path

from . import report
from .claims import (
    check_claims,
    count_passing,
    format_table,
    load_claims,
    load_metrics,
    regress,
    split_kinds,
)
from .config import DEFAULT_PROFILE, PROFILES, ConfigError
from .paths import UnknownPaperError, known_papers, paper_dir, results_dir


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
    run.add_argument("--input", action="extend", nargs="+", default=[], metavar="PATH")

    claims = sub.add_parser("claims", help="check a paper's claims; exit 1 if any fails")
    claims.add_argument("paper")
    _add_profile(claims)
    claims.add_argument("--metrics", help="metrics.json (default: in the results folder)")
    claims.add_argument("--out", help="also write the table as CSV here")
    claims.add_argument(
        "--no-fail", action="store_true", help="exit 0 even when a claim fails (for the DAG)"
    )

    reg = sub.add_parser("regress", help="compare claims.csv with the accepted baseline")
    reg.add_argument("paper", help="a paper, or 'all'")
    _add_profile(reg)
    reg.add_argument("--update", action="store_true", help="accept the current values")

    rep = sub.add_parser("report", help="write a paper's report.md")
    rep.add_argument("paper")
    _add_profile(rep)
    rep.add_argument("--claims", required=True)
    rep.add_argument("--out", required=True)
    rep.add_argument("--figures", nargs="*", default=[], help="figures to show, in order")

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
    papers = known_papers() if args.paper == "all" else [args.paper]
    status = 0
    for paper in papers:
        current_path = results_dir(args.profile, paper, args.results) / "claims.csv"
        baseline_path = paper_dir(paper) / "baselines" / f"{args.profile}.csv"
        if not current_path.exists():
            print(f"{paper}: {current_path} missing; run the {args.profile} pipeline first")
            status = 1
            continue
        current = report.read_claims_csv(current_path)
        if args.update:
            baseline_path.parent.mkdir(parents=True, exist_ok=True)
            # status too: a claim accepted as failing (with its reason) is part of the record
            kept = [c for c in ("claim", "metric", "reproduced", "status") if c in current]
            current[kept].to_csv(baseline_path, index=False)
            print(f"{paper}: baseline {baseline_path} updated")
            continue
        if not baseline_path.exists():
            print(f"{paper}: no baseline {baseline_path}; accept one with --update")
            status = 1
            continue
        moved = regress(load_claims(paper), current, report.read_claims_csv(baseline_path))
        if moved:
            status = 1
            print(f"{paper}: {len(moved)} value(s) moved from {baseline_path}:")
            print("\n".join(f"  {m}" for m in moved))
        else:
            print(f"{paper}: matches {baseline_path}")
    return status


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
                results_root=args.results,
            )
            return 0
        if args.command == "claims":
            return cmd_claims(args)
        if args.command == "regress":
            return cmd_regress(args)
        if args.command == "report":
            report.paper_report(args.paper, args.profile, args.claims, args.figures, args.out)
            return 0
        if args.command == "summary":
            return cmd_summary(args)
    except (ConfigError, UnknownPaperError, FileNotFoundError) as err:
        print(f"sltrepro: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
