/**
 * The embedded default of `gcsctl`: our guest, in this process, reaching the
 * host over hybrid-vsock-style Unix sockets in a private directory — the same
 * code path as a Firecracker / Cloud Hypervisor VM, minus the VM.
 */
import { Guest } from "@gcs-bridge/guest"
import type { ProtocolError } from "@gcs-bridge/protocol"
import { HybridAddress, type Transport, type TransportError, UnixAddress } from "@gcs-bridge/transport"
import { Effect, type Fiber, type Scope } from "effect"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { EmbeddedGuestError } from "../CliError.js"

/** Where the host listens, and the guest's fiber (which ends only by failing or being interrupted). */
export interface EmbeddedGuest {
  readonly hostAddress: HybridAddress
  readonly guest: Fiber.Fiber<void, TransportError | ProtocolError.ProtocolError>
}

/**
 * Unix socket paths are limited to 107 bytes; the bridge socket is
 * `<dir>/gcs.sock_1073741824`. A very long TMPDIR falls back to /tmp.
 */
const socketRoot = (): string => (tmpdir().length <= 60 ? tmpdir() : "/tmp")

/**
 * A 0700 directory (mkdtemp's mode) that lives as long as the scope: the
 * sockets in it are reachable by this user only, and it is removed at the end.
 */
const privateDirectory: Effect.Effect<string, EmbeddedGuestError, Scope.Scope> = Effect.acquireRelease(
  Effect.tryPromise({
    try: () => mkdtemp(join(socketRoot(), "gcsctl-")),
    catch: (error) =>
      new EmbeddedGuestError({
        message: `cannot create a private directory for the embedded guest: ${error instanceof Error ? error.message : String(error)}`
      })
  }),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

/**
 * Starts the embedded guest in the background of the current scope. The host
 * must listen on `hostAddress`; the guest dials `unix://<dir>/gcs.sock`,
 * which reaches the host's `<dir>/gcs.sock_<port>` sockets, and serves one
 * bridge connection. Closing the scope stops the guest (killing what it runs)
 * and then removes the directory.
 */
export const startEmbeddedGuest: Effect.Effect<EmbeddedGuest, EmbeddedGuestError, Transport | Scope.Scope> =
  Effect.gen(function* () {
    const dir = yield* privateDirectory
    const path = join(dir, "gcs.sock")
    const guest = yield* Effect.forkScoped(Guest.run({ address: new UnixAddress({ path }), once: true }))
    return { hostAddress: new HybridAddress({ path }), guest }
  })
