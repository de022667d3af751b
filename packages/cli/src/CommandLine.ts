/**
 * The raw command line of this invocation (without `node` and the script),
 * for the checks `effect/cli` cannot express: `gcsctl run` takes its command
 * only after `--`, and a bare `--container` has an optional value.
 *
 * @since 0.1.0
 */
import { Context } from "effect"

/**
 * The arguments as the user typed them.
 *
 * @since 0.1.0
 */
export class CommandLine extends Context.Service<CommandLine, { readonly args: ReadonlyArray<string> }>()(
  "@gcs-bridge/cli/CommandLine"
) {}

/**
 * The arguments after the first `--`, or undefined when there is none.
 *
 * @since 0.1.0
 */
export const afterDashes = (args: ReadonlyArray<string>): ReadonlyArray<string> | undefined => {
  const at = args.indexOf("--")
  return at < 0 ? undefined : args.slice(at + 1)
}

/**
 * Options whose value is optional. `effect/cli` has such flags only in the
 * `--name=value` form (a bare one never takes the next word), so a bare
 * occurrence (last before `--`, or followed by another option) gets an empty
 * value, which the command reads as "none given".
 */
const optionalValued = new Set(["--container"])

/**
 * The arguments with every bare optional-valued option given an empty value.
 * Only the part before `--` is touched: what follows is the user's command.
 *
 * @since 0.1.0
 */
export const normalizeArgs = (args: ReadonlyArray<string>): ReadonlyArray<string> => {
  const end = args.indexOf("--")
  const head = end < 0 ? args : args.slice(0, end)
  const out: Array<string> = []
  head.forEach((arg, i) => {
    out.push(arg)
    const next = head[i + 1]
    if (optionalValued.has(arg) && (next === undefined || next.startsWith("-"))) out.push("")
  })
  return end < 0 ? out : [...out, ...args.slice(end)]
}
