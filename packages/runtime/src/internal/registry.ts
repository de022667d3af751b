// Containers awaiting their exit notification (§9.3, §10.3). Handles on one id share a signal; released ids
// are remembered a while, so a late notification is "expected" rather than "unknown".
import type { Container as Wire } from "@gcs-bridge/protocol"
import { Deferred, Exit } from "effect"
import { ContainerExit } from "../Container.js"
import type { BridgeClosed } from "../Errors.js"
import type { NotificationRoute } from "./bridge.js"

const maxForgotten = 1024

/** One registration: the exit signal and how many open handles share it. */
export interface Registration {
  readonly id: string
  readonly exit: Deferred.Deferred<ContainerExit>
  /** Drops this handle; the last one unregisters the id. Idempotent per handle. */
  readonly release: () => void
}

interface Entry {
  readonly exit: Deferred.Deferred<ContainerExit>
  refs: number
}

/** The exit-notification registry of one connection. */
export class Registry {
  // Made by the first container: an idle connection holds neither.
  private entries: Map<string, Entry> | undefined
  private forgotten: Set<string> | undefined
  private closed: BridgeClosed | undefined

  /** Registers interest in `id`'s exit. After the bridge died, the signal is already complete. */
  acquire(id: string): Registration {
    const entries = (this.entries ??= new Map())
    const forgotten = (this.forgotten ??= new Set())
    let entry = entries.get(id)
    if (entry === undefined) {
      entry = { exit: Deferred.makeUnsafe<ContainerExit>(), refs: 0 }
      if (this.closed !== undefined) {
        Deferred.doneUnsafe(entry.exit, Exit.succeed(ContainerExit.ConnectionLost({ error: this.closed })))
      } else {
        entries.set(id, entry)
        forgotten.delete(id)
      }
    }
    entry.refs++
    const held = entry
    let released = false
    const release = () => {
      if (released) return
      released = true
      if (--held.refs > 0 || entries.get(id) !== held) return
      entries.delete(id)
      forgotten.add(id)
      for (const oldest of forgotten) {
        if (forgotten.size <= maxForgotten) break
        forgotten.delete(oldest)
      }
    }
    return { id, exit: held.exit, release }
  }

  /** Routes an exit notification (runs on the bridge's reader). */
  route(notification: Wire.ContainerNotification): NotificationRoute {
    const id = notification.ContainerId
    const entry = this.entries?.get(id)
    if (entry === undefined) return this.forgotten?.delete(id) ? "expected" : "unknown"
    this.entries!.delete(id)
    Deferred.doneUnsafe(entry.exit, Exit.succeed(ContainerExit.Exited({ notification })))
    return "delivered"
  }

  /** The bridge died: every waiter is released, as the Go host does. */
  closeAll(error: BridgeClosed): void {
    this.closed = error
    const lost = Exit.succeed(ContainerExit.ConnectionLost({ error }))
    for (const entry of this.entries?.values() ?? []) Deferred.doneUnsafe(entry.exit, lost)
    this.entries = undefined
    this.forgotten = undefined
  }
}
