/**
 * A "container" of this guest: an init command with its working directory and
 * environment (from the Create request's OCI spec), and the processes started
 * in it. There is no isolation of any kind: no namespaces, no cgroups, no
 * root filesystem — the processes run on this machine as the guest's user.
 */
import type { Deferred, Option, Scope } from "effect"
import * as Failure from "./failure.js"
import type { GuestFailure } from "./failure.js"
import type { GuestProcess } from "./process.js"

/** The `Type` of the exit notification (§9.1). */
export type ExitType = "UnexpectedExit" | "GracefulExit" | "ForcedExit"

/** What an OCI `process` object says, read leniently like Go's decoder. */
export interface OciProcessSpec {
  readonly argv: ReadonlyArray<string>
  readonly env: Readonly<Record<string, string>>
  /** Empty when the spec gave none. */
  readonly cwd: string
  readonly terminal: boolean
}

/** Mutable state of one container. */
export interface ContainerState {
  readonly id: string
  /** The Create request's ActivityId, echoed in the exit notification. */
  readonly activityId: string
  readonly init: OciProcessSpec
  /** Owns every process of the container. */
  readonly scope: Scope.Closeable
  readonly createdAt: number
  /** Completed with the init process once it started. */
  readonly initStarted: Deferred.Deferred<GuestProcess>
  /** Completed when a WaitForProcess on the init process obtained its exit code. */
  readonly initWaited: Deferred.Deferred<void>
  /** Completed by ShutdownGraceful/Forced: the init's output stops re-dialling a lost host (§14.4). */
  readonly shutDown: Deferred.Deferred<void>
  initProcess: GuestProcess | undefined
  /** An init start is in progress (its stdio is being dialled). */
  initStarting: boolean
  /** Shut down before its init process ever ran: it never will. */
  stoppedBeforeStart: boolean
  exitType: ExitType
  /** Exec'd processes whose record was not released yet, by pid. */
  readonly processes: Map<number, GuestProcess>
  /** Last ContainerConstraints settings accepted (recorded, not enforced). */
  constraints: Option.Option<unknown>
}

/** Go's `env` handling turned into a Node environment: `K=V` entries, later ones win; entries without `=` are dropped. */
export const envFromOci = (entries: ReadonlyArray<string>): Record<string, string> => {
  const env: Record<string, string> = {}
  for (const entry of entries) {
    const eq = entry.indexOf("=")
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1)
  }
  return env
}

const isStringArray = (u: unknown): u is ReadonlyArray<string> =>
  Array.isArray(u) && u.every((s) => typeof s === "string")

/**
 * Reads the fields of an OCI `process` object this guest uses. Absent or
 * `null` fields are their zero values (Go semantics); a field of the wrong
 * JSON type is invalid JSON for the Linux GCS (`0xC037010D`).
 */
export const readOciProcess = (what: string, raw: unknown): OciProcessSpec | GuestFailure => {
  if (!isObject(raw)) return Failure.wrap(Failure.Hr.InvalidJson, `${what} is not a JSON object`)
  const o = raw
  const bad = (field: string, expected: string) =>
    Failure.wrap(Failure.Hr.InvalidJson, `${what}.${field}: expected ${expected}`)
  const args = o["args"] ?? []
  if (!isStringArray(args)) return bad("args", "an array of strings")
  const env = o["env"] ?? []
  if (!isStringArray(env)) return bad("env", "an array of strings")
  const cwd = o["cwd"] ?? ""
  if (typeof cwd !== "string") return bad("cwd", "a string")
  const terminal = o["terminal"] ?? false
  if (typeof terminal !== "boolean") return bad("terminal", "a boolean")
  return { argv: args, env: envFromOci(env), cwd, terminal }
}

/** What this guest reads of an OCI runtime spec: the objects the Linux GCS dereferences, and the init process. */
export interface OciSpecShape {
  readonly linux: boolean
  readonly root: boolean
  readonly process: OciProcessSpec | undefined
}

const isObject = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * Reads an OCI runtime spec as Go's decoder does: absent or `null` is a nil
 * pointer (`undefined` here, and `false` / `undefined` for its `linux`, `root`,
 * `process`); a field of the wrong JSON type is invalid JSON (`0xC037010D`).
 */
export const readOciSpec = (raw: unknown): OciSpecShape | GuestFailure | undefined => {
  if (raw === undefined || raw === null) return undefined
  if (!isObject(raw)) return Failure.wrap(Failure.Hr.InvalidJson, "OciSpecification is not a JSON object")
  for (const field of ["linux", "root"]) {
    const value = raw[field]
    if (value != null && !isObject(value)) {
      return Failure.wrap(Failure.Hr.InvalidJson, `OciSpecification.${field} is not a JSON object`)
    }
  }
  const process =
    raw["process"] == null ? undefined : readOciProcess("OciSpecification.process", raw["process"])
  if (process instanceof Failure.GuestFailure) return process
  return { linux: raw["linux"] != null, root: raw["root"] != null, process }
}

/** The init process, or an exec'd process whose record is kept, by pid. */
export const findProcess = (container: ContainerState, pid: number): GuestProcess | undefined =>
  container.initProcess?.pid === pid ? container.initProcess : container.processes.get(pid)
