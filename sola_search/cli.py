"""The `sola-search` command: argument parsing and printing only; each command calls into one package.

Bad input (a `SolaError`, or an argparse error) is one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import json
import sys

from sola_search.errors import SolaError

LINEAR_MARK, SOFTMAX_MARK = "·", "S"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _resolution(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"resolution {text!r}: expected a whole number of pixels, e.g. 224") from None
    if not 32 <= value <= 4096:
        raise argparse.ArgumentTypeError(f"resolution {value}: expected 32 to 4096 pixels")
    return value


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2))


# --- space ------------------------------------------------------------------------------------
def cmd_show(args: argparse.Namespace) -> int:
    from sola_search.space import get_variant, model_cost, resolve_pattern

    v = get_variant(args.variant)
    p = resolve_pattern(args.pattern, v)
    cost = model_cost(v, p, args.resolution)
    info = dict(pattern=str(p), variant=v.name, resolution=args.resolution, macs=cost.macs,
                gmacs=round(cost.gmacs, 4), gflops=round(cost.gflops, 4), params=cost.params,
                softmax_layers=p.softmax_layers, blocks=v.num_blocks, layer_types=p.layer_types)
    if args.json:
        _print_json(info)
        return 0
    print(f"{p}   variant {v.name}, {args.resolution}px")
    side = args.resolution
    for i, (stage, dim, heads) in enumerate(zip(p.stages, v.dims, v.heads)):
        side = (side - 1) // 2 + 1 if i else (((side - 1) // 2 + 1) - 1) // 2 + 1
        marks = " ".join(SOFTMAX_MARK if c == "S" else LINEAR_MARK for c in stage)
        print(f"  stage {i + 1}  {marks:<{2 * max(v.depths)}}  {dim} ch, {heads} heads, {side}×{side} tokens")
    print(f"  ({LINEAR_MARK} linear, {SOFTMAX_MARK} softmax)")
    print(f"softmax layers  {p.softmax_layers} of {v.num_blocks}")
    print(f"MACs            {cost.gmacs:.3f} G   ({cost.gflops:.3f} GFLOPs)")
    print(f"params          {cost.mparams:.2f} M")
    return 0


def cmd_space(args: argparse.Namespace) -> int:
    from sola_search.space import VARIANTS, Budget, FeasibleSet, baselines, get_variant

    budget = Budget.parse(args.budget) if args.budget else None
    names = [get_variant(args.variant).name] if args.variant else list(VARIANTS)
    rows = []
    for name in names:
        v = VARIANTS[name]
        row = dict(variant=name, dims=list(v.dims), depths=list(v.depths), heads=list(v.heads),
                   blocks=v.num_blocks, patterns=2**v.num_blocks)
        if budget is not None:
            row["budget"] = str(budget)
            row["feasible"] = FeasibleSet(v, budget, args.resolution).count()
            row["baselines"] = {n: str(p) for n, p in baselines(v, budget, args.resolution).items()}
        rows.append(row)
    if args.json:
        _print_json(rows)
        return 0
    for r in rows:
        line = (f"{r['variant']:<6} dims {'-'.join(map(str, r['dims'])):<16} depths {'-'.join(map(str, r['depths'])):<9}"
                f" heads {'-'.join(map(str, r['heads'])):<8} {r['blocks']:>2} blocks  {r['patterns']:,} patterns")
        if budget is not None:
            line += f"  {r['feasible']:,} within {r['budget']} at {args.resolution}px"
        print(line)
        if budget is not None and args.variant:
            for n, p in r["baselines"].items():
                print(f"    baseline {n:<14} {p}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sola-search", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("show", help="draw a pattern with its MACs, GFLOPs, params and softmax count")
    p.add_argument("pattern", help="text form (LL-LS-LLSLLS-SS), a baseline name (late-stages) or a pattern file")
    p.add_argument("--variant", default="tiny", help="micro, tiny, small or base (default tiny)")
    p.add_argument("--resolution", type=_resolution, default=224, help="input size in pixels (default 224)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("space", help="variants, blocks per stage and the number of feasible patterns")
    p.add_argument("--variant", help="one variant (default: all)")
    p.add_argument("--budget", help="e.g. 8softmax or 8softmax,2.5gmacs")
    p.add_argument("--resolution", type=_resolution, default=224, help="input size in pixels (default 224)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_space)
    return parser


def _version() -> str:
    from sola_search import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except SolaError as e:
        print(f"sola-search: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sola-search: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
