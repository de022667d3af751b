/**
 * Issue 10's targets, judged on the figures of one run: our figure, the
 * reference (or floor) measured in the same run, the Go host's figure beside
 * it, a verdict, and for a missed target why — from the same run's data, so
 * that the reader sees whether Node itself is the ceiling.
 */
import { fmt, verdict } from "./measure.js"
import type { Target } from "./types.js"

/** What is judged, and how to say why when it is missed. */
export interface TargetSpec {
  readonly target: string
  readonly value: number
  readonly limit: number
  readonly unit: string
  /** `value ≥ limit` is met (a share); otherwise `value ≤ limit` (CPU, memory). */
  readonly atLeast?: boolean
  /** Our figure as shown; by default the value and its unit. */
  readonly ours?: string
  readonly reference: string
  readonly go: string
  /** Why it is missed; called only when it is. */
  readonly why: () => string
}

/** Judges one target. */
export const judge = (spec: TargetSpec): Target => {
  const met = spec.atLeast === true ? spec.value >= spec.limit : spec.value <= spec.limit
  return {
    target: spec.target,
    value: spec.value,
    limit: spec.limit,
    unit: spec.unit,
    met,
    ours: spec.ours ?? `${fmt(spec.value)} ${spec.unit}`,
    reference: spec.reference,
    go: spec.go,
    ...(met ? {} : { why: spec.why() })
  }
}

/** Said in place of a profile by a `--quick` run, which takes none. */
export const NoProfile = "(Profiles are taken by a full run only.)"

/**
 * Why a cost above its limit is missed, against its floor (what bare Node
 * sockets cost for the same work in the same run): a floor above the limit
 * means Node itself is the ceiling; below it, the difference is the bridge's,
 * and `profile` says where it goes.
 */
export const floorWhy = (o: {
  readonly ours: number
  readonly floor: number
  readonly limit: number
  readonly unit: string
  readonly floorName: string
  readonly profile: string | undefined
  /** Another floor of the same work, said between the Node floor and the profile. */
  readonly beside?: string
}): string => {
  const gap = o.ours >= o.floor ? `ours is ${fmt(o.ours - o.floor)} ${o.unit} above it` : "ours is below it"
  const head =
    o.floor > o.limit
      ? `Node's floor is above the target: with ${o.floorName} the same work costs ${fmt(o.floor)} ${o.unit} ` +
        `in this run (target ${fmt(o.limit)}); ${gap}.`
      : `Not Node's floor: with ${o.floorName} the same work costs ${fmt(o.floor)} ${o.unit} in this run; ` +
        `${gap}: the bridge's own work.`
  return [head, o.beside, o.profile ?? NoProfile].filter((part) => part !== undefined).join(" ")
}

/** The "Targets (issue 10)" section on top of RESULTS.md: one row per target, then why each missed one is missed. */
export const renderTargets = (targets: ReadonlyArray<Target>, quick: boolean): string => {
  if (targets.length === 0) return ""
  const missed = targets.filter((t) => !t.met)
  return [
    "## Targets (issue 10)",
    "",
    `${targets.length - missed.length} of ${targets.length} met. Each row is judged on figures of this run (tables ` +
      "below) beside a reference measured in the same run: for a host CPU or memory target, the floor — what a " +
      "bare Node socket costs for the same work. Go host: issue 10's side-by-side run (hcsshim's Go host bridge " +
      "against the genuine Linux guest bridge, 2-core machine of this kind), not measured here." +
      (quick ? " **Quick smoke: sizes far too small to judge anything.**" : ""),
    "",
    "| target | ours | same-run reference | Go host | verdict |",
    "|---|---|---|---|---|",
    ...targets.map(
      (t) =>
        `| ${t.target} | ${t.ours} | ${t.reference} | ${t.go} | ${t.met ? "met" : `**${verdict(false)}**`} |`
    ),
    "",
    ...(missed.length === 0
      ? []
      : [
          "Why each missed target is missed, from the same run:",
          "",
          ...missed.map((t) => `- ${t.target}: ${t.why}`),
          ""
        ])
  ].join("\n")
}
