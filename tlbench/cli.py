"""The `tlbench` command line.

Exit codes: 0 all runs ok; 1 some runs failed (all others recorded and reported), or
`report` or `merge` skipped invalid records (each named in a warning; the valid ones are
reported); 2 a usage, suite or plugin error (nothing run); 3 an internal error (a bug in
tlbench or a plugin); 130 interrupted by Ctrl-C, 143 stopped by SIGTERM (as Slurm and
Kubernetes stop a job): finished runs are kept, the runs in progress recorded as
interrupted, and the same command goes on. Heavy libraries are imported only by the
commands that need them, so `tlbench --help` and `tlbench list` stay fast.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import os
import sys
from pathlib import Path

from . import __version__
from .errors import UserError
from .wording import count


def _registry(modules=(), asked_by: Path | None = None):
    """The plugin registry, its problems printed as warnings; a module the suite at
    `asked_by` names in ``suite.plugins`` that cannot be loaded is an error instead."""
    from .errors import SuiteError
    from .plugins import PluginRegistry

    registry = PluginRegistry.load(modules)
    asked = [problem for problem in registry.problems
             if asked_by is not None and problem.origin is not None and problem.origin.plugin in modules]
    if asked:
        raise SuiteError(f"{asked_by}: suite.plugins: {str(asked[0]).removesuffix('; skipped')}")
    for problem in registry.problems:
        print(f"tlbench: warning: {problem}", file=sys.stderr)
    return registry


# ---------------------------------------------------------------------- list


def cmd_list(args) -> int:
    from .plugins import PLURAL

    if args.kind and args.name is None:
        raise UserError("--kind: name an item too, e.g. tlbench list NAME --kind KIND")
    registry = _registry()
    if args.name is not None:
        return _list_one(registry, args.name, (args.kind,) if args.kind else tuple(PLURAL), args.json)
    if args.json:
        print(json.dumps(registry.to_json(), indent=2))
        return 0
    for kind, plural in PLURAL.items():
        items = registry.items(kind)
        print(f"{plural} ({len(items)}):")
        width = max((len(reg.name) for reg in items), default=0)
        for reg in items:
            print(f"  {reg.name:<{width}}  v{reg.item.version:<4} [{reg.origin}]  {reg.item.description}")
        print()
    print("tlbench list NAME shows an item's parameters, metrics and requirements")
    return 0


def _list_one(registry, name: str, kinds: tuple[str, ...], as_json: bool) -> int:
    """Every item called `name` among `kinds` (a target and a source may share a name):
    its schema as text, or as the JSON `tlbench list --json` gives it (one object; a list
    of them when several kinds share the name)."""
    from .reference import describe, find, item_json, item_text

    found = find(registry, name, kinds)
    if as_json:
        items = [item_json(registry, reg) for reg in found]
        print(json.dumps(items[0] if len(items) == 1 else items, indent=2))
        return 0
    print("\n\n".join(item_text(describe(reg)) for reg in found))
    return 0


# ---------------------------------------------------------------------- run


def _load_suite(path: str, out: str | None):
    """The suite and the plugins it needs. Its relative paths resolve against its folder
    (`plan.suite`); `--out` against the working directory."""
    from .plan.suite import load_suite, suite_folder, suite_plugins

    suite_path = Path(path)
    if suite_path.parent.is_dir():  # plugin modules may sit next to the suite
        sys.path.insert(0, str(suite_folder(suite_path)))
    registry = _registry(suite_plugins(suite_path), asked_by=suite_path)
    return load_suite(suite_path, registry, output=out), registry


def cmd_run(args) -> int:
    """`tlbench run`, with SIGTERM taking Ctrl-C's path (exit 143 instead of 130)."""
    from .run.executors.stopped import sigterm_as_interrupt

    with sigterm_as_interrupt():
        return _run(args)


def _run(args) -> int:
    from .outputs import check_directory
    from .plan.suite import check_device

    suite, registry = _load_suite(args.suite, args.out)
    if args.device is not None:
        check_device(args.device, "--device")
    check_directory(suite.output, "--out" if args.out else f"{suite.path}: suite.output (the result directory)")
    check_directory(suite.cache_dir, "cache directory (suite.cache_dir or TLBENCH_CACHE_DIR)")
    if args.dry_run:
        return _dry_run(suite, registry)
    from .report import build_report
    from .run.executors.devices import parse_devices
    from .run.executors.stopped import exit_code_of
    from .runner import run_suite

    devices = parse_devices(args.devices)
    try:
        summary = run_suite(suite, registry, executor=args.executor, jobs=args.jobs, devices=devices,
                            address=args.address, retry_failed=args.retry_failed, device=args.device,
                            threads=args.threads)
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM (`stopped.Terminated`)
        print(f"tlbench: {str(interrupt) or 'interrupted'}; finished runs are recorded, run the same command "
              f"to continue", file=sys.stderr)
        return exit_code_of(interrupt)
    report = build_report([suite.output], suite.output, title=suite.name)
    print(report.markdown)
    print(f"{summary.planned} runs planned: {summary.skipped} already done, {summary.executed} executed "
          f"({summary.ok} ok, {len(summary.failed) - summary.kept_failures} failed)"
          + (f", {summary.kept_failures} failures kept (--no-retry)" if summary.kept_failures else ""))
    if summary.failed:
        from .wording import baseline_label

        print("failed runs:")
        for record in summary.failed:
            spec = record["spec"]
            source = baseline_label(spec["source"]["id"]) if spec.get("baseline") else spec["source"]["id"]
            recipe = (spec.get("strategy") or spec.get("estimator"))["id"]
            label = f"{source} → {spec.get('group') or spec['target']['id']} · {recipe} · seed {spec['seed']}"
            reason = (record.get("error") or {}).get("message", "")
            print(f"  {record['status']:<11} {label}: {reason}")
    print(f"results: {', '.join(str(p) for p in report.files)}")
    return summary.exit_code


def _dry_run(suite, registry) -> int:
    """Check the suite as far as can be done cheaply and offline (`plan.planner.check_suite`:
    plugins' checks, targets' data, labels and image headers; no model built, nothing
    downloaded or written), then print the matrix. Every problem is one line; exit 2."""
    from .plan.matrix import expand
    from .plan.planner import check_suite
    from .runner import check_runs_something

    unloaded = check_suite(suite, registry, lambda message: print(message, file=sys.stderr))
    planned = expand(suite, registry)
    specs = planned.specs
    for spec in [*specs, *planned.finals]:
        kind = "trial" if spec.kind == "trial" else "baseline" if spec.baseline else \
            "final" if spec.search else spec.kind
        print(f"{kind:<10}{spec.label()}")
    for exclusion in planned.exclusions:
        print(f"{'left out':<10}{exclusion}")
    check_runs_something(suite, planned)
    for line in unloaded:
        print(f"tlbench: note: {line}", file=sys.stderr)
    every = [*specs, *planned.finals]
    baselines = sum(spec.baseline and spec.kind == "run" for spec in every)
    estimates = sum(spec.kind == "estimate" for spec in every)
    trials = sum(spec.kind == "trial" for spec in every)
    runs = len(every) - baselines - estimates - trials
    multitask = sum(spec.kind == "multitask" for spec in every)
    line = (f"{len(every)} runs: {runs} transfer runs"
            + (f", {multitask} of them multi-task" if multitask else "") + " ("
            f"{count(len(suite.sources), 'source')} × {count(len(suite.targets), 'target')}"
            + (f" and {count(len(suite.groups), 'group')}" if suite.groups else "")
            + f" × {count(len(suite.strategies), 'strategy', 'strategies')} × {count(len(suite.seeds), 'seed')}"
            + (f", {len(planned.exclusions)} left out" if planned.exclusions else "")
            + f") + {baselines} from-scratch baselines")
    if trials:
        line += f" + {count(trials, 'search trial')}"
    if estimates:
        line += f" + {estimates} transferability estimates"
    print(f"{line}; output {suite.output}")
    if trials:
        print(search_cost(specs, planned.finals))
    return 0


def search_cost(specs, finals) -> str:
    """What the selection protocol costs, in runs and in training epochs (where the
    recipes say how many): (trials + finals) / finals."""
    trials = [spec for spec in specs if spec.kind == "trial"]

    def epochs(group) -> int | None:
        values = [spec.recipe.params.get("epochs") for spec in group]
        values = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
        return sum(values) if values else None

    ratio = (len(trials) + len(finals)) / max(1, len(finals))
    line = (f"search: {count(len(trials), 'trial')} then {count(len(finals), 'final')}, "
            f"(trials + finals) / finals = {ratio:.1f}× the finals alone")
    trial_epochs, final_epochs = epochs(trials), epochs(finals)
    if trial_epochs is not None and final_epochs is not None:
        line += (f"; {trial_epochs + final_epochs:,} training epochs where recipes count them ({trial_epochs:,} in "
                 f"trials, {final_epochs:,} in finals)")
    return line


# ---------------------------------------------------------------------- report


def cmd_report(args) -> int:
    from .report import build_report

    from .results.collect import kind_folders, record_files

    for directory in map(Path, args.dirs):
        if not directory.is_dir():
            raise UserError(f"{directory}: not a directory; expected a result directory" if directory.exists()
                            else f"{directory}: no such result directory")
        if not any(record_files(directory, folder) for _, folder in kind_folders(directory)):
            raise UserError(f"{directory}: no records in it; expected a result directory (runs/, estimates/) "
                            f"or a folder of run records")
    out = Path(args.out) if args.out else Path(args.dirs[0])
    if args.out:
        from .outputs import check_directory

        check_directory(out, "--out")
    report = build_report([Path(d) for d in args.dirs], out, title=args.title, rope=args.rope,
                          posthoc=args.posthoc)
    for problem in report.problems:
        print(f"tlbench: warning: {problem}", file=sys.stderr)
    print(report.markdown)
    skipped = f", {len(report.problems)} invalid records skipped" if report.problems else ""
    print(f"{report.n_records} records{skipped}; wrote {', '.join(str(p) for p in report.files)}")
    return 1 if report.problems else 0


def cmd_merge(args) -> int:
    from .results.merge import merge_dirs
    from .outputs import check_directory, check_not_inside
    from .report import build_report

    check_not_inside(args.out, args.dirs, "--out")
    check_directory(args.out, "--out")
    result = merge_dirs([Path(d) for d in args.dirs], Path(args.out))
    for problem in result.problems:
        print(f"tlbench: warning: {problem}", file=sys.stderr)
    if args.verbose:
        for duplicate in result.duplicates:
            print(f"tlbench: {'note' if duplicate.identical else 'warning'}: {duplicate}", file=sys.stderr)
    for directory, n_valid in result.per_input.items():
        duplicates = result.duplicates_summary(directory)
        print(f"{directory}: {n_valid} valid records" + (f"; {duplicates}" if duplicates else ""))
    identical = sum(d.identical for d in result.duplicates)
    print(f"merged into {result.out}: {result.written} records written, {result.unchanged} already there, "
          f"{len(result.duplicates)} duplicates kept once ({identical} identical), "
          f"{len(result.problems)} invalid records skipped")
    report = build_report([result.out], result.out, title=args.title)
    for note in report.kept_apart:
        print(f"tlbench: kept apart: {note}", file=sys.stderr)
    print(f"{report.n_records} records; wrote {', '.join(str(p) for p in report.files)}")
    return 1 if result.problems else 0


def cmd_validate(args) -> int:
    from .results.validate import cmd_validate as validate

    return validate(args)


def cmd_publish(args) -> int:
    from .site.publish import cmd_publish as publish

    return publish(args)


# ---------------------------------------------------------------------- main


class _Parser(argparse.ArgumentParser):
    """argparse with a usage mistake told in one line; the full usage is one --help away."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _jobs(text: str) -> int | None:
    """``--jobs``: a positive number of workers, or ``auto`` (None: `executors.capacity` decides)."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected auto or a positive integer, got {text!r}")
    return value


def _rope(text: str) -> float:
    """``--rope``: a width ≥ 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number ≥ 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tlbench", description="Benchmark transfer-learning strategies: every source × target × "
                                    "strategy × seed, with from-scratch baselines, into leaderboards.")
    parser.add_argument("--version", action="version", version=f"tlbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a suite (skips runs already done)")
    run.add_argument("suite", help="suite file (TOML), e.g. suites/quickstart.toml")
    run.add_argument("--out", help="result directory (default: the suite's, reports/<name>/)")
    run.add_argument("--dry-run", action="store_true",
                     help="check the suite, print the run matrix and its size; load no model or data, run nothing")
    run.add_argument("--jobs", "-j", type=_jobs, default=None, metavar="N|auto",
                     help="local worker processes (default auto: one per GPU, else one per core as far as "
                          "memory allows; the progress header says how many and why)")
    run.add_argument("--executor", choices=("local", "inline", "ray"), default="local",
                     help="local worker processes (default), inline in this process (debugging), or ray")
    run.add_argument("--address", help="Ray cluster address (with --executor ray; default: start a local one)")
    run.add_argument("--devices", help="comma-separated devices for the workers, e.g. cuda:0,cuda:1")
    run.add_argument("--device", help="override the suite's device (auto, cpu, cuda, cuda:N)")
    run.add_argument("--threads", type=int, help="intra-op threads of each run (default: 1 on the CPU, "
                                                 "so results do not depend on --jobs; cores / jobs on GPUs)")
    retry = run.add_mutually_exclusive_group()
    retry.add_argument("--retry-failed", dest="retry_failed", action="store_true", default=True,
                       help="redo runs whose record is a failure (default)")
    retry.add_argument("--no-retry", dest="retry_failed", action="store_false",
                       help="keep failed records as they are")
    run.set_defaults(handler=cmd_run)

    from .api import ITEM_KINDS  # the contract alone: a leaf, no heavy import

    lst = sub.add_parser("list", help="list sources, targets, strategies and estimators of all plugins, "
                                      "or one item's parameters")
    lst.add_argument("name", nargs="?", help="show this item's parameters, metrics and requirements "
                                             "(every kind that has an item of this name)")
    lst.add_argument("--kind", choices=tuple(ITEM_KINDS), help="only the item of this kind (with NAME)")
    lst.add_argument("--json", action="store_true",
                     help="print JSON: every plugin and item, or with NAME that item's (a list when several "
                          "kinds share the name)")
    lst.set_defaults(handler=cmd_list)

    report = sub.add_parser("report", help="rebuild the leaderboard from result directories")
    report.add_argument("dirs", nargs="+", help="result directories (each with runs/)")
    report.add_argument("--out", help="where to write (default: the first directory)")
    report.add_argument("--title", help="the leaderboard's title (default: the last report's, or the names)")
    report.add_argument("--rope", type=_rope, default=None, metavar="WIDTH",
                        help="region of practical equivalence of the Bayesian signed-rank tests, in the headline's "
                             "units (default 0.01: one point of a metric reported as a fraction)")
    report.add_argument("--posthoc", choices=("wilcoxon-holm", "nemenyi"), default="wilcoxon-holm",
                        help="the post-hoc test of the critical-difference groups (default wilcoxon-holm: its verdict "
                             "on two methods does not depend on the others compared; nemenyi: Demšar's)")
    report.set_defaults(handler=cmd_report)

    merge = sub.add_parser("merge", help="combine result directories from several machines into one")
    merge.add_argument("dirs", nargs="+", help="result directories (each with runs/)")
    merge.add_argument("--out", required=True, help="the merged result directory (created; its records are kept)")
    merge.add_argument("--title", help="the merged leaderboard's title")
    merge.add_argument("--verbose", "-v", action="store_true",
                       help="list every duplicate record (by default one line per input directory counts them)")
    merge.set_defaults(handler=cmd_merge)

    validate = sub.add_parser("validate", help="check a result directory before it is published or submitted")
    validate.add_argument("dirs", nargs="+", help="result directories (each with runs/)")
    validate.add_argument("--against", help="a site built by `tlbench publish`: also check plugin versions "
                                            "against what it already has")
    validate.set_defaults(handler=cmd_validate)

    publish = sub.add_parser("publish", help="build a static, versioned website from result directories")
    publish.add_argument("dirs", nargs="+", help="result directories (each with runs/)")
    publish.add_argument("--out", required=True, help="the site's directory (created; earlier releases are kept)")
    publish.add_argument("--title", help="the suite's title on the site (default: its report's title)")
    publish.set_defaults(handler=cmd_publish)
    return parser


def main(argv: list[str] | None = None) -> int:
    # At exit, before the interpreter's shutdown: it then skips a last walk over every
    # object torch, pandas and matplotlib made (a second or more); objects alive at exit
    # are not promised their finalizers anyway.
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
    args = build_parser().parse_args(argv)
    for flag in ("jobs", "threads"):
        value = getattr(args, flag, None)
        if value is not None and value < 1:
            print(f"tlbench: error: --{flag}: expected a positive integer", file=sys.stderr)
            return 2
    if getattr(args, "out", None) is not None and not args.out.strip():
        print("tlbench: error: --out: expected a directory, got an empty path", file=sys.stderr)
        return 2
    try:
        return args.handler(args)
    except UserError as exc:
        print(f"tlbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # whoever read stdout stopped reading (`tlbench list | head`): not an error here
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail again
        return 141  # 128 + SIGPIPE, as a program killed by it returns
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM during `tlbench run` (exit code 143)
        print(f"tlbench: {str(interrupt) or 'interrupted'}", file=sys.stderr)
        return getattr(interrupt, "exit_code", 130)
    except Exception as exc:
        if os.environ.get("TLBENCH_DEBUG"):
            raise
        print(f"tlbench: internal error: {type(exc).__name__}: {exc} — this is a bug; "
              f"TLBENCH_DEBUG=1 shows the traceback", file=sys.stderr)
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
