/**
 * Causes found for failures the stress run shows, each tied to the symptom
 * it explains: a diagnosis is printed only while its symptom is in the
 * results, so a fix makes it disappear from STRESS.md by itself.
 */
import type { FuzzResult } from "./fuzz/run.js"
import type { CellResult } from "./matrix.js"

/** The results a diagnosis looks at. */
export interface Evidence {
  readonly cells: ReadonlyArray<CellResult>
  readonly fuzz: FuzzResult | undefined
  /** The `delay` fault's duration in the matrix. */
  readonly delayMs: number
  /** The matrix's `closeTimeout`. */
  readonly closeTimeoutMs: number
}

interface Diagnosis {
  readonly applies: (e: Evidence) => boolean
  readonly text: string
}

const closeHung = (c: CellResult) => c.records.some((r) => r.step === "close" && r.outcome.kind === "hang")

const diagnoses: ReadonlyArray<Diagnosis> = [
  {
    applies: (e) => e.cells.some((c) => closeHung(c) && (c.step === "create" || c.step === "exec")),
    text:
      "- **Closing the connection deadlocks after a Create or ExecuteProcess that the caller's deadline interrupted and the guest never " +
      "answers** (silent or unknown-id × create/exec: the close never ends; the bridge is never closed, so the guest never sees EOF either). " +
      "`packages/runtime/src/internal/container.ts` `create` and `process.ts` `start` call `reapWhenCreated` / `reapWhenAnswered` from " +
      "`Effect.onInterrupt`, whose handler runs uninterruptibly; `Bridge.background` (`Effect.forkIn(Effect.ignore(effect), scope)`) forks the " +
      "reaper from there, and a fiber inherits its parent's interruptibility, so the reaper is uninterruptible. It waits on the call's " +
      "`Deferred` for an answer that never comes; closing the bridge scope interrupts its fibers in reverse order, reaper first (it was forked " +
      "last), and waits for it — but only the bridge's own close finalizer (`kill`, which fails every pending call) would release it, and that " +
      "runs after. Fix: `Effect.forkIn(Effect.interruptible(Effect.ignore(effect)), scope)` in `Bridge.background` (verified here on a patched " +
      "copy: the close then takes ~16 ms after a create and ~1.1 s after an exec, i.e. bounded by `closeTimeout`)."
  },
  {
    applies: (e) => e.cells.some((c) => c.fdDelta > 0 && !closeHung(c)),
    text:
      "- **A stdio listener's descriptor leaks when the process's scope closes while the listener is being closed** (drop × stdio/wait, " +
      "malformed × exec, oversize × exec: one listening AF_UNIX socket on a stdio port, e.g. `vm_1073741827`, stays open; its socket file is " +
      "gone). `packages/runtime/src/internal/stdio.ts` `open`: the accept fiber ends with `Scope.close(listenerScope, Exit.void)`, which is " +
      "interruptible; the listener's finalizers run in reverse, the async `removeSocketFile` (an `lstat` + `unlink`) first, and when the " +
      "channel is closed in that window (`close` closes `channelScope`, interrupting the accept fiber) the close is abandoned half way: the scope " +
      "is already marked closed, so the remaining finalizer (`core.close()` + `server.close()` / the native listener's `close()`) never runs. " +
      "Both engines. Fix: `Effect.zipRight(Effect.uninterruptible(Scope.close(listenerScope, Exit.void)))` (verified on a patched copy: no " +
      "descriptor left in the same cells). Any `Scope.close` in an interruptible fiber has this hazard."
  },
  {
    applies: (e) =>
      e.fuzz?.findings.some((f) => f.message.includes("Maximum call stack size exceeded")) ?? false,
    text:
      "- **The body decoders throw `RangeError: Maximum call stack size exceeded` on deeply nested JSON** (about 3,000 levels: a 6 KB payload, " +
      "far under the 64 KiB frame limit). `packages/protocol/src/Codec.ts` `decodeValue` describes a failed decode with " +
      "`ParseResult.TreeFormatter.formatIssueSync`, which prints the actual value with effect's `Inspectable.formatUnknown`, recursing without a " +
      "depth bound; `JSON.parse` itself copes. `decodeResponse`, `decodeResponseBase`, `decodeNotification` and the guest's `decodeRequest` " +
      "throw instead of returning `Left(ProtocolError InvalidBody)`. On the host this kills the bridge as a defect: a guest answering " +
      'NegotiateProtocol with `{"Result":[[[…]]]}` 5,000 deep makes `GuestConnection.make` fail with `BridgeClosed` reason `Defect` ' +
      '("bridge reader failed unexpectedly") — defects are for bugs only, and one hostile reply must fail only its call. Fix: bound the ' +
      "description (catch the `RangeError` in `describe` and fall back to the issue's path and a shallow summary, or check the nesting depth " +
      "of the parsed value before decoding)."
  },
  {
    applies: (e) =>
      e.cells.some(
        (c) =>
          c.fault === "delay" &&
          c.records.some((r) => r.step === "negotiate" && r.outcome.kind === "ok" && r.ms < e.delayMs)
      ),
    text:
      "- **The guest's `delay` fault does not delay the NegotiateProtocol answer** (delay × accept/negotiate: the negotiation " +
      "completes in a few ms). `packages/guest/src/internal/session.ts`: the reader answers NegotiateProtocol itself (`negotiate`), " +
      "and only `handle` sleeps `plan.responseDelay`; `Fault.ts` documents `delay` as holding back every response. So a host's " +
      "negotiation is never tested against a slow guest by this fault. Fix: sleep `responseDelay` before the negotiate reply too (in " +
      "a fiber, so the reader is not held up), or document the exception."
  },
  {
    applies: (e) =>
      e.cells.some((c) => c.fault === "none" && c.step === "create" && c.closeMs >= 0.9 * e.closeTimeoutMs),
    text:
      "- Observation (not counted as a failure, the close stays within its bound): closing a container that was created but whose init never " +
      "ran (`none × create`, and every cell whose run stopped between create and the init's exec) takes the whole `closeTimeout`: the scope " +
      "sends ShutdownForced, the guest answers success (the container will never run, and no exit notification follows, as with runc), and " +
      "`container.ts` `attach`'s finalizer then waits for a notification that cannot come. With the default `closeTimeout` that is 30 s per " +
      "such container. The runtime knows whether the init was ever started (it sent the exec) and could skip the wait."
  }
]

/** The diagnoses whose symptom is present. */
export const diagnose = (e: Evidence): ReadonlyArray<string> =>
  diagnoses.filter((d) => d.applies(e)).map((d) => d.text)
